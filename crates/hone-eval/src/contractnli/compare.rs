//! Comparing predictions files (base few-shot against a fine-tuned adapter, ...) on the same
//! gold documents: each one's metrics and review latency, and how each differs from the first
//! beyond noise ([`paired_differences`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::bootstrap::{paired_differences, BootstrapInfo, BootstrapOptions, Difference};
use super::evaluate::{evaluate, ContractNliMetrics};
use super::gold::read_gold;
use super::predictions::{read_predictions_timed, DocTiming, Predictions};
use crate::{Error, Result};

/// Latency of one candidate's reviews, from each predicted document's `timing.total_ms`
/// (seconds). Documents without timing are counted in `untimed`, never guessed; the
/// percentiles interpolate linearly between closest ranks ([`crate::stats::percentile`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReviewLatency {
    /// Predicted documents (lines of the predictions file).
    pub documents: usize,
    /// Documents with `timing.total_ms`.
    pub timed: usize,
    /// Documents without it.
    pub untimed: usize,
    /// Median seconds per document; `None` when no document is timed.
    pub p50_s: Option<f64>,
    /// 95th percentile, seconds per document.
    pub p95_s: Option<f64>,
    /// Mean seconds per document.
    pub mean_s: Option<f64>,
    /// Spans of the timed documents that report `timing.spans`.
    pub spans: usize,
    /// `spans` over the seconds of those same documents; `None` when none reports spans (or
    /// they took no time).
    pub spans_per_s: Option<f64>,
    /// Seconds per timed document, in file order (for the histogram).
    pub latencies_s: Vec<f64>,
}

impl ReviewLatency {
    /// The latency of a predictions file's documents, one entry per document (`None`: no
    /// timing), as [`read_predictions_timed`] reads them.
    pub fn from_timings(per_doc: &[Option<DocTiming>]) -> Self {
        let timings: Vec<DocTiming> = per_doc.iter().flatten().copied().collect();
        let latencies_s: Vec<f64> = timings.iter().map(|t| t.total_ms / 1e3).collect();
        let stats = crate::stats::LatencyStats::from_latencies(&latencies_s);
        let (spans, secs, with_spans) = timings
            .iter()
            .filter_map(|t| t.spans.map(|n| (n, t.total_ms / 1e3)))
            .fold((0usize, 0.0f64, 0usize), |(n, s, k), (dn, ds)| {
                (n + dn, s + ds, k + 1)
            });
        Self {
            documents: per_doc.len(),
            timed: timings.len(),
            untimed: per_doc.len() - timings.len(),
            p50_s: stats.as_ref().map(|s| s.p50_s),
            p95_s: stats.as_ref().map(|s| s.p95_s),
            mean_s: stats.as_ref().map(|s| s.mean_s),
            spans,
            spans_per_s: (with_spans > 0 && secs > 0.0).then(|| spans as f64 / secs),
            latencies_s,
        }
    }
}

/// One predictions file in a [`Comparison`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The name it is shown under (`NAME` of `NAME=PATH`, or the file stem).
    pub name: String,
    /// The predictions file.
    pub path: PathBuf,
    /// Its scores, exactly as [`evaluate_files`](super::evaluate_files) computes them.
    pub metrics: ContractNliMetrics,
    /// Its review latency.
    pub latency: ReviewLatency,
}

/// Several predictions files scored against the same gold documents.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The gold file.
    pub gold: PathBuf,
    /// Gold documents.
    pub documents: usize,
    /// One entry per predictions file, in the order given.
    pub candidates: Vec<Candidate>,
    /// How the differences were resampled; `None` with a single candidate or no resamples.
    #[serde(default)]
    pub bootstrap: Option<BootstrapInfo>,
    /// Every candidate after the first against the first, metric by metric in
    /// [`overall_metrics`] order, with 95% paired bootstrap intervals
    /// ([`paired_differences`]); empty when `bootstrap` is `None`.
    #[serde(default)]
    pub differences: Vec<Difference>,
}

