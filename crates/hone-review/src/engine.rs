//! The review engine: a model (with its review adapter), a document in, decisions out.
//!
//! Per document the instruction prefix goes through the model once; its KV cache is forked
//! into every window ([`hone_data::review_layout`]), and the windows run as one ragged batch
//! (a few at a time for long documents), asking the lm_head only for the slot rows. The
//! label distribution of each span is the softmax of the label tokens' logits there.

use std::path::{Path, PathBuf};
use std::time::Instant;

use hone_data::review_layout::{self as rl, Label, Vocab, LABELS};
use hone_model::loader::{LoadOptions, LoadedModel, WeightMode};
use serde::{Deserialize, Serialize};

use crate::aggregate::{decide, Calibration};
use crate::input::InputDoc;
use crate::playbook::Playbook;
use crate::scoring::WindowScorer;
use crate::tfidf::{mix, TfidfClassifier, TFIDF_FILE};
use crate::types::{DocReview, Timing};
use crate::{Error, Result};

/// The file beside a review adapter holding its calibration. Calibration writes it last
/// (atomically), so it also marks a calibration that finished.
pub const CALIBRATION_FILE: &str = "review.json";

/// Written first when a calibration starts and removed after [`CALIBRATION_FILE`]: while it is
/// there the folder holds a calibration that did not finish (a full disk, a crash).
pub const CALIBRATING_FILE: &str = "calibration.incomplete";

/// What `review.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReviewConfig {
    pub calibration: Calibration,
    /// Window size the adapter was trained with (tokens after the prefix).
    pub max_window: usize,
    /// How the calibration was found (documents, metric), for people.
    #[serde(default)]
    pub note: String,
    /// Weight of the TF-IDF classifier kept beside the adapter ([`crate::tfidf::TFIDF_FILE`])
    /// in the span distributions (0: the model alone; see [`crate::tfidf::mix`]).
    #[serde(default)]
    pub tfidf_weight: f64,
}

/// Engine options.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineOptions {
    pub layout: rl::Options,
    /// Most tokens in one forward call (windows are grouped up to this).
    pub max_batch_tokens: usize,
    /// Demonstrations put into the prefix (base model few-shot); empty for an adapter.
    pub demos: Vec<(String, Label)>,
    /// Evidence spans listed per check (0: every span with a score, as evidence mAP ranks).
    pub max_evidence: usize,
}

impl Default for EngineOptions {
    fn default() -> Self {
        Self {
            layout: rl::Options::default(),
            max_batch_tokens: 4096,
            demos: Vec::new(),
            max_evidence: crate::aggregate::MAX_EVIDENCE,
        }
    }
}

/// Label distributions of a document's spans, and the work done.
#[derive(Clone, Debug)]
pub struct SpanProbs {
    pub probs: Vec<[f32; LABELS]>,
    pub windows: usize,
    pub tokens: usize,
    pub truncated_spans: usize,
}

pub struct Reviewer {
    pub model: LoadedModel,
    pub vocab: Vocab,
    pub calibration: Calibration,
    pub options: EngineOptions,
    /// The adapter folder, when one is attached.
    pub adapter: Option<PathBuf>,
    /// The TF-IDF classifier trained beside the adapter and its weight in the mixture.
    pub tfidf: Option<(TfidfClassifier, f64)>,
}

/// The data format an adapter folder was trained on (`data.format` of its
/// `train_config.toml`: "review" for a review adapter), `None` when the folder has no readable
/// training config.
pub fn adapter_format(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("train_config.toml")).ok()?;
    Some(
        text.parse::<toml::Table>()
            .ok()
            .and_then(|t| {
                t.get("data")
                    .and_then(|d| d.get("format"))
                    .and_then(|f| f.as_str().map(String::from))
            })
            .unwrap_or_else(|| "examples".into()),
    )
}

/// Tells a review adapter from one trained on chat examples by its `train_config.toml` (a
/// folder without one passes).
pub fn check_review_adapter(dir: &Path) -> Result<()> {
    let Some(fmt) = adapter_format(dir) else {
        return Ok(());
    };
    if fmt != "review" {
        return Err(Error::Adapter {
            path: dir.to_path_buf(),
            msg: format!(
                "this adapter was trained on `{fmt}` data, not for review; train one with \
                 data.format = \"review\" on annotated documents (see scripts/contractnli-benchmark.sh)"
            ),
        });
    }
    Ok(())
}

