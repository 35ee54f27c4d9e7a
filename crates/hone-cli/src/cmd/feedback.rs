//! `hone data from-feedback`: reviewed answers as training examples, checked against the
//! current training data and decontaminated against the evaluation set.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use hone_data::{Format, NoProgress};
use hone_ops::review::ReviewQuery;

use super::args::StoreLocation;

#[derive(Args, Debug)]
pub struct FromFeedbackArgs {
    #[command(flatten)]
    pub store: StoreLocation,
    /// Where the examples go (JSONL, chat shape).
    #[arg(long, short)]
    pub out: PathBuf,
    /// The current training data: corrections that duplicate or contradict it are reported.
    #[arg(long)]
    pub train: Option<PathBuf>,
    /// The evaluation set: corrections that overlap it are left out (contamination).
    #[arg(long)]
    pub eval: Option<PathBuf>,
    /// Only answers of this version (NAME@N).
    #[arg(long)]
    pub version: Option<String>,
}

pub fn run(a: FromFeedbackArgs) -> Result<()> {
    let store = a.store.open()?;
    let items = store.review_items(&ReviewQuery {
        pending: Some(false),
        version: a.version.clone(),
        id: None,
        limit: usize::MAX >> 1,
    })?;
    let f = hone_ops::feedback::examples_from(&items);
    let mut examples = f.examples;
    println!(
        "{} reviewed answers -> {} examples ({} marked wrong without a correction, {} unusable inputs)",
        items.len(),
        examples.len(),
        f.without_correction,
        f.unusable
    );
    if a.train.is_some() || a.eval.is_some() {
        // QA of the training data with the corrections appended: findings on their lines.
        let tmp = tempfile::tempdir()?;
        let combined = tmp.path().join("combined.jsonl");
        let mut text = match &a.train {
            Some(p) => std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?,
            None => String::new(),
        };
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        let first = text.lines().count() + 1;
        for e in &examples {
            text.push_str(&e.to_json());
            text.push('\n');
        }
        std::fs::write(&combined, text)?;
        let eval_format = a.eval.as_ref().map(|p| Format::for_path(p, None));
        let rep = hone_data::qa::run(
            &combined,
            &Format::Jsonl,
            a.eval.as_deref().zip(eval_format.as_ref()),
            &hone_data::qa::QaOptions::default(),
            None,
            &NoProgress,
        )?;
        let ours = |g: &hone_data::qa::Group| g.lines.iter().any(|&l| l >= first);
        let mut contaminated = std::collections::HashSet::new();
        for g in rep.findings.contamination.iter().filter(|g| ours(g)) {
            contaminated.extend(g.lines.iter().filter(|&&l| l >= first).map(|l| l - first));
        }
        for (what, groups) in [
            ("duplicate", &rep.findings.exact_duplicates),
            ("near-duplicate", &rep.findings.near_duplicates),
            ("contradicts", &rep.findings.contradictions),
        ] {
            for g in groups.iter().filter(|g| ours(g)) {
                let lines: Vec<String> = g
                    .lines
                    .iter()
                    .map(|&l| {
                        if l >= first {
                            format!("correction {}", l - first + 1)
                        } else {
                            format!("train line {l}")
                        }
                    })
                    .collect();
                println!("  {what}: {}", lines.join(", "));
            }
        }
        if !contaminated.is_empty() {
            println!(
                "  {} corrections overlap the evaluation set: left out",
                contaminated.len()
            );
            examples = examples
                .into_iter()
                .enumerate()
                .filter(|(i, _)| !contaminated.contains(i))
                .map(|(_, e)| e)
                .collect();
        }
    }
    let n = hone_data::jsonl::write_examples(&a.out, &examples)?;
    println!("{n} examples written to {}", a.out.display());
    Ok(())
}
