//! The per-tensor type choice of llama-quantize (src/llama-quant.cpp: `llama_tensor_get_type`,
//! `llama_tensor_get_type_impl`, `tensor_type_fallback`, `tensor_requires_imatrix`).
//!
//! llama.cpp walks the tensors in the order of its loader's `weights_map` (sorted by the layer
//! number parsed from `blk.N.`, tensors without one first, then by name bytewise), and the layer
//! counters of the `use_more_bits` rules advance in that order. [`plan_types`] does the same
//! and returns the plan in the caller's order.

use super::hybrid::{self, HybridPolicy};
use super::mixture::Mixture;
use super::role::{Category, allows_quantization, roles};
use crate::ggml_type::GgmlType;
use regex::Regex;

/// The model facts the rules depend on (from the GGUF metadata or config.json).
#[derive(Clone, Debug, Default)]
pub struct Hparams {
    /// `general.architecture` (`llama`, `qwen2`, `falcon`, …).
    pub arch: String,
    /// `{arch}.block_count`.
    pub n_layer: u32,
    /// `{arch}.attention.head_count` (layer 0).
    pub n_head: u32,
    /// `{arch}.attention.head_count_kv` (layer 0; equal to n_head when absent).
    pub n_head_kv: u32,
    /// `{arch}.expert_count` (0 when absent).
    pub n_expert: u32,
}

impl Hparams {
    fn n_gqa(&self) -> u32 {
        self.n_head.checked_div(self.n_head_kv).unwrap_or(0)
    }

    /// llama.cpp's LLM_TYPE_70B: a llama with 80 layers and grouped-query attention.
    fn is_70b(&self) -> bool {
        self.arch == "llama" && self.n_layer == 80 && self.n_head != self.n_head_kv
    }

    fn is_falcon(&self) -> bool {
        self.arch == "falcon"
    }
}

/// One input tensor.
#[derive(Clone, Debug)]
pub struct TensorDesc {
    pub name: String,
    /// ne0 first.
    pub dims: Vec<u64>,
    pub ty: GgmlType,
}

/// What the user asked for.
#[derive(Clone, Debug)]
pub struct PlanOptions {
    pub mixture: &'static Mixture,
    /// `--pure`: every quantizable tensor gets the mixture's default type.
    pub pure: bool,
    /// `--output-tensor-type`
    pub output_tensor_type: Option<GgmlType>,
    /// `--token-embedding-type`
    pub token_embedding_type: Option<GgmlType>,
    /// `--leave-output-tensor`
    pub leave_output_tensor: bool,
    /// `--tensor-type REGEX=TYPE`, first match wins.
    pub overrides: Vec<(String, GgmlType)>,
    /// Whether an importance matrix is given.
    pub has_imatrix: bool,
    /// Ternary targets for BitNet-style models (a BitNet checkpoint into TQ1_0 / TQ2_0, or any
    /// model into I2_S): the mixture's type goes to every quantizable tensor without the
    /// per-tensor mixture rules, and token_embd / output stay unquantized unless
    /// `--token-embedding-type` / `--output-tensor-type` (or `--pure`) say otherwise.
    pub ternary_policy: bool,
    /// `--hybrid-policy`: per-role floors for hybrid (SSM / DeltaNet, MTP) tensors after the
    /// mixture rules; the default changes nothing.
    pub hybrid_policy: HybridPolicy,
}

impl PlanOptions {
    pub fn new(mixture: &'static Mixture) -> Self {
        PlanOptions {
            mixture,
            pure: false,
            output_tensor_type: None,
            token_embedding_type: None,
            leave_output_tensor: false,
            overrides: Vec::new(),
            has_imatrix: false,
            ternary_policy: false,
            hybrid_policy: HybridPolicy::Default,
        }
    }
}

/// The decision for one tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorPlan {
    pub target: GgmlType,
    /// The target differs from the source type (else the bytes are copied).
    pub convert: bool,
    /// A `--tensor-type` pattern chose the type.
    pub overridden: bool,
    /// The row length did not fit the chosen type's block; this is the fallback.
    pub fallback: bool,
    /// llama-quantize refuses this type for this tensor without an imatrix.
    pub requires_imatrix: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("--tensor-type '{pattern}': {msg}")]
    BadOverride { pattern: String, msg: String },
    #[error("--tensor-type '{0}' matches no quantizable tensor in this model")]
    UnusedOverride(String),
    #[error("tensor {tensor}: cannot tell its layer from the name (expected blk.N.)")]
    NoLayer { tensor: String },
    #[error("tensor {tensor}: row of {ncols} does not fit {ty} and no fallback type is defined")]
    NoFallback {
        tensor: String,
        ncols: u64,
        ty: GgmlType,
    },
}

