//! `gpuq stats` on small GGUF models made with gguf-py: the table, the JSON (checked against
//! numpy and gguf-py's own quantizer), NaN/Inf rows, `--sort worst`, and the SVG/PNG plot.

mod common;

use common::{gpuq, no_gpu, python};
use gpuq::stats::plot::{ERROR_Y_LABEL, RATIO_Y_LABEL, X_LABEL};
use serde_json::Value;
use std::path::Path;

fn fixture(dir: &Path) -> String {
    let p = dir.join("m.gguf");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/llama_fixture.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .args([
            "make",
            p.to_str().unwrap(),
            "--layers",
            "3",
            "--embd",
            "256",
            "--ff",
            "512",
            "--vocab",
            "256",
            "--seed",
            "7",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    p.to_str().unwrap().to_string()
}

fn run(args: &[&str]) -> String {
    let out = gpuq().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "gpuq {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn table_json_and_plots_on_a_fixture_model() {
    let dir = tempfile::tempdir().unwrap();
    let m = fixture(dir.path());
    let svg = dir.path().join("p.svg");
    let png = dir.path().join("p.png");
    let text = run(&[
        "stats",
        &m,
        "--type",
        "Q4_0,Q4_K,Q6_K",
        "--backend",
        "cpu",
        "--plot",
        svg.to_str().unwrap(),
    ]);
    for needle in [
        "weight statistics",
        "quantization error",
        "per layer",
        "blk.2.ffn_down.weight",
        "token_embd.weight",
        "Q4_0",
        "Q4_K",
        "Q6_K",
    ] {
        assert!(text.contains(needle), "table lacks {needle}:\n{text}");
    }
    // every matrix has one error line per type; 1-D norms have none
    for t in [
        "blk.0.attn_q.weight",
        "blk.1.ffn_gate.weight",
        "output.weight",
    ] {
        for ty in ["Q4_0", "Q4_K", "Q6_K"] {
            assert!(
                text.lines()
                    .any(|l| l.starts_with(t) && l.split_whitespace().nth(1) == Some(ty)),
                "{t} {ty}"
            );
        }
    }
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("blk.0.attn_norm.weight") && l.contains("Q4_0"))
    );

    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(s.len() > 1000 && s.contains("<svg"), "svg too small");
    for needle in [
        X_LABEL,
        ERROR_Y_LABEL,
        RATIO_Y_LABEL,
        "Q4_0",
        "Q4_K",
        "Q6_K",
    ] {
        assert!(s.contains(needle), "svg lacks '{needle}'");
    }
    run(&[
        "stats",
        &m,
        "--type",
        "Q4_0,Q4_K,Q6_K",
        "--backend",
        "cpu",
        "--plot",
        png.to_str().unwrap(),
    ]);
    let p = std::fs::read(&png).unwrap();
    assert!(
        p.len() > 10_000 && p.starts_with(b"\x89PNG"),
        "png: {} bytes",
        p.len()
    );

    // JSON against numpy (statistics) and gguf-py's Q4_0 quantizer (error)
    let j: Value = serde_json::from_str(&run(&[
        "stats",
        &m,
        "--type",
        "Q4_0",
        "--json",
        "--backend",
        "cpu",
    ]))
    .unwrap();
    let py = python(
        r#"
import sys, json, numpy as np, gguf
r = gguf.GGUFReader(sys.argv[1])
out = {}
for t in r.tensors:
    x = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64).reshape(-1, int(t.shape[0]))
    d = {"mean": x.mean(), "absmean": np.abs(x).mean(), "rms": np.sqrt((x*x).mean()), "absmax": np.abs(x).max(),
         "min": x.min(), "max": x.max()}
    if len(t.shape) >= 2:
        x32 = x.astype(np.float32)
        y = gguf.quants.dequantize(gguf.quants.quantize(x32, gguf.GGMLQuantizationType.Q4_0), gguf.GGMLQuantizationType.Q4_0).astype(np.float64)
        d["rel"] = float(np.sqrt(((x - y) ** 2).sum() / (x * x).sum()))
        rows = np.sqrt(((x - y) ** 2).sum(axis=1) / (x * x).sum(axis=1))
        d["worst_row"] = int(rows.argmax())
    out[t.name] = d
json.dump(out, sys.stdout)
"#,
        &[&m],
    );
    let py: Value = serde_json::from_str(&py).unwrap();
    let tensors = j["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), py.as_object().unwrap().len());
    for t in tensors {
        let name = t["name"].as_str().unwrap();
        let e = &py[name];
        for k in ["mean", "absmean", "rms", "absmax", "min", "max"] {
            let (a, b) = (t["stats"][k].as_f64().unwrap(), e[k].as_f64().unwrap());
            let scale = e["absmean"].as_f64().unwrap();
            assert!(
                (a - b).abs() <= 1e-5 * scale,
                "{name} {k}: {a} vs numpy {b}"
            );
        }
        assert_eq!(
            t["histogram"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .sum::<u64>(),
            t["stats"]["n"].as_u64().unwrap()
        );
        if let Some(rel) = e.get("rel") {
            let q = &t["errors"]["Q4_0"];
            let a = q["rel_frobenius"].as_f64().unwrap();
            let b = rel.as_f64().unwrap();
            assert!(
                (a - b).abs() <= 1e-5 * b,
                "{name}: rel err {a} vs gguf-py {b}"
            );
            assert_eq!(q["worst_row"]["row"], e["worst_row"], "{name}: worst row");
        } else {
            assert!(
                t["errors"]["Q4_0"]["skipped"].is_string(),
                "{name}: 1-D tensors are skipped"
            );
        }
    }
    assert_eq!(
        j["layers"].as_array().unwrap().len(),
        4,
        "3 layers and the non-layer group"
    );

    // --sort worst: matrices by decreasing error
    let j: Value = serde_json::from_str(&run(&[
        "stats",
        &m,
        "--type",
        "Q4_0,Q6_K",
        "--json",
        "--sort",
        "worst",
        "--backend",
        "cpu",
    ]))
    .unwrap();
    let worst: Vec<f64> = j["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["shape"].as_array().unwrap().len() >= 2)
        .map(|t| {
            t["errors"]["Q4_0"]["rel_frobenius"]
                .as_f64()
                .unwrap()
                .max(t["errors"]["Q6_K"]["rel_frobenius"].as_f64().unwrap())
        })
        .collect();
    assert!(
        worst.len() > 10 && worst.windows(2).all(|w| w[0] >= w[1]),
        "{worst:?}"
    );
}

#[test]
fn nonfinite_rows_are_reported_with_tensor_and_row() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("nan.gguf");
    python(
        r#"
import sys, numpy as np, gguf
w = gguf.GGUFWriter(sys.argv[1], "llama")
rng = np.random.default_rng(3)
a = rng.standard_normal((8, 64)).astype(np.float32)
a[3, 10] = np.nan; a[3, 11] = np.nan; a[5, 0] = np.inf; a[7, 63] = -np.inf
w.add_tensor("blk.0.ffn_up.weight", a)
w.add_tensor("blk.0.attn_k.weight", rng.standard_normal((4, 48)).astype(np.float32))
w.add_tensor("blk.0.attn_q.weight", rng.standard_normal((6, 96)).astype(np.float32))
w.add_tensor("blk.0.attn_norm.weight", np.ones(48, dtype=np.float32))
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
"#,
        &[m.to_str().unwrap()],
    );
    let m = m.to_str().unwrap();
    let text = run(&["stats", m, "--type", "Q4_K,Q8_0", "--backend", "cpu"]);
    assert!(
        text.contains("blk.0.ffn_up.weight: 2 NaN, 2 Inf in 3 rows"),
        "{text}"
    );
    for l in [
        "row 3: 2 NaN, 0 Inf",
        "row 5: 0 NaN, 1 Inf",
        "row 7: 0 NaN, 1 Inf",
    ] {
        assert!(text.contains(l), "lacks '{l}':\n{text}");
    }
    // rows that Q4_K's block does not divide are measured as llama-quantize writes them:
    // 96 -> Q5_0, 48 (not a multiple of 32 either) -> F16
    for l in [
        "[falls back to Q5_0: row of 96 is not a multiple of 256]",
        "[falls back to F16: row of 48 is not a multiple of 256]",
    ] {
        assert!(text.contains(l), "lacks '{l}':\n{text}");
    }
    let j: Value = serde_json::from_str(&run(&[
        "stats",
        m,
        "--type",
        "Q4_K,Q5_0",
        "--json",
        "--backend",
        "cpu",
    ]))
    .unwrap();
    let q = j["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "blk.0.attn_q.weight")
        .unwrap();
    assert_eq!(q["errors"]["Q4_K"]["measured_as"], "Q5_0");
    assert_eq!(q["errors"]["Q5_0"]["measured_as"], "Q5_0");
    let rel = |t: &str| q["errors"][t]["rel_frobenius"].as_f64().unwrap();
    assert!(rel("Q5_0") > 0.0);
    assert_eq!(rel("Q4_K"), rel("Q5_0"));
    let j: Value = serde_json::from_str(&run(&[
        "stats",
        m,
        "--type",
        "Q8_0",
        "--json",
        "--backend",
        "cpu",
    ]))
    .unwrap();
    let t = &j["tensors"][0];
    assert_eq!(t["stats"]["nan"], 2);
    assert_eq!(t["stats"]["inf"], 2);
    let rows: Vec<u64> = t["nonfinite_rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["row"].as_u64().unwrap())
        .collect();
    assert_eq!(rows, [3, 5, 7]);
    // the error skips the non-finite source values and stays finite
    assert!(
        t["errors"]["Q8_0"]["rel_frobenius"]
            .as_f64()
            .unwrap()
            .is_finite()
    );
}

#[test]
fn bad_arguments_are_errors() {
    let out = gpuq()
        .args(["stats", "/nonexistent.gguf"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.gguf"));
}

/// `--backend gpu` (statistics in shaders/stats.wgsl, F16 decode on the GPU) against the CPU
/// path on the fixture model. Skipped when there is no adapter.
#[test]
fn gpu_backend_agrees_with_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let m = fixture(dir.path());
    let out = gpuq()
        .args(["stats", &m, "--type", "Q4_K", "--json", "--backend", "gpu"])
        .output()
        .unwrap();
    if no_gpu(&out) {
        return;
    }
    let g: Value = serde_json::from_slice(&out.stdout).unwrap();
    let c: Value = serde_json::from_str(&run(&[
        "stats",
        &m,
        "--type",
        "Q4_K",
        "--json",
        "--backend",
        "cpu",
    ]))
    .unwrap();
    assert!(
        g["backend"].as_str().unwrap().starts_with("backend gpu"),
        "{}",
        g["backend"]
    );
    for (tg, tc) in g["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .zip(c["tensors"].as_array().unwrap())
    {
        let name = tc["name"].as_str().unwrap();
        for k in ["mean", "absmean", "rms", "min", "max", "absmax"] {
            let (a, b) = (
                tg["stats"][k].as_f64().unwrap(),
                tc["stats"][k].as_f64().unwrap(),
            );
            let scale = tc["stats"]["absmean"].as_f64().unwrap();
            assert!((a - b).abs() <= 1e-5 * scale, "{name} {k}: gpu {a} cpu {b}");
        }
        for k in ["n", "finite", "zeros", "nan", "inf"] {
            assert_eq!(tg["stats"][k], tc["stats"][k], "{name} {k}");
        }
        let (og, oc) = (
            tg["stats"]["outliers"].as_u64().unwrap(),
            tc["stats"]["outliers"].as_u64().unwrap(),
        );
        assert!(og.abs_diff(oc) <= 2, "{name}: outliers gpu {og} cpu {oc}");
        // the round trip is byte-identical; the GPU error pass sums in another order
        let (eg, ec) = (&tg["errors"]["Q4_K"], &tc["errors"]["Q4_K"]);
        if ec.get("skipped").is_some() {
            assert_eq!(eg, ec, "{name}");
            continue;
        }
        for k in ["measured_as", "poisoned", "max_abs"] {
            assert_eq!(eg[k], ec[k], "{name}: error {k}");
        }
        assert_eq!(eg["worst_row"]["row"], ec["worst_row"]["row"], "{name}");
        for k in ["rmse", "rel_frobenius", "cosine", "snr_db"] {
            let (a, b) = (eg[k].as_f64().unwrap(), ec[k].as_f64().unwrap());
            assert!(
                (a - b).abs() <= 1e-6 * b.abs(),
                "{name} error {k}: gpu {a} cpu {b}"
            );
        }
    }
}

/// `gpuq stats` reads any model gpuq quantizes: the splits of a GGUF model as one model, and a
/// Hugging Face folder (with its GGUF names). The same weights give the same JSON as the
/// single-file GGUF.
#[test]
fn split_files_and_hf_folders_give_the_same_stats() {
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/llama_fixture.py");
    let make = |out: &Path, extra: &[&str]| {
        let o = std::process::Command::new("python3")
            .arg(&script)
            .args([
                "make",
                out.to_str().unwrap(),
                "--layers",
                "2",
                "--seed",
                "31",
            ])
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    let one = dir.path().join("one.gguf");
    make(&one, &[]);
    make(&dir.path().join("sp.gguf"), &["--split", "7"]);
    let first = dir.path().join("sp-00001-of-00003.gguf");
    let stats = |m: &Path| -> Value {
        let mut j: Value = serde_json::from_str(&run(&[
            "stats",
            m.to_str().unwrap(),
            "--type",
            "Q4_K,Q8_0",
            "--json",
            "--backend",
            "cpu",
        ]))
        .unwrap();
        j.as_object_mut().unwrap().remove("model");
        j
    };
    let a = stats(&one);
    assert_eq!(a["tensors"].as_array().unwrap().len(), 21);
    assert_eq!(a, stats(&first), "split files vs one file");

    // a Hugging Face folder (F32) and its F32 conversion: same values, same statistics
    let hf = dir.path().join("hf");
    let py = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/hf_model.py");
    let o = std::process::Command::new("python3")
        .arg(&py)
        .args(["make", hf.to_str().unwrap(), "llama", "5"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let conv = dir.path().join("hf.gguf");
    let o = gpuq()
        .args([
            "convert",
            hf.to_str().unwrap(),
            "-o",
            conv.to_str().unwrap(),
        ])
        .args(["--outtype", "f32", "-q", "--vocab-pre", "gpt-2"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (h, c) = (stats(&hf), stats(&conv));
    assert!(h["tensors"].as_array().unwrap().len() > 10);
    assert_eq!(h, c, "HF folder vs its F32 conversion");
}
