//! `gpuq bench quantize`: gpuq vs llama.cpp's quantizer on a generated Llama-shaped F16 model.
//!
//! The model is streamed to disk (see [`synth::write_llama_f16`]); then `gpuq quantize` and
//! llama.cpp's quantizer (`tests/py/llama_fixture.py quantize`, i.e. `llama_model_quantize`,
//! llama-quantize's code path) each run in a child process with the same thread count, and
//! each is measured: wall time, peak RSS ([`rss::run_measured`]), input GB/s. Before each run
//! the input's pages are dropped from the page cache (both start cold) unless `--warm`.
//! Finally gpuq's peak RSS is checked against `--max-memory` plus [`FIXED_OVERHEAD`], and
//! (with `--compare`) the two outputs are compared tensor by tensor.

use super::rss::{self, Measured};
use super::synth::{self, LlamaShape};
use crate::cli::args::parse_size;
use crate::engine::Backend;
use crate::error::{Error, Result};
use crate::formats::gguf::GgufFile;
use crate::policy::Mixture;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Peak RSS gpuq may use beyond `--max-memory`, independent of the model's size: the
/// executable and its shared libraries, the allocator's arenas and thread stacks (~10-20
/// MiB), the model's metadata and tensor table, and the input pages of the tile being read
/// (mapped, touched, released right after) which are at most half the f32 work buffer that
/// `--max-memory` already counts. See BENCHMARKS.md for the measurements behind it.
pub const FIXED_OVERHEAD: u64 = 256 << 20;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Size of the generated F16 model, e.g. 300M, 2G, 8G.
    #[arg(long, default_value = "8G", value_parser = parse_size)]
    pub size: u64,
    /// Mixtures, as llama-quantize names them, comma-separated: each is run by both
    /// quantizers on the same model, and a last table gives the speed ratio per mixture.
    #[arg(long = "type", default_value = "Q4_K_M", value_delimiter = ',')]
    pub ty: Vec<String>,
    /// Threads for both quantizers (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// gpuq's --max-memory.
    #[arg(long, default_value = "2G", value_parser = parse_size)]
    pub max_memory: u64,
    /// gpuq's --backend.
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    pub backend: Backend,
    /// Keep the model and outputs in DIR (and reuse a model generated there before).
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// Seed of the generated weights.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Skip llama.cpp's quantizer (gpuq alone, with its memory check).
    #[arg(long)]
    pub no_llama: bool,
    /// The script that runs llama.cpp's quantizer.
    #[arg(long, value_name = "PATH")]
    pub llama_script: Option<PathBuf>,
    /// Leave the input in the page cache between runs (default: drop it before each).
    #[arg(long)]
    pub warm: bool,
    /// Compare the two outputs tensor by tensor (types and bytes) afterwards.
    #[arg(long)]
    pub compare: bool,
    /// Allowed peak RSS beyond --max-memory, e.g. 256M.
    #[arg(long, default_value_t = FIXED_OVERHEAD, value_parser = parse_size)]
    pub overhead: u64,
}

/// Generates the model for `size` bytes of F16 in `dir` unless a file of that shape is there.
pub fn ensure_model(dir: &Path, size: u64, seed: u64) -> Result<(PathBuf, LlamaShape)> {
    let shape = LlamaShape::for_f16_bytes(size);
    let path = dir.join(format!(
        "llama-f16-L{}-E{}-F{}-V{}-s{seed}.gguf",
        shape.layers, shape.embd, shape.ff, shape.vocab
    ));
    if path.exists() {
        eprintln!("gpuq bench: reusing {}", path.display());
        return Ok((path, shape));
    }
    eprintln!("gpuq bench: writing {} ({shape})", path.display());
    let t = Instant::now();
    synth::write_llama_f16(&path, &shape, seed)?;
    let len = file_len(&path)?;
    eprintln!(
        "gpuq bench: {:.2} GiB written in {:.1} s",
        len as f64 / (1u64 << 30) as f64,
        t.elapsed().as_secs_f64()
    );
    Ok((path, shape))
}

fn file_len(p: &Path) -> Result<u64> {
    Ok(std::fs::metadata(p).map_err(|e| Error::io(p, e))?.len())
}

/// Drops a file's pages from the page cache (after writing back dirty ones).
pub fn evict(path: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    f.sync_all().map_err(|e| Error::io(path, e))?;
    // SAFETY: a valid open descriptor; fadvise only changes caching.
    let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if r != 0 {
        return Err(Error::io(path, std::io::Error::from_raw_os_error(r)));
    }
    Ok(())
}

