//! `hone advise`: fine-tune or prompt, from the volume, the data, the fit factors and prices
//! (`hone_eval::advise`). Every price is a flag with its documented default.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use hone_eval::advise::{advise, Fit, Inputs, Prices, TaskKind};
use hone_eval::advise_measured::{BenchFigures, Measured};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Kind {
    Classification,
    Extraction,
    Generation,
}

#[derive(Args, Debug)]
pub struct AdviseArgs {
    /// Labelled examples you have (or will have) for training.
    #[arg(long)]
    examples: usize,
    /// Queries a day the model would answer.
    #[arg(long)]
    queries_per_day: f64,
    /// The task (default: the --from-eval report's, else classification).
    #[arg(long, value_enum)]
    task_kind: Option<Kind>,
    /// The frontier model's price per query (default: measured by --from-eval when its
    /// endpoint reported usage and prices, else 0.02).
    #[arg(long)]
    frontier_price: Option<f64>,
    /// The fine-tuned model's compute per query (default: measured by --from-eval, the
    /// fine-tuned candidate's latency times the machine price, else 0.001).
    #[arg(long)]
    finetuned_price: Option<f64>,
    /// The figures an evaluation measured on this machine: a `report.json` of `hone eval` or a
    /// `pilot.json` of `hone pilot` (cost per query, latency, each arm's score).
    #[arg(long, value_name = "REPORT")]
    from_eval: Option<PathBuf>,
    /// This machine's speed, `hone bench generate --json > FILE`: a query's latency and
    /// compute cost from its prefill and decode tokens/s (used for the fine-tuned price when
    /// neither --finetuned-price nor --from-eval gives one).
    #[arg(long, value_name = "FILE")]
    from_bench: Option<PathBuf>,
    /// Prompt tokens of a typical query (with --from-bench).
    #[arg(long, default_value_t = 500)]
    prompt_tokens: u64,
    /// Answer tokens of a typical query (with --from-bench).
    #[arg(long, default_value_t = 50)]
    output_tokens: u64,
    /// What the machine serving the fine-tuned model costs per hour (with --from-bench).
    #[arg(long, default_value_t = 0.10, value_name = "USD")]
    usd_per_hour: f64,
    /// Data preparation, fixed part.
    #[arg(long, default_value_t = Prices::default().data_prep)]
    data_prep: f64,
    /// Annotation per example.
    #[arg(long, default_value_t = Prices::default().annotation_per_example)]
    annotation_per_example: f64,
    /// One training run.
    #[arg(long, default_value_t = Prices::default().training_per_run)]
    training_per_run: f64,
    /// Training runs until a version ships.
    #[arg(long, default_value_t = Prices::default().training_runs)]
    training_runs: u32,
    /// Serving infrastructure per month.
    #[arg(long, default_value_t = Prices::default().serving_per_month)]
    serving_per_month: f64,
    /// Maintenance per quarter.
    #[arg(long, default_value_t = Prices::default().maintenance_per_quarter)]
    maintenance_per_quarter: f64,
    /// The output must follow a fixed structure (JSON, labels).
    #[arg(long)]
    structured_output: bool,
    /// The domain has its own terminology.
    #[arg(long)]
    domain_terms: bool,
    /// The data must not leave your machines.
    #[arg(long)]
    private_data: bool,
    /// Latency matters (interactive use).
    #[arg(long)]
    latency_critical: bool,
    /// The domain changes fast (weekly new products, rules).
    #[arg(long)]
    fast_changing: bool,
    /// The task needs broad world knowledge.
    #[arg(long)]
    broad_knowledge: bool,
    /// Days until it must work.
    #[arg(long)]
    timeline_days: Option<u32>,
    /// One JSON object: the inputs, the costs, break-even and the recommendation.
    #[arg(long)]
    json: bool,
}

