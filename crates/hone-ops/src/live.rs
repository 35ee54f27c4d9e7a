//! Per-version live numbers of a server: what each request answered by a version did, kept
//! since the version's window began (a canary's start), so canary and prod are compared over
//! the same minutes. Also the significance tests `hone deploy status` prints beside them.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::baseline::FormatClass;
use crate::VersionRef;

/// The level below which a p-value counts as significant, everywhere the status tests.
pub const SIGNIFICANCE: f64 = 0.05;

/// Latency samples kept per version (the newest).
const MAX_SAMPLES: usize = 20_000;

/// What one request did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Failed (5xx, engine error) rather than answered.
    pub error: bool,
    pub latency_s: f64,
    pub output_tokens: u64,
    /// Mean log-probability of the generated tokens (absent for an empty or failed answer).
    pub mean_logprob: Option<f64>,
    /// `Some(ok)` when the output was meant to be JSON (a `response_format`, or the policy's
    /// `expect_json`): whether it parsed (and was complete).
    pub json_ok: Option<bool>,
    /// Values of `label` fields in a JSON answer (review outputs).
    pub labels: Vec<String>,
    /// Quotes in a JSON answer (`quote`, `evidence`, ... fields) and how many of them do not
    /// occur in the input: a hallucination signal for review and extraction outputs.
    pub quotes: u64,
    pub quotes_missing: u64,
    /// The answer's shape ([`crate::baseline::classify`]); `None` for a failed request.
    pub format: Option<FormatClass>,
}

/// The numbers of one version over its window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub requests: u64,
    pub errors: u64,
    pub output_tokens: u64,
    /// Output tokens per answered request: mean and variance (length drift against prod).
    #[serde(default)]
    pub answer_tokens_mean: Option<f64>,
    #[serde(default)]
    pub answer_tokens_var: Option<f64>,
    pub latency_p50_s: Option<f64>,
    pub latency_p95_s: Option<f64>,
    pub latency_p99_s: Option<f64>,
    /// Requests with a mean log-probability, its mean and variance over requests.
    pub logprob_n: u64,
    pub logprob_mean: Option<f64>,
    pub logprob_var: Option<f64>,
    pub json_checked: u64,
    pub json_failures: u64,
    pub labels: BTreeMap<String, u64>,
    /// Seconds the window has run.
    pub window_s: f64,
    /// Quotes checked against the input, and those not found in it.
    #[serde(default)]
    pub quotes: u64,
    #[serde(default)]
    pub quotes_missing: u64,
    /// Answers of this version reviewers marked critical (from the review queue; not part of
    /// the window).
    #[serde(default)]
    pub critical_marks: u64,
    /// Answers per format class (drift against the evaluation baseline).
    #[serde(default)]
    pub formats: BTreeMap<FormatClass, u64>,
}

impl Snapshot {
    pub fn error_rate(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.errors as f64 / self.requests as f64)
    }
    /// Share of quotes not found in the input.
    pub fn missing_quote_rate(&self) -> Option<f64> {
        (self.quotes > 0).then(|| self.quotes_missing as f64 / self.quotes as f64)
    }
    pub fn parse_failure_rate(&self) -> Option<f64> {
        (self.json_checked > 0).then(|| self.json_failures as f64 / self.json_checked as f64)
    }
}

#[derive(Debug)]
struct Window {
    started: std::time::Instant,
    requests: u64,
    errors: u64,
    output_tokens: u64,
    /// Answered requests and the sum of squares of their output tokens.
    answered: u64,
    out_sumsq: f64,
    latencies: VecDeque<f64>,
    lp_n: u64,
    lp_sum: f64,
    lp_sumsq: f64,
    json_checked: u64,
    json_failures: u64,
    labels: BTreeMap<String, u64>,
    quotes: u64,
    quotes_missing: u64,
    formats: BTreeMap<FormatClass, u64>,
}

impl Window {
    fn new() -> Self {
        Self {
            started: std::time::Instant::now(),
            requests: 0,
            errors: 0,
            output_tokens: 0,
            answered: 0,
            out_sumsq: 0.0,
            latencies: VecDeque::new(),
            lp_n: 0,
            lp_sum: 0.0,
            lp_sumsq: 0.0,
            json_checked: 0,
            json_failures: 0,
            labels: BTreeMap::new(),
            quotes: 0,
            quotes_missing: 0,
            formats: BTreeMap::new(),
        }
    }

