//! `hone eval contractnli --gold G --pred [NAME=]P [--pred [NAME=]P2 ...] [--json] [--out DIR]`.
//!
//! One `--pred` prints that file's metrics (tables, or `--json` the metrics object); several
//! print one comparison row per file (metrics and review latency) and each file's differences
//! from the first with 95% paired bootstrap intervals (`--bootstrap N` resamples, 0 for none),
//! or `--json` the whole comparison. `--out DIR` also writes `report.json`, `report.md` and `report.html` there. The
//! tables are hone-eval's ([`contractnli::metrics_text`], [`contractnli::comparison_text`]), the
//! comparison's the same one the reports hold.

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use hone_eval::contractnli;

/// Score `hone review` predictions against ContractNLI gold documents.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Gold documents: ContractNLI's official JSON, or the documents.jsonl written by
    /// `hone data import contractnli` (detected from the content).
    #[arg(long)]
    pub gold: PathBuf,
    /// Predictions written by `hone review` (JSONL, one document a line), as NAME=PATH or a
    /// bare PATH (named by its file stem). Repeat to compare several, e.g.
    /// `--pred base=base.jsonl --pred tuned=tuned.jsonl`; the first is the baseline the others'
    /// differences are measured against.
    #[arg(long, required = true, value_name = "[NAME=]PATH")]
    pub pred: Vec<String>,
    /// Print JSON instead of tables: with one --pred the metrics object (nli_acc, f1_c, f1_e,
    /// acc3, evidence_map, evidence_map_macro_doc, counts and per_hypothesis), with several the comparison
    /// (`candidates`, each with name, path, metrics and latency; `bootstrap` and `differences`).
    #[arg(long)]
    pub json: bool,
    /// With several --pred: resamples of the gold documents for the differences from the first
    /// --pred (95% paired bootstrap intervals: is a difference above, below or within noise);
    /// 0 leaves the differences out.
    #[arg(long, value_name = "N", default_value_t = contractnli::DEFAULT_RESAMPLES)]
    pub bootstrap: usize,
    /// Also write report.json, report.md and report.html (with charts) into this folder.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// What a run prints: `stdout`, then the report files written (if any).
struct Output {
    stdout: String,
    written: Vec<PathBuf>,
}

/// Runs `hone eval contractnli`.
pub fn run(a: Args) -> Result<()> {
    let o = output(&a)?;
    print!("{}", o.stdout);
    if !o.written.is_empty() {
        let paths: Vec<String> = o.written.iter().map(|p| p.display().to_string()).collect();
        let s = format!("reports: {}", paths.join("\n         "));
        // With --json stdout stays one JSON value.
        if a.json {
            eprintln!("{s}");
        } else {
            println!("\n{s}");
        }
    }
    Ok(())
}

/// The candidates of the `--pred` flags: names parsed, none empty, none twice.
fn candidates(preds: &[String]) -> Result<Vec<(String, PathBuf)>> {
    let mut out: Vec<(String, PathBuf)> = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    for arg in preds {
        let (name, path) =
            contractnli::parse_candidate(arg).with_context(|| format!("--pred {arg}"))?;
        if let Some(first) = seen.insert(name.clone(), arg.clone()) {
            bail!(
                "--pred {arg}: the name `{name}` is already given to --pred {first}; name them \
                 apart as NAME=PATH"
            );
        }
        out.push((name, path));
    }
    Ok(out)
}

