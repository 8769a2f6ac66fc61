//! Is a GGUF file sound? Every tensor's blocks validated as llama.cpp's
//! `ggml_validate_row_data` (ggml/src/ggml-quants.c) validates them, plus what llama.cpp's
//! loader (src/llama-model-loader.cpp, src/llama-vocab.cpp) would refuse in the metadata:
//! known keys of the wrong type, per-layer arrays of the wrong length, a
//! `rope.dimension_sections` that is not 4 long, tokenizer arrays of unequal length, special
//! token ids out of range; tensor shapes against the hyper-parameters for the architectures
//! gpuq converts (llama, qwen2, qwen3, bitnet); and, for a split set, that every split is
//! there and they agree.
//!
//! The parsing checks (offsets, bounds, overlaps, type ids) are the reader's
//! ([`GgufFile::open`]); a file that fails them is an error, not a finding.

use crate::GgmlType;
use crate::formats::gguf::{Array, GgufError, GgufFile, TensorInfo, Value, ValueType};
use rayon::prelude::*;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// What to check.
#[derive(Clone, Copy, Debug, Default)]
pub struct VerifyOptions {
    /// Non-finite values and scales are not findings (the data was written from NaN/Inf
    /// weights on purpose: `--allow-nonfinite`, dequantize, convert).
    pub allow_nonfinite: bool,
    /// Open and check the other splits of a split set (`NAME-00001-of-0000N.gguf`).
    pub splits: bool,
}

/// One thing wrong with a file.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Finding {
    /// The file it is in.
    pub file: PathBuf,
    /// The tensor it concerns, if any.
    pub tensor: Option<String>,
    /// The metadata key it concerns, if any.
    pub key: Option<String>,
    pub what: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file.display())?;
        if let Some(t) = &self.tensor {
            write!(f, "tensor '{t}': ")?;
        }
        if let Some(k) = &self.key {
            write!(f, "key '{k}': ")?;
        }
        f.write_str(&self.what)
    }
}

