//! `gpuq quantize`: llama-quantize's job, streamed through the pipeline.

use crate::cli::args::parse_size;
use crate::cli::progress::{ProgressReporter, job_engine};
use crate::cli::quantize_report;
use crate::error::{Error, Result};
use crate::formats::gguf::Value;
use crate::formats::imatrix::Imatrix;
use crate::ggml_type::GgmlType;
use crate::jobs::target::{self, SizePlan, Target, TargetOptions};
use crate::model::open_source_with;
use crate::policy::Mixture;
use crate::quantize::{self, QuantizeOptions, parse_tensor_type};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Input model: a GGUF file (F32/F16/BF16 or, with --allow-requantize, quantized) or a
    /// Hugging Face folder (config.json, *.safetensors, tokenizer.model or tokenizer.json).
    pub input: PathBuf,
    /// Output GGUF (may also be given with -o).
    #[arg(value_name = "OUTPUT")]
    pub output_pos: Option<PathBuf>,
    /// Mixture, as llama-quantize names it (may also be given with --type).
    #[arg(value_name = "TYPE")]
    pub type_pos: Option<String>,
    /// Output GGUF.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K_S Q3_K_M Q3_K_L Q4_K_S Q4_K_M Q5_K_S Q5_K_M Q6_K F16 BF16
    /// F32, TQ1_0 TQ2_0 (ternary), I2_S (bitnet.cpp's 2-bit ternary type: only bitnet.cpp reads
    /// such files, llama.cpp does not).
    #[arg(long = "type", short = 't')]
    pub ty: Option<String>,
    /// Every quantizable tensor gets the mixture's default type (no k-quant mixture rules).
    #[arg(long)]
    pub pure: bool,
    /// Type of output.weight.
    #[arg(long)]
    pub output_tensor_type: Option<GgmlType>,
    /// Type of token_embd.weight.
    #[arg(long)]
    pub token_embedding_type: Option<GgmlType>,
    /// Leave output.weight unquantized.
    #[arg(long)]
    pub leave_output_tensor: bool,
    /// Allow re-quantizing tensors that are already quantized.
    #[arg(long)]
    pub allow_requantize: bool,
    /// Per-tensor override REGEX=TYPE (first match wins; may repeat). As llama-quantize does,
    /// the pattern is lowercased.
    #[arg(long = "tensor-type", value_name = "REGEX=TYPE")]
    pub tensor_type: Vec<String>,
    /// A file of REGEX=TYPE overrides separated by spaces or newlines (after --tensor-type's).
    #[arg(long, value_name = "FILE")]
    pub tensor_type_file: Option<PathBuf>,
    /// Set a metadata key in the output: KEY=TYPE:VALUE with TYPE int, float, bool or str
    /// (as llama-quantize: int is written as u32, float as f32; may repeat).
    #[arg(long = "override-kv", value_name = "KEY=TYPE:VALUE")]
    pub override_kv: Vec<String>,
    /// Importance matrix from llama-imatrix (GGUF or legacy .dat): per-column weights for the
    /// scale searches, as llama-quantize uses them.
    #[arg(long, value_name = "FILE")]
    pub imatrix: Option<PathBuf>,
    /// Use the imatrix only for tensors whose name contains NAME (may repeat).
    #[arg(
        long,
        value_name = "NAME",
        requires = "imatrix",
        conflicts_with = "exclude_weights"
    )]
    pub include_weights: Vec<String>,
    /// Do not use the imatrix for tensors whose name contains NAME (may repeat).
    #[arg(long, value_name = "NAME", requires = "imatrix")]
    pub exclude_weights: Vec<String>,
    /// Quantize weights holding NaN or Inf instead of stopping.
    #[arg(long)]
    pub allow_nonfinite: bool,
    #[command(flatten)]
    pub run: crate::cli::run_args::RunArgs,
    /// TQ1_0 / TQ2_0: BitNet b1.58 absmean ternarization, one scale per row (per-channel) or
    /// per tensor (per-tensor), instead of llama-quantize's block absmax. BitNet checkpoints
    /// are per-tensor by default (their own scale); I2_S is always per-tensor.
    #[arg(long, value_name = "per-channel|per-tensor")]
    pub ternary_scale: Option<crate::codec::absmean::TernaryScale>,
    /// Measure every converted tensor's error (the written bytes decoded against the source:
    /// RMSE, max error, relative error, cosine, SNR; per tensor and per layer). Alone: print a
    /// table (as does `--report -`); with FILE.json: write JSON there. TQ1_0 / TQ2_0 tensors
    /// add per-channel vs per-tensor absmean errors.
    #[arg(long, value_name = "FILE.json", num_args = 0..=1, default_missing_value = "-")]
    pub report: Option<PathBuf>,
    /// Per-role floors for hybrid models (Qwen3.5 / Qwen3-Next: SSM, Gated DeltaNet, MTP):
    /// `conservative` keeps the SSM state/decay and conv float, gives the linear-attention
    /// attn_qkv, ssm_alpha, ssm_beta at least Q8_0 and the MTP eh_proj Q8_0. The default is
    /// llama-quantize's choices.
    #[arg(long, value_enum, default_value_t = crate::policy::HybridPolicy::Default)]
    pub hybrid_policy: crate::policy::HybridPolicy,
    /// Ollama's qwen35 / qwen35moe / qwen3next GGUFs: keep their names and metadata as they are
    /// (by default they are rewritten the way llama.cpp loads them, a line per fix).
    #[arg(long)]
    pub keep_names: bool,
    /// Print the plan (tensor, role, from, to, bytes) and the output size; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub write: crate::cli::write_args::WriteArgs,
    /// Hugging Face folder: write this tokenizer.ggml.pre instead of identifying it.
    #[arg(long, value_name = "NAME")]
    pub vocab_pre: Option<String>,
    /// Hugging Face folder: ignore the tokenizer files and write the weights only.
    #[arg(long)]
    pub no_tokenizer: bool,
    /// Fit the output file (header included) to SIZE, e.g. 14G (binary units: 14 GiB): each
    /// tensor's type is chosen by its measured error at every candidate type (a first pass
    /// over sampled rows), the least total relative error that fits. TYPE is optional: it
    /// names the base mixture (the types of the tensors not measured, and the file type).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, conflicts_with_all = ["target_bpw", "plan"])]
    pub target_size: Option<u64>,
    /// As --target-size, for a number of bits per weight over all tensors (e.g. 4.25).
    #[arg(long, value_name = "BPW", conflicts_with_all = ["plan", "target_memory"])]
    pub target_bpw: Option<f64>,
    /// As --target-size, for the memory llama.cpp may use to run the model with --ctx tokens:
    /// the KV cache (F16), recurrent state (hybrid models) and compute buffer are taken off
    /// first (printed), the file gets the rest.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, conflicts_with_all = ["target_size", "plan"])]
    pub target_memory: Option<u64>,
    /// The context length --target-memory leaves room for.
    #[arg(
        long,
        value_name = "TOKENS",
        default_value_t = 4096,
        requires = "target_memory"
    )]
    pub ctx: u64,
    /// --target-memory: llama.cpp's compute buffer as measured (its log says "compute buffer
    /// size") instead of gpuq's estimate.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, requires = "target_memory")]
    pub compute_buffer: Option<u64>,
    /// The candidate types of --target-size / --target-bpw, comma-separated (default: Q2_K
    /// Q3_K IQ4_XS Q4_K Q5_K Q6_K Q8_0 F16, and with --imatrix also IQ2_XXS IQ2_XS IQ2_S
    /// IQ3_XXS IQ3_S).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub target_types: Vec<GgmlType>,
    /// What the size target minimises: the sum of every measured tensor's relative error, or
    /// of its absolute squared error (imatrix-weighted when given).
    #[arg(long, value_enum, default_value_t = crate::jobs::target::Damage::Relative)]
    pub target_damage: crate::jobs::target::Damage,
    /// Rows measured per tensor by --target-size / --target-bpw (all rows of smaller tensors).
    #[arg(long, value_name = "N", default_value_t = crate::jobs::target::DEFAULT_SAMPLE_ROWS)]
    pub sample_rows: u64,
    /// Write the size plan (every tensor's type, bytes and measured errors) as JSON.
    #[arg(long, value_name = "FILE.json")]
    pub save_plan: Option<PathBuf>,
    /// Apply a size plan saved with --save-plan (no measuring pass).
    #[arg(long, value_name = "FILE.json")]
    pub plan: Option<PathBuf>,
}

