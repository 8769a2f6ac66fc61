//! The output checks every command that writes a GGUF shares: `--no-space-check`,
//! `--no-verify`.

use crate::formats::gguf::WriteOptions;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct WriteArgs {
    /// Write even when the output's file system has less free space than the output needs.
    #[arg(long)]
    pub no_space_check: bool,
    /// Keep the output without validating the written bytes first (as `gpuq verify` does).
    #[arg(long)]
    pub no_verify: bool,
}

impl WriteArgs {
    pub fn options(&self, allow_nonfinite: bool) -> WriteOptions {
        WriteOptions {
            space_check: !self.no_space_check,
            verify: !self.no_verify,
            allow_nonfinite,
        }
    }
}
