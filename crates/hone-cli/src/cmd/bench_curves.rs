//! `hone bench loss-curves RUN... --out FILE.svg`: the training loss of several runs on one
//! chart, e.g. the same recipe with `model.dtype = "f32"` and `"bf16"`.

use std::path::PathBuf;

use anyhow::{ensure, Result};
use clap::Args;
use hone_data::train_log::{self, METRICS_FILE};

#[derive(Args, Debug)]
pub struct BenchLossCurvesArgs {
    /// Run folders (each with the metrics.jsonl `hone train` writes).
    #[arg(required = true, num_args = 1..)]
    pub runs: Vec<PathBuf>,
    /// One legend label per run (default: the folder names).
    #[arg(long, value_delimiter = ',')]
    pub labels: Vec<String>,
    /// The SVG file to write.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(a: BenchLossCurvesArgs) -> Result<()> {
    ensure!(
        a.labels.is_empty() || a.labels.len() == a.runs.len(),
        "--labels gives {} labels for {} runs",
        a.labels.len(),
        a.runs.len()
    );
    let mut runs = Vec::new();
    for (i, dir) in a.runs.iter().enumerate() {
        let (steps, _) = train_log::read_metrics(dir);
        ensure!(
            !steps.is_empty(),
            "{}: no training steps (is it a run folder with {METRICS_FILE}?)",
            dir.join(METRICS_FILE).display()
        );
        let label = a.labels.get(i).cloned().unwrap_or_else(|| {
            dir.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| dir.display().to_string())
        });
        let last = steps.last().map(|s| (s.step, s.loss));
        if let Some((step, loss)) = last {
            println!(
                "{label}: {} steps, last loss {loss:.4} at step {step}",
                steps.len()
            );
        }
        runs.push((label, steps));
    }
    let refs: Vec<(&str, &[train_log::StepRecord])> =
        runs.iter().map(|(l, s)| (l.as_str(), &s[..])).collect();
    hone_data::atomic::write_file(&a.out, train_log::loss_compare_svg(&refs).as_bytes())?;
    println!("wrote {}", a.out.display());
    Ok(())
}
