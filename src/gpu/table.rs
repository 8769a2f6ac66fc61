//! The GPU codec table: which [`GgmlType`] has which WGSL kernels, and the variant constants
//! each pipeline is built with. Pure data, present in every build (the engine's routing table
//! and `gpuq info` read it; `tests/naga_shaders.rs` translates every row's variant).
//!
//! # Adding a codec kernel
//! Add one [`GpuCodec`] row to [`GPU_CODECS`] (and, for a new shader file, one
//! `ShaderFile` constant in `gpu::wgsl` listed in `SHADERS`). The shader (with `common.wgsl`
//! prepended) declares the codec binding layout:
//!
//! ```wgsl
//! @group(0) @binding(0) var<uniform> params: CodecParams;            // see common.wgsl
//! @group(0) @binding(1) var<storage, read> src: array<u32>;
//! @group(0) @binding(2) var<storage, read_write> dst: array<u32>;
//! @group(0) @binding(3) var<storage, read> weights: array<f32>;      // optional
//! ```
//!
//! and entry points `@compute @workgroup_size(WG) fn NAME(@builtin(global_invocation_id) gid:
//! vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>)`. One entry point serves a family: the
//! pipeline constants `TY` (the ggml type id), `BPG` (blocks per invocation) and `BB` (block
//! bytes) of common.wgsl select the type, set from the row by [`GpuCodec::encode_variant`] /
//! [`GpuCodec::decode_variant`]. Invocation `i = flat_invocation(gid, nwg)` handles blocks
//! `i*BPG .. i*BPG+BPG` of the tile, returns when `i >= params.n_groups`, and skips blocks
//! `>= params.n_blocks`:
//! - encode: `src` holds the tile's f32 elements as bits (`n_blocks * block_elems` words,
//!   starting at `params.src_offset`); the invocation writes the BPG*BB/4 words
//!   `dst[params.dst_offset + i*BPG*BB/4 ..]`, zero-filling the bytes of blocks past
//!   `n_blocks`. Block `b` of the tile is block `b % blocks_per_row` of its row, so its
//!   importance weights are `weights[(b % blocks_per_row) * block_elems ..]` when
//!   `params.has_weights == 1` (binding 3 is a 16-byte dummy otherwise).
//! - decode: `src` holds the tile's packed blocks (padded with zero bytes to a whole word);
//!   the invocation writes the f32 bits of its blocks' elements to `dst[params.dst_offset +
//!   b*block_elems ..]`.
//!
//! BPG must make `BPG * block_bytes` a multiple of 4 so every output word of an encoder has one
//! writer (F16: 2; Q8_0, 34 bytes: 2, 17 words; Q4_1, 20 bytes: 1). Decoders have their own
//! BPG (their f32 output never shares a word). A unit test checks the table. Encoders that do
//! not read binding 3 have `encode_weighted: false` and weighted calls for their type go to
//! the CPU codec ([`can_encode_with`]).
//!
//! A row whose kernels read a lookup table (grids, code books: [`Lookup`], built from the CPU
//! codec's tables by `gpu::lookup`) gets it in binding 3 after the importance weights: binding
//! 3 then holds `row_len` weights when `params.has_weights == 1`, followed by the table's
//! words (decoders: the table alone). A row without an encoder (`encode: None`, the grid
//! searches of IQ1_S .. IQ3_S) decodes on the GPU and encodes on the CPU codec.

use super::wgsl::{self, ShaderFile};
use crate::ggml_type::GgmlType;

pub use super::lookup::Lookup;

/// The constants one pipeline of a family entry point is specialised with (`TY`, `BPG`, `BB`
/// in common.wgsl); part of the kernel key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Variant {
    /// The ggml type id (`TY`).
    pub type_id: u32,
    /// Blocks one invocation handles (`BPG`).
    pub blocks_per_invocation: u32,
    /// Bytes of one block (`BB`).
    pub block_bytes: u32,
}

impl Variant {
    /// The variant of `ty` with `blocks_per_invocation` blocks per invocation.
    pub fn of(ty: GgmlType, blocks_per_invocation: u32) -> Variant {
        Variant {
            type_id: ty.id(),
            blocks_per_invocation,
            block_bytes: ty.block_bytes() as u32,
        }
    }

