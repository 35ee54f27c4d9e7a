//! Routing document review per check: a small reviewer's predictions, and where its confidence
//! in a check is low, a large reviewer's label for that check instead.
//!
//! - A query is one (document, check) of the small predictions; its confidence is the small
//!   prediction's largest label probability (of Entailment / Contradiction / NotMentioned), so
//!   thresholds lie in [1/3, 1].
//! - A routed check takes the large prediction of that check (label and probabilities); the
//!   others keep the small one.
//! - Accuracy is the NLI accuracy of `hone eval contractnli` ([`super::evaluate`]: binary
//!   Entailment / Contradiction over the mentioned documents, macro over hypotheses), computed
//!   on the merged predictions; evidence does not enter it and is left out of the merge.
//! - A cost unit is a document: a review reads every check of a document in one pass, so a
//!   document with any routed check pays the large reviewer's whole review.

use std::collections::{HashMap, HashSet};

use hone_data::contractnli::EvalDocument;

use super::evaluate::evaluate;
use super::predictions::{CheckPrediction, Prediction, Predictions};
use crate::error::{Error, Result};
use crate::route_curve::{self, RoutePoint, UnitCost};

/// The routing queries of two prediction files.
#[derive(Clone, Debug, PartialEq)]
pub struct ReviewQueries {
    /// (index into the small predictions' documents, check id) per query.
    pub checks: Vec<(usize, String)>,
    /// The small prediction's largest label probability, per query.
    pub confidence: Vec<f64>,
    /// The document (cost unit) of each query: an index into the small predictions' documents.
    pub unit: Vec<usize>,
    /// For each small document, the index of the same document in the large predictions.
    pub large_doc: Vec<usize>,
}

/// Pairs the checks of `small` with those of `large` (see the module documentation).
///
/// Errors (naming the file, line and field): a small check without probabilities; a document
/// or check of one file that the other lacks.
pub fn review_queries(small: &Predictions, large: &Predictions) -> Result<ReviewQueries> {
    let large_by_id: HashMap<&str, usize> = large
        .docs
        .iter()
        .enumerate()
        .map(|(i, d)| (d.doc_id.as_str(), i))
        .collect();
    let small_ids: HashSet<&str> = small.docs.iter().map(|d| d.doc_id.as_str()).collect();
    if let Some(d) = large
        .docs
        .iter()
        .find(|d| !small_ids.contains(d.doc_id.as_str()))
    {
        return Err(Error::Field {
            path: large.path.clone(),
            line: d.line,
            field: "doc_id".into(),
            msg: format!(
                "document `{}` is not in the small predictions {}: both must review the same documents",
                d.doc_id,
                small.path.display()
            ),
        });
    }
    let mut q = ReviewQueries {
        checks: Vec::new(),
        confidence: Vec::new(),
        unit: Vec::new(),
        large_doc: Vec::new(),
    };
    for (di, d) in small.docs.iter().enumerate() {
        let Some(&li) = large_by_id.get(d.doc_id.as_str()) else {
            return Err(Error::Field {
                path: small.path.clone(),
                line: d.line,
                field: "doc_id".into(),
                msg: format!(
                    "document `{}` is not in the large predictions {}: both must review the same documents",
                    d.doc_id,
                    large.path.display()
                ),
            });
        };
        q.large_doc.push(li);
        let ld = &large.docs[li];
        if let Some(id) = ld.checks.keys().find(|k| !d.checks.contains_key(*k)) {
            return Err(Error::Field {
                path: small.path.clone(),
                line: d.line,
                field: format!("checks.{id}"),
                msg: format!(
                    "document `{}` lacks check `{id}`, which the large predictions have",
                    d.doc_id
                ),
            });
        }
        for (id, c) in &d.checks {
            if !ld.checks.contains_key(id) {
                return Err(Error::Field {
                    path: large.path.clone(),
                    line: ld.line,
                    field: format!("checks.{id}"),
                    msg: format!(
                        "document `{}` lacks check `{id}`, which the small predictions have",
                        d.doc_id
                    ),
                });
            }
            let Some(p) = c.probs else {
                return Err(Error::Field {
                    path: small.path.clone(),
                    line: d.line,
                    field: format!("checks.{id}.probs"),
                    msg: "no label probabilities: the small arm's confidence in a check is its \
                          largest label probability"
                        .into(),
                });
            };
            q.checks.push((di, id.clone()));
            q.confidence
                .push(p.entailment.max(p.contradiction).max(p.not_mentioned));
            q.unit.push(di);
        }
    }
    Ok(q)
}

/// The small predictions with the routed checks taken from the large ones, evidence left out
/// (it does not enter the NLI accuracy).
pub fn merged(
    small: &Predictions,
    large: &Predictions,
    q: &ReviewQueries,
    routed: &[bool],
) -> Predictions {
    let strip = |c: &CheckPrediction| CheckPrediction {
        label: c.label,
        probs: c.probs,
        evidence: Vec::new(),
    };
    let mut docs: Vec<Prediction> = small
        .docs
        .iter()
        .map(|d| Prediction {
            doc_id: d.doc_id.clone(),
            line: d.line,
            checks: d
                .checks
                .iter()
                .map(|(k, c)| (k.clone(), strip(c)))
                .collect(),
        })
        .collect();
    for ((di, id), _) in q.checks.iter().zip(routed).filter(|(_, &r)| r) {
        let from = &large.docs[q.large_doc[*di]].checks[id];
        docs[*di].checks.insert(id.clone(), strip(from));
    }
    Predictions {
        path: small.path.clone(),
        docs,
    }
}

