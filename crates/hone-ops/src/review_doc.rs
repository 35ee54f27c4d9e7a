//! NDA review results in the review queue: the one place that says what a queued review looks
//! like, so that the producer (`hone data select` for review adapters), the review page, the
//! admin API's validation and `hone data from-feedback` agree.
//!
//! A queued review is a request-log row ([`crate::request_log::LogRecord`]) with
//! - `endpoint` = [`ENDPOINT`] (`"review"`);
//! - `input` = a [`ReviewInput`]: `{"task": "review", "doc_id", "file_name", "text",
//!   "spans": [[start, end], ...]}`, character offsets into `text` (ContractNLI's span cut, as in
//!   `hone_data::contractnli::EvalDocument`); a review item is recognised by `task`;
//! - `output` = the `DocReview` JSON of `hone review --format json` (`{"doc_id", "source",
//!   "checks": {"nda-1": {"label", "probs", "evidence": [{"start", "end", "text", "score"}]}},
//!   "flags", "warnings", "timing"}`), its evidence offsets into `text`.
//!
//! The reviewer's `corrected` has the same shape; what it needs is only
//! `{"checks": {"nda-3": {"label": "Contradiction", "evidence": [{"start": 120, "end": 188}]}}}`:
//! every check id one of the 17 ([`hone_data::nda::CHECKS`]), every label `Entailment`,
//! `Contradiction` or `NotMentioned`, every evidence `[start, end)` one of the input's spans
//! (within the text when the input has no spans). `evidence` left out means none; other fields
//! (`doc_id`, `probs`, `text`, `score`, `flags`, ...) are allowed and ignored. A check left out of
//! `corrected` keeps the model's decision. As in ContractNLI, a `NotMentioned` check has no
//! evidence in training data: evidence listed for one is accepted and dropped.
//!
//! hone-ops does not depend on hone-review: the few fields used are read from the JSON here.

use std::collections::BTreeMap;
use std::fmt;

use hone_data::contractnli::{EvalDocument, GoldLabel};
use hone_data::nda::{self, DocLabel};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The request-log `endpoint` of a queued review.
pub const ENDPOINT: &str = "review";
/// The `task` field of a review input.
pub const TASK: &str = "review";
/// The document-level labels, in ContractNLI's names.
pub const LABELS: [&str; 3] = ["Entailment", "Contradiction", "NotMentioned"];

/// A problem with one field of a review input or answer: `field` is its path
/// (`corrected.checks.nda-3.evidence[1]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub msg: String,
}

impl FieldError {
    fn new(field: impl Into<String>, msg: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            msg: msg.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.msg)
    }
}

impl std::error::Error for FieldError {}

impl From<FieldError> for crate::Error {
    fn from(e: FieldError) -> Self {
        crate::Error::Invalid(e.to_string())
    }
}

/// The input of a queued review: the document as it was reviewed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewInput {
    /// Always [`TASK`].
    pub task: String,
    pub doc_id: String,
    #[serde(default)]
    pub file_name: String,
    pub text: String,
    /// `[start, end)` character offsets into `text`.
    #[serde(default)]
    pub spans: Vec<[usize; 2]>,
}

impl ReviewInput {
    pub fn new(
        doc_id: impl Into<String>,
        file_name: impl Into<String>,
        text: impl Into<String>,
        spans: Vec<[usize; 2]>,
    ) -> Self {
        Self {
            task: TASK.to_string(),
            doc_id: doc_id.into(),
            file_name: file_name.into(),
            text: text.into(),
            spans,
        }
    }

    /// The request-log `input` value.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).expect("a review input serializes")
    }

    /// Whether a logged input is a review input (its `task` says so).
    pub fn is_review(input: &Value) -> bool {
        input.get("task").and_then(Value::as_str) == Some(TASK)
    }

    /// A logged input as a review input; an error names the field (`input.spans[2]`).
    pub fn parse(input: &Value) -> Result<Self, FieldError> {
        if !Self::is_review(input) {
            return Err(FieldError::new("input.task", "not a review input"));
        }
        let me: Self = serde_json::from_value(input.clone())
            .map_err(|e| FieldError::new("input", format!("not a review input: {e}")))?;
        let n = me.char_len();
        for (i, &[s, e]) in me.spans.iter().enumerate() {
            if s > e || e > n {
                return Err(FieldError::new(
                    format!("input.spans[{i}]"),
                    format!("[{s}, {e}) is outside the text ({n} characters)"),
                ));
            }
        }
        Ok(me)
    }

    pub fn char_len(&self) -> usize {
        self.text.chars().count()
    }

    /// The index of the span `[start, end)`, if it is one.
    pub fn span_index(&self, start: usize, end: usize) -> Option<usize> {
        self.spans.iter().position(|&[s, e]| s == start && e == end)
    }

    /// The text of characters `[start, end)`.
    pub fn slice(&self, start: usize, end: usize) -> String {
        self.text.chars().skip(start).take(end - start).collect()
    }
}

