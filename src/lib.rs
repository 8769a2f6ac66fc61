//! gpuq: a GPU compute engine (wgpu + WGSL) for quantizing LLM weights into llama.cpp's GGUF
//! formats, with a native CPU reference path that produces the same bytes.

pub mod cli;
pub mod codec;
pub mod engine;
pub mod error;
pub mod formats;
pub mod ggml_type;
pub mod gpu;
pub mod jobs;
pub mod measure;
pub mod model;
pub mod pipeline;
pub mod policy;
pub mod stats;

pub use engine::{Backend, Engine};
pub use error::{Error, Result};
pub use ggml_type::GgmlType;
pub use jobs::quantize;
pub use jobs::quantize::{QuantizeOptions, quantize};
pub use policy::Mixture;
