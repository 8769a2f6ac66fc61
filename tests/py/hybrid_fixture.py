"""Tiny hybrid GGUF models (Gated DeltaNet + attention + an MTP block) with the tensor names,
shapes and metadata keys llama.cpp's loader requires (src/models/qwen35.cpp, qwen35moe.cpp,
qwen3next.cpp), and the same weights in the layout of Ollama's published qwen35/qwen3next GGUFs
(what ollama's llama/compat/llama-ollama-compat.cpp patches at load time).

  python3 hybrid_fixture.py make OUT.gguf --arch qwen35|qwen35moe|qwen3next --layers 8 --seed 1
        [--dtype f16|bf16|f32] [--tied] [--experts 8] [--ollama] [--no-mtp]
  python3 hybrid_fixture.py logits MODEL.gguf [--tokens 1,5,9]   # JSON: llama.cpp's F32 logits
  python3 hybrid_fixture.py header OUT.gguf --layers 64 --embd 5120 --ff 17408 ...  # header only

--ollama writes the same model as the Ollama legacy form: block_count without the MTP block,
attention.head_count_kv as a per-layer array (0 for linear-attention layers),
rope.dimension_sections with 3 entries (plus rope.mrope_section, mrope_sections,
rope.mrope_interleaved), ssm.v_head_reordered, the MTP block as mtp.* tensors (its norms stored
without llama.cpp's +1; MoE experts one 2-D tensor per expert), `blk.N.ssm_dt` without `.bias`,
and an embedded vision tower (v.*, mm.* tensors, vision keys). Tensor values are equal to the
native file's, so a correct fix gives the native file's tensors byte for byte.
"""
import argparse
import json
import sys

import numpy as np
import gguf


class Shapes:
    def __init__(self, a):
        self.arch = a.arch
        self.embd = a.embd
        self.n_head, self.n_head_kv, self.head_dim = a.heads, a.heads_kv, a.head_dim
        self.ff = a.ff
        self.layers = a.layers
        self.interval = 4
        self.d_conv = 4
        self.d_state = a.d_state          # head_k_dim = head_v_dim
        self.n_group = a.k_heads          # linear key heads
        self.dt_rank = a.v_heads          # linear value heads
        self.key_dim = self.d_state * self.n_group
        self.value_dim = self.d_state * self.dt_rank
        self.conv_dim = 2 * self.key_dim + self.value_dim
        self.moe = a.arch in ("qwen35moe", "qwen3next")
        self.experts = a.experts if self.moe else 0
        self.ff_exp = a.ff_exp
        self.ff_shexp = a.ff_shexp
        self.vocab = a.vocab
        self.mtp = not a.no_mtp
        self.tied = a.tied

    def recurrent(self, il):
        return il < self.layers and (il + 1) % self.interval != 0


class Spec:
    """A tensor's numpy shape without data (for header-only files)."""

    def __init__(self, shape):
        self.shape = tuple(shape)
        self.ndim = len(self.shape)


