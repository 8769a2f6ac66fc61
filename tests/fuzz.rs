//! A deterministic mutation fuzzer on stable Rust (issue 20): valid seed files (a GGUF model,
//! a quantized GGUF, GGUF and legacy imatrix files, Hugging Face folders with safetensors,
//! config.json, tokenizer.json and tokenizer.model) are mutated (bit flips, byte runs,
//! truncations, boundary integers, lying counts, sizes and offsets, JSON edits) and fed to the
//! library's entry points in-process: open, inspect (verify), plan, quantize to a temporary
//! directory. Every case must end in `Err` with a message or in success: a panic is caught
//! (`catch_unwind`) and reported with its case number; a single allocation larger than the
//! inputs allow is reported by a counting global allocator.
//!
//! `cargo test --test fuzz` runs `GPUQ_FUZZ_ITERS` cases (default 4000); `GPUQ_FUZZ_SEED`
//! changes the stream; `GPUQ_FUZZ_CASE=N` replays one case with its description.

mod common;

use common::python;
use gpuq::formats::gguf::GgufFile;
use gpuq::formats::imatrix::Imatrix;
use gpuq::formats::verify::{VerifyOptions, verify_file};
use gpuq::model::GgufSource;
use gpuq::model::hf::{HfOptions, HfSource};
use gpuq::pipeline::{ModelSource, Quiet};
use gpuq::{Backend, Engine, QuantizeOptions};
use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

const FIXTURE: &str = include_str!("py/llama_fixture.py");
const HF_MODEL: &str = include_str!("py/hf_model.py");

// ------------------------------------------------------------ allocation cap

/// Largest single allocation a case may make (set per case from the size of its inputs).
static CAP: AtomicUsize = AtomicUsize::new(usize::MAX);
/// Largest single allocation over the cap seen in the current case.
static OVER: AtomicUsize = AtomicUsize::new(0);

struct Capped;

// SAFETY: forwards to the system allocator; only records sizes.
unsafe impl GlobalAlloc for Capped {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        note(l.size());
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        note(l.size());
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        note(n);
        unsafe { System.realloc(p, l, n) }
    }
}

