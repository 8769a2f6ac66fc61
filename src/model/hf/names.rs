//! Hugging Face -> GGUF tensor names for the supported decoder-only models, as gguf-py's
//! `tensor_mapping.py` maps them (`model.layers.N.self_attn.q_proj` -> `blk.N.attn_q`, …), with
//! what each tensor is, so its shape can be checked against config.json.

/// What a tensor is in the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    TokenEmbd,
    OutputNorm,
    Output,
    AttnNorm,
    Q,
    K,
    V,
    O,
    QBias,
    KBias,
    VBias,
    OBias,
    QNorm,
    KNorm,
    FfnNorm,
    Gate,
    Up,
    Down,
    /// BitNet: RMS norm of the attention output, before o_proj.
    AttnSubNorm,
    /// BitNet: RMS norm of the FFN's gated product, before down_proj.
    FfnSubNorm,
}

impl Role {
    /// The GGUF base name (without `blk.N.` and `.weight`/`.bias`).
    pub fn gguf_base(self) -> &'static str {
        match self {
            Role::TokenEmbd => "token_embd",
            Role::OutputNorm => "output_norm",
            Role::Output => "output",
            Role::AttnNorm => "attn_norm",
            Role::Q | Role::QBias => "attn_q",
            Role::K | Role::KBias => "attn_k",
            Role::V | Role::VBias => "attn_v",
            Role::O | Role::OBias => "attn_output",
            Role::QNorm => "attn_q_norm",
            Role::KNorm => "attn_k_norm",
            Role::FfnNorm => "ffn_norm",
            Role::Gate => "ffn_gate",
            Role::Up => "ffn_up",
            Role::Down => "ffn_down",
            Role::AttnSubNorm => "attn_sub_norm",
            Role::FfnSubNorm => "ffn_sub_norm",
        }
    }

    /// The linear weights BitNet ternarizes (its BitLinear layers; the converter's
    /// `weight_quant` list: attn_q/k/v/output, ffn_gate/up/down).
    pub fn is_bitlinear(self) -> bool {
        matches!(
            self,
            Role::Q | Role::K | Role::V | Role::O | Role::Gate | Role::Up | Role::Down
        )
    }

    pub fn is_bias(self) -> bool {
        matches!(self, Role::QBias | Role::KBias | Role::VBias | Role::OBias)
    }

    pub fn is_per_layer(self) -> bool {
        !matches!(self, Role::TokenEmbd | Role::OutputNorm | Role::Output)
    }

    /// The GGUF tensor name.
    pub fn gguf_name(self, layer: Option<u64>) -> String {
        let suffix = if self.is_bias() { "bias" } else { "weight" };
        match layer {
            Some(l) => format!("blk.{l}.{}.{suffix}", self.gguf_base()),
            None => format!("{}.{suffix}", self.gguf_base()),
        }
    }
}

/// A mapped tensor name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mapped {
    pub role: Role,
    pub layer: Option<u64>,
}

/// Tensors the converter drops (computed at load time by llama.cpp).
pub fn is_skipped(hf: &str) -> bool {
    hf.ends_with(".rotary_emb.inv_freq")
        || hf.ends_with(".attention.masked_bias")
        || hf.ends_with(".attention.bias")
}

/// Maps a Hugging Face tensor name; `None` when it is not one of a Llama/Mistral/Qwen2/Qwen3/BitNet
/// decoder's tensors.
pub fn map_name(hf: &str) -> Option<Mapped> {
    let global = |role| Some(Mapped { role, layer: None });
    match hf {
        "model.embed_tokens.weight" => return global(Role::TokenEmbd),
        "model.norm.weight" => return global(Role::OutputNorm),
        "lm_head.weight" => return global(Role::Output),
        _ => {}
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    if layer.is_empty()
        || !layer.bytes().all(|b| b.is_ascii_digit())
        || (layer.len() > 1 && layer.starts_with('0'))
    {
        return None;
    }
    let layer: u64 = layer.parse().ok()?;
    let role = match rest {
        "input_layernorm.weight" => Role::AttnNorm,
        "self_attn.q_proj.weight" => Role::Q,
        "self_attn.k_proj.weight" => Role::K,
        "self_attn.v_proj.weight" => Role::V,
        "self_attn.o_proj.weight" => Role::O,
        "self_attn.q_proj.bias" => Role::QBias,
        "self_attn.k_proj.bias" => Role::KBias,
        "self_attn.v_proj.bias" => Role::VBias,
        "self_attn.o_proj.bias" => Role::OBias,
        "self_attn.q_norm.weight" => Role::QNorm,
        "self_attn.k_norm.weight" => Role::KNorm,
        "post_attention_layernorm.weight" => Role::FfnNorm,
        "mlp.gate_proj.weight" => Role::Gate,
        "mlp.up_proj.weight" => Role::Up,
        "mlp.down_proj.weight" => Role::Down,
        // microsoft/bitnet-b1.58-2B-4T's names, and 1bitLLM's (gguf-py's tensor_mapping.py)
        "self_attn.attn_sub_norm.weight" | "self_attn.inner_attn_ln.weight" => Role::AttnSubNorm,
        "mlp.ffn_sub_norm.weight" | "mlp.ffn_layernorm.weight" => Role::FfnSubNorm,
        _ => return None,
    };
    Some(Mapped {
        role,
        layer: Some(layer),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_llama_names() {
        let m = map_name("model.layers.12.self_attn.k_proj.weight").unwrap();
        assert_eq!(m.role.gguf_name(m.layer), "blk.12.attn_k.weight");
        let m = map_name("model.layers.0.self_attn.q_proj.bias").unwrap();
        assert_eq!(m.role.gguf_name(m.layer), "blk.0.attn_q.bias");
        let m = map_name("model.layers.3.post_attention_layernorm.weight").unwrap();
        assert_eq!(m.role.gguf_name(m.layer), "blk.3.ffn_norm.weight");
        let m = map_name("model.layers.3.self_attn.q_norm.weight").unwrap();
        assert_eq!(m.role.gguf_name(m.layer), "blk.3.attn_q_norm.weight");
        for (hf, gguf) in [
            ("self_attn.attn_sub_norm", "attn_sub_norm"),
            ("self_attn.inner_attn_ln", "attn_sub_norm"),
            ("mlp.ffn_sub_norm", "ffn_sub_norm"),
            ("mlp.ffn_layernorm", "ffn_sub_norm"),
        ] {
            let m = map_name(&format!("model.layers.7.{hf}.weight")).unwrap();
            assert_eq!(m.role.gguf_name(m.layer), format!("blk.7.{gguf}.weight"));
        }
        assert_eq!(
            map_name("lm_head.weight").unwrap().role.gguf_name(None),
            "output.weight"
        );
        assert_eq!(
            map_name("model.embed_tokens.weight")
                .unwrap()
                .role
                .gguf_name(None),
            "token_embd.weight"
        );
    }

    #[test]
    fn rejects_strangers() {
        for n in [
            "model.layers.x.mlp.up_proj.weight",
            "model.layers.01.mlp.up_proj.weight",
            "model.layers.1.mlp.experts.0.w1.weight",
            "vision_tower.blocks.0.weight",
            "model.layers..mlp.up_proj.weight",
        ] {
            assert!(map_name(n).is_none(), "{n}");
        }
        assert!(is_skipped("model.layers.0.self_attn.rotary_emb.inv_freq"));
    }
}
