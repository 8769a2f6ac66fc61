//! Importance-matrix files as llama-imatrix writes them and llama-quantize reads them
//! (`common_imatrix_load` and `load_imatrix` in llama.cpp):
//!
//! - GGUF (current): tensors `NAME.in_sum2` (F32, `ne0 × n_mat`: sums of squared activations
//!   per column and expert matrix) and `NAME.counts` (F32, `n_mat`: tokens seen per matrix),
//!   metadata `imatrix.datasets`, `imatrix.chunk_count`, `imatrix.chunk_size`. The importance
//!   of column `i` of matrix `j` is `in_sum2[j·ne0 + i] / round(counts[j])`, or 1 where the
//!   count is 0.
//! - legacy `.dat`: `i32 n_entries`, then per entry `i32 len, name[len], i32 ncall, i32 nval,
//!   f32 values[nval]`, then optionally `i32 chunk_count, i32 len, dataset[len]`. The importance
//!   is `value / ncall` (the value itself when `ncall` is 0).
//!
//! A file that is neither, or lies about its sizes, is an error naming the file and the entry.

use crate::formats::gguf::{Array, GgufFile, Value};
use crate::ggml_type::GgmlType;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Every way an imatrix file can be wrong. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum ImatrixError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {what}")]
    Invalid { path: PathBuf, what: String },
}

/// The importance of each column, by tensor name (`ne0 × n_mat` values), as llama-quantize
/// passes them to the quantizer.
#[derive(Clone, Debug, Default)]
pub struct Imatrix {
    pub entries: HashMap<String, Vec<f32>>,
    /// `imatrix.datasets` (or the legacy trailer's dataset name).
    pub datasets: Vec<String>,
    /// Chunks the statistics were collected over (0 when the file does not say).
    pub chunk_count: u32,
}

