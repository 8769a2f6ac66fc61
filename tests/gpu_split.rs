//! The gpu+cpu split (`engine::split`) on lavapipe: one call's rows shared between the GPU
//! kernels and the CPU codec at forced shares (0, 0.3, 0.5, 1 and adaptive) give the CPU
//! engine's bytes, every output byte written (outputs pre-filled with a sentinel), each row
//! encoded by exactly one side; decodes too, bit for bit. Operations the GPU does not route
//! are not cut. A whole `quantize` run (Q4_K_M with an importance matrix, expert tensors
//! quantized slice by slice, small tiles) with the split gives the CPU run's file, byte for
//! byte. Also: a warm stream of GPU tiles creates no pipeline, bind group or buffer.
//! lavapipe's timings say nothing about speed; these tests prove bytes only.
//!
//! `GPUQ_TEST_SEED=<u64>` draws fresh data; fails without an adapter unless
//! GPUQ_TEST_ALLOW_NO_GPU=1.
#![cfg(feature = "gpu")]

mod common;

use common::{Dist, python, rng, sample};
use gpuq::engine::{Split, SplitRun};
use gpuq::gpu::codecs::RunnerOptions;
use gpuq::{Backend, Engine, GgmlType};

fn seed() -> u64 {
    let s = std::env::var("GPUQ_TEST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5b11_7000);
    eprintln!("GPUQ_TEST_SEED={s}");
    s
}

/// A GPU engine (poisoned device outputs) with `split`, or `None` to skip.
fn engine(split: Split) -> Option<Engine> {
    let opts = RunnerOptions {
        poison_output: true,
        // several GPU tiles per call even for the GPU's share of a small call
        max_tile_bytes: Some(256 << 10),
        ..RunnerOptions::default()
    };
    match Engine::with_gpu_options(Backend::Gpu, opts) {
        Ok(e) => Some(e.with_split(split).unwrap()),
        Err(e) if std::env::var("GPUQ_TEST_ALLOW_NO_GPU").as_deref() == Ok("1") => {
            eprintln!("skipping: {e} (GPUQ_TEST_ALLOW_NO_GPU=1)");
            None
        }
        Err(e) => panic!("no GPU for the GPU tests: {e}\n(set GPUQ_TEST_ALLOW_NO_GPU=1 to skip)"),
    }
}

fn cpu() -> Engine {
    Engine::new(Backend::Cpu).unwrap()
}

/// Importance weights for a row: positive, spread over decades, some exact zeros.
fn weights(row_len: usize, r: &mut rand::rngs::StdRng) -> Vec<f32> {
    sample(Dist::HeavyTailed, row_len, r)
        .iter()
        .enumerate()
        .map(|(i, v)| if i % 41 == 7 { 0.0 } else { v * v + 1e-3 })
        .collect()
}

/// Encodes through `eng` into a sentinel-filled buffer and through the CPU engine; `Err` names
/// the differing blocks. Checks the split's row accounting when the call was cut.
fn encode_check(
    eng: &Engine,
    ty: GgmlType,
    data: &[f32],
    row_len: usize,
    w: Option<&[f32]>,
    label: &str,
) -> Result<Option<SplitRun>, String> {
    let rows = data.len() / row_len;
    let n = rows * ty.row_bytes(row_len as u64).unwrap() as usize;
    let before = eng.last_split();
    let mut got = vec![0xA5u8; n];
    eng.encode_into(ty, data, row_len, w, &mut got)
        .map_err(|e| format!("{label}: split encode failed: {e}"))?;
    let mut want = vec![0u8; n];
    cpu().encode_into(ty, data, row_len, w, &mut want).unwrap();
    let bb = ty.block_bytes() as usize;
    let diff = common::differing_blocks(&got, &want, bb);
    if !diff.is_empty() {
        return Err(format!(
            "{label}: {ty}: {} of {} blocks differ from the CPU (first {:?}; rows {rows}, {:?})",
            diff.len(),
            n / bb,
            &diff[..diff.len().min(4)],
            eng.last_split()
        ));
    }
    let after = eng.last_split();
    if after == before {
        return Ok(None);
    }
    let run = after.unwrap();
    if run.gpu_rows + run.cpu_rows != rows || run.ty != ty || run.decode {
        return Err(format!(
            "{label}: {ty}: bad row accounting {run:?} for {rows} rows"
        ));
    }
    Ok(Some(run))
}

/// The shapes: (rows, row_len), rows not a multiple of anything convenient.
const SHAPES: [(usize, usize); 2] = [(197, 512), (61, 2304)];

const DISTS: [Dist; 4] = [
    Dist::Normal,
    Dist::Uniform,
    Dist::HeavyTailed,
    Dist::OneOutlierPerBlock(32),
];

#[test]
fn fixed_shares_give_the_cpu_bytes() {
    let mut r = rng(seed());
    let mut failures = Vec::new();
    let mut checks = 0;
    for share in [0.0, 0.3, 0.5, 1.0] {
        let Some(eng) = engine(Split::Fixed(share)) else {
            return;
        };
        assert!(
            eng.describe().contains("gpu+cpu split"),
            "{}",
            eng.describe()
        );
        for ty in [
            GgmlType::Q4_0,
            GgmlType::Q8_0,
            GgmlType::Q4_K,
            GgmlType::Q6_K,
        ] {
            for dist in DISTS {
                for (rows, row_len) in SHAPES {
                    let data = sample(dist, rows * row_len, &mut r);
                    let label = format!("share {share} {dist:?} {rows}x{row_len}");
                    checks += 1;
                    match encode_check(&eng, ty, &data, row_len, None, &label) {
                        Ok(Some(run)) => {
                            let g = (share * rows as f64).round() as usize;
                            assert_eq!(run.gpu_rows, g, "{label}: {run:?}");
                            if g > 0 {
                                let tiles = eng.gpu().unwrap().last_run().tiles;
                                assert!(tiles >= 1, "{label}: the GPU ran no tile");
                            }
                        }
                        Ok(None) => failures.push(format!("{label}: {ty}: the call was not cut")),
                        Err(e) => failures.push(e),
                    }
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checks} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{checks} split encodes equal the CPU's bytes");
}

/// Importance-weighted k-quant encodes (the GPU takes the weights) cut at several shares;
/// weighted Q4_0 has no GPU kernel, so its calls are not cut.
#[test]
fn weighted_encodes_give_the_cpu_bytes() {
    let mut r = rng(seed() ^ 0x77);
    let mut failures = Vec::new();
    for share in [0.0, 0.3, 0.5, 1.0] {
        let Some(eng) = engine(Split::Fixed(share)) else {
            return;
        };
        for ty in [GgmlType::Q4_K, GgmlType::Q6_K] {
            assert!(eng.encodes_on_gpu_with(ty, true));
            for dist in [Dist::Normal, Dist::HeavyTailed] {
                let (rows, row_len) = (101, 1280);
                let data = sample(dist, rows * row_len, &mut r);
                let w = weights(row_len, &mut r);
                let label = format!("weighted share {share} {dist:?}");
                match encode_check(&eng, ty, &data, row_len, Some(&w), &label) {
                    Ok(Some(_)) => {}
                    Ok(None) => failures.push(format!("{label}: {ty}: not cut")),
                    Err(e) => failures.push(e),
                }
            }
        }
        assert!(!eng.encodes_on_gpu_with(GgmlType::Q4_0, true));
        let data = sample(Dist::Normal, 37 * 512, &mut r);
        let w = weights(512, &mut r);
        match encode_check(&eng, GgmlType::Q4_0, &data, 512, Some(&w), "weighted Q4_0") {
            Ok(None) => {}
            Ok(Some(run)) => failures.push(format!("weighted Q4_0 was cut: {run:?}")),
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Decodes cut at several shares: the CPU's f32 bits, every element written (NaN sentinel).
#[test]
fn split_decodes_give_the_cpu_bits() {
    let mut r = rng(seed() ^ 0xdec);
    let mut failures = Vec::new();
    for share in [0.0, 0.3, 0.5, 1.0] {
        let Some(eng) = engine(Split::Fixed(share)) else {
            return;
        };
        for ty in [
            GgmlType::Q4_0,
            GgmlType::Q8_0,
            GgmlType::Q4_K,
            GgmlType::Q6_K,
        ] {
            let (rows, row_len) = (173, 768);
            let data = sample(Dist::HeavyTailed, rows * row_len, &mut r);
            let bytes = cpu().encode(ty, &data, row_len, None).unwrap();
            let mut got = vec![f32::from_bits(0x7fa5_a5a5); data.len()];
            eng.decode_into(ty, &bytes, row_len, &mut got).unwrap();
            let want = cpu().decode(ty, &bytes, row_len).unwrap();
            let bad = got
                .iter()
                .zip(&want)
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count();
            if bad > 0 {
                failures.push(format!("share {share} {ty}: {bad} decoded values differ"));
            }
            let run = eng.last_split().unwrap();
            assert!(run.decode && run.ty == ty, "{run:?}");
            assert_eq!(run.gpu_rows, (share * rows as f64).round() as usize);
            assert_eq!(run.gpu_rows + run.cpu_rows, rows);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The adaptive split on calls large enough to be cut: the CPU's bytes on every call, both
/// sides get rows, and the share moves from its starting guess to the measured rates.
#[test]
fn adaptive_split_gives_the_cpu_bytes_and_adapts() {
    let Some(eng) = engine(Split::Adaptive) else {
        return;
    };
    assert!(eng.describe().contains("adaptive"), "{}", eng.describe());
    let mut r = rng(seed() ^ 0xada);
    let (rows, row_len) = (263, 1024); // 269312 elements: just past the smallest cut call
    let ty = GgmlType::Q4_K;
    let start = eng.split_share(ty, false, false);
    assert_eq!(start, gpuq::engine::split::START_SHARE);
    let mut failures = Vec::new();
    let mut runs = Vec::new();
    for (k, dist) in [Dist::Normal, Dist::Uniform, Dist::HeavyTailed, Dist::Normal]
        .into_iter()
        .enumerate()
    {
        let data = sample(dist, rows * row_len, &mut r);
        match encode_check(&eng, ty, &data, row_len, None, &format!("adaptive {k}")) {
            Ok(Some(run)) => runs.push(run),
            Ok(None) => failures.push(format!("adaptive {k}: not cut")),
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    for run in &runs {
        eprintln!(
            "share {:.3}: GPU {} rows in {:.3} s, CPU {} rows in {:.3} s (lavapipe: not a speed)",
            run.share, run.gpu_rows, run.gpu_seconds, run.cpu_rows, run.cpu_seconds
        );
        assert!(run.gpu_rows > 0 && run.cpu_rows > 0, "{run:?}");
    }
    // the first call is the warm-up (not measured): the second runs at the start share too
    assert_eq!((runs[0].share, runs[1].share), (start, start));
    let now = eng.split_share(ty, false, false);
    assert!(now != start, "the share did not move from {start}");
    let lo = gpuq::engine::split::MIN_SHARE;
    assert!((lo..=1.0 - lo).contains(&now), "{now}");
    // a small call is not cut: the GPU runs it alone
    let small = sample(Dist::Normal, 8 * 256, &mut r);
    let before = eng.last_split();
    encode_check(&eng, ty, &small, 256, None, "small").unwrap();
    assert_eq!(eng.last_split(), before);
}

/// Off (the `--backend gpu` default): calls are never cut.
#[test]
fn gpu_backend_does_not_split_by_default() {
    if std::env::var("GPUQ_GPU_SPLIT").is_ok() {
        return;
    }
    let Some(eng) = engine(Split::Off) else {
        return;
    };
    let plain = Engine::new(Backend::Gpu).unwrap();
    assert_eq!(plain.split(), Split::Off);
    assert!(!plain.describe().contains("split"), "{}", plain.describe());
    assert!(Engine::new(Backend::Cpu).unwrap().split() == Split::Off);
    assert!(
        plain.with_split(Split::Fixed(1.5)).is_err(),
        "a share past 1"
    );
    let data = sample(Dist::Normal, 300 * 1024, &mut rng(5));
    encode_check(&eng, GgmlType::Q8_0, &data, 1024, None, "off").unwrap();
    assert_eq!(eng.last_split(), None);
}

/// After a warm-up, a stream of GPU tiles of one shape builds no pipeline, no bind group and
/// no buffer: everything comes from the caches and the pool.
#[test]
fn warm_tiles_create_nothing() {
    let Some(eng) = engine(Split::Off) else {
        return;
    };
    let g = eng.gpu().unwrap();
    let mut r = rng(seed() ^ 0x3a);
    let (rows, row_len) = (300, 1024);
    let w = weights(row_len, &mut r);
    let inputs: Vec<Vec<f32>> = (0..4)
        .map(|_| sample(Dist::Normal, rows * row_len, &mut r))
        .collect();
    let run = |data: &[f32]| {
        for (ty, w) in [
            (GgmlType::Q4_K, Some(&w[..])),
            (GgmlType::Q8_0, None),
            (GgmlType::Q6_K, None),
        ] {
            encode_check(&eng, ty, data, row_len, w, "warm").unwrap();
        }
    };
    run(&inputs[0]);
    run(&inputs[1]);
    let tiles = g.last_run().tiles;
    assert!(tiles > 2, "want several tiles per call: {tiles}");
    let (pipelines, groups, buffers) = (
        g.kernels().len(),
        g.bind_groups_created(),
        g.pool().stats().buffers_created,
    );
    run(&inputs[2]);
    run(&inputs[3]);
    assert_eq!(g.kernels().len(), pipelines, "pipelines built when warm");
    assert_eq!(
        g.bind_groups_created(),
        groups,
        "bind groups created when warm"
    );
    assert_eq!(
        g.pool().stats().buffers_created,
        buffers,
        "buffers created when warm"
    );
    eprintln!("{pipelines} pipelines, {groups} bind groups, {buffers} buffers for 12 calls");
}

const FIXTURE: &str = include_str!("py/llama_fixture.py");

/// A whole quantize run (Q4_K_M with an importance matrix; expert tensors, whose imatrix
/// weights differ per slice; small tiles) with the split forced at one half and adaptive
/// gives the CPU run's file byte for byte.
#[test]
fn quantize_with_the_split_gives_the_cpu_file() {
    let Some(half) = engine(Split::Fixed(0.5)) else {
        return;
    };
    let adaptive = engine(Split::Adaptive).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model-f16.gguf");
    let m = model.to_str().unwrap();
    python(
        FIXTURE,
        &[
            "make",
            m,
            "--layers",
            "2",
            "--embd",
            "512",
            "--ff",
            "1024",
            "--experts",
            "4",
            "--seed",
            "31",
        ],
    );
    let imat = dir.path().join("imatrix.gguf");
    python(
        FIXTURE,
        &["imatrix", m, imat.to_str().unwrap(), "--seed", "9"],
    );
    let src = gpuq::model::GgufSource::open(&model).unwrap();
    let run = |eng: &Engine, name: &str| {
        let mut opts = gpuq::QuantizeOptions::new("Q4_K_M").unwrap();
        // several tiles per tensor; the expert slices (2^19 elements) are cut when adaptive
        opts.max_memory = 4 << 20;
        let im = gpuq::formats::imatrix::Imatrix::load(&imat).unwrap();
        opts.set_imatrix(im, &imat);
        let out = dir.path().join(name);
        gpuq::quantize(&src, &out, eng, &opts, &gpuq::pipeline::Quiet).unwrap();
        std::fs::read(&out).unwrap()
    };
    let want = run(&cpu(), "cpu.gguf");
    let got = run(&half, "half.gguf");
    assert!(half.last_split().is_some(), "no call was cut");
    assert!(
        got == want,
        "split 0.5: the file differs from the CPU run's"
    );
    let got = run(&adaptive, "adaptive.gguf");
    assert!(adaptive.last_split().is_some(), "no adaptive call was cut");
    assert!(
        got == want,
        "adaptive split: the file differs from the CPU run's"
    );
    eprintln!(
        "quantize: {} bytes equal (last adaptive cut: {:?})",
        want.len(),
        adaptive.last_split()
    );
}
