//! The importance-weighted encoders llama-quantize runs when an imatrix is given: ggml's
//! `quantize_row_q4_0_impl`, `_q4_1_impl`, `_q5_0_impl`, `_q5_1_impl` (ggml-quants.c). They
//! work on a whole row, because each element's weight is `qw[j] * sqrt(sigma2 + x[j]^2)`
//! with `sigma2` the mean square of the entire row. Q8_0 has no weighted path (ggml's
//! `quantize_q8_0` ignores the weights).

use super::blocks::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, QK, store};
use super::reference::{pack4, pack5};
use crate::codec::float::f32_to_f16_bits;
use crate::codec::kquants::search::{make_qkx3_quants, make_qx_quants};

/// `sum_x2 / n_per_row`, summed in row order as ggml does.
fn row_sigma2(x: &[f32]) -> f32 {
    let mut sum_x2 = 0.0f32;
    for &v in x {
        sum_x2 += v * v;
    }
    sum_x2 / x.len() as f32
}

/// Per-element weights of one block: `qw[j] * sqrtf(sigma2 + x[j]*x[j])`.
fn block_weights(xb: &[f32], qw: &[f32], sigma2: f32) -> [f32; QK] {
    let mut w = [0.0f32; QK];
    for j in 0..QK {
        w[j] = qw[j] * (sigma2 + xb[j] * xb[j]).sqrt();
    }
    w
}

/// Runs `per_block(xb, weights) -> block` over a row and stores the blocks.
fn weighted_row<B: bytemuck::Pod>(
    src: &[f32],
    dst: &mut [u8],
    qw: &[f32],
    per_block: impl Fn(&[f32], &[f32; QK]) -> B,
) {
    let sigma2 = row_sigma2(src);
    let bs = size_of::<B>();
    for ((xb, qb), d) in src
        .chunks_exact(QK)
        .zip(qw.chunks_exact(QK))
        .zip(dst.chunks_exact_mut(bs))
    {
        let w = block_weights(xb, qb, sigma2);
        store(&per_block(xb, &w), d);
    }
}

/// ggml `quantize_row_q4_0_impl` with weights (`make_qx_quants(32, 8, …, rmse_type 1)`).
pub fn q4_0_row(src: &[f32], dst: &mut [u8], qw: &[f32]) {
    weighted_row(src, dst, qw, |xb, w| {
        let mut l = [0i8; QK];
        let d = make_qx_quants(8, xb, &mut l, 1, Some(w));
        BlockQ4_0 {
            d: f32_to_f16_bits(d).to_le(),
            qs: pack4(&l.map(|v| v as u8)),
        }
    });
}

/// ggml `quantize_row_q5_0_impl` with weights (`make_qx_quants(32, 16, …, rmse_type 1)`).
pub fn q5_0_row(src: &[f32], dst: &mut [u8], qw: &[f32]) {
    weighted_row(src, dst, qw, |xb, w| {
        let mut l = [0i8; QK];
        let d = make_qx_quants(16, xb, &mut l, 1, Some(w));
        let (qh, qs) = pack5(&l.map(|v| v as u8));
        BlockQ5_0 {
            d: f32_to_f16_bits(d).to_le(),
            qh,
            qs,
        }
    });
}

/// ggml `make_qkx3_quants(32, nmax, …, -0.9f, 0.05f, 36, false)` as the `_1` impls call it:
/// returns `(d, m, L)` with `m` the (non-positive) minimum.
fn qkx3(nmax: i32, xb: &[f32], w: &[f32; QK]) -> (f32, f32, [u8; QK]) {
    let mut l = [0u8; QK];
    let mut laux = [0u8; QK];
    let r = make_qkx3_quants(nmax, xb, w, &mut l, &mut laux, -0.9, 0.05, 36, false);
    (r.scale, -r.min, l)
}

/// ggml `quantize_row_q4_1_impl` with weights.
pub fn q4_1_row(src: &[f32], dst: &mut [u8], qw: &[f32]) {
    weighted_row(src, dst, qw, |xb, w| {
        let (d, m, l) = qkx3(15, xb, w);
        BlockQ4_1 {
            d: f32_to_f16_bits(d).to_le(),
            m: f32_to_f16_bits(m).to_le(),
            qs: pack4(&l),
        }
    });
}

/// ggml `quantize_row_q5_1_impl` with weights.
pub fn q5_1_row(src: &[f32], dst: &mut [u8], qw: &[f32]) {
    weighted_row(src, dst, qw, |xb, w| {
        let (d, m, l) = qkx3(31, xb, w);
        let (qh, qs) = pack5(&l);
        BlockQ5_1 {
            d: f32_to_f16_bits(d).to_le(),
            m: f32_to_f16_bits(m).to_le(),
            qh,
            qs,
        }
    });
}
