//! GGUF interoperability with gguf-py (PyPI `gguf`): files written by `GGUFWriter` are read by
//! gpuq with the same metadata and bytes, rewritten byte-identically; files written by gpuq
//! are read back by `GGUFReader` with what was written.

mod common;

use common::{gpuq, python, rng};
use gpuq::GgmlType;
use gpuq::formats::gguf::output::leftover_tmp_files;
use gpuq::formats::gguf::{Array, GgufFile, GgufWriter, TensorSpec, Value};
use rand::Rng;
use rand::seq::SliceRandom;
use serde_json::{Value as J, json};
use std::path::Path;

/// Python helpers shared by the scripts: a typed JSON form of metadata values
/// (`{"t": type, "v": value}`, arrays `{"t": "array", "e": element type, "v": [typed...]}`);
/// floats as their bit patterns, so the comparison is exact.
const PY_COMMON: &str = r#"
import sys, json
import numpy as np
import gguf
from gguf import GGUFValueType as T
NAMES = {T.UINT8: 'u8', T.INT8: 'i8', T.UINT16: 'u16', T.INT16: 'i16', T.UINT32: 'u32',
         T.INT32: 'i32', T.FLOAT32: 'f32', T.BOOL: 'bool', T.STRING: 'string', T.ARRAY: 'array',
         T.UINT64: 'u64', T.INT64: 'i64', T.FLOAT64: 'f64'}
def scalar(t, x):
    if t == T.BOOL: return bool(x)
    if t == T.FLOAT32: return int(np.array([x], dtype=np.float32).view(np.uint32)[0])
    if t == T.FLOAT64: return int(np.array([x], dtype=np.float64).view(np.uint64)[0])
    return int(x)
"#;

/// Writes a GGUF with gguf-py: every value type, nested arrays, alignment 64, F32/F16/Q8_0
/// tensors of 1 to 4 dims from seeded random data. Prints what it wrote as typed JSON.
const PY_WRITE: &str = r#"
out, seed = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(seed)
def typed_w(val, vt, sub=None):
    if vt == T.ARRAY:
        if sub is None:
            sub = T.UINT8 if isinstance(val, bytes) else T.get_type(val[0])
        return {'t': 'array', 'e': NAMES[sub], 'v': [typed_w(x, sub) for x in val]}
    if vt == T.STRING:
        return {'t': 'string', 'v': val if isinstance(val, str) else val.decode()}
    return {'t': NAMES[vt], 'v': scalar(vt, val)}

w = gguf.GGUFWriter(out, 'llama')
w.add_custom_alignment(64)
kv = w.add_key_value
ri = lambda lo, hi: int(rng.integers(lo, hi))
kv('t.u8', ri(0, 256), T.UINT8)
kv('t.i8', ri(-128, 128), T.INT8)
kv('t.u16', ri(0, 65536), T.UINT16)
kv('t.i16', ri(-32768, 32768), T.INT16)
kv('t.u32', ri(0, 2**32), T.UINT32)
kv('t.i32', ri(-2**31, 2**31), T.INT32)
kv('t.f32', float(rng.normal()), T.FLOAT32)
kv('t.bool', bool(rng.integers(0, 2)), T.BOOL)
kv('t.string', 'h\u00e9llo \u2713 ' + str(ri(0, 10**9)), T.STRING)
kv('t.empty_string', '', T.STRING)
kv('t.u64', 2**63 + ri(0, 2**40), T.UINT64)
kv('t.i64', -2**62 - ri(0, 2**40), T.INT64)
kv('t.f64', float(rng.normal() * 1e100), T.FLOAT64)
n_tok = 1000
kv('tokenizer.ggml.tokens', ['<tok%d_%d>' % (i, ri(0, 1000)) for i in range(n_tok)], T.ARRAY, sub_type=T.STRING)
kv('tokenizer.ggml.scores', [float(x) for x in rng.normal(size=n_tok)], T.ARRAY, sub_type=T.FLOAT32)
kv('tokenizer.ggml.token_type', [ri(1, 7) for _ in range(n_tok)], T.ARRAY, sub_type=T.INT32)
kv('a.u8', [ri(0, 256) for _ in range(7)], T.ARRAY, sub_type=T.UINT8)
kv('a.i8', [ri(-128, 128) for _ in range(7)], T.ARRAY, sub_type=T.INT8)
kv('a.u16', [ri(0, 65536) for _ in range(5)], T.ARRAY, sub_type=T.UINT16)
kv('a.i16', [ri(-32768, 32768) for _ in range(5)], T.ARRAY, sub_type=T.INT16)
kv('a.u32', [ri(0, 2**32) for _ in range(3)], T.ARRAY, sub_type=T.UINT32)
kv('a.u64', [ri(0, 2**62) * 3 for _ in range(3)], T.ARRAY, sub_type=T.UINT64)
kv('a.i64', [-ri(0, 2**62) for _ in range(3)], T.ARRAY, sub_type=T.INT64)
kv('a.f64', [float(x) for x in rng.normal(size=4)], T.ARRAY, sub_type=T.FLOAT64)
kv('a.bool', [bool(x) for x in rng.integers(0, 2, size=9)], T.ARRAY, sub_type=T.BOOL)
kv('a.nested_i32', [[ri(-9, 9) for _ in range(n)] for n in (3, 1, 2)], T.ARRAY)
kv('a.nested_str', [['x%d' % ri(0, 99), 'y'], ['z']], T.ARRAY)
kv('a.nested2_f32', [[[0.5]], [[float(np.float32(rng.normal())), 2.5]]], T.ARRAY)

