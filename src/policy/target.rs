//! Fitting a model to a byte budget: one type per tensor, chosen from measured candidates so
//! that the summed damage is least and the bytes stay within the budget.
//!
//! The scheme of llama.cpp's pending automatic allocation (pull request #15550), re-derived:
//! 1. per tensor, the lower convex hull of its candidates in (bytes, damage): a candidate that
//!    another beats on both, or that lies above the segment joining two others, is never the
//!    best trade at any price of a byte;
//! 2. a Lagrange multiplier `lambda` (damage per byte), found by bisection: each tensor takes the
//!    hull point minimising `damage + lambda * bytes`, and the smallest `lambda` whose total
//!    fits the budget gives an assignment that no other assignment of at most its bytes beats;
//! 3. a greedy fill of the bytes left: repeatedly the upgrade (any candidate, hull or not)
//!    with the most damage removed per byte that still fits.
//!
//! Pure arithmetic on the candidates; measuring them is `measure::damage`'s job.

use crate::ggml_type::GgmlType;

/// One possible type of one tensor: what it costs and what it breaks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Candidate {
    pub ty: GgmlType,
    /// What the tensor costs in the budget at this type.
    pub bytes: u64,
    /// The damage estimate (smaller is better; comparable across tensors).
    pub damage: f64,
}

/// The chosen candidate of every tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Allocation {
    /// Index into each tensor's candidate list.
    pub choice: Vec<usize>,
    /// Total bytes of the choice.
    pub bytes: u64,
    /// Total damage of the choice.
    pub damage: f64,
    /// The multiplier of step 2 (damage per byte); 0 when the least-damage choice fits.
    pub lambda: f64,
    /// Total bytes after step 2, before the greedy fill (the Lagrangian optimum's size).
    pub lagrange_bytes: u64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TargetError {
    #[error(
        "a budget of {budget} bytes is below the smallest possible size, {min} bytes (every tensor at its smallest candidate type); raise the target or add smaller types"
    )]
    TooSmall { budget: u64, min: u64 },
    #[error("tensor #{0} has no candidate type")]
    NoCandidates(usize),
    #[error("tensor #{tensor}: candidate {ty} has a damage of {damage}, not a finite number >= 0")]
    BadDamage {
        tensor: usize,
        ty: GgmlType,
        damage: f64,
    },
}

/// The indices of the lower convex hull of `c` in (bytes, damage), from the smallest
/// candidate to the least-damage one, bytes increasing and damage decreasing.
pub fn hull(c: &[Candidate]) -> Vec<usize> {
    if c.is_empty() {
        return Vec::new();
    }
    // start: the fewest bytes, least damage among those
    let mut cur = (0..c.len())
        .min_by(|&a, &b| {
            c[a].bytes
                .cmp(&c[b].bytes)
                .then(c[a].damage.total_cmp(&c[b].damage))
        })
        .unwrap_or(0);
    let mut out = vec![cur];
    loop {
        // the next point: the steepest damage drop per byte; on a tie the farther one
        let mut next: Option<(usize, f64)> = None;
        for (j, q) in c.iter().enumerate() {
            let p = &c[cur];
            if q.bytes <= p.bytes || q.damage >= p.damage {
                continue;
            }
            let slope = (p.damage - q.damage) / (q.bytes - p.bytes) as f64;
            let better = match next {
                None => true,
                Some((k, s)) => slope > s || (slope == s && q.bytes > c[k].bytes),
            };
            if better {
                next = Some((j, slope));
            }
        }
        match next {
            Some((j, _)) => {
                out.push(j);
                cur = j;
            }
            None => return out,
        }
    }
}

fn check(tensors: &[Vec<Candidate>]) -> Result<(), TargetError> {
    for (i, c) in tensors.iter().enumerate() {
        if c.is_empty() {
            return Err(TargetError::NoCandidates(i));
        }
        if let Some(bad) = c.iter().find(|x| !x.damage.is_finite() || x.damage < 0.0) {
            return Err(TargetError::BadDamage {
                tensor: i,
                ty: bad.ty,
                damage: bad.damage,
            });
        }
    }
    Ok(())
}

/// Each tensor's hull point minimising `damage + lambda * bytes` (ties: fewer bytes).
fn pick(tensors: &[Vec<Candidate>], hulls: &[Vec<usize>], lambda: f64) -> Vec<usize> {
    tensors
        .iter()
        .zip(hulls)
        .map(|(c, h)| {
            let cost = |k: usize| c[k].damage + lambda * c[k].bytes as f64;
            let mut best = h[0];
            for &k in &h[1..] {
                if cost(k) < cost(best) {
                    best = k;
                }
            }
            best
        })
        .collect()
}

