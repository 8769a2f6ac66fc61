//! The ggml tensor types: one table of ids, names and block geometry.
//!
//! Every type id that llama.cpp's `ggml.h` defines is listed here, also those gpuq cannot
//! encode, so that any GGUF can be described. Everything else that needs per-type facts asks
//! this table instead of repeating a `match`.

use std::fmt;
use std::str::FromStr;

/// A ggml tensor type, by its GGUF type id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
#[allow(non_camel_case_types)]
#[repr(u32)]
pub enum GgmlType {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    IQ2_XXS = 16,
    IQ2_XS = 17,
    IQ3_XXS = 18,
    IQ1_S = 19,
    IQ4_NL = 20,
    IQ3_S = 21,
    IQ2_S = 22,
    IQ4_XS = 23,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    IQ1_M = 29,
    BF16 = 30,
    TQ1_0 = 34,
    TQ2_0 = 35,
    /// bitnet.cpp's 2-bit ternary type (microsoft/BitNet's ggml fork; not in upstream ggml,
    /// where id 36 is the retired Q4_0_4_4). Only bitnet.cpp reads such files. The tensor's
    /// bytes are its packed rows followed by one f32 scale and padding to 32 bytes (see
    /// [`GgmlType::tensor_bytes`] and `codec::i2s`).
    I2_S = 36,
    MXFP4 = 39,
    NVFP4 = 40,
    Q1_0 = 41,
}

/// Static facts about one type.
#[derive(Clone, Copy, Debug)]
pub struct TypeInfo {
    pub ty: GgmlType,
    pub name: &'static str,
    /// Elements per block (1 for plain scalar types).
    pub block_elems: u32,
    /// Bytes per block.
    pub block_bytes: u32,
    /// True for types whose blocks carry quantized values (everything but floats and ints).
    pub quantized: bool,
    /// Bytes a tensor of this type holds after its rows (bitnet.cpp's I2_S: the f32 tensor
    /// scale padded to 32 bytes); 0 for every ggml type.
    pub tensor_trailer: u32,
}

macro_rules! info {
    ($t:ident, $e:expr, $b:expr, $q:expr) => {
        info!($t, $e, $b, $q, 0)
    };
    ($t:ident, $e:expr, $b:expr, $q:expr, $trailer:expr) => {
        TypeInfo {
            ty: GgmlType::$t,
            name: stringify!($t),
            block_elems: $e,
            block_bytes: $b,
            quantized: $q,
            tensor_trailer: $trailer,
        }
    };
}

/// The table, in id order.
pub const TYPES: &[TypeInfo] = &[
    info!(F32, 1, 4, false),
    info!(F16, 1, 2, false),
    info!(Q4_0, 32, 18, true),
    info!(Q4_1, 32, 20, true),
    info!(Q5_0, 32, 22, true),
    info!(Q5_1, 32, 24, true),
    info!(Q8_0, 32, 34, true),
    info!(Q8_1, 32, 36, true),
    info!(Q2_K, 256, 84, true),
    info!(Q3_K, 256, 110, true),
    info!(Q4_K, 256, 144, true),
    info!(Q5_K, 256, 176, true),
    info!(Q6_K, 256, 210, true),
    info!(Q8_K, 256, 292, true),
    info!(IQ2_XXS, 256, 66, true),
    info!(IQ2_XS, 256, 74, true),
    info!(IQ3_XXS, 256, 98, true),
    info!(IQ1_S, 256, 50, true),
    info!(IQ4_NL, 32, 18, true),
    info!(IQ3_S, 256, 110, true),
    info!(IQ2_S, 256, 82, true),
    info!(IQ4_XS, 256, 136, true),
    info!(I8, 1, 1, false),
    info!(I16, 1, 2, false),
    info!(I32, 1, 4, false),
    info!(I64, 1, 8, false),
    info!(F64, 1, 8, false),
    info!(IQ1_M, 256, 56, true),
    info!(BF16, 1, 2, false),
    info!(TQ1_0, 256, 54, true),
    info!(TQ2_0, 256, 66, true),
    // x86 layout: 128 elements in 32 bytes; + 32 bytes per tensor (scale), see tensor_bytes
    info!(I2_S, 128, 32, true, 32),
    info!(MXFP4, 32, 17, true),
    info!(NVFP4, 64, 36, true),
    info!(Q1_0, 128, 18, true),
];

