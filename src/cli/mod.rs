//! The `gpuq` command line: one module per subcommand, each with its clap `Args` and a `run`.

use clap::{Parser, Subcommand};

pub mod bench;
pub mod info;
pub mod inspect;
pub mod progress;
pub mod quantize;

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
    /// Show the GPU adapter gpuq would use, its limits and the backend choice.
    Info(info::Args),
    /// Describe a GGUF file, a .safetensors file or a Hugging Face model folder.
    Inspect(inspect::Args),
    /// Quantize a GGUF model (llama-quantize's job): `gpuq quantize IN.gguf -o OUT.gguf --type Q4_K_M`.
    Quantize(quantize::Args),
    /// Benchmarks: `gpuq bench codecs` (GB/s per type, CPU vs GPU), `gpuq bench quantize` (vs llama.cpp: time, peak RSS).
    Bench(bench::Args),
}

pub fn run(cli: Cli) -> crate::Result<()> {
    match cli.command {
        Command::Info(a) => info::run(a),
        Command::Inspect(a) => inspect::run(a),
        Command::Quantize(a) => quantize::run(a),
        Command::Bench(a) => bench::run(a),
    }
}
