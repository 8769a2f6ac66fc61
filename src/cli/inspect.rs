//! `gpuq inspect`: describe a GGUF file, a .safetensors file or a Hugging Face model folder
//! (metadata, tensor table, totals) without reading tensor data.

use crate::formats::gguf::GgufFile;
use crate::formats::safetensors::SafetensorsModel;
use crate::{Error, Result};
use serde_json::json;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A .gguf file, a .safetensors file or a Hugging Face model folder.
    pub path: PathBuf,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Arrays longer than this are summarized in the JSON output.
const JSON_MAX_ARRAY: usize = 64;

pub fn run(args: Args) -> Result<()> {
    let doc = match sniff(&args.path)? {
        Kind::Gguf => Report::Gguf(GgufFile::open(&args.path)?),
        Kind::Safetensors => Report::Safetensors(SafetensorsModel::open(&args.path)?),
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let res = if args.json {
        let j = match &doc {
            Report::Gguf(g) => gguf_json(g),
            Report::Safetensors(s) => safetensors_json(s),
        };
        serde_json::to_writer_pretty(&mut out, &j)
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(out))
    } else {
        match &doc {
            Report::Gguf(g) => gguf_text(g, &mut out),
            Report::Safetensors(s) => safetensors_text(s, &mut out),
        }
    };
    match res.and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        // `gpuq inspect x | head` is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::io("<stdout>", e)),
    }
}

enum Kind {
    Gguf,
    Safetensors,
}

enum Report {
    Gguf(GgufFile),
    Safetensors(SafetensorsModel),
}

/// Decides the format: a folder is a Hugging Face checkpoint; a file starting with "GGUF" or
/// named .gguf is GGUF; .safetensors and .index.json files are safetensors.
fn sniff(path: &Path) -> Result<Kind> {
    if path.is_dir() {
        return Ok(Kind::Safetensors);
    }
    let mut magic = [0u8; 4];
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let n = f.read(&mut magic).map_err(|e| Error::io(path, e))?;
    let name = path.to_string_lossy();
    if (n == 4 && &magic == b"GGUF") || name.ends_with(".gguf") {
        Ok(Kind::Gguf)
    } else if name.ends_with(".safetensors") || name.ends_with(".index.json") {
        Ok(Kind::Safetensors)
    } else {
        Err(Error::Invalid(format!(
            "{}: not a GGUF file (no GGUF magic) and not named .safetensors; \
             give a .gguf, a .safetensors or a model folder",
            path.display()
        )))
    }
}

struct Totals {
    tensors: usize,
    params: u64,
    bytes: u64,
}

impl Totals {
    fn bpw(&self) -> Option<f64> {
        (self.params > 0).then(|| self.bytes as f64 * 8.0 / self.params as f64)
    }

    fn json(&self) -> serde_json::Value {
        json!({
            "tensors": self.tensors,
            "parameters": self.params,
            "bytes": self.bytes,
            "bits_per_weight": self.bpw(),
        })
    }

    fn line(&self) -> String {
        let bpw = self
            .bpw()
            .map(|b| format!("{b:.4}"))
            .unwrap_or_else(|| "-".into());
        format!(
            "total: {} tensors, {} parameters, {} bytes ({}), {} bits per weight",
            self.tensors,
            self.params,
            self.bytes,
            human_bytes(self.bytes),
            bpw
        )
    }
}

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

fn shape_str(dims: &[u64]) -> String {
    let parts: Vec<String> = dims.iter().map(u64::to_string).collect();
    format!("[{}]", parts.join(", "))
}

/// Writes rows as left-aligned columns (numbers right-aligned), two spaces apart.
fn table(
    out: &mut dyn Write,
    header: &[&str],
    rows: &[Vec<String>],
    numeric: &[bool],
) -> std::io::Result<()> {
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::from(" ");
        for (i, c) in cells.iter().enumerate() {
            let pad = w[i].saturating_sub(c.chars().count());
            s.push(' ');
            if numeric[i] {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            } else {
                s.push_str(c);
                if i + 1 < cells.len() {
                    s.push_str(&" ".repeat(pad));
                }
            }
            s.push(' ');
        }
        s.trim_end().to_string()
    };
    let h: Vec<String> = header.iter().map(|s| s.to_string()).collect();
    writeln!(out, "{}", line(&h))?;
    for r in rows {
        writeln!(out, "{}", line(r))?;
    }
    Ok(())
}

