//! The prune job (equilibrium pruning, `measure::participation`): a plan of what to remove,
//! then the pruned model ([`PrunedSource`]) streamed through the quantize pipeline, so pruning
//! and quantizing are one pass over the weights.
//!
//! - Structural ([`plan_structural`]): one pass over the weights measures the energy of every
//!   group (MLP channel, attention head, linear-attention V head; `policy::prune`) as sums of
//!   squares of its rows and columns ([`measure`], saved and reused with `--scores`); group
//!   energies, scaled to mean 1 in their layer, play the participation game; each layer keeps
//!   the same aligned count of the best groups. The output's shapes shrink and its metadata
//!   says so.
//! - Unstructured ([`unstructured_edits`]): every weight plays the game in its row (its energy
//!   scaled to its row's mean), and the lowest-scoring `sparsity` of each row is set to zero while
//!   the tile is read: per row, so each tensor's sparsity is what was asked to within one
//!   weight per row. Zeros are still encoded in every block: the file does not shrink.

pub mod hf_out;
pub mod source;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::formats::gguf::Value;
use crate::measure::participation::Participation;
use crate::model::ModelSource;
use crate::pipeline::Progress;
use crate::pipeline::tiles::{RowDecoder, RowTiles};
use crate::policy::prune::{self, Axis, GroupKind, LayerGroups, Member, Sets};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};

pub use source::{Edit, PrunedSource};

/// Per tensor name its edit, and the metadata keys the pruned model sets.
pub type PruneEdits = (HashMap<String, Edit>, Vec<(String, Value)>);

/// The metadata key naming what was pruned.
pub const RECIPE_KEY: &str = "general.pruned";

/// The model's identity for saved scores and plans: a hash of its tensor names and shapes.
pub fn fingerprint(src: &dyn ModelSource) -> String {
    let mut h = Sha256::new();
    for t in src.tensors() {
        h.update(t.name.as_bytes());
        for d in &t.dims {
            h.update(d.to_le_bytes());
        }
    }
    h.finalize()
        .iter()
        .take(12)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One member's energy per group and in all.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberEnergy {
    pub per_group: Vec<f64>,
    pub total: f64,
}

/// The groups of one kind in one layer with their members' energies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupEnergies {
    pub groups: LayerGroups,
    /// One per `groups.members`, in order.
    pub energy: Vec<MemberEnergy>,
}

impl GroupEnergies {
    /// Each group's energy over its scored members.
    pub fn group_energy(&self) -> Vec<f64> {
        let mut e = vec![0f64; self.groups.n as usize];
        for (m, me) in self.groups.members.iter().zip(&self.energy) {
            if m.scored {
                for (a, b) in e.iter_mut().zip(&me.per_group) {
                    *a += b;
                }
            }
        }
        e
    }
}

/// The score pass's result: every group's energy (`--scores FILE`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    pub version: u32,
    pub model: String,
    pub fingerprint: String,
    pub groups: Vec<GroupEnergies>,
}

impl Scores {
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::Invalid(format!("scores: {e}")))
    }
    /// Reads saved scores; errs when they belong to another model.
    pub fn from_json(text: &str, what: &str, src: &dyn ModelSource) -> Result<Scores> {
        let s: Scores = read_for_model(text, what, "prune scores")?;
        same_model(&s.fingerprint, &s.model, what, src)?;
        // the groups are the model's own (derived again), every energy is there and finite
        let l = layout(src)?;
        let fits = s.groups.len() == l.len()
            && s.groups.iter().zip(&l).all(|(ge, g)| {
                ge.groups == *g
                    && ge.energy.len() == g.members.len()
                    && ge.energy.iter().all(|me| {
                        me.per_group.len() as u64 == g.n
                            && me.total.is_finite()
                            && me.per_group.iter().all(|v| v.is_finite() && *v >= 0.0)
                    })
            });
        if !fits {
            return Err(Error::Invalid(format!(
                "{what}: its groups or energies do not match {}'s (edited or damaged?): \
                 delete it and measure again",
                src.describe()
            )));
        }
        Ok(s)
    }
}

/// A saved JSON file of the prune job (`noun` names its kind in errors).
fn read_for_model<T: serde::de::DeserializeOwned>(text: &str, what: &str, noun: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::Invalid(format!("{what}: not gpuq {noun}: {e}")))
}

