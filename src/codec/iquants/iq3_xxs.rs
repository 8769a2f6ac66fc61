//! IQ3_XXS: 3.0625 bits per weight. Each group of 4 magnitudes is one of 256 grid points
//! (levels 0..=7 per element, values 4..=62), 8 groups of a 32-element sub-block share 28 bits
//! of signs (4 × 7, even parity) and a 4-bit scale, against one f16 super-scale.

use super::tables::{self, find_best_neighbour};
use super::{
    KSIGNS, QK_K, even_signs, f16_le, f16_le_to_f32, fmax, for_each_block, scale_index, sum_squares,
};
use crate::codec::kquants::search::nearest_int;
use bytemuck::{Pod, Zeroable};

/// ggml's `block_iq3_xxs`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq, Eq)]
pub struct BlockIq3Xxs {
    /// f16 bits: super-block scale.
    pub d: u16,
    /// Bytes 0..64: grid indices, 8 per sub-block; bytes 64..96: per sub-block a
    /// little-endian u32 of 4 × 7 sign bits (bits 0..28) and the 4-bit scale (bits 28..32).
    pub qs: [u8; 3 * QK_K / 8],
}
const _: () = assert!(std::mem::size_of::<BlockIq3Xxs>() == 98);
const BLOCK_BYTES: usize = 98;

/// ggml's `GROUP_MAX_EPS_IQ3_XXS`.
const GROUP_MAX_EPS_IQ3_XXS: f32 = 1e-8;
/// ggml's `kMaxQ` for the 3-bit grids: levels 0..8.
const KMAXQ: i32 = 8;

