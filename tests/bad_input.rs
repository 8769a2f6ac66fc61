//! Files that lie: `gpuq inspect` must exit with code 2, name the file and what is wrong, and
//! never panic.

mod common;

use common::{gpuq, rng};
use gpuq::GgmlType;
use gpuq::formats::gguf::writer::encode_value;
use gpuq::formats::gguf::{Array, GgufFile, GgufWriter, TensorSpec, Value};
use rand::Rng;
use std::path::Path;

/// Runs `gpuq inspect` on `path` (text and --json) and checks it failed cleanly, with a
/// message naming the file and holding one of `any_of`. Returns stderr.
fn expect_failure(path: &Path, any_of: &[&str]) -> String {
    let mut first = String::new();
    for json in [false, true] {
        let mut cmd = gpuq();
        cmd.arg("inspect").arg(path);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let name = path.file_name().unwrap().to_string_lossy();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{name}: exit status; stderr: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        assert!(stderr.starts_with("gpuq: error: "), "{name}: {stderr}");
        assert!(
            stderr.contains(name.as_ref()),
            "{name}: file not named in: {stderr}"
        );
        assert!(
            any_of.iter().any(|n| stderr.contains(n)),
            "{name}: expected one of {any_of:?} in: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{name}: printed a partial report");
        first = stderr;
    }
    first
}

/// A valid GGUF and the byte offsets of its parts.
struct Fixture {
    bytes: Vec<u8>,
    /// Offset where each metadata entry starts (and, last, where the tensor infos start).
    kv_starts: Vec<usize>,
    /// Offset where each tensor info starts (and, last, where the infos end).
    info_starts: Vec<usize>,
    metadata: Vec<(String, Value)>,
    specs: Vec<TensorSpec>,
    data_offset: usize,
    /// Absolute (start, end) of each tensor's data.
    ranges: Vec<(usize, usize)>,
}

impl Fixture {
    fn new(dir: &Path) -> Fixture {
        let mut r = rng(11);
        let metadata: Vec<(String, Value)> = vec![
            (
                "a".into(),
                Value::Array(Array::U32((0..6).map(|_| r.random()).collect())),
            ),
            ("general.architecture".into(), Value::String("llama".into())),
            ("general.alignment".into(), Value::U32(64)),
            ("b".into(), Value::Bool(true)),
            (
                "s".into(),
                Value::Array(Array::String(vec!["x".into(), "yz".into()])),
            ),
        ];
        let specs = vec![
            TensorSpec {
                name: "t0".into(),
                ty: GgmlType::F32,
                dims: vec![8, 4],
            },
            TensorSpec {
                name: "t1".into(),
                ty: GgmlType::Q8_0,
                dims: vec![64, 2],
            },
            TensorSpec {
                name: "t2".into(),
                ty: GgmlType::F16,
                dims: vec![16, 3],
            },
        ];
        let path = dir.join("valid.gguf");
        let mut w = GgufWriter::create(&path, &metadata, &specs).unwrap();
        let total: u64 = w.tensors().iter().map(|t| t.size).sum();
        let data: Vec<u8> = (0..total).map(|_| r.random()).collect();
        w.write_next(&data).unwrap();
        w.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let g = GgufFile::open(&path).unwrap();

        let mut kv_starts = vec![24];
        for (k, v) in &metadata {
            let last = *kv_starts.last().unwrap();
            kv_starts.push(last + 8 + k.len() + encode_value(v).len());
        }
        let mut info_starts = vec![*kv_starts.last().unwrap()];
        for s in &specs {
            let last = *info_starts.last().unwrap();
            info_starts.push(last + 8 + s.name.len() + 4 + 8 * s.dims.len() + 4 + 8);
        }
        let data_offset = g.data_offset as usize;
        assert_eq!(data_offset, info_starts.last().unwrap().div_ceil(64) * 64);
        let ranges = g
            .tensors
            .iter()
            .map(|t| {
                let s = data_offset + t.offset as usize;
                (s, s + t.size as usize)
            })
            .collect();
        Fixture {
            bytes,
            kv_starts,
            info_starts,
            metadata,
            specs,
            data_offset,
            ranges,
        }
    }

