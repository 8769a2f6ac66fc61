//! Source models as the pipeline sees them: a list of tensors with their bytes and the
//! metadata to carry into the output.

use crate::error::{Error, Result};
use crate::formats::gguf::{GgufFile, Value};
use crate::pipeline::{InputTensor, ModelSource};
use std::path::Path;

pub mod hf;

/// A GGUF file as a source.
pub struct GgufSource {
    file: GgufFile,
    tensors: Vec<InputTensor>,
}

impl GgufSource {
    pub fn open(path: &Path) -> Result<GgufSource> {
        let file = GgufFile::open(path)?;
        let tensors = file
            .tensors
            .iter()
            .map(|t| InputTensor {
                name: t.name.clone(),
                dims: t.dims.clone(),
                ty: t.ty,
            })
            .collect();
        Ok(GgufSource { file, tensors })
    }

    pub fn file(&self) -> &GgufFile {
        &self.file
    }

    fn abs(&self, index: usize, offset: usize) -> u64 {
        self.file.data_offset + self.file.tensors[index].offset + offset as u64
    }
}

impl ModelSource for GgufSource {
    fn describe(&self) -> String {
        self.file.path().display().to_string()
    }
    fn metadata(&self) -> &[(String, Value)] {
        &self.file.metadata
    }
    fn tensors(&self) -> &[InputTensor] {
        &self.tensors
    }
    fn tensor_len(&self, index: usize) -> u64 {
        self.file.tensors[index].size
    }
    fn read_rows<'a>(
        &'a self,
        index: usize,
        r0: u64,
        n: u64,
        _scratch: &'a mut Vec<u8>,
    ) -> Result<&'a [u8]> {
        let t = &self.file.tensors[index];
        let row = t.ty.row_bytes(t.dims[0]).unwrap_or(0);
        let data = self.file.tensor_data(t);
        let (a, b) = ((r0 * row) as usize, ((r0 + n) * row) as usize);
        data.get(a..b).ok_or_else(|| {
            Error::Invalid(format!(
                "{}: tensor {}: rows {r0}..{} are outside the tensor",
                self.describe(),
                t.name,
                r0 + n
            ))
        })
    }
    fn i2s_scale(&self, index: usize) -> Result<f32> {
        let t = &self.file.tensors[index];
        let codes = (t.dims.iter().product::<u64>() / 4) as usize;
        self.file
            .tensor_data(t)
            .get(codes..)
            .and_then(crate::codec::i2s::trailer_scale)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "{}: tensor {}: no I2_S scale after its {codes} bytes of codes",
                    self.describe(),
                    t.name
                ))
            })
    }
    fn prefetch(&self, index: usize, offset: usize, len: usize) {
        self.file.advise(self.abs(index, offset), len as u64, true);
    }
    fn release(&self, index: usize, offset: usize, len: usize) {
        self.file.advise(self.abs(index, offset), len as u64, false);
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