/// The `data.validation` file of an adapter folder's `train_config.toml`, when it names one.
fn validation_file(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("train_config.toml")).ok()?;
    let t = text.parse::<toml::Table>().ok()?;
    t.get("data")?.get("validation")?.as_str().map(String::from)
}

/// Refuses a review adapter folder whose calibration did not finish: one holding
/// [`CALIBRATING_FILE`], or one without [`CALIBRATION_FILE`] although calibration ran or was
/// due (its run has validation documents, which `hone train` calibrates on, or the folder
/// holds `validation.json` / the TF-IDF classifier a calibration writes before
/// `review.json`). Such a folder would otherwise be reviewed with default thresholds and
/// without its TF-IDF expert, silently.
pub fn check_calibration_complete(dir: &Path) -> Result<()> {
    let review = dir.join(CALIBRATION_FILE);
    let started = dir.join(CALIBRATING_FILE).is_file();
    let valid = validation_file(dir);
    let missing = if started {
        Some(CALIBRATING_FILE)
    } else if review.is_file() {
        None
    } else if valid.is_some()
        || dir.join("validation.json").is_file()
        || dir.join(TFIDF_FILE).is_file()
    {
        Some(CALIBRATION_FILE)
    } else {
        None
    };
    let Some(what) = missing else {
        return Ok(());
    };
    let why = if started {
        format!("{what} is still there: the calibration that wrote this folder did not finish")
    } else {
        format!("{what} is missing: the run did not finish its calibration")
    };
    let valid = valid.unwrap_or_else(|| "VALID.jsonl".into());
    Err(Error::Adapter {
        path: dir.to_path_buf(),
        msg: format!(
            "{why} (a full disk or a crash?), so its thresholds and TF-IDF classifier \
             ({CALIBRATION_FILE}, {TFIDF_FILE}) are not there; rerun the calibration: \
             `hone review --calibrate {valid} --adapter {d}` (or `hone train --resume {d}`)",
            d = dir.display()
        ),
    })
}

/// What a review adapter's folder holds beside its weights: the decision thresholds, the
/// window size it was trained with and its TF-IDF expert (all from [`CALIBRATION_FILE`];
/// defaults without one).
#[derive(Default)]
pub struct ReviewFiles {
    pub calibration: Calibration,
    /// The window size of `review.json` (`None`: the engine's default).
    pub max_window: Option<usize>,
    /// The TF-IDF classifier and its weight in the mixture.
    pub tfidf: Option<(TfidfClassifier, f64)>,
}

impl ReviewFiles {
    /// Reads `review.json` in the adapter folder `dir` (and `tfidf.safetensors` when it gives
    /// the classifier a weight); a folder without `review.json` gets the defaults.
    pub fn read(dir: &Path) -> Result<Self> {
        let cp = dir.join(CALIBRATION_FILE);
        if !cp.is_file() {
            return Ok(Self::default());
        }
        let text = std::fs::read_to_string(&cp).map_err(|e| Error::io(&cp, e))?;
        let rc: ReviewConfig = serde_json::from_str(&text).map_err(|e| Error::Adapter {
            path: cp.clone(),
            msg: format!("bad review calibration: {e}"),
        })?;
        let mut tfidf = None;
        if rc.tfidf_weight > 0.0 {
            let tp = dir.join(TFIDF_FILE);
            if !tp.is_file() {
                return Err(Error::Adapter {
                    path: cp.clone(),
                    msg: format!(
                        "gives the TF-IDF classifier weight {} but {} is missing \
                         (recalibrate: hone review --calibrate VALID --adapter DIR)",
                        rc.tfidf_weight,
                        tp.display()
                    ),
                });
            }
            tfidf = Some((TfidfClassifier::load(&tp)?, rc.tfidf_weight.min(1.0)));
        }
        Ok(Self {
            calibration: rc.calibration,
            max_window: Some(rc.max_window),
            tfidf,
        })
    }
}

