//! One number per answer, in `[0, 1]`: what paired comparisons (the pilot's confidence
//! interval) and routing curves (which answer to keep per query) need, where the task metrics
//! only give totals.
//!
//! - classification: 1 when the parsed label equals the reference label, else 0 (their mean is
//!   the accuracy);
//! - multilabel: 1 when the parsed label set equals the reference set (mean: exact-set
//!   accuracy);
//! - extraction: the share of the reference's fields whose predicted value matches exactly
//!   after whitespace normalisation (mean: exact match averaged per example, which equals the
//!   report's micro exact match when every example has the same fields);
//! - generation: ROUGE-L F1 (mean: the report's ROUGE-L F1).
//!
//! An unparseable answer scores 0. A reference that does not parse is an error naming the
//! example, as in [`crate::task::score`].

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{TaskConfig, TaskKind};
use crate::error::{Error, Result};
use crate::metrics::{self, parse_label, parse_labels};

/// The name of the per-answer score of a task kind, as reports print it.
pub fn name(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::Classification => "accuracy",
        TaskKind::Multilabel => "exact-set accuracy",
        TaskKind::Extraction => "field exact match",
        TaskKind::Generation => "ROUGE-L F1",
    }
}

/// The score of each output against its reference (see the module documentation).
pub fn item_scores(
    task: &TaskConfig,
    ids: &[String],
    references: &[String],
    outputs: &[String],
) -> Result<Vec<f64>> {
    if references.len() != outputs.len() || ids.len() != references.len() {
        return Err(Error::Invalid(format!(
            "item scores: {} ids, {} references and {} outputs",
            ids.len(),
            references.len(),
            outputs.len()
        )));
    }
    let bad_ref = |i: usize, what: &str| {
        Error::Invalid(format!(
            "example `{}`: its reference answer is not {what}: {:?}",
            ids[i], references[i]
        ))
    };
    let mut out = Vec::with_capacity(outputs.len());
    for (i, (r, o)) in references.iter().zip(outputs).enumerate() {
        let s = match task.kind {
            TaskKind::Classification => {
                let g =
                    parse_label(r, &task.labels).ok_or_else(|| bad_ref(i, "one of the labels"))?;
                f64::from(parse_label(o, &task.labels).as_ref() == Some(&g))
            }
            TaskKind::Multilabel => {
                let g: BTreeSet<String> = parse_labels(r, &task.labels)
                    .ok_or_else(|| bad_ref(i, "a list of the labels"))?
                    .into_iter()
                    .collect();
                let p = parse_labels(o, &task.labels).map(|v| v.into_iter().collect());
                f64::from(p.as_ref() == Some(&g))
            }
            TaskKind::Extraction => {
                let keep = |m: BTreeMap<String, String>| -> BTreeMap<String, String> {
                    m.into_iter()
                        .filter(|(k, _)| task.fields.iter().any(|f| f == k))
                        .collect()
                };
                let g = metrics::fields_from_json(r)
                    .map(keep)
                    .filter(|m| !m.is_empty())
                    .ok_or_else(|| bad_ref(i, "a JSON object with the task's fields"))?;
                let p = metrics::fields_from_json(o).unwrap_or_default();
                let hits = g
                    .iter()
                    .filter(|(k, gv)| {
                        p.get(*k).is_some_and(|pv| {
                            metrics::normalize_whitespace(pv) == metrics::normalize_whitespace(gv)
                        })
                    })
                    .count();
                hits as f64 / g.len() as f64
            }
            TaskKind::Generation => metrics::rouge_l(o, r).f1,
        };
        out.push(s);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task;

    fn task(kind: TaskKind, labels: &[&str], fields: &[&str]) -> TaskConfig {
        TaskConfig {
            kind,
            labels: labels.iter().map(|s| s.to_string()).collect(),
            fields: fields.iter().map(|s| s.to_string()).collect(),
            system: None,
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn classification_scores_average_to_the_accuracy() {
        let t = task(TaskKind::Classification, &["yes", "no"], &[]);
        let ids = strings(&["a", "b", "c", "d"]);
        let refs = strings(&["yes", "no", "yes", "no"]);
        let outs = strings(&["yes", "yes", "{\"label\": \"yes\"}", "maybe"]);
        let s = item_scores(&t, &ids, &refs, &outs).unwrap();
        assert_eq!(s, vec![1.0, 0.0, 1.0, 0.0]);
        let report = task::score(&t, &ids, &refs, &outs).unwrap();
        let acc = report.headline()[0].1.unwrap();
        assert!((s.iter().sum::<f64>() / 4.0 - acc).abs() < 1e-12);
    }

    #[test]
    fn multilabel_needs_the_same_set_in_any_order() {
        let t = task(TaskKind::Multilabel, &["x", "y", "z"], &[]);
        let ids = strings(&["a", "b", "c"]);
        let refs = strings(&["x, y", "z", "x"]);
        let outs = strings(&["[\"y\", \"x\"]", "z, x", ""]);
        assert_eq!(
            item_scores(&t, &ids, &refs, &outs).unwrap(),
            vec![1.0, 0.0, 0.0]
        );
    }

    #[test]
    fn extraction_scores_the_share_of_fields_matched() {
        let t = task(TaskKind::Extraction, &[], &["name", "date"]);
        let ids = strings(&["a", "b"]);
        let refs = strings(&[
            r#"{"name": "Acme Ltd", "date": "2024-01-01"}"#,
            r#"{"name": "Beta"}"#,
        ]);
        let outs = strings(&[r#"{"name": "Acme  Ltd", "date": "2023"}"#, "no json"]);
        assert_eq!(item_scores(&t, &ids, &refs, &outs).unwrap(), vec![0.5, 0.0]);
    }

    #[test]
    fn generation_scores_average_to_the_reports_rouge_l() {
        let t = task(TaskKind::Generation, &[], &[]);
        let ids = strings(&["a", "b"]);
        let refs = strings(&["the cat sat on the mat", "a b c d"]);
        let outs = strings(&["the cat sat", "x y"]);
        let s = item_scores(&t, &ids, &refs, &outs).unwrap();
        assert!((s[0] - 2.0 * 1.0 * 0.5 / 1.5).abs() < 1e-12, "{s:?}");
        assert_eq!(s[1], 0.0);
        let report = task::score(&t, &ids, &refs, &outs).unwrap();
        let rl = report.headline()[0].1.unwrap();
        assert!((s.iter().sum::<f64>() / 2.0 - rl).abs() < 1e-12);
    }

    #[test]
    fn a_bad_reference_is_named_and_lengths_must_agree() {
        let t = task(TaskKind::Classification, &["yes", "no"], &[]);
        let e = item_scores(
            &t,
            &strings(&["q7"]),
            &strings(&["perhaps"]),
            &strings(&["yes"]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("q7") && e.contains("perhaps"), "{e}");
        assert!(item_scores(&t, &strings(&["a"]), &strings(&["yes"]), &[]).is_err());
    }
}
