//! The orchestrator: tensors in input order, cut into tiles of whole rows, each tile decoded to
//! f32 and encoded to its target type by the [`Engine`], then written at its planned offset.
//!
//! Where the output file is mapped (the default on Linux, [`crate::formats::gguf::Store`]),
//! each tile is encoded straight into its place in the file by every worker thread, and a
//! writer thread releases the filled pages (and starts their writeback) while the next tile is
//! computed; otherwise tiles are encoded into a fixed pool of buffers sized from `max_memory`
//! (nothing is allocated per tile) that the writer thread writes. The input pages of a tile are
//! prefetched before and released after it is used, so resident memory does not grow with the
//! model.

pub mod strategy;
pub mod tiles;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::formats::gguf::out_map::copy_parallel;
use crate::formats::gguf::{GgufWriter, TensorSpec, Value};
use crate::ggml_type::GgmlType;
use crate::measure::fidelity::FidelityAcc;
// The source types, also reachable here (callers that name them through the pipeline).
pub use crate::model::{InputTensor, ModelSource, TOKEN_EMBD, TernarySource};
use crate::policy::TensorPlan;
use crate::policy::loader_order_key;
use std::path::Path;
use std::sync::mpsc;
use std::time::Instant;
use strategy::Strategy;
use tiles::{RowDecoder, RowTiles};

pub use strategy::TernaryReport;

/// How the output is produced. `PipelineOptions::default()` copies the input's metadata, keeps
/// its tensor order and measures nothing, with 2 GiB of tile buffers.
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

impl Default for PipelineOptions {
    fn default() -> Self {
        PipelineOptions {
            max_memory: 2 << 30,
            imatrix: None,
            allow_nonfinite: false,
            file_type: None,
            loader_order: false,
            metadata: Vec::new(),
            ternary_scale: None,
            ternary_report: false,
            error_report: false,
            write: Default::default(),
        }
    }
}