fn note(size: usize) {
    if size > CAP.load(Ordering::Relaxed) {
        OVER.fetch_max(size, Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Capped = Capped;

// ------------------------------------------------------------ randomness

/// splitmix64: a tiny deterministic generator, so a case is reproducible from its number.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

/// Integers at the edges of what a reader must handle.
fn boundary(r: &mut Rng, file_len: u64) -> u64 {
    *r.pick(&[
        0,
        1,
        2,
        3,
        4,
        31,
        32,
        255,
        256,
        0x7f,
        0x80,
        0xff,
        0x7fff,
        0x8000,
        0xffff,
        0x7fff_ffff,
        0x8000_0000,
        0xffff_ffff,
        0x1_0000_0000,
        0x7fff_ffff_ffff_ffff,
        0x8000_0000_0000_0000,
        u64::MAX,
        u64::MAX - 1,
        file_len,
        file_len + 1,
        file_len.saturating_sub(1),
        file_len / 2,
        file_len * 8,
    ])
}

// ------------------------------------------------------------ mutations

/// Mutates `b` in place; returns a description.
fn mutate_bytes(b: &mut Vec<u8>, r: &mut Rng, hot: &[usize]) -> String {
    let len = b.len();
    if len == 0 {
        b.extend_from_slice(&r.next().to_le_bytes());
        return "grew an empty file".into();
    }
    // positions in the structure (headers, counts, offsets) are hit more often than data
    let pos = |r: &mut Rng| {
        if !hot.is_empty() && r.below(3) > 0 {
            let h = *r.pick(hot);
            (h + r.below(16)).min(len - 1)
        } else {
            r.below(len)
        }
    };
    match r.below(8) {
        0 | 1 => {
            let n = 1 + r.below(8);
            let mut at = Vec::new();
            for _ in 0..n {
                let p = pos(r);
                b[p] ^= 1 << r.below(8);
                at.push(p);
            }
            format!("flipped bits at {at:?}")
        }
        2 => {
            let p = pos(r);
            let n = (1 + r.below(16)).min(len - p);
            let v = r.next() as u8;
            for x in &mut b[p..p + n] {
                *x = v;
            }
            format!("set {n} bytes at {p} to {v:#x}")
        }
        3 => {
            let t = if r.below(2) == 0 {
                pos(r)
            } else {
                r.below(len)
            };
            b.truncate(t);
            format!("truncated to {t}")
        }
        4 | 5 => {
            let p = pos(r);
            let w = *r.pick(&[1usize, 2, 4, 8]);
            let v = boundary(r, len as u64);
            let bytes = v.to_le_bytes();
            let n = w.min(len - p);
            b[p..p + n].copy_from_slice(&bytes[..n]);
            format!("wrote boundary {v:#x} as {w} bytes at {p}")
        }
        6 => {
            let p = pos(r);
            let n = 1 + r.below(64);
            if r.below(2) == 0 {
                let end = (p + n).min(len);
                b.drain(p..end);
                format!("removed {} bytes at {p}", end - p)
            } else {
                let ins: Vec<u8> = (0..n).map(|_| r.next() as u8).collect();
                b.splice(p..p, ins);
                format!("inserted {n} bytes at {p}")
            }
        }
        _ => {
            // copy a run from elsewhere (duplicates strings, counts, whole records)
            let (s, d) = (r.below(len), pos(r));
            let n = (1 + r.below(32)).min(len - s).min(len - d);
            let run = b[s..s + n].to_vec();
            b[d..d + n].copy_from_slice(&run);
            format!("copied {n} bytes from {s} to {d}")
        }
    }
}

/// Mutates a JSON document structurally (or, one time in four, as bytes).
fn mutate_json(text: &[u8], r: &mut Rng) -> (Vec<u8>, String) {
    let Ok(mut j) = serde_json::from_slice::<serde_json::Value>(text) else {
        let mut b = text.to_vec();
        let d = mutate_bytes(&mut b, r, &[]);
        return (b, d);
    };
    if r.below(4) == 0 {
        let mut b = text.to_vec();
        let d = mutate_bytes(&mut b, r, &[]);
        return (b, format!("json bytes: {d}"));
    }
    // collect paths to every value
    fn paths(v: &serde_json::Value, p: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        out.push(p.clone());
        if out.len() > 5000 {
            return;
        }
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    p.push(k.clone());
                    paths(x, p, out);
                    p.pop();
                }
            }
            serde_json::Value::Array(a) => {
                for (i, x) in a.iter().enumerate().take(64) {
                    p.push(format!("#{i}"));
                    paths(x, p, out);
                    p.pop();
                }
            }
            _ => {}
        }
    }
    let mut all = Vec::new();
    paths(&j, &mut Vec::new(), &mut all);
    let path = r.pick(&all).clone();
    let mut v = &mut j;
    for k in &path {
        // the value's kind says how to read the segment (object keys may start with '#')
        v = match v {
            serde_json::Value::Array(a) => &mut a[k[1..].parse::<usize>().unwrap()],
            serde_json::Value::Object(m) => m.get_mut(k).unwrap(),
            _ => unreachable!("paths() only descends into arrays and objects"),
        };
    }
    let what = match r.below(7) {
        0 => {
            *v = serde_json::json!(boundary(r, 1 << 20));
            "boundary integer"
        }
        1 => {
            *v = serde_json::json!(-(r.below(3) as i64) - 1);
            "negative integer"
        }
        2 => {
            *v = serde_json::Value::Null;
            "null"
        }
        3 => {
            *v = serde_json::json!("x");
            "string"
        }
        4 => {
            *v = serde_json::json!([1, 2, 3]);
            "array"
        }
        5 => {
            *v = serde_json::json!(1e300);
            "huge float"
        }
        _ => {
            if let serde_json::Value::Object(m) = v {
                if let Some(k) = m.keys().nth(r.below(m.len().max(1))).cloned() {
                    m.remove(&k);
                }
            } else if let serde_json::Value::Array(a) = v
                && !a.is_empty()
            {
                let i = r.below(a.len());
                a.remove(i);
            } else {
                *v = serde_json::json!({});
            }
            "removed an entry"
        }
    };
    (
        serde_json::to_vec(&j).unwrap(),
        format!("json {what} at {path:?}"),
    )
}

// ------------------------------------------------------------ seeds

struct Seeds {
    _dir: tempfile::TempDir,
    gguf: PathBuf,
    gguf_q: PathBuf,
    imatrix: PathBuf,
    imatrix_dat: PathBuf,
    hf_bpe: PathBuf,
    hf_spm: PathBuf,
}

