//! The size target (`gpuq quantize --target-size 14G` / `--target-bpw 4.25`): one type per
//! tensor, chosen by measured damage so that the output fits a byte budget.
//!
//! Two passes over the source, at most: [`plan_to_target`] measures every quantizable tensor at
//! every candidate type on sampled rows (`measure::damage`), and `policy::target::allocate`
//! picks the types; the quantize job then writes with the plan as per-tensor assignments
//! ([`SizePlan::assignments`] into `QuantizeOptions::assigned`). A plan saved as JSON is
//! applied again without the first pass.
//!
//! Damage of tensor `t` at type `c` is its relative error `err / energy` on the measured rows
//! (imatrix-weighted when there is one: the expected relative error of the tensor's output),
//! and the damages of tensors add up. A weight matrix's output error, relative to its output,
//! is that matrix's relative error; every matrix adds its output to the residual stream, so
//! each counts once whatever its size. That makes a byte in a small tensor (attn_k / attn_v of
//! a grouped-query model) worth more than one in a large one, as llama-quantize's fixed rules
//! also assume.
//!
//! What is measured and what is not: tensors that llama-quantize would quantize under the base
//! mixture and that no `--tensor-type` pins; each gets the candidate types whose block divides
//! its rows (never a fallback), that gpuq encodes, and that do not need an imatrix it lacks.
//! Everything else keeps the base plan's type and its bytes are taken off the budget first.

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::formats::gguf::{self, TensorSpec, Value};
use crate::ggml_type::GgmlType;
use crate::jobs::quantize::{self, QuantizeOptions};
use crate::measure::damage::{TensorDamage, sample_rows, weighted_error};
use crate::model::ModelSource;
use crate::pipeline::tiles::RowDecoder;
use crate::pipeline::{Progress, output_metadata, tensor_weights};
use crate::policy::runtime::{RuntimeMemory, runtime_memory};
use crate::policy::target::{Candidate, allocate};
use crate::policy::{Mixture, requires_imatrix};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

pub use crate::measure::damage::DEFAULT_SAMPLE_ROWS;

/// The metadata key naming how the types were chosen (a string).
pub const RECIPE_KEY: &str = "quantize.gpuq.recipe";

/// What the output must fit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// The whole output file, header included, in bytes.
    Size(u64),
    /// Bits per weight over every tensor's data (tensor bytes * 8 / elements, as the quantize
    /// summary reports it).
    Bpw(f64),
    /// Memory for llama.cpp to run the model with a context of `ctx` tokens: the file gets
    /// what is left after the KV cache, recurrent state and compute buffer
    /// (`policy::runtime`; `compute`: a measured compute buffer instead of the estimate).
    Memory {
        total: u64,
        ctx: u64,
        compute: Option<u64>,
    },
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Size(b) => write!(f, "target-size {b} bytes"),
            Target::Bpw(x) => write!(f, "target-bpw {x}"),
            Target::Memory { total, ctx, .. } => {
                write!(f, "target-memory {total} bytes at ctx {ctx}")
            }
        }
    }
}

/// How a tensor's measured error counts in the sum the allocation minimises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Damage {
    /// `err / energy`: every matrix's relative output error counts the same, whatever its
    /// size or scale.
    Relative,
    /// `err` scaled from the measured rows to the whole tensor: the absolute squared output
    /// error (imatrix-weighted: its expected value), so tensors of larger weights or more
    /// rows count more.
    Absolute,
}

impl Damage {
    fn name(self) -> &'static str {
        match self {
            Damage::Relative => "relative",
            Damage::Absolute => "absolute",
        }
    }
}

/// How to fit.
#[derive(Clone, Debug)]
pub struct TargetOptions {
    pub target: Target,
    /// What is summed.
    pub damage: Damage,
    /// Candidate types; `None`: [`default_candidates`].
    pub types: Option<Vec<GgmlType>>,
    /// Rows measured per tensor (all rows of smaller tensors).
    pub sample_rows: u64,
}

