//! Synthetic inputs for benchmarks: seeded pseudo-random weights, and Llama-shaped F16 GGUF
//! models of a requested size streamed to disk tensor by tensor (never held in memory).
//!
//! The model carries the hparams and vocabulary keys llama.cpp's quantizer needs (the same set
//! `tests/py/llama_fixture.py make` writes with gguf-py), so both gpuq and llama.cpp accept it.

use crate::codec::float::f32_to_f16_bits;
use crate::error::Result;
use crate::formats::gguf::{Array, GgufWriter, TensorSpec, Value};
use crate::ggml_type::GgmlType;
use rayon::prelude::*;
use std::path::Path;

/// splitmix64: a fast, well-mixed 64-bit generator; one call per element.
#[inline]
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seed of one row of one stream (tensor), so rows can be generated in any order.
fn row_seed(seed: u64, stream: u64, row: u64) -> u64 {
    let mut s = seed ^ stream.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ row.wrapping_mul(0x9e37_79b9);
    splitmix(&mut s)
}

/// Fills one row with weights shaped like a trained layer's: approximately normal values
/// (sum of three uniforms, unit variance) times `scale`, every 64th column (by a hash) 8x
/// larger (heavy columns), and about one element in 5000 a 30x outlier.
pub fn fill_row(dst: &mut [f32], seed: u64, stream: u64, row: u64, scale: f32) {
    let mut s = row_seed(seed, stream, row);
    // three 16-bit uniforms summed: mean 1.5 * 65535, variance 3 / 12 * 65535^2
    const MEAN: f32 = 1.5 * 65535.0;
    const INV_SD: f32 = 1.0 / (0.5 * 65535.0);
    for (c, x) in dst.iter_mut().enumerate() {
        let r = splitmix(&mut s);
        let u = ((r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff)) as f32;
        let mut v = (u - MEAN) * INV_SD * scale;
        let col_hash = (c as u64 ^ stream).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58;
        if col_hash == 0 {
            v *= 8.0;
        }
        if (r >> 48) < 13 {
            v *= 30.0;
        }
        *x = v;
    }
}

/// `n` seeded values in rows of `row_len` (see [`fill_row`]), generated in parallel.
pub fn weights_f32(n: usize, row_len: usize, seed: u64) -> Vec<f32> {
    let mut v = vec![0f32; n];
    v.par_chunks_mut(row_len.max(1))
        .enumerate()
        .for_each(|(r, row)| fill_row(row, seed, 0, r as u64, 1.0));
    v
}

/// Positive per-column importance weights (an imatrix row): squares of seeded values plus a
/// floor, as activations' mean squares look.
pub fn importance(row_len: usize, seed: u64) -> Vec<f32> {
    let mut v = vec![0f32; row_len];
    fill_row(&mut v, seed, 0x1a7, 0, 1.0);
    v.iter_mut().for_each(|x| *x = *x * *x + 1e-3);
    v
}

/// The dimensions of a Llama-shaped model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LlamaShape {
    pub layers: u64,
    pub embd: u64,
    pub ff: u64,
    pub vocab: u64,
    pub n_head: u64,
    pub n_head_kv: u64,
}

/// Sizes of the shapes gpuq picks from: (embd, ff, vocab, heads, kv heads), Llama-2-7B's
/// first, then narrower ones for small benchmarks. Every row length is a multiple of 256.
const SHAPES: &[(u64, u64, u64, u64, u64)] = &[
    (4096, 11008, 32000, 32, 8),
    (2048, 5632, 32000, 16, 4),
    (1024, 2816, 16000, 8, 2),
    (512, 1536, 8000, 8, 2),
    (256, 768, 4000, 4, 2),
];

impl LlamaShape {
    /// The widest shape of which at least four layers fit `bytes` of F16, with as many layers
    /// as bring the file closest to `bytes` (at least one).
    pub fn for_f16_bytes(bytes: u64) -> LlamaShape {
        let mut pick = None;
        for &(embd, ff, vocab, n_head, n_head_kv) in SHAPES {
            let s = LlamaShape {
                layers: 1,
                embd,
                ff,
                vocab,
                n_head,
                n_head_kv,
            };
            let fixed = s.fixed_params() * 2;
            let per = s.layer_params() * 2;
            if bytes >= fixed + 4 * per || pick.is_none() && embd == SHAPES[SHAPES.len() - 1].0 {
                let layers = ((bytes.saturating_sub(fixed) + per / 2) / per).max(1);
                pick = Some(LlamaShape { layers, ..s });
                break;
            }
        }
        pick.unwrap_or(LlamaShape {
            layers: 1,
            embd: 256,
            ff: 768,
            vocab: 4000,
            n_head: 4,
            n_head_kv: 2,
        })
    }

