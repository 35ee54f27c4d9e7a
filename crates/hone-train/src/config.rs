//! The run configuration of `hone train`: a TOML file, `--set key=value` overrides, defaults,
//! validation, and the echo written into the output folder as `train_config.toml`.
//!
//! ```toml
//! [model]
//! base = "smollm2"          # name or path (.gguf or HF folder)
//! quantize = "none"         # or "nf4" (QLoRA)
//! dtype = "auto"            # "bf16" or "f32": precision of the frozen-weight products (auto:
//!                           # bf16 where the CPU multiplies it faster, AMX or AMD AVX-512 BF16)
//! [lora]
//! r = 16
//! alpha = 32
//! dropout = 0.05
//! target_modules = ["q_proj", "k_proj", "v_proj", "o_proj"]   # or "all-linear"
//! layers = "all"            # or "22-29", or [22, 23]
//! init = "runs/nda-v1"      # optional: start from this adapter (same base, r, alpha, modules, layers)
//! [optim]
//! lr = 2e-4
//! weight_decay = 0.01
//! warmup_ratio = 0.05
//! scheduler = "cosine"      # or "linear", "constant"
//! grad_clip = 1.0           # 0 = off
//! batch_size = 8
//! grad_accum = 1
//! epochs = 3
//! max_seq_len = 512
//! seed = 42
//! patience = 1              # early stopping on validation loss; 0 = off
//! [train]
//! fast = false              # cache the frozen lower layers' outputs (LoRA in top layers only)
//! top_layers = 8            # optional: LoRA only in the top 8 layers
//! checkpoint_every_epoch = true
//! log_every = 10
//! keep = "best"             # the adapter kept: "best" (lowest validation loss) or "last"
//! [data]
//! train = "train.jsonl"
//! validation = "val.jsonl"  # optional
//! format = "examples"       # or "review": ContractNLI documents (documents.jsonl) for `hone review`
//! [output]
//! dir = "runs/nda-v1"
//! ```
//!
//! Relative paths (`data.*`, `output.dir`, and `model.base` when it names a file or folder)
//! are relative to the config file's folder; the echo holds them absolute.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use hone_model::lora::LoraSpec;
use serde::{Deserialize, Serialize};
use toml::{Table, Value};

use crate::{Error, Result};
use fields::*;

mod fields;
mod schema;

/// The default LoRA targets: the attention projections.
pub const DEFAULT_TARGETS: [&str; 4] = ["q_proj", "k_proj", "v_proj", "o_proj"];

/// How the frozen base weights are stored while training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantize {
    /// As loaded (f32 for HF folders; a GGUF's own quantization stays).
    #[default]
    None,
    /// NF4 with double quantization (QLoRA).
    Nf4,
}

/// The precision of the products with frozen weights (the forward pass and the gradient
/// through each projection) and of attention's products with queries, keys and values (bar
/// the two sums over query rows). LoRA factors, gradients, optimizer state and every
/// elementwise step (softmax included) stay f32 in all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComputeDtype {
    /// bf16 where the CPU multiplies bf16 faster than f32 (AMX; `vdpbf16ps` on AMD), else f32.
    #[default]
    Auto,
    F32,
    /// bf16 operands, f32 sums ([`hone_model::bf16`]), with the best kernel the CPU has.
    Bf16,
}

impl ComputeDtype {
    /// Whether the frozen-weight products run in bf16 on this machine.
    pub fn use_bf16(self) -> bool {
        match self {
            ComputeDtype::Auto => hone_model::bf16::Kernel::best().beats_f32(),
            ComputeDtype::F32 => false,
            ComputeDtype::Bf16 => true,
        }
    }

    /// What [`ComputeDtype::use_bf16`] chose, with the kernel: `bf16 (amx)` or `f32`.
    pub fn describe(self) -> String {
        if self.use_bf16() {
            format!("bf16 ({})", hone_model::bf16::Kernel::best().name())
        } else {
            "f32".into()
        }
    }
}

/// The learning-rate schedule after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheduler {
    #[default]
    Cosine,
    Linear,
    Constant,
}

