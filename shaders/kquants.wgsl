// K-quant codecs Q2_K, Q3_K, Q4_K, Q5_K, Q6_K (256-element super-blocks). Decoders equal
// ggml's dequantize_row_qX_K bit for bit; encoders equal quantize_row_qX_K_ref and, with
// importance weights, quantize_row_qX_K_impl byte for byte. CPU twins:
// src/codec/kquants/qX_k.rs, with the scale searches of src/codec/kquants/search.rs mirrored
// operation for operation (tests/gpu_kquants.rs holds the two together). Binding layout:
// gpu::codecs (params, src, dst, weights); common.wgsl is prepended.
//
// Exactness by construction (../shared/DESIGN.md, "Exactness on the GPU"):
// - Decoders: every product in `d*sc*q - dmin*m` is exact in f32 (d and dmin are f16, 11
//   significant bits; scales have at most 8 bits, levels at most 6: Q2_K 11+4+2, Q3_K 11+6+3,
//   Q4_K 11+6+4, Q5_K 11+6+5, dmin*m 11+6, all <= 24 bits), so fusing the product into the
//   subtraction (FMA) or reassociating the product chain cannot change the single rounding
//   that remains. Q6_K's `(d*sc)*q` may round (11+8+6 bits) but has no addition to fuse
//   into, and d*sc and sc*q are both exact, so every association rounds the same exact value
//   once.
// - Encoders: every product or sum whose rounding the bytes depend on goes through `keep`
//   (`fmul`, `fadd`, `fsub`): its bits are ORed with `params.zero` (always 0, but unknown to
//   the compiler), so the rounded value must be materialised: no FMA contraction, no
//   reassociation of a sum. Divisions and square roots use common.wgsl's integer
//   `soft_div` / `soft_sqrt` (correctly rounded); f32 -> f16 the integer routine. `nearest_int`
//   is ggml's magic-number trick on an already rounded input. Non-dyadic constants (0.1,
//   1e-15, ...) are written as f32 bit patterns so no abstract-float conversion is involved.
//
// Encoders give each invocation whole blocks filling whole u32 words (Q4_K 144 B and Q5_K
// 176 B and Q2_K 84 B: 1 block; Q6_K 210 B and Q3_K 110 B: 2 blocks), so every output word
// has one writer. Decoders take one block per invocation.
//
// Loop budget (common.wgsl, LOOP BUDGET): llvmpipe stops every loop of a shader run once
// 65535 loop iterations have been spent on one SIMD group. Measured on lavapipe (Mesa 22.3,
// all test distributions, workgroup sizes 1 and 64; a counting loop after the flush read the
// remaining budget): an encoder group spends at most ~1.9k iterations (Q2_K weighted; Q2_K
// ref ~0.9k), ~2.9k (Q3_K, 2 blocks), ~1.6k (Q6_K, 2 blocks), ~12k / ~9.5k (Q4_K / Q5_K
// ref), ~21.3k (Q4_K / Q5_K weighted): the 32-element loops are not unrolled, the 16-element
// ones are. Keep new encoder code well inside the budget (no bit-serial loops per element);
// the tests poison the output, so an exhausted budget shows as unwritten words.

@group(0) @binding(0) var<uniform> params: CodecParams;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
@group(0) @binding(3) var<storage, read> weights: array<f32>;

const QK_K: u32 = 256u;

// ---------------------------------------------------------------- exact float plumbing

// The value `x`, rounded and materialised: the compiler cannot see through the OR with a
// uniform, so it cannot fuse or reassociate across this point.
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

// ggml's nearest_int: round to nearest even via 1.5 * 2^23. CPU twin: search::nearest_int.
fn nearest_int(fval: f32) -> i32 {
    let val = keep(keep(fval) + 12582912.0);
    return (bitcast<i32>(val) & 0x7fffff) - 0x400000;
}

// ggml's GROUP_MAX_EPS (1e-15f)
fn group_max_eps() -> f32 {
    return bitcast<f32>(0x26901d7du);
}

fn f16_of(v: f32) -> u32 {
    return f32_bits_to_f16_bits(bitcast<u32>(v));
}

fn f32_of_f16(h: u32) -> f32 {
    return bitcast<f32>(f16_bits_to_f32_bits(h));
}

// ---------------------------------------------------------------- byte plumbing

// Output words of one encoder group (up to 2 x 210 bytes), zero-initialised; bytes are ORed in.
var<private> out_words: array<u32, 105>;

