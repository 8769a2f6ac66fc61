//! The orchestrator: tensors in input order, cut into tiles of whole rows, each tile decoded to
//! f32 and encoded to its target type by the [`Engine`], then written at its planned offset.
//!
//! Memory is bounded by a fixed pool of tile buffers sized from `max_memory` (nothing is
//! allocated per tile); a writer thread drains finished tiles while the next one is computed,
//! and the input pages of a tile are prefetched before and released after it is used, so
//! resident memory does not grow with the model.

use crate::codec::absmean::{self, RowScale, TensorMean, TernaryScale};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::formats::gguf::{GgufWriter, TensorSpec, Value};
use crate::ggml_type::GgmlType;
use crate::policy::TensorPlan;
use crate::policy::loader_order_key;
use crate::stats::error::ErrorAcc;
use crate::stats::report::StatsEngine;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Instant;

/// The token embedding's name: llama-quantize ignores an imatrix entry of the wrong size here.
pub const TOKEN_EMBD: &str = "token_embd.weight";

/// Set by the Ctrl-C handler; the pipeline stops between tiles and leaves no output behind.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// One tensor of a source model.
#[derive(Clone, Debug)]
pub struct InputTensor {
    pub name: String,
    /// ne0 first.
    pub dims: Vec<u64>,
    pub ty: GgmlType,
}

impl InputTensor {
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }
    pub fn row_len(&self) -> u64 {
        self.dims.first().copied().unwrap_or(1)
    }
    pub fn n_rows(&self) -> u64 {
        self.dims.iter().skip(1).product()
    }
}

/// How a tensor of a BitNet checkpoint is ternarized (its BitLinear weights).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TernarySource {
    /// Float master weights stored as `dtype` (F32, F16 or BF16): BitNet's `weight_quant` with
    /// the tensor's absmean scale, as llama.cpp's converter (`BitnetModel`) applies it.
    Absmean { dtype: GgmlType },
    /// Already ternary (unpacked from a packed checkpoint): every value read is one of
    /// `{-scale, 0, +scale}`.
    Known { scale: f32 },
}

/// A model the pipeline reads: metadata, tensors and their bytes (usually a memory map).
pub trait ModelSource: Sync {
    /// What to name in messages (a path).
    fn describe(&self) -> String;
    fn metadata(&self) -> &[(String, Value)];
    fn tensors(&self) -> &[InputTensor];
    /// Bytes tensor `index` occupies in the source (for sizes and progress).
    fn tensor_len(&self, index: usize) -> u64;
    /// The bytes of rows `r0..r0 + n` of tensor `index` (rows of `dims[0]` elements in the
    /// tensor's type). A source that stores the rows contiguously returns a slice of its map;
    /// one that must transform them (a row permutation) fills `scratch` and returns it.
    fn read_rows<'a>(
        &'a self,
        index: usize,
        r0: u64,
        n: u64,
        scratch: &'a mut Vec<u8>,
    ) -> Result<&'a [u8]>;
    /// The type tensor `index` takes when a plan leaves it unquantized, where the source fixes
    /// one (a Hugging Face folder: F32 for norms and biases, as the converter writes them);
    /// `None` copies the source type.
    fn unquantized_type(&self, _index: usize) -> Option<GgmlType> {
        None
    }
    /// BitNet checkpoints: how tensor `index` is ternarized (`None`: it is not a BitLinear
    /// weight). Such a tensor is always converted: into TQ1_0 / TQ2_0 / I2_S with its
    /// per-tensor scale, into any other type after `weight_quant` (float master weights).
    fn ternary(&self, _index: usize) -> Option<TernarySource> {
        None
    }
    /// The scale of an I2_S tensor (the f32 after its codes), for decoding it.
    fn i2s_scale(&self, index: usize) -> Result<f32> {
        Err(Error::Invalid(format!(
            "{}: tensor {}: this source cannot give the I2_S scale",
            self.describe(),
            self.tensors()
                .get(index)
                .map(|t| t.name.as_str())
                .unwrap_or("?")
        )))
    }
    /// Errs when an input file changed since it was opened (size or modification time), or a
    /// read of its mapping faulted (the file shrank). Sources call it at each tensor's start.
    fn check_unchanged(&self) -> Result<()> {
        Ok(())
    }
    /// A hint that `data[range]` of tensor `index` is needed soon.
    fn prefetch(&self, _index: usize, _offset: usize, _len: usize) {}
    /// A hint that `data[range]` of tensor `index` will not be read again.
    fn release(&self, _index: usize, _offset: usize, _len: usize) {}
}