impl TargetOptions {
    pub fn new(target: Target) -> Self {
        TargetOptions {
            target,
            damage: Damage::Relative,
            types: None,
            sample_rows: DEFAULT_SAMPLE_ROWS,
        }
    }
}

/// The default candidates: the k-quants, IQ4_XS, Q8_0 and F16; with an imatrix also the
/// i-quants that need one (IQ3_S, IQ3_XXS, IQ2_S, IQ2_XS, IQ2_XXS).
pub fn default_candidates(has_imatrix: bool) -> Vec<GgmlType> {
    use GgmlType as G;
    let mut v = vec![
        G::Q2_K,
        G::Q3_K,
        G::IQ4_XS,
        G::Q4_K,
        G::Q5_K,
        G::Q6_K,
        G::Q8_0,
        G::F16,
    ];
    if has_imatrix {
        v.extend([G::IQ2_XXS, G::IQ2_XS, G::IQ2_S, G::IQ3_XXS, G::IQ3_S]);
    }
    v
}

/// One tensor of a size plan.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedTensor {
    pub name: String,
    /// The output type, by ggml name.
    #[serde(rename = "type")]
    pub ty: String,
    /// Bytes of the tensor's data at that type.
    pub bytes: u64,
    pub elements: u64,
    /// The measured relative error at that type (`None`: not measured, the base plan's type).
    pub damage: Option<f64>,
    /// Every measured candidate: type name -> relative error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<(String, f64)>,
}

/// A per-tensor type assignment that fits a budget; saved as JSON (`--save-plan`) and applied
/// again (`--plan`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SizePlan {
    /// The format of this file (1).
    pub version: u32,
    /// What was asked, in words (also written to the output under [`RECIPE_KEY`]).
    pub recipe: String,
    /// The base mixture (`general.file_type` of the output).
    pub mixture: String,
    /// The output file's size (header included) and its tensor bytes.
    pub file_bytes: u64,
    pub tensor_bytes: u64,
    pub bits_per_weight: f64,
    /// The budget the measured tensors shared and the summed damage of the choice (in the
    /// unit of the recipe's damage).
    pub budget: u64,
    pub damage: f64,
    /// The Lagrange multiplier of the allocation (damage per byte).
    pub lambda: f64,
    /// `--target-memory`: what llama.cpp needs besides the weights, in bytes (KV cache,
    /// recurrent state, compute buffer), taken off the memory first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeMemory>,
    /// Every tensor of the model, in the source's order.
    pub tensors: Vec<PlannedTensor>,
}

impl SizePlan {
    /// The types as `QuantizeOptions::assigned` takes them.
    pub fn assignments(&self) -> Result<HashMap<String, GgmlType>> {
        self.tensors
            .iter()
            .map(|t| {
                let ty: GgmlType = t.ty.parse().map_err(|e| {
                    Error::Invalid(format!("size plan: tensor {}: type {}: {e}", t.name, t.ty))
                })?;
                Ok((t.name.clone(), ty))
            })
            .collect()
    }

    /// The plan as JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|e| Error::Invalid(format!("size plan: cannot write JSON: {e}")))
    }

    /// Reads a plan saved by [`SizePlan::to_json`]; `what` names it in errors.
    pub fn from_json(text: &str, what: &str) -> Result<SizePlan> {
        let p: SizePlan = serde_json::from_str(text)
            .map_err(|e| Error::Invalid(format!("{what}: not a gpuq size plan: {e}")))?;
        if p.version != 1 {
            return Err(Error::Invalid(format!(
                "{what}: size plan version {} (this gpuq reads version 1)",
                p.version
            )));
        }
        Ok(p)
    }

    /// The mixture whose `general.file_type` the output carries.
    pub fn base_mixture(&self) -> Result<&'static Mixture> {
        Mixture::parse(&self.mixture).map_err(Error::Invalid)
    }
}

