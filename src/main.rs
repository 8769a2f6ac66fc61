use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = gpuq::cli::Cli::parse();
    match gpuq::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gpuq: error: {e}");
            ExitCode::from(2)
        }
    }
}
