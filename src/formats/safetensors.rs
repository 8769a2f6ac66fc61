//! safetensors checkpoints, single-file and sharded (`model.safetensors.index.json`).
//!
//! A file is a u64 little-endian header length N, N bytes of JSON
//! (`{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {..}}`), then
//! the data; offsets are relative to the data. Checks follow the order of the `safetensors`
//! crate's `tensor.rs` (sizes with checked arithmetic, then bounds, then overlaps), but each
//! way a header can lie has its own error naming the file and the tensor. Tensors are slices
//! of a read-only memory map.

use crate::formats::mapped::{ChangedError, GuardedMap};
use serde_json::{Map, Value as Json};
use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

/// The index file of a sharded checkpoint.
pub const INDEX_FILE: &str = "model.safetensors.index.json";
/// The single-file checkpoint name in a Hugging Face folder.
pub const SINGLE_FILE: &str = "model.safetensors";

/// Every way a safetensors checkpoint can be wrong or unreadable. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum SafetensorsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {len} bytes is too short for a safetensors file (8-byte header length)")]
    Truncated { path: PathBuf, len: u64 },
    #[error("{path}: header length {header_len} is larger than the {available} bytes after it")]
    HeaderTooLarge {
        path: PathBuf,
        header_len: u64,
        available: u64,
    },
    #[error("{path}: header is not valid JSON: {what}")]
    InvalidHeader { path: PathBuf, what: String },
    #[error("{path}: tensor '{tensor}': {what}")]
    InvalidTensorEntry {
        path: PathBuf,
        tensor: String,
        what: String,
    },
    #[error("{path}: tensor '{tensor}': unknown dtype '{dtype}'")]
    UnknownDtype {
        path: PathBuf,
        tensor: String,
        dtype: String,
    },
    #[error("{path}: tensor '{tensor}': shape {shape:?} overflows u64")]
    ShapeOverflow {
        path: PathBuf,
        tensor: String,
        shape: Vec<u64>,
    },
    #[error("{path}: tensor '{tensor}': data_offsets [{begin}, {end}] end before they begin")]
    ReversedOffsets {
        path: PathBuf,
        tensor: String,
        begin: u64,
        end: u64,
    },
    #[error(
        "{path}: tensor '{tensor}': data_offsets [{begin}, {end}] run past the end of the data ({data_len} bytes)"
    )]
    TensorOutOfBounds {
        path: PathBuf,
        tensor: String,
        begin: u64,
        end: u64,
        data_len: u64,
    },
    #[error(
        "{path}: tensor '{tensor}': data_offsets span {actual} bytes but {dtype} {shape:?} needs {expected}"
    )]
    SizeMismatch {
        path: PathBuf,
        tensor: String,
        dtype: Dtype,
        shape: Vec<u64>,
        expected: u64,
        actual: u64,
    },
    #[error(
        "{path}: tensors '{first}' and '{second}' overlap: '{second}' begins at data offset {offset}, before '{first}' ends at {first_end}"
    )]
    OverlappingTensors {
        path: PathBuf,
        first: String,
        second: String,
        offset: u64,
        first_end: u64,
    },
    #[error("{path}: invalid index: {what}")]
    InvalidIndex { path: PathBuf, what: String },
    #[error("{index}: shard '{shard}' (holding tensor '{tensor}') does not exist at {path}")]
    MissingShard {
        index: PathBuf,
        shard: String,
        tensor: String,
        path: PathBuf,
    },
    #[error("{path}: the index {index} puts tensor '{tensor}' in this shard, but it is not there")]
    TensorNotInShard {
        path: PathBuf,
        index: PathBuf,
        tensor: String,
    },
    #[error("{path}: tensor '{tensor}' is also in {other}")]
    DuplicateTensor {
        path: PathBuf,
        tensor: String,
        other: PathBuf,
    },
    #[error("{path}: no {INDEX_FILE}, {SINGLE_FILE} or other .safetensors file in this folder")]
    NoWeights { path: PathBuf },
    #[error("{path}: not valid JSON: {what}")]
    InvalidConfig { path: PathBuf, what: String },
    #[error(
        "{path}: tensor '{tensor}' has dtype {dtype}; gpuq reads numeric data only as F32, F16, BF16, I8 or U8"
    )]
    UnsupportedDtype {
        path: PathBuf,
        tensor: String,
        dtype: Dtype,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SafetensorsError + '_ {
    move |source| SafetensorsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The dtypes the safetensors format defines.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[allow(non_camel_case_types)]
pub enum Dtype {
    BOOL,
    U8,
    I8,
    F8_E5M2,
    F8_E4M3,
    F8_E8M0,
    I16,
    U16,
    F16,
    BF16,
    I32,
    U32,
    F32,
    C64,
    F64,
    I64,
    U64,
    F4,
    F6_E2M3,
    F6_E3M2,
}

const DTYPES: &[(Dtype, &str, u64)] = &[
    (Dtype::BOOL, "BOOL", 8),
    (Dtype::U8, "U8", 8),
    (Dtype::I8, "I8", 8),
    (Dtype::F8_E5M2, "F8_E5M2", 8),
    (Dtype::F8_E4M3, "F8_E4M3", 8),
    (Dtype::F8_E8M0, "F8_E8M0", 8),
    (Dtype::I16, "I16", 16),
    (Dtype::U16, "U16", 16),
    (Dtype::F16, "F16", 16),
    (Dtype::BF16, "BF16", 16),
    (Dtype::I32, "I32", 32),
    (Dtype::U32, "U32", 32),
    (Dtype::F32, "F32", 32),
    (Dtype::C64, "C64", 64),
    (Dtype::F64, "F64", 64),
    (Dtype::I64, "I64", 64),
    (Dtype::U64, "U64", 64),
    (Dtype::F4, "F4", 4),
    (Dtype::F6_E2M3, "F6_E2M3", 6),
    (Dtype::F6_E3M2, "F6_E3M2", 6),
];

impl Dtype {
    /// The dtype for its name in a header (`"BF16"`), or `None`.
    pub fn from_name(s: &str) -> Option<Dtype> {
        DTYPES.iter().find(|d| d.1 == s).map(|d| d.0)
    }

    fn row(self) -> &'static (Dtype, &'static str, u64) {
        // Every variant has one row in DTYPES.
        DTYPES.iter().find(|d| d.0 == self).unwrap_or(&DTYPES[0])
    }

    pub fn name(self) -> &'static str {
        self.row().1
    }

    /// Bits per element (sub-byte types pack).
    pub fn bits(self) -> u64 {
        self.row().2
    }

    /// True for the dtypes gpuq reads as numbers: F32, F16, BF16, I8, U8.
    pub fn is_readable(self) -> bool {
        matches!(
            self,
            Dtype::F32 | Dtype::F16 | Dtype::BF16 | Dtype::I8 | Dtype::U8
        )
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One tensor of a checkpoint.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct StTensor {
    pub name: String,
    pub dtype: Dtype,
    /// Shape as stored (row-major, outermost first: the reverse of GGUF's ne order).
    pub shape: Vec<u64>,
    /// Index into [`SafetensorsModel::shards`].
    pub shard: usize,
    /// `data_offsets` as in the header (relative to the shard's data section).
    pub data_offsets: (u64, u64),
    /// Absolute offset of the first byte in the shard file.
    pub start: u64,
}

impl StTensor {
    pub fn size(&self) -> u64 {
        self.data_offsets.1 - self.data_offsets.0
    }

    pub fn n_elements(&self) -> u64 {
        // Checked for overflow when the header was read.
        self.shape.iter().fold(1u64, |a, &d| a.saturating_mul(d))
    }
}

/// One .safetensors file, mapped.
#[derive(Debug)]
pub struct Shard {
    pub path: PathBuf,
    map: Option<GuardedMap>,
    /// Absolute offset of the data section (8 + header length).
    pub data_start: u64,
    /// The header's `__metadata__` (string to string), sorted by key.
    pub metadata: Vec<(String, String)>,
}

impl Shard {
    pub fn bytes(&self) -> &[u8] {
        self.map.as_ref().map(GuardedMap::bytes).unwrap_or(&[])
    }

    /// Errs when the file changed since it was opened or a read of its map faulted.
    pub fn check_unchanged(&self) -> Result<(), ChangedError> {
        self.map
            .as_ref()
            .map_or(Ok(()), GuardedMap::check_unchanged)
    }

    /// A page-cache hint for `len` bytes at absolute file offset `offset`: needed soon
    /// (`need`), or not needed again. Out-of-range requests are ignored.
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
            // SAFETY: a read-only file mapping; dropped pages are read from the file again if used.
            let _ =
                unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, off, len) };
        }
    }
}

