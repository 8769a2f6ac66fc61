//! Rough throughput of BitNet absmean ternarize + pack (block sums, per-row scales, TQ2_0 /
//! TQ1_0 encode; block sums, the tensor scale, I2_S codes), CPU vs GPU, one run: `cargo test
//! --release --test bench_ternary -- --ignored --nocapture`. Input GB/s counts the f32 bytes
//! read.
#![cfg(feature = "gpu")]

mod common;

use common::{Dist, rng, sample};
use gpuq::codec::{absmean, i2s};
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
        // I2_S: per-tensor absmean (block sums, one scale), codes, trailer
        let mut q = vec![0u8; i2s::tensor_bytes(x.len())];
        let run = |q: &mut [u8], x: &[f32]| {
            let mut m = absmean::TensorMean::default();
            m.add(&e.absmean_block_sums(x, row_len).unwrap());
            let s = m.finish();
            let (codes, tail) = q.split_at_mut(x.len() / 4);
            e.encode_i2s(x, row_len, 1.0 / s, codes).unwrap();
            tail.copy_from_slice(&i2s::trailer(s));
            s
        };
        let mut warm = vec![0u8; i2s::tensor_bytes(row_len * 8)];
        run(&mut warm, &x[..row_len * 8]);
        let t = Instant::now();
        let s = run(&mut q, &x);
        let dt = t.elapsed().as_secs_f64();
        let mut y = vec![0f32; x.len()];
        let t2 = Instant::now();
        e.decode_i2s(&q[..x.len() / 4], row_len, s, &mut y).unwrap();
        let dt2 = t2.elapsed().as_secs_f64();
        let mut want = vec![0u8; q.len()];
        i2s::encode_tensor_absmean(&x, absmean::tensor_scale(&x), &mut want).unwrap();
        assert!(
            q == want,
            "{name}: I2_S bytes differ from the CPU reference"
        );
        let gb = (x.len() * 4) as f64 / 1e9;
        eprintln!(
            "{name} I2_S: absmean per-tensor ternarize+pack {:.3} GB/s; decode {:.3} GB/s of codes",
            gb / dt,
            (x.len() / 4) as f64 / 1e9 / dt2
        );
    }
}
