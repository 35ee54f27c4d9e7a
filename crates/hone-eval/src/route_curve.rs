//! The accuracy / cost curve of confidence routing: a small (cheap) model answers every query;
//! when its confidence is below a threshold T the query goes to a large (expensive) model too,
//! whose answer is kept instead.
//!
//! For every threshold that changes which queries are routed, the curve gives the routed share,
//! the accuracy and the cost per 1,000 units:
//!
//! - **Thresholds.** A query is routed when `confidence < T` (strictly, as `hone serve
//!   --threshold` routes). With the distinct confidences sorted, c₁ < c₂ < … < cₙ, the points
//!   are *never* (nothing routed), T = c₂ … cₙ (T = cₖ routes every query whose confidence is
//!   below cₖ), and *always* (everything routed, whatever its confidence).
//! - **Accuracy** is computed by the caller from the routed mask (a routed query takes the large
//!   answer, the others keep the small one): [`mean_score`] for per-answer scores, or any
//!   aggregate such as ContractNLI's macro NLI accuracy.
//! - **Cost.** Queries belong to cost units (a query is its own unit when answers are paid one
//!   by one; for document review a unit is a document, whose checks come from one review). Every
//!   unit pays the small model's cost, since the small model always answers first; a unit with
//!   at least one routed query also pays the large model's cost. Cost per 1,000 units =
//!   1000 × (Σ small + Σ large of routed units) / units.
//!
//! The chosen point ([`choose`]) is the cheapest whose accuracy reaches the target (ties: the
//! more accurate, then the fewer routed). When no point reaches it, nothing is chosen and the
//! most accurate point (the cheapest of equals) is reported instead.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What one cost unit costs on each model, USD.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnitCost {
    /// The small model's cost (paid by every unit).
    pub small: f64,
    /// The large model's cost (paid by units with a routed query).
    pub large: f64,
}

/// Which queries a point routes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// The small model answers everything.
    Never,
    /// Route when the confidence is below `threshold`.
    Below,
    /// The large model answers everything.
    Always,
}

/// One point of the curve.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoutePoint {
    pub policy: Policy,
    /// The threshold T (route when confidence < T); only with [`Policy::Below`].
    pub threshold: Option<f64>,
    /// Queries routed to the large model.
    pub routed: usize,
    /// `routed` / queries.
    pub routed_share: f64,
    /// Accuracy with these queries routed.
    pub accuracy: f64,
    /// Cost per 1,000 units, USD.
    pub cost_per_1k_usd: f64,
}

impl RoutePoint {
    /// The threshold as `hone serve --threshold` takes it, or `never` / `always`.
    pub fn threshold_label(&self) -> String {
        match (self.policy, self.threshold) {
            (Policy::Below, Some(t)) => format!("{t:.4}"),
            (Policy::Never, _) => "never".into(),
            _ => "always".into(),
        }
    }
}

/// The chosen point (see the module documentation).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    /// The accuracy to reach.
    pub target: f64,
    /// Index into the points of the cheapest point that reaches `target`; `None` when none does.
    pub chosen: Option<usize>,
    /// Index of the most accurate point (the cheapest of equals): what to report when nothing
    /// reaches the target.
    pub best: usize,
}

/// The mean of the chosen per-query scores: `large[i]` where query `i` is routed, else
/// `small[i]`. The accuracy of [`curve`] for per-answer scores.
pub fn mean_score<'a>(
    small: &'a [f64],
    large: &'a [f64],
) -> impl FnMut(&[bool]) -> Result<f64> + 'a {
    move |routed: &[bool]| {
        let n = routed.len().max(1) as f64;
        Ok(routed
            .iter()
            .enumerate()
            .map(|(i, &r)| if r { large[i] } else { small[i] })
            .sum::<f64>()
            / n)
    }
}

