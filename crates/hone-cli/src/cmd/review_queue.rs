//! `hone review-queue`: the sampled answers waiting for a person, least confident first.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use hone_ops::review::{Mark, ReviewItem, ReviewQuery};
use hone_ops::review_doc::{parse_answer, ReviewAnswer, ReviewInput};

use super::args::StoreLocation;

#[derive(Subcommand, Debug)]
pub enum ReviewQueueCmd {
    /// The pending answers in review order (or, with --marked, the reviewed ones).
    List(ListArgs),
    /// One answer whole: the input, the answer and its mark (for an NDA review, per check: the
    /// label and the top evidence, with the correction's changes).
    Show(ShowArgs),
    /// Mark an answer correct, wrong or critical, with the answer it should have been (for an
    /// NDA review: a corrected review JSON, `{"checks": {"nda-3": {"label": "Contradiction",
    /// "evidence": [{"start": S, "end": E}]}}}`, evidence being spans of the document; checks
    /// left out keep the model's decision).
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
    /// The answer it should have been (for an NDA review, the corrected review JSON).
    #[arg(long, conflicts_with = "output_file")]
    pub output: Option<String>,
    /// The answer it should have been, from a file (for an NDA review, the corrected review
    /// JSON).
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

/// The last user turn of a logged input (or the prompt, or the reviewed document's id).
fn question(it: &ReviewItem) -> String {
    if ReviewInput::is_review(&it.input) {
        return format!("review of {}", it.input["doc_id"].as_str().unwrap_or("?"));
    }
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

/// The answer (or its correction) in a line; for an NDA review, its label counts.
fn answer_summary(it: &ReviewItem) -> String {
    let text = one_line(it.corrected.as_deref().unwrap_or(&it.output), 40);
    let Ok(input) = ReviewInput::parse(&it.input) else {
        return text;
    };
    let answer = parse_answer("output", &it.output, &input).unwrap_or_default();
    let answer = match &it.corrected {
        Some(c) => match parse_answer("corrected", c, &input) {
            Ok(c) => answer.overlaid(&c),
            Err(_) => return text,
        },
        None => answer,
    };
    let n = |l: &str| answer.checks.values().filter(|c| c.label == l).count();
    format!(
        "{} entailed, {} contradicted, {} not mentioned",
        n("Entailment"),
        n("Contradiction"),
        n("NotMentioned")
    )
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
            answer_summary(it)
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
    if ReviewInput::is_review(&it.input) {
        return show_review(&it);
    }
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
    if let Some(c) = &corrected {
        let it = find(store.as_ref(), a.id)?;
        if ReviewInput::is_review(&it.input) {
            let input = ReviewInput::parse(&it.input)?;
            parse_answer("corrected", c, &input)
                .with_context(|| format!("item {} is an NDA review: bad correction", a.id))?;
        }
    }
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

/// An NDA review item: the document, then per check the model's label and best evidence, and
/// the reviewer's where they differ.
fn show_review(it: &ReviewItem) -> Result<()> {
    let input = ReviewInput::parse(&it.input)?;
    println!(
        "\n[document] {} ({}): {} characters, {} spans",
        input.doc_id,
        input.file_name,
        input.char_len(),
        input.spans.len()
    );
    let output = parse_answer("output", &it.output, &input);
    let corrected = match &it.corrected {
        Some(c) => Some(parse_answer("corrected", c, &input)?),
        None => None,
    };
    let model = match &output {
        Ok(a) => a.clone(),
        Err(e) => {
            println!("the model's answer does not read: {e}\n{}", it.output);
            ReviewAnswer::default()
        }
    };
    println!(
        "\n[answer] (mean token log-prob {})",
        it.mean_logprob
            .map(|l| format!("{l:.3}"))
            .unwrap_or_else(|| "-".into())
    );
    let evidence = |a: &ReviewAnswer, id: &str| -> String {
        let Some(c) = a.checks.get(id) else {
            return String::new();
        };
        match c.evidence.first() {
            None => String::new(),
            Some(e) => {
                let span = input
                    .span_index(e.start, e.end)
                    .map(|i| format!("span {i} "))
                    .unwrap_or_default();
                let more = if c.evidence.len() > 1 {
                    format!(" (+{} more)", c.evidence.len() - 1)
                } else {
                    String::new()
                };
                format!(
                    "{span}[{}, {}) \"{}\"{more}",
                    e.start,
                    e.end,
                    one_line(&input.slice(e.start, e.end), 50)
                )
            }
        }
    };
    println!(
        "{:<7}  {:<32}  {:<13}  top evidence",
        "check", "name", "label"
    );
    for c in hone_data::nda::CHECKS.iter() {
        let Some(m) = model.checks.get(c.id) else {
            continue;
        };
        println!(
            "{:<7}  {:<32}  {:<13}  {}",
            c.id,
            c.name,
            m.label,
            evidence(&model, c.id)
        );
    }
    match it.mark {
        None => println!("\npending"),
        Some(m) => {
            println!("\nmarked {}", m.as_str());
            if let Some(c) = &corrected {
                println!("[corrected]");
                let mut changed = 0;
                for (id, k) in &c.checks {
                    if model.checks.get(id) == Some(k) {
                        continue;
                    }
                    changed += 1;
                    let was = model
                        .checks
                        .get(id)
                        .map(|m| m.label.as_str())
                        .unwrap_or("-");
                    println!(
                        "{:<7}  {:<13} (was {was})  {}{}",
                        id,
                        k.label,
                        evidence(c, id),
                        if k.evidence.is_empty() {
                            "no evidence"
                        } else {
                            ""
                        }
                    );
                }
                if changed == 0 {
                    println!("(the same labels and evidence as the answer)");
                }
            }
            if let Some(n) = &it.note {
                println!("note: {n}");
            }
        }
    }
    Ok(())
}
