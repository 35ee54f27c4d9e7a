//! Comparing ContractNLI predictions files: per-candidate metrics identical to scoring each
//! file alone, latency percentiles against hand-computed values, candidate names, bad inputs,
//! the report files, and the terminal text (the reports' table, aligned).
//!
//! Fixtures (tests/fixtures/contractnli, see contractnli_metrics.rs for the gold table):
//! - `pred.jsonl` ("base"): documents 1–3 predicted, document 4 missing; `timing.total_ms`
//!   12 and 15 on documents 1 and 2, no timing on document 3, no `spans` anywhere.
//! - `pred_timed.jsonl` ("tuned"): all 4 documents, every label right and every evidence range
//!   exactly a gold span (so every metric is 1); `timing` with `total_ms` 1000, 3000, 2000 and
//!   `spans` 4 on documents 1–3, no timing on document 4.

use std::path::{Path, PathBuf};

use hone_eval::contractnli::{
    compare, comparison_markdown, comparison_text, evaluate_files, metrics_text, overall_table,
    parse_candidate, read_predictions, read_predictions_timed, write_comparison, Comparison,
};
use hone_eval::Error;

const EPS: f64 = 1e-12;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/contractnli")
        .join(name)
}

fn close(actual: Option<f64>, expected: f64, what: &str) {
    let a = actual.unwrap_or_else(|| panic!("{what}: undefined, expected {expected}"));
    assert!(
        (a - expected).abs() < EPS,
        "{what}: got {a}, expected {expected}"
    );
}

fn both() -> Comparison {
    compare(
        &fixture("gold.json"),
        &[
            ("base".into(), fixture("pred.jsonl")),
            ("tuned".into(), fixture("pred_timed.jsonl")),
        ],
    )
    .unwrap()
}

#[test]
fn each_candidate_scores_as_evaluate_files_does() {
    let c = both();
    assert_eq!(c.documents, 4);
    assert_eq!(c.gold, fixture("gold.json"));
    let names: Vec<&str> = c.candidates.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["base", "tuned"]);
    for k in &c.candidates {
        let alone = evaluate_files(&fixture("gold.json"), &k.path).unwrap();
        assert_eq!(k.metrics, alone, "{}", k.name);
    }
    // base: the numbers contractnli_metrics.rs checks by hand.
    let b = &c.candidates[0].metrics;
    close(b.nli_acc, 1.0 / 2.0, "base nli_acc");
    close(b.f1_c, 1.0 / 3.0, "base f1_c");
    close(b.f1_e, 3.0 / 4.0, "base f1_e");
    close(b.acc3, 7.0 / 12.0, "base acc3");
    close(
        b.evidence_map_macro_doc,
        35.0 / 54.0,
        "base evidence_map_macro_doc",
    );
    close(b.evidence_map, 121.0 / 216.0, "base pooled");
    // tuned: every label right, every range a gold span ranked alone: all 1.
    let t = &c.candidates[1].metrics;
    assert_eq!((t.predicted, t.missing, t.missing_checks), (4, 0, 0));
    for (v, what) in [
        (t.nli_acc, "nli_acc"),
        (t.f1_c, "f1_c"),
        (t.f1_e, "f1_e"),
        (t.acc3, "acc3"),
        (t.evidence_map_macro_doc, "evidence_map_macro_doc"),
        (t.evidence_map, "pooled"),
    ] {
        close(v, 1.0, what);
    }
}

