//! Q3_K: 3.4375 bits per weight. A 256-element super-block in 16 sub-blocks of 16, each with
//! a 6-bit scale (stored `+ 32`) against the f16 super-scale `d`: `x = d*(sc - 32)*(q - 4)`,
//! q in 0..=7 (low 2 bits in `qs`, the 3rd in `hmask`).

use super::search::{make_q3_quants, make_qx_quants, nearest_int};
use super::search_lanes::{make_qx_quants_lanes, transpose_in, transpose_out};
use super::{QK_K, block_weights, f16_le, f16_le_to_f32, pack_2bit};
use bytemuck::{Pod, Zeroable};

/// ggml's `block_q3_K`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq, Eq)]
pub struct BlockQ3K {
    /// 3rd bits of the levels: byte `l` holds element `32*k + l` at bit `k`.
    pub hmask: [u8; QK_K / 8],
    /// Low 2 bits: byte `32*h + l` holds elements `128*h + l + 32k` at bits `2k`.
    pub qs: [u8; QK_K / 4],
    /// 16 6-bit scales: low nibbles in bytes 0..8 (scales 0..8 low half, 8..16 high half),
    /// top 2 bits in bytes 8..12 (scale `j` in byte `8 + j%4` at bit `2*(j/4)`).
    pub scales: [u8; 12],
    /// f16 bits: super-block scale.
    pub d: u16,
}
const _: () = assert!(size_of::<BlockQ3K>() == 110);

/// Writes the 6-bit value `l` (0..=63) as scale `j` into the zeroed packed `scales`.
#[inline(always)]
fn put_scale(scales: &mut [u8; 12], j: usize, l: u8) {
    if j < 8 {
        scales[j] = l & 0xF;
    } else {
        scales[j - 8] |= (l & 0xF) << 4;
    }
    scales[j % 4 + 8] |= (l >> 4) << (2 * (j / 4));
}

/// The 6-bit scale `j` of the packed `scales`, minus 32, as both quantizers re-read it.
#[inline(always)]
fn get_scale(scales: &[u8; 12], j: usize) -> i8 {
    let low = if j < 8 {
        scales[j] & 0xF
    } else {
        scales[j - 8] >> 4
    };
    (low | (((scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) as i8 - 32
}

/// The common tail of `quantize_row_q3_K_ref` and `_impl`: re-quantizes against the f16
/// scale (sub-blocks whose scale is zero keep the search's levels) and packs the levels.
#[inline(always)]
fn finish_block(x: &[f32; QK_K], y: &mut BlockQ3K, l: &mut [i8; QK_K]) {
    let d_all = f16_le_to_f32(y.d);
    for j in 0..QK_K / 16 {
        let d = d_all * get_scale(&y.scales, j) as f32;
        if d == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let q = nearest_int(x[16 * j + ii] / d).clamp(-4, 3);
            l[16 * j + ii] = (q + 4) as i8;
        }
    }
    y.hmask = [0; QK_K / 8];
    let mut lu = [0u8; QK_K];
    for (j, (&lv, u)) in l.iter().zip(lu.iter_mut()).enumerate() {
        let mut v = lv;
        if v > 3 {
            y.hmask[j % 32] |= 1 << (j / 32);
            v -= 4;
        }
        *u = v as u8;
    }
    pack_2bit(&lu, &mut y.qs);
}

/// ggml's `quantize_row_q3_K_ref` for one block.
#[inline(always)]
pub fn quantize_block_ref(x: &[f32; QK_K]) -> BlockQ3K {
    let mut l = [0i8; QK_K];
    let mut scales = [0.0f32; 16];
    let mut max_scale = 0.0f32;
    let mut amax = 0.0f32;
    for (j, s) in scales.iter_mut().enumerate() {
        *s = make_q3_quants(4, &x[16 * j..16 * j + 16], &mut l[16 * j..], true);
        let scale = s.abs();
        if scale > amax {
            amax = scale;
            max_scale = *s;
        }
    }
    let mut y = BlockQ3K::zeroed();
    if max_scale != 0.0 {
        let iscale = -32.0f32 / max_scale;
        for (j, &s) in scales.iter().enumerate() {
            let q = nearest_int(iscale * s) as i8;
            let q = (q as i32).clamp(-32, 31) + 32;
            put_scale(&mut y.scales, j, q as u8);
        }
        y.d = f16_le(1.0 / iscale);
    } else {
        y.d = f16_le(0.0);
    }
    finish_block(x, &mut y, &mut l);
    y
}

/// ggml's `quantize_row_q3_K_impl` for one block with importance weights `qw` (the imatrix
/// path).
#[inline(always)]
pub fn quantize_block_weighted(x: &[f32; QK_K], qw: &[f32; QK_K]) -> BlockQ3K {
    let mut ls = [0i8; 16];
    let mut sumx2 = 0.0f32;
    for &v in x {
        sumx2 += v * v;
    }
    let sigma2 = 2.0 * sumx2 / QK_K as f32;
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
    let mut lt = [[0i8; 16]; 16];
    let scales = make_qx_quants_lanes(4, &xt, &weight, &mut lt);
    let mut l = [0i8; QK_K];
    transpose_out(&lt, &mut l);
    let d_block = make_qx_quants(32, &scales, &mut ls, 1, Some(&sw));
    let mut y = BlockQ3K::zeroed();
    for (j, &q) in ls.iter().enumerate() {
        put_scale(&mut y.scales, j, q as u8);
    }
    y.d = f16_le(d_block);
    finish_block(x, &mut y, &mut l);
    y
}

/// The row encoder's body, one block at a time.
#[inline(always)]
fn encode_row_impl(src: &[f32], dst: &mut [u8], weights: Option<&[f32]>) {
    let blocks = src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(size_of::<BlockQ3K>()));
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

/// ggml's `dequantize_row_q3_K` for one block.
pub fn dequantize_block(b: &BlockQ3K, y: &mut [f32; QK_K]) {
    let d_all = f16_le_to_f32(b.d);
    let mut is = 0;
    let mut out = 0;
    let mut m = 1u8;
    for h in 0..2 {
        let q = &b.qs[32 * h..32 * h + 32];
        for shift in [0, 2, 4, 6] {
            for half in 0..2 {
                let dl = d_all * get_scale(&b.scales, is) as f32;
                is += 1;
                for l in 16 * half..16 * half + 16 {
                    let low = ((q[l] >> shift) & 3) as i8;
                    let high = if b.hmask[l] & m != 0 { 0 } else { 4 };
                    y[out] = dl * (low - high) as f32;
                    out += 1;
                }
            }
            m <<= 1;
        }
    }
}

/// Decodes one row (see [`crate::codec::DecodeRowFn`]).
pub fn decode_row(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src
        .chunks_exact(size_of::<BlockQ3K>())
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let b: BlockQ3K = bytemuck::pod_read_unaligned(b);
        dequantize_block(&b, y.try_into().expect("chunks_exact yields QK_K"));
    }
}