tensors = []
def add(name, arr, raw_dtype=None, ty=None, ne=None):
    w.add_tensor(name, arr, raw_dtype=raw_dtype)
    tensors.append({'name': name, 'type': ty, 'shape': ne, 'hex': arr.tobytes().hex()})
x = rng.standard_t(2, size=(7,)).astype(np.float32)
add('v.f32_1d', x, ty=0, ne=[7])
x = rng.normal(size=(3, 5)).astype(np.float16)
add('v.f16_2d', x, ty=1, ne=[5, 3])
rows = rng.normal(size=(3, 64)).astype(np.float32) * 10
q = gguf.quants.quantize(rows, gguf.GGMLQuantizationType.Q8_0)
add('v.q8_0_2d', q, raw_dtype=gguf.GGMLQuantizationType.Q8_0, ty=8, ne=[64, 3])
x = rng.uniform(-1, 1, size=(2, 3, 4)).astype(np.float32)
add('v.f32_3d', x, ty=0, ne=[4, 3, 2])
x = (rng.normal(size=(2, 1, 3, 6)) * 1e-3).astype(np.float16)
add('v.f16_4d', x, ty=1, ne=[6, 3, 1, 2])
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
md = [[k, typed_w(v.value, v.type, v.sub_type)] for k, v in w.kv_data[0].items()]
print(json.dumps({'metadata': md, 'tensors': tensors}))
"#;

/// Reads a GGUF with gguf-py's GGUFReader; prints its metadata (typed, decoded from the
/// reader's field parts so nested arrays keep their structure) and tensors.
const PY_READ: &str = r#"
def walk(parts, i, t):
    t = T(int(t))
    if t == T.STRING:
        return {'t': 'string', 'v': parts[i + 1].tobytes().decode('utf-8')}, i + 2
    if t == T.ARRAY:
        et = T(int(parts[i][0])); n = int(parts[i + 1][0]); i += 2; items = []
        for _ in range(n):
            v, i = walk(parts, i, et)
            items.append(v)
        return {'t': 'array', 'e': NAMES[et], 'v': items}, i
    return {'t': NAMES[t], 'v': scalar(t, parts[i][0])}, i + 1
r = gguf.GGUFReader(sys.argv[1])
md = []
for k, f in r.fields.items():
    if k.startswith('GGUF.'):
        continue
    v, end = walk(f.parts, 3, f.parts[2][0])
    assert end == len(f.parts), k
    md.append([k, v])
ts = [{'name': t.name, 'type': int(t.tensor_type), 'shape': [int(d) for d in t.shape],
       'hex': t.data.tobytes().hex()} for t in r.tensors]
print(json.dumps({'metadata': md, 'tensors': ts, 'alignment': int(r.alignment)}))
"#;

fn typed(v: &Value) -> J {
    match v {
        Value::Array(a) => typed_array(a),
        Value::F32(x) => json!({"t": "f32", "v": x.to_bits()}),
        Value::F64(x) => json!({"t": "f64", "v": x.to_bits()}),
        _ => json!({"t": v.value_type().name(), "v": v.to_json(None)}),
    }
}

