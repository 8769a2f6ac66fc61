//! The k-quant CPU codecs (Q2_K..Q6_K) against llama.cpp and gguf-py:
//! - encode == llama.cpp's `ggml_quantize_chunk` byte for byte, without and with importance
//!   weights (the imatrix path), on seeded random rows in every `Dist`;
//! - decode == gguf-py's `dequantize` bit for bit, on encoder output and on random blocks;
//! - the round-trip error bounds of llama.cpp's tests/test-quantize-fns.cpp.
//!
//! `GPUQ_TEST_SEED=<u64>` draws fresh data; the seed in use is printed.

mod common;

use common::{Dist, differing_blocks, python, read_f32, rng, sample, write_f32};
use gpuq::GgmlType;
use gpuq::codec::{decode_rows, encode_rows};
use rand::Rng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};
use std::fmt::Write as _;

const LLAMA_QUANTIZE: &str = include_str!("py/llama_quantize_chunk.py");
const GGUF_DEQUANTIZE: &str = include_str!("py/gguf_dequantize.py");

const QK_K: usize = 256;

/// tests/test-quantize-fns.cpp: `MAX_QUANTIZATION_TOTAL_ERROR` (all types without their own).
const MAX_QUANTIZATION_TOTAL_ERROR: f32 = 0.002;
/// tests/test-quantize-fns.cpp: `MAX_QUANTIZATION_TOTAL_ERROR_2BITS` (Q2_K).
const MAX_QUANTIZATION_TOTAL_ERROR_2BITS: f32 = 0.0075;
/// tests/test-quantize-fns.cpp: `MAX_QUANTIZATION_TOTAL_ERROR_3BITS` (Q3_K).
const MAX_QUANTIZATION_TOTAL_ERROR_3BITS: f32 = 0.0040;

/// One k-quant type as the tests see it.
struct Kq {
    ty: GgmlType,
    /// Byte offsets of the f16 fields inside a block (forced finite in random blocks).
    f16_offsets: &'static [usize],
    /// test-quantize-fns.cpp's bound on the total quantization error.
    max_error: f32,
}

const Q2_K: Kq = Kq {
    ty: GgmlType::Q2_K,
    f16_offsets: &[80, 82],
    max_error: MAX_QUANTIZATION_TOTAL_ERROR_2BITS,
};
const Q3_K: Kq = Kq {
    ty: GgmlType::Q3_K,
    f16_offsets: &[108],
    max_error: MAX_QUANTIZATION_TOTAL_ERROR_3BITS,
};
const Q4_K: Kq = Kq {
    ty: GgmlType::Q4_K,
    f16_offsets: &[0, 2],
    max_error: MAX_QUANTIZATION_TOTAL_ERROR,
};
const Q5_K: Kq = Kq {
    ty: GgmlType::Q5_K,
    f16_offsets: &[0, 2],
    max_error: MAX_QUANTIZATION_TOTAL_ERROR,
};
const Q6_K: Kq = Kq {
    ty: GgmlType::Q6_K,
    f16_offsets: &[208],
    max_error: MAX_QUANTIZATION_TOTAL_ERROR,
};

impl Kq {
    fn block_bytes(&self) -> usize {
        self.ty.block_bytes() as usize
    }
}