/// A checkpoint: one file, or a folder of shards with an index, plus `config.json`.
#[derive(Debug)]
pub struct SafetensorsModel {
    /// The path that was opened (file or folder).
    pub root: PathBuf,
    /// The index file, for a sharded checkpoint.
    pub index: Option<PathBuf>,
    pub shards: Vec<Shard>,
    /// All tensors, shard by shard, each shard's in data order.
    pub tensors: Vec<StTensor>,
    /// `config.json` next to the weights, when present.
    pub config: Option<Json>,
}

impl SafetensorsModel {
    /// Opens a .safetensors file, an index file, or a Hugging Face model folder.
    pub fn open(path: impl AsRef<Path>) -> Result<SafetensorsModel, SafetensorsError> {
        let root = path.as_ref().to_path_buf();
        let (dir, files, index) = if root.is_dir() {
            let index = root.join(INDEX_FILE);
            let single = root.join(SINGLE_FILE);
            if index.is_file() {
                let shards = read_index(&index)?;
                (root.clone(), shards, Some(index))
            } else if single.is_file() {
                (root.clone(), vec![(single, Vec::new())], None)
            } else {
                let mut found: Vec<PathBuf> = std::fs::read_dir(&root)
                    .map_err(io_err(&root))?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "safetensors") && p.is_file())
                    .collect();
                found.sort();
                if found.is_empty() {
                    return Err(SafetensorsError::NoWeights { path: root });
                }
                (
                    root.clone(),
                    found.into_iter().map(|p| (p, Vec::new())).collect(),
                    None,
                )
            }
        } else {
            let dir = root.parent().map(Path::to_path_buf).unwrap_or_default();
            if root.to_string_lossy().ends_with(".index.json") {
                let shards = read_index(&root)?;
                (dir, shards, Some(root.clone()))
            } else {
                (dir, vec![(root.clone(), Vec::new())], None)
            }
        };

        let mut shards = Vec::with_capacity(files.len());
        let mut tensors: Vec<StTensor> = Vec::new();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (si, (file, expected)) in files.into_iter().enumerate() {
            let (shard, mut ts) = open_shard(&file, si)?;
            let names: HashMap<&str, ()> = ts.iter().map(|t| (t.name.as_str(), ())).collect();
            for name in &expected {
                if !names.contains_key(name.as_str()) {
                    return Err(SafetensorsError::TensorNotInShard {
                        path: file.clone(),
                        index: index.clone().unwrap_or_default(),
                        tensor: name.clone(),
                    });
                }
            }
            for t in &ts {
                if let Some(&other) = seen.get(&t.name) {
                    return Err(SafetensorsError::DuplicateTensor {
                        path: file.clone(),
                        tensor: t.name.clone(),
                        other: shards
                            .get(other)
                            .map(|s: &Shard| s.path.clone())
                            .unwrap_or_default(),
                    });
                }
                seen.insert(t.name.clone(), si);
            }
            tensors.append(&mut ts);
            shards.push(shard);
        }

        let config_path = dir.join("config.json");
        let config = if config_path.is_file() {
            let text = std::fs::read(&config_path).map_err(io_err(&config_path))?;
            Some(
                serde_json::from_slice(&text).map_err(|e| SafetensorsError::InvalidConfig {
                    path: config_path.clone(),
                    what: e.to_string(),
                })?,
            )
        } else {
            None
        };

        Ok(SafetensorsModel {
            root,
            index,
            shards,
            tensors,
            config,
        })
    }

    pub fn tensor(&self, name: &str) -> Option<&StTensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The raw bytes of a tensor (any dtype). Ranges were checked when the shard was opened.
    pub fn tensor_data(&self, t: &StTensor) -> &[u8] {
        let Some(shard) = self.shards.get(t.shard) else {
            return &[];
        };
        let end = t.start.checked_add(t.size());
        end.and_then(|e| {
            shard
                .bytes()
                .get(usize::try_from(t.start).ok()?..usize::try_from(e).ok()?)
        })
        .unwrap_or(&[])
    }

    /// The bytes of a tensor that is to be read as numbers: F32, F16, BF16, I8 or U8.
    pub fn numeric_data(&self, t: &StTensor) -> Result<&[u8], SafetensorsError> {
        if !t.dtype.is_readable() {
            return Err(SafetensorsError::UnsupportedDtype {
                path: self.shard_path(t).to_path_buf(),
                tensor: t.name.clone(),
                dtype: t.dtype,
            });
        }
        Ok(self.tensor_data(t))
    }

    /// The file holding a tensor.
    pub fn shard_path(&self, t: &StTensor) -> &Path {
        self.shards
            .get(t.shard)
            .map(|s| s.path.as_path())
            .unwrap_or(Path::new(""))
    }
}

