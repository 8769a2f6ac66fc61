//! gpuq as a Rust library, for an engine that wants GGUF codecs or the quantize job: encodes
//! one tensor with an importance matrix and decodes it back, then quantizes a whole model
//! with a custom progress sink (a `Progress` that prints each tensor, counts the bytes and can
//! cancel), and cancels a second run halfway, which leaves no output file. Only the library
//! API is used, no CLI code.
//!
//!     cargo run --release --example library [-- --backend cpu|gpu|auto]

use gpuq::formats::gguf::{GgufWriter, TensorSpec, Value};
use gpuq::model::{GgufSource, ModelSource};
use gpuq::pipeline::Progress;
use gpuq::{Backend, Engine, Error, GgmlType, QuantizeOptions, quantize};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// A progress sink: a line per tensor, the bytes done, and a cancel point (`stop_at` bytes).
struct Sink {
    total: AtomicU64,
    done: AtomicU64,
    tensors: Mutex<Vec<String>>,
    stop_at: u64,
    quiet: bool,
}

impl Sink {
    fn new(stop_at: u64, quiet: bool) -> Self {
        Sink {
            total: AtomicU64::new(0),
            done: AtomicU64::new(0),
            tensors: Mutex::new(Vec::new()),
            stop_at,
            quiet,
        }
    }
}

impl Progress for Sink {
    fn start(&self, total_bytes: u64, n_tensors: usize) {
        self.total.store(total_bytes, Ordering::Relaxed);
        if !self.quiet {
            println!("  start: {n_tensors} tensors, {total_bytes} input bytes");
        }
    }

    fn tensor(&self, index: usize, name: &str, from: GgmlType, to: GgmlType) {
        if let Ok(mut t) = self.tensors.lock() {
            t.push(name.to_string());
        }
        if !self.quiet {
            let pct =
                100 * self.done.load(Ordering::Relaxed) / self.total.load(Ordering::Relaxed).max(1);
            println!("  [{:>3}%] #{index:<2} {name:<26} {from} -> {to}", pct);
        }
    }

    fn advance(&self, input_bytes: u64) {
        self.done.fetch_add(input_bytes, Ordering::Relaxed);
    }

    /// Asked before every tile: stop once `stop_at` bytes are done.
    fn cancelled(&self) -> bool {
        self.done.load(Ordering::Relaxed) >= self.stop_at
    }
}

/// A small Llama-shaped F32 model: 2 layers of 256-wide attention and a 512-wide FFN.
fn write_model(path: &Path) -> gpuq::Result<()> {
    let (embd, ff, vocab) = (256u64, 512u64, 512u64);
    let md = vec![
        (
            "general.architecture".to_string(),
            Value::String("llama".into()),
        ),
        ("llama.block_count".to_string(), Value::U32(2)),
        (
            "llama.embedding_length".to_string(),
            Value::U32(embd as u32),
        ),
        (
            "llama.feed_forward_length".to_string(),
            Value::U32(ff as u32),
        ),
        ("llama.attention.head_count".to_string(), Value::U32(4)),
        ("llama.attention.head_count_kv".to_string(), Value::U32(4)),
    ];
    let mut specs = vec![("token_embd.weight".to_string(), vec![embd, vocab])];
    for l in 0..2 {
        for (n, dims) in [
            ("attn_norm", vec![embd]),
            ("attn_q", vec![embd, embd]),
            ("attn_k", vec![embd, embd]),
            ("attn_v", vec![embd, embd]),
            ("attn_output", vec![embd, embd]),
            ("ffn_norm", vec![embd]),
            ("ffn_gate", vec![embd, ff]),
            ("ffn_up", vec![embd, ff]),
            ("ffn_down", vec![ff, embd]),
        ] {
            specs.push((format!("blk.{l}.{n}.weight"), dims));
        }
    }
    specs.push(("output_norm.weight".into(), vec![embd]));
    specs.push(("output.weight".into(), vec![embd, vocab]));
    let specs: Vec<TensorSpec> = specs
        .into_iter()
        .map(|(name, dims)| TensorSpec {
            name,
            ty: GgmlType::F32,
            dims,
        })
        .collect();
    let mut w = GgufWriter::create(path, &md, &specs)?;
    let mut seed = 0x9e37_79b9_u32;
    for s in &specs {
        let n: u64 = s.dims.iter().product();
        let bytes: Vec<u8> = (0..n)
            .flat_map(|_| {
                // xorshift: a fixed, dependency-free stream of values in [-0.05, 0.05)
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                let x = if s.dims.len() == 1 {
                    1.0
                } else {
                    (seed as f32 / u32::MAX as f32 - 0.5) * 0.1
                };
                x.to_le_bytes()
            })
            .collect();
        w.write_next(&bytes)?;
    }
    w.finish()?;
    Ok(())
}

