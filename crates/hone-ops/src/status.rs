//! What `hone deploy status NAME` shows: the deployment, its policy, and the live numbers of
//! prod and canary over the canary's window (a server's `GET /admin/deployments/NAME` answers
//! with this, as JSON).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::baseline::{format_shares, FormatClass, OutputBaseline};
use crate::live::Snapshot;
use crate::policy::{Decision, Verdict};
use crate::{Deployment, VersionRef};

/// One version's live numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionLive {
    pub version: VersionRef,
    pub snapshot: Snapshot,
    /// The version's evaluation baseline (drift is tested against it); absent: none recorded.
    #[serde(default)]
    pub baseline: Option<OutputBaseline>,
}

/// The status of one name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployStatus {
    pub name: String,
    pub deployment: Option<Deployment>,
    /// The policy's TOML text.
    pub policy: Option<String>,
    /// Live numbers (only a server has them).
    pub prod: Option<VersionLive>,
    pub canary: Option<VersionLive>,
    /// The policy's current verdict on the canary.
    pub verdict: Option<Verdict>,
}

/// Labels shown in the label distribution (the most frequent over both versions).
const TOP_LABELS: usize = 5;

/// `hone deploy status NAME` for people: the deployment, the live numbers of canary and prod
/// side by side (each rate and mean followed by its significance test), the policy's verdict.
pub fn render(status: &DeployStatus) -> String {
    let mut out = String::new();
    let name = &status.name;
    match &status.deployment {
        None => out.push_str(&format!(
            "{name}: nothing deployed (hone deploy {name}@N deploys a version)\n"
        )),
        Some(d) => {
            let at = |v: Option<u32>| match v {
                Some(v) => format!("{name}@{v}"),
                None => "none".to_string(),
            };
            let mut rows = vec![
                vec!["prod".to_string(), at(d.prod)],
                vec![
                    "canary".to_string(),
                    match &d.canary {
                        Some(c) => format!(
                            "{name}@{}, {}% of requests (since {})",
                            c.version,
                            c.percent,
                            crate::format_utc(c.started)
                        ),
                        None => "none".to_string(),
                    },
                ],
                vec!["previous".to_string(), at(d.previous)],
                vec!["generation".to_string(), d.generation.to_string()],
            ];
            rows.push(vec!["updated".to_string(), crate::format_utc(d.updated)]);
            out.push_str(&format!("{name}\n"));
            out.push_str(&indent(&table(&rows), "  "));
        }
    }
    out.push('\n');
    let live: Vec<(String, &Snapshot)> = [
        status
            .canary
            .as_ref()
            .map(|c| (format!("canary {}", c.version), &c.snapshot)),
        status
            .prod
            .as_ref()
            .map(|p| (format!("prod {}", p.version), &p.snapshot)),
    ]
    .into_iter()
    .flatten()
    .collect();
    if live.is_empty() {
        out.push_str("live numbers: none here; they come from a running server (--server URL)\n");
    } else {
        out.push_str(&live_table(&live));
        out.push('\n');
        let versions = [&status.canary, &status.prod];
        out.push_str(&drift_lines(
            &versions
                .into_iter()
                .flatten()
                .zip(["canary", "prod"])
                .map(|(v, what)| (format!("{what} {}", v.version), v))
                .collect::<Vec<_>>(),
        ));
    }
    out.push('\n');
    match (&status.verdict, &status.policy) {
        (Some(v), _) => out.push_str(&render_verdict(v)),
        (None, Some(p)) => {
            out.push_str("policy (no verdict without a canary's live numbers):\n");
            out.push_str(&indent(p.trim_end(), "  "));
            out.push('\n');
        }
        (None, None) => out.push_str(&format!(
            "policy: none (hone deploy policy {name} FILE sets one)\n"
        )),
    }
    out
}

/// Per version: its live answers against its evaluation baseline (length and format), each
/// with its test.
fn drift_lines(versions: &[(String, &VersionLive)]) -> String {
    let mut out = String::from("drift against the evaluation baseline:\n");
    for (title, v) in versions {
        let Some(b) = &v.baseline else {
            out.push_str(&format!(
                "  {title}: no baseline (registered without {})\n",
                crate::baseline::BASELINE_FILE
            ));
            continue;
        };
        let d = crate::drift::drift(b, &v.snapshot);
        out.push_str(&format!(
            "  {title}{}: baseline of {} answers ({})\n",
            if d.drifting() { " DRIFTING" } else { "" },
            b.answers,
            b.source
        ));
        let live_len = v
            .snapshot
            .answer_tokens_mean
            .map(|m| format!("{m:.1}"))
            .unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "      length: {live_len} tokens per answer live vs {:.1} in the baseline, {}\n",
            b.tokens_mean,
            crate::drift::describe(d.length.as_ref())
        ));
        out.push_str(&format!(
            "      format: {} live vs {} in the baseline, {}\n",
            format_shares(&v.snapshot.formats),
            format_shares(&b.formats),
            crate::drift::describe(d.format.as_ref())
        ));
    }
    out
}

