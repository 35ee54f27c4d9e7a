//! How sure a comparison is: each candidate's difference from the first (the baseline) in every
//! overall metric, with a 95% interval from a *paired* bootstrap over the gold documents.
//!
//! A resample draws as many gold documents as there are, with replacement; every candidate is
//! scored on the same draw (that is the pairing), exactly as [`evaluate`] would score it on
//! those documents: a document drawn twice counts twice (as two documents, `{id}#k`,
//! [`resample_gold`] and [`resample_predictions`]). The interval is the 2.5th and 97.5th
//! percentile of (candidate − baseline) over the resamples ([`crate::stats::percentile`], linear
//! between closest ranks). A metric that is undefined on a resample for either side (no binary
//! hypothesis drawn, no gold evidence drawn) is left out of that resample; [`Difference`] says
//! how many resamples defined it, and gives no interval when fewer than half did. Resampling is
//! seeded ([`hone_data::hash::Rng`]): the same files give the same intervals.
//!
//! Scoring thousands of resamples with [`evaluate`] itself would score every span of every
//! document again each time, so [`ResampleScorer`] keeps what [`evaluate`] computes per
//! (document, hypothesis) pair (the gold class, the 3-class hit, the binary decision, the
//! document's average precision) and each hypothesis's spans ranked once over all documents,
//! and sums those along the draw in the same order [`evaluate`] does, which gives the same
//! numbers.

use std::collections::HashMap;

use hone_data::contractnli::EvalDocument;
use hone_data::hash::Rng;
use hone_data::nda::DocLabel;
use serde::{Deserialize, Serialize};

use super::compare::overall_metrics;
use super::evaluate::{evaluate, ContractNliMetrics};
use super::evidence::{average_precision, span_scores};
use super::predictions::{CheckPrediction, Prediction, Predictions};
use crate::metrics::mean_defined;
use crate::Result;

/// Resamples drawn by default (`hone eval contractnli --bootstrap`).
pub const DEFAULT_RESAMPLES: usize = 1000;

/// The seed resampling starts from by default.
pub const DEFAULT_SEED: u64 = 0x5EED_C0DE;

/// The overall metrics a resample yields, in [`overall_metrics`] order.
const METRICS: usize = 6;

/// How many resamples to draw, and from which seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootstrapOptions {
    /// Resamples; 0 draws none (no differences).
    pub resamples: usize,
    /// The random generator's seed.
    pub seed: u64,
}

impl Default for BootstrapOptions {
    fn default() -> Self {
        Self {
            resamples: DEFAULT_RESAMPLES,
            seed: DEFAULT_SEED,
        }
    }
}

/// What the differences of a comparison were computed with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapInfo {
    /// Resamples drawn.
    pub resamples: usize,
    /// The seed they were drawn from.
    pub seed: u64,
    /// The candidate the others are measured against (the first).
    pub baseline: String,
}

/// What an interval says about a difference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reading {
    /// The whole interval is above 0: the candidate is better than the baseline.
    Above,
    /// The whole interval is below 0: the candidate is worse.
    Below,
    /// The interval contains 0: the documents cannot tell them apart.
    WithinNoise,
}

impl Reading {
    /// How an interval `[low, high]` reads: above 0, below 0, or containing it.
    pub fn of(low: f64, high: f64) -> Self {
        if low > 0.0 {
            Reading::Above
        } else if high < 0.0 {
            Reading::Below
        } else {
            Reading::WithinNoise
        }
    }

    /// In words: "above", "below", "within noise".
    pub fn as_str(self) -> &'static str {
        match self {
            Reading::Above => "above",
            Reading::Below => "below",
            Reading::WithinNoise => "within noise",
        }
    }
}

/// One candidate's difference from the baseline in one overall metric.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    /// The candidate (never the baseline).
    pub candidate: String,
    /// The metric, as [`overall_metrics`] names it (`NLI acc`, ..., `mAP/doc`).
    pub metric: String,
    /// Candidate minus baseline on the gold documents themselves; `None` when either is
    /// undefined.
    pub delta: Option<f64>,
    /// 2.5th percentile of the resampled differences; `None` when fewer than half of the
    /// resamples defined the metric for both.
    pub low: Option<f64>,
    /// 97.5th percentile; `None` like `low`.
    pub high: Option<f64>,
    /// Resamples on which the metric was defined for both (those the interval is taken over).
    pub resamples: usize,
    /// What the interval says; `None` without one.
    pub reading: Option<Reading>,
}

