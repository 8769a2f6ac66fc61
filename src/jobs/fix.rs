//! `gpuq fix`: a model written as it is, tensor bytes copied, no re-encoding; with the source
//! wrapped by [`crate::model::ollama::apply`] this writes an Ollama-layout qwen35 / qwen35moe /
//! qwen3next GGUF the way llama.cpp loads it.

use crate::engine::Engine;
use crate::error::Result;
use crate::model::ModelSource;
use crate::pipeline::{self, PipelineOptions, Progress, Summary};
use crate::policy::TensorPlan;
use std::path::Path;

/// Writes `src` to `output` (`output.tmp`, then renamed): every tensor in its own type, in the
/// source's order, with the source's metadata.
pub fn copy(
    src: &dyn ModelSource,
    output: &Path,
    engine: &Engine,
    progress: &dyn Progress,
) -> Result<Summary> {
    let plans: Vec<TensorPlan> = src
        .tensors()
        .iter()
        .map(|t| TensorPlan {
            target: t.ty,
            convert: false,
            overridden: false,
            fallback: false,
            requires_imatrix: false,
        })
        .collect();
    let opts = PipelineOptions {
        max_memory: 256 << 20,
        allow_nonfinite: true,
        ..PipelineOptions::default()
    };
    pipeline::run(src, &plans, output, engine, &opts, progress)
}
