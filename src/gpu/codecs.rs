//! GPU codec kernels: the table that maps a [`GgmlType`] to its WGSL encode/decode entry
//! points, and the runner that streams rows through them in tiles.
//!
//! # Adding a codec kernel
//! Add one [`GpuCodec`] row to [`GPU_CODECS`] (and, for a new shader file, one
//! [`ShaderFile`] constant in `gpu::wgsl` listed in `SHADERS`). The shader (with
//! `common.wgsl` prepended) declares the codec binding layout:
//!
//! ```wgsl
//! @group(0) @binding(0) var<uniform> params: CodecParams;            // see common.wgsl
//! @group(0) @binding(1) var<storage, read> src: array<u32>;
//! @group(0) @binding(2) var<storage, read_write> dst: array<u32>;
//! @group(0) @binding(3) var<storage, read> weights: array<f32>;      // optional
//! ```
//!
//! and entry points `@compute @workgroup_size(WG) fn NAME(@builtin(global_invocation_id) gid:
//! vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>)`. Invocation `i =
//! flat_invocation(gid, nwg)` handles blocks `i*G .. i*G+G` of the tile (G =
//! `blocks_per_invocation`), returns when `i >= params.n_groups`, and skips blocks
//! `>= params.n_blocks`:
//! - encode: `src` holds the tile's f32 elements as bits (`n_blocks * block_elems` words,
//!   starting at `params.src_offset`); the invocation writes the G*block_bytes/4 words
//!   `dst[params.dst_offset + i*G*block_bytes/4 ..]`, zero-filling the bytes of blocks past
//!   `n_blocks`. Block `b` of the tile is block `b % blocks_per_row` of its row, so its
//!   importance weights are `weights[(b % blocks_per_row) * block_elems ..]` when
//!   `params.has_weights == 1` (binding 3 is a 16-byte dummy otherwise).
//! - decode: `src` holds the tile's packed blocks (padded with zero bytes to a whole word);
//!   the invocation writes the f32 bits of its blocks' elements to `dst[params.dst_offset +
//!   b*block_elems ..]`.
//!
//! G must make `G * block_bytes` a multiple of 4 so every output word of an encoder has one
//! writer (F16: G = 2; Q8_0, 34 bytes: G = 2, 17 words; Q4_1, 20 bytes: G = 1). Decoders have
//! their own G (`decode_blocks_per_invocation`; their f32 output never shares a word). A unit
//! test checks the table. Encoders that do not read binding 3 have `encode_weighted: false`
//! and weighted calls for their type go to the CPU codec ([`can_encode_with`]). Rows may hold any whole number of blocks, tiles any number of rows.

use super::GpuError;
use super::context::GpuContext;
use super::kernels::{KernelCache, KernelKey, Layout};
use super::staging::{Role, StagingPool};
use super::wgsl::{self, ShaderFile};
use crate::codec::CodecError;
use crate::ggml_type::GgmlType;
use std::num::NonZeroU64;
use std::sync::{Arc, Mutex, mpsc};

/// One row of the GPU codec table.
#[derive(Clone, Copy, Debug)]
pub struct GpuCodec {
    pub ty: GgmlType,
    /// The shader file holding the entry points.
    pub shader: ShaderFile,
    /// Entry point: f32 rows -> packed blocks.
    pub encode: Option<&'static str>,
    /// Whether the encode kernel honours per-column importance weights (binding 3,
    /// `params.has_weights`). When false, a weighted (imatrix) encode runs on the CPU codec:
    /// the routing is explicit here, never a silent drop of the weights.
    pub encode_weighted: bool,
    /// Entry point: packed blocks -> f32.
    pub decode: Option<&'static str>,
    /// Blocks one encode invocation handles (G); `G * block_bytes % 4 == 0`.
    pub blocks_per_invocation: u32,
    /// Blocks one decode invocation handles (f32 output words never share a writer).
    pub decode_blocks_per_invocation: u32,
    /// The kernels need the tensor's scale in binding 3 (I2_S: 1/s to encode, s to decode),
    /// so they are reached only through their own calls (`CodecRunner::encode_i2s` /
    /// `decode_i2s`), never through [`CodecRunner::encode`] / [`CodecRunner::decode`].
    pub tensor_scale: bool,
}

