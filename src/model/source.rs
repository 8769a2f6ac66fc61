//! What the pipeline reads: a model's metadata, its tensors and their bytes ([`ModelSource`]),
//! implemented by every kind of source (GGUF files and splits, Hugging Face folders).

use crate::error::{Error, Result};
use crate::formats::gguf::Value;
use crate::ggml_type::GgmlType;

/// The token embedding's name: llama-quantize ignores an imatrix entry of the wrong size here.
pub const TOKEN_EMBD: &str = "token_embd.weight";

/// One tensor of a source model.
#[derive(Clone, Debug)]
pub struct InputTensor {
    pub name: String,
    /// ne0 first.
    pub dims: Vec<u64>,
    pub ty: GgmlType,
}

impl InputTensor {
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }
    pub fn row_len(&self) -> u64 {
        self.dims.first().copied().unwrap_or(1)
    }
    pub fn n_rows(&self) -> u64 {
        self.dims.iter().skip(1).product()
    }
}

/// How a tensor of a BitNet checkpoint is ternarized (its BitLinear weights).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TernarySource {
    /// Float master weights stored as `dtype` (F32, F16 or BF16): BitNet's `weight_quant` with
    /// the tensor's absmean scale, as llama.cpp's converter (`BitnetModel`) applies it.
    Absmean { dtype: GgmlType },
    /// Already ternary (unpacked from a packed checkpoint): every value read is one of
    /// `{-scale, 0, +scale}`.
    Known { scale: f32 },
}

/// A model the pipeline reads: metadata, tensors and their bytes (usually a memory map).
///
/// Any store of weights can be quantized by implementing the four required methods; here a
/// model held in memory:
///
/// ```
/// use gpuq::formats::gguf::Value;
/// use gpuq::model::{InputTensor, ModelSource};
/// use gpuq::{Backend, Engine, GgmlType};
///
/// struct InMemory {
///     metadata: Vec<(String, Value)>,
///     tensors: Vec<InputTensor>,
///     data: Vec<Vec<u8>>,
/// }
///
/// impl ModelSource for InMemory {
///     fn describe(&self) -> String {
///         "in-memory model".into()
///     }
///     fn metadata(&self) -> &[(String, Value)] {
///         &self.metadata
///     }
///     fn tensors(&self) -> &[InputTensor] {
///         &self.tensors
///     }
///     fn tensor_len(&self, index: usize) -> u64 {
///         self.data[index].len() as u64
///     }
///     fn read_rows<'a>(&'a self, index: usize, r0: u64, n: u64, _: &'a mut Vec<u8>)
///         -> gpuq::Result<&'a [u8]> {
///         let row = self.tensors[index].row_len() as usize * 4; // F32 rows
///         let (a, b) = (r0 as usize * row, (r0 + n) as usize * row);
///         self.data[index].get(a..b).ok_or_else(|| gpuq::Error::Invalid("rows out of range".into()))
///     }
/// }
///
/// let w: Vec<f32> = (0..512).map(|i| (i as f32).cos()).collect();
/// let src = InMemory {
///     metadata: vec![("general.architecture".into(), Value::String("llama".into()))],
///     tensors: vec![InputTensor { name: "blk.0.attn_q.weight".into(), dims: vec![256, 2], ty: GgmlType::F32 }],
///     data: vec![w.iter().flat_map(|x| x.to_le_bytes()).collect()],
/// };
/// let out = std::env::temp_dir().join(format!("gpuq-doc-src-{}.gguf", std::process::id()));
/// let engine = Engine::new(Backend::Cpu)?;
/// let opts = gpuq::QuantizeOptions::new("Q4_K_M")?;
/// let s = gpuq::quantize(&src, &out, &engine, &opts, &gpuq::pipeline::Quiet)?;
/// assert_eq!((s.tensors, s.converted), (1, 1));
/// # std::fs::remove_file(&out).ok();
/// # Ok::<(), gpuq::Error>(())
/// ```
pub trait ModelSource: Sync {
    /// What to name in messages (a path).
    fn describe(&self) -> String;
    fn metadata(&self) -> &[(String, Value)];
    fn tensors(&self) -> &[InputTensor];
    /// Bytes tensor `index` occupies in the source (for sizes and progress).
    fn tensor_len(&self, index: usize) -> u64;
    /// The bytes of rows `r0..r0 + n` of tensor `index` (rows of `dims[0]` elements in the
    /// tensor's type). A source that stores the rows contiguously returns a slice of its map;
    /// one that must transform them (a row permutation) fills `scratch` and returns it.
    fn read_rows<'a>(
        &'a self,
        index: usize,
        r0: u64,
        n: u64,
        scratch: &'a mut Vec<u8>,
    ) -> Result<&'a [u8]>;
    /// The type tensor `index` takes when a plan leaves it unquantized, where the source fixes
    /// one (a Hugging Face folder: F32 for norms and biases, as the converter writes them);
    /// `None` copies the source type.
    fn unquantized_type(&self, _index: usize) -> Option<GgmlType> {
        None
    }
    /// BitNet checkpoints: how tensor `index` is ternarized (`None`: it is not a BitLinear
    /// weight). Such a tensor is always converted: into TQ1_0 / TQ2_0 / I2_S with its
    /// per-tensor scale, into any other type after `weight_quant` (float master weights).
    fn ternary(&self, _index: usize) -> Option<TernarySource> {
        None
    }
    /// The scale of an I2_S tensor (the f32 after its codes), for decoding it.
    fn i2s_scale(&self, index: usize) -> Result<f32> {
        Err(Error::Invalid(format!(
            "{}: tensor {}: this source cannot give the I2_S scale",
            self.describe(),
            self.tensors()
                .get(index)
                .map(|t| t.name.as_str())
                .unwrap_or("?")
        )))
    }
    /// Errs when an input file changed since it was opened (size or modification time), or a
    /// read of its mapping faulted (the file shrank). Sources call it at each tensor's start.
    fn check_unchanged(&self) -> Result<()> {
        Ok(())
    }
    /// A hint that `data[range]` of tensor `index` is needed soon.
    fn prefetch(&self, _index: usize, _offset: usize, _len: usize) {}
    /// A hint that `data[range]` of tensor `index` will not be read again.
    fn release(&self, _index: usize, _offset: usize, _len: usize) {}
}
