//! A folder's tokenizer files -> `tokenizer.*` GGUF metadata, as llama.cpp's converter writes
//! them for the supported classes: a SentencePiece tokenizer.model when there is one (see
//! [`super::spm`]), else tokenizer.json as a GPT-2-style BPE vocabulary
//! (`TextModel._set_vocab_gpt2`, `get_vocab_base`, `get_vocab_base_pre`); then gguf-py's
//! `SpecialVocab` (special ids, add_bos/add_eos/add_sep, chat template) and LlamaModel's
//! additions (add_space_prefix, CodeLlama's eot, Granite's add_bos).
//!
//! `tokenizer.ggml.pre` is chosen the converter's way: the tokenizer (run by the `tokenizers`
//! crate, the same Rust core Hugging Face's Python tokenizers use) encodes a fixed check text
//! with its special tokens, and the sha256 of the id list printed as Python prints it
//! (`[1, 2, 3]`) is looked up among the known pre-tokenizers.

use super::config::Arch;
use super::error::HfError;
use super::pre_hashes::KNOWN;
use crate::formats::gguf::{Array, Value};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The check text of `get_vocab_base_pre` (llama.cpp `convert_hf_to_gguf.py`).
pub const CHECK_TEXT: &str = "\n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n\u{1f680} (normal) \u{1f636}\u{200d}\u{1f32b}\u{fe0f} (multiple emojis concatenated) \u{2705} \u{1f999}\u{1f999} 3 33 333 3333 33333 333333 3333333 33333333 3.3 3..3 3...3 \u{1780}\u{17b6}\u{1793}\u{17cb}\u{178f}\u{17c2}\u{1796}\u{17b7}\u{179f}\u{17c1}\u{179f}\u{17a2}\u{17b6}\u{1785}\u{1f601} ?\u{6211}\u{60f3}\u{5728}apple\u{5de5}\u{4f5c}1314151\u{5929}\u{ff5e} ------======= \u{43d}\u{435}\u{449}\u{43e} \u{43d}\u{430} \u{411}\u{44a}\u{43b}\u{433}\u{430}\u{440}\u{441}\u{43a}\u{438} ''''''```````\"\"\"\"......!!!!!!?????? I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL";

/// llama.cpp token types (gguf-py `TokenType`).
pub mod token_type {
    pub const NORMAL: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const CONTROL: i32 = 3;
    pub const USER_DEFINED: i32 = 4;
    pub const UNUSED: i32 = 5;
    pub const BYTE: i32 = 6;
}

/// What a folder holds for a tokenizer.
pub enum Found {
    /// A vocabulary (SentencePiece `llama` or GPT-2-style BPE): its metadata.
    Vocab(Vec<(String, Value)>),
    /// No tokenizer at all.
    None,
}

