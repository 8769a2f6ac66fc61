//! Number formatting shared by the subcommands' tables and JSON.

use serde_json::{Value as Json, json};

/// A number for a table: 4 decimals in the usual range, else scientific; `-` for NaN.
pub fn number(x: f64) -> String {
    if x.is_nan() {
        "-".into()
    } else if x == 0.0 {
        "0".into()
    } else if x.abs() >= 1e-3 && x.abs() < 1e4 {
        format!("{x:.4}")
    } else {
        format!("{x:.3e}")
    }
}

/// A signal-to-noise ratio in dB for a table; `exact` for a lossless round trip.
pub fn decibels(x: f64) -> String {
    if x.is_infinite() && x > 0.0 {
        "exact".into()
    } else {
        format!("{x:.2}")
    }
}

/// A float for JSON: non-finite values become `null`.
pub fn json_number(x: f64) -> Json {
    if x.is_finite() { json!(x) } else { Json::Null }
}

/// The fidelity metrics of a round trip as a JSON object.
pub fn metrics_json(m: &crate::measure::fidelity::FidelityMetrics) -> Json {
    json!({
        "rmse": json_number(m.rmse), "max_abs": json_number(m.max_abs), "rel_frobenius": json_number(m.rel_frobenius),
        "cosine": json_number(m.cosine), "snr_db": json_number(m.snr_db),
    })
}
