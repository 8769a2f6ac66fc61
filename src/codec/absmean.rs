//! BitNet b1.58 absmean ternarization into TQ1_0 / TQ2_0 blocks: `q = clamp(round(w / s), -1,
//! 1)` with `s = mean(|w|)` per row (`per-channel`) or per tensor (`per-tensor`), and `s`
//! written as every block's f16 scale.
//!
//! BitNet's reference (`weight_quant` in the 1bitLLM / microsoft checkpoints' utils_quant.py,
//! repeated by llama.cpp's `convert_hf_to_gguf.py` for `BitnetModel`) computes
//! `iscale = 1 / s.clamp(min=1e-5)`, `(w * iscale).round().clamp(-1, 1)` with torch's round
//! (half to even). We do the same: `id = 1 / s` (one correctly rounded division per row),
//! `v = w * id`, trit = `1 + (v > 0.5) - (v < -0.5)` (that is round half to even clamped to
//! [-1, 1]; NaN gives 0), `s` guarded below by 1e-5 (NaN too).
//!
//! The mean is defined so that the GPU (shaders/ternary.wgsl `absmean_block_sums`) and the CPU
//! compute the very same number, independent of summation order:
//! 1. per 256-element block, [`block_abs_sum`]: each |w| = m * 2^(e-150) becomes the integer
//!    `(m << 8) >> (E - e)` in units of 2^(E-158), E the block's largest exponent (terms are
//!    truncated to 32 bits below the largest element: relative error < 2^-24 per block); the
//!    256 integers are added exactly (64-bit) and the total rounded once to f32. Integer sums
//!    are associative, so no reduction order or compiler reassociation can change the result;
//! 2. on the host, for both backends: a row's (or the tensor's) block sums are added in f64 in
//!    block order and divided by the element count in f64, then rounded to f32
//!    ([`row_scales`], [`tensor_scale`]).

use super::float::f32_to_f16_bits;
use super::legacy::blocks::store;
use super::ternary::{BlockTq1_0, BlockTq2_0, QK_K};
use crate::ggml_type::GgmlType;

/// Lower bound of the absmean scale (BitNet's `clamp(min=1e-5)`).
pub const MIN_SCALE: f32 = 1e-5;

/// Where one absmean scale applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TernaryScale {
    /// One scale per output channel (row).
    PerChannel,
    /// One scale for the whole tensor (how BitNet b1.58 is trained).
    PerTensor,
}

impl std::str::FromStr for TernaryScale {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "per-channel" | "per-row" => Ok(TernaryScale::PerChannel),
            "per-tensor" => Ok(TernaryScale::PerTensor),
            _ => Err(format!(
                "unknown ternary scale '{s}' (per-channel or per-tensor)"
            )),
        }
    }
}

/// True for the types the absmean encoders write.
pub fn supports(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::TQ1_0 | GgmlType::TQ2_0)
}

/// Order-independent sum of |x| over one block (any length up to 2^24); see the module doc.
/// Any non-finite element makes it +inf. GPU twin: `block_abs_sum` in shaders/ternary.wgsl.
pub fn block_abs_sum(x: &[f32]) -> f32 {
    let exp = |a: u32| ((a >> 23) as i32).max(1);
    let sig = |a: u32| {
        if a >> 23 == 0 {
            a & 0x7f_ffff
        } else {
            (a & 0x7f_ffff) | 0x80_0000
        }
    };
    let mut e_max = 1;
    for &v in x {
        let a = v.to_bits() & 0x7fff_ffff;
        if a >= 0x7f80_0000 {
            return f32::INFINITY;
        }
        e_max = e_max.max(exp(a));
    }
    let mut n = 0u64;
    for &v in x {
        let a = v.to_bits() & 0x7fff_ffff;
        let sh = e_max - exp(a);
        if sh < 32 {
            n += ((sig(a) as u64) << 8) >> sh;
        }
    }
    // n < 2^40 is exact in f64 and so is the power of two: one rounding, in the cast
    (n as f64 * 2f64.powi(e_max - 158)) as f32
}

