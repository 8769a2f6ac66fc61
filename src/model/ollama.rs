//! Ollama's published GGUFs of `qwen35`, `qwen35moe` and `qwen3next`, rewritten the way
//! llama.cpp loads them. Ollama patches these files in memory at load time
//! (`llama/compat/llama-ollama-compat.cpp` in ollama/ollama: `apply_qwen35_text_fixes`,
//! `apply_qwen35_mtp_fixes`, `handle_qwen3next`); this module makes the same changes as a plan
//! (renames, metadata edits, dropped tensors, stacked MTP experts, shifted MTP norms) and a
//! source wrapper that presents the fixed model to quantize, dequantize and `gpuq fix`.
//!
//! What llama.cpp's loader wants (src/models/qwen35.cpp, qwen35moe.cpp, qwen3next.cpp):
//! `blk.N.ssm_dt.bias`, a single `attention.head_count_kv`, a 4-entry
//! `rope.dimension_sections`, the MTP block as `blk.{n_layer}.*` / `blk.{n_layer}.nextn.*`
//! counted in `block_count` with `nextn_predict_layers`, and no tensor it does not create (an
//! embedded vision tower makes it fail on the tensor count).

use crate::error::{Error, Result};
use crate::formats::gguf::{Array, Value};
use crate::ggml_type::GgmlType;
use crate::model::{InputTensor, ModelSource, TernarySource};
use std::collections::{BTreeMap, HashMap};

/// One change to the file, for the line the CLI prints.
#[derive(Clone, Debug, PartialEq)]
pub enum Fix {
    /// `blk.N.ssm_dt` -> `blk.N.ssm_dt.bias`
    SsmDtBias { count: usize },
    /// A per-layer `attention.head_count_kv` array collapsed to its largest entry.
    HeadCountKv {
        key: String,
        from: Vec<u64>,
        to: u32,
    },
    /// `rope.dimension_sections` of 3 entries padded with a 0.
    RopeSections { key: String, from: Vec<i64> },
    /// The MTP block `mtp.*` moved to `blk.{first}.*` / `blk.{first}.nextn.*`.
    Mtp {
        first_block: u32,
        layers: u32,
        renamed: usize,
        merged: usize,
        shifted: usize,
    },
    /// Vision tower tensors (and untranslated `mtp.*` tensors) and vision keys left out.
    Dropped {
        tensors: Vec<String>,
        keys: Vec<String>,
    },
}

impl std::fmt::Display for Fix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fix::SsmDtBias { count } => write!(
                f,
                "{count} tensor(s) blk.N.ssm_dt renamed blk.N.ssm_dt.bias (llama.cpp's name)"
            ),
            Fix::HeadCountKv { key, from, to } => {
                write!(
                    f,
                    "{key}: per-layer array {from:?} -> {to} (llama.cpp reads one value)"
                )
            }
            Fix::RopeSections { key, from } => {
                let mut to = from.clone();
                to.push(0);
                write!(
                    f,
                    "{key}: {from:?} -> {to:?} (llama.cpp requires 4 entries)"
                )
            }
            Fix::Mtp {
                first_block,
                layers,
                renamed,
                merged,
                shifted,
            } => write!(
                f,
                "MTP block mtp.* -> blk.{first_block}.* and blk.{first_block}.nextn.* ({renamed} renamed, \
                 {merged} expert stack(s) merged, {shifted} norm(s) +1 as F32); block_count {first_block} -> {}, \
                 nextn_predict_layers {layers}",
                first_block + layers
            ),
            Fix::Dropped { tensors, keys } => {
                write!(
                    f,
                    "left out the vision tower / untranslated tensors llama.cpp's text loader does not take: {} tensor(s)",
                    tensors.len()
                )?;
                if let Some(t) = tensors.first() {
                    write!(f, " ({t}")?;
                    if tensors.len() > 1 {
                        write!(f, ", …")?;
                    }
                    write!(f, ")")?;
                }
                write!(f, ", {} key(s)", keys.len())?;
                if !keys.is_empty() {
                    write!(f, " ({})", keys.join(", "))?;
                }
                Ok(())
            }
        }
    }
}

