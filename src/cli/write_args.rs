//! The output checks every command that writes a GGUF shares: `--no-space-check`,
//! `--no-verify`, `--no-map-output`.

use crate::formats::gguf::{Store, WriteOptions};

#[derive(clap::Args, Debug, Clone, Default)]
pub struct WriteArgs {
    /// Write even when the output's file system has less free space than the output needs.
    #[arg(long)]
    pub no_space_check: bool,
    /// Keep the output without validating the written bytes first (as `gpuq verify` does).
    #[arg(long)]
    pub no_verify: bool,
    /// Write the output with pwrite from one thread instead of filling it in place through a
    /// memory map (the default on Linux when the file system can reserve the file's space).
    #[arg(long)]
    pub no_map_output: bool,
}

impl WriteArgs {
    pub fn options(&self, allow_nonfinite: bool) -> WriteOptions {
        WriteOptions {
            space_check: !self.no_space_check,
            verify: !self.no_verify,
            allow_nonfinite,
            store: if self.no_map_output {
                Store::Write
            } else {
                Store::Mapped
            },
        }
    }
}
