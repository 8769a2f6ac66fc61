//! Equilibrium pruning's score pass on the GPU (lavapipe in CI, `shaders/prune.wgsl`) against
//! its CPU twin `measure::participation`: element scores, group scores and energies on seeded
//! tiles of several distributions and row lengths (1, 100, 4096, 11008) under several parameter
//! sets, with outputs pre-filled (NaN on the host, 0xa5 bytes on the device) so an element the
//! kernels skip shows up. The GPU must agree within 1e-6; the test prints how many scores are
//! the same bits (the kernels round every operation as the CPU does, so all of them should be).
//! Fails without an adapter unless GPUQ_TEST_ALLOW_NO_GPU=1.
#![cfg(feature = "gpu")]

mod common;

use common::{Dist, rng, sample};
use gpuq::gpu::codecs::RunnerOptions;
use gpuq::measure::participation::{self, Benefit, Participation};
use gpuq::{Backend, Engine};
use rand::Rng;
use rand::rngs::StdRng;

fn gpu_engine(opts: RunnerOptions) -> Option<Engine> {
    let opts = RunnerOptions {
        poison_output: true,
        ..opts
    };
    match Engine::with_gpu_options(Backend::Gpu, opts) {
        Ok(e) => Some(e),
        Err(e) if std::env::var("GPUQ_TEST_ALLOW_NO_GPU").as_deref() == Ok("1") => {
            eprintln!("skipping: {e} (GPUQ_TEST_ALLOW_NO_GPU=1)");
            None
        }
        Err(e) => panic!("no GPU for the GPU tests: {e}\n(set GPUQ_TEST_ALLOW_NO_GPU=1 to skip)"),
    }
}

/// How the GPU's values compare with the CPU's.
#[derive(Default, Debug)]
struct Tally {
    n: usize,
    same_bits: usize,
    /// Differing, but within 1e-6.
    close: usize,
    /// Differing where one side is exactly 0 and the other one `[s > 0]` step above it.
    chatter: usize,
    worst: f32,
    /// CPU scores at the `[s > 0]` edge: players gamma pushed out, chattering between 0 and
    /// one step (at most `lr * alpha * gamma`), where a 1-ulp difference could flip a step.
    edge: usize,
    bad: Vec<String>,
}

impl Tally {
    fn add(&mut self, what: &str, i: usize, gpu: f32, cpu: f32) {
        self.n += 1;
        if gpu.to_bits() == cpu.to_bits() || (gpu.is_nan() && cpu.is_nan()) {
            self.same_bits += 1;
            return;
        }
        let d = (gpu - cpu).abs();
        if (gpu == 0.0) != (cpu == 0.0) {
            self.chatter += 1;
        }
        if d <= 1e-6 {
            self.close += 1;
            self.worst = self.worst.max(d);
        } else if self.bad.len() < 10 {
            self.bad
                .push(format!("{what}[{i}]: gpu {gpu:e} cpu {cpu:e}"));
        } else {
            self.bad.push(String::new());
        }
    }

    fn check(&self, what: &str) {
        println!(
            "{what}: {} values, {} same bits, {} within 1e-6 (worst {:e}), {} at 0 on one side \
             only; {} at the [s > 0] edge",
            self.n, self.same_bits, self.close, self.worst, self.chatter, self.edge
        );
        assert!(
            self.bad.is_empty(),
            "{what}: {} values differ by more than 1e-6:\n{}",
            self.bad.len(),
            self.bad.join("\n")
        );
    }
}

/// A tile of `rows` rows of `row_len` from `dist`, with planted rows: one of zeros, one
/// constant, one of tiny values (when there are enough rows).
fn tile(dist: Dist, rows: usize, row_len: usize, r: &mut StdRng) -> Vec<f32> {
    let mut w = sample(dist, rows * row_len, r);
    if rows >= 4 {
        w[..row_len].fill(0.0);
        let c: f32 = r.random_range(-2.0..2.0);
        w[row_len..2 * row_len].fill(c);
        for x in &mut w[2 * row_len..3 * row_len] {
            *x *= 1e-7;
        }
        // squares about f32's smallest normal (1.2e-38): subnormal products and sums
        for x in &mut w[3 * row_len..4 * row_len] {
            *x *= 1e-19;
        }
    }
    if rows >= 6 {
        // a sum of squares so small that row_len / ss overflows: the scale is 0
        for x in &mut w[4 * row_len..5 * row_len] {
            *x *= 1e-21;
        }
    }
    w
}

