//! Only the ids, texts and spans of either ContractNLI form: what reviewing a contract needs.
//! Annotations are neither needed nor checked, and spans may be absent (the caller splits the
//! text then). The errors are structured ([`ShapeError`], `serde_json::Error` per document or
//! line) so that the caller words them for its users.

use serde::Deserialize;

/// One document of either form, with only what a review needs.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct DocumentText {
    pub id: serde_json::Value,
    pub text: String,
    /// `[start, end)` character offsets, when the file gives them.
    #[serde(default)]
    pub spans: Option<Vec<[usize; 2]>>,
}

impl DocumentText {
    /// As [`super::Document::id_string`]: a string id as it is, any other value as JSON.
    pub fn id_string(&self) -> String {
        super::official::id_string(&self.id)
    }
}

/// Why a text is not ContractNLI's official JSON.
#[derive(Debug)]
pub enum ShapeError {
    /// It is not JSON at all.
    Json(serde_json::Error),
    /// The top level is not an object; what it is ("a list", "a number", ...).
    TopLevel(&'static str),
    /// An object without a `documents` field; its first keys (at most 8).
    NoDocuments(Vec<String>),
    /// The `documents` field is not a list.
    DocumentsNotList,
}

/// The documents of the official JSON's text, each parsed on its own (`Err` for one that lacks
/// `id` or `text` or has them of the wrong type), in file order.
pub fn official_texts(
    text: &str,
) -> Result<Vec<Result<DocumentText, serde_json::Error>>, ShapeError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(ShapeError::Json)?;
    let docs = match &value {
        serde_json::Value::Object(map) => match map.get("documents") {
            Some(serde_json::Value::Array(docs)) => docs,
            Some(_) => return Err(ShapeError::DocumentsNotList),
            None => {
                return Err(ShapeError::NoDocuments(
                    map.keys().take(8).cloned().collect(),
                ))
            }
        },
        other => return Err(ShapeError::TopLevel(json_kind(other))),
    };
    Ok(docs.iter().map(DocumentText::deserialize).collect())
}

/// The documents of a `documents.jsonl` text, one per non-blank line, with its line number
/// (1-based), parsed lazily in file order.
pub fn documents_lines(
    text: &str,
) -> impl Iterator<Item = (usize, Result<DocumentText, serde_json::Error>)> + '_ {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, serde_json::from_str(l)))
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}
