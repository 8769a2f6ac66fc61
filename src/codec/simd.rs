//! Runtime dispatch of the hot CPU encoders to the widest vector instructions the CPU has.
//!
//! The encoders are written as plain Rust over fixed-size lane arrays (see
//! [`kquants::search_lanes`](super::kquants::search_lanes)): every lane performs the scalar
//! reference's f32 operations in the reference's order, so whatever vector width the compiler
//! picks, the bytes are the same. What differs between CPUs is only which instructions the
//! compiler may use. [`dispatch_encode_row!`] compiles one row encoder twice, for the target's
//! baseline (SSE2 on x86-64, NEON on aarch64, which every aarch64 CPU and so Apple Silicon
//! has) and, on x86-64, once more with AVX2 enabled, and picks the AVX2 copy at run time when
//! the CPU has it (`is_x86_feature_detected!`, cached by std).
//!
//! Rust never contracts `a * b + c` into a fused multiply-add, with or without the `fma`
//! feature, so enabling a feature cannot change a result; the unit tests of each encoder
//! still compare the copies byte for byte on random rows (see [`SimdLevel::available`]).
//!
//! AVX-512 is not offered: its target features are stable only from Rust 1.89, above this
//! crate's minimum Rust version.
//!
//! `GPUQ_SIMD=baseline` in the environment forces the baseline copies (for comparisons and
//! benchmarks).

use std::sync::OnceLock;

/// Which copy of a dispatched encoder runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimdLevel {
    /// Compiled for the target's baseline features only.
    Baseline,
    /// x86-64 with AVX2 (256-bit integer and float vectors).
    Avx2,
}

impl SimdLevel {
    /// The level dispatched encoders use on this CPU (AVX2 when present unless
    /// `GPUQ_SIMD=baseline`).
    pub fn detected() -> SimdLevel {
        static LEVEL: OnceLock<SimdLevel> = OnceLock::new();
        *LEVEL.get_or_init(|| {
            let forced_baseline = std::env::var("GPUQ_SIMD")
                .map(|v| v.eq_ignore_ascii_case("baseline"))
                .unwrap_or(false);
            if !forced_baseline && Self::cpu_has_avx2() {
                SimdLevel::Avx2
            } else {
                SimdLevel::Baseline
            }
        })
    }

    /// Every level this CPU can run (the baseline first).
    pub fn available() -> Vec<SimdLevel> {
        let mut v = vec![SimdLevel::Baseline];
        if Self::cpu_has_avx2() {
            v.push(SimdLevel::Avx2);
        }
        v
    }

    fn cpu_has_avx2() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx2")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }
}

/// Defines a row encoder (`EncodeRowFn`) `$name` that runs `$imp` (an `#[inline(always)]`
/// function of the same signature, whose callees are `#[inline(always)]` too so they are
/// compiled into each copy) in the copy for [`SimdLevel::detected`], and `$at`, which runs the
/// copy for a given level (tests; a level the CPU lacks panics).
macro_rules! dispatch_encode_row {
    ($(#[$m:meta])* $vis:vis fn $name:ident, $at:ident => $imp:path) => {
        $(#[$m])*
        $vis fn $name(src: &[f32], dst: &mut [u8], weights: Option<&[f32]>) {
            $at($crate::codec::simd::SimdLevel::detected(), src, dst, weights)
        }

        /// The copy of the encoder compiled for `level` (which the CPU must have).
        $vis fn $at(
            level: $crate::codec::simd::SimdLevel,
            src: &[f32],
            dst: &mut [u8],
            weights: Option<&[f32]>,
        ) {
            match level {
                #[cfg(target_arch = "x86_64")]
                $crate::codec::simd::SimdLevel::Avx2 => {
                    #[target_feature(enable = "avx2")]
                    unsafe fn avx2(src: &[f32], dst: &mut [u8], weights: Option<&[f32]>) {
                        $imp(src, dst, weights)
                    }
                    assert!(
                        std::arch::is_x86_feature_detected!("avx2"),
                        "this CPU has no AVX2"
                    );
                    // SAFETY: the CPU has AVX2 (checked just above).
                    unsafe { avx2(src, dst, weights) }
                }
                #[cfg(not(target_arch = "x86_64"))]
                $crate::codec::simd::SimdLevel::Avx2 => panic!("AVX2 exists on x86-64 only"),
                $crate::codec::simd::SimdLevel::Baseline => $imp(src, dst, weights),
            }
        }
    };
}
pub(crate) use dispatch_encode_row;
