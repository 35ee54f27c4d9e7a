//! `hone registry add|list|show|diff|remove`: immutable adapter versions `NAME@N`, their files
//! stored by content hash, with what made them (base model, training config, data, metrics).

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use hone_ops::status::table;
use hone_ops::{format_utc, Version, VersionRef};
use sha2::{Digest, Sha256};

use super::args::StoreArgs;
use super::ops::Ops;

#[derive(Subcommand, Debug)]
pub enum RegistryCmd {
    /// Register an adapter folder as the next version of NAME: its files are copied into the
    /// store under their SHA-256, with the base model, training config, data and eval metrics.
    Add(AddArgs),
    /// List the versions of NAME (of every name without one).
    List(ListArgs),
    /// Show everything recorded of a version.
    Show(ShowArgs),
    /// Compare two versions: metrics side by side with their delta, and the base model,
    /// training config and data that differ.
    Diff(DiffArgs),
    /// Remove a version from the registry (refused while deployed; its number is not reused).
    Remove(RemoveArgs),
    /// The versions of NAME over time: training examples and task metrics, as a table and
    /// (--html) a page with a chart.
    History(HistoryArgs),
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    pub name: String,
    /// Also write an HTML page with an SVG chart here.
    #[arg(long)]
    pub html: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Args, Debug)]
pub struct AddArgs {
    /// The adapter's name (letters, digits, '-', '_', '.').
    pub name: String,
    /// The adapter folder (adapter_config.json + adapter_model.safetensors, and what `hone
    /// train`, `hone review` and `hone eval` put beside them). With --server, a folder under
    /// the server's adapter folders.
    pub adapter_dir: PathBuf,
    /// A note kept with the version.
    #[arg(long, default_value = "", hide_default_value = true)]
    pub notes: String,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    pub name: Option<String>,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    #[arg(value_name = "NAME@N")]
    pub version: String,
    /// The raw record as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    #[arg(value_name = "NAME@A")]
    pub a: String,
    #[arg(value_name = "NAME@B")]
    pub b: String,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Args, Debug)]
pub struct RemoveArgs {
    #[arg(value_name = "NAME@N")]
    pub version: String,
    #[command(flatten)]
    pub store: StoreArgs,
}

pub fn run(cmd: RegistryCmd) -> Result<()> {
    match cmd {
        RegistryCmd::Add(a) => add(a),
        RegistryCmd::History(a) => history(a),
        RegistryCmd::List(a) => list(a),
        RegistryCmd::Show(a) => show(a),
        RegistryCmd::Diff(a) => diff(a),
        RegistryCmd::Remove(a) => remove(a),
    }
}

fn add(a: AddArgs) -> Result<()> {
    let ops = Ops::open(&a.store)?;
    let v = ops.add(&a.name, &a.adapter_dir, &a.notes)?;
    let m = &v.meta;
    println!("registered {}", v.reference());
    let mut rows = vec![
        vec!["adapter sha256".to_string(), m.adapter_sha256.clone()],
        vec!["base model".to_string(), base(&v)],
        vec![
            "metrics".to_string(),
            match &m.metrics_source {
                Some(src) => format!("{} (from {src})", m.metrics.len()),
                None => "0 (no report.json or validation.json beside the adapter)".to_string(),
            },
        ],
        vec![
            "files".to_string(),
            format!(
                "{}, {}",
                m.files.len(),
                size(m.files.iter().map(|f| f.bytes).sum())
            ),
        ],
    ];
    if let Some(dir) = ops.object_dir(&v) {
        rows.push(vec!["stored in".to_string(), dir.display().to_string()]);
    }
    print!("{}", indent(&table(&rows)));
    Ok(())
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000 => format!("{:.1} MB", b as f64 / 1e6),
        b if b >= 1_000 => format!("{:.1} kB", b as f64 / 1e3),
        b => format!("{b} bytes"),
    }
}

