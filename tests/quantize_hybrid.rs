//! Hybrid architectures (Gated DeltaNet + attention + an MTP block): `qwen35`, `qwen35moe` and
//! `qwen3next` GGUFs generated with llama.cpp's tensor names, shapes and keys
//! (tests/py/hybrid_fixture.py; llama.cpp loads them), requantized by gpuq and by llama.cpp's own
//! quantizer (`llama_model_quantize`): the same file, byte for byte, for every k-quant and legacy
//! mixture. Ollama's published layout of the same weights, fixed by gpuq (`gpuq fix`, quantize,
//! dequantize), gives llama.cpp's layout tensor for tensor, loads in llama.cpp and gives the
//! native file's logits. `--hybrid-policy conservative` and the roles in `--dry-run`.

mod common;

use common::{gpuq, python};
use std::collections::BTreeMap;
use std::path::Path;

const LLAMA: &str = include_str!("py/llama_fixture.py");
const HYBRID: &str = include_str!("py/hybrid_fixture.py");

fn hybrid(args: &[&str]) -> String {
    python(HYBRID, args)
}

/// name -> [type, shape, sha256] (and "__meta__": the quantize.* keys)
fn dump(path: &Path) -> BTreeMap<String, serde_json::Value> {
    serde_json::from_str(&python(LLAMA, &["dump", path.to_str().unwrap()])).unwrap()
}

fn run_gpuq(args: &[&str]) -> std::process::Output {
    let out = gpuq().args(args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "gpuq panicked:\n{err}");
    out
}

