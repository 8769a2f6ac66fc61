//! TQ1_0 and TQ2_0 against gguf-py's quantizers (`gguf.quants`) and llama.cpp's own
//! `ggml_quantize_chunk` (llama-cpp-python's bundled libggml), byte for byte; decoding bit for
//! bit against gguf-py; llama.cpp's round-trip bound (tests/test-quantize-fns.cpp).

mod common;

use common::{Dist, differing_blocks, python, read_f32, rng, sample, write_f32};
use gpuq::GgmlType;
use gpuq::codec::{decode_rows, encode_rows};
use rand::Rng;

const ROW_LENS: [usize; 3] = [256, 1280, 4096];
const ELEMS_PER_CASE: usize = 32768;
/// test-quantize-fns `MAX_QUANTIZATION_TOTAL_ERROR_TERNARY`.
const MAX_QUANTIZATION_TOTAL_ERROR_TERNARY: f32 = 0.01;

fn cases(seed: u64) -> Vec<(Dist, usize, Vec<f32>)> {
    let mut r = rng(seed);
    let mut out = Vec::new();
    for dist in Dist::all(256) {
        for row_len in ROW_LENS {
            let rows = ELEMS_PER_CASE.div_ceil(row_len);
            out.push((dist, row_len, sample(dist, rows * row_len, &mut r)));
        }
    }
    // exact ternary data: every value is -a, 0 or a
    let a = 0.37f32;
    let t: Vec<f32> = (0..4096)
        .map(|_| (r.random_range(-1i32..=1)) as f32 * a)
        .collect();
    out.push((Dist::Uniform, 256, t));
    out
}

fn encode(ty: GgmlType, x: &[f32], row_len: usize) -> Vec<u8> {
    let mut dst = vec![0u8; x.len() / 256 * ty.block_bytes() as usize];
    encode_rows(ty, x, row_len, None, &mut dst).unwrap();
    dst
}

fn decode(ty: GgmlType, q: &[u8], row_len: usize) -> Vec<f32> {
    let mut y = vec![f32::NAN; q.len() / ty.block_bytes() as usize * 256];
    decode_rows(ty, q, row_len, &mut y).unwrap();
    y
}

const GGUF_PY: &str = r#"
import sys, numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import quantize, dequantize
t = T[sys.argv[1]]
for spec in sys.argv[2:]:
    path, n = spec.rsplit(':', 1)
    a = np.fromfile(path, dtype=np.float32).reshape(-1, int(n))
    with np.errstate(all='ignore'):
        q = quantize(a, t)
        q.tofile(path + '.q')
        # decode our bytes (written beside the input) too
        ours = np.fromfile(path + '.ours', dtype=np.uint8).reshape(q.shape)
        dequantize(ours, t).astype(np.float32).tofile(path + '.dq')
"#;

