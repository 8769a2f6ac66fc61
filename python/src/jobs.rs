//! The jobs: `gpuq.quantize`, `gpuq.dequantize`, `gpuq.convert` (the library's
//! `jobs::*` functions, as the CLI drives them), `gpuq.inspect` and `gpuq.stats` (the JSON of
//! `gpuq inspect --json` / `gpuq stats --json`, as dicts).
//!
//! Every job runs with the GIL released, reports to an optional progress callback and stops
//! on Ctrl-C ([`crate::progress`]); the output is written as `DST.tmp.<pid>` and renamed
//! after the last byte, so an error or an interrupt leaves nothing under `dst`.

use crate::engines::{engine, parse_backend};
use crate::progress::PyProgress;
use crate::{GpuqError, to_py};
use gpuq::engine::Backend;
use gpuq::formats::imatrix::Imatrix;
use gpuq::jobs::target::{self, Target, TargetOptions};
use gpuq::model::hf::{HfOptions, HfSource};
use gpuq::pipeline::{Progress, Summary};
use gpuq::policy::Mixture;
use gpuq::quantize::{QuantizeOptions, parse_tensor_type};
use gpuq::{Engine, GgmlType};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

/// A size argument: an int (bytes) or a string as the CLI takes it (`"2G"`, `"512M"`).
fn size_arg(v: Option<&Bound<'_, PyAny>>, default: u64, what: &str) -> PyResult<u64> {
    let Some(v) = v else { return Ok(default) };
    if let Ok(n) = v.extract::<u64>() {
        return Ok(n);
    }
    let s: String = v.extract().map_err(|_| {
        PyValueError::new_err(format!("{what}: expected bytes (int) or a size like '2G'"))
    })?;
    gpuq::cli::args::parse_size(&s).map_err(|e| PyValueError::new_err(format!("{what}: {e}")))
}

/// Runs `job` on the engine of `backend` (on a pool of `threads` workers when given),
/// reporting to `callback`, on a thread of its own while this thread, with the GIL released,
/// waits and runs Python's signal handlers (Ctrl-C cancels the job). Returns the job's value
/// and the line naming the backend.
fn run_job<T: Send>(
    py: Python<'_>,
    backend: Backend,
    threads: Option<usize>,
    callback: Option<Py<PyAny>>,
    job: impl FnOnce(&Engine, &dyn Progress) -> gpuq::Result<T> + Send,
) -> PyResult<(T, String)> {
    let progress = PyProgress::new(callback);
    let p = &progress;
    let work = move || -> gpuq::Result<(T, String)> {
        let e = engine(backend)?;
        let run = || job(&e, p);
        let v = match threads {
            // a pool of its own: rayon's global pool can be configured only once per process
            Some(n) => rayon::ThreadPoolBuilder::new()
                .num_threads(n.max(1))
                .build()
                .map_err(|err| gpuq::Error::Invalid(format!("threads={n}: {err}")))?
                .install(run)?,
            None => run()?,
        };
        Ok((v, e.describe()))
    };
    let r = py.detach(move || {
        std::thread::scope(|s| {
            let (done_tx, done_rx) = mpsc::channel::<()>();
            let worker = s.spawn(move || {
                let r = work();
                let _ = done_tx.send(());
                r
            });
            // Python runs signal handlers only on its main thread: this one, not the job's
            while let Err(RecvTimeoutError::Timeout) = done_rx.recv_timeout(SIGNAL_POLL) {
                p.check_signals();
            }
            worker
                .join()
                .unwrap_or_else(|_| Err(gpuq::Error::Invalid("the job panicked".into())))
        })
    });
    progress.finish_job(r)
}

/// How often a waiting job looks for Ctrl-C.
const SIGNAL_POLL: Duration = Duration::from_millis(50);