    /// Offset of a field of tensor info `i`.
    fn info_field(&self, i: usize, field: &str) -> usize {
        let s = self.info_starts[i];
        let nl = self.specs[i].name.len();
        let nd = self.specs[i].dims.len();
        match field {
            "name_len" => s,
            "name" => s + 8,
            "n_dims" => s + 8 + nl,
            "dims" => s + 12 + nl,
            "type" => s + 12 + nl + 8 * nd,
            "offset" => s + 16 + nl + 8 * nd,
            _ => unreachable!(),
        }
    }

    /// Offset of the value of metadata entry `i` (after key and type id).
    fn kv_value(&self, i: usize) -> usize {
        self.kv_starts[i] + 8 + self.metadata[i].0.len() + 4
    }
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn get_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

#[test]
fn truncated_gguf_at_every_section_boundary_and_random_points() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::new(dir.path());
    let last_end = f.ranges.last().unwrap().1;
    let mut cuts: Vec<usize> = vec![0, 2, 4, 8, 16];
    cuts.extend(&f.kv_starts);
    cuts.extend(&f.info_starts);
    cuts.extend([f.data_offset - 1, f.data_offset]);
    for &(s, e) in &f.ranges {
        cuts.extend([s, s + 1, e - 1]);
    }
    let mut r = rng(12);
    cuts.extend((0..12).map(|_| r.random_range(0..last_end)));
    cuts.sort();
    cuts.dedup();
    for cut in cuts {
        assert!(cut < last_end);
        let p = dir.path().join(format!("cut_{cut}.gguf"));
        std::fs::write(&p, &f.bytes[..cut]).unwrap();
        expect_failure(
            &p,
            &["truncated", "past the end of the file", "larger than"],
        );
    }
    // Cut just after the last tensor's bytes (before its padding): still a complete file.
    let p = dir.path().join("cut_padding.gguf");
    std::fs::write(&p, &f.bytes[..last_end]).unwrap();
    assert!(gpuq().arg("inspect").arg(&p).status().unwrap().success());
}

