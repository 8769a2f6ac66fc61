//! config.json -> GGUF metadata, the keys llama.cpp's `convert_hf_to_gguf.py` writes for the
//! supported classes (`TextModel.set_gguf_parameters`, plus `LlamaModel`'s vocab size and rope
//! dimension count, the llama3 rope-factor tensor of `LlamaModel.generate_extra_tensors`, and
//! `BitnetModel`'s linear rope scaling of factor 1), and how a BitNet checkpoint stores its
//! BitLinear weights (`quantization_config`).

use super::error::HfError;
use crate::formats::gguf::Value;
use serde_json::Value as Json;
use std::path::{Path, PathBuf};

/// The GGUF architecture a Hugging Face class converts to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// `llama`: q/k rows permuted for llama.cpp's rotary layout.
    Llama,
    /// `qwen2`: NEOX rotary (no permutation), q/k/v biases.
    Qwen2,
    /// `qwen3`: as qwen2 without biases, with per-head q/k RMS norms.
    Qwen3,
    /// `bitnet`: BitNet b1.58 (NEOX rotary, no permutation; sub-norms before o_proj and
    /// down_proj; ternary BitLinear weights, tied embeddings).
    Bitnet,
    /// `qwen3moe`: qwen3 with a routed mixture of experts in every layer.
    Qwen3Moe,
    /// `qwen3next`: Gated DeltaNet and gated full attention, MoE with a shared expert
    /// (fused `in_proj_qkvz` / `in_proj_ba`).
    Qwen3Next,
    /// `qwen35`: Qwen3.5 dense (Gated DeltaNet + gated attention, MTP block).
    Qwen35,
    /// `qwen35moe`: Qwen3.5 with experts and a shared expert.
    Qwen35Moe,
}

impl Arch {
    pub fn gguf_name(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Bitnet => "bitnet",
            Arch::Qwen3Moe => "qwen3moe",
            Arch::Qwen3Next => "qwen3next",
            Arch::Qwen35 => "qwen35",
            Arch::Qwen35Moe => "qwen35moe",
        }
    }

    /// Read by the tables of [`super::hybrid`] (experts, DeltaNet, MTP) instead of the
    /// dense Llama-family loop.
    pub fn is_extended(self) -> bool {
        matches!(
            self,
            Arch::Qwen3Moe | Arch::Qwen3Next | Arch::Qwen35 | Arch::Qwen35Moe
        )
    }

    /// Gated DeltaNet hybrids.
    pub fn is_hybrid(self) -> bool {
        matches!(self, Arch::Qwen3Next | Arch::Qwen35 | Arch::Qwen35Moe)
    }
}

/// Hugging Face `architectures` values gpuq converts, and their GGUF architecture.
pub const SUPPORTED: &[(&str, Arch)] = &[
    ("LlamaForCausalLM", Arch::Llama),
    ("MistralForCausalLM", Arch::Llama),
    ("Qwen2ForCausalLM", Arch::Qwen2),
    ("Qwen3ForCausalLM", Arch::Qwen3),
    ("BitNetForCausalLM", Arch::Bitnet),
    ("BitnetForCausalLM", Arch::Bitnet),
    ("MixtralForCausalLM", Arch::Llama),
    ("Qwen3MoeForCausalLM", Arch::Qwen3Moe),
    ("Qwen3NextForCausalLM", Arch::Qwen3Next),
    ("Qwen3_5ForCausalLM", Arch::Qwen35),
    ("Qwen3_5ForConditionalGeneration", Arch::Qwen35),
    ("Qwen3_5MoeForCausalLM", Arch::Qwen35Moe),
    ("Qwen3_5MoeForConditionalGeneration", Arch::Qwen35Moe),
];

/// How a packed BitNet checkpoint's `weight_scale` applies to the unpacked trits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PackedScale {
    /// `trit / weight_scale`: transformers' `BitLinear` (`linear_class` "bitlinear", the
    /// default), and what llama.cpp's converter does for every packed checkpoint.
    Divide,
    /// `trit * weight_scale`: transformers' `AutoBitLinear` with `quantization_mode` "offline".
    Multiply,
}

