//! F16 / BF16 kernels on the GPU (lavapipe in CI) against their CPU twins in
//! src/codec/float.rs, bit for bit, on a few million elements: normal data, subnormals,
//! values that overflow f16, exact rounding ties, NaN with payloads, ±Inf, -0.0 and random
//! bit patterns. Fails without an adapter unless GPUQ_TEST_ALLOW_NO_GPU=1.
#![cfg(feature = "gpu")]

mod common;

use common::{Dist, rng, sample};
use gpuq::gpu::codecs::RunnerOptions;
use gpuq::{Backend, Engine, GgmlType, codec};
use rand::Rng;
use rand::rngs::StdRng;

fn gpu_engine(opts: RunnerOptions) -> Option<Engine> {
    // Poisoned output buffers: a word the kernel does not write reads back as 0xa5a5a5a5.
    let opts = RunnerOptions {
        poison_output: true,
        ..opts
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

fn f32_from_parts(sign: u32, exp: u32, man: u32) -> f32 {
    f32::from_bits((sign << 31) | (exp << 23) | (man & 0x7f_ffff))
}

/// Values around every f16 edge: subnormal range, the normal/subnormal boundary, the
/// overflow threshold 65520, exact ties of the 13 dropped bits, f32 subnormals.
fn f16_edges(n: usize, r: &mut StdRng) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let s = r.random_range(0..2u32);
            match r.random_range(0..7) {
                // f16 subnormals and the boundary to normals: 2^-26 .. 2^-13
                0 => f32_from_parts(s, r.random_range(101..115), r.random()),
                // near the overflow threshold: 2^15 .. 2^17
                1 => f32_from_parts(s, r.random_range(142..145), r.random()),
                // exact ties: low 13 bits 0x1000, random exponent in f16 normal range
                2 => f32_from_parts(
                    s,
                    r.random_range(113..143),
                    (r.random::<u32>() & !0x1fff) | 0x1000,
                ),
                // ties in the subnormal range (shift 14..24): half of the dropped part set
                3 => {
                    let e = r.random_range(102..113u32);
                    let shift = 126 - e;
                    let m = (r.random::<u32>() & !((1 << shift) - 1)) | (1 << (shift - 1));
                    f32_from_parts(s, e, m)
                }
                // f32 subnormals
                4 => f32_from_parts(s, 0, r.random()),
                // bf16 ties: low 16 bits 0x8000
                5 => f32::from_bits((r.random::<u32>() & 0xffff_0000) | 0x8000),
                _ => f32_from_parts(s, r.random_range(1..255), r.random()),
            }
        })
        .collect()
}

/// Uniformly random bit patterns: every class, NaNs with random payloads (signalling and quiet).
fn random_bits(n: usize, r: &mut StdRng) -> Vec<f32> {
    (0..n).map(|_| f32::from_bits(r.random())).collect()
}

fn specials() -> Vec<f32> {
    let mut v = vec![
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        -f32::NAN,
        f32::from_bits(0x7f80_0001), // signalling NaN, lowest payload bit
        f32::from_bits(0xff80_2000), // payload bit that survives the 13-bit shift
        f32::from_bits(0x7fbf_ffff), // signalling NaN, all payload bits
        f32::from_bits(0x7fc0_0001),
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
        f32::from_bits(1),
        65504.0,
        65519.996,
        65520.0,
        -65520.0,
        65536.0,
        6.103_515_6e-5, // 2^-14, smallest normal f16
        5.960_464_5e-8, // 2^-24, smallest subnormal f16
        2.980_232_2e-8, // 2^-25: ties to zero
        2.980_233e-8,   // just above: rounds to the smallest subnormal
        1.0 + 1.0 / 2048.0,
        1.0 + 3.0 / 2048.0,
    ];
    v.extend(v.clone().iter().map(|x| -x));
    v
}

/// A few million inputs in several distributions; an odd count, not a multiple of 64.
fn encode_inputs(seed: u64) -> Vec<f32> {
    let mut r = rng(seed);
    let mut v = specials();
    for d in Dist::all(32) {
        v.extend(sample(d, 150_000, &mut r));
    }
    v.extend(
        sample(Dist::Huge, 100_000, &mut r)
            .iter()
            .map(|x| x * 100.0),
    ); // past 65504
    v.extend(f16_edges(900_000, &mut r));
    v.extend(random_bits(900_000, &mut r));
    // shuffle so every tile and workgroup sees every class
    for i in (1..v.len()).rev() {
        let j = r.random_range(0..=i);
        v.swap(i, j);
    }
    if v.len() % 2 == 0 {
        v.pop();
    }
    assert!(v.len() > 2_000_000 && v.len() % 64 != 0);
    v
}