/// Errs when a saved file's fingerprint is not `src`'s.
fn same_model(fp: &str, model: &str, what: &str, src: &dyn ModelSource) -> Result<()> {
    if fp != fingerprint(src) {
        return Err(Error::Invalid(format!(
            "{what}: made for another model ({model}); its tensors differ from {}",
            src.describe()
        )));
    }
    Ok(())
}

/// Sums of squares of every row and every column of tensor `index`, read in tiles of at most
/// `max_memory` bytes of f32.
fn tensor_energies(
    src: &dyn ModelSource,
    engine: &Engine,
    index: usize,
    max_memory: u64,
    progress: &dyn Progress,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let t = &src.tensors()[index];
    let row_len = t.row_len() as usize;
    let rows_per_tile = (max_memory / (row_len as u64 * 8).max(1)).clamp(1, 1 << 16);
    let decoder = RowDecoder::of(src, index, t)?;
    let mut tiles = RowTiles::new(src, index, rows_per_tile)?.cancel_with(progress);
    let mut rows = Vec::with_capacity(t.n_rows() as usize);
    let mut cols = vec![0f64; row_len];
    let mut x = Vec::new();
    while let Some(tile) = tiles.next_tile()? {
        x.resize(tile.rows as usize * row_len, 0.0);
        decoder.decode(engine, tile.bytes, &mut x)?;
        if let Some(bad) = x.iter().position(|v| !v.is_finite()) {
            return Err(Error::Invalid(format!(
                "{}: tensor {}: weight {} of row {} is {}; pruning needs finite weights",
                src.describe(),
                t.name,
                bad % row_len,
                tile.r0 + (bad / row_len) as u64,
                x[bad]
            )));
        }
        let (r, c) = engine.energies(&x, row_len)?;
        rows.extend(r.iter().map(|&v| v as f64));
        for (a, b) in cols.iter_mut().zip(&c) {
            *a += *b as f64;
        }
        progress.advance(tile.bytes.len() as u64);
    }
    Ok((rows, cols))
}

/// The score pass: the energy of every group of `layout`, one read of each member tensor.
pub fn measure(
    src: &dyn ModelSource,
    engine: &Engine,
    layout: Vec<LayerGroups>,
    max_memory: u64,
    progress: &dyn Progress,
) -> Result<Scores> {
    let index: HashMap<&str, usize> = src
        .tensors()
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();
    let mut needed: BTreeMap<usize, ()> = BTreeMap::new();
    for g in &layout {
        for m in &g.members {
            let i = *index.get(m.tensor.as_str()).ok_or_else(|| {
                Error::Invalid(format!("{}: no tensor {}", src.describe(), m.tensor))
            })?;
            needed.insert(i, ());
        }
    }
    let total: u64 = needed.keys().map(|&i| src.tensor_len(i)).sum();
    progress.start(total, src.tensors().len());
    let mut sums: HashMap<usize, (Vec<f64>, Vec<f64>)> = HashMap::new();
    for &i in needed.keys() {
        progress.step(i, &src.tensors()[i].name, "scoring");
        sums.insert(i, tensor_energies(src, engine, i, max_memory, progress)?);
    }
    progress.finish();
    let groups = layout
        .into_iter()
        .map(|g| {
            let energy = g
                .members
                .iter()
                .map(|m| {
                    let (rows, cols) = &sums[&index[m.tensor.as_str()]];
                    let v = match m.axis {
                        Axis::Rows => rows,
                        Axis::Cols => cols,
                    };
                    let per_group = (0..g.n)
                        .map(|k| {
                            let a = (m.offset + k * m.width) as usize;
                            v[a..a + m.width as usize].iter().sum()
                        })
                        .collect();
                    MemberEnergy {
                        per_group,
                        total: v.iter().sum(),
                    }
                })
                .collect();
            GroupEnergies { groups: g, energy }
        })
        .collect();
    Ok(Scores {
        version: 1,
        model: src.describe(),
        fingerprint: fingerprint(src),
        groups,
    })
}

/// The participation parameters as saved in a plan.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Params {
    pub alpha: f32,
    pub beta: f32,
    pub gamma: f32,
    pub lr: f32,
    pub iterations: u32,
    pub init: f32,
}