/// Rope scaling as config.json's `rope_scaling` / `rope_parameters` gives it.
#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    None,
    Linear {
        factor: f64,
    },
    Yarn {
        factor: f64,
        orig_ctx: u64,
        ext_factor: Option<f64>,
        attn_factor: Option<f64>,
        beta_fast: Option<f64>,
        beta_slow: Option<f64>,
    },
    LongRope,
    /// Llama 3.1: written as the `rope_freqs.weight` tensor, no keys.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        orig_ctx: f64,
    },
}

/// The model facts conversion needs, read from config.json.
#[derive(Clone, Debug)]
pub struct HfConfig {
    pub path: PathBuf,
    pub hf_arch: String,
    pub arch: Arch,
    pub n_layer: u64,
    pub n_embd: u64,
    pub n_ff: u64,
    /// `intermediate_size` was given (Qwen3.5-MoE configs have none: no feed_forward_length).
    pub n_ff_given: bool,
    pub n_head: u64,
    /// `num_key_value_heads` as given (None: the converter writes no key; llama.cpp uses n_head).
    pub n_head_kv_key: Option<u64>,
    pub n_head_kv: u64,
    /// `head_dim` as given.
    pub head_dim_key: Option<u64>,
    pub head_dim: u64,
    pub vocab_size: u64,
    pub n_ctx: u64,
    pub rms_eps: f64,
    pub rope_theta: Option<f64>,
    pub rope: RopeScaling,
    pub tie_word_embeddings: bool,
    /// `hidden_act` as given.
    pub hidden_act: Option<String>,
    /// `quantization_config.quant_method == "bitnet"` with packed (uint8) BitLinear weights.
    pub packed: Option<PackedScale>,
    /// Routed experts (Mixtral, Qwen3-MoE, Qwen3-Next, Qwen3.5-MoE).
    pub moe: Option<super::moe::MoeConfig>,
    /// Gated DeltaNet / MTP / partial-rotary facts (Qwen3-Next, Qwen3.5).
    pub hybrid: Option<super::hybrid::HybridConfig>,
}

fn first<'a>(j: &'a Json, keys: &[&str]) -> Option<(&'a str, &'a Json)> {
    keys.iter()
        .find_map(|k| j.as_object()?.get_key_value(*k))
        .map(|(k, v)| (k.as_str(), v))
}

impl HfConfig {
    /// Reads the hyper-parameters from `config` (the parsed config.json at `path`).
    pub fn from_json(path: &Path, config: &Json) -> Result<HfConfig, HfError> {
        let path = path.to_path_buf();
        // a multimodal checkpoint keeps the language model's keys in text_config
        // (the converter reads {**hparams, **text_config})
        let merged;
        let config = match config.get("text_config").and_then(Json::as_object) {
            Some(tc) => {
                let mut m = config.as_object().cloned().unwrap_or_default();
                for (k, v) in tc {
                    m.insert(k.clone(), v.clone());
                }
                merged = Json::Object(m);
                &merged
            }
            None => config,
        };
        let archs = config
            .get("architectures")
            .and_then(Json::as_array)
            .ok_or_else(|| HfError::NoArchitecture { path: path.clone() })?;
        let hf_arch = archs
            .first()
            .and_then(Json::as_str)
            .ok_or_else(|| HfError::NoArchitecture { path: path.clone() })?
            .to_string();
        let arch = SUPPORTED
            .iter()
            .find(|(n, _)| *n == hf_arch)
            .map(|(_, a)| *a)
            .ok_or_else(|| HfError::UnsupportedArchitecture {
                path: path.clone(),
                arch: hf_arch.clone(),
                supported: SUPPORTED
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;

        let uint = |keys: &[&str], what: &'static str| -> Result<Option<u64>, HfError> {
            match first(config, keys) {
                None | Some((_, Json::Null)) => Ok(None),
                Some((k, v)) => {
                    v.as_u64()
                        .filter(|&n| n > 0)
                        .map(Some)
                        .ok_or_else(|| HfError::BadKey {
                            path: path.clone(),
                            key: k.to_string(),
                            what: format!("{what} must be a positive integer, found {v}"),
                        })
                }
            }
        };
        let need = |keys: &[&str], what: &'static str| -> Result<u64, HfError> {
            uint(keys, what)?.ok_or_else(|| HfError::MissingKey {
                path: path.clone(),
                key: keys[0].to_string(),
                what,
            })
        };
        let float = |keys: &[&str], what: &'static str| -> Result<Option<f64>, HfError> {
            match first(config, keys) {
                None | Some((_, Json::Null)) => Ok(None),
                Some((k, v)) => v
                    .as_f64()
                    .filter(|x| x.is_finite())
                    .map(Some)
                    .ok_or_else(|| HfError::BadKey {
                        path: path.clone(),
                        key: k.to_string(),
                        what: format!("{what} must be a number, found {v}"),
                    }),
            }
        };

