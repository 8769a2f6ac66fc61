//! safetensors checkpoints, single-file and sharded.

#[derive(Debug, thiserror::Error)]
pub enum SafetensorsError {
    #[error("{0}")]
    Placeholder(String),
}
