//! The GPU codec runner: streams rows through the kernels of [`super::table`] in tiles of
//! whole rows, every dispatch through [`super::dispatch`]. Its CPU twins are
//! `codec::encode_rows` / `decode_rows`; the bytes must agree (tests/gpu_*.rs).
//!
//! In flight during a call (`tiles_in_flight` 2, the default): tile k+1 is uploaded
//! (`Queue::write_buffer` into its own pooled source buffer), dispatched and its output copied
//! into its own pooled readback buffer, all in one submission, before tile k is waited for and
//! copied out; so the device computes k+1 while the host copies k's output and then k+2's
//! input. Each of the two tiles holds its own uniform, source, output and readback buffers
//! (double-buffered uploads and readbacks); a side input shared by every tile (importance
//! weights, a lookup table, a scale) is uploaded once per call. Pipelines, buffers and bind
//! groups are reused from call to call (`gpu::dispatch`). The engine may run the CPU codec on
//! other rows of the same call meanwhile (`engine::split`).

use super::GpuError;
use super::context::GpuContext;
use super::dispatch::{CodecParams, Dispatch, Dispatcher, InFlight, Input, round4};
use super::kernels::{KernelCache, KernelKey, Layout};
use super::lookup;
use super::staging::StagingPool;
use super::table::{GpuCodec, Scale, Variant, Weights, gpu_codec};
use crate::codec::shape;
use crate::ggml_type::GgmlType;
use std::ops::Range;
use std::sync::{Arc, Mutex};

pub use super::table::{can_decode, can_encode, can_encode_with};

/// Largest tile binding: word indices must fit u32 and leave room.
const MAX_TILE_BYTES: u64 = 1 << 31;

/// Tuning of a [`CodecRunner`].
#[derive(Clone, Copy, Debug)]
pub struct RunnerOptions {
    /// Staging pool budget in bytes (env `GPUQ_GPU_BUDGET_MB`, default 512 MiB).
    pub budget: u64,
    /// Invocations per workgroup (the `WG` override).
    pub workgroup_size: u32,
    /// Cap on one tile's source or destination bytes, below the device's binding limit.
    pub max_tile_bytes: Option<u64>,
    /// Cap on workgroups along x, below the device's limit (a smaller one forces 2-D dispatch).
    pub max_workgroups_x: Option<u32>,
    /// Fill each tile's output buffer with 0xa5 bytes before the dispatch (tests: an output
    /// word the kernel forgets to write then shows up instead of stale or zero data).
    pub poison_output: bool,
    /// Tiles submitted before the oldest is read back: 2 overlaps the host's copies with the
    /// device's work; 1 waits for each tile (env `GPUQ_GPU_TILES_IN_FLIGHT`, default 2).
    pub tiles_in_flight: usize,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        let mb = std::env::var("GPUQ_GPU_BUDGET_MB")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&v| v >= 16)
            .unwrap_or(512);
        RunnerOptions {
            budget: mb << 20,
            workgroup_size: 64,
            max_tile_bytes: None,
            max_workgroups_x: None,
            poison_output: false,
            tiles_in_flight: std::env::var("GPUQ_GPU_TILES_IN_FLIGHT")
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .filter(|&n| n == 1 || n == 2)
                .unwrap_or(2),
        }
    }
}

/// What one call did (for tests and benchmarks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    pub tiles: u64,
    pub dispatches_2d: u64,
    pub rows_per_tile: u64,
}

/// Runs kernels on one device in tiles: the dispatcher (pipeline cache, staging pool) and the
/// tuning.
pub struct CodecRunner {
    dispatcher: Dispatcher,
    opts: RunnerOptions,
    /// One call at a time on the device (the pool is shared); the statistics of the last one.
    busy: Mutex<RunStats>,
}

/// The binding-3 input of a tiled kernel run.
#[derive(Clone, Copy)]
pub(crate) enum Side<'a> {
    None,
    /// The same words for every tile (importance weights of one row, a tensor scale).
    Shared(&'a [u8]),
    /// `bytes_per_row` bytes per row of the call (per-row scales); each tile gets its rows'.
    PerRow(&'a [u8], usize),
}

/// One kernel run over tiles of whole rows: `n_rows` rows of `src_row` bytes in, `dst_row`
/// bytes out each.
pub(crate) struct TileJob<'a> {
    pub key: KernelKey,
    /// The type named in errors; its blocks are `block_elems` elements.
    pub ty: GgmlType,
    pub block_elems: u64,
    pub blocks_per_invocation: u64,
    pub row_len: usize,
    pub n_rows: usize,
    pub src: &'a [u8],
    pub src_row: u64,
    pub dst_row: u64,
    pub side: Side<'a>,
    /// `params.has_weights`.
    pub has_weights: bool,
}

impl CodecRunner {
    pub fn new(ctx: Arc<GpuContext>, opts: RunnerOptions) -> Self {
        CodecRunner {
            dispatcher: Dispatcher::new(ctx, opts.budget, opts.max_workgroups_x),
            opts,
            busy: Mutex::new(RunStats::default()),
        }
    }

