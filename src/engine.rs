//! The compute engine: which backend encodes and decodes, chosen once.
//!
//! `Backend::Cpu` is the native reference path (`codec::encode_rows` / `decode_rows`, rayon)
//! and never touches wgpu. `Backend::Gpu` uses wgpu even on a software adapter (lavapipe);
//! types without a GPU kernel fall back to the CPU codec. `Backend::Auto` takes the GPU only
//! when the adapter is a real GPU (device type not `Cpu`): on a software adapter the native
//! path is faster.

use crate::codec::absmean::RowScale;
use crate::codec::{self, CodecError};
use crate::error::Result;
use crate::ggml_type::GgmlType;
#[cfg(not(feature = "gpu"))]
use crate::gpu::GpuError;

/// Which backend to use (the `--backend` flag).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Backend {
    /// The GPU if it is a real one, else the CPU.
    #[default]
    Auto,
    /// The native CPU path (the reference); wgpu is never touched.
    Cpu,
    /// wgpu, even on a software adapter such as lavapipe.
    Gpu,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Auto => "auto",
            Backend::Cpu => "cpu",
            Backend::Gpu => "gpu",
        })
    }
}

/// Encodes and decodes rows on the chosen backend.
pub struct Engine {
    requested: Backend,
    why: String,
    #[cfg(feature = "gpu")]
    gpu: Option<std::sync::Arc<crate::gpu::codecs::CodecRunner>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("requested", &self.requested)
            .field("chosen", &self.backend())
            .field("why", &self.why)
            .finish()
    }
}

impl Engine {
    /// Chooses the backend. `Gpu` fails when there is no adapter (or no `gpu` feature);
    /// `Auto` falls back to the CPU and says why in [`Engine::describe`].
    pub fn new(backend: Backend) -> Result<Engine> {
        Self::build(backend, None)
    }

    /// Like [`Engine::new`] with explicit GPU runner options (tile caps, pool budget).
    #[cfg(feature = "gpu")]
    pub fn with_gpu_options(
        backend: Backend,
        opts: crate::gpu::codecs::RunnerOptions,
    ) -> Result<Engine> {
        Self::build(backend, Some(opts))
    }

    fn cpu(requested: Backend, why: String) -> Engine {
        Engine {
            requested,
            why,
            #[cfg(feature = "gpu")]
            gpu: None,
        }
    }

    #[cfg(not(feature = "gpu"))]
    fn build(backend: Backend, _opts: Option<()>) -> Result<Engine> {
        match backend {
            Backend::Cpu => Ok(Self::cpu(backend, "cpu: asked for (--backend cpu)".into())),
            Backend::Auto => Ok(Self::cpu(
                backend,
                "cpu: auto, and this build has no GPU backend (feature `gpu` off)".into(),
            )),
            Backend::Gpu => Err(GpuError::NotBuilt.into()),
        }
    }

    #[cfg(feature = "gpu")]
    fn build(backend: Backend, opts: Option<crate::gpu::codecs::RunnerOptions>) -> Result<Engine> {
        use crate::gpu::codecs::CodecRunner;
        use crate::gpu::context::GpuContext;
        use std::sync::Arc;
        if backend == Backend::Cpu {
            return Ok(Self::cpu(backend, "cpu: asked for (--backend cpu)".into()));
        }
        let ctx = match GpuContext::shared() {
            Ok(c) => c,
            Err(e @ crate::gpu::GpuError::BadBackendEnv(_)) => return Err(e.into()),
            Err(e) if backend == Backend::Auto => {
                return Ok(Self::cpu(backend, format!("cpu: auto, and {e}")));
            }
            Err(e) => return Err(e.into()),
        };
        let adapter = format!(
            "'{}' ({:?}, {:?})",
            ctx.info.name, ctx.info.backend, ctx.info.device_type
        );
        if backend == Backend::Auto && ctx.is_cpu_adapter() {
            return Ok(Self::cpu(
                backend,
                format!(
                    "cpu: auto, and the only adapter {adapter} is a software (CPU) device, slower \
                     than the native path (--backend gpu forces it)"
                ),
            ));
        }
        let why = if backend == Backend::Auto {
            format!("gpu: auto picked the GPU adapter {adapter}")
        } else {
            format!("gpu: asked for (--backend gpu), adapter {adapter}")
        };
        let runner = CodecRunner::new(ctx, opts.unwrap_or_default());
        Ok(Engine {
            requested: backend,
            why,
            gpu: Some(Arc::new(runner)),
        })
    }

    /// The backend in use: `Cpu` or `Gpu` (never `Auto`).
    pub fn backend(&self) -> Backend {
        #[cfg(feature = "gpu")]
        if self.gpu.is_some() {
            return Backend::Gpu;
        }
        Backend::Cpu
    }

    /// The backend that was asked for.
    pub fn requested(&self) -> Backend {
        self.requested
    }

    /// One line: what was chosen and why.
    pub fn describe(&self) -> String {
        format!("backend {}", self.why)
    }

    /// The GPU runner, when the GPU backend was chosen.
    #[cfg(feature = "gpu")]
    pub fn gpu(&self) -> Option<&crate::gpu::codecs::CodecRunner> {
        self.gpu.as_deref()
    }

