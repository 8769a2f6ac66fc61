//! `gpuq stats`: per-tensor and per-layer weight statistics and, for each `--type`, the
//! quantization error of a round trip through that type; a table, JSON, and a plot.

use crate::cli::format::{decibels, number};
use crate::engine::{Backend, Engine};
use crate::error::{Error, Result};
use crate::ggml_type::GgmlType;
use crate::stats;
use crate::stats::json::report_json;
use crate::stats::report::{
    LayerSummary, StatsOptions, TensorReport, TypeFidelity, analyze_tensor, layer_summaries,
    stats_types,
};
use std::io::Write;
use std::path::PathBuf;

#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortBy {
    /// The file's order.
    #[default]
    File,
    /// Largest relative error over the --type list first (without --type: largest absmax/absmean).
    Worst,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A GGUF model (F32/F16/BF16 or any type gpuq decodes; the first of split files) or a
    /// Hugging Face folder.
    pub model: PathBuf,
    /// Measure the round-trip error through this type (repeat or comma-separate: Q4_0,Q4_K,Q6_K).
    #[arg(long = "type", short = 't', value_delimiter = ',')]
    pub types: Vec<GgmlType>,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Row order of the tables.
    #[arg(long, value_enum, default_value_t = SortBy::File)]
    pub sort: SortBy,
    /// Draw error per layer per type and absmax/absmean per layer to FILE.svg or FILE.png.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Outliers are |w| > K times the RMS of the weight's row.
    #[arg(long, default_value_t = stats::DEFAULT_OUTLIER_K)]
    pub outlier_k: f32,
    /// Include per-row (per output channel) statistics and errors in the JSON.
    #[arg(long)]
    pub per_row: bool,
    /// Compute backend.
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    pub backend: Backend,
    /// Memory for one tile of rows, e.g. 256M.
    #[arg(long, default_value = "256M", value_parser = crate::cli::args::parse_size)]
    pub max_memory: u64,
}

pub fn run(a: Args) -> Result<()> {
    if !(a.outlier_k.is_finite() && a.outlier_k > 0.0) {
        return Err(Error::Invalid(format!(
            "--outlier-k {}: must be a positive number",
            a.outlier_k
        )));
    }
    let types = stats_types(&a.types)?;
    // the tokenizer plays no part in weight statistics
    let hf_opts = crate::model::hf::HfOptions {
        vocab_pre: None,
        no_tokenizer: true,
    };
    let src = crate::model::open_source_with(&a.model, &hf_opts)?;
    let n_tensors = src.tensors().len();
    let engine = Engine::new(a.backend)?;
    eprintln!(
        "gpuq stats: {} ({} tensors), {}",
        src.describe(),
        n_tensors,
        engine.describe()
    );
    let opts = StatsOptions {
        outlier_k: a.outlier_k,
        types: types.clone(),
        max_memory: a.max_memory,
        per_row: a.per_row,
    };
    let mut reports = Vec::with_capacity(n_tensors);
    for i in 0..n_tensors {
        reports.push(analyze_tensor(src.as_ref(), i, &opts, &engine)?);
    }
    let mut layers = layer_summaries(&reports, &types);
    if let Some(p) = &a.plot {
        let title = format!(
            "gpuq stats: {}",
            a.model
                .file_name()
                .map(|s| s.to_string_lossy())
                .unwrap_or_default()
        );
        stats::plot::plot_layers(p, &layers, &types, &title)?;
        eprintln!("gpuq stats: wrote {}", p.display());
    }
    if a.sort == SortBy::Worst {
        let key = |t: &TensorReport| t.worst_error().unwrap_or_else(|| t.stats.peak_ratio());
        reports.sort_by(|x, y| key(y).total_cmp(&key(x)));
        let lkey = |l: &LayerSummary| l.worst_error().unwrap_or(l.peak_ratio);
        layers.sort_by(|x, y| lkey(y).total_cmp(&lkey(x)));
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let res = if a.json {
        let j = report_json(
            &a.model.display().to_string(),
            &engine.describe(),
            a.outlier_k,
            &reports,
            &layers,
            &types,
        );
        serde_json::to_writer_pretty(&mut out, &j)
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(out))
    } else {
        write_text(&mut out, &reports, &layers, &types, a.outlier_k)
    };
    match res.and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Error::io("<stdout>", e)),
    }
}

fn shape(dims: &[u64]) -> String {
    dims.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join("x")
}