/// The outcome of a verification.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Report {
    /// The files read (one, or every split).
    pub files: Vec<PathBuf>,
    pub tensors: usize,
    /// Blocks (elements, for float types) whose scales or values were checked.
    pub blocks: u64,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn is_sound(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Opens `path` (and, with `opts.splits`, the rest of its split set) and verifies it.
pub fn verify_path(path: &Path, opts: &VerifyOptions) -> Result<Report, GgufError> {
    let first = GgufFile::open(path)?;
    let mut report = Report::default();
    let mut files = vec![first];
    if opts.splits {
        open_splits(path, &mut files, &mut report)?;
    }
    verify_files(&files, opts, &mut report);
    Ok(report)
}

/// Verifies one open file.
pub fn verify_file(f: &GgufFile, opts: &VerifyOptions) -> Report {
    let mut report = Report::default();
    verify_files(std::slice::from_ref(f), opts, &mut report);
    report
}

fn find(file: &Path, tensor: Option<&str>, key: Option<&str>, what: String) -> Finding {
    Finding {
        file: file.to_path_buf(),
        tensor: tensor.map(str::to_string),
        key: key.map(str::to_string),
        what,
    }
}

/// `split.no` / `split.count` as integers (any integer type; their type is checked elsewhere).
fn split_int(f: &GgufFile, key: &str) -> Option<u64> {
    f.get(key).and_then(Value::as_u64)
}

/// Opens splits 2..N of the set `path` is the first of; missing or disagreeing ones become
/// findings.
fn open_splits(
    path: &Path,
    files: &mut Vec<GgufFile>,
    report: &mut Report,
) -> Result<(), GgufError> {
    let count = split_int(&files[0], "split.count").unwrap_or(1);
    if count <= 1 {
        return Ok(());
    }
    let no = split_int(&files[0], "split.no").unwrap_or(0);
    let name = path.to_string_lossy().into_owned();
    let suffix = format!("-{:05}-of-{count:05}.gguf", no + 1);
    let Some(prefix) = name.strip_suffix(&suffix) else {
        report.findings.push(find(
            path,
            None,
            Some("split.count"),
            format!(
                "is {count}, but the name does not end in {suffix}, so the other splits cannot be found"
            ),
        ));
        return Ok(());
    };
    if count > 99_999 {
        report.findings.push(find(
            path,
            None,
            Some("split.count"),
            format!("is {count}; split names have five digits"),
        ));
        return Ok(());
    }
    for i in 0..count {
        if i == no {
            continue;
        }
        let p = PathBuf::from(format!("{prefix}-{:05}-of-{count:05}.gguf", i + 1));
        if !p.exists() {
            report.findings.push(find(
                &p,
                None,
                None,
                format!("split {} of {count} is missing", i + 1),
            ));
            continue;
        }
        let f = GgufFile::open(&p)?;
        let (fno, fcount) = (split_int(&f, "split.no"), split_int(&f, "split.count"));
        if fno != Some(i) || fcount != Some(count) {
            report.findings.push(find(
                &p,
                None,
                Some("split.no"),
                format!("split.no {fno:?} / split.count {fcount:?}, expected {i} / {count}"),
            ));
        }
        files.push(f);
    }
    let total: usize = files.iter().map(|f| f.tensors.len()).sum();
    if let Some(n) = split_int(&files[0], "split.tensors.count")
        && n != total as u64
        && files.len() as u64 == count
    {
        report.findings.push(find(
            path,
            None,
            Some("split.tensors.count"),
            format!("is {n}, the {count} splits hold {total} tensors"),
        ));
    }
    Ok(())
}

fn verify_files(files: &[GgufFile], opts: &VerifyOptions, report: &mut Report) {
    report.files = files.iter().map(|f| f.path().to_path_buf()).collect();
    report.tensors = files.iter().map(|f| f.tensors.len()).sum();
    // tensors of all files, by name; a name in two splits is a finding
    let mut all: Vec<(&GgufFile, &TensorInfo)> = Vec::new();
    let mut seen: HashMap<&str, &Path> = HashMap::new();
    for f in files {
        for t in &f.tensors {
            if let Some(prev) = seen.insert(&t.name, f.path()) {
                report.findings.push(find(
                    f.path(),
                    Some(&t.name),
                    None,
                    format!("is also in {}", prev.display()),
                ));
            }
            all.push((f, t));
        }
    }
    let data: Vec<(u64, Option<Finding>)> = all
        .par_iter()
        .map(|(f, t)| {
            let r = validate_tensor(f, t, opts);
            // drop the checked pages again: a verify pass must not keep the file resident
            // (quantize runs it on its output under --max-memory)
            f.advise(f.data_offset + t.offset, t.size, false);
            r
        })
        .collect();
    for (blocks, finding) in data {
        report.blocks += blocks;
        report.findings.extend(finding);
    }
    let first = &files[0];
    check_metadata(first, report);
    check_shapes(first, &all, report);
}

// ---------------------------------------------------------------- blocks

/// Where a block keeps its f16 scales (byte offsets), per `ggml_validate_row_data`'s
/// `VALIDATE_ROW_DATA_D_F16_IMPL` / `_DM_F16_IMPL` (the block structs of ggml-common.h).
fn f16_scale_offsets(ty: GgmlType) -> &'static [usize] {
    use GgmlType::*;
    match ty {
        // d first
        Q4_0 | Q5_0 | Q8_0 | IQ2_XXS | IQ2_XS | IQ2_S | IQ3_XXS | IQ3_S | IQ1_S | IQ4_NL
        | IQ4_XS | Q1_0 => &[0],
        // d, m (legacy) / d, dmin (k-quants) first
        Q4_1 | Q5_1 | Q4_K | Q5_K => &[0, 2],
        // Q8_1 is not in ggml_validate_row_data's switch; its d and s are f16 at 0 and 2
        Q8_1 => &[0, 2],
        // block_q2_K {scales[16], qs[64], d, dmin}
        Q2_K => &[80, 82],
        // block_q3_K {hmask[32], qs[64], scales[12], d}
        Q3_K => &[108],
        // block_q6_K {ql[128], qh[64], scales[16], d}
        Q6_K => &[208],
        // block_tq1_0 {qs[48], qh[4], d}
        TQ1_0 => &[52],
        // block_tq2_0 {qs[64], d}
        TQ2_0 => &[64],
        _ => &[],
    }
}

fn f16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}

