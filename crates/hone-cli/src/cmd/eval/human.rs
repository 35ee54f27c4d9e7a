//! `hone eval human export|import` and `hone eval gate`.

use anyhow::Result;

#[derive(clap::Subcommand, Debug)]
pub enum HumanCmd {}

#[derive(clap::Args, Debug)]
pub struct GateArgs {}

pub fn run(h: HumanCmd) -> Result<()> {
    match h {}
}

pub fn gate(_g: GateArgs) -> Result<()> {
    anyhow::bail!("not built yet")
}