pub fn main() -> gpuq::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let backend = match args
        .iter()
        .position(|a| a == "--backend")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
    {
        Some("cpu") => Backend::Cpu,
        Some("gpu") => Backend::Gpu,
        _ => Backend::Auto,
    };
    let engine = Engine::new(backend)?;
    println!("{}", engine.describe());

    // 1. one tensor: 64 rows of 4096, Q4_K with per-column importance weights
    let row_len = 4096;
    let rows: Vec<f32> = (0..64 * row_len)
        .map(|i| ((i as f32) * 0.618).sin() * (1.0 + (i % 97) as f32 / 50.0))
        .collect();
    let importance: Vec<f32> = (0..row_len).map(|c| 1.0 + (c % 13) as f32).collect();
    let bytes = engine.encode(GgmlType::Q4_K, &rows, row_len, Some(&importance))?;
    let back = engine.decode(GgmlType::Q4_K, &bytes, row_len)?;
    let rmse = (rows
        .iter()
        .zip(&back)
        .map(|(a, b)| ((a - b) as f64).powi(2))
        .sum::<f64>()
        / rows.len() as f64)
        .sqrt();
    println!(
        "one tensor: {} f32 -> {} bytes of Q4_K ({} on the GPU), RMSE {rmse:.5}",
        rows.len(),
        bytes.len(),
        if engine.encodes_on_gpu_with(GgmlType::Q4_K, true) {
            "encoded"
        } else {
            "not encoded"
        }
    );
    if bytes.len() != 64 * 16 * 144 || !(rmse.is_finite() && rmse < 0.1) {
        return Err(Error::Invalid(format!(
            "Q4_K round trip: {} bytes, RMSE {rmse}",
            bytes.len()
        )));
    }

    // 2. a whole model with the custom sink
    let dir = std::env::temp_dir().join(format!("gpuq-library-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let (input, output) = (dir.join("model-f32.gguf"), dir.join("model-Q4_K_M.gguf"));
    write_model(&input)?;
    let src = GgufSource::open(&input)?;
    let opts = QuantizeOptions::new("Q4_K_M")?;
    println!("whole model, Q4_K_M:");
    let sink = Sink::new(u64::MAX, false);
    let s = quantize(&src, &output, &engine, &opts, &sink)?;
    println!(
        "  {} tensors ({} converted), {} -> {} bytes, {:.2} bits/weight",
        s.tensors,
        s.converted,
        s.input_bytes,
        s.output_bytes,
        s.bits_per_weight()
    );
    let out = GgufSource::open(&output)?;
    let seen = sink.tensors.lock().map(|t| t.len()).unwrap_or(0);
    let done = sink.done.load(Ordering::Relaxed);
    if seen != src.tensors().len() || done != s.input_bytes || out.tensors().len() != seen {
        return Err(Error::Invalid(format!(
            "the sink saw {seen} tensors and {done} bytes of {}",
            s.input_bytes
        )));
    }

    // 3. cancelled halfway: an error, and nothing under the output name
    let halfway = dir.join("model-halfway.gguf");
    let stop = Sink::new(s.input_bytes / 2, true);
    match quantize(&src, &halfway, &engine, &opts, &stop) {
        Err(Error::Interrupted) => println!(
            "cancelled at {} of {} bytes: {}, output left: {}",
            stop.done.load(Ordering::Relaxed),
            s.input_bytes,
            Error::Interrupted,
            halfway.exists()
        ),
        other => {
            return Err(Error::Invalid(format!(
                "a cancelled run returned {:?}",
                other.map(|s| s.tensors)
            )));
        }
    }
    let left = std::fs::read_dir(&dir)
        .map_err(|e| Error::io(&dir, e))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("model-halfway"))
        .count();
    let _ = std::fs::remove_dir_all(&dir);
    if left != 0 {
        return Err(Error::Invalid(format!(
            "a cancelled run left {left} file(s)"
        )));
    }
    Ok(())
}