fn ok(args: &[&str]) -> std::process::Output {
    let out = run_gpuq(args);
    assert!(
        out.status.success(),
        "gpuq {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Every mixture gpuq has that is not an IQ type.
const MIXTURES: &[(&str, u32)] = &[
    ("Q8_0", 7),
    ("Q4_0", 2),
    ("Q4_1", 3),
    ("Q5_0", 8),
    ("Q5_1", 9),
    ("Q2_K", 10),
    ("Q3_K_S", 11),
    ("Q3_K_M", 12),
    ("Q3_K_L", 13),
    ("Q4_K_S", 14),
    ("Q4_K_M", 15),
    ("Q5_K_S", 16),
    ("Q5_K_M", 17),
    ("Q6_K", 18),
];

/// Quantizes `model` with llama.cpp and with gpuq for each mixture; the files must be equal
/// byte for byte. Returns the number of tensors compared per mixture.
fn same_files(dir: &Path, model: &Path, mixtures: &[(&str, u32)], extra: &[&str]) -> usize {
    let mut tensors = 0;
    for (name, ftype) in mixtures {
        let theirs = dir.join(format!("llama-{name}.gguf"));
        let ours = dir.join(format!("gpuq-{name}.gguf"));
        let ft = ftype.to_string();
        let mut py = vec![
            "quantize",
            model.to_str().unwrap(),
            theirs.to_str().unwrap(),
            &ft,
        ];
        // --imatrix FILE goes to llama.cpp's quantizer too
        py.extend(
            extra
                .windows(2)
                .filter(|w| w[0] == "--imatrix")
                .flat_map(|w| [w[0], w[1]]),
        );
        python(LLAMA, &py);
        let mut args = vec![
            "quantize",
            model.to_str().unwrap(),
            "-o",
            ours.to_str().unwrap(),
            "--type",
            name,
            "-q",
            "--backend",
            "cpu",
        ];
        args.extend_from_slice(extra);
        ok(&args);
        let (a, b) = (dump(&ours), dump(&theirs));
        let diff: Vec<String> = b
            .iter()
            .filter(|(k, v)| a.get(*k) != Some(v))
            .map(|(k, v)| format!("{k}: ours {:?} llama.cpp {v:?}", a.get(k)))
            .collect();
        assert!(
            diff.is_empty() && a.len() == b.len(),
            "{}: {name}: {} of {} tensors differ from llama.cpp:\n{}",
            model.display(),
            diff.len(),
            b.len(),
            diff.join("\n")
        );
        let (x, y) = (
            std::fs::read(&ours).unwrap(),
            std::fs::read(&theirs).unwrap(),
        );
        assert_eq!(x.len(), y.len(), "{name}: file sizes");
        let first = x.iter().zip(&y).position(|(p, q)| p != q);
        assert_eq!(
            first, None,
            "{name}: the files differ first at byte {first:?}"
        );
        tensors = b.len() - 1;
    }
    tensors
}

fn make(dir: &Path, file: &str, args: &[&str]) -> std::path::PathBuf {
    let p = dir.join(file);
    let mut a = vec!["make", p.to_str().unwrap()];
    a.extend_from_slice(args);
    hybrid(&a);
    p
}

#[test]
fn qwen35_requant_matches_llama_quantize() {
    let dir = tempfile::tempdir().unwrap();
    // 8 DeltaNet/attention layers + the MTP block (block_count 9), n_ff 640 (ffn_down falls
    // back), ssm_out rows of 128 (fall back), GQA 4
    let m = make(
        dir.path(),
        "q35.gguf",
        &["--arch", "qwen35", "--seed", "31"],
    );
    let n = same_files(dir.path(), &m, MIXTURES, &[]);
    eprintln!(
        "qwen35: {} mixtures x {n} tensors identical",
        MIXTURES.len()
    );
    // requantizing a quantized file (Q8_0 -> Q4_K_M), tied embeddings from BF16
    let q8 = dir.path().join("gpuq-Q8_0.gguf");
    let sub = dir.path().join("rq");
    std::fs::create_dir(&sub).unwrap();
    same_files(
        &sub,
        &q8,
        &[("Q4_K_M", 15), ("Q3_K_S", 11)],
        &["--allow-requantize"],
    );
    let t = make(
        dir.path(),
        "q35t.gguf",
        &[
            "--arch", "qwen35", "--seed", "32", "--tied", "--dtype", "bf16", "--layers", "4",
        ],
    );
    let sub = dir.path().join("tied");
    std::fs::create_dir(&sub).unwrap();
    same_files(&sub, &t, &[("Q4_K_M", 15), ("Q6_K", 18), ("Q2_K", 10)], &[]);
}

#[test]
fn qwen35moe_requant_matches_llama_quantize() {
    let dir = tempfile::tempdir().unwrap();
    // 8 routed experts (llama.cpp's n_expert == 8 rules), shared experts, router
    let m = make(
        dir.path(),
        "q35m.gguf",
        &["--arch", "qwen35moe", "--seed", "33", "--layers", "4"],
    );
    let n = same_files(dir.path(), &m, MIXTURES, &[]);
    eprintln!(
        "qwen35moe: {} mixtures x {n} tensors identical",
        MIXTURES.len()
    );
    // 4 experts: the other branch of the expert rules
    let m4 = make(
        dir.path(),
        "q35m4.gguf",
        &[
            "--arch",
            "qwen35moe",
            "--seed",
            "34",
            "--layers",
            "4",
            "--experts",
            "4",
        ],
    );
    let sub = dir.path().join("e4");
    std::fs::create_dir(&sub).unwrap();
    same_files(
        &sub,
        &m4,
        &[("Q4_K_M", 15), ("Q2_K", 10), ("Q3_K_M", 12)],
        &[],
    );
}

#[test]
fn qwen3next_requant_matches_llama_quantize() {
    let dir = tempfile::tempdir().unwrap();
    let m = make(
        dir.path(),
        "q3n.gguf",
        &[
            "--arch",
            "qwen3next",
            "--seed",
            "35",
            "--layers",
            "4",
            "--tied",
        ],
    );
    let n = same_files(dir.path(), &m, MIXTURES, &[]);
    eprintln!(
        "qwen3next: {} mixtures x {n} tensors identical",
        MIXTURES.len()
    );
}

fn logits(model: &Path) -> Vec<f64> {
    let j: serde_json::Value =
        serde_json::from_str(&hybrid(&["logits", model.to_str().unwrap()])).unwrap();
    assert_eq!(j["finite"], true, "{}: non-finite logits", model.display());
    j["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

fn max_rel(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f64, |m, v| m.max(v.abs())).max(1e-30);
    a.iter().zip(b).fold(0f64, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// Tensors of two files: every name, type, shape and byte equal.
fn same_tensors(a: &Path, b: &Path) {
    let (mut x, mut y) = (dump(a), dump(b));
    x.remove("__meta__");
    y.remove("__meta__");
    let diff: Vec<String> = y
        .iter()
        .filter(|(k, v)| x.get(*k) != Some(v))
        .map(|(k, v)| format!("{k}: {:?} vs {v:?}", x.get(k)))
        .chain(
            x.keys()
                .filter(|k| !y.contains_key(*k))
                .map(|k| format!("{k}: extra")),
        )
        .collect();
    assert!(
        diff.is_empty(),
        "{} vs {}: {} tensors differ:\n{}",
        a.display(),
        b.display(),
        diff.len(),
        diff.join("\n")
    );
}

#[test]
fn ollama_qwen35_is_fixed_and_loads_in_llama_cpp() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (arch, layers) in [("qwen35", "8"), ("qwen35moe", "4"), ("qwen3next", "4")] {
        let args = ["--arch", arch, "--seed", "41", "--layers", layers];
        let native = make(d, &format!("{arch}.gguf"), &args);
        let mut oargs = args.to_vec();
        oargs.push("--ollama");
        let ollama = make(d, &format!("{arch}-ollama.gguf"), &oargs);
        let o = ollama.to_str().unwrap();

        // inspect names the fixes; the native file needs none
        let text = String::from_utf8_lossy(&ok(&["inspect", o]).stdout).into_owned();
        assert!(
            text.contains("Ollama layout") && text.contains("ssm_dt.bias"),
            "{text}"
        );
        let text = String::from_utf8_lossy(&ok(&["inspect", native.to_str().unwrap()]).stdout)
            .into_owned();
        assert!(!text.contains("Ollama layout"), "{text}");
        assert!(
            text.contains("linear-attn") && text.contains("ssm-state"),
            "{text}"
        );

        // llama.cpp refuses the Ollama file as it is
        let refused = std::process::Command::new("python3")
            .arg("-c")
            .arg(HYBRID)
            .args(["logits", o])
            .output()
            .unwrap();
        assert!(
            !refused.status.success(),
            "{arch}: llama.cpp loaded the Ollama layout"
        );

        // gpuq fix: the native file's tensors, byte for byte; llama.cpp loads it with the
        // native file's logits
        let fixed = d.join(format!("{arch}-fixed.gguf"));
        let out = ok(&["fix", o, "-o", fixed.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("ollama fix:"), "{err}");
        same_tensors(&fixed, &native);
        let (lf, ln) = (logits(&fixed), logits(&native));
        let rel = max_rel(&lf, &ln);
        eprintln!(
            "{arch}: fixed vs native logits: max rel diff {rel:e} over {}",
            ln.len()
        );
        assert!(rel == 0.0, "{arch}: logits differ ({rel})");
        let text =
            String::from_utf8_lossy(&ok(&["inspect", fixed.to_str().unwrap()]).stdout).into_owned();
        assert!(!text.contains("Ollama layout"), "{text}");

        // quantize straight from the Ollama file = quantize of the native file
        let q = d.join(format!("{arch}-ollama-q4km.gguf"));
        let out = ok(&["quantize", o, "-o", q.to_str().unwrap(), "--type", "Q4_K_M"]);
        let err = String::from_utf8_lossy(&out.stderr);
        let lines = err.lines().filter(|l| l.contains("ollama fix:")).count();
        assert!(lines >= 2, "{err}");
        let qn = d.join(format!("{arch}-native-q4km.gguf"));
        ok(&[
            "quantize",
            native.to_str().unwrap(),
            "-o",
            qn.to_str().unwrap(),
            "--type",
            "Q4_K_M",
            "-q",
        ]);
        same_tensors(&q, &qn);
        let l = logits(&q);
        eprintln!(
            "{arch}: Q4_K_M from the Ollama file: logits finite, max rel diff to F16 {:.3}",
            max_rel(&l, &ln)
        );

        // dequantize applies the fixes too; --keep-names opts out (and llama.cpp refuses that)
        let f16 = d.join(format!("{arch}-deq.gguf"));
        ok(&[
            "dequantize",
            o,
            "-o",
            f16.to_str().unwrap(),
            "--type",
            "F16",
            "-q",
        ]);
        logits(&f16);
        let kept = d.join(format!("{arch}-kept.gguf"));
        let out = run_gpuq(&[
            "quantize",
            o,
            "-o",
            kept.to_str().unwrap(),
            "--type",
            "Q8_0",
            "--keep-names",
            // gpuq's own check refuses what llama.cpp would (3 rope sections): keep it anyway
            "--no-verify",
            "-q",
        ]);
        if arch == "qwen35moe" {
            // as llama-quantize on such a file: an MoE tensor outside blk.N. has no layer
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.code() == Some(2) && err.contains("mtp.layers.0.") && !kept.exists(),
                "{err}"
            );
        } else {
            assert!(out.status.success());
            assert!(dump(&kept).keys().any(|k| k.ends_with(".ssm_dt")));
            // a quantized Ollama-layout file (as Ollama publishes them): `gpuq fix` copies the
            // Q8_0 blocks as they are; the result equals the native file quantized to Q8_0
            let kept_fixed = d.join(format!("{arch}-kept-fixed.gguf"));
            ok(&[
                "fix",
                kept.to_str().unwrap(),
                "-o",
                kept_fixed.to_str().unwrap(),
                "-q",
            ]);
            let q8 = d.join(format!("{arch}-native-q8.gguf"));
            ok(&[
                "quantize",
                native.to_str().unwrap(),
                "-o",
                q8.to_str().unwrap(),
                "--type",
                "Q8_0",
                "-q",
            ]);
            same_tensors(&kept_fixed, &q8);
            logits(&kept_fixed);
        }
        // inspect --json: roles and the fixes
        let j: serde_json::Value =
            serde_json::from_slice(&ok(&["inspect", o, "--json"]).stdout).unwrap();
        assert!(!j["ollama_fixes"].as_array().unwrap().is_empty());
        assert!(
            j["tensors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["role"] == "ssm-state")
        );
    }
}

fn dry_run(model: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "quantize",
        model.to_str().unwrap(),
        "-o",
        "/nonexistent/out.gguf",
        "--type",
        "Q4_K_M",
        "--dry-run",
    ];
    args.extend_from_slice(extra);
    String::from_utf8_lossy(&ok(&args).stdout).into_owned()
}

/// (role, to) of a tensor in a --dry-run table.
fn row<'a>(text: &'a str, tensor: &str) -> (&'a str, &'a str) {
    let line = text
        .lines()
        .find(|l| l.split_whitespace().next() == Some(tensor))
        .unwrap_or_else(|| panic!("{tensor} not in:\n{text}"));
    let f: Vec<&str> = line.split_whitespace().collect();
    (f[1], f[3])
}

#[test]
fn conservative_hybrid_policy() {
    let dir = tempfile::tempdir().unwrap();
    let m = make(
        dir.path(),
        "q35.gguf",
        &["--arch", "qwen35", "--seed", "51"],
    );
    let plain = dry_run(&m, &[]);
    let cons = dry_run(&m, &["--hybrid-policy", "conservative"]);
    assert_eq!(
        row(&plain, "blk.0.attn_qkv.weight"),
        ("linear-attn", "Q6_K")
    );
    assert_eq!(row(&cons, "blk.0.attn_qkv.weight"), ("linear-attn", "Q8_0"));
    assert_eq!(row(&plain, "blk.1.ssm_alpha.weight").1, "Q4_K");
    assert_eq!(row(&cons, "blk.1.ssm_alpha.weight").1, "Q8_0");
    assert_eq!(row(&cons, "blk.1.ssm_beta.weight").1, "Q8_0");
    assert_eq!(row(&plain, "blk.8.nextn.eh_proj.weight"), ("mtp", "Q4_K"));
    assert_eq!(row(&cons, "blk.8.nextn.eh_proj.weight"), ("mtp", "Q8_0"));
    assert_eq!(row(&cons, "blk.1.ssm_conv1d.weight"), ("ssm-conv", "F32"));
    assert_eq!(row(&cons, "blk.1.ssm_a"), ("ssm-state", "F32"));
    // every other tensor is as llama-quantize has it
    let changed: Vec<&str> = plain
        .lines()
        .zip(cons.lines())
        .filter(|(a, b)| a != b && a.contains(".weight"))
        .map(|(a, _)| a.split_whitespace().next().unwrap())
        .collect();
    assert!(
        changed.iter().all(|n| n.contains("attn_qkv")
            || n.contains("ssm_alpha")
            || n.contains("ssm_beta")
            || n.contains("eh_proj")),
        "{changed:?}"
    );
    // the output loads in llama.cpp
    let out = dir.path().join("cons.gguf");
    ok(&[
        "quantize",
        m.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--type",
        "Q4_K_M",
        "--hybrid-policy",
        "conservative",
        "-q",
    ]);
    logits(&out);
}

/// A Qwen3.5-27B-shaped header (64 layers + MTP, hidden 5120, intermediate 17408, 24 query /
/// 4 KV heads of 256, DeltaNet 16 QK / 48 V heads of 128, vocabulary 248320, BF16) whose data
/// is a hole: --dry-run plans it without reading a weight.
#[test]
fn dry_run_on_a_27b_shaped_sparse_file() {
    let dir = tempfile::tempdir().unwrap();
    let m = make(
        dir.path(),
        "q35-27b.gguf",
        &[
            "--arch",
            "qwen35",
            "--layers",
            "64",
            "--embd",
            "5120",
            "--ff",
            "17408",
            "--heads",
            "24",
            "--heads-kv",
            "4",
            "--head-dim",
            "256",
            "--d-state",
            "128",
            "--k-heads",
            "16",
            "--v-heads",
            "48",
            "--vocab",
            "248320",
            "--dtype",
            "bf16",
            "--header-only",
        ],
    );
    let t = std::time::Instant::now();
    let plain = dry_run(&m, &[]);
    let secs = t.elapsed().as_secs_f64();
    let cons = dry_run(&m, &["--hybrid-policy", "conservative"]);
    let total = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("total:"))
            .unwrap()
            .to_string()
    };
    eprintln!(
        "27B Q4_K_M ({secs:.2} s): {}\nconservative: {}",
        total(&plain),
        total(&cons)
    );
    assert!(secs < 30.0);
    assert_eq!(row(&plain, "blk.64.nextn.eh_proj.weight"), ("mtp", "Q4_K"));
    assert_eq!(row(&plain, "output.weight"), ("output", "Q6_K"));
    assert_eq!(row(&cons, "blk.0.attn_qkv.weight").1, "Q8_0");
    // every tensor's type and the total size as llama-quantize --dry-run plans them
    for (name, ftype) in MIXTURES {
        let ours = if *name == "Q4_K_M" {
            plain.clone()
        } else {
            let mut args = vec![
                "quantize",
                m.to_str().unwrap(),
                "-o",
                "/nonexistent/out.gguf",
                "--type",
                name,
                "--dry-run",
            ];
            args.push("-q");
            String::from_utf8_lossy(&ok(&args).stdout).into_owned()
        };
        let theirs: serde_json::Value = serde_json::from_str(&hybrid(&[
            "llama-dry-run",
            m.to_str().unwrap(),
            &ftype.to_string(),
        ]))
        .unwrap();
        let types = theirs["types"].as_object().unwrap();
        assert_eq!(types.len(), 866, "{name}");
        let differ: Vec<String> = types
            .iter()
            .filter(|(t, ty)| row(&ours, t).1 != ty.as_str().unwrap())
            .map(|(t, ty)| format!("{t}: ours {} llama.cpp {ty}", row(&ours, t).1))
            .collect();
        assert!(differ.is_empty(), "{name}: {}", differ.join("\n"));
        let mib = theirs["quant_mib"].as_str().unwrap();
        assert!(
            total(&ours).contains(&format!("-> {mib} MiB")),
            "{name}: llama.cpp {mib} MiB, ours {}",
            total(&ours)
        );
    }
}
