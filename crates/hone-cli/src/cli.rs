//! Command-line arguments: the top level and the subcommands. Each command's own flags are
//! declared in its module (`cmd/<command>.rs`), the flags several share once in `cmd/args.rs`.

use clap::{Parser, Subcommand};

use crate::cmd::{
    adapter, advise, bench, chat, data, deploy, eval, generate, log, model, pilot, quickstart,
    registry, retrain, review, review_queue, serve, train,
};

#[derive(Parser, Debug)]
#[command(name = "hone", version, about = "Fine-tune, evaluate and serve small private LLMs", long_about = None)]
pub struct Cli {
    /// Worker threads for the CPU kernels (default: all cores).
    #[arg(long, global = true, env = "HONE_THREADS")]
    pub threads: Option<usize>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Fetch and list models in the local cache.
    #[command(subcommand)]
    Model(model::ModelCmd),
    /// Generate a completion for one prompt (only the completion goes to stdout).
    Generate(generate::GenerateArgs),
    /// Chat with a model in the terminal.
    Chat(chat::ChatArgs),
    /// Import, check, clean, split and synthesize training data.
    #[command(subcommand)]
    Data(data::DataCmd),
    /// LoRA adapters: merge into the base model, inspect.
    #[command(subcommand)]
    Adapter(adapter::AdapterCmd),
    /// Fine-tune a LoRA / QLoRA adapter from a run configuration (TOML).
    Train(train::TrainArgs),
    /// Evaluate candidates, score predictions, run human evaluation and deployment gates.
    Eval(eval::EvalArgs),
    /// The main job end to end on synthetic NDAs: data, base model, fine-tune, evaluate, review.
    Quickstart(quickstart::QuickstartArgs),
    /// Fine-tune or prompt: costs, break-even in months and a recommendation with its reasons.
    Advise(advise::AdviseArgs),
    /// Fine-tune or prompt, measured: train on 40 of 50+ examples, compare with the base model
    /// (and a frontier endpoint) on the rest, and judge the gain with its interval.
    Pilot(pilot::PilotArgs),
    /// Review NDAs: the 17 ContractNLI checks with evidence, and playbook deviations.
    Review(review::ReviewArgs),
    /// Serve the model and its adapters over an OpenAI-compatible HTTP API, and review
    /// contracts with a review adapter (`POST /v1/review`).
    Serve(serve::ServeArgs),
    /// The registry of adapter versions NAME@N: add, list, show, diff, remove.
    #[command(subcommand)]
    Registry(registry::RegistryCmd),
    /// Deploy a version as prod or as a canary; promote, roll back, status, events, policy.
    Deploy(deploy::DeployArgs),
    /// Train the next version of a name on its prod version's data plus new examples, compare,
    /// register, and open a canary when it is no worse.
    Retrain(retrain::RetrainArgs),
    /// The answers sampled for review: list, show, mark correct / wrong / critical.
    #[command(subcommand)]
    ReviewQueue(review_queue::ReviewQueueCmd),
    /// The request log a server keeps in the store: export it.
    #[command(subcommand)]
    Log(log::LogCmd),
    /// Measure speed.
    #[command(subcommand)]
    Bench(bench::BenchCmd),
}
