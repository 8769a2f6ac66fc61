//! `gpuq dequantize IN.gguf -o OUT.gguf --type F32|F16|BF16`: every quantized tensor (and
//! every 2-D float weight) back to one float type, streamed tile by tile.

use crate::cli::progress::run_job;
use crate::engine::Backend;
use crate::error::{Error, Result};
use crate::ggml_type::GgmlType;
use crate::model::open_source;
use crate::pipeline::{self, ModelSource, PipelineOptions};
use crate::policy::{TensorPlan, allows_quantization, n_dims};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Input GGUF.
    pub input: PathBuf,
    /// Output GGUF.
    #[arg(short, long)]
    pub output: PathBuf,
    /// F32, F16 or BF16.
    #[arg(long = "type", short = 't', default_value = "F16")]
    pub ty: GgmlType,
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    pub backend: Backend,
    /// Memory for tile buffers, e.g. 512M, 2G.
    #[arg(long, default_value = "2G", value_parser = crate::cli::quantize::parse_size)]
    pub max_memory: u64,
    /// No progress output.
    #[arg(short, long)]
    pub quiet: bool,
    /// Ollama's qwen35 / qwen35moe / qwen3next GGUFs: keep their names and metadata as they are
    /// (by default they are rewritten the way llama.cpp loads them, a line per fix).
    #[arg(long)]
    pub keep_names: bool,
}

/// The target of each tensor: quantized tensors and 2-D+ float weights become `ty`; 1-D
/// tensors, integer tensors and the float tensors llama-quantize never quantizes (llama.cpp's
/// converter keeps `ssm_conv1d` and the MoE router F32, and llama.cpp's SSM conv wants F32)
/// keep their type.
pub fn dequantize_plan(src: &dyn ModelSource, ty: GgmlType) -> Result<Vec<TensorPlan>> {
    src.tensors()
        .iter()
        .map(|t| {
            let float = matches!(t.ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16);
            let weight = n_dims(&t.dims) >= 2 && allows_quantization(&t.name, &t.dims, true);
            let target = if t.ty.is_quantized() || (float && weight) {
                ty
            } else {
                t.ty
            };
            if target != t.ty && !crate::codec::can_decode_tensor(t.ty) {
                return Err(Error::Invalid(format!(
                    "{}: tensor {}: gpuq cannot decode {}",
                    src.describe(),
                    t.name,
                    t.ty
                )));
            }
            Ok(TensorPlan {
                target,
                convert: target != t.ty,
                overridden: false,
                fallback: false,
                requires_imatrix: false,
            })
        })
        .collect()
}

pub fn run(a: Args) -> Result<()> {
    let file_type = match a.ty {
        GgmlType::F32 => 0,
        GgmlType::F16 => 1,
        GgmlType::BF16 => 32,
        t => {
            return Err(Error::Invalid(format!(
                "--type {t}: dequantize writes F32, F16 or BF16"
            )));
        }
    };
    let src =
        crate::model::ollama::apply(open_source(&a.input)?, a.keep_names, &mut |line: String| {
            if !a.quiet {
                eprintln!("gpuq: {line}")
            }
        })?;
    let plans = dequantize_plan(src.as_ref(), a.ty)?;
    let opts = PipelineOptions {
        max_memory: a.max_memory,
        imatrix: None,
        allow_nonfinite: true,
        file_type: Some(file_type),
        ternary_scale: None,
        ternary_report: false,
        metadata: Vec::new(),
        loader_order: false,
        error_report: false,
    };
    let s = run_job(a.backend, a.quiet, |engine, progress| {
        pipeline::run(src.as_ref(), &plans, &a.output, engine, &opts, progress)
    })?;
    if !a.quiet {
        eprintln!(
            "gpuq: {} -> {}: {} tensors ({} converted), {:.2} MiB -> {:.2} MiB, {:.2} s",
            a.input.display(),
            a.output.display(),
            s.tensors,
            s.converted,
            s.input_bytes as f64 / 1048576.0,
            s.output_bytes as f64 / 1048576.0,
            s.seconds
        );
    }
    Ok(())
}
