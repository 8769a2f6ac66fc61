//! Dequantization: every quantized tensor (and every 2-D float weight) to one float type,
//! 1-D and integer tensors kept, the metadata carried over.

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::ggml_type::GgmlType;
use crate::model::ModelSource;
use crate::pipeline::{self, PipelineOptions, Progress, Summary};
use crate::policy::{Mixture, TensorPlan, allows_quantization, n_dims};
use std::path::Path;

/// The target of each tensor: quantized tensors and 2-D+ float weights become `ty`; 1-D
/// tensors, integer tensors and the float tensors llama-quantize never quantizes (llama.cpp's
/// converter keeps `ssm_conv1d` and the MoE router F32, and llama.cpp's SSM conv wants F32)
/// keep their type.
pub fn plan(src: &dyn ModelSource, ty: GgmlType) -> Result<Vec<TensorPlan>> {
    src.tensors()
        .iter()
        .map(|t| {
            let float = matches!(t.ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16);
            let weight = n_dims(&t.dims) >= 2 && allows_quantization(&t.name, &t.dims, true);
            let target = if t.ty.is_quantized() || (float && weight) {
                ty
            } else {
                t.ty
            };
            if target != t.ty && !crate::codec::can_decode_tensor(t.ty) {
                return Err(Error::Invalid(format!(
                    "{}: tensor {}: gpuq cannot decode {}",
                    src.describe(),
                    t.name,
                    t.ty
                )));
            }
            Ok(TensorPlan {
                target,
                convert: target != t.ty,
                overridden: false,
                fallback: false,
                requires_imatrix: false,
            })
        })
        .collect()
}

/// Writes `src` to `output` with its quantized tensors decoded to `ty` (F32, F16 or BF16).
pub fn dequantize(
    src: &dyn ModelSource,
    output: &Path,
    ty: GgmlType,
    max_memory: u64,
    engine: &Engine,
    progress: &dyn Progress,
) -> Result<Summary> {
    let write = crate::formats::gguf::WriteOptions::default();
    dequantize_with(src, output, ty, max_memory, &write, engine, progress)
}

/// As [`dequantize`], with the writer's checks in `write` (`--no-space-check`, `--no-verify`);
/// non-finite values are kept.
pub fn dequantize_with(
    src: &dyn ModelSource,
    output: &Path,
    ty: GgmlType,
    max_memory: u64,
    write: &crate::formats::gguf::WriteOptions,
    engine: &Engine,
    progress: &dyn Progress,
) -> Result<Summary> {
    if !matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16) {
        return Err(Error::Invalid(format!(
            "--type {ty}: dequantize writes F32, F16 or BF16"
        )));
    }
    let plans = plan(src, ty)?;
    let opts = PipelineOptions {
        max_memory,
        allow_nonfinite: true,
        file_type: Mixture::file_type_of(ty),
        write: crate::formats::gguf::WriteOptions {
            allow_nonfinite: true,
            ..*write
        },
        ..PipelineOptions::default()
    };
    pipeline::run(src, &plans, output, engine, &opts, progress)
}
