//! `gpuq fix IN.gguf -o OUT.gguf`: an Ollama-published qwen35 / qwen35moe / qwen3next GGUF
//! rewritten the way llama.cpp loads it (src/model/ollama.rs): names and metadata changed,
//! tensors copied byte for byte (the MTP experts stacked as they are; only the MTP norms, which
//! llama.cpp stores with +1, are rewritten, as F32). Written to OUT.gguf.tmp, then renamed.

use crate::cli::progress::run_job;
use crate::engine::Backend;
use crate::error::{Error, Result};
use crate::model::ModelSource;
use crate::model::ollama;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Input GGUF (an Ollama model blob).
    pub input: PathBuf,
    /// Output GGUF.
    #[arg(short, long)]
    pub output: PathBuf,
    /// No progress output.
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn run(a: Args) -> Result<()> {
    let src = crate::model::GgufSource::open(&a.input)?;
    let what = src.describe();
    let Some(plan) = ollama::plan(&what, src.metadata(), src.tensors())? else {
        eprintln!(
            "gpuq: {what}: needs no fix (not an Ollama-layout qwen35 / qwen35moe / qwen3next file); nothing written"
        );
        return Ok(());
    };
    let same = matches!(
        (std::fs::canonicalize(&a.input), std::fs::canonicalize(&a.output)),
        (Ok(x), Ok(y)) if x == y
    );
    if same {
        return Err(Error::Invalid(format!(
            "{}: refusing to overwrite the input file; choose another -o",
            a.output.display()
        )));
    }
    drop(plan);
    let src = ollama::apply(Box::new(src), false, &mut |line: String| {
        if !a.quiet {
            eprintln!("gpuq: {line}")
        }
    })?;
    let s = run_job(Backend::Cpu, true, |engine, progress| {
        crate::jobs::fix::copy(src.as_ref(), &a.output, engine, progress)
    })?;
    if !a.quiet {
        eprintln!(
            "gpuq: {} -> {}: {} tensors, {:.2} MiB, {:.2} s",
            a.input.display(),
            a.output.display(),
            s.tensors,
            s.output_bytes as f64 / 1048576.0,
            s.seconds
        );
    }
    Ok(())
}