fn clear_out() {
    for (var i = 0u; i < 105u; i = i + 1u) {
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

// Element j of block b of the tile.
fn x_at(b: u32, j: u32) -> f32 {
    return bitcast<f32>(src[params.src_offset + b * QK_K + j]);
}

// Importance weight of element j of block b (column (b % blocks_per_row) * 256 + j).
fn qw_at(b: u32, j: u32) -> f32 {
    return weights[(b % params.blocks_per_row) * QK_K + j];
}

// Byte i of the tile's packed source.
fn src_byte(i: u32) -> u32 {
    return byte_of(src[params.src_offset + (i >> 2u)], i & 3u);
}

fn src_u16(i: u32) -> u32 {
    return src_byte(i) | (src_byte(i + 1u) << 8u);
}

fn put_f32(b: u32, j: u32, v: f32) {
    dst[params.dst_offset + b * QK_K + j] = bitcast<u32>(v);
}

// ---------------------------------------------------------------- decoders

// get_scale_min_k4 of the 12 packed bytes at byte offset `s`: (scale, min) of sub-block j.
// CPU twin: kquants::get_scale_min_k4.
fn scale_min_k4(s: u32, j: u32) -> vec2<u32> {
    if (j < 4u) {
        return vec2<u32>(src_byte(s + j) & 63u, src_byte(s + j + 4u) & 63u);
    }
    return vec2<u32>(
        (src_byte(s + j + 4u) & 0xfu) | ((src_byte(s + j - 4u) >> 6u) << 4u),
        (src_byte(s + j + 4u) >> 4u) | ((src_byte(s + j) >> 6u) << 4u),
    );
}

// dequantize_row_q2_K. CPU twin: q2_k::dequantize_block.
fn dec_q2_k(b: u32) {
    let o = b * 84u;
    let d = f32_of_f16(src_u16(o + 80u));
    let dmin = f32_of_f16(src_u16(o + 82u));
    var is = 0u;
    var out = 0u;
    for (var h = 0u; h < 2u; h = h + 1u) {
        let q = o + 16u + 32u * h;
        for (var shift = 0u; shift < 8u; shift = shift + 2u) {
            for (var half = 0u; half < 2u; half = half + 1u) {
                let sc = src_byte(o + is);
                is = is + 1u;
                let dl = d * f32(sc & 0xfu);
                let ml = dmin * f32(sc >> 4u);
                for (var l = 0u; l < 16u; l = l + 1u) {
                    let v = (src_byte(q + 16u * half + l) >> shift) & 3u;
                    put_f32(b, out, dl * f32(v) - ml);
                    out = out + 1u;
                }
            }
        }
    }
}

// Q3_K scale j (6 bits) minus 32, from the 12 packed bytes at `s`. CPU twin: q3_k::get_scale.
fn q3_scale(s: u32, j: u32) -> i32 {
    var low = 0u;
    if (j < 8u) {
        low = src_byte(s + j) & 0xfu;
    } else {
        low = src_byte(s + j - 8u) >> 4u;
    }
    let high = (src_byte(s + 8u + (j % 4u)) >> (2u * (j / 4u))) & 3u;
    return i32(low | (high << 4u)) - 32;
}

// dequantize_row_q3_K. CPU twin: q3_k::dequantize_block.
fn dec_q3_k(b: u32) {
    let o = b * 110u;
    let d_all = f32_of_f16(src_u16(o + 108u));
    var is = 0u;
    var out = 0u;
    var m = 1u;
    for (var h = 0u; h < 2u; h = h + 1u) {
        let q = o + 32u + 32u * h;
        for (var shift = 0u; shift < 8u; shift = shift + 2u) {
            for (var half = 0u; half < 2u; half = half + 1u) {
                let dl = d_all * f32(q3_scale(o + 96u, is));
                is = is + 1u;
                for (var l = 16u * half; l < 16u * half + 16u; l = l + 1u) {
                    let low = i32((src_byte(q + l) >> shift) & 3u);
                    let high = select(4, 0, (src_byte(o + l) & m) != 0u);
                    put_f32(b, out, dl * f32(low - high));
                    out = out + 1u;
                }
            }
            m = m << 1u;
        }
    }
}

// dequantize_row_q4_K. CPU twin: q4_k::dequantize_block.
fn dec_q4_k(b: u32) {
    let o = b * 144u;
    let d = f32_of_f16(src_u16(o));
    let dmin = f32_of_f16(src_u16(o + 2u));
    for (var p = 0u; p < 4u; p = p + 1u) {
        let sm1 = scale_min_k4(o + 4u, 2u * p);
        let sm2 = scale_min_k4(o + 4u, 2u * p + 1u);
        let d1 = d * f32(sm1.x);
        let m1 = dmin * f32(sm1.y);
        let d2 = d * f32(sm2.x);
        let m2 = dmin * f32(sm2.y);
        for (var l = 0u; l < 32u; l = l + 1u) {
            let q = src_byte(o + 16u + 32u * p + l);
            put_f32(b, 64u * p + l, d1 * f32(q & 0xfu) - m1);
            put_f32(b, 64u * p + 32u + l, d2 * f32(q >> 4u) - m2);
        }
    }
}

// dequantize_row_q5_K. CPU twin: q5_k::dequantize_block.
fn dec_q5_k(b: u32) {
    let o = b * 176u;
    let d = f32_of_f16(src_u16(o));
    let dmin = f32_of_f16(src_u16(o + 2u));
    for (var p = 0u; p < 4u; p = p + 1u) {
        let sm1 = scale_min_k4(o + 4u, 2u * p);
        let sm2 = scale_min_k4(o + 4u, 2u * p + 1u);
        let d1 = d * f32(sm1.x);
        let m1 = dmin * f32(sm1.y);
        let d2 = d * f32(sm2.x);
        let m2 = dmin * f32(sm2.y);
        let u1 = 1u << (2u * p);
        let u2 = 2u << (2u * p);
        for (var l = 0u; l < 32u; l = l + 1u) {
            let qh = src_byte(o + 16u + l);
            let ql = src_byte(o + 48u + 32u * p + l);
            let h1 = select(0u, 16u, (qh & u1) != 0u);
            let h2 = select(0u, 16u, (qh & u2) != 0u);
            put_f32(b, 64u * p + l, d1 * f32((ql & 0xfu) + h1) - m1);
            put_f32(b, 64u * p + 32u + l, d2 * f32((ql >> 4u) + h2) - m2);
        }
    }
}

// dequantize_row_q6_K. CPU twin: q6_k::dequantize_block.
fn dec_q6_k(b: u32) {
    let o = b * 210u;
    let d = f32_of_f16(src_u16(o + 208u));
    for (var h = 0u; h < 2u; h = h + 1u) {
        let ql = o + 64u * h;
        let qh = o + 128u + 32u * h;
        let sc = o + 192u + 8u * h;
        for (var l = 0u; l < 32u; l = l + 1u) {
            let is = l / 16u;
            let a = src_byte(ql + l);
            let c = src_byte(ql + l + 32u);
            let hb = src_byte(qh + l);
            let q1 = i32((a & 0xfu) | ((hb & 3u) << 4u)) - 32;
            let q2 = i32((c & 0xfu) | (((hb >> 2u) & 3u) << 4u)) - 32;
            let q3 = i32((a >> 4u) | (((hb >> 4u) & 3u) << 4u)) - 32;
            let q4 = i32((c >> 4u) | (((hb >> 6u) & 3u) << 4u)) - 32;
            let s1 = f32((i32(src_byte(sc + is)) << 24u) >> 24u);
            let s2 = f32((i32(src_byte(sc + is + 2u)) << 24u) >> 24u);
            let s3 = f32((i32(src_byte(sc + is + 4u)) << 24u) >> 24u);
            let s4 = f32((i32(src_byte(sc + is + 6u)) << 24u) >> 24u);
            put_f32(b, 128u * h + l, (d * s1) * f32(q1));
            put_f32(b, 128u * h + l + 32u, (d * s2) * f32(q2));
            put_f32(b, 128u * h + l + 64u, (d * s3) * f32(q3));
            put_f32(b, 128u * h + l + 96u, (d * s4) * f32(q4));
        }
    }
}

// ---------------------------------------------------------------- scale searches

// The searches work on one group of n <= 32 values at a time (a sub-block's elements, or a
// block's sub-block scales): inputs `sx`, weights `wts`, levels out in `sl`, all filled or
// read by the caller (module-scope private arrays rather than pointer arguments: simpler for
// every back end). `lq` holds the levels of the whole block being encoded.
var<private> sx: array<f32, 32>;
var<private> wts: array<f32, 32>;
var<private> sl: array<u32, 32>;
var<private> laux: array<u32, 32>;
var<private> lq: array<u32, 256>;

// Loads elements off..off+n of block b into `sx`.
fn load_sx(b: u32, off: u32, n: u32) {
    for (var i = 0u; i < n; i = i + 1u) {
        sx[i] = x_at(b, off + i);
    }
}

// Copies the n levels of `sl` to lq[off..off+n].
fn store_sl(off: u32, n: u32) {
    for (var i = 0u; i < n; i = i + 1u) {
        lq[off + i] = sl[i];
    }
}

// make_qx_quants(nmax, n, x = sx, L = sl (level + nmax), rmse_type = 1, qw = wts): the
// caller passes ggml's NULL-weights default x*x in `wts` itself. Returns the scale.
// CPU twin: search::make_qx_quants (lanes twin make_qx_quants_lanes). Calls: Q6_K (32,
// weights x*x or the importance weights), Q3_K weighted (4, its sub-block weights; then 32
// over the 16 scales with their weight sums).
fn make_qx_quants(n: u32, nmax: i32) -> f32 {
    let nmaxf = f32(nmax);
    var xmax = 0.0;
    var amax = 0.0;
    for (var i = 0u; i < n; i = i + 1u) {
        let ax = abs(sx[i]);
        if (ax > amax) {
            amax = ax;
            xmax = sx[i];
        }
    }
    if (amax < group_max_eps()) {
        for (var i = 0u; i < n; i = i + 1u) {
            sl[i] = 0u;
        }
        return 0.0;
    }
    var iscale = soft_div(-nmaxf, xmax);
    var sumlx = 0.0;
    var suml2 = 0.0;
    for (var i = 0u; i < n; i = i + 1u) {
        let xi = sx[i];
        let q = clamp(nearest_int(fmul(iscale, xi)), -nmax, nmax - 1);
        sl[i] = u32(q + nmax);
        let w = wts[i];
        let qf = f32(q);
        sumlx = fadd(sumlx, fmul(fmul(w, xi), qf));
        suml2 = fadd(suml2, fmul(fmul(w, qf), qf));
    }
    var scale = 0.0;
    if (suml2 != 0.0) {
        scale = soft_div(sumlx, suml2);
    }
    var best = fmul(scale, sumlx);
    let tenth = bitcast<f32>(0x3dcccccdu);
    for (var is = -9; is <= 9; is = is + 1) {
        if (is == 0) {
            continue;
        }
        iscale = soft_div(-fadd(nmaxf, fmul(tenth, f32(is))), xmax);
        sumlx = 0.0;
        suml2 = 0.0;
        for (var i = 0u; i < n; i = i + 1u) {
            let xi = sx[i];
            let q = clamp(nearest_int(fmul(iscale, xi)), -nmax, nmax - 1);
            laux[i] = u32(q + nmax);
            let w = wts[i];
            let qf = f32(q);
            sumlx = fadd(sumlx, fmul(fmul(w, xi), qf));
            suml2 = fadd(suml2, fmul(fmul(w, qf), qf));
        }
        if (suml2 > 0.0 && fmul(sumlx, sumlx) > fmul(best, suml2)) {
            for (var i = 0u; i < n; i = i + 1u) {
                sl[i] = laux[i];
            }
            scale = soft_div(sumlx, suml2);
            best = fmul(scale, sumlx);
        }
    }
    return scale;
}

// make_q3_quants(nmax, n, x = sx, L = sl (level + nmax), do_rmse = true): weights x*x, then
// up to 5 passes of coordinate descent. Returns the scale. CPU twin: search::make_q3_quants
// (Q3_K's `_ref` call, nmax 4).
fn make_q3_quants(n: u32, nmax: i32) -> f32 {
    var xmax = 0.0;
    var amax = 0.0;
    for (var i = 0u; i < n; i = i + 1u) {
        let ax = abs(sx[i]);
        if (ax > amax) {
            amax = ax;
            xmax = sx[i];
        }
    }
    if (amax < group_max_eps()) {
        for (var i = 0u; i < n; i = i + 1u) {
            sl[i] = 0u;
        }
        return 0.0;
    }
    let iscale = soft_div(-f32(nmax), xmax);
    var sumlx = 0.0;
    var suml2 = 0.0;
    for (var i = 0u; i < n; i = i + 1u) {
        let xi = sx[i];
        let q = clamp(nearest_int(fmul(iscale, xi)), -nmax, nmax - 1);
        sl[i] = u32(q + nmax);
        let w = fmul(xi, xi);
        let qf = f32(q);
        sumlx = fadd(sumlx, fmul(fmul(w, xi), qf));
        suml2 = fadd(suml2, fmul(fmul(w, qf), qf));
    }
    for (var itry = 0; itry < 5; itry = itry + 1) {
        var n_changed = 0;
        for (var i = 0u; i < n; i = i + 1u) {
            let xi = sx[i];
            let w = fmul(xi, xi);
            let old_l = i32(sl[i]) - nmax;
            let li = f32(old_l);
            var slx = fsub(sumlx, fmul(fmul(w, xi), li));
            if (slx > 0.0) {
                var sl2 = fsub(suml2, fmul(fmul(w, li), li));
                let new_l = clamp(nearest_int(soft_div(fmul(xi, sl2), slx)), -nmax, nmax - 1);
                if (new_l != old_l) {
                    let nl = f32(new_l);
                    slx = fadd(slx, fmul(fmul(w, xi), nl));
                    sl2 = fadd(sl2, fmul(fmul(w, nl), nl));
                    if (sl2 > 0.0 && fmul(fmul(slx, slx), suml2) > fmul(fmul(sumlx, sumlx), sl2)) {
                        sl[i] = u32(new_l + nmax);
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed = n_changed + 1;
                    }
                }
            }
        }
        if (n_changed == 0) {
            break;
        }
    }
    if (suml2 > 0.0) {
        return soft_div(sumlx, suml2);
    }
    return 0.0;
}

// make_qkx2_quants (v3 false) or make_qkx3_quants (v3 true) over n values x = sx, weights
// `wts`, L = sl; `use_mad` sums weighted absolute instead of squared errors. Returns (scale,
// the_min). CPU twins: search::make_qkx2_quants / make_qkx3_quants (lanes twin
// make_qkx_quants_lanes). Calls: Q4_K ref (32, 15, -1, 0.1, 20), Q5_K ref (32, 31, -0.5,
// 0.1, 15), Q4_K/Q5_K weighted (32, nmax, -0.9, 0.05, 36, v3), Q2_K ref (16, 3, -0.5, 0.1,
// 15, mad), Q2_K weighted (16, 3, -0.9, 0.05, 36, v3).
fn make_qkx_quants(n: u32, nmax: i32, rmin: f32, rdelta: f32, nstep: i32, v3: bool, use_mad: bool) -> vec2<f32> {
    let nmaxf = f32(nmax);
    let x0 = sx[0];
    var xmin = x0;
    var xmax = x0;
    var sum_w = wts[0];
    var sum_x = fmul(sum_w, x0);
    for (var i = 1u; i < n; i = i + 1u) {
        let xi = sx[i];
        if (xi < xmin) {
            xmin = xi;
        }
        if (xi > xmax) {
            xmax = xi;
        }
        let w = wts[i];
        sum_w = fadd(sum_w, w);
        sum_x = fadd(sum_x, fmul(w, xi));
    }
    if (xmin > 0.0) {
        xmin = 0.0;
    }
    if (xmax == xmin || (v3 && xmax <= xmin)) {
        for (var i = 0u; i < n; i = i + 1u) {
            sl[i] = 0u;
        }
        return vec2<f32>(0.0, -xmin);
    }
    var iscale = soft_div(nmaxf, fsub(xmax, xmin));
    var scale = soft_div(1.0, iscale);
    var best_error = 0.0;
    for (var i = 0u; i < n; i = i + 1u) {
        let xi = sx[i];
        let q = clamp(nearest_int(fmul(iscale, fsub(xi, xmin))), 0, nmax);
        sl[i] = u32(q);
        var diff = fsub(fadd(fmul(scale, f32(q)), xmin), xi);
        if (use_mad) {
            diff = abs(diff);
        } else {
            diff = fmul(diff, diff);
        }
        best_error = fadd(best_error, fmul(wts[i], diff));
    }
    if (nstep < 1) {
        return vec2<f32>(scale, -xmin);
    }
    for (var is = 0; is <= nstep; is = is + 1) {
        // as ggml: `xmin` may have been replaced by a winning trial's min; later trials
        // measure from it
        iscale = soft_div(fadd(fadd(rmin, fmul(rdelta, f32(is))), nmaxf), fsub(xmax, xmin));
        var sum_l = 0.0;
        var sum_l2 = 0.0;
        var sum_xl = 0.0;
        for (var i = 0u; i < n; i = i + 1u) {
            let xi = sx[i];
            var q = 0;
            if (v3) {
                let v = fmul(iscale, fsub(xi, xmin));
                if (v > 0.0) {
                    q = nearest_int(select(nmaxf, v, v < nmaxf));
                }
            } else {
                q = clamp(nearest_int(fmul(iscale, fsub(xi, xmin))), 0, nmax);
            }
            laux[i] = u32(q) & 0xffu;
            let w = wts[i];
            let qf = f32(q);
            sum_l = fadd(sum_l, fmul(w, qf));
            sum_l2 = fadd(sum_l2, fmul(fmul(w, qf), qf));
            sum_xl = fadd(sum_xl, fmul(fmul(w, qf), xi));
        }
        let dd = fsub(fmul(sum_w, sum_l2), fmul(sum_l, sum_l));
        if (dd > 0.0) {
            var this_scale = soft_div(fsub(fmul(sum_w, sum_xl), fmul(sum_x, sum_l)), dd);
            var this_min = soft_div(fsub(fmul(sum_l2, sum_x), fmul(sum_l, sum_xl)), dd);
            if (this_min > 0.0) {
                this_min = 0.0;
                this_scale = soft_div(sum_xl, sum_l2);
            }
            var cur_error = 0.0;
            for (var i = 0u; i < n; i = i + 1u) {
                var diff = fsub(fadd(fmul(this_scale, f32(laux[i])), this_min), sx[i]);
                if (use_mad) {
                    diff = abs(diff);
                } else {
                    diff = fmul(diff, diff);
                }
                cur_error = fadd(cur_error, fmul(wts[i], diff));
            }
            if (cur_error < best_error) {
                for (var i = 0u; i < n; i = i + 1u) {
                    sl[i] = laux[i];
                }
                best_error = cur_error;
                scale = this_scale;
                xmin = this_min;
            }
        }
    }
    return vec2<f32>(scale, -xmin);
}

// make_qp_quants(nmax, n, x = sx, L = sl, quant_weights = wts) for the weighted paths:
// quantizes the sub-block scales (or mins) of a block, Q4_K/Q5_K (8, 63), Q2_K (16, 15).
// As ggml, the first rounding is stored unclamped (truncated to a byte). Returns the scale.
// CPU twin: search::make_qp_quants.
fn make_qp_quants(n: u32, nmax: i32) -> f32 {
    let nmaxf = f32(nmax);
    var xmax = 0.0;
    for (var i = 0u; i < n; i = i + 1u) {
        xmax = select(sx[i], xmax, xmax > sx[i]);
    }
    if (xmax < group_max_eps()) {
        for (var i = 0u; i < n; i = i + 1u) {
            sl[i] = 0u;
        }
        return 0.0;
    }
    var iscale = soft_div(nmaxf, xmax);
    for (var i = 0u; i < n; i = i + 1u) {
        sl[i] = u32(nearest_int(fmul(iscale, sx[i]))) & 0xffu;
    }
    let scale = soft_div(1.0, iscale);
    var best_mse = 0.0;
    for (var i = 0u; i < n; i = i + 1u) {
        let diff = fsub(sx[i], fmul(scale, f32(sl[i])));
        best_mse = fadd(best_mse, fmul(fmul(wts[i], diff), diff));
    }
    let tenth = bitcast<f32>(0x3dcccccdu);
    for (var is = -4; is <= 4; is = is + 1) {
        if (is == 0) {
            continue;
        }
        let iscale_is = soft_div(fadd(fmul(tenth, f32(is)), nmaxf), xmax);
        let scale_is = soft_div(1.0, iscale_is);
        var mse = 0.0;
        for (var i = 0u; i < n; i = i + 1u) {
            let q = min(nearest_int(fmul(iscale_is, sx[i])), nmax);
            let diff = fsub(sx[i], fmul(scale_is, f32(q)));
            mse = fadd(mse, fmul(fmul(wts[i], diff), diff));
        }
        if (mse < best_mse) {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    var sumlx = 0.0;
    var suml2 = 0.0;
    for (var i = 0u; i < n; i = i + 1u) {
        let q = min(nearest_int(fmul(iscale, sx[i])), nmax);
        sl[i] = u32(q) & 0xffu;
        let w = wts[i];
        let qf = f32(q);
        sumlx = fadd(sumlx, fmul(fmul(w, sx[i]), qf));
        suml2 = fadd(suml2, fmul(fmul(w, qf), qf));
    }
    for (var itry = 0; itry < 5; itry = itry + 1) {
        var n_changed = 0;
        for (var i = 0u; i < n; i = i + 1u) {
            let w = wts[i];
            let xi = sx[i];
            let li = f32(sl[i]);
            var slx = fsub(sumlx, fmul(fmul(w, xi), li));
            var sl2 = fsub(suml2, fmul(fmul(w, li), li));
            if (slx > 0.0 && sl2 > 0.0) {
                let new_l = min(nearest_int(soft_div(fmul(xi, sl2), slx)), nmax);
                if (new_l != i32(sl[i])) {
                    let nl = f32(new_l);
                    slx = fadd(slx, fmul(fmul(w, xi), nl));
                    sl2 = fadd(sl2, fmul(fmul(w, nl), nl));
                    if (fmul(fmul(slx, slx), suml2) > fmul(fmul(sumlx, sumlx), sl2)) {
                        sl[i] = u32(new_l) & 0xffu;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed = n_changed + 1;
                    }
                }
            }
        }
        if (n_changed == 0) {
            break;
        }
    }
    if (suml2 > 0.0) {
        return soft_div(sumlx, suml2);
    }
    return 0.0;
}

// ---------------------------------------------------------------- encoders

// sum over the block of x*x, in element order (the weighted paths' sigma2 numerator).
fn block_sum_x2(b: u32) -> f32 {
    var s = 0.0;
    for (var i = 0u; i < QK_K; i = i + 1u) {
        let v = x_at(b, i);
        s = fadd(s, fmul(v, v));
    }
    return s;
}

// The weighted paths' sub-block weights: wts[i] = qw * sqrt(sigma2 + x*x) for the n
// elements of block b at `off` (already in `sx`); returns their sum, in element order.
fn fill_weighted(b: u32, off: u32, n: u32, sigma2: f32) -> f32 {
    var s = 0.0;
    for (var i = 0u; i < n; i = i + 1u) {
        let v = sx[i];
        let w = fmul(qw_at(b, off + i), soft_sqrt(fadd(sigma2, fmul(v, v))));
        wts[i] = w;
        s = fadd(s, w);
    }
    return s;
}

// Packs 2-bit levels lq (0..=3) as Q2_K/Q3_K store them, at byte `o`: byte 32*h + l holds
// elements 128*h + l + 32*k at bits 2k. CPU twin: kquants::pack_2bit.
fn pack_2bit(o: u32) {
    for (var h = 0u; h < 2u; h = h + 1u) {
        let j = 128u * h;
        for (var i = 0u; i < 32u; i = i + 1u) {
            let v = lq[j + i] | (lq[j + i + 32u] << 2u) | (lq[j + i + 64u] << 4u) | (lq[j + i + 96u] << 6u);
            put_byte(o + 32u * h + i, v);
        }
    }
}

// quantize_row_q2_K_ref, or with `weighted` quantize_row_q2_K_impl with the importance
// weights, for block b, bytes at `o` of out_words. CPU twin: q2_k::quantize_block_ref /
// quantize_block_weighted (and q2_k::requantize).
fn enc_q2_k(b: u32, o: u32, weighted: bool) {
    var scales: array<f32, 16>;
    var mins: array<f32, 16>;
    var sw: array<f32, 16>;
    var sc: array<u32, 16>;
    var sigma2 = 0.0;
    if (weighted) {
        // sumx2 / 256: an exact scaling by a power of two
        sigma2 = fmul(block_sum_x2(b), 0.00390625);
    }
    for (var j = 0u; j < 16u; j = j + 1u) {
        load_sx(b, 16u * j, 16u);
        var sm: vec2<f32>;
        if (weighted) {
            sw[j] = fill_weighted(b, 16u * j, 16u, sigma2);
            sm = make_qkx_quants(16u, 3, bitcast<f32>(0xbf666666u), bitcast<f32>(0x3d4ccccdu), 36, true, false);
        } else {
            for (var i = 0u; i < 16u; i = i + 1u) {
                wts[i] = abs(sx[i]);
            }
            sm = make_qkx_quants(16u, 3, -0.5, bitcast<f32>(0x3dcccccdu), 15, false, true);
        }
        scales[j] = sm.x;
        mins[j] = sm.y;
        store_sl(16u * j, 16u);
    }
    var dh = 0u;
    var mh = 0u;
    if (weighted) {
        for (var j = 0u; j < 16u; j = j + 1u) {
            sx[j] = scales[j];
            wts[j] = sw[j];
        }
        dh = f16_of(make_qp_quants(16u, 15));
        for (var j = 0u; j < 16u; j = j + 1u) {
            sc[j] = sl[j];
            sx[j] = mins[j];
        }
        mh = f16_of(make_qp_quants(16u, 15));
        for (var j = 0u; j < 16u; j = j + 1u) {
            sc[j] = (sc[j] | (sl[j] << 4u)) & 0xffu;
        }
    } else {
        var max_scale = 0.0;
        var max_min = 0.0;
        for (var j = 0u; j < 16u; j = j + 1u) {
            if (scales[j] > max_scale) {
                max_scale = scales[j];
            }
            if (mins[j] > max_min) {
                max_min = mins[j];
            }
        }
        for (var j = 0u; j < 16u; j = j + 1u) {
            sc[j] = 0u;
        }
        if (max_scale > 0.0) {
            let iscale = soft_div(15.0, max_scale);
            for (var j = 0u; j < 16u; j = j + 1u) {
                sc[j] = u32(nearest_int(fmul(iscale, scales[j]))) & 0xffu;
            }
            dh = f16_of(soft_div(max_scale, 15.0));
        }
        if (max_min > 0.0) {
            let iscale = soft_div(15.0, max_min);
            for (var j = 0u; j < 16u; j = j + 1u) {
                sc[j] = sc[j] | ((u32(nearest_int(fmul(iscale, mins[j]))) << 4u) & 0xffu);
            }
            mh = f16_of(soft_div(max_min, 15.0));
        }
    }
    for (var j = 0u; j < 16u; j = j + 1u) {
        put_byte(o + j, sc[j]);
    }
    put_u16(o + 80u, dh);
    put_u16(o + 82u, mh);
    let d_all = f32_of_f16(dh);
    let dmin_all = f32_of_f16(mh);
    for (var j = 0u; j < 16u; j = j + 1u) {
        // products of an f16 and a 4-bit integer: exact
        let d = d_all * f32(sc[j] & 0xfu);
        if (d == 0.0) {
            continue;
        }
        let dm = dmin_all * f32(sc[j] >> 4u);
        for (var i = 0u; i < 16u; i = i + 1u) {
            let q = nearest_int(soft_div(fadd(x_at(b, 16u * j + i), dm), d));
            lq[16u * j + i] = u32(clamp(q, 0, 3));
        }
    }
    pack_2bit(o + 16u);
}

// quantize_row_q3_K_ref, or with `weighted` quantize_row_q3_K_impl with the importance
// weights, for block b, bytes at `o` of out_words. CPU twin: q3_k::quantize_block_ref /
// quantize_block_weighted and q3_k::finish_block.
fn enc_q3_k(b: u32, o: u32, weighted: bool) {
    var scales: array<f32, 16>;
    var sw: array<f32, 16>;
    // the 6-bit scales, stored + 32
    var sc: array<u32, 16>;
    var sigma2 = 0.0;
    if (weighted) {
        // 2 * sumx2 / 256: both steps exact scalings by powers of two
        sigma2 = fmul(fmul(2.0, block_sum_x2(b)), 0.00390625);
    }
    for (var j = 0u; j < 16u; j = j + 1u) {
        load_sx(b, 16u * j, 16u);
        if (weighted) {
            sw[j] = fill_weighted(b, 16u * j, 16u, sigma2);
            scales[j] = make_qx_quants(16u, 4);
        } else {
            scales[j] = make_q3_quants(16u, 4);
        }
        store_sl(16u * j, 16u);
    }
    var dh = 0u;
    if (weighted) {
        for (var j = 0u; j < 16u; j = j + 1u) {
            sx[j] = scales[j];
            wts[j] = sw[j];
        }
        dh = f16_of(make_qx_quants(16u, 32));
        for (var j = 0u; j < 16u; j = j + 1u) {
            sc[j] = sl[j];
        }
    } else {
        var max_scale = 0.0;
        var amax = 0.0;
        for (var j = 0u; j < 16u; j = j + 1u) {
            sc[j] = 0u;
            let a = abs(scales[j]);
            if (a > amax) {
                amax = a;
                max_scale = scales[j];
            }
        }
        if (max_scale != 0.0) {
            let iscale = soft_div(-32.0, max_scale);
            for (var j = 0u; j < 16u; j = j + 1u) {
                // `nearest_int(..) as i8`, then clamped to -32..=31
                let q = (nearest_int(fmul(iscale, scales[j])) << 24u) >> 24u;
                sc[j] = u32(clamp(q, -32, 31) + 32);
            }
            dh = f16_of(soft_div(1.0, iscale));
        }
    }
    // 12 bytes at 96: low nibbles of scales 0..7 in bytes 0..7, of 8..15 in their high
    // nibbles; top 2 bits of scale j in byte 8 + j%4 at bit 2*(j/4) (q3_k::put_scale)
    for (var j = 0u; j < 16u; j = j + 1u) {
        let l = sc[j];
        if (j < 8u) {
            put_byte(o + 96u + j, l & 0xfu);
        } else {
            put_byte(o + 96u + j - 8u, (l & 0xfu) << 4u);
        }
        put_byte(o + 104u + (j % 4u), (l >> 4u) << (2u * (j / 4u)));
    }
    put_u16(o + 108u, dh);
    let d_all = f32_of_f16(dh);
    for (var j = 0u; j < 16u; j = j + 1u) {
        // an f16 times a 6-bit integer: exact. The packed scale reads back as sc & 63 = sc.
        let d = d_all * f32(i32(sc[j]) - 32);
        if (d == 0.0) {
            continue;
        }
        for (var i = 0u; i < 16u; i = i + 1u) {
            let q = clamp(nearest_int(soft_div(x_at(b, 16u * j + i), d)), -4, 3);
            lq[16u * j + i] = u32(q + 4);
        }
    }
    // hmask (32 bytes at 0): bit k of byte l is the 3rd bit of element 32*k + l
    for (var l = 0u; l < 32u; l = l + 1u) {
        var m = 0u;
        for (var k = 0u; k < 8u; k = k + 1u) {
            if (lq[32u * k + l] > 3u) {
                m = m | (1u << k);
                lq[32u * k + l] = lq[32u * k + l] - 4u;
            }
        }
        put_byte(o + l, m);
    }
    pack_2bit(o + 32u);
}

// quantize_row_q4_K_ref / quantize_row_q5_K_ref (q5 true), or with `weighted` the
// quantize_row_qX_K_impl paths, for block b, bytes at `o` of out_words. CPU twins:
// k4::quantize_ref / k4::quantize_weighted (q4_k.rs, q5_k.rs pack the levels).
fn enc_q45_k(b: u32, o: u32, q5: bool, weighted: bool) {
    let nmax = select(15, 31, q5);
    var scales: array<f32, 8>;
    var mins: array<f32, 8>;
    if (weighted) {
        // 2 * sum_x2 / 256: both steps exact scalings by powers of two
        let sigma2 = fmul(fmul(2.0, block_sum_x2(b)), 0.00390625);
        var sw: array<f32, 8>;
        for (var j = 0u; j < 8u; j = j + 1u) {
            load_sx(b, 32u * j, 32u);
            sw[j] = fill_weighted(b, 32u * j, 32u, sigma2);
            let sm = make_qkx_quants(32u, nmax, bitcast<f32>(0xbf666666u), bitcast<f32>(0x3d4ccccdu), 36, true, false);
            scales[j] = sm.x;
            mins[j] = sm.y;
            store_sl(32u * j, 32u);
        }
        for (var j = 0u; j < 8u; j = j + 1u) {
            sx[j] = scales[j];
            wts[j] = sw[j];
        }
        let d_block = make_qp_quants(8u, 63);
        for (var j = 0u; j < 8u; j = j + 1u) {
            fin_ls[j] = sl[j];
            sx[j] = mins[j];
        }
        let m_block = make_qp_quants(8u, 63);
        for (var j = 0u; j < 8u; j = j + 1u) {
            fin_lm[j] = sl[j];
        }
        if (q5) {
            for (var j = 0u; j < 8u; j = j + 1u) {
                fin_ls[j] = min(fin_ls[j], 63u);
                fin_lm[j] = min(fin_lm[j], 63u);
            }
        }
        finish_q45_k(b, o, q5, d_block, m_block);
        return;
    }
    var max_scale = 0.0;
    var max_min = 0.0;
    for (var j = 0u; j < 8u; j = j + 1u) {
        load_sx(b, 32u * j, 32u);
        var sum_x2 = 0.0;
        for (var i = 0u; i < 32u; i = i + 1u) {
            sum_x2 = fadd(sum_x2, fmul(sx[i], sx[i]));
        }
        // (sum_x2 / 32).sqrt(): dividing by 32 is multiplying by 2^-5, exactly the same value
        let av_x = soft_sqrt(fmul(sum_x2, 0.03125));
        for (var i = 0u; i < 32u; i = i + 1u) {
            wts[i] = fadd(av_x, abs(sx[i]));
        }
        var sm: vec2<f32>;
        if (q5) {
            sm = make_qkx_quants(32u, 31, -0.5, bitcast<f32>(0x3dcccccdu), 15, false, false);
        } else {
            sm = make_qkx_quants(32u, 15, -1.0, bitcast<f32>(0x3dcccccdu), 20, false, false);
        }
        store_sl(32u * j, 32u);
        scales[j] = sm.x;
        mins[j] = sm.y;
        if (sm.x > max_scale) {
            max_scale = sm.x;
        }
        if (sm.y > max_min) {
            max_min = sm.y;
        }
    }
    var inv_scale = 0.0;
    if (max_scale > 0.0) {
        inv_scale = soft_div(63.0, max_scale);
    }
    var inv_min = 0.0;
    if (max_min > 0.0) {
        inv_min = soft_div(63.0, max_min);
    }
    for (var j = 0u; j < 8u; j = j + 1u) {
        fin_ls[j] = min(u32(nearest_int(fmul(inv_scale, scales[j]))) & 0xffu, 63u);
        fin_lm[j] = min(u32(nearest_int(fmul(inv_min, mins[j]))) & 0xffu, 63u);
    }
    finish_q45_k(b, o, q5, soft_div(max_scale, 63.0), soft_div(max_min, 63.0));
}

// The tail shared by the Q4_K/Q5_K encoders: pack scales/mins (pack_scale_min_k4), the f16
// super-scales, requantize against them (qX_k::requantize) and pack the levels
// (qX_k::pack_levels).
// The 6-bit scales and mins handed to finish_q45_k.
var<private> fin_ls: array<u32, 8>;
var<private> fin_lm: array<u32, 8>;

fn finish_q45_k(b: u32, o: u32, q5: bool, d_block: f32, m_block: f32) {
    let nmax = select(15, 31, q5);
    for (var j = 0u; j < 8u; j = j + 1u) {
        let s = fin_ls[j];
        let m = fin_lm[j];
        if (j < 4u) {
            put_byte(o + 4u + j, s);
            put_byte(o + 8u + j, m);
        } else {
            put_byte(o + 8u + j, (s & 0xfu) | ((m & 0xfu) << 4u));
            put_byte(o + j, (s >> 4u) << 6u);
            put_byte(o + 4u + j, (m >> 4u) << 6u);
        }
    }
    let dh = f16_of(d_block);
    let mh = f16_of(m_block);
    put_u16(o, dh);
    put_u16(o + 2u, mh);
    let d_all = f32_of_f16(dh);
    let dmin_all = f32_of_f16(mh);
    for (var j = 0u; j < 8u; j = j + 1u) {
        // products of an f16 and a 6-bit integer: exact
        let d = d_all * f32(fin_ls[j]);
        if (d == 0.0) {
            continue;
        }
        let dm = dmin_all * f32(fin_lm[j]);
        for (var i = 0u; i < 32u; i = i + 1u) {
            let q = nearest_int(soft_div(fadd(x_at(b, 32u * j + i), dm), d));
            lq[32u * j + i] = u32(clamp(q, 0, nmax));
        }
    }
    if (!q5) {
        for (var p = 0u; p < 4u; p = p + 1u) {
            for (var i = 0u; i < 32u; i = i + 1u) {
                put_byte(o + 16u + 32u * p + i, lq[64u * p + i] | (lq[64u * p + 32u + i] << 4u));
            }
        }
        return;
    }
    // Q5_K: qh (32 bytes at 16) holds the 5th bits, qs (128 bytes at 48) the low nibbles
    for (var p = 0u; p < 4u; p = p + 1u) {
        let m1 = 1u << (2u * p);
        let m2 = 2u << (2u * p);
        for (var i = 0u; i < 32u; i = i + 1u) {
            var l1 = lq[64u * p + i];
            if (l1 > 15u) {
                l1 = l1 - 16u;
                put_byte(o + 16u + i, m1);
            }
            var l2 = lq[64u * p + 32u + i];
            if (l2 > 15u) {
                l2 = l2 - 16u;
                put_byte(o + 16u + i, m2);
            }
            put_byte(o + 48u + 32u * p + i, l1 | (l2 << 4u));
        }
    }
}

// quantize_row_q6_K_ref (weighted: quantize_row_q6_K_impl with the importance weights) for
// block b, bytes at `o`. CPU twin: q6_k::quantize_block_ref / quantize_block_weighted and
// q6_k::finish_block.
fn enc_q6_k(b: u32, o: u32, weighted: bool) {
    var scales: array<f32, 16>;
    var max_scale = 0.0;
    var max_abs_scale = 0.0;
    for (var j = 0u; j < 16u; j = j + 1u) {
        load_sx(b, 16u * j, 16u);
        for (var i = 0u; i < 16u; i = i + 1u) {
            if (weighted) {
                wts[i] = qw_at(b, 16u * j + i);
            } else {
                wts[i] = fmul(sx[i], sx[i]);
            }
        }
        let s = make_qx_quants(16u, 32);
        store_sl(16u * j, 16u);
        scales[j] = s;
        let a = abs(s);
        if (a > max_abs_scale) {
            max_abs_scale = a;
            max_scale = s;
        }
    }
    if (max_abs_scale < group_max_eps()) {
        return; // an all-zero block (d = f16(0) = 0)
    }
    let iscale = soft_div(-128.0, max_scale);
    let dh = f16_of(soft_div(1.0, iscale));
    put_u16(o + 208u, dh);
    var sc: array<i32, 16>;
    for (var j = 0u; j < 16u; j = j + 1u) {
        // `min(127) as i8`
        sc[j] = (min(nearest_int(fmul(iscale, scales[j])), 127) << 24u) >> 24u;
        put_byte(o + 192u + j, u32(sc[j]));
    }
    let d_all = f32_of_f16(dh);
    for (var j = 0u; j < 16u; j = j + 1u) {
        // an f16 times an 8-bit integer: exact
        let d = d_all * f32(sc[j]);
        if (d == 0.0) {
            continue;
        }
        for (var i = 0u; i < 16u; i = i + 1u) {
            let q = clamp(nearest_int(soft_div(x_at(b, 16u * j + i), d)), -32, 31);
            lq[16u * j + i] = u32(q + 32);
        }
    }
    for (var h = 0u; h < 2u; h = h + 1u) {
        let j = 128u * h;
        for (var i = 0u; i < 32u; i = i + 1u) {
            let q1 = lq[j + i] & 0xffu;
            let q2 = lq[j + i + 32u] & 0xffu;
            let q3 = lq[j + i + 64u] & 0xffu;
            let q4 = lq[j + i + 96u] & 0xffu;
            put_byte(o + 64u * h + i, (q1 & 0xfu) | ((q3 & 0xfu) << 4u));
            put_byte(o + 64u * h + i + 32u, (q2 & 0xfu) | ((q4 & 0xfu) << 4u));
            put_byte(o + 128u + 32u * h + i, (q1 >> 4u) | ((q2 >> 4u) << 2u) | ((q3 >> 4u) << 4u) | ((q4 >> 4u) << 6u));
        }
    }
}

// Runs the encoder of type id `ty` over the `bpg` blocks (of `bb` bytes) of group g.
fn encode_group(g: u32, ty: u32, bpg: u32, bb: u32) {
    clear_out();
    let first = g * bpg;
    let n = min(bpg, params.n_blocks - first);
    let weighted = params.has_weights == 1u;
    for (var k = 0u; k < n; k = k + 1u) {
        let b = first + k;
        let o = k * bb;
        switch ty {
            case 10u: { enc_q2_k(b, o, weighted); }
            case 11u: { enc_q3_k(b, o, weighted); }
            case 12u: { enc_q45_k(b, o, false, weighted); }
            case 13u: { enc_q45_k(b, o, true, weighted); }
            case 14u: { enc_q6_k(b, o, weighted); }
            default: {}
        }
    }
    flush_out(g, bpg * bb / 4u, n * bb);
}

// ---------------------------------------------------------------- entry points
// One entry point per direction, specialised per type by the pipeline constants TY, BPG, BB
// (gpu::table::GPU_CODECS).

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
            case 10u: { dec_q2_k(b); }
            case 11u: { dec_q3_k(b); }
            case 12u: { dec_q4_k(b); }
            case 13u: { dec_q5_k(b); }
            case 14u: { dec_q6_k(b); }
            default: {}
        }
    }
}
