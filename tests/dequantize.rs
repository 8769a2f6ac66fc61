//! `gpuq dequantize` against gguf-py's decoders, tensor by tensor, bit for bit.

mod common;

use common::{gpuq, python};

const FIXTURE: &str = include_str!("py/llama_fixture.py");

const COMPARE: &str = r#"
import sys, gguf, numpy as np
deq, quant, want = sys.argv[1], sys.argv[2], sys.argv[3]
a = gguf.GGUFReader(deq); b = {t.name: t for t in gguf.GGUFReader(quant).tensors}
bad, n = [], 0
for t in a.tensors:
    src = b[t.name]
    ref = gguf.quants.dequantize(src.data, src.tensor_type).reshape(-1).astype(np.float32)
    if want != "F32" and (src.tensor_type.name != "F32" or len(src.shape) > 1):
        ref = gguf.quants.dequantize(gguf.quants.quantize(ref, gguf.GGMLQuantizationType[want]), gguf.GGMLQuantizationType[want]).reshape(-1)
    got = gguf.quants.dequantize(t.data, t.tensor_type).reshape(-1).astype(np.float32)
    n += 1
    if got.shape != ref.shape or not np.array_equal(ref.view(np.uint32), got.view(np.uint32)):
        bad.append(t.name + " " + t.tensor_type.name)
print(n, len(bad), bad[:5])
"#;

#[test]
fn dequantize_matches_gguf_py() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.gguf");
    python(
        FIXTURE,
        &[
            "make",
            model.to_str().unwrap(),
            "--layers",
            "3",
            "--seed",
            "21",
        ],
    );
    for (mix, backend) in [("Q4_K_M", "cpu"), ("Q5_1", "gpu"), ("Q3_K_S", "cpu")] {
        let q = dir.path().join(format!("{mix}.gguf"));
        let out = gpuq()
            .args([
                "quantize",
                model.to_str().unwrap(),
                "-o",
                q.to_str().unwrap(),
                "--type",
                mix,
                "-q",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for want in ["F32", "F16", "BF16"] {
            let d = dir.path().join(format!("{mix}-{want}.gguf"));
            let out = gpuq()
                .args([
                    "dequantize",
                    q.to_str().unwrap(),
                    "-o",
                    d.to_str().unwrap(),
                    "--type",
                    want,
                    "-q",
                    "--backend",
                    backend,
                ])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let res = python(COMPARE, &[d.to_str().unwrap(), q.to_str().unwrap(), want]);
            let mut it = res.split_whitespace();
            let n: usize = it.next().unwrap().parse().unwrap();
            let bad: usize = it.next().unwrap().parse().unwrap();
            assert!(n > 20 && bad == 0, "{mix} -> {want}: {res}");
        }
    }
}
