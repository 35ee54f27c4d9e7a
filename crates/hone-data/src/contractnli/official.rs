//! ContractNLI's official JSON: `{"documents": [{id, text, spans, annotation_sets}], "labels":
//! {...}}`, as the data set ships it.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Dataset {
    pub documents: Vec<Document>,
    #[serde(default)]
    pub labels: BTreeMap<String, LabelInfo>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LabelInfo {
    pub short_description: String,
    pub hypothesis: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Document {
    pub id: serde_json::Value,
    #[serde(default)]
    pub file_name: String,
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub document_type: String,
    pub text: String,
    /// `[start, end)` character offsets.
    pub spans: Vec<[usize; 2]>,
    pub annotation_sets: Vec<AnnotationSet>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct AnnotationSet {
    pub annotations: BTreeMap<String, Annotation>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Annotation {
    pub choice: String,
    pub spans: Vec<usize>,
}

impl Document {
    pub fn id_string(&self) -> String {
        id_string(&self.id)
    }

    /// Span texts (trimmed), from character offsets.
    pub fn span_texts(&self) -> std::result::Result<Vec<String>, String> {
        let chars: Vec<(usize, char)> = self.text.char_indices().collect();
        let byte = |c: usize| {
            if c >= chars.len() {
                self.text.len()
            } else {
                chars[c].0
            }
        };
        self.spans
            .iter()
            .enumerate()
            .map(|(i, &[s, e])| {
                if s > e || e > chars.len() {
                    Err(format!(
                        "span {i} [{s}, {e}) is outside the text ({} characters)",
                        chars.len()
                    ))
                } else {
                    Ok(self.text[byte(s)..byte(e)].trim().to_string())
                }
            })
            .collect()
    }
}

/// A document id as hone names it: a string id as it is, any other value (a number) as JSON.
pub fn id_string(id: &serde_json::Value) -> String {
    match id {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Reads the official JSON. Errors: the file cannot be read; it is not this JSON (naming the
/// line and column).
pub fn read(path: &Path) -> Result<Dataset> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let ds: Dataset = serde_json::from_str(&text).map_err(|e| Error::Format {
        path: path.to_path_buf(),
        msg: format!(
            "not ContractNLI's JSON (line {}, column {}): {e}",
            e.line(),
            e.column()
        ),
    })?;
    Ok(ds)
}
