//! The NDA review task, in one place: the 17 checks (ContractNLI's hypotheses, described in our
//! own words), the prompt a span is asked about, and the compact JSON answer. The importer,
//! the synthetic generator, review and evaluation all use these.

use serde::{Deserialize, Serialize};

/// One check: an id as in ContractNLI (`nda-1` .. `nda-20`, 17 of them), a short name, what
/// the check asserts, and whether NDAs also contradict it in practice (both polarities).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Check {
    pub id: &'static str,
    pub name: &'static str,
    pub statement: &'static str,
    pub two_polarities: bool,
}

pub const CHECKS: [Check; 17] = [
    Check { id: "nda-1", name: "Explicit identification", statement: "Information counts as confidential only if the disclosing party expressly marks or identifies it as such.", two_polarities: true },
    Check { id: "nda-2", name: "Technical information only", statement: "Confidential information is limited to technical information.", two_polarities: true },
    Check { id: "nda-3", name: "Verbal information included", statement: "Information disclosed orally can be confidential information.", two_polarities: true },
    Check { id: "nda-4", name: "Limited use", statement: "The receiving party may use confidential information only for the purpose stated in the agreement.", two_polarities: true },
    Check { id: "nda-5", name: "Sharing with employees", statement: "The receiving party may share confidential information with some of its employees.", two_polarities: true },
    Check { id: "nda-7", name: "Sharing with third parties", statement: "The receiving party may share confidential information with some third parties, such as advisors, agents or consultants.", two_polarities: true },
    Check { id: "nda-8", name: "Notice of compelled disclosure", statement: "The receiving party must notify the disclosing party if law, regulation or a court requires it to disclose confidential information.", two_polarities: false },
    Check { id: "nda-10", name: "Confidentiality of the agreement", statement: "The receiving party must not disclose that the agreement exists or was negotiated.", two_polarities: false },
    Check { id: "nda-11", name: "No reverse engineering", statement: "The receiving party must not reverse engineer objects that embody the disclosing party's confidential information.", two_polarities: false },
    Check { id: "nda-12", name: "Independent development allowed", statement: "The receiving party may independently develop information similar to the confidential information.", two_polarities: false },
    Check { id: "nda-13", name: "Third-party acquisition allowed", statement: "The receiving party may obtain information similar to the confidential information from a third party.", two_polarities: false },
    Check { id: "nda-15", name: "No licence", statement: "The agreement grants the receiving party no rights or licence in the confidential information.", two_polarities: false },
    Check { id: "nda-16", name: "Return or destruction", statement: "The receiving party must return or destroy confidential information when the agreement ends or on request.", two_polarities: true },
    Check { id: "nda-17", name: "Copies allowed", statement: "The receiving party may make copies of confidential information in some circumstances.", two_polarities: true },
    Check { id: "nda-18", name: "No solicitation", statement: "The receiving party must not solicit some of the disclosing party's employees or representatives.", two_polarities: false },
    Check { id: "nda-19", name: "Survival of obligations", statement: "Some obligations continue after the agreement ends.", two_polarities: true },
    Check { id: "nda-20", name: "Retention allowed", statement: "The receiving party may keep some confidential information even after returning or destroying it.", two_polarities: true },
];

pub fn check(id: &str) -> Option<&'static Check> {
    CHECKS.iter().find(|c| c.id == id)
}

/// Position of a check in [`CHECKS`] (answers list checks in this order).
pub fn check_index(id: &str) -> Option<usize> {
    CHECKS.iter().position(|c| c.id == id)
}

/// What a span says about a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Polarity {
    Entailed,
    Contradicted,
}

/// A document-level label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocLabel {
    Entailed,
    Contradicted,
    NotMentioned,
}

impl DocLabel {
    /// From ContractNLI's `choice`.
    pub fn from_choice(choice: &str) -> Option<Self> {
        match choice {
            "Entailment" => Some(Self::Entailed),
            "Contradiction" => Some(Self::Contradicted),
            "NotMentioned" => Some(Self::NotMentioned),
            _ => None,
        }
    }
    pub fn choice(self) -> &'static str {
        match self {
            Self::Entailed => "Entailment",
            Self::Contradicted => "Contradiction",
            Self::NotMentioned => "NotMentioned",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanCheck {
    pub id: String,
    pub label: Polarity,
}

/// The answer for one span: the checks it is evidence for, in [`CHECKS`] order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpanAnswer {
    pub checks: Vec<SpanCheck>,
}

impl SpanAnswer {
    /// Compact JSON, e.g. `{"checks":[{"id":"nda-11","label":"entailed"}]}`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an answer serializes")
    }
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_str(s.trim()).ok()
    }
    pub fn sort(&mut self) {
        self.checks
            .sort_by_key(|c| (check_index(&c.id).unwrap_or(usize::MAX), c.label));
        self.checks.dedup();
    }
}

/// The system prompt: the task and the list of checks.
pub fn system_prompt() -> String {
    let mut s = String::from(
        "You review non-disclosure agreements one span (a sentence or list item) at a time. \
         For the span, name each check below that the span is evidence for, and whether the \
         span entails the check's statement or contradicts it. Most spans are evidence for no \
         check. Answer with JSON only: {\"checks\":[{\"id\":\"nda-N\",\"label\":\"entailed\"}]} \
         (label \"entailed\" or \"contradicted\"), or {\"checks\":[]}.\n\nChecks:\n",
    );
    for c in &CHECKS {
        s.push_str(&format!("- {} ({}): {}\n", c.id, c.name, c.statement));
    }
    s
}

/// The user turn for one span, with the previous span as context.
pub fn span_prompt(previous: Option<&str>, span: &str) -> String {
    match previous {
        Some(p) if !p.trim().is_empty() => format!(
            "Previous span (context only):\n{}\n\nSpan:\n{}",
            p.trim(),
            span.trim()
        ),
        _ => format!(
            "Previous span (context only):\n(none: start of the document)\n\nSpan:\n{}",
            span.trim()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seventeen_distinct_checks_and_a_compact_answer() {
        let mut ids: Vec<&str> = CHECKS.iter().map(|c| c.id).collect();
        ids.dedup();
        assert_eq!(ids.len(), 17);
        let mut a = SpanAnswer {
            checks: vec![
                SpanCheck {
                    id: "nda-11".into(),
                    label: Polarity::Entailed,
                },
                SpanCheck {
                    id: "nda-2".into(),
                    label: Polarity::Contradicted,
                },
            ],
        };
        a.sort();
        assert_eq!(
            a.to_json(),
            r#"{"checks":[{"id":"nda-2","label":"contradicted"},{"id":"nda-11","label":"entailed"}]}"#
        );
        assert_eq!(SpanAnswer::parse(&a.to_json()), Some(a));
        assert_eq!(SpanAnswer::default().to_json(), r#"{"checks":[]}"#);
        assert!(system_prompt().contains("- nda-20 (Retention allowed)"));
    }
}
