//! Field extraction metrics: per-field exact match and SQuAD token F1.
//!
//! Each gold example is a map from field name to value. For every gold field of every example:
//!
//! - exact match is 1 when the predicted value equals the gold value after
//!   [`normalize_whitespace`] (trimmed, whitespace runs collapsed; case-sensitive), else 0;
//! - token F1 is SQuAD's ([`token_f1`]: lowercase, ASCII punctuation and articles removed,
//!   whitespace tokens, multiset overlap).
//!
//! A field the prediction lacks scores 0 on both and is counted in `missing`; an unparseable
//! prediction (`None`) lacks every field. Predicted fields that are not in the gold example are
//! counted in `extra` and otherwise ignored. Per-field scores average over the examples whose
//! gold has that field; the overall scores average over every gold (example, field) pair
//! (micro), and the macro scores average the per-field scores.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::parse::json_value;
use super::text::{normalize_whitespace, token_f1};
use super::{check_lengths, mean_defined};
use crate::{Error, Result};

/// Scores for one field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldMetrics {
    /// The field name.
    pub field: String,
    /// Gold examples that have this field.
    pub count: usize,
    /// Of those, predictions without the field (unparseable ones included).
    pub missing: usize,
    /// Mean exact match over `count` examples.
    pub exact_match: f64,
    /// Mean SQuAD token F1 over `count` examples.
    pub token_f1: f64,
}

/// The result of [`extraction`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExtractionReport {
    /// Examples scored.
    pub total: usize,
    /// Predictions that could not be parsed (every field missing).
    pub unparseable: usize,
    /// Gold (example, field) pairs scored.
    pub gold_fields: usize,
    /// Gold (example, field) pairs the prediction lacks.
    pub missing: usize,
    /// Predicted fields that are not in the gold example (ignored).
    pub extra: usize,
    /// Mean exact match over all gold (example, field) pairs.
    pub exact_match: f64,
    /// Mean token F1 over all gold (example, field) pairs.
    pub token_f1: f64,
    /// Mean of the per-field exact matches.
    pub macro_exact_match: f64,
    /// Mean of the per-field token F1s.
    pub macro_token_f1: f64,
    /// Per field, sorted by name.
    pub fields: Vec<FieldMetrics>,
}

/// Scores predicted fields against gold fields (see the module documentation).
///
/// Errors on empty input, lists of different lengths, or gold examples without any field.
pub fn extraction(
    gold: &[BTreeMap<String, String>],
    predicted: &[Option<BTreeMap<String, String>>],
) -> Result<ExtractionReport> {
    check_lengths("extraction", gold.len(), predicted.len())?;
    // field -> (count, missing, exact sum, f1 sum)
    let mut acc: BTreeMap<&str, (usize, usize, f64, f64)> = BTreeMap::new();
    let (mut unparseable, mut extra) = (0usize, 0usize);
    let empty = BTreeMap::new();
    for (g, p) in gold.iter().zip(predicted) {
        if p.is_none() {
            unparseable += 1;
        }
        let p = p.as_ref().unwrap_or(&empty);
        extra += p.keys().filter(|k| !g.contains_key(*k)).count();
        for (field, gv) in g {
            let e = acc.entry(field).or_default();
            e.0 += 1;
            match p.get(field) {
                None => e.1 += 1,
                Some(pv) => {
                    if normalize_whitespace(pv) == normalize_whitespace(gv) {
                        e.2 += 1.0;
                    }
                    e.3 += token_f1(pv, gv);
                }
            }
        }
    }
    if acc.is_empty() {
        return Err(Error::Invalid(
            "extraction: the gold examples have no fields".into(),
        ));
    }
    let fields: Vec<FieldMetrics> = acc
        .iter()
        .map(|(f, &(count, missing, em, f1))| FieldMetrics {
            field: f.to_string(),
            count,
            missing,
            exact_match: em / count as f64,
            token_f1: f1 / count as f64,
        })
        .collect();
    let gold_fields: usize = acc.values().map(|v| v.0).sum();
    let em_sum: f64 = acc.values().map(|v| v.2).sum();
    let f1_sum: f64 = acc.values().map(|v| v.3).sum();
    Ok(ExtractionReport {
        total: gold.len(),
        unparseable,
        gold_fields,
        missing: acc.values().map(|v| v.1).sum(),
        extra,
        exact_match: em_sum / gold_fields as f64,
        token_f1: f1_sum / gold_fields as f64,
        macro_exact_match: mean_defined(fields.iter().map(|f| Some(f.exact_match))).unwrap_or(0.0),
        macro_token_f1: mean_defined(fields.iter().map(|f| Some(f.token_f1))).unwrap_or(0.0),
        fields,
    })
}

/// Fields from a model's JSON answer: the first JSON object in `output` (a fenced code block or
/// prose around it is allowed). String values are kept as they are; numbers and booleans become
/// their JSON text; arrays and objects their compact JSON; `null` values are left out (a missing
/// field). `None` when no JSON object can be found.
pub fn fields_from_json(output: &str) -> Option<BTreeMap<String, String>> {
    let serde_json::Value::Object(map) = json_value(output)? else {
        return None;
    };
    Some(
        map.into_iter()
            .filter_map(|(k, v)| match v {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some((k, s)),
                other => Some((k, other.to_string())),
            })
            .collect(),
    )
}
