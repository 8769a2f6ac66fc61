//! The f32 statistics path (`measure::moments` + the compensated tensor combine) against the f64
//! reference, and the quantization-error metrics against a direct f64 computation from the CPU
//! codec round trip.

mod common;

use common::{Dist, rng, sample};
use gpuq::GgmlType;
use gpuq::measure::fidelity::{FidelityAcc, tile_fidelity};
use gpuq::measure::moments as fast;
use gpuq::measure::reference::{self, RowStats64, hist_bin64};
use gpuq::stats::{HIST_BINS, Histogram, RowStats, TensorStats, hist_bin};
use gpuq::{Backend, Engine};
use rand::Rng;

const K: f32 = 6.0;

/// Elements whose outlier decision or histogram bin sits within `tol` (relative) of an edge:
/// there the f32 and f64 paths may legitimately disagree.
fn ambiguous(row: &[f32], rms: f64, k: f64) -> (u64, u64) {
    let tol = 1e-5;
    let mut out = 0;
    let mut hist = 0;
    for &w in row.iter().filter(|w| w.is_finite()) {
        let w = w as f64;
        if (w.abs() - k * rms).abs() <= tol * k * rms {
            out += 1;
        }
        if rms > 0.0 {
            let t = (w / rms + 8.0) * 4.0;
            if (t - t.round()).abs() <= tol * t.abs().max(1.0) {
                hist += 1;
            }
        }
    }
    (out, hist)
}

fn close(a: f64, b: f64, scale: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * scale.abs() + f64::MIN_POSITIVE
}

/// Compares one row of the f32 path with the reference; returns the problems.
fn check_row(i: usize, row: &[f32], f: &RowStats, r: &RowStats64) -> Vec<String> {
    let mut bad = Vec::new();
    let mut expect = |ok: bool, what: String| {
        if !ok {
            bad.push(format!("row {i}: {what}"));
        }
    };
    expect(
        f.n == r.n && f.finite == r.finite,
        format!("n/finite {}/{} vs {}/{}", f.n, f.finite, r.n, r.finite),
    );
    expect(
        f.zeros == r.zeros && f.nan == r.nan && f.inf == r.inf,
        format!("counts {f:?} vs {r:?}"),
    );
    if r.finite > 0 {
        expect(
            f.min as f64 == r.min && f.max as f64 == r.max,
            format!("min/max {} {} vs {} {}", f.min, f.max, r.min, r.max),
        );
        expect(
            close(f.sum as f64, r.sum, r.sum_abs, 1e-5),
            format!("sum {} vs {}", f.sum, r.sum),
        );
        expect(
            close(f.sum_abs as f64, r.sum_abs, r.sum_abs, 1e-5),
            format!("sum_abs {} vs {}", f.sum_abs, r.sum_abs),
        );
        expect(
            close(f.sum_sq as f64, r.sum_sq, r.sum_sq, 1e-5),
            format!("sum_sq {} vs {}", f.sum_sq, r.sum_sq),
        );
    }
    let (amb, _) = ambiguous(row, r.rms(), K as f64);
    expect(
        f.outliers.abs_diff(r.outliers) <= amb,
        format!(
            "outliers {} vs {} ({amb} ambiguous)",
            f.outliers, r.outliers
        ),
    );
    bad
}

/// Random tensors: row lengths that are not multiples of any workgroup size, rows of one
/// element, every distribution, planted NaN/Inf/outliers/zeros.
fn cases() -> Vec<(String, usize, Vec<f32>)> {
    let mut r = rng(9);
    let shapes = [
        (1usize, 37usize),
        (1, 1),
        (3, 5),
        (63, 7),
        (257, 13),
        (1000, 3),
        (4097, 5),
        (65, 1),
        (100_003, 2),
    ];
    let mut out = Vec::new();
    for (si, &(row_len, rows)) in shapes.iter().enumerate() {
        for dist in Dist::all(32) {
            let mut v = sample(dist, row_len * rows, &mut r);
            if si % 2 == 0 && v.len() > 4 {
                // plant NaN, ±Inf, a big outlier and exact zeros at random places
                for (j, x) in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0]
                    .into_iter()
                    .enumerate()
                {
                    let at = r.random_range(0..v.len());
                    v[at] = x;
                    let _ = j;
                }
                let at = r.random_range(0..v.len());
                v[at] = 1e4 * v[at].signum().max(0.5);
            }
            out.push((format!("{row_len}x{rows} {dist:?}"), row_len, v));
        }
    }
    // a row with NaN only, a row of zeros only
    out.push(("nan row".into(), 7, vec![f32::NAN; 7]));
    out.push(("zero row".into(), 9, vec![0.0; 9]));
    out
}

