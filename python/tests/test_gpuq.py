"""The Python module against independent implementations: gguf-py's codecs (gguf.quants) for
every type both have, and the gpuq CLI's files for the jobs, byte for byte. Plus errors
(GpuqError, nothing left under the output name), the progress callback, Ctrl-C and the GIL.

Run by `python/run-tests` (the README's test command): it builds and installs the module and
the CLI (GPUQ_BIN) first.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize as gguf_dequantize
from gguf.quants import quantize as gguf_quantize

import gpuq

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "py" / "llama_fixture.py"
HF_MODEL = ROOT / "tests" / "py" / "hf_model.py"
EXAMPLE = ROOT / "python" / "examples" / "quickstart.py"


def gpuq_bin():
    b = Path(os.environ.get("GPUQ_BIN", ROOT / "target" / "debug" / "gpuq"))
    assert b.exists(), f"the gpuq CLI is not built at {b} (cargo build --bin gpuq, or set GPUQ_BIN)"
    return str(b)


# --- which types each side has -----------------------------------------------------------------

GPUQ_TYPES = gpuq.types()


def gguf_can(fn, ty):
    """True when gguf-py implements `fn` (quantize / dequantize) for type `ty`."""
    bs, ts = gguf.GGML_QUANT_SIZES[ty]
    try:
        if fn is gguf_quantize:
            fn(np.ones((1, 256), dtype=np.float32), ty)
        else:
            fn(np.zeros((1, 256 // bs * ts), dtype=np.uint8), ty)
        return True
    except NotImplementedError:
        return False


SHARED_ENCODE = [
    t.name for t in T if t.name in GPUQ_TYPES and GPUQ_TYPES[t.name]["encode"] and gguf_can(gguf_quantize, t)
]
SHARED_DECODE = [
    t.name for t in T if t.name in GPUQ_TYPES and GPUQ_TYPES[t.name]["decode"] and gguf_can(gguf_dequantize, t)
]


def test_the_shared_types_are_the_expected_ones():
    # gguf 0.19.0 encodes these (the test must not pass by finding no types at all)
    for name in ["F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "TQ1_0", "TQ2_0"]:
        assert name in SHARED_ENCODE, name
    for name in ["Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ2_XXS", "IQ4_XS", "IQ1_M", "MXFP4"]:
        assert name in SHARED_DECODE, name


# --- seeded data in several distributions -------------------------------------------------------


def data(dist, shape, seed):
    rng = np.random.default_rng(seed)
    if dist == "normal":
        x = rng.standard_normal(shape)
    elif dist == "uniform":
        x = rng.uniform(-1.0, 1.0, shape)
    elif dist == "heavy":  # Student t(2) with outlier columns, as LLM weights have
        x = rng.standard_t(2, shape) * 0.02
        x[..., rng.integers(0, shape[-1], size=max(1, shape[-1] // 64))] *= 30.0
    elif dist == "tiny":  # near f16's subnormals
        x = rng.standard_normal(shape) * 1e-6
    elif dist == "large":
        x = rng.standard_normal(shape) * 3e3
    elif dist == "mixed":  # zero rows, constant rows, one-sign rows, ordinary rows
        x = rng.standard_normal(shape)
        flat = x.reshape(-1, shape[-1])
        flat[0] = 0.0
        flat[1] = 0.125
        flat[2] = np.abs(flat[2])
        flat[3] = -np.abs(flat[3]) * 100.0
    else:
        raise ValueError(dist)
    return np.ascontiguousarray(x, dtype=np.float32)


DISTS = ["normal", "uniform", "heavy", "tiny", "large", "mixed"]


def as_bytes(a):
    return np.ascontiguousarray(a).view(np.uint8)


@pytest.mark.parametrize("dist", DISTS)
@pytest.mark.parametrize("ty", SHARED_ENCODE)
def test_encode_equals_gguf_py(ty, dist):
    x = data(dist, (8, 4, 512), seed=hash((ty, dist)) % 2**32)
    ours = gpuq.encode(x, ty)
    ref = as_bytes(gguf_quantize(x, T[ty]))
    assert ours.dtype == np.uint8
    assert ours.shape == ref.shape
    if not np.array_equal(ours, ref):
        rows = int(np.any(ours.reshape(-1, ours.shape[-1]) != ref.reshape(-1, ref.shape[-1]), axis=1).sum())
        pytest.fail(f"{ty} {dist}: {rows} of {x.size // x.shape[-1]} rows differ from gguf-py")


def same_floats(a, b):
    """Bit-identical float32 arrays, NaNs anywhere in the same places."""
    assert a.dtype == b.dtype == np.float32 and a.shape == b.shape
    na, nb = np.isnan(a), np.isnan(b)
    assert np.array_equal(na, nb), f"{int((na != nb).sum())} NaN positions differ"
    ua, ub = a.view(np.uint32)[~na], b.view(np.uint32)[~nb]
    assert np.array_equal(ua, ub), f"{int((ua != ub).sum())} of {ua.size} values differ"


def importance(n, seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_t(3, n) ** 2 + 1e-3).astype(np.float32)


@pytest.mark.parametrize("dist", ["normal", "heavy", "mixed"])
@pytest.mark.parametrize("ty", SHARED_DECODE)
def test_decode_equals_gguf_py(ty, dist):
    x = data(dist, (16, 512), seed=hash((dist, ty, 1)) % 2**32)
    # blocks as gpuq writes them (IQ2_XXS, IQ2_XS, IQ1_S need an importance matrix)
    q = gpuq.encode(x, ty, imatrix=importance(512, 7))
    same_floats(gpuq.decode(q, ty), gguf_dequantize(q, T[ty]).astype(np.float32, copy=False))


@pytest.mark.parametrize("ty", SHARED_DECODE)
def test_decode_of_random_bytes_equals_gguf_py(ty):
    # every bit pattern: NaN and Inf scales, codes a quantizer never writes
    bs, ts = gguf.GGML_QUANT_SIZES[T[ty]]
    rng = np.random.default_rng(hash(ty) % 2**32)
    q = rng.integers(0, 256, size=(12, 1024 // bs * ts), dtype=np.uint8)
    with np.errstate(all="ignore"):
        ref = gguf_dequantize(q, T[ty]).astype(np.float32, copy=False)
    same_floats(gpuq.decode(q, ty), ref)


def test_decode_takes_bytes_and_a_shape():
    x = data("normal", (6, 256), seed=3)
    q = gpuq.encode(x, "Q4_K")
    a = gpuq.decode(q.tobytes(), "Q4_K", shape=(2, 3, 256))
    assert a.shape == (2, 3, 256)
    same_floats(a.reshape(6, 256), gpuq.decode(q, "Q4_K"))
    one_row = gpuq.decode(bytearray(q.tobytes()), "q4_k")
    assert one_row.shape == (6 * 256,)
    with pytest.raises(gpuq.GpuqError, match="needs"):
        gpuq.decode(q.tobytes(), "Q4_K", shape=(7, 256))


def test_inputs_that_are_not_contiguous_float32_are_converted():
    x = data("heavy", (8, 512), seed=11)
    ref = gpuq.encode(x, "Q8_0")
    wide = np.zeros((8, 1024), dtype=np.float32)
    wide[:, ::2] = x  # a strided view
    assert np.array_equal(gpuq.encode(wide[:, ::2], "Q8_0"), ref)
    assert np.array_equal(gpuq.encode(x.astype(np.float64), "Q8_0"), ref)
    assert np.array_equal(gpuq.encode(np.asfortranarray(x), "Q8_0"), ref)
    assert np.array_equal(gpuq.encode(x.tolist(), "Q8_0"), ref)
    f16 = x.astype(np.float16)
    assert np.array_equal(gpuq.encode(f16, "F16"), f16.view(np.uint8))


def test_imatrix_changes_the_bytes_as_llama_quantize_uses_it():
    x = data("heavy", (8, 512), seed=5)
    w = importance(512, 9)
    plain, weighted = gpuq.encode(x, "Q4_K"), gpuq.encode(x, "Q4_K", imatrix=w)
    assert plain.shape == weighted.shape and not np.array_equal(plain, weighted)
    with pytest.raises(gpuq.GpuqError):
        gpuq.encode(x, "Q4_K", imatrix=w[:256])


def test_codec_errors_are_gpuq_errors():
    assert issubclass(gpuq.GpuqError, RuntimeError)
    x = data("normal", (4, 300), seed=1)
    with pytest.raises(gpuq.GpuqError, match="not a multiple of the block size"):
        gpuq.encode(x, "Q4_K")
    with pytest.raises(gpuq.GpuqError, match="unknown ggml type"):
        gpuq.encode(x, "Q9_X")
    with pytest.raises(gpuq.GpuqError, match="not a whole number"):
        gpuq.decode(b"\x00" * 143, "Q4_K")
    with pytest.raises(gpuq.GpuqError, match="row length 0"):
        gpuq.encode(np.zeros((3, 0), dtype=np.float32), "F32")
    with pytest.raises(ValueError, match="backend"):
        gpuq.encode(x, "F32", backend="tpu")


def test_the_gil_is_released_while_encoding():
    x = data("normal", (4096, 4096), seed=2)  # 64 MB
    started, took = threading.Event(), []

    def work():
        started.set()
        t0 = time.perf_counter()
        gpuq.encode(x, "Q4_K", backend="cpu")
        took.append(time.perf_counter() - t0)

    th = threading.Thread(target=work)
    th.start()
    started.wait()
    gap, last = 0.0, time.perf_counter()
    while th.is_alive():
        now = time.perf_counter()
        gap, last = max(gap, now - last), now
    th.join()
    # holding the GIL, the encode would stop this loop for its whole duration
    assert gap < 0.5 * took[0], f"the loop stalled {gap:.3f} s of a {took[0]:.3f} s encode"


# --- jobs: byte for byte the CLI's files ---------------------------------------------------------


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("model")
    path = d / "llama-f16.gguf"
    subprocess.run(
        [sys.executable, str(FIXTURE), "make", str(path), "--layers", "2", "--embd", "256",
         "--ff", "640", "--vocab", "512", "--seed", "5"],
        check=True,
    )
    imatrix = d / "imatrix.gguf"
    subprocess.run([sys.executable, str(FIXTURE), "imatrix", str(path), str(imatrix), "--seed", "4"], check=True)
    return path, imatrix


def cli(*args):
    r = subprocess.run([gpuq_bin(), *map(str, args)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def leftovers(d, name):
    return sorted(p.name for p in Path(d).iterdir() if p.name.startswith(name))


@pytest.mark.parametrize(
    "ty, extra",
    [
        ("Q4_K_M", {}),
        ("Q8_0", {}),
        ("Q3_K_S", {"imatrix": True}),
        ("Q5_K_M", {"tensor_types": {"attn_v": "q8_0", "ffn_down": "Q6_K"}, "pure": True}),
    ],
)
def test_quantize_is_the_cli_file(model, tmp_path, ty, extra):
    src, imatrix = model
    args = ["quantize", src, "-o", tmp_path / "cli.gguf", "--type", ty, "-q", "--backend", "cpu"]
    kw = {}
    if extra.get("imatrix"):
        args += ["--imatrix", imatrix]
        kw["imatrix"] = str(imatrix)  # the path is written into the output as given
    for pat, t in extra.get("tensor_types", {}).items():
        args += ["--tensor-type", f"{pat}={t}"]
    if extra.get("pure"):
        args += ["--pure"]
        kw["pure"] = True
    cli(*args)
    s = gpuq.quantize(src, tmp_path / "py.gguf", ty, tensor_types=extra.get("tensor_types"),
                      backend="cpu", threads=2, max_memory="8M", **kw)
    assert (tmp_path / "py.gguf").read_bytes() == (tmp_path / "cli.gguf").read_bytes()
    assert s["tensors"] == 2 * 9 + 3 and s["converted"] > 0 and s["backend"].startswith("backend cpu")
    assert s["output_bytes"] < s["input_bytes"]


def test_quantize_to_a_size_is_the_cli_file(model, tmp_path):
    src, _ = model
    cli("quantize", src, "-o", tmp_path / "cli.gguf", "--target-bpw", "4.5", "-q", "--backend", "cpu")
    gpuq.quantize(src, tmp_path / "py.gguf", target_bpw=4.5, backend="cpu")
    assert (tmp_path / "py.gguf").read_bytes() == (tmp_path / "cli.gguf").read_bytes()


def test_dequantize_is_the_cli_file(model, tmp_path):
    src, _ = model
    q = tmp_path / "q.gguf"
    gpuq.quantize(src, q, "Q4_K_M")
    cli("dequantize", q, "-o", tmp_path / "cli.gguf", "--type", "F32", "-q")
    gpuq.dequantize(q, tmp_path / "py.gguf", "F32")
    assert (tmp_path / "py.gguf").read_bytes() == (tmp_path / "cli.gguf").read_bytes()


def test_convert_is_the_cli_file(tmp_path):
    hf = tmp_path / "hf"
    subprocess.run([sys.executable, str(HF_MODEL), "make", str(hf), "llama", "3", "--no-tokenizer"], check=True)
    cli("convert", hf, "-o", tmp_path / "cli.gguf", "--outtype", "bf16", "-q")
    s = gpuq.convert(hf, tmp_path / "py.gguf", "bf16")
    assert (tmp_path / "py.gguf").read_bytes() == (tmp_path / "cli.gguf").read_bytes()
    assert s["tensors"] > 0


def test_inspect_and_stats_are_the_cli_json(model):
    src, _ = model
    assert gpuq.inspect(src) == json.loads(cli("inspect", "--json", src))
    ours = gpuq.stats(src, ["Q4_K", "Q8_0"], backend="cpu")
    assert ours == json.loads(cli("stats", "--json", "--type", "Q4_K,Q8_0", "--backend", "cpu", src))
    assert {t["name"] for t in ours["tensors"]} == {t.name for t in gguf.GGUFReader(src).tensors}


def test_progress_is_called(model, tmp_path):
    src, _ = model
    calls = []
    gpuq.quantize(src, tmp_path / "out.gguf", "Q4_K_M", max_memory="1M",
                  progress=lambda done, total, name: calls.append((done, total, name)))
    total = src.stat().st_size
    assert len(calls) > 21, calls  # start, each tensor, each tile
    assert all(t == calls[0][1] for _, t, _ in calls) and 0 < calls[0][1] <= total
    assert calls[-1][0] == calls[-1][1]  # all input bytes done
    assert [d for d, _, _ in calls] == sorted(d for d, _, _ in calls)
    assert {"token_embd.weight", "blk.1.ffn_down.weight", "output.weight"} <= {n for _, _, n in calls}


def test_a_bad_file_raises_and_leaves_nothing(model, tmp_path):
    src, _ = model
    raw = src.read_bytes()
    cut = tmp_path / "truncated.gguf"
    cut.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(gpuq.GpuqError, match="truncated.gguf"):
        gpuq.quantize(cut, tmp_path / "out.gguf", "Q4_K_M")
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"GGUF" + bytes(range(256)) * 4)
    with pytest.raises(gpuq.GpuqError, match="junk.gguf"):
        gpuq.inspect(junk)
    with pytest.raises(gpuq.GpuqError, match="junk.gguf"):
        gpuq.dequantize(junk, tmp_path / "out.gguf")
    with pytest.raises(gpuq.GpuqError, match="no such file|No such file"):
        gpuq.quantize(tmp_path / "missing.gguf", tmp_path / "out.gguf")
    assert leftovers(tmp_path, "out.gguf") == []


def test_a_refusal_has_the_cli_message(model, tmp_path):
    src, _ = model
    q = tmp_path / "q.gguf"
    gpuq.quantize(src, q, "Q8_0")
    r = subprocess.run([gpuq_bin(), "quantize", q, "-o", tmp_path / "cli.gguf", "--type", "Q4_0", "-q"],
                       capture_output=True, text=True)
    with pytest.raises(gpuq.GpuqError) as e:
        gpuq.quantize(q, tmp_path / "again.gguf", "Q4_0")
    assert r.returncode != 0 and str(e.value) in r.stderr, (str(e.value), r.stderr)
    assert "re-quantizing" in str(e.value)
    assert leftovers(tmp_path, "again.gguf") == []


def test_an_exception_in_the_callback_stops_the_job_and_leaves_nothing(model, tmp_path):
    src, _ = model
    calls = []

    def progress(done, total, name):
        calls.append(name)
        if len(calls) == 6:
            raise ValueError("stop here")

    with pytest.raises(ValueError, match="stop here"):
        gpuq.quantize(src, tmp_path / "out.gguf", "Q6_K", max_memory="1M", progress=progress)
    assert len(calls) == 6  # no call after the exception
    assert leftovers(tmp_path, "out.gguf") == []


CTRL_C_CHILD = textwrap.dedent(
    """
    import os, sys, gpuq
    src, dst = sys.argv[1], sys.argv[2]
    seen = []
    def progress(done, total, name):
        if not seen:
            print("started", flush=True)
        seen.append(done)
    try:
        gpuq.quantize(src, dst, "Q6_K", backend="cpu", threads=1, max_memory="1M", progress=progress)
        print("finished")
    except KeyboardInterrupt:
        left = [n for n in os.listdir(os.path.dirname(dst)) if n.startswith(os.path.basename(dst))]
        print("interrupted", len(seen), "left:", left)
    """
)


def test_ctrl_c_stops_a_job_and_leaves_nothing(tmp_path):
    src = tmp_path / "big.gguf"  # about 50 MB: seconds of work on one thread
    subprocess.run([sys.executable, str(FIXTURE), "make", str(src), "--layers", "4", "--embd", "1024",
                    "--ff", "2048", "--vocab", "2048", "--dtype", "f32"], check=True)
    child = subprocess.Popen([sys.executable, "-c", CTRL_C_CHILD, str(src), str(tmp_path / "out.gguf")],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "started"
    child.send_signal(signal.SIGINT)
    out, _ = child.communicate(timeout=120)
    assert child.returncode == 0, out
    assert out.startswith("interrupted") and out.strip().endswith("left: []"), out


def test_the_readme_example_runs():
    out = subprocess.run([sys.executable, str(EXAMPLE)], capture_output=True, text=True, check=True).stdout
    assert "Q8_0 bytes equal to gguf-py's: True" in out, out
    assert "quantized 21 tensors (16 converted)" in out and "GpuqError: " in out, out


def test_the_gpu_backend_gives_the_cpu_bytes():
    # on CI the adapter is lavapipe (software Vulkan); the kernels run all the same
    try:
        gpuq.backend("gpu")
    except gpuq.GpuqError as e:
        pytest.skip(f"no GPU adapter: {e}")
    x = data("heavy", (64, 1024), seed=13)
    for ty in ["Q8_0", "Q4_K", "Q6_K", "TQ2_0"]:
        q = gpuq.encode(x, ty, backend="gpu")
        assert np.array_equal(q, gpuq.encode(x, ty, backend="cpu")), ty
        same_floats(gpuq.decode(q, ty, backend="gpu"), gpuq.decode(q, ty, backend="cpu"))