fn render_verdict(v: &Verdict) -> String {
    let what = match v.decision {
        Decision::Wait => "wait: too few canary requests to judge yet",
        Decision::Keep => "keep: every gate passes",
        Decision::Rollback => "rollback: a gate is breached",
        Decision::Promote => "promote: every gate passes over enough requests",
    };
    let mut out = format!(
        "policy verdict: {what} ({} canary requests)\n",
        v.canary_requests
    );
    if !v.gates.is_empty() {
        let mut rows = vec![vec![
            "gate".to_string(),
            "value".to_string(),
            "limit".to_string(),
            String::new(),
        ]];
        for g in &v.gates {
            rows.push(vec![
                g.gate.clone(),
                format!("{:.4}", g.value),
                format!("{}", g.limit),
                if g.passed { "ok" } else { "BREACHED" }.to_string(),
            ]);
        }
        out.push_str(&indent(&table(&rows), "  "));
    }
    out
}

fn pct(x: u64, n: u64) -> String {
    if n == 0 {
        "-".to_string()
    } else {
        format!("{:.1}%", 100.0 * x as f64 / n as f64)
    }
}

fn ms(s: Option<f64>) -> String {
    s.map(|s| format!("{:.0}", s * 1000.0))
        .unwrap_or_else(|| "-".into())
}

