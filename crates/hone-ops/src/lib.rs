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

pub mod deployment;
pub mod error;
pub mod event;
pub mod fault;
pub mod live;
pub mod policy;
pub mod registry;
pub mod route;
pub mod status;
pub mod store;
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

/// Unix seconds as an ISO 8601 UTC time, `2025-01-31T09:05:00Z`.
pub fn format_utc(secs: i64) -> String {
    // Howard Hinnant's civil_from_days
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_utc_times() {
        assert_eq!(super::format_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::format_utc(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(super::format_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::format_utc(-1), "1969-12-31T23:59:59Z");
    }
}