def tensors(s, rng):
    """(name, values, kind) in the order llama.cpp's converter writes them: values a float32
    numpy array in ggml row order (or a Spec when rng is None); kind: 'norm' (stored F32 with
    llama.cpp's +1), 'vec' (other F32 1-D), 'conv' / 'f32' (2-D kept F32), 'mat'."""
    out = []

    def mat(ne0, ne1, scale=0.05, ne2=None):
        shape = (ne1, ne0) if ne2 is None else (ne2, ne1, ne0)
        if rng is None:
            return Spec(shape)
        x = rng.standard_normal(shape).astype(np.float32) * scale
        x[..., rng.integers(0, ne0, size=max(1, ne0 // 64))] *= 8.0
        x.flat[rng.integers(0, x.size, size=max(1, x.size // 5000))] *= 30.0
        return x

    def vec(n, scale, offset=0.0, fn=None):
        if rng is None:
            return Spec((n,))
        x = (scale * rng.standard_normal(n)).astype(np.float32)
        return (fn(x) if fn else x + np.float32(offset)).astype(np.float32)

    def norm(n):
        return vec(n, 0.1)  # stored +1 in llama.cpp's layout

    def add(name, arr, kind="mat"):
        out.append((name, arr, kind))

    add("token_embd.weight", mat(s.embd, s.vocab, 0.02))
    hd = s.head_dim
    n_layers_all = s.layers + (1 if s.mtp else 0)
    for il in range(n_layers_all):
        p = f"blk.{il}."
        add(p + "attn_norm.weight", norm(s.embd), "norm")
        add(p + "post_attention_norm.weight", norm(s.embd), "norm")
        if not s.recurrent(il):
            add(p + "attn_q.weight", mat(s.embd, hd * s.n_head * 2))
            add(p + "attn_k.weight", mat(s.embd, hd * s.n_head_kv))
            add(p + "attn_v.weight", mat(s.embd, hd * s.n_head_kv))
            add(p + "attn_output.weight", mat(hd * s.n_head, s.embd))
            add(p + "attn_q_norm.weight", norm(hd), "norm")
            add(p + "attn_k_norm.weight", norm(hd), "norm")
        else:
            add(p + "attn_qkv.weight", mat(s.embd, s.conv_dim))
            add(p + "attn_gate.weight", mat(s.embd, s.value_dim))
            add(p + "ssm_conv1d.weight", mat(s.d_conv, s.conv_dim, 0.3), "conv")
            add(p + "ssm_dt.bias", vec(s.dt_rank, 0.5), "vec")
            add(p + "ssm_a", vec(s.dt_rank, 0.3, fn=lambda x: -np.exp(x)), "vec")
            if s.arch == "qwen3next":
                add(p + "ssm_ba.weight", mat(s.embd, 2 * s.dt_rank))
            else:
                add(p + "ssm_beta.weight", mat(s.embd, s.dt_rank))
                add(p + "ssm_alpha.weight", mat(s.embd, s.dt_rank))
            add(p + "ssm_norm.weight", vec(s.d_state, 0.1, 1.0), "vec")
            add(p + "ssm_out.weight", mat(s.value_dim, s.embd))
        if s.moe:
            add(p + "ffn_gate_inp.weight", mat(s.embd, s.experts), "f32")
            add(p + "ffn_down_exps.weight", mat(s.ff_exp, s.embd, 0.05, s.experts))
            add(p + "ffn_gate_exps.weight", mat(s.embd, s.ff_exp, 0.05, s.experts))
            add(p + "ffn_up_exps.weight", mat(s.embd, s.ff_exp, 0.05, s.experts))
            add(p + "ffn_gate_inp_shexp.weight", vec(s.embd, 0.05), "vec")
            add(p + "ffn_gate_shexp.weight", mat(s.embd, s.ff_shexp))
            add(p + "ffn_up_shexp.weight", mat(s.embd, s.ff_shexp))
            add(p + "ffn_down_shexp.weight", mat(s.ff_shexp, s.embd))
        else:
            add(p + "ffn_gate.weight", mat(s.embd, s.ff))
            add(p + "ffn_up.weight", mat(s.embd, s.ff))
            add(p + "ffn_down.weight", mat(s.ff, s.embd))
        if il == s.layers:
            add(p + "nextn.eh_proj.weight", mat(2 * s.embd, s.embd))
            add(p + "nextn.enorm.weight", norm(s.embd), "norm")
            add(p + "nextn.hnorm.weight", norm(s.embd), "norm")
            add(p + "nextn.shared_head_norm.weight", norm(s.embd), "norm")
    add("output_norm.weight", norm(s.embd), "norm")
    if not s.tied:
        out.insert(1, ("output.weight", mat(s.embd, s.vocab, 0.02), "mat"))
    return out


def store(w, name, arr, kind, dtype):
    # as convert_hf_to_gguf.py: 1-D tensors, ssm_conv1d and the router stay F32
    if kind in ("norm", "vec", "conv", "f32") or dtype == "f32" or arr.ndim == 1:
        w.add_tensor(name, arr.astype(np.float32))
    elif dtype == "f16":
        w.add_tensor(name, arr.astype(np.float16))
    else:
        raw = gguf.quants.quantize(arr.astype(np.float32), gguf.GGMLQuantizationType.BF16)
        w.add_tensor(name, raw, raw_dtype=gguf.GGMLQuantizationType.BF16)


def add_vocab(w, n):
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen35")
    w.add_token_list([f"t{i}" for i in range(n)])
    w.add_token_types([1] * n)
    w.add_token_merges(["t 1"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)


def make(a):
    s = Shapes(a)
    rng = np.random.default_rng(a.seed)
    ts = [] if a.header_only else tensors(s, rng)
    arch = s.arch
    w = gguf.GGUFWriter(a.out, arch)
    n_all = s.layers + (1 if s.mtp else 0)
    ollama = a.ollama
    # Ollama's qwen3next files differ only in ssm_dt and head_count_kv; qwen35/qwen35moe also
    # carry the MTP block as mtp.* tensors outside block_count
    ollama_mtp = ollama and arch != "qwen3next" and s.mtp
    k = lambda suffix: f"{arch}.{suffix}"
    w.add_uint32(k("context_length"), 256)
    w.add_uint32(k("embedding_length"), s.embd)
    w.add_uint32(k("block_count"), s.layers if ollama_mtp else n_all)
    if s.moe:
        w.add_uint32(k("expert_count"), s.experts)
        w.add_uint32(k("expert_used_count"), 2)
        w.add_uint32(k("expert_feed_forward_length"), s.ff_exp)
        w.add_uint32(k("expert_shared_feed_forward_length"), s.ff_shexp)
        if ollama:
            w.add_uint32(k("feed_forward_length"), s.ff)
    else:
        w.add_uint32(k("feed_forward_length"), s.ff)
    w.add_uint32(k("attention.head_count"), s.n_head)
    if ollama:
        kv = [0 if s.recurrent(i) else s.n_head_kv for i in range(s.layers if ollama_mtp else n_all)]
        w.add_array(k("attention.head_count_kv"), kv)
    else:
        w.add_uint32(k("attention.head_count_kv"), s.n_head_kv)
    w.add_uint32(k("attention.key_length"), s.head_dim)
    w.add_uint32(k("attention.value_length"), s.head_dim)
    w.add_float32(k("attention.layer_norm_rms_epsilon"), 1e-6)
    w.add_float32(k("rope.freq_base"), 10000000.0)
    rope_dim = s.head_dim // 4
    w.add_uint32(k("rope.dimension_count"), rope_dim)
    if arch != "qwen3next":
        sections = [rope_dim // 2 - 2 * (rope_dim // 6), rope_dim // 6, rope_dim // 6]
        if ollama:
            w.add_array(k("mrope_sections"), sections)
            w.add_array(k("rope.mrope_section"), sections)
            w.add_array(k("rope.dimension_sections"), sections)
            w.add_bool(k("rope.mrope_interleaved"), True)
        else:
            w.add_array(k("rope.dimension_sections"), sections + [0])
    w.add_uint32(k("ssm.conv_kernel"), s.d_conv)
    w.add_uint32(k("ssm.inner_size"), s.value_dim)
    w.add_uint32(k("ssm.state_size"), s.d_state)
    w.add_uint32(k("ssm.group_count"), s.n_group)
    w.add_uint32(k("ssm.time_step_rank"), s.dt_rank)
    if ollama and arch != "qwen3next":
        w.add_bool(k("ssm.v_head_reordered"), True)
    w.add_uint32(k("full_attention_interval"), s.interval)
    if s.mtp and not ollama_mtp:
        w.add_uint32(k("nextn_predict_layers"), 1)
    if ollama and arch != "qwen3next":
        w.add_uint32(k("vision.block_count"), 1)
        w.add_uint32(k("vision.embedding_length"), 64)
        w.add_uint32(k("vision.attention.head_count"), 2)
        w.add_array(k("vision.image_mean"), [0.5, 0.5, 0.5])
        w.add_uint32(k("image_token_id"), s.vocab - 3)
        w.add_uint32(k("vision_start_token_id"), s.vocab - 2)
        w.add_uint32(k("vision_end_token_id"), s.vocab - 1)
    w.add_file_type({"f32": 0, "f16": 1, "bf16": 32}[a.dtype])
    add_vocab(w, s.vocab)

    for name, arr, kind in ts:
        stored = arr + np.float32(1.0) if kind == "norm" else arr
        if not ollama:
            store(w, name, stored, kind, a.dtype)
            continue
        # the Ollama legacy layout of the same values
        layer = int(name.split(".")[1]) if name.startswith("blk.") else -1
        if name.endswith(".ssm_dt.bias") and arch in ("qwen35", "qwen35moe", "qwen3next"):
            store(w, name[: -len(".bias")], stored, kind, a.dtype)
            continue
        if layer == s.layers and ollama_mtp:
            suffix = name.split(".", 2)[2]
            top = {"nextn.eh_proj.weight": "mtp.fc.weight",
                   "nextn.enorm.weight": "mtp.pre_fc_norm_embedding.weight",
                   "nextn.hnorm.weight": "mtp.pre_fc_norm_hidden.weight",
                   "nextn.shared_head_norm.weight": "mtp.norm.weight"}
            # Ollama's MTP norms are stored without llama.cpp's +1 (the patcher adds it)
            val = arr if kind == "norm" else stored
            if suffix in top:
                store(w, top[suffix], val, kind, a.dtype)
            elif arch == "qwen35moe" and suffix.startswith("ffn_") and "_exps" in suffix:
                hf = {"ffn_gate_exps.weight": "gate_proj.weight", "ffn_up_exps.weight": "up_proj.weight",
                      "ffn_down_exps.weight": "down_proj.weight"}[suffix]
                for e in range(arr.shape[0]):
                    store(w, f"mtp.layers.0.mlp.experts.{e}.{hf}", val[e], kind, a.dtype)
            else:
                store(w, f"mtp.layers.0.{suffix}", val, kind, a.dtype)
            continue
        store(w, name, stored, kind, a.dtype)
    if ollama and arch != "qwen3next":
        vr = np.random.default_rng(a.seed + 1000)
        for name, shape in [("v.patch_embd.weight", (64, 48)), ("v.blk.0.attn_q.weight", (64, 64)),
                            ("v.blk.0.ln1.weight", (64,)), ("mm.0.weight", (64, 256)),
                            ("mm.2.weight", (s.embd, 64))]:
            x = (0.05 * vr.standard_normal(shape)).astype(np.float32)
            store(w, name, x, "vec" if len(shape) == 1 else "mat", a.dtype)
    if a.header_only:
        dt = {"f32": np.float32, "f16": np.float16, "bf16": np.float16}[a.dtype]
        total = 0
        for name, spec, kind in tensors(s, None):
            f32 = kind in ("norm", "vec", "conv", "f32") or spec.ndim == 1 or a.dtype == "f32"
            n = int(np.prod(spec.shape))
            nbytes = n * (4 if f32 else 2)
            raw = None if f32 or a.dtype != "bf16" else gguf.GGMLQuantizationType.BF16
            w.add_tensor_info(name, spec.shape, np.dtype(np.float32 if f32 else dt), nbytes, raw_dtype=raw)
            total += (nbytes + 31) // 32 * 32
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_ti_data_to_file()
        w.close()
        with open(a.out, "r+b") as f:
            f.seek(0, 2)
            start = (f.tell() + 31) // 32 * 32
            f.truncate(start + total)
        return
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def logits(a):
    from llama_cpp import Llama

    llm = Llama(model_path=a.model, n_ctx=64, logits_all=True, n_threads=2, verbose=False,
                type_k=0, type_v=0)
    toks = [int(t) for t in a.tokens.split(",")]
    llm.eval(toks)
    sc = np.array(llm.scores[: len(toks)], dtype=np.float64)
    json.dump({"finite": bool(np.isfinite(sc).all()), "n": int(sc.size),
               "logits": sc.reshape(-1).tolist()}, sys.stdout)


def llama_dry_run(a):
    """llama-quantize --dry-run (llama_model_quantize with dry_run): JSON {tensor: type} from
    its log, and its 'quant size' line."""
    import ctypes, os, re, tempfile
    import llama_cpp

    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = a.ftype
    p.nthread = 2
    p.dry_run = True
    with tempfile.TemporaryFile(mode="w+") as log:
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            rc = llama_cpp.llama_model_quantize(a.model.encode(), (a.model + ".none").encode(), ctypes.byref(p))
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        log.seek(0)
        text = log.read()
    if rc != 0:
        sys.exit(f"llama_model_quantize dry run failed:\n{text[-2000:]}")
    types, size = {}, None
    for line in text.splitlines():
        m = re.match(r"\[\s*\d+/\s*\d+\]\s+(\S+)\s+- \[.*\], type =\s*(\S+), size =.*?(?:\((\w+)\))?\s*$", line.strip())
        if m:
            types[m.group(1)] = (m.group(3) or m.group(2)).upper()
        m = re.search(r"quant size\s*=\s*([0-9.]+) MiB", line)
        if m:
            size = m.group(1)
    json.dump({"types": types, "quant_mib": size}, sys.stdout)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("out")
    m.add_argument("--arch", default="qwen35", choices=["qwen35", "qwen35moe", "qwen3next"])
    m.add_argument("--layers", type=int, default=8)
    m.add_argument("--embd", type=int, default=256)
    m.add_argument("--ff", type=int, default=640)
    m.add_argument("--heads", type=int, default=4)
    m.add_argument("--heads-kv", type=int, default=1)
    m.add_argument("--head-dim", type=int, default=64)
    m.add_argument("--d-state", type=int, default=32)
    m.add_argument("--k-heads", type=int, default=2)
    m.add_argument("--v-heads", type=int, default=4)
    m.add_argument("--experts", type=int, default=8)
    m.add_argument("--ff-exp", type=int, default=256)
    m.add_argument("--ff-shexp", type=int, default=384)
    m.add_argument("--vocab", type=int, default=512)
    m.add_argument("--seed", type=int, default=1)
    m.add_argument("--dtype", default="f16", choices=["f32", "f16", "bf16"])
    m.add_argument("--tied", action="store_true")
    m.add_argument("--ollama", action="store_true")
    m.add_argument("--no-mtp", action="store_true")
    m.add_argument("--header-only", action="store_true",
                   help="tensor infos only; the data section is a hole (truncate), for --dry-run")
    lg = sub.add_parser("logits")
    lg.add_argument("model")
    lg.add_argument("--tokens", default="1,5,9,33,70,2,11")
    dr = sub.add_parser("llama-dry-run")
    dr.add_argument("model")
    dr.add_argument("ftype", type=int)
    a = ap.parse_args()
    {"make": make, "logits": logits, "llama-dry-run": llama_dry_run}[a.cmd](a)


if __name__ == "__main__":
    main()
