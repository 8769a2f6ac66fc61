//! `gpuq quantize` against llama.cpp's own quantizer (`llama_model_quantize`) for the
//! mixtures of the non-linear and FP4 types: IQ4_NL, IQ4_XS, Q1_0 and MXFP4_MOE, whole files
//! byte for byte, on the generated dense, tied-embedding and MoE models, with and without an
//! importance matrix. And the per-tensor type choices of every i-quant mixture (IQ1_S …
//! IQ4_XS) against llama.cpp's `--dry-run`, through gpuq's plan (the grid types' codecs are
//! not needed for that).

mod common;

use common::{gpuq, python};
use gpuq::model::GgufSource;
use gpuq::pipeline::ModelSource;
use gpuq::policy::{Mixture, PlanOptions, TensorDesc, plan_types};
use std::collections::BTreeMap;
use std::path::Path;

const FIXTURE: &str = include_str!("py/llama_fixture.py");

fn fixture(args: &[&str]) -> String {
    python(FIXTURE, args)
}

/// name -> [type, shape, sha256]
fn dump(path: &Path) -> BTreeMap<String, serde_json::Value> {
    serde_json::from_str(&fixture(&["dump", path.to_str().unwrap()])).unwrap()
}

/// Quantizes `model` with llama.cpp and with gpuq for each (name, ftype) and requires the
/// same file, byte for byte. `--imatrix FILE` in `extra` goes to llama.cpp too.
fn check_mixtures(dir: &Path, model: &Path, mixtures: &[(&str, u32)], extra: &[&str]) {
    let forwarded: Vec<&str> = extra
        .windows(2)
        .filter(|w| w[0] == "--imatrix")
        .flat_map(|w| [w[0], w[1]])
        .collect();
    for (name, ftype) in mixtures {
        let theirs = dir.join(format!("llama-{name}.gguf"));
        let ours = dir.join(format!("gpuq-{name}.gguf"));
        let ftype = ftype.to_string();
        let mut py = vec![
            "quantize",
            model.to_str().unwrap(),
            theirs.to_str().unwrap(),
            &ftype,
        ];
        py.extend(&forwarded);
        fixture(&py);
        let mut args = vec![
            "quantize",
            model.to_str().unwrap(),
            "-o",
            ours.to_str().unwrap(),
            "--type",
            name,
            "-q",
        ];
        args.extend_from_slice(extra);
        let out = gpuq().args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "gpuq quantize {name} failed: {err}");
        let (a, b) = (dump(&ours), dump(&theirs));
        let diff: Vec<String> = b
            .iter()
            .filter(|(k, v)| a.get(*k) != Some(v))
            .map(|(k, v)| format!("{k}: ours {:?} llama.cpp {v:?}", a.get(k)))
            .collect();
        assert!(
            diff.is_empty(),
            "{name}: {} of {} tensors differ from llama.cpp:\n{}",
            diff.len(),
            b.len(),
            diff.join("\n")
        );
        let (a, b) = (
            std::fs::read(&ours).unwrap(),
            std::fs::read(&theirs).unwrap(),
        );
        assert_eq!(a.len(), b.len(), "{name}: file sizes");
        let first = a.iter().zip(&b).position(|(x, y)| x != y);
        assert_eq!(
            first, None,
            "{name}: the files differ first at byte {first:?}"
        );
        eprintln!("{name}: identical to llama.cpp ({} bytes)", a.len());
    }
}

const DENSE_MIXTURES: &[(&str, u32)] = &[
    ("IQ4_NL", 25),
    ("IQ4_XS", 30),
    ("Q1_0", 40),
    ("MXFP4_MOE", 38),
];

