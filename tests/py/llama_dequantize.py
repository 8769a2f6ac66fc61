# Decodes raw blocks with llama.cpp's own `dequantize_row_X` (the `to_float` of
# `ggml_get_type_traits`, from the libggml-base bundled with PyPI llama-cpp-python), for the
# types gguf-py cannot decode (Q1_0) and as a second reference for the others.
# argv[1]: a manifest, one job per line: "type_id raw.bin out.f32"
import ctypes
import os
import sys

import numpy as np
import llama_cpp

lib_dir = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
ggml = ctypes.CDLL(os.path.join(lib_dir, "libggml-base.so"))

TO_FLOAT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)


class TypeTraits(ctypes.Structure):
    _fields_ = [
        ("type_name", ctypes.c_char_p),
        ("blck_size", ctypes.c_int64),
        ("blck_size_interleave", ctypes.c_int64),
        ("type_size", ctypes.c_size_t),
        ("is_quantized", ctypes.c_bool),
        ("to_float", ctypes.c_void_p),
        ("from_float_ref", ctypes.c_void_p),
    ]


ggml.ggml_get_type_traits.restype = ctypes.POINTER(TypeTraits)
ggml.ggml_get_type_traits.argtypes = [ctypes.c_int]

for line in open(sys.argv[1]):
    if not line.strip():
        continue
    ty, raw_path, out_path = line.split()
    tr = ggml.ggml_get_type_traits(int(ty)).contents
    assert tr.to_float, f"type {ty} has no to_float"
    raw = np.ascontiguousarray(np.fromfile(raw_path, dtype=np.uint8))
    assert raw.size % tr.type_size == 0
    n = raw.size // tr.type_size * tr.blck_size
    out = np.full(n, np.nan, dtype="<f4")
    TO_FLOAT(tr.to_float)(raw.ctypes.data, out.ctypes.data, n)
    out.tofile(out_path)
