//! A full disk, two runs writing one output, an input that changes under a run, and
//! `gpuq verify` (issue 20).

mod common;

use common::{gpuq, gpuq_status, python};
use gpuq::formats::gguf::output::leftover_tmp_files;
use gpuq::formats::gguf::{Array, GgufFile, GgufWriter, TensorSpec, Value};
use gpuq::model::GgufSource;
use gpuq::pipeline::Quiet;
use gpuq::{Backend, Engine, GgmlType, QuantizeOptions};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const FIXTURE: &str = include_str!("py/llama_fixture.py");

/// A small Llama-shaped F16 model (gguf-py), made once per test binary.
fn model() -> &'static Path {
    static M: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, p) = M.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m-f16.gguf");
        python(
            FIXTURE,
            &[
                "make",
                p.to_str().unwrap(),
                "--layers",
                "2",
                "--embd",
                "256",
                "--ff",
                "512",
                "--vocab",
                "2048",
                "--seed",
                "20",
            ],
        );
        (dir, p)
    });
    p
}

fn nothing_left(out: &Path) {
    assert!(!out.exists(), "{} left behind", out.display());
    let left = leftover_tmp_files(out);
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

fn verify(path: &Path, json: bool) -> (i32, String, String) {
    let mut cmd = gpuq();
    cmd.arg("verify").arg(path);
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A private tmpfs of `size`, unmounted on drop (root only).
struct Tmpfs(PathBuf, #[allow(dead_code)] tempfile::TempDir);
impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("fs");
        std::fs::create_dir(&p).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&p)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs(p, d))
    }
}
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_file_system_is_refused_before_writing_and_a_write_error_names_the_path() {
    let input = model();
    // the model is ~1.9 M weights: ~2 MB as Q8_0
    let Some(fs) = Tmpfs::mount("1m") else {
        eprintln!("SKIP tmpfs part: not root or mount failed; see the rlimit test");
        return;
    };
    let out = fs.0.join("out-q8.gguf");
    let (code, err) = gpuq_status(&[
        "quantize",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
        "Q8_0",
        "--backend",
        "cpu",
        "-q",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("out-q8.gguf") && err.contains("bytes free") && err.contains("needs"),
        "{err}"
    );
    nothing_left(&out);
    // past the check: the OS error, with the path, and nothing left
    let (code, err) = gpuq_status(&[
        "quantize",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
        "Q8_0",
        "--backend",
        "cpu",
        "-q",
        "--no-space-check",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("ENOSPC") && err.contains("out-q8.gguf.tmp."),
        "{err}"
    );
    nothing_left(&out);
    // and the same output fits on a larger one
    let big = Tmpfs::mount("8m").unwrap();
    let out = big.0.join("out-q8.gguf");
    let (code, err) = gpuq_status(&[
        "quantize",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
        "Q8_0",
        "--backend",
        "cpu",
        "-q",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(leftover_tmp_files(&out).is_empty());
    assert!(std::fs::metadata(&out).unwrap().len() > 1 << 20);
}

#[test]
fn a_write_error_without_root_names_the_path_and_the_os_error() {
    // RLIMIT_FSIZE makes writes past the limit fail with EFBIG (SIGXFSZ ignored): a real
    // write error that needs no privileges
    use std::os::unix::process::CommandExt;
    let input = model();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.gguf");
    let mut cmd = gpuq();
    cmd.args(["quantize", input.to_str().unwrap(), out.to_str().unwrap()])
        .args(["Q8_0", "--backend", "cpu", "-q"]);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: 1 << 20,
                rlim_max: 1 << 20,
            };
            libc::setrlimit(libc::RLIMIT_FSIZE, &lim);
            Ok(())
        });
    }
    let o = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("EFBIG") && err.contains("o.gguf.tmp."),
        "{err}"
    );
    nothing_left(&out);
}

