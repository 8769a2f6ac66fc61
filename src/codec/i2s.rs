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
//! the CPU codec table and the row pipeline; [`encode_tensor`] / [`decode_tensor`] work on
//! whole tensors.

use crate::codec::CodecError;
use crate::ggml_type::GgmlType;

/// Elements per group (`QK_I2_S`, x86).
pub const QK_I2_S: usize = 128;
/// Bytes after the packed codes: the f32 scale and padding (`+ 32` in `ggml_nbytes`).
pub const TRAILER_BYTES: usize = 32;

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
    encode_with(
        src,
        max as f32,
        |x| {
            if (x as f64).abs() < 1e-6 {
                1
            } else if x as f64 * max > 0.0 {
                2
            } else {
                0
            }
        },
        dst,
    );
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
    let id = 1.0 / s;
    encode_with(src, s, |x| super::absmean::trit_absmean(x * id), dst);
    Ok(())
}

fn encode_with(src: &[f32], scale: f32, code: impl Fn(f32) -> u8, dst: &mut [u8]) {
    let n = src.len();
    let (data, trailer) = dst.split_at_mut(n / 4);
    for (g, out) in src.chunks_exact(QK_I2_S).zip(data.chunks_exact_mut(32)) {
        for (p, o) in out.iter_mut().enumerate() {
            *o = (0..4).fold(0u8, |b, k| b | (code(g[k * 32 + p]) << (6 - 2 * k)));
        }
    }
    trailer.fill(0);
    trailer[..4].copy_from_slice(&scale.to_le_bytes());
}

/// Decodes a whole I2_S tensor: `(code - 1) * scale`.
pub fn decode_tensor(src: &[u8], dst: &mut [f32]) -> Result<(), CodecError> {
    let n = dst.len();
    if n % QK_I2_S != 0 || src.len() != tensor_bytes(n) {
        return Err(bad(format!("{} bytes for {n} elements", src.len())));
    }
    let s = &src[n / 4..n / 4 + 4];
    let scale = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
    for (g, y) in src[..n / 4]
        .chunks_exact(32)
        .zip(dst.chunks_exact_mut(QK_I2_S))
    {
        for (p, &b) in g.iter().enumerate() {
            for k in 0..4 {
                let c = (b >> (6 - 2 * k)) & 3;
                y[k * 32 + p] = (c as i32 - 1) as f32 * scale;
            }
        }
    }
    Ok(())
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
}