/// What the data files hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataFormat {
    /// Chat or instruction examples (JSONL); loss on the answers.
    #[default]
    Examples,
    /// Annotated documents (`documents.jsonl` from `hone data import contractnli` or
    /// `hone data synth nda`), laid out for `hone review`: loss on each span's label slot.
    Review,
}

/// Which layers get LoRA: `"all"`, `"22-29"`, `"1,5"`, `7` or `[22, 23]` in the file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LayerSelection {
    #[default]
    All,
    /// Inclusive range `start-end`.
    Range(usize, usize),
    List(Vec<usize>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSection {
    /// A cached model name (`smollm2`) or an absolute path to a `.gguf` file / HF folder.
    #[serde(deserialize_with = "non_empty")]
    pub base: String,
    #[serde(deserialize_with = "choice")]
    pub quantize: Quantize,
    #[serde(deserialize_with = "choice")]
    pub dtype: ComputeDtype,
}

impl Default for ModelSection {
    fn default() -> Self {
        Self {
            base: "smollm2".into(),
            quantize: Quantize::None,
            dtype: ComputeDtype::Auto,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoraSection {
    #[serde(deserialize_with = "at_least::<1, _>")]
    pub r: usize,
    #[serde(deserialize_with = "positive_f32", serialize_with = "short_f32")]
    pub alpha: f32,
    #[serde(deserialize_with = "below_one_f32", serialize_with = "short_f32")]
    pub dropout: f32,
    /// Module names, `all-linear` expanded, no duplicates.
    #[serde(deserialize_with = "target_modules")]
    pub target_modules: Vec<String>,
    pub layers: LayerSelection,
    /// Start from this adapter's weights (a PEFT folder) instead of a fresh initialisation
    /// (`hone retrain --from-previous` sets it to the previous version's adapter). Its base
    /// model, r, alpha, target modules and layers must be the run's.
    #[serde(
        deserialize_with = "some_path",
        serialize_with = "lossy_some_path",
        skip_serializing_if = "Option::is_none"
    )]
    pub init: Option<PathBuf>,
}

impl Default for LoraSection {
    fn default() -> Self {
        Self {
            r: 16,
            alpha: 32.0,
            dropout: 0.05,
            target_modules: DEFAULT_TARGETS.iter().map(|s| s.to_string()).collect(),
            layers: LayerSelection::All,
            init: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimSection {
    #[serde(deserialize_with = "positive")]
    pub lr: f64,
    #[serde(deserialize_with = "non_negative")]
    pub weight_decay: f64,
    /// Fraction of all optimizer steps spent warming up linearly from 0.
    #[serde(deserialize_with = "fraction")]
    pub warmup_ratio: f64,
    #[serde(deserialize_with = "choice")]
    pub scheduler: Scheduler,
    /// Global gradient-norm clip; 0 = off.
    #[serde(deserialize_with = "zero_is_off")]
    pub grad_clip: f64,
    #[serde(deserialize_with = "at_least::<1, _>")]
    pub batch_size: usize,
    #[serde(deserialize_with = "at_least::<1, _>")]
    pub grad_accum: usize,
    #[serde(deserialize_with = "at_least::<1, _>")]
    pub epochs: usize,
    #[serde(deserialize_with = "at_least::<2, _>")]
    pub max_seq_len: usize,
    #[serde(deserialize_with = "non_negative_int")]
    pub seed: u64,
    /// Early stopping: epochs without a better validation loss before stopping; 0 = off.
    #[serde(deserialize_with = "at_least::<0, _>")]
    pub patience: usize,
    #[serde(deserialize_with = "below_one")]
    pub adam_beta1: f64,
    #[serde(deserialize_with = "below_one")]
    pub adam_beta2: f64,
    #[serde(deserialize_with = "positive")]
    pub adam_eps: f64,
}

impl Default for OptimSection {
    fn default() -> Self {
        Self {
            lr: 2e-4,
            weight_decay: 0.01,
            warmup_ratio: 0.05,
            scheduler: Scheduler::Cosine,
            grad_clip: 1.0,
            batch_size: 8,
            grad_accum: 1,
            epochs: 3,
            max_seq_len: 512,
            seed: 42,
            patience: 1,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_eps: 1e-8,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSection {
    /// Cache the outputs of the frozen layers below the lowest adapted layer across epochs.
    #[serde(deserialize_with = "flag")]
    pub fast: bool,
    /// LoRA only in the top K layers (instead of `lora.layers`).
    #[serde(
        deserialize_with = "some_at_least_one",
        skip_serializing_if = "Option::is_none"
    )]
    pub top_layers: Option<usize>,
    #[serde(deserialize_with = "flag")]
    pub checkpoint_every_epoch: bool,
    /// Optimizer steps between two `metrics.jsonl` lines.
    #[serde(deserialize_with = "at_least::<1, _>")]
    pub log_every: usize,
    /// Which epoch's adapter the run leaves in `output.dir`.
    #[serde(deserialize_with = "choice", skip_serializing_if = "Keep::is_best")]
    pub keep: Keep,
}

/// The adapter a run keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Keep {
    /// The epoch with the lowest validation loss (every epoch's when there is no validation).
    #[default]
    Best,
    /// The last epoch trained: for tasks whose decisions keep improving after the validation
    /// loss turns (the review labels: the loss of the many "no check" slots rises with
    /// confidence while the check decisions still get better; docs/benchmarks.md).
    Last,
}

impl Keep {
    fn is_best(&self) -> bool {
        *self == Keep::Best
    }
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            fast: false,
            top_layers: None,
            checkpoint_every_epoch: true,
            log_every: 10,
            keep: Keep::Best,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataSection {
    /// Required: empty only until [`TrainConfig::parse`] reports it missing.
    #[serde(deserialize_with = "path", serialize_with = "lossy_path")]
    pub train: PathBuf,
    #[serde(
        deserialize_with = "some_path",
        serialize_with = "lossy_some_path",
        skip_serializing_if = "Option::is_none"
    )]
    pub validation: Option<PathBuf>,
    #[serde(
        deserialize_with = "choice",
        skip_serializing_if = "DataFormat::is_examples"
    )]
    pub format: DataFormat,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputSection {
    /// Empty in the file means `runs/<config file stem>` beside the config file.
    #[serde(deserialize_with = "path", serialize_with = "lossy_path")]
    pub dir: PathBuf,
}

/// The effective configuration of one training run. The struct is the schema: sections and
/// keys (and their order in the echo) are its fields; defaults are the sections' `Default`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    pub model: ModelSection,
    pub lora: LoraSection,
    pub optim: OptimSection,
    pub train: TrainSection,
    pub data: DataSection,
    pub output: OutputSection,
    /// The config file it was read from (absolute).
    #[serde(skip)]
    pub source: PathBuf,
}

impl DataFormat {
    fn is_examples(&self) -> bool {
        *self == DataFormat::Examples
    }
}

pub use schema::schema;

fn known_keys(section: &str) -> Option<&'static [&'static str]> {
    schema()
        .iter()
        .find(|(s, _)| *s == section)
        .map(|(_, k)| *k)
}

fn section_names() -> String {
    let names: Vec<&str> = schema().iter().map(|(s, _)| *s).collect();
    names.join(", ")
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, col)
}

