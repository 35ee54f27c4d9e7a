//! ContractNLI document-level metrics, as the ContractNLI paper computes them (Koreeda &
//! Manning, 2021; the official implementation is `contract_nli/evaluation.py` in
//! stanfordnlp/contract-nli-bert).
//!
//! For every hypothesis (check) the documents are scored separately, then the per-hypothesis
//! scores are averaged with equal weight (the official `macro_label_micro_doc` averages):
//!
//! - **NLI** (`nli_acc`, `f1_c`, `f1_e`): only documents whose gold label is not NotMentioned,
//!   scored as a binary Entailment / Contradiction decision. As in the official code only the
//!   hypotheses whose gold labels include both Entailment and Contradiction take part, in all
//!   three numbers (the others show `null`). The binary decision follows the official
//!   `remove_not_mentioned`: a predicted Entailment or Contradiction is kept; for a predicted
//!   NotMentioned the larger of the Entailment and Contradiction probabilities decides, ties
//!   (including no probabilities at all) going to Entailment as the official arg-max does. F1 per
//!   class is 2tp / (2tp + fp + fn).
//! - **3-class accuracy** (`acc3`): Entailment / Contradiction / NotMentioned over all documents,
//!   per hypothesis, averaged over hypotheses. The predicted class is the prediction's `label`.
//! - **Evidence mAP** (`evidence_map`, the paper's headline number): for each hypothesis, the
//!   spans of all its documents whose gold label is not NotMentioned and that have gold evidence
//!   (the official code only scores evidence there) are pooled into one ranking by predicted
//!   score, and its average precision is averaged over hypotheses (the official
//!   `macro_label_micro_doc` span `map`: micro over documents, macro over hypotheses, like the
//!   NLI numbers). Pooling asks for scores that are comparable across documents.
//!   `evidence_map_macro_doc` instead takes each document's average precision, averaged over
//!   those documents, then over hypotheses (the official `macro_label_macro_doc` span `map`);
//!   it only reads each document's own ranking, so it is the higher and more forgiving one.
//!
//! Predicted evidence is a list of character ranges with scores. A range covers a span when it
//! overlaps at least half of the span's characters ([`covers`]); a span's score is the best score
//! of the ranges covering it ([`span_scores`]). Average precision ([`average_precision`]) is
//! scikit-learn's `average_precision_score` (sum over score thresholds of the recall gained
//! times the precision there, tied scores forming one threshold) over the covered spans, with
//! recall counted against all gold evidence spans: a gold span no range covers is never
//! retrieved, so it only lowers the recall reached. (The official model gives every span a
//! probability, so there every span is ranked; with ranges, an uncovered span has no score and is
//! not ranked at all, which never credits a system for spans it did not point at.)
//!
//! A gold document without a prediction is counted in `missing` and scored as predicted
//! NotMentioned with no evidence for every hypothesis; in the binary NLI numbers it is no
//! decision at all (wrong, and a false negative for the gold class), so an absent answer never
//! earns credit. A predicted document that lacks a check is scored the same way for that check
//! and counted in `missing_checks`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use hone_data::contractnli::{Dataset, EvalDocument, GoldLabel};
use hone_data::nda::{self, DocLabel};
use serde::{Deserialize, Serialize};

use crate::metrics::mean_defined;
use crate::{Error, Result};

/// A predicted evidence range: `[start, end)` character offsets into the document text.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvidenceRange {
    /// First character (0-based, counted in Unicode scalar values like ContractNLI's offsets).
    pub start: usize,
    /// One past the last character.
    pub end: usize,
    /// Confidence; higher ranks first.
    pub score: f64,
}

/// Whether the range `[start, end)` covers `span`: it overlaps at least half of the span's
/// characters. An empty span is never covered.
pub fn covers(start: usize, end: usize, span: [usize; 2]) -> bool {
    let len = span[1].saturating_sub(span[0]);
    let overlap = end.min(span[1]).saturating_sub(start.max(span[0]));
    len > 0 && 2 * overlap >= len
}

/// Maps predicted ranges to the document's spans: each span gets the best score among the ranges
/// that [`covers`] it, or `None` when no range does.
pub fn span_scores(spans: &[[usize; 2]], evidence: &[EvidenceRange]) -> Vec<Option<f64>> {
    spans
        .iter()
        .map(|&span| {
            evidence
                .iter()
                .filter(|r| covers(r.start, r.end, span))
                .map(|r| r.score)
                .reduce(f64::max)
        })
        .collect()
}

/// Average precision of a ranking: `scores[i]` is item `i`'s score (`None`: not retrieved) and
/// `relevant[i]` whether it is gold. Computed as scikit-learn's `average_precision_score` over
/// the retrieved items, Σ (R_k − R_{k−1}) P_k over the distinct scores from high to low (tied
/// items enter together), with recall over all relevant items, retrieved or not. `None` when no
/// item is relevant (undefined) or the lengths differ.
pub fn average_precision(scores: &[Option<f64>], relevant: &[bool]) -> Option<f64> {
    if scores.len() != relevant.len() {
        return None;
    }
    let total = relevant.iter().filter(|&&r| r).count();
    if total == 0 {
        return None;
    }
    let mut ranked: Vec<(f64, bool)> = scores
        .iter()
        .zip(relevant)
        .filter_map(|(s, &r)| s.map(|s| (s, r)))
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut ap, mut tp, mut seen, mut prev_recall) = (0.0, 0usize, 0usize, 0.0);
    let mut i = 0;
    while i < ranked.len() {
        let score = ranked[i].0;
        while i < ranked.len() && ranked[i].0 == score {
            tp += ranked[i].1 as usize;
            seen += 1;
            i += 1;
        }
        let recall = tp as f64 / total as f64;
        ap += (recall - prev_recall) * (tp as f64 / seen as f64);
        prev_recall = recall;
    }
    Some(ap)
}

