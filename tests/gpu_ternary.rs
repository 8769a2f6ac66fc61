//! shaders/ternary.wgsl (lavapipe in CI) against its CPU twins: TQ1_0 / TQ2_0 encode byte for
//! byte and decode bit for bit (src/codec/ternary.rs), the BitNet absmean block sums bit for
//! bit and the absmean encoders byte for byte (src/codec/absmean.rs), I2_S codes byte for byte
//! and decode bit for bit (src/codec/i2s.rs), on every distribution of
//! tests/common, on already-ternary data times per-row scales, on extreme magnitudes (the
//! integer division / multiplication paths) and on random block bytes (decoders). Output
//! buffers are poisoned, so a word a kernel forgets reads back as 0xa5a5a5a5. Fails without an
//! adapter unless GPUQ_TEST_ALLOW_NO_GPU=1.
#![cfg(feature = "gpu")]

mod common;

use common::{Dist, differing_blocks, rng, sample};
use gpuq::codec::absmean::{self, TensorMean};
use gpuq::gpu::codecs::RunnerOptions;
use gpuq::{Backend, Engine, GgmlType, codec};
use rand::Rng;
use rand::rngs::StdRng;

const TYPES: [GgmlType; 2] = [GgmlType::TQ1_0, GgmlType::TQ2_0];
const ROW_LENS: [usize; 3] = [256, 1280, 4096];
const ELEMS_PER_CASE: usize = 65536;

fn gpu_engine() -> Option<Engine> {
    let opts = RunnerOptions {
        poison_output: true,
        // small tiles: several tiles per call, odd block counts per tile
        max_tile_bytes: Some(300_000),
        ..RunnerOptions::default()
    };
    match Engine::with_gpu_options(Backend::Gpu, opts) {
        Ok(e) => Some(e),
        Err(e) if std::env::var("GPUQ_TEST_ALLOW_NO_GPU").as_deref() == Ok("1") => {
            eprintln!("skipping: {e} (GPUQ_TEST_ALLOW_NO_GPU=1)");
            None
        }
        Err(e) => panic!("no GPU for the GPU tests: {e}\n(set GPUQ_TEST_ALLOW_NO_GPU=1 to skip)"),
    }
}

/// Rows of trits times a random scale per row (and a few all-zero rows).
fn ternary_rows(rows: usize, row_len: usize, r: &mut StdRng) -> (Vec<f32>, Vec<f32>) {
    let mut x = Vec::with_capacity(rows * row_len);
    let mut t = Vec::with_capacity(rows * row_len);
    for i in 0..rows {
        let c = 10f32.powf(r.random_range(-3.0..1.0));
        let p_zero = if i % 7 == 3 {
            1.0
        } else {
            r.random_range(0.0..0.9)
        };
        for _ in 0..row_len {
            let q = if r.random::<f64>() < p_zero {
                0.0
            } else if r.random() {
                1.0
            } else {
                -1.0
            };
            t.push(q);
            x.push(q * c);
        }
    }
    (x, t)
}

/// Values near the ends of f32 (integer division and multiplication paths) and subnormals.
fn extremes(n: usize, r: &mut StdRng) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let blk = i / 256;
            let e: u32 = match blk % 4 {
                0 => r.random_range(0..8),     // subnormal and tiny normals
                1 => r.random_range(240..255), // near f32 max
                2 => r.random_range(20..40),   // 2^-100 and below
                _ => r.random_range(100..150),
            };
            f32::from_bits((r.random_range(0..2u32) << 31) | (e << 23) | (r.random::<u32>() >> 9))
        })
        .collect()
}

