//! The grid i-quant CPU codecs (IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M) against
//! llama.cpp and gguf-py:
//! - encode == llama.cpp's `ggml_quantize_chunk` byte for byte with importance weights (the
//!   imatrix path), and without where llama.cpp allows it (not IQ2_XXS, IQ2_XS, IQ1_S:
//!   `ggml_quantize_requires_imatrix`), on seeded random rows in every `Dist` and edge cases;
//! - decode == gguf-py's `dequantize` bit for bit, on encoder output and on random blocks;
//! - the packed grids in src/codec/iquants/grids.rs == gguf-py's grids, and the derived sign
//!   table == gguf-py's `ksigns`.
//!
//! `GPUQ_TEST_SEED=<u64>` draws fresh data; the seed in use is printed.

mod common;

use common::{Dist, differing_blocks, python, read_f32, rng, sample, write_f32};
use gpuq::GgmlType;
use gpuq::codec::iquants::{KSIGNS, tables};
use gpuq::codec::{decode_rows, encode_rows};
use rand::Rng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};
use std::fmt::Write as _;

const LLAMA_QUANTIZE: &str = include_str!("py/llama_quantize_chunk.py");
const GGUF_DEQUANTIZE: &str = include_str!("py/gguf_dequantize.py");
const IQ_GRIDS: &str = include_str!("py/iq_grids.py");

const QK_K: usize = 256;

/// One i-quant type as the tests see it.
struct Iq {
    ty: GgmlType,
    /// llama.cpp asserts importance weights for this type (`ggml_quantize_requires_imatrix`).
    requires_imatrix: bool,
    /// Makes a random block's f16 super-scale finite.
    finite_scale: fn(&mut [u8]),
}

/// The f16 `d` in bytes 0..2: clear the exponent's top bit when it is all ones.
fn finite_d_at_0(b: &mut [u8]) {
    let h = u16::from_le_bytes([b[0], b[1]]);
    if (h >> 10) & 0x1f == 0x1f {
        b[0..2].copy_from_slice(&(h & !0x4000).to_le_bytes());
    }
}

/// IQ1_M's f16 scale: bits 12..16 of the four u16 at bytes 48..56; its exponent's top bit is
/// bit 14 of the last one.
fn finite_iq1_m(b: &mut [u8]) {
    b[55] &= !0x40;
}

const IQ2_XXS: Iq = Iq {
    ty: GgmlType::IQ2_XXS,
    requires_imatrix: true,
    finite_scale: finite_d_at_0,
};
const IQ2_XS: Iq = Iq {
    ty: GgmlType::IQ2_XS,
    requires_imatrix: true,
    finite_scale: finite_d_at_0,
};
const IQ2_S: Iq = Iq {
    ty: GgmlType::IQ2_S,
    requires_imatrix: false,
    finite_scale: finite_d_at_0,
};
const IQ3_XXS: Iq = Iq {
    ty: GgmlType::IQ3_XXS,
    requires_imatrix: false,
    finite_scale: finite_d_at_0,
};
const IQ3_S: Iq = Iq {
    ty: GgmlType::IQ3_S,
    requires_imatrix: false,
    finite_scale: finite_d_at_0,
};
const IQ1_S: Iq = Iq {
    ty: GgmlType::IQ1_S,
    requires_imatrix: true,
    finite_scale: finite_d_at_0,
};
const IQ1_M: Iq = Iq {
    ty: GgmlType::IQ1_M,
    requires_imatrix: false,
    finite_scale: finite_iq1_m,
};

impl Iq {
    fn block_bytes(&self) -> usize {
        self.ty.block_bytes() as usize
    }
    fn modes(&self) -> &'static [bool] {
        if self.requires_imatrix {
            &[true]
        } else {
            &[false, true]
        }
    }
}

