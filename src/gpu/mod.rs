//! The wgpu backend: device context, pipeline cache, staging pool.

#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("{0}")]
    Placeholder(String),
}