/// 12 layers, GQA 4, an FFN of 640 (IQ4_XS's ffn_down falls back to IQ4_NL), with and without
/// an imatrix.
#[test]
fn dense_mixtures_match_llama_quantize_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model-f16.gguf");
    let m = model.to_str().unwrap();
    fixture(&["make", m, "--layers", "12", "--ff", "640", "--seed", "31"]);
    check_mixtures(dir.path(), &model, DENSE_MIXTURES, &["--backend", "cpu"]);
    let imat = dir.path().join("imatrix.gguf");
    fixture(&["imatrix", m, imat.to_str().unwrap(), "--seed", "32"]);
    let sub = dir.path().join("imat");
    std::fs::create_dir(&sub).unwrap();
    check_mixtures(
        &sub,
        &model,
        DENSE_MIXTURES,
        &["--backend", "cpu", "--imatrix", imat.to_str().unwrap()],
    );
    // the imatrix reaches the IQ4 searches: their tensors change with it
    for name in ["IQ4_NL", "IQ4_XS"] {
        let (with, without) = (
            dump(&sub.join(format!("gpuq-{name}.gguf"))),
            dump(&dir.path().join(format!("gpuq-{name}.gguf"))),
        );
        let changed = with
            .iter()
            .filter(|(k, v)| k.starts_with("blk.") && without.get(*k) != Some(v))
            .count();
        assert!(
            changed > 30,
            "{name}: only {changed} tensors changed with the imatrix"
        );
    }
}

/// BF16 source, tied embeddings (token_embd takes the output rule), no GQA, an FFN of 768.
#[test]
fn tied_bf16_mixtures_match_llama_quantize_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model-bf16.gguf");
    let m = model.to_str().unwrap();
    fixture(&[
        "make",
        m,
        "--layers",
        "9",
        "--ff",
        "768",
        "--embd",
        "512",
        "--dtype",
        "bf16",
        "--tied",
        "--kv-heads",
        "8",
        "--seed",
        "33",
    ]);
    check_mixtures(
        dir.path(),
        &model,
        &[("IQ4_NL", 25), ("IQ4_XS", 30), ("Q1_0", 40)],
        &["--backend", "cpu"],
    );
}

/// Mixtral-style MoE with 8 experts: MXFP4_MOE writes the 3-D expert tensors as MXFP4 and the
/// rest as Q8_0; the IQ4 mixtures take the n_expert == 8 rules.
#[test]
fn moe_mixtures_match_llama_quantize_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("moe-f16.gguf");
    let m = model.to_str().unwrap();
    fixture(&[
        "make",
        m,
        "--layers",
        "4",
        "--ff",
        "512",
        "--vocab",
        "320",
        "--experts",
        "8",
        "--seed",
        "34",
    ]);
    let mixtures = [("MXFP4_MOE", 38), ("IQ4_XS", 30), ("IQ4_NL", 25)];
    check_mixtures(dir.path(), &model, &mixtures, &["--backend", "cpu"]);
    let types = dump(&dir.path().join("gpuq-MXFP4_MOE.gguf"));
    assert_eq!(types["blk.0.ffn_down_exps.weight"][0], "MXFP4");
    assert_eq!(types["blk.0.attn_q.weight"][0], "Q8_0");
    let imat = dir.path().join("moe-imatrix.gguf");
    fixture(&["imatrix", m, imat.to_str().unwrap(), "--seed", "35"]);
    let sub = dir.path().join("imat");
    std::fs::create_dir(&sub).unwrap();
    check_mixtures(
        &sub,
        &model,
        &mixtures,
        &["--backend", "cpu", "--imatrix", imat.to_str().unwrap()],
    );
}

/// Every i-quant mixture llama.cpp has, as ftype numbers.
const IQ_MIXTURES: &[(&str, u32)] = &[
    ("IQ2_XXS", 19),
    ("IQ2_XS", 20),
    ("IQ3_XS", 22),
    ("IQ3_XXS", 23),
    ("IQ1_S", 24),
    ("IQ4_NL", 25),
    ("IQ3_S", 26),
    ("IQ3_M", 27),
    ("IQ2_S", 28),
    ("IQ2_M", 29),
    ("IQ4_XS", 30),
    ("IQ1_M", 31),
    ("MXFP4_MOE", 38),
    ("Q1_0", 40),
    ("Q2_0", 41),
];

