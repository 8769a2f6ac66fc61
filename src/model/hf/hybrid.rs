//! Tensor plans for the folders whose GGUF tensors are not one-to-one with the checkpoint's:
//! mixture-of-experts models (Mixtral, Qwen3-MoE: experts stacked into 3-D tensors) and the
//! Gated DeltaNet hybrids (Qwen3-Next, Qwen3.5 dense and MoE), written as llama.cpp's
//! `convert_hf_to_gguf.py` writes them (`Qwen2MoeModel`, `Qwen3NextModel`,
//! `_LinearAttentionVReorderBase`, `_Qwen35MRopeMixin`, `_Qwen35MtpMixin`; names from gguf-py's
//! `tensor_mapping.py`):
//!
//! - `linear_attn.in_proj_qkv` -> `attn_qkv`, `in_proj_z` -> `attn_gate`, `in_proj_a` /
//!   `in_proj_b` -> `ssm_alpha` / `ssm_beta`; Qwen3-Next's fused `in_proj_qkvz` is split into
//!   `attn_qkv` (all q heads, all k heads, all v heads) and `attn_gate`, `in_proj_ba` -> `ssm_ba`;
//!   `A_log` -> `ssm_a` = -exp(A_log); `dt_bias` -> `ssm_dt.bias`; `conv1d` squeezed ->
//!   `ssm_conv1d`; `norm` -> `ssm_norm`; `out_proj` -> `ssm_out`.
//! - Qwen3.5 (not Qwen3-Next): with fewer k heads than v heads, the v heads move from grouped
//!   to tiled order in the v rows of `attn_qkv`, the rows of `attn_gate`, `ssm_alpha`,
//!   `ssm_beta`, the elements of `ssm_a` and `ssm_dt.bias`, the v channels of `ssm_conv1d` and
//!   the columns of `ssm_out`.
//! - Every `*norm.weight` but `linear_attn.norm.weight` is stored as `1 + w` (zero-centred RMS
//!   norms).
//! - Qwen3.5's MTP block (`mtp.*`) becomes layer `n_layer + i`: `mtp.fc` -> `nextn.eh_proj`,
//!   `pre_fc_norm_embedding` / `pre_fc_norm_hidden` -> `nextn.enorm` / `nextn.hnorm`, `mtp.norm`
//!   -> `nextn.shared_head_norm`, its decoder layer under the usual names; Qwen3-Next's MTP
//!   tensors are left out, as the converter leaves them.
//! - The vision tower of a multimodal checkpoint is left out (and said so).
//!
//! Nothing is read here: each GGUF tensor is a [`Gather`] over the memory-mapped shards.

use super::config::{Arch, HfConfig};
use super::error::HfError;
use super::gather::{Gather, Op, reorder_v_heads};
use super::moe::{ExpertPart, expert_name, number};
use crate::error::{Error, Result};
use crate::formats::gguf::Value;
use crate::formats::safetensors::{Dtype, SafetensorsModel};
use crate::ggml_type::GgmlType;
use crate::pipeline::InputTensor;
use serde_json::Value as Json;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The Gated DeltaNet, rotary and MTP facts of a Qwen3-Next / Qwen3.5 config.
#[derive(Clone, Debug, PartialEq)]
pub struct HybridConfig {
    pub n_k_heads: u64,
    pub n_v_heads: u64,
    pub k_dim: u64,
    pub v_dim: u64,
    pub conv_kernel: u64,
    pub full_attention_interval: u64,
    /// Rotary dimensions (`head_dim * partial_rotary_factor`).
    pub n_rot: u64,
    /// `rope.dimension_sections` (Qwen3.5: mrope_section padded to 4).
    pub sections: Option<[u32; 4]>,
    /// MTP layers converted (`mtp_num_hidden_layers`; 0 for Qwen3-Next).
    pub mtp_layers: u64,
    /// Reorder v heads from grouped to tiled order (Qwen3.5 with n_k != n_v).
    pub v_reorder: bool,
}

