# Times llama.cpp's own `ggml_quantize_chunk` (libggml-base bundled with llama-cpp-python; one
# thread: the call does not spawn any) on f32 rows, after `ggml_quantize_init` (its tables are
# built outside the timing). argv[1]: a manifest, one job per line:
# "type_id n_per_row src.f32 imatrix.f32|- reps"; prints one line per job: the least CPU time
# of this thread (`time.thread_time`, robust to a loaded machine) of `reps` calls, in seconds.
import ctypes
import os
import sys
import time

import numpy as np
import llama_cpp

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

for line in open(sys.argv[1]):
    if not line.strip():
        continue
    ty, n_per_row, src_path, imat_path, reps = line.split()
    ty, n_per_row, reps = int(ty), int(n_per_row), int(reps)
    src = np.ascontiguousarray(np.fromfile(src_path, dtype="<f4"))
    nrows = src.size // n_per_row
    imat = None
    if imat_path != "-":
        imat = np.ascontiguousarray(np.fromfile(imat_path, dtype="<f4"))
    dst = np.zeros(nrows * ggml.ggml_row_size(ty, n_per_row), dtype=np.uint8)
    ggml.ggml_quantize_init(ty)
    best = float("inf")
    for _ in range(reps):
        t = time.thread_time()
        ggml.ggml_quantize_chunk(
            ty, src.ctypes.data, dst.ctypes.data, 0, nrows, n_per_row,
            imat.ctypes.data if imat is not None else None,
        )
        best = min(best, time.thread_time() - t)
    print(best, flush=True)
