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
    /// A line that is not a record at all (bad JSON, invalid UTF-8).
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
    /// A file whose overall structure is wrong.
    #[error("{}: {msg}", path.display())]
    Format { path: PathBuf, msg: String },
    /// Bad options or inconsistent inputs.
    #[error("{0}")]
    Invalid(String),
    /// An OpenAI-compatible endpoint that could not be reached, refused the request or answered
    /// with something that is not a completion. `status` is the last HTTP status, if any.
    #[error("endpoint {url}: {msg}")]
    Endpoint {
        url: String,
        status: Option<u16>,
        msg: String,
    },
    /// The SQLite output cache (unreadable, corrupt, from a newer hone, ...).
    #[error("output cache {}: {msg}", path.display())]
    Cache { path: PathBuf, msg: String },
    #[error(transparent)]
    Data(#[from] hone_data::Error),
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
