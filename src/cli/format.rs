//! Number formatting shared by the subcommands' tables and JSON.

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

pub use crate::stats::json::{json_number, metrics_json};
