//! shaders/legacy.wgsl on the GPU (lavapipe in CI) against the CPU references, through
//! `Engine` with `Backend::Gpu`: encode byte for byte (`quantize_row_X_ref`), decode bit for
//! bit (`dequantize_row_X`), on every `Dist`, rows of several lengths (odd block counts, so
//! 2-block encoder groups end half full), tile sizes that are not multiples of the workgroup,
//! tiling forced by a small binding cap and 2-D dispatch. Weighted (imatrix) encodes must be
//! routed to the CPU codec (the legacy kernels take no weights).
//!
//! `GPUQ_TEST_SEED=<u64>` draws fresh data; the seed in use is printed.
#![cfg(feature = "gpu")]

mod common;
mod gpu_diff;

use common::{Dist, rng, sample};
use gpu_diff::{decode_diff, encode_diff, gpu_engine, random_blocks, report};
use gpuq::GgmlType;
use gpuq::gpu::codecs::RunnerOptions;

const TYPES: [(GgmlType, &[usize]); 5] = [
    (GgmlType::Q4_0, &[0]),
    (GgmlType::Q4_1, &[0, 2]),
    (GgmlType::Q5_0, &[0]),
    (GgmlType::Q5_1, &[0, 2]),
    (GgmlType::Q8_0, &[0]),
];

