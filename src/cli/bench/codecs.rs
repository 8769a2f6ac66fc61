//! `gpuq bench codecs`: encode and decode throughput per type, CPU vs GPU, in one run.
//!
//! Throughput is input bytes per second: f32 bytes for an encoder, packed bytes for a
//! decoder. Each cell is the median of `--reps` timed calls after one untimed warm-up call
//! (which also compiles the GPU pipeline and fills the staging pool). The GPU's output is
//! compared with the CPU's; a cell whose bytes differ is marked `!`. I2_S (one scale per
//! tensor) is timed as BitNet's whole ternarize + pack: the absmean block sums, the tensor
//! scale, the codes and the trailer; its decode takes the scale.

use crate::cli::args::parse_size;
use crate::codec;
use crate::engine::{Backend, Engine};
use crate::error::{Error, Result};
use crate::ggml_type::GgmlType;
use std::time::Instant;

use super::synth;

/// The types benchmarked by default: every type with a CPU encoder, except F32.
pub const DEFAULT_TYPES: &[GgmlType] = &[
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::TQ1_0,
    GgmlType::TQ2_0,
    GgmlType::I2_S,
    GgmlType::IQ4_NL,
    GgmlType::IQ4_XS,
    GgmlType::MXFP4,
    GgmlType::NVFP4,
    GgmlType::Q1_0,
    GgmlType::Q2_0,
    GgmlType::IQ2_XXS,
    GgmlType::IQ2_XS,
    GgmlType::IQ2_S,
    GgmlType::IQ3_XXS,
    GgmlType::IQ3_S,
    GgmlType::IQ1_S,
    GgmlType::IQ1_M,
];

/// Types whose encoder takes importance weights (benchmarked with and without).
pub fn takes_weights(ty: GgmlType) -> bool {
    matches!(
        ty,
        GgmlType::Q2_K
            | GgmlType::Q3_K
            | GgmlType::Q4_K
            | GgmlType::Q5_K
            | GgmlType::Q6_K
            | GgmlType::IQ4_NL
            | GgmlType::IQ4_XS
            | GgmlType::IQ2_XXS
            | GgmlType::IQ2_XS
            | GgmlType::IQ2_S
            | GgmlType::IQ3_XXS
            | GgmlType::IQ3_S
            | GgmlType::IQ1_S
            | GgmlType::IQ1_M
    )
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Which backends: auto = the CPU and, when an adapter exists, the GPU (even a software
    /// one); cpu or gpu = that one alone.
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    pub backend: Backend,
    /// Comma-separated types (default: F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K..Q6_K TQ1_0 TQ2_0
    /// I2_S IQ4_NL IQ4_XS MXFP4 NVFP4 Q1_0 Q2_0 IQ2_XXS IQ2_XS IQ2_S IQ3_XXS IQ3_S IQ1_S IQ1_M;
    /// the grid i-quants encode on the CPU, so their GPU cells are decode only).
    #[arg(long, value_delimiter = ',')]
    pub types: Vec<GgmlType>,
    /// Tile size: f32 input bytes per call, e.g. 1M, 64M.
    #[arg(long, default_value = "64M", value_parser = parse_size)]
    pub size: u64,
    /// Row length in elements (a multiple of 256).
    #[arg(long, default_value_t = 4096)]
    pub row_len: usize,
    /// Timed calls per cell (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// CPU worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Skip the weighted (imatrix) runs of the k-quants and i-quants.
    #[arg(long)]
    pub no_weights: bool,
}

/// One measured cell: GB/s of input, and whether the GPU's output matched the CPU's.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cell {
    pub gbps: Option<f64>,
    pub mismatch: bool,
}

/// One row of the table.
#[derive(Clone, Debug)]
pub struct Row {
    pub ty: GgmlType,
    pub weighted: bool,
    pub enc_cpu: Cell,
    pub enc_gpu: Cell,
    pub dec_cpu: Cell,
    pub dec_gpu: Cell,
}

fn median(mut t: Vec<f64>) -> f64 {
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// Median seconds of `reps` calls after one warm-up call.
pub(super) fn time(reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut t = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let s = Instant::now();
        f()?;
        t.push(s.elapsed().as_secs_f64());
    }
    Ok(median(t))
}

/// The engines a benchmark compares: the CPU unless `--backend gpu`, the GPU unless `--backend
/// cpu` (with `auto`, none when there is no adapter, said on stderr).
pub(super) fn engines(backend: Backend) -> Result<(Option<Engine>, Option<Engine>)> {
    let cpu = match backend {
        Backend::Gpu => None,
        _ => Some(Engine::new(Backend::Cpu)?),
    };
    let gpu = match backend {
        Backend::Cpu => None,
        Backend::Gpu => Some(Engine::new(Backend::Gpu)?),
        Backend::Auto => match Engine::new(Backend::Gpu) {
            Ok(e) => Some(e),
            Err(e) => {
                eprintln!("gpuq bench: no GPU measurements: {e}");
                None
            }
        },
    };
    if let Some(g) = &gpu {
        eprintln!("gpuq bench: {}", g.describe());
    }
    Ok((cpu, gpu))
}

