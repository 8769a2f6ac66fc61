//! Tensor roles as llama-quantize sees them: broad categories by name, and which tensors may be
//! quantized at all (`tensor_get_category`, `tensor_allows_quantization` in llama-quant.cpp).

/// The broad category of a tensor, from its GGUF name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Category {
    TokenEmbd,
    AttentionQ,
    AttentionV,
    AttentionK,
    AttentionQkv,
    AttentionKvB,
    AttentionOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Output,
    Other,
}

impl Category {
    pub fn of(name: &str) -> Category {
        if name == "output.weight" {
            return Category::Output;
        }
        if name == "token_embd.weight" || name == "per_layer_token_embd.weight" {
            return Category::TokenEmbd;
        }
        // Substring tests, in llama.cpp's order (the first that matches wins).
        const BY_SUBSTRING: &[(&str, Category)] = &[
            ("attn_qkv.weight", Category::AttentionQkv),
            ("attn_kv_b.weight", Category::AttentionKvB),
            ("attn_v.weight", Category::AttentionV),
            ("attn_k.weight", Category::AttentionK),
            ("attn_q.weight", Category::AttentionQ),
            ("attn_output.weight", Category::AttentionOutput),
            ("ffn_up", Category::FfnUp),
            ("ffn_gate", Category::FfnGate),
            ("ffn_down", Category::FfnDown),
        ];
        BY_SUBSTRING
            .iter()
            .find(|(s, _)| name.contains(s))
            .map(|(_, c)| *c)
            .unwrap_or(Category::Other)
    }

    /// attn_v-like tensors, the ones the mixtures give more bits.
    pub fn is_attn_v(self) -> bool {
        matches!(
            self,
            Category::AttentionV | Category::AttentionQkv | Category::AttentionKvB
        )
    }
}

/// ggml's `ggml_n_dims`: 1 + the index of the last dimension larger than 1.
pub fn n_dims(dims: &[u64]) -> usize {
    dims.iter().rposition(|&d| d > 1).map_or(1, |i| i + 1)
}

/// Name fragments of tensors llama-quantize never quantizes (small, or not matrices).
const NEVER_QUANTIZED: &[&str] = &[
    "_norm.weight",
    "ffn_gate_inp.weight",
    "ffn_gate_tid2eid.weight",
    "altup",
    "laurel",
    "per_layer_model_proj",
    "ssm_conv1d",
    "shortconv.conv.weight",
    "indexer.k_proj.weight",
    "indexer.q_proj.weight",
    "time_mix_first.weight",
    "time_mix_w0.weight",
    "time_mix_w1.weight",
    "time_mix_w2.weight",
    "time_mix_v0.weight",
    "time_mix_v1.weight",
    "time_mix_v2.weight",
    "time_mix_a0.weight",
    "time_mix_a1.weight",
    "time_mix_a2.weight",
    "time_mix_g1.weight",
    "time_mix_g2.weight",
    "time_mix_decay_w1.weight",
    "time_mix_decay_w2.weight",
    "time_mix_lerp_fused.weight",
    "attn_rel_b.weight",
    ".position_embd",
    "sam.pos_embd",
    "sam.neck.",
    "sam.net_",
    ".rel_pos",
    ".patch_embd",
    ".patch_merger",
    "a.rvq.codebook",
    "mm.a.code_embd",
];

/// llama.cpp's `tensor_allows_quantization`: 2-D and 3-D tensors whose name ends in `weight`,
/// except norms, expert gates, positional embeddings and a list of small special tensors;
/// `output.weight` only when `quantize_output` (off with `--leave-output-tensor`).
pub fn allows_quantization(name: &str, dims: &[u64], quantize_output: bool) -> bool {
    if n_dims(dims) < 2 || !name.ends_with("weight") {
        return false;
    }
    if !quantize_output && name == "output.weight" {
        return false;
    }
    if name == "position_embd.weight" || name == "token_types.weight" {
        return false;
    }
    !NEVER_QUANTIZED.iter().any(|s| name.contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_follow_llama_cpp_order() {
        assert_eq!(Category::of("blk.0.attn_v.weight"), Category::AttentionV);
        assert_eq!(
            Category::of("blk.3.attn_qkv.weight"),
            Category::AttentionQkv
        );
        assert_eq!(
            Category::of("blk.3.ffn_down_exps.weight"),
            Category::FfnDown
        );
        assert_eq!(Category::of("blk.3.ffn_gate_inp.weight"), Category::FfnGate);
        assert_eq!(Category::of("output.weight"), Category::Output);
        assert_eq!(Category::of("token_embd.weight"), Category::TokenEmbd);
        assert_eq!(Category::of("blk.0.attn_norm.weight"), Category::Other);
    }

    #[test]
    fn which_tensors_are_quantized() {
        assert!(allows_quantization("blk.0.attn_q.weight", &[64, 64], true));
        assert!(!allows_quantization("blk.0.attn_norm.weight", &[64], true));
        assert!(!allows_quantization("blk.0.attn_q.weight", &[64, 1], true));
        assert!(!allows_quantization("blk.0.attn_q.bias", &[64, 64], true));
        assert!(!allows_quantization(
            "blk.0.ssm_conv1d.weight",
            &[4, 64],
            true
        ));
        assert!(!allows_quantization(
            "blk.0.ffn_gate_inp.weight",
            &[64, 8],
            true
        ));
        assert!(!allows_quantization("output.weight", &[64, 64], false));
        assert!(allows_quantization(
            "blk.0.ffn_up_exps.weight",
            &[64, 128, 8],
            true
        ));
        assert_eq!(n_dims(&[64, 1, 1]), 1);
        assert_eq!(n_dims(&[64, 1, 3]), 3);
    }
}