fn gguf_totals(g: &GgufFile) -> Totals {
    Totals {
        tensors: g.tensors.len(),
        params: g.tensors.iter().map(|t| t.n_elements()).sum(),
        bytes: g.tensors.iter().map(|t| t.size).sum(),
    }
}

fn gguf_text(g: &GgufFile, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{}: GGUF version {}, {} metadata keys, {} tensors, alignment {}, data at offset {}, {} bytes",
        g.path().display(),
        g.version,
        g.metadata.len(),
        g.tensors.len(),
        g.alignment,
        g.data_offset,
        g.file_len()
    )?;
    writeln!(out, "\nmetadata:")?;
    let rows: Vec<Vec<String>> = g
        .metadata
        .iter()
        .map(|(k, v)| vec![k.clone(), v.value_type().to_string(), v.to_string()])
        .collect();
    table(
        out,
        &["key", "type", "value"],
        &rows,
        &[false, false, false],
    )?;
    writeln!(out, "\ntensors:")?;
    let roles = crate::policy::roles(g.tensors.iter().map(|t| t.name.as_str()));
    let rows: Vec<Vec<String>> = g
        .tensors
        .iter()
        .zip(&roles)
        .map(|(t, r)| {
            vec![
                t.name.clone(),
                t.ty.to_string(),
                shape_str(&t.dims),
                t.size.to_string(),
                (g.data_offset + t.offset).to_string(),
                r.name().to_string(),
            ]
        })
        .collect();
    table(
        out,
        &[
            "name",
            "type",
            "shape (ne0 first)",
            "bytes",
            "offset",
            "role",
        ],
        &rows,
        &[false, false, false, true, true, false],
    )?;
    writeln!(out, "\n{}", gguf_totals(g).line())?;
    match ollama_fixes(g) {
        Ok(f) if f.is_empty() => Ok(()),
        Ok(f) => {
            writeln!(
                out,
                "\nOllama layout: llama.cpp needs {} fix(es) (`gpuq fix`, or quantize/dequantize, apply them):",
                f.len()
            )?;
            f.iter().try_for_each(|l| writeln!(out, "  - {l}"))
        }
        Err(e) => writeln!(out, "\nOllama layout: cannot be fixed: {e}"),
    }
}

/// The fixes an Ollama-layout qwen35 / qwen35moe / qwen3next file needs (src/model/ollama.rs).
fn ollama_fixes(g: &GgufFile) -> Result<Vec<String>> {
    let tensors: Vec<crate::model::InputTensor> = g
        .tensors
        .iter()
        .map(|t| crate::model::InputTensor {
            name: t.name.clone(),
            dims: t.dims.clone(),
            ty: t.ty,
        })
        .collect();
    let plan = crate::model::ollama::plan(&g.path().display().to_string(), &g.metadata, &tensors)?;
    Ok(plan
        .map(|p| p.fixes.iter().map(|f| f.to_string()).collect())
        .unwrap_or_default())
}

fn gguf_json(g: &GgufFile) -> serde_json::Value {
    let metadata: Vec<serde_json::Value> = g
        .metadata
        .iter()
        .map(|(k, v)| {
            let mut o = json!({
                "key": k,
                "type": v.value_type().name(),
                "value": v.to_json(Some(JSON_MAX_ARRAY)),
            });
            if let Some(a) = v.as_array() {
                o["element_type"] = json!(a.element_type().name());
                o["len"] = json!(a.len());
            }
            o
        })
        .collect();
    let roles = crate::policy::roles(g.tensors.iter().map(|t| t.name.as_str()));
    let tensors: Vec<serde_json::Value> = g
        .tensors
        .iter()
        .zip(&roles)
        .map(|(t, r)| {
            json!({
                "name": t.name,
                "role": r.name(),
                "type": t.ty.name(),
                "type_id": t.ty.id(),
                "shape": t.dims,
                "elements": t.n_elements(),
                "bytes": t.size,
                "offset": g.data_offset + t.offset,
                "data_offset": t.offset,
            })
        })
        .collect();
    json!({
        "format": "gguf",
        "path": g.path().display().to_string(),
        "version": g.version,
        "alignment": g.alignment,
        "data_offset": g.data_offset,
        "file_bytes": g.file_len(),
        "metadata": metadata,
        "tensors": tensors,
        "totals": gguf_totals(g).json(),
        "ollama_fixes": match ollama_fixes(g) {
            Ok(f) => json!(f),
            Err(e) => json!({ "error": e.to_string() }),
        },
    })
}

