//! `hone pilot DATA.jsonl`: the half-day experiment that answers "fine-tune or prompt?" as one
//! command. QA the examples (exact duplicates dropped, near-duplicates kept on one side of the
//! split), hold out a fifth (10 of 50), train a LoRA (or QLoRA) adapter with standard defaults
//! on the rest, answer the held-out examples with the base model zero- and few-shot, the
//! fine-tuned model and, given `--endpoint`, a prompted frontier model, and judge the gain
//! with a paired bootstrap interval by a stated rule (hone-eval's `verdict`). Writes
//! `pilot.html` (the verdict page), `pilot.json` and the full evaluation report.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use hone_data::Example;
use hone_eval::config::{
    CandidateConfig, CandidateSource, CostConfig, DataConfig, EvalConfig, GenerationConfig,
    OutputConfig, RegressionConfig, TaskConfig, TaskKind,
};
use hone_eval::endpoint::EndpointConfig;
use hone_eval::pilot_report::{
    self, PilotArm, PilotData, PilotExample, PilotReport, PilotTraining,
};
use hone_eval::runner::{self, EvalReport, RunEvent};
use hone_eval::verdict::{self, Arm, Role, Rule};
use hone_train::TrainConfig;
use indicatif::{ProgressBar, ProgressStyle};

use super::args::ModelName;

/// The fewest examples a pilot takes (40 to train on, 10 to judge by).
pub const MIN_EXAMPLES: usize = 50;

/// Training defaults for instruction / chat examples (each a flag).
pub(crate) const LR: f64 = 2e-4;
pub(crate) const EPOCHS: usize = 8;
pub(crate) const BATCH: usize = 4;

