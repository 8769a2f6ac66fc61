//! IQ2_XXS: 2.0625 bits per weight. Each group of 8 magnitudes is one of 256 grid points
//! (levels 0..=2 per element, values 8, 25, 43); a 32-element sub-block is two little-endian
//! u32: four 8-bit grid indices, then 4 × 7 sign bits (even parity) and a 4-bit scale.

use super::iq3_xxs::sign;
use super::tables::{self, find_best_neighbour};
use super::{
    KSIGNS, ONES, QK_K, even_signs, f16_le, f16_le_to_f32, fmax, for_each_block, scale_index,
    sum_squares,
};
use crate::codec::kquants::search::{GROUP_MAX_EPS, make_qp_quants, nearest_int};
use bytemuck::{Pod, Zeroable};

/// ggml's `block_iq2_xxs`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq, Eq)]
pub struct BlockIq2Xxs {
    /// f16 bits: super-block scale.
    pub d: u16,
    /// Per 32-element sub-block 4 u16 (two u32): grid indices, then signs and scale.
    pub qs: [u16; QK_K / 8],
}
const _: () = assert!(std::mem::size_of::<BlockIq2Xxs>() == 66);
const BLOCK_BYTES: usize = 66;

const KMAXQ: i32 = 3;

/// ggml's `quantize_row_iq2_xxs_impl` for one block with importance weights `qw` (ggml
/// requires them; see the module docs for `None`).
pub fn quantize_block(x: &[f32; QK_K], qw: &[f32; QK_K]) -> BlockIq2Xxs {
    let g = tables::iq2xxs_search();
    let mut y = BlockIq2Xxs::zeroed();
    let mut q2 = [0u32; 2 * (QK_K / 32)];
    let mut scales = [0f32; QK_K / 32];
    let mut weight = [0f32; 32];
    let mut waux = [0f32; 32];
    let mut xval = [0f32; 32];
    let mut l = [0i8; 32];
    let mut laux = [0i8; 32];
    let mut block_signs = [0u8; 4];
    let mut max_scale = 0f32;

    let sigma2 = sum_squares(x) / QK_K as f32;
    for ib in 0..QK_K / 32 {
        let xb = &x[32 * ib..32 * ib + 32];
        let qwb = &qw[32 * ib..32 * ib + 32];
        for i in 0..32 {
            weight[i] = qwb[i] * (sigma2 + xb[i] * xb[i]).sqrt();
        }
        for i in 0..32 {
            waux[i] = weight[i].sqrt();
        }
        for k in 0..4 {
            let r = 8 * k..8 * k + 8;
            block_signs[k] = even_signs(&xb[r.clone()], &weight[r.clone()], &mut xval[r]);
        }
        let mut max = xval[0];
        for i in 1..32 {
            max = fmax(max, xval[i]);
        }
        if max < GROUP_MAX_EPS {
            scales[ib] = 0.0;
            continue;
        }
        let mut lq = [0u8; 32];
        let mut scale = make_qp_quants(KMAXQ + 1, &xval, &mut lq, &weight);
        let eff_max = scale * KMAXQ as f32;
        if eff_max <= 0.0 {
            scales[ib] = 0.0;
            continue;
        }
        let mut best = 0f32;
        for is in -6i32..=6 {
            let id = ((2 * KMAXQ - 1) as f32 + is as f32 * 0.1) / eff_max;
            let this_scale = 1.0 / id;
            for k in 0..4 {
                let mut u = 0usize;
                for i in 0..8 {
                    let q = nearest_int(0.5 * (id * xval[8 * k + i] - 1.0)).clamp(0, KMAXQ - 1);
                    laux[8 * k + i] = q as i8;
                    u |= (q as usize) << (2 * i);
                }
                let m = g.map[u];
                if m < 0 {
                    let r = 8 * k..8 * k + 8;
                    find_best_neighbour(
                        g,
                        g.neighbours_of(m),
                        &xval[r.clone()],
                        &waux[r.clone()],
                        this_scale,
                        &mut laux[r],
                    );
                }
            }
            let (sumqx, sumq2) = sums(&weight, &xval, &laux);
            if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
                scale = sumqx / sumq2;
                best = scale * sumqx;
                l = laux;
            }
        }
        if scale > 0.0 {
            let id = 1.0 / scale;
            for k in 0..4 {
                let mut u = 0usize;
                for i in 0..8 {
                    let q = nearest_int(0.5 * (id * xval[8 * k + i] - 1.0)).clamp(0, KMAXQ - 1);
                    u |= (q as usize) << (2 * i);
                }
                let m = g.map[u];
                let r = 8 * k..8 * k + 8;
                let grid_index = if m < 0 {
                    find_best_neighbour(
                        g,
                        g.neighbours_of(m),
                        &xval[r.clone()],
                        &waux[r.clone()],
                        scale,
                        &mut l[r.clone()],
                    )
                } else {
                    m as usize
                };
                l[r].copy_from_slice(&g.levels[grid_index]);
            }
            let (sumqx, sumq2) = sums(&weight, &xval, &l);
            if sumq2 > 0.0 {
                scale = sumqx / sumq2;
            }
        }
        if scale < 0.0 {
            scale = -scale;
            for s in block_signs.iter_mut() {
                *s = !*s & 127;
            }
        }
        for k in 0..4 {
            let mut u = 0usize;
            for i in 0..8 {
                u |= (l[8 * k + i] as usize) << (2 * i);
            }
            // Always on the grid here (ggml aborts otherwise).
            let grid_index = g.map[u].max(0) as u32;
            q2[2 * ib] |= grid_index << (8 * k);
            q2[2 * ib + 1] |= (block_signs[k] as u32) << (7 * k);
        }
        scales[ib] = scale;
        max_scale = fmax(max_scale, scale);
    }

    if max_scale == 0.0 {
        return y;
    }
    let d = max_scale / 31.0;
    y.d = f16_le(d);
    let id = 1.0 / d;
    for ib in 0..QK_K / 32 {
        q2[2 * ib + 1] |= (scale_index(id, scales[ib], 15) as u32) << 28;
    }
    for (j, v) in q2.iter().enumerate() {
        y.qs[2 * j] = (*v as u16).to_le();
        y.qs[2 * j + 1] = ((*v >> 16) as u16).to_le();
    }
    y
}

