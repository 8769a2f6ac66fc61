// Grid i-quant decoders IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M (256-element
// super-blocks): blocks -> f32 as ggml's dequantize_row_iq*. CPU twins:
// src/codec/iquants/<type>.rs (`dequantize_block`); the f32 bits must agree
// (tests/gpu_iquants.rs). The encoders are grid searches over neighbour lists and run on the
// CPU codec (gpu::table has decode-only rows for these types).
//
// Binding layout: gpu::codecs (params, src, dst) and binding 3, the type's grid as
// gpu::lookup builds it from the CPU codec's tables (never a copy in this file): point k's
// element j is the signed byte N*k + j of the table (N = 8 for the IQ2/IQ1 grids, 4 for the
// IQ3 grids), 4 bytes per word, little-endian. The table starts after the importance weights
// when a call has them (gpu::table); decoders have none.
//
// Exactness by construction: every product a decoder forms is exact in f32, so no rounding,
// fusion or reassociation can change a bit. d is an f16 (11 significant bits, never an f32
// subnormal); the sub-block factors are (2s+1)/2 or (2s+1) with s < 16 (5 bits) or 2s+1 <= 15
// (4 bits); the grid values are integers below 64 (6 bits: IQ2 8/25/43, IQ3_XXS up to 62,
// IQ3_S odd up to 15), or for IQ1 a level in {-1, 0, 1} plus or minus 1/8 (4 bits: 9/8, 7/8,
// 1/8); signs are +-1. Largest product: 11 + 5 + 6 = 22 bits <= 24. Each output is such a
// product (IQ1: dl * (g + delta), the sum being exact too).
//
// One block per invocation (256 outputs); loops stay far inside llvmpipe's loop budget
// (common.wgsl, LOOP BUDGET): 8 x 4 x 8 iterations per block.

@group(0) @binding(0) var<uniform> params: CodecParams;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;
@group(0) @binding(3) var<storage, read> side: array<u32>;

const QK_K: u32 = 256u;

// ---------------------------------------------------------------- plumbing

// Byte i of the tile's packed source.
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
    dst[params.dst_offset + b * QK_K + j] = bitcast<u32>(v);
}

fn f32_of_f16(h: u32) -> f32 {
    return bitcast<f32>(f16_bits_to_f32_bits(h));
}

// First word of the lookup table in binding 3 (after the weights, when there are any).
fn table_base() -> u32 {
    return select(0u, params.row_len, params.has_weights == 1u);
}

// Element j of grid point k of an n-byte-per-point grid: its signed byte, as f32.
fn grid(k: u32, n: u32, j: u32) -> f32 {
    let i = k * n + j;
    let w = side[table_base() + (i >> 2u)];
    return f32(bitcast<i32>(w << (24u - 8u * (i & 3u))) >> 24u);
}

// ggml's ksigns_iq2xs[s]: the 7 stored sign bits and an 8th making the count even.
fn ksigns(s: u32) -> u32 {
    return s | ((countOneBits(s) & 1u) << 7u);
}

// -1 when bit j of `signs` is set, else 1 (CPU twin: iq3_xxs::sign).
fn sgn(signs: u32, j: u32) -> f32 {
    return select(1.0, -1.0, ((signs >> j) & 1u) != 0u);
}

// ggml's IQ1S_DELTA / IQ1M_DELTA.
const IQ1_DELTA: f32 = 0.125;

// ---------------------------------------------------------------- decoders

// dequantize_row_iq2_xxs (66 bytes: d, then per sub-block a u32 of 4 grid indices and a u32
// of 4 x 7 sign bits and the scale). CPU twin: iq2_xxs::dequantize_block.
fn dec_iq2_xxs(b: u32) {
    let o = b * 66u;
    let d = f32_of_f16(src_u16(o));
    for (var ib = 0u; ib < 8u; ib = ib + 1u) {
        let idx = src_u32(o + 2u + 8u * ib);
        let aux = src_u32(o + 6u + 8u * ib);
        let db = d * (0.5 + f32(aux >> 28u)) * 0.25;
        for (var l = 0u; l < 4u; l = l + 1u) {
            let k = (idx >> (8u * l)) & 255u;
            let signs = ksigns((aux >> (7u * l)) & 127u);
            for (var j = 0u; j < 8u; j = j + 1u) {
                put_f32(b, 32u * ib + 8u * l + j, db * grid(k, 8u, j) * sgn(signs, j));
            }
        }
    }
}