/// Measures one type on the given engines.
pub fn measure(
    ty: GgmlType,
    weighted: bool,
    cpu: Option<&Engine>,
    gpu: Option<&Engine>,
    n: usize,
    row_len: usize,
    reps: usize,
) -> Result<Row> {
    if ty == GgmlType::I2_S {
        return measure_i2s(cpu, gpu, n, row_len, reps);
    }
    let src = synth::weights_f32(n, row_len, 1 + ty.id() as u64);
    let w = weighted.then(|| synth::importance(row_len, 2));
    let w = w.as_deref();
    let in_enc = (n * 4) as f64;
    let mut row = Row {
        ty,
        weighted,
        enc_cpu: Cell::default(),
        enc_gpu: Cell::default(),
        dec_cpu: Cell::default(),
        dec_gpu: Cell::default(),
    };
    // the reference bytes (also the decoders' input)
    let reference = {
        let mut dst = vec![0u8; out_len(ty, n, row_len)?];
        codec::encode_rows(ty, &src, row_len, w, &mut dst)?;
        dst
    };
    let in_dec = reference.len() as f64;
    let mut dst = vec![0u8; reference.len()];
    let mut f = vec![0f32; n];
    let mut f_ref = None;
    if let Some(e) = cpu {
        let s = time(reps, || e.encode_into(ty, &src, row_len, w, &mut dst))?;
        row.enc_cpu.gbps = Some(in_enc / s / 1e9);
        let s = time(reps, || e.decode_into(ty, &reference, row_len, &mut f))?;
        row.dec_cpu.gbps = Some(in_dec / s / 1e9);
        f_ref = Some(f.clone());
    }
    if let Some(e) = gpu {
        // a weighted call whose type has no weighted kernel would time the CPU codec
        if e.encodes_on_gpu_with(ty, weighted) {
            dst.fill(0xa5);
            let s = time(reps, || e.encode_into(ty, &src, row_len, w, &mut dst))?;
            row.enc_gpu = Cell {
                gbps: Some(in_enc / s / 1e9),
                mismatch: dst != reference,
            };
        }
        if e.decodes_on_gpu(ty) {
            let s = time(reps, || e.decode_into(ty, &reference, row_len, &mut f))?;
            let want = match &f_ref {
                Some(v) => v.clone(),
                None => {
                    let mut v = vec![0f32; n];
                    codec::decode_rows(ty, &reference, row_len, &mut v)?;
                    v
                }
            };
            let same = want.iter().zip(&f).all(|(a, b)| a.to_bits() == b.to_bits());
            row.dec_gpu = Cell {
                gbps: Some(in_dec / s / 1e9),
                mismatch: !same,
            };
        }
    }
    Ok(row)
}

/// I2_S: BitNet ternarize + pack of a whole tensor (absmean block sums on the engine, the
/// tensor scale, the codes of `x / s`, the trailer) and the decode of its codes.
fn measure_i2s(
    cpu: Option<&Engine>,
    gpu: Option<&Engine>,
    n: usize,
    row_len: usize,
    reps: usize,
) -> Result<Row> {
    use crate::codec::{absmean, i2s};
    let src = synth::weights_f32(n, row_len, 1 + GgmlType::I2_S.id() as u64);
    let encode = |e: &Engine, dst: &mut [u8]| -> Result<()> {
        let mut m = absmean::TensorMean::default();
        m.add(&e.absmean_block_sums(&src, row_len)?);
        let s = m.finish();
        let (codes, tail) = dst.split_at_mut(n / 4);
        e.encode_i2s(&src, row_len, 1.0 / s, codes)?;
        tail.copy_from_slice(&i2s::trailer(s));
        Ok(())
    };
    let mut reference = vec![0u8; i2s::tensor_bytes(n)];
    i2s::encode_tensor_absmean(&src, absmean::tensor_scale(&src), &mut reference)?;
    let scale = i2s::trailer_scale(&reference[n / 4..]).unwrap_or(0.0);
    let (in_enc, in_dec) = ((n * 4) as f64, reference.len() as f64);
    let mut row = Row {
        ty: GgmlType::I2_S,
        weighted: false,
        enc_cpu: Cell::default(),
        enc_gpu: Cell::default(),
        dec_cpu: Cell::default(),
        dec_gpu: Cell::default(),
    };
    let mut want = vec![0f32; n];
    i2s::decode_codes(&reference[..n / 4], scale, &mut want)?;
    let mut dst = vec![0u8; reference.len()];
    let mut f = vec![0f32; n];
    for (e, enc, dec) in [
        (cpu, &mut row.enc_cpu, &mut row.dec_cpu),
        (gpu, &mut row.enc_gpu, &mut row.dec_gpu),
    ] {
        let Some(e) = e else { continue };
        dst.fill(0xa5);
        let t = time(reps, || encode(e, &mut dst))?;
        *enc = Cell {
            gbps: Some(in_enc / t / 1e9),
            mismatch: dst != reference,
        };
        let t = time(reps, || {
            e.decode_i2s(&reference[..n / 4], row_len, scale, &mut f)
        })?;
        *dec = Cell {
            gbps: Some(in_dec / t / 1e9),
            mismatch: want.iter().zip(&f).any(|(a, b)| a.to_bits() != b.to_bits()),
        };
    }
    Ok(row)
}

