//! Reviewed answers as training data: an answer marked correct is an example as it stands; one
//! marked wrong or critical is an example with the reviewer's correction (and skipped without
//! one). Each example says where it came from: `id` `feedback-ITEM-request-REQ`, `group` the
//! version that answered, `label` the mark.
//!
//! A reviewed NDA review ([`crate::review_doc`]) becomes a training document instead: the
//! reviewed text and spans with the labels and evidence span indices of the correction (its
//! checks over the model's answer), or of the answer itself when marked correct, and the same
//! provenance in a `provenance` field.

use hone_data::contractnli::EvalDocument;
use hone_data::Example;
use hone_model::chat_template::Message;

use crate::review::{Mark, ReviewItem};
use crate::review_doc::{parse_answer, FeedbackDocument, Provenance, ReviewInput};

/// What became of the marked items.
#[derive(Debug, Default, PartialEq)]
pub struct FromFeedback {
    /// From chat and completion items.
    pub examples: Vec<Example>,
    /// From review items.
    pub documents: Vec<FeedbackDocument>,
    /// Marked wrong or critical with no correction written.
    pub without_correction: usize,
    /// The logged input is neither messages nor a prompt nor a review document, or a review
    /// item's input or answer does not read (nothing to train on).
    pub unusable: usize,
    /// Why each unusable review item was left out (`item 7: output.checks: ...`).
    pub problems: Vec<String>,
}

/// A marked review item as a training document.
fn document(
    it: &ReviewItem,
    mark: Mark,
    corrected: Option<&str>,
) -> Result<FeedbackDocument, String> {
    let input = ReviewInput::parse(&it.input).map_err(|e| e.to_string())?;
    let output = parse_answer("output", &it.output, &input);
    let answer = match corrected {
        Some(c) => {
            let c = parse_answer("corrected", c, &input).map_err(|e| e.to_string())?;
            // a correction's checks over the model's (when its answer reads)
            output.unwrap_or_default().overlaid(&c)
        }
        None => output.map_err(|e| e.to_string())?,
    };
    let what = if corrected.is_some() {
        "corrected"
    } else {
        "output"
    };
    let labels = answer
        .gold_labels(what, &input)
        .map_err(|e| e.to_string())?;
    Ok(FeedbackDocument {
        doc: EvalDocument {
            id: input.doc_id,
            file_name: input.file_name,
            text: input.text,
            spans: input.spans,
            labels,
        },
        provenance: Provenance {
            id: format!("feedback-{}-request-{}", it.id, it.request_id),
            version: it.version.clone().unwrap_or_else(|| it.model.clone()),
            mark: mark.as_str().to_string(),
            corrected: corrected.is_some(),
        },
    })
}

/// The conversation a logged input was: chat messages, or a prompt as one user message.
fn messages(input: &serde_json::Value) -> Option<Vec<Message>> {
    match input {
        serde_json::Value::String(p) => Some(vec![Message::user(p.clone())]),
        serde_json::Value::Array(a) => a
            .iter()
            .map(|m| {
                let role = m.get("role")?.as_str()?;
                let content = m.get("content")?.as_str()?;
                Some(Message::new(role, content))
            })
            .collect(),
        _ => None,
    }
}

/// Examples and documents from marked review items (pending ones are ignored).
pub fn examples_from(items: &[ReviewItem]) -> FromFeedback {
    let mut out = FromFeedback::default();
    for it in items {
        let Some(mark) = it.mark else { continue };
        let answer = match (mark, &it.corrected) {
            (_, Some(c)) if !c.trim().is_empty() => c.clone(),
            (Mark::Correct, _) => it.output.clone(),
            _ => {
                out.without_correction += 1;
                continue;
            }
        };
        if ReviewInput::is_review(&it.input) {
            let corrected = it.corrected.as_deref().filter(|c| !c.trim().is_empty());
            match document(it, mark, corrected) {
                Ok(d) => out.documents.push(d),
                Err(why) => {
                    out.unusable += 1;
                    out.problems.push(format!("item {}: {why}", it.id));
                }
            }
            continue;
        }
        let Some(mut msgs) = messages(&it.input).filter(|m| !m.is_empty()) else {
            out.unusable += 1;
            continue;
        };
        msgs.push(Message::assistant(answer));
        out.examples.push(Example {
            id: Some(format!("feedback-{}-request-{}", it.id, it.request_id)),
            group: Some(it.version.clone().unwrap_or_else(|| it.model.clone())),
            label: Some(mark.as_str().to_string()),
            messages: msgs,
        });
    }
    out
}