/// How the output is produced.
#[derive(Clone, Debug)]
pub struct PipelineOptions {
    /// Upper bound on the bytes of tile buffers held at once.
    pub max_memory: u64,
    /// Per-column importance weights by tensor name (`ne0 * ne2` values, one row per slice).
    pub imatrix: Option<std::collections::HashMap<String, Vec<f32>>>,
    /// Accept NaN/Inf weights instead of stopping.
    pub allow_nonfinite: bool,
    /// `general.file_type` to write, and whether to write `general.quantization_version`.
    pub file_type: Option<u32>,
    /// Write the tensors in llama.cpp's loader order (layer number, then name), as
    /// llama-quantize does; otherwise in input order (the converter's).
    pub loader_order: bool,
    /// Keys set after the input's metadata (llama-quantize's KV overrides, e.g. the
    /// `quantize.imatrix.*` keys).
    pub metadata: Vec<(String, Value)>,
    /// TQ1_0 / TQ2_0 targets: BitNet absmean scaling instead of llama.cpp's block absmax (for
    /// BitNet checkpoints per-tensor is the default; I2_S is always per-tensor).
    pub ternary_scale: Option<crate::codec::absmean::TernaryScale>,
    /// TQ1_0 / TQ2_0 targets: measure per-channel vs per-tensor absmean error (Summary).
    pub ternary_report: bool,
    /// Every converted tensor: decode the bytes written and measure their error against the
    /// source ([`Summary::errors`]); one more f32 tile buffer.
    pub error_report: bool,
    /// The writer's checks: free space before, verification of the written bytes after.
    pub write: crate::formats::gguf::WriteOptions,
}

/// The quantization error of one converted tensor: its written bytes decoded, against the
/// source values.
#[derive(Clone, Debug)]
pub struct TensorError {
    pub name: String,
    /// ne0 first.
    pub dims: Vec<u64>,
    pub from: GgmlType,
    pub to: GgmlType,
    pub acc: ErrorAcc,
}

/// Relative (Frobenius) error of absmean ternarization of one tensor, both scalings.
#[derive(Clone, Debug, PartialEq)]
pub struct TernaryReport {
    pub name: String,
    pub per_channel: f64,
    pub per_tensor: f64,
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub tensors: usize,
    pub converted: usize,
    pub input_bytes: u64,
    pub output_bytes: u64,
    pub parameters: u64,
    pub seconds: f64,
    /// One entry per TQ1_0 / TQ2_0 tensor when `ternary_report` was asked.
    pub ternary_report: Vec<TernaryReport>,
    /// One entry per converted tensor when `error_report` was asked (input order).
    pub errors: Vec<TensorError>,
}

impl Summary {
    pub fn bits_per_weight(&self) -> f64 {
        if self.parameters == 0 {
            0.0
        } else {
            self.output_bytes as f64 * 8.0 / self.parameters as f64
        }
    }
    pub fn input_gbps(&self) -> f64 {
        if self.seconds > 0.0 {
            self.input_bytes as f64 / self.seconds / 1e9
        } else {
            0.0
        }
    }
}

/// Progress events, for a bar or plain lines.
pub trait Progress: Sync {
    fn start(&self, _total_bytes: u64, _n_tensors: usize) {}
    fn tensor(&self, _index: usize, _name: &str, _from: GgmlType, _to: GgmlType) {}
    fn advance(&self, _input_bytes: u64) {}
    fn finish(&self) {}
}

/// No progress output.
pub struct Quiet;
impl Progress for Quiet {}