/// Where a tensor of the fixed model comes from.
#[derive(Clone, Debug)]
enum Origin {
    /// Tensor `i` of the input, bytes as they are (perhaps renamed).
    Same(usize),
    /// 2-D tensors of the input stacked along ne2 (one per expert), bytes as they are.
    Stack(Vec<usize>),
    /// Tensor `i` (F32/F16/BF16) decoded, plus 1, as F32 (Ollama's MTP norms).
    PlusOne(usize),
}

/// The fixed model: fixes, metadata and tensor list, and where each tensor comes from.
#[derive(Clone, Debug)]
pub struct Plan {
    pub fixes: Vec<Fix>,
    pub metadata: Vec<(String, Value)>,
    pub tensors: Vec<InputTensor>,
    origin: Vec<Origin>,
}

fn get<'a>(md: &'a [(String, Value)], key: &str) -> Option<&'a Value> {
    md.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// ggml's `gguf_set_val_*`: a key set again moves to the end.
fn set(md: &mut Vec<(String, Value)>, key: &str, v: Value) {
    md.retain(|(k, _)| k != key);
    md.push((key.to_string(), v));
}

/// `PREFIX{index}.{suffix}` -> (index, suffix), as the patcher's `parse_tensor_index`.
fn index_after<'a>(name: &'a str, prefix: &str) -> Option<(u32, &'a str)> {
    let rest = name.strip_prefix(prefix)?;
    let (num, suffix) = rest.split_once('.')?;
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((num.parse().ok()?, suffix))
}

/// The patcher's `qwen35_should_shift_norm_after_rename`.
fn shifted_after_rename(name: &str) -> bool {
    !name.ends_with(".ssm_norm.weight")
        && (name.ends_with("_norm.weight")
            || name.ends_with(".nextn.enorm.weight")
            || name.ends_with(".nextn.hnorm.weight"))
}

