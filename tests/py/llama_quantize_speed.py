# Times llama.cpp's `ggml_quantize_chunk` (one thread: the call itself is single-threaded) on
# the same kind of rows `gpuq bench codecs` uses, for a per-type MB/s comparison.
# argv: TYPE_NAME[,TYPE_NAME…] [MiB of f32 input, default 64] [row length, default 4096]
# Prints one line per type and weighting: "TYPE imatrix|plain MB/s" (input f32 MB per second,
# the median of 3 calls after a warm-up).
import ctypes
import os
import sys
import time

import numpy as np
import llama_cpp
from gguf import GGMLQuantizationType

lib_dir = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
ggml = ctypes.CDLL(os.path.join(lib_dir, "libggml-base.so"))
ggml.ggml_quantize_chunk.restype = ctypes.c_size_t
ggml.ggml_quantize_chunk.argtypes = [
    ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
    ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p,
]
ggml.ggml_row_size.restype = ctypes.c_size_t
ggml.ggml_row_size.argtypes = [ctypes.c_int, ctypes.c_int64]
ggml.ggml_quantize_init.argtypes = [ctypes.c_int]

names = sys.argv[1].split(",")
mib = float(sys.argv[2]) if len(sys.argv) > 2 else 64
n_per_row = int(sys.argv[3]) if len(sys.argv) > 3 else 4096
nrows = max(1, int(mib * 2**20 / 4 / n_per_row))
rng = np.random.default_rng(1)
src = (rng.standard_normal(nrows * n_per_row) * 0.02).astype(np.float32)
imat = np.exp(rng.standard_normal(n_per_row)).astype(np.float32)
for name in names:
    ty = int(GGMLQuantizationType[name]) if name in GGMLQuantizationType.__members__ else int(name)
    dst = np.zeros(nrows * ggml.ggml_row_size(ty, n_per_row), dtype=np.uint8)
    ggml.ggml_quantize_init(ty)
    for label, w in (("plain", None), ("imatrix", imat)):
        def run():
            ggml.ggml_quantize_chunk(ty, src.ctypes.data, dst.ctypes.data, 0, nrows, n_per_row,
                                     w.ctypes.data if w is not None else None)
        run()
        times = []
        for _ in range(3):
            t = time.perf_counter(); run(); times.append(time.perf_counter() - t)
        print(f"{name} {label} {src.nbytes / 1e6 / sorted(times)[1]:.1f}", flush=True)
