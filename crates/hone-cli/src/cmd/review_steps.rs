//! Steps of the review pipeline that `hone quickstart` and `hone pilot` (on documents) share:
//! the review adapter's training config, its calibration, and reviewing annotated documents
//! with their scores, seconds and cost.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use hone_data::contractnli::EvalDocument;
use hone_eval::contractnli::ContractNliMetrics;
use hone_review::calibrate::CalibrationReport;
use hone_review::engine::Reviewer;
use hone_review::input::InputDoc;
use hone_review::DocReview;
use indicatif::{ProgressBar, ProgressStyle};

/// The window a review adapter trains on (tokens, instruction included).
pub(crate) const MAX_SEQ_LEN: usize = 1152;

/// How a review adapter is trained: LoRA on every linear layer of the top layers, `fast`
/// training, early stopping on the validation documents.
pub(crate) struct ReviewRecipe {
    pub r: usize,
    pub alpha: f32,
    pub lr: f64,
    pub batch: usize,
    pub epochs: usize,
    pub patience: usize,
    pub top_layers: usize,
    pub seed: u64,
}

impl ReviewRecipe {
    /// The recipe in words, for reports.
    pub fn describe(&self) -> String {
        format!(
            "LoRA r {}, alpha {}, all linear layers of the top {} layers, lr {:e}, cosine, \
             batch {}, up to {} epochs, early stopping (patience {})",
            self.r, self.alpha, self.top_layers, self.lr, self.batch, self.epochs, self.patience
        )
    }
}

/// A progress bar for `len` items.
pub(crate) fn bar(len: usize, what: &str) -> ProgressBar {
    let b = ProgressBar::new(len as u64);
    b.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what} [{{bar:30}}] {{pos}}/{{len}} {{msg}} ETA {{eta}}"
        ))
        .expect("valid template")
        .progress_chars("=> "),
    );
    b
}

/// A path as a TOML string (absolute, escaped).
pub(crate) fn toml_path(p: &Path) -> String {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    abs.to_string_lossy()
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}

/// The `train.toml` of a review adapter (`[data] format = "review"`) trained on the documents
/// `train`, early-stopped on `valid`, written to `adapter`.
pub(crate) fn train_toml(
    model: &Path,
    train: &Path,
    valid: &Path,
    adapter: &Path,
    rc: &ReviewRecipe,
) -> String {
    format!(
        r#"[model]
base = "{model}"
[lora]
r = {r}
alpha = {alpha}
dropout = 0.05
target_modules = "all-linear"
[optim]
lr = {lr}
batch_size = {batch}
epochs = {epochs}
max_seq_len = {MAX_SEQ_LEN}
warmup_ratio = 0.05
patience = {patience}
seed = {seed}
[train]
fast = true
top_layers = {top}
log_every = 5
[data]
train = "{train}"
validation = "{val}"
format = "review"
[output]
dir = "{adapter}"
"#,
        model = toml_path(model),
        r = rc.r,
        alpha = rc.alpha,
        lr = rc.lr,
        batch = rc.batch,
        epochs = rc.epochs,
        patience = rc.patience,
        seed = rc.seed,
        top = rc.top_layers,
        train = toml_path(train),
        val = toml_path(valid),
        adapter = toml_path(adapter),
    )
}

/// Calibrates the review adapter on the validation documents (weighing a TF-IDF classifier
/// of the training documents too) with a progress bar, and prints what it chose.
pub(crate) fn calibrate(
    model: &Path,
    adapter: &Path,
    valid: &Path,
    train: &Path,
    max_seq_len: usize,
) -> Result<CalibrationReport> {
    let cb = bar(0, "calibrating");
    let cal = hone_review::calibrate::calibrate_adapter(
        &model.to_string_lossy(),
        adapter,
        valid,
        Some(train),
        max_seq_len,
        &mut |i, n| {
            cb.set_length(n as u64);
            cb.set_position(i as u64);
        },
    )?;
    cb.finish_and_clear();
    eprintln!(
        "      thresholds: mentioned {:.2}, entailment {:.2}; TF-IDF classifier weight {}",
        cal.calibration.mentioned,
        cal.calibration.entailment,
        tfidf_weight(&cal)
    );
    Ok(cal)
}

/// The weight calibration gave the TF-IDF expert (0: not kept).
pub(crate) fn tfidf_weight(cal: &CalibrationReport) -> f64 {
    cal.tfidf.as_ref().map_or(0.0, |t| t.weight)
}

/// Reviews the documents and scores them; returns the metrics, per-document seconds and the
/// reviews (in the documents' order).
pub(crate) fn evaluate(
    r: &Reviewer,
    docs: &[EvalDocument],
    what: &str,
) -> Result<(ContractNliMetrics, Vec<f64>, Vec<DocReview>)> {
    let b = bar(docs.len(), what);
    let mut reviews = Vec::new();
    let mut secs = Vec::new();
    for d in docs {
        let t = Instant::now();
        reviews.push(r.review(&InputDoc::from(d), None)?);
        secs.push(t.elapsed().as_secs_f64());
        b.inc(1);
    }
    b.finish_and_clear();
    let m = hone_review::calibrate::score(docs, &reviews)?;
    Ok((m, secs, reviews))
}

/// The median of per-document seconds.
pub(crate) fn median(secs: &[f64]) -> f64 {
    hone_review::bench::Percentiles::of(secs).p50
}

/// USD per 1,000 documents at the mean of `secs` per document and `usd_per_hour`.
pub(crate) fn cost_per_1k(secs: &[f64], usd_per_hour: f64) -> f64 {
    let mean = secs.iter().sum::<f64>() / secs.len().max(1) as f64;
    mean * 1000.0 / 3600.0 * usd_per_hour
}
