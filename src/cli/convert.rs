//! `gpuq convert`: llama.cpp's `convert_hf_to_gguf.py` job, streamed: a Hugging Face folder to
//! a GGUF in one of the converter's output types, with no intermediate file.

use crate::cli::progress::run_job;
use crate::error::{Error, Result};
use crate::ggml_type::GgmlType;
use crate::jobs::convert::convert_with;
use crate::model::hf::{HfOptions, HfSource};
use std::path::PathBuf;

/// The converter's `--outtype` values gpuq writes.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutType {
    F32,
    F16,
    Bf16,
    #[value(name = "q8_0")]
    Q8_0,
}

impl OutType {
    pub fn ggml(self) -> GgmlType {
        match self {
            OutType::F32 => GgmlType::F32,
            OutType::F16 => GgmlType::F16,
            OutType::Bf16 => GgmlType::BF16,
            OutType::Q8_0 => GgmlType::Q8_0,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A Hugging Face model folder (config.json, *.safetensors, tokenizer.model or tokenizer.json).
    pub input: PathBuf,
    /// Output GGUF.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Type of the 2-D weights (norms and biases stay F32, as in convert_hf_to_gguf.py).
    #[arg(long, value_enum, default_value_t = OutType::F16)]
    pub outtype: OutType,
    /// Write this tokenizer.ggml.pre instead of identifying the BPE pre-tokenizer (a
    /// SentencePiece tokenizer.model always gets "default").
    #[arg(long, value_name = "NAME")]
    pub vocab_pre: Option<String>,
    /// Ignore the tokenizer files and write the weights only.
    #[arg(long)]
    pub no_tokenizer: bool,
    #[command(flatten)]
    pub run: crate::cli::run_args::RunArgs,
    #[command(flatten)]
    pub write: crate::cli::write_args::WriteArgs,
}

pub fn run(a: Args) -> Result<()> {
    if !a.input.is_dir() {
        return Err(Error::Invalid(format!(
            "{}: gpuq convert takes a Hugging Face model folder (for a GGUF file use gpuq quantize)",
            a.input.display()
        )));
    }
    crate::cli::run_args::set_threads(a.run.threads);
    let opts = HfOptions {
        vocab_pre: a.vocab_pre.clone(),
        no_tokenizer: a.no_tokenizer,
    };
    let src = HfSource::open(&a.input, &opts)?;
    let outtype = a.outtype.ggml();
    let s = run_job(a.run.backend, a.run.quiet, |engine, progress| {
        let w = a.write.options(true);
        convert_with(
            &src,
            &a.output,
            outtype,
            a.run.max_memory,
            &w,
            engine,
            progress,
        )
    })?;
    if !a.run.quiet {
        eprintln!(
            "gpuq: {} -> {} ({:?}): {} tensors, {:.2} MiB -> {:.2} MiB, {:.2} s",
            a.input.display(),
            a.output.display(),
            a.outtype,
            s.tensors,
            s.input_bytes as f64 / (1 << 20) as f64,
            s.output_bytes as f64 / (1 << 20) as f64,
            s.seconds
        );
    }
    Ok(())
}
