//! `hone advise --from-eval REPORT`: the figures an evaluation measured on this machine, in
//! place of assumed ones. REPORT is an evaluation's `report.json` (`hone eval`) or a pilot's
//! `pilot.json` (`hone pilot`). From it:
//!
//! - the fine-tuned model's cost per query: the adapter candidate's measured latency times the
//!   machine price the evaluation ran with (its `cost_per_1k_usd` / 1,000);
//! - the frontier's cost per query: the endpoint candidate's, from the token counts it
//!   reported and the prices configured (absent when the endpoint gave no usage or no prices);
//! - latencies (p50) and each arm's headline score, which [`crate::advise::advise`] weighs: a
//!   fine-tuned model more than 5 points below the frontier suggests routing its unsure cases
//!   (the hybrid), and a pilot that found no clear gain argues for prompting;
//! - the task kind.
//!
//! Explicit price flags still win over measured prices.
//!
//! `--from-bench FILE` reads `hone bench generate --json` instead ([`BenchFigures`]): this
//! machine's prefill and decode tokens/s give a query's latency and compute cost for a stated
//! query size, when no evaluation measured them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::advise::TaskKind;
use crate::config::TaskKind as EvalKind;
use crate::error::{Error, Result};
use crate::pilot_report::PilotReport;
use crate::runner::{CandidateReport, EvalReport};
use crate::verdict::{Call, Role};

/// One arm's measured figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArmFigures {
    pub name: String,
    /// The headline score in `[0, 1]` (accuracy, field exact match, ROUGE-L F1).
    pub score: Option<f64>,
    pub per_query: Option<f64>,
    pub latency_p50_s: Option<f64>,
}

/// What an evaluation or a pilot measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    pub source: PathBuf,
    /// What `score` measures.
    pub metric: String,
    /// Held-out examples the scores are over.
    pub examples: usize,
    pub task_kind: TaskKind,
    pub finetuned: Option<ArmFigures>,
    pub frontier: Option<ArmFigures>,
    /// The better base-model arm.
    pub base: Option<ArmFigures>,
    /// A pilot's call, when the source is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pilot_call: Option<Call>,
}

fn kind_of(k: EvalKind) -> TaskKind {
    match k {
        EvalKind::Classification | EvalKind::Multilabel => TaskKind::Classification,
        EvalKind::Extraction => TaskKind::Extraction,
        EvalKind::Generation => TaskKind::Generation,
    }
}

fn figures(c: &CandidateReport) -> ArmFigures {
    ArmFigures {
        name: c.name.clone(),
        score: c.metrics.headline().first().and_then(|h| h.1),
        per_query: c.cost_per_1k_usd.map(|x| x / 1000.0),
        latency_p50_s: c.latency.as_ref().map(|l| l.p50_s),
    }
}

fn better(a: Option<ArmFigures>, b: ArmFigures) -> Option<ArmFigures> {
    match a {
        Some(a) if a.score.unwrap_or(-1.0) >= b.score.unwrap_or(-1.0) => Some(a),
        _ => Some(b),
    }
}

