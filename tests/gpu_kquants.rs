//! shaders/kquants.wgsl on the GPU (lavapipe in CI) against the CPU references in
//! src/codec/kquants/, through `Engine` with `Backend::Gpu`: decode bit for bit for all five
//! k-quants (encoder output and random blocks), encode byte for byte for all five
//! (unweighted `quantize_row_qX_K_ref`, weighted `quantize_row_qX_K_impl` with importance
//! weights) on every `Dist`, rows of 256..16384 elements (odd block counts, so Q3_K/Q6_K pairs
//! end half full), at several workgroup sizes, and on edge data; differing blocks are counted
//! per type and mode. Also the Rust twin of common.wgsl's integer `soft_sqrt` against IEEE.
//!
//! `GPUQ_TEST_SEED=<u64>` draws fresh data; the seed in use is printed.
#![cfg(feature = "gpu")]

mod common;
mod gpu_diff;

use common::{Dist, rng, sample};
use gpu_diff::{decode_diff, encode_diff, encode_diff_counts, gpu_engine, random_blocks, report};
use gpuq::GgmlType;
use gpuq::gpu::codecs::{RunnerOptions, can_encode, can_encode_with};

/// (type, byte offsets of its f16 fields)
const TYPES: [(GgmlType, &[usize]); 5] = [
    (GgmlType::Q2_K, &[80, 82]),
    (GgmlType::Q3_K, &[108]),
    (GgmlType::Q4_K, &[0, 2]),
    (GgmlType::Q5_K, &[0, 2]),
    (GgmlType::Q6_K, &[208]),
];

/// (row_len, rows): 1 block, odd block counts (Q6_K/Q3_K pairs end half full), long rows.
const SHAPES: [(usize, usize); 4] = [(256, 1), (768, 3), (2560, 5), (16384, 2)];

