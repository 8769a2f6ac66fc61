//! The library's [`Progress`] for a job run from Python: it calls the user's callback
//! `progress(done_bytes, total_bytes, tensor_name)` and makes Ctrl-C (and an exception raised
//! by the callback) stop the job.
//!
//! The job runs on a thread of its own with the GIL released; every event re-acquires the GIL
//! for the callback (so the callback runs on that thread). The calling thread, Python's main
//! thread when called from the top level, waits for the job and meanwhile runs Python's signal
//! handlers every 50 ms ([`PyProgress::check_signals`], `PyErr_CheckSignals`, which only the
//! main thread can do): a pending Ctrl-C raises `KeyboardInterrupt` there, the exception is
//! kept, the library sees [`Progress::cancelled`] before its next tile and stops with
//! `Error::Interrupted` (its temporary output removed, nothing left under the output name),
//! and [`PyProgress::finish_job`] raises the kept exception.

use gpuq::GgmlType;
use gpuq::pipeline::Progress;
use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct PyProgress {
    callback: Option<Py<PyAny>>,
    total: AtomicU64,
    done: AtomicU64,
    name: Mutex<String>,
    /// The first exception raised by the callback or a signal handler.
    error: Mutex<Option<PyErr>>,
}

impl PyProgress {
    pub fn new(callback: Option<Py<PyAny>>) -> Self {
        PyProgress {
            callback,
            total: AtomicU64::new(0),
            done: AtomicU64::new(0),
            name: Mutex::new(String::new()),
            error: Mutex::new(None),
        }
    }

    fn keep(&self, e: PyErr) {
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(e);
        }
    }

    fn failed(&self) -> bool {
        self.error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// Calls the callback with the counts and the current tensor; an exception stops the job.
    fn report(&self) {
        let Some(cb) = &self.callback else { return };
        if self.failed() {
            return;
        }
        let name = self.name.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let (done, total) = (
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        );
        if let Err(e) = Python::attach(|py| cb.call1(py, (done, total, name)).map(drop)) {
            self.keep(e);
        }
    }

    /// Runs Python's signal handlers (the calling thread must be the one Python delivers
    /// signals to); an exception they raise (KeyboardInterrupt) cancels the job.
    pub fn check_signals(&self) {
        if let Err(e) = Python::attach(|py| py.check_signals()) {
            self.keep(e);
        }
    }

    /// The job's result as Python sees it: the kept exception when the job was stopped by
    /// one (Ctrl-C, or the callback raised), else the library's error as `gpuq.GpuqError`.
    pub fn finish_job<T>(&self, r: gpuq::Result<T>) -> PyResult<T> {
        let kept = self.error.lock().unwrap_or_else(|p| p.into_inner()).take();
        match (r, kept) {
            (Ok(v), None) => Ok(v),
            (_, Some(e)) => Err(e),
            (Err(gpuq::Error::Interrupted), None) => Err(PyKeyboardInterrupt::new_err(
                gpuq::Error::Interrupted.to_string(),
            )),
            (Err(e), None) => Err(crate::to_py(e)),
        }
    }
}

impl Progress for PyProgress {
    fn start(&self, total_bytes: u64, _n_tensors: usize) {
        // a size target's measuring pass, then the write pass: each starts from zero
        self.total.store(total_bytes, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
        self.report();
    }

    fn tensor(&self, _index: usize, name: &str, _from: GgmlType, _to: GgmlType) {
        *self.name.lock().unwrap_or_else(|p| p.into_inner()) = name.to_string();
        self.report();
    }

    fn step(&self, _index: usize, name: &str, _what: &str) {
        *self.name.lock().unwrap_or_else(|p| p.into_inner()) = name.to_string();
        self.report();
    }

    fn advance(&self, input_bytes: u64) {
        self.done.fetch_add(input_bytes, Ordering::Relaxed);
        self.report();
    }

    fn cancelled(&self) -> bool {
        self.failed()
    }
}