fn output(a: &Args) -> Result<Output> {
    let cands = candidates(&a.pred)?;
    let bootstrap = contractnli::BootstrapOptions {
        resamples: a.bootstrap,
        ..Default::default()
    };
    let c = contractnli::compare_with(&a.gold, &cands, bootstrap).with_context(|| {
        format!(
            "scoring --pred {} against --gold {}",
            a.pred.join(" --pred "),
            a.gold.display()
        )
    })?;
    let stdout = match (&c.candidates[..], a.json) {
        ([one], true) => format!("{}\n", serde_json::to_string(&one.metrics)?),
        ([one], false) => contractnli::metrics_text(&one.metrics),
        (_, true) => format!("{}\n", serde_json::to_string(&c)?),
        (_, false) => contractnli::comparison_text(&c),
    };
    let written = match &a.out {
        None => Vec::new(),
        Some(dir) => {
            let w = contractnli::write_comparison(&c, dir)
                .with_context(|| format!("--out: cannot write reports to {}", dir.display()))?;
            vec![w.html, w.markdown, w.json]
        }
    };
    Ok(Output { stdout, written })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn errors_name_the_files() {
        let dir =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../hone-eval/tests/fixtures/contractnli");
        let e = run(Args {
            gold: dir.join("gold.json"),
            pred: vec![dir.join("no-such-file.jsonl").display().to_string()],
            json: false,
            out: None,
            bootstrap: contractnli::DEFAULT_RESAMPLES,
        })
        .unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("no-such-file.jsonl"), "{msg}");
        assert!(msg.contains("gold.json"), "{msg}");
    }

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../hone-eval/tests/fixtures/contractnli")
    }

    fn args(preds: &[String], json: bool, out: Option<PathBuf>) -> Args {
        Args {
            gold: fixtures().join("gold.json"),
            pred: preds.to_vec(),
            json,
            out,
            bootstrap: contractnli::DEFAULT_RESAMPLES,
        }
    }

    /// `base=.../pred.jsonl` and `tuned=.../pred_timed.jsonl` (see hone-eval's
    /// tests/contractnli_compare.rs for the hand-computed numbers).
    fn two() -> Vec<String> {
        vec![
            format!("base={}", fixtures().join("pred.jsonl").display()),
            format!("tuned={}", fixtures().join("pred_timed.jsonl").display()),
        ]
    }

    fn err(a: &Args) -> String {
        match output(a) {
            Ok(_) => panic!("expected an error for {:?}", a.pred),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn one_pred_prints_what_it_always_did() {
        let path = fixtures().join("pred.jsonl");
        let m = contractnli::evaluate_files(&fixtures().join("gold.json"), &path).unwrap();
        let bare = vec![path.display().to_string()];
        let named = vec![format!("base={}", path.display())];
        for p in [&bare, &named] {
            let o = output(&args(p, false, None)).unwrap();
            assert_eq!(o.stdout, contractnli::metrics_text(&m));
            assert!(o.written.is_empty());
            let o = output(&args(p, true, None)).unwrap();
            assert_eq!(
                o.stdout,
                format!("{}\n", serde_json::to_string(&m).unwrap())
            );
        }
    }

    #[test]
    fn several_preds_print_one_row_each() {
        let o = output(&args(&two(), false, None)).unwrap();
        let t = &o.stdout;
        let row = |name: &str| -> Vec<String> {
            t.lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("no row {name}: {t}"))
                .split_whitespace()
                .map(String::from)
                .collect()
        };
        let head: Vec<String> = row("candidate");
        assert_eq!(head[..4], ["candidate", "predicted", "NLI", "acc"]);
        // base: 1/2, 1/3, 3/4, 7/12, 121/216 (pooled), 35/54 (per document); 12 and 15 ms (p50 0.0135, p95 0.01485,
        // mean 0.0135), no spans reported (spans/s undefined), document 3 untimed.
        assert_eq!(
            row("base"),
            [
                "base", "3/4", "0.500", "0.333", "0.750", "0.583", "0.560", "0.648", "0.013",
                "0.015", "0.013", "-", "2/3"
            ]
        );
        // tuned: all right; 1, 3 and 2 s (p50 2, p95 2.9, mean 2), 12 spans in 6 s, document 4
        // untimed.
        assert_eq!(
            row("tuned"),
            [
                "tuned", "4/4", "1.000", "1.000", "1.000", "1.000", "1.000", "1.000", "2.000",
                "2.900", "2.000", "2.0", "3/4"
            ]
        );
        assert!(t.contains("4 gold documents, 3 hypotheses"), "{t}");

        let o = output(&args(&two(), true, None)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
        let c = v["candidates"].as_array().unwrap();
        assert_eq!(
            (c[0]["name"].as_str(), c[1]["name"].as_str()),
            (Some("base"), Some("tuned"))
        );
        assert!((c[0]["metrics"]["nli_acc"].as_f64().unwrap() - 0.5).abs() < 1e-12);
        assert!((c[1]["latency"]["p50_s"].as_f64().unwrap() - 2.0).abs() < 1e-12);
    }

    #[test]
    fn several_preds_show_the_differences_from_the_first_unless_bootstrap_is_0() {
        let o = output(&args(&two(), false, None)).unwrap();
        let t = &o.stdout;
        let heading = "Differences against base (95% paired bootstrap over the 4 documents, \
                       1000 resamples):";
        let at = t
            .find(heading)
            .unwrap_or_else(|| panic!("no differences: {t}"));
        // After the overall table, one row for tuned: NLI acc 1 against 1/2.
        let section = &t[at..];
        let row = section
            .lines()
            .find(|l| l.starts_with("tuned "))
            .unwrap_or_else(|| panic!("no tuned row: {section}"));
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells.len(), 1 + 6 * 3, "{row}");
        assert_eq!(cells[..2], ["tuned", "+0.500"], "{row}");
        assert!(cells[2].starts_with('['), "{row}");
        assert!(section.contains("tuned against base: "), "{section}");
        assert!(t[..at].contains("candidate predicted"), "{t}");

        let v: serde_json::Value =
            serde_json::from_str(&output(&args(&two(), true, None)).unwrap().stdout).unwrap();
        assert_eq!(v["bootstrap"]["resamples"], 1000);
        assert_eq!(v["bootstrap"]["baseline"], "base");
        let d = v["differences"].as_array().unwrap();
        assert_eq!(d.len(), 6);
        assert_eq!(
            (&d[0]["candidate"], &d[0]["metric"]),
            (&"tuned".into(), &"NLI acc".into())
        );
        assert!((d[0]["delta"].as_f64().unwrap() - 0.5).abs() < 1e-12);

        let mut a = args(&two(), false, None);
        a.bootstrap = 0;
        let o0 = output(&a).unwrap();
        assert!(!o0.stdout.contains("Differences against"), "{}", o0.stdout);
        assert_eq!(o0.stdout, t[..at].trim_end_matches('\n').to_string() + "\n");
        a.json = true;
        let v: serde_json::Value = serde_json::from_str(&output(&a).unwrap().stdout).unwrap();
        assert!(v["bootstrap"].is_null(), "{v}");
        assert_eq!(v["differences"].as_array().map(Vec::len), Some(0));
    }

    #[test]
    fn out_writes_json_markdown_and_html() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("cmp");
        let o = output(&args(&two(), false, Some(out.clone()))).unwrap();
        assert_eq!(
            o.written,
            [
                out.join("report.html"),
                out.join("report.md"),
                out.join("report.json")
            ]
        );
        let html = std::fs::read_to_string(out.join("report.html")).unwrap();
        assert!(html.contains("<svg"), "{html}");
        assert!(html.contains("Evidence mAP per hypothesis"));
        let md = std::fs::read_to_string(out.join("report.md")).unwrap();
        assert!(md.contains("| tuned | 4/4 | 1.000 |"), "{md}");
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap())
                .unwrap();
        assert_eq!(v["candidates"].as_array().unwrap().len(), 2);

        // One candidate: the usual table on stdout, and the three files.
        let one = vec![fixtures().join("pred.jsonl").display().to_string()];
        let out1 = dir.path().join("one");
        let o = output(&args(&one, false, Some(out1.clone()))).unwrap();
        assert!(o
            .stdout
            .starts_with("4 gold documents, 3 predicted, 1 missing"));
        assert_eq!(o.written.len(), 3);
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out1.join("report.json")).unwrap())
                .unwrap();
        assert_eq!(v["candidates"][0]["name"], "pred");
        assert!(std::fs::read_to_string(out1.join("report.html"))
            .unwrap()
            .contains("<svg"));
    }

    #[test]
    fn bad_pred_flags_are_clear_errors() {
        let p = fixtures().join("pred.jsonl").display().to_string();
        let q = fixtures().join("pred_timed.jsonl").display().to_string();
        // The same name twice, given or from the file stem.
        let e = err(&args(&[format!("a={p}"), format!("a={q}")], false, None));
        assert!(
            e.contains(&format!("--pred a={q}")) && e.contains(&format!("--pred a={p}")),
            "{e}"
        );
        assert!(e.contains("`a`"), "{e}");
        let e = err(&args(&[p.clone(), format!("pred={q}")], false, None));
        assert!(e.contains("`pred` is already given"), "{e}");
        // An empty name.
        let e = err(&args(&[format!("={p}")], false, None));
        assert!(
            e.contains(&format!("--pred ={p}")) && e.contains("empty name"),
            "{e}"
        );
        // A missing file, among others.
        let missing = fixtures().join("missing.jsonl").display().to_string();
        let e = err(&args(&[p, format!("x={missing}")], false, None));
        assert!(e.contains(&format!("--pred x={missing}")), "{e}");
        assert!(e.contains(&format!("{missing}: No such file")), "{e}");
        // Nothing written when scoring fails.
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("never");
        let _ = err(&args(&[format!("x={missing}")], false, Some(out.clone())));
        assert!(!out.exists());
    }
}
