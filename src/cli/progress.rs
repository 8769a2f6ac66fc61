//! Progress for long runs: an indicatif bar on a terminal, plain lines otherwise, nothing
//! with `-q`.

use crate::engine::{Backend, Engine};
use crate::ggml_type::GgmlType;
use crate::pipeline::{Progress, Summary};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Set by the process's Ctrl-C handler (one per process: the signal is process-wide); every
/// CLI job's progress reports it as [`Progress::cancelled`], and the library stops between
/// tiles and leaves no output.
static CTRL_C: AtomicBool = AtomicBool::new(false);

pub struct ProgressReporter {
    bar: Option<ProgressBar>,
    plain: bool,
    n_tensors: AtomicUsize,
}

impl ProgressReporter {
    pub fn new(quiet: bool) -> Self {
        let tty = std::io::stderr().is_terminal();
        let bar = (!quiet && tty).then(|| {
            let b = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            b
        });
        ProgressReporter {
            bar,
            plain: !quiet && !tty,
            n_tensors: AtomicUsize::new(0),
        }
    }
}

/// One progress line in one write: stderr is unbuffered, and `eprintln!` with padding writes
/// piece by piece (a system call per pad character: 40-odd per line, seen in a profile, while
/// the worker threads wait for the next tensor).
fn plain_line(line: String) {
    use std::io::Write;
    // a closed stderr is not the run's failure
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

impl Progress for ProgressReporter {
    fn start(&self, total_bytes: u64, n_tensors: usize) {
        self.n_tensors.store(n_tensors, Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.set_length(total_bytes);
        }
    }

    fn tensor(&self, index: usize, name: &str, from: GgmlType, to: GgmlType) {
        let n = self.n_tensors.load(Ordering::Relaxed);
        let what = if from == to {
            format!("{from} (copy)")
        } else {
            format!("{from} -> {to}")
        };
        if let Some(b) = &self.bar {
            b.set_message(format!("[{}/{n}] {name} {what}", index + 1));
        } else if self.plain {
            plain_line(format!("[{:>4}/{n:>4}] {name:<44} {what}\n", index + 1));
        }
    }

    fn step(&self, index: usize, name: &str, what: &str) {
        let n = self.n_tensors.load(Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.set_message(format!("[{}/{n}] {name} {what}", index + 1));
        } else if self.plain {
            plain_line(format!("[{:>4}/{n:>4}] {name:<44} {what}\n", index + 1));
        }
    }

    fn advance(&self, input_bytes: u64) {
        if let Some(b) = &self.bar {
            b.inc(input_bytes);
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }

    fn cancelled(&self) -> bool {
        CTRL_C.load(Ordering::Relaxed)
    }
}

/// The common frame of a long CLI job (quantize, dequantize, convert): builds the engine and
/// says which backend was chosen, makes Ctrl-C stop the pipeline between tiles (so no output
/// is left), and shows progress unless `quiet`.
pub fn run_job(
    backend: Backend,
    quiet: bool,
    job: impl FnOnce(&Engine, &dyn Progress) -> crate::Result<Summary>,
) -> crate::Result<Summary> {
    let engine = job_engine(backend, quiet)?;
    job(&engine, &ProgressReporter::new(quiet))
}

/// The engine of a CLI job, its backend said unless `quiet`, with Ctrl-C wired to
/// [`Progress::cancelled`] (for jobs of several passes sharing one engine).
pub fn job_engine(backend: Backend, quiet: bool) -> crate::Result<Engine> {
    let engine = Engine::new(backend)?;
    if !quiet {
        eprintln!("gpuq: {}", engine.describe());
    }
    // a second handler (tests run several jobs in one process) is refused; the first one stays
    let _ = ctrlc::set_handler(|| CTRL_C.store(true, Ordering::Relaxed));
    Ok(engine)
}
