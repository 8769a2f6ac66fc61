//! The GGUF container (versions 2 and 3): reader, writer, metadata values.
//!
//! Layout (llama.cpp `ggml/src/gguf.cpp`): magic "GGUF", u32 version, u64 tensor count,
//! u64 metadata count, metadata key/values, tensor infos, zero padding up to the alignment,
//! then the data section; each tensor's offset is relative to the data section and a multiple
//! of the alignment (`general.alignment`, 32 when absent).

use crate::GgmlType;
use std::path::PathBuf;

pub mod out_map;
pub mod output;
pub mod reader;
pub mod value;
pub mod writer;

pub use reader::GgufFile;
pub use value::{Array, Value, ValueType};
pub use writer::{GgufWriter, Layout, Region, Store, TensorSpec, WriteOptions, layout};

/// "GGUF" read as a little-endian u32.
pub const GGUF_MAGIC: u32 = 0x4655_4747;
/// The version gpuq writes.
pub const GGUF_VERSION: u32 = 3;
/// The alignment when `general.alignment` is absent (`GGUF_DEFAULT_ALIGNMENT`).
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// The metadata key that sets the alignment.
pub const KEY_ALIGNMENT: &str = "general.alignment";
/// Most dimensions a tensor may have (`GGML_MAX_DIMS`).
pub const MAX_DIMS: u32 = 4;
/// Deepest nesting of arrays inside arrays the reader accepts (guards the stack).
pub const MAX_ARRAY_DEPTH: u32 = 8;

/// One tensor of a GGUF file.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TensorInfo {
    pub name: String,
    /// Shape, `ne[0]` (the contiguous row length) first.
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Byte offset relative to the start of the data section.
    pub offset: u64,
    /// Size in bytes (`ggml_nbytes`).
    pub size: u64,
}

impl TensorInfo {
    /// Number of elements (product of `dims`; 1 for a tensor with no dims).
    pub fn n_elements(&self) -> u64 {
        // Checked when the tensor was read or planned; saturate rather than panic.
        self.dims.iter().fold(1u64, |a, &d| a.saturating_mul(d))
    }
}

/// `x` rounded up to a multiple of `align` (`GGML_PAD`); `None` on overflow.
pub fn pad_to(x: u64, align: u64) -> Option<u64> {
    let r = x % align;
    if r == 0 {
        Some(x)
    } else {
        x.checked_add(align - r)
    }
}

