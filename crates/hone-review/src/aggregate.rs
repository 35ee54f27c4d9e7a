//! From span labels to document decisions.
//!
//! Each span comes with a distribution over the 35 label tokens (none, entails check *c*,
//! contradicts check *c*), read off the model's next-token probabilities at the span's slot
//! and renormalised over those tokens. For check *c*:
//!
//! - a span's evidence probability is p = P(entails c) + P(contradicts c); its **evidence
//!   score** is that probability given that the contract addresses c at all,
//!   p / (1 - Π(1 - p_j)) over the document's spans (the spans taken as independent). Within a
//!   document this is p scaled by one constant, so the ranking is p's; across documents it
//!   makes the scores comparable: the best clause of a contract that addresses c scores high
//!   even when the model is unsure *whether* c is addressed (that doubt is P(mentioned),
//!   below). ContractNLI scores evidence only where a check is mentioned, pooled over
//!   documents, which is exactly this conditional ranking;
//! - P(mentioned) is the noisy-or of the top [`TOP_K`] evidence probabilities (one clear clause is
//!   enough; several weak ones add up);
//! - P(entailment | mentioned) is the share of the entailment mass among those top spans;
//! - both are calibrated by a power map that sends the validation-tuned thresholds to 1/2
//!   ([`Calibration`]), so the label is simply the most probable class.

use std::collections::BTreeMap;

use hone_data::nda::{DocLabel, CHECKS};
use hone_data::review_layout::{Label, LABELS};
use serde::{Deserialize, Serialize};

use crate::types::{CheckResult, Evidence, Probs};

/// Spans whose evidence probabilities are combined into P(mentioned).
pub const TOP_K: usize = 3;
/// Evidence spans listed per check by default (best first; 0 lists every span) and the
/// lowest score a capped list shows.
pub const MAX_EVIDENCE: usize = 20;
pub const MIN_EVIDENCE_SCORE: f64 = 1e-4;

/// Thresholds tuned on validation documents (`review.json` beside the adapter).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Raw P(mentioned) at which a check counts as mentioned.
    pub mentioned: f64,
    /// Raw P(entailment | mentioned) above which a mentioned check is entailed.
    pub entailment: f64,
}

impl Default for Calibration {
    fn default() -> Self {
        Self {
            mentioned: 0.5,
            entailment: 0.5,
        }
    }
}

/// `p^g` with `g` chosen so that `t` maps to 1/2: monotone, 0 and 1 fixed.
fn toward_half(p: f64, t: f64) -> f64 {
    let t = t.clamp(1e-6, 1.0 - 1e-6);
    let g = 0.5f64.ln() / t.ln();
    p.clamp(0.0, 1.0).powf(g)
}

