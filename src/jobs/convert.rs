//! Conversion of a Hugging Face folder to GGUF, tensor types as `convert_hf_to_gguf.py`
//! chooses them for an `--outtype`.

use crate::engine::Engine;
use crate::error::Result;
use crate::ggml_type::GgmlType;
use crate::model::ModelSource;
use crate::model::hf::{converter_type, file_type_of};
use crate::pipeline::{self, PipelineOptions, Progress, Summary};
use crate::policy::TensorPlan;
use std::path::Path;

/// One plan per tensor: the converter's type choice for `outtype`.
pub fn plans(src: &dyn ModelSource, outtype: GgmlType) -> Vec<TensorPlan> {
    src.tensors()
        .iter()
        .map(|t| {
            let (target, fallback) = converter_type(&t.name, &t.dims, outtype);
            TensorPlan {
                target,
                convert: target != t.ty,
                overridden: false,
                fallback,
                requires_imatrix: false,
            }
        })
        .collect()
}

/// Writes the folder `src` (opened with `model::hf::HfSource::open`) to `output` as GGUF with
/// `outtype` weights.
pub fn convert(
    src: &dyn ModelSource,
    output: &Path,
    outtype: GgmlType,
    max_memory: u64,
    engine: &Engine,
    progress: &dyn Progress,
) -> Result<Summary> {
    let write = crate::formats::gguf::WriteOptions::default();
    convert_with(src, output, outtype, max_memory, &write, engine, progress)
}

/// As [`convert`], with the writer's checks in `write` (`--no-space-check`, `--no-verify`);
/// non-finite values are kept, as the converter keeps them.
pub fn convert_with(
    src: &dyn ModelSource,
    output: &Path,
    outtype: GgmlType,
    max_memory: u64,
    write: &crate::formats::gguf::WriteOptions,
    engine: &Engine,
    progress: &dyn Progress,
) -> Result<Summary> {
    let plans = plans(src, outtype);
    let opts = PipelineOptions {
        max_memory,
        allow_nonfinite: true,
        file_type: Some(file_type_of(outtype)),
        write: crate::formats::gguf::WriteOptions {
            allow_nonfinite: true,
            ..*write
        },
        ..PipelineOptions::default()
    };
    pipeline::run(src, &plans, output, engine, &opts, progress)
}