/// The quantization error of one converted tensor: its written bytes decoded, against the
/// source values.
#[derive(Clone, Debug)]
pub struct TensorFidelity {
    pub name: String,
    /// ne0 first.
    pub dims: Vec<u64>,
    pub from: GgmlType,
    pub to: GgmlType,
    pub acc: FidelityAcc,
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
    pub errors: Vec<TensorFidelity>,
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

/// Progress events, for a bar or plain lines, and the way to cancel a job: a job asks
/// [`Progress::cancelled`] between tiles and stops with [`Error::Interrupted`], leaving no
/// output, when it says so (the CLI's Ctrl-C handler sets it).
pub trait Progress: Sync {
    fn start(&self, _total_bytes: u64, _n_tensors: usize) {}
    fn tensor(&self, _index: usize, _name: &str, _from: GgmlType, _to: GgmlType) {}
    /// Tensor `index` is in a pass that is not a conversion (`what`: "measuring Q4_K, …").
    fn step(&self, _index: usize, _name: &str, _what: &str) {}
    fn advance(&self, _input_bytes: u64) {}
    fn finish(&self) {}
    /// True once the job should stop.
    fn cancelled(&self) -> bool {
        false
    }
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

/// What the producer hands the writer thread.
enum Sent {
    /// Bytes to write (a pooled buffer, returned to the pool once written).
    Tile {
        tensor: usize,
        out_offset: u64,
        len: usize,
        buf: Vec<u8>,
    },
    /// A region of the mapped output filled in place: its pages are released.
    Placed { at: u64, len: u64 },
}

/// Bytes of the next tensor asked for (read ahead) when a tensor starts.
const NEXT_TENSOR_PREFETCH: u64 = 64 << 20;

/// Number of output tile buffers in flight (one being filled, one being written, one spare);
/// with a mapped output, the filled regions whose pages are not yet released.
const N_TILE_BUFFERS: usize = 3;

/// Rows per tile: as many as fit the budget, where a row costs `work_row_bytes` once (the f32
/// work areas and the mapped input pages of the tile in use) and `out_row_bytes` in each of the
/// output buffers.
fn tile_rows(max_memory: u64, work_row_bytes: u64, out_row_bytes: u64, n_rows: u64) -> u64 {
    let per_row = work_row_bytes + out_row_bytes * N_TILE_BUFFERS as u64;
    (max_memory / per_row.max(1)).clamp(1, n_rows.max(1))
}

/// The most f32 bytes one tile decodes into, whatever the budget. Larger tiles buy nothing
/// (each step is parallel inside a tile) and cost memory that is touched once per run: a
/// 2 GiB budget gave the 1 GiB F16 bench model a 262 MB work area (its 32000 x 2048 output
/// tensor whole) and a 449 MB peak; capped, 236 MB, and Q4_0 ran in 2.09 s instead of 2.41
/// (means of three alternated runs, 2 threads: fresh pages are slow to fault in on this VM).
const MAX_TILE_F32_BYTES: u64 = 128 << 20;

/// Rows per tile when tensor `t` becomes `target` under `opts`.
fn tensor_tile_rows(opts: &PipelineOptions, t: &InputTensor, target: GgmlType) -> u64 {
    let row_len = t.row_len();
    // one f32 work area, two with the error report's round trip
    let f32_areas = if opts.error_report { 2 } else { 1 };
    let in_row = t.ty.row_bytes(row_len).unwrap_or(0);
    let out_row = target.row_bytes(row_len).unwrap_or(0);
    let cap = (MAX_TILE_F32_BYTES / (row_len * 4).max(1)).max(1);
    tile_rows(
        opts.max_memory,
        row_len * 4 * f32_areas + in_row,
        out_row,
        t.n_rows(),
    )
    .min(cap)
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
            // llama-quantize writes ggml_n_dims dimensions (trailing 1s dropped, e.g. a
            // [n_embd, 1] ffn_gate_inp_shexp); the converter writes the shape as given
            dims: if opts.loader_order {
                tensors[i].dims
                    [..crate::policy::n_dims(&tensors[i].dims).min(tensors[i].dims.len())]
                    .to_vec()
            } else {
                tensors[i].dims.clone()
            },
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
    let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
    // a mapped output is filled in place: no buffers
    let n_buffers = if writer.is_mapped() {
        0
    } else {
        N_TILE_BUFFERS
    };
    for _ in 0..n_buffers {
        free_tx
            .send(vec![0u8; max_tile_out as usize])
            .map_err(|_| Error::Invalid("buffer pool closed".into()))?;
    }
    let (full_tx, full_rx) = mpsc::sync_channel::<Sent>(N_TILE_BUFFERS);

    let mut summary = Summary {
        tensors: tensors.len(),
        ..Default::default()
    };
    let result: Result<()> = std::thread::scope(|s| {
        let writer_ref = &writer;
        // the writer holds the only sender of free buffers: when it stops (a write error),
        // the producer's take_buffer fails instead of waiting forever for a buffer
        let free_back = free_tx;
        let write_thread = s.spawn(move || -> Result<()> {
            for sent in full_rx {
                match sent {
                    Sent::Tile {
                        tensor,
                        out_offset,
                        len,
                        buf,
                    } => {
                        writer_ref.write_at(tensor, out_offset, &buf[..len])?;
                        // the receiver may be gone when the producer stopped early; nothing
                        // to do then
                        let _ = free_back.send(buf);
                    }
                    Sent::Placed { at, len } => writer_ref.release(at, len),
                }
            }
            Ok(())
        });

        let mut produce = || -> Result<()> {
            for (out_index, &i) in order.iter().enumerate() {
                let (t, p) = (&tensors[i], &plans[i]);
                progress.tensor(out_index, &t.name, t.ty, p.target);
                // the tile loop reads ahead within a tensor; the next tensor's first pages
                // are asked for here, so a cold input is read while this one is converted
                if let Some(&next) = order.get(out_index + 1) {
                    let ahead = src.tensor_len(next).min(NEXT_TENSOR_PREFETCH);
                    src.prefetch(next, 0, ahead as usize);
                }
                summary.parameters += t.n_elements();
                let mut io = TileIo {
                    writer: &writer,
                    src,
                    index: i,
                    out_index,
                    full_tx: &full_tx,
                    free_rx: &free_rx,
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

fn take_buffer(free_rx: &mpsc::Receiver<Vec<u8>>) -> Result<Vec<u8>> {
    free_rx
        .recv()
        .map_err(|_| Error::Invalid("the writer stopped early".into()))
}

/// What moving one tensor's tiles needs: the source, the output, the buffer pool and the
/// writer queue.
struct TileIo<'a> {
    writer: &'a GgufWriter,
    src: &'a dyn ModelSource,
    /// The tensor's index in the source.
    index: usize,
    /// Its index in the output.
    out_index: usize,
    full_tx: &'a mpsc::SyncSender<Sent>,
    free_rx: &'a mpsc::Receiver<Vec<u8>>,
    progress: &'a dyn Progress,
}

impl<'a> TileIo<'a> {
    /// The tensor's rows in tiles of `rows`, inside slices of `slice_rows` rows if given.
    fn tiles(&self, rows: u64, slice_rows: Option<u64>) -> Result<RowTiles<'a>> {
        let tiles = RowTiles::new(self.src, self.index, rows)?.cancel_with(self.progress);
        Ok(match slice_rows {
            Some(s) => tiles.within_slices(s),
            None => tiles,
        })
    }

    /// Produces `len` output bytes at `out_offset` of the tensor: `fill` writes them in place
    /// when the output is mapped, else into a pooled buffer the writer thread writes.
    fn output(
        &self,
        out_offset: u64,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<()>,
    ) -> Result<()> {
        let sent = match self.writer.region(self.out_index, out_offset, len)? {
            Some(mut region) => {
                fill(&mut region)?;
                Sent::Placed {
                    at: region.at(),
                    len: len as u64,
                }
            }
            None => {
                let mut buf = take_buffer(self.free_rx)?;
                if buf.len() < len {
                    buf.resize(len, 0);
                }
                fill(&mut buf[..len])?;
                Sent::Tile {
                    tensor: self.out_index,
                    out_offset,
                    len,
                    buf,
                }
            }
        };
        self.full_tx
            .send(sent)
            .map_err(|_| Error::Invalid("the writer stopped early".into()))
    }
}

/// Copies a tensor whose type does not change, whole rows at a time (at least `chunk` bytes).
fn copy_tensor(io: &mut TileIo, t: &InputTensor, chunk: u64) -> Result<()> {
    let row_bytes = t.ty.row_bytes(t.row_len()).unwrap_or(0).max(1);
    let mut tiles = io.tiles((chunk / row_bytes).max(1), None)?;
    while let Some(tile) = tiles.next_tile()? {
        let len = tile.bytes.len();
        io.output(tile.r0 * row_bytes, len, |dst| {
            copy_parallel(dst, tile.bytes);
            Ok(())
        })?;
        io.progress.advance(len as u64);
    }
    Ok(())
}

/// Converts one tensor: an optional first pass for what the [`Strategy`] needs to know of the
/// whole tensor, then every tile decoded, checked, encoded, (measured,) and queued for writing.
fn convert_tensor(
    io: &mut TileIo,
    t: &InputTensor,
    p: &TensorPlan,
    engine: &Engine,
    opts: &PipelineOptions,
    f32_buf: &mut [f32],
    round_trip: &mut [f32],
) -> Result<(Option<TernaryReport>, Option<TensorFidelity>)> {
    let src = io.src;
    let row_len = t.row_len();
    let rl = row_len as usize;
    let n_rows = t.n_rows();
    let out_row = p.target.row_bytes(row_len).ok_or_else(|| {
        Error::Invalid(format!(
            "{}: tensor {}: row of {row_len} does not fit {}",
            src.describe(),
            t.name,
            p.target
        ))
    })? as usize;
    let rows_per_slice = t.dims.get(1).copied().unwrap_or(1).max(1);
    let weights = tensor_weights(src, t, opts.imatrix.as_ref())?;
    let tile_rows = tensor_tile_rows(opts, t, p.target);
    // with importance weights, tiles stay inside one expert slice (it has its own)
    let slice_rows = weights.map(|_| rows_per_slice);
    let decoder = RowDecoder::of(src, io.index, t)?;
    let mut strategy = Strategy::choose(
        src.ternary(io.index),
        p.target,
        opts.ternary_scale,
        opts.ternary_report,
    );
    if strategy.needs_first_pass() {
        let mut first = io.tiles(tile_rows, slice_rows)?;
        while let Some(tile) = first.next_tile()? {
            let f = &mut f32_buf[..(tile.rows * row_len) as usize];
            decoder.decode(engine, tile.bytes, f)?;
            strategy.observe(engine, f, rl)?;
        }
    }
    strategy.start();
    let mut fidelity =
        (opts.error_report && crate::codec::can_decode_tensor(p.target)).then(|| TensorFidelity {
            name: t.name.clone(),
            dims: t.dims.clone(),
            from: t.ty,
            to: p.target,
            acc: FidelityAcc::default(),
        });
    let mut main = io.tiles(tile_rows, slice_rows)?;
    while let Some(tile) = main.next_tile()? {
        let (r0, rows, in_len) = (tile.r0, tile.rows, tile.bytes.len());
        let n = (rows * row_len) as usize;
        let f = &mut f32_buf[..n];
        decoder.decode(engine, tile.bytes, f)?;
        if !opts.allow_nonfinite {
            refuse_nonfinite(src, t, r0, f)?;
        }
        let w = weights.map(|w| {
            let slice = (r0 / rows_per_slice) as usize;
            &w[slice * rl..(slice + 1) * rl]
        });
        let len = rows as usize * out_row;
        io.output(r0 * out_row as u64, len, |dst| {
            strategy.encode(engine, f, rl, w, dst)?;
            if let Some(e) = fidelity.as_mut() {
                let y = &mut round_trip[..n];
                strategy.decode_written(engine, dst, rl, y)?;
                e.acc.add_tile(r0, &engine.tile_fidelity(f, y, rl)?);
            }
            Ok(())
        })?;
        io.progress.advance(in_len as u64);
    }
    if let Some(tail) = strategy.trailer() {
        io.output(n_rows * out_row as u64, tail.len(), |dst| {
            dst.copy_from_slice(&tail);
            Ok(())
        })?;
    }
    Ok((strategy.ternary_report(&t.name), fidelity))
}

/// The importance weights of tensor `t` (`ne0 * ne2` values), if the imatrix has an entry the
/// plan accepted (llama-quantize ignores a token_embd entry of the wrong size). Also what the
/// size target's measuring pass encodes with.
pub fn tensor_weights<'o>(
    src: &dyn ModelSource,
    t: &InputTensor,
    imatrix: Option<&'o std::collections::HashMap<String, Vec<f32>>>,
) -> Result<Option<&'o [f32]>> {
    let want = t.row_len() * t.dims.get(2).copied().unwrap_or(1);
    let Some(w) = imatrix.and_then(|m| m.get(&t.name)) else {
        return Ok(None);
    };
    if w.len() as u64 == want {
        return Ok(Some(w));
    }
    if t.name == TOKEN_EMBD {
        return Ok(None);
    }
    // the plan refuses this before any output exists; a caller of `run` that skipped it
    // gets the same words here instead of a slice out of range
    Err(Error::Invalid(format!(
        "{}: tensor {}: imatrix has {} values, expected {want} (ne0 {} x ne2 {})",
        src.describe(),
        t.name,
        w.len(),
        t.row_len(),
        t.dims.get(2).copied().unwrap_or(1)
    )))
}

/// NaN/Inf weights poison block scales: stop, naming where.
fn refuse_nonfinite(src: &dyn ModelSource, t: &InputTensor, r0: u64, f: &[f32]) -> Result<()> {
    use rayon::prelude::*;
    let row_len = t.row_len().max(1);
    // on every thread, each chunk in one branch-free (vectorized) pass; the first bad chunk
    // is then searched for its first bad value
    const CHUNK: usize = 1 << 14;
    let first_bad = f
        .par_chunks(CHUNK)
        .position_first(|c| c.iter().fold(false, |bad, x| bad | !x.is_finite()))
        .and_then(|c| {
            let chunk = &f[c * CHUNK..f.len().min((c + 1) * CHUNK)];
            chunk
                .iter()
                .position(|x| !x.is_finite())
                .map(|k| c * CHUNK + k)
        });
    match first_bad {
        None => Ok(()),
        Some(k) => Err(Error::Invalid(format!(
            "{}: tensor {}: row {} holds a non-finite value ({}) at column {}; \
             such weights poison block scales (pass --allow-nonfinite to quantize anyway)",
            src.describe(),
            t.name,
            r0 + k as u64 / row_len,
            f[k],
            k as u64 % row_len
        ))),
    }
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
            ..PipelineOptions::default()
        };
        let plain = tensor_tile_rows(&opts, &t, GgmlType::Q4_K);
        assert!(plain * (4096 * 4 + 4096 * 2 + 2304 * 3) <= 64 << 20);
        assert!((plain + 1) * (4096 * 4 + 4096 * 2 + 2304 * 3) > 64 << 20);
        opts.error_report = true;
        let with_report = tensor_tile_rows(&opts, &t, GgmlType::Q4_K);
        assert!(with_report * (4096 * 8 + 4096 * 2 + 2304 * 3) <= 64 << 20);
        assert!(with_report < plain);
        // a large budget: the f32 area is capped, not the whole tensor
        opts.max_memory = 64 << 30;
        let capped = tensor_tile_rows(&opts, &t, GgmlType::Q4_K);
        assert_eq!(capped, MAX_TILE_F32_BYTES / (4096 * 4));
        // a row wider than the cap is still one row per tile
        let wide = InputTensor {
            name: "wide".into(),
            dims: vec![64 << 20, 3],
            ty: GgmlType::F16,
        };
        assert_eq!(tensor_tile_rows(&opts, &wide, GgmlType::Q8_0), 1);
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