fn out_len(ty: GgmlType, n: usize, row_len: usize) -> Result<usize> {
    let rb = ty
        .row_bytes(row_len as u64)
        .ok_or_else(|| Error::Invalid(format!("{ty}: rows of {row_len} are not whole blocks")))?;
    Ok(n / row_len * rb as usize)
}

fn fmt_cell(c: Cell) -> String {
    match c.gbps {
        None => "-".into(),
        Some(g) => format!("{g:.3}{}", if c.mismatch { "!" } else { "" }),
    }
}

fn fmt_ratio(a: Cell, b: Cell) -> String {
    match (a.gbps, b.gbps) {
        (Some(cpu), Some(gpu)) if cpu > 0.0 => format!("{:.2}", gpu / cpu),
        _ => "-".into(),
    }
}

/// The table as text (Markdown-compatible).
pub fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| type | imatrix | enc CPU GB/s | enc GPU GB/s | enc GPU/CPU | dec CPU GB/s | dec GPU GB/s | dec GPU/CPU |\n\
         |---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.ty,
            if r.weighted { "yes" } else { "no" },
            fmt_cell(r.enc_cpu),
            fmt_cell(r.enc_gpu),
            fmt_ratio(r.enc_cpu, r.enc_gpu),
            fmt_cell(r.dec_cpu),
            fmt_cell(r.dec_gpu),
            fmt_ratio(r.dec_cpu, r.dec_gpu),
        );
    }
    s
}

pub fn run(a: Args) -> Result<()> {
    crate::cli::run_args::set_threads(a.threads);
    if a.row_len == 0 || a.row_len % 256 != 0 {
        return Err(Error::Invalid(format!(
            "--row-len {}: use a multiple of 256",
            a.row_len
        )));
    }
    let types = if a.types.is_empty() {
        DEFAULT_TYPES.to_vec()
    } else {
        a.types.clone()
    };
    for &ty in &types {
        if !codec::can_encode_tensor(ty) || !codec::can_decode_tensor(ty) {
            return Err(Error::Invalid(format!(
                "{ty}: gpuq has no CPU encoder and decoder for it"
            )));
        }
    }
    let rows_n = ((a.size / 4) as usize / a.row_len).max(1);
    let n = rows_n * a.row_len;
    let (cpu, gpu) = engines(a.backend)?;
    eprintln!(
        "gpuq bench: {} elements per call ({:.1} MiB of f32) in rows of {}, {} threads, median of {} calls",
        n,
        (n * 4) as f64 / (1 << 20) as f64,
        a.row_len,
        rayon::current_num_threads(),
        a.reps
    );
    let mut rows = Vec::new();
    for &ty in &types {
        let variants: &[bool] = if takes_weights(ty) && !a.no_weights {
            &[false, true]
        } else {
            &[false]
        };
        for &weighted in variants {
            let r = measure(
                ty,
                weighted,
                cpu.as_ref(),
                gpu.as_ref(),
                n,
                a.row_len,
                a.reps,
            )?;
            eprintln!(
                "  {ty}{}: enc {} / {}  dec {} / {}",
                if weighted { " (imatrix)" } else { "" },
                fmt_cell(r.enc_cpu),
                fmt_cell(r.enc_gpu),
                fmt_cell(r.dec_cpu),
                fmt_cell(r.dec_gpu)
            );
            rows.push(r);
        }
    }
    print!("{}", table(&rows));
    println!(
        "GB/s of input: f32 bytes for encode, packed bytes for decode; '-': not measured (no GPU \
         kernel for the type, or no such backend); '!': GPU bytes differ from the CPU's."
    );
    if rows
        .iter()
        .any(|r| r.enc_gpu.mismatch || r.dec_gpu.mismatch)
    {
        return Err(Error::Invalid(
            "the GPU's output differs from the CPU reference (cells marked '!')".into(),
        ));
    }
    Ok(())
}