/// Which gold file format a text is in.
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
pub fn detect_gold_format(text: &str) -> GoldFormat {
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

/// Reads gold documents from either format ([`detect_gold_format`]) and checks them: unique ids,
/// spans inside the text, evidence indices inside the span list.
pub fn read_gold(path: &Path) -> Result<Vec<EvalDocument>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let docs = match detect_gold_format(&text) {
        GoldFormat::Official => {
            let ds: Dataset = serde_json::from_str(&text).map_err(|e| Error::Parse {
                path: path.to_path_buf(),
                line: e.line(),
                msg: format!("not ContractNLI's JSON (column {}): {e}", e.column()),
            })?;
            gold_from_official(&ds, path)?
        }
        GoldFormat::Documents => hone_data::contractnli::read_documents(path)?,
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
fn gold_problem(docs: &[EvalDocument]) -> Option<String> {
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

/// Class probabilities of a prediction (absent ones are 0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClassProbs {
    /// P(Entailment).
    pub entailment: f64,
    /// P(Contradiction).
    pub contradiction: f64,
    /// P(NotMentioned).
    pub not_mentioned: f64,
}

/// The prediction for one check of one document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckPrediction {
    /// The predicted class (scored by the 3-class accuracy).
    pub label: DocLabel,
    /// Class probabilities, when the predictor gave them (used by the binary decision).
    pub probs: Option<ClassProbs>,
    /// Predicted evidence ranges.
    pub evidence: Vec<EvidenceRange>,
}

impl CheckPrediction {
    /// What a missing prediction is scored as: NotMentioned, no probabilities, no evidence.
    pub fn not_mentioned() -> Self {
        Self {
            label: DocLabel::NotMentioned,
            probs: None,
            evidence: Vec::new(),
        }
    }

    /// The binary Entailment / Contradiction decision (see the module documentation).
    pub fn binary(&self) -> DocLabel {
        match self.label {
            DocLabel::NotMentioned => match self.probs {
                Some(p) if p.contradiction > p.entailment => DocLabel::Contradicted,
                _ => DocLabel::Entailed,
            },
            l => l,
        }
    }
}

/// One line of the predictions file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// The gold document's id (a number in the file is read as its decimal text).
    pub doc_id: String,
    /// The line of the predictions file it came from (1-based).
    pub line: usize,
    /// Check id -> prediction.
    pub checks: BTreeMap<String, CheckPrediction>,
}

/// Where a review's time went, as `hone review` writes it in each line's `timing` (read by
/// [`read_predictions_timed`]; only these fields, the others are ignored).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DocTiming {
    /// Wall time of the whole document, milliseconds.
    pub total_ms: f64,
    /// Time in the model, milliseconds, when given.
    pub model_ms: Option<f64>,
    /// Spans reviewed, when given.
    pub spans: Option<usize>,
    /// Tokens through the model, when given.
    pub tokens: Option<usize>,
}

/// A predictions file, read by [`read_predictions`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Predictions {
    /// Where they came from, for error messages.
    pub path: PathBuf,
    /// One entry per predicted document, in file order.
    pub docs: Vec<Prediction>,
}

#[derive(Deserialize)]
struct RawPrediction {
    doc_id: serde_json::Value,
    checks: BTreeMap<String, RawCheck>,
    #[serde(default)]
    timing: Option<serde_json::Value>,
}

/// Reads a line's `timing`: absent, `null` or without `total_ms` is no timing (`Ok(None)`);
/// a `total_ms` or `model_ms` that is not a non-negative number, or `spans` / `tokens` that are
/// not non-negative integers, are errors `(field, message)`, the field named in full
/// (`timing.total_ms`).
fn timing_from_raw(
    raw: Option<serde_json::Value>,
) -> std::result::Result<Option<DocTiming>, (String, String)> {
    let map = match raw {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::Object(map)) => map,
        Some(other) => return Err(("timing".into(), format!("expected an object, got {other}"))),
    };
    let ms = |field: &'static str| match map.get(field) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => match v.as_f64() {
            Some(x) if x.is_finite() && x >= 0.0 => Ok(Some(x)),
            _ => Err((
                format!("timing.{field}"),
                format!("{v} is not a non-negative number of milliseconds"),
            )),
        },
    };
    let count = |field: &'static str| match map.get(field) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) => Ok(Some(n as usize)),
            None => Err((format!("timing.{field}"), format!("{v} is not a count"))),
        },
    };
    let (model_ms, spans, tokens) = (ms("model_ms")?, count("spans")?, count("tokens")?);
    Ok(ms("total_ms")?.map(|total_ms| DocTiming {
        total_ms,
        model_ms,
        spans,
        tokens,
    }))
}

#[derive(Deserialize)]
struct RawCheck {
    label: String,
    #[serde(default)]
    probs: Option<BTreeMap<String, f64>>,
    #[serde(default)]
    evidence: Vec<EvidenceRange>,
}

fn label_from_choice(choice: &str) -> std::result::Result<DocLabel, String> {
    DocLabel::from_choice(choice)
        .ok_or_else(|| format!("`{choice}` is not one of Entailment, Contradiction, NotMentioned"))
}

