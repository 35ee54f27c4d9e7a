//! `hone eval route`: the accuracy / cost curve of confidence routing between a small and a
//! large arm, and the threshold that reaches a target accuracy at least cost
//! ([`hone_eval::route_curve`]).
//!
//! Two sources:
//! - an evaluation run: `--report DIR/report.json --small NAME --large NAME`; a query is an
//!   example, the confidence the small answer's mean token log-probability, the accuracy the
//!   mean per-answer score ([`hone_eval::item_score`]), the costs the candidates'
//!   `cost_per_1k_usd` unless given;
//! - ContractNLI review predictions: `--gold G --small-pred P1 --large-pred P2`; a query is a
//!   check of a document, the confidence the small prediction's largest label probability, the
//!   accuracy `hone eval contractnli`'s NLI accuracy, the cost unit a document, priced from each
//!   line's review time at `--usd-per-hour` unless given per 1,000 documents.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use hone_eval::contractnli;
use hone_eval::route_curve::{self, UnitCost};
use hone_eval::route_eval::{eval_queries, EvalRun};
use hone_eval::route_report::{self, RouteReport};

/// The machine price for review predictions when none is given, USD per hour.
const DEFAULT_USD_PER_HOUR: f64 = 0.10;

/// Accuracy / cost curve of routing low-confidence queries from a small to a large model.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["report", "gold"])))]
pub struct Args {
    /// An evaluation run: `report.json` written by `hone eval` (or its folder); the answers are
    /// read from `outputs.jsonl` beside it.
    #[arg(long, value_name = "PATH", requires_all = ["small", "large"])]
    pub report: Option<PathBuf>,
    /// With --report: the candidate that answers first (a local model: its confidence is the
    /// mean token log-probability of its answer).
    #[arg(long, value_name = "NAME", requires = "report")]
    pub small: Option<String>,
    /// With --report: the candidate that answers the routed queries.
    #[arg(long, value_name = "NAME", requires = "report")]
    pub large: Option<String>,
    /// ContractNLI gold documents (official JSON or documents.jsonl), to route `hone review`
    /// predictions per check.
    #[arg(long, value_name = "PATH", requires_all = ["small_pred", "large_pred"])]
    pub gold: Option<PathBuf>,
    /// With --gold: the small reviewer's predictions (`hone review --format jsonl`, with label
    /// probabilities), as [NAME=]PATH.
    #[arg(long, value_name = "[NAME=]PATH", requires = "gold")]
    pub small_pred: Option<String>,
    /// With --gold: the large reviewer's predictions, as [NAME=]PATH.
    #[arg(long, value_name = "[NAME=]PATH", requires = "gold")]
    pub large_pred: Option<String>,
    /// The accuracy to reach (0 to 1); default: the large arm's own accuracy.
    #[arg(long, value_name = "ACC")]
    pub target: Option<f64>,
    /// The small arm's cost per 1,000 queries (--report) or documents (--gold), USD; default:
    /// the candidate's cost in the report, or the predictions' review time at --usd-per-hour.
    #[arg(long, value_name = "USD")]
    pub small_cost_per_1k: Option<f64>,
    /// The large arm's cost per 1,000 queries or documents, USD (default as --small-cost-per-1k).
    #[arg(long, value_name = "USD")]
    pub large_cost_per_1k: Option<f64>,
    /// With --gold: the machine price that turns review time into cost [default: 0.10].
    #[arg(long, value_name = "USD", requires = "gold")]
    pub usd_per_hour: Option<f64>,
    /// Print the whole curve as JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also write route.json, route.md and route.html (with the charts) into this folder.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// A non-negative, finite amount given on the command line.
fn amount(flag: &str, v: Option<f64>) -> Result<Option<f64>> {
    match v {
        Some(x) if !(x.is_finite() && x >= 0.0) => {
            bail!("--{flag} {x}: must be a finite amount, not negative")
        }
        _ => Ok(v),
    }
}

/// Runs `hone eval route`.
pub fn run(a: Args) -> Result<()> {
    let r = report(&a)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        print!("{}", route_report::markdown(&r));
    }
    if let Some(dir) = &a.out {
        let f = route_report::write_all(&r, dir)
            .with_context(|| format!("--out: cannot write the report to {}", dir.display()))?;
        let s = format!(
            "reports: {}\n         {}\n         {}",
            f.html.display(),
            f.markdown.display(),
            f.json.display()
        );
        if a.json {
            eprintln!("{s}");
        } else {
            println!("\n{s}");
        }
    }
    Ok(())
}

