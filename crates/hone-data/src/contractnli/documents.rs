//! The evaluation file (`documents.jsonl`, one [`EvalDocument`] a line, as `hone data import
//! contractnli` writes it) and gold documents read from either form: that file or the official
//! JSON, told apart by the content ([`detect_format`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::official::Dataset;
use crate::error::{Error, Result};
use crate::nda::DocLabel;

/// One document of the evaluation file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EvalDocument {
    pub id: String,
    pub file_name: String,
    pub text: String,
    pub spans: Vec<[usize; 2]>,
    /// Check id -> gold label and evidence span indices.
    pub labels: BTreeMap<String, GoldLabel>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GoldLabel {
    pub label: DocLabel,
    pub spans: Vec<usize>,
}

/// Reads the evaluation file back. Errors name the file, and the line of a bad document.
pub fn read_documents(path: &Path) -> Result<Vec<EvalDocument>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_documents(&text, path)
}

/// The documents of an evaluation file's text; `path` is only for error messages.
fn parse_documents(text: &str, path: &Path) -> Result<Vec<EvalDocument>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| Error::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                msg: format!("bad evaluation document: {e}"),
            })
        })
        .collect()
}

/// Which form a gold file is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GoldFormat {
    /// ContractNLI's official JSON (`{"documents": [...], "labels": {...}}`).
    Official,
    /// The `documents.jsonl` that `hone data import contractnli` writes, one document a line.
    Documents,
}

/// Detects the gold format from the content: a JSON object with a `documents` key, or text that
/// starts with `{` but whose first line is not a JSON value by itself (pretty-printed JSON), is
/// [`GoldFormat::Official`]; anything else is read as JSONL.
pub fn detect_format(text: &str) -> GoldFormat {
    let trimmed = text.trim_start();
    if let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(trimmed) {
        if map.contains_key("documents") {
            return GoldFormat::Official;
        }
    }
    let first = trimmed.lines().next().unwrap_or("");
    if trimmed.starts_with('{') && serde_json::from_str::<serde_json::Value>(first).is_err() {
        GoldFormat::Official
    } else {
        GoldFormat::Documents
    }
}

/// Reads gold documents from either format ([`detect_format`]) and checks them
/// ([`gold_problem`]): unique ids, spans inside the text, evidence indices inside the span list.
/// Errors name the file, and the line where there is one.
pub fn read_gold(path: &Path) -> Result<Vec<EvalDocument>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let docs = match detect_format(&text) {
        GoldFormat::Official => {
            let ds: Dataset = serde_json::from_str(&text).map_err(|e| Error::Parse {
                path: path.to_path_buf(),
                line: e.line(),
                msg: format!("not ContractNLI's JSON (column {}): {e}", e.column()),
            })?;
            gold_from_official(&ds, path)?
        }
        GoldFormat::Documents => parse_documents(&text, path)?,
    };
    match gold_problem(&docs) {
        Some(msg) => Err(Error::Format {
            path: path.to_path_buf(),
            msg,
        }),
        None => Ok(docs),
    }
}

/// Converts ContractNLI's official JSON into evaluation documents (first annotation set, as
/// the official code uses). `path` is only for error messages.
pub fn gold_from_official(ds: &Dataset, path: &Path) -> Result<Vec<EvalDocument>> {
    ds.documents
        .iter()
        .map(|doc| {
            let id = doc.id_string();
            let err = |msg: String| Error::Format {
                path: path.to_path_buf(),
                msg: format!("document `{id}`: {msg}"),
            };
            let set = doc
                .annotation_sets
                .first()
                .ok_or_else(|| err("no annotation set".into()))?;
            let labels = set
                .annotations
                .iter()
                .map(|(hyp, ann)| {
                    let label = DocLabel::from_choice(&ann.choice).ok_or_else(|| {
                        err(format!(
                            "{hyp}: choice `{}` is not Entailment, Contradiction or NotMentioned",
                            ann.choice
                        ))
                    })?;
                    Ok((
                        hyp.clone(),
                        GoldLabel {
                            label,
                            spans: ann.spans.clone(),
                        },
                    ))
                })
                .collect::<Result<BTreeMap<_, _>>>()?;
            Ok(EvalDocument {
                id: id.clone(),
                file_name: doc.file_name.clone(),
                text: doc.text.clone(),
                spans: doc.spans.clone(),
                labels,
            })
        })
        .collect()
}

/// The first problem with a set of gold documents: a repeated id, a span outside the text, an
/// evidence index outside the span list.
pub fn gold_problem(docs: &[EvalDocument]) -> Option<String> {
    let mut seen = BTreeSet::new();
    for d in docs {
        let id = &d.id;
        if !seen.insert(id.as_str()) {
            return Some(format!("document `{id}` appears twice"));
        }
        let chars = d.text.chars().count();
        for (i, &[s, e]) in d.spans.iter().enumerate() {
            if s > e || e > chars {
                return Some(format!(
                    "document `{id}`: span {i} [{s}, {e}) is outside the text ({chars} characters)"
                ));
            }
        }
        for (hyp, g) in &d.labels {
            if let Some(&s) = g.spans.iter().find(|&&s| s >= d.spans.len()) {
                return Some(format!(
                    "document `{id}`: {hyp}: evidence span {s} but the document has {} spans",
                    d.spans.len()
                ));
            }
        }
    }
    None
}