/// The live numbers, one column per version (canary first); with both, every rate and mean
/// row is followed by the test of canary against prod.
fn live_table(live: &[(String, &Snapshot)]) -> String {
    let both = live.len() == 2;
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut head = vec![String::new()];
    head.extend(live.iter().map(|(t, _)| t.clone()));
    rows.push(head);
    let mut notes: Vec<Option<String>> = vec![None];
    let mut row = |label: &str, cell: &dyn Fn(&Snapshot) -> String, note: Option<String>| {
        let mut r = vec![label.to_string()];
        r.extend(live.iter().map(|(_, s)| cell(s)));
        rows.push(r);
        notes.push(if both { note } else { None });
    };
    let (c, p) = (live[0].1, live[live.len() - 1].1);
    let rate_note = |what: &str, xc: u64, nc: u64, xp: u64, np: u64| {
        let t = crate::live::two_proportions(xc, nc, xp, np);
        format!(
            "{what}: {} vs {}, {}",
            pct(xc, nc),
            pct(xp, np),
            crate::live::describe(t.as_ref())
        )
    };
    row("requests", &|s| s.requests.to_string(), None);
    row(
        "errors",
        &|s| format!("{} ({})", s.errors, pct(s.errors, s.requests)),
        Some(rate_note(
            "errors", c.errors, c.requests, p.errors, p.requests,
        )),
    );
    row("latency p50 (ms)", &|s| ms(s.latency_p50_s), None);
    row("latency p95 (ms)", &|s| ms(s.latency_p95_s), None);
    row("latency p99 (ms)", &|s| ms(s.latency_p99_s), None);
    row("output tokens", &|s| s.output_tokens.to_string(), None);
    let per = |s: &Snapshot| {
        s.answer_tokens_mean
            .map(|m| format!("{m:.1}"))
            .unwrap_or_else(|| "-".into())
    };
    let per_note = {
        let answered = |s: &Snapshot| s.requests - s.errors;
        let t = match (c.answer_tokens_mean, p.answer_tokens_mean) {
            (Some(mc), Some(mp)) => crate::live::two_means(
                mc,
                c.answer_tokens_var.unwrap_or(0.0),
                answered(c),
                mp,
                p.answer_tokens_var.unwrap_or(0.0),
                answered(p),
            ),
            _ => None,
        };
        format!(
            "output tokens per answer (length drift): {} vs {}, {}",
            per(c),
            per(p),
            crate::live::describe(t.as_ref())
        )
    };
    row("tokens per answer", &per, Some(per_note));
    let lp = |s: &Snapshot| {
        s.logprob_mean
            .map(|m| format!("{m:.3}"))
            .unwrap_or_else(|| "-".into())
    };
    let lp_note = {
        let t = match (c.logprob_mean, p.logprob_mean) {
            (Some(mc), Some(mp)) => crate::live::two_means(
                mc,
                c.logprob_var.unwrap_or(0.0),
                c.logprob_n,
                mp,
                p.logprob_var.unwrap_or(0.0),
                p.logprob_n,
            ),
            _ => None,
        };
        format!(
            "mean token log-prob: {} vs {}, {}",
            lp(c),
            lp(p),
            crate::live::describe(t.as_ref())
        )
    };
    row("mean token log-prob", &lp, Some(lp_note));
    if c.quotes + p.quotes > 0 {
        row(
            "quotes not in input",
            &|s| {
                format!(
                    "{} of {} ({})",
                    s.quotes_missing,
                    s.quotes,
                    pct(s.quotes_missing, s.quotes)
                )
            },
            Some(rate_note(
                "quotes not in input",
                c.quotes_missing,
                c.quotes,
                p.quotes_missing,
                p.quotes,
            )),
        );
    }
    if c.critical_marks + p.critical_marks > 0 {
        row("critical marks", &|s| s.critical_marks.to_string(), None);
    }
    row("JSON checked", &|s| s.json_checked.to_string(), None);
    row(
        "parse failures",
        &|s| {
            format!(
                "{} ({})",
                s.json_failures,
                pct(s.json_failures, s.json_checked)
            )
        },
        Some(rate_note(
            "parse failures",
            c.json_failures,
            c.json_checked,
            p.json_failures,
            p.json_checked,
        )),
    );
    // format classes: each present class as its share of that version's answers
    let fmt_total = |s: &Snapshot| s.formats.values().sum::<u64>();
    for class in FormatClass::ALL {
        let n = |s: &Snapshot| s.formats.get(&class).copied().unwrap_or(0);
        if live.iter().all(|(_, s)| n(s) == 0) {
            continue;
        }
        row(
            &format!("format {}", class.as_str()),
            &|s| pct(n(s), fmt_total(s)),
            Some(rate_note(
                &format!("format {}", class.as_str()),
                n(c),
                fmt_total(c),
                n(p),
                fmt_total(p),
            )),
        );
    }
    // labels: the most frequent over both versions, each as its share of that version's labels
    let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
    for (_, s) in live {
        for (l, n) in &s.labels {
            *counts.entry(l).or_insert(0) += n;
        }
    }
    let mut top: Vec<(&str, u64)> = counts.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let total = |s: &Snapshot| s.labels.values().sum::<u64>();
    for (l, _) in top.iter().take(TOP_LABELS) {
        let n = |s: &Snapshot| s.labels.get(*l).copied().unwrap_or(0);
        row(
            &format!("label {l}"),
            &|s| pct(n(s), total(s)),
            Some(rate_note(
                &format!("label {l}"),
                n(c),
                total(c),
                n(p),
                total(p),
            )),
        );
    }
    if top.len() > TOP_LABELS {
        row(
            &format!("({} other labels)", top.len() - TOP_LABELS),
            &|_| String::new(),
            None,
        );
    }
    let window = live.iter().map(|(_, s)| s.window_s).fold(0.0f64, f64::max);
    let mut out = format!("live numbers (window {window:.0} s):\n");
    let lines = table(&rows);
    for (line, note) in lines.lines().zip(&notes) {
        out.push_str(&format!("  {}\n", line.trim_end()));
        if let Some(n) = note {
            out.push_str(&format!("      {n}\n"));
        }
    }
    out
}