#[test]
fn a_second_run_on_the_same_output_is_refused() {
    let input = model();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("o.gguf");
    let specs = [TensorSpec {
        name: "x".into(),
        ty: GgmlType::F32,
        dims: vec![4],
    }];
    let w = GgufWriter::create(&out, &[], &specs).unwrap();
    assert!(
        w.tmp_path()
            .to_string_lossy()
            .ends_with(&format!("o.gguf.tmp.{}", std::process::id()))
    );
    let (code, err) = gpuq_status(&[
        "quantize",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
        "Q8_0",
        "--backend",
        "cpu",
        "-q",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("being written by another run"), "{err}");
    assert_eq!(leftover_tmp_files(&out), vec![w.tmp_path().to_path_buf()]);
    drop(w);
    nothing_left(&out);
}

fn cpu() -> Engine {
    Engine::new(Backend::Cpu).unwrap()
}

#[test]
fn an_input_truncated_while_mapped_gives_an_error_not_a_signal() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.gguf");
    std::fs::copy(model(), &input).unwrap();
    let len = std::fs::metadata(&input).unwrap().len();
    for keep in [len / 2, len - 4096, 4096] {
        std::fs::copy(model(), &input).unwrap();
        let src = GgufSource::open(&input).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&input)
            .unwrap()
            .set_len(keep)
            .unwrap();
        let out = dir.path().join("out.gguf");
        let opts = QuantizeOptions::new("Q4_K_M").unwrap();
        let e = gpuq::quantize(&src, &out, &cpu(), &opts, &Quiet)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("in.gguf") && e.contains("while gpuq was reading it"),
            "{e}"
        );
        nothing_left(&out);
    }
}

#[test]
fn a_read_past_the_end_of_a_shrunk_map_completes_and_is_reported() {
    // the truncation lands after the size check: reads fault, see zeros, and the run fails
    use gpuq::pipeline::ModelSource;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.gguf");
    std::fs::copy(model(), &input).unwrap();
    let src = GgufSource::open(&input).unwrap();
    let last = src.tensors().len() - 1;
    let t = src.tensors()[last].clone();
    let mut scratch = Vec::new();
    // size check passes at the tensor's start …
    src.read_rows(last, 0, 1, &mut scratch).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&input)
        .unwrap()
        .set_len(4096)
        .unwrap();
    // … then the mapped bytes of the tensor are read (what the engine does with the slice)
    let f = src.file();
    let info = f.tensor(&t.name).unwrap();
    let sum: u64 = f.tensor_data(info).iter().map(|&b| u64::from(b)).sum();
    assert_eq!(sum, 0, "the pages past the end read as zeros");
    let e = src.check_unchanged().unwrap_err().to_string();
    assert!(e.contains("in.gguf") && e.contains("faulted"), "{e}");
}

#[test]
fn an_input_modified_during_a_run_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.gguf");
    std::fs::copy(model(), &input).unwrap();
    let src = GgufSource::open(&input).unwrap();
    // same size, new modification time
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&input)
        .unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
        .unwrap();
    let out = dir.path().join("out.gguf");
    let opts = QuantizeOptions::new("Q8_0").unwrap();
    let e = gpuq::quantize(&src, &out, &cpu(), &opts, &Quiet)
        .unwrap_err()
        .to_string();
    assert!(e.contains("in.gguf") && e.contains("modified"), "{e}");
    nothing_left(&out);
}

/// gpuq's Q4_K_M of the model.
fn gpuq_q4km(dir: &Path) -> PathBuf {
    let out = dir.join("g-q4km.gguf");
    let (code, err) = gpuq_status(&[
        "quantize",
        model().to_str().unwrap(),
        out.to_str().unwrap(),
        "Q4_K_M",
        "--backend",
        "cpu",
        "-q",
    ]);
    assert_eq!(code, 0, "{err}");
    out
}

#[test]
fn verify_passes_gpuq_and_llama_cpp_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let mine = gpuq_q4km(dir.path());
    let theirs = dir.path().join("l-q4km.gguf");
    python(
        FIXTURE,
        &[
            "quantize",
            model().to_str().unwrap(),
            theirs.to_str().unwrap(),
            "15",
        ],
    );
    let q8 = dir.path().join("l-q8.gguf");
    python(
        FIXTURE,
        &[
            "quantize",
            model().to_str().unwrap(),
            q8.to_str().unwrap(),
            "7",
        ],
    );
    for p in [model(), mine.as_path(), theirs.as_path(), q8.as_path()] {
        let (code, out, err) = verify(p, false);
        assert_eq!(code, 0, "{}: {out}{err}", p.display());
        assert!(out.contains("sound"), "{out}");
        let (code, out, _) = verify(p, true);
        assert_eq!(code, 0);
        let j: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(j["sound"], true);
        assert!(j["blocks"].as_u64().unwrap() > 1000, "{out}");
    }
}

