//! What a model file holds, without reading tensor data: a GGUF file, a .safetensors file or
//! a Hugging Face folder (metadata, tensor table, totals), as JSON. `gpuq inspect --json`
//! prints [`inspect`]'s value; the text tables of `gpuq inspect` are the CLI's.
//!
//! ```
//! use gpuq::formats::gguf::{GgufWriter, TensorSpec, Value};
//! use gpuq::GgmlType;
//!
//! let path = std::env::temp_dir().join(format!("gpuq-inspect-doc-{}.gguf", std::process::id()));
//! let md = vec![("general.architecture".to_string(), Value::String("llama".into()))];
//! let spec = TensorSpec { name: "blk.0.ffn_up.weight".into(), ty: GgmlType::F32, dims: vec![32, 2] };
//! let mut w = GgufWriter::create(&path, &md, &[spec])?;
//! w.write_next(&[0u8; 32 * 2 * 4])?;
//! w.finish()?;
//!
//! let j = gpuq::jobs::inspect::inspect(&path)?;
//! assert_eq!(j["format"], "gguf");
//! assert_eq!(j["tensors"][0]["shape"], serde_json::json!([32, 2]));
//! assert_eq!(j["totals"]["parameters"], 64);
//! # std::fs::remove_file(&path).ok();
//! # Ok::<(), gpuq::Error>(())
//! ```

use crate::formats::gguf::GgufFile;
use crate::formats::safetensors::SafetensorsModel;
use crate::{Error, Result};
use serde_json::json;
use std::io::Read;
use std::path::Path;

/// Arrays longer than this are summarized in the JSON.
pub const JSON_MAX_ARRAY: usize = 64;

/// A model file's format, as [`sniff`] decides it.
pub enum Kind {
    Gguf,
    Safetensors,
}

/// An opened model file (headers only).
pub enum Model {
    Gguf(GgufFile),
    Safetensors(SafetensorsModel),
}

/// Decides the format: a folder is a Hugging Face checkpoint; a file starting with "GGUF" or
/// named .gguf is GGUF; .safetensors and .index.json files are safetensors.
pub fn sniff(path: &Path) -> Result<Kind> {
    if path.is_dir() {
        return Ok(Kind::Safetensors);
    }
    let mut magic = [0u8; 4];
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let n = f.read(&mut magic).map_err(|e| Error::io(path, e))?;
    let name = path.to_string_lossy();
    if (n == 4 && &magic == b"GGUF") || name.ends_with(".gguf") {
        Ok(Kind::Gguf)
    } else if name.ends_with(".safetensors") || name.ends_with(".index.json") {
        Ok(Kind::Safetensors)
    } else {
        Err(Error::Invalid(format!(
            "{}: not a GGUF file (no GGUF magic) and not named .safetensors; \
             give a .gguf, a .safetensors or a model folder",
            path.display()
        )))
    }
}

/// Tensor count, parameters and bytes of a model.
pub struct Totals {
    pub tensors: usize,
    pub params: u64,
    pub bytes: u64,
}

impl Totals {
    /// Bits per weight over all tensors (`None` without parameters).
    pub fn bpw(&self) -> Option<f64> {
        (self.params > 0).then(|| self.bytes as f64 * 8.0 / self.params as f64)
    }

    /// The totals as a JSON object.
    pub fn json(&self) -> serde_json::Value {
        json!({
            "tensors": self.tensors,
            "parameters": self.params,
            "bytes": self.bytes,
            "bits_per_weight": self.bpw(),
        })
    }
}

/// The totals of a GGUF file.
pub fn gguf_totals(g: &GgufFile) -> Totals {
    Totals {
        tensors: g.tensors.len(),
        params: g.tensors.iter().map(|t| t.n_elements()).sum(),
        bytes: g.tensors.iter().map(|t| t.size).sum(),
    }
}

/// The fixes an Ollama-layout qwen35 / qwen35moe / qwen3next file needs (src/model/ollama.rs).
pub fn ollama_fixes(g: &GgufFile) -> Result<Vec<String>> {
    let tensors: Vec<crate::model::InputTensor> = g
        .tensors
        .iter()
        .map(|t| crate::model::InputTensor {
            name: t.name.clone(),
            dims: t.dims.clone(),
            ty: t.ty,
        })
        .collect();
    let plan = crate::model::ollama::plan(&g.path().display().to_string(), &g.metadata, &tensors)?;
    Ok(plan
        .map(|p| p.fixes.iter().map(|f| f.to_string()).collect())
        .unwrap_or_default())
}