/// The base mixture when none is named: the `_M` mixture (or the pure one) whose default
/// type holds the most weights of the plan.
pub fn mixture_for(types: &[(GgmlType, u64)]) -> &'static Mixture {
    let mut by: HashMap<GgmlType, u64> = HashMap::new();
    for &(t, n) in types {
        *by.entry(t).or_default() += n;
    }
    let mut ranked: Vec<(GgmlType, u64)> = by.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.id().cmp(&b.0.id())));
    let preferred = |t: GgmlType| {
        let all: Vec<&'static Mixture> = crate::policy::MIXTURES
            .iter()
            .filter(|m| m.default == t)
            .collect();
        all.iter()
            .find(|m| m.name.ends_with("_M"))
            .or(all.first())
            .copied()
    };
    ranked
        .iter()
        .find_map(|&(t, _)| preferred(t))
        .or_else(|| Mixture::parse("Q4_K_M").ok())
        .unwrap_or(&crate::policy::MIXTURES[0])
}

/// Measures tensor `index` of `src` at every type of `types` (see `measure::damage`): the
/// sampled rows, encoded and decoded through `engine` with `imatrix` (the tensor's
/// `ne0 * ne2` importance weights, a row of them per expert slice) as the pipeline passes them.
pub fn measure_tensor(
    src: &dyn ModelSource,
    index: usize,
    engine: &Engine,
    types: &[GgmlType],
    imatrix: Option<&[f32]>,
    max_rows: u64,
) -> Result<TensorDamage> {
    let t = src
        .tensors()
        .get(index)
        .ok_or_else(|| Error::Invalid(format!("{}: no tensor #{index}", src.describe())))?;
    let row_len = t.row_len() as usize;
    let rows_per_slice = t.dims.get(1).copied().unwrap_or(1).max(1);
    if let Some(w) = imatrix {
        let want = t.row_len() * t.dims.get(2).copied().unwrap_or(1);
        if w.len() as u64 != want {
            return Err(Error::Invalid(format!(
                "{}: tensor {}: the imatrix has {} values for it, its shape needs {want}",
                src.describe(),
                t.name,
                w.len()
            )));
        }
    }
    let decoder = RowDecoder::of(src, index, t)?;
    let rows = sample_rows(t.n_rows(), max_rows);
    let mut scratch = Vec::new();
    let mut out = TensorDamage {
        energy: 0.0,
        errors: types.iter().map(|&ty| (ty, 0.0)).collect(),
        rows: rows.len() as u64,
    };
    // the sampled rows of one expert slice at a time: they share their importance weights
    let mut start = 0;
    while start < rows.len() {
        let slice = rows[start] / rows_per_slice;
        let n = rows[start..]
            .iter()
            .take_while(|&&r| r / rows_per_slice == slice)
            .count();
        let group = &rows[start..start + n];
        let mut x = vec![0f32; group.len() * row_len];
        for (k, &r) in group.iter().enumerate() {
            let bytes = src.read_rows(index, r, 1, &mut scratch)?;
            decoder.decode(engine, bytes, &mut x[k * row_len..(k + 1) * row_len])?;
        }
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(Error::Invalid(format!(
                "{}: tensor {}: row {} holds {} (NaN/Inf weights cannot be measured)",
                src.describe(),
                t.name,
                group[i / row_len],
                x[i]
            )));
        }
        let s = slice as usize;
        let w = imatrix.map(|w| &w[s * row_len..(s + 1) * row_len]);
        out.energy += weighted_error(&x, &x, row_len, w).1;
        let mut y = vec![0f32; x.len()];
        for (ty, err) in out.errors.iter_mut() {
            let bytes = engine.encode(*ty, &x, row_len, w).map_err(|e| {
                Error::Invalid(format!(
                    "{}: tensor {}: measuring {ty}: {e}",
                    src.describe(),
                    t.name
                ))
            })?;
            engine.decode_into(*ty, &bytes, row_len, &mut y)?;
            *err += weighted_error(&x, &y, row_len, w).0;
        }
        start += n;
    }
    Ok(out)
}