fn base(v: &Version) -> String {
    let m = &v.meta;
    match &m.base_sha256 {
        Some(h) => format!("{} (sha256 {})", m.base_model, short(h)),
        None => m.base_model.clone(),
    }
}

fn short(h: &str) -> &str {
    &h[..h.len().min(12)]
}

/// The first two key metrics a version has (`hone_ops::history::KEY_METRICS`).
fn key_metrics(v: &Version) -> String {
    hone_ops::history::KEY_METRICS
        .iter()
        .filter_map(|k| hone_ops::history::key_metric(v, k).map(|x| format!("{k} {x:.3}")))
        .take(2)
        .collect::<Vec<_>>()
        .join(", ")
}

fn list(a: ListArgs) -> Result<()> {
    let ops = Ops::open(&a.store)?;
    let versions = ops.versions(a.name.as_deref())?;
    if versions.is_empty() {
        match &a.name {
            Some(n) => println!("no versions of {n} (hone registry add {n} ADAPTER_DIR)"),
            None => println!("the registry is empty (hone registry add NAME ADAPTER_DIR)"),
        }
        return Ok(());
    }
    let mut rows = vec![
        ["version", "created", "adapter", "base", "metrics", "notes"]
            .map(String::from)
            .to_vec(),
    ];
    for v in &versions {
        rows.push(vec![
            v.reference().to_string(),
            format_utc(v.created),
            short(&v.meta.adapter_sha256).to_string(),
            v.meta.base_model.clone(),
            key_metrics(v),
            v.meta.notes.lines().next().unwrap_or("").to_string(),
        ]);
    }
    print!("{}", table(&rows));
    Ok(())
}

fn show(a: ShowArgs) -> Result<()> {
    let r: VersionRef = a.version.parse()?;
    let ops = Ops::open(&a.store)?;
    let v = ops.version(&r)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    let m = &v.meta;
    println!("{}", v.reference());
    let mut rows = vec![
        vec!["created".to_string(), format_utc(v.created)],
        vec!["registered from".to_string(), m.source.clone()],
        vec!["adapter sha256".to_string(), m.adapter_sha256.clone()],
        vec!["base model".to_string(), m.base_model.clone()],
        vec![
            "base sha256".to_string(),
            m.base_sha256.clone().unwrap_or_else(|| "unknown".into()),
        ],
    ];
    if let Some(dir) = ops.object_dir(&v) {
        rows.push(vec!["stored in".to_string(), dir.display().to_string()]);
    }
    if !m.notes.is_empty() {
        rows.push(vec!["notes".to_string(), m.notes.clone()]);
    }
    rows.push(vec![
        "drift baseline".to_string(),
        m.baseline.as_ref().map(|b| b.summary()).unwrap_or_else(|| {
            format!(
                "none (no {} beside the adapter)",
                hone_ops::baseline::BASELINE_FILE
            )
        }),
    ]);
    print!("{}", indent(&table(&rows)));
    println!("files:");
    let files: Vec<Vec<String>> = m
        .files
        .iter()
        .map(|f| {
            vec![
                f.name.clone(),
                format!("{} bytes", f.bytes),
                f.sha256.clone(),
            ]
        })
        .collect();
    print!("{}", indent(&table(&files)));
    if !m.data.is_empty() {
        println!("training data:");
        let data: Vec<Vec<String>> = m
            .data
            .iter()
            .map(|d| {
                vec![
                    d.role.clone(),
                    d.path.clone(),
                    d.sha256
                        .clone()
                        .unwrap_or_else(|| "(no longer there)".into()),
                    d.examples
                        .map(|n| format!("{n} examples"))
                        .unwrap_or_default(),
                ]
            })
            .collect();
        print!("{}", indent(&table(&data)));
    }
    match &m.metrics_source {
        Some(src) => {
            println!("metrics (from {src}):");
            let rows: Vec<Vec<String>> = m
                .metrics
                .iter()
                .map(|(k, x)| vec![k.clone(), format!("{x}")])
                .collect();
            print!("{}", indent(&table(&rows)));
        }
        None => println!("metrics: none"),
    }
    match &m.train_config {
        Some(c) => {
            println!("training config (sha256 {}):", short(&sha256(c)));
            print!("{}", indent(c));
        }
        None => println!("training config: none"),
    }
    Ok(())
}

