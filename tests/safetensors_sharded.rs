//! A sharded Hugging Face folder written with the `safetensors` crate is read back tensor by
//! tensor (dtype, shape, bytes) and listed completely by `gpuq inspect`.

mod common;

use common::{Dist, gpuq, rng, sample};
use gpuq::formats::safetensors::{Dtype, SafetensorsError, SafetensorsModel};
use rand::Rng;
use safetensors::tensor::TensorView;
use std::collections::HashMap;
use std::path::Path;

struct Written {
    name: String,
    dtype: Dtype,
    shape: Vec<u64>,
    bytes: Vec<u8>,
    shard: String,
}

fn bytes_for(dtype: Dtype, n: usize, r: &mut rand::rngs::StdRng) -> Vec<u8> {
    let dists = Dist::all(32);
    let d = dists[r.random_range(0..dists.len())];
    let v = sample(d, n, r);
    match dtype {
        Dtype::F32 => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Dtype::F16 => v
            .iter()
            .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
            .collect(),
        Dtype::BF16 => v
            .iter()
            .flat_map(|x| half::bf16::from_f32(*x).to_le_bytes())
            .collect(),
        Dtype::I8 | Dtype::U8 => (0..n).map(|_| r.random::<u8>()).collect(),
        Dtype::I32 => (0..n * 4).map(|_| r.random::<u8>()).collect(),
        _ => unreachable!(),
    }
}

fn st_dtype(d: Dtype) -> safetensors::Dtype {
    match d {
        Dtype::F32 => safetensors::Dtype::F32,
        Dtype::F16 => safetensors::Dtype::F16,
        Dtype::BF16 => safetensors::Dtype::BF16,
        Dtype::I8 => safetensors::Dtype::I8,
        Dtype::U8 => safetensors::Dtype::U8,
        Dtype::I32 => safetensors::Dtype::I32,
        _ => unreachable!(),
    }
}

/// Writes three shards, an index and a config.json into `dir`.
fn write_folder(dir: &Path, seed: u64) -> Vec<Written> {
    let mut r = rng(seed);
    let plan: &[(&str, Dtype, &[u64], usize)] = &[
        ("model.embed_tokens.weight", Dtype::BF16, &[50, 16], 0),
        (
            "model.layers.0.self_attn.q_proj.weight",
            Dtype::F16,
            &[16, 16],
            0,
        ),
        (
            "model.layers.0.input_layernorm.weight",
            Dtype::F32,
            &[16],
            0,
        ),
        (
            "model.layers.0.mlp.up_proj.weight",
            Dtype::BF16,
            &[32, 16],
            1,
        ),
        (
            "model.layers.0.mlp.down_proj.weight",
            Dtype::F32,
            &[16, 32],
            1,
        ),
        ("model.layers.0.quant.qweight", Dtype::I8, &[4, 8, 2], 1),
        ("model.layers.0.quant.zeros", Dtype::U8, &[7], 2),
        ("model.position_ids", Dtype::I32, &[1, 12], 2),
        ("lm_head.weight", Dtype::F16, &[50, 16], 2),
    ];
    let shard_names: Vec<String> = (1..=3)
        .map(|i| format!("model-{i:05}-of-00003.safetensors"))
        .collect();
    let written: Vec<Written> = plan
        .iter()
        .map(|&(name, dtype, shape, s)| {
            let n = shape.iter().product::<u64>() as usize;
            Written {
                name: name.into(),
                dtype,
                shape: shape.to_vec(),
                bytes: bytes_for(dtype, n, &mut r),
                shard: shard_names[s].clone(),
            }
        })
        .collect();
    for (i, shard) in shard_names.iter().enumerate() {
        let views: Vec<(String, TensorView)> = written
            .iter()
            .filter(|w| &w.shard == shard)
            .map(|w| {
                let shape = w.shape.iter().map(|&d| d as usize).collect();
                (
                    w.name.clone(),
                    TensorView::new(st_dtype(w.dtype), shape, &w.bytes).unwrap(),
                )
            })
            .collect();
        let info = (i == 0).then(|| HashMap::from([("format".to_string(), "pt".to_string())]));
        safetensors::serialize_to_file(views, info, &dir.join(shard)).unwrap();
    }
    let map: serde_json::Map<String, serde_json::Value> = written
        .iter()
        .map(|w| (w.name.clone(), w.shard.clone().into()))
        .collect();
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    std::fs::write(
        dir.join("config.json"),
        r#"{"model_type": "llama", "hidden_size": 16, "architectures": ["LlamaForCausalLM"]}"#,
    )
    .unwrap();
    written
}

