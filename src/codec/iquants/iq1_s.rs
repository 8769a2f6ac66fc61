//! IQ1_S: 1.5625 bits per weight. Each group of 8 values is one of 2048 ternary grid points
//! (levels 0..=2, values -1, 0, 1) shifted by ±[`IQ1_DELTA`]; a 32-element sub-block stores
//! four 8-bit index bytes and a little-endian u16 of the four 3-bit index tops, a 3-bit
//! scale (`2*s + 1`) and the shift's sign.

use super::tables::{self, SearchGrid};
use super::{IQ1_DELTA, ONES, QK_K, f16_le, f16_le_to_f32, fmax, for_each_block, scale_index};
use bytemuck::{Pod, Zeroable};

/// ggml's `block_iq1_s`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq, Eq)]
pub struct BlockIq1S {
    /// f16 bits: super-block scale.
    pub d: u16,
    /// Low 8 bits of the grid indices.
    pub qs: [u8; QK_K / 8],
    /// Per sub-block: index tops (3 bits × 4), scale (bits 12..15), shift sign (bit 15).
    pub qh: [u16; QK_K / 32],
}
const _: () = assert!(std::mem::size_of::<BlockIq1S>() == 50);
const BLOCK_BYTES: usize = 50;

/// ggml's `GROUP_MAX_EPS_IQ1_S`.
const GROUP_MAX_EPS_IQ1_S: f32 = 1e-12;
/// ggml's `IQ1S_BLOCK_SIZE`.
const BS: usize = 32;

/// The level values with the shift added (`x_p`) and subtracted (`x_m`).
pub(super) const X_P: [f32; 3] = [-1.0 + IQ1_DELTA, IQ1_DELTA, 1.0 + IQ1_DELTA];
pub(super) const X_M: [f32; 3] = [-1.0 - IQ1_DELTA, -IQ1_DELTA, 1.0 - IQ1_DELTA];

/// `qsort(pairs, n, 2*sizeof(float), iq1_sort_helper)`: the indices of `xb` by ascending value.
/// glibc's qsort is a merge sort for arrays this small, so equal values keep their order, as
/// in Rust's stable sort. The key is a total order that equals ggml's comparison on non-NaN
/// values (-0 and +0 compare equal); NaNs go to the ends instead of breaking the sort.
#[inline(always)]
pub(super) fn sorted_indices<const N: usize>(xb: &[f32]) -> [u8; N] {
    let key = |i: u8| {
        let v = xb[i as usize];
        if v == 0.0 { 0.0f32 } else { v }
    };
    let mut idx: [u8; N] = std::array::from_fn(|j| j as u8);
    idx.sort_by(|&a, &b| key(a).total_cmp(&key(b)));
    idx
}

/// ggml's `iq1_find_best_neighbour2`: the grid point among `neighbours` nearest to `xval` at
/// `scale` with level values `xg` (the first of equals; if none compares below `FLT_MAX`,
/// every grid point is tried); writes its levels to `l` and returns its index.
#[inline(always)]
pub(super) fn find_best_neighbour2(
    g: &SearchGrid<8>,
    neighbours: &[u16],
    xval: &[f32],
    weight: &[f32],
    scale: f32,
    xg: &[f32; 3],
    l: &mut [i8],
) -> usize {
    let d2_of = |k: usize| {
        let pl = &g.levels[k];
        let mut d2 = 0f32;
        for i in 0..8 {
            let q = xg[pl[i] as usize];
            let w = weight[i];
            let diff = scale * q - xval[i];
            d2 += w * diff * diff;
        }
        d2
    };
    let mut best = f32::MAX;
    let mut grid_index = None;
    for &nb in neighbours {
        let d2 = d2_of(nb as usize);
        if d2 < best {
            best = d2;
            grid_index = Some(nb as usize);
        }
    }
    // ggml's fallback over the whole grid (which reads `xval[grid index]` there, out of
    // bounds; only reachable with non-finite data) is done with the element's own value.
    let grid_index = grid_index.unwrap_or_else(|| {
        let mut gi = 0;
        for k in 0..g.levels.len() {
            let d2 = d2_of(k);
            if d2 < best {
                best = d2;
                gi = k;
            }
        }
        gi
    });
    l[..8].copy_from_slice(&g.levels[grid_index]);
    grid_index
}