/// `--tensor-type` then `--tensor-type-file`, in that order (llama-quantize's).
fn overrides(a: &Args) -> Result<Vec<(String, GgmlType)>> {
    let mut v: Vec<(String, GgmlType)> = a
        .tensor_type
        .iter()
        .map(|s| parse_tensor_type(s))
        .collect::<Result<_>>()?;
    if let Some(path) = &a.tensor_type_file {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        for item in text.split_whitespace() {
            v.push(
                parse_tensor_type(item)
                    .map_err(|e| Error::Invalid(format!("{}: {e}", path.display())))?,
            );
        }
    }
    Ok(v)
}

/// `--override-kv KEY=TYPE:VALUE`, as llama.cpp's `string_parse_kv_override` reads it and
/// llama-quantize writes it (int as u32 of the absolute value, float as f32).
pub fn parse_kv_override(s: &str) -> Result<(String, Value)> {
    let bad = |why: &str| {
        Error::Invalid(format!(
            "--override-kv '{s}': {why} (expected KEY=TYPE:VALUE, TYPE int, float, bool or str)"
        ))
    };
    let (key, rest) = s.split_once('=').ok_or_else(|| bad("no '='"))?;
    if key.is_empty() || key.len() >= 128 {
        return Err(bad("the key must be 1 to 127 bytes"));
    }
    let (ty, v) = rest.split_once(':').ok_or_else(|| bad("no TYPE:"))?;
    let value = match ty {
        "int" => {
            let n: i64 = v.trim().parse().map_err(|_| bad("not an integer"))?;
            Value::U32(n.unsigned_abs() as u32)
        }
        "float" => Value::F32(v.trim().parse::<f64>().map_err(|_| bad("not a number"))? as f32),
        "bool" => match v {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(bad("a bool is true or false")),
        },
        "str" if v.len() > 127 => return Err(bad("a string value is at most 127 bytes")),
        "str" => Value::String(v.to_string()),
        _ => return Err(bad("unknown TYPE")),
    };
    Ok((key.to_string(), value))
}