/// [`block_abs_sum`] of every 256-element block of `src`, in order.
pub fn block_sums(src: &[f32]) -> Vec<f32> {
    src.chunks(QK_K).map(block_abs_sum).collect()
}

fn guard(mean: f32) -> f32 {
    if mean >= MIN_SCALE { mean } else { MIN_SCALE }
}

/// Per-row absmean scales from the block sums of whole rows of `row_len` elements.
pub fn row_scales(block_sums: &[f32], row_len: usize) -> Vec<f32> {
    let bpr = (row_len / QK_K).max(1);
    block_sums
        .chunks(bpr)
        .map(|r| {
            let s: f64 = r.iter().map(|&b| b as f64).sum();
            guard((s / row_len as f64) as f32)
        })
        .collect()
}

/// Running per-tensor absmean: feed the block sums of every tile in order, then [`finish`].
///
/// [`finish`]: TensorMean::finish
#[derive(Clone, Copy, Debug, Default)]
pub struct TensorMean {
    sum: f64,
    elems: u64,
}

impl TensorMean {
    pub fn add(&mut self, block_sums: &[f32]) {
        for &b in block_sums {
            self.sum += b as f64;
        }
        self.elems += (block_sums.len() * QK_K) as u64;
    }

    /// Adds whole rows of `row_len` elements, each cut into 256-element blocks and a shorter
    /// last one: for rows that are not a multiple of 256 (I2_S's 128-element groups, BitNet
    /// master weights of any type). On rows that are, the blocks and the sum are [`add`]'s.
    ///
    /// [`add`]: TensorMean::add
    pub fn add_rows(&mut self, tile: &[f32], row_len: usize) {
        for row in tile.chunks(row_len.max(1)) {
            for b in row.chunks(QK_K) {
                self.sum += block_abs_sum(b) as f64;
            }
            self.elems += row.len() as u64;
        }
    }

    /// The guarded scale.
    pub fn finish(&self) -> f32 {
        guard((self.sum / self.elems.max(1) as f64) as f32)
    }
}

/// Per-tensor absmean of `src` (all blocks in order).
pub fn tensor_scale(src: &[f32]) -> f32 {
    let mut m = TensorMean::default();
    m.add(&block_sums(src));
    m.finish()
}

/// Trit code (0, 1, 2 for -1, 0, 1) of `v = w * id`: round half to even, clamped. NaN -> 1.
/// GPU twin: `trit_absmean`.
#[inline]
pub fn trit_absmean(v: f32) -> u8 {
    1 + (v > 0.5) as u8 - (v < -0.5) as u8
}

/// What the scaled encoders need per row: `id = 1/s` and the f16 bits of `s`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RowScale {
    pub id: f32,
    pub d: u16,
}

impl RowScale {
    /// Trits from `x * (1/s)`, `d = f16(s)`.
    pub fn new(s: f32) -> Self {
        RowScale {
            id: 1.0 / s,
            d: f32_to_f16_bits(s),
        }
    }

    /// Trits from `x * id`, `d = f16(d)` (BitNet checkpoints: `d` is the value the converter
    /// writes for a trit of 1, see [`quant_value`]).
    pub fn with(id: f32, d: f32) -> Self {
        RowScale {
            id,
            d: f32_to_f16_bits(d),
        }
    }
}

/// `v` rounded to `dtype` (F16 or BF16, round to nearest even) and back; F32 and any other
/// type leave it as it is.
pub fn round_to(dtype: GgmlType, v: f32) -> f32 {
    use super::float::{bf16_bits_to_f32, f16_bits_to_f32, f32_to_bf16_bits};
    match dtype {
        GgmlType::F16 => f16_bits_to_f32(f32_to_f16_bits(v)),
        GgmlType::BF16 => bf16_bits_to_f32(f32_to_bf16_bits(v)),
        _ => v,
    }
}