fn cases(seed: u64) -> Vec<(String, usize, Vec<f32>)> {
    let mut r = rng(seed);
    let mut out = Vec::new();
    for dist in Dist::all(256) {
        for row_len in ROW_LENS {
            let rows = ELEMS_PER_CASE.div_ceil(row_len);
            out.push((
                format!("{dist:?}"),
                row_len,
                sample(dist, rows * row_len, &mut r),
            ));
        }
    }
    for row_len in ROW_LENS {
        let (x, _) = ternary_rows(ELEMS_PER_CASE / row_len, row_len, &mut r);
        out.push(("ternary x row scale".into(), row_len, x));
    }
    out.push(("extremes".into(), 1280, extremes(1280 * 40, &mut r)));
    out
}

fn report(what: &str, bad: &[usize], total: usize) {
    assert!(
        bad.is_empty(),
        "{what}: {} of {total} blocks differ (first: {:?})",
        bad.len(),
        &bad[..bad.len().min(8)]
    );
}

#[test]
fn tq_encode_and_decode_match_the_cpu() {
    let Some(gpu) = gpu_engine() else { return };
    let mut total = [0usize; 2];
    for (name, row_len, x) in cases(81) {
        for (ti, ty) in TYPES.into_iter().enumerate() {
            let bb = ty.block_bytes() as usize;
            let mut cpu = vec![0u8; x.len() / 256 * bb];
            codec::encode_rows(ty, &x, row_len, None, &mut cpu).unwrap();
            let g = gpu.encode(ty, &x, row_len, None).unwrap();
            report(
                &format!("{ty} encode, {name}, rows of {row_len}"),
                &differing_blocks(&g, &cpu, bb),
                cpu.len() / bb,
            );
            total[ti] += cpu.len() / bb;
            let dc = gpuq::Engine::new(Backend::Cpu)
                .unwrap()
                .decode(ty, &cpu, row_len)
                .unwrap();
            let dg = gpu.decode(ty, &cpu, row_len).unwrap();
            let bad: Vec<usize> = (0..dc.len() / 256)
                .filter(|&b| (b * 256..b * 256 + 256).any(|i| dc[i].to_bits() != dg[i].to_bits()))
                .collect();
            report(&format!("{ty} decode, {name}"), &bad, dc.len() / 256);
        }
    }
    eprintln!(
        "TQ1_0: {} blocks, TQ2_0: {} blocks equal",
        total[0], total[1]
    );
}

#[test]
fn tq_decode_random_bytes_bit_for_bit() {
    let Some(gpu) = gpu_engine() else { return };
    let cpu = Engine::new(Backend::Cpu).unwrap();
    let mut r = rng(82);
    for ty in TYPES {
        let bb = ty.block_bytes() as usize;
        let n_blocks = 3001;
        let mut q: Vec<u8> = (0..n_blocks * bb).map(|_| r.random()).collect();
        // scales: every f16 class, NaN payloads and infinities included
        for b in 0..n_blocks {
            let d: u16 = match b % 5 {
                0 => 0x7c00 | (r.random::<u16>() & 0x83ff),
                1 => r.random::<u16>() & 0x83ff,
                _ => r.random(),
            };
            q[b * bb + bb - 2..b * bb + bb].copy_from_slice(&d.to_le_bytes());
        }
        let dc = cpu.decode(ty, &q, 256).unwrap();
        let dg = gpu.decode(ty, &q, 256).unwrap();
        let bad: Vec<usize> = (0..n_blocks)
            .filter(|&b| (b * 256..b * 256 + 256).any(|i| dc[i].to_bits() != dg[i].to_bits()))
            .collect();
        report(&format!("{ty} decode of random bytes"), &bad, n_blocks);
    }
}

