//! A pruned Hugging Face folder: the input's shards with the same names and tensor order, the
//! cut tensors in the checkpoint's own layout (rows and columns mapped back through the
//! converter's reorderings: a kept GGUF row is its checkpoint row), a regenerated
//! `model.safetensors.index.json`, `config.json` with the new widths and the other files copied.
//! Written into `OUT.tmp/` and renamed when complete.

use super::source::lowest;
use super::{Edit, PrunePlan};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::formats::safetensors::{Dtype, SafetensorsModel, StTensor};
use crate::ggml_type::GgmlType;
use crate::measure::participation::Participation;
use crate::model::ModelSource;
use crate::model::hf::HfSource;
use crate::pipeline::Progress;
use crate::policy::prune::GroupKind;
use serde_json::{Map, Value as Json, json};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

/// A cut in checkpoint coordinates (first dimension; elements of a row; a 1-D tensor's
/// elements are `cols`).
#[derive(Clone, Debug, Default)]
struct StEdit {
    rows: Option<Vec<u64>>,
    cols: Option<Vec<u64>>,
    sparsity: Option<f64>,
}

/// The checkpoint-side edits of GGUF-side `edits`: kept rows and columns mapped back through
/// each tensor's origin, in the checkpoint's ascending order (the order the converter's
/// reorderings expect of a narrower model).
fn checkpoint_edits(
    src: &HfSource,
    edits: &HashMap<String, Edit>,
) -> Result<HashMap<String, StEdit>> {
    let mut out: HashMap<String, StEdit> = HashMap::new();
    for (i, t) in src.tensors().iter().enumerate() {
        let Some(e) = edits
            .get(&t.name)
            .filter(|e| e.rows.is_some() || e.cols.is_some() || e.sparsity.is_some())
        else {
            continue;
        };
        let o = src.origin(i).ok_or_else(|| {
            Error::Invalid(format!(
                "{}: tensor {} is not one checkpoint tensor (stacked or computed): it cannot be \
                 cut in a safetensors output; write a GGUF (--type)",
                src.describe(),
                t.name
            ))
        })?;
        let back = |kept: &Option<Vec<u64>>, map: &Option<Vec<u64>>| -> Option<Vec<u64>> {
            kept.as_ref().map(|k| {
                let mut v: Vec<u64> = k
                    .iter()
                    .map(|&r| map.as_ref().map_or(r, |m| m[r as usize]))
                    .collect();
                v.sort_unstable();
                v
            })
        };
        if out.contains_key(&o.tensor) {
            return Err(Error::Invalid(format!(
                "{}: checkpoint tensor {} feeds two pruned tensors",
                src.describe(),
                o.tensor
            )));
        }
        out.insert(
            o.tensor.clone(),
            StEdit {
                rows: back(&e.rows, &o.rows),
                cols: back(&e.cols, &o.cols),
                sparsity: e.sparsity,
            },
        );
    }
    Ok(out)
}

fn ggml_of(d: Dtype) -> Option<GgmlType> {
    match d {
        Dtype::F32 => Some(GgmlType::F32),
        Dtype::F16 => Some(GgmlType::F16),
        Dtype::BF16 => Some(GgmlType::BF16),
        _ => None,
    }
}

/// A checkpoint tensor's fate when `removed` layers go: `None` unchanged, `Some(None)` left
/// out, `Some(Some(name))` renumbered (`….layers.N.…` names, as Hugging Face models write
/// them).
fn layer_rename(name: &str, removed: &[u32]) -> Option<Option<String>> {
    if removed.is_empty() {
        return None;
    }
    let at = name.find("layers.")?;
    if at > 0 && !name[..at].ends_with('.') {
        return None;
    }
    let rest = &name[at + "layers.".len()..];
    let (num, tail) = rest.split_once('.')?;
    let l: u32 = num.parse().ok()?;
    if removed.contains(&l) {
        return Some(None);
    }
    let before = removed.iter().filter(|&&r| r < l).count() as u32;
    (before > 0).then(|| Some(format!("{}layers.{}.{tail}", &name[..at], l - before)))
}

/// The shape after a cut.
fn cut_shape(t: &StTensor, e: &StEdit) -> Vec<u64> {
    let mut shape = t.shape.clone();
    if let Some(r) = &e.rows
        && shape.len() >= 2
    {
        shape[0] = r.len() as u64;
    }
    if let Some(c) = &e.cols
        && let Some(last) = shape.last_mut()
    {
        *last = c.len() as u64;
    }
    shape
}