/// The output metadata: the input's, with llama-quantize's changes (file type and
/// quantization version set; split keys removed).
pub fn output_metadata(
    input: &[(String, Value)],
    file_type: Option<u32>,
    extra: &[(String, Value)],
) -> Vec<(String, Value)> {
    const SPLIT_KEYS: &[&str] = &["split.no", "split.count", "split.tensors.count"];
    let mut md: Vec<(String, Value)> = input
        .iter()
        .filter(|(k, _)| !SPLIT_KEYS.contains(&k.as_str()))
        .cloned()
        .collect();
    // as ggml's gguf_set_val_*: a key set again moves to the end
    let mut set = |key: &str, v: Value| {
        md.retain(|(k, _)| k != key);
        md.push((key.to_string(), v));
    };
    if let Some(ft) = file_type {
        set("general.quantization_version", Value::U32(2));
        set("general.file_type", Value::U32(ft));
    }
    for (k, v) in extra {
        set(k, v.clone());
    }
    md
}

struct Tile {
    tensor: usize,
    out_offset: u64,
    len: usize,
    buf: Vec<u8>,
}

/// Number of output tile buffers in flight (one being filled, one being written, one spare).
const N_TILE_BUFFERS: usize = 3;

/// Rows per tile: as many as fit the budget, where a row costs `work_row_bytes` once (the f32
/// work areas and the mapped input pages of the tile in use) and `out_row_bytes` in each of the
/// output buffers.
fn tile_rows(max_memory: u64, work_row_bytes: u64, out_row_bytes: u64, n_rows: u64) -> u64 {
    let per_row = work_row_bytes + out_row_bytes * N_TILE_BUFFERS as u64;
    (max_memory / per_row.max(1)).clamp(1, n_rows.max(1))
}

/// Rows per tile when tensor `t` becomes `target` under `opts`.
fn tensor_tile_rows(opts: &PipelineOptions, t: &InputTensor, target: GgmlType) -> u64 {
    let row_len = t.row_len();
    // one f32 work area, two with the error report's round trip
    let f32_areas = if opts.error_report { 2 } else { 1 };
    let in_row = t.ty.row_bytes(row_len).unwrap_or(0);
    let out_row = target.row_bytes(row_len).unwrap_or(0);
    tile_rows(
        opts.max_memory,
        row_len * 4 * f32_areas + in_row,
        out_row,
        t.n_rows(),
    )
}

