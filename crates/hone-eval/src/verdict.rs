//! The pilot's verdict: does fine-tuning help on these examples, by how much, how sure can one
//! be, and is it meaningful by a stated rule.
//!
//! Every arm answered the same held-out examples, each answer scored in `[0, 1]`
//! ([`crate::item_score`]). An arm's score is the mean, with a 95% percentile-bootstrap
//! interval. The improvement is the fine-tuned arm minus the better base arm (zero- or
//! few-shot, whichever scored higher here, which favours the base), with a *paired* bootstrap
//! interval: each resample draws examples, not answers, so the two arms are compared on the
//! same draw. Resampling is seeded: the same scores give the same interval.
//!
//! The rule ([`Rule`]): the gain is **meaningful** when the interval's lower end is above 0 and
//! the gain is at least `min_gain` (5 points by default); **promising** when the gain reaches
//! `min_gain` but the interval still includes 0 (more examples will tell); otherwise there is
//! **no clear gain**.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Bootstrap resamples drawn per interval.
pub const RESAMPLES: usize = 10_000;

/// A point estimate with its 95% interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub estimate: f64,
    pub low: f64,
    pub high: f64,
}

/// What is judged meaningful.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    /// The least gain (absolute, in score units) that counts.
    pub min_gain: f64,
}

impl Default for Rule {
    fn default() -> Self {
        Self { min_gain: 0.05 }
    }
}

impl Rule {
    /// The rule in words, as the report states it.
    pub fn describe(&self, metric: &str) -> String {
        format!(
            "meaningful when the fine-tuned {metric} beats the better base arm by at least \
             {:.0} points and the 95% paired-bootstrap interval of the gain lies above 0; \
             promising when the gain reaches {:.0} points but the interval still includes 0",
            self.min_gain * 100.0,
            self.min_gain * 100.0
        )
    }
}

/// The call the rule makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Call {
    Meaningful,
    Promising,
    NoClearGain,
}

impl Call {
    pub fn headline(&self) -> &'static str {
        match self {
            Call::Meaningful => "fine-tuning helps meaningfully",
            Call::Promising => "promising, not yet certain",
            Call::NoClearGain => "no clear gain from fine-tuning",
        }
    }
}

/// The role an arm plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Base,
    FineTuned,
    Endpoint,
}

/// One arm's per-example scores.
#[derive(Clone, Debug)]
pub struct Arm {
    pub name: String,
    pub role: Role,
    pub scores: Vec<f64>,
}

/// One arm's mean and interval.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArmSummary {
    pub name: String,
    pub role: Role,
    pub score: Interval,
}

/// The verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// What the scores measure (e.g. "accuracy").
    pub metric: String,
    /// Held-out examples each arm answered.
    pub examples: usize,
    pub arms: Vec<ArmSummary>,
    /// The base arm the gain is measured against.
    pub baseline: String,
    /// Fine-tuned minus `baseline`.
    pub gain: Interval,
    /// Fine-tuned minus the endpoint, when there is one.
    pub vs_endpoint: Option<Interval>,
    pub rule: Rule,
    pub rule_text: String,
    pub call: Call,
    /// What the call means for the next step, in a sentence or two.
    pub advice: String,
}

