//! Statistics and quantization error of every tensor of a model (a GGUF file, its splits, or a
//! Hugging Face folder: any pipeline source), streamed tile by tile (whole rows; the tile size
//! follows a memory budget), and the per-layer summary.

use crate::codec;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::ggml_type::GgmlType;
use crate::measure::fidelity::{FidelityAcc, RowFidelity};
use crate::measure::{RowStats, TensorStats};
use crate::model::ModelSource;
use crate::pipeline::tiles::{RowDecoder, RowTiles};

/// What the statistics pass computes and how.
#[derive(Clone, Debug)]
pub struct StatsOptions {
    /// Outlier threshold in units of the row RMS.
    pub outlier_k: f32,
    /// Types to measure the round-trip error of.
    pub types: Vec<GgmlType>,
    /// Upper bound on the bytes of one tile's buffers.
    pub max_memory: u64,
    /// Keep per-row statistics and errors (for JSON).
    pub per_row: bool,
}

impl Default for StatsOptions {
    fn default() -> Self {
        StatsOptions {
            outlier_k: super::DEFAULT_OUTLIER_K,
            types: Vec::new(),
            max_memory: 256 << 20,
            per_row: false,
        }
    }
}

/// The round-trip fidelity of one tensor under one type, or why it was not measured.
#[derive(Clone, Debug)]
pub enum TypeFidelity {
    /// Measured through `via`: the requested type, or the type llama-quantize falls back to
    /// when the type's block does not divide the rows (Q4_K -> Q5_0, Q6_K -> Q8_0, …).
    Measured {
        via: GgmlType,
        acc: FidelityAcc,
        rows: Option<Vec<RowFidelity>>,
    },
    Skipped(String),
}

/// The types of a statistics run: each one checked (gpuq encodes and decodes it), repeats
/// dropped, order kept.
pub fn stats_types(types: &[GgmlType]) -> Result<Vec<GgmlType>> {
    let mut out: Vec<GgmlType> = Vec::new();
    for &ty in types {
        if !codec::can_encode(ty) || !codec::can_decode(ty) {
            return Err(Error::Invalid(format!(
                "--type {ty}: gpuq has no {ty} encoder/decoder"
            )));
        }
        if !out.contains(&ty) {
            out.push(ty);
        }
    }
    Ok(out)
}

/// One tensor's report.
#[derive(Clone, Debug)]
pub struct TensorReport {
    pub name: String,
    /// ne0 first.
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    pub layer: Option<u32>,
    pub stats: TensorStats,
    /// Per-row statistics, when asked for.
    pub rows: Option<Vec<RowStats>>,
    /// One entry per requested type, in order.
    pub errors: Vec<(GgmlType, TypeFidelity)>,
}

impl TensorReport {
    /// True for weight matrices (two or more dimensions).
    pub fn is_matrix(&self) -> bool {
        self.dims.len() >= 2
    }

    pub fn error(&self, ty: GgmlType) -> Option<&FidelityAcc> {
        self.errors
            .iter()
            .find(|(t, _)| *t == ty)
            .and_then(|(_, e)| match e {
                TypeFidelity::Measured { acc, .. } => Some(acc),
                TypeFidelity::Skipped(_) => None,
            })
    }

    /// The largest relative Frobenius error over the measured types (for `--sort worst`).
    pub fn worst_error(&self) -> Option<f64> {
        self.errors
            .iter()
            .filter_map(|(t, _)| self.error(*t))
            .map(|e| e.metrics().rel_frobenius)
            .fold(None, |m, x| Some(m.map_or(x, |m: f64| m.max(x))))
    }
}

/// The layer number of a tensor named `blk.N.…`.
pub fn layer_of(name: &str) -> Option<u32> {
    let rest = name.strip_prefix("blk.")?;
    let (n, _) = rest.split_once('.')?;
    n.parse().ok()
}