/// gpuq's plan for `model` under `mixture`: tensor name -> type name.
fn gpuq_types(model: &Path, mixture: &str, has_imatrix: bool) -> BTreeMap<String, String> {
    let src = GgufSource::open(model).unwrap();
    let descs: Vec<TensorDesc> = src
        .tensors()
        .iter()
        .map(|t| TensorDesc {
            name: t.name.clone(),
            dims: t.dims.clone(),
            ty: t.ty,
        })
        .collect();
    let mut opts = PlanOptions::new(Mixture::parse(mixture).unwrap());
    opts.has_imatrix = has_imatrix;
    let plan = plan_types(&descs, &gpuq::quantize::hparams(src.metadata()), &opts).unwrap();
    descs
        .iter()
        .zip(plan)
        .map(|(d, p)| (d.name.clone(), p.target.name().to_string()))
        .collect()
}

/// The per-tensor types of every i-quant mixture (and MXFP4_MOE, Q1_0) against
/// llama-quantize's `--dry-run`, with and without an imatrix (the IQ3_XXS, IQ4_NL and IQ4_XS
/// rules depend on it), on the dense (GQA 4, FFN 640: fallbacks), tied (GQA 1), GQA-2 and MoE
/// models. This needs no codec: it checks the policy of the grid types too.
#[test]
fn iq_mixture_types_match_llama_quantize_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    let models = [
        (
            "dense",
            vec!["--layers", "12", "--ff", "640", "--seed", "36"],
        ),
        (
            "tied",
            vec![
                "--layers",
                "9",
                "--ff",
                "768",
                "--embd",
                "512",
                "--dtype",
                "bf16",
                "--tied",
                "--kv-heads",
                "8",
                "--seed",
                "37",
            ],
        ),
        (
            "gqa2",
            vec![
                "--layers",
                "16",
                "--ff",
                "512",
                "--kv-heads",
                "4",
                "--seed",
                "40",
            ],
        ),
        (
            "moe",
            vec![
                "--layers",
                "4",
                "--ff",
                "512",
                "--vocab",
                "320",
                "--experts",
                "8",
                "--seed",
                "38",
            ],
        ),
    ];
    let mut checked = 0;
    let mut failures = Vec::new();
    for (label, args) in models {
        let model = dir.path().join(format!("{label}.gguf"));
        let m = model.to_str().unwrap();
        let mut make = vec!["make", m];
        make.extend(args);
        fixture(&make);
        let imat = dir.path().join(format!("{label}-imatrix.gguf"));
        fixture(&["imatrix", m, imat.to_str().unwrap(), "--seed", "39"]);
        for &(name, ftype) in IQ_MIXTURES {
            for with_imatrix in [false, true] {
                let ft = ftype.to_string();
                let mut py = vec!["types", m, &ft];
                if with_imatrix {
                    py.extend(["--imatrix", imat.to_str().unwrap()]);
                }
                let theirs: BTreeMap<String, String> = serde_json::from_str(&fixture(&py)).unwrap();
                let ours = gpuq_types(&model, name, with_imatrix);
                assert_eq!(ours.len(), theirs.len(), "{label} {name}: tensor counts");
                for (k, v) in &theirs {
                    checked += 1;
                    if ours.get(k) != Some(v) {
                        failures.push(format!(
                            "{label} {name} (imatrix: {with_imatrix}) {k}: ours {:?} llama.cpp {v}",
                            ours.get(k)
                        ));
                    }
                }
            }
        }
    }
    eprintln!(
        "{} of {checked} per-tensor type choices equal llama.cpp's",
        checked - failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// What llama-quantize refuses, gpuq refuses too, leaving no output: a type that needs an
/// imatrix without one (IQ2_XXS, IQ1_S, IQ1_M, IQ2_XS), Q1_0 on a row its 128-block does not
/// divide (llama.cpp has no fallback for it), and the NVFP4 file type its quantizer lacks.
#[test]
fn refusals_match_llama_quantize() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.gguf");
    let m = model.to_str().unwrap();
    // FFN 608: a multiple of 32, not of 128 or 256
    fixture(&["make", m, "--layers", "2", "--ff", "608", "--seed", "41"]);
    for (name, ftype, says) in [
        ("IQ2_XXS", 19, "needs an importance matrix"),
        ("IQ2_XS", 20, "needs an importance matrix"),
        ("IQ1_S", 24, "needs an importance matrix"),
        ("IQ1_M", 31, "needs an importance matrix"),
        ("Q1_0", 40, "no fallback type"),
        ("NVFP4", 39, "no NVFP4 mixture"),
    ] {
        let theirs = dir.path().join(format!("llama-{name}.gguf"));
        let llama = std::process::Command::new("python3")
            .args(["-c", FIXTURE, "quantize", m, theirs.to_str().unwrap()])
            .arg(ftype.to_string())
            .output()
            .unwrap();
        assert!(!llama.status.success(), "llama.cpp accepted {name}");
        let ours = dir.path().join(format!("gpuq-{name}.gguf"));
        let out = gpuq()
            .args(["quantize", m, "-o", ours.to_str().unwrap(), "--type", name])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "gpuq accepted {name}");
        assert!(
            err.contains(says) && !err.contains("panicked"),
            "{name}: {err}"
        );
        assert!(!ours.exists(), "{name}: output left behind");
        let tmp = dir.path().join(format!("gpuq-{name}.gguf.tmp"));
        assert!(!tmp.exists(), "{name}: temporary left behind");
    }
}

