//! The `gpuq` command line: one module per subcommand, each with its clap `Args` and a `run`.

use clap::{Parser, Subcommand};

pub mod args;
pub mod bench;
pub mod convert;
pub mod dequantize;
pub mod fix;
pub mod format;
pub mod info;
pub mod inspect;
pub mod progress;
pub mod prune;
pub mod quantize;
pub mod quantize_report;
pub mod run_args;
pub mod stats;
pub mod verify;
pub mod write_args;

#[derive(Parser, Debug)]
#[command(
    name = "gpuq",
    version,
    about = "GPU quantizer for LLM weights (GGUF, llama.cpp-compatible)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Convert a Hugging Face folder to GGUF (convert_hf_to_gguf.py's job): `gpuq convert DIR -o OUT.gguf --outtype f16`.
    Convert(convert::Args),
    /// Show the GPU adapter gpuq would use, its limits and the backend choice.
    Info(info::Args),
    /// Describe a GGUF file, a .safetensors file or a Hugging Face model folder.
    Inspect(inspect::Args),
    /// Rewrite an Ollama qwen35 / qwen35moe / qwen3next GGUF the way llama.cpp loads it
    /// (names and metadata; tensors copied, not re-encoded): `gpuq fix IN.gguf -o OUT.gguf`.
    Fix(fix::Args),
    /// Dequantize a GGUF model to F32, F16 or BF16.
    Dequantize(dequantize::Args),
    /// Quantize a GGUF model (llama-quantize's job): `gpuq quantize IN.gguf -o OUT.gguf --type Q4_K_M`.
    Quantize(Box<quantize::Args>),
    /// Equilibrium pruning, structural (MLP channels, attention heads, linear-attention V heads)
    /// or unstructured, quantized in the same pass: `gpuq prune IN -o OUT.gguf --type Q4_K_M --mlp-keep 0.75`.
    Prune(Box<prune::Args>),
    /// Per-tensor and per-layer weight statistics and quantization error: `gpuq stats M.gguf --type Q4_0,Q4_K`.
    Stats(stats::Args),
    /// Check a GGUF file as llama.cpp would (block scales, metadata, shapes, splits): exit 0 when sound, 1 with the findings.
    Verify(verify::Args),
    /// Benchmarks: `gpuq bench codecs` (GB/s per type, CPU vs GPU), `gpuq bench quantize` (vs llama.cpp: time, peak RSS).
    Bench(bench::Args),
}

pub fn run(cli: Cli) -> crate::Result<()> {
    match cli.command {
        Command::Convert(a) => convert::run(a),
        Command::Info(a) => info::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Quantize(a) => quantize::run(*a),
        Command::Dequantize(a) => dequantize::run(a),
        Command::Fix(a) => fix::run(a),
        Command::Prune(a) => prune::run(*a),
        Command::Stats(a) => stats::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Verify(a) => verify::run(a),
    }
}
