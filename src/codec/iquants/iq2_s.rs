//! IQ2_S: 2.5625 bits per weight. Each group of 8 magnitudes is one of 1024 grid points
//! (levels 0..=2, values 8, 25, 43; 8 index bits in `qs`, 2 in `qh`), with one sign bit per
//! element and a 4-bit scale per 16-element sub-block.

use super::iq2_xs::sums16;
use super::iq3_xxs::sign;
use super::tables::{self, find_best_neighbour};
use super::{QK_K, f16_le, f16_le_to_f32, fmax, for_each_block, scale_index, sum_squares};
use crate::codec::kquants::search::nearest_int;
use bytemuck::{Pod, Zeroable};

/// ggml's `block_iq2_s`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq, Eq)]
pub struct BlockIq2S {
    /// f16 bits: super-block scale.
    pub d: u16,
    /// Bytes 0..32: low 8 bits of the 32 grid indices; bytes 32..64: their sign bytes.
    pub qs: [u8; QK_K / 4],
    /// Top 2 index bits, four groups per byte.
    pub qh: [u8; QK_K / 32],
    /// 4-bit sub-block scales, two per byte (low nibble the even sub-block).
    pub scales: [u8; QK_K / 32],
}
const _: () = assert!(std::mem::size_of::<BlockIq2S>() == 82);
const BLOCK_BYTES: usize = 82;

/// ggml's `GROUP_MAX_EPS_IQ2_S`.
const GROUP_MAX_EPS_IQ2_S: f32 = 1e-8;
const KMAXQ: i32 = 3;