impl From<Participation> for Params {
    fn from(p: Participation) -> Self {
        Params {
            alpha: p.alpha,
            beta: p.beta,
            gamma: p.gamma,
            lr: p.lr,
            iterations: p.iterations,
            init: p.init,
        }
    }
}

/// What one kind keeps in every layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KindPlan {
    pub kind: GroupKind,
    /// The keep ratio asked for.
    pub keep: f64,
    /// Groups per layer before and after.
    pub from: u64,
    pub to: u64,
    /// Layers with this kind.
    pub layers: u32,
}

/// A tensor's share of its energy (sum of squares) removed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Removed {
    pub tensor: String,
    pub energy_share: f64,
}

/// One layer's cut of one kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerPlan {
    pub layer: u32,
    pub kind: GroupKind,
    /// Kept groups in output order.
    pub kept: Vec<u32>,
    /// Scored members (the matrices), their removed energy share.
    pub removed: Vec<Removed>,
    /// Each group's participation (the game's result), in index order.
    pub scores: Vec<f32>,
}

/// A structural plan (`--save-plan`, `--plan`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrunePlan {
    pub version: u32,
    pub model: String,
    pub fingerprint: String,
    pub arch: String,
    pub recipe: String,
    pub params: Params,
    pub align: u64,
    pub kinds: Vec<KindPlan>,
    pub layers: Vec<LayerPlan>,
    /// Parameters (weights) before and after.
    pub params_before: u64,
    pub params_after: u64,
    /// Whole layers removed (source numbering); the blocks after them are renumbered.
    #[serde(default)]
    pub removed_layers: Vec<u32>,
    /// Each layer's participation (its groups' energy, scaled to the layers' mean), when
    /// layers were ranked.
    #[serde(default)]
    pub layer_scores: Vec<f32>,
}

impl PrunePlan {
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self).map_err(|e| Error::Invalid(format!("plan: {e}")))
    }
    pub fn from_json(text: &str, what: &str, src: &dyn ModelSource) -> Result<PrunePlan> {
        let p: PrunePlan = read_for_model(text, what, "prune plan")?;
        same_model(&p.fingerprint, &p.model, what, src)?;
        Ok(p)
    }
}

/// Keep ratios of the structural mode (1 keeps a kind whole).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Keep {
    pub mlp: f64,
    pub heads: f64,
    pub vheads: f64,
    /// Whole layers (blocks); refused for hybrids with a fixed `full_attention_interval`.
    pub layers: f64,
}

impl Keep {
    fn of(&self, k: GroupKind) -> f64 {
        match k {
            GroupKind::Mlp => self.mlp,
            GroupKind::Heads => self.heads,
            GroupKind::VHeads => self.vheads,
        }
    }
}

