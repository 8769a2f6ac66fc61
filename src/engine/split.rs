//! One call's rows shared between the GPU and the CPU threads (`gpu+cpu split`).
//!
//! With a GPU, [`super::Engine::encode_into`] and [`super::Engine::decode_into`] of an
//! operation the GPU has a kernel for ([`super::routes::gpu_has`]) may cut the call's rows in
//! two at a row boundary: the first rows go to the GPU runner (submitted from a helper
//! thread), the rest to the CPU codec (rayon, on the calling thread) meanwhile; then both are
//! waited for. Every row is encoded exactly once, by one side, into its own place in the
//! output, and both sides give the same bytes, so the output is the same whatever the cut.
//! Importance weights are per column and shared by every row of a call (an expert tensor's
//! slices arrive as separate calls), so any row boundary is also a slice boundary.
//!
//! Where to cut ([`Split`]): nowhere (`Off`, the default of `--backend gpu`, so the GPU==CPU
//! tests test the GPU alone), at a fixed share of the rows (`Fixed`, for tests), or by the
//! measured throughput of each side (`Adaptive`, the default of `--backend auto` on a real
//! GPU): per operation (type, direction, weighted or not) each side's elements per second,
//! smoothed over earlier calls, give the GPU the share `gpu / (gpu + cpu)` that makes both
//! finish together. The first two calls of an operation run at [`START_SHARE`], the first
//! unmeasured (a warm-up: its GPU part compiles the pipeline, which on lavapipe took 6 s for
//! 200 rows, and fills the buffer pool); each side keeps at least [`MIN_SHARE`] of the rows
//! so that it stays measured. Calls smaller than
//! [`MIN_SPLIT_ELEMS`] elements are not cut (a thread and two half calls cost more than they
//! save); a fixed share cuts every call.
//!
//! `GPUQ_GPU_SPLIT=off|adaptive|<GPU share 0..1>` replaces the default (not a share set with
//! [`super::Engine::with_split`]).

use crate::error::{Error, Result};
use crate::ggml_type::GgmlType;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// The GPU's share of the rows of an adaptive split's first calls of an operation: a real GPU
/// is expected to be faster than the CPU threads; measurements take over after the warm-up.
pub const START_SHARE: f64 = 0.75;
/// The least share of the rows each side keeps under `Adaptive` (so both stay measured).
pub const MIN_SHARE: f64 = 0.02;
/// Calls of fewer elements are not cut under `Adaptive` (they run on the GPU alone).
pub const MIN_SPLIT_ELEMS: usize = 1 << 18;
/// Weight of the newest call in the smoothed rates.
const SMOOTHING: f64 = 0.3;

/// How the rows of one call are shared between the GPU and the CPU (see the module
/// documentation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Split {
    /// The GPU runs every row of the operations it has kernels for.
    Off,
    /// The GPU's share follows the measured rows/s of each side.
    Adaptive,
    /// The GPU encodes this share (0 to 1) of each call's rows, rounded to whole rows.
    Fixed(f64),
}

impl Split {
    /// A share outside 0..=1 (or NaN) is refused.
    pub fn check(self) -> Result<Split> {
        match self {
            Split::Fixed(s) if !(0.0..=1.0).contains(&s) => Err(Error::Invalid(format!(
                "gpu+cpu split: the GPU share {s} is not between 0 and 1"
            ))),
            s => Ok(s),
        }
    }

    /// `GPUQ_GPU_SPLIT`, when set.
    pub fn from_env() -> Result<Option<Split>> {
        let Ok(v) = std::env::var("GPUQ_GPU_SPLIT") else {
            return Ok(None);
        };
        let v = v.trim().to_ascii_lowercase();
        let split = match v.as_str() {
            "" => return Ok(None),
            "off" | "0" | "no" => Split::Off,
            "adaptive" | "auto" | "on" => Split::Adaptive,
            share => Split::Fixed(share.parse::<f64>().map_err(|_| {
                Error::Invalid(format!(
                    "GPUQ_GPU_SPLIT={share}: expected off, adaptive or a GPU share from 0 to 1"
                ))
            })?),
        };
        split.check().map(Some)
    }

    /// The words `Engine::describe` adds (empty when off).
    pub fn describe(self) -> String {
        match self {
            Split::Off => String::new(),
            Split::Adaptive => format!(
                "; gpu+cpu split: adaptive (GPU share {START_SHARE} of the rows to start, then \
                 by each side's measured rows/s per type)"
            ),
            Split::Fixed(s) => format!("; gpu+cpu split: fixed, GPU share {s} of the rows"),
        }
    }
}

/// What the last cut call did (tests, benchmarks).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SplitRun {
    pub ty: GgmlType,
    pub decode: bool,
    pub gpu_rows: usize,
    pub cpu_rows: usize,
    /// The GPU's share the cut was planned with.
    pub share: f64,
    pub gpu_seconds: f64,
    pub cpu_seconds: f64,
}

/// Which operation a rate belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct OpKey {
    pub ty: GgmlType,
    pub decode: bool,
    pub weighted: bool,
}