impl HybridConfig {
    pub fn from_json(
        path: &Path,
        config: &Json,
        arch: Arch,
        n_layer: u64,
    ) -> Result<Option<HybridConfig>, HfError> {
        if !arch.is_hybrid() {
            return Ok(None);
        }
        let bad = |key: &str, what: String| HfError::BadKey {
            path: path.to_path_buf(),
            key: key.into(),
            what,
        };
        let need = |key: &'static str, what: &'static str| -> Result<u64, HfError> {
            match config.get(key) {
                None | Some(Json::Null) => Err(HfError::MissingKey {
                    path: path.to_path_buf(),
                    key: key.into(),
                    what,
                }),
                Some(v) => v.as_u64().filter(|&n| n > 0).ok_or_else(|| {
                    bad(key, format!("{what} must be a positive integer, found {v}"))
                }),
            }
        };
        let n_k_heads = need("linear_num_key_heads", "linear-attention key heads")?;
        let n_v_heads = need("linear_num_value_heads", "linear-attention value heads")?;
        let k_dim = need("linear_key_head_dim", "linear-attention key head size")?;
        let v_dim = need("linear_value_head_dim", "linear-attention value head size")?;
        let conv_kernel = need("linear_conv_kernel_dim", "convolution kernel size")?;
        if n_v_heads % n_k_heads != 0 {
            return Err(bad(
                "linear_num_value_heads",
                format!("{n_v_heads} is not a multiple of linear_num_key_heads {n_k_heads}"),
            ));
        }
        let interval = match config.get("full_attention_interval") {
            None | Some(Json::Null) => 4,
            Some(v) => v.as_u64().filter(|&n| n > 0).ok_or_else(|| {
                bad(
                    "full_attention_interval",
                    format!("must be a positive integer, found {v}"),
                )
            })?,
        };
        // llama.cpp knows the layer kinds from full_attention_interval alone
        if let Some(types) = config.get("layer_types").and_then(Json::as_array) {
            if types.len() as u64 != n_layer {
                return Err(bad(
                    "layer_types",
                    format!("{} entries for {n_layer} layers", types.len()),
                ));
            }
            for (i, t) in types.iter().enumerate() {
                let want = if (i as u64 + 1) % interval == 0 {
                    "full_attention"
                } else {
                    "linear_attention"
                };
                if t.as_str() != Some(want) {
                    return Err(bad(
                        "layer_types",
                        format!(
                            "layer {i} is {t}, but llama.cpp derives the layer kinds from \
                             full_attention_interval {interval} (layer {i} would be {want})"
                        ),
                    ));
                }
            }
        }
        let rope = config
            .get("rope_parameters")
            .filter(|v| v.is_object())
            .or_else(|| config.get("rope_scaling").filter(|v| v.is_object()));
        let partial = config
            .get("partial_rotary_factor")
            .and_then(Json::as_f64)
            .or_else(|| {
                rope.and_then(|r| r.get("partial_rotary_factor"))
                    .and_then(Json::as_f64)
            })
            .unwrap_or(0.25);
        let n_head = need("num_attention_heads", "attention head count")?;
        let head_dim = match config.get("head_dim").and_then(Json::as_u64) {
            Some(d) => d,
            None => need("hidden_size", "embedding length")? / n_head,
        };
        let n_rot = (head_dim as f64 * partial) as u64;
        let sections = match arch {
            Arch::Qwen35 | Arch::Qwen35Moe => {
                let mut s = [11u32, 11, 10, 0];
                if let Some(m) = rope.and_then(|r| r.get("mrope_section")) {
                    let a = m.as_array().filter(|a| a.len() <= 4).ok_or_else(|| {
                        bad(
                            "mrope_section",
                            format!("must be a list of at most 4 integers, found {m}"),
                        )
                    })?;
                    s = [0; 4];
                    for (i, v) in a.iter().enumerate() {
                        s[i] = v.as_u64().ok_or_else(|| {
                            bad(
                                "mrope_section",
                                format!("must be a list of integers, found {m}"),
                            )
                        })? as u32;
                    }
                }
                Some(s)
            }
            _ => None,
        };
        let mtp_layers = match arch {
            Arch::Qwen35 | Arch::Qwen35Moe => config
                .get("mtp_num_hidden_layers")
                .and_then(Json::as_u64)
                .unwrap_or(0),
            _ => 0,
        };
        Ok(Some(HybridConfig {
            n_k_heads,
            n_v_heads,
            k_dim,
            v_dim,
            conv_kernel,
            full_attention_interval: interval,
            n_rot,
            sections,
            mtp_layers,
            v_reorder: matches!(arch, Arch::Qwen35 | Arch::Qwen35Moe) && n_k_heads != n_v_heads,
        }))
    }

    /// Qwen3NextModel's `ssm.*` / interval / rotary keys, then the Qwen3.5 mixins' rope
    /// sections and `nextn_predict_layers` (after general.file_type and the expert keys).
    pub fn metadata(&self, a: &str, md: &mut Vec<(String, Value)>) {
        let mut put = |k: &str, v: u64| md.push((format!("{a}.{k}"), Value::U32(v as u32)));
        put("ssm.conv_kernel", self.conv_kernel);
        put("ssm.state_size", self.k_dim);
        put("ssm.group_count", self.n_k_heads);
        put("ssm.time_step_rank", self.n_v_heads);
        put("ssm.inner_size", self.v_dim * self.n_v_heads);
        put("full_attention_interval", self.full_attention_interval);
        put("rope.dimension_count", self.n_rot);
        if let Some(s) = self.sections {
            md.push((
                format!("{a}.rope.dimension_sections"),
                Value::Array(crate::formats::gguf::value::Array::I32(
                    s.iter().map(|&x| x as i32).collect(),
                )),
            ));
        }
        if self.mtp_layers > 0 {
            md.push((
                format!("{a}.nextn_predict_layers"),
                Value::U32(self.mtp_layers as u32),
            ));
        }
    }