fn typed_array(a: &Array) -> J {
    let items: Vec<J> = (0..a.len()).map(|i| typed(&a.get(i).unwrap())).collect();
    json!({"t": "array", "e": a.element_type().name(), "v": items})
}

fn metadata_json(md: &[(String, Value)]) -> J {
    J::Array(md.iter().map(|(k, v)| json!([k, typed(v)])).collect())
}

/// The path and values of the first place two JSON documents differ.
fn first_diff(a: &J, b: &J, at: &str) -> Option<String> {
    match (a, b) {
        (J::Array(x), J::Array(y)) => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                if let Some(d) = first_diff(p, q, &format!("{at}[{i}]")) {
                    return Some(d);
                }
            }
            (x.len() != y.len()).then(|| format!("{at}: lengths {} vs {}", x.len(), y.len()))
        }
        (J::Object(x), J::Object(y)) => {
            for (k, p) in x {
                match y.get(k) {
                    Some(q) => {
                        if let Some(d) = first_diff(p, q, &format!("{at}.{k}")) {
                            return Some(d);
                        }
                    }
                    None => return Some(format!("{at}.{k}: missing on the right")),
                }
            }
            (x.len() != y.len()).then(|| format!("{at}: keys {:?} vs {:?}", x.keys(), y.keys()))
        }
        _ => (a != b).then(|| format!("{at}: {a} vs {b}")),
    }
}