/// `validate_fp16`: the kind of a bad f16, or `None` when finite.
fn bad_f16(h: u16) -> Option<&'static str> {
    if h & 0x7c00 != 0x7c00 {
        None
    } else if h & 0x03ff == 0 {
        Some("inf")
    } else {
        Some("nan")
    }
}

fn bad_f32(x: f32) -> Option<&'static str> {
    if x.is_nan() {
        Some("nan")
    } else if x.is_infinite() {
        Some("inf")
    } else {
        None
    }
}

/// The first bad block of a run of blocks and how many there are.
#[derive(Default)]
struct Bad {
    count: u64,
    first: Option<(u64, String)>,
}

impl Bad {
    fn add(&mut self, i: u64, what: impl FnOnce() -> String) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some((i, what()));
        }
    }
    fn merge(mut self, o: Bad) -> Bad {
        self.count += o.count;
        if self.first.is_none() {
            self.first = o.first;
        }
        self
    }
}

/// Validates the blocks of `bytes` (whole blocks of `ty`; `base` is the index of the first),
/// as `ggml_validate_row_data` does.
fn validate_blocks(ty: GgmlType, bytes: &[u8], base: u64) -> Bad {
    let bb = ty.block_bytes() as usize;
    let mut bad = Bad::default();
    use GgmlType::*;
    match ty {
        F32 => {
            for (i, c) in bytes.chunks_exact(4).enumerate() {
                let x = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                if let Some(k) = bad_f32(x) {
                    bad.add(base + i as u64, || format!("{k} value"));
                }
            }
        }
        F64 => {
            for (i, c) in bytes.chunks_exact(8).enumerate() {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                let x = f64::from_le_bytes(a);
                if !x.is_finite() {
                    let k = if x.is_nan() { "nan" } else { "inf" };
                    bad.add(base + i as u64, || format!("{k} value"));
                }
            }
        }
        F16 => {
            for (i, c) in bytes.chunks_exact(2).enumerate() {
                if let Some(k) = bad_f16(f16_at(c, 0)) {
                    bad.add(base + i as u64, || format!("{k} value"));
                }
            }
        }
        BF16 => {
            for (i, c) in bytes.chunks_exact(2).enumerate() {
                let h = f16_at(c, 0) & 0x7fff;
                if h >= 0x7f80 {
                    let k = if h > 0x7f80 { "nan" } else { "inf" };
                    bad.add(base + i as u64, || format!("{k} value"));
                }
            }
        }
        Q8_K => {
            // block_q8_K {float d; …}
            for (i, c) in bytes.chunks_exact(bb).enumerate() {
                let d = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                if let Some(k) = bad_f32(d) {
                    bad.add(base + i as u64, || format!("{k} scale d"));
                }
            }
        }
        IQ1_M => {
            // the f16 scale is spread over the top nibbles of the four u16 of scales[8]
            // (block_iq1_m {qs[32], qh[16], scales[8]})
            for (i, c) in bytes.chunks_exact(bb).enumerate() {
                let sc = |j: usize| f16_at(c, 48 + 2 * j);
                let h = (sc(0) >> 12)
                    | ((sc(1) >> 8) & 0x00f0)
                    | ((sc(2) >> 4) & 0x0f00)
                    | (sc(3) & 0xf000);
                if let Some(k) = bad_f16(h) {
                    bad.add(base + i as u64, || format!("{k} scale"));
                }
            }
        }
        MXFP4 => {
            // block_mxfp4 {e (E8M0); qs[16]}: 0xff is not a scale
            for (i, c) in bytes.chunks_exact(bb).enumerate() {
                if c[0] == 0xff {
                    bad.add(base + i as u64, || "invalid E8M0 exponent 0xff".into());
                }
            }
        }
        // NVFP4: every UE4M3 byte is valid; integers: nothing to validate
        NVFP4 | I8 | I16 | I32 | I64 => {}
        I2_S => {
            // codes: 0, 1, 2 mean -1, 0, +1; 3 is not a ternary weight
            for (i, c) in bytes.chunks_exact(bb).enumerate() {
                if c.iter().any(|&b| {
                    (b & 0x03) == 3
                        || (b & 0x0c) == 0x0c
                        || (b & 0x30) == 0x30
                        || (b & 0xc0) == 0xc0
                }) {
                    bad.add(base + i as u64, || "2-bit code 3 (not -1, 0 or +1)".into());
                }
            }
        }
        _ => {
            let offs = f16_scale_offsets(ty);
            for (i, c) in bytes.chunks_exact(bb).enumerate() {
                for (n, &o) in offs.iter().enumerate() {
                    if let Some(k) = bad_f16(f16_at(c, o)) {
                        let name = match (n, ty) {
                            (0, _) => "d",
                            (_, Q4_1 | Q5_1) => "m",
                            (_, Q8_1) => "s",
                            _ => "dmin",
                        };
                        bad.add(base + i as u64, || format!("{k} scale {name}"));
                        break;
                    }
                }
            }
        }
    }
    bad
}

