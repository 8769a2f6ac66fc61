// F16 and BF16 codecs: two elements (two 2-byte blocks) per invocation (TY == 1u: F16, TY == 30u: BF16), so each output word
// of an encoder has exactly one writer. CPU twins: src/codec/float.rs (F16_CODEC, BF16_CODEC);
// outputs must agree bit for bit (tests/gpu_float.rs). Binding layout: gpu::codecs.

@group(0) @binding(0) var<uniform> params: CodecParams;
@group(0) @binding(1) var<storage, read> src: array<u32>;
@group(0) @binding(2) var<storage, read_write> dst: array<u32>;

// Packed words of 16-bit values -> f32 bits. Invocation i reads word i, writes elements 2i, 2i+1.
fn decode_pair(i: u32, bf16: bool) {
    let w = src[params.src_offset + i];
    let e = 2u * i;
    let o = params.dst_offset + e;
    if (bf16) {
        dst[o] = bf16_bits_to_f32_bits(w & 0xffffu);
    } else {
        dst[o] = f16_bits_to_f32_bits(w & 0xffffu);
    }
    if (e + 1u < params.n_blocks) {
        if (bf16) {
            dst[o + 1u] = bf16_bits_to_f32_bits(w >> 16u);
        } else {
            dst[o + 1u] = f16_bits_to_f32_bits(w >> 16u);
        }
    }
}

// f32 bits -> packed 16-bit values. Invocation i reads elements 2i, 2i+1, writes word i; an odd
// tail leaves the high half zero.
fn encode_pair(i: u32, bf16: bool) {
    let e = 2u * i;
    let s = params.src_offset + e;
    var lo = 0u;
    var hi = 0u;
    if (bf16) {
        lo = f32_bits_to_bf16_bits(src[s]);
    } else {
        lo = f32_bits_to_f16_bits(src[s]);
    }
    if (e + 1u < params.n_blocks) {
        if (bf16) {
            hi = f32_bits_to_bf16_bits(src[s + 1u]);
        } else {
            hi = f32_bits_to_f16_bits(src[s + 1u]);
        }
    }
    dst[params.dst_offset + i] = lo | (hi << 16u);
}

// One entry point per direction; TY selects F16 (1) or BF16 (30), two elements per invocation.

@compute @workgroup_size(WG)
fn decode(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_invocation(gid, nwg);
    if (i < params.n_groups) {
        decode_pair(i, TY == 30u); // else TY == 1u: F16
    }
}

@compute @workgroup_size(WG)
fn encode(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat_invocation(gid, nwg);
    if (i < params.n_groups) {
        encode_pair(i, TY == 30u); // else TY == 1u: F16
    }
}
