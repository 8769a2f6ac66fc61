//! ggml's `quantize_row_iq4_nl_impl` (ggml-quants.c), the one search behind both IQ4_NL
//! (`quantize_iq4_nl`: one 32-element block per call) and IQ4_XS (`quantize_iq4_xs`: a
//! 256-element super-block of eight 32-element groups). `ggml_quantize_chunk` always calls
//! these with `ntry = 7`, with or without importance weights.
//!
//! Float order follows ggml's C (`w*q*x` is `(w*q)*x`, no fused multiply-add); C's int8 and
//! int operands meet floats as exact conversions.

use super::blocks::{KVALUES_IQ4NL, QK_K, QK4_NL};
use crate::codec::float::ggml_fp32_to_fp16_bits;
use crate::codec::kquants::search::{GROUP_MAX_EPS, nearest_int};

/// `ntry` as `quantize_iq4_nl` / `quantize_iq4_xs` pass it.
pub const NTRY: i32 = 7;

/// ggml `best_index_int8(16, kvalues_iq4nl, x)` without its branches: the same index (the
/// level nearest to `x`, a tie going to the upper level, NaN to the last). Inside the table's
/// range ggml's binary search ends at `mu`, the first level above `x`, which is one plus the
/// number of levels 1..=14 at or below `x` (the levels are distinct and increasing).
#[inline(always)]
pub fn best_index_iq4nl(x: f32) -> u8 {
    const V: [f32; 16] = {
        let mut v = [0.0f32; 16];
        let mut i = 0;
        while i < 16 {
            v[i] = KVALUES_IQ4NL[i] as f32;
            i += 1;
        }
        v
    };
    if x <= V[0] {
        return 0;
    }
    if x >= V[15] || x.is_nan() {
        return 15;
    }
    let mut mu = 1usize;
    for &v in &V[1..15] {
        mu += (x >= v) as usize;
    }
    if x - V[mu - 1] < V[mu] - x {
        (mu - 1) as u8
    } else {
        mu as u8
    }
}

/// ggml `best_index_int8(16, values, x)`: the index of the level nearest to `x` (binary search;
/// a tie goes to the upper level, NaN to the last).
#[inline(always)]
pub fn best_index_int8(values: &[i8; 16], x: f32) -> u8 {
    if x <= values[0] as f32 {
        return 0;
    }
    if x >= values[15] as f32 {
        return 15;
    }
    let (mut ml, mut mu) = (0usize, 15usize);
    while mu - ml > 1 {
        let mav = (ml + mu) / 2;
        if x < values[mav] as f32 {
            mu = mav;
        } else {
            ml = mav;
        }
    }
    if x - (values[mu - 1] as f32) < (values[mu] as f32) - x {
        (mu - 1) as u8
    } else {
        mu as u8
    }
}

/// Weighted sums `(sum w*q*x, sum w*q*q)` of `xb` quantized with inverse scale `id`; the
/// chosen indices go to `lb` when given.
#[inline(always)]
fn fit(xb: &[f32], weight: &[f32; QK4_NL], id: f32, mut lb: Option<&mut [u8]>) -> (f32, f32) {
    let (mut sumqx, mut sumq2) = (0.0f32, 0.0f32);
    for j in 0..QK4_NL {
        let l = best_index_iq4nl(id * xb[j]);
        if let Some(lb) = lb.as_deref_mut() {
            lb[j] = l;
        }
        let q = KVALUES_IQ4NL[l as usize] as f32;
        let w = weight[j];
        sumqx += w * q * xb[j];
        sumq2 += w * q * q;
    }
    (sumqx, sumq2)
}

