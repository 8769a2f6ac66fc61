// gpuq: helpers shared by every shader in shaders/. The runtime (src/gpu/wgsl.rs, `compose`)
// prepends this file to each shader before compiling it; tests/naga_shaders.rs does the same.
//
// Portability (Metal, Vulkan, DX12): no f16 storage, no 64-bit atomics, no subgroup ops.
// Bytes travel as u32 words. Conversions whose bits matter are done with integer operations
// only, so no driver's float rounding, denormal flushing or NaN canonicalisation can touch them.

// Invocations per workgroup; a pipeline sets it from its key (gpu::kernels::KernelKey).
override WG: u32 = 64u;

// The kernel variant a family entry point (`encode`, `decode`) is specialised for, set per
// pipeline from its key (gpu::table::Variant): the ggml type id, blocks per invocation, bytes
// per block. Shaders select the type with `switch TY`.
override TY: u32 = 0u;
override BPG: u32 = 1u;
override BB: u32 = 4u;

// Uniform parameters of a codec dispatch (binding 0 of every codec shader).
// Rust twin: gpu::codecs::CodecParams (same field order, 8 x u32).
struct CodecParams {
    // blocks in this tile (all rows of the tile together)
    n_blocks: u32,
    // invocations with work: ceil(n_blocks / blocks_per_invocation)
    n_groups: u32,
    // elements per row
    row_len: u32,
    // blocks per row (row_len / block elements)
    blocks_per_row: u32,
    // first word of the tile in `src` / `dst`
    src_offset: u32,
    dst_offset: u32,
    // 1 when binding 3 holds row_len per-column importance weights, else 0 (dummy buffer)
    has_weights: u32,
    // always 0 (Rust: `_pad`); an opaque zero the compiler cannot fold (kquants.wgsl `keep`)
    zero: u32,
}

// The flat index of this invocation in a dispatch that may be split in 2-D
// (x up to max_compute_workgroups_per_dimension, y the rest).
fn flat_invocation(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * WG;
}

// Byte `i` (0..3) of a little-endian word.
fn byte_of(word: u32, i: u32) -> u32 {
    return (word >> (8u * i)) & 0xffu;
}

// f32 bits -> f16 bits, round to nearest even, overflow to infinity, subnormals kept.
// NaN: sign | 0x7e00 | top 9 payload bits (the rule of half::f16::from_f32 and of x86 F16C).
// Integer operations only. CPU twin: codec::float::f32_to_f16_bits.
fn f32_bits_to_f16_bits(x: u32) -> u32 {
    let sign = (x >> 16u) & 0x8000u;
    let a = x & 0x7fffffffu;
    if (a > 0x7f800000u) {
        return sign | 0x7e00u | ((a >> 13u) & 0x3ffu);
    }
    // 65520 = 0x477ff000 is halfway between 65504 (max f16) and 65536: ties go to even = inf.
    if (a >= 0x477ff000u) {
        return sign | 0x7c00u;
    }
    if (a >= 0x38800000u) {
        // normal f16: rebias the exponent (127 -> 15), keep 10 mantissa bits, round the 13 dropped
        var h = (((a >> 23u) - 112u) << 10u) | ((a >> 13u) & 0x3ffu);
        let rem = a & 0x1fffu;
        if (rem > 0x1000u || (rem == 0x1000u && (h & 1u) == 1u)) {
            h = h + 1u;
        }
        return sign | h;
    }
    // subnormal f16 (or zero): value = m * 2^(e - 150), f16 unit 2^-24 -> h = m >> (126 - e)
    let e = a >> 23u;
    if (e < 102u) {
        return sign;
    }
    let m = (a & 0x7fffffu) | 0x800000u;
    let shift = 126u - e;
    var h = m >> shift;
    let rem = m & ((1u << shift) - 1u);
    let half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (h & 1u) == 1u)) {
        h = h + 1u;
    }
    return sign | h;
}

