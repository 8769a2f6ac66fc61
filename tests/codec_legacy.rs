//! The legacy quant codecs (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) against two independent references:
//! gguf-py's numpy quantizers (`gguf.quants`) and llama.cpp's own `ggml_quantize_chunk` from
//! the shared library bundled with llama-cpp-python, unweighted and with importance weights;
//! plus llama.cpp's round-trip error bounds (tests/test-quantize-fns.cpp).

mod common;

use common::{Dist, differing_blocks, python, read_f32, rng, sample, write_f32};
use gpuq::GgmlType;
use gpuq::codec::{decode_rows, encode_rows};
use rand::Rng;
use std::path::Path;

/// Row lengths tried: one block, an odd number of blocks, a typical hidden size.
const ROW_LENS: [usize; 3] = [32, 160, 4096];
/// About this many elements per (distribution, row length).
const ELEMS_PER_CASE: usize = 16384;

// llama.cpp tests/test-quantize-fns.cpp
/// `MAX_QUANTIZATION_TOTAL_ERROR`: bound on `array_rmse` of a quantize/dequantize round trip.
const MAX_QUANTIZATION_TOTAL_ERROR: f32 = 0.002;
/// test-quantize-fns' `test_size` (32 * 128).
const TEST_SIZE: usize = 32 * 128;

struct Case {
    dist: Dist,
    row_len: usize,
    data: Vec<f32>,
    /// Per-column importance weights (an imatrix row): mostly log-normal, some zero.
    weights: Vec<f32>,
}

impl Case {
    fn rows(&self) -> usize {
        self.data.len() / self.row_len
    }
}

fn cases(seed: u64) -> Vec<Case> {
    let mut r = rng(seed);
    let mut out = Vec::new();
    for dist in Dist::all(32) {
        for row_len in ROW_LENS {
            let rows = ELEMS_PER_CASE.div_ceil(row_len);
            let data = sample(dist, rows * row_len, &mut r);
            let weights = (0..row_len)
                .map(|_| {
                    if r.random::<f32>() < 0.05 {
                        0.0
                    } else {
                        (r.random::<f32>() * 4.0 - 2.0).exp()
                    }
                })
                .collect();
            out.push(Case {
                dist,
                row_len,
                data,
                weights,
            });
        }
    }
    out
}

fn block_bytes(ty: GgmlType) -> usize {
    ty.block_bytes() as usize
}

fn encode(ty: GgmlType, c: &Case, weighted: bool) -> Vec<u8> {
    let mut dst = vec![0u8; c.rows() * c.row_len / 32 * block_bytes(ty)];
    let w = weighted.then_some(c.weights.as_slice());
    encode_rows(ty, &c.data, c.row_len, w, &mut dst).unwrap();
    dst
}

fn decode(ty: GgmlType, bytes: &[u8], row_len: usize) -> Vec<f32> {
    let n = bytes.len() / block_bytes(ty) * 32;
    let mut out = vec![f32::NAN; n];
    decode_rows(ty, bytes, row_len, &mut out).unwrap();
    out
}

const GGUF_PY_QUANTIZE: &str = r#"
import sys, numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import quantize
t = T[sys.argv[1]]
for spec in sys.argv[2:]:
    path, n = spec.rsplit(':', 1)
    a = np.fromfile(path, dtype=np.float32).reshape(-1, int(n))
    with np.errstate(all='ignore'):
        quantize(a, t).tofile(path + '.out')
"#;

const GGUF_PY_DEQUANTIZE: &str = r#"
import sys, numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize
t = T[sys.argv[1]]
for spec in sys.argv[2:]:
    path, rows = spec.rsplit(':', 1)
    raw = np.fromfile(path, dtype=np.uint8).reshape(int(rows), -1)
    with np.errstate(all='ignore'):
        dequantize(raw, t).astype(np.float32).tofile(path + '.out')
"#;