        let n_layer = need(
            &["num_hidden_layers", "n_layers", "n_layer", "num_layers"],
            "number of layers",
        )?;
        let n_embd = need(&["hidden_size", "n_embd", "dim"], "embedding length")?;
        let n_ff_key = uint(
            &["intermediate_size", "n_inner", "hidden_dim"],
            "feed-forward length",
        )?;
        let n_ff_given = n_ff_key.is_some();
        let n_ff = match n_ff_key {
            Some(n) => n,
            None if arch == Arch::Qwen35Moe => {
                need(&["moe_intermediate_size"], "expert feed-forward length")?
            }
            None => need(&["intermediate_size"], "feed-forward length")?,
        };
        let n_head = need(
            &["num_attention_heads", "n_head", "n_heads"],
            "attention head count",
        )?;
        let n_head_kv_key = uint(
            &["num_key_value_heads", "n_kv_heads"],
            "key/value head count",
        )?;
        let vocab_size = need(&["vocab_size"], "vocabulary size")?;
        let n_ctx = need(
            &[
                "max_position_embeddings",
                "n_ctx",
                "n_positions",
                "max_length",
                "max_sequence_length",
            ],
            "context length",
        )?;
        let rms_eps =
            float(&["rms_norm_eps", "norm_eps"], "RMS norm epsilon")?.ok_or_else(|| {
                HfError::MissingKey {
                    path: path.clone(),
                    key: "rms_norm_eps".into(),
                    what: "RMS norm epsilon",
                }
            })?;
        let head_dim_key = uint(&["head_dim"], "head dimension")?;
        let n_head_kv = n_head_kv_key.unwrap_or(n_head);
        if n_head % n_head_kv != 0 {
            return Err(HfError::BadKey {
                path,
                key: "num_key_value_heads".into(),
                what: format!("{n_head_kv} does not divide num_attention_heads {n_head}"),
            });
        }
        let head_dim = match head_dim_key {
            Some(d) => d,
            None if n_embd % n_head == 0 => n_embd / n_head,
            None => {
                return Err(HfError::BadKey {
                    path,
                    key: "num_attention_heads".into(),
                    what: format!(
                        "{n_head} does not divide hidden_size {n_embd} and no head_dim is given"
                    ),
                });
            }
        };
        if arch == Arch::Llama && head_dim % 2 != 0 {
            return Err(HfError::BadKey {
                path,
                key: "head_dim".into(),
                what: format!("rotary embedding needs an even head dimension, found {head_dim}"),
            });
        }