    /// True when `ty` is encoded by a GPU kernel on this engine without importance weights
    /// (else the CPU codec runs).
    pub fn encodes_on_gpu(&self, ty: GgmlType) -> bool {
        self.encodes_on_gpu_with(ty, false)
    }

    /// True when `ty` is encoded by a GPU kernel on this engine, for a call with importance
    /// weights when `weighted` (kernels that do not take weights leave those to the CPU).
    pub fn encodes_on_gpu_with(&self, ty: GgmlType, weighted: bool) -> bool {
        #[cfg(feature = "gpu")]
        if self.gpu.is_some() {
            return crate::gpu::codecs::can_encode_with(ty, weighted);
        }
        let _ = (ty, weighted);
        false
    }

    /// True when `ty` is decoded by a GPU kernel on this engine.
    pub fn decodes_on_gpu(&self, ty: GgmlType) -> bool {
        #[cfg(feature = "gpu")]
        if self.gpu.is_some() {
            return crate::gpu::codecs::can_decode(ty);
        }
        let _ = ty;
        false
    }

    /// Encodes rows of `row_len` elements into the bytes of `ty` (llama-quantize's bytes).
    /// `weights`: per-column importance weights, `row_len` of them.
    pub fn encode(
        &self,
        ty: GgmlType,
        src: &[f32],
        row_len: usize,
        weights: Option<&[f32]>,
    ) -> Result<Vec<u8>> {
        let bytes = out_bytes(ty, src.len(), row_len)?;
        let mut dst = vec![0u8; bytes];
        self.encode_into(ty, src, row_len, weights, &mut dst)?;
        Ok(dst)
    }

    /// [`Engine::encode`] into a caller's buffer of exactly the encoded size.
    pub fn encode_into(
        &self,
        ty: GgmlType,
        src: &[f32],
        row_len: usize,
        weights: Option<&[f32]>,
        dst: &mut [u8],
    ) -> Result<()> {
        #[cfg(feature = "gpu")]
        if let Some(g) = &self.gpu {
            if crate::gpu::codecs::can_encode_with(ty, weights.is_some()) {
                return g.encode(ty, src, row_len, weights, dst);
            }
        }
        codec::encode_rows(ty, src, row_len, weights, dst)?;
        Ok(())
    }

    /// BitNet absmean block sums (`codec::absmean::block_abs_sum` of every 256-element block,
    /// rows of `row_len`): the reduction pass of the absmean ternarization, on the GPU when
    /// this engine has one. Both backends give the same bits.
    pub fn absmean_block_sums(&self, src: &[f32], row_len: usize) -> Result<Vec<f32>> {
        #[cfg(feature = "gpu")]
        if let Some(g) = &self.gpu {
            return g.absmean_block_sums(src, row_len);
        }
        check_absmean_rows(GgmlType::TQ2_0, src.len(), row_len)?;
        use rayon::prelude::*;
        Ok(src
            .par_chunks(crate::codec::ternary::QK_K)
            .map(crate::codec::absmean::block_abs_sum)
            .collect())
    }

    /// Encodes rows into TQ1_0 / TQ2_0 with one absmean scale per row (`scales[r]`, guarded,
    /// see `codec::absmean`): BitNet's ternarization, packed as ggml packs the blocks.
    pub fn encode_absmean(
        &self,
        ty: GgmlType,
        src: &[f32],
        row_len: usize,
        scales: &[f32],
        dst: &mut [u8],
    ) -> Result<()> {
        let rs: Vec<RowScale> = scales.iter().map(|&s| RowScale::new(s)).collect();
        self.encode_row_scales(ty, src, row_len, &rs, dst)
    }

    /// [`Engine::encode_absmean`] with each row's `1/s` and f16 scale given: trits of
    /// `x * scales[r].id`, block scale `scales[r].d`.
    pub fn encode_row_scales(
        &self,
        ty: GgmlType,
        src: &[f32],
        row_len: usize,
        scales: &[RowScale],
        dst: &mut [u8],
    ) -> Result<()> {
        #[cfg(feature = "gpu")]
        if let Some(g) = &self.gpu {
            return g.encode_absmean(ty, src, row_len, scales, dst);
        }
        let n_rows = check_absmean_rows(ty, src.len(), row_len)?;
        let row_bytes = row_len / crate::codec::ternary::QK_K * ty.block_bytes() as usize;
        if !crate::codec::absmean::supports(ty)
            || scales.len() != n_rows
            || dst.len() != n_rows * row_bytes
        {
            return Err(CodecError::BadLength {
                ty,
                what: format!(
                    "absmean encode: {n_rows} rows, {} scales, {} output bytes",
                    scales.len(),
                    dst.len()
                ),
            }
            .into());
        }
        use rayon::prelude::*;
        src.par_chunks(row_len)
            .zip(dst.par_chunks_mut(row_bytes))
            .zip(scales.par_iter())
            .for_each(|((x, d), &s)| {
                crate::codec::absmean::encode_row_scales(ty, x, row_len, &[s], d);
            });
        Ok(())
    }

