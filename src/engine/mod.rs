//! The compute engine: which backend runs each operation, chosen once.
//!
//! One backend interface ([`compute::Compute`]) with two implementations: the native CPU path
//! ([`cpu::CpuCompute`], the reference; never touches wgpu) and the GPU ([`gpu::GpuCompute`],
//! wgpu; a stand-in of the same name when the `gpu` feature is off, so no call site here
//! carries a `cfg`). `Backend::Gpu` uses wgpu even on a software adapter (lavapipe);
//! `Backend::Auto` takes the GPU only when the adapter is a real GPU (device type not `Cpu`):
//! on a software adapter the native path is faster. With a GPU, the routing table
//! ([`routes`]) sends each operation to the GPU when it has a kernel for it, else to the CPU
//! twin. Shapes are checked once, here, before any backend sees a call.
//!
//! With a GPU, encodes and decodes the GPU has kernels for may also be shared between the GPU
//! and the CPU threads, row by row, within one call ([`split`]: on by default for `auto` on a
//! real GPU, off for `--backend gpu`, [`Engine::with_split`] forces it); the bytes are the
//! same whatever the share.
//!
//! ```
//! use gpuq::{Backend, Engine, GgmlType};
//!
//! let engine = Engine::new(Backend::Cpu)?;
//! let rows: Vec<f32> = (0..512).map(|i| (i as f32 * 0.37).sin()).collect();
//! let bytes = engine.encode(GgmlType::Q8_0, &rows, 256, None)?; // two rows of 256
//! assert_eq!(bytes.len(), 2 * 8 * 34); // 8 blocks of 34 bytes per row
//! let back = engine.decode(GgmlType::Q8_0, &bytes, 256)?;
//! let worst = rows.iter().zip(&back).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
//! assert!(worst < 0.01, "{worst}");
//! # Ok::<(), gpuq::Error>(())
//! ```

pub mod compute;
pub mod cpu;
#[cfg(feature = "gpu")]
pub mod gpu;
#[cfg(not(feature = "gpu"))]
#[path = "gpu_stub.rs"]
pub mod gpu;
pub mod routes;
pub mod split;

use crate::codec::absmean::RowScale;
use crate::codec::shape;
use crate::codec::ternary::QK_K;
use crate::error::Result;
use crate::ggml_type::GgmlType;
use crate::measure::fidelity::RowFidelity;
use crate::measure::participation::Participation;
use crate::measure::{Histogram, RowStats};
use compute::{Compute, Op};
use cpu::CpuCompute;
use gpu::GpuCompute;
use split::{Balancer, OpKey};

pub use gpu::RunnerOptions;
pub use split::{Split, SplitRun};

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

/// Runs every operation on the chosen backend (see the module documentation).
pub struct Engine {
    requested: Backend,
    why: String,
    cpu: CpuCompute,
    gpu: Option<GpuCompute>,
    /// How encodes and decodes are shared between the GPU and the CPU (off without a GPU).
    balance: Balancer,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("requested", &self.requested)
            .field("chosen", &self.backend())
            .field("why", &self.why)
            .field("split", &self.balance.split())
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
    pub fn with_gpu_options(backend: Backend, opts: RunnerOptions) -> Result<Engine> {
        Self::build(backend, Some(opts))
    }

    fn build(backend: Backend, opts: Option<RunnerOptions>) -> Result<Engine> {
        let cpu = |why: String| Engine {
            requested: backend,
            why,
            cpu: CpuCompute,
            gpu: None,
            balance: Balancer::new(Split::Off),
        };
        if backend == Backend::Cpu {
            return Ok(cpu("cpu: asked for (--backend cpu)".into()));
        }
        Ok(match gpu::open(backend, opts)? {
            Ok((g, why)) => {
                // auto only takes a real GPU: share the work with the CPU threads there
                let default = match backend {
                    Backend::Auto => Split::Adaptive,
                    _ => Split::Off,
                };
                let split = Split::from_env()?.unwrap_or(default);
                Engine {
                    requested: backend,
                    why,
                    cpu: CpuCompute,
                    gpu: Some(g),
                    balance: Balancer::new(split),
                }
            }
            Err(why) => cpu(why),
        })
    }

    /// This engine with the rows of each encode and decode shared between the GPU and the CPU
    /// as `split` says (see [`split`]); tests force a fixed share with it. Without a GPU there
    /// is nothing to share and the engine stays as it is. A share outside 0..=1 is refused.
    pub fn with_split(mut self, split: Split) -> Result<Engine> {
        let split = split.check()?;
        if self.gpu.is_some() {
            self.balance = Balancer::new(split);
        }
        Ok(self)
    }

    /// How encodes and decodes are shared between the GPU and the CPU (`Off` without a GPU).
    pub fn split(&self) -> Split {
        self.balance.split()
    }

    /// What the last call that was shared between the GPU and the CPU did.
    pub fn last_split(&self) -> Option<SplitRun> {
        self.balance.last()
    }