/// The gold documents of a draw (`draw[k]` indexes `gold`), the `k`th renamed `{id}#k` so that
/// a document drawn twice is two documents to [`evaluate`].
pub fn resample_gold(gold: &[EvalDocument], draw: &[usize]) -> Vec<EvalDocument> {
    draw.iter()
        .enumerate()
        .filter_map(|(k, &i)| gold.get(i).map(|d| (k, d)))
        .map(|(k, d)| EvalDocument {
            id: format!("{}#{k}", d.id),
            ..d.clone()
        })
        .collect()
}

/// The predictions that go with [`resample_gold`] of the same draw: for each drawn document
/// that `preds` predicts, its prediction with `doc_id` renamed the same way. Predictions of
/// documents not drawn are left out.
pub fn resample_predictions(
    preds: &Predictions,
    gold: &[EvalDocument],
    draw: &[usize],
) -> Predictions {
    let by_id: HashMap<&str, &Prediction> =
        preds.docs.iter().map(|p| (p.doc_id.as_str(), p)).collect();
    let docs = draw
        .iter()
        .enumerate()
        .filter_map(|(k, &i)| {
            let d = gold.get(i)?;
            let p = by_id.get(d.id.as_str())?;
            Some(Prediction {
                doc_id: format!("{}#{k}", d.id),
                ..(*p).clone()
            })
        })
        .collect();
    Predictions {
        path: preds.path.clone(),
        docs,
    }
}

/// One (document, hypothesis) pair as [`evaluate`] scores it.
#[derive(Clone, Debug)]
struct Pair {
    /// The gold class.
    gold: DocLabel,
    /// Whether the predicted label is the gold one (3-class).
    correct3: bool,
    /// The binary decision; `None` without an answer (document or check missing).
    decision: Option<DocLabel>,
    /// The document's average precision; `None` when it is not scored for evidence (gold
    /// NotMentioned, or no gold evidence).
    ap: Option<f64>,
    /// Its gold evidence spans (covered or not), which the pooled recall counts against.
    relevant: usize,
}

/// One hypothesis: its pairs and the pooled ranking over every document scored for evidence.
#[derive(Clone, Debug)]
struct Hypothesis {
    /// Per gold document; `None` when the document has no label for the hypothesis.
    pairs: Vec<Option<Pair>>,
    /// The covered spans of the documents scored for evidence, as (score, gold, document),
    /// highest score first: any draw's pooled ranking is these entries of the drawn documents,
    /// each as many times as its document is drawn.
    ranking: Vec<(f64, bool, usize)>,
}

/// One candidate's per-(document, hypothesis) ingredients of [`evaluate`], to score any draw of
/// the gold documents without scoring their spans again ([`ResampleScorer::overall`]).
#[derive(Clone, Debug)]
pub struct ResampleScorer {
    /// The candidate's metrics on the gold documents, as [`evaluate`] gives them.
    pub metrics: ContractNliMetrics,
    /// Per hypothesis, in [`evaluate`]'s order.
    hypotheses: Vec<Hypothesis>,
    /// Gold documents.
    documents: usize,
}