fn base_seed() -> u64 {
    let seed = std::env::var("GPUQ_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6971_7561_6e74);
    eprintln!("seed {seed} (set GPUQ_TEST_SEED to change)");
    seed
}

/// Where a case's values come from.
#[derive(Clone, Copy, Debug)]
enum Data {
    Dist(Dist),
    /// 95% exact zeros, the rest N(0, 1): sub-blocks below the "all zero" thresholds.
    Sparse,
    /// Small integers (N(0, 4) rounded): many exact ties in the sorts and roundings.
    Integers,
    /// N(0, 3e4): scales near f16's top.
    VeryHuge,
    /// N(0, 1e-9): around the i-quants' "all zero" thresholds (1e-8 .. 1e-15).
    VeryTiny,
}

impl Data {
    fn all() -> Vec<Data> {
        let mut v: Vec<Data> = Dist::all(QK_K).into_iter().map(Data::Dist).collect();
        v.extend([Data::Sparse, Data::Integers, Data::VeryHuge, Data::VeryTiny]);
        v
    }

    fn sample(self, n: usize, r: &mut StdRng) -> Vec<f32> {
        let normal = Normal::new(0.0f32, 1.0).unwrap();
        match self {
            Data::Dist(d) => sample(d, n, r),
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

struct Case {
    data: Data,
    row_len: usize,
    x: Vec<f32>,
    imatrix: Vec<f32>,
}

const ROW_LENS: [usize; 6] = [256, 1024, 4096, 768, 2048, 512];
/// Elements per case (at least 2 rows).
const CASE_ELEMS: usize = 65536;

/// Per-column importance weights like an imatrix's (log-normal, a few exact zeros), with
/// columns 32..48 all zero (whole groups and sub-blocks of zero weight).
fn imatrix(n: usize, rng: &mut StdRng) -> Vec<f32> {
    let normal = Normal::new(0.0f32, 1.0).unwrap();
    (0..n)
        .map(|i| {
            if rng.random::<f32>() < 0.03 || (32..48).contains(&(i % 1024)) {
                0.0
            } else {
                normal.sample(rng).exp()
            }
        })
        .collect()
}

fn cases(iq: &Iq, seed: u64) -> Vec<Case> {
    Data::all()
        .into_iter()
        .enumerate()
        .map(|(i, data)| {
            let mut r = rng(seed ^ ((iq.ty.id() as u64) << 32) ^ i as u64);
            let row_len = ROW_LENS[(i + iq.ty.id() as usize) % ROW_LENS.len()];
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

/// Encodes with gpuq's table entry over a sentinel-filled output.
fn encode(iq: &Iq, x: &[f32], row_len: usize, w: Option<&[f32]>) -> Vec<u8> {
    let mut out = vec![0xA5u8; x.len() / QK_K * iq.block_bytes()];
    encode_rows(iq.ty, x, row_len, w, &mut out).unwrap();
    out
}

fn decode(iq: &Iq, raw: &[u8], row_len: usize) -> Vec<f32> {
    let mut out = vec![f32::NAN; raw.len() / iq.block_bytes() * QK_K];
    decode_rows(iq.ty, raw, row_len, &mut out).unwrap();
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// Encodes every case here and with llama.cpp's `ggml_quantize_chunk`; bytes must agree.
fn encode_matches_llama_cpp(iq: &Iq) {
    let seed = base_seed();
    let dir = tempfile::tempdir().unwrap();
    let cases = cases(iq, seed);
    let mut manifest = String::new();
    let mut ours = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let src = dir.path().join(format!("x{i}.f32"));
        let imat = dir.path().join(format!("w{i}.f32"));
        write_f32(&src, &c.x);
        write_f32(&imat, &c.imatrix);
        for &weighted in iq.modes() {
            let out = dir.path().join(format!("q{i}_{weighted}.bin"));
            let w = weighted.then_some(c.imatrix.as_slice());
            ours.push((i, weighted, out.clone(), encode(iq, &c.x, c.row_len, w)));
            let imat_arg = if weighted {
                imat.display().to_string()
            } else {
                "-".into()
            };
            writeln!(
                manifest,
                "{} {} {} {} {imat_arg}",
                iq.ty.id(),
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

    let bb = iq.block_bytes();
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
                "{} {:?} rows of {} ({}): {} of {n} blocks differ; first #{first}\n  ours   {}\n  llama  {}",
                iq.ty,
                c.data,
                c.row_len,
                if *weighted { "imatrix" } else { "no imatrix" },
                diff.len(),
                hex(&ours[first * bb..(first + 1) * bb]),
                hex(&theirs[first * bb..(first + 1) * bb]),
            ));
        }
    }
    for &weighted in iq.modes() {
        let (n, eq) = totals[weighted as usize];
        let w = if weighted { "imatrix" } else { "no imatrix" };
        eprintln!(
            "{} vs llama.cpp ggml_quantize_chunk ({w}): {eq} of {n} blocks equal",
            iq.ty
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Random blocks with a finite f16 scale.
fn random_blocks(iq: &Iq, n: usize, r: &mut StdRng) -> Vec<u8> {
    let bb = iq.block_bytes();
    let mut raw: Vec<u8> = (0..n * bb).map(|_| r.random()).collect();
    for blk in raw.chunks_mut(bb) {
        (iq.finite_scale)(blk);
    }
    raw
}

/// Decodes our encoder's output and random blocks here and with gguf-py; bits must agree.
fn decode_matches_gguf_py(iq: &Iq) {
    let seed = base_seed();
    let dir = tempfile::tempdir().unwrap();
    let mut inputs: Vec<(String, usize, Vec<u8>)> = Vec::new();
    for c in cases(iq, seed).into_iter().step_by(3) {
        for &weighted in iq.modes() {
            let w = weighted.then_some(c.imatrix.as_slice());
            let what = format!("encoded {:?} (imatrix: {weighted})", c.data);
            inputs.push((what, c.row_len, encode(iq, &c.x, c.row_len, w)));
        }
    }
    let mut r = rng(seed ^ 0xdec0de ^ iq.ty.id() as u64);
    inputs.push((
        "random blocks".into(),
        QK_K,
        random_blocks(iq, 4096, &mut r),
    ));

    let mut manifest = String::new();
    for (i, (_, _, raw)) in inputs.iter().enumerate() {
        let raw_path = dir.path().join(format!("raw{i}.bin"));
        std::fs::write(&raw_path, raw).unwrap();
        let out = dir.path().join(format!("y{i}.f32"));
        writeln!(
            manifest,
            "{} {} {}",
            iq.ty.name(),
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
        let ours = decode(iq, raw, *row_len);
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
                iq.ty,
                diff.len(),
                ours[j],
                theirs[j]
            ));
        }
    }
    eprintln!(
        "{} decode vs gguf-py: {n_equal} of {n_blocks} blocks bit-identical",
        iq.ty
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

macro_rules! iquant_tests {
    ($($modname:ident => $iq:expr),* $(,)?) => {$(
        mod $modname {
            use super::*;
            #[test]
            fn encode_matches_llama_cpp() {
                super::encode_matches_llama_cpp(&$iq);
            }
            #[test]
            fn decode_matches_gguf_py() {
                super::decode_matches_gguf_py(&$iq);
            }
        }
    )*};
}

iquant_tests! {
    iq3_xxs => IQ3_XXS,
    iq3_s => IQ3_S,
    iq2_xxs => IQ2_XXS,
    iq2_xs => IQ2_XS,
    iq2_s => IQ2_S,
    iq1_s => IQ1_S,
    iq1_m => IQ1_M,
}

/// The committed grids (as element values) and the derived sign table against gguf-py's.
#[test]
fn grids_match_gguf_py() {
    let dump = python(IQ_GRIDS, &["dump"]);
    let flat8 = |g: &[[f32; 8]]| g.iter().flatten().map(|&v| v as i64).collect::<Vec<_>>();
    let flat4 = |g: &[[f32; 4]]| g.iter().flatten().map(|&v| v as i64).collect::<Vec<_>>();
    let mut seen = 0;
    for line in dump.lines() {
        let mut it = line.split_whitespace();
        let name = it.next().unwrap();
        let rest: Vec<&str> = it.collect();
        if name == "IQ1S_DELTA" {
            assert_eq!(
                rest[0].parse::<f32>().unwrap(),
                gpuq::codec::iquants::IQ1_DELTA
            );
            seen += 1;
            continue;
        }
        let theirs: Vec<i64> = rest.iter().map(|s| s.parse().unwrap()).collect();
        let ours = match name {
            "IQ2XXS" => flat8(tables::iq2xxs_grid()),
            "IQ2XS" => flat8(tables::iq2xs_grid()),
            "IQ2S" => flat8(tables::iq2s_grid()),
            "IQ1S" => flat8(tables::iq1s_grid()),
            "IQ3XXS" => flat4(tables::iq3xxs_grid()),
            "IQ3S" => flat4(tables::iq3s_grid()),
            "KSIGNS" => KSIGNS.iter().map(|&b| b as i64).collect(),
            "IQ1S_DELTA" => {
                assert_eq!(
                    rest[0].parse::<f32>().unwrap(),
                    gpuq::codec::iquants::IQ1_DELTA
                );
                seen += 1;
                continue;
            }
            other => panic!("unexpected line {other}"),
        };
        assert_eq!(ours, theirs, "{name} differs from gguf-py");
        seen += 1;
    }
    assert_eq!(seen, 8);
}

#[test]
fn every_grid_iquant_is_in_the_codec_table() {
    for iq in [IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M] {
        assert!(
            gpuq::codec::can_encode(iq.ty) && gpuq::codec::can_decode(iq.ty),
            "{}",
            iq.ty
        );
    }
}

/// IQ2_XXS, IQ2_XS and IQ1_S without importance weights (llama.cpp asserts them): gpuq encodes
/// with unit weights instead of failing.
#[test]
fn imatrix_only_types_use_unit_weights_without_one() {
    let x = sample(Dist::Normal, 4 * QK_K, &mut rng(3));
    let ones = vec![1.0f32; 2 * QK_K];
    for iq in [IQ2_XXS, IQ2_XS, IQ1_S] {
        assert_eq!(
            encode(&iq, &x, 2 * QK_K, None),
            encode(&iq, &x, 2 * QK_K, Some(&ones)),
            "{}",
            iq.ty
        );
    }
}

/// Non-finite input (which ggml's encoders assert against or abort on) encodes without a
/// panic, and every output byte is written.
#[test]
fn non_finite_input_does_not_panic() {
    let mut x = sample(Dist::Normal, 4 * QK_K, &mut rng(4));
    x[3] = f32::NAN;
    x[300] = f32::INFINITY;
    x[301] = f32::NEG_INFINITY;
    x[600..640].fill(f32::NAN);
    x[900] = f32::MAX;
    x[901] = -f32::MAX;
    let w = vec![1.0f32; 2 * QK_K];
    for iq in [IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M] {
        for weights in [None, Some(w.as_slice())] {
            let a = encode(&iq, &x, 2 * QK_K, weights);
            let mut b = vec![0x5Au8; a.len()];
            encode_rows(iq.ty, &x, 2 * QK_K, weights, &mut b).unwrap();
            assert_eq!(a, b, "{}: an output byte was not written", iq.ty);
            decode(&iq, &a, 2 * QK_K);
        }
    }
}
