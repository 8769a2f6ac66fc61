//! Readers and writers of model files.

pub mod gguf;
pub mod imatrix;
pub mod mapped;
pub mod safetensors;
pub mod verify;