/// Checks one tensor's data: (blocks checked, a finding summarising the bad blocks).
fn validate_tensor(f: &GgufFile, t: &TensorInfo, opts: &VerifyOptions) -> (u64, Option<Finding>) {
    let data = f.tensor_data(t);
    let is_float = matches!(
        t.ty,
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 | GgmlType::F64
    );
    let mut findings = Vec::new();
    let mut codes = data;
    if t.ty == GgmlType::I2_S {
        // packed codes, then the f32 tensor scale and padding (bitnet.cpp's ggml_nbytes)
        let n = (t.n_elements() / 4) as usize;
        let (c, trailer) = data.split_at(n.min(data.len()));
        codes = c;
        match crate::codec::i2s::trailer_scale(trailer).map(bad_f32) {
            None => findings.push("no I2_S scale after the codes".to_string()),
            Some(Some(k)) => findings.push(format!("{k} I2_S tensor scale in the trailer")),
            Some(None) => {}
        }
    }
    if data.len() as u64 != t.size {
        findings.push(format!(
            "holds {} bytes, its shape needs {}",
            data.len(),
            t.size
        ));
    }
    let bb = t.ty.block_bytes() as usize;
    let blocks = (codes.len() / bb.max(1)) as u64;
    if !opts.allow_nonfinite && bb > 0 {
        // chunks of whole blocks, checked in parallel
        let per = (1 << 20) / bb * bb;
        let bad = codes
            .par_chunks(per.max(bb))
            .enumerate()
            .map(|(ci, c)| validate_blocks(t.ty, c, (ci * per / bb) as u64))
            .reduce(Bad::default, Bad::merge);
        if let Some((i, what)) = bad.first {
            let unit = if is_float { "value" } else { "block" };
            findings.push(format!(
                "{} of {blocks} {unit}s fail ggml_validate_row_data; the first is {unit} {i} ({what})",
                bad.count
            ));
        }
    }
    let finding = (!findings.is_empty()).then(|| {
        find(
            f.path(),
            Some(&t.name),
            None,
            format!("{} ({})", findings.join("; "), t.ty),
        )
    });
    (blocks, finding)
}

// ---------------------------------------------------------------- metadata

/// The type llama.cpp's loader requires of a key (`GGUFMeta::GKV::validate_type` is strict).
#[derive(Clone, Copy)]
enum Want {
    Scalar(ValueType),
    /// A scalar, or an array of `n_layer` integers (`get_key_or_arr`).
    PerLayer,
    Arr(ValueType),
}

const GENERAL_KEYS: &[(&str, Want)] = &[
    ("general.architecture", Want::Scalar(ValueType::String)),
    ("general.name", Want::Scalar(ValueType::String)),
    ("general.alignment", Want::Scalar(ValueType::U32)),
    ("general.file_type", Want::Scalar(ValueType::U32)),
    ("general.quantization_version", Want::Scalar(ValueType::U32)),
    ("tokenizer.ggml.model", Want::Scalar(ValueType::String)),
    ("tokenizer.ggml.pre", Want::Scalar(ValueType::String)),
    ("tokenizer.ggml.tokens", Want::Arr(ValueType::String)),
    ("tokenizer.ggml.scores", Want::Arr(ValueType::F32)),
    ("tokenizer.ggml.token_type", Want::Arr(ValueType::I32)),
    ("tokenizer.ggml.merges", Want::Arr(ValueType::String)),
    (
        "tokenizer.ggml.add_bos_token",
        Want::Scalar(ValueType::Bool),
    ),
    (
        "tokenizer.ggml.add_eos_token",
        Want::Scalar(ValueType::Bool),
    ),
    (
        "tokenizer.ggml.add_space_prefix",
        Want::Scalar(ValueType::Bool),
    ),
    ("split.no", Want::Scalar(ValueType::U16)),
    ("split.count", Want::Scalar(ValueType::U16)),
    ("split.tensors.count", Want::Scalar(ValueType::I32)),
];

