// Low-bit scalar codecs Q1_0 (one sign bit per weight, an f16 scale per 128 elements) and Q2_0
// (2-bit codes -1, 0, 1, 2 times an f16 scale per 64 elements). Encoders equal ggml's
// quantize_row_q1_0_ref / quantize_row_q2_0_ref byte for byte (ggml ignores importance
// weights for both; weighted calls run on the CPU codec, gpu::table); decoders equal
// dequantize_row_q1_0 / _q2_0 bit for bit. CPU twin: src/codec/q1_0.rs (`q1_0_block`,
// `q2_0_block`, decoders); tests/gpu_iquants.rs holds the two together. Binding layout:
// gpu::codecs (params, src, dst).
//
// Exactness by construction: Q1_0's mean magnitude is summed in element order through `keep`
// (no reassociation) and divided by 128 as a multiplication by 2^-7 (the same correctly
// rounded value); its sign bits are read from the bits of x (`x >= 0`: +0, -0 and positive,
// never NaN), so no denormal flushing can flip one. Q2_0's 1/d is common.wgsl's `soft_div`,
// `x * id` is kept (no fusion), roundf and C's float -> int conversion are written out.
// Decoders: d or -d (a sign flip), and (q - 1) * d with q - 1 in {-1, 0, 1, 2}: exact.
//
// Encoders give each invocation two 18-byte blocks (9 words); decoders one block.

@group(0) @binding(0) var<uniform> params: CodecParams;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

// ---------------------------------------------------------------- exact float plumbing

fn keep(x: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(x) | params.zero);
}

fn fmul(a: f32, b: f32) -> f32 {
    return keep(a * b);
}

fn fadd(a: f32, b: f32) -> f32 {
    return keep(a + b);
}

