//! The run configuration of `hone train`: a TOML file, `--set key=value` overrides, defaults,
//! validation, and the echo written into the output folder as `train_config.toml`.
//!
//! ```toml
//! [model]
//! base = "smollm2"          # name or path (.gguf or HF folder)
//! quantize = "none"         # or "nf4" (QLoRA)
//! dtype = "f32"             # or "bf16" (compute dtype)
//! [lora]
//! r = 16
//! alpha = 32
//! dropout = 0.05
//! target_modules = ["q_proj", "k_proj", "v_proj", "o_proj"]   # or "all-linear"
//! layers = "all"            # or "22-29", or [22, 23]
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

use hone_model::llama::MODULES;
use hone_model::lora::LoraSpec;
use toml::{Table, Value};

use crate::{Error, Result};

/// Every section and its keys, in the order the echo writes them.
pub const SCHEMA: &[(&str, &[&str])] = &[
    ("model", &["base", "quantize", "dtype"]),
    (
        "lora",
        &["r", "alpha", "dropout", "target_modules", "layers"],
    ),
    (
        "optim",
        &[
            "lr",
            "weight_decay",
            "warmup_ratio",
            "scheduler",
            "grad_clip",
            "batch_size",
            "grad_accum",
            "epochs",
            "max_seq_len",
            "seed",
            "patience",
            "adam_beta1",
            "adam_beta2",
            "adam_eps",
        ],
    ),
    (
        "train",
        &["fast", "top_layers", "checkpoint_every_epoch", "log_every"],
    ),
    ("data", &["train", "validation", "format"]),
    ("output", &["dir"]),
];

/// The default LoRA targets: the attention projections.
pub const DEFAULT_TARGETS: [&str; 4] = ["q_proj", "k_proj", "v_proj", "o_proj"];

/// How the frozen base weights are stored while training.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantize {
    /// As loaded (f32 for HF folders; a GGUF's own quantization stays).
    None,
    /// NF4 with double quantization (QLoRA).
    Nf4,
}

/// The compute dtype of activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComputeDtype {
    F32,
    Bf16,
}

/// The learning-rate schedule after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduler {
    Cosine,
    Linear,
    Constant,
}

/// What the data files hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFormat {
    /// Chat or instruction examples (JSONL); loss on the answers.
    Examples,
    /// Annotated documents (`documents.jsonl` from `hone data import contractnli` or
    /// `hone data synth nda`), laid out for `hone review`: loss on each span's label slot.
    Review,
}