fn seed() -> u64 {
    let s = std::env::var("GPUQ_TEST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x006b_0a17);
    eprintln!("GPUQ_TEST_SEED={s}");
    s
}

/// Importance weights for a row: positive, spread over decades, with some exact zeros.
fn weights(row_len: usize, r: &mut rand::rngs::StdRng) -> Vec<f32> {
    sample(Dist::HeavyTailed, row_len, r)
        .iter()
        .enumerate()
        .map(|(i, v)| if i % 37 == 5 { 0.0 } else { v * v + 1e-3 })
        .collect()
}

#[test]
fn kquants_gpu_decode_equals_cpu() {
    let eng = gpu_engine(RunnerOptions::default());
    let mut r = rng(seed());
    let (mut failures, mut checks) = (Vec::new(), 0);
    for (ty, f16_offsets) in TYPES {
        assert!(eng.decodes_on_gpu(ty), "{ty}: no GPU decoder");
        for dist in Dist::all(256) {
            for (row_len, rows) in SHAPES {
                let data = sample(dist, row_len * rows, &mut r);
                let mut bytes = vec![0u8; rows * ty.row_bytes(row_len as u64).unwrap() as usize];
                gpuq::codec::encode_rows(ty, &data, row_len, None, &mut bytes).unwrap();
                checks += 1;
                let label = format!("{dist:?} rows {rows}x{row_len}");
                if let Err(e) = decode_diff(&eng, ty, &bytes, row_len, &label) {
                    failures.push(e);
                }
            }
        }
        let raw = random_blocks(ty, 3 * 331, f16_offsets, &mut r);
        checks += 1;
        if let Err(e) = decode_diff(&eng, ty, &raw, 768, "random blocks") {
            failures.push(e);
        }
    }
    report(&failures, checks);
}

/// Options of the encode tests: the device output buffer is poisoned before each dispatch,
/// so a word the kernel does not write (as when llvmpipe's loop budget runs out, see
/// common.wgsl LOOP BUDGET) differs from the CPU's bytes whatever the pool held before.
fn encode_opts(workgroup_size: u32) -> RunnerOptions {
    RunnerOptions {
        workgroup_size,
        poison_output: true,
        ..RunnerOptions::default()
    }
}

/// Blocks compared and blocks differing per (type, weighted).
#[derive(Default)]
struct Tally(Vec<(GgmlType, bool, usize, usize)>);

impl Tally {
    fn add(&mut self, ty: GgmlType, weighted: bool, c: &gpu_diff::EncodeCounts) {
        match self.0.iter_mut().find(|t| t.0 == ty && t.1 == weighted) {
            Some(t) => {
                t.2 += c.blocks;
                t.3 += c.differing;
            }
            None => self.0.push((ty, weighted, c.blocks, c.differing)),
        }
    }

    fn print(&self, what: &str) {
        for &(ty, weighted, blocks, differing) in &self.0 {
            eprintln!(
                "{what}: {ty} {}: {differing} of {blocks} blocks differ",
                if weighted { "weighted" } else { "unweighted" }
            );
        }
    }
}

#[test]
fn kquants_gpu_encode_equals_cpu() {
    let eng = gpu_engine(encode_opts(RunnerOptions::default().workgroup_size));
    let mut r = rng(seed() ^ 0xe4c0);
    let (mut failures, mut checks) = (Vec::new(), 0);
    let mut tally = Tally::default();
    let mut on_gpu = Vec::new();
    for (ty, _) in TYPES {
        if !can_encode(ty) {
            continue;
        }
        on_gpu.push(ty);
        for weighted in [false, true] {
            let gpu_path = can_encode_with(ty, weighted);
            assert_eq!(eng.encodes_on_gpu_with(ty, weighted), gpu_path);
            for dist in Dist::all(256) {
                for (row_len, rows) in SHAPES {
                    let data = sample(dist, row_len * rows, &mut r);
                    let w = weighted.then(|| weights(row_len, &mut r));
                    let label = format!(
                        "{dist:?} rows {rows}x{row_len} {} ({})",
                        if weighted { "weighted" } else { "unweighted" },
                        if gpu_path {
                            "GPU kernel"
                        } else {
                            "routed to CPU"
                        }
                    );
                    checks += 1;
                    let c = encode_diff_counts(&eng, ty, &data, row_len, w.as_deref(), &label);
                    tally.add(ty, weighted, &c);
                    failures.extend(c.message);
                }
            }
        }
    }
    // every k-quant has a GPU encoder, weighted and unweighted
    for (ty, _) in TYPES {
        assert!(on_gpu.contains(&ty), "{ty}: no GPU encoder");
        assert!(
            can_encode_with(ty, true),
            "{ty}: weighted encodes go to the CPU"
        );
    }
    tally.print("GPU vs CPU encode");
    report(&failures, checks);
}

/// The encoders at several workgroup sizes: each lane carries its own blocks through loops
/// whose trip counts depend on the data (coordinate descent, accepted trials), so lanes of
/// one SIMD group diverge; the bytes must not depend on it. (Before the loop-free soft_div /
/// soft_sqrt, llvmpipe's shared loop budget ran out in whole SIMD groups at sizes >= 4.)
#[test]
fn kquants_gpu_encode_any_workgroup_size() {
    let mut r = rng(seed() ^ 0x0057_e1a1);
    for wg in [1u32, 8, 256] {
        let eng = gpu_engine(encode_opts(wg));
        let (mut failures, mut checks) = (Vec::new(), 0);
        let mut tally = Tally::default();
        for (ty, _) in TYPES {
            for weighted in [false, true] {
                for dist in [Dist::HeavyTailed, Dist::Uniform, Dist::ZeroBlocks(256)] {
                    let (row_len, rows) = (4096, 3);
                    let data = sample(dist, row_len * rows, &mut r);
                    let w = weighted.then(|| weights(row_len, &mut r));
                    checks += 1;
                    let label = format!("{dist:?} weighted {weighted}, workgroup size {wg}");
                    let c = encode_diff_counts(&eng, ty, &data, row_len, w.as_deref(), &label);
                    tally.add(ty, weighted, &c);
                    failures.extend(c.message);
                }
            }
        }
        tally.print(&format!("workgroup size {wg}"));
        report(&failures, checks);
    }
}

/// Edge data: constant rows, zero rows, single spikes, sub-f16 and beyond-f16 magnitudes.
#[test]
fn kquants_gpu_encode_edge_cases() {
    let eng = gpu_engine(encode_opts(RunnerOptions::default().workgroup_size));
    let mut r = rng(seed() ^ 0xed6e);
    let row_len = 1024;
    let mut cases: Vec<(&str, Vec<f32>)> = vec![
        ("zeros", vec![0.0; row_len]),
        ("constant", vec![0.37; row_len]),
        ("negative constant", vec![-2.5; row_len]),
    ];
    let mut spike = vec![0.0f32; row_len];
    spike[300] = 7.0;
    spike[900] = -1e-3;
    cases.push(("spikes", spike));
    cases.push((
        "sub-f16",
        sample(Dist::Normal, row_len, &mut r)
            .iter()
            .map(|v| v * 1e-9)
            .collect(),
    ));
    cases.push((
        "beyond-f16",
        sample(Dist::Normal, row_len, &mut r)
            .iter()
            .map(|v| v * 1e6)
            .collect(),
    ));
    cases.push((
        "integers",
        (0..row_len)
            .map(|i| ((i * 7919) % 17) as f32 - 8.0)
            .collect(),
    ));
    let (mut failures, mut checks) = (Vec::new(), 0);
    for (ty, _) in TYPES {
        if !can_encode(ty) {
            continue;
        }
        for (name, data) in &cases {
            for weighted in [false, true] {
                let w = weighted.then(|| weights(row_len, &mut r));
                checks += 1;
                if let Err(e) = encode_diff(&eng, ty, data, row_len, w.as_deref(), name) {
                    failures.push(e);
                }
            }
        }
    }
    report(&failures, checks);
}

/// Rough GPU (lavapipe) vs CPU throughput, once; `cargo test --test gpu_kquants -- --ignored
/// --nocapture`.
#[test]
#[ignore]
fn kquants_throughput() {
    let eng = gpu_engine(RunnerOptions::default());
    let cpu = gpuq::Engine::new(gpuq::Backend::Cpu).unwrap();
    let mut r = rng(1);
    let row_len = 4096;
    let data = sample(Dist::Normal, row_len * 256, &mut r);
    let in_bytes = data.len() * 4;
    for (ty, _) in TYPES {
        let enc = cpu.encode(ty, &data, row_len, None).unwrap();
        let mut line = format!("{ty}:");
        if can_encode(ty) {
            let ge = gpu_diff::gbps(in_bytes, || {
                drop(eng.encode(ty, &data, row_len, None).unwrap())
            });
            let ce = gpu_diff::gbps(in_bytes, || {
                drop(cpu.encode(ty, &data, row_len, None).unwrap())
            });
            line += &format!(" encode GPU {ge:.4} CPU {ce:.4} GB/s (f32 in);");
        }
        let gd = gpu_diff::gbps(enc.len(), || drop(eng.decode(ty, &enc, row_len).unwrap()));
        let cd = gpu_diff::gbps(enc.len(), || drop(cpu.decode(ty, &enc, row_len).unwrap()));
        line += &format!(" decode GPU {gd:.3} CPU {cd:.3} GB/s (blocks in)");
        eprintln!("{line}");
    }
}

/// The Rust twin of common.wgsl's `soft_sqrt` (tests/common/soft_float.rs).
#[path = "common/soft_float.rs"]
mod soft;

#[test]
fn wgsl_integer_sqrt_equals_ieee() {
    use rand::Rng;
    let mut r = rng(0x0005_09e7);
    let check = |a: u32| {
        let want = f32::from_bits(a).sqrt();
        let got = soft::sqrt(a);
        assert!(
            want.to_bits() == got || (want.is_nan() && f32::from_bits(got).is_nan()),
            "sqrt({:e} = {a:#010x}): ieee {want:e}, soft {:e}",
            f32::from_bits(a),
            f32::from_bits(got)
        );
    };
    for a in [
        0u32,
        1,
        2,
        3,
        0x7f_ffff,
        0x80_0000,
        0x3f80_0000,
        0x4080_0000,
        0x7f7f_ffff,
        0x7f80_0000,
        0x8000_0000,
        0xbf80_0000,
        0x7fc0_0000,
    ] {
        check(a);
    }
    for _ in 0..1_000_000 {
        check(r.random::<u32>() & 0x7fff_ffff);
    }
    // perfect squares and their neighbours (exact results, ties cannot occur)
    for i in 1..100_000u32 {
        let sq = (i as f32) * (i as f32);
        for d in [-1i32, 0, 1] {
            check((sq.to_bits() as i32 + d) as u32);
        }
    }
}