/// One finding of [`document_qa`]: a new document (its index) and what it meets.
#[derive(Debug, Clone, PartialEq)]
pub struct DocFinding {
    /// Index into the new documents.
    pub new: usize,
    /// The other document: `Train(i)` (index into the training documents) or `New(j)`.
    pub other: DocRef,
    /// The checks whose labels differ (empty: a duplicate).
    pub conflicts: Vec<String>,
}

/// Which document a finding points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocRef {
    Train(usize),
    New(usize),
}

/// What [`document_qa`] found.
#[derive(Debug, Default, PartialEq)]
pub struct DocQa {
    /// New documents whose text is a training document's or an earlier new one's: with the
    /// same labels (duplicates) or different ones (contradictions: `conflicts` names the checks).
    pub findings: Vec<DocFinding>,
    /// New documents (indices) whose text is an evaluation document's: to be left out.
    pub contaminated: Vec<usize>,
}

/// Review documents checked like chat examples: the same text as a training document (or an
/// earlier correction) is a duplicate, or a contradiction when a check's label differs; the
/// same text as an evaluation document is contamination. Texts are compared with their
/// whitespace runs collapsed.
pub fn document_qa(
    new: &[FeedbackDocument],
    train: &[EvalDocument],
    eval: &[EvalDocument],
) -> DocQa {
    use std::collections::HashMap;
    let norm = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
    let conflicts = |a: &EvalDocument, b: &EvalDocument| -> Vec<String> {
        a.labels
            .iter()
            .filter(|(k, g)| b.labels.get(*k).is_some_and(|h| h.label != g.label))
            .map(|(k, _)| k.clone())
            .collect()
    };
    let mut seen: HashMap<String, Vec<DocRef>> = HashMap::new();
    for (i, d) in train.iter().enumerate() {
        seen.entry(norm(&d.text))
            .or_default()
            .push(DocRef::Train(i));
    }
    let eval_texts: std::collections::HashSet<String> =
        eval.iter().map(|d| norm(&d.text)).collect();
    let mut out = DocQa::default();
    for (i, d) in new.iter().enumerate() {
        let t = norm(&d.doc.text);
        if eval_texts.contains(&t) {
            out.contaminated.push(i);
        }
        let others = seen.entry(t).or_default();
        for &o in others.iter() {
            let other = match o {
                DocRef::Train(j) => &train[j],
                DocRef::New(j) => &new[j].doc,
            };
            out.findings.push(DocFinding {
                new: i,
                other: o,
                conflicts: conflicts(&d.doc, other),
            });
        }
        others.push(DocRef::New(i));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn item(
        id: i64,
        input: serde_json::Value,
        mark: Option<Mark>,
        corrected: Option<&str>,
    ) -> ReviewItem {
        ReviewItem {
            id,
            request_id: id * 10,
            time_ms: 0,
            model: "nda".into(),
            version: Some("nda@2".into()),
            input,
            output: "model answer".into(),
            mean_logprob: None,
            mark,
            corrected: corrected.map(str::to_string),
            note: None,
            reviewed_ms: None,
        }
    }

    #[test]
    fn marks_become_examples_with_provenance() {
        let chat =
            json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q?"}]);
        let items = vec![
            item(1, chat.clone(), Some(Mark::Correct), None),
            item(2, chat.clone(), Some(Mark::Wrong), Some("right answer")),
            item(
                3,
                json!("Prompt text"),
                Some(Mark::Critical),
                Some("safe answer"),
            ),
            item(4, chat.clone(), Some(Mark::Wrong), None),
            item(5, chat.clone(), None, None),
            item(6, json!(42), Some(Mark::Correct), None),
        ];
        let f = examples_from(&items);
        assert_eq!(
            (f.examples.len(), f.without_correction, f.unusable),
            (3, 1, 1)
        );
        let e = &f.examples;
        assert_eq!(e[0].messages.last().unwrap().content, "model answer");
        assert_eq!(e[1].messages.len(), 3);
        assert_eq!(e[1].messages[2].content, "right answer");
        assert_eq!(e[1].id.as_deref(), Some("feedback-2-request-20"));
        assert_eq!(
            (e[1].group.as_deref(), e[1].label.as_deref()),
            (Some("nda@2"), Some("wrong"))
        );
        assert_eq!(e[2].messages[0].content, "Prompt text");
        assert_eq!(e[2].messages[1].content, "safe answer");
    }

    fn review_input(text: &str) -> serde_json::Value {
        crate::review_doc::ReviewInput::new("d1", "d1.txt", text, vec![[0, 6], [7, 18], [19, 25]])
            .to_value()
    }

    /// A `hone review --format json` output for "Alpha. Beta gamma. Delta.".
    fn review_output() -> String {
        json!({"doc_id": "d1", "source": "d1.txt", "checks": {
            "nda-1": {"label": "Entailment", "probs": {"Entailment": 0.9, "Contradiction": 0.0, "NotMentioned": 0.1},
                      "evidence": [{"start": 19, "end": 25, "text": "Delta.", "score": 0.9}]},
            "nda-3": {"label": "NotMentioned", "probs": {"Entailment": 0.1, "Contradiction": 0.1, "NotMentioned": 0.8},
                      "evidence": [{"start": 0, "end": 6, "text": "Alpha.", "score": 0.1}]}},
            "flags": [], "warnings": [], "timing": {}})
        .to_string()
    }

    fn labels(d: &FeedbackDocument) -> Vec<(String, &'static str, Vec<usize>)> {
        d.doc
            .labels
            .iter()
            .map(|(k, g)| (k.clone(), g.label.choice(), g.spans.clone()))
            .collect()
    }

    #[test]
    fn review_items_become_documents() {
        const TEXT: &str = "Alpha. Beta gamma. Delta.";
        let mut items = vec![
            item(1, review_input(TEXT), Some(Mark::Correct), None),
            item(
                2,
                review_input(TEXT),
                Some(Mark::Wrong),
                Some(
                    r#"{"checks": {"nda-3": {"label": "Contradiction", "evidence": [{"start": 7, "end": 18}, {"start": 0, "end": 6}]}}}"#,
                ),
            ),
            item(3, review_input(TEXT), Some(Mark::Wrong), None),
            // a correction whose evidence is not a span: left out, saying why
            item(
                4,
                review_input(TEXT),
                Some(Mark::Critical),
                Some(
                    r#"{"checks": {"nda-1": {"label": "Entailment", "evidence": [{"start": 1, "end": 6}]}}}"#,
                ),
            ),
            item(
                5,
                json!([{"role": "user", "content": "Q?"}]),
                Some(Mark::Correct),
                None,
            ),
        ];
        for it in &mut items[..4] {
            it.output = review_output();
        }
        let f = examples_from(&items);
        assert_eq!(
            (
                f.examples.len(),
                f.documents.len(),
                f.without_correction,
                f.unusable
            ),
            (1, 2, 1, 1)
        );
        assert!(
            f.problems[0].starts_with("item 4: corrected.checks.nda-1.evidence[0]"),
            "{:?}",
            f.problems
        );
        let (a, b) = (&f.documents[0], &f.documents[1]);
        // confirmed: the model's labels; NotMentioned drops its evidence
        assert_eq!(
            labels(a),
            vec![
                ("nda-1".into(), "Entailment", vec![2]),
                ("nda-3".into(), "NotMentioned", vec![])
            ]
        );
        // corrected: nda-3 from the correction (spans sorted), nda-1 kept from the output
        assert_eq!(
            labels(b),
            vec![
                ("nda-1".into(), "Entailment", vec![2]),
                ("nda-3".into(), "Contradiction", vec![0, 1])
            ]
        );
        assert_eq!((b.doc.id.as_str(), b.doc.text.as_str()), ("d1", TEXT));
        assert_eq!(b.doc.spans, vec![[0, 6], [7, 18], [19, 25]]);
        assert_eq!(
            b.provenance,
            Provenance {
                id: "feedback-2-request-20".into(),
                version: "nda@2".into(),
                mark: "wrong".into(),
                corrected: true
            }
        );
        // the line reads back as the evaluation/training file's document
        let line = b.to_json();
        assert!(
            line.contains(r#""provenance":{"id":"feedback-2-request-20""#),
            "{line}"
        );
        let back: EvalDocument = serde_json::from_str(&line).unwrap();
        assert_eq!(back, b.doc);

        // QA: against training data holding the text with other labels, and an evaluation
        // document with the text (contamination)
        let mut train = vec![b.doc.clone(), a.doc.clone()];
        train[0].text = "Other text entirely.".into();
        let q = document_qa(&f.documents, &train, &[]);
        // doc 0 duplicates train 1; doc 1 contradicts train 1 on nda-3 and doc 0 likewise
        assert_eq!(
            q.findings,
            vec![
                DocFinding {
                    new: 0,
                    other: DocRef::Train(1),
                    conflicts: vec![]
                },
                DocFinding {
                    new: 1,
                    other: DocRef::Train(1),
                    conflicts: vec!["nda-3".into()]
                },
                DocFinding {
                    new: 1,
                    other: DocRef::New(0),
                    conflicts: vec!["nda-3".into()]
                },
            ]
        );
        assert!(q.contaminated.is_empty());
        let mut ev = a.doc.clone();
        ev.text = format!("  {}\n", TEXT.replace(' ', "  "));
        let q = document_qa(&f.documents, &[], &[ev]);
        assert_eq!(q.contaminated, vec![0, 1]);
    }
}
