// Non-linear 4-bit codecs IQ4_NL (32-element blocks) and IQ4_XS (256-element super-blocks of
// eight 32-element groups): 4-bit indices into the code book kvalues_iq4nl times a scale.
// Encoders equal ggml's quantize_row_iq4_nl_impl as quantize_iq4_nl / quantize_iq4_xs call it
// (ntry = 7), with and without importance weights, byte for byte; decoders equal
// dequantize_row_iq4_nl / _xs bit for bit. CPU twins: src/codec/nonlinear/quantize.rs
// (`iq4_nl_block`, `iq4_xs_block`, `group_scale`, `fit`, `best_index_iq4nl`), mirrored
// operation for operation, and src/codec/nonlinear/mod.rs (decoders); tests/gpu_iquants.rs
// holds the two together.
//
// Binding layout: gpu::codecs (params, src, dst) and binding 3: the row's importance weights
// (row_len f32, when params.has_weights == 1), then the 16 code book levels as i32 and the
// host's default NaN, built by gpu::lookup from the CPU codec's table (never a copy in this
// file).
//
// Exactness by construction (as kquants.wgsl): every product or sum whose rounding the bytes
// depend on goes through `keep` (`fmul`, `fadd`, `fsub`), so it is materialised as rounded:
// no FMA contraction, no reassociation. Divisions and square roots use common.wgsl's integer
// `soft_div` / `soft_sqrt` (correctly rounded); f32 -> f16 the integer routine with ggml's
// NaN rule. Dividing by 32 is multiplying by 2^-5 (the same correctly rounded value).
// Overflow: a block with |x| >= 2^64 squares to infinity and the CPU's sums meet inf - inf;
// WGSL lets a compiler assume no NaN, so every operation returns the host's default NaN for
// any NaN (`nanfix`) and the comparisons that may see NaN or infinity are decided on the
// bits (`gt`, `nonzero`): the bytes stay the CPU's.
// Decoders: d * (ls - 32) * level is exact in f32 (11 + 5 + 7 bits), so no rounding or
// fusion can change it.
//
// Encoders give each invocation whole blocks filling whole words (IQ4_NL 2 x 18 bytes, IQ4_XS
// 136 bytes). Loop budget (common.wgsl, LOOP BUDGET): a 32-element group spends 16 fits of 32
// iterations; an IQ4_XS block 8 groups (~4.1k iterations) plus ~1k for weights and packing,
// an IQ4_NL group of 2 blocks ~1.2k. The 14 level comparisons of an index are written out.

@group(0) @binding(0) var<uniform> params: CodecParams;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
@group(0) @binding(3) var<storage, read> side: array<u32>;

const QK4_NL: u32 = 32u;
const QK_K: u32 = 256u;

// ---------------------------------------------------------------- exact float plumbing

// The value `x`, rounded and materialised: the compiler cannot see through the OR with a
// uniform zero, so it cannot fuse or reassociate across this point.
fn keep(x: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(x) | params.zero);
}

// The host CPU's default NaN (x86: 0xffc00000), word 16 of the lookup table.
var<private> host_nan: u32;

// `x`, with any NaN replaced by the host's default NaN. With finite inputs (the pipeline
// refuses NaN and infinity) every NaN the CPU twin meets is that default NaN, made by an
// invalid operation (inf - inf, 0 * inf, inf / inf) once a square or a sum overflows, and
// propagated as is; so each operation below returns it for any NaN.
fn nanfix(x: f32) -> f32 {
    let u = bitcast<u32>(x);
    return bitcast<f32>(select(u, host_nan, is_nan_bits(u)));
}

fn fmul(a: f32, b: f32) -> f32 {
    return nanfix(keep(a * b));
}

fn fadd(a: f32, b: f32) -> f32 {
    return nanfix(keep(a + b));
}

fn fsub(a: f32, b: f32) -> f32 {
    return nanfix(keep(a - b));
}

fn fdiv(a: f32, b: f32) -> f32 {
    return nanfix(soft_div(a, b));
}

fn fsqrt(a: f32) -> f32 {
    return nanfix(soft_sqrt(a));
}

// |x|, by clearing the sign bit (NaN stays NaN).
fn fabs(x: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(x) & 0x7fffffffu);
}

// a > b as IEEE compares (false when either is NaN; -0 == +0), decided on the bits, so no
// finite-math assumption of a shader compiler can change it.
fn ord_key(x: f32) -> i32 {
    let u = bitcast<u32>(x);
    let m = i32(u & 0x7fffffffu);
    return select(m, -m, u >= 0x80000000u);
}

