//! A pruned model as a [`ModelSource`]: the source's tensors with rows and columns cut away
//! (structural) or with the lowest-scoring weights of each row set to zero (unstructured),
//! produced tile by tile as the pipeline reads them, so pruning and quantizing are one pass.
//!
//! Rows and columns of F32 / F16 / BF16 tensors are moved as bytes (the kept weights keep their
//! bits); a quantized source tensor that is cut by columns or sparsified is decoded and offered
//! as F32 rows (a cut by rows only moves whole quantized rows).

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::formats::gguf::Value;
use crate::ggml_type::GgmlType;
use crate::measure::participation::Participation;
use crate::model::{InputTensor, ModelSource};
use crate::pipeline::tiles::RowDecoder;
use std::collections::HashMap;

/// What happens to one tensor.
#[derive(Clone, Debug, Default)]
pub struct Edit {
    /// Source rows in output order (a structural cut of the rows).
    pub rows: Option<Vec<u64>>,
    /// Source columns in output order (a structural cut of every row).
    pub cols: Option<Vec<u64>>,
    /// Unstructured: the fraction of each row's weights set to zero (lowest participation
    /// first).
    pub sparsity: Option<f64>,
    /// The tensor's name in the output (a layer removed before it renumbers the blocks).
    pub rename: Option<String>,
    /// Left out of the output (its layer is removed).
    pub drop: bool,
}

impl Edit {
    /// Whether the tensor's data changes (else its bytes are the source's).
    fn changes_data(&self) -> bool {
        self.rows.is_some() || self.cols.is_some() || self.sparsity.is_some()
    }
}

/// The pruned view of a source.
pub struct PrunedSource<'a> {
    inner: &'a dyn ModelSource,
    engine: &'a Engine,
    params: Participation,
    metadata: Vec<(String, Value)>,
    tensors: Vec<InputTensor>,
    /// Per output tensor: its data edit (`None`: the source's bytes).
    edits: Vec<Option<Edit>>,
    /// Per output tensor: its index in the source.
    map: Vec<usize>,
}

fn is_float(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
}

impl<'a> PrunedSource<'a> {
    /// `edits` by tensor name; `metadata` replaces (or appends) keys of the source's.
    pub fn new(
        inner: &'a dyn ModelSource,
        engine: &'a Engine,
        params: Participation,
        mut edits: HashMap<String, Edit>,
        metadata: &[(String, Value)],
    ) -> Result<Self> {
        let mut md = inner.metadata().to_vec();
        for (k, v) in metadata {
            match md.iter_mut().find(|(key, _)| key == k) {
                Some(slot) => slot.1 = v.clone(),
                None => md.push((k.clone(), v.clone())),
            }
        }
        let mut tensors = Vec::with_capacity(inner.tensors().len());
        let mut out_edits = Vec::with_capacity(inner.tensors().len());
        let mut map = Vec::with_capacity(inner.tensors().len());
        for (i, t) in inner.tensors().iter().enumerate() {
            let Some(e) = edits.remove(&t.name) else {
                tensors.push(t.clone());
                out_edits.push(None);
                map.push(i);
                continue;
            };
            if e.drop {
                continue;
            }
            let name = e.rename.clone().unwrap_or_else(|| t.name.clone());
            if !e.changes_data() {
                tensors.push(InputTensor { name, ..t.clone() });
                out_edits.push(None);
                map.push(i);
                continue;
            }
            let what = |m: String| Error::Invalid(format!("{}: {}: {m}", inner.describe(), t.name));
            if inner.ternary(i).is_some() || t.ty.tensor_trailer() > 0 {
                return Err(what(
                    "a BitNet (ternary) tensor cannot be pruned; prune its float master weights"
                        .into(),
                ));
            }
            if t.dims.len() > 2 && e.rows.is_some() {
                return Err(what("rows of a 3-D tensor cannot be cut".into()));
            }
            let mut dims = t.dims.clone();
            if let Some(r) = &e.rows {
                let n = t.n_rows();
                if r.iter().any(|&x| x >= n) {
                    return Err(what(format!("a cut names a row past its {n}")));
                }
                if dims.len() == 1 {
                    return Err(what("a 1-D tensor has no rows to cut".into()));
                }
                dims[1] = r.len() as u64;
            }
            if let Some(c) = &e.cols {
                let n = t.row_len();
                if c.iter().any(|&x| x >= n) {
                    return Err(what(format!("a cut names a column past its {n}")));
                }
                dims[0] = c.len() as u64;
            }
            if let Some(s) = e.sparsity
                && !(0.0..1.0).contains(&s)
            {
                return Err(what(format!("sparsity {s} is not within [0, 1)")));
            }
            // float rows keep their type; quantized ones cut by columns or sparsified are
            // decoded to F32
            let ty = if is_float(t.ty) || (e.cols.is_none() && e.sparsity.is_none()) {
                t.ty
            } else {
                GgmlType::F32
            };
            if ty.row_bytes(dims[0]).is_none() {
                return Err(what(format!(
                    "a row of {} elements is not a whole number of {} blocks",
                    dims[0], ty
                )));
            }
            tensors.push(InputTensor { name, dims, ty });
            out_edits.push(Some(e));
            map.push(i);
        }
        if let Some(name) = edits.keys().next() {
            return Err(Error::Invalid(format!(
                "{}: no tensor {name} to prune",
                inner.describe()
            )));
        }
        Ok(PrunedSource {
            inner,
            engine,
            params,
            metadata: md,
            tensors,
            edits: out_edits,
            map,
        })
    }

