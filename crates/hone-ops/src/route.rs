//! Which version answers a request for `NAME`: the canary takes its share of requests, sticky
//! per `user` when the request names one (the same user always sees the same version while the
//! canary runs), else drawn per request.

use sha2::{Digest, Sha256};

/// Buckets the share is cut in (a share is exact to 0.01%).
const BUCKETS: u64 = 10_000;

/// The bucket of `user` for `name`, in `0..10_000`: a stable hash (SHA-256), the same in every
/// replica and across restarts, and different per name so one user is not the canary of every
/// model at once.
pub fn bucket(name: &str, user: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([0]);
    h.update(user.as_bytes());
    let d = h.finalize();
    let x = u64::from_le_bytes(d[..8].try_into().expect("8 bytes"));
    x % BUCKETS
}

/// Whether a request goes to the canary holding `percent` of `name`'s traffic. `draw` is a
/// uniform number in `[0, 1)` used when there is no user.
pub fn to_canary(name: &str, percent: f64, user: Option<&str>, draw: f64) -> bool {
    let cut = (percent / 100.0 * BUCKETS as f64).round() as u64;
    match user {
        Some(u) if !u.is_empty() => bucket(name, u) < cut,
        _ => ((draw * BUCKETS as f64) as u64) < cut,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_is_kept_and_users_stick() {
        let n = 20_000;
        let hits = (0..n)
            .filter(|i| to_canary("nda", 10.0, Some(&format!("user-{i}")), 0.99))
            .count();
        // binomial: mean 2000, sd ~42; 5 sd either side
        assert!((1790..=2210).contains(&hits), "{hits}");
        for i in 0..100 {
            let u = format!("u{i}");
            let first = to_canary("nda", 10.0, Some(&u), 0.0);
            assert!((0..5).all(|_| to_canary("nda", 10.0, Some(&u), 0.5) == first));
        }
        // without a user, the draw decides
        assert!(to_canary("nda", 10.0, None, 0.05));
        assert!(!to_canary("nda", 10.0, None, 0.15));
        assert!(!to_canary("nda", 10.0, Some(""), 0.5));
    }
}
