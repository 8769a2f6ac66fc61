//! The library's quantize job: plan the type of every tensor as llama-quantize does, refuse
//! what it refuses (before any output exists), then stream the model through the pipeline.

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::formats::gguf::Value;
use crate::formats::imatrix::Imatrix;
use crate::ggml_type::GgmlType;
use crate::model::ModelSource;
use crate::pipeline::{self, PipelineOptions, Progress, Summary};
use crate::policy::{Hparams, Mixture, PlanOptions, TensorDesc, TensorPlan, plan_types};
use std::collections::HashMap;
use std::path::Path;

/// What to produce; the fields mirror llama-quantize's flags.
#[derive(Clone, Debug)]
pub struct QuantizeOptions {
    pub mixture: &'static Mixture,
    /// `--pure`
    pub pure: bool,
    /// `--output-tensor-type`
    pub output_tensor_type: Option<GgmlType>,
    /// `--token-embedding-type`
    pub token_embedding_type: Option<GgmlType>,
    /// `--leave-output-tensor`
    pub leave_output_tensor: bool,
    /// `--allow-requantize`
    pub allow_requantize: bool,
    /// `--tensor-type REGEX=TYPE`, first match wins.
    pub overrides: Vec<(String, GgmlType)>,
    /// Quantize NaN/Inf weights instead of stopping.
    pub allow_nonfinite: bool,
    /// Bytes of tile buffers held at once.
    pub max_memory: u64,
    /// Per-column importance weights by tensor name (`--imatrix`, see
    /// [`crate::formats::imatrix::Imatrix`]).
    pub imatrix: Option<HashMap<String, Vec<f32>>>,
    /// Keys set in the output's metadata after the input's (e.g. `quantize.imatrix.*`).
    pub metadata: Vec<(String, Value)>,
    /// `--ternary-scale`: TQ1_0 / TQ2_0 tensors get BitNet's absmean ternarization with one
    /// scale per row or per tensor; `None` keeps llama-quantize's block absmax, byte for byte.
    pub ternary_scale: Option<crate::codec::absmean::TernaryScale>,
    /// `--report`: every converted tensor's quantization error, the written bytes decoded
    /// against the source (`Summary::errors`), and per TQ1_0 / TQ2_0 tensor the relative error
    /// of per-channel vs per-tensor absmean scaling (`Summary::ternary_report`).
    pub report: bool,
    /// `--hybrid-policy`: per-role floors for SSM / DeltaNet / MTP tensors (default: none,
    /// llama-quantize's choices).
    pub hybrid_policy: crate::policy::HybridPolicy,
    /// The writer's checks (`--no-space-check`, `--no-verify`); `allow_nonfinite` is taken
    /// from the field above.
    pub write: crate::formats::gguf::WriteOptions,
    /// The type of every tensor by name, decided elsewhere (a size plan, `jobs::target`):
    /// replaces the mixture's choices; every tensor of the model must be named.
    pub assigned: Option<HashMap<String, GgmlType>>,
}

impl QuantizeOptions {
    /// Options for a mixture by llama-quantize's name (`Q4_K_M`, `Q8_0`, …), 2 GiB of tiles.
    pub fn new(mixture: &str) -> Result<Self> {
        Ok(QuantizeOptions {
            mixture: Mixture::parse(mixture).map_err(Error::Invalid)?,
            pure: false,
            output_tensor_type: None,
            token_embedding_type: None,
            leave_output_tensor: false,
            allow_requantize: false,
            overrides: Vec::new(),
            allow_nonfinite: false,
            max_memory: 2 << 30,
            imatrix: None,
            metadata: Vec::new(),
            ternary_scale: None,
            report: false,
            hybrid_policy: crate::policy::HybridPolicy::Default,
            write: Default::default(),
            assigned: None,
        })
    }

    /// Uses the importance matrix `m`, read from `file`, as llama-quantize does: its entries
    /// feed the scale searches and the output gets the `quantize.imatrix.*` keys (after the
    /// metadata already set; `file` is written as given). An imatrix left without entries
    /// (every one filtered out) is not used.
    pub fn set_imatrix(&mut self, m: Imatrix, file: &Path) {
        if m.entries.is_empty() {
            self.imatrix = None;
            return;
        }
        self.metadata.extend(m.output_metadata(file));
        self.imatrix = Some(m.entries);
    }
}

/// A `--tensor-type REGEX=TYPE` override, as llama-quantize reads it: the pattern is
/// lowercased (tensor names are), the type is a ggml type name.
pub fn parse_tensor_type(s: &str) -> Result<(String, GgmlType)> {
    let (pat, ty) = s.rsplit_once('=').ok_or_else(|| {
        Error::Invalid(format!(
            "--tensor-type '{s}': expected REGEX=TYPE, e.g. attn_v=q8_0"
        ))
    })?;
    let ty: GgmlType = ty
        .parse()
        .map_err(|e| Error::Invalid(format!("--tensor-type '{s}': {e}")))?;
    Ok((pat.to_lowercase(), ty))
}

