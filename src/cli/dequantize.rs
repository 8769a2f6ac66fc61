//! `gpuq dequantize IN.gguf -o OUT.gguf --type F32|F16|BF16`: every quantized tensor (and
//! every 2-D float weight) back to one float type, streamed tile by tile.

use crate::cli::progress::run_job;
use crate::engine::Backend;
use crate::error::Result;
use crate::ggml_type::GgmlType;
use crate::jobs::dequantize::dequantize_with;
use crate::model::open_source;
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
    #[arg(long, default_value = "2G", value_parser = crate::cli::args::parse_size)]
    pub max_memory: u64,
    /// No progress output.
    #[arg(short, long)]
    pub quiet: bool,
    /// Ollama's qwen35 / qwen35moe / qwen3next GGUFs: keep their names and metadata as they are
    /// (by default they are rewritten the way llama.cpp loads them, a line per fix).
    #[arg(long)]
    pub keep_names: bool,
    #[command(flatten)]
    pub write: crate::cli::write_args::WriteArgs,
}

pub fn run(a: Args) -> Result<()> {
    let src =
        crate::model::ollama::apply(open_source(&a.input)?, a.keep_names, &mut |line: String| {
            if !a.quiet {
                eprintln!("gpuq: {line}")
            }
        })?;
    let s = run_job(a.backend, a.quiet, |engine, progress| {
        dequantize_with(
            src.as_ref(),
            &a.output,
            a.ty,
            a.max_memory,
            &a.write.options(true),
            engine,
            progress,
        )
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
