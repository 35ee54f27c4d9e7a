//! Runs every candidate of an [`EvalConfig`] on the evaluation file: the same prompts for all,
//! outputs cached in SQLite (a rerun costs nothing), per-query latency, scores, the regression
//! set and cost. The result is an [`EvalReport`]; [`crate::report`] writes it out.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use hone_data::example::Example;
use hone_data::train_log;
use hone_model::chat_template::Message;
use hone_model::{generate, GenRequest, LoadOptions, LoadedModel, SamplingParams};

use crate::cache::{CachedOutput, OutputCache};
use crate::config::{CandidateConfig, CandidateSource, EvalConfig, TaskConfig};
use crate::endpoint::Endpoint;
use crate::error::{Error, Result};
use crate::regression::{self, RegressionScore};
use crate::stats::{self, LatencyStats};
use crate::task::{self, TaskReport};

/// One evaluation query: what every candidate is asked, and the reference answer.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalItem {
    pub id: String,
    /// The conversation up to (not including) the answer.
    pub messages: Vec<Message>,
    pub reference: String,
}

impl EvalItem {
    /// The user-visible input: the last user message.
    pub fn input(&self) -> &str {
        self.messages
            .iter()
            .rev()
            .find(|m| m.role == "user")
            .map(|m| m.content.as_str())
            .unwrap_or("")
    }
}

/// Reads the evaluation file (instruction or chat JSONL). The reference is the example's
/// `label` when it has one, else its last assistant message.
pub fn load_items(path: &Path, limit: Option<usize>) -> Result<Vec<EvalItem>> {
    let examples = hone_data::jsonl::read_examples(path)?;
    let mut items = Vec::new();
    for (line, ex) in examples {
        let end = ex
            .messages
            .iter()
            .rposition(|m| m.role == "assistant")
            .ok_or_else(|| Error::Field {
                path: path.to_path_buf(),
                line,
                field: "messages".into(),
                msg: "no assistant answer to compare with".into(),
            })?;
        let reference = ex
            .label
            .clone()
            .unwrap_or_else(|| ex.messages[end].content.clone());
        items.push(EvalItem {
            id: ex.id.clone().unwrap_or_else(|| format!("line-{line}")),
            messages: ex.messages[..end].to_vec(),
            reference,
        });
        if limit.is_some_and(|n| items.len() >= n) {
            break;
        }
    }
    if items.is_empty() {
        return Err(Error::Format {
            path: path.to_path_buf(),
            msg: "no examples to evaluate".into(),
        });
    }
    Ok(items)
}

/// The `k` few-shot examples (seeded draw), skipping any whose input is one of the queries
/// (no test answer may leak into a prompt).
pub fn draw_fewshot(pool: &[Example], k: usize, seed: u64, queries: &[EvalItem]) -> Vec<Example> {
    let inputs: std::collections::HashSet<&str> = queries.iter().map(|q| q.input()).collect();
    let mut idx: Vec<usize> = (0..pool.len())
        .filter(|&i| {
            let e = &pool[i];
            !e.output_text().is_empty() && !inputs.contains(e.input_text().as_str())
        })
        .collect();
    idx.shuffle(&mut StdRng::seed_from_u64(seed));
    idx.into_iter().take(k).map(|i| pool[i].clone()).collect()
}

/// The messages a candidate sends for `item`: the task's system prompt (unless the example
/// has its own), the few-shot turns, then the query.
pub fn prompt_messages(task: &TaskConfig, shots: &[Example], item: &EvalItem) -> Vec<Message> {
    let mut out = Vec::new();
    let has_system = item.messages.iter().any(|m| m.role == "system");
    if let (Some(s), false) = (&task.system, has_system) {
        out.push(Message::system(s.clone()));
    }
    for s in shots {
        out.push(Message::user(s.input_text()));
        out.push(Message::assistant(s.output_text()));
    }
    out.extend(item.messages.iter().cloned());
    out
}

/// One candidate's answer to one item, as written to `outputs.jsonl`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct OutputRecord {
    pub id: String,
    pub input: String,
    pub reference: Option<String>,
    pub candidate: String,
    pub output: String,
    pub parsed_ok: bool,
    pub latency_s: Option<f64>,
    pub cached: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Generated tokens, when known (a version's evaluation baseline is made of these).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_tokens: Option<u64>,
    /// Mean log-probability of the answer's tokens (local candidates; what `hone eval route`
    /// reads as the model's confidence). `None` for endpoints and older runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_logprob: Option<f64>,
}

