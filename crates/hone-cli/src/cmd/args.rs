//! Flags several commands share, each declared once here and flattened into the commands that
//! take it (as ripgrep defines each flag once): the model a command loads (`--model`), how
//! it is run (`--f32`, `--adapter`), and sampling.

use std::path::PathBuf;

use clap::Args;

/// The model `--model` names when it is not given (`hone model fetch smollm2`).
pub const DEFAULT_MODEL: &str = "smollm2";

// `--model`: every command that loads a model takes it. Commands whose help says more about
// it (what the model is used for) override the help with `mut_arg("model", ...)`.
#[derive(Args, Debug, Clone)]
pub struct ModelName {
    /// A cached model name (`smollm2`), a `.gguf` file or a Hugging Face model folder.
    #[arg(long, short, default_value = DEFAULT_MODEL)]
    pub model: String,
}

impl std::ops::Deref for ModelName {
    type Target = str;
    fn deref(&self) -> &str {
        &self.model
    }
}

impl std::fmt::Display for ModelName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.model)
    }
}

// The model to run and how (generate, chat, bench generate, bench train).
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    #[command(flatten)]
    pub model: ModelName,
    /// Keep weights as dense f32 (the slow reference path).
    #[arg(long)]
    pub f32: bool,
    /// A LoRA adapter folder (PEFT format: adapter_config.json + adapter_model.safetensors)
    /// applied on top of the model.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Most tokens to generate.
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop before this string (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
}

/// Where the registry lives (`hone registry`, `hone deploy`, `hone serve`).
#[derive(Args, Debug, Clone, Default)]
pub struct StoreLocation {
    /// The registry store: a SQLite file, or a postgres:// URL shared by replicas (default:
    /// $HONE_HOME/registry/registry.db).
    #[arg(long, env = "HONE_STORE", value_name = "PATH|URL")]
    pub store: Option<String>,
    /// The folder adapter files are stored in (default: `objects` beside a SQLite store;
    /// required with PostgreSQL: a folder every replica sees).
    #[arg(long, env = "HONE_OBJECTS", value_name = "DIR")]
    pub objects: Option<std::path::PathBuf>,
}

impl StoreLocation {
    pub fn open(&self) -> anyhow::Result<std::sync::Arc<dyn hone_ops::Store>> {
        Ok(hone_ops::open_store(
            self.store.as_deref(),
            self.objects.as_deref(),
        )?)
    }
}

/// Where `hone registry` and `hone deploy` read and write: a store (SQLite file or PostgreSQL)
/// or a running `hone serve`'s admin API.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    #[command(flatten)]
    pub location: StoreLocation,
    /// Talk to a running `hone serve` (its admin API) instead of the store.
    #[arg(long, value_name = "URL")]
    pub server: Option<String>,
    /// With --server: the environment variable holding the admin key (sent as
    /// `Authorization: Bearer KEY`).
    #[arg(long, value_name = "VAR", requires = "server")]
    pub admin_key_env: Option<String>,
}