    fn add(&mut self, o: &Outcome) {
        self.requests += 1;
        self.errors += o.error as u64;
        self.output_tokens += o.output_tokens;
        if !o.error {
            self.answered += 1;
            self.out_sumsq += (o.output_tokens as f64).powi(2);
            if self.latencies.len() == MAX_SAMPLES {
                self.latencies.pop_front();
            }
            self.latencies.push_back(o.latency_s);
        }
        if let Some(lp) = o.mean_logprob.filter(|x| x.is_finite()) {
            self.lp_n += 1;
            self.lp_sum += lp;
            self.lp_sumsq += lp * lp;
        }
        if let Some(ok) = o.json_ok {
            self.json_checked += 1;
            self.json_failures += (!ok) as u64;
        }
        self.quotes += o.quotes;
        self.quotes_missing += o.quotes_missing;
        if let Some(f) = o.format {
            *self.formats.entry(f).or_insert(0) += 1;
        }
        for l in &o.labels {
            // bounded: a model inventing labels cannot grow this without limit
            if self.labels.len() < 64 || self.labels.contains_key(l) {
                *self.labels.entry(l.clone()).or_insert(0) += 1;
            }
        }
    }

    fn snapshot(&self) -> Snapshot {
        let mut lat: Vec<f64> = self.latencies.iter().copied().collect();
        lat.sort_by(f64::total_cmp);
        let q = |p: f64| -> Option<f64> {
            if lat.is_empty() {
                return None;
            }
            let i = ((p * lat.len() as f64).ceil() as usize).clamp(1, lat.len()) - 1;
            Some(lat[i])
        };
        let (mean, var) = if self.lp_n > 0 {
            let m = self.lp_sum / self.lp_n as f64;
            let v = if self.lp_n > 1 {
                ((self.lp_sumsq - self.lp_n as f64 * m * m) / (self.lp_n - 1) as f64).max(0.0)
            } else {
                0.0
            };
            (Some(m), Some(v))
        } else {
            (None, None)
        };
        Snapshot {
            requests: self.requests,
            errors: self.errors,
            output_tokens: self.output_tokens,
            answer_tokens_mean: (self.answered > 0)
                .then(|| self.output_tokens as f64 / self.answered as f64),
            answer_tokens_var: (self.answered > 1).then(|| {
                let m = self.output_tokens as f64 / self.answered as f64;
                ((self.out_sumsq - self.answered as f64 * m * m) / (self.answered - 1) as f64)
                    .max(0.0)
            }),
            latency_p50_s: q(0.50),
            latency_p95_s: q(0.95),
            latency_p99_s: q(0.99),
            logprob_n: self.lp_n,
            logprob_mean: mean,
            logprob_var: var,
            json_checked: self.json_checked,
            json_failures: self.json_failures,
            labels: self.labels.clone(),
            window_s: self.started.elapsed().as_secs_f64(),
            quotes: self.quotes,
            quotes_missing: self.quotes_missing,
            critical_marks: 0,
            formats: self.formats.clone(),
        }
    }
}

/// The live numbers of every version a server answers with (`Send + Sync`).
#[derive(Debug, Default)]
pub struct LiveStats {
    windows: Mutex<HashMap<VersionRef, Window>>,
}

impl LiveStats {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn record(&self, v: &VersionRef, o: &Outcome) {
        if let Ok(mut m) = self.windows.lock() {
            m.entry(v.clone()).or_insert_with(Window::new).add(o);
        }
    }

    /// The numbers of `v` since its window began (empty when it has none).
    pub fn snapshot(&self, v: &VersionRef) -> Snapshot {
        self.windows
            .lock()
            .ok()
            .and_then(|m| m.get(v).map(Window::snapshot))
            .unwrap_or_default()
    }

    /// Starts new windows for every version of `name` (a canary began or ended).
    pub fn reset_name(&self, name: &str) {
        if let Ok(mut m) = self.windows.lock() {
            m.retain(|k, _| k.name != name);
        }
    }
}