fn check_from_raw(raw: RawCheck) -> std::result::Result<CheckPrediction, (&'static str, String)> {
    let label = label_from_choice(&raw.label).map_err(|m| ("label", m))?;
    let probs = match raw.probs {
        None => None,
        Some(map) => {
            let mut p = ClassProbs::default();
            for (k, v) in map {
                if !(0.0..=1.0).contains(&v) {
                    return Err(("probs", format!("`{k}`: {v} is not a probability")));
                }
                match label_from_choice(&k).map_err(|m| ("probs", m))? {
                    DocLabel::Entailed => p.entailment = v,
                    DocLabel::Contradicted => p.contradiction = v,
                    DocLabel::NotMentioned => p.not_mentioned = v,
                }
            }
            Some(p)
        }
    };
    for r in &raw.evidence {
        if r.start > r.end {
            return Err((
                "evidence",
                format!("range [{}, {}) ends before it starts", r.start, r.end),
            ));
        }
        if !r.score.is_finite() {
            return Err(("evidence", format!("score {} is not a number", r.score)));
        }
    }
    Ok(CheckPrediction {
        label,
        probs,
        evidence: raw.evidence,
    })
}

/// Reads `hone review` predictions: JSONL, one document a line, with `doc_id` (a string or a
/// number) and `checks` (check id → `label`, optional `probs`, optional `evidence` of
/// `{start, end, score}`) and optional `timing` ([`DocTiming`]; a line without `timing.total_ms`
/// has none); other keys are ignored. Errors name the file and line: malformed JSON,
/// missing fields, a label or probability key outside Entailment / Contradiction / NotMentioned,
/// a probability outside [0, 1], a range that ends before it starts, a document predicted twice,
/// a `timing` that is not an object or whose times or counts are negative or not numbers.
pub fn read_predictions(path: &Path) -> Result<Predictions> {
    Ok(read_predictions_timed(path)?.0)
}

/// [`read_predictions`], and each document's `timing` (`timings[i]` belongs to `docs[i]`;
/// `None` when the line has no `timing.total_ms`).
pub fn read_predictions_timed(path: &Path) -> Result<(Predictions, Vec<Option<DocTiming>>)> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut docs: Vec<Prediction> = Vec::new();
    let mut timings: Vec<Option<DocTiming>> = Vec::new();
    let mut first_line: HashMap<String, usize> = HashMap::new();
    for (i, l) in text.lines().enumerate() {
        let line = i + 1;
        if l.trim().is_empty() {
            continue;
        }
        let raw: RawPrediction = serde_json::from_str(l).map_err(|e| Error::Parse {
            path: path.to_path_buf(),
            line,
            msg: format!("not a prediction: {e}"),
        })?;
        let field_err = |field: String, msg: String| Error::Field {
            path: path.to_path_buf(),
            line,
            field,
            msg,
        };
        let doc_id = match raw.doc_id {
            serde_json::Value::String(s) => s,
            serde_json::Value::Number(n) => n.to_string(),
            other => {
                return Err(field_err(
                    "doc_id".into(),
                    format!("expected a string, got {other}"),
                ))
            }
        };
        if let Some(first) = first_line.insert(doc_id.clone(), line) {
            return Err(field_err(
                "doc_id".into(),
                format!("document `{doc_id}` is already predicted on line {first}"),
            ));
        }
        let checks = raw
            .checks
            .into_iter()
            .map(|(id, c)| match check_from_raw(c) {
                Ok(c) => Ok((id, c)),
                Err((field, msg)) => Err(field_err(format!("checks.{id}.{field}"), msg)),
            })
            .collect::<Result<_>>()?;
        timings.push(timing_from_raw(raw.timing).map_err(|(field, msg)| field_err(field, msg))?);
        docs.push(Prediction {
            doc_id,
            line,
            checks,
        });
    }
    let preds = Predictions {
        path: path.to_path_buf(),
        docs,
    };
    Ok((preds, timings))
}

/// Scores for one hypothesis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HypothesisMetrics {
    /// The hypothesis (check) id, e.g. `nda-1`.
    pub id: String,
    /// The check's short name, for known NDA checks.
    pub name: Option<String>,
    /// Gold documents annotated for this hypothesis.
    pub documents: usize,
    /// Gold label counts.
    pub entailment: usize,
    /// Gold Contradiction count.
    pub contradiction: usize,
    /// Gold NotMentioned count.
    pub not_mentioned: usize,
    /// Whether the gold labels include both Entailment and Contradiction, i.e. whether this
    /// hypothesis takes part in `nli_acc`, `f1_c` and `f1_e`.
    pub binary: bool,
    /// Binary accuracy over the Entailment / Contradiction documents; `None` unless `binary`.
    pub nli_acc: Option<f64>,
    /// `None` unless `binary`.
    pub f1_c: Option<f64>,
    /// `None` unless `binary`.
    pub f1_e: Option<f64>,
    /// 3-class accuracy over all its documents.
    pub acc3: f64,
    /// Documents with gold evidence (those scored for evidence).
    pub evidence_documents: usize,
    /// Average precision of the pooled ranking; `None` when no document has gold evidence.
    pub evidence_map: Option<f64>,
    /// Mean per-document average precision; `None` when no document has gold evidence.
    pub evidence_map_macro_doc: Option<f64>,
}