/// Model facts for the mixture rules, from GGUF metadata (`{arch}.block_count`, head counts,
/// expert count).
pub fn hparams(md: &[(String, Value)]) -> Hparams {
    let get = |k: &str| md.iter().find(|(key, _)| key == k).map(|(_, v)| v);
    let arch = get("general.architecture")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    // per-layer arrays (head_count_kv of hybrid models) count by their first layer, as llama.cpp
    let num = |suffix: &str| {
        get(&format!("{arch}.{suffix}")).and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_array().and_then(|a| a.get(0)).and_then(|x| x.as_u64()))
        })
    };
    let n_head = num("attention.head_count").unwrap_or(0) as u32;
    Hparams {
        n_layer: num("block_count").unwrap_or(0) as u32,
        n_head,
        n_head_kv: num("attention.head_count_kv")
            .map(|v| v as u32)
            .unwrap_or(n_head),
        n_expert: num("expert_count").unwrap_or(0) as u32,
        arch,
    }
}

/// The type of every tensor of `src` (same order), after the checks llama-quantize makes:
/// no re-quantizing without `allow_requantize`, no type that needs an imatrix without one,
/// and only types gpuq can decode and encode.
pub fn plan(src: &dyn ModelSource, opts: &QuantizeOptions) -> Result<Vec<TensorPlan>> {
    let mut p = PlanOptions::new(opts.mixture);
    p.pure = opts.pure;
    p.output_tensor_type = opts.output_tensor_type;
    p.token_embedding_type = opts.token_embedding_type;
    p.leave_output_tensor = opts.leave_output_tensor;
    p.overrides = opts.overrides.clone();
    p.has_imatrix = opts.imatrix.is_some();
    p.hybrid_policy = opts.hybrid_policy;
    let bitnet = (0..src.tensors().len()).any(|i| src.ternary(i).is_some());
    p.ternary_policy = match opts.mixture.default {
        GgmlType::I2_S => true,
        GgmlType::TQ1_0 | GgmlType::TQ2_0 => bitnet,
        _ => false,
    };
    let descs: Vec<TensorDesc> = src
        .tensors()
        .iter()
        .map(|t| TensorDesc {
            name: t.name.clone(),
            dims: t.dims.clone(),
            ty: t.ty,
        })
        .collect();
    let mut plans = plan_types(&descs, &hparams(src.metadata()), &p)
        .map_err(|e| Error::Invalid(format!("{}: {e}", src.describe())))?;
    for (i, (t, p)) in src.tensors().iter().zip(plans.iter_mut()).enumerate() {
        if let Some(ty) = src
            .unquantized_type(i)
            .filter(|&ty| !p.convert && ty != t.ty)
        {
            p.target = ty;
            p.convert = true;
        }
    }

    if let Some(a) = &opts.assigned {
        assign(src, a, opts.mixture.ftype, &mut plans)?;
    }

    for (i, (t, p)) in src.tensors().iter().zip(&plans).enumerate() {
        let here = || format!("{}: tensor {}", src.describe(), t.name);
        if opts.ternary_scale == Some(crate::codec::absmean::TernaryScale::PerChannel) {
            let known = matches!(
                src.ternary(i),
                Some(crate::model::TernarySource::Known { .. })
            );
            if p.target == GgmlType::I2_S {
                return Err(Error::Invalid(format!(
                    "{}: --ternary-scale per-channel: I2_S holds one scale per tensor",
                    here()
                )));
            }
            if known && crate::codec::absmean::supports(p.target) {
                return Err(Error::Invalid(format!(
                    "{}: --ternary-scale per-channel: the tensor is already ternary with one \
                     scale (a packed BitNet checkpoint); a scale per row would change the model",
                    here()
                )));
            }
        }
        if p.convert && t.ty.is_quantized() && !opts.allow_requantize {
            return Err(Error::Invalid(format!(
                "{}: is already {}; re-quantizing loses quality (pass --allow-requantize to do it anyway)",
                here(),
                t.ty
            )));
        }
        let weights = opts.imatrix.as_ref().and_then(|m| m.get(&t.name));
        if p.requires_imatrix && weights.is_none() {
            return Err(Error::Invalid(format!(
                "{}: would be {}, which needs an importance matrix: pass --imatrix FILE (from llama-imatrix) with an entry for this tensor, or choose another type",
                here(),
                p.target
            )));
        }
        if let Some(w) = weights.filter(|_| p.convert) {
            let want = t.row_len() * t.dims.get(2).copied().unwrap_or(1);
            // llama-quantize ignores a mismatched token_embd entry (it always mismatches in
            // some old files) and stops on any other
            if w.len() as u64 != want && t.name != crate::model::TOKEN_EMBD {
                return Err(Error::Invalid(format!(
                    "{}: the imatrix has {} values for it, its shape needs {want} (ne0 x ne2); was the imatrix made for another model?",
                    here(),
                    w.len()
                )));
            }
        }
        if p.convert && !crate::codec::can_encode_tensor(p.target) {
            return Err(Error::Invalid(format!(
                "{}: gpuq cannot encode {} yet; choose another --type or override it with --tensor-type",
                here(),
                p.target
            )));
        }
        if p.convert && !crate::codec::can_decode_tensor(t.ty) {
            return Err(Error::Invalid(format!(
                "{}: gpuq cannot decode {}",
                here(),
                t.ty
            )));
        }
    }
    Ok(plans)
}