    fn head_dim(&self) -> u64 {
        self.embd / self.n_head
    }

    /// Parameters of one block (attention, FFN, two norms).
    pub fn layer_params(&self) -> u64 {
        let kv = self.n_head_kv * self.head_dim();
        2 * self.embd * self.embd + 2 * kv * self.embd + 3 * self.ff * self.embd + 2 * self.embd
    }

    /// Parameters outside the blocks: token embedding, output, output norm.
    pub fn fixed_params(&self) -> u64 {
        2 * self.vocab * self.embd + self.embd
    }

    /// The tensors in llama.cpp's order, with the scale of their random weights; 1-D norms are
    /// F32 (scale 0 marks a norm: values near 1), matrices F16.
    pub fn tensors(&self) -> Vec<(TensorSpec, f32)> {
        let kv = self.n_head_kv * self.head_dim();
        let (e, f) = (self.embd, self.ff);
        let mat = |name: String, rows: u64, cols: u64, scale: f32| {
            (
                TensorSpec {
                    name,
                    ty: GgmlType::F16,
                    dims: vec![cols, rows],
                },
                scale,
            )
        };
        let norm = |name: String| {
            (
                TensorSpec {
                    name,
                    ty: GgmlType::F32,
                    dims: vec![e],
                },
                0.0,
            )
        };
        let mut v = vec![mat("token_embd.weight".into(), self.vocab, e, 0.02)];
        for l in 0..self.layers {
            let p = format!("blk.{l}.");
            v.push(norm(format!("{p}attn_norm.weight")));
            v.push(mat(format!("{p}attn_q.weight"), e, e, 0.05));
            v.push(mat(format!("{p}attn_k.weight"), kv, e, 0.05));
            v.push(mat(format!("{p}attn_v.weight"), kv, e, 0.05));
            v.push(mat(format!("{p}attn_output.weight"), e, e, 0.05));
            v.push(norm(format!("{p}ffn_norm.weight")));
            v.push(mat(format!("{p}ffn_gate.weight"), f, e, 0.05));
            v.push(mat(format!("{p}ffn_up.weight"), f, e, 0.05));
            v.push(mat(format!("{p}ffn_down.weight"), e, f, 0.05));
        }
        v.push(norm("output_norm.weight".into()));
        v.push(mat("output.weight".into(), self.vocab, e, 0.02));
        v
    }

    /// GGUF metadata: the llama hparams, F16 file type and a gpt2-style vocabulary.
    pub fn metadata(&self) -> Vec<(String, Value)> {
        let s = |k: &str, v: Value| (k.to_string(), v);
        let u = |x: u64| Value::U32(x as u32);
        vec![
            s("general.architecture", Value::String("llama".into())),
            s("general.name", Value::String("gpuq bench".into())),
            s("llama.context_length", u(4096)),
            s("llama.embedding_length", u(self.embd)),
            s("llama.block_count", u(self.layers)),
            s("llama.feed_forward_length", u(self.ff)),
            s("llama.attention.head_count", u(self.n_head)),
            s("llama.attention.head_count_kv", u(self.n_head_kv)),
            s("llama.rope.dimension_count", u(self.head_dim())),
            s("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
            s("general.file_type", Value::U32(1)),
            s("tokenizer.ggml.model", Value::String("gpt2".into())),
            s(
                "tokenizer.ggml.tokens",
                Value::Array(Array::String(
                    (0..self.vocab).map(|i| format!("t{i}")).collect(),
                )),
            ),
            s(
                "tokenizer.ggml.token_type",
                Value::Array(Array::I32(vec![1; self.vocab as usize])),
            ),
            s(
                "tokenizer.ggml.merges",
                Value::Array(Array::String(vec!["t 1".into()])),
            ),
            s("tokenizer.ggml.bos_token_id", Value::U32(1)),
            s("tokenizer.ggml.eos_token_id", Value::U32(2)),
        ]
    }

    /// Bytes of tensor data (F16 matrices, F32 norms), without header or padding.
    pub fn data_bytes(&self) -> u64 {
        self.tensors()
            .iter()
            .map(|(t, _)| t.ty.tensor_bytes(&t.dims).unwrap_or(0))
            .sum()
    }
}

impl std::fmt::Display for LlamaShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "llama: {} layers, embd {}, ff {}, vocab {}, heads {}/{} kv",
            self.layers, self.embd, self.ff, self.vocab, self.n_head, self.n_head_kv
        )
    }
}

