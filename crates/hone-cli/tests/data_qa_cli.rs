//! `hone data qa` through the binary (issue 24, acceptance 3): the edge-case coverage report
//! and, with `--memorization MODEL`, the memorization report, in the text output and in
//! `--json`. The memorization part skips (printing why) without the cached SmolLM2.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};

fn hone(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hone"))
        .args(args)
        .output()
        .expect("hone runs");
    assert!(
        out.status.success(),
        "hone {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn chat(q: &str, a: &str) -> String {
    json!({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]})
        .to_string()
}

fn write(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn qa_reports_edge_case_coverage_in_text_and_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train.jsonl");
    write(
        &path,
        &[
            chat("Does clause 4 limit the term?", "Yes, to two years."),
            chat("Does the NDA mention arbitration?", "Not mentioned."),
            chat("Who owns the work product?", "The contract does not say."),
            chat(
                "Write me a poem about cats.",
                "Sorry, but I can only help with NDA review.",
            ),
            chat(
                "Is the return of materials required?",
                "Yes, within ten days.",
            ),
        ],
    );
    let p = path.to_str().unwrap();
    let text = hone(&["data", "qa", p]);
    assert!(
        text.contains(
            "refusals 1 (20.0%), unknown / not mentioned 2 (40.0%), malformed input 0 (0.0%)"
        ),
        "{text}"
    );
    assert!(
        text.contains("warning: no answers to malformed or empty input"),
        "{text}"
    );
    assert!(!text.contains("warning: no refusals"), "{text}");
    let v: Value = serde_json::from_str(&hone(&["data", "qa", p, "--json"])).unwrap();
    let c = &v["coverage"];
    assert_eq!(
        (
            c["examples"].as_u64(),
            c["refusal"].as_u64(),
            c["unknown"].as_u64()
        ),
        (Some(5), Some(1), Some(2)),
        "{v}"
    );
    assert_eq!(c["malformed_input"], 0);
    assert_eq!(c["warnings"].as_array().unwrap().len(), 1, "{v}");
    for k in [
        "exact_duplicates",
        "near_duplicates",
        "contradictions",
        "contamination",
        "overrepresented",
    ] {
        assert!(v[k].is_array(), "{k} in {v}");
    }
    assert!(v.get("memorization").is_none(), "only when asked: {v}");
    // Bad memorization flags are refused before any work, naming the flag.
    for (flag, value) in [
        ("--memorization-threshold", "0.5"),
        ("--memorization-threshold", "nan"),
        ("--memorization-sample", "0"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_hone"))
            .args(["data", "qa", p, "--memorization", "smollm2", flag, value])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(flag),
            "{flag} {value}: {err}"
        );
    }
}

#[test]
fn qa_flags_answers_the_base_model_would_write_itself() {
    if hone_model::fetch::cached_for_tests("smollm2").is_none() {
        eprintln!("skipped: SmolLM2 is not cached (hone model fetch smollm2)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("generated.jsonl");
    write(
        &path,
        &[
            // Written by people for the task: unlikely word by word under a small base model.
            chat(
                "Summarize: Either party may end this Agreement on thirty days written notice.",
                "Quarterly churn of signatories; thirty-day exit, no penalty, Lisbon venue.",
            ),
            chat(
                "Label the clause: The Recipient shall return all Materials.",
                "nda-5: entailed, tersely so",
            ),
            // What the model itself says.
            chat(
                "What is the capital of France?",
                "The capital of France is Paris.",
            ),
        ],
    );
    let p = path.to_str().unwrap();
    let text = hone(&["data", "qa", p, "--memorization", "smollm2"]);
    assert!(
        text.contains("likely memorized or model-generated") && text.contains("1 of 3 checked"),
        "{text}"
    );
    assert!(text.contains("  line 3: "), "{text}");
    let v: Value = serde_json::from_str(&hone(&[
        "data",
        "qa",
        p,
        "--memorization",
        "smollm2",
        "--json",
    ]))
    .unwrap();
    let m = &v["memorization"];
    assert_eq!(m["checked"], 3, "{v}");
    assert_eq!(m["threshold"], -2.8);
    let flagged = m["flagged"].as_array().unwrap();
    assert_eq!(flagged.len(), 1, "{v}");
    assert_eq!(flagged[0][0], 3);
    assert!(flagged[0][1].as_f64().unwrap() > -2.8);
    // A threshold above every answer flags none.
    let v: Value = serde_json::from_str(&hone(&[
        "data",
        "qa",
        p,
        "--memorization",
        "smollm2",
        "--memorization-threshold",
        "-0.01",
        "--json",
    ]))
    .unwrap();
    assert_eq!(
        v["memorization"]["flagged"].as_array().unwrap().len(),
        0,
        "{v}"
    );
}