/// The CLI refuses to write over its input; so does the module.
fn refuse_same_file(input: &Path, output: &Path) -> gpuq::Result<()> {
    if let (Ok(a), Ok(b)) = (std::fs::canonicalize(input), std::fs::canonicalize(output))
        && a == b
    {
        return Err(gpuq::Error::Invalid(format!(
            "{}: refusing to overwrite the input file; choose another output",
            output.display()
        )));
    }
    Ok(())
}

/// A job's [`Summary`] as a dict.
fn summary_dict<'py>(
    py: Python<'py>,
    s: &Summary,
    backend: &str,
    notes: &[String],
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("tensors", s.tensors)?;
    d.set_item("converted", s.converted)?;
    d.set_item("parameters", s.parameters)?;
    d.set_item("input_bytes", s.input_bytes)?;
    d.set_item("output_bytes", s.output_bytes)?;
    d.set_item("bits_per_weight", s.bits_per_weight())?;
    d.set_item("seconds", s.seconds)?;
    d.set_item("backend", backend)?;
    d.set_item("notes", PyList::new(py, notes)?)?;
    Ok(d)
}

/// `tensor_types`: a dict (or a list of pairs) of regex -> type, first match wins.
fn tensor_type_overrides(v: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<(String, GgmlType)>> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let pairs: Vec<(String, String)> = match v.cast::<PyDict>() {
        Ok(d) => d
            .iter()
            .map(|(k, t)| Ok((k.extract()?, t.extract()?)))
            .collect::<PyResult<_>>()?,
        Err(_) => v.extract()?,
    };
    pairs
        .iter()
        // the CLI's --tensor-type REGEX=TYPE (the pattern lowercased, as llama-quantize does)
        .map(|(pat, ty)| parse_tensor_type(&format!("{pat}={ty}")).map_err(to_py))
        .collect()
}

fn type_arg(name: Option<&str>, what: &str) -> PyResult<Option<GgmlType>> {
    name.map(|n| {
        n.parse()
            .map_err(|e: String| GpuqError::new_err(format!("{what}: {e}")))
    })
    .transpose()
}

/// `gpuq.quantize(src, dst, type=None, ...) -> dict`: `gpuq quantize SRC -o DST --type TYPE`.
#[pyfunction]
#[pyo3(signature = (
    src, dst, r#type = None, imatrix = None, tensor_types = None, target_size = None,
    backend = "auto", threads = None, max_memory = None, progress = None, *,
    target_bpw = None, pure = false, output_tensor_type = None, token_embedding_type = None,
    leave_output_tensor = false, allow_requantize = false, allow_nonfinite = false,
    keep_names = false
))]
#[allow(clippy::too_many_arguments)]
pub fn quantize<'py>(
    py: Python<'py>,
    src: PathBuf,
    dst: PathBuf,
    r#type: Option<&str>,
    imatrix: Option<PathBuf>,
    tensor_types: Option<&Bound<'py, PyAny>>,
    target_size: Option<&Bound<'py, PyAny>>,
    backend: &str,
    threads: Option<usize>,
    max_memory: Option<&Bound<'py, PyAny>>,
    progress: Option<Py<PyAny>>,
    target_bpw: Option<f64>,
    pure: bool,
    output_tensor_type: Option<&str>,
    token_embedding_type: Option<&str>,
    leave_output_tensor: bool,
    allow_requantize: bool,
    allow_nonfinite: bool,
    keep_names: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let backend = parse_backend(backend)?;
    let target = match (target_size, target_bpw) {
        (Some(_), Some(_)) => {
            return Err(PyValueError::new_err(
                "pass target_size or target_bpw, not both",
            ));
        }
        (Some(s), None) => Some(Target::Size(size_arg(Some(s), 0, "target_size")?)),
        (None, Some(b)) => Some(Target::Bpw(b)),
        (None, None) => None,
    };
    let mixture = Mixture::parse(r#type.unwrap_or("Q4_K_M")).map_err(GpuqError::new_err)?;
    let mut opts = QuantizeOptions::new(mixture.name).map_err(to_py)?;
    opts.pure = pure;
    opts.output_tensor_type = type_arg(output_tensor_type, "output_tensor_type")?;
    opts.token_embedding_type = type_arg(token_embedding_type, "token_embedding_type")?;
    opts.leave_output_tensor = leave_output_tensor;
    opts.allow_requantize = allow_requantize;
    opts.allow_nonfinite = allow_nonfinite;
    opts.write.allow_nonfinite = allow_nonfinite;
    opts.overrides = tensor_type_overrides(tensor_types)?;
    opts.max_memory = size_arg(max_memory, 2 << 30, "max_memory")?;
    let base_named = r#type.is_some();
    let mut notes = Vec::new();
    let (s, backend_line) = run_job(py, backend, threads, progress, |e, p| {
        refuse_same_file(&src, &dst)?;
        let source = gpuq::model::ollama::apply(
            gpuq::model::open_source(&src)?,
            keep_names,
            &mut |line: String| notes.push(line),
        )?;
        if let Some(path) = &imatrix {
            opts.set_imatrix(Imatrix::load(path)?, path);
        }
        if let Some(t) = target {
            let topts = TargetOptions::new(t);
            let plan = target::plan_to_target(source.as_ref(), e, &opts, base_named, &topts, p)?;
            opts = target::apply(&plan, opts)?;
        }
        gpuq::quantize(source.as_ref(), &dst, e, &opts, p)
    })?;
    summary_dict(py, &s, &backend_line, &notes)
}