/// A GGUF file as JSON: header, metadata (long arrays summarized), tensors with their roles,
/// totals and the Ollama fixes it needs.
pub fn gguf_json(g: &GgufFile) -> serde_json::Value {
    let metadata: Vec<serde_json::Value> = g
        .metadata
        .iter()
        .map(|(k, v)| {
            let mut o = json!({
                "key": k,
                "type": v.value_type().name(),
                "value": v.to_json(Some(JSON_MAX_ARRAY)),
            });
            if let Some(a) = v.as_array() {
                o["element_type"] = json!(a.element_type().name());
                o["len"] = json!(a.len());
            }
            o
        })
        .collect();
    let roles = crate::policy::roles(g.tensors.iter().map(|t| t.name.as_str()));
    let tensors: Vec<serde_json::Value> = g
        .tensors
        .iter()
        .zip(&roles)
        .map(|(t, r)| {
            json!({
                "name": t.name,
                "role": r.name(),
                "type": t.ty.name(),
                "type_id": t.ty.id(),
                "shape": t.dims,
                "elements": t.n_elements(),
                "bytes": t.size,
                "offset": g.data_offset + t.offset,
                "data_offset": t.offset,
            })
        })
        .collect();
    json!({
        "format": "gguf",
        "path": g.path().display().to_string(),
        "version": g.version,
        "alignment": g.alignment,
        "data_offset": g.data_offset,
        "file_bytes": g.file_len(),
        "metadata": metadata,
        "tensors": tensors,
        "totals": gguf_totals(g).json(),
        "ollama_fixes": match ollama_fixes(g) {
            Ok(f) => json!(f),
            Err(e) => json!({ "error": e.to_string() }),
        },
    })
}

/// The totals of a safetensors model.
pub fn st_totals(s: &SafetensorsModel) -> Totals {
    Totals {
        tensors: s.tensors.len(),
        params: s.tensors.iter().map(|t| t.n_elements()).sum(),
        bytes: s.tensors.iter().map(|t| t.size()).sum(),
    }
}

/// The file name of shard `i`.
pub fn shard_name(s: &SafetensorsModel, i: usize) -> String {
    s.shards
        .get(i)
        .and_then(|sh| sh.path.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A safetensors model as JSON: config, shards, tensors, totals.
pub fn safetensors_json(s: &SafetensorsModel) -> serde_json::Value {
    let shards: Vec<serde_json::Value> = s
        .shards
        .iter()
        .map(|sh| {
            let md: serde_json::Map<String, serde_json::Value> = sh
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            json!({
                "path": sh.path.display().to_string(),
                "data_start": sh.data_start,
                "metadata": md,
            })
        })
        .collect();
    let tensors: Vec<serde_json::Value> = s
        .tensors
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "dtype": t.dtype.name(),
                "shape": t.shape,
                "elements": t.n_elements(),
                "bytes": t.size(),
                "offset": t.start,
                "shard": t.shard,
                "file": shard_name(s, t.shard),
            })
        })
        .collect();
    json!({
        "format": "safetensors",
        "path": s.root.display().to_string(),
        "index": s.index.as_ref().map(|i| i.display().to_string()),
        "config": s.config,
        "shards": shards,
        "tensors": tensors,
        "totals": st_totals(s).json(),
    })
}

impl Model {
    /// Opens `path` (a .gguf file, a .safetensors file or a model folder), reading headers only.
    pub fn open(path: &Path) -> Result<Model> {
        Ok(match sniff(path)? {
            Kind::Gguf => Model::Gguf(GgufFile::open(path)?),
            Kind::Safetensors => Model::Safetensors(SafetensorsModel::open(path)?),
        })
    }

    /// The JSON of `gpuq inspect --json`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Model::Gguf(g) => gguf_json(g),
            Model::Safetensors(s) => safetensors_json(s),
        }
    }
}

/// `path` described as JSON (what `gpuq inspect --json` prints).
pub fn inspect(path: &Path) -> Result<serde_json::Value> {
    Ok(Model::open(path)?.to_json())
}