/// Works out the fixes an Ollama-published `qwen35` / `qwen35moe` / `qwen3next` GGUF needs;
/// `None` when the file needs none (any other architecture, or a llama.cpp-converted file).
/// `what` names the file in errors.
pub fn plan(
    what: &str,
    metadata: &[(String, Value)],
    tensors: &[InputTensor],
) -> Result<Option<Plan>> {
    let arch = get(metadata, "general.architecture")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    let qwen35 = arch == "qwen35" || arch == "qwen35moe";
    if !qwen35 && arch != "qwen3next" {
        return Ok(None);
    }
    let k = |s: &str| format!("{arch}.{s}");
    let mut md = metadata.to_vec();
    let mut fixes = Vec::new();

    // 1. attention.head_count_kv as a per-layer array: its largest entry (qwen35: 2 when all 0)
    let kv_key = k("attention.head_count_kv");
    if let Some(a) = get(metadata, &kv_key).and_then(|v| v.as_array()) {
        let from: Vec<u64> = (0..a.len())
            .filter_map(|i| a.get(i).and_then(|v| v.as_u64()))
            .collect();
        let max = from.iter().copied().max().unwrap_or(0);
        let to = if max == 0 && qwen35 { 2 } else { max };
        if to > 0 {
            set(&mut md, &kv_key, Value::U32(to as u32));
            fixes.push(Fix::HeadCountKv {
                key: kv_key,
                from,
                to: to as u32,
            });
        }
    }

    // 2. rope.dimension_sections of 3 entries: a 4th, 0
    let rope_key = k("rope.dimension_sections");
    if qwen35
        && let Some(a) = get(metadata, &rope_key).and_then(|v| v.as_array())
        && a.len() == 3
    {
        let from: Vec<i64> = (0..3)
            .map(|i| a.get(i).and_then(|v| v.as_i64()).unwrap_or(0))
            .collect();
        let mut to: Vec<i32> = from.iter().map(|&v| v as i32).collect();
        to.push(0);
        set(&mut md, &rope_key, Value::Array(Array::I32(to)));
        fixes.push(Fix::RopeSections {
            key: rope_key,
            from,
        });
    }

    // tensors, renamed in place
    let mut out: Vec<Option<(InputTensor, Origin)>> = tensors
        .iter()
        .enumerate()
        .map(|(i, t)| Some((t.clone(), Origin::Same(i))))
        .collect();

    // 3. blk.N.ssm_dt -> blk.N.ssm_dt.bias
    let mut n_dt = 0;
    for (t, _) in out.iter_mut().flatten() {
        if t.name.starts_with("blk.") && t.name.ends_with(".ssm_dt") {
            t.name.push_str(".bias");
            n_dt += 1;
        }
    }
    if n_dt > 0 {
        fixes.push(Fix::SsmDtBias { count: n_dt });
    }

    // 4. the MTP block (qwen35 / qwen35moe)
    let has_mtp = tensors.iter().any(|t| t.name.starts_with("mtp."));
    let native_mtp = tensors
        .iter()
        .any(|t| t.name.starts_with("blk.") && t.name.contains(".nextn."));
    if qwen35 && has_mtp && !native_mtp {
        mtp(what, &arch, tensors, &mut out, &mut md, &mut fixes)?;
    }

    // 5. the vision tower, untranslated MTP tensors and vision keys
    let mut dropped_tensors = Vec::new();
    for slot in out.iter_mut() {
        if let Some((t, _)) = slot
            && qwen35
            && ["v.", "mm.", "mtp."].iter().any(|p| t.name.starts_with(p))
        {
            dropped_tensors.push(t.name.clone());
            *slot = None;
        }
    }
    let mut dropped_keys = Vec::new();
    if qwen35 {
        let vision_key = |key: &str| {
            key.starts_with(&k("vision."))
                || key == k("image_token_id")
                || key == k("vision_start_token_id")
                || key == k("vision_end_token_id")
        };
        dropped_keys = md
            .iter()
            .filter(|(key, _)| vision_key(key))
            .map(|(key, _)| key.clone())
            .collect();
        md.retain(|(key, _)| !vision_key(key));
    }
    if !dropped_tensors.is_empty() || !dropped_keys.is_empty() {
        fixes.push(Fix::Dropped {
            tensors: dropped_tensors,
            keys: dropped_keys,
        });
    }

    if fixes.is_empty() {
        return Ok(None);
    }
    let (tensors, origin) = out.into_iter().flatten().unzip();
    Ok(Some(Plan {
        fixes,
        metadata: md,
        tensors,
        origin,
    }))
}

