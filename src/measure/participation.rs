//! Equilibrium pruning's score pass ("Pruning as a Game", arXiv:2512.22106): every player (one
//! weight, or one group of weights: an MLP channel, an attention head, a linear-attention V
//! head) holds a participation level `s` in `[0, 1]` and repeats
//!
//! ```text
//! benefit = alpha * b        (b = |w|·|w| = w², the player's energy; `Benefit::Signed`: |w|·w)
//! cost    = 2 * beta * e * s (e = w², the energy)
//! l1      = gamma * [s > 0]
//! s      <- clamp(s + lr * ((benefit - cost) - l1), 0, 1)
//! ```
//!
//! `iterations` times from `init`. A player that ends with a low `s` is pruned first.
//!
//! The energies are made scale-free before the iteration, so one set of `alpha, beta, gamma`
//! serves every tensor: a weight's energy is divided by the mean energy of its row (the row is
//! the unit a per-row ranking compares), a group's by the mean energy of the groups it is
//! ranked with (the job does that on the host).
//!
//! The issue text (and the method's user-side implementation) writes the benefit as
//! `alpha * |w| * w`: signed, so every negative weight's participation falls to 0 whatever its
//! magnitude. That form is kept as the opt-in [`Benefit::Signed`]; the default is the energy
//! `|w| * |w|`, the only reading under which the fixed point `s* = alpha/(2 beta) -
//! gamma/(2 beta e)` ranks players by magnitude.
//!
//! This module is the CPU twin of `shaders/prune.wgsl`: the same operations in the same order,
//! each rounded once (the kernel keeps every product and sum from being fused), so the GPU's
//! scores are the same bits. Row sums of squares use the workgroup tree of [`sum_squares`],
//! column sums add the rows top to bottom.

/// What the benefit term multiplies `alpha` with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Benefit {
    /// `|w| * |w|`: the energy (the default).
    #[default]
    Energy,
    /// `|w| * w`, as the method's user-side implementation writes it: every negative weight
    /// is pruned. Elementwise scores only (a group has no sign).
    Signed,
}

/// The parameters of the participation iteration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Participation {
    pub alpha: f32,
    pub beta: f32,
    pub gamma: f32,
    pub lr: f32,
    pub iterations: u32,
    /// Every player's starting level.
    pub init: f32,
    pub benefit: Benefit,
}

impl Default for Participation {
    /// `alpha = 1, beta = 0.5, gamma = 0.1, lr = 0.2`, 64 iterations from 1: with energies
    /// scaled to mean 1 the fixed point is `1 - 0.1 / e`, so a player under a tenth of the mean
    /// energy leaves the game (a player of energy 0 loses `lr * gamma = 0.02` a step and is out
    /// after 50; with lr 0.1 it would still hold 0.36 after 64).
    fn default() -> Self {
        Participation {
            alpha: 1.0,
            beta: 0.5,
            gamma: 0.1,
            lr: 0.2,
            iterations: 64,
            init: 1.0,
            benefit: Benefit::Energy,
        }
    }
}

impl Participation {
    /// Errs on parameters the iteration cannot use (non-finite, a negative rate, an initial
    /// level outside `[0, 1]`).
    pub fn check(&self) -> Result<(), String> {
        for (name, v) in [
            ("alpha", self.alpha),
            ("beta", self.beta),
            ("gamma", self.gamma),
            ("lr", self.lr),
            ("init", self.init),
        ] {
            if !v.is_finite() {
                return Err(format!(
                    "participation: {name} = {v} is not a finite number"
                ));
            }
        }
        if self.lr <= 0.0 {
            return Err(format!("participation: lr = {} must be above 0", self.lr));
        }
        if !(0.0..=1.0).contains(&self.init) {
            return Err(format!(
                "participation: init = {} must be within [0, 1]",
                self.init
            ));
        }
        Ok(())
    }
}

/// The level after the iterations of a player whose benefit term is `b` and energy `e`
/// (both already scaled). The definition; the score functions run it on blocks of players in
/// lockstep, with the same bits.
pub fn iterate(b: f32, e: f32, p: &Participation) -> f32 {
    let mut s = p.init;
    for _ in 0..p.iterations {
        let benefit = p.alpha * b;
        let cost = 2.0 * p.beta * e * s;
        let l1 = if s > 0.0 { p.gamma } else { 0.0 };
        let next = s + p.lr * ((benefit - cost) - l1);
        s = next.clamp(0.0, 1.0);
    }
    s
}

/// Players one [`iterate_block`] advances together.
const BLOCK: usize = 16;

/// [`iterate`] of up to [`BLOCK`] players in lockstep (`b`, `e` hold `n` players): each
/// player's operations are `iterate`'s, in the same order, so its result is the same bits;
/// interleaving independent players lets the compiler use SIMD lanes instead of waiting on one
/// player's chain of dependent steps.
fn iterate_block(b: &[f32; BLOCK], e: &[f32; BLOCK], n: usize, p: &Participation, out: &mut [f32]) {
    let mut s = [p.init; BLOCK];
    let benefit = b.map(|b| p.alpha * b);
    let c2 = e.map(|e| 2.0 * p.beta * e);
    for _ in 0..p.iterations {
        for j in 0..BLOCK {
            let cost = c2[j] * s[j];
            let l1 = if s[j] > 0.0 { p.gamma } else { 0.0 };
            let next = s[j] + p.lr * ((benefit[j] - cost) - l1);
            s[j] = next.clamp(0.0, 1.0);
        }
    }
    out.copy_from_slice(&s[..n]);
}

