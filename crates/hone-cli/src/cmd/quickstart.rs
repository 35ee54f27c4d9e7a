//! `hone quickstart`: the main job end to end on the embedded default. Fetch the model,
//! synthesize NDAs, QA and split them by document, evaluate the base model few-shot, train a
//! review adapter, calibrate and evaluate it, review a held-out NDA, and compare.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use hone_review::engine::{EngineOptions, Reviewer};
use hone_review::input::InputDoc;
use hone_review::playbook::Playbook;
use hone_train::TrainConfig;
use indicatif::ProgressBar;

use super::review_steps::{self, cost_per_1k, evaluate, median, ReviewRecipe};

#[derive(Args, Debug)]
pub struct QuickstartArgs {
    /// Where everything goes (data, adapter, reports).
    #[arg(long, default_value = "hone-quickstart")]
    pub out: PathBuf,
    /// A smoke run in under two minutes: fewer documents, LoRA in the top two layers only.
    #[arg(long)]
    pub fast: bool,
    /// What the machine costs per hour, for the cost per 1,000 contracts.
    #[arg(long, default_value_t = 0.10)]
    pub usd_per_hour: f64,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// The sizes of a run.
struct Plan {
    docs: usize,
    split: &'static str,
    epochs: usize,
    top_layers: usize,
    lr: f64,
    batch: usize,
}

fn step(n: usize, what: &str) {
    eprintln!("[{n}/8] {what}");
}

fn fmt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into())
}