/// ggml's `quantize_row_iq1_s_impl` for one block with importance weights `qw` (ggml
/// requires them; see the module docs for `None`).
pub fn quantize_block(x: &[f32; QK_K], qw: &[f32; QK_K]) -> BlockIq1S {
    let g = tables::iq1s_search();
    let mut y = BlockIq1S::zeroed();
    let mut qh = [0u16; QK_K / 32];
    let mut scales = [0f32; QK_K / BS];
    let mut shifts = [0i8; QK_K / BS];
    let mut weight = [0f32; BS];
    let mut sumx = [0f32; BS + 1];
    let mut sumw = [0f32; BS + 1];
    let mut l = [0i8; BS];
    let mut index = [0u16; BS / 8];
    let mut max_scale = 0f32;

    let sigma2 = 2.0 * super::sum_squares(x) / QK_K as f32;
    for ib in 0..QK_K / BS {
        let xb = &x[BS * ib..BS * ib + BS];
        let qwb = &qw[BS * ib..BS * ib + BS];
        for i in 0..BS {
            weight[i] = qwb[i] * (sigma2 + xb[i] * xb[i]).sqrt();
        }
        let mut max = xb[0].abs();
        for i in 1..BS {
            max = fmax(max, xb[i].abs());
        }
        if max < GROUP_MAX_EPS_IQ1_S {
            scales[ib] = 0.0;
            shifts[ib] = 1;
            continue;
        }
        // The exact weighted least-squares split of the sorted values into 3 groups.
        let idx = sorted_indices::<BS>(xb);
        sumx[0] = 0.0;
        sumw[0] = 0.0;
        for j in 0..BS {
            let i = idx[j] as usize;
            sumx[j + 1] = sumx[j] + weight[i] * xb[i];
            sumw[j + 1] = sumw[j] + weight[i];
        }
        let mut best_score = -f32::MAX;
        let mut scale = max;
        let (mut besti1, mut besti2, mut best_shift) = (-1i32, -1i32, 0i8);
        // ggml's two candidates (shift +, then -) for every split i1 <= i2, compared in ggml's
        // order. The candidates' sums for one i1 are computed first for all i2 (independent,
        // element-wise: the compiler vectorizes them; each keeps ggml's operation order, with
        // the i1 terms hoisted, which changes no rounding), then scanned in order.
        let (sx_all, sw_all) = (sumx[BS], sumw[BS]);
        let mut cand = [[0f32; BS + 1]; 4];
        for i1 in 0..BS + 1 {
            let (sx1, sw1) = (sumx[i1] - sumx[0], sumw[i1] - sumw[0]);
            for i2 in i1..BS + 1 {
                let (sx2, sw2) = (sumx[i2] - sumx[i1], sumw[i2] - sumw[i1]);
                let (sx3, sw3) = (sx_all - sumx[i2], sw_all - sumw[i2]);
                for (c, xs) in [&X_P, &X_M].into_iter().enumerate() {
                    cand[2 * c][i2] = sx1 * xs[0] + sx2 * xs[1] + sx3 * xs[2];
                    cand[2 * c + 1][i2] =
                        sw1 * xs[0] * xs[0] + sw2 * xs[1] * xs[1] + sw3 * xs[2] * xs[2];
                }
            }
            for i2 in i1..BS + 1 {
                for (c, shift) in [(0, 1i8), (1, -1)] {
                    let (sumqx, sumq2) = (cand[2 * c][i2], cand[2 * c + 1][i2]);
                    if sumq2 > 0.0 && sumqx * sumqx > best_score * sumq2 {
                        scale = sumqx / sumq2;
                        best_score = scale * sumqx;
                        besti1 = i1 as i32;
                        besti2 = i2 as i32;
                        best_shift = shift;
                    }
                }
            }
        }
        if besti1 < 0 || besti2 < 0 || best_shift == 0 {
            scales[ib] = 0.0;
            shifts[ib] = 1;
            continue;
        }
        let (b1, b2) = (besti1 as usize, besti2 as usize);
        for j in 0..BS {
            l[idx[j] as usize] = if j < b1 {
                0
            } else if j < b2 {
                1
            } else {
                2
            };
        }
        if scale < 0.0 {
            for v in l.iter_mut() {
                *v = 2 - *v;
            }
            scale = -scale;
            best_shift = -best_shift;
        }
        let mut all_on_grid = true;
        let xx = if best_shift == 1 { &X_P } else { &X_M };
        for k in 0..BS / 8 {
            let mut u = 0usize;
            for j in 0..8 {
                u |= (l[8 * k + j] as usize) << (2 * j);
            }
            let m = g.map[u];
            index[k] = if m >= 0 {
                m as u16
            } else {
                all_on_grid = false;
                let r = 8 * k..8 * k + 8;
                find_best_neighbour2(
                    g,
                    g.neighbours_of(m),
                    &xb[r.clone()],
                    &weight[r.clone()],
                    scale,
                    xx,
                    &mut l[r],
                ) as u16
            };
        }
        if !all_on_grid {
            let (mut sumqx, mut sumq2) = (0f32, 0f32);
            for k in 0..BS / 8 {
                let pl = &g.levels[index[k] as usize];
                for j in 0..8 {
                    let w = weight[8 * k + j];
                    let q = xx[pl[j] as usize];
                    sumqx += w * q * xb[8 * k + j];
                    sumq2 += w * q * q;
                }
            }
            if sumqx > 0.0 && sumq2 > 0.0 {
                scale = sumqx / sumq2;
            }
        }
        let mut h = 0u16;
        for k in 0..BS / 8 {
            y.qs[(BS / 8) * ib + k] = index[k] as u8;
            h |= (index[k] >> 8) << (3 * k);
        }
        qh[ib] = h;
        scales[ib] = scale;
        shifts[ib] = best_shift;
        max_scale = fmax(max_scale, scale);
    }

    // (A sub-block whose best scale is exactly 0 keeps its indices even then.)
    if max_scale != 0.0 {
        let d = max_scale / 15.0;
        y.d = f16_le(d * 1.125);
        let id = 1.0 / d;
        for ib in 0..QK_K / BS {
            let mut l = scale_index(id, scales[ib], 7) as u16;
            if shifts[ib] == -1 {
                l |= 8;
            }
            qh[ib] |= l << 12;
        }
    }
    for (dst, v) in y.qh.iter_mut().zip(qh) {
        *dst = v.to_le();
    }
    y
}

