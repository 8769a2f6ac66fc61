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
    let (src, dst) = (&src[..2 * n], &mut dst[..n]);
    // x86-64 with F16C: 32 at a time, straight from the bytes (any alignment)
    #[cfg(target_arch = "x86_64")]
    let done = if std::arch::is_x86_feature_detected!("f16c") {
        // SAFETY: the CPU has F16C (and so AVX), checked just above.
        unsafe { decode_f16_f16c(src, dst) }
    } else {
        0
    };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    let (src, dst) = (&src[2 * done..], &mut dst[done..]);
    // whole slices through half's converter: 8 at a time with NEON on aarch64 (F16C on x86
    // when detected); the same conversion as the scalar path, so the same bits (an exact
    // conversion; NaN payloads kept, made quiet). Needs 2-byte alignment.
    #[cfg(target_endian = "little")]
    if let Ok(h) = bytemuck::try_cast_slice::<u8, f16>(src) {
        use half::slice::HalfFloatSliceExt;
        h.convert_to_f32_slice(dst);
        return;
    }
    for (s, y) in src.chunks_exact(2).zip(dst.iter_mut()) {
        *y = f16_bits_to_f32(u16::from_le_bytes([s[0], s[1]]));
    }
}

/// `VCVTPH2PS` over whole groups of 32 values of `src` (little-endian f16, `dst.len()` of
/// them): the instruction half's converter uses 8 at a time, here without a call and two
/// copies per group. Returns how many were converted (a multiple of 32); the caller does the
/// rest.
///
/// # Safety
/// The CPU must have F16C and AVX; `src` must hold `2 * dst.len()` bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx,f16c")]
unsafe fn decode_f16_f16c(src: &[u8], dst: &mut [f32]) -> usize {
    use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm256_cvtph_ps, _mm256_storeu_ps};
    let n = dst.len().min(src.len() / 2) / 32 * 32;
    let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
    let mut i = 0;
    while i < n {
        // SAFETY: i + 32 <= n values, in bounds of both slices; unaligned loads and stores.
        unsafe {
            for k in (0..32).step_by(8) {
                let h = _mm_loadu_si128(s.add(2 * (i + k)) as *const __m128i);
                _mm256_storeu_ps(d.add(i + k), _mm256_cvtph_ps(h));
            }
        }
        i += 32;
    }
    n
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
        // every length around the 32-value groups, at both alignments: all written, all right
        for len in [0usize, 1, 7, 31, 32, 33, 63, 64, 95, 1000] {
            for off in [0usize, 1] {
                let src = &bits[2 * 12345 + off..2 * (12345 + len) + off];
                let mut out = vec![f32::from_bits(0xdead_beef); len];
                decode_f16(src, &mut out);
                for (k, y) in out.iter().enumerate() {
                    let h = u16::from_le_bytes([src[2 * k], src[2 * k + 1]]);
                    assert_eq!(
                        y.to_bits(),
                        f16_bits_to_f32(h).to_bits(),
                        "{len} +{off} [{k}]"
                    );
                }
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