/// The type that measures a tensor for `ty`: `ty` itself, or llama-quantize's fallback when
/// `ty`'s block does not divide the rows; `Err` says why nothing can.
fn measured_type(dims: &[u64], ty: GgmlType) -> std::result::Result<GgmlType, String> {
    if dims.len() < 2 {
        return Err("1-D tensor (llama-quantize keeps these in F32)".into());
    }
    let row_len = dims[0];
    let via = crate::policy::fallback_type(row_len, ty).ok_or_else(|| {
        format!(
            "row length {row_len} is not a multiple of {ty}'s block of {} and {ty} has no fallback",
            ty.block_elems()
        )
    })?;
    if !codec::can_encode(via) || !codec::can_decode(via) {
        return Err(format!("gpuq has no {via} codec"));
    }
    Ok(via)
}

/// Rows per tile under `max_memory`: the f32 source, the round trip and the largest encoded row.
pub fn tile_rows(max_memory: u64, row_len: u64, extra_row_bytes: u64, n_rows: u64) -> u64 {
    let per_row = row_len * 8 + extra_row_bytes;
    (max_memory / per_row.max(1)).clamp(1, n_rows.max(1))
}

/// Computes the report of tensor `index` of `src`, streaming it in tiles of whole rows.
pub fn analyze_tensor(
    src: &dyn ModelSource,
    index: usize,
    opts: &StatsOptions,
    eng: &Engine,
) -> Result<TensorReport> {
    let t = src
        .tensors()
        .get(index)
        .ok_or_else(|| Error::Invalid(format!("{}: no tensor #{index}", src.describe())))?;
    let bad =
        |what: String| Error::Invalid(format!("{}: tensor {}: {what}", src.describe(), t.name));
    let row_len = t.row_len();
    let n_rows = t.n_rows();
    let row_bytes = t.ty.row_bytes(row_len).filter(|&b| b > 0).ok_or_else(|| {
        bad(format!(
            "row length {row_len} is not a whole number of {} blocks",
            t.ty
        ))
    })?;
    if !codec::can_decode(t.ty) {
        return Err(bad(format!("gpuq cannot decode {} tensors", t.ty)));
    }
    let want = n_rows
        .checked_mul(row_bytes)
        .ok_or_else(|| bad("size overflows".into()))?;
    if src.tensor_len(index) < want {
        return Err(bad(format!(
            "holds {} bytes, its shape needs {want}",
            src.tensor_len(index)
        )));
    }
    let errors_for: Vec<(GgmlType, std::result::Result<GgmlType, String>)> = opts
        .types
        .iter()
        .map(|&ty| (ty, measured_type(&t.dims, ty)))
        .collect();
    let extra = errors_for
        .iter()
        .filter_map(|(_, via)| via.as_ref().ok())
        .filter_map(|via| via.row_bytes(row_len))
        .max()
        .unwrap_or(0);
    let tile = tile_rows(opts.max_memory, row_len, extra + row_bytes, n_rows);
    let rl = row_len as usize;

    let mut stats = TensorStats::default();
    let mut rows_out = opts.per_row.then(Vec::new);
    let mut accs: Vec<(FidelityAcc, Option<Vec<RowFidelity>>)> = errors_for
        .iter()
        .map(|_| (FidelityAcc::default(), opts.per_row.then(Vec::new)))
        .collect();
    let mut x = Vec::new();
    let mut rt = Vec::new();
    let decoder = RowDecoder::of(src, index, t)?;
    let mut tiles = RowTiles::new(src, index, tile)?;
    while let Some(tile) = tiles.next_tile()? {
        x.resize((tile.rows * row_len) as usize, 0.0);
        decoder.decode(eng, tile.bytes, &mut x)?;
        let (rows, hist) = eng.tile_stats(&x, rl, opts.outlier_k)?;
        stats.add_tile(tile.r0, &rows, &hist);
        if let Some(v) = rows_out.as_mut() {
            v.extend_from_slice(&rows);
        }
        for ((_, via), (acc, per_row)) in errors_for.iter().zip(accs.iter_mut()) {
            let Ok(via) = via else {
                continue;
            };
            rt.resize(x.len(), 0.0);
            eng.round_trip(*via, &x, rl, &mut rt)?;
            let errs = eng.tile_fidelity(&x, &rt, rl)?;
            acc.add_tile(tile.r0, &errs);
            if let Some(v) = per_row.as_mut() {
                v.extend_from_slice(&errs);
            }
        }
    }
    let errors = errors_for
        .into_iter()
        .zip(accs)
        .map(|((ty, via), (acc, rows))| {
            (
                ty,
                match via {
                    Err(why) => TypeFidelity::Skipped(why),
                    Ok(via) => TypeFidelity::Measured { via, acc, rows },
                },
            )
        })
        .collect();
    Ok(TensorReport {
        name: t.name.clone(),
        dims: t.dims.clone(),
        ty: t.ty,
        layer: layer_of(&t.name),
        stats,
        rows: rows_out,
        errors,
    })
}

