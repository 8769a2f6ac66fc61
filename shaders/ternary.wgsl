// Ternary codecs TQ1_0 and TQ2_0 (256-element blocks of trits times one f16 scale) and the
// BitNet b1.58 absmean ternarization. CPU twins: src/codec/ternary.rs (ggml's
// quantize_row_tq1_0_ref / _tq2_0_ref, dequantize_row_tq1_0 / _tq2_0) and src/codec/absmean.rs
// (block sums, scaled encoders); outputs must agree byte for byte / bit for bit
// (tests/gpu_ternary.rs). Binding layout: gpu::codecs; common.wgsl is prepended.
//
// Exactness by construction:
// - the block scale's inverse `1/amax` is a correctly rounded division done in integer
//   arithmetic (`t_div`), since WGSL's `/` may be off by 2.5 ULP;
// - `x * id` feeds only a rounding (no addition, so nothing can be fused); it is done in
//   hardware when its result cannot depend on subnormal flushing, else in integer arithmetic
//   (`t_mul`);
// - lroundf is built from trunc and an exact fraction, not from WGSL's round (ties to even);
// - f32 -> f16 uses common.wgsl's integer routine;
// - the absmean block sums are exact integer sums of fixed-point terms (order independent,
//   so no reassociation can change them), converted to f32 in integer code;
// - decoders build (q - 1) * d from the bits of d (exact values; x86's NaN rules).
//
// Encoders and decoders give each invocation two blocks (TQ1_0 2 x 54 = 27 words, TQ2_0
// 2 x 66 = 33), so every output word has one writer; a second block past n_blocks is written
// as zeros. The absmean block-sum pass takes one block per invocation.

@group(0) @binding(0) var<uniform> params: CodecParams;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
// absmean encoders: per row of the tile, [bits of 1/s, f16 bits of s]
@group(0) @binding(3) var<storage, read> weights: array<u32>;

// ------------------------------------------------------------ integer IEEE arithmetic

// Index of the highest set bit of the 64-bit (hi, lo); (hi, lo) != 0.
fn t_top_bit(hi: u32, lo: u32) -> i32 {
    if (hi != 0u) {
        return 63 - i32(countLeadingZeros(hi));
    }
    return 31 - i32(countLeadingZeros(lo));
}

// Bit `i` (0..63) of (hi, lo).
fn t_bit(hi: u32, lo: u32, i: i32) -> u32 {
    if (i >= 32) {
        return (hi >> u32(i - 32)) & 1u;
    }
    return (lo >> u32(i)) & 1u;
}

// Any of the bits below bit `i` (0..64) of (hi, lo) set.
fn t_low_nonzero(hi: u32, lo: u32, i: i32) -> bool {
    if (i >= 64) {
        return hi != 0u || lo != 0u;
    }
    if (i > 32) {
        return lo != 0u || (hi & ((1u << u32(i - 32)) - 1u)) != 0u;
    }
    if (i == 32) {
        return lo != 0u;
    }
    if (i <= 0) {
        return false;
    }
    return (lo & ((1u << u32(i)) - 1u)) != 0u;
}

// (hi, lo) >> s for 1 <= s <= 63; only the low word of the result is kept (callers shift
// down to at most 25 bits).
fn t_shr_lo(hi: u32, lo: u32, s: i32) -> u32 {
    if (s >= 32) {
        return hi >> u32(s - 32);
    }
    return (lo >> u32(s)) | (hi << u32(32 - s));
}

