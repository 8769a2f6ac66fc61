//! What llama.cpp allocates besides the weights when it runs a model with a context of `ctx`
//! tokens (one sequence, default cache types): the size target's `--target-memory` subtracts
//! it from the memory to fit the weights in.
//!
//! - KV cache (src/llama-kv-cache.cpp): F16 K and V rows for every attention layer, one per
//!   cell; cells are `ctx` rounded up to a multiple of 256. A layer has
//!   `key_length * head_count_kv(il)` K values and `value_length * head_count_kv(il)` V values
//!   (`key_length` defaults to `embedding_length / head_count`).
//! - Recurrent state (src/llama-memory-recurrent.cpp, `llama_hparams::n_embd_r/n_embd_s`): F32,
//!   per recurrent layer `(conv_kernel - 1) * (inner_size + 2 * group_count * state_size)` conv
//!   values and `state_size * inner_size` SSM values.
//! - Which layers are which: the last `nextn_predict_layers` blocks (MTP) hold neither; with
//!   `full_attention_interval` N, layer `il` attends when `(il + 1) % N == 0` and is recurrent
//!   otherwise (qwen35, qwen3next); with a per-layer `head_count_kv` array, a layer with 0 KV
//!   heads is recurrent when the model has `ssm.*` keys; a model with `ssm.*` keys and no
//!   attention heads (Mamba) is recurrent throughout.
//!
//! These two are llama.cpp's own formulas, checked against its log in `tests/target_size.rs`.
//! The compute buffer is an estimate: `4 * 512 * (ctx * head_count + vocab + 8 * embd +
//! 2 * ff)` bytes (an unbatched 512-token micro-batch: attention scores without flash attention,
//! the logits, activations), which came out 5-17% above what llama.cpp reserved on three small
//! models (llama, qwen35, qwen3next). `--compute-buffer` replaces it.

use crate::formats::gguf::Value;

/// The bytes llama.cpp needs besides the weights (saved as such in a size plan).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RuntimeMemory {
    /// KV cache cells (`ctx` rounded up to 256).
    pub cells: u64,
    pub kv_cache: u64,
    pub recurrent_state: u64,
    pub compute_buffer: u64,
    /// Attention layers and recurrent layers counted.
    pub attention_layers: u64,
    pub recurrent_layers: u64,
}

impl RuntimeMemory {
    pub fn total(&self) -> u64 {
        self.kv_cache + self.recurrent_state + self.compute_buffer
    }
}

/// The micro-batch llama.cpp reserves its compute buffer for (`n_ubatch`).
const UBATCH: u64 = 512;

