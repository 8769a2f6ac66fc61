//! Hugging Face folders -> GGUF: tiny random models of each supported architecture, written by
//! the test (tests/py/hf_model.py), converted by gpuq; the logits llama.cpp computes from the
//! GGUF are checked against an independent numpy forward pass of the same HF weights.

mod common;

use common::{gpuq_status as run, python};
use std::path::Path;

const MODEL_PY: &str = include_str!("py/hf_model.py");

fn make(dir: &Path, arch: &str, seed: u64, extra: &[&str]) {
    let seed = seed.to_string();
    let mut args = vec!["make", dir.to_str().unwrap(), arch, seed.as_str()];
    args.extend_from_slice(extra);
    python(MODEL_PY, &args);
}

/// The largest relative logit error over a few token sequences, or a panic when over `tol`.
fn check_logits(dir: &Path, gguf: &Path, tol: f64) -> f64 {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(MODEL_PY)
        .args([
            "check",
            dir.to_str().unwrap(),
            gguf.to_str().unwrap(),
            &tol.to_string(),
        ])
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

fn convert(dir: &Path, out: &Path, outtype: &str, extra: &[&str]) {
    let mut args = vec![
        "convert",
        dir.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--outtype",
        outtype,
        "-q",
    ];
    args.extend_from_slice(extra);
    let (code, err) = run(&args);
    assert_eq!(code, 0, "gpuq convert {}: {err}", dir.display());
}

/// (architecture, folder options) covering single/sharded files, F32/F16/BF16 sources, tied
/// embeddings, llama attention biases and rope scaling (llama3 factors, linear, yarn).
const CASES: &[(&str, &[&str])] = &[
    ("llama", &["--bias"]),
    ("llama", &["--dtype", "bf16", "--shards", "3", "--tied"]),
    ("mistral", &["--dtype", "bf16", "--shards", "2"]),
    ("qwen2", &["--dtype", "f16", "--tied"]),
    ("qwen3", &["--dtype", "bf16", "--shards", "2"]),
    ("llama", &["--rope", "llama3"]),
    ("llama", &["--rope", "linear", "--dtype", "bf16"]),
    ("llama", &["--rope", "yarn"]),
];

#[test]
fn logits_match_an_independent_forward_pass() {
    let tmp = tempfile::tempdir().unwrap();
    let mut report = Vec::new();
    for (i, (arch, opts)) in CASES.iter().enumerate() {
        let dir = tmp.path().join(format!("{arch}{i}"));
        make(&dir, arch, 100 + i as u64, opts);
        for (outtype, tol) in [("f32", 1e-3), ("f16", 2e-2), ("q8_0", 8e-2)] {
            let out = tmp.path().join(format!("{arch}{i}.{outtype}.gguf"));
            convert(&dir, &out, outtype, &["--vocab-pre", "gpt-2"]);
            let err = check_logits(&dir, &out, tol);
            report.push(format!(
                "{arch} {opts:?} -> {outtype}: max rel err {err:.2e}"
            ));
        }
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn quantize_takes_a_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("qwen3");
    make(&dir, "qwen3", 7, &["--dtype", "bf16"]);
    for (ty, tol) in [("Q8_0", 8e-2), ("Q4_K_M", 0.3)] {
        let out = tmp.path().join(format!("q.{ty}.gguf"));
        let (code, err) = run(&[
            "quantize",
            dir.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--type",
            ty,
            "--vocab-pre",
            "qwen2",
            "-q",
        ]);
        assert_eq!(code, 0, "{err}");
        let e = check_logits(&dir, &out, tol);
        eprintln!("quantize qwen3 bf16 -> {ty}: max rel err {e:.2e}");
    }
    // norms are F32 (as after convert_hf_to_gguf.py), never copied as BF16
    let types = gguf_types(&tmp.path().join("q.Q8_0.gguf"));
    assert!(
        types
            .iter()
            .filter(|(n, _)| n.ends_with("norm.weight"))
            .all(|(_, t)| t == "F32"),
        "{types:?}"
    );
}

/// (name, type name) of every tensor, by gguf-py.
fn gguf_types(path: &Path) -> Vec<(String, String)> {
    let out = python(
        "import sys, gguf\nr = gguf.GGUFReader(sys.argv[1])\nfor t in r.tensors: print(t.name, t.tensor_type.name)",
        &[path.to_str().unwrap()],
    );
    out.lines()
        .filter_map(|l| {
            l.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        })
        .collect()
}

#[test]
fn metadata_and_tensors_as_the_converter_writes_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("SmolTest-1");
    make(&dir, "llama", 3, &["--dtype", "bf16", "--tied"]);
    let out = tmp.path().join("m.gguf");
    convert(&dir, &out, "q8_0", &["--vocab-pre", "llama-bpe"]);
    let script = r#"
import sys, json, gguf
r = gguf.GGUFReader(sys.argv[1])
md = {}
for k, f in r.fields.items():
    if k.startswith("GGUF."):
        continue
    v = f.contents()
    md[k] = v if not isinstance(v, list) or len(v) < 20 else {"len": len(v), "head": v[:3], "tail": v[-3:]}
md["__tensors__"] = {t.name: t.tensor_type.name for t in r.tensors}
print(json.dumps(md))
"#;
    let md: serde_json::Value =
        serde_json::from_str(&python(script, &[out.to_str().unwrap()])).unwrap();
    let expect = [
        ("general.architecture", serde_json::json!("llama")),
        ("general.name", serde_json::json!("SmolTest-1")),
        ("general.file_type", serde_json::json!(7)),
        ("llama.block_count", serde_json::json!(2)),
        ("llama.context_length", serde_json::json!(128)),
        ("llama.embedding_length", serde_json::json!(64)),
        ("llama.feed_forward_length", serde_json::json!(128)),
        ("llama.attention.head_count", serde_json::json!(4)),
        ("llama.attention.head_count_kv", serde_json::json!(2)),
        ("llama.rope.dimension_count", serde_json::json!(16)),
        ("llama.vocab_size", serde_json::json!(280)),
        ("tokenizer.ggml.model", serde_json::json!("gpt2")),
        ("tokenizer.ggml.pre", serde_json::json!("llama-bpe")),
        ("tokenizer.ggml.eos_token_id", serde_json::json!(266)),
        ("tokenizer.ggml.add_bos_token", serde_json::json!(false)),
        (
            "tokenizer.chat_template",
            serde_json::json!("{% for m in messages %}<|im_start|>{{ m['content'] }}{% endfor %}"),
        ),
    ];
    for (k, v) in expect {
        assert_eq!(md[k], v, "{k}: {}", md[k]);
    }
    assert!((md["llama.rope.freq_base"].as_f64().unwrap() - 10000.0).abs() < 1e-3);
    assert!(
        (md["llama.attention.layer_norm_rms_epsilon"]
            .as_f64()
            .unwrap()
            - 1e-5)
            .abs()
            < 1e-9
    );
    let tokens = &md["tokenizer.ggml.tokens"];
    assert_eq!(tokens["len"], 280);
    assert_eq!(
        tokens["tail"],
        serde_json::json!(["[PAD277]", "[PAD278]", "[PAD279]"])
    );
    assert_eq!(
        md["tokenizer.ggml.token_type"]["tail"],
        serde_json::json!([5, 5, 5])
    );
    let merges = md["tokenizer.ggml.merges"].as_array().unwrap();
    assert_eq!(merges.len(), 10);
    assert_eq!(
        merges[..3],
        serde_json::json!(["\u{120} t", "h e", "\u{120}t he"])
            .as_array()
            .unwrap()[..]
    );
    let tensors = md["__tensors__"].as_object().unwrap();
    assert_eq!(tensors.len(), 2 + 2 * 9, "{tensors:?}"); // no output.weight (tied), no inv_freq
    assert!(!tensors.contains_key("output.weight"));
    for (name, ty) in tensors {
        let want = if name.ends_with("norm.weight") {
            "F32"
        } else {
            "Q8_0"
        };
        assert_eq!(ty, want, "{name}");
    }
}

#[test]
fn a_folder_without_a_tokenizer_converts_and_loads() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("notok");
    make(&dir, "qwen2", 11, &["--no-tokenizer"]);
    let out = tmp.path().join("n.gguf");
    let (code, err) = run(&[
        "convert",
        dir.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--outtype",
        "f32",
        "-q",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning") && err.contains("no tokenizer"),
        "{err}"
    );
    check_logits(&dir, &out, 1e-3);
}

/// Every refusal: exit code 2, a message naming the file (and tensor or key), no output file.
fn refuse(dir: &Path, needles: &[&str]) -> String {
    let out = dir.with_extension("gguf");
    let (code, err) = run(&[
        "convert",
        dir.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--outtype",
        "f16",
        "-q",
        "--vocab-pre",
        "gpt-2",
    ]);
    assert_eq!(code, 2, "{err}");
    for n in needles {
        assert!(err.contains(n), "'{n}' not in: {err}");
    }
    assert!(!out.exists(), "output left behind");
    let left = gpuq::formats::gguf::output::leftover_tmp_files(&out);
    assert!(left.is_empty(), "temporary output left behind: {left:?}");
    err
}

fn edit_json(path: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let mut j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    f(&mut j);
    std::fs::write(path, serde_json::to_string_pretty(&j).unwrap()).unwrap();
}

#[test]
fn bad_folders_are_refused_with_the_file_and_tensor_named() {
    let tmp = tempfile::tempdir().unwrap();
    let fresh = |name: &str, opts: &[&str]| {
        let d = tmp.path().join(name);
        make(&d, "llama", 5, opts);
        d
    };

    let d = fresh("nokey", &[]);
    edit_json(&d.join("config.json"), |j| {
        j.as_object_mut().unwrap().remove("rms_norm_eps");
    });
    refuse(&d, &["nokey/config.json", "rms_norm_eps"]);

    let d = fresh("noconfig", &[]);
    std::fs::remove_file(d.join("config.json")).unwrap();
    refuse(&d, &["noconfig", "config.json"]);

    let d = fresh("arch", &[]);
    edit_json(&d.join("config.json"), |j| {
        j["architectures"] = serde_json::json!(["FalconForCausalLM"])
    });
    refuse(
        &d,
        &["FalconForCausalLM", "LlamaForCausalLM", "Qwen3ForCausalLM"],
    );

    let d = fresh("shardgone", &["--shards", "3"]);
    std::fs::remove_file(d.join("model-00002-of-00003.safetensors")).unwrap();
    refuse(
        &d,
        &[
            "model.safetensors.index.json",
            "model-00002-of-00003.safetensors",
            "model.",
        ],
    );

    let d = fresh("wrongshard", &["--shards", "2"]);
    let mut moved = String::new();
    edit_json(&d.join("model.safetensors.index.json"), |j| {
        let wm = j["weight_map"].as_object_mut().unwrap();
        let (name, _) = wm
            .iter()
            .find(|(_, v)| *v == "model-00001-of-00002.safetensors")
            .unwrap();
        moved = name.clone();
        wm.insert(
            moved.clone(),
            serde_json::json!("model-00002-of-00002.safetensors"),
        );
    });
    refuse(&d, &["model-00002-of-00002.safetensors", &moved]);

    let d = fresh("shape", &[]);
    edit_json(&d.join("config.json"), |j| {
        j["intermediate_size"] = serde_json::json!(96)
    });
    refuse(
        &d,
        &[
            "model.safetensors",
            "mlp.gate_proj.weight",
            "intermediate_size 96",
        ],
    );

    let d = fresh("heads", &[]);
    edit_json(&d.join("config.json"), |j| {
        j["num_key_value_heads"] = serde_json::json!(4)
    });
    refuse(&d, &["model.safetensors", "self_attn.k_proj.weight"]);

    let d = fresh("layers", &[]);
    edit_json(&d.join("config.json"), |j| {
        j["num_hidden_layers"] = serde_json::json!(3)
    });
    refuse(&d, &["model.layers.2.", "missing"]);

    // a dtype the architecture cannot take: rewrite one tensor's header entry as I32
    let d = fresh("dtype", &[]);
    retype_tensor(
        &d.join("model.safetensors"),
        "model.layers.1.mlp.up_proj.weight",
        "I32",
    );
    refuse(
        &d,
        &[
            "model.safetensors",
            "model.layers.1.mlp.up_proj.weight",
            "I32",
        ],
    );

    // a tensor no llama.cpp llama graph loads
    let d = fresh("stranger", &[]);
    retype_tensor_name(
        &d.join("model.safetensors"),
        "model.layers.0.mlp.up_proj.weight",
        "model.layers.0.mlp.uq_proj.weight",
    );
    refuse(
        &d,
        &["model.safetensors", "model.layers.0.mlp.uq_proj.weight"],
    );
}

/// Rewrites a safetensors header in place (same length, padded with spaces).
fn rewrite_header(path: &Path, f: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) {
    let mut raw = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(raw[..8].try_into().unwrap()) as usize;
    let mut h: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&raw[8..8 + n]).unwrap();
    f(&mut h);
    let mut text = serde_json::to_vec(&h).unwrap();
    assert!(text.len() <= n, "rewritten header is longer");
    text.resize(n, b' ');
    raw[8..8 + n].copy_from_slice(&text);
    std::fs::write(path, raw).unwrap();
}

