//! The GGUF writer: the header is planned from the tensor list before any data exists; data
//! is written in order or positionally by parallel workers; the file appears under its final
//! name only when every byte was written and flushed.
//!
//! Mirrors `gguf_write_to_buf` in llama.cpp's `ggml/src/gguf.cpp` and gguf-py's `GGUFWriter`
//! (offsets: each tensor's size padded to the alignment, in order; zero padding after the
//! tensor infos and after every tensor, the last one included). A file read by
//! [`GgufFile`](super::GgufFile) and written back with [`GgufWriter::write_copy`] is
//! byte-identical when its tensors were laid out that way.

use super::value::{Array, Value};
use super::{
    DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_VERSION, GgufError, GgufFile, KEY_ALIGNMENT, MAX_DIMS,
    TensorInfo, pad_to,
};
use crate::GgmlType;
use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::out_map::{OutMap, copy_parallel};

/// A tensor to be written: its data is produced later.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct TensorSpec {
    pub name: String,
    pub ty: GgmlType,
    /// Shape, `ne[0]` first.
    pub dims: Vec<u64>,
}

/// What the writer checks around the bytes it writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteOptions {
    /// Refuse before writing when the output's file system has less free space than the
    /// planned file size (`--no-space-check` turns it off).
    pub space_check: bool,
    /// Validate the written file ([`crate::formats::verify`]: blocks, metadata, shapes)
    /// before it is renamed to its final name (`--no-verify` turns it off).
    pub verify: bool,
    /// Non-finite values and block scales are not findings (the run was asked to keep them:
    /// `--allow-nonfinite`, dequantize and convert).
    pub allow_nonfinite: bool,
    /// How the data bytes reach the file.
    pub store: Store,
}

/// How a writer puts data bytes in its file ([`WriteOptions::store`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Store {
    /// The file's space reserved and the file mapped, so [`GgufWriter::region`] hands out its
    /// bytes to fill in place (see [`super::out_map`]); where that cannot be done (not Linux,
    /// no `fallocate` on the file system), as `Write`.
    #[default]
    Mapped,
    /// `pwrite` only: [`GgufWriter::region`] answers `None`.
    Write,
}

impl Default for WriteOptions {
    /// Everything checked: what quantize, dequantize and convert use.
    fn default() -> Self {
        WriteOptions {
            space_check: true,
            verify: true,
            allow_nonfinite: false,
            store: Store::Mapped,
        }
    }
}

impl WriteOptions {
    /// The space check only: what [`GgufWriter::create`] uses (a library caller writing a
    /// file on purpose, test fixtures with planted faults included).
    pub fn plain() -> Self {
        WriteOptions {
            space_check: true,
            verify: false,
            allow_nonfinite: true,
            store: Store::Mapped,
        }
    }
}

/// A GGUF file being written to `NAME.tmp.<pid>` (see [`tmp_path_for`]). `write_at` takes
/// `&self`, so worker threads can share the writer and write their tiles in any order.
#[derive(Debug)]
pub struct GgufWriter {
    path: PathBuf,
    tmp: PathBuf,
    file: File,
    opts: WriteOptions,
    tensors: Vec<TensorInfo>,
    alignment: u64,
    data_offset: u64,
    /// Per tensor: the byte ranges written so far, sorted, disjoint, adjacent ones merged.
    written: Vec<Mutex<Vec<(u64, u64)>>>,
    /// The file mapped (`Store::Mapped` where it could be done).
    map: Option<OutMap>,
    /// Where the next streamed byte goes: (tensor index, offset in tensor).
    cursor: (usize, u64),
    finished: bool,
}

impl GgufWriter {
    /// Plans the header (version 3) and creates the temporary file holding it. The alignment
    /// is `general.alignment` from `metadata` when present (a u32 power of two), else 32.
    /// Checks free space ([`WriteOptions::plain`]); does not verify the written bytes.
    pub fn create(
        path: impl AsRef<Path>,
        metadata: &[(String, Value)],
        tensors: &[TensorSpec],
    ) -> Result<GgufWriter, GgufError> {
        Self::create_with(path, metadata, tensors, &WriteOptions::plain())
    }

    /// As [`create`](Self::create), with the checks in `opts`.
    pub fn create_with(
        path: impl AsRef<Path>,
        metadata: &[(String, Value)],
        tensors: &[TensorSpec],
        opts: &WriteOptions,
    ) -> Result<GgufWriter, GgufError> {
        Self::create_full(path, GGUF_VERSION, metadata, tensors, opts)
    }