/// ContractNLI metrics (see the module documentation). Averages over no hypotheses are `None`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ContractNliMetrics {
    /// Binary NLI accuracy, macro over the binary hypotheses.
    pub nli_acc: Option<f64>,
    /// F1 of Contradiction, macro over the binary hypotheses.
    pub f1_c: Option<f64>,
    /// F1 of Entailment, macro over the binary hypotheses.
    pub f1_e: Option<f64>,
    /// 3-class accuracy, macro over hypotheses.
    pub acc3: Option<f64>,
    /// Evidence mAP (the paper's): each hypothesis's documents pooled, macro over hypotheses.
    pub evidence_map: Option<f64>,
    /// Evidence mAP per document, macro over documents then hypotheses.
    pub evidence_map_macro_doc: Option<f64>,
    /// Gold documents.
    pub documents: usize,
    /// Gold documents with a prediction.
    pub predicted: usize,
    /// Gold documents without a prediction (scored as NotMentioned, no evidence).
    pub missing: usize,
    /// (document, hypothesis) pairs of predicted documents that lack the check.
    pub missing_checks: usize,
    /// Hypotheses in the gold documents.
    pub hypotheses: usize,
    /// Hypotheses that take part in the NLI numbers.
    pub binary_hypotheses: usize,
    /// (document, hypothesis) pairs scored for evidence.
    pub evidence_pairs: usize,
    /// One entry per hypothesis, in NDA check order (unknown ids last, by name).
    pub per_hypothesis: Vec<HypothesisMetrics>,
}

fn hypothesis_order(id: &str) -> (usize, String) {
    (nda::check_index(id).unwrap_or(usize::MAX), id.to_string())
}

fn f1(tp: usize, fp: usize, fn_: usize) -> f64 {
    let den = 2 * tp + fp + fn_;
    if den == 0 {
        0.0
    } else {
        2.0 * tp as f64 / den as f64
    }
}

/// Scores predictions against gold documents (see the module documentation).
///
/// Errors: no gold documents; a prediction for a document that is not in the gold set (naming
/// the doc_id); a check id that is neither a known NDA check nor a gold hypothesis; an evidence
/// range beyond the document's text.
pub fn evaluate(gold: &[EvalDocument], preds: &Predictions) -> Result<ContractNliMetrics> {
    if gold.is_empty() {
        return Err(Error::Invalid("no gold documents to score".into()));
    }
    if let Some(msg) = gold_problem(gold) {
        return Err(Error::Invalid(format!("gold documents: {msg}")));
    }
    let by_id: HashMap<&str, &EvalDocument> = gold.iter().map(|d| (d.id.as_str(), d)).collect();
    let mut hyps: Vec<&str> = gold
        .iter()
        .flat_map(|d| d.labels.keys().map(String::as_str))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    hyps.sort_by_key(|h| hypothesis_order(h));

    let mut pred_by_id: HashMap<&str, &Prediction> = HashMap::new();
    for p in &preds.docs {
        let err = |field: String, msg: String| Error::Field {
            path: preds.path.clone(),
            line: p.line,
            field,
            msg,
        };
        let Some(doc) = by_id.get(p.doc_id.as_str()) else {
            return Err(err(
                "doc_id".into(),
                format!("document `{}` is not in the gold documents", p.doc_id),
            ));
        };
        let chars = doc.text.chars().count();
        for (id, c) in &p.checks {
            if nda::check(id).is_none() && !hyps.contains(&id.as_str()) {
                return Err(err(
                    "checks".into(),
                    format!("unknown check `{id}` (document `{}`)", p.doc_id),
                ));
            }
            if let Some(r) = c.evidence.iter().find(|r| r.end > chars) {
                return Err(err(
                    format!("checks.{id}.evidence"),
                    format!(
                        "range [{}, {}) is beyond the text of document `{}` ({chars} characters)",
                        r.start, r.end, p.doc_id
                    ),
                ));
            }
        }
        pred_by_id.insert(p.doc_id.as_str(), p);
    }

    let missing_pred = CheckPrediction::not_mentioned();
    let mut missing_checks = 0usize;
    let mut per_hypothesis = Vec::new();
    for &h in &hyps {
        let (mut counts, mut correct3, mut n) = ([0usize; 3], 0usize, 0usize);
        // Binary: (correct, total), and tp/fp/fn for Entailment and Contradiction.
        let (mut bin_correct, mut bin_total) = (0usize, 0usize);
        let (mut e, mut c) = ([0usize; 3], [0usize; 3]);
        let mut doc_aps = Vec::new();
        let (mut pooled_scores, mut pooled_rel) = (Vec::new(), Vec::new());
        for doc in gold {
            let Some(g) = doc.labels.get(h) else { continue };
            let (p, absent) = match pred_by_id.get(doc.id.as_str()) {
                None => (&missing_pred, true),
                Some(p) => match p.checks.get(h) {
                    Some(c) => (c, false),
                    None => {
                        missing_checks += 1;
                        (&missing_pred, true)
                    }
                },
            };
            n += 1;
            counts[match g.label {
                DocLabel::Entailed => 0,
                DocLabel::Contradicted => 1,
                DocLabel::NotMentioned => 2,
            }] += 1;
            correct3 += (p.label == g.label) as usize;
            if g.label == DocLabel::NotMentioned {
                continue;
            }
            // No answer is no binary decision: wrong, and a miss for the gold class.
            let b = (!absent).then(|| p.binary());
            bin_total += 1;
            bin_correct += (b == Some(g.label)) as usize;
            for (class, t) in [
                (DocLabel::Entailed, &mut e),
                (DocLabel::Contradicted, &mut c),
            ] {
                match (g.label == class, b == Some(class)) {
                    (true, true) => t[0] += 1,
                    (false, true) => t[1] += 1,
                    (true, false) => t[2] += 1,
                    (false, false) => {}
                }
            }
            let mut relevant = vec![false; doc.spans.len()];
            for &s in &g.spans {
                relevant[s] = true;
            }
            let scores = span_scores(&doc.spans, &p.evidence);
            if let Some(ap) = average_precision(&scores, &relevant) {
                doc_aps.push(ap);
                pooled_scores.extend(scores);
                pooled_rel.extend(relevant);
            }
        }
        let [entailment, contradiction, not_mentioned] = counts;
        let binary = entailment > 0 && contradiction > 0;
        per_hypothesis.push(HypothesisMetrics {
            id: h.to_string(),
            name: nda::check(h).map(|c| c.name.to_string()),
            documents: n,
            entailment,
            contradiction,
            not_mentioned,
            binary,
            nli_acc: binary.then(|| bin_correct as f64 / bin_total as f64),
            f1_c: binary.then(|| f1(c[0], c[1], c[2])),
            f1_e: binary.then(|| f1(e[0], e[1], e[2])),
            acc3: correct3 as f64 / n as f64,
            evidence_documents: doc_aps.len(),
            evidence_map_macro_doc: mean_defined(doc_aps.iter().map(|&a| Some(a))),
            evidence_map: average_precision(&pooled_scores, &pooled_rel),
        });
    }
    let missing = gold
        .iter()
        .filter(|d| !pred_by_id.contains_key(d.id.as_str()))
        .count();
    let avg = |f: fn(&HypothesisMetrics) -> Option<f64>| mean_defined(per_hypothesis.iter().map(f));
    Ok(ContractNliMetrics {
        nli_acc: avg(|h| h.nli_acc),
        f1_c: avg(|h| h.f1_c),
        f1_e: avg(|h| h.f1_e),
        acc3: avg(|h| Some(h.acc3)),
        evidence_map_macro_doc: avg(|h| h.evidence_map_macro_doc),
        evidence_map: avg(|h| h.evidence_map),
        documents: gold.len(),
        predicted: gold.len() - missing,
        missing,
        missing_checks,
        hypotheses: hyps.len(),
        binary_hypotheses: per_hypothesis.iter().filter(|h| h.binary).count(),
        evidence_pairs: per_hypothesis.iter().map(|h| h.evidence_documents).sum(),
        per_hypothesis,
    })
}

