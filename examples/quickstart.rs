//! gpuq's main job on a built-in example, no download: writes a small Llama-shaped F16 GGUF
//! (random weights), quantizes it to Q4_K_M through the library API, then decodes one tensor
//! of the result with the Engine, as an embedding program would.
//!
//!     cargo run --release --example quickstart [-- --backend cpu|gpu|auto] [--type Q4_K_M]

use gpuq::formats::gguf::{GgufWriter, TensorSpec, Value};
use gpuq::model::GgufSource;
use gpuq::pipeline::{ModelSource, Quiet};
use gpuq::quantize::{QuantizeOptions, quantize};
use gpuq::{Backend, Engine, GgmlType};
use rand::{Rng, SeedableRng};
use std::path::Path;

fn write_model(path: &Path, layers: usize, embd: u64, ff: u64, vocab: u64) -> gpuq::Result<()> {
    let arch = "llama";
    let md: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(arch.into())),
        (
            "general.name".into(),
            Value::String("gpuq quickstart".into()),
        ),
        ("general.file_type".into(), Value::U32(1)),
        (format!("{arch}.block_count"), Value::U32(layers as u32)),
        (format!("{arch}.context_length"), Value::U32(256)),
        (format!("{arch}.embedding_length"), Value::U32(embd as u32)),
        (format!("{arch}.feed_forward_length"), Value::U32(ff as u32)),
        (format!("{arch}.attention.head_count"), Value::U32(8)),
        (format!("{arch}.attention.head_count_kv"), Value::U32(2)),
        (
            format!("{arch}.attention.layer_norm_rms_epsilon"),
            Value::F32(1e-5),
        ),
    ];
    let kv = embd / 4;
    let mut specs = vec![TensorSpec {
        name: "token_embd.weight".into(),
        ty: GgmlType::F16,
        dims: vec![embd, vocab],
    }];
    for l in 0..layers {
        for (n, dims) in [
            ("attn_norm.weight", vec![embd]),
            ("attn_q.weight", vec![embd, embd]),
            ("attn_k.weight", vec![embd, kv]),
            ("attn_v.weight", vec![embd, kv]),
            ("attn_output.weight", vec![embd, embd]),
            ("ffn_norm.weight", vec![embd]),
            ("ffn_gate.weight", vec![embd, ff]),
            ("ffn_up.weight", vec![embd, ff]),
            ("ffn_down.weight", vec![ff, embd]),
        ] {
            let ty = if dims.len() == 1 {
                GgmlType::F32
            } else {
                GgmlType::F16
            };
            specs.push(TensorSpec {
                name: format!("blk.{l}.{n}"),
                ty,
                dims,
            });
        }
    }
    specs.push(TensorSpec {
        name: "output_norm.weight".into(),
        ty: GgmlType::F32,
        dims: vec![embd],
    });
    specs.push(TensorSpec {
        name: "output.weight".into(),
        ty: GgmlType::F16,
        dims: vec![embd, vocab],
    });

    let mut w = GgufWriter::create(path, &md, &specs)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    for s in &specs {
        let n: u64 = s.dims.iter().product();
        let bytes: Vec<u8> = (0..n)
            .flat_map(|_| {
                let x: f32 = if s.dims.len() == 1 {
                    1.0 + rng.random_range(-0.1..0.1)
                } else {
                    rng.random_range(-0.05..0.05)
                };
                if s.ty == GgmlType::F32 {
                    x.to_le_bytes().to_vec()
                } else {
                    half::f16::from_f32(x).to_le_bytes().to_vec()
                }
            })
            .collect();
        w.write_next(&bytes)?;
    }
    w.finish()?;
    Ok(())
}

pub fn main() -> gpuq::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let backend = match flag("--backend").as_deref() {
        Some("cpu") => Backend::Cpu,
        Some("gpu") => Backend::Gpu,
        _ => Backend::Auto,
    };
    let ty = flag("--type").unwrap_or_else(|| "Q4_K_M".into());

    let dir = std::env::temp_dir().join(format!("gpuq-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| gpuq::Error::io(&dir, e))?;
    let input = dir.join("tiny-llama-f16.gguf");
    let output = dir.join(format!("tiny-llama-{ty}.gguf"));
    write_model(&input, 4, 512, 1536, 2048)?;

    let engine = Engine::new(backend)?;
    println!("{}", engine.describe());
    let src = GgufSource::open(&input)?;
    let opts = QuantizeOptions::new(&ty)?;
    let s = quantize(&src, &output, &engine, &opts, &Quiet)?;
    println!(
        "quantized {} -> {}\n  {} tensors ({} converted), {:.2} MiB -> {:.2} MiB, {:.2} bits/weight, {:.2} s",
        input.display(),
        output.display(),
        s.tensors,
        s.converted,
        s.input_bytes as f64 / 1048576.0,
        s.output_bytes as f64 / 1048576.0,
        s.bits_per_weight(),
        s.seconds
    );

    // Embedding gpuq as a backend: decode one quantized tensor back to f32.
    let q = GgufSource::open(&output)?;
    let i = q
        .tensors()
        .iter()
        .position(|t| t.name == "blk.0.attn_q.weight")
        .unwrap_or(0);
    let t = &q.tensors()[i];
    let mut scratch = Vec::new();
    let bytes = q.read_rows(i, 0, t.n_rows(), &mut scratch)?;
    let f = engine.decode(t.ty, bytes, t.row_len() as usize)?;
    // the output lists tensors in llama.cpp's loader order: find the same name in the input
    let orig = GgufSource::open(&input)?;
    let oi = orig
        .tensors()
        .iter()
        .position(|o| o.name == t.name)
        .unwrap_or(0);
    let ob = orig.read_rows(oi, 0, t.n_rows(), &mut scratch)?.to_vec();
    let o = engine.decode(GgmlType::F16, &ob, t.row_len() as usize)?;
    let rmse = (f
        .iter()
        .zip(&o)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum::<f64>()
        / f.len() as f64)
        .sqrt();
    println!(
        "decoded {} ({}, {} values): RMSE vs the F16 source {:.6}",
        t.name,
        t.ty,
        f.len(),
        rmse
    );
    let _ = std::fs::remove_dir_all(&dir);
    // Q4_K keeps these U(-0.05, 0.05) weights to about 0.002 RMSE; far more means a broken run
    if !(rmse.is_finite() && rmse < 0.01 && f.len() == o.len()) {
        return Err(gpuq::Error::Invalid(format!(
            "decoded {} does not match its source (RMSE {rmse})",
            t.name
        )));
    }
    Ok(())
}