fn total(tensors: &[Vec<Candidate>], choice: &[usize]) -> (u64, f64) {
    tensors
        .iter()
        .zip(choice)
        .fold((0u64, 0f64), |(b, d), (c, &k)| {
            (b.saturating_add(c[k].bytes), d + c[k].damage)
        })
}

/// Chooses one candidate per tensor with total bytes at most `budget` and the least total
/// damage this scheme finds (see the module documentation).
pub fn allocate(tensors: &[Vec<Candidate>], budget: u64) -> Result<Allocation, TargetError> {
    check(tensors)?;
    let hulls: Vec<Vec<usize>> = tensors.iter().map(|c| hull(c)).collect();
    let smallest: Vec<usize> = hulls.iter().map(|h| h[0]).collect();
    let (min, _) = total(tensors, &smallest);
    if min > budget {
        return Err(TargetError::TooSmall { budget, min });
    }

    let fits = |lambda: f64| total(tensors, &pick(tensors, &hulls, lambda)).0 <= budget;
    let (lambda, choice) = if fits(0.0) {
        (0.0, pick(tensors, &hulls, 0.0))
    } else {
        // an upper bound that fits: past the steepest hull slope every tensor takes its
        // smallest point
        let mut hi = 1e-30f64;
        while !fits(hi) && hi < f64::MAX / 4.0 {
            hi *= 4.0;
        }
        // bisection in log space between a lambda that does not fit and one that does
        let mut lo = hi / 4.0;
        while fits(lo) && lo > f64::MIN_POSITIVE {
            lo /= 4.0;
        }
        for _ in 0..200 {
            let mid = (lo * hi).sqrt();
            if mid <= lo || mid >= hi {
                break;
            }
            if fits(mid) {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        (hi, pick(tensors, &hulls, hi))
    };
    let (lagrange_bytes, _) = total(tensors, &choice);

    // greedy fill: the best damage removed per byte among upgrades that still fit
    let mut choice = choice;
    let mut bytes = lagrange_bytes;
    loop {
        let left = budget - bytes;
        let mut best: Option<(usize, usize, f64)> = None;
        for (i, c) in tensors.iter().enumerate() {
            let cur = c[choice[i]];
            for (k, q) in c.iter().enumerate() {
                if q.damage >= cur.damage || q.bytes.saturating_sub(cur.bytes) > left {
                    continue;
                }
                let gain = if q.bytes <= cur.bytes {
                    f64::INFINITY
                } else {
                    (cur.damage - q.damage) / (q.bytes - cur.bytes) as f64
                };
                if best.is_none_or(|(_, _, g)| gain > g) {
                    best = Some((i, k, gain));
                }
            }
        }
        match best {
            Some((i, k, _)) => {
                bytes = bytes - tensors[i][choice[i]].bytes + tensors[i][k].bytes;
                choice[i] = k;
            }
            None => break,
        }
    }
    let (bytes, damage) = total(tensors, &choice);
    Ok(Allocation {
        choice,
        bytes,
        damage,
        lambda,
        lagrange_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use GgmlType as G;

    /// A small deterministic generator (no dev-dependency in unit tests of the library).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> f64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (self.0 >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    const TYPES: [GgmlType; 6] = [G::Q2_K, G::Q3_K, G::Q4_K, G::Q5_K, G::Q6_K, G::Q8_0];
    const BPW: [f64; 6] = [2.625, 3.4375, 4.5, 5.5, 6.5625, 8.5];

    /// Tensors of random sizes whose damage falls about 4x per bit, with random sensitivity
    /// and some noise (so hulls are not always every point).
    fn instance(seed: u64, n: usize) -> Vec<Vec<Candidate>> {
        let mut r = Lcg(seed);
        (0..n)
            .map(|_| {
                let elems = 256.0 * (1.0 + (r.next() * 400.0).floor());
                let sens = (r.next() * 6.0).exp();
                TYPES
                    .iter()
                    .zip(BPW)
                    .map(|(&ty, bpw)| Candidate {
                        ty,
                        bytes: (elems * bpw / 8.0) as u64,
                        damage: sens * (-1.386 * bpw).exp() * (0.7 + 0.6 * r.next()),
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn hull_drops_dominated_and_concave_points() {
        let c = |ty, bytes, damage| Candidate { ty, bytes, damage };
        let cands = vec![
            c(G::Q4_K, 40, 4.0),
            c(G::Q2_K, 10, 10.0),
            c(G::Q3_K, 20, 9.5), // above the segment 10..40: not on the hull
            c(G::Q5_K, 50, 5.0), // dominated by Q4_K
            c(G::Q8_0, 80, 1.0),
            c(G::Q6_K, 60, 2.0),
        ];
        assert_eq!(hull(&cands), vec![1, 0, 5, 4]);
        assert_eq!(hull(&[]), Vec::<usize>::new());
    }

    #[test]
    fn never_over_budget_and_close_to_it() {
        for seed in 1..40 {
            let t = instance(seed, 60);
            let min: u64 = t.iter().map(|c| c[0].bytes).sum();
            let max: u64 = t.iter().map(|c| c[5].bytes).sum();
            for f in [0.0, 0.1, 0.35, 0.6, 0.9, 0.999] {
                let budget = min + ((max - min) as f64 * f) as u64;
                let a = allocate(&t, budget).unwrap();
                assert!(a.bytes <= budget, "seed {seed} f {f}");
                assert!(a.lagrange_bytes <= a.bytes);
                let (b, d) = total(&t, &a.choice);
                assert_eq!((b, d), (a.bytes, a.damage));
                // the fill stops only when no upgrade fits: short by less than the largest
                // step between two candidates of one tensor
                let step = t
                    .iter()
                    .flat_map(|c| c.windows(2).map(|w| w[1].bytes - w[0].bytes))
                    .max()
                    .unwrap();
                assert!(a.bytes + step > budget, "seed {seed} f {f}");
                // which, away from the all-largest end, is well within 0.5%
                if (0.1..0.95).contains(&f) {
                    assert!(
                        a.bytes as f64 >= 0.995 * budget as f64,
                        "seed {seed} f {f}: {} of {budget}",
                        a.bytes
                    );
                }
            }
            // the whole range: all-largest fits exactly
            let a = allocate(&t, max).unwrap();
            assert_eq!(a.lambda, 0.0);
            assert!(a.choice.iter().all(|&k| k == 5));
        }
    }

    #[test]
    fn beats_every_uniform_type_that_fits() {
        for seed in 100..130 {
            let t = instance(seed, 40);
            for (k, ty) in TYPES.iter().enumerate() {
                let uniform: Vec<usize> = vec![k; t.len()];
                let (bytes, damage) = total(&t, &uniform);
                let a = allocate(&t, bytes).unwrap();
                assert!(a.bytes <= bytes);
                assert!(
                    a.damage <= damage * (1.0 + 1e-12),
                    "seed {seed} {ty}: {} > {damage}",
                    a.damage
                );
            }
        }
    }

    #[test]
    fn lagrange_point_is_optimal_for_its_size() {
        // brute force: no assignment of at most the Lagrangian point's bytes has less damage
        for seed in 200..260 {
            let t: Vec<Vec<Candidate>> = instance(seed, 5)
                .into_iter()
                .map(|c| c.into_iter().step_by(2).collect())
                .collect();
            let min: u64 = t.iter().map(|c| c[0].bytes).sum();
            let max: u64 = t.iter().map(|c| c[2].bytes).sum();
            let budget = min + (max - min) / 2;
            let a = allocate(&t, budget).unwrap();
            let hulls: Vec<Vec<usize>> = t.iter().map(|c| hull(c)).collect();
            let lag = pick(&t, &hulls, a.lambda);
            let (lb, ld) = total(&t, &lag);
            assert_eq!(lb, a.lagrange_bytes);
            let n = t.len() as u32;
            for code in 0..3usize.pow(n) {
                let choice: Vec<usize> = (0..n).map(|i| code / 3usize.pow(i) % 3).collect();
                let (b, d) = total(&t, &choice);
                if b <= lb {
                    assert!(d >= ld * (1.0 - 1e-12), "seed {seed}: {choice:?} beats it");
                }
            }
            // the fill only improves on the Lagrangian point
            assert!(a.damage <= ld && a.bytes >= lb);
        }
    }

    #[test]
    fn refusals() {
        let t = instance(7, 3);
        let min: u64 = t.iter().map(|c| c[0].bytes).sum();
        assert_eq!(
            allocate(&t, min - 1),
            Err(TargetError::TooSmall {
                budget: min - 1,
                min
            })
        );
        assert!(allocate(&t, min).is_ok());
        assert_eq!(allocate(&[vec![]], 10), Err(TargetError::NoCandidates(0)));
        let mut bad = t.clone();
        bad[1][2].damage = f64::NAN;
        assert!(matches!(
            allocate(&bad, u64::MAX),
            Err(TargetError::BadDamage { tensor: 1, .. })
        ));
    }
}
