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
    /// A cached model name (`smollm2`; `gemma3-270m`), a `.gguf` file or a Hugging Face model
    /// folder. With an adapter trained by hone on another base, that base.
    #[arg(long, short, default_value = DEFAULT_MODEL)]
    pub model: String,
}

impl Default for ModelName {
    fn default() -> Self {
        Self {
            model: DEFAULT_MODEL.into(),
        }
    }
}

impl ModelName {
    /// The model named (the default when none was).
    pub fn name(&self) -> &str {
        &self.model
    }

    /// The model to run `adapter` on. A model other than the default is taken as named. With
    /// the default, the base the adapter records (`base_model_name_or_path`, as `hone train`
    /// writes it) is used instead when it is a model hone knows or a path that exists, and a
    /// line on stderr says so: the default base could not run that adapter anyway. A PEFT
    /// adapter from elsewhere usually names a hub repository, which hone never fetches; then
    /// the default stays, and a shape mismatch is reported if it does not fit.
    pub fn for_adapter(&self, adapter: Option<&std::path::Path>) -> String {
        if self.model != DEFAULT_MODEL {
            return self.model.clone();
        }
        let recorded = adapter
            .and_then(|dir| hone_model::peft::read_adapter_config(dir).ok())
            .and_then(|cfg| cfg.base_model_name_or_path)
            .filter(|b| b != DEFAULT_MODEL)
            .filter(|b| {
                hone_model::fetch::known_model(b).is_some() || std::path::Path::new(b).exists()
            });
        match (recorded, adapter) {
            (Some(base), Some(dir)) => {
                eprintln!(
                    "running on `{base}`, the base model adapter {} was trained on",
                    dir.display()
                );
                base
            }
            _ => self.model.clone(),
        }
    }
}

impl std::ops::Deref for ModelName {
    type Target = str;
    fn deref(&self) -> &str {
        self.name()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter_naming(base: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let cfg = serde_json::json!({
            "peft_type": "LORA", "r": 4, "lora_alpha": 8,
            "target_modules": ["q_proj"], "base_model_name_or_path": base,
        });
        std::fs::write(dir.path().join("adapter_config.json"), cfg.to_string()).unwrap();
        dir
    }

    #[test]
    fn an_adapter_runs_on_the_base_it_records_unless_a_model_is_named() {
        let none = ModelName::default();
        let gemma = adapter_naming("gemma3-270m");
        assert_eq!(none.for_adapter(Some(gemma.path())), "gemma3-270m");
        // A path that exists is taken as it is.
        let file = gemma.path().join("adapter_config.json");
        let by_path = adapter_naming(file.to_str().unwrap());
        assert_eq!(
            none.for_adapter(Some(by_path.path())),
            file.to_str().unwrap()
        );
        // A hub repository (never fetched) or no config at all: the default model.
        let hub = adapter_naming("HuggingFaceTB/SmolLM2-135M-Instruct");
        assert_eq!(none.for_adapter(Some(hub.path())), DEFAULT_MODEL);
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(none.for_adapter(Some(empty.path())), DEFAULT_MODEL);
        assert_eq!(none.for_adapter(None), DEFAULT_MODEL);
        // Another --model wins over what the adapter says.
        let named = ModelName {
            model: file.to_str().unwrap().into(),
        };
        assert_eq!(named.for_adapter(Some(gemma.path())), &*named);
        assert_eq!(&*none, DEFAULT_MODEL);
    }
}