/// llama.cpp's `ggml_quantize_chunk(type, src, dst, 0, nrows, n_per_row, imatrix)`.
const LLAMA_QUANTIZE: &str = r#"
import sys, os, ctypes, numpy as np, llama_cpp
lib = ctypes.CDLL(os.path.join(os.path.dirname(llama_cpp.__file__), 'lib', 'libggml-base.so'))
q = lib.ggml_quantize_chunk
q.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
              ctypes.c_int64, ctypes.c_void_p]
q.restype = ctypes.c_size_t
lib.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]
lib.ggml_row_size.restype = ctypes.c_size_t
ty = int(sys.argv[1])
for spec in sys.argv[2:]:
    path, n, wpath = spec.split(':')
    n = int(n)
    a = np.ascontiguousarray(np.fromfile(path, dtype=np.float32))
    rows = a.size // n
    out = np.zeros(lib.ggml_row_size(ty, n) * rows, dtype=np.uint8)
    w = None if wpath == '-' else np.ascontiguousarray(np.fromfile(wpath, dtype=np.float32))
    size = q(ty, a.ctypes.data, out.ctypes.data, 0, rows, n, None if w is None else w.ctypes.data)
    assert size == out.size, (size, out.size)
    out.tofile(path + '.out')
"#;

fn llama_cpp_available() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import llama_cpp"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn write_bytes(path: &Path, b: &[u8]) {
    std::fs::write(path, b).unwrap();
}