fn report(a: &Args) -> Result<RouteReport> {
    if let Some(t) = a.target {
        if !(0.0..=1.0).contains(&t) {
            bail!("--target {t}: an accuracy between 0 and 1");
        }
    }
    let small_cost = amount("small-cost-per-1k", a.small_cost_per_1k)?;
    let large_cost = amount("large-cost-per-1k", a.large_cost_per_1k)?;
    match (&a.report, &a.gold) {
        (Some(path), _) => from_eval_run(a, path, small_cost, large_cost),
        (None, Some(gold)) => from_reviews(a, gold, small_cost, large_cost),
        (None, None) => bail!("give --report (an evaluation run) or --gold (review predictions)"),
    }
}

/// The chosen point for `--target`, by default the large arm's own accuracy (the last point).
fn choice(points: &[route_curve::RoutePoint], target: Option<f64>) -> route_curve::Choice {
    let large = points.last().map(|p| p.accuracy).unwrap_or(1.0);
    route_curve::choose(points, target.unwrap_or(large))
}

fn from_eval_run(
    a: &Args,
    path: &std::path::Path,
    small_cost: Option<f64>,
    large_cost: Option<f64>,
) -> Result<RouteReport> {
    let (small, large) = (
        a.small.as_deref().unwrap_or_default(),
        a.large.as_deref().unwrap_or_default(),
    );
    let run = EvalRun::read(path)?;
    let q = eval_queries(&run, small, large)?;
    let cost_of = |name: &str, given: Option<f64>, flag: &str| -> Result<(f64, bool)> {
        if let Some(c) = given {
            return Ok((c, true));
        }
        let c = run
            .report
            .candidates
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.cost_per_1k_usd);
        match c {
            Some(c) if c.is_finite() && c >= 0.0 => Ok((c, false)),
            _ => bail!(
                "candidate `{name}` has no cost per 1,000 queries in {} (an endpoint without \
                 token prices?); pass --{flag} USD",
                run.report_path.display()
            ),
        }
    };
    let (sc, s_given) = cost_of(small, small_cost, "small-cost-per-1k")?;
    let (lc, l_given) = cost_of(large, large_cost, "large-cost-per-1k")?;
    let unit: Vec<usize> = (0..q.ids.len()).collect();
    let costs = vec![
        UnitCost {
            small: sc / 1000.0,
            large: lc / 1000.0,
        };
        q.ids.len()
    ];
    let points = route_curve::curve(
        &q.confidence,
        &unit,
        &costs,
        route_curve::mean_score(&q.small_scores, &q.large_scores),
    )?;
    let source = |given: bool| if given { "given" } else { "report.json" };
    Ok(RouteReport {
        source: run.report_path.display().to_string(),
        small: small.to_string(),
        large: large.to_string(),
        confidence: "mean token log-probability of the small answer".into(),
        accuracy: hone_eval::item_score::name(run.report.task.kind).into(),
        query: "query".into(),
        unit: "query".into(),
        queries: q.ids.len(),
        units: q.ids.len(),
        small_cost_per_1k_usd: sc,
        large_cost_per_1k_usd: lc,
        cost_source: format!(
            "small ${} per 1,000 ({}), large ${} per 1,000 ({})",
            route_report::usd(sc),
            source(s_given),
            route_report::usd(lc),
            source(l_given)
        ),
        choice: choice(&points, a.target),
        points,
    })
}

