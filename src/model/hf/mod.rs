//! A Hugging Face model folder (config.json, tokenizer.model or tokenizer.json, safetensors
//! shards) as a pipeline source: GGUF names and metadata as llama.cpp's `convert_hf_to_gguf.py`
//! writes them, the tensors' bytes read straight from the memory-mapped shards in their own
//! type (F32, F16, BF16), and the Llama q/k row permutation done per tile as a row gather.

pub mod config;
pub mod error;
pub mod names;
mod pre_hashes;
pub mod spm;
pub mod tokenizer;

pub use config::{Arch, HfConfig, SUPPORTED};
pub use error::HfError;

use crate::error::{Error, Result};
use crate::formats::gguf::Value;
use crate::formats::safetensors::{Dtype, SafetensorsModel};
use crate::ggml_type::GgmlType;
use crate::pipeline::{InputTensor, ModelSource};
use names::{Role, map_name};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// How a folder is read.
#[derive(Clone, Debug, Default)]
pub struct HfOptions {
    /// Write this `tokenizer.ggml.pre` instead of identifying the pre-tokenizer.
    pub vocab_pre: Option<String>,
    /// Convert the weights only, ignoring any tokenizer files.
    pub no_tokenizer: bool,
}

/// Where a tensor's bytes come from.
enum Data {
    /// A safetensors tensor; `permute_heads` > 0 gathers its rows for llama.cpp's rotary layout.
    Mapped { st: usize, permute_heads: u64 },
    /// Computed at open (the llama3 rope factors).
    Owned(Vec<u8>),
}

/// A Hugging Face folder as a [`ModelSource`].
pub struct HfSource {
    dir: PathBuf,
    st: SafetensorsModel,
    config: HfConfig,
    metadata: Vec<(String, Value)>,
    tensors: Vec<InputTensor>,
    data: Vec<Data>,
    has_tokenizer: bool,
}

/// The safetensors dtypes the supported architectures take, as ggml types.
fn ggml_type(d: Dtype) -> Option<GgmlType> {
    match d {
        Dtype::F32 => Some(GgmlType::F32),
        Dtype::F16 => Some(GgmlType::F16),
        Dtype::BF16 => Some(GgmlType::BF16),
        _ => None,
    }
}

/// `general.file_type` for a folder of weights in type `ty` (the converter's `--outtype auto`).
pub fn file_type_of(ty: GgmlType) -> u32 {
    match ty {
        GgmlType::F32 => 0,
        GgmlType::BF16 => 32,
        GgmlType::Q8_0 => 7,
        _ => 1,
    }
}

/// The type `convert_hf_to_gguf.py` gives a tensor for `--outtype outtype`: 1-D tensors, norms
/// and biases stay F32; everything else takes the outtype, with Q8_0 falling back to F16 when a
/// row is not a whole number of blocks. Returns (type, fell back).
pub fn converter_type(name: &str, dims: &[u64], outtype: GgmlType) -> (GgmlType, bool) {
    if dims.len() <= 1 || name.ends_with("_norm.weight") || !name.ends_with(".weight") {
        return (GgmlType::F32, false);
    }
    let ne0 = dims.first().copied().unwrap_or(0);
    if outtype.row_bytes(ne0).is_none() {
        return (GgmlType::F16, true);
    }
    (outtype, false)
}

