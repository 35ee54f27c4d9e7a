//! `hone eval human export|import` and `hone eval gate`.

use std::path::PathBuf;

use anyhow::Result;
use hone_eval::gate::{check_gates, GateConfig};
use hone_eval::human::{self, ExportOptions, HumanReport};

/// Blind human evaluation.
#[derive(clap::Subcommand, Debug)]
pub enum HumanCmd {
    /// Write a blind rating packet: index.html (send this to reviewers), items.json, and
    /// key.json (keep it: it maps Output A/B/... back to the candidates; never send it out).
    Export(ExportArgs),
    /// Read reviewers' ratings.json files back, de-anonymise them with the packet's key.json and
    /// report mean scores, critical failures and pairwise win rates (95% Wilson intervals).
    Import(ImportArgs),
}

/// `hone eval human export`.
#[derive(clap::Args, Debug)]
pub struct ExportArgs {
    /// The outputs.jsonl written by `hone eval`.
    #[arg(long)]
    pub outputs: PathBuf,
    /// Candidates to compare, comma-separated (default: all in the file).
    #[arg(long, value_delimiter = ',')]
    pub candidates: Option<Vec<String>>,
    /// At most this many examples (a seeded sample when there are more).
    #[arg(long, default_value_t = 50)]
    pub n: usize,
    /// Seed of the sample and of each item's shuffle of outputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The packet folder to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Overwrite a folder that holds another packet's key.json.
    #[arg(long)]
    pub force: bool,
}

/// `hone eval human import`.
#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// The packet folder (with items.json and key.json).
    #[arg(long)]
    pub packet: PathBuf,
    /// The reviewers' ratings.json files, one per reviewer.
    #[arg(long, num_args = 1.., required = true)]
    pub ratings: Vec<PathBuf>,
    /// Print the report as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Where to write the report (default: PACKET/human_report.json).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `hone eval gate`: deployment gates on a human report.
