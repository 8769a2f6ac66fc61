//! IQ1_M: 1.75 bits per weight. Groups of 8 values on IQ1_S's ternary grid, each group with
//! its own shift sign; a 3-bit scale per 16-element sub-block; the f16 super-scale is split
//! into the top nibbles of the four little-endian u16 of `scales`.

use super::iq1_s::{X_M, X_P, find_best_neighbour2, sorted_indices};
use super::tables;
use super::{IQ1_DELTA, QK_K, fmax, for_each_block, scale_index};
use crate::codec::float::{f16_bits_to_f32, f32_to_f16_bits};
use bytemuck::{Pod, Zeroable};

/// ggml's `block_iq1_m`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq, Eq)]
pub struct BlockIq1M {
    /// Low 8 bits of the grid indices.
    pub qs: [u8; QK_K / 8],
    /// Per group pair: index tops (3 bits each) and shift signs (bits 3 and 7).
    pub qh: [u8; QK_K / 16],
    /// Four little-endian u16: 3-bit sub-block scales (bits 0..12), f16 scale nibble (12..16).
    pub scales: [u8; QK_K / 32],
}
const _: () = assert!(std::mem::size_of::<BlockIq1M>() == 56);
const BLOCK_BYTES: usize = 56;

/// ggml's `GROUP_MAX_EPS_IQ1_M`.
const GROUP_MAX_EPS_IQ1_M: f32 = 1e-7;
/// ggml's `IQ1M_BLOCK_SIZE`.
const BS: usize = 16;

/// The shift values of group `k` (0, 1) of a sub-block with shift code `shift` (0..4).
#[inline(always)]
fn shift_values(shift: i8, k: usize) -> &'static [f32; 3] {
    let plus = if k == 0 { shift < 2 } else { shift % 2 == 0 };
    if plus { &X_P } else { &X_M }
}

/// The importance weights of sub-block `xb` (`qw`: its imatrix slice, or None: `x*x`).
#[inline(always)]
fn sub_block_weights(xb: &[f32], qw: Option<&[f32]>, sigma2: f32, weight: &mut [f32; BS]) {
    match qw {
        Some(qw) => {
            for i in 0..BS {
                weight[i] = qw[i] * (sigma2 + xb[i] * xb[i]).sqrt();
            }
        }
        None => {
            for i in 0..BS {
                weight[i] = xb[i] * xb[i];
            }
        }
    }
}