const LLAMA: &str = r#"
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
    path, n = spec.rsplit(':', 1)
    n = int(n)
    a = np.ascontiguousarray(np.fromfile(path, dtype=np.float32))
    out = np.zeros(lib.ggml_row_size(ty, n) * (a.size // n), dtype=np.uint8)
    assert q(ty, a.ctypes.data, out.ctypes.data, 0, a.size // n, n, None) == out.size
    out.tofile(path + '.llama')
"#;

fn check(ty: GgmlType, seed: u64) {
    let cs = cases(seed);
    let dir = tempfile::tempdir().unwrap();
    let bb = ty.block_bytes() as usize;
    let mut specs = Vec::new();
    let mut ours = Vec::new();
    for (i, (_, row_len, x)) in cs.iter().enumerate() {
        let p = dir.path().join(format!("c{i}.f32"));
        write_f32(&p, x);
        let q = encode(ty, x, *row_len);
        std::fs::write(dir.path().join(format!("c{i}.f32.ours")), &q).unwrap();
        ours.push(q);
        specs.push(format!("{}:{row_len}", p.display()));
    }
    let args: Vec<&str> = std::iter::once(ty.name())
        .chain(specs.iter().map(|s| s.as_str()))
        .collect();
    python(GGUF_PY, &args);
    let llama = std::process::Command::new("python3")
        .args(["-c", "import llama_cpp"])
        .output()
        .is_ok_and(|o| o.status.success());
    if llama {
        let id = ty.id().to_string();
        let args: Vec<&str> = std::iter::once(id.as_str())
            .chain(specs.iter().map(|s| s.as_str()))
            .collect();
        python(LLAMA, &args);
    } else {
        eprintln!("SKIPPED {ty} vs llama.cpp: python3 cannot import llama_cpp");
    }
    let (mut blocks, mut values) = (0, 0);
    for (i, (dist, row_len, x)) in cs.iter().enumerate() {
        let base = dir.path().join(format!("c{i}.f32"));
        let mut refs = vec![(
            "gguf-py",
            std::fs::read(base.with_extension("f32.q")).unwrap(),
        )];
        if llama {
            refs.push((
                "llama.cpp",
                std::fs::read(base.with_extension("f32.llama")).unwrap(),
            ));
        }
        for (who, theirs) in refs {
            let diff = differing_blocks(&ours[i], &theirs, bb);
            assert!(
                diff.is_empty(),
                "{ty} vs {who}, {dist:?} row_len {row_len}: {} of {} blocks differ (first #{})",
                diff.len(),
                ours[i].len() / bb,
                diff[0]
            );
        }
        blocks += ours[i].len() / bb;
        let y = decode(ty, &ours[i], *row_len);
        let theirs = read_f32(&base.with_extension("f32.dq"));
        assert_eq!(y.len(), x.len());
        let bad = (0..y.len())
            .filter(|&k| y[k].to_bits() != theirs[k].to_bits())
            .count();
        assert_eq!(
            bad, 0,
            "{ty} decode vs gguf-py, {dist:?}: {bad} values differ"
        );
        assert!(
            y.iter().all(|v| v.is_finite()),
            "{ty}: decoded value not finite"
        );
        values += y.len();
    }
    eprintln!(
        "{ty}: {blocks} blocks equal to gguf-py{}; {values} values decoded bit-equal to gguf-py",
        if llama {
            " and to llama.cpp ggml_quantize_chunk"
        } else {
            ""
        }
    );
}

/// test-quantize-fns `generate_data` and `array_rmse`.
fn bound(ty: GgmlType) {
    let n = 32 * 128;
    let x: Vec<f32> = (0..n)
        .map(|i| (0.1f64 + (2.0f32 * (i as f32).cos()) as f64) as f32)
        .collect();
    let y = decode(ty, &encode(ty, &x, n), n);
    let sum: f64 = x
        .iter()
        .zip(&y)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum();
    let e = sum.sqrt() as f32 / n as f32;
    assert!(e < MAX_QUANTIZATION_TOTAL_ERROR_TERNARY, "{ty}: {e}");
    eprintln!("{ty}: synthetic array_rmse {e:.6}, bound {MAX_QUANTIZATION_TOTAL_ERROR_TERNARY}");
    // every output byte written: two sentinel fills give the same bytes
    let mut a = vec![0u8; n / 256 * ty.block_bytes() as usize];
    let mut b = vec![0xffu8; a.len()];
    encode_rows(ty, &x, n, None, &mut a).unwrap();
    encode_rows(ty, &x, n, None, &mut b).unwrap();
    assert_eq!(a, b, "{ty}: some output byte is not written");
}

#[test]
fn tq1_0_equals_gguf_py_and_llama_cpp() {
    check(GgmlType::TQ1_0, 0x7101);
}

#[test]
fn tq2_0_equals_gguf_py_and_llama_cpp() {
    check(GgmlType::TQ2_0, 0x7201);
}

#[test]
fn ternary_round_trip_within_llama_cpp_bound() {
    bound(GgmlType::TQ1_0);
    bound(GgmlType::TQ2_0);
}
