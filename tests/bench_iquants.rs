//! Per-thread encode speed of the grid i-quants, gpuq's CPU encoder vs llama.cpp's
//! `ggml_quantize_chunk` on the same rows, one thread each (gpuq: the row encoder called
//! directly, no rayon; llama.cpp: the call does not spawn threads). Both build their search
//! tables before the timing (gpuq's one-time table build is printed separately). Times are the
//! calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID here, `time.thread_time` in Python), the
//! least of a few calls, so a loaded machine skews them less than wall time. One run:
//! `cargo test --release --test bench_iquants -- --ignored --nocapture`. MB/s of f32 input.

mod common;

use common::{Dist, python, rng, sample, write_f32};
use gpuq::GgmlType;
use gpuq::codec::cpu_codec;
use std::fmt::Write as _;
use std::time::Instant;

/// CPU seconds used by the calling thread.
fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

const LLAMA_BENCH: &str = include_str!("py/llama_quantize_bench.py");

#[test]
#[ignore]
fn grid_iquants_encode_mb_per_s_vs_llama_cpp() {
    let row_len = 4096;
    let rows: usize = std::env::var("GPUQ_BENCH_ROWS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let reps = 5;
    let x = sample(Dist::Normal, rows * row_len, &mut rng(7));
    let imatrix: Vec<f32> = sample(Dist::Normal, row_len, &mut rng(8))
        .iter()
        .map(|v| v.exp())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("x.f32");
    let imat = dir.path().join("w.f32");
    write_f32(&src, &x);
    write_f32(&imat, &imatrix);
    let types = [
        GgmlType::IQ3_XXS,
        GgmlType::IQ3_S,
        GgmlType::IQ2_XXS,
        GgmlType::IQ2_XS,
        GgmlType::IQ2_S,
        GgmlType::IQ1_S,
        GgmlType::IQ1_M,
    ];
    // GPUQ_BENCH_TYPES=IQ1_S,IQ1_M: only these.
    let only = std::env::var("GPUQ_BENCH_TYPES").ok();
    let types = types.into_iter().filter(|t| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|n| n == t.name()))
    });
    let mut jobs = Vec::new();
    let mut manifest = String::new();
    for ty in types {
        let needs = matches!(ty, GgmlType::IQ2_XXS | GgmlType::IQ2_XS | GgmlType::IQ1_S);
        let modes: &[bool] = if needs { &[true] } else { &[false, true] };
        for &weighted in modes {
            jobs.push((ty, weighted));
            let w = if weighted {
                imat.display().to_string()
            } else {
                "-".into()
            };
            writeln!(
                manifest,
                "{} {row_len} {} {w} {reps}",
                ty.id(),
                src.display()
            )
            .unwrap();
        }
    }
    let manifest_path = dir.path().join("bench.txt");
    std::fs::write(&manifest_path, manifest).unwrap();
    let llama: Vec<f64> = python(LLAMA_BENCH, &[manifest_path.to_str().unwrap()])
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(llama.len(), jobs.len());

    let mb = (x.len() * 4) as f64 / 1e6;
    eprintln!(
        "{rows} rows of {row_len} f32 ({mb:.1} MB), best of {reps}, one thread each\n\
         | type | imatrix | gpuq MB/s | llama.cpp MB/s | gpuq/llama |\n|---|---|---:|---:|---:|"
    );
    for (&(ty, weighted), &t_llama) in jobs.iter().zip(&llama) {
        let enc = cpu_codec(ty).and_then(|c| c.encode).unwrap();
        let row_bytes = ty.row_bytes(row_len as u64).unwrap() as usize;
        let mut out = vec![0u8; rows * row_bytes];
        let w = weighted.then_some(imatrix.as_slice());
        let t0 = Instant::now();
        enc(&x[..row_len], &mut out[..row_bytes], w); // builds the tables once
        let t_init = t0.elapsed().as_secs_f64();
        let mut best = f64::INFINITY;
        for _ in 0..reps {
            let t = thread_cpu_s();
            for (s, d) in x.chunks_exact(row_len).zip(out.chunks_exact_mut(row_bytes)) {
                enc(s, d, w);
            }
            best = best.min(thread_cpu_s() - t);
        }
        eprintln!(
            "| {ty} | {} | {:.2} | {:.2} | {:.2} |   (first row incl. table build {:.3} s)",
            if weighted { "yes" } else { "no" },
            mb / best,
            mb / t_llama,
            t_llama / best,
            t_init
        );
    }
}