/// Reads both files and scores them: [`read_gold`], [`read_predictions`], [`evaluate`].
pub fn evaluate_files(gold: &Path, predictions: &Path) -> Result<ContractNliMetrics> {
    let gold = read_gold(gold)?;
    let preds = read_predictions(predictions)?;
    evaluate(&gold, &preds)
}

// ---------------------------------------------------------------------------------------------
// Comparing predictions files (base few-shot against a fine-tuned adapter, ...).

/// Latency of one candidate's reviews, from each predicted document's `timing.total_ms`
/// (seconds). Documents without timing are counted in `untimed`, never guessed; the
/// percentiles interpolate linearly between closest ranks ([`crate::stats::percentile`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReviewLatency {
    /// Predicted documents (lines of the predictions file).
    pub documents: usize,
    /// Documents with `timing.total_ms`.
    pub timed: usize,
    /// Documents without it.
    pub untimed: usize,
    /// Median seconds per document; `None` when no document is timed.
    pub p50_s: Option<f64>,
    /// 95th percentile, seconds per document.
    pub p95_s: Option<f64>,
    /// Mean seconds per document.
    pub mean_s: Option<f64>,
    /// Spans of the timed documents that report `timing.spans`.
    pub spans: usize,
    /// `spans` over the seconds of those same documents; `None` when none reports spans (or
    /// they took no time).
    pub spans_per_s: Option<f64>,
    /// Seconds per timed document, in file order (for the histogram).
    pub latencies_s: Vec<f64>,
}

impl ReviewLatency {
    /// The latency of a predictions file's documents, one entry per document (`None`: no
    /// timing), as [`read_predictions_timed`] reads them.
    pub fn from_timings(per_doc: &[Option<DocTiming>]) -> Self {
        let timings: Vec<DocTiming> = per_doc.iter().flatten().copied().collect();
        let latencies_s: Vec<f64> = timings.iter().map(|t| t.total_ms / 1e3).collect();
        let stats = crate::stats::LatencyStats::from_latencies(&latencies_s);
        let (spans, secs, with_spans) = timings
            .iter()
            .filter_map(|t| t.spans.map(|n| (n, t.total_ms / 1e3)))
            .fold((0usize, 0.0f64, 0usize), |(n, s, k), (dn, ds)| {
                (n + dn, s + ds, k + 1)
            });
        Self {
            documents: per_doc.len(),
            timed: timings.len(),
            untimed: per_doc.len() - timings.len(),
            p50_s: stats.as_ref().map(|s| s.p50_s),
            p95_s: stats.as_ref().map(|s| s.p95_s),
            mean_s: stats.as_ref().map(|s| s.mean_s),
            spans,
            spans_per_s: (with_spans > 0 && secs > 0.0).then(|| spans as f64 / secs),
            latencies_s,
        }
    }
}

/// One predictions file in a [`Comparison`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The name it is shown under (`NAME` of `NAME=PATH`, or the file stem).
    pub name: String,
    /// The predictions file.
    pub path: PathBuf,
    /// Its scores, exactly as [`evaluate_files`] computes them.
    pub metrics: ContractNliMetrics,
    /// Its review latency.
    pub latency: ReviewLatency,
}

/// Several predictions files scored against the same gold documents.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The gold file.
    pub gold: PathBuf,
    /// Gold documents.
    pub documents: usize,
    /// One entry per predictions file, in the order given.
    pub candidates: Vec<Candidate>,
}

