//! `hone data select`: active learning. The adapter answers every conversation of an unlabelled
//! pool; the `budget` it was least sure of (the smallest margin between its two likeliest tokens
//! anywhere in the answer, or the lowest mean token log-probability), near-duplicates
//! suppressed, go to the review queue for labelling. A review adapter reviews a pool of
//! documents instead and ranks them by its uncertainty per check (`select_review.rs`).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use hone_model::sampler::SamplingParams;
use hone_model::{LoadOptions, LoadedModel};
use hone_serve::engine::{Engine, EngineConfig, Event, GenParams};
use hone_serve::metrics::Metrics;

use super::args::{ModelName, StoreLocation};
use super::pool::{question, queue, read_pool, PoolAnswer};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Uncertainty {
    /// The smallest margin, over the answer's tokens, between the two likeliest tokens (the
    /// decision a label hinges on), smallest first.
    Margin,
    /// The answer's mean token log-probability, lowest first (for a review: the mean
    /// log-probability of its 17 labels).
    Logprob,
    /// Review adapters: the entropy of each check's label distribution, summed over the 17
    /// checks, highest first (the default for them).
    Entropy,
    /// Review adapters: how unsure each check's entailed-or-contradicted decision is (the
    /// entropy between the two, times the chance the check is addressed), summed over the 17
    /// checks, highest first. Doubt about whether a check is mentioned at all counts nothing.
    Nli,
}

#[derive(Args, Debug)]
pub struct SelectArgs {
    #[command(flatten)]
    pub model: ModelName,
    /// The adapter whose uncertainty decides.
    #[arg(long)]
    pub adapter: PathBuf,
    /// Unlabelled conversations (chat JSONL); for a review adapter, documents (anything `hone
    /// review` reads: documents.jsonl, ContractNLI JSON, .txt, .md, .pdf).
    #[arg(long)]
    pub pool: PathBuf,
    /// How many to pick.
    #[arg(long)]
    pub budget: usize,
    /// How uncertainty is measured (default: margin; entropy for a review adapter).
    #[arg(long, value_enum)]
    pub by: Option<Uncertainty>,
    /// Shingle Jaccard similarity at which a conversation nearly repeats a picked one.
    #[arg(long, default_value_t = 0.7)]
    pub near: f64,
    #[arg(long, default_value_t = 64)]
    pub max_tokens: usize,
    /// Also write the picks here, one JSON object a line, most uncertain first (rank,
    /// uncertainty, and the conversation or the document's id with each check's uncertainty).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreLocation,
}

/// The adapter's answer to one conversation with its uncertainty.
struct Scored {
    answer: String,
    tokens: u64,
    mean_logprob: Option<f64>,
    margin: Option<f64>,
}

