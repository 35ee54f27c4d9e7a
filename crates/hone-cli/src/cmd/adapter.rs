//! `hone adapter ...`: LoRA adapters in the PEFT format (merge into the base, inspect).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

#[derive(Subcommand, Debug)]
pub enum AdapterCmd {
    /// Merge an adapter into its base model: writes a Hugging Face folder (config.json,
    /// f32 model.safetensors, tokenizer.json, tokenizer_config.json) that hone, transformers
    /// and vLLM load as a plain model.
    Merge(MergeArgs),
    /// Show an adapter folder: rank, alpha, modules, layers, parameters.
    Info {
        /// The adapter folder (adapter_config.json + adapter_model.safetensors).
        dir: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The base model: a cached name (`smollm2`), a `.gguf` file or a Hugging Face folder.
    #[arg(long)]
    pub base: String,
    /// The adapter folder (adapter_config.json + adapter_model.safetensors).
    #[arg(long)]
    pub adapter: PathBuf,
    /// The folder to write (created if needed; may not hold other *.safetensors files).
    #[arg(long)]
    pub out: PathBuf,
}

pub fn run(cmd: AdapterCmd) -> Result<()> {
    match cmd {
        AdapterCmd::Merge(a) => merge(a),
        AdapterCmd::Info { dir } => info(dir),
    }
}

fn merge(a: MergeArgs) -> Result<()> {
    let sp = indicatif::ProgressBar::new_spinner();
    sp.set_message(format!("merging {} into {}", a.adapter.display(), a.base));
    sp.enable_steady_tick(std::time::Duration::from_millis(120));
    let res = hone_train::merge_adapter(&a.base, &a.adapter, &a.out).with_context(|| {
        format!(
            "cannot merge adapter {} into `{}`",
            a.adapter.display(),
            a.base
        )
    });
    sp.finish_and_clear();
    let s = res?;
    println!(
        "merged {} LoRA modules into {} ({} tensors, {:.1} MB of f32 weights)",
        s.merged_modules,
        s.out.display(),
        s.tensors,
        s.bytes as f64 / 1e6
    );
    Ok(())
}

fn info(dir: PathBuf) -> Result<()> {
    let cfg = hone_model::peft::read_adapter_config(&dir)?;
    let a = hone_model::load_adapter(&dir)?;
    let layers = &a.spec.layers;
    let span = match (layers.first(), layers.last()) {
        (Some(f), Some(l)) if l - f + 1 == layers.len() => format!("{f}-{l}"),
        _ => format!("{layers:?}"),
    };
    println!("adapter:        {}", dir.display());
    if let Some(b) = &cfg.base_model_name_or_path {
        println!("base model:     {b}");
    }
    println!(
        "r / alpha:      {} / {} (scale {})",
        a.spec.r,
        a.spec.alpha,
        a.scale()
    );
    println!("modules:        {}", a.spec.target_modules.join(", "));
    println!("layers:         {span} ({} layers)", layers.len());
    println!(
        "parameters:     {} in {} A/B pairs",
        a.num_parameters(),
        a.modules.len()
    );
    Ok(())
}
