//! `hone retrain NAME --feedback corrections.jsonl`: the next version of a name, trained with the
//! prod version's recorded configuration on its recorded training data plus the new examples,
//! compared with prod on the corrected cases and an evaluation set, registered, and released as
//! a canary when it is no worse.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use hone_data::Example;
use hone_model::{generate, FinishReason, GenRequest, LoadOptions, LoadedModel, SamplingParams};
use hone_ops::baseline::{classify, Answer, OutputBaseline};
use hone_ops::deployment::Change;
use hone_ops::{registry, Version};
use serde_json::json;

use super::args::StoreLocation;

#[derive(Args, Debug)]
pub struct RetrainArgs {
    /// The name whose prod version is retrained.
    pub name: String,
    /// The new examples (`hone data from-feedback`).
    #[arg(long)]
    pub feedback: PathBuf,
    /// The run folder: the merged training data, the configuration and the new adapter.
    #[arg(long, short)]
    pub out: PathBuf,
    /// An evaluation set (chat examples whose last assistant turn is the expected answer): the
    /// new version must not do worse on it than prod.
    #[arg(long)]
    pub eval: Option<PathBuf>,
    /// Open a canary of the new version with this share when it is no worse than prod (0: only
    /// register it).
    #[arg(long, default_value_t = 10.0)]
    pub canary: f64,
    /// Each new example is added this many times (corrections are few against the recorded
    /// data; repeating them is how they weigh).
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Start the new adapter from the retrained version's own weights (its registered,
    /// hash-checked adapter) instead of a fresh initialisation: the run continues from what
    /// prod learned (`lora.init` in the run's configuration). Its r, alpha, target modules
    /// and layers must stay the recorded ones.
    #[arg(long)]
    pub from_previous: bool,
    /// Override a key of the recorded configuration, e.g. `--set optim.epochs=4` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    #[command(flatten)]
    pub store: StoreLocation,
}

/// The version retrained: prod, else the newest.
fn base_version(store: &dyn hone_ops::Store, name: &str) -> Result<Version> {
    let prod = store.deployment(name)?.and_then(|d| d.prod_ref());
    let v = match prod {
        Some(r) => store.version(&r)?,
        None => store.versions(Some(name))?.pop(),
    };
    v.with_context(|| format!("{name} has no versions in the registry"))
}

/// The recorded training file of `v`, checked against its recorded hash.
fn recorded_train_file(v: &Version) -> Result<PathBuf> {
    let d = v
        .meta
        .data
        .iter()
        .find(|d| d.role == "train")
        .with_context(|| format!("{}: no training data recorded", v.reference()))?;
    let p = PathBuf::from(&d.path);
    let (h, _) = registry::sha256_file(&p).with_context(|| {
        format!(
            "{}: its training data {} is gone",
            v.reference(),
            p.display()
        )
    })?;
    if d.sha256.as_deref() != Some(h.as_str()) {
        bail!(
            "{}: its training data {} changed since it was trained (SHA-256 {h}, recorded {})",
            v.reference(),
            p.display(),
            d.sha256.as_deref().unwrap_or("none")
        );
    }
    Ok(p)
}

/// Greedy answers of `model` (with `adapter`) to the examples' conversations: the share that
/// equals the expected answer (whitespace-normalised), and each answer's output tokens and
/// format class (an evaluation baseline).
fn accuracy(model: &str, adapter: &Path, examples: &[Example]) -> Result<(f64, Vec<Answer>)> {
    if examples.is_empty() {
        return Ok((f64::NAN, Vec::new()));
    }
    let mut m = LoadedModel::load(model, &LoadOptions::default())
        .with_context(|| format!("cannot load model `{model}`"))?;
    let a = hone_model::load_adapter(adapter)?;
    m.model.attach_adapter(&a)?;
    let mut stop_tokens = m.template.stop_token_ids(&m.tokenizer);
    stop_tokens.extend(m.tokenizer.eos_id());
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut reqs = Vec::new();
    let mut want = Vec::new();
    for e in examples {
        let (last, ctx) = e
            .messages
            .split_last()
            .filter(|(l, _)| l.role == "assistant")
            .context("an evaluation example ends with the expected assistant answer")?;
        let text = m.template.render(ctx, true)?;
        reqs.push(GenRequest {
            prompt: m.tokenizer.encode(&text, true)?,
            max_tokens: m.tokenizer.encode(&last.content, false)?.len() + 8,
            sampling: SamplingParams::greedy(),
            stop_strings: Vec::new(),
            stop_tokens: stop_tokens.clone(),
        });
        want.push(norm(&last.content));
    }
    let out = generate(&m.model, &m.tokenizer, &reqs, |_, _| {})?;
    let right = out
        .iter()
        .zip(&want)
        .filter(|(o, w)| norm(&o.text) == **w)
        .count();
    let answers = out
        .iter()
        .map(|o| Answer {
            tokens: o.tokens.len() as u64,
            format: classify(&o.text, o.finish == FinishReason::Length),
        })
        .collect();
    Ok((right as f64 / want.len() as f64, answers))
}

fn examples(p: &Path) -> Result<Vec<Example>> {
    Ok(hone_data::jsonl::read_examples(p)?
        .into_iter()
        .map(|(_, e)| e)
        .collect())
}