impl From<&EvalDocument> for ReviewInput {
    /// The input that reviewing `d` is queued with (its labels are not part of it).
    fn from(d: &EvalDocument) -> Self {
        Self::new(&d.id, &d.file_name, &d.text, d.spans.clone())
    }
}

/// One evidence span of a check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceSpan {
    pub start: usize,
    pub end: usize,
}

/// One check's decision: its label and evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckAnswer {
    /// One of [`LABELS`].
    pub label: String,
    pub evidence: Vec<EvidenceSpan>,
}

/// A review answer (a model's `output` or a reviewer's `corrected`): check id -> decision.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ReviewAnswer {
    pub checks: BTreeMap<String, CheckAnswer>,
}

/// Reads a review answer's JSON text (`what` names it in errors: `output`, `corrected`),
/// checked against its input: the check ids, labels and evidence offsets (see the module's
/// documentation). Extra fields are ignored.
pub fn parse_answer(
    what: &str,
    json: &str,
    input: &ReviewInput,
) -> Result<ReviewAnswer, FieldError> {
    let v: Value =
        serde_json::from_str(json).map_err(|e| FieldError::new(what, format!("not JSON: {e}")))?;
    let obj = v.as_object().ok_or_else(|| {
        FieldError::new(what, "a review answer is a JSON object {\"checks\": {...}}")
    })?;
    let field = format!("{what}.checks");
    let checks = obj
        .get("checks")
        .and_then(Value::as_object)
        .ok_or_else(|| FieldError::new(&field, "an object of check id -> {label, evidence}"))?;
    if checks.is_empty() {
        return Err(FieldError::new(&field, "no checks"));
    }
    let n_chars = input.char_len();
    let mut out = ReviewAnswer::default();
    for (id, c) in checks {
        let field = format!("{what}.checks.{id}");
        if nda::check(id).is_none() {
            let ids: Vec<&str> = nda::CHECKS.iter().map(|c| c.id).collect();
            return Err(FieldError::new(
                field,
                format!("not a check (the checks are {})", ids.join(", ")),
            ));
        }
        let c = c
            .as_object()
            .ok_or_else(|| FieldError::new(&field, "an object {label, evidence}"))?;
        let label = c
            .get("label")
            .and_then(Value::as_str)
            .filter(|l| LABELS.contains(l))
            .ok_or_else(|| {
                FieldError::new(
                    format!("{field}.label"),
                    format!("one of {}", LABELS.join(", ")),
                )
            })?;
        let evidence = match c.get("evidence") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(k, e)| {
                    let f = format!("{field}.evidence[{k}]");
                    let at = |key: &str| e.get(key).and_then(Value::as_u64).map(|x| x as usize);
                    let (Some(s), Some(t)) = (at("start"), at("end")) else {
                        return Err(FieldError::new(
                            f,
                            "an object {start, end} of character offsets",
                        ));
                    };
                    if s > t || t > n_chars {
                        return Err(FieldError::new(
                            f,
                            format!("[{s}, {t}) is outside the text ({n_chars} characters)"),
                        ));
                    }
                    if !input.spans.is_empty() && input.span_index(s, t).is_none() {
                        return Err(FieldError::new(
                            f,
                            format!(
                                "[{s}, {t}) is not one of the document's {} spans",
                                input.spans.len()
                            ),
                        ));
                    }
                    Ok(EvidenceSpan { start: s, end: t })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(FieldError::new(
                    format!("{field}.evidence"),
                    "a list of {start, end}",
                ))
            }
        };
        out.checks.insert(
            id.clone(),
            CheckAnswer {
                label: label.to_string(),
                evidence,
            },
        );
    }
    Ok(out)
}

impl ReviewAnswer {
    /// This answer with the checks of `over` replacing its own (a correction that names only
    /// some checks keeps the rest).
    pub fn overlaid(mut self, over: &ReviewAnswer) -> ReviewAnswer {
        for (id, c) in &over.checks {
            self.checks.insert(id.clone(), c.clone());
        }
        self
    }

