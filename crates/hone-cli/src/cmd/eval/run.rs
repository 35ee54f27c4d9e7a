//! `hone eval --config eval.toml`: candidates on an evaluation file, reports.

use anyhow::Result;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Evaluation configuration (TOML).
    #[arg(long)]
    pub config: Option<std::path::PathBuf>,
}

pub fn run(_a: RunArgs) -> Result<()> {
    anyhow::bail!("not built yet")
}
