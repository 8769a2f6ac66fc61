//! MXFP4: ggml `block_mxfp4` (ggml-common.h), `quantize_row_mxfp4_ref` (what `quantize_mxfp4`
//! and so llama-quantize always run: importance weights are ignored) and
//! `dequantize_row_mxfp4` (ggml-quants.c), with `ggml_e8m0_to_fp32_half` (ggml-impl.h).

use super::{pack_group, unpack_group};
use crate::codec::CpuCodec;
use crate::codec::legacy::blocks::{load, store};
use crate::codec::legacy::c_casts::c_trunc_i32;
use crate::ggml_type::GgmlType;
use bytemuck::{Pod, Zeroable};

/// ggml `QK_MXFP4`.
pub const QK_MXFP4: usize = 32;

/// ggml `block_mxfp4`: an E8M0 exponent `e`, then 16 bytes of E2M1 nibbles (element j in the
/// low nibble of byte j, element j+16 in its high nibble); `x = kvalues_fp4[q] * 2^(e-128)`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq, Eq)]
pub struct BlockMxfp4 {
    pub e: u8,
    pub qs: [u8; QK_MXFP4 / 2],
}

const _: () = assert!(size_of::<BlockMxfp4>() == 1 + QK_MXFP4 / 2);

pub const MXFP4_CODEC: CpuCodec = CpuCodec {
    ty: GgmlType::MXFP4,
    encode: Some(encode_mxfp4),
    decode: Some(decode_mxfp4),
};

/// ggml `ggml_e8m0_to_fp32_half`: `2^(x-128)` (half the E8M0 value), exact, subnormal for
/// x < 2.
#[inline]
pub fn e8m0_to_fp32_half(x: u8) -> f32 {
    let bits = if x < 2 {
        0x0020_0000u32 << x
    } else {
        ((x - 1) as u32) << 23
    };
    f32::from_bits(bits)
}

/// The block exponent of `quantize_row_mxfp4_ref`:
/// `amax > 0 ? (uint8_t)(floorf(log2f(amax)) - 2 + 127) : 0`. The float -> uint8_t conversion
/// is x86-64's (truncation through a 32-bit integer, keeping the low byte), so amax below
/// 2^-125 wraps as it does in llama.cpp. `log2f` is the platform's (glibc's on Linux), as
/// llama.cpp's is: `floor` of it near a power of two depends on its rounding.
#[inline]
pub fn block_exponent(amax: f32) -> u8 {
    if amax > 0.0 {
        c_trunc_i32(amax.log2().floor() - 2.0 + 127.0) as u8
    } else {
        0
    }
}

/// `quantize_row_mxfp4_ref` for one block.
pub fn mxfp4_block(x: &[f32]) -> BlockMxfp4 {
    // ggml's `if (amax < fabsf(v)) amax = fabsf(v)`: f32::max gives the same (it too
    // ignores NaN, and |v| has no -0.0)
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let e = block_exponent(amax);
    let mut qs = [0u8; QK_MXFP4 / 2];
    pack_group(x, e8m0_to_fp32_half(e), &mut qs);
    BlockMxfp4 { e, qs }
}

/// ggml `quantize_mxfp4` for one row (the weights are ignored, as ggml does).
pub fn encode_mxfp4(src: &[f32], dst: &mut [u8], _weights: Option<&[f32]>) {
    for (x, d) in src
        .chunks_exact(QK_MXFP4)
        .zip(dst.chunks_exact_mut(size_of::<BlockMxfp4>()))
    {
        store(&mxfp4_block(x), d);
    }
}

/// ggml `dequantize_row_mxfp4`.
pub fn decode_mxfp4(src: &[u8], dst: &mut [f32]) {
    for (s, y) in src
        .chunks_exact(size_of::<BlockMxfp4>())
        .zip(dst.chunks_exact_mut(QK_MXFP4))
    {
        let b: BlockMxfp4 = load(s);
        unpack_group(&b.qs, e8m0_to_fp32_half(b.e), y);
    }
}