impl HfSource {
    /// Opens a folder: config.json, the weights (single file or sharded with an index) and the
    /// tokenizer. Every tensor is checked (name, dtype, shape, layer) before anything is written.
    pub fn open(dir: &Path, opts: &HfOptions) -> Result<HfSource> {
        let config_path = dir.join("config.json");
        if !config_path.is_file() {
            return Err(HfError::NoConfig {
                path: dir.to_path_buf(),
            }
            .into());
        }
        let st = SafetensorsModel::open(dir)?;
        let json = st.config.clone().ok_or_else(|| HfError::NoConfig {
            path: dir.to_path_buf(),
        })?;
        let config = HfConfig::from_json(&config_path, &json)?;
        let arch_name = config.arch.gguf_name();

        let mut tensors = Vec::new();
        let mut data = Vec::new();
        if let Some(freqs) = config.rope_freqs() {
            tensors.push(InputTensor {
                name: "rope_freqs.weight".into(),
                dims: vec![freqs.len() as u64],
                ty: GgmlType::F32,
            });
            data.push(Data::Owned(
                freqs.iter().flat_map(|f| f.to_le_bytes()).collect(),
            ));
        }
        let mut seen: HashMap<String, String> = HashMap::new();
        for (i, t) in st.tensors.iter().enumerate() {
            let path = st.shard_path(t).to_path_buf();
            if names::is_skipped(&t.name) {
                continue;
            }
            let mapped = map_name(&t.name)
                .filter(|m| allowed(config.arch, m.role))
                .ok_or_else(|| HfError::UnknownTensor {
                    path: path.clone(),
                    tensor: t.name.clone(),
                    arch: arch_name.into(),
                })?;
            let ty = ggml_type(t.dtype).ok_or_else(|| HfError::BadDtype {
                path: path.clone(),
                tensor: t.name.clone(),
                dtype: t.dtype.to_string(),
                arch: arch_name.into(),
            })?;
            if let Some(layer) = mapped.layer {
                if layer >= config.n_layer {
                    return Err(HfError::LayerOutOfRange {
                        path,
                        tensor: t.name.clone(),
                        layer,
                        n_layer: config.n_layer,
                    }
                    .into());
                }
            }
            let (expected, why) = expected_shape(&config, mapped.role);
            if t.shape != expected {
                return Err(HfError::BadShape {
                    path,
                    tensor: t.name.clone(),
                    actual: t.shape.clone(),
                    expected,
                    why,
                }
                .into());
            }
            let gguf = mapped.role.gguf_name(mapped.layer);
            if let Some(first) = seen.insert(gguf.clone(), t.name.clone()) {
                return Err(HfError::DuplicateTensor {
                    path,
                    first,
                    second: t.name.clone(),
                    gguf,
                }
                .into());
            }
            let permute_heads = match (config.arch, mapped.role) {
                (Arch::Llama, Role::Q | Role::QBias) => config.n_head,
                (Arch::Llama, Role::K | Role::KBias) => config.n_head_kv,
                _ => 0,
            };
            tensors.push(InputTensor {
                name: gguf,
                dims: t.shape.iter().rev().copied().collect(),
                ty,
            });
            data.push(Data::Mapped {
                st: i,
                permute_heads,
            });
        }
        check_complete(&config, &seen, dir)?;

        let found = if opts.no_tokenizer {
            tokenizer::Found::None
        } else {
            tokenizer::load(
                dir,
                config.vocab_size,
                &json,
                opts.vocab_pre.as_deref(),
                config.arch,
            )?
        };
        let first_2d = tensors
            .iter()
            .find(|t| t.dims.len() >= 2)
            .map(|t| t.ty)
            .unwrap_or(GgmlType::F16);
        let mut metadata: Vec<(String, Value)> = vec![
            (
                "general.architecture".into(),
                Value::String(arch_name.into()),
            ),
            ("general.type".into(), Value::String("model".into())),
            ("general.name".into(), Value::String(model_name(dir, &json))),
        ];
        metadata.extend(config.metadata(file_type_of(first_2d)));
        let has_tokenizer = matches!(found, tokenizer::Found::Vocab(_));
        match found {
            tokenizer::Found::Vocab(md) => metadata.extend(md),
            tokenizer::Found::None => {
                eprintln!(
                    "gpuq: warning: {}: no tokenizer; writing the weights only (tokenizer.ggml.model = none)",
                    dir.display()
                );
                metadata.push(("tokenizer.ggml.model".into(), Value::String("none".into())));
                let key = format!("{arch_name}.vocab_size");
                if !metadata.iter().any(|(k, _)| *k == key) {
                    metadata.push((key, Value::U32(config.vocab_size as u32)));
                }
            }
        }
        metadata.push(("general.quantization_version".into(), Value::U32(2)));
        Ok(HfSource {
            dir: dir.to_path_buf(),
            st,
            config,
            metadata,
            tensors,
            data,
            has_tokenizer,
        })
    }

    pub fn config(&self) -> &HfConfig {
        &self.config
    }

    /// Whether a tokenizer was written into the metadata.
    pub fn has_tokenizer(&self) -> bool {
        self.has_tokenizer
    }
}

/// Which tensors each architecture's llama.cpp graph loads.
fn allowed(arch: Arch, role: Role) -> bool {
    match role {
        Role::QNorm | Role::KNorm => arch == Arch::Qwen3,
        Role::OBias => arch == Arch::Llama,
        _ => true,
    }
}