// `general.file_type` numbers (llama_ftype) the rules test.
mod ft {
    pub const Q4_0: u32 = 2;
    pub const Q5_0: u32 = 8;
    pub const Q2_K: u32 = 10;
    pub const Q3_K_S: u32 = 11;
    pub const Q3_K_M: u32 = 12;
    pub const Q3_K_L: u32 = 13;
    pub const Q4_K_S: u32 = 14;
    pub const Q4_K_M: u32 = 15;
    pub const Q5_K_M: u32 = 17;
    pub const IQ2_XXS: u32 = 19;
    pub const IQ2_XS: u32 = 20;
    pub const Q2_K_S: u32 = 21;
    pub const IQ3_XS: u32 = 22;
    pub const IQ3_XXS: u32 = 23;
    pub const IQ1_S: u32 = 24;
    pub const IQ4_NL: u32 = 25;
    pub const IQ3_S: u32 = 26;
    pub const IQ3_M: u32 = 27;
    pub const IQ2_S: u32 = 28;
    pub const IQ2_M: u32 = 29;
    pub const IQ4_XS: u32 = 30;
    pub const IQ1_M: u32 = 31;
    pub const TQ1_0: u32 = 36;
    pub const TQ2_0: u32 = 37;
    pub const MXFP4_MOE: u32 = 38;
    pub const Q2_0: u32 = 41;
}

struct State<'a> {
    hp: &'a Hparams,
    opts: &'a PlanOptions,
    ftype: u32,
    has_tied_embeddings: bool,
    n_attention_wv: i64,
    n_layer: i64,
    i_attention_wv: i64,
    i_ffn_down: i64,
    i_ffn_gate: i64,
    i_ffn_up: i64,
}

fn use_more_bits(i_layer: i64, n_layers: i64) -> bool {
    i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2
}

