//! Per-channel weight statistics and quantization error.
//!
//! A tensor is a stack of rows (ggml `ne0` elements each; one row is one output channel of a
//! weight matrix). The statistics are produced one tile of whole rows at a time, so a model is
//! streamed and never held whole:
//!
//! - per row ([`RowStats`]) and per tensor ([`TensorStats`]): element count, mean, absmean,
//!   RMS, min, max, absmax, count of zeros (`+0` and `-0`), count of outliers, NaN and Inf
//!   counts;
//! - per tensor, a [`Histogram`] of values in units of their row's RMS.
//!
//! Definitions (shared by the f64 reference, the f32 CPU path and `shaders/stats.wgsl`):
//!
//! - Moments (sum, sum of |w|, sum of w²) and min/max are over the *finite* elements; NaN and
//!   ±Inf are counted and otherwise skipped, so one bad weight does not hide the rest.
//!   `mean = Σw / finite`, `absmean = Σ|w| / finite`, `rms = sqrt(Σw² / finite)`.
//! - Outliers: a finite `w` with `|w| > k · rms_row`, where `rms_row` is the RMS of **its own
//!   row** (default `k` = [`DEFAULT_OUTLIER_K`]). Per row because a row is one output channel
//!   and the unit a quantizer's scales adapt to; it also keeps the pass one-tile-local (a
//!   per-tensor RMS is only known after the last tile). The tensor's outlier count is the sum
//!   of its rows' counts.
//! - Histogram: [`HIST_BINS`] fixed bins over `x = w / rms_row` (finite `w` only; `x = 0` in a
//!   row whose RMS is 0): bin 0 holds `x < -8`, bins `1..=64` are `[-8 + (i-1)/4, -8 + i/4)`
//!   (width 0.25), bin 65 holds `x >= 8`. Fixed in units of the row scale, so tensors of any
//!   magnitude share one set of bins, and the tails show how far outliers stretch a scale.
//!
//! Paths: [`reference`] (f64, the spec), [`moments`] (f32, pairwise sums inside a row and
//! compensated (Neumaier) sums across rows: the mean of a 100M-element tensor agrees with f64
//! to ~1e-7 relative) and, with the `gpu` feature, `shaders/stats.wgsl`. [`fidelity`] holds the
//! round-trip fidelity measurements (error of a quantized copy against its source). The
//! per-tensor and per-layer reports and the plot are in `crate::stats`, above the engine.

pub mod damage;
pub mod fidelity;
pub mod moments;
pub mod participation;
pub mod reference;

/// Default outlier threshold: `|w| > 6 · rms_row`.
pub const DEFAULT_OUTLIER_K: f32 = 6.0;

/// Histogram bins: two tails and 64 bins of width 0.25 over `[-8, 8)` in units of row RMS.
pub const HIST_BINS: usize = 66;
/// Lower edge of the first inner bin, in units of row RMS.
pub const HIST_LO: f32 = -8.0;
/// Bins per unit of row RMS.
pub const HIST_PER_UNIT: f32 = 4.0;

/// The histogram bin of `x = w / rms_row` (finite `x`).
#[inline]
pub fn hist_bin(x: f32) -> usize {
    let t = ((x - HIST_LO) * HIST_PER_UNIT).floor();
    if t < 0.0 {
        0
    } else if t >= (HIST_BINS - 2) as f32 {
        HIST_BINS - 1
    } else {
        t as usize + 1
    }
}

/// The value range `[lo, hi)` of bin `i` (the tails are open-ended: ±infinity).
pub fn hist_bin_range(i: usize) -> (f32, f32) {
    let w = 1.0 / HIST_PER_UNIT;
    match i {
        0 => (f32::NEG_INFINITY, HIST_LO),
        i if i >= HIST_BINS - 1 => (-HIST_LO, f32::INFINITY),
        i => (HIST_LO + (i - 1) as f32 * w, HIST_LO + i as f32 * w),
    }
}

/// Per-tensor histogram counts (see the module docs for the bins).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Histogram(pub [u64; HIST_BINS]);

impl Default for Histogram {
    fn default() -> Self {
        Histogram([0; HIST_BINS])
    }
}

impl Histogram {
    pub fn add(&mut self, other: &Histogram) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a += b;
        }
    }
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

/// Statistics of one row (one output channel), as the f32 paths produce them.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RowStats {
    /// Elements in the row.
    pub n: u64,
    /// Finite elements (the moments' denominator).
    pub finite: u64,
    pub sum: f32,
    pub sum_abs: f32,
    pub sum_sq: f32,
    /// Over finite elements; `+inf` / `-inf` when the row has none.
    pub min: f32,
    pub max: f32,
    pub zeros: u64,
    pub outliers: u64,
    pub nan: u64,
    pub inf: u64,
}

