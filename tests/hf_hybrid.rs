//! Mixture-of-experts and Gated DeltaNet folders -> GGUF (Mixtral, Qwen3-MoE, Qwen3-Next,
//! Qwen3.5 dense and MoE): tiny random checkpoints with the real config field names, written by
//! tests/py/hf_hybrid.py; llama.cpp's F32 logits from gpuq's GGUF are compared with a numpy
//! forward pass of the HF weights that follows transformers' modelling code (top-k routing,
//! recurrent gated delta rule), and `gpuq quantize DIR` is compared byte for byte with
//! llama.cpp's llama_model_quantize of gpuq's conversion.

mod common;

use common::{gpuq_status as run, python};
use std::path::Path;

const MODEL_PY: &str = include_str!("py/hf_model.py");
const HYBRID_PY: &str = include_str!("py/hf_hybrid.py");

/// hf_model.py's definitions (without its command dispatch), then hf_hybrid.py.
fn script() -> String {
    let defs = MODEL_PY
        .split("\nif __name__ == \"__main__\":")
        .next()
        .unwrap();
    format!("{defs}\n{HYBRID_PY}")
}

const KINDS: &[&str] = &["qwen3moe", "mixtral", "qwen35", "qwen35moe", "qwen3next"];

fn make(dir: &Path, kind: &str, seed: u64, extra: &[&str]) {
    let seed = seed.to_string();
    let mut args = vec!["make-ext", dir.to_str().unwrap(), kind, seed.as_str()];
    args.extend_from_slice(extra);
    python(&script(), &args);
}

fn convert(dir: &Path, out: &Path, outtype: &str) -> String {
    let (code, err) = run(&[
        "convert",
        dir.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--outtype",
        outtype,
        "--vocab-pre",
        "gpt-2",
        "-q",
    ]);
    assert_eq!(code, 0, "gpuq convert {}: {err}", dir.display());
    err
}

/// The largest relative logit error, or a panic when over `tol`.
fn check_logits(dir: &Path, gguf: &Path, tol: f64, extra: &[&str]) -> f64 {
    let tol_s = tol.to_string();
    let mut args = vec![
        "check-ext",
        dir.to_str().unwrap(),
        gguf.to_str().unwrap(),
        tol_s.as_str(),
    ];
    args.extend_from_slice(extra);
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script())
        .args(&args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let err: f64 = stdout
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "no result from the check: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(
        out.status.success() && err <= tol,
        "{}: max relative logit error {err:e} > {tol:e}",
        gguf.display()
    );
    err
}

