//! `gpuq inspect`

use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A .gguf file, a .safetensors file or a Hugging Face model folder.
    pub path: PathBuf,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

pub fn run(_args: Args) -> crate::Result<()> {
    Err(crate::Error::Invalid(
        "gpuq inspect: not implemented yet".into(),
    ))
}