const fn row(
    ty: GgmlType,
    shader: ShaderFile,
    encode: &'static str,
    encode_weighted: bool,
    decode: &'static str,
    blocks_per_invocation: u32,
    decode_blocks_per_invocation: u32,
) -> GpuCodec {
    GpuCodec {
        ty,
        shader,
        encode: Some(encode),
        encode_weighted,
        decode: Some(decode),
        blocks_per_invocation,
        decode_blocks_per_invocation,
        tensor_scale: false,
    }
}

/// Every GPU codec kernel; the single place that lists them.
pub const GPU_CODECS: &[GpuCodec] = &[
    row(
        GgmlType::F16,
        wgsl::FLOAT,
        "encode_f16",
        false,
        "decode_f16",
        2,
        2,
    ),
    row(
        GgmlType::BF16,
        wgsl::FLOAT,
        "encode_bf16",
        false,
        "decode_bf16",
        2,
        2,
    ),
    // legacy.wgsl: the `_ref` encoders only (weighted `_impl` encodes go to the CPU codec).
    row(
        GgmlType::Q4_0,
        wgsl::LEGACY,
        "encode_q4_0",
        false,
        "decode_q4_0",
        2,
        1,
    ),
    row(
        GgmlType::Q4_1,
        wgsl::LEGACY,
        "encode_q4_1",
        false,
        "decode_q4_1",
        1,
        1,
    ),
    row(
        GgmlType::Q5_0,
        wgsl::LEGACY,
        "encode_q5_0",
        false,
        "decode_q5_0",
        2,
        1,
    ),
    row(
        GgmlType::Q5_1,
        wgsl::LEGACY,
        "encode_q5_1",
        false,
        "decode_q5_1",
        1,
        1,
    ),
    row(
        GgmlType::Q8_0,
        wgsl::LEGACY,
        "encode_q8_0",
        false,
        "decode_q8_0",
        2,
        1,
    ),
    // kquants.wgsl: `quantize_row_qX_K_ref` unweighted, `quantize_row_qX_K_impl` with
    // importance weights, all five. Q6_K (210 bytes) and Q3_K (110) two blocks per encode
    // invocation, Q2_K (84), Q4_K (144) and Q5_K (176) one.
    row(
        GgmlType::Q4_K,
        wgsl::KQUANTS,
        "encode_q4_k",
        true,
        "decode_q4_k",
        1,
        1,
    ),
    row(
        GgmlType::Q5_K,
        wgsl::KQUANTS,
        "encode_q5_k",
        true,
        "decode_q5_k",
        1,
        1,
    ),
    row(
        GgmlType::Q6_K,
        wgsl::KQUANTS,
        "encode_q6_k",
        true,
        "decode_q6_k",
        2,
        1,
    ),
    row(
        GgmlType::Q2_K,
        wgsl::KQUANTS,
        "encode_q2_k",
        true,
        "decode_q2_k",
        1,
        1,
    ),
    row(
        GgmlType::Q3_K,
        wgsl::KQUANTS,
        "encode_q3_k",
        true,
        "decode_q3_k",
        2,
        1,
    ),
    // ternary.wgsl: llama.cpp's block-absmax encoders, which take no weights (ggml ignores them).
    row(
        GgmlType::TQ1_0,
        wgsl::TERNARY,
        "encode_tq1_0",
        false,
        "decode_tq1_0",
        2,
        2,
    ),
    // ternary.wgsl: llama.cpp's block-absmax encoders, which take no weights (ggml ignores them).
    row(
        GgmlType::TQ2_0,
        wgsl::TERNARY,
        "encode_tq2_0",
        false,
        "decode_tq2_0",
        2,
        2,
    ),
    // ternary.wgsl: bitnet.cpp's I2_S, one 128-element block (32 bytes) per invocation. The
    // encoder is BitNet's absmean ternarization with the tensor's 1/s, the decoder takes the
    // tensor's scale; both come in binding 3 (`tensor_scale`), so only
    // `CodecRunner::encode_i2s` / `decode_i2s` (gpu::ternary) run them.
    GpuCodec {
        ty: GgmlType::I2_S,
        shader: wgsl::TERNARY,
        encode: Some("absmean_encode_i2_s"),
        encode_weighted: false,
        decode: Some("decode_i2_s"),
        blocks_per_invocation: 1,
        decode_blocks_per_invocation: 1,
        tensor_scale: true,
    },
];

pub fn gpu_codec(ty: GgmlType) -> Option<&'static GpuCodec> {
    GPU_CODECS.iter().find(|c| c.ty == ty)
}