pub fn run(a: Args) -> Result<()> {
    // first: `--report OUT.gguf TYPE` took the output's name as the report's
    let report_file = a.report.as_ref().filter(|p| p.as_os_str() != "-");
    if let Some(r) = report_file {
        quantize_report::check_path(r, a.output.as_ref().or(a.output_pos.as_ref()))?;
    }
    let output = a
        .output
        .clone()
        .or(a.output_pos.clone())
        .ok_or_else(|| Error::Invalid("no output file: pass -o OUT.gguf".into()))?;
    let target = match (a.target_size, a.target_bpw, a.target_memory) {
        (Some(b), _, _) => Some(Target::Size(b)),
        (None, Some(x), _) => Some(Target::Bpw(x)),
        (None, None, Some(m)) => Some(Target::Memory {
            total: m,
            ctx: a.ctx,
            compute: a.compute_buffer,
        }),
        (None, None, None) => None,
    };
    let sized = target.is_some() || a.plan.is_some();
    if a.save_plan.is_some() && target.is_none() {
        return Err(Error::Invalid(
            "--save-plan saves the plan of --target-size, --target-bpw or --target-memory; pass one"
                .into(),
        ));
    }
    let ty_name = match a.ty.clone().or(a.type_pos.clone()) {
        Some(t) => Some(t),
        None if sized => None,
        None => {
            return Err(Error::Invalid(
                "no quantization type: pass --type Q4_K_M (or Q8_0, Q6_K, …), or --target-size"
                    .into(),
            ));
        }
    };
    let mixture = Mixture::parse(ty_name.as_deref().unwrap_or("Q4_K_M")).map_err(Error::Invalid)?;
    crate::cli::run_args::set_threads(a.run.threads);

    let hf_opts = crate::model::hf::HfOptions {
        vocab_pre: a.vocab_pre.clone(),
        no_tokenizer: a.no_tokenizer,
    };
    let src = crate::model::ollama::apply(
        open_source_with(&a.input, &hf_opts)?,
        a.keep_names,
        &mut |line: String| {
            if !a.run.quiet || a.dry_run {
                eprintln!("gpuq: {line}")
            }
        },
    )?;
    if !a.dry_run {
        refuse_same_file(&a.input, &output)?;
    }
    let imatrix = match &a.imatrix {
        Some(path) => {
            let mut m = Imatrix::load(path)?;
            m.filter(&a.include_weights, &a.exclude_weights);
            if !a.run.quiet {
                eprintln!(
                    "gpuq: imatrix {}: {} entries{}{}",
                    path.display(),
                    m.entries.len(),
                    m.datasets
                        .first()
                        .map(|d| format!(", dataset {d}"))
                        .unwrap_or_default(),
                    if m.chunk_count > 0 {
                        format!(", {} chunks", m.chunk_count)
                    } else {
                        String::new()
                    }
                );
            }
            Some(m)
        }
        None => None,
    };
    let mut opts = QuantizeOptions {
        mixture,
        pure: a.pure,
        output_tensor_type: a.output_tensor_type,
        token_embedding_type: a.token_embedding_type,
        leave_output_tensor: a.leave_output_tensor,
        allow_requantize: a.allow_requantize,
        overrides: overrides(&a)?,
        allow_nonfinite: a.allow_nonfinite,
        max_memory: a.run.max_memory,
        // llama-quantize: the user's overrides, then the imatrix keys (set_imatrix below)
        metadata: a
            .override_kv
            .iter()
            .map(|s| parse_kv_override(s))
            .collect::<Result<_>>()?,
        imatrix: None,
        ternary_scale: a.ternary_scale,
        report: a.report.is_some(),
        hybrid_policy: a.hybrid_policy,
        write: a.write.options(a.allow_nonfinite),
        assigned: None,
    };
    if let (Some(m), Some(path)) = (imatrix, &a.imatrix) {
        opts.set_imatrix(m, path);
    }

    // a size target: a measuring pass chooses the types (or a saved plan gives them)
    let mut engine = None;
    let opts = if let Some(path) = &a.plan {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let plan = SizePlan::from_json(&text, &path.display().to_string())?;
        if !a.run.quiet {
            eprintln!(
                "gpuq: size plan {}: {} ({:.2} MiB, {:.3} bits/weight)",
                path.display(),
                plan.recipe,
                plan.file_bytes as f64 / (1 << 20) as f64,
                plan.bits_per_weight
            );
        }
        target::apply(&plan, opts)?
    } else if let Some(t) = target {
        let e = job_engine(a.run.backend, a.run.quiet)?;
        let mut topts = TargetOptions::new(t);
        topts.sample_rows = a.sample_rows;
        topts.damage = a.target_damage;
        if !a.target_types.is_empty() {
            topts.types = Some(a.target_types.clone());
        }
        let plan = target::plan_to_target(
            src.as_ref(),
            &e,
            &opts,
            ty_name.is_some(),
            &topts,
            &ProgressReporter::new(a.run.quiet),
        )?;
        if let Some(path) = &a.save_plan {
            quantize_report::write_atomic(path, plan.to_json()?.as_bytes())?;
            if !a.run.quiet {
                eprintln!("gpuq: size plan written to {}", path.display());
            }
        }
        if a.dry_run {
            print_size_plan(&plan);
            return Ok(());
        }
        if !a.run.quiet {
            eprintln!("{}", size_plan_summary(&plan));
        }
        engine = Some(e);
        target::apply(&plan, opts)?
    } else {
        opts
    };
    let mixture = opts.mixture;

    let plans = quantize::plan(src.as_ref(), &opts)?;
    if let (Some(m), false) = (&opts.imatrix, a.run.quiet) {
        // llama-quantize says "did not find weights for …" per tensor; one line here
        let missing: Vec<&str> = src
            .tensors()
            .iter()
            .zip(&plans)
            .filter(|(t, p)| p.convert && p.target.is_quantized() && !m.contains_key(&t.name))
            .map(|(t, _)| t.name.as_str())
            .collect();
        if !missing.is_empty() {
            let shown = missing
                .iter()
                .take(4)
                .copied()
                .collect::<Vec<_>>()
                .join(", ");
            let more = missing.len().saturating_sub(4);
            eprintln!(
                "gpuq: the imatrix has no entry for {} tensor(s), quantized without weights: {shown}{}",
                missing.len(),
                if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                }
            );
        }
    }
    if a.dry_run {
        print_plan(src.as_ref(), &plans);
        return Ok(());
    }

    // the size target's measuring pass already built the engine; else build it now
    let engine = match engine {
        Some(e) => e,
        None => job_engine(a.run.backend, a.run.quiet)?,
    };
    let backend = engine.describe();
    let s = quantize::quantize(
        src.as_ref(),
        &output,
        &engine,
        &opts,
        &ProgressReporter::new(a.run.quiet),
    )?;
    match (report_file, a.report.is_some()) {
        (Some(r), _) => {
            let j = quantize_report::to_json(&s, &a.input, &output, mixture.name, &backend);
            quantize_report::write_json(r, &j)?;
            if !a.run.quiet {
                eprintln!(
                    "gpuq: report of {} tensors written to {}",
                    s.errors.len(),
                    r.display()
                );
            }
        }
        (None, true) => quantize_report::write_table(&mut std::io::stdout().lock(), &s)
            .map_err(|e| Error::io("<stdout>", e))?,
        (None, false) => {}
    }
    if !a.run.quiet {
        eprintln!(
            "gpuq: {} -> {} ({}): {} tensors ({} converted), {:.2} MiB -> {:.2} MiB, {:.2} bits/weight, {:.2} s, {:.3} GB/s",
            a.input.display(),
            output.display(),
            mixture.name,
            s.tensors,
            s.converted,
            s.input_bytes as f64 / (1 << 20) as f64,
            s.output_bytes as f64 / (1 << 20) as f64,
            s.bits_per_weight(),
            s.seconds,
            s.input_gbps()
        );
    }
    Ok(())
}

