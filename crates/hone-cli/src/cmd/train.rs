//! `hone train`: a progress bar over the library's training run; Ctrl-C checkpoints.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use hone_train::trainer::{run as train_run, Event};
use hone_train::TrainConfig;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// The run configuration (TOML). With --resume, defaults to the run folder's
    /// train_config.toml.
    #[arg(long, short)]
    pub config: Option<std::path::PathBuf>,
    /// Override a configuration key, e.g. `--set optim.lr=1e-4` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Continue the run in this output folder from its last checkpoint. With
    /// `--set optim.epochs=N` (more than it has trained) a finished run is extended; the
    /// learning-rate schedule is then the one of an N-epoch run, from the step reached.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<std::path::PathBuf>,
    /// Start over in an output folder that holds a run: its files (adapter, checkpoints,
    /// configuration, metrics, calibration) are removed first. Without it such a folder is
    /// refused.
    #[arg(long, conflicts_with = "resume")]
    pub overwrite: bool,
}

pub fn run(a: TrainArgs) -> Result<()> {
    let config = match (&a.config, &a.resume) {
        (Some(c), _) => c.clone(),
        (None, Some(dir)) => dir.join("train_config.toml"),
        (None, None) => anyhow::bail!("give --config RUN.toml (or --resume DIR)"),
    };
    let cfg = TrainConfig::load(&config, &a.set)?;
    if let Some(dir) = &a.resume {
        let want = std::fs::canonicalize(dir).with_context(|| format!("{}", dir.display()))?;
        let have = std::fs::canonicalize(&cfg.output.dir).unwrap_or(cfg.output.dir.clone());
        anyhow::ensure!(
            want == have,
            "--resume {} but the configuration's output.dir is {}",
            dir.display(),
            cfg.output.dir.display()
        );
    }
    if a.overwrite {
        hone_train::run_folder::clear(&cfg.output.dir)?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                // A second Ctrl-C: leave at once.
                std::process::exit(130);
            }
            eprintln!(
                "\ninterrupted: saving a checkpoint after this step (Ctrl-C again to quit now)"
            );
        });
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} epoch {prefix} [{bar:30}] {pos}/{len} steps  {msg}  ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    // Without a terminal (a log file, CI) the bar is hidden: progress goes out as lines.
    let lines = bar.is_hidden();
    let log_every = cfg.train.log_every;
    let say = |bar: &ProgressBar, s: String| {
        if lines {
            eprintln!("{s}");
        } else {
            bar.println(s)
        }
    };
    let summary = train_run(&cfg, a.resume.is_some(), &stop, &mut |ev| match ev {
        Event::Start {
            total_steps,
            first_step,
            examples,
            too_long,
        } => {
            bar.set_length(total_steps as u64);
            bar.set_position(first_step as u64);
            say(
                &bar,
                format!(
                    "training on {examples} examples ({too_long} skipped as too long), {total_steps} steps"
                ),
            );
        }
        Event::Step(r) => {
            bar.set_prefix(r.epoch.to_string());
            bar.set_message(format!(
                "loss {:.4}  lr {:.2e}  {:.0} tok/s",
                r.loss, r.lr, r.tokens_per_s
            ));
            bar.set_position(r.step as u64);
            if lines && r.step % log_every == 0 {
                eprintln!(
                    "step {}/{} epoch {}: loss {:.4}  lr {:.2e}  {:.0} tok/s",
                    r.step,
                    bar.length().unwrap_or(0),
                    r.epoch,
                    r.loss,
                    r.lr,
                    r.tokens_per_s
                );
            }
        }
        Event::Epoch(e) => say(
            &bar,
            format!(
                "epoch {}: train loss {:.4}{}",
                e.epoch,
                e.train_loss,
                e.val_loss
                    .map(|v| format!(", validation loss {v:.4}"))
                    .unwrap_or_default()
            ),
        ),
        Event::Note(n) => say(&bar, n),
    })?;
    bar.finish_and_clear();
    if summary.interrupted {
        println!(
            "stopped after step {}: checkpoint saved; continue with `hone train --resume {}`",
            summary.steps,
            summary.adapter_dir.display()
        );
        return Ok(());
    }
    println!(
        "done: {} steps, {} epochs in {:.0} s; final train loss {:.4}{}{}",
        summary.steps,
        summary.epochs,
        summary.seconds,
        summary.final_train_loss,
        summary
            .best_val_loss
            .map(|v| format!(", best validation loss {v:.4}"))
            .unwrap_or_default(),
        if summary.early_stopped {
            " (early stop)"
        } else {
            ""
        }
    );
    println!(
        "adapter: {} (adapter_config.json, adapter_model.safetensors; metrics.jsonl, loss.svg)",
        summary.adapter_dir.display()
    );
    if cfg.data.format == hone_train::config::DataFormat::Review {
        if let Some(val) = &cfg.data.validation {
            super::review::calibrate(&cfg, val, &summary.adapter_dir, false)?;
        }
    }
    Ok(())
}

/// A training run as one step of a longer command (`quickstart`, `pilot`): a progress bar
/// with the loss, each epoch's losses printed indented under it, then what the run did.
pub fn run_as_step(cfg: &TrainConfig) -> Result<hone_train::trainer::Summary> {
    let tb = ProgressBar::new(0);
    tb.set_style(
        ProgressStyle::with_template("{spinner} training [{bar:30}] {pos}/{len} {msg} ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let stop = AtomicBool::new(false);
    let summary = train_run(cfg, false, &stop, &mut |ev| match ev {
        Event::Start { total_steps, .. } => tb.set_length(total_steps as u64),
        Event::Step(r) => {
            tb.set_position(r.step as u64);
            tb.set_message(format!("loss {:.4}", r.loss));
        }
        Event::Epoch(e) => tb.println(format!(
            "      epoch {}: train loss {:.4}{}",
            e.epoch,
            e.train_loss,
            e.val_loss
                .map(|v| format!(", validation loss {v:.4}"))
                .unwrap_or_default()
        )),
        Event::Note(n) => tb.println(format!("      {n}")),
    })
    .context("training failed")?;
    tb.finish_and_clear();
    eprintln!(
        "      {} steps, {} epochs{} in {:.0} s -> {}",
        summary.steps,
        summary.epochs,
        if summary.early_stopped {
            " (stopped early)"
        } else {
            ""
        },
        summary.seconds,
        summary.adapter_dir.display()
    );
    Ok(summary)
}
