//! I2_S: bitnet.cpp's 2-bit ternary type (microsoft/BitNet, `src/ggml-bitnet-mad.cpp`,
//! `quantize_i2_s`; type id 36 in its ggml fork, where upstream ggml has the retired
//! Q4_0_4_4). Files holding it are read only by bitnet.cpp.
//!
//! Layout of one tensor of n elements (x86 build, `QK_I2_S = 128`): n/4 bytes of codes, then
//! the f32 scale, then padding to 32 bytes (`ggml_nbytes` = n/4 + 32). Codes 0, 1, 2 mean
//! -1, 0, +1. Each group of 128 elements takes 32 bytes; byte `g*32 + p` holds elements
//! `p, 32+p, 64+p, 96+p` of group g in bits 7-6, 5-4, 3-2, 1-0. (bitnet.cpp's ARM build uses
//! 64-element groups in 16 bytes instead; gpuq writes the x86 layout.)
//!
//! `quantize_i2_s` is not a rounding quantizer: it expects already-ternarized weights (its
//! converter applies BitNet's absmean `weight_quant` first). The scale is the tensor's
//! largest |x|; an element with |x| < 1e-6 becomes 0, any other becomes its sign. Decoding
//! (bitnet.cpp's matmul semantics) is `(code - 1) * scale`.
//!
//! I2_S has one scale per tensor, after the data, so it is not a row codec: it stays out of
//! the CPU codec table. The rows of codes are encoded and decoded with the scale given
//! ([`encode_codes_absmean`], [`decode_codes`]; GPU twins `absmean_encode_i2_s` and
//! `decode_i2_s` in shaders/ternary.wgsl), and the trailer is written once per tensor
//! ([`trailer`]); [`encode_tensor`] / [`decode_tensor`] work on whole tensors.

use crate::codec::CodecError;
use crate::ggml_type::GgmlType;
use rayon::prelude::*;

/// Elements per group (`QK_I2_S`, x86).
pub const QK_I2_S: usize = 128;
/// Bytes after the packed codes: the f32 scale and padding (`+ 32` in `ggml_nbytes`).
pub const TRAILER_BYTES: usize = GgmlType::I2_S.info().tensor_trailer as usize;
/// Bytes of one group's codes.
pub const GROUP_BYTES: usize = QK_I2_S / 4;
/// Bits of the largest f32 below 1e-6 (as a double): `quantize_i2_s` zeroes `|x| < 1e-6`,
/// compared in double, which for an f32 `|x|` is `bits(|x|) <= TINY_BITS`.
pub const TINY_BITS: u32 = 0x3586_37bd;

fn bad(what: String) -> CodecError {
    CodecError::BadLength {
        ty: GgmlType::I2_S,
        what,
    }
}

/// Bytes of an I2_S tensor of `n` elements.
pub fn tensor_bytes(n: usize) -> usize {
    n / 4 + TRAILER_BYTES
}

/// The trailer bitnet.cpp writes after the codes: the f32 scale, then zero padding.
pub fn trailer(scale: f32) -> [u8; TRAILER_BYTES] {
    let mut t = [0u8; TRAILER_BYTES];
    t[..4].copy_from_slice(&scale.to_le_bytes());
    t
}

/// The scale held by a trailer (its first 4 bytes); `None` when fewer than 4 bytes are given.
pub fn trailer_scale(t: &[u8]) -> Option<f32> {
    Some(f32::from_le_bytes(t.get(..4)?.try_into().ok()?))
}

fn check_codes(n: usize, bytes: usize) -> Result<(), CodecError> {
    if n % QK_I2_S != 0 || bytes != n / 4 {
        return Err(bad(format!(
            "{n} elements (a multiple of {QK_I2_S}) and {bytes} bytes of codes (n/4)"
        )));
    }
    Ok(())
}

/// Packs one group of 128 codes: byte `p` holds elements `p, 32+p, 64+p, 96+p` in bits
/// 7-6, 5-4, 3-2, 1-0.
fn pack_group(g: &[f32], code: &impl Fn(f32) -> u8, out: &mut [u8]) {
    for (p, o) in out.iter_mut().enumerate() {
        *o = (0..4).fold(0u8, |b, k| b | (code(g[k * 32 + p]) << (6 - 2 * k)));
    }
}

