//! `hone pilot DOCUMENTS.jsonl`: the fine-tune-or-prompt pilot on review data (NDAs with
//! ContractNLI labels). The documents are split with near-copies kept together (a fifth held
//! out), the base model reviews the held-out ones zero-shot and few-shot (demonstration spans
//! from the training documents), a review adapter is trained and calibrated as `hone
//! quickstart` does, and each held-out document scores the share of its 17 checks whose
//! 3-class label (entailment / contradiction / not mentioned) is right. The verdict, page and
//! `pilot.json` are those of the examples pilot (`verdict::judge`, `pilot_report`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use hone_data::contractnli::EvalDocument;
use hone_eval::pilot_report::{PilotArm, PilotData, PilotExample, PilotReport, PilotTraining};
use hone_eval::verdict::{self, Arm, Role, Rule};
use hone_review::engine::{EngineOptions, Reviewer};
use hone_review::DocReview;
use hone_train::TrainConfig;

use super::pilot::{prepare_out, step, PilotArgs};
use super::review_steps::{self, ReviewRecipe};

/// The fewest documents a review pilot takes: 20 documents of 17 checks are 340 labelled
/// decisions (14 documents to train on, 2 to calibrate on, 4 to judge by).
pub const MIN_DOCUMENTS: usize = 20;

/// Review training defaults (each a flag): a higher learning rate than for examples and LoRA
/// in the top layers only, so that 50 synthetic NDAs train in a few minutes on 2 cores.
pub const LR: f64 = 2e-3;
pub const EPOCHS: usize = 3;
pub const BATCH: usize = 1;
pub const TOP_LAYERS: usize = 4;

/// The metric every held-out document is scored by.
pub const METRIC: &str = "3-class check accuracy";

/// Why there is no frontier arm on review data (`given`: whether `--endpoint` was passed).
pub fn endpoint_missing(given: bool) -> String {
    let why = "on review data an arm must give all 17 checks of a document with a label, class \
               probabilities and evidence ranges in the document's text, and a prompted chat \
               endpoint is not asked for those here; compare with a frontier model on \
               instruction data instead (e.g. the spans of `hone data import contractnli` as \
               examples)";
    if given {
        format!("--endpoint was given but not asked: {why}.")
    } else {
        let mut c = why.chars();
        let first = c.next().map(|f| f.to_ascii_uppercase()).unwrap_or_default();
        format!("{first}{}.", c.as_str())
    }
}

/// Refuses the flags that describe instruction data only.
fn check_review_args(a: &PilotArgs) -> Result<()> {
    if a.task.is_some() || !a.labels.is_empty() || !a.fields.is_empty() {
        bail!(
            "{} is review data (documents with 17 checks each): --task, --labels and --fields \
             describe instruction data",
            a.data.display()
        );
    }
    if a.qlora {
        bail!(
            "--qlora is not available for review data ({}): the review engine runs the base \
             model unquantized",
            a.data.display()
        );
    }
    Ok(())
}

/// Split sizes: a fifth held out, a tenth of the rest (at least 2) for calibration and early
/// stopping, the rest to train on.
fn sizes(n: usize) -> [usize; 3] {
    let test = ((n as f64) * 0.2).round() as usize;
    let valid = (((n - test) as f64) * 0.1).round().max(2.0) as usize;
    [n - test - valid, valid, test]
}

/// Near-duplicate groups (of more than one document) in the split's pairs.
fn near_duplicate_groups(pairs: &[hone_data::split::NearDuplicatePair]) -> usize {
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    fn root<'a>(p: &BTreeMap<&'a str, &'a str>, mut x: &'a str) -> &'a str {
        while let Some(&up) = p.get(x) {
            if up == x {
                break;
            }
            x = up;
        }
        x
    }
    for pair in pairs {
        let [a, b] = [pair.ids[0].as_str(), pair.ids[1].as_str()];
        parent.entry(a).or_insert(a);
        parent.entry(b).or_insert(b);
        let (ra, rb) = (root(&parent, a), root(&parent, b));
        if ra != rb {
            parent.insert(ra.max(rb), ra.min(rb));
        }
    }
    parent.iter().filter(|(k, v)| k == v).count()
}

/// One document's score: the share of its checks whose 3-class label is right, as the
/// ContractNLI 3-class accuracy counts it (a check the review lacks is NotMentioned); and how
/// many checks it has.
fn doc_score(doc: &EvalDocument, review: &DocReview) -> Result<(f64, usize)> {
    let m = hone_review::calibrate::score(std::slice::from_ref(doc), std::slice::from_ref(review))?;
    Ok((m.acc3.unwrap_or(0.0), m.hypotheses))
}

/// One arm's reviews of the held-out documents.
struct ArmRun {
    name: String,
    role: Role,
    description: String,
    demos: usize,
    secs: Vec<f64>,
    reviews: Vec<DocReview>,
    scores: Vec<f64>,
    checks: Vec<usize>,
}

