//! The one backend interface: every operation the pipeline and the statistics need from a
//! backend, implemented by the CPU (the reference, [`super::cpu::CpuCompute`]) and the GPU
//! (`super::gpu::GpuCompute`, a stand-in when the `gpu` feature is off). Both must give the
//! same bytes and bits. Shapes are checked once, at the [`super::Engine`] boundary, before a
//! call reaches an implementation; which implementation runs an operation is the routing
//! table's decision ([`super::routes`]).

use crate::codec::absmean::RowScale;
use crate::error::Result;
use crate::ggml_type::GgmlType;
use crate::measure::fidelity::RowFidelity;
use crate::measure::participation::Participation;
use crate::measure::{Histogram, RowStats};

/// One kind of work a backend may have a kernel for (the routing table's rows).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// f32 rows into `ty`'s blocks; `weighted` with per-column importance weights.
    Encode { ty: GgmlType, weighted: bool },
    /// `ty`'s blocks into f32 rows.
    Decode(GgmlType),
    /// BitNet absmean: the sum of |x| of every 256-element block.
    AbsmeanSums,
    /// TQ1_0 / TQ2_0 with a given scale per row.
    AbsmeanEncode(GgmlType),
    /// I2_S codes with the tensor's 1/s.
    EncodeI2s,
    /// I2_S codes with the tensor's scale.
    DecodeI2s,
    /// Per-row statistics and the histogram of a tile.
    Stats,
    /// Per-row fidelity sums of a tile against its round trip.
    Fidelity,
    /// Equilibrium pruning: each weight's participation, rows scaled to mean energy 1.
    ElementScores,
    /// Equilibrium pruning: participation of groups from their scaled energies.
    GroupScores,
    /// Sums of squares of a tile per row and per column (group energies).
    Energies,
}

/// A backend. Arguments arrive checked (row lengths a whole number of blocks, buffers of the
/// sizes the rows need).
pub trait Compute: Send + Sync {
    /// Encodes rows of `row_len` into `dst` (llama-quantize's bytes for `ty`).
    fn encode(
        &self,
        ty: GgmlType,
        src: &[f32],
        row_len: usize,
        weights: Option<&[f32]>,
        dst: &mut [u8],
    ) -> Result<()>;
    /// Decodes rows of `row_len` (ggml's dequantize_row).
    fn decode(&self, ty: GgmlType, src: &[u8], row_len: usize, dst: &mut [f32]) -> Result<()>;
    /// `absmean::block_abs_sum` of every 256-element block, in order.
    fn absmean_block_sums(&self, src: &[f32], row_len: usize) -> Result<Vec<f32>>;
    /// TQ1_0 / TQ2_0 with each row's `1/s` and f16 scale.
    fn encode_row_scales(
        &self,
        ty: GgmlType,
        src: &[f32],
        row_len: usize,
        scales: &[RowScale],
        dst: &mut [u8],
    ) -> Result<()>;
    /// I2_S codes (no trailer) of `x * id`.
    fn encode_i2s(&self, src: &[f32], row_len: usize, id: f32, dst: &mut [u8]) -> Result<()>;
    /// I2_S codes (no trailer) decoded with the tensor's scale.
    fn decode_i2s(&self, src: &[u8], row_len: usize, scale: f32, dst: &mut [f32]) -> Result<()>;
    /// Per-row statistics of a tile (outliers past `k` row RMS) and its histogram.
    fn tile_stats(
        &self,
        data: &[f32],
        row_len: usize,
        k: f32,
    ) -> Result<(Vec<RowStats>, Histogram)>;
    /// Per-row fidelity sums of `src` against its round trip `decoded`.
    fn tile_fidelity(
        &self,
        src: &[f32],
        decoded: &[f32],
        row_len: usize,
    ) -> Result<Vec<RowFidelity>>;
    /// Each weight's participation after the iterations (`measure::participation`), rows of
    /// `row_len` scaled to mean energy 1; `out` has `w`'s length.
    fn element_scores(
        &self,
        w: &[f32],
        row_len: usize,
        p: &Participation,
        out: &mut [f32],
    ) -> Result<()>;
    /// Participation of groups with the given scaled energies; `out` has their length.
    fn group_scores(&self, energies: &[f32], p: &Participation, out: &mut [f32]) -> Result<()>;
    /// Sums of squares of a tile per row and per column.
    fn energies(&self, w: &[f32], row_len: usize) -> Result<(Vec<f32>, Vec<f32>)>;
}