/// Writes `out` from `src` following `plans` (one per input tensor, same order).
pub fn run(
    src: &dyn ModelSource,
    plans: &[TensorPlan],
    out: &Path,
    engine: &Engine,
    opts: &PipelineOptions,
    progress: &dyn Progress,
) -> Result<Summary> {
    let start = Instant::now();
    let tensors = src.tensors();
    // output position -> input index
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    if opts.loader_order {
        order.sort_by(|&a, &b| {
            loader_order_key(&tensors[a].name).cmp(&loader_order_key(&tensors[b].name))
        });
    }
    let specs: Vec<TensorSpec> = order
        .iter()
        .map(|&i| TensorSpec {
            name: tensors[i].name.clone(),
            ty: plans[i].target,
            dims: tensors[i].dims.clone(),
        })
        .collect();
    let metadata = output_metadata(src.metadata(), opts.file_type, &opts.metadata);
    let writer = GgufWriter::create_with(out, &metadata, &specs, &opts.write)?;

    // BitNet float master weights are converted even into their own type (weight_quant)
    let convert: Vec<bool> = plans
        .iter()
        .enumerate()
        .map(|(i, p)| p.convert || matches!(src.ternary(i), Some(TernarySource::Absmean { .. })))
        .collect();
    // Size the buffers once for the largest tile of any converted tensor.
    let mut max_tile_elems = 0u64;
    let mut max_tile_out = 0u64;
    for ((t, p), _) in tensors.iter().zip(plans).zip(&convert).filter(|(_, c)| **c) {
        let out_row = p.target.row_bytes(t.row_len()).unwrap_or(0);
        let rows = tensor_tile_rows(opts, t, p.target);
        max_tile_elems = max_tile_elems.max(rows * t.row_len());
        max_tile_out = max_tile_out.max(rows * out_row);
    }
    let total: u64 = (0..tensors.len()).map(|i| src.tensor_len(i)).sum();
    progress.start(total, tensors.len());

    let mut f32_buf = vec![0f32; max_tile_elems as usize];
    let mut round_trip = vec![
        0f32;
        if opts.error_report {
            max_tile_elems as usize
        } else {
            0
        }
    ];
    let mut scratch = Vec::new();
    let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
    for _ in 0..N_TILE_BUFFERS {
        free_tx
            .send(vec![0u8; max_tile_out as usize])
            .map_err(|_| Error::Invalid("buffer pool closed".into()))?;
    }
    let (full_tx, full_rx) = mpsc::sync_channel::<Tile>(N_TILE_BUFFERS);

    let mut summary = Summary {
        tensors: tensors.len(),
        ..Default::default()
    };
    let result: Result<()> = std::thread::scope(|s| {
        let writer_ref = &writer;
        let free_back = free_tx.clone();
        let write_thread = s.spawn(move || -> Result<()> {
            for tile in full_rx {
                writer_ref.write_at(tile.tensor, tile.out_offset, &tile.buf[..tile.len])?;
                // the receiver may be gone when the producer stopped early; nothing to do then
                let _ = free_back.send(tile.buf);
            }
            Ok(())
        });

        let mut produce = || -> Result<()> {
            for (out_index, &i) in order.iter().enumerate() {
                let (t, p) = (&tensors[i], &plans[i]);
                progress.tensor(out_index, &t.name, t.ty, p.target);
                summary.parameters += t.n_elements();
                let mut io = TileIo {
                    src,
                    index: i,
                    out_index,
                    full_tx: &full_tx,
                    free_rx: &free_rx,
                    scratch: &mut scratch,
                    progress,
                };
                if !convert[i] {
                    copy_tensor(&mut io, t, max_tile_out.max(1 << 20))?;
                    continue;
                }
                summary.converted += 1;
                let (ternary, error) =
                    convert_tensor(&mut io, t, p, engine, opts, &mut f32_buf, &mut round_trip)?;
                summary.ternary_report.extend(ternary);
                summary.errors.extend(error);
            }
            Ok(())
        };
        let produced = produce();
        drop(full_tx);
        let written = write_thread
            .join()
            .map_err(|_| Error::Invalid("the writer thread panicked".into()))?;
        written.and(produced) // a write error (ENOSPC, EIO) is the cause when both failed
    });
    result?;
    src.check_unchanged()?; // a fault in the last tile's mapped reads
    summary.input_bytes = total;
    summary.output_bytes = writer.tensors().iter().map(|t| t.size).sum();
    writer.finish()?;
    progress.finish();
    summary.seconds = start.elapsed().as_secs_f64();
    Ok(summary)
}

fn check_interrupt() -> Result<()> {
    if INTERRUPTED.load(Ordering::Relaxed) {
        return Err(Error::Invalid("interrupted; no output written".into()));
    }
    Ok(())
}

fn take_buffer(free_rx: &mpsc::Receiver<Vec<u8>>) -> Result<Vec<u8>> {
    free_rx
        .recv()
        .map_err(|_| Error::Invalid("the writer stopped early".into()))
}

/// What moving one tensor's tiles needs: the source, the buffer pool and the writer queue.
struct TileIo<'a, 's> {
    src: &'a dyn ModelSource,
    /// The tensor's index in the source.
    index: usize,
    /// Its index in the output.
    out_index: usize,
    full_tx: &'a mpsc::SyncSender<Tile>,
    free_rx: &'a mpsc::Receiver<Vec<u8>>,
    scratch: &'s mut Vec<u8>,
    progress: &'a dyn Progress,
}

impl TileIo<'_, '_> {
    fn send(&self, out_offset: u64, len: usize, buf: Vec<u8>) -> Result<()> {
        self.full_tx
            .send(Tile {
                tensor: self.out_index,
                out_offset,
                len,
                buf,
            })
            .map_err(|_| Error::Invalid("the writer stopped early".into()))
    }
}

