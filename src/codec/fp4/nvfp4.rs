//! NVFP4: ggml `block_nvfp4` (ggml-common.h), `quantize_row_nvfp4_ref` (what `quantize_nvfp4`
//! and so llama-quantize always run: importance weights are ignored) and
//! `dequantize_row_nvfp4` (ggml-quants.c), with `ggml_fp32_to_ue4m3` / `ggml_ue4m3_to_fp32`
//! (ggml-impl.h).

use super::{pack_group, unpack_group};
use crate::codec::CpuCodec;
use crate::codec::legacy::blocks::{load, store};
use crate::codec::legacy::c_casts::c_trunc_i32;
use crate::ggml_type::GgmlType;
use bytemuck::{Pod, Zeroable};

/// ggml `QK_NVFP4`.
pub const QK_NVFP4: usize = 64;
/// ggml `QK_NVFP4_SUB`: elements per scale.
pub const QK_NVFP4_SUB: usize = 16;
const N_SUB: usize = QK_NVFP4 / QK_NVFP4_SUB;

/// ggml `block_nvfp4`: four UE4M3 scales, then 32 bytes of E2M1 nibbles, 8 per group (in
/// group s, byte j holds element j (low nibble) and element j+8 (high nibble)).
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, PartialEq, Eq)]
pub struct BlockNvfp4 {
    pub d: [u8; N_SUB],
    pub qs: [u8; QK_NVFP4 / 2],
}

const _: () = assert!(size_of::<BlockNvfp4>() == N_SUB + QK_NVFP4 / 2);

pub const NVFP4_CODEC: CpuCodec = CpuCodec {
    ty: GgmlType::NVFP4,
    encode: Some(encode_nvfp4),
    decode: Some(decode_nvfp4),
};

/// ggml `ggml_ue4m3_to_fp32`: half the value of an unsigned E4M3 byte (bias 7, subnormals
/// `man * 2^-9`); 0 and 0x7F (NaN) give 0; the top bit is ignored.
#[inline]
pub fn ue4m3_to_fp32(x: u8) -> f32 {
    if x == 0 || x == 0x7f {
        return 0.0;
    }
    let exp = ((x >> 3) & 0xf) as i32;
    let man = (x & 0x7) as i32;
    let raw = if exp == 0 {
        man as f32 * pow2(-9)
    } else {
        (1.0 + man as f32 / 8.0) * pow2(exp - 7)
    };
    raw * 0.5
}

/// `ldexpf(1, e)` for the small exponents UE4M3 uses (exact).
#[inline]
fn pow2(e: i32) -> f32 {
    f32::from_bits(((e + 127) as u32) << 23)
}

/// ggml `ggml_fp32_to_ue4m3`: not-positive (and NaN) -> 0; clamped to 448; subnormals by
/// `(int)(x * 512 + 0.5)`; normals round half up on the 4th mantissa bit; overflow -> 0x7E.
#[inline]
pub fn fp32_to_ue4m3(x: f32) -> u8 {
    // `!(x > 0)` in ggml: NaN too
    if x.is_nan() || x <= 0.0 {
        return 0;
    }
    let x = if x > 448.0 { 448.0 } else { x };
    let bits = x.to_bits();
    let fp32_exp = ((bits >> 23) & 0xff) as i32 - 127;
    let fp32_man = ((bits >> 20) & 0x7) as i32;
    let mut exp = fp32_exp + 7;
    if exp <= 0 {
        let man = c_trunc_i32(x * 512.0 + 0.5).min(7);
        if man < 1 {
            return 0;
        }
        return man as u8;
    }
    if exp >= 15 {
        return 0x7e;
    }
    let mut man = fp32_man + ((bits >> 19) & 1) as i32;
    if man > 7 {
        man = 0;
        exp += 1;
        if exp >= 15 {
            return 0x7e;
        }
    }
    ((exp << 3) | man) as u8
}

/// `quantize_row_nvfp4_ref` for one block.
pub fn nvfp4_block(x: &[f32]) -> BlockNvfp4 {
    let mut b = BlockNvfp4 {
        d: [0; N_SUB],
        qs: [0; QK_NVFP4 / 2],
    };
    for s in 0..N_SUB {
        let xb = &x[s * QK_NVFP4_SUB..(s + 1) * QK_NVFP4_SUB];
        // as in MXFP4: f32::max equals ggml's `amax < fabsf(v)` update
        let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let ue = fp32_to_ue4m3(amax / 6.0);
        b.d[s] = ue;
        let half = QK_NVFP4_SUB / 2;
        pack_group(xb, ue4m3_to_fp32(ue), &mut b.qs[s * half..(s + 1) * half]);
    }
    b
}

/// ggml `quantize_nvfp4` for one row (the weights are ignored, as ggml does).
pub fn encode_nvfp4(src: &[f32], dst: &mut [u8], _weights: Option<&[f32]>) {
    for (x, d) in src
        .chunks_exact(QK_NVFP4)
        .zip(dst.chunks_exact_mut(size_of::<BlockNvfp4>()))
    {
        store(&nvfp4_block(x), d);
    }
}

/// ggml `dequantize_row_nvfp4`.
pub fn decode_nvfp4(src: &[u8], dst: &mut [f32]) {
    for (s, y) in src
        .chunks_exact(size_of::<BlockNvfp4>())
        .zip(dst.chunks_exact_mut(QK_NVFP4))
    {
        let b: BlockNvfp4 = load(s);
        for sub in 0..N_SUB {
            let half = QK_NVFP4_SUB / 2;
            unpack_group(
                &b.qs[sub * half..(sub + 1) * half],
                ue4m3_to_fp32(b.d[sub]),
                &mut y[sub * QK_NVFP4_SUB..(sub + 1) * QK_NVFP4_SUB],
            );
        }
    }
}
