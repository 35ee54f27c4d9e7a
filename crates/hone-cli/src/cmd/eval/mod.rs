//! `hone eval`: run candidates on an evaluation file and report; score ContractNLI predictions;
//! blind human evaluation; deployment gates; routing curves.

pub mod contractnli;
pub mod human;
pub mod route;
pub mod run;

use anyhow::Result;
use clap::{Args, Subcommand};

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EvalArgs {
    #[command(subcommand)]
    pub sub: Option<EvalSub>,
    #[command(flatten)]
    pub run: run::RunArgs,
}

#[derive(Subcommand, Debug)]
pub enum EvalSub {
    /// Score `hone review` predictions against ContractNLI gold documents.
    Contractnli(contractnli::Args),
    /// Blind human evaluation: export a rating packet, import the ratings.
    #[command(subcommand)]
    Human(human::HumanCmd),
    /// Accuracy / cost curve of routing low-confidence queries from a small to a large model,
    /// and the threshold that reaches a target accuracy at least cost.
    Route(route::Args),
    /// Check the deployment gates on imported human ratings; exits non-zero on fail.
    Gate(human::GateArgs),
}

pub fn run(a: EvalArgs) -> Result<()> {
    match a.sub {
        Some(EvalSub::Contractnli(c)) => contractnli::run(c),
        Some(EvalSub::Human(h)) => human::run(h),
        Some(EvalSub::Gate(g)) => human::gate(g),
        Some(EvalSub::Route(r)) => route::run(r),
        None => run::run(a.run),
    }
}