/// Reads a candidate given as `NAME=PATH` or a bare `PATH` (named by its file stem, `pred`
/// for `runs/base/pred.jsonl`). Text before the first `=` that contains a path separator, or
/// an argument that names an existing file as a whole, is a bare path (`runs/lr=1e-4/p.jsonl`).
/// Errors: an empty name (`=p.jsonl`), an empty path (`base=`), a path without a file stem.
pub fn parse_candidate(arg: &str) -> Result<(String, PathBuf)> {
    let bare = |p: &str| -> Result<(String, PathBuf)> {
        let path = PathBuf::from(p);
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "`{arg}` has no file name to name it by; give it as NAME=PATH"
                ))
            })?;
        Ok((stem.to_string(), path))
    };
    match arg.split_once('=') {
        Some((name, _)) if name.contains(['/', '\\']) || Path::new(arg).is_file() => bare(arg),
        Some((name, path)) => {
            if name.trim().is_empty() {
                return Err(Error::Invalid(format!(
                    "`{arg}`: empty name before `=` (expected NAME=PATH)"
                )));
            }
            if path.is_empty() {
                return Err(Error::Invalid(format!(
                    "`{arg}`: empty path after `=` (expected NAME=PATH)"
                )));
            }
            Ok((name.trim().to_string(), PathBuf::from(path)))
        }
        None if arg.is_empty() => Err(Error::Invalid("empty predictions path".into())),
        None => bare(arg),
    }
}

/// Scores every predictions file against the same gold documents (read once): per candidate the
/// [`evaluate`] metrics and the [`ReviewLatency`], and with two or more candidates each one's
/// [`paired_differences`] from the first, over the default [`BootstrapOptions`]. Errors: no
/// candidates, an empty name, a name given twice (naming both files), and whatever
/// [`read_gold`], [`read_predictions`](super::read_predictions) and [`evaluate`] refuse (naming
/// the file).
pub fn compare(gold: &Path, candidates: &[(String, PathBuf)]) -> Result<Comparison> {
    compare_with(gold, candidates, BootstrapOptions::default())
}

/// [`compare`] with the differences resampled as `bootstrap` says (`resamples: 0`: none).
pub fn compare_with(
    gold: &Path,
    candidates: &[(String, PathBuf)],
    bootstrap: BootstrapOptions,
) -> Result<Comparison> {
    if candidates.is_empty() {
        return Err(Error::Invalid("no predictions files to compare".into()));
    }
    let mut seen: HashMap<&str, &Path> = HashMap::new();
    for (name, path) in candidates {
        if name.trim().is_empty() {
            return Err(Error::Invalid(format!(
                "{}: empty candidate name",
                path.display()
            )));
        }
        if let Some(first) = seen.insert(name.as_str(), path.as_path()) {
            return Err(Error::Invalid(format!(
                "the name `{name}` is given twice ({} and {}); name them apart as NAME=PATH",
                first.display(),
                path.display()
            )));
        }
    }
    let docs = read_gold(gold)?;
    let mut preds = Vec::with_capacity(candidates.len());
    let scored = candidates
        .iter()
        .map(|(name, path)| {
            let (p, timings) = read_predictions_timed(path)?;
            let k = Candidate {
                name: name.clone(),
                path: path.clone(),
                metrics: evaluate(&docs, &p)?,
                latency: ReviewLatency::from_timings(&timings),
            };
            preds.push(p);
            Ok(k)
        })
        .collect::<Result<Vec<_>>>()?;
    let named: Vec<(&str, &Predictions)> = scored
        .iter()
        .zip(&preds)
        .map(|(k, p)| (k.name.as_str(), p))
        .collect();
    let differences = paired_differences(&docs, &named, bootstrap)?;
    let bootstrap = (!differences.is_empty()).then(|| BootstrapInfo {
        resamples: bootstrap.resamples,
        seed: bootstrap.seed,
        baseline: scored[0].name.clone(),
    });
    Ok(Comparison {
        gold: gold.to_path_buf(),
        documents: docs.len(),
        candidates: scored,
        bootstrap,
        differences,
    })
}

/// The overall numbers of a candidate, in report order: NLI acc, F1(C), F1(E), Acc3, mAP
/// (pooled over documents), mAP/doc.
pub fn overall_metrics(m: &ContractNliMetrics) -> [(&'static str, Option<f64>); 6] {
    [
        ("NLI acc", m.nli_acc),
        ("F1(C)", m.f1_c),
        ("F1(E)", m.f1_e),
        ("Acc3", m.acc3),
        ("mAP", m.evidence_map),
        ("mAP/doc", m.evidence_map_macro_doc),
    ]
}