/// The spans' distributions combined with the TF-IDF expert's when there is one (what the
/// decisions read).
pub fn with_tfidf(
    mut sp: SpanProbs,
    tfidf: Option<&(TfidfClassifier, f64)>,
    texts: &[&str],
) -> SpanProbs {
    if let Some((c, w)) = tfidf {
        sp.probs = mix(&sp.probs, &c.span_probs(texts), *w);
    }
    sp
}

impl Reviewer {
    /// Loads the model and, when given, the review adapter and its calibration. An adapter
    /// whose calibration did not finish is refused ([`check_calibration_complete`]).
    pub fn load(model: &str, adapter: Option<&Path>, options: EngineOptions) -> Result<Self> {
        if let Some(dir) = adapter.filter(|d| d.is_dir()) {
            check_review_adapter(dir)?;
            check_calibration_complete(dir)?;
        }
        Self::load_any(model, adapter, options)
    }

    /// [`Reviewer::load`] without asking for a finished calibration: what calibration itself
    /// loads.
    pub fn load_uncalibrated(
        model: &str,
        adapter: Option<&Path>,
        options: EngineOptions,
    ) -> Result<Self> {
        Self::load_any(model, adapter, options)
    }

    fn load_any(model: &str, adapter: Option<&Path>, mut options: EngineOptions) -> Result<Self> {
        let mut m = LoadedModel::load(
            model,
            &LoadOptions {
                weights: WeightMode::Native,
            },
        )?;
        let mut files = ReviewFiles::default();
        if let Some(dir) = adapter {
            if !dir.is_dir() {
                return Err(Error::Adapter {
                    path: dir.to_path_buf(),
                    msg: "no such adapter folder".into(),
                });
            }
            check_review_adapter(dir)?;
            let a = hone_model::load_adapter(dir).map_err(|e| Error::Adapter {
                path: dir.to_path_buf(),
                msg: e.to_string(),
            })?;
            m.model.attach_adapter(&a).map_err(|e| Error::Adapter {
                path: dir.to_path_buf(),
                msg: format!("does not fit model `{model}`: {e}"),
            })?;
            files = ReviewFiles::read(dir)?;
        }
        if let Some(w) = files.max_window {
            options.layout.max_window = w;
        }
        let ReviewFiles {
            calibration, tfidf, ..
        } = files;
        let mut r = Self::from_model(m, calibration, options)?;
        r.adapter = adapter.map(Path::to_path_buf);
        r.tfidf = tfidf;
        Ok(r)
    }

    pub fn from_model(
        model: LoadedModel,
        calibration: Calibration,
        options: EngineOptions,
    ) -> Result<Self> {
        let mut vocab = Vocab::new(&model.tokenizer)?;
        if !options.demos.is_empty() {
            vocab.prefix = rl::fewshot_prefix(&vocab, &model.tokenizer, &options.demos)?;
        }
        Ok(Self {
            model,
            vocab,
            calibration,
            options,
            adapter: None,
            tfidf: None,
        })
    }

    /// The label distribution at every span's slot.
    pub fn span_probs(&self, texts: &[&str]) -> Result<SpanProbs> {
        let mut scorer = WindowScorer::new(
            &self.vocab,
            &self.model.tokenizer,
            texts,
            self.options.layout,
            self.options.max_batch_tokens,
        )?;
        while !scorer.is_done() {
            scorer.step(&self.model.model, None)?;
        }
        Ok(scorer.finish())
    }

    /// The spans' label distributions the decisions read: the model's, combined with the
    /// TF-IDF classifier's when the adapter has one.
    pub fn combined_span_probs(&self, texts: &[&str]) -> Result<SpanProbs> {
        Ok(with_tfidf(
            self.span_probs(texts)?,
            self.tfidf.as_ref(),
            texts,
        ))
    }

    /// Reviews one document: spans, model, decisions, playbook flags.
    pub fn review(&self, doc: &InputDoc, playbook: Option<&Playbook>) -> Result<DocReview> {
        assemble(
            doc,
            playbook,
            &self.calibration,
            self.options.max_evidence,
            |texts| self.combined_span_probs(texts),
        )
    }
}