/// Special token id keys (`tokenizer.ggml.*_token_id`, u32, below the vocabulary size).
const TOKEN_ID_KEYS: &[&str] = &[
    "bos",
    "eos",
    "unknown",
    "seperator",
    "padding",
    "cls",
    "mask",
    "eot",
    "eom",
    "fim_pre",
    "fim_suf",
    "fim_mid",
    "fim_pad",
    "fim_rep",
    "fim_sep",
];

/// `{arch}.*` keys and their types.
const ARCH_KEYS: &[(&str, Want)] = &[
    ("context_length", Want::Scalar(ValueType::U32)),
    ("embedding_length", Want::Scalar(ValueType::U32)),
    ("block_count", Want::Scalar(ValueType::U32)),
    ("vocab_size", Want::Scalar(ValueType::U32)),
    ("feed_forward_length", Want::PerLayer),
    ("attention.head_count", Want::PerLayer),
    ("attention.head_count_kv", Want::PerLayer),
    ("attention.key_length", Want::Scalar(ValueType::U32)),
    ("attention.value_length", Want::Scalar(ValueType::U32)),
    ("attention.layer_norm_epsilon", Want::Scalar(ValueType::F32)),
    (
        "attention.layer_norm_rms_epsilon",
        Want::Scalar(ValueType::F32),
    ),
    ("rope.dimension_count", Want::Scalar(ValueType::U32)),
    ("rope.freq_base", Want::Scalar(ValueType::F32)),
    ("rope.scaling.type", Want::Scalar(ValueType::String)),
    ("rope.scaling.factor", Want::Scalar(ValueType::F32)),
    (
        "rope.scaling.original_context_length",
        Want::Scalar(ValueType::U32),
    ),
    ("expert_count", Want::Scalar(ValueType::U32)),
    ("expert_used_count", Want::Scalar(ValueType::U32)),
];

/// Architectures whose llama.cpp loader requires `rope.dimension_sections` (4 entries:
/// `get_key_or_arr(LLM_KV_ROPE_DIMENSION_SECTIONS, hparams.rope_sections, 4, true)`).
const NEEDS_ROPE_SECTIONS: &[&str] = &["qwen2vl", "qwen3vl", "qwen3vlmoe", "qwen35", "qwen35moe"];

fn type_desc(v: &Value) -> String {
    match v {
        Value::Array(a) => format!("array of {} {}", a.len(), a.element_type()),
        v => v.value_type().to_string(),
    }
}

fn is_int_type(t: ValueType) -> bool {
    matches!(
        t,
        ValueType::U8
            | ValueType::I8
            | ValueType::U16
            | ValueType::I16
            | ValueType::U32
            | ValueType::I32
            | ValueType::U64
            | ValueType::I64
    )
}

fn check_type(
    f: &GgufFile,
    key: &str,
    v: &Value,
    want: Want,
    n_layer: Option<u64>,
    out: &mut Vec<Finding>,
) {
    let bad = |w: String| find(f.path(), None, Some(key), w);
    match want {
        Want::Scalar(t) if v.value_type() != t => {
            out.push(bad(format!("is {}, llama.cpp requires {t}", type_desc(v))))
        }
        Want::Arr(t) => match v {
            Value::Array(a) if a.element_type() == t => {}
            _ => out.push(bad(format!(
                "is {}, llama.cpp requires an array of {t}",
                type_desc(v)
            ))),
        },
        Want::PerLayer => match v {
            Value::U32(_) => {}
            Value::Array(a) => {
                if !is_int_type(a.element_type()) {
                    out.push(bad(format!(
                        "is {}, llama.cpp requires u32 or an array of integers",
                        type_desc(v)
                    )));
                } else if let Some(n) = n_layer
                    && a.len() as u64 != n
                {
                    out.push(bad(format!(
                        "has wrong array length: {} entries, block_count is {n}",
                        a.len()
                    )));
                }
            }
            _ => out.push(bad(format!(
                "is {}, llama.cpp requires u32 or an array of n_layer integers",
                type_desc(v)
            ))),
        },
        Want::Scalar(_) => {}
    }
}