impl Imatrix {
    /// Reads a GGUF imatrix file, or a legacy `.dat` one when the file is not GGUF.
    pub fn load(path: &Path) -> Result<Imatrix, ImatrixError> {
        let head = read_head(path)?;
        let m = if head == *b"GGUF" {
            let f = GgufFile::open(path).map_err(|e| ImatrixError::Invalid {
                path: path.to_path_buf(),
                what: e.to_string(),
            })?;
            from_gguf(&f)?
        } else {
            let bytes = std::fs::read(path).map_err(|source| ImatrixError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            from_legacy(path, &bytes)?
        };
        m.check_finite(path)?;
        Ok(m)
    }

    /// llama-quantize stops on a non-finite importance: it would poison every scale search.
    fn check_finite(&self, path: &Path) -> Result<(), ImatrixError> {
        let mut names: Vec<&String> = self.entries.keys().collect();
        names.sort();
        for name in names {
            if let Some(i) = self.entries[name].iter().position(|v| !v.is_finite()) {
                return Err(ImatrixError::Invalid {
                    path: path.to_path_buf(),
                    what: format!(
                        "entry {name}: value {i} is {}; the imatrix is damaged (llama-quantize refuses it too)",
                        self.entries[name][i]
                    ),
                });
            }
        }
        Ok(())
    }

    /// Keeps only the entries whose name contains one of `include` (when not empty), then drops
    /// those containing one of `exclude` (llama-quantize's `--include-weights` /
    /// `--exclude-weights`).
    pub fn filter(&mut self, include: &[String], exclude: &[String]) {
        self.entries.retain(|name, _| {
            (include.is_empty() || include.iter().any(|p| name.contains(p.as_str())))
                && !exclude.iter().any(|p| name.contains(p.as_str()))
        });
    }

    /// The metadata llama-quantize adds to its output when it used an imatrix.
    pub fn output_metadata(&self, file: &Path) -> Vec<(String, Value)> {
        // llama-quantize passes these as KV overrides of 128-byte strings (127 + NUL)
        let clip = |s: &str| {
            let mut end = s.len().min(127);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s[..end].to_string()
        };
        let mut md = vec![(
            "quantize.imatrix.file".to_string(),
            Value::String(clip(&file.to_string_lossy())),
        )];
        if let Some(d) = self.datasets.first() {
            md.push(("quantize.imatrix.dataset".into(), Value::String(clip(d))));
        }
        md.push((
            "quantize.imatrix.entries_count".into(),
            Value::U32(self.entries.len() as u32),
        ));
        if self.chunk_count > 0 {
            md.push((
                "quantize.imatrix.chunks_count".into(),
                Value::U32(self.chunk_count),
            ));
        }
        md
    }
}

fn read_head(path: &Path) -> Result<[u8; 4], ImatrixError> {
    use std::io::Read;
    let io = |source| ImatrixError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut head = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match f.read(&mut head[got..]).map_err(io)? {
            0 => break,
            n => got += n,
        }
    }
    Ok(head)
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn from_gguf(f: &GgufFile) -> Result<Imatrix, ImatrixError> {
    let path = f.path().to_path_buf();
    let bad = |what: String| ImatrixError::Invalid {
        path: path.clone(),
        what,
    };
    if f.tensors.is_empty() {
        return Err(bad("no tensors: not an imatrix file".into()));
    }
    let has_meta = [
        "imatrix.datasets",
        "imatrix.chunk_count",
        "imatrix.chunk_size",
    ]
    .iter()
    .all(|k| f.get(k).is_some());
    if !has_meta {
        return Err(bad(
            "missing imatrix metadata (imatrix.datasets, imatrix.chunk_count, imatrix.chunk_size); is this an imatrix GGUF?"
                .into(),
        ));
    }
    let datasets = match f.get("imatrix.datasets") {
        Some(Value::Array(Array::String(v))) => v.clone(),
        _ => Vec::new(),
    };
    let chunk_count = f
        .get("imatrix.chunk_count")
        .and_then(Value::as_u64)
        .unwrap_or(0) as u32;
    // pair NAME.in_sum2 with NAME.counts
    let mut pairs: std::collections::BTreeMap<&str, (Option<usize>, Option<usize>)> =
        Default::default();
    for (i, t) in f.tensors.iter().enumerate() {
        if let Some(n) = t.name.strip_suffix(".in_sum2") {
            pairs.entry(n).or_default().0 = Some(i);
        } else if let Some(n) = t.name.strip_suffix(".counts") {
            pairs.entry(n).or_default().1 = Some(i);
        }
    }
    let mut entries = HashMap::new();
    for (name, (s, c)) in pairs {
        let (Some(s), Some(c)) = (s, c) else {
            return Err(bad(format!(
                "entry {name}: .in_sum2 and .counts come in pairs, one is missing"
            )));
        };
        let (ts, tc) = (&f.tensors[s], &f.tensors[c]);
        if ts.ty != GgmlType::F32 || tc.ty != GgmlType::F32 {
            return Err(bad(format!(
                "entry {name}: sums and counts must be F32, found {} and {}",
                ts.ty, tc.ty
            )));
        }
        let sums = f32s(f.tensor_data(ts));
        let counts = f32s(f.tensor_data(tc));
        if sums.len() as u64 != ts.n_elements() || counts.len() as u64 != tc.n_elements() {
            return Err(bad(format!("entry {name}: tensor data out of the file")));
        }
        if counts.is_empty() {
            eprintln!(
                "gpuq: warning: {}: no counts for entry {name}, skipped",
                path.display()
            );
            continue;
        }
        if sums.is_empty() {
            continue;
        }
        if sums.len() % counts.len() != 0 {
            return Err(bad(format!(
                "entry {name}: {} sums do not split into {} matrices",
                sums.len(),
                counts.len()
            )));
        }
        let ne0 = sums.len() / counts.len();
        let mut values = vec![0f32; sums.len()];
        for (j, &c) in counts.iter().enumerate() {
            // llama.cpp keeps counts as integers (lround), then divides in f32
            let count = c.round() as i64 as f32;
            for i in j * ne0..(j + 1) * ne0 {
                values[i] = if count > 0.0 { sums[i] / count } else { 1.0 };
            }
        }
        entries.insert(name.to_string(), values);
    }
    Ok(Imatrix {
        entries,
        datasets,
        chunk_count,
    })
}

/// A little-endian cursor over the legacy file that names what it was reading when it ran out.
struct Cursor<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize, what: &str) -> Result<&[u8], ImatrixError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(ImatrixError::Invalid {
                path: self.path.to_path_buf(),
                what: format!(
                    "truncated at offset {}: {what} needs {n} bytes, {} left (neither GGUF nor a legacy .dat imatrix?)",
                    self.pos,
                    self.bytes.len() - self.pos
                ),
            });
        };
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn i32(&mut self, what: &str) -> Result<i32, ImatrixError> {
        let b = self.take(4, what)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn len(&mut self, what: &str) -> Result<usize, ImatrixError> {
        let n = self.i32(what)?;
        usize::try_from(n).map_err(|_| ImatrixError::Invalid {
            path: self.path.to_path_buf(),
            what: format!("{what} is negative ({n}) at offset {}", self.pos - 4),
        })
    }
}