/// ggml's `quantize_row_iq1_m_impl` for one block; `qw` the importance weights (None:
/// weights `x*x`).
pub fn quantize_block(x: &[f32; QK_K], qw: Option<&[f32; QK_K]>) -> BlockIq1M {
    let g = tables::iq1s_search();
    let mut y = BlockIq1M::zeroed();
    let mut scales = [0f32; QK_K / BS];
    let mut shifts = [0i8; QK_K / BS];
    let mut weight = [0f32; BS];
    let mut l = [0i8; BS];
    let mut index = [0u16; BS / 8];
    let mut max_scale = 0f32;
    let sub_qw = |ib: usize| qw.map(|w| &w[BS * ib..BS * ib + BS]);

    let sigma2 = 2.0 * super::sum_squares(x) / QK_K as f32;
    for ib in 0..QK_K / BS {
        let xb = &x[BS * ib..BS * ib + BS];
        sub_block_weights(xb, sub_qw(ib), sigma2, &mut weight);
        let mut max = xb[0].abs();
        for i in 1..BS {
            max = fmax(max, xb[i].abs());
        }
        if max < GROUP_MAX_EPS_IQ1_M {
            scales[ib] = 0.0;
            shifts[ib] = 0;
            continue;
        }
        let idx = sorted_indices::<BS>(xb);
        let mut best_score = -f32::MAX;
        let mut scale = max;
        let (mut besti1, mut besti2, mut best_k) = (-1i32, -1i32, -1i32);
        // Prefix sums per half of the sub-block (each half has its own shift sign).
        let mut px = [[0f32; BS + 1]; 2];
        let mut pw = [[0f32; BS + 1]; 2];
        for j in 0..BS {
            let i = idx[j] as usize;
            let h = if i < BS / 2 { 0 } else { 1 };
            px[h][j + 1] = px[h][j] + weight[i] * xb[i];
            px[1 - h][j + 1] = px[1 - h][j];
            pw[h][j + 1] = pw[h][j] + weight[i];
            pw[1 - h][j + 1] = pw[1 - h][j];
        }
        let txs = [px[0][BS], px[1][BS]];
        let tws = [pw[0][BS], pw[1][BS]];
        let (p2, m2) = (X_P[2], X_M[2]);
        let cp1 = X_P[0] * X_P[0] - X_P[1] * X_P[1];
        let cp2 = X_P[1] * X_P[1] - X_P[2] * X_P[2];
        let cm1 = X_M[0] * X_M[0] - X_M[1] * X_M[1];
        let cm2 = X_M[1] * X_M[1] - X_M[2] * X_M[2];
        for i1 in 0..BS + 1 {
            for i2 in i1..BS + 1 {
                let mut qx_p = [0f32; 2];
                let mut qx_m = [0f32; 2];
                let mut q2_p = [0f32; 2];
                let mut q2_m = [0f32; 2];
                for h in 0..2 {
                    let sx = px[h][i1] + px[h][i2];
                    qx_p[h] = txs[h] * p2 - sx;
                    qx_m[h] = txs[h] * m2 - sx;
                    q2_p[h] = tws[h] * p2 * p2 + pw[h][i1] * cp1 + pw[h][i2] * cp2;
                    q2_m[h] = tws[h] * m2 * m2 + pw[h][i1] * cm1 + pw[h][i2] * cm2;
                }
                let sumqx = [
                    qx_p[0] + qx_p[1],
                    qx_p[0] + qx_m[1],
                    qx_m[0] + qx_p[1],
                    qx_m[0] + qx_m[1],
                ];
                let sumq2 = [
                    q2_p[0] + q2_p[1],
                    q2_p[0] + q2_m[1],
                    q2_m[0] + q2_p[1],
                    q2_m[0] + q2_m[1],
                ];
                for k in 0..4 {
                    if sumq2[k] > 0.0 && sumqx[k] * sumqx[k] > best_score * sumq2[k] {
                        scale = sumqx[k] / sumq2[k];
                        best_score = scale * sumqx[k];
                        besti1 = i1 as i32;
                        besti2 = i2 as i32;
                        best_k = k as i32;
                    }
                }
            }
        }
        if besti1 < 0 || besti2 < 0 || best_k < 0 {
            scales[ib] = 0.0;
            shifts[ib] = 0;
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
            best_k = 3 - best_k;
        }
        let best_k = best_k as i8;
        let mut all_on_grid = true;
        for k in 0..BS / 8 {
            let xx = shift_values(best_k, k);
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
                let xx = shift_values(best_k, k);
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
        y.qs[2 * ib] = index[0] as u8;
        y.qs[2 * ib + 1] = index[1] as u8;
        y.qh[ib] = ((index[0] >> 8) | ((index[1] >> 8) << 4)) as u8;
        scales[ib] = scale;
        shifts[ib] = best_k;
        max_scale = fmax(max_scale, scale);
    }

    if max_scale == 0.0 {
        return y;
    }
    const MASKS: [u8; 4] = [0x00, 0x80, 0x08, 0x88];
    let mut sc = [0u16; 4];
    let d = max_scale / 15.0;
    let id = 1.0 / d;
    let (mut sumqx, mut sumq2) = (0f32, 0f32);
    for ib in 0..QK_K / BS {
        let l = scale_index(id, scales[ib], 7);
        sc[ib / 4] |= (l as u16) << (3 * (ib % 4));
        y.qh[ib] |= MASKS[shifts[ib] as usize & 3];
        let xb = &x[BS * ib..BS * ib + BS];
        sub_block_weights(xb, sub_qw(ib), sigma2, &mut weight);
        for k in 0..BS / 8 {
            let xx = shift_values(shifts[ib], k);
            let gi = y.qs[2 * ib + k] as usize + (((y.qh[ib] as usize) << (8 - 4 * k)) & 0x700);
            let pl = &g.levels[gi];
            for j in 0..8 {
                let w = weight[8 * k + j];
                let q = xx[pl[j] as usize] * (2 * l + 1) as f32;
                sumqx += w * q * xb[8 * k + j];
                sumq2 += w * q * q;
            }
        }
    }
    let d = if sumq2 > 0.0 { sumqx / sumq2 } else { d };
    let s = f32_to_f16_bits(d * 1.1125);
    sc[0] |= (s & 0x000f) << 12;
    sc[1] |= (s & 0x00f0) << 8;
    sc[2] |= (s & 0x0f00) << 4;
    sc[3] |= s & 0xf000;
    for (dst, v) in y.scales.chunks_exact_mut(2).zip(sc) {
        dst.copy_from_slice(&v.to_le_bytes());
    }
    y
}

/// Encodes one row (see [`crate::codec::EncodeRowFn`]).
pub fn encode_row(src: &[f32], dst: &mut [u8], weights: Option<&[f32]>) {
    for_each_block(src, dst, weights, BLOCK_BYTES, |x, w, out| {
        out.copy_from_slice(bytemuck::bytes_of(&quantize_block(x, w)));
    });
}

/// ggml's `dequantize_row_iq1_m` for one block.
pub fn dequantize_block(b: &BlockIq1M, y: &mut [f32; QK_K]) {
    let grid = tables::iq1s_grid();
    let sc: [u16; 4] =
        std::array::from_fn(|i| u16::from_le_bytes([b.scales[2 * i], b.scales[2 * i + 1]]));
    let scale =
        (sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000);
    let d = f16_bits_to_f32(scale);
    for ib in 0..QK_K / 32 {
        let s = sc[ib / 2];
        let dl1 = d * (2 * ((s >> (6 * (ib % 2))) & 7) as i32 + 1) as f32;
        let dl2 = d * (2 * ((s >> (6 * (ib % 2) + 3)) & 7) as i32 + 1) as f32;
        let qs = &b.qs[4 * ib..4 * ib + 4];
        let qh = [b.qh[2 * ib] as usize, b.qh[2 * ib + 1] as usize];
        let idx = [
            qs[0] as usize | ((qh[0] << 8) & 0x700),
            qs[1] as usize | ((qh[0] << 4) & 0x700),
            qs[2] as usize | ((qh[1] << 8) & 0x700),
            qs[3] as usize | ((qh[1] << 4) & 0x700),
        ];
        let delta = [
            if qh[0] & 0x08 != 0 {
                -IQ1_DELTA
            } else {
                IQ1_DELTA
            },
            if qh[0] & 0x80 != 0 {
                -IQ1_DELTA
            } else {
                IQ1_DELTA
            },
            if qh[1] & 0x08 != 0 {
                -IQ1_DELTA
            } else {
                IQ1_DELTA
            },
            if qh[1] & 0x80 != 0 {
                -IQ1_DELTA
            } else {
                IQ1_DELTA
            },
        ];
        for l in 0..4 {
            let dl = if l < 2 { dl1 } else { dl2 };
            let gp = &grid[idx[l]];
            let out = &mut y[32 * ib + 8 * l..32 * ib + 8 * l + 8];
            for j in 0..8 {
                out[j] = dl * (gp[j] + delta[l]);
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
        let b: BlockIq1M = bytemuck::pod_read_unaligned(b);
        dequantize_block(&b, y.try_into().expect("chunks_exact yields QK_K"));
    }
}