/// gguf-py decodes `deq` (gpuq's dequantized file) and `quant` (llama.cpp's) tensor by tensor;
/// prints "n_tensors n_bad [names]".
const DEQ_COMPARE: &str = r#"
import sys, gguf, numpy as np
deq, quant = sys.argv[1], sys.argv[2]
b = {t.name: t for t in gguf.GGUFReader(quant).tensors}
bad, n, types = [], 0, set()
for t in gguf.GGUFReader(deq).tensors:
    src = b[t.name]
    types.add(src.tensor_type.name)
    ref = gguf.quants.dequantize(src.data, src.tensor_type).reshape(-1).astype(np.float32)
    got = np.asarray(t.data, dtype=np.float32).reshape(-1)
    n += 1
    if got.shape != ref.shape or not np.array_equal(ref.view(np.uint32), got.view(np.uint32)):
        bad.append(t.name)
print(n, len(bad), bad[:5], " ".join(sorted(types)))
"#;

/// Files llama.cpp wrote in the new types are read by gpuq: `dequantize` to F32 gives gguf-py's
/// values bit for bit, `quantize --allow-requantize` to Q4_K_M gives llama-quantize's file
/// (it decodes with the same `dequantize_row_X`), and `stats --type` measures the new types.
#[test]
fn llama_cpp_files_dequantize_and_requantize() {
    let dir = tempfile::tempdir().unwrap();
    let dense = dir.path().join("dense.gguf");
    let moe = dir.path().join("moe.gguf");
    fixture(&[
        "make",
        dense.to_str().unwrap(),
        "--layers",
        "3",
        "--seed",
        "42",
    ]);
    fixture(&[
        "make",
        moe.to_str().unwrap(),
        "--layers",
        "2",
        "--ff",
        "512",
        "--vocab",
        "320",
        "--experts",
        "4",
        "--seed",
        "43",
    ]);
    for (model, name, ftype) in [
        (&dense, "IQ4_XS", 30),
        (&dense, "IQ4_NL", 25),
        (&moe, "MXFP4_MOE", 38),
    ] {
        let q = dir.path().join(format!("llama-{name}.gguf"));
        let qs = q.to_str().unwrap();
        fixture(&["quantize", model.to_str().unwrap(), qs, &ftype.to_string()]);
        let deq = dir.path().join(format!("deq-{name}.gguf"));
        let out = gpuq()
            .args([
                "dequantize",
                qs,
                "-o",
                deq.to_str().unwrap(),
                "--type",
                "F32",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let res = python(DEQ_COMPARE, &[deq.to_str().unwrap(), qs]);
        let f: Vec<&str> = res.split_whitespace().collect();
        assert_eq!(f[1], "0", "{name}: tensors decode differently: {res}");
        eprintln!(
            "{name}: dequantize == gguf-py on {} tensors (types {})",
            f[0],
            f[3..].join(" ")
        );

        // requantize: both quantizers decode the IQ4/MXFP4 tensors and write Q4_K_M
        let theirs = dir.path().join(format!("llama-{name}-q4km.gguf"));
        fixture(&["quantize", qs, theirs.to_str().unwrap(), "15"]);
        let ours = dir.path().join(format!("gpuq-{name}-q4km.gguf"));
        let out = gpuq()
            .args([
                "quantize",
                qs,
                "-o",
                ours.to_str().unwrap(),
                "--type",
                "Q4_K_M",
            ])
            .args(["--allow-requantize", "-q", "--backend", "cpu"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (a, b) = (
            std::fs::read(&ours).unwrap(),
            std::fs::read(&theirs).unwrap(),
        );
        assert!(
            a == b,
            "{name} -> Q4_K_M: files differ ({} vs {} bytes)",
            a.len(),
            b.len()
        );
    }
    let out = gpuq()
        .args([
            "stats",
            dense.to_str().unwrap(),
            "--type",
            "IQ4_NL,IQ4_XS,MXFP4,NVFP4,Q1_0",
        ])
        .args(["--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for t in ["IQ4_NL", "IQ4_XS", "MXFP4", "NVFP4", "Q1_0"] {
        assert!(text.contains(&format!("\"{t}\"")), "stats --json lacks {t}");
    }
}

/// Q2_0 (llama.cpp's 2-bit type with one scale per 64): gguf-py cannot read its type id (42),
/// so whole files are compared as bytes only; with the fallback of ffn_down (FFN 608 is not a
/// multiple of 64: Q4_0) and token_embd's Q4_K.
#[test]
fn q2_0_files_match_llama_quantize_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    for (label, ff) in [("even", "640"), ("odd", "608")] {
        let model = dir.path().join(format!("{label}.gguf"));
        let m = model.to_str().unwrap();
        fixture(&["make", m, "--layers", "3", "--ff", ff, "--seed", "44"]);
        let theirs = dir.path().join(format!("llama-{label}.gguf"));
        fixture(&["quantize", m, theirs.to_str().unwrap(), "41"]);
        let ours = dir.path().join(format!("gpuq-{label}.gguf"));
        let out = gpuq()
            .args([
                "quantize",
                m,
                "-o",
                ours.to_str().unwrap(),
                "--type",
                "Q2_0",
                "-q",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (a, b) = (
            std::fs::read(&ours).unwrap(),
            std::fs::read(&theirs).unwrap(),
        );
        assert_eq!(a.len(), b.len(), "Q2_0 {label}: file sizes");
        let first = a.iter().zip(&b).position(|(x, y)| x != y);
        assert_eq!(
            first, None,
            "Q2_0 {label}: the files differ first at byte {first:?}"
        );
    }
}

/// The grid i-quant mixtures (IQ1_S … IQ3_M) as whole files, with an importance matrix (most
/// of them refuse to run without one) and IQ3_S without, on a small model whose FFN of 640
/// sends ffn_down through llama-quantize's fallbacks.
#[test]
fn grid_mixtures_match_llama_quantize_byte_for_byte() {
    const GRID_MIXTURES: &[(&str, u32)] = &[
        ("IQ2_XXS", 19),
        ("IQ2_XS", 20),
        ("IQ3_XS", 22),
        ("IQ3_XXS", 23),
        ("IQ1_S", 24),
        ("IQ3_S", 26),
        ("IQ3_M", 27),
        ("IQ2_S", 28),
        ("IQ2_M", 29),
        ("IQ1_M", 31),
    ];
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model-f16.gguf");
    let m = model.to_str().unwrap();
    fixture(&[
        "make", m, "--layers", "3", "--embd", "256", "--ff", "640", "--vocab", "512", "--seed",
        "41",
    ]);
    let imat = dir.path().join("imatrix.gguf");
    fixture(&["imatrix", m, imat.to_str().unwrap(), "--seed", "42"]);
    check_mixtures(
        dir.path(),
        &model,
        GRID_MIXTURES,
        &["--backend", "cpu", "--imatrix", imat.to_str().unwrap()],
    );
    let sub = dir.path().join("plain");
    std::fs::create_dir(&sub).unwrap();
    check_mixtures(&sub, &model, &[("IQ3_S", 26)], &["--backend", "cpu"]);
}