impl ResampleScorer {
    /// Scores `preds` against `gold` with [`evaluate`] (and refuses what it refuses), keeping
    /// what each (document, hypothesis) pair contributes.
    pub fn new(gold: &[EvalDocument], preds: &Predictions) -> Result<Self> {
        let metrics = evaluate(gold, preds)?;
        let by_id: HashMap<&str, &Prediction> =
            preds.docs.iter().map(|p| (p.doc_id.as_str(), p)).collect();
        let missing = CheckPrediction::not_mentioned();
        let hypotheses = metrics
            .per_hypothesis
            .iter()
            .map(|h| {
                let mut ranking = Vec::new();
                let pairs = gold
                    .iter()
                    .enumerate()
                    .map(|(d, doc)| {
                        let g = doc.labels.get(&h.id)?;
                        let answer = by_id.get(doc.id.as_str()).and_then(|p| p.checks.get(&h.id));
                        let p = answer.unwrap_or(&missing);
                        let mut pair = Pair {
                            gold: g.label,
                            correct3: p.label == g.label,
                            decision: answer.map(CheckPrediction::binary),
                            ap: None,
                            relevant: 0,
                        };
                        if g.label != DocLabel::NotMentioned {
                            let mut relevant = vec![false; doc.spans.len()];
                            for &s in &g.spans {
                                relevant[s] = true;
                            }
                            let scores = span_scores(&doc.spans, &p.evidence);
                            pair.ap = average_precision(&scores, &relevant);
                            if pair.ap.is_some() {
                                pair.relevant = relevant.iter().filter(|&&r| r).count();
                                ranking.extend(
                                    scores
                                        .iter()
                                        .zip(&relevant)
                                        .filter_map(|(s, &r)| s.map(|s| (s, r, d))),
                                );
                            }
                        }
                        Some(pair)
                    })
                    .collect();
                ranking.sort_by(|a, b| b.0.total_cmp(&a.0));
                Hypothesis { pairs, ranking }
            })
            .collect();
        Ok(Self {
            metrics,
            hypotheses,
            documents: gold.len(),
        })
    }