/// True when `ty` has a GPU encoder (unweighted) that [`CodecRunner::encode`] runs.
pub fn can_encode(ty: GgmlType) -> bool {
    can_encode_with(ty, false)
}

/// True when `ty` has a GPU encoder for this call: with `weighted`, one that takes
/// importance weights.
pub fn can_encode_with(ty: GgmlType, weighted: bool) -> bool {
    gpu_codec(ty)
        .is_some_and(|c| c.encode.is_some() && !c.tensor_scale && (!weighted || c.encode_weighted))
}

/// True when `ty` has a GPU decoder that [`CodecRunner::decode`] runs.
pub fn can_decode(ty: GgmlType) -> bool {
    gpu_codec(ty).is_some_and(|c| c.decode.is_some() && !c.tensor_scale)
}

/// Uniform parameters of one dispatch; WGSL twin: `CodecParams` in common.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct CodecParams {
    pub n_blocks: u32,
    pub n_groups: u32,
    pub row_len: u32,
    pub blocks_per_row: u32,
    pub src_offset: u32,
    pub dst_offset: u32,
    pub has_weights: u32,
    /// Always 0: WGSL `zero`, an opaque zero (kquants.wgsl `keep`).
    pub _pad: u32,
}

/// Bytes reserved at the start of each upload for the params (keeps the data 256-aligned).
const PARAMS_SLOT: u64 = 256;
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

/// Runs codec kernels on one device: pipeline cache + staging pool.
pub struct CodecRunner {
    ctx: Arc<GpuContext>,
    kernels: KernelCache,
    pool: StagingPool,
    dummy_weights: wgpu::Buffer,
    opts: RunnerOptions,
    /// One call at a time on the device (tiles are sequential; the pool is shared).
    busy: Mutex<RunStats>,
}

fn check_shape(
    ty: GgmlType,
    row_len: usize,
    n_elems: usize,
    n_bytes: usize,
) -> Result<(usize, u64), CodecError> {
    let row_bytes = ty.row_bytes(row_len as u64).filter(|_| row_len > 0).ok_or(
        CodecError::RowNotBlockMultiple {
            ty,
            row_len,
            block: ty.block_elems(),
        },
    )?;
    let n_rows = n_elems / row_len;
    if n_elems % row_len != 0 || (n_rows as u64).checked_mul(row_bytes) != Some(n_bytes as u64) {
        return Err(CodecError::BadLength {
            ty,
            what: format!(
                "{n_elems} elements in rows of {row_len} vs {n_bytes} bytes (rows of {row_bytes})"
            ),
        });
    }
    Ok((n_rows, row_bytes))
}

fn round4(n: u64) -> u64 {
    n.div_ceil(4) * 4
}

