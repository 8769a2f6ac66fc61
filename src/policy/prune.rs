//! Structural pruning's bookkeeping, pure arithmetic: which tensors (rows, columns or elements)
//! make up one prunable group of each kind in each layer ([`layout`]), how many groups a layer
//! keeps ([`kept_per_set`]: uniform across layers, aligned so that no cut row length falls off
//! the quantizer's block) and which ([`select`]).
//!
//! Groups (GGUF names; a matrix of `ne0 = in` and `ne1 = out` has one row per output):
//! - [`GroupKind::Mlp`], one per FFN channel: the row of `ffn_gate` and `ffn_up`, the column of
//!   `ffn_down` (and the element of their biases);
//! - [`GroupKind::Heads`], one per query head: its rows of `attn_q` (query and, in gated
//!   attention, its gate: `2 * head_dim` rows), its columns of `attn_output`. The K/V heads stay:
//!   each KV group keeps the same number of query heads, so `n_head` stays a multiple of
//!   `n_head_kv`; query head `h` belongs to KV head `h / (n_head / n_head_kv)`, as ggml
//!   broadcasts;
//! - [`GroupKind::VHeads`], one per Gated DeltaNet value head (qwen35, qwen35moe): its rows of
//!   the V part of `attn_qkv` and `ssm_conv1d`, of `attn_gate`, `ssm_alpha`, `ssm_beta`, its
//!   element of `ssm_a` and `ssm_dt.bias`, its columns of `ssm_out`. V head `o` reads K head
//!   `o % n_k` (the converter's tiled order), and every K head keeps the same number of V heads.
//!
//! llama.cpp reads one `feed_forward_length` and one `attention.head_count` for the shapes of
//! every layer (a per-layer array loads for the hyperparameters but its tensors are checked
//! against one width: `check_tensor_dims ... wrong shape`), so a kind keeps the same count in
//! every layer: the ranking is per layer.

use crate::formats::gguf::Value;
use crate::model::InputTensor;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A kind of prunable group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupKind {
    /// FFN channels.
    Mlp,
    /// Attention query heads.
    Heads,
    /// Gated DeltaNet value heads.
    VHeads,
}

impl GroupKind {
    pub const ALL: [GroupKind; 3] = [GroupKind::Mlp, GroupKind::Heads, GroupKind::VHeads];

    pub fn name(self) -> &'static str {
        match self {
            GroupKind::Mlp => "mlp channels",
            GroupKind::Heads => "attention heads",
            GroupKind::VHeads => "linear-attention V heads",
        }
    }
}

/// Which axis of a tensor a group owns a block of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Axis {
    /// Rows (outputs); a 2-D tensor's row count changes, its row length does not.
    Rows,
    /// Columns (elements of every row; a 1-D tensor is one row): the row length changes.
    Cols,
}

/// One tensor's part in a kind of group: blocks of `width` rows or columns, group `g` at
/// `offset + g * width`; what lies outside `offset .. offset + n * width` stays.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Member {
    pub tensor: String,
    pub axis: Axis,
    pub offset: u64,
    pub width: u64,
    /// Its energy counts in the group's score (matrices; not biases, decays or the conv).
    pub scored: bool,
}

/// How groups fall into sets that keep the same count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sets {
    /// Set of group `g` is `g / (n / sets)`: consecutive groups (query heads of one KV head).
    Contiguous(u64),
    /// Set of group `g` is `g % sets` (V heads of one K head in the tiled order).
    Tiled(u64),
}

impl Sets {
    pub fn count(self) -> u64 {
        match self {
            Sets::Contiguous(n) | Sets::Tiled(n) => n,
        }
    }
    fn of(self, g: u64, n: u64) -> u64 {
        match self {
            Sets::Contiguous(s) => g / (n / s),
            Sets::Tiled(s) => g % s,
        }
    }
}

/// The groups of one kind in one layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerGroups {
    pub layer: u32,
    pub kind: GroupKind,
    /// Groups in the layer.
    pub n: u64,
    pub sets: Sets,
    pub members: Vec<Member>,
}

