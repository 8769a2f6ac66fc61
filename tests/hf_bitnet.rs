//! BitNet b1.58 Hugging Face folders -> GGUF. Tiny folders with microsoft/bitnet-b1.58-2B-4T's
//! tensor names and config keys (tests/py/hf_model.py `make-bitnet`), in its two weight forms:
//! BF16 master weights, and packed uint8 trits with a `weight_scale` (transformers' BitLinear,
//! trit / scale, with 1bitLLM's sub-norm names; AutoBitLinear offline, trit * scale). Each is
//! converted to TQ2_0, TQ1_0, I2_S and floats; gguf-py checks names, types, shapes and that
//! every ternary tensor holds the expected ternarization (computed independently in numpy);
//! llama.cpp loads every output it can read and its logits are compared with a numpy forward
//! pass of its bitnet graph; the ternary tensors equal, byte for byte, what llama.cpp's own
//! quantizer makes of gpuq's F16 conversion.

mod common;

use common::{gpuq_status as run, python};
use std::path::Path;

const MODEL_PY: &str = include_str!("py/hf_model.py");

/// (form, folder options): BF16 master weights; packed, trit / scale, 1bitLLM names and the
/// `BitnetForCausalLM` spelling; packed, trit * scale.
const FORMS: &[(&str, &[&str])] = &[
    ("bf16", &[]),
    ("packed-div", &["--old-names"]),
    ("packed-mul", &[]),
];

fn make(dir: &Path, seed: u64, form: &str, extra: &[&str]) {
    let seed = seed.to_string();
    let mut args = vec!["make-bitnet", dir.to_str().unwrap(), seed.as_str(), form];
    args.extend_from_slice(extra);
    python(MODEL_PY, &args);
}

fn quantize(dir: &Path, out: &Path, ty: &str, extra: &[&str]) {
    let mut args = vec![
        "quantize",
        dir.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--type",
        ty,
        "--vocab-pre",
        "gpt-2",
        "-q",
    ];
    args.extend_from_slice(extra);
    let (code, err) = run(&args);
    assert_eq!(code, 0, "gpuq quantize {} {ty}: {err}", dir.display());
}

fn convert(dir: &Path, out: &Path, outtype: &str, extra: &[&str]) {
    let mut args = vec![
        "convert",
        dir.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--outtype",
        outtype,
        "--vocab-pre",
        "gpt-2",
        "-q",
    ];
    args.extend_from_slice(extra);
    let (code, err) = run(&args);
    assert_eq!(code, 0, "gpuq convert {} {outtype}: {err}", dir.display());
}