#[derive(clap::Args, Debug)]
pub struct GateArgs {
    /// The human_report.json written by `hone eval human import`.
    #[arg(long)]
    pub human: PathBuf,
    /// The fine-tuned candidate.
    #[arg(long, default_value = "finetuned")]
    pub finetuned: String,
    /// The base model candidate.
    #[arg(long, default_value = "base")]
    pub base: String,
    /// The frontier endpoint candidate [default: frontier; its gate is skipped when the report
    /// has no such candidate, and an error when this is given and missing].
    #[arg(long)]
    pub frontier: Option<String>,
    /// The fine-tune must beat the base in more than this share of comparisons.
    #[arg(long, default_value_t = 0.6)]
    pub min_win_base: f64,
    /// The fine-tune must beat the frontier in more than this share of comparisons.
    #[arg(long, default_value_t = 0.4)]
    pub min_win_frontier: f64,
    /// The most critical-failure flags the fine-tune may have.
    #[arg(long, default_value_t = 0)]
    pub max_critical: usize,
    /// Print the gates as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `hone eval human ...`.
pub fn run(h: HumanCmd) -> Result<()> {
    match h {
        HumanCmd::Export(a) => export(a),
        HumanCmd::Import(a) => import(a),
    }
}

fn export(a: ExportArgs) -> Result<()> {
    let opts = ExportOptions {
        candidates: a.candidates,
        n: a.n,
        seed: a.seed,
        force: a.force,
    };
    let s = human::export(&a.outputs, &a.out, &opts)?;
    say(&format!(
        "packet {}: {} of {} examples × {} candidates ({}) in {}\n",
        s.packet_id,
        s.items,
        s.available,
        s.candidates.len(),
        s.candidates.join(", "),
        s.dir.display()
    ))?;
    say(&format!(
        "send reviewers {} only; keep {} private (it de-anonymises the outputs)\n",
        s.dir.join(human::PAGE_FILE).display(),
        s.dir.join(human::KEY_FILE).display()
    ))?;
    say(&format!(
        "then: hone eval human import --packet {} --ratings ratings*.json\n",
        s.dir.display()
    ))
}

fn import(a: ImportArgs) -> Result<()> {
    let report = human::import(&a.packet, &a.ratings)?;
    let out = a.out.unwrap_or_else(|| a.packet.join("human_report.json"));
    report.save(&out)?;
    if a.json {
        say(&(serde_json::to_string_pretty(&report)? + "\n"))
    } else {
        say(&render_report(&report))?;
        say(&format!("report written to {}\n", out.display()))
    }
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
fn say(text: &str) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

fn pct(v: Option<f64>) -> String {
    v.map(|v| format!("{:.1}%", v * 100.0))
        .unwrap_or_else(|| "–".into())
}

fn num(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "–".into())
}

/// The report as text tables.
fn render_report(r: &HumanReport) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "packet {}: {} items, {} reviewer(s) ({})\n",
        r.packet_id,
        r.items,
        r.reviewers.len(),
        r.reviewers.join(", ")
    );
    let w = r
        .candidates
        .iter()
        .map(|c| c.len())
        .max()
        .unwrap_or(9)
        .max(9);
    let _ = writeln!(
        s,
        "{:<w$}  {:>8}  {:>12}  {:>6}  {:>7}  {:>8}",
        "mean 1–5", "accuracy", "completeness", "format", "overall", "critical"
    );
    for c in &r.scores {
        let _ = writeln!(
            s,
            "{:<w$}  {:>8}  {:>12}  {:>6}  {:>7}  {:>8}",
            c.candidate,
            num(c.accuracy.mean),
            num(c.completeness.mean),
            num(c.format.mean),
            num(c.overall.mean),
            c.critical_failures
        );
    }
    let _ = writeln!(s, "\nwin rates (ties count half; 95% Wilson interval)");
    for (i, x) in r.candidates.iter().enumerate() {
        for y in r.candidates.iter().skip(i + 1) {
            if let Some(wr) = r.win(x, y) {
                let _ = writeln!(
                    s,
                    "  {x} vs {y}: {} [{}, {}]  {}W/{}T/{}L of {}",
                    pct(wr.win_rate),
                    pct(wr.ci_low),
                    pct(wr.ci_high),
                    wr.wins,
                    wr.ties,
                    wr.losses,
                    wr.comparisons
                );
            }
        }
    }
    let m = &r.missing;
    if m.incomplete > 0 {
        let _ = writeln!(
            s,
            "\nmissing: {} of {} outputs not fully rated (left out of overall scores and win rates)",
            m.incomplete, m.expected
        );
        for d in m.details.iter().take(10) {
            let _ = writeln!(
                s,
                "  {}: item {} Output {} ({}): no {}",
                d.reviewer,
                d.item,
                d.letter,
                d.candidate,
                d.criteria.join(", ")
            );
        }
        if m.details.len() > 10 {
            let _ = writeln!(s, "  ... and {} more", m.details.len() - 10);
        }
    } else {
        let _ = writeln!(s, "\nall {} outputs fully rated", m.expected);
    }
    s
}

/// Runs `hone eval gate`: prints PASS/FAIL/SKIP per gate and fails (exit code 1) when any gate
/// fails.
pub fn gate(g: GateArgs) -> Result<()> {
    let report = HumanReport::load(&g.human)?;
    let cfg = GateConfig {
        finetuned: g.finetuned,
        base: g.base,
        frontier_required: g.frontier.is_some(),
        frontier: g.frontier.unwrap_or_else(|| "frontier".into()),
        min_win_base: g.min_win_base,
        min_win_frontier: g.min_win_frontier,
        max_critical: g.max_critical,
    };
    let gates = check_gates(&report, &cfg)?;
    if g.json {
        say(&(serde_json::to_string_pretty(&gates)? + "\n"))?;
    } else {
        say(&format!("{gates}\n"))?;
    }
    if gates.passed() {
        Ok(())
    } else {
        let names: Vec<&str> = gates.failed().iter().map(|g| g.name.as_str()).collect();
        anyhow::bail!("deployment gate(s) failed: {}", names.join(", "))
    }
}