impl CodecRunner {
    pub fn new(ctx: Arc<GpuContext>, opts: RunnerOptions) -> Self {
        let kernels = KernelCache::new(ctx.clone());
        let pool = StagingPool::new(ctx.device.clone(), opts.budget, ctx.limits.max_buffer_size);
        let dummy_weights = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("gpuq dummy weights"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        CodecRunner {
            ctx,
            kernels,
            pool,
            dummy_weights,
            opts,
            busy: Mutex::new(RunStats::default()),
        }
    }

    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    pub fn pool(&self) -> &StagingPool {
        &self.pool
    }

    pub fn kernels(&self) -> &KernelCache {
        &self.kernels
    }

    /// Statistics of the last call.
    pub fn last_run(&self) -> RunStats {
        *self.busy.lock().unwrap_or_else(|e| e.into_inner())
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
        let codec = gpu_codec(ty)
            .filter(|c| !c.tensor_scale)
            .ok_or(GpuError::NoKernel {
                ty,
                direction: "encode",
            })?;
        let entry = codec.encode.ok_or(GpuError::NoKernel {
            ty,
            direction: "encode",
        })?;
        let (n_rows, row_bytes) = check_shape(ty, row_len, src.len(), dst.len())?;
        if weights.is_some() && !codec.encode_weighted {
            return Err(GpuError::NoKernel {
                ty,
                direction: "weighted (importance) encode",
            }
            .into());
        }
        if let Some(w) = weights {
            if w.len() != row_len {
                return Err(CodecError::BadLength {
                    ty,
                    what: format!("{} importance weights for rows of {row_len}", w.len()),
                }
                .into());
            }
        }
        let src_bytes: &[u8] = bytemuck::cast_slice(src);
        self.run(
            codec,
            entry,
            codec.blocks_per_invocation,
            src_bytes,
            row_len as u64 * 4,
            dst,
            row_bytes,
            n_rows,
            row_len,
            weights,
        )?;
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
        let codec = gpu_codec(ty)
            .filter(|c| !c.tensor_scale)
            .ok_or(GpuError::NoKernel {
                ty,
                direction: "decode",
            })?;
        let entry = codec.decode.ok_or(GpuError::NoKernel {
            ty,
            direction: "decode",
        })?;
        let (n_rows, row_bytes) = check_shape(ty, row_len, dst.len(), src.len())?;
        let dst_bytes: &mut [u8] = bytemuck::cast_slice_mut(dst);
        self.run(
            codec,
            entry,
            codec.decode_blocks_per_invocation,
            src,
            row_bytes,
            dst_bytes,
            row_len as u64 * 4,
            n_rows,
            row_len,
            None,
        )?;
        Ok(())
    }

    /// Rows per tile: whole rows whose source and destination each fit one storage binding
    /// (and `max_tile_bytes`), with all buffers of a tile within half the pool budget.
    pub(crate) fn rows_per_tile(
        &self,
        ty: GgmlType,
        row_len: usize,
        src_row: u64,
        dst_row: u64,
        w_bytes: u64,
    ) -> Result<u64, GpuError> {
        let mut cap = self.ctx.max_binding().min(MAX_TILE_BYTES);
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
        // upload (src) + storage src + storage dst + readback (dst), each possibly rounded up
        // by 1 MiB, plus weights twice and the params.
        let overhead = 4 * (1 << 20) + 2 * round4(w_bytes) + 2 * PARAMS_SLOT;
        let avail = (self.pool.budget() / 2).saturating_sub(overhead);
        let by_budget = avail / (2 * (src_row + dst_row));
        if by_budget == 0 {
            return Err(GpuError::RowTooLarge {
                ty,
                row_len,
                bytes: 2 * (src_row + dst_row) + overhead,
                limit: self.pool.budget() / 2,
                which: "half the staging budget (GPUQ_GPU_BUDGET_MB)",
            });
        }
        Ok(by_binding.min(by_budget))
    }

    /// Workgroup counts (x, y) for `groups` invocations, split in 2-D past the x limit.
    fn dispatch_size(&self, invocations: u64) -> Result<(u32, u32), GpuError> {
        let wg = self.opts.workgroup_size as u64;
        let groups = invocations.div_ceil(wg).max(1);
        let mut max_x = self.ctx.limits.max_compute_workgroups_per_dimension as u64;
        if let Some(m) = self.opts.max_workgroups_x {
            max_x = max_x.min(m as u64).max(1);
        }
        if groups <= max_x {
            return Ok((groups as u32, 1));
        }
        let y = groups.div_ceil(max_x);
        let x = groups.div_ceil(y);
        if y > self.ctx.limits.max_compute_workgroups_per_dimension as u64 {
            return Err(GpuError::Wgpu {
                context: "planning a dispatch".into(),
                message: format!("{groups} workgroups exceed {max_x} x {max_x}"),
            });
        }
        Ok((x as u32, y as u32))
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn run(
        &self,
        codec: &GpuCodec,
        entry: &'static str,
        blocks_per_invocation: u32,
        src: &[u8],
        src_row: u64,
        dst: &mut [u8],
        dst_row: u64,
        n_rows: usize,
        row_len: usize,
        weights: Option<&[f32]>,
    ) -> Result<(), GpuError> {
        let mut stats = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        *stats = RunStats::default();
        if n_rows == 0 {
            return Ok(());
        }
        let ty = codec.ty;
        let key = KernelKey {
            shader: codec.shader,
            entry,
            workgroup_size: self.opts.workgroup_size,
            layout: Layout::Codec,
        };
        let pipeline = self.kernels.pipeline(key)?;
        let label = key.to_string();
        let block_elems = ty.block_elems();
        let blocks_per_row = row_len as u64 / block_elems;
        let g = blocks_per_invocation as u64;
        let w_bytes: &[u8] = weights.map(bytemuck::cast_slice).unwrap_or(&[]);
        let w_len = w_bytes.len() as u64;
        let rows_per_tile = self.rows_per_tile(ty, row_len, src_row, dst_row, w_len)?;
        stats.rows_per_tile = rows_per_tile;
        let device = &self.ctx.device;
        let bgl = self.kernels.bind_group_layout(Layout::Codec);

        let mut row0 = 0u64;
        while row0 < n_rows as u64 {
            let rows = rows_per_tile.min(n_rows as u64 - row0);
            let s_bytes = rows * src_row;
            let d_bytes = rows * dst_row;
            let (s_pad, d_pad) = (round4(s_bytes), round4(d_bytes));
            let n_blocks = rows * blocks_per_row;
            let n_groups = n_blocks.div_ceil(g);
            let params = CodecParams {
                n_blocks: n_blocks as u32,
                n_groups: n_groups as u32,
                row_len: row_len as u32,
                blocks_per_row: blocks_per_row as u32,
                src_offset: 0,
                dst_offset: 0,
                has_weights: weights.is_some() as u32,
                _pad: 0,
            };
            let s_src = &src[(row0 * src_row) as usize..((row0 + rows) * src_row) as usize];

            // Upload: [params | weights | tile source | poison], written through a mapping.
            let w_off = PARAMS_SLOT;
            let s_off = PARAMS_SLOT + round4(w_len);
            let p_off = s_off + s_pad;
            let up_size = p_off + if self.opts.poison_output { d_pad } else { 0 };
            let upload = self.pool.acquire(Role::Upload, up_size)?;
            {
                let slice = upload.buffer().slice(0..up_size);
                let rx = map(&slice, wgpu::MapMode::Write);
                let waited = self.ctx.wait(&format!("{label}: mapping an upload buffer"));
                mapped(&self.ctx, waited, rx, "upload", upload.buffer())?;
                let mut view = slice.get_mapped_range_mut().map_err(|e| GpuError::Map {
                    what: "upload",
                    message: e.to_string(),
                })?;
                let mut head = [0u8; PARAMS_SLOT as usize];
                head[..std::mem::size_of::<CodecParams>()]
                    .copy_from_slice(bytemuck::bytes_of(&params));
                view.slice(0..PARAMS_SLOT as usize).copy_from_slice(&head);
                if w_len > 0 {
                    view.slice(w_off as usize..(w_off + w_len) as usize)
                        .copy_from_slice(w_bytes);
                }
                view.slice(s_off as usize..(s_off + s_bytes) as usize)
                    .copy_from_slice(s_src);
                let tail = (s_pad - s_bytes) as usize;
                if tail > 0 {
                    let z = [0u8; 4];
                    view.slice((s_off + s_bytes) as usize..(s_off + s_pad) as usize)
                        .copy_from_slice(&z[..tail]);
                }
                if self.opts.poison_output {
                    view.slice(p_off as usize..(p_off + d_pad) as usize)
                        .copy_from_slice(&vec![0xa5u8; d_pad as usize]);
                }
                drop(view);
                upload.buffer().unmap();
            }
            let uniform = self.pool.acquire(Role::Uniform, PARAMS_SLOT)?;
            let s_buf = self.pool.acquire(Role::Storage, s_pad)?;
            let d_buf = self.pool.acquire(Role::Storage, d_pad)?;
            let readback = self.pool.acquire(Role::Readback, d_pad)?;
            let w_buf = match weights {
                Some(_) => Some(self.pool.acquire(Role::Storage, round4(w_len))?),
                None => None,
            };

            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(&label),
                layout: bgl,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: binding(
                            uniform.buffer(),
                            std::mem::size_of::<CodecParams>() as u64,
                        ),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: binding(s_buf.buffer(), s_pad),
                    },
                    wgpu::BindGroupEntry {
                        binding: 2,
                        resource: binding(d_buf.buffer(), d_pad),
                    },
                    wgpu::BindGroupEntry {
                        binding: 3,
                        resource: match &w_buf {
                            Some(w) => binding(w.buffer(), round4(w_len)),
                            None => binding(&self.dummy_weights, 16),
                        },
                    },
                ],
            });
            let (x, y) = self.dispatch_size(n_groups)?;
            if y > 1 {
                stats.dispatches_2d += 1;
            }
            let mut enc = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some(&label),
            });
            enc.copy_buffer_to_buffer(upload.buffer(), 0, uniform.buffer(), 0, PARAMS_SLOT);
            if let Some(w) = &w_buf {
                enc.copy_buffer_to_buffer(upload.buffer(), w_off, w.buffer(), 0, round4(w_len));
            }
            enc.copy_buffer_to_buffer(upload.buffer(), s_off, s_buf.buffer(), 0, s_pad);
            if self.opts.poison_output {
                enc.copy_buffer_to_buffer(upload.buffer(), p_off, d_buf.buffer(), 0, d_pad);
            }
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some(&label),
                    timestamp_writes: None,
                });
                pass.set_pipeline(&pipeline);
                pass.set_bind_group(0, &bind_group, &[]);
                pass.dispatch_workgroups(x, y, 1);
            }
            enc.copy_buffer_to_buffer(d_buf.buffer(), 0, readback.buffer(), 0, d_pad);
            self.ctx.queue.submit([enc.finish()]);

            let slice = readback.buffer().slice(0..d_pad);
            let rx = map(&slice, wgpu::MapMode::Read);
            let waited = self.ctx.wait(&format!("{label}: running {rows} rows"));
            mapped(&self.ctx, waited, rx, "readback", readback.buffer())?;
            {
                let view = slice.get_mapped_range().map_err(|e| GpuError::Map {
                    what: "readback",
                    message: e.to_string(),
                })?;
                dst[(row0 * dst_row) as usize..((row0 + rows) * dst_row) as usize]
                    .copy_from_slice(&view[..d_bytes as usize]);
            }
            readback.buffer().unmap();
            stats.tiles += 1;
            row0 += rows;
        }
        Ok(())
    }
}