fn retype_tensor(path: &Path, name: &str, dtype: &str) {
    // F32 -> I32 keeps the byte size, so only the dtype check can catch it
    rewrite_header(path, |h| h[name]["dtype"] = serde_json::json!(dtype));
}

fn retype_tensor_name(path: &Path, from: &str, to: &str) {
    rewrite_header(path, |h| {
        let v = h.remove(from).unwrap();
        h.insert(to.to_string(), v);
    });
}

#[test]
fn an_unknown_pre_tokenizer_stops_with_a_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tok");
    make(&dir, "qwen2", 9, &[]);
    let out = tmp.path().join("t.gguf");
    let (code, err) = run(&[
        "convert",
        dir.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("tokenizer.json")
            && err.contains("not recognized")
            && err.contains("--vocab-pre"),
        "{err}"
    );
    assert!(!out.exists());
}

/// Runs an `hf_model.py` check that prints a JSON summary as its last line; returns it,
/// panicking with the output when the check fails or lists errors.
fn json_check(args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(MODEL_PY)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: serde_json::Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "no result from {}: {stdout}\n{}",
                args[0],
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(
        out.status.success() && summary["errors"].as_array().is_some_and(|e| e.is_empty()),
        "{args:?}: {summary}"
    );
    summary
}

/// Runs `hf_model.py spm-check`; returns its JSON summary, panicking on any mismatch.
fn spm_check(dir: &Path, gguf: &Path, seed: u64, tokenize: bool) -> serde_json::Value {
    let seed = seed.to_string();
    let mut args = vec![
        "spm-check",
        dir.to_str().unwrap(),
        gguf.to_str().unwrap(),
        seed.as_str(),
    ];
    if tokenize {
        args.push("--tokenize");
    }
    json_check(&args)
}

