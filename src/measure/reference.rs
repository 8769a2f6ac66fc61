//! The f64 reference: the statistics of [`super`] computed the obvious way in double precision.
//! It is the spec the f32 CPU path and the WGSL kernel are tested against, not a fast path.

use super::{HIST_BINS, HIST_LO, HIST_PER_UNIT, Histogram};

/// One row's statistics in f64.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RowStats64 {
    pub n: u64,
    pub finite: u64,
    pub sum: f64,
    pub sum_abs: f64,
    pub sum_sq: f64,
    pub min: f64,
    pub max: f64,
    pub zeros: u64,
    pub outliers: u64,
    pub nan: u64,
    pub inf: u64,
}

impl RowStats64 {
    pub fn mean(&self) -> f64 {
        self.sum / self.finite as f64
    }
    pub fn absmean(&self) -> f64 {
        self.sum_abs / self.finite as f64
    }
    pub fn rms(&self) -> f64 {
        if self.finite == 0 {
            0.0
        } else {
            (self.sum_sq / self.finite as f64).sqrt()
        }
    }
    pub fn absmax(&self) -> f64 {
        self.min.abs().max(self.max.abs())
    }
}

/// The histogram bin of `x` computed in f64 (same edges as [`super::hist_bin`]).
pub fn hist_bin64(x: f64) -> usize {
    let t = ((x - HIST_LO as f64) * HIST_PER_UNIT as f64).floor();
    if t < 0.0 {
        0
    } else if t >= (HIST_BINS - 2) as f64 {
        HIST_BINS - 1
    } else {
        t as usize + 1
    }
}

/// Statistics of one row in f64; adds its values to `hist`.
pub fn row_stats(row: &[f32], k: f64, hist: &mut Histogram) -> RowStats64 {
    let mut s = RowStats64 {
        n: row.len() as u64,
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
        ..Default::default()
    };
    for &w in row {
        if w.is_nan() {
            s.nan += 1;
            continue;
        }
        if w.is_infinite() {
            s.inf += 1;
            continue;
        }
        let w = w as f64;
        s.finite += 1;
        s.sum += w;
        s.sum_abs += w.abs();
        s.sum_sq += w * w;
        s.min = s.min.min(w);
        s.max = s.max.max(w);
        if w == 0.0 {
            s.zeros += 1;
        }
    }
    let rms = s.rms();
    for &w in row.iter().filter(|w| w.is_finite()) {
        let w = w as f64;
        if w.abs() > k * rms {
            s.outliers += 1;
        }
        let x = if rms > 0.0 { w / rms } else { 0.0 };
        hist.0[hist_bin64(x)] += 1;
    }
    s
}

/// Statistics of rows of `row_len` elements: per row, the tensor totals (a row holding them
/// all), and the histogram.
pub fn tensor_stats(
    data: &[f32],
    row_len: usize,
    k: f64,
) -> (Vec<RowStats64>, RowStats64, Histogram) {
    let mut hist = Histogram::default();
    let rows: Vec<RowStats64> = data
        .chunks(row_len)
        .map(|r| row_stats(r, k, &mut hist))
        .collect();
    let mut t = RowStats64 {
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
        ..Default::default()
    };
    for r in &rows {
        t.n += r.n;
        t.finite += r.finite;
        t.sum += r.sum;
        t.sum_abs += r.sum_abs;
        t.sum_sq += r.sum_sq;
        t.min = t.min.min(r.min);
        t.max = t.max.max(r.max);
        t.zeros += r.zeros;
        t.outliers += r.outliers;
        t.nan += r.nan;
        t.inf += r.inf;
    }
    (rows, t, hist)
}
