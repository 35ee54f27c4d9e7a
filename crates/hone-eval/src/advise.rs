//! `hone advise`: fine-tune or prompt, as a cost model and the fit factors, with the reasons.
//!
//! Costs (every price an input; the defaults are the typical figures of issue 22, stated in
//! [`Prices::default`]):
//! - up front: data preparation (a fixed part, plus annotation per example) and training runs;
//! - per month, fine-tuned: serving infrastructure, maintenance (per quarter / 3) and the
//!   per-query cost of the small model;
//! - per month, frontier: the per-query API price.
//!
//! Break-even is the up-front cost over the monthly saving (frontier minus fine-tuned); none
//! when fine-tuning does not save per month. A month is 365/12 days.
//!
//! The recommendation (rules in [`advise`]): prompting when the task or the data do not fit
//! fine-tuning (fewer than 500 examples, a fast-changing domain, broad knowledge, a timeline of
//! days) or when it does not pay back within a year; fine-tuning when it pays back within a
//! year and the task fits; fine-tuning with routing of unsure cases to the larger model (the
//! hybrid) when it pays back but the task is open-ended generation.

use serde::{Deserialize, Serialize};

/// Days per month.
const MONTH_DAYS: f64 = 365.0 / 12.0;

/// What the task is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    Classification,
    Extraction,
    Generation,
}

/// Prices, in the currency of the inputs (USD in the defaults).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Prices {
    /// The frontier model's price per query.
    pub frontier_per_query: f64,
    /// The fine-tuned model's price per query (compute only; serving infrastructure is
    /// `serving_per_month`).
    pub finetuned_per_query: f64,
    /// Data preparation, fixed part (guidelines, tooling, review).
    pub data_prep: f64,
    /// Annotation per training example.
    pub annotation_per_example: f64,
    /// One training run.
    pub training_per_run: f64,
    /// Training runs until a version ships (tuning, retries).
    pub training_runs: u32,
    /// Serving infrastructure per month.
    pub serving_per_month: f64,
    /// Maintenance (monitoring, retraining, reviews) per quarter.
    pub maintenance_per_quarter: f64,
}

impl Default for Prices {
    /// The low end of issue 22's typical figures: data preparation $5,000-50,000, training
    /// $100-5,000 a run, serving $500-5,000 a month, maintenance $2,000-10,000 a quarter;
    /// frontier API $0.02 a query (a few thousand tokens in, a few hundred out) against $0.001
    /// for the small model's compute (20x cheaper, within the 10-50x of the issue).
    /// Annotation $2 an example.
    fn default() -> Self {
        Self {
            frontier_per_query: 0.02,
            finetuned_per_query: 0.001,
            data_prep: 5_000.0,
            annotation_per_example: 2.0,
            training_per_run: 100.0,
            training_runs: 3,
            serving_per_month: 500.0,
            maintenance_per_quarter: 2_000.0,
        }
    }
}

