//! `gpuq bench`: throughput and memory measurements.
//!
//! - `gpuq bench codecs`: encode/decode GB/s per type, CPU vs GPU and their ratio, one run.
//! - `gpuq bench prune`: equilibrium pruning's score pass GB/s, CPU vs GPU, one run.
//! - `gpuq bench quantize`: a generated Llama-shaped F16 model quantized by `gpuq quantize`
//!   and by llama.cpp's quantizer, each in a child process: wall time, peak RSS, GB/s, and a
//!   check that gpuq's peak RSS stays within `--max-memory` plus a fixed overhead.
//! - `gpuq bench make-model`: only write the generated model (for tests and reuse).

use crate::cli::args::parse_size;
use crate::error::Result;
use std::path::PathBuf;

pub mod codecs;
pub mod prune;
pub mod quantize;
pub mod rss;
pub mod synth;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

#[derive(clap::Subcommand, Debug)]
pub enum What {
    /// Encode/decode GB/s per type, CPU vs GPU.
    Codecs(codecs::Args),
    /// Equilibrium pruning's score pass GB/s (element scores, energies, group scores), CPU vs GPU.
    Prune(prune::Args),
    /// gpuq vs llama.cpp's quantizer on a generated model: wall time, peak RSS, GB/s.
    Quantize(quantize::Args),
    /// Write a seeded Llama-shaped F16 GGUF of about the given size (streamed, tensor by tensor).
    MakeModel(MakeModelArgs),
}

#[derive(clap::Args, Debug)]
pub struct MakeModelArgs {
    /// Output GGUF.
    pub output: PathBuf,
    /// Size of the F16 model, e.g. 300M, 8G.
    #[arg(long, value_parser = parse_size)]
    pub size: u64,
    /// Seed of the weights.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

pub fn run(a: Args) -> Result<()> {
    match a.what {
        What::Codecs(a) => codecs::run(a),
        What::Prune(a) => prune::run(a),
        What::Quantize(a) => quantize::run(a),
        What::MakeModel(a) => {
            let shape = synth::LlamaShape::for_f16_bytes(a.size);
            synth::write_llama_f16(&a.output, &shape, a.seed)?;
            eprintln!("gpuq bench: wrote {} ({shape})", a.output.display());
            Ok(())
        }
    }
}
