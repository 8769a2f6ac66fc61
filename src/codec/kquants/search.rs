//! The scale searches shared by the k-quants, each a port of one static helper in ggml's
//! `ggml/src/ggml-quants.c`.
//!
//! Bytes depend on every rounding in these functions, so each one keeps ggml's float order of
//! operations: C evaluates `a*b*c` as `(a*b)*c` and `a*b + c - d` as `((a*b) + c) - d`, ints
//! are converted to `f32` where they meet a float, and llama.cpp's `libggml-base` is built
//! without FMA contraction (x86-64 baseline), as Rust is. `MIN(a, b)` is `a < b ? a : b` and
//! `MAX(a, b)` is `a > b ? a : b`; with the clamps below both reduce to `clamp` on ints.
//! Stores into C's `uint8_t`/`int8_t` arrays truncate modulo 256, as `as u8`/`as i8` do.
//!
//! Each search is a self-contained function over one sub-block (no allocation), so the GPU
//! kernel can mirror it one to one.

/// ggml's `GROUP_MAX_EPS`: a group whose largest magnitude is below this is "all zero".
pub const GROUP_MAX_EPS: f32 = 1e-15;

/// ggml's `nearest_int`: round to nearest (ties to even) by adding 1.5·2^23 and reading the
/// mantissa bits. Valid for |x| <= 4194303; outside that (or for NaN) it returns the same
/// garbage ggml does (ggml only asserts in debug builds).
#[inline(always)]
pub fn nearest_int(fval: f32) -> i32 {
    let val = fval + 12_582_912.0f32;
    (val.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
}

/// The weight `make_qx_quants` gives element `x` when no importance weights are passed.
#[inline(always)]
fn qx_default_weight(rmse_type: i32, x: f32) -> f32 {
    match rmse_type {
        1 => x * x,
        2 => 1.0,
        3 => x.abs(),
        _ => x.abs().sqrt(),
    }
}

/// ggml's `make_qx_quants`: symmetric quantization of `x` to levels `-nmax..nmax-1`, written
/// to `l` as `level + nmax`; returns the scale. `rmse_type == 0` is plain rounding of the
/// absmax scale; otherwise the weighted least-squares scale is refined over 18 trial inverse
/// scales `-(nmax + 0.1*is)/max`, `is` in `-9..=9` without 0 (negative `rmse_type`: return
/// early, the mean of the first fit and the absmax scale). Weights are `qw` when given, else
/// a function of `x` chosen by `rmse_type` (1: x², 2: 1, 3: |x|, other: sqrt|x|).
pub fn make_qx_quants(
    nmax: i32,
    x: &[f32],
    l: &mut [i8],
    rmse_type: i32,
    qw: Option<&[f32]>,
) -> f32 {
    let n = x.len();
    let l = &mut l[..n];
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &xi in x {
        let ax = xi.abs();
        if ax > amax {
            amax = ax;
            max = xi;
        }
    }
    if amax < GROUP_MAX_EPS {
        l.fill(0);
        return 0.0;
    }
    let nmaxf = nmax as f32;
    let mut iscale = -nmaxf / max;
    if rmse_type == 0 {
        for (li, &xi) in l.iter_mut().zip(x) {
            let q = nearest_int(iscale * xi).clamp(-nmax, nmax - 1);
            *li = (nmax + q) as i8;
        }
        return 1.0 / iscale;
    }
    let (rmse_type, return_early) = if rmse_type < 0 {
        (-rmse_type, true)
    } else {
        (rmse_type, false)
    };
    let weight = |i: usize| match qw {
        Some(w) => w[i],
        None => qx_default_weight(rmse_type, x[i]),
    };
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for i in 0..n {
        let q = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
        l[i] = (q + nmax) as i8;
        let w = weight(i);
        let qf = q as f32;
        sumlx += w * x[i] * qf;
        suml2 += w * qf * qf;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    if return_early {
        return if suml2 > 0.0 {
            0.5 * (scale + 1.0 / iscale)
        } else {
            1.0 / iscale
        };
    }
    let mut best = scale * sumlx;
    for is in -9i32..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmaxf + 0.1f32 * is as f32) / max;
        sumlx = 0.0;
        suml2 = 0.0;
        for i in 0..n {
            let q = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1) as f32;
            let w = weight(i);
            sumlx += w * x[i] * q;
            suml2 += w * q * q;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (li, &xi) in l.iter_mut().zip(x) {
                let q = nearest_int(iscale * xi).clamp(-nmax, nmax - 1);
                *li = (nmax + q) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// ggml's `make_q3_quants`: symmetric quantization to `-nmax..nmax-1` (stored `+ nmax`) with
/// weights x²; with `do_rmse`, up to 5 passes of coordinate descent that move one level at a
/// time while the weighted fit improves; returns the scale.
pub fn make_q3_quants(nmax: i32, x: &[f32], l: &mut [i8], do_rmse: bool) -> f32 {
    let n = x.len();
    let l = &mut l[..n];
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &xi in x {
        let ax = xi.abs();
        if ax > amax {
            amax = ax;
            max = xi;
        }
    }
    if amax < GROUP_MAX_EPS {
        l.fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    if do_rmse {
        let mut sumlx = 0.0f32;
        let mut suml2 = 0.0f32;
        for i in 0..n {
            let q = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
            l[i] = q as i8;
            let w = x[i] * x[i];
            let qf = q as f32;
            sumlx += w * x[i] * qf;
            suml2 += w * qf * qf;
        }
        for _itry in 0..5 {
            let mut n_changed = 0;
            for i in 0..n {
                let w = x[i] * x[i];
                let li = l[i] as f32;
                let mut slx = sumlx - w * x[i] * li;
                if slx > 0.0 {
                    let mut sl2 = suml2 - w * li * li;
                    let new_l = nearest_int(x[i] * sl2 / slx).clamp(-nmax, nmax - 1);
                    if new_l != l[i] as i32 {
                        let nl = new_l as f32;
                        slx += w * x[i] * nl;
                        sl2 += w * nl * nl;
                        if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                            l[i] = new_l as i8;
                            sumlx = slx;
                            suml2 = sl2;
                            n_changed += 1;
                        }
                    }
                }
            }
            if n_changed == 0 {
                break;
            }
        }
        for li in l.iter_mut() {
            *li = (*li as i32 + nmax) as i8;
        }
        return if suml2 > 0.0 { sumlx / suml2 } else { 0.0 };
    }
    for (li, &xi) in l.iter_mut().zip(x) {
        let q = nearest_int(iscale * xi).clamp(-nmax, nmax - 1);
        *li = (q + nmax) as i8;
    }
    1.0 / iscale
}

/// The result of an asymmetric (scale + min) search: `x ≈ scale * l - min`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScaleMin {
    pub scale: f32,
    /// ggml's `*the_min`: the negated offset, so `>= 0` (or `-0.0`).
    pub min: f32,
}

/// ggml's `make_qkx2_quants`: asymmetric quantization of `x` to levels `0..=nmax` with
/// weights, minimising the weighted squared (or with `use_mad` absolute) error. Starts from
/// the min/max fit, then tries `nstep + 1` inverse scales `(rmin + rdelta*is + nmax)/(max -
/// min)`, each with the closed-form least-squares scale and min, keeping the best. As in ggml,
/// `min` is updated when a trial wins, and later trials measure from the updated `min`.
/// `laux` is scratch of `x.len()` levels.
#[allow(clippy::too_many_arguments)]
pub fn make_qkx2_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    l: &mut [u8],
    laux: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
) -> ScaleMin {
    let n = x.len();
    let (l, laux, weights) = (&mut l[..n], &mut laux[..n], &weights[..n]);
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l.fill(0);
        return ScaleMin {
            scale: 0.0,
            min: -min,
        };
    }
    let nmaxf = nmax as f32;
    let mut iscale = nmaxf / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..n {
        let q = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        l[i] = q as u8;
        let mut diff = scale * q as f32 + min - x[i];
        diff = if use_mad { diff.abs() } else { diff * diff };
        best_error += weights[i] * diff;
    }
    if nstep < 1 {
        return ScaleMin { scale, min: -min };
    }
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmaxf) / (max - min);
        let mut sum_l = 0.0f32;
        let mut sum_l2 = 0.0f32;
        let mut sum_xl = 0.0f32;
        for i in 0..n {
            let q = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = q as u8;
            let w = weights[i];
            let qf = q as f32;
            sum_l += w * qf;
            sum_l2 += w * qf * qf;
            sum_xl += w * qf * x[i];
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                let mut diff = this_scale * laux[i] as f32 + this_min - x[i];
                diff = if use_mad { diff.abs() } else { diff * diff };
                cur_error += weights[i] * diff;
            }
            if cur_error < best_error {
                l.copy_from_slice(laux);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    ScaleMin { scale, min: -min }
}

