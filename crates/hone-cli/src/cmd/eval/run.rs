//! `hone eval --config eval.toml`: candidates on an evaluation file, reports.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use hone_eval::config::EvalConfig;
use hone_eval::runner::{self, RunEvent};
use hone_ops::baseline::{OutputBaseline, BASELINE_FILE};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Evaluation configuration (TOML): task, data, `[[candidate]]`s, cost, output.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Output cache (SQLite); default `<output dir>/cache.sqlite`.
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Print report.json to stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: RunArgs) -> Result<()> {
    let Some(path) = a.config else {
        anyhow::bail!(
            "give an evaluation configuration with `hone eval --config eval.toml` \
             (or use a subcommand: `hone eval --help`)"
        );
    };
    let cfg = EvalConfig::load(&path)
        .with_context(|| format!("cannot read evaluation config {}", path.display()))?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix:>12} [{bar:30}] {pos}/{len} {msg} ({per_sec}, eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let mut cached = 0u64;
    let report = runner::run(&cfg, a.cache.as_deref(), &mut |e| match e {
        RunEvent::Candidate { name, queries } => {
            bar.reset();
            bar.set_length(queries as u64);
            bar.set_prefix(name.to_string());
            cached = 0;
            bar.set_message("");
        }
        RunEvent::Done { cached: c } => {
            if c {
                cached += 1;
                bar.set_message(format!("{cached} cached"));
            }
            bar.inc(1);
        }
        RunEvent::Note(n) => bar.println(n),
    })
    .context("evaluation failed")?;
    bar.finish_and_clear();
    let w = hone_eval::report::write_all(&report, &cfg.output.dir)
        .with_context(|| format!("cannot write reports to {}", cfg.output.dir.display()))?;
    let baselines = write_baselines(&report, &cfg.output.dir, cfg.generation.max_tokens as u64)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", hone_eval::report::markdown(&report));
        println!(
            "\nreports: {}\n         {}\n         {}\nanswers: {}",
            w.html.display(),
            w.markdown.display(),
            w.json.display(),
            w.outputs.display()
        );
        if let Some(first) = baselines.first() {
            println!(
                "baselines: {} ({} candidates; an {BASELINE_FILE} beside an adapter is recorded \
                 by `hone registry add` as its drift baseline)",
                first.display(),
                baselines.len()
            );
        }
    }
    Ok(())
}

/// Each candidate's answers as an evaluation baseline (output tokens and format classes):
/// `<out>/baselines/<candidate>/output_baseline.json`, ready to sit beside an adapter.
fn write_baselines(
    report: &hone_eval::runner::EvalReport,
    out: &Path,
    max_tokens: u64,
) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for c in &report.candidates {
        let outputs = report
            .outputs
            .iter()
            .filter(|o| o.candidate == c.name && o.error.is_none())
            .map(|o| (o.output_tokens, o.output.as_str()));
        let source = format!("{} ({})", report.eval_file.display(), c.name);
        let Some(b) = OutputBaseline::from_outputs(&source, outputs, max_tokens) else {
            continue;
        };
        let folder: String = c
            .name
            .chars()
            .map(|ch| {
                if ch.is_ascii_alphanumeric() || matches!(ch, '-' | '_' | '.') {
                    ch
                } else {
                    '_'
                }
            })
            .collect();
        let folder = match folder.trim_start_matches('.') {
            "" => "candidate",
            f => f,
        };
        let dir = out.join("baselines").join(folder);
        std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
        b.write(&dir)?;
        written.push(dir.join(BASELINE_FILE));
    }
    Ok(written)
}
