//! The crate's error type. Each module that reads files or drives a device has its own error
//! enum (one variant per way input can be wrong); this one wraps them for the API and the CLI.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Gguf(#[from] crate::formats::gguf::GgufError),
    #[error(transparent)]
    Safetensors(#[from] crate::formats::safetensors::SafetensorsError),
    #[error(transparent)]
    Hf(#[from] crate::model::hf::HfError),
    #[error(transparent)]
    Imatrix(#[from] crate::formats::imatrix::ImatrixError),
    #[error(transparent)]
    Codec(#[from] crate::codec::CodecError),
    #[error(transparent)]
    Gpu(#[from] crate::gpu::GpuError),
    /// An input file changed (or shrank under its map) while it was being read.
    #[error(transparent)]
    Changed(#[from] crate::formats::mapped::ChangedError),
    /// The job was cancelled (Ctrl-C, or a caller's [`crate::pipeline::Progress::cancelled`])
    /// between two tiles; no output was left.
    #[error("interrupted; no output written")]
    Interrupted,
    /// A request that cannot be carried out as asked (bad flag combination, unsupported type).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