pub fn run(a: AdviseArgs) -> Result<()> {
    let measured = a
        .from_eval
        .as_deref()
        .map(|p| Measured::read(p).with_context(|| format!("--from-eval {}", p.display())))
        .transpose()?;
    let bench = a
        .from_bench
        .as_deref()
        .map(|p| BenchFigures::read(p).with_context(|| format!("--from-bench {}", p.display())))
        .transpose()?;
    if !(a.usd_per_hour.is_finite() && a.usd_per_hour >= 0.0) {
        bail!(
            "--usd-per-hour must be a number of at least 0, got {}",
            a.usd_per_hour
        );
    }
    let defaults = Prices::default();
    let frontier_price = a
        .frontier_price
        .or_else(|| measured.as_ref()?.frontier.as_ref()?.per_query)
        .unwrap_or(defaults.frontier_per_query);
    let finetuned_price = a
        .finetuned_price
        .or_else(|| measured.as_ref()?.finetuned.as_ref()?.per_query)
        .or_else(|| {
            let b = bench.as_ref()?;
            Some(b.per_query(a.prompt_tokens, a.output_tokens, a.usd_per_hour))
        })
        .unwrap_or(defaults.finetuned_per_query);
    for (name, v) in [
        ("--queries-per-day", a.queries_per_day),
        ("--frontier-price", frontier_price),
        ("--finetuned-price", finetuned_price),
        ("--data-prep", a.data_prep),
        ("--annotation-per-example", a.annotation_per_example),
        ("--training-per-run", a.training_per_run),
        ("--serving-per-month", a.serving_per_month),
        ("--maintenance-per-quarter", a.maintenance_per_quarter),
    ] {
        if !(v.is_finite() && v >= 0.0) {
            bail!("{name} must be a number of at least 0, got {v}");
        }
    }
    let advice = advise(Inputs {
        examples: a.examples,
        queries_per_day: a.queries_per_day,
        task_kind: match (a.task_kind, &measured) {
            (Some(Kind::Classification), _) => TaskKind::Classification,
            (Some(Kind::Extraction), _) => TaskKind::Extraction,
            (Some(Kind::Generation), _) => TaskKind::Generation,
            (None, Some(m)) => m.task_kind,
            (None, None) => TaskKind::Classification,
        },
        prices: Prices {
            frontier_per_query: frontier_price,
            finetuned_per_query: finetuned_price,
            data_prep: a.data_prep,
            annotation_per_example: a.annotation_per_example,
            training_per_run: a.training_per_run,
            training_runs: a.training_runs,
            serving_per_month: a.serving_per_month,
            maintenance_per_quarter: a.maintenance_per_quarter,
        },
        fit: Fit {
            structured_output: a.structured_output,
            domain_terms: a.domain_terms,
            private_data: a.private_data,
            latency_critical: a.latency_critical,
            fast_changing: a.fast_changing,
            broad_knowledge: a.broad_knowledge,
            timeline_days: a.timeline_days,
        },
        measured,
    });
    let bench_line = bench.as_ref().map(|b| {
        format!(
            "this machine ({}{}): prefill {:.0} tokens/s, decode {:.1} tokens/s; a query of {} + \
             {} tokens takes {:.2} s and costs {:.6} at {} an hour",
            b.source.display(),
            b.threads
                .map(|t| format!(", {t} threads"))
                .unwrap_or_default(),
            b.prefill_tok_s,
            b.decode_tok_s,
            a.prompt_tokens,
            a.output_tokens,
            b.latency_s(a.prompt_tokens, a.output_tokens),
            b.per_query(a.prompt_tokens, a.output_tokens, a.usd_per_hour),
            a.usd_per_hour
        )
    });
    if a.json {
        let mut v = serde_json::to_value(&advice)?;
        if let (Some(b), Some(line)) = (&bench, &bench_line) {
            v["bench"] = serde_json::json!({"figures": b, "summary": line});
        }
        println!("{}", serde_json::to_string(&v)?);
    } else {
        print!("{}", advice.to_text());
        if let Some(line) = bench_line {
            println!("measured: {line}");
        }
    }
    Ok(())
}
