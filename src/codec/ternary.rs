//! Ternary types TQ1_0 and TQ2_0 (BitNet b1.58 / TriLM): 256-element blocks of values in
//! {-1, 0, 1} times one f16 scale, the block's largest magnitude. Layouts from ggml-common.h
//! (`block_tq1_0`, `block_tq2_0`); encoders mirror ggml's `quantize_row_tq1_0_ref` /
//! `quantize_row_tq2_0_ref` (which `quantize_tq1_0`/`_tq2_0` always use: the importance weights
//! are ignored), decoders `dequantize_row_tq1_0` / `_tq2_0`.

use super::CpuCodec;
use super::legacy::blocks::{load, store};
use super::legacy::c_casts::c_trunc_i32;
use crate::codec::float::{f16_bits_to_f32, f32_to_f16_bits};
use crate::ggml_type::GgmlType;
use bytemuck::{Pod, Zeroable};

/// ggml `QK_K`.
pub const QK_K: usize = 256;

/// ggml `block_tq1_0`: 5 trits per byte in `qs` (240 elements), 4 per byte in `qh` (16).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq, Eq)]
pub struct BlockTq1_0 {
    pub qs: [u8; (QK_K - 4 * QK_K / 64) / 5],
    pub qh: [u8; QK_K / 64],
    pub d: u16,
}

/// ggml `block_tq2_0`: 2 bits per element, `x = (q - 1) * d`.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq, Eq)]
pub struct BlockTq2_0 {
    pub qs: [u8; QK_K / 4],
    pub d: u16,
}

const _: () = assert!(size_of::<BlockTq1_0>() == 2 + QK_K / 64 + (QK_K - 4 * QK_K / 64) / 5);
const _: () = assert!(size_of::<BlockTq2_0>() == 2 + QK_K / 4);

pub const TQ1_0_CODEC: CpuCodec = CpuCodec {
    ty: GgmlType::TQ1_0,
    encode: Some(encode_tq1_0),
    decode: Some(decode_tq1_0),
};
pub const TQ2_0_CODEC: CpuCodec = CpuCodec {
    ty: GgmlType::TQ2_0,
    encode: Some(encode_tq2_0),
    decode: Some(decode_tq2_0),
};

/// Scale and inverse scale of a ternary block: `d = amax`, `id = d ? 1/d : 0`.
fn scale(x: &[f32]) -> (f32, f32) {
    let mut amax = 0.0f32;
    for &v in x {
        let a = v.abs();
        amax = if amax > a { amax } else { a };
    }
    (amax, if amax != 0.0 { 1.0 / amax } else { 0.0 })
}

/// `lroundf(v) + 1` as ggml writes it (round half away from zero; -1, 0, 1 -> 0, 1, 2). Values
/// out of range (only from a subnormal scale) follow x86's conversion to the low bits.
#[inline]
fn trit(v: f32) -> u8 {
    let r = v.round();
    (c_trunc_i32(r).wrapping_add(1)) as u8
}

/// Five (or four, then shifted) trits packed base 3, mapped to a byte by ceiling division.
#[inline]
fn pack_trits(q: u8) -> u8 {
    (q as u16 * 256).div_ceil(243) as u8
}

/// ggml `quantize_row_tq1_0_ref` for one block.
pub fn tq1_0_block(x: &[f32]) -> BlockTq1_0 {
    let (d, id) = scale(x);
    let mut b = BlockTq1_0 {
        qs: [0; 48],
        qh: [0; 4],
        d: f32_to_f16_bits(d).to_le(),
    };
    // 32 bytes of 5 elements each, stride 32; then 16 bytes of 5, stride 16; then 4 bytes of 4.
    for m in 0..32 {
        let mut q = 0u8;
        for n in 0..5 {
            q = q.wrapping_mul(3).wrapping_add(trit(x[m + n * 32] * id));
        }
        b.qs[m] = pack_trits(q);
    }
    let x2 = &x[160..];
    for m in 0..16 {
        let mut q = 0u8;
        for n in 0..5 {
            q = q.wrapping_mul(3).wrapping_add(trit(x2[m + n * 16] * id));
        }
        b.qs[32 + m] = pack_trits(q);
    }
    let x3 = &x[240..];
    for j in 0..4 {
        let mut q = 0u8;
        for m in 0..4 {
            q = q.wrapping_mul(3).wrapping_add(trit(x3[j + m * 4] * id));
        }
        b.qh[j] = pack_trits(q.wrapping_mul(3));
    }
    b
}