/// The fit factors (what favours fine-tuning, what favours prompting).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Fit {
    pub structured_output: bool,
    pub domain_terms: bool,
    pub private_data: bool,
    pub latency_critical: bool,
    pub fast_changing: bool,
    pub broad_knowledge: bool,
    /// Days until it must work (a timeline of under a week favours prompting).
    pub timeline_days: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Inputs {
    pub examples: usize,
    pub queries_per_day: f64,
    pub task_kind: TaskKind,
    pub prices: Prices,
    pub fit: Fit,
    /// Figures an evaluation or a pilot measured (`--from-eval`); their prices are already in
    /// `prices` where no flag overrode them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<crate::advise_measured::Measured>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recommendation {
    FineTune,
    Hybrid,
    Prompt,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Advice {
    pub inputs: Inputs,
    pub queries_per_month: f64,
    pub upfront: f64,
    pub finetuned_per_month: f64,
    pub frontier_per_month: f64,
    /// Frontier minus fine-tuned, per month (negative: fine-tuning costs more).
    pub saving_per_month: f64,
    pub saving_per_year: f64,
    /// The per-query prices' difference alone, per year (before serving and maintenance).
    pub api_saving_per_year: f64,
    /// Months until the up-front cost is paid back; None if it never is.
    pub break_even_months: Option<f64>,
    pub recommendation: Recommendation,
    /// Why, one line per factor that weighed.
    pub reasons: Vec<String>,
}

/// The cost model and the recommendation.
pub fn advise(inputs: Inputs) -> Advice {
    let p = &inputs.prices;
    let q = inputs.queries_per_day * MONTH_DAYS;
    let upfront = p.data_prep
        + p.annotation_per_example * inputs.examples as f64
        + p.training_per_run * f64::from(p.training_runs);
    let finetuned =
        p.serving_per_month + p.maintenance_per_quarter / 3.0 + q * p.finetuned_per_query;
    let frontier = q * p.frontier_per_query;
    let saving = frontier - finetuned;
    let api_saving = q * (p.frontier_per_query - p.finetuned_per_query) * 12.0;
    let break_even = (saving > 0.0).then(|| upfront / saving);

    let f = &inputs.fit;
    let mut against: Vec<String> = Vec::new();
    let mut for_ft: Vec<String> = Vec::new();
    if inputs.examples < 50 {
        against.push(format!(
            "{} examples: too few even for a pilot (50 or more, split 40/10)",
            inputs.examples
        ));
    } else if inputs.examples < 500 {
        against.push(format!(
            "{} examples: under 500; run `hone pilot` on them first: if 50 help noticeably, \
             500-2,000 will help substantially",
            inputs.examples
        ));
    } else {
        for_ft.push(format!(
            "{} labelled examples (500 or more)",
            inputs.examples
        ));
    }
    if f.fast_changing {
        against.push("a fast-changing domain: a fine-tune ages, a prompt is edited".into());
    }
    if f.broad_knowledge {
        against.push("the task needs broad world knowledge, which a small model lacks".into());
    }
    if let Some(d) = f.timeline_days.filter(|&d| d < 7) {
        against.push(format!(
            "{d} days to deliver: data and training take longer"
        ));
    }
    for (on, why) in [
        (f.structured_output, "consistent structured output"),
        (f.domain_terms, "domain terminology"),
        (
            f.private_data,
            "private data that should not leave the premises",
        ),
        (
            f.latency_critical,
            "latency (a small model answers 2-10x faster)",
        ),
        (
            inputs.task_kind != TaskKind::Generation,
            "a well-defined, repeated task (classification or extraction)",
        ),
    ] {
        if on {
            for_ft.push(why.to_string());
        }
    }
    // What an evaluation measured weighs too.
    let mut route_unsure = false;
    if let Some(m) = &inputs.measured {
        let lines = m.lines();
        for_ft.extend(lines.iter().cloned());
        against.extend(lines);
        if m.pilot_call == Some(crate::verdict::Call::NoClearGain) {
            against.push("the pilot found no clear gain from fine-tuning on these examples".into());
        }
        if let (Some(ft), Some(fr)) = (
            m.finetuned.as_ref().and_then(|a| a.score),
            m.frontier.as_ref().and_then(|a| a.score),
        ) {
            if ft < fr - 0.05 {
                route_unsure = true;
                for_ft.push(format!(
                    "the fine-tuned model scored {:.1} points below the frontier on the same \
                     examples: route what it is unsure of to the frontier (`hone serve --route`, \
                     the threshold from `hone eval route`)",
                    (fr - ft) * 100.0
                ));
            }
        }
    }
    let pays = match break_even {
        Some(m) if m <= 12.0 => {
            for_ft.push(format!(
                "pays back in {m:.1} months at {:.0} queries a day, then saves {:.0} a year",
                inputs.queries_per_day,
                saving * 12.0
            ));
            true
        }
        Some(m) => {
            against.push(format!(
                "pays back only after {m:.1} months at {:.0} queries a day",
                inputs.queries_per_day
            ));
            false
        }
        None => {
            against.push(format!(
                "never pays back: at {:.0} queries a day the fine-tuned model's monthly costs \
                 ({finetuned:.0}) exceed the frontier API's ({frontier:.0})",
                inputs.queries_per_day
            ));
            false
        }
    };
    let measured_lines = inputs.measured.as_ref().map_or(0, |m| m.lines().len());
    let recommendation = if against.len() > measured_lines || !pays {
        Recommendation::Prompt
    } else if route_unsure {
        Recommendation::Hybrid
    } else if inputs.task_kind == TaskKind::Generation {
        for_ft.push(
            "open-ended generation: route what the small model is unsure of to the larger \
             one (`hone serve --route`)"
                .into(),
        );
        Recommendation::Hybrid
    } else {
        Recommendation::FineTune
    };
    let reasons = match recommendation {
        Recommendation::Prompt => against,
        _ => for_ft,
    };
    Advice {
        inputs,
        queries_per_month: q,
        upfront,
        finetuned_per_month: finetuned,
        frontier_per_month: frontier,
        saving_per_month: saving,
        saving_per_year: saving * 12.0,
        api_saving_per_year: api_saving,
        break_even_months: break_even,
        recommendation,
        reasons,
    }
}

/// A per-query price to six decimals, trailing zeros dropped (0.12, 0.000017).
fn price(x: f64) -> String {
    let s = format!("{x:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s.to_string()
    }
}

impl Advice {
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let i = &self.inputs;
        let p = &i.prices;
        let mut o = String::new();
        let _ = writeln!(
            o,
            "inputs: {} examples, {:.0} queries a day ({:.0} a month), {:?} task",
            i.examples, i.queries_per_day, self.queries_per_month, i.task_kind
        );
        let _ = writeln!(
            o,
            "prices: frontier {} / query, fine-tuned {} / query, data preparation {} + {} / \
             example, training {} x {} runs, serving {} / month, maintenance {} / quarter",
            price(p.frontier_per_query),
            price(p.finetuned_per_query),
            p.data_prep,
            p.annotation_per_example,
            p.training_per_run,
            p.training_runs,
            p.serving_per_month,
            p.maintenance_per_quarter
        );
        let _ = writeln!(o, "up front: {:.0}", self.upfront);
        let _ = writeln!(
            o,
            "per month: fine-tuned {:.0}, frontier {:.0}, saving {:.0} ({:.0} a year; the \
             per-query prices alone {:.0} a year)",
            self.finetuned_per_month,
            self.frontier_per_month,
            self.saving_per_month,
            self.saving_per_year,
            self.api_saving_per_year
        );
        let _ = match self.break_even_months {
            Some(m) => writeln!(o, "break-even: {m:.1} months"),
            None => writeln!(o, "break-even: never (fine-tuning does not save per month)"),
        };
        let verdict = match self.recommendation {
            Recommendation::FineTune => "fine-tune",
            Recommendation::Hybrid => "fine-tune, and route unsure cases to the larger model",
            Recommendation::Prompt => "prompt a larger model",
        };
        let _ = writeln!(o, "recommendation: {verdict}, because:");
        for r in &self.reasons {
            let _ = writeln!(o, "  - {r}");
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(examples: usize, qpd: f64) -> Inputs {
        Inputs {
            examples,
            queries_per_day: qpd,
            task_kind: TaskKind::Classification,
            prices: Prices::default(),
            fit: Fit::default(),
            measured: None,
        }
    }

    #[test]
    fn the_law_firm_worked_example() {
        // 2,400 NDAs a month, one query per span (85 a contract, as a frontier model prompted
        // per span is asked), $0.12 against $0.006 per query.
        let contracts_per_month = 2_400.0;
        let mut i = inputs(6_200, contracts_per_month * 85.0 * 12.0 / 365.0);
        i.prices.frontier_per_query = 0.12;
        i.prices.finetuned_per_query = 0.006;
        let a = advise(i);
        assert!((a.queries_per_month - 204_000.0).abs() < 1e-6);
        // API cost saved: 204,000 x 0.114 = 23,256 a month = 279,072 a year; less serving
        // (500) and maintenance (2,000 / 3) a month.
        let api: f64 = 204_000.0 * 0.114 * 12.0;
        assert!((api - 279_072.0).abs() < 1e-6);
        assert!((a.api_saving_per_year - api).abs() < 1e-6);
        assert!((a.saving_per_year - (api - 12.0 * (500.0 + 2_000.0 / 3.0))).abs() < 1e-6);
        // Up front: 5,000 + 6,200 x 2 + 3 x 100 = 17,700; paid back in under a month.
        assert!((a.upfront - 17_700.0).abs() < 1e-9);
        let m = a.break_even_months.unwrap();
        assert!((m - 17_700.0 / (23_256.0 - 500.0 - 2_000.0 / 3.0)).abs() < 1e-9);
        assert!(m < 1.0);
        assert_eq!(a.recommendation, Recommendation::FineTune);
        let text = a.to_text();
        assert!(text.contains("break-even: 0.8 months"), "{text}");
        assert!(
            text.contains("the per-query prices alone 279072 a year"),
            "{text}"
        );
    }

    #[test]
    fn low_volume_never_pays_back_and_says_so() {
        // 20 queries a day at the defaults: frontier 12 a month, fine-tuned 500 + 667 + 0.6.
        let a = advise(inputs(2_000, 20.0));
        assert_eq!(a.break_even_months, None);
        assert!(a.saving_per_month < 0.0);
        assert_eq!(a.recommendation, Recommendation::Prompt);
        assert!(
            a.reasons.iter().any(|r| r.contains("never pays back")),
            "{:?}",
            a.reasons
        );
    }

    #[test]
    fn break_even_follows_volume_and_the_rules_follow_the_factors() {
        // Break-even: upfront / saving; doubling the volume more than halves it (fixed costs).
        let a = advise(inputs(1_000, 10_000.0));
        let b = advise(inputs(1_000, 20_000.0));
        let (ma, mb) = (a.break_even_months.unwrap(), b.break_even_months.unwrap());
        assert!(mb < ma / 2.0, "{ma} {mb}");
        assert_eq!(a.recommendation, Recommendation::FineTune);
        // Few examples, a fast-changing domain or a week's deadline: prompt, with the reason.
        for (mut i, why) in [
            (inputs(300, 10_000.0), "under 500"),
            (inputs(40, 10_000.0), "too few"),
            (
                Inputs {
                    fit: Fit {
                        fast_changing: true,
                        ..Fit::default()
                    },
                    ..inputs(1_000, 10_000.0)
                },
                "fast-changing",
            ),
            (
                Inputs {
                    fit: Fit {
                        timeline_days: Some(3),
                        ..Fit::default()
                    },
                    ..inputs(1_000, 10_000.0)
                },
                "3 days",
            ),
        ] {
            i.task_kind = TaskKind::Extraction;
            let a = advise(i);
            assert_eq!(a.recommendation, Recommendation::Prompt);
            assert!(
                a.reasons.iter().any(|r| r.contains(why)),
                "{why}: {:?}",
                a.reasons
            );
        }
        // Generation that pays back: the hybrid.
        let mut g = inputs(1_000, 10_000.0);
        g.task_kind = TaskKind::Generation;
        assert_eq!(advise(g).recommendation, Recommendation::Hybrid);
    }

    fn measured(
        ft: f64,
        fr: f64,
        call: Option<crate::verdict::Call>,
    ) -> crate::advise_measured::Measured {
        let arm = |name: &str, score: f64| crate::advise_measured::ArmFigures {
            name: name.into(),
            score: Some(score),
            per_query: Some(0.001),
            latency_p50_s: Some(0.5),
        };
        crate::advise_measured::Measured {
            source: "pilot.json".into(),
            metric: "accuracy".into(),
            examples: 10,
            task_kind: TaskKind::Classification,
            finetuned: Some(arm("fine-tuned", ft)),
            frontier: Some(arm("gpt", fr)),
            base: Some(arm("base", 0.2)),
            pilot_call: call,
        }
    }

    #[test]
    fn measured_quality_weighs_in() {
        let mut i = inputs(2_000, 10_000.0);
        // As good as the frontier: fine-tune, and the measured figures are among the reasons.
        i.measured = Some(measured(0.9, 0.92, None));
        let a = advise(i.clone());
        assert_eq!(a.recommendation, Recommendation::FineTune);
        assert!(
            a.reasons
                .iter()
                .any(|r| r.contains("measured on 10 held-out")),
            "{:?}",
            a.reasons
        );
        // Ten points behind: route unsure cases to the frontier.
        i.measured = Some(measured(0.8, 0.9, None));
        let a = advise(i.clone());
        assert_eq!(a.recommendation, Recommendation::Hybrid);
        assert!(
            a.reasons.iter().any(|r| r.contains("10.0 points below")),
            "{:?}",
            a.reasons
        );
        // A pilot without a clear gain: prompt.
        i.measured = Some(measured(0.9, 0.9, Some(crate::verdict::Call::NoClearGain)));
        let a = advise(i);
        assert_eq!(a.recommendation, Recommendation::Prompt);
        assert!(
            a.reasons.iter().any(|r| r.contains("no clear gain")),
            "{:?}",
            a.reasons
        );
    }
}
