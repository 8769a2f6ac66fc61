//! The shape checks every codec call makes, in one place: rows of `row_len` elements that are
//! a whole number of blocks, element and byte counts that agree, importance weights of one
//! row. The engine checks once at its boundary; the CPU codecs (a public API of their own) and
//! the GPU runner call the same functions.

use super::CodecError;
use crate::ggml_type::GgmlType;

/// A checked call: how many rows, and bytes per encoded row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rows {
    pub n_rows: usize,
    pub row_bytes: usize,
}

/// Bytes of one encoded row of `ty`, or why `row_len` does not fit its block.
pub fn row_bytes(ty: GgmlType, row_len: usize) -> Result<usize, CodecError> {
    ty.row_bytes(row_len as u64)
        .filter(|_| row_len > 0)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or(CodecError::RowNotBlockMultiple {
            ty,
            row_len,
            block: ty.block_elems(),
        })
}

/// `n_elems` elements in rows of `row_len`: the rows, and the bytes they encode to.
pub fn rows(ty: GgmlType, row_len: usize, n_elems: usize) -> Result<Rows, CodecError> {
    let row_bytes = row_bytes(ty, row_len)?;
    if n_elems % row_len != 0 {
        return Err(CodecError::BadLength {
            ty,
            what: format!("{n_elems} elements is not a whole number of rows of {row_len}"),
        });
    }
    let n_rows = n_elems / row_len;
    n_rows
        .checked_mul(row_bytes)
        .ok_or_else(|| CodecError::BadLength {
            ty,
            what: format!("{n_elems} elements in rows of {row_len}: output size overflows"),
        })?;
    Ok(Rows { n_rows, row_bytes })
}

/// Encoded bytes of `n_bytes` in rows of `row_len` elements of `ty`: how many elements.
pub fn elems_of(ty: GgmlType, row_len: usize, n_bytes: usize) -> Result<usize, CodecError> {
    let row_bytes = row_bytes(ty, row_len)?;
    if n_bytes % row_bytes != 0 {
        return Err(CodecError::BadLength {
            ty,
            what: format!("{n_bytes} bytes is not a whole number of {row_bytes}-byte rows"),
        });
    }
    (n_bytes / row_bytes)
        .checked_mul(row_len)
        .ok_or_else(|| CodecError::BadLength {
            ty,
            what: format!("{n_bytes} bytes in rows of {row_len}: element count overflows"),
        })
}

/// `n_elems` f32 and `n_bytes` encoded bytes in rows of `row_len` must describe the same rows.
pub fn check(
    ty: GgmlType,
    row_len: usize,
    n_elems: usize,
    n_bytes: usize,
) -> Result<Rows, CodecError> {
    let r = rows(ty, row_len, n_elems)?;
    if r.n_rows * r.row_bytes != n_bytes {
        return Err(CodecError::BadLength {
            ty,
            what: format!(
                "{n_elems} elements in rows of {row_len} vs {n_bytes} bytes (rows of {})",
                r.row_bytes
            ),
        });
    }
    Ok(r)
}

/// Importance weights, when given, hold one value per column of a row.
pub fn check_weights(
    ty: GgmlType,
    row_len: usize,
    weights: Option<&[f32]>,
) -> Result<(), CodecError> {
    match weights {
        Some(w) if w.len() != row_len => Err(CodecError::BadLength {
            ty,
            what: format!("{} importance weights for rows of {row_len}", w.len()),
        }),
        _ => Ok(()),
    }
}

/// Rows of `row_len` elements cut into groups of `group` (the 256-element blocks of the
/// absmean passes, I2_S's 128): the number of rows.
pub fn rows_of_groups(
    ty: GgmlType,
    group: usize,
    row_len: usize,
    n_elems: usize,
) -> Result<usize, CodecError> {
    if row_len == 0 || row_len % group != 0 {
        return Err(CodecError::RowNotBlockMultiple {
            ty,
            row_len,
            block: group as u64,
        });
    }
    if n_elems % row_len != 0 {
        return Err(CodecError::BadLength {
            ty,
            what: format!("{n_elems} elements is not a whole number of rows of {row_len}"),
        });
    }
    Ok(n_elems / row_len)
}

/// I2_S codes: rows of `row_len` elements (a multiple of 128), a quarter byte each, `elems`
/// elements against `bytes` of codes (no trailer): the number of rows.
pub fn i2s_codes(row_len: usize, elems: usize, bytes: usize) -> Result<usize, CodecError> {
    let ty = GgmlType::I2_S;
    let n_rows = rows_of_groups(ty, crate::codec::i2s::QK_I2_S, row_len, elems)?;
    if bytes != elems / 4 {
        return Err(CodecError::BadLength {
            ty,
            what: format!("{elems} elements in rows of {row_len} vs {bytes} bytes of codes"),
        });
    }
    Ok(n_rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_checked() {
        let q = GgmlType::Q4_K;
        assert_eq!(
            check(q, 512, 1024, 576),
            Ok(Rows {
                n_rows: 2,
                row_bytes: 288
            })
        );
        assert!(check(q, 512, 1024, 575).is_err());
        assert!(check(q, 500, 1000, 576).is_err());
        assert!(rows(q, 0, 0).is_err());
        assert!(rows(q, 256, 300).is_err());
        assert_eq!(elems_of(q, 256, 288), Ok(512));
        assert!(elems_of(q, 256, 100).is_err());
        assert!(check_weights(q, 256, Some(&[1.0; 255])).is_err());
        assert!(check_weights(q, 256, None).is_ok());
        assert_eq!(rows_of_groups(q, 256, 512, 2048), Ok(4));
        assert!(rows_of_groups(q, 256, 384, 384).is_err());
        assert_eq!(i2s_codes(256, 512, 128), Ok(2));
        assert!(i2s_codes(256, 512, 127).is_err());
        assert!(i2s_codes(192, 192, 48).is_err());
    }
}
