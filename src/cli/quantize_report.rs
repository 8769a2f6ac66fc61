//! `gpuq quantize --report [FILE.json]`: the quantization error of every converted tensor (its
//! written bytes decoded against the source), per tensor and per layer, as a table or as JSON;
//! TQ1_0 / TQ2_0 tensors add BitNet's per-channel vs per-tensor absmean comparison.

use crate::cli::format::{decibels, json_number, metrics_json, number};
use crate::error::{Error, Result};
use crate::measure::fidelity::FidelityAcc;
use crate::pipeline::{Summary, TensorFidelity};
use crate::stats::report::layer_of;
use serde_json::{Value as Json, json};
use std::io::Write;
use std::path::Path;

/// Checks a `--report` file name before any work: JSON, not the model's output.
pub fn check_path(report: &Path, output: Option<&std::path::PathBuf>) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::Invalid(format!(
            "--report {}: {why}; use --report=FILE.json, or put --report last to print a table",
            report.display()
        )))
    };
    if output.is_some_and(|o| o == report) {
        return bad("that is the output model");
    }
    match report.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("gguf") => bad("a .gguf file is not a report"),
        _ if report.is_dir() => bad("that is a folder"),
        _ => Ok(()),
    }
}

/// Per layer (`None`: tensors outside the blocks), the errors of its tensors merged.
fn layers(errors: &[TensorFidelity]) -> Vec<(Option<u32>, usize, FidelityAcc)> {
    let mut out: Vec<(Option<u32>, usize, FidelityAcc)> = Vec::new();
    for e in errors {
        let l = layer_of(&e.name);
        match out.iter_mut().find(|(k, _, _)| *k == l) {
            Some((_, n, acc)) => {
                *n += 1;
                acc.merge(&e.acc);
            }
            None => out.push((l, 1, e.acc)),
        }
    }
    out.sort_by_key(|(l, _, _)| l.map_or(u64::MAX, u64::from));
    out
}

fn layer_name(l: Option<u32>) -> String {
    l.map_or_else(|| "other".into(), |n| n.to_string())
}

/// The report as a table on `out`.
pub fn write_table(out: &mut dyn Write, s: &Summary) -> std::io::Result<()> {
    if !s.errors.is_empty() {
        let w = s
            .errors
            .iter()
            .map(|e| e.name.len())
            .max()
            .unwrap_or(6)
            .max(6);
        writeln!(
            out,
            "quantization error of the written tensors (decoded vs the source; rel.err = |W-Q(W)|/|W|)"
        )?;
        writeln!(
            out,
            "{:<w$}  {:<5} {:<6} {:>10} {:>10} {:>9} {:>10} {:>8}  worst row (rel.err)",
            "tensor", "from", "to", "rmse", "max|err|", "rel.err", "cosine", "SNR dB"
        )?;
        for e in &s.errors {
            let m = e.acc.metrics();
            let worst = e
                .acc
                .worst_row
                .map(|(row, v)| format!("{row} ({v:.4})"))
                .unwrap_or_default();
            writeln!(
                out,
                "{:<w$}  {:<5} {:<6} {:>10} {:>10} {:>9.5} {:>10.6} {:>8}  {worst}",
                e.name,
                e.from.name(),
                e.to.name(),
                number(m.rmse),
                number(m.max_abs),
                m.rel_frobenius,
                m.cosine,
                decibels(m.snr_db)
            )?;
        }
        writeln!(out)?;
        writeln!(
            out,
            "{:<6} {:>7} {:>9} {:>10} {:>8}",
            "layer", "tensors", "rel.err", "cosine", "SNR dB"
        )?;
        for (l, n, acc) in layers(&s.errors) {
            let m = acc.metrics();
            writeln!(
                out,
                "{:<6} {:>7} {:>9.5} {:>10.6} {:>8}",
                layer_name(l),
                n,
                m.rel_frobenius,
                m.cosine,
                decibels(m.snr_db)
            )?;
        }
    }
    if !s.ternary_report.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "BitNet absmean ternarization, relative error: one scale per row vs one per tensor"
        )?;
        writeln!(
            out,
            "{:<44} {:>14} {:>14}",
            "tensor", "rel err p-chan", "rel err p-tens"
        )?;
        for r in &s.ternary_report {
            writeln!(
                out,
                "{:<44} {:>14.6} {:>14.6}",
                r.name, r.per_channel, r.per_tensor
            )?;
        }
    }
    Ok(())
}

/// The report as JSON.
pub fn to_json(s: &Summary, input: &Path, output: &Path, mixture: &str, backend: &str) -> Json {
    let tensors: Vec<Json> = s
        .errors
        .iter()
        .map(|e| {
            let mut m = metrics_json(&e.acc.metrics());
            m["poisoned"] = json!(e.acc.poisoned);
            m["worst_row"] = e.acc.worst_row.map_or(
                Json::Null,
                |(row, v)| json!({"row": row, "rel_frobenius": json_number(v)}),
            );
            let mut t = json!({
                "name": e.name, "shape": e.dims, "layer": layer_of(&e.name),
                "from": e.from.name(), "to": e.to.name(), "error": m,
            });
            if let Some(r) = s.ternary_report.iter().find(|r| r.name == e.name) {
                t["absmean_rel_frobenius"] =
                    json!({"per_channel": json_number(r.per_channel), "per_tensor": json_number(r.per_tensor)});
            }
            t
        })
        .collect();
    let layers: Vec<Json> = layers(&s.errors)
        .into_iter()
        .map(|(l, n, acc)| json!({"layer": l, "tensors": n, "error": metrics_json(&acc.metrics())}))
        .collect();
    let mut all = FidelityAcc::default();
    for e in &s.errors {
        all.merge(&e.acc);
    }
    json!({
        "input": input.display().to_string(),
        "output": output.display().to_string(),
        "type": mixture,
        "backend": backend,
        "tensors_total": s.tensors,
        "tensors_converted": s.converted,
        "bits_per_weight": json_number(s.bits_per_weight()),
        "model_error": metrics_json(&all.metrics()),
        "tensors": tensors,
        "layers": layers,
    })
}

/// Writes `json` to `path` through `path.tmp`, renamed once complete.
pub fn write_json(path: &Path, json: &Json) -> Result<()> {
    let text = serde_json::to_string_pretty(json).map_err(|e| Error::Invalid(e.to_string()))?;
    write_atomic(path, text.as_bytes())
}

/// Writes `bytes` to `path` through `path.tmp`, renamed once complete (the report and the
/// size plan).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}