/// The scale search of one 32-element group (the first loop body of
/// `quantize_row_iq4_nl_impl`): the group's scale, 0 when its largest magnitude is below
/// `GROUP_MAX_EPS`; the indices of the first fit go to `lb` (left as they were for such a
/// group, as in ggml: both callers recompute them).
fn group_scale(xb: &[f32], weight: &[f32; QK4_NL], ntry: i32, lb: &mut [u8]) -> f32 {
    let values = &KVALUES_IQ4NL;
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in xb {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        return 0.0;
    }
    let v0 = values[0] as f32;
    let d = if ntry > 0 { -max / v0 } else { max / v0 };
    let (sumqx, sumq2) = fit(xb, weight, 1.0 / d, Some(lb));
    let mut d = if sumq2 > 0.0 { sumqx / sumq2 } else { 0.0 };
    let mut best = d * sumqx;
    for itry in -ntry..=ntry {
        let id = (itry + values[0] as i32) as f32 / max;
        let (sumqx, sumq2) = fit(xb, weight, id, None);
        if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    d
}

/// The per-element weights of one group: `qw[j] * sqrtf(sigma2 + x[j]^2)` with importance
/// weights, else `x[j]^2`.
#[inline(always)]
fn group_weights(xb: &[f32], qw: Option<&[f32]>, sigma2: f32) -> [f32; QK4_NL] {
    let mut w = [0.0f32; QK4_NL];
    match qw {
        Some(qw) => {
            for j in 0..QK4_NL {
                w[j] = qw[j] * (sigma2 + xb[j] * xb[j]).sqrt();
            }
        }
        None => {
            for j in 0..QK4_NL {
                w[j] = xb[j] * xb[j];
            }
        }
    }
    w
}

/// `sigma2` of `quantize_row_iq4_nl_impl`: the super-block's sum of squares (in order) times
/// `2/super_block_size`.
#[inline(always)]
fn sigma2(x: &[f32]) -> f32 {
    let mut s = 0.0f32;
    for &v in x {
        s += v * v;
    }
    s * (2.0f32 / x.len() as f32)
}

/// Packs 32 indices of a group: byte j holds index j (low nibble) and j+16 (high nibble).
#[inline(always)]
fn pack_group(l: &[u8], q4: &mut [u8]) {
    for j in 0..16 {
        q4[j] = l[j] | (l[16 + j] << 4);
    }
}

/// `quantize_row_iq4_nl_impl(QK4_NL, 32, …, ntry)` for one IQ4_NL block: returns the f16 bits
/// of `d` and the packed nibbles.
pub fn iq4_nl_block(x: &[f32], qw: Option<&[f32]>, ntry: i32) -> (u16, [u8; QK4_NL / 2]) {
    let weight = group_weights(x, qw, sigma2(x));
    let mut l = [0u8; QK4_NL];
    let scale = group_scale(x, &weight, ntry, &mut l);
    let dh = ggml_fp32_to_fp16_bits(scale);
    if ntry > 0 {
        let id = if scale != 0.0 { 1.0 / scale } else { 0.0 };
        for (lj, &xj) in l.iter_mut().zip(x) {
            *lj = best_index_iq4nl(id * xj);
        }
    }
    let mut qs = [0u8; QK4_NL / 2];
    pack_group(&l, &mut qs);
    (dh, qs)
}

/// The fields of one IQ4_XS super-block.
pub struct Iq4XsParts {
    pub d: u16,
    pub scales_h: u16,
    pub scales_l: [u8; QK_K / 64],
    pub qs: [u8; QK_K / 2],
}

/// `quantize_row_iq4_nl_impl(QK_K, 32, …, ntry)` for one IQ4_XS super-block.
pub fn iq4_xs_block(x: &[f32], qw: Option<&[f32]>, ntry: i32) -> Iq4XsParts {
    const NB: usize = QK_K / QK4_NL;
    let s2 = sigma2(x);
    let mut l = [0u8; QK_K];
    let mut scales = [0.0f32; NB];
    let (mut max_scale, mut amax_scale) = (0.0f32, 0.0f32);
    for (ib, scale) in scales.iter_mut().enumerate() {
        let r = ib * QK4_NL..(ib + 1) * QK4_NL;
        let weight = group_weights(&x[r.clone()], qw.map(|w| &w[r.clone()]), s2);
        let d = group_scale(&x[r.clone()], &weight, ntry, &mut l[r]);
        *scale = d;
        let abs_d = d.abs();
        if abs_d > amax_scale {
            amax_scale = abs_d;
            max_scale = d;
        }
    }
    let mut out = Iq4XsParts {
        d: 0,
        scales_h: 0,
        scales_l: [0; QK_K / 64],
        qs: [0; QK_K / 2],
    };
    let d = -max_scale / 32.0;
    out.d = ggml_fp32_to_fp16_bits(d);
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    for (ib, &scale) in scales.iter().enumerate() {
        let mut ls = nearest_int(id * scale).clamp(-32, 31);
        let dl = d * ls as f32;
        let idl = if dl != 0.0 { 1.0 / dl } else { 0.0 };
        let lb = &mut l[ib * QK4_NL..(ib + 1) * QK4_NL];
        for (lj, &xj) in lb.iter_mut().zip(&x[ib * QK4_NL..]) {
            *lj = best_index_iq4nl(idl * xj);
        }
        ls += 32;
        let (l_l, l_h) = ((ls & 0xf) as u8, (ls >> 4) as u16);
        if ib % 2 == 0 {
            out.scales_l[ib / 2] = l_l;
        } else {
            out.scales_l[ib / 2] |= l_l << 4;
        }
        out.scales_h |= l_h << (2 * (ib % 8));
    }
    for i in 0..NB {
        pack_group(&l[32 * i..], &mut out.qs[16 * i..16 * i + 16]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branchless_index_equals_ggml_binary_search() {
        let mut xs = vec![
            0.0f32,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
        ];
        for &v in &KVALUES_IQ4NL {
            for d in [-1.0f32, -0.5, -1e-3, 0.0, 1e-3, 0.5, 1.0] {
                xs.push(v as f32 + d);
            }
        }
        // midpoints between neighbours (the ties) and a sweep over the whole range
        for w in KVALUES_IQ4NL.windows(2) {
            xs.push((w[0] as f32 + w[1] as f32) / 2.0);
        }
        xs.extend((0..200_000).map(|i| -140.0 + i as f32 * 0.0014));
        for x in xs {
            assert_eq!(
                best_index_iq4nl(x),
                best_index_int8(&KVALUES_IQ4NL, x),
                "x {x}"
            );
        }
    }
}