fn read_json(path: &Path) -> Result<Json, HfError> {
    let text = std::fs::read(path).map_err(|source| HfError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_slice(&text).map_err(|e| HfError::Json {
        path: path.to_path_buf(),
        what: e.to_string(),
    })
}

/// Python's truth value of a JSON value (`if x:` on what `json.load` gives).
pub(crate) fn truthy(v: &Json) -> bool {
    match v {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::Number(n) => n.as_f64() != Some(0.0),
        Json::String(s) => !s.is_empty(),
        Json::Array(a) => !a.is_empty(),
        Json::Object(o) => !o.is_empty(),
    }
}

/// The sha256 (hex) of the token ids `tokenizer.json` gives for [`CHECK_TEXT`], with special
/// tokens added as `AutoTokenizer.encode` adds them.
pub fn check_hash(tokenizer_json: &Path, bytes: &[u8]) -> Result<String, HfError> {
    let bad = |what: String| HfError::Tokenizer {
        path: tokenizer_json.to_path_buf(),
        what,
    };
    let tk = tokenizers::Tokenizer::from_bytes(bytes)
        .map_err(|e| bad(format!("cannot load the tokenizer: {e}")))?;
    let enc = tk
        .encode(CHECK_TEXT, true)
        .map_err(|e| bad(format!("cannot run the tokenizer: {e}")))?;
    let printed = format!(
        "[{}]",
        enc.get_ids()
            .iter()
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(Sha256::digest(printed.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// The llama.cpp pre-tokenizer name for a check-text hash.
pub fn known_pre(hash: &str) -> Option<&'static str> {
    KNOWN
        .iter()
        .rev()
        .find(|(h, _)| *h == hash)
        .map(|(_, n)| *n)
}

/// Special-token markers that make an added token a control token even when it is not flagged
/// special (`TextModel.does_token_look_special`).
pub(crate) fn looks_special(t: &str) -> bool {
    matches!(t, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (t.starts_with("<|") && t.ends_with("|>"))
        || (t.starts_with("<\u{ff5c}") && t.ends_with("\u{ff5c}>"))
        || (t.starts_with("<unused") && t.ends_with('>'))
}

struct Added {
    id: u64,
    content: String,
    special: bool,
}

/// tokenizer.json's `added_tokens`.
fn added_tokens(path: &Path, tj: &Json) -> Result<Vec<Added>, HfError> {
    let bad = |what: String| HfError::Tokenizer {
        path: path.to_path_buf(),
        what,
    };
    let mut added = Vec::new();
    for a in tj
        .get("added_tokens")
        .and_then(Json::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        let id = a
            .get("id")
            .and_then(Json::as_u64)
            .ok_or_else(|| bad(format!("added token {a}: no id")))?;
        let content = a
            .get("content")
            .and_then(Json::as_str)
            .ok_or_else(|| bad(format!("added token {a}: no content")))?;
        added.push(Added {
            id,
            content: content.to_string(),
            special: a.get("special").and_then(Json::as_bool).unwrap_or(false),
        });
    }
    Ok(added)
}

/// Sets `key` in place when it is already there (gguf-py's writer overwrites a repeated key),
/// else appends it.
fn put(md: &mut Vec<(String, Value)>, key: &str, v: Value) {
    match md.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = v,
        None => md.push((key.to_string(), v)),
    }
}

/// Reads the folder's tokenizer as the converter's `set_vocab` of `arch` does: a SentencePiece
/// tokenizer.model when there is one (LlamaModel and Qwen2Model both try
/// `_set_vocab_sentencepiece` first), else tokenizer.json as GPT-2-style BPE. `vocab_size` is
/// config.json's (the token list has that many entries); `vocab_pre` replaces the BPE hash
/// lookup when given.
pub fn load(
    dir: &Path,
    vocab_size: u64,
    config: &Json,
    vocab_pre: Option<&str>,
    arch: Arch,
) -> Result<Found, HfError> {
    let spm_path = dir.join("tokenizer.model");
    let tj_path = dir.join("tokenizer.json");
    let tc_path = dir.join("tokenizer_config.json");
    let has_spm = spm_path.is_file();
    if !has_spm && !tj_path.is_file() {
        return Ok(Found::None);
    }
    let tj = if tj_path.is_file() {
        let bytes = std::fs::read(&tj_path).map_err(|source| HfError::Io {
            path: tj_path.clone(),
            source,
        })?;
        let json: Json = serde_json::from_slice(&bytes).map_err(|e| HfError::Json {
            path: tj_path.clone(),
            what: e.to_string(),
        })?;
        Some((bytes, json))
    } else {
        None
    };
    let tc = if tc_path.is_file() {
        let j = read_json(&tc_path)?;
        if !j.is_object() {
            return Err(HfError::Json {
                path: tc_path,
                what: "not a JSON object".into(),
            });
        }
        Some((tc_path.clone(), j))
    } else {
        None
    };
    let added = match &tj {
        Some((_, j)) => added_tokens(&tj_path, j)?,
        None => Vec::new(),
    };
    let mut md = match &tj {
        _ if has_spm => {
            let md = super::spm::vocab(dir, vocab_size, tc.as_ref())?;
            if let Some(p) = vocab_pre.filter(|p| *p != "default") {
                eprintln!(
                    "gpuq: warning: {}: a SentencePiece vocabulary has no pre-tokenizer; --vocab-pre {p} is ignored (tokenizer.ggml.pre = default)",
                    spm_path.display()
                );
            }
            md
        }
        Some((_, j)) if arch == Arch::Llama && is_llama_hf(j) => {
            llama_hf(&tj_path, j, &added, tc.as_ref().map(|(_, j)| j))?
        }
        Some((bytes, j)) => bpe(&tj_path, bytes, j, &added, vocab_size, vocab_pre)?,
        None => return Ok(Found::None),
    };
    let tj_json = tj.as_ref().map(|(_, j)| j);
    let tc_json = tc.as_ref().map(|(_, j)| j);
    special_vocab(
        dir,
        tj_json,
        tc_json,
        &added,
        SPECIAL_TYPES,
        Some(vocab_size),
        config,
    )?
    .write(&mut md);
    if arch == Arch::Llama {
        llama_extras(&mut md, dir, tj_json, tc_json, &added, vocab_size, config)?;
    }
    Ok(Found::Vocab(md))
}

/// A Llama tokenizer.json without a tokenizer.model: byte-fallback BPE with a `Sequence`
/// decoder, which llama.cpp's converter reads with gguf-py's `LlamaHfVocab` (LlamaModel's second
/// choice, after SentencePiece).
fn is_llama_hf(tj: &Json) -> bool {
    let m = &tj["model"];
    m["type"] == "BPE"
        && m["byte_fallback"].as_bool() == Some(true)
        && tj["decoder"]["type"] == "Sequence"
}

/// `<0xAB>`: a byte token.
fn is_byte_token(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 6
        && t.starts_with("<0x")
        && b[5] == b'>'
        && b[3].is_ascii_hexdigit()
        && b[4].is_ascii_hexdigit()
}

/// The token list `LlamaHfVocab` builds through transformers (`_set_vocab_llama_hf`): the base
/// vocabulary by id (BYTE for `<0xAB>`, CONTROL for the tokenizer's special tokens, else
/// NORMAL), then the added tokens past it by id (CONTROL when special, else USER_DEFINED),
/// every score -1000; `tokenizer.ggml.model` "llama", `pre` "default", no merges, no padding.
/// The special tokens are tokenizer_config.json's bos/eos/unk/sep/pad/cls/mask tokens and its
/// additional special tokens (transformers' `all_special_tokens`).
fn llama_hf(
    tj_path: &Path,
    tj: &Json,
    added: &[Added],
    tc: Option<&Json>,
) -> Result<Vec<(String, Value)>, HfError> {
    let bad = |what: String| HfError::Tokenizer {
        path: tj_path.to_path_buf(),
        what,
    };
    let vocab = tj["model"]["vocab"]
        .as_object()
        .ok_or_else(|| bad("model.vocab is not an object".into()))?;
    let base = vocab.len() as u64;
    let mut by_id: HashMap<u64, &str> = HashMap::with_capacity(vocab.len());
    let mut id_of: HashMap<&str, u64> = HashMap::with_capacity(vocab.len());
    for (tok, id) in vocab {
        let id = id.as_u64().ok_or_else(|| {
            bad(format!(
                "token {tok:?}: id {id} is not a non-negative integer"
            ))
        })?;
        by_id.insert(id, tok);
        id_of.insert(tok, id);
    }
    for a in added {
        by_id.insert(a.id, &a.content);
        id_of.insert(&a.content, a.id);
    }
    let mut names: Vec<&str> = Vec::new();
    if let Some(tc) = tc {
        let content = |v: &Json| -> Option<String> {
            v.as_str()
                .map(str::to_string)
                .or_else(|| v["content"].as_str().map(str::to_string))
        };
        for k in [
            "bos_token",
            "eos_token",
            "unk_token",
            "sep_token",
            "pad_token",
            "cls_token",
            "mask_token",
        ] {
            if let Some(c) = content(&tc[k]) {
                if let Some((t, _)) = id_of.get_key_value(c.as_str()) {
                    names.push(t);
                }
            }
        }
        for v in tc["additional_special_tokens"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if let Some(c) = content(v) {
                if let Some((t, _)) = id_of.get_key_value(c.as_str()) {
                    names.push(t);
                }
            }
        }
    }
    let special_ids: std::collections::HashSet<u64> =
        names.iter().filter_map(|n| id_of.get(n).copied()).collect();
    let mut past: Vec<&Added> = added.iter().filter(|a| a.id >= base).collect();
    past.sort_by_key(|a| a.id);
    past.dedup_by_key(|a| a.id);
    let mut tokens = Vec::with_capacity(base as usize + past.len());
    let mut types = Vec::with_capacity(tokens.capacity());
    for id in 0..base {
        let t = by_id.get(&id).ok_or_else(|| {
            bad(format!(
                "no token has id {id} (the vocabulary has {base} entries)"
            ))
        })?;
        types.push(if is_byte_token(t) {
            token_type::BYTE
        } else if special_ids.contains(&id) {
            token_type::CONTROL
        } else {
            token_type::NORMAL
        });
        tokens.push(t.to_string());
    }
    for (k, a) in past.iter().enumerate() {
        if a.id != base + k as u64 {
            return Err(bad(format!(
                "added token {:?} has id {}, but the added tokens past the vocabulary must follow it without gaps (expected {})",
                a.content,
                a.id,
                base + k as u64
            )));
        }
        types.push(if names.contains(&a.content.as_str()) {
            token_type::CONTROL
        } else {
            token_type::USER_DEFINED
        });
        tokens.push(a.content.clone());
    }
    let scores = vec![-1000.0f32; tokens.len()];
    Ok(vec![
        ("tokenizer.ggml.model".into(), Value::String("llama".into())),
        ("tokenizer.ggml.pre".into(), Value::String("default".into())),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(Array::String(tokens)),
        ),
        (
            "tokenizer.ggml.scores".into(),
            Value::Array(Array::F32(scores)),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(Array::I32(types)),
        ),
    ])
}

/// tokenizer.json as a GPT-2-style BPE vocabulary (`_set_vocab_gpt2`): model, pre, tokens,
/// types, merges.
fn bpe(
    tj_path: &Path,
    bytes: &[u8],
    tj: &Json,
    added: &[Added],
    vocab_size: u64,
    vocab_pre: Option<&str>,
) -> Result<Vec<(String, Value)>, HfError> {
    let bad = |what: String| HfError::Tokenizer {
        path: tj_path.to_path_buf(),
        what,
    };
    let model = tj
        .get("model")
        .ok_or_else(|| bad("no \"model\" object".into()))?;
    let ty = model.get("type").and_then(Json::as_str).unwrap_or("BPE");
    if ty != "BPE" {
        return Err(bad(format!(
            "tokenizer model '{ty}' is not supported yet (gpuq writes GPT-2-style BPE and SentencePiece vocabularies); \
             pass --no-tokenizer to convert the weights only"
        )));
    }
    if model.get("byte_fallback").and_then(Json::as_bool) == Some(true) {
        return Err(bad(
            "this is a byte_fallback BPE vocabulary without a tokenizer.model; llama.cpp's converter reads \
             those as a 'llama' tokenizer (LlamaHfVocab) for Llama models only, and gpuq does the same; \
             for this architecture pass --no-tokenizer to convert the weights only"
                .into(),
        ));
    }

    // vocabulary: the model's, plus added tokens (as transformers' tokenizer.vocab has them)
    let vocab = model
        .get("vocab")
        .and_then(Json::as_object)
        .ok_or_else(|| bad("model.vocab is not an object".into()))?;
    let mut by_id: HashMap<u64, String> = HashMap::with_capacity(vocab.len());
    for (tok, id) in vocab {
        let id = id.as_u64().ok_or_else(|| {
            bad(format!(
                "token {tok:?}: id {id} is not a non-negative integer"
            ))
        })?;
        by_id.insert(id, tok.clone());
    }
    for a in added {
        by_id.insert(a.id, a.content.clone());
    }
    if let Some(max) = by_id.keys().max() {
        if *max >= vocab_size {
            return Err(bad(format!(
                "token id {max} is not below config.json's vocab_size {vocab_size} (the embedding has {vocab_size} rows)"
            )));
        }
    }

    let pre = match vocab_pre {
        Some(name) => name.to_string(),
        None => {
            let hash = check_hash(tj_path, bytes)?;
            known_pre(&hash)
                .map(str::to_string)
                .ok_or(HfError::UnknownPreTokenizer {
                    path: tj_path.to_path_buf(),
                    hash,
                })?
        }
    };

    let mut tokens = Vec::with_capacity(vocab_size as usize);
    let mut types = Vec::with_capacity(vocab_size as usize);
    for i in 0..vocab_size {
        match by_id.get(&i) {
            None => {
                tokens.push(format!("[PAD{i}]"));
                types.push(token_type::UNUSED);
            }
            Some(t) => {
                let ty = match added.iter().find(|a| a.id == i) {
                    Some(a) if a.special || looks_special(t) => token_type::CONTROL,
                    Some(_) => token_type::USER_DEFINED,
                    None => token_type::NORMAL,
                };
                tokens.push(if ty == token_type::USER_DEFINED {
                    t.replace('\u{2581}', " ")
                } else {
                    t.clone()
                });
                types.push(ty);
            }
        }
    }

    let merges = read_merges(tj).map_err(bad)?;
    if merges.is_empty() {
        return Err(bad(
            "model.merges is empty; llama.cpp cannot load a BPE vocabulary without merges".into(),
        ));
    }

    Ok(vec![
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String(pre)),
        (
            "tokenizer.ggml.tokens".into(),
            Value::Array(Array::String(tokens)),
        ),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(Array::I32(types)),
        ),
        (
            "tokenizer.ggml.merges".into(),
            Value::Array(Array::String(merges)),
        ),
    ])
}

/// `model.merges` as "a b" strings; pairs (transformers >= 4.45) have their spaces encoded as
/// U+0120 the way gguf-py does.
fn read_merges(tj: &Json) -> Result<Vec<String>, String> {
    let Some(list) = tj
        .get("model")
        .and_then(|m| m.get("merges"))
        .and_then(Json::as_array)
    else {
        return Ok(Vec::new());
    };
    list.iter()
        .map(|m| match m {
            Json::String(s) => Ok(s.clone()),
            Json::Array(pair) if pair.len() == 2 => {
                let enc = |v: &Json| v.as_str().map(|s| s.replace(' ', "\u{120}"));
                match (enc(&pair[0]), enc(&pair[1])) {
                    (Some(a), Some(b)) => Ok(format!("{a} {b}")),
                    _ => Err(format!("merge {m} is not a pair of strings")),
                }
            }
            _ => Err(format!("merge {m} is neither a string nor a pair")),
        })
        .collect()
}

/// gguf-py `SpecialVocab`'s default special token types.
const SPECIAL_TYPES: &[&str] = &["bos", "eos", "unk", "sep", "pad", "cls", "mask"];

/// The GGUF key of each special token type gguf-py's writer has a handler for; the others
/// (cls, prefix, suffix, middle) are skipped by `SpecialVocab.add_to_gguf`.
fn special_key(typ: &str) -> Option<&'static str> {
    Some(match typ {
        "bos" => "tokenizer.ggml.bos_token_id",
        "eos" => "tokenizer.ggml.eos_token_id",
        "unk" => "tokenizer.ggml.unknown_token_id",
        "sep" => "tokenizer.ggml.seperator_token_id",
        "pad" => "tokenizer.ggml.padding_token_id",
        "mask" => "tokenizer.ggml.mask_token_id",
        "eot" => "tokenizer.ggml.eot_token_id",
        "eom" => "tokenizer.ggml.eom_token_id",
        _ => return None,
    })
}