/// The patcher's `apply_qwen35_mtp_fixes`: `mtp.layers.i.X` -> `blk.{base+i}.X`, the shared
/// `mtp.fc` / `mtp.pre_fc_norm_*` / `mtp.norm` / … -> `blk.{base}.nextn.*`, per-expert
/// `mtp.layers.i.mlp.experts.E.{gate,up,down}_proj.weight` stacked into `ffn_*_exps`, and norms
/// whose new name is a norm llama.cpp stores with +1 shifted (as F32).
fn mtp(
    what: &str,
    arch: &str,
    tensors: &[InputTensor],
    out: &mut [Option<(InputTensor, Origin)>],
    md: &mut Vec<(String, Value)>,
    fixes: &mut Vec<Fix>,
) -> Result<()> {
    let mut nextn = 0u32;
    for t in tensors {
        if let Some((i, suffix)) = index_after(&t.name, "mtp.layers.")
            && !suffix.is_empty()
        {
            nextn = nextn.max(i + 1);
        }
    }
    let nextn = nextn.max(1);
    let base = tensors
        .iter()
        .filter_map(|t| index_after(&t.name, "blk.").map(|(i, _)| i + 1))
        .max()
        .or_else(|| {
            get(md, &format!("{arch}.block_count"))
                .and_then(|v| v.as_u64())
                .map(|v| v as u32)
        })
        .unwrap_or(0);
    if base == 0 {
        return Err(Error::Invalid(format!(
            "{what}: cannot tell the text model's block count to place the MTP block (no blk.N. tensors)"
        )));
    }
    let existing: std::collections::HashSet<String> =
        out.iter().flatten().map(|(t, _)| t.name.clone()).collect();
    let by_name: HashMap<&str, usize> = tensors
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();
    let (mut renamed, mut merged, mut shifted) = (0, 0, 0);

    // MoE: one 2-D tensor per expert -> one 3-D ffn_*_exps
    if arch == "qwen35moe" {
        for layer in 0..nextn {
            for (src, dst) in [
                ("gate_proj.weight", "ffn_gate_exps.weight"),
                ("up_proj.weight", "ffn_up_exps.weight"),
                ("down_proj.weight", "ffn_down_exps.weight"),
            ] {
                let prefix = format!("mtp.layers.{layer}.mlp.experts.");
                let mut experts: BTreeMap<u32, usize> = BTreeMap::new();
                for (i, t) in tensors.iter().enumerate() {
                    if let Some((e, suffix)) = index_after(&t.name, &prefix)
                        && suffix == src
                    {
                        experts.insert(e, i);
                    }
                }
                if experts.is_empty() {
                    continue;
                }
                let ids: Vec<usize> = experts.values().copied().collect();
                if experts.keys().copied().ne(0..experts.len() as u32) {
                    return Err(Error::Invalid(format!(
                        "{what}: MTP experts {prefix}*.{src} are not numbered 0..{} without gaps",
                        experts.len()
                    )));
                }
                let first = &tensors[ids[0]];
                let flat = |t: &InputTensor| t.dims.iter().skip(2).all(|&d| d == 1);
                for &i in &ids {
                    let t = &tensors[i];
                    if t.ty != first.ty
                        || t.dims.first() != first.dims.first()
                        || t.dims.get(1) != first.dims.get(1)
                        || !flat(t)
                    {
                        return Err(Error::Invalid(format!(
                            "{what}: tensor {}: {} {:?} does not match {}: {} {:?}; cannot stack the MTP experts",
                            t.name, t.ty, t.dims, first.name, first.ty, first.dims
                        )));
                    }
                }
                let dims = vec![
                    first.dims.first().copied().unwrap_or(1),
                    first.dims.get(1).copied().unwrap_or(1),
                    ids.len() as u64,
                ];
                let name = format!("blk.{}.{dst}", base + layer);
                out[ids[0]] = Some((
                    InputTensor {
                        name,
                        dims,
                        ty: first.ty,
                    },
                    Origin::Stack(ids.clone()),
                ));
                for &i in &ids[1..] {
                    out[i] = None;
                }
                merged += 1;
            }
        }
    }

    let mut rename = |out: &mut [Option<(InputTensor, Origin)>], i: usize, to: String| {
        if existing.contains(&to) {
            return;
        }
        if let Some((t, origin)) = out[i].as_mut() {
            if shifted_after_rename(&to) {
                t.ty = GgmlType::F32;
                *origin = Origin::PlusOne(i);
                shifted += 1;
            }
            t.name = to;
            renamed += 1;
        }
    };
    for (i, t) in tensors.iter().enumerate() {
        if let Some((layer, suffix)) = index_after(&t.name, "mtp.layers.")
            && !suffix.is_empty()
            && layer < nextn
            && !(arch == "qwen35moe" && suffix.starts_with("mlp.experts."))
        {
            rename(out, i, format!("blk.{}.{suffix}", base + layer));
        }
    }
    if nextn == 1 {
        for (from, to) in [
            ("mtp.fc.weight", "nextn.eh_proj.weight"),
            ("mtp.pre_fc_norm_embedding.weight", "nextn.enorm.weight"),
            ("mtp.pre_fc_norm_hidden.weight", "nextn.hnorm.weight"),
            ("mtp.embed_tokens.weight", "nextn.embed_tokens.weight"),
            (
                "mtp.shared_head.head.weight",
                "nextn.shared_head_head.weight",
            ),
            (
                "mtp.shared_head.norm.weight",
                "nextn.shared_head_norm.weight",
            ),
            ("mtp.norm.weight", "nextn.shared_head_norm.weight"),
        ] {
            if let Some(&i) = by_name.get(from) {
                let to = format!("blk.{base}.{to}");
                // a second source of the same name (mtp.norm after mtp.shared_head.norm) stays
                // untranslated and is left out, as the patcher's rename refuses it
                if out
                    .iter()
                    .flatten()
                    .any(|(t, _)| t.name == to && !t.name.starts_with("mtp."))
                {
                    continue;
                }
                rename(out, i, to);
            }
        }
    }
    set(
        md,
        &format!("{arch}.nextn_predict_layers"),
        Value::U32(nextn),
    );
    set(md, &format!("{arch}.block_count"), Value::U32(base + nextn));
    fixes.push(Fix::Mtp {
        first_block: base,
        layers: nextn,
        renamed,
        merged,
        shifted,
    });
    Ok(())
}

