//! `hone retrain` for a review adapter: the new examples are annotated documents (`hone data
//! from-feedback --kind review`: documents.jsonl lines with provenance), appended to the
//! recorded documents; prod and the new adapter are compared by reviewing the corrected
//! documents and the evaluation documents and scoring them as `hone eval contractnli` does
//! (3-class accuracy, macro over the checks).

use std::path::Path;

use anyhow::{Context, Result};
use hone_data::contractnli::EvalDocument;
use hone_review::engine::{EngineOptions, Reviewer};
use hone_review::input::InputDoc;

/// The documents of a feedback file, each with its line as written (provenance kept).
pub fn read_feedback(path: &Path) -> Result<(Vec<EvalDocument>, Vec<String>)> {
    let docs = hone_data::contractnli::read_documents(path)
        .with_context(|| format!("{}: review feedback is documents.jsonl", path.display()))?;
    let text = std::fs::read_to_string(path)?;
    let lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .collect();
    anyhow::ensure!(
        lines.len() == docs.len(),
        "{}: {} lines but {} documents",
        path.display(),
        lines.len(),
        docs.len()
    );
    Ok((docs, lines))
}

/// The evaluation documents: documents.jsonl or ContractNLI's JSON.
pub fn read_eval(path: &Path) -> Result<Vec<EvalDocument>> {
    Ok(hone_data::contractnli::read_gold(path)?)
}

/// 3-class accuracy (macro over checks) of `adapter`'s reviews of `docs` against their labels.
pub fn accuracy(model: &str, adapter: &Path, docs: &[EvalDocument]) -> Result<f64> {
    if docs.is_empty() {
        return Ok(f64::NAN);
    }
    let reviewer = Reviewer::load(
        model,
        Some(adapter),
        EngineOptions {
            max_evidence: 0,
            ..EngineOptions::default()
        },
    )
    .with_context(|| format!("cannot load the review adapter {}", adapter.display()))?;
    let reviews = docs
        .iter()
        .map(|d| {
            reviewer
                .review(&InputDoc::from(d), None)
                .with_context(|| format!("cannot review {}", d.id))
        })
        .collect::<Result<Vec<_>>>()?;
    let m = hone_review::calibrate::score(docs, &reviews)?;
    Ok(m.acc3.unwrap_or(f64::NAN))
}
