//! The rollback policy of a name (TOML), and the verdict on a canary it gives.
//!
//! ```toml
//! # judge only once the canary has answered this many requests (and a rate over a subset,
//! # such as parse failures over the answers meant to be JSON, once that subset is this large)
//! min_requests = 50
//! # check that every answer of this name parses as JSON (besides requests with a
//! # response_format, which are always checked)
//! expect_json = true
//!
//! [gates]                        # any breach rolls the canary back at once
//! max_error_rate = 0.02          # canary errors / requests
//! max_error_rate_increase = 0.01 # canary's error rate minus prod's
//! max_p95_latency_ms = 4000
//! max_p95_latency_ratio = 1.5    # canary p95 / prod p95
//! max_parse_failure_rate = 0.05
//! max_logprob_drop = 0.5         # prod's mean token log-probability minus the canary's
//! max_missing_quote_rate = 0.1   # quotes / evidence in JSON answers not found in the input
//! max_answer_length_ratio = 2.0  # canary's mean output tokens per answer / prod's
//! max_critical = 0               # canary answers reviewers marked critical (judged at once)
//!
//! [promote]
//! auto = true                    # promote when every gate passes ...
//! min_requests = 200             # ... over at least this many canary requests
//! min_seconds = 300              # ... and this long
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::live::Snapshot;
use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default = "default_min_requests")]
    pub min_requests: u64,
    #[serde(default)]
    pub expect_json: bool,
    #[serde(default)]
    pub gates: Gates,
    #[serde(default)]
    pub promote: Promote,
}