/// Which layers get LoRA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerSelection {
    All,
    /// Inclusive range `start-end`.
    Range(usize, usize),
    List(Vec<usize>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelSection {
    /// A cached model name (`smollm2`) or an absolute path to a `.gguf` file / HF folder.
    pub base: String,
    pub quantize: Quantize,
    pub dtype: ComputeDtype,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoraSection {
    pub r: usize,
    pub alpha: f32,
    pub dropout: f32,
    /// Module names, `all-linear` expanded, no duplicates.
    pub target_modules: Vec<String>,
    pub layers: LayerSelection,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OptimSection {
    pub lr: f64,
    pub weight_decay: f64,
    /// Fraction of all optimizer steps spent warming up linearly from 0.
    pub warmup_ratio: f64,
    pub scheduler: Scheduler,
    /// Global gradient-norm clip; 0 = off.
    pub grad_clip: f64,
    pub batch_size: usize,
    pub grad_accum: usize,
    pub epochs: usize,
    pub max_seq_len: usize,
    pub seed: u64,
    /// Early stopping: epochs without a better validation loss before stopping; 0 = off.
    pub patience: usize,
    pub adam_beta1: f64,
    pub adam_beta2: f64,
    pub adam_eps: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrainSection {
    /// Cache the outputs of the frozen layers below the lowest adapted layer across epochs.
    pub fast: bool,
    /// LoRA only in the top K layers (instead of `lora.layers`).
    pub top_layers: Option<usize>,
    pub checkpoint_every_epoch: bool,
    /// Optimizer steps between two `metrics.jsonl` lines.
    pub log_every: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DataSection {
    pub train: PathBuf,
    pub validation: Option<PathBuf>,
    pub format: DataFormat,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutputSection {
    pub dir: PathBuf,
}

/// The effective configuration of one training run.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainConfig {
    pub model: ModelSection,
    pub lora: LoraSection,
    pub optim: OptimSection,
    pub train: TrainSection,
    pub data: DataSection,
    pub output: OutputSection,
    /// The config file it was read from (absolute).
    pub source: PathBuf,
}

fn known_keys(section: &str) -> Option<&'static [&'static str]> {
    SCHEMA.iter().find(|(s, _)| *s == section).map(|(_, k)| *k)
}

fn section_names() -> String {
    SCHEMA
        .iter()
        .map(|(s, _)| *s)
        .collect::<Vec<_>>()
        .join(", ")
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a number",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date",
        Value::Array(_) => "a list",
        Value::Table(_) => "a table",
    }
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

struct Reader<'a> {
    path: &'a Path,
    dir: &'a Path,
    root: &'a Table,
    overridden: &'a BTreeSet<String>,
}

impl Reader<'_> {
    fn err(&self, key: &str, msg: impl Into<String>) -> Error {
        let path = if self.overridden.contains(key) {
            PathBuf::from(format!("{} (--set)", self.path.display()))
        } else {
            self.path.to_path_buf()
        };
        Error::Config {
            path,
            key: key.to_string(),
            msg: msg.into(),
        }
    }

    fn get(&self, key: &str) -> Option<&Value> {
        let (s, k) = key.split_once('.').expect("dotted key");
        self.root.get(s)?.as_table()?.get(k)
    }

    fn wrong(&self, key: &str, want: &str, v: &Value) -> Error {
        self.err(key, format!("expected {want}, got {} ({v})", type_name(v)))
    }

    fn string(&self, key: &str) -> Result<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.wrong(key, "a string", v)),
        }
    }

    fn choice<T: Copy>(&self, key: &str, default: T, options: &[(&str, T)]) -> Result<T> {
        let Some(s) = self.string(key)? else {
            return Ok(default);
        };
        options
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(&s))
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                let names: Vec<String> = options.iter().map(|(n, _)| format!("\"{n}\"")).collect();
                self.err(
                    key,
                    format!("unknown value \"{s}\" (one of {})", names.join(", ")),
                )
            })
    }

    fn float(&self, key: &str, default: f64) -> Result<f64> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Float(f)) if f.is_finite() => Ok(*f),
            Some(Value::Integer(i)) => Ok(*i as f64),
            Some(v) => Err(self.wrong(key, "a finite number", v)),
        }
    }

    fn int(&self, key: &str, default: u64) -> Result<u64> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Integer(i)) if *i >= 0 => Ok(*i as u64),
            Some(Value::Integer(i)) => Err(self.err(key, format!("must not be negative, got {i}"))),
            Some(v) => Err(self.wrong(key, "an integer", v)),
        }
    }

    fn usize(&self, key: &str, default: usize, min: usize) -> Result<usize> {
        let v = self.int(key, default as u64)?;
        let v = usize::try_from(v).map_err(|_| self.err(key, format!("{v} is too large")))?;
        if v < min {
            return Err(self.err(key, format!("must be at least {min}, got {v}")));
        }
        Ok(v)
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Boolean(b)) => Ok(*b),
            Some(v) => Err(self.wrong(key, "true or false", v)),
        }
    }

    /// A path, relative to the config file's folder.
    fn path(&self, key: &str) -> Result<Option<PathBuf>> {
        match self.string(key)? {
            None => Ok(None),
            Some(s) if s.trim().is_empty() => Err(self.err(key, "must not be empty")),
            Some(s) => Ok(Some(self.dir.join(s))),
        }
    }

    fn target_modules(&self, key: &str) -> Result<Vec<String>> {
        let names: Vec<String> = match self.get(key) {
            None => return Ok(DEFAULT_TARGETS.iter().map(|s| s.to_string()).collect()),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(self.wrong(key, "a list of module names", other)),
                })
                .collect::<Result<_>>()?,
            Some(v) => Err(self.wrong(key, "a list of module names or \"all-linear\"", v))?,
        };
        if names.is_empty() {
            return Err(self.err(key, "must name at least one module"));
        }
        let mut out: Vec<String> = Vec::new();
        for n in names {
            if n == "all-linear" {
                for m in MODULES {
                    if !out.iter().any(|o| o == m) {
                        out.push(m.to_string());
                    }
                }
            } else if MODULES.contains(&n.as_str()) {
                if !out.contains(&n) {
                    out.push(n);
                }
            } else {
                return Err(self.err(
                    key,
                    format!(
                        "unknown module \"{n}\" (known: {}, or \"all-linear\")",
                        MODULES.join(", ")
                    ),
                ));
            }
        }
        Ok(out)
    }

    fn layers(&self, key: &str) -> Result<LayerSelection> {
        let bad = |msg: String| self.err(key, msg);
        let index = |i: i64| -> Result<usize> {
            usize::try_from(i).map_err(|_| bad(format!("layer index {i} is negative")))
        };
        match self.get(key) {
            None => Ok(LayerSelection::All),
            Some(Value::Integer(i)) => Ok(LayerSelection::List(vec![index(*i)?])),
            Some(Value::Array(a)) => {
                if a.is_empty() {
                    return Err(bad("the list of layers is empty".into()));
                }
                let mut v = Vec::with_capacity(a.len());
                for x in a {
                    match x {
                        Value::Integer(i) => v.push(index(*i)?),
                        other => return Err(self.wrong(key, "a list of layer indices", other)),
                    }
                }
                v.sort_unstable();
                v.dedup();
                Ok(LayerSelection::List(v))
            }
            Some(Value::String(s)) => {
                let s = s.trim();
                if s.eq_ignore_ascii_case("all") {
                    return Ok(LayerSelection::All);
                }
                let num = |t: &str| -> Result<usize> {
                    t.trim().parse::<usize>().map_err(|_| {
                        bad(format!(
                            "\"{s}\" is not \"all\", a range like \"22-29\" or a list like \"1,2,5\""
                        ))
                    })
                };
                if let Some((a, b)) = s.split_once('-') {
                    let (a, b) = (num(a)?, num(b)?);
                    if a > b {
                        return Err(bad(format!(
                            "range \"{s}\" is empty: its start is after its end"
                        )));
                    }
                    Ok(LayerSelection::Range(a, b))
                } else {
                    let mut v = s.split(',').map(num).collect::<Result<Vec<_>>>()?;
                    v.sort_unstable();
                    v.dedup();
                    Ok(LayerSelection::List(v))
                }
            }
            Some(v) => Err(self.wrong(key, "\"all\", a range like \"22-29\" or a list", v)),
        }
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
        let dir = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let r = Reader {
            path: &path,
            dir: &dir,
            root: &root,
            overridden: &overridden,
        };
        Self::read(&r, &path)
    }

    fn read(r: &Reader<'_>, path: &Path) -> Result<Self> {
        let base = r.string("model.base")?.unwrap_or_else(|| "smollm2".into());
        if base.trim().is_empty() {
            return Err(r.err("model.base", "must not be empty"));
        }
        let base = if looks_like_path(&base, r.dir) {
            let expanded = match base.strip_prefix("~/") {
                Some(rest) => PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(rest),
                None => PathBuf::from(&base),
            };
            r.dir.join(expanded).to_string_lossy().into_owned()
        } else {
            base
        };
        let model = ModelSection {
            base,
            quantize: r.choice(
                "model.quantize",
                Quantize::None,
                &[("none", Quantize::None), ("nf4", Quantize::Nf4)],
            )?,
            dtype: r.choice(
                "model.dtype",
                ComputeDtype::F32,
                &[("f32", ComputeDtype::F32), ("bf16", ComputeDtype::Bf16)],
            )?,
        };

        let r_rank = r.usize("lora.r", 16, 0)?;
        if r_rank == 0 {
            return Err(r.err("lora.r", "must be at least 1, got 0"));
        }
        let alpha = r.float("lora.alpha", 32.0)?;
        if alpha <= 0.0 {
            return Err(r.err("lora.alpha", format!("must be > 0, got {alpha}")));
        }
        let dropout = r.float("lora.dropout", 0.05)?;
        if !(0.0..1.0).contains(&dropout) {
            return Err(r.err("lora.dropout", format!("must be in [0, 1), got {dropout}")));
        }
        let lora = LoraSection {
            r: r_rank,
            alpha: alpha as f32,
            dropout: dropout as f32,
            target_modules: r.target_modules("lora.target_modules")?,
            layers: r.layers("lora.layers")?,
        };

        let lr = r.float("optim.lr", 2e-4)?;
        if lr <= 0.0 {
            return Err(r.err("optim.lr", format!("must be > 0, got {lr}")));
        }
        let weight_decay = r.float("optim.weight_decay", 0.01)?;
        if weight_decay < 0.0 {
            return Err(r.err(
                "optim.weight_decay",
                format!("must be >= 0, got {weight_decay}"),
            ));
        }
        let warmup_ratio = r.float("optim.warmup_ratio", 0.05)?;
        if !(0.0..=1.0).contains(&warmup_ratio) {
            return Err(r.err(
                "optim.warmup_ratio",
                format!("must be in [0, 1], got {warmup_ratio}"),
            ));
        }
        let grad_clip = r.float("optim.grad_clip", 1.0)?;
        if grad_clip < 0.0 {
            return Err(r.err(
                "optim.grad_clip",
                format!("must be >= 0 (0 = off), got {grad_clip}"),
            ));
        }
        let beta = |key: &str, default: f64| -> Result<f64> {
            let b = r.float(key, default)?;
            if !(0.0..1.0).contains(&b) {
                return Err(r.err(key, format!("must be in [0, 1), got {b}")));
            }
            Ok(b)
        };
        let adam_beta1 = beta("optim.adam_beta1", 0.9)?;
        let adam_beta2 = beta("optim.adam_beta2", 0.999)?;
        let adam_eps = r.float("optim.adam_eps", 1e-8)?;
        if adam_eps <= 0.0 {
            return Err(r.err("optim.adam_eps", format!("must be > 0, got {adam_eps}")));
        }
        let optim = OptimSection {
            lr,
            weight_decay,
            warmup_ratio,
            scheduler: r.choice(
                "optim.scheduler",
                Scheduler::Cosine,
                &[
                    ("cosine", Scheduler::Cosine),
                    ("linear", Scheduler::Linear),
                    ("constant", Scheduler::Constant),
                ],
            )?,
            grad_clip,
            batch_size: r.usize("optim.batch_size", 8, 1)?,
            grad_accum: r.usize("optim.grad_accum", 1, 1)?,
            epochs: r.usize("optim.epochs", 3, 1)?,
            max_seq_len: r.usize("optim.max_seq_len", 512, 2)?,
            seed: r.int("optim.seed", 42)?,
            patience: r.usize("optim.patience", 1, 0)?,
            adam_beta1,
            adam_beta2,
            adam_eps,
        };

        let top_layers = match r.get("train.top_layers") {
            None => None,
            Some(_) => Some(r.usize("train.top_layers", 0, 1)?),
        };
        if top_layers.is_some() && lora.layers != LayerSelection::All {
            return Err(r.err(
                "train.top_layers",
                "conflicts with lora.layers: set one of them (lora.layers = \"all\" to use top_layers)",
            ));
        }
        let train = TrainSection {
            fast: r.bool("train.fast", false)?,
            top_layers,
            checkpoint_every_epoch: r.bool("train.checkpoint_every_epoch", true)?,
            log_every: r.usize("train.log_every", 10, 1)?,
        };

        let data = DataSection {
            train: r.path("data.train")?.ok_or_else(|| {
                r.err(
                    "data.train",
                    "missing: the training data file (JSONL) is required",
                )
            })?,
            validation: r.path("data.validation")?,
            format: r.choice(
                "data.format",
                DataFormat::Examples,
                &[
                    ("examples", DataFormat::Examples),
                    ("review", DataFormat::Review),
                ],
            )?,
        };
        let output = OutputSection {
            dir: match r.path("output.dir")? {
                Some(p) => p,
                None => {
                    let stem = path
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_else(|| "run".into());
                    r.dir.join("runs").join(stem)
                }
            },
        };
        let cfg = Self {
            model,
            lora,
            optim,
            train,
            data,
            output,
            source: path.to_path_buf(),
        };
        if cfg.train.fast {
            if let Some(0) | None = cfg.lowest_layer_hint() {
                return Err(r.err(
                    "train.fast",
                    "caching the frozen lower layers needs LoRA only in the top layers: set \
                     lora.layers (e.g. \"22-29\") or train.top_layers (e.g. 8)",
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
        let f32v = |x: f32| Value::Float(format!("{x}").parse::<f64>().unwrap_or(x as f64));
        let s = |x: &str| Value::String(x.to_string());
        let p = |x: &Path| Value::String(x.to_string_lossy().into_owned());
        let i = |x: usize| Value::Integer(x as i64);
        let m = &self.model;
        let l = &self.lora;
        let o = &self.optim;
        let t = &self.train;
        let mut sections: Vec<(&str, Vec<(&str, Value)>)> = vec![
            (
                "model",
                vec![
                    ("base", s(&m.base)),
                    (
                        "quantize",
                        s(match m.quantize {
                            Quantize::None => "none",
                            Quantize::Nf4 => "nf4",
                        }),
                    ),
                    (
                        "dtype",
                        s(match m.dtype {
                            ComputeDtype::F32 => "f32",
                            ComputeDtype::Bf16 => "bf16",
                        }),
                    ),
                ],
            ),
            (
                "lora",
                vec![
                    ("r", i(l.r)),
                    ("alpha", f32v(l.alpha)),
                    ("dropout", f32v(l.dropout)),
                    (
                        "target_modules",
                        Value::Array(l.target_modules.iter().map(|x| s(x)).collect()),
                    ),
                    (
                        "layers",
                        match &l.layers {
                            LayerSelection::All => s("all"),
                            LayerSelection::Range(a, b) => s(&format!("{a}-{b}")),
                            LayerSelection::List(v) => {
                                Value::Array(v.iter().map(|&x| i(x)).collect())
                            }
                        },
                    ),
                ],
            ),
            (
                "optim",
                vec![
                    ("lr", Value::Float(o.lr)),
                    ("weight_decay", Value::Float(o.weight_decay)),
                    ("warmup_ratio", Value::Float(o.warmup_ratio)),
                    (
                        "scheduler",
                        s(match o.scheduler {
                            Scheduler::Cosine => "cosine",
                            Scheduler::Linear => "linear",
                            Scheduler::Constant => "constant",
                        }),
                    ),
                    ("grad_clip", Value::Float(o.grad_clip)),
                    ("batch_size", i(o.batch_size)),
                    ("grad_accum", i(o.grad_accum)),
                    ("epochs", i(o.epochs)),
                    ("max_seq_len", i(o.max_seq_len)),
                    ("seed", Value::Integer(o.seed as i64)),
                    ("patience", i(o.patience)),
                    ("adam_beta1", Value::Float(o.adam_beta1)),
                    ("adam_beta2", Value::Float(o.adam_beta2)),
                    ("adam_eps", Value::Float(o.adam_eps)),
                ],
            ),
            (
                "train",
                vec![
                    ("fast", Value::Boolean(t.fast)),
                    (
                        "checkpoint_every_epoch",
                        Value::Boolean(t.checkpoint_every_epoch),
                    ),
                    ("log_every", i(t.log_every)),
                ],
            ),
            ("data", vec![("train", p(&self.data.train))]),
            ("output", vec![("dir", p(&self.output.dir))]),
        ];
        if let Some(k) = t.top_layers {
            sections[3].1.push(("top_layers", i(k)));
        }
        if let Some(v) = &self.data.validation {
            sections[4].1.push(("validation", p(v)));
        }
        if self.data.format == DataFormat::Review {
            sections[4]
                .1
                .push(("format", Value::String("review".into())));
        }
        let mut out =
            String::from("# The effective configuration of this run (defaults included).\n");
        for (name, keys) in sections {
            out.push_str(&format!("\n[{name}]\n"));
            for (k, v) in keys {
                out.push_str(&format!("{k} = {v}\n"));
            }
        }
        out
    }

    /// Writes [`TrainConfig::to_toml`] to `dir/train_config.toml` atomically.
    pub fn write_echo(&self, dir: &Path) -> Result<PathBuf> {
        let p = dir.join("train_config.toml");
        crate::atomic::write_atomic(&p, self.to_toml().as_bytes())?;
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
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[model]
base = "smollm2"          # name or path (.gguf or HF folder)
quantize = "none"         # or "nf4"
[lora]
r = 16
alpha = 32
dropout = 0.05
target_modules = ["q_proj", "k_proj", "v_proj", "o_proj"]
layers = "all"            # or e.g. "22-29"
[optim]
lr = 2e-4
epochs = 3
batch_size = 8
grad_accum = 1
[data]
train = "train.jsonl"
validation = "val.jsonl"  # optional
[output]
dir = "runs/nda-v1"
"#;

    fn parse(text: &str, sets: &[&str]) -> Result<TrainConfig> {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        TrainConfig::parse(text, Path::new("/cfg/run.toml"), &sets)
    }

    fn err(text: &str, sets: &[&str]) -> String {
        parse(text, sets).unwrap_err().to_string()
    }

    const MIN: &str = "[data]\ntrain = \"t.jsonl\"\n";

    #[test]
    fn the_issue_example_parses_with_defaults() {
        let c = parse(EXAMPLE, &[]).unwrap();
        assert_eq!(c.model.base, "smollm2");
        assert_eq!(c.model.quantize, Quantize::None);
        assert_eq!(c.model.dtype, ComputeDtype::F32);
        assert_eq!(c.lora.r, 16);
        assert_eq!(c.lora.alpha, 32.0);
        assert_eq!(c.lora.dropout, 0.05);
        assert_eq!(c.lora.target_modules, DEFAULT_TARGETS);
        assert_eq!(c.lora.layers, LayerSelection::All);
        assert_eq!(c.optim.lr, 2e-4);
        assert_eq!(c.optim.weight_decay, 0.01);
        assert_eq!(c.optim.warmup_ratio, 0.05);
        assert_eq!(c.optim.scheduler, Scheduler::Cosine);
        assert_eq!(c.optim.grad_clip, 1.0);
        assert_eq!((c.optim.batch_size, c.optim.grad_accum), (8, 1));
        assert_eq!((c.optim.epochs, c.optim.max_seq_len), (3, 512));
        assert_eq!((c.optim.seed, c.optim.patience), (42, 1));
        assert!(!c.train.fast && c.train.checkpoint_every_epoch);
        assert_eq!(c.train.top_layers, None);
        assert_eq!(c.data.train, Path::new("/cfg/train.jsonl"));
        assert_eq!(
            c.data.validation.as_deref(),
            Some(Path::new("/cfg/val.jsonl"))
        );
        assert_eq!(c.output.dir, Path::new("/cfg/runs/nda-v1"));
        assert_eq!(c.source, Path::new("/cfg/run.toml"));
    }

    #[test]
    fn minimal_config_gets_every_default() {
        let c = parse(MIN, &[]).unwrap();
        let full = parse(EXAMPLE, &[]).unwrap();
        assert_eq!(c.lora, full.lora);
        assert_eq!(c.optim, full.optim);
        assert_eq!(c.model, full.model);
        assert_eq!(c.data.validation, None);
        assert_eq!(c.output.dir, Path::new("/cfg/runs/run"));
    }

    #[test]
    fn absolute_paths_and_model_paths() {
        let c = parse(
            "[model]\nbase = \"models/x.gguf\"\n[data]\ntrain = \"/abs/t.jsonl\"\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.model.base, "/cfg/models/x.gguf");
        assert_eq!(c.data.train, Path::new("/abs/t.jsonl"));
        let c = parse("[model]\nbase = \"/m/hf\"\n[data]\ntrain = \"t\"\n", &[]).unwrap();
        assert_eq!(c.model.base, "/m/hf");
    }

    #[test]
    fn overrides_replace_any_key_with_typed_values() {
        let c = parse(
            EXAMPLE,
            &[
                "optim.lr=1e-4",
                "lora.target_modules=[\"q_proj\"]",
                "lora.r = 8",
                "model.base=other",
                "model.quantize=nf4",
                "lora.layers=22-29",
                "train.fast=true",
                "data.train=d/new.jsonl",
                "optim.seed=7",
                "lora.alpha=16.5",
            ],
        )
        .unwrap();
        assert_eq!(c.optim.lr, 1e-4);
        assert_eq!(c.lora.target_modules, vec!["q_proj"]);
        assert_eq!(c.lora.r, 8);
        assert_eq!(c.model.base, "other");
        assert_eq!(c.model.quantize, Quantize::Nf4);
        assert_eq!(c.lora.layers, LayerSelection::Range(22, 29));
        assert!(c.train.fast);
        assert_eq!(c.data.train, Path::new("/cfg/d/new.jsonl"));
        assert_eq!(c.optim.seed, 7);
        assert_eq!(c.lora.alpha, 16.5);
        // A section missing from the file is created.
        let c = parse(MIN, &["output.dir=\"out dir\"", "lora.layers=[3, 1]"]).unwrap();
        assert_eq!(c.output.dir, Path::new("/cfg/out dir"));
        assert_eq!(c.lora.layers, LayerSelection::List(vec![1, 3]));
    }

    #[test]
    fn override_errors_name_the_key_and_the_flag() {
        let e = err(MIN, &["optim.lrr=1"]);
        assert!(e.contains("(--set)") && e.contains("`optim.lrr`"), "{e}");
        assert!(e.contains("lr, weight_decay"), "{e}");
        let e = err(MIN, &["lr=1"]);
        assert!(e.contains("dotted key"), "{e}");
        let e = err(MIN, &["optim.lr"]);
        assert!(e.contains("key=value"), "{e}");
        let e = err(MIN, &["optimizer.lr=1"]);
        assert!(e.contains("unknown section `optimizer`"), "{e}");
        let e = err(MIN, &["optim.lr=-1"]);
        assert!(
            e.contains("(--set)") && e.contains("`optim.lr`") && e.contains("> 0"),
            "{e}"
        );
        let e = err(MIN, &["lora.r=abc"]);
        assert!(
            e.contains("`lora.r`") && e.contains("expected an integer"),
            "{e}"
        );
    }

    #[test]
    fn unknown_keys_and_sections_are_rejected_with_the_known_ones() {
        let e = err("[optim]\nlearning_rate = 1\n[data]\ntrain = \"t\"\n", &[]);
        assert!(
            e.starts_with("/cfg/run.toml: `optim.learning_rate`: unknown key"),
            "{e}"
        );
        assert!(e.contains("known keys in [optim]: lr, weight_decay"), "{e}");
        let e = err("[trainer]\nx = 1\n", &[]);
        assert!(
            e.contains("`trainer`: unknown section") && e.contains("model, lora, optim"),
            "{e}"
        );
        let e = err("lr = 1\n", &[]);
        assert!(e.contains("`lr`: unknown top-level key"), "{e}");
        let e = err("lora = 1\n", &[]);
        assert!(e.contains("`lora`: expected a [lora] section"), "{e}");
    }

    #[test]
    fn syntax_errors_give_file_line_and_column() {
        let e = err("[data]\ntrain = \"t\"\n[lora]\nr = = 3\n", &[]);
        assert!(e.starts_with("/cfg/run.toml: line 4, column"), "{e}");
    }

    #[test]
    fn r_zero_is_rejected() {
        let e = err(&format!("{MIN}[lora]\nr = 0\n"), &[]);
        assert_eq!(e, "/cfg/run.toml: `lora.r`: must be at least 1, got 0");
        let e = err(&format!("{MIN}[lora]\nr = -2\n"), &[]);
        assert!(e.contains("`lora.r`: must not be negative"), "{e}");
    }

    #[test]
    fn unknown_target_module_is_rejected() {
        let e = err(
            &format!("{MIN}[lora]\ntarget_modules = [\"q_proj\", \"qkv\"]\n"),
            &[],
        );
        assert!(
            e.contains("`lora.target_modules`: unknown module \"qkv\""),
            "{e}"
        );
        assert!(e.contains("gate_proj") && e.contains("all-linear"), "{e}");
        let e = err(&format!("{MIN}[lora]\ntarget_modules = []\n"), &[]);
        assert!(e.contains("at least one module"), "{e}");
        let e = err(&format!("{MIN}[lora]\ntarget_modules = [1]\n"), &[]);
        assert!(e.contains("expected a list of module names"), "{e}");
    }

    #[test]
    fn all_linear_expands_to_the_seven_projections() {
        let c = parse(
            &format!("{MIN}[lora]\ntarget_modules = \"all-linear\"\n"),
            &[],
        )
        .unwrap();
        assert_eq!(c.lora.target_modules, MODULES);
        let c = parse(MIN, &["lora.target_modules=[\"v_proj\", \"all-linear\"]"]).unwrap();
        assert_eq!(c.lora.target_modules.len(), 7);
        assert_eq!(c.lora.target_modules[0], "v_proj");
    }

    #[test]
    fn lr_must_be_positive() {
        for v in ["0", "-1e-4", "0.0"] {
            let e = err(&format!("{MIN}[optim]\nlr = {v}\n"), &[]);
            assert!(e.contains("`optim.lr`: must be > 0"), "{e}");
        }
        let e = err(&format!("{MIN}[optim]\nlr = nan\n"), &[]);
        assert!(e.contains("`optim.lr`: expected a finite number"), "{e}");
        let e = err(&format!("{MIN}[optim]\nlr = \"fast\"\n"), &[]);
        assert!(
            e.contains("`optim.lr`: expected a finite number, got a string"),
            "{e}"
        );
    }

    #[test]
    fn other_ranges_are_checked() {
        for (k, v, msg) in [
            ("lora", "dropout = 1.0", "`lora.dropout`: must be in [0, 1)"),
            ("lora", "alpha = 0", "`lora.alpha`: must be > 0"),
            (
                "optim",
                "batch_size = 0",
                "`optim.batch_size`: must be at least 1",
            ),
            (
                "optim",
                "grad_accum = 0",
                "`optim.grad_accum`: must be at least 1",
            ),
            ("optim", "epochs = 0", "`optim.epochs`: must be at least 1"),
            (
                "optim",
                "warmup_ratio = 2",
                "`optim.warmup_ratio`: must be in [0, 1]",
            ),
            ("optim", "grad_clip = -1", "`optim.grad_clip`: must be >= 0"),
            (
                "optim",
                "scheduler = \"step\"",
                "`optim.scheduler`: unknown value \"step\"",
            ),
            (
                "model",
                "quantize = \"int8\"",
                "`model.quantize`: unknown value \"int8\"",
            ),
            (
                "model",
                "dtype = \"f16\"",
                "`model.dtype`: unknown value \"f16\"",
            ),
            ("train", "fast = 1", "`train.fast`: expected true or false"),
        ] {
            let e = err(&format!("{MIN}[{k}]\n{v}\n"), &[]);
            assert!(e.contains(msg), "{v}: {e}");
        }
    }

    #[test]
    fn missing_training_data_is_an_error() {
        let e = err("[lora]\nr = 4\n", &[]);
        assert!(e.contains("`data.train`: missing"), "{e}");
    }

    #[test]
    fn layer_selections() {
        let layers = |v: &str| parse(&format!("{MIN}[lora]\nlayers = {v}\n"), &[]);
        assert_eq!(layers("\"all\"").unwrap().lora.layers, LayerSelection::All);
        assert_eq!(
            layers("\"22-29\"").unwrap().lora.layers,
            LayerSelection::Range(22, 29)
        );
        assert_eq!(
            layers("[23, 22]").unwrap().lora.layers,
            LayerSelection::List(vec![22, 23])
        );
        assert_eq!(
            layers("\"1,5\"").unwrap().lora.layers,
            LayerSelection::List(vec![1, 5])
        );
        assert_eq!(
            layers("7").unwrap().lora.layers,
            LayerSelection::List(vec![7])
        );
        let c = layers("\"22-29\"").unwrap();
        assert_eq!(c.lora_layers(30).unwrap(), (22..30).collect::<Vec<_>>());
        let spec = c.lora_spec(30).unwrap();
        assert_eq!(spec.layers.len(), 8);
        assert_eq!((spec.r, spec.alpha), (16, 32.0));
        assert_eq!(
            layers("\"all\"").unwrap().lora_layers(3).unwrap(),
            vec![0, 1, 2]
        );
    }

    #[test]
    fn bad_layer_ranges_are_rejected() {
        let layers = |v: &str| err(&format!("{MIN}[lora]\nlayers = {v}\n"), &[]);
        assert!(layers("\"29-22\"").contains("`lora.layers`: range \"29-22\" is empty"));
        assert!(layers("\"a-b\"").contains("`lora.layers`: \"a-b\" is not \"all\""));
        assert!(layers("\"some\"").contains("`lora.layers`"));
        assert!(layers("[]").contains("the list of layers is empty"));
        assert!(layers("[-1]").contains("layer index -1 is negative"));
        assert!(layers("[\"x\"]").contains("expected a list of layer indices"));
        // Out of range for the model: only known with the model.
        let c = parse(&format!("{MIN}[lora]\nlayers = \"22-30\"\n"), &[]).unwrap();
        let e = c.lora_spec(30).unwrap_err().to_string();
        assert!(
            e.contains("`lora.layers`: layer 30 does not exist: the model has 30 layers (0-29)"),
            "{e}"
        );
    }

    #[test]
    fn top_layers_and_fast_mode() {
        let c = parse(MIN, &["train.top_layers=8", "train.fast=true"]).unwrap();
        assert_eq!(c.lora_layers(30).unwrap(), (22..30).collect::<Vec<_>>());
        let e = c.lora_layers(4).unwrap_err().to_string();
        assert!(e.contains("`train.top_layers`: 8 layers asked for"), "{e}");
        let e = err(MIN, &["train.fast=true"]);
        assert!(
            e.contains("`train.fast`") && e.contains("top layers"),
            "{e}"
        );
        let e = err(MIN, &["train.top_layers=2", "lora.layers=3-5"]);
        assert!(
            e.contains("`train.top_layers`: conflicts with lora.layers"),
            "{e}"
        );
        let e = err(MIN, &["train.top_layers=0"]);
        assert!(e.contains("must be at least 1"), "{e}");
    }

    #[test]
    fn echo_round_trips() {
        for sets in [
            vec![],
            vec![
                "lora.layers=[1, 4]",
                "train.top_layers=3",
                "lora.layers=all",
            ],
            vec![
                "lora.layers=2-5",
                "train.fast=true",
                "lora.dropout=0.1",
                "optim.lr=3e-5",
            ],
        ] {
            let c = parse(EXAMPLE, &sets).unwrap();
            let text = c.to_toml();
            let back =
                TrainConfig::parse(&text, Path::new("/elsewhere/train_config.toml"), &[]).unwrap();
            let mut back = back;
            back.source = c.source.clone();
            assert_eq!(back, c, "{text}");
        }
        let text = parse(EXAMPLE, &[]).unwrap().to_toml();
        assert!(text.contains("[optim]\nlr = 0.0002\n"), "{text}");
        assert!(text.contains("dropout = 0.05\n"), "{text}");
    }

    #[test]
    fn load_reads_the_file_and_resolves_against_its_folder() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("run.toml");
        std::fs::write(&p, EXAMPLE).unwrap();
        let c = TrainConfig::load(&p, &["optim.epochs=5".into()]).unwrap();
        assert_eq!(c.optim.epochs, 5);
        assert_eq!(c.data.train, d.path().join("train.jsonl"));
        let out = c.write_echo(d.path()).unwrap();
        let back = TrainConfig::load(&out, &[]).unwrap();
        assert_eq!(back.optim, c.optim);
        assert_eq!(back.data, c.data);
        let e = TrainConfig::load(&d.path().join("missing.toml"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.toml"), "{e}");
    }
}