/// Compares `ours` with `theirs` per case; panics listing the first differing blocks.
fn compare_bytes(ty: GgmlType, what: &str, cs: &[Case], ours: &[Vec<u8>], theirs: &[Vec<u8>]) {
    let bb = block_bytes(ty);
    let mut total = 0;
    let mut failures = Vec::new();
    for ((c, a), b) in cs.iter().zip(ours).zip(theirs) {
        total += a.len() / bb;
        let diff = differing_blocks(a, b, bb);
        if !diff.is_empty() {
            let i = diff[0];
            failures.push(format!(
                "{:?} row_len {}: {} of {} blocks differ; first #{i}: ours {:02x?} theirs {:02x?} input {:?}",
                c.dist,
                c.row_len,
                diff.len(),
                a.len() / bb,
                &a[i * bb..(i + 1) * bb],
                &b[i * bb..(i + 1) * bb],
                &c.data[i * 32..(i + 1) * 32],
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{ty} vs {what}:\n{}",
        failures.join("\n")
    );
    eprintln!("{ty}: {total} blocks equal to {what}");
}

fn vs_gguf_py_encode(ty: GgmlType, seed: u64) {
    let cs = cases(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut specs = Vec::new();
    for (i, c) in cs.iter().enumerate() {
        let p = dir.path().join(format!("c{i}.f32"));
        write_f32(&p, &c.data);
        specs.push(format!("{}:{}", p.display(), c.row_len));
    }
    let args: Vec<&str> = std::iter::once(ty.name())
        .chain(specs.iter().map(|s| s.as_str()))
        .collect();
    python(GGUF_PY_QUANTIZE, &args);
    let ours: Vec<_> = cs.iter().map(|c| encode(ty, c, false)).collect();
    let theirs: Vec<_> = (0..cs.len())
        .map(|i| std::fs::read(dir.path().join(format!("c{i}.f32.out"))).unwrap())
        .collect();
    compare_bytes(ty, "gguf-py quantize", &cs, &ours, &theirs);
}

/// Random blocks: every bit pattern of the quants, the f16 fields random but finite.
fn random_blocks(ty: GgmlType, n_blocks: usize, seed: u64) -> Vec<u8> {
    let mut r = rng(seed);
    let bb = block_bytes(ty);
    let mut v: Vec<u8> = (0..n_blocks * bb).map(|_| r.random()).collect();
    let n_f16 = match ty {
        GgmlType::Q4_1 | GgmlType::Q5_1 => 2,
        _ => 1,
    };
    for blk in v.chunks_mut(bb) {
        for k in 0..n_f16 {
            // clear one exponent bit so the exponent is never all ones (inf/NaN)
            blk[2 * k + 1] &= 0xbf;
        }
    }
    v
}

fn vs_gguf_py_decode(ty: GgmlType, seed: u64) {
    let cs = cases(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut inputs: Vec<(Vec<u8>, usize)> = cs
        .iter()
        .map(|c| (encode(ty, c, false), c.row_len))
        .collect();
    inputs.push((random_blocks(ty, 4096, seed ^ 0x5eed), 256));
    let mut specs = Vec::new();
    for (i, (b, row_len)) in inputs.iter().enumerate() {
        let p = dir.path().join(format!("c{i}.q"));
        write_bytes(&p, b);
        let rows = b.len() / block_bytes(ty) * 32 / row_len;
        specs.push(format!("{}:{rows}", p.display()));
    }
    let args: Vec<&str> = std::iter::once(ty.name())
        .chain(specs.iter().map(|s| s.as_str()))
        .collect();
    python(GGUF_PY_DEQUANTIZE, &args);
    let mut total = 0;
    for (i, (b, row_len)) in inputs.iter().enumerate() {
        let ours = decode(ty, b, *row_len);
        let theirs = read_f32(&dir.path().join(format!("c{i}.q.out")));
        assert_eq!(ours.len(), theirs.len());
        let bad: Vec<usize> = (0..ours.len())
            .filter(|&k| ours[k].to_bits() != theirs[k].to_bits())
            .collect();
        assert!(
            bad.is_empty(),
            "{ty} decode vs gguf-py, input {i}: {} of {} values differ; first at {}: {} vs {}",
            bad.len(),
            ours.len(),
            bad[0],
            ours[bad[0]],
            theirs[bad[0]]
        );
        total += ours.len() / 32;
    }
    eprintln!("{ty}: {total} blocks decoded bit-equal to gguf-py dequantize");
}

/// Hand-made blocks at the edges: zeros, ties in the largest magnitude, exact rounding ties,
/// f32 subnormals (the inverse scale overflows to infinity), scales beyond f16's range.
fn edge_cases(seed: u64) -> Vec<Case> {
    let mut r = rng(seed);
    let mut blocks: Vec<Vec<f32>> = vec![
        vec![0.0; 32],
        vec![-0.0; 32],
        (0..32)
            .map(|i| if i % 2 == 0 { 3.0 } else { -3.0 })
            .collect(),
        (0..32)
            .map(|i| if i % 2 == 0 { -3.0 } else { 3.0 })
            .collect(),
        (0..32).map(|i| i as f32 - 16.0).collect(),
        (0..32).map(|i| (i as f32 - 16.0) + 0.5).collect(),
        (0..32).map(|i| (i as f32 - 16.0) * 0.25).collect(),
        (0..32).map(|i| ((i * 7) % 15) as f32 - 7.5).collect(),
        (0..32).map(|i| ((i * 5) % 255) as f32 - 127.0).collect(),
        (0..32).map(|i| if i == 5 { 1e-39 } else { 0.0 }).collect(),
        (0..32).map(|i| (i as f32 - 16.0) * 1e-40).collect(),
        (0..32).map(|i| (i as f32 - 16.0) * 1e-30).collect(),
        (0..32).map(|i| (i as f32 - 16.0) * 1e5).collect(),
        (0..32).map(|i| (i as f32 - 16.0) * 1e20).collect(),
        (0..32)
            .map(|i| if i == 0 { 1.0 } else { 1.0 + i as f32 * 1e-7 })
            .collect(),
        (0..32).map(|_| 7.0).collect(),
        (0..32).map(|_| -7.0).collect(),
    ];
    for _ in 0..16 {
        // random small integers times a power of two: many exact ties
        let s = 2f32.powi(r.random_range(-20..20));
        blocks.push(
            (0..32)
                .map(|_| r.random_range(-20i32..=20) as f32 * 0.5 * s)
                .collect(),
        );
    }
    let data: Vec<f32> = blocks.concat();
    let n = data.len();
    vec![
        Case {
            dist: Dist::Normal,
            row_len: 32,
            data,
            weights: (0..32).map(|i| 0.5 + i as f32 * 0.1).collect(),
        },
        Case {
            dist: Dist::Normal,
            row_len: n,
            data: blocks.concat(),
            weights: (0..n)
                .map(|i| {
                    if i % 11 == 0 {
                        0.0
                    } else {
                        1.0 + (i % 7) as f32
                    }
                })
                .collect(),
        },
    ]
}

fn vs_llama_cpp(ty: GgmlType, seed: u64, weighted: bool) {
    vs_llama_cpp_on(ty, cases(seed), weighted);
}

fn vs_llama_cpp_on(ty: GgmlType, cs: Vec<Case>, weighted: bool) {
    if !llama_cpp_available() {
        eprintln!("SKIPPED {ty} vs llama.cpp: python3 cannot import llama_cpp (see .ci/run)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut specs = Vec::new();
    for (i, c) in cs.iter().enumerate() {
        let p = dir.path().join(format!("c{i}.f32"));
        write_f32(&p, &c.data);
        let w = if weighted {
            let wp = dir.path().join(format!("c{i}.w"));
            write_f32(&wp, &c.weights);
            wp.display().to_string()
        } else {
            "-".to_string()
        };
        specs.push(format!("{}:{}:{w}", p.display(), c.row_len));
    }
    let id = ty.id().to_string();
    let args: Vec<&str> = std::iter::once(id.as_str())
        .chain(specs.iter().map(|s| s.as_str()))
        .collect();
    python(LLAMA_QUANTIZE, &args);
    let ours: Vec<_> = cs.iter().map(|c| encode(ty, c, weighted)).collect();
    let theirs: Vec<_> = (0..cs.len())
        .map(|i| std::fs::read(dir.path().join(format!("c{i}.f32.out"))).unwrap())
        .collect();
    let what = if weighted {
        "llama.cpp ggml_quantize_chunk with imatrix"
    } else {
        "llama.cpp ggml_quantize_chunk without imatrix"
    };
    compare_bytes(ty, what, &cs, &ours, &theirs);
}

/// test-quantize-fns' `generate_data`: `0.1 + amplitude*cosf(i + offset)` (the 0.1 a double).
fn generate_data(offset: f32, n: usize, amplitude: f32) -> Vec<f32> {
    (0..n)
        .map(|i| (0.1f64 + (amplitude * (i as f32 + offset).cos()) as f64) as f32)
        .collect()
}

/// test-quantize-fns' `array_rmse`: sqrt(sum of squared differences) / n.
fn array_rmse(a: &[f32], b: &[f32]) -> f32 {
    let sum: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| {
            let d = (x - y) as f64;
            d * d
        })
        .sum();
    (sum.sqrt() as f32) / a.len() as f32
}

fn round_trip(ty: GgmlType, x: &[f32], row_len: usize, w: Option<&[f32]>) -> Vec<f32> {
    let mut q = vec![0u8; x.len() / 32 * block_bytes(ty)];
    encode_rows(ty, x, row_len, w, &mut q).unwrap();
    decode(ty, &q, row_len)
}

fn error_bounds(ty: GgmlType, seed: u64) {
    // llama.cpp's own check, on its synthetic data.
    let x = generate_data(0.0, TEST_SIZE, 2.0);
    let y = round_trip(ty, &x, TEST_SIZE, None);
    let e = array_rmse(&x, &y);
    assert!(e < MAX_QUANTIZATION_TOTAL_ERROR, "{ty} synthetic: {e}");
    // The weighted path (all-equal importance) stays within the same bound. (It is not
    // close to the unweighted result: it picks other scales on purpose.)
    let ones = vec![1.0f32; TEST_SIZE];
    let yw = round_trip(ty, &x, TEST_SIZE, Some(&ones));
    let ew = array_rmse(&x, &yw);
    assert!(
        ew < MAX_QUANTIZATION_TOTAL_ERROR,
        "{ty} synthetic weighted: {ew}"
    );
    eprintln!(
        "{ty}: synthetic array_rmse {e:.6} (weighted {ew:.6}), bound {MAX_QUANTIZATION_TOTAL_ERROR}"
    );
    // Random data, scale-free: array_rmse relative to the data's rms, same bound.
    let mut r = rng(seed);
    for dist in Dist::all(32) {
        if matches!(dist, Dist::HeavyTailed | Dist::OneOutlierPerBlock(_)) {
            // outliers set the block scale; llama.cpp's bound assumes bounded data
            continue;
        }
        let x = sample(dist, TEST_SIZE, &mut r);
        let rms = (x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / TEST_SIZE as f64).sqrt();
        for w in [None, Some(ones.as_slice())] {
            let y = round_trip(ty, &x, TEST_SIZE, w);
            let e = array_rmse(&x, &y) as f64 / rms.max(f64::MIN_POSITIVE);
            // Tiny data puts the scale among f16 subnormals, which costs precision.
            let bound =
                if dist == Dist::Tiny { 8.0 } else { 1.0 } * MAX_QUANTIZATION_TOTAL_ERROR as f64;
            assert!(e < bound, "{ty} {dist:?} weighted={}: {e}", w.is_some());
        }
    }
}

fn every_byte_written(ty: GgmlType, seed: u64) {
    for c in cases(seed) {
        for weighted in [false, true] {
            let w = weighted.then_some(c.weights.as_slice());
            let len = c.data.len() / 32 * block_bytes(ty);
            let mut a = vec![0x00u8; len];
            let mut b = vec![0xffu8; len];
            encode_rows(ty, &c.data, c.row_len, w, &mut a).unwrap();
            encode_rows(ty, &c.data, c.row_len, w, &mut b).unwrap();
            assert_eq!(a, b, "{ty} {:?}: some output byte is not written", c.dist);
            let y = decode(ty, &a, c.row_len);
            assert!(
                y.iter().all(|v| v.is_finite()),
                "{ty} {:?}: decoded value not finite",
                c.dist
            );
        }
    }
}

macro_rules! legacy_tests {
    ($m:ident, $ty:expr, $seed:expr) => {
        mod $m {
            use super::*;
            #[test]
            fn encode_equals_gguf_py() {
                vs_gguf_py_encode($ty, $seed);
            }
            #[test]
            fn decode_equals_gguf_py() {
                vs_gguf_py_decode($ty, $seed + 1);
            }
            #[test]
            fn encode_equals_llama_cpp_unweighted() {
                vs_llama_cpp($ty, $seed + 2, false);
            }
            #[test]
            fn encode_equals_llama_cpp_weighted() {
                vs_llama_cpp($ty, $seed + 3, true);
            }
            #[test]
            fn edge_blocks_equal_llama_cpp() {
                vs_llama_cpp_on($ty, edge_cases($seed + 6), false);
                vs_llama_cpp_on($ty, edge_cases($seed + 6), true);
            }
            #[test]
            fn round_trip_within_llama_cpp_bounds() {
                error_bounds($ty, $seed + 4);
            }
            #[test]
            fn every_output_byte_written() {
                every_byte_written($ty, $seed + 5);
            }
        }
    };
}

legacy_tests!(q4_0, GgmlType::Q4_0, 0x4000);
legacy_tests!(q4_1, GgmlType::Q4_1, 0x4100);
legacy_tests!(q5_0, GgmlType::Q5_0, 0x5000);
legacy_tests!(q5_1, GgmlType::Q5_1, 0x5100);
legacy_tests!(q8_0, GgmlType::Q8_0, 0x8000);
