//! `gpuq verify FILE.gguf [--json]`: is this file sound? Exit 0 when it is, 1 with the list of
//! findings (bad input that cannot be parsed at all is an error, exit 2).

use crate::error::Result;
use crate::formats::verify::{VerifyOptions, verify_path};
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The GGUF file (the first split of a split set checks all of them).
    pub input: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Non-finite values and scales are not findings.
    #[arg(long)]
    pub allow_nonfinite: bool,
}

pub fn run(a: Args) -> Result<()> {
    let opts = VerifyOptions {
        allow_nonfinite: a.allow_nonfinite,
        splits: true,
    };
    let report = verify_path(&a.input, &opts)?;
    let mut out = std::io::stdout().lock();
    if a.json {
        let j = serde_json::json!({
            "path": a.input,
            "sound": report.is_sound(),
            "files": report.files,
            "tensors": report.tensors,
            "blocks": report.blocks,
            "findings": report.findings,
        });
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&j).unwrap_or_default()
        );
    } else if report.is_sound() {
        let _ = writeln!(
            out,
            "{}: sound ({} file(s), {} tensors, {} blocks checked)",
            a.input.display(),
            report.files.len(),
            report.tensors,
            report.blocks
        );
    } else {
        let _ = writeln!(
            out,
            "{}: {} finding(s) ({} file(s), {} tensors, {} blocks checked):",
            a.input.display(),
            report.findings.len(),
            report.files.len(),
            report.tensors,
            report.blocks
        );
        for f in &report.findings {
            let _ = writeln!(out, "  {f}");
        }
    }
    let _ = out.flush();
    if !report.is_sound() {
        std::process::exit(1);
    }
    Ok(())
}