#[derive(Args, Debug)]
pub struct PilotArgs {
    /// Instruction (instruction / input / output) or chat (messages) JSONL, at least 50
    /// examples; or review data: a documents.jsonl of NDAs with ContractNLI labels (`hone data
    /// import contractnli`, `hone data synth nda`), at least 20 documents. A fifth is held out
    /// for the verdict, the rest trains the adapter.
    pub data: PathBuf,
    #[command(flatten)]
    pub model: ModelName,
    /// Where everything goes (data split, adapter, evaluation, pilot.html).
    #[arg(long, default_value = "hone-pilot")]
    pub out: PathBuf,
    /// Replace what an earlier pilot left in --out.
    #[arg(long)]
    pub overwrite: bool,
    /// The task, when guessing it from the answers is not wanted: short repeated answers are
    /// labels, JSON objects are fields to extract, anything else is generation.
    #[arg(long, value_enum)]
    pub task: Option<TaskArg>,
    /// The labels of a classification or multilabel --task (comma-separated; default: the
    /// distinct answers).
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,
    /// The fields of an extraction --task (comma-separated; default: the keys of the answers).
    #[arg(long, value_delimiter = ',')]
    pub fields: Vec<String>,
    /// An OpenAI-compatible endpoint (base URL, e.g. https://api.openai.com/v1) prompted on the
    /// held-out examples as the frontier arm; without it the report says the arm is missing.
    #[arg(long, value_name = "URL", requires = "endpoint_model")]
    pub endpoint: Option<String>,
    /// The endpoint's model name.
    #[arg(long, value_name = "NAME", requires = "endpoint")]
    pub endpoint_model: Option<String>,
    /// The environment variable holding the endpoint's API key.
    #[arg(long, value_name = "VAR", requires = "endpoint")]
    pub endpoint_key_env: Option<String>,
    /// The endpoint's price in USD per million prompt tokens (for cost per 1,000 queries).
    #[arg(long, value_name = "USD", requires = "endpoint")]
    pub endpoint_price_in: Option<f64>,
    /// The endpoint's price in USD per million completion tokens.
    #[arg(long, value_name = "USD", requires = "endpoint")]
    pub endpoint_price_out: Option<f64>,
    /// Few-shot examples (drawn from the training part) in the base model's few-shot arm.
    #[arg(long, default_value_t = 3)]
    pub fewshot: usize,
    /// QLoRA: the frozen base in NF4.
    #[arg(long)]
    pub qlora: bool,
    #[arg(long, default_value_t = 16)]
    pub r: usize,
    #[arg(long, default_value_t = 32.0)]
    pub alpha: f32,
    /// Learning rate [default: 2e-4; 2e-3 for review data].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Epochs at most; training stops early when the validation loss stops improving
    /// [default: 8; 3 for review data].
    #[arg(long)]
    pub epochs: Option<usize>,
    /// [default: 4; 1 for review data, one document's windows a step].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Review data only: LoRA in the top this many transformer layers [default: 4].
    #[arg(long)]
    pub top_layers: Option<usize>,
    /// Epochs without a better validation loss before training stops.
    #[arg(long, default_value_t = 2)]
    pub patience: usize,
    /// Most tokens per answer.
    #[arg(long, default_value_t = 64)]
    pub max_tokens: usize,
    /// The least gain (in points of the task's score) the verdict calls meaningful.
    #[arg(long, default_value_t = 5.0, value_name = "POINTS")]
    pub min_gain: f64,
    /// What this machine costs per hour, for the local arms' cost per 1,000 queries.
    #[arg(long, default_value_t = 0.10, value_name = "USD")]
    pub usd_per_hour: f64,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum TaskArg {
    Classification,
    Multilabel,
    Extraction,
    Generation,
}

pub(crate) fn step(n: usize, what: &str) {
    eprintln!("[{n}/6] {what}");
}

fn bar(len: u64, prefix: &str) -> ProgressBar {
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template("{prefix:>16} [{bar:30}] {pos}/{len} {msg} (eta {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    b.set_prefix(prefix.to_string());
    b
}

fn toml_path(p: &Path) -> String {
    p.display()
        .to_string()
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}

/// The examples split three ways, indices into the kept examples.
struct Split {
    train: Vec<usize>,
    valid: Vec<usize>,
    test: Vec<usize>,
}

/// Holds out a fifth for the verdict and a tenth of the rest (at least 2) for early stopping,
/// with hone-data's splitter: near-duplicate groups (`group_of`, one id per example) move as
/// one when there are any, else each label keeps its share (`label_of`, classification), else
/// a seeded random draw.
fn split(group_of: &[u32], label_of: &[u32], has_groups: bool, seed: u64) -> Result<Split> {
    use hone_data::split::{assign, Sizes, Strategy};
    let n = group_of.len();
    let test = (n as f64 * 0.2).round() as usize;
    let valid = (((n - test) as f64) * 0.1).round().max(2.0) as usize;
    let sizes = Sizes::Counts([n - test - valid, valid, test]);
    let strategy = if has_groups {
        Strategy::Grouped
    } else if label_of.iter().any(|&l| l != label_of[0]) {
        Strategy::Stratified
    } else {
        Strategy::Random
    };
    let to = assign(label_of, group_of, strategy, &sizes, seed)?;
    let pick = |s: u8| -> Vec<usize> { (0..n).filter(|&i| to[i] == s).collect() };
    Ok(Split {
        train: pick(0),
        valid: pick(1),
        test: pick(2),
    })
}

/// The task given by flags, or guessed from the answers.
fn task_of(a: &PilotArgs, answers: &[&str]) -> Result<TaskConfig> {
    let Some(kind) = a.task else {
        if !a.labels.is_empty() || !a.fields.is_empty() {
            bail!("--labels and --fields go with --task");
        }
        return Ok(hone_eval::task_guess::guess(answers));
    };
    let guessed = hone_eval::task_guess::guess(answers);
    let (kind, labels, fields) = match kind {
        TaskArg::Classification | TaskArg::Multilabel => {
            let labels = if a.labels.is_empty() {
                let distinct: std::collections::BTreeSet<&str> =
                    answers.iter().map(|s| s.trim()).collect();
                distinct.into_iter().map(str::to_string).collect()
            } else {
                a.labels.clone()
            };
            let kind = if matches!(kind, TaskArg::Classification) {
                TaskKind::Classification
            } else {
                TaskKind::Multilabel
            };
            (kind, labels, vec![])
        }
        TaskArg::Extraction => {
            let fields = if a.fields.is_empty() {
                guessed.fields
            } else {
                a.fields.clone()
            };
            if fields.is_empty() {
                bail!("--task extraction: the answers are not JSON objects; give --fields");
            }
            (TaskKind::Extraction, vec![], fields)
        }
        TaskArg::Generation => (TaskKind::Generation, vec![], vec![]),
    };
    Ok(TaskConfig {
        kind,
        labels,
        fields,
        system: None,
    })
}

fn check_args(a: &PilotArgs) -> Result<()> {
    if !(a.min_gain.is_finite() && (0.0..=100.0).contains(&a.min_gain)) {
        bail!(
            "--min-gain must be between 0 and 100 points, not {}",
            a.min_gain
        );
    }
    if let Some(lr) = a.lr {
        if !(lr.is_finite() && lr > 0.0) {
            bail!("--lr must be a positive number, not {lr}");
        }
    }
    if a.epochs == Some(0)
        || a.batch_size == Some(0)
        || a.top_layers == Some(0)
        || a.r == 0
        || a.max_tokens == 0
    {
        bail!("--epochs, --batch-size, --top-layers, --r and --max-tokens must be at least 1");
    }
    if !(a.usd_per_hour.is_finite() && a.usd_per_hour >= 0.0) {
        bail!("--usd-per-hour must be a non-negative number");
    }
    for (flag, v) in [
        ("--endpoint-price-in", a.endpoint_price_in),
        ("--endpoint-price-out", a.endpoint_price_out),
    ] {
        if let Some(p) = v {
            if !(p.is_finite() && p >= 0.0) {
                bail!("{flag} must be a non-negative number of USD per million tokens");
            }
        }
    }
    Ok(())
}

/// Makes `out` ready: refuses one holding an earlier pilot unless `--overwrite`.
pub(crate) fn prepare_out(out: &Path, overwrite: bool) -> Result<()> {
    let marker = out.join("pilot.json");
    let busy = ["pilot.json", "adapter", "data", "eval"]
        .iter()
        .any(|p| out.join(p).exists());
    if busy {
        if !overwrite {
            bail!(
                "{} holds an earlier pilot (or its parts); pass --overwrite to replace it, or \
                 choose another --out",
                out.display()
            );
        }
        for p in ["adapter", "data", "eval"] {
            let d = out.join(p);
            if d.exists() {
                std::fs::remove_dir_all(&d).with_context(|| format!("{}", d.display()))?;
            }
        }
        for f in ["pilot.json", "pilot.html", "train.toml", "eval.toml"] {
            let p = out.join(f);
            if p.exists() {
                std::fs::remove_file(&p).with_context(|| format!("{}", p.display()))?;
            }
        }
    }
    let _ = marker;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))
}

