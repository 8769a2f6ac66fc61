//! The native CPU backend: the reference codecs (`codec`) and measurements (`measure`), rows
//! in parallel with rayon. Never touches wgpu.

use super::compute::Compute;
use crate::codec::absmean::{self, RowScale};
use crate::codec::{self, i2s};
use crate::error::Result;
use crate::ggml_type::GgmlType;
use crate::measure::fidelity::{RowFidelity, tile_fidelity};
use crate::measure::participation::{self, Participation};
use crate::measure::{Histogram, RowStats, moments};
use rayon::prelude::*;

/// The CPU implementation of [`Compute`].
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuCompute;

impl Compute for CpuCompute {
    fn encode(
        &self,
        ty: GgmlType,
        src: &[f32],
        row_len: usize,
        weights: Option<&[f32]>,
        dst: &mut [u8],
    ) -> Result<()> {
        Ok(codec::encode_rows(ty, src, row_len, weights, dst)?)
    }

    fn decode(&self, ty: GgmlType, src: &[u8], row_len: usize, dst: &mut [f32]) -> Result<()> {
        Ok(codec::decode_rows(ty, src, row_len, dst)?)
    }

    fn absmean_block_sums(&self, src: &[f32], _row_len: usize) -> Result<Vec<f32>> {
        Ok(src
            .par_chunks(codec::ternary::QK_K)
            .map(absmean::block_abs_sum)
            .collect())
    }

    fn encode_row_scales(
        &self,
        ty: GgmlType,
        src: &[f32],
        row_len: usize,
        scales: &[RowScale],
        dst: &mut [u8],
    ) -> Result<()> {
        let row_bytes = row_len / codec::ternary::QK_K * ty.block_bytes() as usize;
        src.par_chunks(row_len)
            .zip(dst.par_chunks_mut(row_bytes))
            .zip(scales.par_iter())
            .for_each(|((x, d), &s)| absmean::encode_row_scales(ty, x, row_len, &[s], d));
        Ok(())
    }

    fn encode_i2s(&self, src: &[f32], _row_len: usize, id: f32, dst: &mut [u8]) -> Result<()> {
        Ok(i2s::encode_codes_absmean(src, id, dst)?)
    }

    fn decode_i2s(&self, src: &[u8], _row_len: usize, scale: f32, dst: &mut [f32]) -> Result<()> {
        Ok(i2s::decode_codes(src, scale, dst)?)
    }

    fn tile_stats(
        &self,
        data: &[f32],
        row_len: usize,
        k: f32,
    ) -> Result<(Vec<RowStats>, Histogram)> {
        Ok(moments::tile_stats(data, row_len, k))
    }

    fn tile_fidelity(
        &self,
        src: &[f32],
        decoded: &[f32],
        row_len: usize,
    ) -> Result<Vec<RowFidelity>> {
        Ok(tile_fidelity(src, decoded, row_len))
    }

    fn element_scores(
        &self,
        w: &[f32],
        row_len: usize,
        p: &Participation,
        out: &mut [f32],
    ) -> Result<()> {
        w.par_chunks(row_len)
            .zip(out.par_chunks_mut(row_len))
            .for_each(|(row, o)| participation::element_scores(row, row_len, p, o));
        Ok(())
    }

    fn group_scores(&self, energies: &[f32], p: &Participation, out: &mut [f32]) -> Result<()> {
        participation::group_scores(energies, p, out);
        Ok(())
    }

    fn energies(&self, w: &[f32], row_len: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        Ok(participation::energies(w, row_len))
    }
}