    pub fn is_recurrent(&self, layer: u64) -> bool {
        (layer + 1) % self.full_attention_interval != 0
    }
}

/// One GGUF tensor of the plan.
pub struct Planned {
    pub tensor: InputTensor,
    pub gather: Gather,
}

/// What the plan left out, for the user.
#[derive(Default, Debug)]
pub struct Skipped {
    pub vision: usize,
    pub mtp: usize,
}

/// How a single HF tensor becomes a GGUF one.
struct Rule {
    gguf: String,
    shape: Vec<u64>,
    why: String,
    op: Op,
    rows: Option<Vec<u64>>,
    cols: Option<Vec<u64>>,
    /// HF shape -> GGUF dims (ne0 first), when not simply reversed (conv1d squeeze).
    dims: Option<Vec<u64>>,
}

fn rule(gguf: String, shape: Vec<u64>, why: String) -> Rule {
    Rule {
        gguf,
        shape,
        why,
        op: Op::None,
        rows: None,
        cols: None,
        dims: None,
    }
}

/// The name as the language model alone would have it (`model.language_model.` of the
/// multimodal Qwen3.5 checkpoints), or `None` for a vision tower tensor.
fn text_name(hf: &str) -> Option<String> {
    for v in [
        "model.visual.",
        "visual.",
        "model.vision_tower.",
        "vision_tower.",
        "model.multi_modal_projector.",
        "multi_modal_projector.",
        "vision_model.",
        "model.vision_model.",
    ] {
        if hf.starts_with(v) {
            return None;
        }
    }
    if let Some(rest) = hf.strip_prefix("model.language_model.") {
        return Some(format!("model.{rest}"));
    }
    if let Some(rest) = hf.strip_prefix("language_model.") {
        return Some(rest.to_string());
    }
    Some(hf.to_string())
}

/// `mtp.*` renamed as `_Qwen35MtpMixin.filter_tensors` renames it.
fn mtp_name(hf: &str, n_layer: u64) -> Option<String> {
    let rest = hf
        .strip_prefix("model.mtp.")
        .or_else(|| hf.strip_prefix("mtp."))?;
    if let Some(l) = rest.strip_prefix("layers.") {
        let (i, tail) = l.split_once('.')?;
        return Some(format!("model.layers.{}.{tail}", n_layer + number(i)?));
    }
    let (head, tail) = rest.split_once('.')?;
    let to = match head {
        "fc" => "eh_proj",
        "pre_fc_norm_embedding" => "enorm",
        "pre_fc_norm_hidden" => "hnorm",
        "norm" => "shared_head.norm",
        _ => return None,
    };
    Some(format!("model.layers.{n_layer}.{to}.{tail}"))
}