fn base_seed() -> u64 {
    let seed = std::env::var("GPUQ_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6b71_7561_6e74);
    eprintln!("seed {seed} (set GPUQ_TEST_SEED to change)");
    seed
}

/// One set of rows: `rows` of `row_len` values from `data`, with per-column importance
/// weights like an imatrix's (non-negative, log-normal, a few exact zeros).
struct Case {
    data: Data,
    row_len: usize,
    x: Vec<f32>,
    imatrix: Vec<f32>,
}

const ROW_LENS: [usize; 8] = [256, 1024, 4096, 16384, 768, 2048, 8192, 512];
/// Elements per case: several rows each (at least 2).
const CASE_ELEMS: usize = 262144;

fn imatrix(n: usize, rng: &mut StdRng) -> Vec<f32> {
    let normal = Normal::new(0.0f32, 1.0).unwrap();
    (0..n)
        .map(|_| {
            if rng.random::<f32>() < 0.03 {
                0.0
            } else {
                normal.sample(rng).exp()
            }
        })
        .collect()
}

/// Where a case's values come from: a shared distribution, or one of the edge cases that
/// steer the scale searches into their corners.
#[derive(Clone, Copy, Debug)]
enum Data {
    Dist(Dist),
    /// Every value in [-1.01, -1]: groups with no positive value, whose least-squares min
    /// lands at or past the group's max.
    NarrowNegative,
    /// Every value in [1, 1.01].
    NarrowPositive,
    /// 95% exact zeros, the rest N(0, 1).
    Sparse,
    /// Small integers (N(0, 4) rounded): many exact ties for `nearest_int`.
    Integers,
    /// N(0, 3e4): values past f16's range, scales near it.
    VeryHuge,
    /// N(0, 1e-9): f16 scales underflow to subnormals or zero.
    VeryTiny,
}

impl Data {
    fn all() -> Vec<Data> {
        let mut v: Vec<Data> = Dist::all(QK_K).into_iter().map(Data::Dist).collect();
        v.extend([
            Data::NarrowNegative,
            Data::NarrowPositive,
            Data::Sparse,
            Data::Integers,
            Data::VeryHuge,
            Data::VeryTiny,
        ]);
        v
    }

    fn sample(self, n: usize, r: &mut StdRng) -> Vec<f32> {
        let normal = Normal::new(0.0f32, 1.0).unwrap();
        match self {
            Data::Dist(d) => sample(d, n, r),
            Data::NarrowNegative => (0..n).map(|_| -1.0 - 0.01 * r.random::<f32>()).collect(),
            Data::NarrowPositive => (0..n).map(|_| 1.0 + 0.01 * r.random::<f32>()).collect(),
            Data::Sparse => (0..n)
                .map(|_| {
                    if r.random::<f32>() < 0.95 {
                        0.0
                    } else {
                        normal.sample(r)
                    }
                })
                .collect(),
            Data::Integers => (0..n).map(|_| (4.0 * normal.sample(r)).round()).collect(),
            Data::VeryHuge => (0..n).map(|_| 3e4 * normal.sample(r)).collect(),
            Data::VeryTiny => (0..n).map(|_| 1e-9 * normal.sample(r)).collect(),
        }
    }
}

fn cases(kq: &Kq, seed: u64) -> Vec<Case> {
    Data::all()
        .into_iter()
        .enumerate()
        .map(|(i, data)| {
            let mut r = rng(seed ^ ((kq.ty.id() as u64) << 32) ^ i as u64);
            let row_len = ROW_LENS[(i + kq.ty.id() as usize) % ROW_LENS.len()];
            let rows = (CASE_ELEMS / row_len).max(2);
            let x = data.sample(rows * row_len, &mut r);
            let imatrix = imatrix(row_len, &mut r);
            Case {
                data,
                row_len,
                x,
                imatrix,
            }
        })
        .collect()
}

/// Encodes with gpuq's table entry; every byte of the output is overwritten first with a
/// sentinel so an unwritten byte shows as a mismatch.
fn encode(kq: &Kq, x: &[f32], row_len: usize, w: Option<&[f32]>) -> Vec<u8> {
    let n_blocks = x.len() / QK_K;
    let mut out = vec![0xA5u8; n_blocks * kq.block_bytes()];
    encode_rows(kq.ty, x, row_len, w, &mut out).unwrap();
    out
}

fn decode(kq: &Kq, raw: &[u8], row_len: usize) -> Vec<f32> {
    let n = raw.len() / kq.block_bytes() * QK_K;
    let mut out = vec![f32::NAN; n];
    decode_rows(kq.ty, raw, row_len, &mut out).unwrap();
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// Compares our bytes with llama.cpp's; returns a report line for a mismatch.
fn compare_blocks(kq: &Kq, what: &str, ours: &[u8], theirs: &[u8], x: &[f32]) -> Option<String> {
    let bb = kq.block_bytes();
    let diff = differing_blocks(ours, theirs, bb);
    let first = *diff.first()?;
    Some(format!(
        "{} {what}: {} of {} blocks differ; first #{first}\n  ours   {}\n  llama  {}\n  x[..8] {:?}",
        kq.ty,
        diff.len(),
        ours.len() / bb,
        hex(&ours[first * bb..(first + 1) * bb]),
        hex(&theirs[first * bb..(first + 1) * bb]),
        &x[first * QK_K..first * QK_K + 8],
    ))
}

/// Encodes every case with and without importance weights, here and with llama.cpp's
/// `ggml_quantize_chunk`, and requires identical bytes.
fn encode_matches_llama_cpp(kq: &Kq) {
    let seed = base_seed();
    let dir = tempfile::tempdir().unwrap();
    let cases = cases(kq, seed);
    let mut manifest = String::new();
    let mut ours = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let src = dir.path().join(format!("x{i}.f32"));
        let imat = dir.path().join(format!("w{i}.f32"));
        write_f32(&src, &c.x);
        write_f32(&imat, &c.imatrix);
        for weighted in [false, true] {
            let out = dir.path().join(format!("q{i}_{weighted}.bin"));
            let w = weighted.then_some(c.imatrix.as_slice());
            ours.push((i, weighted, out.clone(), encode(kq, &c.x, c.row_len, w)));
            let imat_arg = if weighted {
                imat.display().to_string()
            } else {
                "-".to_string()
            };
            writeln!(
                manifest,
                "{} {} {} {} {imat_arg}",
                kq.ty.id(),
                c.row_len,
                src.display(),
                out.display()
            )
            .unwrap();
        }
    }
    let manifest_path = dir.path().join("manifest.txt");
    std::fs::write(&manifest_path, manifest).unwrap();
    python(LLAMA_QUANTIZE, &[manifest_path.to_str().unwrap()]);

    let mut failures = Vec::new();
    let mut totals = [(0usize, 0usize); 2];
    for (i, weighted, path, ours) in &ours {
        let c = &cases[*i];
        let theirs = std::fs::read(path).unwrap();
        let what = format!(
            "{:?} rows of {} ({})",
            c.data,
            c.row_len,
            if *weighted { "imatrix" } else { "no imatrix" }
        );
        let n = ours.len() / kq.block_bytes();
        let bad = differing_blocks(ours, &theirs, kq.block_bytes()).len();
        totals[*weighted as usize].0 += n;
        totals[*weighted as usize].1 += n - bad;
        if let Some(msg) = compare_blocks(kq, &what, ours, &theirs, &c.x) {
            failures.push(msg);
        }
    }
    for (weighted, (n, eq)) in totals.iter().enumerate() {
        let w = if weighted == 1 {
            "imatrix"
        } else {
            "no imatrix"
        };
        eprintln!(
            "{} vs llama.cpp ggml_quantize_chunk ({w}): {eq} of {n} blocks equal",
            kq.ty
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A random block: random bytes with every f16 field forced finite.
fn random_blocks(kq: &Kq, n: usize, r: &mut StdRng) -> Vec<u8> {
    let bb = kq.block_bytes();
    let mut raw: Vec<u8> = (0..n * bb).map(|_| r.random()).collect();
    for blk in raw.chunks_mut(bb) {
        for &o in kq.f16_offsets {
            let h = u16::from_le_bytes([blk[o], blk[o + 1]]);
            let h = if (h >> 10) & 0x1f == 0x1f {
                h & !0x4000
            } else {
                h
            };
            blk[o..o + 2].copy_from_slice(&h.to_le_bytes());
        }
    }
    raw
}

/// Decodes our encoder's output and random blocks here and with gguf-py; bits must agree.
fn decode_matches_gguf_py(kq: &Kq) {
    let seed = base_seed();
    let dir = tempfile::tempdir().unwrap();
    let mut inputs: Vec<(String, usize, Vec<u8>)> = Vec::new();
    for c in cases(kq, seed) {
        for w in [None, Some(c.imatrix.as_slice())] {
            let what = format!("encoded {:?} (imatrix: {})", c.data, w.is_some());
            inputs.push((what, c.row_len, encode(kq, &c.x, c.row_len, w)));
        }
    }
    let mut r = rng(seed ^ 0xdec0de ^ kq.ty.id() as u64);
    inputs.push((
        "random blocks".into(),
        QK_K,
        random_blocks(kq, 2048, &mut r),
    ));

    let mut manifest = String::new();
    for (i, (_, _, raw)) in inputs.iter().enumerate() {
        let raw_path = dir.path().join(format!("raw{i}.bin"));
        std::fs::write(&raw_path, raw).unwrap();
        let out = dir.path().join(format!("y{i}.f32"));
        writeln!(
            manifest,
            "{} {} {}",
            kq.ty.name(),
            raw_path.display(),
            out.display()
        )
        .unwrap();
    }
    let manifest_path = dir.path().join("manifest.txt");
    std::fs::write(&manifest_path, manifest).unwrap();
    python(GGUF_DEQUANTIZE, &[manifest_path.to_str().unwrap()]);

    let (mut n_blocks, mut n_equal) = (0, 0);
    let mut failures = Vec::new();
    for (i, (what, row_len, raw)) in inputs.iter().enumerate() {
        let ours = decode(kq, raw, *row_len);
        let theirs = read_f32(&dir.path().join(format!("y{i}.f32")));
        assert_eq!(ours.len(), theirs.len(), "{what}: lengths");
        let bits = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
        let diff = differing_blocks(&bits(&ours), &bits(&theirs), QK_K * 4);
        n_blocks += ours.len() / QK_K;
        n_equal += ours.len() / QK_K - diff.len();
        if let Some(&b) = diff.first() {
            let j = (0..QK_K)
                .map(|j| b * QK_K + j)
                .find(|&j| ours[j].to_bits() != theirs[j].to_bits())
                .unwrap();
            failures.push(format!(
                "{} {what}: {} blocks decode differently; first element {j}: ours {} gguf-py {}",
                kq.ty,
                diff.len(),
                ours[j],
                theirs[j]
            ));
        }
    }
    eprintln!(
        "{} decode vs gguf-py: {n_equal} of {n_blocks} blocks bit-identical",
        kq.ty
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// test-quantize-fns.cpp's `generate_data`: `0.1 + amplitude*cosf(i + offset)`.
fn generate_data(offset: f32, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (0.1f64 + (2.0f32 * (i as f32 + offset).cos()) as f64) as f32)
        .collect()
}

/// test-quantize-fns.cpp's `array_rmse`: sqrt of the summed squared error, over n.
fn array_rmse(a: &[f32], b: &[f32]) -> f32 {
    let sum: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| {
            let d = (x - y) as f64;
            d * d
        })
        .sum();
    (sum.sqrt() as f32) / a.len() as f32
}

/// test-quantize-fns.cpp's total quantization error check (test size 32*128), for both
/// encoder paths (importance weights all 1 for the weighted one).
fn round_trip_error_within_llama_bounds(kq: &Kq) {
    let test_size = 32 * 128;
    let x = generate_data(0.0, test_size);
    let ones = vec![1.0f32; test_size];
    for w in [None, Some(ones.as_slice())] {
        let y = decode(kq, &encode(kq, &x, test_size, w), test_size);
        let err = array_rmse(&x, &y);
        eprintln!(
            "{} total quantization error (weighted: {}): {err}",
            kq.ty,
            w.is_some()
        );
        assert!(
            err < kq.max_error,
            "{}: error {err} >= {} (weighted: {})",
            kq.ty,
            kq.max_error,
            w.is_some()
        );
    }
}

macro_rules! kquant_tests {
    ($($modname:ident => $kq:expr),* $(,)?) => {$(
        mod $modname {
            use super::*;
            #[test]
            fn encode_matches_llama_cpp() {
                super::encode_matches_llama_cpp(&$kq);
            }
            #[test]
            fn decode_matches_gguf_py() {
                super::decode_matches_gguf_py(&$kq);
            }
            #[test]
            fn round_trip_error_within_llama_bounds() {
                super::round_trip_error_within_llama_bounds(&$kq);
            }
        }
    )*};
}

kquant_tests! {
    q4_k => Q4_K,
    q6_k => Q6_K,
    q5_k => Q5_K,
    q2_k => Q2_K,
    q3_k => Q3_K,
}

#[test]
fn every_kquant_is_in_the_codec_table() {
    for ty in [
        GgmlType::Q2_K,
        GgmlType::Q3_K,
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
    ] {
        assert!(
            gpuq::codec::can_encode(ty) && gpuq::codec::can_decode(ty),
            "{ty}"
        );
    }
}
