//! How one tensor is encoded, chosen once before its first tile ([`Strategy`]): the
//! target's own encoder (llama-quantize's bytes), or a ternary treatment with a scale per
//! tensor (BitNet's absmean, a packed checkpoint's known scale, I2_S) or per row
//! (`--ternary-scale per-channel`), or BitNet's `weight_quant` before another encoder. The tile
//! loop asks the strategy whether it needs a first pass, hands it each tile to encode, and
//! writes the trailer it returns; it has no branch of its own per kind.

use crate::codec::absmean::{self, RowScale, TensorMean, TernaryScale};
use crate::engine::Engine;
use crate::error::Result;
use crate::ggml_type::GgmlType;
use crate::model::TernarySource;

/// Relative (Frobenius) error of absmean ternarization of one tensor, both scalings.
#[derive(Clone, Debug, PartialEq)]
pub struct TernaryReport {
    pub name: String,
    pub per_channel: f64,
    pub per_tensor: f64,
}

/// The encoding of one tensor and what it accumulates on the way.
pub struct Strategy {
    target: GgmlType,
    mode: TernaryMode,
    /// Measure per-channel vs per-tensor absmean error ([`TernaryReport`]).
    report: bool,
    mean: TensorMean,
    tensor_s: Option<f32>,
    encoding: Encoding,
    err_pc: f64,
    err_pt: f64,
    norm: f64,
}

impl Strategy {
    /// The strategy for a tensor (its BitNet ternary source, if any) going to `target`.
    pub fn choose(
        tern: Option<TernarySource>,
        target: GgmlType,
        ternary_scale: Option<TernaryScale>,
        ternary_report: bool,
    ) -> Strategy {
        Strategy {
            target,
            mode: ternary_mode(tern, target, ternary_scale),
            report: ternary_report && absmean::supports(target),
            mean: TensorMean::default(),
            tensor_s: None,
            encoding: Encoding::Plain,
            err_pc: 0.0,
            err_pt: 0.0,
            norm: 0.0,
        }
    }

    /// True when the tensor's tiles must be read once before encoding (a per-tensor absmean).
    pub fn needs_first_pass(&self) -> bool {
        self.mode.needs_tensor_mean() || self.report
    }

    /// First pass: one decoded tile of rows of `row_len`.
    pub fn observe(&mut self, engine: &Engine, f: &[f32], row_len: usize) -> Result<()> {
        if row_len % crate::codec::ternary::QK_K == 0 {
            self.mean.add(&engine.absmean_block_sums(f, row_len)?);
        } else {
            self.mean.add_rows(f, row_len);
        }
        Ok(())
    }

    /// Ends the first pass (if any): the encoding is fixed from here on.
    pub fn start(&mut self) {
        if self.needs_first_pass() {
            self.tensor_s = Some(std::mem::take(&mut self.mean).finish());
        }
        self.encoding = self.mode.resolve(self.tensor_s);
    }

    /// Encodes one decoded tile (`f`, rows of `row_len`; BitNet's `weight_quant` rewrites it in
    /// place) into `out`, with importance weights `w` where the target takes them.
    pub fn encode(
        &mut self,
        engine: &Engine,
        f: &mut [f32],
        row_len: usize,
        w: Option<&[f32]>,
        out: &mut [u8],
    ) -> Result<()> {
        let target = self.target;
        let row_scales = if self.report || self.encoding == Encoding::TqPerChannel {
            let sums = engine.absmean_block_sums(f, row_len)?;
            Some(absmean::row_scales(&sums, row_len))
        } else {
            None
        };
        match self.encoding {
            Encoding::Plain => engine.encode_into(target, f, row_len, w, out)?,
            Encoding::WeightQuant { id, dtype } => {
                absmean::weight_quant(f, id, dtype);
                engine.encode_into(target, f, row_len, w, out)?
            }
            Encoding::TqPerChannel => {
                let s = row_scales.as_deref().unwrap_or(&[]);
                engine.encode_absmean(target, f, row_len, s, out)?
            }
            Encoding::TqFixed(rs) => {
                let rows = f.len() / row_len.max(1);
                engine.encode_row_scales(target, f, row_len, &vec![rs; rows], out)?
            }
            Encoding::I2s { id, .. } => engine.encode_i2s(f, row_len, id, out)?,
        }
        if let (true, Some(rs), Some(ts)) = (self.report, &row_scales, self.tensor_s) {
            for (x, &s) in f.chunks_exact(row_len).zip(rs) {
                self.err_pc += absmean::squared_error(x, s);
                self.err_pt += absmean::squared_error(x, ts);
                self.norm += x.iter().map(|&v| v as f64 * v as f64).sum::<f64>();
            }
        }
        Ok(())
    }

    /// Decodes bytes this strategy wrote (I2_S codes carry no scale: the tensor's is used).
    pub fn decode_written(
        &self,
        engine: &Engine,
        bytes: &[u8],
        row_len: usize,
        out: &mut [f32],
    ) -> Result<()> {
        match self.encoding {
            Encoding::I2s { scale, .. } => engine.decode_i2s(bytes, row_len, scale, out),
            _ => engine.decode_into(self.target, bytes, row_len, out),
        }
    }