    /// As [`create`](Self::create), writing `version` (2 or 3; the layout is the same).
    pub fn create_with_version(
        path: impl AsRef<Path>,
        version: u32,
        metadata: &[(String, Value)],
        tensors: &[TensorSpec],
    ) -> Result<GgufWriter, GgufError> {
        Self::create_full(path, version, metadata, tensors, &WriteOptions::plain())
    }

    fn create_full(
        path: impl AsRef<Path>,
        version: u32,
        metadata: &[(String, Value)],
        tensors: &[TensorSpec],
        opts: &WriteOptions,
    ) -> Result<GgufWriter, GgufError> {
        let path = path.as_ref().to_path_buf();
        if version != 2 && version != 3 {
            return Err(GgufError::UnsupportedVersion { path, version });
        }
        let plan = plan(&path, version, metadata, tensors)?;
        if opts.space_check {
            super::output::check_free_space(&path, plan.total_len)?;
        }
        let (tmp, file) = super::output::create_tmp(&path)?;
        let n = plan.tensors.len();
        let mut w = GgufWriter {
            path,
            tmp,
            file,
            opts: *opts,
            tensors: plan.tensors,
            alignment: plan.alignment,
            data_offset: plan.data_offset,
            written: (0..n).map(|_| Mutex::new(Vec::new())).collect(),
            map: None,
            cursor: (0, 0),
            finished: false,
        };
        // The file gets its final length now: the gaps (padding) read back as zero bytes.
        w.file.set_len(plan.total_len).map_err(|e| {
            super::output::write_failed(&w.tmp, "setting the length", 0, plan.total_len, e)
        })?;
        w.file.write_all_at(&plan.header, 0).map_err(|e| {
            super::output::write_failed(
                &w.tmp,
                "writing the header",
                0,
                plan.header.len() as u64,
                e,
            )
        })?;
        if opts.store == Store::Mapped {
            w.map = OutMap::create(&w.file, &w.tmp, plan.total_len)?;
        }
        w.skip_empty();
        Ok(w)
    }

    /// Writes a copy of `src` (same version, metadata, tensors and bytes) to `path`.
    pub fn write_copy(src: &GgufFile, path: impl AsRef<Path>) -> Result<(), GgufError> {
        let specs: Vec<TensorSpec> = src
            .tensors
            .iter()
            .map(|t| TensorSpec {
                name: t.name.clone(),
                ty: t.ty,
                dims: t.dims.clone(),
            })
            .collect();
        let mut w = GgufWriter::create_with_version(path, src.version, &src.metadata, &specs)?;
        for t in &src.tensors {
            w.write_next(src.tensor_data(t))?;
        }
        w.finish()
    }

    /// The final path (the file is written to [`tmp_path`](Self::tmp_path) until `finish`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temporary file being written (`NAME.tmp.<pid>`).
    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// The planned tensors, with offsets (relative to the data section) and sizes.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute file offset of the data section.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// Writes `bytes` at `offset` within tensor `index`. The range must lie inside the tensor
    /// and must not overlap bytes already written.
    pub fn write_at(&self, index: usize, offset: u64, bytes: &[u8]) -> Result<(), GgufError> {
        let len = bytes.len() as u64;
        let at = self.reserve(index, offset, len)?;
        if len == 0 {
            return Ok(());
        }
        if let Some(map) = &self.map {
            // SAFETY: `reserve` checked the range lies in the planned file (the mapping) and
            // no other write or region holds any of it.
            copy_parallel(unsafe { map.slice_mut(at, bytes.len()) }, bytes);
            map.release(at, len);
            return Ok(());
        }
        self.file
            .write_all_at(bytes, at)
            .map_err(|e| super::output::write_failed(&self.tmp, "writing", at, len, e))
    }

    /// True when [`region`](Self::region) hands out the file's bytes (the file is mapped).
    pub fn is_mapped(&self) -> bool {
        self.map.is_some()
    }

