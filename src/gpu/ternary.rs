//! BitNet absmean ternarization on the GPU: the block-sum reduction pass, the scaled
//! TQ1_0 / TQ2_0 encoders and the I2_S codes of shaders/ternary.wgsl, driven through the codec
//! runner's tiles. CPU twins: `codec::absmean::{block_sums, encode_scaled}` and
//! `codec::i2s::{encode_codes_absmean, decode_codes}`; results agree bit for bit.

use super::codecs::{CodecRunner, GpuCodec};
use super::wgsl;
use crate::codec::CodecError;
use crate::codec::absmean::RowScale;
use crate::codec::ternary::QK_K;
use crate::ggml_type::GgmlType;

fn check_rows(ty: GgmlType, src: usize, row_len: usize) -> Result<usize, CodecError> {
    if row_len == 0 || row_len % QK_K != 0 {
        return Err(CodecError::RowNotBlockMultiple {
            ty,
            row_len,
            block: QK_K as u64,
        });
    }
    if src % row_len != 0 {
        return Err(CodecError::BadLength {
            ty,
            what: format!("{src} elements is not a whole number of rows of {row_len}"),
        });
    }
    Ok(src / row_len)
}

impl CodecRunner {
    /// `absmean::block_abs_sum` of every 256-element block of `src` (rows of `row_len`).
    pub fn absmean_block_sums(&self, src: &[f32], row_len: usize) -> crate::Result<Vec<f32>> {
        let n_rows = check_rows(GgmlType::TQ2_0, src.len(), row_len)?;
        let codec = GpuCodec {
            ty: GgmlType::TQ2_0,
            shader: wgsl::TERNARY,
            encode: Some("absmean_block_sums"),
            encode_weighted: false,
            decode: None,
            blocks_per_invocation: 1,
            decode_blocks_per_invocation: 1,
            tensor_scale: false,
        };
        let bpr = row_len / QK_K;
        let mut out = vec![0f32; n_rows * bpr];
        self.run(
            &codec,
            "absmean_block_sums",
            1,
            bytemuck::cast_slice(src),
            row_len as u64 * 4,
            bytemuck::cast_slice_mut(&mut out),
            bpr as u64 * 4,
            n_rows,
            row_len,
            None,
        )?;
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
        let entry = match ty {
            GgmlType::TQ1_0 => "absmean_encode_tq1_0",
            GgmlType::TQ2_0 => "absmean_encode_tq2_0",
            _ => {
                return Err(super::GpuError::NoKernel {
                    ty,
                    direction: "absmean encode",
                }
                .into());
            }
        };
        let n_rows = check_rows(ty, src.len(), row_len)?;
        let row_bytes = (row_len / QK_K) as u64 * ty.block_bytes();
        if scales.len() != n_rows || dst.len() as u64 != n_rows as u64 * row_bytes {
            return Err(CodecError::BadLength {
                ty,
                what: format!(
                    "{n_rows} rows, {} scales, {} output bytes (rows of {row_bytes})",
                    scales.len(),
                    dst.len()
                ),
            }
            .into());
        }
        let codec = GpuCodec {
            ty,
            shader: wgsl::TERNARY,
            encode: Some(entry),
            // the weights binding carries the per-row scales
            encode_weighted: true,
            decode: None,
            blocks_per_invocation: 2,
            decode_blocks_per_invocation: 2,
            tensor_scale: false,
        };
        // per row: [bits of 1/s, f16 bits of d] (the division was done on the CPU, exactly)
        let words: Vec<f32> = scales
            .iter()
            .flat_map(|r| [r.id, f32::from_bits(r.d as u32)])
            .collect();
        let rpt = self.rows_per_tile(
            ty,
            row_len,
            row_len as u64 * 4,
            row_bytes,
            words.len() as u64 * 4,
        )? as usize;
        let mut r0 = 0;
        while r0 < n_rows {
            let rows = rpt.min(n_rows - r0);
            self.run(
                &codec,
                entry,
                2,
                bytemuck::cast_slice(&src[r0 * row_len..(r0 + rows) * row_len]),
                row_len as u64 * 4,
                &mut dst[r0 * row_bytes as usize..(r0 + rows) * row_bytes as usize],
                row_bytes,
                rows,
                row_len,
                Some(&words[2 * r0..2 * (r0 + rows)]),
            )?;
            r0 += rows;
        }
        Ok(())
    }
}

fn check_i2s(src: usize, row_len: usize, dst: usize) -> Result<usize, CodecError> {
    let qk = crate::codec::i2s::QK_I2_S;
    if row_len == 0 || row_len % qk != 0 {
        return Err(CodecError::RowNotBlockMultiple {
            ty: GgmlType::I2_S,
            row_len,
            block: qk as u64,
        });
    }
    if src % row_len != 0 || dst != src / 4 {
        return Err(CodecError::BadLength {
            ty: GgmlType::I2_S,
            what: format!("{src} elements in rows of {row_len} vs {dst} bytes of codes"),
        });
    }
    Ok(src / row_len)
}

impl CodecRunner {
    fn i2s_codec() -> Result<&'static GpuCodec, super::GpuError> {
        super::codecs::gpu_codec(GgmlType::I2_S).ok_or(super::GpuError::NoKernel {
            ty: GgmlType::I2_S,
            direction: "encode",
        })
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
        let n_rows = check_i2s(src.len(), row_len, dst.len())?;
        let codec = Self::i2s_codec()?;
        let entry = codec.encode.unwrap_or("absmean_encode_i2_s");
        self.run(
            codec,
            entry,
            1,
            bytemuck::cast_slice(src),
            row_len as u64 * 4,
            dst,
            row_len as u64 / 4,
            n_rows,
            row_len,
            Some(&[id]),
        )?;
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
        let n_rows = check_i2s(dst.len(), row_len, src.len())?;
        let codec = Self::i2s_codec()?;
        let entry = codec.decode.unwrap_or("decode_i2_s");
        self.run(
            codec,
            entry,
            1,
            src,
            row_len as u64 / 4,
            bytemuck::cast_slice_mut(dst),
            row_len as u64 * 4,
            n_rows,
            row_len,
            Some(&[scale]),
        )?;
        Ok(())
    }
}
