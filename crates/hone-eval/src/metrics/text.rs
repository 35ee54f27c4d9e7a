//! Text normalisation shared by the metrics.

use std::collections::HashMap;

/// Trims and collapses every run of whitespace into one space; case is kept.
///
/// This is the normalisation behind every "exact match" in this module.
pub fn normalize_whitespace(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// SQuAD's answer normalisation: lowercase, remove ASCII punctuation (Python's
/// `string.punctuation`), drop the articles `a`, `an` and `the`, collapse whitespace.
pub fn squad_normalize(s: &str) -> String {
    squad_tokens(s).join(" ")
}

/// The tokens of [`squad_normalize`]: the normalised text split on whitespace.
pub fn squad_tokens(s: &str) -> Vec<String> {
    let lowered: String = s
        .to_lowercase()
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    lowered
        .split_whitespace()
        .filter(|t| !matches!(*t, "a" | "an" | "the"))
        .map(str::to_string)
        .collect()
}

/// SQuAD's token-level F1 between a prediction and a gold answer, both normalised with
/// [`squad_normalize`]: overlap counted as a multiset intersection, precision over the prediction's
/// tokens, recall over the gold's. When either side has no tokens, the F1 is 1.0 if both are
/// empty and 0.0 otherwise (SQuAD 2.0's convention).
pub fn token_f1(predicted: &str, gold: &str) -> f64 {
    let p = squad_tokens(predicted);
    let g = squad_tokens(gold);
    if p.is_empty() || g.is_empty() {
        return if p.is_empty() && g.is_empty() {
            1.0
        } else {
            0.0
        };
    }
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for t in &g {
        *counts.entry(t.as_str()).or_default() += 1;
    }
    let mut same = 0usize;
    for t in &p {
        if let Some(c) = counts.get_mut(t.as_str()) {
            if *c > 0 {
                *c -= 1;
                same += 1;
            }
        }
    }
    if same == 0 {
        return 0.0;
    }
    let precision = same as f64 / p.len() as f64;
    let recall = same as f64 / g.len() as f64;
    2.0 * precision * recall / (precision + recall)
}
