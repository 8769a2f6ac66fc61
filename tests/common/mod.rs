//! Shared test helpers: seeded random data in several distributions, python3 cross-checks,
//! and running the `gpuq` binary.
#![allow(dead_code)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal, StudentT};
use std::path::Path;
use std::process::Command;

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// The shapes of data every codec is tested on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dist {
    /// N(0, 1)
    Normal,
    /// Student-t with 2 degrees of freedom plus a rare planted outlier 50x larger.
    HeavyTailed,
    /// N(0, 1e-6): scales near the bottom of f16's range.
    Tiny,
    /// N(0, 1e3): large magnitudes (scales stay within f16 range for 8-bit blocks).
    Huge,
    /// Normal data, each block of `block` elements holding one outlier 100x larger.
    OneOutlierPerBlock(usize),
    /// Every block of `block` elements filled with one random value.
    AllEqualBlocks(usize),
    /// Normal data with every third block of `block` elements zeroed.
    ZeroBlocks(usize),
    /// Uniform in [-1, 1].
    Uniform,
}

impl Dist {
    /// All distributions, with `block` the codec's block size.
    pub fn all(block: usize) -> Vec<Dist> {
        vec![
            Dist::Normal,
            Dist::HeavyTailed,
            Dist::Tiny,
            Dist::Huge,
            Dist::OneOutlierPerBlock(block),
            Dist::AllEqualBlocks(block),
            Dist::ZeroBlocks(block),
            Dist::Uniform,
        ]
    }
}

/// `n` values drawn from `dist`.
pub fn sample(dist: Dist, n: usize, rng: &mut StdRng) -> Vec<f32> {
    let normal = Normal::new(0.0f32, 1.0).unwrap();
    match dist {
        Dist::Normal => (0..n).map(|_| normal.sample(rng)).collect(),
        Dist::HeavyTailed => {
            let t = StudentT::new(2.0f32).unwrap();
            (0..n)
                .map(|_| {
                    let v = t.sample(rng);
                    if rng.random::<f32>() < 0.001 {
                        v * 50.0
                    } else {
                        v
                    }
                })
                .collect()
        }
        Dist::Tiny => (0..n).map(|_| normal.sample(rng) * 1e-6).collect(),
        Dist::Huge => (0..n).map(|_| normal.sample(rng) * 1e3).collect(),
        Dist::OneOutlierPerBlock(b) => {
            let mut v: Vec<f32> = (0..n).map(|_| normal.sample(rng)).collect();
            for blk in v.chunks_mut(b) {
                let i = rng.random_range(0..blk.len());
                blk[i] *= 100.0;
            }
            v
        }
        Dist::AllEqualBlocks(b) => {
            let mut v = vec![0.0f32; n];
            for blk in v.chunks_mut(b) {
                let x = normal.sample(rng);
                blk.fill(x);
            }
            v
        }
        Dist::ZeroBlocks(b) => {
            let mut v: Vec<f32> = (0..n).map(|_| normal.sample(rng)).collect();
            for (i, blk) in v.chunks_mut(b).enumerate() {
                if i % 3 == 0 {
                    blk.fill(0.0);
                }
            }
            v
        }
        Dist::Uniform => (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect(),
    }
}

/// Runs `python3 -c script args…`, panicking with its stderr when it fails. The packages the
/// cross-checks need (gguf, numpy, llama-cpp-python) are installed by `.ci/run`.
pub fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 must be installed (see .ci/run)");
    assert!(
        out.status.success(),
        "python3 failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `gpuq` binary built for this test run.
pub fn gpuq() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gpuq"))
}

/// True when a `gpuq … --backend gpu` run failed only because this machine has no GPU path
/// (no adapter, or a build without the `gpu` feature); any other failure panics with its stderr.
pub fn no_gpu(out: &std::process::Output) -> bool {
    if out.status.success() {
        return false;
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no GPU adapter") || err.contains("without the `gpu` feature"),
        "{err}"
    );
    eprintln!("SKIP (no GPU): {err}");
    true
}

/// Runs `gpuq ARGS`; returns (exit code, stderr).
pub fn gpuq_status(args: &[&str]) -> (i32, String) {
    let out = gpuq().args(args).output().expect("the gpuq binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn write_f32(path: &Path, v: &[f32]) {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(path, bytes).unwrap();
}

pub fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Compares two byte buffers block by block; returns the indices of differing blocks.
pub fn differing_blocks(a: &[u8], b: &[u8], block_bytes: usize) -> Vec<usize> {
    assert_eq!(a.len(), b.len(), "outputs differ in length");
    a.chunks(block_bytes)
        .zip(b.chunks(block_bytes))
        .enumerate()
        .filter(|(_, (x, y))| x != y)
        .map(|(i, _)| i)
        .collect()
}
