//! SentencePiece `tokenizer.model` -> the `tokenizer.*` token list of a `llama` vocabulary, as
//! llama.cpp's converter builds it (`TextModel._set_vocab_sentencepiece` and
//! `_create_vocab_sentencepiece`):
//!
//! - the list has config.json's `vocab_size` entries; ids the model does not fill are
//!   `[PAD{id}]`, score -10000, type UNUSED; pieces past `vocab_size` are dropped with a warning;
//! - each piece keeps its text and score; its type is UNKNOWN, CONTROL, UNUSED or BYTE when
//!   SentencePiece says so, NORMAL otherwise (user-defined pieces included);
//! - `added_tokens.json` entries overwrite their id as USER_DEFINED, score -1000;
//! - tokenizer_config.json's `added_tokens_decoder` entries overwrite their id as CONTROL when
//!   flagged special or looking special, else USER_DEFINED with U+2581 turned into spaces;
//!   score -1000.
//!
//! The protobuf is decoded with `prost` from the two messages below (the fields of
//! sentencepiece_model.proto the converter reads); everything else in the file is skipped.
//! The file is checked as SentencePiece's loader checks it (pieces non-empty, no piece defined
//! twice, exactly one unknown piece), and for the trainer and normalizer specs every
//! SentencePiece-written model carries after its pieces; this turns away garbage that happens
//! to decode and files cut between two pieces.

use super::error::HfError;
use super::tokenizer::{looks_special, token_type};
use crate::formats::gguf::{Array, Value};
use prost::Message;
use serde_json::Value as Json;
use std::collections::HashMap;
use std::path::Path;

/// `ModelProto`: `repeated SentencePiece pieces = 1`, and the trainer and normalizer specs
/// (fields 2 and 3, kept undecoded) only to see that they are there.
#[derive(Clone, PartialEq, prost::Message)]
struct ModelProto {
    #[prost(message, repeated, tag = "1")]
    pieces: Vec<PieceProto>,
    #[prost(bytes = "vec", optional, tag = "2")]
    trainer_spec: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "3")]
    normalizer_spec: Option<Vec<u8>>,
}

/// `ModelProto.SentencePiece`.
#[derive(Clone, PartialEq, prost::Message)]
struct PieceProto {
    #[prost(string, optional, tag = "1")]
    piece: Option<String>,
    #[prost(float, optional, tag = "2")]
    score: Option<f32>,
    /// `Type` (an enum, a varint on the wire); NORMAL when absent.
    #[prost(int32, optional, tag = "3")]
    kind: Option<i32>,
}

/// SentencePiece piece types (`ModelProto.SentencePiece.Type`).
pub mod piece_type {
    pub const NORMAL: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const CONTROL: i32 = 3;
    pub const USER_DEFINED: i32 = 4;
    pub const UNUSED: i32 = 5;
    pub const BYTE: i32 = 6;
}

/// One piece of a SentencePiece model.
#[derive(Clone, Debug, PartialEq)]
pub struct Piece {
    pub text: String,
    pub score: f32,
    /// A [`piece_type`] value.
    pub kind: i32,
}

/// Decodes a tokenizer.model and checks it as SentencePiece's loader does.
pub fn read_pieces(path: &Path, bytes: &[u8]) -> Result<Vec<Piece>, HfError> {
    let bad = |what: String| HfError::Tokenizer {
        path: path.to_path_buf(),
        what: if what.starts_with("not a") {
            what
        } else {
            format!("bad SentencePiece model: {what}")
        },
    };
    let model = ModelProto::decode(bytes).map_err(|e| {
        bad(format!(
            "not a SentencePiece model: the protobuf does not decode ({e}); the file may be truncated or not a tokenizer.model"
        ))
    })?;
    if model.pieces.is_empty() {
        return Err(bad(
            "not a SentencePiece model: it holds no pieces (the file may be truncated or not a tokenizer.model)".into(),
        ));
    }
    let mut normal: HashMap<&str, usize> = HashMap::new();
    let mut reserved: HashMap<&str, usize> = HashMap::new();
    let mut unk: Option<usize> = None;
    let mut out = Vec::with_capacity(model.pieces.len());
    for (i, p) in model.pieces.iter().enumerate() {
        let text = p.piece.as_deref().unwrap_or("");
        if text.is_empty() {
            return Err(bad(format!("piece {i} is empty")));
        }
        let kind = p.kind.unwrap_or(piece_type::NORMAL);
        if !(piece_type::NORMAL..=piece_type::BYTE).contains(&kind) {
            return Err(bad(format!(
                "piece {i} ({text:?}) has type {kind}, which SentencePiece does not define"
            )));
        }
        // normal, user-defined and unused pieces share one namespace, the others another
        let space = if matches!(
            kind,
            piece_type::NORMAL | piece_type::USER_DEFINED | piece_type::UNUSED
        ) {
            &mut normal
        } else {
            &mut reserved
        };
        if let Some(first) = space.insert(text, i) {
            return Err(bad(format!(
                "piece {i} ({text:?}) is already defined as piece {first}"
            )));
        }
        if kind == piece_type::UNKNOWN {
            if let Some(first) = unk {
                return Err(bad(format!(
                    "piece {i} ({text:?}) is a second unknown piece (the first is piece {first})"
                )));
            }
            unk = Some(i);
        }
        out.push(Piece {
            text: text.to_string(),
            score: p.score.unwrap_or(0.0),
            kind,
        });
    }
    // SentencePiece writes the pieces first, then the specs: a file cut between two pieces
    // still decodes, but without them
    if model.trainer_spec.is_none() || model.normalizer_spec.is_none() {
        return Err(bad(
            "not a SentencePiece model: no trainer or normalizer spec after the pieces (the file may be truncated)".into(),
        ));
    }
    if unk.is_none() {
        return Err(bad(
            "no unknown piece (<unk>), which SentencePiece requires".into(),
        ));
    }
    Ok(out)
}

