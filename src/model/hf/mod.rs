//! A Hugging Face model folder (config.json, tokenizer.model or tokenizer.json, safetensors
//! shards) as a pipeline source: GGUF names and metadata as llama.cpp's `convert_hf_to_gguf.py`
//! writes them, the tensors' bytes read straight from the memory-mapped shards in their own
//! type (F32, F16, BF16), and the Llama q/k row permutation done per tile as a row gather.
//!
//! BitNet (`BitNetForCausalLM`): the BitLinear weights (attn_q/k/v/output, ffn_gate/up/down)
//! are marked as ternary for the pipeline ([`TernarySource`]): float master weights get the
//! converter's `weight_quant` (per-tensor absmean), and packed checkpoints
//! (`quantization_config.quant_method == "bitnet"`: uint8 weights of shape [out/4, in] with a
//! one-element `weight_scale`) are unpacked per tile into f32 rows of exactly
//! `{-v, 0, +v}`: unpacked row `k * out/4 + r` is bits `2k..2k+1` of packed row `r`, code
//! `c` means `c - 1`, and `v = 1 / weight_scale` (transformers' `BitLinear`, and llama.cpp's
//! `dequant_bitnet`) or `v = weight_scale` (`AutoBitLinear` offline). Unlike llama.cpp's
//! converter, gpuq does not run `weight_quant` again on unpacked weights: that would rescale
//! each tensor by its fraction of nonzero trits (the absmean of `{-v, 0, v}` data), which is
//! not the checkpoint's weight.

pub mod config;
pub mod error;
pub mod gather;
pub mod hybrid;
pub mod moe;
pub mod names;
mod pre_hashes;
pub mod spm;
pub mod tokenizer;

pub use config::{Arch, HfConfig, PackedScale, SUPPORTED};
pub use error::HfError;

use crate::error::{Error, Result};
use crate::formats::gguf::Value;
use crate::formats::safetensors::{Dtype, SafetensorsModel};
use crate::ggml_type::GgmlType;
use crate::model::source::{InputTensor, ModelSource, TernarySource};
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
    /// A packed BitNet weight (uint8, [out/4, in]), read as f32 rows: code `c` of a row
    /// becomes `values[c]` (code 3 is refused).
    Packed { st: usize, values: [f32; 3] },
    /// Rows gathered from one or several tensors (stacked experts, split or reordered heads),
    /// with the converter's element-wise transforms.
    Gather(gather::Gather),
}

/// A Hugging Face folder as a [`ModelSource`].
pub struct HfSource {
    dir: PathBuf,
    st: SafetensorsModel,
    config: HfConfig,
    metadata: Vec<(String, Value)>,
    tensors: Vec<InputTensor>,
    data: Vec<Data>,
    ternary: Vec<Option<TernarySource>>,
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
    crate::policy::Mixture::file_type_of(ty).unwrap_or(1)
}

