//! Deployment gates: does a fine-tune ship?
//!
//! Three gates on a [`HumanReport`]:
//!
//! 1. **vs base**: the fine-tune's win rate over the base model is *above* `min_win_base`
//!    (default 0.6).
//! 2. **vs frontier**: its win rate over the frontier endpoint is *above* `min_win_frontier`
//!    (default 0.4). When the report has no frontier candidate the gate is **skipped** (said so,
//!    never passed silently); when the frontier name was given explicitly
//!    ([`GateConfig::frontier_required`]) its absence is an error instead.
//! 3. **critical failures**: the fine-tune has at most `max_critical` (default 0) critical-failure
//!    flags (one per reviewer and item ticked).
//!
//! The win-rate gates compare the point estimate (ties as half) with the threshold; the reason
//! gives the 95% interval and says when it straddles the threshold. A gate with no comparisons
//! fails. The fine-tune or base missing from the report is an error naming the candidates the
//! report has.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::human::{HumanReport, WinRate};
use crate::{Error, Result};

/// Which candidates to compare, and the thresholds.
#[derive(Debug, Clone, PartialEq)]
pub struct GateConfig {
    /// The fine-tuned candidate (default "finetuned").
    pub finetuned: String,
    /// The base model (default "base").
    pub base: String,
    /// The frontier endpoint (default "frontier").
    pub frontier: String,
    /// When true, a missing frontier candidate is an error rather than a skipped gate.
    pub frontier_required: bool,
    /// The fine-tune must win strictly more than this share against the base (default 0.6).
    pub min_win_base: f64,
    /// The fine-tune must win strictly more than this share against the frontier (default 0.4).
    pub min_win_frontier: f64,
    /// The most critical-failure flags the fine-tune may have (default 0).
    pub max_critical: usize,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self {
            finetuned: "finetuned".into(),
            base: "base".into(),
            frontier: "frontier".into(),
            frontier_required: false,
            min_win_base: 0.6,
            min_win_frontier: 0.4,
            max_critical: 0,
        }
    }
}

/// A gate's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GateStatus {
    /// The condition holds.
    Pass,
    /// The condition does not hold (or cannot be shown: no comparisons).
    Fail,
    /// Not checked: its candidate is not in the report.
    Skip,
}

impl fmt::Display for GateStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GateStatus::Pass => "PASS",
            GateStatus::Fail => "FAIL",
            GateStatus::Skip => "SKIP",
        })
    }
}

/// One gate and why it came out as it did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateOutcome {
    /// Short name: "win rate vs base", "win rate vs frontier", "critical failures".
    pub name: String,
    /// The verdict.
    pub status: GateStatus,
    /// The numbers behind it, in words.
    pub reason: String,
    /// The measured value (win rate, or critical-failure count), when there is one.
    pub value: Option<f64>,
    /// The threshold it was held to.
    pub threshold: f64,
}

/// All gates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateReport {
    /// The gates in order: vs base, vs frontier, critical failures.
    pub gates: Vec<GateOutcome>,
}

impl GateReport {
    /// True when no gate failed (skipped gates do not fail).
    pub fn passed(&self) -> bool {
        self.gates.iter().all(|g| g.status != GateStatus::Fail)
    }

    /// The gates that failed.
    pub fn failed(&self) -> Vec<&GateOutcome> {
        self.gates
            .iter()
            .filter(|g| g.status == GateStatus::Fail)
            .collect()
    }
}

impl fmt::Display for GateReport {
    /// One line per gate, `PASS|FAIL|SKIP  name: reason`, then the verdict.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for g in &self.gates {
            writeln!(f, "{}  {}: {}", g.status, g.name, g.reason)?;
        }
        let skipped = self
            .gates
            .iter()
            .filter(|g| g.status == GateStatus::Skip)
            .count();
        let failed = self.failed().len();
        let note = if skipped > 0 {
            format!(" ({skipped} skipped)")
        } else {
            String::new()
        };
        if failed == 0 {
            write!(f, "PASS: all gates passed{note}")
        } else {
            write!(
                f,
                "FAIL: {failed} of {} gates failed{note}",
                self.gates.len()
            )
        }
    }
}

