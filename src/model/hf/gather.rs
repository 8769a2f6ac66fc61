//! A GGUF tensor assembled from Hugging Face tensors tile by tile, never whole: rows gathered
//! from one or several safetensors tensors (the experts of a layer stacked into one 3-D tensor,
//! as `torch.stack` in the converter's `Qwen2MoeModel.modify_tensors`; rows split out of a fused
//! projection; heads reordered), columns permuted within a row, and the element-wise transforms
//! the converter applies in the tensor's own dtype (`-exp(A_log)`, `w + 1` for the zero-centred
//! RMS norms of Qwen3-Next / Qwen3.5).

use crate::codec::float::{bf16_bits_to_f32, f16_bits_to_f32, f32_to_bf16_bits, f32_to_f16_bits};
use crate::error::{Error, Result};
use crate::formats::safetensors::SafetensorsModel;
use crate::ggml_type::GgmlType;

/// Element-wise transform, computed in f32 and rounded back to the tensor's dtype (torch
/// computes `data_torch + 1` and `torch.exp` in the tensor's dtype).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    None,
    /// `-exp(x)` (`A_log` -> `ssm_a`).
    NegExp,
    /// `x + 1` (zero-centred RMS norm weights).
    AddOne,
}

/// Where each row and element of the output comes from.
#[derive(Clone, Debug)]
pub struct Gather {
    /// Source tensors (indices into the safetensors model), concatenated along rows.
    pub parts: Vec<usize>,
    /// Rows each part holds (all parts have the same shape).
    pub rows_per_part: u64,
    /// Output row -> concatenated source row; `None`: the identity.
    pub row_map: Option<Vec<u64>>,
    /// Output element within a row -> source element of the same row; `None`: the identity.
    pub col_map: Option<Vec<u64>>,
    pub op: Op,
}

impl Gather {
    pub fn parts(parts: Vec<usize>, rows_per_part: u64) -> Gather {
        Gather {
            parts,
            rows_per_part,
            row_map: None,
            col_map: None,
            op: Op::None,
        }
    }

    /// Reads output rows `r0..r0 + n` (each `row_len` elements of `ty`) into `out`.
    #[allow(clippy::too_many_arguments)]
    pub fn read(
        &self,
        st: &SafetensorsModel,
        ty: GgmlType,
        row_len: u64,
        r0: u64,
        n: u64,
        out: &mut Vec<u8>,
        what: &dyn Fn() -> String,
    ) -> Result<()> {
        let es = match ty {
            GgmlType::F32 => 4usize,
            GgmlType::F16 | GgmlType::BF16 => 2,
            _ => {
                return Err(Error::Invalid(format!(
                    "{}: type {ty:?} cannot be gathered",
                    what()
                )));
            }
        };
        let row = row_len as usize * es;
        let bad = |m: String| Error::Invalid(format!("{}: {m}", what()));
        out.clear();
        out.reserve(n as usize * row);
        for r in r0..r0 + n {
            let s = match &self.row_map {
                Some(m) => *m
                    .get(r as usize)
                    .ok_or_else(|| bad(format!("row {r} has no source row")))?,
                None => r,
            };
            let part = (s / self.rows_per_part.max(1)) as usize;
            let local = (s % self.rows_per_part.max(1)) as usize;
            let t = self
                .parts
                .get(part)
                .and_then(|&i| st.tensors.get(i))
                .ok_or_else(|| bad(format!("source row {s} is past the last part")))?;
            let src = st
                .tensor_data(t)
                .get(local * row..(local + 1) * row)
                .ok_or_else(|| bad(format!("row {local} is outside tensor '{}'", t.name)))?;
            let start = out.len();
            match &self.col_map {
                None => out.extend_from_slice(src),
                Some(m) => {
                    for &c in m {
                        let c = c as usize;
                        out.extend_from_slice(src.get(c * es..(c + 1) * es).ok_or_else(|| {
                            bad(format!("column {c} is outside tensor '{}'", t.name))
                        })?);
                    }
                }
            }
            if self.op != Op::None {
                apply(self.op, ty, &mut out[start..]);
            }
        }
        Ok(())
    }
}

fn apply(op: Op, ty: GgmlType, bytes: &mut [u8]) {
    let f = |x: f32| match op {
        Op::NegExp => -x.exp(),
        Op::AddOne => x + 1.0,
        Op::None => x,
    };
    match ty {
        GgmlType::F32 => {
            for c in bytes.chunks_exact_mut(4) {
                let x = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                c.copy_from_slice(&f(x).to_le_bytes());
            }
        }
        GgmlType::F16 => {
            for c in bytes.chunks_exact_mut(2) {
                let x = f16_bits_to_f32(u16::from_le_bytes([c[0], c[1]]));
                c.copy_from_slice(&f32_to_f16_bits(f(x)).to_le_bytes());
            }
        }
        GgmlType::BF16 => {
            for c in bytes.chunks_exact_mut(2) {
                let x = bf16_bits_to_f32(u16::from_le_bytes([c[0], c[1]]));
                c.copy_from_slice(&f32_to_bf16_bits(f(x)).to_le_bytes());
            }
        }
        _ => {}
    }
}

/// V heads from grouped-by-K-head order to tiled order (`_LinearAttentionVReorderBase`
/// `._reorder_v_heads` of llama.cpp's converter): output head `v * n_k + k` is source head
/// `k * (n_v / n_k) + v`; each head spans `head_dim` consecutive indices.
pub fn reorder_v_heads(n_k: u64, n_v: u64, head_dim: u64) -> Vec<u64> {
    let per_k = n_v / n_k.max(1);
    let mut out = Vec::with_capacity((n_v * head_dim) as usize);
    for o in 0..n_v {
        let (v, k) = (o / n_k, o % n_k);
        let src = k * per_k + v;
        out.extend((0..head_dim).map(|j| src * head_dim + j));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v_heads_tile() {
        // 2 k heads, 3 v heads each: grouped [K0v0 K0v1 K0v2 K1v0 K1v1 K1v2] ->
        // tiled [K0v0 K1v0 K0v1 K1v1 K0v2 K1v2]
        assert_eq!(reorder_v_heads(2, 6, 1), vec![0, 3, 1, 4, 2, 5]);
        assert_eq!(reorder_v_heads(2, 4, 2), vec![0, 1, 4, 5, 2, 3, 6, 7]);
        assert_eq!(reorder_v_heads(3, 3, 1), vec![0, 1, 2]);
    }
}
