//! The statistics pass on the GPU (`shaders/stats.wgsl`), driven with the codec runner's
//! device, pipeline cache and staging pool.
//!
//! Per tile: the rows are uploaded once; `stats_moments` gives per-segment sums (one
//! workgroup per segment of [`SEG_PER_INVOCATION`] × [`STATS_WG`] elements, tree-reduced in
//! workgroup memory); the host combines a row's segments with compensated sums and derives the
//! row RMS; `stats_counts` then reads the same resident rows again for the outlier counts and
//! the histogram. Rows wider than a storage binding fall back to [`super::fast`].
//!
//! The error pass (`stats_error`) reads a tile and its round trip side by side (the round trip
//! bound where `stats_counts` takes its thresholds) and gives per-segment error sums, combined
//! per row on the host like the moments.

use super::error::RowError;
use super::{CompensatedF32, HIST_BINS, Histogram, RowStats};
use crate::error::Result;
use crate::gpu::GpuError;
use crate::gpu::codecs::{CodecParams, CodecRunner};
use crate::gpu::kernels::{KernelKey, Layout};
use crate::gpu::staging::Role;
use crate::gpu::wgsl;
use std::num::NonZeroU64;
use std::sync::mpsc;

/// Invocations per workgroup of the statistics kernels (a power of two, at most 256).
pub const STATS_WG: u32 = 256;
/// Elements one invocation sums left to right (at most) before the tree.
pub const SEG_PER_INVOCATION: u32 = 16;
const MOMENTS_WORDS: u64 = 9;
const COUNTS_WORDS: u64 = HIST_BINS as u64 + 1;
const ERROR_WORDS: u64 = 7;

fn binding(b: &wgpu::Buffer, size: u64) -> wgpu::BindingResource<'_> {
    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer: b,
        offset: 0,
        size: NonZeroU64::new(size),
    })
}

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
        return Ok(super::fast::tile_stats(data, row_len, k));
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
pub fn tile_error(
    runner: &CodecRunner,
    src: &[f32],
    decoded: &[f32],
    row_len: usize,
) -> Result<Vec<RowError>> {
    if row_len == 0 || src.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rows_per_call) = rows_per_call(runner, row_len) else {
        return Ok(super::error::tile_error(src, decoded, row_len));
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

struct Dispatch<'a> {
    runner: &'a CodecRunner,
    n_segments: u64,
}

