//! The legacy quant types Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 (32-element blocks, one f16 scale,
//! plus an f16 minimum for the `_1` types).
//!
//! - [`blocks`]: the `#[repr(C)]` block layouts of ggml-common.h.
//! - [`reference`]: ggml's `quantize_row_X_ref`, what llama-quantize writes without an imatrix.
//! - [`weighted`]: ggml's `quantize_row_X_impl`, what it writes with one.
//! - [`c_casts`]: C's float -> int conversions as x86-64 does them; the weighted searches
//!   come from `crate::codec::kquants::search`.
//! - decoders here: ggml's `dequantize_row_X`.

pub mod blocks;
pub mod c_casts;
pub mod reference;
pub mod weighted;

use super::CpuCodec;
use crate::codec::float::f16_bits_to_f32;
use crate::ggml_type::GgmlType;
use blocks::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, QK, load, store};

pub const Q4_0_CODEC: CpuCodec = CpuCodec {
    ty: GgmlType::Q4_0,
    encode: Some(encode_q4_0),
    decode: Some(decode_q4_0),
};
pub const Q4_1_CODEC: CpuCodec = CpuCodec {
    ty: GgmlType::Q4_1,
    encode: Some(encode_q4_1),
    decode: Some(decode_q4_1),
};
pub const Q5_0_CODEC: CpuCodec = CpuCodec {
    ty: GgmlType::Q5_0,
    encode: Some(encode_q5_0),
    decode: Some(decode_q5_0),
};
pub const Q5_1_CODEC: CpuCodec = CpuCodec {
    ty: GgmlType::Q5_1,
    encode: Some(encode_q5_1),
    decode: Some(decode_q5_1),
};
pub const Q8_0_CODEC: CpuCodec = CpuCodec {
    ty: GgmlType::Q8_0,
    encode: Some(encode_q8_0),
    decode: Some(decode_q8_0),
};

/// Encodes a row block by block with `f`.
#[inline(always)]
fn ref_row<B: bytemuck::Pod>(src: &[f32], dst: &mut [u8], f: fn(&[f32]) -> B) {
    for (x, d) in src
        .chunks_exact(QK)
        .zip(dst.chunks_exact_mut(size_of::<B>()))
    {
        store(&f(x), d);
    }
}

/// `encode_q4_0`'s body.
#[inline(always)]
fn encode_q4_0_impl(src: &[f32], dst: &mut [u8], weights: Option<&[f32]>) {
    match weights {
        None => ref_row(src, dst, reference::q4_0),
        Some(w) => weighted::q4_0_row(src, dst, w),
    }
}

crate::codec::simd::dispatch_encode_row!(
    /// ggml `quantize_q4_0`: `quantize_row_q4_0_ref` without weights, `_impl` with; in the
    /// copy for the CPU's vector instructions ([`crate::codec::simd`]).
    pub fn encode_q4_0, encode_q4_0_at => encode_q4_0_impl
);

/// ggml `quantize_q4_1`: `quantize_row_q4_1_ref` without weights, `_impl` with.
pub fn encode_q4_1(src: &[f32], dst: &mut [u8], weights: Option<&[f32]>) {
    match weights {
        None => ref_row(src, dst, reference::q4_1),
        Some(w) => weighted::q4_1_row(src, dst, w),
    }
}

/// ggml `quantize_q5_0`: `quantize_row_q5_0_ref` without weights, `_impl` with.
pub fn encode_q5_0(src: &[f32], dst: &mut [u8], weights: Option<&[f32]>) {
    match weights {
        None => ref_row(src, dst, reference::q5_0),
        Some(w) => weighted::q5_0_row(src, dst, w),
    }
}

/// ggml `quantize_q5_1`: `quantize_row_q5_1_ref` without weights, `_impl` with.
pub fn encode_q5_1(src: &[f32], dst: &mut [u8], weights: Option<&[f32]>) {
    match weights {
        None => ref_row(src, dst, reference::q5_1),
        Some(w) => weighted::q5_1_row(src, dst, w),
    }
}