/// What BitNet's `weight_quant` (convert_hf_to_gguf.py, `BitnetModel`) writes for a trit of 1:
/// `1 / iscale` in f32, cast back to the checkpoint's dtype.
pub fn quant_value(id: f32, dtype: GgmlType) -> f32 {
    round_to(dtype, 1.0 / id)
}

/// BitNet's `weight_quant` in place, as convert_hf_to_gguf.py's `BitnetModel` computes it in
/// torch: `(x * iscale).round().clamp(-1, 1) / iscale`, cast to the checkpoint's `dtype`, with
/// `iscale = id = 1/s` for the tensor's absmean `s`. Round is half to even, so a product of
/// exactly ±0.5 gives a zero, which keeps the sign of `x` (as torch's -0.0 does); NaN stays NaN.
pub fn weight_quant(x: &mut [f32], id: f32, dtype: GgmlType) {
    let v = quant_value(id, dtype);
    for e in x {
        let y = *e * id;
        *e = if y > 0.5 {
            v
        } else if y < -0.5 {
            -v
        } else if y.is_nan() {
            y
        } else {
            0f32.copysign(y)
        };
    }
}

fn tq1_block(x: &[f32], s: RowScale) -> BlockTq1_0 {
    let t = |v: f32| trit_absmean(v * s.id);
    let mut b = BlockTq1_0 {
        qs: [0; 48],
        qh: [0; 4],
        d: s.d.to_le(),
    };
    let pack = |q: u8| (q as u16 * 256).div_ceil(243) as u8;
    for m in 0..32 {
        let q = (0..5).fold(0u8, |q, n| q * 3 + t(x[m + n * 32]));
        b.qs[m] = pack(q);
    }
    for m in 0..16 {
        let q = (0..5).fold(0u8, |q, n| q * 3 + t(x[160 + m + n * 16]));
        b.qs[32 + m] = pack(q);
    }
    for j in 0..4 {
        let q = (0..4).fold(0u8, |q, m| q * 3 + t(x[240 + j + m * 4]));
        b.qh[j] = pack(q * 3);
    }
    b
}

fn tq2_block(x: &[f32], s: RowScale) -> BlockTq2_0 {
    let mut b = BlockTq2_0 {
        qs: [0; 64],
        d: s.d.to_le(),
    };
    for j in (0..64).step_by(32) {
        for m in 0..32 {
            b.qs[j + m] = (0..4).fold(0u8, |q, n| {
                q | (trit_absmean(x[j * 4 + m + n * 32] * s.id) << (2 * n))
            });
        }
    }
    b
}

/// Encodes rows of `row_len` (a multiple of 256) into TQ1_0 / TQ2_0 with one absmean scale
/// per row (`scales[r]`, already guarded). Packing as ggml's `quantize_row_tq*_0_ref`.
/// GPU twin: `absmean_encode_tq1_0` / `_tq2_0`.
pub fn encode_scaled(ty: GgmlType, src: &[f32], row_len: usize, scales: &[f32], dst: &mut [u8]) {
    let rs: Vec<RowScale> = scales.iter().map(|&s| RowScale::new(s)).collect();
    encode_row_scales(ty, src, row_len, &rs, dst);
}

/// [`encode_scaled`] with each row's `1/s` and f16 scale given ([`RowScale`]).
pub fn encode_row_scales(
    ty: GgmlType,
    src: &[f32],
    row_len: usize,
    scales: &[RowScale],
    dst: &mut [u8],
) {
    let bb = ty.block_bytes() as usize;
    let bpr = row_len / QK_K;
    for (r, (x, d)) in src
        .chunks_exact(row_len)
        .zip(dst.chunks_exact_mut(bpr * bb))
        .enumerate()
    {
        let s = scales[r];
        for (xb, db) in x.chunks_exact(QK_K).zip(d.chunks_exact_mut(bb)) {
            match ty {
                GgmlType::TQ1_0 => store(&tq1_block(xb, s), db),
                _ => store(&tq2_block(xb, s), db),
            }
        }
    }
}

