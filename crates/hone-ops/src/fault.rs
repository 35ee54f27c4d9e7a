//! Fault injection for crash tests: `HONE_OPS_PAUSE=POINT:MS` makes the process sleep MS
//! milliseconds when it reaches the named point, so a test can kill it there and check that
//! the store is as before or after the operation, never in between.
//!
//! Points: `add` (a version's objects are written, the version not yet recorded) and `deploy`
//! (inside a deployment change's transaction, just before it commits).

/// Sleeps when `HONE_OPS_PAUSE` names `point` (`POINT:MS`); does nothing otherwise.
pub fn pause(point: &str) {
    if let Some(ms) = pause_ms(std::env::var("HONE_OPS_PAUSE").ok().as_deref(), point) {
        tracing::warn!("HONE_OPS_PAUSE: pausing {ms} ms at `{point}`");
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// The pause `spec` (`POINT:MS`) asks for at `point`.
fn pause_ms(spec: Option<&str>, point: &str) -> Option<u64> {
    let (p, ms) = spec?.trim().rsplit_once(':')?;
    (p == point).then(|| ms.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::pause_ms;

    #[test]
    fn parses_point_and_milliseconds() {
        assert_eq!(pause_ms(Some("add:3000"), "add"), Some(3000));
        assert_eq!(pause_ms(Some("add:3000"), "deploy"), None);
        assert_eq!(pause_ms(Some("add"), "add"), None);
        assert_eq!(pause_ms(Some("add:x"), "add"), None);
        assert_eq!(pause_ms(None, "add"), None);
    }
}