impl State<'_> {
    fn is(&self, fts: &[u32]) -> bool {
        fts.contains(&self.ftype)
    }

    /// (layer, layer count) for the ffn rules: the running counter, or for MoE models the layer
    /// parsed from `blk.N.`.
    fn layer_info(&self, counter: i64, name: &str) -> Result<(i64, i64), PlanError> {
        if self.hp.n_expert.max(1) > 1 {
            let layer = name
                .strip_prefix("blk.")
                .and_then(|r| r.split('.').next())
                .and_then(|n| n.parse::<i64>().ok())
                .filter(|&l| l >= 0 && l < self.n_layer)
                .ok_or_else(|| PlanError::NoLayer {
                    tensor: name.to_string(),
                })?;
            return Ok((layer, self.n_layer));
        }
        Ok((counter, self.n_layer))
    }

    /// `llama_tensor_get_type_impl`. The branches mirror llama.cpp's if/else chain one for one
    /// (some arms give the same type) so the two can be compared side by side.
    #[allow(clippy::if_same_then_else)]
    fn mixture_rule(
        &mut self,
        mut t: GgmlType,
        desc: &TensorDesc,
        cat: Category,
    ) -> Result<GgmlType, PlanError> {
        use GgmlType as G;
        use ft::*;
        let hp = self.hp;
        let gqa = hp.n_gqa();
        let name = desc.name.as_str();

        if cat == Category::Output || (self.has_tied_embeddings && cat == Category::TokenEmbd) {
            if let Some(o) = self.opts.output_tensor_type {
                t = o;
            } else {
                let nx = desc.dims.first().copied().unwrap_or(1);
                if self.is(&[MXFP4_MOE]) {
                    t = G::Q8_0;
                } else if hp.is_falcon() || nx % t.block_elems() != 0 {
                    t = G::Q8_0;
                } else if self.is(&[IQ2_XXS, IQ2_XS, IQ3_XXS, IQ1_S, IQ2_S, IQ2_M, IQ1_M]) {
                    t = G::Q5_K;
                } else if t != G::Q8_0 {
                    t = G::Q6_K;
                }
            }
        } else if self.is(&[MXFP4_MOE]) {
            // expert tensors (3-D) -> MXFP4, everything else -> Q8_0; bailingmoe3's MLA
            // projections are 3-D too, so there only the ffn roles count as experts
            let ffn = matches!(cat, Category::FfnUp | Category::FfnGate | Category::FfnDown);
            let ne2 = desc.dims.get(2).copied().unwrap_or(1);
            t = if ne2 > 1 && (hp.arch != "bailingmoe3" || ffn) {
                G::MXFP4
            } else {
                G::Q8_0
            };
        } else if cat == Category::TokenEmbd {
            if let Some(e) = self.opts.token_embedding_type {
                t = e;
            } else if self.is(&[IQ2_XXS, IQ2_XS, IQ1_S, IQ1_M]) {
                t = G::Q2_K;
            } else if self.is(&[IQ2_S, IQ2_M, IQ3_XXS]) {
                t = G::IQ3_S;
            } else if self.is(&[TQ1_0, TQ2_0, Q2_0]) {
                t = G::Q4_K;
            }
        } else if self.is(&[IQ2_XXS, IQ2_XS, IQ1_S, IQ2_S, IQ2_M, IQ1_M]) {
            let iq2s_m = self.is(&[IQ2_S, IQ2_M]);
            if cat.is_attn_v() {
                t = if gqa >= 4 || hp.n_expert >= 4 {
                    G::Q4_K
                } else if iq2s_m {
                    G::IQ3_S
                } else {
                    G::Q2_K
                };
                self.i_attention_wv += 1;
            } else if hp.n_expert == 8 && cat == Category::AttentionK {
                t = G::Q4_K;
            } else if cat == Category::FfnDown {
                if self.i_ffn_down < self.n_layer / 8 {
                    t = if iq2s_m { G::IQ3_S } else { G::Q2_K };
                }
                self.i_ffn_down += 1;
            } else if cat == Category::AttentionOutput {
                if hp.n_expert == 8 {
                    t = G::Q5_K;
                } else if self.is(&[IQ1_S, IQ1_M]) {
                    t = G::IQ2_XXS;
                } else if iq2s_m {
                    t = G::IQ3_S;
                }
            }
        } else if cat.is_attn_v() {
            if self.is(&[Q2_K]) {
                t = if gqa >= 4 { G::Q4_K } else { G::Q3_K };
            } else if self.is(&[Q2_K_S]) && gqa >= 4 {
                t = G::Q4_K;
            } else if self.is(&[IQ3_XXS]) {
                t = if gqa >= 4 {
                    G::Q4_K
                } else if !self.opts.has_imatrix {
                    G::IQ3_S
                } else {
                    G::IQ3_XXS
                };
            } else if (self.is(&[IQ3_XS, IQ3_S]) && gqa >= 4) || self.is(&[IQ3_M]) {
                t = G::Q4_K;
            } else if self.is(&[Q3_K_M]) {
                t = if self.i_attention_wv < 2 {
                    G::Q5_K
                } else {
                    G::Q4_K
                };
            } else if self.is(&[Q3_K_L]) {
                t = G::Q5_K;
            } else if self.is(&[IQ4_NL, IQ4_XS]) && gqa >= 4 {
                t = G::Q5_K;
            } else if self.is(&[Q4_K_M, Q5_K_M])
                && use_more_bits(self.i_attention_wv, self.n_attention_wv)
            {
                t = G::Q6_K;
            } else if self.is(&[Q4_K_S]) && self.i_attention_wv < 4 {
                t = G::Q5_K;
            }
            if hp.is_70b() && (t == G::Q3_K || t == G::Q4_K) {
                t = G::Q5_K;
            }
            if hp.n_expert == 8 {
                t = G::Q8_0;
            }
            self.i_attention_wv += 1;
        } else if cat == Category::AttentionK {
            if hp.n_expert == 8 {
                t = G::Q8_0;
            } else if self.is(&[IQ3_XS]) {
                t = G::IQ3_XXS;
            } else if self.is(&[IQ3_XXS]) {
                t = G::IQ2_S;
            }
        } else if cat == Category::AttentionQ {
            if self.is(&[IQ3_XS]) {
                t = G::IQ3_XXS;
            } else if self.is(&[IQ3_XXS]) {
                t = G::IQ2_S;
            }
        } else if cat == Category::FfnDown {
            let (i_layer, n_layer) = self.layer_info(self.i_ffn_down, name)?;
            let falcon = hp.is_falcon();
            if self.is(&[Q2_K]) {
                t = G::Q3_K;
            } else if self.is(&[Q2_K_S]) {
                if i_layer < n_layer / 8 {
                    t = G::Q4_K;
                }
            } else if self.is(&[IQ3_XXS]) && !self.opts.has_imatrix {
                t = if i_layer < n_layer / 8 {
                    G::Q4_K
                } else {
                    G::Q3_K
                };
            } else if self.is(&[Q3_K_M]) {
                t = if i_layer < n_layer / 16 {
                    G::Q5_K
                } else if !falcon || use_more_bits(i_layer, n_layer) {
                    G::Q4_K
                } else {
                    G::Q3_K
                };
            } else if self.is(&[IQ3_M])
                && (i_layer < n_layer / 8 || (hp.n_expert == 8 && use_more_bits(i_layer, n_layer)))
            {
                t = G::Q4_K;
            } else if self.is(&[Q3_K_L]) {
                t = if falcon { G::Q4_K } else { G::Q5_K };
            } else if self.is(&[Q4_K_M]) {
                if falcon {
                    t = if i_layer < n_layer / 16 {
                        G::Q6_K
                    } else if use_more_bits(i_layer, n_layer) {
                        G::Q5_K
                    } else {
                        G::Q4_K
                    };
                } else if use_more_bits(i_layer, n_layer) {
                    t = G::Q6_K;
                }
            } else if i_layer < n_layer / 8 && self.is(&[IQ4_NL, IQ4_XS]) && !self.opts.has_imatrix
            {
                t = G::Q5_K;
            } else if self.is(&[Q5_K_M]) && use_more_bits(i_layer, n_layer) {
                t = G::Q6_K;
            } else if self.is(&[Q4_K_S]) && !falcon && i_layer < n_layer / 8 {
                t = G::Q5_K;
            } else if self.is(&[Q4_0, Q5_0]) && self.opts.has_imatrix && i_layer < n_layer / 8 {
                t = if self.is(&[Q4_0]) { G::Q4_1 } else { G::Q5_1 };
            }
            self.i_ffn_down += 1;
        } else if cat == Category::AttentionOutput {
            if !hp.is_falcon() {
                if hp.n_expert == 8 {
                    if self.is(&[
                        Q2_K, IQ3_XS, IQ3_XXS, Q3_K_S, Q3_K_M, IQ4_NL, Q4_K_S, Q4_K_M, IQ3_S,
                        IQ3_M, IQ4_XS,
                    ]) {
                        t = G::Q5_K;
                    }
                } else if self.is(&[Q2_K]) {
                    t = G::Q3_K;
                } else if self.is(&[IQ3_XXS]) {
                    t = G::IQ3_S;
                } else if self.is(&[Q3_K_M]) {
                    t = G::Q4_K;
                } else if self.is(&[Q3_K_L]) {
                    t = G::Q5_K;
                } else if self.is(&[IQ3_M]) {
                    t = G::Q4_K;
                }
            } else if self.is(&[Q3_K_L]) {
                t = G::Q4_K;
            }
        } else if cat == Category::AttentionQkv {
            if self.is(&[Q3_K_M, Q3_K_L, IQ3_M]) {
                t = G::Q4_K;
            } else if self.is(&[Q4_K_M]) {
                t = G::Q5_K;
            } else if self.is(&[Q5_K_M]) {
                t = G::Q6_K;
            }
        } else if cat == Category::FfnGate || cat == Category::FfnUp {
            let counter = if cat == Category::FfnGate {
                self.i_ffn_gate
            } else {
                self.i_ffn_up
            };
            let (i_layer, n_layer) = self.layer_info(counter, name)?;
            if self.is(&[IQ3_XS]) && i_layer >= n_layer / 8 && i_layer < 7 * n_layer / 8 {
                t = G::IQ3_XXS;
            }
            if cat == Category::FfnGate {
                self.i_ffn_gate += 1;
            } else {
                self.i_ffn_up += 1;
            }
        }
        Ok(t)
    }
}

