"""Copies a GGUF model with some prunable groups made dead (all their weights zero), so that
pruning exactly those groups must leave llama.cpp's logits unchanged: a check that every tensor
of a group is cut together and that the kept heads keep their place (query heads under their KV
head; Gated DeltaNet V heads under their K head in the converter's tiled order).

  python3 prune_fixture.py IN.gguf OUT.gguf --mlp 0.25 --heads 0.5 --vheads 0.5 --seed 7

In every layer, a share of each kind's groups is zeroed, the same count in every set (KV head,
K head): MLP channels (rows of ffn_gate/ffn_up, columns of ffn_down), query heads (rows of
attn_q, the query and gate halves of gated attention, columns of attn_output), V heads (rows
of the V part of attn_qkv, of attn_gate, ssm_alpha, ssm_beta; columns of ssm_out).
--layers N zeroes every matrix of N layers. Prints JSON: {"mlp": {layer: [dead channels]},
"heads": ..., "vheads": ..., "layers": [dead layers]}.
"""
import argparse
import json

import numpy as np
import gguf


def field_value(f):
    v = f.contents()
    return v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("inp")
    ap.add_argument("out")
    ap.add_argument("--mlp", type=float, default=0.0)
    ap.add_argument("--heads", type=float, default=0.0)
    ap.add_argument("--vheads", type=float, default=0.0)
    ap.add_argument("--layers", type=int, default=0, help="whole layers made dead")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    r = gguf.GGUFReader(a.inp)
    arch = r.fields["general.architecture"].contents()
    kv = {}
    w = gguf.GGUFWriter(a.out, arch)
    for name, f in r.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        kv[name] = f.contents()
        vtype = f.types[0]
        sub = f.types[1] if vtype == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(name, f.contents(), vtype, sub_type=sub)
    get = lambda k, d=None: kv.get(f"{arch}.{k}", d)
    n_head, n_kv = get("attention.head_count"), get("attention.head_count_kv")
    hd = get("attention.key_length") or get("embedding_length") // n_head
    hdv = get("attention.value_length") or hd
    nk, nv = get("ssm.group_count"), get("ssm.time_step_rank")
    dv = get("ssm.inner_size", 0) // nv if nv else 0

    tensors = {}
    order = []
    for t in r.tensors:
        arr = np.array(t.data)
        # ggml row order: numpy shape is reversed dims
        shape = tuple(int(x) for x in reversed(t.shape.tolist()))
        if t.tensor_type == gguf.GGMLQuantizationType.F32:
            x = arr.astype(np.float32).reshape(shape)
        elif t.tensor_type == gguf.GGMLQuantizationType.F16:
            x = arr.view(np.float16).reshape(shape).astype(np.float32)
        else:
            raise SystemExit(f"{t.name}: type {t.tensor_type.name}: F32/F16 inputs only")
        tensors[t.name] = (x.copy(), t.tensor_type)
        order.append(t.name)

    def pick(n, sets, frac, tiled):
        """frac of n groups, the same count in every set."""
        per = n // sets
        c = int(round(frac * per))
        dead = []
        for s in range(sets):
            members = [g for g in range(n) if (g % sets if tiled else g // per) == s]
            dead += sorted(rng.choice(members, size=c, replace=False).tolist())
        return sorted(dead)

    out = {"mlp": {}, "heads": {}, "vheads": {}}
    n_layer = get("block_count")
    if a.layers:
        # a layer whose matrices are zero adds nothing to the residual stream
        dead_layers = sorted(rng.choice(n_layer, size=a.layers, replace=False).tolist())
        for name, (x, _) in tensors.items():
            if x.ndim == 2 and any(name.startswith(f"blk.{l}.") for l in dead_layers):
                x[...] = 0
        out["layers"] = dead_layers
    for l in range(n_layer):
        p = f"blk.{l}."
        T = lambda n: tensors[p + n][0] if p + n in tensors else None
        if a.mlp > 0 and T("ffn_gate.weight") is not None:
            n = T("ffn_gate.weight").shape[0]
            dead = pick(n, 1, a.mlp, False)
            T("ffn_gate.weight")[dead, :] = 0
            T("ffn_up.weight")[dead, :] = 0
            T("ffn_down.weight")[:, dead] = 0
            out["mlp"][l] = dead
        if a.heads > 0 and T("attn_q.weight") is not None:
            q = T("attn_q.weight")
            wq = q.shape[0] // n_head
            dead = pick(n_head, n_kv, a.heads, False)
            for h in dead:
                q[h * wq:(h + 1) * wq, :] = 0
                T("attn_output.weight")[:, h * hdv:(h + 1) * hdv] = 0
            out["heads"][l] = dead
        if a.vheads > 0 and T("attn_qkv.weight") is not None:
            qkv = T("attn_qkv.weight")
            qk = qkv.shape[0] - nv * dv
            dead = pick(nv, nk, a.vheads, True)
            for o in dead:
                qkv[qk + o * dv: qk + (o + 1) * dv, :] = 0
                T("attn_gate.weight")[o * dv:(o + 1) * dv, :] = 0
                T("ssm_alpha.weight")[o, :] = 0
                T("ssm_beta.weight")[o, :] = 0
                T("ssm_out.weight")[:, o * dv:(o + 1) * dv] = 0
            out["vheads"][l] = dead
    for name in order:
        x, ty = tensors[name]
        if ty == gguf.GGMLQuantizationType.F16:
            w.add_tensor(name, x.astype(np.float16))
        else:
            w.add_tensor(name, x.astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
