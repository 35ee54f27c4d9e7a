//! `hone data qa --memorization MODEL`: examples whose answer the base model finds very likely
//! (mean log-probability per answer token above the threshold), spread over the file.

use std::path::Path;

use anyhow::{Context, Result};
use hone_data::qa::Memorization;
use hone_data::{Format, Records};
use hone_model::{LoadOptions, LoadedModel};
use hone_train::answer_logprob::mean_answer_logprob;

/// Calibrated on ContractNLI clauses (`cargo run --release -p hone-train --example
/// memorization_calibration`): SmolLM2's own continuations score -0.3 to -2.5 (median -1.19),
/// the real ones -2.1 to -5.6 (median -4.10); -2.8 puts 2 of 120 on the wrong side.
pub const DEFAULT_THRESHOLD: f64 = -2.8;

/// Answers longer than this (prompt included) are not scored (the logits of every position
/// are held at once).
const MAX_TOKENS: usize = 2048;

pub fn check(
    path: &Path,
    format: &Format,
    records: usize,
    model: &str,
    threshold: f64,
    sample: usize,
) -> Result<Memorization> {
    let m = LoadedModel::load(model, &LoadOptions::default())
        .with_context(|| format!("cannot load model `{model}`"))?;
    let stride = records.div_ceil(sample).max(1);
    let bar = indicatif::ProgressBar::new(records.div_ceil(stride) as u64);
    bar.set_message("qa: memorization");
    let mut out = Memorization {
        model: model.to_string(),
        threshold,
        ..Memorization::default()
    };
    let mut recs = Records::open(path, format)?;
    let mut k = 0usize;
    while let Some(rec) = recs.next_record()? {
        k += 1;
        if !(k - 1).is_multiple_of(stride) {
            continue;
        }
        bar.inc(1);
        let Ok(ex) = rec.parsed else { continue };
        let scored = mean_answer_logprob(&m.model, &m.tokenizer, &m.template, &ex, MAX_TOKENS)
            .with_context(|| format!("{}:{}: scoring the answer", path.display(), rec.line))?;
        if let Some((lp, _)) = scored {
            out.checked += 1;
            if lp > threshold {
                out.flagged.push((rec.line, lp));
            }
        }
    }
    bar.finish_and_clear();
    out.flagged.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(out)
}
