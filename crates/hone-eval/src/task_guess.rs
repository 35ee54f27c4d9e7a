//! What kind of task a set of reference answers is, for commands given examples and no
//! evaluation config (`hone pilot`):
//!
//! - **extraction** when every answer is a JSON object; its fields are the keys at least half
//!   the answers have;
//! - **classification** when the answers are short (at most 5 words and 40 characters) and
//!   few distinct (at most a third of the answers, and at most 20, with at least 2); the
//!   labels are the distinct answers;
//! - **generation** otherwise.
//!
//! Multi-label answers are not guessed: give the task and its labels.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{TaskConfig, TaskKind};
use crate::metrics::fields_from_json;

/// The most labels a classification guess allows.
pub const MAX_LABELS: usize = 20;

/// The task the reference `answers` suggest (see the module documentation).
pub fn guess(answers: &[&str]) -> TaskConfig {
    let generation = TaskConfig {
        kind: TaskKind::Generation,
        labels: vec![],
        fields: vec![],
        system: None,
    };
    if answers.is_empty() {
        return generation;
    }
    let objects: Option<Vec<BTreeMap<String, String>>> = answers
        .iter()
        .map(|a| {
            let t = a.trim();
            // Only an answer that is itself an object, not prose with one inside.
            (t.starts_with('{') || t.starts_with("```"))
                .then(|| fields_from_json(t))
                .flatten()
        })
        .collect();
    if let Some(objs) = objects {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for o in &objs {
            for k in o.keys() {
                *counts.entry(k).or_default() += 1;
            }
        }
        let fields: Vec<String> = counts
            .iter()
            .filter(|(_, &c)| 2 * c >= objs.len())
            .map(|(k, _)| k.to_string())
            .collect();
        if !fields.is_empty() {
            return TaskConfig {
                kind: TaskKind::Extraction,
                labels: vec![],
                fields,
                system: None,
            };
        }
    }
    let short = answers.iter().all(|a| {
        let t = a.trim();
        !t.is_empty() && t.chars().count() <= 40 && t.split_whitespace().count() <= 5
    });
    let distinct: BTreeSet<&str> = answers.iter().map(|a| a.trim()).collect();
    if short
        && distinct.len() >= 2
        && distinct.len() <= MAX_LABELS
        && 3 * distinct.len() <= answers.len()
    {
        return TaskConfig {
            kind: TaskKind::Classification,
            labels: distinct.into_iter().map(str::to_string).collect(),
            fields: vec![],
            system: None,
        };
    }
    generation
}

/// The task in a few words, for reports: "classification into 6 labels".
pub fn describe(t: &TaskConfig) -> String {
    match t.kind {
        TaskKind::Classification => format!(
            "classification into {} labels ({})",
            t.labels.len(),
            t.labels.join(", ")
        ),
        TaskKind::Multilabel => {
            format!("multi-label classification over {} labels", t.labels.len())
        }
        TaskKind::Extraction => format!(
            "extraction of {} fields ({})",
            t.fields.len(),
            t.fields.join(", ")
        ),
        TaskKind::Generation => "generation (scored by ROUGE-L)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_repeated_answers_are_labels() {
        let a: Vec<&str> = [
            "yes", "no", "yes", "no ", "maybe", "yes", "no", "yes", "maybe",
        ]
        .to_vec();
        let t = guess(&a);
        assert_eq!(t.kind, TaskKind::Classification);
        assert_eq!(t.labels, vec!["maybe", "no", "yes"]);
    }

    #[test]
    fn json_objects_are_extraction_with_the_common_keys() {
        let a = [
            r#"{"name": "A", "date": "2020"}"#,
            r#"{"name": "B", "date": "2021", "rare": 1}"#,
            r#"{"name": "C"}"#,
        ];
        let t = guess(&a);
        assert_eq!(t.kind, TaskKind::Extraction);
        assert_eq!(t.fields, vec!["date", "name"]);
    }

    #[test]
    fn long_or_varied_answers_are_generation() {
        let long = ["The receiving party must return all documents within ten days."; 6];
        assert_eq!(guess(&long).kind, TaskKind::Generation);
        // Short but all different: not labels.
        let varied = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"];
        assert_eq!(guess(&varied).kind, TaskKind::Generation);
        // One label only is not a classification either.
        assert_eq!(guess(&["ok"; 9]).kind, TaskKind::Generation);
        // Prose that merely contains an object is not extraction.
        let prose = ["Here it is: {\"a\": 1} and more words follow here"; 4];
        assert_eq!(guess(&prose).kind, TaskKind::Generation);
        assert_eq!(guess(&[]).kind, TaskKind::Generation);
    }
}