fn param_sets() -> Vec<(&'static str, Participation)> {
    let d = Participation::default();
    vec![
        ("defaults", d),
        (
            "signed",
            Participation {
                benefit: Benefit::Signed,
                ..d
            },
        ),
        ("1 iteration", Participation { iterations: 1, ..d }),
        (
            "500 iterations",
            Participation {
                iterations: 500,
                ..d
            },
        ),
        ("init 0.5", Participation { init: 0.5, ..d }),
        (
            "odd parameters",
            Participation {
                alpha: 0.7,
                beta: 0.3,
                gamma: 0.05,
                lr: 0.37,
                iterations: 13,
                init: 0.9,
                benefit: Benefit::Energy,
            },
        ),
    ]
}

/// Shapes (rows, row_len) and the distributions drawn for them.
fn shapes() -> Vec<(usize, usize, Dist)> {
    vec![
        (300, 1, Dist::Normal),
        (37, 100, Dist::HeavyTailed),
        (16, 100, Dist::Uniform),
        (12, 4096, Dist::Normal),
        (6, 4096, Dist::Tiny),
        (5, 4096, Dist::Huge),
        (6, 11008, Dist::HeavyTailed),
        (4, 11008, Dist::ZeroBlocks(64)),
        (5, 777, Dist::AllEqualBlocks(32)),
    ]
}

fn compare_elements(e: &Engine, w: &[f32], row_len: usize, p: &Participation, t: &mut Tally) {
    let mut gpu = vec![f32::NAN; w.len()];
    e.element_scores(w, row_len, p, &mut gpu).unwrap();
    let mut cpu = vec![f32::NAN; w.len()];
    participation::element_scores(w, row_len, p, &mut cpu);
    for (i, (&g, &c)) in gpu.iter().zip(&cpu).enumerate() {
        assert!(!c.is_nan() || w[i].is_nan(), "cpu left {i} unwritten");
        t.add("element", i, g, c);
        t.edge += (c <= p.lr * p.alpha * p.gamma) as usize;
    }
}

#[test]
fn element_scores_match_the_cpu_twin() {
    let Some(e) = gpu_engine(RunnerOptions::default()) else {
        return;
    };
    let mut r = rng(17);
    let tiles: Vec<_> = shapes()
        .into_iter()
        .map(|(rows, len, d)| (len, tile(d, rows, len, &mut r)))
        .collect();
    for (name, p) in param_sets() {
        let mut t = Tally::default();
        for (len, w) in &tiles {
            compare_elements(&e, w, *len, &p, &mut t);
        }
        t.check(&format!("element scores, {name}"));
    }
    // the kernel ran (a pipeline was built), not the CPU fallback
    assert!(!e.gpu().unwrap().kernels().is_empty());
}

/// More rows than one call takes, and more workgroups than the (capped) x dimension: the
/// tile is split in calls and each call's dispatch in 2-D.
#[test]
fn split_tiles_and_2d_dispatches_match() {
    let Some(e) = gpu_engine(RunnerOptions {
        max_tile_bytes: Some(64 << 10),
        max_workgroups_x: Some(7),
        ..RunnerOptions::default()
    }) else {
        return;
    };
    let mut r = rng(5);
    let mut t = Tally::default();
    let p = Participation::default();
    for (rows, len) in [(100, 1000), (3, 11008), (5000, 1)] {
        let w = tile(Dist::Normal, rows, len, &mut r);
        compare_elements(&e, &w, len, &p, &mut t);
        let (gr, gc) = e.energies(&w, len).unwrap();
        let (cr, cc) = participation::energies(&w, len);
        let mut te = Tally::default();
        for (i, (g, c)) in gr.iter().zip(&cr).chain(gc.iter().zip(&cc)).enumerate() {
            te.add("energy", i, *g, *c);
        }
        te.check(&format!("energies {rows}x{len}, split"));
        assert_eq!(te.same_bits, te.n, "energies must be the same bits");
    }
    let energies: Vec<f32> = (0..40_000).map(|_| r.random_range(0.0f32..4.0)).collect();
    let mut cpu = vec![f32::NAN; energies.len()];
    participation::group_scores(&energies, &p, &mut cpu);
    let gpu = e.group_scores(&energies, &p).unwrap();
    for (i, (&g, &c)) in gpu.iter().zip(&cpu).enumerate() {
        t.add("group", i, g, c);
    }
    t.check("element and group scores, split in calls and 2-D");
}