/// bitnet.cpp's `quantize_i2_s` code of `x` given the tensor's `fmax |x|` (`max >= 0`): 1 for
/// `|x| < 1e-6`, else 2 when `x * max > 0`, else 0 (NaN: 0).
fn code_i2s(x: f32, max: f64) -> u8 {
    if (x.to_bits() & 0x7fff_ffff) <= TINY_BITS {
        1
    } else if x as f64 * max > 0.0 {
        2
    } else {
        0
    }
}

/// BitNet absmean codes of whole rows (no trailer): element code
/// `absmean::trit_absmean(x * id)`, `id = 1/s` for the tensor's scale `s`; `dst` holds
/// `src.len() / 4` bytes. Rows may be cut anywhere on a group boundary (the codes of a group
/// depend only on its elements and `id`). GPU twin: `absmean_encode_i2_s`.
pub fn encode_codes_absmean(src: &[f32], id: f32, dst: &mut [u8]) -> Result<(), CodecError> {
    check_codes(src.len(), dst.len())?;
    let code = |x: f32| super::absmean::trit_absmean(x * id);
    src.par_chunks(QK_I2_S)
        .zip(dst.par_chunks_mut(GROUP_BYTES))
        .for_each(|(g, out)| pack_group(g, &code, out));
    Ok(())
}

/// The four values codes 0..3 decode to with `scale`: `(code - 1) * scale` as x86 computes
/// the f32 product (a NaN scale comes back quieted with its sign; `0 * inf` is the default
/// NaN 0xffc00000; `2 * scale` may overflow to infinity). Built from the bits, so every
/// platform gives x86's values. GPU twin: `i2s_values` in shaders/ternary.wgsl.
pub fn decode_values(scale: f32) -> [f32; 4] {
    let s = scale.to_bits();
    let a = s & 0x7fff_ffff;
    let sign = s & 0x8000_0000;
    if a > 0x7f80_0000 {
        let q = f32::from_bits(s | 0x0040_0000);
        return [q; 4];
    }
    let zero = if a == 0x7f80_0000 { 0xffc0_0000 } else { sign };
    let two = if a < 0x0080_0000 {
        sign | (a << 1)
    } else if a < 0x7f00_0000 {
        s + 0x0080_0000
    } else {
        sign | 0x7f80_0000
    };
    [
        f32::from_bits(s ^ 0x8000_0000),
        f32::from_bits(zero),
        scale,
        f32::from_bits(two),
    ]
}

/// Decodes codes (no trailer) with `scale` into `dst` (`src.len() * 4` elements). GPU twin:
/// `decode_i2_s`.
pub fn decode_codes(src: &[u8], scale: f32, dst: &mut [f32]) -> Result<(), CodecError> {
    check_codes(dst.len(), src.len())?;
    let v = decode_values(scale);
    src.par_chunks(GROUP_BYTES)
        .zip(dst.par_chunks_mut(QK_I2_S))
        .for_each(|(g, y)| {
            for (p, &b) in g.iter().enumerate() {
                for k in 0..4 {
                    y[k * 32 + p] = v[((b >> (6 - 2 * k)) & 3) as usize];
                }
            }
        });
    Ok(())
}

/// bitnet.cpp's `quantize_i2_s` on a whole tensor of `src.len()` elements (a multiple of 128).
pub fn encode_tensor(src: &[f32], dst: &mut [u8]) -> Result<(), CodecError> {
    let n = src.len();
    if n % QK_I2_S != 0 || dst.len() != tensor_bytes(n) {
        return Err(bad(format!("{n} elements into {} bytes", dst.len())));
    }
    // fmax over |x| in double (NaN ignored, as fmax does)
    let mut max = 0f64;
    for &x in src {
        let a = (x as f64).abs();
        if a > max {
            max = a;
        }
    }
    let (data, tail) = dst.split_at_mut(n / 4);
    let code = |x: f32| code_i2s(x, max);
    src.par_chunks(QK_I2_S)
        .zip(data.par_chunks_mut(GROUP_BYTES))
        .for_each(|(g, out)| pack_group(g, &code, out));
    tail.copy_from_slice(&trailer(max as f32));
    Ok(())
}

