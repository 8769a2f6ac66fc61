//! Source models as the pipeline sees them: a list of tensors with their bytes and the
//! metadata to carry into the output.

use crate::error::{Error, Result};
use crate::formats::gguf::{GgufFile, Value};
use std::path::Path;

pub mod hf;
pub mod ollama;
pub mod source;

pub use source::{InputTensor, ModelSource, TOKEN_EMBD, TernarySource};

/// A GGUF model as a source: one file, or the splits of one (`NAME-00001-of-0000N.gguf`, as
/// llama.cpp's gguf-split and `convert_hf_to_gguf.py --split-max-*` write them), read as one
/// model the way llama.cpp's loader reads them: opened from the first split, the metadata of
/// the first, the tensors of all.
pub struct GgufSource {
    files: Vec<GgufFile>,
    /// Per tensor: (file, tensor index in that file).
    locs: Vec<(usize, usize)>,
    tensors: Vec<InputTensor>,
}

/// `PREFIX` of `PREFIX-00002-of-00005.gguf` when the numbers are `no + 1` and `count`
/// (llama.cpp's `llama_split_prefix`).
fn split_prefix(path: &str, no: u32, count: u32) -> Option<&str> {
    path.strip_suffix(&format!("-{:05}-of-{count:05}.gguf", no + 1))
}

fn split_key(f: &GgufFile, key: &str) -> Result<Option<u32>> {
    match f.get(key) {
        None => Ok(None),
        Some(v) => v.as_u64().map(|n| Some(n as u32)).ok_or_else(|| {
            Error::Invalid(format!(
                "{}: metadata key {key} is not an integer",
                f.path().display()
            ))
        }),
    }
}

impl GgufSource {
    /// Opens a GGUF file (the first of a split set opens them all).
    ///
    /// ```no_run
    /// use gpuq::model::{GgufSource, ModelSource};
    ///
    /// let src = GgufSource::open("model-f16.gguf".as_ref())?;
    /// for t in src.tensors() {
    ///     println!("{} {:?} {}", t.name, t.dims, t.ty);
    /// }
    /// # Ok::<(), gpuq::Error>(())
    /// ```
    pub fn open(path: &Path) -> Result<GgufSource> {
        let first = GgufFile::open(path)?;
        let count = split_key(&first, "split.count")?.unwrap_or(1).max(1);
        let mut files = vec![first];
        if count > 1 {
            let no = split_key(&files[0], "split.no")?.unwrap_or(0);
            let name = path.to_string_lossy().into_owned();
            if no != 0 {
                return Err(Error::Invalid(format!(
                    "{name}: this is split {} of {count}; open the first one (…-00001-of-{count:05}.gguf)",
                    no + 1
                )));
            }
            let prefix = split_prefix(&name, 0, count).ok_or_else(|| {
                Error::Invalid(format!(
                    "{name}: split.count is {count} but the name does not end in -00001-of-{count:05}.gguf, so the other splits cannot be found"
                ))
            })?;
            for i in 1..count {
                let p = format!("{prefix}-{:05}-of-{count:05}.gguf", i + 1);
                let f = GgufFile::open(Path::new(&p))?;
                let (fno, fcount) = (split_key(&f, "split.no")?, split_key(&f, "split.count")?);
                if fno != Some(i) || fcount != Some(count) {
                    return Err(Error::Invalid(format!(
                        "{p}: split.no {fno:?} / split.count {fcount:?}, expected {i} / {count}"
                    )));
                }
                files.push(f);
            }
            let total: usize = files.iter().map(|f| f.tensors.len()).sum();
            if let Some(n) = split_key(&files[0], "split.tensors.count")?
                && n as usize != total
            {
                return Err(Error::Invalid(format!(
                    "{name}: split.tensors.count is {n}, the {count} splits hold {total} tensors"
                )));
            }
        }
        let mut locs = Vec::new();
        let mut tensors: Vec<InputTensor> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (fi, f) in files.iter().enumerate() {
            for (ti, t) in f.tensors.iter().enumerate() {
                if !seen.insert(t.name.as_str()) {
                    return Err(Error::Invalid(format!(
                        "{}: tensor {} is also in an earlier split",
                        f.path().display(),
                        t.name
                    )));
                }
                locs.push((fi, ti));
                tensors.push(InputTensor {
                    name: t.name.clone(),
                    dims: t.dims.clone(),
                    ty: t.ty,
                });
            }
        }
        Ok(GgufSource {
            files,
            locs,
            tensors,
        })
    }

