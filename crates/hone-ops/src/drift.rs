//! Drift of a version's live answers against its evaluation baseline
//! ([`crate::baseline::OutputBaseline`]):
//!
//! - length: Welch's test of the live mean output tokens per answer against the baseline's
//!   (normal approximation, as the canary-against-prod tests in [`crate::live`]);
//! - format: a chi-square test of homogeneity of the live [`FormatClass`] counts against the
//!   baseline's (a 2 x K table, K the classes either has). The baseline is itself a sample
//!   (a few dozen evaluation answers), so it is tested as one rather than taken as exact
//!   shares; a class the baseline never produced then counts as evidence instead of dividing
//!   by zero.
//!
//! Both need [`MIN_ANSWERS`] live answers; "drift" means p below [`crate::live::SIGNIFICANCE`],
//! the level every test in the status uses.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::baseline::{FormatClass, OutputBaseline};
use crate::live::{fmt_p, Significance, Snapshot};

/// Live answers a version needs before its drift is tested.
pub const MIN_ANSWERS: u64 = 20;

/// The drift tests of one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    pub length: Option<Significance>,
    pub format: Option<Significance>,
}

impl Drift {
    /// Whether either test is significant.
    pub fn drifting(&self) -> bool {
        [&self.length, &self.format]
            .into_iter()
            .flatten()
            .any(|s| s.p < crate::live::SIGNIFICANCE)
    }
}

/// Both tests of `live` against `baseline`.
pub fn drift(baseline: &OutputBaseline, live: &Snapshot) -> Drift {
    Drift {
        length: length_drift(baseline, live),
        format: format_drift(&baseline.formats, &live.formats),
    }
}

/// Welch's test of the live output tokens per answer against the baseline's; `None` under
/// [`MIN_ANSWERS`].
pub fn length_drift(baseline: &OutputBaseline, live: &Snapshot) -> Option<Significance> {
    let n = live.requests.saturating_sub(live.errors);
    let mean = live.answer_tokens_mean?;
    if n < MIN_ANSWERS || baseline.answers < 2 {
        return None;
    }
    let var = live.answer_tokens_var.unwrap_or(0.0);
    if var == 0.0 && baseline.tokens_var == 0.0 {
        // every answer the same length on both sides: equal or certainly different
        let differ = mean != baseline.tokens_mean;
        return Some(Significance {
            statistic: if differ {
                (mean - baseline.tokens_mean).signum() * f64::INFINITY
            } else {
                0.0
            },
            p: if differ { 0.0 } else { 1.0 },
        });
    }
    crate::live::two_means(
        mean,
        var,
        n,
        baseline.tokens_mean,
        baseline.tokens_var,
        baseline.answers,
    )
}

/// Chi-square test of homogeneity of two class distributions (baseline, live); `None` when the
/// baseline is empty or the live counts are under [`MIN_ANSWERS`]. One class on both sides is
/// no drift (statistic 0, p 1).
pub fn format_drift(
    baseline: &BTreeMap<FormatClass, u64>,
    live: &BTreeMap<FormatClass, u64>,
) -> Option<Significance> {
    let nb: u64 = baseline.values().sum();
    let nl: u64 = live.values().sum();
    if nb == 0 || nl < MIN_ANSWERS {
        return None;
    }
    let total = (nb + nl) as f64;
    let classes: Vec<FormatClass> = FormatClass::ALL
        .into_iter()
        .filter(|c| baseline.get(c).copied().unwrap_or(0) + live.get(c).copied().unwrap_or(0) > 0)
        .collect();
    let mut stat = 0.0;
    for c in &classes {
        let (b, l) = (
            baseline.get(c).copied().unwrap_or(0) as f64,
            live.get(c).copied().unwrap_or(0) as f64,
        );
        let col = b + l;
        for (observed, row) in [(b, nb as f64), (l, nl as f64)] {
            let expected = row * col / total;
            stat += (observed - expected).powi(2) / expected;
        }
    }
    let df = classes.len().saturating_sub(1);
    Some(Significance {
        statistic: stat,
        p: if df == 0 {
            1.0
        } else {
            chi_square_sf(stat, df as f64)
        },
    })
}

