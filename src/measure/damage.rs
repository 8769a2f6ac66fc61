//! What a tensor loses at each candidate type, measured on its own weights: the arithmetic of
//! the size target's first pass (`jobs::target::measure_tensor` reads the rows).
//!
//! A tensor's rows are sampled ([`sample_rows`]: all of them up to a limit, else that many
//! spread evenly), encoded at every candidate type with the importance weights the write pass
//! will use, decoded, and compared with the source:
//!
//! - `err = Σ_rows Σ_j w_j (x_j - q_j)²` and `energy = Σ_rows Σ_j w_j x_j²`, with `w_j` the
//!   imatrix value of column `j` (of the row's expert slice) or 1 without one. With an imatrix
//!   `w_j` is the mean square of the activation that multiplies column `j`, so `err` is the
//!   expected squared error of the tensor's output and `err / energy` its expected relative
//!   output error.
//! - The sums run in f64 over f32 values, row by row.

use crate::ggml_type::GgmlType;

/// Rows measured per tensor unless told otherwise.
pub const DEFAULT_SAMPLE_ROWS: u64 = 512;

/// The rows of a tensor of `n_rows` that are measured: every row when there are at most `max`,
/// else row `floor(k * n_rows / max)` for `k in 0..max` (spread evenly, always row 0).
pub fn sample_rows(n_rows: u64, max: u64) -> Vec<u64> {
    let max = max.max(1);
    if n_rows <= max {
        return (0..n_rows).collect();
    }
    (0..max)
        .map(|k| ((k as u128 * n_rows as u128) / max as u128) as u64)
        .collect()
}

/// `(Σ w_j (x_j - y_j)², Σ w_j x_j²)` over rows of `row_len` (`weights`: one per column, all 1
/// when `None`).
pub fn weighted_error(x: &[f32], y: &[f32], row_len: usize, weights: Option<&[f32]>) -> (f64, f64) {
    let mut err = 0f64;
    let mut energy = 0f64;
    for (xr, yr) in x.chunks(row_len.max(1)).zip(y.chunks(row_len.max(1))) {
        for (j, (&a, &b)) in xr.iter().zip(yr).enumerate() {
            let w = weights.and_then(|w| w.get(j)).copied().unwrap_or(1.0) as f64;
            let d = a as f64 - b as f64;
            err += w * d * d;
            energy += w * a as f64 * a as f64;
        }
    }
    (err, energy)
}

/// One tensor's measurement.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorDamage {
    /// `Σ w x²` over the measured rows.
    pub energy: f64,
    /// `Σ w (x - q)²` over the measured rows, per candidate type (same order as asked).
    pub errors: Vec<(GgmlType, f64)>,
    /// Rows measured.
    pub rows: u64,
}

impl TensorDamage {
    /// The relative error `err / energy` of `ty` (0 for a tensor of zeros at any type).
    pub fn relative(&self, ty: GgmlType) -> Option<f64> {
        let (_, e) = self.errors.iter().find(|(t, _)| *t == ty)?;
        Some(if self.energy > 0.0 {
            e / self.energy
        } else {
            0.0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_spread_and_stay_in_range() {
        assert_eq!(sample_rows(5, 512), vec![0, 1, 2, 3, 4]);
        let s = sample_rows(10_000, 512);
        assert_eq!(s.len(), 512);
        assert_eq!(s[0], 0);
        assert!(s.windows(2).all(|w| w[0] < w[1]));
        assert!(*s.last().unwrap() < 10_000);
        assert!(*s.last().unwrap() >= 10_000 - 10_000 / 512 - 1);
        assert_eq!(sample_rows(3, 0), vec![0]);
    }

    #[test]
    fn weighted_error_weights_columns() {
        let x = [1.0f32, 2.0, 3.0, 4.0];
        let y = [1.5f32, 2.0, 2.0, 4.0];
        assert_eq!(weighted_error(&x, &y, 2, None), (0.25 + 1.0, 30.0));
        let w = [4.0f32, 0.5];
        // row 0: 4*0.25 ; row 1: 4*1 ; energy 4*1+0.5*4+4*9+0.5*16
        assert_eq!(weighted_error(&x, &y, 2, Some(&w)), (5.0, 50.0));
    }
}