/// The HF shape (outermost first) config.json implies for a tensor, and why.
fn expected_shape(c: &HfConfig, role: Role) -> (Vec<u64>, String) {
    let (q, kv) = (c.n_head * c.head_dim, c.n_head_kv * c.head_dim);
    let (shape, why): (Vec<u64>, String) = match role {
        Role::TokenEmbd | Role::Output => (
            vec![c.vocab_size, c.n_embd],
            format!("vocab_size {} x hidden_size {}", c.vocab_size, c.n_embd),
        ),
        Role::OutputNorm | Role::AttnNorm | Role::FfnNorm | Role::OBias => {
            (vec![c.n_embd], format!("hidden_size {}", c.n_embd))
        }
        Role::Q => (
            vec![q, c.n_embd],
            format!(
                "{} heads x head_dim {}, hidden_size {}",
                c.n_head, c.head_dim, c.n_embd
            ),
        ),
        Role::K | Role::V => (
            vec![kv, c.n_embd],
            format!(
                "{} kv heads x head_dim {}, hidden_size {}",
                c.n_head_kv, c.head_dim, c.n_embd
            ),
        ),
        Role::O => (
            vec![c.n_embd, q],
            format!(
                "hidden_size {}, {} heads x head_dim {}",
                c.n_embd, c.n_head, c.head_dim
            ),
        ),
        Role::QBias => (
            vec![q],
            format!("{} heads x head_dim {}", c.n_head, c.head_dim),
        ),
        Role::KBias | Role::VBias => (
            vec![kv],
            format!("{} kv heads x head_dim {}", c.n_head_kv, c.head_dim),
        ),
        Role::QNorm | Role::KNorm => (vec![c.head_dim], format!("head_dim {}", c.head_dim)),
        Role::Gate | Role::Up => (
            vec![c.n_ff, c.n_embd],
            format!("intermediate_size {}, hidden_size {}", c.n_ff, c.n_embd),
        ),
        Role::Down => (
            vec![c.n_embd, c.n_ff],
            format!("hidden_size {}, intermediate_size {}", c.n_embd, c.n_ff),
        ),
    };
    (shape, why)
}

/// Every tensor the architecture needs is there.
fn check_complete(c: &HfConfig, seen: &HashMap<String, String>, dir: &Path) -> Result<(), HfError> {
    let hf_names: &[(Role, &str)] = &[
        (Role::AttnNorm, "input_layernorm.weight"),
        (Role::Q, "self_attn.q_proj.weight"),
        (Role::K, "self_attn.k_proj.weight"),
        (Role::V, "self_attn.v_proj.weight"),
        (Role::O, "self_attn.o_proj.weight"),
        (Role::FfnNorm, "post_attention_layernorm.weight"),
        (Role::Gate, "mlp.gate_proj.weight"),
        (Role::Up, "mlp.up_proj.weight"),
        (Role::Down, "mlp.down_proj.weight"),
        (Role::QNorm, "self_attn.q_norm.weight"),
        (Role::KNorm, "self_attn.k_norm.weight"),
    ];
    let missing = |tensor: String, role: Role, layer: Option<u64>| HfError::MissingTensor {
        path: dir.to_path_buf(),
        tensor,
        gguf: role.gguf_name(layer),
        arch: c.arch.gguf_name().into(),
    };
    for (role, hf) in [
        (Role::TokenEmbd, "model.embed_tokens.weight"),
        (Role::OutputNorm, "model.norm.weight"),
    ] {
        if !seen.contains_key(&role.gguf_name(None)) {
            return Err(missing(hf.into(), role, None));
        }
    }
    for l in 0..c.n_layer {
        for (role, hf) in hf_names {
            if matches!(role, Role::QNorm | Role::KNorm) && c.arch != Arch::Qwen3 {
                continue;
            }
            if !seen.contains_key(&role.gguf_name(Some(l))) {
                return Err(missing(format!("model.layers.{l}.{hf}"), *role, Some(l)));
            }
        }
    }
    Ok(())
}