#[test]
fn latency_percentiles_by_hand() {
    let c = both();
    // tuned: 1 s, 3 s, 2 s (document 4 untimed). Sorted 1, 2, 3: p50 = 2; p95 at rank
    // 0.95 × 2 = 1.9 → 2 + 0.9 × (3 − 2) = 2.9; mean 2. Spans 3 × 4 = 12 in 6 s = 2 per second.
    let t = &c.candidates[1].latency;
    assert_eq!((t.documents, t.timed, t.untimed), (4, 3, 1));
    assert_eq!(t.latencies_s, [1.0, 3.0, 2.0]);
    close(t.p50_s, 2.0, "tuned p50");
    close(t.p95_s, 2.9, "tuned p95");
    close(t.mean_s, 2.0, "tuned mean");
    assert_eq!(t.spans, 12);
    close(t.spans_per_s, 2.0, "tuned spans/s");
    // base: 0.012 s and 0.015 s (document 3 untimed): p50 = 0.0135,
    // p95 = 0.012 + 0.95 × 0.003 = 0.01485, no spans reported.
    let b = &c.candidates[0].latency;
    assert_eq!((b.documents, b.timed, b.untimed), (3, 2, 1));
    close(b.p50_s, 0.0135, "base p50");
    close(b.p95_s, 0.01485, "base p95");
    close(b.mean_s, 0.0135, "base mean");
    assert_eq!((b.spans, b.spans_per_s), (0, None));
}