    /// The `len` bytes at `offset` within tensor `index`, to be filled in place, when the file
    /// is mapped (`None`: use [`write_at`](Self::write_at)). The range counts as written from
    /// now on (the same checks as `write_at`); give it back with [`release`](Self::release)
    /// once filled, so its pages leave this process's memory and start going to disk.
    pub fn region(
        &self,
        index: usize,
        offset: u64,
        len: usize,
    ) -> Result<Option<Region<'_>>, GgufError> {
        let Some(map) = &self.map else {
            return Ok(None);
        };
        let at = self.reserve(index, offset, len as u64)?;
        // SAFETY: `reserve` checked the range lies in the mapping and recorded it, so no other
        // region or write can overlap it while this one lives.
        let bytes = unsafe { map.slice_mut(at, len) };
        Ok(Some(Region { at, bytes }))
    }

    /// Hands back a filled region (by its file offset [`Region::at`] and length): drops its
    /// pages from this process and starts their writeback. Nothing to do without a mapping.
    pub fn release(&self, at: u64, len: u64) {
        if let Some(map) = &self.map {
            map.release(at, len);
        }
    }

    /// Checks `len` bytes at `offset` of tensor `index` fit the tensor and overlap nothing
    /// written, records them as written and returns their file offset.
    fn reserve(&self, index: usize, offset: u64, len: u64) -> Result<u64, GgufError> {
        let bad = |what: &'static str| GgufError::BadWrite {
            path: self.tmp.clone(),
            index,
            tensor: self
                .tensors
                .get(index)
                .map(|t| t.name.clone())
                .unwrap_or_default(),
            offset,
            len,
            what,
        };
        let t = self
            .tensors
            .get(index)
            .ok_or_else(|| bad("names no tensor"))?;
        let end = offset
            .checked_add(len)
            .filter(|&e| e <= t.size)
            .ok_or_else(|| bad("runs past the end of the tensor"))?;
        if len > 0 {
            let mut ranges = self.written[index]
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if !insert_range(&mut ranges, offset, end) {
                return Err(bad("overlaps bytes already written"));
            }
        }
        Ok(self.data_offset + t.offset + offset) // within the planned file length
    }

    /// Writes the next bytes of tensor data in file order: continues the current tensor and
    /// moves on to the next one when it is full.
    pub fn write_next(&mut self, mut bytes: &[u8]) -> Result<(), GgufError> {
        while !bytes.is_empty() {
            let (i, off) = self.cursor;
            let Some(t) = self.tensors.get(i) else {
                return Err(GgufError::BadWrite {
                    path: self.tmp.clone(),
                    index: i,
                    tensor: String::new(),
                    offset: off,
                    len: bytes.len() as u64,
                    what: "comes after the last tensor was filled",
                });
            };
            let room = t.size - off;
            let n = (bytes.len() as u64).min(room) as usize;
            self.write_at(i, off, &bytes[..n])?;
            bytes = &bytes[n..];
            self.cursor.1 += n as u64;
            self.skip_empty();
        }
        Ok(())
    }

    /// Moves the stream cursor past full (and empty) tensors.
    fn skip_empty(&mut self) {
        while let Some(t) = self.tensors.get(self.cursor.0) {
            if self.cursor.1 < t.size {
                break;
            }
            self.cursor = (self.cursor.0 + 1, 0);
        }
    }

    /// Checks every tensor was completely written, flushes to disk and renames the file to
    /// its final name.
    pub fn finish(mut self) -> Result<(), GgufError> {
        for (t, w) in self.tensors.iter().zip(&self.written) {
            let ranges = w.lock().unwrap_or_else(|e| e.into_inner());
            let written: u64 = ranges.iter().map(|(s, e)| e - s).sum();
            if written != t.size {
                return Err(GgufError::Incomplete {
                    path: self.tmp.clone(),
                    tensor: t.name.clone(),
                    written,
                    size: t.size,
                });
            }
        }
        self.map = None; // unmapped: what remains to write back is in the page cache
        self.file.sync_all().map_err(|e| {
            super::output::write_failed(&self.tmp, "flushing", 0, self.data_offset, e)
        })?;
        if self.opts.verify {
            let report = crate::formats::verify::verify_path(
                &self.tmp,
                &crate::formats::verify::VerifyOptions {
                    allow_nonfinite: self.opts.allow_nonfinite,
                    splits: false,
                },
            )
            .map_err(|e| GgufError::Unsound {
                path: self.path.clone(),
                findings: vec![e.to_string()],
            })?;
            if !report.findings.is_empty() {
                return Err(GgufError::Unsound {
                    path: self.path.clone(),
                    findings: report.findings.iter().map(|f| f.to_string()).collect(),
                });
            }
        }
        std::fs::rename(&self.tmp, &self.path).map_err(|e| GgufError::io(&self.path, e))?;
        self.finished = true;
        Ok(())
    }
}

