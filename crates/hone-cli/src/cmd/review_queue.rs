//! `hone review-queue`: the sampled answers waiting for a person, least confident first.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use hone_ops::review::{Mark, ReviewItem, ReviewQuery};

use super::args::StoreLocation;

#[derive(Subcommand, Debug)]
pub enum ReviewQueueCmd {
    /// The pending answers in review order (or, with --marked, the reviewed ones).
    List(ListArgs),
    /// One answer whole: the input, the answer and its mark.
    Show(ShowArgs),
    /// Mark an answer correct, wrong or critical, with the answer it should have been.
    Mark(MarkArgs),
}

#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub store: StoreLocation,
    /// The reviewed answers instead of the pending ones.
    #[arg(long)]
    pub marked: bool,
    /// Only answers of this version (NAME@N).
    #[arg(long)]
    pub version: Option<String>,
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    #[command(flatten)]
    pub store: StoreLocation,
    pub id: i64,
}

#[derive(Args, Debug)]
pub struct MarkArgs {
    #[command(flatten)]
    pub store: StoreLocation,
    pub id: i64,
    /// correct, wrong or critical.
    pub mark: String,
    /// The answer it should have been.
    #[arg(long, conflicts_with = "output_file")]
    pub output: Option<String>,
    /// The answer it should have been, from a file.
    #[arg(long)]
    pub output_file: Option<PathBuf>,
    #[arg(long)]
    pub note: Option<String>,
}

pub fn run(c: ReviewQueueCmd) -> Result<()> {
    match c {
        ReviewQueueCmd::List(a) => list(a),
        ReviewQueueCmd::Show(a) => show(a),
        ReviewQueueCmd::Mark(a) => mark(a),
    }
}

fn one_line(s: &str, n: usize) -> String {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > n {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    } else {
        s
    }
}

/// The last user turn of a logged input (or the prompt).
fn question(it: &ReviewItem) -> String {
    match &it.input {
        serde_json::Value::String(p) => p.clone(),
        serde_json::Value::Array(a) => a
            .iter()
            .rev()
            .find(|m| m["role"] == "user")
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default()
            .to_string(),
        v => v.to_string(),
    }
}

fn list(a: ListArgs) -> Result<()> {
    let store = a.store.open()?;
    let items = store.review_items(&ReviewQuery {
        pending: Some(!a.marked),
        version: a.version.clone(),
        id: None,
        limit: a.limit,
    })?;
    if items.is_empty() {
        println!(
            "no {} answers",
            if a.marked { "reviewed" } else { "pending" }
        );
        return Ok(());
    }
    println!(
        "{:>6}  {:<12}  {:>8}  {:<9}  {:<40}  answer",
        "id", "version", "logprob", "mark", "question"
    );
    for it in &items {
        println!(
            "{:>6}  {:<12}  {:>8}  {:<9}  {:<40}  {}",
            it.id,
            it.version.as_deref().unwrap_or(&it.model),
            it.mean_logprob
                .map(|l| format!("{l:.3}"))
                .unwrap_or_else(|| "-".into()),
            it.mark.map(Mark::as_str).unwrap_or("pending"),
            one_line(&question(it), 40),
            one_line(it.corrected.as_deref().unwrap_or(&it.output), 40)
        );
    }
    Ok(())
}

fn find(store: &dyn hone_ops::Store, id: i64) -> Result<ReviewItem> {
    store
        .review_items(&ReviewQuery {
            id: Some(id),
            limit: 1,
            ..Default::default()
        })?
        .pop()
        .with_context(|| format!("no review item {id} (hone review-queue list shows them)"))
}

fn show(a: ShowArgs) -> Result<()> {
    let store = a.store.open()?;
    let it = find(store.as_ref(), a.id)?;
    println!(
        "item {} (request {}, {}, {})",
        it.id,
        it.request_id,
        it.version.as_deref().unwrap_or(&it.model),
        hone_ops::format_utc(it.time_ms / 1000)
    );
    match &it.input {
        serde_json::Value::Array(msgs) => {
            for m in msgs {
                println!(
                    "\n[{}]\n{}",
                    m["role"].as_str().unwrap_or("?"),
                    m["content"].as_str().unwrap_or_default()
                );
            }
        }
        v => println!(
            "\n[prompt]\n{}",
            v.as_str().map(str::to_string).unwrap_or(v.to_string())
        ),
    }
    println!(
        "\n[answer] (mean token log-prob {})\n{}",
        it.mean_logprob
            .map(|l| format!("{l:.3}"))
            .unwrap_or_else(|| "-".into()),
        it.output
    );
    match it.mark {
        None => println!("\npending"),
        Some(m) => {
            println!("\nmarked {}", m.as_str());
            if let Some(c) = &it.corrected {
                println!("[corrected]\n{c}");
            }
            if let Some(n) = &it.note {
                println!("note: {n}");
            }
        }
    }
    Ok(())
}

fn mark(a: MarkArgs) -> Result<()> {
    let m = Mark::parse(&a.mark)?;
    let corrected = match (&a.output, &a.output_file) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(p)) => Some(
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
        ),
        (None, None) => None,
    };
    if m == Mark::Correct && corrected.is_some() {
        bail!("an answer marked correct keeps its text; mark it wrong to give a correction");
    }
    let store = a.store.open()?;
    let it = store.mark_review(a.id, m, corrected.as_deref(), a.note.as_deref())?;
    println!(
        "item {} marked {}{}",
        it.id,
        m.as_str(),
        if it.corrected.is_some() {
            ", with a correction"
        } else {
            ""
        }
    );
    Ok(())
}