/// `check-bitnet`: names, types, shapes and ternary values; with `tol`, llama.cpp loads the
/// file and its logits are within `tol` (relative to the largest logit) of the numpy forward.
/// Returns the script's summary lines.
fn check(
    dir: &Path,
    gguf: &Path,
    linear: &str,
    embd: &str,
    tol: Option<f64>,
    extra: &[&str],
) -> String {
    let tol_s = tol.map(|t| t.to_string());
    let mut args = vec![
        "check-bitnet",
        dir.to_str().unwrap(),
        gguf.to_str().unwrap(),
        linear,
        embd,
    ];
    if let Some(t) = &tol_s {
        args.push(t);
    }
    args.extend_from_slice(extra);
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(MODEL_PY)
        .args(&args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{} ({linear}): check failed:\n{stdout}\n{}",
        gguf.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let tensors = stdout
        .lines()
        .find(|l| l.starts_with("tensors "))
        .unwrap_or_else(|| panic!("no summary: {stdout}"));
    // 2 layers: 2 + 11 * 2 tensors, 14 of them ternary
    assert!(tensors.starts_with("tensors 24 ternary 14 "), "{tensors}");
    if tol.is_some() {
        assert!(stdout.contains("max_rel_err"), "{stdout}");
    }
    stdout.trim().replace('\n', "; ")
}

#[test]
fn bitnet_folders_convert_and_llama_cpp_loads_them() {
    let tmp = tempfile::tempdir().unwrap();
    let mut report = Vec::new();
    for (i, (form, opts)) in FORMS.iter().enumerate() {
        let dir = tmp.path().join(form);
        make(&dir, 40 + i as u64, form, opts);
        let at = |name: &str| tmp.path().join(format!("{form}.{name}.gguf"));
        // llama.cpp quantizes activations to Q8_K against TQ weights: a loose bound
        for ty in ["TQ2_0", "TQ1_0"] {
            quantize(&dir, &at(ty), ty, &[]);
            let r = check(&dir, &at(ty), ty, "BF16", Some(8e-2), &[]);
            report.push(format!("{form} -> {ty}: {r}"));
        }
        // I2_S: llama.cpp cannot read it; gguf-py (taught the type id) and gpuq's decoder can
        quantize(&dir, &at("I2_S"), "I2_S", &[]);
        let r = check(&dir, &at("I2_S"), "I2_S", "BF16", None, &[]);
        report.push(format!("{form} -> I2_S: {r}"));
        let (code, err) = run(&[
            "dequantize",
            at("I2_S").to_str().unwrap(),
            "-o",
            at("I2_S.f32").to_str().unwrap(),
            "--type",
            "F32",
            "-q",
        ]);
        assert_eq!(code, 0, "{err}");
        let r = check(
            &dir,
            &at("I2_S.f32"),
            "F32",
            "F32",
            Some(1e-4),
            &["--decoded"],
        );
        report.push(format!("{form} -> I2_S -> F32 (gpuq's decoder): {r}"));
        let outtypes: &[(&str, &str, f64)] = if *form == "bf16" {
            &[
                ("f16", "F16", 2e-3),
                ("f32", "F32", 1e-4),
                ("bf16", "BF16", 5e-2),
            ]
        } else {
            &[("f16", "F16", 2e-3)]
        };
        for (outtype, ty, tol) in outtypes {
            convert(&dir, &at(outtype), outtype, &[]);
            let r = check(&dir, &at(outtype), ty, ty, Some(*tol), &[]);
            report.push(format!("{form} -> convert {outtype}: {r}"));
        }
    }
    eprintln!("{}", report.join("\n"));
}

/// gpuq's direct ternary output equals llama.cpp's quantizer run on gpuq's F16 conversion
/// (the two-step path llama.cpp users take), tensor by tensor; likewise Q8_0, where the
/// ternarized weights go through a non-ternary type.
#[test]
fn ternary_tensors_equal_llama_quantize_of_the_f16_conversion() {
    let tmp = tempfile::tempdir().unwrap();
    let mut report = Vec::new();
    for (i, form) in ["bf16", "packed-mul"].iter().enumerate() {
        let dir = tmp.path().join(form);
        make(&dir, 60 + i as u64, form, &[]);
        let f16 = tmp.path().join(format!("{form}.f16.gguf"));
        convert(&dir, &f16, "f16", &[]);
        let cases: &[(&str, &str)] = if *form == "bf16" {
            &[("TQ2_0", "37"), ("TQ1_0", "36"), ("Q8_0", "7")]
        } else {
            &[("TQ2_0", "37"), ("TQ1_0", "36")]
        };
        for (ty, ftype) in cases {
            let ours = tmp.path().join(format!("{form}.{ty}.gguf"));
            quantize(&dir, &ours, ty, &[]);
            let theirs = tmp.path().join(format!("{form}.llama.{ty}.gguf"));
            python(
                MODEL_PY,
                &[
                    "llama-quantize",
                    f16.to_str().unwrap(),
                    theirs.to_str().unwrap(),
                    ftype,
                ],
            );
            let out = std::process::Command::new("python3")
                .arg("-c")
                .arg(MODEL_PY)
                .args([
                    "same-tensors",
                    ours.to_str().unwrap(),
                    theirs.to_str().unwrap(),
                    ty,
                ])
                .output()
                .unwrap();
            let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
            assert!(out.status.success(), "{form} {ty}: {s}");
            // TQ: the 14 ternary tensors; Q8_0: those and token_embd
            let want = if *ty == "Q8_0" {
                "same 15 differ 0"
            } else {
                "same 14 differ 0"
            };
            assert!(s.starts_with(want), "{form} {ty}: {s}");
            report.push(format!("{form} {ty}: {s}"));
        }
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn metadata_and_tensors_as_the_converter_writes_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bitnet-tiny");
    make(&dir, 7, "packed-mul", &[]);
    let script = r#"
import sys, json, gguf
r = gguf.GGUFReader(sys.argv[1])
md = {k: f.contents() for k, f in r.fields.items()
      if not k.startswith("GGUF.") and not k.startswith("tokenizer.ggml.")}
md["__tensors__"] = {t.name: t.tensor_type.name for t in r.tensors}
print(json.dumps(md))
"#;
    for (ty, ftype, embd) in [("TQ2_0", 37, "BF16"), ("TQ1_0", 36, "Q6_K")] {
        let out = tmp.path().join(format!("m.{ty}.gguf"));
        let extra: &[&str] = if embd == "Q6_K" {
            &["--token-embedding-type", "Q6_K"]
        } else {
            &[]
        };
        quantize(&dir, &out, ty, extra);
        let md: serde_json::Value =
            serde_json::from_str(&python(script, &[out.to_str().unwrap()])).unwrap();
        let expect = [
            ("general.architecture", serde_json::json!("bitnet")),
            ("general.name", serde_json::json!("bitnet-tiny")),
            ("general.file_type", serde_json::json!(ftype)),
            ("general.quantization_version", serde_json::json!(2)),
            ("bitnet.block_count", serde_json::json!(2)),
            ("bitnet.context_length", serde_json::json!(4096)),
            ("bitnet.embedding_length", serde_json::json!(256)),
            ("bitnet.feed_forward_length", serde_json::json!(512)),
            ("bitnet.attention.head_count", serde_json::json!(4)),
            ("bitnet.attention.head_count_kv", serde_json::json!(2)),
            ("bitnet.rope.scaling.type", serde_json::json!("linear")),
            ("bitnet.rope.scaling.factor", serde_json::json!(1.0)),
        ];
        for (k, v) in expect {
            assert_eq!(md[k], v, "{ty} {k}: {}", md[k]);
        }
        assert!((md["bitnet.rope.freq_base"].as_f64().unwrap() - 500000.0).abs() < 1e-3);
        assert!(
            (md["bitnet.attention.layer_norm_rms_epsilon"]
                .as_f64()
                .unwrap()
                - 1e-5)
                .abs()
                < 1e-9
        );
        // TextModel writes no rope dimension count and no vocab size for bitnet
        for k in ["bitnet.rope.dimension_count", "bitnet.vocab_size"] {
            assert!(md.get(k).is_none(), "{k}");
        }
        let tensors = md["__tensors__"].as_object().unwrap();
        assert_eq!(tensors.len(), 2 + 11 * 2, "{tensors:?}");
        assert!(!tensors.contains_key("output.weight"));
        for (name, t) in tensors {
            let want = if name == "token_embd.weight" {
                embd
            } else if name.ends_with("norm.weight") {
                "F32"
            } else {
                ty
            };
            assert_eq!(t, want, "{ty}: {name}");
        }
        for l in 0..2 {
            for n in ["attn_sub_norm", "ffn_sub_norm"] {
                assert!(tensors.contains_key(&format!("blk.{l}.{n}.weight")), "{n}");
            }
        }
    }
}

/// Both backends write the same bytes: the absmean sums, the scaled TQ encoders and the I2_S
/// codes run on the GPU (lavapipe in CI).
#[cfg(feature = "gpu")]
#[test]
fn gpu_and_cpu_write_the_same_bytes() {
    if let Err(e) = gpuq::Engine::new(gpuq::Backend::Gpu) {
        if std::env::var("GPUQ_TEST_ALLOW_NO_GPU").as_deref() == Ok("1") {
            eprintln!("skipping: {e} (GPUQ_TEST_ALLOW_NO_GPU=1)");
            return;
        }
        panic!("no GPU for the GPU tests: {e}\n(set GPUQ_TEST_ALLOW_NO_GPU=1 to skip)");
    }
    let tmp = tempfile::tempdir().unwrap();
    for (i, (form, opts)) in FORMS.iter().take(2).enumerate() {
        let dir = tmp.path().join(form);
        make(&dir, 80 + i as u64, form, opts);
        for ty in ["TQ2_0", "TQ1_0", "I2_S"] {
            let a = tmp.path().join(format!("{form}.{ty}.cpu.gguf"));
            let b = tmp.path().join(format!("{form}.{ty}.gpu.gguf"));
            quantize(&dir, &a, ty, &["--backend", "cpu"]);
            quantize(&dir, &b, ty, &["--backend", "gpu"]);
            let (x, y) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
            assert!(x == y, "{form} {ty}: GPU output differs from the CPU's");
        }
        let a = tmp.path().join(format!("{form}.f16.cpu.gguf"));
        let b = tmp.path().join(format!("{form}.f16.gpu.gguf"));
        convert(&dir, &a, "f16", &["--backend", "cpu"]);
        convert(&dir, &b, "f16", &["--backend", "gpu"]);
        assert!(
            std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap(),
            "{form} f16"
        );
    }
}

/// `--type I2_S` on a plain (non-BitNet) F16 GGUF: every linear weight whose rows are whole
/// 128-element groups becomes I2_S with its per-tensor absmean ternarization (the rest falls
/// back to Q4_0), embeddings and output stay F16, and gpuq's decoder gives back trit * scale.
#[test]
fn i2s_from_a_plain_llama_gguf() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("llama.f16.gguf");
    python(
        include_str!("py/llama_fixture.py"),
        &[
            "make",
            src.to_str().unwrap(),
            "--layers",
            "2",
            "--embd",
            "256",
            "--ff",
            "320",
            "--vocab",
            "300",
            "--seed",
            "3",
            "--dtype",
            "f16",
        ],
    );
    let out = tmp.path().join("llama.I2_S.gguf");
    let (code, err) = run(&[
        "quantize",
        src.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--type",
        "I2_S",
        "-q",
    ]);
    assert_eq!(code, 0, "{err}");
    let deq = tmp.path().join("llama.I2_S.f32.gguf");
    let (code, err) = run(&[
        "dequantize",
        out.to_str().unwrap(),
        "-o",
        deq.to_str().unwrap(),
        "--type",
        "F32",
        "-q",
    ]);
    assert_eq!(code, 0, "{err}");
    let r = python(
        MODEL_PY,
        &[
            "check-i2s",
            src.to_str().unwrap(),
            out.to_str().unwrap(),
            deq.to_str().unwrap(),
        ],
    );
    // per layer: q, k, v, output, gate, up (rows of 256) as I2_S; ffn_down (rows of 320) Q4_0
    assert!(r.starts_with("i2s 12 "), "{r}");
    eprintln!("{}", r.trim());
}

/// The byte range of a tensor's data in a single-file safetensors folder.
fn tensor_range(path: &Path, name: &str) -> std::ops::Range<usize> {
    let raw = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(raw[..8].try_into().unwrap()) as usize;
    let h: serde_json::Value = serde_json::from_slice(&raw[8..8 + n]).unwrap();
    let o = &h[name]["data_offsets"];
    8 + n + o[0].as_u64().unwrap() as usize..8 + n + o[1].as_u64().unwrap() as usize
}

/// Exit code 2, every needle in the message, no output (nor its temporary) left behind.
fn refuse(dir: &Path, args: &[&str], needles: &[&str]) {
    let out = dir.with_extension("gguf");
    let mut all = vec![
        "quantize",
        dir.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--vocab-pre",
        "gpt-2",
        "-q",
    ];
    all.extend_from_slice(args);
    let (code, err) = run(&all);
    assert_eq!(code, 2, "{err}");
    for n in needles {
        assert!(err.contains(n), "'{n}' not in: {err}");
    }
    assert!(!out.exists(), "output left behind");
    assert!(gpuq::formats::gguf::output::leftover_tmp_files(&out).is_empty());
}

#[test]
fn bad_bitnet_folders_are_refused_with_the_file_and_tensor_named() {
    let tmp = tempfile::tempdir().unwrap();
    let fresh = |name: &str, form: &str| {
        let d = tmp.path().join(name);
        make(&d, 5, form, &[]);
        d
    };
    let st = |d: &Path| d.join("model.safetensors");
    let w = "model.layers.1.mlp.up_proj.weight";

    // a 2-bit code 3 in a packed weight
    let d = fresh("code3", "packed-div");
    let r = tensor_range(&st(&d), w);
    let mut raw = std::fs::read(st(&d)).unwrap();
    raw[r.start + 5] |= 0xc0;
    std::fs::write(st(&d), raw).unwrap();
    refuse(
        &d,
        &["--type", "TQ2_0"],
        &["blk.1.ffn_up.weight", w, "code 3"],
    );

    // a packed weight without its scale: rename the scale tensor
    let d = fresh("noscale", "packed-mul");
    rename_tensor(&st(&d), &format!("{w}_scale"), &format!("{w}_scalx"));
    refuse(
        &d,
        &["--type", "TQ2_0"],
        &["model.safetensors", &format!("{w}_scale")],
    );

    // a scale that is not a positive number
    let d = fresh("zeroscale", "packed-div");
    let r = tensor_range(&st(&d), &format!("{w}_scale"));
    let mut raw = std::fs::read(st(&d)).unwrap();
    raw[r].fill(0);
    std::fs::write(st(&d), raw).unwrap();
    refuse(
        &d,
        &["--type", "I2_S"],
        &[&format!("{w}_scale"), "positive"],
    );

    // per-row scales on an already ternary tensor, and on I2_S
    let d = fresh("perchan", "packed-div");
    refuse(
        &d,
        &["--type", "TQ2_0", "--ternary-scale", "per-channel"],
        &["per-channel", "already ternary"],
    );
    let d = fresh("perchan2", "bf16");
    refuse(
        &d,
        &["--type", "I2_S", "--ternary-scale", "per-channel"],
        &["per-channel", "I2_S holds one scale per tensor"],
    );

    // an output matrix: llama.cpp's bitnet graph has none (it uses token_embd)
    let d = fresh("lmhead", "bf16");
    rename_tensor(&st(&d), "model.embed_tokens.weight", "lm_head.weight");
    refuse(&d, &["--type", "TQ2_0"], &["lm_head.weight", "bitnet"]);
}

/// Renames a tensor in a safetensors header (same length, padded with spaces).
fn rename_tensor(path: &Path, from: &str, to: &str) {
    let mut raw = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(raw[..8].try_into().unwrap()) as usize;
    let mut h: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&raw[8..8 + n]).unwrap();
    let v = h.remove(from).unwrap();
    h.insert(to.to_string(), v);
    let mut text = serde_json::to_vec(&h).unwrap();
    assert!(text.len() <= n, "rewritten header is longer");
    text.resize(n, b' ');
    raw[8..8 + n].copy_from_slice(&text);
    std::fs::write(path, raw).unwrap();
}
