//! The GGUF reader: memory-mapped, every length and offset checked before it is used.
//!
//! Mirrors `gguf_init_from_file_impl` in llama.cpp's `ggml/src/gguf.cpp`. Checks run in a
//! fixed order: magic, version, counts (capped by what the rest of the file could hold),
//! metadata (each string and array length against the bytes left), alignment, tensor infos
//! (dims, element-count overflow, type id, block multiple, duplicate names), then the data
//! section: offsets aligned, ranges inside the file, no two tensors overlapping.

use super::value::{Array, Value, ValueType};
use super::{
    DEFAULT_ALIGNMENT, GGUF_MAGIC, GgufError, KEY_ALIGNMENT, MAX_ARRAY_DEPTH, MAX_DIMS, TensorInfo,
    pad_to,
};
use crate::GgmlType;
use crate::formats::mapped::{ChangedError, GuardedMap};
use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};

/// Fewest bytes a tensor info occupies: name length (u64), n_dims (u32), type (u32),
/// offset (u64).
const MIN_TENSOR_INFO: u64 = 8 + 4 + 4 + 8;
/// Fewest bytes a metadata entry occupies: key length (u64), value type (u32), one byte.
const MIN_KV: u64 = 8 + 4 + 1;
/// Bytes of the fixed header: magic, version, tensor count, metadata count.
pub const HEADER_LEN: u64 = 4 + 4 + 8 + 8;

/// An open GGUF file: parsed header and tensor list over a read-only memory map.
#[derive(Debug)]
pub struct GgufFile {
    path: PathBuf,
    map: Option<GuardedMap>,
    pub version: u32,
    /// Metadata in file order.
    pub metadata: Vec<(String, Value)>,
    /// Tensors in file order.
    pub tensors: Vec<TensorInfo>,
    /// The data alignment (`general.alignment` or 32).
    pub alignment: u64,
    /// Absolute file offset of the data section.
    pub data_offset: u64,
}

impl GgufFile {
    /// Opens and validates a GGUF file. Tensor data is not read; it is mapped.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufFile, GgufError> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| GgufError::io(&path, e))?;
        let len = file.metadata().map_err(|e| GgufError::io(&path, e))?.len();
        let map = if len == 0 {
            None
        } else {
            // read-only; reads past the end of a file that shrinks while mapped see zeros and
            // are reported by check_unchanged (see formats::mapped)
            Some(GuardedMap::map(file, &path).map_err(|e| GgufError::io(&path, e))?)
        };
        let bytes: &[u8] = map.as_ref().map(GuardedMap::bytes).unwrap_or(&[]);
        let parsed = parse(&path, bytes)?;
        Ok(GgufFile {
            path,
            map,
            version: parsed.version,
            metadata: parsed.metadata,
            tensors: parsed.tensors,
            alignment: parsed.alignment,
            data_offset: parsed.data_offset,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        self.map.as_ref().map(GuardedMap::bytes).unwrap_or(&[])
    }

    /// Errs when the file changed since it was opened (size, modification time) or a read of
    /// its map faulted because it shrank.
    pub fn check_unchanged(&self) -> Result<(), ChangedError> {
        self.map
            .as_ref()
            .map_or(Ok(()), GuardedMap::check_unchanged)
    }

    pub fn file_len(&self) -> u64 {
        self.bytes().len() as u64
    }

    /// Page-cache hints for a byte range of the file: `need` asks the kernel to read it ahead,
    /// otherwise its pages are dropped from this process (they are re-read if touched again).
    /// Hints only; failures are ignored.
    pub fn advise(&self, offset: u64, len: u64, need: bool) {
        let (Some(map), Ok(off), Ok(len)) = (
            self.map.as_ref().map(GuardedMap::mmap),
            usize::try_from(offset),
            usize::try_from(len),
        ) else {
            return;
        };
        if len == 0 || off.checked_add(len).is_none_or(|end| end > map.len()) {
            return;
        }
        if need {
            let _ = map.advise_range(memmap2::Advice::WillNeed, off, len);
        } else {
            // SAFETY: the map is a read-only file mapping; dropping its pages only means they are
            // read from the file again if used later, so no data can be lost or changed.
            let _ =
                unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, off, len) };
        }
    }

    /// The value of a metadata key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The tensor with this name.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The bytes of a tensor of this file. Ranges were checked against the file when it was
    /// opened; a `TensorInfo` not from this file gets an empty slice if it does not fit.
    pub fn tensor_data(&self, t: &TensorInfo) -> &[u8] {
        let bytes = self.bytes();
        self.data_offset
            .checked_add(t.offset)
            .and_then(|s| Some((s, s.checked_add(t.size)?)))
            .and_then(|(s, e)| bytes.get(usize::try_from(s).ok()?..usize::try_from(e).ok()?))
            .unwrap_or(&[])
    }
}