/// Builds the plan: every GGUF tensor with its source rows, checked against config.json.
pub fn plan(st: &SafetensorsModel, c: &HfConfig, dir: &Path) -> Result<(Vec<Planned>, Skipped)> {
    let arch = c.arch;
    let arch_name = arch.gguf_name();
    let h = c.hybrid.as_ref();
    let n_blocks = c.n_layer + h.map_or(0, |h| h.mtp_layers);
    let mut out: Vec<Planned> = Vec::new();
    let mut skipped = Skipped::default();
    let mut seen: HashMap<String, String> = HashMap::new();
    // (layer, part) -> expert -> tensor index; position in `out` where the stack goes
    let mut experts: BTreeMap<(u64, ExpertPart), BTreeMap<u64, usize>> = BTreeMap::new();
    let mut expert_slot: BTreeMap<(u64, ExpertPart), usize> = BTreeMap::new();
    let mut dtype: Option<Dtype> = None;

    for (i, t) in st.tensors.iter().enumerate() {
        let path = st.shard_path(t).to_path_buf();
        if super::names::is_skipped(&t.name) {
            continue;
        }
        let Some(name) = text_name(&t.name) else {
            skipped.vision += 1;
            continue;
        };
        let name = if name.starts_with("mtp.") || name.starts_with("model.mtp.") {
            if h.is_none_or(|h| h.mtp_layers == 0) {
                skipped.mtp += 1;
                continue;
            }
            mtp_name(&name, c.n_layer).ok_or_else(|| HfError::UnknownTensor {
                path: path.clone(),
                tensor: t.name.clone(),
                arch: arch_name.into(),
            })?
        } else {
            name
        };
        let ty = match t.dtype {
            Dtype::F32 => GgmlType::F32,
            Dtype::F16 => GgmlType::F16,
            Dtype::BF16 => GgmlType::BF16,
            _ => {
                return Err(HfError::BadDtype {
                    path,
                    tensor: t.name.clone(),
                    dtype: t.dtype.to_string(),
                    arch: arch_name.into(),
                }
                .into());
            }
        };
        dtype.get_or_insert(t.dtype);
        if let Some((layer, e, part)) = expert_name(&name) {
            let moe = c.moe.as_ref().ok_or_else(|| HfError::UnknownTensor {
                path: path.clone(),
                tensor: t.name.clone(),
                arch: arch_name.into(),
            })?;
            if layer >= n_blocks || e >= moe.n_expert {
                return Err(Error::Invalid(format!(
                    "{}: tensor '{}': expert {e} of layer {layer}, but config.json says {} experts and {n_blocks} layers",
                    path.display(),
                    t.name,
                    moe.n_expert
                )));
            }
            let fe = moe.expert_ff(c.n_ff);
            let want = match part {
                ExpertPart::Down => vec![c.n_embd, fe],
                _ => vec![fe, c.n_embd],
            };
            if t.shape != want {
                return Err(HfError::BadShape {
                    path,
                    tensor: t.name.clone(),
                    actual: t.shape.clone(),
                    expected: want,
                    why: format!("expert feed-forward length {fe}, hidden_size {}", c.n_embd),
                }
                .into());
            }
            let slot = experts.entry((layer, part)).or_default();
            if let Some(first) = slot.insert(e, i) {
                return Err(HfError::DuplicateTensor {
                    path,
                    first: st.tensors[first].name.clone(),
                    second: t.name.clone(),
                    gguf: format!("blk.{layer}.{}.weight", part.gguf_base()),
                }
                .into());
            }
            if let std::collections::btree_map::Entry::Vacant(v) = expert_slot.entry((layer, part))
            {
                v.insert(out.len());
                // placeholder, filled once all experts are known
                out.push(Planned {
                    tensor: InputTensor {
                        name: String::new(),
                        dims: vec![],
                        ty,
                    },
                    gather: Gather::parts(vec![], 1),
                });
            }
            continue;
        }
        let rules = rules_for(&name, c).ok_or_else(|| HfError::UnknownTensor {
            path: path.clone(),
            tensor: t.name.clone(),
            arch: arch_name.into(),
        })?;
        for r in rules {
            if let Some(layer) = layer_of(&r.gguf) {
                if layer >= n_blocks {
                    return Err(HfError::LayerOutOfRange {
                        path,
                        tensor: t.name.clone(),
                        layer,
                        n_layer: n_blocks,
                    }
                    .into());
                }
            }
            if t.shape != r.shape {
                return Err(HfError::BadShape {
                    path,
                    tensor: t.name.clone(),
                    actual: t.shape.clone(),
                    expected: r.shape,
                    why: r.why,
                }
                .into());
            }
            if let Some(first) = seen.insert(r.gguf.clone(), t.name.clone()) {
                return Err(HfError::DuplicateTensor {
                    path,
                    first,
                    second: t.name.clone(),
                    gguf: r.gguf,
                }
                .into());
            }
            let dims: Vec<u64> = r
                .dims
                .unwrap_or_else(|| t.shape.iter().rev().copied().collect());
            // rows of the source tensor (a fused projection has more than the output)
            let rows_total: u64 = t.shape.iter().rev().skip(1).product();
            out.push(Planned {
                tensor: InputTensor {
                    name: r.gguf,
                    dims,
                    ty,
                },
                gather: Gather {
                    parts: vec![i],
                    rows_per_part: rows_total.max(1),
                    row_map: r.rows,
                    col_map: r.cols,
                    op: r.op,
                },
            });
        }
    }

    // stack the experts, in expert order, where the layer's first expert tensor was seen
    for ((layer, part), slot) in &expert_slot {
        let moe = c
            .moe
            .as_ref()
            .ok_or_else(|| Error::Invalid("experts without MoE config".into()))?;
        let got = &experts[&(*layer, *part)];
        let mut parts = Vec::with_capacity(moe.n_expert as usize);
        for e in 0..moe.n_expert {
            let idx = got.get(&e).copied().ok_or_else(|| HfError::MissingTensor {
                path: dir.to_path_buf(),
                tensor: format!(
                    "model.layers.{layer}.mlp.experts.{e}.{}",
                    match part {
                        ExpertPart::Gate => "gate_proj.weight",
                        ExpertPart::Up => "up_proj.weight",
                        ExpertPart::Down => "down_proj.weight",
                    }
                ),
                gguf: format!("blk.{layer}.{}.weight", part.gguf_base()),
                arch: arch_name.into(),
            })?;
            parts.push(idx);
        }
        let first = &st.tensors[parts[0]];
        if let Some(other) = parts
            .iter()
            .map(|&p| &st.tensors[p])
            .find(|t| t.dtype != first.dtype)
        {
            return Err(Error::Invalid(format!(
                "{}: experts of one tensor have different dtypes ('{}' {} and '{}' {})",
                dir.display(),
                first.name,
                first.dtype,
                other.name,
                other.dtype
            )));
        }
        let (rows, cols) = (first.shape[0], first.shape[1]);
        let gguf = format!("blk.{layer}.{}.weight", part.gguf_base());
        seen.insert(gguf.clone(), first.name.clone());
        out[*slot] = Planned {
            tensor: InputTensor {
                name: gguf,
                dims: vec![cols, rows, moe.n_expert],
                ty: out[*slot].tensor.ty,
            },
            gather: Gather::parts(parts, rows),
        };
    }
    check_complete(c, &seen, dir)?;
    Ok((out, skipped))
}