/// `sumqx = Σ w*x*q`, `sumq2 = Σ w*q*q` with `q = 2*level + 1`, in ggml's order.
#[inline(always)]
fn sums(weight: &[f32; 32], xval: &[f32; 32], l: &[i8; 32]) -> (f32, f32) {
    let (mut sumqx, mut sumq2) = (0f32, 0f32);
    for i in 0..32 {
        let w = weight[i];
        let q = (2 * l[i] as i32 + 1) as f32;
        sumqx += w * xval[i] * q;
        sumq2 += w * q * q;
    }
    (sumqx, sumq2)
}

/// Encodes one row (see [`crate::codec::EncodeRowFn`]).
pub fn encode_row(src: &[f32], dst: &mut [u8], weights: Option<&[f32]>) {
    for_each_block(src, dst, weights, BLOCK_BYTES, |x, w, out| {
        let b = quantize_block(x, w.unwrap_or(&ONES));
        out.copy_from_slice(bytemuck::bytes_of(&b));
    });
}

/// ggml's `dequantize_row_iq2_xxs` for one block.
pub fn dequantize_block(b: &BlockIq2Xxs, y: &mut [f32; QK_K]) {
    let grid = tables::iq2xxs_grid();
    let d = f16_le_to_f32(b.d);
    for ib32 in 0..QK_K / 32 {
        let q = &b.qs[4 * ib32..4 * ib32 + 4];
        let idx = (u16::from_le(q[0]) as u32) | (u16::from_le(q[1]) as u32) << 16;
        let aux1 = (u16::from_le(q[2]) as u32) | (u16::from_le(q[3]) as u32) << 16;
        let db = d * (0.5 + (aux1 >> 28) as f32) * 0.25;
        for l in 0..4 {
            let gp = &grid[((idx >> (8 * l)) & 255) as usize];
            let signs = KSIGNS[((aux1 >> (7 * l)) & 127) as usize];
            let out = &mut y[32 * ib32 + 8 * l..32 * ib32 + 8 * l + 8];
            for j in 0..8 {
                out[j] = db * gp[j] * sign(signs, j);
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
        let b: BlockIq2Xxs = bytemuck::pod_read_unaligned(b);
        dequantize_block(&b, y.try_into().expect("chunks_exact yields QK_K"));
    }
}
