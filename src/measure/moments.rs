//! The f32 CPU path: rows in parallel (rayon); inside a row, pairwise summation over blocks of
//! [`PAIRWISE_BASE`] elements, so the rounding error of a row's sums grows with
//! `log2(row_len / 64)` rather than `row_len`; across rows the tensor totals use compensated
//! sums ([`super::CompensatedF32`], in [`super::TensorStats::add_tile`]).

use super::{HIST_BINS, Histogram, RowStats, hist_bin};
use rayon::prelude::*;

/// Block length summed left to right before pairwise combining (error bound 64 ULP per block).
pub const PAIRWISE_BASE: usize = 64;

#[derive(Clone, Copy)]
struct Moments {
    finite: u32,
    sum: f32,
    sum_abs: f32,
    sum_sq: f32,
    min: f32,
    max: f32,
    zeros: u32,
    nan: u32,
    inf: u32,
}

impl Moments {
    fn combine(a: Moments, b: Moments) -> Moments {
        Moments {
            finite: a.finite + b.finite,
            sum: a.sum + b.sum,
            sum_abs: a.sum_abs + b.sum_abs,
            sum_sq: a.sum_sq + b.sum_sq,
            min: a.min.min(b.min),
            max: a.max.max(b.max),
            zeros: a.zeros + b.zeros,
            nan: a.nan + b.nan,
            inf: a.inf + b.inf,
        }
    }
}

fn block_moments(v: &[f32]) -> Moments {
    let mut m = Moments {
        finite: 0,
        sum: 0.0,
        sum_abs: 0.0,
        sum_sq: 0.0,
        min: f32::INFINITY,
        max: f32::NEG_INFINITY,
        zeros: 0,
        nan: 0,
        inf: 0,
    };
    for &w in v {
        if w.is_finite() {
            m.finite += 1;
            m.sum += w;
            m.sum_abs += w.abs();
            m.sum_sq += w * w;
            m.min = m.min.min(w);
            m.max = m.max.max(w);
            m.zeros += (w == 0.0) as u32;
        } else if w.is_nan() {
            m.nan += 1;
        } else {
            m.inf += 1;
        }
    }
    m
}

/// Pairwise: split at a multiple of the base block, recurse, add the halves.
fn pairwise(v: &[f32]) -> Moments {
    if v.len() <= PAIRWISE_BASE {
        return block_moments(v);
    }
    let half = v.len().div_ceil(2 * PAIRWISE_BASE) * PAIRWISE_BASE;
    let (a, b) = v.split_at(half.min(v.len()));
    Moments::combine(pairwise(a), pairwise(b))
}

/// Statistics of one row, adding its values to `hist`; `k` is the outlier threshold in units
/// of the row's RMS. Rows longer than 2³²−1 elements are not supported (counts are u32 inside
/// a row; ggml rows are far shorter).
pub fn row_stats(row: &[f32], k: f32, hist: &mut [u64; HIST_BINS]) -> RowStats {
    let m = pairwise(row);
    let mut s = RowStats {
        n: row.len() as u64,
        finite: m.finite as u64,
        sum: m.sum,
        sum_abs: m.sum_abs,
        sum_sq: m.sum_sq,
        min: m.min,
        max: m.max,
        zeros: m.zeros as u64,
        outliers: 0,
        nan: m.nan as u64,
        inf: m.inf as u64,
    };
    let rms = s.rms_f32();
    let thr = k * rms;
    let mut outliers = 0u64;
    if rms > 0.0 {
        for &w in row.iter().filter(|w| w.is_finite()) {
            outliers += (w.abs() > thr) as u64;
            hist[hist_bin(w / rms)] += 1;
        }
    } else {
        // every finite value is 0 (or there is none): all in the bin of x = 0
        hist[hist_bin(0.0)] += s.finite;
    }
    s.outliers = outliers;
    s
}

/// Rows handed to one rayon task at a time.
const ROWS_PER_TASK: usize = 16;

/// Statistics of a tile of whole rows of `row_len` elements: one [`RowStats`] per row, and
/// the tile's histogram.
pub fn tile_stats(data: &[f32], row_len: usize, k: f32) -> (Vec<RowStats>, Histogram) {
    if row_len == 0 {
        return (Vec::new(), Histogram::default());
    }
    let parts: Vec<(Vec<RowStats>, [u64; HIST_BINS])> = data
        .par_chunks(row_len * ROWS_PER_TASK)
        .map(|chunk| {
            let mut h = [0u64; HIST_BINS];
            let rows = chunk
                .chunks(row_len)
                .map(|r| row_stats(r, k, &mut h))
                .collect();
            (rows, h)
        })
        .collect();
    let mut rows = Vec::with_capacity(data.len() / row_len);
    let mut hist = Histogram::default();
    for (r, h) in parts {
        rows.extend(r);
        hist.add(&Histogram(h));
    }
    (rows, hist)
}