/// Lanes of the row reduction: the workgroup size of `shaders/prune.wgsl`'s row kernels.
pub const SUM_LANES: usize = 256;

/// The sum of `x²` over `xs` in the order of the GPU's workgroup reduction: lane `j` of
/// [`SUM_LANES`] sums `x[j]², x[j + 256]², ...` left to right from 0, then the lanes are added
/// as a balanced tree (lane `j` += lane `j + h` for `h` = 128, 64, .., 1) and lane 0 holds the
/// sum. Every product and sum is one rounded f32 operation (no fused multiply-add), so the
/// kernel's sum is the same bits. The rounding error is bounded by `(n / 256 + 8)` ulp of the
/// sum of the magnitudes.
pub fn sum_squares(xs: &[f32]) -> f32 {
    let mut lanes = [0f32; SUM_LANES];
    for chunk in xs.chunks(SUM_LANES) {
        for (acc, &x) in lanes.iter_mut().zip(chunk) {
            *acc += x * x;
        }
    }
    let mut h = SUM_LANES / 2;
    while h > 0 {
        let (lo, hi) = lanes.split_at_mut(h);
        for (a, &b) in lo.iter_mut().zip(&hi[..h]) {
            *a += b;
        }
        h /= 2;
    }
    lanes[0]
}

/// The scale that makes the mean energy of a row of `row_len` weights whose sum of squares is
/// `ss` 1: `row_len / ss` (0 when `ss` is 0 or not finite, or the quotient overflows: a row
/// of weights around 1e-20 would otherwise score NaN).
pub fn scale_of(row_len: usize, ss: f32) -> f32 {
    if ss > 0.0 && ss.is_finite() {
        let scale = row_len as f32 / ss;
        if scale.is_finite() { scale } else { 0.0 }
    } else {
        0.0
    }
}

/// The scale that makes a row's mean energy 1: `row_len / Σ w²` ([`scale_of`]; 0 for a row
/// of zeros).
pub fn row_scale(row: &[f32]) -> f32 {
    scale_of(row.len(), sum_squares(row))
}

/// Per-element participation of rows of `row_len` weights (`out[i]` for `w[i]`), each row's
/// energies scaled to mean 1; blocks of players iterate in lockstep (the compiler vectorizes
/// across them), each seeing exactly [`iterate`]'s operations.
pub fn element_scores(w: &[f32], row_len: usize, p: &Participation, out: &mut [f32]) {
    for (row, o) in w.chunks(row_len).zip(out.chunks_mut(row_len)) {
        let scale = row_scale(row);
        for (xs, os) in row.chunks(BLOCK).zip(o.chunks_mut(BLOCK)) {
            let (mut b, mut e) = ([0f32; BLOCK], [0f32; BLOCK]);
            for (j, &x) in xs.iter().enumerate() {
                e[j] = x * x * scale;
                b[j] = match p.benefit {
                    Benefit::Energy => e[j],
                    Benefit::Signed => x.abs() * x * scale,
                };
            }
            iterate_block(&b, &e, xs.len(), p, os);
        }
    }
}

/// Participation of players with the given (already scaled) energies: groups.
pub fn group_scores(energies: &[f32], p: &Participation, out: &mut [f32]) {
    for (es, os) in energies.chunks(BLOCK).zip(out.chunks_mut(BLOCK)) {
        let mut e = [0f32; BLOCK];
        e[..es.len()].copy_from_slice(es);
        iterate_block(&e, &e, es.len(), p, os);
    }
}