#[test]
fn gguf_lies() {
    let dir = tempfile::tempdir().unwrap();
    let f = Fixture::new(dir.path());
    let valid = dir.path().join("valid.gguf");
    assert!(
        gpuq()
            .arg("inspect")
            .arg(&valid)
            .status()
            .unwrap()
            .success()
    );

    type Patch<'a> = Box<dyn Fn(&mut Vec<u8>) + 'a>;
    let off = |i, field| f.info_field(i, field);
    let t0_off = get_u64(&f.bytes, off(0, "offset"));
    let t1_off = get_u64(&f.bytes, off(1, "offset"));
    let cases: Vec<(&str, Patch<'_>, Vec<&str>)> = vec![
        ("magic", Box::new(|b| b[0] = b'X'), vec!["not a GGUF file"]),
        (
            "version",
            Box::new(|b| put_u32(b, 4, 7)),
            vec!["unsupported GGUF version 7"],
        ),
        (
            "tensor_count",
            Box::new(|b| put_u64(b, 8, 1 << 40)),
            vec!["tensor count 1099511627776", "larger than the file"],
        ),
        (
            "tensor_count_max",
            Box::new(|b| put_u64(b, 8, u64::MAX)),
            vec!["tensor count"],
        ),
        (
            "kv_count",
            Box::new(|b| put_u64(b, 16, 1 << 40)),
            vec!["metadata count"],
        ),
        (
            "key_len",
            Box::new(|b| put_u64(b, 24, 1 << 40)),
            vec!["metadata key #0", "string length 1099511627776"],
        ),
        (
            "array_count",
            Box::new(|b| put_u64(b, 24 + 8 + 1 + 4 + 4, 1 << 40)),
            vec!["'a'", "array of 1099511627776 u32"],
        ),
        (
            "array_count_max",
            Box::new(|b| put_u64(b, 24 + 8 + 1 + 4 + 4, u64::MAX)),
            vec!["'a'", "array of"],
        ),
        (
            "string_in_array_len",
            Box::new(|b| put_u64(b, f.kv_value(4) + 12, u64::MAX - 3)),
            vec!["'s'", "string length"],
        ),
        (
            "value_type",
            Box::new(|b| put_u32(b, f.kv_value(0) - 4, 13)),
            vec!["'a'", "unknown value type id 13"],
        ),
        (
            "bool_byte",
            Box::new(|b| b[f.kv_value(3)] = 2),
            vec!["'b'", "bool byte is 2"],
        ),
        (
            "alignment",
            Box::new(|b| put_u32(b, f.kv_value(2), 48)),
            vec!["general.alignment is 48"],
        ),
        (
            "tensor_offset_past_end",
            Box::new(move |b| put_u64(b, off(2, "offset"), 1 << 20)),
            vec!["'t2'", "past the end of the file"],
        ),
        (
            "tensor_offset_huge",
            Box::new(move |b| put_u64(b, off(2, "offset"), u64::MAX - 63)),
            vec!["'t2'", "past the end of the file"],
        ),
        (
            "tensor_size_past_end",
            Box::new(move |b| put_u64(b, off(2, "dims") + 8, 1000)),
            vec!["'t2'", "past the end of the file"],
        ),
        (
            "overlap",
            Box::new(move |b| put_u64(b, off(1, "offset"), t0_off)),
            vec!["'t0' and 't1' overlap"],
        ),
        (
            "unknown_type",
            Box::new(move |b| put_u32(b, off(1, "type"), 100)),
            vec!["'t1'", "unknown ggml type id 100"],
        ),
        (
            "shape_overflow",
            Box::new(move |b| {
                put_u64(b, off(0, "dims"), 1 << 33);
                put_u64(b, off(0, "dims") + 8, 1 << 33);
            }),
            vec!["'t0'", "overflows u64 (element count)"],
        ),
        (
            "bytes_overflow",
            Box::new(move |b| {
                put_u64(b, off(0, "dims"), 1 << 32);
                put_u64(b, off(0, "dims") + 8, 1 << 31);
            }),
            vec!["'t0'", "overflows u64 (byte size)"],
        ),
        (
            "misaligned",
            Box::new(move |b| put_u64(b, off(1, "offset"), t1_off + 32)),
            vec!["'t1'", "not a multiple of the alignment 64"],
        ),
        (
            "too_many_dims",
            Box::new(move |b| put_u32(b, off(0, "n_dims"), 5)),
            vec!["'t0'", "5 dimensions"],
        ),
        (
            "not_block_multiple",
            Box::new(move |b| put_u64(b, off(1, "dims"), 48)),
            vec!["'t1'", "not a multiple of Q8_0's block of 32"],
        ),
        (
            "duplicate_tensor",
            Box::new(move |b| b[off(1, "name") + 1] = b'0'),
            vec!["'t0' appears twice"],
        ),
        (
            "invalid_utf8",
            Box::new(move |b| b[off(2, "name")] = 0xff),
            vec!["not valid UTF-8"],
        ),
    ];
    for (label, patch, needles) in cases {
        let mut b = f.bytes.clone();
        patch(&mut b);
        let p = dir.path().join(format!("lie_{label}.gguf"));
        std::fs::write(&p, &b).unwrap();
        let stderr = expect_failure(&p, &[needles[0]]);
        for n in &needles {
            assert!(stderr.contains(n), "{label}: expected {n:?} in: {stderr}");
        }
    }
}

/// A safetensors file from a header JSON and data bytes.
fn safetensors_bytes(header: &str, data_len: usize) -> Vec<u8> {
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header.as_bytes());
    let mut r = rng(13);
    b.extend((0..data_len).map(|_| r.random::<u8>()));
    b
}

