//! The 4-bit floating-point types MXFP4 (OCP microscaling: 32 E2M1 values and one E8M0
//! power-of-two scale) and NVFP4 (64 E2M1 values in four 16-element groups, each with an
//! unsigned E4M3 scale), as ggml stores them.
//!
//! Shared here: ggml's E2M1 table `kvalues_fp4` (values doubled, so the scales are halved:
//! `ggml_e8m0_to_fp32_half`, `ggml_ue4m3_to_fp32` returns half the E4M3 value) and
//! `best_index_mxfp4`.

pub mod mxfp4;
pub mod nvfp4;

/// ggml `kvalues_fp4` (= `kvalues_mxfp4`): the E2M1 values times two; index 8 is -0.
pub const KVALUES_FP4: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// ggml `best_index_mxfp4(x, e)`: the index whose `kvalues_fp4[i] * e` is nearest to `x`,
/// scanning in index order, the first of equals winning (so 0 is index 0, never 8).
///
/// Only half the table is scanned, with the same result: for `x >= 0` (or NaN) every level of
/// the other sign has `err = |k|*e + x`, which rounds to no less than index 0's `err = x`, so
/// it can never be strictly smaller than the best so far (which is at most index 0's); the
/// same holds for `x < 0` and the positive levels. The scanned levels keep ggml's order and
/// arithmetic, so ties resolve as in ggml.
#[inline(always)]
pub fn best_index_fp4(x: f32, e: f32) -> u8 {
    // no branches: a random sign or level would be mispredicted half the time
    let base = ((x < 0.0) as usize) * 8;
    let mut best_index = 0usize;
    let mut best_err = (KVALUES_FP4[0] as f32 * e - x).abs();
    for i in 1..8 {
        let err = (KVALUES_FP4[base + i] as f32 * e - x).abs();
        let lt = err < best_err;
        best_index = if lt { base + i } else { best_index };
        best_err = if lt { err } else { best_err };
    }
    best_index as u8
}

/// ggml's full 16-level scan, kept as the reference for [`best_index_fp4`]'s test.
#[cfg(test)]
fn best_index_fp4_full(x: f32, e: f32) -> u8 {
    let mut best_index = 0u8;
    let mut best_err = (KVALUES_FP4[0] as f32 * e - x).abs();
    for (i, &k) in KVALUES_FP4.iter().enumerate().skip(1) {
        let err = (k as f32 * e - x).abs();
        if err < best_err {
            best_index = i as u8;
            best_err = err;
        }
    }
    best_index
}

/// [`best_index_fp4`] for a whole group (up to 32 values) at once, candidate by candidate so
/// the element loop vectorizes: the same index for every element. A negative `x` is matched
/// on `|x|` against the positive levels and then moved to the negative half (index 0 stays 0):
/// `|(-k)*e - x| == |k*e - |x||` exactly, as negation is exact and rounding symmetric.
#[inline(always)]
pub fn best_indices_fp4(x: &[f32], e: f32, out: &mut [u8; 32]) {
    let n = x.len().min(32);
    let mut ax = [0.0f32; 32];
    let mut best_err = [0.0f32; 32];
    // u32 lanes like the f32 ones, so the selects stay one vector width
    let mut best = [0u32; 32];
    let k0 = KVALUES_FP4[0] as f32 * e;
    for j in 0..n {
        ax[j] = x[j].abs();
        best_err[j] = (k0 - ax[j]).abs();
    }
    for (i, &kv) in KVALUES_FP4.iter().enumerate().take(8).skip(1) {
        let k = kv as f32 * e;
        for j in 0..n {
            let err = (k - ax[j]).abs();
            let lt = err < best_err[j];
            best[j] = if lt { i as u32 } else { best[j] };
            best_err[j] = if lt { err } else { best_err[j] };
        }
    }
    for j in 0..n {
        let neg = x[j] < 0.0 && best[j] != 0;
        out[j] = (best[j] | ((neg as u32) << 3)) as u8;
    }
}

/// Packs 2*n indices the way both types do: byte j holds index j (low nibble) and index j+n
/// (high nibble), each ggml's `best_index_mxfp4` with scale `d`.
#[inline(always)]
pub fn pack_group(x: &[f32], d: f32, qs: &mut [u8]) {
    let half = x.len() / 2;
    let mut idx = [0u8; 32];
    // 16 at a time: three 16-lane arrays fit the SSE registers, 32 spill
    for (c, xc) in x.chunks(16).enumerate() {
        let mut part = [0u8; 32];
        best_indices_fp4(xc, d, &mut part);
        idx[c * 16..c * 16 + xc.len()].copy_from_slice(&part[..xc.len()]);
    }
    for j in 0..half {
        qs[j] = idx[j] | (idx[half + j] << 4);
    }
}

/// The inverse of [`pack_group`]: `kvalues_fp4[q] * d` (ggml writes `x0*d`, int8 times float).
#[inline(always)]
pub fn unpack_group(qs: &[u8], d: f32, y: &mut [f32]) {
    let half = y.len() / 2;
    for j in 0..half {
        y[j] = KVALUES_FP4[(qs[j] & 0x0f) as usize] as f32 * d;
        y[j + half] = KVALUES_FP4[(qs[j] >> 4) as usize] as f32 * d;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_scan_equals_the_full_scan() {
        // every scale MXFP4 and NVFP4 can have, against values on, between and far from the
        // levels, signed zeros, subnormals, infinities and NaN
        let mut scales: Vec<f32> = (0..=255u8).map(mxfp4::e8m0_to_fp32_half).collect();
        scales.extend((0..=255u8).map(nvfp4::ue4m3_to_fp32));
        let mut xs = vec![
            0.0f32,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            1e-45,
        ];
        let mut s = 0x9e37_79b9u32;
        for _ in 0..2000 {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            xs.push(f32::from_bits(s));
        }
        let mut n = 0;
        for &e in &scales {
            for &k in &KVALUES_FP4 {
                for d in [-1.0f32, -0.5, -0.25, 0.0, 0.25, 0.5, 1.0] {
                    xs.push((k as f32 + d) * e);
                    xs.push(-(k as f32 + d) * e);
                }
            }
            for &x in &xs {
                assert_eq!(
                    best_index_fp4(x, e),
                    best_index_fp4_full(x, e),
                    "x {x:e} e {e:e}"
                );
                n += 1;
            }
            xs.truncate(2006);
        }
        assert!(n > 1_000_000);
    }
}
