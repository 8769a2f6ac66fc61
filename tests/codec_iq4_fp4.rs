//! The IQ4_NL, IQ4_XS, MXFP4, NVFP4, Q1_0 and Q2_0 CPU codecs against llama.cpp and gguf-py:
//! - encode == llama.cpp's `ggml_quantize_chunk` byte for byte, without and with importance
//!   weights (the imatrix path; MXFP4, NVFP4 and Q1_0 ignore them, as ggml does), on seeded
//!   random rows in every `Dist` plus edge cases, at several row lengths;
//! - decode == gguf-py's `dequantize` bit for bit (IQ4_NL, IQ4_XS, MXFP4, NVFP4) and
//!   == llama.cpp's `dequantize_row_X` (all six; gguf-py has no Q1_0 or Q2_0), on encoder output and
//!   on random blocks;
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
const LLAMA_DEQUANTIZE: &str = include_str!("py/llama_dequantize.py");
const GGUF_DEQUANTIZE: &str = include_str!("py/gguf_dequantize.py");

// llama.cpp tests/test-quantize-fns.cpp
/// `MAX_QUANTIZATION_TOTAL_ERROR` (IQ4_NL, IQ4_XS, MXFP4).
const MAX_QUANTIZATION_TOTAL_ERROR: f32 = 0.002;
/// `MAX_QUANTIZATION_TOTAL_ERROR_FP4` (NVFP4).
const MAX_QUANTIZATION_TOTAL_ERROR_FP4: f32 = 0.0030;
/// `MAX_QUANTIZATION_TOTAL_ERROR_BINARY` (Q1_0).
const MAX_QUANTIZATION_TOTAL_ERROR_BINARY: f32 = 0.025;
/// `MAX_QUANTIZATION_TOTAL_ERROR_TERNARY` (Q2_0).
const MAX_QUANTIZATION_TOTAL_ERROR_TERNARY: f32 = 0.01;

/// One type as the tests see it.
struct Ty {
    ty: GgmlType,
    /// Byte offsets of f16 fields inside a block (forced finite in random blocks).
    f16_offsets: &'static [usize],
    /// gguf-py (0.19) has a decoder for it.
    gguf_py_decodes: bool,
    max_error: f32,
}

const IQ4_NL: Ty = Ty {
    ty: GgmlType::IQ4_NL,
    f16_offsets: &[0],
    gguf_py_decodes: true,
    max_error: MAX_QUANTIZATION_TOTAL_ERROR,
};
const IQ4_XS: Ty = Ty {
    ty: GgmlType::IQ4_XS,
    f16_offsets: &[0],
    gguf_py_decodes: true,
    max_error: MAX_QUANTIZATION_TOTAL_ERROR,
};
const MXFP4: Ty = Ty {
    ty: GgmlType::MXFP4,
    f16_offsets: &[],
    gguf_py_decodes: true,
    max_error: MAX_QUANTIZATION_TOTAL_ERROR,
};
const NVFP4: Ty = Ty {
    ty: GgmlType::NVFP4,
    f16_offsets: &[],
    gguf_py_decodes: true,
    max_error: MAX_QUANTIZATION_TOTAL_ERROR_FP4,
};
const Q1_0: Ty = Ty {
    ty: GgmlType::Q1_0,
    f16_offsets: &[0],
    gguf_py_decodes: false,
    max_error: MAX_QUANTIZATION_TOTAL_ERROR_BINARY,
};

const Q2_0: Ty = Ty {
    ty: GgmlType::Q2_0,
    f16_offsets: &[0],
    gguf_py_decodes: false,
    max_error: MAX_QUANTIZATION_TOTAL_ERROR_TERNARY,
};

impl Ty {
    fn block_bytes(&self) -> usize {
        self.ty.block_bytes() as usize
    }
    fn block(&self) -> usize {
        self.ty.block_elems() as usize
    }
}