/// Standard normal upper tail, `P(Z > z)`.
fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Complementary error function (Numerical Recipes' Chebyshev fit, relative error < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// A comparison's test result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Significance {
    pub statistic: f64,
    /// Two-sided p-value.
    pub p: f64,
}

/// Two-proportion z-test of `x1/n1` against `x2/n2` (pooled), `None` when either is empty or
/// nothing varies.
pub fn two_proportions(x1: u64, n1: u64, x2: u64, n2: u64) -> Option<Significance> {
    if n1 == 0 || n2 == 0 {
        return None;
    }
    let (p1, p2) = (x1 as f64 / n1 as f64, x2 as f64 / n2 as f64);
    let p = (x1 + x2) as f64 / (n1 + n2) as f64;
    let se = (p * (1.0 - p) * (1.0 / n1 as f64 + 1.0 / n2 as f64)).sqrt();
    if se == 0.0 {
        return None;
    }
    let z = (p1 - p2) / se;
    Some(Significance {
        statistic: z,
        p: 2.0 * normal_sf(z.abs()),
    })
}

/// Welch's test of two means (normal approximation, fine from a few dozen samples each).
pub fn two_means(m1: f64, v1: f64, n1: u64, m2: f64, v2: f64, n2: u64) -> Option<Significance> {
    if n1 < 2 || n2 < 2 {
        return None;
    }
    let se = (v1 / n1 as f64 + v2 / n2 as f64).sqrt();
    if se == 0.0 || !se.is_finite() {
        return None;
    }
    let t = (m1 - m2) / se;
    Some(Significance {
        statistic: t,
        p: 2.0 * normal_sf(t.abs()),
    })
}

/// "significant (p=0.003)" / "not significant (p=0.41)" / "too few requests to tell".
pub fn describe(s: Option<&Significance>) -> String {
    match s {
        Some(s) if s.p < SIGNIFICANCE => format!("significant ({})", fmt_p(s.p)),
        Some(s) => format!("not significant ({})", fmt_p(s.p)),
        None => "too few requests to tell".into(),
    }
}

/// `p<0.001` or `p=0.003`.
pub(crate) fn fmt_p(p: f64) -> String {
    if p < 0.001 {
        "p<0.001".into()
    } else {
        format!("p={p:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_tail_matches_tables() {
        // Φ(1.96) = 0.975, Φ(1) = 0.841345, Φ(3) = 0.998650
        assert!((normal_sf(1.96) - 0.025).abs() < 1e-4);
        assert!((normal_sf(1.0) - 0.158_655).abs() < 1e-5);
        assert!((normal_sf(3.0) - 0.001_350).abs() < 1e-6);
        assert!((normal_sf(-1.0) - 0.841_345).abs() < 1e-5);
    }

    #[test]
    fn proportions_test_against_hand_computation() {
        // 30/100 vs 15/100: pooled p = 0.225, se = sqrt(.225*.775*.02) = 0.059054, z = 2.540
        let s = two_proportions(30, 100, 15, 100).unwrap();
        assert!((s.statistic - 2.540).abs() < 1e-3, "{s:?}");
        assert!((s.p - 0.0111).abs() < 5e-4, "{s:?}");
        assert!(two_proportions(0, 10, 0, 10).is_none());
        assert!(two_proportions(1, 0, 0, 10).is_none());
        assert_eq!(describe(Some(&s)), "significant (p=0.011)");
    }

    #[test]
    fn windows_summarise_and_reset() {
        let s = LiveStats::new();
        let v = VersionRef::new("nda", 2);
        for i in 0..100 {
            s.record(
                &v,
                &Outcome {
                    error: i % 10 == 0,
                    latency_s: (i + 1) as f64 / 100.0,
                    output_tokens: 5,
                    mean_logprob: Some(if i % 2 == 0 { -1.0 } else { -3.0 }),
                    json_ok: Some(i % 4 != 0),
                    labels: vec!["Entailment".into()],
                    quotes: 2,
                    quotes_missing: (i % 5 == 0) as u64,
                    format: (i % 10 != 0).then_some(if i % 3 == 0 {
                        FormatClass::Text
                    } else {
                        FormatClass::JsonObject
                    }),
                },
            );
        }
        let n = s.snapshot(&v);
        assert_eq!((n.requests, n.errors, n.output_tokens), (100, 10, 500));
        assert_eq!(n.error_rate(), Some(0.1));
        assert_eq!(n.parse_failure_rate(), Some(0.25));
        assert!((n.logprob_mean.unwrap() + 2.0).abs() < 1e-12);
        assert!((n.logprob_var.unwrap() - 100.0 / 99.0).abs() < 1e-9);
        // latencies of the 90 answered requests: 0.02..1.00 without every 10th
        assert_eq!(n.latency_p99_s, Some(1.0));
        assert_eq!(n.labels["Entailment"], 100);
        assert_eq!((n.quotes, n.quotes_missing), (200, 20));
        // 90 answered requests of 5 tokens each (the 10 errors also counted 5 tokens)
        assert_eq!(n.answer_tokens_mean, Some(500.0 / 90.0));
        assert_eq!(n.missing_quote_rate(), Some(0.1));
        // of the 90 answered, i % 3 == 0 is text: 0..99 has 34 multiples of 3, 4 of them
        // (0, 30, 60, 90) errors
        assert_eq!(n.formats[&FormatClass::Text], 30);
        assert_eq!(n.formats[&FormatClass::JsonObject], 60);
        s.reset_name("nda");
        assert_eq!(s.snapshot(&v).requests, 0);
    }
}
