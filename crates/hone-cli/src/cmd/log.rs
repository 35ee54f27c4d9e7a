//! `hone log export`: the request log as JSONL, for review, corrections and audits.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use hone_ops::request_log::LogQuery;

use super::args::StoreLocation;

#[derive(Subcommand, Debug)]
pub enum LogCmd {
    /// Write logged requests as JSONL (one object per request, oldest first).
    Export(ExportArgs),
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub store: StoreLocation,
    /// From this time: a UTC date or time (2026-12-01, 2026-12-01T08:30:00Z) or an age (24h, 7d).
    #[arg(long)]
    pub since: Option<String>,
    /// Up to (not including) this time, written the same way.
    #[arg(long)]
    pub until: Option<String>,
    /// Only requests for this model name.
    #[arg(long)]
    pub model: Option<String>,
    /// Write here (atomically) instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(c: LogCmd) -> Result<()> {
    match c {
        LogCmd::Export(a) => export(a),
    }
}

fn export(a: ExportArgs) -> Result<()> {
    let store = a.store.open()?;
    let now = hone_ops::now_secs();
    let ms = |v: &Option<String>, flag: &str| -> Result<Option<i64>> {
        v.as_deref()
            .map(|s| hone_ops::time::parse_time(s, now, flag).map(|t| t * 1000))
            .transpose()
            .map_err(Into::into)
    };
    let q = LogQuery {
        since_ms: ms(&a.since, "--since")?.unwrap_or(0),
        until_ms: ms(&a.until, "--until")?,
        model: a.model.clone(),
        after_id: 0,
        limit: 10_000,
    };
    let n = match &a.out {
        Some(p) => {
            let mut f = hone_model::atomic::AtomicFile::create(p)?;
            let n = write_rows(store.as_ref(), q, &mut f)?;
            f.commit()
                .with_context(|| format!("cannot write {}", p.display()))?;
            n
        }
        None => write_rows(store.as_ref(), q, &mut std::io::stdout().lock())?,
    };
    eprintln!("{n} requests exported from {}", store.describe());
    Ok(())
}

/// Pages through the rows `q` selects, one JSON object a line.
fn write_rows(store: &dyn hone_ops::Store, mut q: LogQuery, w: &mut impl Write) -> Result<u64> {
    let mut n = 0u64;
    loop {
        let rows = store.requests(&q)?;
        let Some(last) = rows.last() else { break };
        q.after_id = last.id;
        for r in &rows {
            serde_json::to_writer(&mut *w, r)?;
            w.write_all(b"\n")?;
            n += 1;
        }
    }
    w.flush()?;
    Ok(n)
}