/// "drift (p<0.001)" / "no drift (p=0.41)" / "too few answers to tell".
pub fn describe(s: Option<&Significance>) -> String {
    match s {
        Some(s) if s.p < crate::live::SIGNIFICANCE => format!("drift ({})", fmt_p(s.p)),
        Some(s) => format!("no drift ({})", fmt_p(s.p)),
        None => format!("too few answers to tell (from {MIN_ANSWERS})"),
    }
}

/// `P(X > x)` for `X` chi-square with `df` degrees of freedom: the regularized upper
/// incomplete gamma function `Q(df/2, x/2)`.
pub fn chi_square_sf(x: f64, df: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    if !x.is_finite() {
        return 0.0;
    }
    gamma_q(df / 2.0, x / 2.0)
}

/// `ln Γ(x)` for `x > 0` (Lanczos, g = 7, nine terms; about 15 significant digits).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // reflection: Γ(x)Γ(1-x) = π / sin(πx)
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// Regularized upper incomplete gamma `Q(a, x)`: the series of `P` below `a + 1`, Lentz's
/// continued fraction above (Numerical Recipes, 6.2).
fn gamma_q(a: f64, x: f64) -> f64 {
    const EPS: f64 = 1e-15;
    const TINY: f64 = 1e-300;
    let front = (-x + a * x.ln() - ln_gamma(a)).exp();
    if x < a + 1.0 {
        let (mut ap, mut del) = (a, 1.0 / a);
        let mut sum = del;
        for _ in 0..1000 {
            ap += 1.0;
            del *= x / ap;
            sum += del;
            if del.abs() < sum.abs() * EPS {
                break;
            }
        }
        (1.0 - sum * front).clamp(0.0, 1.0)
    } else {
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / TINY;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..1000 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < TINY {
                d = TINY;
            }
            c = b + an / c;
            if c.abs() < TINY {
                c = TINY;
            }
            d = 1.0 / d;
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() < EPS {
                break;
            }
        }
        (front * h).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FormatClass::*;

    #[test]
    fn chi_square_tail_matches_tables_and_closed_forms() {
        // even df have closed forms: df 2: e^{-x/2}; df 4: e^{-x/2} (1 + x/2)
        assert!((chi_square_sf(3.0, 2.0) - (-1.5f64).exp()).abs() < 1e-12);
        assert!((chi_square_sf(10.0, 4.0) - 6.0 * (-5.0f64).exp()).abs() < 1e-12);
        // df 1: P(X > z²) = 2 (1 - Φ(z)); 1.959964² = 3.841459 is the 5% point
        assert!((chi_square_sf(3.841_459, 1.0) - 0.05).abs() < 1e-6);
        assert!((chi_square_sf(1.0, 1.0) - 0.317_310_5).abs() < 1e-6);
        // table critical values: 11.345 (df 3, 1%), 11.070 (df 5, 5%), 0.554 (df 5, 99%)
        assert!((chi_square_sf(11.345, 3.0) - 0.01).abs() < 1e-5);
        assert!((chi_square_sf(11.070, 5.0) - 0.05).abs() < 1e-5);
        assert!((chi_square_sf(0.554, 5.0) - 0.99).abs() < 1e-4);
        // far tail (continued fraction) and edges
        assert!((chi_square_sf(40.0, 2.0) - (-20.0f64).exp()).abs() < 1e-20);
        assert_eq!(chi_square_sf(0.0, 3.0), 1.0);
        assert_eq!(chi_square_sf(f64::INFINITY, 3.0), 0.0);
        // ln Γ: Γ(5) = 24, Γ(1/2) = √π
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
        assert!((ln_gamma(0.5) - std::f64::consts::PI.sqrt().ln()).abs() < 1e-12);
    }

    fn counts(c: &[(FormatClass, u64)]) -> BTreeMap<FormatClass, u64> {
        c.iter().copied().collect()
    }

    #[test]
    fn format_homogeneity_against_hand_computation() {
        // baseline 30 json / 10 text, live 20 / 20: column totals 50, 30 of 80, every
        // expected count 25 / 15; chi² = 2 (25/25 + 25/15) = 5.3333, df 1, p = 0.02092
        let s = format_drift(
            &counts(&[(JsonObject, 30), (Text, 10)]),
            &counts(&[(JsonObject, 20), (Text, 20)]),
        )
        .unwrap();
        assert!((s.statistic - 16.0 / 3.0).abs() < 1e-12, "{s:?}");
        assert!((s.p - 0.020_921).abs() < 1e-5, "{s:?}");
        assert_eq!(describe(Some(&s)), "drift (p=0.021)");
        // the same shares are no drift at all
        let s = format_drift(
            &counts(&[(JsonObject, 30), (Text, 10)]),
            &counts(&[(JsonObject, 60), (Text, 20)]),
        )
        .unwrap();
        assert!(
            s.statistic.abs() < 1e-12 && (s.p - 1.0).abs() < 1e-12,
            "{s:?}"
        );
        // a class the baseline never had: baseline 40 json, live 35 json + 5 cut: expected
        // json 37.5, cut 2.5 on both rows -> chi² = 2 (2.5²/37.5 + 2.5²/2.5) = 5.3333, df 1
        let s = format_drift(
            &counts(&[(JsonObject, 40)]),
            &counts(&[(JsonObject, 35), (Cut, 5)]),
        )
        .unwrap();
        assert!((s.statistic - 16.0 / 3.0).abs() < 1e-12, "{s:?}");
        assert!((s.p - 0.020_921).abs() < 1e-5, "{s:?}");
        // one class on both sides, or too few live answers
        let one = counts(&[(JsonObject, 40)]);
        assert_eq!(format_drift(&one, &one).unwrap().p, 1.0);
        assert!(format_drift(&one, &counts(&[(Text, 19)])).is_none());
        assert!(format_drift(&BTreeMap::new(), &one).is_none());
    }

    fn baseline(
        mean: f64,
        var: f64,
        answers: u64,
        formats: &[(FormatClass, u64)],
    ) -> OutputBaseline {
        OutputBaseline {
            source: "eval.jsonl".into(),
            answers,
            tokens_mean: mean,
            tokens_var: var,
            tokens_p50: mean,
            tokens_p90: mean,
            tokens_max: mean,
            formats: counts(formats),
        }
    }

    fn live(requests: u64, mean: f64, var: f64, formats: &[(FormatClass, u64)]) -> Snapshot {
        Snapshot {
            requests,
            answer_tokens_mean: Some(mean),
            answer_tokens_var: Some(var),
            formats: counts(formats),
            ..Snapshot::default()
        }
    }

    #[test]
    fn length_and_drift_flag() {
        let b = baseline(12.0, 4.0, 32, &[(JsonObject, 32)]);
        // 13 vs 12 tokens, se = sqrt(9/100 + 4/32) = 0.463681, t = 2.156655, p = 0.031033
        let s = length_drift(&b, &live(100, 13.0, 9.0, &[])).unwrap();
        assert!((s.statistic - 2.156_655).abs() < 1e-5, "{s:?}");
        assert!((s.p - 0.031_033).abs() < 1e-5, "{s:?}");
        // 12.2 vs 12: t = 0.431331, p = 0.666228
        let s = length_drift(&b, &live(100, 12.2, 9.0, &[])).unwrap();
        assert!((s.p - 0.666_228).abs() < 1e-5, "{s:?}");
        // too few answers (errors do not count)
        let mut few = live(25, 30.0, 9.0, &[]);
        few.errors = 6;
        assert!(length_drift(&b, &few).is_none());
        // constant lengths on both sides
        let c = baseline(12.0, 0.0, 32, &[(JsonObject, 32)]);
        assert_eq!(length_drift(&c, &live(50, 12.0, 0.0, &[])).unwrap().p, 1.0);
        assert_eq!(length_drift(&c, &live(50, 9.0, 0.0, &[])).unwrap().p, 0.0);

        let same = drift(&b, &live(100, 12.2, 9.0, &[(JsonObject, 100)]));
        assert!(!same.drifting(), "{same:?}");
        let text = drift(&b, &live(100, 12.2, 9.0, &[(JsonObject, 60), (Text, 40)]));
        assert!(text.drifting(), "{text:?}");
        assert!(text.format.as_ref().unwrap().p < 0.001, "{text:?}");
        assert_eq!(describe(None), "too few answers to tell (from 20)");
    }
}