fn seed() -> u64 {
    let s = std::env::var("GPUQ_TEST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x001e_9ac7);
    eprintln!("GPUQ_TEST_SEED={s}");
    s
}

/// (row_len, rows): odd and even blocks per row, odd totals, one block, long rows.
const SHAPES: [(usize, usize); 5] = [(32, 1), (96, 7), (224, 13), (4096, 3), (544, 65)];

#[test]
fn legacy_gpu_equals_cpu_on_every_distribution() {
    let eng = gpu_engine(RunnerOptions::default());
    let mut r = rng(seed());
    let (mut failures, mut checks, mut blocks) = (Vec::new(), 0, 0);
    for (ty, f16_offsets) in TYPES {
        assert!(
            eng.encodes_on_gpu(ty) && eng.decodes_on_gpu(ty),
            "{ty} not on the GPU"
        );
        for dist in Dist::all(32) {
            for (row_len, rows) in SHAPES {
                let data = sample(dist, row_len * rows, &mut r);
                let label = format!("{dist:?} rows {rows}x{row_len}");
                checks += 2;
                match encode_diff(&eng, ty, &data, row_len, None, &label) {
                    Ok(n) => blocks += n,
                    Err(e) => failures.push(e),
                }
                let mut cpu = vec![0u8; rows * ty.row_bytes(row_len as u64).unwrap() as usize];
                gpuq::codec::encode_rows(ty, &data, row_len, None, &mut cpu).unwrap();
                if let Err(e) = decode_diff(&eng, ty, &cpu, row_len, &label) {
                    failures.push(e);
                }
            }
        }
        // random blocks: every bit pattern of levels and scales
        let raw = random_blocks(ty, 3 * 1001, f16_offsets, &mut r);
        checks += 1;
        if let Err(e) = decode_diff(&eng, ty, &raw, 96, "random blocks") {
            failures.push(e);
        }
    }
    eprintln!("{blocks} blocks encoded on the GPU");
    report(&failures, checks);
}

#[test]
fn legacy_gpu_tiles_and_2d_dispatch_keep_the_bytes() {
    // A tile cap of ~3 KiB forces many tiles (of a row count unrelated to the workgroup
    // size, 3 invocations of 3 left over); at most 2 workgroups along x forces 2-D dispatch.
    let eng = gpu_engine(RunnerOptions {
        max_tile_bytes: Some(3000),
        max_workgroups_x: Some(2),
        workgroup_size: 4,
        ..RunnerOptions::default()
    });
    let mut r = rng(seed() ^ 0x7117);
    let (mut failures, mut checks) = (Vec::new(), 0);
    for (ty, _) in TYPES {
        let (row_len, rows) = (160, 301); // 5 blocks per row
        let data = sample(Dist::HeavyTailed, row_len * rows, &mut r);
        checks += 2;
        if let Err(e) = encode_diff(&eng, ty, &data, row_len, None, "tiled") {
            failures.push(e);
        }
        let stats = eng.gpu().unwrap().last_run();
        assert!(
            stats.tiles > 1 && stats.dispatches_2d > 0,
            "{ty}: {stats:?}"
        );
        let bytes = eng.encode(ty, &data, row_len, None).unwrap();
        if let Err(e) = decode_diff(&eng, ty, &bytes, row_len, "tiled") {
            failures.push(e);
        }
        let stats = eng.gpu().unwrap().last_run();
        assert!(
            stats.tiles > 1 && stats.dispatches_2d > 0,
            "{ty}: {stats:?}"
        );
    }
    report(&failures, checks);
}

#[test]
fn legacy_weighted_encodes_go_to_the_cpu_codec() {
    let eng = gpu_engine(RunnerOptions::default());
    let mut r = rng(seed() ^ 0x3e16);
    for (ty, _) in TYPES {
        assert!(
            !eng.encodes_on_gpu_with(ty, true),
            "{ty}: the legacy kernels take no weights"
        );
        let row_len = 128;
        let data = sample(Dist::Normal, row_len * 9, &mut r);
        let w: Vec<f32> = sample(Dist::Uniform, row_len, &mut r)
            .iter()
            .map(|v| v.abs() + 0.01)
            .collect();
        let got = eng.encode(ty, &data, row_len, Some(&w)).unwrap();
        let mut want = vec![0u8; got.len()];
        gpuq::codec::encode_rows(ty, &data, row_len, Some(&w), &mut want).unwrap();
        assert_eq!(got, want, "{ty}: weighted encode");
        // and the runner itself refuses weights for a kernel that ignores them
        let mut dst = vec![0u8; got.len()];
        assert!(
            eng.gpu()
                .unwrap()
                .encode(ty, &data, row_len, Some(&w), &mut dst)
                .is_err()
        );
    }
}

/// Rough GPU (lavapipe) vs CPU throughput, once; `cargo test --test gpu_legacy -- --ignored
/// --nocapture`.
#[test]
#[ignore]
fn legacy_throughput() {
    let eng = gpu_engine(RunnerOptions::default());
    let cpu = gpuq::Engine::new(gpuq::Backend::Cpu).unwrap();
    let mut r = rng(1);
    let row_len = 4096;
    let data = sample(Dist::Normal, row_len * 1024, &mut r);
    let in_bytes = data.len() * 4;
    for (ty, _) in TYPES {
        let enc = eng.encode(ty, &data, row_len, None).unwrap();
        let ge = gpu_diff::gbps(in_bytes, || {
            drop(eng.encode(ty, &data, row_len, None).unwrap())
        });
        let ce = gpu_diff::gbps(in_bytes, || {
            drop(cpu.encode(ty, &data, row_len, None).unwrap())
        });
        let gd = gpu_diff::gbps(enc.len(), || drop(eng.decode(ty, &enc, row_len).unwrap()));
        let cd = gpu_diff::gbps(enc.len(), || drop(cpu.decode(ty, &enc, row_len).unwrap()));
        eprintln!(
            "{ty}: encode GPU {ge:.3} CPU {ce:.3} GB/s (f32 in); decode GPU {gd:.3} CPU {cd:.3} GB/s (blocks in)"
        );
    }
}

/// Two tiles in flight must fit the staging budget whatever the pool holds from earlier calls:
/// a large encode (wide f32 source tiles) followed by a decode of another type (wide f32
/// output tiles), as `gpuq bench codecs` runs them. Reusing the earlier calls' larger idle
/// buffers for the new tiles once overran the budget here ("staging pool: … does not fit").
#[test]
fn tiles_in_flight_stay_within_the_pool_budget_across_calls() {
    let budget = 64 << 20;
    let eng = gpu_engine(RunnerOptions {
        budget,
        ..RunnerOptions::default()
    });
    let mut r = rng(seed() ^ 0x9001);
    let row_len = 4096;
    let rows = 3072; // 48 MiB of f32: several tiles at this budget
    let data = sample(Dist::Normal, row_len * rows, &mut r);
    let mut failures = Vec::new();
    if let Err(e) = encode_diff(&eng, GgmlType::Q8_0, &data, row_len, None, "budget") {
        failures.push(e);
    }
    let q8 = eng.gpu().unwrap().last_run();
    assert!(q8.tiles > 2, "want several Q8_0 tiles: {q8:?}");
    let mut q4k = vec![0u8; GgmlType::Q4_K.row_bytes(row_len as u64).unwrap() as usize * rows];
    gpuq::codec::encode_rows(GgmlType::Q4_K, &data, row_len, None, &mut q4k).unwrap();
    if let Err(e) = decode_diff(&eng, GgmlType::Q4_K, &q4k, row_len, "budget") {
        failures.push(e);
    }
    let dec = eng.gpu().unwrap().last_run();
    assert!(dec.tiles > 2, "want several Q4_K decode tiles: {dec:?}");
    let pool = eng.gpu().unwrap().pool().stats();
    assert!(pool.allocated <= budget, "{pool:?}");
    report(&failures, 2);
}
