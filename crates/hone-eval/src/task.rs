//! Scoring a candidate's outputs for the configured task type, with the few numbers shown in
//! the comparison table.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::config::{TaskConfig, TaskKind};
use crate::error::{Error, Result};
use crate::metrics::{self, parse_label, parse_labels};

/// The metrics of one candidate.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum TaskReport {
    Classification(metrics::ClassificationReport),
    Multilabel(metrics::MultiLabelReport),
    Extraction(metrics::ExtractionReport),
    Generation(metrics::GenerationReport),
}

/// Whether an output parses as an answer of the task (generation always does).
pub fn parses(task: &TaskConfig, output: &str) -> bool {
    match task.kind {
        TaskKind::Classification => parse_label(output, &task.labels).is_some(),
        TaskKind::Multilabel => parse_labels(output, &task.labels).is_some(),
        TaskKind::Extraction => metrics::fields_from_json(output).is_some(),
        TaskKind::Generation => true,
    }
}

/// Scores `outputs` against `references` (the reference answers of the evaluation file, in the
/// same structured format the model is asked for). A reference that does not parse is an error
/// naming the example, since it is the data that is wrong, not the candidate.
pub fn score(
    task: &TaskConfig,
    ids: &[String],
    references: &[String],
    outputs: &[String],
) -> Result<TaskReport> {
    let bad_ref = |i: usize, what: &str| {
        Error::Invalid(format!(
            "example `{}`: its reference answer is not {what}: {:?}",
            ids.get(i).map(String::as_str).unwrap_or("?"),
            references[i]
        ))
    };
    Ok(match task.kind {
        TaskKind::Classification => {
            let gold = references
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    parse_label(r, &task.labels).ok_or_else(|| bad_ref(i, "one of the labels"))
                })
                .collect::<Result<Vec<_>>>()?;
            let pred: Vec<Option<String>> = outputs
                .iter()
                .map(|o| parse_label(o, &task.labels))
                .collect();
            TaskReport::Classification(metrics::classification(&task.labels, &gold, &pred)?)
        }
        TaskKind::Multilabel => {
            let gold = references
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    parse_labels(r, &task.labels).ok_or_else(|| bad_ref(i, "a list of the labels"))
                })
                .collect::<Result<Vec<_>>>()?;
            let pred: Vec<Option<Vec<String>>> = outputs
                .iter()
                .map(|o| parse_labels(o, &task.labels))
                .collect();
            TaskReport::Multilabel(metrics::multilabel(&task.labels, &gold, &pred)?)
        }
        TaskKind::Extraction => {
            let keep = |m: BTreeMap<String, String>| -> BTreeMap<String, String> {
                m.into_iter()
                    .filter(|(k, _)| task.fields.iter().any(|f| f == k))
                    .collect()
            };
            let gold = references
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    metrics::fields_from_json(r)
                        .map(keep)
                        .filter(|m| !m.is_empty())
                        .ok_or_else(|| bad_ref(i, "a JSON object with the task's fields"))
                })
                .collect::<Result<Vec<_>>>()?;
            let pred: Vec<Option<BTreeMap<String, String>>> = outputs
                .iter()
                .map(|o| metrics::fields_from_json(o).map(keep))
                .collect();
            TaskReport::Extraction(metrics::extraction(&gold, &pred)?)
        }
        TaskKind::Generation => TaskReport::Generation(metrics::generation(references, outputs)?),
    })
}

impl TaskReport {
    /// The headline numbers, (name, value), in display order; `None` when undefined.
    pub fn headline(&self) -> Vec<(&'static str, Option<f64>)> {
        match self {
            TaskReport::Classification(r) => vec![
                ("accuracy", Some(r.accuracy)),
                ("macro F1", r.macro_.f1),
                ("micro F1", r.micro.f1),
                (
                    "unparseable",
                    Some(r.unparseable as f64 / r.total.max(1) as f64),
                ),
            ],
            TaskReport::Multilabel(r) => vec![
                ("exact-set accuracy", Some(r.exact_set_accuracy)),
                ("macro F1", r.macro_.f1),
                ("micro F1", r.micro.f1),
                (
                    "unparseable",
                    Some(r.unparseable as f64 / r.total.max(1) as f64),
                ),
            ],
            TaskReport::Extraction(r) => vec![
                ("exact match", Some(r.exact_match)),
                ("token F1", Some(r.token_f1)),
                (
                    "unparseable",
                    Some(r.unparseable as f64 / r.total.max(1) as f64),
                ),
            ],
            TaskReport::Generation(r) => vec![
                ("ROUGE-L F1", Some(r.rouge_l.f1)),
                ("ROUGE-1 F1", Some(r.rouge_1.f1)),
                ("ROUGE-2 F1", Some(r.rouge_2.f1)),
                ("exact match", Some(r.exact_match)),
            ],
        }
    }

    /// Per-class (or per-field) scores for the bar chart: (class, F1).
    pub fn per_class_f1(&self) -> Vec<(String, Option<f64>)> {
        match self {
            TaskReport::Classification(r) => r
                .per_class
                .iter()
                .map(|c| (c.label.clone(), c.f1))
                .collect(),
            TaskReport::Multilabel(r) => r
                .per_label
                .iter()
                .map(|c| (c.label.clone(), c.f1))
                .collect(),
            TaskReport::Extraction(r) => r
                .fields
                .iter()
                .map(|f| (f.field.clone(), Some(f.token_f1)))
                .collect(),
            TaskReport::Generation(_) => Vec::new(),
        }
    }

    /// How many answers could not be parsed.
    pub fn unparseable(&self) -> usize {
        match self {
            TaskReport::Classification(r) => r.unparseable,
            TaskReport::Multilabel(r) => r.unparseable,
            TaskReport::Extraction(r) => r.unparseable,
            TaskReport::Generation(_) => 0,
        }
    }
}
