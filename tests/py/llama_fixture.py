"""Small Llama-shaped GGUF models and llama.cpp's own quantizer, for gpuq's equivalence tests.

  python3 llama_fixture.py make OUT.gguf --layers 12 --embd 256 --ff 640 --vocab 512 --seed 1 [--dtype f16|f32|bf16] [--tied] [--kv-heads 2] [--uneven]
  python3 llama_fixture.py quantize IN.gguf OUT.gguf FTYPE [--pure] [--threads N]
  python3 llama_fixture.py dump FILE.gguf     # JSON: name -> [type name, shape, sha256 of bytes]
  python3 llama_fixture.py imatrix MODEL.gguf OUT.gguf --seed 3 [--legacy OUT.dat]
  python3 llama_fixture.py quantize IN.gguf OUT.gguf FTYPE --imatrix OUT.gguf  # as llama-quantize --imatrix
  python3 llama_fixture.py types IN.gguf FTYPE [--imatrix F]  # JSON name -> type of llama-quantize --dry-run
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
    n_head, n_head_kv = 8, a.kv_heads
    head_dim = a.embd // n_head
    # --split N: gguf-py's splitting (as convert_hf_to_gguf.py --split-max-tensors N), files
    # named OUT-00001-of-0000K.gguf
    w = gguf.GGUFWriter(a.out, "llama", split_max_tensors=a.split)
    w.add_context_length(256)
    w.add_embedding_length(a.embd)
    w.add_block_count(a.layers)
    w.add_feed_forward_length(a.ff)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_head_kv)
    w.add_rope_dimension_count(head_dim)
    w.add_layer_norm_rms_eps(1e-5)
    if a.experts:
        w.add_expert_count(a.experts)
        w.add_expert_used_count(2)
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
        if a.uneven:
            # --uneven: every matrix its own scale, share of heavy columns and of outliers
            # (so the types a size target chooses differ from tensor to tensor)
            scale *= float(np.exp(rng.uniform(-1.2, 1.2)))
            x = rng.standard_normal((rows, cols)).astype(np.float32) * scale
            heavy = cols // int(rng.choice([8, 32, 128, 512]))
            x[:, rng.integers(0, cols, size=max(1, heavy))] *= float(rng.uniform(2.0, 12.0))
            n_out = x.size // int(rng.choice([300, 3000, 30000]))
            x.flat[rng.integers(0, x.size, size=max(1, n_out))] *= float(rng.uniform(10.0, 40.0))
            return x
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
        if a.experts:
            # Mixtral-style MoE: 3-D expert tensors (ne = [cols, rows, n_expert]), a router
            add(p + "ffn_gate_inp.weight", mat(a.experts, a.embd, 0.05))
            add(p + "ffn_gate_exps.weight", np.stack([mat(a.ff, a.embd, 0.05) for _ in range(a.experts)]))
            add(p + "ffn_up_exps.weight", np.stack([mat(a.ff, a.embd, 0.05) for _ in range(a.experts)]))
            add(p + "ffn_down_exps.weight", np.stack([mat(a.embd, a.ff, 0.05) for _ in range(a.experts)]))
        else:
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


def imatrix(a):
    """A GGUF imatrix as llama-imatrix writes it, for every matrix of MODEL: in_sum2 (ne0 x
    n_mat sums of squared activations, heavy-tailed, a few huge columns) and counts. One entry
    has count 0 (llama.cpp then uses 1.0) and token_embd gets a wrong-sized entry (llama.cpp
    ignores that one). With --legacy, the same importances also as a legacy .dat file."""
    rng = np.random.default_rng(a.seed)
    model = gguf.GGUFReader(a.model)
    w = gguf.GGUFWriter(a.out, arch=None)
    w.add_type("imatrix")
    w.add_array("imatrix.datasets", ["wiki.test.raw"])
    w.add_uint32("imatrix.chunk_count", 7)
    w.add_uint32("imatrix.chunk_size", 512)
    entries = []
    for i, t in enumerate(model.tensors):
        if len(t.shape) < 2:
            continue
        ne0 = int(t.shape[0])
        n_mat = int(t.shape[2]) if len(t.shape) > 2 else 1
        if t.name == "token_embd.weight":
            ne0 += 16
        count = 0.0 if i == 5 else float(rng.integers(100, 4000))
        sums = (rng.standard_t(3, size=(n_mat, ne0)) ** 2 * count / 8 + 1e-3).astype(np.float32)
        sums[:, rng.integers(0, ne0, size=max(1, ne0 // 50))] *= 200.0
        counts = np.full((n_mat, 1), count, dtype=np.float32)
        w.add_tensor(t.name + ".in_sum2", sums)
        w.add_tensor(t.name + ".counts", counts)
        entries.append((t.name, int(count), sums.reshape(-1)))
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    if a.legacy:
        with open(a.legacy, "wb") as f:
            f.write(np.int32(len(entries)).tobytes())
            for name, ncall, sums in entries:
                if ncall == 0:  # GGUF count 0 means importance 1: the same values here
                    ncall, sums = 1, np.ones_like(sums)
                f.write(np.int32(len(name)).tobytes()); f.write(name.encode())
                f.write(np.int32(ncall).tobytes()); f.write(np.int32(sums.size).tobytes())
                f.write(sums.astype("<f4").tobytes())
            f.write(np.int32(7).tobytes())
            f.write(np.int32(len("wiki.test.raw")).tobytes()); f.write(b"wiki.test.raw")


def load_imatrix(path):
    """llama-quantize's load_imatrix for a GGUF file: sums / round(count) in f32, 1 where 0."""
    r = gguf.GGUFReader(path)
    t = {x.name: x for x in r.tensors}
    out = {}
    for name in t:
        if not name.endswith(".in_sum2"):
            continue
        base = name[: -len(".in_sum2")]
        sums = np.array(t[name].data, dtype=np.float32).reshape(-1)
        counts = np.array(t[base + ".counts"].data, dtype=np.float32).reshape(-1)
        ne0 = sums.size // counts.size
        vals = np.empty_like(sums)
        for j, c in enumerate(counts):
            c = np.float32(int(np.round(c)))
            seg = slice(j * ne0, (j + 1) * ne0)
            vals[seg] = sums[seg] / c if c > 0 else np.float32(1.0)
        out[base] = vals
    chunks = int(r.fields["imatrix.chunk_count"].parts[-1][0])
    datasets = [bytes(r.fields["imatrix.datasets"].parts[i]).decode() for i in r.fields["imatrix.datasets"].data]
    return out, chunks, datasets