/// Copies a tensor whose type does not change, whole rows at a time (at least `chunk` bytes).
fn copy_tensor(io: &mut TileIo, t: &InputTensor, chunk: u64) -> Result<()> {
    let row_bytes = t.ty.row_bytes(t.row_len()).unwrap_or(0).max(1);
    let n_rows = t.n_rows();
    let tile = (chunk / row_bytes).max(1);
    let mut r0 = 0u64;
    while r0 < n_rows {
        check_interrupt()?;
        let rows = tile.min(n_rows - r0);
        let mut buf = take_buffer(io.free_rx)?;
        let data = io.src.read_rows(io.index, r0, rows, io.scratch)?;
        let len = data.len();
        if buf.len() < len {
            buf.resize(len, 0);
        }
        buf[..len].copy_from_slice(data);
        io.src.release(io.index, (r0 * row_bytes) as usize, len);
        io.send(r0 * row_bytes, len, buf)?;
        io.progress.advance(len as u64);
        r0 += rows;
    }
    Ok(())
}

fn convert_tensor(
    io: &mut TileIo,
    t: &InputTensor,
    p: &TensorPlan,
    engine: &Engine,
    opts: &PipelineOptions,
    f32_buf: &mut [f32],
    round_trip: &mut [f32],
) -> Result<(Option<TernaryReport>, Option<TensorError>)> {
    let src = io.src;
    let row_len = t.row_len();
    let n_rows = t.n_rows();
    let in_row = t.ty.row_bytes(row_len).unwrap_or(0) as usize;
    let out_row = p.target.row_bytes(row_len).ok_or_else(|| {
        Error::Invalid(format!(
            "{}: tensor {}: row of {row_len} does not fit {}",
            src.describe(),
            t.name,
            p.target
        ))
    })? as usize;
    let rows_per_slice = t.dims.get(1).copied().unwrap_or(1).max(1);
    let slices = t.dims.get(2).copied().unwrap_or(1);
    let weights = opts
        .imatrix
        .as_ref()
        .and_then(|m| m.get(&t.name))
        .filter(|w| t.name != TOKEN_EMBD || w.len() as u64 == row_len * slices);
    if let Some(w) = weights {
        if w.len() as u64 != row_len * slices {
            return Err(Error::Invalid(format!(
                "{}: tensor {}: imatrix has {} values, expected {} (ne0 {} x ne2 {})",
                src.describe(),
                t.name,
                w.len(),
                row_len * slices,
                row_len,
                slices
            )));
        }
    }
    let mut tile = tensor_tile_rows(opts, t, p.target);
    if weights.is_some() {
        // tiles stay inside one expert slice, which has its own weights
        tile = tile.min(rows_per_slice);
    }
    let mode = ternary_mode(io.src, io.index, t, p.target, opts)?;
    let in_scale = if t.ty == GgmlType::I2_S {
        Some(src.i2s_scale(io.index)?)
    } else {
        None
    };
    let decode = |data: &[u8], f: &mut [f32]| -> Result<()> {
        match in_scale {
            Some(s) => engine.decode_i2s(data, row_len as usize, s, f),
            None => engine.decode_into(t.ty, data, row_len as usize, f),
        }
    };
    let report = opts.ternary_report && absmean::supports(p.target);
    // A first pass over the tiles for the tensor's absmean where a per-tensor scale is needed
    let mut tensor_s = None;
    if mode.needs_tensor_mean() || report {
        let mut mean = TensorMean::default();
        let mut r0 = 0u64;
        while r0 < n_rows {
            check_interrupt()?;
            let rows = tile.min(n_rows - r0);
            let n = (rows * row_len) as usize;
            let f = &mut f32_buf[..n];
            let data = src.read_rows(io.index, r0, rows, io.scratch)?;
            decode(data, f)?;
            if row_len % crate::codec::ternary::QK_K as u64 == 0 {
                mean.add(&engine.absmean_block_sums(f, row_len as usize)?);
            } else {
                mean.add_rows(f, row_len as usize);
            }
            r0 += rows;
        }
        tensor_s = Some(mean.finish());
    }
    let encoding = mode.resolve(tensor_s);
    let (mut err_pc, mut err_pt, mut norm) = (0f64, 0f64, 0f64);
    let mut error = (opts.error_report
        && (crate::codec::can_decode(p.target) || p.target == GgmlType::I2_S))
        .then(|| TensorError {
            name: t.name.clone(),
            dims: t.dims.clone(),
            from: t.ty,
            to: p.target,
            acc: ErrorAcc::default(),
        });
    let mut r0 = 0u64;
    while r0 < n_rows {
        check_interrupt()?;
        let mut rows = tile.min(n_rows - r0);
        if weights.is_some() {
            rows = rows.min(rows_per_slice - r0 % rows_per_slice);
        }
        let next = (r0 + rows) as usize * in_row;
        src.prefetch(io.index, next, rows as usize * in_row);
        let n = (rows * row_len) as usize;
        let f = &mut f32_buf[..n];
        let data = src.read_rows(io.index, r0, rows, io.scratch)?;
        let in_len = data.len();
        decode(data, f)?;
        src.release(io.index, r0 as usize * in_row, in_len);
        if !opts.allow_nonfinite {
            if let Some(k) = f.iter().position(|x| !x.is_finite()) {
                let row = r0 + k as u64 / row_len;
                return Err(Error::Invalid(format!(
                    "{}: tensor {}: row {row} holds a non-finite value ({}) at column {}; \
                     such weights poison block scales (pass --allow-nonfinite to quantize anyway)",
                    src.describe(),
                    t.name,
                    f[k],
                    k as u64 % row_len
                )));
            }
        }
        let w = weights.map(|w| {
            let slice = (r0 / rows_per_slice) as usize;
            &w[slice * row_len as usize..(slice + 1) * row_len as usize]
        });
        let mut buf = take_buffer(io.free_rx)?;
        let len = rows as usize * out_row;
        if buf.len() < len {
            buf.resize(len, 0);
        }
        let row_scales = if report || encoding == Encoding::TqPerChannel {
            let sums = engine.absmean_block_sums(f, row_len as usize)?;
            Some(absmean::row_scales(&sums, row_len as usize))
        } else {
            None
        };
        let rl = row_len as usize;
        let out = &mut buf[..len];
        match encoding {
            Encoding::Plain => engine.encode_into(p.target, f, rl, w, out)?,
            Encoding::WeightQuant { id, dtype } => {
                absmean::weight_quant(f, id, dtype);
                engine.encode_into(p.target, f, rl, w, out)?
            }
            Encoding::TqPerChannel => {
                let s = row_scales.as_deref().unwrap_or(&[]);
                engine.encode_absmean(p.target, f, rl, s, out)?
            }
            Encoding::TqFixed(rs) => {
                engine.encode_row_scales(p.target, f, rl, &vec![rs; rows as usize], out)?
            }
            Encoding::I2s { id, .. } => engine.encode_i2s(f, rl, id, out)?,
        }
        if let (true, Some(rs), Some(ts)) = (report, &row_scales, tensor_s) {
            for (x, &s) in f.chunks_exact(row_len as usize).zip(rs) {
                err_pc += absmean::squared_error(x, s);
                err_pt += absmean::squared_error(x, ts);
                norm += x.iter().map(|&v| v as f64 * v as f64).sum::<f64>();
            }
        }
        if let Some(e) = error.as_mut() {
            let y = &mut round_trip[..n];
            match encoding {
                // I2_S codes carry no scale: the tensor's is written after the last tile
                Encoding::I2s { scale, .. } => {
                    engine.decode_i2s(&buf[..len], row_len as usize, scale, y)?
                }
                _ => engine.decode_into(p.target, &buf[..len], row_len as usize, y)?,
            }
            e.acc
                .add_tile(r0, &engine.tile_error(f, y, row_len as usize)?);
        }
        io.send(r0 * out_row as u64, len, buf)?;
        io.progress.advance(in_len as u64);
        r0 += rows;
    }
    if let Encoding::I2s { scale, .. } = encoding {
        // bitnet.cpp's tensor trailer: the scale after the codes, padded to 32 bytes
        let mut buf = take_buffer(io.free_rx)?;
        let tail = crate::codec::i2s::trailer(scale);
        if buf.len() < tail.len() {
            buf.resize(tail.len(), 0);
        }
        buf[..tail.len()].copy_from_slice(&tail);
        io.send(n_rows * out_row as u64, tail.len(), buf)?;
    }
    let rel = |e: f64| if norm > 0.0 { (e / norm).sqrt() } else { 0.0 };
    let ternary = report.then(|| TernaryReport {
        name: t.name.clone(),
        per_channel: rel(err_pc),
        per_tensor: rel(err_pt),
    });
    Ok((ternary, error))
}

