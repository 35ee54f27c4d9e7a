//! Scoring reviews against annotated documents, and tuning the two decision thresholds
//! ([`Calibration`]) on validation documents.
//!
//! The thresholds are chosen on a grid to maximise the 3-class accuracy plus the mean of the
//! binary NLI numbers (accuracy, F1 contradiction, F1 entailment), as `hone eval contractnli`
//! computes them; evidence ranking does not depend on them.
//!
//! The TF-IDF expert's weight in the mixture is chosen the same way, by the decisions it gives
//! on the validation documents ([`choose_weight_by_decisions`]): at each weight of
//! [`crate::tfidf::WEIGHT_GRID`] the thresholds are tuned, and the weight whose 3-class
//! accuracy plus mean binary NLI number plus evidence mAP is highest wins (ties to the smaller
//! weight: the model). It used to be the weight with the lowest span cross-entropy, which is
//! still reported; but that loss is an average over every span, most of them evidence for
//! nothing, and an adapter trained to the end of its schedule is confident there, so its loss
//! favours the flatter expert: on ContractNLI it chose 0.8 where the decisions choose 0.5, and
//! on held-out documents 0.5 gave NLI accuracy 0.848 against 0.811 (docs/benchmarks.md).
//!
//! The entailment threshold is only tuned when the validation documents hold enough binary
//! decisions to tune it on ([`MIN_BINARY_PER_CLASS`] gold Entailment and as many gold
//! Contradiction labels, in the hypotheses that have both); otherwise it stays at 1/2, the
//! model's own arg-max between the two. On ContractNLI, a threshold tuned on 12 validation
//! documents (27 Contradiction labels in all) moved to 0.80 and lowered F1(Entailment) on the
//! held-out documents: a 24-point grid over a few dozen decisions fits their noise. The
//! mentioned threshold sees every (document, check) pair, 17 per document, and is always tuned.

use std::collections::BTreeMap;
use std::path::PathBuf;

use hone_data::contractnli::EvalDocument;
use hone_data::nda::DocLabel;
use hone_data::review_layout::LABELS;
use hone_eval::contractnli::{
    evaluate, CheckPrediction, ClassProbs, ContractNliMetrics, EvidenceRange, Prediction,
    Predictions,
};

use crate::aggregate::{decide, Calibration};
use crate::tfidf::{choose_weight, mix, targets, TfidfClassifier, TfidfOptions, TFIDF_FILE};
use crate::types::DocReview;
use crate::{Error, Result};

/// A review as a prediction `hone eval contractnli` scores.
pub fn to_prediction(r: &DocReview, line: usize) -> Prediction {
    let checks = r
        .checks
        .iter()
        .map(|(id, c)| {
            (
                id.clone(),
                CheckPrediction {
                    label: DocLabel::from_choice(&c.label).unwrap_or(DocLabel::NotMentioned),
                    probs: Some(ClassProbs {
                        entailment: c.probs.entailment,
                        contradiction: c.probs.contradiction,
                        not_mentioned: c.probs.not_mentioned,
                    }),
                    evidence: c
                        .evidence
                        .iter()
                        .map(|e| EvidenceRange {
                            start: e.start,
                            end: e.end,
                            score: e.score,
                        })
                        .collect(),
                },
            )
        })
        .collect();
    Prediction {
        doc_id: r.doc_id.clone(),
        line,
        checks,
    }
}

/// ContractNLI metrics of reviews against gold documents.
pub fn score(gold: &[EvalDocument], reviews: &[DocReview]) -> Result<ContractNliMetrics> {
    let preds = Predictions {
        path: PathBuf::from("(reviews)"),
        docs: reviews
            .iter()
            .enumerate()
            .map(|(i, r)| to_prediction(r, i + 1))
            .collect(),
    };
    evaluate(gold, &preds).map_err(|e| Error::Invalid(e.to_string()))
}

/// A gold document with its spans' label distributions (from [`crate::engine::Reviewer::span_probs`]).
pub struct Scored {
    pub doc: EvalDocument,
    pub probs: Vec<[f32; LABELS]>,
}

fn objective(m: &ContractNliMetrics) -> f64 {
    let nli = [m.nli_acc, m.f1_c, m.f1_e]
        .iter()
        .map(|v| v.unwrap_or(0.0))
        .sum::<f64>()
        / 3.0;
    m.acc3.unwrap_or(0.0) + nli
}