/// Chooses what every layer keeps from measured energies: per layer the group energies,
/// scaled to mean 1, play the participation game on `engine`; each set keeps the same
/// aligned count (`policy::prune::kept_per_set`) of its best groups.
pub fn plan_structural(
    src: &dyn ModelSource,
    engine: &Engine,
    scores: &Scores,
    keep: Keep,
    align: u64,
    params: Participation,
) -> Result<PrunePlan> {
    for (k, v) in [
        ("mlp", keep.mlp),
        ("heads", keep.heads),
        ("vheads", keep.vheads),
    ] {
        if !(v > 0.0 && v <= 1.0) {
            return Err(Error::Invalid(format!(
                "--{k}-keep {v}: a keep ratio is within (0, 1]"
            )));
        }
    }
    let arch = src
        .metadata()
        .iter()
        .find(|(k, _)| k == "general.architecture")
        .and_then(|(_, v)| v.as_str())
        .unwrap_or("")
        .to_string();
    let dims: HashMap<&str, &Vec<u64>> = src
        .tensors()
        .iter()
        .map(|t| (t.name.as_str(), &t.dims))
        .collect();
    let dims_of = |n: &str| dims.get(n).map(|d| (*d).clone()).unwrap_or_default();
    let (removed_layers, layer_scores) = rank_layers(src, engine, scores, keep.layers, &params)?;
    let mut kinds: BTreeMap<GroupKind, KindPlan> = BTreeMap::new();
    let mut layers = Vec::new();
    let mut removed_params: u64 = src
        .tensors()
        .iter()
        .filter(|t| layer_of(&t.name).is_some_and(|l| removed_layers.contains(&l)))
        .map(|t| t.n_elements())
        .sum();
    for ge in &scores.groups {
        let g = &ge.groups;
        if removed_layers.contains(&g.layer) {
            continue;
        }
        let ratio = keep.of(g.kind);
        if ratio >= 1.0 {
            continue;
        }
        let c = prune::kept_per_set(g, ratio, align, &dims_of).map_err(Error::Invalid)?;
        let kp = kinds.entry(g.kind).or_insert(KindPlan {
            kind: g.kind,
            keep: ratio,
            from: g.n,
            to: c * g.sets.count(),
            layers: 0,
        });
        if kp.from != g.n || kp.to != c * g.sets.count() {
            return Err(Error::Invalid(format!(
                "layer {}: {} {} -> {}, other layers {} -> {}: llama.cpp needs one width for every layer",
                g.layer,
                g.kind.name(),
                g.n,
                c * g.sets.count(),
                kp.from,
                kp.to
            )));
        }
        kp.layers += 1;
        let e = ge.group_energy();
        let mean = e.iter().sum::<f64>() / e.len().max(1) as f64;
        let scaled: Vec<f32> = e
            .iter()
            .map(|&x| if mean > 0.0 { (x / mean) as f32 } else { 0.0 })
            .collect();
        let s = engine.group_scores(&scaled, &params)?;
        let kept = prune::select(g, &s, &e, c);
        let mut is_kept = vec![false; g.n as usize];
        for &k in &kept {
            is_kept[k as usize] = true;
        }
        let mut removed = Vec::new();
        for (m, me) in g.members.iter().zip(&ge.energy) {
            let gone: f64 = me
                .per_group
                .iter()
                .zip(&is_kept)
                .filter(|(_, k)| !**k)
                .map(|(v, _)| v)
                .sum();
            let d = dims_of(&m.tensor);
            // a removed group takes `width` rows of ne0, or `width` columns of every row
            let per = match m.axis {
                Axis::Rows => m.width * d.first().copied().unwrap_or(1),
                Axis::Cols => m.width * d.iter().skip(1).product::<u64>(),
            };
            removed_params += per * (g.n - kept.len() as u64);
            if m.scored {
                removed.push(Removed {
                    tensor: m.tensor.clone(),
                    energy_share: if me.total > 0.0 { gone / me.total } else { 0.0 },
                });
            }
        }
        layers.push(LayerPlan {
            layer: g.layer,
            kind: g.kind,
            kept,
            removed,
            scores: s,
        });
    }
    if layers.is_empty() && removed_layers.is_empty() {
        return Err(Error::Invalid(
            "nothing to prune: pass --mlp-keep, --heads-keep, --vheads-keep or --layers-keep \
             below 1 (for a kind this model has)"
                .into(),
        ));
    }
    let params_before: u64 = src.tensors().iter().map(|t| t.n_elements()).sum();
    let mut recipe: Vec<String> = kinds
        .values()
        .map(|k| format!("{} {}->{} (keep {})", k.kind.name(), k.from, k.to, k.keep))
        .collect();
    if !removed_layers.is_empty() {
        recipe.push(format!("layers {:?} removed", removed_layers));
    }
    let recipe = recipe.join(", ");
    Ok(PrunePlan {
        version: 1,
        model: src.describe(),
        fingerprint: fingerprint(src),
        arch,
        recipe: format!("gpuq structural prune: {recipe}"),
        params: params.into(),
        align,
        kinds: kinds.into_values().collect(),
        layers,
        params_before,
        params_after: params_before - removed_params,
        removed_layers,
        layer_scores,
    })
}

/// The block number of a `blk.N.…` tensor.
pub fn layer_of(name: &str) -> Option<u32> {
    name.strip_prefix("blk.")?.split('.').next()?.parse().ok()
}