/// A model source with the fixes of a [`Plan`] applied.
pub struct Fixed {
    inner: Box<dyn ModelSource>,
    plan: Plan,
}

impl Fixed {
    pub fn fixes(&self) -> &[Fix] {
        &self.plan.fixes
    }

    fn same(&self, index: usize) -> Option<usize> {
        match self.plan.origin.get(index) {
            Some(Origin::Same(i)) => Some(*i),
            _ => None,
        }
    }
}

/// Wraps `src` with the fixes it needs (each reported to `say` as one line), or returns it as
/// it is when it needs none or `keep_names` is set (then `say` hears what was not fixed).
pub fn apply(
    src: Box<dyn ModelSource>,
    keep_names: bool,
    say: &mut dyn FnMut(String),
) -> Result<Box<dyn ModelSource>> {
    let Some(plan) = plan(&src.describe(), src.metadata(), src.tensors())? else {
        return Ok(src);
    };
    if keep_names {
        say(format!(
            "{}: --keep-names: not applying {} Ollama fix(es); llama.cpp may refuse the output",
            src.describe(),
            plan.fixes.len()
        ));
        return Ok(src);
    }
    for f in &plan.fixes {
        say(format!("{}: ollama fix: {f}", src.describe()));
    }
    Ok(Box::new(Fixed { inner: src, plan }))
}

