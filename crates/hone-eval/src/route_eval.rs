//! The routing queries of an evaluation run (`hone eval`'s `report.json` and the
//! `outputs.jsonl` beside it): per example, the small candidate's confidence (the mean token
//! log-probability of its answer) and both candidates' per-answer scores
//! ([`crate::item_score`]).
//!
//! A small answer that failed (an error, or no token at all) has no confidence and counts as
//! the least confident (−∞): it is always routed first. A small answer that has tokens but no
//! log-probability comes from an endpoint or from a run (or a cache entry) made before hone
//! recorded it, and is an error.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::item_score;
use crate::runner::{EvalReport, OutputRecord};

/// An evaluation run as `hone eval` wrote it.
pub struct EvalRun {
    pub report_path: PathBuf,
    pub outputs_path: PathBuf,
    pub report: EvalReport,
    /// Every answer, with the line of `outputs.jsonl` it is on.
    pub outputs: Vec<(usize, OutputRecord)>,
}

impl EvalRun {
    /// Reads `report.json` (or the folder holding it) and `outputs.jsonl` beside it; errors
    /// name the file, and the line for outputs.
    pub fn read(path: &Path) -> Result<Self> {
        let report_path = if path.is_dir() {
            path.join("report.json")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&report_path).map_err(|e| Error::io(&report_path, e))?;
        let report: EvalReport = serde_json::from_str(&text).map_err(|e| Error::Format {
            path: report_path.clone(),
            msg: format!("not a `hone eval` report.json: {e}"),
        })?;
        let outputs_path = report_path
            .parent()
            .unwrap_or(Path::new("."))
            .join("outputs.jsonl");
        let text =
            std::fs::read_to_string(&outputs_path).map_err(|e| Error::io(&outputs_path, e))?;
        let mut outputs = Vec::new();
        for (i, l) in text.lines().enumerate() {
            if l.trim().is_empty() {
                continue;
            }
            let o: OutputRecord = serde_json::from_str(l).map_err(|e| Error::Parse {
                path: outputs_path.clone(),
                line: i + 1,
                msg: format!("not an answer record: {e}"),
            })?;
            outputs.push((i + 1, o));
        }
        Ok(Self {
            report_path,
            outputs_path,
            report,
            outputs,
        })
    }

    /// The candidates' names, in report order.
    pub fn candidate_names(&self) -> Vec<&str> {
        self.report
            .candidates
            .iter()
            .map(|c| c.name.as_str())
            .collect()
    }
}

/// Per example (in the small candidate's order): its id, the small answer's confidence and
/// both answers' scores.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalQueries {
    pub ids: Vec<String>,
    pub confidence: Vec<f64>,
    pub small_scores: Vec<f64>,
    pub large_scores: Vec<f64>,
}

/// The queries of `small` and `large` in `run` (see the module documentation).
///
/// Errors: a name that is not a candidate of the report (listing them), the same name twice,
/// a candidate with no answers or an example answered twice, examples answered by one and
/// not the other (naming one), a small answer without `mean_logprob` (saying how to get it),
/// an answer without its reference.
pub fn eval_queries(run: &EvalRun, small: &str, large: &str) -> Result<EvalQueries> {
    let names = run.candidate_names();
    for n in [small, large] {
        if !names.contains(&n) {
            return Err(Error::Format {
                path: run.report_path.clone(),
                msg: format!(
                    "no candidate `{n}` in this report (its candidates: {})",
                    names.join(", ")
                ),
            });
        }
    }
    if small == large {
        return Err(Error::Invalid(format!(
            "the small and the large arm are both `{small}`: routing needs two candidates"
        )));
    }
    let answers = |name: &str| -> Result<Vec<(usize, &OutputRecord)>> {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut v = Vec::new();
        for (line, o) in run.outputs.iter().filter(|(_, o)| o.candidate == name) {
            if let Some(first) = seen.insert(o.id.as_str(), *line) {
                return Err(Error::Field {
                    path: run.outputs_path.clone(),
                    line: *line,
                    field: "id".into(),
                    msg: format!(
                        "candidate `{name}` answers example `{}` again (first on line {first})",
                        o.id
                    ),
                });
            }
            v.push((*line, o));
        }
        if v.is_empty() {
            return Err(Error::Format {
                path: run.outputs_path.clone(),
                msg: format!("no answers of candidate `{name}`"),
            });
        }
        Ok(v)
    };
    let s = answers(small)?;
    let l = answers(large)?;
    let large_by_id: HashMap<&str, &OutputRecord> =
        l.iter().map(|(_, o)| (o.id.as_str(), *o)).collect();
    if let Some((line, o)) = s
        .iter()
        .find(|(_, o)| !large_by_id.contains_key(o.id.as_str()))
    {
        return Err(Error::Field {
            path: run.outputs_path.clone(),
            line: *line,
            field: "id".into(),
            msg: format!(
                "example `{}` is answered by `{small}` but not by `{large}`: both must answer the same examples",
                o.id
            ),
        });
    }
    if s.len() != l.len() {
        let small_ids: std::collections::HashSet<&str> =
            s.iter().map(|(_, o)| o.id.as_str()).collect();
        if let Some((line, o)) = l.iter().find(|(_, o)| !small_ids.contains(o.id.as_str())) {
            return Err(Error::Field {
                path: run.outputs_path.clone(),
                line: *line,
                field: "id".into(),
                msg: format!(
                    "example `{}` is answered by `{large}` but not by `{small}`: both must answer the same examples",
                    o.id
                ),
            });
        }
    }
    let mut ids = Vec::with_capacity(s.len());
    let mut confidence = Vec::with_capacity(s.len());
    let mut refs = Vec::with_capacity(s.len());
    let (mut s_out, mut l_out) = (Vec::new(), Vec::new());
    for (line, o) in &s {
        let conf = match o.mean_logprob {
            Some(lp) if lp.is_finite() => lp,
            _ if o.error.is_some() || o.output_tokens == Some(0) => f64::NEG_INFINITY,
            _ => {
                return Err(Error::Field {
                    path: run.outputs_path.clone(),
                    line: *line,
                    field: "mean_logprob".into(),
                    msg: format!(
                        "candidate `{small}` answered example `{}` without a mean log-probability \
                         (its confidence): the small arm must be a local model, evaluated by this \
                         version of hone; re-run `hone eval` with a fresh cache (answers cached by \
                         older versions carry none)",
                        o.id
                    ),
                });
            }
        };
        let reference = o.reference.clone().ok_or_else(|| Error::Field {
            path: run.outputs_path.clone(),
            line: *line,
            field: "reference".into(),
            msg: format!(
                "example `{}` has no reference answer to score against",
                o.id
            ),
        })?;
        ids.push(o.id.clone());
        confidence.push(conf);
        refs.push(reference);
        s_out.push(o.output.clone());
        l_out.push(large_by_id[o.id.as_str()].output.clone());
    }
    let task = &run.report.task;
    let small_scores = item_score::item_scores(task, &ids, &refs, &s_out)?;
    let large_scores = item_score::item_scores(task, &ids, &refs, &l_out)?;
    Ok(EvalQueries {
        ids,
        confidence,
        small_scores,
        large_scores,
    })
}