/// The llama.cpp token type the converter gives a SentencePiece piece type.
pub fn gguf_type(kind: i32) -> i32 {
    match kind {
        piece_type::UNKNOWN => token_type::UNKNOWN,
        piece_type::CONTROL => token_type::CONTROL,
        piece_type::UNUSED => token_type::UNUSED,
        piece_type::BYTE => token_type::BYTE,
        _ => token_type::NORMAL,
    }
}

/// A JSON object's entries in file order (serde_json's map sorts its keys; the converter walks
/// added_tokens.json in file order, and a later entry for the same id wins).
struct Ordered(Vec<(String, Json)>);

impl<'de> serde::Deserialize<'de> for Ordered {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<Ordered, A::Error> {
                let mut v = Vec::new();
                while let Some(e) = m.next_entry::<String, Json>()? {
                    v.push(e);
                }
                Ok(Ordered(v))
            }
        }
        d.deserialize_map(V)
    }
}

/// Python's truth value of a JSON value (`if token_data.get("special")`).
fn truthy(v: &Json) -> bool {
    match v {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::Number(n) => n.as_f64() != Some(0.0),
        Json::String(s) => !s.is_empty(),
        Json::Array(a) => !a.is_empty(),
        Json::Object(o) => !o.is_empty(),
    }
}

fn warn(path: &Path, what: &str) {
    eprintln!("gpuq: warning: {}: {what}", path.display());
}