impl Measured {
    /// Reads `report.json` of `hone eval` or `pilot.json` of `hone pilot` (told apart by
    /// their content).
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Format {
            path: path.to_path_buf(),
            msg: format!("not JSON: {e}"),
        })?;
        let bad = |what: &str, e: serde_json::Error| Error::Format {
            path: path.to_path_buf(),
            msg: format!("not {what}: {e}"),
        };
        let m = if value.get("verdict").is_some() {
            let p: PilotReport = serde_json::from_value(value)
                .map_err(|e| bad("a pilot.json of `hone pilot`", e))?;
            Self::from_pilot(path, &p)
        } else if value.get("candidates").is_some() {
            let r: EvalReport = serde_json::from_value(value)
                .map_err(|e| bad("a report.json of `hone eval`", e))?;
            Self::from_eval(path, &r)
        } else {
            return Err(Error::Format {
                path: path.to_path_buf(),
                msg: "neither a report.json of `hone eval` (no `candidates`) nor a pilot.json \
                      of `hone pilot` (no `verdict`)"
                    .into(),
            });
        };
        if m.finetuned.is_none() && m.frontier.is_none() {
            return Err(Error::Format {
                path: path.to_path_buf(),
                msg: "it has neither a fine-tuned candidate (a local model with an adapter) \
                      nor an endpoint, so there is nothing to measure costs by"
                    .into(),
            });
        }
        Ok(m)
    }

    fn from_eval(path: &Path, r: &EvalReport) -> Self {
        let mut m = Measured {
            source: path.to_path_buf(),
            metric: crate::item_score::name(r.task.kind).into(),
            examples: r.examples,
            task_kind: kind_of(r.task.kind),
            finetuned: None,
            frontier: None,
            base: None,
            pilot_call: None,
        };
        for c in &r.candidates {
            let f = figures(c);
            match (c.kind.as_str(), c.training.is_some()) {
                ("endpoint", _) => m.frontier = better(m.frontier.take(), f),
                (_, true) => m.finetuned = better(m.finetuned.take(), f),
                _ => m.base = better(m.base.take(), f),
            }
        }
        m
    }

    fn from_pilot(path: &Path, p: &PilotReport) -> Self {
        let v = &p.verdict;
        let task_kind = if v.metric == crate::item_score::name(EvalKind::Extraction) {
            TaskKind::Extraction
        } else if v.metric == crate::item_score::name(EvalKind::Generation) {
            TaskKind::Generation
        } else {
            TaskKind::Classification
        };
        let mut m = Measured {
            source: path.to_path_buf(),
            metric: v.metric.clone(),
            examples: v.examples,
            task_kind,
            finetuned: None,
            frontier: None,
            base: None,
            pilot_call: Some(v.call),
        };
        for (s, a) in v.arms.iter().zip(&p.arms) {
            let f = ArmFigures {
                name: a.name.clone(),
                score: Some(s.score.estimate),
                per_query: a.cost_per_1k_usd.map(|x| x / 1000.0),
                latency_p50_s: a.latency_p50_s,
            };
            match s.role {
                Role::Endpoint => m.frontier = Some(f),
                Role::FineTuned => m.finetuned = Some(f),
                Role::Base => m.base = better(m.base.take(), f),
            }
        }
        m
    }

    /// The measured facts in a few lines, for the advice's reasons.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let arm = |a: &ArmFigures| {
            let mut s = format!("`{}`", a.name);
            if let Some(x) = a.score {
                s.push_str(&format!(" {} {:.1}", self.metric, x * 100.0));
            }
            if let Some(l) = a.latency_p50_s {
                s.push_str(&format!(", p50 {l:.2} s"));
            }
            if let Some(c) = a.per_query {
                s.push_str(&format!(", {c:.5} per query"));
            }
            s
        };
        let arms: Vec<String> = [&self.finetuned, &self.frontier, &self.base]
            .into_iter()
            .flatten()
            .map(arm)
            .collect();
        out.push(format!(
            "measured on {} held-out examples ({}): {}",
            self.examples,
            self.source.display(),
            arms.join("; ")
        ));
        out
    }
}

/// This machine's speed, from `hone bench generate --json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchFigures {
    pub source: PathBuf,
    pub prefill_tok_s: f64,
    pub decode_tok_s: f64,
    pub threads: Option<u64>,
}