static NULL: Json = Json::Null;

/// `v.get(k)` as Python's `dict.get` answers it (None, here Null, when missing).
fn pget<'a>(v: &'a Json, k: &str) -> &'a Json {
    v.get(k).unwrap_or(&NULL)
}

/// `x.get('SpecialToken', {}).get('id')` (or `Sequence`) of a TemplateProcessing piece.
fn piece_id<'a>(piece: Option<&'a Json>, kind: &str) -> &'a Json {
    piece.map_or(&NULL, |p| pget(pget(p, kind), "id"))
}

/// What gguf-py's `SpecialVocab` collects from a folder, in its insertion orders.
#[derive(Default)]
struct SpecialVocab {
    ids: Vec<(String, u64)>,
    add: Vec<(String, bool)>,
    chat_template: Option<Json>,
}

impl SpecialVocab {
    /// `_set_special_token`: the first id for a type wins; ids not below `n_vocab` are skipped.
    fn set_id(&mut self, typ: &str, id: Option<u64>, n_vocab: Option<u64>) {
        if let Some(id) = id {
            if n_vocab.is_none_or(|n| id < n) && !self.ids.iter().any(|(t, _)| t == typ) {
                self.ids.push((typ.to_string(), id));
            }
        }
    }

    /// `add_special_token[typ] = b` (a dict: an existing key keeps its place).
    fn set_add(&mut self, typ: &str, b: bool) {
        match self.add.iter_mut().find(|(t, _)| t == typ) {
            Some(slot) => slot.1 = b,
            None => self.add.push((typ.to_string(), b)),
        }
    }