fn score(a: &SelectArgs, pool: &[Vec<hone_model::chat_template::Message>]) -> Result<Vec<Scored>> {
    let m = LoadedModel::load(&a.model, &LoadOptions::default())
        .with_context(|| format!("cannot load model `{}`", &*a.model))?;
    let adapter = hone_model::load_adapter(&a.adapter)
        .with_context(|| format!("cannot load adapter {}", a.adapter.display()))?;
    m.model.check_adapter(&adapter)?;
    let adapter = Arc::new(adapter);
    let mut stop_tokens = m.template.stop_token_ids(&m.tokenizer);
    stop_tokens.extend(m.tokenizer.eos_id());
    let prompts = pool
        .iter()
        .map(|msgs| Ok(m.tokenizer.encode(&m.template.render(msgs, true)?, true)?))
        .collect::<Result<Vec<_>>>()?;
    let engine = Engine::start(
        Arc::new(m.model),
        Arc::new(m.tokenizer),
        EngineConfig::default(),
        Metrics::new(),
    );
    let bar = indicatif::ProgressBar::new(pool.len() as u64);
    let mut out = Vec::with_capacity(pool.len());
    for chunk in prompts.chunks(128) {
        let mut handles = Vec::new();
        for p in chunk {
            handles.push(engine.submit(GenParams {
                prompt: p.clone(),
                adapter: Some(adapter.clone()),
                max_tokens: a.max_tokens,
                sampling: SamplingParams::greedy(),
                stop_strings: Vec::new(),
                stop_tokens: stop_tokens.clone(),
                logprobs: Some(2),
                constraint: None,
                track_logprob: true,
            })?);
        }
        for mut h in handles {
            let (mut answer, mut margin, mut lp, mut tokens) = (String::new(), None, None, 0);
            while let Some(ev) = h.events.blocking_recv() {
                match ev {
                    Event::Delta { text, tokens: t } => {
                        answer.push_str(&text);
                        // the least decisive token of the answer (in `{"label": "no"}` the
                        // label's token, not the brace)
                        for tok in &t {
                            if let [a, b, ..] = tok.top.as_slice() {
                                let m = f64::from(a.1 - b.1);
                                margin = Some(margin.map_or(m, |x: f64| x.min(m)));
                            }
                        }
                    }
                    Event::Done {
                        mean_logprob,
                        completion_tokens,
                        ..
                    } => {
                        lp = mean_logprob;
                        tokens = completion_tokens as u64;
                        break;
                    }
                    Event::Error(e) => anyhow::bail!("generation failed: {e}"),
                }
            }
            out.push(Scored {
                answer,
                tokens,
                mean_logprob: lp,
                margin,
            });
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    engine.shutdown();
    Ok(out)
}

pub fn run(a: SelectArgs) -> Result<()> {
    anyhow::ensure!(a.budget > 0, "--budget must be at least 1");
    if hone_review::engine::adapter_format(&a.adapter).as_deref() == Some("review") {
        return super::select_review::run(&a);
    }
    let by = a.by.unwrap_or(Uncertainty::Margin);
    anyhow::ensure!(
        !matches!(by, Uncertainty::Entropy | Uncertainty::Nli),
        "--by {} ranks a review adapter's label distributions; {} is not a review \
         adapter (rank chat answers by margin or logprob)",
        by.to_possible_value()
            .map_or_else(String::new, |v| v.get_name().to_string()),
        a.adapter.display()
    );
    let pool = read_pool(&a.pool)?;
    let store = a.store.open()?;
    let scored = score(&a, &pool)?;
    let uncertainty: Vec<f64> = scored
        .iter()
        .map(|s| match by {
            Uncertainty::Margin => s.margin.map_or(f64::NAN, |m| -m),
            Uncertainty::Logprob | Uncertainty::Entropy | Uncertainty::Nli => {
                s.mean_logprob.map_or(f64::NAN, |l| -l)
            }
        })
        .collect();
    let texts: Vec<String> = pool.iter().map(|m| question(m)).collect();
    let picks = hone_data::select::pick_uncertain(&texts, &uncertainty, a.budget, a.near);
    let answers: Vec<PoolAnswer> = picks
        .iter()
        .map(|&i| PoolAnswer {
            messages: &pool[i],
            answer: scored[i].answer.clone(),
            output_tokens: scored[i].tokens,
            mean_logprob: scored[i].mean_logprob,
        })
        .collect();
    let model = picker_name(&a.adapter);
    queue(store.as_ref(), "select", &model, &answers)?;
    if let Some(out) = &a.out {
        let lines: Vec<serde_json::Value> = picks
            .iter()
            .enumerate()
            .map(|(rank, &i)| {
                serde_json::json!({
                    "rank": rank + 1,
                    "uncertainty": uncertainty[i],
                    "messages": pool[i].iter()
                        .map(|m| serde_json::json!({"role": m.role, "content": m.content}))
                        .collect::<Vec<_>>(),
                    "answer": scored[i].answer,
                })
            })
            .collect();
        write_picks(out, &lines)?;
    }
    println!(
        "{} of {} pool conversations picked (by {:?}; near-duplicates of a pick skipped) and queued for review:",
        picks.len(),
        pool.len(),
        by
    );
    for &i in &picks {
        println!("  {:>8.3}  {}", uncertainty[i], texts[i].replace('\n', " "));
    }
    Ok(())
}

/// Writes the picks as JSON lines, all or nothing.
pub(crate) fn write_picks(path: &std::path::Path, lines: &[serde_json::Value]) -> Result<()> {
    let mut text = String::new();
    for l in lines {
        text.push_str(&serde_json::to_string(l)?);
        text.push('\n');
    }
    hone_data::atomic::write_file(path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// The adapter's name as the queue shows it (`select:<folder>`).
pub(crate) fn picker_name(adapter: &std::path::Path) -> String {
    format!(
        "select:{}",
        adapter
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    )
}