impl Drop for GgufWriter {
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Bytes of a mapped output handed out by [`GgufWriter::region`], to be filled in place.
#[derive(Debug)]
pub struct Region<'w> {
    at: u64,
    bytes: &'w mut [u8],
}

impl Region<'_> {
    /// The region's offset in the file (what [`GgufWriter::release`] takes).
    pub fn at(&self) -> u64 {
        self.at
    }
}

impl std::ops::Deref for Region<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.bytes
    }
}

impl std::ops::DerefMut for Region<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.bytes
    }
}

/// Adds [s, e) to a sorted list of disjoint ranges, merging neighbours; false if it overlaps.
fn insert_range(ranges: &mut Vec<(u64, u64)>, s: u64, e: u64) -> bool {
    let i = ranges.partition_point(|r| r.0 < s);
    if i > 0 && ranges[i - 1].1 > s {
        return false;
    }
    if i < ranges.len() && ranges[i].0 < e {
        return false;
    }
    let join_prev = i > 0 && ranges[i - 1].1 == s;
    let join_next = i < ranges.len() && ranges[i].0 == e;
    match (join_prev, join_next) {
        (true, true) => {
            ranges[i - 1].1 = ranges[i].1;
            ranges.remove(i);
        }
        (true, false) => ranges[i - 1].1 = e,
        (false, true) => ranges[i].0 = s,
        (false, false) => ranges.insert(i, (s, e)),
    }
    true
}

/// Where a file's data starts and how long it is, as [`GgufWriter::create`] would write it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Bytes of the header, padded to the alignment (where the first tensor starts).
    pub data_offset: u64,
    /// `general.alignment` or 32: every tensor starts at a multiple and is padded to one.
    pub alignment: u64,
    /// The whole file.
    pub total_len: u64,
}

/// The layout of a version-3 file of `metadata` and `tensors`, without writing anything (what
/// a size target must subtract from its budget).
pub fn layout(
    path: impl AsRef<Path>,
    metadata: &[(String, Value)],
    tensors: &[TensorSpec],
) -> Result<Layout, GgufError> {
    let p = plan(path.as_ref(), GGUF_VERSION, metadata, tensors)?;
    Ok(Layout {
        data_offset: p.data_offset,
        alignment: p.alignment,
        total_len: p.total_len,
    })
}

struct Plan {
    header: Vec<u8>,
    tensors: Vec<TensorInfo>,
    alignment: u64,
    data_offset: u64,
    total_len: u64,
}

/// Lays out the file: header bytes, tensor offsets, data offset and total length.
fn plan(
    path: &Path,
    version: u32,
    metadata: &[(String, Value)],
    specs: &[TensorSpec],
) -> Result<Plan, GgufError> {
    let mut keys = HashSet::new();
    for (k, _) in metadata {
        if !keys.insert(k.as_str()) {
            return Err(GgufError::BadMetadata {
                path: path.to_path_buf(),
                key: k.clone(),
                what: "appears twice".into(),
            });
        }
    }
    let alignment = match metadata.iter().find(|(k, _)| k == KEY_ALIGNMENT) {
        None => DEFAULT_ALIGNMENT,
        Some((_, Value::U32(a))) if a.is_power_of_two() => u64::from(*a),
        Some((k, v)) => {
            return Err(GgufError::BadMetadata {
                path: path.to_path_buf(),
                key: k.clone(),
                what: format!("is {v} ({}); it must be a u32 power of two", v.value_type()),
            });
        }
    };

    let mut tensors = Vec::with_capacity(specs.len());
    let mut names = HashSet::new();
    let mut offset = 0u64;
    for s in specs {
        let bad = |what: String| GgufError::BadTensorSpec {
            path: path.to_path_buf(),
            tensor: s.name.clone(),
            what,
        };
        if !names.insert(s.name.as_str()) {
            return Err(bad("appears twice".into()));
        }
        if s.dims.len() > MAX_DIMS as usize {
            return Err(bad(format!(
                "{} dimensions (at most {MAX_DIMS})",
                s.dims.len()
            )));
        }
        let ne0 = s.dims.first().copied().unwrap_or(1);
        if ne0 % s.ty.block_elems() != 0 {
            return Err(bad(format!(
                "row length {ne0} is not a multiple of {}'s block of {}",
                s.ty,
                s.ty.block_elems()
            )));
        }
        let overflow = || bad(format!("shape {:?} overflows u64", s.dims));
        if s.dims
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .is_none()
        {
            return Err(overflow());
        }
        let size = s.ty.tensor_bytes(&s.dims).ok_or_else(overflow)?;
        tensors.push(TensorInfo {
            name: s.name.clone(),
            dims: s.dims.clone(),
            ty: s.ty,
            offset,
            size,
        });
        offset = pad_to(size, alignment)
            .and_then(|p| offset.checked_add(p))
            .ok_or_else(overflow)?;
    }

    let mut h = Vec::new();
    h.extend_from_slice(&GGUF_MAGIC.to_le_bytes());
    h.extend_from_slice(&version.to_le_bytes());
    h.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    h.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (k, v) in metadata {
        put_string(&mut h, k);
        h.extend_from_slice(&v.value_type().id().to_le_bytes());
        put_value(&mut h, v);
    }
    for t in &tensors {
        put_string(&mut h, &t.name);
        h.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
        for d in &t.dims {
            h.extend_from_slice(&d.to_le_bytes());
        }
        h.extend_from_slice(&t.ty.id().to_le_bytes());
        h.extend_from_slice(&t.offset.to_le_bytes());
    }
    let too_big = || GgufError::BadTensorSpec {
        path: path.to_path_buf(),
        tensor: String::new(),
        what: "the file size overflows u64".into(),
    };
    let data_offset = pad_to(h.len() as u64, alignment).ok_or_else(too_big)?;
    let total_len = data_offset.checked_add(offset).ok_or_else(too_big)?;
    Ok(Plan {
        header: h,
        tensors,
        alignment,
        data_offset,
        total_len,
    })
}

