"""Small Llama-shaped GGUF models and llama.cpp's own quantizer, for gpuq's equivalence tests.

  python3 llama_fixture.py make OUT.gguf --layers 12 --embd 256 --ff 640 --vocab 512 --seed 1 [--dtype f16|f32|bf16] [--tied]
  python3 llama_fixture.py quantize IN.gguf OUT.gguf FTYPE [--pure] [--threads N]
  python3 llama_fixture.py dump FILE.gguf     # JSON: name -> [type name, shape, sha256 of bytes]
"""
import argparse
import ctypes
import hashlib
import json
import sys

import numpy as np
import gguf


def make(a):
    rng = np.random.default_rng(a.seed)
    n_head, n_head_kv = 8, 2
    head_dim = a.embd // n_head
    w = gguf.GGUFWriter(a.out, "llama")
    w.add_context_length(256)
    w.add_embedding_length(a.embd)
    w.add_block_count(a.layers)
    w.add_feed_forward_length(a.ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_dimension_count(head_dim)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type({"f32": 0, "f16": 1, "bf16": 32}[a.dtype])
    toks = [f"t{i}" for i in range(a.vocab)]
    w.add_tokenizer_model("gpt2")
    w.add_token_list(toks)
    w.add_token_types([1] * a.vocab)
    w.add_token_merges(["t 1"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)

    def mat(rows, cols, scale):
        # a mix of distributions: mostly normal, heavy-tailed columns, a few outliers
        x = rng.standard_normal((rows, cols)).astype(np.float32) * scale
        x[:, rng.integers(0, cols, size=max(1, cols // 64))] *= 8.0
        x.flat[rng.integers(0, x.size, size=max(1, x.size // 5000))] *= 30.0
        return x

    def add(name, arr):
        if arr.ndim == 1 or a.dtype == "f32":
            w.add_tensor(name, arr.astype(np.float32))
        elif a.dtype == "f16":
            w.add_tensor(name, arr.astype(np.float16))
        else:
            raw = gguf.quants.quantize(arr.astype(np.float32), gguf.GGMLQuantizationType.BF16)
            w.add_tensor(name, raw, raw_dtype=gguf.GGMLQuantizationType.BF16)

    add("token_embd.weight", mat(a.vocab, a.embd, 0.02))
    for l in range(a.layers):
        p = f"blk.{l}."
        add(p + "attn_norm.weight", (1.0 + 0.1 * rng.standard_normal(a.embd)).astype(np.float32))
        add(p + "attn_q.weight", mat(a.embd, a.embd, 0.05))
        add(p + "attn_k.weight", mat(n_head_kv * head_dim, a.embd, 0.05))
        add(p + "attn_v.weight", mat(n_head_kv * head_dim, a.embd, 0.05))
        add(p + "attn_output.weight", mat(a.embd, a.embd, 0.05))
        add(p + "ffn_norm.weight", (1.0 + 0.1 * rng.standard_normal(a.embd)).astype(np.float32))
        add(p + "ffn_gate.weight", mat(a.ff, a.embd, 0.05))
        add(p + "ffn_up.weight", mat(a.ff, a.embd, 0.05))
        add(p + "ffn_down.weight", mat(a.embd, a.ff, 0.05))
    add("output_norm.weight", (1.0 + 0.1 * rng.standard_normal(a.embd)).astype(np.float32))
    if not a.tied:
        add("output.weight", mat(a.vocab, a.embd, 0.02))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def quantize(a):
    import llama_cpp

    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = a.ftype
    p.nthread = a.threads
    p.pure = a.pure
    p.allow_requantize = True
    rc = llama_cpp.llama_model_quantize(a.inp.encode(), a.out.encode(), ctypes.byref(p))
    if rc != 0:
        sys.exit(f"llama_model_quantize failed with {rc}")


def dump(a):
    r = gguf.GGUFReader(a.path)
    out = {}
    for t in r.tensors:
        out[t.name] = [t.tensor_type.name, [int(d) for d in t.shape], hashlib.sha256(bytes(t.data)).hexdigest()]
    json.dump(out, sys.stdout)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("out")
    m.add_argument("--layers", type=int, default=12)
    m.add_argument("--embd", type=int, default=256)
    m.add_argument("--ff", type=int, default=640)
    m.add_argument("--vocab", type=int, default=512)
    m.add_argument("--seed", type=int, default=1)
    m.add_argument("--dtype", default="f16", choices=["f32", "f16", "bf16"])
    m.add_argument("--tied", action="store_true")
    q = sub.add_parser("quantize")
    q.add_argument("inp")
    q.add_argument("out")
    q.add_argument("ftype", type=int)
    q.add_argument("--pure", action="store_true")
    q.add_argument("--threads", type=int, default=2)
    d = sub.add_parser("dump")
    d.add_argument("path")
    a = ap.parse_args()
    {"make": make, "quantize": quantize, "dump": dump}[a.cmd](a)


if __name__ == "__main__":
    main()