def quantize(a):
    import llama_cpp

    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = a.ftype
    p.nthread = a.threads
    p.pure = a.pure
    p.allow_requantize = True
    keep = []
    # the KV overrides llama-quantize passes: --override-kv first, then the imatrix keys
    kvs = []
    for o in a.override_kv:
        k, rest = o.split("=", 1)
        ty, v = rest.split(":", 1)
        kvs.append((k, {"int": int, "float": float, "bool": lambda x: x == "true", "str": str}[ty](v)))
    if a.imatrix:
        vals, chunks, datasets = load_imatrix(a.imatrix)
        arr = (llama_cpp.llama_model_imatrix_data * (len(vals) + 1))()
        for i, (name, v) in enumerate(vals.items()):
            v = np.ascontiguousarray(v, dtype=np.float32)
            keep.append(v)
            arr[i].name = name.encode()
            arr[i].data = v.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            arr[i].size = v.size
        p.imatrix = arr
        kvs += [("quantize.imatrix.file", a.imatrix), ("quantize.imatrix.dataset", datasets[0]),
                ("quantize.imatrix.entries_count", len(vals)), ("quantize.imatrix.chunks_count", chunks)]
        keep.append(arr)
    if kvs:
        ov = (llama_cpp.llama_model_kv_override * (len(kvs) + 1))()
        for i, (k, v) in enumerate(kvs):
            ov[i].key = k.encode()
            if isinstance(v, str):
                ov[i].tag = llama_cpp.LLAMA_KV_OVERRIDE_TYPE_STR
                ov[i].value.val_str = v.encode()[:127]
            elif isinstance(v, bool):
                ov[i].tag = llama_cpp.LLAMA_KV_OVERRIDE_TYPE_BOOL
                ov[i].value.val_bool = v
            elif isinstance(v, float):
                ov[i].tag = llama_cpp.LLAMA_KV_OVERRIDE_TYPE_FLOAT
                ov[i].value.val_f64 = v
            else:
                ov[i].tag = llama_cpp.LLAMA_KV_OVERRIDE_TYPE_INT
                ov[i].value.val_i64 = v
        p.kv_overrides = ov
        keep.append(ov)
    if getattr(a, "dry_run", False):
        p.dry_run = True
    rc = llama_cpp.llama_model_quantize(a.inp.encode(), a.out.encode(), ctypes.byref(p))
    if rc != 0:
        sys.exit(f"llama_model_quantize failed with {rc}")