// f32 bits of sign * N * 2^exp2 for the 64-bit integer N = (hi, lo), rounded to nearest
// even, subnormals kept, overflow to infinity. CPU twin: `(N as f64 * 2^exp2) as f32`.
fn t_pack_rne(sign: u32, exp2: i32, hi: u32, lo: u32) -> u32 {
    if (hi == 0u && lo == 0u) {
        return sign;
    }
    let p = t_top_bit(hi, lo);
    // keep 24 bits, or fewer where the result is subnormal (unit 2^-149)
    let shift = max(p - 23, -149 - exp2);
    var sig = 0u;
    if (shift <= 0) {
        sig = lo << u32(-shift);
    } else {
        if (shift <= 63) {
            sig = t_shr_lo(hi, lo, shift);
        }
        let guard = select(0u, t_bit(hi, lo, shift - 1), shift - 1 <= 63);
        let sticky = t_low_nonzero(hi, lo, shift - 1);
        if (guard == 1u && (sticky || (sig & 1u) == 1u)) {
            sig = sig + 1u;
        }
    }
    // normal: value = sig * 2^(shift + exp2) with sig in [2^23, 2^24]; the biased exponent
    // minus one goes above the significand's implicit bit (a carry bumps the exponent).
    // subnormal: shift + exp2 = -149 and the field is 0.
    let base = shift + exp2 + 149;
    if (base >= 255) {
        return sign | 0x7f800000u;
    }
    let bits = (u32(base) << 23u) + sig;
    if (bits >= 0x7f800000u) {
        return sign | 0x7f800000u;
    }
    return sign | bits;
}

// Significand (implicit bit included; subnormals raw) and effective biased exponent
// (1 for subnormals) of a finite magnitude: value = m * 2^(e - 150).
fn t_sig(a: u32) -> u32 {
    if ((a >> 23u) == 0u) {
        return a & 0x7fffffu;
    }
    return (a & 0x7fffffu) | 0x800000u;
}

fn t_exp(a: u32) -> i32 {
    return max(i32(a >> 23u), 1);
}

// IEEE binary32 x * y (round to nearest even) in integer arithmetic. A NaN result is the
// default quiet NaN (the callers only test it for being NaN).
fn t_mul(x: u32, y: u32) -> u32 {
    let sign = (x ^ y) & 0x80000000u;
    let a = x & 0x7fffffffu;
    let b = y & 0x7fffffffu;
    if (a > 0x7f800000u || b > 0x7f800000u) {
        return 0x7fc00000u;
    }
    if (a == 0x7f800000u || b == 0x7f800000u) {
        if (a == 0u || b == 0u) {
            return 0x7fc00000u;
        }
        return sign | 0x7f800000u;
    }
    if (a == 0u || b == 0u) {
        return sign;
    }
    let ma = t_sig(a);
    let mb = t_sig(b);
    // 24 x 24 -> 48 bits from 16-bit halves
    let a0 = ma & 0xffffu;
    let a1 = ma >> 16u;
    let b0 = mb & 0xffffu;
    let b1 = mb >> 16u;
    let ll = a0 * b0;
    let mid = a1 * b0 + a0 * b1;
    let lo = ll + (mid << 16u);
    let carry = select(0u, 1u, lo < ll);
    let hi = a1 * b1 + (mid >> 16u) + carry;
    return t_pack_rne(sign, t_exp(a) - 150 + t_exp(b) - 150, hi, lo);
}

// Significand normalised to a leading bit at 23 and its exponent: value = m * 2^(e - 150).
fn t_norm(a: u32) -> vec2<i32> {
    let m = t_sig(a);
    let sh = i32(countLeadingZeros(m)) - 8;
    return vec2<i32>(i32(m << u32(sh)), t_exp(a) - sh);
}

// IEEE binary32 x / y (round to nearest even) in integer arithmetic (restoring division).
fn t_div(x: u32, y: u32) -> u32 {
    let sign = (x ^ y) & 0x80000000u;
    let a = x & 0x7fffffffu;
    let b = y & 0x7fffffffu;
    if (a > 0x7f800000u || b > 0x7f800000u) {
        return 0x7fc00000u;
    }
    if (a == 0x7f800000u) {
        if (b == 0x7f800000u) {
            return 0x7fc00000u;
        }
        return sign | 0x7f800000u;
    }
    if (b == 0x7f800000u) {
        return sign;
    }
    if (b == 0u) {
        if (a == 0u) {
            return 0x7fc00000u;
        }
        return sign | 0x7f800000u;
    }
    if (a == 0u) {
        return sign;
    }
    let nx = t_norm(a);
    let ny = t_norm(b);
    let mx = u32(nx.x);
    let my = u32(ny.x);
    // q = floor(mx * 2^26 / my), 26 or 27 bits; the remainder is the sticky bit
    var r = mx;
    var q = 0u;
    if (r >= my) {
        q = 1u;
        r = r - my;
    }
    for (var k = 0; k < 26; k = k + 1) {
        r = r << 1u;
        q = q << 1u;
        if (r >= my) {
            r = r - my;
            q = q | 1u;
        }
    }
    let n = (q << 1u) | select(0u, 1u, r != 0u);
    return t_pack_rne(sign, nx.y - ny.y - 27, 0u, n);
}