/// Reads an index: the shard files (sorted by name) and the tensors each must hold.
fn read_index(index: &Path) -> Result<Vec<(PathBuf, Vec<String>)>, SafetensorsError> {
    let bad = |what: String| SafetensorsError::InvalidIndex {
        path: index.to_path_buf(),
        what,
    };
    let text = std::fs::read(index).map_err(io_err(index))?;
    let json: Json = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
    let map = json
        .get("weight_map")
        .and_then(Json::as_object)
        .ok_or_else(|| bad("no \"weight_map\" object".into()))?;
    let dir = index.parent().unwrap_or(Path::new(""));
    let mut by_shard: Vec<(String, Vec<String>)> = Vec::new();
    for (tensor, shard) in map {
        let shard = shard
            .as_str()
            .ok_or_else(|| bad(format!("tensor '{tensor}': shard is not a string")))?;
        let p = Path::new(shard);
        if shard.is_empty()
            || p.is_absolute()
            || p.components().count() != 1
            || shard == ".."
            || shard == "."
        {
            return Err(bad(format!(
                "tensor '{tensor}': shard '{shard}' is not a file name in the index's folder"
            )));
        }
        match by_shard.iter_mut().find(|(s, _)| s == shard) {
            Some((_, v)) => v.push(tensor.clone()),
            None => by_shard.push((shard.to_string(), vec![tensor.clone()])),
        }
    }
    by_shard.sort();
    let mut out = Vec::with_capacity(by_shard.len());
    for (shard, tensors) in by_shard {
        let path = dir.join(&shard);
        if !path.is_file() {
            return Err(SafetensorsError::MissingShard {
                index: index.to_path_buf(),
                tensor: tensors.first().cloned().unwrap_or_default(),
                shard,
                path,
            });
        }
        out.push((path, tensors));
    }
    Ok(out)
}

