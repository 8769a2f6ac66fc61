"""gpuq: llama.cpp's GGUF quantization, byte for byte, from Python.

Codecs on numpy arrays (`encode`, `decode`) and the jobs of the `gpuq` command
(`quantize`, `dequantize`, `convert`, `inspect`, `stats`). Jobs release the GIL while they
run, report to an optional `progress(done_bytes, total_bytes, tensor_name)` callback, stop on
Ctrl-C (KeyboardInterrupt) and never leave a partial output file.
"""

import os
from typing import Any, Callable, Literal, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str

StrPath = Union[str, "os.PathLike[str]"]
Size = Union[int, str]
"""Bytes, or a size as the CLI takes it: "512M", "2G", "1.5GiB"."""
Backend = Literal["auto", "cpu", "gpu"]
ProgressCallback = Callable[[int, int, str], Any]
"""Called as progress(done_bytes, total_bytes, tensor_name) when a job starts, at each tensor
and after each tile (input bytes). It runs on the calling thread with the GIL held; an
exception it raises stops the job at the next tile and is re-raised by the job."""

class GpuqError(RuntimeError):
    """An error of the gpuq library (bad or truncated file, unsupported type, shape mismatch,
    refusal such as re-quantizing); the message is the library's, as the CLI prints it."""

def encode(
    array: npt.ArrayLike,
    type: str,
    imatrix: Optional[npt.ArrayLike] = None,
    backend: Backend = "auto",
) -> npt.NDArray[np.uint8]:
    """Encodes rows (the last axis) into the bytes of a ggml type ("Q4_K", "Q8_0", "F16", ...),
    as llama.cpp's quantize_row_* / gguf.quants.quantize. Returns uint8 of shape
    (*array.shape[:-1], row_bytes). A C-contiguous float32 array is read in place; other
    inputs are converted to one first (a copy). imatrix: per-column importance weights (one
    row's length), as llama-quantize passes them. Raises GpuqError when the row length is not
    a multiple of the type's block or gpuq has no encoder for the type."""

def decode(
    data: Union[bytes, bytearray, memoryview, npt.NDArray[Any]],
    type: str,
    shape: Optional[Sequence[int]] = None,
    backend: Backend = "auto",
) -> npt.NDArray[np.float32]:
    """Decodes bytes of a ggml type to float32 (ggml's dequantize_row_* /
    gguf.quants.dequantize). shape: the decoded shape (rows are its last axis); without it an
    array's byte shape (last axis: whole blocks) gives it, as gguf-py does, and bytes decode to
    one row. Contiguous inputs are read in place."""

def types() -> dict[str, dict[str, Any]]:
    """Every type gpuq's codecs know, by name: {"encode": bool, "decode": bool,
    "block_elems": int, "block_bytes": int}."""

def backend(backend: Backend = "auto") -> str:
    """The backend a job with this argument runs on, and why ("backend cpu: ...")."""

def quantize(
    src: StrPath,
    dst: StrPath,
    type: Optional[str] = None,
    imatrix: Optional[StrPath] = None,
    tensor_types: Optional[Union[Mapping[str, str], Sequence[Tuple[str, str]]]] = None,
    target_size: Optional[Size] = None,
    backend: Backend = "auto",
    threads: Optional[int] = None,
    max_memory: Optional[Size] = None,
    progress: Optional[ProgressCallback] = None,
    *,
    target_bpw: Optional[float] = None,
    pure: bool = False,
    output_tensor_type: Optional[str] = None,
    token_embedding_type: Optional[str] = None,
    leave_output_tensor: bool = False,
    allow_requantize: bool = False,
    allow_nonfinite: bool = False,
    keep_names: bool = False,
) -> dict[str, Any]:
    """`gpuq quantize SRC -o DST --type TYPE`: llama-quantize's job, the same file byte for
    byte. src: a GGUF file (or the first of its splits) or a Hugging Face folder. type: a
    llama-quantize mixture ("Q4_K_M", "Q8_0", ...; None: Q4_K_M, or with a size target the
    mixture the plan names). imatrix: a llama-imatrix file (GGUF or .dat). tensor_types:
    regex -> type, first match wins (--tensor-type). target_size / target_bpw: choose each
    tensor's type by measured error to fit a size. threads: CPU workers for this job (default
    all cores). max_memory: bytes of tile buffers held at once (None: 2G; stats: 256M). Returns {"tensors", "converted", "parameters", "input_bytes", "output_bytes",
    "bits_per_weight", "seconds", "backend", "notes"}."""

def dequantize(
    src: StrPath,
    dst: StrPath,
    type: str = "F32",
    backend: Backend = "auto",
    threads: Optional[int] = None,
    max_memory: Optional[Size] = None,
    progress: Optional[ProgressCallback] = None,
    *,
    keep_names: bool = False,
) -> dict[str, Any]:
    """`gpuq dequantize SRC -o DST --type TYPE`: quantized tensors back to F32, F16 or BF16."""

def convert(
    src_dir: StrPath,
    dst: StrPath,
    outtype: Literal["f32", "f16", "bf16", "q8_0"] = "f16",
    backend: Backend = "auto",
    threads: Optional[int] = None,
    max_memory: Optional[Size] = None,
    progress: Optional[ProgressCallback] = None,
    *,
    vocab_pre: Optional[str] = None,
    no_tokenizer: bool = False,
) -> dict[str, Any]:
    """`gpuq convert DIR -o DST --outtype OUTTYPE`: a Hugging Face folder to GGUF, as
    llama.cpp's convert_hf_to_gguf.py writes it."""

def inspect(path: StrPath) -> dict[str, Any]:
    """`gpuq inspect --json PATH`: a GGUF file, a .safetensors file or a Hugging Face folder
    (metadata, tensors with their roles, totals), without reading tensor data."""

def stats(
    path: StrPath,
    types: Optional[Sequence[str]] = None,
    *,
    per_row: bool = False,
    outlier_k: float = 6.0,
    backend: Backend = "auto",
    max_memory: Optional[Size] = None,
    progress: Optional[ProgressCallback] = None,
) -> dict[str, Any]:
    """`gpuq stats --json PATH --type T,...`: per-tensor and per-layer weight statistics and the
    round-trip error through each of `types`."""