/// The `q` quantile of sorted values (linear interpolation).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// The mean of `a[i] - b[i]` (or of `a` alone when `b` is `None`) with a 95% percentile
/// bootstrap interval over examples.
fn bootstrap(a: &[f64], b: Option<&[f64]>, seed: u64) -> Interval {
    let n = a.len();
    let d: Vec<f64> = match b {
        Some(b) => a.iter().zip(b).map(|(x, y)| x - y).collect(),
        None => a.to_vec(),
    };
    let estimate = d.iter().sum::<f64>() / n as f64;
    let mut rng = hone_data::hash::Rng::new(seed);
    let mut means: Vec<f64> = (0..RESAMPLES)
        .map(|_| (0..n).map(|_| d[rng.below(n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    Interval {
        estimate,
        low: quantile(&means, 0.025),
        high: quantile(&means, 0.975),
    }
}

/// The mean of `scores` with its 95% bootstrap interval.
pub fn mean_interval(scores: &[f64], seed: u64) -> Interval {
    bootstrap(scores, None, seed)
}

/// The mean of `a - b`, example by example, with its 95% paired bootstrap interval.
pub fn paired_gain(a: &[f64], b: &[f64], seed: u64) -> Interval {
    bootstrap(a, Some(b), seed)
}

/// What the pilot's items are, for the advice's wording and the scale it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Instruction or chat examples: 50 help noticeably, then 500-2,000 substantially.
    Examples,
    /// Reviewed documents (17 checks each): a few dozen, then a few hundred.
    Documents,
}

impl Unit {
    fn plural(self) -> &'static str {
        match self {
            Unit::Examples => "examples",
            Unit::Documents => "documents",
        }
    }

    fn next_scale(self) -> &'static str {
        match self {
            Unit::Examples => "500-2,000 examples",
            Unit::Documents => "a few hundred annotated documents",
        }
    }

    fn more(self) -> &'static str {
        match self {
            Unit::Examples => "50-150 more",
            Unit::Documents => "20-50 more documents",
        }
    }
}

/// Judges the arms: exactly one fine-tuned arm, at least one base arm, at most one endpoint,
/// all scored on the same examples.
pub fn judge(metric: &str, arms: &[Arm], rule: Rule, seed: u64) -> Result<Verdict> {
    judge_in(Unit::Examples, metric, arms, rule, seed)
}