fn seeds() -> Seeds {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let gguf = d.join("m.gguf");
    python(
        FIXTURE,
        &[
            "make",
            gguf.to_str().unwrap(),
            "--layers",
            "1",
            "--embd",
            "256",
            "--ff",
            "256",
            "--vocab",
            "64",
            "--seed",
            "5",
        ],
    );
    let imatrix = d.join("imatrix.gguf");
    let imatrix_dat = d.join("imatrix.dat");
    python(
        FIXTURE,
        &[
            "imatrix",
            gguf.to_str().unwrap(),
            imatrix.to_str().unwrap(),
            "--seed",
            "3",
            "--legacy",
            imatrix_dat.to_str().unwrap(),
        ],
    );
    let gguf_q = d.join("m-q.gguf");
    let src = GgufSource::open(&gguf).unwrap();
    let opts = QuantizeOptions::new("Q4_K_M").unwrap();
    gpuq::quantize(&src, &gguf_q, &engine(), &opts, &Quiet).unwrap();
    let hf_bpe = d.join("hf-bpe");
    python(
        HF_MODEL,
        &[
            "make",
            hf_bpe.to_str().unwrap(),
            "llama",
            "1",
            "--dtype",
            "bf16",
        ],
    );
    let hf_spm = d.join("hf-spm");
    python(
        HF_MODEL,
        &["make", hf_spm.to_str().unwrap(), "llama", "2", "--spm"],
    );
    Seeds {
        _dir: dir,
        gguf,
        gguf_q,
        imatrix,
        imatrix_dat,
        hf_bpe,
        hf_spm,
    }
}

fn engine() -> Engine {
    Engine::new(Backend::Cpu).unwrap()
}

