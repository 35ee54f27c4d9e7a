//! `hone adapter ...`: LoRA adapters in the PEFT format (merge into the base, inspect).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
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
    /// Copy what serving and review need of an adapter folder into a new folder, its weights
    /// in a smaller type: the adapter, and beside it the review calibration, the TF-IDF
    /// expert, the validation report, the training config, the metrics and the loss chart
    /// when they are there (checkpoints and the rest are left behind).
    Pack(PackArgs),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PackDtype {
    Bf16,
    F16,
    F32,
}

#[derive(Args, Debug)]
pub struct PackArgs {
    /// The adapter folder (adapter_config.json + adapter_model.safetensors).
    pub dir: PathBuf,
    /// The folder to write; refused when it exists and is not empty, unless --overwrite.
    #[arg(long)]
    pub out: PathBuf,
    /// The weights' type in the copy (rounded to nearest).
    #[arg(long, value_enum, default_value = "bf16")]
    pub dtype: PackDtype,
    /// Replace the folder --out if it holds something.
    #[arg(long)]
    pub overwrite: bool,
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
        AdapterCmd::Pack(a) => pack(a),
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

/// Files kept beside the adapter's own two by `hone adapter pack` (copied as they are): what
/// a registry version keeps ([`hone_ops::registry::ADAPTER_FILES`]), and the run's per-step
/// log and loss chart for the model card.
fn packed_companions() -> impl Iterator<Item = &'static str> {
    hone_ops::registry::ADAPTER_FILES
        .iter()
        .copied()
        .filter(|f| {
            ![
                hone_model::peft::CONFIG_FILE,
                hone_model::peft::WEIGHTS_FILE,
            ]
            .contains(f)
        })
        .chain(["metrics.jsonl", "loss.svg"])
}

fn pack(a: PackArgs) -> Result<()> {
    use hone_model::safetensors_io::{convert, Float};
    let src = &a.dir;
    // Refuses a folder that is not an adapter before anything is written.
    hone_model::load_adapter(src)?;
    if src.join(hone_review::engine::CALIBRATING_FILE).exists() {
        bail!(
            "{}: its review calibration did not finish ({} is there); rerun it first",
            src.display(),
            hone_review::engine::CALIBRATING_FILE
        );
    }
    let holds_something = a
        .out
        .read_dir()
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if holds_something && !a.overwrite {
        bail!(
            "{} exists and is not empty (--overwrite replaces it)",
            a.out.display()
        );
    }
    let parent = match a.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    // Built beside the destination and renamed into place: an interrupted pack leaves no
    // half-written folder under the name.
    let tmp = tempfile::Builder::new()
        .prefix(".pack-")
        .tempdir_in(&parent)
        .with_context(|| format!("cannot write in {}", parent.display()))?;
    let to = match a.dtype {
        PackDtype::Bf16 => Float::Bf16,
        PackDtype::F16 => Float::F16,
        PackDtype::F32 => Float::F32,
    };
    let weights = hone_model::peft::WEIGHTS_FILE;
    convert(&src.join(weights), &tmp.path().join(weights), to)?;
    let mut copied = vec![
        hone_model::peft::CONFIG_FILE.to_string(),
        weights.to_string(),
    ];
    copy(src, tmp.path(), hone_model::peft::CONFIG_FILE)?;
    for name in packed_companions() {
        if src.join(name).is_file() {
            copy(src, tmp.path(), name)?;
            copied.push(name.to_string());
        }
    }
    // The packed copy must load as the original does (a review adapter with its calibration).
    hone_model::load_adapter(tmp.path())
        .with_context(|| format!("the packed copy of {} does not load", src.display()))?;
    if a.out.exists() {
        std::fs::remove_dir_all(&a.out)
            .with_context(|| format!("cannot replace {}", a.out.display()))?;
    }
    let tmp = tmp.keep();
    std::fs::rename(&tmp, &a.out)
        .with_context(|| format!("cannot move the packed copy to {}", a.out.display()))?;
    let bytes: u64 = copied
        .iter()
        .filter_map(|f| std::fs::metadata(a.out.join(f)).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "packed {} into {} ({:?} weights; {} files, {:.1} MB): {}",
        src.display(),
        a.out.display(),
        a.dtype,
        copied.len(),
        bytes as f64 / 1e6,
        copied.join(", ")
    );
    Ok(())
}

fn copy(from: &Path, to: &Path, name: &str) -> Result<()> {
    std::fs::copy(from.join(name), to.join(name))
        .with_context(|| format!("cannot copy {}", from.join(name).display()))?;
    Ok(())
}
