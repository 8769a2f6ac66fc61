//! `gpuq inspect`: describe a GGUF file, a .safetensors file or a Hugging Face model folder
//! (metadata, tensor table, totals) without reading tensor data.

use crate::formats::gguf::GgufFile;
use crate::formats::safetensors::SafetensorsModel;
use crate::jobs::inspect::{Model, Totals, gguf_totals, ollama_fixes, shard_name, st_totals};
use crate::{Error, Result};
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A .gguf file, a .safetensors file or a Hugging Face model folder.
    pub path: PathBuf,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let doc = Model::open(&args.path)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let res = if args.json {
        let j = doc.to_json();
        serde_json::to_writer_pretty(&mut out, &j)
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(out))
    } else {
        match &doc {
            Model::Gguf(g) => gguf_text(g, &mut out),
            Model::Safetensors(s) => safetensors_text(s, &mut out),
        }
    };
    match res.and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        // `gpuq inspect x | head` is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::io("<stdout>", e)),
    }
}

/// The totals line of the text report.
fn totals_line(t: &Totals) -> String {
    let bpw = t
        .bpw()
        .map(|b| format!("{b:.4}"))
        .unwrap_or_else(|| "-".into());
    format!(
        "total: {} tensors, {} parameters, {} bytes ({}), {} bits per weight",
        t.tensors,
        t.params,
        t.bytes,
        human_bytes(t.bytes),
        bpw
    )
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
    writeln!(out, "\n{}", totals_line(&gguf_totals(g)))?;
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
    writeln!(out, "\n{}", totals_line(&st_totals(s)))
}
