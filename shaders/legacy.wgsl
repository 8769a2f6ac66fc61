// Legacy quant codecs Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 (32-element blocks): encode f32 -> blocks as
// ggml's quantize_row_X_ref, decode blocks -> f32 as dequantize_row_X. CPU twins:
// src/codec/legacy/reference.rs (encoders) and src/codec/legacy/mod.rs (decoders); outputs
// must agree byte for byte / bit for bit (tests/gpu_legacy.rs). Binding layout: gpu::codecs
// (params, src, dst); common.wgsl is prepended.
//
// Exactness by construction: every value the bytes depend on is computed so that no driver
// can change it. Divisions and the products that feed an addition are done in integer
// arithmetic (`soft_div`, `soft_mul`: IEEE binary32, round to nearest even, subnormals kept),
// because WGSL's `/` may be off by 2.5 ULP and Metal may fuse `a*b + c`. A lone `+` or `-`
// of two values is correctly rounded in WGSL. f32 -> f16 uses common.wgsl's integer routine.
//
// Encoders give each invocation a group of whole blocks whose bytes fill whole u32 words
// (Q4_0 2x18 = 9 words, Q4_1 20 = 5, Q5_0 2x22 = 11, Q5_1 24 = 6, Q8_0 2x34 = 17), so every
// output word has one writer; a last group holding fewer blocks writes only the words its
// bytes touch, zero-padded. Decoders take one block per invocation.

@group(0) @binding(0) var<uniform> params: CodecParams;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

// The integer IEEE arithmetic (`soft_mul`, `soft_div`) lives in common.wgsl.

// C's (int32_t) of a float as x86-64 converts it (cvttss2si): truncation toward zero; NaN
// and out-of-range give INT32_MIN. CPU twin: codec::legacy::scale_search::c_trunc_i32.
fn c_trunc_i32(v: f32) -> i32 {
    let a = bitcast<u32>(v) & 0x7fffffffu;
    // 2^31 = 0x4f000000; everything at or above it (and NaN) is out of range. -2^31 itself is
    // in range and gives INT32_MIN as well.
    if (a >= 0x4f000000u) {
        return i32(-2147483647) - 1;
    }
    return i32(v);
}

// C's (int8_t) of a float: the low byte of c_trunc_i32, sign-extended.
fn c_to_i8(v: f32) -> i32 {
    return (c_trunc_i32(v) << 24u) >> 24u;
}

// C's roundf: half away from zero.
fn c_roundf(v: f32) -> f32 {
    let a = abs(v);
    if (!(a < 8388608.0)) {
        return v; // already an integer (or NaN/inf)
    }
    var r = floor(a);
    if (a - r >= 0.5) {
        r = r + 1.0;
    }
    return select(r, -r, bitcast<u32>(v) >= 0x80000000u);
}

fn f16_of(v: f32) -> u32 {
    return f32_bits_to_f16_bits(bitcast<u32>(v));
}

fn f32_of_f16(h: u32) -> f32 {
    return bitcast<f32>(f16_bits_to_f32_bits(h));
}

// ---------------------------------------------------------------- byte plumbing

// Up to 17 output words of one encoder group, zero-initialised; bytes are ORed in.
var<private> out_words: array<u32, 17>;

fn clear_out() {
    for (var i = 0u; i < 17u; i = i + 1u) {
        out_words[i] = 0u;
    }
}

fn put_byte(i: u32, v: u32) {
    out_words[i >> 2u] = out_words[i >> 2u] | ((v & 0xffu) << (8u * (i & 3u)));
}

fn put_u16(i: u32, v: u32) {
    put_byte(i, v);
    put_byte(i + 1u, v >> 8u);
}

// Writes the words that the first `n_bytes` bytes of group `g` touch.
fn flush_out(g: u32, words_per_group: u32, n_bytes: u32) {
    let n_words = (n_bytes + 3u) / 4u;
    let base = params.dst_offset + g * words_per_group;
    for (var i = 0u; i < n_words; i = i + 1u) {
        dst[base + i] = out_words[i];
    }
}

// Element j of block b of the tile, as f32.
fn x_at(b: u32, j: u32) -> f32 {
    return bitcast<f32>(src[params.src_offset + b * 32u + j]);
}

// Byte i of the tile's source bytes.
fn src_byte(i: u32) -> u32 {
    return byte_of(src[params.src_offset + (i >> 2u)], i & 3u);
}

fn src_u16(i: u32) -> u32 {
    return src_byte(i) | (src_byte(i + 1u) << 8u);
}

fn src_u32(i: u32) -> u32 {
    return src_u16(i) | (src_u16(i + 2u) << 16u);
}

fn put_f32(b: u32, j: u32, v: f32) {
    dst[params.dst_offset + b * 32u + j] = bitcast<u32>(v);
}

// ---------------------------------------------------------------- per-block encoders