// -------------------------------------------------------------------- the codecs

// Element k of tile block b as f32 bits.
fn elem(b: u32, k: u32) -> u32 {
    return src[params.src_offset + b * 256u + k];
}

var<private> out_words: array<u32, 33>;

fn put_byte(off: u32, v: u32) {
    out_words[off >> 2u] = out_words[off >> 2u] | ((v & 0xffu) << (8u * (off & 3u)));
}

// ggml's block scale: d = amax, id = d != 0 ? 1/d : 0 (amax as `amax > a ? amax : a`,
// so a NaN lets the next element through, as the C loop does).
fn block_amax(b: u32) -> u32 {
    // compared as integers (magnitudes order like their bits); a NaN on either side makes
    // the C comparison false, so `a` is taken
    var amax = 0u;
    for (var k = 0u; k < 256u; k = k + 1u) {
        let a = elem(b, k) & 0x7fffffffu;
        let keep = amax <= 0x7f800000u && a <= 0x7f800000u && amax > a;
        amax = select(a, amax, keep);
    }
    return amax;
}

// x * id exactly as IEEE: in hardware for finite x when neither a subnormal input nor a subnormal result
// can change the trit (|id| in [2^-100, 2^100]: a subnormal x then gives |x * id| < 2^-26,
// trit 0 either way), else in integer arithmetic.
fn scaled(x: u32, id: u32, fast: bool) -> f32 {
    if (fast && (x & 0x7fffffffu) < 0x7f800000u) {
        return bitcast<f32>(x) * bitcast<f32>(id);
    }
    return bitcast<f32>(t_mul(x, id));
}

fn id_is_fast(id: u32) -> bool {
    let a = id & 0x7fffffffu;
    return a >= 0x0d800000u && a <= 0x71800000u;
}

// lroundf(v) + 1 as a byte (round half away from zero); NaN and |v| >= 2^31 give
// i32::MIN + 1 (x86's conversion), whose low byte is 1. CPU twin: ternary::trit.
fn trit_lround(v: f32) -> u32 {
    let a = bitcast<u32>(v) & 0x7fffffffu;
    // NaN, or |v| >= 2^31 (0x4f000000), tested on the bits (no float NaN semantics needed)
    if (a >= 0x4f000000u) {
        return 1u;
    }
    var r = trunc(v);
    let f = v - r;
    if (f >= 0.5) {
        r = r + 1.0;
    } else if (f <= -0.5) {
        r = r - 1.0;
    }
    return u32(i32(r) + 1) & 0xffu;
}