// f16 bits -> f32 bits, exact; NaN keeps its payload and is quieted (sign | 0x7fc00000 |
// payload << 13), as half::f16::to_f32 does. CPU twin: codec::float::f16_bits_to_f32.
fn f16_bits_to_f32_bits(h: u32) -> u32 {
    let sign = (h & 0x8000u) << 16u;
    let e = (h >> 10u) & 0x1fu;
    let m = h & 0x3ffu;
    if (e == 0x1fu) {
        if (m == 0u) {
            return sign | 0x7f800000u;
        }
        return sign | 0x7fc00000u | (m << 13u);
    }
    if (e != 0u) {
        return sign | ((e + 112u) << 23u) | (m << 13u);
    }
    if (m == 0u) {
        return sign;
    }
    // subnormal: normalise. m has its top bit at position p (0..9); value = m * 2^-24.
    let p = 31u - countLeadingZeros(m);
    return sign | ((p + 103u) << 23u) | ((m << (23u - p)) & 0x7fffffu);
}

// f32 bits -> bf16 bits as ggml_compute_fp32_to_bf16: NaN quieted keeping sign and top
// payload bits, everything else rounded to nearest even (overflowing to infinity).
// CPU twin: codec::float::f32_to_bf16_bits.
fn f32_bits_to_bf16_bits(u: u32) -> u32 {
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        return ((u >> 16u) | 64u) & 0xffffu;
    }
    return ((u + (0x7fffu + ((u >> 16u) & 1u))) >> 16u) & 0xffffu;
}

// bf16 bits -> f32 bits (exact). CPU twin: codec::float::bf16_bits_to_f32.
fn bf16_bits_to_f32_bits(h: u32) -> u32 {
    return (h & 0xffffu) << 16u;
}

// ---------------------------------------------------------------- integer IEEE arithmetic
// IEEE binary32 operations in integer arithmetic (round to nearest even, subnormals kept), for
// the values bytes depend on: WGSL's `/` may be off by 2.5 ULP, `sqrt` is loosely specified,
// and Metal may fuse `a*b + c`. Rust twins: tests/codec_legacy_wgsl.rs (`soft`) and
// tests/gpu_kquants.rs (`soft_sqrt`).
//
// LOOP BUDGET: these helpers contain no loops. Mesa's llvmpipe (lavapipe, the CI driver; seen
// with Mesa 22.3) counts the iterations of *all* loops of one shader run on one SIMD group
// (gallivm `LP_MAX_TGSI_LOOP_ITERATIONS`, 65535, one counter shared by every loop) and, once
// the count is spent, silently leaves every loop after its current iteration: later loops
// run once, and an encoder writes only the first word of its output. The k-quant encoders
// call these helpers thousands of times per block, so a 27-step division loop alone would
// spend the budget (kquants.wgsl lists each encoder's count).

// Rounds `sig` (leading bit at bit 26, 3 guard/round/sticky bits below the 24-bit
// significand) with biased exponent `e` (value = sig * 2^(e - 153)) to nearest even and packs.
fn round_pack(sign: u32, e_in: i32, sig_in: u32) -> u32 {
    var e = e_in;
    var sig = sig_in;
    if (e >= 255) {
        return sign | 0x7f800000u;
    }
    if (e <= 0) {
        // subnormal result: shift right by 1 - e, keeping a sticky bit
        let sh = u32(1 - e);
        if (sh >= 27u) {
            sig = select(0u, 1u, sig != 0u);
        } else {
            let lost = sig & ((1u << sh) - 1u);
            sig = (sig >> sh) | select(0u, 1u, lost != 0u);
        }
        e = 1;
    }
    let low = sig & 7u;
    var m = sig >> 3u;
    if (low > 4u || (low == 4u && (m & 1u) == 1u)) {
        m = m + 1u;
    }
    // (e - 1) << 23 plus the significand with its implicit bit: a carry out of the
    // significand bumps the exponent, as it must.
    let bits = (u32(e - 1) << 23u) + m;
    if (bits >= 0x7f800000u) {
        return sign | 0x7f800000u;
    }
    return sign | bits;
}

// Significand (with implicit bit, 24 bits) and unbiased-style exponent of a finite nonzero
// f32 magnitude `a`, subnormals normalised: value = m * 2^(e - 150).
fn unpack_sig(a: u32) -> vec2<i32> {
    let ef = i32(a >> 23u);
    var m = a & 0x7fffffu;
    if (ef == 0) {
        // subnormal: normalise so the leading bit is bit 23
        let sh = countLeadingZeros(m) - 8u;
        m = m << sh;
        return vec2<i32>(i32(m), 1 - i32(sh));
    }
    return vec2<i32>(i32(m | 0x800000u), ef);
}