/// (architecture, seed, folder options): tokenizer.model with and without a tokenizer.json
/// beside it, without the space prefix, with UNUSED pieces, and on the qwen2 class (whose
/// converter also reads a tokenizer.model first).
const SPM_CASES: &[(&str, u64, &[&str])] = &[
    ("llama", 21, &["--spm"]),
    (
        "mistral",
        22,
        &["--spm", "--spm-no-tj", "--spm-no-prefix", "--dtype", "bf16"],
    ),
    ("llama", 23, &["--spm", "--spm-unused", "3"]),
    ("qwen2", 24, &["--spm", "--dtype", "f16"]),
];

#[test]
fn sentencepiece_vocab_is_the_converters_and_llama_cpp_tokenizes_as_sentencepiece() {
    let tmp = tempfile::tempdir().unwrap();
    let mut report = Vec::new();
    for (i, (arch, seed, opts)) in SPM_CASES.iter().enumerate() {
        let dir = tmp.path().join(format!("spm{i}"));
        make(&dir, arch, *seed, opts);
        let out = tmp.path().join(format!("spm{i}.gguf"));
        let mut args = vec![
            "convert",
            dir.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--outtype",
            "f32",
            "-q",
        ];
        if i == 0 {
            args.extend(["--vocab-pre", "gpt-2"]);
        }
        let (code, err) = run(&args);
        assert_eq!(code, 0, "{err}");
        // added_tokens.json and added_tokens_decoder each name one id past vocab_size
        assert!(
            err.contains("ignoring token 5000") && err.contains("ignoring token 9999"),
            "{err}"
        );
        assert_eq!(
            i == 0,
            err.contains("--vocab-pre gpt-2 is ignored"),
            "{err}"
        );
        let s = spm_check(&dir, &out, *seed, true);
        let count = |t: &str| s["types"][t].as_u64().unwrap_or(0);
        let unused = if opts.contains(&"--spm-unused") { 3 } else { 0 };
        assert_eq!(
            (s["pieces"].as_u64(), s["n_vocab"].as_u64()),
            (Some(600), Some(640))
        );
        // 256 byte pieces; <s> </s> <ctl> <unk> and two added tokens are control tokens (the
        // converter makes <unk> CONTROL when added_tokens_decoder flags it special); one
        // added token is user-defined; 37 padding ids past the added ones are unused
        assert_eq!(
            (count("6"), count("3"), count("4"), count("5")),
            (256, 6, 1, 37 + unused),
            "{s}"
        );
        assert!(s["byte_tokens"].as_u64().unwrap() > 50, "{s}");
        let mut line = format!(
            "{arch} {opts:?}: 640 tokens/scores/types equal, {} strings ({} tokens, {} byte-fallback) tokenized alike, round trips equal",
            s["strings"], s["tokens"], s["byte_tokens"]
        );
        if i == 0 {
            let e = check_logits(&dir, &out, 1e-3);
            line += &format!(", logits max rel err {e:.2e}");
        }
        report.push(line);
    }
    eprintln!("{}", report.join("\n"));
}

