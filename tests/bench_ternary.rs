//! Rough throughput of BitNet absmean ternarize + pack (block sums, per-row scales, TQ2_0 /
//! TQ1_0 encode), CPU vs GPU, one run: `cargo test --release --test bench_ternary -- --ignored
//! --nocapture`. Input GB/s counts the f32 bytes read.
#![cfg(feature = "gpu")]

mod common;

use common::{Dist, rng, sample};
use gpuq::codec::absmean;
use gpuq::{Backend, Engine, GgmlType};
use std::time::Instant;

#[test]
#[ignore]
fn ternarize_pack_gbps() {
    let row_len = 4096;
    let rows = 2048;
    let x = sample(Dist::Normal, rows * row_len, &mut rng(1));
    let mut engines = vec![("cpu", Engine::new(Backend::Cpu).unwrap())];
    match Engine::new(Backend::Gpu) {
        Ok(g) => engines.push(("gpu", g)),
        Err(e) => eprintln!("no GPU: {e}"),
    }
    for (name, e) in &engines {
        for ty in [GgmlType::TQ2_0, GgmlType::TQ1_0] {
            let mut q = vec![0u8; x.len() / 256 * ty.block_bytes() as usize];
            // warm-up (pipelines, pools)
            let sums = e.absmean_block_sums(&x[..row_len * 8], row_len).unwrap();
            let s = absmean::row_scales(&sums, row_len);
            let n = q.len() / rows * 8;
            e.encode_absmean(ty, &x[..row_len * 8], row_len, &s, &mut q[..n])
                .unwrap();
            let t = Instant::now();
            let sums = e.absmean_block_sums(&x, row_len).unwrap();
            let s = absmean::row_scales(&sums, row_len);
            e.encode_absmean(ty, &x, row_len, &s, &mut q).unwrap();
            let dt = t.elapsed().as_secs_f64();
            let t2 = Instant::now();
            let q2 = e.encode(ty, &x, row_len, None).unwrap();
            let dt2 = t2.elapsed().as_secs_f64();
            assert_eq!(q2.len(), q.len());
            let gb = (x.len() * 4) as f64 / 1e9;
            eprintln!(
                "{name} {ty}: absmean per-channel ternarize+pack {:.3} GB/s; block absmax encode {:.3} GB/s ({} MiB f32)",
                gb / dt,
                gb / dt2,
                (x.len() * 4) >> 20
            );
        }
    }
}
