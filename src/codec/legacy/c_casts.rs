//! C's float -> integer conversions whose exact x86-64 behaviour the legacy and ternary bytes
//! depend on. (The scale searches the weighted encoders use are shared with the k-quants:
//! `crate::codec::kquants::search`.)

/// C's float -> integer conversion as x86-64 performs it (`cvttss2si`): truncation toward
/// zero; NaN and out-of-range values give `i32::MIN` (the "integer indefinite" value).
/// ggml's `(int8_t)(x + 8.5f)` is this followed by keeping the low byte.
#[inline]
pub fn c_trunc_i32(x: f32) -> i32 {
    if x.is_nan() || !(-2_147_483_648.0..2_147_483_648.0).contains(&x) {
        i32::MIN
    } else {
        x as i32
    }
}

/// C `(int8_t)x` for a float `x` (see [`c_trunc_i32`]).
#[inline]
pub fn c_to_i8(x: f32) -> i8 {
    c_trunc_i32(x) as i8
}