#[test]
fn absmean_sums_and_encoders_match_the_cpu() {
    let Some(gpu) = gpu_engine() else { return };
    let cpu = Engine::new(Backend::Cpu).unwrap();
    let mut n_blocks = 0;
    for (name, row_len, x) in cases(83) {
        let sc = cpu.absmean_block_sums(&x, row_len).unwrap();
        let sg = gpu.absmean_block_sums(&x, row_len).unwrap();
        assert_eq!(sc.len(), x.len() / 256);
        let bad: Vec<usize> = (0..sc.len())
            .filter(|&i| sc[i].to_bits() != sg[i].to_bits())
            .collect();
        report(&format!("absmean block sums, {name}"), &bad, sc.len());
        n_blocks += sc.len();

        let per_row = absmean::row_scales(&sc, row_len);
        let mut tm = TensorMean::default();
        tm.add(&sc);
        let per_tensor = vec![tm.finish(); per_row.len()];
        for scales in [per_row, per_tensor] {
            for ty in TYPES {
                let bb = ty.block_bytes() as usize;
                let mut c = vec![0u8; x.len() / 256 * bb];
                cpu.encode_absmean(ty, &x, row_len, &scales, &mut c)
                    .unwrap();
                let mut g = vec![0u8; c.len()];
                gpu.encode_absmean(ty, &x, row_len, &scales, &mut g)
                    .unwrap();
                report(
                    &format!("{ty} absmean encode, {name}, rows of {row_len}"),
                    &differing_blocks(&g, &c, bb),
                    c.len() / bb,
                );
            }
        }
    }
    eprintln!("absmean: {n_blocks} block sums equal");
}

/// Already-ternary rows times a per-row scale: the trits come back exactly, and every
/// decoded value is the trit times the row's f16 absmean scale (absmean of such a row is the
/// row's scale times its fraction of nonzeros, which is what BitNet stores). With ggml's
/// block absmax the values come back exactly up to the f16 rounding of the scale.
#[test]
fn ternary_round_trip_is_exact_up_to_the_scale() {
    let Some(gpu) = gpu_engine() else { return };
    let cpu = Engine::new(Backend::Cpu).unwrap();
    let mut r = rng(84);
    for row_len in ROW_LENS {
        let rows = 40;
        let (x, t) = ternary_rows(rows, row_len, &mut r);
        for e in [&cpu, &gpu] {
            let sums = e.absmean_block_sums(&x, row_len).unwrap();
            let scales = absmean::row_scales(&sums, row_len);
            for ty in TYPES {
                let mut q = vec![0u8; x.len() / 256 * ty.block_bytes() as usize];
                e.encode_absmean(ty, &x, row_len, &scales, &mut q).unwrap();
                let y = e.decode(ty, &q, row_len).unwrap();
                for (i, (&yi, &ti)) in y.iter().zip(&t).enumerate() {
                    let d = gpuq::codec::float::f16_bits_to_f32(
                        gpuq::codec::float::f32_to_f16_bits(scales[i / row_len]),
                    );
                    assert_eq!(
                        yi,
                        ti * d,
                        "{ty} absmean, row {}, col {}",
                        i / row_len,
                        i % row_len
                    );
                }
                // ggml's block absmax
                let q = e.encode(ty, &x, row_len, None).unwrap();
                let y = e.decode(ty, &q, row_len).unwrap();
                for (i, (&yi, &xi)) in y.iter().zip(&x).enumerate() {
                    let d = gpuq::codec::float::f16_bits_to_f32(
                        gpuq::codec::float::f32_to_f16_bits(xi.abs()),
                    );
                    let want = if xi == 0.0 { 0.0 } else { xi.signum() * d };
                    assert_eq!(yi, want, "{ty} absmax, element {i}");
                }
            }
        }
    }
}

/// Scales of every f32 class for the I2_S decoder: normal, subnormal, zero, huge (2x overflows),
/// infinities and NaN payloads, both signs.
fn odd_scales(r: &mut StdRng) -> Vec<f32> {
    let mut v = vec![
        0.0,
        -0.0,
        1.0,
        -0.037,
        f32::MAX,
        -f32::MAX,
        f32::from_bits(0x7f00_0000),
        f32::from_bits(0x7eff_ffff),
        f32::MIN_POSITIVE,
        f32::from_bits(0x007f_ffff),
        -1e-45,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::from_bits(0x7fc0_0000),
        f32::from_bits(0xff80_0001),
        f32::from_bits(0x7f81_2345),
    ];
    v.extend((0..8).map(|_| f32::from_bits(r.random())));
    v
}

