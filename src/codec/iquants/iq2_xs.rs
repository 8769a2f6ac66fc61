//! IQ2_XS: 2.3125 bits per weight. Each group of 8 magnitudes is one of 512 grid points
//! (levels 0..=2, values 8, 25, 43), stored as a little-endian u16 of a 9-bit grid index and
//! 7 sign bits (even parity); a 4-bit scale per 16-element sub-block.

use super::iq3_xxs::sign;
use super::tables::{self, find_best_neighbour};
use super::{
    KSIGNS, ONES, QK_K, even_signs, f16_le, f16_le_to_f32, fmax, for_each_block, scale_index,
    sum_squares,
};
use crate::codec::kquants::search::{GROUP_MAX_EPS, nearest_int};
use bytemuck::{Pod, Zeroable};

/// ggml's `block_iq2_xs`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq, Eq)]
pub struct BlockIq2Xs {
    /// f16 bits: super-block scale.
    pub d: u16,
    /// Per group of 8: grid index (bits 0..9) and sign bits (9..16).
    pub qs: [u16; QK_K / 8],
    /// 4-bit sub-block scales, two per byte (low nibble the even sub-block).
    pub scales: [u8; QK_K / 32],
}
const _: () = assert!(std::mem::size_of::<BlockIq2Xs>() == 74);
const BLOCK_BYTES: usize = 74;

const KMAXQ: i32 = 3;

/// ggml's `quantize_row_iq2_xs_impl` for one block with importance weights `qw` (ggml
/// requires them; see the module docs for `None`).
pub fn quantize_block(x: &[f32; QK_K], qw: &[f32; QK_K]) -> BlockIq2Xs {
    let g = tables::iq2xs_search();
    let mut y = BlockIq2Xs::zeroed();
    let mut q2 = [0u16; 2 * (QK_K / 16)];
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

    let sigma2 = sum_squares(x) / QK_K as f32;
    for ib in 0..QK_K / 16 {
        let xb = &x[16 * ib..16 * ib + 16];
        let qwb = &qw[16 * ib..16 * ib + 16];
        for i in 0..16 {
            weight[i] = qwb[i] * (sigma2 + xb[i] * xb[i]).sqrt();
        }
        for i in 0..16 {
            waux[i] = weight[i].sqrt();
        }
        for k in 0..2 {
            let r = 8 * k..8 * k + 8;
            block_signs[k] = even_signs(&xb[r.clone()], &weight[r.clone()], &mut xval[r]);
        }
        let mut max = xval[0];
        for i in 1..16 {
            max = fmax(max, xval[i]);
        }
        l = [0i8; 16];
        if max < GROUP_MAX_EPS {
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
                *s = !*s & 127;
            }
        }
        for k in 0..2 {
            let mut u = 0usize;
            for i in 0..8 {
                u |= (l[8 * k + i] as usize) << (2 * i);
            }
            // Always on the grid here (ggml aborts otherwise).
            let grid_index = g.map[u].max(0) as u16;
            q2[2 * ib + k] = grid_index | (block_signs[k] as u16) << 9;
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
    for ib in 0..QK_K / 16 {
        let l = scale_index(id, scales[ib], 15) as u8;
        if ib % 2 == 0 {
            y.scales[ib / 2] = l;
        } else {
            y.scales[ib / 2] |= l << 4;
        }
    }
    for (dst, v) in y.qs.iter_mut().zip(q2) {
        *dst = v.to_le();
    }
    y
}

/// `sumqx = Σ w*x*q`, `sumq2 = Σ w*q*q` with `q = 2*level + 1`, in ggml's order (the
/// 16-element sub-blocks of IQ2_XS and IQ2_S).
#[inline(always)]
pub(super) fn sums16(weight: &[f32; 16], xval: &[f32; 16], l: &[i8; 16]) -> (f32, f32) {
    let (mut sumqx, mut sumq2) = (0f32, 0f32);
    for i in 0..16 {
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

/// ggml's `dequantize_row_iq2_xs` for one block.
pub fn dequantize_block(b: &BlockIq2Xs, y: &mut [f32; QK_K]) {
    let grid = tables::iq2xs_grid();
    let d = f16_le_to_f32(b.d);
    for ib32 in 0..QK_K / 32 {
        let db = [
            d * (0.5 + (b.scales[ib32] & 0xf) as f32) * 0.25,
            d * (0.5 + (b.scales[ib32] >> 4) as f32) * 0.25,
        ];
        for l in 0..4 {
            let q = u16::from_le(b.qs[4 * ib32 + l]);
            let gp = &grid[(q & 511) as usize];
            let signs = KSIGNS[(q >> 9) as usize];
            let out = &mut y[32 * ib32 + 8 * l..32 * ib32 + 8 * l + 8];
            for j in 0..8 {
                out[j] = db[l / 2] * gp[j] * sign(signs, j);
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
        let b: BlockIq2Xs = bytemuck::pod_read_unaligned(b);
        dequantize_block(&b, y.try_into().expect("chunks_exact yields QK_K"));
    }
}