    /// The pipeline constants, as wgpu and naga take them.
    pub fn constants(&self, workgroup_size: u32) -> [(&'static str, f64); 4] {
        [
            ("WG", workgroup_size as f64),
            ("TY", self.type_id as f64),
            ("BPG", self.blocks_per_invocation as f64),
            ("BB", self.block_bytes as f64),
        ]
    }
}

/// Whether an encoder takes importance weights (binding 3, `params.has_weights`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weights {
    /// The kernel ignores binding 3: a weighted (imatrix) encode of its type runs on the CPU
    /// codec. The routing is explicit here, never a silent drop of the weights.
    Ignored,
    /// The kernel honours per-column importance weights.
    Honoured,
}

/// Where a kernel's extra input comes from besides the tile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Blocks carry their own scales: the plain codec calls run the kernels.
    InBlocks,
    /// The kernels need the tensor's scale in binding 3 (I2_S: 1/s to encode, s to decode),
    /// so only the I2_S calls of the runner reach them, never the plain encode / decode.
    Tensor,
}

/// One row of the GPU codec table.
#[derive(Clone, Copy, Debug)]
pub struct GpuCodec {
    pub ty: GgmlType,
    /// The shader file holding the entry points.
    pub shader: ShaderFile,
    /// Entry point: f32 rows -> packed blocks.
    pub encode: Option<&'static str>,
    pub encode_weights: Weights,
    /// Entry point: packed blocks -> f32.
    pub decode: Option<&'static str>,
    /// Blocks one encode invocation handles; `blocks * block_bytes % 4 == 0`.
    pub encode_blocks: u32,
    /// Blocks one decode invocation handles (f32 output words never share a writer).
    pub decode_blocks: u32,
    pub scale: Scale,
    /// The table both kernels read after the weights in binding 3 (`gpu::lookup`).
    pub lookup: Lookup,
}

impl GpuCodec {
    /// The encoder's pipeline constants.
    pub fn encode_variant(&self) -> Variant {
        Variant::of(self.ty, self.encode_blocks)
    }

    /// The decoder's pipeline constants.
    pub fn decode_variant(&self) -> Variant {
        Variant::of(self.ty, self.decode_blocks)
    }
}

/// A codec family row: entry points `encode` / `decode` of `shader`, specialised by type.
const fn family(
    ty: GgmlType,
    shader: ShaderFile,
    encode_weights: Weights,
    encode_blocks: u32,
    decode_blocks: u32,
) -> GpuCodec {
    GpuCodec {
        ty,
        shader,
        encode: Some("encode"),
        encode_weights,
        decode: Some("decode"),
        encode_blocks,
        decode_blocks,
        scale: Scale::InBlocks,
        lookup: Lookup::None,
    }
}

/// A codec family row whose kernels read `lookup` from binding 3.
const fn with_lookup(row: GpuCodec, lookup: Lookup) -> GpuCodec {
    GpuCodec { lookup, ..row }
}

/// A decoder-only row (entry point `decode` of `shader`): the type encodes on the CPU codec.
const fn decode_only(ty: GgmlType, shader: ShaderFile, lookup: Lookup) -> GpuCodec {
    GpuCodec {
        ty,
        shader,
        encode: None,
        encode_weights: Weights::Ignored,
        decode: Some("decode"),
        encode_blocks: 1,
        decode_blocks: 1,
        scale: Scale::InBlocks,
        lookup,
    }
}

use Weights::{Honoured, Ignored};