    /// `add_to_gguf`, with repeated keys overwritten as gguf-py's writer does.
    fn write(&self, md: &mut Vec<(String, Value)>) {
        for (typ, id) in &self.ids {
            if let Some(key) = special_key(typ) {
                put(md, key, Value::U32(*id as u32));
            }
        }
        for (typ, b) in &self.add {
            if matches!(typ.as_str(), "bos" | "eos" | "sep") {
                put(
                    md,
                    &format!("tokenizer.ggml.add_{typ}_token"),
                    Value::Bool(*b),
                );
            }
        }
        match &self.chat_template {
            Some(Json::String(t)) => put(md, "tokenizer.chat_template", Value::String(t.clone())),
            Some(Json::Array(list)) => {
                let mut names = Vec::new();
                let mut default = None;
                for choice in list {
                    let name: String = pget(choice, "name")
                        .as_str()
                        .unwrap_or("")
                        .chars()
                        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                        .collect();
                    let Some(t) = pget(choice, "template").as_str() else {
                        continue;
                    };
                    if name == "default" {
                        default = Some(t.to_string());
                    } else if !name.is_empty() {
                        put(
                            md,
                            &format!("tokenizer.chat_template.{name}"),
                            Value::String(t.to_string()),
                        );
                        if !names.contains(&name) {
                            names.push(name);
                        }
                    }
                }
                if !names.is_empty() {
                    put(
                        md,
                        "tokenizer.chat_templates",
                        Value::Array(Array::String(names)),
                    );
                }
                if let Some(t) = default {
                    put(md, "tokenizer.chat_template", Value::String(t));
                }
            }
            _ => {}
        }
    }
}