/// ggml's `make_qkx3_quants`: as [`make_qkx2_quants`] (the weighted `_impl` paths use it), but
/// `max <= min` counts as degenerate and a trial level is `v > 0 ? nearest_int(MIN(v, nmax))
/// : 0` with `v = iscale*(x - min)`, which stays defined when an updated `min` makes `v`
/// infinite or NaN. ggml's NULL-weights fallback (weights x²) is not used by the k-quants, so
/// `weights` is required here.
#[allow(clippy::too_many_arguments)]
pub fn make_qkx3_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    l: &mut [u8],
    laux: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
) -> ScaleMin {
    let n = x.len();
    let (l, laux, weights) = (&mut l[..n], &mut laux[..n], &weights[..n]);
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max <= min {
        l.fill(0);
        return ScaleMin {
            scale: 0.0,
            min: -min,
        };
    }
    let nmaxf = nmax as f32;
    let mut iscale = nmaxf / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_mad = 0.0f32;
    for i in 0..n {
        let q = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        l[i] = q as u8;
        let mut diff = scale * q as f32 + min - x[i];
        diff = if use_mad { diff.abs() } else { diff * diff };
        best_mad += weights[i] * diff;
    }
    if nstep < 1 {
        return ScaleMin { scale, min: -min };
    }
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmaxf) / (max - min);
        let mut sum_l = 0.0f32;
        let mut sum_l2 = 0.0f32;
        let mut sum_xl = 0.0f32;
        for i in 0..n {
            let v = iscale * (x[i] - min);
            let q = if v > 0.0 {
                nearest_int(if v < nmaxf { v } else { nmaxf })
            } else {
                0
            };
            laux[i] = q as u8;
            let w = weights[i];
            let qf = q as f32;
            sum_l += w * qf;
            sum_l2 += w * qf * qf;
            sum_xl += w * qf * x[i];
        }
        let d = sum_w * sum_l2 - sum_l * sum_l;
        if d > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / d;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / d;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut mad = 0.0f32;
            for i in 0..n {
                let mut diff = this_scale * laux[i] as f32 + this_min - x[i];
                diff = if use_mad { diff.abs() } else { diff * diff };
                mad += weights[i] * diff;
            }
            if mad < best_mad {
                l.copy_from_slice(laux);
                best_mad = mad;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    ScaleMin { scale, min: -min }
}