pub fn run(a: PilotArgs) -> Result<()> {
    check_args(&a)?;
    let t0 = Instant::now();
    if hone_data::split::is_documents_file(&a.data)
        .with_context(|| format!("cannot read {}", a.data.display()))?
    {
        return super::pilot_review::run(&a, t0);
    }
    if a.top_layers.is_some() {
        bail!(
            "--top-layers applies to review data (a documents.jsonl); {} holds examples",
            a.data.display()
        );
    }
    let lr = a.lr.unwrap_or(LR);
    let epochs = a.epochs.unwrap_or(EPOCHS);
    let batch_size = a.batch_size.unwrap_or(BATCH);

    step(1, &format!("read and check {}", a.data.display()));
    let read = hone_data::jsonl::read_examples(&a.data)
        .with_context(|| format!("cannot read examples from {}", a.data.display()))?;
    if read.len() < MIN_EXAMPLES {
        bail!(
            "{}: {} examples; a pilot needs at least {MIN_EXAMPLES} (40 to train on, 10 to \
             judge by). Label {} more, or draft them with `hone data draft`.",
            a.data.display(),
            read.len(),
            MIN_EXAMPLES - read.len()
        );
    }
    if let Some((line, _)) = read.iter().find(|(_, e)| e.output_text().trim().is_empty()) {
        bail!(
            "{}:{line}: the example has no answer (an empty final assistant message); a pilot \
             trains on and judges by the answers",
            a.data.display()
        );
    }
    let qa = hone_data::qa::run(
        &a.data,
        &hone_data::Format::Jsonl,
        None,
        &hone_data::qa::QaOptions::default(),
        None,
        &hone_data::NoProgress,
    )
    .with_context(|| format!("data QA of {}", a.data.display()))?;
    let f = &qa.findings;
    // Exact duplicates: the first of each group is kept.
    let dropped: HashSet<usize> = f
        .exact_duplicates
        .iter()
        .flat_map(|g| g.lines.iter().skip(1).copied())
        .collect();
    let kept: Vec<(usize, Example)> = read
        .into_iter()
        .filter(|(line, _)| !dropped.contains(line))
        .collect();
    if kept.len() < MIN_EXAMPLES {
        bail!(
            "{}: {} distinct examples after dropping {} exact duplicates; a pilot needs at \
             least {MIN_EXAMPLES}",
            a.data.display(),
            kept.len(),
            dropped.len()
        );
    }
    eprintln!(
        "      {} examples; {} exact duplicates dropped, {} near-duplicate groups, {} contradicting-answer groups, {} over-represented patterns",
        kept.len(),
        dropped.len(),
        f.near_duplicates.len(),
        f.contradictions.len(),
        f.overrepresented.len()
    );
    let answers: Vec<&str> = kept.iter().map(|(_, e)| e.output_text()).collect();
    let task = task_of(&a, &answers)?;
    let task_words = hone_eval::task_guess::describe(&task);
    if matches!(task.kind, TaskKind::Classification | TaskKind::Multilabel)
        && task.labels.is_empty()
    {
        bail!("the task has no labels; give --labels");
    }
    eprintln!(
        "      task: {task_words}{}",
        if a.task.is_none() {
            " (guessed from the answers; --task to say otherwise)"
        } else {
            ""
        }
    );

    step(2, "split: a fifth held out for the verdict");
    prepare_out(&a.out, a.overwrite)?;
    let index_of_line: HashMap<usize, usize> = kept
        .iter()
        .enumerate()
        .map(|(i, (line, _))| (*line, i))
        .collect();
    // Near-duplicate groups stay on one side of the split.
    let mut group_of: Vec<u32> = (0..kept.len() as u32).collect();
    for g in &f.near_duplicates {
        let members: Vec<usize> = g
            .lines
            .iter()
            .filter_map(|l| index_of_line.get(l).copied())
            .collect();
        if let Some(&first) = members.first() {
            for &i in &members {
                group_of[i] = group_of[first];
            }
        }
    }
    let mut label_ids: HashMap<&str, u32> = HashMap::new();
    let label_of: Vec<u32> = kept
        .iter()
        .map(|(_, e)| match task.kind {
            TaskKind::Classification => {
                let next = label_ids.len() as u32;
                *label_ids.entry(e.output_text().trim()).or_insert(next)
            }
            _ => 0,
        })
        .collect();
    let sp = split(&group_of, &label_of, !f.near_duplicates.is_empty(), a.seed)?;
    let data_dir = a.out.join("data");
    std::fs::create_dir_all(&data_dir)?;
    let write = |name: &str, idx: &[usize]| -> Result<PathBuf> {
        let p = data_dir.join(name);
        hone_data::jsonl::write_examples(&p, idx.iter().map(|&i| &kept[i].1))?;
        Ok(p)
    };
    let train_path = write("train.jsonl", &sp.train)?;
    let valid_path = write("valid.jsonl", &sp.valid)?;
    let test_path = write("test.jsonl", &sp.test)?;
    // The few-shot pool is every training example (the validation part included).
    let mut pool_idx = sp.train.clone();
    pool_idx.extend(&sp.valid);
    let pool_path = write("fewshot_pool.jsonl", &pool_idx)?;
    eprintln!(
        "      train {} (of which {} for early stopping), held out {} -> {}",
        sp.train.len() + sp.valid.len(),
        sp.valid.len(),
        sp.test.len(),
        data_dir.display()
    );

    step(
        3,
        &format!(
            "train a {} adapter (r {}, alpha {}, lr {:e}, cosine, early stopping)",
            if a.qlora { "QLoRA" } else { "LoRA" },
            a.r,
            a.alpha,
            lr
        ),
    );
    let model_path = if hone_model::fetch::known_model(&a.model).is_some() {
        hone_model::fetch::fetch(&a.model, &|m: &str| eprintln!("      {m}"))
    } else {
        hone_model::fetch::resolve(&a.model).map(|s| s.path().to_path_buf())
    }
    .with_context(|| format!("cannot find model `{}`", a.model))?;
    let longest = kept
        .iter()
        .map(|(_, e)| e.messages.iter().map(|m| m.content.len()).sum::<usize>())
        .max()
        .unwrap_or(0);
    // A token is 3-4 characters of English; 2 leaves room for the template and other text.
    let max_seq_len = (longest / 2 + 96).clamp(128, 4096).next_multiple_of(64);
    let adapter = a.out.join("adapter");
    let cfg_text = format!(
        r#"# Written by `hone pilot`; `hone train --config train.toml` trains the same adapter again.
[model]
base = "{model}"
quantize = "{quant}"
[lora]
r = {r}
alpha = {alpha}
dropout = 0.05
target_modules = "all-linear"
[optim]
lr = {lr}
batch_size = {batch}
epochs = {epochs}
max_seq_len = {max_seq_len}
warmup_ratio = 0.05
patience = {patience}
seed = {seed}
[train]
log_every = 5
[data]
train = "{train}"
validation = "{valid}"
[output]
dir = "{adapter}"
"#,
        model = toml_path(&model_path),
        quant = if a.qlora { "nf4" } else { "none" },
        r = a.r,
        alpha = a.alpha,
        batch = batch_size,
        patience = a.patience,
        seed = a.seed,
        train = toml_path(&train_path),
        valid = toml_path(&valid_path),
        adapter = toml_path(&adapter),
    );
    let cfg_path = a.out.join("train.toml");
    hone_data::atomic::write_file(&cfg_path, cfg_text.as_bytes())?;
    let cfg = TrainConfig::load(&cfg_path, &[])?;
    let summary = super::train::run_as_step(&cfg)?;
    if summary.too_long > 0 {
        eprintln!(
            "      {} examples longer than {max_seq_len} tokens were skipped",
            summary.too_long
        );
    }

    step(4, "answer the held-out examples with every arm");
    let model_name = model_path.display().to_string();
    let mut candidates = vec![
        CandidateConfig {
            name: "base zero-shot".into(),
            fewshot: 0,
            source: CandidateSource::Local {
                model: model_name.clone(),
                adapter: None,
            },
        },
        CandidateConfig {
            name: "base few-shot".into(),
            fewshot: a.fewshot,
            source: CandidateSource::Local {
                model: model_name.clone(),
                adapter: None,
            },
        },
        CandidateConfig {
            name: "fine-tuned".into(),
            fewshot: 0,
            source: CandidateSource::Local {
                model: model_name.clone(),
                adapter: Some(adapter.clone()),
            },
        },
    ];
    if a.fewshot == 0 {
        candidates.remove(1);
    }
    let endpoint_missing = match (&a.endpoint, &a.endpoint_model) {
        (Some(url), Some(model)) => {
            let mut ec = EndpointConfig::new(url.clone(), model.clone());
            ec.api_key_env = a.endpoint_key_env.clone();
            ec.price_input_per_mtok = a.endpoint_price_in;
            ec.price_output_per_mtok = a.endpoint_price_out;
            ec.validate().with_context(|| format!("--endpoint {url}"))?;
            candidates.push(CandidateConfig {
                name: format!("endpoint {model}"),
                fewshot: 0,
                source: CandidateSource::Endpoint(ec),
            });
            None
        }
        _ => Some(
            "no --endpoint was given, so the prompted frontier model was not asked. Run again \
             with --endpoint URL --endpoint-model NAME (any OpenAI-compatible API) to compare \
             against it."
                .to_string(),
        ),
    };
    let eval_dir = a.out.join("eval");
    let eval_cfg = EvalConfig {
        task: task.clone(),
        data: DataConfig {
            eval: test_path.clone(),
            fewshot_pool: (a.fewshot > 0).then(|| pool_path.clone()),
            limit: None,
            seed: a.seed,
        },
        candidates,
        generation: GenerationConfig {
            max_tokens: a.max_tokens,
        },
        cost: CostConfig {
            machine_usd_per_hour: a.usd_per_hour,
        },
        regression: RegressionConfig::default(),
        output: OutputConfig {
            dir: eval_dir.clone(),
        },
    };
    eval_cfg
        .validate()
        .map_err(|m| anyhow::anyhow!("the pilot's evaluation: {m}"))?;
    let eval_toml = a.out.join("eval.toml");
    hone_data::atomic::write_file(
        &eval_toml,
        format!(
            "# Written by `hone pilot`; `hone eval --config eval.toml` answers again.\n{}",
            toml::to_string(&eval_cfg).context("eval.toml")?
        )
        .as_bytes(),
    )?;
    let eb = bar(0, "");
    let report = runner::run(&eval_cfg, None, &mut |e| match e {
        RunEvent::Candidate { name, queries } => {
            eb.reset();
            eb.set_length(queries as u64);
            eb.set_prefix(name.to_string());
        }
        RunEvent::Done { .. } => eb.inc(1),
        RunEvent::Note(n) => eb.println(format!("      {n}")),
    })
    .context("evaluation failed")?;
    eb.finish_and_clear();
    let written = hone_eval::report::write_all(&report, &eval_dir)
        .with_context(|| format!("cannot write reports to {}", eval_dir.display()))?;

    step(5, "judge: the gain with its interval, by the stated rule");
    let (arms, examples) = arms_of(&report, &task)?;
    let rule = Rule {
        min_gain: a.min_gain / 100.0,
    };
    let metric = hone_eval::item_score::name(task.kind);
    let v = verdict::judge(metric, &arms, rule, a.seed)?;

    step(6, "write the verdict page");
    let info = runner::training_info(&adapter);
    let pilot = PilotReport {
        arms: report
            .candidates
            .iter()
            .map(|c| PilotArm {
                name: c.name.clone(),
                description: c.description.clone(),
                fewshot: c.fewshot,
                failures: c.failures,
                latency_p50_s: c.latency.as_ref().map(|l| l.p50_s),
                cost_per_1k_usd: c.cost_per_1k_usd,
            })
            .collect(),
        verdict: v,
        data: PilotData {
            file: a.data.clone(),
            examples: kept.len() + dropped.len(),
            duplicates_dropped: dropped.len(),
            near_duplicate_groups: f.near_duplicates.len(),
            contradiction_groups: f.contradictions.len(),
            overrepresented_groups: f.overrepresented.len(),
            task: task_words,
            train: sp.train.len() + sp.valid.len(),
            validation: sp.valid.len(),
            held_out: sp.test.len(),
            unit: "examples".into(),
        },
        training: PilotTraining {
            recipe: format!(
                "{} r {}, alpha {}, all linear layers, lr {:e}, cosine, batch {}, early stopping \
                 (patience {})",
                if a.qlora { "QLoRA (NF4 base)" } else { "LoRA" },
                a.r,
                a.alpha,
                lr,
                batch_size,
                a.patience
            ),
            steps: summary.steps,
            epochs: summary.epochs,
            seconds: summary.seconds,
            best_val_loss: summary.best_val_loss,
            adapter: adapter.clone(),
            loss_svg: info.loss_svg,
        },
        endpoint_missing,
        examples,
        seconds: t0.elapsed().as_secs_f64(),
        eval_report: written.html.clone(),
    };
    publish(&pilot, &a.out)
}