/// Every GPU codec kernel; the single place that lists them.
pub const GPU_CODECS: &[GpuCodec] = &[
    family(GgmlType::F16, wgsl::FLOAT, Ignored, 2, 2),
    family(GgmlType::BF16, wgsl::FLOAT, Ignored, 2, 2),
    // legacy.wgsl: the `_ref` encoders only (weighted `_impl` encodes go to the CPU codec).
    family(GgmlType::Q4_0, wgsl::LEGACY, Ignored, 2, 1),
    family(GgmlType::Q4_1, wgsl::LEGACY, Ignored, 1, 1),
    family(GgmlType::Q5_0, wgsl::LEGACY, Ignored, 2, 1),
    family(GgmlType::Q5_1, wgsl::LEGACY, Ignored, 1, 1),
    family(GgmlType::Q8_0, wgsl::LEGACY, Ignored, 2, 1),
    // kquants.wgsl: `quantize_row_qX_K_ref` unweighted, `quantize_row_qX_K_impl` with
    // importance weights, all five. Q6_K (210 bytes) and Q3_K (110) two blocks per encode
    // invocation, Q2_K (84), Q4_K (144) and Q5_K (176) one.
    family(GgmlType::Q2_K, wgsl::KQUANTS, Honoured, 1, 1),
    family(GgmlType::Q3_K, wgsl::KQUANTS, Honoured, 2, 1),
    family(GgmlType::Q4_K, wgsl::KQUANTS, Honoured, 1, 1),
    family(GgmlType::Q5_K, wgsl::KQUANTS, Honoured, 1, 1),
    family(GgmlType::Q6_K, wgsl::KQUANTS, Honoured, 2, 1),
    // ternary.wgsl: llama.cpp's block-absmax encoders, which take no weights (ggml ignores them).
    family(GgmlType::TQ1_0, wgsl::TERNARY, Ignored, 2, 2),
    family(GgmlType::TQ2_0, wgsl::TERNARY, Ignored, 2, 2),
    // ternary.wgsl: bitnet.cpp's I2_S, one 128-element block (32 bytes) per invocation. The
    // encoder is BitNet's absmean ternarization with the tensor's 1/s, the decoder takes the
    // tensor's scale; both come in binding 3.
    GpuCodec {
        ty: GgmlType::I2_S,
        shader: wgsl::TERNARY,
        encode: Some("absmean_encode_i2_s"),
        encode_weights: Ignored,
        decode: Some("decode_i2_s"),
        encode_blocks: 1,
        decode_blocks: 1,
        scale: Scale::Tensor,
        lookup: Lookup::None,
    },
    // nonlinear.wgsl: `quantize_row_iq4_nl_impl` with and without importance weights (ntry 7,
    // as `quantize_iq4_nl` / `quantize_iq4_xs` call it), code book `kvalues_iq4nl` in binding
    // 3. IQ4_NL (18 bytes) two blocks per encode invocation, IQ4_XS (136) one.
    with_lookup(
        family(GgmlType::IQ4_NL, wgsl::NONLINEAR, Honoured, 2, 1),
        Lookup::Iq4Nl,
    ),
    with_lookup(
        family(GgmlType::IQ4_XS, wgsl::NONLINEAR, Honoured, 1, 1),
        Lookup::Iq4Nl,
    ),
    // fp4.wgsl: `quantize_row_mxfp4_ref` / `quantize_row_nvfp4_ref`; ggml ignores importance
    // weights for both, and weighted calls go to the CPU codec like the legacy `_ref` rows.
    // MXFP4 (17 bytes) four blocks per encode invocation, NVFP4 (36) one.
    with_lookup(
        family(GgmlType::MXFP4, wgsl::FP4, Ignored, 4, 1),
        Lookup::Fp4,
    ),
    with_lookup(
        family(GgmlType::NVFP4, wgsl::FP4, Ignored, 1, 1),
        Lookup::Fp4,
    ),
    // q1_0.wgsl: `quantize_row_q1_0_ref` / `quantize_row_q2_0_ref` (no weights in ggml), two
    // 18-byte blocks per encode invocation.
    family(GgmlType::Q1_0, wgsl::Q1_0, Ignored, 2, 1),
    family(GgmlType::Q2_0, wgsl::Q1_0, Ignored, 2, 1),
    // iquants.wgsl: `dequantize_row_iq*` with the grid in binding 3. The encoders are grid
    // searches over neighbour lists (`quantize_row_iq*_impl`) and run on the CPU codec.
    decode_only(GgmlType::IQ2_XXS, wgsl::IQUANTS, Lookup::Iq2Xxs),
    decode_only(GgmlType::IQ2_XS, wgsl::IQUANTS, Lookup::Iq2Xs),
    decode_only(GgmlType::IQ2_S, wgsl::IQUANTS, Lookup::Iq2S),
    decode_only(GgmlType::IQ3_XXS, wgsl::IQUANTS, Lookup::Iq3Xxs),
    decode_only(GgmlType::IQ3_S, wgsl::IQUANTS, Lookup::Iq3S),
    decode_only(GgmlType::IQ1_S, wgsl::IQUANTS, Lookup::Iq1S),
    decode_only(GgmlType::IQ1_M, wgsl::IQUANTS, Lookup::Iq1S),
];