fn reviews_for(docs: &[Scored], cal: &Calibration) -> Vec<DocReview> {
    docs.iter()
        .map(|s| DocReview {
            doc_id: s.doc.id.clone(),
            source: String::new(),
            checks: decide(
                &s.probs,
                &s.doc.spans,
                &s.doc.text,
                cal,
                crate::aggregate::MAX_EVIDENCE,
            ),
            flags: Vec::new(),
            warnings: Vec::new(),
            timing: Default::default(),
            text: String::new(),
            spans: Vec::new(),
        })
        .collect()
}

/// Gold Entailment and Contradiction labels needed, each, before the entailment threshold is
/// tuned (see the module documentation).
pub const MIN_BINARY_PER_CLASS: usize = 50;

/// Gold (Entailment, Contradiction) labels of the hypotheses that have both in `docs`: the
/// decisions the binary NLI numbers are computed on.
pub fn binary_counts(docs: &[EvalDocument]) -> (usize, usize) {
    gold_counts(docs)
        .values()
        .filter(|c| c[0] > 0 && c[1] > 0)
        .fold((0, 0), |(e, c), k| (e + k[0], c + k[1]))
}

/// The thresholds that score best on `docs`, and the metrics they give.
pub fn tune(docs: &[Scored]) -> Result<(Calibration, ContractNliMetrics)> {
    if docs.is_empty() {
        return Err(Error::Invalid(
            "calibration needs at least one annotated document".into(),
        ));
    }
    let gold: Vec<EvalDocument> = docs.iter().map(|s| s.doc.clone()).collect();
    let grid: Vec<f64> = (1..25).map(|i| i as f64 * 0.04).collect();
    let (n_e, n_c) = binary_counts(&gold);
    let ent_grid = if n_e.min(n_c) >= MIN_BINARY_PER_CLASS {
        grid.clone()
    } else {
        vec![0.5]
    };
    let mut best: Option<(f64, Calibration, ContractNliMetrics)> = None;
    // Evidence scores do not depend on the thresholds: compute the decisions' inputs once
    // per grid point but keep it cheap by reusing the documents.
    for &m in &grid {
        for &e in &ent_grid {
            let cal = Calibration {
                mentioned: m,
                entailment: e,
            };
            let metrics = score(&gold, &reviews_for(docs, &cal))?;
            let o = objective(&metrics);
            // Ties go to the threshold closest to 1/2 (the uncalibrated decision).
            let dist = (m - 0.5).abs() + (e - 0.5).abs();
            let better = match &best {
                None => true,
                Some((bo, bc, _)) => {
                    o > *bo + 1e-12
                        || ((o - *bo).abs() <= 1e-12
                            && dist < (bc.mentioned - 0.5).abs() + (bc.entailment - 0.5).abs())
                }
            };
            if better {
                best = Some((o, cal, metrics));
            }
        }
    }
    let (_, cal, metrics) = best.expect("the grid is not empty");
    Ok((cal, metrics))
}

/// The TF-IDF expert's weight: at each weight of [`crate::tfidf::WEIGHT_GRID`] the spans'
/// distributions are mixed ([`mix`]; `tfidf` is parallel to the documents' spans, in order),
/// the thresholds tuned, and the weight with the highest 3-class accuracy plus mean binary NLI
/// number plus evidence mAP wins, ties going to the smaller weight. Returns it and the
/// objective at every weight.
pub fn choose_weight_by_decisions(
    docs: &[Scored],
    tfidf: &[[f32; LABELS]],
) -> Result<(f64, Vec<(f64, f64)>)> {
    let spans: usize = docs.iter().map(|d| d.probs.len()).sum();
    if spans != tfidf.len() {
        return Err(Error::Invalid(format!(
            "{} TF-IDF distributions for {spans} spans",
            tfidf.len()
        )));
    }
    let mut best = (0.0, f64::NEG_INFINITY);
    let mut all = Vec::with_capacity(crate::tfidf::WEIGHT_GRID.len());
    for &w in &crate::tfidf::WEIGHT_GRID {
        let mut mixed: Vec<Scored> = docs
            .iter()
            .map(|s| Scored {
                doc: s.doc.clone(),
                probs: s.probs.clone(),
            })
            .collect();
        mix_expert(&mut mixed, tfidf, w);
        let (_, m) = tune(&mixed)?;
        let o = objective(&m) + m.evidence_map.unwrap_or(0.0);
        all.push((w, o));
        if o > best.1 + 1e-12 {
            best = (w, o);
        }
    }
    Ok((best.0, all))
}