    /// The gold labels of training data: each check's label with its evidence as span indices
    /// of `input` (sorted, once each; none for `NotMentioned`). An evidence range that is not
    /// one of the spans is an error naming it.
    pub fn gold_labels(
        &self,
        what: &str,
        input: &ReviewInput,
    ) -> Result<BTreeMap<String, GoldLabel>, FieldError> {
        let mut out = BTreeMap::new();
        for (id, c) in &self.checks {
            let label = DocLabel::from_choice(&c.label).ok_or_else(|| {
                FieldError::new(format!("{what}.checks.{id}.label"), "unknown label")
            })?;
            let mut spans = Vec::new();
            if label != DocLabel::NotMentioned {
                for (k, e) in c.evidence.iter().enumerate() {
                    let i = input.span_index(e.start, e.end).ok_or_else(|| {
                        FieldError::new(
                            format!("{what}.checks.{id}.evidence[{k}]"),
                            format!(
                                "[{}, {}) is not one of the document's spans",
                                e.start, e.end
                            ),
                        )
                    })?;
                    spans.push(i);
                }
                spans.sort_unstable();
                spans.dedup();
            }
            out.insert(id.clone(), GoldLabel { label, spans });
        }
        Ok(out)
    }
}

/// Where a training document from the review queue came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// `feedback-ITEM-request-REQ`, as chat examples' ids.
    pub id: String,
    /// The version that answered (or the model name).
    pub version: String,
    /// The reviewer's mark.
    pub mark: String,
    /// Whether the labels are the reviewer's correction (else the model's answer, confirmed).
    pub corrected: bool,
}

/// A training document from the review queue: an [`EvalDocument`] line of `documents.jsonl`
/// (what `hone data import contractnli` writes and `data.format = "review"` training reads;
/// readers ignore the extra `provenance` field).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedbackDocument {
    #[serde(flatten)]
    pub doc: EvalDocument,
    pub provenance: Provenance,
}

impl FeedbackDocument {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a document serializes")
    }
}

/// A check as the review page shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckInfo {
    pub id: &'static str,
    pub name: &'static str,
    pub statement: &'static str,
}