#[test]
fn a_bad_tokenizer_model_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("badspm");
    make(&dir, "llama", 31, &["--spm"]);
    let path = dir.join("tokenizer.model");
    let good = std::fs::read(&path).unwrap();
    let mut rng = common::rng(31);
    let garbage: Vec<u8> = (0..good.len())
        .map(|_| rand::Rng::random::<u8>(&mut rng))
        .collect();
    // the end of the 300th piece: the top-level fields are (tag 0x0a, varint length, bytes)
    let mut at = 0;
    for _ in 0..300 {
        assert_eq!(good[at], 0x0a);
        let (mut len, mut shift) = (0usize, 0);
        at += 1;
        loop {
            len |= usize::from(good[at] & 0x7f) << shift;
            shift += 7;
            at += 1;
            if good[at - 1] < 0x80 {
                break;
            }
        }
        at += len;
    }
    let mut flipped = good.clone();
    flipped[0] = 0x0f; // field 1 with wire type 7, which protobuf does not have
    for (what, bytes) in [
        ("truncated", good[..good.len() / 2].to_vec()),
        ("cut between two pieces", good[..at].to_vec()),
        ("random bytes", garbage),
        ("bad wire type", flipped),
        ("empty", Vec::new()),
    ] {
        std::fs::write(&path, &bytes).unwrap();
        let err = refuse(&dir, &["badspm/tokenizer.model", "SentencePiece"]);
        assert!(!err.contains("panicked"), "{what}: {err}");
    }
}