    /// The GPU's share of the rows a shared encode (`decode` false) or decode of `ty` would get
    /// now: the fixed share, the adaptive estimate, 1 when the split is off.
    pub fn split_share(&self, ty: GgmlType, decode: bool, weighted: bool) -> f64 {
        self.balance.share(OpKey {
            ty,
            decode,
            weighted,
        })
    }

    /// The backend in use: `Cpu` or `Gpu` (never `Auto`).
    pub fn backend(&self) -> Backend {
        if self.gpu.is_some() {
            Backend::Gpu
        } else {
            Backend::Cpu
        }
    }

    /// The backend that was asked for.
    pub fn requested(&self) -> Backend {
        self.requested
    }

    /// One line: what was chosen and why.
    pub fn describe(&self) -> String {
        format!("backend {}{}", self.why, self.balance.split().describe())
    }

    /// The GPU runner, when the GPU backend was chosen.
    pub fn gpu(&self) -> Option<&gpu::Runner> {
        self.gpu.as_ref().map(GpuCompute::runner)
    }

    /// True when this engine runs `op` on the GPU.
    pub fn runs_on_gpu(&self, op: Op) -> bool {
        self.gpu.is_some() && routes::gpu_has(op)
    }

    /// The backend that runs `op`: the GPU where it has a kernel, else the CPU.
    fn route(&self, op: Op) -> &dyn Compute {
        match &self.gpu {
            Some(g) if routes::gpu_has(op) => g,
            _ => &self.cpu,
        }
    }

    /// True when `ty` is encoded by a GPU kernel on this engine without importance weights
    /// (else the CPU codec runs).
    pub fn encodes_on_gpu(&self, ty: GgmlType) -> bool {
        self.encodes_on_gpu_with(ty, false)
    }

    /// True when `ty` is encoded by a GPU kernel on this engine, for a call with importance
    /// weights when `weighted` (kernels that do not take weights leave those to the CPU).
    pub fn encodes_on_gpu_with(&self, ty: GgmlType, weighted: bool) -> bool {
        self.runs_on_gpu(Op::Encode { ty, weighted })
    }

    /// True when `ty` is decoded by a GPU kernel on this engine.
    pub fn decodes_on_gpu(&self, ty: GgmlType) -> bool {
        self.runs_on_gpu(Op::Decode(ty))
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
        let rows = shape::rows(ty, row_len, src.len())?;
        let mut dst = vec![0u8; rows.n_rows * rows.row_bytes];
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
        let rows = shape::check(ty, row_len, src.len(), dst.len())?;
        shape::check_weights(ty, row_len, weights)?;
        let op = Op::Encode {
            ty,
            weighted: weights.is_some(),
        };
        if let Some(g) = self.gpu.as_ref().filter(|_| routes::gpu_has(op)) {
            let key = OpKey {
                ty,
                decode: false,
                weighted: weights.is_some(),
            };
            let cut = self.balance.run(
                key,
                (rows.n_rows, row_len),
                (src, row_len),
                (dst, rows.row_bytes),
                |s, d| g.encode(ty, s, row_len, weights, d),
                |s, d| self.cpu.encode(ty, s, row_len, weights, d),
            )?;
            if cut {
                return Ok(());
            }
        }
        self.route(op).encode(ty, src, row_len, weights, dst)
    }

    /// Decodes bytes of `ty` in rows of `row_len` elements to f32 (ggml's dequantize_row).
    pub fn decode(&self, ty: GgmlType, src: &[u8], row_len: usize) -> Result<Vec<f32>> {
        let mut dst = vec![0f32; shape::elems_of(ty, row_len, src.len())?];
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
        let rows = shape::check(ty, row_len, dst.len(), src.len())?;
        if let Some(g) = self
            .gpu
            .as_ref()
            .filter(|_| routes::gpu_has(Op::Decode(ty)))
        {
            let key = OpKey {
                ty,
                decode: true,
                weighted: false,
            };
            let cut = self.balance.run(
                key,
                (rows.n_rows, row_len),
                (src, rows.row_bytes),
                (dst, row_len),
                |s, d| g.decode(ty, s, row_len, d),
                |s, d| self.cpu.decode(ty, s, row_len, d),
            )?;
            if cut {
                return Ok(());
            }
        }
        self.route(Op::Decode(ty)).decode(ty, src, row_len, dst)
    }

    /// `dst = decode(encode(src))` through `ty`: the round trip a quantizer applies.
    pub fn round_trip(
        &self,
        ty: GgmlType,
        src: &[f32],
        row_len: usize,
        dst: &mut [f32],
    ) -> Result<()> {
        let bytes = self.encode(ty, src, row_len, None)?;
        self.decode_into(ty, &bytes, row_len, dst)
    }