/// Which whole layers go when `keep < 1`: each layer's energy is the total of its groups'
/// scored matrices (no second pass), scaled to the layers' mean, played in the participation
/// game; the lowest-scoring go (ties: lower energy, then the later layer). Refused for models
/// whose layer kinds follow a fixed pattern (`full_attention_interval` > 1) or carry MTP
/// blocks.
fn rank_layers(
    src: &dyn ModelSource,
    engine: &Engine,
    scores: &Scores,
    keep: f64,
    params: &Participation,
) -> Result<(Vec<u32>, Vec<f32>)> {
    if keep >= 1.0 {
        return Ok((Vec::new(), Vec::new()));
    }
    let shape = prune::Shape::of(src.metadata()).map_err(Error::Invalid)?;
    let nextn = src
        .metadata()
        .iter()
        .any(|(k, v)| k.ends_with(".nextn_predict_layers") && v.as_u64().unwrap_or(0) > 0);
    if shape.full_attention_interval > 1 || nextn {
        return Err(Error::Invalid(format!(
            "--layers-keep: {} mixes layer kinds in a fixed pattern (full_attention_interval {}{}); \
             removing a layer breaks it: prune channels and heads instead",
            src.describe(),
            shape.full_attention_interval,
            if nextn { ", MTP blocks" } else { "" }
        )));
    }
    let n = shape.n_layer as usize;
    let mut energy = vec![0f64; n];
    for ge in &scores.groups {
        for (m, me) in ge.groups.members.iter().zip(&ge.energy) {
            if m.scored && (ge.groups.layer as usize) < n {
                energy[ge.groups.layer as usize] += me.total;
            }
        }
    }
    let mean = energy.iter().sum::<f64>() / n.max(1) as f64;
    let scaled: Vec<f32> = energy
        .iter()
        .map(|&e| if mean > 0.0 { (e / mean) as f32 } else { 0.0 })
        .collect();
    let s = engine.group_scores(&scaled, params)?;
    let kept = ((keep * n as f64).round() as usize).clamp(1, n);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| {
        s[a].total_cmp(&s[b])
            .then(energy[a].total_cmp(&energy[b]))
            .then(b.cmp(&a))
    });
    let mut removed: Vec<u32> = order[..n - kept].iter().map(|&l| l as u32).collect();
    removed.sort_unstable();
    Ok((removed, s))
}

