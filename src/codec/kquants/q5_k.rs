//! Q5_K: 5.5 bits per weight. A 256-element super-block in 8 sub-blocks of 32, each with a
//! 6-bit scale and a 6-bit min against the f16 super-scales `d` and `dmin`:
//! `x = d*sc*q - dmin*m`, q in 0..=31 (low 4 bits in `qs`, the 5th in `qh`).

use super::k4::{self, K4Header};
use super::search::make_qp_quants;
use super::search_lanes::{Qkx, QkxParams, make_qkx_quants_lanes, transpose_in, transpose_out};
use super::{K_SCALE_SIZE, QK_K, block_weights, f16_le, f16_le_to_f32};
use super::{get_scale_min_k4, pack_scale_min_k4};
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
const _: () = assert!(std::mem::size_of::<BlockQ5K>() == 176);

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

/// ggml's `quantize_row_q5_K_ref` for one block.
pub fn quantize_block_ref(x: &[f32; QK_K]) -> BlockQ5K {
    let params = QkxParams {
        variant: Qkx::V2,
        nmax: 31,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: false,
    };
    let (h, l) = k4::quantize_ref(x, params);
    let mut y = BlockQ5K::zeroed();
    y.d = h.d;
    y.dmin = h.dmin;
    y.scales = h.scales;
    pack_levels(&l, &mut y);
    y
}

/// ggml's `quantize_row_q5_K_impl` for one block with importance weights `qw` (the imatrix
/// path).
pub fn quantize_block_weighted(x: &[f32; QK_K], qw: &[f32; QK_K]) -> BlockQ5K {
    let mut ls = [0u8; 8];
    let mut lm = [0u8; 8];
    let mut sum_x2 = 0.0f32;
    for &v in x {
        sum_x2 += v * v;
    }
    let sigma2 = 2.0 * sum_x2 / QK_K as f32;
    let xt = transpose_in::<32, 8, f32>(x);
    let qwt = transpose_in::<32, 8, f32>(qw);
    let mut weights = [[0.0f32; 8]; 32];
    let mut sw = [0.0f32; 8];
    for i in 0..32 {
        for k in 0..8 {
            let v = xt[i][k];
            weights[i][k] = qwt[i][k] * (sigma2 + v * v).sqrt();
            sw[k] += weights[i][k];
        }
    }
    let mut lt = [[0u8; 8]; 32];
    let params = QkxParams {
        variant: Qkx::V3,
        nmax: 31,
        rmin: -0.9,
        rdelta: 0.05,
        nstep: 36,
        use_mad: false,
    };
    let found = make_qkx_quants_lanes(params, &xt, &weights, &mut lt);
    let mut l = [0u8; QK_K];
    transpose_out(&lt, &mut l);
    let scales = found.map(|r| r.scale);
    let mins = found.map(|r| r.min);
    let d_block = make_qp_quants(63, &scales, &mut ls, &sw);
    let m_block = make_qp_quants(63, &mins, &mut lm, &sw);
    for v in ls.iter_mut().chain(lm.iter_mut()) {
        *v = (*v).min(63);
    }
    let mut y = BlockQ5K::zeroed();
    y.scales = pack_scale_min_k4(&ls, &lm);
    y.d = f16_le(d_block);
    y.dmin = f16_le(m_block);
    k4::requantize(
        x,
        &K4Header {
            d: y.d,
            dmin: y.dmin,
            scales: y.scales,
        },
        31,
        &mut l,
    );
    pack_levels(&l, &mut y);
    y
}

/// Encodes one row (see [`crate::codec::EncodeRowFn`]).
pub fn encode_row(src: &[f32], dst: &mut [u8], weights: Option<&[f32]>) {
    let blocks = src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(176));
    for (i, (x, out)) in blocks.enumerate() {
        let x: &[f32; QK_K] = x.try_into().expect("chunks_exact yields QK_K");
        let y = match block_weights(weights, i) {
            Some(qw) => quantize_block_weighted(x, qw),
            None => quantize_block_ref(x),
        };
        out.copy_from_slice(bytemuck::bytes_of(&y));
    }
}

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
    for (b, y) in src.chunks_exact(176).zip(dst.chunks_exact_mut(QK_K)) {
        let b: BlockQ5K = bytemuck::pod_read_unaligned(b);
        dequantize_block(&b, y.try_into().expect("chunks_exact yields QK_K"));
    }
}