#[test]
fn i2s_codes_and_decode_match_the_cpu() {
    let Some(gpu) = gpu_engine() else { return };
    let cpu = Engine::new(Backend::Cpu).unwrap();
    let mut r = rng(85);
    let mut all = cases(86);
    all.push((
        "Normal".into(),
        384,
        sample(Dist::Normal, 384 * 171, &mut r),
    ));
    all.push((
        "Uniform".into(),
        128,
        sample(Dist::Uniform, 128 * 301, &mut r),
    ));
    let (mut n_enc, mut n_dec) = (0, 0);
    for (name, row_len, x) in all {
        let s = absmean::tensor_scale(&x[..x.len() / 256 * 256]);
        // the tensor's own 1/s, and ids that take the integer multiplication path
        for id in [
            1.0 / s,
            1.0,
            f32::from_bits(0x0680_0000),
            f32::from_bits(0x7800_0000),
        ] {
            let mut c = vec![0u8; x.len() / 4];
            cpu.encode_i2s(&x, row_len, id, &mut c).unwrap();
            let mut g = vec![0u8; c.len()];
            gpu.encode_i2s(&x, row_len, id, &mut g).unwrap();
            report(
                &format!("I2_S encode, {name}, rows of {row_len}, id {id:e}"),
                &differing_blocks(&g, &c, 32),
                c.len() / 32,
            );
            n_enc += c.len() / 32;
        }
        let mut c = vec![0u8; x.len() / 4];
        cpu.encode_i2s(&x, row_len, 1.0 / s, &mut c).unwrap();
        for scale in std::iter::once(s).chain(odd_scales(&mut r)) {
            let mut dc = vec![0f32; x.len()];
            cpu.decode_i2s(&c, row_len, scale, &mut dc).unwrap();
            let mut dg = vec![0f32; x.len()];
            gpu.decode_i2s(&c, row_len, scale, &mut dg).unwrap();
            let bad: Vec<usize> = (0..dc.len() / 128)
                .filter(|&b| (b * 128..b * 128 + 128).any(|i| dc[i].to_bits() != dg[i].to_bits()))
                .collect();
            report(
                &format!("I2_S decode, {name}, scale {:#x}", scale.to_bits()),
                &bad,
                dc.len() / 128,
            );
            n_dec += dc.len() / 128;
        }
    }
    // random bytes (code 3 included), 2 rows of 128
    let q: Vec<u8> = (0..64 * 97).map(|_| r.random()).collect();
    for scale in odd_scales(&mut r) {
        let mut dc = vec![0f32; q.len() * 4];
        cpu.decode_i2s(&q, 128, scale, &mut dc).unwrap();
        let mut dg = vec![f32::NAN; q.len() * 4];
        gpu.decode_i2s(&q, 128, scale, &mut dg).unwrap();
        let bad: Vec<usize> = (0..dc.len())
            .filter(|&i| dc[i].to_bits() != dg[i].to_bits())
            .collect();
        report("I2_S decode of random bytes", &bad, dc.len());
    }
    // the whole-tensor helpers agree with the row calls
    let x = sample(Dist::HeavyTailed, 4096 * 8, &mut r);
    let s = absmean::tensor_scale(&x);
    let mut t = vec![0u8; gpuq::codec::i2s::tensor_bytes(x.len())];
    gpuq::codec::i2s::encode_tensor_absmean(&x, s, &mut t).unwrap();
    let mut g = vec![0u8; x.len() / 4];
    gpu.encode_i2s(&x, 4096, 1.0 / s, &mut g).unwrap();
    assert_eq!(&t[..x.len() / 4], &g[..]);
    assert_eq!(&t[x.len() / 4..], &gpuq::codec::i2s::trailer(s)[..]);
    eprintln!("I2_S: {n_enc} encoded and {n_dec} decoded blocks equal");
}
