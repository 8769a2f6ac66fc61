//! The statistics kernels (`shaders/stats.wgsl`), dispatched through the one dispatch path of
//! [`super::dispatch`] with the codec runner's device, pipeline cache and staging pool. CPU
//! twins: `measure::moments::tile_stats` and `measure::fidelity::tile_fidelity`.
//!
//! Per tile: the rows are uploaded once; `stats_moments` gives per-segment sums (one
//! workgroup per segment of [`SEG_PER_INVOCATION`] × [`STATS_WG`] elements, tree-reduced in
//! workgroup memory); the host combines a row's segments with compensated sums and derives the
//! row RMS; `stats_counts` then reads the same resident rows again for the outlier counts and
//! the histogram. Rows wider than a storage binding fall back to `measure::moments`.
//!
//! The error pass (`stats_error`) reads a tile and its round trip side by side (the round trip
//! bound where `stats_counts` takes its thresholds) and gives per-segment error sums, combined
//! per row on the host like the moments.

use super::GpuError;
use super::codecs::CodecRunner;
use super::dispatch::{CodecParams, Dispatch, Input};
use super::kernels::{KernelKey, Layout};
use super::staging::Lease;
use super::table::Variant;
use super::wgsl;
use crate::error::Result;
use crate::measure::fidelity::RowFidelity;
use crate::measure::{CompensatedF32, HIST_BINS, Histogram, RowStats};

/// Invocations per workgroup of the statistics kernels (a power of two, at most 256).
pub const STATS_WG: u32 = 256;
/// Elements one invocation sums left to right (at most) before the tree.
pub const SEG_PER_INVOCATION: u32 = 16;
const MOMENTS_WORDS: u64 = 9;
const COUNTS_WORDS: u64 = HIST_BINS as u64 + 1;
const ERROR_WORDS: u64 = 7;

/// Rows per GPU call for rows of `row_len` f32, or `None` when a row is too wide for a binding.
fn rows_per_call(runner: &CodecRunner, row_len: usize) -> Option<usize> {
    let row_bytes = row_len as u64 * 4;
    let budget = (runner.pool().budget() / 4)
        .min(runner.context().max_binding())
        .min(1 << 30);
    if row_bytes > budget || row_len > u32::MAX as usize / 2 {
        return None;
    }
    Some(((budget / row_bytes) as usize).max(1))
}

/// Per-row statistics and the histogram of a tile of rows, on the GPU.
pub fn tile_stats(
    runner: &CodecRunner,
    data: &[f32],
    row_len: usize,
    k: f32,
) -> Result<(Vec<RowStats>, Histogram)> {
    if row_len == 0 || data.is_empty() {
        return Ok((Vec::new(), Histogram::default()));
    }
    let Some(rows_per_call) = rows_per_call(runner, row_len) else {
        return Ok(crate::measure::moments::tile_stats(data, row_len, k));
    };
    let mut rows = Vec::with_capacity(data.len() / row_len);
    let mut hist = Histogram::default();
    for part in data.chunks(rows_per_call * row_len) {
        let (r, h) = sub_tile(runner, part, row_len, k)?;
        rows.extend(r);
        hist.add(&h);
    }
    Ok((rows, hist))
}

/// Per-row error sums of `src` against its round trip `decoded` (same length), on the GPU.
pub fn tile_fidelity(
    runner: &CodecRunner,
    src: &[f32],
    decoded: &[f32],
    row_len: usize,
) -> Result<Vec<RowFidelity>> {
    if row_len == 0 || src.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rows_per_call) = rows_per_call(runner, row_len) else {
        return Ok(crate::measure::fidelity::tile_fidelity(
            src, decoded, row_len,
        ));
    };
    let mut rows = Vec::with_capacity(src.len() / row_len);
    for (x, y) in src
        .chunks(rows_per_call * row_len)
        .zip(decoded.chunks(rows_per_call * row_len))
    {
        rows.extend(error_sub_tile(runner, x, y, row_len)?);
    }
    Ok(rows)
}

/// A tile of rows uploaded once, cut into segments of `STATS_WG * SEG_PER_INVOCATION`; each
/// kernel reads it where it lies.
struct Resident<'a> {
    runner: &'a CodecRunner,
    src: Lease<'a>,
    size: u64,
    params: CodecParams,
    segs_per_row: usize,
    n_segments: u64,
}

fn upload<'a>(runner: &'a CodecRunner, data: &[f32], row_len: usize) -> Result<Resident<'a>> {
    let n_rows = data.len() / row_len;
    let seg_len = (STATS_WG * SEG_PER_INVOCATION) as usize;
    let segs_per_row = row_len.div_ceil(seg_len);
    let n_segments = (n_rows * segs_per_row) as u64;
    let src = runner
        .dispatcher()
        .upload(bytemuck::cast_slice(data))
        .map_err(crate::Error::from)?;
    let params = CodecParams {
        n_blocks: n_segments as u32,
        n_groups: seg_len as u32,
        row_len: row_len as u32,
        blocks_per_row: segs_per_row as u32,
        src_offset: 0,
        dst_offset: 0,
        has_weights: 0,
        _pad: 0,
    };
    Ok(Resident {
        runner,
        src,
        size: data.len() as u64 * 4,
        params,
        segs_per_row,
        n_segments,
    })
}

