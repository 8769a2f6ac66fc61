//! BitNet absmean ternarization on the GPU: the block-sum reduction pass, the scaled
//! TQ1_0 / TQ2_0 encoders and the I2_S codes of shaders/ternary.wgsl, run as tiled jobs of
//! the codec runner. CPU twins: `codec::absmean::{block_sums, encode_scaled}` and
//! `codec::i2s::{encode_codes_absmean, decode_codes}`; results agree bit for bit.

use super::GpuError;
use super::codecs::{CodecRunner, Side, TileJob};
use super::table::{self, GpuCodec, Variant};
use crate::codec::absmean::RowScale;
use crate::codec::i2s::QK_I2_S;
use crate::codec::shape;
use crate::codec::ternary::QK_K;
use crate::ggml_type::GgmlType;

fn no_kernel(ty: GgmlType, direction: &'static str) -> GpuError {
    GpuError::NoKernel { ty, direction }
}

fn codec_of(ty: GgmlType, direction: &'static str) -> Result<&'static GpuCodec, GpuError> {
    table::gpu_codec(ty).ok_or(no_kernel(ty, direction))
}

impl CodecRunner {
    /// `absmean::block_abs_sum` of every 256-element block of `src` (rows of `row_len`).
    pub fn absmean_block_sums(&self, src: &[f32], row_len: usize) -> crate::Result<Vec<f32>> {
        let ty = GgmlType::TQ2_0;
        let n_rows = shape::rows_of_groups(ty, QK_K, row_len, src.len())?;
        let codec = codec_of(ty, "absmean block sums")?;
        let bpr = row_len / QK_K;
        let mut out = vec![0f32; n_rows * bpr];
        let job = TileJob {
            key: self.key(codec, table::TERNARY_ABSMEAN_SUMS, Variant::of(ty, 1)),
            ty,
            block_elems: QK_K as u64,
            blocks_per_invocation: 1,
            row_len,
            n_rows,
            src: bytemuck::cast_slice(src),
            src_row: row_len as u64 * 4,
            dst_row: bpr as u64 * 4,
            side: Side::None,
            has_weights: false,
        };
        self.run_tiles(&job, bytemuck::cast_slice_mut(&mut out))?;
        Ok(out)
    }

    /// `absmean::encode_scaled` on the GPU: rows of `row_len` into TQ1_0 / TQ2_0 with the
    /// scale of each row (`scales[r]`: `1/s` for the trits, the f16 bits written as `d`).
    pub fn encode_absmean(
        &self,
        ty: GgmlType,
        src: &[f32],
        row_len: usize,
        scales: &[RowScale],
        dst: &mut [u8],
    ) -> crate::Result<()> {
        if !matches!(ty, GgmlType::TQ1_0 | GgmlType::TQ2_0) {
            return Err(no_kernel(ty, "absmean encode").into());
        }
        let codec = codec_of(ty, "absmean encode")?;
        let rows = shape::check(ty, row_len, src.len(), dst.len())?;
        if scales.len() != rows.n_rows {
            return Err(crate::codec::CodecError::BadLength {
                ty,
                what: format!("{} rows, {} scales", rows.n_rows, scales.len()),
            }
            .into());
        }
        // per row: [bits of 1/s, f16 bits of d] (the division was done on the CPU, exactly)
        let words: Vec<u32> = scales
            .iter()
            .flat_map(|r| [r.id.to_bits(), r.d as u32])
            .collect();
        let job = TileJob {
            key: self.key(codec, table::TERNARY_ABSMEAN_ENCODE, codec.encode_variant()),
            ty,
            block_elems: ty.block_elems(),
            blocks_per_invocation: codec.encode_blocks as u64,
            row_len,
            n_rows: rows.n_rows,
            src: bytemuck::cast_slice(src),
            src_row: row_len as u64 * 4,
            dst_row: rows.row_bytes as u64,
            // the weights binding carries the per-row scales
            side: Side::PerRow(bytemuck::cast_slice(&words), 8),
            has_weights: true,
        };
        self.run_tiles(&job, dst)?;
        Ok(())
    }

    /// `i2s::encode_codes_absmean` on the GPU: the codes (no trailer) of rows of `row_len`
    /// elements, BitNet's absmean trits of `x * id`.
    pub fn encode_i2s(
        &self,
        src: &[f32],
        row_len: usize,
        id: f32,
        dst: &mut [u8],
    ) -> crate::Result<()> {
        let ty = GgmlType::I2_S;
        let n_rows = shape::i2s_codes(row_len, src.len(), dst.len())?;
        let codec = codec_of(ty, "encode")?;
        let entry = codec.encode.ok_or(no_kernel(ty, "encode"))?;
        let job = TileJob {
            key: self.key(codec, entry, codec.encode_variant()),
            ty,
            block_elems: QK_I2_S as u64,
            blocks_per_invocation: codec.encode_blocks as u64,
            row_len,
            n_rows,
            src: bytemuck::cast_slice(src),
            src_row: row_len as u64 * 4,
            dst_row: row_len as u64 / 4,
            side: Side::Shared(bytemuck::bytes_of(&id)),
            has_weights: true,
        };
        self.run_tiles(&job, dst)?;
        Ok(())
    }

    /// `i2s::decode_codes` on the GPU: codes (no trailer) of rows of `row_len` elements,
    /// decoded with the tensor's `scale`.
    pub fn decode_i2s(
        &self,
        src: &[u8],
        row_len: usize,
        scale: f32,
        dst: &mut [f32],
    ) -> crate::Result<()> {
        let ty = GgmlType::I2_S;
        let n_rows = shape::i2s_codes(row_len, dst.len(), src.len())?;
        let codec = codec_of(ty, "decode")?;
        let entry = codec.decode.ok_or(no_kernel(ty, "decode"))?;
        let job = TileJob {
            key: self.key(codec, entry, codec.decode_variant()),
            ty,
            block_elems: QK_I2_S as u64,
            blocks_per_invocation: codec.decode_blocks as u64,
            row_len,
            n_rows,
            src,
            src_row: row_len as u64 / 4,
            dst_row: row_len as u64 * 4,
            side: Side::Shared(bytemuck::bytes_of(&scale)),
            has_weights: true,
        };
        self.run_tiles(&job, bytemuck::cast_slice_mut(dst))?;
        Ok(())
    }
}
