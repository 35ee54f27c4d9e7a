//! `hone review`: contracts in, the 17 checks with evidence and playbook flags out.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use hone_review::engine::{EngineOptions, ReviewEngine, Reviewer};
use hone_review::input::{read_inputs, InputDoc, ReadOptions};
use hone_review::playbook::Playbook;
use hone_review::DocReview;
use indicatif::{ProgressBar, ProgressStyle};

use super::args::ModelName;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A Markdown report per document.
    Md,
    /// One JSON document (an array when there are several).
    Json,
    /// One JSON object per line per document (what `hone eval contractnli` scores).
    Jsonl,
    /// A self-contained HTML report per document (evidence highlighted in the text).
    Html,
}

#[derive(Args, Debug)]
#[command(mut_arg("model", |a| a.help(
    "The base model: a cached name, a .gguf file or a Hugging Face folder"
)))]
pub struct ReviewArgs {
    /// Contracts: .txt, .md, .pdf, or ContractNLI JSON / documents.jsonl (every document in it).
    #[arg(required_unless_present = "calibrate")]
    pub contracts: Vec<PathBuf>,
    /// Instead of reviewing: calibrate the adapter on these annotated documents
    /// (documents.jsonl): weigh a TF-IDF classifier of its training documents against it,
    /// tune the decision thresholds, and write review.json, tfidf.safetensors (when its weight
    /// is above 0) and validation.json beside it (`hone train` does this itself when the run
    /// has validation documents).
    #[arg(long, requires = "adapter")]
    pub calibrate: Option<PathBuf>,
    /// With --calibrate: tune the thresholds for the model alone, without the TF-IDF expert
    /// (its weight set to 0), to measure what the language model does by itself.
    #[arg(long, requires = "calibrate")]
    pub model_alone: bool,
    /// The review adapter (a folder from `hone train` with data.format = "review"); default:
    /// the NDA review adapter that comes with hone (`nda-review`, for the smollm2 base; its
    /// model card is models/nda-review/README.md).
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// Review with the base model alone, without the built-in adapter (close to chance: the
    /// base model has not learnt the review labels; for comparisons).
    #[arg(long, conflicts_with_all = ["adapter", "calibrate"])]
    pub base_only: bool,
    #[command(flatten)]
    pub model: ModelName,
    /// The firm's playbook (TOML); default: the shipped playbook for a disclosing party.
    #[arg(long)]
    pub playbook: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "md")]
    pub format: Format,
    /// Write here instead of stdout: a file, or for md/html with several documents a folder
    /// (one report per document and an index.html).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Instead of an adapter: few-shot demonstrations for the base model, taken from these
    /// annotated documents (documents.jsonl).
    #[arg(long, conflicts_with = "adapter")]
    pub demos_from: Option<PathBuf>,
    /// Instead of a model: the TF-IDF + logistic-regression baseline, trained on these
    /// annotated documents (documents.jsonl) and read through the same decisions, so
    /// `hone eval contractnli` compares it with an adapter trained on the same documents.
    #[arg(long, conflicts_with_all = ["adapter", "demos_from", "base_only"])]
    pub tfidf_from: Option<PathBuf>,
    /// With --tfidf-from: validation documents that choose its L2 penalty and tune its
    /// decision thresholds (as `hone train` does for an adapter).
    #[arg(long, requires = "tfidf_from")]
    pub tfidf_valid: Option<PathBuf>,
    /// Refuse texts longer than this many characters.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_chars: usize,
    /// Evidence spans listed per check, best first; 0 lists every span with a score (the
    /// full ranking ContractNLI's evidence mAP is computed over).
    #[arg(long, default_value_t = hone_review::aggregate::MAX_EVIDENCE)]
    pub max_evidence: usize,
}