/// Parses the value of a `--set` override: a TOML value (`1e-4`, `true`, `["q_proj"]`,
/// `"text"`), or else the text itself as a string (`smollm2`, `22-29`, `runs/x`).
fn parse_override_value(text: &str) -> Value {
    let text = text.trim();
    match format!("v = {text}").parse::<Table>() {
        Ok(mut t) => match t.remove("v") {
            Some(Value::Datetime(_)) | None => Value::String(text.to_string()),
            Some(v) => v,
        },
        Err(_) => Value::String(text.to_string()),
    }
}

/// Whether `base` names a file or folder rather than a cached model name.
fn looks_like_path(base: &str, dir: &Path) -> bool {
    base.contains('/')
        || base.contains('\\')
        || base.starts_with('.')
        || base.starts_with('~')
        || base.ends_with(".gguf")
        || dir.join(base).exists()
}

impl TrainConfig {
    /// Reads `path`, applies `--set key=value` overrides (dotted keys, TOML values) and
    /// validates everything.
    pub fn load(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, path, overrides)
    }

    /// Like [`TrainConfig::load`], with the file's text given; `path` names it in errors and
    /// anchors relative paths.
    pub fn parse(text: &str, path: &Path, overrides: &[String]) -> Result<Self> {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let mut root: Table = text.parse::<Table>().map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
            Error::Syntax {
                path: path.clone(),
                line,
                column,
                msg: e.message().trim().to_string(),
            }
        })?;
        check_keys(&root, &path)?;
        let mut overridden = BTreeSet::new();
        for o in overrides {
            let key = apply_override(&mut root, o, &path)?;
            overridden.insert(key);
        }
        let err = |key: &str, msg: String| Error::Config {
            path: if overridden.contains(key) {
                PathBuf::from(format!("{} (--set)", path.display()))
            } else {
                path.clone()
            },
            key: key.to_string(),
            msg,
        };
        let mut cfg: TrainConfig =
            serde_path_to_error::deserialize(Value::Table(root)).map_err(|e| {
                err(
                    &e.path().to_string(),
                    e.inner().message().trim().to_string(),
                )
            })?;
        cfg.source = path.clone();

        let dir = path.parent().unwrap_or(Path::new("."));
        if looks_like_path(&cfg.model.base, dir) {
            let expanded = match cfg.model.base.strip_prefix("~/") {
                Some(rest) => PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(rest),
                None => PathBuf::from(&cfg.model.base),
            };
            cfg.model.base = dir.join(expanded).to_string_lossy().into_owned();
        }
        if cfg.data.train.as_os_str().is_empty() {
            let msg = "missing: the training data file (JSONL) is required";
            return Err(err("data.train", msg.into()));
        }
        cfg.data.train = dir.join(&cfg.data.train);
        if let Some(v) = &mut cfg.data.validation {
            *v = dir.join(&*v);
        }
        if let Some(v) = &mut cfg.lora.init {
            *v = dir.join(&*v);
        }
        cfg.output.dir = if cfg.output.dir.as_os_str().is_empty() {
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
            dir.join("runs").join(stem.as_deref().unwrap_or("run"))
        } else {
            dir.join(&cfg.output.dir)
        };

        if cfg.train.top_layers.is_some() && cfg.lora.layers != LayerSelection::All {
            return Err(err(
                "train.top_layers",
                "conflicts with lora.layers: set one of them (lora.layers = \"all\" to use \
                 top_layers)"
                    .into(),
            ));
        }
        if cfg.train.fast {
            if let Some(0) | None = cfg.lowest_layer_hint() {
                return Err(err(
                    "train.fast",
                    "caching the frozen lower layers needs LoRA only in the top layers: set \
                     lora.layers (e.g. \"22-29\") or train.top_layers (e.g. 8)"
                        .into(),
                ));
            }
        }
        Ok(cfg)
    }

    /// The lowest adapted layer when it is known without the model (None for "all" / top K).
    fn lowest_layer_hint(&self) -> Option<usize> {
        if self.train.top_layers.is_some() {
            return Some(usize::MAX);
        }
        match &self.lora.layers {
            LayerSelection::All => None,
            LayerSelection::Range(a, _) => Some(*a),
            LayerSelection::List(v) => v.first().copied(),
        }
    }

    /// The layer indices that get LoRA in a model of `n_layers` layers.
    pub fn lora_layers(&self, n_layers: usize) -> Result<Vec<usize>> {
        let err = |key: &str, msg: String| Error::Config {
            path: self.source.clone(),
            key: key.into(),
            msg,
        };
        if let Some(k) = self.train.top_layers {
            if k > n_layers {
                return Err(err(
                    "train.top_layers",
                    format!("{k} layers asked for but the model has {n_layers}"),
                ));
            }
            return Ok((n_layers - k..n_layers).collect());
        }
        let v: Vec<usize> = match &self.lora.layers {
            LayerSelection::All => (0..n_layers).collect(),
            LayerSelection::Range(a, b) => (*a..=*b).collect(),
            LayerSelection::List(v) => v.clone(),
        };
        if let Some(&bad) = v.iter().find(|&&l| l >= n_layers) {
            return Err(err(
                "lora.layers",
                format!(
                    "layer {bad} does not exist: the model has {n_layers} layers (0-{})",
                    n_layers.saturating_sub(1)
                ),
            ));
        }
        Ok(v)
    }

    /// The LoRA placement for a model of `n_layers` layers.
    pub fn lora_spec(&self, n_layers: usize) -> Result<LoraSpec> {
        Ok(LoraSpec {
            r: self.lora.r,
            alpha: self.lora.alpha,
            target_modules: self.lora.target_modules.clone(),
            layers: self.lora_layers(n_layers)?,
        })
    }

    /// The effective configuration as TOML (every key, defaults included, paths absolute).
    /// [`TrainConfig::parse`] of it gives back the same configuration.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string(self).expect("a train config serializes to TOML");
        format!("# The effective configuration of this run (defaults included).\n\n{body}")
    }

    /// Writes [`TrainConfig::to_toml`] to `dir/train_config.toml` atomically.
    pub fn write_echo(&self, dir: &Path) -> Result<PathBuf> {
        let p = dir.join("train_config.toml");
        hone_model::atomic::write_file(&p, self.to_toml().as_bytes())?;
        Ok(p)
    }
}