/// Sums of squares of a tile of rows of `row_len`: per row ([`sum_squares`] of the row) and per
/// column (over the tile's rows, top to bottom). Group energies are built from these: an MLP
/// channel is a row of gate and up plus a column of down.
pub fn energies(w: &[f32], row_len: usize) -> (Vec<f32>, Vec<f32>) {
    let rows = w.chunks(row_len).map(sum_squares).collect();
    let mut cols = vec![0f32; row_len];
    for row in w.chunks(row_len) {
        for (c, &x) in cols.iter_mut().zip(row) {
            *c += x * x;
        }
    }
    (rows, cols)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_iteration_reaches_its_fixed_point() {
        let p = Participation {
            iterations: 2000,
            lr: 0.05,
            ..Participation::default()
        };
        // s* = alpha/(2 beta) - gamma/(2 beta e) = 1 - 0.1/e
        for e in [0.2f32, 0.5, 1.0, 3.0] {
            let s = iterate(e, e, &p);
            let want = (1.0 - 0.1 / e).clamp(0.0, 1.0);
            assert!((s - want).abs() < 1e-3, "e {e}: {s} vs {want}");
        }
        // below gamma's reach the player leaves: `[s > 0]` makes it chatter between 0 and
        // one step of its benefit, `lr * alpha * e`
        for n in [2000, 2001] {
            let s = iterate(0.05, 0.05, &Participation { iterations: n, ..p });
            assert!(s == 0.0 || s == p.lr * p.alpha * 0.05, "{n}: {s}");
        }
        assert_eq!(iterate(0.0, 0.0, &p), 0.0);
    }

    #[test]
    fn signed_benefit_prunes_every_negative_weight() {
        let w: Vec<f32> = (0..64)
            .map(|i| (i as f32 * 0.7).sin() * (1.0 + i as f32 / 8.0))
            .collect();
        let mut energy = vec![f32::NAN; 64];
        let mut signed = vec![f32::NAN; 64];
        let p = Participation {
            benefit: Benefit::Signed,
            iterations: 4000,
            ..Participation::default()
        };
        element_scores(
            &w,
            64,
            &Participation {
                benefit: Benefit::Energy,
                ..p
            },
            &mut energy,
        );
        element_scores(&w, 64, &p, &mut signed);
        for ((&x, &e), &s) in w.iter().zip(&energy).zip(&signed) {
            assert!((0.0..=1.0).contains(&e) && (0.0..=1.0).contains(&s));
            if x < 0.0 {
                assert_eq!(s, 0.0, "w {x}");
            } else {
                assert_eq!(s, e, "w {x}");
            }
        }
        // the energy form ranks by magnitude: among the players gamma does not push out, a
        // larger |w| never scores lower; those it pushes out end within one step of 0
        let scale = row_scale(&w);
        let mut idx: Vec<usize> = (0..64).filter(|&i| w[i] * w[i] * scale > p.gamma).collect();
        assert!(idx.len() > 8 && idx.len() < 60, "{}", idx.len());
        idx.sort_by(|&a, &b| w[a].abs().total_cmp(&w[b].abs()));
        for pair in idx.windows(2) {
            assert!(energy[pair[0]] <= energy[pair[1]]);
        }
        for i in (0..64).filter(|&i| w[i] * w[i] * scale < p.gamma) {
            assert!(
                energy[i] <= p.lr * p.alpha * p.gamma,
                "w {}: {}",
                w[i],
                energy[i]
            );
        }
    }

    #[test]
    fn sums_of_squares_match_f64_and_energies_split_rows_and_columns() {
        let w: Vec<f32> = (0..3 * 1000)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let (rows, cols) = energies(&w, 1000);
        for (r, &got) in rows.iter().enumerate() {
            let want: f64 = w[r * 1000..(r + 1) * 1000]
                .iter()
                .map(|&x| (x as f64).powi(2))
                .sum();
            assert!((got as f64 - want).abs() < want * 1e-6, "row {r}");
        }
        for (c, &got) in cols.iter().enumerate() {
            let want: f64 = (0..3).map(|r| (w[r * 1000 + c] as f64).powi(2)).sum();
            assert!((got as f64 - want).abs() <= want * 1e-6, "col {c}");
        }
        assert_eq!(row_scale(&[0.0; 8]), 0.0);
        // row_len / ss overflows: no infinite scale (it would score 0 * inf = NaN)
        assert_eq!(row_scale(&[1e-21; 8]), 0.0);
        assert_eq!(scale_of(4, 2.0), 2.0);
        assert_eq!(scale_of(4, f32::INFINITY), 0.0);
    }

    #[test]
    fn lockstep_blocks_are_the_same_bits_as_one_player_at_a_time() {
        let w: Vec<f32> = (0..3 * 37)
            .map(|i| ((i * 53 % 97) as f32 - 48.0) / 9.0)
            .collect();
        for benefit in [Benefit::Energy, Benefit::Signed] {
            let p = Participation {
                benefit,
                iterations: 37,
                lr: 0.3,
                ..Participation::default()
            };
            let mut out = vec![f32::NAN; w.len()];
            element_scores(&w, 37, &p, &mut out);
            for (row, o) in w.chunks(37).zip(out.chunks(37)) {
                let scale = row_scale(row);
                for (&x, &got) in row.iter().zip(o) {
                    let e = x * x * scale;
                    let b = match benefit {
                        Benefit::Energy => e,
                        Benefit::Signed => x.abs() * x * scale,
                    };
                    assert_eq!(got.to_bits(), iterate(b, e, &p).to_bits(), "w {x}");
                }
            }
            let mut g = vec![f32::NAN; w.len()];
            let energies: Vec<f32> = w.iter().map(|x| x * x).collect();
            group_scores(&energies, &p, &mut g);
            for (&e, &got) in energies.iter().zip(&g) {
                assert_eq!(got.to_bits(), iterate(e, e, &p).to_bits());
            }
        }
    }

    #[test]
    fn bad_parameters_are_refused() {
        let ok = Participation::default();
        assert!(ok.check().is_ok());
        for bad in [
            Participation { lr: 0.0, ..ok },
            Participation { init: 1.5, ..ok },
            Participation {
                alpha: f32::NAN,
                ..ok
            },
        ] {
            assert!(bad.check().is_err());
        }
    }
}
