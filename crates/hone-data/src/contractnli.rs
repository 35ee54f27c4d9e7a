//! ContractNLI's official JSON (Koreeda & Manning, 2021; CC BY 4.0): reading and writing it,
//! and importing it into (a) span-level chat examples, one per span, whose answer names the
//! checks the span is evidence for, with the previous span as context, and (b) a
//! document-level evaluation file (text, spans, gold labels).

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::example::Example;
use crate::nda::{self, DocLabel, Polarity, SpanAnswer, SpanCheck};
use hone_model::chat_template::Message;

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
        match &self.id {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
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

pub struct Imported {
    pub examples: Vec<Example>,
    pub documents: Vec<EvalDocument>,
}

/// Span examples and evaluation documents for a data set.
pub fn import(ds: &Dataset, path: &Path) -> Result<Imported> {
    let system = nda::system_prompt();
    let mut out = Imported {
        examples: Vec::new(),
        documents: Vec::new(),
    };
    for (k, doc) in ds.documents.iter().enumerate() {
        let err = |msg: String| Error::Format {
            path: path.to_path_buf(),
            msg: format!("document {k} (id {}): {msg}", doc.id_string()),
        };
        let texts = doc.span_texts().map_err(err)?;
        let set = doc
            .annotation_sets
            .first()
            .ok_or_else(|| err("no annotation set".into()))?;
        let mut per_span: Vec<SpanAnswer> = vec![SpanAnswer::default(); texts.len()];
        let mut labels = BTreeMap::new();
        for (hyp, ann) in &set.annotations {
            let label = DocLabel::from_choice(&ann.choice)
                .ok_or_else(|| err(format!("{hyp}: unknown choice `{}`", ann.choice)))?;
            if nda::check(hyp).is_none() {
                return Err(err(format!("unknown hypothesis `{hyp}`")));
            }
            let pol = match label {
                DocLabel::Entailed => Some(Polarity::Entailed),
                DocLabel::Contradicted => Some(Polarity::Contradicted),
                DocLabel::NotMentioned => None,
            };
            for &s in &ann.spans {
                let a = per_span
                    .get_mut(s)
                    .ok_or_else(|| err(format!("{hyp}: evidence span {s} of {}", texts.len())))?;
                if let Some(p) = pol {
                    a.checks.push(SpanCheck {
                        id: hyp.clone(),
                        label: p,
                    });
                }
            }
            labels.insert(
                hyp.clone(),
                GoldLabel {
                    label,
                    spans: ann.spans.clone(),
                },
            );
        }
        let id = doc.id_string();
        for (i, text) in texts.iter().enumerate() {
            if text.is_empty() {
                continue;
            }
            let mut ans = std::mem::take(&mut per_span[i]);
            ans.sort();
            let kind = {
                let e = ans.checks.iter().any(|c| c.label == Polarity::Entailed);
                let c = ans.checks.iter().any(|c| c.label == Polarity::Contradicted);
                match (e, c) {
                    (false, false) => "none",
                    (true, false) => "entailed",
                    (false, true) => "contradicted",
                    (true, true) => "mixed",
                }
            };
            let prev = (0..i)
                .rev()
                .map(|j| texts[j].as_str())
                .find(|t| !t.is_empty());
            out.examples.push(Example {
                id: Some(format!("{id}:{i}")),
                group: Some(id.clone()),
                label: Some(kind.into()),
                messages: vec![
                    Message::system(system.clone()),
                    Message::user(nda::span_prompt(prev, text)),
                    Message::assistant(ans.to_json()),
                ],
            });
        }
        out.documents.push(EvalDocument {
            id,
            file_name: doc.file_name.clone(),
            text: doc.text.clone(),
            spans: doc.spans.clone(),
            labels,
        });
    }
    Ok(out)
}

/// Writes `spans.jsonl` and `documents.jsonl` into `dir`.
pub fn write_imported(imp: &Imported, dir: &Path) -> Result<()> {
    crate::jsonl::write_examples(&dir.join("spans.jsonl"), &imp.examples)?;
    let mut s = String::new();
    for d in &imp.documents {
        s.push_str(&serde_json::to_string(d).expect("serializes"));
        s.push('\n');
    }
    crate::atomic::write_file(dir.join("documents.jsonl"), s.as_bytes())
}

/// Reads the evaluation file back.
pub fn read_documents(path: &Path) -> Result<Vec<EvalDocument>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
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
