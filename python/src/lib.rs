//! `gpuq` as a Python module: llama.cpp's GGUF codecs on numpy arrays ([`codecs`]) and the
//! library's jobs ([`jobs`]: quantize, dequantize, convert, inspect, stats), with progress and
//! Ctrl-C ([`progress`]). Everything is the core crate's code; this crate only converts
//! arguments and results, releases the GIL while Rust works, and turns library errors into
//! `gpuq.GpuqError` (a `RuntimeError`) carrying the library's message.
//!
//! Built with maturin (`python/pyproject.toml`); the type stubs are `python/gpuq.pyi`.

mod codecs;
mod engines;
mod jobs;
mod progress;

use pyo3::create_exception;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

create_exception!(
    gpuq,
    GpuqError,
    PyRuntimeError,
    "An error of the gpuq library (bad or truncated file, unsupported type, shape mismatch, ...); the message is the library's."
);

/// A library error as a Python exception.
pub(crate) fn to_py(e: gpuq::Error) -> PyErr {
    GpuqError::new_err(e.to_string())
}

/// The Python module `gpuq`.
#[pymodule]
#[pyo3(name = "gpuq")]
fn gpuq_py(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("GpuqError", m.py().get_type::<GpuqError>())?;
    m.add_function(wrap_pyfunction!(codecs::encode, m)?)?;
    m.add_function(wrap_pyfunction!(codecs::decode, m)?)?;
    m.add_function(wrap_pyfunction!(codecs::types, m)?)?;
    m.add_function(wrap_pyfunction!(jobs::quantize, m)?)?;
    m.add_function(wrap_pyfunction!(jobs::dequantize, m)?)?;
    m.add_function(wrap_pyfunction!(jobs::convert, m)?)?;
    m.add_function(wrap_pyfunction!(jobs::inspect, m)?)?;
    m.add_function(wrap_pyfunction!(jobs::stats, m)?)?;
    m.add_function(wrap_pyfunction!(engines::backend, m)?)?;
    Ok(())
}
