# Quantizes f32 rows with llama.cpp's own `ggml_quantize_chunk` (the shared libggml-base
# bundled with PyPI llama-cpp-python), for byte comparisons against gpuq's CPU encoders.
# argv[1]: a manifest, one job per line: "type_id n_per_row src.f32 out.bin imatrix.f32|-"
import ctypes
import os
import sys

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
    ty, n_per_row, src_path, out_path, imat_path = line.split()
    ty, n_per_row = int(ty), int(n_per_row)
    src = np.ascontiguousarray(np.fromfile(src_path, dtype="<f4"))
    assert src.size % n_per_row == 0
    nrows = src.size // n_per_row
    imat = None
    if imat_path != "-":
        imat = np.ascontiguousarray(np.fromfile(imat_path, dtype="<f4"))
        assert imat.size == n_per_row
    row_size = ggml.ggml_row_size(ty, n_per_row)
    dst = np.zeros(nrows * row_size, dtype=np.uint8)
    ggml.ggml_quantize_init(ty)
    written = ggml.ggml_quantize_chunk(
        ty, src.ctypes.data, dst.ctypes.data, 0, nrows, n_per_row,
        imat.ctypes.data if imat is not None else None,
    )
    assert written == dst.size, (written, dst.size)
    dst.tofile(out_path)