/// What the training of an adapter candidate cost, from its output folder.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TrainingInfo {
    pub seconds: Option<f64>,
    pub final_train_loss: Option<f64>,
    pub best_val_loss: Option<f64>,
    /// The loss curve (SVG), redrawn from `metrics.jsonl`.
    #[serde(skip)]
    pub loss_svg: Option<String>,
}

/// One candidate's results.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CandidateReport {
    pub name: String,
    /// `local` or `endpoint`.
    pub kind: String,
    /// Model (and adapter) or URL and model.
    pub description: String,
    pub fewshot: usize,
    pub metrics: TaskReport,
    /// Queries that failed outright (endpoint errors, prompts too long): scored as empty
    /// answers.
    pub failures: usize,
    pub cached: usize,
    pub latency: Option<LatencyStats>,
    /// Latencies of every query, seconds (for the histogram).
    pub latencies_s: Vec<f64>,
    pub cost_per_1k_usd: Option<f64>,
    pub regression: Option<RegressionScore>,
    pub training: Option<TrainingInfo>,
}

/// A fine-tuned local candidate against a paid endpoint: when does the fine-tune pay off?
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct BreakEven {
    pub local: String,
    pub endpoint: String,
    pub training_cost_usd: f64,
    pub local_per_1k_usd: f64,
    pub endpoint_per_1k_usd: f64,
    /// Queries after which the fine-tune is cheaper overall; `None` if it never is.
    pub queries: Option<f64>,
}

/// Everything an evaluation run measured.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct EvalReport {
    pub task: TaskConfig,
    pub eval_file: PathBuf,
    pub examples: usize,
    pub machine_usd_per_hour: f64,
    pub candidates: Vec<CandidateReport>,
    pub break_even: Vec<BreakEven>,
    #[serde(skip)]
    pub outputs: Vec<OutputRecord>,
}

/// Progress of a run, for a progress bar.
pub enum RunEvent<'a> {
    /// A candidate starts: its name and how many queries it will answer.
    Candidate { name: &'a str, queries: usize },
    /// One more query answered.
    Done { cached: bool },
    /// Something worth telling the user.
    Note(String),
}