// dequantize_row_iq2_xs (74 bytes: d, 32 u16 of 9-bit index and 7 sign bits, 8 scale bytes
// of two nibbles). CPU twin: iq2_xs::dequantize_block.
fn dec_iq2_xs(b: u32) {
    let o = b * 74u;
    let d = f32_of_f16(src_u16(o));
    for (var ib = 0u; ib < 8u; ib = ib + 1u) {
        let sc = src_byte(o + 66u + ib);
        let db0 = d * (0.5 + f32(sc & 15u)) * 0.25;
        let db1 = d * (0.5 + f32(sc >> 4u)) * 0.25;
        for (var l = 0u; l < 4u; l = l + 1u) {
            let q = src_u16(o + 2u + 2u * (4u * ib + l));
            let k = q & 511u;
            let signs = ksigns(q >> 9u);
            let dl = select(db0, db1, l >= 2u);
            for (var j = 0u; j < 8u; j = j + 1u) {
                put_f32(b, 32u * ib + 8u * l + j, dl * grid(k, 8u, j) * sgn(signs, j));
            }
        }
    }
}

// dequantize_row_iq2_s (82 bytes: d, 32 low index bytes, 32 sign bytes, 8 bytes of index tops,
// 8 scale bytes). CPU twin: iq2_s::dequantize_block.
fn dec_iq2_s(b: u32) {
    let o = b * 82u;
    let d = f32_of_f16(src_u16(o));
    for (var ib = 0u; ib < 8u; ib = ib + 1u) {
        let sc = src_byte(o + 74u + ib);
        let db0 = d * (0.5 + f32(sc & 15u)) * 0.25;
        let db1 = d * (0.5 + f32(sc >> 4u)) * 0.25;
        let qh = src_byte(o + 66u + ib);
        for (var l = 0u; l < 4u; l = l + 1u) {
            let k = src_byte(o + 2u + 4u * ib + l) | ((qh << (8u - 2u * l)) & 0x300u);
            let signs = src_byte(o + 34u + 4u * ib + l);
            let dl = select(db0, db1, l >= 2u);
            for (var j = 0u; j < 8u; j = j + 1u) {
                put_f32(b, 32u * ib + 8u * l + j, dl * grid(k, 8u, j) * sgn(signs, j));
            }
        }
    }
}

// dequantize_row_iq3_xxs (98 bytes: d, 64 grid index bytes, 8 u32 of 4 x 7 sign bits and the
// scale). CPU twin: iq3_xxs::dequantize_block.
fn dec_iq3_xxs(b: u32) {
    let o = b * 98u;
    let d = f32_of_f16(src_u16(o));
    for (var ib = 0u; ib < 8u; ib = ib + 1u) {
        let aux = src_u32(o + 66u + 4u * ib);
        let db = d * (0.5 + f32(aux >> 28u)) * 0.5;
        for (var l = 0u; l < 4u; l = l + 1u) {
            let signs = ksigns((aux >> (7u * l)) & 127u);
            let k1 = src_byte(o + 2u + 8u * ib + 2u * l);
            let k2 = src_byte(o + 3u + 8u * ib + 2u * l);
            for (var j = 0u; j < 4u; j = j + 1u) {
                put_f32(b, 32u * ib + 8u * l + j, db * grid(k1, 4u, j) * sgn(signs, j));
                put_f32(b, 32u * ib + 8u * l + j + 4u, db * grid(k2, 4u, j) * sgn(signs, j + 4u));
            }
        }
    }
}

// dequantize_row_iq3_s (110 bytes: d, 64 low index bytes, 8 bytes of 9th index bits, 32 sign
// bytes, 4 scale bytes). CPU twin: iq3_s::dequantize_block.
fn dec_iq3_s(b: u32) {
    let o = b * 110u;
    let d = f32_of_f16(src_u16(o));
    for (var ib = 0u; ib < 8u; ib = ib + 1u) {
        let s = (src_byte(o + 106u + ib / 2u) >> (4u * (ib % 2u))) & 15u;
        let db = d * f32(1u + 2u * s);
        let qh = src_byte(o + 66u + ib);
        for (var l = 0u; l < 4u; l = l + 1u) {
            let signs = src_byte(o + 74u + 4u * ib + l);
            let k1 = src_byte(o + 2u + 8u * ib + 2u * l) | ((qh << (8u - 2u * l)) & 256u);
            let k2 = src_byte(o + 3u + 8u * ib + 2u * l) | ((qh << (7u - 2u * l)) & 256u);
            for (var j = 0u; j < 4u; j = j + 1u) {
                put_f32(b, 32u * ib + 8u * l + j, db * grid(k1, 4u, j) * sgn(signs, j));
                put_f32(b, 32u * ib + 8u * l + j + 4u, db * grid(k2, 4u, j) * sgn(signs, j + 4u));
            }
        }
    }
}

