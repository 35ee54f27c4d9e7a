//! `hone eval route` through the binary, on inputs the tests write: a small evaluation run
//! (report.json + outputs.jsonl) and small ContractNLI review predictions, with the curve's
//! numbers computed by hand; and bad inputs, each a clear error (exit status 1) naming the file,
//! field or flag, never a panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hone_eval::config::{TaskConfig, TaskKind};
use hone_eval::runner::{CandidateReport, EvalReport, OutputRecord};
use serde_json::{json, Value};

fn hone(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hone"))
        .args(args)
        .output()
        .expect("hone runs")
}

fn ok_json(out: &Output) -> Value {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stderr: {err}");
    serde_json::from_slice(&out.stdout).expect("--json prints JSON")
}

fn fails_with(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "expected `{n}` in: {err}");
    }
}

fn close(a: &Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 1e-9)
}

/// (threshold or null, accuracy, cost per 1k) of every point.
fn points(v: &Value) -> Vec<(Option<f64>, f64, f64)> {
    v["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["threshold"].as_f64(),
                p["accuracy"].as_f64().unwrap(),
                p["cost_per_1k_usd"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn assert_points(got: &[(Option<f64>, f64, f64)], want: &[(Option<f64>, f64, f64)]) {
    assert_eq!(got.len(), want.len(), "{got:?}");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.0, w.0, "{got:?}");
        assert!(
            (g.1 - w.1).abs() < 1e-9 && (g.2 - w.2).abs() < 1e-9,
            "{g:?} vs {w:?}"
        );
    }
}

// ---------------------------------------------------------------- an evaluation run

/// One answer: (id, reference, output, mean log-prob, error).
type Answer<'a> = (&'a str, &'a str, &'a str, Option<f64>, Option<&'a str>);

/// Classification yes/no. `small` (a local model, $1 per 1,000 queries) and `large` ($10):
///
/// | id | ref | small | log-prob | large |
/// |----|-----|-------|----------|-------|
/// | e1 | yes | no  ✗ | -3.0     | yes ✓ |
/// | e2 | no  | no  ✓ | -0.1     | yes ✗ |
/// | e3 | yes | yes ✓ | -2.0     | yes ✓ |
/// | e4 | no  | yes ✗ | -1.0     | no  ✓ |
/// | e5 | yes | (failed: no confidence, −∞) | yes ✓ |
const SMALL: [Answer; 5] = [
    ("e1", "yes", "no", Some(-3.0), None),
    ("e2", "no", "no", Some(-0.1), None),
    ("e3", "yes", "yes", Some(-2.0), None),
    ("e4", "no", "yes", Some(-1.0), None),
    ("e5", "yes", "", None, Some("prompt too long")),
];
const LARGE: [Answer; 5] = [
    ("e1", "yes", "yes", None, None),
    ("e2", "no", "yes", None, None),
    ("e3", "yes", "yes", None, None),
    ("e4", "no", "no", None, None),
    ("e5", "yes", "yes", None, None),
];

fn task() -> TaskConfig {
    TaskConfig {
        kind: TaskKind::Classification,
        labels: vec!["yes".into(), "no".into()],
        fields: vec![],
        system: None,
    }
}

fn candidate(name: &str, answers: &[Answer], cost: Option<f64>) -> CandidateReport {
    let ids: Vec<String> = answers.iter().map(|a| a.0.to_string()).collect();
    let refs: Vec<String> = answers.iter().map(|a| a.1.to_string()).collect();
    let outs: Vec<String> = answers.iter().map(|a| a.2.to_string()).collect();
    CandidateReport {
        name: name.into(),
        kind: "local".into(),
        description: name.into(),
        fewshot: 0,
        metrics: hone_eval::task::score(&task(), &ids, &refs, &outs).unwrap(),
        failures: 0,
        cached: 0,
        latency: None,
        latencies_s: vec![],
        cost_per_1k_usd: cost,
        regression: None,
        training: None,
    }
}

fn records(name: &str, answers: &[Answer]) -> Vec<OutputRecord> {
    answers
        .iter()
        .map(|&(id, reference, output, lp, error)| OutputRecord {
            id: id.into(),
            input: format!("question {id}"),
            reference: Some(reference.into()),
            candidate: name.into(),
            output: output.into(),
            parsed_ok: error.is_none(),
            latency_s: Some(0.1),
            cached: false,
            error: error.map(String::from),
            output_tokens: if error.is_some() { None } else { Some(1) },
            mean_logprob: lp,
        })
        .collect()
}

/// Writes report.json and outputs.jsonl into `dir` as `hone eval` does.
fn write_run(dir: &Path, cands: &[(&str, &[Answer], Option<f64>)]) -> PathBuf {
    let report = EvalReport {
        task: task(),
        eval_file: PathBuf::from("eval.jsonl"),
        examples: 5,
        machine_usd_per_hour: 0.1,
        candidates: cands.iter().map(|(n, a, c)| candidate(n, a, *c)).collect(),
        break_even: vec![],
        outputs: cands.iter().flat_map(|(n, a, _)| records(n, a)).collect(),
    };
    hone_eval::report::write_all(&report, dir).unwrap();
    dir.join("report.json")
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn eval_run_curve_and_chosen_threshold_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let report = write_run(
        dir.path(),
        &[("small", &SMALL, Some(1.0)), ("large", &LARGE, Some(10.0))],
    );
    let args = [
        "eval",
        "route",
        "--report",
        s(&report),
        "--small",
        "small",
        "--large",
        "large",
    ];
    let v = ok_json(&hone(&[&args[..], &["--json"]].concat()));
    // Distinct confidences −∞ < −3 < −2 < −1 < −0.1: never, T = −3, −2, −1, −0.1, always.
    // Accuracy (hand): 2/5; e5 routed 3/5; + e1 4/5; + e3 4/5; + e4 5/5; + e2 4/5.
    // Cost per 1,000: $1 for all + $10 per routed query: (5 + 10k) / 5 × 1000 / 1000.
    assert_points(
        &points(&v),
        &[
            (None, 0.4, 1.0),
            (Some(-3.0), 0.6, 3.0),
            (Some(-2.0), 0.8, 5.0),
            (Some(-1.0), 0.8, 7.0),
            (Some(-0.1), 1.0, 9.0),
            (None, 0.8, 11.0),
        ],
    );
    // Default target: the large arm's accuracy (0.8), first reached at T = −2.
    assert!(close(&v["choice"]["target"], 0.8));
    assert_eq!(v["choice"]["chosen"], json!(2));
    assert_eq!(v["points"][2]["routed"], json!(2));
    // The run's folder reads the same as its report.json.
    let by_dir = ok_json(&hone(&[
        "eval",
        "route",
        "--report",
        s(dir.path()),
        "--small",
        "small",
        "--large",
        "large",
        "--json",
    ]));
    assert_eq!(by_dir["points"], v["points"]);

    // The table and the report files; a higher target picks T = −0.1.
    let out_dir = dir.path().join("route");
    let out = hone(&[&args[..], &["--target", "0.9", "--out", s(&out_dir)]].concat());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Chosen: threshold -0.1000"), "{text}");
    assert!(
        text.contains("| -2.0000 | 40.0% | 0.8000 | 5.00 |"),
        "{text}"
    );
    let html = std::fs::read_to_string(out_dir.join("route.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("chosen"), "{html}");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("route.json")).unwrap())
            .unwrap();
    assert_eq!(json["choice"]["chosen"], json!(4));

    // A given cost replaces the report's: the large arm at $20 makes T = −2 cost
    // (5 × 1 + 2 × 20) / 5 = $9 per 1,000.
    let v = ok_json(&hone(
        &[&args[..], &["--json", "--large-cost-per-1k", "20"]].concat(),
    ));
    assert!(close(&v["points"][2]["cost_per_1k_usd"], 9.0), "{v}");

    // An unreachable target: nothing chosen, the most accurate point named. With the large
    // arm wrong on e4 too, no point scores above 0.8 (first reached at T = −2).
    let mut wrong = LARGE;
    wrong[3].2 = "yes";
    let dir2 = tempfile::tempdir().unwrap();
    let report2 = write_run(
        dir2.path(),
        &[("small", &SMALL, Some(1.0)), ("large", &wrong, Some(10.0))],
    );
    let args2 = [
        "eval",
        "route",
        "--report",
        s(&report2),
        "--small",
        "small",
        "--large",
        "large",
        "--target",
        "0.9",
    ];
    let v = ok_json(&hone(&[&args2[..], &["--json"]].concat()));
    assert_eq!(v["choice"]["chosen"], Value::Null);
    assert_eq!(v["choice"]["best"], json!(2));
    assert!(close(&v["points"][2]["accuracy"], 0.8));
    let out = hone(&args2);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("No threshold reaches the target accuracy of 0.9000; the most accurate point is -2.0000"),
        "{text}"
    );
}

#[test]
fn eval_run_bad_inputs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let report = write_run(
        dir.path(),
        &[("small", &SMALL, Some(1.0)), ("large", &LARGE, None)],
    );
    let r = s(&report);
    // A candidate that is not in the report: the names it has.
    let out = hone(&[
        "eval", "route", "--report", r, "--small", "tiny", "--large", "large",
    ]);
    fails_with(
        &out,
        &["report.json", "no candidate `tiny`", "small, large"],
    );
    // No cost for the large arm in the report: the flag to pass.
    let out = hone(&[
        "eval", "route", "--report", r, "--small", "small", "--large", "large",
    ]);
    fails_with(&out, &["`large`", "--large-cost-per-1k"]);
    // A target outside [0, 1], a negative cost.
    let base = [
        "eval", "route", "--report", r, "--small", "small", "--large", "large",
    ];
    fails_with(
        &hone(&[&base[..], &["--target", "1.5"]].concat()),
        &["--target"],
    );
    fails_with(
        &hone(&[&base[..], &["--large-cost-per-1k=-1"]].concat()),
        &["--large-cost-per-1k"],
    );
    // The small arm's answers without a log-probability (an older hone, or an endpoint).
    let dir2 = tempfile::tempdir().unwrap();
    let mut old = SMALL;
    old[1].3 = None;
    let report2 = write_run(
        dir2.path(),
        &[("small", &old, Some(1.0)), ("large", &LARGE, Some(10.0))],
    );
    let out = hone(&[
        "eval",
        "route",
        "--report",
        s(&report2),
        "--small",
        "small",
        "--large",
        "large",
    ]);
    fails_with(
        &out,
        &[
            "outputs.jsonl:2",
            "mean_logprob",
            "`e2`",
            "re-run `hone eval`",
        ],
    );
    // Examples answered by one arm only.
    let dir3 = tempfile::tempdir().unwrap();
    let report3 = write_run(
        dir3.path(),
        &[
            ("small", &SMALL, Some(1.0)),
            ("large", &LARGE[..4], Some(10.0)),
        ],
    );
    let out = hone(&[
        "eval",
        "route",
        "--report",
        s(&report3),
        "--small",
        "small",
        "--large",
        "large",
    ]);
    fails_with(&out, &["outputs.jsonl:5", "`e5`", "not by `large`"]);
    // A broken outputs.jsonl line; a missing report.
    let mut text = std::fs::read_to_string(dir3.path().join("outputs.jsonl")).unwrap();
    text.push_str("{not json\n");
    std::fs::write(dir3.path().join("outputs.jsonl"), text).unwrap();
    let out = hone(&[
        "eval",
        "route",
        "--report",
        s(&report3),
        "--small",
        "small",
        "--large",
        "large",
    ]);
    fails_with(&out, &["outputs.jsonl:10"]);
    let missing = dir.path().join("nope/report.json");
    let out = hone(&[
        "eval",
        "route",
        "--report",
        s(&missing),
        "--small",
        "small",
        "--large",
        "large",
    ]);
    fails_with(&out, &["nope/report.json"]);
    // Neither source, or both: usage errors.
    let out = hone(&["eval", "route"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--report"));
    let out = hone(&[
        "eval",
        "route",
        "--report",
        r,
        "--small",
        "a",
        "--large",
        "b",
        "--gold",
        r,
        "--small-pred",
        r,
        "--large-pred",
        r,
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------- review predictions

/// Two NDAs, two checks each, both checks with Entailment and Contradiction gold labels:
/// A: nda-1 E, nda-2 C; B: nda-1 C, nda-2 E.
fn write_gold(dir: &Path) -> PathBuf {
    let doc = |id: u32, l1: &str, l2: &str| {
        json!({"id": id, "file_name": format!("{id}.txt"), "url": "", "document_type": "synthetic",
               "text": "Clause one. Clause two. ", "spans": [[0, 12], [12, 24]],
               "annotation_sets": [{"annotations": {
                   "nda-1": {"choice": l1, "spans": [0]}, "nda-2": {"choice": l2, "spans": [1]}}}]})
    };
    let gold = json!({
        "documents": [doc(1, "Entailment", "Contradiction"), doc(2, "Contradiction", "Entailment")],
        "labels": {
            "nda-1": {"short_description": "Explicit identification", "hypothesis": "h1"},
            "nda-2": {"short_description": "Technical information only", "hypothesis": "h2"}
        }
    });
    let p = dir.join("gold.json");
    std::fs::write(&p, gold.to_string()).unwrap();
    p
}

fn pred_line(doc: &str, checks: &[(&str, &str, [f64; 3])], total_ms: Option<f64>) -> String {
    let mut c = serde_json::Map::new();
    for (id, label, [e, ct, n]) in checks {
        c.insert(
            id.to_string(),
            json!({"label": label, "probs": {"Entailment": e, "Contradiction": ct, "NotMentioned": n}, "evidence": []}),
        );
    }
    let mut line = json!({"doc_id": doc, "checks": c});
    if let Some(ms) = total_ms {
        line["timing"] = json!({"total_ms": ms});
    }
    line.to_string()
}

/// Small (36 ms a document): A nda-1 E 0.9 ✓, A nda-2 E 0.5 ✗, B nda-1 E 0.6 ✗, B nda-2 E 0.8 ✓.
/// Large (3.6 s a document): A nda-1 C ✗, A nda-2 C ✓, B nda-1 C ✓, B nda-2 E ✓.
fn write_preds(dir: &Path, small_ms: Option<f64>) -> (PathBuf, PathBuf) {
    let small = [
        pred_line(
            "1",
            &[
                ("nda-1", "Entailment", [0.9, 0.05, 0.05]),
                ("nda-2", "Entailment", [0.5, 0.4, 0.1]),
            ],
            small_ms,
        ),
        pred_line(
            "2",
            &[
                ("nda-1", "Entailment", [0.6, 0.3, 0.1]),
                ("nda-2", "Entailment", [0.8, 0.1, 0.1]),
            ],
            small_ms,
        ),
    ];
    let large = [
        pred_line(
            "2",
            &[
                ("nda-1", "Contradiction", [0.2, 0.7, 0.1]),
                ("nda-2", "Entailment", [0.7, 0.2, 0.1]),
            ],
            Some(3600.0),
        ),
        pred_line(
            "1",
            &[
                ("nda-1", "Contradiction", [0.2, 0.7, 0.1]),
                ("nda-2", "Contradiction", [0.2, 0.7, 0.1]),
            ],
            Some(3600.0),
        ),
    ];
    let (sp, lp) = (dir.join("small.jsonl"), dir.join("large.jsonl"));
    std::fs::write(&sp, small.join("\n") + "\n").unwrap();
    std::fs::write(&lp, large.join("\n") + "\n").unwrap();
    (sp, lp)
}

#[test]
fn review_curve_routes_checks_and_prices_documents_by_review_time() {
    let dir = tempfile::tempdir().unwrap();
    let gold = write_gold(dir.path());
    let (sp, lp) = write_preds(dir.path(), Some(36.0));
    let small = format!("tfidf={}", s(&sp));
    let large = format!("base={}", s(&lp));
    let args = [
        "eval",
        "route",
        "--gold",
        s(&gold),
        "--small-pred",
        &small,
        "--large-pred",
        &large,
        "--usd-per-hour",
        "100",
    ];
    let v = ok_json(&hone(&[&args[..], &["--json"]].concat()));
    // NLI accuracy (macro over the two checks): small alone ½·(½ + ½) = 0.5; T = 0.6 routes
    // A nda-2 → ½·(½ + 1) = 0.75; T = 0.8 also B nda-1 → 1.0; T = 0.9 also B nda-2 (still
    // right) → 1.0; always also A nda-1 (wrong) → 0.75.
    // Cost per 1,000 documents at $100/h: small 36 ms = $0.001 a document; the large review
    // 3.6 s = $0.10, paid once per document with a routed check.
    assert_points(
        &points(&v),
        &[
            (None, 0.5, 1.0),
            (Some(0.6), 0.75, 51.0),
            (Some(0.8), 1.0, 101.0),
            (Some(0.9), 1.0, 101.0),
            (None, 0.75, 101.0),
        ],
    );
    assert_eq!(
        (v["small"].as_str(), v["large"].as_str()),
        (Some("tfidf"), Some("base"))
    );
    assert_eq!(v["queries"], json!(4));
    assert_eq!(v["units"], json!(2));
    // Default target = the large arm's 0.75: T = 0.6. Target 1: T = 0.8.
    assert_eq!(v["choice"]["chosen"], json!(1));
    let v = ok_json(&hone(&[&args[..], &["--json", "--target", "1"]].concat()));
    assert_eq!(v["choice"]["chosen"], json!(2));
    // Costs given per 1,000 documents replace the review times.
    let v = ok_json(&hone(
        &[
            &args[..],
            &[
                "--json",
                "--small-cost-per-1k",
                "2",
                "--large-cost-per-1k",
                "30",
            ],
        ]
        .concat(),
    ));
    assert!(close(&v["points"][1]["cost_per_1k_usd"], 2.0 + 15.0), "{v}");
}

#[test]
fn review_bad_inputs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let gold = write_gold(dir.path());
    // No timing on the small file and no cost given: the line, field and flag.
    let (sp, lp) = write_preds(dir.path(), None);
    let args = [
        "eval",
        "route",
        "--gold",
        s(&gold),
        "--small-pred",
        s(&sp),
        "--large-pred",
        s(&lp),
    ];
    fails_with(
        &hone(&args),
        &["small.jsonl:1", "timing.total_ms", "--small-cost-per-1k"],
    );
    // Given a cost, it runs.
    let out = hone(&[&args[..], &["--small-cost-per-1k", "1"]].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A small check without probabilities.
    let nop = dir.path().join("noprobs.jsonl");
    let line = json!({"doc_id": "1", "checks": {
        "nda-1": {"label": "Entailment", "probs": {"Entailment": 0.9, "Contradiction": 0.05, "NotMentioned": 0.05}},
        "nda-2": {"label": "Entailment"}}});
    let rest = std::fs::read_to_string(&sp)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    std::fs::write(&nop, format!("{line}\n{rest}\n")).unwrap();
    let out = hone(&[
        "eval",
        "route",
        "--gold",
        s(&gold),
        "--small-pred",
        s(&nop),
        "--large-pred",
        s(&lp),
        "--small-cost-per-1k",
        "1",
    ]);
    fails_with(&out, &["noprobs.jsonl:1", "checks.nda-2.probs"]);
    // A document the large file lacks.
    let one = dir.path().join("one.jsonl");
    let first = std::fs::read_to_string(&lp)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string();
    std::fs::write(&one, first + "\n").unwrap();
    let out = hone(&[
        "eval",
        "route",
        "--gold",
        s(&gold),
        "--small-pred",
        s(&sp),
        "--large-pred",
        s(&one),
        "--small-cost-per-1k",
        "1",
    ]);
    fails_with(&out, &["small.jsonl:1", "document `1`", "one.jsonl"]);
    // A broken line, a missing file.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"doc_id\": \"1\"\n").unwrap();
    let out = hone(&[
        "eval",
        "route",
        "--gold",
        s(&gold),
        "--small-pred",
        s(&bad),
        "--large-pred",
        s(&lp),
    ]);
    fails_with(&out, &["bad.jsonl:1"]);
    let out = hone(&[
        "eval",
        "route",
        "--gold",
        s(&gold),
        "--small-pred",
        s(&sp),
        "--large-pred",
        "missing.jsonl",
    ]);
    fails_with(&out, &["missing.jsonl"]);
    // --gold without the predictions is a usage error.
    let out = hone(&["eval", "route", "--gold", s(&gold)]);
    assert_eq!(out.status.code(), Some(2));
}