// Largest magnitude with its sign, first one wins (ggml's strict <).
fn signed_absmax(b: u32) -> f32 {
    var amax = 0.0;
    var mx = 0.0;
    for (var j = 0u; j < 32u; j = j + 1u) {
        let v = x_at(b, j);
        if (amax < abs(v)) {
            amax = abs(v);
            mx = v;
        }
    }
    return mx;
}

// (min, max) from (FLT_MAX, -FLT_MAX) as the _1 quantizers start.
fn min_max(b: u32) -> vec2<f32> {
    var mn = bitcast<f32>(0x7f7fffffu);
    var mx = bitcast<f32>(0xff7fffffu);
    for (var j = 0u; j < 32u; j = j + 1u) {
        let v = x_at(b, j);
        if (v < mn) {
            mn = v;
        }
        if (v > mx) {
            mx = v;
        }
    }
    return vec2<f32>(mn, mx);
}

fn inverse(d: f32) -> f32 {
    if (d != 0.0) {
        return soft_div(1.0, d);
    }
    return 0.0;
}

// quantize_row_q4_0_ref for block b, bytes at `o` in out_words.
fn enc_q4_0(b: u32, o: u32) {
    let d = soft_div(signed_absmax(b), -8.0);
    let id = inverse(d);
    put_u16(o, f16_of(d));
    for (var j = 0u; j < 16u; j = j + 1u) {
        let q0 = u32(min(15, c_to_i8(soft_mul(x_at(b, j), id) + 8.5)));
        let q1 = u32(min(15, c_to_i8(soft_mul(x_at(b, j + 16u), id) + 8.5)));
        put_byte(o + 2u + j, (q0 & 0xffu) | ((q1 << 4u) & 0xffu));
    }
}

// quantize_row_q4_1_ref
fn enc_q4_1(b: u32, o: u32) {
    let mm = min_max(b);
    let d = soft_div(mm.y - mm.x, 15.0);
    let id = inverse(d);
    put_u16(o, f16_of(d));
    put_u16(o + 2u, f16_of(mm.x));
    for (var j = 0u; j < 16u; j = j + 1u) {
        let q0 = u32(min(15, c_to_i8(soft_mul(x_at(b, j) - mm.x, id) + 0.5)));
        let q1 = u32(min(15, c_to_i8(soft_mul(x_at(b, j + 16u) - mm.x, id) + 0.5)));
        put_byte(o + 4u + j, (q0 & 0xffu) | ((q1 << 4u) & 0xffu));
    }
}

// Packs 5-bit values q0 (element j) and q1 (element j+16): low nibbles to byte qs+j, 5th bits
// into the qh word accumulated by the caller.
fn qh_bits(q0: u32, q1: u32, j: u32) -> u32 {
    return (((q0 & 0x10u) >> 4u) << j) | (((q1 & 0x10u) >> 4u) << (j + 16u));
}

// quantize_row_q5_0_ref
fn enc_q5_0(b: u32, o: u32) {
    let d = soft_div(signed_absmax(b), -16.0);
    let id = inverse(d);
    put_u16(o, f16_of(d));
    var qh = 0u;
    for (var j = 0u; j < 16u; j = j + 1u) {
        let q0 = u32(min(31, c_to_i8(soft_mul(x_at(b, j), id) + 16.5))) & 0xffu;
        let q1 = u32(min(31, c_to_i8(soft_mul(x_at(b, j + 16u), id) + 16.5))) & 0xffu;
        put_byte(o + 6u + j, (q0 & 0x0fu) | ((q1 & 0x0fu) << 4u));
        qh = qh | qh_bits(q0, q1, j);
    }
    put_u16(o + 2u, qh);
    put_u16(o + 4u, qh >> 16u);
}

// quantize_row_q5_1_ref (no clamp, as ggml)
fn enc_q5_1(b: u32, o: u32) {
    let mm = min_max(b);
    let d = soft_div(mm.y - mm.x, 31.0);
    let id = inverse(d);
    put_u16(o, f16_of(d));
    put_u16(o + 2u, f16_of(mm.x));
    var qh = 0u;
    for (var j = 0u; j < 16u; j = j + 1u) {
        let q0 = u32(c_trunc_i32(soft_mul(x_at(b, j) - mm.x, id) + 0.5)) & 0xffu;
        let q1 = u32(c_trunc_i32(soft_mul(x_at(b, j + 16u) - mm.x, id) + 0.5)) & 0xffu;
        put_byte(o + 8u + j, (q0 & 0x0fu) | ((q1 & 0x0fu) << 4u));
        qh = qh | qh_bits(q0, q1, j);
    }
    put_u16(o + 4u, qh);
    put_u16(o + 6u, qh >> 16u);
}