// BitNet's clamp(round(v), -1, 1) + 1 with round half to even (torch.round): 0.5 -> 0.
// NaN -> 0. CPU twin: absmean::trit_absmean.
fn trit_absmean(v: f32) -> u32 {
    if ((bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u) {
        return 1u;
    }
    return 1u + select(0u, 1u, v > 0.5) - select(0u, 1u, v < -0.5);
}

// Trit code of element k of block b: ggml's (absmean = false) or BitNet's rule.
fn trit_at(b: u32, k: u32, id: u32, fast: bool, absmean: bool) -> u32 {
    let v = scaled(elem(b, k), id, fast);
    if (absmean) {
        return trit_absmean(v);
    }
    return trit_lround(v);
}

// (q * 256) / 243 rounded up, as a byte: ggml's base-3 -> byte map.
fn pack_trits(q: u32) -> u32 {
    return ((q & 0xffu) * 256u + 242u) / 243u & 0xffu;
}

// id and f16 bits of d for block b: block absmax (ggml) or the row's absmean scale.
fn block_scale(b: u32, absmean: bool) -> vec2<u32> {
    if (absmean) {
        let row = b / params.blocks_per_row;
        return vec2<u32>(weights[2u * row], weights[2u * row + 1u] & 0xffffu);
    }
    let amax = block_amax(b);
    var id = 0u;
    if (amax != 0u) {
        id = t_div(0x3f800000u, amax);
    }
    return vec2<u32>(id, f32_bits_to_f16_bits(amax));
}

// ggml quantize_row_tq1_0_ref for block b at byte `base` of out_words.
fn encode_tq1_block(b: u32, base: u32, absmean: bool) {
    let s = block_scale(b, absmean);
    let id = s.x;
    let fast = id_is_fast(id);
    // 32 bytes of 5 trits (stride 32), 16 of 5 (stride 16, from 160), 4 of 4 (stride 4, from 240)
    for (var m = 0u; m < 32u; m = m + 1u) {
        var q = 0u;
        for (var n = 0u; n < 5u; n = n + 1u) {
            q = (q * 3u + trit_at(b, m + n * 32u, id, fast, absmean)) & 0xffu;
        }
        put_byte(base + m, pack_trits(q));
    }
    for (var m = 0u; m < 16u; m = m + 1u) {
        var q = 0u;
        for (var n = 0u; n < 5u; n = n + 1u) {
            q = (q * 3u + trit_at(b, 160u + m + n * 16u, id, fast, absmean)) & 0xffu;
        }
        put_byte(base + 32u + m, pack_trits(q));
    }
    for (var j = 0u; j < 4u; j = j + 1u) {
        var q = 0u;
        for (var m = 0u; m < 4u; m = m + 1u) {
            q = (q * 3u + trit_at(b, 240u + j + m * 4u, id, fast, absmean)) & 0xffu;
        }
        put_byte(base + 48u + j, pack_trits(q * 3u));
    }
    put_byte(base + 52u, s.y);
    put_byte(base + 53u, s.y >> 8u);
}

// ggml quantize_row_tq2_0_ref for block b at byte `base` of out_words.
fn encode_tq2_block(b: u32, base: u32, absmean: bool) {
    let s = block_scale(b, absmean);
    let id = s.x;
    let fast = id_is_fast(id);
    for (var j = 0u; j < 64u; j = j + 32u) {
        for (var m = 0u; m < 32u; m = m + 1u) {
            var q = 0u;
            for (var n = 0u; n < 4u; n = n + 1u) {
                let t = trit_at(b, j * 4u + m + n * 32u, id, fast, absmean);
                q = q + ((t & 3u) << (2u * n));
            }
            put_byte(base + j + m, q);
        }
    }
    put_byte(base + 64u, s.y);
    put_byte(base + 65u, s.y >> 8u);
}

// Invocation i: blocks 2i and 2i+1, `words` output words.
fn encode_pair(i: u32, tq1: bool, absmean: bool) {
    let words = select(33u, 27u, tq1);
    let bb = select(66u, 54u, tq1);
    for (var w = 0u; w < 33u; w = w + 1u) {
        out_words[w] = 0u;
    }
    for (var k = 0u; k < 2u; k = k + 1u) {
        let b = 2u * i + k;
        if (b < params.n_blocks) {
            if (tq1) {
                encode_tq1_block(b, k * bb, absmean);
            } else {
                encode_tq2_block(b, k * bb, absmean);
            }
        }
    }
    let o = params.dst_offset + i * words;
    for (var w = 0u; w < words; w = w + 1u) {
        dst[o + w] = out_words[w];
    }
}

// The family entry points: TY 34 (TQ1_0) or 35 (TQ2_0), two blocks per invocation.
@compute @workgroup_size(WG)
fn encode(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_invocation(gid, nwg);
    if (i < params.n_groups && (TY == 34u || TY == 35u)) {
        encode_pair(i, TY == 34u, false);
    }
}

// BitNet absmean TQ1_0 / TQ2_0 (TY == 34u / 35u) with the scale of each row in binding 3.
@compute @workgroup_size(WG)
fn absmean_encode(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_invocation(gid, nwg);
    if (i < params.n_groups && (TY == 34u || TY == 35u)) {
        encode_pair(i, TY == 34u, true);
    }
}

// ------------------------------------------------------------------ absmean reduction

// Sum of |x| over block b, order independent: each |x| = m * 2^(e - 150) becomes the integer
// (m << 8) >> (E - e) in units of 2^(E - 158) (E: the block's largest exponent; terms below
// the unit are truncated), the 256 integers are added exactly in 64 bits and the total is
// rounded once to f32. Any non-finite element makes the sum +inf.
// CPU twin: absmean::block_abs_sum.
fn block_abs_sum(b: u32) -> u32 {
    var e_max = 1;
    for (var k = 0u; k < 256u; k = k + 1u) {
        let a = elem(b, k) & 0x7fffffffu;
        if (a >= 0x7f800000u) {
            return 0x7f800000u;
        }
        e_max = max(e_max, t_exp(a));
    }
    var hi = 0u;
    var lo = 0u;
    for (var k = 0u; k < 256u; k = k + 1u) {
        let a = elem(b, k) & 0x7fffffffu;
        let sh = e_max - t_exp(a);
        if (sh < 32) {
            let t = (t_sig(a) << 8u) >> u32(sh);
            let s = lo + t;
            hi = hi + select(0u, 1u, s < lo);
            lo = s;
        }
    }
    return t_pack_rne(0u, e_max - 158, hi, lo);
}

// One block per invocation: dst[b] = f32 bits of block b's sum of |x|.
@compute @workgroup_size(WG)
fn absmean_block_sums(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = flat_invocation(gid, nwg);
    if (b < params.n_groups && b < params.n_blocks) {
        dst[params.dst_offset + b] = block_abs_sum(b);
    }
}

// -------------------------------------------------------------------------- decoders

fn src_byte(off: u32) -> u32 {
    return (src[params.src_offset + (off >> 2u)] >> (8u * (off & 3u))) & 0xffu;
}

// f32 bits of c * d for c in {-1, 0, 1, 2} and the f32 bits of an f16 scale d, as x86
// computes `(c as f32) * d`: a NaN d stays (already quiet), 0 * inf is the default NaN
// 0xffc00000, zeros carry the product's sign. Exact otherwise (|2d| <= 131008).
fn times_d(c: i32, d: u32) -> u32 {
    let a = d & 0x7fffffffu;
    if (a > 0x7f800000u) {
        return d;
    }
    if (c == 0) {
        if (a == 0x7f800000u) {
            return 0xffc00000u;
        }
        return d & 0x80000000u;
    }
    var r = d;
    if (c == 2 && a != 0u && a != 0x7f800000u) {
        // f16 values are normal f32 well inside the range: doubling adds one to the exponent
        r = d + 0x800000u;
    }
    if (c < 0) {
        r = r ^ 0x80000000u;
    }
    return r;
}

fn decode_tq1(b: u32) {
    let base = b * 54u;
    let d = f16_bits_to_f32_bits(src_byte(base + 52u) | (src_byte(base + 53u) << 8u));
    let o = params.dst_offset + b * 256u;
    var k = 0u;
    var pow3 = array<u32, 6>(1u, 3u, 9u, 27u, 81u, 243u);
    for (var part = 0u; part < 2u; part = part + 1u) {
        let start = select(32u, 0u, part == 0u);
        let len = select(16u, 32u, part == 0u);
        for (var n = 0u; n < 5u; n = n + 1u) {
            for (var m = 0u; m < len; m = m + 1u) {
                let q = (src_byte(base + start + m) * pow3[n]) & 0xffu;
                dst[o + k] = times_d(i32((q * 3u) >> 8u) - 1, d);
                k = k + 1u;
            }
        }
    }
    for (var n = 0u; n < 4u; n = n + 1u) {
        for (var j = 0u; j < 4u; j = j + 1u) {
            let q = (src_byte(base + 48u + j) * pow3[n]) & 0xffu;
            dst[o + k] = times_d(i32((q * 3u) >> 8u) - 1, d);
            k = k + 1u;
        }
    }
}

fn decode_tq2(b: u32) {
    let base = b * 66u;
    let d = f16_bits_to_f32_bits(src_byte(base + 64u) | (src_byte(base + 65u) << 8u));
    let o = params.dst_offset + b * 256u;
    var k = 0u;
    for (var j = 0u; j < 64u; j = j + 32u) {
        for (var l = 0u; l < 4u; l = l + 1u) {
            for (var m = 0u; m < 32u; m = m + 1u) {
                let q = (src_byte(base + j + m) >> (2u * l)) & 3u;
                dst[o + k] = times_d(i32(q) - 1, d);
                k = k + 1u;
            }
        }
    }
}

@compute @workgroup_size(WG)
fn decode(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_invocation(gid, nwg);
    if (i < params.n_groups) {
        for (var b = 2u * i; b < min(2u * i + 2u, params.n_blocks); b = b + 1u) {
            if (TY == 34u) {
                decode_tq1(b);
            } else if (TY == 35u) {
                decode_tq2(b);
            }
        }
    }
}

// ------------------------------------------------------------------ I2_S (bitnet.cpp)
// 128-element blocks of 2-bit codes, 32 bytes (8 words) each: byte p of a block holds elements
// p, 32+p, 64+p, 96+p in bits 7-6, 5-4, 3-2, 1-0; codes 0, 1, 2 are -1, 0, +1. The tensor's one
// scale lives after the codes (written by the host, not here). Binding 3 holds one word: the
// bits of 1/s (encoder) or of the scale (decoder). One block per invocation, so every output
// word has one writer. CPU twins: codec::i2s::{encode_codes_absmean, decode_codes}.

fn elem128(b: u32, k: u32) -> u32 {
    return src[params.src_offset + b * 128u + k];
}

// BitNet absmean codes: trit_absmean(x * id), as `absmean_encode` does for TQ1_0 / TQ2_0.
@compute @workgroup_size(WG)
fn absmean_encode_i2_s(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = flat_invocation(gid, nwg);
    if (b >= params.n_groups || b >= params.n_blocks) {
        return;
    }
    let id = weights[0];
    let fast = id_is_fast(id);
    for (var w = 0u; w < 8u; w = w + 1u) {
        var word = 0u;
        for (var j = 0u; j < 4u; j = j + 1u) {
            let p = 4u * w + j;
            var byte = 0u;
            for (var k = 0u; k < 4u; k = k + 1u) {
                let t = trit_absmean(scaled(elem128(b, k * 32u + p), id, fast));
                byte = byte | (t << (6u - 2u * k));
            }
            word = word | (byte << (8u * j));
        }
        dst[params.dst_offset + b * 8u + w] = word;
    }
}

// The f32 bits codes 0..3 decode to: (code - 1) * s as x86 computes the product, from the bits
// of s (a NaN comes back quieted with its sign, 0 * inf is the default NaN 0xffc00000, 2 * s
// may overflow to infinity; exact otherwise). CPU twin: codec::i2s::decode_values.
fn i2s_values(s: u32) -> array<u32, 4> {
    let a = s & 0x7fffffffu;
    let sign = s & 0x80000000u;
    if (a > 0x7f800000u) {
        let q = s | 0x00400000u;
        return array<u32, 4>(q, q, q, q);
    }
    var zero = sign;
    if (a == 0x7f800000u) {
        zero = 0xffc00000u;
    }
    var two = sign | 0x7f800000u;
    if (a < 0x00800000u) {
        two = sign | (a << 1u);
    } else if (a < 0x7f000000u) {
        two = s + 0x00800000u;
    }
    return array<u32, 4>(s ^ 0x80000000u, zero, s, two);
}

@compute @workgroup_size(WG)
fn decode_i2_s(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = flat_invocation(gid, nwg);
    if (b >= params.n_groups || b >= params.n_blocks) {
        return;
    }
    var v = i2s_values(weights[0]);
    let o = params.dst_offset + b * 128u;
    for (var w = 0u; w < 8u; w = w + 1u) {
        let word = src[params.src_offset + b * 8u + w];
        for (var j = 0u; j < 4u; j = j + 1u) {
            let p = 4u * w + j;
            let byte = (word >> (8u * j)) & 0xffu;
            for (var k = 0u; k < 4u; k = k + 1u) {
                dst[o + k * 32u + p] = v[(byte >> (6u - 2u * k)) & 3u];
            }
        }
    }
}