/// Rejects unknown sections and keys, naming the known ones.
fn check_keys(root: &Table, path: &Path) -> Result<()> {
    let err = |key: String, msg: String| Error::Config {
        path: path.to_path_buf(),
        key,
        msg,
    };
    for (section, v) in root {
        let Some(keys) = known_keys(section) else {
            let msg = if v.is_table() {
                format!("unknown section (known sections: {})", section_names())
            } else {
                format!(
                    "unknown top-level key: keys belong in a section ({})",
                    section_names()
                )
            };
            return Err(err(section.clone(), msg));
        };
        let Value::Table(t) = v else {
            return Err(err(
                section.clone(),
                format!("expected a [{section}] section, got {}", type_name(v)),
            ));
        };
        for k in t.keys() {
            if !keys.contains(&k.as_str()) {
                return Err(err(
                    format!("{section}.{k}"),
                    format!(
                        "unknown key (known keys in [{section}]: {})",
                        keys.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Applies one `section.key=value` override; returns the dotted key.
fn apply_override(root: &mut Table, o: &str, path: &Path) -> Result<String> {
    let src = PathBuf::from(format!("{} (--set)", path.display()));
    let err = |key: &str, msg: String| Error::Config {
        path: src.clone(),
        key: key.to_string(),
        msg,
    };
    let Some((key, value)) = o.split_once('=') else {
        return Err(err(
            o,
            "expected key=value, e.g. --set optim.lr=1e-4".into(),
        ));
    };
    let key = key.trim();
    let Some((section, name)) = key.split_once('.') else {
        return Err(err(
            key,
            format!(
                "expected a dotted key section.key (sections: {})",
                section_names()
            ),
        ));
    };
    let Some(keys) = known_keys(section) else {
        return Err(err(
            key,
            format!(
                "unknown section `{section}` (known sections: {})",
                section_names()
            ),
        ));
    };
    if !keys.contains(&name) {
        return Err(err(
            key,
            format!(
                "unknown key (known keys in [{section}]: {})",
                keys.join(", ")
            ),
        ));
    }
    let table = root
        .entry(section.to_string())
        .or_insert_with(|| Value::Table(Table::new()));
    let Value::Table(t) = table else {
        return Err(err(key, format!("`{section}` is not a section")));
    };
    t.insert(name.to_string(), parse_override_value(value));
    Ok(key.to_string())
}

#[cfg(test)]
mod tests;