fn check_metadata(f: &GgufFile, report: &mut Report) {
    let out = &mut report.findings;
    let arch = match f.get("general.architecture") {
        Some(Value::String(s)) => Some(s.as_str()),
        _ => None,
    };
    let akey = |k: &str| arch.map(|a| format!("{a}.{k}"));
    let n_layer = akey("block_count")
        .and_then(|k| f.get(&k))
        .and_then(Value::as_u64);
    for (k, v) in &f.metadata {
        if let Some((_, w)) = GENERAL_KEYS.iter().find(|(n, _)| n == k) {
            check_type(f, k, v, *w, n_layer, out);
        } else if let Some(rest) = k
            .strip_prefix("tokenizer.ggml.")
            .and_then(|r| r.strip_suffix("_token_id"))
            && TOKEN_ID_KEYS.contains(&rest)
        {
            check_type(f, k, v, Want::Scalar(ValueType::U32), n_layer, out);
        } else if let Some(a) = arch
            && let Some(rest) = k.strip_prefix(a).and_then(|r| r.strip_prefix('.'))
        {
            if let Some((_, w)) = ARCH_KEYS.iter().find(|(n, _)| *n == rest) {
                check_type(f, k, v, *w, n_layer, out);
            } else if rest == "rope.dimension_sections" {
                match v {
                    Value::Array(a) if is_int_type(a.element_type()) => {
                        if a.len() != 4 {
                            out.push(find(
                                f.path(),
                                None,
                                Some(k),
                                format!(
                                    "has wrong array length: {} entries, llama.cpp expects 4",
                                    a.len()
                                ),
                            ));
                        }
                    }
                    _ => out.push(find(
                        f.path(),
                        None,
                        Some(k),
                        format!(
                            "is {}, llama.cpp expects an array of 4 integers",
                            type_desc(v)
                        ),
                    )),
                }
            }
        }
    }
    match (f.get("general.architecture"), arch) {
        (None, _) => out.push(find(
            f.path(),
            None,
            Some("general.architecture"),
            "is missing; llama.cpp cannot load the file without it".into(),
        )),
        (Some(_), Some(a)) if NEEDS_ROPE_SECTIONS.contains(&a) => {
            let k = format!("{a}.rope.dimension_sections");
            if f.get(&k).is_none() {
                out.push(find(
                    f.path(),
                    None,
                    Some(&k),
                    format!("is missing; llama.cpp's {a} loader requires it"),
                ));
            }
        }
        _ => {}
    }
    check_tokenizer(f, out);
}

fn check_tokenizer(f: &GgufFile, out: &mut Vec<Finding>) {
    let arr_len = |k: &str| match f.get(k) {
        Some(Value::Array(a)) => Some(a.len()),
        _ => None,
    };
    let Some(n_tokens) = arr_len("tokenizer.ggml.tokens") else {
        return;
    };
    for k in ["tokenizer.ggml.scores", "tokenizer.ggml.token_type"] {
        if let Some(n) = arr_len(k)
            && n != n_tokens
        {
            out.push(find(
                f.path(),
                None,
                Some(k),
                format!("has {n} entries, tokenizer.ggml.tokens has {n_tokens}"),
            ));
        }
    }
    for id in TOKEN_ID_KEYS {
        let k = format!("tokenizer.ggml.{id}_token_id");
        if let Some(v) = f.get(&k).and_then(Value::as_u64)
            && v >= n_tokens as u64
            // llama.cpp reads these as u32; -1 written as u32 is "none" in some converters
            && v != u64::from(u32::MAX)
        {
            out.push(find(
                f.path(),
                None,
                Some(&k),
                format!("is {v}, outside the vocabulary of {n_tokens} tokens"),
            ));
        }
    }
    if let Some(Value::Array(Array::I32(types))) = f.get("tokenizer.ggml.token_type")
        && let Some((i, t)) = types
            .iter()
            .enumerate()
            .find(|(_, t)| !(0..=6).contains(*t))
    {
        out.push(find(
            f.path(),
            None,
            Some("tokenizer.ggml.token_type"),
            format!("entry {i} is {t}, not a llama_token_type (0..6)"),
        ));
    }
    if let Some(Value::String(m)) = f.get("tokenizer.ggml.model")
        && m == "gpt2"
        && arr_len("tokenizer.ggml.merges").unwrap_or(0) == 0
    {
        out.push(find(
            f.path(),
            None,
            Some("tokenizer.ggml.merges"),
            "is missing or empty; llama.cpp refuses a gpt2 vocabulary without merges".into(),
        ));
    }
}