/// How a tensor's tiles are encoded, once any per-tensor scale is known.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Encoding {
    /// The target's own encoder (llama-quantize's bytes).
    Plain,
    /// BitNet float master weights into a non-ternary type: `weight_quant`, then the encoder.
    WeightQuant { id: f32, dtype: GgmlType },
    /// TQ1_0 / TQ2_0 with each row's absmean.
    TqPerChannel,
    /// TQ1_0 / TQ2_0 with one (1/s, d) for every row.
    TqFixed(RowScale),
    /// I2_S codes of `x * id`; `scale` goes into the trailer.
    I2s { id: f32, scale: f32 },
}

/// Where a tensor's ternary scale comes from, before the first pass.
#[derive(Clone, Copy, Debug, PartialEq)]
enum TernaryMode {
    Plain,
    TqPerChannel,
    /// The encoding is fixed already (a known scale).
    Fixed(Encoding),
    /// Needs the tensor's absmean `s`: BitNet's converter value `1/(1/s)` rounded to `dtype`
    /// (`bitnet`), or `s` itself (`--ternary-scale per-tensor` on other models).
    TqTensor {
        dtype: GgmlType,
        bitnet: bool,
    },
    I2sTensor {
        dtype: GgmlType,
    },
    WeightQuant {
        dtype: GgmlType,
    },
}