struct Parsed {
    version: u32,
    metadata: Vec<(String, Value)>,
    tensors: Vec<TensorInfo>,
    alignment: u64,
    data_offset: u64,
}

/// Bounds-checked little-endian reads over the file's bytes.
struct Cursor<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    fn offset(&self) -> u64 {
        self.pos as u64
    }

    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8], GgufError> {
        if n > self.remaining() {
            return Err(GgufError::Truncated {
                path: self.path.to_path_buf(),
                offset: self.offset(),
                what: what(),
                need: n,
                have: self.remaining(),
            });
        }
        let n = n as usize; // n <= remaining, which is a usize
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], GgufError> {
        let s = self.take(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, GgufError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, GgufError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A GGUF string: u64 length, then that many UTF-8 bytes.
    fn string(&mut self, what: &dyn Fn() -> String) -> Result<String, GgufError> {
        let len_what = || format!("{} (string length)", what());
        let len = self.u64(&len_what)?;
        let start = self.offset();
        if len > self.remaining() {
            return Err(GgufError::StringTooLong {
                path: self.path.to_path_buf(),
                offset: start - 8,
                what: what(),
                len,
                remaining: self.remaining(),
            });
        }
        let raw = self.take(len, what)?;
        String::from_utf8(raw.to_vec()).map_err(|_| GgufError::InvalidUtf8 {
            path: self.path.to_path_buf(),
            offset: start,
            what: what(),
        })
    }
}

fn parse(path: &Path, bytes: &[u8]) -> Result<Parsed, GgufError> {
    let mut c = Cursor {
        path,
        bytes,
        pos: 0,
    };
    let magic = c.u32(&|| "magic".into())?;
    if magic != GGUF_MAGIC {
        return Err(GgufError::BadMagic {
            path: path.to_path_buf(),
            found: magic,
        });
    }
    let version = c.u32(&|| "version".into())?;
    if version != 2 && version != 3 {
        return Err(GgufError::UnsupportedVersion {
            path: path.to_path_buf(),
            version,
        });
    }
    let n_tensors = c.u64(&|| "tensor count".into())?;
    let n_kv = c.u64(&|| "metadata count".into())?;
    let room = c.remaining();
    if n_tensors
        .checked_mul(MIN_TENSOR_INFO)
        .is_none_or(|b| b > room)
    {
        return Err(GgufError::TensorCountTooLarge {
            path: path.to_path_buf(),
            count: n_tensors,
            max: room / MIN_TENSOR_INFO,
        });
    }
    let room_kv = room - n_tensors * MIN_TENSOR_INFO;
    if n_kv.checked_mul(MIN_KV).is_none_or(|b| b > room_kv) {
        return Err(GgufError::MetadataCountTooLarge {
            path: path.to_path_buf(),
            count: n_kv,
            max: room_kv / MIN_KV,
        });
    }

    // Metadata.
    let mut metadata = Vec::with_capacity(n_kv as usize);
    let mut keys = HashSet::with_capacity(n_kv as usize);
    for i in 0..n_kv {
        let key_offset = c.offset();
        let key = c.string(&|| format!("metadata key #{i}"))?;
        let ty_offset = c.offset();
        let ty_id = c.u32(&|| format!("metadata key '{key}' (value type)"))?;
        let ty = ValueType::from_id(ty_id).ok_or_else(|| GgufError::UnknownValueType {
            path: path.to_path_buf(),
            offset: ty_offset,
            key: key.clone(),
            id: ty_id,
        })?;
        let value = read_value(&mut c, &key, ty, 0)?;
        if !keys.insert(key.clone()) {
            return Err(GgufError::DuplicateKey {
                path: path.to_path_buf(),
                offset: key_offset,
                key,
            });
        }
        metadata.push((key, value));
    }

    let alignment = match metadata.iter().find(|(k, _)| k == KEY_ALIGNMENT) {
        None => DEFAULT_ALIGNMENT,
        Some((_, Value::U32(a))) if a.is_power_of_two() => u64::from(*a),
        Some((_, v)) => {
            return Err(GgufError::BadAlignment {
                path: path.to_path_buf(),
                found: format!("{v} ({})", v.value_type()),
            });
        }
    };

    // Tensor infos.
    let mut tensors = Vec::with_capacity(n_tensors as usize);
    let mut names = HashSet::with_capacity(n_tensors as usize);
    for i in 0..n_tensors {
        let info_offset = c.offset();
        let name = c.string(&|| format!("tensor info #{i} (name)"))?;
        let n_dims = c.u32(&|| format!("tensor '{name}' (n_dims)"))?;
        if n_dims > MAX_DIMS {
            return Err(GgufError::TooManyDims {
                path: path.to_path_buf(),
                offset: info_offset,
                tensor: name,
                n_dims,
            });
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for d in 0..n_dims {
            dims.push(c.u64(&|| format!("tensor '{name}' (dim {d})"))?);
        }
        let ty_id = c.u32(&|| format!("tensor '{name}' (type)"))?;
        let offset = c.u64(&|| format!("tensor '{name}' (offset)"))?;
        if dims
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .is_none()
        {
            return Err(GgufError::ShapeOverflow {
                path: path.to_path_buf(),
                offset: info_offset,
                tensor: name,
                dims,
                what: "element count",
            });
        }
        let ty = GgmlType::from_id(ty_id).ok_or_else(|| GgufError::UnknownType {
            path: path.to_path_buf(),
            offset: info_offset,
            tensor: name.clone(),
            id: ty_id,
        })?;
        let ne0 = dims.first().copied().unwrap_or(1);
        if ne0 % ty.block_elems() != 0 {
            return Err(GgufError::RowNotBlockMultiple {
                path: path.to_path_buf(),
                tensor: name,
                ty,
                ne0,
                block: ty.block_elems(),
            });
        }
        let Some(size) = ty.tensor_bytes(&dims) else {
            return Err(GgufError::ShapeOverflow {
                path: path.to_path_buf(),
                offset: info_offset,
                tensor: name,
                dims,
                what: "byte size",
            });
        };
        if !names.insert(name.clone()) {
            return Err(GgufError::DuplicateTensor {
                path: path.to_path_buf(),
                offset: info_offset,
                tensor: name,
            });
        }
        tensors.push(TensorInfo {
            name,
            dims,
            ty,
            offset,
            size,
        });
    }

    // Data section. `pad_to` cannot overflow here: the cursor offset is at most the file size.
    let data_offset = pad_to(c.offset(), alignment).unwrap_or(u64::MAX);
    let file_len = bytes.len() as u64;
    for t in &tensors {
        if t.offset % alignment != 0 {
            return Err(GgufError::MisalignedOffset {
                path: path.to_path_buf(),
                tensor: t.name.clone(),
                offset: t.offset,
                alignment,
            });
        }
    }
    for t in &tensors {
        let start = data_offset.checked_add(t.offset);
        let end = start.and_then(|s| s.checked_add(t.size));
        if end.is_none_or(|e| e > file_len) {
            return Err(GgufError::TensorOutOfBounds {
                path: path.to_path_buf(),
                tensor: t.name.clone(),
                start: start.unwrap_or(u64::MAX),
                size: t.size,
                file_len,
            });
        }
    }
    let mut order: Vec<&TensorInfo> = tensors.iter().filter(|t| t.size > 0).collect();
    order.sort_by_key(|t| t.offset);
    for w in order.windows(2) {
        let first_end = w[0].offset + w[0].size; // in range: checked above
        if w[1].offset < first_end {
            return Err(GgufError::OverlappingTensors {
                path: path.to_path_buf(),
                first: w[0].name.clone(),
                second: w[1].name.clone(),
                offset: w[1].offset,
                first_end,
            });
        }
    }

    Ok(Parsed {
        version,
        metadata,
        tensors,
        alignment,
        data_offset,
    })
}

/// One metadata value of type `ty` (`gguf_reader::read` for each type in gguf.cpp).
fn read_value(c: &mut Cursor, key: &str, ty: ValueType, depth: u32) -> Result<Value, GgufError> {
    let what = || format!("metadata key '{key}' ({ty} value)");
    Ok(match ty {
        ValueType::U8 => Value::U8(u8::from_le_bytes(c.array(&what)?)),
        ValueType::I8 => Value::I8(i8::from_le_bytes(c.array(&what)?)),
        ValueType::U16 => Value::U16(u16::from_le_bytes(c.array(&what)?)),
        ValueType::I16 => Value::I16(i16::from_le_bytes(c.array(&what)?)),
        ValueType::U32 => Value::U32(u32::from_le_bytes(c.array(&what)?)),
        ValueType::I32 => Value::I32(i32::from_le_bytes(c.array(&what)?)),
        ValueType::F32 => Value::F32(f32::from_le_bytes(c.array(&what)?)),
        ValueType::U64 => Value::U64(u64::from_le_bytes(c.array(&what)?)),
        ValueType::I64 => Value::I64(i64::from_le_bytes(c.array(&what)?)),
        ValueType::F64 => Value::F64(f64::from_le_bytes(c.array(&what)?)),
        ValueType::Bool => Value::Bool(read_bool(c, key, &what)?),
        ValueType::String => Value::String(c.string(&what)?),
        ValueType::Array => Value::Array(read_array(c, key, depth)?),
    })
}

fn read_bool(c: &mut Cursor, key: &str, what: &dyn Fn() -> String) -> Result<bool, GgufError> {
    let offset = c.offset();
    let [b] = c.array::<1>(what)?;
    match b {
        0 => Ok(false),
        1 => Ok(true),
        byte => Err(GgufError::InvalidBool {
            path: c.path.to_path_buf(),
            offset,
            key: key.to_string(),
            byte,
        }),
    }
}

/// An array: u32 element type, u64 count, elements. Nested arrays recurse up to
/// [`MAX_ARRAY_DEPTH`].
fn read_array(c: &mut Cursor, key: &str, depth: u32) -> Result<Array, GgufError> {
    let offset = c.offset();
    if depth >= MAX_ARRAY_DEPTH {
        return Err(GgufError::ArrayTooDeep {
            path: c.path.to_path_buf(),
            offset,
            key: key.to_string(),
        });
    }
    let head = || format!("metadata key '{key}' (array header)");
    let elem_id = c.u32(&head)?;
    let elem = ValueType::from_id(elem_id).ok_or_else(|| GgufError::UnknownValueType {
        path: c.path.to_path_buf(),
        offset,
        key: key.to_string(),
        id: elem_id,
    })?;
    let count = c.u64(&head)?;
    if count
        .checked_mul(elem.min_encoded_len())
        .is_none_or(|b| b > c.remaining())
    {
        return Err(GgufError::ArrayTooLong {
            path: c.path.to_path_buf(),
            offset,
            key: key.to_string(),
            elem,
            count,
            remaining: c.remaining(),
        });
    }
    // count * min_encoded_len <= remaining bytes of a mapped file, so it fits in usize.
    let n = count as usize;
    let what = || format!("metadata key '{key}' ({elem} array element)");
    macro_rules! fixed {
        ($variant:ident, $t:ty) => {{
            let raw = c.take(count * elem.min_encoded_len(), &what)?;
            Array::$variant(
                raw.chunks_exact(std::mem::size_of::<$t>())
                    .map(|b| {
                        let mut a = [0u8; std::mem::size_of::<$t>()];
                        a.copy_from_slice(b);
                        <$t>::from_le_bytes(a)
                    })
                    .collect(),
            )
        }};
    }
    Ok(match elem {
        ValueType::U8 => fixed!(U8, u8),
        ValueType::I8 => fixed!(I8, i8),
        ValueType::U16 => fixed!(U16, u16),
        ValueType::I16 => fixed!(I16, i16),
        ValueType::U32 => fixed!(U32, u32),
        ValueType::I32 => fixed!(I32, i32),
        ValueType::F32 => fixed!(F32, f32),
        ValueType::U64 => fixed!(U64, u64),
        ValueType::I64 => fixed!(I64, i64),
        ValueType::F64 => fixed!(F64, f64),
        ValueType::Bool => {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(read_bool(c, key, &what)?);
            }
            Array::Bool(v)
        }
        ValueType::String => {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(c.string(&what)?);
            }
            Array::String(v)
        }
        ValueType::Array => {
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(read_array(c, key, depth + 1)?);
            }
            Array::Array(v)
        }
    })
}