impl GgmlType {
    /// The type for a GGUF type id, or `None` for an id this build does not know.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        TYPES.iter().find(|t| t.ty as u32 == id).map(|t| t.ty)
    }

    pub fn id(self) -> u32 {
        self as u32
    }

    pub const fn info(self) -> &'static TypeInfo {
        // Every variant has exactly one row; a unit test checks the table is complete.
        let mut i = 0;
        while i < TYPES.len() {
            if TYPES[i].ty as u32 == self as u32 {
                return &TYPES[i];
            }
            i += 1;
        }
        &TYPES[0]
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }

    pub fn block_elems(self) -> u64 {
        self.info().block_elems as u64
    }

    pub fn block_bytes(self) -> u64 {
        self.info().block_bytes as u64
    }

    pub fn is_quantized(self) -> bool {
        self.info().quantized
    }

    /// Bytes after a tensor's rows (see [`TypeInfo::tensor_trailer`]).
    pub fn tensor_trailer(self) -> u64 {
        self.info().tensor_trailer as u64
    }

    /// Bits per weight.
    pub fn bits_per_weight(self) -> f64 {
        self.block_bytes() as f64 * 8.0 / self.block_elems() as f64
    }

    /// Bytes of one row of `ne0` elements; `None` if `ne0` is not a multiple of the block.
    pub fn row_bytes(self, ne0: u64) -> Option<u64> {
        if ne0 % self.block_elems() != 0 {
            return None;
        }
        (ne0 / self.block_elems()).checked_mul(self.block_bytes())
    }

    /// Bytes of a tensor of shape `dims` (ne0 first); `None` on overflow or a row that is not a
    /// multiple of the block.
    pub fn tensor_bytes(self, dims: &[u64]) -> Option<u64> {
        let ne0 = dims.first().copied().unwrap_or(1);
        let mut bytes = self.row_bytes(ne0)?;
        for &d in dims.iter().skip(1) {
            bytes = bytes.checked_mul(d)?;
        }
        // bitnet.cpp's ggml_nbytes for I2_S: packed data, then the f32 tensor scale in 32 bytes
        bytes.checked_add(self.tensor_trailer())
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for GgmlType {
    type Err = String;

    /// Parses a type name case-insensitively (`q4_k`, `Q4_K`, `bf16`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TYPES
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(s))
            .map(|t| t.ty)
            .ok_or_else(|| {
                let names: Vec<&str> = TYPES.iter().map(|t| t.name).collect();
                format!("unknown ggml type '{s}'; known: {}", names.join(", "))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        for (i, t) in TYPES.iter().enumerate() {
            assert_eq!(GgmlType::from_id(t.ty as u32), Some(t.ty));
            assert_eq!(t.ty.info().name, t.name);
            assert_eq!(t.name.parse::<GgmlType>(), Ok(t.ty));
            if i > 0 {
                assert!(
                    TYPES[i - 1].ty < t.ty,
                    "table not in id order at {}",
                    t.name
                );
            }
        }
        assert_eq!(GgmlType::from_id(4), None);
        // 36: retired upstream (Q4_0_4_4), bitnet.cpp's I2_S; 37 (its I8_S) stays unknown
        assert_eq!(GgmlType::from_id(36), Some(GgmlType::I2_S));
        assert_eq!(GgmlType::from_id(37), None);
        assert_eq!(
            GgmlType::I2_S.tensor_bytes(&[2560, 6912]),
            Some(2560 * 6912 / 4 + 32)
        );
        assert_eq!(GgmlType::Q4_K.row_bytes(512), Some(288));
        assert_eq!(GgmlType::Q4_K.row_bytes(100), None);
        assert_eq!(GgmlType::Q8_0.tensor_bytes(&[64, 3]), Some(204));
        assert_eq!(GgmlType::F16.tensor_bytes(&[u64::MAX / 2, 5]), None);
    }
}