fn write_text(
    out: &mut dyn Write,
    reports: &[TensorReport],
    layers: &[LayerSummary],
    types: &[GgmlType],
    k: f32,
) -> std::io::Result<()> {
    let w = reports
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(6)
        .max(6);
    writeln!(
        out,
        "weight statistics (moments over finite values; outliers: |w| > {k} x row RMS)"
    )?;
    writeln!(
        out,
        "{:<w$}  {:<5} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8} {:>8} {:>9} {:>5} {:>5}",
        "tensor",
        "type",
        "shape",
        "mean",
        "absmean",
        "rms",
        "min",
        "max",
        "absmax",
        "max/mean",
        "zeros",
        "outliers",
        "nan",
        "inf"
    )?;
    for r in reports {
        let s = &r.stats;
        writeln!(
            out,
            "{:<w$}  {:<5} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8.2} {:>8} {:>9} {:>5} {:>5}",
            r.name,
            r.ty.name(),
            shape(&r.dims),
            number(s.mean()),
            number(s.absmean()),
            number(s.rms()),
            number(s.min as f64),
            number(s.max as f64),
            number(s.absmax()),
            s.peak_ratio(),
            s.zeros,
            s.outliers,
            s.nan,
            s.inf
        )?;
    }
    if !types.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "quantization error (encode -> decode vs the source; rel.err = |W-Q(W)|/|W|)"
        )?;
        writeln!(
            out,
            "{:<w$}  {:<5} {:>10} {:>10} {:>9} {:>10} {:>8}  worst row (rel.err)",
            "tensor", "quant", "rmse", "max|err|", "rel.err", "cosine", "SNR dB"
        )?;
        for r in reports.iter().filter(|r| r.is_matrix()) {
            for (ty, e) in &r.errors {
                match e {
                    TypeFidelity::Measured { via, acc, .. } => {
                        let m = acc.metrics();
                        let mut worst = acc
                            .worst_row
                            .map(|(row, v)| format!("{row} ({v:.4})"))
                            .unwrap_or_default();
                        if via != ty {
                            worst.push_str(&format!(
                                "  [falls back to {via}: row of {} is not a multiple of {}]",
                                r.dims[0],
                                ty.block_elems()
                            ));
                        }
                        writeln!(
                            out,
                            "{:<w$}  {:<5} {:>10} {:>10} {:>9.5} {:>10.6} {:>8}  {worst}",
                            r.name,
                            ty.name(),
                            number(m.rmse),
                            number(m.max_abs),
                            m.rel_frobenius,
                            m.cosine,
                            decibels(m.snr_db)
                        )?;
                    }
                    TypeFidelity::Skipped(why) => {
                        writeln!(out, "{:<w$}  {:<5} skipped: {why}", r.name, ty.name())?
                    }
                }
            }
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "per layer (weight matrices; max/mean = largest absmax/absmean of the layer's matrices)"
    )?;
    write!(
        out,
        "{:<6} {:>7} {:>10} {:>10} {:>10} {:>8} {:>9}",
        "layer", "tensors", "params", "absmean", "absmax", "max/mean", "outliers"
    )?;
    for ty in types {
        write!(
            out,
            " {:>12} {:>8}",
            format!("{} rel.err", ty.name()),
            "SNR dB"
        )?;
    }
    writeln!(out)?;
    for l in layers {
        let name = l.layer.map_or("other".to_string(), |n| n.to_string());
        write!(
            out,
            "{:<6} {:>7} {:>10} {:>10} {:>10} {:>8.2} {:>9}",
            name,
            l.tensors,
            l.params,
            number(l.absmean()),
            number(l.absmax),
            l.peak_ratio,
            l.outliers
        )?;
        for &ty in types {
            match l.error(ty) {
                Some(e) => {
                    let m = e.metrics();
                    write!(out, " {:>12.5} {:>8}", m.rel_frobenius, decibels(m.snr_db))?
                }
                None => write!(out, " {:>12} {:>8}", "-", "-")?,
            }
        }
        writeln!(out)?;
    }
    let bad: Vec<&TensorReport> = reports
        .iter()
        .filter(|r| r.stats.nan + r.stats.inf > 0)
        .collect();
    if !bad.is_empty() {
        writeln!(out)?;
        writeln!(
            out,
            "non-finite weights (NaN/Inf poison block scales; `gpuq quantize` refuses them):"
        )?;
        for r in bad {
            let s = &r.stats;
            writeln!(
                out,
                "  {}: {} NaN, {} Inf in {} rows",
                r.name, s.nan, s.inf, s.nonfinite_row_count
            )?;
            for nf in s.nonfinite_rows.iter().take(20) {
                writeln!(out, "    row {}: {} NaN, {} Inf", nf.row, nf.nan, nf.inf)?;
            }
            if s.nonfinite_row_count > 20 {
                writeln!(
                    out,
                    "    … and {} more rows (all in --json, up to {})",
                    s.nonfinite_row_count - 20,
                    stats::MAX_NONFINITE_ROWS
                )?;
            }
        }
    }
    Ok(())
}