fn is_nan_bits(a: u32) -> bool {
    return (a & 0x7fffffffu) > 0x7f800000u;
}

// IEEE binary32 a * b, round to nearest even, in integer arithmetic.
fn soft_mul(x: f32, y: f32) -> f32 {
    let a = bitcast<u32>(x);
    let b = bitcast<u32>(y);
    let sign = (a ^ b) & 0x80000000u;
    let aa = a & 0x7fffffffu;
    let ab = b & 0x7fffffffu;
    if (is_nan_bits(a)) {
        return bitcast<f32>(a | 0x400000u);
    }
    if (is_nan_bits(b)) {
        return bitcast<f32>(b | 0x400000u);
    }
    if (aa == 0x7f800000u || ab == 0x7f800000u) {
        if (aa == 0u || ab == 0u) {
            return bitcast<f32>(0x7fc00000u);
        }
        return bitcast<f32>(sign | 0x7f800000u);
    }
    if (aa == 0u || ab == 0u) {
        return bitcast<f32>(sign);
    }
    let ua = unpack_sig(aa);
    let ub = unpack_sig(ab);
    let ma = u32(ua.x);
    let mb = u32(ub.x);
    // 24 x 24 -> 48-bit product as hi * 2^24 + lo, from 12-bit limbs
    let a1 = ma >> 12u;
    let a0 = ma & 0xfffu;
    let b1 = mb >> 12u;
    let b0 = mb & 0xfffu;
    let mid = a1 * b0 + a0 * b1;
    let lo_full = a0 * b0 + ((mid & 0xfffu) << 12u);
    let lo = lo_full & 0xffffffu;
    let hi = a1 * b1 + (mid >> 12u) + (lo_full >> 24u);
    // P in [2^46, 2^48): bring its leading bit to bit 26
    var s = 20u;
    if (hi >= 0x800000u) {
        s = 21u;
    }
    let sticky = select(0u, 1u, (lo & ((1u << s) - 1u)) != 0u);
    let sig = (hi << (24u - s)) | (lo >> s) | sticky;
    let e = ua.y + ub.y - 147 + i32(s);
    return bitcast<f32>(round_pack(sign, e, sig));
}

// IEEE binary32 a / b, round to nearest even, by integer long division.
fn soft_div(x: f32, y: f32) -> f32 {
    let a = bitcast<u32>(x);
    let b = bitcast<u32>(y);
    let sign = (a ^ b) & 0x80000000u;
    let aa = a & 0x7fffffffu;
    let ab = b & 0x7fffffffu;
    if (is_nan_bits(a)) {
        return bitcast<f32>(a | 0x400000u);
    }
    if (is_nan_bits(b)) {
        return bitcast<f32>(b | 0x400000u);
    }
    if (aa == 0x7f800000u) {
        if (ab == 0x7f800000u) {
            return bitcast<f32>(0x7fc00000u);
        }
        return bitcast<f32>(sign | 0x7f800000u);
    }
    if (ab == 0x7f800000u) {
        return bitcast<f32>(sign);
    }
    if (ab == 0u) {
        if (aa == 0u) {
            return bitcast<f32>(0x7fc00000u);
        }
        return bitcast<f32>(sign | 0x7f800000u);
    }
    if (aa == 0u) {
        return bitcast<f32>(sign);
    }
    let ua = unpack_sig(aa);
    let ub = unpack_sig(ab);
    let ma = u32(ua.x);
    let mb = u32(ub.x);
    // q = floor(ma * 2^n / mb) with n chosen so q has its leading bit at bit 26, by long
    // division in exact u32 digits (no loop: see LOOP BUDGET above): the leading bit, three
    // 8-bit digits, then the last n - 24 bits. rem < mb < 2^24, so rem << 8 fits in 32 bits.
    var n = 26u;
    if (ma < mb) {
        n = 27u;
    }
    var q = ma / mb;
    var rem = ma % mb;
    var t = rem << 8u;
    q = (q << 8u) | (t / mb);
    rem = t % mb;
    t = rem << 8u;
    q = (q << 8u) | (t / mb);
    rem = t % mb;
    t = rem << 8u;
    q = (q << 8u) | (t / mb);
    rem = t % mb;
    let k = n - 24u;
    t = rem << k;
    q = (q << k) | (t / mb);
    rem = t % mb;
    let sig = q | select(0u, 1u, rem != 0u);
    let e = ua.y - ub.y - i32(n) + 153;
    return bitcast<f32>(round_pack(sign, e, sig));
}