/// A tile several times the staging budget: calls sized so that two in flight fit it.
#[test]
fn tiles_larger_than_the_staging_budget() {
    let Some(e) = gpu_engine(RunnerOptions {
        budget: 16 << 20,
        ..RunnerOptions::default()
    }) else {
        return;
    };
    let mut r = rng(29);
    let w = tile(Dist::Normal, 1500, 4096, &mut r); // 24 MiB of f32
    let p = Participation {
        iterations: 3,
        ..Participation::default()
    };
    let mut t = Tally::default();
    compare_elements(&e, &w, 4096, &p, &mut t);
    let (gr, gc) = e.energies(&w, 4096).unwrap();
    let (cr, cc) = participation::energies(&w, 4096);
    for (i, (g, c)) in gr.iter().zip(&cr).chain(gc.iter().zip(&cc)).enumerate() {
        t.add("energy", i, *g, *c);
    }
    let g: Vec<f32> = cr.iter().map(|&x| x / 4096.0).collect();
    let mut cpu = vec![f32::NAN; g.len()];
    participation::group_scores(&g, &p, &mut cpu);
    for (i, (a, b)) in e.group_scores(&g, &p).unwrap().iter().zip(&cpu).enumerate() {
        t.add("group", i, *a, *b);
    }
    t.check("24 MiB tile, 16 MiB staging budget");
    assert_eq!(t.same_bits, t.n);
}

#[test]
fn group_scores_match_the_cpu_twin() {
    let Some(e) = gpu_engine(RunnerOptions::default()) else {
        return;
    };
    let mut r = rng(3);
    // scaled energies: mean about 1, a long tail, zeros, and values right at gamma
    let mut energies: Vec<f32> = (0..50_000)
        .map(|_| -r.random_range(1e-6f32..1.0).ln())
        .collect();
    energies[..100].fill(0.0);
    energies[100..200].fill(0.1);
    energies[200] = 1e30;
    energies[201] = 1e-30;
    for (name, p) in param_sets()
        .into_iter()
        .filter(|(_, p)| p.benefit == Benefit::Energy)
    {
        let gpu = e.group_scores(&energies, &p).unwrap();
        let mut cpu = vec![f32::NAN; energies.len()];
        participation::group_scores(&energies, &p, &mut cpu);
        let mut t = Tally::default();
        for (i, (&g, &c)) in gpu.iter().zip(&cpu).enumerate() {
            t.add("group", i, g, c);
            t.edge += (c <= p.lr * p.alpha * p.gamma) as usize;
        }
        t.check(&format!("group scores, {name}"));
    }
}

#[test]
fn energies_are_the_same_bits() {
    let Some(e) = gpu_engine(RunnerOptions::default()) else {
        return;
    };
    let mut r = rng(11);
    for (rows, len, d) in shapes() {
        let w = tile(d, rows, len, &mut r);
        let (gr, gc) = e.energies(&w, len).unwrap();
        let (cr, cc) = participation::energies(&w, len);
        assert_eq!((gr.len(), gc.len()), (rows, len));
        let mut t = Tally::default();
        for (i, (g, c)) in gr.iter().zip(&cr).enumerate() {
            t.add("row", i, *g, *c);
        }
        for (i, (g, c)) in gc.iter().zip(&cc).enumerate() {
            t.add("col", i, *g, *c);
        }
        t.check(&format!("energies {rows}x{len} {d:?}"));
        assert_eq!(t.same_bits, t.n, "energies must be the same bits");
    }
}

/// Iteration counts past lavapipe's loop budget still give the CPU's scores (the GPU glue
/// sends them to the CPU twin on a software adapter; a real GPU runs them).
#[test]
fn long_runs_stay_exact() {
    let Some(e) = gpu_engine(RunnerOptions::default()) else {
        return;
    };
    let mut r = rng(23);
    let w = tile(Dist::Normal, 2, 11008, &mut r);
    let mut t = Tally::default();
    // 43 elements per lane x 503 loop iterations: within the budget, on the GPU
    for (iterations, rows) in [(4000, 2), (20_000, 1)] {
        let p = Participation {
            iterations,
            lr: 0.05,
            ..Participation::default()
        };
        compare_elements(&e, &w[..rows * 11008], 11008, &p, &mut t);
    }
    t.check("element scores, 4000 and 20000 iterations");
}
