//! The one error type of `hone-model`. Every variant that comes from user input names the
//! file (and where it helps, the field) so the binary can print it as is.

use std::path::PathBuf;

pub type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Displays the path and the cause, once: the cause is part of the message and not also
    /// the error's `source()`, which anyhow's `{:#}` would print a second time.
    #[error("{path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// A GGUF file that cannot be read (truncated, bad magic, missing tensor or key).
    #[error("{path}: not a readable GGUF model: {msg}")]
    Gguf { path: PathBuf, msg: String },
    /// A Hugging Face model folder or file that cannot be read (`config.json`, safetensors, ...).
    #[error("{path}: {msg}")]
    HfModel { path: PathBuf, msg: String },
    /// A model whose architecture hone does not run.
    #[error("{path}: unsupported architecture `{arch}` (hone runs the llama family: llama, mistral, qwen2, qwen3, phi3)")]
    UnsupportedArchitecture { path: PathBuf, arch: String },
    /// A configuration value that is missing or out of range.
    #[error("{path}: field `{field}`: {msg}")]
    Config {
        path: PathBuf,
        field: String,
        msg: String,
    },
    /// A safetensors file that cannot be read or written (bad header, missing tensor,
    /// unsupported dtype, wrong shape).
    #[error("{path}: {msg}")]
    Safetensors { path: PathBuf, msg: String },
    /// A LoRA adapter folder or file that cannot be read or written (missing file, unknown
    /// tensor, shape mismatch, ...).
    #[error("{path}: {msg}")]
    Adapter { path: PathBuf, msg: String },
    /// A key of an adapter's `adapter_config.json` that is missing, of the wrong type or not
    /// supported.
    #[error("{path}: `{key}`: {msg}")]
    AdapterConfig {
        path: PathBuf,
        key: String,
        msg: String,
    },
    /// A JSON file that does not parse (line and column from the parser).
    #[error("{path}: line {line}, column {column}: {msg}")]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        msg: String,
    },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("chat template: {0}")]
    Template(String),
    /// Weight storage / kernel problems (shape not a multiple of the block size, ...).
    #[error("quantization: {0}")]
    Quant(String),
    #[error("prompt is {tokens} tokens but the model's context is {context} tokens")]
    ContextOverflow { tokens: usize, context: usize },
    #[error("model `{name}` is not in the cache ({cache}); {hint}")]
    ModelNotCached {
        name: String,
        cache: PathBuf,
        hint: String,
    },
    /// A cached known model whose bytes are not the ones pinned for it (a bit flip, a file
    /// overwritten in place): the message says how to fetch it again.
    #[error("{path}: {msg}")]
    CorruptModel { path: PathBuf, msg: String },
    #[error("model fetch failed: {0}")]
    Fetch(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            cause,
        }
    }
}

/// The message of a caught panic (a third-party parser's, under `catch_unwind`), for an error
/// that says the input could not be read.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown failure")
}