/// Mixes each document's span distributions with the expert's (`tfidf`, parallel to the
/// documents' spans in order) at weight `w` ([`mix`]).
fn mix_expert(docs: &mut [Scored], tfidf: &[[f32; LABELS]], w: f64) {
    let mut at = 0;
    for s in docs {
        let n = s.probs.len();
        s.probs = mix(&s.probs, &tfidf[at..at + n], w);
        at += n;
    }
}

/// Per-check label counts of gold documents (for reports).
pub fn gold_counts(docs: &[EvalDocument]) -> BTreeMap<String, [usize; 3]> {
    let mut out: BTreeMap<String, [usize; 3]> = BTreeMap::new();
    for d in docs {
        for (id, g) in &d.labels {
            let k = match g.label {
                DocLabel::Entailed => 0,
                DocLabel::Contradicted => 1,
                DocLabel::NotMentioned => 2,
            };
            out.entry(id.clone()).or_default()[k] += 1;
        }
    }
    out
}

/// What calibrating an adapter found (written as `validation.json` beside it).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct CalibrationReport {
    pub documents: usize,
    pub calibration: Calibration,
    /// Metrics on the validation documents with the tuned thresholds.
    pub metrics: ContractNliMetrics,
    /// The same with the untuned thresholds (1/2, 1/2).
    pub metrics_uncalibrated: ContractNliMetrics,
    /// The TF-IDF classifier beside the adapter, when training documents were given.
    #[serde(default)]
    pub tfidf: Option<TfidfCalibration>,
    pub seconds: f64,
}

/// How the TF-IDF classifier was fitted and weighed against the model.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TfidfCalibration {
    /// Its weight in the mixture (0: not used).
    pub weight: f64,
    pub training_documents: usize,
    pub terms: usize,
    pub l2: f64,
    /// Validation span cross-entropy at each weight of [`crate::tfidf::WEIGHT_GRID`].
    pub loss_by_weight: Vec<(f64, f64)>,
    /// The decision objective at each weight (what chose it; [`choose_weight_by_decisions`]).
    #[serde(default)]
    pub objective_by_weight: Vec<(f64, f64)>,
    /// The validation metrics of the model alone (its own tuned thresholds).
    pub metrics_model_only: ContractNliMetrics,
}