fn check_model(m: &SafetensorsModel, written: &[Written]) {
    assert_eq!(m.tensors.len(), written.len());
    for w in written {
        let t = m
            .tensor(&w.name)
            .unwrap_or_else(|| panic!("{} missing", w.name));
        assert_eq!(t.dtype, w.dtype, "{}", w.name);
        assert_eq!(t.shape, w.shape, "{}", w.name);
        assert_eq!(t.size(), w.bytes.len() as u64);
        assert_eq!(m.tensor_data(t), w.bytes.as_slice(), "{}", w.name);
        assert_eq!(
            m.shard_path(t).file_name().unwrap().to_str().unwrap(),
            w.shard
        );
        match m.numeric_data(t) {
            Ok(b) => {
                assert!(w.dtype.is_readable());
                assert_eq!(b, w.bytes.as_slice());
            }
            Err(SafetensorsError::UnsupportedDtype {
                path,
                tensor,
                dtype,
            }) => {
                assert_eq!(dtype, Dtype::I32);
                assert_eq!(tensor, w.name);
                assert!(path.ends_with(&w.shard));
            }
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn sharded_folder_reads_every_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let written = write_folder(dir.path(), 21);
    let m = SafetensorsModel::open(dir.path()).unwrap();
    assert_eq!(m.shards.len(), 3);
    assert!(m.index.is_some());
    assert_eq!(m.config.as_ref().unwrap()["model_type"], "llama");
    assert_eq!(
        m.shards[0].metadata,
        vec![("format".to_string(), "pt".to_string())]
    );
    check_model(&m, &written);

    // Through the index file itself: the same.
    let m2 = SafetensorsModel::open(dir.path().join("model.safetensors.index.json")).unwrap();
    check_model(&m2, &written);

    // One shard alone: its tensors, and config.json from its folder.
    let one = dir.path().join("model-00002-of-00003.safetensors");
    let m3 = SafetensorsModel::open(&one).unwrap();
    let in_two: Vec<&Written> = written
        .iter()
        .filter(|w| w.shard == "model-00002-of-00003.safetensors")
        .collect();
    assert_eq!(m3.tensors.len(), in_two.len());
    for w in in_two {
        assert_eq!(
            m3.tensor_data(m3.tensor(&w.name).unwrap()),
            w.bytes.as_slice()
        );
    }
    assert!(m3.config.is_some());
}

#[test]
fn inspect_lists_sharded_folder() {
    let dir = tempfile::tempdir().unwrap();
    let written = write_folder(dir.path(), 22);
    let out = gpuq().arg("inspect").arg(dir.path()).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for w in &written {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(w.name.as_str()))
            .unwrap_or_else(|| panic!("{} not listed:\n{text}", w.name));
        assert!(
            line.contains(w.dtype.name()) && line.contains(&w.shard),
            "{line}"
        );
    }
    assert!(
        text.contains("model_type") && text.contains("\"llama\""),
        "{text}"
    );
    assert!(
        text.contains(&format!("total: {} tensors", written.len())),
        "{text}"
    );

    let out = gpuq()
        .arg("inspect")
        .arg("--json")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["format"], "safetensors");
    assert_eq!(j["config"]["hidden_size"], 16);
    assert_eq!(j["shards"].as_array().unwrap().len(), 3);
    let ts = j["tensors"].as_array().unwrap();
    assert_eq!(ts.len(), written.len());
    for w in &written {
        let t = ts.iter().find(|t| t["name"] == w.name.as_str()).unwrap();
        assert_eq!(t["dtype"], w.dtype.name());
        assert_eq!(t["bytes"], w.bytes.len());
        assert_eq!(t["file"], w.shard.as_str());
        let shape: Vec<u64> = serde_json::from_value(t["shape"].clone()).unwrap();
        assert_eq!(shape, w.shape);
    }
    let params: u64 = written
        .iter()
        .map(|w| w.shape.iter().product::<u64>())
        .sum();
    let bytes: usize = written.iter().map(|w| w.bytes.len()).sum();
    assert_eq!(j["totals"]["parameters"], params);
    assert_eq!(j["totals"]["bytes"], bytes);
}

#[test]
fn single_file_folder() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = rng(23);
    let data = bytes_for(Dtype::F32, 24, &mut r);
    let view = TensorView::new(safetensors::Dtype::F32, vec![4, 6], &data).unwrap();
    safetensors::serialize_to_file([("w", view)], None, &dir.path().join("model.safetensors"))
        .unwrap();
    let m = SafetensorsModel::open(dir.path()).unwrap();
    assert!(m.index.is_none() && m.config.is_none());
    assert_eq!(m.tensors.len(), 1);
    assert_eq!(m.tensor_data(&m.tensors[0]), data.as_slice());
    let out = gpuq()
        .arg("inspect")
        .arg(dir.path().join("model.safetensors"))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("[4, 6]"));
}