impl Dispatch<'_> {
    fn size(&self) -> Result<(u32, u32), GpuError> {
        let max_x = self
            .runner
            .context()
            .limits
            .max_compute_workgroups_per_dimension as u64;
        let n = self.n_segments.max(1);
        if n <= max_x {
            return Ok((n as u32, 1));
        }
        let y = n.div_ceil(max_x);
        if y > max_x {
            return Err(GpuError::Wgpu {
                context: "planning a stats dispatch".into(),
                message: format!("{n} workgroups"),
            });
        }
        Ok((n.div_ceil(y) as u32, y as u32))
    }

    /// Runs `entry` over the resident tile and returns `words` u32 per segment.
    fn run(
        &self,
        entry: &'static str,
        src: &wgpu::Buffer,
        src_size: u64,
        params: &CodecParams,
        weights: Option<&[f32]>,
        words: u64,
    ) -> Result<Vec<u32>, GpuError> {
        let r = self.runner;
        let ctx = r.context();
        let device = &ctx.device;
        let key = KernelKey {
            shader: wgsl::STATS,
            entry,
            workgroup_size: STATS_WG,
            layout: Layout::Codec,
        };
        let label = key.to_string();
        let pipeline = r.kernels().pipeline(key)?;
        let out_bytes = self.n_segments * words * 4;
        let uniform = r.pool().acquire(Role::Uniform, 256)?;
        ctx.queue
            .write_buffer(uniform.buffer(), 0, bytemuck::bytes_of(params));
        let w_src: Vec<f32> = weights.map(<[f32]>::to_vec).unwrap_or_else(|| vec![0.0; 4]);
        let w_bytes = (w_src.len() as u64 * 4).max(16);
        let w_buf = r.pool().acquire(Role::Storage, w_bytes)?;
        ctx.queue
            .write_buffer(w_buf.buffer(), 0, bytemuck::cast_slice(&w_src));
        let d_buf = r.pool().acquire(Role::Storage, out_bytes)?;
        let readback = r.pool().acquire(Role::Readback, out_bytes)?;
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(&label),
            layout: r.kernels().bind_group_layout(Layout::Codec),
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: binding(uniform.buffer(), std::mem::size_of::<CodecParams>() as u64),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: binding(src, src_size),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: binding(d_buf.buffer(), out_bytes),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: binding(w_buf.buffer(), w_bytes),
                },
            ],
        });
        let (x, y) = self.size()?;
        let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some(&label),
        });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(&label),
                timestamp_writes: None,
            });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(x, y, 1);
        }
        enc.copy_buffer_to_buffer(d_buf.buffer(), 0, readback.buffer(), 0, out_bytes);
        ctx.queue.submit([enc.finish()]);
        let slice = readback.buffer().slice(0..out_bytes);
        let (tx, rx) = mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |res| {
            let _ = tx.send(res.map_err(|e| e.to_string()));
        });
        let start = std::time::Instant::now();
        loop {
            ctx.wait(&format!("{label}: reading back"))?;
            match rx.recv_timeout(std::time::Duration::from_millis(5)) {
                Ok(Ok(())) => break,
                Ok(Err(message)) => {
                    return Err(GpuError::Map {
                        what: "readback",
                        message,
                    });
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(GpuError::Map {
                        what: "readback",
                        message: "callback dropped".into(),
                    });
                }
                Err(mpsc::RecvTimeoutError::Timeout) if start.elapsed() > ctx.wait_timeout() => {
                    return Err(GpuError::Timeout {
                        what: format!("{label}: reading back"),
                        secs: ctx.wait_timeout().as_secs(),
                    });
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
        let out = {
            let view = slice.get_mapped_range().map_err(|e| GpuError::Map {
                what: "readback",
                message: e.to_string(),
            })?;
            bytemuck::cast_slice::<u8, u32>(&view).to_vec()
        };
        readback.buffer().unmap();
        Ok(out)
    }
}

/// A tile of rows uploaded once, cut into segments of `STATS_WG * SEG_PER_INVOCATION`.
struct Resident<'a> {
    src: crate::gpu::staging::Lease<'a>,
    size: u64,
    params: CodecParams,
    segs_per_row: usize,
    dispatch: Dispatch<'a>,
}

fn upload<'a>(runner: &'a CodecRunner, data: &[f32], row_len: usize) -> Result<Resident<'a>> {
    let n_rows = data.len() / row_len;
    let seg_len = (STATS_WG * SEG_PER_INVOCATION) as usize;
    let segs_per_row = row_len.div_ceil(seg_len);
    let n_segments = (n_rows * segs_per_row) as u64;
    let size = data.len() as u64 * 4;
    let src = runner.pool().acquire(Role::Storage, size)?;
    runner
        .context()
        .queue
        .write_buffer(src.buffer(), 0, bytemuck::cast_slice(data));
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
        src,
        size,
        params,
        segs_per_row,
        dispatch: Dispatch { runner, n_segments },
    })
}

impl Resident<'_> {
    /// Runs `entry` over the tile: `words` u32 per segment.
    fn run(&self, entry: &'static str, side: Option<&[f32]>, words: u64) -> Result<Vec<u32>> {
        Ok(self.dispatch.run(
            entry,
            self.src.buffer(),
            self.size,
            &self.params,
            side,
            words,
        )?)
    }
}

fn error_sub_tile(
    runner: &CodecRunner,
    src: &[f32],
    decoded: &[f32],
    row_len: usize,
) -> Result<Vec<RowError>> {
    let t = upload(runner, src, row_len)?;
    let e = t.run("stats_error", Some(decoded), ERROR_WORDS)?;
    let rows = e
        .chunks_exact(ERROR_WORDS as usize * t.segs_per_row)
        .map(|segs| {
            let mut sums = [CompensatedF32::default(); 4];
            let mut r = RowError::default();
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