fn gt(a: f32, b: f32) -> bool {
    if (is_nan_bits(bitcast<u32>(a)) || is_nan_bits(bitcast<u32>(b))) {
        return false;
    }
    return ord_key(a) > ord_key(b);
}

// x != 0 as IEEE compares (true for NaN).
fn nonzero(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) != 0u;
}

// ggml's nearest_int: round to nearest even via 1.5 * 2^23. CPU twin: search::nearest_int.
fn nearest_int(fval: f32) -> i32 {
    let val = fadd(keep(fval), 12582912.0);
    return (bitcast<i32>(val) & 0x7fffff) - 0x400000;
}

// ggml's GROUP_MAX_EPS (1e-15f)
fn group_max_eps() -> f32 {
    return bitcast<f32>(0x26901d7du);
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

// Output words of one encoder group (up to 136 bytes), zero-initialised; bytes are ORed in.
var<private> out_words: array<u32, 34>;

fn clear_out() {
    for (var i = 0u; i < 34u; i = i + 1u) {
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

// Element j of block b of the tile (blocks of `be` elements).
fn x_at(b: u32, be: u32, j: u32) -> f32 {
    return bitcast<f32>(src[params.src_offset + b * be + j]);
}

// Importance weight of element j of block b (column (b % blocks_per_row) * be + j).
fn qw_at(b: u32, be: u32, j: u32) -> f32 {
    return bitcast<f32>(side[(b % params.blocks_per_row) * be + j]);
}

// Byte i of the tile's packed source.
fn src_byte(i: u32) -> u32 {
    return byte_of(src[params.src_offset + (i >> 2u)], i & 3u);
}

fn src_u16(i: u32) -> u32 {
    return src_byte(i) | (src_byte(i + 1u) << 8u);
}

fn put_f32(b: u32, be: u32, j: u32, v: f32) {
    dst[params.dst_offset + b * be + j] = bitcast<u32>(v);
}

// The code book kvalues_iq4nl as f32, loaded from binding 3 (after the weights, if any).
var<private> lv: array<f32, 16>;

fn load_levels() {
    let base = select(0u, params.row_len, params.has_weights == 1u);
    for (var i = 0u; i < 16u; i = i + 1u) {
        lv[i] = f32(bitcast<i32>(side[base + i]));
    }
    host_nan = side[base + 16u];
}

// ---------------------------------------------------------------- the search

// ggml's best_index_int8(16, kvalues_iq4nl, x): the level nearest to x, a tie to the upper
// one, NaN to the last. CPU twin: quantize::best_index_iq4nl (one plus the number of levels
// 1..=14 at or below x is the first level above x).
fn best_index(x: f32) -> u32 {
    if (is_nan_bits(bitcast<u32>(x)) || x >= lv[15]) {
        return 15u;
    }
    if (x <= lv[0]) {
        return 0u;
    }
    var mu = 1u;
    mu = mu + select(0u, 1u, x >= lv[1]);
    mu = mu + select(0u, 1u, x >= lv[2]);
    mu = mu + select(0u, 1u, x >= lv[3]);
    mu = mu + select(0u, 1u, x >= lv[4]);
    mu = mu + select(0u, 1u, x >= lv[5]);
    mu = mu + select(0u, 1u, x >= lv[6]);
    mu = mu + select(0u, 1u, x >= lv[7]);
    mu = mu + select(0u, 1u, x >= lv[8]);
    mu = mu + select(0u, 1u, x >= lv[9]);
    mu = mu + select(0u, 1u, x >= lv[10]);
    mu = mu + select(0u, 1u, x >= lv[11]);
    mu = mu + select(0u, 1u, x >= lv[12]);
    mu = mu + select(0u, 1u, x >= lv[13]);
    mu = mu + select(0u, 1u, x >= lv[14]);
    if (fsub(x, lv[mu - 1u]) < fsub(lv[mu], x)) {
        return mu - 1u;
    }
    return mu;
}

// One 32-element group: its elements, their weights; the indices of the (super-)block.
var<private> xg: array<f32, 32>;
var<private> wg: array<f32, 32>;
var<private> lg: array<u32, 256>;

// `fit`: (sum w*q*x, sum w*q*q) of the group quantized with inverse scale id, in element
// order, `(w*q)*x` as C evaluates `w*q*x`; with `store` the indices go to lg[lo..lo+32].
fn fit(id: f32, lo: u32, store: bool) -> vec2<f32> {
    var sumqx = 0.0;
    var sumq2 = 0.0;
    for (var j = 0u; j < QK4_NL; j = j + 1u) {
        let l = best_index(fmul(id, xg[j]));
        if (store) {
            lg[lo + j] = l;
        }
        let q = lv[l];
        let wq = fmul(wg[j], q);
        sumqx = fadd(sumqx, fmul(wq, xg[j]));
        sumq2 = fadd(sumq2, fmul(wq, q));
    }
    return vec2<f32>(sumqx, sumq2);
}

// The scale search of one group (the first loop body of quantize_row_iq4_nl_impl, ntry = 7):
// the group's scale, 0 when its largest magnitude is below GROUP_MAX_EPS (then lg is left
// alone, as in ggml). CPU twin: quantize::group_scale.
fn group_scale(lo: u32) -> f32 {
    var amax = 0.0;
    var mx = 0.0;
    for (var j = 0u; j < QK4_NL; j = j + 1u) {
        let ax = fabs(xg[j]);
        if (gt(ax, amax)) {
            amax = ax;
            mx = xg[j];
        }
    }
    if (amax < group_max_eps()) {
        return 0.0;
    }
    let v0 = lv[0];
    var d = fdiv(-mx, v0);
    let r0 = fit(fdiv(1.0, d), lo, true);
    d = 0.0;
    if (gt(r0.y, 0.0)) {
        d = fdiv(r0.x, r0.y);
    }
    var best = fmul(d, r0.x);
    for (var itry = -7; itry <= 7; itry = itry + 1) {
        let id = fdiv(f32(itry + i32(v0)), mx);
        let r = fit(id, lo, false);
        if (gt(r.y, 0.0) && gt(fmul(r.x, r.x), fmul(best, r.y))) {
            d = fdiv(r.x, r.y);
            best = fmul(d, r.x);
        }
    }
    return d;
}

// sum over the first n elements of block b of x*x, in order (sigma2's numerator).
fn sum_x2(b: u32, be: u32, n: u32) -> f32 {
    var s = 0.0;
    for (var j = 0u; j < n; j = j + 1u) {
        let v = x_at(b, be, j);
        s = fadd(s, fmul(v, v));
    }
    return s;
}

// Loads group `lo / 32` of block b into xg and its weights into wg: qw * sqrt(sigma2 + x*x)
// with importance weights, else x*x. CPU twin: quantize::group_weights.
fn load_group(b: u32, be: u32, lo: u32, sigma2: f32, weighted: bool) {
    for (var j = 0u; j < QK4_NL; j = j + 1u) {
        let v = x_at(b, be, lo + j);
        xg[j] = v;
        if (weighted) {
            wg[j] = fmul(qw_at(b, be, lo + j), fsqrt(fadd(sigma2, fmul(v, v))));
        } else {
            wg[j] = fmul(v, v);
        }
    }
}

// Packs the 32 indices lg[lo..lo+32] at byte `o`: byte j holds index j (low nibble) and j+16.
fn pack_group(lo: u32, o: u32) {
    for (var j = 0u; j < 16u; j = j + 1u) {
        put_byte(o + j, lg[lo + j] | (lg[lo + 16u + j] << 4u));
    }
}

// ---------------------------------------------------------------- encoders

// quantize_iq4_nl for block b, bytes at `o` of out_words. CPU twin: quantize::iq4_nl_block.
fn enc_iq4_nl(b: u32, o: u32, weighted: bool) {
    // 2 / 32 = 2^-4: sigma2 = sum_x2 * (2 / 32), one rounding as in C
    let sigma2 = fmul(sum_x2(b, QK4_NL, QK4_NL), 0.0625);
    load_group(b, QK4_NL, 0u, sigma2, weighted);
    let scale = group_scale(0u);
    put_u16(o, ggml_f16_of(scale));
    var id = 0.0;
    if (nonzero(scale)) {
        id = fdiv(1.0, scale);
    }
    for (var j = 0u; j < QK4_NL; j = j + 1u) {
        lg[j] = best_index(fmul(id, xg[j]));
    }
    pack_group(0u, o + 2u);
}

// quantize_iq4_xs for block b, bytes at `o`. CPU twin: quantize::iq4_xs_block.
fn enc_iq4_xs(b: u32, o: u32, weighted: bool) {
    // 2 / 256 = 2^-7
    let sigma2 = fmul(sum_x2(b, QK_K, QK_K), 0.0078125);
    var scales: array<f32, 8>;
    var max_scale = 0.0;
    var amax_scale = 0.0;
    for (var ib = 0u; ib < 8u; ib = ib + 1u) {
        load_group(b, QK_K, QK4_NL * ib, sigma2, weighted);
        let d = group_scale(QK4_NL * ib);
        scales[ib] = d;
        let abs_d = fabs(d);
        if (gt(abs_d, amax_scale)) {
            amax_scale = abs_d;
            max_scale = d;
        }
    }
    // -max_scale / 32: dividing by 2^5 is multiplying by 2^-5, the same rounded value
    let d = fmul(-max_scale, 0.03125);
    put_u16(o, ggml_f16_of(d));
    var id = 0.0;
    if (nonzero(d)) {
        id = fdiv(1.0, d);
    }
    var scales_h = 0u;
    for (var ib = 0u; ib < 8u; ib = ib + 1u) {
        let ls = clamp(nearest_int(fmul(id, scales[ib])), -32, 31);
        let dl = fmul(d, f32(ls));
        var idl = 0.0;
        if (nonzero(dl)) {
            idl = fdiv(1.0, dl);
        }
        for (var j = 0u; j < QK4_NL; j = j + 1u) {
            lg[QK4_NL * ib + j] = best_index(fmul(idl, x_at(b, QK_K, QK4_NL * ib + j)));
        }
        let lsu = u32(ls + 32);
        put_byte(o + 4u + ib / 2u, (lsu & 15u) << (4u * (ib % 2u)));
        scales_h = scales_h | ((lsu >> 4u) << (2u * ib));
    }
    put_u16(o + 2u, scales_h);
    for (var ib = 0u; ib < 8u; ib = ib + 1u) {
        pack_group(QK4_NL * ib, o + 8u + 16u * ib);
    }
}

// Runs the encoder of type id `ty` over the `bpg` blocks (of `bb` bytes) of group g.
fn encode_group(g: u32, ty: u32, bpg: u32, bb: u32) {
    clear_out();
    load_levels();
    let first = g * bpg;
    let n = min(bpg, params.n_blocks - first);
    let weighted = params.has_weights == 1u;
    for (var k = 0u; k < n; k = k + 1u) {
        let b = first + k;
        let o = k * bb;
        switch ty {
            case 20u: { enc_iq4_nl(b, o, weighted); }
            case 23u: { enc_iq4_xs(b, o, weighted); }
            default: {}
        }
    }
    flush_out(g, bpg * bb / 4u, n * bb);
}

// ---------------------------------------------------------------- decoders

// 32 elements of one group from the 16 bytes at `q`: dl * level, element j from the low
// nibble of byte j, element j+16 from its high nibble. CPU twin: nonlinear::decode_group.
fn dec_group(b: u32, be: u32, lo: u32, dl: f32, q: u32) {
    for (var j = 0u; j < 16u; j = j + 1u) {
        let v = src_byte(q + j);
        put_f32(b, be, lo + j, dl * lv[v & 15u]);
        put_f32(b, be, lo + j + 16u, dl * lv[v >> 4u]);
    }
}

// dequantize_row_iq4_nl
fn dec_iq4_nl(b: u32) {
    let o = b * 18u;
    dec_group(b, QK4_NL, 0u, f32_of_f16(src_u16(o)), o + 2u);
}

// dequantize_row_iq4_xs (136 bytes: d, scales_h, 4 bytes of low scale nibbles, 128 bytes of
// indices)
fn dec_iq4_xs(b: u32) {
    let o = b * 136u;
    let d = f32_of_f16(src_u16(o));
    let sh = src_u16(o + 2u);
    for (var ib = 0u; ib < 8u; ib = ib + 1u) {
        let ls = ((src_byte(o + 4u + ib / 2u) >> (4u * (ib % 2u))) & 15u) | (((sh >> (2u * ib)) & 3u) << 4u);
        let dl = d * f32(i32(ls) - 32);
        dec_group(b, QK_K, QK4_NL * ib, dl, o + 8u + 16u * ib);
    }
}

// ---------------------------------------------------------------- entry points
// One entry point per direction, specialised per type by the pipeline constants TY, BPG, BB
// (gpu::table::GPU_CODECS: encoders 2 (IQ4_NL) and 1 (IQ4_XS) blocks per invocation,
// decoders one block).

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
            case 20u: { dec_iq4_nl(b); }
            case 23u: { dec_iq4_xs(b); }
            default: {}
        }
    }
}
