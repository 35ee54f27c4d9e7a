//! `hone advise` through the binary: the worked example with its inputs stated, and
//! `--from-eval` taking a pilot's measured figures (a price flag still wins).

use std::process::{Command, Output};

use hone_eval::pilot_report::{PilotArm, PilotData, PilotReport, PilotTraining};
use hone_eval::verdict::{judge, Arm, Role, Rule};

fn hone(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hone"))
        .args(args)
        .output()
        .expect("hone runs")
}

#[test]
fn the_worked_example_states_its_inputs_and_pays_back_within_a_month() {
    // 2,400 contracts a month at 85 queries each: 6,707 a day.
    let o = hone(&[
        "advise",
        "--examples",
        "6200",
        "--queries-per-day",
        "6707",
        "--frontier-price",
        "0.12",
        "--finetuned-price",
        "0.006",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("6200 examples, 6707 queries a day"), "{out}");
    assert!(
        out.contains("frontier 0.12 / query, fine-tuned 0.006 / query"),
        "{out}"
    );
    assert!(out.contains("break-even: 0.8 months"), "{out}");
    assert!(out.contains("recommendation: fine-tune"), "{out}");
}

fn pilot_json(dir: &std::path::Path, tuned: &[f64], frontier: &[f64]) -> std::path::PathBuf {
    let arms = vec![
        Arm {
            name: "base few-shot".into(),
            role: Role::Base,
            scores: vec![0.0, 1.0, 0.0, 0.0],
        },
        Arm {
            name: "fine-tuned".into(),
            role: Role::FineTuned,
            scores: tuned.to_vec(),
        },
        Arm {
            name: "endpoint gpt".into(),
            role: Role::Endpoint,
            scores: frontier.to_vec(),
        },
    ];
    let verdict = judge("accuracy", &arms, Rule::default(), 1).unwrap();
    let run = |name: &str, cost: f64| PilotArm {
        name: name.into(),
        description: String::new(),
        fewshot: 0,
        failures: 0,
        latency_p50_s: Some(0.5),
        cost_per_1k_usd: Some(cost),
    };
    let report = PilotReport {
        verdict,
        arms: vec![
            run("base few-shot", 0.03),
            run("fine-tuned", 0.015),
            run("endpoint gpt", 90.0),
        ],
        data: PilotData::default(),
        training: PilotTraining::default(),
        endpoint_missing: None,
        examples: vec![],
        seconds: 1.0,
        eval_report: "eval/report.html".into(),
    };
    let path = dir.join("pilot.json");
    std::fs::write(&path, serde_json::to_vec(&report).unwrap()).unwrap();
    path
}

#[test]
fn from_eval_takes_the_measured_prices_and_scores() {
    let dir = tempfile::tempdir().unwrap();
    let p = pilot_json(dir.path(), &[1.0, 1.0, 1.0, 0.0], &[1.0, 1.0, 1.0, 1.0]);
    let p = p.to_str().unwrap();
    let base = ["advise", "--examples", "2000", "--queries-per-day", "5000"];
    let o = hone(&[&base[..], &["--from-eval", p]].concat());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // $90 and $0.015 per 1,000 queries, as measured.
    assert!(
        out.contains("frontier 0.09 / query, fine-tuned 0.000015 / query"),
        "{out}"
    );
    assert!(out.contains("measured on 4 held-out examples"), "{out}");
    // 25 points behind the frontier: route the unsure cases.
    assert!(out.contains("25.0 points below the frontier"), "{out}");
    assert!(out.contains("route unsure cases"), "{out}");

    // A flag wins over the measured price.
    let o = hone(&[&base[..], &["--from-eval", p, "--frontier-price", "0.5"]].concat());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("frontier 0.5 / query, fine-tuned 0.000015 / query"),
        "{out}"
    );

    // A file that is neither report is refused, naming it.
    let bad = dir.path().join("other.json");
    std::fs::write(&bad, "{\"x\": 1}").unwrap();
    let o = hone(&[&base[..], &["--from-eval", bad.to_str().unwrap()]].concat());
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("other.json") && err.contains("neither"),
        "{err}"
    );
}

#[test]
fn from_bench_prices_a_query_from_this_machines_tokens_per_second() {
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("bench.json");
    std::fs::write(
        &b,
        r#"{"threads":2,"prefill_tok_s":1000.0,"decode_tok_s":50.0,"decode_batch8_tok_s":200.0}"#,
    )
    .unwrap();
    let b = b.to_str().unwrap();
    let base = ["advise", "--examples", "2000", "--queries-per-day", "5000"];
    // 800 + 20 tokens: 0.8 s + 0.4 s = 1.2 s at $0.36 an hour = $0.00012.
    let o = hone(
        &[
            &base[..],
            &[
                "--from-bench",
                b,
                "--prompt-tokens",
                "800",
                "--output-tokens",
                "20",
                "--usd-per-hour",
                "0.36",
            ],
        ]
        .concat(),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("fine-tuned 0.00012 / query"), "{out}");
    assert!(
        out.contains("a query of 800 + 20 tokens takes 1.20 s"),
        "{out}"
    );
    // An evaluation's measured price comes before the bench estimate.
    let p = pilot_json(dir.path(), &[1.0, 1.0, 1.0, 0.0], &[1.0, 1.0, 1.0, 1.0]);
    let o = hone(
        &[
            &base[..],
            &["--from-bench", b, "--from-eval", p.to_str().unwrap()],
        ]
        .concat(),
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("fine-tuned 0.000015 / query"), "{out}");
    // A bench file without its rates is refused, naming the key.
    std::fs::write(dir.path().join("bad.json"), "{\"threads\": 2}").unwrap();
    let bad = dir.path().join("bad.json");
    let o = hone(&[&base[..], &["--from-bench", bad.to_str().unwrap()]].concat());
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.json") && err.contains("prefill_tok_s"),
        "{err}"
    );
}