/// The raw (uncalibrated) scores of one check: P(mentioned), P(entailment | mentioned).
pub fn raw_scores(span_probs: &[[f32; LABELS]], check: usize) -> (f64, f64) {
    let e = Label::Entails(check).index();
    let c = Label::Contradicts(check).index();
    let mut scored: Vec<(f64, f64, f64)> = span_probs
        .iter()
        .map(|p| {
            let (pe, pc) = (p[e] as f64, p[c] as f64);
            (pe + pc, pe, pc)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let top = &scored[..scored.len().min(TOP_K)];
    let mentioned = 1.0 - top.iter().map(|s| 1.0 - s.0).product::<f64>();
    let (se, sc) = top.iter().fold((0.0, 0.0), |(a, b), s| (a + s.1, b + s.2));
    let ent = if se + sc > 0.0 { se / (se + sc) } else { 0.5 };
    (mentioned, ent)
}

/// Calibrated class probabilities from raw scores.
pub fn probs(mentioned: f64, ent: f64, cal: &Calibration) -> Probs {
    let m = toward_half(mentioned, cal.mentioned);
    let r = toward_half(ent, cal.entailment);
    Probs {
        entailment: m * r,
        contradiction: m * (1.0 - r),
        not_mentioned: 1.0 - m,
    }
}

/// The most probable class (ties go to NotMentioned, then Entailment).
pub fn label_of(p: &Probs) -> DocLabel {
    if p.not_mentioned >= p.entailment && p.not_mentioned >= p.contradiction {
        DocLabel::NotMentioned
    } else if p.entailment >= p.contradiction {
        DocLabel::Entailed
    } else {
        DocLabel::Contradicted
    }
}

/// Each span's evidence score for `check`: its evidence probability given that the document
/// addresses the check (see the module documentation). All zero when no span has any mass.
pub fn evidence_scores(span_probs: &[[f32; LABELS]], check: usize) -> Vec<f64> {
    let e = Label::Entails(check).index();
    let c = Label::Contradicts(check).index();
    let p: Vec<f64> = span_probs
        .iter()
        .map(|q| (q[e] as f64 + q[c] as f64).clamp(0.0, 1.0))
        .collect();
    // P(some span is evidence) = 1 - Π(1 - p), in logs so that many small p keep precision.
    let log_none: f64 = p.iter().map(|&x| (-x).ln_1p()).sum();
    let any = -log_none.exp_m1();
    if any > 0.0 && any.is_finite() {
        p.iter().map(|&x| (x / any).min(1.0)).collect()
    } else {
        vec![0.0; p.len()]
    }
}

/// Decisions for all 17 checks. `spans` are `[start, end)` character offsets into `text`,
/// parallel to `span_probs`. Each check lists its `max_evidence` best evidence spans scoring
/// at least [`MIN_EVIDENCE_SCORE`] (0: every span, the full ranking that evidence mAP reads).
pub fn decide(
    span_probs: &[[f32; LABELS]],
    spans: &[[usize; 2]],
    text: &str,
    cal: &Calibration,
    max_evidence: usize,
) -> BTreeMap<String, CheckResult> {
    let offs = hone_data::spans::CharOffsets::new(text);
    let mut out = BTreeMap::new();
    for (ci, check) in CHECKS.iter().enumerate() {
        let (m, r) = raw_scores(span_probs, ci);
        let p = probs(m, r, cal);
        let mut ev: Vec<(usize, f64)> = evidence_scores(span_probs, ci)
            .into_iter()
            .enumerate()
            .filter(|&(_, s)| s >= MIN_EVIDENCE_SCORE || (max_evidence == 0 && s > 0.0))
            .collect();
        ev.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        if max_evidence > 0 {
            ev.truncate(max_evidence);
        }
        let evidence = ev
            .into_iter()
            .map(|(i, score)| {
                let [s, t] = spans[i];
                Evidence {
                    start: s,
                    end: t,
                    text: offs
                        .slice(&hone_data::spans::Span::new(s, t))
                        .trim()
                        .to_string(),
                    score,
                }
            })
            .collect();
        out.insert(
            check.id.to_string(),
            CheckResult {
                label: label_of(&p).choice().to_string(),
                probs: p,
                evidence,
            },
        );
    }
    out
}

/// Evidence whose score is at least this is proposed to a reviewer.
pub const PROPOSE_SCORE: f64 = 0.5;

/// A review as a proposal for a person to correct (the review queue): a check decided
/// Entailment or Contradiction keeps the evidence spans scoring at least [`PROPOSE_SCORE`] (at
/// most [`TOP_K`], at least its best one), a NotMentioned check none. The full ranking is what
/// evidence mAP needs; a person confirms or edits a short list, which then becomes a training
/// label as it stands.
pub fn propose(checks: &mut BTreeMap<String, CheckResult>) {
    for c in checks.values_mut() {
        if c.label == DocLabel::NotMentioned.choice() {
            c.evidence.clear();
            continue;
        }
        let keep = c
            .evidence
            .iter()
            .take(TOP_K)
            .filter(|e| e.score >= PROPOSE_SCORE)
            .count()
            .max(1);
        c.evidence.truncate(keep);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(none: f32, label: Label, p: f32) -> [f32; LABELS] {
        let mut v = [0f32; LABELS];
        v[0] = none;
        v[label.index()] = p;
        v
    }

    #[test]
    fn one_clear_clause_decides_and_ranks_first() {
        let sp = vec![
            span(0.99, Label::Entails(3), 0.01),
            span(0.05, Label::Contradicts(3), 0.95),
            span(0.9, Label::Entails(3), 0.1),
        ];
        let text = "aaaa bbbb cccc";
        let spans = [[0, 4], [5, 9], [10, 14]];
        let d = decide(&sp, &spans, text, &Calibration::default(), MAX_EVIDENCE);
        let r = &d["nda-4"];
        assert_eq!(r.label, "Contradiction");
        assert_eq!(r.evidence[0].text, "bbbb");
        assert_eq!(r.evidence.len(), 3);
        let s = r.probs.entailment + r.probs.contradiction + r.probs.not_mentioned;
        assert!((s - 1.0).abs() < 1e-9);
        // Nothing points at check 1: not mentioned, no evidence.
        assert_eq!(d["nda-1"].label, "NotMentioned");
        assert!(d["nda-1"].evidence.is_empty());
        assert_eq!(d.len(), 17);
        // A cap keeps the best; 0 keeps every span with a score.
        let d = decide(&sp, &spans, text, &Calibration::default(), 1);
        assert_eq!(d["nda-4"].evidence.len(), 1);
        assert_eq!(d["nda-4"].evidence[0].text, "bbbb");
        let many: Vec<[f32; LABELS]> = (0..30)
            .map(|i| span(0.5, Label::Entails(0), 0.01 + i as f32 * 0.01))
            .collect();
        let text: String = "x".repeat(60);
        let spans: Vec<[usize; 2]> = (0..30).map(|i| [2 * i, 2 * i + 1]).collect();
        let d = decide(&many, &spans, &text, &Calibration::default(), MAX_EVIDENCE);
        assert_eq!(d["nda-1"].evidence.len(), MAX_EVIDENCE);
        let d = decide(&many, &spans, &text, &Calibration::default(), 0);
        assert_eq!(d["nda-1"].evidence.len(), 30);
        assert_eq!(d["nda-1"].evidence[0].start, 58, "best first");
    }

    #[test]
    fn a_proposal_keeps_the_confident_evidence_of_decided_checks() {
        let sp = vec![
            span(0.05, Label::Contradicts(3), 0.95),
            span(0.4, Label::Contradicts(3), 0.6),
            span(0.9, Label::Entails(3), 0.1),
            span(0.2, Label::Entails(0), 0.02),
        ];
        let text = "aaaa bbbb cccc dddd";
        let spans = [[0, 4], [5, 9], [10, 14], [15, 19]];
        let mut d = decide(&sp, &spans, text, &Calibration::default(), 0);
        assert_eq!(d["nda-4"].evidence.len(), 3);
        assert_eq!(d["nda-1"].label, "NotMentioned");
        assert_eq!(d["nda-1"].evidence.len(), 1);
        propose(&mut d);
        // scores 0.95 / P, 0.6 / P, 0.1 / P with P = 1 - 0.05 * 0.4 * 0.9 = 0.982
        let ev: Vec<usize> = d["nda-4"].evidence.iter().map(|e| e.start).collect();
        assert_eq!(ev, vec![0, 5]);
        assert!(d["nda-1"].evidence.is_empty());
        // A decided check whose best span scores under 1/2 still shows that one.
        let mut one = BTreeMap::new();
        one.insert(
            "nda-2".to_string(),
            CheckResult {
                label: "Entailment".into(),
                probs: Probs::default(),
                evidence: (0..2)
                    .map(|i| Evidence {
                        start: i,
                        end: i + 1,
                        text: String::new(),
                        score: 0.3,
                    })
                    .collect(),
            },
        );
        propose(&mut one);
        assert_eq!(one["nda-2"].evidence.len(), 1);
    }

    #[test]
    fn evidence_scores_are_conditional_on_the_check_being_addressed() {
        // p = 0.5, 0.2, 0.0 for check 3: P(addressed) = 1 - 0.5 * 0.8 = 0.6.
        let sp = vec![
            span(0.5, Label::Entails(3), 0.5),
            span(0.8, Label::Contradicts(3), 0.2),
            span(1.0, Label::None, 0.0),
        ];
        let s = evidence_scores(&sp, 3);
        assert!((s[0] - 0.5 / 0.6).abs() < 1e-6, "{s:?}");
        assert!((s[1] - 0.2 / 0.6).abs() < 1e-6, "{s:?}");
        assert_eq!(s[2], 0.0);
        // No mass at all: all zero, no division by zero.
        assert_eq!(evidence_scores(&sp, 0), vec![0.0; 3]);
        // One faint clause in an otherwise silent contract is still that contract's evidence
        // (score near 1), so it ranks with the clear clauses of other contracts; many faint
        // spans keep their precision (no 1 - (1 - p) cancellation).
        let faint: Vec<[f32; LABELS]> = (0..200)
            .map(|i| span(1.0, Label::Entails(0), if i == 7 { 1e-3 } else { 1e-7 }))
            .collect();
        let s = evidence_scores(&faint, 0);
        assert!(s[7] > 0.97 && s[7] <= 1.0, "{}", s[7]);
        assert!(
            (s[0] / s[7] - 1e-4).abs() < 1e-6,
            "ratio kept: {}",
            s[0] / s[7]
        );
        // The full ranking (max 0) lists spans under the display floor; a capped list does not.
        let text = "x".repeat(400);
        let spans: Vec<[usize; 2]> = (0..200).map(|i| [2 * i, 2 * i + 1]).collect();
        let d = decide(&faint, &spans, &text, &Calibration::default(), 0);
        assert_eq!(d["nda-1"].evidence.len(), 200);
        assert_eq!(d["nda-1"].evidence[0].start, 14, "best first");
        let d = decide(&faint, &spans, &text, &Calibration::default(), MAX_EVIDENCE);
        assert_eq!(d["nda-1"].evidence.len(), 1);
    }

    #[test]
    fn calibration_moves_the_threshold_to_one_half() {
        assert!((toward_half(0.2, 0.2) - 0.5).abs() < 1e-12);
        assert!(toward_half(0.3, 0.2) > 0.5 && toward_half(0.1, 0.2) < 0.5);
        let cal = Calibration {
            mentioned: 0.2,
            entailment: 0.5,
        };
        assert_eq!(label_of(&probs(0.25, 0.9, &cal)), DocLabel::Entailed);
        assert_eq!(label_of(&probs(0.15, 0.9, &cal)), DocLabel::NotMentioned);
    }
}