/// Tunes a review adapter's thresholds on annotated documents (`documents.jsonl`) and writes
/// `review.json` (the engine reads it) and `validation.json` (the metrics) into its folder.
/// With the adapter's training documents (`train_docs`), also fits the TF-IDF classifier on
/// them, weighs it against the model on the validation spans ([`crate::tfidf`]) and keeps it
/// beside the adapter when its weight is above 0. `on_doc` is called after each document.
pub fn calibrate_adapter(
    model: &str,
    adapter: &std::path::Path,
    docs_path: &std::path::Path,
    train_docs: Option<&std::path::Path>,
    max_seq_len: usize,
    on_doc: &mut dyn FnMut(usize, usize),
) -> Result<CalibrationReport> {
    use crate::engine::{
        EngineOptions, ReviewConfig, Reviewer, CALIBRATING_FILE, CALIBRATION_FILE,
    };
    let t0 = std::time::Instant::now();
    let docs = hone_data::contractnli::read_documents(docs_path)?;
    if docs.is_empty() {
        return Err(Error::input(docs_path, "has no documents to calibrate on"));
    }
    let train = match train_docs {
        Some(p) => {
            let t = hone_data::contractnli::read_documents(p)?;
            if t.is_empty() {
                return Err(Error::input(
                    p,
                    "has no training documents for the TF-IDF classifier",
                ));
            }
            Some(t)
        }
        None => None,
    };
    // Calibrate from scratch: ignore an old review.json (and the classifier it weighed).
    // The marker goes first (a full disk stops us here, with the old calibration whole) and
    // review.json last, so a calibration cut short leaves a folder `Reviewer::load` refuses.
    if !adapter.is_dir() {
        return Err(Error::Adapter {
            path: adapter.to_path_buf(),
            msg: "no such adapter folder".into(),
        });
    }
    let marker = adapter.join(CALIBRATING_FILE);
    hone_data::atomic::write_file(
        &marker,
        b"a calibration started here and has not finished\n",
    )?;
    for f in [CALIBRATION_FILE, TFIDF_FILE, "validation.json"] {
        let old = adapter.join(f);
        if old.is_file() {
            std::fs::remove_file(&old).map_err(|e| Error::io(&old, e))?;
        }
    }
    let mut reviewer = Reviewer::load_uncalibrated(model, Some(adapter), EngineOptions::default())?;
    // The windows the adapter was trained on: max_seq_len less the instruction.
    let max_window = max_seq_len
        .saturating_sub(reviewer.vocab.prefix.len())
        .max(64);
    reviewer.options.layout.max_window = max_window;
    let n = docs.len();
    let mut scored = Vec::with_capacity(n);
    for (i, d) in docs.into_iter().enumerate() {
        let texts = hone_data::spans::pair_texts(&d.text, &d.spans);
        let sp = reviewer.span_probs(&texts)?;
        scored.push(Scored {
            doc: d.clone(),
            probs: sp.probs,
        });
        on_doc(i + 1, n);
    }
    let gold: Vec<EvalDocument> = scored.iter().map(|s| s.doc.clone()).collect();
    let mut tfidf = None;
    let mut weight = 0.0;
    if let Some(train) = &train {
        let (c, _) = TfidfClassifier::fit_tuned(train, &gold, &TfidfOptions::default())?;
        let (mut model_p, mut tfidf_p, mut ys) = (Vec::new(), Vec::new(), Vec::new());
        for s in &scored {
            model_p.extend_from_slice(&s.probs);
            tfidf_p.extend(c.span_probs(&hone_data::spans::pair_texts(&s.doc.text, &s.doc.spans)));
            ys.extend(targets(&s.doc));
        }
        let (_, loss_by_weight) = choose_weight(&model_p, &tfidf_p, &ys);
        let (w, objective_by_weight) = choose_weight_by_decisions(&scored, &tfidf_p)?;
        let (_, metrics_model_only) = tune(&scored)?;
        if w > 0.0 {
            mix_expert(&mut scored, &tfidf_p, w);
            c.save(&adapter.join(TFIDF_FILE))?;
        }
        weight = w;
        tfidf = Some(TfidfCalibration {
            weight: w,
            training_documents: train.len(),
            terms: c.vocabulary(),
            l2: c.l2,
            loss_by_weight,
            objective_by_weight,
            metrics_model_only,
        });
    }
    let (cal, metrics) = tune(&scored)?;
    let metrics_uncalibrated = score(&gold, &reviews_for(&scored, &Calibration::default()))?;
    let (n_e, n_c) = binary_counts(&gold);
    let ent_note = if n_e.min(n_c) >= MIN_BINARY_PER_CLASS {
        String::new()
    } else {
        format!(
            "; entailment kept at 0.5: {n_e} Entailment and {n_c} Contradiction binary \
             decisions, fewer than {MIN_BINARY_PER_CLASS} each"
        )
    };
    let tfidf_note = match &tfidf {
        Some(t) => format!(
            "; TF-IDF classifier of {} training documents weighed {} by validation decisions",
            t.training_documents, t.weight
        ),
        None => String::new(),
    };
    let rc = ReviewConfig {
        calibration: cal,
        max_window,
        note: format!(
            "thresholds tuned on {} documents of {}{ent_note}{tfidf_note}",
            scored.len(),
            docs_path.display()
        ),
        tfidf_weight: weight,
    };
    let rc_json = serde_json::to_vec_pretty(&rc).map_err(|e| Error::Invalid(e.to_string()))?;
    let report = CalibrationReport {
        documents: scored.len(),
        calibration: cal,
        metrics,
        metrics_uncalibrated,
        tfidf,
        seconds: t0.elapsed().as_secs_f64(),
    };
    let json = serde_json::to_vec_pretty(&report).map_err(|e| Error::Invalid(e.to_string()))?;
    hone_data::atomic::write_file(adapter.join("validation.json"), &json)?;
    // Last: review.json marks the calibration finished.
    hone_data::atomic::write_file(adapter.join(CALIBRATION_FILE), &rc_json)?;
    std::fs::remove_file(&marker).map_err(|e| Error::io(&marker, e))?;
    Ok(report)
}

