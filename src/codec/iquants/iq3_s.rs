//! IQ3_S: 3.4375 bits per weight. Each group of 4 magnitudes is one of 512 grid points
//! (levels 0..=7 per element, values 1..=15; 8 index bits in `qs`, the 9th in `qh`), with one
//! sign bit per element and a 4-bit scale per 32-element sub-block (`d*(1 + 2*s)`).

use super::iq3_xxs::sign;
use super::tables::{self, find_best_neighbour};
use super::{QK_K, f16_le, f16_le_to_f32, fmax, for_each_block, scale_index, sum_squares};
use crate::codec::kquants::search::nearest_int;
use bytemuck::{Pod, Zeroable};

/// ggml's `block_iq3_s`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq, Eq)]
pub struct BlockIq3S {
    /// f16 bits: super-block scale.
    pub d: u16,
    /// Low 8 bits of the grid indices, 8 per sub-block.
    pub qs: [u8; QK_K / 4],
    /// 9th index bits: byte `ib` bit `k` for group `k` of sub-block `ib`.
    pub qh: [u8; QK_K / 32],
    /// Sign bits, one byte per 8 elements.
    pub signs: [u8; QK_K / 8],
    /// 4-bit sub-block scales, two per byte (low nibble the even sub-block).
    pub scales: [u8; QK_K / 64],
}
const _: () = assert!(std::mem::size_of::<BlockIq3S>() == 110);
const BLOCK_BYTES: usize = 110;

/// ggml's `IQ3S_BLOCK_SIZE`.
const BS: usize = 32;
const KMAXQ: i32 = 8;

/// ggml's `quantize_row_iq3_s_impl` (block_size 32) for one block; `qw` the importance weights
/// (None: weights `x*x`).
pub fn quantize_block(x: &[f32; QK_K], qw: Option<&[f32; QK_K]>) -> BlockIq3S {
    let g = tables::iq3s_search();
    let mut y = BlockIq3S::zeroed();
    let mut scales = [0f32; QK_K / BS];
    let mut weight = [0f32; BS];
    let mut waux = [0f32; BS];
    let mut xval = [0f32; BS];
    let mut l;
    let mut laux = [0i8; BS];
    let mut is_on_grid;
    let mut is_on_grid_aux = [false; BS / 4];
    let mut block_signs = [0u8; BS / 8];
    let mut max_scale = 0f32;

    // ggml advances its `qs` and `signs` pointers only past sub-blocks it stores, so a
    // sub-block skipped as all zero shifts the later ones' bytes down (qh is indexed by
    // sub-block and does not shift).
    let (mut qs_off, mut signs_off) = (0usize, 0usize);
    let sigma2 = 2.0 * sum_squares(x) / QK_K as f32;
    for ib in 0..QK_K / BS {
        let xb = &x[BS * ib..BS * ib + BS];
        match qw {
            Some(qw) => {
                let qw = &qw[BS * ib..BS * ib + BS];
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
        for i in 0..BS {
            waux[i] = weight[i].sqrt();
        }
        for k in 0..BS / 8 {
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
        for i in 1..BS {
            max = fmax(max, xval[i]);
        }
        l = [0; BS];
        if max == 0.0 {
            scales[ib] = 0.0;
            continue;
        }
        let mut best = 0f32;
        let mut scale = max / (2 * KMAXQ - 1) as f32;
        is_on_grid = [false; BS / 4];
        for is in -9i32..=9 {
            let id = ((2 * KMAXQ - 1) as f32 + is as f32 * 0.2) / max;
            let this_scale = 1.0 / id;
            for k in 0..BS / 4 {
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
            // ggml redoes every group here (its `if (is_on_grid[k]) continue;` is commented out).
            for k in 0..BS / 4 {
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
            scale = -scale;
            for s in block_signs.iter_mut() {
                *s = !*s;
            }
        }
        for k in 0..BS / 4 {
            let mut u = 0usize;
            for i in 0..4 {
                u |= (l[4 * k + i] as usize) << (3 * i);
            }
            // Always on the grid here (ggml aborts otherwise).
            let grid_index = g.map[u].max(0) as usize;
            let i8 = ib * (BS / 4) + k;
            y.qs[qs_off + k] = grid_index as u8;
            y.qh[i8 / 8] |= ((grid_index >> 8) << (i8 % 8)) as u8;
        }
        qs_off += BS / 4;
        y.signs[signs_off..signs_off + BS / 8].copy_from_slice(&block_signs);
        signs_off += BS / 8;
        scales[ib] = scale;
        max_scale = fmax(max_scale, scale);
    }

    if max_scale == 0.0 {
        return y;
    }
    let d = max_scale / 31.0;
    y.d = f16_le(d * 1.033);
    let id = 1.0 / d;
    for ib in (0..QK_K / BS).step_by(2) {
        let l1 = scale_index(id, scales[ib], 15);
        let l2 = scale_index(id, scales[ib + 1], 15);
        y.scales[ib / 2] = (l1 | (l2 << 4)) as u8;
    }
    y
}

/// `sumqx = Σ w*x*q`, `sumq2 = Σ w*q*q` with `q = 2*level + 1`, in ggml's order.
#[inline(always)]
fn sums(weight: &[f32; BS], xval: &[f32; BS], l: &[i8; BS]) -> (f32, f32) {
    let (mut sumqx, mut sumq2) = (0f32, 0f32);
    for i in 0..BS {
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

/// ggml's `dequantize_row_iq3_s` for one block.
pub fn dequantize_block(b: &BlockIq3S, y: &mut [f32; QK_K]) {
    let grid = tables::iq3s_grid();
    let d = f16_le_to_f32(b.d);
    for ib in 0..QK_K / 32 {
        let s = b.scales[ib / 2] >> (4 * (ib % 2)) & 0xf;
        let db = d * (1 + 2 * s as i32) as f32;
        let qs = &b.qs[8 * ib..8 * ib + 8];
        let qh = b.qh[ib] as usize;
        let signs = &b.signs[4 * ib..4 * ib + 4];
        for l in 0..4 {
            let g1 = &grid[qs[2 * l] as usize | ((qh << (8 - 2 * l)) & 256)];
            let g2 = &grid[qs[2 * l + 1] as usize | ((qh << (7 - 2 * l)) & 256)];
            let out = &mut y[32 * ib + 8 * l..32 * ib + 8 * l + 8];
            for j in 0..4 {
                out[j] = db * g1[j] * sign(signs[l], j);
                out[j + 4] = db * g2[j] * sign(signs[l], j + 4);
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
        let b: BlockIq3S = bytemuck::pod_read_unaligned(b);
        dequantize_block(&b, y.try_into().expect("chunks_exact yields QK_K"));
    }
}