// One step of the digit-by-digit square root of M = m << s (soft_sqrt): brings down bit pair
// p (bits 51 - 2p and 50 - 2p of M) into the remainder and appends one bit to the root.
// `st` is (root, remainder).
fn sqrt_digit(st: vec2<u32>, m: u32, s: u32, p: u32) -> vec2<u32> {
    let hi_bit = 51u - 2u * p;
    var two = 0u;
    if (hi_bit >= s) {
        two = ((m >> (hi_bit - s)) & 1u) << 1u;
    }
    if (hi_bit - 1u >= s) {
        two = two | ((m >> (hi_bit - 1u - s)) & 1u);
    }
    let rem = (st.y << 2u) | two;
    let trial = (st.x << 2u) | 1u;
    if (rem >= trial) {
        return vec2<u32>((st.x << 1u) | 1u, rem - trial);
    }
    return vec2<u32>(st.x << 1u, rem);
}

// IEEE binary32 sqrt(x), correctly rounded, by digit-by-digit integer square root.
// x = m * 2^E with m in [2^23, 2^24); M = m << s (s = 27 or 28, so E - s is even) lies in
// [2^50, 2^52) and floor(sqrt(M)) has exactly 26 bits: 24 of significand, a guard bit and a
// round bit, with the remainder as sticky. sqrt(x) = sqrt(M) * 2^((E - s) / 2).
fn soft_sqrt(x: f32) -> f32 {
    let a = bitcast<u32>(x);
    if (is_nan_bits(a)) {
        return bitcast<f32>(a | 0x400000u);
    }
    if ((a & 0x7fffffffu) == 0u) {
        return x; // +-0
    }
    if (a >= 0x80000000u) {
        return bitcast<f32>(0x7fc00000u);
    }
    if (a == 0x7f800000u) {
        return x;
    }
    let u = unpack_sig(a);
    let m = u32(u.x);
    let e = u.y - 150;
    var s = 28u;
    if ((e & 1) != 0) {
        s = 27u;
    }
    let k = (e - i32(s)) / 2;
    // 26 pairs of bits of M, from bits 51..50 down to 1..0, one `sqrt_digit` each, written
    // out rather than looped (LOOP BUDGET above)
    var st = vec2<u32>(0u, 0u);
    st = sqrt_digit(st, m, s, 0u);
    st = sqrt_digit(st, m, s, 1u);
    st = sqrt_digit(st, m, s, 2u);
    st = sqrt_digit(st, m, s, 3u);
    st = sqrt_digit(st, m, s, 4u);
    st = sqrt_digit(st, m, s, 5u);
    st = sqrt_digit(st, m, s, 6u);
    st = sqrt_digit(st, m, s, 7u);
    st = sqrt_digit(st, m, s, 8u);
    st = sqrt_digit(st, m, s, 9u);
    st = sqrt_digit(st, m, s, 10u);
    st = sqrt_digit(st, m, s, 11u);
    st = sqrt_digit(st, m, s, 12u);
    st = sqrt_digit(st, m, s, 13u);
    st = sqrt_digit(st, m, s, 14u);
    st = sqrt_digit(st, m, s, 15u);
    st = sqrt_digit(st, m, s, 16u);
    st = sqrt_digit(st, m, s, 17u);
    st = sqrt_digit(st, m, s, 18u);
    st = sqrt_digit(st, m, s, 19u);
    st = sqrt_digit(st, m, s, 20u);
    st = sqrt_digit(st, m, s, 21u);
    st = sqrt_digit(st, m, s, 22u);
    st = sqrt_digit(st, m, s, 23u);
    st = sqrt_digit(st, m, s, 24u);
    st = sqrt_digit(st, m, s, 25u);
    let root = st.x;
    let rem = st.y;
    let sig = (root << 1u) | select(0u, 1u, rem != 0u);
    return bitcast<f32>(round_pack(0u, k + 152, sig));
}