/// ggml `quantize_row_tq2_0_ref` for one block.
pub fn tq2_0_block(x: &[f32]) -> BlockTq2_0 {
    let (d, id) = scale(x);
    let mut b = BlockTq2_0 {
        qs: [0; 64],
        d: f32_to_f16_bits(d).to_le(),
    };
    for j in (0..64).step_by(32) {
        let xj = &x[j * 4..];
        for m in 0..32 {
            let mut q = 0u8;
            for n in 0..4 {
                q = q.wrapping_add((trit(xj[m + n * 32] * id) & 3) << (2 * n));
            }
            b.qs[j + m] = q;
        }
    }
    b
}

/// One trit of a base-3 packed byte: `((q * 3^n mod 256) * 3) >> 8`, minus 1.
#[inline]
fn unpack_trit(byte: u8, pow3: u8) -> f32 {
    let q = byte.wrapping_mul(pow3);
    ((q as u16 * 3) >> 8) as i32 as f32 - 1.0
}

/// ggml `dequantize_row_tq1_0` for one block.
pub fn tq1_0_decode_block(b: &BlockTq1_0, y: &mut [f32]) {
    const POW3: [u8; 6] = [1, 3, 9, 27, 81, 243];
    let d = f16_bits_to_f32(u16::from_le(b.d));
    let mut k = 0;
    for (start, len) in [(0usize, 32usize), (32, 16)] {
        for &p in &POW3[..5] {
            for m in 0..len {
                y[k] = unpack_trit(b.qs[start + m], p) * d;
                k += 1;
            }
        }
    }
    for &p in &POW3[..4] {
        for j in 0..4 {
            y[k] = unpack_trit(b.qh[j], p) * d;
            k += 1;
        }
    }
}

/// ggml `dequantize_row_tq2_0` for one block.
pub fn tq2_0_decode_block(b: &BlockTq2_0, y: &mut [f32]) {
    let d = f16_bits_to_f32(u16::from_le(b.d));
    let mut k = 0;
    for j in (0..64).step_by(32) {
        for l in 0..4 {
            for m in 0..32 {
                let q = ((b.qs[j + m] >> (l * 2)) & 3) as i32;
                y[k] = (q - 1) as f32 * d;
                k += 1;
            }
        }
    }
}

/// ggml `quantize_tq1_0` (weights ignored).
pub fn encode_tq1_0(src: &[f32], dst: &mut [u8], _w: Option<&[f32]>) {
    for (x, d) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(size_of::<BlockTq1_0>()))
    {
        store(&tq1_0_block(x), d);
    }
}

/// ggml `quantize_tq2_0` (weights ignored).
pub fn encode_tq2_0(src: &[f32], dst: &mut [u8], _w: Option<&[f32]>) {
    for (x, d) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(size_of::<BlockTq2_0>()))
    {
        store(&tq2_0_block(x), d);
    }
}

pub fn decode_tq1_0(src: &[u8], dst: &mut [f32]) {
    for (s, y) in src
        .chunks_exact(size_of::<BlockTq1_0>())
        .zip(dst.chunks_exact_mut(QK_K))
    {
        tq1_0_decode_block(&load(s), y);
    }
}

pub fn decode_tq2_0(src: &[u8], dst: &mut [f32]) {
    for (s, y) in src
        .chunks_exact(size_of::<BlockTq2_0>())
        .zip(dst.chunks_exact_mut(QK_K))
    {
        tq2_0_decode_block(&load(s), y);
    }
}