/// [`judge`] of items that are `unit`.
pub fn judge_in(unit: Unit, metric: &str, arms: &[Arm], rule: Rule, seed: u64) -> Result<Verdict> {
    let n = arms.first().map_or(0, |a| a.scores.len());
    if n == 0 {
        return Err(Error::Invalid("verdict: no scored examples".into()));
    }
    if let Some(a) = arms.iter().find(|a| a.scores.len() != n) {
        return Err(Error::Invalid(format!(
            "verdict: arm `{}` has {} scores, the others {n}",
            a.name,
            a.scores.len()
        )));
    }
    if let Some(a) = arms
        .iter()
        .find(|a| a.scores.iter().any(|s| !(0.0..=1.0).contains(s)))
    {
        return Err(Error::Invalid(format!(
            "verdict: arm `{}` has a score outside [0, 1]",
            a.name
        )));
    }
    if !(rule.min_gain.is_finite() && (0.0..=1.0).contains(&rule.min_gain)) {
        return Err(Error::Invalid(format!(
            "verdict: the least meaningful gain must be in [0, 1], not {}",
            rule.min_gain
        )));
    }
    let of = |role: Role| arms.iter().filter(move |a| a.role == role);
    let tuned: Vec<&Arm> = of(Role::FineTuned).collect();
    let [tuned] = tuned.as_slice() else {
        return Err(Error::Invalid(format!(
            "verdict: one fine-tuned arm is needed, not {}",
            tuned.len()
        )));
    };
    let endpoints: Vec<&Arm> = of(Role::Endpoint).collect();
    if endpoints.len() > 1 {
        return Err(Error::Invalid("verdict: at most one endpoint arm".into()));
    }
    let mean = |a: &Arm| a.scores.iter().sum::<f64>() / n as f64;
    let base = of(Role::Base)
        .fold(None::<&Arm>, |best, a| match best {
            Some(b) if mean(b) >= mean(a) => Some(b),
            _ => Some(a),
        })
        .ok_or_else(|| Error::Invalid("verdict: at least one base arm is needed".into()))?;
    let summaries = arms
        .iter()
        .enumerate()
        .map(|(i, a)| ArmSummary {
            name: a.name.clone(),
            role: a.role,
            score: mean_interval(&a.scores, seed.wrapping_add(i as u64)),
        })
        .collect();
    let gain = paired_gain(&tuned.scores, &base.scores, seed ^ 0x5EED);
    let vs_endpoint = endpoints
        .first()
        .map(|e| paired_gain(&tuned.scores, &e.scores, seed ^ 0xE0));
    let call = if gain.estimate >= rule.min_gain - 1e-12 && gain.low > 0.0 {
        Call::Meaningful
    } else if gain.estimate >= rule.min_gain - 1e-12 {
        Call::Promising
    } else {
        Call::NoClearGain
    };
    let points = |x: f64| format!("{:+.1} points", x * 100.0);
    let mut advice = match call {
        Call::Meaningful => format!(
            "A pilot's worth of {} already moved {metric} by {} over `{}`: {} will help \
             substantially. Collect them and train with `hone train`.",
            unit.plural(),
            points(gain.estimate),
            base.name,
            unit.next_scale()
        ),
        Call::Promising => format!(
            "The gain ({}) is large enough to matter, but on {n} held-out {} its \
             interval ({} to {}) still includes no gain. Label {} and run the pilot again \
             before committing to fine-tuning.",
            points(gain.estimate),
            unit.plural(),
            points(gain.low),
            points(gain.high),
            unit.more()
        ),
        Call::NoClearGain => format!(
            "Fine-tuning moved {metric} by {} over `{}`, under the {:.0} points that count. \
             Check the data (labels, consistency) or prefer prompting a larger model \
             (`hone advise`).",
            points(gain.estimate),
            base.name,
            rule.min_gain * 100.0
        ),
    };
    if let Some(e) = &vs_endpoint {
        advice.push_str(&format!(
            " Against the endpoint the fine-tuned model is at {} (95% interval {} to {}).",
            points(e.estimate),
            points(e.low),
            points(e.high)
        ));
    }
    Ok(Verdict {
        metric: metric.to_string(),
        examples: n,
        arms: summaries,
        baseline: base.name.clone(),
        gain,
        vs_endpoint,
        rule,
        rule_text: rule.describe(metric),
        call,
        advice,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm(name: &str, role: Role, s: &[f64]) -> Arm {
        Arm {
            name: name.into(),
            role,
            scores: s.to_vec(),
        }
    }

    #[test]
    fn a_constant_difference_has_a_degenerate_interval() {
        let a = [1.0, 0.0, 1.0, 1.0];
        let b = [0.5, -0.5, 0.5, 0.5];
        let g = paired_gain(&a, &b, 1);
        assert_eq!((g.estimate, g.low, g.high), (0.5, 0.5, 0.5));
    }

    #[test]
    fn the_mean_interval_matches_the_normal_approximation() {
        // 100 Bernoulli outcomes at 0.6: the 95% interval is about 0.6 +- 1.96 * 0.049.
        let s: Vec<f64> = (0..100).map(|i| f64::from(i % 5 < 3)).collect();
        let m = mean_interval(&s, 7);
        assert!((m.estimate - 0.6).abs() < 1e-12);
        let half = 1.96 * (0.6f64 * 0.4 / 100.0).sqrt();
        assert!((m.low - (0.6 - half)).abs() < 0.02, "{m:?}");
        assert!((m.high - (0.6 + half)).abs() < 0.02, "{m:?}");
        assert_eq!(mean_interval(&s, 7), m, "seeded: the same interval again");
    }

    #[test]
    fn pairing_narrows_the_interval_when_arms_move_together() {
        // Both arms fail the same hard examples; the tuned one also gets two more right.
        let base = [0., 0., 0., 0., 1., 1., 1., 1., 0., 0.];
        let tuned = [0., 0., 1., 1., 1., 1., 1., 1., 0., 0.];
        let g = paired_gain(&tuned, &base, 3);
        assert!((g.estimate - 0.2).abs() < 1e-12);
        // Paired, a resample can never show the tuned arm behind: the low end is 0, not the
        // unpaired difference of two independent intervals, which goes well below 0.
        assert!(g.low >= 0.0, "{g:?}");
        let (mt, mb) = (mean_interval(&tuned, 1), mean_interval(&base, 2));
        assert!(mt.low - mb.high < 0.0);
    }

    #[test]
    fn the_rule_makes_three_calls() {
        let base = vec![0.0; 20];
        let mut strong = vec![1.0; 12];
        strong.extend(vec![0.0; 8]);
        let v = judge(
            "accuracy",
            &[
                arm("zero", Role::Base, &base),
                arm("tuned", Role::FineTuned, &strong),
            ],
            Rule::default(),
            1,
        )
        .unwrap();
        assert_eq!(v.call, Call::Meaningful);
        assert!((v.gain.estimate - 0.6).abs() < 1e-12);
        assert!(v.gain.low > 0.3 && v.gain.high <= 0.85, "{:?}", v.gain);
        assert!(v.rule_text.contains("5 points"));

        // One more right out of ten, one more wrong: a 10-point gain that may be chance.
        let b = [1., 0., 1., 0., 1., 0., 1., 0., 1., 0.];
        let t = [1., 1., 1., 1., 1., 0., 1., 0., 0., 0.];
        let v = judge(
            "accuracy",
            &[arm("b", Role::Base, &b), arm("t", Role::FineTuned, &t)],
            Rule::default(),
            1,
        )
        .unwrap();
        assert!((v.gain.estimate - 0.1).abs() < 1e-12);
        assert!(v.gain.low < 0.0);
        assert_eq!(v.call, Call::Promising);

        let v = judge(
            "accuracy",
            &[arm("b", Role::Base, &b), arm("t", Role::FineTuned, &b)],
            Rule::default(),
            1,
        )
        .unwrap();
        assert_eq!(v.call, Call::NoClearGain);
    }

    #[test]
    fn the_gain_is_against_the_better_base_arm_and_the_endpoint_is_compared() {
        let zero = [0., 0., 0., 0.];
        let few = [1., 1., 0., 0.];
        let tuned = [1., 1., 1., 0.];
        let ep = [1., 1., 1., 1.];
        let v = judge(
            "accuracy",
            &[
                arm("base zero-shot", Role::Base, &zero),
                arm("base few-shot", Role::Base, &few),
                arm("fine-tuned", Role::FineTuned, &tuned),
                arm("frontier", Role::Endpoint, &ep),
            ],
            Rule::default(),
            9,
        )
        .unwrap();
        assert_eq!(v.baseline, "base few-shot");
        assert!((v.gain.estimate - 0.25).abs() < 1e-12);
        let e = v.vs_endpoint.unwrap();
        assert!((e.estimate + 0.25).abs() < 1e-12);
        assert_eq!(v.arms.len(), 4);
        assert!(v.advice.contains("endpoint"));
    }

    #[test]
    fn bad_arms_are_refused() {
        let s = [1.0, 0.0];
        let err =
            |arms: &[Arm], rule: Rule| judge("accuracy", arms, rule, 1).unwrap_err().to_string();
        assert!(err(&[arm("b", Role::Base, &s)], Rule::default()).contains("fine-tuned"));
        assert!(err(&[arm("t", Role::FineTuned, &s)], Rule::default()).contains("base"));
        assert!(err(
            &[arm("b", Role::Base, &s), arm("t", Role::FineTuned, &[1.0])],
            Rule::default()
        )
        .contains("`t` has 1 scores"));
        assert!(err(
            &[
                arm("b", Role::Base, &s),
                arm("t", Role::FineTuned, &[1.0, 2.0])
            ],
            Rule::default()
        )
        .contains("outside"));
        assert!(err(
            &[arm("b", Role::Base, &s), arm("t", Role::FineTuned, &s)],
            Rule { min_gain: f64::NAN }
        )
        .contains("least meaningful gain"));
        assert!(err(&[], Rule::default()).contains("no scored"));
    }

    #[test]
    fn the_advice_speaks_of_the_pilots_items() {
        let arms = [
            arm("b", Role::Base, &[0.0; 8]),
            arm("t", Role::FineTuned, &[1.0; 8]),
        ];
        let e = judge("accuracy", &arms, Rule::default(), 1).unwrap();
        assert!(e.advice.contains("500-2,000 examples"), "{}", e.advice);
        let d = judge_in(
            Unit::Documents,
            "3-class check accuracy",
            &arms,
            Rule::default(),
            1,
        )
        .unwrap();
        assert!(
            d.advice.contains("pilot's worth of documents"),
            "{}",
            d.advice
        );
        assert!(!d.advice.contains("examples"), "{}", d.advice);
    }
}