    /// BitNet absmean block sums (`codec::absmean::block_abs_sum` of every 256-element block,
    /// rows of `row_len`): the reduction pass of the absmean ternarization. Both backends give
    /// the same bits.
    pub fn absmean_block_sums(&self, src: &[f32], row_len: usize) -> Result<Vec<f32>> {
        shape::rows_of_groups(GgmlType::TQ2_0, QK_K, row_len, src.len())?;
        self.route(Op::AbsmeanSums).absmean_block_sums(src, row_len)
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
        let rows = shape::check(ty, row_len, src.len(), dst.len())?;
        if !crate::codec::absmean::supports(ty) || scales.len() != rows.n_rows {
            return Err(crate::codec::CodecError::BadLength {
                ty,
                what: format!(
                    "absmean encode: {} rows, {} scales, {} output bytes",
                    rows.n_rows,
                    scales.len(),
                    dst.len()
                ),
            }
            .into());
        }
        self.route(Op::AbsmeanEncode(ty))
            .encode_row_scales(ty, src, row_len, scales, dst)
    }

    /// I2_S codes (no trailer) of rows of `row_len` elements (a multiple of 128): BitNet's
    /// absmean trits of `x * id`, `id = 1/s` for the tensor's scale (`codec::i2s`). The
    /// trailer holding the scale is the caller's to write (`i2s::trailer`).
    pub fn encode_i2s(&self, src: &[f32], row_len: usize, id: f32, dst: &mut [u8]) -> Result<()> {
        shape::i2s_codes(row_len, src.len(), dst.len())?;
        self.route(Op::EncodeI2s).encode_i2s(src, row_len, id, dst)
    }

    /// Decodes I2_S codes (no trailer) of rows of `row_len` elements with the tensor's scale.
    pub fn decode_i2s(
        &self,
        src: &[u8],
        row_len: usize,
        scale: f32,
        dst: &mut [f32],
    ) -> Result<()> {
        shape::i2s_codes(row_len, dst.len(), src.len())?;
        self.route(Op::DecodeI2s)
            .decode_i2s(src, row_len, scale, dst)
    }

    /// Per-row statistics of a tile of rows of `row_len` (outliers past `k` row RMS) and its
    /// histogram (`measure`).
    pub fn tile_stats(
        &self,
        data: &[f32],
        row_len: usize,
        k: f32,
    ) -> Result<(Vec<RowStats>, Histogram)> {
        if row_len == 0 || data.is_empty() {
            return Ok((Vec::new(), Histogram::default()));
        }
        check_rows(data.len(), row_len)?;
        self.route(Op::Stats).tile_stats(data, row_len, k)
    }

    /// Per-row fidelity sums of `src` against its round trip `decoded` (same length).
    pub fn tile_fidelity(
        &self,
        src: &[f32],
        decoded: &[f32],
        row_len: usize,
    ) -> Result<Vec<RowFidelity>> {
        if row_len == 0 || src.is_empty() {
            return Ok(Vec::new());
        }
        check_rows(src.len(), row_len)?;
        if decoded.len() != src.len() {
            return Err(crate::Error::Invalid(format!(
                "fidelity: {} source values vs {} decoded",
                src.len(),
                decoded.len()
            )));
        }
        self.route(Op::Fidelity)
            .tile_fidelity(src, decoded, row_len)
    }

    /// Equilibrium pruning's score of every weight of a tile of rows of `row_len`
    /// (`measure::participation::element_scores`): `out[i]` is `w[i]`'s participation.
    pub fn element_scores(
        &self,
        w: &[f32],
        row_len: usize,
        p: &Participation,
        out: &mut [f32],
    ) -> Result<()> {
        p.check().map_err(crate::Error::Invalid)?;
        if row_len == 0 || w.is_empty() {
            return Ok(());
        }
        check_rows(w.len(), row_len)?;
        if out.len() != w.len() {
            return Err(crate::Error::Invalid(format!(
                "element scores: {} weights, {} outputs",
                w.len(),
                out.len()
            )));
        }
        self.route(Op::ElementScores)
            .element_scores(w, row_len, p, out)
    }

    /// Participation of groups whose energies are already scaled (mean 1 over the groups
    /// ranked together). The signed benefit has no meaning for a group and is refused.
    pub fn group_scores(&self, energies: &[f32], p: &Participation) -> Result<Vec<f32>> {
        p.check().map_err(crate::Error::Invalid)?;
        if p.benefit != crate::measure::participation::Benefit::Energy {
            return Err(crate::Error::Invalid(
                "group scores take the energy benefit only (a group has no sign)".into(),
            ));
        }
        let mut out = vec![0f32; energies.len()];
        if !energies.is_empty() {
            self.route(Op::GroupScores)
                .group_scores(energies, p, &mut out)?;
        }
        Ok(out)
    }

    /// Sums of squares of a tile of rows of `row_len`: one per row, one per column.
    pub fn energies(&self, w: &[f32], row_len: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        if row_len == 0 || w.is_empty() {
            return Ok((Vec::new(), vec![0.0; row_len]));
        }
        check_rows(w.len(), row_len)?;
        self.route(Op::Energies).energies(w, row_len)
    }
}

/// A tile of f32 rows: a whole number of rows.
fn check_rows(n: usize, row_len: usize) -> Result<()> {
    if n % row_len != 0 {
        return Err(crate::Error::Invalid(format!(
            "{n} values is not a whole number of rows of {row_len}"
        )));
    }
    Ok(())
}