/// Encodes one row (see [`crate::codec::EncodeRowFn`]).
pub fn encode_row(src: &[f32], dst: &mut [u8], weights: Option<&[f32]>) {
    for_each_block(src, dst, weights, BLOCK_BYTES, |x, w, out| {
        let b = quantize_block(x, w.unwrap_or(&ONES));
        out.copy_from_slice(bytemuck::bytes_of(&b));
    });
}

/// ggml's `dequantize_row_iq1_s` for one block.
pub fn dequantize_block(b: &BlockIq1S, y: &mut [f32; QK_K]) {
    let grid = tables::iq1s_grid();
    let d = f16_le_to_f32(b.d);
    for ib in 0..QK_K / 32 {
        let qh = u16::from_le(b.qh[ib]);
        let dl = d * (2 * ((qh >> 12) & 7) as i32 + 1) as f32;
        let delta = if qh & 0x8000 != 0 {
            -IQ1_DELTA
        } else {
            IQ1_DELTA
        };
        for l in 0..4 {
            let idx = b.qs[4 * ib + l] as usize | ((((qh >> (3 * l)) & 7) as usize) << 8);
            let gp = &grid[idx];
            let out = &mut y[32 * ib + 8 * l..32 * ib + 8 * l + 8];
            for j in 0..8 {
                out[j] = dl * (gp[j] + delta);
            }
        }
    }
}

/// Decodes one row (see [`crate::codec::DecodeRowFn`]).
pub fn decode_row(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src
        .chunks_exact(BLOCK_BYTES)
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let b: BlockIq1S = bytemuck::pod_read_unaligned(b);
        dequantize_block(&b, y.try_into().expect("chunks_exact yields QK_K"));
    }
}
