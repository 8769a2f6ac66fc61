# Decodes raw blocks with gguf-py (`gguf.quants.dequantize`) for bit comparisons against
# gpuq's CPU decoders.
# argv[1]: a manifest, one job per line: "TYPE_NAME raw.bin out.f32"
import sys

import numpy as np
from gguf import GGMLQuantizationType
from gguf.quants import dequantize

for line in open(sys.argv[1]):
    if not line.strip():
        continue
    name, raw_path, out_path = line.split()
    raw = np.fromfile(raw_path, dtype=np.uint8)
    out = dequantize(raw, GGMLQuantizationType[name])
    np.ascontiguousarray(out, dtype="<f4").reshape(-1).tofile(out_path)
