//! [`make_qx_quants`], [`make_qkx2_quants`] and [`make_qkx3_quants`] run on all sub-blocks of a super-block at
//! once, one sub-block per lane, so the CPU can use SIMD for a search whose sums are serial
//! within a sub-block. Every lane performs exactly the operations of the scalar function in
//! the same order (branches become per-lane selects), so the results are identical bit for
//! bit; a unit test below holds the two to that. The scalar functions stay the specification
//! (and what a GPU kernel mirrors).
//!
//! Data is transposed: `x[i][k]` is element `i` of sub-block `k`.
//!
//! [`make_qx_quants`]: super::search::make_qx_quants
//! [`make_qkx2_quants`]: super::search::make_qkx2_quants
//! [`make_qkx3_quants`]: super::search::make_qkx3_quants

use super::search::{GROUP_MAX_EPS, ScaleMin, nearest_int};

/// [`make_qx_quants`] with `rmse_type == 1` on `LANES` sub-blocks of `N` elements: `x` and
/// `weights` transposed (`x[i][k]`; pass `x²` for ggml's `qw == NULL`), levels (`+ nmax`)
/// written to `l[i][k]`, the scale of each sub-block returned. A trial's levels are kept
/// from its sums rather than recomputed, which gives the same values.
///
/// [`make_qx_quants`]: super::search::make_qx_quants
#[inline(always)]
pub fn make_qx_quants_lanes<const N: usize, const LANES: usize>(
    nmax: i32,
    x: &[[f32; LANES]; N],
    weights: &[[f32; LANES]; N],
    l: &mut [[i8; LANES]; N],
) -> [f32; LANES] {
    let nmaxf = nmax as f32;
    let mut max = [0.0f32; LANES];
    let mut amax = [0.0f32; LANES];
    for row in x {
        for k in 0..LANES {
            let ax = row[k].abs();
            let bigger = ax > amax[k];
            amax[k] = if bigger { ax } else { amax[k] };
            max[k] = if bigger { row[k] } else { max[k] };
        }
    }
    let mut iscale = [0.0f32; LANES];
    for k in 0..LANES {
        iscale[k] = -nmaxf / max[k];
    }
    let mut sumlx = [0.0f32; LANES];
    let mut suml2 = [0.0f32; LANES];
    // the best levels (`+ nmax`) so far as f32 (exact small integers): choosing between two
    // candidates is then a float blend, and they become bytes once at the end
    let mut lbest = [[0.0f32; LANES]; N];
    for i in 0..N {
        for k in 0..LANES {
            let q = nearest_int(iscale[k] * x[i][k]).clamp(-nmax, nmax - 1);
            lbest[i][k] = (q + nmax) as f32;
            let w = weights[i][k];
            let qf = q as f32;
            sumlx[k] += w * x[i][k] * qf;
            suml2[k] += w * qf * qf;
        }
    }
    let mut scale = [0.0f32; LANES];
    let mut best = [0.0f32; LANES];
    for k in 0..LANES {
        scale[k] = if suml2[k] != 0.0 {
            sumlx[k] / suml2[k]
        } else {
            0.0
        };
        best[k] = scale[k] * sumlx[k];
    }
    let mut laux = [[0.0f32; LANES]; N];
    for is in -9i32..=9 {
        if is == 0 {
            continue;
        }
        for k in 0..LANES {
            iscale[k] = -(nmaxf + 0.1f32 * is as f32) / max[k];
        }
        let mut sumlx = [0.0f32; LANES];
        let mut suml2 = [0.0f32; LANES];
        for i in 0..N {
            for k in 0..LANES {
                let q = nearest_int(iscale[k] * x[i][k]).clamp(-nmax, nmax - 1);
                laux[i][k] = (q + nmax) as f32;
                let w = weights[i][k];
                let qf = q as f32;
                sumlx[k] += w * x[i][k] * qf;
                suml2[k] += w * qf * qf;
            }
        }
        // branch-free per lane, so the updates stay vector blends
        let mut take = [0u32; LANES];
        for k in 0..LANES {
            let accept = (suml2[k] > 0.0) & (sumlx[k] * sumlx[k] > best[k] * suml2[k]);
            take[k] = if accept { u32::MAX } else { 0 };
            let new_scale = sumlx[k] / suml2[k];
            scale[k] = if accept { new_scale } else { scale[k] };
            best[k] = if accept {
                new_scale * sumlx[k]
            } else {
                best[k]
            };
        }
        if take.iter().fold(0, |a, &t| a | t) != 0 {
            for i in 0..N {
                for k in 0..LANES {
                    lbest[i][k] = blend(take[k], laux[i][k], lbest[i][k]);
                }
            }
        }
    }
    for k in 0..LANES {
        let small = amax[k] < GROUP_MAX_EPS;
        for i in 0..N {
            l[i][k] = if small { 0 } else { lbest[i][k] as i32 as i8 };
        }
        scale[k] = if small { 0.0 } else { scale[k] };
    }
    scale
}