/// gguf-py's `SpecialVocab(dir, special_token_types=types, n_vocab=n_vocab)`: the post-processor
/// of tokenizer.json (RobertaProcessing, or TemplateProcessing read crudely for whether bos,
/// eos and sep are added, possibly renaming eos and keeping the old one as eot/eom),
/// tokenizer_config.json (chat template, `add_{typ}_token`, `{typ}_token` names resolved to ids
/// through tokenizer.json's added tokens), then config.json's `{typ}_token_id`.
fn special_vocab(
    dir: &Path,
    tj: Option<&Json>,
    tc: Option<&Json>,
    added: &[Added],
    types: &[&str],
    n_vocab: Option<u64>,
    config: &Json,
) -> Result<SpecialVocab, HfError> {
    let mut sv = SpecialVocab::default();
    let mut types: Vec<String> = types.iter().map(|t| t.to_string()).collect();
    // the converter edits its copy of tokenizer_config.json as it goes
    let mut tcm: Option<Json> = tc.cloned();
    let tc_truthy = |t: &Option<Json>| t.as_ref().is_some_and(truthy);
    let tc_get = |t: &Option<Json>, k: &str| t.as_ref().map_or(Json::Null, |t| pget(t, k).clone());
    let tc_set = |t: &mut Option<Json>, k: &str, v: Json| {
        if let Some(Json::Object(m)) = t {
            m.insert(k.to_string(), v);
        }
    };

    if let Some(tj) = tj.filter(|t| truthy(t)) {
        let mut s_bos = tc_get(&tcm, "bos_token");
        let mut s_cls = tc_get(&tcm, "cls_token");
        let mut s_eos = tc_get(&tcm, "eos_token");
        let mut s_sep = tc_get(&tcm, "sep_token");
        if !truthy(&s_bos) && truthy(&s_cls) && tc_truthy(&tcm) {
            s_bos = s_cls.clone();
            tc_set(&mut tcm, "bos_token", s_bos.clone());
        }
        if !truthy(&s_eos) && truthy(&s_sep) && tc_truthy(&tcm) {
            s_eos = s_sep.clone();
            tc_set(&mut tcm, "eos_token", s_eos.clone());
        }
        let pp = pget(tj, "post_processor");
        if truthy(pp) {
            let procs: Vec<&Json> = match pp.get("processors") {
                Some(Json::Array(list)) => list.iter().collect(),
                Some(_) => Vec::new(),
                None => vec![pp],
            };
            for p in procs {
                match pget(p, "type").as_str() {
                    Some("RobertaProcessing") => {
                        sv.set_add("bos", true);
                        sv.set_add("eos", true);
                        sv.set_add("sep", true);
                        let first_of = |k: &str, dflt: &Json| match p.get(k) {
                            Some(Json::Array(a)) => a.first().cloned().unwrap_or(Json::Null),
                            Some(_) => Json::Null,
                            None => dflt.clone(),
                        };
                        if !truthy(&s_cls) && tc_truthy(&tcm) {
                            s_cls = first_of("cls", &s_bos);
                            tc_set(&mut tcm, "cls_token", s_cls.clone());
                        }
                        if !truthy(&s_sep) && tc_truthy(&tcm) {
                            s_sep = first_of("sep", &s_eos);
                            tc_set(&mut tcm, "sep_token", s_sep.clone());
                        }
                    }
                    Some("TemplateProcessing") => {
                        let list = |k: &str| {
                            pget(p, k)
                                .as_array()
                                .map(Vec::as_slice)
                                .unwrap_or(&[])
                                .to_vec()
                        };
                        let (single, pair) = (list("single"), list("pair"));
                        let mut first = Json::Null;
                        let mut last = Json::Null;
                        if single.len() > 1 {
                            first = piece_id(single.first(), "SpecialToken").clone();
                            if truthy(&first) {
                                if !tc_truthy(&tcm) {
                                    s_bos = first.clone();
                                }
                                sv.set_add("bos", first == s_bos || first == s_cls);
                            }
                            last = piece_id(single.last(), "SpecialToken").clone();
                            if truthy(&last) {
                                if !tc_truthy(&tcm) {
                                    s_eos = last.clone();
                                } else if last != s_eos {
                                    for alt in ["eot", "eom"] {
                                        if !types.iter().any(|t| t == alt) {
                                            types.push(alt.to_string());
                                            tc_set(
                                                &mut tcm,
                                                &format!("{alt}_token"),
                                                s_eos.clone(),
                                            );
                                            break;
                                        }
                                    }
                                    s_eos = last.clone();
                                    tc_set(&mut tcm, "eos_token", s_eos.clone());
                                }
                                sv.set_add("eos", last == s_eos);
                            }
                        }
                        if !pair.is_empty() {
                            let start = usize::from(
                                truthy(&first) && *piece_id(pair.first(), "SpecialToken") == first,
                            );
                            let stop = pair.len()
                                - usize::from(
                                    truthy(&last) && *piece_id(pair.last(), "SpecialToken") == last,
                                );
                            let pair = if start < stop {
                                &pair[start..stop]
                            } else {
                                &[]
                            };
                            if !pair.is_empty()
                                && piece_id(pair.first(), "Sequence").as_str() == Some("A")
                                && piece_id(pair.last(), "Sequence").as_str() == Some("B")
                                && pair.len() > 2
                            {
                                let inner = &pair[1..pair.len() - 1];
                                let mut add_sep = false;
                                let e = piece_id(inner.first(), "SpecialToken");
                                if truthy(e) && (*e == s_sep || *e == s_eos) && !truthy(&last) {
                                    add_sep = true;
                                }
                                if inner.len() == 2 {
                                    let e = piece_id(inner.get(1), "SpecialToken");
                                    if truthy(e) && (*e == s_sep || *e == s_eos) {
                                        add_sep = true;
                                    }
                                }
                                sv.set_add("sep", add_sep);
                                if add_sep && !truthy(&s_sep) && tc_truthy(&tcm) {
                                    tc_set(&mut tcm, "sep_token", s_eos.clone());
                                }
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    if let Some(tc) = tcm.as_ref().filter(|t| truthy(t)) {
        sv.chat_template = match tc.get("chat_template") {
            Some(t) => Some(t.clone()),
            None => chat_template_file(dir)?,
        };
        for typ in &types {
            if let Some(b) = tc.get(format!("add_{typ}_token")).and_then(Json::as_bool) {
                sv.set_add(typ, b);
            }
            let name = match tc.get(format!("{typ}_token")) {
                Some(Json::String(s)) => s.as_str(),
                Some(Json::Object(o)) => match o.get("content").and_then(Json::as_str) {
                    Some(s) => s,
                    None => continue,
                },
                _ => continue,
            };
            let id = added.iter().find(|a| a.content == name).map(|a| a.id);
            sv.set_id(typ, id, n_vocab);
        }
    }
    for typ in &types {
        let key = format!("{typ}_token_id");
        let v = match config.get(&key).filter(|v| !v.is_null()) {
            Some(v) => Some(v),
            None => config.get("text_config").and_then(|t| t.get(&key)),
        };
        if let Some(v) = v.filter(|v| !v.is_null()) {
            match v.as_u64() {
                Some(id) => sv.set_id(typ, Some(id), n_vocab),
                None if v.as_i64().is_some() => eprintln!(
                    "gpuq: warning: {}: {key} {v} is negative; ignored",
                    dir.join("config.json").display()
                ),
                None => {}
            }
        }
    }
    Ok(sv)
}

/// chat_template.jinja (with the templates of additional_chat_templates/*.jinja, a list named
/// by file stem after "default"), else chat_template.json's `chat_template`: the converter's
/// fallbacks when tokenizer_config.json has no `chat_template`.
fn chat_template_file(dir: &Path) -> Result<Option<Json>, HfError> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| HfError::Io {
            path: path.to_path_buf(),
            source,
        })
    };
    let jinja: PathBuf = dir.join("chat_template.jinja");
    let json = dir.join("chat_template.json");
    if jinja.is_file() {
        let default = read(&jinja)?;
        let extra_dir = dir.join("additional_chat_templates");
        let mut extra: Vec<PathBuf> = match std::fs::read_dir(&extra_dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "jinja"))
                .collect(),
            Err(_) => Vec::new(),
        };
        if extra.is_empty() {
            return Ok(Some(Json::String(default)));
        }
        // Python lists them in directory order (and writes the names from a set); sorted here
        extra.sort();
        let mut list = vec![serde_json::json!({"name": "default", "template": default})];
        for p in extra {
            let name = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            list.push(serde_json::json!({"name": name, "template": read(&p)?}));
        }
        Ok(Some(Json::Array(list)))
    } else if json.is_file() {
        Ok(read_json(&json)?.get("chat_template").cloned())
    } else {
        Ok(None)
    }
}

/// What LlamaModel.set_vocab adds after the vocabulary: CodeLlama's fill-in-the-middle tokens
/// (vocab_size 32016: a second SpecialVocab for prefix/suffix/middle/eot, ids 32007-32010 when
/// the folder names none; gguf-py writes only eot of these), `add_space_prefix` from
/// tokenizer_config.json's `add_prefix_space`, and no BOS for Granite's small models
/// (vocab_size 49152).
fn llama_extras(
    md: &mut Vec<(String, Value)>,
    dir: &Path,
    tj: Option<&Json>,
    tc: Option<&Json>,
    added: &[Added],
    vocab_size: u64,
    config: &Json,
) -> Result<(), HfError> {
    if vocab_size == 32016 {
        let types = ["prefix", "suffix", "middle", "eot"];
        let mut sv = special_vocab(dir, tj, tc, added, &types, None, config)?;
        for (typ, id) in types.iter().zip(32007u64..) {
            sv.set_id(typ, Some(id), None);
        }
        sv.write(md);
    }
    if let Some(v) = tc.and_then(|t| t.get("add_prefix_space")) {
        // gguf-py packs the value as a C bool: null and false both write false
        put(
            md,
            "tokenizer.ggml.add_space_prefix",
            Value::Bool(truthy(v)),
        );
    }
    if vocab_size == 49152 {
        put(md, "tokenizer.ggml.add_bos_token", Value::Bool(false));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_text_is_the_converters() {
        // 350 code points; hashing depends on every one of them
        assert_eq!(CHECK_TEXT.chars().count(), 350);
        assert!(CHECK_TEXT.starts_with("\n \n\n") && CHECK_TEXT.ends_with("We'Ve a'lL"));
    }

    #[test]
    fn hash_table_lookup() {
        assert!(KNOWN.len() > 50);
        let (h, n) = KNOWN[0];
        assert_eq!(known_pre(h), Some(n));
        assert_eq!(known_pre("00"), None);
    }

    #[test]
    fn merges_in_both_formats() {
        let j: Json = serde_json::json!({"model": {"merges": ["a b", ["c d", "e"]]}});
        assert_eq!(
            read_merges(&j).unwrap(),
            vec!["a b".to_string(), "c\u{120}d e".to_string()]
        );
    }
}
