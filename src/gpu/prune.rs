//! Equilibrium pruning's score pass (`shaders/prune.wgsl`), dispatched through the one dispatch
//! path of [`super::dispatch`] with the codec runner's device, pipeline cache and staging pool.
//! CPU twin: `measure::participation`, whose results these are bit for bit.
//!
//! - Element scores: one call per run of whole rows; one workgroup per row sums the row's
//!   squares, takes its scale and iterates every element of the row with its level `s` in a
//!   register (all iterations in one dispatch). Two calls are in flight, as in the codec runner.
//! - Group scores: one invocation per group.
//! - Energies: each call's rows are uploaded once; one kernel sums each row, another each
//!   column over the call's rows, continuing the running sums of the calls before it (so the
//!   column order stays top to bottom whatever the split).
//!
//! What the kernels cannot take runs on the CPU twin, with the same results: rows wider than
//! a call's binding, and, on a software (CPU) adapter, runs longer than lavapipe's loop budget
//! (see `shaders/common.wgsl`, LOOP BUDGET), which would otherwise end loops early in silence.

use super::GpuError;
use super::codecs::CodecRunner;
use super::dispatch::{CodecParams, Dispatch, InFlight, Input};
use super::kernels::{KernelKey, Layout};
use super::table::Variant;
use super::wgsl;
use crate::error::Result;
use crate::measure::participation::{self, Benefit, Participation, SUM_LANES};
use rayon::prelude::*;
use std::ops::Range;

/// The row kernels' workgroup size (the CPU twin's reduction lanes).
const LANES: u32 = SUM_LANES as u32;
/// Loop iterations one SIMD group may run on a software adapter (lavapipe's limit is 65535).
pub const LOOP_BUDGET: u64 = 60_000;
/// Rows one column-sum call adds (one loop iteration each).
const COL_ROWS: usize = 16_384;
/// Largest call in bytes of f32 input: word indices stay well inside u32.
const MAX_CALL_BYTES: u64 = 1 << 30;

/// The iteration's parameters as the kernels read them (binding 3, before the data).
/// WGSL twin: `PruneParams` in prune.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct PruneParams {
    alpha: f32,
    beta: f32,
    gamma: f32,
    lr: f32,
    init: f32,
    iterations: u32,
    benefit: u32,
    row_len_f: f32,
}

/// Binding 3: the parameters, then `data` (at least one word: the binding is never shorter
/// than the shader's struct).
fn side(p: &Participation, row_len: usize, data: &[f32]) -> Vec<u8> {
    let params = PruneParams {
        alpha: p.alpha,
        beta: p.beta,
        gamma: p.gamma,
        lr: p.lr,
        init: p.init,
        iterations: p.iterations,
        benefit: match p.benefit {
            Benefit::Energy => 0,
            Benefit::Signed => 1,
        },
        row_len_f: row_len as f32,
    };
    let mut v = bytemuck::bytes_of(&params).to_vec();
    if data.is_empty() {
        v.extend_from_slice(&[0u8; 4]);
    } else {
        v.extend_from_slice(bytemuck::cast_slice(data));
    }
    v
}

/// Loop iterations of one SIMD group in `prune_elements` on rows of `row_len`: the row sum,
/// the tree, and per element of a lane the unrolled iteration and its remainder.
pub fn element_loop_count(row_len: usize, iterations: u32) -> u64 {
    let per_lane = (row_len as u64).div_ceil(LANES as u64);
    let iterate = iterations as u64 / 8 + iterations as u64 % 8 + 2;
    per_lane * (iterate + 1) + per_lane + 9
}

fn within_budget(runner: &CodecRunner, loops: u64) -> bool {
    !runner.context().is_cpu_adapter() || loops <= LOOP_BUDGET
}

fn key(entry: &'static str, workgroup_size: u32) -> KernelKey {
    KernelKey {
        shader: wgsl::PRUNE,
        entry,
        workgroup_size,
        variant: Variant::default(),
        layout: Layout::Codec,
    }
}

fn params(n_blocks: usize, row_len: usize) -> CodecParams {
    CodecParams {
        n_blocks: n_blocks as u32,
        n_groups: n_blocks as u32,
        row_len: row_len as u32,
        blocks_per_row: 1,
        src_offset: 0,
        dst_offset: 0,
        has_weights: 0,
        _pad: 0,
    }
}

/// f32 values one call may take as input (its output is at most as large). A call leases
/// its input, output and readback buffers and two calls are in flight: an eighth of the
/// pool's budget each keeps them within it.
fn values_per_call(runner: &CodecRunner) -> usize {
    let mut bytes = (runner.pool().budget() / 8)
        .min(runner.context().max_binding())
        .min(MAX_CALL_BYTES);
    if let Some(m) = runner.options().max_tile_bytes {
        bytes = bytes.min(m);
    }
    (bytes / 4).max(1) as usize
}

/// Rows per call for rows of `row_len`, or `None` when one row does not fit a call.
fn rows_per_call(runner: &CodecRunner, row_len: usize) -> Option<usize> {
    let n = values_per_call(runner) / row_len;
    (n > 0 && row_len <= u32::MAX as usize / 2).then_some(n)
}

/// Submits dispatches one after another, reading each back after the next is submitted.
struct Pipelined<'r> {
    pending: Option<(InFlight<'r>, Range<usize>)>,
}