fn assert_json_eq(a: &J, b: &J) {
    if let Some(d) = first_diff(a, b, "") {
        panic!("JSON differs at {d}");
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn write_with_gguf_py(path: &Path, seed: u64) -> J {
    let script = format!("{PY_COMMON}{PY_WRITE}");
    let out = python(&script, &[path.to_str().unwrap(), &seed.to_string()]);
    serde_json::from_str(&out).unwrap()
}

fn read_with_gguf_py(path: &Path) -> J {
    let script = format!("{PY_COMMON}{PY_READ}");
    serde_json::from_str(&python(&script, &[path.to_str().unwrap()])).unwrap()
}

fn assert_tensors_match(g: &GgufFile, expected: &J) {
    let ts = expected.as_array().unwrap();
    assert_eq!(g.tensors.len(), ts.len());
    for (t, e) in g.tensors.iter().zip(ts) {
        assert_eq!(t.name, e["name"].as_str().unwrap());
        assert_eq!(
            u64::from(t.ty.id()),
            e["type"].as_u64().unwrap(),
            "{}",
            t.name
        );
        let shape: Vec<u64> = serde_json::from_value(e["shape"].clone()).unwrap();
        assert_eq!(t.dims, shape, "{}", t.name);
        assert_eq!(
            hex(g.tensor_data(t)),
            e["hex"].as_str().unwrap(),
            "{}",
            t.name
        );
        assert_eq!(t.offset % g.alignment, 0);
    }
}

#[test]
fn reads_gguf_py_file_and_rewrites_it_byte_identically() {
    let dir = tempfile::tempdir().unwrap();
    for seed in [1u64, 2] {
        let a = dir.path().join(format!("py{seed}.gguf"));
        let expected = write_with_gguf_py(&a, seed);
        let g = GgufFile::open(&a).unwrap();
        assert_eq!(g.version, 3);
        assert_eq!(g.alignment, 64);
        assert_eq!(g.data_offset % 64, 0);
        assert_json_eq(&metadata_json(&g.metadata), &expected["metadata"]);
        assert_eq!(g.get("general.alignment"), Some(&Value::U32(64)));
        assert_tensors_match(&g, &expected["tensors"]);
        // Element types of arrays survive: a nested array of arrays of i32.
        match g.get("a.nested_i32") {
            Some(Value::Array(Array::Array(inner))) => {
                assert!(inner.iter().all(|a| matches!(a, Array::I32(_))))
            }
            other => panic!("a.nested_i32 read as {other:?}"),
        }

        let b = dir.path().join(format!("copy{seed}.gguf"));
        GgufWriter::write_copy(&g, &b).unwrap();
        let (ab, bb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert_eq!(ab.len(), bb.len());
        assert!(ab == bb, "rewrite of the gguf-py file differs from it");
        assert!(leftover_tmp_files(&dir.path().join(format!("copy{seed}.gguf"))).is_empty());

        // Version 2 has the same layout.
        let mut v2 = ab.clone();
        v2[4..8].copy_from_slice(&2u32.to_le_bytes());
        let p2 = dir.path().join(format!("v2_{seed}.gguf"));
        std::fs::write(&p2, &v2).unwrap();
        let g2 = GgufFile::open(&p2).unwrap();
        assert_eq!(g2.version, 2);
        assert_eq!(g2.metadata, g.metadata);
        assert_eq!(g2.tensors, g.tensors);
    }
}

#[test]
fn inspect_describes_gguf_py_file() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("py.gguf");
    let expected = write_with_gguf_py(&a, 3);
    let out = gpuq().arg("inspect").arg(&a).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("[string; 1000] [\"<tok0_"), "{stdout}");
    assert!(stdout.contains(", ...]"));
    assert!(stdout.contains("alignment 64"));
    for t in expected["tensors"].as_array().unwrap() {
        assert!(stdout.contains(t["name"].as_str().unwrap()));
    }
    assert!(stdout.contains("total: 5 tensors"), "{stdout}");

    let out = gpuq()
        .arg("inspect")
        .arg("--json")
        .arg(&a)
        .output()
        .unwrap();
    assert!(out.status.success());
    let j: J = serde_json::from_slice(&out.stdout).unwrap();
    let g = GgufFile::open(&a).unwrap();
    assert_eq!(j["format"], "gguf");
    assert_eq!(j["alignment"], 64);
    assert_eq!(j["metadata"].as_array().unwrap().len(), g.metadata.len());
    let tok = &j["metadata"][g
        .metadata
        .iter()
        .position(|(k, _)| k == "tokenizer.ggml.tokens")
        .unwrap()];
    assert_eq!(tok["len"], 1000);
    assert_eq!(tok["element_type"], "string");
    let ts = j["tensors"].as_array().unwrap();
    assert_eq!(ts.len(), g.tensors.len());
    for (jt, t) in ts.iter().zip(&g.tensors) {
        assert_eq!(jt["name"], t.name.as_str());
        assert_eq!(jt["type"], t.ty.name());
        assert_eq!(jt["bytes"], t.size);
        assert_eq!(jt["offset"], g.data_offset + t.offset);
    }
    let params: u64 = g.tensors.iter().map(|t| t.n_elements()).sum();
    let bytes: u64 = g.tensors.iter().map(|t| t.size).sum();
    assert_eq!(j["totals"]["parameters"], params);
    assert_eq!(j["totals"]["bytes"], bytes);
    assert_eq!(j["totals"]["tensors"], 5);
}

/// Random metadata of every type, including empty and nested arrays.
fn random_metadata(r: &mut rand::rngs::StdRng) -> Vec<(String, Value)> {
    let s = |r: &mut rand::rngs::StdRng| format!("s{}\u{e9}", r.random::<u32>());
    vec![
        ("general.architecture".into(), Value::String("llama".into())),
        ("general.alignment".into(), Value::U32(128)),
        ("k.u8".into(), Value::U8(r.random())),
        ("k.i8".into(), Value::I8(r.random())),
        ("k.u16".into(), Value::U16(r.random())),
        ("k.i16".into(), Value::I16(r.random())),
        ("k.u32".into(), Value::U32(r.random())),
        ("k.i32".into(), Value::I32(r.random())),
        ("k.f32".into(), Value::F32(r.random::<f32>() - 0.5)),
        ("k.bool".into(), Value::Bool(r.random())),
        ("k.string".into(), Value::String(s(r))),
        ("k.u64".into(), Value::U64(r.random())),
        ("k.i64".into(), Value::I64(r.random())),
        ("k.f64".into(), Value::F64(r.random::<f64>() * 1e-200)),
        (
            "k.a_u8".into(),
            Value::Array(Array::U8((0..5).map(|_| r.random()).collect())),
        ),
        (
            "k.a_i8".into(),
            Value::Array(Array::I8((0..5).map(|_| r.random()).collect())),
        ),
        (
            "k.a_u16".into(),
            Value::Array(Array::U16((0..5).map(|_| r.random()).collect())),
        ),
        (
            "k.a_i16".into(),
            Value::Array(Array::I16((0..5).map(|_| r.random()).collect())),
        ),
        (
            "k.a_u32".into(),
            Value::Array(Array::U32((0..5).map(|_| r.random()).collect())),
        ),
        (
            "k.a_i32".into(),
            Value::Array(Array::I32((0..5).map(|_| r.random()).collect())),
        ),
        (
            "k.a_f32".into(),
            Value::Array(Array::F32((0..5).map(|_| r.random()).collect())),
        ),
        (
            "k.a_bool".into(),
            Value::Array(Array::Bool((0..5).map(|_| r.random()).collect())),
        ),
        (
            "k.a_str".into(),
            Value::Array(Array::String((0..300).map(|_| s(r)).collect())),
        ),
        (
            "k.a_u64".into(),
            Value::Array(Array::U64((0..5).map(|_| r.random()).collect())),
        ),
        (
            "k.a_i64".into(),
            Value::Array(Array::I64((0..5).map(|_| r.random()).collect())),
        ),
        (
            "k.a_f64".into(),
            Value::Array(Array::F64((0..5).map(|_| r.random()).collect())),
        ),
        ("k.a_empty_str".into(), Value::Array(Array::String(vec![]))),
        (
            "k.a_nested".into(),
            Value::Array(Array::Array(vec![
                Array::I64(vec![r.random(), r.random()]),
                Array::String(vec![s(r)]),
                Array::Array(vec![Array::F32(vec![r.random()])]),
            ])),
        ),
    ]
}

#[test]
fn gguf_py_reads_what_gpuq_writes_in_parallel_tiles() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gpuq.gguf");
    let mut r = rng(7);
    let metadata = random_metadata(&mut r);
    let specs = vec![
        TensorSpec {
            name: "t.f32_1d".into(),
            ty: GgmlType::F32,
            dims: vec![33],
        },
        TensorSpec {
            name: "t.f16_2d".into(),
            ty: GgmlType::F16,
            dims: vec![10, 7],
        },
        TensorSpec {
            name: "t.q8_0_3d".into(),
            ty: GgmlType::Q8_0,
            dims: vec![64, 5, 3],
        },
        TensorSpec {
            name: "t.q4_k_2d".into(),
            ty: GgmlType::Q4_K,
            dims: vec![256, 9],
        },
        TensorSpec {
            name: "t.bf16_4d".into(),
            ty: GgmlType::BF16,
            dims: vec![4, 3, 2, 2],
        },
        TensorSpec {
            name: "t.empty".into(),
            ty: GgmlType::F32,
            dims: vec![0, 4],
        },
    ];
    let w = GgufWriter::create(&path, &metadata, &specs).unwrap();
    assert!(w.tmp_path().exists());
    assert_eq!(leftover_tmp_files(&path), vec![w.tmp_path().to_path_buf()]);
    let data: Vec<Vec<u8>> = w
        .tensors()
        .iter()
        .map(|t| (0..t.size).map(|_| r.random::<u8>()).collect())
        .collect();
    // Tiles of uneven size, written in random order by four threads.
    let mut tiles = Vec::new();
    for (i, d) in data.iter().enumerate() {
        let mut off = 0;
        while off < d.len() {
            let n = r.random_range(1..=40).min(d.len() - off);
            tiles.push((i, off, n));
            off += n;
        }
    }
    tiles.shuffle(&mut r);
    std::thread::scope(|s| {
        for part in tiles.chunks(tiles.len().div_ceil(4)) {
            let (w, data) = (&w, &data);
            s.spawn(move || {
                for &(i, off, n) in part {
                    w.write_at(i, off as u64, &data[i][off..off + n]).unwrap();
                }
            });
        }
    });
    assert!(!path.exists(), "final name must appear only at finish");
    w.finish().unwrap();
    assert!(leftover_tmp_files(&path).is_empty());

    let g = GgufFile::open(&path).unwrap();
    assert_eq!(g.alignment, 128);
    assert_eq!(g.metadata, metadata);
    for (t, d) in g.tensors.iter().zip(&data) {
        assert_eq!(g.tensor_data(t), d.as_slice(), "{}", t.name);
    }

    let py = read_with_gguf_py(&path);
    assert_eq!(py["alignment"], 128);
    assert_json_eq(&py["metadata"], &metadata_json(&metadata));
    let ts = py["tensors"].as_array().unwrap();
    assert_eq!(ts.len(), specs.len());
    for ((jt, s), d) in ts.iter().zip(&specs).zip(&data) {
        assert_eq!(jt["name"], s.name.as_str());
        assert_eq!(jt["type"], s.ty.id());
        let shape: Vec<u64> = serde_json::from_value(jt["shape"].clone()).unwrap();
        assert_eq!(shape, s.dims);
        assert_eq!(jt["hex"].as_str().unwrap(), hex(d), "{}", s.name);
    }
}

