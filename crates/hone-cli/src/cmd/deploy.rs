//! `hone deploy NAME@N [--canary PERCENT]` and `hone deploy promote|rollback|status|events|
//! policy NAME`: which registered version answers the requests for a name.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use hone_ops::deployment::Change;
use hone_ops::status::table;
use hone_ops::{format_utc, VersionRef};

use super::args::StoreArgs;
use super::ops::Ops;

// `hone deploy NAME@N` or `hone deploy SUBCOMMAND`: the positional form and the subcommands
// share the word, so a subcommand excludes the positional's arguments.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, arg_required_else_help = true)]
pub struct DeployArgs {
    #[command(subcommand)]
    pub cmd: Option<DeployCmd>,
    /// The version to make prod (or, with --canary, to start as a canary): NAME@N. Its stored
    /// files are checked and its adapter loaded first.
    #[arg(value_name = "NAME@N")]
    pub version: Option<String>,
    /// Start NAME@N as a canary answering PERCENT of NAME's requests (0 < PERCENT < 100);
    /// prod stays as it is.
    #[arg(long, value_name = "PERCENT")]
    pub canary: Option<f64>,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Subcommand, Debug)]
pub enum DeployCmd {
    /// Make NAME's canary its prod version (the old prod is kept for a rollback).
    Promote(NameArgs),
    /// End NAME's canary (prod untouched); without a canary, put the previous prod back.
    Rollback(NameArgs),
    /// NAME's deployment and rollback policy; with --server, the live numbers of canary and
    /// prod with significance tests, and the policy's verdict.
    Status(StatusArgs),
    /// What happened to NAME: deploys, canaries, promotions, rollbacks (oldest first).
    Events(EventsArgs),
    /// Set NAME's rollback policy from a TOML file (checked before it is stored).
    Policy(PolicyArgs),
}

#[derive(Args, Debug)]
pub struct NameArgs {
    pub name: String,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    pub name: String,
    /// The status as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    pub name: String,
    /// The newest this many events.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Args, Debug)]
pub struct PolicyArgs {
    pub name: String,
    /// The policy (TOML: min_requests, expect_json, [gates], [promote]).
    pub file: PathBuf,
    #[command(flatten)]
    pub store: StoreArgs,
}

pub fn run(a: DeployArgs) -> Result<()> {
    match a.cmd {
        Some(DeployCmd::Promote(n)) => change(&n.store, &n.name, Change::Promote),
        Some(DeployCmd::Rollback(n)) => change(&n.store, &n.name, Change::Rollback),
        Some(DeployCmd::Status(s)) => status(s),
        Some(DeployCmd::Events(e)) => events(e),
        Some(DeployCmd::Policy(p)) => policy(p),
        None => {
            let Some(v) = a.version else {
                bail!("give a version (hone deploy NAME@N) or a subcommand (hone deploy --help)");
            };
            let r: VersionRef = v.parse()?;
            let c = match a.canary {
                Some(percent) => Change::Canary {
                    version: r.version,
                    percent,
                },
                None => Change::Prod(r.version),
            };
            change(&a.store, &r.name, c)
        }
    }
}

fn change(store: &StoreArgs, name: &str, c: Change) -> Result<()> {
    let ops = Ops::open(store)?;
    let (_, ev) = ops.change(name, &c)?;
    println!("{}", ev.message);
    Ok(())
}

fn status(a: StatusArgs) -> Result<()> {
    let ops = Ops::open(&a.store)?;
    let s = ops.status(&a.name)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        print!("{}", hone_ops::status::render(&s));
    }
    Ok(())
}

fn events(a: EventsArgs) -> Result<()> {
    let ops = Ops::open(&a.store)?;
    let evs = ops.events(&a.name, a.limit)?;
    if evs.is_empty() {
        println!("no events for {}", a.name);
        return Ok(());
    }
    let mut rows = vec![["time", "kind", "actor", "what"].map(String::from).to_vec()];
    for e in evs {
        rows.push(vec![format_utc(e.time), e.kind, e.actor, e.message]);
    }
    print!("{}", table(&rows));
    Ok(())
}

fn policy(a: PolicyArgs) -> Result<()> {
    let ops = Ops::open(&a.store)?;
    let p = ops.set_policy(&a.name, &a.file)?;
    println!(
        "policy of {} set from {}: judged from {} canary requests, {} gate(s){}",
        a.name,
        a.file.display(),
        p.min_requests,
        [
            p.gates.max_error_rate,
            p.gates.max_error_rate_increase,
            p.gates.max_p95_latency_ms,
            p.gates.max_p95_latency_ratio,
            p.gates.max_parse_failure_rate,
            p.gates.max_logprob_drop,
        ]
        .iter()
        .flatten()
        .count(),
        if p.promote.auto {
            format!(
                ", promotes by itself after {} requests",
                p.promote.min_requests
            )
        } else {
            String::new()
        }
    );
    if !ops.is_server() {
        println!("(a running hone serve picks it up and judges canaries by it)");
    }
    Ok(())
}
