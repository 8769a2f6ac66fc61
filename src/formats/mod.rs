//! Readers and writers of model files.

pub mod gguf;
pub mod safetensors;
