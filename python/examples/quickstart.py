"""gpuq from Python: llama.cpp's codecs on numpy arrays, then a whole model quantized with a
progress callback. Needs the module (python/run-tests builds it) and gguf-py (pip install gguf).

    python3 python/examples/quickstart.py
"""
import os
import shutil
import tempfile

import gguf
import numpy as np

import gpuq

# 1. codecs: rows are the last axis, the bytes are llama.cpp's (and gguf-py's where it has them)
x = np.random.default_rng(0).standard_normal((1024, 4096), dtype=np.float32)
q = gpuq.encode(x, "Q4_K")  # uint8 (1024, 2304): 144 bytes per 256 values
y = gpuq.decode(q, "Q4_K")  # float32 (1024, 4096)
print(f"Q4_K: {x.shape} float32 -> {q.shape} {q.dtype}, RMSE {np.sqrt(np.mean((x - y) ** 2)):.4f}")
same = np.array_equal(gpuq.encode(x, "Q8_0"), gguf.quants.quantize(x, gguf.GGMLQuantizationType.Q8_0))
print(f"Q8_0 bytes equal to gguf-py's: {same}")

# 2. a job: a small Llama-shaped F16 model written with gguf-py, quantized to Q4_K_M
d = tempfile.mkdtemp()
src, dst = os.path.join(d, "tiny-f16.gguf"), os.path.join(d, "tiny-Q4_K_M.gguf")
rng = np.random.default_rng(1)
w = gguf.GGUFWriter(src, "llama")
w.add_block_count(2), w.add_embedding_length(512), w.add_feed_forward_length(1024)
w.add_head_count(8), w.add_head_count_kv(8), w.add_context_length(256)
w.add_tensor("token_embd.weight", rng.standard_normal((1024, 512)).astype(np.float16))
for i in range(2):
    w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(512, dtype=np.float32))
    for name, shape in [("attn_q", (512, 512)), ("attn_k", (512, 512)), ("attn_v", (512, 512)),
                        ("attn_output", (512, 512)), ("ffn_gate", (1024, 512)),
                        ("ffn_up", (1024, 512)), ("ffn_down", (512, 1024))]:
        w.add_tensor(f"blk.{i}.{name}.weight", (rng.standard_normal(shape) * 0.02).astype(np.float16))
    w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(512, dtype=np.float32))
w.add_tensor("output_norm.weight", np.ones(512, dtype=np.float32))
w.add_tensor("output.weight", (rng.standard_normal((1024, 512)) * 0.02).astype(np.float16))
w.write_header_to_file(), w.write_kv_data_to_file(), w.write_tensors_to_file(), w.close()

seen = []
s = gpuq.quantize(src, dst, "Q4_K_M", progress=lambda done, total, name: seen.append((done, total, name)))
print(f"{s['backend'].split(':')[0]}: quantized {s['tensors']} tensors ({s['converted']} converted): {s['input_bytes']} -> "
      f"{s['output_bytes']} bytes, {s['bits_per_weight']:.2f} bits/weight, {len(seen)} progress calls, "
      f"last {seen[-1][0]}/{seen[-1][1]} bytes")
types = {}
for t in gpuq.inspect(dst)["tensors"]:
    types[t["type"]] = types.get(t["type"], 0) + 1
print(f"tensor types in {os.path.basename(dst)}: {types}")
try:
    gpuq.quantize(dst, os.path.join(d, "again.gguf"), "Q4_0")
except gpuq.GpuqError as e:
    print(f"GpuqError: {e}")
shutil.rmtree(d)