        // rope parameters: the newer `rope_parameters`, else `rope_scaling`; theta may be inside
        let rope_params = config
            .get("rope_parameters")
            .filter(|v| !v.is_null())
            .or_else(|| config.get("rope_scaling").filter(|v| !v.is_null()));
        let rope_params = rope_params.map(|p| p.get("full_attention").unwrap_or(p));
        let pget = |k: &str| rope_params.and_then(|p| p.get(k)).and_then(Json::as_f64);
        let rope_theta = match pget("rope_theta") {
            Some(t) => Some(t),
            None => float(&["rope_theta", "rotary_emb_base"], "rope theta")?,
        };
        let rope_type = rope_params
            .and_then(|p| p.get("rope_type").or_else(|| p.get("type")))
            .and_then(Json::as_str)
            .map(str::to_ascii_lowercase);
        let rope = match (rope_type.as_deref(), pget("factor")) {
            (Some("linear"), Some(factor)) => RopeScaling::Linear { factor },
            (Some("yarn"), Some(factor)) => RopeScaling::Yarn {
                factor,
                orig_ctx: rope_params
                    .and_then(|p| p.get("original_max_position_embeddings"))
                    .and_then(Json::as_u64)
                    .or_else(|| {
                        config
                            .get("original_max_position_embeddings")
                            .and_then(Json::as_u64)
                    })
                    .ok_or_else(|| HfError::MissingKey {
                        path: path.clone(),
                        key: "rope_scaling.original_max_position_embeddings".into(),
                        what: "yarn rope scaling needs the original context length",
                    })?,
                ext_factor: pget("extrapolation_factor"),
                attn_factor: pget("attention_factor").or_else(|| pget("attn_factor")),
                beta_fast: pget("beta_fast"),
                beta_slow: pget("beta_slow"),
            },
            (Some("su") | Some("longrope"), _) => RopeScaling::LongRope,
            (Some("llama3"), _) if arch == Arch::Llama => RopeScaling::Llama3 {
                factor: pget("factor").unwrap_or(8.0),
                low_freq_factor: pget("low_freq_factor").unwrap_or(1.0),
                high_freq_factor: pget("high_freq_factor").unwrap_or(4.0),
                orig_ctx: pget("original_max_position_embeddings").unwrap_or(8192.0),
            },
            (None, _) | (Some("default"), _) => RopeScaling::None,
            (Some(other), _) => {
                eprintln!(
                    "gpuq: warning: {}: unknown rope type '{other}' ignored",
                    path.display()
                );
                RopeScaling::None
            }
        };