/// Sum of squared errors of the absmean ternarization of `x` with scale `s` (guarded): the
/// decoded values are `trit * f16(s)`, as a TQ1_0 / TQ2_0 block stores them.
pub fn squared_error(x: &[f32], s: f32) -> f64 {
    let r = RowScale::new(s);
    let d = super::float::f16_bits_to_f32(r.d) as f64;
    x.iter()
        .map(|&v| {
            let q = trit_absmean(v * r.id) as f64 - 1.0;
            let e = v as f64 - q * d;
            e * e
        })
        .sum()
}

/// Frobenius relative error ||w - dq||_F / ||w||_F, summed in f64 (0 for a zero tensor).
pub fn relative_error(w: &[f32], dq: &[f32]) -> f64 {
    let (mut num, mut den) = (0f64, 0f64);
    for (&a, &b) in w.iter().zip(dq) {
        let e = a as f64 - b as f64;
        num += e * e;
        den += a as f64 * a as f64;
    }
    if den > 0.0 { (num / den).sqrt() } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sum_is_order_independent_and_close() {
        let mut x: Vec<f32> = (0..256)
            .map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 1e-3 * (1.0 + (i % 13) as f32))
            .collect();
        let s = block_abs_sum(&x);
        let exact: f64 = x.iter().map(|v| v.abs() as f64).sum();
        assert!(((s as f64 - exact) / exact).abs() < 1e-6, "{s} vs {exact}");
        x.reverse();
        assert_eq!(block_abs_sum(&x).to_bits(), s.to_bits());
        x.swap(3, 200);
        assert_eq!(block_abs_sum(&x).to_bits(), s.to_bits());
        assert_eq!(block_abs_sum(&[0.0; 256]), 0.0);
        let mut y = x.clone();
        y[9] = f32::NAN;
        assert_eq!(block_abs_sum(&y), f32::INFINITY);
    }

    #[test]
    fn trit_rounds_half_to_even_and_clamps() {
        for (v, t) in [
            (0.5, 1),
            (0.5000001, 2),
            (-0.5, 1),
            (-0.50001, 0),
            (7.0, 2),
            (-3.0, 0),
            (f32::NAN, 1),
        ] {
            assert_eq!(trit_absmean(v), t, "{v}");
        }
    }

    #[test]
    fn weight_quant_is_bitnets() {
        let id = 1.0 / 0.3f32;
        let mut x = vec![0.1, -0.1, 0.15, -0.15, 0.16, -0.2, 5.0, -0.0, f32::NAN];
        // 0.15 * id is exactly 0.5 in f32? then half to even: 0
        let y: Vec<f32> = x.iter().map(|&v| v * id).collect();
        weight_quant(&mut x, id, GgmlType::BF16);
        let v = quant_value(id, GgmlType::BF16);
        assert_eq!(v, round_to(GgmlType::BF16, 0.3));
        for (i, (&q, &yi)) in x.iter().zip(&y).enumerate() {
            let want = if yi > 0.5 {
                v
            } else if yi < -0.5 {
                -v
            } else {
                0f32.copysign(yi)
            };
            if yi.is_nan() {
                assert!(q.is_nan());
            } else {
                assert_eq!(q.to_bits(), want.to_bits(), "element {i}");
            }
        }
        assert_eq!(x[1].to_bits(), (-0.0f32).to_bits());
        assert_eq!(round_to(GgmlType::F32, 0.1), 0.1);
        assert_eq!(round_to(GgmlType::F16, 1.0 + 1e-4), 1.0);
    }

    #[test]
    fn scale_is_guarded() {
        assert_eq!(tensor_scale(&[0.0; 512]), MIN_SCALE);
        assert_eq!(row_scales(&[0.0, 0.0], 256), vec![MIN_SCALE; 2]);
    }
}