/// `tensor_type_fallback`: a type whose block does not divide the row length falls back.
fn fallback(desc: &TensorDesc, t: GgmlType) -> Result<(GgmlType, bool), PlanError> {
    let ncols = desc.dims.first().copied().unwrap_or(1);
    match fallback_type(ncols, t) {
        Some(r) => Ok((r, r != t)),
        None => Err(PlanError::NoFallback {
            tensor: desc.name.clone(),
            ncols,
            ty: t,
        }),
    }
}

/// The type llama-quantize writes for `t` on rows of `ncols` elements: `t` itself when its
/// block divides the row, else its fallback (`tensor_type_fallback`); `None` when `t` has none.
pub fn fallback_type(ncols: u64, t: GgmlType) -> Option<GgmlType> {
    use GgmlType as G;
    if ncols % t.block_elems() == 0 {
        return Some(t);
    }
    let r = match t {
        G::IQ1_S
        | G::IQ1_M
        | G::IQ2_XXS
        | G::IQ2_XS
        | G::IQ2_S
        | G::IQ3_XXS
        | G::IQ3_S
        | G::IQ4_XS => G::IQ4_NL,
        // I2_S (bitnet.cpp, 128-element groups) is not in llama.cpp's table; it falls back
        // as the other ternary types do
        G::Q2_0 | G::Q2_K | G::Q3_K | G::TQ1_0 | G::TQ2_0 | G::I2_S => G::Q4_0,
        G::Q4_K => G::Q5_0,
        G::Q5_K => G::Q5_1,
        G::Q6_K => G::Q8_0,
        // a 32-block type has no smaller block to demote to: the check below makes it F16
        _ if t.block_elems() <= 32 => t,
        _ => return None,
    };
    Some(if ncols % r.block_elems() != 0 {
        G::F16
    } else {
        r
    })
}

