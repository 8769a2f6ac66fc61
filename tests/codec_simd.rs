//! The vectorized CPU encoders against their scalar forms, byte for byte: every copy of a
//! dispatched row encoder (`encode_row_at`, one per [`SimdLevel`] this CPU runs) must write
//! exactly the bytes of the one-block encoder applied block by block (whose searches the
//! unit tests in `kquants::search_lanes` hold to ggml's scalar searches). Rows have an odd
//! number of blocks so both the paired (two blocks per lane set) and the lone-block paths run,
//! with and without importance weights, on seeded random data in several distributions plus
//! subnormal, extreme and signed-zero rows. Outputs are pre-filled with two different
//! sentinels so a byte left unwritten cannot pass.
//!
//! `GPUQ_TEST_SEED=<u64>` draws fresh data; the seed in use is printed.

mod common;

use common::{Dist, rng, sample};
use gpuq::codec::kquants::{QK_K, q2_k, q3_k, q4_k, q5_k, q6_k};
use gpuq::codec::legacy;
use gpuq::codec::simd::SimdLevel;
use rand::Rng;
use rand::rngs::StdRng;

type AtFn = fn(SimdLevel, &[f32], &mut [u8], Option<&[f32]>);

/// One dispatched encoder and its block-by-block scalar form.
struct Case {
    name: &'static str,
    block: usize,
    block_bytes: usize,
    at: AtFn,
    /// Encodes one block (`weights` of the block's length) into `out`.
    one: fn(&[f32], Option<&[f32]>, &mut [u8]),
    weighted: bool,
}

fn kq_one<B: bytemuck::Pod>(
    r: fn(&[f32; QK_K]) -> B,
    w: fn(&[f32; QK_K], &[f32; QK_K]) -> B,
    x: &[f32],
    qw: Option<&[f32]>,
    out: &mut [u8],
) {
    let x: &[f32; QK_K] = x.try_into().unwrap();
    let y = match qw {
        Some(qw) => w(x, qw.try_into().unwrap()),
        None => r(x),
    };
    out.copy_from_slice(bytemuck::bytes_of(&y));
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "Q2_K",
            block: QK_K,
            block_bytes: size_of::<q2_k::BlockQ2K>(),
            at: q2_k::encode_row_at,
            one: |x, w, o| {
                kq_one(
                    q2_k::quantize_block_ref,
                    q2_k::quantize_block_weighted,
                    x,
                    w,
                    o,
                )
            },
            weighted: true,
        },
        Case {
            name: "Q3_K",
            block: QK_K,
            block_bytes: size_of::<q3_k::BlockQ3K>(),
            at: q3_k::encode_row_at,
            one: |x, w, o| {
                kq_one(
                    q3_k::quantize_block_ref,
                    q3_k::quantize_block_weighted,
                    x,
                    w,
                    o,
                )
            },
            weighted: true,
        },
        Case {
            name: "Q4_K",
            block: QK_K,
            block_bytes: size_of::<q4_k::BlockQ4K>(),
            at: q4_k::encode_row_at,
            one: |x, w, o| {
                kq_one(
                    q4_k::quantize_block_ref,
                    q4_k::quantize_block_weighted,
                    x,
                    w,
                    o,
                )
            },
            weighted: true,
        },
        Case {
            name: "Q5_K",
            block: QK_K,
            block_bytes: size_of::<q5_k::BlockQ5K>(),
            at: q5_k::encode_row_at,
            one: |x, w, o| {
                kq_one(
                    q5_k::quantize_block_ref,
                    q5_k::quantize_block_weighted,
                    x,
                    w,
                    o,
                )
            },
            weighted: true,
        },
        Case {
            name: "Q6_K",
            block: QK_K,
            block_bytes: size_of::<q6_k::BlockQ6K>(),
            at: q6_k::encode_row_at,
            one: |x, w, o| {
                kq_one(
                    q6_k::quantize_block_ref,
                    q6_k::quantize_block_weighted,
                    x,
                    w,
                    o,
                )
            },
            weighted: true,
        },
        Case {
            name: "Q4_0",
            block: legacy::blocks::QK,
            block_bytes: 18,
            at: legacy::encode_q4_0_at,
            one: |x, _, o| o.copy_from_slice(bytemuck::bytes_of(&legacy::reference::q4_0(x))),
            weighted: false,
        },
        Case {
            name: "Q8_0",
            block: legacy::blocks::QK,
            block_bytes: 34,
            at: legacy::encode_q8_0_at,
            one: |x, _, o| o.copy_from_slice(bytemuck::bytes_of(&legacy::reference::q8_0(x))),
            weighted: false,
        },
    ]
}