fn put_string(h: &mut Vec<u8>, s: &str) {
    h.extend_from_slice(&(s.len() as u64).to_le_bytes());
    h.extend_from_slice(s.as_bytes());
}

/// A value's bytes, without its type id (`gguf_writer::write` in gguf.cpp).
fn put_value(h: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => h.extend_from_slice(&x.to_le_bytes()),
        Value::I8(x) => h.extend_from_slice(&x.to_le_bytes()),
        Value::U16(x) => h.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => h.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => h.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => h.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => h.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => h.push(u8::from(*x)),
        Value::String(s) => put_string(h, s),
        Value::Array(a) => put_array(h, a),
        Value::U64(x) => h.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => h.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => h.extend_from_slice(&x.to_le_bytes()),
    }
}

fn put_array(h: &mut Vec<u8>, a: &Array) {
    h.extend_from_slice(&a.element_type().id().to_le_bytes());
    h.extend_from_slice(&(a.len() as u64).to_le_bytes());
    macro_rules! each {
        ($v:expr) => {
            for x in $v {
                h.extend_from_slice(&x.to_le_bytes());
            }
        };
    }
    match a {
        Array::U8(v) => h.extend_from_slice(v),
        Array::I8(v) => each!(v),
        Array::U16(v) => each!(v),
        Array::I16(v) => each!(v),
        Array::U32(v) => each!(v),
        Array::I32(v) => each!(v),
        Array::F32(v) => each!(v),
        Array::Bool(v) => h.extend(v.iter().map(|&b| u8::from(b))),
        Array::String(v) => v.iter().for_each(|s| put_string(h, s)),
        Array::Array(v) => v.iter().for_each(|a| put_array(h, a)),
        Array::U64(v) => each!(v),
        Array::I64(v) => each!(v),
        Array::F64(v) => each!(v),
    }
}