/// Structure offsets of a GGUF file: the fixed header, every key/value and tensor info start
/// (found by parsing the valid seed).
fn gguf_hot(path: &Path) -> Vec<usize> {
    let b = std::fs::read(path).unwrap();
    let g = GgufFile::open(path).unwrap();
    let mut hot = vec![0, 4, 8, 16, 24];
    // string length fields: every place a key or tensor name starts
    for (k, _) in &g.metadata {
        if let Some(p) = find(&b, k.as_bytes()) {
            hot.push(p.saturating_sub(8));
            hot.push(p + k.len()); // value type, then the value (array type/count)
        }
    }
    for t in &g.tensors {
        if let Some(p) = find(&b, t.name.as_bytes()) {
            hot.push(p.saturating_sub(8));
            hot.push(p + t.name.len()); // n_dims, dims, type, offset
            hot.push(p + t.name.len() + 4 + 8 * t.dims.len() + 4);
        }
    }
    hot.push(g.data_offset as usize);
    hot
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

// ------------------------------------------------------------ entry points

type R = Result<(), String>;

fn run_gguf_model(path: &Path, out_dir: &Path, eng: &Engine, imatrix: Option<&Path>) -> R {
    let f = GgufFile::open(path).map_err(|e| e.to_string())?;
    let _ = verify_file(&f, &VerifyOptions::default());
    drop(f);
    let src = GgufSource::open(path).map_err(|e| e.to_string())?;
    let mut opts = QuantizeOptions::new("Q4_K_M").map_err(|e| e.to_string())?;
    opts.allow_requantize = true;
    opts.max_memory = 8 << 20;
    if let Some(p) = imatrix {
        let m = Imatrix::load(p).map_err(|e| e.to_string())?;
        opts.imatrix = Some(m.entries);
    }
    gpuq::quantize::plan(&src, &opts).map_err(|e| e.to_string())?;
    let out = out_dir.join("out.gguf");
    let r = gpuq::quantize(&src, &out, eng, &opts, &Quiet).map_err(|e| e.to_string());
    let _ = std::fs::remove_file(&out);
    r.map(|_| ())
}

fn run_hf(dir: &Path, out_dir: &Path, eng: &Engine) -> R {
    let src = HfSource::open(dir, &HfOptions::default()).map_err(|e| e.to_string())?;
    let _ = src.metadata();
    let mut opts = QuantizeOptions::new("Q8_0").map_err(|e| e.to_string())?;
    opts.max_memory = 8 << 20;
    gpuq::quantize::plan(&src, &opts).map_err(|e| e.to_string())?;
    let out = out_dir.join("out.gguf");
    let r = gpuq::quantize(&src, &out, eng, &opts, &Quiet).map_err(|e| e.to_string());
    let _ = std::fs::remove_file(&out);
    r.map(|_| ())
}

/// Copies the folder `src` to `dst` (flat: the seeds have no subfolders).
fn copy_dir(src: &Path, dst: &Path) {
    let _ = std::fs::remove_dir_all(dst);
    std::fs::create_dir_all(dst).unwrap();
    for e in std::fs::read_dir(src).unwrap().flatten() {
        std::fs::copy(e.path(), dst.join(e.file_name())).unwrap();
    }
}

const TARGETS: &[&str] = &[
    "gguf",
    "gguf",
    "gguf-quantized",
    "imatrix-gguf",
    "imatrix-dat",
    "safetensors",
    "config.json",
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
];

/// One case: mutate a seed, run the entry points. Returns (description, result).
fn case(
    s: &Seeds,
    hot: &[usize],
    hot_q: &[usize],
    n: u64,
    work: &Path,
    eng: &Engine,
) -> (String, R) {
    let mut r = Rng(n.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ seed_base());
    let target = *r.pick(TARGETS);
    let cdir = work.join("case");
    let _ = std::fs::remove_dir_all(&cdir);
    std::fs::create_dir_all(&cdir).unwrap();
    match target {
        "gguf" | "gguf-quantized" => {
            let (seed, hot) = if target == "gguf" {
                (&s.gguf, hot)
            } else {
                (&s.gguf_q, hot_q)
            };
            let mut b = std::fs::read(seed).unwrap();
            let mut desc = Vec::new();
            for _ in 0..1 + r.below(3) {
                desc.push(mutate_bytes(&mut b, &mut r, hot));
            }
            let p = cdir.join("m.gguf");
            std::fs::write(&p, &b).unwrap();
            set_cap(b.len());
            (
                format!("{target}: {}", desc.join("; ")),
                run_gguf_model(&p, &cdir, eng, None),
            )
        }
        "imatrix-gguf" | "imatrix-dat" => {
            let seed = if target == "imatrix-gguf" {
                &s.imatrix
            } else {
                &s.imatrix_dat
            };
            let mut b = std::fs::read(seed).unwrap();
            let hot = if target == "imatrix-gguf" {
                gguf_hot(seed)
            } else {
                vec![0, 4, 8]
            };
            let desc = mutate_bytes(&mut b, &mut r, &hot);
            let p = cdir.join(seed.file_name().unwrap());
            std::fs::write(&p, &b).unwrap();
            set_cap(b.len() + std::fs::metadata(&s.gguf).unwrap().len() as usize);
            (
                format!("{target}: {desc}"),
                run_gguf_model(&s.gguf, &cdir, eng, Some(&p)),
            )
        }
        _ => {
            let seed = if r.below(2) == 0 {
                &s.hf_bpe
            } else {
                &s.hf_spm
            };
            let folder = cdir.join("hf");
            copy_dir(seed, &folder);
            let file = match target {
                "safetensors" => "model.safetensors",
                t => t,
            };
            let p = folder.join(file);
            let Ok(orig) = std::fs::read(&p) else {
                return (format!("{target}: not in this seed"), Ok(()));
            };
            let (b, desc) = match target {
                "safetensors" => {
                    // the header: u64 length, then JSON; mutate the JSON or the bytes
                    let hl = u64::from_le_bytes(orig[..8].try_into().unwrap()) as usize;
                    if r.below(2) == 0 && 8 + hl <= orig.len() {
                        let (j, d) = mutate_json(&orig[8..8 + hl], &mut r);
                        let mut b = (j.len() as u64).to_le_bytes().to_vec();
                        if r.below(4) == 0 {
                            // a header length that lies
                            b = boundary(&mut r, orig.len() as u64).to_le_bytes().to_vec();
                        }
                        b.extend_from_slice(&j);
                        b.extend_from_slice(&orig[8 + hl..]);
                        (b, format!("header {d}"))
                    } else {
                        let mut b = orig.clone();
                        let d = mutate_bytes(&mut b, &mut r, &[0, 8, 8 + hl]);
                        (b, d)
                    }
                }
                "tokenizer.model" => {
                    let mut b = orig.clone();
                    let d = mutate_bytes(&mut b, &mut r, &[0, 2, 4]);
                    (b, d)
                }
                _ => mutate_json(&orig, &mut r),
            };
            std::fs::write(&p, &b).unwrap();
            let total: u64 = std::fs::read_dir(&folder)
                .unwrap()
                .flatten()
                .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
                .sum();
            set_cap(total as usize);
            (
                format!(
                    "{target} ({}): {desc}",
                    seed.file_name().unwrap().to_string_lossy()
                ),
                run_hf(&folder, &cdir, eng),
            )
        }
    }
}

/// Inputs of `n` bytes may make single allocations up to 64 x n plus 64 MiB (decoded f32
/// copies of tensors, tokenizer tables); more means a length from the file was trusted.
fn set_cap(n: usize) {
    OVER.store(0, Ordering::Relaxed);
    CAP.store(
        n.saturating_mul(64).saturating_add(64 << 20),
        Ordering::Relaxed,
    );
}

fn seed_base() -> u64 {
    std::env::var("GPUQ_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x6770_7571)
}

#[test]
fn mutated_inputs_end_in_an_error_or_success_never_a_panic() {
    let iters: u64 = std::env::var("GPUQ_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4000);
    let only: Option<u64> = std::env::var("GPUQ_FUZZ_CASE")
        .ok()
        .and_then(|s| s.parse().ok());
    // the allocation cap reports (a self-check of the counting allocator)
    set_cap(1);
    let probe = std::hint::black_box(vec![1u8; 1 << 27]);
    assert!(OVER.swap(0, Ordering::Relaxed) >= 1 << 27);
    CAP.store(usize::MAX, Ordering::Relaxed);
    drop(probe);
    let s = seeds();
    let hot = gguf_hot(&s.gguf);
    let hot_q = gguf_hot(&s.gguf_q);
    // cases write and fsync small files: a RAM file system when there is one keeps them fast
    let shm = Path::new("/dev/shm");
    let work = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap_or_else(|_| tempfile::tempdir().unwrap())
    } else {
        tempfile::tempdir().unwrap()
    };
    let eng = engine();
    let prev_hook = std::panic::take_hook();
    // panics are reported with their location, not printed as they happen
    static WHERE: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());
    std::panic::set_hook(Box::new(|info| {
        if let (Some(l), Ok(mut w)) = (info.location(), WHERE.lock()) {
            *w = l.to_string();
        }
    }));
    let start = std::time::Instant::now();
    let (mut ok, mut err, mut failures) = (0u64, 0u64, Vec::new());
    let mut messages = std::collections::BTreeMap::<String, u64>::new();
    let range: Vec<u64> = match only {
        Some(n) => vec![n],
        None => (0..iters).collect(),
    };
    for n in range {
        if n > 0 && n % 10_000 == 0 {
            eprintln!(
                "fuzz: {n} cases, {:.0} s, {} failures so far",
                start.elapsed().as_secs_f64(),
                failures.len()
            );
        }
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            case(&s, &hot, &hot_q, n, work.path(), &eng)
        }));
        let over = OVER.swap(0, Ordering::Relaxed);
        let cap = CAP.swap(usize::MAX, Ordering::Relaxed);
        match res {
            Ok((desc, r)) => {
                if only.is_some() {
                    eprintln!("case {n}: {desc}\n  -> {r:?}");
                }
                if over > 0 {
                    let f = format!("case {n}: {desc}: allocated {over} bytes at once (cap {cap})");
                    eprintln!("fuzz: FAILURE {f}");
                    failures.push(f);
                }
                match r {
                    Ok(()) => ok += 1,
                    Err(m) => {
                        assert!(!m.trim().is_empty(), "case {n}: {desc}: empty error");
                        err += 1;
                        // group messages by their shape (digits and paths dropped)
                        let key: String = m
                            .rsplit(": ")
                            .next()
                            .unwrap_or(&m)
                            .chars()
                            .filter(|c| !c.is_ascii_digit())
                            .take(60)
                            .collect();
                        *messages.entry(key).or_default() += 1;
                    }
                }
            }
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let at = WHERE.lock().map(|w| w.clone()).unwrap_or_default();
                let f = format!("case {n} (GPUQ_FUZZ_CASE={n}): panicked at {at}: {msg}");
                eprintln!("fuzz: FAILURE {f}");
                failures.push(f);
            }
        }
    }
    std::panic::set_hook(prev_hook);
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "fuzz: {} cases in {secs:.1} s: {ok} succeeded, {err} ended in an error, {} failures; {} error shapes",
        ok + err + failures.len() as u64,
        failures.len(),
        messages.len()
    );
    if std::env::var("GPUQ_FUZZ_VERBOSE").is_ok() {
        for (m, c) in &messages {
            eprintln!("  {c:6}  {m}");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
