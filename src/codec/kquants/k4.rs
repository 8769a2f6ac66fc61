//! What Q4_K and Q5_K share: a super-block header of f16 `d`, f16 `dmin` and eight 6-bit
//! (scale, min) pairs packed into 12 bytes, the `_ref` search that fills it, and the final
//! re-quantization of every element against the rounded header. The two types differ only in
//! the number of levels (`nmax` 15 or 31), the search parameters and how levels are packed.

use super::search::{ScaleMin, make_qp_quants, nearest_int};
use super::search_lanes::{Qkx, QkxParams, make_qkx_quants_lanes};
use super::{
    K_SCALE_SIZE, QK_K, f16_le, f16_le_to_f32, get_scale_min_k4, pack_scale_min_k4, src_block,
    store_block,
};

/// The header fields of a Q4_K / Q5_K block (f16 fields as little-endian bits).
#[derive(Clone, Copy, Debug)]
pub struct K4Header {
    pub d: u16,
    pub dmin: u16,
    pub scales: [u8; K_SCALE_SIZE],
}

const ZERO_HEADER: K4Header = K4Header {
    d: 0,
    dmin: 0,
    scales: [0; K_SCALE_SIZE],
};

/// Re-quantizes every sub-block against its f16-rounded scale and min (the common tail of
/// ggml's `quantize_row_q4_K_ref`/`_q5_K_ref` and their `_impl`s) to levels `0..=nmax`;
/// sub-blocks whose scale rounds to zero keep the levels of the search.
#[inline(always)]
pub fn requantize(x: &[f32; QK_K], h: &K4Header, nmax: i32, l: &mut [u8; QK_K]) {
    let d_all = f16_le_to_f32(h.d);
    let dmin_all = f16_le_to_f32(h.dmin);
    for j in 0..QK_K / 32 {
        let (sc, m) = get_scale_min_k4(j, &h.scales);
        let d = d_all * sc as f32;
        if d == 0.0 {
            continue;
        }
        let dm = dmin_all * m as f32;
        for ii in 0..32 {
            let q = nearest_int((x[32 * j + ii] + dm) / d);
            l[32 * j + ii] = q.clamp(0, nmax) as u8;
        }
    }
}

/// The `_ref` path of ggml's `quantize_row_q4_K_ref` / `quantize_row_q5_K_ref` for one block:
/// per 32-element sub-block a `make_qkx2_quants` search (weights `sqrt(mean x²) + |x|`) with
/// `params`, the scales and mins quantized to 6 bits against their maxima, then every element
/// re-quantized. Returns the header and the levels (`0..=params.nmax`).
#[inline(always)]
pub fn quantize_ref(x: &[f32; QK_K], params: QkxParams) -> (K4Header, [u8; QK_K]) {
    let [r] = quantize_ref_lanes::<1, 8>([x], params);
    r
}

/// [`quantize_ref`] on `B` blocks at once: the searches of their `8 * B` sub-blocks run as
/// one set of lanes (`LANES == 8 * B`), which gives the CPU independent vector chains; every
/// lane does what the one-block search does, so the results are the same.
#[inline(always)]
pub fn quantize_ref_lanes<const B: usize, const LANES: usize>(
    xs: [&[f32; QK_K]; B],
    params: QkxParams,
) -> [(K4Header, [u8; QK_K]); B] {
    const { assert!(LANES == 8 * B) };
    let xt = transpose_blocks::<B, LANES>(&xs);
    let mut sum_x2 = [0.0f32; LANES];
    for row in &xt {
        for k in 0..LANES {
            sum_x2[k] += row[k] * row[k];
        }
    }
    let mut av_x = [0.0f32; LANES];
    for k in 0..LANES {
        av_x[k] = (sum_x2[k] / 32.0).sqrt();
    }
    let mut weights = [[0.0f32; LANES]; 32];
    for i in 0..32 {
        for k in 0..LANES {
            weights[i][k] = av_x[k] + xt[i][k].abs();
        }
    }
    let mut lt = [[0u8; LANES]; 32];
    let found = make_qkx_quants_lanes(params, &xt, &weights, &mut lt);
    let mut out = [(ZERO_HEADER, [0u8; QK_K]); B];
    for b in 0..B {
        let (h, l) = &mut out[b];
        levels_of_block(&lt, b, l);
        let mut mins = [0.0f32; 8];
        let mut scales = [0.0f32; 8];
        let mut max_scale = 0.0f32;
        let mut max_min = 0.0f32;
        for j in 0..8 {
            let ScaleMin { scale, min } = found[8 * b + j];
            scales[j] = scale;
            mins[j] = min;
            if scale > max_scale {
                max_scale = scale;
            }
            if min > max_min {
                max_min = min;
            }
        }
        let inv_scale = if max_scale > 0.0 {
            63.0 / max_scale
        } else {
            0.0
        };
        let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
        let mut ls = [0u8; 8];
        let mut lm = [0u8; 8];
        for j in 0..QK_K / 32 {
            ls[j] = (nearest_int(inv_scale * scales[j]) as u8).min(63);
            lm[j] = (nearest_int(inv_min * mins[j]) as u8).min(63);
        }
        *h = K4Header {
            d: f16_le(max_scale / 63.0),
            dmin: f16_le(max_min / 63.0),
            scales: pack_scale_min_k4(&ls, &lm),
        };
        requantize(xs[b], h, params.nmax, l);
    }
    out
}

/// The 32-element sub-blocks of `B` blocks transposed to `[i][k]`, lane `k` = sub-block
/// `k % 8` of block `k / 8`.
#[inline(always)]
fn transpose_blocks<const B: usize, const LANES: usize>(
    xs: &[&[f32; QK_K]; B],
) -> [[f32; LANES]; 32] {
    let mut t = [[0.0f32; LANES]; 32];
    for k in 0..LANES {
        let x = xs[k / 8];
        for i in 0..32 {
            t[i][k] = x[32 * (k % 8) + i];
        }
    }
    t
}

