//! The one error type of `hone-train`. Every variant that comes from user input names the file
//! and, where it helps, the line or the key, so the binary can print it as is.

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
    /// A run configuration that is not valid TOML (line and column from the parser).
    #[error("{path}: line {line}, column {column}: {msg}")]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        msg: String,
    },
    /// A run configuration key that is unknown, of the wrong type or out of range. `key` is the
    /// dotted name (`optim.lr`); `path` is the config file, or `--set` for an override.
    #[error("{path}: `{key}`: {msg}")]
    Config {
        path: PathBuf,
        key: String,
        msg: String,
    },
    /// An adapter folder or file that cannot be read or written (missing file, unknown tensor,
    /// shape mismatch, ...).
    #[error("{path}: {msg}")]
    Adapter { path: PathBuf, msg: String },
    /// A data file problem at a line (1-based).
    #[error("{path}:{line}: {msg}")]
    Data {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    #[error(transparent)]
    Model(#[from] hone_model::Error),
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            cause,
        }
    }
}