fn base_seed() -> u64 {
    let seed = std::env::var("GPUQ_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6971_3466_7034);
    eprintln!("seed {seed} (set GPUQ_TEST_SEED to change)");
    seed
}

/// Where a case's values come from: a shared distribution or an edge case.
#[derive(Clone, Copy, Debug)]
enum Data {
    Dist(Dist),
    /// Every value in [-1.01, -1].
    NarrowNegative,
    /// 95% exact zeros (and some -0.0), the rest N(0, 1).
    Sparse,
    /// Small integers (N(0, 4) rounded): exact ties between levels.
    Integers,
    /// N(0, 3e4): past f16's range.
    VeryHuge,
    /// N(0, 1e-9): f16 scales underflow.
    VeryTiny,
    /// N(0, 1e-39): f32 subnormals (MXFP4's exponent wraps below 2^-125).
    Subnormal,
    /// Powers of two times E2M1 values: values sitting exactly on FP4 levels and on
    /// `log2f` integer boundaries; 10% moved one bit pattern down (a hair below a power of
    /// two; below +0.0 that pattern is a NaN, so a few NaNs too: their f16 scales must be
    /// ggml's 0x7E00).
    Fp4Grid,
}

impl Data {
    fn all(block: usize) -> Vec<Data> {
        let mut v: Vec<Data> = Dist::all(block).into_iter().map(Data::Dist).collect();
        v.extend([
            Data::NarrowNegative,
            Data::Sparse,
            Data::Integers,
            Data::VeryHuge,
            Data::VeryTiny,
            Data::Subnormal,
            Data::Fp4Grid,
        ]);
        v
    }

    fn sample(self, n: usize, r: &mut StdRng) -> Vec<f32> {
        let normal = Normal::new(0.0f32, 1.0).unwrap();
        match self {
            Data::Dist(d) => sample(d, n, r),
            Data::NarrowNegative => (0..n).map(|_| -1.0 - 0.01 * r.random::<f32>()).collect(),
            Data::Sparse => (0..n)
                .map(|_| match r.random::<f32>() {
                    p if p < 0.9 => 0.0,
                    p if p < 0.95 => -0.0,
                    _ => normal.sample(r),
                })
                .collect(),
            Data::Integers => (0..n).map(|_| (4.0 * normal.sample(r)).round()).collect(),
            Data::VeryHuge => (0..n).map(|_| 3e4 * normal.sample(r)).collect(),
            Data::VeryTiny => (0..n).map(|_| 1e-9 * normal.sample(r)).collect(),
            Data::Subnormal => (0..n).map(|_| 1e-39 * normal.sample(r)).collect(),
            Data::Fp4Grid => (0..n)
                .map(|_| {
                    let k = [0.0f32, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0][r.random_range(0..8)];
                    let s = if r.random::<bool>() { 1.0 } else { -1.0 };
                    let e = r.random_range(-8i32..8);
                    let v = s * k * 2f32.powi(e);
                    if r.random::<f32>() < 0.1 {
                        f32::from_bits(v.to_bits().wrapping_sub(1))
                    } else {
                        v
                    }
                })
                .collect(),
        }
    }
}

/// One set of rows with per-column importance weights like an imatrix's (log-normal, a few
/// exact zeros).
struct Case {
    data: Data,
    row_len: usize,
    x: Vec<f32>,
    imatrix: Vec<f32>,
}

/// Row lengths tried (those that are a multiple of the type's block): one block, three
/// blocks, 256, 4096 and 2816 (11*256).
fn row_lens(t: &Ty) -> Vec<usize> {
    let b = t.block();
    let mut v = vec![b, 3 * b, 256, 4096, 2816];
    v.retain(|&n| n % b == 0);
    v.dedup();
    v
}

/// Elements per case.
const CASE_ELEMS: usize = 65536;

fn imatrix(n: usize, r: &mut StdRng) -> Vec<f32> {
    let normal = Normal::new(0.0f32, 1.0).unwrap();
    (0..n)
        .map(|_| {
            if r.random::<f32>() < 0.03 {
                0.0
            } else {
                normal.sample(r).exp()
            }
        })
        .collect()
}

fn cases(t: &Ty, seed: u64) -> Vec<Case> {
    let lens = row_lens(t);
    Data::all(t.block())
        .into_iter()
        .enumerate()
        .map(|(i, data)| {
            let mut r = rng(seed ^ ((t.ty.id() as u64) << 32) ^ i as u64);
            let row_len = lens[i % lens.len()];
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

/// Encodes with gpuq's table entry over a sentinel-filled buffer.
fn encode(t: &Ty, x: &[f32], row_len: usize, w: Option<&[f32]>) -> Vec<u8> {
    let mut out = vec![0xA5u8; x.len() / t.block() * t.block_bytes()];
    encode_rows(t.ty, x, row_len, w, &mut out).unwrap();
    out
}

fn decode(t: &Ty, raw: &[u8], row_len: usize) -> Vec<f32> {
    let mut out = vec![f32::NAN; raw.len() / t.block_bytes() * t.block()];
    decode_rows(t.ty, raw, row_len, &mut out).unwrap();
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// Encodes every case with and without importance weights, here and with llama.cpp's
/// `ggml_quantize_chunk`, and requires identical bytes.
fn encode_matches_llama_cpp(t: &Ty) {
    let seed = base_seed();
    let dir = tempfile::tempdir().unwrap();
    let cases = cases(t, seed);
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
            ours.push((i, weighted, out.clone(), encode(t, &c.x, c.row_len, w)));
            let imat_arg = if weighted {
                imat.display().to_string()
            } else {
                "-".to_string()
            };
            writeln!(
                manifest,
                "{} {} {} {} {imat_arg}",
                t.ty.id(),
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

    let bb = t.block_bytes();
    let mut failures = Vec::new();
    let mut totals = [(0usize, 0usize); 2];
    for (i, weighted, path, ours) in &ours {
        let c = &cases[*i];
        let theirs = std::fs::read(path).unwrap();
        let diff = differing_blocks(ours, &theirs, bb);
        let n = ours.len() / bb;
        totals[*weighted as usize].0 += n;
        totals[*weighted as usize].1 += n - diff.len();
        if let Some(&first) = diff.first() {
            failures.push(format!(
                "{} {:?} rows of {} (imatrix: {weighted}): {} of {n} blocks differ; first #{first}\n  ours   {}\n  llama  {}\n  x[..8] {:?}",
                t.ty,
                c.data,
                c.row_len,
                diff.len(),
                hex(&ours[first * bb..(first + 1) * bb]),
                hex(&theirs[first * bb..(first + 1) * bb]),
                &c.x[first * t.block()..first * t.block() + 8],
            ));
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
            t.ty
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Random blocks: random bytes with every f16 field forced finite.
fn random_blocks(t: &Ty, n: usize, r: &mut StdRng) -> Vec<u8> {
    let bb = t.block_bytes();
    let mut raw: Vec<u8> = (0..n * bb).map(|_| r.random()).collect();
    for blk in raw.chunks_mut(bb) {
        for &o in t.f16_offsets {
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

/// Decodes our encoder's output and random blocks here, with llama.cpp and (where it can)
/// with gguf-py; bits must agree.
fn decode_matches_references(t: &Ty) {
    let seed = base_seed();
    let dir = tempfile::tempdir().unwrap();
    let mut inputs: Vec<(String, usize, Vec<u8>)> = Vec::new();
    for c in cases(t, seed) {
        for w in [None, Some(c.imatrix.as_slice())] {
            let what = format!("encoded {:?} (imatrix: {})", c.data, w.is_some());
            inputs.push((what, c.row_len, encode(t, &c.x, c.row_len, w)));
        }
    }
    let mut r = rng(seed ^ 0xdec0de ^ t.ty.id() as u64);
    inputs.push((
        "random blocks".into(),
        t.block(),
        random_blocks(t, 4096, &mut r),
    ));

    let mut llama_manifest = String::new();
    let mut gguf_manifest = String::new();
    for (i, (_, _, raw)) in inputs.iter().enumerate() {
        let raw_path = dir.path().join(format!("raw{i}.bin"));
        std::fs::write(&raw_path, raw).unwrap();
        let p = |w: &str| dir.path().join(format!("{w}{i}.f32")).display().to_string();
        writeln!(
            llama_manifest,
            "{} {} {}",
            t.ty.id(),
            raw_path.display(),
            p("llama")
        )
        .unwrap();
        writeln!(
            gguf_manifest,
            "{} {} {}",
            t.ty.name(),
            raw_path.display(),
            p("gguf")
        )
        .unwrap();
    }
    let mut refs = vec!["llama"];
    let llama_path = dir.path().join("llama.txt");
    std::fs::write(&llama_path, llama_manifest).unwrap();
    python(LLAMA_DEQUANTIZE, &[llama_path.to_str().unwrap()]);
    if t.gguf_py_decodes {
        let gguf_path = dir.path().join("gguf.txt");
        std::fs::write(&gguf_path, gguf_manifest).unwrap();
        python(GGUF_DEQUANTIZE, &[gguf_path.to_str().unwrap()]);
        refs.push("gguf");
    }

    let b = t.block();
    let mut failures = Vec::new();
    for who in refs {
        let (mut n_blocks, mut n_equal) = (0, 0);
        for (i, (what, row_len, raw)) in inputs.iter().enumerate() {
            let ours = decode(t, raw, *row_len);
            let theirs = read_f32(&dir.path().join(format!("{who}{i}.f32")));
            assert_eq!(ours.len(), theirs.len(), "{what}: lengths");
            let bits = |v: &[f32]| -> Vec<u8> { v.iter().flat_map(|x| x.to_le_bytes()).collect() };
            let diff = differing_blocks(&bits(&ours), &bits(&theirs), b * 4);
            n_blocks += ours.len() / b;
            n_equal += ours.len() / b - diff.len();
            if let Some(&k) = diff.first() {
                let j = (0..b)
                    .map(|j| k * b + j)
                    .find(|&j| ours[j].to_bits() != theirs[j].to_bits())
                    .unwrap();
                failures.push(format!(
                    "{} {what}: {} blocks decode differently from {who}; first element {j}: ours {} theirs {}",
                    t.ty,
                    diff.len(),
                    ours[j],
                    theirs[j]
                ));
            }
        }
        eprintln!(
            "{} decode vs {who}: {n_equal} of {n_blocks} blocks bit-identical",
            t.ty
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// test-quantize-fns.cpp's `generate_data`: `0.1 + 2*cosf(i + offset)`.
fn generate_data(offset: f32, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (0.1f64 + (2.0f32 * (i as f32 + offset).cos()) as f64) as f32)
        .collect()
}

/// test-quantize-fns.cpp's `array_rmse`.
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

/// test-quantize-fns.cpp's total quantization error check (test size 32*128).
fn round_trip_error_within_llama_bounds(t: &Ty) {
    let n = 32 * 128;
    let x = generate_data(0.0, n);
    let ones = vec![1.0f32; n];
    for w in [None, Some(ones.as_slice())] {
        let y = decode(t, &encode(t, &x, n, w), n);
        let err = array_rmse(&x, &y);
        eprintln!(
            "{} total quantization error (weighted: {}): {err}",
            t.ty,
            w.is_some()
        );
        assert!(
            err < t.max_error,
            "{}: error {err} >= {}",
            t.ty,
            t.max_error
        );
    }
}

macro_rules! type_tests {
    ($($modname:ident => $t:expr),* $(,)?) => {$(
        mod $modname {
            use super::*;
            #[test]
            fn encode_matches_llama_cpp() {
                super::encode_matches_llama_cpp(&$t);
            }
            #[test]
            fn decode_matches_references() {
                super::decode_matches_references(&$t);
            }
            #[test]
            fn round_trip_error_within_llama_bounds() {
                super::round_trip_error_within_llama_bounds(&$t);
            }
        }
    )*};
}

type_tests! {
    iq4_nl => IQ4_NL,
    iq4_xs => IQ4_XS,
    mxfp4 => MXFP4,
    nvfp4 => NVFP4,
    q1_0 => Q1_0,
    q2_0 => Q2_0,
}

#[test]
fn every_new_type_is_in_the_codec_table() {
    for t in [&IQ4_NL, &IQ4_XS, &MXFP4, &NVFP4, &Q1_0, &Q2_0] {
        assert!(
            gpuq::codec::can_encode(t.ty) && gpuq::codec::can_decode(t.ty),
            "{}",
            t.ty
        );
    }
}
