//! Generation metrics: ROUGE-1, ROUGE-2, ROUGE-L and exact match.
//!
//! ROUGE-N (Lin 2004, section 2) counts the n-grams the prediction shares with the reference,
//! each at most as often as it occurs in both (clipped), as `rouge-score` does:
//! P = overlap / prediction n-grams, R = overlap / reference n-grams, F = 2PR / (P + R).
//!
//! ROUGE-L is the sentence-level LCS-based F-measure of Lin (2004), "ROUGE: A Package for
//! Automatic Evaluation of Summaries", section 3.1, with beta = 1, i.e. F1:
//! R = LCS(ref, hyp) / |ref|, P = LCS(ref, hyp) / |hyp|, F = 2PR / (P + R).
//! Tokens are those of Google's `rouge-score` default tokenizer without stemming: lowercase,
//! every character that is not alphanumeric becomes a space, split on whitespace. When either
//! side has no tokens, P, R and F are 0 (as `rouge-score` does). Corpus scores are means over
//! examples.
//!
//! Exact match compares after [`normalize_whitespace`] (trimmed, whitespace runs collapsed,
//! case-sensitive).

use serde::{Deserialize, Serialize};

use super::check_lengths;
use super::text::normalize_whitespace;
use crate::Result;

/// A ROUGE score of one prediction against one reference (or a mean over examples).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Rouge {
    /// Matches / prediction tokens (n-grams).
    pub precision: f64,
    /// Matches / reference tokens (n-grams).
    pub recall: f64,
    /// F-measure with beta = 1.
    pub f1: f64,
}

/// ROUGE-L's score (matches: the longest common subsequence).
pub type RougeL = Rouge;

impl Rouge {
    fn of(matches: usize, predicted: usize, reference: usize) -> Self {
        if matches == 0 || predicted == 0 || reference == 0 {
            return Rouge::default();
        }
        let precision = matches as f64 / predicted as f64;
        let recall = matches as f64 / reference as f64;
        Rouge {
            precision,
            recall,
            f1: 2.0 * precision * recall / (precision + recall),
        }
    }
}

/// ROUGE-N of `predicted` against `reference` (`n` >= 1), on [`rouge_tokens`].
pub fn rouge_n(predicted: &str, reference: &str, n: usize) -> Rouge {
    let grams = |s: &str| -> std::collections::HashMap<Vec<String>, usize> {
        let t = rouge_tokens(s);
        let mut m = std::collections::HashMap::new();
        for g in t.windows(n.max(1)) {
            *m.entry(g.to_vec()).or_insert(0) += 1;
        }
        m
    };
    let (p, r) = (grams(predicted), grams(reference));
    let matches = p
        .iter()
        .map(|(g, &c)| c.min(r.get(g).copied().unwrap_or(0)))
        .sum();
    Rouge::of(matches, p.values().sum(), r.values().sum())
}

/// The tokens ROUGE-L is computed on.
pub fn rouge_tokens(s: &str) -> Vec<String> {
    let cleaned: String = s
        .to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    cleaned.split_whitespace().map(str::to_string).collect()
}

fn lcs_len(a: &[String], b: &[String]) -> usize {
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = if x == y {
                prev[j] + 1
            } else {
                prev[j + 1].max(cur[j])
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// ROUGE-L (beta = 1) of `predicted` against `reference`; see the module documentation.
pub fn rouge_l(predicted: &str, reference: &str) -> RougeL {
    let p = rouge_tokens(predicted);
    let r = rouge_tokens(reference);
    Rouge::of(lcs_len(&r, &p), p.len(), r.len())
}

/// The result of [`generation`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerationReport {
    /// Examples scored.
    pub total: usize,
    /// Predictions equal to their reference after whitespace normalisation.
    pub exact_matches: usize,
    /// `exact_matches / total`.
    pub exact_match: f64,
    /// Mean per-example ROUGE-L precision, recall and F1.
    pub rouge_l: RougeL,
    /// Mean per-example ROUGE-1 (absent, so zero, in reports written before it existed).
    #[serde(default)]
    pub rouge_1: Rouge,
    /// Mean per-example ROUGE-2.
    #[serde(default)]
    pub rouge_2: Rouge,
}

/// Exact match and mean ROUGE-L over examples. Errors on empty input or lists of different
/// lengths.
pub fn generation(references: &[String], predicted: &[String]) -> Result<GenerationReport> {
    check_lengths("generation", references.len(), predicted.len())?;
    let n = references.len() as f64;
    let mut exact = 0usize;
    // Sums of (precision, recall, F1) for ROUGE-L, ROUGE-1 and ROUGE-2.
    let mut sums = [[0.0f64; 3]; 3];
    for (g, h) in references.iter().zip(predicted) {
        if normalize_whitespace(g) == normalize_whitespace(h) {
            exact += 1;
        }
        for (k, s) in [rouge_l(h, g), rouge_n(h, g, 1), rouge_n(h, g, 2)]
            .iter()
            .enumerate()
        {
            sums[k][0] += s.precision;
            sums[k][1] += s.recall;
            sums[k][2] += s.f1;
        }
    }
    let mean = |k: usize| Rouge {
        precision: sums[k][0] / n,
        recall: sums[k][1] / n,
        f1: sums[k][2] / n,
    };
    Ok(GenerationReport {
        total: references.len(),
        exact_matches: exact,
        exact_match: exact as f64 / n,
        rouge_l: mean(0),
        rouge_1: mean(1),
        rouge_2: mean(2),
    })
}