/// Replaces the planned types with `assigned` (a size plan's), refusing a plan made for
/// another model: every tensor must be named, no other name may appear, and every type must
/// divide its tensor's rows.
fn assign(
    src: &dyn ModelSource,
    assigned: &HashMap<String, GgmlType>,
    ftype: u32,
    plans: &mut [TensorPlan],
) -> Result<()> {
    let here = src.describe();
    for (t, p) in src.tensors().iter().zip(plans.iter_mut()) {
        let &ty = assigned.get(&t.name).ok_or_else(|| {
            Error::Invalid(format!(
                "{here}: the size plan has no type for tensor {} (was it made for another model?)",
                t.name
            ))
        })?;
        if ty == p.target {
            continue;
        }
        if ty.row_bytes(t.row_len()).is_none() {
            return Err(Error::Invalid(format!(
                "{here}: the size plan gives tensor {} type {ty}, whose block of {} does not divide its rows of {}",
                t.name,
                ty.block_elems(),
                t.row_len()
            )));
        }
        p.target = ty;
        p.convert = ty != t.ty;
        p.overridden = true;
        p.fallback = false;
        p.requires_imatrix = crate::policy::requires_imatrix(&t.name, ty, ftype);
    }
    if assigned.len() != src.tensors().len() {
        let names: std::collections::HashSet<&str> =
            src.tensors().iter().map(|t| t.name.as_str()).collect();
        if let Some(extra) = assigned.keys().find(|k| !names.contains(k.as_str())) {
            return Err(Error::Invalid(format!(
                "{here}: the size plan names tensor {extra}, which this model does not have (was it made for another model?)"
            )));
        }
    }
    Ok(())
}

/// Quantizes `src` into the GGUF file `output` (written as `output.tmp`, renamed at the end).
///
/// ```
/// use gpuq::formats::gguf::{GgufWriter, TensorSpec, Value};
/// use gpuq::model::{GgufSource, ModelSource};
/// use gpuq::{Backend, Engine, GgmlType, QuantizeOptions, quantize};
///
/// let dir = std::env::temp_dir().join(format!("gpuq-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).map_err(|e| gpuq::Error::io(&dir, e))?;
/// let (input, output) = (dir.join("in.gguf"), dir.join("out.gguf"));
///
/// // a one-tensor F32 model: 4 rows of 256
/// let md = vec![("general.architecture".to_string(), Value::String("llama".into()))];
/// let spec = TensorSpec { name: "blk.0.ffn_up.weight".into(), ty: GgmlType::F32, dims: vec![256, 4] };
/// let mut w = GgufWriter::create(&input, &md, &[spec])?;
/// let rows: Vec<f32> = (0..1024).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
/// w.write_next(&rows.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>())?;
/// w.finish()?;
///
/// let src = GgufSource::open(&input)?;
/// let engine = Engine::new(Backend::Cpu)?;
/// let summary = quantize(&src, &output, &engine, &QuantizeOptions::new("Q8_0")?, &gpuq::pipeline::Quiet)?;
/// assert_eq!(summary.converted, 1);
/// let out = GgufSource::open(&output)?;
/// assert_eq!(out.tensors()[0].ty, GgmlType::Q8_0);
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), gpuq::Error>(())
/// ```
pub fn quantize(
    src: &dyn ModelSource,
    output: &Path,
    engine: &Engine,
    opts: &QuantizeOptions,
    progress: &dyn Progress,
) -> Result<Summary> {
    let plans = plan(src, opts)?;
    let popts = PipelineOptions {
        max_memory: opts.max_memory,
        imatrix: opts.imatrix.clone(),
        allow_nonfinite: opts.allow_nonfinite,
        file_type: Some(opts.mixture.ftype),
        metadata: opts.metadata.clone(),
        loader_order: true,
        ternary_scale: opts.ternary_scale,
        ternary_report: opts.report,
        error_report: opts.report,
        write: crate::formats::gguf::WriteOptions {
            allow_nonfinite: opts.allow_nonfinite,
            ..opts.write
        },
    };
    pipeline::run(src, &plans, output, engine, &popts, progress)
}
