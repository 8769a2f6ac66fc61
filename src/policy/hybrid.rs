//! `--hybrid-policy`: per-role type floors for hybrid models (Gated DeltaNet / SSM layers, an MTP
//! block). The default is llama-quantize's own choices, byte for byte; `conservative` is the
//! safer recipe users of these models report: the recurrent state's decay / time step and the
//! short convolution stay float, the linear-attention input projections (`attn_qkv` of a
//! DeltaNet layer, `ssm_alpha`, `ssm_beta`, `ssm_ba`) get at least Q8_0, and the MTP block's
//! `nextn.eh_proj` gets Q8_0 (as Ollama writes qwen35 at Q4_K_S / Q4_K_M).

use super::role::Role;
use crate::ggml_type::GgmlType;

/// `--hybrid-policy default|conservative`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum HybridPolicy {
    /// llama-quantize's choices.
    #[default]
    Default,
    /// Float SSM state/conv, linear-attention projections >= Q8_0, MTP eh_proj Q8_0.
    Conservative,
}

/// Bits per weight, the order "at least" compares in (floats above every quantized type).
fn bits(t: GgmlType) -> f64 {
    t.bits_per_weight()
}

/// The type `conservative` gives a tensor the mixture rules typed `t` (before the row-length
/// fallback), or `None` to keep `t`. `source` is the tensor's type in the input.
pub fn conservative(role: Role, name: &str, t: GgmlType, source: GgmlType) -> Option<GgmlType> {
    match role {
        Role::SsmState | Role::SsmConv if t.is_quantized() => Some(if source.is_quantized() {
            GgmlType::F32
        } else {
            source
        }),
        Role::LinearAttention
            if ["attn_qkv", "ssm_alpha", "ssm_beta", "ssm_ba"]
                .iter()
                .any(|s| name.contains(s))
                && t.is_quantized()
                && bits(t) < bits(GgmlType::Q8_0) =>
        {
            Some(GgmlType::Q8_0)
        }
        Role::Mtp if name.contains("nextn.eh_proj") && t.is_quantized() => Some(GgmlType::Q8_0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use GgmlType as G;

    #[test]
    fn floors() {
        let c = |r, n, t| conservative(r, n, t, G::F16);
        assert_eq!(
            c(Role::LinearAttention, "blk.0.attn_qkv.weight", G::Q4_K),
            Some(G::Q8_0)
        );
        assert_eq!(
            c(Role::LinearAttention, "blk.0.ssm_beta.weight", G::Q6_K),
            Some(G::Q8_0)
        );
        // already above the floor, or not one of the named projections
        assert_eq!(
            c(Role::LinearAttention, "blk.0.attn_qkv.weight", G::F16),
            None
        );
        assert_eq!(
            c(Role::LinearAttention, "blk.0.ssm_out.weight", G::Q4_K),
            None
        );
        assert_eq!(
            c(Role::Mtp, "blk.64.nextn.eh_proj.weight", G::Q6_K),
            Some(G::Q8_0)
        );
        assert_eq!(
            c(Role::SsmConv, "blk.0.ssm_conv1d.weight", G::Q4_K),
            Some(G::F16)
        );
        assert_eq!(c(Role::Attention, "blk.3.attn_q.weight", G::Q4_K), None);
    }
}