fn default_min_requests() -> u64 {
    50
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            min_requests: default_min_requests(),
            expect_json: false,
            gates: Gates::default(),
            promote: Promote::default(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gates {
    pub max_error_rate: Option<f64>,
    pub max_error_rate_increase: Option<f64>,
    pub max_p95_latency_ms: Option<f64>,
    pub max_p95_latency_ratio: Option<f64>,
    pub max_parse_failure_rate: Option<f64>,
    pub max_logprob_drop: Option<f64>,
    /// The canary's mean output tokens per answer over prod's (runaway or truncated answers).
    pub max_answer_length_ratio: Option<f64>,
    /// Share of the canary's quotes (`quote`, `evidence`, ... fields of JSON answers) that do
    /// not occur in the input.
    pub max_missing_quote_rate: Option<f64>,
    /// Canary answers marked critical in the review queue; judged before `min_requests`.
    pub max_critical: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Promote {
    #[serde(default)]
    pub auto: bool,
    #[serde(default = "default_promote_requests")]
    pub min_requests: u64,
    #[serde(default)]
    pub min_seconds: f64,
}

fn default_promote_requests() -> u64 {
    200
}

impl Default for Promote {
    fn default() -> Self {
        Self {
            auto: false,
            min_requests: default_promote_requests(),
            min_seconds: 0.0,
        }
    }
}

impl Policy {
    /// Parses and checks a policy; errors name `origin` (the file) and the key.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let de = toml::Deserializer::new(text);
        let p: Policy = serde::Deserialize::deserialize(de)
            .map_err(|e| Error::invalid(format!("{origin}: {}", e.to_string().trim_end())))?;
        let g = &p.gates;
        let checks: [(&str, Option<f64>, bool); 8] = [
            ("gates.max_error_rate", g.max_error_rate, true),
            (
                "gates.max_error_rate_increase",
                g.max_error_rate_increase,
                true,
            ),
            (
                "gates.max_parse_failure_rate",
                g.max_parse_failure_rate,
                true,
            ),
            (
                "gates.max_missing_quote_rate",
                g.max_missing_quote_rate,
                true,
            ),
            ("gates.max_p95_latency_ms", g.max_p95_latency_ms, false),
            (
                "gates.max_p95_latency_ratio",
                g.max_p95_latency_ratio,
                false,
            ),
            ("gates.max_logprob_drop", g.max_logprob_drop, false),
            (
                "gates.max_answer_length_ratio",
                g.max_answer_length_ratio,
                false,
            ),
        ];
        for (key, v, rate) in checks {
            if let Some(x) = v {
                if !x.is_finite() || x < 0.0 || (rate && x > 1.0) {
                    return Err(Error::invalid(format!(
                        "{origin}: {key} = {x}: {}",
                        if rate {
                            "a rate is between 0 and 1"
                        } else {
                            "must be a number of at least 0"
                        }
                    )));
                }
            }
        }
        if !p.promote.min_seconds.is_finite() || p.promote.min_seconds < 0.0 {
            return Err(Error::invalid(format!(
                "{origin}: promote.min_seconds must be at least 0"
            )));
        }
        Ok(p)
    }

    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Judges a canary against prod over the same window.
    pub fn judge(&self, canary: &Snapshot, prod: &Snapshot) -> Verdict {
        // A person's critical mark needs no sample size.
        if let Some(limit) = self.gates.max_critical {
            if canary.critical_marks > limit {
                return Verdict {
                    decision: Decision::Rollback,
                    gates: vec![Gate {
                        gate: "critical_marks".into(),
                        value: canary.critical_marks as f64,
                        limit: limit as f64,
                        passed: false,
                    }],
                    canary_requests: canary.requests,
                };
            }
        }
        if canary.requests < self.min_requests {
            return Verdict {
                decision: Decision::Wait,
                gates: Vec::new(),
                canary_requests: canary.requests,
            };
        }
        let g = &self.gates;
        let mut gates = Vec::new();
        let mut gate = |name: &str, value: Option<f64>, limit: Option<f64>| {
            if let (Some(value), Some(limit)) = (value, limit) {
                gates.push(Gate {
                    gate: name.to_string(),
                    value,
                    limit,
                    passed: value <= limit,
                });
            }
        };
        gate("error_rate", canary.error_rate(), g.max_error_rate);
        gate(
            "error_rate_increase",
            canary
                .error_rate()
                .zip(prod.error_rate().or(Some(0.0)))
                .map(|(c, p)| c - p),
            g.max_error_rate_increase,
        );
        gate(
            "p95_latency_ms",
            canary.latency_p95_s.map(|s| s * 1000.0),
            g.max_p95_latency_ms,
        );
        gate(
            "p95_latency_ratio",
            canary
                .latency_p95_s
                .zip(prod.latency_p95_s)
                .filter(|(_, p)| *p > 0.0)
                .map(|(c, p)| c / p),
            g.max_p95_latency_ratio,
        );
        // A rate over a subset of the requests is judged once that subset is large enough too
        // (a canary that served plain text first is not judged on its first JSON answer).
        let enough = |n: u64| n >= self.min_requests;
        gate(
            "parse_failure_rate",
            canary
                .parse_failure_rate()
                .filter(|_| enough(canary.json_checked)),
            g.max_parse_failure_rate,
        );
        gate(
            "missing_quote_rate",
            canary
                .missing_quote_rate()
                .filter(|_| enough(canary.quotes)),
            g.max_missing_quote_rate,
        );
        gate(
            "answer_length_ratio",
            canary
                .answer_tokens_mean
                .zip(prod.answer_tokens_mean)
                .filter(|(_, p)| *p > 0.0)
                .map(|(c, p)| c / p),
            g.max_answer_length_ratio,
        );
        gate(
            "logprob_drop",
            prod.logprob_mean
                .zip(canary.logprob_mean)
                .filter(|_| enough(canary.logprob_n) && enough(prod.logprob_n))
                .map(|(p, c)| p - c),
            g.max_logprob_drop,
        );
        let decision = if gates.iter().any(|g| !g.passed) {
            Decision::Rollback
        } else if self.promote.auto
            && canary.requests >= self.promote.min_requests
            && canary.window_s >= self.promote.min_seconds
        {
            Decision::Promote
        } else {
            Decision::Keep
        };
        Verdict {
            decision,
            gates,
            canary_requests: canary.requests,
        }
    }
}

/// One gate's reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gate {
    pub gate: String,
    pub value: f64,
    pub limit: f64,
    pub passed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Too few canary requests to judge.
    Wait,
    /// Every gate passes; keep watching.
    Keep,
    Rollback,
    Promote,
}

/// What the policy says of a canary, with every gate's numbers (recorded in the event).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub decision: Decision,
    pub gates: Vec<Gate>,
    pub canary_requests: u64,
}