/// The routing curve of `small` → `large` over `gold`, one unit cost per small document (in
/// its order), and the NLI accuracy of each point.
///
/// Errors: those of [`review_queries`] and [`evaluate`] (documents not in the gold set, unknown
/// checks), gold documents with no hypothesis that has both Entailment and Contradiction (no
/// NLI accuracy), and those of [`route_curve::curve`].
pub fn review_curve(
    gold: &[EvalDocument],
    small: &Predictions,
    large: &Predictions,
    costs: &[UnitCost],
) -> Result<(ReviewQueries, Vec<RoutePoint>)> {
    let q = review_queries(small, large)?;
    // Both files scored as they are first: a bad document or check is reported against its own
    // file rather than a merge.
    evaluate(gold, large)?;
    let points = route_curve::curve(&q.confidence, &q.unit, costs, |routed| {
        evaluate(gold, &merged(small, large, &q, routed))?
            .nli_acc
            .ok_or_else(|| {
                Error::Invalid(
                    "the gold documents have no hypothesis with both Entailment and \
                     Contradiction labels, so there is no NLI accuracy to route for"
                        .into(),
                )
            })
    })?;
    Ok((q, points))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contractnli::ClassProbs;
    use hone_data::nda::DocLabel;
    use std::path::PathBuf;

    fn check(label: DocLabel, p: Option<[f64; 3]>) -> CheckPrediction {
        CheckPrediction {
            label,
            probs: p.map(|[e, c, n]| ClassProbs {
                entailment: e,
                contradiction: c,
                not_mentioned: n,
            }),
            evidence: Vec::new(),
        }
    }

    fn preds(path: &str, docs: &[(&str, &[(&str, CheckPrediction)])]) -> Predictions {
        Predictions {
            path: PathBuf::from(path),
            docs: docs
                .iter()
                .enumerate()
                .map(|(i, (id, cs))| Prediction {
                    doc_id: id.to_string(),
                    line: i + 1,
                    checks: cs.iter().map(|(k, c)| (k.to_string(), c.clone())).collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn confidence_is_the_largest_probability_and_routed_checks_take_the_large_label() {
        use DocLabel::*;
        let small = preds(
            "s.jsonl",
            &[
                (
                    "a",
                    &[
                        ("nda-1", check(Entailed, Some([0.5, 0.3, 0.2]))),
                        ("nda-2", check(NotMentioned, Some([0.1, 0.1, 0.8]))),
                    ],
                ),
                (
                    "b",
                    &[
                        ("nda-1", check(Contradicted, Some([0.2, 0.7, 0.1]))),
                        ("nda-2", check(Entailed, Some([0.4, 0.35, 0.25]))),
                    ],
                ),
            ],
        );
        let large = preds(
            "l.jsonl",
            &[
                (
                    "b",
                    &[
                        ("nda-1", check(Entailed, None)),
                        ("nda-2", check(Contradicted, None)),
                    ],
                ),
                (
                    "a",
                    &[
                        ("nda-1", check(Contradicted, None)),
                        ("nda-2", check(Entailed, None)),
                    ],
                ),
            ],
        );
        let q = review_queries(&small, &large).unwrap();
        assert_eq!(q.confidence, vec![0.5, 0.8, 0.7, 0.4]);
        assert_eq!(q.unit, vec![0, 0, 1, 1]);
        assert_eq!(q.large_doc, vec![1, 0]);
        let m = merged(&small, &large, &q, &[true, false, false, true]);
        assert_eq!(m.docs[0].checks["nda-1"].label, Contradicted);
        assert_eq!(m.docs[0].checks["nda-2"].label, NotMentioned);
        assert_eq!(m.docs[1].checks["nda-1"].label, Contradicted);
        assert_eq!(m.docs[1].checks["nda-2"].label, Contradicted);
        assert_eq!(m.docs[1].checks["nda-2"].probs, None);
    }

    #[test]
    fn missing_probabilities_documents_or_checks_name_the_file_and_field() {
        use DocLabel::*;
        let small = preds("s.jsonl", &[("a", &[("nda-1", check(Entailed, None))])]);
        let large = preds("l.jsonl", &[("a", &[("nda-1", check(Entailed, None))])]);
        let e = review_queries(&small, &large).unwrap_err().to_string();
        assert!(
            e.contains("s.jsonl:1") && e.contains("checks.nda-1.probs"),
            "{e}"
        );
        let small = preds(
            "s.jsonl",
            &[("a", &[("nda-1", check(Entailed, Some([1.0, 0.0, 0.0])))])],
        );
        let other = preds("l.jsonl", &[("z", &[("nda-1", check(Entailed, None))])]);
        let e = review_queries(&small, &other).unwrap_err().to_string();
        assert!(e.contains("l.jsonl:1") && e.contains("`z`"), "{e}");
        let fewer = preds("l.jsonl", &[("a", &[("nda-2", check(Entailed, None))])]);
        let e = review_queries(&small, &fewer).unwrap_err().to_string();
        assert!(e.contains("checks.nda-2"), "{e}");
    }
}
