//! Q5_K: 5.5 bits per weight. A 256-element super-block in 8 sub-blocks of 32, each with a
//! 6-bit scale and a 6-bit min against the f16 super-scales `d` and `dmin`:
//! `x = d*sc*q - dmin*m`, q in 0..=31 (low 4 bits in `qs`, the 5th in `qh`).

use super::get_scale_min_k4;
use super::k4;
use super::search_lanes::{Qkx, QkxParams};
use super::{K_SCALE_SIZE, QK_K, f16_le_to_f32};
use bytemuck::{Pod, Zeroable};

/// ggml's `block_q5_K`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq, Eq)]
pub struct BlockQ5K {
    /// f16 bits: super-block scale for the quantized scales.
    pub d: u16,
    /// f16 bits: super-block scale for the quantized mins.
    pub dmin: u16,
    /// 6-bit scales and mins, packed (see [`get_scale_min_k4`]).
    pub scales: [u8; K_SCALE_SIZE],
    /// 5th bits: byte `l` holds element `32*k + l` at bit `k`.
    pub qh: [u8; QK_K / 8],
    /// Low 4 bits: byte `32*p + l` holds element `64*p + l` (low nibble) and `64*p + 32 + l`
    /// (high nibble).
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(size_of::<BlockQ5K>() == 176);

/// Packs the 5-bit levels as `quantize_row_q5_K_ref` does.
#[inline(always)]
fn pack_levels(l: &[u8; QK_K], y: &mut BlockQ5K) {
    y.qh = [0; QK_K / 8];
    let (mut m1, mut m2) = (1u8, 2u8);
    for (p, n) in (0..QK_K).step_by(64).enumerate() {
        for j in 0..32 {
            let mut l1 = l[n + j];
            if l1 > 15 {
                l1 -= 16;
                y.qh[j] |= m1;
            }
            let mut l2 = l[n + j + 32];
            if l2 > 15 {
                l2 -= 16;
                y.qh[j] |= m2;
            }
            y.qs[32 * p + j] = l1 | (l2 << 4);
        }
        m1 <<= 2;
        m2 <<= 2;
    }
}

/// `quantize_row_q5_K_ref`'s search parameters.
const REF_PARAMS: QkxParams = QkxParams {
    variant: Qkx::V2,
    nmax: 31,
    rmin: -0.5,
    rdelta: 0.1,
    nstep: 15,
    use_mad: false,
};

/// The block from its header and levels.
#[inline(always)]
fn block_of(h: k4::K4Header, l: &[u8; QK_K]) -> BlockQ5K {
    let mut y = BlockQ5K::zeroed();
    y.d = h.d;
    y.dmin = h.dmin;
    y.scales = h.scales;
    pack_levels(l, &mut y);
    y
}

/// ggml's `quantize_row_q5_K_ref` for one block.
#[inline(always)]
pub fn quantize_block_ref(x: &[f32; QK_K]) -> BlockQ5K {
    let (h, l) = k4::quantize_ref(x, REF_PARAMS);
    block_of(h, &l)
}

/// ggml's `quantize_row_q5_K_impl` for one block with importance weights `qw` (the imatrix
/// path; its 6-bit scales are clamped at 63).
#[inline(always)]
pub fn quantize_block_weighted(x: &[f32; QK_K], qw: &[f32; QK_K]) -> BlockQ5K {
    let (h, l) = k4::quantize_weighted(x, qw, 31, true);
    block_of(h, &l)
}

/// The row encoder's body (see [`k4::encode_row`]).
#[inline(always)]
fn encode_row_impl(src: &[f32], dst: &mut [u8], weights: Option<&[f32]>) {
    k4::encode_row(src, dst, weights, REF_PARAMS, true, block_of);
}

crate::codec::simd::dispatch_encode_row!(
    /// Encodes one row (see [`crate::codec::EncodeRowFn`]), in the copy for the CPU's
    /// vector instructions ([`crate::codec::simd`]).
    pub fn encode_row, encode_row_at => encode_row_impl
);

/// ggml's `dequantize_row_q5_K` for one block.
pub fn dequantize_block(b: &BlockQ5K, y: &mut [f32; QK_K]) {
    let d = f16_le_to_f32(b.d);
    let min = f16_le_to_f32(b.dmin);
    for p in 0..4 {
        let (sc, m) = get_scale_min_k4(2 * p, &b.scales);
        let (d1, m1) = (d * sc as f32, min * m as f32);
        let (sc, m) = get_scale_min_k4(2 * p + 1, &b.scales);
        let (d2, m2) = (d * sc as f32, min * m as f32);
        let (u1, u2) = (1u8 << (2 * p), 2u8 << (2 * p));
        let ql = &b.qs[32 * p..32 * p + 32];
        let out = &mut y[64 * p..64 * p + 64];
        for l in 0..32 {
            let h1 = if b.qh[l] & u1 != 0 { 16 } else { 0 };
            let h2 = if b.qh[l] & u2 != 0 { 16 } else { 0 };
            out[l] = d1 * ((ql[l] & 0xF) + h1) as f32 - m1;
            out[l + 32] = d2 * ((ql[l] >> 4) + h2) as f32 - m2;
        }
    }
}

/// Decodes one row (see [`crate::codec::DecodeRowFn`]).
pub fn decode_row(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src
        .chunks_exact(size_of::<BlockQ5K>())
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let b: BlockQ5K = bytemuck::pod_read_unaligned(b);
        dequantize_block(&b, y.try_into().expect("chunks_exact yields QK_K"));
    }
}