// dequantize_row_iq1_s (50 bytes: d, 32 low index bytes, 8 u16 of index tops, scale and shift
// sign). CPU twin: iq1_s::dequantize_block.
fn dec_iq1_s(b: u32) {
    let o = b * 50u;
    let d = f32_of_f16(src_u16(o));
    for (var ib = 0u; ib < 8u; ib = ib + 1u) {
        let qh = src_u16(o + 34u + 2u * ib);
        let dl = d * f32(2u * ((qh >> 12u) & 7u) + 1u);
        let delta = select(IQ1_DELTA, -IQ1_DELTA, (qh & 0x8000u) != 0u);
        for (var l = 0u; l < 4u; l = l + 1u) {
            let k = src_byte(o + 2u + 4u * ib + l) | (((qh >> (3u * l)) & 7u) << 8u);
            for (var j = 0u; j < 8u; j = j + 1u) {
                put_f32(b, 32u * ib + 8u * l + j, dl * (grid(k, 8u, j) + delta));
            }
        }
    }
}

// dequantize_row_iq1_m (56 bytes: 32 low index bytes, 16 bytes of index tops and shift signs,
// 4 u16 of 3-bit scales whose top nibbles make the f16 d). CPU twin: iq1_m::dequantize_block.
fn dec_iq1_m(b: u32) {
    let o = b * 56u;
    let sc0 = src_u16(o + 48u);
    let sc1 = src_u16(o + 50u);
    let sc2 = src_u16(o + 52u);
    let sc3 = src_u16(o + 54u);
    let d = f32_of_f16((sc0 >> 12u) | ((sc1 >> 8u) & 0xf0u) | ((sc2 >> 4u) & 0xf00u) | (sc3 & 0xf000u));
    for (var ib = 0u; ib < 8u; ib = ib + 1u) {
        let s = src_u16(o + 48u + 2u * (ib / 2u));
        let sh = 6u * (ib % 2u);
        let dl1 = d * f32(2u * ((s >> sh) & 7u) + 1u);
        let dl2 = d * f32(2u * ((s >> (sh + 3u)) & 7u) + 1u);
        let qh0 = src_byte(o + 32u + 2u * ib);
        let qh1 = src_byte(o + 33u + 2u * ib);
        for (var l = 0u; l < 4u; l = l + 1u) {
            // groups 0, 1 take qh0 (bits 0..3 and 4..7), groups 2, 3 qh1
            let qh = select(qh0, qh1, l >= 2u);
            let hi = select((qh << 8u) & 0x700u, (qh << 4u) & 0x700u, (l & 1u) == 1u);
            let neg = select((qh & 0x08u) != 0u, (qh & 0x80u) != 0u, (l & 1u) == 1u);
            let k = src_byte(o + 4u * ib + l) | hi;
            let delta = select(IQ1_DELTA, -IQ1_DELTA, neg);
            let dl = select(dl1, dl2, l >= 2u);
            for (var j = 0u; j < 8u; j = j + 1u) {
                put_f32(b, 32u * ib + 8u * l + j, dl * (grid(k, 8u, j) + delta));
            }
        }
    }
}

// ---------------------------------------------------------------- entry point
// Specialised per type by the pipeline constant TY (gpu::table::GPU_CODECS: one block per
// invocation).

@compute @workgroup_size(WG)
fn decode(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = flat_invocation(gid, nwg);
    if (b < params.n_groups) {
        switch TY {
            case 16u: { dec_iq2_xxs(b); }
            case 17u: { dec_iq2_xs(b); }
            case 22u: { dec_iq2_s(b); }
            case 18u: { dec_iq3_xxs(b); }
            case 21u: { dec_iq3_s(b); }
            case 19u: { dec_iq1_s(b); }
            case 29u: { dec_iq1_m(b); }
            default: {}
        }
    }
}