/// Writes tensor `t` with edit `e` (or as it is) to `w`.
#[allow(clippy::too_many_arguments)]
fn write_tensor(
    st: &SafetensorsModel,
    t: &StTensor,
    e: Option<&StEdit>,
    engine: &Engine,
    params: &Participation,
    max_memory: u64,
    w: &mut dyn Write,
    path: &Path,
) -> Result<()> {
    let data = st.tensor_data(t);
    let io = |err| Error::io(path, err);
    let Some(e) = e else {
        for chunk in data.chunks(64 << 20) {
            w.write_all(chunk).map_err(io)?;
        }
        return Ok(());
    };
    let ty = ggml_of(t.dtype).ok_or_else(|| {
        Error::Invalid(format!(
            "{}: tensor {} has dtype {}: only F32, F16 and BF16 tensors can be pruned",
            st.root.display(),
            t.name,
            t.dtype.name()
        ))
    })?;
    let es = (t.dtype.bits() / 8) as usize;
    let (n_rows, row_len) = if t.shape.len() >= 2 {
        (t.shape[0], t.shape[1..].iter().product::<u64>())
    } else {
        (1, t.shape.first().copied().unwrap_or(1))
    };
    let rows: Vec<u64> = e.rows.clone().unwrap_or_else(|| (0..n_rows).collect());
    let cols: Vec<u64> = e.cols.clone().unwrap_or_else(|| (0..row_len).collect());
    if rows.iter().any(|&r| r >= n_rows) || cols.iter().any(|&c| c >= row_len) {
        return Err(Error::Invalid(format!(
            "{}: tensor {}: a cut lies outside its shape {:?}",
            st.root.display(),
            t.name,
            t.shape
        )));
    }
    let out_len = cols.len();
    let row_bytes = row_len as usize * es;
    let per_tile = (max_memory / (row_len * 8).max(1)).clamp(1, 4096) as usize;
    for tile in rows.chunks(per_tile) {
        // the kept elements of the tile's rows, as stored
        let mut bytes = Vec::with_capacity(tile.len() * out_len * es);
        for &r in tile {
            let row = &data[r as usize * row_bytes..(r as usize + 1) * row_bytes];
            if e.cols.is_none() {
                bytes.extend_from_slice(row);
            } else {
                for &c in &cols {
                    bytes.extend_from_slice(&row[c as usize * es..(c as usize + 1) * es]);
                }
            }
        }
        if let Some(sp) = e.sparsity {
            let mut x = vec![0f32; tile.len() * out_len];
            engine.decode_into(ty, &bytes, out_len, &mut x)?;
            let zero = lowest(engine, params, &x, out_len, sp)?;
            for (b, z) in bytes.chunks_exact_mut(es).zip(zero) {
                if z {
                    b.fill(0);
                }
            }
        }
        w.write_all(&bytes).map_err(io)?;
    }
    Ok(())
}

/// `config.json` with the plan's widths (top level, and `text_config` when the text model's
/// keys live there).
pub fn pruned_config(config: &Json, plan: Option<&PrunePlan>, head_dim: u64) -> Json {
    let mut c = config.clone();
    let Some(plan) = plan else {
        return c;
    };
    fn set(c: &mut Json, key: &str, v: u64, also: Option<(&str, u64)>) {
        let target = if c.get(key).is_some() {
            c.as_object_mut()
        } else {
            c.get_mut("text_config").and_then(|t| t.as_object_mut())
        };
        if let Some(m) = target {
            m.insert(key.into(), json!(v));
            if let Some((k2, v2)) = also
                && !m.contains_key(k2)
            {
                m.insert(k2.into(), json!(v2));
            }
        }
    }
    if !plan.removed_layers.is_empty()
        && let Some(n) = c.get("num_hidden_layers").and_then(|v| v.as_u64())
    {
        let left = n - plan.removed_layers.len() as u64;
        set(&mut c, "num_hidden_layers", left, None);
    }
    for k in &plan.kinds {
        match k.kind {
            GroupKind::Mlp => set(&mut c, "intermediate_size", k.to, None),
            GroupKind::Heads => set(
                &mut c,
                "num_attention_heads",
                k.to,
                Some(("head_dim", head_dim)),
            ),
            GroupKind::VHeads => set(&mut c, "linear_num_value_heads", k.to, None),
        }
    }
    c
}

/// `v` as indented JSON at `p`.
fn write_json(p: &Path, v: &Json) -> Result<()> {
    let text = serde_json::to_string_pretty(v)
        .map_err(|e| Error::Invalid(format!("{}: {e}", p.display())))?;
    std::fs::write(p, text).map_err(|e| Error::io(p, e))
}

