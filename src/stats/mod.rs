//! The statistics job: per-tensor and per-layer reports of a model's weights and of their
//! round-trip fidelity under chosen types ([`report`]), and their plot ([`plot`]). The
//! measurement records and their CPU twins are in [`crate::measure`] (re-exported here).

pub mod json;
pub mod plot;
pub mod report;

pub use crate::measure::*;
