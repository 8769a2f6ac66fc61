//! BitNet absmean ternarization (src/codec/absmean.rs) on the CPU: per-channel scaling is
//! never worse than per-tensor scaling on weights whose rows have different scales; the
//! block sums do not depend on element order; the encoders keep ggml's packing (decoding
//! with ggml's TQ decoders gives trit * f16(s)); I2_S round trip.

mod common;

use common::{Dist, rng, sample};
use gpuq::codec::absmean::{self, TernaryScale};
use gpuq::codec::{decode_rows, i2s};
use gpuq::{Backend, Engine, GgmlType};
use rand::Rng;
use rand::seq::SliceRandom;

/// Rows of `dist` data, each row scaled by its own factor spanning three decades.
fn rows_with_scales(dist: Dist, rows: usize, row_len: usize, seed: u64) -> Vec<f32> {
    let mut r = rng(seed);
    let mut x = sample(dist, rows * row_len, &mut r);
    for row in x.chunks_mut(row_len) {
        let c = 10f32.powf(r.random_range(-2.0..1.0));
        row.iter_mut().for_each(|v| *v *= c);
    }
    x
}

fn rel_error(x: &[f32], row_len: usize, mode: TernaryScale) -> f64 {
    let sums = absmean::block_sums(x);
    let scales = match mode {
        TernaryScale::PerChannel => absmean::row_scales(&sums, row_len),
        TernaryScale::PerTensor => vec![absmean::tensor_scale(x); x.len() / row_len],
    };
    let err: f64 = x
        .chunks(row_len)
        .zip(&scales)
        .map(|(row, &s)| absmean::squared_error(row, s))
        .sum();
    let norm: f64 = x.iter().map(|&v| v as f64 * v as f64).sum();
    (err / norm).sqrt()
}

#[test]
fn per_channel_is_never_worse_on_rows_of_different_scales() {
    let mut seed = 900;
    for dist in [
        Dist::Normal,
        Dist::HeavyTailed,
        Dist::Uniform,
        Dist::OneOutlierPerBlock(256),
    ] {
        for row_len in [256, 1024, 4096] {
            seed += 1;
            let x = rows_with_scales(dist, 64, row_len, seed);
            let pc = rel_error(&x, row_len, TernaryScale::PerChannel);
            let pt = rel_error(&x, row_len, TernaryScale::PerTensor);
            eprintln!("{dist:?} rows of {row_len}: per-channel {pc:.4}, per-tensor {pt:.4}");
            assert!(pc <= pt, "{dist:?}, rows of {row_len}: {pc} > {pt}");
            // and the error is large: ternary post-training quantization is lossy
            assert!(pc > 0.2 && pc < 1.0, "{pc}");
        }
    }
}

#[test]
fn block_sums_ignore_element_order() {
    let mut r = rng(77);
    for dist in Dist::all(256) {
        let mut x = sample(dist, 256, &mut r);
        let s = absmean::block_abs_sum(&x);
        for _ in 0..5 {
            x.shuffle(&mut r);
            assert_eq!(
                absmean::block_abs_sum(&x).to_bits(),
                s.to_bits(),
                "{dist:?}"
            );
        }
        let exact: f64 = x.iter().map(|v| v.abs() as f64).sum();
        assert!(
            (s as f64 - exact).abs() <= exact * 1e-6,
            "{dist:?}: {s} vs {exact}"
        );
    }
}

#[test]
fn scaled_encoders_decode_to_trit_times_scale() {
    let cpu = Engine::new(Backend::Cpu).unwrap();
    let row_len = 1280;
    let x = rows_with_scales(Dist::Normal, 16, row_len, 5);
    let scales = absmean::row_scales(&absmean::block_sums(&x), row_len);
    for ty in [GgmlType::TQ1_0, GgmlType::TQ2_0] {
        let mut q = vec![0u8; x.len() / 256 * ty.block_bytes() as usize];
        cpu.encode_absmean(ty, &x, row_len, &scales, &mut q)
            .unwrap();
        let mut y = vec![f32::NAN; x.len()];
        decode_rows(ty, &q, row_len, &mut y).unwrap();
        for (i, (&xi, &yi)) in x.iter().zip(&y).enumerate() {
            let s = scales[i / row_len];
            let d = gpuq::codec::float::f16_bits_to_f32(gpuq::codec::float::f32_to_f16_bits(s));
            let v = xi * (1.0 / s);
            let t = if v > 0.5 {
                1.0
            } else if v < -0.5 {
                -1.0
            } else {
                0.0
            };
            assert_eq!(yi, t * d, "{ty} element {i}");
        }
    }
}

#[test]
fn i2s_round_trip_on_ternary_data() {
    let mut r = rng(11);
    let s = 0.0371f32;
    let t: Vec<f32> = (0..128 * 40)
        .map(|_| r.random_range(-1i32..=1) as f32)
        .collect();
    let x: Vec<f32> = t.iter().map(|&q| q * s).collect();
    let mut q = vec![0u8; i2s::tensor_bytes(x.len())];
    i2s::encode_tensor(&x, &mut q).unwrap();
    let mut y = vec![f32::NAN; x.len()];
    i2s::decode_tensor(&q, &mut y).unwrap();
    assert_eq!(x, y);
    // absmean variant: scale = mean |x| = s * (fraction of nonzeros)
    let m = absmean::tensor_scale(&x);
    i2s::encode_tensor_absmean(&x, m, &mut q).unwrap();
    i2s::decode_tensor(&q, &mut y).unwrap();
    for (&a, &b) in t.iter().zip(&y) {
        assert_eq!(a * m, b);
    }
}
