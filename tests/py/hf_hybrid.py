"""MoE and Gated DeltaNet folders: tiny random Hugging Face checkpoints with the real config
field names, and an independent numpy forward pass that follows transformers' modelling code
(models/qwen3_moe, mixtral, qwen3_next, qwen3_5, qwen3_5_moe: softmax top-k routing with
renormalized weights, zero-centred RMS norms (1 + w), gated attention with partial rotary,
causal depthwise conv1d + silu, l2-normed q/k and the recurrent gated delta rule, gated RMS
norm). Runs after hf_model.py's definitions (the test prepends them).

  make-ext DIR KIND SEED [--dtype f32|bf16] [--shards N] [--multimodal] [--no-mtp] [--fused-experts]
        KIND: qwen3moe | mixtral | qwen35 | qwen35moe | qwen3next
  check-ext DIR GGUF TOL [--bf16-norms]
                             prints "max_rel_err X", exits 1 when X > TOL; --bf16-norms: the
                             zero-centred norm weights (1 + w) rounded to bf16, as llama.cpp's
                             converter computes `data_torch + 1` on a bf16 checkpoint
  make-big DIR SEED          a ~1.2 GB BF16 Qwen3.5 folder (hidden 2048, 8 layers, 6 DeltaNet, MTP),
                             written tensor by tensor (for the time and memory measurement)
  drop-ext DIR NAME          rewrites a single-file folder without tensor NAME
  llama-quantize IN OUT FTYPE
"""
BF16_NORMS = False

EXT_ARCHS = {
    "qwen3moe": "Qwen3MoeForCausalLM",
    "mixtral": "MixtralForCausalLM",
    "qwen35": "Qwen3_5ForCausalLM",
    "qwen35moe": "Qwen3_5MoeForCausalLM",
    "qwen3next": "Qwen3NextForCausalLM",
}
HYBRID = ("qwen35", "qwen35moe", "qwen3next")


def ext_config(kind, mtp=True):
    c = {
        "architectures": [EXT_ARCHS[kind]],
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 280,
        "max_position_embeddings": 128,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": False,
        "hidden_act": "silu",
        "bos_token_id": None,
        "eos_token_id": 266,
    }
    if kind == "qwen3moe":
        c.update({"model_type": "qwen3_moe", "head_dim": 32, "intermediate_size": 128, "moe_intermediate_size": 64,
                  "num_experts": 4, "num_experts_per_tok": 2, "norm_topk_prob": True, "rope_theta": 1000000.0,
                  "decoder_sparse_step": 1, "mlp_only_layers": []})
    elif kind == "mixtral":
        c.update({"model_type": "mixtral", "intermediate_size": 64, "num_local_experts": 4, "num_experts_per_tok": 2,
                  "rope_theta": 1000000.0})
    else:
        c.update({"head_dim": 32, "num_hidden_layers": 4, "full_attention_interval": 4,
                  "linear_conv_kernel_dim": 4, "linear_key_head_dim": 16, "linear_value_head_dim": 16,
                  "linear_num_key_heads": 2, "linear_num_value_heads": 4, "attention_bias": False,
                  "layer_types": ["linear_attention"] * 3 + ["full_attention"]})
        if kind == "qwen3next":
            c.update({"model_type": "qwen3_next", "intermediate_size": 128, "partial_rotary_factor": 0.25,
                      "rope_theta": 10000000.0, "num_experts": 4, "num_experts_per_tok": 2, "norm_topk_prob": True,
                      "moe_intermediate_size": 64, "shared_expert_intermediate_size": 64, "decoder_sparse_step": 1,
                      "mlp_only_layers": []})
        else:
            c["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000000.0, "partial_rotary_factor": 0.25,
                                    "mrope_section": [2, 1, 1], "mrope_interleaved": True}
            c["mtp_num_hidden_layers"] = 1 if mtp else 0
            c["model_type"] = "qwen3_5_text" if kind == "qwen35" else "qwen3_5_moe_text"
            if kind == "qwen35":
                c["intermediate_size"] = 128
            else:
                c.update({"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 64,
                          "shared_expert_intermediate_size": 64})
    return c


