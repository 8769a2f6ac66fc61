"""Tiny random Hugging Face models, and an independent numpy forward pass checked against the
logits llama.cpp computes from a GGUF.

  make DIR ARCH SEED [--dtype f32|f16|bf16] [--shards N] [--tied] [--no-tokenizer] [--bias]
                     [--spm [--spm-no-tj] [--spm-unused N] [--spm-no-prefix]]
                     [--bpe-llama3 [--add-bos true|false]]
  check DIR GGUF TOL     prints "max_rel_err X" and exits 1 when X > TOL
  hash DIR TEXT_FILE     prints the sha256 llama.cpp's converter computes to identify the BPE
                         pre-tokenizer (transformers' AutoTokenizer on the check text)
  spm-check DIR GGUF SEED [--tokenize]
                         compares the GGUF's SentencePiece vocabulary with the one llama.cpp's
                         converter builds from the folder (re-derived here on the sentencepiece
                         library and gguf-py's SpecialVocab); with --tokenize, llama.cpp's
                         tokenization of seeded random strings with sentencepiece's; prints a
                         JSON summary and exits 1 on any mismatch

--bpe-llama3 shapes the gpt2 BPE tokenizer.json as Llama 3's (Split + ByteLevel pre-tokenizer,
BOS from a TemplateProcessing post-processor, tokenizer_class PreTrainedTokenizerFast);
--add-bos writes add_bos_token into its tokenizer_config.json.

--spm trains a small SentencePiece BPE model (as Llama's: identity normalization, byte
fallback, split digits, no whitespace folding) on a corpus generated from SEED, with a control
and a user-defined symbol, and writes it as tokenizer.model with added_tokens.json and a
tokenizer_config.json holding added_tokens_decoder (config vocab_size 640 > 600 pieces, so
padding ids exist). A minimal tokenizer.json carries the added tokens and a TemplateProcessing
post-processor unless --spm-no-tj. --spm-unused N marks N normal pieces UNUSED in the model.
--spm-no-prefix trains without SentencePiece's dummy prefix and sets tokenizer_config.json's
add_prefix_space to false (LlamaModel writes it as tokenizer.ggml.add_space_prefix).

  make-bitnet DIR SEED FORM [--old-names]   FORM: bf16 | packed-div | packed-mul
  check-bitnet DIR GGUF LINEAR EMBD [TOL] [--decoded]
                                            tensor names/types/shapes, the ternary values, and
                                            (TOL given) llama.cpp's logits vs a numpy forward;
                                            --decoded: float values decoded from a ternary type
                                            (zeros are +0, not the converter's signed zeros)
  llama-quantize IN OUT FTYPE               llama.cpp's quantizer (llama_model_quantize)
  same-tensors A B TYPE                     raw bytes of the TYPE tensors of A equal B's
  check-i2s SRC.gguf OUT.gguf [DEQ.gguf]    every I2_S tensor of OUT is the per-tensor absmean
                                            ternarization of SRC's tensor (DEQ: gpuq's F32
                                            decode of OUT holds trit * scale)

The forward pass follows the Hugging Face modelling code, not llama.cpp: RMSNorm, rotary
embedding in rotate_half layout on unpermuted q/k, grouped-query attention, SwiGLU, q/k/v
biases (qwen2), per-head q/k RMS norms before rotary (qwen3).

BitNet (microsoft/bitnet-b1.58-2B-4T's tensor names and config keys): the folder holds BF16
master weights (FORM bf16) or packed uint8 trits with a one-element BF16 weight_scale
(`quantization_config.quant_method` "bitnet"; packed-div: transformers' BitLinear, weight =
trit / weight_scale; packed-mul: AutoBitLinear offline, weight = trit * weight_scale). The
expected ternarization is computed here from the folder: BitNet's weight_quant in f32 (scale =
mean |w|, iscale = 1/scale, trit = round-half-even(w * iscale) clamped, value 1/iscale cast
back to bf16) for master weights, the stored trits and scale for packed ones. The forward pass
is llama.cpp's bitnet graph (sub-norms before o_proj and down_proj, tied output) with its
silu(gate) * up: llama.cpp's graph does not implement the checkpoint's relu2.
"""
import json
import struct
import sys
from pathlib import Path

import numpy as np

ARCHS = {
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
}


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def to_bf16(a):
    u = a.astype(np.float32).view(np.uint32).astype(np.uint64)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    return r


def bf16_to_f32(r):
    return (r.astype(np.uint32) << 16).view(np.float32)


def write_safetensors(path, tensors):
    """tensors: list of (name, dtype_name, shape, raw bytes)."""
    header = {"__metadata__": {"format": "pt"}}
    off = 0
    for name, dt, shape, raw in tensors:
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for _, _, _, raw in tensors:
            f.write(raw)


def config_for(arch):
    c = {
        "architectures": [ARCHS[arch]],
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 280,
        "max_position_embeddings": 128,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "tie_word_embeddings": False,
        "bos_token_id": None,
        "eos_token_id": 266,
    }
    if arch == "qwen3":
        c["head_dim"] = 32  # q width 128 differs from hidden_size 64
        c["rope_theta"] = 1000000.0
    if arch == "mistral":
        c["num_key_value_heads"] = 1
    return c


