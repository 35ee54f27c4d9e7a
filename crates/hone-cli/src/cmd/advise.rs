//! `hone advise`: fine-tune or prompt, from the volume, the data, the fit factors and prices
//! (`hone_eval::advise`). Every price is a flag with its documented default.

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use hone_eval::advise::{advise, Fit, Inputs, Prices, TaskKind};

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
    #[arg(long, value_enum, default_value = "classification")]
    task_kind: Kind,
    /// The frontier model's price per query.
    #[arg(long, default_value_t = Prices::default().frontier_per_query)]
    frontier_price: f64,
    /// The fine-tuned model's compute per query.
    #[arg(long, default_value_t = Prices::default().finetuned_per_query)]
    finetuned_price: f64,
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
    for (name, v) in [
        ("--queries-per-day", a.queries_per_day),
        ("--frontier-price", a.frontier_price),
        ("--finetuned-price", a.finetuned_price),
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
        task_kind: match a.task_kind {
            Kind::Classification => TaskKind::Classification,
            Kind::Extraction => TaskKind::Extraction,
            Kind::Generation => TaskKind::Generation,
        },
        prices: Prices {
            frontier_per_query: a.frontier_price,
            finetuned_per_query: a.finetuned_price,
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
    });
    if a.json {
        println!("{}", serde_json::to_string(&advice)?);
    } else {
        print!("{}", advice.to_text());
    }
    Ok(())
}
