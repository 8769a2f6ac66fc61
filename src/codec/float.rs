//! F32, F16 and BF16 as codecs. The conversions are ggml's (ggml-impl.h):
//! fp32 -> fp16 rounds to nearest even; fp32 -> bf16 rounds to nearest even and quiets NaN.

use super::CpuCodec;
use crate::ggml_type::GgmlType;
use half::f16;

pub const F32_CODEC: CpuCodec = CpuCodec {
    ty: GgmlType::F32,
    encode: Some(encode_f32),
    decode: Some(decode_f32),
};
pub const F16_CODEC: CpuCodec = CpuCodec {
    ty: GgmlType::F16,
    encode: Some(encode_f16),
    decode: Some(decode_f16),
};
pub const BF16_CODEC: CpuCodec = CpuCodec {
    ty: GgmlType::BF16,
    encode: Some(encode_bf16),
    decode: Some(decode_bf16),
};

/// ggml's `GGML_FP32_TO_FP16`: round to nearest even, overflow to infinity.
#[inline]
pub fn f32_to_f16_bits(x: f32) -> u16 {
    f16::from_f32(x).to_bits()
}

/// ggml's software `ggml_compute_fp32_to_fp16` (libggml-base as llama-cpp-python builds it,
/// without F16C) exactly: [`f32_to_f16_bits`] for every non-NaN input, and `sign | 0x7E00` for
/// every NaN (where `f32_to_f16_bits` keeps the payload's top bits). The scales of the IQ4,
/// FP4 and Q1_0 encoders go through this, so a NaN weight gives llama.cpp's bytes.
#[inline]
pub fn ggml_fp32_to_fp16_bits(x: f32) -> u16 {
    if x.is_nan() {
        ((x.to_bits() >> 16) as u16 & 0x8000) | 0x7e00
    } else {
        f32_to_f16_bits(x)
    }
}

/// ggml's `GGML_FP16_TO_FP32` (exact).
#[inline]
pub fn f16_bits_to_f32(h: u16) -> f32 {
    f16::from_bits(h).to_f32()
}

/// ggml's `ggml_compute_fp32_to_bf16`: NaN keeps its sign and top payload bits and is forced
/// quiet; everything else rounds to nearest even (overflowing to infinity).
#[inline]
pub fn f32_to_bf16_bits(x: f32) -> u16 {
    let u = x.to_bits();
    if (u & 0x7fff_ffff) > 0x7f80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    ((u.wrapping_add(0x7fff + ((u >> 16) & 1))) >> 16) as u16
}

/// ggml's `ggml_compute_bf16_to_fp32` (exact).
#[inline]
pub fn bf16_bits_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

fn encode_f32(src: &[f32], dst: &mut [u8], _w: Option<&[f32]>) {
    for (x, d) in src.iter().zip(dst.chunks_exact_mut(4)) {
        d.copy_from_slice(&x.to_le_bytes());
    }
}

fn decode_f32(src: &[u8], dst: &mut [f32]) {
    for (s, y) in src.chunks_exact(4).zip(dst.iter_mut()) {
        *y = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
    }
}

fn encode_f16(src: &[f32], dst: &mut [u8], _w: Option<&[f32]>) {
    for (x, d) in src.iter().zip(dst.chunks_exact_mut(2)) {
        d.copy_from_slice(&f32_to_f16_bits(*x).to_le_bytes());
    }
}

fn decode_f16(src: &[u8], dst: &mut [f32]) {
    let n = (src.len() / 2).min(dst.len());
    // whole slices through half's converter: 8 at a time with F16C (NEON on aarch64) when the
    // CPU has it, detected at run time; the same instruction as the scalar path, so the same
    // bits (an exact conversion; NaN payloads kept, made quiet). Needs 2-byte alignment.
    #[cfg(target_endian = "little")]
    if let Ok(h) = bytemuck::try_cast_slice::<u8, f16>(&src[..2 * n]) {
        use half::slice::HalfFloatSliceExt;
        h.convert_to_f32_slice(&mut dst[..n]);
        return;
    }
    for (s, y) in src[..2 * n].chunks_exact(2).zip(dst.iter_mut()) {
        *y = f16_bits_to_f32(u16::from_le_bytes([s[0], s[1]]));
    }
}

fn encode_bf16(src: &[f32], dst: &mut [u8], _w: Option<&[f32]>) {
    for (x, d) in src.iter().zip(dst.chunks_exact_mut(2)) {
        d.copy_from_slice(&f32_to_bf16_bits(*x).to_le_bytes());
    }
}

fn decode_bf16(src: &[u8], dst: &mut [f32]) {
    let n = (src.len() / 2).min(dst.len());
    // aligned: a plain loop over u16 that the compiler vectorizes
    #[cfg(target_endian = "little")]
    if let Ok(h) = bytemuck::try_cast_slice::<u8, u16>(&src[..2 * n]) {
        for (&h, y) in h.iter().zip(dst[..n].iter_mut()) {
            *y = bf16_bits_to_f32(h);
        }
        return;
    }
    for (s, y) in src[..2 * n].chunks_exact(2).zip(dst.iter_mut()) {
        *y = bf16_bits_to_f32(u16::from_le_bytes([s[0], s[1]]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_and_bf16_slices_decode_as_each_element_does() {
        // every f16 bit pattern, at an aligned and an unaligned start
        let bits: Vec<u8> = (0..=u16::MAX).flat_map(|h| h.to_le_bytes()).collect();
        for off in [0usize, 1] {
            let mut buf = vec![0u8; off];
            buf.extend_from_slice(&bits);
            let mut out = vec![f32::from_bits(0xdead_beef); 1 << 16];
            decode_f16(&buf[off..], &mut out);
            for (h, y) in (0..=u16::MAX).zip(&out) {
                assert_eq!(
                    y.to_bits(),
                    f16_bits_to_f32(h).to_bits(),
                    "{h:#06x} at +{off}"
                );
            }
        }
        // the same for bf16
        for off in [0usize, 1] {
            let mut buf = vec![0u8; off];
            buf.extend_from_slice(&bits);
            let mut out = vec![f32::from_bits(0xdead_beef); 1 << 16];
            decode_bf16(&buf[off..], &mut out);
            for (h, y) in (0..=u16::MAX).zip(&out) {
                assert_eq!(y.to_bits(), (h as u32) << 16, "bf16 {h:#06x} at +{off}");
            }
        }
        // a shorter destination takes what fits
        let mut two = [0f32; 2];
        decode_f16(&bits[2..10], &mut two);
        assert_eq!(two[1], f16_bits_to_f32(2));
    }

    #[test]
    fn bf16_rounding_matches_ggml_rules() {
        // exactly half-way: ties to even
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f80_8000)), 0x3f80);
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f81_8000)), 0x3f82);
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3f80_8001)), 0x3f81);
        // NaN is quieted, sign kept
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0xff80_0001)), 0xffc0);
        assert_eq!(f32_to_bf16_bits(f32::INFINITY), 0x7f80);
        assert_eq!(f32_to_bf16_bits(f32::MAX), 0x7f80);
    }

    #[test]
    fn f16_rounding_is_nearest_even() {
        assert_eq!(f32_to_f16_bits(1.0 + 1.0 / 2048.0), 0x3c00);
        assert_eq!(f32_to_f16_bits(1.0 + 3.0 / 2048.0), 0x3c02);
        assert_eq!(f32_to_f16_bits(65520.0), 0x7c00);
        assert_eq!(f32_to_f16_bits(65519.0), 0x7bff);
        assert_eq!(f16_bits_to_f32(0x0001), 2f32.powi(-24));
    }
}