    /// Bytes written after the last row (bitnet.cpp's I2_S trailer: the scale, padded).
    pub fn trailer(&self) -> Option<Vec<u8>> {
        match self.encoding {
            Encoding::I2s { scale, .. } => Some(crate::codec::i2s::trailer(scale).to_vec()),
            _ => None,
        }
    }

    /// The per-channel vs per-tensor comparison, when it was asked for.
    pub fn ternary_report(&self, name: &str) -> Option<TernaryReport> {
        let rel = |e: f64| {
            if self.norm > 0.0 {
                (e / self.norm).sqrt()
            } else {
                0.0
            }
        };
        self.report.then(|| TernaryReport {
            name: name.to_string(),
            per_channel: rel(self.err_pc),
            per_tensor: rel(self.err_pt),
        })
    }
}

/// How a tensor's tiles are encoded, once any per-tensor scale is known.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Encoding {
    /// The target's own encoder (llama-quantize's bytes).
    Plain,
    /// BitNet float master weights into a non-ternary type: `weight_quant`, then the encoder.
    WeightQuant { id: f32, dtype: GgmlType },
    /// TQ1_0 / TQ2_0 with each row's absmean.
    TqPerChannel,
    /// TQ1_0 / TQ2_0 with one (1/s, d) for every row.
    TqFixed(RowScale),
    /// I2_S codes of `x * id`; `scale` goes into the trailer.
    I2s { id: f32, scale: f32 },
}

/// Where a tensor's ternary scale comes from, before the first pass.
#[derive(Clone, Copy, Debug, PartialEq)]
enum TernaryMode {
    Plain,
    TqPerChannel,
    /// The encoding is fixed already (a known scale).
    Fixed(Encoding),
    /// Needs the tensor's absmean `s`: BitNet's converter value `1/(1/s)` rounded to `dtype`
    /// (`bitnet`), or `s` itself (`--ternary-scale per-tensor` on other models).
    TqTensor {
        dtype: GgmlType,
        bitnet: bool,
    },
    I2sTensor {
        dtype: GgmlType,
    },
    WeightQuant {
        dtype: GgmlType,
    },
}

impl TernaryMode {
    fn needs_tensor_mean(self) -> bool {
        matches!(
            self,
            TernaryMode::TqTensor { .. }
                | TernaryMode::I2sTensor { .. }
                | TernaryMode::WeightQuant { .. }
        )
    }

    fn resolve(self, s: Option<f32>) -> Encoding {
        let s = s.unwrap_or(absmean::MIN_SCALE);
        let id = 1.0 / s;
        match self {
            TernaryMode::Plain => Encoding::Plain,
            TernaryMode::TqPerChannel => Encoding::TqPerChannel,
            TernaryMode::Fixed(e) => e,
            TernaryMode::TqTensor {
                dtype,
                bitnet: true,
            } => Encoding::TqFixed(RowScale::with(id, absmean::quant_value(id, dtype))),
            TernaryMode::TqTensor { bitnet: false, .. } => Encoding::TqFixed(RowScale::new(s)),
            TernaryMode::I2sTensor { dtype } => Encoding::I2s {
                id,
                scale: absmean::quant_value(id, dtype),
            },
            TernaryMode::WeightQuant { dtype } => Encoding::WeightQuant { id, dtype },
        }
    }
}

/// The ternary treatment of tensor `index` for `target`:
/// - TQ1_0 / TQ2_0: llama.cpp's block absmax, or absmean per channel / per tensor as asked;
///   BitNet weights default to their per-tensor scale (absmean of the master weights, or the
///   packed checkpoint's own scale);
/// - I2_S: always one scale per tensor (absmean, or a packed checkpoint's own);
/// - other types: BitNet master weights go through `weight_quant` first.
///
/// The combinations that would change a model (per-channel scales for I2_S or for an already
/// ternary tensor) are refused by the plan (`quantize::plan`) before any output exists.
fn ternary_mode(
    tern: Option<TernarySource>,
    target: GgmlType,
    ternary_scale: Option<TernaryScale>,
) -> TernaryMode {
    if target == GgmlType::I2_S {
        match tern {
            Some(TernarySource::Known { scale }) => TernaryMode::Fixed(Encoding::I2s {
                id: 1.0 / scale,
                scale,
            }),
            Some(TernarySource::Absmean { dtype }) => TernaryMode::I2sTensor { dtype },
            None => TernaryMode::I2sTensor {
                dtype: GgmlType::F32,
            },
        }
    } else if absmean::supports(target) {
        match (tern, ternary_scale) {
            (Some(TernarySource::Known { scale }), _) => {
                TernaryMode::Fixed(Encoding::TqFixed(RowScale::new(scale)))
            }
            (_, Some(TernaryScale::PerChannel)) => TernaryMode::TqPerChannel,
            (Some(TernarySource::Absmean { dtype }), _) => TernaryMode::TqTensor {
                dtype,
                bitnet: true,
            },
            (None, Some(TernaryScale::PerTensor)) => TernaryMode::TqTensor {
                dtype: GgmlType::F32,
                bitnet: false,
            },
            (None, None) => TernaryMode::Plain,
        }
    } else {
        match tern {
            Some(TernarySource::Absmean { dtype }) => TernaryMode::WeightQuant { dtype },
            _ => TernaryMode::Plain,
        }
    }
}
