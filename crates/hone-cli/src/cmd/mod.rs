//! One module per subcommand; each turns arguments into library calls and prints.

pub mod adapter;
pub mod advise;
pub mod args;
pub mod bench;
pub mod bench_curves;
pub mod bench_qa;
pub mod chat;
pub mod data;
pub mod deploy;
pub mod draft;
pub mod eval;
pub mod feedback;
pub mod generate;
pub mod log;
pub mod model;
pub mod ops;
pub mod pilot;
pub mod pilot_review;
pub mod pool;
pub mod qa_memorization;
pub mod quickstart;
pub mod registry;
pub mod retrain;
pub mod retrain_review;
pub mod review;
pub mod review_queue;
pub mod review_steps;
pub mod select;
pub mod select_review;
pub mod serve;
pub mod train;

use anyhow::{Context, Result};
use hone_model::{LoadOptions, LoadedModel, SamplingParams, WeightMode};

use self::args::{ModelArgs, SamplingArgs};
use self::bench::BenchCmd;
use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> Result<()> {
    if let Some(n) = cli.threads {
        anyhow::ensure!(n > 0, "--threads must be at least 1");
        hone_model::set_num_threads(n);
    }
    match cli.command {
        Command::Model(m) => model::run(m),
        Command::Generate(a) => generate::run(a),
        Command::Chat(a) => chat::run(a),
        Command::Data(c) => data::run(c),
        Command::Train(a) => train::run(a),
        Command::Adapter(c) => adapter::run(c),
        Command::Eval(a) => eval::run(a),
        Command::Review(a) => review::run(a),
        Command::Quickstart(a) => quickstart::run(a),
        Command::Advise(a) => advise::run(a),
        Command::Pilot(a) => pilot::run(a),
        Command::Bench(BenchCmd::Generate(a)) => bench::generate(a),
        Command::Bench(BenchCmd::Train(a)) => bench::train(a),
        Command::Bench(BenchCmd::Review(a)) => review::bench(a),
        Command::Bench(BenchCmd::Serve(a)) => serve::bench(a),
        Command::Bench(BenchCmd::Qa(a)) => bench_qa::run(a),
        Command::Bench(BenchCmd::LossCurves(a)) => bench_curves::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Registry(c) => registry::run(c),
        Command::Deploy(a) => deploy::run(a),
        Command::Log(c) => log::run(c),
        Command::Retrain(a) => retrain::run(a),
        Command::ReviewQueue(c) => review_queue::run(c),
    }
}

/// Loads the model named on the command line, with a spinner.
pub fn load_model(args: &ModelArgs) -> Result<LoadedModel> {
    let name = args.model.for_adapter(args.adapter.as_deref());
    let sp = indicatif::ProgressBar::new_spinner();
    sp.set_message(format!("loading {name}"));
    sp.enable_steady_tick(std::time::Duration::from_millis(120));
    let opts = LoadOptions {
        weights: if args.f32 {
            WeightMode::F32
        } else {
            WeightMode::Native
        },
    };
    let m = LoadedModel::load(&name, &opts).with_context(|| format!("cannot load model `{name}`"));
    sp.finish_and_clear();
    let mut m = m?;
    if let Some(dir) = &args.adapter {
        let a = hone_model::load_adapter(dir)
            .with_context(|| format!("cannot load adapter {}", dir.display()))?;
        m.model
            .attach_adapter(&a)
            .with_context(|| format!("adapter {} does not fit model `{name}`", dir.display()))?;
    }
    Ok(m)
}

pub fn sampling(a: &SamplingArgs) -> Result<SamplingParams> {
    let p = SamplingParams {
        temperature: a.temperature,
        top_k: a.top_k,
        top_p: a.top_p,
        seed: a.seed,
    };
    p.validate()?;
    Ok(p)
}