/// One paragraph on stderr: what the size plan chose.
fn size_plan_summary(p: &SizePlan) -> String {
    let mut by: std::collections::BTreeMap<&str, (usize, u64)> = Default::default();
    for t in p.tensors.iter().filter(|t| t.damage.is_some()) {
        let e = by.entry(t.ty.as_str()).or_default();
        e.0 += 1;
        e.1 += t.bytes;
    }
    let types = by
        .iter()
        .map(|(ty, (n, b))| format!("{ty} x{n} ({:.1} MiB)", *b as f64 / (1 << 20) as f64))
        .collect::<Vec<_>>()
        .join(", ");
    let runtime = p
        .runtime
        .map(|r| {
            format!(
                "; llama.cpp besides the weights: KV cache {} bytes ({} cells), recurrent state {} bytes, compute buffer {} bytes",
                r.kv_cache, r.cells, r.recurrent_state, r.compute_buffer
            )
        })
        .unwrap_or_default();
    format!(
        "gpuq: size plan ({}): {:.2} MiB file, {:.3} bits/weight, summed damage {:.4e}; measured tensors: {types}{runtime}",
        p.recipe,
        p.file_bytes as f64 / (1 << 20) as f64,
        p.bits_per_weight,
        p.damage
    )
}

/// `--dry-run` of a size target: every tensor's type, bytes and error, then bits per layer.
fn print_size_plan(p: &SizePlan) {
    println!(
        "{:<44} {:>8} {:>14} {:>12}",
        "tensor", "type", "bytes", "rel. error"
    );
    let mut layers: std::collections::BTreeMap<i64, (u64, u64)> = Default::default();
    for t in &p.tensors {
        println!(
            "{:<44} {:>8} {:>14} {:>12}",
            t.name,
            t.ty,
            t.bytes,
            t.damage.map(|d| format!("{d:.4e}")).unwrap_or("-".into())
        );
        let l = crate::policy::loader_order_key(&t.name).0;
        let e = layers.entry(l).or_default();
        e.0 += t.bytes;
        e.1 += t.elements;
    }
    for (l, (bytes, elems)) in &layers {
        let name = if *l < 0 {
            "outside the blocks".to_string()
        } else {
            format!("blk.{l}")
        };
        println!(
            "layer {name:<20} {:>8.3} bits/weight",
            *bytes as f64 * 8.0 / (*elems).max(1) as f64
        );
    }
    println!("{}", size_plan_summary(p).trim_start_matches("gpuq: "));
}