/// The curve (see the module documentation): `confidence[i]` and `unit[i]` (an index into
/// `costs`) of every query; `accuracy` gets the routed mask of each point.
///
/// Errors: no queries, lengths that differ, a confidence that is not a number, a unit index
/// beyond `costs`, a cost that is negative or not finite, an accuracy that is not finite.
pub fn curve(
    confidence: &[f64],
    unit: &[usize],
    costs: &[UnitCost],
    mut accuracy: impl FnMut(&[bool]) -> Result<f64>,
) -> Result<Vec<RoutePoint>> {
    let n = confidence.len();
    if n == 0 {
        return Err(Error::Invalid("routing curve: no queries".into()));
    }
    if unit.len() != n {
        return Err(Error::Invalid(format!(
            "routing curve: {n} confidences but {} unit indices",
            unit.len()
        )));
    }
    if let Some(i) = confidence.iter().position(|c| c.is_nan()) {
        return Err(Error::Invalid(format!(
            "routing curve: query {i} has no confidence (NaN)"
        )));
    }
    if let Some(&u) = unit.iter().find(|&&u| u >= costs.len()) {
        return Err(Error::Invalid(format!(
            "routing curve: unit {u} is beyond the {} unit costs",
            costs.len()
        )));
    }
    if let Some((i, c)) = costs.iter().enumerate().find(|(_, c)| {
        !(c.small.is_finite() && c.large.is_finite() && c.small >= 0.0 && c.large >= 0.0)
    }) {
        return Err(Error::Invalid(format!(
            "routing curve: unit {i} costs {} (small) and {} (large); costs must be finite and not negative",
            c.small, c.large
        )));
    }
    let mut distinct: Vec<f64> = confidence.to_vec();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();

    let small_total: f64 = costs.iter().map(|c| c.small).sum();
    let per_1k = 1000.0 / costs.len().max(1) as f64;
    let mut point = |policy: Policy, threshold: Option<f64>| -> Result<RoutePoint> {
        let routed: Vec<bool> = confidence
            .iter()
            .map(|&c| match policy {
                Policy::Never => false,
                Policy::Always => true,
                Policy::Below => threshold.is_some_and(|t| c < t),
            })
            .collect();
        let mut paid = vec![false; costs.len()];
        for (i, &r) in routed.iter().enumerate() {
            paid[unit[i]] |= r;
        }
        let large_total: f64 = costs
            .iter()
            .zip(&paid)
            .filter(|(_, &p)| p)
            .map(|(c, _)| c.large)
            .sum();
        let acc = accuracy(&routed)?;
        if !acc.is_finite() {
            return Err(Error::Invalid(format!(
                "routing curve: accuracy {acc} at threshold {threshold:?}"
            )));
        }
        let k = routed.iter().filter(|&&r| r).count();
        Ok(RoutePoint {
            policy,
            threshold,
            routed: k,
            routed_share: k as f64 / n as f64,
            accuracy: acc,
            cost_per_1k_usd: per_1k * (small_total + large_total),
        })
    };
    let mut points = vec![point(Policy::Never, None)?];
    for &t in distinct.iter().skip(1) {
        points.push(point(Policy::Below, Some(t))?);
    }
    points.push(point(Policy::Always, None)?);
    Ok(points)
}