fn arm_run(
    name: &str,
    role: Role,
    description: String,
    reviewer: &Reviewer,
    test: &[EvalDocument],
) -> Result<ArmRun> {
    let (_, secs, reviews) = review_steps::evaluate(reviewer, test, name)?;
    let mut scores = Vec::new();
    let mut checks = Vec::new();
    for (d, r) in test.iter().zip(&reviews) {
        let (s, n) = doc_score(d, r)?;
        scores.push(s);
        checks.push(n);
    }
    Ok(ArmRun {
        name: name.to_string(),
        role,
        description,
        demos: reviewer.options.demos.len(),
        secs,
        reviews,
        scores,
        checks,
    })
}

fn slug(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect()
}

/// Every metric of every arm: each arm's reviews as a predictions file and the comparison
/// report of `hone eval contractnli` (report.html, report.md, report.json) in `dir`.
fn write_comparison(runs: &[ArmRun], test_path: &Path, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut candidates = Vec::new();
    for r in runs {
        let path = dir.join(format!("{}.jsonl", slug(&r.name)));
        let mut body = String::new();
        for review in &r.reviews {
            body.push_str(&serde_json::to_string(review)?);
            body.push('\n');
        }
        hone_data::atomic::write_file(&path, body.as_bytes())?;
        candidates.push((r.name.clone(), path));
    }
    // Read back and scored as `hone eval contractnli` scores predictions files.
    let c = hone_eval::contractnli::compare(test_path, &candidates)?;
    let files = hone_eval::contractnli::write_comparison(&c, dir)
        .with_context(|| format!("cannot write the comparison to {}", dir.display()))?;
    Ok(files.html)
}

