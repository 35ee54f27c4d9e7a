//! The crate's error type: every failure on user input names the file, and the line and field
//! where there is one.

use std::path::PathBuf;

/// What went wrong, and where.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Displays the path and the cause, once: the cause is part of the message and not also
    /// the error's `source()`, which anyhow's `{:#}` would print a second time.
    #[error("{}: {cause}", path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// A line that is not a record at all: invalid UTF-8, bad JSON, a broken CSV row.
    #[error("{}:{line}: {msg}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    /// A record whose field is missing, empty or of the wrong type.
    #[error("{}:{line}: field `{field}`: {msg}", path.display())]
    Field {
        path: PathBuf,
        line: usize,
        field: String,
        msg: String,
    },
    /// A file whose overall structure is wrong (e.g. not ContractNLI's JSON).
    #[error("{}: {msg}", path.display())]
    Format { path: PathBuf, msg: String },
    /// A data file with no examples in it, which no command can use: an empty file, one of
    /// blank lines only, a CSV header alone.
    #[error("{}: no examples ({why})", path.display())]
    Empty { path: PathBuf, why: &'static str },
    /// Bad options (split sizes, thresholds, a CSV mapping).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Model(#[from] hone_model::Error),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            cause,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