fn refuse_same_file(input: &std::path::Path, output: &std::path::Path) -> Result<()> {
    let same = match (std::fs::canonicalize(input), std::fs::canonicalize(output)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        return Err(Error::Invalid(format!(
            "{}: refusing to overwrite the input file; choose another -o",
            output.display()
        )));
    }
    Ok(())
}

fn print_plan(src: &dyn crate::model::ModelSource, plans: &[crate::policy::TensorPlan]) {
    let mut in_total = 0u64;
    let mut out_total = 0u64;
    let roles = crate::policy::roles(src.tensors().iter().map(|t| t.name.as_str()));
    // per output type: tensors, parameters, bytes
    let mut by_type: std::collections::BTreeMap<&str, (usize, u64, u64)> = Default::default();
    println!(
        "{:<44} {:<13} {:>8} {:>8} {:>14} {:>14}  note",
        "tensor", "role", "from", "to", "bytes in", "bytes out"
    );
    for (i, (t, p)) in src.tensors().iter().zip(plans).enumerate() {
        let bytes_in = src.tensor_len(i);
        let bytes_out = p.target.tensor_bytes(&t.dims).unwrap_or(0);
        in_total += bytes_in;
        out_total += bytes_out;
        let e = by_type.entry(p.target.name()).or_default();
        e.0 += 1;
        e.1 += t.n_elements();
        e.2 += bytes_out;
        let note = [
            (p.overridden, "override"),
            (p.fallback, "fallback"),
            (!p.convert, "copy"),
        ]
        .iter()
        .filter(|(b, _)| *b)
        .map(|(_, s)| *s)
        .collect::<Vec<_>>()
        .join(",");
        println!(
            "{:<44} {:<13} {:>8} {:>8} {:>14} {:>14}  {note}",
            t.name,
            roles[i].name(),
            t.ty.name(),
            p.target.name(),
            bytes_in,
            bytes_out
        );
    }
    let params: u64 = src.tensors().iter().map(|t| t.n_elements()).sum();
    for (ty, (n, elems, bytes)) in &by_type {
        println!(
            "type {ty:<8} {n:>5} tensors {elems:>14} weights {:>12.2} MiB",
            *bytes as f64 / (1 << 20) as f64
        );
    }
    println!(
        "total: {} tensors, {:.2} MiB -> {:.2} MiB ({} bytes of tensor data, {:.3} bits/weight)",
        plans.len(),
        in_total as f64 / (1 << 20) as f64,
        out_total as f64 / (1 << 20) as f64,
        out_total,
        if params > 0 {
            out_total as f64 * 8.0 / params as f64
        } else {
            0.0
        }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_overrides_parse_as_llama_quantize_writes_them() {
        let ok = |s: &str| parse_kv_override(s).unwrap();
        assert_eq!(ok("a.b=int:-7"), ("a.b".into(), Value::U32(7)));
        assert_eq!(ok("x=float:0.1"), ("x".into(), Value::F32(0.1)));
        assert_eq!(ok("x=bool:false"), ("x".into(), Value::Bool(false)));
        assert_eq!(
            ok("x=str:a=b:c"),
            ("x".into(), Value::String("a=b:c".into()))
        );
        for bad in ["x", "x=int", "x=int:z", "x=bool:yes", "=str:a", "x=u8:1"] {
            assert!(parse_kv_override(bad).is_err(), "{bad}");
        }
        assert!(parse_kv_override(&format!("x=str:{}", "a".repeat(128))).is_err());
    }
}