/// `general.name`: the folder's name (the converter's fallback when no model card names it).
fn model_name(dir: &Path, config: &serde_json::Value) -> String {
    let from_dir = std::fs::canonicalize(dir)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .filter(|n| !n.is_empty());
    from_dir
        .or_else(|| {
            config
                .get("_name_or_path")
                .and_then(|v| v.as_str())
                .and_then(|s| s.rsplit('/').next())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "model".into())
}

/// The source row feeding output row `r` of a tensor permuted for `n_head` heads
/// (`LlamaModel.permute`: within each head, the rows of the two rotary halves interleave).
pub fn permuted_source_row(r: u64, rows: u64, n_head: u64) -> u64 {
    let hd = rows / n_head;
    let half = hd / 2;
    let (h, w) = (r / hd, r % hd);
    h * hd + (w % 2) * half + w / 2
}

impl ModelSource for HfSource {
    fn describe(&self) -> String {
        self.dir.display().to_string()
    }
    fn metadata(&self) -> &[(String, Value)] {
        &self.metadata
    }
    fn tensors(&self) -> &[InputTensor] {
        &self.tensors
    }
    fn tensor_len(&self, index: usize) -> u64 {
        match &self.data[index] {
            Data::Mapped { st, .. } => self.st.tensors[*st].size(),
            Data::Owned(b) => b.len() as u64,
        }
    }
    fn read_rows<'a>(
        &'a self,
        index: usize,
        r0: u64,
        n: u64,
        scratch: &'a mut Vec<u8>,
    ) -> Result<&'a [u8]> {
        let t = &self.tensors[index];
        let row = t.ty.row_bytes(t.row_len()).unwrap_or(0) as usize;
        let outside = || {
            Error::Invalid(format!(
                "{}: tensor {}: rows {r0}..{} are outside the tensor",
                self.describe(),
                t.name,
                r0 + n
            ))
        };
        if r0.checked_add(n).is_none_or(|end| end > t.n_rows()) {
            return Err(outside());
        }
        let (a, b) = (r0 as usize * row, (r0 + n) as usize * row);
        match &self.data[index] {
            Data::Owned(bytes) => bytes.get(a..b).ok_or_else(outside),
            Data::Mapped {
                st,
                permute_heads: 0,
            } => self
                .st
                .tensor_data(&self.st.tensors[*st])
                .get(a..b)
                .ok_or_else(outside),
            Data::Mapped { st, permute_heads } => {
                let all = self.st.tensor_data(&self.st.tensors[*st]);
                // 2-D: whole rows move; a 1-D bias is one row whose elements move
                let (unit, units) = if t.dims.len() >= 2 {
                    (row, t.n_rows())
                } else {
                    (t.ty.row_bytes(1).unwrap_or(0) as usize, t.row_len())
                };
                let (u0, un) = if t.dims.len() >= 2 {
                    (r0, n)
                } else {
                    (0, units)
                };
                scratch.clear();
                for r in u0..u0 + un {
                    let s = permuted_source_row(r, units, *permute_heads) as usize * unit;
                    scratch.extend_from_slice(all.get(s..s + unit).ok_or_else(outside)?);
                }
                Ok(&scratch[..])
            }
        }
    }
    fn unquantized_type(&self, index: usize) -> Option<GgmlType> {
        let t = &self.tensors[index];
        let (ty, _) = converter_type(&t.name, &t.dims, t.ty);
        (ty == GgmlType::F32).then_some(ty)
    }
    fn prefetch(&self, index: usize, offset: usize, len: usize) {
        if let Data::Mapped { st, .. } = &self.data[index] {
            let t = &self.st.tensors[*st];
            if let Some(shard) = self.st.shards.get(t.shard) {
                shard.advise(
                    t.start + offset as u64,
                    (len as u64).min(t.size().saturating_sub(offset as u64)),
                    true,
                );
            }
        }
    }
    fn release(&self, index: usize, offset: usize, len: usize) {
        if let Data::Mapped { st, .. } = &self.data[index] {
            let t = &self.st.tensors[*st];
            if let Some(shard) = self.st.shards.get(t.shard) {
                shard.advise(
                    t.start + offset as u64,
                    (len as u64).min(t.size().saturating_sub(offset as u64)),
                    false,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_matches_the_converters_reshape() {
        // reshape(n_head, 2, hd/2, ...).swapaxes(1, 2): output (h, i, j) <- input (h, j, i)
        let (n_head, hd) = (3u64, 8u64);
        let rows = n_head * hd;
        let mut seen = vec![false; rows as usize];
        for h in 0..n_head {
            for i in 0..hd / 2 {
                for j in 0..2 {
                    let out = h * hd + i * 2 + j;
                    let src = h * hd + j * (hd / 2) + i;
                    assert_eq!(permuted_source_row(out, rows, n_head), src);
                    seen[src as usize] = true;
                }
            }
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn converter_types() {
        assert_eq!(
            converter_type("blk.0.attn_norm.weight", &[64], GgmlType::F16),
            (GgmlType::F32, false)
        );
        assert_eq!(
            converter_type("blk.0.attn_q.bias", &[64], GgmlType::Q8_0),
            (GgmlType::F32, false)
        );
        assert_eq!(
            converter_type("blk.0.attn_q_norm.weight", &[16], GgmlType::Q8_0),
            (GgmlType::F32, false)
        );
        assert_eq!(
            converter_type("blk.0.attn_q.weight", &[64, 64], GgmlType::Q8_0),
            (GgmlType::Q8_0, false)
        );
        assert_eq!(
            converter_type("blk.0.ffn_down.weight", &[48, 64], GgmlType::Q8_0),
            (GgmlType::F16, true)
        );
        assert_eq!(
            converter_type("token_embd.weight", &[48, 64], GgmlType::BF16),
            (GgmlType::BF16, false)
        );
    }
}