/// Smoothed elements per second of each side.
#[derive(Clone, Copy, Debug, Default)]
struct Rates {
    /// The warm-up call has been seen (it is not measured).
    warm: bool,
    gpu: Option<f64>,
    cpu: Option<f64>,
}

#[derive(Default)]
struct State {
    rates: HashMap<OpKey, Rates>,
    last: Option<SplitRun>,
}

/// The split of one engine and what it has measured.
pub(crate) struct Balancer {
    split: Split,
    state: Mutex<State>,
}

fn smooth(old: Option<f64>, new: f64) -> Option<f64> {
    Some(match old {
        Some(o) => o + SMOOTHING * (new - o),
        None => new,
    })
}

impl Balancer {
    pub fn new(split: Split) -> Balancer {
        Balancer {
            split,
            state: Mutex::new(State::default()),
        }
    }

    pub fn split(&self) -> Split {
        self.split
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The GPU's share for `op` now (the adaptive estimate; the fixed share; 1 when off).
    pub fn share(&self, op: OpKey) -> f64 {
        match self.split {
            Split::Off => 1.0,
            Split::Fixed(s) => s,
            Split::Adaptive => match self.state().rates.get(&op) {
                Some(Rates {
                    gpu: Some(g),
                    cpu: Some(c),
                    ..
                }) if g + c > 0.0 => (g / (g + c)).clamp(MIN_SHARE, 1.0 - MIN_SHARE),
                _ => START_SHARE,
            },
        }
    }

    /// Rows of a call of `n_rows` rows of `row_len` for the GPU, or `None`: do not cut (the
    /// GPU runs the call alone).
    pub fn plan(&self, op: OpKey, n_rows: usize, row_len: usize) -> Option<(usize, f64)> {
        match self.split {
            Split::Off => None,
            Split::Fixed(s) => Some((((s * n_rows as f64).round() as usize).min(n_rows), s)),
            Split::Adaptive => {
                if n_rows < 2 || n_rows.saturating_mul(row_len) < MIN_SPLIT_ELEMS {
                    return None;
                }
                let s = self.share(op);
                let g = (s * n_rows as f64).round() as usize;
                Some((g.clamp(1, n_rows - 1), s))
            }
        }
    }

    /// Records a cut call: each side's rows and seconds (a side with no rows is not measured,
    /// nor the first call of an operation: the warm-up).
    pub fn record(&self, op: OpKey, row_len: usize, run: SplitRun) {
        let rate = |rows: usize, secs: f64| {
            (rows > 0 && secs > 0.0).then(|| (rows * row_len) as f64 / secs)
        };
        let mut st = self.state();
        st.last = Some(run);
        let r = st.rates.entry(op).or_default();
        if !r.warm {
            r.warm = true;
            return;
        }
        if let Some(g) = rate(run.gpu_rows, run.gpu_seconds) {
            r.gpu = smooth(r.gpu, g);
        }
        if let Some(c) = rate(run.cpu_rows, run.cpu_seconds) {
            r.cpu = smooth(r.cpu, c);
        }
    }

    pub fn last(&self) -> Option<SplitRun> {
        self.state().last
    }

    /// Runs one call of `shape` = (rows, row length) cut between `gpu` and `cpu` when the
    /// split plans a cut, and records it; `Ok(false)`: not cut, nothing ran. `src` and `dst`
    /// come with their items per row.
    pub fn run<S: Sync, D: Send>(
        &self,
        op: OpKey,
        (n_rows, row_len): (usize, usize),
        (src, src_row): (&[S], usize),
        (dst, dst_row): (&mut [D], usize),
        gpu: impl FnOnce(&[S], &mut [D]) -> Result<()> + Send,
        cpu: impl FnOnce(&[S], &mut [D]) -> Result<()>,
    ) -> Result<bool> {
        if n_rows == 0 {
            return Ok(false);
        }
        let Some((gpu_rows, share)) = self.plan(op, n_rows, row_len) else {
            return Ok(false);
        };
        let (gpu_seconds, cpu_seconds) = run_split(src, src_row, dst, dst_row, gpu_rows, gpu, cpu)?;
        self.record(
            op,
            row_len,
            SplitRun {
                ty: op.ty,
                decode: op.decode,
                gpu_rows,
                cpu_rows: n_rows - gpu_rows,
                share,
                gpu_seconds,
                cpu_seconds,
            },
        );
        Ok(true)
    }
}

/// Runs `gpu` on the first `gpu_rows` rows (a helper thread) and `cpu` on the rest (this
/// thread) at once: `src` has `src_row` items per row, `dst` `dst_row`. Returns the seconds
/// each side took; the GPU's error first when both fail.
pub(crate) fn run_split<S: Sync, D: Send>(
    src: &[S],
    src_row: usize,
    dst: &mut [D],
    dst_row: usize,
    gpu_rows: usize,
    gpu: impl FnOnce(&[S], &mut [D]) -> Result<()> + Send,
    cpu: impl FnOnce(&[S], &mut [D]) -> Result<()>,
) -> Result<(f64, f64)> {
    let (gs, cs) = src.split_at(gpu_rows * src_row);
    let (gd, cd) = dst.split_at_mut(gpu_rows * dst_row);
    let t = Instant::now();
    if cs.is_empty() {
        gpu(gs, gd)?;
        return Ok((t.elapsed().as_secs_f64(), 0.0));
    }
    if gs.is_empty() {
        cpu(cs, cd)?;
        return Ok((0.0, t.elapsed().as_secs_f64()));
    }
    std::thread::scope(|s| {
        let gpu_side = std::thread::Builder::new()
            .name("gpuq-split-gpu".into())
            .spawn_scoped(s, move || {
                let t = Instant::now();
                gpu(gs, gd).map(|()| t.elapsed().as_secs_f64())
            })
            .map_err(|e| Error::Invalid(format!("gpu+cpu split: starting a thread: {e}")))?;
        let cpu_result = cpu(cs, cd).map(|()| t.elapsed().as_secs_f64());
        let gpu_result = gpu_side
            .join()
            .map_err(|_| Error::Invalid("gpu+cpu split: the GPU thread panicked".into()))?;
        Ok((gpu_result?, cpu_result?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OP: OpKey = OpKey {
        ty: GgmlType::Q4_K,
        decode: false,
        weighted: false,
    };

    fn run(gpu_rows: usize, cpu_rows: usize, gpu_seconds: f64, cpu_seconds: f64) -> SplitRun {
        SplitRun {
            ty: OP.ty,
            decode: false,
            gpu_rows,
            cpu_rows,
            share: 0.0,
            gpu_seconds,
            cpu_seconds,
        }
    }

    #[test]
    fn fixed_shares_cut_whole_rows() {
        let b = Balancer::new(Split::Fixed(0.3));
        assert_eq!(b.plan(OP, 10, 32), Some((3, 0.3)));
        assert_eq!(b.plan(OP, 1, 32), Some((0, 0.3)));
        assert_eq!(
            Balancer::new(Split::Fixed(1.0)).plan(OP, 7, 32).unwrap().0,
            7
        );
        assert_eq!(
            Balancer::new(Split::Fixed(0.0)).plan(OP, 7, 32).unwrap().0,
            0
        );
        assert_eq!(Balancer::new(Split::Off).plan(OP, 1 << 20, 4096), None);
        assert!(Split::Fixed(1.5).check().is_err());
        assert!(Split::Fixed(f64::NAN).check().is_err());
    }

    #[test]
    fn adaptive_share_follows_the_measured_rates() {
        let b = Balancer::new(Split::Adaptive);
        assert_eq!(b.plan(OP, 4, 256), None, "small calls are not cut");
        let (g, s) = b.plan(OP, 1000, 4096).unwrap();
        assert_eq!((g, s), (750, START_SHARE));
        // the warm-up call is not measured (a slow GPU part: the pipeline compiled)
        b.record(OP, 4096, run(750, 250, 100.0, 1.0));
        assert_eq!(b.share(OP), START_SHARE);
        // the GPU did 600 rows in 1 s, the CPU 400 in 2 s: the GPU is 3x faster
        b.record(OP, 4096, run(600, 400, 1.0, 2.0));
        assert!((b.share(OP) - 0.75).abs() < 1e-9, "{}", b.share(OP));
        // now the CPU turns out as fast as the GPU: the share moves toward one half
        for _ in 0..40 {
            b.record(OP, 4096, run(500, 500, 1.0, 1.0));
        }
        assert!((b.share(OP) - 0.5).abs() < 1e-3, "{}", b.share(OP));
        // a side that is never faster still keeps MIN_SHARE of the rows
        for _ in 0..40 {
            b.record(OP, 4096, run(1, 999, 100.0, 0.001));
        }
        assert_eq!(b.share(OP), MIN_SHARE);
        assert_eq!(b.plan(OP, 1000, 4096).unwrap().0, 20);
        assert_eq!(b.last().unwrap().cpu_rows, 999);
    }

    #[test]
    fn run_split_gives_each_row_to_one_side() {
        let src: Vec<u32> = (0..30).collect();
        for gpu_rows in [0, 1, 4, 10] {
            let mut dst = vec![0u32; 10];
            run_split(
                &src,
                3,
                &mut dst,
                1,
                gpu_rows,
                |s, d| {
                    for (o, r) in d.iter_mut().zip(s.chunks(3)) {
                        *o = r.iter().sum::<u32>() + 1000;
                    }
                    Ok(())
                },
                |s, d| {
                    for (o, r) in d.iter_mut().zip(s.chunks(3)) {
                        *o = r.iter().sum::<u32>() + 2000;
                    }
                    Ok(())
                },
            )
            .unwrap();
            for (i, &v) in dst.iter().enumerate() {
                let side = if i < gpu_rows { 1000 } else { 2000 };
                assert_eq!(v, side + 9 * i as u32 + 3, "row {i} of {gpu_rows}");
            }
        }
    }
}