/// The edits and metadata of a structural plan.
pub fn structural_edits(src: &dyn ModelSource, plan: &PrunePlan) -> Result<PruneEdits> {
    let dims: HashMap<&str, &Vec<u64>> = src
        .tensors()
        .iter()
        .map(|t| (t.name.as_str(), &t.dims))
        .collect();
    let mut edits: HashMap<String, Edit> = HashMap::new();
    let removed = &plan.removed_layers;
    if !removed.is_empty() {
        for t in src.tensors() {
            let Some(l) = layer_of(&t.name) else { continue };
            let e = edits.entry(t.name.clone()).or_default();
            if removed.contains(&l) {
                e.drop = true;
            } else {
                let before = removed.iter().filter(|&&r| r < l).count() as u32;
                if before > 0 {
                    let rest = &t.name[format!("blk.{l}.").len()..];
                    e.rename = Some(format!("blk.{}.{rest}", l - before));
                }
            }
        }
    }
    // the groups of each cut are the model's own, derived again; a plan only says which stay
    let groups = layout(src)?;
    let n_layer = prune::Shape::of(src.metadata())
        .map_err(Error::Invalid)?
        .n_layer;
    if removed.iter().any(|&l| l as u64 >= n_layer)
        || removed.windows(2).any(|w| w[0] >= w[1])
        || removed.len() as u64 >= n_layer
    {
        return Err(bad_plan(
            src,
            "its removed layers are not layers of this model",
        ));
    }
    for lp in &plan.layers {
        let g = groups
            .iter()
            .find(|g| g.layer == lp.layer && g.kind == lp.kind)
            .ok_or_else(|| {
                bad_plan(
                    src,
                    &format!("layer {} has no {}", lp.layer, lp.kind.name()),
                )
            })?;
        let to = plan
            .kinds
            .iter()
            .find(|k| k.kind == lp.kind)
            .map_or(0, |k| k.to);
        // the kept groups: the kind's count, each set its share, in the kind's order (the order
        // `select` gives a set of groups)
        let sets = g.sets.count();
        let mut chosen = vec![0f32; g.n as usize];
        for &k in &lp.kept {
            if let Some(c) = chosen.get_mut(k as usize) {
                *c = 1.0;
            }
        }
        let canonical = prune::select(g, &chosen, &vec![0.0; g.n as usize], to / sets.max(1));
        if lp.kept.len() as u64 != to || to % sets != 0 || canonical != lp.kept {
            return Err(bad_plan(
                src,
                &format!(
                    "layer {}: its {} kept are not {to}, the same number per set, in order",
                    lp.layer,
                    lp.kind.name()
                ),
            ));
        }
        for m in &g.members {
            let d = dims.get(m.tensor.as_str()).ok_or_else(|| {
                Error::Invalid(format!("{}: no tensor {}", src.describe(), m.tensor))
            })?;
            let len = match m.axis {
                Axis::Rows => d.iter().skip(1).product::<u64>(),
                Axis::Cols => d.first().copied().unwrap_or(0),
            };
            if m.offset + g.n * m.width > len {
                return Err(Error::Invalid(format!(
                    "prune plan: {} does not fit tensor {}",
                    g.kind.name(),
                    m.tensor
                )));
            }
            let map = prune::gather_map(m, g.n, len, &lp.kept);
            let e = edits.entry(m.tensor.clone()).or_default();
            match m.axis {
                Axis::Rows => e.rows = Some(map),
                Axis::Cols => e.cols = Some(map),
            }
        }
    }
    let shape = prune::Shape::of(src.metadata()).map_err(Error::Invalid)?;
    let key = |s: &str| format!("{}.{s}", shape.arch);
    let mut md = Vec::new();
    for k in &plan.kinds {
        match k.kind {
            GroupKind::Mlp => md.push((key("feed_forward_length"), Value::U32(k.to as u32))),
            GroupKind::Heads => {
                md.push((key("attention.head_count"), Value::U32(k.to as u32)));
                // llama.cpp derives the head size from n_embd / n_head when these are absent
                md.push((
                    key("attention.key_length"),
                    Value::U32(shape.head_dim as u32),
                ));
                md.push((
                    key("attention.value_length"),
                    Value::U32(shape.head_dim_v as u32),
                ));
            }
            GroupKind::VHeads => {
                let dv = shape.linear.map(|l| l.2).unwrap_or(0);
                md.push((key("ssm.time_step_rank"), Value::U32(k.to as u32)));
                md.push((key("ssm.inner_size"), Value::U32((k.to * dv) as u32)));
            }
        }
    }
    if !removed.is_empty() {
        let n = shape.n_layer as usize;
        md.push((key("block_count"), Value::U32((n - removed.len()) as u32)));
        // per-layer arrays lose the removed layers' entries
        for (k, v) in src.metadata() {
            if let (true, Value::Array(a)) = (k.starts_with(&format!("{}.", shape.arch)), v)
                && a.len() == n
            {
                let kept: Vec<usize> = (0..n).filter(|i| !removed.contains(&(*i as u32))).collect();
                md.push((k.clone(), Value::Array(a.select(&kept))));
            }
        }
    }
    md.push((RECIPE_KEY.into(), Value::String(plan.recipe.clone())));
    Ok((edits, md))
}

fn bad_plan(src: &dyn ModelSource, why: &str) -> Error {
    Error::Invalid(format!(
        "prune plan for {}: {why} (edited or damaged?)",
        src.describe()
    ))
}

/// Which unstructured target a tensor belongs to: attention (and linear attention) or MLP
/// matrices; `None` for embeddings, the output, norms, routers, convolutions and vectors.
pub fn unstructured_target(name: &str, dims: &[u64]) -> Option<GroupKind> {
    if dims.len() < 2 || !name.starts_with("blk.") || !name.ends_with(".weight") {
        return None;
    }
    let part = name.split('.').nth(2).unwrap_or("");
    if part.starts_with("ffn_") && !part.starts_with("ffn_gate_inp") && part != "ffn_norm" {
        return Some(GroupKind::Mlp);
    }
    let attention = [
        "attn_q",
        "attn_k",
        "attn_v",
        "attn_output",
        "attn_qkv",
        "attn_gate",
        "ssm_out",
        "ssm_alpha",
        "ssm_beta",
        "ssm_ba",
        "ssm_in",
    ];
    attention.contains(&part).then_some(GroupKind::Heads)
}