/// Runs the evaluation; `cache` defaults to `<output dir>/cache.sqlite`.
pub fn run(
    cfg: &EvalConfig,
    cache: Option<&Path>,
    on: &mut dyn FnMut(RunEvent),
) -> Result<EvalReport> {
    let items = load_items(&cfg.data.eval, cfg.data.limit)?;
    let pool = match &cfg.data.fewshot_pool {
        Some(p) => hone_data::jsonl::read_examples(p)?
            .into_iter()
            .map(|(_, e)| e)
            .collect(),
        None => Vec::new(),
    };
    std::fs::create_dir_all(&cfg.output.dir).map_err(|e| Error::io(&cfg.output.dir, e))?;
    let cache_path = cache
        .map(Path::to_path_buf)
        .unwrap_or_else(|| cfg.output.dir.join("cache.sqlite"));
    let cache = OutputCache::open(&cache_path)?;
    let questions: Vec<regression::Question> = if cfg.regression.enabled {
        let mut q = regression::questions();
        if let Some(n) = cfg.regression.limit {
            q.truncate(n);
        }
        q
    } else {
        Vec::new()
    };

    let mut candidates = Vec::new();
    let mut outputs = Vec::new();
    for c in &cfg.candidates {
        let shots = draw_fewshot(&pool, c.fewshot, cfg.data.seed, &items);
        if shots.len() < c.fewshot {
            on(RunEvent::Note(format!(
                "candidate `{}`: only {} few-shot examples available (asked for {})",
                c.name,
                shots.len(),
                c.fewshot
            )));
        }
        let prompts: Vec<Vec<Message>> = items
            .iter()
            .map(|it| prompt_messages(&cfg.task, &shots, it))
            .collect();
        on(RunEvent::Candidate {
            name: &c.name,
            queries: prompts.len(),
        });
        let (answers, reg, description, kind) = match &c.source {
            CandidateSource::Local { model, adapter } => {
                let mut local = LocalCandidate::load(model, adapter.as_deref())?;
                let answers = local.answer_all(&cache, &prompts, cfg.generation.max_tokens, on)?;
                let reg = if questions.is_empty() {
                    None
                } else {
                    let qp: Vec<Vec<Message>> =
                        questions.iter().map(regression::messages).collect();
                    on(RunEvent::Note(format!(
                        "candidate `{}`: {} general-knowledge questions",
                        c.name,
                        qp.len()
                    )));
                    let ans = local.answer_all(&cache, &qp, 32, &mut |_| {})?;
                    let texts: Vec<String> = ans.into_iter().map(|a| a.text).collect();
                    Some(regression::score(&questions, &texts))
                };
                (answers, reg, local.description.clone(), "local")
            }
            CandidateSource::Endpoint(ec) => {
                let ep = Endpoint::new(ec.clone())?;
                let answers =
                    endpoint_answers(&ep, &cache, &prompts, cfg.generation.max_tokens, on)?;
                (
                    answers,
                    None,
                    format!("{} at {}", ec.model, ec.url),
                    "endpoint",
                )
            }
        };
        let report = candidate_report(cfg, c, &items, &answers, reg, description, kind)?;
        for (it, a) in items.iter().zip(&answers) {
            outputs.push(OutputRecord {
                id: it.id.clone(),
                input: it.input().to_string(),
                reference: Some(it.reference.clone()),
                candidate: c.name.clone(),
                output: a.text.clone(),
                parsed_ok: a.error.is_none() && task::parses(&cfg.task, &a.text),
                latency_s: a.latency_s,
                cached: a.cached,
                error: a.error.clone(),
                output_tokens: a.output_tokens,
                mean_logprob: a.mean_logprob,
            });
        }
        candidates.push(report);
    }
    let break_even = break_even(cfg, &candidates);
    Ok(EvalReport {
        task: cfg.task.clone(),
        eval_file: cfg.data.eval.clone(),
        examples: items.len(),
        machine_usd_per_hour: cfg.cost.machine_usd_per_hour,
        candidates,
        break_even,
        outputs,
    })
}

/// One answer, from the model, the endpoint or the cache.
#[derive(Clone, Debug)]
struct Answer {
    text: String,
    latency_s: Option<f64>,
    cached: bool,
    error: Option<String>,
    cost_usd: Option<f64>,
    /// Generated tokens (the model's count, or the endpoint's `usage`), when known.
    output_tokens: Option<u64>,
    /// Mean token log-probability (local models).
    mean_logprob: Option<f64>,
}

fn candidate_report(
    cfg: &EvalConfig,
    c: &CandidateConfig,
    items: &[EvalItem],
    answers: &[Answer],
    regression: Option<RegressionScore>,
    description: String,
    kind: &str,
) -> Result<CandidateReport> {
    let ids: Vec<String> = items.iter().map(|i| i.id.clone()).collect();
    let refs: Vec<String> = items.iter().map(|i| i.reference.clone()).collect();
    let outs: Vec<String> = answers.iter().map(|a| a.text.clone()).collect();
    let metrics = task::score(&cfg.task, &ids, &refs, &outs)?;
    let latencies: Vec<f64> = answers.iter().filter_map(|a| a.latency_s).collect();
    let latency = LatencyStats::from_latencies(&latencies);
    let cost_per_1k_usd = match kind {
        "local" => latency
            .as_ref()
            .map(|l| stats::local_cost_per_1k(l.mean_s, cfg.cost.machine_usd_per_hour)),
        _ => {
            let costs: Vec<f64> = answers.iter().filter_map(|a| a.cost_usd).collect();
            (!costs.is_empty()).then(|| 1000.0 * costs.iter().sum::<f64>() / costs.len() as f64)
        }
    };
    let training = match &c.source {
        CandidateSource::Local {
            adapter: Some(dir), ..
        } => Some(training_info(dir)),
        _ => None,
    };
    Ok(CandidateReport {
        name: c.name.clone(),
        kind: kind.into(),
        description,
        fewshot: c.fewshot,
        metrics,
        failures: answers.iter().filter(|a| a.error.is_some()).count(),
        cached: answers.iter().filter(|a| a.cached).count(),
        latency,
        latencies_s: latencies,
        cost_per_1k_usd,
        regression,
        training,
    })
}

