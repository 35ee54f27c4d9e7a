//! Errors of the serving crate, each mapped to an HTTP status in OpenAI's error shape.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ServeError {
    /// A request field is missing or invalid (400); `param` names the field.
    #[error("{message}")]
    BadRequest {
        param: Option<String>,
        message: String,
    },
    /// The body is larger than the configured limit (413).
    #[error("{0}")]
    TooLarge(String),
    /// An unknown model or adapter name (404).
    #[error("{0}")]
    NotFound(String),
    /// An unknown adapter named by a request's `adapter` field (404, `model_not_found`).
    #[error("{0}")]
    AdapterNotFound(String),
    /// A body in a content type the endpoint does not read (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Missing or wrong API key (401).
    #[error("{0}")]
    Unauthorized(String),
    /// Refused whatever the key: the admin key needed is not configured (403).
    #[error("{0}")]
    Forbidden(String),
    /// A client too slow to send its request (408).
    #[error("{0}")]
    Timeout(String),
    /// The server is at capacity (429).
    #[error("{0}")]
    Overloaded(String),
    /// The server is shutting down or the engine has stopped (503).
    #[error("{0}")]
    Unavailable(String),
    /// A JSON schema or grammar llguidance cannot compile (400 on `response_format`).
    #[error("response_format: {0}")]
    Grammar(String),
    /// The deployment changed first, or the admin API is off (409).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Model(#[from] hone_model::Error),
    /// An adapter folder that does not load (400 on `path`); `path` is as the client or the
    /// command line gave it, never resolved to an absolute server path.
    #[error("{path}: {msg}")]
    Adapter { path: String, msg: String },
    #[error("{0}")]
    Internal(String),
}

impl ServeError {
    pub fn bad(param: &str, message: impl Into<String>) -> Self {
        ServeError::BadRequest {
            param: Some(param.to_string()),
            message: message.into(),
        }
    }
}

pub type Result<T, E = ServeError> = std::result::Result<T, E>;