/// `encode_q8_0`'s body.
#[inline(always)]
fn encode_q8_0_impl(src: &[f32], dst: &mut [u8], _weights: Option<&[f32]>) {
    ref_row(src, dst, reference::q8_0);
}

crate::codec::simd::dispatch_encode_row!(
    /// ggml `quantize_q8_0`: always `quantize_row_q8_0_ref` (the weights are ignored); in the
    /// copy for the CPU's vector instructions ([`crate::codec::simd`]).
    pub fn encode_q8_0, encode_q8_0_at => encode_q8_0_impl
);

/// Decodes a row block by block with `f(block, out32)`.
fn dec_row<B: bytemuck::Pod>(src: &[u8], dst: &mut [f32], f: fn(&B, &mut [f32])) {
    for (s, y) in src
        .chunks_exact(size_of::<B>())
        .zip(dst.chunks_exact_mut(QK))
    {
        f(&load(s), y);
    }
}

/// The 5th bit of element j of a Q5 block, as 0 or 0x10.
#[inline]
fn high_bit(qh: u32, j: usize) -> u8 {
    (((qh >> j) & 1) << 4) as u8
}

/// ggml `dequantize_row_q4_0`.
pub fn decode_q4_0(src: &[u8], dst: &mut [f32]) {
    dec_row(src, dst, |b: &BlockQ4_0, y| {
        let d = f16_bits_to_f32(u16::from_le(b.d));
        for j in 0..QK / 2 {
            y[j] = ((b.qs[j] & 0x0f) as i32 - 8) as f32 * d;
            y[j + QK / 2] = ((b.qs[j] >> 4) as i32 - 8) as f32 * d;
        }
    });
}

/// ggml `dequantize_row_q4_1`.
pub fn decode_q4_1(src: &[u8], dst: &mut [f32]) {
    dec_row(src, dst, |b: &BlockQ4_1, y| {
        let d = f16_bits_to_f32(u16::from_le(b.d));
        let m = f16_bits_to_f32(u16::from_le(b.m));
        for j in 0..QK / 2 {
            y[j] = (b.qs[j] & 0x0f) as f32 * d + m;
            y[j + QK / 2] = (b.qs[j] >> 4) as f32 * d + m;
        }
    });
}

/// ggml `dequantize_row_q5_0`.
pub fn decode_q5_0(src: &[u8], dst: &mut [f32]) {
    dec_row(src, dst, |b: &BlockQ5_0, y| {
        let d = f16_bits_to_f32(u16::from_le(b.d));
        let qh = u32::from_le_bytes(b.qh);
        for j in 0..QK / 2 {
            let x0 = ((b.qs[j] & 0x0f) | high_bit(qh, j)) as i32 - 16;
            let x1 = ((b.qs[j] >> 4) | high_bit(qh, j + QK / 2)) as i32 - 16;
            y[j] = x0 as f32 * d;
            y[j + QK / 2] = x1 as f32 * d;
        }
    });
}

/// ggml `dequantize_row_q5_1`.
pub fn decode_q5_1(src: &[u8], dst: &mut [f32]) {
    dec_row(src, dst, |b: &BlockQ5_1, y| {
        let d = f16_bits_to_f32(u16::from_le(b.d));
        let m = f16_bits_to_f32(u16::from_le(b.m));
        let qh = u32::from_le_bytes(b.qh);
        for j in 0..QK / 2 {
            let x0 = (b.qs[j] & 0x0f) | high_bit(qh, j);
            let x1 = (b.qs[j] >> 4) | high_bit(qh, j + QK / 2);
            y[j] = x0 as f32 * d + m;
            y[j + QK / 2] = x1 as f32 * d + m;
        }
    });
}

/// ggml `dequantize_row_q8_0`.
pub fn decode_q8_0(src: &[u8], dst: &mut [f32]) {
    dec_row(src, dst, |b: &BlockQ8_0, y| {
        let d = f16_bits_to_f32(u16::from_le(b.d));
        for (yj, &q) in y.iter_mut().zip(&b.qs) {
            *yj = q as f32 * d;
        }
    });
}