pub fn run(a: RetrainArgs) -> Result<()> {
    let store = a.store.open()?;
    let prev = base_version(store.as_ref(), &a.name)?;
    let config = prev.meta.train_config.clone().with_context(|| {
        format!("{}: no training configuration recorded (registered from a folder without train_config.toml)", prev.reference())
    })?;
    let old_train = recorded_train_file(&prev)?;
    // a review adapter learns from annotated documents, anything else from chat examples
    let cfg_path = a.out.join("train.toml");
    let mut cfg = hone_train::TrainConfig::parse(&config, &cfg_path, &[]).with_context(|| {
        format!(
            "the training configuration recorded with {}",
            prev.reference()
        )
    })?;
    let review = cfg.data.format == hone_train::config::DataFormat::Review;
    let (feedback, feedback_docs, new_lines) = if review {
        let (docs, lines) = super::retrain_review::read_feedback(&a.feedback)?;
        (Vec::new(), docs, lines)
    } else {
        let ex = examples(&a.feedback)?;
        let lines = ex.iter().map(Example::to_json).collect();
        (ex, Vec::new(), lines)
    };
    anyhow::ensure!(
        !new_lines.is_empty(),
        "{}: no examples",
        a.feedback.display()
    );

    // the merged training data: the recorded file, then the new examples not already in it
    std::fs::create_dir_all(&a.out).with_context(|| format!("{}", a.out.display()))?;
    let mut text = std::fs::read_to_string(&old_train)?;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let known: std::collections::HashSet<String> = text.lines().map(str::to_string).collect();
    let mut added = 0;
    for line in &new_lines {
        if !known.contains(line) {
            for _ in 0..a.repeat {
                text.push_str(line);
                text.push('\n');
            }
            added += 1;
        }
    }
    let train = a.out.join("train.jsonl");
    hone_model::atomic::write_file(&train, text.as_bytes())?;
    // the recorded configuration, on the merged data, into the run folder
    let adapter = a.out.join("adapter");
    cfg.data.train = std::fs::canonicalize(&train)?;
    cfg.output.dir = std::path::absolute(&adapter)?;
    // the recorded configuration may name the adapter its own run started from: a retrain
    // starts fresh unless asked to continue from the version it retrains
    cfg.lora.init = if a.from_previous {
        // absolute: the run's configuration resolves relative paths against its own folder
        Some(std::path::absolute(registry::checked_dir(
            store.as_ref(),
            &prev,
        )?)?)
    } else {
        None
    };
    hone_model::atomic::write_file(&cfg_path, cfg.to_toml().as_bytes())?;
    println!(
        "retraining {} on {} + {added} new examples ({}){}",
        prev.reference(),
        old_train.display(),
        a.feedback.display(),
        if a.from_previous {
            format!(", starting from {}'s adapter", prev.reference())
        } else {
            String::new()
        }
    );
    super::train::run(super::train::TrainArgs {
        config: Some(cfg_path),
        set: a.set.clone(),
        resume: None,
        overwrite: false,
    })?;

    // prod against the new adapter: the corrected cases, then the evaluation set
    let base = prev.meta.base_model.clone();
    let prev_dir = registry::checked_dir(store.as_ref(), &prev)?;
    let mut rows = if review {
        let acc = |ad: &Path, docs: &[_]| super::retrain_review::accuracy(&base, ad, docs);
        let mut rows = vec![(
            "corrected",
            acc(&prev_dir, &feedback_docs)?,
            acc(&adapter, &feedback_docs)?,
        )];
        if let Some(e) = &a.eval {
            let ev = super::retrain_review::read_eval(e)?;
            rows.push(("eval", acc(&prev_dir, &ev)?, acc(&adapter, &ev)?));
        }
        rows
    } else {
        vec![(
            "corrected",
            accuracy(&base, &prev_dir, &feedback)?.0,
            accuracy(&base, &adapter, &feedback)?.0,
        )]
    };
    if let (Some(e), false) = (&a.eval, review) {
        let ev = examples(e)?;
        let (new_acc, answers) = accuracy(&base, &adapter, &ev)?;
        rows.push(("eval", accuracy(&base, &prev_dir, &ev)?.0, new_acc));
        // what the new version's answers look like: live answers are tested against it
        if let Some(b) = OutputBaseline::from_answers(&e.display().to_string(), &answers) {
            b.write(&adapter)?;
        }
    }
    let mut report = serde_json::Map::new();
    println!(
        "{:<10}  {:>10}  {:>10}",
        if review { "acc3" } else { "accuracy" },
        prev.reference().to_string(),
        "new"
    );
    for (what, p, n) in &rows {
        println!("{what:<10}  {p:>10.3}  {n:>10.3}");
        report.insert(format!("{what}_accuracy"), json!(n));
        report.insert(format!("{what}_accuracy_prod"), json!(p));
    }
    hone_model::atomic::write_file(
        adapter.join("report.json"),
        serde_json::to_string_pretty(&json!({ "metrics": report }))?.as_bytes(),
    )?;
    let v = registry::add(
        store.as_ref(),
        &a.name,
        &adapter,
        &format!(
            "retrained from {} + {added} examples of {}",
            prev.reference(),
            a.feedback.display()
        ),
        "retrain",
    )?;
    println!("registered {}", v.reference());
    // the gate: no worse than prod anywhere, better on the corrected cases
    let no_worse = rows.iter().all(|(_, p, n)| n >= p || p.is_nan());
    let better = rows[0].2 > rows[0].1;
    if a.canary <= 0.0 {
        return Ok(());
    }
    if no_worse && better {
        let (_, ev) = store.change(
            &a.name,
            &Change::Canary {
                version: v.version,
                percent: a.canary,
            },
            None,
            "retrain",
            None,
        )?;
        println!("{}", ev.message);
    } else {
        println!(
            "no canary: {} is {} prod (hone deploy {} --canary P to release it anyway)",
            v.reference(),
            if better {
                "worse somewhere than"
            } else {
                "not better on the corrected cases than"
            },
            v.reference()
        );
    }
    Ok(())
}