fn binding(b: &wgpu::Buffer, size: u64) -> wgpu::BindingResource<'_> {
    wgpu::BindingResource::Buffer(wgpu::BufferBinding {
        buffer: b,
        offset: 0,
        size: NonZeroU64::new(size),
    })
}

fn map(slice: &wgpu::BufferSlice<'_>, mode: wgpu::MapMode) -> mpsc::Receiver<Result<(), String>> {
    let (tx, rx) = mpsc::channel();
    slice.map_async(mode, move |r| {
        let _ = tx.send(r.map_err(|e| e.to_string()));
    });
    rx
}

/// Waits for the map callback of `buffer` after `waited` (the device poll). Another thread's
/// poll may be the one that runs our callback (several runners share one device), so a
/// callback that has not arrived yet is waited for, polling again, instead of failing. On any
/// failure the buffer is unmapped (cancelling a pending map), so it goes back to the pool
/// unmapped and cannot poison a later submission.
fn mapped(
    ctx: &GpuContext,
    waited: Result<(), GpuError>,
    rx: mpsc::Receiver<Result<(), String>>,
    what: &'static str,
    buffer: &wgpu::Buffer,
) -> Result<(), GpuError> {
    let r = waited.and_then(|()| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            match rx.recv_timeout(std::time::Duration::from_millis(5)) {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(message)) => return Err(GpuError::Map { what, message }),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(GpuError::Map {
                        what,
                        message: "the map callback was dropped".into(),
                    });
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if std::time::Instant::now() > deadline {
                        return Err(GpuError::Map {
                            what,
                            message: "the map callback did not run within 60 s of the poll".into(),
                        });
                    }
                    let _ = ctx.device.poll(wgpu::PollType::Poll);
                }
            }
        }
    });
    if r.is_err() {
        buffer.unmap();
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_output_word_has_one_writer() {
        for c in GPU_CODECS {
            assert!(c.blocks_per_invocation > 0, "{}", c.ty);
            assert!(c.decode_blocks_per_invocation > 0, "{}", c.ty);
            assert_eq!(
                (c.blocks_per_invocation as u64 * c.ty.block_bytes()) % 4,
                0,
                "{}: {} blocks of {} bytes are not whole words",
                c.ty,
                c.blocks_per_invocation,
                c.ty.block_bytes()
            );
            assert!(c.encode.is_some() || c.decode.is_some(), "{}", c.ty);
            assert!(
                wgsl::SHADERS.contains(&c.shader),
                "{}: shader not in SHADERS",
                c.ty
            );
            for e in [c.encode, c.decode].into_iter().flatten() {
                assert!(
                    c.shader.body.contains(&format!("fn {e}(")),
                    "{}: no entry point {e} in {}",
                    c.ty,
                    c.shader.name
                );
            }
        }
        assert_eq!(std::mem::size_of::<CodecParams>(), 32);
    }
}