impl<'r> Pipelined<'r> {
    fn push(
        &mut self,
        runner: &'r CodecRunner,
        d: &Dispatch<'_>,
        range: Range<usize>,
        out: &mut [f32],
    ) -> std::result::Result<(), GpuError> {
        let flight = runner.dispatcher().submit(d)?;
        if let Some((prev, r)) = self.pending.replace((flight, range)) {
            prev.read_into(bytemuck::cast_slice_mut(&mut out[r]))?;
        }
        if runner.options().tiles_in_flight < 2 {
            self.finish(out)?;
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut [f32]) -> std::result::Result<(), GpuError> {
        if let Some((last, r)) = self.pending.take() {
            last.read_into(bytemuck::cast_slice_mut(&mut out[r]))?;
        }
        Ok(())
    }
}

/// Each weight's participation (`participation::element_scores`) on the GPU.
pub fn element_scores(
    runner: &CodecRunner,
    w: &[f32],
    row_len: usize,
    p: &Participation,
    out: &mut [f32],
) -> Result<()> {
    if row_len == 0 || w.is_empty() {
        return Ok(());
    }
    let rows = rows_per_call(runner, row_len)
        .filter(|_| within_budget(runner, element_loop_count(row_len, p.iterations)));
    let Some(rows_per_call) = rows else {
        w.par_chunks(row_len)
            .zip(out.par_chunks_mut(row_len))
            .for_each(|(row, o)| participation::element_scores(row, row_len, p, o));
        return Ok(());
    };
    let side = side(p, row_len, &[]);
    let mut flights = Pipelined { pending: None };
    let call = rows_per_call * row_len;
    for (k, chunk) in w.chunks(call).enumerate() {
        let n_rows = chunk.len() / row_len;
        let d = Dispatch {
            key: key("prune_elements", LANES),
            params: params(n_rows, row_len),
            src: Input::Bytes(bytemuck::cast_slice(chunk)),
            side: Some(Input::Bytes(&side)),
            out_bytes: chunk.len() as u64 * 4,
            invocations: n_rows as u64 * LANES as u64,
            poison: runner.options().poison_output,
        };
        flights.push(runner, &d, k * call..k * call + chunk.len(), out)?;
    }
    flights.finish(out)?;
    Ok(())
}

/// Participation of groups from their scaled energies (`participation::group_scores`).
pub fn group_scores(
    runner: &CodecRunner,
    energies: &[f32],
    p: &Participation,
    out: &mut [f32],
) -> Result<()> {
    if energies.is_empty() {
        return Ok(());
    }
    if !within_budget(runner, element_loop_count(1, p.iterations)) {
        participation::group_scores(energies, p, out);
        return Ok(());
    }
    let side = side(p, 1, &[]);
    let wg = runner.options().workgroup_size;
    let mut flights = Pipelined { pending: None };
    let call = values_per_call(runner);
    for (k, chunk) in energies.chunks(call).enumerate() {
        let d = Dispatch {
            key: key("prune_groups", wg),
            params: params(chunk.len(), 1),
            src: Input::Bytes(bytemuck::cast_slice(chunk)),
            side: Some(Input::Bytes(&side)),
            out_bytes: chunk.len() as u64 * 4,
            invocations: chunk.len() as u64,
            poison: runner.options().poison_output,
        };
        flights.push(runner, &d, k * call..k * call + chunk.len(), out)?;
    }
    flights.finish(out)?;
    Ok(())
}

/// Sums of squares per row and per column (`participation::energies`) on the GPU.
pub fn energies(runner: &CodecRunner, w: &[f32], row_len: usize) -> Result<(Vec<f32>, Vec<f32>)> {
    if row_len == 0 || w.is_empty() {
        return Ok((Vec::new(), vec![0.0; row_len]));
    }
    let rows = rows_per_call(runner, row_len)
        .filter(|_| within_budget(runner, element_loop_count(row_len, 0)));
    let Some(rows_per_call) = rows else {
        return Ok(participation::energies(w, row_len));
    };
    let rows_per_call = rows_per_call.min(COL_ROWS);
    let p = Participation::default();
    let wg = runner.options().workgroup_size;
    let mut row_ss = vec![0f32; w.len() / row_len];
    let mut cols = vec![0f32; row_len];
    for (k, chunk) in w.chunks(rows_per_call * row_len).enumerate() {
        let n_rows = chunk.len() / row_len;
        let src = runner
            .dispatcher()
            .upload(bytemuck::cast_slice(chunk))
            .map_err(crate::Error::from)?;
        let size = chunk.len() as u64 * 4;
        let row_side = side(&p, row_len, &[]);
        let rows_d = Dispatch {
            key: key("prune_row_energy", LANES),
            params: params(n_rows, row_len),
            src: Input::Resident(src.buffer(), size),
            side: Some(Input::Bytes(&row_side)),
            out_bytes: n_rows as u64 * 4,
            invocations: n_rows as u64 * LANES as u64,
            poison: runner.options().poison_output,
        };
        let col_side = side(&p, row_len, &cols);
        let cols_d = Dispatch {
            key: key("prune_col_energy", wg),
            params: params(n_rows, row_len),
            src: Input::Resident(src.buffer(), size),
            side: Some(Input::Bytes(&col_side)),
            out_bytes: row_len as u64 * 4,
            invocations: row_len as u64,
            poison: runner.options().poison_output,
        };
        let mut run = || -> std::result::Result<(), GpuError> {
            let r = runner.dispatcher().submit(&rows_d)?;
            let c = runner.dispatcher().submit(&cols_d)?;
            let first = k * rows_per_call;
            r.read_into(bytemuck::cast_slice_mut(&mut row_ss[first..first + n_rows]))?;
            c.read_into(bytemuck::cast_slice_mut(&mut cols))?;
            Ok(())
        };
        run()?;
    }
    Ok((row_ss, cols))
}
