//! One [`Engine`] per backend name for the life of the process: opening the GPU adapter is
//! slow, and a codec call on a small array should not pay for it each time.

use gpuq::{Backend, Engine};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::sync::{Arc, Mutex};

static ENGINES: Mutex<[Option<Arc<Engine>>; 3]> = Mutex::new([None, None, None]);

/// `"auto"`, `"cpu"` or `"gpu"`.
pub fn parse_backend(name: &str) -> PyResult<Backend> {
    match name.to_ascii_lowercase().as_str() {
        "auto" => Ok(Backend::Auto),
        "cpu" => Ok(Backend::Cpu),
        "gpu" => Ok(Backend::Gpu),
        _ => Err(PyValueError::new_err(format!(
            "backend '{name}': expected 'auto', 'cpu' or 'gpu'"
        ))),
    }
}

/// The engine for `backend`, built on first use (a failure is not kept: a later call tries
/// again). Call without the GIL held: opening a GPU can take a while.
pub fn engine(backend: Backend) -> gpuq::Result<Arc<Engine>> {
    let slot = match backend {
        Backend::Auto => 0,
        Backend::Cpu => 1,
        Backend::Gpu => 2,
    };
    if let Some(e) = lock()[slot].clone() {
        return Ok(e);
    }
    let e = Arc::new(Engine::new(backend)?);
    Ok(lock()[slot].get_or_insert(e).clone())
}

fn lock() -> std::sync::MutexGuard<'static, [Option<Arc<Engine>>; 3]> {
    // a panic while holding the lock leaves the slots valid (each is set whole)
    ENGINES.lock().unwrap_or_else(|p| p.into_inner())
}

/// `gpuq.backend(backend="auto") -> str`: which backend a job with this `backend` runs on
/// and why (the line the CLI prints), e.g. `"backend cpu: ..."`.
#[pyfunction]
#[pyo3(signature = (backend = "auto"))]
pub fn backend(py: Python<'_>, backend: &str) -> PyResult<String> {
    let b = parse_backend(backend)?;
    let e = py.detach(|| engine(b)).map_err(crate::to_py)?;
    Ok(e.describe())
}
