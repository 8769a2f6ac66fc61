//! The unweighted encoders, one block at a time: ggml's `quantize_row_q4_0_ref` …
//! `quantize_row_q8_0_ref` (ggml-quants.c), which llama-quantize runs when no imatrix is
//! given. Each keeps ggml's order of float operations; the inverse scale `id = 1/d` is taken
//! from the unrounded f32 `d`, while the block stores `d` rounded to f16.

use super::blocks::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, QK};
use super::c_casts::{c_to_i8, c_trunc_i32};
use crate::codec::float::f32_to_f16_bits;

/// Largest magnitude, keeping its sign; the first one wins a tie (ggml's strict `<`).
#[inline]
fn signed_absmax(x: &[f32]) -> f32 {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

/// Minimum and maximum as ggml's `_1` quantizers find them (starting from ±FLT_MAX).
#[inline]
fn min_max(x: &[f32]) -> (f32, f32) {
    let mut min = f32::MAX;
    let mut max = -f32::MAX;
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

#[inline]
fn inverse(d: f32) -> f32 {
    if d != 0.0 { 1.0 / d } else { 0.0 }
}

/// Packs 5-bit values: low nibbles in `qs` (split halves), 5th bits into `qh` (LE u32).
#[inline]
pub(super) fn pack5(q: &[u8; QK]) -> ([u8; 4], [u8; QK / 2]) {
    let mut qs = [0u8; QK / 2];
    let mut qh = 0u32;
    for j in 0..QK / 2 {
        let (a, b) = (q[j], q[j + QK / 2]);
        qs[j] = (a & 0x0f) | ((b & 0x0f) << 4);
        qh |= (((a & 0x10) >> 4) as u32) << j;
        qh |= (((b & 0x10) >> 4) as u32) << (j + QK / 2);
    }
    (qh.to_le_bytes(), qs)
}

/// Packs 4-bit values, element j in the low nibble of byte j and element j+16 in its high.
#[inline]
pub(super) fn pack4(q: &[u8; QK]) -> [u8; QK / 2] {
    let mut qs = [0u8; QK / 2];
    for j in 0..QK / 2 {
        qs[j] = q[j] | (q[j + QK / 2] << 4);
    }
    qs
}

/// The largest `|v|` that is not NaN (0 if none): ggml's `if (amax < fabsf(v)) amax =
/// fabsf(v)` in any order, which ignores NaNs, so it runs as 8 lanes combined at the end.
#[inline(always)]
fn abs_max_lanes(x: &[f32; QK]) -> f32 {
    let mut m = [0.0f32; 8];
    for c in x.chunks_exact(8) {
        for k in 0..8 {
            let a = c[k].abs();
            m[k] = if m[k] < a { a } else { m[k] };
        }
    }
    let mut amax = 0.0f32;
    for v in m {
        amax = if amax < v { v } else { amax };
    }
    amax
}

/// [`signed_absmax`] of a block: the first value whose magnitude is the largest (NaNs never
/// win), found as the maximum magnitude and then its first position.
#[inline(always)]
fn signed_absmax_block(x: &[f32; QK]) -> f32 {
    let amax = abs_max_lanes(x);
    if amax == 0.0 {
        return 0.0; // ggml's `max` keeps its initial +0.0 (also over -0.0 values)
    }
    let mut max = 0.0f32;
    for &v in x.iter().rev() {
        max = if v.abs() == amax { v } else { max };
    }
    max
}

/// ggml `quantize_row_q4_0_ref` for one block.
#[inline(always)]
pub fn q4_0(x: &[f32]) -> BlockQ4_0 {
    let x: &[f32; QK] = x.try_into().expect("a block of QK");
    let max = signed_absmax_block(x);
    let d = max / -8.0;
    let id = inverse(d);
    let mut q = [0u8; QK];
    for (qj, &v) in q.iter_mut().zip(x) {
        *qj = (c_to_i8(v * id + 8.5) as i32).min(15) as u8;
    }
    BlockQ4_0 {
        d: f32_to_f16_bits(d).to_le(),
        qs: pack4(&q),
    }
}

/// ggml `quantize_row_q4_1_ref` for one block.
pub fn q4_1(x: &[f32]) -> BlockQ4_1 {
    let (min, max) = min_max(x);
    let d = (max - min) / 15.0;
    let id = inverse(d);
    let mut q = [0u8; QK];
    for (qj, &v) in q.iter_mut().zip(x) {
        *qj = (c_to_i8((v - min) * id + 0.5) as i32).min(15) as u8;
    }
    BlockQ4_1 {
        d: f32_to_f16_bits(d).to_le(),
        m: f32_to_f16_bits(min).to_le(),
        qs: pack4(&q),
    }
}

/// ggml `quantize_row_q5_0_ref` for one block.
pub fn q5_0(x: &[f32]) -> BlockQ5_0 {
    let max = signed_absmax(x);
    let d = max / -16.0;
    let id = inverse(d);
    let mut q = [0u8; QK];
    for (qj, &v) in q.iter_mut().zip(x) {
        *qj = (c_to_i8(v * id + 16.5) as i32).min(31) as u8;
    }
    let (qh, qs) = pack5(&q);
    BlockQ5_0 {
        d: f32_to_f16_bits(d).to_le(),
        qh,
        qs,
    }
}

/// ggml `quantize_row_q5_1_ref` for one block (no clamp: ggml relies on `(max-min)*id <= 31`).
pub fn q5_1(x: &[f32]) -> BlockQ5_1 {
    let (min, max) = min_max(x);
    let d = (max - min) / 31.0;
    let id = inverse(d);
    let mut q = [0u8; QK];
    for (qj, &v) in q.iter_mut().zip(x) {
        *qj = c_trunc_i32((v - min) * id + 0.5) as u8;
    }
    let (qh, qs) = pack5(&q);
    BlockQ5_1 {
        d: f32_to_f16_bits(d).to_le(),
        m: f32_to_f16_bits(min).to_le(),
        qh,
        qs,
    }
}

/// ggml `quantize_row_q8_0_ref` for one block: `roundf` (ties away from zero) of `x * id`.
#[inline(always)]
pub fn q8_0(x: &[f32]) -> BlockQ8_0 {
    let x: &[f32; QK] = x.try_into().expect("a block of QK");
    // ggml's MAX(amax, fabsf(v)) = amax > |v| ? amax : |v| in element order: without NaNs
    // that is the largest |v| in any order; a NaN makes it order-dependent (it is kept only
    // until the next element), so such a block takes the serial loop
    let amax = if x.iter().any(|v| v.is_nan()) {
        let mut amax = 0.0f32;
        for &v in x {
            let a = v.abs();
            amax = if amax > a { amax } else { a };
        }
        amax
    } else {
        abs_max_lanes(x)
    };
    let d = amax / 127.0;
    let id = inverse(d);
    let mut qs = [0i8; QK];
    for (qj, &v) in qs.iter_mut().zip(x) {
        *qj = c_to_i8((v * id).round());
    }
    BlockQ8_0 {
        d: f32_to_f16_bits(d).to_le(),
        qs,
    }
}
