//! CPU reference codecs, one module per format family, and the one table that maps a
//! [`GgmlType`] to its row encoder and decoder.
//!
//! Semantics of a row encoder: `encode(src, dst, weights)` turns one row (`src.len()` a
//! multiple of the block) into exactly the bytes llama-quantize writes for that row: without
//! importance weights that is ggml's `quantize_row_X_ref` (or what `quantize_X` does with
//! `quant_weights == NULL`), with weights (`weights.len() == src.len()`, an imatrix column
//! slice) the `quantize_X` `_impl` path. Decoders equal ggml's `dequantize_row_X`.

use crate::ggml_type::GgmlType;
use rayon::prelude::*;

pub mod absmean;
pub mod float;
pub mod fp4;
pub mod i2s;
pub mod iquants;
pub mod kquants;
pub mod legacy;
pub mod nonlinear;
pub mod q1_0;
pub mod shape;
pub mod simd;
pub mod ternary;

/// Encodes one row. `weights`, when given, has the row's length.
pub type EncodeRowFn = fn(src: &[f32], dst: &mut [u8], weights: Option<&[f32]>);
/// Decodes one row; `dst.len()` elements from `src.len()` bytes.
pub type DecodeRowFn = fn(src: &[u8], dst: &mut [f32]);

/// The CPU codec of one type.
#[derive(Clone, Copy)]
pub struct CpuCodec {
    pub ty: GgmlType,
    pub encode: Option<EncodeRowFn>,
    pub decode: Option<DecodeRowFn>,
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum CodecError {
    #[error("gpuq cannot encode {0} (no encoder for this type)")]
    NoEncoder(GgmlType),
    #[error("gpuq cannot decode {0} (no decoder for this type)")]
    NoDecoder(GgmlType),
    #[error("{ty}: row length {row_len} is not a multiple of the block size {block}")]
    RowNotBlockMultiple {
        ty: GgmlType,
        row_len: usize,
        block: u64,
    },
    #[error("{ty}: buffer sizes disagree: {what}")]
    BadLength { ty: GgmlType, what: String },
}

/// Every CPU codec gpuq has; the single place that lists them.
pub fn cpu_codecs() -> &'static [CpuCodec] {
    const CODECS: &[CpuCodec] = &[
        float::F32_CODEC,
        float::F16_CODEC,
        float::BF16_CODEC,
        legacy::Q4_0_CODEC,
        legacy::Q4_1_CODEC,
        legacy::Q5_0_CODEC,
        legacy::Q5_1_CODEC,
        legacy::Q8_0_CODEC,
        kquants::Q2_K_CODEC,
        kquants::Q3_K_CODEC,
        kquants::Q4_K_CODEC,
        kquants::Q5_K_CODEC,
        kquants::Q6_K_CODEC,
        ternary::TQ1_0_CODEC,
        ternary::TQ2_0_CODEC,
        nonlinear::IQ4_NL_CODEC,
        nonlinear::IQ4_XS_CODEC,
        fp4::mxfp4::MXFP4_CODEC,
        fp4::nvfp4::NVFP4_CODEC,
        q1_0::Q1_0_CODEC,
        q1_0::Q2_0_CODEC,
        iquants::IQ2_XXS_CODEC,
        iquants::IQ2_XS_CODEC,
        iquants::IQ2_S_CODEC,
        iquants::IQ3_XXS_CODEC,
        iquants::IQ3_S_CODEC,
        iquants::IQ1_S_CODEC,
        iquants::IQ1_M_CODEC,
    ];
    CODECS
}

pub fn cpu_codec(ty: GgmlType) -> Option<&'static CpuCodec> {
    cpu_codecs().iter().find(|c| c.ty == ty)
}

pub fn can_encode(ty: GgmlType) -> bool {
    cpu_codec(ty).is_some_and(|c| c.encode.is_some())
}

pub fn can_decode(ty: GgmlType) -> bool {
    cpu_codec(ty).is_some_and(|c| c.decode.is_some())
}

/// True when the pipeline can write tensors of `ty`: a row codec, or I2_S (whole tensors
/// with one scale, see [`i2s`]).
pub fn can_encode_tensor(ty: GgmlType) -> bool {
    can_encode(ty) || ty == GgmlType::I2_S
}

/// True when the pipeline can read tensors of `ty` (a row codec, or I2_S).
pub fn can_decode_tensor(ty: GgmlType) -> bool {
    can_decode(ty) || ty == GgmlType::I2_S
}

/// Encodes whole rows of `row_len` elements on the CPU, rows in parallel (rayon).
/// `weights` (length `row_len`) are per-column importance weights shared by all rows.
pub fn encode_rows(
    ty: GgmlType,
    src: &[f32],
    row_len: usize,
    weights: Option<&[f32]>,
    dst: &mut [u8],
) -> Result<(), CodecError> {
    let enc = cpu_codec(ty)
        .and_then(|c| c.encode)
        .ok_or(CodecError::NoEncoder(ty))?;
    let row_bytes = shape::check(ty, row_len, src.len(), dst.len())?.row_bytes;
    shape::check_weights(ty, row_len, weights)?;
    src.par_chunks(row_len)
        .zip(dst.par_chunks_mut(row_bytes))
        .for_each(|(s, d)| enc(s, d, weights));
    Ok(())
}

/// Decodes whole rows of `row_len` elements on the CPU, rows in parallel (rayon).
pub fn decode_rows(
    ty: GgmlType,
    src: &[u8],
    row_len: usize,
    dst: &mut [f32],
) -> Result<(), CodecError> {
    let dec = cpu_codec(ty)
        .and_then(|c| c.decode)
        .ok_or(CodecError::NoDecoder(ty))?;
    let row_bytes = shape::check(ty, row_len, dst.len(), src.len())?.row_bytes;
    src.par_chunks(row_bytes)
        .zip(dst.par_chunks_mut(row_len))
        .for_each(|(s, d)| dec(s, d));
    Ok(())
}