#[derive(Args, Debug)]
pub struct BenchReviewArgs {
    /// Contracts to review (any format `hone review` reads); default: synthetic NDAs of about
    /// 100 spans each.
    pub contracts: Vec<PathBuf>,
    /// The review adapter (LoRA adds its own compute); default: the built-in one.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// Time the base model alone, without an adapter.
    #[arg(long, conflicts_with = "adapter")]
    pub base_only: bool,
    #[command(flatten)]
    pub model: ModelName,
    /// Synthetic contracts when none are given.
    #[arg(long, default_value_t = 3)]
    pub docs: usize,
    /// Times each document is reviewed.
    #[arg(long, default_value_t = 2)]
    pub runs: usize,
    /// Time hone alone, without the one-prompt-per-span peer (which takes several times as
    /// long on a real adapter).
    #[arg(long)]
    pub no_peer: bool,
    /// One JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn load_reviewer(
    model: &str,
    adapter: Option<&Path>,
    demos_from: Option<&Path>,
) -> Result<Reviewer> {
    let demos = match demos_from {
        Some(p) => hone_review::engine::demos_from(&hone_data::contractnli::read_documents(p)?),
        None => Vec::new(),
    };
    let sp = ProgressBar::new_spinner();
    sp.set_message(format!("loading {model}"));
    sp.enable_steady_tick(std::time::Duration::from_millis(120));
    let r = Reviewer::load(
        model,
        adapter,
        EngineOptions {
            demos,
            ..EngineOptions::default()
        },
    );
    sp.finish_and_clear();
    let r = r?;
    if adapter.is_none() && demos_from.is_none() {
        eprintln!(
            "warning: no adapter: the base model has not learnt the review labels, so these \
             results are close to chance"
        );
    }
    Ok(r)
}

/// The adapter a review runs with: `--adapter`, else none for the base model (`--base-only`,
/// `--demos-from`), else the built-in NDA review adapter, which needs the base it was trained
/// on. Says which on stderr when it is the built-in one.
pub fn review_adapter(
    model: &str,
    adapter: Option<&Path>,
    base_model_alone: bool,
) -> Result<Option<PathBuf>> {
    if let Some(a) = adapter {
        return Ok(Some(a.to_path_buf()));
    }
    if base_model_alone {
        return Ok(None);
    }
    use hone_review::builtin;
    if model != builtin::BASE {
        bail!(
            "the built-in NDA review adapter `{}` is for the `{}` base model, not `{model}`: \
             give an adapter trained on it (--adapter DIR; scripts/contractnli-benchmark.sh \
             trains one) or review with the base model alone (--base-only)",
            builtin::NAME,
            builtin::BASE
        );
    }
    let dir = builtin::adapter_dir()?;
    eprintln!(
        "using the built-in NDA review adapter `{}` ({} + LoRA trained on ContractNLI, \
         CC BY 4.0; model card: models/nda-review/README.md); --adapter DIR uses your own",
        builtin::NAME,
        builtin::BASE
    );
    Ok(Some(dir))
}

/// A review adapter's calibration on validation documents (`hone review --calibrate`, and
/// `hone train` right after training): the TF-IDF expert's weight and the decision
/// thresholds (`review.json`, `tfidf.safetensors`, `validation.json` in the adapter folder).
/// With `model_alone` the TF-IDF expert is left out (weight 0) whatever the training data.
pub fn calibrate(
    cfg: &hone_train::TrainConfig,
    val: &Path,
    adapter: &Path,
    model_alone: bool,
) -> Result<()> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} calibrating on validation documents [{bar:30}] {pos}/{len}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let mut on_doc = |i: usize, n: usize| {
        bar.set_length(n as u64);
        bar.set_position(i as u64);
    };
    let rep = if model_alone {
        hone_review::calibrate::calibrate_adapter(
            &cfg.model.base,
            adapter,
            val,
            None,
            cfg.optim.max_seq_len,
            &mut on_doc,
        )?
    } else {
        hone_review::calibrate::calibrate_trained_adapter(
            &cfg.model.base,
            adapter,
            val,
            &cfg.data.train,
            cfg.optim.max_seq_len,
            &mut |w| eprintln!("warning: {w}"),
            &mut on_doc,
        )?
    };
    bar.finish_and_clear();
    println!("{}", rep.summary(adapter));
    Ok(())
}