/// `a` where `mask` is all ones, else `b`, bit for bit: a bitwise select, so the compiler
/// keeps it a vector and-or instead of choosing a source per lane.
#[inline(always)]
fn blend(mask: u32, a: f32, b: f32) -> f32 {
    f32::from_bits((a.to_bits() & mask) | (b.to_bits() & !mask))
}

/// Which ggml search a lane run reproduces.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Qkx {
    /// `make_qkx2_quants`: degenerate when `max == min`; trial levels clamp `nearest_int`.
    V2,
    /// `make_qkx3_quants`: degenerate when `max <= min`; trial levels
    /// `v > 0 ? nearest_int(MIN(v, nmax)) : 0`.
    V3,
}

/// The parameters of one search, as ggml passes them.
#[derive(Clone, Copy, Debug)]
pub struct QkxParams {
    pub variant: Qkx,
    pub nmax: i32,
    pub rmin: f32,
    pub rdelta: f32,
    pub nstep: i32,
    pub use_mad: bool,
}

/// [`make_qkx2_quants`] / [`make_qkx3_quants`] (by `p.variant`) on `LANES` sub-blocks of `N`
/// elements: `x` and `weights` transposed (`x[i][k]`), levels written to `l[i][k]`, and the
/// `(scale, the_min)` of each sub-block returned.
///
/// [`make_qkx2_quants`]: super::search::make_qkx2_quants
/// [`make_qkx3_quants`]: super::search::make_qkx3_quants
#[inline(always)]
pub fn make_qkx_quants_lanes<const N: usize, const LANES: usize>(
    p: QkxParams,
    x: &[[f32; LANES]; N],
    weights: &[[f32; LANES]; N],
    l: &mut [[u8; LANES]; N],
) -> [ScaleMin; LANES] {
    let nmax = p.nmax;
    let nmaxf = nmax as f32;
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = [0.0f32; LANES];
    for k in 0..LANES {
        sum_x[k] = sum_w[k] * x[0][k];
    }
    for i in 1..N {
        for k in 0..LANES {
            let xi = x[i][k];
            min[k] = if xi < min[k] { xi } else { min[k] };
            max[k] = if xi > max[k] { xi } else { max[k] };
            let w = weights[i][k];
            sum_w[k] += w;
            sum_x[k] += w * xi;
        }
    }
    let mut degenerate = [false; LANES];
    let mut degenerate_min = [0.0f32; LANES];
    let mut iscale = [0.0f32; LANES];
    let mut scale = [0.0f32; LANES];
    for k in 0..LANES {
        if min[k] > 0.0 {
            min[k] = 0.0;
        }
        degenerate[k] = match p.variant {
            Qkx::V2 => max[k] == min[k],
            Qkx::V3 => max[k] <= min[k],
        };
        degenerate_min[k] = -min[k];
        iscale[k] = nmaxf / (max[k] - min[k]);
        scale[k] = 1.0 / iscale[k];
    }
    let mut best = [0.0f32; LANES];
    // the best levels so far as f32 (exact small integers): choosing between two candidates
    // is then a float blend, and they become bytes once at the end
    let mut lbest = [[0.0f32; LANES]; N];
    for i in 0..N {
        for k in 0..LANES {
            let q = nearest_int(iscale[k] * (x[i][k] - min[k])).clamp(0, nmax);
            lbest[i][k] = q as f32;
            let diff = scale[k] * q as f32 + min[k] - x[i][k];
            let diff = if p.use_mad { diff.abs() } else { diff * diff };
            best[k] += weights[i][k] * diff;
        }
    }
    if p.nstep >= 1 {
        // the candidate levels as f32 (exact: small integers), so the loops below stay in
        // float vectors instead of packing and unpacking bytes
        let mut laux = [[0.0f32; LANES]; N];
        for is in 0..=p.nstep {
            let mut sum_l = [0.0f32; LANES];
            let mut sum_l2 = [0.0f32; LANES];
            let mut sum_xl = [0.0f32; LANES];
            for k in 0..LANES {
                iscale[k] = (p.rmin + p.rdelta * is as f32 + nmaxf) / (max[k] - min[k]);
            }
            for i in 0..N {
                for k in 0..LANES {
                    let v = iscale[k] * (x[i][k] - min[k]);
                    let q = match p.variant {
                        Qkx::V2 => nearest_int(v).clamp(0, nmax),
                        Qkx::V3 => {
                            let m = if v < nmaxf { v } else { nmaxf };
                            if v > 0.0 { nearest_int(m) } else { 0 }
                        }
                    };
                    let qf = q as f32;
                    laux[i][k] = qf;
                    let w = weights[i][k];
                    sum_l[k] += w * qf;
                    sum_l2[k] += w * qf * qf;
                    sum_xl[k] += w * qf * x[i][k];
                }
            }
            let mut this_scale = [0.0f32; LANES];
            let mut this_min = [0.0f32; LANES];
            let mut dd = [0.0f32; LANES];
            for k in 0..LANES {
                let d = sum_w[k] * sum_l2[k] - sum_l[k] * sum_l[k];
                dd[k] = d;
                let ts = (sum_w[k] * sum_xl[k] - sum_x[k] * sum_l[k]) / d;
                let tm = (sum_l2[k] * sum_x[k] - sum_l[k] * sum_xl[k]) / d;
                let clamp_min = tm > 0.0;
                this_min[k] = if clamp_min { 0.0 } else { tm };
                this_scale[k] = if clamp_min { sum_xl[k] / sum_l2[k] } else { ts };
            }
            let mut err = [0.0f32; LANES];
            for i in 0..N {
                for k in 0..LANES {
                    let diff = this_scale[k] * laux[i][k] + this_min[k] - x[i][k];
                    let diff = if p.use_mad { diff.abs() } else { diff * diff };
                    err[k] += weights[i][k] * diff;
                }
            }
            // branch-free per lane, so the updates stay vector blends
            let mut take = [0u32; LANES];
            for k in 0..LANES {
                let accept = (dd[k] > 0.0) & (err[k] < best[k]);
                take[k] = if accept { u32::MAX } else { 0 };
                best[k] = if accept { err[k] } else { best[k] };
                scale[k] = if accept { this_scale[k] } else { scale[k] };
                min[k] = if accept { this_min[k] } else { min[k] };
            }
            if take.iter().fold(0, |a, &t| a | t) != 0 {
                for i in 0..N {
                    for k in 0..LANES {
                        lbest[i][k] = blend(take[k], laux[i][k], lbest[i][k]);
                    }
                }
            }
        }
    }
    for i in 0..N {
        for k in 0..LANES {
            l[i][k] = lbest[i][k] as i32 as u8;
        }
    }
    let mut out = [ScaleMin {
        scale: 0.0,
        min: 0.0,
    }; LANES];
    for k in 0..LANES {
        out[k] = if degenerate[k] {
            for row in l.iter_mut() {
                row[k] = 0;
            }
            ScaleMin {
                scale: 0.0,
                min: degenerate_min[k],
            }
        } else {
            ScaleMin {
                scale: scale[k],
                min: -min[k],
            }
        };
    }
    out
}