/// The metadata numbers the layout reads.
#[derive(Clone, Debug, PartialEq)]
pub struct Shape {
    pub arch: String,
    pub n_layer: u64,
    pub n_ff: Option<u64>,
    pub n_head: u64,
    pub n_head_kv: u64,
    pub head_dim: u64,
    pub head_dim_v: u64,
    /// Gated DeltaNet: (K heads, V heads, V head dim).
    pub linear: Option<(u64, u64, u64)>,
    pub full_attention_interval: u64,
}

fn get<'a>(md: &'a [(String, Value)], k: &str) -> Option<&'a Value> {
    md.iter().find(|(key, _)| key == k).map(|(_, v)| v)
}

/// A number, or the first element of a per-layer array.
fn num(md: &[(String, Value)], k: &str) -> Option<u64> {
    get(md, k).and_then(|v| {
        v.as_u64()
            .or_else(|| v.as_array().and_then(|a| a.get(0)).and_then(|x| x.as_u64()))
    })
}

impl Shape {
    pub fn of(md: &[(String, Value)]) -> Result<Shape, String> {
        let arch = get(md, "general.architecture")
            .and_then(|v| v.as_str())
            .ok_or("no general.architecture")?
            .to_string();
        let k = |s: &str| format!("{arch}.{s}");
        if get(md, &k("feed_forward_length")).is_some_and(|v| v.as_array().is_some())
            || get(md, &k("attention.head_count")).is_some_and(|v| v.as_array().is_some())
        {
            return Err(format!(
                "{} or {} is a per-layer array: pruning needs one width for every layer",
                k("feed_forward_length"),
                k("attention.head_count")
            ));
        }
        let n_layer = num(md, &k("block_count")).ok_or(format!("no {}", k("block_count")))?;
        let embd = num(md, &k("embedding_length")).unwrap_or(0);
        let n_head = num(md, &k("attention.head_count")).unwrap_or(0);
        // Ollama's per-layer head_count_kv has 0 for recurrent layers: take the largest
        let n_head_kv = match get(md, &k("attention.head_count_kv")) {
            Some(Value::Array(a)) => (0..a.len())
                .filter_map(|i| a.get(i).and_then(|x| x.as_u64()))
                .max()
                .unwrap_or(n_head),
            Some(v) => v.as_u64().unwrap_or(n_head),
            None => n_head,
        };
        let head_dim = num(md, &k("attention.key_length"))
            .or_else(|| embd.checked_div(n_head))
            .unwrap_or(0);
        let head_dim_v = num(md, &k("attention.value_length")).unwrap_or(head_dim);
        let linear = match (
            num(md, &k("ssm.group_count")),
            num(md, &k("ssm.time_step_rank")),
            num(md, &k("ssm.inner_size")),
        ) {
            (Some(nk), Some(nv), Some(inner)) if nk > 0 && nv > 0 => Some((nk, nv, inner / nv)),
            _ => None,
        };
        Ok(Shape {
            n_ff: num(md, &k("feed_forward_length")),
            n_layer,
            n_head,
            n_head_kv: n_head_kv.max(1),
            head_dim,
            head_dim_v,
            linear,
            full_attention_interval: num(md, &k("full_attention_interval")).unwrap_or(1),
            arch,
        })
    }
}

