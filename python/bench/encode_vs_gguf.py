"""gpuq.encode vs gguf-py's gguf.quants.quantize on one float32 array (64 MB by default), per
type both encode, in one run; checks the bytes are equal. Not a test: a measurement.

    python3 python/bench/encode_vs_gguf.py [--mb 64] [--repeat 3] [--backend auto]
"""
import argparse
import os
import time

import gguf
import numpy as np
from gguf.quants import quantize

import gpuq


def best(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--gguf-repeat", type=int, default=1)
    ap.add_argument("--backend", default="auto")
    a = ap.parse_args()
    n = a.mb * (1 << 20) // 4
    x = np.random.default_rng(0).standard_normal((n // 4096, 4096), dtype=np.float32)
    print(f"array {x.shape} float32 ({x.nbytes >> 20} MiB), {gpuq.backend(a.backend).split(',')[0]}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    print(f"{'type':<6} {'gpuq s':>8} {'gguf-py s':>10} {'speed-up':>9} {'gpuq MB/s':>10}  bytes")
    for t in gguf.GGMLQuantizationType:
        if t.name not in gpuq.types() or not gpuq.types()[t.name]["encode"]:
            continue
        try:
            quantize(x[:1, :256], t)
        except NotImplementedError:
            continue
        g, ours = best(lambda: gpuq.encode(x, t.name, backend=a.backend), a.repeat)
        r, ref = best(lambda: quantize(x, t), a.gguf_repeat)
        same = np.array_equal(ours, np.ascontiguousarray(ref).view(np.uint8))
        print(f"{t.name:<6} {g:8.3f} {r:10.3f} {r / g:8.1f}x {x.nbytes / g / 1e6:10.0f}  "
              f"{'equal' if same else 'DIFFER'}")


if __name__ == "__main__":
    main()