    /// The [`overall_metrics`] of what [`evaluate`] gives on [`resample_gold`] and
    /// [`resample_predictions`] of `draw` (indices into the gold documents; out-of-range ones
    /// are skipped, as [`resample_gold`] skips them).
    pub fn overall(&self, draw: &[usize]) -> [(&'static str, Option<f64>); METRICS] {
        let mut drawn = vec![0usize; self.documents];
        for &i in draw.iter().filter(|&&i| i < self.documents) {
            drawn[i] += 1;
        }
        let mut per_hypothesis: Vec<[Option<f64>; METRICS]> =
            Vec::with_capacity(self.hypotheses.len());
        let mut doc_aps = Vec::new();
        for h in &self.hypotheses {
            let (mut counts, mut correct3, mut n) = ([0usize; 3], 0usize, 0usize);
            let (mut bin_correct, mut bin_total) = (0usize, 0usize);
            let (mut e, mut c) = ([0usize; 3], [0usize; 3]);
            let mut relevant = 0usize;
            doc_aps.clear();
            for p in draw.iter().filter_map(|&i| h.pairs.get(i)).flatten() {
                n += 1;
                counts[match p.gold {
                    DocLabel::Entailed => 0,
                    DocLabel::Contradicted => 1,
                    DocLabel::NotMentioned => 2,
                }] += 1;
                correct3 += p.correct3 as usize;
                if p.gold == DocLabel::NotMentioned {
                    continue;
                }
                bin_total += 1;
                bin_correct += (p.decision == Some(p.gold)) as usize;
                for (class, t) in [
                    (DocLabel::Entailed, &mut e),
                    (DocLabel::Contradicted, &mut c),
                ] {
                    match (p.gold == class, p.decision == Some(class)) {
                        (true, true) => t[0] += 1,
                        (false, true) => t[1] += 1,
                        (true, false) => t[2] += 1,
                        (false, false) => {}
                    }
                }
                if let Some(ap) = p.ap {
                    doc_aps.push(ap);
                    relevant += p.relevant;
                }
            }
            // A hypothesis none of the drawn documents is labelled for is not in the resample.
            if n == 0 {
                continue;
            }
            let binary = counts[0] > 0 && counts[1] > 0;
            per_hypothesis.push([
                binary.then(|| bin_correct as f64 / bin_total as f64),
                binary.then(|| f1(c[0], c[1], c[2])),
                binary.then(|| f1(e[0], e[1], e[2])),
                Some(correct3 as f64 / n as f64),
                pooled_average_precision(&h.ranking, &drawn, relevant),
                mean_defined(doc_aps.iter().map(|&a| Some(a))),
            ]);
        }
        let names = overall_metrics(&self.metrics);
        std::array::from_fn(|m| {
            (
                names[m].0,
                mean_defined(per_hypothesis.iter().map(|h| h[m])),
            )
        })
    }
}

/// [`average_precision`] of the pooled ranking of a draw: `ranking` holds every document's
/// covered spans, highest score first, and each counts `drawn[document]` times; `relevant` is
/// the gold evidence spans of the drawn documents (with repeats). The same arithmetic in the
/// same order as [`average_precision`] on the draw's own ranking (score groups no drawn
/// document is in are not there), so the same number. `None` when nothing is relevant.
fn pooled_average_precision(
    ranking: &[(f64, bool, usize)],
    drawn: &[usize],
    relevant: usize,
) -> Option<f64> {
    if relevant == 0 {
        return None;
    }
    let (mut ap, mut tp, mut seen, mut prev_recall) = (0.0, 0usize, 0usize, 0.0);
    let mut i = 0;
    while i < ranking.len() {
        let score = ranking[i].0;
        let before = seen;
        while i < ranking.len() && ranking[i].0 == score {
            let (_, gold, d) = ranking[i];
            let w = drawn.get(d).copied().unwrap_or(0);
            tp += gold as usize * w;
            seen += w;
            i += 1;
        }
        if seen == before {
            continue;
        }
        let recall = tp as f64 / relevant as f64;
        ap += (recall - prev_recall) * (tp as f64 / seen as f64);
        prev_recall = recall;
    }
    Some(ap)
}

/// F1 as [`evaluate`] computes it: 2tp / (2tp + fp + fn), 0 when nothing is predicted or gold.
fn f1(tp: usize, fp: usize, fn_: usize) -> f64 {
    let den = 2 * tp + fp + fn_;
    if den == 0 {
        0.0
    } else {
        2.0 * tp as f64 / den as f64
    }
}

/// The draws of a bootstrap: `resamples` lists of `n` document indices, drawn with replacement
/// from `seed` (the same seed, the same draws).
pub fn draws(n: usize, resamples: usize, seed: u64) -> Vec<Vec<usize>> {
    if n == 0 {
        return Vec::new();
    }
    let mut rng = Rng::new(seed);
    (0..resamples)
        .map(|_| (0..n).map(|_| rng.below(n)).collect())
        .collect()
}

/// Every candidate after the first against the first (the baseline), metric by metric in
/// [`overall_metrics`] order: the difference on the gold documents and its 95% paired bootstrap
/// interval over `options.resamples` draws of them (see the module documentation). Empty with
/// fewer than two candidates or no resamples. Errors: what [`evaluate`] refuses.
pub fn paired_differences(
    gold: &[EvalDocument],
    candidates: &[(&str, &Predictions)],
    options: BootstrapOptions,
) -> Result<Vec<Difference>> {
    if candidates.len() < 2 || options.resamples == 0 {
        return Ok(Vec::new());
    }
    let scorers = candidates
        .iter()
        .map(|(_, p)| ResampleScorer::new(gold, p))
        .collect::<Result<Vec<_>>>()?;
    let [base, others @ ..] = scorers.as_slice() else {
        return Ok(Vec::new());
    };
    // diffs[candidate][metric]: the resampled differences where both are defined.
    let mut diffs: Vec<[Vec<f64>; METRICS]> = (0..others.len())
        .map(|_| std::array::from_fn(|_| Vec::with_capacity(options.resamples)))
        .collect();
    for draw in draws(gold.len(), options.resamples, options.seed) {
        let b = base.overall(&draw);
        for (s, d) in others.iter().zip(&mut diffs) {
            let v = s.overall(&draw);
            for m in 0..METRICS {
                if let (Some(x), Some(y)) = (v[m].1, b[m].1) {
                    d[m].push(x - y);
                }
            }
        }
    }
    let base_overall = overall_metrics(&base.metrics);
    let mut out = Vec::with_capacity(others.len() * METRICS);
    for (((name, _), s), d) in candidates[1..].iter().zip(others).zip(&diffs) {
        for (m, (&(metric, v), &(_, b))) in overall_metrics(&s.metrics)
            .iter()
            .zip(&base_overall)
            .enumerate()
        {
            let values = &d[m];
            let interval = (2 * values.len() >= options.resamples)
                .then(|| {
                    let q = |p: f64| crate::stats::percentile(values, p);
                    q(2.5).zip(q(97.5))
                })
                .flatten();
            out.push(Difference {
                candidate: name.to_string(),
                metric: metric.to_string(),
                delta: v.zip(b).map(|(v, b)| v - b),
                low: interval.map(|x| x.0),
                high: interval.map(|x| x.1),
                resamples: values.len(),
                reading: interval.map(|(l, h)| Reading::of(l, h)),
            });
        }
    }
    Ok(out)
}