        let packed = packed_scale(&path, config, arch)?;
        let moe = super::moe::MoeConfig::from_json(&path, config, arch)?;
        let hybrid = super::hybrid::HybridConfig::from_json(&path, config, arch, n_layer)?;
        if arch == Arch::Bitnet {
            if n_head * head_dim != n_embd {
                return Err(HfError::BadKey {
                    path,
                    key: "num_attention_heads".into(),
                    what: format!(
                        "llama.cpp's bitnet graph needs num_attention_heads x head_dim = \
                         hidden_size, found {n_head} x {head_dim} != {n_embd}"
                    ),
                });
            }
            if rope != RopeScaling::None {
                return Err(HfError::BadKey {
                    path,
                    key: "rope_scaling".into(),
                    what: "BitNet takes no rope scaling (llama.cpp's BitnetModel writes linear \
                           scaling of factor 1 itself)"
                        .into(),
                });
            }
        }
        Ok(HfConfig {
            hidden_act: config
                .get("hidden_act")
                .and_then(Json::as_str)
                .map(str::to_string),
            packed,
            moe,
            hybrid,
            n_ff_given,
            tie_word_embeddings: config
                .get("tie_word_embeddings")
                .and_then(Json::as_bool)
                .unwrap_or(false),
            path,
            hf_arch,
            arch,
            n_layer,
            n_embd,
            n_ff,
            n_head,
            n_head_kv_key,
            n_head_kv,
            head_dim_key,
            head_dim,
            vocab_size,
            n_ctx,
            rms_eps,
            rope_theta,
            rope,
        })
    }

    /// `{arch}.*` hyper-parameter keys (and `general.file_type`), as the converter writes them.
    pub fn metadata(&self, file_type: u32) -> Vec<(String, Value)> {
        let a = self.arch.gguf_name();
        let mut md: Vec<(String, Value)> = Vec::new();
        let mut put = |k: &str, v: Value| md.push((format!("{a}.{k}"), v));
        put(
            "block_count",
            Value::U32((self.n_layer + self.hybrid.as_ref().map_or(0, |h| h.mtp_layers)) as u32),
        );
        put("context_length", Value::U32(self.n_ctx as u32));
        put("embedding_length", Value::U32(self.n_embd as u32));
        if self.n_ff_given {
            put("feed_forward_length", Value::U32(self.n_ff as u32));
        }
        put("attention.head_count", Value::U32(self.n_head as u32));
        if let Some(kv) = self.n_head_kv_key {
            put("attention.head_count_kv", Value::U32(kv as u32));
        }
        match &self.rope {
            RopeScaling::Linear { factor } => {
                put("rope.scaling.type", Value::String("linear".into()));
                put("rope.scaling.factor", Value::F32(*factor as f32));
            }
            RopeScaling::Yarn {
                factor,
                orig_ctx,
                ext_factor,
                attn_factor,
                beta_fast,
                beta_slow,
            } => {
                put("rope.scaling.type", Value::String("yarn".into()));
                put("rope.scaling.factor", Value::F32(*factor as f32));
                put(
                    "rope.scaling.original_context_length",
                    Value::U32(*orig_ctx as u32),
                );
                for (k, v) in [
                    ("rope.scaling.yarn_ext_factor", ext_factor),
                    ("rope.scaling.yarn_attn_factor", attn_factor),
                    ("rope.scaling.yarn_beta_fast", beta_fast),
                    ("rope.scaling.yarn_beta_slow", beta_slow),
                ] {
                    if let Some(v) = v {
                        put(k, Value::F32(*v as f32));
                    }
                }
            }
            RopeScaling::LongRope => put("rope.scaling.type", Value::String("longrope".into())),
            RopeScaling::None | RopeScaling::Llama3 { .. } => {}
        }
        if let Some(t) = self.rope_theta {
            put("rope.freq_base", Value::F32(t as f32));
        }
        put(
            "attention.layer_norm_rms_epsilon",
            Value::F32(self.rms_eps as f32),
        );
        if let Some(moe) = &self.moe {
            moe.text_model_metadata(&mut put);
        }
        if let Some(d) = self.head_dim_key {
            put("attention.key_length", Value::U32(d as u32));
            put("attention.value_length", Value::U32(d as u32));
        }
        if self.arch == Arch::Llama {
            put("vocab_size", Value::U32(self.vocab_size as u32));
            put("rope.dimension_count", Value::U32(self.head_dim as u32));
        }
        md.push(("general.file_type".into(), Value::U32(file_type)));
        if let Some(moe) = &self.moe {
            moe.qwen_moe_metadata(a, &mut md);
        }
        if let Some(h) = &self.hybrid {
            h.metadata(a, &mut md);
        }
        if self.arch == Arch::Bitnet {
            // BitnetModel.set_gguf_parameters, after TextModel's keys
            md.push((
                format!("{a}.rope.scaling.type"),
                Value::String("linear".into()),
            ));
            md.push((format!("{a}.rope.scaling.factor"), Value::F32(1.0)));
        }
        md
    }

    /// The llama3 rope factors (`rope_freqs.weight`, head_dim / 2 values), when the config asks
    /// for them (`LlamaModel.generate_extra_tensors`).
    pub fn rope_freqs(&self) -> Option<Vec<f32>> {
        let RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            orig_ctx,
        } = self.rope
        else {
            return None;
        };
        let base = self.rope_theta.unwrap_or(10000.0);
        let dim = self.head_dim as f32;
        let low_wavelen = orig_ctx / low_freq_factor;
        let high_wavelen = orig_ctx / high_freq_factor;
        let factors = (0..self.head_dim)
            .step_by(2)
            .map(|i| {
                // the converter computes the frequencies in f32 (torch), the rest in f64
                let freq = 1.0f32 / (base as f32).powf(i as f32 / dim);
                let wavelen = 2.0 * std::f64::consts::PI / freq as f64;
                if wavelen < high_wavelen {
                    1.0
                } else if wavelen > low_wavelen {
                    factor as f32
                } else {
                    let smooth = (orig_ctx / wavelen - low_freq_factor)
                        / (high_freq_factor - low_freq_factor);
                    (1.0 / ((1.0 - smooth) / factor + smooth)) as f32
                }
            })
            .collect();
        Some(factors)
    }
}