/// Every way a GGUF file can be wrong, or fail to be read or written. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a GGUF file (magic {found:#010x}, expected 0x46554747 \"GGUF\")")]
    BadMagic { path: PathBuf, found: u32 },
    #[error("{path}: unsupported GGUF version {version} (gpuq reads versions 2 and 3)")]
    UnsupportedVersion { path: PathBuf, version: u32 },
    #[error(
        "{path}: truncated at offset {offset}: {what} needs {need} bytes, the file has {have} left"
    )]
    Truncated {
        path: PathBuf,
        offset: u64,
        what: String,
        need: u64,
        have: u64,
    },
    #[error(
        "{path}: tensor count {count} at offset 8 is larger than the file could hold (at most {max})"
    )]
    TensorCountTooLarge { path: PathBuf, count: u64, max: u64 },
    #[error(
        "{path}: metadata count {count} at offset 16 is larger than the file could hold (at most {max})"
    )]
    MetadataCountTooLarge { path: PathBuf, count: u64, max: u64 },
    #[error(
        "{path}: {what} at offset {offset}: string length {len} is larger than the {remaining} bytes left in the file"
    )]
    StringTooLong {
        path: PathBuf,
        offset: u64,
        what: String,
        len: u64,
        remaining: u64,
    },
    #[error("{path}: {what} at offset {offset}: string is not valid UTF-8")]
    InvalidUtf8 {
        path: PathBuf,
        offset: u64,
        what: String,
    },
    #[error(
        "{path}: metadata key '{key}' at offset {offset}: array of {count} {elem} elements cannot fit in the {remaining} bytes left in the file"
    )]
    ArrayTooLong {
        path: PathBuf,
        offset: u64,
        key: String,
        elem: ValueType,
        count: u64,
        remaining: u64,
    },
    #[error("{path}: metadata key '{key}' at offset {offset}: unknown value type id {id}")]
    UnknownValueType {
        path: PathBuf,
        offset: u64,
        key: String,
        id: u32,
    },
    #[error("{path}: metadata key '{key}' at offset {offset}: bool byte is {byte}, not 0 or 1")]
    InvalidBool {
        path: PathBuf,
        offset: u64,
        key: String,
        byte: u8,
    },
    #[error(
        "{path}: metadata key '{key}' at offset {offset}: arrays nested deeper than {MAX_ARRAY_DEPTH}"
    )]
    ArrayTooDeep {
        path: PathBuf,
        offset: u64,
        key: String,
    },
    #[error("{path}: metadata key '{key}' appears twice (second at offset {offset})")]
    DuplicateKey {
        path: PathBuf,
        offset: u64,
        key: String,
    },
    #[error("{path}: general.alignment is {found}; it must be a u32 power of two")]
    BadAlignment { path: PathBuf, found: String },
    #[error(
        "{path}: tensor '{tensor}' at offset {offset}: {n_dims} dimensions (at most {MAX_DIMS})"
    )]
    TooManyDims {
        path: PathBuf,
        offset: u64,
        tensor: String,
        n_dims: u32,
    },
    #[error(
        "{path}: tensor '{tensor}' at offset {offset}: unknown ggml type id {id} (not in gpuq's type table)"
    )]
    UnknownType {
        path: PathBuf,
        offset: u64,
        tensor: String,
        id: u32,
    },
    #[error("{path}: tensor '{tensor}' at offset {offset}: shape {dims:?} overflows u64 ({what})")]
    ShapeOverflow {
        path: PathBuf,
        offset: u64,
        tensor: String,
        dims: Vec<u64>,
        what: &'static str,
    },
    #[error(
        "{path}: tensor '{tensor}': row length ne0 = {ne0} is not a multiple of {ty}'s block of {block}"
    )]
    RowNotBlockMultiple {
        path: PathBuf,
        tensor: String,
        ty: GgmlType,
        ne0: u64,
        block: u64,
    },
    #[error("{path}: tensor '{tensor}' appears twice (second at offset {offset})")]
    DuplicateTensor {
        path: PathBuf,
        offset: u64,
        tensor: String,
    },
    #[error(
        "{path}: tensor '{tensor}': data offset {offset} is not a multiple of the alignment {alignment}"
    )]
    MisalignedOffset {
        path: PathBuf,
        tensor: String,
        offset: u64,
        alignment: u64,
    },
    #[error(
        "{path}: tensor '{tensor}': {size} bytes at file offset {start} end past the end of the file ({file_len} bytes)"
    )]
    TensorOutOfBounds {
        path: PathBuf,
        tensor: String,
        start: u64,
        size: u64,
        file_len: u64,
    },
    #[error(
        "{path}: tensors '{first}' and '{second}' overlap: '{second}' starts at data offset {offset}, before '{first}' ends at {first_end}"
    )]
    OverlappingTensors {
        path: PathBuf,
        first: String,
        second: String,
        offset: u64,
        first_end: u64,
    },
    // ---- writer errors ----
    #[error(
        "{path}: the output needs {need} bytes but its file system has {free} bytes free; nothing was written (free some space, choose another directory, or pass --no-space-check)"
    )]
    NoSpace { path: PathBuf, need: u64, free: u64 },
    #[error("{path}: {what} {len} bytes at offset {offset} failed: {errno}: {source}")]
    WriteFailed {
        path: PathBuf,
        what: &'static str,
        offset: u64,
        len: u64,
        errno: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is being written by {who}; wait for it to finish or write elsewhere")]
    Busy {
        path: PathBuf,
        tmp: PathBuf,
        who: String,
    },
    #[error(
        "{path}: the written file failed verification, so it was not kept (pass --no-verify to keep it anyway):\n  {}",
        findings.join("\n  ")
    )]
    Unsound {
        path: PathBuf,
        findings: Vec<String>,
    },
    #[error("{path}: metadata key '{key}': {what}")]
    BadMetadata {
        path: PathBuf,
        key: String,
        what: String,
    },
    #[error("{path}: tensor '{tensor}': {what}")]
    BadTensorSpec {
        path: PathBuf,
        tensor: String,
        what: String,
    },
    #[error(
        "{path}: write of {len} bytes at offset {offset} of tensor #{index} ('{tensor}') {what}"
    )]
    BadWrite {
        path: PathBuf,
        index: usize,
        tensor: String,
        offset: u64,
        len: u64,
        what: &'static str,
    },
    #[error(
        "{path}: tensor '{tensor}' was not completely written ({written} of {size} bytes) when the file was finished"
    )]
    Incomplete {
        path: PathBuf,
        tensor: String,
        written: u64,
        size: u64,
    },
}

impl GgufError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        GgufError::Io {
            path: path.into(),
            source,
        }
    }
}