fn break_even(cfg: &EvalConfig, cands: &[CandidateReport]) -> Vec<BreakEven> {
    let mut out = Vec::new();
    for l in cands
        .iter()
        .filter(|c| c.kind == "local" && c.training.is_some())
    {
        for e in cands.iter().filter(|c| c.kind == "endpoint") {
            let (Some(lc), Some(ec)) = (l.cost_per_1k_usd, e.cost_per_1k_usd) else {
                continue;
            };
            let secs = l.training.as_ref().and_then(|t| t.seconds).unwrap_or(0.0);
            let training_cost_usd = secs * cfg.cost.machine_usd_per_hour / 3600.0;
            out.push(BreakEven {
                local: l.name.clone(),
                endpoint: e.name.clone(),
                training_cost_usd,
                local_per_1k_usd: lc,
                endpoint_per_1k_usd: ec,
                queries: stats::break_even_queries(training_cost_usd, lc / 1000.0, ec / 1000.0),
            });
        }
    }
    out
}

/// Reads `train_summary.json` and `metrics.jsonl` of an adapter folder, when present.
pub fn training_info(dir: &Path) -> TrainingInfo {
    let summary: Option<serde_json::Value> =
        std::fs::read_to_string(dir.join(train_log::SUMMARY_FILE))
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok());
    let get = |k: &str| {
        summary
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(|v| v.as_f64())
    };
    let (steps, epochs) = train_log::read_metrics(dir);
    TrainingInfo {
        seconds: get("seconds"),
        final_train_loss: get("final_train_loss"),
        best_val_loss: get("best_val_loss"),
        loss_svg: (!steps.is_empty()).then(|| train_log::loss_svg(&steps, &epochs)),
    }
}

/// What one answer cost, when the server reported both token counts and prices are set.
fn cost_of(ep: &Endpoint, prompt: Option<u64>, completion: Option<u64>) -> Option<f64> {
    ep.cost_usd(prompt?, completion?)
}

fn endpoint_answers(
    ep: &Endpoint,
    cache: &OutputCache,
    prompts: &[Vec<Message>],
    max_tokens: usize,
    on: &mut dyn FnMut(RunEvent),
) -> Result<Vec<Answer>> {
    let params = ep.params_json(Some(max_tokens as u32), None);
    let identity = ep.identity();
    let mut answers: Vec<Option<Answer>> = vec![None; prompts.len()];
    let mut todo = Vec::new();
    for (i, p) in prompts.iter().enumerate() {
        let key = OutputCache::key(&identity, p, &params);
        match cache.get(&key)? {
            Some(c) => {
                answers[i] = Some(Answer {
                    cost_usd: cost_of(ep, c.prompt_tokens, c.completion_tokens),
                    output_tokens: c.completion_tokens,
                    text: c.text,
                    latency_s: Some(c.latency_s),
                    cached: true,
                    error: None,
                    mean_logprob: None,
                });
                on(RunEvent::Done { cached: true });
            }
            None => todo.push(i),
        }
    }
    let reqs: Vec<Vec<Message>> = todo.iter().map(|&i| prompts[i].clone()).collect();
    let mut cache_err = None;
    let results = ep.chat_many(&reqs, Some(max_tokens as u32), None, |j, r| {
        if let Ok(c) = r {
            let key = OutputCache::key(&identity, &reqs[j], &params);
            if let Err(e) = cache.put(&key, &CachedOutput::from_completion(c)) {
                cache_err.get_or_insert(e);
            }
        }
        on(RunEvent::Done { cached: false });
    });
    if let Some(e) = cache_err {
        return Err(e);
    }
    for (j, r) in results.into_iter().enumerate() {
        answers[todo[j]] = Some(match r {
            Ok(c) => Answer {
                cost_usd: cost_of(ep, c.prompt_tokens, c.completion_tokens),
                output_tokens: c.completion_tokens,
                text: c.text,
                latency_s: Some(c.latency_s),
                cached: false,
                error: None,
                mean_logprob: None,
            },
            Err(e) => Answer {
                text: String::new(),
                latency_s: None,
                cached: false,
                error: Some(e.to_string()),
                cost_usd: None,
                output_tokens: None,
                mean_logprob: None,
            },
        });
    }
    Ok(answers
        .into_iter()
        .map(|a| a.expect("every prompt answered"))
        .collect())
}

