//! `gpuq quantize --report [FILE.json]`: the error of every converted tensor, checked against
//! numpy on the written file (gguf-py's decoders on the output, the source read back), the table
//! form, bad report names, and the GPU error pass against the CPU's.

mod common;

use common::{gpuq, no_gpu, python};
use serde_json::Value;
use std::path::Path;

/// A 4-layer F16 model whose ff of 640 makes Q4_K/Q6_K tensors fall back (640 % 256 != 0).
fn fixture(dir: &Path) -> String {
    let p = dir.join("m.gguf");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/llama_fixture.py");
    let out = std::process::Command::new("python3")
        .arg(&script)
        .args([
            "make",
            p.to_str().unwrap(),
            "--layers",
            "4",
            "--embd",
            "256",
            "--ff",
            "640",
            "--vocab",
            "320",
            "--seed",
            "11",
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

fn quantize(args: &[&str]) -> std::process::Output {
    gpuq().arg("quantize").args(args).output().unwrap()
}

fn ok(out: &std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[test]
fn report_json_matches_numpy_on_the_written_file() {
    let dir = tempfile::tempdir().unwrap();
    let m = fixture(dir.path());
    let out = dir.path().join("q.gguf");
    let rep = dir.path().join("r.json");
    let o = out.to_str().unwrap();
    ok(
        &quantize(&[
            &m,
            o,
            "Q4_K_M",
            "--backend",
            "cpu",
            "--report",
            rep.to_str().unwrap(),
            "-q",
        ]),
        "quantize --report FILE",
    );
    assert!(!dir.path().join("r.json.tmp").exists());
    let j = read_json(&rep);
    let py = python(
        r#"
import sys, json, numpy as np, gguf
src = {t.name: t for t in gguf.GGUFReader(sys.argv[1]).tensors}
out = {}
for t in gguf.GGUFReader(sys.argv[2]).tensors:
    s = src[t.name]
    if t.tensor_type == s.tensor_type:
        continue
    x = gguf.quants.dequantize(s.data, s.tensor_type).astype(np.float64).reshape(-1, int(s.shape[0]))
    y = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float64).reshape(x.shape)
    d = x - y
    rows = np.sqrt((d * d).sum(axis=1) / (x * x).sum(axis=1))
    out[t.name] = {
        "to": t.tensor_type.name,
        "rel": float(np.sqrt((d * d).sum() / (x * x).sum())),
        "rmse": float(np.sqrt((d * d).mean())),
        "max_abs": float(np.abs(d).max()),
        "cosine": float((x * y).sum() / np.sqrt((x * x).sum() * (y * y).sum())),
        "worst_row": int(rows.argmax()),
    }
json.dump(out, sys.stdout)
"#,
        &[&m, o],
    );
    let py: Value = serde_json::from_str(&py).unwrap();
    let py = py.as_object().unwrap();
    let tensors = j["tensors"].as_array().unwrap();
    assert_eq!(
        tensors.len(),
        py.len(),
        "one entry per converted tensor ({} converted)",
        j["tensors_converted"]
    );
    assert_eq!(j["tensors_converted"].as_u64().unwrap() as usize, py.len());
    let mut fallbacks = 0;
    for t in tensors {
        let name = t["name"].as_str().unwrap();
        let e = &py[name];
        assert_eq!(t["to"], e["to"], "{name}: the type written");
        if t["to"] == "Q5_0" || t["to"] == "Q8_0" {
            fallbacks += 1;
        }
        let m = &t["error"];
        for (k, pk, tol) in [
            ("rel_frobenius", "rel", 1e-5),
            ("rmse", "rmse", 1e-5),
            ("max_abs", "max_abs", 1e-6),
            ("cosine", "cosine", 1e-6),
        ] {
            let (a, b) = (m[k].as_f64().unwrap(), e[pk].as_f64().unwrap());
            assert!(
                (a - b).abs() <= tol * b.abs(),
                "{name} {k}: gpuq {a} vs numpy {b}"
            );
        }
        assert!(m["rel_frobenius"].as_f64().unwrap() > 0.0, "{name}");
        assert_eq!(m["worst_row"]["row"], e["worst_row"], "{name}: worst row");
        assert_eq!(m["poisoned"], 0);
    }
    assert!(
        fallbacks >= 4,
        "ffn_down rows of 640 fall back: {fallbacks}"
    );
    let layers = j["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 5, "4 blocks and the rest");
    assert_eq!(
        layers
            .iter()
            .map(|l| l["tensors"].as_u64().unwrap())
            .sum::<u64>() as usize,
        py.len()
    );
    let model = j["model_error"]["rel_frobenius"].as_f64().unwrap();
    assert!(model > 0.0 && model < 0.2, "model rel. error {model}");
}

#[test]
fn report_table_and_bad_names() {
    let dir = tempfile::tempdir().unwrap();
    let m = fixture(dir.path());
    let out = dir.path().join("q.gguf");
    let o = out.to_str().unwrap();
    // --report last, no file: a table on stdout naming every converted tensor
    let text = ok(
        &quantize(&[&m, "-o", o, "--type", "Q8_0", "-q", "--report"]),
        "quantize --report",
    );
    assert!(
        text.contains("quantization error of the written tensors"),
        "{text}"
    );
    for name in [
        "blk.0.attn_q.weight",
        "blk.3.ffn_down.weight",
        "output.weight",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(name) && l.contains("F16") && l.contains("Q8_0")),
            "no row for {name}:\n{text}"
        );
    }
    assert!(
        text.lines().any(|l| l.starts_with("3 ")),
        "per-layer rows:\n{text}"
    );
    std::fs::remove_file(&out).unwrap();
    // `--report q.gguf` took the output's name: refused before any output exists
    let r = quantize(&[&m, "--report", o, "Q8_0"]);
    assert_eq!(r.status.code(), Some(2));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("--report") && err.contains(".gguf"), "{err}");
    assert!(!out.exists());
    // a folder
    let r = quantize(&[
        &m,
        "-o",
        o,
        "--type",
        "Q8_0",
        "--report",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(r.status.code(), Some(2));
    assert!(!out.exists());
}

/// The GPU error pass (lavapipe in CI) gives the CPU's report within float reordering.
#[test]
fn gpu_report_agrees_with_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let m = fixture(dir.path());
    let mut reports = Vec::new();
    for backend in ["cpu", "gpu"] {
        let out = dir.path().join(format!("q-{backend}.gguf"));
        let rep = dir.path().join(format!("r-{backend}.json"));
        let r = quantize(&[
            &m,
            out.to_str().unwrap(),
            "Q6_K",
            "--backend",
            backend,
            "-q",
            "--report",
            rep.to_str().unwrap(),
        ]);
        if backend == "gpu" && no_gpu(&r) {
            return;
        }
        ok(&r, backend);
        reports.push(read_json(&rep));
    }
    let (c, g) = (&reports[0], &reports[1]);
    assert!(
        g["backend"].as_str().unwrap().contains("gpu"),
        "{}",
        g["backend"]
    );
    let (tc, tg) = (
        c["tensors"].as_array().unwrap(),
        g["tensors"].as_array().unwrap(),
    );
    assert_eq!(tc.len(), tg.len());
    assert!(tc.len() > 20);
    for (a, b) in tc.iter().zip(tg) {
        let name = a["name"].as_str().unwrap();
        assert_eq!(a["to"], b["to"], "{name}");
        assert_eq!(a["error"]["max_abs"], b["error"]["max_abs"], "{name}");
        assert_eq!(
            a["error"]["worst_row"]["row"], b["error"]["worst_row"]["row"],
            "{name}"
        );
        for k in ["rmse", "rel_frobenius", "cosine", "snr_db"] {
            let (x, y) = (
                a["error"][k].as_f64().unwrap(),
                b["error"][k].as_f64().unwrap(),
            );
            assert!(
                (x - y).abs() <= 1e-6 * x.abs(),
                "{name} {k}: cpu {x} gpu {y}"
            );
        }
    }
}

/// I2_S (bitnet.cpp's type: 128-element groups, one scale per tensor) on rows of 640, which
/// are not a multiple of 256: the tensor's absmean pass and the report both work there, and the
/// report equals numpy on `gpuq dequantize`'s F32 of the file; CPU and GPU files are equal.
#[test]
fn i2s_on_rows_of_640_with_report() {
    let dir = tempfile::tempdir().unwrap();
    let m = fixture(dir.path());
    let mut files = Vec::new();
    for backend in ["cpu", "gpu"] {
        let out = dir.path().join(format!("i2s-{backend}.gguf"));
        let rep = dir.path().join(format!("i2s-{backend}.json"));
        let r = quantize(&[
            &m,
            out.to_str().unwrap(),
            "I2_S",
            "--backend",
            backend,
            "-q",
            "--report",
            rep.to_str().unwrap(),
        ]);
        if backend == "gpu" && no_gpu(&r) {
            break;
        }
        ok(&r, backend);
        files.push((out, rep));
    }
    if files.len() == 2 {
        assert_eq!(
            std::fs::read(&files[0].0).unwrap(),
            std::fs::read(&files[1].0).unwrap(),
            "I2_S: GPU and CPU files"
        );
    }
    let (out, rep) = &files[0];
    let j = read_json(rep);
    let f32_out = dir.path().join("i2s-f32.gguf");
    let d = gpuq()
        .args([
            "dequantize",
            out.to_str().unwrap(),
            "-o",
            f32_out.to_str().unwrap(),
        ])
        .args(["--type", "F32", "-q"])
        .output()
        .unwrap();
    assert!(d.status.success(), "{}", String::from_utf8_lossy(&d.stderr));
    let py = python(
        r#"
import sys, json, numpy as np, gguf
src = {t.name: t for t in gguf.GGUFReader(sys.argv[1]).tensors}
out = {}
for t in gguf.GGUFReader(sys.argv[2]).tensors:
    x = gguf.quants.dequantize(src[t.name].data, src[t.name].tensor_type).astype(np.float64).reshape(-1)
    y = np.array(t.data, dtype=np.float64).reshape(-1)
    if len(src[t.name].shape) < 2 or np.array_equal(x, y):
        continue
    out[t.name] = float(np.sqrt(((x - y) ** 2).sum() / (x * x).sum()))
json.dump(out, sys.stdout)
"#,
        &[&m, f32_out.to_str().unwrap()],
    );
    let py: Value = serde_json::from_str(&py).unwrap();
    let tensors = j["tensors"].as_array().unwrap();
    let i2s: Vec<&Value> = tensors.iter().filter(|t| t["to"] == "I2_S").collect();
    assert!(
        i2s.iter().any(|t| t["shape"][0] == 640),
        "ffn_down rows of 640 are I2_S"
    );
    assert_eq!(i2s.len(), py.as_object().unwrap().len());
    for t in i2s {
        let name = t["name"].as_str().unwrap();
        let (a, b) = (
            t["error"]["rel_frobenius"].as_f64().unwrap(),
            py[name].as_f64().unwrap(),
        );
        assert!((a - b).abs() <= 1e-5 * b, "{name}: report {a} vs numpy {b}");
        // post-training ternarization of ordinary weights loses most of them: the report says so
        assert!(a > 0.5, "{name}: {a}");
    }
}

/// TQ2_0 with BitNet's per-channel absmean: the report carries, per tensor, the per-channel and
/// per-tensor absmean errors, and the error measured on the written bytes is the per-channel
/// one (up to the f16 rounding of the stored scales).
#[test]
fn ternary_report_agrees_with_the_written_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let m = fixture(dir.path());
    let out = dir.path().join("tq2.gguf");
    let rep = dir.path().join("tq2.json");
    ok(
        &quantize(&[
            &m,
            out.to_str().unwrap(),
            "TQ2_0",
            "--ternary-scale",
            "per-channel",
            "--backend",
            "cpu",
            "-q",
            "--report",
            rep.to_str().unwrap(),
        ]),
        "TQ2_0 --report",
    );
    let j = read_json(&rep);
    let mut checked = 0;
    for t in j["tensors"].as_array().unwrap() {
        if t["to"] != "TQ2_0" {
            continue;
        }
        let name = t["name"].as_str().unwrap();
        let pc = t["absmean_rel_frobenius"]["per_channel"].as_f64().unwrap();
        let pt = t["absmean_rel_frobenius"]["per_tensor"].as_f64().unwrap();
        let written = t["error"]["rel_frobenius"].as_f64().unwrap();
        assert!(pc > 0.3 && pt > 0.3, "{name}: {pc} {pt}");
        assert!(
            (written - pc).abs() <= 1e-2 * pc,
            "{name}: written {written} vs per-channel {pc}"
        );
        checked += 1;
    }
    assert!(checked >= 8, "{checked} TQ2_0 tensors");
}
