//! The wgpu backend behind [`Compute`]: the codec runner (`gpu::codecs`), the absmean and
//! I2_S kernels (`gpu::ternary`), the statistics kernels (`gpu::stats`) and the pruning score
//! pass (`gpu::prune`). Built with the `gpu` feature; without it `gpu_stub.rs` stands in
//! under the same names.

use super::Backend;
use super::compute::Compute;
use crate::codec::absmean::RowScale;
use crate::error::Result;
use crate::ggml_type::GgmlType;
use crate::gpu::GpuError;
use crate::gpu::context::GpuContext;
use crate::measure::fidelity::RowFidelity;
use crate::measure::participation::Participation;
use crate::measure::{Histogram, RowStats};
use std::sync::Arc;

pub use crate::gpu::codecs::{CodecRunner as Runner, RunnerOptions};

/// The GPU implementation of [`Compute`].
pub struct GpuCompute {
    runner: Arc<Runner>,
}

/// The adapter found for `backend`, or why none is used (`Ok(Err(why))`: the CPU runs; `Err`:
/// stop, the GPU was asked for and cannot be had).
pub fn open(
    backend: Backend,
    opts: Option<RunnerOptions>,
) -> Result<std::result::Result<(GpuCompute, String), String>> {
    let ctx = match GpuContext::shared() {
        Ok(c) => c,
        Err(e @ GpuError::BadBackendEnv(_)) => return Err(e.into()),
        Err(e) if backend == Backend::Auto => return Ok(Err(format!("cpu: auto, and {e}"))),
        Err(e) => return Err(e.into()),
    };
    let adapter = format!(
        "'{}' ({:?}, {:?})",
        ctx.info.name, ctx.info.backend, ctx.info.device_type
    );
    if backend == Backend::Auto && ctx.is_cpu_adapter() {
        return Ok(Err(format!(
            "cpu: auto, and the only adapter {adapter} is a software (CPU) device, slower than \
             the native path (--backend gpu forces it)"
        )));
    }
    let why = if backend == Backend::Auto {
        format!("gpu: auto picked the GPU adapter {adapter}")
    } else {
        format!("gpu: asked for (--backend gpu), adapter {adapter}")
    };
    let runner = Arc::new(Runner::new(ctx, opts.unwrap_or_default()));
    Ok(Ok((GpuCompute { runner }, why)))
}

impl GpuCompute {
    /// The codec runner (tests read its statistics and pool).
    pub fn runner(&self) -> &Runner {
        &self.runner
    }
}

impl Compute for GpuCompute {
    fn encode(
        &self,
        ty: GgmlType,
        src: &[f32],
        row_len: usize,
        weights: Option<&[f32]>,
        dst: &mut [u8],
    ) -> Result<()> {
        self.runner.encode(ty, src, row_len, weights, dst)
    }

    fn decode(&self, ty: GgmlType, src: &[u8], row_len: usize, dst: &mut [f32]) -> Result<()> {
        self.runner.decode(ty, src, row_len, dst)
    }

    fn absmean_block_sums(&self, src: &[f32], row_len: usize) -> Result<Vec<f32>> {
        self.runner.absmean_block_sums(src, row_len)
    }

    fn encode_row_scales(
        &self,
        ty: GgmlType,
        src: &[f32],
        row_len: usize,
        scales: &[RowScale],
        dst: &mut [u8],
    ) -> Result<()> {
        self.runner.encode_absmean(ty, src, row_len, scales, dst)
    }

    fn encode_i2s(&self, src: &[f32], row_len: usize, id: f32, dst: &mut [u8]) -> Result<()> {
        self.runner.encode_i2s(src, row_len, id, dst)
    }

    fn decode_i2s(&self, src: &[u8], row_len: usize, scale: f32, dst: &mut [f32]) -> Result<()> {
        self.runner.decode_i2s(src, row_len, scale, dst)
    }

    fn tile_stats(
        &self,
        data: &[f32],
        row_len: usize,
        k: f32,
    ) -> Result<(Vec<RowStats>, Histogram)> {
        crate::gpu::stats::tile_stats(&self.runner, data, row_len, k)
    }

    fn tile_fidelity(
        &self,
        src: &[f32],
        decoded: &[f32],
        row_len: usize,
    ) -> Result<Vec<RowFidelity>> {
        crate::gpu::stats::tile_fidelity(&self.runner, src, decoded, row_len)
    }

    fn element_scores(
        &self,
        w: &[f32],
        row_len: usize,
        p: &Participation,
        out: &mut [f32],
    ) -> Result<()> {
        crate::gpu::prune::element_scores(&self.runner, w, row_len, p, out)
    }

    fn group_scores(&self, energies: &[f32], p: &Participation, out: &mut [f32]) -> Result<()> {
        crate::gpu::prune::group_scores(&self.runner, energies, p, out)
    }

    fn energies(&self, w: &[f32], row_len: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        crate::gpu::prune::energies(&self.runner, w, row_len)
    }
}
