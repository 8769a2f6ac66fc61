// 4-bit floating-point codecs MXFP4 (32 E2M1 values and an E8M0 power-of-two scale) and NVFP4
// (64 E2M1 values in four 16-element groups, each with an unsigned E4M3 scale). Encoders
// equal ggml's quantize_row_mxfp4_ref / quantize_row_nvfp4_ref byte for byte (ggml ignores
// importance weights for both; weighted calls run on the CPU codec, gpu::table); decoders
// equal dequantize_row_mxfp4 / _nvfp4 bit for bit. CPU twins: src/codec/fp4/ (`mxfp4_block`,
// `nvfp4_block`, `best_indices_fp4`, `fp32_to_ue4m3`, `ue4m3_to_fp32`, `unpack_group`);
// tests/gpu_iquants.rs holds the two together.
//
// Binding layout: gpu::codecs (params, src, dst) and binding 3 (gpu::lookup, built from the
// CPU codec's tables and functions, never a copy in this file), after the weights when a call
// has them: 16 words, the E2M1 levels kvalues_fp4 (doubled) as i32; then per binade of a
// block's largest magnitude (index k + 149 for 2^k <= amax < 2^(k+1), subnormals by their
// leading bit; 277 for infinity) two words: the first bit pattern at which MXFP4's block
// exponent `(uint8_t)(floorf(log2f(amax)) - 2 + 127)` steps up (log2f rounds up just below a
// power of two), and the exponents below and from there on (low byte, second byte). So the
// GPU reproduces the CPU's log2f without evaluating one.
//
// Exactness by construction:
// - Magnitudes are compared as integers (the bits of |x|, NaN excluded, as ggml's
//   `amax < fabsf(x)` ignores NaN), so no denormal flushing can change a block's maximum.
// - The index search forms |k*e - |x|| with k*e exact (k <= 12, e a power of two (MXFP4) or 4
//   significant bits (NVFP4)); the difference is one correctly rounded subtraction, kept
//   (`keep`) so it cannot be fused. MXFP4 blocks whose largest magnitude is below 2^-100 are
//   searched with every value scaled by 2^64 (in integer arithmetic): the scaled operands are
//   normal, each scaled difference is the exactly scaled difference, so every comparison is
//   the CPU's, and no subnormal reaches the float unit. NVFP4 scales are 0 or >= 2^-10, where
//   a subnormal |x| always takes index 0 either way.
// - amax / 6 uses common.wgsl's `soft_div`; E4M3 and E8M0 conversions are integer or exact.
// - Decoders: level * scale is exact (4 + 4 significant bits) or, for MXFP4 scales below
//   2^-126, formed by `soft_mul` (subnormal results, no flushing); NVFP4 scales are normal.
//
// Encoders give each invocation whole blocks filling whole words (MXFP4 4 x 17 bytes, NVFP4 36
// bytes); decoders one block.

@group(0) @binding(0) var<uniform> params: CodecParams;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
@group(0) @binding(3) var<storage, read> side: array<u32>;

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