/// ggml's `quantize_row_iq3_xxs_impl` (grid_size 256) for one block; `qw` the importance
/// weights (None: ggml's `quant_weights == NULL` path, weights `x*x`).
pub fn quantize_block(x: &[f32; QK_K], qw: Option<&[f32; QK_K]>) -> BlockIq3Xxs {
    let g = tables::iq3xxs_search();
    let mut y = BlockIq3Xxs::zeroed();
    let mut q3 = [0u8; QK_K / 4];
    let mut scales_and_signs = [0u32; QK_K / 32];
    let mut scales = [0f32; QK_K / 32];
    let mut weight = [0f32; 32];
    let mut waux = [0f32; 32];
    let mut xval = [0f32; 32];
    let mut l;
    let mut laux = [0i8; 32];
    let mut is_on_grid;
    let mut is_on_grid_aux = [true; 8];
    let mut block_signs = [0u8; 8];
    let mut max_scale = 0f32;

    let sigma2 = 2.0 * sum_squares(x) / QK_K as f32;
    for ib in 0..QK_K / 32 {
        let xb = &x[32 * ib..32 * ib + 32];
        match qw {
            Some(qw) => {
                let qw = &qw[32 * ib..32 * ib + 32];
                for i in 0..32 {
                    weight[i] = qw[i] * (sigma2 + xb[i] * xb[i]).sqrt();
                }
            }
            None => {
                for i in 0..32 {
                    weight[i] = xb[i] * xb[i];
                }
            }
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
        l = [0; 32];
        if max < GROUP_MAX_EPS_IQ3_XXS {
            scales[ib] = 0.0;
            continue;
        }
        let mut best = 0f32;
        let mut scale = max / (2 * KMAXQ - 1) as f32;
        is_on_grid = [true; 8];
        for is in -15i32..=15 {
            let id = ((2 * KMAXQ - 1) as f32 + is as f32 * 0.2) / max;
            let this_scale = 1.0 / id;
            for k in 0..8 {
                let mut u = 0usize;
                for i in 0..4 {
                    let q = nearest_int(0.5 * (id * xval[4 * k + i] - 1.0)).clamp(0, KMAXQ - 1);
                    laux[4 * k + i] = q as i8;
                    u |= (q as usize) << (3 * i);
                }
                let m = g.map[u];
                is_on_grid_aux[k] = m >= 0;
                if m < 0 {
                    let r = 4 * k..4 * k + 4;
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
                is_on_grid = is_on_grid_aux;
            }
        }
        let n_not_ongrid = is_on_grid.iter().filter(|&&b| !b).count();
        if n_not_ongrid > 0 && scale > 0.0 {
            let id = 1.0 / scale;
            for k in 0..8 {
                if is_on_grid[k] {
                    continue;
                }
                let mut u = 0usize;
                for i in 0..4 {
                    let q = nearest_int(0.5 * (id * xval[4 * k + i] - 1.0)).clamp(0, KMAXQ - 1);
                    u |= (q as usize) << (3 * i);
                }
                let m = g.map[u];
                let r = 4 * k..4 * k + 4;
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
            // ggml flips only the first 4 of its 8 sign slots (the 4 used).
            scale = -scale;
            for k in 0..4 {
                block_signs[k] = !block_signs[k] & 127;
            }
        }
        for k in 0..8 {
            let mut u = 0usize;
            for i in 0..4 {
                u |= (l[4 * k + i] as usize) << (3 * i);
            }
            // Always on the grid here (ggml aborts otherwise).
            q3[8 * ib + k] = g.map[u].max(0) as u8;
        }
        scales_and_signs[ib] = block_signs[0] as u32
            | (block_signs[1] as u32) << 7
            | (block_signs[2] as u32) << 14
            | (block_signs[3] as u32) << 21;
        scales[ib] = scale;
        max_scale = fmax(max_scale, scale);
    }

    if max_scale == 0.0 {
        return y;
    }
    let d = max_scale / 31.0;
    y.d = f16_le(d * 1.0125);
    let id = 1.0 / d;
    for ib in 0..QK_K / 32 {
        scales_and_signs[ib] |= (scale_index(id, scales[ib], 15) as u32) << 28;
    }
    y.qs[..QK_K / 4].copy_from_slice(&q3);
    for (dst, s) in y.qs[QK_K / 4..].chunks_exact_mut(4).zip(scales_and_signs) {
        dst.copy_from_slice(&s.to_le_bytes());
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
        out.copy_from_slice(bytemuck::bytes_of(&quantize_block(x, w)));
    });
}

/// ggml's `dequantize_row_iq3_xxs` for one block.
pub fn dequantize_block(b: &BlockIq3Xxs, y: &mut [f32; QK_K]) {
    let grid = tables::iq3xxs_grid();
    let d = f16_le_to_f32(b.d);
    for ib32 in 0..QK_K / 32 {
        let qs = &b.qs[8 * ib32..8 * ib32 + 8];
        let o = QK_K / 4 + 4 * ib32;
        let aux32 = u32::from_le_bytes([b.qs[o], b.qs[o + 1], b.qs[o + 2], b.qs[o + 3]]);
        let db = d * (0.5 + (aux32 >> 28) as f32) * 0.5;
        for l in 0..4 {
            let signs = KSIGNS[((aux32 >> (7 * l)) & 127) as usize];
            let g1 = &grid[qs[2 * l] as usize];
            let g2 = &grid[qs[2 * l + 1] as usize];
            let out = &mut y[32 * ib32 + 8 * l..32 * ib32 + 8 * l + 8];
            for j in 0..4 {
                out[j] = db * g1[j] * sign(signs, j);
                out[j + 4] = db * g2[j] * sign(signs, j + 4);
            }
        }
    }
}

/// `signs & kmask_iq2xs[j] ? -1.f : 1.f`.
#[inline(always)]
pub(super) fn sign(signs: u8, j: usize) -> f32 {
    if signs & (1 << j) != 0 { -1.0 } else { 1.0 }
}

/// Decodes one row (see [`crate::codec::DecodeRowFn`]).
pub fn decode_row(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src
        .chunks_exact(BLOCK_BYTES)
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let b: BlockIq3Xxs = bytemuck::pod_read_unaligned(b);
        dequantize_block(&b, y.try_into().expect("chunks_exact yields QK_K"));
    }
}
