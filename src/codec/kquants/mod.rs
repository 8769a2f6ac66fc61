//! The k-quants Q2_K, Q3_K, Q4_K, Q5_K and Q6_K: super-blocks of [`QK_K`] = 256 elements in
//! 16 or 8 sub-blocks, each with its own quantized scale (and min).
//!
//! One file per type holds the `#[repr(C)]` block (ggml-common.h layout), the decoder
//! (`dequantize_row_qX_K`) and the encoder: without importance weights ggml's
//! `quantize_row_qX_K_ref` (what `quantize_qX_K(.., NULL)` and so llama-quantize without an
//! imatrix write), with weights `quantize_row_qX_K_impl`. The scale searches they share live in
//! [`search`], one scalar function per ggml helper (the specification, and what a GPU kernel
//! mirrors); [`search_lanes`] runs the hot ones on all sub-blocks of a block at once for SIMD,
//! bit-identical to the scalar ones (unit-tested). Blocks are read and written through a stack copy (`pod_read_unaligned`,
//! `bytes_of`) because a row's bytes need not be 2-aligned; f16 fields hold little-endian
//! bits.

// Index loops keep the shape of the ggml code each function mirrors.
#![allow(clippy::needless_range_loop)]

use super::CpuCodec;
use crate::ggml_type::GgmlType;

pub mod k4;
pub mod q2_k;
pub mod q3_k;
pub mod q4_k;
pub mod q5_k;
pub mod q6_k;
pub mod search;
pub mod search_lanes;

/// ggml's `QK_K`: elements per super-block.
pub const QK_K: usize = 256;
/// ggml's `K_SCALE_SIZE`: bytes of packed 6-bit scales and mins in Q4_K and Q5_K.
pub const K_SCALE_SIZE: usize = 12;

pub const Q2_K_CODEC: CpuCodec = CpuCodec {
    ty: GgmlType::Q2_K,
    encode: Some(q2_k::encode_row),
    decode: Some(q2_k::decode_row),
};
pub const Q3_K_CODEC: CpuCodec = CpuCodec {
    ty: GgmlType::Q3_K,
    encode: Some(q3_k::encode_row),
    decode: Some(q3_k::decode_row),
};
pub const Q4_K_CODEC: CpuCodec = CpuCodec {
    ty: GgmlType::Q4_K,
    encode: Some(q4_k::encode_row),
    decode: Some(q4_k::decode_row),
};
pub const Q5_K_CODEC: CpuCodec = CpuCodec {
    ty: GgmlType::Q5_K,
    encode: Some(q5_k::encode_row),
    decode: Some(q5_k::decode_row),
};
pub const Q6_K_CODEC: CpuCodec = CpuCodec {
    ty: GgmlType::Q6_K,
    encode: Some(q6_k::encode_row),
    decode: Some(q6_k::decode_row),
};

/// `GGML_FP32_TO_FP16` as stored little-endian in a block field.
#[inline(always)]
fn f16_le(x: f32) -> u16 {
    super::float::f32_to_f16_bits(x).to_le()
}

/// `GGML_FP16_TO_FP32` of a little-endian block field.
#[inline(always)]
fn f16_le_to_f32(h: u16) -> f32 {
    super::float::f16_bits_to_f32(u16::from_le(h))
}

/// ggml's `get_scale_min_k4`: the 6-bit scale and min of sub-block `j` (0..8) from the 12
/// packed bytes of Q4_K/Q5_K. Bytes 0..4 hold scales 0..3 (low 6 bits) and the top 2 bits of
/// scales 4..7; bytes 4..8 likewise for the mins; bytes 8..12 the low nibbles of scales 4..7
/// (low half) and mins 4..7 (high half).
#[inline(always)]
pub fn get_scale_min_k4(j: usize, q: &[u8; K_SCALE_SIZE]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// The inverse of [`get_scale_min_k4`] as ggml's Q4_K/Q5_K quantizers write it, for 6-bit
/// `ls` (scales) and `lm` (mins).
#[inline(always)]
pub fn pack_scale_min_k4(ls: &[u8; 8], lm: &[u8; 8]) -> [u8; K_SCALE_SIZE] {
    let mut s = [0u8; K_SCALE_SIZE];
    for j in 0..8 {
        if j < 4 {
            s[j] = ls[j];
            s[j + 4] = lm[j];
        } else {
            s[j + 4] = (ls[j] & 0xF) | ((lm[j] & 0xF) << 4);
            s[j - 4] |= (ls[j] >> 4) << 6;
            s[j] |= (lm[j] >> 4) << 6;
        }
    }
    s
}

/// Packs 2-bit levels (values 0..=3) of a 256-element block the way Q2_K and Q3_K store
/// them: byte `32*h + l` holds elements `128*h + l + 32*k` at bits `2k`, k = 0..4.
#[inline(always)]
fn pack_2bit(l: &[u8; QK_K], qs: &mut [u8; QK_K / 4]) {
    for j in (0..QK_K).step_by(128) {
        for i in 0..32 {
            qs[j / 4 + i] =
                l[j + i] | (l[j + i + 32] << 2) | (l[j + i + 64] << 4) | (l[j + i + 96] << 6);
        }
    }
}

/// Super-block `i` of a row (or of its importance weights).
#[inline(always)]
fn src_block(src: &[f32], i: usize) -> &[f32; QK_K] {
    src[QK_K * i..QK_K * (i + 1)]
        .try_into()
        .expect("a slice of QK_K")
}

/// Writes block `y` as block `i` of an encoded row.
#[inline(always)]
fn store_block<B: bytemuck::Pod>(dst: &mut [u8], i: usize, y: &B) {
    let n = size_of::<B>();
    dst[n * i..n * (i + 1)].copy_from_slice(bytemuck::bytes_of(y));
}

/// The block of `QK_K` importance weights for block `i`, if any.
#[inline(always)]
fn block_weights(weights: Option<&[f32]>, i: usize) -> Option<&[f32; QK_K]> {
    weights.map(|w| {
        w[QK_K * i..QK_K * (i + 1)]
            .try_into()
            .expect("weights have the row's length")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_min_k4_packing_round_trips() {
        let mut state = 0x1234_5678u32;
        for _ in 0..1000 {
            let mut ls = [0u8; 8];
            let mut lm = [0u8; 8];
            for v in ls.iter_mut().chain(lm.iter_mut()) {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                *v = (state >> 26) as u8;
            }
            let packed = pack_scale_min_k4(&ls, &lm);
            for j in 0..8 {
                assert_eq!(get_scale_min_k4(j, &packed), (ls[j], lm[j]));
            }
        }
    }
}