/// A layer's summary: its weight matrices taken together (1-D tensors are left out).
#[derive(Clone, Debug)]
pub struct LayerSummary {
    /// `None` for the tensors outside `blk.N.` (embeddings, output).
    pub layer: Option<u32>,
    pub tensors: usize,
    pub params: u64,
    pub finite: u64,
    pub sum_abs: f64,
    pub sum_sq: f64,
    pub absmax: f64,
    /// The largest `absmax / absmean` of the layer's matrices.
    pub peak_ratio: f64,
    /// The tensor with that ratio.
    pub peak_tensor: String,
    pub outliers: u64,
    pub nonfinite: u64,
    pub errors: Vec<(GgmlType, FidelityAcc)>,
}

impl LayerSummary {
    pub fn absmean(&self) -> f64 {
        self.sum_abs / self.finite as f64
    }
    pub fn rms(&self) -> f64 {
        (self.sum_sq / self.finite as f64).sqrt()
    }
    pub fn error(&self, ty: GgmlType) -> Option<&FidelityAcc> {
        self.errors
            .iter()
            .find(|(t, _)| *t == ty)
            .map(|(_, e)| e)
            .filter(|e| e.n > 0)
    }
    pub fn worst_error(&self) -> Option<f64> {
        self.errors
            .iter()
            .filter(|(_, e)| e.n > 0)
            .map(|(_, e)| e.metrics().rel_frobenius)
            .fold(None, |m, x| Some(m.map_or(x, |m: f64| m.max(x))))
    }
}

/// Per-layer summaries in layer order (the non-layer group last), over the matrices.
pub fn layer_summaries(tensors: &[TensorReport], types: &[GgmlType]) -> Vec<LayerSummary> {
    let mut out: Vec<LayerSummary> = Vec::new();
    for t in tensors.iter().filter(|t| t.is_matrix()) {
        let i = match out.iter().position(|l| l.layer == t.layer) {
            Some(i) => i,
            None => {
                out.push(LayerSummary {
                    layer: t.layer,
                    tensors: 0,
                    params: 0,
                    finite: 0,
                    sum_abs: 0.0,
                    sum_sq: 0.0,
                    absmax: 0.0,
                    peak_ratio: 0.0,
                    peak_tensor: String::new(),
                    outliers: 0,
                    nonfinite: 0,
                    errors: types
                        .iter()
                        .map(|&ty| (ty, FidelityAcc::default()))
                        .collect(),
                });
                out.len() - 1
            }
        };
        let l = &mut out[i];
        let s = &t.stats;
        l.tensors += 1;
        l.params += s.n;
        l.finite += s.finite;
        l.sum_abs += s.sum_abs.value();
        l.sum_sq += s.sum_sq.value();
        if s.absmax() > l.absmax {
            l.absmax = s.absmax();
        }
        let pr = s.peak_ratio();
        if pr > l.peak_ratio {
            l.peak_ratio = pr;
            l.peak_tensor = t.name.clone();
        }
        l.outliers += s.outliers;
        l.nonfinite += s.nan + s.inf;
        for (ty, acc) in l.errors.iter_mut() {
            if let Some(e) = t.error(*ty) {
                acc.merge(e);
            }
        }
    }
    out.sort_by_key(|l| l.layer.map_or(u64::MAX, u64::from));
    out
}