/// `gpuq.dequantize(src, dst, type="F32", ...) -> dict`: `gpuq dequantize SRC -o DST`.
#[pyfunction]
#[pyo3(signature = (
    src, dst, r#type = "F32", backend = "auto", threads = None, max_memory = None,
    progress = None, *, keep_names = false
))]
#[allow(clippy::too_many_arguments)]
pub fn dequantize<'py>(
    py: Python<'py>,
    src: PathBuf,
    dst: PathBuf,
    r#type: &str,
    backend: &str,
    threads: Option<usize>,
    max_memory: Option<&Bound<'py, PyAny>>,
    progress: Option<Py<PyAny>>,
    keep_names: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let backend = parse_backend(backend)?;
    let ty: GgmlType = r#type.parse().map_err(GpuqError::new_err)?;
    let max_memory = size_arg(max_memory, 2 << 30, "max_memory")?;
    let mut notes = Vec::new();
    let (s, backend_line) = run_job(py, backend, threads, progress, |e, p| {
        refuse_same_file(&src, &dst)?;
        let source = gpuq::model::ollama::apply(
            gpuq::model::open_source(&src)?,
            keep_names,
            &mut |line: String| notes.push(line),
        )?;
        gpuq::jobs::dequantize::dequantize(source.as_ref(), &dst, ty, max_memory, e, p)
    })?;
    summary_dict(py, &s, &backend_line, &notes)
}

/// `gpuq.convert(src_dir, dst, outtype="f16", ...) -> dict`: `gpuq convert DIR -o DST`.
#[pyfunction]
#[pyo3(signature = (
    src_dir, dst, outtype = "f16", backend = "auto", threads = None, max_memory = None,
    progress = None, *, vocab_pre = None, no_tokenizer = false
))]
#[allow(clippy::too_many_arguments)]
pub fn convert<'py>(
    py: Python<'py>,
    src_dir: PathBuf,
    dst: PathBuf,
    outtype: &str,
    backend: &str,
    threads: Option<usize>,
    max_memory: Option<&Bound<'py, PyAny>>,
    progress: Option<Py<PyAny>>,
    vocab_pre: Option<String>,
    no_tokenizer: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let backend = parse_backend(backend)?;
    let ty = match outtype.to_ascii_lowercase().as_str() {
        "f32" => GgmlType::F32,
        "f16" => GgmlType::F16,
        "bf16" => GgmlType::BF16,
        "q8_0" => GgmlType::Q8_0,
        _ => {
            return Err(PyValueError::new_err(format!(
                "outtype '{outtype}': expected f32, f16, bf16 or q8_0"
            )));
        }
    };
    let max_memory = size_arg(max_memory, 2 << 30, "max_memory")?;
    let (s, backend_line) = run_job(py, backend, threads, progress, |e, p| {
        if !src_dir.is_dir() {
            return Err(gpuq::Error::Invalid(format!(
                "{}: convert takes a Hugging Face model folder (for a GGUF file use quantize)",
                src_dir.display()
            )));
        }
        let opts = HfOptions {
            vocab_pre,
            no_tokenizer,
        };
        let source = HfSource::open(&src_dir, &opts)?;
        gpuq::jobs::convert::convert(&source, &dst, ty, max_memory, e, p)
    })?;
    summary_dict(py, &s, &backend_line, &[])
}

