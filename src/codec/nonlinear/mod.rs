//! The non-linear 4-bit types IQ4_NL and IQ4_XS: 4-bit indices into the fixed code book
//! `kvalues_iq4nl` times a block scale (IQ4_NL: one f16 per 32 elements; IQ4_XS: an f16 per
//! 256 elements and a 6-bit scale per 32).
//!
//! - [`blocks`]: the `#[repr(C)]` layouts of ggml-common.h and the code book.
//! - [`quantize`]: ggml's `quantize_row_iq4_nl_impl`, as `quantize_iq4_nl` /
//!   `quantize_iq4_xs` (what `ggml_quantize_chunk` and so llama-quantize run) call it, with
//!   and without importance weights.
//! - decoders here: ggml's `dequantize_row_iq4_nl` / `dequantize_row_iq4_xs`.

pub mod blocks;
pub mod quantize;

use super::CpuCodec;
use crate::codec::float::f16_bits_to_f32;
use crate::codec::legacy::blocks::{load, store};
use crate::ggml_type::GgmlType;
use blocks::{BlockIq4Nl, BlockIq4Xs, KVALUES_IQ4NL, QK_K, QK4_NL};
use quantize::{NTRY, iq4_nl_block, iq4_xs_block};

pub const IQ4_NL_CODEC: CpuCodec = CpuCodec {
    ty: GgmlType::IQ4_NL,
    encode: Some(encode_iq4_nl),
    decode: Some(decode_iq4_nl),
};
pub const IQ4_XS_CODEC: CpuCodec = CpuCodec {
    ty: GgmlType::IQ4_XS,
    encode: Some(encode_iq4_xs),
    decode: Some(decode_iq4_xs),
};

/// ggml `quantize_iq4_nl` for one row (`ntry = 7`; `weights`, the imatrix slice, optional).
pub fn encode_iq4_nl(src: &[f32], dst: &mut [u8], weights: Option<&[f32]>) {
    let bb = size_of::<BlockIq4Nl>();
    for (ib, (x, d)) in src
        .chunks_exact(QK4_NL)
        .zip(dst.chunks_exact_mut(bb))
        .enumerate()
    {
        let qw = weights.map(|w| &w[ib * QK4_NL..(ib + 1) * QK4_NL]);
        let (dh, qs) = iq4_nl_block(x, qw, NTRY);
        store(&BlockIq4Nl { d: dh.to_le(), qs }, d);
    }
}

/// ggml `quantize_iq4_xs` for one row (`ntry = 7`; `weights` optional).
pub fn encode_iq4_xs(src: &[f32], dst: &mut [u8], weights: Option<&[f32]>) {
    let bb = size_of::<BlockIq4Xs>();
    for (ib, (x, d)) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(bb))
        .enumerate()
    {
        let qw = weights.map(|w| &w[ib * QK_K..(ib + 1) * QK_K]);
        let p = iq4_xs_block(x, qw, NTRY);
        let blk = BlockIq4Xs {
            d: p.d.to_le(),
            scales_h: p.scales_h.to_le(),
            scales_l: p.scales_l,
            qs: p.qs,
        };
        store(&blk, d);
    }
}

/// 32 elements of one group: `dl * kvalues_iq4nl[q]`, element j from the low nibble of byte j,
/// element j+16 from its high nibble.
#[inline(always)]
fn decode_group(dl: f32, qs: &[u8], y: &mut [f32]) {
    for j in 0..QK4_NL / 2 {
        y[j] = dl * KVALUES_IQ4NL[(qs[j] & 0xf) as usize] as f32;
        y[j + QK4_NL / 2] = dl * KVALUES_IQ4NL[(qs[j] >> 4) as usize] as f32;
    }
}

/// ggml `dequantize_row_iq4_nl`.
pub fn decode_iq4_nl(src: &[u8], dst: &mut [f32]) {
    for (s, y) in src
        .chunks_exact(size_of::<BlockIq4Nl>())
        .zip(dst.chunks_exact_mut(QK4_NL))
    {
        let b: BlockIq4Nl = load(s);
        decode_group(f16_bits_to_f32(u16::from_le(b.d)), &b.qs, y);
    }
}

/// ggml `dequantize_row_iq4_xs`.
pub fn decode_iq4_xs(src: &[u8], dst: &mut [f32]) {
    for (s, y) in src
        .chunks_exact(size_of::<BlockIq4Xs>())
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let b: BlockIq4Xs = load(s);
        let d = f16_bits_to_f32(u16::from_le(b.d));
        let sh = u16::from_le(b.scales_h);
        for ib in 0..QK_K / QK4_NL {
            let ls = ((b.scales_l[ib / 2] >> (4 * (ib % 2))) & 0xf) as i32
                | ((((sh >> (2 * ib)) & 3) as i32) << 4);
            let dl = d * (ls - 32) as f32;
            decode_group(dl, &b.qs[16 * ib..], &mut y[32 * ib..32 * ib + 32]);
        }
    }
}
