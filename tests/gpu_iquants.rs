//! The kernels of the i-quant, non-linear, FP4 and low-bit families (shaders/iquants.wgsl,
//! nonlinear.wgsl, fp4.wgsl, q1_0.wgsl) on the GPU (lavapipe in CI) against the CPU codecs,
//! through `Engine` with `Backend::Gpu`:
//! - decode bit for bit for every new type (IQ1_S .. IQ3_S, IQ4_NL, IQ4_XS, MXFP4, NVFP4, Q1_0,
//!   Q2_0), on the CPU encoders' output for every `Dist` and on random blocks (every bit
//!   pattern of indices, signs and scales, finite scales);
//! - encode byte for byte for IQ4_NL and IQ4_XS (unweighted and with importance weights),
//!   MXFP4, NVFP4, Q1_0 and Q2_0 (unweighted; their weighted calls must be routed to the CPU
//!   codec, as ggml ignores the weights), on every `Dist`, edge data (MXFP4 exponent steps,
//!   subnormal and tiny blocks, E4M3 rounding boundaries, constant and zero rows) and row
//!   counts that are not multiples of the workgroup;
//! - tiles (a small binding cap), 2-D dispatch and odd workgroup sizes keep the bytes, with
//!   the lookup table and the weights sharing binding 3;
//! - the engine routes each new type's decode to the GPU, and the grid types' encodes to the
//!   CPU (the routing table, `gpuq info`).
//!
//! Every GPU output is pre-filled (host buffer and device buffer: `poison_output`) so an
//! unwritten element fails. Differing blocks are counted per type and mode.
//! `GPUQ_TEST_SEED=<u64>` draws fresh data; the seed in use is printed.
#![cfg(feature = "gpu")]

mod common;
mod gpu_diff;

use common::{Dist, rng, sample};
use gpu_diff::{decode_diff, encode_diff_counts, gpu_engine, random_blocks, report};
use gpuq::GgmlType;
use gpuq::engine::compute::Op;
use gpuq::gpu::codecs::RunnerOptions;
use rand::Rng;
use rand::rngs::StdRng;

/// The types whose GPU encoder the tests compare, with whether it takes importance weights.
const ENCODERS: [(GgmlType, bool); 6] = [
    (GgmlType::IQ4_NL, true),
    (GgmlType::IQ4_XS, true),
    (GgmlType::MXFP4, false),
    (GgmlType::NVFP4, false),
    (GgmlType::Q1_0, false),
    (GgmlType::Q2_0, false),
];

/// The grid i-quants: GPU decoders, CPU encoders.
const GRID: [GgmlType; 7] = [
    GgmlType::IQ2_XXS,
    GgmlType::IQ2_XS,
    GgmlType::IQ2_S,
    GgmlType::IQ3_XXS,
    GgmlType::IQ3_S,
    GgmlType::IQ1_S,
    GgmlType::IQ1_M,
];

