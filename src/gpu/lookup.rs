//! The lookup tables some GPU codec kernels read from binding 3: the i-quant grids, the
//! non-linear and FP4 code books, and MXFP4's block-exponent thresholds. Every table is built
//! once, lazily, from the CPU codecs' own tables and functions (never a second copy of
//! llama.cpp's), so the GPU reads exactly what the CPU reference uses. Pure Rust, present in
//! every build; the kernel table names a row's table with [`Lookup`].
//!
//! Binding 3 of such a kernel holds the row's importance weights first (`row_len` f32, only
//! when `params.has_weights == 1`), then the table's words: the shaders find the table at
//! `select(0, params.row_len, params.has_weights == 1)`.

use crate::codec::fp4::{KVALUES_FP4, mxfp4};
use crate::codec::iquants::tables;
use crate::codec::nonlinear::blocks::KVALUES_IQ4NL;
use std::sync::OnceLock;

/// Which table a kernel reads (a column of the kernel table, `gpu::table`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lookup {
    /// The kernel reads no table.
    None,
    /// IQ2_XXS grid: 256 points of 8 bytes (two words each).
    Iq2Xxs,
    /// IQ2_XS grid: 512 points of 8 bytes.
    Iq2Xs,
    /// IQ2_S grid: 1024 points of 8 bytes.
    Iq2S,
    /// IQ3_XXS grid: 256 points of 4 bytes (one word each).
    Iq3Xxs,
    /// IQ3_S grid: 512 points of 4 bytes.
    Iq3S,
    /// IQ1_S / IQ1_M grid: 2048 points of 8 signed bytes (-1, 0, 1).
    Iq1S,
    /// `kvalues_iq4nl`: 16 words, each level as an i32; then the host's default NaN
    /// ([`host_default_nan`]).
    Iq4Nl,
    /// `kvalues_fp4`: 16 words (i32 levels), then MXFP4's block exponents per binade of the
    /// block's largest magnitude ([`FP4_BINADES`] pairs of words, see [`mxfp4_binades`]).
    Fp4,
}

/// Binades of a positive f32 magnitude, indexed `k + 149` for `2^k <= x < 2^(k+1)`
/// (k = -149 ..= 127: subnormals by their leading bit, then the normal exponents), and a last
/// one (index 277) for infinity.
pub const FP4_BINADES: usize = 278;

/// Words of `kvalues_fp4` at the start of the [`Lookup::Fp4`] table.
pub const FP4_LEVEL_WORDS: usize = 16;

/// The words of `lookup`'s table (empty for [`Lookup::None`]), built on first use.
pub fn words(lookup: Lookup) -> &'static [u32] {
    macro_rules! lazy {
        ($build:expr) => {{
            static T: OnceLock<Vec<u32>> = OnceLock::new();
            T.get_or_init(|| $build).as_slice()
        }};
    }
    match lookup {
        Lookup::None => &[],
        Lookup::Iq2Xxs => lazy!(pack_grid(tables::iq2xxs_grid())),
        Lookup::Iq2Xs => lazy!(pack_grid(tables::iq2xs_grid())),
        Lookup::Iq2S => lazy!(pack_grid(tables::iq2s_grid())),
        Lookup::Iq3Xxs => lazy!(pack_grid(tables::iq3xxs_grid())),
        Lookup::Iq3S => lazy!(pack_grid(tables::iq3s_grid())),
        Lookup::Iq1S => lazy!(pack_grid(tables::iq1s_grid())),
        Lookup::Iq4Nl => lazy!(
            KVALUES_IQ4NL
                .iter()
                .map(|&v| v as i32 as u32)
                .chain([host_default_nan()])
                .collect()
        ),
        Lookup::Fp4 => lazy!(fp4_words()),
    }
}

/// The bits of the NaN this CPU makes from an invalid operation (x86-64: 0xffc00000, the
/// "real indefinite"; aarch64: 0x7fc00000). Computed at run time (a folded constant would be
/// the compiler's NaN, not the hardware's). When a codec's inputs are finite, every NaN its
/// CPU code meets is this one, so a GPU kernel that turns every NaN into it writes the same
/// bytes (nonlinear.wgsl).
pub fn host_default_nan() -> u32 {
    let (inf, neg_inf) = (
        std::hint::black_box(f32::INFINITY),
        std::hint::black_box(f32::NEG_INFINITY),
    );
    (inf + neg_inf).to_bits()
}

/// The decoding grid as bytes, 4 per word little-endian: point k's element j is byte
/// `N*k + j` (its value, a small integer, as an i8).
fn pack_grid<const N: usize>(grid: &[[f32; N]]) -> Vec<u32> {
    let bytes: Vec<u8> = grid
        .iter()
        .flat_map(|p| p.iter())
        .map(|&v| {
            let i = v as i8;
            debug_assert_eq!(i as f32, v, "grid values are small integers");
            i as u8
        })
        .collect();
    bytes
        .chunks(4)
        .map(|c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(w)
        })
        .collect()
}

fn fp4_words() -> Vec<u32> {
    let mut w: Vec<u32> = KVALUES_FP4.iter().map(|&v| v as i32 as u32).collect();
    for (threshold, exps) in mxfp4_binades() {
        w.push(threshold);
        w.push(exps);
    }
    w
}