/// Writes the pruned checkpoint of `src` into folder `out`.
#[allow(clippy::too_many_arguments)]
pub fn write_folder(
    src: &HfSource,
    edits: &HashMap<String, Edit>,
    plan: Option<&PrunePlan>,
    engine: &Engine,
    params: &Participation,
    max_memory: u64,
    out: &Path,
    progress: &dyn Progress,
) -> Result<u64> {
    let st = src.checkpoint();
    let st_edits = checkpoint_edits(src, edits)?;
    if out.exists() {
        return Err(Error::Invalid(format!(
            "{}: exists; a pruned folder is written under a new name",
            out.display()
        )));
    }
    let mut tmp_name = out.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = out.with_file_name(tmp_name);
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    }
    std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
    let result = (|| {
        let total: u64 = st.tensors.iter().map(|t| t.size()).sum();
        progress.start(total, st.tensors.len());
        let mut weight_map = BTreeMap::new();
        let mut total_size = 0u64;
        for (k, shard) in st.shards.iter().enumerate() {
            let name = shard
                .path
                .file_name()
                .ok_or_else(|| Error::Invalid(format!("{}: no file name", shard.path.display())))?;
            let path = tmp.join(name);
            let removed = plan.map(|p| p.removed_layers.as_slice()).unwrap_or(&[]);
            // (tensor, its output name) of the shard, without the removed layers'
            let tensors: Vec<(&StTensor, String)> = st
                .tensors
                .iter()
                .filter(|t| t.shard == k)
                .filter_map(|t| match layer_rename(&t.name, removed) {
                    None => Some((t, t.name.clone())),
                    Some(None) => None,
                    Some(Some(n)) => Some((t, n)),
                })
                .collect();
            // the header: new shapes, offsets in the data order
            let mut header = Map::new();
            if !shard.metadata.is_empty() {
                let m: Map<String, Json> = shard
                    .metadata
                    .iter()
                    .map(|(a, b)| (a.clone(), json!(b)))
                    .collect();
                header.insert("__metadata__".into(), Json::Object(m));
            }
            let mut off = 0u64;
            for (t, out_name) in &tensors {
                let shape = match st_edits.get(&t.name) {
                    Some(e) => cut_shape(t, e),
                    None => t.shape.clone(),
                };
                let len = shape.iter().product::<u64>() * t.dtype.bits() / 8;
                header.insert(
                    out_name.clone(),
                    json!({"dtype": t.dtype.name(), "shape": shape, "data_offsets": [off, off + len]}),
                );
                weight_map.insert(out_name.clone(), name.to_string_lossy().into_owned());
                off += len;
            }
            total_size += off;
            let mut text = serde_json::to_string(&Json::Object(header))
                .map_err(|e| Error::Invalid(format!("safetensors header: {e}")))?;
            while text.len() % 8 != 0 {
                text.push(' ');
            }
            let file = std::fs::File::create(&path).map_err(|e| Error::io(&path, e))?;
            let mut w = std::io::BufWriter::with_capacity(8 << 20, file);
            let io = |e| Error::io(&path, e);
            w.write_all(&(text.len() as u64).to_le_bytes())
                .map_err(io)?;
            w.write_all(text.as_bytes()).map_err(io)?;
            for (i, (t, _)) in tensors.iter().enumerate() {
                if progress.cancelled() {
                    return Err(Error::Interrupted);
                }
                progress.step(i, &t.name, "writing");
                write_tensor(
                    st,
                    t,
                    st_edits.get(&t.name),
                    engine,
                    params,
                    max_memory,
                    &mut w,
                    &path,
                )?;
                progress.advance(t.size());
                // its pages are not read again
                if let Some(sh) = st.shards.get(t.shard) {
                    sh.advise(t.start, t.size(), false);
                }
            }
            w.flush().map_err(io)?;
            w.into_inner()
                .map_err(|e| Error::io(&path, e.into_error()))?
                .sync_all()
                .map_err(io)?;
        }
        if st.index.is_some() {
            let index = json!({"metadata": {"total_size": total_size}, "weight_map": weight_map});
            let p = tmp.join("model.safetensors.index.json");
            write_json(&p, &index)?;
        }
        // config.json with the new widths; the other small files as they are
        let head_dim = crate::policy::prune::Shape::of(src.metadata())
            .map(|s| s.head_dim)
            .unwrap_or(0);
        let dir = &st.root;
        let config = st.config.clone().unwrap_or(Json::Null);
        let p = tmp.join("config.json");
        write_json(&p, &pruned_config(&config, plan, head_dim))?;
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            let name = entry.file_name();
            let n = name.to_string_lossy();
            if !entry.path().is_file()
                || n.ends_with(".safetensors")
                || n == "model.safetensors.index.json"
                || n == "config.json"
            {
                continue;
            }
            let to = tmp.join(&name);
            std::fs::copy(entry.path(), &to).map_err(|e| Error::io(&to, e))?;
        }
        progress.finish();
        Ok(total_size)
    })();
    match result {
        Ok(n) => {
            std::fs::rename(&tmp, out).map_err(|e| Error::io(out, e))?;
            Ok(n)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn layers_renumber_after_a_removed_one() {
        let r = [1u32, 3];
        assert_eq!(
            super::layer_rename("model.layers.0.mlp.up_proj.weight", &r),
            None
        );
        assert_eq!(
            super::layer_rename("model.layers.1.mlp.up_proj.weight", &r),
            Some(None)
        );
        assert_eq!(
            super::layer_rename("model.layers.4.self_attn.q_proj.weight", &r),
            Some(Some("model.layers.2.self_attn.q_proj.weight".into()))
        );
        assert_eq!(super::layer_rename("model.embed_tokens.weight", &r), None);
        assert_eq!(super::layer_rename("model.sublayers.1.x", &r), None);
        assert_eq!(super::layer_rename("model.layers.2.x", &[]), None);
    }
}