/// `tensor_requires_imatrix`: llama-quantize refuses `t` for tensor `name` without an
/// imatrix (under the mixture with `general.file_type` `ftype`).
pub fn requires_imatrix(name: &str, t: GgmlType, ftype: u32) -> bool {
    use GgmlType as G;
    if matches!(Category::of(name), Category::TokenEmbd | Category::Output) {
        return false;
    }
    match t {
        G::IQ3_XXS | G::IQ2_XXS | G::IQ2_XS | G::IQ2_S | G::IQ1_M | G::IQ1_S => true,
        G::Q2_K => ftype == ft::Q2_K_S,
        _ => false,
    }
}

/// The sort key of llama.cpp's `weight_name_comparer`: the layer number of `blk.N.` (-1 for
/// tensors outside the blocks), then the name bytewise.
pub fn loader_order_key(name: &str) -> (i64, &[u8]) {
    let layer = name
        .strip_prefix("blk.")
        .map(|r| {
            r.bytes().take_while(u8::is_ascii_digit).fold(0i64, |n, d| {
                n.saturating_mul(10).saturating_add((d - b'0') as i64)
            })
        })
        .filter(|_| name.as_bytes().get(4).is_some_and(u8::is_ascii_digit))
        .unwrap_or(-1);
    (layer, name.as_bytes())
}