fn from_reviews(
    a: &Args,
    gold_path: &std::path::Path,
    small_cost: Option<f64>,
    large_cost: Option<f64>,
) -> Result<RouteReport> {
    let usd_per_hour = amount("usd-per-hour", a.usd_per_hour)?.unwrap_or(DEFAULT_USD_PER_HOUR);
    let parse = |flag: &str, v: &Option<String>| -> Result<(String, PathBuf)> {
        let v = v.as_deref().unwrap_or_default();
        contractnli::parse_candidate(v).with_context(|| format!("--{flag} {v}"))
    };
    let (small_name, small_path) = parse("small-pred", &a.small_pred)?;
    let (large_name, large_path) = parse("large-pred", &a.large_pred)?;
    let gold = contractnli::read_gold(gold_path)?;
    let (small, small_t) = contractnli::read_predictions_timed(&small_path)?;
    let (large, large_t) = contractnli::read_predictions_timed(&large_path)?;
    // Per small document: what each arm costs for it, USD.
    let large_index: std::collections::HashMap<&str, usize> = large
        .docs
        .iter()
        .enumerate()
        .map(|(i, d)| (d.doc_id.as_str(), i))
        .collect();
    let doc_cost = |p: &contractnli::Predictions,
                    t: &[Option<contractnli::DocTiming>],
                    i: usize,
                    given: Option<f64>,
                    flag: &str|
     -> Result<f64> {
        if let Some(c) = given {
            return Ok(c / 1000.0);
        }
        match t.get(i).copied().flatten() {
            Some(t) => Ok(t.total_ms / 3.6e6 * usd_per_hour),
            None => bail!(
                "{}:{}: field `timing.total_ms`: no review time to price document `{}`; pass \
                 --{flag} USD",
                p.path.display(),
                p.docs[i].line,
                p.docs[i].doc_id
            ),
        }
    };
    let mut costs = Vec::with_capacity(small.docs.len());
    for (i, d) in small.docs.iter().enumerate() {
        let s = doc_cost(&small, &small_t, i, small_cost, "small-cost-per-1k")?;
        // A document the large file lacks is reported by the pairing below.
        let l = match large_index.get(d.doc_id.as_str()) {
            Some(&j) => doc_cost(&large, &large_t, j, large_cost, "large-cost-per-1k")?,
            None => 0.0,
        };
        costs.push(UnitCost { small: s, large: l });
    }
    let (q, points) =
        contractnli::review_curve(&gold, &small, &large, &costs).with_context(|| {
            format!(
                "routing {} to {} against --gold {}",
                small_path.display(),
                large_path.display(),
                gold_path.display()
            )
        })?;
    let n = costs.len().max(1) as f64;
    let sc = 1000.0 * costs.iter().map(|c| c.small).sum::<f64>() / n;
    let lc = 1000.0 * costs.iter().map(|c| c.large).sum::<f64>() / n;
    let how = |given: Option<f64>| match given {
        Some(_) => "given".to_string(),
        None => format!("review time at ${usd_per_hour}/h"),
    };
    Ok(RouteReport {
        source: format!(
            "{small_name}={}, {large_name}={} against {}",
            small_path.display(),
            large_path.display(),
            gold_path.display()
        ),
        small: small_name,
        large: large_name,
        confidence: "largest label probability of the small prediction".into(),
        accuracy: "NLI accuracy".into(),
        query: "check".into(),
        unit: "document".into(),
        queries: q.confidence.len(),
        units: costs.len(),
        small_cost_per_1k_usd: sc,
        large_cost_per_1k_usd: lc,
        cost_source: format!(
            "small ${} per 1,000 documents ({}), large ${} ({}); a document with a routed check pays the large review",
            route_report::usd(sc),
            how(small_cost),
            route_report::usd(lc),
            how(large_cost)
        ),
        choice: choice(&points, a.target),
        points,
    })
}