/// The 17 checks, in order, for the review page.
pub fn checks() -> Vec<CheckInfo> {
    nda::CHECKS
        .iter()
        .map(|c| CheckInfo {
            id: c.id,
            name: c.name,
            statement: c.statement,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// "Alpha. Beta gamma. Delta." cut into three spans.
    fn input() -> ReviewInput {
        ReviewInput::new(
            "doc-1",
            "doc-1.txt",
            "Alpha. Beta gamma. Delta.",
            vec![[0, 6], [7, 18], [19, 25]],
        )
    }

    fn err(json: Value) -> FieldError {
        parse_answer("corrected", &json.to_string(), &input()).unwrap_err()
    }

    #[test]
    fn input_round_trips_and_is_recognised() {
        let i = input();
        let v = i.to_value();
        assert_eq!(v["task"], "review");
        assert!(ReviewInput::is_review(&v));
        assert!(!ReviewInput::is_review(
            &json!([{"role": "user", "content": "x"}])
        ));
        assert_eq!(ReviewInput::parse(&v).unwrap(), i);
        assert_eq!(i.slice(7, 18), "Beta gamma.");
        let d = EvalDocument {
            id: "doc-1".into(),
            file_name: "doc-1.txt".into(),
            text: i.text.clone(),
            spans: i.spans.clone(),
            labels: BTreeMap::new(),
        };
        assert_eq!(ReviewInput::from(&d), i);
        let mut bad = v.clone();
        bad["spans"] = json!([[0, 6], [7, 99]]);
        let e = ReviewInput::parse(&bad).unwrap_err();
        assert_eq!(e.field, "input.spans[1]");
        assert!(e.msg.contains("25 characters"), "{e}");
    }

    #[test]
    fn a_doc_review_output_parses_with_its_extra_fields() {
        // the shape `hone review --format json` prints
        let out = json!({"doc_id": "doc-1", "source": "doc-1.txt",
            "checks": {
                "nda-1": {"label": "Entailment",
                          "probs": {"Entailment": 0.9, "Contradiction": 0.05, "NotMentioned": 0.05},
                          "evidence": [{"start": 19, "end": 25, "text": "Delta.", "score": 0.8},
                                       {"start": 0, "end": 6, "text": "Alpha.", "score": 0.6},
                                       {"start": 19, "end": 25, "text": "Delta.", "score": 0.1}]},
                "nda-2": {"label": "NotMentioned",
                          "probs": {"Entailment": 0.1, "Contradiction": 0.1, "NotMentioned": 0.8},
                          "evidence": [{"start": 7, "end": 18, "text": "Beta gamma.", "score": 0.2}]},
                "nda-5": {"label": "Contradiction", "probs": {}, "evidence": [{"start": 7, "end": 18}]}},
            "flags": [], "warnings": [], "timing": {"total_ms": 3.0}});
        let a = parse_answer("output", &out.to_string(), &input()).unwrap();
        assert_eq!(a.checks.len(), 3);
        assert_eq!(a.checks["nda-1"].evidence.len(), 3);
        let g = a.gold_labels("output", &input()).unwrap();
        // span indices sorted and once each; NotMentioned keeps none
        assert_eq!(g["nda-1"].label, DocLabel::Entailed);
        assert_eq!(g["nda-1"].spans, vec![0, 2]);
        assert_eq!(g["nda-2"].label, DocLabel::NotMentioned);
        assert!(g["nda-2"].spans.is_empty());
        assert_eq!(g["nda-5"].label, DocLabel::Contradicted);
        assert_eq!(g["nda-5"].spans, vec![1]);

        // a minimal correction overlays only the checks it names
        let c = parse_answer(
            "corrected",
            r#"{"checks": {"nda-1": {"label": "Contradiction", "evidence": [{"start": 7, "end": 18}]},
                          "nda-5": {"label": "NotMentioned"}}}"#,
            &input(),
        )
        .unwrap();
        let g = a.overlaid(&c).gold_labels("corrected", &input()).unwrap();
        assert_eq!(
            g.iter()
                .map(|(k, v)| (k.as_str(), v.label.choice(), v.spans.clone()))
                .collect::<Vec<_>>(),
            vec![
                ("nda-1", "Contradiction", vec![1]),
                ("nda-2", "NotMentioned", vec![]),
                ("nda-5", "NotMentioned", vec![]),
            ]
        );
    }

    #[test]
    fn bad_corrections_name_the_field() {
        let cases = [
            (json!("text"), "corrected", "JSON object"),
            (json!({"labels": {}}), "corrected.checks", "check id"),
            (json!({"checks": {}}), "corrected.checks", "no checks"),
            (
                json!({"checks": {"nda-6": {"label": "Entailment"}}}),
                "corrected.checks.nda-6",
                "not a check",
            ),
            (
                json!({"checks": {"nda-3": {"label": "Yes"}}}),
                "corrected.checks.nda-3.label",
                "Entailment, Contradiction, NotMentioned",
            ),
            (
                json!({"checks": {"nda-3": {"label": "Entailment", "evidence": {"start": 0}}}}),
                "corrected.checks.nda-3.evidence",
                "a list",
            ),
            (
                json!({"checks": {"nda-3": {"label": "Entailment",
                                            "evidence": [{"start": 0, "end": 6}, {"start": 7}]}}}),
                "corrected.checks.nda-3.evidence[1]",
                "start, end",
            ),
            (
                json!({"checks": {"nda-3": {"label": "Entailment",
                                            "evidence": [{"start": 0, "end": 6}, {"start": 7, "end": 40}]}}}),
                "corrected.checks.nda-3.evidence[1]",
                "outside the text (25 characters)",
            ),
            (
                json!({"checks": {"nda-3": {"label": "Entailment",
                                            "evidence": [{"start": 0, "end": 6}, {"start": 1, "end": 6}]}}}),
                "corrected.checks.nda-3.evidence[1]",
                "not one of the document's 3 spans",
            ),
        ];
        for (json, field, msg) in cases {
            let e = err(json.clone());
            assert_eq!(e.field, field, "{json}: {e}");
            assert!(e.msg.contains(msg), "{json}: {e}");
        }
        let e = parse_answer("corrected", "{not json", &input()).unwrap_err();
        assert_eq!(e.field, "corrected");
        assert!(e.msg.starts_with("not JSON"), "{e}");
        // without spans, offsets need only be inside the text
        let mut free = input();
        free.spans.clear();
        let ok = json!({"checks": {"nda-3": {"label": "Entailment", "evidence": [{"start": 1, "end": 6}]}}});
        assert!(parse_answer("corrected", &ok.to_string(), &free).is_ok());
    }

    #[test]
    fn checks_are_the_seventeen() {
        let c = checks();
        assert_eq!(c.len(), 17);
        assert_eq!((c[0].id, c[0].name), ("nda-1", "Explicit identification"));
        assert_eq!(c[16].id, "nda-20");
    }
}
