//! `gpuq quantize` against llama.cpp's own quantizer (llama-cpp-python's
//! `llama_model_quantize`, the code path of llama-quantize) on a small Llama-shaped model:
//! the same tensor types and the same tensor bytes, tensor by tensor, and then the same file
//! (metadata, tensor order, alignment), byte for byte; with and without an importance matrix.

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
    // `--imatrix FILE` and `--override-kv KV` in `extra` go to llama.cpp's quantizer too
    let forwarded: Vec<&str> = extra
        .windows(2)
        .filter(|w| w[0] == "--imatrix" || w[0] == "--override-kv")
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

/// An importance matrix (GGUF, as llama-imatrix writes it; one entry with count 0, a wrongly
/// sized token_embd entry that both ignore) fed to both quantizers: the weighted searches of
/// every k-quant and legacy type, the Q2_K_S mixture that requires it, and the
/// `quantize.imatrix.*` keys. The same values as a legacy `.dat` file give the same tensors.
#[test]
fn imatrix_mixtures_match_llama_quantize_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model-f16.gguf");
    let m = model.to_str().unwrap();
    fixture(&["make", m, "--layers", "6", "--ff", "640", "--seed", "21"]);
    let imat = dir.path().join("imatrix.gguf");
    let legacy = dir.path().join("imatrix.dat");
    fixture(&[
        "imatrix",
        m,
        imat.to_str().unwrap(),
        "--seed",
        "5",
        "--legacy",
        legacy.to_str().unwrap(),
    ]);
    let im = imat.to_str().unwrap();
    check_mixtures(
        dir.path(),
        &model,
        &[
            ("Q4_K_M", 15),
            ("Q2_K_S", 21),
            ("Q2_K", 10),
            ("Q3_K_S", 11),
            ("Q3_K_L", 13),
            ("Q5_K_S", 16),
            ("Q6_K", 18),
            ("Q4_0", 2),
            ("Q4_1", 3),
            ("Q5_0", 8),
            ("Q5_1", 9),
        ],
        &[
            "--backend",
            "cpu",
            "--imatrix",
            im,
            "--override-kv",
            "general.name=str:gpuq imatrix test",
            "--override-kv",
            "llama.context_length=int:-4096",
            "--override-kv",
            "gpuq.test.scale=float:0.3",
            "--override-kv",
            "gpuq.test.flag=bool:true",
        ],
    );
    // the weights matter: without them Q4_K_M's bytes differ
    let plain = dir.path().join("plain.gguf");
    let out = run_gpuq(&["quantize", m, plain.to_str().unwrap(), "Q4_K_M", "-q"]);
    assert!(out.status.success());
    let with = dump(&dir.path().join("gpuq-Q4_K_M.gguf"));
    let without = dump(&plain);
    let differing = with
        .iter()
        .filter(|(k, v)| k.contains(".weight") && without.get(*k) != Some(v))
        .count();
    assert!(
        differing > 20,
        "only {differing} tensors changed with the imatrix"
    );
    // the legacy file: same tensors (only the file name in the metadata differs)
    let from_dat = dir.path().join("dat.gguf");
    let out = run_gpuq(&[
        "quantize",
        m,
        from_dat.to_str().unwrap(),
        "Q4_K_M",
        "-q",
        "--imatrix",
        legacy.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut a = dump(&from_dat);
    let mut b = with.clone();
    let (ma, mb) = (a.remove("__meta__").unwrap(), b.remove("__meta__").unwrap());
    assert_eq!(a, b, "legacy .dat vs GGUF imatrix: tensors");
    assert_eq!(
        ma["quantize.imatrix.chunks_count"],
        mb["quantize.imatrix.chunks_count"]
    );
    assert_eq!(
        ma["quantize.imatrix.dataset"],
        mb["quantize.imatrix.dataset"]
    );
    // --exclude-weights drops entries: attn_v then differs from the full-imatrix file
    let excl = dir.path().join("excl.gguf");
    let out = run_gpuq(&[
        "quantize",
        m,
        excl.to_str().unwrap(),
        "Q4_K_M",
        "--imatrix",
        im,
        "--exclude-weights",
        "attn_v",
    ]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the imatrix has no entry for 6 tensor(s)")
            && err.contains("blk.0.attn_v.weight"),
        "{err}"
    );
    let e = dump(&excl);
    for (k, v) in &with {
        if k == "__meta__" {
            continue;
        }
        assert_eq!(
            e[k] != *v,
            k.contains("attn_v"),
            "{k} with --exclude-weights attn_v"
        );
    }
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

/// A 2-layer model of `seed` quantized to `mixtures` by both quantizers, gpuq with `args`.
fn check_two_layers(seed: &str, mixtures: &[(&str, u32)], args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model-f16.gguf");
    fixture(&[
        "make",
        model.to_str().unwrap(),
        "--layers",
        "2",
        "--seed",
        seed,
    ]);
    check_mixtures(dir.path(), &model, mixtures, args);
}

#[test]
fn gpu_backend_gives_the_same_bytes() {
    check_two_layers(
        "13",
        &[("Q8_0", 7), ("Q4_K_M", 15)],
        &["--backend", "gpu", "--max-memory", "1M"],
    );
}

/// The output written through pwrite by the writer thread (`--no-map-output`) instead of
/// filled in place through a memory map (the default): the same bytes, in many small tiles.
#[test]
fn pwrite_output_gives_the_same_bytes() {
    check_two_layers(
        "17",
        &[("Q4_0", 2), ("Q4_K_M", 15)],
        &["--backend", "cpu", "--no-map-output", "--max-memory", "1M"],
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
            !target.exists() && gpuq::formats::gguf::output::leftover_tmp_files(&target).is_empty(),
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

/// Bad importance matrices stop the run before any output, naming the file (and entry).
#[test]
fn bad_imatrix_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.gguf");
    let m = model.to_str().unwrap();
    fixture(&["make", m, "--layers", "2", "--seed", "4"]);
    let imat = dir.path().join("im.gguf");
    let legacy = dir.path().join("im.dat");
    fixture(&[
        "imatrix",
        m,
        imat.to_str().unwrap(),
        "--legacy",
        legacy.to_str().unwrap(),
    ]);
    // an entry whose size does not match its tensor (not token_embd): a model of other widths
    let other = dir.path().join("other.gguf");
    fixture(&[
        "make",
        other.to_str().unwrap(),
        "--layers",
        "2",
        "--embd",
        "128",
        "--seed",
        "4",
    ]);
    let wrong = dir.path().join("wrong.gguf");
    fixture(&["imatrix", other.to_str().unwrap(), wrong.to_str().unwrap()]);
    let bytes = std::fs::read(&legacy).unwrap();
    let cut = dir.path().join("cut.dat");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let gbytes = std::fs::read(&imat).unwrap();
    let gcut = dir.path().join("cut.gguf");
    std::fs::write(&gcut, &gbytes[..gbytes.len() - 100]).unwrap();
    let cases: Vec<(std::path::PathBuf, &[&str])> = vec![
        (
            wrong.clone(),
            &["wrong.gguf", "blk.0.attn_q.weight", "another model"],
        ),
        (cut.clone(), &["cut.dat", "truncated"]),
        (gcut.clone(), &["cut.gguf"]),
        (model.clone(), &["m.gguf", "imatrix metadata"]),
        (dir.path().join("absent.dat"), &["absent.dat"]),
    ];
    for (file, needles) in cases {
        let out_path = dir.path().join("out.gguf");
        let out = run_gpuq(&[
            "quantize",
            m,
            out_path.to_str().unwrap(),
            "Q4_K_M",
            "--imatrix",
            file.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {err}", file.display());
        for n in needles {
            assert!(
                err.contains(n),
                "{}: expected '{n}' in: {err}",
                file.display()
            );
        }
        assert!(
            !out_path.exists()
                && gpuq::formats::gguf::output::leftover_tmp_files(&out_path).is_empty()
        );
    }
}

/// A Mixtral-style MoE (8 experts: 3-D `ffn_*_exps` tensors, a router, llama.cpp's n_expert == 8
/// rules), without and with an importance matrix (one weight row per expert): whole files equal
/// to llama-quantize's.
#[test]
fn moe_experts_match_llama_quantize_byte_for_byte() {
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
        "8",
    ]);
    let mixtures = [
        ("Q4_K_M", 15),
        ("Q2_K", 10),
        ("Q3_K_M", 12),
        ("Q5_K_S", 16),
        ("Q4_0", 2),
    ];
    check_mixtures(dir.path(), &model, &mixtures, &["--backend", "cpu"]);
    let imat = dir.path().join("moe-imatrix.gguf");
    fixture(&["imatrix", m, imat.to_str().unwrap(), "--seed", "9"]);
    let sub = dir.path().join("imat");
    std::fs::create_dir(&sub).unwrap();
    check_mixtures(
        &sub,
        &model,
        &mixtures,
        &["--backend", "cpu", "--imatrix", imat.to_str().unwrap()],
    );
    let types = dump(&sub.join("gpuq-Q4_K_M.gguf"));
    assert_eq!(
        types["blk.0.ffn_down_exps.weight"][1],
        serde_json::json!([512, 256, 8])
    );
}

/// A model split across GGUF files (gguf-py's `split_max_tensors`, as convert_hf_to_gguf.py
/// `--split-max-tensors` writes them) is read as one model from its first split, as llama.cpp's
/// loader reads it: a single output, whole file equal to llama-quantize's. Opening a later split,
/// or a set with a split missing, is refused naming the file.
#[test]
fn split_gguf_input_is_one_model() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("sp.gguf");
    fixture(&[
        "make",
        base.to_str().unwrap(),
        "--layers",
        "4",
        "--split",
        "9",
        "--seed",
        "17",
    ]);
    let first = dir.path().join("sp-00001-of-00005.gguf");
    assert!(first.exists() && dir.path().join("sp-00005-of-00005.gguf").exists());
    check_mixtures(
        dir.path(),
        &first,
        &[("Q4_K_M", 15), ("Q8_0", 7)],
        &["--backend", "cpu"],
    );
    let out = dir.path().join("bad.gguf");
    let second = dir.path().join("sp-00002-of-00005.gguf");
    let r = run_gpuq(&[
        "quantize",
        second.to_str().unwrap(),
        out.to_str().unwrap(),
        "Q8_0",
    ]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{err}");
    assert!(
        err.contains("sp-00002-of-00005.gguf") && err.contains("first"),
        "{err}"
    );
    std::fs::remove_file(dir.path().join("sp-00004-of-00005.gguf")).unwrap();
    let r = run_gpuq(&[
        "quantize",
        first.to_str().unwrap(),
        out.to_str().unwrap(),
        "Q8_0",
    ]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{err}");
    assert!(err.contains("sp-00004-of-00005.gguf"), "{err}");
    assert!(!out.exists());
}