/// Chooses the output type of every tensor as llama-quantize does for `opts`. The result is in
/// the order of `tensors`.
pub fn plan_types(
    tensors: &[TensorDesc],
    hp: &Hparams,
    opts: &PlanOptions,
) -> Result<Vec<TensorPlan>, PlanError> {
    let patterns: Vec<(Regex, GgmlType, &str)> = opts
        .overrides
        .iter()
        .map(|(p, t)| {
            Regex::new(p)
                .map(|r| (r, *t, p.as_str()))
                .map_err(|e| PlanError::BadOverride {
                    pattern: p.clone(),
                    msg: e.to_string(),
                })
        })
        .collect::<Result<_, _>>()?;
    let mut used = vec![false; patterns.len()];

    let cats: Vec<Category> = tensors.iter().map(|t| Category::of(&t.name)).collect();
    let roles = roles(tensors.iter().map(|t| t.name.as_str()));
    let mut st = State {
        hp,
        opts,
        ftype: opts.mixture.ftype,
        has_tied_embeddings: !cats.contains(&Category::Output),
        n_attention_wv: cats.iter().filter(|c| c.is_attn_v()).count() as i64,
        n_layer: hp.n_layer as i64,
        i_attention_wv: 0,
        i_ffn_down: 0,
        i_ffn_gate: 0,
        i_ffn_up: 0,
    };

    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by(|&a, &b| {
        loader_order_key(&tensors[a].name).cmp(&loader_order_key(&tensors[b].name))
    });

    let default = opts.mixture.default;
    let mut out: Vec<Option<TensorPlan>> = vec![None; tensors.len()];
    for i in order {
        let desc = &tensors[i];
        let cat = cats[i];
        let mut plan = TensorPlan {
            target: desc.ty,
            convert: false,
            overridden: false,
            fallback: false,
            requires_imatrix: false,
        };
        if allows_quantization(&desc.name, &desc.dims, !opts.leave_output_tensor) {
            let target = if let (Some(t), Category::TokenEmbd) = (opts.token_embedding_type, cat) {
                t
            } else if let (Some(t), Category::Output) = (opts.output_tensor_type, cat) {
                t
            } else if opts.ternary_policy
                && !opts.pure
                && matches!(cat, Category::TokenEmbd | Category::Output)
            {
                desc.ty
            } else if default.is_quantized() {
                let mut t = default;
                let mut manual = false;
                if let Some(k) = patterns
                    .iter()
                    .position(|(re, _, _)| re.is_match(&desc.name))
                {
                    used[k] = true;
                    t = patterns[k].1;
                    manual = true;
                    plan.overridden = true;
                }
                if !manual && !opts.pure && !opts.ternary_policy {
                    t = st.mixture_rule(t, desc, cat)?;
                }
                if !manual && opts.hybrid_policy == HybridPolicy::Conservative {
                    t = hybrid::conservative(roles[i], &desc.name, t, desc.ty).unwrap_or(t);
                }
                let (t, fell_back) = fallback(desc, t)?;
                plan.fallback = fell_back;
                t
            } else {
                default
            };
            plan.target = target;
            plan.requires_imatrix = requires_imatrix(&desc.name, target, st.ftype);
        }
        plan.convert = plan.target != desc.ty;
        out[i] = Some(plan);
    }
    if let Some(k) = used.iter().position(|u| !u) {
        return Err(PlanError::UnusedOverride(patterns[k].2.to_string()));
    }
    Ok(out.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn llama(n_layer: u32, n_embd: u64, tied: bool) -> Vec<TensorDesc> {
        let mut v = vec![TensorDesc {
            name: "token_embd.weight".into(),
            dims: vec![n_embd, 32000],
            ty: GgmlType::F16,
        }];
        for l in 0..n_layer {
            for (n, d) in [
                ("attn_norm.weight", vec![n_embd]),
                ("attn_q.weight", vec![n_embd, n_embd]),
                ("attn_k.weight", vec![n_embd, n_embd]),
                ("attn_v.weight", vec![n_embd, n_embd]),
                ("attn_output.weight", vec![n_embd, n_embd]),
                ("ffn_norm.weight", vec![n_embd]),
                ("ffn_gate.weight", vec![n_embd, 3 * n_embd]),
                ("ffn_up.weight", vec![n_embd, 3 * n_embd]),
                ("ffn_down.weight", vec![3 * n_embd, n_embd]),
            ] {
                let ty = if d.len() == 1 {
                    GgmlType::F32
                } else {
                    GgmlType::F16
                };
                v.push(TensorDesc {
                    name: format!("blk.{l}.{n}"),
                    dims: d,
                    ty,
                });
            }
        }
        v.push(TensorDesc {
            name: "output_norm.weight".into(),
            dims: vec![n_embd],
            ty: GgmlType::F32,
        });
        if !tied {
            v.push(TensorDesc {
                name: "output.weight".into(),
                dims: vec![n_embd, 32000],
                ty: GgmlType::F16,
            });
        }
        v
    }

    #[test]
    fn loader_order() {
        let mut names = vec![
            "blk.10.a",
            "output.weight",
            "blk.2.b",
            "blk.2.a",
            "token_embd.weight",
            "blkx.1",
        ];
        names.sort_by_key(|n| loader_order_key(n));
        assert_eq!(
            names,
            [
                "blkx.1",
                "output.weight",
                "token_embd.weight",
                "blk.2.a",
                "blk.2.b",
                "blk.10.a"
            ]
        );
    }

    fn count(plan: &[TensorPlan], t: GgmlType) -> usize {
        plan.iter().filter(|p| p.target == t).count()
    }

    fn hp(n_layer: u32) -> Hparams {
        Hparams {
            arch: "llama".into(),
            n_layer,
            n_head: 32,
            n_head_kv: 32,
            n_expert: 0,
        }
    }

    #[test]
    fn llama2_7b_q4_k_m_counts_match_llama_cpp_log() {
        // llama.cpp's published log for Llama-2-7B Q4_K_M: q4_K 193, q6_K 33, f32 65.
        let t = llama(32, 4096, false);
        let opts = PlanOptions::new(Mixture::parse("Q4_K_M").unwrap());
        let plan = plan_types(&t, &hp(32), &opts).unwrap();
        assert_eq!(count(&plan, GgmlType::Q4_K), 193);
        assert_eq!(count(&plan, GgmlType::Q6_K), 33);
        assert_eq!(count(&plan, GgmlType::F32), 65);
        assert!(
            plan.iter()
                .filter(|p| p.target == GgmlType::F32)
                .all(|p| !p.convert)
        );
    }

    #[test]
    fn counters_advance_in_loader_order() {
        // The input lists the layers shuffled; llama.cpp's loader sorts them by layer number, so
        // the counter of the use_more_bits rule is the layer number.
        let mut t = llama(16, 256, true);
        t.reverse();
        t.swap(3, 40);
        let opts = PlanOptions::new(Mixture::parse("Q4_K_M").unwrap());
        let plan = plan_types(&t, &hp(16), &opts).unwrap();
        let target = |name: &str| plan[t.iter().position(|d| d.name == name).unwrap()].target;
        let names: Vec<String> = (0..16).map(|l| format!("blk.{l}.attn_v.weight")).collect();
        for (i, n) in names.iter().enumerate() {
            let want = if use_more_bits(i as i64, 16) {
                GgmlType::Q6_K
            } else {
                GgmlType::Q4_K
            };
            assert_eq!(target(n), want, "{n} (counter {i})");
        }
        // tied embeddings: token_embd takes the output rule
        assert_eq!(target("token_embd.weight"), GgmlType::Q6_K);
    }

    #[test]
    fn fallback_overrides_and_pure() {
        let mut t = llama(2, 256, false);
        t.push(TensorDesc {
            name: "blk.0.odd.weight".into(),
            dims: vec![96, 8],
            ty: GgmlType::F32,
        });
        t.push(TensorDesc {
            name: "blk.0.odder.weight".into(),
            dims: vec![40, 8],
            ty: GgmlType::F32,
        });
        let mut opts = PlanOptions::new(Mixture::parse("Q4_K_M").unwrap());
        opts.overrides = vec![("attn_q".into(), GgmlType::Q8_0)];
        let plan = plan_types(&t, &hp(2), &opts).unwrap();
        let target = |name: &str| plan[t.iter().position(|d| d.name == name).unwrap()].clone();
        assert_eq!(target("blk.0.odd.weight").target, GgmlType::Q5_0);
        assert!(target("blk.0.odd.weight").fallback);
        assert_eq!(target("blk.0.odder.weight").target, GgmlType::F16);
        assert_eq!(target("blk.1.attn_q.weight").target, GgmlType::Q8_0);
        assert!(target("blk.1.attn_q.weight").overridden);

        opts.overrides = vec![("no_such_tensor".into(), GgmlType::Q8_0)];
        assert!(matches!(
            plan_types(&t, &hp(2), &opts),
            Err(PlanError::UnusedOverride(_))
        ));
        opts.overrides = vec![("(".into(), GgmlType::Q8_0)];
        assert!(matches!(
            plan_types(&t, &hp(2), &opts),
            Err(PlanError::BadOverride { .. })
        ));

        let mut pure = PlanOptions::new(Mixture::parse("Q6_K").unwrap());
        pure.pure = true;
        let plan = plan_types(&t, &hp(2), &pure).unwrap();
        let quantized: Vec<_> = plan
            .iter()
            .filter(|p| p.convert && p.target != GgmlType::Q8_0 && !p.fallback)
            .collect();
        assert!(quantized.iter().all(|p| p.target == GgmlType::Q6_K));
        assert_eq!(
            plan[t.iter().position(|d| d.name == "output.weight").unwrap()].target,
            GgmlType::Q6_K
        );
    }
}