// ---------------------------------------------------------------- shapes

/// Architectures whose tensor shapes are checked (those gpuq converts from Hugging Face).
const SHAPED_ARCHS: &[&str] = &["llama", "qwen2", "qwen3", "bitnet"];

/// Hyper-parameters of a dense decoder, as llama.cpp's `llm_load_hparams` derives them.
struct Hparams {
    n_layer: u64,
    n_embd: u64,
    n_ff: Option<u64>,
    n_head: u64,
    n_head_kv: u64,
    head_k: u64,
    head_v: u64,
    n_vocab: Option<u64>,
    n_rot: Option<u64>,
}

fn hparams(f: &GgufFile, arch: &str) -> Option<Hparams> {
    let u = |k: &str| match f.get(&format!("{arch}.{k}")) {
        Some(Value::U32(x)) => Some(u64::from(*x)),
        _ => None,
    };
    let n_layer = u("block_count")?;
    let n_embd = u("embedding_length")?;
    let n_head = u("attention.head_count")?.max(1);
    let n_head_kv = u("attention.head_count_kv").unwrap_or(n_head);
    let head_k = u("attention.key_length").unwrap_or(n_embd / n_head);
    let head_v = u("attention.value_length").unwrap_or(n_embd / n_head);
    let n_vocab = match f.get("tokenizer.ggml.tokens") {
        Some(Value::Array(a)) => Some(a.len() as u64),
        _ => u("vocab_size"),
    };
    Some(Hparams {
        n_layer,
        n_embd,
        n_ff: u("feed_forward_length"),
        n_head,
        n_head_kv,
        head_k,
        head_v,
        n_vocab,
        n_rot: u("rope.dimension_count"),
    })
}

/// The shape llama.cpp's `create_tensor` expects for a tensor of a dense llama / qwen2 /
/// qwen3 / bitnet model (src/llama-model.cpp), when the hyper-parameters fix it.
fn expected_shape(h: &Hparams, base: &str, suffix: &str) -> Option<Vec<u64>> {
    let (e, q, kv, qv, kvv) = (
        h.n_embd,
        h.n_head * h.head_k,
        h.n_head_kv * h.head_k,
        h.n_head * h.head_v,
        h.n_head_kv * h.head_v,
    );
    let w = suffix == "weight";
    // other suffixes (bitnet's `attn_q.scale`, shape [1]) are not described here
    if !w && suffix != "bias" {
        return None;
    }
    Some(match base {
        "token_embd" | "output" if w => vec![e, h.n_vocab?],
        "output_norm" | "attn_norm" | "ffn_norm" | "attn_sub_norm" => vec![e],
        "attn_q" if w => vec![e, q],
        "attn_k" if w => vec![e, kv],
        "attn_v" if w => vec![e, kvv],
        "attn_output" if w => vec![qv, e],
        "attn_q" => vec![q],
        "attn_k" => vec![kv],
        "attn_v" => vec![kvv],
        "attn_output" => vec![e],
        "attn_q_norm" | "attn_k_norm" => vec![h.head_k],
        "ffn_gate" | "ffn_up" if w => vec![e, h.n_ff?],
        "ffn_down" if w => vec![h.n_ff?, e],
        "ffn_sub_norm" => vec![h.n_ff?],
        "rope_freqs" => vec![h.n_rot.unwrap_or(h.head_k) / 2],
        _ => return None,
    })
}