def ext_weights(cfg, kind, rng):
    E, L, V = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = cfg.get("head_dim", E // H)
    hybrid = kind in HYBRID
    w = {}

    def mat(*shape, scale=None):
        s = scale if scale is not None else 1.0 / np.sqrt(shape[-1])
        return (rng.standard_normal(shape) * s).astype(np.float32)

    def norm(n):
        # zero-centred (1 + w) for the hybrids, plain w otherwise
        return ((0.0 if hybrid else 1.0) + 0.2 * rng.standard_normal(n)).astype(np.float32)

    def mlp(p, F):
        w[p + "gate_proj.weight"] = mat(F, E)
        w[p + "up_proj.weight"] = mat(F, E)
        w[p + "down_proj.weight"] = mat(E, F)

    def ffn(p):
        if kind == "mixtral":
            n = cfg["num_local_experts"]
            w[p + "block_sparse_moe.gate.weight"] = mat(n, E, scale=1.0)
            for x in range(n):
                q = p + f"block_sparse_moe.experts.{x}."
                F = cfg["intermediate_size"]
                w[q + "w1.weight"] = mat(F, E)
                w[q + "w2.weight"] = mat(E, F)
                w[q + "w3.weight"] = mat(F, E)
        elif "num_experts" in cfg:
            n, F = cfg["num_experts"], cfg["moe_intermediate_size"]
            w[p + "mlp.gate.weight"] = mat(n, E, scale=1.0)
            for x in range(n):
                mlp(p + f"mlp.experts.{x}.", F)
            if "shared_expert_intermediate_size" in cfg:
                mlp(p + "mlp.shared_expert.", cfg["shared_expert_intermediate_size"])
                w[p + "mlp.shared_expert_gate.weight"] = mat(1, E)
        else:
            mlp(p + "mlp.", cfg["intermediate_size"])

    def attention(p):
        w[p + "self_attn.q_proj.weight"] = mat(H * D * (2 if hybrid else 1), E)
        w[p + "self_attn.k_proj.weight"] = mat(KV * D, E)
        w[p + "self_attn.v_proj.weight"] = mat(KV * D, E)
        w[p + "self_attn.o_proj.weight"] = mat(E, H * D)
        if kind != "mixtral":
            w[p + "self_attn.q_norm.weight"] = norm(D)
            w[p + "self_attn.k_norm.weight"] = norm(D)

    def layer(p, linear):
        w[p + "input_layernorm.weight"] = norm(E)
        if linear:
            nk, nv = cfg["linear_num_key_heads"], cfg["linear_num_value_heads"]
            dk, dv, K = cfg["linear_key_head_dim"], cfg["linear_value_head_dim"], cfg["linear_conv_kernel_dim"]
            a = p + "linear_attn."
            if kind == "qwen3next":
                w[a + "in_proj_qkvz.weight"] = mat(2 * nk * dk + 2 * nv * dv, E)
                w[a + "in_proj_ba.weight"] = mat(2 * nv, E)
            else:
                w[a + "in_proj_qkv.weight"] = mat(2 * nk * dk + nv * dv, E)
                w[a + "in_proj_z.weight"] = mat(nv * dv, E)
                w[a + "in_proj_b.weight"] = mat(nv, E)
                w[a + "in_proj_a.weight"] = mat(nv, E)
            w[a + "conv1d.weight"] = mat(2 * nk * dk + nv * dv, 1, K, scale=0.5)
            w[a + "dt_bias"] = mat(nv, scale=0.5)
            w[a + "A_log"] = np.log(rng.uniform(0.5, 4.0, nv)).astype(np.float32)
            w[a + "norm.weight"] = (1.0 + 0.2 * rng.standard_normal(dv)).astype(np.float32)
            w[a + "out_proj.weight"] = mat(E, nv * dv)
        else:
            attention(p)
        w[p + "post_attention_layernorm.weight"] = norm(E)
        ffn(p)

    w["model.embed_tokens.weight"] = mat(V, E, scale=1.0)
    for l in range(L):
        linear = hybrid and (l + 1) % cfg["full_attention_interval"] != 0
        layer(f"model.layers.{l}.", linear)
    w["model.norm.weight"] = norm(E)
    w["lm_head.weight"] = mat(V, E)
    for m in range(cfg.get("mtp_num_hidden_layers", 0)):
        layer(f"mtp.layers.{m}.", False)
        w["mtp.fc.weight"] = mat(E, 2 * E)
        w["mtp.pre_fc_norm_embedding.weight"] = norm(E)
        w["mtp.pre_fc_norm_hidden.weight"] = norm(E)
        w["mtp.norm.weight"] = norm(E)
    return w


def make_ext(d, kind, seed, dtype="f32", shards=1, multimodal=False, mtp=True, fused=False):
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    cfg = ext_config(kind, mtp)
    rng = np.random.default_rng(seed)
    w = ext_weights(cfg, kind, rng)
    if multimodal:
        # Qwen3.5's image-text checkpoint: language model under model.language_model., a vision
        # tower beside it, the text keys in text_config
        arch = {"qwen35": "Qwen3_5ForConditionalGeneration", "qwen35moe": "Qwen3_5MoeForConditionalGeneration"}[kind]
        text = dict(cfg)
        text.pop("architectures")
        cfg = {"architectures": [arch], "model_type": "qwen3_5" if kind == "qwen35" else "qwen3_5_moe",
               "text_config": text, "vision_config": {"depth": 1, "hidden_size": 32, "num_heads": 2},
               "tie_word_embeddings": False, "image_token_id": 270}
        w = {(("model.language_model." + k[len("model."):]) if k.startswith("model.") else k): v for k, v in w.items()}
        w["model.visual.blocks.0.attn.qkv.weight"] = (rng.standard_normal((96, 32)) * 0.1).astype(np.float32)
        w["model.visual.blocks.0.norm1.weight"] = np.ones(32, dtype=np.float32)
        w["model.visual.merger.linear_fc1.weight"] = (rng.standard_normal((64, 32)) * 0.1).astype(np.float32)
    if fused:
        # transformers 5 layout: one gate_up_proj [n, 2F, E] and one down_proj [n, E, F] per layer
        n = cfg.get("num_experts", 0)
        for l in range(cfg["num_hidden_layers"] + cfg.get("mtp_num_hidden_layers", 0)):
            p = f"model.layers.{l}.mlp.experts." if l < cfg["num_hidden_layers"] else f"mtp.layers.{l - cfg['num_hidden_layers']}.mlp.experts."
            g = [w.pop(p + f"{x}.gate_proj.weight") for x in range(n)]
            u = [w.pop(p + f"{x}.up_proj.weight") for x in range(n)]
            dn = [w.pop(p + f"{x}.down_proj.weight") for x in range(n)]
            w[p + "gate_up_proj"] = np.stack([np.concatenate([a, b]) for a, b in zip(g, u)])
            w[p + "down_proj"] = np.stack(dn)
    (d / "config.json").write_text(json.dumps(cfg, indent=1))
    tokenizer_files(d)
    items = []
    for name, a in w.items():
        if dtype == "bf16" and not name.endswith("A_log"):
            items.append((name, "BF16", a.shape, to_bf16(a).tobytes()))
        else:
            items.append((name, "F32", a.shape, a.astype(np.float32).tobytes()))
    per = (len(items) + shards - 1) // shards
    if shards == 1:
        write_safetensors(d / "model.safetensors", items)
        return
    wm, total = {}, 0
    for s in range(shards):
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = items[s * per:(s + 1) * per]
        write_safetensors(d / fname, part)
        for name, _, _, raw in part:
            wm[name] = fname
            total += len(raw)
    (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": wm}))


def text_cfg(d):
    cfg = json.loads((Path(d) / "config.json").read_text())
    arch = cfg["architectures"][0]
    if "text_config" in cfg:
        cfg = {**cfg, **cfg["text_config"]}
    cfg["architectures"] = [arch]
    return cfg


def text_weights(d):
    w = read_safetensors(d)
    w = {("model." + k[len("model.language_model."):]) if k.startswith("model.language_model.") else k: v
         for k, v in w.items()}
    for k in [k for k in w if k.endswith("mlp.experts.gate_up_proj")]:
        p = k[:-len("gate_up_proj")]
        gu, dn = w.pop(k), w.pop(p + "down_proj")
        F = gu.shape[1] // 2
        for x in range(gu.shape[0]):
            w[p + f"{x}.gate_proj.weight"] = gu[x, :F]
            w[p + f"{x}.up_proj.weight"] = gu[x, F:]
            w[p + f"{x}.down_proj.weight"] = dn[x]
    return w


def kind_of(cfg):
    a = cfg["architectures"][0]
    for k, v in EXT_ARCHS.items():
        if v == a:
            return k
    return {"Qwen3_5ForConditionalGeneration": "qwen35", "Qwen3_5MoeForConditionalGeneration": "qwen35moe"}[a]


def silu(x):
    return x / (1.0 + np.exp(-x))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softplus(x):
    return np.log1p(np.exp(x))


def zc_norm(x, w, eps):
    """Qwen3-Next / Qwen3.5 RMSNorm: x * rsqrt(mean(x^2) + eps) * (1 + w)."""
    g = 1.0 + w
    if BF16_NORMS:
        g = bf16_to_f32(to_bf16(g.astype(np.float32))).astype(np.float64)
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * g


def moe_block(cfg, kind, w, p, h):
    def expert(q, x):
        if kind == "mixtral":
            return (silu(x @ w[q + "w1.weight"].T) * (x @ w[q + "w3.weight"].T)) @ w[q + "w2.weight"].T
        return (silu(x @ w[q + "gate_proj.weight"].T) * (x @ w[q + "up_proj.weight"].T)) @ w[q + "down_proj.weight"].T

    if kind == "mixtral":
        router, pre, n = w[p + "block_sparse_moe.gate.weight"], p + "block_sparse_moe.experts.", cfg["num_local_experts"]
    elif "num_experts" in cfg:
        router, pre, n = w[p + "mlp.gate.weight"], p + "mlp.experts.", cfg["num_experts"]
    else:
        return expert(p + "mlp.", h)
    k = cfg["num_experts_per_tok"]
    logits = h @ router.T
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    out = np.zeros_like(h)
    for t in range(h.shape[0]):
        top = np.argsort(-probs[t], kind="stable")[:k]
        wt = probs[t, top]
        if kind in ("mixtral", "qwen35moe") or cfg.get("norm_topk_prob", False):
            wt = wt / wt.sum()
        for e, g in zip(top, wt):
            out[t] += g * expert(pre + f"{e}.", h[t:t + 1])[0]
    if p + "mlp.shared_expert_gate.weight" in w:
        out += sigmoid(h @ w[p + "mlp.shared_expert_gate.weight"].T) * expert(p + "mlp.shared_expert.", h)
    return out


def ext_attention(cfg, kind, w, p, h, T):
    E, H = cfg["hidden_size"], cfg["num_attention_heads"]
    KV = cfg["num_key_value_heads"]
    D = cfg.get("head_dim") or E // H
    eps = cfg["rms_norm_eps"]
    hybrid = kind in HYBRID
    rp = cfg.get("rope_parameters") or {}
    theta = rp.get("rope_theta", cfg.get("rope_theta", 10000.0))
    partial = cfg.get("partial_rotary_factor", rp.get("partial_rotary_factor", 1.0)) if hybrid else 1.0
    R = int(D * partial)
    inv = 1.0 / (theta ** (np.arange(0, R, 2, dtype=np.float64) / R))
    ang = np.arange(T)[:, None] * inv[None, :]
    emb = np.concatenate([ang, ang], axis=-1)
    cos, sin = np.cos(emb)[:, None, :], np.sin(emb)[:, None, :]
    q = h @ w[p + "self_attn.q_proj.weight"].T
    if hybrid:
        q = q.reshape(T, H, 2 * D)
        q, gate = q[..., :D], q[..., D:].reshape(T, H * D)
    else:
        q = q.reshape(T, H, D)
    k = (h @ w[p + "self_attn.k_proj.weight"].T).reshape(T, KV, D)
    v = (h @ w[p + "self_attn.v_proj.weight"].T).reshape(T, KV, D)
    if kind != "mixtral":
        nf = zc_norm if hybrid else rmsnorm
        q = nf(q, w[p + "self_attn.q_norm.weight"], eps)
        k = nf(k, w[p + "self_attn.k_norm.weight"], eps)

    def rope(x):
        xr, xp = x[..., :R], x[..., R:]
        return np.concatenate([xr * cos + rotate_half(xr) * sin, xp], axis=-1)

    q, k = rope(q), rope(k)
    mask = np.triu(np.full((T, T), -np.inf), 1)
    out = np.zeros((T, H, D))
    for hh in range(H):
        kh = hh // (H // KV)
        s = q[:, hh, :] @ k[:, kh, :].T / np.sqrt(D) + mask
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        s /= s.sum(axis=-1, keepdims=True)
        out[:, hh, :] = s @ v[:, kh, :]
    out = out.reshape(T, H * D)
    if hybrid:
        out = out * sigmoid(gate)
    return out @ w[p + "self_attn.o_proj.weight"].T


def gated_delta_net(cfg, kind, w, p, h, T):
    """Qwen3_5GatedDeltaNet / Qwen3NextGatedDeltaNet.forward without a cache, with
    torch_recurrent_gated_delta_rule (the chunked rule computes the same function)."""
    nk, nv = cfg["linear_num_key_heads"], cfg["linear_num_value_heads"]
    dk, dv, K = cfg["linear_key_head_dim"], cfg["linear_value_head_dim"], cfg["linear_conv_kernel_dim"]
    r = nv // nk
    a_ = p + "linear_attn."
    if kind == "qwen3next":
        qkvz = (h @ w[a_ + "in_proj_qkvz.weight"].T).reshape(T, nk, 2 * dk + 2 * r * dv)
        ba = (h @ w[a_ + "in_proj_ba.weight"].T).reshape(T, nk, 2 * r)
        q, k = qkvz[..., :dk], qkvz[..., dk:2 * dk]
        v, z = qkvz[..., 2 * dk:2 * dk + r * dv], qkvz[..., 2 * dk + r * dv:]
        b, a = ba[..., :r].reshape(T, nv), ba[..., r:].reshape(T, nv)
        z = z.reshape(T, nv, dv)
        mixed = np.concatenate([q.reshape(T, -1), k.reshape(T, -1), v.reshape(T, -1)], axis=-1)
    else:
        mixed = h @ w[a_ + "in_proj_qkv.weight"].T
        z = (h @ w[a_ + "in_proj_z.weight"].T).reshape(T, nv, dv)
        b = h @ w[a_ + "in_proj_b.weight"].T
        a = h @ w[a_ + "in_proj_a.weight"].T
    cw = w[a_ + "conv1d.weight"][:, 0, :]  # (C, K)
    pad = np.concatenate([np.zeros((K - 1, mixed.shape[1])), mixed], axis=0)
    conv = np.stack([(pad[t:t + K] * cw.T).sum(axis=0) for t in range(T)])
    conv = silu(conv)
    q = conv[:, :nk * dk].reshape(T, nk, dk)
    k = conv[:, nk * dk:2 * nk * dk].reshape(T, nk, dk)
    v = conv[:, 2 * nk * dk:].reshape(T, nv, dv)
    beta = sigmoid(b)
    g = -np.exp(w[a_ + "A_log"]) * softplus(a + w[a_ + "dt_bias"])
    q = np.repeat(q, r, axis=1)
    k = np.repeat(k, r, axis=1)
    q = q / np.sqrt((q * q).sum(-1, keepdims=True) + 1e-6)
    k = k / np.sqrt((k * k).sum(-1, keepdims=True) + 1e-6)
    q = q / np.sqrt(dk)
    S = np.zeros((nv, dk, dv))
    o = np.zeros((T, nv, dv))
    for t in range(T):
        S = S * np.exp(g[t])[:, None, None]
        kv_mem = (S * k[t][:, :, None]).sum(axis=-2)
        delta = (v[t] - kv_mem) * beta[t][:, None]
        S = S + k[t][:, :, None] * delta[:, None, :]
        o[t] = (S * q[t][:, :, None]).sum(axis=-2)
    o = o / np.sqrt(np.mean(o * o, axis=-1, keepdims=True) + cfg["rms_norm_eps"])
    o = o * w[a_ + "norm.weight"] * silu(z)
    return o.reshape(T, nv * dv) @ w[a_ + "out_proj.weight"].T


def ext_forward(cfg, w, ids):
    kind = kind_of(cfg)
    hybrid = kind in HYBRID
    eps = cfg["rms_norm_eps"]
    nf = zc_norm if hybrid else rmsnorm
    T = len(ids)
    x = w["model.embed_tokens.weight"][ids]
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = nf(x, w[p + "input_layernorm.weight"], eps)
        if hybrid and (l + 1) % cfg.get("full_attention_interval", 4) != 0:
            x = x + gated_delta_net(cfg, kind, w, p, h, T)
        else:
            x = x + ext_attention(cfg, kind, w, p, h, T)
        h = nf(x, w[p + "post_attention_layernorm.weight"], eps)
        x = x + moe_block(cfg, kind, w, p, h)
    x = nf(x, w["model.norm.weight"], eps)
    return x @ w["lm_head.weight"].T


def check_ext(d, gguf_path, tol):
    from llama_cpp import Llama

    cfg = text_cfg(d)
    w = text_weights(d)
    llm = Llama(model_path=str(gguf_path), n_ctx=64, logits_all=True, n_threads=2, verbose=False, type_k=0, type_v=0)
    rng = np.random.default_rng(7)
    worst = 0.0
    for n in (1, 5, 17):
        ids = [int(i) for i in rng.integers(0, 266, n)]
        ref = ext_forward(cfg, w, ids)
        llm.reset()
        llm.eval(ids)
        got = np.array(llm.scores[:n], dtype=np.float64)
        assert got.shape == ref.shape, (got.shape, ref.shape)
        rel = np.abs(got - ref).max() / np.abs(ref).max()
        worst = max(worst, rel)
    print(f"max_rel_err {worst:.3e}")
    sys.exit(0 if worst <= tol else 1)


def make_big(d, seed):
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    cfg = ext_config("qwen35")
    cfg.update({"hidden_size": 2048, "num_hidden_layers": 8, "num_attention_heads": 16, "num_key_value_heads": 4,
                "head_dim": 128, "intermediate_size": 6144, "vocab_size": 32000, "linear_num_key_heads": 8,
                "linear_num_value_heads": 16, "linear_key_head_dim": 128, "linear_value_head_dim": 128,
                "layer_types": (["linear_attention"] * 3 + ["full_attention"]) * 2, "max_position_embeddings": 4096})
    cfg["rope_parameters"]["mrope_section"] = [11, 11, 10]
    (d / "config.json").write_text(json.dumps(cfg, indent=1))
    tokenizer_files(d)
    # shapes only: the same names as ext_weights, values drawn while writing
    shapes = {}

    class Shapes:
        def standard_normal(self, shape):
            return np.zeros(shape, dtype=np.float32)

        def uniform(self, lo, hi, n):
            return np.ones(n)

    for k, v in ext_weights(cfg, "qwen35", Shapes()).items():
        shapes[k] = v.shape
    rng = np.random.default_rng(seed)
    header = {"__metadata__": {"format": "pt"}}
    off = 0
    for k, sh in shapes.items():
        n = int(np.prod(sh)) * 2
        header[k] = {"dtype": "BF16", "shape": list(sh), "data_offsets": [off, off + n]}
        off += n
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(d / "model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for k, sh in shapes.items():
            a = rng.standard_normal(sh, dtype=np.float32) * np.float32(0.02)
            if k.endswith("A_log"):
                a = np.log(rng.uniform(0.5, 4.0, sh)).astype(np.float32)
            f.write(to_bf16(a).tobytes())
    print(off)


if __name__ == "__main__":
    cmd = sys.argv[1]
    rest = sys.argv[2:]
    opt = lambda k, dflt: rest[rest.index(k) + 1] if k in rest else dflt
    if cmd == "make-ext":
        make_ext(rest[0], rest[1], int(rest[2]), dtype=opt("--dtype", "f32"), shards=int(opt("--shards", "1")),
                 multimodal="--multimodal" in rest, mtp="--no-mtp" not in rest, fused="--fused-experts" in rest)
    elif cmd == "check-ext":
        BF16_NORMS = "--bf16-norms" in rest
        check_ext(rest[0], rest[1], float(rest[2]))
    elif cmd == "make-big":
        make_big(rest[0], int(rest[1]))
    elif cmd == "drop-ext":
        raw = Path(rest[0], "model.safetensors").read_bytes()
        n = struct.unpack("<Q", raw[:8])[0]
        h = json.loads(raw[8:8 + n])
        items = [(k, e["dtype"], e["shape"], raw[8 + n + e["data_offsets"][0]:8 + n + e["data_offsets"][1]])
                 for k, e in h.items() if k != "__metadata__" and k != rest[1]]
        assert len(items) == len(h) - 2, "no such tensor"
        write_safetensors(Path(rest[0], "model.safetensors"), items)
    elif cmd == "llama-quantize":
        llama_quantize(rest[0], rest[1], int(rest[2]))
    else:
        raise SystemExit(f"unknown command {cmd}")