#[test]
fn verify_finds_a_planted_nan_scale_in_a_q4_k_block() {
    let dir = tempfile::tempdir().unwrap();
    let good = gpuq_q4km(dir.path());
    let g = GgufFile::open(&good).unwrap();
    let t = g
        .tensors
        .iter()
        .find(|t| t.ty == GgmlType::Q4_K)
        .expect("a Q4_K tensor")
        .clone();
    let mut bytes = std::fs::read(&good).unwrap();
    drop(g);
    for (what, at, val, needle) in [
        ("d", 0usize, 0x7e00u16, "nan scale d"),
        ("dmin", 2, 0xfc00, "inf scale dmin"),
    ] {
        let mut b = bytes.clone();
        let block = 3u64;
        let off =
            (GgufFile::open(&good).unwrap().data_offset + t.offset + block * 144) as usize + at;
        b[off..off + 2].copy_from_slice(&val.to_le_bytes());
        let bad = dir.path().join(format!("bad-{what}.gguf"));
        std::fs::write(&bad, &b).unwrap();
        let (code, out, err) = verify(&bad, false);
        assert_eq!(code, 1, "{out}{err}");
        assert!(
            out.contains(&t.name) && out.contains(needle) && out.contains("block 3"),
            "{out}"
        );
        let (code, out, _) = verify(&bad, true);
        assert_eq!(code, 1);
        let j: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(j["findings"].as_array().unwrap().len(), 1, "{out}");
        assert_eq!(j["findings"][0]["tensor"], t.name.as_str());
    }
    // quantizing from a file with a NaN scale: the writer's verification refuses the output
    let off = (GgufFile::open(&good).unwrap().data_offset + t.offset) as usize;
    bytes[off..off + 2].copy_from_slice(&0x7e00u16.to_le_bytes());
    let bad = dir.path().join("bad.gguf");
    std::fs::write(&bad, &bytes).unwrap();
    let out = dir.path().join("copy.gguf");
    let (code, err) = gpuq_status(&[
        "quantize",
        bad.to_str().unwrap(),
        out.to_str().unwrap(),
        "Q4_K_M",
        "--allow-requantize",
        "--backend",
        "cpu",
        "-q",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("failed verification") && err.contains("nan scale d"),
        "{err}"
    );
    nothing_left(&out);
    // --no-verify keeps it (the NaN block re-quantizes to a NaN block)
    let (code, err) = gpuq_status(&[
        "quantize",
        bad.to_str().unwrap(),
        out.to_str().unwrap(),
        "Q4_K_M",
        "--allow-requantize",
        "--backend",
        "cpu",
        "-q",
        "--no-verify",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(verify(&out, false).0, 1);
    assert!(leftover_tmp_files(&out).is_empty());
}

fn write_gguf(path: &Path, md: Vec<(String, Value)>) {
    let specs = [TensorSpec {
        name: "token_embd.weight".into(),
        ty: GgmlType::F32,
        dims: vec![8, 4],
    }];
    let mut w = GgufWriter::create(path, &md, &specs).unwrap();
    let data: Vec<u8> = (0..32)
        .flat_map(|i| (i as f32 * 0.25).to_le_bytes())
        .collect();
    w.write_next(&data).unwrap();
    w.finish().unwrap();
}

#[test]
fn verify_finds_a_wrong_length_rope_sections_array_and_metadata_lies() {
    let dir = tempfile::tempdir().unwrap();
    let base = |sections: Option<Vec<i32>>| {
        let mut md = vec![
            (
                "general.architecture".to_string(),
                Value::String("qwen35".into()),
            ),
            ("qwen35.block_count".into(), Value::U32(1)),
            (
                "tokenizer.ggml.tokens".into(),
                Value::Array(Array::String((0..4).map(|i| format!("t{i}")).collect())),
            ),
        ];
        if let Some(s) = sections {
            md.push((
                "qwen35.rope.dimension_sections".into(),
                Value::Array(Array::I32(s)),
            ));
        }
        md
    };
    let ok = dir.path().join("ok.gguf");
    write_gguf(&ok, base(Some(vec![11, 11, 10, 0])));
    assert_eq!(verify(&ok, false).0, 0, "{}", verify(&ok, false).1);

    let three = dir.path().join("three.gguf");
    write_gguf(&three, base(Some(vec![11, 11, 10])));
    let (code, out, _) = verify(&three, false);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("qwen35.rope.dimension_sections") && out.contains("wrong array length"),
        "{out}"
    );
    let none = dir.path().join("none.gguf");
    write_gguf(&none, base(None));
    let (code, out, _) = verify(&none, false);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("is missing"), "{out}");

    // tokenizer arrays of unequal length, an id out of range, a key of the wrong type
    let mut md = base(Some(vec![1, 1, 1, 1]));
    md.push((
        "tokenizer.ggml.scores".into(),
        Value::Array(Array::F32(vec![0.0; 3])),
    ));
    md.push(("tokenizer.ggml.eos_token_id".into(), Value::U32(9)));
    md.push(("qwen35.context_length".into(), Value::I32(4096)));
    let lies = dir.path().join("lies.gguf");
    write_gguf(&lies, md);
    let (code, out, _) = verify(&lies, true);
    assert_eq!(code, 1, "{out}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut keys: Vec<&str> = j["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["key"].as_str().unwrap_or(""))
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "qwen35.context_length",
            "tokenizer.ggml.eos_token_id",
            "tokenizer.ggml.scores"
        ],
        "{out}"
    );
    assert_eq!(keys.len(), 3, "{out}");
}

