//! `hone bench qa`: `hone data qa`'s precision and recall on real NDA clauses with planted
//! near-duplicates, minimal pairs and templates (`hone_data::qa_bench`), and its speed on a
//! data set of N examples.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use hone_data::contractnli::official;
use hone_data::qa::{self, QaOptions};
use hone_data::qa_bench::{self, BenchOptions};
use hone_data::{Format, NoProgress};

#[derive(Args, Debug)]
pub struct BenchQaArgs {
    /// ContractNLI's official JSON (e.g. ../shared/data/contractnli/train_dev.json).
    #[arg(long)]
    contractnli: PathBuf,
    /// Seed of the planted problems.
    #[arg(long, default_value_t = 24)]
    seed: u64,
    /// Jaccard similarity for near-duplicates (as `hone data qa --threshold`).
    #[arg(long, default_value_t = 0.7)]
    threshold: f64,
    /// Largest cluster that is not over-represented (as `hone data qa --cap`).
    #[arg(long, default_value_t = 5)]
    cap: usize,
    /// Also time `hone data qa` on a data set of this many examples (the planted set repeated
    /// with a word changed in each copy).
    #[arg(long)]
    speed: Option<usize>,
    /// One JSON object on stdout.
    #[arg(long)]
    json: bool,
}

pub fn run(a: BenchQaArgs) -> Result<()> {
    let ds = official::read(&a.contractnli)?;
    let planted = qa_bench::build(
        &ds,
        &BenchOptions {
            seed: a.seed,
            ..BenchOptions::default()
        },
    );
    let dir = tempfile::tempdir().context("a temporary folder")?;
    let path = dir.path().join("planted.jsonl");
    std::fs::write(&path, planted.lines.join("\n") + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    let opts = QaOptions {
        threshold: a.threshold,
        cap: a.cap,
        ..QaOptions::default()
    };
    let rep = qa::run(&path, &Format::Jsonl, None, &opts, None, &NoProgress)?;
    let score = qa_bench::score(&planted, &rep.findings);
    let speed = match a.speed {
        None => None,
        Some(n) => {
            let lines = qa_bench::scaled(&planted, n, a.seed);
            let big = dir.path().join("scaled.jsonl");
            std::fs::write(&big, lines.join("\n") + "\n")
                .with_context(|| format!("writing {}", big.display()))?;
            let t = Instant::now();
            qa::run(&big, &Format::Jsonl, None, &opts, None, &NoProgress)?;
            Some((n, t.elapsed().as_secs_f64()))
        }
    };
    if a.json {
        let mut v = serde_json::to_value(&score)?;
        if let Some((n, s)) = speed {
            v["speed"] = serde_json::json!({"examples": n, "seconds": s});
        }
        println!("{v}");
        return Ok(());
    }
    let (nd, t) = (&score.near_duplicates, &score.templates);
    println!(
        "{} lines from {} (threshold {}, cap {})",
        score.lines,
        a.contractnli.display(),
        a.threshold,
        a.cap
    );
    println!(
        "near-duplicates  recall {:.3} ({} of {} edit pairs)  precision {:.3} ({} of {} pairs \
         reported)",
        nd.recall, nd.found, nd.planted, nd.precision, nd.correct, nd.reported
    );
    for (kind, found, planted) in &score.near_duplicate_recall_by_edit {
        println!("  {kind:<28} {found:>4} of {planted:>4}");
    }
    println!(
        "templates        recall {:.3} ({} of {})  precision {:.3} ({} of {} groups)",
        t.recall, t.found, t.planted, t.precision, t.correct, t.reported
    );
    println!(
        "minimal pairs    {} of {} flagged (their answers are meant to differ)",
        score.minimal_pairs_flagged, score.minimal_pairs
    );
    if let Some((n, s)) = speed {
        println!(
            "speed            {n} examples in {s:.1} s ({:.0} examples/s)",
            n as f64 / s
        );
    }
    Ok(())
}