/// Every group of every kind the model has, by layer. Errs when a tensor's shape disagrees
/// with the metadata (naming the tensor).
pub fn layout(md: &[(String, Value)], tensors: &[InputTensor]) -> Result<Vec<LayerGroups>, String> {
    let s = Shape::of(md)?;
    let by_name: HashMap<&str, &InputTensor> =
        tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let dims = |n: &str| by_name.get(n).map(|t| t.dims.clone());
    let mut out = Vec::new();
    for l in 0..s.n_layer as u32 {
        let p = |x: &str| format!("blk.{l}.{x}");
        let member = |name: String, axis: Axis, offset: u64, width: u64, scored: bool| Member {
            tensor: name,
            axis,
            offset,
            width,
            scored,
        };
        // a tensor's extent along an axis must hold the groups
        let need = |m: &Member, n: u64| -> Result<(), String> {
            let d = dims(&m.tensor).unwrap_or_default();
            let len = match (m.axis, d.len()) {
                (Axis::Cols, _) => d.first().copied().unwrap_or(0),
                (Axis::Rows, 1) => 1,
                (Axis::Rows, _) => d[1..].iter().product(),
            };
            if m.axis == Axis::Rows && d.len() > 2 {
                return Err(format!(
                    "{}: a {}-D tensor (experts) cannot be cut by rows here",
                    m.tensor,
                    d.len()
                ));
            }
            if m.offset + n * m.width > len {
                return Err(format!(
                    "{}: {} {} expected at least {} (from the metadata), found {len}",
                    m.tensor,
                    if m.axis == Axis::Rows {
                        "rows"
                    } else {
                        "columns"
                    },
                    m.offset,
                    m.offset + n * m.width
                ));
            }
            Ok(())
        };
        let mut push = |kind: GroupKind, n: u64, sets: Sets, members: Vec<Member>| {
            for m in &members {
                need(m, n)?;
            }
            out.push(LayerGroups {
                layer: l,
                kind,
                n,
                sets,
                members,
            });
            Ok::<(), String>(())
        };
        // MLP channels
        if let (Some(g), Some(u), Some(d)) = (
            dims(&p("ffn_gate.weight")),
            dims(&p("ffn_up.weight")),
            dims(&p("ffn_down.weight")),
        ) && g.len() == 2
            && u.len() == 2
            && d.len() == 2
        {
            let n = g[1];
            let mut ms = vec![
                member(p("ffn_gate.weight"), Axis::Rows, 0, 1, true),
                member(p("ffn_up.weight"), Axis::Rows, 0, 1, true),
                member(p("ffn_down.weight"), Axis::Cols, 0, 1, true),
            ];
            for b in ["ffn_gate.bias", "ffn_up.bias"] {
                if dims(&p(b)).is_some() {
                    ms.push(member(p(b), Axis::Cols, 0, 1, false));
                }
            }
            if s.n_ff.is_some_and(|f| f != n) {
                return Err(format!(
                    "{}: {n} channels, but {}.feed_forward_length is {}",
                    p("ffn_gate.weight"),
                    s.arch,
                    s.n_ff.unwrap_or(0)
                ));
            }
            push(GroupKind::Mlp, n, Sets::Contiguous(1), ms)?;
        }
        // attention query heads
        if let (Some(q), Some(_)) = (dims(&p("attn_q.weight")), dims(&p("attn_output.weight")))
            && s.n_head > 0
            && s.head_dim > 0
        {
            let rows = q.get(1).copied().unwrap_or(0);
            let gated = rows == 2 * s.n_head * s.head_dim;
            if !gated && rows != s.n_head * s.head_dim {
                return Err(format!(
                    "{}: {rows} rows, expected {} heads x {} (or x2 with a gate)",
                    p("attn_q.weight"),
                    s.n_head,
                    s.head_dim
                ));
            }
            let w = if gated { 2 * s.head_dim } else { s.head_dim };
            let mut ms = vec![
                member(p("attn_q.weight"), Axis::Rows, 0, w, true),
                member(p("attn_output.weight"), Axis::Cols, 0, s.head_dim_v, true),
            ];
            if dims(&p("attn_q.bias")).is_some() {
                ms.push(member(p("attn_q.bias"), Axis::Cols, 0, w, false));
            }
            if s.n_head % s.n_head_kv != 0 {
                return Err(format!(
                    "{} heads are not a multiple of {} KV heads",
                    s.n_head, s.n_head_kv
                ));
            }
            push(
                GroupKind::Heads,
                s.n_head,
                Sets::Contiguous(s.n_head_kv),
                ms,
            )?;
        }
        // Gated DeltaNet V heads
        if let (Some((nk, nv, dv)), Some(qkv)) = (s.linear, dims(&p("attn_qkv.weight")))
            && dims(&p("ssm_out.weight")).is_some()
        {
            if dims(&p("ssm_ba.weight")).is_some() || s.arch == "qwen3next" {
                // qwen3next interleaves beta and alpha per K head and groups V heads by K head;
                // not laid out here
                continue;
            }
            let qk = qkv.get(1).copied().unwrap_or(0).saturating_sub(nv * dv);
            let mut ms = vec![
                member(p("attn_qkv.weight"), Axis::Rows, qk, dv, true),
                member(p("attn_gate.weight"), Axis::Rows, 0, dv, true),
                member(p("ssm_alpha.weight"), Axis::Rows, 0, 1, true),
                member(p("ssm_beta.weight"), Axis::Rows, 0, 1, true),
                member(p("ssm_out.weight"), Axis::Cols, 0, dv, true),
                member(p("ssm_conv1d.weight"), Axis::Rows, qk, dv, false),
                member(p("ssm_a"), Axis::Cols, 0, 1, false),
                member(p("ssm_dt.bias"), Axis::Cols, 0, 1, false),
            ];
            ms.retain(|m| by_name.contains_key(m.tensor.as_str()));
            if ms.len() != 8 {
                return Err(format!(
                    "layer {l}: a Gated DeltaNet layer without all of attn_qkv, attn_gate, \
                     ssm_alpha, ssm_beta, ssm_out, ssm_conv1d, ssm_a, ssm_dt.bias"
                ));
            }
            push(GroupKind::VHeads, nv, Sets::Tiled(nk), ms)?;
        }
    }
    Ok(out)
}

