//! What Q4_K and Q5_K share: a super-block header of f16 `d`, f16 `dmin` and eight 6-bit
//! (scale, min) pairs packed into 12 bytes, the `_ref` search that fills it, and the final
//! re-quantization of every element against the rounded header. The two types differ only in
//! the number of levels (`nmax` 15 or 31), the search parameters and how levels are packed.

use super::search::{ScaleMin, make_qp_quants, nearest_int};
use super::search_lanes::{Qkx, QkxParams, make_qkx_quants_lanes, transpose_in, transpose_out};
use super::{K_SCALE_SIZE, QK_K, f16_le, f16_le_to_f32, get_scale_min_k4, pack_scale_min_k4};

/// The header fields of a Q4_K / Q5_K block (f16 fields as little-endian bits).
#[derive(Clone, Copy, Debug)]
pub struct K4Header {
    pub d: u16,
    pub dmin: u16,
    pub scales: [u8; K_SCALE_SIZE],
}

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
pub fn quantize_ref(x: &[f32; QK_K], params: QkxParams) -> (K4Header, [u8; QK_K]) {
    let xt = transpose_in::<32, 8, f32>(x);
    let mut sum_x2 = [0.0f32; 8];
    for row in &xt {
        for k in 0..8 {
            sum_x2[k] += row[k] * row[k];
        }
    }
    let av_x = sum_x2.map(|s| (s / 32.0).sqrt());
    let weights = xt.map(|row| std::array::from_fn(|k| av_x[k] + row[k].abs()));
    let mut lt = [[0u8; 8]; 32];
    let found = make_qkx_quants_lanes(params, &xt, &weights, &mut lt);
    let mut l = [0u8; QK_K];
    transpose_out(&lt, &mut l);
    let mut mins = [0.0f32; 8];
    let mut scales = [0.0f32; 8];
    let mut max_scale = 0.0f32;
    let mut max_min = 0.0f32;
    for (j, &ScaleMin { scale, min }) in found.iter().enumerate() {
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
    let h = K4Header {
        d: f16_le(max_scale / 63.0),
        dmin: f16_le(max_min / 63.0),
        scales: pack_scale_min_k4(&ls, &lm),
    };
    requantize(x, &h, params.nmax, &mut l);
    (h, l)
}

/// The imatrix path of ggml's `quantize_row_q4_K_impl` / `quantize_row_q5_K_impl` for one
/// block: per sub-block a `make_qkx3_quants` search weighted by `qw * sqrt(sigma2 + x²)`, the
/// scales and mins quantized by `make_qp_quants` against the sub-block weight sums, then every
/// element re-quantized. `clamp_scales` caps the 6-bit levels at 63 before packing, as the
/// Q5_K routine does (the Q4_K one does not). Returns the header and the levels.
pub fn quantize_weighted(
    x: &[f32; QK_K],
    qw: &[f32; QK_K],
    nmax: i32,
    clamp_scales: bool,
) -> (K4Header, [u8; QK_K]) {
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
        nmax,
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
    let mut ls = [0u8; 8];
    let mut lm = [0u8; 8];
    let d_block = make_qp_quants(63, &scales, &mut ls, &sw);
    let m_block = make_qp_quants(63, &mins, &mut lm, &sw);
    if clamp_scales {
        for v in ls.iter_mut().chain(lm.iter_mut()) {
            *v = (*v).min(63);
        }
    }
    let h = K4Header {
        d: f16_le(d_block),
        dmin: f16_le(m_block),
        scales: pack_scale_min_k4(&ls, &lm),
    };
    requantize(x, &h, nmax, &mut l);
    (h, l)
}
