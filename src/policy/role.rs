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

/// What a tensor does in the model, from its GGUF name (and, for the fused projections of
/// hybrid models, whether its layer is a linear-attention layer). One classifier for the whole
/// program: `inspect`, the `--dry-run` plan and `--hybrid-policy` read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Embedding,
    Output,
    Norm,
    /// Full (softmax) attention projections: attn_q/k/v/output, a fused attn_qkv, the gate of a
    /// gated attention.
    Attention,
    /// Projections of a linear-attention (Gated DeltaNet / SSM) layer: attn_qkv, attn_gate,
    /// ssm_in, ssm_alpha, ssm_beta, ssm_ba, ssm_out.
    LinearAttention,
    /// The recurrent state's decay and time step: ssm_a, ssm_dt, ssm_d.
    SsmState,
    /// The short causal convolution of an SSM layer: ssm_conv1d.
    SsmConv,
    /// Routed experts: ffn_*_exps.
    MoeExpert,
    /// The expert router: ffn_gate_inp (and its bias).
    Router,
    /// Shared experts and their gate: ffn_*_shexp.
    SharedExpert,
    /// Dense feed-forward: ffn_gate/up/down.
    Ffn,
    /// The multi-token-prediction block's own tensors: blk.N.nextn.* (and Ollama's mtp.*).
    Mtp,
    Other,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Embedding => "embedding",
            Role::Output => "output",
            Role::Norm => "norm",
            Role::Attention => "attention",
            Role::LinearAttention => "linear-attn",
            Role::SsmState => "ssm-state",
            Role::SsmConv => "ssm-conv",
            Role::MoeExpert => "moe-expert",
            Role::Router => "router",
            Role::SharedExpert => "shared-expert",
            Role::Ffn => "ffn",
            Role::Mtp => "mtp",
            Role::Other => "other",
        }
    }

    /// The role of `name`; `linear_layer` says whether its block holds linear-attention (SSM)
    /// tensors, which decides what a fused `attn_qkv` / `attn_gate` is.
    pub fn of(name: &str, linear_layer: bool) -> Role {
        // the part after `blk.N.` (or the whole name)
        let local = name
            .strip_prefix("blk.")
            .and_then(|r| r.split_once('.'))
            .map_or(name, |(_, rest)| rest);
        let has = |s: &str| local.contains(s);
        if has("nextn.") || name.starts_with("mtp.") {
            return Role::Mtp;
        }
        if name == "token_embd.weight" || name == "per_layer_token_embd.weight" {
            return Role::Embedding;
        }
        if name == "output.weight" {
            return Role::Output;
        }
        if has("norm") {
            return Role::Norm;
        }
        if has("ssm_conv1d") {
            return Role::SsmConv;
        }
        if (local.starts_with("ssm_a") && !local.starts_with("ssm_alpha"))
            || local.starts_with("ssm_dt")
            || local.starts_with("ssm_d.")
            || local == "ssm_d"
        {
            return Role::SsmState;
        }
        if has("ffn_gate_inp_shexp") || has("_shexp") {
            return Role::SharedExpert;
        }
        if has("ffn_gate_inp") || has("exp_probs_b") {
            return Role::Router;
        }
        if has("_exps") {
            return Role::MoeExpert;
        }
        if local.starts_with("ssm_") || (linear_layer && (has("attn_qkv") || has("attn_gate"))) {
            return Role::LinearAttention;
        }
        if local.starts_with("attn_") {
            return Role::Attention;
        }
        if local.starts_with("ffn_") {
            return Role::Ffn;
        }
        Role::Other
    }
}

/// The layer number of `blk.N.…`.
fn block_of(name: &str) -> Option<&str> {
    name.strip_prefix("blk.")?.split('.').next()
}

/// The role of every tensor of a model (same order): one pass finds the layers that hold
/// linear-attention tensors (`ssm_*`), then [`Role::of`] classifies each name.
pub fn roles<'a>(names: impl Iterator<Item = &'a str> + Clone) -> Vec<Role> {
    let linear: std::collections::HashSet<&str> = names
        .clone()
        .filter(|n| n.contains(".ssm_"))
        .filter_map(block_of)
        .collect();
    names
        .map(|n| Role::of(n, block_of(n).is_some_and(|b| linear.contains(b))))
        .collect()
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
    fn roles_of_a_hybrid_model() {
        let names = [
            "token_embd.weight",
            "output.weight",
            "output_norm.weight",
            "blk.0.attn_qkv.weight",
            "blk.0.attn_gate.weight",
            "blk.0.ssm_a",
            "blk.0.ssm_dt.bias",
            "blk.0.ssm_conv1d.weight",
            "blk.0.ssm_alpha.weight",
            "blk.0.ssm_beta.weight",
            "blk.0.ssm_norm.weight",
            "blk.0.ssm_out.weight",
            "blk.0.ffn_gate_inp.weight",
            "blk.0.ffn_gate_inp_shexp.weight",
            "blk.0.ffn_up_shexp.weight",
            "blk.0.ffn_down_exps.weight",
            "blk.3.attn_q.weight",
            "blk.3.attn_qkv.weight",
            "blk.3.attn_q_norm.weight",
            "blk.3.ffn_down.weight",
            "blk.4.nextn.eh_proj.weight",
            "blk.4.nextn.enorm.weight",
            "mtp.fc.weight",
        ];
        let r = roles(names.iter().copied());
        use Role::*;
        assert_eq!(
            r,
            [
                Embedding,
                Output,
                Norm,
                LinearAttention,
                LinearAttention,
                SsmState,
                SsmState,
                SsmConv,
                LinearAttention,
                LinearAttention,
                Norm,
                LinearAttention,
                Router,
                SharedExpert,
                SharedExpert,
                MoeExpert,
                Attention,
                Attention,
                Norm,
                Ffn,
                Mtp,
                Mtp,
                Mtp
            ]
        );
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
