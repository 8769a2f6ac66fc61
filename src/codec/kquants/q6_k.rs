//! Q6_K: 6.5625 bits per weight. A 256-element super-block in 16 sub-blocks of 16, each with
//! a signed 8-bit scale against the f16 super-scale `d`: `x = d*sc*(q - 32)`, q in 0..=63.

use super::search::{GROUP_MAX_EPS, nearest_int};
use super::search_lanes::{make_qx_quants_lanes, transpose_in, transpose_out};
use super::{QK_K, block_weights, f16_le, f16_le_to_f32};
use bytemuck::{Pod, Zeroable};

/// ggml's `block_q6_K`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq, Eq)]
pub struct BlockQ6K {
    /// Low 4 bits of the levels: in each half of 128 elements, byte `l` holds element `l` (low
    /// nibble) and `l + 64` (high), byte `l + 32` elements `l + 32` and `l + 96`.
    pub ql: [u8; QK_K / 2],
    /// High 2 bits: in each half, byte `l` holds elements `l + 32k` at bits `2k`.
    pub qh: [u8; QK_K / 4],
    /// Signed 8-bit sub-block scales.
    pub scales: [i8; QK_K / 16],
    /// f16 bits: super-block scale.
    pub d: u16,
}
const _: () = assert!(size_of::<BlockQ6K>() == 210);

/// The common tail of `quantize_row_q6_K_ref` and `_impl`: from the 16 sub-block scales and
/// the levels of the search, the block ggml writes.
#[inline(always)]
fn finish_block(x: &[f32; QK_K], scales: &[f32; 16], l: &mut [i8; QK_K]) -> BlockQ6K {
    let mut max_scale = 0.0f32;
    let mut max_abs_scale = 0.0f32;
    for &scale in scales {
        let abs_scale = scale.abs();
        if abs_scale > max_abs_scale {
            max_abs_scale = abs_scale;
            max_scale = scale;
        }
    }
    let mut y = BlockQ6K::zeroed();
    if max_abs_scale < GROUP_MAX_EPS {
        y.d = f16_le(0.0);
        return y;
    }
    let iscale = -128.0f32 / max_scale;
    y.d = f16_le(1.0 / iscale);
    for (s, &scale) in y.scales.iter_mut().zip(scales) {
        *s = nearest_int(iscale * scale).min(127) as i8;
    }
    let d_all = f16_le_to_f32(y.d);
    for j in 0..QK_K / 16 {
        let d = d_all * y.scales[j] as f32;
        if d == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let q = nearest_int(x[16 * j + ii] / d).clamp(-32, 31);
            l[16 * j + ii] = (q + 32) as i8;
        }
    }
    for (h, j) in (0..QK_K).step_by(128).enumerate() {
        let ql = &mut y.ql[64 * h..64 * h + 64];
        let qh = &mut y.qh[32 * h..32 * h + 32];
        for i in 0..32 {
            let q1 = l[j + i] as u8;
            let q2 = l[j + i + 32] as u8;
            let q3 = l[j + i + 64] as u8;
            let q4 = l[j + i + 96] as u8;
            ql[i] = (q1 & 0xF) | ((q3 & 0xF) << 4);
            ql[i + 32] = (q2 & 0xF) | ((q4 & 0xF) << 4);
            qh[i] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
        }
    }
    y
}

/// ggml's `quantize_row_q6_K_ref` for one block: `make_qx_quants` weighs by x².
#[inline(always)]
pub fn quantize_block_ref(x: &[f32; QK_K]) -> BlockQ6K {
    let xt = transpose_in::<16, 16, f32>(x);
    let weights = xt.map(|row| row.map(|v| v * v));
    search(x, &xt, &weights)
}

/// ggml's `quantize_row_q6_K_impl` for one block with importance weights `qw`; unlike the
/// other k-quants it passes the raw weights to `make_qx_quants`.
#[inline(always)]
pub fn quantize_block_weighted(x: &[f32; QK_K], qw: &[f32; QK_K]) -> BlockQ6K {
    let xt = transpose_in::<16, 16, f32>(x);
    search(x, &xt, &transpose_in::<16, 16, f32>(qw))
}

/// `make_qx_quants(16, 32, .., rmse_type 1, weights)` on the 16 sub-blocks, then the rest.
#[inline(always)]
fn search(x: &[f32; QK_K], xt: &[[f32; 16]; 16], weights: &[[f32; 16]; 16]) -> BlockQ6K {
    let mut lt = [[0i8; 16]; 16];
    let scales = make_qx_quants_lanes(32, xt, weights, &mut lt);
    let mut l = [0i8; QK_K];
    transpose_out(&lt, &mut l);
    finish_block(x, &scales, &mut l)
}

/// The row encoder's body, one block at a time.
#[inline(always)]
fn encode_row_impl(src: &[f32], dst: &mut [u8], weights: Option<&[f32]>) {
    let blocks = src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(size_of::<BlockQ6K>()));
    for (i, (x, out)) in blocks.enumerate() {
        let x: &[f32; QK_K] = x.try_into().expect("chunks_exact yields QK_K");
        let y = match block_weights(weights, i) {
            Some(qw) => quantize_block_weighted(x, qw),
            None => quantize_block_ref(x),
        };
        out.copy_from_slice(bytemuck::bytes_of(&y));
    }
}

crate::codec::simd::dispatch_encode_row!(
    /// Encodes one row (see [`crate::codec::EncodeRowFn`]), in the copy for the CPU's
    /// vector instructions ([`crate::codec::simd`]).
    pub fn encode_row, encode_row_at => encode_row_impl
);

/// ggml's `dequantize_row_q6_K` for one block.
pub fn dequantize_block(b: &BlockQ6K, y: &mut [f32; QK_K]) {
    let d = f16_le_to_f32(b.d);
    for h in 0..2 {
        let ql = &b.ql[64 * h..64 * h + 64];
        let qh = &b.qh[32 * h..32 * h + 32];
        let sc = &b.scales[8 * h..8 * h + 8];
        let out = &mut y[128 * h..128 * h + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i8 - 32;
            let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i8 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i8 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i8 - 32;
            out[l] = d * sc[is] as f32 * q1 as f32;
            out[l + 32] = d * sc[is + 2] as f32 * q2 as f32;
            out[l + 64] = d * sc[is + 4] as f32 * q3 as f32;
            out[l + 96] = d * sc[is + 6] as f32 * q4 as f32;
        }
    }
}

/// Decodes one row (see [`crate::codec::DecodeRowFn`]).
pub fn decode_row(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src
        .chunks_exact(size_of::<BlockQ6K>())
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let b: BlockQ6K = bytemuck::pod_read_unaligned(b);
        dequantize_block(&b, y.try_into().expect("chunks_exact yields QK_K"));
    }
}
