//! Source models as the pipeline sees them: a list of tensors with their bytes and the
//! metadata to carry into the output.

use crate::error::{Error, Result};
use crate::formats::gguf::{GgufFile, Value};
use crate::pipeline::{InputTensor, ModelSource};
use std::path::Path;

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
    fn prefetch(&self, index: usize, offset: usize, len: usize) {
        self.file.advise(self.abs(index, offset), len as u64, true);
    }
    fn release(&self, index: usize, offset: usize, len: usize) {
        self.file.advise(self.abs(index, offset), len as u64, false);
    }
}

/// Opens a model for quantization: a GGUF file.
pub fn open_source(path: &Path) -> Result<Box<dyn ModelSource>> {
    if path.is_dir() {
        return Err(Error::Invalid(format!(
            "{}: quantizing a Hugging Face folder directly is not supported yet; give a GGUF file",
            path.display()
        )));
    }
    Ok(Box::new(GgufSource::open(path)?))
}