/// Groups each set keeps in every layer of a kind: about `keep` of them, a multiple of the
/// step that keeps every cut row length (columns cut: `width * sets` per kept group, plus what
/// stays outside) a multiple of `align`, at least one step. Keeping all is always allowed.
/// Errs when no positive multiple fits (the message says which `--align` would).
pub fn kept_per_set(
    g: &LayerGroups,
    keep: f64,
    align: u64,
    dims_of: &dyn Fn(&str) -> Vec<u64>,
) -> Result<u64, String> {
    let sets = g.sets.count();
    let per = g.n / sets;
    if keep >= 1.0 {
        return Ok(per);
    }
    let align = align.max(1);
    let ok = |c: u64| {
        g.members
            .iter()
            .filter(|m| m.axis == Axis::Cols && m.scored)
            .all(|m| {
                let row = dims_of(&m.tensor).first().copied().unwrap_or(0);
                let outside = row - g.n * m.width;
                (outside + c * sets * m.width) % align == 0
            })
    };
    let fits: Vec<u64> = (1..per).filter(|&c| ok(c)).collect();
    let want = keep * per as f64;
    fits.iter()
        .copied()
        .min_by(|a, b| {
            (*a as f64 - want)
                .abs()
                .total_cmp(&(*b as f64 - want).abs())
                .then(b.cmp(a))
        })
        .ok_or_else(|| {
            format!(
                "layer {}: no count of {} below {per} per set keeps the cut rows a multiple of \
                 {align} (the target type's block); try a smaller --align or keep them all",
                g.layer,
                g.kind.name()
            )
        })
}

/// The groups a layer keeps, in their output order: per set the `c` with the highest score
/// (ties: higher energy, then lower index), in index order; sets laid out as the kind's order
/// requires (contiguous: set after set; tiled: round-robin).
pub fn select(g: &LayerGroups, scores: &[f32], energies: &[f64], c: u64) -> Vec<u32> {
    let sets = g.sets.count();
    let mut per_set: Vec<Vec<u32>> = vec![Vec::new(); sets as usize];
    for i in 0..g.n {
        per_set[g.sets.of(i, g.n) as usize].push(i as u32);
    }
    for s in per_set.iter_mut() {
        s.sort_by(|&a, &b| {
            let (a, b) = (a as usize, b as usize);
            scores[b]
                .total_cmp(&scores[a])
                .then(energies[b].total_cmp(&energies[a]))
                .then(a.cmp(&b))
        });
        s.truncate(c as usize);
        s.sort_unstable();
    }
    match g.sets {
        Sets::Contiguous(_) => per_set.concat(),
        Sets::Tiled(_) => (0..c as usize)
            .flat_map(|i| per_set.iter().map(move |s| s[i]))
            .collect(),
    }
}