/// `x` (sub-blocks of `N` back to back) transposed to `[i][k]`.
#[inline(always)]
pub fn transpose_in<const N: usize, const LANES: usize, T: Copy + Default>(
    x: &[T],
) -> [[T; LANES]; N] {
    let mut t = [[T::default(); LANES]; N];
    for k in 0..LANES {
        for i in 0..N {
            t[i][k] = x[N * k + i];
        }
    }
    t
}

/// Levels `[i][k]` written back to sub-blocks of `N` back to back.
#[inline(always)]
pub fn transpose_out<const N: usize, const LANES: usize, T: Copy>(
    t: &[[T; LANES]; N],
    l: &mut [T],
) {
    for k in 0..LANES {
        for i in 0..N {
            l[N * k + i] = t[i][k];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::search::{make_qkx2_quants, make_qkx3_quants, make_qx_quants};
    use super::*;

    /// A small deterministic generator (xorshift) for values in several shapes.
    struct Gen(u64);
    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn unit(&mut self) -> f32 {
            (self.next() >> 40) as f32 / (1u64 << 24) as f32
        }
        fn value(&mut self, shape: u64) -> f32 {
            let u = self.unit() * 2.0 - 1.0;
            match shape % 8 {
                0 => u,
                1 => u * u * u * 100.0,
                2 => -1.0 - 0.01 * self.unit(),
                3 => (u * 4.0).round(),
                4 => 1.5,
                5 => 0.0,
                6 => -2.0,
                _ => {
                    if self.unit() < 0.8 {
                        0.0
                    } else {
                        u * 1e-3
                    }
                }
            }
        }
    }

    fn check<const N: usize, const LANES: usize>(p: QkxParams, seed: u64) {
        let mut g = Gen(seed);
        for round in 0..300u64 {
            let mut x = vec![0.0f32; N * LANES];
            let mut w = vec![0.0f32; N * LANES];
            for k in 0..LANES {
                let shape = g.next() ^ round;
                for i in 0..N {
                    x[N * k + i] = g.value(shape);
                    w[N * k + i] = if g.unit() < 0.1 { 0.0 } else { g.unit() * 3.0 };
                }
            }
            let mut lt = [[0u8; LANES]; N];
            let got =
                make_qkx_quants_lanes::<N, LANES>(p, &transpose_in(&x), &transpose_in(&w), &mut lt);
            let mut l_lanes = vec![0u8; N * LANES];
            transpose_out(&lt, &mut l_lanes);
            for k in 0..LANES {
                let (xs, ws) = (&x[N * k..N * k + N], &w[N * k..N * k + N]);
                let (mut l, mut laux) = ([0u8; N], [0u8; N]);
                let f = match p.variant {
                    Qkx::V2 => make_qkx2_quants,
                    Qkx::V3 => make_qkx3_quants,
                };
                let want = f(
                    p.nmax, xs, ws, &mut l, &mut laux, p.rmin, p.rdelta, p.nstep, p.use_mad,
                );
                assert_eq!(got[k].scale.to_bits(), want.scale.to_bits(), "{p:?} {xs:?}");
                assert_eq!(got[k].min.to_bits(), want.min.to_bits(), "{p:?} {xs:?}");
                assert_eq!(&l_lanes[N * k..N * k + N], &l[..], "{p:?} {xs:?}");
            }
        }
    }

    fn check_qx<const N: usize, const LANES: usize>(nmax: i32, weighted: bool, seed: u64) {
        let mut g = Gen(seed);
        for round in 0..300u64 {
            let mut x = vec![0.0f32; N * LANES];
            let mut w = vec![0.0f32; N * LANES];
            for k in 0..LANES {
                let shape = g.next() ^ round;
                for i in 0..N {
                    let v = g.value(shape);
                    x[N * k + i] = v;
                    w[N * k + i] = if !weighted {
                        v * v
                    } else if g.unit() < 0.1 {
                        0.0
                    } else {
                        g.unit() * 3.0
                    };
                }
            }
            let mut lt = [[0i8; LANES]; N];
            let got = make_qx_quants_lanes::<N, LANES>(
                nmax,
                &transpose_in(&x),
                &transpose_in(&w),
                &mut lt,
            );
            let mut l_lanes = vec![0i8; N * LANES];
            transpose_out(&lt, &mut l_lanes);
            for k in 0..LANES {
                let (xs, ws) = (&x[N * k..N * k + N], &w[N * k..N * k + N]);
                let mut l = [0i8; N];
                let want = make_qx_quants(nmax, xs, &mut l, 1, weighted.then_some(ws));
                assert_eq!(got[k].to_bits(), want.to_bits(), "{nmax} {xs:?}");
                assert_eq!(&l_lanes[N * k..N * k + N], &l[..], "{nmax} {xs:?}");
            }
        }
    }

    #[test]
    fn qx_lanes_equal_scalar_search() {
        check_qx::<16, 16>(32, false, 7);
        check_qx::<16, 16>(32, true, 8);
        check_qx::<16, 16>(4, true, 9);
    }

    #[test]
    fn lanes_equal_scalar_searches() {
        let p = |variant, nmax, rmin, rdelta, nstep, use_mad| QkxParams {
            variant,
            nmax,
            rmin,
            rdelta,
            nstep,
            use_mad,
        };
        check::<32, 8>(p(Qkx::V2, 15, -1.0, 0.1, 20, false), 1);
        check::<32, 8>(p(Qkx::V2, 31, -0.5, 0.1, 15, false), 2);
        check::<16, 16>(p(Qkx::V2, 3, -0.5, 0.1, 15, true), 3);
        check::<32, 8>(p(Qkx::V3, 15, -0.9, 0.05, 36, false), 4);
        check::<32, 8>(p(Qkx::V3, 31, -0.9, 0.05, 36, false), 5);
        check::<16, 16>(p(Qkx::V3, 3, -0.9, 0.05, 36, false), 6);
    }
}