/// A JSON value as the Python object `json.loads` makes of it.
fn json_to_py<'py>(py: Python<'py>, v: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(v).map_err(|e| GpuqError::new_err(e.to_string()))?;
    py.import("json")?.call_method1("loads", (text,))
}

/// `gpuq.inspect(path) -> dict`: what `gpuq inspect --json PATH` prints.
#[pyfunction]
pub fn inspect<'py>(py: Python<'py>, path: PathBuf) -> PyResult<Bound<'py, PyAny>> {
    let v = py
        .detach(|| gpuq::jobs::inspect::inspect(&path))
        .map_err(to_py)?;
    json_to_py(py, &v)
}

/// `gpuq.stats(path, types=None, ...) -> dict`: what `gpuq stats --json PATH --type ...`
/// prints (file order).
#[pyfunction]
#[pyo3(signature = (
    path, types = None, *, per_row = false, outlier_k = gpuq::stats::DEFAULT_OUTLIER_K,
    backend = "auto", max_memory = None, progress = None
))]
#[allow(clippy::too_many_arguments)]
pub fn stats<'py>(
    py: Python<'py>,
    path: PathBuf,
    types: Option<Vec<String>>,
    per_row: bool,
    outlier_k: f32,
    backend: &str,
    max_memory: Option<&Bound<'py, PyAny>>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyAny>> {
    use gpuq::stats::report::{StatsOptions, analyze_tensor, layer_summaries, stats_types};
    let backend = parse_backend(backend)?;
    if !(outlier_k.is_finite() && outlier_k > 0.0) {
        return Err(PyValueError::new_err(format!(
            "outlier_k {outlier_k}: must be a positive number"
        )));
    }
    let types: Vec<GgmlType> = types
        .unwrap_or_default()
        .iter()
        .map(|t| t.parse().map_err(GpuqError::new_err))
        .collect::<PyResult<_>>()?;
    let types = stats_types(&types).map_err(to_py)?;
    let opts = StatsOptions {
        outlier_k,
        types: types.clone(),
        max_memory: size_arg(max_memory, 256 << 20, "max_memory")?,
        per_row,
    };
    let (v, _) = run_job(py, backend, None, progress, |e, p| {
        // the tokenizer plays no part in weight statistics
        let hf = HfOptions {
            vocab_pre: None,
            no_tokenizer: true,
        };
        let src = gpuq::model::open_source_with(&path, &hf)?;
        let n = src.tensors().len();
        p.start((0..n).map(|i| src.tensor_len(i)).sum(), n);
        let mut reports = Vec::with_capacity(n);
        for (i, t) in src.tensors().iter().enumerate() {
            if p.cancelled() {
                return Err(gpuq::Error::Interrupted);
            }
            p.tensor(i, &t.name, t.ty, t.ty);
            reports.push(analyze_tensor(src.as_ref(), i, &opts, e)?);
            p.advance(src.tensor_len(i));
        }
        let layers = layer_summaries(&reports, &types);
        Ok(gpuq::stats::json::report_json(
            &path.display().to_string(),
            &e.describe(),
            outlier_k,
            &reports,
            &layers,
            &types,
        ))
    })?;
    json_to_py(py, &v)
}
