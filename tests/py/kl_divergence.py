"""KL divergence of quantized models' logits against their source, computed by llama.cpp.

  python3 kl_divergence.py REF.gguf SEED N_TOKENS MODEL.gguf [MODEL.gguf ...]

Evaluates the same N_TOKENS token ids (drawn from the vocabulary with SEED; BOS first) in every
model with logits for every position (F32 KV cache), softmaxes each position in float64 and
prints one JSON object: {"MODEL.gguf": mean over positions of sum p log(p/q), ...}, p from REF.
Exits 1 when a model's logits are not finite.
"""
import json
import sys

import numpy as np
from llama_cpp import Llama


def logits(path, tokens):
    llm = Llama(model_path=path, n_ctx=len(tokens) + 8, logits_all=True, n_threads=2,
                verbose=False, type_k=0, type_v=0, n_batch=len(tokens))
    llm.eval(tokens)
    out = np.array(llm.scores[: len(tokens)], dtype=np.float64)
    n_vocab = llm.n_vocab()
    del llm
    return out, n_vocab


def log_softmax(x):
    m = x.max(axis=1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))


def main():
    ref, seed, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = np.random.default_rng(seed)
    probe = Llama(model_path=ref, n_ctx=16, verbose=False, vocab_only=True)
    n_vocab = probe.n_vocab()
    del probe
    tokens = [1] + [int(t) for t in rng.integers(3, n_vocab, size=n - 1)]
    lp, _ = logits(ref, tokens)
    if not np.isfinite(lp).all():
        print(f"{ref}: logits not finite", file=sys.stderr)
        sys.exit(1)
    lp = log_softmax(lp)
    p = np.exp(lp)
    out = {}
    for path in sys.argv[4:]:
        lq, _ = logits(path, tokens)
        if not np.isfinite(lq).all():
            print(f"{path}: logits not finite", file=sys.stderr)
            sys.exit(1)
        lq = log_softmax(lq)
        out[path] = float((p * (lp - lq)).sum(axis=1).mean())
    print(json.dumps(out))


main()