/// The bytes of a metadata value as it appears in a file (type id first), for tools that
/// compare or hash metadata.
pub fn encode_value(v: &Value) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&v.value_type().id().to_le_bytes());
    put_value(&mut h, v);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_and_reject_overlap() {
        let mut r = Vec::new();
        assert!(insert_range(&mut r, 10, 20));
        assert!(insert_range(&mut r, 0, 5));
        assert!(insert_range(&mut r, 5, 10));
        assert_eq!(r, vec![(0, 20)]);
        assert!(!insert_range(&mut r, 19, 21));
        assert!(insert_range(&mut r, 30, 40));
        assert!(!insert_range(&mut r, 25, 31));
        assert!(insert_range(&mut r, 20, 30));
        assert_eq!(r, vec![(0, 40)]);
    }

    /// Two tensors written in pieces, in a scrambled order, through `region` where the writer
    /// hands them out and `write_at` otherwise; returns the file's bytes.
    fn write_pieces(dir: &Path, store: Store, name: &str) -> (bool, Vec<u8>) {
        let specs = [
            TensorSpec {
                name: "a".into(),
                ty: GgmlType::F32,
                dims: vec![1000, 37], // 148,000 bytes: not page aligned, padded to 32
            },
            TensorSpec {
                name: "b".into(),
                ty: GgmlType::F16,
                dims: vec![4096, 300], // 2,457,600 bytes
            },
        ];
        let opts = WriteOptions {
            store,
            ..WriteOptions::plain()
        };
        let path = dir.join(name);
        let w = GgufWriter::create_with(&path, &[], &specs, &opts).unwrap();
        let mapped = w.is_mapped();
        // seeded bytes; pieces of uneven sizes in a scrambled order, some through write_at
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for (i, t) in w.tensors().to_vec().iter().enumerate() {
            let mut cuts: Vec<u64> = (0..9).map(|_| next() % t.size).collect();
            cuts.extend([0, t.size]);
            cuts.sort_unstable();
            cuts.dedup();
            let mut pieces: Vec<(u64, u64)> = cuts.windows(2).map(|c| (c[0], c[1])).collect();
            pieces.sort_by_key(|p| (p.0 * 7919) % 13);
            for (k, (s, e)) in pieces.into_iter().enumerate() {
                let bytes: Vec<u8> = (s..e).map(|x| (x as u8) ^ (i as u8 * 101)).collect();
                // every third piece through write_at, the others in place where handed out
                let region = if k % 3 == 0 {
                    None
                } else {
                    w.region(i, s, (e - s) as usize).unwrap()
                };
                match region {
                    Some(mut r) => {
                        // every byte is written: the region starts as zeros (a fresh file)
                        assert!(r.iter().all(|&b| b == 0));
                        r.copy_from_slice(&bytes);
                        let at = r.at();
                        assert_eq!(at, w.data_offset() + t.offset + s);
                        w.release(at, e - s);
                    }
                    None => w.write_at(i, s, &bytes).unwrap(),
                }
            }
        }
        w.finish().unwrap();
        (mapped, std::fs::read(&path).unwrap())
    }

    #[test]
    fn a_mapped_output_is_the_written_one_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let (mapped, via_map) = write_pieces(dir.path(), Store::Mapped, "m.gguf");
        let (plain, via_write) = write_pieces(dir.path(), Store::Write, "w.gguf");
        assert!(!plain, "Store::Write maps nothing");
        if !mapped {
            eprintln!("SKIP mapped side: this file system cannot reserve space (both written)");
        }
        assert_eq!(via_map.len(), via_write.len());
        assert!(via_map == via_write, "mapped and written files differ");
        let f = GgufFile::open(dir.path().join("m.gguf")).unwrap();
        let b = &f.tensors[1];
        let data = f.tensor_data(b);
        assert!(data.iter().enumerate().all(|(x, &v)| v == (x as u8) ^ 101));
    }

    #[test]
    fn regions_are_checked_like_writes() {
        let dir = tempfile::tempdir().unwrap();
        let specs = [TensorSpec {
            name: "t".into(),
            ty: GgmlType::F32,
            dims: vec![1024, 8],
        }];
        let path = dir.path().join("r.gguf");
        let w = GgufWriter::create_with(&path, &[], &specs, &WriteOptions::plain()).unwrap();
        if !w.is_mapped() {
            eprintln!("SKIP: this file system cannot reserve space; regions are never handed out");
            return;
        }
        let r = w.region(0, 4096, 8192).unwrap().unwrap();
        assert_eq!(r.len(), 8192);
        // an overlapping region or write is refused, the first one held or not
        let e = w.region(0, 8000, 200).unwrap_err().to_string();
        assert!(e.contains("overlaps") && e.contains('t'), "{e}");
        let e = w.write_at(0, 12287, &[1, 2]).unwrap_err().to_string();
        assert!(e.contains("overlaps"), "{e}");
        w.release(r.at(), 8192);
        // past the tensor, or no such tensor
        let e = w.region(0, 32768 - 4, 8).unwrap_err().to_string();
        assert!(e.contains("past the end"), "{e}");
        assert!(w.region(1, 0, 4).is_err());
        // the unfilled rest makes finish refuse: nothing under the final name
        let e = w.finish().unwrap_err().to_string();
        assert!(e.contains('t'), "{e}");
        assert!(!path.exists());
        assert!(crate::formats::gguf::output::leftover_tmp_files(&path).is_empty());
    }
}
