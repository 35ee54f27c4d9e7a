//! Edge-case coverage: how many examples teach the model what to do when it should not just
//! answer. A data set with none teaches it to always answer: to make up a clause that is not
//! there, to answer an out-of-scope question, to read garbage as a contract.
//!
//! An example's answer is one of three kinds of edge case, judged on its normalized words:
//! - **refusal**: declining an out-of-scope or unsafe request (`I can't help with that`,
//!   `This is outside what I can review`);
//! - **unknown**: saying the input does not contain the answer (`not mentioned`,
//!   `NotMentioned`, `I don't know`, `cannot be determined`, `no information`);
//! - **malformed input**: answering an unreadable or invalid input by saying so, or by asking
//!   for a usable one (`the input is empty`, `please provide the contract`).

use serde::Serialize;

use crate::normalize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    Refusal,
    Unknown,
    MalformedInput,
}

impl EdgeKind {
    pub const ALL: [EdgeKind; 3] = [
        EdgeKind::Refusal,
        EdgeKind::Unknown,
        EdgeKind::MalformedInput,
    ];

    pub fn describe(self) -> &'static str {
        match self {
            EdgeKind::Refusal => "refusals (out-of-scope or unsafe requests declined)",
            EdgeKind::Unknown => "unknown / not mentioned answers",
            EdgeKind::MalformedInput => "answers to malformed or empty input",
        }
    }
}

/// Word sequences (normalized, see `normalize.rs`) that mark each kind, checked in order.
const PATTERNS: &[(EdgeKind, &[&str])] = &[
    (EdgeKind::MalformedInput, &["input", "empty"]),
    (EdgeKind::MalformedInput, &["empty", "input"]),
    (EdgeKind::MalformedInput, &["malformed"]),
    (EdgeKind::MalformedInput, &["invalid", "input"]),
    (EdgeKind::MalformedInput, &["not", "valid"]),
    (EdgeKind::MalformedInput, &["unreadable"]),
    (EdgeKind::MalformedInput, &["could", "not", "read"]),
    (EdgeKind::MalformedInput, &["can", "not", "read"]),
    (EdgeKind::MalformedInput, &["please", "provide"]),
    (EdgeKind::MalformedInput, &["please", "send"]),
    (EdgeKind::MalformedInput, &["please", "clarify"]),
    (EdgeKind::MalformedInput, &["could", "you", "clarify"]),
    (EdgeKind::MalformedInput, &["not", "contract"]),
    (
        EdgeKind::MalformedInput,
        &["not", "appear", "to", "contract"],
    ),
    (EdgeKind::Refusal, &["can", "not", "help"]),
    (EdgeKind::Refusal, &["unable", "to", "help"]),
    (EdgeKind::Refusal, &["not", "able", "to", "help"]),
    (EdgeKind::Refusal, &["can", "not", "assist"]),
    (EdgeKind::Refusal, &["can", "not", "provide"]),
    (EdgeKind::Refusal, &["outside", "scope"]),
    (EdgeKind::Refusal, &["outside", "what"]),
    (EdgeKind::Refusal, &["out", "of", "scope"]),
    (EdgeKind::Refusal, &["i", "decline"]),
    (EdgeKind::Refusal, &["i", "won", "not"]),
    (EdgeKind::Refusal, &["i", "will", "not"]),
    (EdgeKind::Refusal, &["sorry", "but"]),
    (EdgeKind::Unknown, &["notmentioned"]),
    (EdgeKind::Unknown, &["not", "mentioned"]),
    (EdgeKind::Unknown, &["do", "not", "know"]),
    (EdgeKind::Unknown, &["not", "sure"]),
    (EdgeKind::Unknown, &["unknown"]),
    (EdgeKind::Unknown, &["can", "not", "determined"]),
    (EdgeKind::Unknown, &["not", "determinable"]),
    (EdgeKind::Unknown, &["no", "information"]),
    (EdgeKind::Unknown, &["not", "specified"]),
    (EdgeKind::Unknown, &["not", "stated"]),
    (EdgeKind::Unknown, &["not", "addressed"]),
    (EdgeKind::Unknown, &["doe", "not", "say"]),
    (EdgeKind::Unknown, &["doe", "not", "mention"]),
];

