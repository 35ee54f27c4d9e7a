//! Win rates with ties counted as half, and the Wilson score interval.

use serde::{Deserialize, Serialize};

/// The two-sided 95% normal quantile.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// The Wilson score interval for a proportion `p` observed over `n` trials, at normal quantile
/// `z` (use [`Z_95`] for 95%). `p` may be fractional successes over `n` (ties as half a win).
/// Returns `None` when `n` is zero or `p` is outside `[0, 1]`.
///
/// `centre = (p + z²/2n) / (1 + z²/n)`,
/// `half = z / (1 + z²/n) · sqrt(p(1−p)/n + z²/4n²)`; the bounds are clamped to `[0, 1]`.
pub fn wilson_interval(p: f64, n: usize, z: f64) -> Option<(f64, f64)> {
    if n == 0 || !(0.0..=1.0).contains(&p) || !z.is_finite() {
        return None;
    }
    let n = n as f64;
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = z / denom * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

/// How often `candidate` beat `opponent`, over every (item, reviewer) where both had an overall
/// score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WinRate {
    /// The candidate whose win rate this is.
    pub candidate: String,
    /// The candidate it was compared with.
    pub opponent: String,
    /// Comparisons where `candidate` scored higher.
    pub wins: usize,
    /// Comparisons with equal scores (each counts half a win).
    pub ties: usize,
    /// Comparisons where `opponent` scored higher.
    pub losses: usize,
    /// `wins + ties + losses`.
    pub comparisons: usize,
    /// `(wins + 0.5 × ties) / comparisons`; `None` without comparisons.
    pub win_rate: Option<f64>,
    /// Lower bound of the 95% Wilson interval on `win_rate`.
    pub ci_low: Option<f64>,
    /// Upper bound of the 95% Wilson interval on `win_rate`.
    pub ci_high: Option<f64>,
}

/// The win rate of `candidate` over `opponent` from paired overall scores
/// `(candidate's, opponent's)`, with its 95% Wilson interval.
pub fn win_rate(candidate: &str, opponent: &str, pairs: &[(f64, f64)]) -> WinRate {
    let (mut wins, mut ties, mut losses) = (0, 0, 0);
    for &(a, b) in pairs {
        // Scores are means of three integers: compare in thirds to avoid float noise.
        let (a, b) = ((a * 3.0).round() as i64, (b * 3.0).round() as i64);
        match a.cmp(&b) {
            std::cmp::Ordering::Greater => wins += 1,
            std::cmp::Ordering::Equal => ties += 1,
            std::cmp::Ordering::Less => losses += 1,
        }
    }
    let comparisons = wins + ties + losses;
    let rate = (comparisons > 0).then(|| (wins as f64 + 0.5 * ties as f64) / comparisons as f64);
    let ci = rate.and_then(|p| wilson_interval(p, comparisons, Z_95));
    WinRate {
        candidate: candidate.to_string(),
        opponent: opponent.to_string(),
        wins,
        ties,
        losses,
        comparisons,
        win_rate: rate,
        ci_low: ci.map(|c| c.0),
        ci_high: ci.map(|c| c.1),
    }
}