/// I2_S from BitNet's absmean ternarization with the per-tensor scale `s` (guarded): codes
/// from `codec::absmean::trit_absmean(x * (1/s))`, scale `s` — what bitnet.cpp's converter
/// followed by `quantize_i2_s` stores for weights `w`, without the detour through floats.
pub fn encode_tensor_absmean(src: &[f32], s: f32, dst: &mut [u8]) -> Result<(), CodecError> {
    let n = src.len();
    if n % QK_I2_S != 0 || dst.len() != tensor_bytes(n) {
        return Err(bad(format!("{n} elements into {} bytes", dst.len())));
    }
    let (data, tail) = dst.split_at_mut(n / 4);
    encode_codes_absmean(src, 1.0 / s, data)?;
    tail.copy_from_slice(&trailer(s));
    Ok(())
}

/// Decodes a whole I2_S tensor: `(code - 1) * scale` ([`decode_values`]).
pub fn decode_tensor(src: &[u8], dst: &mut [f32]) -> Result<(), CodecError> {
    let n = dst.len();
    if n % QK_I2_S != 0 || src.len() != tensor_bytes(n) {
        return Err(bad(format!("{} bytes for {n} elements", src.len())));
    }
    let scale = trailer_scale(&src[n / 4..]).unwrap_or(0.0);
    decode_codes(&src[..n / 4], scale, dst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_round_trip() {
        // element i of a 256-element tensor: trit (i % 3) - 1 times 0.25, with a few tiny ones
        let x: Vec<f32> = (0..256)
            .map(|i| {
                if i % 17 == 5 {
                    1e-7
                } else {
                    ((i % 3) as f32 - 1.0) * 0.25
                }
            })
            .collect();
        let mut q = vec![0xeeu8; tensor_bytes(256)];
        encode_tensor(&x, &mut q).unwrap();
        assert_eq!(q.len(), 96);
        // byte 0 holds elements 0, 32, 64, 96 of group 0
        let code = |v: f32| {
            if v.abs() < 1e-6 {
                1u8
            } else if v > 0.0 {
                2
            } else {
                0
            }
        };
        let want = (code(x[0]) << 6) | (code(x[32]) << 4) | (code(x[64]) << 2) | code(x[96]);
        assert_eq!(q[0], want);
        assert_eq!(&q[64..68], &0.25f32.to_le_bytes());
        assert!(q[68..].iter().all(|&b| b == 0));
        let mut y = vec![f32::NAN; 256];
        decode_tensor(&q, &mut y).unwrap();
        for (a, b) in x.iter().zip(&y) {
            let w = if a.abs() < 1e-6 { 0.0 } else { *a };
            assert_eq!(w, *b);
        }
        assert_eq!(GgmlType::I2_S.tensor_bytes(&[128, 2]), Some(96));
        assert!(encode_tensor(&x[..100], &mut q).is_err());
    }

    #[test]
    fn tiny_threshold_is_quantize_i2s_comparison() {
        assert!((f32::from_bits(TINY_BITS) as f64) < 1e-6);
        assert!((f32::from_bits(TINY_BITS + 1) as f64) >= 1e-6);
        for bits in TINY_BITS - 3..TINY_BITS + 3 {
            for sign in [0, 0x8000_0000u32] {
                let x = f32::from_bits(bits | sign);
                assert_eq!(code_i2s(x, 1.0) == 1, (x as f64).abs() < 1e-6, "{x:e}");
            }
        }
    }

    /// The bit-built values equal the hardware product `(c - 1) as f32 * scale` (x86 NaN
    /// rules: only checked there).
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn decode_values_equal_the_x86_product() {
        let mut scales: Vec<f32> = vec![
            0.0,
            -0.0,
            1.0,
            -2.5,
            f32::MAX,
            -f32::MAX,
            f32::MIN_POSITIVE,
            1e-45,
            -3e-39,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::from_bits(0x7f7f_ffff),
            f32::from_bits(0x7f00_0000),
            f32::from_bits(0x7eff_ffff),
            f32::from_bits(0x007f_ffff),
            f32::from_bits(0x7fc0_0001),
            f32::from_bits(0xff80_0001),
            f32::from_bits(0x7f80_1234),
        ];
        let mut u = 0x1234_5678u32;
        for _ in 0..20000 {
            u ^= u << 13;
            u ^= u >> 17;
            u ^= u << 5;
            scales.push(f32::from_bits(u));
        }
        for s in scales {
            let v = decode_values(s);
            for c in 0..4 {
                let hw = std::hint::black_box((c - 1) as f32) * std::hint::black_box(s);
                assert_eq!(
                    v[c as usize].to_bits(),
                    hw.to_bits(),
                    "code {c}, scale {:#x}",
                    s.to_bits()
                );
            }
        }
    }
}
