//! Errors of the registry and deployments.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// Bad input from the user: a version reference, a policy file, an operation that does not
    /// apply (promote without a canary, ...).
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    /// Adapter files that are missing or do not hash to what the registry recorded.
    #[error("{version}: {msg}")]
    Corrupt { version: String, msg: String },
    /// Someone else changed the deployment first.
    #[error("{0}")]
    Conflict(String),
    #[error("store {store}: {msg}")]
    Store { store: String, msg: String },
    #[error(transparent)]
    Model(#[from] hone_model::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            cause,
        }
    }
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::Invalid(msg.into())
    }
}
