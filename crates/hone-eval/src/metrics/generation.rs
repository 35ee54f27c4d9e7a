//! Generation metrics: ROUGE-L and exact match.
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

/// ROUGE-L of one prediction against one reference.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct RougeL {
    /// LCS / prediction tokens.
    pub precision: f64,
    /// LCS / reference tokens.
    pub recall: f64,
    /// F-measure with beta = 1.
    pub f1: f64,
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
    let zero = RougeL {
        precision: 0.0,
        recall: 0.0,
        f1: 0.0,
    };
    if p.is_empty() || r.is_empty() {
        return zero;
    }
    let lcs = lcs_len(&r, &p);
    if lcs == 0 {
        return zero;
    }
    let precision = lcs as f64 / p.len() as f64;
    let recall = lcs as f64 / r.len() as f64;
    RougeL {
        precision,
        recall,
        f1: 2.0 * precision * recall / (precision + recall),
    }
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
}

/// Exact match and mean ROUGE-L over examples. Errors on empty input or lists of different
/// lengths.
pub fn generation(references: &[String], predicted: &[String]) -> Result<GenerationReport> {
    check_lengths("generation", references.len(), predicted.len())?;
    let n = references.len() as f64;
    let (mut exact, mut p, mut r, mut f) = (0usize, 0.0, 0.0, 0.0);
    for (g, h) in references.iter().zip(predicted) {
        if normalize_whitespace(g) == normalize_whitespace(h) {
            exact += 1;
        }
        let s = rouge_l(h, g);
        p += s.precision;
        r += s.recall;
        f += s.f1;
    }
    Ok(GenerationReport {
        total: references.len(),
        exact_matches: exact,
        exact_match: exact as f64 / n,
        rouge_l: RougeL {
            precision: p / n,
            recall: r / n,
            f1: f / n,
        },
    })
}