fn fsub(a: f32, b: f32) -> f32 {
    return keep(a - b);
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

// ---------------------------------------------------------------- byte plumbing

// Output words of one encoder group (up to 68 bytes), zero-initialised; bytes are ORed in.
var<private> out_words: array<u32, 17>;

fn clear_out() {
    for (var i = 0u; i < 17u; i = i + 1u) {
        out_words[i] = 0u;
    }
}

fn put_byte(i: u32, v: u32) {
    out_words[i >> 2u] = out_words[i >> 2u] | ((v & 0xffu) << (8u * (i & 3u)));
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

fn put_f32(b: u32, be: u32, j: u32, v: f32) {
    dst[params.dst_offset + b * be + j] = bitcast<u32>(v);
}

// First word of the lookup table in binding 3.
fn table_base() -> u32 {
    return select(0u, params.row_len, params.has_weights == 1u);
}

// The E2M1 levels (doubled), loaded once per invocation.
var<private> kv: array<f32, 16>;

fn load_levels() {
    let base = table_base();
    for (var i = 0u; i < 16u; i = i + 1u) {
        kv[i] = f32(bitcast<i32>(side[base + i]));
    }
}

// ---------------------------------------------------------------- the index search

// The largest |x| of `n` elements from element `lo` of block b, as bits (NaN ignored).
fn amax_bits(b: u32, be: u32, lo: u32, n: u32) -> u32 {
    var m = 0u;
    for (var j = 0u; j < n; j = j + 1u) {
        let a = x_bits(b, be, lo + j) & 0x7fffffffu;
        if (a <= 0x7f800000u && a > m) {
            m = a;
        }
    }
    return m;
}

// |x| * 2^64 for a magnitude below 2^-100 (exact; subnormals normalised; NaN stays NaN).
fn scale_up_64(a: u32) -> f32 {
    if (a > 0x7f800000u) {
        return bitcast<f32>(a);
    }
    if (a >= 0x00800000u) {
        return bitcast<f32>(a + (64u << 23u));
    }
    if (a == 0u) {
        return 0.0;
    }
    let p = 31u - countLeadingZeros(a);
    return bitcast<f32>(((p + 42u) << 23u) | ((a << (23u - p)) & 0x7fffffu));
}

// ggml's best_index_mxfp4(x, e) as the CPU's vectorized twin computes it
// (fp4::best_indices_fp4): the nearest of the 8 non-negative levels to |x| (the first of
// equals), moved to the negative half for x < 0 unless it is level 0. `ax` is |x| (scaled
// like `e` when the caller scales), `xb` the bits of x.
fn best_index(xb: u32, ax: f32, e: f32) -> u32 {
    // |0*e - ax| = ax
    var best_err = ax;
    var best = 0u;
    for (var i = 1u; i < 8u; i = i + 1u) {
        let err = abs(fsub(fmul(kv[i], e), ax));
        if (err < best_err) {
            best = i;
            best_err = err;
        }
    }
    // x < 0.0: sign set, not -0, not NaN
    let mag = xb & 0x7fffffffu;
    let neg = (xb & 0x80000000u) != 0u && mag != 0u && mag <= 0x7f800000u;
    return best | select(0u, 8u, neg && best != 0u);
}

// ---------------------------------------------------------------- MXFP4

// ggml_e8m0_to_fp32_half: 2^(e - 128), exact (subnormal for e < 2).
fn e8m0_half(e: u32) -> f32 {
    if (e < 2u) {
        return bitcast<f32>(0x00200000u << e);
    }
    return bitcast<f32>((e - 1u) << 23u);
}

// The block exponent of a largest magnitude with bits `a` (> 0), from the binade table.
// CPU twin: mxfp4::block_exponent (gpu::lookup::mxfp4_exponent_from_table).
fn mx_exponent(a: u32) -> u32 {
    var i = 277u;
    if (a < 0x00800000u) {
        i = 31u - countLeadingZeros(a);
    } else if (a < 0x7f800000u) {
        i = (a >> 23u) + 22u;
    }
    let base = table_base() + 16u + 2u * i;
    let e = side[base + 1u];
    return select(e & 0xffu, (e >> 8u) & 0xffu, a >= side[base]);
}

// quantize_row_mxfp4_ref for block b, bytes at `o` of out_words. CPU twin: mxfp4::mxfp4_block.
fn enc_mxfp4(b: u32, o: u32) {
    let amax = amax_bits(b, 32u, 0u, 32u);
    var e = 0u;
    if (amax > 0u) {
        e = mx_exponent(amax);
    }
    put_byte(o, e);
    // below 2^-100 (27 << 23): search in the domain scaled by 2^64 (see the header)
    let scaled = amax < (27u << 23u);
    var d = e8m0_half(e);
    if (scaled) {
        // 2^(e - 128 + 64), infinite past the f32 range (then only level 0 can win, as on the
        // CPU, where k*e is far above |x|)
        d = bitcast<f32>(select((e + 63u) << 23u, 0x7f800000u, e + 63u >= 255u));
    }
    for (var j = 0u; j < 16u; j = j + 1u) {
        let x0 = x_bits(b, 32u, j);
        let x1 = x_bits(b, 32u, j + 16u);
        var a0 = bitcast<f32>(x0 & 0x7fffffffu);
        var a1 = bitcast<f32>(x1 & 0x7fffffffu);
        if (scaled) {
            a0 = scale_up_64(x0 & 0x7fffffffu);
            a1 = scale_up_64(x1 & 0x7fffffffu);
        }
        put_byte(o + 1u + j, best_index(x0, a0, d) | (best_index(x1, a1, d) << 4u));
    }
}

// ---------------------------------------------------------------- NVFP4

// ggml_ue4m3_to_fp32: half the value of an unsigned E4M3 byte; 0 and 0x7F give 0, the top bit
// is ignored. Exact. CPU twin: nvfp4::ue4m3_to_fp32.
fn ue4m3_to_f32(x: u32) -> f32 {
    if (x == 0u || x == 0x7fu) {
        return 0.0;
    }
    let ex = (x >> 3u) & 15u;
    let man = x & 7u;
    if (ex == 0u) {
        // man * 2^-9 * 0.5
        return f32(man) * 0.0009765625;
    }
    // (1 + man/8) * 2^(ex - 7) * 0.5 = (8 + man) * 2^(ex - 11)
    return f32(8u + man) * bitcast<f32>((ex + 116u) << 23u);
}

// ggml_fp32_to_ue4m3 of a non-negative x. CPU twin: nvfp4::fp32_to_ue4m3.
fn f32_to_ue4m3(x_in: f32) -> u32 {
    var bits = bitcast<u32>(x_in);
    // `!(x > 0)`: zero (x is |amax| / 6, never negative) and NaN
    if (bits == 0u || bits >= 0x80000000u || is_nan_bits(bits)) {
        return 0u;
    }
    // clamp to 448 (0x43e00000)
    bits = min(bits, 0x43e00000u);
    let x = bitcast<f32>(bits);
    let fp32_exp = i32((bits >> 23u) & 0xffu) - 127;
    let fp32_man = i32((bits >> 20u) & 7u);
    var ex = fp32_exp + 7;
    if (ex <= 0) {
        let man = min(c_trunc_i32(fadd(fmul(x, 512.0), 0.5)), 7);
        if (man < 1) {
            return 0u;
        }
        return u32(man);
    }
    if (ex >= 15) {
        return 0x7eu;
    }
    var man = fp32_man + i32((bits >> 19u) & 1u);
    if (man > 7) {
        man = 0;
        ex = ex + 1;
        if (ex >= 15) {
            return 0x7eu;
        }
    }
    return u32((ex << 3u) | man);
}

// quantize_row_nvfp4_ref for block b, bytes at `o`. CPU twin: nvfp4::nvfp4_block.
fn enc_nvfp4(b: u32, o: u32) {
    for (var s = 0u; s < 4u; s = s + 1u) {
        let amax = bitcast<f32>(amax_bits(b, 64u, 16u * s, 16u));
        let ue = f32_to_ue4m3(soft_div(amax, 6.0));
        put_byte(o + s, ue);
        let d = ue4m3_to_f32(ue);
        for (var j = 0u; j < 8u; j = j + 1u) {
            let x0 = x_bits(b, 64u, 16u * s + j);
            let x1 = x_bits(b, 64u, 16u * s + j + 8u);
            let a0 = bitcast<f32>(x0 & 0x7fffffffu);
            let a1 = bitcast<f32>(x1 & 0x7fffffffu);
            put_byte(o + 4u + 8u * s + j, best_index(x0, a0, d) | (best_index(x1, a1, d) << 4u));
        }
    }
}

// Runs the encoder of type id `ty` over the `bpg` blocks (of `bb` bytes) of group g.
fn encode_group(g: u32, ty: u32, bpg: u32, bb: u32) {
    clear_out();
    load_levels();
    let first = g * bpg;
    let n = min(bpg, params.n_blocks - first);
    for (var k = 0u; k < n; k = k + 1u) {
        let b = first + k;
        let o = k * bb;
        switch ty {
            case 39u: { enc_mxfp4(b, o); }
            case 40u: { enc_nvfp4(b, o); }
            default: {}
        }
    }
    flush_out(g, bpg * bb / 4u, n * bb);
}

// ---------------------------------------------------------------- decoders

// level * d for a level index q; `tiny` when d is subnormal (soft_mul: no flushing).
fn level_times(q: u32, d: f32, tiny: bool) -> f32 {
    if (tiny) {
        return soft_mul(kv[q], d);
    }
    return kv[q] * d;
}

// dequantize_row_mxfp4 (17 bytes: e, 16 bytes of nibbles). CPU twin: fp4::unpack_group.
fn dec_mxfp4(b: u32) {
    let o = b * 17u;
    let e = src_byte(o);
    let d = e8m0_half(e);
    for (var j = 0u; j < 16u; j = j + 1u) {
        let v = src_byte(o + 1u + j);
        put_f32(b, 32u, j, level_times(v & 15u, d, e < 2u));
        put_f32(b, 32u, j + 16u, level_times(v >> 4u, d, e < 2u));
    }
}

// dequantize_row_nvfp4 (36 bytes: 4 scales, 32 bytes of nibbles, 8 per group).
fn dec_nvfp4(b: u32) {
    let o = b * 36u;
    for (var s = 0u; s < 4u; s = s + 1u) {
        let d = ue4m3_to_f32(src_byte(o + s));
        for (var j = 0u; j < 8u; j = j + 1u) {
            let v = src_byte(o + 4u + 8u * s + j);
            put_f32(b, 64u, 16u * s + j, kv[v & 15u] * d);
            put_f32(b, 64u, 16u * s + j + 8u, kv[v >> 4u] * d);
        }
    }
}

// ---------------------------------------------------------------- entry points
// One entry point per direction, specialised per type by the pipeline constants TY, BPG, BB
// (gpu::table::GPU_CODECS: encoders 4 (MXFP4) and 1 (NVFP4) blocks per invocation, decoders
// one block).

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
        load_levels();
        switch TY {
            case 39u: { dec_mxfp4(b); }
            case 40u: { dec_nvfp4(b); }
            default: {}
        }
    }
}
