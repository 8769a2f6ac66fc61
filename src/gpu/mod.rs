//! The wgpu backend: device context, pipeline cache, staging pool, codec kernels.
//!
//! Everything that touches wgpu sits behind the cargo feature `gpu`; [`GpuError`] and the
//! embedded WGSL text ([`wgsl`]) exist in every build.

pub mod wgsl;

#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("{0}")]
    Placeholder(String),
}