/// [`calibrate_adapter`] for an adapter `hone train` wrote, from its run's settings: the base
/// `model`, the training documents `train_file` and the `max_seq_len` it was trained at (as
/// `hone train` calibrates right after training and `hone review --calibrate` later). A
/// training file that has since moved does not stop it: the thresholds are still tuned, on
/// the model alone (only the TF-IDF expert needs the training documents), and `on_warning`
/// says so before the work starts.
pub fn calibrate_trained_adapter(
    model: &str,
    adapter: &std::path::Path,
    docs_path: &std::path::Path,
    train_file: &std::path::Path,
    max_seq_len: usize,
    on_warning: &mut dyn FnMut(&str),
    on_doc: &mut dyn FnMut(usize, usize),
) -> Result<CalibrationReport> {
    let train = train_file.is_file().then_some(train_file);
    if train.is_none() {
        on_warning(&format!(
            "{} is not there: calibrating without the TF-IDF classifier (the model alone)",
            train_file.display()
        ));
    }
    calibrate_adapter(model, adapter, docs_path, train, max_seq_len, on_doc)
}

impl CalibrationReport {
    /// What calibrating the adapter in `adapter` found, for people: the TF-IDF expert's
    /// weight (when it was fitted), the thresholds and the validation metrics.
    pub fn summary(&self, adapter: &std::path::Path) -> String {
        let m = &self.metrics;
        let f = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into());
        let mut s = String::new();
        if let Some(t) = &self.tfidf {
            let mo = &t.metrics_model_only;
            s.push_str(&format!(
                "TF-IDF classifier on {} training documents ({} terms): weight {} by validation \
                 decisions (the model alone: NLI accuracy {}, F1(C) {}, F1(E) {}, 3-class accuracy \
                 {}, evidence mAP {})\n",
                t.training_documents,
                t.terms,
                t.weight,
                f(mo.nli_acc),
                f(mo.f1_c),
                f(mo.f1_e),
                f(mo.acc3),
                f(mo.evidence_map)
            ));
        }
        s.push_str(&format!(
            "review calibration on {} validation documents: mentioned at {:.2}, entailment at \
             {:.2}; NLI accuracy {}, F1(C) {}, F1(E) {}, 3-class accuracy {}, evidence mAP {} \
             (review.json, validation.json in {})",
            self.documents,
            self.calibration.mentioned,
            self.calibration.entailment,
            f(m.nli_acc),
            f(m.f1_c),
            f(m.f1_e),
            f(m.acc3),
            f(m.evidence_map),
            adapter.display()
        ));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hone_data::contractnli::GoldLabel;
    use hone_data::review_layout::Label;

    /// `n_e` documents entailing check 1 and `n_c` contradicting it, one span each. The span
    /// of an entailing document puts 0.9 of its check-1 mass on Entailment, a contradicting
    /// one 0.65: at a threshold of 1/2 every contradiction is called an entailment, and only
    /// a tuned threshold (between 0.65 and 0.9) gets them right.
    fn docs(n_e: usize, n_c: usize) -> Vec<Scored> {
        (0..n_e + n_c)
            .map(|i| {
                let entails = i < n_e;
                let mut labels = BTreeMap::new();
                labels.insert(
                    "nda-1".to_string(),
                    GoldLabel {
                        label: if entails {
                            DocLabel::Entailed
                        } else {
                            DocLabel::Contradicted
                        },
                        spans: vec![0],
                    },
                );
                let mut p = [0f32; LABELS];
                let share = if entails { 0.9 } else { 0.65 };
                p[Label::Entails(0).index()] = 0.9 * share;
                p[Label::Contradicts(0).index()] = 0.9 * (1.0 - share);
                p[Label::None.index()] = 0.1;
                Scored {
                    doc: EvalDocument {
                        id: i.to_string(),
                        file_name: String::new(),
                        text: "The clause.".into(),
                        spans: vec![[0, 11]],
                        labels,
                    },
                    probs: vec![p],
                }
            })
            .collect()
    }

