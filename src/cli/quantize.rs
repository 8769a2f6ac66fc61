//! `gpuq quantize`: llama-quantize's job, streamed through the pipeline.

use crate::cli::progress::run_job;
use crate::engine::Backend;
use crate::error::{Error, Result};
use crate::ggml_type::GgmlType;
use crate::model::open_source_with;
use crate::pipeline;
use crate::policy::Mixture;
use crate::quantize::{self, QuantizeOptions};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Input model: a GGUF file (F32/F16/BF16 or, with --allow-requantize, quantized) or a
    /// Hugging Face folder (config.json, *.safetensors, tokenizer.json).
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
    /// Per-tensor override REGEX=TYPE (first match wins; may repeat).
    #[arg(long = "tensor-type", value_name = "REGEX=TYPE")]
    pub tensor_type: Vec<String>,
    /// Quantize weights holding NaN or Inf instead of stopping.
    #[arg(long)]
    pub allow_nonfinite: bool,
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    pub backend: Backend,
    /// CPU worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Memory for tile buffers, e.g. 512M, 2G.
    #[arg(long, default_value = "2G", value_parser = parse_size)]
    pub max_memory: u64,
    /// TQ1_0 / TQ2_0: BitNet b1.58 absmean ternarization, one scale per row (per-channel) or
    /// per tensor (per-tensor), instead of llama-quantize's block absmax. BitNet checkpoints
    /// are per-tensor by default (their own scale); I2_S is always per-tensor.
    #[arg(long, value_name = "per-channel|per-tensor")]
    pub ternary_scale: Option<crate::codec::absmean::TernaryScale>,
    /// Print, per TQ1_0 / TQ2_0 tensor, the relative (Frobenius) error of per-channel vs
    /// per-tensor absmean scaling on the same weights.
    #[arg(long)]
    pub report: bool,
    /// Print the plan (tensor, from, to, bytes) and the output size; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// No progress output.
    #[arg(short, long)]
    pub quiet: bool,
    /// Hugging Face folder: write this tokenizer.ggml.pre instead of identifying it.
    #[arg(long, value_name = "NAME")]
    pub vocab_pre: Option<String>,
    /// Hugging Face folder: ignore the tokenizer files and write the weights only.
    #[arg(long)]
    pub no_tokenizer: bool,
}

/// Parses sizes like `2G`, `512M`, `1.5GiB`, `4096`.
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a size (try 512M or 2G)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        u => {
            return Err(format!(
                "unknown size unit '{u}' in '{s}' (use K, M, G or T)"
            ));
        }
    };
    if !(n.is_finite() && n > 0.0) {
        return Err(format!("'{s}' is not a positive size"));
    }
    Ok((n * mult as f64) as u64)
}

fn parse_override(s: &str) -> Result<(String, GgmlType)> {
    let (pat, ty) = s.rsplit_once('=').ok_or_else(|| {
        Error::Invalid(format!(
            "--tensor-type '{s}': expected REGEX=TYPE, e.g. attn_v=q8_0"
        ))
    })?;
    let ty: GgmlType = ty
        .parse()
        .map_err(|e| Error::Invalid(format!("--tensor-type '{s}': {e}")))?;
    Ok((pat.to_string(), ty))
}

pub fn run(a: Args) -> Result<()> {
    let output = a
        .output
        .clone()
        .or(a.output_pos.clone())
        .ok_or_else(|| Error::Invalid("no output file: pass -o OUT.gguf".into()))?;
    let ty_name = a.ty.clone().or(a.type_pos.clone()).ok_or_else(|| {
        Error::Invalid("no quantization type: pass --type Q4_K_M (or Q8_0, Q6_K, …)".into())
    })?;
    let mixture = Mixture::parse(&ty_name).map_err(Error::Invalid)?;
    if let Some(n) = a.threads {
        // the global pool can be configured once; a second call (tests) keeps the first
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global();
    }

    let hf_opts = crate::model::hf::HfOptions {
        vocab_pre: a.vocab_pre.clone(),
        no_tokenizer: a.no_tokenizer,
    };
    let src = open_source_with(&a.input, &hf_opts)?;
    if !a.dry_run {
        refuse_same_file(&a.input, &output)?;
    }
    let opts = QuantizeOptions {
        mixture,
        pure: a.pure,
        output_tensor_type: a.output_tensor_type,
        token_embedding_type: a.token_embedding_type,
        leave_output_tensor: a.leave_output_tensor,
        allow_requantize: a.allow_requantize,
        overrides: a
            .tensor_type
            .iter()
            .map(|s| parse_override(s))
            .collect::<Result<_>>()?,
        allow_nonfinite: a.allow_nonfinite,
        max_memory: a.max_memory,
        imatrix: None,
        ternary_scale: a.ternary_scale,
        ternary_report: a.report,
    };
    let plans = quantize::plan(src.as_ref(), &opts)?;
    if a.dry_run {
        print_plan(src.as_ref(), &plans);
        return Ok(());
    }

    let s = run_job(a.backend, a.quiet, |engine, progress| {
        quantize::quantize(src.as_ref(), &output, engine, &opts, progress)
    })?;
    if a.report {
        print_ternary_report(&s.ternary_report);
    }
    if !a.quiet {
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

/// The `--report` table: relative error of absmean ternarization, per-channel vs per-tensor.
fn print_ternary_report(rows: &[pipeline::TernaryReport]) {
    if rows.is_empty() {
        println!("ternary report: no TQ1_0 / TQ2_0 tensor");
        return;
    }
    println!(
        "{:<44} {:>14} {:>14}",
        "tensor", "rel err p-chan", "rel err p-tens"
    );
    for r in rows {
        println!(
            "{:<44} {:>14.6} {:>14.6}",
            r.name, r.per_channel, r.per_tensor
        );
    }
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

fn print_plan(src: &dyn pipeline::ModelSource, plans: &[crate::policy::TensorPlan]) {
    let mut in_total = 0u64;
    let mut out_total = 0u64;
    println!(
        "{:<44} {:>8} {:>8} {:>14} {:>14}  note",
        "tensor", "from", "to", "bytes in", "bytes out"
    );
    for (i, (t, p)) in src.tensors().iter().zip(plans).enumerate() {
        let bytes_in = src.tensor_len(i);
        let bytes_out = p.target.tensor_bytes(&t.dims).unwrap_or(0);
        in_total += bytes_in;
        out_total += bytes_out;
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
            "{:<44} {:>8} {:>8} {:>14} {:>14}  {note}",
            t.name,
            t.ty.name(),
            p.target.name(),
            bytes_in,
            bytes_out
        );
    }
    println!(
        "total: {} tensors, {:.2} MiB -> {:.2} MiB",
        plans.len(),
        in_total as f64 / (1 << 20) as f64,
        out_total as f64 / (1 << 20) as f64
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("1.5GiB"), Ok(3 << 29));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("-1G").is_err());
    }
}