// C's (int32_t) of a float as x86-64 converts it: truncation; NaN and out of range give
// INT32_MIN. CPU twin: legacy::c_casts::c_trunc_i32.
fn c_trunc_i32(v: f32) -> i32 {
    let a = bitcast<u32>(v) & 0x7fffffffu;
    if (a >= 0x4f000000u) {
        return i32(-2147483647) - 1;
    }
    return i32(v);
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

// GGML_FP32_TO_FP16 as ggml's software routine: NaN -> sign | 0x7e00, else round to nearest
// even. CPU twin: float::ggml_fp32_to_fp16_bits.
fn ggml_f16_of(v: f32) -> u32 {
    let u = bitcast<u32>(v);
    if (is_nan_bits(u)) {
        return ((u >> 16u) & 0x8000u) | 0x7e00u;
    }
    return f32_bits_to_f16_bits(u);
}

fn f32_of_f16(h: u32) -> f32 {
    return bitcast<f32>(f16_bits_to_f32_bits(h));
}

// ---------------------------------------------------------------- byte plumbing

// Output words of one encoder group (2 x 18 bytes), zero-initialised; bytes are ORed in.
var<private> out_words: array<u32, 9>;

fn clear_out() {
    for (var i = 0u; i < 9u; i = i + 1u) {
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

fn flush_out(g: u32, words_per_group: u32, n_bytes: u32) {
    let n_words = (n_bytes + 3u) / 4u;
    let base = params.dst_offset + g * words_per_group;
    for (var i = 0u; i < n_words; i = i + 1u) {
        dst[base + i] = out_words[i];
    }
}

// Bits of element j of block b of the tile (blocks of `be` elements).
fn x_bits(b: u32, be: u32, j: u32) -> u32 {
    return src[params.src_offset + b * be + j];
}

fn src_byte(i: u32) -> u32 {
    return byte_of(src[params.src_offset + (i >> 2u)], i & 3u);
}

fn src_u16(i: u32) -> u32 {
    return src_byte(i) | (src_byte(i + 1u) << 8u);
}

fn put_f32(b: u32, be: u32, j: u32, v: f32) {
    dst[params.dst_offset + b * be + j] = bitcast<u32>(v);
}

// ---------------------------------------------------------------- encoders

// quantize_row_q1_0_ref for block b, bytes at `o`. CPU twin: q1_0::q1_0_block.
fn enc_q1_0(b: u32, o: u32) {
    var sum_abs = 0.0;
    for (var j = 0u; j < 128u; j = j + 1u) {
        sum_abs = fadd(sum_abs, bitcast<f32>(x_bits(b, 128u, j) & 0x7fffffffu));
    }
    put_u16(o, ggml_f16_of(fmul(sum_abs, 0.0078125)));
    for (var k = 0u; k < 16u; k = k + 1u) {
        var q = 0u;
        for (var i = 0u; i < 8u; i = i + 1u) {
            let u = x_bits(b, 128u, 8u * k + i);
            // x >= 0.0: +0 .. +inf, and -0
            let ge0 = u <= 0x7f800000u || u == 0x80000000u;
            q = q | (select(0u, 1u, ge0) << i);
        }
        put_byte(o + 2u + k, q);
    }
}

// quantize_row_q2_0_ref for block b, bytes at `o`. CPU twin: q1_0::q2_0_block.
fn enc_q2_0(b: u32, o: u32) {
    // the largest |x| (strict >, NaN never wins), compared as bits
    var amax = 0u;
    for (var j = 0u; j < 64u; j = j + 1u) {
        let a = x_bits(b, 64u, j) & 0x7fffffffu;
        if (a <= 0x7f800000u && a > amax) {
            amax = a;
        }
    }
    let d = bitcast<f32>(amax);
    var id = 0.0;
    if (amax != 0u) {
        id = soft_div(1.0, d);
    }
    put_u16(o, ggml_f16_of(d));
    for (var k = 0u; k < 16u; k = k + 1u) {
        var q = 0u;
        for (var i = 0u; i < 4u; i = i + 1u) {
            let v = bitcast<f32>(x_bits(b, 64u, 4u * k + i));
            let c = clamp(c_trunc_i32(c_roundf(fmul(v, id))) + 1, 0, 3);
            q = q | (u32(c) << (2u * i));
        }
        put_byte(o + 2u + k, q);
    }
}

// Runs the encoder of type id `ty` over the `bpg` blocks (of `bb` bytes) of group g.
fn encode_group(g: u32, ty: u32, bpg: u32, bb: u32) {
    clear_out();
    let first = g * bpg;
    let n = min(bpg, params.n_blocks - first);
    for (var k = 0u; k < n; k = k + 1u) {
        let b = first + k;
        let o = k * bb;
        switch ty {
            case 41u: { enc_q1_0(b, o); }
            case 42u: { enc_q2_0(b, o); }
            default: {}
        }
    }
    flush_out(g, bpg * bb / 4u, n * bb);
}

// ---------------------------------------------------------------- decoders

// dequantize_row_q1_0: bit set -> d, else -d (the sign flipped).
fn dec_q1_0(b: u32) {
    let o = b * 18u;
    let d = f16_bits_to_f32_bits(src_u16(o));
    for (var k = 0u; k < 16u; k = k + 1u) {
        let q = src_byte(o + 2u + k);
        for (var i = 0u; i < 8u; i = i + 1u) {
            let flip = select(0x80000000u, 0u, ((q >> i) & 1u) != 0u);
            dst[params.dst_offset + b * 128u + 8u * k + i] = d ^ flip;
        }
    }
}

// dequantize_row_q2_0: (q - 1) * d.
fn dec_q2_0(b: u32) {
    let o = b * 18u;
    let d = f32_of_f16(src_u16(o));
    for (var k = 0u; k < 16u; k = k + 1u) {
        let q = src_byte(o + 2u + k);
        for (var i = 0u; i < 4u; i = i + 1u) {
            let c = i32((q >> (2u * i)) & 3u) - 1;
            put_f32(b, 64u, 4u * k + i, f32(c) * d);
        }
    }
}

// ---------------------------------------------------------------- entry points
// One entry point per direction, specialised per type by the pipeline constants TY, BPG, BB
// (gpu::table::GPU_CODECS: encoders two blocks per invocation, decoders one).

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
            case 41u: { dec_q1_0(b); }
            case 42u: { dec_q2_0(b); }
            default: {}
        }
    }
}