/// Reads a candidate given as `NAME=PATH` or a bare `PATH` (named by its file stem, `pred`
/// for `runs/base/pred.jsonl`). Text before the first `=` that contains a path separator, or
/// an argument that names an existing file as a whole, is a bare path (`runs/lr=1e-4/p.jsonl`).
/// Errors: an empty name (`=p.jsonl`), an empty path (`base=`), a path without a file stem.
pub fn parse_candidate(arg: &str) -> Result<(String, PathBuf)> {
    let bare = |p: &str| -> Result<(String, PathBuf)> {
        let path = PathBuf::from(p);
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "`{arg}` has no file name to name it by; give it as NAME=PATH"
                ))
            })?;
        Ok((stem.to_string(), path))
    };
    match arg.split_once('=') {
        Some((name, _)) if name.contains(['/', '\\']) || Path::new(arg).is_file() => bare(arg),
        Some((name, path)) => {
            if name.trim().is_empty() {
                return Err(Error::Invalid(format!(
                    "`{arg}`: empty name before `=` (expected NAME=PATH)"
                )));
            }
            if path.is_empty() {
                return Err(Error::Invalid(format!(
                    "`{arg}`: empty path after `=` (expected NAME=PATH)"
                )));
            }
            Ok((name.trim().to_string(), PathBuf::from(path)))
        }
        None if arg.is_empty() => Err(Error::Invalid("empty predictions path".into())),
        None => bare(arg),
    }
}

/// Scores every predictions file against the same gold documents (read once): per candidate the
/// [`evaluate`] metrics and the [`ReviewLatency`]. Errors: no candidates, an empty name, a name
/// given twice (naming both files), and whatever [`read_gold`], [`read_predictions`] and
/// [`evaluate`] refuse (naming the file).
pub fn compare(gold: &Path, candidates: &[(String, PathBuf)]) -> Result<Comparison> {
    if candidates.is_empty() {
        return Err(Error::Invalid("no predictions files to compare".into()));
    }
    let mut seen: HashMap<&str, &Path> = HashMap::new();
    for (name, path) in candidates {
        if name.trim().is_empty() {
            return Err(Error::Invalid(format!(
                "{}: empty candidate name",
                path.display()
            )));
        }
        if let Some(first) = seen.insert(name.as_str(), path.as_path()) {
            return Err(Error::Invalid(format!(
                "the name `{name}` is given twice ({} and {}); name them apart as NAME=PATH",
                first.display(),
                path.display()
            )));
        }
    }
    let docs = read_gold(gold)?;
    let candidates = candidates
        .iter()
        .map(|(name, path)| {
            let (preds, timings) = read_predictions_timed(path)?;
            Ok(Candidate {
                name: name.clone(),
                path: path.clone(),
                metrics: evaluate(&docs, &preds)?,
                latency: ReviewLatency::from_timings(&timings),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Comparison {
        gold: gold.to_path_buf(),
        documents: docs.len(),
        candidates,
    })
}

/// The overall numbers of a candidate, in report order: NLI acc, F1(C), F1(E), Acc3, mAP
/// (pooled over documents), mAP/doc.
pub fn overall_metrics(m: &ContractNliMetrics) -> [(&'static str, Option<f64>); 6] {
    [
        ("NLI acc", m.nli_acc),
        ("F1(C)", m.f1_c),
        ("F1(E)", m.f1_e),
        ("Acc3", m.acc3),
        ("mAP", m.evidence_map),
        ("mAP/doc", m.evidence_map_macro_doc),
    ]
}

/// Paths written by [`write_comparison`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComparisonFiles {
    pub json: PathBuf,
    pub markdown: PathBuf,
    pub html: PathBuf,
}

/// Writes `report.json` (the [`Comparison`]), `report.md` and a self-contained `report.html`
/// into `dir` (created if needed), each atomically.
pub fn write_comparison(c: &Comparison, dir: &Path) -> Result<ComparisonFiles> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let files = ComparisonFiles {
        json: dir.join("report.json"),
        markdown: dir.join("report.md"),
        html: dir.join("report.html"),
    };
    let mut json = serde_json::to_vec_pretty(c).map_err(|e| Error::Invalid(e.to_string()))?;
    json.push(b'\n');
    crate::report::write_atomic(&files.json, &json)?;
    crate::report::write_atomic(&files.markdown, comparison_markdown(c).as_bytes())?;
    crate::report::write_atomic(&files.html, comparison_html(c).as_bytes())?;
    Ok(files)
}

fn fmt_num(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.digits$}"),
        _ => "–".into(),
    }
}

/// The overall table's header and rows (shared by Markdown and HTML), and for each column
/// whether higher is better (`Some(true)`), lower is (`Some(false)`) or neither.
fn overall_table(c: &Comparison) -> (Vec<String>, Vec<Option<bool>>, Vec<Vec<String>>) {
    let mut head = vec!["candidate".to_string(), "predicted".to_string()];
    let mut better = vec![None, None];
    for (n, _) in overall_metrics(&c.candidates[0].metrics) {
        head.push(n.to_string());
        better.push(Some(true));
    }
    for (n, b) in [
        ("p50 s", Some(false)),
        ("p95 s", Some(false)),
        ("mean s", Some(false)),
        ("spans/s", Some(true)),
        ("timed", None),
    ] {
        head.push(n.to_string());
        better.push(b);
    }
    let rows = c
        .candidates
        .iter()
        .map(|k| {
            let (m, l) = (&k.metrics, &k.latency);
            let mut row = vec![k.name.clone(), format!("{}/{}", m.predicted, m.documents)];
            row.extend(overall_metrics(m).iter().map(|&(_, v)| fmt_num(v, 3)));
            row.push(fmt_num(l.p50_s, 3));
            row.push(fmt_num(l.p95_s, 3));
            row.push(fmt_num(l.mean_s, 3));
            row.push(fmt_num(l.spans_per_s, 1));
            row.push(format!("{}/{}", l.timed, l.documents));
            row
        })
        .collect();
    (head, better, rows)
}