impl TernaryMode {
    fn needs_tensor_mean(self) -> bool {
        matches!(
            self,
            TernaryMode::TqTensor { .. }
                | TernaryMode::I2sTensor { .. }
                | TernaryMode::WeightQuant { .. }
        )
    }

    fn resolve(self, s: Option<f32>) -> Encoding {
        let s = s.unwrap_or(absmean::MIN_SCALE);
        let id = 1.0 / s;
        match self {
            TernaryMode::Plain => Encoding::Plain,
            TernaryMode::TqPerChannel => Encoding::TqPerChannel,
            TernaryMode::Fixed(e) => e,
            TernaryMode::TqTensor {
                dtype,
                bitnet: true,
            } => Encoding::TqFixed(RowScale::with(id, absmean::quant_value(id, dtype))),
            TernaryMode::TqTensor { bitnet: false, .. } => Encoding::TqFixed(RowScale::new(s)),
            TernaryMode::I2sTensor { dtype } => Encoding::I2s {
                id,
                scale: absmean::quant_value(id, dtype),
            },
            TernaryMode::WeightQuant { dtype } => Encoding::WeightQuant { id, dtype },
        }
    }
}

/// The ternary treatment of tensor `index` for `target`:
/// - TQ1_0 / TQ2_0: llama.cpp's block absmax, or absmean per channel / per tensor as asked;
///   BitNet weights default to their per-tensor scale (absmean of the master weights, or the
///   packed checkpoint's own scale);
/// - I2_S: always one scale per tensor (absmean, or a packed checkpoint's own);
/// - other types: BitNet master weights go through `weight_quant` first.
fn ternary_mode(
    src: &dyn ModelSource,
    index: usize,
    t: &InputTensor,
    target: GgmlType,
    opts: &PipelineOptions,
) -> Result<TernaryMode> {
    let tern = src.ternary(index);
    let per_channel = opts.ternary_scale == Some(TernaryScale::PerChannel);
    let refuse = |why: &str| {
        Err(Error::Invalid(format!(
            "{}: tensor {}: --ternary-scale per-channel: {why}",
            src.describe(),
            t.name
        )))
    };
    let mode = if target == GgmlType::I2_S {
        if per_channel {
            return refuse("I2_S holds one scale per tensor");
        }
        match tern {
            Some(TernarySource::Known { scale }) => TernaryMode::Fixed(Encoding::I2s {
                id: 1.0 / scale,
                scale,
            }),
            Some(TernarySource::Absmean { dtype }) => TernaryMode::I2sTensor { dtype },
            None => TernaryMode::I2sTensor {
                dtype: GgmlType::F32,
            },
        }
    } else if absmean::supports(target) {
        match (tern, opts.ternary_scale) {
            (Some(TernarySource::Known { .. }), Some(TernaryScale::PerChannel)) => {
                return refuse(
                    "the tensor is already ternary with one scale (a packed BitNet checkpoint); \
                     a scale per row would change the model",
                );
            }
            (Some(TernarySource::Known { scale }), _) => {
                TernaryMode::Fixed(Encoding::TqFixed(RowScale::new(scale)))
            }
            (_, Some(TernaryScale::PerChannel)) => TernaryMode::TqPerChannel,
            (Some(TernarySource::Absmean { dtype }), _) => TernaryMode::TqTensor {
                dtype,
                bitnet: true,
            },
            (None, Some(TernaryScale::PerTensor)) => TernaryMode::TqTensor {
                dtype: GgmlType::F32,
                bitnet: false,
            },
            (None, None) => TernaryMode::Plain,
        }
    } else {
        match tern {
            Some(TernarySource::Absmean { dtype }) => TernaryMode::WeightQuant { dtype },
            _ => TernaryMode::Plain,
        }
    };
    Ok(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_fit_the_budget() {
        // 4096-wide rows of Q4_K (2304 B): 16384 + 6912 bytes per row
        let rows = tile_rows(64 << 20, 4096 * 4, 2304, 1 << 20);
        assert!(rows * (4096 * 4 + 2304 * 3) <= 64 << 20);
        assert!(rows > 1000);
        assert_eq!(tile_rows(10, 4096 * 4, 2304, 100), 1);
        assert_eq!(tile_rows(1 << 40, 4096 * 4, 2304, 100), 100);
        // an F16 tensor to Q4_K: the mapped F16 rows count too; the report's round trip too
        let t = InputTensor {
            name: "w".into(),
            dims: vec![4096, 1 << 20],
            ty: GgmlType::F16,
        };
        let mut opts = PipelineOptions {
            max_memory: 64 << 20,
            imatrix: None,
            allow_nonfinite: false,
            file_type: None,
            loader_order: false,
            metadata: Vec::new(),
            ternary_scale: None,
            ternary_report: false,
            error_report: false,
            write: Default::default(),
        };
        let plain = tensor_tile_rows(&opts, &t, GgmlType::Q4_K);
        assert!(plain * (4096 * 4 + 4096 * 2 + 2304 * 3) <= 64 << 20);
        assert!((plain + 1) * (4096 * 4 + 4096 * 2 + 2304 * 3) > 64 << 20);
        opts.error_report = true;
        let with_report = tensor_tile_rows(&opts, &t, GgmlType::Q4_K);
        assert!(with_report * (4096 * 8 + 4096 * 2 + 2304 * 3) <= 64 << 20);
        assert!(with_report < plain);
    }

    #[test]
    fn metadata_gets_file_type_and_loses_split_keys() {
        let md = vec![
            (
                "general.architecture".to_string(),
                Value::String("llama".into()),
            ),
            ("general.file_type".to_string(), Value::U32(1)),
            ("split.count".to_string(), Value::U16(3)),
        ];
        let out = output_metadata(&md, Some(15), &[("k".to_string(), Value::I8(1))]);
        let keys: Vec<&str> = out.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "general.architecture",
                "general.quantization_version",
                "general.file_type",
                "k"
            ]
        );
        assert_eq!(out[2].1, Value::U32(15));
        assert!(out.iter().all(|(k, _)| k != "split.count"));
        assert!(
            out.iter()
                .any(|(k, v)| k == "general.quantization_version" && *v == Value::U32(2))
        );
    }
}
