//! Bounded memory, measured: a generated model larger than a small `--max-memory` budget is
//! quantized by `gpuq quantize` in a child process whose peak RSS (VmHWM sampled from
//! /proc/<pid>/status; wait4's ru_maxrss also carries this test's own RSS) must stay below
//! the budget plus a fixed overhead. A control run with a budget large enough to hold the
//! largest tensor whole must exceed that same limit, so the measurement is shown to see the
//! tile buffers.
//! Not a timed test: only memory is checked.

mod common;

use gpuq::cli::bench::rss::{Measured, run_measured};
use gpuq::cli::bench::synth::{LlamaShape, write_llama_f16};
use gpuq::formats::gguf::GgufFile;
use std::path::Path;
use std::time::Duration;

/// The small budget (gpuq's --max-memory).
const BUDGET: u64 = 64 << 20;

/// Peak RSS allowed beyond the budget, independent of the model's size:
/// - ~14 MiB: the process itself (executable, shared libraries, allocator, rayon threads,
///   metadata), measured as gpuq's peak on a 5 MiB model;
/// - up to 0.28 x BUDGET = 18 MiB: the mapped F16 input pages of the tile being decoded
///   (the pipeline counts its f32 and output buffers against the budget, 7.2 bytes per
///   element for Q8_0 output, but not the 2 bytes per element of mapped input, which it
///   releases after each tile);
/// - 16 MiB of slack for allocator rounding and page-table granularity.
///
/// The measured peak was 83 MiB; the limit is 112 MiB; the control run (whole-tensor tiles:
/// a 65 MiB f32 buffer and three 17 MiB output buffers) peaks at about 127 MiB.
const OVERHEAD: u64 = 48 << 20;

fn quantize_measured(model: &Path, out: &Path, budget: u64) -> Measured {
    let mut cmd = common::gpuq();
    cmd.arg("quantize")
        .arg(model)
        .arg("-o")
        .arg(out)
        .args(["--type", "Q8_0", "--backend", "cpu", "--threads", "2", "-q"])
        .args(["--max-memory", &budget.to_string()]);
    let m = run_measured(&mut cmd, Duration::from_millis(5)).unwrap();
    assert!(m.success(), "gpuq quantize failed: {m:?}");
    let f = GgufFile::open(out).unwrap();
    assert!(f.tensors.iter().any(|t| t.ty == gpuq::GgmlType::Q8_0));
    m
}

#[test]
fn peak_rss_stays_within_budget_plus_fixed_overhead() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.gguf");
    let shape = LlamaShape::for_f16_bytes(300 << 20);
    write_llama_f16(&model, &shape, 3).unwrap();
    let size = std::fs::metadata(&model).unwrap().len();
    assert!(
        size > 4 * BUDGET,
        "the model ({size} bytes) must be larger than the budget"
    );
    let limit = BUDGET + OVERHEAD;

    let m = quantize_measured(&model, &dir.path().join("small.gguf"), BUDGET);
    eprintln!(
        "{shape}, {size} bytes: peak RSS (sampled VmHWM) {} MiB (ru_maxrss {} MiB), limit {} MiB",
        m.peak_rss >> 20,
        m.ru_maxrss >> 20,
        limit >> 20
    );
    assert!(m.peak_rss > 0, "VmHWM was never sampled");
    assert!(
        m.peak_rss <= limit,
        "peak RSS {} MiB exceeds --max-memory {} MiB + overhead {} MiB",
        m.peak_rss >> 20,
        BUDGET >> 20,
        OVERHEAD >> 20
    );

    // control: with a budget that holds the largest tensor whole, the same limit is exceeded
    let big = quantize_measured(&model, &dir.path().join("big.gguf"), 1 << 30);
    eprintln!(
        "control (--max-memory 1G): peak RSS {} MiB",
        big.peak_rss >> 20
    );
    assert!(
        big.peak_rss > limit,
        "control run peaked at {} MiB, within the {} MiB limit: the measurement cannot see the tile buffers",
        big.peak_rss >> 20,
        limit >> 20
    );
}