#[test]
fn fast_rows_match_f64_reference() {
    let mut problems = Vec::new();
    let mut n_rows = 0;
    for (name, row_len, v) in cases() {
        let (fr, fh) = fast::tile_stats(&v, row_len, K);
        let (rr, rt, rh) = reference::tensor_stats(&v, row_len, K as f64);
        assert_eq!(fr.len(), v.len() / row_len, "{name}: every row reported");
        n_rows += fr.len();
        for (i, ((row, f), r)) in v.chunks(row_len).zip(&fr).zip(&rr).enumerate() {
            problems.extend(
                check_row(i, row, f, r)
                    .into_iter()
                    .map(|p| format!("{name}: {p}")),
            );
        }
        // histogram: same total, differences only from elements at bin edges
        assert_eq!(fh.total(), rt.finite, "{name}: every finite value binned");
        let amb: u64 = v
            .chunks(row_len)
            .zip(&rr)
            .map(|(row, r)| ambiguous(row, r.rms(), K as f64).1)
            .sum();
        let moved: u64 =
            fh.0.iter()
                .zip(rh.0.iter())
                .map(|(a, b)| a.abs_diff(*b))
                .sum();
        if moved > 2 * amb {
            problems.push(format!(
                "{name}: histogram differs by {moved} counts ({amb} values at bin edges)"
            ));
        }
        // tensor totals through the compensated combine
        let mut t = TensorStats::default();
        t.add_tile(0, &fr, &fh);
        if rt.finite > 0 && !close(t.sum.value(), rt.sum, rt.sum_abs, 1e-6) {
            problems.push(format!(
                "{name}: tensor sum {} vs {}",
                t.sum.value(),
                rt.sum
            ));
        }
        assert_eq!(
            (t.nan, t.inf, t.zeros),
            (rt.nan, rt.inf, rt.zeros),
            "{name}"
        );
        let nonfinite_rows = rr.iter().filter(|r| r.nan + r.inf > 0).count() as u64;
        assert_eq!(
            t.nonfinite_row_count, nonfinite_rows,
            "{name}: rows with NaN/Inf listed"
        );
        for nf in &t.nonfinite_rows {
            let r = &rr[nf.row as usize];
            assert_eq!((nf.nan, nf.inf), (r.nan, r.inf), "{name}: row {}", nf.row);
        }
    }
    assert!(n_rows > 500, "too few rows tested: {n_rows}");
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn histogram_bins_are_the_documented_ones() {
    assert_eq!(hist_bin(-1e9), 0);
    assert_eq!(hist_bin(-8.0), 1);
    assert_eq!(hist_bin(-7.76), 1);
    assert_eq!(hist_bin(-7.75), 2);
    assert_eq!(hist_bin(0.0), 33);
    assert_eq!(hist_bin(-0.01), 32);
    assert_eq!(hist_bin(7.99), 64);
    assert_eq!(hist_bin(8.0), HIST_BINS - 1);
    let mut r = rng(4);
    for _ in 0..10_000 {
        let x: f32 = r.random_range(-10.0..10.0);
        let t = (x as f64 + 8.0) * 4.0;
        if (t - t.round()).abs() < 1e-4 {
            continue; // at an edge f32 rounding of (x + 8) * 4 may pick either side
        }
        let b = hist_bin(x);
        let (lo, hi) = gpuq::stats::hist_bin_range(b);
        assert!(lo <= x && x < hi, "{x} in bin {b} [{lo}, {hi})");
        assert_eq!(b, hist_bin64(x as f64), "{x}");
    }
}

/// A 100M-element tensor streamed in tiles: the f32 path's mean against f64, relative, and the
/// GPU's (`shaders/stats.wgsl`) when an adapter is there (lavapipe in CI).
#[test]
fn mean_of_100m_elements_matches_f64() {
    #[cfg(feature = "gpu")]
    let gpu = gpuq::Engine::new(gpuq::Backend::Gpu)
        .map_err(|e| eprintln!("no GPU part: {e}"))
        .ok();
    #[cfg(feature = "gpu")]
    let mut tg = TensorStats::default();
    let row_len = 4099; // not a multiple of any block or workgroup size
    let rows_per_tile = 256;
    let total_rows = 100_000_000usize.div_ceil(row_len);
    let mut r = rng(100);
    let mut t = TensorStats::default();
    let (mut s64, mut a64, mut q64, mut n) = (0f64, 0f64, 0f64, 0u64);
    let mut r0 = 0;
    while r0 < total_rows {
        let rows = rows_per_tile.min(total_rows - r0);
        // N(0.1, 1): mean small against the spread (condition number ~8)
        let v: Vec<f32> = sample(Dist::Normal, rows * row_len, &mut r)
            .into_iter()
            .map(|x| x + 0.1)
            .collect();
        let (fr, fh) = fast::tile_stats(&v, row_len, K);
        t.add_tile(r0 as u64, &fr, &fh);
        #[cfg(feature = "gpu")]
        if let Some(e) = &gpu {
            let (gr, gh) = e.tile_stats(&v, row_len, K).unwrap();
            tg.add_tile(r0 as u64, &gr, &gh);
        }
        for &x in &v {
            let x = x as f64;
            s64 += x;
            a64 += x.abs();
            q64 += x * x;
        }
        n += v.len() as u64;
        r0 += rows;
    }
    assert!(n >= 100_000_000);
    let mean64 = s64 / n as f64;
    let rel = |a: f64, b: f64| ((a - b) / b).abs();
    let (em, ea, eq) = (
        rel(t.mean(), mean64),
        rel(t.absmean(), a64 / n as f64),
        rel(t.sum_sq.value(), q64),
    );
    eprintln!("100M elements: mean rel err {em:.2e}, absmean {ea:.2e}, sum of squares {eq:.2e}");
    assert!(
        em < 1e-5 && ea < 1e-5 && eq < 1e-5,
        "mean {em:e} absmean {ea:e} sumsq {eq:e}"
    );
    #[cfg(feature = "gpu")]
    if gpu.is_some() {
        assert_eq!(tg.n, n);
        let (em, ea, eq) = (
            rel(tg.mean(), mean64),
            rel(tg.absmean(), a64 / n as f64),
            rel(tg.sum_sq.value(), q64),
        );
        eprintln!(
            "GPU, 100M elements: mean rel err {em:.2e}, absmean {ea:.2e}, sum of squares {eq:.2e}"
        );
        assert!(
            em < 1e-5 && ea < 1e-5 && eq < 1e-5,
            "GPU: mean {em:e} absmean {ea:e} sumsq {eq:e}"
        );
    }
}

/// Direct f64 metrics of `x` against `y` (finite pairs).
fn direct(x: &[f32], y: &[f32]) -> (f64, f64, f64, f64, f64) {
    let (mut sse, mut sxx, mut syy, mut sxy, mut mx) = (0f64, 0f64, 0f64, 0f64, 0f64);
    for (&a, &b) in x.iter().zip(y) {
        let (a, b) = (a as f64, b as f64);
        sse += (a - b) * (a - b);
        sxx += a * a;
        syy += b * b;
        sxy += a * b;
        mx = mx.max((a - b).abs());
    }
    let n = x.len() as f64;
    (
        (sse / n).sqrt(),
        mx,
        (sse / sxx).sqrt(),
        sxy / (sxx.sqrt() * syy.sqrt()),
        10.0 * (sxx / sse).log10(),
    )
}

#[test]
fn error_metrics_match_direct_round_trip() {
    let types = [
        GgmlType::Q4_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::Q2_K,
        GgmlType::Q4_K,
        GgmlType::Q6_K,
        GgmlType::TQ2_0,
    ];
    let mut r = rng(21);
    let mut checked = 0;
    for ty in types {
        let row_len = 256 * 3;
        for dist in [
            Dist::Normal,
            Dist::HeavyTailed,
            Dist::OneOutlierPerBlock(32),
            Dist::Huge,
        ] {
            let rows = 11;
            let x = sample(dist, row_len * rows, &mut r);
            // the CPU codec directly
            let rb = ty.row_bytes(row_len as u64).unwrap() as usize;
            let mut bytes = vec![0u8; rb * rows];
            gpuq::codec::encode_rows(ty, &x, row_len, None, &mut bytes).unwrap();
            let mut y = vec![f32::NAN; x.len()];
            gpuq::codec::decode_rows(ty, &bytes, row_len, &mut y).unwrap();
            // the stats path: its own round trip and its reductions
            let mut y2 = vec![f32::NAN; x.len()];
            Engine::new(Backend::Cpu)
                .unwrap()
                .round_trip(ty, &x, row_len, &mut y2)
                .unwrap();
            assert_eq!(
                y.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                y2.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{ty} {dist:?}: round trip"
            );
            let rows_err = tile_fidelity(&x, &y2, row_len);
            assert_eq!(rows_err.len(), rows);
            let mut acc = FidelityAcc::default();
            acc.add_tile(0, &rows_err[..5]);
            acc.add_tile(5, &rows_err[5..]);
            let check = |what: &str,
                         m: gpuq::measure::fidelity::FidelityMetrics,
                         d: (f64, f64, f64, f64, f64)| {
                let ok = |a: f64, b: f64, tol: f64| (a - b).abs() <= tol * b.abs().max(1e-30);
                assert!(
                    ok(m.rmse, d.0, 1e-5),
                    "{ty} {dist:?} {what}: rmse {} vs {}",
                    m.rmse,
                    d.0
                );
                assert!(
                    ok(m.max_abs, d.1, 1e-6),
                    "{ty} {dist:?} {what}: max err {} vs {}",
                    m.max_abs,
                    d.1
                );
                assert!(
                    ok(m.rel_frobenius, d.2, 1e-5),
                    "{ty} {dist:?} {what}: rel {} vs {}",
                    m.rel_frobenius,
                    d.2
                );
                assert!(
                    (m.cosine - d.3).abs() <= 1e-6,
                    "{ty} {dist:?} {what}: cos {} vs {}",
                    m.cosine,
                    d.3
                );
                assert!(
                    (m.snr_db - d.4).abs() <= 1e-4,
                    "{ty} {dist:?} {what}: snr {} vs {}",
                    m.snr_db,
                    d.4
                );
            };
            for (i, re) in rows_err.iter().enumerate() {
                let s = i * row_len..(i + 1) * row_len;
                check(
                    &format!("row {i}"),
                    re.metrics(),
                    direct(&x[s.clone()], &y[s]),
                );
            }
            check("tensor", acc.metrics(), direct(&x, &y));
            let worst = acc.worst_row.unwrap();
            let best_direct = (0..rows)
                .map(|i| {
                    direct(
                        &x[i * row_len..(i + 1) * row_len],
                        &y[i * row_len..(i + 1) * row_len],
                    )
                    .2
                })
                .fold(0.0, f64::max);
            assert!(
                (worst.1 - best_direct).abs() <= 1e-5 * best_direct,
                "{ty}: worst row"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 28);
}

#[test]
fn error_edge_cases() {
    // exact round trip: SNR infinite, error 0, cosine 1
    let x = vec![1.0f32, -2.0, 0.5];
    let e = tile_fidelity(&x, &x, 3)[0].metrics();
    assert_eq!((e.rmse, e.rel_frobenius, e.cosine), (0.0, 0.0, 1.0));
    assert!(e.snr_db.is_infinite() && e.snr_db > 0.0);
    // a NaN source value is skipped, a poisoned decode is counted
    let x = vec![f32::NAN, 1.0, 2.0, 3.0];
    let y = vec![0.0, f32::NAN, 2.0, 2.0];
    let r = tile_fidelity(&x, &y, 4)[0];
    assert_eq!((r.n, r.poisoned), (2, 1));
    assert_eq!(r.sse, 1.0);
}

#[test]
fn tensor_stats_combine_tiles_like_one() {
    let mut r = rng(5);
    let v = sample(Dist::HeavyTailed, 333 * 40, &mut r);
    let (rows, h) = fast::tile_stats(&v, 333, K);
    let mut one = TensorStats::default();
    one.add_tile(0, &rows, &h);
    let mut tiled = TensorStats::default();
    for (i, part) in v.chunks(333 * 7).enumerate() {
        let (rs, hh) = fast::tile_stats(part, 333, K);
        tiled.add_tile((i * 7) as u64, &rs, &hh);
    }
    assert_eq!(one, tiled);
    let _ = Histogram::default();
}

/// `shaders/stats.wgsl` (through the Engine's GPU backend) against the f64 reference, on the
/// same tensors as the CPU path, plus a long tensor and one very long row. Runs on any adapter
/// (lavapipe in CI); without one it says so and returns.
#[cfg(feature = "gpu")]
#[test]
fn gpu_stats_match_f64_reference() {
    let engine = match gpuq::Engine::new(gpuq::Backend::Gpu) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("SKIP gpu_stats_match_f64_reference: {e}");
            return;
        }
    };
    assert_eq!(engine.backend(), gpuq::Backend::Gpu);
    eprintln!("{}", engine.describe());
    let mut problems = Vec::new();
    let mut cases = cases();
    let mut r = rng(77);
    // 2.6M elements in rows of 4099; one row of 3M elements (733 segments)
    cases.push((
        "4099x640 N(0.1,1)".into(),
        4099,
        sample(Dist::Normal, 4099 * 640, &mut r)
            .into_iter()
            .map(|x| x + 0.1)
            .collect(),
    ));
    cases.push((
        "3000001x1 heavy".into(),
        3_000_001,
        sample(Dist::HeavyTailed, 3_000_001, &mut r),
    ));
    let mut worst_mean = 0f64;
    for (name, row_len, v) in cases {
        let (gr, gh) = engine.tile_stats(&v, row_len, K).unwrap();
        let (rr, rt, rh) = reference::tensor_stats(&v, row_len, K as f64);
        assert_eq!(gr.len(), rr.len(), "{name}: every row reported");
        for (i, ((row, g), r)) in v.chunks(row_len).zip(&gr).zip(&rr).enumerate() {
            problems.extend(
                check_row(i, row, g, r)
                    .into_iter()
                    .map(|p| format!("{name}: {p}")),
            );
        }
        assert_eq!(gh.total(), rt.finite, "{name}: every finite value binned");
        let amb: u64 = v
            .chunks(row_len)
            .zip(&rr)
            .map(|(row, r)| ambiguous(row, r.rms(), K as f64).1)
            .sum();
        let moved: u64 =
            gh.0.iter()
                .zip(rh.0.iter())
                .map(|(a, b)| a.abs_diff(*b))
                .sum();
        if moved > 2 * amb {
            problems.push(format!(
                "{name}: histogram differs by {moved} counts ({amb} values at bin edges)"
            ));
        }
        let mut t = TensorStats::default();
        t.add_tile(0, &gr, &gh);
        if rt.finite > 0 && rt.sum.abs() > 0.05 * rt.sum_abs {
            worst_mean = worst_mean.max(((t.mean() - rt.mean()) / rt.mean()).abs());
        }
    }
    eprintln!(
        "GPU vs f64: worst relative mean error {worst_mean:.2e} (tensors with a non-negligible mean)"
    );
    assert!(worst_mean < 1e-5);
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// `stats_error` (the GPU compare kernel, through the Engine) against the CPU error pass and a
/// direct f64 computation, on codec round trips and on planted NaN sources / poisoned decodes,
/// with rows shorter than, equal to and longer than a segment (4096 elements).
#[cfg(feature = "gpu")]
#[test]
fn gpu_error_pass_matches_cpu_and_f64() {
    let engine = match gpuq::Engine::new(gpuq::Backend::Gpu) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("SKIP gpu_error_pass_matches_cpu_and_f64: {e}");
            return;
        }
    };
    let mut r = rng(404);
    let mut compared = 0usize;
    for (ty, row_len, rows) in [
        (GgmlType::Q4_0, 32usize, 57usize),
        (GgmlType::Q4_K, 256, 33),
        (GgmlType::Q6_K, 4096, 9),
        (GgmlType::Q8_0, 4128, 7),
        (GgmlType::Q5_K, 3 * 4096 + 256, 4),
    ] {
        for dist in [
            Dist::Normal,
            Dist::HeavyTailed,
            Dist::Huge,
            Dist::ZeroBlocks(32),
        ] {
            let mut x = sample(dist, row_len * rows, &mut r);
            let mut y = vec![f32::NAN; x.len()];
            Engine::new(Backend::Cpu)
                .unwrap()
                .round_trip(ty, &x, row_len, &mut y)
                .unwrap();
            assert!(
                y.iter().all(|v| v.is_finite()),
                "{ty}: every element decoded"
            );
            // plant NaN/Inf sources and poisoned decodes in a few rows
            for _ in 0..rows.div_ceil(3) {
                let i = r.random_range(0..x.len());
                x[i] = if r.random_bool(0.5) {
                    f32::NAN
                } else {
                    f32::INFINITY
                };
                let j = r.random_range(0..x.len());
                y[j] = f32::NAN;
            }
            let cpu = tile_fidelity(&x, &y, row_len);
            let gpu = engine.tile_fidelity(&x, &y, row_len).unwrap();
            assert_eq!(gpu.len(), rows, "{ty} {dist:?}: every row reported");
            for (i, (g, c)) in gpu.iter().zip(&cpu).enumerate() {
                let s = i * row_len..(i + 1) * row_len;
                let (mut sse, mut sxx, mut syy, mut sxy) = (0f64, 0f64, 0f64, 0f64);
                for (&a, &b) in x[s.clone()].iter().zip(&y[s]) {
                    if a.is_finite() && b.is_finite() {
                        let (a, b) = (a as f64, b as f64);
                        sse += (a - b) * (a - b);
                        sxx += a * a;
                        syy += b * b;
                        sxy += a * b;
                    }
                }
                let what = format!("{ty} {dist:?} row {i}");
                assert_eq!((g.n, g.poisoned), (c.n, c.poisoned), "{what}: counts");
                assert_eq!(g.max_abs, c.max_abs, "{what}: max |x-y|");
                for (name, gv, cv, d) in [
                    ("sse", g.sse, c.sse, sse),
                    ("sxx", g.sxx, c.sxx, sxx),
                    ("syy", g.syy, c.syy, syy),
                    ("sxy", g.sxy, c.sxy, sxy),
                ] {
                    let tol = 1e-5 * d.abs().max(1e-30);
                    assert!(
                        (gv as f64 - d).abs() <= tol,
                        "{what}: gpu {name} {gv} vs f64 {d}"
                    );
                    assert!(
                        (cv as f64 - d).abs() <= tol,
                        "{what}: cpu {name} {cv} vs f64 {d}"
                    );
                }
                compared += 1;
            }
        }
    }
    eprintln!("GPU error pass: {compared} rows equal to the CPU's within 1e-5 of f64");
    assert_eq!(compared, 4 * (57 + 33 + 9 + 7 + 4));
}