impl Resident<'_> {
    /// Runs `entry` over the tile (one workgroup per segment): `words` u32 per segment.
    fn run(&self, entry: &'static str, side: Option<&[f32]>, words: u64) -> Result<Vec<u32>> {
        let key = KernelKey {
            shader: wgsl::STATS,
            entry,
            workgroup_size: STATS_WG,
            variant: Variant::default(),
            layout: Layout::Codec,
        };
        let d = Dispatch {
            key,
            params: self.params,
            src: Input::Resident(self.src.buffer(), self.size),
            side: side.map(|s| Input::Bytes(bytemuck::cast_slice(s))),
            out_bytes: self.n_segments * words * 4,
            invocations: self.n_segments * STATS_WG as u64,
            poison: false,
        };
        let run = || -> std::result::Result<Vec<u32>, GpuError> {
            let mut out = vec![0u32; (self.n_segments * words) as usize];
            self.runner
                .dispatcher()
                .submit(&d)?
                .read_into(bytemuck::cast_slice_mut(&mut out))?;
            Ok(out)
        };
        Ok(run()?)
    }
}

fn error_sub_tile(
    runner: &CodecRunner,
    src: &[f32],
    decoded: &[f32],
    row_len: usize,
) -> Result<Vec<RowFidelity>> {
    let t = upload(runner, src, row_len)?;
    let e = t.run("stats_error", Some(decoded), ERROR_WORDS)?;
    let rows = e
        .chunks_exact(ERROR_WORDS as usize * t.segs_per_row)
        .map(|segs| {
            let mut sums = [CompensatedF32::default(); 4];
            let mut r = RowFidelity::default();
            for w in segs.chunks_exact(ERROR_WORDS as usize) {
                for (acc, &bits) in sums.iter_mut().zip(&w[..4]) {
                    acc.add(f32::from_bits(bits));
                }
                r.max_abs = r.max_abs.max(f32::from_bits(w[4]));
                r.n += w[5] as u64;
                r.poisoned += w[6] as u64;
            }
            [r.sse, r.sxx, r.syy, r.sxy] = sums.map(|c| c.value() as f32);
            r
        })
        .collect();
    Ok(rows)
}

fn sub_tile(
    runner: &CodecRunner,
    data: &[f32],
    row_len: usize,
    k: f32,
) -> Result<(Vec<RowStats>, Histogram)> {
    let t = upload(runner, data, row_len)?;
    let n_rows = data.len() / row_len;
    let segs_per_row = t.segs_per_row;
    let m = t.run("stats_moments", None, MOMENTS_WORDS)?;

    let mut rows = Vec::with_capacity(n_rows);
    let mut rms_thr = Vec::with_capacity(2 * n_rows);
    for segs in m.chunks_exact(MOMENTS_WORDS as usize * segs_per_row) {
        let (mut sum, mut sabs, mut sq) = (
            CompensatedF32::default(),
            CompensatedF32::default(),
            CompensatedF32::default(),
        );
        let mut s = RowStats {
            n: row_len as u64,
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
            ..Default::default()
        };
        for w in segs.chunks_exact(MOMENTS_WORDS as usize) {
            let f = |i: usize| f32::from_bits(w[i]);
            sum.add(f(0));
            sabs.add(f(1));
            sq.add(f(2));
            if w[5] > 0 {
                s.min = s.min.min(f(3));
                s.max = s.max.max(f(4));
            }
            s.finite += w[5] as u64;
            s.zeros += w[6] as u64;
            s.nan += w[7] as u64;
            s.inf += w[8] as u64;
        }
        s.sum = sum.value() as f32;
        s.sum_abs = sabs.value() as f32;
        s.sum_sq = sq.value() as f32;
        let rms = s.rms_f32();
        rms_thr.push(rms);
        rms_thr.push(k * rms);
        rows.push(s);
    }
    let c = t.run("stats_counts", Some(&rms_thr), COUNTS_WORDS)?;
    let mut hist = Histogram::default();
    for (s, segs) in rows
        .iter_mut()
        .zip(c.chunks_exact(COUNTS_WORDS as usize * segs_per_row))
    {
        for w in segs.chunks_exact(COUNTS_WORDS as usize) {
            for (h, &v) in hist.0.iter_mut().zip(&w[..HIST_BINS]) {
                *h += v as u64;
            }
            s.outliers += w[HIST_BINS] as u64;
        }
    }
    Ok((rows, hist))
}