// quantize_row_q8_0_ref
fn enc_q8_0(b: u32, o: u32) {
    var amax = 0.0;
    for (var j = 0u; j < 32u; j = j + 1u) {
        let a = abs(x_at(b, j));
        amax = select(a, amax, amax > a);
    }
    let d = soft_div(amax, 127.0);
    let id = inverse(d);
    put_u16(o, f16_of(d));
    for (var j = 0u; j < 32u; j = j + 1u) {
        put_byte(o + 2u + j, u32(c_to_i8(c_roundf(soft_mul(x_at(b, j), id)))));
    }
}

// Runs `enc` (by type id) over the blocks of group g: `bpg` blocks of `bb` bytes.
fn encode_group(g: u32, ty: u32, bpg: u32, bb: u32) {
    clear_out();
    let first = g * bpg;
    let n = min(bpg, params.n_blocks - first);
    for (var k = 0u; k < n; k = k + 1u) {
        let b = first + k;
        let o = k * bb;
        switch ty {
            case 2u: { enc_q4_0(b, o); }
            case 3u: { enc_q4_1(b, o); }
            case 6u: { enc_q5_0(b, o); }
            case 7u: { enc_q5_1(b, o); }
            case 8u: { enc_q8_0(b, o); }
            default: {}
        }
    }
    flush_out(g, bpg * bb / 4u, n * bb);
}

// ---------------------------------------------------------------- per-block decoders

// dequantize_row_q4_0
fn dec_q4_0(b: u32) {
    let o = b * 18u;
    let d = f32_of_f16(src_u16(o));
    for (var j = 0u; j < 16u; j = j + 1u) {
        let q = src_byte(o + 2u + j);
        put_f32(b, j, f32(i32(q & 0x0fu) - 8) * d);
        put_f32(b, j + 16u, f32(i32(q >> 4u) - 8) * d);
    }
}

// dequantize_row_q4_1 (the product is integer-exact so it cannot be fused into the add)
fn dec_q4_1(b: u32) {
    let o = b * 20u;
    let d = f32_of_f16(src_u16(o));
    let m = f32_of_f16(src_u16(o + 2u));
    for (var j = 0u; j < 16u; j = j + 1u) {
        let q = src_byte(o + 4u + j);
        put_f32(b, j, soft_mul(f32(q & 0x0fu), d) + m);
        put_f32(b, j + 16u, soft_mul(f32(q >> 4u), d) + m);
    }
}

// dequantize_row_q5_0
fn dec_q5_0(b: u32) {
    let o = b * 22u;
    let d = f32_of_f16(src_u16(o));
    let qh = src_u32(o + 2u);
    for (var j = 0u; j < 16u; j = j + 1u) {
        let q = src_byte(o + 6u + j);
        let x0 = i32((q & 0x0fu) | (((qh >> j) & 1u) << 4u)) - 16;
        let x1 = i32((q >> 4u) | (((qh >> (j + 16u)) & 1u) << 4u)) - 16;
        put_f32(b, j, f32(x0) * d);
        put_f32(b, j + 16u, f32(x1) * d);
    }
}

// dequantize_row_q5_1
fn dec_q5_1(b: u32) {
    let o = b * 24u;
    let d = f32_of_f16(src_u16(o));
    let m = f32_of_f16(src_u16(o + 2u));
    let qh = src_u32(o + 4u);
    for (var j = 0u; j < 16u; j = j + 1u) {
        let q = src_byte(o + 8u + j);
        let x0 = (q & 0x0fu) | (((qh >> j) & 1u) << 4u);
        let x1 = (q >> 4u) | (((qh >> (j + 16u)) & 1u) << 4u);
        put_f32(b, j, soft_mul(f32(x0), d) + m);
        put_f32(b, j + 16u, soft_mul(f32(x1), d) + m);
    }
}

// dequantize_row_q8_0
fn dec_q8_0(b: u32) {
    let o = b * 34u;
    let d = f32_of_f16(src_u16(o));
    for (var j = 0u; j < 32u; j = j + 1u) {
        let q = (i32(src_byte(o + 2u + j)) << 24u) >> 24u;
        put_f32(b, j, f32(q) * d);
    }
}

// ---------------------------------------------------------------- entry points
// One entry point per direction, specialised per type by the pipeline constants TY, BPG, BB
// (gpu::table::GPU_CODECS: encoders 2, 1, 2, 1, 2 blocks per invocation for Q4_0, Q4_1, Q5_0,
// Q5_1, Q8_0; decoders one block).

@compute @workgroup_size(WG)
fn encode(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let g = flat_invocation(gid, nwg);
    if (g < params.n_groups) {
        encode_group(g, TY, BPG, BB);
    }
}

@compute @workgroup_size(WG)
fn decode(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = flat_invocation(gid, nwg);
    if (b < params.n_groups) {
        switch TY {
            case 2u: { dec_q4_0(b); }
            case 3u: { dec_q4_1(b); }
            case 6u: { dec_q5_0(b); }
            case 7u: { dec_q5_1(b); }
            case 8u: { dec_q8_0(b); }
            default: {}
        }
    }
}
