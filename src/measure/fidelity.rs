//! Quantization error: a source row `x` against its round trip `y = decode(encode(x))`.
//!
//! Per row and per tensor, from the sums `Σ(x−y)²`, `Σx²`, `Σy²`, `Σxy` and `max|x−y|`:
//! RMSE `sqrt(Σ(x−y)²/n)`, relative Frobenius error `‖x−y‖/‖x‖`, cosine similarity
//! `Σxy / (‖x‖‖y‖)`, SNR `10·log10(Σx² / Σ(x−y)²)` dB (∞ for an exact round trip).
//! Pairs whose source value is NaN/Inf are skipped (the statistics report those); a finite
//! source value that decodes to NaN/Inf (a poisoned block scale) is counted in `poisoned` and
//! skipped as well. Sums are f32 pairwise inside a row and compensated across rows, as in
//! [`super::fast`].

use super::CompensatedF32;
use rayon::prelude::*;

/// Block length summed left to right before pairwise combining.
const BASE: usize = 64;

/// The error sums of one row.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RowFidelity {
    /// Pairs compared (finite source, finite decoded value).
    pub n: u64,
    pub poisoned: u64,
    pub sse: f32,
    pub sxx: f32,
    pub syy: f32,
    pub sxy: f32,
    pub max_abs: f32,
}

impl RowFidelity {
    fn combine(a: RowFidelity, b: RowFidelity) -> RowFidelity {
        RowFidelity {
            n: a.n + b.n,
            poisoned: a.poisoned + b.poisoned,
            sse: a.sse + b.sse,
            sxx: a.sxx + b.sxx,
            syy: a.syy + b.syy,
            sxy: a.sxy + b.sxy,
            max_abs: a.max_abs.max(b.max_abs),
        }
    }

    pub fn metrics(&self) -> FidelityMetrics {
        FidelityMetrics::from_sums(
            self.n,
            self.sse as f64,
            self.sxx as f64,
            self.syy as f64,
            self.sxy as f64,
            self.max_abs as f64,
        )
    }
}

fn block(x: &[f32], y: &[f32]) -> RowFidelity {
    let mut e = RowFidelity::default();
    for (&a, &b) in x.iter().zip(y) {
        if !a.is_finite() {
            continue;
        }
        if !b.is_finite() {
            e.poisoned += 1;
            continue;
        }
        let d = a - b;
        e.n += 1;
        e.sse += d * d;
        e.sxx += a * a;
        e.syy += b * b;
        e.sxy += a * b;
        e.max_abs = e.max_abs.max(d.abs());
    }
    e
}

fn pairwise(x: &[f32], y: &[f32]) -> RowFidelity {
    if x.len() <= BASE {
        return block(x, y);
    }
    let half = (x.len().div_ceil(2 * BASE) * BASE).min(x.len());
    RowFidelity::combine(
        pairwise(&x[..half], &y[..half]),
        pairwise(&x[half..], &y[half..]),
    )
}

/// The error sums of one row `x` against its round trip `y` (same length).
pub fn row_fidelity(x: &[f32], y: &[f32]) -> RowFidelity {
    debug_assert_eq!(x.len(), y.len());
    pairwise(x, y)
}

/// Per-row error sums of a tile: `src` and `decoded` are rows of `row_len` elements.
pub fn tile_fidelity(src: &[f32], decoded: &[f32], row_len: usize) -> Vec<RowFidelity> {
    if row_len == 0 {
        return Vec::new();
    }
    src.par_chunks(row_len)
        .zip(decoded.par_chunks(row_len))
        .map(|(x, y)| row_fidelity(x, y))
        .collect()
}

/// Error metrics (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct FidelityMetrics {
    pub rmse: f64,
    pub max_abs: f64,
    pub rel_frobenius: f64,
    pub cosine: f64,
    /// dB; `inf` when the round trip is exact (written as `null` in JSON).
    pub snr_db: f64,
}

impl FidelityMetrics {
    pub fn from_sums(
        n: u64,
        sse: f64,
        sxx: f64,
        syy: f64,
        sxy: f64,
        max_abs: f64,
    ) -> FidelityMetrics {
        let rmse = if n == 0 { 0.0 } else { (sse / n as f64).sqrt() };
        let rel_frobenius = if sse == 0.0 {
            0.0
        } else if sxx == 0.0 {
            f64::INFINITY
        } else {
            (sse / sxx).sqrt()
        };
        let cosine = if sxx == 0.0 && syy == 0.0 {
            1.0
        } else if sxx == 0.0 || syy == 0.0 {
            0.0
        } else {
            (sxy / (sxx.sqrt() * syy.sqrt())).clamp(-1.0, 1.0)
        };
        let snr_db = if sse == 0.0 {
            f64::INFINITY
        } else if sxx == 0.0 {
            f64::NEG_INFINITY
        } else {
            10.0 * (sxx / sse).log10()
        };
        FidelityMetrics {
            rmse,
            max_abs,
            rel_frobenius,
            cosine,
            snr_db,
        }
    }
}

/// The error of a whole tensor (or layer), accumulated row by row.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FidelityAcc {
    pub n: u64,
    pub poisoned: u64,
    pub sse: CompensatedF32,
    pub sxx: CompensatedF32,
    pub syy: CompensatedF32,
    pub sxy: CompensatedF32,
    pub max_abs: f32,
    /// The row with the largest relative error and that error.
    pub worst_row: Option<(u64, f64)>,
}

impl FidelityAcc {
    /// Adds a tile's rows; `first_row` is the tensor row index of `rows[0]`.
    pub fn add_tile(&mut self, first_row: u64, rows: &[RowFidelity]) {
        for (i, r) in rows.iter().enumerate() {
            self.n += r.n;
            self.poisoned += r.poisoned;
            self.sse.add(r.sse);
            self.sxx.add(r.sxx);
            self.syy.add(r.syy);
            self.sxy.add(r.sxy);
            self.max_abs = self.max_abs.max(r.max_abs);
            let rel = r.metrics().rel_frobenius;
            if self.worst_row.is_none_or(|(_, w)| rel > w) {
                self.worst_row = Some((first_row + i as u64, rel));
            }
        }
    }

    /// Adds another accumulator (a tensor into its layer).
    pub fn merge(&mut self, o: &FidelityAcc) {
        self.n += o.n;
        self.poisoned += o.poisoned;
        for (a, b) in [
            (&mut self.sse, &o.sse),
            (&mut self.sxx, &o.sxx),
            (&mut self.syy, &o.syy),
            (&mut self.sxy, &o.sxy),
        ] {
            a.add(b.s);
            a.add(b.c);
        }
        self.max_abs = self.max_abs.max(o.max_abs);
    }

    pub fn metrics(&self) -> FidelityMetrics {
        FidelityMetrics::from_sums(
            self.n,
            self.sse.value(),
            self.sxx.value(),
            self.syy.value(),
            self.sxy.value(),
            self.max_abs as f64,
        )
    }
}