/// "n of m disagree" with the first few differences, in 16-bit words.
fn diff_u16(ty: GgmlType, input: &[f32], gpu: &[u8], cpu: &[u8]) -> Result<(), String> {
    assert_eq!(gpu.len(), cpu.len());
    let bad: Vec<usize> = (0..cpu.len() / 2)
        .filter(|&i| gpu[2 * i..2 * i + 2] != cpu[2 * i..2 * i + 2])
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    let show: Vec<String> = bad
        .iter()
        .take(8)
        .map(|&i| {
            let g = u16::from_le_bytes([gpu[2 * i], gpu[2 * i + 1]]);
            let c = u16::from_le_bytes([cpu[2 * i], cpu[2 * i + 1]]);
            format!(
                "[{i}] in {:#010x}: gpu {g:#06x} cpu {c:#06x}",
                input[i].to_bits()
            )
        })
        .collect();
    Err(format!(
        "{ty} encode: {} of {} disagree:\n  {}",
        bad.len(),
        cpu.len() / 2,
        show.join("\n  ")
    ))
}

fn diff_f32(ty: GgmlType, input: &[u8], gpu: &[f32], cpu: &[f32]) -> Result<(), String> {
    assert_eq!(gpu.len(), cpu.len());
    let bad: Vec<usize> = (0..cpu.len())
        .filter(|&i| gpu[i].to_bits() != cpu[i].to_bits())
        .collect();
    if bad.is_empty() {
        return Ok(());
    }
    let show: Vec<String> = bad
        .iter()
        .take(8)
        .map(|&i| {
            let h = u16::from_le_bytes([input[2 * i], input[2 * i + 1]]);
            format!(
                "[{i}] in {h:#06x}: gpu {:#010x} cpu {:#010x}",
                gpu[i].to_bits(),
                cpu[i].to_bits()
            )
        })
        .collect();
    Err(format!(
        "{ty} decode: {} of {} disagree:\n  {}",
        bad.len(),
        cpu.len(),
        show.join("\n  ")
    ))
}

fn check_encode(e: &Engine, ty: GgmlType, input: &[f32], row_len: usize) -> Result<(), String> {
    let mut cpu = vec![0u8; input.len() * 2];
    codec::encode_rows(ty, input, row_len, None, &mut cpu).unwrap();
    let mut gpu = vec![0u8; input.len() * 2];
    e.encode_into(ty, input, row_len, None, &mut gpu).unwrap();
    diff_u16(ty, input, &gpu, &cpu)
}

fn check_decode(e: &Engine, ty: GgmlType, bytes: &[u8], row_len: usize) -> Result<(), String> {
    let n = bytes.len() / 2;
    let mut cpu = vec![0f32; n];
    codec::decode_rows(ty, bytes, row_len, &mut cpu).unwrap();
    let mut gpu = vec![0f32; n];
    e.decode_into(ty, bytes, row_len, &mut gpu).unwrap();
    diff_f32(ty, bytes, &gpu, &cpu)
}

