//! The crate's error type: every failure on user input names the file.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Displays the path and the cause, once: the cause is part of the message and not also
    /// the error's `source()`, which anyhow's `{:#}` would print a second time.
    #[error("{}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// An input that cannot be reviewed (empty, binary, not a contract format we read).
    #[error("{}: {msg}", path.display())]
    Input { path: PathBuf, msg: String },
    /// A playbook file with a bad field.
    #[error("{}: {msg}", path.display())]
    Playbook { path: PathBuf, msg: String },
    /// The adapter does not fit the model or was not trained for review.
    #[error("{}: {msg}", path.display())]
    Adapter { path: PathBuf, msg: String },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Model(#[from] hone_model::Error),
    #[error(transparent)]
    Data(#[from] hone_data::Error),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            cause,
        }
    }
    pub fn input(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        Self::Input {
            path: path.into(),
            msg: msg.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