/// `quantization_config` of a packed BitNet checkpoint (`quant_method` "bitnet"): how its
/// `weight_scale` applies, as transformers' integration reads `linear_class` and
/// `quantization_mode`. `None` when the weights are not packed (no such config, another
/// method, or `AutoBitLinear` in "online" mode, whose weights are float master weights).
fn packed_scale(path: &Path, config: &Json, arch: Arch) -> Result<Option<PackedScale>, HfError> {
    let Some(q) = config.get("quantization_config").filter(|q| !q.is_null()) else {
        return Ok(None);
    };
    if q.get("quant_method").and_then(Json::as_str) != Some("bitnet") {
        return Ok(None);
    }
    let bad = |key: &str, what: String| HfError::BadKey {
        path: path.to_path_buf(),
        key: format!("quantization_config.{key}"),
        what,
    };
    if arch != Arch::Bitnet {
        return Err(bad(
            "quant_method",
            format!(
                "packed BitNet weights are converted for BitNetForCausalLM only, not {}",
                arch.gguf_name()
            ),
        ));
    }
    let class = q
        .get("linear_class")
        .and_then(Json::as_str)
        .unwrap_or("bitlinear");
    let mode = q
        .get("quantization_mode")
        .and_then(Json::as_str)
        .unwrap_or("offline");
    match (class, mode) {
        ("bitlinear", _) => Ok(Some(PackedScale::Divide)),
        ("autobitlinear", "offline") => Ok(Some(PackedScale::Multiply)),
        ("autobitlinear", "online") => Ok(None),
        ("autobitlinear", m) => Err(bad(
            "quantization_mode",
            format!("'{m}' is not a mode gpuq knows (offline or online)"),
        )),
        (c, _) => Err(bad(
            "linear_class",
            format!("'{c}' is not a class gpuq knows (bitlinear or autobitlinear)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Json {
        json!({
            "architectures": ["LlamaForCausalLM"],
            "num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 96,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 300,
            "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "rope_theta": 10000.0
        })
    }

    fn get<'a>(md: &'a [(String, Value)], k: &str) -> Option<&'a Value> {
        md.iter().find(|(key, _)| key == k).map(|(_, v)| v)
    }

    #[test]
    fn llama_keys() {
        let c = HfConfig::from_json(Path::new("config.json"), &base()).unwrap();
        assert_eq!((c.head_dim, c.n_head_kv), (16, 2));
        let md = c.metadata(0);
        assert_eq!(
            get(&md, "llama.attention.head_count_kv"),
            Some(&Value::U32(2))
        );
        assert_eq!(
            get(&md, "llama.rope.dimension_count"),
            Some(&Value::U32(16))
        );
        assert_eq!(get(&md, "llama.vocab_size"), Some(&Value::U32(300)));
        assert_eq!(
            get(&md, "llama.attention.layer_norm_rms_epsilon"),
            Some(&Value::F32(1e-5))
        );
        assert!(get(&md, "llama.attention.key_length").is_none());
    }

    #[test]
    fn qwen3_head_dim_and_yarn() {
        let mut j = base();
        j["architectures"] = json!(["Qwen3ForCausalLM"]);
        j["head_dim"] = json!(32);
        j["rope_scaling"] =
            json!({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32});
        let c = HfConfig::from_json(Path::new("config.json"), &j).unwrap();
        let md = c.metadata(1);
        assert_eq!(
            get(&md, "qwen3.attention.key_length"),
            Some(&Value::U32(32))
        );
        assert_eq!(
            get(&md, "qwen3.rope.scaling.type"),
            Some(&Value::String("yarn".into()))
        );
        assert_eq!(
            get(&md, "qwen3.rope.scaling.original_context_length"),
            Some(&Value::U32(32))
        );
        assert!(get(&md, "qwen3.vocab_size").is_none());
    }

    #[test]
    fn errors_name_the_key_and_the_architecture() {
        let mut j = base();
        j.as_object_mut().unwrap().remove("rms_norm_eps");
        let e = HfConfig::from_json(Path::new("m/config.json"), &j)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("m/config.json") && e.contains("rms_norm_eps"),
            "{e}"
        );
        let mut j = base();
        j["architectures"] = json!(["GPTBigCodeForCausalLM"]);
        let e = HfConfig::from_json(Path::new("config.json"), &j)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("GPTBigCodeForCausalLM") && e.contains("Qwen3ForCausalLM"),
            "{e}"
        );
    }

    #[test]
    fn bitnet_keys_and_packing() {
        let mut j = base();
        j["architectures"] = json!(["BitNetForCausalLM"]);
        j["num_attention_heads"] = json!(4);
        j["hidden_act"] = json!("relu2");
        let c = HfConfig::from_json(Path::new("config.json"), &j).unwrap();
        assert_eq!((c.arch, c.packed), (Arch::Bitnet, None));
        let md = c.metadata(1);
        assert_eq!(
            get(&md, "bitnet.rope.scaling.type"),
            Some(&Value::String("linear".into()))
        );
        assert_eq!(
            get(&md, "bitnet.rope.scaling.factor"),
            Some(&Value::F32(1.0))
        );
        assert!(get(&md, "bitnet.vocab_size").is_none());
        let last = md.len() - 1;
        assert_eq!(md[last - 2].0, "general.file_type");
        for (qc, want) in [
            (json!({"quant_method": "bitnet"}), Some(PackedScale::Divide)),
            (
                json!({"quant_method": "bitnet", "linear_class": "autobitlinear", "quantization_mode": "offline"}),
                Some(PackedScale::Multiply),
            ),
            (
                json!({"quant_method": "bitnet", "linear_class": "autobitlinear", "quantization_mode": "online"}),
                None,
            ),
        ] {
            j["quantization_config"] = qc;
            let c = HfConfig::from_json(Path::new("config.json"), &j).unwrap();
            assert_eq!(c.packed, want);
        }
        j["quantization_config"] = json!({"quant_method": "bitnet", "linear_class": "x"});
        let e = HfConfig::from_json(Path::new("config.json"), &j)
            .unwrap_err()
            .to_string();
        assert!(e.contains("linear_class") && e.contains("'x'"), "{e}");
        j["architectures"] = json!(["LlamaForCausalLM"]);
        j["quantization_config"] = json!({"quant_method": "bitnet"});
        assert!(HfConfig::from_json(Path::new("config.json"), &j).is_err());
        j["architectures"] = json!(["BitnetForCausalLM"]);
        j["num_attention_heads"] = json!(8);
        j["head_dim"] = json!(16);
        let e = HfConfig::from_json(Path::new("config.json"), &j)
            .unwrap_err()
            .to_string();
        assert!(e.contains("hidden_size"), "{e}");
    }

    #[test]
    fn llama3_factors_span_one_to_factor() {
        let mut j = base();
        j["rope_scaling"] = json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 64});
        let c = HfConfig::from_json(Path::new("config.json"), &j).unwrap();
        let f = c.rope_freqs().unwrap();
        assert_eq!(f.len(), 8);
        assert_eq!(f[0], 1.0);
        assert_eq!(f[7], 8.0);
        assert!(f.windows(2).all(|w| w[0] <= w[1]));
    }
}