/// A local model (plus adapter) answering one query at a time, greedily.
struct LocalCandidate {
    model: LoadedModel,
    identity: String,
    description: String,
}

fn file_fingerprint(p: &Path) -> Result<String> {
    let mut h = Sha256::new();
    let bytes = std::fs::read(p).map_err(|e| Error::io(p, e))?;
    h.update(&bytes);
    Ok(format!("{:x}", h.finalize()))
}

impl LocalCandidate {
    fn load(model: &str, adapter: Option<&Path>) -> Result<Self> {
        let mut m = LoadedModel::load(model, &LoadOptions::default())?;
        let meta = std::fs::metadata(&m.path).map_err(|e| Error::io(&m.path, e))?;
        let mut identity = format!("local:{}:{}", m.path.display(), meta.len());
        let mut description = model.to_string();
        if let Some(dir) = adapter {
            let a = hone_model::load_adapter(dir)
                .map_err(|e| Error::Invalid(format!("adapter {}: {e}", dir.display())))?;
            m.model.attach_adapter(&a).map_err(|e| {
                Error::Invalid(format!(
                    "adapter {} does not fit model `{model}`: {e}",
                    dir.display()
                ))
            })?;
            let weights = hone_model::peft::adapter_dir(dir).join(hone_model::peft::WEIGHTS_FILE);
            identity.push_str(&format!("|adapter:{}", file_fingerprint(&weights)?));
            description = format!("{model} + {}", dir.display());
        }
        Ok(Self {
            model: m,
            identity,
            description,
        })
    }

    fn answer_all(
        &mut self,
        cache: &OutputCache,
        prompts: &[Vec<Message>],
        max_tokens: usize,
        on: &mut dyn FnMut(RunEvent),
    ) -> Result<Vec<Answer>> {
        let params = format!("{{\"greedy\":true,\"max_tokens\":{max_tokens}}}");
        let stop_tokens = self.model.template.stop_token_ids(&self.model.tokenizer);
        let mut out = Vec::with_capacity(prompts.len());
        for p in prompts {
            let key = OutputCache::key(&self.identity, p, &params);
            if let Some(c) = cache.get(&key)? {
                out.push(Answer {
                    text: c.text,
                    latency_s: Some(c.latency_s),
                    cached: true,
                    error: None,
                    cost_usd: None,
                    output_tokens: c.completion_tokens,
                    mean_logprob: c.mean_logprob,
                });
                on(RunEvent::Done { cached: true });
                continue;
            }
            let t0 = Instant::now();
            let res = self
                .model
                .template
                .render(p, true)
                .and_then(|text| self.model.tokenizer.encode(&text, true))
                .and_then(|prompt| {
                    generate(
                        &self.model.model,
                        &self.model.tokenizer,
                        &[GenRequest {
                            prompt,
                            max_tokens,
                            sampling: SamplingParams::greedy(),
                            stop_strings: vec![],
                            stop_tokens: stop_tokens.clone(),
                        }],
                        |_, _| {},
                    )
                });
            let latency = t0.elapsed().as_secs_f64();
            match res {
                Ok(mut g) => {
                    let g = g.remove(0);
                    let mean_logprob = g.mean_logprob.filter(|lp| lp.is_finite());
                    let c = CachedOutput::new(
                        g.text.clone(),
                        Some(g.prompt_tokens as u64),
                        Some(g.tokens.len() as u64),
                        latency,
                    )
                    .with_mean_logprob(mean_logprob);
                    cache.put(&key, &c)?;
                    out.push(Answer {
                        text: g.text,
                        latency_s: Some(latency),
                        cached: false,
                        error: None,
                        cost_usd: None,
                        output_tokens: Some(g.tokens.len() as u64),
                        mean_logprob,
                    });
                }
                Err(e) => out.push(Answer {
                    text: String::new(),
                    latency_s: None,
                    cached: false,
                    error: Some(e.to_string()),
                    cost_usd: None,
                    output_tokens: None,
                    mean_logprob: None,
                }),
            }
            on(RunEvent::Done { cached: false });
        }
        Ok(out)
    }
}
