//! The one tile loop: the rows of one tensor of a source, read in tiles of whole rows, the
//! next tile's pages prefetched and each finished tile's pages released, cancellation checked
//! between tiles. Used by the quantize pipeline (copies, both passes of a conversion, the
//! error report) and by the statistics job.

use super::Progress;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::ggml_type::GgmlType;
use crate::model::{InputTensor, ModelSource};

/// One tile: rows `r0 .. r0 + rows` of the tensor, as the source stores them.
pub struct Tile<'t> {
    pub r0: u64,
    pub rows: u64,
    pub bytes: &'t [u8],
}

/// Walks one tensor of a source in tiles of whole rows.
pub struct RowTiles<'a> {
    src: &'a dyn ModelSource,
    index: usize,
    n_rows: u64,
    /// Bytes of one source row.
    in_row: u64,
    rows_per_tile: u64,
    /// Tiles never cross a multiple of this many rows (one expert slice of a 3-D tensor,
    /// which has its own importance weights).
    slice_rows: Option<u64>,
    r0: u64,
    /// The last tile handed out, to release when the next one is read: (offset, len).
    last: Option<(usize, usize)>,
    scratch: Vec<u8>,
    progress: Option<&'a dyn Progress>,
}

impl<'a> RowTiles<'a> {
    /// Tiles of `rows_per_tile` rows (at least one) of tensor `index` of `src`.
    pub fn new(src: &'a dyn ModelSource, index: usize, rows_per_tile: u64) -> Result<Self> {
        let t = src
            .tensors()
            .get(index)
            .ok_or_else(|| Error::Invalid(format!("{}: no tensor #{index}", src.describe())))?;
        let in_row =
            t.ty.row_bytes(t.row_len())
                .filter(|&b| b > 0)
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "{}: tensor {}: row length {} is not a whole number of {} blocks",
                        src.describe(),
                        t.name,
                        t.row_len(),
                        t.ty
                    ))
                })?;
        Ok(RowTiles {
            src,
            index,
            n_rows: t.n_rows(),
            in_row,
            rows_per_tile: rows_per_tile.max(1),
            slice_rows: None,
            r0: 0,
            last: None,
            scratch: Vec::new(),
            progress: None,
        })
    }

    /// Tiles that stay inside slices of `rows` rows.
    pub fn within_slices(mut self, rows: u64) -> Self {
        self.slice_rows = Some(rows.max(1));
        self
    }

    /// Checks `progress.cancelled()` before each tile.
    pub fn cancel_with(mut self, progress: &'a dyn Progress) -> Self {
        self.progress = Some(progress);
        self
    }

    /// The next tile, or `None` after the last row. Releases the previous tile's pages and
    /// prefetches the one after this.
    pub fn next_tile(&mut self) -> Result<Option<Tile<'_>>> {
        self.release_last();
        if self.r0 >= self.n_rows {
            return Ok(None);
        }
        if self.progress.is_some_and(|p| p.cancelled()) {
            return Err(Error::Interrupted);
        }
        let mut rows = self.rows_per_tile.min(self.n_rows - self.r0);
        if let Some(s) = self.slice_rows {
            rows = rows.min(s - self.r0 % s);
        }
        let r0 = self.r0;
        let next = ((r0 + rows) * self.in_row) as usize;
        self.src
            .prefetch(self.index, next, (rows * self.in_row) as usize);
        let bytes = self
            .src
            .read_rows(self.index, r0, rows, &mut self.scratch)?;
        self.last = Some(((r0 * self.in_row) as usize, bytes.len()));
        self.r0 += rows;
        Ok(Some(Tile { r0, rows, bytes }))
    }

    fn release_last(&mut self) {
        if let Some((offset, len)) = self.last.take() {
            self.src.release(self.index, offset, len);
        }
    }
}

impl Drop for RowTiles<'_> {
    fn drop(&mut self) {
        self.release_last();
    }
}

/// How a tensor's stored rows become f32: its type's decoder, or for I2_S the codes with the
/// tensor's scale (from the bytes after its rows).
#[derive(Clone, Copy, Debug)]
pub struct RowDecoder {
    ty: GgmlType,
    row_len: usize,
    tensor_scale: Option<f32>,
}

impl RowDecoder {
    /// The decoder of tensor `index` of `src`.
    pub fn of(src: &dyn ModelSource, index: usize, t: &InputTensor) -> Result<Self> {
        let tensor_scale = if t.ty.tensor_trailer() > 0 {
            Some(src.i2s_scale(index)?)
        } else {
            None
        };
        Ok(RowDecoder {
            ty: t.ty,
            row_len: t.row_len() as usize,
            tensor_scale,
        })
    }

    /// Decodes a tile's bytes into `out` (exactly its elements).
    pub fn decode(&self, engine: &Engine, bytes: &[u8], out: &mut [f32]) -> Result<()> {
        match self.tensor_scale {
            Some(s) => engine.decode_i2s(bytes, self.row_len, s, out),
            None => engine.decode_into(self.ty, bytes, self.row_len, out),
        }
    }
}