pub fn run(a: &PilotArgs, t0: Instant) -> Result<()> {
    check_review_args(a)?;
    step(
        1,
        &format!("read and check {} (review data)", a.data.display()),
    );
    let docs = hone_data::contractnli::read_documents(&a.data)
        .with_context(|| format!("cannot read documents from {}", a.data.display()))?;
    if docs.len() < MIN_DOCUMENTS {
        bail!(
            "{}: {} documents; a review pilot needs at least {MIN_DOCUMENTS} (each with 17 \
             checks: {} labelled decisions). Annotate {} more, or try it on `hone data synth \
             nda`.",
            a.data.display(),
            docs.len(),
            MIN_DOCUMENTS * 17,
            MIN_DOCUMENTS - docs.len()
        );
    }
    let endpoint_given = a.endpoint.is_some();
    let missing = endpoint_missing(endpoint_given);
    if endpoint_given {
        eprintln!("      {missing}");
    }
    eprintln!(
        "      {} documents, task: 17 checks each (entailment / contradiction / not mentioned)",
        docs.len()
    );
    drop(docs);

    step(
        2,
        "split the documents: a fifth held out (near-copies kept together)",
    );
    prepare_out(&a.out, a.overwrite)?;
    let data_dir = a.out.join("data");
    let n = hone_data::contractnli::read_documents(&a.data)?.len();
    let want = sizes(n);
    let rep = hone_data::split::split_documents(
        &a.data,
        &data_dir,
        &hone_data::split::Sizes::Counts(want),
        a.seed,
        0.5,
    )
    .with_context(|| format!("cannot split {}", a.data.display()))?;
    let [n_train, n_valid, n_test] = rep.counts;
    if n_train == 0 || n_valid == 0 || n_test == 0 {
        bail!(
            "{}: near-copies left train {n_train}, validation {n_valid}, held out {n_test} \
             documents; a pilot needs documents on every side (more distinct documents)",
            a.data.display()
        );
    }
    let groups = near_duplicate_groups(&rep.near_duplicate_pairs);
    eprintln!(
        "      train {n_train}, validation {n_valid} (calibration, early stopping), held out \
         {n_test}; {groups} near-duplicate groups -> {}",
        data_dir.display()
    );
    let (train_path, valid_path, test_path) = (
        data_dir.join("train.jsonl"),
        data_dir.join("valid.jsonl"),
        data_dir.join("test.jsonl"),
    );
    let train_docs = hone_data::contractnli::read_documents(&train_path)?;
    let test_docs = hone_data::contractnli::read_documents(&test_path)?;

    let recipe = ReviewRecipe {
        r: a.r,
        alpha: a.alpha,
        lr: a.lr.unwrap_or(LR),
        batch: a.batch_size.unwrap_or(BATCH),
        epochs: a.epochs.unwrap_or(EPOCHS),
        patience: a.patience,
        top_layers: a.top_layers.unwrap_or(TOP_LAYERS),
        seed: a.seed,
    };
    step(
        3,
        &format!(
            "train and calibrate a review adapter ({})",
            recipe.describe()
        ),
    );
    let model_path = if hone_model::fetch::known_model(&a.model).is_some() {
        hone_model::fetch::fetch(&a.model, &|m: &str| eprintln!("      {m}"))
    } else {
        hone_model::fetch::resolve(&a.model).map(|s| s.path().to_path_buf())
    }
    .with_context(|| format!("cannot find model `{}`", a.model))?;
    let adapter = a.out.join("adapter");
    let cfg_path = a.out.join("train.toml");
    hone_data::atomic::write_file(
        &cfg_path,
        format!(
            "# Written by `hone pilot`; `hone train --config train.toml` trains the same adapter again.\n{}",
            review_steps::train_toml(&model_path, &train_path, &valid_path, &adapter, &recipe)
        )
        .as_bytes(),
    )?;
    let cfg = TrainConfig::load(&cfg_path, &[])?;
    let summary = super::train::run_as_step(&cfg)?;
    let cal = review_steps::calibrate(
        &model_path,
        &adapter,
        &valid_path,
        &train_path,
        cfg.optim.max_seq_len,
    )?;
    let weight = review_steps::tfidf_weight(&cal);

    step(4, "review the held-out documents with every arm");
    let model = model_path.to_string_lossy().to_string();
    let model_name = model_path
        .file_name()
        .map_or(model.clone(), |f| f.to_string_lossy().to_string());
    let mut runs = Vec::new();
    let zero = Reviewer::load(&model, None, EngineOptions::default())?;
    runs.push(arm_run(
        "base zero-shot",
        Role::Base,
        format!("{model_name}, no adapter, the review instruction only"),
        &zero,
        &test_docs,
    )?);
    drop(zero);
    if a.fewshot > 0 {
        let few = Reviewer::load(
            &model,
            None,
            EngineOptions {
                demos: hone_review::engine::demos_from(&train_docs),
                ..EngineOptions::default()
            },
        )?;
        runs.push(arm_run(
            "base few-shot",
            Role::Base,
            format!(
                "{model_name}, no adapter, {} labelled spans of the training documents in the \
                 prompt",
                few.options.demos.len()
            ),
            &few,
            &test_docs,
        )?);
    }
    let ft = Reviewer::load(&model, Some(&adapter), EngineOptions::default())?;
    runs.push(arm_run(
        "fine-tuned",
        Role::FineTuned,
        format!(
            "{model_name} + review adapter {}, calibrated (mentioned {:.2}, entailment {:.2}, \
             TF-IDF weight {weight})",
            adapter.display(),
            cal.calibration.mentioned,
            cal.calibration.entailment
        ),
        &ft,
        &test_docs,
    )?);
    drop(ft);
    let eval_dir = a.out.join("eval");
    let eval_html = write_comparison(&runs, &test_path, &eval_dir)?;

    step(5, "judge: the gain with its interval, by the stated rule");
    let arms: Vec<Arm> = runs
        .iter()
        .map(|r| Arm {
            name: r.name.clone(),
            role: r.role,
            scores: r.scores.clone(),
        })
        .collect();
    let v = verdict::judge_in(
        verdict::Unit::Documents,
        METRIC,
        &arms,
        Rule {
            min_gain: a.min_gain / 100.0,
        },
        a.seed,
    )?;

    step(6, "write the verdict page");
    let examples = test_docs
        .iter()
        .enumerate()
        .map(|(i, d)| PilotExample {
            id: d.id.clone(),
            input: d.text.chars().take(400).collect(),
            reference: format!("{} checks", runs[0].checks[i]),
            answers: runs
                .iter()
                .map(|r| {
                    let n = r.checks[i];
                    let right = (r.scores[i] * n as f64).round() as usize;
                    (r.name.clone(), format!("{right}/{n} right"), r.scores[i])
                })
                .collect(),
        })
        .collect();
    let info = hone_eval::runner::training_info(&adapter);
    let pilot = PilotReport {
        arms: runs
            .iter()
            .map(|r| PilotArm {
                name: r.name.clone(),
                description: r.description.clone(),
                fewshot: r.demos,
                failures: 0,
                latency_p50_s: Some(review_steps::median(&r.secs)),
                cost_per_1k_usd: Some(review_steps::cost_per_1k(&r.secs, a.usd_per_hour)),
            })
            .collect(),
        verdict: v,
        data: PilotData {
            file: a.data.clone(),
            examples: n,
            duplicates_dropped: 0,
            near_duplicate_groups: groups,
            contradiction_groups: 0,
            overrepresented_groups: 0,
            task: "review: 17 checks per document, each entailment / contradiction / not \
                   mentioned"
                .into(),
            train: n_train + n_valid,
            validation: n_valid,
            held_out: n_test,
            unit: "documents".into(),
        },
        training: PilotTraining {
            recipe: format!(
                "{}; calibrated on the {n_valid} validation documents (mentioned threshold \
                 {:.2}, entailment {:.2}, TF-IDF expert weight {weight})",
                recipe.describe(),
                cal.calibration.mentioned,
                cal.calibration.entailment
            ),
            steps: summary.steps,
            epochs: summary.epochs,
            seconds: summary.seconds,
            best_val_loss: summary.best_val_loss,
            adapter: adapter.clone(),
            loss_svg: info.loss_svg,
        },
        endpoint_missing: Some(missing),
        examples,
        seconds: t0.elapsed().as_secs_f64(),
        eval_report: eval_html.clone(),
    };
    super::pilot::publish(&pilot, &a.out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifth_is_held_out_and_at_least_two_documents_calibrate() {
        assert_eq!(sizes(20), [14, 2, 4]);
        assert_eq!(sizes(30), [22, 2, 6]);
        assert_eq!(sizes(50), [36, 4, 10]);
    }
}