/// The levels of block `b` from the lanes `8b..8b+8` of a transposed search.
#[inline(always)]
fn levels_of_block<const LANES: usize>(lt: &[[u8; LANES]; 32], b: usize, l: &mut [u8; QK_K]) {
    for j in 0..8 {
        for i in 0..32 {
            l[32 * j + i] = lt[i][8 * b + j];
        }
    }
}

/// The imatrix path of ggml's `quantize_row_q4_K_impl` / `quantize_row_q5_K_impl` for one
/// block: per sub-block a `make_qkx3_quants` search weighted by `qw * sqrt(sigma2 + x²)`, the
/// scales and mins quantized by `make_qp_quants` against the sub-block weight sums, then every
/// element re-quantized. `clamp_scales` caps the 6-bit levels at 63 before packing, as the
/// Q5_K routine does (the Q4_K one does not). Returns the header and the levels.
#[inline(always)]
pub fn quantize_weighted(
    x: &[f32; QK_K],
    qw: &[f32; QK_K],
    nmax: i32,
    clamp_scales: bool,
) -> (K4Header, [u8; QK_K]) {
    let [r] = quantize_weighted_lanes::<1, 8>([x], [qw], nmax, clamp_scales);
    r
}

/// [`quantize_weighted`] on `B` blocks at once (`LANES == 8 * B`), as [`quantize_ref_lanes`].
#[inline(always)]
pub fn quantize_weighted_lanes<const B: usize, const LANES: usize>(
    xs: [&[f32; QK_K]; B],
    qws: [&[f32; QK_K]; B],
    nmax: i32,
    clamp_scales: bool,
) -> [(K4Header, [u8; QK_K]); B] {
    const { assert!(LANES == 8 * B) };
    let mut sigma2 = [0.0f32; B];
    for b in 0..B {
        let mut sum_x2 = 0.0f32;
        for &v in xs[b] {
            sum_x2 += v * v;
        }
        sigma2[b] = 2.0 * sum_x2 / QK_K as f32;
    }
    let xt = transpose_blocks::<B, LANES>(&xs);
    let qwt = transpose_blocks::<B, LANES>(&qws);
    let mut weights = [[0.0f32; LANES]; 32];
    let mut sw = [0.0f32; LANES];
    for i in 0..32 {
        for k in 0..LANES {
            let v = xt[i][k];
            weights[i][k] = qwt[i][k] * (sigma2[k / 8] + v * v).sqrt();
            sw[k] += weights[i][k];
        }
    }
    let mut lt = [[0u8; LANES]; 32];
    let params = QkxParams {
        variant: Qkx::V3,
        nmax,
        rmin: -0.9,
        rdelta: 0.05,
        nstep: 36,
        use_mad: false,
    };
    let found = make_qkx_quants_lanes(params, &xt, &weights, &mut lt);
    let mut out = [(ZERO_HEADER, [0u8; QK_K]); B];
    for b in 0..B {
        let (h, l) = &mut out[b];
        levels_of_block(&lt, b, l);
        let mut scales = [0.0f32; 8];
        let mut mins = [0.0f32; 8];
        let mut swb = [0.0f32; 8];
        for j in 0..8 {
            scales[j] = found[8 * b + j].scale;
            mins[j] = found[8 * b + j].min;
            swb[j] = sw[8 * b + j];
        }
        let mut ls = [0u8; 8];
        let mut lm = [0u8; 8];
        let d_block = make_qp_quants(63, &scales, &mut ls, &swb);
        let m_block = make_qp_quants(63, &mins, &mut lm, &swb);
        if clamp_scales {
            for v in ls.iter_mut().chain(lm.iter_mut()) {
                *v = (*v).min(63);
            }
        }
        *h = K4Header {
            d: f16_le(d_block),
            dmin: f16_le(m_block),
            scales: pack_scale_min_k4(&ls, &lm),
        };
        requantize(xs[b], h, nmax, l);
    }
    out
}

/// A Q4_K / Q5_K row encoder's body: blocks two at a time (sixteen search lanes), the last
/// odd one alone; without weights the `_ref` search with `params`, with weights the imatrix
/// one with `params.nmax` and `clamp_scales`. `block_of` packs a header and levels.
#[inline(always)]
pub fn encode_row<Blk: bytemuck::Pod>(
    src: &[f32],
    dst: &mut [u8],
    weights: Option<&[f32]>,
    params: QkxParams,
    clamp_scales: bool,
    block_of: fn(K4Header, &[u8; QK_K]) -> Blk,
) {
    let n = src.len() / QK_K;
    let mut i = 0;
    while i + 2 <= n {
        let x = [src_block(src, i), src_block(src, i + 1)];
        let [(h0, l0), (h1, l1)] = match weights {
            Some(w) => {
                let qw = [src_block(w, i), src_block(w, i + 1)];
                quantize_weighted_lanes::<2, 16>(x, qw, params.nmax, clamp_scales)
            }
            None => quantize_ref_lanes::<2, 16>(x, params),
        };
        store_block(dst, i, &block_of(h0, &l0));
        store_block(dst, i + 1, &block_of(h1, &l1));
        i += 2;
    }
    if i < n {
        let x = src_block(src, i);
        let (h, l) = match weights {
            Some(w) => quantize_weighted(x, src_block(w, i), params.nmax, clamp_scales),
            None => quantize_ref(x, params),
        };
        store_block(dst, i, &block_of(h, &l));
    }
}