fn sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn diff(a: DiffArgs) -> Result<()> {
    let (ra, rb): (VersionRef, VersionRef) = (a.a.parse()?, a.b.parse()?);
    let ops = Ops::open(&a.store)?;
    let (va, vb) = (ops.version(&ra)?, ops.version(&rb)?);
    let num = |x: Option<f64>| x.map(|x| format!("{x:.4}")).unwrap_or_else(|| "-".into());
    let metrics = hone_ops::registry::diff_metrics(&va, &vb);
    if metrics.is_empty() {
        println!("metrics: neither version has any");
    } else {
        let mut rows = vec![vec![
            "metric".to_string(),
            ra.to_string(),
            rb.to_string(),
            "delta".to_string(),
        ]];
        for (name, x, y) in metrics {
            rows.push(vec![
                name,
                num(x),
                num(y),
                match (x, y) {
                    (Some(x), Some(y)) => format!("{:+.4}", y - x),
                    _ => "-".into(),
                },
            ]);
        }
        print!("{}", table(&rows));
    }
    let (ma, mb) = (&va.meta, &vb.meta);
    let mut diffs: Vec<Vec<String>> = Vec::new();
    let mut differs = |what: &str, x: String, y: String| {
        if x != y {
            diffs.push(vec![what.to_string(), x, "->".into(), y]);
        }
    };
    let opt = |s: &Option<String>| s.as_deref().map(short).unwrap_or("none").to_string();
    differs(
        "adapter sha256",
        short(&ma.adapter_sha256).into(),
        short(&mb.adapter_sha256).into(),
    );
    differs("base model", ma.base_model.clone(), mb.base_model.clone());
    differs("base sha256", opt(&ma.base_sha256), opt(&mb.base_sha256));
    differs(
        "training config sha256",
        opt(&ma.train_config.as_deref().map(sha256)),
        opt(&mb.train_config.as_deref().map(sha256)),
    );
    for role in ["train", "validation"] {
        let data = |m: &hone_ops::version::VersionMeta| {
            m.data
                .iter()
                .find(|d| d.role == role)
                .map(|d| format!("{} {}", d.path, opt(&d.sha256)))
                .unwrap_or_else(|| "none".into())
        };
        differs(&format!("{role} data"), data(ma), data(mb));
    }
    println!();
    if diffs.is_empty() {
        println!("same adapter, base model, training config and data");
    } else {
        println!("differs:");
        print!("{}", indent(&table(&diffs)));
    }
    Ok(())
}

fn remove(a: RemoveArgs) -> Result<()> {
    let r: VersionRef = a.version.parse()?;
    let ops = Ops::open(&a.store)?;
    ops.remove(&r)?;
    println!("removed {r} (its number is not reused)");
    Ok(())
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.trim().is_empty() {
                "\n".to_string()
            } else {
                format!("  {l}\n")
            }
        })
        .collect()
}

fn history(a: HistoryArgs) -> Result<()> {
    let ops = Ops::open(&a.store)?;
    let versions = ops.versions(Some(&a.name))?;
    anyhow::ensure!(
        !versions.is_empty(),
        "{} has no versions in the registry",
        a.name
    );
    print!("{}", hone_ops::history::table(&versions));
    if let Some(p) = &a.html {
        hone_model::atomic::write_file(p, hone_ops::history::html(&a.name, &versions).as_bytes())?;
        println!("chart: {}", p.display());
    }
    Ok(())
}
