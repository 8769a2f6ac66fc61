//! Encode and decode throughput per type (GB/s of input: f32 bytes into an encoder, packed
//! bytes into a decoder), CPU reference vs GPU kernel (where `gpu::codecs` has one), with and
//! without importance weights for the k-quants, at tiles of 1 MiB and 64 MiB of f32.
//!
//! `cargo bench --bench codecs` (add `-- Q4_K` to filter); `GPUQ_BENCH_256M=1` adds 256 MiB
//! tiles. Sample counts are criterion's minimum (10) so a full run takes minutes on 2 cores;
//! `gpuq bench codecs` prints the same measurements as one table with GPU/CPU ratios.

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use gpuq::cli::bench::codecs::{DEFAULT_TYPES, takes_weights};
use gpuq::cli::bench::synth;
use gpuq::{Backend, Engine, GgmlType};
use std::time::Duration;

const ROW_LEN: usize = 4096;

fn sizes() -> Vec<usize> {
    let mut v = vec![1 << 20, 64 << 20];
    if std::env::var_os("GPUQ_BENCH_256M").is_some() {
        v.push(256 << 20);
    }
    v
}

fn label(bytes: usize) -> String {
    format!("{}MiB", bytes >> 20)
}

fn engines() -> Vec<(&'static str, Engine)> {
    let mut v = vec![(
        "cpu",
        Engine::new(Backend::Cpu).expect("the CPU backend always exists"),
    )];
    match Engine::new(Backend::Gpu) {
        Ok(e) => {
            eprintln!("codecs bench: {}", e.describe());
            v.push(("gpu", e));
        }
        Err(e) => eprintln!("codecs bench: no GPU rows: {e}"),
    }
    v
}

/// Whether `e` runs this codec itself: the CPU always; the GPU when the table has the kernel
/// (for a weighted encode, one that takes weights: otherwise the call goes to the CPU codec).
fn on_backend(name: &str, e: &Engine, ty: GgmlType, encode: Option<bool>) -> bool {
    name == "cpu"
        || match encode {
            Some(weighted) => e.encodes_on_gpu_with(ty, weighted),
            None => e.decodes_on_gpu(ty),
        }
}

fn codecs(c: &mut Criterion) {
    let engines = engines();
    for bytes in sizes() {
        let n = bytes / 4 / ROW_LEN * ROW_LEN;
        let src = synth::weights_f32(n, ROW_LEN, 1);
        let imatrix = synth::importance(ROW_LEN, 2);
        let long = bytes >= 16 << 20;
        let configure =
            |g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>| {
                g.sample_size(10);
                g.warm_up_time(Duration::from_millis(if long { 10 } else { 200 }));
                g.measurement_time(Duration::from_secs(if long { 2 } else { 1 }));
                if long {
                    g.sampling_mode(SamplingMode::Flat);
                }
            };

        let mut g = c.benchmark_group(format!("encode/{}", label(bytes)));
        configure(&mut g);
        g.throughput(Throughput::Bytes((n * 4) as u64));
        for &ty in DEFAULT_TYPES {
            let out = ty.row_bytes(ROW_LEN as u64).unwrap() as usize * (n / ROW_LEN);
            let mut dst = vec![0u8; out];
            let variants: &[bool] = if takes_weights(ty) {
                &[false, true]
            } else {
                &[false]
            };
            for &weighted in variants {
                let w = weighted.then_some(imatrix.as_slice());
                for (name, e) in &engines {
                    if !on_backend(name, e, ty, Some(weighted)) {
                        continue;
                    }
                    let id = format!("{ty}{}/{name}", if weighted { "+imatrix" } else { "" });
                    g.bench_function(BenchmarkId::from_parameter(id), |b| {
                        b.iter(|| e.encode_into(ty, &src, ROW_LEN, w, &mut dst).unwrap())
                    });
                }
            }
        }
        g.finish();

        let mut g = c.benchmark_group(format!("decode/{}", label(bytes)));
        configure(&mut g);
        for &ty in DEFAULT_TYPES {
            let packed = engines[0].1.encode(ty, &src, ROW_LEN, None).unwrap();
            let mut f = vec![0f32; n];
            g.throughput(Throughput::Bytes(packed.len() as u64));
            for (name, e) in &engines {
                if !on_backend(name, e, ty, None) {
                    continue;
                }
                g.bench_function(BenchmarkId::from_parameter(format!("{ty}/{name}")), |b| {
                    b.iter(|| e.decode_into(ty, &packed, ROW_LEN, &mut f).unwrap())
                });
            }
        }
        g.finish();
    }
}

criterion_group!(benches, codecs);
criterion_main!(benches);