def make_weights(cfg, arch, rng, tied, bias):
    E, F, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    H, KV, V = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["vocab_size"]
    D = cfg.get("head_dim", E // H)
    w = {}

    def mat(*shape, scale=None):
        s = scale if scale is not None else 1.0 / np.sqrt(shape[-1])
        return (rng.standard_normal(shape) * s).astype(np.float32)

    def norm(n):
        return (1.0 + 0.2 * rng.standard_normal(n)).astype(np.float32)

    w["model.embed_tokens.weight"] = mat(V, E, scale=1.0)
    for l in range(L):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = norm(E)
        w[p + "self_attn.q_proj.weight"] = mat(H * D, E)
        w[p + "self_attn.k_proj.weight"] = mat(KV * D, E)
        w[p + "self_attn.v_proj.weight"] = mat(KV * D, E)
        w[p + "self_attn.o_proj.weight"] = mat(E, H * D)
        if arch == "qwen2" or bias:
            w[p + "self_attn.q_proj.bias"] = mat(H * D, scale=0.5)
            w[p + "self_attn.k_proj.bias"] = mat(KV * D, scale=0.5)
            w[p + "self_attn.v_proj.bias"] = mat(KV * D, scale=0.5)
        if arch == "qwen3":
            w[p + "self_attn.q_norm.weight"] = norm(D)
            w[p + "self_attn.k_norm.weight"] = norm(D)
        w[p + "post_attention_layernorm.weight"] = norm(E)
        w[p + "mlp.gate_proj.weight"] = mat(F, E)
        w[p + "mlp.up_proj.weight"] = mat(F, E)
        w[p + "mlp.down_proj.weight"] = mat(E, F)
        w[p + "self_attn.rotary_emb.inv_freq"] = (1.0 / (cfg["rope_theta"] ** (np.arange(0, D, 2) / D))).astype(np.float32)
    w["model.norm.weight"] = norm(E)
    if not tied:
        w["lm_head.weight"] = mat(V, E)
    return w


# Llama 3's pre-tokenizer split (what llama.cpp's llama-bpe pre-tokenizer implements)
LLAMA3_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"


def tokenizer_files(d, llama3=False, add_bos=None):
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    merges = [("\u0120", "t"), ("h", "e"), ("\u0120t", "he"), ("i", "n"), ("\u0120", "a"), ("e", "r"), ("o", "n"), ("\u0120", "s"), ("r", "e"), ("a", "t")]
    for a, b in merges:
        vocab[a + b] = len(vocab)
    eot = {"id": 266, "content": "<|endoftext|>", "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
    assert len(vocab) == 266
    tj = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [eot],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "", "end_of_word_suffix": "",
                  "fuse_unk": False, "byte_fallback": False, "vocab": vocab, "merges": [f"{a} {b}" for a, b in merges]},
    }
    tc = {"bos_token": None, "eos_token": "<|endoftext|>", "add_bos_token": False, "model_max_length": 128,
          "chat_template": "{% for m in messages %}<|im_start|>{{ m['content'] }}{% endfor %}"}
    if llama3:
        # shaped as Llama 3's: Split + ByteLevel pre-tokenizer, BOS added by a TemplateProcessing
        bot = dict(eot, content="<|begin_of_text|>")
        tj["added_tokens"] = [bot, dict(eot, id=267, content="<|end_of_text|>")]
        tj["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
        st = lambda t: {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": t}}
        sq = lambda n, t: {"Sequence": {"id": n, "type_id": t}}
        tj["post_processor"] = {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {"type": "TemplateProcessing", "single": [st(0), sq("A", 0)], "pair": [st(0), sq("A", 0), st(1), sq("B", 1)],
             "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [266], "tokens": ["<|begin_of_text|>"]}}}]}
        tc = {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>", "model_max_length": 128,
              "tokenizer_class": "PreTrainedTokenizerFast", "chat_template": tc["chat_template"]}
        if add_bos is not None:
            tc["add_bos_token"] = add_bos
    (d / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")
    (d / "tokenizer_config.json").write_text(json.dumps(tc), encoding="utf-8")


# rope_scaling blocks as HF configs write them; the context of these tiny models is 128 and the
# tests run up to 17 positions, so the scaled frequencies show in the logits.
ROPE = {
    "linear": {"rope_type": "linear", "factor": 4.0},
    "llama3": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 32},
    "yarn": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32,
             "beta_fast": 32.0, "beta_slow": 1.0},
}


def converter_hash(d, text_file):
    """get_vocab_base_pre's check: sha256 of str(AutoTokenizer.encode(chktxt))."""
    from hashlib import sha256

    from transformers import AutoTokenizer

    chktxt = Path(text_file).read_text(encoding="utf-8")
    tok = AutoTokenizer.from_pretrained(d)
    print(sha256(str(tok.encode(chktxt)).encode()).hexdigest())


SPM_PIECES = 600
SPM_VOCAB = 640
SPM_SYLLABLES = ["ka", "to", "ri", "ne", "sa", "mu", "lo", "pe", "qu", "zi", "the", "and", "ing", "ion", "er", "st", "ch", "sh"]
SPM_RARE = ["\u00e9", "\u00fc", "\u00df", "\u00f1", "\u00f8", "\u00e7", "\u03b1", "\u03b2", "\u03b3", "\u03bb", "\u65e5", "\u672c", "\u8a9e", "\u4e2d", "\u6587"]
# added tokens: (id, content, special) in tokenizer_config.json's added_tokens_decoder
SPM_ADDED = [(600, "<|im_start|>", False), (601, "\u2581extra\u2581tok", False), (602, "<mask_x>", True)]


def spm_corpus(seed, n=400):
    import random
    r = random.Random(seed)
    lines = []
    for _ in range(n):
        words = []
        for _ in range(r.randint(3, 14)):
            k = r.random()
            if k < 0.75:
                w = "".join(r.choice(SPM_SYLLABLES) for _ in range(r.randint(1, 4)))
            elif k < 0.85:
                w = str(r.randint(0, 99999))
            elif k < 0.95:
                w = "".join(r.choice(SPM_RARE) for _ in range(r.randint(1, 3)))
            else:
                w = r.choice(list(",.!?;()-"))
            if r.random() < 0.1:
                w = w.capitalize()
            words.append(w)
        lines.append(" ".join(words))
    return lines


def spm_train(seed, dummy_prefix=True):
    import io
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(spm_corpus(seed)), model_writer=buf, vocab_size=SPM_PIECES, model_type="bpe",
        byte_fallback=True, user_defined_symbols=["<sep>"], control_symbols=["<ctl>"],
        normalization_rule_name="identity", remove_extra_whitespaces=False, split_digits=True,
        allow_whitespace_only_pieces=True, num_threads=1, character_coverage=0.9995, minloglevel=2,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, add_dummy_prefix=dummy_prefix)
    return buf.getvalue()


def pb_varint(buf, i):
    v, shift = 0, 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return v, i


def pb_put_varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def pb_fields(buf):
    """Top-level (field number, wire type, raw field bytes including the tag, payload)."""
    i, out = 0, []
    while i < len(buf):
        start = i
        tag, i = pb_varint(buf, i)
        num, wt = tag >> 3, tag & 7
        if wt == 0:
            _, i = pb_varint(buf, i)
            payload = None
        elif wt == 1:
            i += 8
            payload = None
        elif wt == 5:
            i += 4
            payload = None
        elif wt == 2:
            n, i = pb_varint(buf, i)
            payload = buf[i:i + n]
            i += n
        else:
            raise ValueError(f"wire type {wt}")
        out.append((num, wt, buf[start:i], payload))
    return out


def spm_mark_unused(model, ids):
    """Rewrites the pieces whose index is in ids with type UNUSED (5)."""
    out, k = bytearray(), 0
    for num, wt, raw, payload in pb_fields(model):
        if num == 1 and wt == 2:
            if k in ids:
                fields = [f for f in pb_fields(payload) if f[0] != 3]
                body = b"".join(f[2] for f in fields) + bytes([3 << 3]) + pb_put_varint(5)
                raw = bytes([1 << 3 | 2]) + pb_put_varint(len(body)) + body
            k += 1
        out += raw
    return bytes(out)


def spm_tokenizer_files(d, seed, with_tj=True, unused=0, prefix=True):
    import sentencepiece as spm

    model = spm_train(seed, prefix)
    sp = spm.SentencePieceProcessor(model_proto=model)
    if unused:
        normal = [i for i in range(sp.vocab_size()) if not (sp.IsUnknown(i) or sp.IsControl(i) or sp.IsByte(i) or sp.IsUnused(i))]
        model = spm_mark_unused(model, set(normal[-unused:]))
    (d / "tokenizer.model").write_bytes(model)
    # added_tokens.json: a later line for the same id wins; the one past vocab_size is ignored
    added_json = '{"<|im_start|>": 600, "<far_away>": 5000, "\u2581extra\u2581tok": 601, "<mask_x>": 602}'
    (d / "added_tokens.json").write_text(added_json, encoding="utf-8")
    decoder = {str(i): {"content": c, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": sp_}
               for i, c, sp_ in [(0, "<unk>", True), (1, "<s>", True), (2, "</s>", True)] + SPM_ADDED}
    decoder["9999"] = {"content": "<beyond>", "special": True}
    tc = {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
          "pad_token": None, "legacy": False, "added_tokens_decoder": decoder, "model_max_length": 128,
          "chat_template": "{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}"}
    if not prefix:
        tc["add_prefix_space"] = False
    (d / "tokenizer_config.json").write_text(json.dumps(tc, ensure_ascii=False), encoding="utf-8")
    if with_tj:
        added = [{"id": int(i), "content": v["content"], "single_word": False, "lstrip": False, "rstrip": False,
                  "normalized": False, "special": v["special"]} for i, v in decoder.items() if int(i) < SPM_VOCAB]
        tj = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
              "pre_tokenizer": None,
              "post_processor": {"type": "TemplateProcessing",
                                 "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                                 "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                          {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                                 "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
              "decoder": None,
              "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                        "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "vocab": {}, "merges": []}}
        (d / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")


def spm_expected(d, n_vocab):
    """The token list convert_hf_to_gguf.py's _create_vocab_sentencepiece builds for folder d."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(d / "tokenizer.model"))
    tokens = [f"[PAD{i}]" for i in range(n_vocab)]
    scores = [-10000.0] * n_vocab
    types = [5] * n_vocab
    for i in range(min(sp.vocab_size(), n_vocab)):
        t = 1
        if sp.IsUnknown(i):
            t = 2
        elif sp.IsControl(i):
            t = 3
        elif sp.IsUnused(i):
            t = 5
        elif sp.IsByte(i):
            t = 6
        tokens[i], scores[i], types[i] = sp.IdToPiece(i), sp.GetScore(i), t
    if (d / "added_tokens.json").is_file():
        for k, i in json.loads((d / "added_tokens.json").read_text(encoding="utf-8")).items():
            if i < n_vocab:
                tokens[i], scores[i], types[i] = k, -1000.0, 4
    tc = json.loads((d / "tokenizer_config.json").read_text(encoding="utf-8")) if (d / "tokenizer_config.json").is_file() else {}
    for k, v in tc.get("added_tokens_decoder", {}).items():
        i = int(k)
        if i >= n_vocab:
            continue
        c = v["content"]
        looks = c in ("<pad>", "<mask>", "<2mass>", "[@BOS@]") or (c.startswith("<|") and c.endswith("|>")) \
            or (c.startswith("<\uff5c") and c.endswith("\uff5c>")) or (c.startswith("<unused") and c.endswith(">"))
        if v.get("special") or looks:
            types[i] = 3
        else:
            c = c.replace("\u2581", " ")
            types[i] = 4
        tokens[i], scores[i] = c, -1000.0
    return sp, tokens, scores, types


def spm_strings(seed, n=40):
    """Seeded random strings: corpus syllables, digits, whitespace runs, punctuation, characters
    the corpus has (rare ones included) and ones it lacks (byte fallback), the symbols."""
    import random
    r = random.Random(seed * 7919 + 1)
    absent = ["w", "x", "\u0416", "\u044f", "\ud55c", "\U0001f600", "\U0001f680", "\u00c5", "\u20ac", "\u0100"]
    out = []
    for _ in range(n):
        parts = []
        for _ in range(r.randint(1, 12)):
            k = r.random()
            if k < 0.35:
                parts.append("".join(r.choice(SPM_SYLLABLES) for _ in range(r.randint(1, 3))))
            elif k < 0.5:
                parts.append(str(r.randint(0, 10 ** r.randint(1, 8))))
            elif k < 0.62:
                parts.append("".join(r.choice([" ", " ", "\t", "\n"]) for _ in range(r.randint(1, 5))))
            elif k < 0.72:
                parts.append(r.choice(SPM_RARE))
            elif k < 0.85:
                parts.append("".join(r.choice(absent) for _ in range(r.randint(1, 3))))
            elif k < 0.93:
                parts.append(r.choice(list(",.!?;()-'\"")))
            else:
                parts.append(" ")
            if r.random() < 0.5:
                parts.append(" ")
        out.append("".join(parts))
    out += ["", " ", "  leading", "trailing  ", "\U0001f600", "12345678", "ka to ri"]
    return out


def spm_check(d, gguf_path, seed, tokenize):
    import gguf

    d = Path(d)
    cfg = json.loads((d / "config.json").read_text())
    n_vocab = cfg["vocab_size"]
    r = gguf.GGUFReader(gguf_path)
    md = {k: f.contents() for k, f in r.fields.items() if k.startswith("tokenizer.")}
    sp, tokens, scores, types = spm_expected(d, n_vocab)
    bad = []
    got_tok, got_sc, got_ty = md.get("tokenizer.ggml.tokens", []), md.get("tokenizer.ggml.scores", []), md.get("tokenizer.ggml.token_type", [])
    if not (len(got_tok) == len(got_sc) == len(got_ty) == n_vocab):
        bad.append(f"lengths {len(got_tok)} {len(got_sc)} {len(got_ty)} != {n_vocab}")
    diff = [i for i in range(min(n_vocab, len(got_tok), len(got_sc), len(got_ty)))
            if (got_tok[i], got_sc[i], got_ty[i]) != (tokens[i], scores[i], types[i])]
    bad += [f"id {i}: got {(got_tok[i], got_sc[i], got_ty[i])!r} want {(tokens[i], scores[i], types[i])!r}" for i in diff[:10]]
    # the rest of tokenizer.*, as gguf-py's SpecialVocab (the converter's own code) finds it
    sv = gguf.SpecialVocab(d, n_vocab=n_vocab)
    names = {"bos": "bos", "eos": "eos", "unk": "unknown", "sep": "seperator", "pad": "padding", "cls": "cls", "mask": "mask"}
    want = {"tokenizer.ggml.model": "llama", "tokenizer.ggml.pre": "default"}
    for typ, tid in sv.special_token_ids.items():
        want[f"tokenizer.ggml.{names[typ]}_token_id"] = tid
    for typ, v in sv.add_special_token.items():
        if typ in ("bos", "eos", "sep"):
            want[f"tokenizer.ggml.add_{typ}_token"] = v
    if sv.chat_template is not None:
        want["tokenizer.chat_template"] = sv.chat_template
    tc = json.loads((d / "tokenizer_config.json").read_text(encoding="utf-8"))
    if cfg["architectures"][0] in ("LlamaForCausalLM", "MistralForCausalLM") and "add_prefix_space" in tc:
        want["tokenizer.ggml.add_space_prefix"] = bool(tc["add_prefix_space"])
    for k, v in want.items():
        if md.get(k) != v:
            bad.append(f"{k}: got {md.get(k)!r} want {v!r}")
    extra = set(md) - set(want) - {"tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"}
    if extra:
        bad.append(f"unexpected keys {sorted(extra)}")
    summary = {"pieces": sp.vocab_size(), "n_vocab": n_vocab, "vocab_mismatches": len(diff),
               "types": {t: types.count(t) for t in sorted(set(types))}, "keys": sorted(want)}
    if tokenize:
        from llama_cpp import Llama

        llm = Llama(model_path=str(gguf_path), vocab_only=True, verbose=False)
        bos = sv.special_token_ids["bos"]
        prefix = md.get("tokenizer.ggml.add_space_prefix", True)
        strings = spm_strings(seed)
        added = [c.replace("\u2581", " ") for _, c, _ in SPM_ADDED]
        assert not any(a in s for s in strings for a in added)
        tok_bad, rt_bad, n_tok, n_bytes = 0, 0, 0, 0
        for s in strings:
            want_ids = [bos] + sp.encode(s)
            got_ids = llm.tokenize(s.encode("utf-8"), add_bos=True, special=False)
            n_tok += len(want_ids)
            n_bytes += sum(1 for i in want_ids if sp.IsByte(i))
            if got_ids != want_ids:
                tok_bad += 1
                if tok_bad <= 5:
                    bad.append(f"tokenize {s!r}: llama.cpp {got_ids} sentencepiece {want_ids}")
            # llama.cpp's pieces joined (llama-cpp-python's own leading-space trim after BOS
            # is avoided by leaving BOS out): the space prefix, when added, comes back
            back = llm.detokenize(got_ids[1:]).decode("utf-8", errors="replace")
            want_back = " " + s if prefix and s else s
            if back != want_back or sp.decode(want_ids[1:]) != s:
                rt_bad += 1
                if rt_bad <= 5:
                    bad.append(f"round trip {s!r}: llama.cpp {back!r} sentencepiece {sp.decode(want_ids[1:])!r}")
        summary.update({"strings": len(strings), "tokens": n_tok, "byte_tokens": n_bytes,
                        "tokenize_mismatches": tok_bad, "roundtrip_mismatches": rt_bad})
    summary["errors"] = bad
    print(json.dumps(summary))
    sys.exit(1 if bad else 0)


def llamahf_tokenizer_files(d, seed):
    """A Llama tokenizer.json without tokenizer.model (byte-fallback BPE, as HF's LlamaTokenizerFast
    saves it): vocab and merges from a trained SentencePiece BPE model, plus two added tokens
    past the base vocabulary (one special). Returns the number of tokens."""
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_proto=spm_train(seed, True))
    vocab = {sp.id_to_piece(i): i for i in range(sp.vocab_size())}
    merges = []
    for piece, i in sorted(vocab.items(), key=lambda kv: kv[1]):
        local = [(piece[:k], piece[k:]) for k in range(1, len(piece)) if piece[:k] in vocab and piece[k:] in vocab]
        local.sort(key=lambda lr: (vocab[lr[0]], vocab[lr[1]]))
        merges += [f"{l} {r}" for l, r in local]
    n = len(vocab)
    extra = [(0, "<unk>", True), (1, "<s>", True), (2, "</s>", True), (n, "<|extra|>", False), (n + 1, "<|ctl|>", True)]
    added = [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
              "special": s} for i, c, s in extra]
    tj = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
          "normalizer": {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                                            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
          "pre_tokenizer": None,
          "post_processor": {"type": "TemplateProcessing",
                             "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                             "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                                      {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                             "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}},
          "decoder": {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                                                      {"type": "ByteFallback"}, {"type": "Fuse"},
                                                      {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
          "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                    "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                    "vocab": vocab, "merges": merges}}
    (d / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")
    dec = {str(i): {"content": c, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": s}
           for i, c, s in extra}
    tc = {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
          "pad_token": None, "legacy": False, "added_tokens_decoder": dec, "model_max_length": 128,
          "tokenizer_class": "LlamaTokenizer"}
    (d / "tokenizer_config.json").write_text(json.dumps(tc, ensure_ascii=False), encoding="utf-8")
    return n + 2


def llamahf_check(d, gguf_path):
    """The GGUF's tokens, scores and types against gguf-py's LlamaHfVocab (which reads the folder
    through transformers, as convert_hf_to_gguf.py's _set_vocab_llama_hf does)."""
    import gguf
    from gguf.vocab import LlamaHfVocab

    want = list(LlamaHfVocab(Path(d)).all_tokens())
    r = gguf.GGUFReader(gguf_path)
    f = r.fields
    toks = [bytes(f["tokenizer.ggml.tokens"].parts[i]) for i in f["tokenizer.ggml.tokens"].data]
    scores = [float(f["tokenizer.ggml.scores"].parts[i][0]) for i in f["tokenizer.ggml.scores"].data]
    types = [int(f["tokenizer.ggml.token_type"].parts[i][0]) for i in f["tokenizer.ggml.token_type"].data]
    model = bytes(f["tokenizer.ggml.model"].parts[-1]).decode()
    bad = [f"{i}: gguf {(toks[i], scores[i], types[i])} converter {w}" for i, w in enumerate(want)
           if i >= len(toks) or (toks[i], scores[i], types[i]) != (w[0], w[1], int(w[2]))]
    if len(toks) != len(want):
        bad.append(f"{len(toks)} tokens, the converter has {len(want)}")
    if model != "llama" or "tokenizer.ggml.merges" in f:
        bad.append(f"model {model}, merges {'tokenizer.ggml.merges' in f}")
    from collections import Counter
    print(json.dumps({"tokens": len(toks), "types": Counter(types), "errors": bad[:10]}))
    sys.exit(1 if bad else 0)

def make(d, arch, seed, dtype="f32", shards=1, tied=False, no_tok=False, bias=False, spm=False, spm_tj=True, spm_unused=0,
         spm_prefix=True, llama3=False, add_bos=None, rope=None, llamahf=False):
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    cfg = config_for(arch)
    cfg["tie_word_embeddings"] = tied
    if rope:
        cfg["rope_scaling"] = ROPE[rope]
    if spm:
        cfg.update({"vocab_size": SPM_VOCAB, "bos_token_id": 1, "eos_token_id": 2})
    if llamahf:
        cfg.update({"vocab_size": SPM_PIECES + 2, "bos_token_id": 1, "eos_token_id": 2})
    rng = np.random.default_rng(seed)
    w = make_weights(cfg, arch, rng, tied, bias)
    (d / "config.json").write_text(json.dumps(cfg, indent=1))
    if spm:
        spm_tokenizer_files(d, seed, spm_tj, spm_unused, spm_prefix)
    elif llamahf:
        llamahf_tokenizer_files(d, seed)
    elif not no_tok:
        tokenizer_files(d, llama3, add_bos)
    items = []
    for name, a in w.items():
        if dtype == "bf16" and a.ndim == 2:
            items.append((name, "BF16", a.shape, to_bf16(a).tobytes()))
        elif dtype == "f16" and a.ndim == 2:
            items.append((name, "F16", a.shape, a.astype(np.float16).tobytes()))
        else:
            items.append((name, "F32", a.shape, a.astype(np.float32).tobytes()))
    if shards == 1:
        write_safetensors(d / "model.safetensors", items)
        return
    per = (len(items) + shards - 1) // shards
    wm = {}
    total = 0
    for s in range(shards):
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = items[s * per:(s + 1) * per]
        write_safetensors(d / fname, part)
        for name, _, _, raw in part:
            wm[name] = fname
            total += len(raw)
    (d / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": wm}, indent=1))


def read_safetensors(d):
    d = Path(d)
    files = sorted(d.glob("*.safetensors"))
    out = {}
    for f in files:
        raw = f.read_bytes()
        n = struct.unpack("<Q", raw[:8])[0]
        h = json.loads(raw[8:8 + n])
        base = 8 + n
        for name, e in h.items():
            if name == "__metadata__":
                continue
            b, en = e["data_offsets"]
            buf = raw[base + b:base + en]
            if e["dtype"] == "F32":
                a = np.frombuffer(buf, dtype=np.float32)
            elif e["dtype"] == "F16":
                a = np.frombuffer(buf, dtype=np.float16).astype(np.float32)
            elif e["dtype"] == "BF16":
                a = bf16_to_f32(np.frombuffer(buf, dtype=np.uint16))
            else:
                raise ValueError(e["dtype"])
            out[name] = a.reshape(e["shape"]).astype(np.float64)
    return out


def rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def rope_inv_freq(cfg, D, theta):
    """Rotary inverse frequencies and the cos/sin scale, as transformers' rope_init_fns give."""
    inv = 1.0 / (theta ** (np.arange(0, D, 2, dtype=np.float64) / D))
    rs = cfg.get("rope_scaling") or {}
    kind = rs.get("rope_type", rs.get("type"))
    if kind == "linear":
        return inv / rs["factor"], 1.0
    if kind == "llama3":
        f, lo, hi, orig = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"], rs["original_max_position_embeddings"]
        wavelen = 2 * np.pi / inv
        smooth = (orig / wavelen - lo) / (hi - lo)
        out = np.where(wavelen > orig / lo, inv / f, inv)
        mid = (wavelen >= orig / hi) & (wavelen <= orig / lo)
        return np.where(mid, (1 - smooth) * inv / f + smooth * inv, out), 1.0
    if kind == "yarn":
        f, orig = rs["factor"], rs["original_max_position_embeddings"]
        bf, bs = rs.get("beta_fast", 32.0), rs.get("beta_slow", 1.0)

        def corr_dim(n_rot):
            return (D * np.log(orig / (n_rot * 2 * np.pi))) / (2 * np.log(theta))

        low = max(np.floor(corr_dim(bf)), 0)
        high = min(np.ceil(corr_dim(bs)), D - 1)
        if low == high:
            high += 0.001
        ramp = np.clip((np.arange(D // 2, dtype=np.float64) - low) / (high - low), 0, 1)
        extrap = 1 - ramp
        return (inv / f) * (1 - extrap) + inv * extrap, 0.1 * np.log(f) + 1.0
    return inv, 1.0


def forward(cfg, w, ids):
    E, L = cfg["hidden_size"], cfg["num_hidden_layers"]
    H = cfg["num_attention_heads"]
    KV = cfg.get("num_key_value_heads", H)
    D = cfg.get("head_dim") or E // H
    eps, theta = cfg["rms_norm_eps"], cfg.get("rope_theta", 10000.0)
    arch = cfg["architectures"][0]
    T = len(ids)
    x = w["model.embed_tokens.weight"][ids]
    inv, mscale = rope_inv_freq(cfg, D, theta)
    ang = np.arange(T)[:, None] * inv[None, :]
    emb = np.concatenate([ang, ang], axis=-1)
    cos, sin = mscale * np.cos(emb)[:, None, :], mscale * np.sin(emb)[:, None, :]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for l in range(L):
        p = f"model.layers.{l}."
        h = rmsnorm(x, w[p + "input_layernorm.weight"], eps)

        def proj(n):
            y = h @ w[p + f"self_attn.{n}_proj.weight"].T
            if p + f"self_attn.{n}_proj.bias" in w:
                y = y + w[p + f"self_attn.{n}_proj.bias"]
            return y

        q = proj("q").reshape(T, H, D)
        k = proj("k").reshape(T, KV, D)
        v = proj("v").reshape(T, KV, D)
        if arch == "Qwen3ForCausalLM":
            q = rmsnorm(q, w[p + "self_attn.q_norm.weight"], eps)
            k = rmsnorm(k, w[p + "self_attn.k_norm.weight"], eps)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        out = np.zeros((T, H, D))
        for hh in range(H):
            kh = hh // (H // KV)
            s = q[:, hh, :] @ k[:, kh, :].T / np.sqrt(D) + mask
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            s /= s.sum(axis=-1, keepdims=True)
            out[:, hh, :] = s @ v[:, kh, :]
        x = x + out.reshape(T, H * D) @ w[p + "self_attn.o_proj.weight"].T
        h = rmsnorm(x, w[p + "post_attention_layernorm.weight"], eps)
        g = h @ w[p + "mlp.gate_proj.weight"].T
        u = h @ w[p + "mlp.up_proj.weight"].T
        x = x + ((g / (1.0 + np.exp(-g))) * u) @ w[p + "mlp.down_proj.weight"].T
    x = rmsnorm(x, w["model.norm.weight"], eps)
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return x @ head.T


# ---------------------------------------------------------------------------------- BitNet

BITNET_LINEAR = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
BITNET_NORMS = {
    "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
    "self_attn.attn_sub_norm": "attn_sub_norm", "mlp.ffn_sub_norm": "ffn_sub_norm",
}
OLD_NAMES = {"self_attn.attn_sub_norm": "self_attn.inner_attn_ln", "mlp.ffn_sub_norm": "mlp.ffn_layernorm"}


def bitnet_config(form, old_names):
    c = {
        "architectures": ["BitnetForCausalLM" if old_names else "BitNetForCausalLM"],
        "model_type": "bitnet",
        "hidden_size": 256,
        "intermediate_size": 512,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 280,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0,
        "hidden_act": "relu2",
        "attention_bias": False,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "bos_token_id": None,
        "eos_token_id": 266,
    }
    if form == "packed-div":
        c["quantization_config"] = {"quant_method": "bitnet"}
    elif form == "packed-mul":
        c["quantization_config"] = {"quant_method": "bitnet", "linear_class": "autobitlinear",
                                    "quantization_mode": "offline"}
    return c


def round_bf16(a):
    return bf16_to_f32(to_bf16(a))


def weight_quant(w32):
    """BitNet's weight_quant in f32: (trits, value of a trit 1 in f32 before the cast, iscale, w*iscale)."""
    s = np.float32(np.mean(np.abs(w32), dtype=np.float64))
    s = max(s, np.float32(1e-5))
    iscale = np.float32(1) / s
    y = (w32 * iscale).astype(np.float32)
    trit = (y > 0.5).astype(np.int8) - (y < -0.5).astype(np.int8)
    return trit, np.float32(1) / iscale, iscale, y


def make_bitnet(d, seed, form, old_names=False):
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    cfg = bitnet_config(form, old_names)
    rng = np.random.default_rng(seed)
    E, F, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    H, KV, V = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["vocab_size"]
    D = E // H
    (d / "config.json").write_text(json.dumps(cfg, indent=1))
    tokenizer_files(d)

    def norm(n):
        return (1.0 + 0.2 * rng.standard_normal(n)).astype(np.float32)

    items = []

    def put(name, a):
        items.append((name, "BF16", a.shape, to_bf16(a).tobytes()))

    put("model.embed_tokens.weight", rng.standard_normal((V, E)).astype(np.float32))
    shapes = {"self_attn.q_proj": (H * D, E), "self_attn.k_proj": (KV * D, E),
              "self_attn.v_proj": (KV * D, E), "self_attn.o_proj": (E, H * D),
              "mlp.gate_proj": (F, E), "mlp.up_proj": (F, E), "mlp.down_proj": (E, F)}
    for l in range(L):
        p = f"model.layers.{l}."
        for hf, n in [("input_layernorm", E), ("post_attention_layernorm", E),
                      ("self_attn.attn_sub_norm", E), ("mlp.ffn_sub_norm", F)]:
            put(p + (OLD_NAMES.get(hf, hf) if old_names else hf) + ".weight", norm(n))
        for k, (o, i) in shapes.items():
            # master weights of a few shapes of distribution, one scale per tensor
            a = rng.standard_normal((o, i)) if k != "mlp.down_proj" else rng.standard_t(3, (o, i))
            w = (a * 10 ** rng.uniform(-2.5, -0.5)).astype(np.float32)
            name = p + k + ".weight"
            if form == "bf16":
                put(name, w)
                continue
            trit, v, iscale, _ = weight_quant(round_bf16(w))
            ws = np.float32(1) / iscale if form == "packed-mul" else iscale
            codes = (trit + 1).astype(np.uint8)
            R = o // 4
            packed = np.zeros((R, i), dtype=np.uint8)
            for kk in range(4):
                packed |= codes[kk * R:(kk + 1) * R] << (2 * kk)
            items.append((name, "U8", packed.shape, packed.tobytes()))
            items.append((name + "_scale", "BF16", (1,), to_bf16(np.array([ws], dtype=np.float32)).tobytes()))
    put("model.norm.weight", norm(E))
    items.sort(key=lambda t: t[0])
    write_safetensors(d / "model.safetensors", items)


def read_raw_safetensors(d):
    out = {}
    for f in sorted(Path(d).glob("*.safetensors")):
        raw = f.read_bytes()
        n = struct.unpack("<Q", raw[:8])[0]
        h = json.loads(raw[8:8 + n])
        for name, e in h.items():
            if name == "__metadata__":
                continue
            b, en = e["data_offsets"]
            out[name] = (e["dtype"], e["shape"], raw[8 + n + b:8 + n + en])
    return out


def bitnet_expected(d):
    """config, and per GGUF name: ("ternary", trit[out,in], v, boundary mask) or ("float", f32 array)."""
    cfg = json.loads((Path(d) / "config.json").read_text())
    qc = cfg.get("quantization_config") or {}
    mul = qc.get("linear_class") == "autobitlinear"
    raw = read_raw_safetensors(d)
    inv_old = {v: k for k, v in OLD_NAMES.items()}
    exp = {}
    for name, (dt, shape, buf) in raw.items():
        if name.endswith(".weight_scale"):
            continue
        if dt == "U8":
            packed = np.frombuffer(buf, dtype=np.uint8).reshape(shape)
            codes = np.concatenate([(packed >> (2 * k)) & 3 for k in range(4)], axis=0)
            ws = bf16_to_f32(np.frombuffer(raw[name + "_scale"][2], dtype=np.uint16))[0]
            v = np.float32(ws) if mul else np.float32(1) / np.float32(ws)
            val = ("ternary", codes.astype(np.int8) - 1, v, np.zeros(codes.shape, dtype=bool))
        else:
            a = bf16_to_f32(np.frombuffer(buf, dtype=np.uint16)).reshape(shape)
            val = ("float", a)
        if name == "model.embed_tokens.weight":
            g = "token_embd.weight"
        elif name == "model.norm.weight":
            g = "output_norm.weight"
        else:
            l, rest = name[len("model.layers."):].split(".", 1)
            rest = rest[:-len(".weight")]
            rest = inv_old.get(rest, rest)
            if rest in BITNET_LINEAR:
                g = f"blk.{l}.{BITNET_LINEAR[rest]}.weight"
                if val[0] == "float":
                    trit, v1, _, y = weight_quant(val[1])
                    near = np.abs(np.abs(y) - np.float32(0.5)) <= np.float32(2.0 ** -20)
                    # the converter casts 1/iscale back to the checkpoint's bf16
                    val = ("ternary", trit, round_bf16(np.array([v1]))[0], near, y)
            else:
                g = f"blk.{l}.{BITNET_NORMS[rest]}.weight"
        exp[g] = val
    return cfg, exp


def patch_gguf_i2s():
    """gguf-py 0.19 does not know bitnet.cpp's type id 36: add I2_S (codes only; the 32-byte
    trailer after them is read from the file)."""
    import enum
    from gguf import constants, gguf_reader
    T = constants.GGMLQuantizationType
    if "I2_S" in T.__members__:
        return T
    E = enum.IntEnum("GGMLQuantizationType", [(m.name, m.value) for m in T] + [("I2_S", 36)])
    constants.GGML_QUANT_SIZES[36] = (128, 32)
    gguf_reader.GGMLQuantizationType = E
    return E


def f16_round(a):
    return np.asarray(a, dtype=np.float32).astype(np.float16).astype(np.float32)


def decode_i2s_codes(codes_bytes, n):
    b = np.frombuffer(codes_bytes, dtype=np.uint8).reshape(-1, 32)
    out = np.zeros((b.shape[0], 128), dtype=np.int8)
    for k in range(4):
        out[:, k * 32:(k + 1) * 32] = ((b >> (6 - 2 * k)) & 3).astype(np.int8)
    return out.reshape(n)


def check_bitnet(d, path, linear, embd, tol, decoded=False):
    import gguf
    patch_gguf_i2s()
    cfg, exp = bitnet_expected(d)
    r = gguf.GGUFReader(path)
    got = {t.name: t for t in r.tensors}
    assert set(got) == set(exp), (sorted(set(got) ^ set(exp)))
    L = cfg["num_hidden_layers"]
    assert len(got) == 2 + 11 * L, len(got)
    arch = r.fields["general.architecture"].contents()
    assert arch == "bitnet", arch
    raw_file = np.memmap(path, dtype=np.uint8, mode="r")
    weights = {}
    n_tern = n_elems = n_near = 0
    for name, e in exp.items():
        t = got[name]
        tname = t.tensor_type.name
        want_shape = list(reversed(e[1].shape))
        assert [int(x) for x in t.shape] == want_shape, (name, list(t.shape), want_shape)
        if e[0] == "float":
            want_t = embd if name == "token_embd.weight" else "F32"
            assert tname == want_t, (name, tname, want_t)
            a = e[1]
            if tname == "F32":
                assert np.array_equal(np.asarray(t.data, dtype=np.float32).reshape(a.shape), a), name
            weights[name] = dequant(t, a.shape)
            continue
        assert tname == linear, (name, tname, linear)
        trit, v, near = e[1], np.float32(e[2]), e[3]
        out, inn = trit.shape
        n_tern += 1
        n_elems += trit.size
        if tname in ("TQ1_0", "TQ2_0"):
            y = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type).reshape(out, inn)
            d_ = f16_round(v)
            got_trit = np.rint(y / d_).astype(np.int8)
            assert np.array_equal(y, got_trit.astype(np.float32) * d_), (name, "values are not trit * f16(v)")
        elif tname == "I2_S":
            n = trit.size
            got_trit = decode_i2s_codes(np.asarray(t.data).tobytes(), n).reshape(out, inn) - 1
            tail = np.asarray(raw_file[t.data_offset + n // 4:t.data_offset + n // 4 + 32])
            scale = tail[:4].view(np.float32)[0]
            assert scale == v, (name, scale, v)
            assert not tail[4:].any(), (name, "trailer padding is not zero")
            d_ = v
        else:
            y = np.asarray(t.data, dtype=np.float32).reshape(out, inn) if tname != "BF16" else \
                bf16_to_f32(np.asarray(t.data).view(np.uint16)).reshape(out, inn)
            if tname == "F16":
                d_ = f16_round(v)
            elif tname == "BF16":
                d_ = round_bf16(np.array([v]))[0]
            else:
                d_ = v
            got_trit = np.rint(y / d_).astype(np.int8)
            assert np.array_equal(y, got_trit.astype(np.float32) * d_), (name, "values are not trit * v")
            if len(e) > 4 and not decoded:
                # zeros keep the sign of w * iscale (torch's -0.0 from round)
                z = got_trit == 0
                assert np.array_equal(np.signbit(y[z]), np.signbit(e[4][z])), (name, "sign of zeros")
        bad = got_trit != trit
        assert not (bad & ~near).any(), (name, int((bad & ~near).sum()), "trits differ")
        n_near += int(bad.sum())
        weights[name] = trit.astype(np.float32) * d_
    print(f"tensors {len(got)} ternary {n_tern} elements {n_elems} tie_flips {n_near}")
    if tol is None:
        return
    from llama_cpp import Llama
    llm = Llama(model_path=str(path), n_ctx=64, logits_all=True, n_threads=2, verbose=False, type_k=0, type_v=0)
    rng = np.random.default_rng(7)
    worst = 0.0
    for n in (1, 5, 17):
        ids = [int(i) for i in rng.integers(0, 266, n)]
        ref = bitnet_forward(cfg, weights, ids)
        llm.reset()
        llm.eval(ids)
        got_l = np.array(llm.scores[:n], dtype=np.float64)
        assert got_l.shape == ref.shape, (got_l.shape, ref.shape)
        assert np.isfinite(got_l).all()
        worst = max(worst, np.abs(got_l - ref).max() / np.abs(ref).max())
    print(f"max_rel_err {worst:.3e}")
    sys.exit(0 if worst <= tol else 1)


def dequant(t, shape):
    import gguf
    a = gguf.quants.dequantize(np.asarray(t.data), t.tensor_type)
    return np.asarray(a, dtype=np.float32).reshape(shape)


def bitnet_forward(cfg, w, ids):
    """llama.cpp's bitnet graph (src/models/bitnet.cpp) in float64 numpy."""
    E, L = cfg["hidden_size"], cfg["num_hidden_layers"]
    H, KV = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = E // H
    eps, theta = cfg["rms_norm_eps"], cfg["rope_theta"]
    w = {k: v.astype(np.float64) for k, v in w.items()}
    T = len(ids)
    x = w["token_embd.weight"][ids]
    inv = 1.0 / (theta ** (np.arange(0, D, 2, dtype=np.float64) / D))
    ang = np.arange(T)[:, None] * inv[None, :]
    emb = np.concatenate([ang, ang], axis=-1)
    cos, sin = np.cos(emb)[:, None, :], np.sin(emb)[:, None, :]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for l in range(L):
        p = f"blk.{l}."
        h = rmsnorm(x, w[p + "attn_norm.weight"], eps)
        q = (h @ w[p + "attn_q.weight"].T).reshape(T, H, D)
        k = (h @ w[p + "attn_k.weight"].T).reshape(T, KV, D)
        v = (h @ w[p + "attn_v.weight"].T).reshape(T, KV, D)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        out = np.zeros((T, H, D))
        for hh in range(H):
            kh = hh // (H // KV)
            s = q[:, hh, :] @ k[:, kh, :].T / np.sqrt(D) + mask
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            s /= s.sum(axis=-1, keepdims=True)
            out[:, hh, :] = s @ v[:, kh, :]
        a = rmsnorm(out.reshape(T, H * D), w[p + "attn_sub_norm.weight"], eps)
        x = x + a @ w[p + "attn_output.weight"].T
        h = rmsnorm(x, w[p + "ffn_norm.weight"], eps)
        g = h @ w[p + "ffn_gate.weight"].T
        u = h @ w[p + "ffn_up.weight"].T
        a = rmsnorm((g / (1.0 + np.exp(-g))) * u, w[p + "ffn_sub_norm.weight"], eps)
        x = x + a @ w[p + "ffn_down.weight"].T
    x = rmsnorm(x, w["output_norm.weight"], eps)
    return x @ w["token_embd.weight"].T


def llama_quantize(src, dst, ftype):
    import ctypes
    import llama_cpp
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = ftype
    p.nthread = 2
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(p))
    sys.exit(rc)


def same_tensors(a, b, ty):
    import gguf
    ta = {t.name: t for t in gguf.GGUFReader(a).tensors}
    tb = {t.name: t for t in gguf.GGUFReader(b).tensors}
    names = [n for n, t in ta.items() if t.tensor_type.name == ty]
    diff = [n for n in names if n not in tb or tb[n].tensor_type.name != ty
            or np.asarray(ta[n].data).tobytes() != np.asarray(tb[n].data).tobytes()]
    blocks = sum(np.asarray(ta[n].data).size for n in names)
    print(f"same {len(names) - len(diff)} differ {len(diff)} bytes {blocks} {' '.join(diff)}")
    sys.exit(0 if names and not diff else 1)


def check_i2s(src, out, deq=None):
    import gguf
    patch_gguf_i2s()
    s_t = {t.name: t for t in gguf.GGUFReader(src).tensors}
    o_r = gguf.GGUFReader(out)
    o_t = {t.name: t for t in o_r.tensors}
    d_t = {t.name: t for t in gguf.GGUFReader(deq).tensors} if deq else {}
    assert o_r.fields["general.file_type"].contents() == 40
    raw = np.memmap(out, dtype=np.uint8, mode="r")
    n_i2s = n_el = flips = 0
    for name, t in o_t.items():
        st = s_t[name]
        kind = t.tensor_type.name
        if name in ("token_embd.weight", "output.weight"):
            assert kind == st.tensor_type.name, (name, kind)
            continue
        if len(st.shape) == 1 or name.endswith("_norm.weight"):
            assert kind == "F32", (name, kind)
            continue
        w = np.asarray(st.data, dtype=np.float32).reshape(-1)
        if int(st.shape[0]) % 128:
            assert kind == "Q4_0", (name, kind)
            continue
        assert kind == "I2_S", (name, kind)
        trit, v, _, y = weight_quant(w)
        n = w.size
        got = decode_i2s_codes(np.asarray(t.data).tobytes(), n) - 1
        tail = np.asarray(raw[t.data_offset + n // 4:t.data_offset + n // 4 + 32])
        assert tail[:4].view(np.float32)[0] == v, (name, tail[:4].view(np.float32)[0], v)
        assert not tail[4:].any()
        bad = got != trit
        near = np.abs(np.abs(y) - np.float32(0.5)) <= np.float32(2.0 ** -20)
        assert not (bad & ~near).any(), (name, int((bad & ~near).sum()))
        flips += int(bad.sum())
        if deq:
            dv = np.asarray(d_t[name].data, dtype=np.float32).reshape(-1)
            assert np.array_equal(dv, got.astype(np.float32) * v), name
        n_i2s += 1
        n_el += n
    print(f"i2s {n_i2s} elements {n_el} tie_flips {flips}")
    sys.exit(0 if n_i2s else 1)


def check(d, gguf, tol):
    from llama_cpp import Llama

    cfg = json.loads((Path(d) / "config.json").read_text())
    w = read_safetensors(d)
    llm = Llama(model_path=str(gguf), n_ctx=64, logits_all=True, n_threads=2, verbose=False, type_k=0, type_v=0)
    rng = np.random.default_rng(7)
    worst = 0.0
    for n in (1, 5, 17):
        ids = [int(i) for i in rng.integers(0, 266, n)]
        ref = forward(cfg, w, ids)
        llm.reset()
        llm.eval(ids)
        got = np.array(llm.scores[:n], dtype=np.float64)
        assert got.shape == ref.shape, (got.shape, ref.shape)
        rel = np.abs(got - ref).max() / np.abs(ref).max()
        worst = max(worst, rel)
    print(f"max_rel_err {worst:.3e}")
    sys.exit(0 if worst <= tol else 1)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "make":
        d, arch, seed = sys.argv[2], sys.argv[3], int(sys.argv[4])
        rest = sys.argv[5:]
        opt = lambda k, dflt: rest[rest.index(k) + 1] if k in rest else dflt
        make(d, arch, seed, dtype=opt("--dtype", "f32"), shards=int(opt("--shards", "1")),
             tied="--tied" in rest, no_tok="--no-tokenizer" in rest, bias="--bias" in rest,
             spm="--spm" in rest, spm_tj="--spm-no-tj" not in rest, spm_unused=int(opt("--spm-unused", "0")),
             spm_prefix="--spm-no-prefix" not in rest, llama3="--bpe-llama3" in rest,
             add_bos={"true": True, "false": False, None: None}[opt("--add-bos", None)],
             rope=opt("--rope", None), llamahf="--llamahf" in rest)
    elif cmd == "check":
        check(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    elif cmd == "llamahf-check":
        llamahf_check(sys.argv[2], sys.argv[3])
    elif cmd == "hash":
        converter_hash(sys.argv[2], sys.argv[3])
    elif cmd == "spm-check":
        spm_check(sys.argv[2], sys.argv[3], int(sys.argv[4]), "--tokenize" in sys.argv[5:])
    elif cmd == "make-bitnet":
        make_bitnet(sys.argv[2], int(sys.argv[3]), sys.argv[4], old_names="--old-names" in sys.argv[5:])
    elif cmd == "check-bitnet":
        pos = [a for a in sys.argv[2:] if not a.startswith("--")]
        check_bitnet(pos[0], pos[1], pos[2], pos[3], float(pos[4]) if len(pos) > 4 else None,
                     decoded="--decoded" in sys.argv)
    elif cmd == "llama-quantize":
        llama_quantize(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif cmd == "check-i2s":
        check_i2s(*sys.argv[2:5])
    elif cmd == "same-tensors":
        same_tensors(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        raise SystemExit(f"unknown command {cmd}")