/// The first pass of a size target: measures the quantizable tensors of `src` and chooses
/// their types so that the output fits `topts.target`. `qopts` are the rest of the quantize
/// options (its mixture is the base: the types of the tensors not measured, and the output's
/// `general.file_type`); `base_named`: the user named that mixture (else the plan names the
/// mixture of its most common type).
pub fn plan_to_target(
    src: &dyn ModelSource,
    engine: &Engine,
    qopts: &QuantizeOptions,
    base_named: bool,
    topts: &TargetOptions,
    progress: &dyn Progress,
) -> Result<SizePlan> {
    let here = src.describe();
    let base = quantize::plan(src, qopts)?;
    let types = topts
        .types
        .clone()
        .unwrap_or_else(|| default_candidates(qopts.imatrix.is_some()));
    if types.is_empty() {
        return Err(Error::Invalid("size target: no candidate types".into()));
    }
    let ftype = qopts.mixture.ftype;
    let tensors = src.tensors();
    // the importance weights the write pass uses (the plan above refused mismatched entries;
    // token_embd's is ignored, as llama-quantize ignores it)
    let weights: Vec<Option<&[f32]>> = tensors
        .iter()
        .map(|t| tensor_weights(src, t, qopts.imatrix.as_ref()))
        .collect::<Result<_>>()?;

    // which tensors are measured, with which candidate types
    let mut measured: Vec<Option<Vec<GgmlType>>> = Vec::with_capacity(tensors.len());
    for (i, (t, p)) in tensors.iter().zip(&base).enumerate() {
        let open = p.convert
            && p.target.is_quantized()
            && !p.overridden
            && src.ternary(i).is_none()
            && t.dims.iter().filter(|&&d| d > 1).count() >= 2;
        let cands: Vec<GgmlType> = types
            .iter()
            .copied()
            .filter(|&ty| {
                t.ty.row_bytes(t.row_len()).is_some()
                    && t.row_len() % ty.block_elems() == 0
                    && crate::codec::can_encode_tensor(ty)
                    && ty != GgmlType::I2_S
                    && (!requires_imatrix(&t.name, ty, ftype) || weights[i].is_some())
            })
            .collect();
        measured.push((open && !cands.is_empty()).then_some(cands));
    }

    // the output's layout: the header (with the recipe key) and the alignment
    let recipe = format!(
        "gpuq {}: per-tensor types by measured {} {} error, {} candidate types",
        topts.target,
        if qopts.imatrix.is_some() {
            "imatrix-weighted"
        } else {
            "unweighted"
        },
        topts.damage.name(),
        types.len()
    );
    let mut extra = qopts.metadata.clone();
    extra.push((RECIPE_KEY.to_string(), Value::String(recipe.clone())));
    let md = output_metadata(src.metadata(), Some(ftype), &extra);
    let specs: Vec<TensorSpec> = tensors
        .iter()
        .zip(&base)
        .map(|(t, p)| TensorSpec {
            name: t.name.clone(),
            ty: p.target,
            dims: t.dims.clone(),
        })
        .collect();
    let layout = gguf::layout(&here, &md, &specs)?;
    let align = layout.alignment;
    let bytes_of = |ty: GgmlType, dims: &[u64]| -> Result<u64> {
        ty.tensor_bytes(dims)
            .ok_or_else(|| Error::Invalid(format!("{here}: a tensor's size overflows")))
    };
    // what a tensor costs against the budget: padded in the file for a size, raw for bpw
    let cost = |bytes: u64| match topts.target {
        Target::Size(_) | Target::Memory { .. } => gguf::pad_to(bytes, align).unwrap_or(u64::MAX),
        Target::Bpw(_) => bytes,
    };
    let params: u64 = tensors.iter().map(|t| t.n_elements()).sum();
    let mut runtime = None;
    let (total_budget, overhead) = match topts.target {
        Target::Size(b) => (b, layout.data_offset),
        Target::Memory {
            total,
            ctx,
            compute,
        } => {
            let r = runtime_memory(&md, ctx, compute)
                .map_err(|e| Error::Invalid(format!("{here}: --target-memory: {e}")))?;
            runtime = Some(r);
            let left = total.checked_sub(r.total()).ok_or_else(|| {
                Error::Invalid(format!(
                    "{here}: --target-memory {total} bytes: llama.cpp needs {} bytes besides the weights at ctx {ctx} (KV cache {}, recurrent state {}, compute buffer {}); give more memory or a shorter --ctx",
                    r.total(),
                    r.kv_cache,
                    r.recurrent_state,
                    r.compute_buffer
                ))
            })?;
            (left, layout.data_offset)
        }
        Target::Bpw(x) if x.is_finite() && x > 0.0 => ((x * params as f64 / 8.0) as u64, 0),
        Target::Bpw(x) => {
            return Err(Error::Invalid(format!(
                "--target-bpw {x}: expected a positive number of bits per weight"
            )));
        }
    };
    let mut fixed = overhead;
    for ((t, p), m) in tensors.iter().zip(&base).zip(&measured) {
        if m.is_none() {
            fixed += cost(bytes_of(p.target, &t.dims)?);
        }
    }
    let budget = total_budget.checked_sub(fixed).ok_or_else(|| {
        Error::Invalid(format!(
            "{here}: {} is below what the tensors that keep their type (norms, pinned, \
             1-D) and the header take alone: {fixed} bytes",
            topts.target
        ))
    })?;

    // the first pass: measure
    let idx: Vec<usize> = (0..tensors.len())
        .filter(|&i| measured[i].is_some())
        .collect();
    progress.start(idx.iter().map(|&i| src.tensor_len(i)).sum(), tensors.len());
    let mut damages: Vec<Option<TensorDamage>> = vec![None; tensors.len()];
    for &i in &idx {
        if progress.cancelled() {
            return Err(Error::Interrupted);
        }
        let t = &tensors[i];
        let cands = measured[i].as_deref().unwrap_or(&[]);
        // the sampled rows, their round trip and the bytes stay inside --max-memory
        let fit = (qopts.max_memory / (12 * t.row_len().max(1))).max(1);
        let rows = topts.sample_rows.min(fit);
        progress.step(
            i,
            &t.name,
            &format!(
                "measuring {} types on {} rows",
                cands.len(),
                rows.min(t.n_rows())
            ),
        );
        damages[i] = Some(measure_tensor(src, i, engine, cands, weights[i], rows)?);
        progress.advance(src.tensor_len(i));
    }
    progress.finish();

    // the choice
    let mut cand_lists: Vec<Vec<Candidate>> = Vec::with_capacity(idx.len());
    for &i in &idx {
        let t = &tensors[i];
        let d = damages[i]
            .as_ref()
            .ok_or_else(|| Error::Invalid("unmeasured".into()))?;
        let scale = t.n_rows() as f64 / d.rows.max(1) as f64;
        let mut c = Vec::new();
        for &(ty, err) in &d.errors {
            c.push(Candidate {
                ty,
                bytes: cost(bytes_of(ty, &t.dims)?),
                damage: match topts.damage {
                    Damage::Relative => d.relative(ty).unwrap_or(0.0),
                    Damage::Absolute => err * scale,
                },
            });
        }
        cand_lists.push(c);
    }
    let alloc = allocate(&cand_lists, budget).map_err(|e| {
        Error::Invalid(format!(
            "{here}: {}: {e} (plus {fixed} bytes that do not change)",
            topts.target
        ))
    })?;

    let mut chosen: Vec<GgmlType> = base.iter().map(|p| p.target).collect();
    let mut damage_of: Vec<Option<f64>> = vec![None; tensors.len()];
    for (k, &i) in idx.iter().enumerate() {
        let c = cand_lists[k][alloc.choice[k]];
        chosen[i] = c.ty;
        damage_of[i] = damages[i].as_ref().and_then(|d| d.relative(c.ty));
    }
    let mixture: &'static Mixture = if base_named {
        qopts.mixture
    } else {
        mixture_for(
            &idx.iter()
                .map(|&i| (chosen[i], tensors[i].n_elements()))
                .collect::<Vec<_>>(),
        )
    };
    let mut planned = Vec::with_capacity(tensors.len());
    let mut tensor_bytes = 0u64;
    for (i, t) in tensors.iter().enumerate() {
        let bytes = bytes_of(chosen[i], &t.dims)?;
        tensor_bytes += bytes;
        planned.push(PlannedTensor {
            name: t.name.clone(),
            ty: chosen[i].name().to_string(),
            bytes,
            elements: t.n_elements(),
            damage: damage_of[i],
            candidates: damages[i]
                .as_ref()
                .map(|d| {
                    d.errors
                        .iter()
                        .map(|&(ty, _)| (ty.name().to_string(), d.relative(ty).unwrap_or(0.0)))
                        .collect()
                })
                .unwrap_or_default(),
        });
    }
    let file_bytes = layout.data_offset
        + tensors
            .iter()
            .zip(&chosen)
            .map(|(t, &ty)| {
                bytes_of(ty, &t.dims).map(|b| gguf::pad_to(b, align).unwrap_or(u64::MAX))
            })
            .sum::<Result<u64>>()?;
    Ok(SizePlan {
        version: 1,
        recipe,
        mixture: mixture.name.to_string(),
        file_bytes,
        tensor_bytes,
        bits_per_weight: if params > 0 {
            tensor_bytes as f64 * 8.0 / params as f64
        } else {
            0.0
        },
        budget,
        damage: alloc.damage,
        lambda: alloc.lambda,
        runtime,
        tensors: planned,
    })
}

