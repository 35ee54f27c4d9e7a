//! `eval.toml`: the task, the evaluation data, the candidates, cost and output.
//!
//! ```toml
//! [task]
//! type = "classification"        # "multilabel", "extraction", "generation"
//! labels = ["positive", "negative", "neutral"]   # classification / multilabel
//! fields = ["party", "date"]     # extraction (the answer is a JSON object)
//! system = "Answer with the label only."          # optional system prompt for every candidate
//!
//! [data]
//! eval = "test.jsonl"            # instruction or chat format; the last assistant turn is the reference
//! fewshot_pool = "train.jsonl"   # where few-shot examples are drawn from
//! limit = 200                    # optional: evaluate the first N examples only
//!
//! [generation]
//! max_tokens = 128
//!
//! [[candidate]]
//! name = "base"
//! kind = "local"
//! model = "smollm2"
//! fewshot = 3
//!
//! [[candidate]]
//! name = "finetuned"
//! kind = "local"
//! model = "smollm2"
//! adapter = "runs/nda-v1"
//!
//! [[candidate]]
//! name = "frontier"
//! kind = "endpoint"
//! url = "https://api.openai.com/v1"
//! model = "gpt-4o"
//! api_key_env = "OPENAI_API_KEY"
//! price_input_per_mtok = 2.5
//! price_output_per_mtok = 10.0
//!
//! [cost]
//! machine_usd_per_hour = 1.0     # what the machine running local candidates costs
//!
//! [regression]
//! enabled = true                 # general-knowledge questions for local candidates
//!
//! [output]
//! dir = "eval/nda-v1"
//! ```
//! Relative paths are relative to the config file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::endpoint::EndpointConfig;
use crate::error::{Error, Result};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    pub task: TaskConfig,
    pub data: DataConfig,
    #[serde(rename = "candidate")]
    pub candidates: Vec<CandidateConfig>,
    #[serde(default)]
    pub generation: GenerationConfig,
    #[serde(default)]
    pub cost: CostConfig,
    #[serde(default)]
    pub regression: RegressionConfig,
    pub output: OutputConfig,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    Classification,
    Multilabel,
    Extraction,
    Generation,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    #[serde(rename = "type")]
    pub kind: TaskKind,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub eval: PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fewshot_pool: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// Seed for drawing few-shot examples.
    #[serde(default)]
    pub seed: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GenerationConfig {
    #[serde(default = "default_max_tokens")]
    pub max_tokens: usize,
}

impl Default for GenerationConfig {
    fn default() -> Self {
        Self {
            max_tokens: default_max_tokens(),
        }
    }
}

fn default_max_tokens() -> usize {
    128
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CostConfig {
    /// USD per hour of the machine that runs local candidates.
    #[serde(default = "default_machine_price")]
    pub machine_usd_per_hour: f64,
}

impl Default for CostConfig {
    fn default() -> Self {
        Self {
            machine_usd_per_hour: default_machine_price(),
        }
    }
}

fn default_machine_price() -> f64 {
    // An on-demand 2-vCPU cloud machine, roughly.
    0.10
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct RegressionConfig {
    #[serde(default)]
    pub enabled: bool,
    /// Evaluate only the first N questions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    pub dir: PathBuf,
}

/// One candidate: a name, how many few-shot examples precede each query, and where answers
/// come from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CandidateConfig {
    pub name: String,
    #[serde(default)]
    pub fewshot: usize,
    #[serde(flatten)]
    pub source: CandidateSource,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum CandidateSource {
    /// A local model (name, `.gguf` or HF folder), optionally with a LoRA adapter folder.
    Local {
        #[serde(default = "default_model")]
        model: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        adapter: Option<PathBuf>,
    },
    /// An OpenAI-compatible endpoint.
    Endpoint(EndpointConfig),
}

fn default_model() -> String {
    "smollm2".into()
}

impl EvalConfig {
    /// Reads and checks a config file; relative paths become relative to its folder.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut cfg: EvalConfig = toml::from_str(&text).map_err(|e| Error::Format {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        cfg.resolve_paths(base);
        cfg.validate().map_err(|msg| Error::Format {
            path: path.to_path_buf(),
            msg,
        })?;
        Ok(cfg)
    }

    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.data.eval);
        if let Some(p) = &mut self.data.fewshot_pool {
            fix(p);
        }
        fix(&mut self.output.dir);
        for c in &mut self.candidates {
            if let CandidateSource::Local { adapter, model } = &mut c.source {
                if let Some(a) = adapter {
                    fix(a);
                }
                // A model given as a relative path (not a cached name) is relative to the
                // config file too.
                let rel = base.join(&*model);
                if Path::new(model.as_str()).is_relative() && rel.exists() {
                    *model = rel.display().to_string();
                }
            }
        }
    }

    /// Cross-field checks, each message naming the key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.candidates.is_empty() {
            return Err("`[[candidate]]`: at least one candidate is needed".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, c) in self.candidates.iter().enumerate() {
            if c.name.trim().is_empty() {
                return Err(format!("candidate {}: `name` is empty", i + 1));
            }
            if !names.insert(c.name.as_str()) {
                return Err(format!("candidate `{}`: name used twice", c.name));
            }
            if c.fewshot > 0 && self.data.fewshot_pool.is_none() {
                return Err(format!(
                    "candidate `{}`: `fewshot = {}` needs `data.fewshot_pool`",
                    c.name, c.fewshot
                ));
            }
        }
        match self.task.kind {
            TaskKind::Classification | TaskKind::Multilabel if self.task.labels.is_empty() => {
                return Err("`task.labels`: a classification task needs its labels".into())
            }
            TaskKind::Extraction if self.task.fields.is_empty() => {
                return Err("`task.fields`: an extraction task needs its fields".into())
            }
            _ => {}
        }
        if self.generation.max_tokens == 0 {
            return Err("`generation.max_tokens` must be at least 1".into());
        }
        if !(self.cost.machine_usd_per_hour >= 0.0 && self.cost.machine_usd_per_hour.is_finite()) {
            return Err("`cost.machine_usd_per_hour` must be a non-negative number".into());
        }
        Ok(())
    }
}