impl RowStats {
    pub fn mean(&self) -> f64 {
        ratio(self.sum as f64, self.finite)
    }
    pub fn absmean(&self) -> f64 {
        ratio(self.sum_abs as f64, self.finite)
    }
    pub fn rms(&self) -> f64 {
        ratio(self.sum_sq as f64, self.finite).sqrt()
    }
    pub fn absmax(&self) -> f64 {
        absmax(self.min as f64, self.max as f64)
    }
    /// The RMS the outlier test and histogram use, in f32 (0 for a row with no finite value).
    pub fn rms_f32(&self) -> f32 {
        if self.finite == 0 {
            0.0
        } else {
            (self.sum_sq / self.finite as f32).sqrt()
        }
    }
}

fn ratio(s: f64, n: u64) -> f64 {
    if n == 0 { f64::NAN } else { s / n as f64 }
}

fn absmax(min: f64, max: f64) -> f64 {
    if min > max {
        f64::NAN
    } else {
        min.abs().max(max.abs())
    }
}

/// A row holding NaN or Inf values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NonFiniteRow {
    pub row: u64,
    pub nan: u64,
    pub inf: u64,
}

/// At most this many non-finite rows are listed per tensor (all are counted).
pub const MAX_NONFINITE_ROWS: usize = 1000;

/// A Neumaier-compensated f32 sum: the error stays at a few ULP of the result however many
/// terms are added (Rust does not reassociate float arithmetic, so the compensation is kept).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CompensatedF32 {
    pub s: f32,
    pub c: f32,
}

impl CompensatedF32 {
    #[inline]
    pub fn add(&mut self, x: f32) {
        let t = self.s + x;
        if self.s.abs() >= x.abs() {
            self.c += (self.s - t) + x;
        } else {
            self.c += (x - t) + self.s;
        }
        self.s = t;
    }
    /// The compensated total.
    pub fn value(&self) -> f64 {
        self.s as f64 + self.c as f64
    }
}

/// Statistics of a whole tensor, accumulated tile by tile from [`RowStats`].
#[derive(Clone, Debug, PartialEq)]
pub struct TensorStats {
    pub rows: u64,
    pub n: u64,
    pub finite: u64,
    pub sum: CompensatedF32,
    pub sum_abs: CompensatedF32,
    pub sum_sq: CompensatedF32,
    pub min: f32,
    pub max: f32,
    pub zeros: u64,
    pub outliers: u64,
    pub nan: u64,
    pub inf: u64,
    pub hist: Histogram,
    /// Rows with NaN or Inf (the first [`MAX_NONFINITE_ROWS`]).
    pub nonfinite_rows: Vec<NonFiniteRow>,
    /// Rows with NaN or Inf, all of them.
    pub nonfinite_row_count: u64,
    /// The row with the largest `absmax / rms` (the peakiest channel) and that ratio.
    pub peak_row: Option<(u64, f64)>,
}

impl Default for TensorStats {
    fn default() -> Self {
        TensorStats {
            rows: 0,
            n: 0,
            finite: 0,
            sum: CompensatedF32::default(),
            sum_abs: CompensatedF32::default(),
            sum_sq: CompensatedF32::default(),
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            zeros: 0,
            outliers: 0,
            nan: 0,
            inf: 0,
            hist: Histogram::default(),
            nonfinite_rows: Vec::new(),
            nonfinite_row_count: 0,
            peak_row: None,
        }
    }
}

impl TensorStats {
    /// Adds the rows of one tile; `first_row` is the tensor row index of `rows[0]`.
    pub fn add_tile(&mut self, first_row: u64, rows: &[RowStats], hist: &Histogram) {
        for (i, r) in rows.iter().enumerate() {
            let row = first_row + i as u64;
            self.rows += 1;
            self.n += r.n;
            self.finite += r.finite;
            self.sum.add(r.sum);
            self.sum_abs.add(r.sum_abs);
            self.sum_sq.add(r.sum_sq);
            self.min = self.min.min(r.min);
            self.max = self.max.max(r.max);
            self.zeros += r.zeros;
            self.outliers += r.outliers;
            self.nan += r.nan;
            self.inf += r.inf;
            if r.nan + r.inf > 0 {
                self.nonfinite_row_count += 1;
                if self.nonfinite_rows.len() < MAX_NONFINITE_ROWS {
                    self.nonfinite_rows.push(NonFiniteRow {
                        row,
                        nan: r.nan,
                        inf: r.inf,
                    });
                }
            }
            let rms = r.rms();
            if rms > 0.0 {
                let peak = r.absmax() / rms;
                if self.peak_row.is_none_or(|(_, p)| peak > p) {
                    self.peak_row = Some((row, peak));
                }
            }
        }
        self.hist.add(hist);
    }

    pub fn mean(&self) -> f64 {
        ratio(self.sum.value(), self.finite)
    }
    pub fn absmean(&self) -> f64 {
        ratio(self.sum_abs.value(), self.finite)
    }
    pub fn rms(&self) -> f64 {
        ratio(self.sum_sq.value(), self.finite).sqrt()
    }
    pub fn absmax(&self) -> f64 {
        absmax(self.min as f64, self.max as f64)
    }
    /// `absmax / absmean`: how far the largest weight sits above the typical one.
    pub fn peak_ratio(&self) -> f64 {
        self.absmax() / self.absmean()
    }
}