/// Runs `cmd` with its output in `log`, measured; a failure names the log.
pub fn run_logged(cmd: &mut Command, log: &Path, what: &str) -> Result<Measured> {
    let f = std::fs::File::create(log).map_err(|e| Error::io(log, e))?;
    let f2 = f.try_clone().map_err(|e| Error::io(log, e))?;
    cmd.stdout(Stdio::from(f)).stderr(Stdio::from(f2));
    let m = rss::run_measured(cmd, Duration::from_millis(20))
        .map_err(|e| Error::Invalid(format!("{what}: could not start: {e}")))?;
    if !m.success() {
        let tail = std::fs::read_to_string(log).unwrap_or_default();
        let tail: Vec<&str> = tail.lines().rev().take(15).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(Error::Invalid(format!(
            "{what} exited with {} (log {}):\n{}",
            m.code,
            log.display(),
            tail.join("\n")
        )));
    }
    Ok(m)
}

/// The `gpuq quantize` command line for a run.
pub fn gpuq_command(
    input: &Path,
    output: &Path,
    mixture: &str,
    threads: usize,
    max_memory: u64,
    backend: Backend,
) -> Result<Command> {
    let exe = std::env::current_exe().map_err(|e| Error::io("gpuq executable", e))?;
    let mut c = Command::new(exe);
    c.arg("quantize")
        .arg(input)
        .arg("-o")
        .arg(output)
        .args(["--type", mixture])
        .args(["--threads", &threads.to_string()])
        .args(["--max-memory", &max_memory.to_string()])
        .args(["--backend", &backend.to_string()]);
    Ok(c)
}

fn default_script() -> PathBuf {
    let in_repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/llama_fixture.py");
    if in_repo.exists() {
        in_repo
    } else {
        PathBuf::from("tests/py/llama_fixture.py")
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / (1u64 << 20) as f64
}

/// One line of the result table.
pub struct Result1 {
    pub tool: String,
    pub m: Measured,
    pub input: u64,
    pub output: u64,
}

/// The result table as Markdown.
pub fn table(rows: &[Result1]) -> String {
    let mut s = String::from(
        "| quantizer | wall s | CPU s | peak RSS MiB | input GB/s | output MiB |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        s += &format!(
            "| {} | {:.1} | {:.1} | {:.0} | {:.3} | {:.0} |\n",
            r.tool,
            r.m.wall_s,
            r.m.cpu_s,
            mib(r.m.peak_rss),
            r.input as f64 / r.m.wall_s / 1e9,
            mib(r.output)
        );
    }
    s
}