#[test]
fn writer_checks_every_byte_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.gguf");
    let specs = vec![
        TensorSpec {
            name: "a".into(),
            ty: GgmlType::F32,
            dims: vec![8, 2],
        },
        TensorSpec {
            name: "b".into(),
            ty: GgmlType::Q8_0,
            dims: vec![32],
        },
    ];
    let md = vec![(
        "general.architecture".to_string(),
        Value::String("x".into()),
    )];

    // Dropped before finish: the temp file goes away, the final name never appears.
    let mut w = GgufWriter::create(&path, &md, &specs).unwrap();
    w.write_next(&[1u8; 20]).unwrap();
    drop(w);
    assert!(leftover_tmp_files(&path).is_empty() && !path.exists());

    // Missing bytes are reported at finish, naming the tensor.
    let w = GgufWriter::create(&path, &md, &specs).unwrap();
    w.write_at(0, 0, &[3u8; 64]).unwrap();
    w.write_at(1, 0, &[3u8; 33]).unwrap();
    let e = w.finish().unwrap_err().to_string();
    assert!(e.contains("'b'") && e.contains("33 of 34"), "{e}");
    assert!(leftover_tmp_files(&path).is_empty() && !path.exists());

    // Overlapping and out-of-range writes are refused.
    let w = GgufWriter::create(&path, &md, &specs).unwrap();
    w.write_at(0, 8, &[1u8; 8]).unwrap();
    let e = w.write_at(0, 12, &[1u8; 8]).unwrap_err().to_string();
    assert!(e.contains("overlaps"), "{e}");
    let e = w.write_at(1, 30, &[1u8; 8]).unwrap_err().to_string();
    assert!(e.contains("past the end"), "{e}");
    assert!(w.write_at(2, 0, &[1]).is_err());
    drop(w);

    // Streamed writes span tensors; too many bytes are refused.
    let mut w = GgufWriter::create(&path, &md, &specs).unwrap();
    let bytes: Vec<u8> = (0..98u8).collect();
    w.write_next(&bytes[..50]).unwrap();
    w.write_next(&bytes[50..]).unwrap();
    assert!(w.write_next(&[0]).is_err());
    w.finish().unwrap();
    let g = GgufFile::open(&path).unwrap();
    assert_eq!(g.tensor_data(&g.tensors[0]), &bytes[..64]);
    assert_eq!(g.tensor_data(&g.tensors[1]), &bytes[64..]);
    // Padding after the last tensor, as gguf-py and llama.cpp write it.
    assert_eq!(g.file_len(), g.data_offset + 64 + 64);

    // Plans that cannot be written are refused before a file exists.
    let bad = [
        TensorSpec {
            name: "q".into(),
            ty: GgmlType::Q4_K,
            dims: vec![100],
        },
        TensorSpec {
            name: "o".into(),
            ty: GgmlType::F32,
            dims: vec![1 << 40, 1 << 40],
        },
        TensorSpec {
            name: "d".into(),
            ty: GgmlType::F32,
            dims: vec![1; 5],
        },
    ];
    for s in bad {
        let p = dir.path().join("bad.gguf");
        let e = GgufWriter::create(&p, &md, std::slice::from_ref(&s)).unwrap_err();
        assert!(e.to_string().contains(&format!("'{}'", s.name)), "{e}");
        assert!(leftover_tmp_files(&p).is_empty());
    }
    let md_bad = vec![("general.alignment".to_string(), Value::U32(48))];
    assert!(GgufWriter::create(dir.path().join("x.gguf"), &md_bad, &specs).is_err());
}