/// The type `convert_hf_to_gguf.py` gives a tensor for `--outtype outtype`: 1-D tensors, norms
/// and biases stay F32; everything else takes the outtype, with Q8_0 falling back to F16 when a
/// row is not a whole number of blocks. Returns (type, fell back).
pub fn converter_type(name: &str, dims: &[u64], outtype: GgmlType) -> (GgmlType, bool) {
    if dims.len() <= 1
        || name.ends_with("_norm.weight")
        || !name.ends_with(".weight")
        || name.ends_with(".ffn_gate_inp.weight")
        || name.ends_with(".ssm_conv1d.weight")
    {
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
        let mut ternary = Vec::new();
        if config.arch == Arch::Bitnet {
            if let Some(act) = config.hidden_act.as_deref().filter(|a| *a != "silu") {
                eprintln!(
                    "gpuq: warning: {}: hidden_act is '{act}', but llama.cpp's bitnet graph \
                     computes silu(gate) * up; llama.cpp will not compute this model's function \
                     (the weights are converted as they are)",
                    config_path.display()
                );
            }
        }
        let scales = weight_scales(&st, &config)?;
        if let Some(freqs) = config.rope_freqs() {
            tensors.push(InputTensor {
                name: "rope_freqs.weight".into(),
                dims: vec![freqs.len() as u64],
                ty: GgmlType::F32,
            });
            data.push(Data::Owned(
                freqs.iter().flat_map(|f| f.to_le_bytes()).collect(),
            ));
            ternary.push(None);
        }
        let extended = config.arch.is_extended() || config.moe.is_some();
        if extended {
            let (planned, skipped) = hybrid::plan(&st, &config, dir)?;
            for p in planned {
                tensors.push(p.tensor);
                data.push(Data::Gather(p.gather));
                ternary.push(None);
            }
            if skipped.vision > 0 {
                eprintln!(
                    "gpuq: {}: the vision tower ({} tensors) was left out; the language model is converted",
                    dir.display(),
                    skipped.vision
                );
            }
            if skipped.mtp > 0 {
                eprintln!(
                    "gpuq: {}: {} MTP tensors were left out (llama.cpp's converter does not convert them for {arch_name})",
                    dir.display(),
                    skipped.mtp
                );
            }
        }
        let mut seen: HashMap<String, String> = HashMap::new();
        for (i, t) in st.tensors.iter().enumerate().filter(|_| !extended) {
            let path = st.shard_path(t).to_path_buf();
            if names::is_skipped(&t.name) || scales.contains_key(&t.name) {
                continue;
            }
            let mapped = map_name(&t.name)
                .filter(|m| allowed(config.arch, m.role))
                .ok_or_else(|| HfError::UnknownTensor {
                    path: path.clone(),
                    tensor: t.name.clone(),
                    arch: arch_name.into(),
                })?;
            let bitlinear = config.arch == Arch::Bitnet && mapped.role.is_bitlinear();
            let packed_scale = format!("{}_scale", t.name);
            let packed = match (bitlinear, config.packed, t.dtype) {
                (true, Some(how), Dtype::U8) => {
                    let ws = scales.get(&packed_scale).copied().ok_or_else(|| {
                        HfError::MissingTensor {
                            path: path.clone(),
                            tensor: packed_scale.clone(),
                            gguf: mapped.role.gguf_name(mapped.layer),
                            arch: arch_name.into(),
                        }
                    })?;
                    Some(match how {
                        PackedScale::Divide => 1.0 / ws,
                        PackedScale::Multiply => ws,
                    })
                }
                (true, Some(_), _) if scales.contains_key(&packed_scale) => {
                    return Err(HfError::BadDtype {
                        path,
                        tensor: t.name.clone(),
                        dtype: t.dtype.to_string(),
                        arch: format!(
                            "{arch_name} (it has a {packed_scale}, so its weight must be packed uint8)"
                        ),
                    }
                    .into());
                }
                _ => None,
            };
            let ty = match packed {
                Some(_) => Some(GgmlType::F32),
                None => ggml_type(t.dtype),
            }
            .ok_or_else(|| HfError::BadDtype {
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
            // packed: four rows of trits per byte row
            let shape = match (packed, t.shape.as_slice()) {
                (Some(_), [r, c]) => vec![r.saturating_mul(4), *c],
                _ => t.shape.clone(),
            };
            if shape != expected {
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
                dims: shape.iter().rev().copied().collect(),
                ty,
            });
            match packed {
                Some(v) => {
                    data.push(Data::Packed {
                        st: i,
                        values: [-v, 0.0, v],
                    });
                    ternary.push(Some(TernarySource::Known { scale: v }));
                }
                None => {
                    data.push(Data::Mapped {
                        st: i,
                        permute_heads,
                    });
                    ternary.push(bitlinear.then_some(TernarySource::Absmean { dtype: ty }));
                }
            }
        }
        if !extended {
            check_complete(&config, &seen, dir)?;
        }

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
                if !opts.no_tokenizer {
                    eprintln!(
                        "gpuq: warning: {}: no tokenizer; writing the weights only (tokenizer.ggml.model = none)",
                        dir.display()
                    );
                }
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
            ternary,
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

    /// The checkpoint the tensors are read from.
    pub fn checkpoint(&self) -> &SafetensorsModel {
        &self.st
    }

    /// Where tensor `index` comes from, when it is one checkpoint tensor moved without
    /// arithmetic between rows: output row `r` is its row `rows[r]` (its first dimension; the
    /// identity when `None`) and element `c` of a row (of a 1-D tensor: element `c`) its element
    /// `cols[c]`. `None` for computed, packed, or stacked (several tensors) sources.
    pub fn origin(&self, index: usize) -> Option<Origin> {
        let t = self.tensors.get(index)?;
        match self.data.get(index)? {
            Data::Mapped { st, permute_heads } => {
                let name = self.st.tensors.get(*st)?.name.clone();
                let map = |n: u64| {
                    (*permute_heads > 0).then(|| {
                        (0..n)
                            .map(|r| permuted_source_row(r, n, *permute_heads))
                            .collect()
                    })
                };
                Some(if t.dims.len() >= 2 {
                    Origin {
                        tensor: name,
                        rows: map(t.n_rows()),
                        cols: None,
                    }
                } else {
                    Origin {
                        tensor: name,
                        rows: None,
                        cols: map(t.row_len()),
                    }
                })
            }
            Data::Gather(g) if g.parts.len() == 1 => Some(Origin {
                tensor: self.st.tensors.get(g.parts[0])?.name.clone(),
                rows: g.row_map.clone(),
                cols: g.col_map.clone(),
            }),
            _ => None,
        }
    }
}

/// See [`HfSource::origin`].
#[derive(Clone, Debug, PartialEq)]
pub struct Origin {
    pub tensor: String,
    pub rows: Option<Vec<u64>>,
    pub cols: Option<Vec<u64>>,
}

/// Which tensors each architecture's llama.cpp graph loads (BitNet: no biases, and no
/// output.weight: its graph uses token_embd as the output matrix).
fn allowed(arch: Arch, role: Role) -> bool {
    match role {
        Role::QNorm | Role::KNorm => arch == Arch::Qwen3,
        Role::AttnSubNorm | Role::FfnSubNorm => arch == Arch::Bitnet,
        Role::OBias => arch == Arch::Llama,
        Role::QBias | Role::KBias | Role::VBias | Role::Output => arch != Arch::Bitnet,
        _ => true,
    }
}

/// The `weight_scale` of every packed BitLinear weight of a BitNet checkpoint, by tensor
/// name: one finite positive number each (F32, F16 or BF16).
fn weight_scales(st: &SafetensorsModel, c: &HfConfig) -> Result<HashMap<String, f32>> {
    let mut out = HashMap::new();
    if c.arch != Arch::Bitnet || c.packed.is_none() {
        return Ok(out);
    }
    for t in st
        .tensors
        .iter()
        .filter(|t| t.name.ends_with(".weight_scale"))
    {
        let path = st.shard_path(t).to_path_buf();
        let bad = |what: String| {
            Error::Invalid(format!("{}: tensor '{}': {what}", path.display(), t.name))
        };
        let weight = t.name.trim_end_matches("_scale");
        if !map_name(weight).is_some_and(|m| m.role.is_bitlinear()) {
            return Err(bad(format!(
                "a weight_scale for '{weight}', which is not a BitLinear weight"
            )));
        }
        if t.shape.iter().product::<u64>() != 1 {
            return Err(bad(format!(
                "shape {:?}: a packed BitNet weight_scale holds one number",
                t.shape
            )));
        }
        let b = st.numeric_data(t)?;
        let v = match (t.dtype, b.len()) {
            (Dtype::F32, 4) => f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            (Dtype::F16, 2) => {
                crate::codec::float::f16_bits_to_f32(u16::from_le_bytes([b[0], b[1]]))
            }
            (Dtype::BF16, 2) => {
                crate::codec::float::bf16_bits_to_f32(u16::from_le_bytes([b[0], b[1]]))
            }
            _ => {
                return Err(bad(format!(
                    "dtype {}: a weight_scale must be F32, F16 or BF16",
                    t.dtype
                )));
            }
        };
        if !(v.is_finite() && v > 0.0) {
            return Err(bad(format!("scale {v} is not a finite positive number")));
        }
        out.insert(t.name.clone(), v);
    }
    Ok(out)
}

/// The HF shape (outermost first) config.json implies for a tensor, and why.
fn expected_shape(c: &HfConfig, role: Role) -> (Vec<u64>, String) {
    let (q, kv) = (c.n_head * c.head_dim, c.n_head_kv * c.head_dim);
    let (shape, why): (Vec<u64>, String) = match role {
        Role::TokenEmbd | Role::Output => (
            vec![c.vocab_size, c.n_embd],
            format!("vocab_size {} x hidden_size {}", c.vocab_size, c.n_embd),
        ),
        Role::OutputNorm | Role::AttnNorm | Role::FfnNorm | Role::OBias | Role::AttnSubNorm => {
            (vec![c.n_embd], format!("hidden_size {}", c.n_embd))
        }
        Role::FfnSubNorm => (vec![c.n_ff], format!("intermediate_size {}", c.n_ff)),
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
        (Role::AttnSubNorm, "self_attn.attn_sub_norm.weight"),
        (Role::FfnSubNorm, "mlp.ffn_sub_norm.weight"),
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
            if matches!(role, Role::AttnSubNorm | Role::FfnSubNorm) && c.arch != Arch::Bitnet {
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
    fn check_unchanged(&self) -> Result<()> {
        for s in &self.st.shards {
            s.check_unchanged()?;
        }
        Ok(())
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
            // what the pipeline reads: f32 rows
            Data::Packed { .. } => self.tensors[index].n_elements() * 4,
            Data::Gather(_) => {
                let t = &self.tensors[index];
                t.ty.row_bytes(t.row_len()).unwrap_or(0) * t.n_rows()
            }
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
        // the input must not change under the run (formats::mapped)
        if r0 == 0 {
            self.check_unchanged()?;
        } else if let Data::Mapped { st, .. } | Data::Packed { st, .. } = &self.data[index]
            && let Some(shard) = self.st.shards.get(self.st.tensors[*st].shard)
        {
            shard.check_unchanged()?;
        }
        let row = t.ty.row_bytes(t.row_len()).unwrap_or(0) as usize;
        let outside = || {
            Error::Invalid(format!(
                "{}: tensor {}: rows {r0}..{} are outside the tensor",
                self.describe(),
                t.name,
                r0.saturating_add(n)
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
            Data::Gather(g) => {
                let what = || format!("{}: tensor {}", self.describe(), t.name);
                g.read(&self.st, t.ty, t.row_len(), r0, n, scratch, &what)?;
                Ok(&scratch[..])
            }
            Data::Packed { st, values } => {
                let all = self.st.tensor_data(&self.st.tensors[*st]);
                let cols = t.row_len() as usize;
                let packed_rows = (t.n_rows() / 4) as usize;
                scratch.clear();
                scratch.reserve(n as usize * cols * 4);
                for r in r0 as usize..(r0 + n) as usize {
                    let (k, p) = (r / packed_rows, r % packed_rows);
                    let src = all.get(p * cols..(p + 1) * cols).ok_or_else(outside)?;
                    for (c, &b) in src.iter().enumerate() {
                        let code = (b >> (2 * k)) & 3;
                        let v = values.get(code as usize).ok_or_else(|| {
                            Error::Invalid(format!(
                                "{}: tensor {} (packed {}): 2-bit code 3 at packed row {p}, \
                                 column {c}, field {k} is not a ternary weight (0, 1, 2 mean -1, 0, +1)",
                                self.describe(),
                                t.name,
                                self.st.tensors[*st].name
                            ))
                        })?;
                        scratch.extend_from_slice(&v.to_le_bytes());
                    }
                }
                Ok(&scratch[..])
            }
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
    fn ternary(&self, index: usize) -> Option<TernarySource> {
        self.ternary.get(index).copied().flatten()
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
        if let Data::Gather(g) = &self.data[index] {
            // stacked experts are read in order: drop the parts behind the tile; a reordered
            // tensor's sources once its last tile is done
            let total = self.tensor_len(index);
            let (lo, hi) = (offset as u64, (offset + len) as u64);
            let identity = g.row_map.is_none() && g.col_map.is_none();
            for (k, &p) in g.parts.iter().enumerate() {
                let t = &self.st.tensors[p];
                let base = k as u64 * t.size();
                // identity: the tile's own bytes; reordered: everything once the last tile is done
                let (a, b) = if identity {
                    (lo.max(base), hi.min(base + t.size()))
                } else if hi >= total {
                    (base, base + t.size())
                } else {
                    continue;
                };
                if let (true, Some(shard)) = (a < b, self.st.shards.get(t.shard)) {
                    shard.advise(t.start + (a - base), b - a, false);
                }
            }
            return;
        }
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
