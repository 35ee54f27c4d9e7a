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
//! - **Evidence mAP** (`evidence_map`): for each hypothesis and each document whose gold label is
//!   not NotMentioned and that has gold evidence (the official code only scores evidence there;
//!   documents without gold evidence have no average precision and are skipped), the average
//!   precision of the document's spans ranked by predicted score; averaged over those documents,
//!   then over hypotheses (the official `macro_label_macro_doc` span `map`).
//!   `evidence_map_micro_doc` pools the spans of all of a hypothesis's documents into one
//!   ranking before averaging over hypotheses (the official `macro_label_micro_doc` span `map`).
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
/// `{start, end, score}`); other keys are ignored. Errors name the file and line: malformed JSON,
/// missing fields, a label or probability key outside Entailment / Contradiction / NotMentioned,
/// a probability outside [0, 1], a range that ends before it starts, a document predicted twice.
pub fn read_predictions(path: &Path) -> Result<Predictions> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut docs: Vec<Prediction> = Vec::new();
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
        docs.push(Prediction {
            doc_id,
            line,
            checks,
        });
    }
    Ok(Predictions {
        path: path.to_path_buf(),
        docs,
    })
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
    /// Mean per-document average precision; `None` when no document has gold evidence.
    pub evidence_map: Option<f64>,
    /// Average precision of the pooled ranking; `None` when no document has gold evidence.
    pub evidence_map_micro_doc: Option<f64>,
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
    /// Evidence mAP: per-document AP, macro over documents then hypotheses.
    pub evidence_map: Option<f64>,
    /// Evidence mAP with each hypothesis's documents pooled, macro over hypotheses.
    pub evidence_map_micro_doc: Option<f64>,
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
            evidence_map: mean_defined(doc_aps.iter().map(|&a| Some(a))),
            evidence_map_micro_doc: average_precision(&pooled_scores, &pooled_rel),
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
        evidence_map: avg(|h| h.evidence_map),
        evidence_map_micro_doc: avg(|h| h.evidence_map_micro_doc),
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
