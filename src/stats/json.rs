//! The statistics job's reports as JSON (what `gpuq stats --json` prints), and the number
//! conventions shared with the quantize report: non-finite floats become `null`.

use crate::ggml_type::GgmlType;
use crate::measure::fidelity::FidelityMetrics;
use crate::stats::report::{LayerSummary, TensorReport, TypeFidelity};
use crate::stats::{HIST_BINS, HIST_LO, HIST_PER_UNIT, RowStats};
use serde_json::{Value as Json, json};

/// A float for JSON: non-finite values become `null`.
pub fn json_number(x: f64) -> Json {
    if x.is_finite() { json!(x) } else { Json::Null }
}

/// The fidelity metrics of a round trip as a JSON object.
pub fn metrics_json(m: &FidelityMetrics) -> Json {
    json!({
        "rmse": json_number(m.rmse), "max_abs": json_number(m.max_abs), "rel_frobenius": json_number(m.rel_frobenius),
        "cosine": json_number(m.cosine), "snr_db": json_number(m.snr_db),
    })
}

fn row_json(r: &RowStats) -> Json {
    json!({
        "mean": json_number(r.mean()), "absmean": json_number(r.absmean()), "rms": json_number(r.rms()),
        "min": json_number(r.min as f64), "max": json_number(r.max as f64), "absmax": json_number(r.absmax()),
        "zeros": r.zeros, "outliers": r.outliers, "nan": r.nan, "inf": r.inf,
    })
}

/// The JSON of `gpuq stats --json`: every tensor's statistics and errors, the layer summaries.
/// `model`: the path as given, `backend`: [`crate::Engine::describe`], `outlier_k`: the
/// outlier threshold the reports were made with.
pub fn report_json(
    model: &str,
    backend: &str,
    outlier_k: f32,
    reports: &[TensorReport],
    layers: &[LayerSummary],
    types: &[GgmlType],
) -> Json {
    let tensors: Vec<Json> = reports
        .iter()
        .map(|r| {
            let s = &r.stats;
            let mut errors = serde_json::Map::new();
            for (ty, e) in &r.errors {
                let v = match e {
                    TypeFidelity::Measured { via, acc, rows } => {
                        let mut m = metrics_json(&acc.metrics());
                        m["measured_as"] = json!(via.name());
                        m["poisoned"] = json!(acc.poisoned);
                        m["worst_row"] = acc.worst_row.map_or(Json::Null, |(row, v)| json!({"row": row, "rel_frobenius": json_number(v)}));
                        if let Some(rows) = rows {
                            m["rows"] = rows.iter().map(|r| metrics_json(&r.metrics())).collect();
                        }
                        m
                    }
                    TypeFidelity::Skipped(why) => json!({ "skipped": why }),
                };
                errors.insert(ty.name().to_string(), v);
            }
            let mut t = json!({
                "name": r.name, "type": r.ty.name(), "shape": r.dims, "layer": r.layer,
                "stats": {
                    "rows": s.rows, "n": s.n, "finite": s.finite,
                    "mean": json_number(s.mean()), "absmean": json_number(s.absmean()), "rms": json_number(s.rms()),
                    "min": json_number(s.min as f64), "max": json_number(s.max as f64), "absmax": json_number(s.absmax()),
                    "absmax_over_absmean": json_number(s.peak_ratio()),
                    "zeros": s.zeros, "outliers": s.outliers, "nan": s.nan, "inf": s.inf,
                    "peak_row": s.peak_row.map(|(row, v)| json!({"row": row, "absmax_over_rms": json_number(v)})),
                },
                "histogram": s.hist.0.to_vec(),
                "nonfinite_row_count": s.nonfinite_row_count,
                "nonfinite_rows": s.nonfinite_rows,
                "errors": errors,
            });
            if let Some(rows) = &r.rows {
                t["rows"] = rows.iter().map(row_json).collect();
            }
            t
        })
        .collect();
    let layers: Vec<Json> = layers
        .iter()
        .map(|l| {
            let errors: serde_json::Map<String, Json> = types
                .iter()
                .filter_map(|&ty| {
                    Some((ty.name().to_string(), metrics_json(&l.error(ty)?.metrics())))
                })
                .collect();
            json!({
                "layer": l.layer, "tensors": l.tensors, "params": l.params,
                "absmean": json_number(l.absmean()), "rms": json_number(l.rms()), "absmax": json_number(l.absmax),
                "absmax_over_absmean": json_number(l.peak_ratio), "peak_tensor": l.peak_tensor,
                "outliers": l.outliers, "nonfinite": l.nonfinite, "errors": errors,
            })
        })
        .collect();
    json!({
        "model": model,
        "backend": backend,
        "outlier_k": outlier_k,
        "histogram_bins": {
            "unit": "row rms", "count": HIST_BINS, "lo": HIST_LO, "width": 1.0 / HIST_PER_UNIT,
            "note": "bin 0: x < lo; bins 1..count-2: [lo + (i-1)*width, lo + i*width); last: x >= -lo",
        },
        "types": types.iter().map(|t| t.name()).collect::<Vec<_>>(),
        "tensors": tensors,
        "layers": layers,
    })
}
