//! Scoring predictions against gold documents: the per-hypothesis and overall metrics of the
//! ContractNLI paper (see the [module documentation](super)).

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use hone_data::contractnli::{gold_problem, EvalDocument};
use hone_data::nda::{self, DocLabel};
use serde::{Deserialize, Serialize};

use super::evidence::{average_precision, span_scores};
use super::gold::read_gold;
use super::predictions::{read_predictions, CheckPrediction, Prediction, Predictions};
use crate::metrics::mean_defined;
use crate::{Error, Result};

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