/// Anything that reviews a document: the model with its adapter, or a baseline.
pub trait ReviewEngine {
    fn review(&self, doc: &InputDoc, playbook: Option<&Playbook>) -> Result<DocReview>;
}

impl ReviewEngine for Reviewer {
    fn review(&self, doc: &InputDoc, playbook: Option<&Playbook>) -> Result<DocReview> {
        Reviewer::review(self, doc, playbook)
    }
}

/// One document's review from a span classifier: `classify` gives the spans' label
/// distributions, the shared aggregate decides the checks, the playbook flags deviations.
pub fn assemble(
    doc: &InputDoc,
    playbook: Option<&Playbook>,
    calibration: &Calibration,
    max_evidence: usize,
    classify: impl FnOnce(&[&str]) -> Result<SpanProbs>,
) -> Result<DocReview> {
    let t0 = Instant::now();
    let texts = hone_data::spans::pair_texts(&doc.text, &doc.spans);
    let prepare_ms = t0.elapsed().as_secs_f64() * 1e3;
    let t1 = Instant::now();
    let sp = classify(&texts)?;
    let model_ms = t1.elapsed().as_secs_f64() * 1e3;
    let checks = decide(&sp.probs, &doc.spans, &doc.text, calibration, max_evidence);
    let flags = playbook.map(|p| p.flags(&checks)).unwrap_or_default();
    let mut warnings = doc.warnings.clone();
    if sp.truncated_spans > 0 {
        warnings.push(format!(
            "{} span(s) longer than a review window were cut; their ends were not read",
            sp.truncated_spans
        ));
    }
    Ok(DocReview {
        doc_id: doc.doc_id.clone(),
        source: doc.source.clone(),
        checks,
        flags,
        warnings,
        timing: Timing {
            read_ms: doc.read_ms,
            prepare_ms,
            model_ms,
            total_ms: doc.read_ms + t0.elapsed().as_secs_f64() * 1e3,
            spans: doc.spans.len(),
            windows: sp.windows,
            tokens: sp.tokens,
        },
        text: doc.text.clone(),
        spans: doc.spans.clone(),
    })
}

/// Softmax over the label tokens' logits only, from a full vocabulary row.
pub fn label_softmax(row: &[f32], labels: &[u32]) -> [f32; LABELS] {
    let mut picked = [0f32; LABELS];
    for (p, &t) in picked.iter_mut().zip(labels) {
        *p = row[t as usize];
    }
    softmax_labels(&picked)
}

/// Softmax over the labels' logits, given in label order (what `Logits::RowsOf` returns for
/// the label tokens).
pub fn softmax_labels(logits: &[f32]) -> [f32; LABELS] {
    let mut out = [0f32; LABELS];
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0f32;
    for (o, &l) in out.iter_mut().zip(logits) {
        *o = (l - max).exp();
        sum += *o;
    }
    for o in out.iter_mut() {
        *o /= sum;
    }
    out
}

/// Demonstrations for a base model's few-shot prompt: one span of each of a few kinds (no
/// check; entails or contradicts a common check), the first found in annotated documents.
pub fn demos_from(docs: &[hone_data::contractnli::EvalDocument]) -> Vec<(String, Label)> {
    let mut out: Vec<(String, Label)> = Vec::new();
    let mut want = vec![
        Label::None,
        Label::Entails(3),
        Label::Contradicts(6),
        Label::Entails(14),
    ];
    for d in docs {
        let labels = rl::span_labels(d.spans.len(), &d.labels);
        let offs = hone_data::spans::CharOffsets::new(&d.text);
        for (i, ls) in labels.iter().enumerate() {
            if ls.len() == 1 && want.contains(&ls[0]) {
                let [s, e] = d.spans[i];
                let text = offs
                    .slice(&hone_data::spans::Span::new(s, e))
                    .trim()
                    .to_string();
                if text.is_empty() || text.len() > 400 {
                    continue;
                }
                out.push((text, ls[0]));
                want.retain(|w| *w != ls[0]);
            }
        }
        if want.is_empty() {
            break;
        }
    }
    out
}