/// Every 16-bit pattern (twice, the second copy shifted by one so each pattern sits in both
/// halves of a word), then random patterns, an odd total.
fn decode_inputs(seed: u64) -> Vec<u8> {
    let mut r = rng(seed);
    let mut words: Vec<u16> = (0..=u16::MAX).collect();
    words.push(0x3c00);
    words.extend(0..=u16::MAX);
    words.extend((0..2_000_001).map(|_| r.random::<u16>()));
    if words.len() % 2 == 0 {
        words.pop();
    }
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

#[test]
fn encode_f16_and_bf16_match_cpu_bit_for_bit() {
    let Some(e) = gpu_engine(RunnerOptions::default()) else {
        return;
    };
    assert!(e.encodes_on_gpu(GgmlType::F16) && e.encodes_on_gpu(GgmlType::BF16));
    let input = encode_inputs(1);
    let n = input.len();
    let mut errors = Vec::new();
    for ty in [GgmlType::F16, GgmlType::BF16] {
        // one long row, rows of 7, rows of 1
        let row7 = if n % 7 == 0 { 7 } else { 1 };
        for row_len in [n, row7, 1] {
            if let Err(m) = check_encode(&e, ty, &input, row_len) {
                errors.push(format!("rows of {row_len}: {m}"));
            }
        }
        let stats = e.gpu().unwrap().last_run();
        assert!(stats.tiles >= 1);
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn decode_f16_and_bf16_match_cpu_bit_for_bit() {
    let Some(e) = gpu_engine(RunnerOptions::default()) else {
        return;
    };
    let bytes = decode_inputs(2);
    let n = bytes.len() / 2;
    let mut errors = Vec::new();
    for ty in [GgmlType::F16, GgmlType::BF16] {
        for row_len in [n, 1] {
            if let Err(m) = check_decode(&e, ty, &bytes, row_len) {
                errors.push(format!("rows of {row_len}: {m}"));
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// Small tiles (many per call, odd byte counts per tile) and a low x-limit that forces 2-D
/// dispatches: the same bits as the CPU, and the pool stays within its budget and stops
/// allocating once warm.
#[test]
fn tiles_and_2d_dispatch_give_the_same_bits() {
    let opts = RunnerOptions {
        budget: 64 << 20,
        workgroup_size: 64,
        max_tile_bytes: Some(1 << 20),
        max_workgroups_x: Some(5),
        poison_output: true,
        tiles_in_flight: 2,
    };
    let Some(e) = gpu_engine(opts) else { return };
    let mut r = rng(3);
    let row_len = 333; // odd: tiles of odd byte counts for 2-byte types
    let rows = 3001;
    let mut input = f16_edges(row_len * rows / 2, &mut r);
    input.extend(random_bits(row_len * rows - input.len(), &mut r));
    let g = e.gpu().unwrap();
    let mut errors = Vec::new();
    for ty in [GgmlType::F16, GgmlType::BF16] {
        if let Err(m) = check_encode(&e, ty, &input, row_len) {
            errors.push(m);
        }
        let s = g.last_run();
        assert!(s.tiles > 1, "{ty}: expected several tiles, got {s:?}");
        assert!(
            s.dispatches_2d > 0,
            "{ty}: expected 2-D dispatches, got {s:?}"
        );
        assert_eq!(
            s.rows_per_tile % 2,
            1,
            "want odd rows per tile for odd tile sizes: {s:?}"
        );
        let enc = e.encode(ty, &input, row_len, None).unwrap();
        if let Err(m) = check_decode(&e, ty, &enc, row_len) {
            errors.push(m);
        }
        assert!(g.last_run().tiles > 1);
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    let before = g.pool().stats();
    assert!(before.allocated <= before.budget, "{before:?}");
    for ty in [GgmlType::F16, GgmlType::BF16] {
        let enc = e.encode(ty, &input, row_len, None).unwrap();
        e.decode(ty, &enc, row_len).unwrap();
    }
    let after = g.pool().stats();
    assert_eq!(
        before.buffers_created, after.buffers_created,
        "steady state must reuse pooled buffers: {before:?} -> {after:?}"
    );
}

/// Rough timing (printed with --nocapture): a few million F16 decodes, GPU vs CPU.
#[test]
fn time_f16_decode_gpu_vs_cpu() {
    let Some(e) = gpu_engine(RunnerOptions::default()) else {
        return;
    };
    let cpu = Engine::new(Backend::Cpu).unwrap();
    let mut r = rng(4);
    let n = 4_194_305;
    let bytes: Vec<u8> = (0..n)
        .flat_map(|_| r.random::<u16>().to_le_bytes())
        .collect();
    let mut out = vec![0f32; n];
    e.decode_into(GgmlType::F16, &bytes, n, &mut out).unwrap(); // warm: pipeline + pool
    let t = std::time::Instant::now();
    e.decode_into(GgmlType::F16, &bytes, n, &mut out).unwrap();
    let gpu_s = t.elapsed().as_secs_f64();
    let mut out2 = vec![0f32; n];
    let t = std::time::Instant::now();
    cpu.decode_into(GgmlType::F16, &bytes, n, &mut out2)
        .unwrap();
    let cpu_s = t.elapsed().as_secs_f64();
    let mut out3 = vec![0f32; n];
    let t = std::time::Instant::now();
    cpu.decode_into(GgmlType::F16, &bytes, 4_194_305 / 5, &mut out3)
        .unwrap();
    let cpu_par_s = t.elapsed().as_secs_f64();
    eprintln!(
        "F16 decode of {n} elements: gpu ({}) {:.1} ms; cpu one row {:.1} ms, \
         5 rows (rayon) {:.1} ms",
        e.gpu().unwrap().context().info.name,
        gpu_s * 1e3,
        cpu_s * 1e3,
        cpu_par_s * 1e3
    );
    assert!(
        out2.iter()
            .zip(&out3)
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
    assert!(
        out.iter()
            .zip(&out2)
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
}