    /// True when tensor `index` is cut or sparsified.
    pub fn is_edited(&self, index: usize) -> bool {
        self.edits.get(index).is_some_and(|e| e.is_some())
    }

    /// Source rows `rows` (in that order) of tensor `index`, as the source stores them.
    fn gather_rows(&self, index: usize, rows: &[u64], out: &mut Vec<u8>) -> Result<()> {
        let mut scratch = Vec::new();
        let mut i = 0;
        while i < rows.len() {
            // a run of consecutive rows is one read
            let mut j = i + 1;
            while j < rows.len() && rows[j] == rows[j - 1] + 1 {
                j += 1;
            }
            let bytes = self
                .inner
                .read_rows(index, rows[i], (j - i) as u64, &mut scratch)?;
            out.extend_from_slice(bytes);
            // the source pages are not needed again (the memory bound, as `RowTiles` does)
            let in_row = bytes.len() / (j - i);
            self.inner
                .release(index, rows[i] as usize * in_row, bytes.len());
            i = j;
        }
        Ok(())
    }
}

/// Unstructured pruning of rows of `row_len`: true for the `round(sparsity * row_len)` weights
/// of each row with the lowest participation (ties: smaller |w|, then lower index).
pub fn lowest(
    engine: &Engine,
    params: &Participation,
    x: &[f32],
    row_len: usize,
    sparsity: f64,
) -> Result<Vec<bool>> {
    let mut zero = vec![false; x.len()];
    let k = ((sparsity * row_len as f64).round() as usize).min(row_len);
    if k == 0 || x.is_empty() {
        return Ok(zero);
    }
    let mut s = vec![f32::NAN; x.len()];
    engine.element_scores(x, row_len, params, &mut s)?;
    let mut idx: Vec<u32> = Vec::with_capacity(row_len);
    for ((row, sr), zr) in x
        .chunks_exact(row_len)
        .zip(s.chunks_exact(row_len))
        .zip(zero.chunks_exact_mut(row_len))
    {
        idx.clear();
        idx.extend(0..row_len as u32);
        let key = |&i: &u32| (sr[i as usize], row[i as usize].abs(), i);
        if k < row_len {
            idx.select_nth_unstable_by(k - 1, |a, b| {
                let (ka, kb) = (key(a), key(b));
                ka.0.total_cmp(&kb.0)
                    .then(ka.1.total_cmp(&kb.1))
                    .then(ka.2.cmp(&kb.2))
            });
        }
        for &i in &idx[..k] {
            zr[i as usize] = true;
        }
    }
    Ok(zero)
}

