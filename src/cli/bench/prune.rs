//! `gpuq bench prune`: equilibrium pruning's score pass, CPU vs GPU, in one run: element
//! scores (row sums, scale, `--iterations` steps per weight), energies (row and column sums of
//! squares) and group scores (one player per row of the tile, from its row energy).
//!
//! Throughput is GB/s of f32 weights read (group scores: of f32 energies). Each cell is the
//! median of `--reps` timed calls after one untimed warm-up call (which also compiles the GPU
//! pipeline). The GPU's results are compared with the CPU's bit for bit; a cell that differs is
//! marked `!` and the command fails.

use crate::cli::args::parse_size;
use crate::engine::{Backend, Engine};
use crate::error::{Error, Result};
use crate::measure::participation::Participation;

use super::synth;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Which backends: auto = the CPU and, when an adapter exists, the GPU (even a software
    /// one); cpu or gpu = that one alone.
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    pub backend: Backend,
    /// Tile size: f32 bytes per call, e.g. 16M, 64M.
    #[arg(long, default_value = "16M", value_parser = parse_size)]
    pub size: u64,
    /// Row length in elements.
    #[arg(long, default_value_t = 4096)]
    pub row_len: usize,
    /// Iterations of the participation update.
    #[arg(long, default_value_t = Participation::default().iterations)]
    pub iterations: u32,
    /// Timed calls per cell (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// CPU worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

use super::codecs::time;

/// What one engine gave and how fast: GB/s per pass and the outputs (to compare).
struct Run {
    gbps: [f64; 3],
    scores: Vec<f32>,
    rows: Vec<f32>,
    cols: Vec<f32>,
    groups: Vec<f32>,
}

fn measure(e: &Engine, w: &[f32], row_len: usize, p: &Participation, reps: usize) -> Result<Run> {
    let bytes = (w.len() * 4) as f64;
    let mut scores = vec![f32::NAN; w.len()];
    let t_el = time(reps, || e.element_scores(w, row_len, p, &mut scores))?;
    let mut sums = (Vec::new(), Vec::new());
    let t_en = time(reps, || {
        sums = e.energies(w, row_len)?;
        Ok(())
    })?;
    // one player per row, its energy scaled to mean 1 over the tile's rows
    let (rows, cols) = sums;
    let mean = rows.iter().map(|&x| x as f64).sum::<f64>() / rows.len() as f64;
    let scaled: Vec<f32> = rows
        .iter()
        .map(|&x| {
            if mean > 0.0 {
                (x as f64 / mean) as f32
            } else {
                0.0
            }
        })
        .collect();
    let mut groups = Vec::new();
    let t_gr = time(reps, || {
        groups = e.group_scores(&scaled, p)?;
        Ok(())
    })?;
    Ok(Run {
        gbps: [
            bytes / t_el / 1e9,
            bytes / t_en / 1e9,
            (scaled.len() * 4) as f64 / t_gr / 1e9,
        ],
        scores,
        rows,
        cols,
        groups,
    })
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

pub fn run(a: Args) -> Result<()> {
    crate::cli::run_args::set_threads(a.threads);
    if a.row_len == 0 {
        return Err(Error::Invalid("--row-len 0: use at least 1".into()));
    }
    let p = Participation {
        iterations: a.iterations,
        ..Participation::default()
    };
    p.check().map_err(Error::Invalid)?;
    let rows_n = ((a.size / 4) as usize / a.row_len).max(1);
    let n = rows_n * a.row_len;
    let (cpu, gpu) = super::codecs::engines(a.backend)?;
    eprintln!(
        "gpuq bench: {} weights per call ({:.1} MiB of f32) in rows of {}, {} iterations, {} threads, median of {} calls",
        n,
        (n * 4) as f64 / (1 << 20) as f64,
        a.row_len,
        a.iterations,
        rayon::current_num_threads(),
        a.reps
    );
    let w = synth::weights_f32(n, a.row_len, 7);
    let cpu_run = cpu
        .as_ref()
        .map(|e| measure(e, &w, a.row_len, &p, a.reps))
        .transpose()?;
    let gpu_run = gpu
        .as_ref()
        .map(|e| measure(e, &w, a.row_len, &p, a.reps))
        .transpose()?;
    let mismatch = match (&cpu_run, &gpu_run) {
        (Some(c), Some(g)) => [
            !same_bits(&c.scores, &g.scores),
            !(same_bits(&c.rows, &g.rows) && same_bits(&c.cols, &g.cols)),
            !same_bits(&c.groups, &g.groups),
        ],
        _ => [false; 3],
    };
    let cell = |r: &Option<Run>, i: usize, bad: bool| match r {
        Some(r) => format!("{:.3}{}", r.gbps[i], if bad { "!" } else { "" }),
        None => "-".into(),
    };
    println!("| pass | CPU GB/s | GPU GB/s | GPU/CPU |\n|---|---:|---:|---:|");
    for (i, name) in [
        format!("element scores ({} iterations)", a.iterations),
        "energies (row + column sums)".into(),
        format!("group scores ({} iterations)", a.iterations),
    ]
    .iter()
    .enumerate()
    {
        let ratio = match (&cpu_run, &gpu_run) {
            (Some(c), Some(g)) if c.gbps[i] > 0.0 => format!("{:.2}", g.gbps[i] / c.gbps[i]),
            _ => "-".into(),
        };
        println!(
            "| {name} | {} | {} | {ratio} |",
            cell(&cpu_run, i, false),
            cell(&gpu_run, i, mismatch[i])
        );
    }
    println!(
        "GB/s of f32 read (weights; group scores: energies, one per row); '!': the GPU's results \
         differ from the CPU's."
    );
    if mismatch.iter().any(|&m| m) {
        return Err(Error::Invalid(
            "the GPU's scores differ from the CPU's (cells marked '!')".into(),
        ));
    }
    Ok(())
}