/// Per hypothesis (in the order of the first candidate, all share the gold): id, name, and
/// each candidate's metrics for it.
fn per_hypothesis_rows(
    c: &Comparison,
) -> Vec<(&HypothesisMetrics, Vec<Option<&HypothesisMetrics>>)> {
    c.candidates[0]
        .metrics
        .per_hypothesis
        .iter()
        .map(|h| {
            let each = c
                .candidates
                .iter()
                .map(|k| k.metrics.per_hypothesis.iter().find(|x| x.id == h.id))
                .collect();
            (h, each)
        })
        .collect()
}

const PER_HYPOTHESIS_METRICS: [&str; 3] = ["NLI acc", "Acc3", "mAP"];

fn hypothesis_values(h: Option<&HypothesisMetrics>) -> [Option<f64>; 3] {
    match h {
        Some(h) => [h.nli_acc, Some(h.acc3), h.evidence_map],
        None => [None; 3],
    }
}

const LATENCY_NOTE: &str = "Latency is each predicted document's `timing.total_ms` in seconds \
     (p50 / p95 interpolate linearly between closest ranks); documents without timing are \
     counted in `timed`, never guessed. Spans per second: the spans of the timed documents that \
     report them over their time.";

/// The Markdown report: the overall table, one line per candidate, the per-hypothesis table.
pub fn comparison_markdown(c: &Comparison) -> String {
    let mut s = String::new();
    let hyps = c.candidates.first().map_or(0, |k| k.metrics.hypotheses);
    let _ = writeln!(
        s,
        "# ContractNLI comparison\n\nGold: `{}` ({} documents, {} hypotheses).\n",
        c.gold.display(),
        c.documents,
        hyps
    );
    if c.candidates.is_empty() {
        s.push_str("No candidates.\n");
        return s;
    }
    let (head, _, rows) = overall_table(c);
    let _ = writeln!(s, "| {} |", head.join(" | "));
    let _ = writeln!(s, "|---|{}", "---:|".repeat(head.len() - 1));
    for row in rows {
        let _ = writeln!(s, "| {} |", row.join(" | "));
    }
    s.push('\n');
    for k in &c.candidates {
        let _ = writeln!(s, "- {}", candidate_line(k, "`"));
    }
    s.push_str("\n## Per hypothesis\n\n| id | hypothesis | docs |");
    for k in &c.candidates {
        for m in PER_HYPOTHESIS_METRICS {
            let _ = write!(s, " {m} ({}) |", k.name.replace('|', "\\|"));
        }
    }
    let cols = 3 + PER_HYPOTHESIS_METRICS.len() * c.candidates.len();
    let _ = writeln!(s, "\n|---|---|{}", "---:|".repeat(cols - 2));
    for (h, each) in per_hypothesis_rows(c) {
        let _ = write!(
            s,
            "| {} | {} | {} |",
            h.id,
            h.name.as_deref().unwrap_or("").replace('|', "\\|"),
            h.documents
        );
        for k in each {
            for v in hypothesis_values(k) {
                let _ = write!(s, " {} |", fmt_num(v, 3));
            }
        }
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "\nNLI acc, F1(C) and F1(E) only count the hypotheses whose gold labels include both \
         Entailment and Contradiction (`–` elsewhere), over their Entailment / Contradiction \
         documents; mAP is the evidence mean average precision with each hypothesis's documents \
         pooled (the ContractNLI paper's), mAP/doc the mean over documents of each document's own. {LATENCY_NOTE}"
    );
    s
}

/// "name: path, predicted a of b gold documents (...), t of n timed".
fn candidate_line(k: &Candidate, quote: &str) -> String {
    let (m, l) = (&k.metrics, &k.latency);
    let mut s = format!(
        "{q}{}{q}: {q}{}{q}, {} of {} gold documents predicted",
        k.name,
        k.path.display(),
        m.predicted,
        m.documents,
        q = quote
    );
    if m.missing > 0 || m.missing_checks > 0 {
        let _ = write!(
            s,
            " (missing, scored as NotMentioned: {}, {})",
            plural(m.missing, "document"),
            plural(m.missing_checks, "check")
        );
    }
    let _ = write!(
        s,
        "; {} of {} timed, {} without timing",
        l.timed,
        plural(l.documents, "document"),
        l.untimed
    );
    s
}

fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

const COMPARISON_CSS: &str = "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}\
th:first-child,td:first-child{text-align:left}th{background:#f0f4f8}.best{font-weight:bold;background:#e6f4ea}\
.charts{display:flex;flex-wrap:wrap;gap:16px}.muted{color:#666}td.name,th.name{text-align:left}th[colspan]{text-align:center}";