fn layer_of(gguf: &str) -> Option<u64> {
    let rest = gguf.strip_prefix("blk.")?;
    number(rest.split_once('.')?.0)
}

/// The GGUF tensors `name` becomes (two for Qwen3-Next's fused `in_proj_qkvz`).
fn rules_for(name: &str, c: &HfConfig) -> Option<Vec<Rule>> {
    let hybrid = c.arch.is_hybrid();
    let (e, v) = (c.n_embd, c.vocab_size);
    let norm_op = if hybrid { Op::AddOne } else { Op::None };
    let one = |r: Rule| Some(vec![r]);
    match name {
        "model.embed_tokens.weight" => {
            return one(rule(
                "token_embd.weight".into(),
                vec![v, e],
                format!("vocab_size {v} x hidden_size {e}"),
            ));
        }
        "lm_head.weight" => {
            return one(rule(
                "output.weight".into(),
                vec![v, e],
                format!("vocab_size {v} x hidden_size {e}"),
            ));
        }
        "model.norm.weight" => {
            let mut r = rule(
                "output_norm.weight".into(),
                vec![e],
                format!("hidden_size {e}"),
            );
            r.op = norm_op;
            return one(r);
        }
        _ => {}
    }
    let rest = name.strip_prefix("model.layers.")?;
    let (l, rest) = rest.split_once('.')?;
    let l = number(l)?;
    let is_mtp = l >= c.n_layer;
    let blk = |base: &str| format!("blk.{l}.{base}.weight");
    let (hd, hq, hkv) = (c.head_dim, c.n_head, c.n_head_kv);
    let fe = c.moe.as_ref().map(|m| m.expert_ff(c.n_ff));
    let norm = |base: &str, n: u64, what: &str| {
        let mut r = rule(blk(base), vec![n], format!("{what} {n}"));
        r.op = norm_op;
        r
    };
    let lin =
        |base: &str, rows: u64, cols: u64, why: String| rule(blk(base), vec![rows, cols], why);
    let gated_q = hybrid;
    let r = match rest {
        "input_layernorm.weight" => norm("attn_norm", e, "hidden_size"),
        "post_attention_layernorm.weight" => norm(
            if hybrid {
                "post_attention_norm"
            } else {
                "ffn_norm"
            },
            e,
            "hidden_size",
        ),
        "self_attn.q_proj.weight" => {
            let rows = hq * hd * if gated_q { 2 } else { 1 };
            let mut r = lin(
                "attn_q",
                rows,
                e,
                format!(
                    "{hq} heads x head_dim {hd}{}, hidden_size {e}",
                    if gated_q { " x 2 (query and gate)" } else { "" }
                ),
            );
            if c.arch == Arch::Llama {
                r.rows = Some(
                    (0..rows)
                        .map(|x| super::permuted_source_row(x, rows, hq))
                        .collect(),
                );
            }
            r
        }
        "self_attn.k_proj.weight" => {
            let rows = hkv * hd;
            let mut r = lin(
                "attn_k",
                rows,
                e,
                format!("{hkv} kv heads x head_dim {hd}, hidden_size {e}"),
            );
            if c.arch == Arch::Llama {
                r.rows = Some(
                    (0..rows)
                        .map(|x| super::permuted_source_row(x, rows, hkv))
                        .collect(),
                );
            }
            r
        }
        "self_attn.v_proj.weight" => lin(
            "attn_v",
            hkv * hd,
            e,
            format!("{hkv} kv heads x head_dim {hd}, hidden_size {e}"),
        ),
        "self_attn.o_proj.weight" => lin(
            "attn_output",
            e,
            hq * hd,
            format!("hidden_size {e}, {hq} heads x head_dim {hd}"),
        ),
        "self_attn.q_norm.weight" if c.arch != Arch::Llama => norm("attn_q_norm", hd, "head_dim"),
        "self_attn.k_norm.weight" if c.arch != Arch::Llama => norm("attn_k_norm", hd, "head_dim"),
        "mlp.gate_proj.weight" if c.moe.is_none() => lin(
            "ffn_gate",
            c.n_ff,
            e,
            format!("intermediate_size {}, hidden_size {e}", c.n_ff),
        ),
        "mlp.up_proj.weight" if c.moe.is_none() => lin(
            "ffn_up",
            c.n_ff,
            e,
            format!("intermediate_size {}, hidden_size {e}", c.n_ff),
        ),
        "mlp.down_proj.weight" if c.moe.is_none() => lin(
            "ffn_down",
            e,
            c.n_ff,
            format!("hidden_size {e}, intermediate_size {}", c.n_ff),
        ),
        "mlp.experts.gate_up_proj" | "mlp.experts.gate_up_proj.weight" => {
            // fused experts (transformers 5 checkpoints): [n_expert, 2 * n_ff_exp, n_embd],
            // gate rows first (Qwen2MoeModel.modify_tensors splits on dim -2)
            let m = c.moe.as_ref()?;
            let (n, f) = (m.n_expert, fe?);
            let shape = vec![n, 2 * f, e];
            let why = format!("{n} experts x 2 x expert feed-forward length {f}, hidden_size {e}");
            let mut out = Vec::new();
            for (base, off) in [("ffn_gate_exps", 0), ("ffn_up_exps", f)] {
                let mut r = rule(blk(base), shape.clone(), why.clone());
                r.dims = Some(vec![e, f, n]);
                r.rows = Some(
                    (0..n)
                        .flat_map(|x| (0..f).map(move |j| x * 2 * f + off + j))
                        .collect(),
                );
                out.push(r);
            }
            return Some(out);
        }
        "mlp.experts.down_proj" | "mlp.experts.down_proj.weight" => {
            let m = c.moe.as_ref()?;
            let (n, f) = (m.n_expert, fe?);
            let mut r = rule(
                blk("ffn_down_exps"),
                vec![n, e, f],
                format!("{n} experts x hidden_size {e} x expert feed-forward length {f}"),
            );
            r.dims = Some(vec![f, e, n]);
            r
        }
        "mlp.gate.weight" | "block_sparse_moe.gate.weight" => {
            let n = c.moe.as_ref()?.n_expert;
            lin(
                "ffn_gate_inp",
                n,
                e,
                format!("{n} experts, hidden_size {e}"),
            )
        }
        "mlp.shared_expert_gate.weight" => {
            c.moe.as_ref()?.n_ff_shexp?;
            lin("ffn_gate_inp_shexp", 1, e, format!("1, hidden_size {e}"))
        }
        "mlp.shared_expert.gate_proj.weight" | "mlp.shared_expert.up_proj.weight" => {
            let fs = c.moe.as_ref()?.n_ff_shexp?;
            let base = if rest.contains("gate_proj") {
                "ffn_gate_shexp"
            } else {
                "ffn_up_shexp"
            };
            lin(
                base,
                fs,
                e,
                format!("shared_expert_intermediate_size {fs}, hidden_size {e}"),
            )
        }
        "mlp.shared_expert.down_proj.weight" => {
            let fs = c.moe.as_ref()?.n_ff_shexp?;
            lin(
                "ffn_down_shexp",
                e,
                fs,
                format!("hidden_size {e}, shared_expert_intermediate_size {fs}"),
            )
        }
        "eh_proj.weight" if is_mtp && l == c.n_layer => lin(
            "nextn.eh_proj",
            e,
            2 * e,
            format!("hidden_size {e}, 2 x hidden_size"),
        ),
        "enorm.weight" if is_mtp => norm("nextn.enorm", e, "hidden_size"),
        "hnorm.weight" if is_mtp => norm("nextn.hnorm", e, "hidden_size"),
        "shared_head.norm.weight" if is_mtp => norm("nextn.shared_head_norm", e, "hidden_size"),
        _ if rest.starts_with("linear_attn.") && hybrid => {
            return linear_rules(rest.strip_prefix("linear_attn.")?, l, c);
        }
        _ => return None,
    };
    one(r)
}