#[test]
fn json_has_candidates_with_name_path_metrics_and_latency() {
    let v = serde_json::to_value(both()).unwrap();
    let cands = v["candidates"].as_array().unwrap();
    assert_eq!(cands.len(), 2);
    assert_eq!(cands[1]["name"], "tuned");
    assert!(cands[1]["path"]
        .as_str()
        .unwrap()
        .ends_with("pred_timed.jsonl"));
    assert!((cands[0]["metrics"]["acc3"].as_f64().unwrap() - 7.0 / 12.0).abs() < EPS);
    assert_eq!(
        cands[0]["metrics"]["per_hypothesis"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert!((cands[1]["latency"]["p95_s"].as_f64().unwrap() - 2.9).abs() < EPS);
    assert_eq!(cands[1]["latency"]["untimed"], 1);
    // And it reads back.
    let back: Comparison = serde_json::from_value(v).unwrap();
    assert_eq!(back, both());
}

#[test]
fn candidate_names() {
    let (n, p) = parse_candidate("base=runs/base/pred.jsonl").unwrap();
    assert_eq!(
        (n.as_str(), p),
        ("base", PathBuf::from("runs/base/pred.jsonl"))
    );
    let (n, p) = parse_candidate("runs/ft/pred.jsonl").unwrap();
    assert_eq!(
        (n.as_str(), p),
        ("pred", PathBuf::from("runs/ft/pred.jsonl"))
    );
    // An `=` inside a folder name is part of a bare path.
    let (n, p) = parse_candidate("runs/lr=1e-4/ft.jsonl").unwrap();
    assert_eq!(
        (n.as_str(), p),
        ("ft", PathBuf::from("runs/lr=1e-4/ft.jsonl"))
    );
    for (arg, want) in [
        ("=pred.jsonl", "empty name"),
        ("  =pred.jsonl", "empty name"),
        ("base=", "empty path"),
        ("", "empty"),
    ] {
        let e = parse_candidate(arg).unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{arg}: {e:?}");
        assert!(e.to_string().contains(want), "{arg}: {e}");
    }
}

#[test]
fn bad_candidate_lists_are_errors() {
    let gold = fixture("gold.json");
    let e = compare(
        &gold,
        &[
            ("pred".into(), fixture("pred.jsonl")),
            ("pred".into(), fixture("pred_timed.jsonl")),
        ],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("`pred` is given twice"), "{e}");
    assert!(
        e.contains("pred.jsonl") && e.contains("pred_timed.jsonl"),
        "{e}"
    );
    let e = compare(&gold, &[(" ".into(), fixture("pred.jsonl"))]).unwrap_err();
    assert!(e.to_string().contains("empty candidate name"), "{e}");
    assert!(compare(&gold, &[]).is_err());
    let missing = fixture("no-such-pred.jsonl");
    match compare(
        &gold,
        &[
            ("base".into(), fixture("pred.jsonl")),
            ("x".into(), missing.clone()),
        ],
    )
    .unwrap_err()
    {
        Error::Io { path, .. } => assert_eq!(path, missing),
        e => panic!("expected an I/O error naming the file, got {e:?}"),
    }
}

#[test]
fn timing_is_read_and_bad_timing_named() {
    let (p, timings) = read_predictions_timed(&fixture("pred_timed.jsonl")).unwrap();
    assert_eq!((p.docs.len(), timings.len()), (4, 4));
    let t = timings[0].unwrap();
    assert_eq!(
        (t.total_ms, t.model_ms, t.spans, t.tokens),
        (1000.0, Some(950.0), Some(4), Some(120))
    );
    assert_eq!(timings[3], None);

    let dir = tempfile::tempdir().unwrap();
    let checks = r#""checks": {"nda-1": {"label": "Entailment"}}"#;
    let write = |name: &str, timing: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{{\"doc_id\": \"1\", {checks}{timing}}}\n")).unwrap();
        path
    };
    // Present but without total_ms, or null: no timing, counted as untimed.
    for (name, timing) in [
        ("a.jsonl", r#", "timing": {"spans": 4}"#),
        ("b.jsonl", r#", "timing": null"#),
    ] {
        let (_, t) = read_predictions_timed(&write(name, timing)).unwrap();
        assert_eq!(t, [None], "{timing}");
    }
    for (name, timing, field) in [
        (
            "c.jsonl",
            r#", "timing": {"total_ms": -5}"#,
            "timing.total_ms",
        ),
        (
            "d.jsonl",
            r#", "timing": {"total_ms": "12"}"#,
            "timing.total_ms",
        ),
        (
            "e.jsonl",
            r#", "timing": {"total_ms": 5, "spans": 1.5}"#,
            "timing.spans",
        ),
        ("f.jsonl", r#", "timing": 12"#, "timing"),
    ] {
        let path = write(name, timing);
        match read_predictions(&path).unwrap_err() {
            Error::Field {
                path: p,
                line,
                field: f,
                ..
            } => assert_eq!((p, line, f.as_str()), (path.clone(), 1, field), "{timing}"),
            e => panic!("{timing}: expected a field error, got {e:?}"),
        }
    }
}

#[test]
fn report_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let c = both();
    let files = write_comparison(&c, &out).unwrap();
    assert_eq!(files.json, out.join("report.json"));
    let json = std::fs::read_to_string(&files.json).unwrap();
    assert_eq!(json, serde_json::to_string_pretty(&c).unwrap() + "\n");
    let back: Comparison = serde_json::from_str(&json).unwrap();
    assert_eq!(back.candidates.len(), 2);
    assert_eq!(back.candidates[1].latency.latencies_s, [1.0, 3.0, 2.0]);

    let md = std::fs::read_to_string(&files.markdown).unwrap();
    assert_eq!(md, comparison_markdown(&c));
    assert!(
        md.contains(
            "| base | 3/4 | 0.500 | 0.333 | 0.750 | 0.583 | 0.560 | 0.648 | 0.013 | 0.015 | 0.013 | – | 2/3 |"
        ),
        "{md}"
    );
    assert!(
        md.contains(
            "| tuned | 4/4 | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 | 1.000 | 2.000 | 2.900 | 2.000 | 2.0 | 3/4 |"
        ),
        "{md}"
    );
    // Per hypothesis: nda-2 (no Contradiction gold) has no NLI accuracy; base's
    // Acc3 1/2 and (pooled) mAP 7/18 there, tuned's 1 and 1.
    assert!(
        md.contains(
            "| nda-2 | Technical information only | 4 | – | 0.500 | 0.389 | – | 1.000 | 1.000 |"
        ),
        "{md}"
    );

    let html = std::fs::read_to_string(&files.html).unwrap();
    assert!(html.starts_with("<!doctype html>"));
    // Overall bars, latency histogram, mAP per hypothesis.
    assert_eq!(html.matches("<svg").count(), 3, "{html}");
    assert!(html.contains("Evidence mAP per hypothesis"));
    // Histogram (24 bins up to 1.05 × 3 s): tuned's 1, 2 and 3 s fall in three bins, base's
    // 0.012 and 0.015 s together in the first.
    assert_eq!(html.matches("<title>tuned: 1 in").count(), 3);
    assert!(html.contains("<title>base: 2 in 0.000–"));
    assert!(!html.contains("<script"));
    // The better row is highlighted: tuned's NLI acc.
    assert!(html.contains("<td class=\"best\">1.000</td>"));

    // One candidate works too (nothing highlighted).
    let one = compare(
        &fixture("gold.json"),
        &[("base".into(), fixture("pred.jsonl"))],
    )
    .unwrap();
    let files = write_comparison(&one, &dir.path().join("one")).unwrap();
    let html = std::fs::read_to_string(&files.html).unwrap();
    assert_eq!(html.matches("<svg").count(), 3);
    assert!(!html.contains("class=\"best\""));
}

/// Moved from hone-cli's `hone eval contractnli` (the terminal table of one predictions file).
#[test]
fn metrics_text_shows_overall_and_per_hypothesis_numbers() {
    let m = evaluate_files(&fixture("gold.json"), &fixture("pred.jsonl")).unwrap();
    let t = metrics_text(&m);
    assert!(
        t.contains("4 gold documents, 3 predicted, 1 missing"),
        "{t}"
    );
    // nli_acc 1/2, f1_c 1/3, f1_e 3/4, acc3 7/12, evidence_map (pooled) 121/216,
    // evidence_map_macro_doc 35/54.
    let overall = t.lines().find(|l| l.starts_with("overall")).unwrap();
    assert_eq!(
        overall.split_whitespace().collect::<Vec<_>>(),
        ["overall", "0.500", "0.333", "0.750", "0.583", "0.560", "0.648"]
    );
    // nda-2 has no Contradiction gold: its NLI numbers are undefined.
    let nda2 = t.lines().find(|l| l.starts_with("nda-2 ")).unwrap();
    assert!(nda2.contains("Technical information only"), "{nda2}");
    let cols: Vec<_> = nda2.split_whitespace().collect();
    assert_eq!(
        cols[cols.len() - 6..],
        ["-", "-", "-", "0.500", "0.389", "0.500"]
    );
}

/// The terminal shows the reports' overall table: the same cells as the Markdown row (with `-`
/// for an undefined number), the columns aligned, and each candidate's file and counts.
#[test]
fn comparison_text_is_the_reports_table() {
    let c = both();
    let t = comparison_text(&c);
    let md = comparison_markdown(&c);
    let table = overall_table(&c);
    assert_eq!(table.rows.len(), 2);
    for name in ["base", "tuned"] {
        let md_row: Vec<String> = md
            .lines()
            .find(|l| l.starts_with(&format!("| {name} |")))
            .unwrap()
            .split('|')
            .map(|x| x.trim().replace('–', "-"))
            .filter(|x| !x.is_empty())
            .collect();
        let text_row: Vec<String> = t
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no row {name}: {t}"))
            .split_whitespace()
            .map(String::from)
            .collect();
        assert_eq!(text_row, md_row, "{t}");
    }
    // Aligned: every line of the table is as long as the header (no trailing spaces).
    let head = t.lines().find(|l| l.starts_with("candidate")).unwrap();
    for name in ["base ", "tuned "] {
        let row = t.lines().find(|l| l.starts_with(name)).unwrap();
        assert_eq!(row.chars().count(), head.chars().count(), "{t}");
    }
    assert!(t.contains("4 gold documents, 3 hypotheses"), "{t}");
    assert!(
        t.contains(&format!(
            "base: {}, 3 of 4 gold documents predicted",
            fixture("pred.jsonl").display()
        )),
        "{t}"
    );
}
