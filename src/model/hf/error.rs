//! Every way a Hugging Face model folder can be wrong for conversion. Each names the file and,
//! where one is involved, the tensor or key.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum HfError {
    #[error("{path}: no config.json in this folder; a Hugging Face model needs one")]
    NoConfig { path: PathBuf },
    #[error("{path}: no \"architectures\" list; cannot tell which model this is")]
    NoArchitecture { path: PathBuf },
    #[error("{path}: architecture '{arch}' is not supported; gpuq converts {supported}")]
    UnsupportedArchitecture {
        path: PathBuf,
        arch: String,
        supported: String,
    },
    #[error("{path}: missing key \"{key}\" ({what})")]
    MissingKey {
        path: PathBuf,
        key: String,
        what: &'static str,
    },
    #[error("{path}: key \"{key}\": {what}")]
    BadKey {
        path: PathBuf,
        key: String,
        what: String,
    },
    #[error("{path}: tensor '{tensor}': no GGUF name is known for it in {arch}")]
    UnknownTensor {
        path: PathBuf,
        tensor: String,
        arch: String,
    },
    #[error("{path}: tensor '{tensor}' has dtype {dtype}; {arch} takes F32, F16 or BF16 weights")]
    BadDtype {
        path: PathBuf,
        tensor: String,
        dtype: String,
        arch: String,
    },
    #[error(
        "{path}: tensor '{tensor}' has shape {actual:?} but config.json implies {expected:?} ({why})"
    )]
    BadShape {
        path: PathBuf,
        tensor: String,
        actual: Vec<u64>,
        expected: Vec<u64>,
        why: String,
    },
    #[error(
        "{path}: tensor '{tensor}' is for layer {layer}, but config.json says {n_layer} layers"
    )]
    LayerOutOfRange {
        path: PathBuf,
        tensor: String,
        layer: u64,
        n_layer: u64,
    },
    #[error("{path}: tensor '{tensor}' (GGUF {gguf}) is missing; {arch} needs it")]
    MissingTensor {
        path: PathBuf,
        tensor: String,
        gguf: String,
        arch: String,
    },
    #[error("{path}: tensors '{first}' and '{second}' both map to GGUF {gguf}")]
    DuplicateTensor {
        path: PathBuf,
        first: String,
        second: String,
        gguf: String,
    },
    #[error("{path}: {what}")]
    Tokenizer { path: PathBuf, what: String },
    #[error(
        "{path}: the BPE pre-tokenizer was not recognized (sha256 of the check text's token ids: {hash}); \
         if you know which llama.cpp pre-tokenizer it uses, pass --vocab-pre NAME (e.g. llama-bpe, qwen2, gpt-2)"
    )]
    UnknownPreTokenizer { path: PathBuf, hash: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not valid JSON: {what}")]
    Json { path: PathBuf, what: String },
}
