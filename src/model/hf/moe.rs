//! Mixture-of-experts folders: the expert hyper-parameters config.json gives and the GGUF keys
//! llama.cpp's converter writes for them (`TextModel.set_gguf_parameters`: expert_count from
//! `num_local_experts`, expert_used_count; `Qwen2MoeModel`: expert_count from `num_experts`,
//! expert and shared-expert feed-forward lengths), and the HF names of one expert's weights
//! (`mlp.experts.E.{gate,up,down}_proj`, Mixtral's `block_sparse_moe.experts.E.w{1,3,2}`), which
//! the converter stacks into 3-D `ffn_{gate,up,down}_exps` tensors.

use super::config::Arch;
use super::error::HfError;
use crate::formats::gguf::Value;
use serde_json::Value as Json;
use std::path::Path;

/// Routed experts as config.json gives them.
#[derive(Clone, Debug, PartialEq)]
pub struct MoeConfig {
    pub n_expert: u64,
    pub n_expert_used: u64,
    /// Mixtral's `num_local_experts` (written by TextModel) rather than Qwen's `num_experts`
    /// (written by Qwen2MoeModel, after general.file_type).
    pub local_key: bool,
    /// `moe_intermediate_size` (Qwen); Mixtral's experts are `intermediate_size` wide.
    pub n_ff_exp: Option<u64>,
    /// `shared_expert_intermediate_size` (Qwen3-Next, Qwen3.5-MoE).
    pub n_ff_shexp: Option<u64>,
    /// `norm_topk_prob` (Qwen3-MoE/Next): llama.cpp's qwen graphs always renormalize.
    pub norm_topk_prob: Option<bool>,
}

fn get_u64(config: &Json, path: &Path, key: &str) -> Result<Option<u64>, HfError> {
    match config.get(key) {
        None | Some(Json::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .filter(|&n| n > 0)
            .map(Some)
            .ok_or_else(|| HfError::BadKey {
                path: path.to_path_buf(),
                key: key.into(),
                what: format!("must be a positive integer, found {v}"),
            }),
    }
}

impl MoeConfig {
    pub fn from_json(path: &Path, config: &Json, arch: Arch) -> Result<Option<MoeConfig>, HfError> {
        let local = get_u64(config, path, "num_local_experts")?;
        let qwen = get_u64(config, path, "num_experts")?;
        let (n_expert, local_key) = match arch {
            Arch::Llama => match local {
                Some(n) => (n, true),
                None => return Ok(None),
            },
            Arch::Qwen3Moe | Arch::Qwen3Next | Arch::Qwen35Moe => match qwen {
                Some(n) => (n, false),
                None => {
                    return Err(HfError::MissingKey {
                        path: path.to_path_buf(),
                        key: "num_experts".into(),
                        what: "number of experts",
                    });
                }
            },
            _ => return Ok(None),
        };
        let n_expert_used =
            get_u64(config, path, "num_experts_per_tok")?.ok_or_else(|| HfError::MissingKey {
                path: path.to_path_buf(),
                key: "num_experts_per_tok".into(),
                what: "experts used per token",
            })?;
        if n_expert_used > n_expert {
            return Err(HfError::BadKey {
                path: path.to_path_buf(),
                key: "num_experts_per_tok".into(),
                what: format!("{n_expert_used} is more than the {n_expert} experts"),
            });
        }
        let n_ff_exp = get_u64(config, path, "moe_intermediate_size")?;
        if !local_key && n_ff_exp.is_none() {
            return Err(HfError::MissingKey {
                path: path.to_path_buf(),
                key: "moe_intermediate_size".into(),
                what: "expert feed-forward length",
            });
        }
        let norm_topk_prob = config.get("norm_topk_prob").and_then(Json::as_bool);
        if norm_topk_prob == Some(false) {
            eprintln!(
                "gpuq: warning: {}: norm_topk_prob is false, but llama.cpp's {} graph renormalizes \
                 the top-k expert weights; llama.cpp will not compute this model's function",
                path.display(),
                arch.gguf_name()
            );
        }
        Ok(Some(MoeConfig {
            n_expert,
            n_expert_used,
            local_key,
            n_ff_exp,
            n_ff_shexp: get_u64(config, path, "shared_expert_intermediate_size")?,
            norm_topk_prob,
        }))
    }

    /// TextModel's expert keys (before key_length and general.file_type).
    pub fn text_model_metadata(&self, put: &mut dyn FnMut(&str, Value)) {
        if self.local_key {
            put("expert_count", Value::U32(self.n_expert as u32));
        }
        put("expert_used_count", Value::U32(self.n_expert_used as u32));
    }

    /// Qwen2MoeModel's keys (after general.file_type).
    pub fn qwen_moe_metadata(&self, arch: &str, md: &mut Vec<(String, Value)>) {
        if self.local_key {
            return;
        }
        md.push((
            format!("{arch}.expert_count"),
            Value::U32(self.n_expert as u32),
        ));
        if let Some(n) = self.n_ff_exp {
            md.push((
                format!("{arch}.expert_feed_forward_length"),
                Value::U32(n as u32),
            ));
        }
        if let Some(n) = self.n_ff_shexp {
            md.push((
                format!("{arch}.expert_shared_feed_forward_length"),
                Value::U32(n as u32),
            ));
        }
    }

    /// Width of one expert's hidden layer.
    pub fn expert_ff(&self, n_ff: u64) -> u64 {
        self.n_ff_exp.unwrap_or(n_ff)
    }
}

/// Which of an expert's three matrices.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExpertPart {
    Gate,
    Up,
    Down,
}

impl ExpertPart {
    pub fn gguf_base(self) -> &'static str {
        match self {
            ExpertPart::Gate => "ffn_gate_exps",
            ExpertPart::Up => "ffn_up_exps",
            ExpertPart::Down => "ffn_down_exps",
        }
    }
}

/// `model.layers.L.{mlp|block_sparse_moe}.experts.E.<w>.weight` -> (layer, expert, part).
pub fn expert_name(hf: &str) -> Option<(u64, u64, ExpertPart)> {
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    let rest = rest
        .strip_prefix("mlp.experts.")
        .or_else(|| rest.strip_prefix("block_sparse_moe.experts."))?;
    let (expert, rest) = rest.split_once('.')?;
    let part = match rest {
        "gate_proj.weight" | "w1.weight" => ExpertPart::Gate,
        "up_proj.weight" | "w3.weight" => ExpertPart::Up,
        "down_proj.weight" | "w2.weight" => ExpertPart::Down,
        _ => return None,
    };
    Some((number(layer)?, number(expert)?, part))
}

/// A decimal index without leading zeros.
pub fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expert_names() {
        assert_eq!(
            expert_name("model.layers.3.mlp.experts.17.down_proj.weight"),
            Some((3, 17, ExpertPart::Down))
        );
        assert_eq!(
            expert_name("model.layers.0.block_sparse_moe.experts.1.w3.weight"),
            Some((0, 1, ExpertPart::Up))
        );
        assert_eq!(expert_name("model.layers.0.mlp.experts.01.w3.weight"), None);
        assert_eq!(expert_name("model.layers.0.mlp.gate.weight"), None);
    }
}