/// The source indices (rows, or columns) of a member's axis after the cut, in output order.
pub fn gather_map(m: &Member, n: u64, len: u64, kept: &[u32]) -> Vec<u64> {
    let end = m.offset + n * m.width;
    let mut v: Vec<u64> = (0..m.offset).collect();
    for &g in kept {
        let a = m.offset + g as u64 * m.width;
        v.extend(a..a + m.width);
    }
    v.extend(end..len);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ggml_type::GgmlType;

    fn t(name: &str, dims: &[u64]) -> InputTensor {
        InputTensor {
            name: name.into(),
            dims: dims.to_vec(),
            ty: GgmlType::F16,
        }
    }

    #[test]
    fn select_keeps_the_best_per_set_in_the_kinds_order() {
        let g = LayerGroups {
            layer: 0,
            kind: GroupKind::VHeads,
            n: 6,
            sets: Sets::Tiled(2),
            members: vec![],
        };
        // heads 0,2,4 read K head 0; 1,3,5 read K head 1
        let s = [0.1, 0.9, 0.8, 0.2, 0.5, 0.7];
        let e = [1.0; 6];
        assert_eq!(select(&g, &s, &e, 2), vec![2, 1, 4, 5]);
        let g = LayerGroups {
            sets: Sets::Contiguous(2),
            kind: GroupKind::Heads,
            ..g
        };
        // heads 0..3 share KV head 0, 3..6 KV head 1
        assert_eq!(select(&g, &s, &e, 2), vec![1, 2, 4, 5]);
        // ties fall to energy, then index
        let e = [1.0, 1.0, 3.0, 2.0, 2.0, 1.0];
        assert_eq!(select(&g, &[0.0; 6], &e, 1), vec![2, 3]);
    }

    #[test]
    fn counts_are_aligned_to_the_block() {
        let md = vec![
            ("general.architecture".into(), Value::String("llama".into())),
            ("llama.block_count".into(), Value::U32(1)),
            ("llama.embedding_length".into(), Value::U32(256)),
            ("llama.feed_forward_length".into(), Value::U32(1280)),
            ("llama.attention.head_count".into(), Value::U32(8)),
            ("llama.attention.head_count_kv".into(), Value::U32(2)),
        ];
        let ts = vec![
            t("blk.0.ffn_gate.weight", &[256, 1280]),
            t("blk.0.ffn_up.weight", &[256, 1280]),
            t("blk.0.ffn_down.weight", &[1280, 256]),
            t("blk.0.attn_q.weight", &[256, 256]),
            t("blk.0.attn_output.weight", &[256, 256]),
        ];
        let l = layout(&md, &ts).unwrap();
        assert_eq!(l.len(), 2);
        let dims = |n: &str| ts.iter().find(|t| t.name == n).unwrap().dims.clone();
        assert_eq!(kept_per_set(&l[0], 0.7, 256, &dims).unwrap(), 1024);
        assert_eq!(kept_per_set(&l[0], 0.5, 256, &dims).unwrap(), 768);
        assert_eq!(kept_per_set(&l[0], 0.01, 256, &dims).unwrap(), 256);
        assert_eq!(kept_per_set(&l[0], 0.7, 32, &dims).unwrap(), 896);
        assert_eq!(kept_per_set(&l[0], 1.0, 256, &dims).unwrap(), 1280);
        // heads of 32: 2 KV groups x c x 32 columns must be a multiple of 64
        assert_eq!(l[1].sets, Sets::Contiguous(2));
        assert_eq!(kept_per_set(&l[1], 0.5, 64, &dims).unwrap(), 2);
        assert!(kept_per_set(&l[1], 0.5, 256, &dims).is_err());
        let m = &l[1].members[1];
        assert_eq!(gather_map(m, 8, 256, &[1, 3])[..3], [32, 33, 34]);
        assert_eq!(gather_map(m, 8, 256, &[1, 3]).len(), 64);
    }
}
