//! GPU-vs-CPU differential checks shared by tests/gpu_legacy.rs and tests/gpu_kquants.rs:
//! run a codec through `Engine` with `Backend::Gpu` (lavapipe in CI) and through the CPU
//! reference (`codec::encode_rows` / `decode_rows`), and report every disagreement as
//! "n of m blocks differ" with the first few, rather than stopping at the first.
#![allow(dead_code)]

use gpuq::codec::{decode_rows, encode_rows};
use gpuq::gpu::codecs::RunnerOptions;
use gpuq::{Backend, Engine, GgmlType};
use rand::Rng;
use rand::rngs::StdRng;

/// An engine on the GPU backend; fails (never skips) when there is no adapter: CI installs
/// lavapipe.
pub fn gpu_engine(opts: RunnerOptions) -> Engine {
    let e = Engine::with_gpu_options(Backend::Gpu, opts)
        .unwrap_or_else(|e| panic!("no GPU adapter (install mesa-vulkan-drivers): {e}"));
    eprintln!("{}", e.describe());
    e
}

/// Encodes on the GPU (into a buffer pre-filled with 0xA5, so unwritten bytes show) and on
/// the CPU; `Err` lists the differing blocks.
pub fn encode_diff(
    eng: &Engine,
    ty: GgmlType,
    data: &[f32],
    row_len: usize,
    weights: Option<&[f32]>,
    label: &str,
) -> Result<usize, String> {
    let c = encode_diff_counts(eng, ty, data, row_len, weights, label);
    match c.message {
        None => Ok(c.blocks),
        Some(m) => Err(m),
    }
}

/// What [`encode_diff_counts`] found: blocks compared, blocks whose bytes differ, and the
/// report when any differ (or the GPU call failed: then every block counts as differing).
pub struct EncodeCounts {
    pub blocks: usize,
    pub differing: usize,
    pub message: Option<String>,
}

/// [`encode_diff`] with the counts.
pub fn encode_diff_counts(
    eng: &Engine,
    ty: GgmlType,
    data: &[f32],
    row_len: usize,
    weights: Option<&[f32]>,
    label: &str,
) -> EncodeCounts {
    let n_bytes = data.len() / row_len * ty.row_bytes(row_len as u64).unwrap() as usize;
    let bb = ty.block_bytes() as usize;
    let n_blocks = n_bytes / bb;
    let mut gpu = vec![0xA5u8; n_bytes];
    if let Err(e) = eng.encode_into(ty, data, row_len, weights, &mut gpu) {
        return EncodeCounts {
            blocks: n_blocks,
            differing: n_blocks,
            message: Some(format!("{label}: GPU encode failed: {e}")),
        };
    }
    let mut cpu = vec![0u8; n_bytes];
    encode_rows(ty, data, row_len, weights, &mut cpu).unwrap();
    let diff = super::common::differing_blocks(&gpu, &cpu, bb);
    if diff.is_empty() {
        return EncodeCounts {
            blocks: n_blocks,
            differing: 0,
            message: None,
        };
    }
    let mut msg = format!(
        "{label}: {ty} encode: {} of {n_blocks} blocks differ (GPU vs CPU)",
        diff.len()
    );
    for &b in diff.iter().take(3) {
        let g = &gpu[b * bb..(b + 1) * bb];
        let c = &cpu[b * bb..(b + 1) * bb];
        let first = g.iter().zip(c).position(|(x, y)| x != y).unwrap();
        msg += &format!(
            "\n  block {b}: first differing byte {first}: gpu {:#04x} cpu {:#04x}",
            g[first], c[first]
        );
    }
    EncodeCounts {
        blocks: n_blocks,
        differing: diff.len(),
        message: Some(msg),
    }
}

/// Decodes `bytes` on the GPU (into a buffer pre-filled with a NaN pattern) and on the CPU;
/// `Err` lists the blocks whose f32 bits differ.
pub fn decode_diff(
    eng: &Engine,
    ty: GgmlType,
    bytes: &[u8],
    row_len: usize,
    label: &str,
) -> Result<usize, String> {
    let row_bytes = ty.row_bytes(row_len as u64).unwrap() as usize;
    let n = bytes.len() / row_bytes * row_len;
    let mut gpu = vec![f32::from_bits(0x7fa5_a5a5); n];
    eng.decode_into(ty, bytes, row_len, &mut gpu)
        .map_err(|e| format!("{label}: GPU decode failed: {e}"))?;
    let mut cpu = vec![0f32; n];
    decode_rows(ty, bytes, row_len, &mut cpu).unwrap();
    let be = ty.block_elems() as usize;
    let n_blocks = n / be;
    let bad: Vec<usize> = (0..n_blocks)
        .filter(|&b| {
            gpu[b * be..(b + 1) * be]
                .iter()
                .zip(&cpu[b * be..(b + 1) * be])
                .any(|(x, y)| x.to_bits() != y.to_bits())
        })
        .collect();
    if bad.is_empty() {
        return Ok(n_blocks);
    }
    let mut msg = format!(
        "{label}: {ty} decode: {} of {n_blocks} blocks differ (GPU vs CPU)",
        bad.len()
    );
    for &b in bad.iter().take(3) {
        let i = (b * be..(b + 1) * be)
            .find(|&i| gpu[i].to_bits() != cpu[i].to_bits())
            .unwrap();
        msg += &format!(
            "\n  block {b} element {}: gpu {:e} ({:#010x}) cpu {:e} ({:#010x})",
            i - b * be,
            gpu[i],
            gpu[i].to_bits(),
            cpu[i],
            cpu[i].to_bits()
        );
    }
    Err(msg)
}

/// Random blocks of `ty`: random bytes with the f16 fields at `f16_offsets` forced to random
/// finite values (so decoders see every scale/level bit pattern, but no inf/NaN scale).
pub fn random_blocks(
    ty: GgmlType,
    n_blocks: usize,
    f16_offsets: &[usize],
    r: &mut StdRng,
) -> Vec<u8> {
    let bb = ty.block_bytes() as usize;
    let mut v: Vec<u8> = (0..n_blocks * bb).map(|_| r.random()).collect();
    for blk in v.chunks_mut(bb) {
        for &o in f16_offsets {
            let h: u16 = r.random::<u16>() & 0xbfff; // exponent < 31: finite
            blk[o..o + 2].copy_from_slice(&h.to_le_bytes());
        }
    }
    v
}

/// Panics with every message when any check failed.
pub fn report(failures: &[String], checks: usize) {
    assert!(
        failures.is_empty(),
        "{} of {checks} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{checks} GPU-vs-CPU checks agree");
}

/// Rough throughput in input GB/s of `f` over `bytes` input bytes (one timed run after a warm-up).
pub fn gbps(bytes: usize, mut f: impl FnMut()) -> f64 {
    f();
    let t = std::time::Instant::now();
    f();
    bytes as f64 / t.elapsed().as_secs_f64() / 1e9
}