/// ggml's `quantize_row_iq2_s_impl` for one block; `qw` the importance weights (None:
/// weights `0.25*sigma2 + x*x`).
pub fn quantize_block(x: &[f32; QK_K], qw: Option<&[f32; QK_K]>) -> BlockIq2S {
    let g = tables::iq2s_search();
    let mut y = BlockIq2S::zeroed();
    let mut scales = [0f32; QK_K / 16];
    let mut weight = [0f32; 16];
    let mut waux = [0f32; 16];
    let mut xval = [0f32; 16];
    let mut l;
    let mut laux = [0i8; 16];
    let mut is_on_grid;
    let mut is_on_grid_aux = [true; 2];
    let mut block_signs = [0u8; 2];
    let mut max_scale = 0f32;

    let sigma2 = 2.0 * sum_squares(x) / QK_K as f32;
    for ib in 0..QK_K / 16 {
        let xb = &x[16 * ib..16 * ib + 16];
        match qw {
            Some(qw) => {
                let qw = &qw[16 * ib..16 * ib + 16];
                for i in 0..16 {
                    weight[i] = qw[i] * (sigma2 + xb[i] * xb[i]).sqrt();
                }
            }
            None => {
                for i in 0..16 {
                    weight[i] = 0.25 * sigma2 + xb[i] * xb[i];
                }
            }
        }
        for i in 0..16 {
            waux[i] = weight[i].sqrt();
        }
        for k in 0..2 {
            let mut s = 0u8;
            for i in 0..8 {
                let v = xb[8 * k + i];
                if v >= 0.0 {
                    xval[8 * k + i] = v;
                } else {
                    xval[8 * k + i] = -v;
                    s |= 1 << i;
                }
            }
            block_signs[k] = s;
        }
        let mut max = xval[0];
        for i in 1..16 {
            max = fmax(max, xval[i]);
        }
        l = [0i8; 16];
        if max < GROUP_MAX_EPS_IQ2_S {
            scales[ib] = 0.0;
            continue;
        }
        let mut best = 0f32;
        let mut scale = max / (2 * KMAXQ - 1) as f32;
        is_on_grid = [true; 2];
        for is in -9i32..=9 {
            let id = ((2 * KMAXQ - 1) as f32 + is as f32 * 0.1) / max;
            let this_scale = 1.0 / id;
            for k in 0..2 {
                let mut u = 0usize;
                for i in 0..8 {
                    let q = nearest_int(0.5 * (id * xval[8 * k + i] - 1.0)).clamp(0, KMAXQ - 1);
                    laux[8 * k + i] = q as i8;
                    u |= (q as usize) << (2 * i);
                }
                let m = g.map[u];
                is_on_grid_aux[k] = m >= 0;
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
            let (sumqx, sumq2) = sums16(&weight, &xval, &laux);
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
            for k in 0..2 {
                if is_on_grid[k] {
                    continue;
                }
                let mut u = 0usize;
                for i in 0..8 {
                    let q = nearest_int(0.5 * (id * xval[8 * k + i] - 1.0)).clamp(0, KMAXQ - 1);
                    u |= (q as usize) << (2 * i);
                    l[8 * k + i] = q as i8;
                }
                let m = g.map[u];
                if m < 0 {
                    let r = 8 * k..8 * k + 8;
                    find_best_neighbour(
                        g,
                        g.neighbours_of(m),
                        &xval[r.clone()],
                        &waux[r.clone()],
                        scale,
                        &mut l[r],
                    );
                }
            }
            let (sumqx, sumq2) = sums16(&weight, &xval, &l);
            if sumq2 > 0.0 {
                scale = sumqx / sumq2;
            }
        }
        if scale < 0.0 {
            scale = -scale;
            for s in block_signs.iter_mut() {
                *s = !*s;
            }
        }
        for k in 0..2 {
            let mut u = 0usize;
            for i in 0..8 {
                u |= (l[8 * k + i] as usize) << (2 * i);
            }
            // Always on the grid here (ggml aborts otherwise).
            let grid_index = g.map[u].max(0) as usize;
            let i8 = 2 * ib + k;
            y.qs[i8] = grid_index as u8;
            y.qh[i8 / 4] |= ((grid_index >> 8) << (2 * (i8 % 4))) as u8;
            y.qs[QK_K / 8 + i8] = block_signs[k];
        }
        scales[ib] = scale;
        max_scale = fmax(max_scale, scale);
    }

    if max_scale == 0.0 {
        return y;
    }
    let d = max_scale / 31.0;
    y.d = f16_le(d * 0.9875);
    let id = 1.0 / d;
    for ib in 0..QK_K / 16 {
        let l = scale_index(id, scales[ib], 15) as u8;
        if ib % 2 == 0 {
            y.scales[ib / 2] = l;
        } else {
            y.scales[ib / 2] |= l << 4;
        }
    }
    y
}

/// Encodes one row (see [`crate::codec::EncodeRowFn`]).
pub fn encode_row(src: &[f32], dst: &mut [u8], weights: Option<&[f32]>) {
    for_each_block(src, dst, weights, BLOCK_BYTES, |x, w, out| {
        out.copy_from_slice(bytemuck::bytes_of(&quantize_block(x, w)));
    });
}

/// ggml's `dequantize_row_iq2_s` for one block.
pub fn dequantize_block(b: &BlockIq2S, y: &mut [f32; QK_K]) {
    let grid = tables::iq2s_grid();
    let d = f16_le_to_f32(b.d);
    for ib32 in 0..QK_K / 32 {
        let db = [
            d * (0.5 + (b.scales[ib32] & 0xf) as f32) * 0.25,
            d * (0.5 + (b.scales[ib32] >> 4) as f32) * 0.25,
        ];
        let qh = b.qh[ib32] as usize;
        for l in 0..4 {
            let dl = db[l / 2];
            let idx = b.qs[4 * ib32 + l] as usize | ((qh << (8 - 2 * l)) & 0x300);
            let gp = &grid[idx];
            let signs = b.qs[QK_K / 8 + 4 * ib32 + l];
            let out = &mut y[32 * ib32 + 8 * l..32 * ib32 + 8 * l + 8];
            for j in 0..8 {
                out[j] = dl * gp[j] * sign(signs, j);
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
        let b: BlockIq2S = bytemuck::pod_read_unaligned(b);
        dequantize_block(&b, y.try_into().expect("chunks_exact yields QK_K"));
    }
}