/// The first and one past the last f32 bit pattern of binade `i` (see [`FP4_BINADES`]).
fn binade_bits(i: usize) -> (u32, u32) {
    let k = i as i32 - 149;
    match k {
        // subnormals: leading bit at position k + 149
        ..=-127 => (1u32 << (k + 149), 1u32 << (k + 150)),
        -126..=127 => (((k + 127) as u32) << 23, ((k + 128) as u32) << 23),
        _ => (0x7f80_0000, 0x7f80_0001),
    }
}

/// MXFP4's block exponent (`mxfp4::block_exponent`, which calls the platform's `log2f` as
/// llama.cpp does) as a step function of the block's largest magnitude: for each binade, the
/// first bit pattern `t` at which the exponent steps up (`floor(log2f(x))` reaches the next
/// integer when `log2f` rounds up just below a power of two), and the exponent below and from
/// `t` on (`e_low | e_high << 8`). `t` is one past the binade when there is no step. Found by
/// bisection of the CPU function itself (it is monotone in x); `tests` check it by sampling.
pub fn mxfp4_binades() -> Vec<(u32, u32)> {
    (0..FP4_BINADES)
        .map(|i| {
            let (lo, hi) = binade_bits(i);
            let e = |bits: u32| mxfp4::block_exponent(f32::from_bits(bits)) as u32;
            let e_low = e(lo);
            let e_last = e(hi - 1);
            if e_last == e_low {
                return (hi, e_low | (e_low << 8));
            }
            // first bits in (lo, hi) whose exponent differs from e_low
            let (mut a, mut b) = (lo, hi - 1);
            while b - a > 1 {
                let m = a + (b - a) / 2;
                if e(m) == e_low { a = m } else { b = m }
            }
            (b, e_low | (e_last << 8))
        })
        .collect()
}

/// The MXFP4 block exponent of a block whose largest magnitude has bits `amax` (> 0), read from
/// [`mxfp4_binades`] as the shader does (`fp4.wgsl`, `mx_exponent`).
pub fn mxfp4_exponent_from_table(table: &[(u32, u32)], amax: u32) -> u8 {
    let i = if amax >= 0x7f80_0000 {
        FP4_BINADES - 1
    } else if amax < 0x0080_0000 {
        (31 - amax.leading_zeros()) as usize
    } else {
        ((amax >> 23) + 149 - 127) as usize
    };
    let (t, e) = table[i];
    (if amax >= t { e >> 8 } else { e } & 0xff) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_pack_the_cpu_decoding_grids() {
        let w = words(Lookup::Iq2Xxs);
        assert_eq!(w.len(), 256 * 2);
        let g = tables::iq2xxs_grid();
        for (k, p) in g.iter().enumerate() {
            for (j, &v) in p.iter().enumerate() {
                let byte = (w[(8 * k + j) / 4] >> (8 * ((8 * k + j) % 4))) as u8 as i8;
                assert_eq!(byte as f32, v);
            }
        }
        assert_eq!(words(Lookup::Iq3S).len(), 512);
        assert_eq!(words(Lookup::Iq1S).len(), 2048 * 2);
        let one = words(Lookup::Iq1S);
        assert!(one.iter().all(|&w| {
            w.to_le_bytes()
                .iter()
                .all(|&b| b as i8 >= -1 && b as i8 <= 1)
        }));
        assert_eq!(words(Lookup::Iq4Nl)[0] as i32, -127);
        assert_eq!(words(Lookup::Iq4Nl).len(), 17);
        // every invalid operation gives the same NaN
        let (z, inf) = (
            std::hint::black_box(0.0f32),
            std::hint::black_box(f32::INFINITY),
        );
        for nan in [z * inf, z / z, inf / inf, (-inf) + inf] {
            assert_eq!(nan.to_bits(), host_default_nan());
        }
        assert_eq!(words(Lookup::Fp4).len(), FP4_LEVEL_WORDS + 2 * FP4_BINADES);
    }

    #[test]
    fn mxfp4_exponent_table_equals_the_cpu_function() {
        let table = mxfp4_binades();
        let mut s = 0x2545_f491u32;
        let mut n = 0;
        for (i, &(t, _)) in table.iter().enumerate() {
            let (lo, hi) = binade_bits(i);
            let mut probe = vec![lo, hi - 1, t.saturating_sub(1), t, t.saturating_add(1)];
            for _ in 0..64 {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                probe.push(lo + s % (hi - lo));
            }
            for d in 0..256u32 {
                probe.push(t.wrapping_sub(d));
                probe.push(t.wrapping_add(d));
            }
            for bits in probe {
                if bits < lo || bits >= hi {
                    continue;
                }
                assert_eq!(
                    mxfp4_exponent_from_table(&table, bits),
                    mxfp4::block_exponent(f32::from_bits(bits)),
                    "amax bits {bits:#010x}"
                );
                n += 1;
            }
        }
        assert!(n > 50_000, "{n} probes");
        // some binades do step: log2f rounds up just below large powers of two
        let steps: Vec<usize> = (0..FP4_BINADES)
            .filter(|&i| table[i].0 != binade_bits(i).1)
            .collect();
        eprintln!("{} of {FP4_BINADES} binades step: {steps:?}", steps.len());
        assert!(!steps.is_empty());
    }
}
