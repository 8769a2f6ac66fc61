//! The GGUF container (versions 2 and 3): reader, writer, metadata values.

#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("{0}")]
    Placeholder(String),
}