    #[test]
    fn the_expert_weight_is_chosen_by_the_decisions_it_gives() {
        // The model calls every contradicted document entailed (share 0.65 against the
        // threshold of 1/2); an expert that tells them apart earns a weight, one that gets
        // every polarity wrong does not.
        let d = docs(20, 10);
        let expert = |right: bool| -> Vec<[f32; LABELS]> {
            d.iter()
                .map(|s| {
                    let entailed = s.doc.labels["nda-1"].label == DocLabel::Entailed;
                    let mut p = [0f32; LABELS];
                    let (e, c) = if entailed == right {
                        (0.8, 0.1)
                    } else {
                        (0.1, 0.8)
                    };
                    p[Label::Entails(0).index()] = e;
                    p[Label::Contradicts(0).index()] = c;
                    p[Label::None.index()] = 0.1;
                    p
                })
                .collect()
        };
        let (w, by_weight) = choose_weight_by_decisions(&d, &expert(true)).unwrap();
        assert!(w > 0.0, "{by_weight:?}");
        assert_eq!(by_weight.len(), crate::tfidf::WEIGHT_GRID.len());
        let at = |w: f64| by_weight.iter().find(|x| x.0 == w).unwrap().1;
        assert!(at(w) > at(0.0), "{by_weight:?}");
        let (w, by_weight) = choose_weight_by_decisions(&d, &expert(false)).unwrap();
        assert_eq!(w, 0.0, "{by_weight:?}");
        let e = choose_weight_by_decisions(&d, &expert(true)[1..])
            .unwrap_err()
            .to_string();
        assert!(e.contains("29 TF-IDF distributions for 30 spans"), "{e}");
    }

    #[test]
    fn the_entailment_threshold_is_tuned_only_on_enough_binary_decisions() {
        let few = docs(20, 10);
        assert_eq!(
            binary_counts(&few.iter().map(|s| s.doc.clone()).collect::<Vec<_>>()),
            (20, 10)
        );
        let (cal, m) = tune(&few).unwrap();
        assert_eq!(cal.entailment, 0.5);
        assert!((m.nli_acc.unwrap() - 20.0 / 30.0).abs() < 1e-9, "{m:?}");

        let many = docs(60, MIN_BINARY_PER_CLASS);
        let (cal, m) = tune(&many).unwrap();
        assert!(
            cal.entailment > 0.65 && cal.entailment < 0.9,
            "{}",
            cal.entailment
        );
        assert_eq!(m.nli_acc, Some(1.0));
        assert_eq!(m.f1_c, Some(1.0));
    }

    #[test]
    fn the_summary_reports_thresholds_metrics_and_the_tfidf_weight() {
        let (cal, metrics) = tune(&docs(20, 10)).unwrap();
        let mut rep = CalibrationReport {
            documents: 30,
            calibration: cal,
            metrics: metrics.clone(),
            metrics_uncalibrated: metrics.clone(),
            tfidf: None,
            seconds: 1.0,
        };
        let dir = std::path::Path::new("runs/review");
        let s = rep.summary(dir);
        assert_eq!(s.lines().count(), 1, "{s}");
        assert!(
            s.starts_with(&format!(
                "review calibration on 30 validation documents: mentioned at {:.2}, \
                 entailment at 0.50; NLI accuracy 0.667, ",
                cal.mentioned
            )),
            "{s}"
        );
        assert!(
            s.ends_with(&format!(
                "(review.json, validation.json in {})",
                dir.display()
            )),
            "{s}"
        );
        rep.tfidf = Some(TfidfCalibration {
            weight: 0.3,
            training_documents: 5,
            terms: 7,
            l2: 1e-5,
            loss_by_weight: Vec::new(),
            objective_by_weight: Vec::new(),
            metrics_model_only: metrics,
        });
        let s = rep.summary(dir);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 2, "{s}");
        assert!(
            lines[0].starts_with(
                "TF-IDF classifier on 5 training documents (7 terms): weight 0.3 by validation \
                 decisions (the model alone: NLI accuracy 0.667, "
            ),
            "{s}"
        );
        assert!(lines[1].starts_with("review calibration on 30"), "{s}");
    }

    #[test]
    fn a_moved_training_file_is_a_warning_before_the_work_starts() {
        let dir = tempfile::tempdir().unwrap();
        let train = dir.path().join("gone/train.jsonl");
        let val = dir.path().join("valid.jsonl");
        let mut warnings = Vec::new();
        // The validation file is missing too: the run stops there, after the warning.
        let e = calibrate_trained_adapter(
            "no-such-model",
            dir.path(),
            &val,
            &train,
            512,
            &mut |w| warnings.push(w.to_string()),
            &mut |_, _| {},
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("valid.jsonl"), "{e}");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].starts_with(&format!("{} is not there", train.display())),
            "{warnings:?}"
        );
        assert!(
            warnings[0].contains("without the TF-IDF classifier"),
            "{warnings:?}"
        );
    }
}