/// Decodes F32 / F16 / BF16 bytes.
fn floats(ty: GgmlType, bytes: &[u8]) -> Option<Vec<f32>> {
    use crate::codec::float::{bf16_bits_to_f32, f16_bits_to_f32};
    Some(match ty {
        GgmlType::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        GgmlType::F16 => bytes
            .chunks_exact(2)
            .map(|c| f16_bits_to_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        GgmlType::BF16 => bytes
            .chunks_exact(2)
            .map(|c| bf16_bits_to_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        _ => return None,
    })
}

impl ModelSource for Fixed {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn metadata(&self) -> &[(String, Value)] {
        &self.plan.metadata
    }
    fn tensors(&self) -> &[InputTensor] {
        &self.plan.tensors
    }
    fn tensor_len(&self, index: usize) -> u64 {
        match &self.plan.origin[index] {
            Origin::Same(i) => self.inner.tensor_len(*i),
            Origin::Stack(ids) => ids.iter().map(|&i| self.inner.tensor_len(i)).sum(),
            Origin::PlusOne(_) => {
                let t = &self.plan.tensors[index];
                t.ty.tensor_bytes(&t.dims).unwrap_or(0)
            }
        }
    }
    fn read_rows<'a>(
        &'a self,
        index: usize,
        r0: u64,
        n: u64,
        scratch: &'a mut Vec<u8>,
    ) -> Result<&'a [u8]> {
        let t = &self.plan.tensors[index];
        match &self.plan.origin[index] {
            Origin::Same(i) => self.inner.read_rows(*i, r0, n, scratch),
            Origin::Stack(ids) => {
                // rows of the stack: expert r / ne1, row r % ne1 of it
                let per = t.dims.get(1).copied().unwrap_or(1).max(1);
                let (e0, l0) = ((r0 / per) as usize, r0 % per);
                if l0 + n <= per
                    && let Some(&i) = ids.get(e0)
                {
                    return self.inner.read_rows(i, l0, n, scratch);
                }
                let mut buf = Vec::new();
                let mut tmp = Vec::new();
                let mut r = r0;
                while r < r0 + n {
                    let (e, l) = ((r / per) as usize, r % per);
                    let take = (per - l).min(r0 + n - r);
                    let &i = ids.get(e).ok_or_else(|| {
                        Error::Invalid(format!(
                            "{}: tensor {}: row {r} is outside the {} stacked experts",
                            self.describe(),
                            t.name,
                            ids.len()
                        ))
                    })?;
                    buf.extend_from_slice(self.inner.read_rows(i, l, take, &mut tmp)?);
                    r += take;
                }
                *scratch = buf;
                Ok(scratch.as_slice())
            }
            Origin::PlusOne(i) => {
                let src_ty = self.inner.tensors()[*i].ty;
                let mut tmp = Vec::new();
                let bytes = self.inner.read_rows(*i, r0, n, &mut tmp)?;
                let v = floats(src_ty, bytes).ok_or_else(|| {
                    Error::Invalid(format!(
                        "{}: tensor {}: an MTP norm of type {src_ty}; only F32, F16 or BF16 can take llama.cpp's +1",
                        self.describe(),
                        self.inner.tensors()[*i].name
                    ))
                })?;
                *scratch = v.iter().flat_map(|x| (x + 1.0f32).to_le_bytes()).collect();
                Ok(scratch.as_slice())
            }
        }
    }
    fn unquantized_type(&self, index: usize) -> Option<GgmlType> {
        self.same(index)
            .and_then(|i| self.inner.unquantized_type(i))
    }
    fn ternary(&self, index: usize) -> Option<TernarySource> {
        self.same(index).and_then(|i| self.inner.ternary(i))
    }
    fn i2s_scale(&self, index: usize) -> Result<f32> {
        match self.same(index) {
            Some(i) => self.inner.i2s_scale(i),
            None => Err(Error::Invalid(format!(
                "{}: tensor {}: no I2_S scale in a stacked or shifted tensor",
                self.describe(),
                self.plan.tensors[index].name
            ))),
        }
    }
    fn prefetch(&self, index: usize, offset: usize, len: usize) {
        if let Some(i) = self.same(index) {
            self.inner.prefetch(i, offset, len)
        }
    }
    fn release(&self, index: usize, offset: usize, len: usize) {
        if let Some(i) = self.same(index) {
            self.inner.release(i, offset, len)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, dims: &[u64], ty: GgmlType) -> InputTensor {
        InputTensor {
            name: name.into(),
            dims: dims.to_vec(),
            ty,
        }
    }

    #[test]
    fn ollama_qwen35moe_plan() {
        let md = vec![
            (
                "general.architecture".to_string(),
                Value::String("qwen35moe".into()),
            ),
            ("qwen35moe.block_count".into(), Value::U32(2)),
            (
                "qwen35moe.attention.head_count_kv".into(),
                Value::Array(Array::U32(vec![0, 2])),
            ),
            (
                "qwen35moe.rope.dimension_sections".into(),
                Value::Array(Array::I32(vec![11, 11, 10])),
            ),
            ("qwen35moe.vision.block_count".into(), Value::U32(1)),
        ];
        let f = GgmlType::F16;
        let ts = vec![
            t("blk.0.ssm_dt", &[4], GgmlType::F32),
            t("blk.1.attn_q.weight", &[64, 64], f),
            t("mtp.fc.weight", &[128, 64], f),
            t("mtp.norm.weight", &[64], GgmlType::F32),
            t("mtp.layers.0.attn_norm.weight", &[64], GgmlType::F32),
            t("mtp.layers.0.mlp.experts.1.up_proj.weight", &[64, 32], f),
            t("mtp.layers.0.mlp.experts.0.up_proj.weight", &[64, 32], f),
            t("mtp.layers.0.ssm_norm.weight", &[64], GgmlType::F32),
            t("v.blk.0.attn_q.weight", &[16, 16], f),
        ];
        let p = plan("x.gguf", &md, &ts).unwrap().unwrap();
        let names: Vec<&str> = p.tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "blk.0.ssm_dt.bias",
                "blk.1.attn_q.weight",
                "blk.2.nextn.eh_proj.weight",
                "blk.2.nextn.shared_head_norm.weight",
                "blk.2.attn_norm.weight",
                "blk.2.ffn_up_exps.weight",
                "blk.2.ssm_norm.weight",
            ]
        );
        assert_eq!(p.tensors[5].dims, [64, 32, 2]);
        assert!(matches!(&p.origin[5], Origin::Stack(ids) if ids == &[6, 5]));
        assert!(matches!(p.origin[4], Origin::PlusOne(4)));
        assert!(matches!(p.origin[3], Origin::PlusOne(3)));
        assert!(
            matches!(p.origin[6], Origin::Same(7)),
            "ssm_norm is not shifted"
        );
        let get = |k: &str| get(&p.metadata, k).cloned();
        assert_eq!(get("qwen35moe.block_count"), Some(Value::U32(3)));
        assert_eq!(get("qwen35moe.nextn_predict_layers"), Some(Value::U32(1)));
        assert_eq!(
            get("qwen35moe.attention.head_count_kv"),
            Some(Value::U32(2))
        );
        assert_eq!(
            get("qwen35moe.rope.dimension_sections"),
            Some(Value::Array(Array::I32(vec![11, 11, 10, 0])))
        );
        assert_eq!(get("qwen35moe.vision.block_count"), None);
        assert_eq!(p.fixes.len(), 5, "{:?}", p.fixes);

        // a llama.cpp-converted file needs nothing; nor does another architecture
        let native = vec![t("blk.0.ssm_dt.bias", &[4], GgmlType::F32)];
        assert!(plan("x", &md[..2], &native).unwrap().is_none());
        let llama = vec![(
            "general.architecture".to_string(),
            Value::String("llama".into()),
        )];
        assert!(plan("x", &llama, &ts).unwrap().is_none());
    }

    #[test]
    fn expert_gaps_are_refused() {
        let md = vec![(
            "general.architecture".to_string(),
            Value::String("qwen35moe".into()),
        )];
        let ts = vec![
            t("blk.0.attn_q.weight", &[64, 64], GgmlType::F16),
            t(
                "mtp.layers.0.mlp.experts.0.up_proj.weight",
                &[64, 32],
                GgmlType::F16,
            ),
            t(
                "mtp.layers.0.mlp.experts.2.up_proj.weight",
                &[64, 32],
                GgmlType::F16,
            ),
        ];
        let e = plan("m.gguf", &md, &ts).unwrap_err().to_string();
        assert!(e.contains("m.gguf") && e.contains("gaps"), "{e}");
        // experts of different shapes or types cannot be stacked
        let ts = vec![
            t("blk.0.attn_q.weight", &[64, 64], GgmlType::F16),
            t(
                "mtp.layers.0.mlp.experts.0.up_proj.weight",
                &[64, 32],
                GgmlType::F16,
            ),
            t(
                "mtp.layers.0.mlp.experts.1.up_proj.weight",
                &[64, 16],
                GgmlType::F16,
            ),
        ];
        let e = plan("m.gguf", &md, &ts).unwrap_err().to_string();
        assert!(
            e.contains("m.gguf") && e.contains("mtp.layers.0.mlp.experts.1.up_proj.weight"),
            "{e}"
        );
        // no blk.N. tensor to place the MTP block after
        let ts = vec![t("mtp.fc.weight", &[128, 64], GgmlType::F16)];
        let e = plan("m.gguf", &md, &ts).unwrap_err().to_string();
        assert!(e.contains("m.gguf") && e.contains("block count"), "{e}");
    }
}
