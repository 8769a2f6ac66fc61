//! The grid i-quants IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S and IQ1_M: super-blocks of
//! [`QK_K`] = 256 elements whose groups of 8 (IQ2, IQ1) or 4 (IQ3) magnitudes are one point of
//! a fixed lattice subset (a "grid"), stored as an index into it, with signs and small
//! per-sub-block scales beside.
//!
//! One file per type holds the `#[repr(C)]` block (ggml-common.h layout), the decoder
//! (`dequantize_row_iq*`) and the encoder (`quantize_row_iq*_impl`). The grids are format
//! constants: [`grids`] is generated from gguf-py's copy of them by `tests/py/iq_grids.py`
//! (and tested against it); the search tables ggml's `iq2xs_init_impl`/`iq3xs_init_impl`
//! derive from them (the map from a rounded point to its grid index, and each off-grid
//! point's nearest grid points) are built once, lazily, in [`tables`].
//!
//! IQ2_XXS, IQ2_XS and IQ1_S need importance weights in llama.cpp (`ggml_quantize_chunk`
//! asserts them, `ggml_quantize_requires_imatrix`); called without, gpuq's encoders use unit
//! weights (llama-quantize refuses those types without an imatrix before getting here).
//! Every float operation keeps ggml's order (see [`crate::codec::kquants::search`]).

// Index loops keep the shape of the ggml code each function mirrors.
#![allow(clippy::needless_range_loop)]

use super::CpuCodec;
use crate::ggml_type::GgmlType;

#[rustfmt::skip]
pub mod grids;
pub mod iq1_m;
pub mod iq1_s;
pub mod iq2_s;
pub mod iq2_xs;
pub mod iq2_xxs;
pub mod iq3_s;
pub mod iq3_xxs;
pub mod tables;

pub use crate::codec::kquants::QK_K;
use crate::codec::kquants::search::nearest_int;

pub const IQ2_XXS_CODEC: CpuCodec = CpuCodec {
    ty: GgmlType::IQ2_XXS,
    encode: Some(iq2_xxs::encode_row),
    decode: Some(iq2_xxs::decode_row),
};
pub const IQ2_XS_CODEC: CpuCodec = CpuCodec {
    ty: GgmlType::IQ2_XS,
    encode: Some(iq2_xs::encode_row),
    decode: Some(iq2_xs::decode_row),
};
pub const IQ2_S_CODEC: CpuCodec = CpuCodec {
    ty: GgmlType::IQ2_S,
    encode: Some(iq2_s::encode_row),
    decode: Some(iq2_s::decode_row),
};
pub const IQ3_XXS_CODEC: CpuCodec = CpuCodec {
    ty: GgmlType::IQ3_XXS,
    encode: Some(iq3_xxs::encode_row),
    decode: Some(iq3_xxs::decode_row),
};
pub const IQ3_S_CODEC: CpuCodec = CpuCodec {
    ty: GgmlType::IQ3_S,
    encode: Some(iq3_s::encode_row),
    decode: Some(iq3_s::decode_row),
};
pub const IQ1_S_CODEC: CpuCodec = CpuCodec {
    ty: GgmlType::IQ1_S,
    encode: Some(iq1_s::encode_row),
    decode: Some(iq1_s::decode_row),
};
pub const IQ1_M_CODEC: CpuCodec = CpuCodec {
    ty: GgmlType::IQ1_M,
    encode: Some(iq1_m::encode_row),
    decode: Some(iq1_m::decode_row),
};

/// ggml's `ksigns_iq2xs`: 7 stored sign bits `i` completed by an 8th that makes the number of
/// set bits even (the encoders flip the least important element to make it so).
pub const KSIGNS: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut i = 0;
    while i < 128 {
        t[i] = i as u8 | (((i as u32).count_ones() as u8 & 1) << 7);
        i += 1;
    }
    t
};

/// ggml's `IQ1S_DELTA` (and `IQ1M_DELTA`): the shift of the IQ1 grids' levels.
pub const IQ1_DELTA: f32 = 0.125;

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

/// `x*x` summed over the block in order, as the `quantize_row_iq*_impl` do for `sigma2`.
#[inline(always)]
fn sum_squares(x: &[f32]) -> f32 {
    let mut s = 0.0f32;
    for &v in x {
        s += v * v;
    }
    s
}

/// `MAX(a, b)` as ggml's macro: `a > b ? a : b`.
#[inline(always)]
fn fmax(a: f32, b: f32) -> f32 {
    if a > b { a } else { b }
}

/// The sub-block scale index `clamp(nearest_int(0.5*(id*scale - 1)), 0, max)` every grid
/// encoder stores.
#[inline(always)]
fn scale_index(id: f32, scale: f32, max: i32) -> i32 {
    nearest_int(0.5 * (id * scale - 1.0)).clamp(0, max)
}

/// The magnitudes of 8 values with an even number of negatives, as IQ2_XXS, IQ2_XS and
/// IQ3_XXS store them: `xval = |x|`, and when an odd number are negative the one with the least
/// `weight*x*x` keeps its sign (its magnitude negated). Returns the 7 stored sign bits.
#[inline(always)]
fn even_signs(xb: &[f32], weight: &[f32], xval: &mut [f32]) -> u8 {
    let mut nflip = 0;
    let mut s = 0u8;
    for i in 0..8 {
        if xb[i] >= 0.0 {
            xval[i] = xb[i];
        } else {
            xval[i] = -xb[i];
            nflip += 1;
            s |= 1 << i;
        }
    }
    if nflip % 2 == 1 {
        let mut imin = 0;
        let mut min = weight[0] * xb[0] * xb[0];
        for i in 1..8 {
            let ax = weight[i] * xb[i] * xb[i];
            if ax < min {
                min = ax;
                imin = i;
            }
        }
        xval[imin] = -xval[imin];
        s ^= 1 << imin;
    }
    s & 127
}

/// The block of `QK_K` importance weights for block `i`, if any.
#[inline(always)]
fn block_weights(weights: Option<&[f32]>, i: usize) -> Option<&[f32]> {
    weights.map(|w| &w[QK_K * i..QK_K * (i + 1)])
}

/// Unit weights for the types llama.cpp only quantizes with an imatrix.
static ONES: [f32; QK_K] = [1.0; QK_K];

/// Runs `encode_block(x, weights, out)` over a row's blocks of `block_bytes` bytes.
#[inline(always)]
fn for_each_block(
    src: &[f32],
    dst: &mut [u8],
    weights: Option<&[f32]>,
    block_bytes: usize,
    mut encode_block: impl FnMut(&[f32; QK_K], Option<&[f32; QK_K]>, &mut [u8]),
) {
    let blocks = src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(block_bytes));
    for (i, (x, out)) in blocks.enumerate() {
        let x: &[f32; QK_K] = x.try_into().expect("chunks_exact yields QK_K");
        let w =
            block_weights(weights, i).map(|w| w.try_into().expect("weights have the row's length"));
        encode_block(x, w, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ksigns_have_even_parity_and_keep_the_low_bits() {
        for (i, &s) in KSIGNS.iter().enumerate() {
            assert_eq!(s.count_ones() % 2, 0);
            assert_eq!((s & 127) as usize, i);
        }
        assert_eq!(&KSIGNS[..4], &[0x00, 0x81, 0x82, 0x03]);
    }
}