/// Unstructured edits: each attention matrix at `attention` sparsity, each MLP matrix at
/// `mlp` (per row).
pub fn unstructured_edits(src: &dyn ModelSource, attention: f64, mlp: f64) -> Result<PruneEdits> {
    for (k, v) in [("attention", attention), ("mlp", mlp)] {
        if !(0.0..1.0).contains(&v) {
            return Err(Error::Invalid(format!(
                "--{k}-sparsity {v}: a sparsity is within [0, 1)"
            )));
        }
    }
    let mut edits = HashMap::new();
    for t in src.tensors() {
        let sp = match unstructured_target(&t.name, &t.dims) {
            Some(GroupKind::Mlp) => mlp,
            Some(_) => attention,
            None => continue,
        };
        if sp > 0.0 {
            edits.insert(
                t.name.clone(),
                Edit {
                    sparsity: Some(sp),
                    ..Edit::default()
                },
            );
        }
    }
    let md = vec![(
        RECIPE_KEY.to_string(),
        Value::String(format!(
            "gpuq unstructured prune: attention {attention}, mlp {mlp} (per row)"
        )),
    )];
    Ok((edits, md))
}

/// Per tensor of an unstructured prune: (name, fraction of weights zero, energy share removed),
/// measured by reading the pruned tensors (a dry run's damage report).
pub fn unstructured_damage(
    src: &dyn ModelSource,
    pruned: &PrunedSource,
    engine: &Engine,
    max_memory: u64,
    progress: &dyn Progress,
) -> Result<Vec<(String, f64, f64)>> {
    let mut out = Vec::new();
    let total: u64 = (0..src.tensors().len())
        .filter(|&i| pruned.is_edited(i))
        .map(|i| src.tensor_len(i))
        .sum();
    progress.start(total, 0);
    for i in 0..src.tensors().len() {
        if !pruned.is_edited(i) {
            continue;
        }
        let t = &src.tensors()[i];
        progress.step(i, &t.name, "measuring");
        let (before, _) = tensor_energies(src, engine, i, max_memory, &crate::pipeline::Quiet)?;
        let row_len = t.row_len() as usize;
        let pt = &pruned.tensors()[i];
        let decoder = RowDecoder::of(pruned, i, pt)?;
        let rows_per_tile = (max_memory / (row_len as u64 * 8).max(1)).clamp(1, 1 << 16);
        let mut tiles = RowTiles::new(pruned, i, rows_per_tile)?.cancel_with(progress);
        let (mut zeros, mut after) = (0u64, 0f64);
        let mut x = Vec::new();
        while let Some(tile) = tiles.next_tile()? {
            x.resize(tile.rows as usize * row_len, 0.0);
            decoder.decode(engine, tile.bytes, &mut x)?;
            zeros += x.iter().filter(|v| **v == 0.0).count() as u64;
            after += x.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>();
            progress.advance(src.tensor_len(i) / t.n_rows().max(1) * tile.rows);
        }
        let e: f64 = before.iter().sum();
        out.push((
            t.name.clone(),
            zeros as f64 / t.n_elements().max(1) as f64,
            if e > 0.0 { 1.0 - after / e } else { 0.0 },
        ));
    }
    progress.finish();
    Ok(out)
}

/// The groups' layout of a source (`policy::prune::layout`), refusing what cannot be pruned.
pub fn layout(src: &dyn ModelSource) -> Result<Vec<LayerGroups>> {
    prune::layout(src.metadata(), src.tensors())
        .map_err(|e| Error::Invalid(format!("{}: {e}", src.describe())))
}

/// Members of a kind are all present (used by tests and the CLI's description).
pub fn describe_layout(l: &[LayerGroups]) -> Vec<String> {
    let mut by: BTreeMap<GroupKind, (u32, u64, Sets, Vec<Member>)> = BTreeMap::new();
    for g in l {
        by.entry(g.kind)
            .and_modify(|e| e.0 += 1)
            .or_insert((1, g.n, g.sets, g.members.clone()));
    }
    by.into_iter()
        .map(|(k, (layers, n, sets, ms))| {
            format!(
                "{}: {n} per layer in {} layer(s), {} set(s); cut together: {}",
                k.name(),
                layers,
                sets.count(),
                ms.iter()
                    .map(|m| m.tensor.split('.').skip(2).collect::<Vec<_>>().join("."))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect()
}
