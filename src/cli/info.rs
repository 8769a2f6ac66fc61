//! `gpuq info`

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> crate::Result<()> {
    Err(crate::Error::Invalid(
        "gpuq info: not implemented yet".into(),
    ))
}
