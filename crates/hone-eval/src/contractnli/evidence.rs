//! Predicted evidence against gold spans: the half-coverage rule, each span's score, and
//! average precision.

use serde::{Deserialize, Serialize};

/// A predicted evidence range: `[start, end)` character offsets into the document text.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvidenceRange {
    /// First character (0-based, counted in Unicode scalar values like ContractNLI's offsets).
    pub start: usize,
    /// One past the last character.
    pub end: usize,
    /// Confidence; higher ranks first.
    pub score: f64,
}

/// Whether the range `[start, end)` covers `span`: it overlaps at least half of the span's
/// characters. An empty span is never covered.
pub fn covers(start: usize, end: usize, span: [usize; 2]) -> bool {
    let len = span[1].saturating_sub(span[0]);
    let overlap = end.min(span[1]).saturating_sub(start.max(span[0]));
    len > 0 && 2 * overlap >= len
}

/// Maps predicted ranges to the document's spans: each span gets the best score among the ranges
/// that [`covers`] it, or `None` when no range does.
pub fn span_scores(spans: &[[usize; 2]], evidence: &[EvidenceRange]) -> Vec<Option<f64>> {
    spans
        .iter()
        .map(|&span| {
            evidence
                .iter()
                .filter(|r| covers(r.start, r.end, span))
                .map(|r| r.score)
                .reduce(f64::max)
        })
        .collect()
}

/// Average precision of a ranking: `scores[i]` is item `i`'s score (`None`: not retrieved) and
/// `relevant[i]` whether it is gold. Computed as scikit-learn's `average_precision_score` over
/// the retrieved items, Σ (R_k − R_{k−1}) P_k over the distinct scores from high to low (tied
/// items enter together), with recall over all relevant items, retrieved or not. `None` when no
/// item is relevant (undefined) or the lengths differ.
pub fn average_precision(scores: &[Option<f64>], relevant: &[bool]) -> Option<f64> {
    if scores.len() != relevant.len() {
        return None;
    }
    let total = relevant.iter().filter(|&&r| r).count();
    if total == 0 {
        return None;
    }
    let mut ranked: Vec<(f64, bool)> = scores
        .iter()
        .zip(relevant)
        .filter_map(|(s, &r)| s.map(|s| (s, r)))
        .collect();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut ap, mut tp, mut seen, mut prev_recall) = (0.0, 0usize, 0usize, 0.0);
    let mut i = 0;
    while i < ranked.len() {
        let score = ranked[i].0;
        while i < ranked.len() && ranked[i].0 == score {
            tp += ranked[i].1 as usize;
            seen += 1;
            i += 1;
        }
        let recall = tp as f64 / total as f64;
        ap += (recall - prev_recall) * (tp as f64 / seen as f64);
        prev_recall = recall;
    }
    Some(ap)
}