/// The `tokenizer.*` token metadata of the folder's tokenizer.model: model `llama`, pre
/// `default`, tokens, scores, token types. `tc` is tokenizer_config.json when there is one.
pub fn vocab(
    dir: &Path,
    vocab_size: u64,
    tc: Option<&(std::path::PathBuf, Json)>,
) -> Result<Vec<(String, Value)>, HfError> {
    let path = dir.join("tokenizer.model");
    let bytes = std::fs::read(&path).map_err(|source| HfError::Io {
        path: path.clone(),
        source,
    })?;
    let pieces = read_pieces(&path, &bytes)?;
    let n = vocab_size as usize;
    let mut tokens: Vec<String> = (0..n).map(|i| format!("[PAD{i}]")).collect();
    let mut scores = vec![-10000.0f32; n];
    let mut types = vec![token_type::UNUSED; n];
    if pieces.len() > n {
        warn(
            &path,
            &format!(
                "{} pieces but config.json's vocab_size is {vocab_size}; ignoring pieces from id {vocab_size} on",
                pieces.len()
            ),
        );
    }
    for (i, p) in pieces.iter().take(n).enumerate() {
        tokens[i] = p.text.clone();
        scores[i] = p.score;
        types[i] = gguf_type(p.kind);
    }

    let added_path = dir.join("added_tokens.json");
    if added_path.is_file() {
        let text = std::fs::read(&added_path).map_err(|source| HfError::Io {
            path: added_path.clone(),
            source,
        })?;
        let Ordered(entries) = serde_json::from_slice(&text).map_err(|e| HfError::Json {
            path: added_path.clone(),
            what: e.to_string(),
        })?;
        for (content, id) in entries {
            let id = id.as_u64().ok_or_else(|| HfError::Tokenizer {
                path: added_path.clone(),
                what: format!("token {content:?}: id {id} is not a non-negative integer"),
            })?;
            if id >= vocab_size {
                warn(
                    &added_path,
                    &format!(
                        "ignoring token {id} ({content:?}): not below vocab_size {vocab_size}"
                    ),
                );
                continue;
            }
            let i = id as usize;
            tokens[i] = content;
            scores[i] = -1000.0;
            types[i] = token_type::USER_DEFINED;
        }
    }

    if let Some((tc_path, tc)) = tc {
        if let Some(decoder) = tc.get("added_tokens_decoder").filter(|d| !d.is_null()) {
            let bad = |what: String| HfError::Tokenizer {
                path: tc_path.clone(),
                what: format!("added_tokens_decoder: {what}"),
            };
            let entries = decoder
                .as_object()
                .ok_or_else(|| bad("not an object".into()))?;
            for (key, data) in entries {
                let id: u64 = key
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("key {key:?} is not a token id")))?;
                let content = data
                    .get("content")
                    .and_then(Json::as_str)
                    .ok_or_else(|| bad(format!("token {key}: no \"content\" string")))?;
                if id >= vocab_size {
                    warn(
                        tc_path,
                        &format!(
                            "ignoring token {id} ({content:?}): not below vocab_size {vocab_size}"
                        ),
                    );
                    continue;
                }
                let i = id as usize;
                let special = data.get("special").is_some_and(truthy);
                if special || looks_special(content) {
                    tokens[i] = content.to_string();
                    types[i] = token_type::CONTROL;
                } else {
                    tokens[i] = content.replace('\u{2581}', " ");
                    types[i] = token_type::USER_DEFINED;
                }
                scores[i] = -1000.0;
            }
        }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(pieces: &[(&str, f32, Option<i32>)]) -> Vec<u8> {
        ModelProto {
            pieces: pieces
                .iter()
                .map(|(p, s, k)| PieceProto {
                    piece: Some(p.to_string()),
                    score: Some(*s),
                    kind: *k,
                })
                .collect(),
            trainer_spec: Some(Vec::new()),
            normalizer_spec: Some(vec![8, 1]),
        }
        .encode_to_vec()
    }

    #[test]
    fn pieces_round_trip_and_types_map_as_the_converter_maps_them() {
        let bytes = encode(&[
            ("<unk>", 0.0, Some(2)),
            ("<s>", 0.0, Some(3)),
            ("<0x41>", 0.0, Some(6)),
            ("<sep>", 0.0, Some(4)),
            ("\u{2581}a", -1.5, None),
            ("zz", -2.0, Some(5)),
        ]);
        let p = read_pieces(Path::new("t.model"), &bytes).unwrap();
        assert_eq!(p.len(), 6);
        assert_eq!(p[4].text, "\u{2581}a");
        assert_eq!(p[4].score, -1.5);
        assert_eq!(p[4].kind, piece_type::NORMAL);
        let t: Vec<i32> = p.iter().map(|p| gguf_type(p.kind)).collect();
        // user-defined pieces are NORMAL: the converter asks only IsUnknown/IsControl/IsUnused/IsByte
        assert_eq!(t, vec![2, 3, 6, 1, 1, 5]);
    }

    #[test]
    fn bad_models_are_refused() {
        let path = Path::new("x/tokenizer.model");
        let good = encode(&[("<unk>", 0.0, Some(2)), ("a", -1.0, None)]);
        let msg = |b: &[u8]| read_pieces(path, b).unwrap_err().to_string();
        assert!(msg(&good[..good.len() - 3]).contains("does not decode"));
        // cut right after a piece: decodes, but the specs are missing
        let cut = encode(&[("<unk>", 0.0, Some(2))]).len() - 6;
        assert!(
            msg(&good[..cut]).contains("truncated"),
            "{}",
            msg(&good[..cut])
        );
        assert!(msg(b"").contains("no pieces"));
        assert!(msg(&encode(&[("a", 0.0, None)])).contains("no unknown piece"));
        assert!(msg(&encode(&[("<unk>", 0.0, Some(2)), ("", 0.0, None)])).contains("empty"));
        assert!(
            msg(&encode(&[
                ("<unk>", 0.0, Some(2)),
                ("a", 0.0, None),
                ("a", 0.0, Some(4))
            ]))
            .contains("already defined")
        );
        assert!(msg(&encode(&[("<unk>", 0.0, Some(2)), ("a", 0.0, Some(9))])).contains("type 9"));
        assert!(msg(b"\xff\xff\xff\xff").contains("x/tokenizer.model"));
    }
}