/// The other kernels of the codec shaders (not codecs: reductions and scaled encoders), with
/// their fixed variants; listed so `gpuq info` and the shader tests see every entry point.
pub const TERNARY_ABSMEAN_SUMS: &str = "absmean_block_sums";
/// BitNet's absmean TQ1_0 / TQ2_0 encoders with a scale per row (binding 3).
pub const TERNARY_ABSMEAN_ENCODE: &str = "absmean_encode";

pub fn gpu_codec(ty: GgmlType) -> Option<&'static GpuCodec> {
    GPU_CODECS.iter().find(|c| c.ty == ty)
}

/// True when `ty` has a GPU encoder (unweighted) that the plain encode runs.
pub fn can_encode(ty: GgmlType) -> bool {
    can_encode_with(ty, false)
}

/// True when `ty` has a GPU encoder for this call: with `weighted`, one that takes
/// importance weights.
pub fn can_encode_with(ty: GgmlType, weighted: bool) -> bool {
    gpu_codec(ty).is_some_and(|c| {
        c.encode.is_some()
            && c.scale == Scale::InBlocks
            && (!weighted || c.encode_weights == Honoured)
    })
}

/// True when `ty` has a GPU decoder that the plain decode runs.
pub fn can_decode(ty: GgmlType) -> bool {
    gpu_codec(ty).is_some_and(|c| c.decode.is_some() && c.scale == Scale::InBlocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_output_word_has_one_writer() {
        for c in GPU_CODECS {
            assert!(c.encode_blocks > 0, "{}", c.ty);
            assert!(c.decode_blocks > 0, "{}", c.ty);
            if c.encode.is_some() {
                assert_eq!(
                    (c.encode_blocks as u64 * c.ty.block_bytes()) % 4,
                    0,
                    "{}: {} blocks of {} bytes are not whole words",
                    c.ty,
                    c.encode_blocks,
                    c.ty.block_bytes()
                );
            }
            // a lookup table is read from binding 3 (gpu::lookup), so the shader declares it
            if c.lookup != Lookup::None {
                assert!(
                    !crate::gpu::lookup::words(c.lookup).is_empty()
                        && c.shader.body.contains("@binding(3)"),
                    "{}: lookup {:?}",
                    c.ty,
                    c.lookup
                );
            }
            assert!(c.encode.is_some() || c.decode.is_some(), "{}", c.ty);
            assert!(
                wgsl::SHADERS.contains(&c.shader),
                "{}: shader not in SHADERS",
                c.ty
            );
            for e in [c.encode, c.decode].into_iter().flatten() {
                assert!(
                    c.shader.body.contains(&format!("fn {e}(")),
                    "{}: no entry point {e} in {}",
                    c.ty,
                    c.shader.name
                );
            }
            // a family shader must know the type id its switch selects
            if c.encode == Some("encode") || c.decode == Some("decode") {
                assert!(
                    c.shader.body.contains(&format!("case {}u", c.ty.id()))
                        || c.shader.body.contains(&format!("TY == {}u", c.ty.id())),
                    "{}: {} selects no branch for type id {}",
                    c.ty,
                    c.shader.name,
                    c.ty.id()
                );
            }
        }
        for e in [TERNARY_ABSMEAN_SUMS, TERNARY_ABSMEAN_ENCODE] {
            assert!(wgsl::TERNARY.body.contains(&format!("fn {e}(")), "{e}");
        }
    }
}