fn check_shapes(f: &GgufFile, all: &[(&GgufFile, &TensorInfo)], report: &mut Report) {
    let Some(Value::String(arch)) = f.get("general.architecture") else {
        return;
    };
    if !SHAPED_ARCHS.contains(&arch.as_str()) {
        return;
    }
    // MoE llama files (Mixtral) have expert tensors this table does not describe
    if f.get(&format!("{arch}.expert_count"))
        .and_then(Value::as_u64)
        .unwrap_or(0)
        > 0
    {
        return;
    }
    let Some(h) = hparams(f, arch) else {
        return;
    };
    for (tf, t) in all {
        let (layer, rest) = match t.name.strip_prefix("blk.") {
            Some(r) => match r.split_once('.') {
                Some((n, rest)) => (n.parse::<u64>().ok(), rest),
                None => (None, r),
            },
            None => (None, t.name.as_str()),
        };
        if let Some(l) = layer
            && l >= h.n_layer
        {
            report.findings.push(find(
                tf.path(),
                Some(&t.name),
                None,
                format!("layer {l} is past {arch}.block_count {}", h.n_layer),
            ));
            continue;
        }
        let Some((base, suffix)) = rest.rsplit_once('.') else {
            continue;
        };
        let Some(want) = expected_shape(&h, base, suffix) else {
            continue;
        };
        // llama.cpp's check ignores trailing dims of 1 (a 1-D norm may be written as [n, 1])
        let trim = |d: &[u64]| -> Vec<u64> {
            let mut v = d.to_vec();
            while v.len() > 1 && v.last() == Some(&1) {
                v.pop();
            }
            v
        };
        if trim(&t.dims) != trim(&want) {
            report.findings.push(find(
                tf.path(),
                Some(&t.name),
                None,
                format!(
                    "shape {:?}, the {arch} hyper-parameters give {:?}",
                    t.dims, want
                ),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_at_the_offsets_of_the_block_structs() {
        // a NaN f16 at each listed offset is found; at any other offset it is not
        for ty in [
            GgmlType::Q4_0,
            GgmlType::Q4_1,
            GgmlType::Q2_K,
            GgmlType::Q3_K,
            GgmlType::Q4_K,
            GgmlType::Q6_K,
            GgmlType::TQ1_0,
            GgmlType::TQ2_0,
        ] {
            let bb = ty.block_bytes() as usize;
            let offs = f16_scale_offsets(ty);
            for &o in offs {
                let mut b = vec![0u8; bb * 3];
                b[bb + o..bb + o + 2].copy_from_slice(&0x7e00u16.to_le_bytes());
                let bad = validate_blocks(ty, &b, 0);
                assert_eq!(
                    (bad.count, bad.first.map(|f| f.0)),
                    (1, Some(1)),
                    "{ty} {o}"
                );
            }
            assert!(offs.iter().all(|&o| o + 2 <= bb));
        }
    }

    #[test]
    fn shapes_of_a_dense_decoder() {
        let h = Hparams {
            n_layer: 2,
            n_embd: 64,
            n_ff: Some(160),
            n_head: 4,
            n_head_kv: 2,
            head_k: 16,
            head_v: 16,
            n_vocab: Some(100),
            n_rot: None,
        };
        assert_eq!(expected_shape(&h, "attn_k", "weight"), Some(vec![64, 32]));
        assert_eq!(expected_shape(&h, "attn_k", "bias"), Some(vec![32]));
        assert_eq!(
            expected_shape(&h, "ffn_down", "weight"),
            Some(vec![160, 64])
        );
        assert_eq!(expected_shape(&h, "output", "weight"), Some(vec![64, 100]));
        assert_eq!(expected_shape(&h, "rope_freqs", "weight"), Some(vec![8]));
        // bitnet.cpp's per-tensor scales and unknown tensors are not judged
        assert_eq!(expected_shape(&h, "attn_q", "scale"), None);
        assert_eq!(expected_shape(&h, "ffn_gate_inp", "weight"), None);
    }

    #[test]
    fn floats_count_nan_and_inf() {
        let mut b = Vec::new();
        for x in [1.0f32, f32::NAN, 2.0, f32::INFINITY] {
            b.extend_from_slice(&x.to_le_bytes());
        }
        let bad = validate_blocks(GgmlType::F32, &b, 0);
        assert_eq!(bad.count, 2);
        assert_eq!(bad.first.unwrap(), (1, "nan value".to_string()));
        let bf = [0x7f80u16, 0x7fc1, 0x3f80, 0xff80];
        let b: Vec<u8> = bf.iter().flat_map(|h| h.to_le_bytes()).collect();
        assert_eq!(validate_blocks(GgmlType::BF16, &b, 0).count, 3);
    }
}