/// ggml's `make_qp_quants`: quantizes the non-negative values `x` (sub-block scales or mins)
/// to `0..=nmax` with weights `quant_weights`, for the weighted `_impl` paths. Tries the
/// inverse scales `(nmax + 0.1*is)/max`, `is` in `-4..=4`, by weighted squared error, then
/// refines levels by up to 5 passes of coordinate descent; returns the least-squares scale.
/// As in ggml, the first rounding is stored unclamped (truncated to a byte).
pub fn make_qp_quants(nmax: i32, x: &[f32], l: &mut [u8], quant_weights: &[f32]) -> f32 {
    let n = x.len();
    let (l, qw) = (&mut l[..n], &quant_weights[..n]);
    let mut max = 0.0f32;
    for &xi in x {
        max = if max > xi { max } else { xi };
    }
    if max < GROUP_MAX_EPS {
        l.fill(0);
        return 0.0;
    }
    let nmaxf = nmax as f32;
    let mut iscale = nmaxf / max;
    for (li, &xi) in l.iter_mut().zip(x) {
        *li = nearest_int(iscale * xi) as u8;
    }
    let scale = 1.0 / iscale;
    let mut best_mse = 0.0f32;
    for i in 0..n {
        let diff = x[i] - scale * l[i] as f32;
        best_mse += qw[i] * diff * diff;
    }
    for is in -4i32..=4 {
        if is == 0 {
            continue;
        }
        let iscale_is = (0.1f32 * is as f32 + nmaxf) / max;
        let scale_is = 1.0 / iscale_is;
        let mut mse = 0.0f32;
        for i in 0..n {
            let q = nearest_int(iscale_is * x[i]).min(nmax);
            let diff = x[i] - scale_is * q as f32;
            mse += qw[i] * diff * diff;
        }
        if mse < best_mse {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for i in 0..n {
        let q = nearest_int(iscale * x[i]).min(nmax);
        l[i] = q as u8;
        let w = qw[i];
        let qf = q as f32;
        sumlx += w * x[i] * qf;
        suml2 += w * qf * qf;
    }
    for _itry in 0..5 {
        let mut n_changed = 0;
        for i in 0..n {
            let w = qw[i];
            let li = l[i] as f32;
            let mut slx = sumlx - w * x[i] * li;
            let mut sl2 = suml2 - w * li * li;
            if slx > 0.0 && sl2 > 0.0 {
                let new_l = nearest_int(x[i] * sl2 / slx).min(nmax);
                if new_l != l[i] as i32 {
                    let nl = new_l as f32;
                    slx += w * x[i] * nl;
                    sl2 += w * nl * nl;
                    if slx * slx * suml2 > sumlx * sumlx * sl2 {
                        l[i] = new_l as u8;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    if suml2 > 0.0 { sumlx / suml2 } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_half_to_even() {
        for (x, want) in [
            (0.5f32, 0),
            (1.5, 2),
            (2.5, 2),
            (-0.5, 0),
            (-1.5, -2),
            (3.49, 3),
            (-7.51, -8),
            (4194303.0, 4194303),
            (-4194303.0, -4194303),
        ] {
            assert_eq!(nearest_int(x), want, "nearest_int({x})");
        }
    }
}