/// A JSON answer that lists nothing: `[]`, `{}`, or an object whose fields are all empty or
/// null (the NDA span task's `{"checks":[]}`: the span is evidence for no check).
fn empty_json(answer: &str) -> bool {
    fn empty(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::Null => true,
            serde_json::Value::Array(a) => a.is_empty(),
            serde_json::Value::Object(o) => o.values().all(empty),
            _ => false,
        }
    }
    let t = answer.trim();
    (t.starts_with('{') || t.starts_with('['))
        && serde_json::from_str::<serde_json::Value>(t).is_ok_and(|v| empty(&v))
}

/// The edge-case kind of an answer, if it is one.
pub fn classify(answer: &str) -> Option<EdgeKind> {
    if empty_json(answer) {
        return Some(EdgeKind::Unknown);
    }
    let w = normalize::words(answer);
    PATTERNS
        .iter()
        .find(|(_, p)| w.windows(p.len()).any(|win| win == *p))
        .map(|&(k, _)| k)
}

/// Counts per kind over a data set.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Coverage {
    pub examples: usize,
    pub refusal: usize,
    pub unknown: usize,
    pub malformed_input: usize,
    /// One line per kind the data set has no example of.
    pub warnings: Vec<String>,
}

impl Coverage {
    pub fn add(&mut self, answer: &str) {
        self.examples += 1;
        match classify(answer) {
            Some(EdgeKind::Refusal) => self.refusal += 1,
            Some(EdgeKind::Unknown) => self.unknown += 1,
            Some(EdgeKind::MalformedInput) => self.malformed_input += 1,
            None => {}
        }
    }

    pub fn count(&self, k: EdgeKind) -> usize {
        match k {
            EdgeKind::Refusal => self.refusal,
            EdgeKind::Unknown => self.unknown,
            EdgeKind::MalformedInput => self.malformed_input,
        }
    }

    /// Fills `warnings`: a kind with no example at all.
    pub fn finish(&mut self) {
        self.warnings = EdgeKind::ALL
            .iter()
            .filter(|&&k| self.count(k) == 0)
            .map(|k| {
                let hint = match k {
                    EdgeKind::Refusal => {
                        "; for the NDA task, `hone data synth nda --out-of-scope N` adds \
                         documents that are not NDAs, every check not mentioned"
                    }
                    _ => "",
                };
                format!(
                    "no {}: the model will not learn what to do there; add some{hint}",
                    k.describe()
                )
            })
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_sorted_into_their_kind() {
        for (a, k) in [
            (
                "I'm sorry, but I can't help with that request.",
                EdgeKind::Refusal,
            ),
            (
                "This question is outside the scope of NDA review.",
                EdgeKind::Refusal,
            ),
            ("NotMentioned", EdgeKind::Unknown),
            ("The contract does not mention a term.", EdgeKind::Unknown),
            ("I don't know.", EdgeKind::Unknown),
            (
                "It cannot be determined from the clause.",
                EdgeKind::Unknown,
            ),
            (
                "The input is empty. Please provide the contract text.",
                EdgeKind::MalformedInput,
            ),
            (
                "This does not appear to be a contract.",
                EdgeKind::MalformedInput,
            ),
            ("{\"checks\":[]}", EdgeKind::Unknown),
            ("[]", EdgeKind::Unknown),
        ] {
            assert_eq!(classify(a), Some(k), "{a}");
        }
        for a in [
            "Entailment",
            "The Receiving Party may not disclose the information.",
            "2 years",
            "{\"label\": \"Contradiction\"}",
            "{\"checks\":[{\"id\":\"nda-3\",\"label\":\"entailed\"}]}",
        ] {
            assert_eq!(classify(a), None, "{a}");
        }
    }

    #[test]
    fn a_data_set_without_a_kind_gets_a_warning() {
        let mut c = Coverage::default();
        for a in ["Entailment", "NotMentioned", "Contradiction"] {
            c.add(a);
        }
        c.finish();
        assert_eq!((c.examples, c.unknown, c.refusal), (3, 1, 0));
        assert_eq!(c.warnings.len(), 2);
        assert!(c.warnings[0].contains("refusals"), "{:?}", c.warnings);
    }
}