/// Rows of `n` values beyond [`Dist`]: subnormals, values near f32's limits, signed zeros
/// and constant rows, and blocks mixing tiny and large magnitudes.
fn extra_rows(n: usize, block: usize, rng: &mut StdRng) -> Vec<(&'static str, Vec<f32>)> {
    let normal = sample(Dist::Normal, n, rng);
    vec![
        (
            "subnormal",
            normal.iter().map(|v| v * 1e-39).collect::<Vec<f32>>(),
        ),
        ("extreme", normal.iter().map(|v| v * 1e30).collect()),
        (
            "signed zeros",
            (0..n)
                .map(|i| if i % 3 == 0 { -0.0 } else { 0.0 })
                .collect(),
        ),
        ("all equal", vec![-0.75; n]),
        (
            "mixed magnitudes",
            normal
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    if (i / block) % 2 == 0 {
                        v * 1e-5
                    } else {
                        v * 1e4
                    }
                })
                .collect(),
        ),
        (
            "few nonzero",
            (0..n)
                .map(|_| {
                    if rng.random::<f32>() < 0.05 {
                        rng.random::<f32>() - 0.5
                    } else {
                        0.0
                    }
                })
                .collect(),
        ),
    ]
}

fn check_case(c: &Case, seed: u64) {
    let mut rng = rng(seed);
    // an odd number of blocks: pairs plus a lone last block
    let n_blocks = if c.block == QK_K { 7 } else { 9 };
    let n = n_blocks * c.block;
    let mut rows: Vec<(String, Vec<f32>)> = Dist::all(c.block)
        .into_iter()
        .map(|d| (format!("{d:?}"), sample(d, n, &mut rng)))
        .collect();
    rows.extend(
        extra_rows(n, c.block, &mut rng)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v)),
    );
    let weight_sets: Vec<Option<Vec<f32>>> = if c.weighted {
        vec![
            None,
            Some((0..n).map(|_| rng.random::<f32>() * 4.0).collect()),
            // some zero weights
            Some(
                (0..n)
                    .map(|i| {
                        if i % 5 == 0 {
                            0.0
                        } else {
                            1.0 + (i % 7) as f32
                        }
                    })
                    .collect(),
            ),
        ]
    } else {
        vec![None]
    };
    for (what, x) in &rows {
        for w in &weight_sets {
            let w = w.as_deref();
            let mut want = vec![0u8; n_blocks * c.block_bytes];
            for b in 0..n_blocks {
                let r = b * c.block..(b + 1) * c.block;
                (c.one)(
                    &x[r.clone()],
                    w.map(|w| &w[r]),
                    &mut want[b * c.block_bytes..(b + 1) * c.block_bytes],
                );
            }
            for level in SimdLevel::available() {
                for sentinel in [0x00u8, 0xFF] {
                    let mut got = vec![sentinel; want.len()];
                    (c.at)(level, x, &mut got, w);
                    if let Some(i) = (0..want.len()).find(|&i| got[i] != want[i]) {
                        panic!(
                            "{} {level:?} on {what} (weights: {}, seed {seed}): byte {i} \
                             (block {}) is {:#04x}, the scalar form wrote {:#04x}",
                            c.name,
                            w.is_some(),
                            i / c.block_bytes,
                            got[i],
                            want[i]
                        );
                    }
                }
            }
        }
    }
}

fn seed() -> u64 {
    let s = std::env::var("GPUQ_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_519d);
    eprintln!("GPUQ_TEST_SEED={s}");
    s
}

#[test]
fn every_vector_copy_writes_the_scalar_bytes() {
    let seed = seed();
    eprintln!("levels on this CPU: {:?}", SimdLevel::available());
    for (i, c) in cases().iter().enumerate() {
        for round in 0..3u64 {
            check_case(c, seed ^ (i as u64) << 32 ^ round);
        }
    }
}

#[test]
fn dispatched_encoders_match_the_detected_copy() {
    let mut rng = rng(seed());
    let level = SimdLevel::detected();
    for c in cases() {
        let n = 5 * c.block;
        let x = sample(Dist::HeavyTailed, n, &mut rng);
        let mut a = vec![0u8; 5 * c.block_bytes];
        let mut b = vec![1u8; 5 * c.block_bytes];
        (c.at)(level, &x, &mut a, None);
        let codec = gpuq::codec::cpu_codec(match c.name {
            "Q2_K" => gpuq::GgmlType::Q2_K,
            "Q3_K" => gpuq::GgmlType::Q3_K,
            "Q4_K" => gpuq::GgmlType::Q4_K,
            "Q5_K" => gpuq::GgmlType::Q5_K,
            "Q6_K" => gpuq::GgmlType::Q6_K,
            "Q4_0" => gpuq::GgmlType::Q4_0,
            _ => gpuq::GgmlType::Q8_0,
        })
        .expect("a CPU codec");
        (codec.encode.expect("an encoder"))(&x, &mut b, None);
        assert_eq!(a, b, "{}", c.name);
    }
}