pub fn run(a: Args) -> Result<()> {
    let mixtures: Vec<&'static Mixture> =
        a.ty.iter()
            .map(|t| Mixture::parse(t).map_err(Error::Invalid))
            .collect::<Result<_>>()?;
    let threads = a.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let (dir, temp) = match &a.keep {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("gpuq-bench-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let mut ratios = Vec::new();
    let mut result = Ok(());
    for mixture in &mixtures {
        match bench(&a, mixture, threads, &dir) {
            Ok(r) => ratios.extend(r),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    if result.is_ok() && !ratios.is_empty() {
        print!("{}", ratio_table(&ratios, threads, a.warm));
    }
    if temp {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

/// One mixture's comparison: wall seconds of both, whether the files are identical.
pub struct Ratio {
    pub mixture: &'static str,
    pub gpuq_s: f64,
    pub llama_s: f64,
    pub identical: Option<bool>,
}

/// The last table of a run: llama.cpp's wall time over gpuq's, per mixture.
pub fn ratio_table(rows: &[Ratio], threads: usize, warm: bool) -> String {
    let load = load_average();
    let mut s = format!(
        "speed ratio per mixture ({threads} threads, input {} before each run, load average {load} at the end)\n| mixture | gpuq wall s | llama.cpp wall s | gpuq / llama.cpp speed | identical files |\n|---|---:|---:|---:|---|\n",
        if warm {
            "left in the page cache"
        } else {
            "dropped from the page cache"
        }
    );
    for r in rows {
        s += &format!(
            "| {} | {:.2} | {:.2} | {:.2} | {} |\n",
            r.mixture,
            r.gpuq_s,
            r.llama_s,
            r.llama_s / r.gpuq_s,
            match r.identical {
                Some(true) => "yes",
                Some(false) => "NO",
                None => "not compared",
            }
        );
    }
    s
}

/// The 1-minute load average as /proc/loadavg prints it ("?" where there is none).
fn load_average() -> String {
    let s = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    s.split_whitespace().next().unwrap_or("?").to_string()
}

fn bench(a: &Args, mixture: &'static Mixture, threads: usize, dir: &Path) -> Result<Option<Ratio>> {
    let (model, shape) = ensure_model(dir, a.size, a.seed)?;
    let input = file_len(&model)?;
    let mut rows = Vec::new();

    let out_gpuq = dir.join(format!("gpuq-{}.gguf", mixture.name));
    if !a.warm {
        evict(&model)?;
    }
    eprintln!(
        "gpuq bench: gpuq quantize --type {} --threads {threads} --max-memory {} --backend {}",
        mixture.name, a.max_memory, a.backend
    );
    let m = run_logged(
        &mut gpuq_command(
            &model,
            &out_gpuq,
            mixture.name,
            threads,
            a.max_memory,
            a.backend,
        )?,
        &dir.join("gpuq.log"),
        "gpuq quantize",
    )?;
    rows.push(Result1 {
        tool: format!(
            "gpuq ({} threads, --max-memory {})",
            threads,
            size_name(a.max_memory)
        ),
        m,
        input,
        output: file_len(&out_gpuq)?,
    });

    let out_llama = dir.join(format!("llama-{}.gguf", mixture.name));
    if !a.no_llama {
        if !a.warm {
            evict(&model)?;
        }
        let script = a.llama_script.clone().unwrap_or_else(default_script);
        eprintln!(
            "gpuq bench: python3 {} quantize … {} --threads {threads}",
            script.display(),
            mixture.ftype
        );
        let mut c = Command::new("python3");
        c.arg(&script)
            .arg("quantize")
            .arg(&model)
            .arg(&out_llama)
            .arg(mixture.ftype.to_string())
            .args(["--threads", &threads.to_string()]);
        let m = run_logged(&mut c, &dir.join("llama.log"), "llama.cpp's quantizer")?;
        rows.push(Result1 {
            tool: format!("llama.cpp llama_model_quantize ({threads} threads)"),
            m,
            input,
            output: file_len(&out_llama)?,
        });
    }

    println!(
        "model: {shape}; {:.2} GiB of F16 ({input} bytes); mixture {}",
        input as f64 / (1u64 << 30) as f64,
        mixture.name
    );
    print!("{}", table(&rows));
    if rows.len() == 2 {
        println!(
            "gpuq vs llama.cpp: {:.2}x the speed (wall), {:.2}x the peak RSS",
            rows[1].m.wall_s / rows[0].m.wall_s,
            rows[0].m.peak_rss as f64 / rows[1].m.peak_rss as f64
        );
    }
    let mut identical = None;
    if a.compare && rows.len() == 2 {
        let (n, differ) = compare(&out_gpuq, &out_llama)?;
        identical = Some(
            differ.is_empty()
                && std::fs::read(&out_gpuq).map_err(|e| Error::io(&out_gpuq, e))?
                    == std::fs::read(&out_llama).map_err(|e| Error::io(&out_llama, e))?,
        );
        println!(
            "outputs: {n} tensors compared by name, {} differ in type or bytes{}",
            differ.len(),
            if differ.is_empty() {
                String::new()
            } else {
                format!(" ({})", differ.join(", "))
            }
        );
    }
    let limit = a.max_memory + a.overhead;
    let peak = rows[0].m.peak_rss;
    let ok = peak <= limit;
    println!(
        "memory check: gpuq peak RSS {:.0} MiB {} --max-memory {:.0} MiB + overhead {:.0} MiB = {:.0} MiB: {}",
        mib(peak),
        if ok { "<=" } else { ">" },
        mib(a.max_memory),
        mib(a.overhead),
        mib(limit),
        if ok { "ok" } else { "FAILED" }
    );
    if !ok {
        return Err(Error::Invalid(format!(
            "gpuq's peak RSS {:.0} MiB exceeds its budget {:.0} MiB",
            mib(peak),
            mib(limit)
        )));
    }
    Ok((rows.len() == 2).then(|| Ratio {
        mixture: mixture.name,
        gpuq_s: rows[0].m.wall_s,
        llama_s: rows[1].m.wall_s,
        identical,
    }))
}

fn size_name(b: u64) -> String {
    if b % (1 << 30) == 0 {
        format!("{}G", b >> 30)
    } else if b % (1 << 20) == 0 {
        format!("{}M", b >> 20)
    } else {
        b.to_string()
    }
}

/// Compares two GGUFs tensor by tensor, by name: (tensors compared, names that differ).
pub fn compare(a: &Path, b: &Path) -> Result<(usize, Vec<String>)> {
    let fa = GgufFile::open(a)?;
    let fb = GgufFile::open(b)?;
    let mut differ = Vec::new();
    for t in &fa.tensors {
        let same = match fb.tensor(&t.name) {
            Some(u) => {
                let same =
                    u.ty == t.ty && u.dims == t.dims && fa.tensor_data(t) == fb.tensor_data(u);
                fa.advise(0, fa.file_len(), false);
                fb.advise(0, fb.file_len(), false);
                same
            }
            None => false,
        };
        if !same {
            differ.push(t.name.clone());
        }
    }
    if fb.tensors.len() != fa.tensors.len() {
        differ.push(format!(
            "tensor counts {} vs {}",
            fa.tensors.len(),
            fb.tensors.len()
        ));
    }
    Ok((fa.tensors.len(), differ))
}