/// Bytes generated per write: rows are produced in parallel into one buffer of about this size.
const CHUNK_BYTES: u64 = 16 << 20;

/// Writes a Llama-shaped F16 GGUF of `shape` with seeded weights to `path`, one chunk of rows
/// at a time (memory: one chunk), through gpuq's [`GgufWriter`] (temp file, then rename).
pub fn write_llama_f16(path: &Path, shape: &LlamaShape, seed: u64) -> Result<()> {
    let tensors = shape.tensors();
    let specs: Vec<TensorSpec> = tensors.iter().map(|(t, _)| t.clone()).collect();
    let mut w = GgufWriter::create(path, &shape.metadata(), &specs)?;
    let mut buf: Vec<u8> = Vec::new();
    for (ti, (t, scale)) in tensors.iter().enumerate() {
        let row_len = t.dims[0] as usize;
        let n_rows: u64 = t.dims.iter().skip(1).product();
        let row_bytes = t.ty.row_bytes(row_len as u64).unwrap_or(0) as usize;
        let rows_per_chunk = (CHUNK_BYTES / row_bytes.max(1) as u64).max(1);
        let mut r0 = 0u64;
        while r0 < n_rows {
            let rows = rows_per_chunk.min(n_rows - r0);
            buf.resize(rows as usize * row_bytes, 0);
            let (scale, ty) = (*scale, t.ty);
            buf.par_chunks_mut(row_bytes).enumerate().for_each_init(
                || vec![0f32; row_len],
                |f, (i, out)| {
                    fill_row(f, seed, ti as u64, r0 + i as u64, scale);
                    if ty == GgmlType::F16 {
                        for (o, x) in out.chunks_exact_mut(2).zip(f.iter()) {
                            o.copy_from_slice(&f32_to_f16_bits(*x).to_le_bytes());
                        }
                    } else {
                        // a norm: 1 + 0.1 * noise
                        for (o, x) in out.chunks_exact_mut(4).zip(f.iter()) {
                            o.copy_from_slice(&(1.0 + 0.1 * x).to_le_bytes());
                        }
                    }
                },
            );
            w.write_next(&buf)?;
            r0 += rows;
        }
    }
    w.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_fit_sizes() {
        for &gib in &[0.3f64, 2.0, 8.0] {
            let bytes = (gib * (1u64 << 30) as f64) as u64;
            let s = LlamaShape::for_f16_bytes(bytes);
            let got = s.data_bytes() as f64;
            let per = (s.layer_params() * 2) as f64;
            assert!(
                (got - bytes as f64).abs() <= per,
                "{gib} GiB -> {s}: {got} bytes"
            );
            assert!(s.layers >= 4, "{s}");
            for (t, _) in s.tensors() {
                assert_eq!(t.dims[0] % 256, 0, "{}", t.name);
            }
        }
        assert_eq!(LlamaShape::for_f16_bytes(8 << 30).embd, 4096);
    }

    #[test]
    fn rows_are_seeded_and_varied() {
        let mut a = vec![0f32; 4096];
        let mut b = vec![0f32; 4096];
        fill_row(&mut a, 7, 3, 11, 1.0);
        fill_row(&mut b, 7, 3, 11, 1.0);
        assert_eq!(a, b);
        fill_row(&mut b, 7, 3, 12, 1.0);
        assert_ne!(a, b);
        let mean = a.iter().sum::<f32>() / a.len() as f32;
        let distinct: std::collections::HashSet<u32> = a.iter().map(|x| x.to_bits()).collect();
        assert!(mean.abs() < 0.5, "mean {mean}");
        assert!(distinct.len() > 3000);
        assert!(a.iter().any(|x| x.abs() > 10.0), "no outlier");
    }
}