/// The Gated DeltaNet tensors of layer `l`.
fn linear_rules(rest: &str, l: u64, c: &HfConfig) -> Option<Vec<Rule>> {
    let h = c.hybrid.as_ref()?;
    if l >= c.n_layer || !h.is_recurrent(l) {
        return None;
    }
    let e = c.n_embd;
    let (nk, nv, dk, dv) = (h.n_k_heads, h.n_v_heads, h.k_dim, h.v_dim);
    let (qk, vd) = (2 * nk * dk, nv * dv);
    let blk = |base: &str, suffix: &str| format!("blk.{l}.{base}.{suffix}");
    let heads = format!("{nk} key heads x {dk}, {nv} value heads x {dv}, hidden_size {e}");
    let reorder = |d: u64| h.v_reorder.then(|| reorder_v_heads(nk, nv, d));
    let mut r = match rest {
        "in_proj_qkv.weight" if c.arch != Arch::Qwen3Next => {
            let mut r = rule(blk("attn_qkv", "weight"), vec![qk + vd, e], heads);
            r.rows = reorder(dv).map(|m| (0..qk).chain(m.into_iter().map(|x| qk + x)).collect());
            r
        }
        "in_proj_z.weight" if c.arch != Arch::Qwen3Next => {
            let mut r = rule(blk("attn_gate", "weight"), vec![vd, e], heads);
            r.rows = reorder(dv);
            r
        }
        "in_proj_a.weight" | "in_proj_b.weight" if c.arch != Arch::Qwen3Next => {
            let base = if rest.starts_with("in_proj_a") {
                "ssm_alpha"
            } else {
                "ssm_beta"
            };
            let mut r = rule(blk(base, "weight"), vec![nv, e], heads);
            r.rows = reorder(1);
            r
        }
        "in_proj_qkvz.weight" if c.arch == Arch::Qwen3Next => {
            // per k head: [q (dk), k (dk), v (r*dv), z (r*dv)] -> all q, all k, all v | all z
            let rv = nv / nk * dv;
            let g = 2 * dk + 2 * rv;
            let mut qkv = Vec::with_capacity((qk + vd) as usize);
            for (off, width) in [(0, dk), (dk, dk), (2 * dk, rv)] {
                for hh in 0..nk {
                    qkv.extend((0..width).map(|j| hh * g + off + j));
                }
            }
            let z: Vec<u64> = (0..nk)
                .flat_map(|hh| (0..rv).map(move |j| hh * g + 2 * dk + rv + j))
                .collect();
            let shape = vec![qk + 2 * vd, e];
            let mut a = rule(blk("attn_qkv", "weight"), shape.clone(), heads.clone());
            a.dims = Some(vec![e, qk + vd]);
            a.rows = Some(qkv);
            let mut b = rule(blk("attn_gate", "weight"), shape, heads);
            b.dims = Some(vec![e, vd]);
            b.rows = Some(z);
            return Some(vec![a, b]);
        }
        "in_proj_ba.weight" if c.arch == Arch::Qwen3Next => {
            rule(blk("ssm_ba", "weight"), vec![2 * nv, e], heads)
        }
        "A_log" => {
            let mut r = rule(
                blk("ssm_a", "weight")
                    .trim_end_matches(".weight")
                    .to_string(),
                vec![nv],
                format!("{nv} value heads"),
            );
            r.op = Op::NegExp;
            r.cols = reorder(1);
            r
        }
        "dt_bias" => {
            let mut r = rule(blk("ssm_dt", "bias"), vec![nv], format!("{nv} value heads"));
            r.cols = reorder(1);
            r
        }
        "conv1d.weight" => {
            let ch = qk + vd;
            let k = h.conv_kernel;
            let mut r = rule(
                blk("ssm_conv1d", "weight"),
                vec![ch, 1, k],
                format!("{ch} channels (q, k, v), 1, linear_conv_kernel_dim {k}"),
            );
            r.dims = Some(vec![k, ch]);
            r.rows = reorder(dv).map(|m| (0..qk).chain(m.into_iter().map(|x| qk + x)).collect());
            r
        }
        "norm.weight" => rule(
            blk("ssm_norm", "weight"),
            vec![dv],
            format!("linear_value_head_dim {dv}"),
        ),
        "out_proj.weight" => {
            let mut r = rule(blk("ssm_out", "weight"), vec![e, vd], heads);
            r.cols = reorder(dv);
            r
        }
        _ => return None,
    };
    if r.gguf.ends_with("ssm_a") {
        // gguf-py names A_log's tensor `ssm_a` without a suffix
        r.gguf = format!("blk.{l}.ssm_a");
    }
    Some(vec![r])
}