#[test]
fn safetensors_lies() {
    let dir = tempfile::tempdir().unwrap();
    let ok = r#"{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"BF16","shape":[4],"data_offsets":[16,24]}}"#;
    let p = dir.path().join("ok.safetensors");
    std::fs::write(&p, safetensors_bytes(ok, 24)).unwrap();
    assert!(gpuq().arg("inspect").arg(&p).status().unwrap().success());

    let cases: &[(&str, Vec<u8>, &[&str])] = &[
        ("short", vec![1, 2, 3], &["too short"]),
        (
            "header_len",
            {
                let mut b = safetensors_bytes(ok, 24);
                b[..8].copy_from_slice(&(1u64 << 50).to_le_bytes());
                b
            },
            &["header length 1125899906842624 is larger"],
        ),
        (
            "json",
            safetensors_bytes("{\"a\": [", 8),
            &["not valid JSON"],
        ),
        (
            "out_of_range",
            safetensors_bytes(
                r#"{"a":{"dtype":"F32","shape":[250],"data_offsets":[0,1000]}}"#,
                64,
            ),
            &["'a'", "past the end of the data (64 bytes)"],
        ),
        (
            "overlap",
            safetensors_bytes(
                r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}"#,
                24,
            ),
            &["'a' and 'b' overlap"],
        ),
        (
            "size_mismatch",
            safetensors_bytes(
                r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,12]}}"#,
                16,
            ),
            &["'a'", "span 12 bytes but F32 [4] needs 16"],
        ),
        (
            "reversed",
            safetensors_bytes(
                r#"{"a":{"dtype":"U8","shape":[0],"data_offsets":[8,4]}}"#,
                16,
            ),
            &["'a'", "end before they begin"],
        ),
        (
            "dtype",
            safetensors_bytes(
                r#"{"a":{"dtype":"F12","shape":[4],"data_offsets":[0,8]}}"#,
                8,
            ),
            &["'a'", "unknown dtype 'F12'"],
        ),
        (
            "shape_overflow",
            safetensors_bytes(
                r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#,
                8,
            ),
            &["'a'", "overflows"],
        ),
        (
            "offsets_not_pair",
            safetensors_bytes(r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}}"#, 8),
            &["'a'", "[begin, end]"],
        ),
    ];
    for (label, bytes, needles) in cases {
        let p = dir.path().join(format!("lie_{label}.safetensors"));
        std::fs::write(&p, bytes).unwrap();
        let stderr = expect_failure(&p, &[needles[0]]);
        for n in *needles {
            assert!(stderr.contains(n), "{label}: expected {n:?} in: {stderr}");
        }
    }
}

#[test]
fn sharded_index_lies() {
    let dir = tempfile::tempdir().unwrap();
    let shard = r#"{"a":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}}"#;

    // The index names a shard that is not there.
    let m = dir.path().join("missing");
    std::fs::create_dir(&m).unwrap();
    std::fs::write(
        m.join("model-00001-of-00002.safetensors"),
        safetensors_bytes(shard, 8),
    )
    .unwrap();
    std::fs::write(
        m.join("model.safetensors.index.json"),
        r#"{"metadata":{},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}"#,
    )
    .unwrap();
    let e = expect_failure(&m, &["model-00002-of-00002.safetensors"]);
    assert!(
        e.contains("model.safetensors.index.json") && e.contains("does not exist"),
        "{e}"
    );
    assert!(e.contains("'b'"), "{e}");

    // The index puts a tensor in a shard that lacks it.
    let n = dir.path().join("lacking");
    std::fs::create_dir(&n).unwrap();
    std::fs::write(n.join("s1.safetensors"), safetensors_bytes(shard, 8)).unwrap();
    std::fs::write(
        n.join("model.safetensors.index.json"),
        r#"{"weight_map":{"a":"s1.safetensors","c":"s1.safetensors"}}"#,
    )
    .unwrap();
    let e = expect_failure(&n, &["s1.safetensors"]);
    assert!(e.contains("'c'") && e.contains("not there"), "{e}");

    // A shard name that leaves the folder; an index without a weight map; a broken shard.
    let o = dir.path().join("outside");
    std::fs::create_dir(&o).unwrap();
    std::fs::write(
        o.join("model.safetensors.index.json"),
        r#"{"weight_map":{"a":"../x.safetensors"}}"#,
    )
    .unwrap();
    expect_failure(&o, &["not a file name in the index's folder"]);
    std::fs::write(o.join("model.safetensors.index.json"), r#"{"weights":{}}"#).unwrap();
    expect_failure(&o, &["no \"weight_map\""]);
    std::fs::write(
        o.join("model.safetensors.index.json"),
        r#"{"weight_map":{"a":"bad.safetensors"}}"#,
    )
    .unwrap();
    std::fs::write(o.join("bad.safetensors"), [7u8; 5]).unwrap();
    expect_failure(&o, &["bad.safetensors: 5 bytes is too short"]);

    // A folder with no weights at all; a config.json that is not JSON.
    let e = dir.path().join("empty");
    std::fs::create_dir(&e).unwrap();
    expect_failure(&e, &["no model.safetensors.index.json"]);
    std::fs::write(e.join("model.safetensors"), safetensors_bytes(shard, 8)).unwrap();
    std::fs::write(e.join("config.json"), "{not json").unwrap();
    expect_failure(&e, &["config.json: not valid JSON"]);
}
