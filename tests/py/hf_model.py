"""Tiny random Hugging Face models, and an independent numpy forward pass checked against the
logits llama.cpp computes from a GGUF.

  make DIR ARCH SEED [--dtype f32|f16|bf16] [--shards N] [--tied] [--no-tokenizer] [--bias]
  check DIR GGUF TOL     prints "max_rel_err X" and exits 1 when X > TOL

The forward pass follows the Hugging Face modelling code, not llama.cpp: RMSNorm, rotary
embedding in rotate_half layout on unpermuted q/k, grouped-query attention, SwiGLU, q/k/v
biases (qwen2), per-head q/k RMS norms before rotary (qwen3).
"""
import json
import struct
import sys
from pathlib import Path

import numpy as np

ARCHS = {
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
}


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def to_bf16(a):
    u = a.astype(np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return r


def bf16_to_f32(r):
    return (r.astype(np.uint32) << 16).view(np.float32)


def write_safetensors(path, tensors):
    """tensors: list of (name, dtype_name, shape, raw bytes)."""
    header = {"__metadata__": {"format": "pt"}}
    off = 0
    for name, dt, shape, raw in tensors:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, _, _, raw in tensors:
            f.write(raw)


def config_for(arch):
    c = {
        "architectures": [ARCHS[arch]],
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 280,
        "max_position_embeddings": 128,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "bos_token_id": None,
        "eos_token_id": 266,
    }
    if arch == "qwen3":
        c["head_dim"] = 32  # q width 128 differs from hidden_size 64
        c["rope_theta"] = 1000000.0
    if arch == "mistral":
        c["num_key_value_heads"] = 1
    return c


def make_weights(cfg, arch, rng, tied, bias):
    E, F, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    H, KV, V = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["vocab_size"]
    D = cfg.get("head_dim", E // H)
    w = {}

    def mat(*shape, scale=None):
        s = scale if scale is not None else 1.0 / np.sqrt(shape[-1])
        return (rng.standard_normal(shape) * s).astype(np.float32)

    def norm(n):
        return (1.0 + 0.2 * rng.standard_normal(n)).astype(np.float32)

    w["model.embed_tokens.weight"] = mat(V, E, scale=1.0)
    for l in range(L):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = norm(E)
        w[p + "self_attn.q_proj.weight"] = mat(H * D, E)
        w[p + "self_attn.k_proj.weight"] = mat(KV * D, E)
        w[p + "self_attn.v_proj.weight"] = mat(KV * D, E)
        w[p + "self_attn.o_proj.weight"] = mat(E, H * D)
        if arch == "qwen2" or bias:
            w[p + "self_attn.q_proj.bias"] = mat(H * D, scale=0.5)
            w[p + "self_attn.k_proj.bias"] = mat(KV * D, scale=0.5)
            w[p + "self_attn.v_proj.bias"] = mat(KV * D, scale=0.5)
        if arch == "qwen3":
            w[p + "self_attn.q_norm.weight"] = norm(D)
            w[p + "self_attn.k_norm.weight"] = norm(D)
        w[p + "post_attention_layernorm.weight"] = norm(E)
        w[p + "mlp.gate_proj.weight"] = mat(F, E)
        w[p + "mlp.up_proj.weight"] = mat(F, E)
        w[p + "mlp.down_proj.weight"] = mat(E, F)
        w[p + "self_attn.rotary_emb.inv_freq"] = (1.0 / (cfg["rope_theta"] ** (np.arange(0, D, 2) / D))).astype(np.float32)
    w["model.norm.weight"] = norm(E)
    if not tied:
        w["lm_head.weight"] = mat(V, E)
    return w


def tokenizer_files(d):
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    merges = [("\u0120", "t"), ("h", "e"), ("\u0120t", "he"), ("i", "n"), ("\u0120", "a"), ("e", "r"), ("o", "n"), ("\u0120", "s"), ("r", "e"), ("a", "t")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    eot = {"id": 266, "content": "<|endoftext|>", "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
    assert len(vocab) == 266
    tj = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [eot],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "", "end_of_word_suffix": "",
                  "fuse_unk": False, "byte_fallback": False, "vocab": vocab, "merges": [f"{a} {b}" for a, b in merges]},
    }
    (d / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")
    tc = {"bos_token": None, "eos_token": "<|endoftext|>", "add_bos_token": False, "model_max_length": 128,
          "chat_template": "{% for m in messages %}<|im_start|>{{ m['content'] }}{% endfor %}"}
    (d / "tokenizer_config.json").write_text(json.dumps(tc), encoding="utf-8")


# rope_scaling blocks as HF configs write them; the context of these tiny models is 128 and the
# tests run up to 17 positions, so the scaled frequencies show in the logits.
ROPE = {
    "linear": {"rope_type": "linear", "factor": 4.0},
    "llama3": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 32},
    "yarn": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32,
             "beta_fast": 32.0, "beta_slow": 1.0},
}


def make(d, arch, seed, dtype="f32", shards=1, tied=False, no_tok=False, bias=False, rope=None):
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    cfg = config_for(arch)
    cfg["tie_word_embeddings"] = tied
    if rope:
        cfg["rope_scaling"] = ROPE[rope]
    rng = np.random.default_rng(seed)
    w = make_weights(cfg, arch, rng, tied, bias)
    (d / "config.json").write_text(json.dumps(cfg, indent=1))
    if not no_tok:
        tokenizer_files(d)
    items = []
    for name, a in w.items():
        if dtype == "bf16" and a.ndim == 2:
            items.append((name, "BF16", a.shape, to_bf16(a).tobytes()))
        elif dtype == "f16" and a.ndim == 2:
            items.append((name, "F16", a.shape, a.astype(np.float16).tobytes()))
        else:
            items.append((name, "F32", a.shape, a.astype(np.float32).tobytes()))
    if shards == 1:
        write_safetensors(d / "model.safetensors", items)
        return
    per = (len(items) + shards - 1) // shards
    wm = {}
    total = 0
    for s in range(shards):
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = items[s * per:(s + 1) * per]
        write_safetensors(d / fname, part)
        for name, _, _, raw in part:
            wm[name] = fname
            total += len(raw)
    (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": wm}, indent=1))


def read_safetensors(d):
    d = Path(d)
    files = sorted(d.glob("*.safetensors"))
    out = {}
    for f in files:
        raw = f.read_bytes()
        n = struct.unpack("<Q", raw[:8])[0]
        h = json.loads(raw[8:8 + n])
        base = 8 + n
        for name, e in h.items():
            if name == "__metadata__":
                continue
            b, en = e["data_offsets"]
            buf = raw[base + b:base + en]
            if e["dtype"] == "F32":
                a = np.frombuffer(buf, dtype=np.float32)
            elif e["dtype"] == "F16":
                a = np.frombuffer(buf, dtype=np.float16).astype(np.float32)
            elif e["dtype"] == "BF16":
                a = bf16_to_f32(np.frombuffer(buf, dtype=np.uint16))
            else:
                raise ValueError(e["dtype"])
            out[name] = a.reshape(e["shape"]).astype(np.float64)
    return out


def rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def rope_inv_freq(cfg, D, theta):
    """Rotary inverse frequencies and the cos/sin scale, as transformers' rope_init_fns give."""
    inv = 1.0 / (theta ** (np.arange(0, D, 2, dtype=np.float64) / D))
    rs = cfg.get("rope_scaling") or {}
    kind = rs.get("rope_type", rs.get("type"))
    if kind == "linear":
        return inv / rs["factor"], 1.0
    if kind == "llama3":
        f, lo, hi, orig = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"], rs["original_max_position_embeddings"]
        wavelen = 2 * np.pi / inv
        smooth = (orig / wavelen - lo) / (hi - lo)
        out = np.where(wavelen > orig / lo, inv / f, inv)
        mid = (wavelen >= orig / hi) & (wavelen <= orig / lo)
        return np.where(mid, (1 - smooth) * inv / f + smooth * inv, out), 1.0
    if kind == "yarn":
        f, orig = rs["factor"], rs["original_max_position_embeddings"]
        bf, bs = rs.get("beta_fast", 32.0), rs.get("beta_slow", 1.0)

        def corr_dim(n_rot):
            return (D * np.log(orig / (n_rot * 2 * np.pi))) / (2 * np.log(theta))

        low = max(np.floor(corr_dim(bf)), 0)
        high = min(np.ceil(corr_dim(bs)), D - 1)
        if low == high:
            high += 0.001
        ramp = np.clip((np.arange(D // 2, dtype=np.float64) - low) / (high - low), 0, 1)
        extrap = 1 - ramp
        return (inv / f) * (1 - extrap) + inv * extrap, 0.1 * np.log(f) + 1.0
    return inv, 1.0


def forward(cfg, w, ids):
    E, L = cfg["hidden_size"], cfg["num_hidden_layers"]
    H = cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads", H)
    D = cfg.get("head_dim") or E // H
    eps, theta = cfg["rms_norm_eps"], cfg.get("rope_theta", 10000.0)
    arch = cfg["architectures"][0]
    T = len(ids)
    x = w["model.embed_tokens.weight"][ids]
    inv, mscale = rope_inv_freq(cfg, D, theta)
    ang = np.arange(T)[:, None] * inv[None, :]
    emb = np.concatenate([ang, ang], axis=-1)
    cos, sin = mscale * np.cos(emb)[:, None, :], mscale * np.sin(emb)[:, None, :]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for l in range(L):
        p = f"model.layers.{l}."
        h = rmsnorm(x, w[p + "input_layernorm.weight"], eps)

        def proj(n):
            y = h @ w[p + f"self_attn.{n}_proj.weight"].T
            if p + f"self_attn.{n}_proj.bias" in w:
                y = y + w[p + f"self_attn.{n}_proj.bias"]
            return y

        q = proj("q").reshape(T, H, D)
        k = proj("k").reshape(T, KV, D)
        v = proj("v").reshape(T, KV, D)
        if arch == "Qwen3ForCausalLM":
            q = rmsnorm(q, w[p + "self_attn.q_norm.weight"], eps)
            k = rmsnorm(k, w[p + "self_attn.k_norm.weight"], eps)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        out = np.zeros((T, H, D))
        for hh in range(H):
            kh = hh // (H // KV)
            s = q[:, hh, :] @ k[:, kh, :].T / np.sqrt(D) + mask
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            s /= s.sum(axis=-1, keepdims=True)
            out[:, hh, :] = s @ v[:, kh, :]
        x = x + out.reshape(T, H * D) @ w[p + "self_attn.o_proj.weight"].T
        h = rmsnorm(x, w[p + "post_attention_layernorm.weight"], eps)
        g = h @ w[p + "mlp.gate_proj.weight"].T
        u = h @ w[p + "mlp.up_proj.weight"].T
        x = x + ((g / (1.0 + np.exp(-g))) * u) @ w[p + "mlp.down_proj.weight"].T
    x = rmsnorm(x, w["model.norm.weight"], eps)
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return x @ head.T


def check(d, gguf, tol):
    from llama_cpp import Llama

    cfg = json.loads((Path(d) / "config.json").read_text())
    w = read_safetensors(d)
    llm = Llama(model_path=str(gguf), n_ctx=64, logits_all=True, n_threads=2, verbose=False, type_k=0, type_v=0)
    rng = np.random.default_rng(7)
    worst = 0.0
    for n in (1, 5, 17):
        ids = [int(i) for i in rng.integers(0, 266, n)]
        ref = forward(cfg, w, ids)
        llm.reset()
        llm.eval(ids)
        got = np.array(llm.scores[:n], dtype=np.float64)
        assert got.shape == ref.shape, (got.shape, ref.shape)
        rel = np.abs(got - ref).max() / np.abs(ref).max()
        worst = max(worst, rel)
    print(f"max_rel_err {worst:.3e}")
    sys.exit(0 if worst <= tol else 1)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "make":
        d, arch, seed = sys.argv[2], sys.argv[3], int(sys.argv[4])
        rest = sys.argv[5:]
        opt = lambda k, dflt: rest[rest.index(k) + 1] if k in rest else dflt
        make(d, arch, seed, dtype=opt("--dtype", "f32"), shards=int(opt("--shards", "1")),
             tied="--tied" in rest, no_tok="--no-tokenizer" in rest, bias="--bias" in rest,
             rope=opt("--rope", None))
    elif cmd == "check":
        check(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    else:
        raise SystemExit(f"unknown command {cmd}")
