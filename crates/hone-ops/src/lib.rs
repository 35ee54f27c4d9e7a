//! Operate: keeping an adapter in production.
//!
//! - [`registry`]: immutable versions `NAME@N` of adapters, their files stored content-addressed
//!   beside the store, with what made them (base model, training config, data hashes, eval
//!   metrics);
//! - [`deployment`]: the `prod` and `canary` aliases of a name and how they change (deploy,
//!   canary, promote, rollback), each change an [`event`];
//! - [`policy`]: the rollback policy (TOML) a canary is judged by, and [`live`] the per-version
//!   numbers it is judged on;
//! - [`route`]: which version answers a request for `NAME`;
//! - [`store`]: where all of it lives: a SQLite file (one machine) or PostgreSQL (replicas).

pub mod baseline;
pub mod deployment;
pub mod drift;
pub mod error;
pub mod event;
pub mod fault;
pub mod feedback;
pub mod history;
pub mod live;
pub mod policy;
pub mod registry;
pub mod request_log;
pub mod review;
pub mod review_doc;
pub mod route;
pub mod status;
pub mod store;
pub mod time;
pub mod version;

pub use deployment::{Canary, Deployment};
pub use error::{Error, Result};
pub use event::Event;
pub use policy::Policy;
pub use store::{open_store, Store};
pub use version::{Version, VersionRef};

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub use time::format_utc;