    /// I2_S codes (no trailer) of rows of `row_len` elements (a multiple of 128): BitNet's
    /// absmean trits of `x * id`, `id = 1/s` for the tensor's scale (`codec::i2s`). The
    /// trailer holding the scale is the caller's to write (`i2s::trailer`).
    pub fn encode_i2s(&self, src: &[f32], row_len: usize, id: f32, dst: &mut [u8]) -> Result<()> {
        check_i2s_rows(src.len(), row_len)?;
        #[cfg(feature = "gpu")]
        if let Some(g) = &self.gpu {
            return g.encode_i2s(src, row_len, id, dst);
        }
        crate::codec::i2s::encode_codes_absmean(src, id, dst)?;
        Ok(())
    }

    /// Decodes I2_S codes (no trailer) of rows of `row_len` elements with the tensor's scale.
    pub fn decode_i2s(
        &self,
        src: &[u8],
        row_len: usize,
        scale: f32,
        dst: &mut [f32],
    ) -> Result<()> {
        check_i2s_rows(dst.len(), row_len)?;
        #[cfg(feature = "gpu")]
        if let Some(g) = &self.gpu {
            return g.decode_i2s(src, row_len, scale, dst);
        }
        crate::codec::i2s::decode_codes(src, scale, dst)?;
        Ok(())
    }

    /// Decodes bytes of `ty` in rows of `row_len` elements to f32 (ggml's dequantize_row).
    pub fn decode(&self, ty: GgmlType, src: &[u8], row_len: usize) -> Result<Vec<f32>> {
        let row_bytes = ty.row_bytes(row_len as u64).filter(|&b| b > 0).ok_or(
            CodecError::RowNotBlockMultiple {
                ty,
                row_len,
                block: ty.block_elems(),
            },
        )? as usize;
        if src.len() % row_bytes != 0 {
            return Err(CodecError::BadLength {
                ty,
                what: format!(
                    "{} bytes is not a whole number of {row_bytes}-byte rows",
                    src.len()
                ),
            }
            .into());
        }
        let mut dst = vec![0f32; src.len() / row_bytes * row_len];
        self.decode_into(ty, src, row_len, &mut dst)?;
        Ok(dst)
    }

    /// [`Engine::decode`] into a caller's buffer of exactly the decoded size.
    pub fn decode_into(
        &self,
        ty: GgmlType,
        src: &[u8],
        row_len: usize,
        dst: &mut [f32],
    ) -> Result<()> {
        #[cfg(feature = "gpu")]
        if let Some(g) = &self.gpu {
            if crate::gpu::codecs::can_decode(ty) {
                return g.decode(ty, src, row_len, dst);
            }
        }
        codec::decode_rows(ty, src, row_len, dst)?;
        Ok(())
    }
}

/// Encoded size of `n_elems` elements in rows of `row_len`.
fn out_bytes(ty: GgmlType, n_elems: usize, row_len: usize) -> Result<usize> {
    let row_bytes = ty.row_bytes(row_len as u64).filter(|_| row_len > 0).ok_or(
        CodecError::RowNotBlockMultiple {
            ty,
            row_len,
            block: ty.block_elems(),
        },
    )?;
    if n_elems % row_len != 0 {
        return Err(CodecError::BadLength {
            ty,
            what: format!("{n_elems} elements is not a whole number of rows of {row_len}"),
        }
        .into());
    }
    usize::try_from(row_bytes)
        .ok()
        .and_then(|b| (n_elems / row_len).checked_mul(b))
        .ok_or_else(|| {
            CodecError::BadLength {
                ty,
                what: format!("{n_elems} elements in rows of {row_len}: output size overflows"),
            }
            .into()
        })
}

/// Rows of a multiple of 256 elements for the absmean passes; the number of rows.
fn check_absmean_rows(ty: GgmlType, n_elems: usize, row_len: usize) -> Result<usize> {
    let qk = crate::codec::ternary::QK_K;
    if row_len == 0 || row_len % qk != 0 {
        return Err(CodecError::RowNotBlockMultiple {
            ty,
            row_len,
            block: qk as u64,
        }
        .into());
    }
    if n_elems % row_len != 0 {
        return Err(CodecError::BadLength {
            ty,
            what: format!("{n_elems} elements is not a whole number of rows of {row_len}"),
        }
        .into());
    }
    Ok(n_elems / row_len)
}

/// Rows of a multiple of 128 elements for I2_S.
fn check_i2s_rows(n_elems: usize, row_len: usize) -> Result<usize> {
    let qk = crate::codec::i2s::QK_I2_S;
    if row_len == 0 || row_len % qk != 0 {
        return Err(CodecError::RowNotBlockMultiple {
            ty: GgmlType::I2_S,
            row_len,
            block: qk as u64,
        }
        .into());
    }
    if n_elems % row_len != 0 {
        return Err(CodecError::BadLength {
            ty: GgmlType::I2_S,
            what: format!("{n_elems} elements is not a whole number of rows of {row_len}"),
        }
        .into());
    }
    Ok(n_elems / row_len)
}