    /// The (first) GGUF file.
    pub fn file(&self) -> &GgufFile {
        &self.files[0]
    }

    fn at(&self, index: usize) -> (&GgufFile, &crate::formats::gguf::TensorInfo) {
        let (fi, ti) = self.locs[index];
        (&self.files[fi], &self.files[fi].tensors[ti])
    }

    fn abs(&self, index: usize, offset: usize) -> u64 {
        let (f, t) = self.at(index);
        f.data_offset + t.offset + offset as u64
    }
}

impl ModelSource for GgufSource {
    fn describe(&self) -> String {
        match self.files.len() {
            1 => self.files[0].path().display().to_string(),
            n => format!("{} (+{} splits)", self.files[0].path().display(), n - 1),
        }
    }
    fn metadata(&self) -> &[(String, Value)] {
        &self.files[0].metadata
    }
    fn tensors(&self) -> &[InputTensor] {
        &self.tensors
    }
    fn tensor_len(&self, index: usize) -> u64 {
        self.at(index).1.size
    }
    fn read_rows<'a>(
        &'a self,
        index: usize,
        r0: u64,
        n: u64,
        _scratch: &'a mut Vec<u8>,
    ) -> Result<&'a [u8]> {
        let (f, t) = self.at(index);
        // the input must not change under the run (formats::mapped): every file at a
        // tensor's start, this tensor's file (and its map's fault flag) at every tile
        if r0 == 0 {
            self.check_unchanged()?;
        }
        f.check_unchanged()?;
        // a tensor with no dims is one element (found by tests/fuzz.rs: dims[0] panicked)
        let row =
            t.ty.row_bytes(t.dims.first().copied().unwrap_or(1))
                .unwrap_or(0);
        let data = f.tensor_data(t);
        let at = |r: u64| r.checked_mul(row).and_then(|x| usize::try_from(x).ok());
        let range = r0.checked_add(n).and_then(|end| Some((at(r0)?, at(end)?)));
        range.and_then(|(a, b)| data.get(a..b)).ok_or_else(|| {
            Error::Invalid(format!(
                "{}: tensor {}: rows {r0}..{} are outside the tensor",
                f.path().display(),
                t.name,
                r0.saturating_add(n)
            ))
        })
    }
    fn i2s_scale(&self, index: usize) -> Result<f32> {
        let (f, t) = self.at(index);
        let codes = (t.dims.iter().product::<u64>() / 4) as usize;
        f.tensor_data(t)
            .get(codes..)
            .and_then(crate::codec::i2s::trailer_scale)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "{}: tensor {}: no I2_S scale after its {codes} bytes of codes",
                    f.path().display(),
                    t.name
                ))
            })
    }
    fn check_unchanged(&self) -> Result<()> {
        for f in &self.files {
            f.check_unchanged()?;
        }
        Ok(())
    }
    fn prefetch(&self, index: usize, offset: usize, len: usize) {
        let (f, _) = self.at(index);
        f.advise(self.abs(index, offset), len as u64, true);
    }
    fn release(&self, index: usize, offset: usize, len: usize) {
        let (f, _) = self.at(index);
        f.advise(self.abs(index, offset), len as u64, false);
    }
}

/// Opens a model for quantization: a GGUF file, or a Hugging Face folder.
pub fn open_source(path: &Path) -> Result<Box<dyn ModelSource>> {
    open_source_with(path, &hf::HfOptions::default())
}

/// As [`open_source`], with the options that apply to a Hugging Face folder.
pub fn open_source_with(path: &Path, hf_opts: &hf::HfOptions) -> Result<Box<dyn ModelSource>> {
    if path.is_dir() {
        return Ok(Box::new(hf::HfSource::open(path, hf_opts)?));
    }
    Ok(Box::new(GgufSource::open(path)?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn split_names_as_llama_cpp_builds_them() {
        assert_eq!(
            super::split_prefix("/m/model-00001-of-00003.gguf", 0, 3),
            Some("/m/model")
        );
        assert_eq!(
            super::split_prefix("/m/model-00001-of-00003.gguf", 1, 3),
            None
        );
        assert_eq!(super::split_prefix("/m/model.gguf", 0, 3), None);
    }
}
