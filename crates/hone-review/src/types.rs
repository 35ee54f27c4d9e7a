//! What a review produces, in the shape of its JSON output (one object per document):
//!
//! ```json
//! {"doc_id": "acme-nda", "source": "contracts/acme-nda.pdf",
//!  "checks": {"nda-1": {"label": "Entailment",
//!                       "probs": {"Entailment": 0.91, "Contradiction": 0.02, "NotMentioned": 0.07},
//!                       "evidence": [{"start": 812, "end": 990, "text": "...", "score": 0.88}]}},
//!  "flags": [...], "warnings": [...], "timing": {...}}
//! ```
//!
//! Offsets are characters (Unicode scalar values) into the input text, as in ContractNLI, so
//! `hone eval contractnli` scores this output directly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One evidence span for a check: where it is, its text, and how strongly the model ties it
/// to the check: P(the span is evidence for this check | the contract addresses the check),
/// from the label-token probabilities (see [`crate::aggregate`]). Whether the check is
/// addressed at all is the check's `probs`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub start: usize,
    pub end: usize,
    pub text: String,
    pub score: f64,
}

/// Document-level class probabilities (they sum to 1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Probs {
    #[serde(rename = "Entailment")]
    pub entailment: f64,
    #[serde(rename = "Contradiction")]
    pub contradiction: f64,
    #[serde(rename = "NotMentioned")]
    pub not_mentioned: f64,
}

impl Probs {
    /// The three probabilities, Entailment / Contradiction / NotMentioned.
    pub fn as_array(&self) -> [f64; 3] {
        [self.entailment, self.contradiction, self.not_mentioned]
    }

    /// Shannon entropy in nats (0 when one label is certain, ln 3 when all are equal): how
    /// unsure the decision is, what active learning ranks by.
    pub fn entropy(&self) -> f64 {
        -self
            .as_array()
            .iter()
            .filter(|&&p| p > 0.0)
            .map(|&p| p * p.ln())
            .sum::<f64>()
    }

    /// How unsure the entailed-or-contradicted decision is, weighted by how likely the check is
    /// addressed at all: `(1 - P(NotMentioned)) * H(E | addressed, C | addressed)`, the binary
    /// entropy in nats (at most ln 2, reached when the check is surely addressed and E and C are
    /// even). Unlike [`Probs::entropy`] it ignores doubt about whether a check is mentioned,
    /// which is what short documents with few clauses mostly raise.
    pub fn nli_entropy(&self) -> f64 {
        let addressed = self.entailment + self.contradiction;
        if addressed <= 0.0 {
            return 0.0;
        }
        let h = [self.entailment, self.contradiction]
            .iter()
            .map(|&p| p / addressed)
            .filter(|&q| q > 0.0)
            .map(|q| -q * q.ln())
            .sum::<f64>();
        addressed.min(1.0) * h
    }

    /// The gap between the two likeliest labels (1 when one is certain, 0 on a tie).
    pub fn margin(&self) -> f64 {
        let mut a = self.as_array();
        a.sort_by(|x, y| y.total_cmp(x));
        a[0] - a[1]
    }
}

/// The decision for one check of one document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// "Entailment", "Contradiction" or "NotMentioned" (ContractNLI's names).
    pub label: String,
    pub probs: Probs,
    /// Evidence spans, best first.
    pub evidence: Vec<Evidence>,
}

/// How much a deviation from the playbook matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    Low,
    Medium,
    High,
}

/// A deviation from the playbook: the check, what the contract says against what the firm
/// expects, the risk, and the best evidence quote (none when the check is not mentioned).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Flag {
    pub check: String,
    pub name: String,
    /// Label found ("Entailment", "Contradiction", "NotMentioned").
    pub found: String,
    /// Label(s) the playbook accepts, e.g. "Entailment".
    pub expected: String,
    pub risk: Risk,
    /// The model's probability of the found label.
    pub confidence: f64,
    pub quote: Option<Evidence>,
    /// The playbook's note for this check (why it matters, what to ask for).
    pub note: String,
}

/// Where the time went, in milliseconds, and how much work there was.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Reading and extracting the text (PDF, JSON).
    pub read_ms: f64,
    /// Splitting into spans and tokenizing.
    pub prepare_ms: f64,
    /// The model (instruction prefix once, then every window).
    pub model_ms: f64,
    pub total_ms: f64,
    pub spans: usize,
    pub windows: usize,
    /// Tokens through the model (prefix once + windows).
    pub tokens: usize,
}

/// The review of one document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DocReview {
    pub doc_id: String,
    pub source: String,
    /// Check id (`nda-1` ..) -> decision, for all 17 checks.
    pub checks: BTreeMap<String, CheckResult>,
    pub flags: Vec<Flag>,
    /// Things a reader must know about this result: a document that does not look like an
    /// English contract, spans cut to fit, low confidence overall.
    #[serde(default)]
    pub warnings: Vec<String>,
    pub timing: Timing,
    /// The reviewed text and its spans ([start, end) characters): for the reports, not the
    /// JSON output.
    #[serde(skip)]
    pub text: String,
    #[serde(skip)]
    pub spans: Vec<[usize; 2]>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_and_margin_of_label_distributions() {
        let sure = Probs {
            entailment: 1.0,
            contradiction: 0.0,
            not_mentioned: 0.0,
        };
        assert_eq!(sure.entropy(), 0.0);
        assert_eq!(sure.margin(), 1.0);
        let even = Probs {
            entailment: 1.0 / 3.0,
            contradiction: 1.0 / 3.0,
            not_mentioned: 1.0 / 3.0,
        };
        assert!((even.entropy() - 3f64.ln()).abs() < 1e-12);
        assert!(even.margin().abs() < 1e-12);
        // -(0.7 ln 0.7 + 0.2 ln 0.2 + 0.1 ln 0.1) = 0.801819
        let p = Probs {
            entailment: 0.2,
            contradiction: 0.1,
            not_mentioned: 0.7,
        };
        assert!((p.entropy() - 0.801_818_5).abs() < 1e-6, "{}", p.entropy());
        assert!((p.margin() - 0.5).abs() < 1e-12);
    }

    #[test]
    fn nli_entropy_weighs_the_entailed_or_contradicted_doubt_by_addressed() {
        let p = |e: f64, c: f64, n: f64| Probs {
            entailment: e,
            contradiction: c,
            not_mentioned: n,
        };
        // surely addressed, E and C even: ln 2, the most
        assert!((p(0.5, 0.5, 0.0).nli_entropy() - 2f64.ln()).abs() < 1e-12);
        // 0.3 addressed, E : C = 2 : 1, so 0.3 * -(2/3 ln 2/3 + 1/3 ln 1/3) = 0.190954
        assert!((p(0.2, 0.1, 0.7).nli_entropy() - 0.190_954_4).abs() < 1e-6);
        // doubt about whether the check is mentioned alone counts nothing
        assert_eq!(p(0.5, 0.0, 0.5).nli_entropy(), 0.0);
        assert_eq!(p(0.0, 0.0, 1.0).nli_entropy(), 0.0);
        // unsure whether the check is mentioned against unsure which way it goes: the entropy
        // of all three labels puts the first higher (0.845 > 0.500), this the second
        let (mention, verdict) = (p(0.4, 0.05, 0.55), p(0.8, 0.2, 0.0));
        assert!(mention.entropy() > verdict.entropy());
        assert!(verdict.nli_entropy() > mention.nli_entropy());
        assert!((verdict.nli_entropy() - verdict.entropy()).abs() < 1e-12);
    }
}
