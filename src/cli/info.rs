//! `gpuq info`: the GPU adapter gpuq would use, its limits, and the backend choice.

use crate::engine::{Backend, Engine};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Backend to report on: auto (GPU only if it is a real GPU), cpu, gpu (wgpu even on a
    /// software adapter).
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    pub backend: Backend,
}

pub fn run(args: Args) -> crate::Result<()> {
    println!("gpuq {}", env!("CARGO_PKG_VERSION"));
    if args.backend != Backend::Cpu {
        print_adapter(args.backend)?;
    }
    let engine = Engine::new(args.backend)?;
    println!("{}", engine.describe());
    if args.backend != Backend::Auto {
        // Also say what auto would do, without building a second runner when cpu was asked.
        let auto = Engine::new(Backend::Auto)?;
        println!("auto would choose {}", auto.backend());
    } else {
        println!("auto chooses {}", engine.backend());
    }
    Ok(())
}

#[cfg(feature = "gpu")]
fn print_adapter(backend: Backend) -> crate::Result<()> {
    use crate::gpu::context::GpuContext;
    println!("wgpu 30 (GPUQ_BACKEND narrows: vulkan, metal, dx12, gl)");
    match GpuContext::shared() {
        Ok(ctx) => {
            println!("{}", ctx.report());
            let kernels: Vec<String> = crate::gpu::table::GPU_CODECS
                .iter()
                .map(|c| {
                    let mut d = Vec::new();
                    if c.encode.is_some() {
                        d.push("encode");
                    }
                    if c.decode.is_some() {
                        d.push("decode");
                    }
                    let scale = if c.scale == crate::gpu::table::Scale::Tensor {
                        ", tensor scale"
                    } else {
                        ""
                    };
                    format!("{} ({}{scale})", c.ty, d.join("+"))
                })
                .collect();
            println!("gpu kernels: {}", kernels.join(", "));
            println!("routing (everything else runs on the CPU twin):");
            for line in crate::engine::routes::describe() {
                println!("  {line}");
            }
            Ok(())
        }
        Err(e)
            if backend == Backend::Auto && !matches!(e, crate::gpu::GpuError::BadBackendEnv(_)) =>
        {
            println!("adapter:     none ({e})");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(not(feature = "gpu"))]
fn print_adapter(backend: Backend) -> crate::Result<()> {
    println!("adapter:     none (built without the `gpu` feature)");
    if backend == Backend::Gpu {
        return Err(crate::gpu::GpuError::NotBuilt.into());
    }
    Ok(())
}