#[test]
fn logits_match_an_independent_forward_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let mut report = Vec::new();
    for (i, kind) in KINDS.iter().enumerate() {
        // F32 weights, one file
        let dir = tmp.path().join(format!("{kind}-f32"));
        make(&dir, kind, 200 + i as u64, &[]);
        let out = tmp.path().join(format!("{kind}.f32.gguf"));
        convert(&dir, &out, "f32");
        let e = check_logits(&dir, &out, 1e-4, &[]);
        report.push(format!("{kind} f32 -> f32: max rel err {e:.2e}"));
        // BF16 weights in three shards: exact against a reference that rounds (1 + w) to
        // bf16 as the converter does. BF16 and Q8_0 outputs: llama.cpp loads and runs them
        // (these random tiny hybrids amplify bf16 activations and MoE routing flips to
        // 0.1-0.6; their bytes are checked by the quantize test)
        let dir = tmp.path().join(format!("{kind}-bf16"));
        make(
            &dir,
            kind,
            300 + i as u64,
            &["--dtype", "bf16", "--shards", "3"],
        );
        for (outtype, tol) in [("f32", 1e-4), ("bf16", 1.0), ("q8_0", 1.5)] {
            let out = tmp.path().join(format!("{kind}.bf16.{outtype}.gguf"));
            convert(&dir, &out, outtype);
            let e = check_logits(&dir, &out, tol, &["--bf16-norms"]);
            report.push(format!(
                "{kind} bf16 x3 shards -> {outtype}: max rel err {e:.2e}"
            ));
        }
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn quantize_a_folder_as_llama_quantize_quantizes_its_conversion() {
    let tmp = tempfile::tempdir().unwrap();
    let mut report = Vec::new();
    for (i, kind) in KINDS.iter().enumerate() {
        let dir = tmp.path().join(*kind);
        make(&dir, kind, 400 + i as u64, &["--dtype", "bf16"]);
        // the converter's output for a BF16 folder (--outtype auto): what llama-quantize reads
        let f32 = tmp.path().join(format!("{kind}.bf16.gguf"));
        convert(&dir, &f32, "bf16");
        for (ty, ftype) in [("Q8_0", "7"), ("Q4_K_M", "15")] {
            let ours = tmp.path().join(format!("{kind}.{ty}.gguf"));
            let (code, err) = run(&[
                "quantize",
                dir.to_str().unwrap(),
                "-o",
                ours.to_str().unwrap(),
                "--type",
                ty,
                "--vocab-pre",
                "gpt-2",
                "-q",
            ]);
            assert_eq!(code, 0, "{err}");
            let theirs = tmp.path().join(format!("{kind}.lq.{ty}.gguf"));
            python(
                &script(),
                &[
                    "llama-quantize",
                    f32.to_str().unwrap(),
                    theirs.to_str().unwrap(),
                    ftype,
                ],
            );
            let (a, b) = (
                std::fs::read(&ours).unwrap(),
                std::fs::read(&theirs).unwrap(),
            );
            assert!(
                a == b,
                "{kind} {ty}: gpuq quantize DIR ({} bytes) differs from llama-quantize of the BF16 conversion ({} bytes)",
                a.len(),
                b.len()
            );
            report.push(format!("{kind} {ty}: identical, {} bytes", a.len()));
        }
    }
    eprintln!("{}", report.join("\n"));
}

/// (key, value) of the metadata and (name, dims) of the tensors, by gguf-py.
fn gguf_summary(path: &Path) -> serde_json::Value {
    let script = r#"
import sys, json, gguf
r = gguf.GGUFReader(sys.argv[1])
md = {}
for k, f in r.fields.items():
    if k.startswith("GGUF.") or k.startswith("tokenizer."):
        continue
    md[k] = f.contents()
md["__tensors__"] = {t.name: [int(x) for x in t.shape] for t in r.tensors}
print(json.dumps(md))
"#;
    serde_json::from_str(&python(script, &[path.to_str().unwrap()])).unwrap()
}

#[test]
fn qwen35_metadata_mtp_and_vision_tower() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mm");
    make(&dir, "qwen35", 9, &["--multimodal"]);
    let out = tmp.path().join("mm.gguf");
    let err = convert(&dir, &out, "f32");
    assert!(
        err.contains("vision tower (3 tensors) was left out"),
        "{err}"
    );
    check_logits(&dir, &out, 1e-4, &[]);
    let md = gguf_summary(&out);
    for (k, v) in [
        ("general.architecture", serde_json::json!("qwen35")),
        ("qwen35.block_count", serde_json::json!(5)),
        ("qwen35.nextn_predict_layers", serde_json::json!(1)),
        ("qwen35.full_attention_interval", serde_json::json!(4)),
        ("qwen35.rope.dimension_count", serde_json::json!(8)),
        (
            "qwen35.rope.dimension_sections",
            serde_json::json!([2, 1, 1, 0]),
        ),
        ("qwen35.ssm.conv_kernel", serde_json::json!(4)),
        ("qwen35.ssm.state_size", serde_json::json!(16)),
        ("qwen35.ssm.group_count", serde_json::json!(2)),
        ("qwen35.ssm.time_step_rank", serde_json::json!(4)),
        ("qwen35.ssm.inner_size", serde_json::json!(64)),
        ("qwen35.attention.key_length", serde_json::json!(32)),
    ] {
        assert_eq!(md[k], v, "{k}: {}", md[k]);
    }
    let t = md["__tensors__"].as_object().unwrap();
    assert!(
        t.keys()
            .all(|n| !n.starts_with("v.") && !n.starts_with("mm."))
    );
    for (n, dims) in [
        ("blk.0.attn_qkv.weight", serde_json::json!([64, 128])),
        ("blk.0.attn_gate.weight", serde_json::json!([64, 64])),
        ("blk.0.ssm_conv1d.weight", serde_json::json!([4, 128])),
        ("blk.0.ssm_a", serde_json::json!([4])),
        ("blk.0.ssm_dt.bias", serde_json::json!([4])),
        ("blk.0.ssm_alpha.weight", serde_json::json!([64, 4])),
        ("blk.3.attn_q.weight", serde_json::json!([64, 256])),
        ("blk.4.nextn.eh_proj.weight", serde_json::json!([128, 64])),
        (
            "blk.4.nextn.shared_head_norm.weight",
            serde_json::json!([64]),
        ),
        ("blk.4.attn_q.weight", serde_json::json!([64, 256])),
    ] {
        assert_eq!(t[n], dims, "{n}");
    }
    // embeddings, output norm, output; 3 DeltaNet layers x 14; 1 attention layer x 11; the
    // MTP layer: 11 + 4 nextn
    assert_eq!(t.len(), 3 + 3 * 14 + 11 + 15, "{t:?}");

    // without an MTP block: no nextn tensors or key, block_count = n_layer; experts fused
    // per layer (transformers 5's gate_up_proj / down_proj)
    let dir = tmp.path().join("nomtp");
    make(&dir, "qwen35moe", 10, &["--no-mtp", "--fused-experts"]);
    let out = tmp.path().join("nomtp.gguf");
    convert(&dir, &out, "f32");
    check_logits(&dir, &out, 1e-4, &[]);
    let md = gguf_summary(&out);
    assert_eq!(md["qwen35moe.block_count"], 4);
    assert!(md.get("qwen35moe.nextn_predict_layers").is_none());
    assert_eq!(md["qwen35moe.expert_count"], 4);
    assert_eq!(md["qwen35moe.expert_used_count"], 2);
    assert_eq!(md["qwen35moe.expert_shared_feed_forward_length"], 64);
    assert!(md.get("qwen35moe.feed_forward_length").is_none());
    let t = md["__tensors__"].as_object().unwrap();
    assert_eq!(
        t["blk.0.ffn_gate_exps.weight"],
        serde_json::json!([64, 64, 4])
    );
    assert_eq!(
        t["blk.0.ffn_down_exps.weight"],
        serde_json::json!([64, 64, 4])
    );
    assert_eq!(
        t["blk.0.ffn_gate_inp_shexp.weight"],
        serde_json::json!([64, 1])
    );
}

#[test]
fn bad_folders_name_the_tensor() {
    let tmp = tempfile::tempdir().unwrap();
    for (kind, drop, want) in [
        (
            "qwen3moe",
            "model.layers.1.mlp.experts.2.up_proj.weight",
            "model.layers.1.mlp.experts.2.up_proj.weight",
        ),
        (
            "qwen35",
            "model.layers.1.linear_attn.A_log",
            "model.layers.1.linear_attn.A_log",
        ),
        ("qwen35", "mtp.fc.weight", "mtp.fc.weight"),
    ] {
        let dir = tmp.path().join(format!("{kind}-{}", drop.len()));
        make(&dir, kind, 5, &[]);
        python(&script(), &["drop-ext", dir.to_str().unwrap(), drop]);
        let out = tmp.path().join("x.gguf");
        let (code, err) = run(&[
            "convert",
            dir.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--outtype",
            "f32",
            "--vocab-pre",
            "gpt-2",
            "-q",
        ]);
        assert_ne!(code, 0);
        assert!(err.contains(want) && err.contains("missing"), "{err}");
        assert!(!out.exists());
    }
}
