//! Q2_K: 2.625 bits per weight. A 256-element super-block in 16 sub-blocks of 16, each with a
//! 4-bit scale and a 4-bit min (one byte, scale in the low nibble) against the f16
//! super-scales `d` and `dmin`: `x = d*sc*q - dmin*m`, q in 0..=3.

use super::search::{make_qp_quants, nearest_int};
use super::search_lanes::{Qkx, QkxParams, make_qkx_quants_lanes, transpose_in, transpose_out};
use super::{QK_K, block_weights, f16_le, f16_le_to_f32, pack_2bit};
use bytemuck::{Pod, Zeroable};

/// ggml's `block_q2_K`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq, Eq)]
pub struct BlockQ2K {
    /// Per sub-block: scale (low nibble) and min (high nibble).
    pub scales: [u8; QK_K / 16],
    /// 2-bit levels: byte `32*h + l` holds elements `128*h + l + 32k` at bits `2k`.
    pub qs: [u8; QK_K / 4],
    /// f16 bits: super-block scale for the quantized scales.
    pub d: u16,
    /// f16 bits: super-block scale for the quantized mins.
    pub dmin: u16,
}
const _: () = assert!(size_of::<BlockQ2K>() == 84);

/// Re-quantizes every sub-block against its f16-rounded scale and min (the common tail of
/// `quantize_row_q2_K_ref` and `_impl`); sub-blocks whose scale is zero keep the levels of the
/// search.
#[inline(always)]
fn requantize(x: &[f32; QK_K], y: &BlockQ2K, l: &mut [u8; QK_K]) {
    let d_all = f16_le_to_f32(y.d);
    let dmin_all = f16_le_to_f32(y.dmin);
    for j in 0..QK_K / 16 {
        let d = d_all * (y.scales[j] & 0xF) as f32;
        if d == 0.0 {
            continue;
        }
        let dm = dmin_all * (y.scales[j] >> 4) as f32;
        for ii in 0..16 {
            let q = nearest_int((x[16 * j + ii] + dm) / d);
            l[16 * j + ii] = q.clamp(0, 3) as u8;
        }
    }
}

/// ggml's `quantize_row_q2_K_ref` for one block.
#[inline(always)]
pub fn quantize_block_ref(x: &[f32; QK_K]) -> BlockQ2K {
    const Q4SCALE: f32 = 15.0;
    let xt = transpose_in::<16, 16, f32>(x);
    let weights = xt.map(|row| row.map(f32::abs));
    let mut lt = [[0u8; 16]; 16];
    let params = QkxParams {
        variant: Qkx::V2,
        nmax: 3,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: true,
    };
    let found = make_qkx_quants_lanes(params, &xt, &weights, &mut lt);
    let mut l = [0u8; QK_K];
    transpose_out(&lt, &mut l);
    let scales = found.map(|r| r.scale);
    let mins = found.map(|r| r.min);
    let mut max_scale = 0.0f32;
    let mut max_min = 0.0f32;
    for r in &found {
        if r.scale > max_scale {
            max_scale = r.scale;
        }
        if r.min > max_min {
            max_min = r.min;
        }
    }
    let mut y = BlockQ2K::zeroed();
    if max_scale > 0.0 {
        let iscale = Q4SCALE / max_scale;
        for (s, &scale) in y.scales.iter_mut().zip(&scales) {
            *s = nearest_int(iscale * scale) as u8;
        }
        y.d = f16_le(max_scale / Q4SCALE);
    } else {
        y.scales = [0; QK_K / 16];
        y.d = f16_le(0.0);
    }
    if max_min > 0.0 {
        let iscale = Q4SCALE / max_min;
        for (s, &min) in y.scales.iter_mut().zip(&mins) {
            *s |= (nearest_int(iscale * min) << 4) as u8;
        }
        y.dmin = f16_le(max_min / Q4SCALE);
    } else {
        y.dmin = f16_le(0.0);
    }
    requantize(x, &y, &mut l);
    pack_2bit(&l, &mut y.qs);
    y
}