def types(a):
    """llama-quantize --dry-run: the type it picks for every tensor, from its log lines
    '[ i/ n] NAME - [shape], type = T, size = … MiB -> … MiB (NEW)' (NEW absent: kept)."""
    import re
    import llama_cpp

    log = []
    cb = llama_cpp.llama_log_callback(lambda level, text, user: log.append(text.decode(errors="replace")))
    llama_cpp.llama_log_set(cb, None)
    a.out, a.pure, a.threads, a.override_kv, a.dry_run = "/dev/null", False, 1, [], True
    quantize(a)
    text = "".join(log)
    out = {}
    pat = re.compile(r"\[\s*\d+/\s*\d+\]\s+(\S+)\s+- \[[^\]]*\], type =\s*(\S+), size = [^\n]*?(?:-> [^\n]*\((\S+)\))?\n")
    for m in pat.finditer(text):
        out[m.group(1)] = (m.group(3) or m.group(2)).upper()
    if not out:
        sys.exit("no per-tensor lines in llama.cpp's dry-run log:\n" + text[-2000:])
    print(json.dumps(out))


def dump(a):
    r = gguf.GGUFReader(a.path)
    out = {}
    for t in r.tensors:
        out[t.name] = [t.tensor_type.name, [int(d) for d in t.shape], hashlib.sha256(bytes(t.data)).hexdigest()]
    # the keys llama-quantize adds (quantize.*), with their GGUF value types
    meta = {}
    for k, f in r.fields.items():
        if k.startswith("quantize."):
            v = f.contents() if hasattr(f, "contents") else f.parts[-1].tolist()
            meta[k] = [f.types[0].name, v]
    out["__meta__"] = meta
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
    m.add_argument("--experts", type=int, default=0)
    m.add_argument("--kv-heads", type=int, default=2)  # of 8 heads: GQA 4 by default
    m.add_argument("--split", type=int, default=0)
    m.add_argument("--uneven", action="store_true")
    q = sub.add_parser("quantize")
    q.add_argument("inp")
    q.add_argument("out")
    q.add_argument("ftype", type=int)
    q.add_argument("--pure", action="store_true")
    q.add_argument("--threads", type=int, default=2)
    q.add_argument("--imatrix")
    q.add_argument("--override-kv", action="append", default=[])
    t = sub.add_parser("types")
    t.add_argument("inp")
    t.add_argument("ftype", type=int)
    t.add_argument("--imatrix")
    im = sub.add_parser("imatrix")
    im.add_argument("model")
    im.add_argument("out")
    im.add_argument("--seed", type=int, default=3)
    im.add_argument("--legacy")
    d = sub.add_parser("dump")
    d.add_argument("path")
    a = ap.parse_args()
    {"make": make, "quantize": quantize, "dump": dump, "imatrix": imatrix, "types": types}[a.cmd](a)


if __name__ == "__main__":
    main()
