// gpuq: helpers shared by every shader in shaders/. The runtime (src/gpu/wgsl.rs, `compose`)
// prepends this file to each shader before compiling it; tests/naga_shaders.rs does the same.
//
// Portability (Metal, Vulkan, DX12): no f16 storage, no 64-bit atomics, no subgroup ops.
// Bytes travel as u32 words. Conversions whose bits matter are done with integer operations
// only, so no driver's float rounding, denormal flushing or NaN canonicalisation can touch them.

// Invocations per workgroup; a pipeline sets it from its key (gpu::kernels::KernelKey).
override WG: u32 = 64u;

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
    _pad: u32,
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
