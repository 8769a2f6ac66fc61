//! The low-bit scalar types Q1_0 (one sign bit per weight and one f16 scale per 128 elements,
//! ggml `block_q1_0`) and Q2_0 (2-bit codes -1, 0, 1, 2 times one f16 scale per 64 elements,
//! `block_q2_0`), layouts from ggml-common.h. Encoders: ggml `quantize_row_q1_0_ref` /
//! `quantize_row_q2_0_ref` (what `quantize_q1_0` / `quantize_q2_0` and so llama-quantize always
//! run: importance weights are ignored); decoders: `dequantize_row_q1_0` / `_q2_0`
//! (ggml-quants.c).

use super::CpuCodec;
use super::legacy::blocks::{load, store};
use super::legacy::c_casts::c_trunc_i32;
use crate::codec::float::{f16_bits_to_f32, ggml_fp32_to_fp16_bits};
use crate::ggml_type::GgmlType;
use bytemuck::{Pod, Zeroable};

/// ggml `QK1_0`.
pub const QK1_0: usize = 128;

/// ggml `block_q1_0`: `x = bit ? d : -d`, element j in bit j%8 of byte j/8.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq, Eq)]
pub struct BlockQ1_0 {
    pub d: u16,
    pub qs: [u8; QK1_0 / 8],
}

const _: () = assert!(size_of::<BlockQ1_0>() == 2 + QK1_0 / 8);

/// ggml `QK2_0`.
pub const QK2_0: usize = 64;

/// ggml `block_q2_0`: `x = (q - 1) * d`, element j in bits 2*(j%4) of byte j/4.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq, Eq)]
pub struct BlockQ2_0 {
    pub d: u16,
    pub qs: [u8; QK2_0 / 4],
}

const _: () = assert!(size_of::<BlockQ2_0>() == 2 + QK2_0 / 4);

pub const Q2_0_CODEC: CpuCodec = CpuCodec {
    ty: GgmlType::Q2_0,
    encode: Some(encode_q2_0),
    decode: Some(decode_q2_0),
};

pub const Q1_0_CODEC: CpuCodec = CpuCodec {
    ty: GgmlType::Q1_0,
    encode: Some(encode_q1_0),
    decode: Some(decode_q1_0),
};

/// `quantize_row_q1_0_ref` for one block: `d` is the mean magnitude (summed in order, then
/// divided by 128); a bit is set for `x >= 0` (so for -0.0, not for NaN).
pub fn q1_0_block(x: &[f32]) -> BlockQ1_0 {
    let mut sum_abs = 0.0f32;
    for &v in x {
        sum_abs += v.abs();
    }
    let d = sum_abs / QK1_0 as f32;
    let mut qs = [0u8; QK1_0 / 8];
    for (j, &v) in x.iter().enumerate() {
        qs[j / 8] |= ((v >= 0.0) as u8) << (j % 8);
    }
    BlockQ1_0 {
        d: ggml_fp32_to_fp16_bits(d).to_le(),
        qs,
    }
}

/// ggml `quantize_q1_0` for one row (the weights are ignored, as ggml does).
pub fn encode_q1_0(src: &[f32], dst: &mut [u8], _weights: Option<&[f32]>) {
    for (x, d) in src
        .chunks_exact(QK1_0)
        .zip(dst.chunks_exact_mut(size_of::<BlockQ1_0>()))
    {
        store(&q1_0_block(x), d);
    }
}

/// ggml `dequantize_row_q1_0`.
pub fn decode_q1_0(src: &[u8], dst: &mut [f32]) {
    for (s, y) in src
        .chunks_exact(size_of::<BlockQ1_0>())
        .zip(dst.chunks_exact_mut(QK1_0))
    {
        let b: BlockQ1_0 = load(s);
        let d = f16_bits_to_f32(u16::from_le(b.d));
        for (j, yj) in y.iter_mut().enumerate() {
            *yj = if (b.qs[j / 8] >> (j % 8)) & 1 != 0 {
                d
            } else {
                -d
            };
        }
    }
}

/// `quantize_row_q2_0_ref` for one block: `d` is the largest magnitude; each code is
/// `(int)roundf(x / d) + 1` clamped to 0..=3 (roundf: half away from zero; the float -> int
/// conversion is x86-64's, so NaN gives 0).
pub fn q2_0_block(x: &[f32]) -> BlockQ2_0 {
    let mut amax = 0.0f32;
    for &v in x {
        let a = v.abs();
        if a > amax {
            amax = a;
        }
    }
    let d = amax;
    let id = if d > 0.0 { 1.0 / d } else { 0.0 };
    let mut qs = [0u8; QK2_0 / 4];
    for (j, &v) in x.iter().enumerate() {
        let q = c_trunc_i32((v * id).round()).wrapping_add(1).clamp(0, 3);
        qs[j / 4] |= (q as u8) << ((j % 4) * 2);
    }
    BlockQ2_0 {
        d: ggml_fp32_to_fp16_bits(d).to_le(),
        qs,
    }
}

/// ggml `quantize_q2_0` for one row (the weights are ignored, as ggml does).
pub fn encode_q2_0(src: &[f32], dst: &mut [u8], _weights: Option<&[f32]>) {
    for (x, d) in src
        .chunks_exact(QK2_0)
        .zip(dst.chunks_exact_mut(size_of::<BlockQ2_0>()))
    {
        store(&q2_0_block(x), d);
    }
}

/// ggml `dequantize_row_q2_0`.
pub fn decode_q2_0(src: &[u8], dst: &mut [f32]) {
    for (s, y) in src
        .chunks_exact(size_of::<BlockQ2_0>())
        .zip(dst.chunks_exact_mut(QK2_0))
    {
        let b: BlockQ2_0 = load(s);
        let d = f16_bits_to_f32(u16::from_le(b.d));
        for (j, yj) in y.iter_mut().enumerate() {
            let q = (b.qs[j / 4] >> ((j % 4) * 2)) & 3;
            *yj = (q as i32 - 1) as f32 * d;
        }
    }
}