/// The quantize options that write `plan`: its types as assignments, its base mixture, its
/// recipe in the metadata.
pub fn apply(plan: &SizePlan, mut qopts: QuantizeOptions) -> Result<QuantizeOptions> {
    qopts.mixture = plan.base_mixture()?;
    qopts.assigned = Some(plan.assignments()?);
    qopts.metadata.retain(|(k, _)| k != RECIPE_KEY);
    qopts
        .metadata
        .push((RECIPE_KEY.to_string(), Value::String(plan.recipe.clone())));
    Ok(qopts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_mixture_follows_the_most_common_type() {
        use GgmlType as G;
        let m = mixture_for(&[(G::Q4_K, 100), (G::Q6_K, 30), (G::Q4_K, 10)]);
        assert_eq!(m.name, "Q4_K_M");
        assert_eq!(mixture_for(&[(G::Q6_K, 5), (G::Q3_K, 4)]).name, "Q6_K");
        assert_eq!(mixture_for(&[(G::Q3_K, 5)]).name, "Q3_K_M");
        assert_eq!(mixture_for(&[(G::Q8_0, 5)]).name, "Q8_0");
        assert_eq!(mixture_for(&[]).name, "Q4_K_M");
    }

    #[test]
    fn plans_round_trip_through_json() {
        let p = SizePlan {
            version: 1,
            recipe: "r".into(),
            mixture: "Q4_K_M".into(),
            file_bytes: 10,
            tensor_bytes: 8,
            bits_per_weight: 4.5,
            budget: 9,
            damage: 0.25,
            lambda: 1e-9,
            runtime: None,
            tensors: vec![PlannedTensor {
                name: "blk.0.attn_q.weight".into(),
                ty: "Q5_K".into(),
                bytes: 176,
                elements: 256,
                damage: Some(0.01),
                candidates: vec![("Q4_K".into(), 0.02), ("Q5_K".into(), 0.01)],
            }],
        };
        let back = SizePlan::from_json(&p.to_json().unwrap(), "p.json").unwrap();
        assert_eq!(back, p);
        assert_eq!(
            back.assignments().unwrap()["blk.0.attn_q.weight"],
            GgmlType::Q5_K
        );
        assert!(SizePlan::from_json("{}", "x.json").is_err());
        let v2 = p
            .to_json()
            .unwrap()
            .replace("\"version\": 1", "\"version\": 2");
        assert!(SizePlan::from_json(&v2, "x.json").is_err());
    }
}