fn seed() -> u64 {
    let s = std::env::var("GPUQ_TEST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x0019_4a15);
    eprintln!("GPUQ_TEST_SEED={s}");
    s
}

fn all_new_types() -> Vec<GgmlType> {
    GRID.iter()
        .copied()
        .chain(ENCODERS.iter().map(|e| e.0))
        .collect()
}

/// Options with the device output poisoned before each dispatch.
fn opts(workgroup_size: u32) -> RunnerOptions {
    RunnerOptions {
        workgroup_size,
        poison_output: true,
        ..RunnerOptions::default()
    }
}

/// Importance weights for a row: positive, spread over decades, with some exact zeros.
fn weights(row_len: usize, r: &mut StdRng) -> Vec<f32> {
    sample(Dist::HeavyTailed, row_len, r)
        .iter()
        .enumerate()
        .map(|(i, v)| if i % 37 == 5 { 0.0 } else { v * v + 1e-3 })
        .collect()
}

/// Random blocks of `ty` with every scale field finite (the decoders see every bit pattern of
/// indices, signs and sub-block scales).
fn random_new_blocks(ty: GgmlType, n_blocks: usize, r: &mut StdRng) -> Vec<u8> {
    match ty {
        // the f16 scale is assembled from the top nibbles of the four scale u16s
        GgmlType::IQ1_M => {
            let mut v = random_blocks(ty, n_blocks, &[], r);
            for blk in v.chunks_mut(56) {
                let h: u16 = r.random::<u16>() & 0xbfff;
                for i in 0..4 {
                    let o = 48 + 2 * i + 1;
                    blk[o] = (blk[o] & 0x0f) | ((((h >> (4 * i)) & 0xf) as u8) << 4);
                }
            }
            v
        }
        // E8M0 and E4M3 scales: every byte is a finite scale
        GgmlType::MXFP4 | GgmlType::NVFP4 => random_blocks(ty, n_blocks, &[], r),
        _ => random_blocks(ty, n_blocks, &[0], r),
    }
}

/// (row_len, rows) for a type: one block, odd block counts, row counts that leave part of a
/// workgroup (64) and of an encoder group idle.
fn shapes(ty: GgmlType) -> Vec<(usize, usize)> {
    let be = ty.block_elems() as usize;
    vec![
        (be, 1),
        (3 * be, 5),
        (256.max(be) * 5, 3),
        (768.max(3 * be), 67),
    ]
}

#[test]
fn new_types_decode_on_the_gpu_bit_for_bit() {
    let eng = gpu_engine(opts(64));
    let mut r = rng(seed());
    let (mut failures, mut checks, mut blocks) = (Vec::new(), 0, 0);
    for ty in all_new_types() {
        assert!(eng.decodes_on_gpu(ty), "{ty}: decode not routed to the GPU");
        let be = ty.block_elems() as usize;
        // the grid encoders are slow searches: fewer rows for them
        let shapes: Vec<(usize, usize)> = if GRID.contains(&ty) {
            vec![(256, 1), (768, 3)]
        } else {
            shapes(ty)
        };
        for dist in Dist::all(be) {
            for &(row_len, rows) in &shapes {
                let data = sample(dist, row_len * rows, &mut r);
                let mut bytes = vec![0u8; rows * ty.row_bytes(row_len as u64).unwrap() as usize];
                let w = weights(row_len, &mut r);
                gpuq::codec::encode_rows(ty, &data, row_len, Some(&w), &mut bytes).unwrap();
                checks += 1;
                let label = format!("{dist:?} rows {rows}x{row_len}");
                match decode_diff(&eng, ty, &bytes, row_len, &label) {
                    Ok(n) => blocks += n,
                    Err(e) => failures.push(e),
                }
                let run = eng.gpu().unwrap().last_run();
                assert!(run.tiles >= 1, "{ty}: the decode did not run on the GPU");
            }
        }
        // random blocks: every index, sign and scale pattern; 67 rows of 3 blocks
        let raw = random_new_blocks(ty, 3 * 67, &mut r);
        checks += 1;
        match decode_diff(&eng, ty, &raw, 3 * be, "random blocks") {
            Ok(n) => blocks += n,
            Err(e) => failures.push(e),
        }
    }
    eprintln!("{blocks} blocks decoded on the GPU");
    report(&failures, checks);
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
fn new_encoders_on_the_gpu_byte_for_byte() {
    let eng = gpu_engine(opts(64));
    let mut r = rng(seed() ^ 0xe4c0);
    let (mut failures, mut checks) = (Vec::new(), 0);
    let mut tally = Tally::default();
    for (ty, takes_weights) in ENCODERS {
        assert!(eng.encodes_on_gpu(ty), "{ty}: no GPU encoder");
        assert_eq!(eng.encodes_on_gpu_with(ty, true), takes_weights, "{ty}");
        let be = ty.block_elems() as usize;
        let modes: &[bool] = if takes_weights {
            &[false, true]
        } else {
            &[false]
        };
        for &weighted in modes {
            for dist in Dist::all(be) {
                for (row_len, rows) in shapes(ty) {
                    let data = sample(dist, row_len * rows, &mut r);
                    let w = weighted.then(|| weights(row_len, &mut r));
                    let label = format!("{dist:?} rows {rows}x{row_len} weighted {weighted}");
                    checks += 1;
                    let c = encode_diff_counts(&eng, ty, &data, row_len, w.as_deref(), &label);
                    tally.add(ty, weighted, &c);
                    failures.extend(c.message);
                }
            }
        }
    }
    tally.print("GPU vs CPU encode");
    report(&failures, checks);
}

/// Values one MXFP4 / NVFP4 / IQ4 / Q1_0 encoder may get wrong: the MXFP4 exponent steps of
/// log2f, subnormal and tiny blocks, E4M3 rounding boundaries, huge values, constants.
fn edge_rows(row_len: usize, r: &mut StdRng) -> Vec<(String, Vec<f32>)> {
    let mut cases: Vec<(String, Vec<f32>)> = vec![
        ("zeros".into(), vec![0.0; row_len]),
        ("negative zeros".into(), vec![-0.0; row_len]),
        ("constant".into(), vec![0.37; row_len]),
        ("negative constant".into(), vec![-2.5; row_len]),
    ];
    let normal = sample(Dist::Normal, row_len, r);
    let scaled = |s: f32| normal.iter().map(|v| v * s).collect::<Vec<f32>>();
    for (name, s) in [
        ("1e-30", 1e-30f32),
        ("2^-110", 2f32.powi(-110)),
        ("2^-124", 2f32.powi(-124)),
        ("1e30", 1e30),
        ("1e-9", 1e-9),
    ] {
        cases.push((format!("scaled {name}"), scaled(s)));
    }
    // subnormal blocks, and normal blocks with subnormal members
    cases.push((
        "subnormal".into(),
        (0..row_len)
            .map(|i| {
                let h = (i as u32).wrapping_mul(2_654_435_761);
                f32::from_bits((h >> 9) | ((i as u32 & 1) << 31))
            })
            .collect(),
    ));
    cases.push((
        "mixed subnormal".into(),
        normal
            .iter()
            .enumerate()
            .map(|(i, &v)| if i % 3 == 0 { v * 1e-40 } else { v })
            .collect(),
    ));
    // MXFP4: each 32-element block's largest magnitude at (or one below) a bit pattern where
    // log2f's floor steps up, the rest small
    let steps: Vec<u32> = gpuq::gpu::lookup::mxfp4_binades()
        .iter()
        .map(|&(t, _)| t)
        .filter(|&t| t < 0x7f80_0000 && t.trailing_zeros() < 23)
        .collect();
    let mut mx = scaled(0.01);
    for (k, blk) in mx.chunks_mut(32).enumerate() {
        let t = steps[(k * 7) % steps.len()] - (k as u32 % 2);
        let amax = f32::from_bits(t);
        for v in blk.iter_mut() {
            *v *= amax;
        }
        blk[k % 32] = if k % 3 == 0 { -amax } else { amax };
    }
    cases.push(("MXFP4 exponent steps".into(), mx));
    // NVFP4: amax / 6 near E4M3 rounding points (half a unit of the 3-bit mantissa)
    let mut nv = scaled(0.05);
    for (k, blk) in nv.chunks_mut(16).enumerate() {
        let e = (k % 18) as i32 - 9;
        let m = (k % 8) as f32;
        blk[k % 16] = 6.0 * (1.0 + (m + 0.5) / 8.0) * 2f32.powi(e);
    }
    cases.push(("E4M3 boundaries".into(), nv));
    cases.push((
        "integers".into(),
        (0..row_len)
            .map(|i| ((i * 7919) % 17) as f32 - 8.0)
            .collect(),
    ));
    cases
}

#[test]
fn new_encoders_on_edge_data() {
    let eng = gpu_engine(opts(64));
    let mut r = rng(seed() ^ 0xed6e);
    let row_len = 1024;
    let cases = edge_rows(row_len, &mut r);
    let (mut failures, mut checks) = (Vec::new(), 0);
    let mut tally = Tally::default();
    for (ty, takes_weights) in ENCODERS {
        let modes: &[bool] = if takes_weights {
            &[false, true]
        } else {
            &[false]
        };
        for (name, data) in &cases {
            for &weighted in modes {
                let w = weighted.then(|| weights(row_len, &mut r));
                checks += 1;
                let c = encode_diff_counts(&eng, ty, data, row_len, w.as_deref(), name);
                tally.add(ty, weighted, &c);
                failures.extend(c.message);
                // and the decode of what the CPU wrote
                let mut bytes = vec![0u8; ty.row_bytes(row_len as u64).unwrap() as usize];
                gpuq::codec::encode_rows(ty, data, row_len, w.as_deref(), &mut bytes).unwrap();
                checks += 1;
                if let Err(e) = decode_diff(&eng, ty, &bytes, row_len, name) {
                    failures.push(e);
                }
            }
        }
    }
    tally.print("edge data");
    report(&failures, checks);
}

/// Tiles (a ~12 KB binding cap: many tiles, each with the weights and the lookup table in
/// binding 3), 2-D dispatch (at most 2 workgroups along x: every tile has more than 8
/// invocations) and workgroup sizes 1 and 4.
#[test]
fn tiles_2d_dispatch_and_workgroup_sizes_keep_the_bytes() {
    let mut r = rng(seed() ^ 0x7117);
    let (mut failures, mut checks) = (Vec::new(), 0);
    for wg in [1u32, 4] {
        let eng = gpu_engine(RunnerOptions {
            max_tile_bytes: Some(12_000),
            max_workgroups_x: Some(2),
            ..opts(wg)
        });
        for ty in all_new_types() {
            let row_len = 512;
            let rows = 37;
            let data = sample(Dist::HeavyTailed, row_len * rows, &mut r);
            let w = weights(row_len, &mut r);
            if let Some(&(_, takes_weights)) = ENCODERS.iter().find(|e| e.0 == ty) {
                let modes: &[bool] = if takes_weights {
                    &[false, true]
                } else {
                    &[false]
                };
                for &weighted in modes {
                    checks += 1;
                    let label = format!("tiled wg {wg} weighted {weighted}");
                    let ww = weighted.then_some(w.as_slice());
                    let c = encode_diff_counts(&eng, ty, &data, row_len, ww, &label);
                    failures.extend(c.message);
                    let stats = eng.gpu().unwrap().last_run();
                    assert!(
                        stats.tiles > 1 && stats.dispatches_2d > 0,
                        "{ty}: {stats:?}"
                    );
                }
            }
            let mut bytes = vec![0u8; rows * ty.row_bytes(row_len as u64).unwrap() as usize];
            gpuq::codec::encode_rows(ty, &data, row_len, Some(&w), &mut bytes).unwrap();
            checks += 1;
            if let Err(e) = decode_diff(&eng, ty, &bytes, row_len, &format!("tiled wg {wg}")) {
                failures.push(e);
            }
            let stats = eng.gpu().unwrap().last_run();
            assert!(
                stats.tiles > 1 && stats.dispatches_2d > 0,
                "{ty}: {stats:?}"
            );
        }
    }
    report(&failures, checks);
}

/// The routing table: every new type decodes on the GPU; the grid searches and the weighted
/// encodes of types whose kernel takes no weights run on the CPU codec (with the CPU's bytes),
/// and the runner itself refuses them.
#[test]
fn engine_routes_the_new_types() {
    let eng = gpu_engine(opts(64));
    let mut r = rng(seed() ^ 0x3e16);
    for ty in all_new_types() {
        assert!(eng.runs_on_gpu(Op::Decode(ty)), "{ty}: decode");
    }
    for ty in GRID {
        assert!(
            !eng.encodes_on_gpu(ty) && !eng.encodes_on_gpu_with(ty, true),
            "{ty}"
        );
        let line = gpuq::engine::routes::describe()
            .into_iter()
            .find(|l| l.split_whitespace().next() == Some(ty.name()))
            .unwrap_or_else(|| panic!("{ty}: not in the routing table's description"));
        assert!(
            line.contains("encodes on the CPU") && line.contains("decode"),
            "{line}"
        );
    }
    for (ty, takes_weights) in ENCODERS {
        assert!(eng.encodes_on_gpu(ty), "{ty}");
        let row_len = 512;
        let data = sample(Dist::Normal, row_len * 5, &mut r);
        let w = weights(row_len, &mut r);
        let got = eng.encode(ty, &data, row_len, Some(&w)).unwrap();
        let mut want = vec![0u8; got.len()];
        gpuq::codec::encode_rows(ty, &data, row_len, Some(&w), &mut want).unwrap();
        assert_eq!(got, want, "{ty}: weighted encode");
        let mut dst = vec![0u8; got.len()];
        let direct = eng
            .gpu()
            .unwrap()
            .encode(ty, &data, row_len, Some(&w), &mut dst);
        assert_eq!(
            direct.is_ok(),
            takes_weights,
            "{ty}: the runner and weights"
        );
    }
    // a grid type's encode through the engine: the CPU codec's bytes
    let row_len = 256;
    let data = sample(Dist::Normal, row_len * 2, &mut r);
    let w = weights(row_len, &mut r);
    let got = eng
        .encode(GgmlType::IQ2_XXS, &data, row_len, Some(&w))
        .unwrap();
    let mut want = vec![0u8; got.len()];
    gpuq::codec::encode_rows(GgmlType::IQ2_XXS, &data, row_len, Some(&w), &mut want).unwrap();
    assert_eq!(got, want);
    let mut dst = vec![0u8; got.len()];
    assert!(
        eng.gpu()
            .unwrap()
            .encode(GgmlType::IQ2_XXS, &data, row_len, None, &mut dst)
            .is_err()
    );
}

/// Rough GPU (lavapipe) vs CPU throughput, once; `cargo test --test gpu_iquants -- --ignored
/// --nocapture`.
#[test]
#[ignore]
fn new_types_throughput() {
    let eng = gpu_engine(RunnerOptions::default());
    let cpu = gpuq::Engine::new(gpuq::Backend::Cpu).unwrap();
    let mut r = rng(1);
    let row_len = 4096;
    let data = sample(Dist::Normal, row_len * 64, &mut r);
    let in_bytes = data.len() * 4;
    for ty in all_new_types() {
        let enc = cpu.encode(ty, &data, row_len, None).unwrap();
        let mut line = format!("{ty}:");
        if eng.encodes_on_gpu(ty) {
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