/// The cheapest point whose accuracy reaches `target` (within 1e-12, so a target copied from a
/// printed accuracy is met by that point), and the most accurate point. `points` must not be
/// empty ([`curve`] never returns an empty curve).
pub fn choose(points: &[RoutePoint], target: f64) -> Choice {
    let better_cheap = |a: &RoutePoint, b: &RoutePoint| {
        a.cost_per_1k_usd
            .total_cmp(&b.cost_per_1k_usd)
            .then(b.accuracy.total_cmp(&a.accuracy))
            .then(a.routed.cmp(&b.routed))
    };
    let chosen = (0..points.len())
        .filter(|&i| points[i].accuracy >= target - 1e-12)
        .min_by(|&a, &b| better_cheap(&points[a], &points[b]));
    let best = (0..points.len())
        .min_by(|&a, &b| {
            points[b]
                .accuracy
                .total_cmp(&points[a].accuracy)
                .then(better_cheap(&points[a], &points[b]))
        })
        .unwrap_or(0);
    Choice {
        target,
        chosen,
        best,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    /// Four queries, one unit each; small model $1 a query, large $10.
    /// conf   small large
    /// -2.0   0     1
    /// -1.0   0     1
    /// -1.0   1     0
    /// -0.5   1     1
    fn four() -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<UnitCost>) {
        (
            vec![-2.0, -1.0, -1.0, -0.5],
            vec![0.0, 0.0, 1.0, 1.0],
            vec![1.0, 1.0, 0.0, 1.0],
            vec![
                UnitCost {
                    small: 1.0,
                    large: 10.0
                };
                4
            ],
        )
    }

    #[test]
    fn every_distinct_threshold_with_hand_computed_accuracy_and_cost() {
        let (conf, s, l, costs) = four();
        let pts = curve(&conf, &[0, 1, 2, 3], &costs, mean_score(&s, &l)).unwrap();
        // never, T=-1.0 (routes the -2.0), T=-0.5 (routes -2.0, -1.0, -1.0), always.
        let want = [
            (Policy::Never, None, 0, 0.50, 1000.0),
            (
                Policy::Below,
                Some(-1.0),
                1,
                0.75,
                1000.0 * (4.0 + 10.0) / 4.0,
            ),
            (
                Policy::Below,
                Some(-0.5),
                3,
                0.75,
                1000.0 * (4.0 + 30.0) / 4.0,
            ),
            (Policy::Always, None, 4, 0.75, 1000.0 * (4.0 + 40.0) / 4.0),
        ];
        assert_eq!(pts.len(), want.len());
        for (p, (pol, t, k, acc, cost)) in pts.iter().zip(want) {
            assert_eq!((p.policy, p.threshold, p.routed), (pol, t, k), "{p:?}");
            assert!(close(p.accuracy, acc), "{p:?}");
            assert!(close(p.cost_per_1k_usd, cost), "{p:?}");
            assert!(close(p.routed_share, k as f64 / 4.0));
        }
        // Target 0.75: the cheapest point reaching it is T = -1.0 ($3,500 per 1k).
        let c = choose(&pts, 0.75);
        assert_eq!(c.chosen, Some(1));
        assert_eq!(c.best, 1);
        assert_eq!(pts[1].threshold_label(), "-1.0000");
        // Target 0.5: never routing is cheapest.
        assert_eq!(choose(&pts, 0.5).chosen, Some(0));
    }

    #[test]
    fn an_unreachable_target_chooses_nothing_and_names_the_best_point() {
        let (conf, s, l, costs) = four();
        let pts = curve(&conf, &[0, 1, 2, 3], &costs, mean_score(&s, &l)).unwrap();
        let c = choose(&pts, 0.9);
        assert_eq!(c.chosen, None);
        // 0.75 is reached by three points; the cheapest of them.
        assert_eq!(c.best, 1);
        assert!(close(pts[c.best].accuracy, 0.75));
    }

    #[test]
    fn a_unit_pays_the_large_model_once_however_many_of_its_queries_are_routed() {
        // Two documents ($2 small, $30 large each) of two checks each.
        let conf = [0.4, 0.9, 0.6, 0.3];
        let unit = [0, 0, 1, 1];
        let costs = [UnitCost {
            small: 2.0,
            large: 30.0,
        }; 2];
        let s = [1.0, 1.0, 0.0, 0.0];
        let l = [0.0, 1.0, 1.0, 1.0];
        let pts = curve(&conf, &unit, &costs, mean_score(&s, &l)).unwrap();
        let th: Vec<Option<f64>> = pts.iter().map(|p| p.threshold).collect();
        assert_eq!(th, vec![None, Some(0.4), Some(0.6), Some(0.9), None]);
        // T=0.4 routes 0.3 (document 1): $2+$2+$30 over 2 documents.
        assert!(close(pts[1].cost_per_1k_usd, 1000.0 * 34.0 / 2.0));
        assert!(close(pts[1].accuracy, (1.0 + 1.0 + 0.0 + 1.0) / 4.0));
        // T=0.6 routes 0.3 and 0.4: both documents pay the large model.
        assert!(close(pts[2].cost_per_1k_usd, 1000.0 * 64.0 / 2.0));
        assert!(close(pts[2].accuracy, (0.0 + 1.0 + 0.0 + 1.0) / 4.0));
        // Always routing costs the same as T=0.6 here, and is the most accurate.
        assert!(close(pts[4].cost_per_1k_usd, pts[2].cost_per_1k_usd));
        assert!(close(pts[4].accuracy, 0.75));
        let c = choose(&pts, 0.75);
        // T=0.4 reaches 0.75 at $17,000 per 1k, the cheapest point that does.
        assert_eq!(c.chosen, Some(1));
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        let costs = [UnitCost {
            small: 1.0,
            large: 2.0,
        }];
        let acc = |_: &[bool]| Ok(1.0);
        let e = curve(&[], &[], &costs, acc).unwrap_err().to_string();
        assert!(e.contains("no queries"), "{e}");
        let e = curve(&[f64::NAN], &[0], &costs, acc)
            .unwrap_err()
            .to_string();
        assert!(e.contains("query 0"), "{e}");
        let e = curve(&[0.1], &[1], &costs, acc).unwrap_err().to_string();
        assert!(e.contains("unit 1"), "{e}");
        let e = curve(&[0.1], &[0, 0], &costs, acc).unwrap_err().to_string();
        assert!(e.contains("unit indices"), "{e}");
        let neg = [UnitCost {
            small: -1.0,
            large: 2.0,
        }];
        let e = curve(&[0.1], &[0], &neg, acc).unwrap_err().to_string();
        assert!(e.contains("not negative"), "{e}");
        let e = curve(&[0.1], &[0], &costs, |_: &[bool]| Ok(f64::NAN))
            .unwrap_err()
            .to_string();
        assert!(e.contains("accuracy"), "{e}");
    }
}