    pub fn context(&self) -> &Arc<GpuContext> {
        self.dispatcher.context()
    }

    pub fn pool(&self) -> &StagingPool {
        self.dispatcher.pool()
    }

    pub fn kernels(&self) -> &KernelCache {
        self.dispatcher.kernels()
    }

    /// Bind groups created so far (a warm stream of tiles of one shape creates none).
    pub fn bind_groups_created(&self) -> u64 {
        self.dispatcher.bind_groups_created()
    }

    pub(crate) fn dispatcher(&self) -> &Dispatcher {
        &self.dispatcher
    }

    /// The tuning this runner was made with.
    pub fn options(&self) -> &RunnerOptions {
        &self.opts
    }

    /// Statistics of the last call.
    pub fn last_run(&self) -> RunStats {
        *self.busy.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The key of `entry` of `shader` with `variant`, at this runner's workgroup size.
    pub(crate) fn key(&self, codec: &GpuCodec, entry: &'static str, variant: Variant) -> KernelKey {
        KernelKey {
            shader: codec.shader,
            entry,
            workgroup_size: self.opts.workgroup_size,
            variant,
            layout: Layout::Codec,
        }
    }

    /// Encodes rows of `row_len` f32 into `dst` (bytes of `ty`) with the type's GPU kernel.
    /// Must equal `codec::encode_rows` byte for byte.
    pub fn encode(
        &self,
        ty: GgmlType,
        src: &[f32],
        row_len: usize,
        weights: Option<&[f32]>,
        dst: &mut [u8],
    ) -> crate::Result<()> {
        let no_kernel = |direction| GpuError::NoKernel { ty, direction };
        let codec = gpu_codec(ty)
            .filter(|c| c.scale == Scale::InBlocks)
            .ok_or(no_kernel("encode"))?;
        let entry = codec.encode.ok_or(no_kernel("encode"))?;
        let rows = shape::check(ty, row_len, src.len(), dst.len())?;
        shape::check_weights(ty, row_len, weights)?;
        if weights.is_some() && codec.encode_weights == Weights::Ignored {
            return Err(no_kernel("weighted (importance) encode").into());
        }
        // binding 3: the weights, then the row's lookup table (gpu::table)
        let table = lookup::words(codec.lookup);
        let side_words: Vec<u8>;
        let side = match (weights, table.is_empty()) {
            (None, true) => Side::None,
            (Some(w), true) => Side::Shared(bytemuck::cast_slice(w)),
            (None, false) => Side::Shared(bytemuck::cast_slice(table)),
            (Some(w), false) => {
                side_words = [
                    bytemuck::cast_slice::<f32, u8>(w),
                    bytemuck::cast_slice(table),
                ]
                .concat();
                Side::Shared(&side_words)
            }
        };
        let job = TileJob {
            key: self.key(codec, entry, codec.encode_variant()),
            ty,
            block_elems: ty.block_elems(),
            blocks_per_invocation: codec.encode_blocks as u64,
            row_len,
            n_rows: rows.n_rows,
            src: bytemuck::cast_slice(src),
            src_row: row_len as u64 * 4,
            dst_row: rows.row_bytes as u64,
            side,
            has_weights: weights.is_some(),
        };
        self.run_tiles(&job, dst)?;
        Ok(())
    }

    /// Decodes rows of `row_len` elements of `ty` into f32 with the type's GPU kernel.
    /// Must equal `codec::decode_rows` bit for bit.
    pub fn decode(
        &self,
        ty: GgmlType,
        src: &[u8],
        row_len: usize,
        dst: &mut [f32],
    ) -> crate::Result<()> {
        let no_kernel = GpuError::NoKernel {
            ty,
            direction: "decode",
        };
        let codec = gpu_codec(ty)
            .filter(|c| c.scale == Scale::InBlocks)
            .ok_or(no_kernel.clone())?;
        let entry = codec.decode.ok_or(no_kernel)?;
        let rows = shape::check(ty, row_len, dst.len(), src.len())?;
        let table = lookup::words(codec.lookup);
        let job = TileJob {
            key: self.key(codec, entry, codec.decode_variant()),
            ty,
            block_elems: ty.block_elems(),
            blocks_per_invocation: codec.decode_blocks as u64,
            row_len,
            n_rows: rows.n_rows,
            src,
            src_row: rows.row_bytes as u64,
            dst_row: row_len as u64 * 4,
            side: if table.is_empty() {
                Side::None
            } else {
                Side::Shared(bytemuck::cast_slice(table))
            },
            has_weights: false,
        };
        self.run_tiles(&job, bytemuck::cast_slice_mut(dst))?;
        Ok(())
    }

    /// Rows per tile: whole rows whose source and destination each fit one storage binding
    /// (and `max_tile_bytes`), with all buffers of a tile within half the pool budget (two
    /// tiles are in flight).
    pub(crate) fn rows_per_tile(
        &self,
        ty: GgmlType,
        row_len: usize,
        src_row: u64,
        dst_row: u64,
        side_bytes: u64,
    ) -> Result<u64, GpuError> {
        let mut cap = self.context().max_binding().min(MAX_TILE_BYTES);
        if let Some(m) = self.opts.max_tile_bytes {
            cap = cap.min(m);
        }
        let widest = src_row.max(dst_row);
        // 4 bytes of slack for the padding of a tile to whole words.
        let by_binding = cap.saturating_sub(4) / widest;
        if by_binding == 0 {
            return Err(GpuError::RowTooLarge {
                ty,
                row_len,
                bytes: widest,
                limit: cap,
                which: "storage binding size",
            });
        }
        // storage src + storage dst + readback (dst), each possibly rounded up by 1 MiB, plus
        // the side input and the params.
        let overhead = 3 * (1 << 20) + round4(side_bytes) + 512;
        let avail = (self.pool().budget() / 2).saturating_sub(overhead);
        let by_budget = avail / (src_row + 2 * dst_row);
        if by_budget == 0 {
            return Err(GpuError::RowTooLarge {
                ty,
                row_len,
                bytes: src_row + 2 * dst_row + overhead,
                limit: self.pool().budget() / 2,
                which: "half the staging budget (GPUQ_GPU_BUDGET_MB)",
            });
        }
        Ok(by_binding.min(by_budget))
    }

    /// Runs `job` over its rows in tiles, writing `dst` (`n_rows * dst_row` bytes). Tile k+1
    /// is submitted before tile k is read back, so the device works while the host copies.
    pub(crate) fn run_tiles(&self, job: &TileJob<'_>, dst: &mut [u8]) -> Result<(), GpuError> {
        let mut stats = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        *stats = RunStats::default();
        if job.n_rows == 0 {
            return Ok(());
        }
        let side_tile_bytes = |rows: u64| match job.side {
            Side::None => 0,
            Side::Shared(s) => s.len() as u64,
            Side::PerRow(_, per_row) => rows * per_row as u64,
        };
        let blocks_per_row = job.row_len as u64 / job.block_elems;
        let mut rows_per_tile = self.rows_per_tile(
            job.ty,
            job.row_len,
            job.src_row,
            job.dst_row,
            side_tile_bytes(1),
        )?;
        if let Side::PerRow(_, per_row) = job.side {
            // the per-row side input grows with the tile: keep it within the budget too
            let avail = (self.pool().budget() / 2).saturating_sub(3 << 20);
            let per = job.src_row + 2 * job.dst_row + per_row as u64;
            rows_per_tile = rows_per_tile.min((avail / per).max(1));
        }
        stats.rows_per_tile = rows_per_tile;
        // a side input shared by every tile (weights, lookup table, a scale) is uploaded once
        // for the call; per-row side inputs travel with their tile
        let shared_side = match job.side {
            Side::Shared(s) => Some((self.dispatcher.upload(s)?, s.len() as u64)),
            _ => None,
        };
        let mut pending: Option<(InFlight<'_>, Range<usize>)> = None;
        let mut row0 = 0u64;
        while row0 < job.n_rows as u64 {
            let rows = rows_per_tile.min(job.n_rows as u64 - row0);
            let n_blocks = rows * blocks_per_row;
            let n_groups = n_blocks.div_ceil(job.blocks_per_invocation);
            let src =
                &job.src[(row0 * job.src_row) as usize..((row0 + rows) * job.src_row) as usize];
            let side = match (job.side, &shared_side) {
                (_, Some((lease, len))) => Some(Input::Resident(lease.buffer(), *len)),
                (Side::PerRow(s, per_row), None) => Some(Input::Bytes(
                    &s[row0 as usize * per_row..(row0 + rows) as usize * per_row],
                )),
                _ => None,
            };
            let d = Dispatch {
                key: job.key,
                params: CodecParams {
                    n_blocks: n_blocks as u32,
                    n_groups: n_groups as u32,
                    row_len: job.row_len as u32,
                    blocks_per_row: blocks_per_row as u32,
                    src_offset: 0,
                    dst_offset: 0,
                    has_weights: job.has_weights as u32,
                    _pad: 0,
                },
                src: Input::Bytes(src),
                side,
                out_bytes: rows * job.dst_row,
                invocations: n_groups,
                poison: self.opts.poison_output,
            };
            let flight = self.dispatcher.submit(&d)?;
            if flight.two_d {
                stats.dispatches_2d += 1;
            }
            let range = (row0 * job.dst_row) as usize..((row0 + rows) * job.dst_row) as usize;
            if let Some((prev, r)) = pending.replace((flight, range)) {
                prev.read_into(&mut dst[r])?;
            }
            if self.opts.tiles_in_flight < 2 {
                if let Some((only, r)) = pending.take() {
                    only.read_into(&mut dst[r])?;
                }
            }
            stats.tiles += 1;
            row0 += rows;
        }
        if let Some((last, r)) = pending {
            last.read_into(&mut dst[r])?;
        }
        Ok(())
    }
}
