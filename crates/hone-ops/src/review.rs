//! The review queue: a share of the logged answers (default 3%) waits for a person, the least
//! confident first and the versions taking turns, who marks each correct, wrong or critical and
//! may write the answer it should have been. Marked items become training data
//! (`hone data from-feedback`); critical marks of a canary count in its policy's gates.

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// The share of logged answers sampled for review by default.
pub const DEFAULT_SHARE: f64 = 0.03;

/// A person's verdict on an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mark {
    Correct,
    Wrong,
    /// Wrong in a way that must not reach a client (counts against a canary).
    Critical,
}

impl Mark {
    pub fn as_str(self) -> &'static str {
        match self {
            Mark::Correct => "correct",
            Mark::Wrong => "wrong",
            Mark::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "correct" => Ok(Mark::Correct),
            "wrong" => Ok(Mark::Wrong),
            "critical" => Ok(Mark::Critical),
            other => Err(Error::invalid(format!(
                "`{other}`: a mark is correct, wrong or critical"
            ))),
        }
    }
}

/// One answer in the queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewItem {
    pub id: i64,
    /// The logged request it came from.
    pub request_id: i64,
    pub time_ms: i64,
    pub model: String,
    pub version: Option<String>,
    pub input: serde_json::Value,
    pub output: String,
    /// The answer's mean token log-probability (lower: less confident).
    pub mean_logprob: Option<f64>,
    /// `None` while pending.
    pub mark: Option<Mark>,
    /// What the answer should have been, when the reviewer wrote it.
    pub corrected: Option<String>,
    pub note: Option<String>,
    pub reviewed_ms: Option<i64>,
}

/// Which items `review_items` returns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReviewQuery {
    /// Only pending items (in review order), else only marked ones (oldest mark first), else all.
    pub pending: Option<bool>,
    pub version: Option<String>,
    /// Only this item.
    pub id: Option<i64>,
    pub limit: usize,
}

/// The order pending items are shown in, as SQL over a table with `version`, `mean_logprob`
/// and `id`: each version's items ranked least confident first (unknown confidence first of
/// all), then the versions take turns rank by rank, so a reviewer sees every version early.
pub(crate) const PENDING_ORDER: &str = "ROW_NUMBER() OVER (PARTITION BY COALESCE(version, '') \
     ORDER BY mean_logprob IS NOT NULL, mean_logprob, id), COALESCE(version, ''), id";

/// Whether a request (by id) is sampled for review: a deterministic draw from the id, so the
/// same log gives the same queue and replicas need not coordinate.
pub fn sampled(request_id: i64, share: f64) -> bool {
    if share <= 0.0 {
        return false;
    }
    // splitmix64 of the id, as a uniform number in [0, 1)
    let mut z = (request_id as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    ((z >> 11) as f64 / (1u64 << 53) as f64) < share
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_takes_its_share() {
        let n = (1..=100_000).filter(|&i| sampled(i, 0.03)).count();
        // binomial(100000, 0.03): 3000 ± 54
        assert!((2750..=3250).contains(&n), "{n}");
        assert!((1..=1000).all(|i| !sampled(i, 0.0)));
        assert!((1..=1000).all(|i| sampled(i, 1.0)));
        assert_eq!(Mark::parse("critical").unwrap(), Mark::Critical);
        assert!(Mark::parse("fine")
            .unwrap_err()
            .to_string()
            .contains("`fine`"));
    }
}