impl BenchFigures {
    /// Reads the JSON object `hone bench generate --json` prints.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let v: serde_json::Value =
            serde_json::from_str(text.trim()).map_err(|e| Error::Format {
                path: path.to_path_buf(),
                msg: format!("not JSON: {e}"),
            })?;
        let rate = |key: &str| -> Result<f64> {
            match v.get(key).and_then(|x| x.as_f64()) {
                Some(x) if x.is_finite() && x > 0.0 => Ok(x),
                _ => Err(Error::Format {
                    path: path.to_path_buf(),
                    msg: format!(
                        "`{key}` is missing or not a positive number (write the file with \
                         `hone bench generate --json > FILE`)"
                    ),
                }),
            }
        };
        Ok(BenchFigures {
            source: path.to_path_buf(),
            prefill_tok_s: rate("prefill_tok_s")?,
            decode_tok_s: rate("decode_tok_s")?,
            threads: v.get("threads").and_then(|x| x.as_u64()),
        })
    }

    /// Seconds one query of `prompt` + `output` tokens takes, one at a time.
    pub fn latency_s(&self, prompt: u64, output: u64) -> f64 {
        prompt as f64 / self.prefill_tok_s + output as f64 / self.decode_tok_s
    }

    /// What one such query costs on a machine at `usd_per_hour`.
    pub fn per_query(&self, prompt: u64, output: u64, usd_per_hour: f64) -> f64 {
        self.latency_s(prompt, output) * usd_per_hour / 3600.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_figures_give_latency_and_cost_per_query() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bench.json");
        std::fs::write(
            &p,
            r#"{"model":"m","threads":2,"prefill_tok_s":1000.0,"decode_tok_s":50.0,"decode_batch8_tok_s":200.0}"#,
        )
        .unwrap();
        let b = BenchFigures::read(&p).unwrap();
        // 500 prompt tokens at 1,000/s and 50 output tokens at 50/s: 1.5 s.
        assert!((b.latency_s(500, 50) - 1.5).abs() < 1e-12);
        // At $0.36 an hour, 1.5 s costs $0.00015.
        assert!((b.per_query(500, 50, 0.36) - 0.00015).abs() < 1e-15);
        std::fs::write(&p, r#"{"prefill_tok_s": 0}"#).unwrap();
        let e = BenchFigures::read(&p).unwrap_err().to_string();
        assert!(
            e.contains("bench.json") && e.contains("prefill_tok_s"),
            "{e}"
        );
    }

    #[test]
    fn an_eval_report_gives_the_fine_tuned_the_frontier_and_the_better_base() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("report.json");
        let labels = vec!["a".to_string(), "b".to_string()];
        let gold: Vec<String> = (0..10).map(|i| labels[i % 2].clone()).collect();
        let cand = |name: &str, kind: &str, trained: bool, right: usize, cost: Option<f64>| {
            let pred: Vec<Option<String>> = (0..10)
                .map(|i| Some(labels[(i + usize::from(i >= right)) % 2].clone()))
                .collect();
            CandidateReport {
                name: name.into(),
                kind: kind.into(),
                description: String::new(),
                fewshot: 0,
                metrics: crate::task::TaskReport::Classification(
                    crate::metrics::classification(&labels, &gold, &pred).unwrap(),
                ),
                failures: 0,
                cached: 0,
                latency: crate::stats::LatencyStats::from_latencies(&[0.5; 10]),
                latencies_s: vec![0.5; 10],
                cost_per_1k_usd: cost,
                regression: None,
                training: trained.then_some(crate::runner::TrainingInfo {
                    seconds: Some(60.0),
                    final_train_loss: None,
                    best_val_loss: None,
                    loss_svg: None,
                }),
            }
        };
        let report = EvalReport {
            task: crate::config::TaskConfig {
                kind: EvalKind::Classification,
                labels: labels.clone(),
                fields: vec![],
                system: None,
            },
            eval_file: "e.jsonl".into(),
            examples: 10,
            machine_usd_per_hour: 0.1,
            candidates: vec![
                cand("zero", "local", false, 2, Some(0.01)),
                cand("few", "local", false, 4, Some(0.02)),
                cand("tuned", "local", true, 9, Some(0.015)),
                cand("gpt", "endpoint", false, 10, Some(1.5)),
            ],
            break_even: vec![],
            outputs: vec![],
        };
        std::fs::write(&p, serde_json::to_vec(&report).unwrap()).unwrap();
        let m = match Measured::read(&p) {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(m.task_kind, TaskKind::Classification);
        let ft = m.finetuned.as_ref().unwrap();
        assert_eq!(ft.name, "tuned");
        assert!((ft.per_query.unwrap() - 0.000015).abs() < 1e-12);
        assert_eq!(ft.score, Some(0.9));
        let fr = m.frontier.as_ref().unwrap();
        assert!((fr.per_query.unwrap() - 0.0015).abs() < 1e-12);
        assert_eq!(m.base.as_ref().unwrap().name, "few");
        assert!(
            m.lines()[0].contains("`tuned` accuracy 90.0, p50 0.50 s"),
            "{:?}",
            m.lines()
        );
    }

    #[test]
    fn other_files_are_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.json");
        std::fs::write(&p, "{\"hello\": 1}").unwrap();
        let e = Measured::read(&p).unwrap_err().to_string();
        assert!(e.contains("x.json") && e.contains("neither"), "{e}");
        std::fs::write(&p, "not json").unwrap();
        assert!(Measured::read(&p)
            .unwrap_err()
            .to_string()
            .contains("not JSON"));
        let e = Measured::read(&dir.path().join("missing.json"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.json"), "{e}");
    }
}