/// Left-aligned columns two spaces apart, one line per row.
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 < r.len() {
                line.push_str(&format!("{c:<w$}  ", w = widths[i]));
            } else {
                line.push_str(c);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn indent(text: &str, pad: &str) -> String {
    text.lines()
        .map(|l| {
            if l.trim().is_empty() {
                "\n".to_string()
            } else {
                format!("{pad}{l}\n")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deployment::Canary;

    fn snap(requests: u64, json_failures: u64, lp: f64, labels: &[(&str, u64)]) -> Snapshot {
        Snapshot {
            requests,
            errors: 1,
            output_tokens: requests * 40,
            answer_tokens_mean: Some(40.0),
            answer_tokens_var: Some(25.0),
            latency_p50_s: Some(0.25),
            latency_p95_s: Some(0.9),
            latency_p99_s: Some(1.5),
            logprob_n: requests,
            logprob_mean: Some(lp),
            logprob_var: Some(0.04),
            json_checked: requests,
            json_failures,
            labels: labels.iter().map(|(l, n)| (l.to_string(), *n)).collect(),
            window_s: 600.0,
            quotes: 0,
            quotes_missing: 0,
            critical_marks: 0,
            formats: [(FormatClass::JsonObject, requests - 1)].into(),
        }
    }

    fn status() -> DeployStatus {
        let policy = "min_requests = 20\n[gates]\nmax_parse_failure_rate = 0.05\n";
        let mut canary = snap(100, 41, -1.6, &[("Entailment", 70), ("Contradiction", 30)]);
        // 40 of the canary's 99 answers are text, against none in its baseline
        canary.formats = [(FormatClass::JsonObject, 59), (FormatClass::Text, 40)].into();
        let prod = snap(900, 0, -1.2, &[("Entailment", 450), ("Contradiction", 450)]);
        let verdict = crate::Policy::parse(policy, "p.toml")
            .unwrap()
            .judge(&canary, &prod);
        DeployStatus {
            name: "nda".into(),
            deployment: Some(Deployment {
                name: "nda".into(),
                prod: Some(1),
                previous: None,
                canary: Some(Canary {
                    version: 2,
                    percent: 10.0,
                    started: 1_700_000_000,
                }),
                generation: 2,
                updated: 1_700_000_000,
            }),
            policy: Some(policy.into()),
            prod: Some(VersionLive {
                version: VersionRef::new("nda", 1),
                snapshot: prod,
                baseline: None,
            }),
            canary: Some(VersionLive {
                version: VersionRef::new("nda", 2),
                snapshot: canary,
                baseline: OutputBaseline::from_answers(
                    "eval.jsonl",
                    &[crate::baseline::Answer {
                        tokens: 40,
                        format: FormatClass::JsonObject,
                    }; 40],
                ),
            }),
            verdict: Some(verdict),
        }
    }

    #[test]
    fn renders_deployment_live_numbers_and_verdict() {
        let s = render(&status());
        for want in [
            "prod        nda@1",
            "nda@2, 10% of requests (since 2023-11-14T22:13:20Z)",
            "canary nda@2",
            "prod nda@1",
            "250",
            "900",
            "1500",
            "41 (41.0%)",
            "0 (0.0%)",
            "-1.600",
            "-1.200",
            "parse failures: 41.0% vs 0.0%, significant (p<0.001)",
            "mean token log-prob: -1.600 vs -1.200, significant (p<0.001)",
            // 1 error in 100 against 1 in 900 is no evidence
            "errors: 1.0% vs 0.1%, not significant",
            "label Entailment",
            "70.0%",
            "50.0%",
            "policy verdict: rollback",
            "format text",
            "40.4%",
            "format text: 40.4% vs 0.0%, significant (p<0.001)",
            "drift against the evaluation baseline:",
            "canary nda@2 DRIFTING: baseline of 40 answers (eval.jsonl)",
            // 40 tokens per answer on both sides (the baseline's variance 0, the canary's 25)
            "length: 40.0 tokens per answer live vs 40.0 in the baseline, no drift (p=1.000)",
            "format: json_object 59.6%, text 40.4% live vs json_object 100.0% in the baseline, drift (p<0.001)",
            "prod nda@1: no baseline",
            "parse_failure_rate",
            "0.4100",
            "0.05",
            "BREACHED",
        ] {
            assert!(s.contains(want), "missing `{want}` in:\n{s}");
        }
        // a note follows the row it tests
        let lines: Vec<&str> = s.lines().collect();
        let i = lines
            .iter()
            .position(|l| l.trim_start().starts_with("parse failures "))
            .unwrap();
        assert!(lines[i + 1].contains("significant (p<0.001)"), "{s}");
    }

    #[test]
    fn renders_without_live_numbers_or_deployment() {
        let mut st = status();
        st.prod = None;
        st.canary = None;
        st.verdict = None;
        let s = render(&st);
        assert!(s.contains("--server URL"), "{s}");
        assert!(s.contains("max_parse_failure_rate = 0.05"), "{s}");
        let empty = DeployStatus {
            name: "nda".into(),
            deployment: None,
            policy: None,
            prod: None,
            canary: None,
            verdict: None,
        };
        let s = render(&empty);
        assert!(
            s.contains("nothing deployed") && s.contains("policy: none"),
            "{s}"
        );
    }

    #[test]
    fn one_version_has_no_tests() {
        let mut st = status();
        st.canary = None;
        st.verdict = None;
        let s = render(&st);
        assert!(
            s.contains("prod nda@1") && !s.contains("significant"),
            "{s}"
        );
    }
}
