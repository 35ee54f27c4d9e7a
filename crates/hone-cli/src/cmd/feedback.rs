//! `hone data from-feedback`: reviewed answers as training examples (chat answers) or
//! training documents (NDA reviews), checked against the current training data and
//! decontaminated against the evaluation set.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use hone_data::contractnli::EvalDocument;
use hone_data::{Example, Format, NoProgress};
use hone_ops::feedback::{document_qa, DocRef};
use hone_ops::review::ReviewQuery;
use hone_ops::review_doc::FeedbackDocument;

use super::args::StoreLocation;

/// Which reviewed items `from-feedback` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    /// Whichever kind there is; an error when there are both.
    Auto,
    /// Chat and completion answers: chat examples.
    Chat,
    /// NDA reviews: ContractNLI documents.
    Review,
}

#[derive(Args, Debug)]
#[command(
    after_help = "One --out file holds one kind of data: chat answers become chat \
examples (JSONL, `messages`), NDA reviews become review documents (documents.jsonl lines as \
`hone data import contractnli` writes them, for `data.format = \"review\"`, each with a \
`provenance` field). When the marked items are of both kinds, --kind must pick one (run twice \
for both). For review documents --train and --eval are document files (or ContractNLI's JSON \
for --eval): the same text as a training document is reported as a duplicate, or as a \
contradiction naming the checks whose labels differ; the same text as an evaluation document \
is left out."
)]
pub struct FromFeedbackArgs {
    #[command(flatten)]
    pub store: StoreLocation,
    /// Where the examples or documents go (JSONL).
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
    /// Which items to write: chat answers or NDA reviews (auto: the kind there is).
    #[arg(long, value_enum, default_value_t = Kind::Auto)]
    pub kind: Kind,
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
    let docs = if f.documents.is_empty() {
        String::new()
    } else {
        format!(", {} review documents", f.documents.len())
    };
    println!(
        "{} reviewed answers -> {} examples{docs} ({} marked wrong without a correction, {} unusable inputs)",
        items.len(),
        f.examples.len(),
        f.without_correction,
        f.unusable
    );
    for p in &f.problems {
        println!("  left out: {p}");
    }
    let kind = match a.kind {
        Kind::Auto if !f.examples.is_empty() && !f.documents.is_empty() => bail!(
            "the reviewed items are of two kinds, {} chat answers and {} NDA reviews, and one \
             --out file holds one: run with --kind chat and again with --kind review",
            f.examples.len(),
            f.documents.len()
        ),
        Kind::Auto if !f.documents.is_empty() => Kind::Review,
        Kind::Auto => Kind::Chat,
        k => k,
    };
    match kind {
        Kind::Review => {
            if !f.examples.is_empty() {
                println!(
                    "  {} chat examples not written (--kind review)",
                    f.examples.len()
                );
            }
            documents(&a, f.documents)
        }
        _ => {
            if !f.documents.is_empty() {
                println!(
                    "  {} review documents not written (--kind chat)",
                    f.documents.len()
                );
            }
            examples(&a, f.examples)
        }
    }
}

/// Reads a document file for the review QA, naming the option on error.
fn read_docs(p: &Path, opt: &str, gold: bool) -> Result<Vec<EvalDocument>> {
    let r = if gold {
        hone_data::contractnli::read_gold(p)
    } else {
        hone_data::contractnli::read_documents(p)
    };
    r.with_context(|| {
        format!(
            "{opt} {}: NDA reviews are checked against review documents",
            p.display()
        )
    })
}

fn documents(a: &FromFeedbackArgs, mut docs: Vec<FeedbackDocument>) -> Result<()> {
    let train = match &a.train {
        Some(p) => read_docs(p, "--train", false)?,
        None => Vec::new(),
    };
    let eval = match &a.eval {
        Some(p) => read_docs(p, "--eval", true)?,
        None => Vec::new(),
    };
    let q = document_qa(&docs, &train, &eval);
    for g in &q.findings {
        let other = match g.other {
            DocRef::Train(i) => format!("train document {} ({})", i + 1, train[i].id),
            DocRef::New(j) => format!("correction {}", j + 1),
        };
        let this = format!("correction {} ({})", g.new + 1, docs[g.new].doc.id);
        if g.conflicts.is_empty() {
            println!("  duplicate: {this}, {other}");
        } else {
            println!(
                "  contradicts: {this}, {other} on {}",
                g.conflicts.join(", ")
            );
        }
    }
    if !q.contaminated.is_empty() {
        println!(
            "  {} corrections overlap the evaluation set: left out",
            q.contaminated.len()
        );
        let mut k = 0;
        docs.retain(|_| {
            k += 1;
            !q.contaminated.contains(&(k - 1))
        });
    }
    let mut text = String::new();
    for d in &docs {
        text.push_str(&d.to_json());
        text.push('\n');
    }
    hone_data::atomic::write_file(&a.out, text.as_bytes())?;
    println!(
        "{} review documents written to {}",
        docs.len(),
        a.out.display()
    );
    Ok(())
}

fn examples(a: &FromFeedbackArgs, mut examples: Vec<Example>) -> Result<()> {
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
