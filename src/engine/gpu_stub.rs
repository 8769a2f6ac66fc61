//! Stands in for `gpu.rs` when gpuq is built without the `gpu` feature: the same names, no
//! wgpu. [`open`] refuses `--backend gpu` and sends `auto` to the CPU; [`GpuCompute`] has no
//! values, so no call can reach it.

use super::Backend;
use super::compute::Compute;
use crate::codec::absmean::RowScale;
use crate::error::Result;
use crate::ggml_type::GgmlType;
use crate::gpu::GpuError;
use crate::measure::fidelity::RowFidelity;
use crate::measure::participation::Participation;
use crate::measure::{Histogram, RowStats};

/// No GPU in this build: an uninhabited type.
pub enum GpuCompute {}

/// The runner type of the real backend; uninhabited here.
pub type Runner = GpuCompute;

/// Options of the real backend's runner; nothing to set in this build.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunnerOptions;

pub fn open(
    backend: Backend,
    _opts: Option<RunnerOptions>,
) -> Result<std::result::Result<(GpuCompute, String), String>> {
    match backend {
        Backend::Gpu => Err(GpuError::NotBuilt.into()),
        _ => Ok(Err(
            "cpu: auto, and this build has no GPU backend (feature `gpu` off)".into(),
        )),
    }
}

impl GpuCompute {
    pub fn runner(&self) -> &Runner {
        self
    }
}

impl Compute for GpuCompute {
    fn encode(
        &self,
        _: GgmlType,
        _: &[f32],
        _: usize,
        _: Option<&[f32]>,
        _: &mut [u8],
    ) -> Result<()> {
        match *self {}
    }
    fn decode(&self, _: GgmlType, _: &[u8], _: usize, _: &mut [f32]) -> Result<()> {
        match *self {}
    }
    fn absmean_block_sums(&self, _: &[f32], _: usize) -> Result<Vec<f32>> {
        match *self {}
    }
    fn encode_row_scales(
        &self,
        _: GgmlType,
        _: &[f32],
        _: usize,
        _: &[RowScale],
        _: &mut [u8],
    ) -> Result<()> {
        match *self {}
    }
    fn encode_i2s(&self, _: &[f32], _: usize, _: f32, _: &mut [u8]) -> Result<()> {
        match *self {}
    }
    fn decode_i2s(&self, _: &[u8], _: usize, _: f32, _: &mut [f32]) -> Result<()> {
        match *self {}
    }
    fn tile_stats(&self, _: &[f32], _: usize, _: f32) -> Result<(Vec<RowStats>, Histogram)> {
        match *self {}
    }
    fn tile_fidelity(&self, _: &[f32], _: &[f32], _: usize) -> Result<Vec<RowFidelity>> {
        match *self {}
    }
    fn element_scores(&self, _: &[f32], _: usize, _: &Participation, _: &mut [f32]) -> Result<()> {
        match *self {}
    }
    fn group_scores(&self, _: &[f32], _: &Participation, _: &mut [f32]) -> Result<()> {
        match *self {}
    }
    fn energies(&self, _: &[f32], _: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        match *self {}
    }
}