/// The runtime memory of the model described by `md` (GGUF metadata, after any Ollama fixes)
/// at a context of `ctx` tokens; `compute`: a measured compute buffer instead of the estimate.
pub fn runtime_memory(
    md: &[(String, Value)],
    ctx: u64,
    compute: Option<u64>,
) -> Result<RuntimeMemory, String> {
    let get = |k: &str| md.iter().find(|(key, _)| key == k).map(|(_, v)| v);
    let arch = get("general.architecture")
        .and_then(|v| v.as_str())
        .ok_or("no general.architecture")?
        .to_string();
    let num = |suffix: &str| get(&format!("{arch}.{suffix}")).and_then(|v| v.as_u64());
    // a per-layer array or one number for every layer
    let per_layer = |suffix: &str, il: u64| {
        get(&format!("{arch}.{suffix}")).and_then(|v| {
            v.as_u64().or_else(|| {
                v.as_array()
                    .and_then(|a| a.get(il as usize))
                    .and_then(|x| x.as_u64())
            })
        })
    };
    let n_block = num("block_count").ok_or(format!("no {arch}.block_count"))?;
    let n_layer = n_block.saturating_sub(num("nextn_predict_layers").unwrap_or(0));
    let embd = num("embedding_length").ok_or(format!("no {arch}.embedding_length"))?;
    let n_head = per_layer("attention.head_count", 0).unwrap_or(0);
    let k_len = num("attention.key_length")
        .or_else(|| embd.checked_div(n_head))
        .unwrap_or(0);
    let v_len = num("attention.value_length").unwrap_or(k_len);
    let ssm = num("ssm.conv_kernel").is_some() || num("ssm.state_size").is_some();
    let interval = num("full_attention_interval").filter(|&n| n > 0);
    let head_kv_array =
        get(&format!("{arch}.attention.head_count_kv")).is_some_and(|v| v.as_array().is_some());

    let cells = ctx.max(1).div_ceil(256) * 256;
    let conv = num("ssm.conv_kernel").unwrap_or(0).saturating_sub(1);
    let inner = num("ssm.inner_size").unwrap_or(0);
    let state = num("ssm.state_size").unwrap_or(0);
    let groups = num("ssm.group_count").unwrap_or(0);
    let rs_per_layer = 4 * (conv * (inner + 2 * groups * state) + state * inner);

    let mut m = RuntimeMemory {
        cells,
        kv_cache: 0,
        recurrent_state: 0,
        compute_buffer: 0,
        attention_layers: 0,
        recurrent_layers: 0,
    };
    for il in 0..n_layer {
        let n_kv = per_layer("attention.head_count_kv", il).unwrap_or(n_head);
        let recurrent = match interval {
            Some(n) => (il + 1) % n != 0,
            None if head_kv_array => ssm && n_kv == 0,
            None => ssm && n_head == 0,
        };
        if recurrent {
            m.recurrent_layers += 1;
            m.recurrent_state += rs_per_layer;
        } else if n_kv > 0 {
            m.attention_layers += 1;
            m.kv_cache += cells * (k_len + v_len) * n_kv * 2;
        }
    }
    let vocab = get("tokenizer.ggml.tokens")
        .and_then(|v| v.as_array())
        .map(|a| a.len() as u64)
        .or_else(|| num("vocab_size"))
        .unwrap_or(0);
    let ff = num("feed_forward_length").unwrap_or(0).max(
        num("expert_feed_forward_length").unwrap_or(0) * num("expert_used_count").unwrap_or(0)
            + num("expert_shared_feed_forward_length").unwrap_or(0),
    );
    m.compute_buffer = compute.unwrap_or(4 * UBATCH * (ctx * n_head + vocab + 8 * embd + 2 * ff));
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::gguf::Array;

    fn md(arch: &str, kv: &[(&str, Value)]) -> Vec<(String, Value)> {
        let mut v = vec![(
            "general.architecture".to_string(),
            Value::String(arch.into()),
        )];
        v.extend(kv.iter().map(|(k, x)| (format!("{arch}.{k}"), x.clone())));
        v
    }

    #[test]
    fn llama_kv_cache_is_every_layer() {
        let m = md(
            "llama",
            &[
                ("block_count", Value::U32(32)),
                ("embedding_length", Value::U32(4096)),
                ("attention.head_count", Value::U32(32)),
                ("attention.head_count_kv", Value::U32(8)),
            ],
        );
        let r = runtime_memory(&m, 8000, Some(7)).unwrap();
        // Llama-3-8B at 8192 cells: 32 layers * 8192 * 2 * 1024 * 2 bytes = 1 GiB
        assert_eq!(r.cells, 8192);
        assert_eq!(r.kv_cache, 1 << 30);
        assert_eq!((r.recurrent_state, r.compute_buffer), (0, 7));
        assert_eq!(r.attention_layers, 32);
    }

    #[test]
    fn hybrid_layers_split_by_interval_and_mtp_holds_nothing() {
        let m = md(
            "qwen35",
            &[
                ("block_count", Value::U32(9)),
                ("nextn_predict_layers", Value::U32(1)),
                ("embedding_length", Value::U32(256)),
                ("attention.head_count", Value::U32(4)),
                ("attention.head_count_kv", Value::U32(1)),
                ("attention.key_length", Value::U32(64)),
                ("attention.value_length", Value::U32(64)),
                ("full_attention_interval", Value::U32(4)),
                ("ssm.conv_kernel", Value::U32(4)),
                ("ssm.inner_size", Value::U32(128)),
                ("ssm.state_size", Value::U32(32)),
                ("ssm.group_count", Value::U32(2)),
            ],
        );
        let r = runtime_memory(&m, 1024, None).unwrap();
        assert_eq!((r.attention_layers, r.recurrent_layers), (2, 6));
        assert_eq!(r.kv_cache, 1024 * 128 * 2 * 2);
        assert_eq!(r.recurrent_state, 6 * 4 * (3 * 256 + 32 * 128));
        assert!(r.compute_buffer > 0);
    }

    #[test]
    fn per_layer_kv_heads_mark_recurrent_layers() {
        let m = md(
            "jamba",
            &[
                ("block_count", Value::U32(4)),
                ("embedding_length", Value::U32(64)),
                ("attention.head_count", Value::U32(4)),
                (
                    "attention.head_count_kv",
                    Value::Array(Array::U32(vec![0, 0, 2, 0])),
                ),
                ("ssm.conv_kernel", Value::U32(4)),
                ("ssm.inner_size", Value::U32(128)),
                ("ssm.state_size", Value::U32(16)),
            ],
        );
        let r = runtime_memory(&m, 256, Some(0)).unwrap();
        assert_eq!((r.attention_layers, r.recurrent_layers), (1, 3));
        assert_eq!(r.kv_cache, 256 * 16 * 2 * 2 * 2);
        assert!(runtime_memory(&[], 256, None).is_err());
    }
}