#[test]
fn verify_checks_shapes_against_the_hyperparameters_and_split_sets() {
    let dir = tempfile::tempdir().unwrap();
    // a llama whose embedding width disagrees with embedding_length
    let md = vec![
        (
            "general.architecture".to_string(),
            Value::String("llama".into()),
        ),
        ("llama.block_count".into(), Value::U32(1)),
        ("llama.embedding_length".into(), Value::U32(16)),
        ("llama.attention.head_count".into(), Value::U32(2)),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(Array::String((0..4).map(|i| format!("t{i}")).collect())),
        ),
    ];
    let p = dir.path().join("shape.gguf");
    write_gguf(&p, md);
    let (code, out, _) = verify(&p, false);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("token_embd.weight") && out.contains("[16, 4]"),
        "{out}"
    );

    // a split set with its second split missing
    let base = dir.path().join("s");
    python(
        FIXTURE,
        &[
            "make",
            base.with_extension("gguf").to_str().unwrap(),
            "--layers",
            "2",
            "--embd",
            "64",
            "--ff",
            "128",
            "--vocab",
            "64",
            "--split",
            "8",
        ],
    );
    let first = dir.path().join("s-00001-of-00003.gguf");
    let (code, out, err) = verify(&first, false);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("3 file(s)"), "{out}");
    std::fs::remove_file(dir.path().join("s-00002-of-00003.gguf")).unwrap();
    let (code, out, _) = verify(&first, false);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("split 2 of 3 is missing"), "{out}");
}

#[test]
fn a_tensor_with_no_dims_is_read_as_one_element() {
    // found by tests/fuzz.rs (seed 20261202, case 5621): read_rows indexed dims[0]
    use gpuq::pipeline::ModelSource;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("scalar.gguf");
    let specs = [TensorSpec {
        name: "s".into(),
        ty: GgmlType::F32,
        dims: vec![],
    }];
    let mut w = GgufWriter::create(&p, &[], &specs).unwrap();
    w.write_next(&2.5f32.to_le_bytes()).unwrap();
    w.finish().unwrap();
    let src = GgufSource::open(&p).unwrap();
    let mut scratch = Vec::new();
    assert_eq!(
        src.read_rows(0, 0, 1, &mut scratch).unwrap(),
        2.5f32.to_le_bytes()
    );
    assert!(src.read_rows(0, 1, u64::MAX, &mut scratch).is_err());
}