/// Trains the TF-IDF + logistic-regression baseline (`--tfidf-from`).
fn tfidf_baseline(
    train: &Path,
    valid: Option<&Path>,
    max_evidence: usize,
) -> Result<hone_review::tfidf_reviewer::TfidfReviewer> {
    let train_docs = hone_data::contractnli::read_documents(train)?;
    if train_docs.is_empty() {
        bail!(
            "{}: no annotated documents to train the baseline on",
            train.display()
        );
    }
    let valid_docs = match valid {
        Some(p) => Some(hone_data::contractnli::read_documents(p)?),
        None => None,
    };
    let sp = ProgressBar::new_spinner();
    sp.set_message(format!(
        "training the TF-IDF baseline on {} documents",
        train_docs.len()
    ));
    sp.enable_steady_tick(std::time::Duration::from_millis(120));
    let r = hone_review::tfidf_reviewer::TfidfReviewer::train(
        &train_docs,
        valid_docs.as_deref(),
        &hone_review::tfidf::TfidfOptions::default(),
    );
    sp.finish_and_clear();
    let mut r = r?;
    r.max_evidence = max_evidence;
    eprintln!("{}", r.note);
    Ok(r)
}

/// Reviews every document with a progress bar.
pub fn review_all(
    reviewer: &dyn ReviewEngine,
    docs: &[InputDoc],
    playbook: Option<&Playbook>,
) -> Result<Vec<DocReview>> {
    let bar = ProgressBar::new(docs.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} reviewing [{bar:30}] {pos}/{len} {msg} ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let mut out = Vec::with_capacity(docs.len());
    for d in docs {
        bar.set_message(d.doc_id.clone());
        let r = reviewer
            .review(d, playbook)
            .with_context(|| format!("reviewing {} ({})", d.doc_id, d.source))?;
        out.push(r);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(out)
}

fn write_out(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    hone_data::atomic::write_file(path, bytes)?;
    Ok(())
}

fn safe_name(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub fn run(a: ReviewArgs) -> Result<()> {
    if let (Some(docs), Some(adapter)) = (&a.calibrate, &a.adapter) {
        let cfg = hone_train::TrainConfig::load(&adapter.join("train_config.toml"), &[])
            .with_context(|| format!("{} is not a hone training run", adapter.display()))?;
        return calibrate(&cfg, docs, adapter, a.model_alone);
    }
    let playbook = match &a.playbook {
        Some(p) => Playbook::load(p)?,
        None => Playbook::default_disclosing(),
    };
    let opt = ReadOptions {
        max_chars: a.max_chars,
    };
    let mut docs = Vec::new();
    for p in &a.contracts {
        docs.extend(read_inputs(p, &opt)?);
    }
    if docs.is_empty() {
        bail!("no documents to review");
    }
    let engine: Box<dyn ReviewEngine> = match &a.tfidf_from {
        Some(train) => Box::new(tfidf_baseline(
            train,
            a.tfidf_valid.as_deref(),
            a.max_evidence,
        )?),
        None => {
            let model = a.model.for_adapter(a.adapter.as_deref());
            let adapter = review_adapter(
                &model,
                a.adapter.as_deref(),
                a.base_only || a.demos_from.is_some(),
            )?;
            let mut reviewer = load_reviewer(&model, adapter.as_deref(), a.demos_from.as_deref())?;
            reviewer.options.max_evidence = a.max_evidence;
            Box::new(reviewer)
        }
    };
    let reviews = review_all(engine.as_ref(), &docs, Some(&playbook))?;
    for r in &reviews {
        for w in &r.warnings {
            eprintln!("warning: {}: {w}", r.source);
        }
    }
    match a.format {
        Format::Jsonl | Format::Json => {
            let text = if a.format == Format::Jsonl {
                let mut s = String::new();
                for r in &reviews {
                    s.push_str(&serde_json::to_string(r)?);
                    s.push('\n');
                }
                s
            } else if reviews.len() == 1 {
                hone_review::report::json(&reviews[0])?
            } else {
                serde_json::to_string_pretty(&reviews)? + "\n"
            };
            match &a.out {
                Some(p) => {
                    write_out(p, text.as_bytes())?;
                    eprintln!("wrote {} review(s) to {}", reviews.len(), p.display());
                }
                None => std::io::stdout().write_all(text.as_bytes())?,
            }
        }
        Format::Md | Format::Html => {
            let render = |r: &DocReview| match a.format {
                Format::Html => hone_review::report::html(r),
                _ => hone_review::report::markdown(r),
            };
            let ext = if a.format == Format::Html {
                "html"
            } else {
                "md"
            };
            match (&a.out, reviews.len()) {
                (None, _) => {
                    let mut s = String::new();
                    for r in &reviews {
                        s.push_str(&render(r));
                        s.push('\n');
                    }
                    std::io::stdout().write_all(s.as_bytes())?;
                }
                (Some(p), 1) if p.extension().is_some() => {
                    write_out(p, render(&reviews[0]).as_bytes())?;
                    eprintln!("wrote {}", p.display());
                }
                (Some(dir), _) => {
                    let mut links = Vec::new();
                    for r in &reviews {
                        let name = format!("{}.{ext}", safe_name(&r.doc_id));
                        write_out(&dir.join(&name), render(r).as_bytes())?;
                        links.push(name);
                    }
                    if a.format == Format::Html {
                        write_out(
                            &dir.join("index.html"),
                            hone_review::report::html_index(&reviews, &links).as_bytes(),
                        )?;
                    }
                    eprintln!("wrote {} report(s) to {}", reviews.len(), dir.display());
                }
            }
        }
    }
    Ok(())
}

/// `hone bench review`.
pub fn bench(a: BenchReviewArgs) -> Result<()> {
    let docs = if a.contracts.is_empty() {
        hone_review::bench::synthetic_contracts(a.docs.max(1), 11)?
    } else {
        let opt = ReadOptions::default();
        let mut v = Vec::new();
        for p in &a.contracts {
            v.extend(read_inputs(p, &opt)?);
        }
        v
    };
    let model = a.model.for_adapter(a.adapter.as_deref());
    let adapter = review_adapter(&model, a.adapter.as_deref(), a.base_only)?;
    let reviewer = load_reviewer(&model, adapter.as_deref(), None)?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} timing reviews [{bar:30}] {pos}/{len}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let b = hone_review::bench::run(&reviewer, &docs, a.runs, !a.no_peer, &mut |i, n| {
        bar.set_length(n as u64);
        bar.set_position(i as u64);
    })?;
    bar.finish_and_clear();
    if a.json {
        println!("{}", serde_json::to_string_pretty(&b)?);
        return Ok(());
    }
    println!(
        "{} document(s) x {} run(s), {:.0} spans and {:.0} tokens per document, {} thread(s)",
        b.documents,
        b.runs,
        b.spans_per_doc,
        b.tokens_per_doc,
        hone_model::num_threads()
    );
    let peer = b.peer.as_ref();
    if peer.is_some() {
        println!("| measurement | hone review | one prompt per span | ratio |");
        println!("|---|---|---|---|");
    } else {
        println!("| measurement | hone review |");
        println!("|---|---|");
    }
    let secs: fn(f64) -> String = |ms| format!("{:.2} s", ms / 1e3);
    let ms: fn(f64) -> String = |ms| format!("{ms:.1} ms");
    let count: fn(f64) -> String = |n| format!("{n:.0}");
    // (measurement, how to show it, hone's figure, the peer's, whether their ratio is shown)
    let rows = [
        (
            "per document, p50",
            secs,
            b.doc_ms.p50,
            peer.map(|p| p.doc_ms.p50),
            true,
        ),
        (
            "per document, p95",
            secs,
            b.doc_ms.p95,
            peer.map(|p| p.doc_ms.p95),
            true,
        ),
        (
            "per span, p50",
            ms,
            b.span_ms.p50,
            peer.map(|p| p.span_ms.p50),
            true,
        ),
        (
            "per span, p95",
            ms,
            b.span_ms.p95,
            peer.map(|p| p.span_ms.p95),
            true,
        ),
        (
            "tokens per document",
            count,
            b.tokens_per_doc,
            peer.map(|p| p.tokens_per_doc),
            false,
        ),
    ];
    for (what, show, hone, of_peer, ratio) in rows {
        match of_peer {
            Some(p) if ratio => println!(
                "| {what} | {} | {} | {:.2}x |",
                show(hone),
                show(p),
                p / hone.max(1e-9)
            ),
            Some(p) => println!("| {what} | {} | {} | |", show(hone), show(p)),
            None => println!("| {what} | {} |", show(hone)),
        }
    }
    Ok(())
}