/// The sha256 gpuq computes to identify a BPE pre-tokenizer (printed when it is not a known
/// one) is the one llama.cpp's converter computes: `str(AutoTokenizer.encode(chktxt))` hashed,
/// with transformers' AutoTokenizer, on the gpt2-shaped test tokenizer and on Llama-3-shaped
/// ones (Split + ByteLevel, BOS from a TemplateProcessing, with and without add_bos_token).
#[test]
fn pre_tokenizer_hash_is_the_one_the_converter_computes() {
    let tmp = tempfile::tempdir().unwrap();
    let chk = tmp.path().join("chktxt.txt");
    std::fs::write(&chk, gpuq::model::hf::tokenizer::CHECK_TEXT).unwrap();
    let cases: &[(&str, &[&str])] = &[
        ("qwen2", &[]),
        ("llama", &["--bpe-llama3"]),
        ("llama", &["--bpe-llama3", "--add-bos", "false"]),
    ];
    for (i, (arch, opts)) in cases.iter().enumerate() {
        let dir = tmp.path().join(format!("pre{i}"));
        make(&dir, arch, 40 + i as u64, opts);
        let out = tmp.path().join(format!("pre{i}.gguf"));
        let (code, err) = run(&[
            "convert",
            dir.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "-q",
        ]);
        assert_eq!(code, 2, "{err}");
        let ours = err
            .split("token ids: ")
            .nth(1)
            .and_then(|r| r.get(..64))
            .unwrap_or_else(|| panic!("no hash in: {err}"));
        let theirs = python(
            MODEL_PY,
            &["hash", dir.to_str().unwrap(), chk.to_str().unwrap()],
        );
        assert_eq!(ours, theirs.trim(), "{arch} {opts:?}");
        eprintln!("{arch} {opts:?}: check-text hash {ours} (gpuq = transformers)");
    }
}

/// A Llama folder whose tokenizer is only a byte-fallback BPE tokenizer.json (no
/// tokenizer.model; as LlamaTokenizerFast saves it): the vocabulary equals what the converter's
/// `LlamaHfVocab` builds through transformers (tokens, -1000 scores, types: 256 bytes, the
/// special tokens CONTROL, added tokens past the vocabulary USER_DEFINED), no merges, and
/// llama.cpp loads the result (logits against the numpy forward).
#[test]
fn a_llama_tokenizer_json_without_tokenizer_model_is_read_as_llamahfvocab() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("llamahf");
    make(&dir, "llama", 41, &["--llamahf"]);
    assert!(!dir.join("tokenizer.model").exists());
    let out = tmp.path().join("llamahf.gguf");
    convert(&dir, &out, "f32", &[]);
    let s = json_check(&[
        "llamahf-check",
        dir.to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    assert_eq!(s["tokens"], 602, "{s}");
    assert_eq!(s["types"]["6"], 256, "{s}");
    assert_eq!(s["types"]["3"], 3, "{s}");
    assert_eq!(s["types"]["4"], 2, "{s}");
    let err = check_logits(&dir, &out, 1e-3);
    eprintln!("LlamaHfVocab folder -> F32: max rel logit error {err:.2e}");
}
