//! C's float -> integer conversions whose exact x86-64 behaviour the legacy and ternary bytes
//! depend on. (The scale searches the weighted encoders use are shared with the k-quants:
//! `crate::codec::kquants::search`.)

/// C's float -> integer conversion as x86-64 performs it (`cvttss2si`): truncation toward
/// zero; NaN and out-of-range values give `i32::MIN` (the "integer indefinite" value).
/// ggml's `(int8_t)(x + 8.5f)` is this followed by keeping the low byte.
///
/// Written without Rust's saturating `as` (whose NaN and overflow fix-ups keep LLVM from
/// vectorizing the encoders' loops): in range the truncation is exact, outside it the select
/// gives `i32::MIN`, so a vectorized loop is one `cvttps2dq` and a blend per lane.
#[inline(always)]
pub fn c_trunc_i32(x: f32) -> i32 {
    // false for NaN
    let in_range = (-2_147_483_648.0..2_147_483_648.0).contains(&x);
    if in_range {
        // SAFETY: `x` is finite and truncates to a value within i32's range
        unsafe { x.to_int_unchecked::<i32>() }
    } else {
        i32::MIN
    }
}

/// C `(int8_t)x` for a float `x` (see [`c_trunc_i32`]).
#[inline(always)]
pub fn c_to_i8(x: f32) -> i8 {
    c_trunc_i32(x) as i8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// C's conversion spelled out: NaN and |x| past i32 give i32::MIN, else truncation.
    #[allow(clippy::manual_range_contains)]
    fn oracle(x: f32) -> i32 {
        if x.is_nan() || x < -2_147_483_648.0 || x >= 2_147_483_648.0 {
            i32::MIN
        } else {
            x.trunc() as i64 as i32
        }
    }

    #[test]
    fn the_branch_free_conversion_is_cs() {
        let edges = [
            0.0f32,
            -0.0,
            0.5,
            -0.5,
            0.999_999_94,
            -0.999_999_94,
            1.0,
            -1.0,
            127.5,
            -128.5,
            255.9,
            2_147_483_520.0,
            -2_147_483_648.0,
            2_147_483_648.0,
            -2_147_483_904.0,
            f32::MAX,
            f32::MIN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            f32::MIN_POSITIVE,
            1e-45,
        ];
        for x in edges {
            assert_eq!(c_trunc_i32(x), oracle(x), "{x:e}");
            assert_eq!(c_to_i8(x), oracle(x) as i8, "{x:e}");
        }
        // every 97th bit pattern: all exponents, both signs, NaN payloads
        for bits in (0..=u32::MAX).step_by(97) {
            let x = f32::from_bits(bits);
            assert_eq!(c_trunc_i32(x), oracle(x), "{bits:#x}");
        }
    }
}