/// Checks the gates of `cfg` on `report`.
///
/// Errors ([`Error::Invalid`]): thresholds outside `[0, 1]`, the same name for two roles, the
/// fine-tune or base not in the report, or a required frontier not in the report.
pub fn check_gates(report: &HumanReport, cfg: &GateConfig) -> Result<GateReport> {
    for (name, v) in [
        ("--min-win-base", cfg.min_win_base),
        ("--min-win-frontier", cfg.min_win_frontier),
    ] {
        if !(0.0..=1.0).contains(&v) {
            return Err(Error::Invalid(format!(
                "{name} must be within 0..1, got {v}"
            )));
        }
    }
    if cfg.finetuned == cfg.base || cfg.finetuned == cfg.frontier {
        return Err(Error::Invalid(format!(
            "the fine-tune `{}` cannot also be the base or the frontier",
            cfg.finetuned
        )));
    }
    let has = |c: &str| report.candidates.iter().any(|x| x == c);
    let absent = |role: &str, flag: &str, c: &str| {
        Error::Invalid(format!(
            "the {role} candidate `{c}` is not in the report (it has: {}); name it with {flag}",
            report.candidates.join(", ")
        ))
    };
    if !has(&cfg.finetuned) {
        return Err(absent("fine-tuned", "--finetuned", &cfg.finetuned));
    }
    if !has(&cfg.base) {
        return Err(absent("base", "--base", &cfg.base));
    }
    let mut gates = Vec::with_capacity(3);
    gates.push(win_gate(
        "win rate vs base",
        report.win(&cfg.finetuned, &cfg.base),
        &cfg.finetuned,
        &cfg.base,
        cfg.min_win_base,
    ));
    if has(&cfg.frontier) {
        gates.push(win_gate(
            "win rate vs frontier",
            report.win(&cfg.finetuned, &cfg.frontier),
            &cfg.finetuned,
            &cfg.frontier,
            cfg.min_win_frontier,
        ));
    } else if cfg.frontier_required {
        return Err(absent("frontier", "--frontier", &cfg.frontier));
    } else {
        gates.push(GateOutcome {
            name: "win rate vs frontier".into(),
            status: GateStatus::Skip,
            reason: format!(
                "skipped: no candidate `{}` in the report (it has: {}); name the frontier with \
                 --frontier to check it",
                cfg.frontier,
                report.candidates.join(", ")
            ),
            value: None,
            threshold: cfg.min_win_frontier,
        });
    }
    let (count, items) = report
        .scores_of(&cfg.finetuned)
        .map(|s| (s.critical_failures, s.critical_items.clone()))
        .unwrap_or_default();
    let status = if count <= cfg.max_critical {
        GateStatus::Pass
    } else {
        GateStatus::Fail
    };
    let on = if items.is_empty() {
        String::new()
    } else {
        format!(" on {}", items.join(", "))
    };
    gates.push(GateOutcome {
        name: "critical failures".into(),
        status,
        reason: format!(
            "{}: {count} critical-failure flag(s){on}, at most {} allowed",
            cfg.finetuned, cfg.max_critical
        ),
        value: Some(count as f64),
        threshold: cfg.max_critical as f64,
    });
    Ok(GateReport { gates })
}

fn win_gate(name: &str, w: Option<&WinRate>, x: &str, y: &str, min: f64) -> GateOutcome {
    let pct = |v: f64| format!("{:.1}%", v * 100.0);
    let Some((w, rate)) = w.and_then(|w| Some((w, w.win_rate?))) else {
        return GateOutcome {
            name: name.into(),
            status: GateStatus::Fail,
            reason: format!(
                "no item where both `{x}` and `{y}` were fully rated; needs > {}",
                pct(min)
            ),
            value: None,
            threshold: min,
        };
    };
    let status = if rate > min {
        GateStatus::Pass
    } else {
        GateStatus::Fail
    };
    let ci = match (w.ci_low, w.ci_high) {
        (Some(lo), Some(hi)) => {
            let straddles = if lo <= min && min < hi {
                "; the interval straddles the threshold, more ratings would firm this up"
            } else {
                ""
            };
            format!(", 95% CI {}–{}{straddles}", pct(lo), pct(hi))
        }
        _ => String::new(),
    };
    GateOutcome {
        name: name.into(),
        status,
        reason: format!(
            "{x} wins {} over {y} ({} wins, {} ties, {} losses in {} comparisons{ci}); needs > {}",
            pct(rate),
            w.wins,
            w.ties,
            w.losses,
            w.comparisons,
            pct(min)
        ),
        value: Some(rate),
        threshold: min,
    }
}
