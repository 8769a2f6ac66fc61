//! tokenizer.json / tokenizer_config.json -> `tokenizer.*` GGUF metadata for GPT-2-style BPE
//! vocabularies, as llama.cpp's converter writes them (`TextModel._set_vocab_gpt2`,
//! `get_vocab_base`, `get_vocab_base_pre`, and gguf-py's `SpecialVocab`).
//!
//! `tokenizer.ggml.pre` is chosen the converter's way: the tokenizer (run by the `tokenizers`
//! crate, the same Rust core Hugging Face's Python tokenizers use) encodes a fixed check text
//! with its special tokens, and the sha256 of the id list printed as Python prints it
//! (`[1, 2, 3]`) is looked up among the known pre-tokenizers.

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
    pub const CONTROL: i32 = 3;
    pub const USER_DEFINED: i32 = 4;
    pub const UNUSED: i32 = 5;
}

/// What a folder holds for a tokenizer.
pub enum Found {
    /// A GPT-2-style BPE vocabulary: its metadata.
    Bpe(Vec<(String, Value)>),
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
fn looks_special(t: &str) -> bool {
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

/// Reads the folder's tokenizer. `vocab_size` is config.json's (the token list is padded to
/// it); `vocab_pre` replaces the hash lookup when given.
pub fn load(
    dir: &Path,
    vocab_size: u64,
    config: &Json,
    vocab_pre: Option<&str>,
) -> Result<Found, HfError> {
    let tj_path = dir.join("tokenizer.json");
    let spm = dir.join("tokenizer.model");
    if !tj_path.is_file() {
        if spm.is_file() {
            return Err(HfError::Tokenizer {
                path: spm,
                what: "SentencePiece vocabularies (tokenizer.model without tokenizer.json) are not supported yet; \
                       pass --no-tokenizer to convert the weights only"
                    .into(),
            });
        }
        return Ok(Found::None);
    }
    let bytes = std::fs::read(&tj_path).map_err(|source| HfError::Io {
        path: tj_path.clone(),
        source,
    })?;
    let tj: Json = serde_json::from_slice(&bytes).map_err(|e| HfError::Json {
        path: tj_path.clone(),
        what: e.to_string(),
    })?;
    let bad = |what: String| HfError::Tokenizer {
        path: tj_path.clone(),
        what,
    };
    let model = tj
        .get("model")
        .ok_or_else(|| bad("no \"model\" object".into()))?;
    let ty = model.get("type").and_then(Json::as_str).unwrap_or("BPE");
    if ty != "BPE" {
        return Err(bad(format!(
            "tokenizer model '{ty}' is not supported yet (gpuq writes GPT-2-style BPE vocabularies); \
             pass --no-tokenizer to convert the weights only"
        )));
    }
    if spm.is_file() || model.get("byte_fallback").and_then(Json::as_bool) == Some(true) {
        return Err(bad(
            "this is a SentencePiece-style vocabulary (tokenizer.model or byte_fallback BPE), which llama.cpp \
             reads as a 'llama' tokenizer; gpuq does not write those yet; pass --no-tokenizer to convert the weights only"
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
    let mut added: Vec<Added> = Vec::new();
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
        by_id.insert(id, content.to_string());
        added.push(Added {
            id,
            content: content.to_string(),
            special: a.get("special").and_then(Json::as_bool).unwrap_or(false),
        });
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
            let hash = check_hash(&tj_path, &bytes)?;
            known_pre(&hash)
                .map(str::to_string)
                .ok_or(HfError::UnknownPreTokenizer {
                    path: tj_path.clone(),
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

    let merges = read_merges(&tj).map_err(bad)?;
    if merges.is_empty() {
        return Err(bad(
            "model.merges is empty; llama.cpp cannot load a BPE vocabulary without merges".into(),
        ));
    }

    let mut md: Vec<(String, Value)> = vec![
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
    ];
    md.extend(special_tokens(dir, &tj, &added, vocab_size, config)?);
    Ok(Found::Bpe(md))
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

const SPECIAL_TYPES: &[(&str, &str)] = &[
    ("bos", "tokenizer.ggml.bos_token_id"),
    ("eos", "tokenizer.ggml.eos_token_id"),
    ("unk", "tokenizer.ggml.unknown_token_id"),
    ("sep", "tokenizer.ggml.seperator_token_id"),
    ("pad", "tokenizer.ggml.padding_token_id"),
    ("cls", "tokenizer.ggml.cls_token_id"),
    ("mask", "tokenizer.ggml.mask_token_id"),
];

/// Special token ids, add_bos/add_eos and the chat template (gguf-py `SpecialVocab`:
/// tokenizer_config.json names the tokens, tokenizer.json's added tokens give their ids,
/// config.json's `*_token_id` fill the gaps; the first value found wins).
fn special_tokens(
    dir: &Path,
    tj: &Json,
    added: &[Added],
    n_vocab: u64,
    config: &Json,
) -> Result<Vec<(String, Value)>, HfError> {
    let tc_path = dir.join("tokenizer_config.json");
    let tc = if tc_path.is_file() {
        Some(read_json(&tc_path)?)
    } else {
        None
    };
    let content = |entry: Option<&Json>| -> Option<String> {
        match entry? {
            Json::String(s) => Some(s.clone()),
            Json::Object(o) => o.get("content").and_then(Json::as_str).map(str::to_string),
            _ => None,
        }
    };
    let tc_token = |typ: &str| content(tc.as_ref().and_then(|c| c.get(format!("{typ}_token"))));

    let mut add: Vec<(&str, bool)> = Vec::new();
    // a TemplateProcessing post-processor tells whether bos/eos are added
    if let Some(pp) = tj.get("post_processor").filter(|p| !p.is_null()) {
        let procs: Vec<&Json> = match pp.get("processors").and_then(Json::as_array) {
            Some(list) => list.iter().collect(),
            None => vec![pp],
        };
        let bos = tc_token("bos").or_else(|| tc_token("cls"));
        let eos = tc_token("eos").or_else(|| tc_token("sep"));
        for p in procs {
            if p.get("type").and_then(Json::as_str) != Some("TemplateProcessing") {
                continue;
            }
            let single = p
                .get("single")
                .and_then(Json::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let special_id = |j: Option<&Json>| {
                j.and_then(|x| x.get("SpecialToken"))
                    .and_then(|s| s.get("id"))
                    .and_then(Json::as_str)
                    .map(str::to_string)
            };
            if single.len() > 1 {
                if let Some(first) = special_id(single.first()) {
                    add.push(("bos", tc.is_none() || Some(&first) == bos.as_ref()));
                }
                if let Some(last) = special_id(single.last()) {
                    add.push(("eos", tc.is_none() || Some(&last) == eos.as_ref()));
                }
            }
        }
    }

    let mut ids: Vec<(&str, u64)> = Vec::new();
    let mut set = |typ: &'static str, id: Option<u64>| {
        if let Some(id) = id {
            if id < n_vocab && !ids.iter().any(|(t, _)| *t == typ) {
                ids.push((typ, id));
            }
        }
    };
    let mut md: Vec<(String, Value)> = Vec::new();
    if let Some(tc) = &tc {
        for (typ, _) in SPECIAL_TYPES {
            if let Some(b) = tc.get(format!("add_{typ}_token")).and_then(Json::as_bool) {
                add.retain(|(t, _)| t != typ);
                add.push((typ, b));
            }
            if let Some(c) = tc_token(typ).or_else(|| match *typ {
                "bos" => tc_token("cls"),
                "eos" => tc_token("sep"),
                _ => None,
            }) {
                set(typ, added.iter().find(|a| a.content == c).map(|a| a.id));
            }
        }
    }
    for (typ, _) in SPECIAL_TYPES {
        set(
            typ,
            config.get(format!("{typ}_token_id")).and_then(Json::as_u64),
        );
    }
    for (typ, key) in SPECIAL_TYPES {
        if let Some((_, id)) = ids.iter().find(|(t, _)| t == typ) {
            md.push((key.to_string(), Value::U32(*id as u32)));
        }
    }
    for (typ, b) in &add {
        if matches!(*typ, "bos" | "eos" | "sep") {
            md.push((format!("tokenizer.ggml.add_{typ}_token"), Value::Bool(*b)));
        }
    }
    md.extend(chat_template(dir, tc.as_ref())?);
    Ok(md)
}

/// `tokenizer.chat_template` (and named alternatives) from tokenizer_config.json, else
/// chat_template.jinja or chat_template.json.
fn chat_template(dir: &Path, tc: Option<&Json>) -> Result<Vec<(String, Value)>, HfError> {
    let Some(tc) = tc else { return Ok(Vec::new()) };
    let jinja: PathBuf = dir.join("chat_template.jinja");
    let json = dir.join("chat_template.json");
    let alt = if jinja.is_file() {
        Some(Json::String(std::fs::read_to_string(&jinja).map_err(
            |source| HfError::Io {
                path: jinja.clone(),
                source,
            },
        )?))
    } else if json.is_file() {
        read_json(&json)?.get("chat_template").cloned()
    } else {
        None
    };
    let mut md = Vec::new();
    match tc.get("chat_template").cloned().or(alt) {
        Some(Json::String(s)) => md.push(("tokenizer.chat_template".into(), Value::String(s))),
        Some(Json::Array(list)) => {
            let mut names = Vec::new();
            for choice in list {
                let name: String = choice
                    .get("name")
                    .and_then(Json::as_str)
                    .unwrap_or("")
                    .chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect();
                let Some(t) = choice.get("template").and_then(Json::as_str) else {
                    continue;
                };
                if name == "default" {
                    md.push((
                        "tokenizer.chat_template".into(),
                        Value::String(t.to_string()),
                    ));
                } else if !name.is_empty() {
                    md.push((
                        format!("tokenizer.chat_template.{name}"),
                        Value::String(t.to_string()),
                    ));
                    names.push(name);
                }
            }
            if !names.is_empty() {
                md.push((
                    "tokenizer.chat_templates".into(),
                    Value::Array(Array::String(names)),
                ));
            }
        }
        _ => {}
    }
    Ok(md)
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