/// Writes the verdict page and JSON into `out` and prints the summary with their paths (both
/// pilots' last step).
pub(crate) fn publish(pilot: &PilotReport, out: &Path) -> Result<()> {
    let w = pilot_report::write(pilot, out)
        .with_context(|| format!("cannot write the verdict to {}", out.display()))?;
    print!("{}", pilot_report::text(pilot));
    println!(
        "\nverdict page: {}\n              {}\nevaluation:   {}\n({:.0} s in all)",
        w.html.display(),
        w.json.display(),
        pilot.eval_report.display(),
        pilot.seconds
    );
    Ok(())
}

/// Each candidate's per-example scores (in the held-out order) and the answers side by side.
fn arms_of(report: &EvalReport, task: &TaskConfig) -> Result<(Vec<Arm>, Vec<PilotExample>)> {
    let mut by_cand: BTreeMap<&str, Vec<&runner::OutputRecord>> = BTreeMap::new();
    for o in &report.outputs {
        by_cand.entry(o.candidate.as_str()).or_default().push(o);
    }
    let mut arms = Vec::new();
    for c in &report.candidates {
        let outs = by_cand.get(c.name.as_str()).cloned().unwrap_or_default();
        let ids: Vec<String> = outs.iter().map(|o| o.id.clone()).collect();
        let refs: Vec<String> = outs
            .iter()
            .map(|o| o.reference.clone().unwrap_or_default())
            .collect();
        let texts: Vec<String> = outs.iter().map(|o| o.output.clone()).collect();
        let scores = hone_eval::item_score::item_scores(task, &ids, &refs, &texts)?;
        let role = if c.kind == "endpoint" {
            Role::Endpoint
        } else if c.training.is_some() {
            Role::FineTuned
        } else {
            Role::Base
        };
        arms.push((c.name.clone(), role, outs, scores));
    }
    let n = arms.first().map_or(0, |a| a.2.len());
    let examples = (0..n)
        .map(|i| {
            let first = arms[0].2[i];
            PilotExample {
                id: first.id.clone(),
                input: first.input.clone(),
                reference: first.reference.clone().unwrap_or_default(),
                answers: arms
                    .iter()
                    .map(|(name, _, outs, scores)| {
                        let o = outs[i];
                        let text = match &o.error {
                            Some(e) => format!("(failed: {e})"),
                            None => o.output.clone(),
                        };
                        (name.clone(), text, scores[i])
                    })
                    .collect(),
            }
        })
        .collect();
    let arms = arms
        .into_iter()
        .map(|(name, role, _, scores)| Arm { name, role, scores })
        .collect();
    Ok((arms, examples))
}