/// Opens and validates one .safetensors file; its tensors get shard index `si`.
fn open_shard(path: &Path, si: usize) -> Result<(Shard, Vec<StTensor>), SafetensorsError> {
    let file = File::open(path).map_err(io_err(path))?;
    let len = file.metadata().map_err(io_err(path))?.len();
    if len < 8 {
        return Err(SafetensorsError::Truncated {
            path: path.to_path_buf(),
            len,
        });
    }
    // read-only, guarded against the file shrinking (formats::mapped)
    let map = GuardedMap::map(file, path).map_err(io_err(path))?;
    let (data_start, metadata, tensors) = parse_header(path, map.bytes(), si)?;
    Ok((
        Shard {
            path: path.to_path_buf(),
            map: Some(map),
            data_start,
            metadata,
        },
        tensors,
    ))
}

type Header = (u64, Vec<(String, String)>, Vec<StTensor>);

fn parse_header(path: &Path, bytes: &[u8], si: usize) -> Result<Header, SafetensorsError> {
    let file_len = bytes.len() as u64;
    let mut n = [0u8; 8];
    n.copy_from_slice(&bytes[..8]); // caller checked len >= 8
    let header_len = u64::from_le_bytes(n);
    let available = file_len - 8;
    if header_len > available {
        return Err(SafetensorsError::HeaderTooLarge {
            path: path.to_path_buf(),
            header_len,
            available,
        });
    }
    let data_start = 8 + header_len;
    let data_len = file_len - data_start;
    let header = &bytes[8..data_start as usize]; // within the map: checked above
    let json: Map<String, Json> =
        serde_json::from_slice(header).map_err(|e| SafetensorsError::InvalidHeader {
            path: path.to_path_buf(),
            what: e.to_string(),
        })?;

    let mut metadata = Vec::new();
    let mut tensors = Vec::with_capacity(json.len());
    for (name, entry) in &json {
        let bad = |what: &str| SafetensorsError::InvalidTensorEntry {
            path: path.to_path_buf(),
            tensor: name.clone(),
            what: what.to_string(),
        };
        if name == "__metadata__" {
            let m = entry
                .as_object()
                .ok_or_else(|| bad("__metadata__ is not an object"))?;
            for (k, v) in m {
                let v = v
                    .as_str()
                    .ok_or_else(|| bad("__metadata__ values must be strings"))?;
                metadata.push((k.clone(), v.to_string()));
            }
            continue;
        }
        let obj = entry
            .as_object()
            .ok_or_else(|| bad("entry is not an object"))?;
        let dtype_name = obj
            .get("dtype")
            .and_then(Json::as_str)
            .ok_or_else(|| bad("no \"dtype\" string"))?;
        let shape: Vec<u64> = obj
            .get("shape")
            .and_then(Json::as_array)
            .ok_or_else(|| bad("no \"shape\" array"))?
            .iter()
            .map(Json::as_u64)
            .collect::<Option<_>>()
            .ok_or_else(|| bad("shape holds something other than non-negative integers"))?;
        let offsets: Vec<u64> = obj
            .get("data_offsets")
            .and_then(Json::as_array)
            .ok_or_else(|| bad("no \"data_offsets\" array"))?
            .iter()
            .map(Json::as_u64)
            .collect::<Option<_>>()
            .ok_or_else(|| bad("data_offsets holds something other than non-negative integers"))?;
        let &[begin, end] = offsets.as_slice() else {
            return Err(bad("data_offsets must be [begin, end]"));
        };
        let dtype = Dtype::from_name(dtype_name).ok_or_else(|| SafetensorsError::UnknownDtype {
            path: path.to_path_buf(),
            tensor: name.clone(),
            dtype: dtype_name.to_string(),
        })?;
        let overflow = || SafetensorsError::ShapeOverflow {
            path: path.to_path_buf(),
            tensor: name.clone(),
            shape: shape.clone(),
        };
        let n_bits = shape
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .and_then(|n| n.checked_mul(dtype.bits()))
            .ok_or_else(overflow)?;
        if end < begin {
            return Err(SafetensorsError::ReversedOffsets {
                path: path.to_path_buf(),
                tensor: name.clone(),
                begin,
                end,
            });
        }
        if end > data_len {
            return Err(SafetensorsError::TensorOutOfBounds {
                path: path.to_path_buf(),
                tensor: name.clone(),
                begin,
                end,
                data_len,
            });
        }
        if n_bits % 8 != 0 || n_bits / 8 != end - begin {
            return Err(SafetensorsError::SizeMismatch {
                path: path.to_path_buf(),
                tensor: name.clone(),
                dtype,
                shape,
                expected: n_bits.div_ceil(8),
                actual: end - begin,
            });
        }
        tensors.push(StTensor {
            name: name.clone(),
            dtype,
            shape,
            shard: si,
            data_offsets: (begin, end),
            start: data_start + begin,
        });
    }
    tensors.sort_by_key(|t| t.data_offsets);
    let non_empty: Vec<&StTensor> = tensors.iter().filter(|t| t.size() > 0).collect();
    for w in non_empty.windows(2) {
        if w[1].data_offsets.0 < w[0].data_offsets.1 {
            return Err(SafetensorsError::OverlappingTensors {
                path: path.to_path_buf(),
                first: w[0].name.clone(),
                second: w[1].name.clone(),
                offset: w[1].data_offsets.0,
                first_end: w[0].data_offsets.1,
            });
        }
    }
    Ok((data_start, metadata, tensors))
}