pub fn run(a: QuickstartArgs) -> Result<()> {
    let t0 = Instant::now();
    let plan = if a.fast {
        Plan {
            docs: 20,
            split: "12,3,5",
            epochs: 2,
            top_layers: 2,
            lr: 2e-3,
            batch: 1,
        }
    } else {
        Plan {
            docs: 60,
            split: "40,8,12",
            epochs: 5,
            top_layers: 4,
            lr: 2e-3,
            batch: 1,
        }
    };
    let out = &a.out;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;

    step(1, "model: SmolLM2-135M-Instruct (GGUF Q4_1)");
    let sp = ProgressBar::new_spinner();
    sp.enable_steady_tick(std::time::Duration::from_millis(120));
    let model_path = hone_model::fetch::fetch("smollm2", &|m: &str| sp.set_message(m.to_string()))?;
    sp.finish_and_clear();
    eprintln!("      {}", model_path.display());

    step(2, &format!("synthesize {} NDAs", plan.docs));
    let data = out.join("data");
    std::fs::create_dir_all(&data)?;
    let ds = hone_data::synth::generate(plan.docs, a.seed);
    let imp = hone_data::synth::write(&ds, &data)?;
    eprintln!(
        "      {} documents, {} spans -> {}",
        imp.documents.len(),
        imp.examples.len(),
        data.display()
    );

    step(
        3,
        "QA the spans, split the documents (near-copies kept together)",
    );
    let spans_path = data.join("spans.jsonl");
    let qa = hone_data::qa::run(
        &spans_path,
        &hone_data::Format::Jsonl,
        None,
        &hone_data::qa::QaOptions::default(),
        None,
        &hone_data::NoProgress,
    )?;
    let f = &qa.findings;
    eprintln!(
        "      QA of {} spans: {} exact-duplicate groups, {} near-duplicate groups, {} contradictions, {} over-represented patterns (synthetic clauses repeat by design)",
        qa.records,
        f.exact_duplicates.len(),
        f.near_duplicates.len(),
        f.contradictions.len(),
        f.overrepresented.len()
    );
    let split_dir = data.join("split");
    let rep = hone_data::split::split_documents(
        &data.join("documents.jsonl"),
        &split_dir,
        &hone_data::split::Sizes::parse(plan.split)?,
        a.seed,
        0.5,
    )?;
    eprintln!(
        "      train {}, validation {}, test {} documents",
        rep.counts[0], rep.counts[1], rep.counts[2]
    );
    let read = |name: &str| hone_data::contractnli::read_documents(&split_dir.join(name));
    let train_docs = read("train.jsonl")?;
    let test_docs = read("test.jsonl")?;

    step(4, "evaluate the base model, few-shot");
    let base = Reviewer::load(
        &model_path.to_string_lossy(),
        None,
        EngineOptions {
            demos: hone_review::engine::demos_from(&train_docs),
            ..EngineOptions::default()
        },
    )?;
    let (base_m, base_secs, _) = evaluate(&base, &test_docs, "base few-shot")?;
    drop(base);

    step(5, "train a LoRA review adapter");
    let adapter = out.join("adapter");
    let recipe = ReviewRecipe {
        r: 16,
        alpha: 32.0,
        lr: plan.lr,
        batch: plan.batch,
        epochs: plan.epochs,
        patience: 2,
        top_layers: plan.top_layers,
        seed: a.seed,
    };
    let cfg_text = review_steps::train_toml(
        &model_path,
        &split_dir.join("train.jsonl"),
        &split_dir.join("valid.jsonl"),
        &adapter,
        &recipe,
    );
    let cfg_path = out.join("train.toml");
    hone_data::atomic::write_file(&cfg_path, cfg_text.as_bytes())?;
    let cfg = TrainConfig::load(&cfg_path, &[])?;
    // the recipe starts over: an adapter of an earlier quickstart in this folder is replaced
    hone_train::run_folder::clear(&adapter)?;
    super::train::run_as_step(&cfg)?;

    step(6, "calibrate on the validation documents");
    let cal = review_steps::calibrate(
        &model_path,
        &adapter,
        &split_dir.join("valid.jsonl"),
        &cfg.data.train,
        cfg.optim.max_seq_len,
    )?;

    step(7, "evaluate the fine-tuned model");
    let ft = Reviewer::load(
        &model_path.to_string_lossy(),
        Some(&adapter),
        EngineOptions::default(),
    )?;
    let (ft_m, ft_secs, _) = evaluate(&ft, &test_docs, "fine-tuned")?;

    step(8, "review a held-out NDA");
    let playbook = Playbook::default_disclosing();
    let doc = InputDoc::from(&test_docs[0]);
    let review = ft.review(&doc, Some(&playbook))?;
    let review_html = out.join("review.html");
    hone_data::atomic::write_file(&review_html, hone_review::report::html(&review).as_bytes())?;
    let review_md = out.join("review.md");
    hone_data::atomic::write_file(
        &review_md,
        hone_review::report::markdown(&review).as_bytes(),
    )?;

    let cost = |secs: &[f64]| cost_per_1k(secs, a.usd_per_hour);
    // Name the TF-IDF expert when calibration kept it (see hone_review::tfidf).
    let ft_name = match review_steps::tfidf_weight(&cal) {
        w if w > 0.0 => format!("fine-tuned (+ TF-IDF, weight {w})"),
        _ => "fine-tuned".to_string(),
    };
    let rows = [
        ("base, few-shot", &base_m, &base_secs),
        (ft_name.as_str(), &ft_m, &ft_secs),
    ];
    let mut table = String::from(
        "| model | NLI accuracy | F1 contradiction | F1 entailment | 3-class accuracy | evidence mAP | latency p50 per contract | cost per 1,000 contracts |\n|---|---|---|---|---|---|---|---|\n",
    );
    for (name, m, secs) in rows {
        table.push_str(&format!(
            "| {name} | {} | {} | {} | {} | {} | {:.2} s | ${:.4} |\n",
            fmt(m.nli_acc),
            fmt(m.f1_c),
            fmt(m.f1_e),
            fmt(m.acc3),
            fmt(m.evidence_map),
            median(secs),
            cost(secs)
        ));
    }
    let total = t0.elapsed().as_secs_f64();
    let summary_md = format!(
        "# hone quickstart\n\n{} synthetic NDAs (train {}, validation {}, test {}), SmolLM2-135M-Instruct \
         Q4_1 with a LoRA adapter (r 16, all linear layers of the top {} layers, {} epoch(s)), \
         {} thread(s). Test documents: {}.\n\n{table}\nCost: ${:.2} per machine-hour. Total time {:.0} s.\n\n\
         Reports: [review of {}](review.html), adapter and loss curve in `adapter/` (`loss.svg`).\n",
        plan.docs,
        rep.counts[0],
        rep.counts[1],
        rep.counts[2],
        plan.top_layers,
        plan.epochs,
        hone_model::num_threads(),
        test_docs.len(),
        a.usd_per_hour,
        total,
        review.doc_id,
    );
    let summary_path = out.join("quickstart.md");
    hone_data::atomic::write_file(&summary_path, summary_md.as_bytes())?;
    let html = quickstart_html(&summary_md, &table, &adapter.join("loss.svg"));
    let summary_html = out.join("quickstart.html");
    hone_data::atomic::write_file(&summary_html, html.as_bytes())?;

    println!("\n{table}");
    println!(
        "flags in the reviewed NDA `{}`: {}",
        review.doc_id,
        review.flags.len()
    );
    println!(
        "reports:\n  {}\n  {}",
        summary_html.display(),
        review_html.display()
    );
    println!("done in {:.0} s", total);
    Ok(())
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A one-page HTML summary: the comparison table and the loss curve.
fn quickstart_html(md: &str, table: &str, loss_svg: &Path) -> String {
    let mut rows = String::new();
    for (i, line) in table.lines().enumerate() {
        if i == 1 {
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let tag = if i == 0 { "th" } else { "td" };
        rows.push_str("<tr>");
        for c in cells {
            rows.push_str(&format!("<{tag}>{}</{tag}>", esc(c)));
        }
        rows.push_str("</tr>\n");
    }
    let intro = md.lines().nth(2).unwrap_or_default();
    let svg = std::fs::read_to_string(loss_svg).unwrap_or_default();
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>hone quickstart</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}\
         th{{background:#f3f3f3}}td:first-child{{text-align:left}}</style></head><body>\
         <h1>hone quickstart</h1><p>{}</p><table>{rows}</table>\
         <p><a href=\"review.html\">Review of a held-out NDA</a></p><h2>Training loss</h2>{svg}</body></html>\n",
        esc(intro)
    )
}
