//! `gpuq dequantize` of files llama.cpp quantized to the grid i-quant mixtures (IQ2_XXS,
//! IQ2_XS, IQ3_XXS, IQ1_S, IQ3_S, IQ2_S, IQ1_M with an imatrix: between them every grid
//! i-quant type), against gguf-py's decoders, tensor by tensor, bit for bit.

mod common;

use common::{gpuq, python};

const FIXTURE: &str = include_str!("py/llama_fixture.py");

const COMPARE: &str = r#"
import sys, collections, gguf, numpy as np
deq, quant = sys.argv[1], sys.argv[2]
a = gguf.GGUFReader(deq); b = {t.name: t for t in gguf.GGUFReader(quant).tensors}
bad, n = [], 0
for t in a.tensors:
    src = b[t.name]
    ref = gguf.quants.dequantize(src.data, src.tensor_type).reshape(-1).astype(np.float32)
    got = gguf.quants.dequantize(t.data, t.tensor_type).reshape(-1).astype(np.float32)
    n += 1
    if got.shape != ref.shape or not np.array_equal(ref.view(np.uint32), got.view(np.uint32)):
        bad.append(t.name + " " + src.tensor_type.name)
types = collections.Counter(t.tensor_type.name for t in b.values())
print(n, len(bad), ",".join(sorted(types)), bad[:5])
"#;

#[test]
fn dequantize_grid_iquant_files_matches_gguf_py() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    // Rows of 256 and 768: no i-quant falls back to IQ4_NL (not a codec of this module).
    let model = p("m.gguf");
    python(
        FIXTURE,
        &[
            "make", &model, "--layers", "2", "--embd", "256", "--ff", "768", "--seed", "5",
        ],
    );
    let imatrix = p("im.dat");
    python(FIXTURE, &["imatrix", &model, &imatrix]);
    let mut seen = std::collections::BTreeSet::new();
    // llama_ftype: IQ2_XXS 19, IQ2_XS 20, IQ3_XXS 23, IQ1_S 24, IQ3_S 26, IQ2_S 28, IQ1_M 31
    for ftype in ["19", "20", "23", "24", "26", "28", "31"] {
        let q = p(&format!("q{ftype}.gguf"));
        python(
            FIXTURE,
            &["quantize", &model, &q, ftype, "--imatrix", &imatrix],
        );
        let d = p(&format!("d{ftype}.gguf"));
        let out = gpuq()
            .args([
                "dequantize",
                &q,
                "-o",
                &d,
                "--type",
                "F32",
                "-q",
                "--backend",
                "cpu",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ftype {ftype}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let res = python(COMPARE, &[&d, &q]);
        eprintln!("ftype {ftype}: {}", res.trim());
        let mut it = res.split_whitespace();
        let n: usize = it.next().unwrap().parse().unwrap();
        let bad: usize = it.next().unwrap().parse().unwrap();
        seen.extend(it.next().unwrap().split(',').map(str::to_string));
        assert!(n > 15 && bad == 0, "ftype {ftype}: {res}");
    }
    for ty in [
        "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS", "IQ3_S", "IQ1_S", "IQ1_M",
    ] {
        assert!(seen.contains(ty), "no {ty} tensor in the files: {seen:?}");
    }
}
