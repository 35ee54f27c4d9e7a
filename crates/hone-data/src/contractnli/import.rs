//! Importing the official JSON: span-level chat examples (one per span, whose answer names the
//! checks the span is evidence for, with the previous span as context) and the document-level
//! evaluation file (text, spans, gold labels).

use std::collections::BTreeMap;
use std::path::Path;

use super::documents::{EvalDocument, GoldLabel};
use super::official::Dataset;
use crate::error::{Error, Result};
use crate::example::Example;
use crate::nda::{self, DocLabel, Polarity, SpanAnswer, SpanCheck};
use hone_model::chat_template::Message;

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
