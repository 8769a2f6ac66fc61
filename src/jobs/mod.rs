//! The jobs, as library functions: plan, then run the pipeline. The CLI only parses arguments
//! for them and prints what they return.
//!
//! - [`quantize`]: llama-quantize's job (a GGUF file, its splits, or a Hugging Face folder).
//! - [`dequantize`]: quantized tensors back to F32 / F16 / BF16.
//! - [`convert`]: a Hugging Face folder to GGUF, as `convert_hf_to_gguf.py` writes it.
//! - [`target`]: the types that fit a size (`--target-size`), by measured damage; then quantize.
//! - [`inspect`]: what a model file holds (metadata, tensors, totals) as JSON, no tensor data read.
//! - [`fix`]: a model copied as it is (with `model::ollama`: an Ollama GGUF in llama.cpp's layout).
//! - the statistics job is [`crate::stats::report::analyze_tensor`] per tensor.

pub mod convert;
pub mod dequantize;
pub mod fix;
pub mod inspect;
pub mod prune;
pub mod quantize;
pub mod target;
