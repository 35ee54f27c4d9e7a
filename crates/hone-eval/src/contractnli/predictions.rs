//! Reading `hone review` predictions (JSONL, one document a line) and their timings.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use hone_data::nda::DocLabel;
use serde::{Deserialize, Serialize};

use super::evidence::EvidenceRange;
use crate::{Error, Result};

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

/// How far from 1 a check's class probabilities may sum: wide enough for three values a
/// writer rounded to two decimals (0.33 x 3 = 0.99, at most 0.015 off), far below a real
/// mistake (a sum of 1.5, or one class left out).
pub const PROB_SUM_TOLERANCE: f64 = 0.02;

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
            // A distribution over the three classes, or the binary decision compares numbers
            // that mean nothing.
            let sum = p.entailment + p.contradiction + p.not_mentioned;
            if (sum - 1.0).abs() > PROB_SUM_TOLERANCE {
                return Err((
                    "probs",
                    format!("the probabilities sum to {sum}, not 1 (within {PROB_SUM_TOLERANCE})"),
                ));
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
/// a probability outside [0, 1], probabilities that do not sum to 1 (within
/// [`PROB_SUM_TOLERANCE`]), a file without a single prediction, a range that ends before it starts, a document predicted twice,
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
    if docs.is_empty() {
        return Err(Error::Format {
            path: path.to_path_buf(),
            msg: "no predictions (the file is empty)".into(),
        });
    }
    let preds = Predictions {
        path: path.to_path_buf(),
        docs,
    };
    Ok((preds, timings))
}