impl Verdict {
    /// "parse_failure_rate 0.412 > 0.05, ..." for the breached gates.
    pub fn breaches(&self) -> String {
        self.gates
            .iter()
            .filter(|g| !g.passed)
            .map(|g| format!("{} {:.4} > {}", g.gate, g.value, g.limit))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(requests: u64, errors: u64, p95: f64, lp: f64, json_fail: u64) -> Snapshot {
        Snapshot {
            requests,
            errors,
            latency_p95_s: Some(p95),
            logprob_n: requests,
            logprob_mean: Some(lp),
            logprob_var: Some(0.1),
            json_checked: requests,
            json_failures: json_fail,
            window_s: 100.0,
            ..Default::default()
        }
    }

    const POLICY: &str = "min_requests = 20\n[gates]\nmax_error_rate = 0.05\nmax_parse_failure_rate = 0.1\nmax_logprob_drop = 0.5\nmax_p95_latency_ratio = 2.0\n[promote]\nauto = true\nmin_requests = 40\n";

    #[test]
    fn judges_canaries() {
        let p = Policy::parse(POLICY, "policy.toml").unwrap();
        let prod = snap(200, 0, 1.0, -1.0, 0);
        assert_eq!(
            p.judge(&snap(10, 10, 9.0, -9.0, 10), &prod).decision,
            Decision::Wait
        );
        assert_eq!(
            p.judge(&snap(30, 1, 1.2, -1.1, 1), &prod).decision,
            Decision::Keep
        );
        assert_eq!(
            p.judge(&snap(40, 1, 1.2, -1.1, 1), &prod).decision,
            Decision::Promote
        );
        let v = p.judge(&snap(30, 0, 1.0, -1.0, 12), &prod);
        assert_eq!(v.decision, Decision::Rollback);
        assert_eq!(v.breaches(), "parse_failure_rate 0.4000 > 0.1");
        let v = p.judge(&snap(30, 0, 2.5, -1.8, 0), &prod);
        assert_eq!(v.decision, Decision::Rollback);
        assert!(
            v.breaches().contains("logprob_drop 0.8000 > 0.5"),
            "{}",
            v.breaches()
        );
        assert!(
            v.breaches().contains("p95_latency_ratio 2.5000 > 2"),
            "{}",
            v.breaches()
        );
    }

    #[test]
    fn subset_rates_wait_for_enough_answers() {
        let p = Policy::parse(POLICY, "policy.toml").unwrap();
        let prod = snap(200, 0, 1.0, -1.0, 0);
        // 30 requests, but only 3 meant to be JSON (all failed): too few to judge that rate
        let mut c = snap(30, 0, 1.0, -1.0, 3);
        c.json_checked = 3;
        assert_eq!(p.judge(&c, &prod).decision, Decision::Keep);
        c.json_checked = 20;
        assert_eq!(p.judge(&c, &prod).decision, Decision::Rollback);
    }

    #[test]
    fn runaway_answers_roll_back() {
        let p = Policy::parse(
            "min_requests = 10\n[gates]\nmax_answer_length_ratio = 2.0\n",
            "p.toml",
        )
        .unwrap();
        let mut prod = snap(200, 0, 1.0, -1.0, 0);
        prod.answer_tokens_mean = Some(12.0);
        let mut c = snap(30, 0, 1.0, -1.0, 0);
        c.answer_tokens_mean = Some(20.0);
        assert_eq!(p.judge(&c, &prod).decision, Decision::Keep);
        c.answer_tokens_mean = Some(30.0);
        let v = p.judge(&c, &prod);
        assert_eq!(v.decision, Decision::Rollback);
        assert_eq!(v.breaches(), "answer_length_ratio 2.5000 > 2");
    }

    #[test]
    fn quotes_not_in_the_input_roll_back() {
        let p = Policy::parse(
            "min_requests = 10\n[gates]\nmax_missing_quote_rate = 0.1\n",
            "p.toml",
        )
        .unwrap();
        let prod = snap(200, 0, 1.0, -1.0, 0);
        let mut c = snap(30, 0, 1.0, -1.0, 0);
        c.quotes = 5; // fewer quotes than min_requests: not judged yet
        c.quotes_missing = 5;
        assert_eq!(p.judge(&c, &prod).decision, Decision::Keep);
        c.quotes = 40;
        c.quotes_missing = 8;
        let v = p.judge(&c, &prod);
        assert_eq!(v.decision, Decision::Rollback);
        assert_eq!(v.breaches(), "missing_quote_rate 0.2000 > 0.1");
    }

    #[test]
    fn a_critical_mark_rolls_back_at_once() {
        let p = Policy::parse("min_requests = 100\n[gates]\nmax_critical = 0\n", "p.toml").unwrap();
        let prod = snap(200, 0, 1.0, -1.0, 0);
        let mut c = snap(3, 0, 1.0, -1.0, 0);
        assert_eq!(p.judge(&c, &prod).decision, Decision::Wait);
        c.critical_marks = 1;
        let v = p.judge(&c, &prod);
        assert_eq!(v.decision, Decision::Rollback);
        assert_eq!(v.breaches(), "critical_marks 1.0000 > 0");
    }

    #[test]
    fn bad_policies_name_the_key() {
        let e = Policy::parse("[gates]\nmax_error_rate = 2.0\n", "p.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("p.toml") && e.contains("gates.max_error_rate"),
            "{e}"
        );
        let e = Policy::parse("[gates]\nmax_eror_rate = 0.1\n", "p.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_eror_rate"), "{e}");
        let e = Policy::parse("min_requests = \"x\"\n", "p.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("min_requests"), "{e}");
        assert_eq!(Policy::parse("", "p.toml").unwrap(), Policy::default());
    }
}