/// Every tensor llama.cpp's graph loads for this architecture is there.
fn check_complete(c: &HfConfig, seen: &HashMap<String, String>, dir: &Path) -> Result<(), HfError> {
    let arch = c.arch;
    let missing = |gguf: &str, hf: String| HfError::MissingTensor {
        path: dir.to_path_buf(),
        tensor: hf,
        gguf: gguf.into(),
        arch: arch.gguf_name().into(),
    };
    for (g, hf) in [
        ("token_embd.weight", "model.embed_tokens.weight"),
        ("output_norm.weight", "model.norm.weight"),
    ] {
        if !seen.contains_key(g) {
            return Err(missing(g, hf.into()));
        }
    }
    if !c.tie_word_embeddings && !seen.contains_key("output.weight") {
        return Err(missing("output.weight", "lm_head.weight".into()));
    }
    let h = c.hybrid.as_ref();
    let n_blocks = c.n_layer + h.map_or(0, |h| h.mtp_layers);
    for l in 0..n_blocks {
        let mut need: Vec<(&str, &str)> = vec![("attn_norm.weight", "input_layernorm.weight")];
        let recurrent = l < c.n_layer && h.is_some_and(|h| h.is_recurrent(l));
        if recurrent {
            need.extend([
                (
                    "attn_qkv.weight",
                    if arch == Arch::Qwen3Next {
                        "linear_attn.in_proj_qkvz.weight"
                    } else {
                        "linear_attn.in_proj_qkv.weight"
                    },
                ),
                (
                    "attn_gate.weight",
                    if arch == Arch::Qwen3Next {
                        "linear_attn.in_proj_qkvz.weight"
                    } else {
                        "linear_attn.in_proj_z.weight"
                    },
                ),
                ("ssm_conv1d.weight", "linear_attn.conv1d.weight"),
                ("ssm_dt.bias", "linear_attn.dt_bias"),
                ("ssm_a", "linear_attn.A_log"),
                ("ssm_norm.weight", "linear_attn.norm.weight"),
                ("ssm_out.weight", "linear_attn.out_proj.weight"),
            ]);
            if arch == Arch::Qwen3Next {
                need.push(("ssm_ba.weight", "linear_attn.in_proj_ba.weight"));
            } else {
                need.push(("ssm_alpha.weight", "linear_attn.in_proj_a.weight"));
                need.push(("ssm_beta.weight", "linear_attn.in_proj_b.weight"));
            }
        } else {
            need.extend([
                ("attn_q.weight", "self_attn.q_proj.weight"),
                ("attn_k.weight", "self_attn.k_proj.weight"),
                ("attn_v.weight", "self_attn.v_proj.weight"),
                ("attn_output.weight", "self_attn.o_proj.weight"),
            ]);
            if arch != Arch::Llama {
                need.push(("attn_q_norm.weight", "self_attn.q_norm.weight"));
                need.push(("attn_k_norm.weight", "self_attn.k_norm.weight"));
            }
        }
        need.push(if arch.is_hybrid() {
            (
                "post_attention_norm.weight",
                "post_attention_layernorm.weight",
            )
        } else {
            ("ffn_norm.weight", "post_attention_layernorm.weight")
        });
        match &c.moe {
            Some(m) => {
                let router = if m.local_key {
                    "block_sparse_moe.gate.weight"
                } else {
                    "mlp.gate.weight"
                };
                need.push(("ffn_gate_inp.weight", router));
                let e = if m.local_key {
                    "block_sparse_moe.experts.0.w1.weight"
                } else {
                    "mlp.experts.0.gate_proj.weight"
                };
                need.push(("ffn_gate_exps.weight", e));
                need.push(("ffn_up_exps.weight", e));
                need.push(("ffn_down_exps.weight", e));
                if m.n_ff_shexp.is_some() {
                    need.extend([
                        ("ffn_gate_inp_shexp.weight", "mlp.shared_expert_gate.weight"),
                        (
                            "ffn_gate_shexp.weight",
                            "mlp.shared_expert.gate_proj.weight",
                        ),
                        ("ffn_up_shexp.weight", "mlp.shared_expert.up_proj.weight"),
                        (
                            "ffn_down_shexp.weight",
                            "mlp.shared_expert.down_proj.weight",
                        ),
                    ]);
                }
            }
            None => need.extend([
                ("ffn_gate.weight", "mlp.gate_proj.weight"),
                ("ffn_up.weight", "mlp.up_proj.weight"),
                ("ffn_down.weight", "mlp.down_proj.weight"),
            ]),
        }
        if l >= c.n_layer {
            need.extend([
                ("nextn.eh_proj.weight", "fc.weight"),
                ("nextn.enorm.weight", "pre_fc_norm_embedding.weight"),
                ("nextn.hnorm.weight", "pre_fc_norm_hidden.weight"),
                ("nextn.shared_head_norm.weight", "norm.weight"),
            ]);
        }
        for (g, hf) in need {
            let gguf = format!("blk.{l}.{g}");
            if !seen.contains_key(&gguf) {
                let hf = if l >= c.n_layer {
                    if g.starts_with("nextn.") {
                        format!("mtp.{hf}")
                    } else {
                        format!("mtp.layers.{}.{hf}", l - c.n_layer)
                    }
                } else {
                    format!("model.layers.{l}.{hf}")
                };
                return Err(missing(&gguf, hf));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mtp_and_vision_names() {
        assert_eq!(
            mtp_name("mtp.fc.weight", 4).as_deref(),
            Some("model.layers.4.eh_proj.weight")
        );
        assert_eq!(
            mtp_name("mtp.layers.0.self_attn.q_proj.weight", 4).as_deref(),
            Some("model.layers.4.self_attn.q_proj.weight")
        );
        assert_eq!(
            mtp_name("mtp.norm.weight", 2).as_deref(),
            Some("model.layers.2.shared_head.norm.weight")
        );
        assert_eq!(text_name("model.visual.blocks.0.attn.qkv.weight"), None);
        assert_eq!(
            text_name("model.language_model.layers.1.mlp.up_proj.weight").as_deref(),
            Some("model.layers.1.mlp.up_proj.weight")
        );
    }
}