/// ggml's `quantize_row_q2_K_impl` for one block with importance weights `qw` (the imatrix
/// path).
#[inline(always)]
pub fn quantize_block_weighted(x: &[f32; QK_K], qw: &[f32; QK_K]) -> BlockQ2K {
    let mut ls = [0u8; 16];
    let mut lm = [0u8; 16];
    let mut sumx2 = 0.0f32;
    for &v in x {
        sumx2 += v * v;
    }
    let sigma2 = sumx2 / QK_K as f32;
    let xt = transpose_in::<16, 16, f32>(x);
    let qwt = transpose_in::<16, 16, f32>(qw);
    let mut weight = [[0.0f32; 16]; 16];
    let mut sw = [0.0f32; 16];
    for i in 0..16 {
        for k in 0..16 {
            let v = xt[i][k];
            weight[i][k] = qwt[i][k] * (sigma2 + v * v).sqrt();
            sw[k] += weight[i][k];
        }
    }
    let mut lt = [[0u8; 16]; 16];
    let params = QkxParams {
        variant: Qkx::V3,
        nmax: 3,
        rmin: -0.9,
        rdelta: 0.05,
        nstep: 36,
        use_mad: false,
    };
    let found = make_qkx_quants_lanes(params, &xt, &weight, &mut lt);
    let mut l = [0u8; QK_K];
    transpose_out(&lt, &mut l);
    let scales = found.map(|r| r.scale);
    let mins = found.map(|r| r.min);
    let dm = make_qp_quants(15, &scales, &mut ls, &sw);
    let mm = make_qp_quants(15, &mins, &mut lm, &sw);
    let mut y = BlockQ2K::zeroed();
    y.d = f16_le(dm);
    y.dmin = f16_le(mm);
    for j in 0..QK_K / 16 {
        y.scales[j] = ls[j] | (lm[j] << 4);
    }
    requantize(x, &y, &mut l);
    pack_2bit(&l, &mut y.qs);
    y
}

/// The row encoder's body, one block at a time.
#[inline(always)]
fn encode_row_impl(src: &[f32], dst: &mut [u8], weights: Option<&[f32]>) {
    let blocks = src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(size_of::<BlockQ2K>()));
    for (i, (x, out)) in blocks.enumerate() {
        let x: &[f32; QK_K] = x.try_into().expect("chunks_exact yields QK_K");
        let y = match block_weights(weights, i) {
            Some(qw) => quantize_block_weighted(x, qw),
            None => quantize_block_ref(x),
        };
        out.copy_from_slice(bytemuck::bytes_of(&y));
    }
}

crate::codec::simd::dispatch_encode_row!(
    /// Encodes one row (see [`crate::codec::EncodeRowFn`]), in the copy for the CPU's
    /// vector instructions ([`crate::codec::simd`]).
    pub fn encode_row, encode_row_at => encode_row_impl
);

/// ggml's `dequantize_row_q2_K` for one block.
pub fn dequantize_block(b: &BlockQ2K, y: &mut [f32; QK_K]) {
    let d = f16_le_to_f32(b.d);
    let min = f16_le_to_f32(b.dmin);
    let mut is = 0;
    let mut out = 0;
    for h in 0..2 {
        let q = &b.qs[32 * h..32 * h + 32];
        for shift in [0, 2, 4, 6] {
            for half in 0..2 {
                let sc = b.scales[is];
                is += 1;
                let dl = d * (sc & 0xF) as f32;
                let ml = min * (sc >> 4) as f32;
                for l in 0..16 {
                    y[out] = dl * ((q[16 * half + l] >> shift) & 3) as f32 - ml;
                    out += 1;
                }
            }
        }
    }
}

/// Decodes one row (see [`crate::codec::DecodeRowFn`]).
pub fn decode_row(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src
        .chunks_exact(size_of::<BlockQ2K>())
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let b: BlockQ2K = bytemuck::pod_read_unaligned(b);
        dequantize_block(&b, y.try_into().expect("chunks_exact yields QK_K"));
    }
}