/// The index of the best value per column (`better[j]`: higher or lower is better), when
/// there is more than one row and a strict best.
fn best_rows(better: &[Option<bool>], values: &[Vec<Option<f64>>]) -> Vec<Option<usize>> {
    (0..better.len())
        .map(|j| {
            let higher = better[j]?;
            if values.len() < 2 {
                return None;
            }
            let col: Vec<(usize, f64)> = values
                .iter()
                .enumerate()
                .filter_map(|(i, r)| r.get(j).copied().flatten().map(|v| (i, v)))
                .collect();
            let best = col
                .iter()
                .map(|x| x.1)
                .reduce(|a, b| if higher { a.max(b) } else { a.min(b) })?;
            let at: Vec<usize> = col.iter().filter(|x| x.1 == best).map(|x| x.0).collect();
            (at.len() == 1).then(|| at[0])
        })
        .collect()
}

/// The self-contained HTML report: the overall table (best values highlighted), a bar chart of
/// the overall metrics, the latency histogram, a bar chart of evidence mAP per hypothesis and
/// the per-hypothesis table.
pub fn comparison_html(c: &Comparison) -> String {
    use crate::svg::{self, esc};
    let mut s = String::new();
    let hyps = c.candidates.first().map_or(0, |k| k.metrics.hypotheses);
    let _ = write!(
        s,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>hone: ContractNLI comparison</title>\
         <style>{COMPARISON_CSS}</style></head><body><h1>ContractNLI comparison</h1>\
         <p class=\"muted\">Gold: <code>{}</code> ({} documents, {} hypotheses).</p>",
        esc(&c.gold.display().to_string()),
        c.documents,
        hyps
    );
    if c.candidates.is_empty() {
        s.push_str("<p>No candidates.</p></body></html>\n");
        return s;
    }
    let (head, better, rows) = overall_table(c);
    let values: Vec<Vec<Option<f64>>> = c
        .candidates
        .iter()
        .map(|k| {
            let l = &k.latency;
            let mut v = vec![None, None];
            v.extend(overall_metrics(&k.metrics).iter().map(|x| x.1));
            v.extend([l.p50_s, l.p95_s, l.mean_s, l.spans_per_s, None]);
            v
        })
        .collect();
    let best = best_rows(&better, &values);
    s.push_str("<h2>Overall</h2><table><tr>");
    for h in &head {
        let _ = write!(s, "<th>{}</th>", esc(h));
    }
    s.push_str("</tr>");
    for (i, row) in rows.iter().enumerate() {
        s.push_str("<tr>");
        for (j, cell) in row.iter().enumerate() {
            let cls = if best[j] == Some(i) {
                " class=\"best\""
            } else {
                ""
            };
            let _ = write!(s, "<td{cls}>{}</td>", esc(cell));
        }
        s.push_str("</tr>");
    }
    s.push_str("</table><ul>");
    for k in &c.candidates {
        let _ = write!(s, "<li>{}</li>", esc(&candidate_line(k, "")));
    }
    s.push_str("</ul><div class=\"charts\">");
    let names: Vec<String> = overall_metrics(&c.candidates[0].metrics)
        .iter()
        .map(|x| x.0.to_string())
        .collect();
    let series: Vec<(String, Vec<Option<f64>>)> = c
        .candidates
        .iter()
        .map(|k| {
            let v = overall_metrics(&k.metrics).iter().map(|x| x.1).collect();
            (k.name.clone(), v)
        })
        .collect();
    s.push_str(&svg::grouped_bars("Overall metrics", &names, &series, 1.0));
    let lat: Vec<(String, Vec<f64>)> = c
        .candidates
        .iter()
        .map(|k| (k.name.clone(), k.latency.latencies_s.clone()))
        .collect();
    s.push_str(&svg::latency_histogram(
        "Review latency per document (s)",
        &lat,
    ));
    s.push_str("</div>");

    let per = per_hypothesis_rows(c);
    let ids: Vec<String> = per.iter().map(|(h, _)| h.id.clone()).collect();
    let map_series: Vec<(String, Vec<Option<f64>>)> = c
        .candidates
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let v = per
                .iter()
                .map(|(_, each)| each[i].and_then(|h| h.evidence_map))
                .collect();
            (k.name.clone(), v)
        })
        .collect();
    s.push_str("<h2>Per hypothesis</h2><div class=\"charts\">");
    s.push_str(&svg::grouped_bars(
        "Evidence mAP per hypothesis",
        &ids,
        &map_series,
        1.0,
    ));
    s.push_str("</div><table><tr><th rowspan=\"2\">id</th><th rowspan=\"2\" class=\"name\">hypothesis</th><th rowspan=\"2\">docs</th>");
    for k in &c.candidates {
        let _ = write!(
            s,
            "<th colspan=\"{}\">{}</th>",
            PER_HYPOTHESIS_METRICS.len(),
            esc(&k.name)
        );
    }
    s.push_str("</tr><tr>");
    for _ in &c.candidates {
        for m in PER_HYPOTHESIS_METRICS {
            let _ = write!(s, "<th>{m}</th>");
        }
    }
    s.push_str("</tr>");
    for (h, each) in &per {
        let _ = write!(
            s,
            "<tr><td>{}</td><td class=\"name\">{}</td><td>{}</td>",
            esc(&h.id),
            esc(h.name.as_deref().unwrap_or("")),
            h.documents
        );
        for k in each {
            for v in hypothesis_values(*k) {
                let _ = write!(s, "<td>{}</td>", fmt_num(v, 3));
            }
        }
        s.push_str("</tr>");
    }
    let _ = writeln!(
        s,
        "</table><p class=\"muted\">NLI acc, F1(C) and F1(E) only count the hypotheses whose gold \
         labels include both Entailment and Contradiction (– elsewhere). {}</p>\
         <p class=\"muted\">Made by hone.</p></body></html>",
        esc(&LATENCY_NOTE.replace('`', ""))
    );
    s
}