fn st_totals(s: &SafetensorsModel) -> Totals {
    Totals {
        tensors: s.tensors.len(),
        params: s.tensors.iter().map(|t| t.n_elements()).sum(),
        bytes: s.tensors.iter().map(|t| t.size()).sum(),
    }
}

fn shard_name(s: &SafetensorsModel, i: usize) -> String {
    s.shards
        .get(i)
        .and_then(|sh| sh.path.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn safetensors_text(s: &SafetensorsModel, out: &mut dyn Write) -> std::io::Result<()> {
    writeln!(
        out,
        "{}: safetensors, {} file(s){}, {} tensors",
        s.root.display(),
        s.shards.len(),
        s.index
            .as_ref()
            .map(|i| format!(" via {}", i.display()))
            .unwrap_or_default(),
        s.tensors.len()
    )?;
    if let Some(serde_json::Value::Object(cfg)) = &s.config {
        writeln!(out, "\nconfig.json:")?;
        let rows: Vec<Vec<String>> = cfg
            .iter()
            .map(|(k, v)| {
                let mut t = v.to_string();
                if t.chars().count() > 100 {
                    t = t.chars().take(100).collect::<String>() + "...";
                }
                vec![k.clone(), t]
            })
            .collect();
        table(out, &["key", "value"], &rows, &[false, false])?;
    }
    for sh in &s.shards {
        if !sh.metadata.is_empty() {
            writeln!(out, "\n__metadata__ of {}:", sh.path.display())?;
            let rows: Vec<Vec<String>> = sh
                .metadata
                .iter()
                .map(|(k, v)| vec![k.clone(), v.clone()])
                .collect();
            table(out, &["key", "value"], &rows, &[false, false])?;
        }
    }
    writeln!(out, "\ntensors:")?;
    let multi = s.shards.len() > 1;
    let rows: Vec<Vec<String>> = s
        .tensors
        .iter()
        .map(|t| {
            let mut r = vec![
                t.name.clone(),
                t.dtype.to_string(),
                shape_str(&t.shape),
                t.size().to_string(),
                t.start.to_string(),
            ];
            if multi {
                r.push(shard_name(s, t.shard));
            }
            r
        })
        .collect();
    let mut header = vec!["name", "dtype", "shape", "bytes", "offset"];
    let mut numeric = vec![false, false, false, true, true];
    if multi {
        header.push("file");
        numeric.push(false);
    }
    table(out, &header, &rows, &numeric)?;
    writeln!(out, "\n{}", st_totals(s).line())
}

fn safetensors_json(s: &SafetensorsModel) -> serde_json::Value {
    let shards: Vec<serde_json::Value> = s
        .shards
        .iter()
        .map(|sh| {
            let md: serde_json::Map<String, serde_json::Value> = sh
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            json!({
                "path": sh.path.display().to_string(),
                "data_start": sh.data_start,
                "metadata": md,
            })
        })
        .collect();
    let tensors: Vec<serde_json::Value> = s
        .tensors
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "dtype": t.dtype.name(),
                "shape": t.shape,
                "elements": t.n_elements(),
                "bytes": t.size(),
                "offset": t.start,
                "shard": t.shard,
                "file": shard_name(s, t.shard),
            })
        })
        .collect();
    json!({
        "format": "safetensors",
        "path": s.root.display().to_string(),
        "index": s.index.as_ref().map(|i| i.display().to_string()),
        "config": s.config,
        "shards": shards,
        "tensors": tensors,
        "totals": st_totals(s).json(),
    })
}