fn from_legacy(path: &Path, bytes: &[u8]) -> Result<Imatrix, ImatrixError> {
    let mut c = Cursor {
        path,
        bytes,
        pos: 0,
    };
    let n_entries = c.i32("the entry count")?;
    if n_entries < 1 {
        return Err(ImatrixError::Invalid {
            path: path.to_path_buf(),
            what: format!("no entries (count {n_entries}): not an imatrix file"),
        });
    }
    let mut entries = HashMap::new();
    for i in 0..n_entries {
        let len = c.len(&format!("the name length of entry {}", i + 1))?;
        let name = c.take(len, &format!("the name of entry {}", i + 1))?;
        // llama.cpp reads the name as a C string: it ends at the first NUL
        let name = name.split(|&b| b == 0).next().unwrap_or_default();
        let name = String::from_utf8_lossy(name).into_owned();
        let ncall = c.i32(&format!("entry {name}: the call count"))?;
        let nval = c.len(&format!("entry {name}: the value count"))?;
        if nval < 1 {
            return Err(ImatrixError::Invalid {
                path: path.to_path_buf(),
                what: format!("entry {name}: no values"),
            });
        }
        let what = format!("entry {name}: {nval} values");
        let raw = c.take(nval.saturating_mul(4), &what)?;
        let mut values = f32s(raw);
        if ncall > 0 {
            let n = ncall as f32;
            for v in &mut values {
                *v /= n;
            }
        }
        entries.insert(name, values);
    }
    let mut m = Imatrix {
        entries,
        ..Default::default()
    };
    // the trailer (chunk count, dataset name) is optional
    if c.pos < bytes.len()
        && let Ok(n) = c.i32("the chunk count")
    {
        m.chunk_count = n.max(0) as u32;
        if let Ok(len) = c.len("the dataset name length")
            && len > 0
            && let Ok(name) = c.take(len, "the dataset name")
        {
            let name = name.split(|&b| b == 0).next().unwrap_or_default();
            m.datasets.push(String::from_utf8_lossy(name).into_owned());
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn legacy(entries: &[(&str, i32, &[f32])], trailer: Option<(i32, &str)>) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend((entries.len() as i32).to_le_bytes());
        for (name, ncall, vals) in entries {
            b.extend((name.len() as i32).to_le_bytes());
            b.extend(name.as_bytes());
            b.extend(ncall.to_le_bytes());
            b.extend((vals.len() as i32).to_le_bytes());
            for v in *vals {
                b.extend(v.to_le_bytes());
            }
        }
        if let Some((n, d)) = trailer {
            b.extend(n.to_le_bytes());
            b.extend((d.len() as i32).to_le_bytes());
            b.extend(d.as_bytes());
        }
        b
    }

    #[test]
    fn legacy_values_are_divided_by_the_call_count() {
        let p = Path::new("x.dat");
        let b = legacy(
            &[("a.weight", 4, &[2.0, 6.0]), ("b.weight", 0, &[3.0])],
            Some((17, "wiki.train")),
        );
        let m = from_legacy(p, &b).unwrap();
        assert_eq!(m.entries["a.weight"], vec![0.5, 1.5]);
        assert_eq!(m.entries["b.weight"], vec![3.0]);
        assert_eq!(
            (m.chunk_count, m.datasets.clone()),
            (17, vec!["wiki.train".to_string()])
        );
        // without the trailer
        let b = legacy(&[("a.weight", 2, &[2.0])], None);
        let m = from_legacy(p, &b).unwrap();
        assert_eq!((m.chunk_count, m.datasets.len()), (0, 0));
    }

    #[test]
    fn non_finite_importances_are_refused() {
        let dir = std::env::temp_dir().join(format!("gpuq-imatrix-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("nan.dat");
        std::fs::write(&p, legacy(&[("b.weight", 1, &[1.0, f32::NAN])], None)).unwrap();
        let e = Imatrix::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("nan.dat") && e.contains("b.weight") && e.contains("value 1"),
            "{e}"
        );
        std::fs::write(&p, legacy(&[("b.weight", 1, &[1.0, 2.0])], None)).unwrap();
        assert_eq!(
            Imatrix::load(&p).unwrap().entries["b.weight"],
            vec![1.0, 2.0]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn truncated_legacy_files_are_errors_naming_the_entry() {
        let p = Path::new("x.dat");
        let b = legacy(&[("a.weight", 4, &[2.0, 6.0, 1.0])], None);
        for cut in 0..b.len() {
            let e = from_legacy(p, &b[..cut]).unwrap_err().to_string();
            assert!(e.starts_with("x.dat: "), "{e}");
            if cut > 20 {
                assert!(e.contains("a.weight"), "cut {cut}: {e}");
            }
        }
        let mut b = legacy(&[("a.weight", 4, &[2.0])], None);
        b[4..8].copy_from_slice(&(-5i32).to_le_bytes());
        assert!(
            from_legacy(p, &b)
                .unwrap_err()
                .to_string()
                .contains("negative")
        );
    }

    #[test]
    fn filter_and_metadata() {
        let mut m = Imatrix {
            entries: [
                ("blk.0.attn_q.weight", 1),
                ("blk.0.ffn_up.weight", 1),
                ("output.weight", 1),
            ]
            .iter()
            .map(|(n, _)| (n.to_string(), vec![1.0]))
            .collect(),
            datasets: vec!["d".into()],
            chunk_count: 3,
        };
        m.filter(&["blk.".into()], &["ffn".into()]);
        assert_eq!(
            m.entries.keys().collect::<Vec<_>>(),
            ["blk.0.attn_q.weight"]
        );
        let md = m.output_metadata(Path::new(&"x".repeat(200)));
        assert_eq!(md.len(), 4);
        assert_eq!(md[0].1.as_str().map(str::len), Some(127));
        assert_eq!(md[2].1, Value::U32(1));
        assert_eq!(md[3].1, Value::U32(3));
    }
}
