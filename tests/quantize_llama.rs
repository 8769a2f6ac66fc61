//! `gpuq quantize` against llama.cpp's own quantizer (llama-cpp-python's
//! `llama_model_quantize`, the code path of llama-quantize) on a small Llama-shaped model:
//! the same tensor types and the same tensor bytes, tensor by tensor.

mod common;

use common::{gpuq, python};
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

fn compare(ours: &Path, theirs: &Path) -> Vec<String> {
    let (a, b) = (dump(ours), dump(theirs));
    assert_eq!(a.len(), b.len(), "tensor counts differ");
    b.iter()
        .filter(|(k, v)| a.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: ours {:?} llama.cpp {v:?}", a.get(k)))
        .collect()
}

fn run_gpuq(args: &[&str]) -> std::process::Output {
    let out = gpuq().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "gpuq panicked:\n{err}");
    out
}

fn check_mixtures(dir: &Path, model: &Path, mixtures: &[(&str, u32)], extra: &[&str]) {
    for (name, ftype) in mixtures {
        let theirs = dir.join(format!("llama-{name}.gguf"));
        let ours = dir.join(format!("gpuq-{name}.gguf"));
        fixture(&[
            "quantize",
            model.to_str().unwrap(),
            theirs.to_str().unwrap(),
            &ftype.to_string(),
        ]);
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
        let out = run_gpuq(&args);
        assert!(
            out.status.success(),
            "gpuq quantize {name} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let diff = compare(&ours, &theirs);
        assert!(
            diff.is_empty(),
            "{name}: {} tensors differ from llama.cpp:\n{}",
            diff.len(),
            diff.join("\n")
        );
    }
}

#[test]
fn mixtures_match_llama_quantize_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model-f16.gguf");
    // 12 layers (so layer order matters for the use_more_bits rules), n_ff 640 (not a multiple
    // of 256: ffn_down falls back), GQA 4.
    fixture(&[
        "make",
        model.to_str().unwrap(),
        "--layers",
        "12",
        "--ff",
        "640",
        "--seed",
        "11",
    ]);
    check_mixtures(
        dir.path(),
        &model,
        &[
            ("Q8_0", 7),
            ("Q4_0", 2),
            ("Q4_K_M", 15),
            ("Q5_K_M", 17),
            ("Q6_K", 18),
            ("Q2_K", 10),
            ("Q3_K_M", 12),
        ],
        &["--backend", "cpu"],
    );
}

#[test]
fn more_mixtures_from_bf16_with_tied_embeddings() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model-bf16.gguf");
    fixture(&[
        "make",
        model.to_str().unwrap(),
        "--layers",
        "9",
        "--ff",
        "768",
        "--embd",
        "512",
        "--dtype",
        "bf16",
        "--tied",
        "--seed",
        "12",
    ]);
    check_mixtures(
        dir.path(),
        &model,
        &[
            ("Q4_1", 3),
            ("Q5_0", 8),
            ("Q5_1", 9),
            ("Q3_K_S", 11),
            ("Q3_K_L", 13),
            ("Q4_K_S", 14),
            ("Q5_K_S", 16),
            ("F16", 1),
        ],
        &["--backend", "cpu"],
    );
}

#[test]
fn gpu_backend_gives_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model-f16.gguf");
    fixture(&[
        "make",
        model.to_str().unwrap(),
        "--layers",
        "2",
        "--seed",
        "13",
    ]);
    check_mixtures(
        dir.path(),
        &model,
        &[("Q8_0", 7), ("Q4_K_M", 15)],
        &["--backend", "gpu", "--max-memory", "1M"],
    );
}

#[test]
fn refusals_leave_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.gguf");
    fixture(&[
        "make",
        model.to_str().unwrap(),
        "--layers",
        "1",
        "--seed",
        "14",
    ]);
    let q = dir.path().join("q8.gguf");
    let out = run_gpuq(&[
        "quantize",
        model.to_str().unwrap(),
        "-o",
        q.to_str().unwrap(),
        "--type",
        "Q8_0",
        "-q",
    ]);
    assert!(out.status.success());

    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["quantize", q.to_str().unwrap(), "--type", "Q4_K_M"],
            "--allow-requantize",
        ),
        (
            vec![
                "quantize",
                model.to_str().unwrap(),
                "--type",
                "Q4_K_M",
                "--tensor-type",
                "nothing_like_this=q8_0",
            ],
            "matches no",
        ),
        (
            vec!["quantize", model.to_str().unwrap(), "--type", "Q9_X"],
            "unknown quantization type",
        ),
        (
            vec!["quantize", model.to_str().unwrap(), "--type", "IQ2_XXS"],
            "importance matrix",
        ),
    ];
    for (args, msg) in cases {
        let target = dir.path().join("out.gguf");
        let mut a = args.clone();
        a.extend(["-o", target.to_str().unwrap()]);
        let out = run_gpuq(&a);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(msg), "{args:?}: expected '{msg}' in: {err}");
        assert!(
            !target.exists() && !dir.path().join("out.gguf.tmp").exists(),
            "{args:?} left a file"
        );
    }
    let out = run_gpuq(&[
        "quantize",
        model.to_str().unwrap(),
        "-o",
        model.to_str().unwrap(),
        "--type",
        "Q8_0",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to overwrite"));

    // --allow-requantize does it, and --dry-run prints the plan without writing
    let rq = dir.path().join("rq.gguf");
    let out = run_gpuq(&[
        "quantize",
        q.to_str().unwrap(),
        "-o",
        rq.to_str().unwrap(),
        "--type",
        "Q4_0",
        "--allow-requantize",
        "-q",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dry = dir.path().join("dry.gguf");
    let out = run_gpuq(&[
        "quantize",
        model.to_str().unwrap(),
        "-o",
        dry.to_str().unwrap(),
        "--type",
        "Q4_K_M",
        "--dry-run",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("blk.0.attn_v.weight") && text.contains("Q6_K"),
        "{text}"
    );
    assert!(!dry.exists());
}