impl ModelSource for PrunedSource<'_> {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn metadata(&self) -> &[(String, Value)] {
        &self.metadata
    }
    fn tensors(&self) -> &[InputTensor] {
        &self.tensors
    }
    fn tensor_len(&self, index: usize) -> u64 {
        match &self.edits[index] {
            None => self.inner.tensor_len(self.map[index]),
            Some(_) => {
                let t = &self.tensors[index];
                t.ty.row_bytes(t.row_len()).unwrap_or(0) * t.n_rows()
            }
        }
    }
    fn read_rows<'b>(
        &'b self,
        index: usize,
        r0: u64,
        n: u64,
        scratch: &'b mut Vec<u8>,
    ) -> Result<&'b [u8]> {
        let Some(edit) = &self.edits[index] else {
            return self.inner.read_rows(self.map[index], r0, n, scratch);
        };
        let out_t = &self.tensors[index];
        let index = self.map[index];
        let src_t = &self.inner.tensors()[index];
        // the source rows of the output rows r0 .. r0 + n
        let rows: Vec<u64> = match &edit.rows {
            Some(map) => map
                .get(r0 as usize..(r0 + n) as usize)
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "{}: rows {r0}..{} out of range",
                        out_t.name,
                        r0 + n
                    ))
                })?
                .to_vec(),
            None => (r0..r0 + n).collect(),
        };
        let mut raw = Vec::new();
        self.gather_rows(index, &rows, &mut raw)?;
        if edit.cols.is_none() && edit.sparsity.is_none() {
            *scratch = raw;
            return Ok(scratch);
        }
        let src_len = src_t.row_len() as usize;
        let n_rows = rows.len();
        if is_float(src_t.ty) && edit.sparsity.is_none() {
            // columns moved as bytes
            let es = src_t.ty.block_bytes() as usize;
            let cols = edit.cols.as_deref().unwrap_or_default();
            scratch.clear();
            scratch.reserve(n_rows * cols.len() * es);
            for row in raw.chunks_exact(src_len * es) {
                for &c in cols {
                    let c = c as usize * es;
                    scratch.extend_from_slice(&row[c..c + es]);
                }
            }
            return Ok(scratch);
        }
        // decode, cut, score and zero in f32
        let mut x = vec![0f32; n_rows * src_len];
        RowDecoder::of(self.inner, index, src_t)?.decode(self.engine, &raw, &mut x)?;
        let (x, row_len) = match edit.cols.as_deref() {
            Some(cols) => {
                let mut y = Vec::with_capacity(n_rows * cols.len());
                for row in x.chunks_exact(src_len) {
                    y.extend(cols.iter().map(|&c| row[c as usize]));
                }
                (y, cols.len())
            }
            None => (x, src_len),
        };
        let zero = match edit.sparsity {
            Some(sp) => lowest(self.engine, &self.params, &x, row_len, sp)?,
            None => vec![false; x.len()],
        };
        scratch.clear();
        if is_float(src_t.ty) {
            // the kept weights keep their bytes
            let es = src_t.ty.block_bytes() as usize;
            let cols: Vec<u64> = match edit.cols.as_deref() {
                Some(c) => c.to_vec(),
                None => (0..src_len as u64).collect(),
            };
            for (row, zr) in raw
                .chunks_exact(src_len * es)
                .zip(zero.chunks_exact(row_len))
            {
                for (&c, &z) in cols.iter().zip(zr) {
                    if z {
                        scratch.extend(std::iter::repeat_n(0u8, es));
                    } else {
                        let c = c as usize * es;
                        scratch.extend_from_slice(&row[c..c + es]);
                    }
                }
            }
        } else {
            for (&v, &z) in x.iter().zip(&zero) {
                let v = if z { 0.0f32 } else { v };
                scratch.extend_from_slice(&v.to_le_bytes());
            }
        }
        Ok(scratch)
    }
    fn unquantized_type(&self, index: usize) -> Option<GgmlType> {
        self.inner.unquantized_type(self.map[index])
    }
    fn ternary(&self, index: usize) -> Option<crate::model::TernarySource> {
        match self.edits[index] {
            None => self.inner.ternary(self.map[index]),
            Some(_) => None,
        }
    }
    fn i2s_scale(&self, index: usize) -> Result<f32> {
        self.inner.i2s_scale(self.map[index])
    }
    fn check_unchanged(&self) -> Result<()> {
        self.inner.check_unchanged()
    }
    fn prefetch(&self, index: usize, offset: usize, len: usize) {
        if self.edits[index].is_none() {
            self.inner.prefetch(self.map[index], offset, len)
        }
    }
    fn release(&self, index: usize, offset: usize, len: usize) {
        if self.edits[index].is_none() {
            self.inner.release(self.map[index], offset, len)
        }
    }
}
