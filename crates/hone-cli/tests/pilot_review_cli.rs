//! `hone pilot` on review data (a documents.jsonl of NDAs with ContractNLI labels): too few
//! documents are refused naming the count, and on 30 synthetic NDAs the review pilot runs to its
//! verdict page, each held-out document scored by the share of its 17 checks labelled right.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

mod serve_support;

fn hone(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hone"))
        .args(args)
        .env("HONE_THREADS", "2")
        .output()
        .expect("hone runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `hone data synth nda --docs N` into `dir`; returns its documents.jsonl.
fn synth(dir: &Path, docs: usize) -> std::path::PathBuf {
    let o = hone(&[
        "data",
        "synth",
        "nda",
        "--docs",
        &docs.to_string(),
        "--seed",
        "5",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let p = dir.join("documents.jsonl");
    assert!(p.is_file());
    p
}

fn read_jsonl(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn too_few_documents_or_instruction_flags_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let docs = synth(&dir.path().join("few"), 12);
    let out = dir.path().join("pilot");
    let (docs_s, out_s) = (docs.to_str().unwrap(), out.to_str().unwrap());

    let o = hone(&["pilot", docs_s, "--out", out_s]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("documents.jsonl")
            && e.contains("12 documents")
            && e.contains("at least 20")
            && e.contains("340 labelled decisions"),
        "{e}"
    );
    assert!(!out.exists(), "nothing written for refused input");

    // The task of review data is fixed: instruction-data flags are refused, naming the file.
    let o = hone(&["pilot", docs_s, "--out", out_s, "--task", "classification"]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("review data") && e.contains("--task"), "{e}");
    assert!(!out.exists());

    // --top-layers is for review data; instruction data refuses it.
    let ex = dir.path().join("ex.jsonl");
    let lines: Vec<String> = (0..60)
        .map(|i| {
            serde_json::json!({"instruction": "Yes or no?", "input": format!("item {i}"),
                               "output": if i % 2 == 0 { "yes" } else { "no" }})
            .to_string()
        })
        .collect();
    std::fs::write(&ex, lines.join("\n")).unwrap();
    let o = hone(&[
        "pilot",
        ex.to_str().unwrap(),
        "--out",
        out_s,
        "--top-layers",
        "2",
    ]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("--top-layers") && e.contains("ex.jsonl"), "{e}");
    assert!(!out.exists());
}

#[test]
fn a_review_pilot_on_synthetic_ndas_runs_to_its_verdict_page() {
    if !serve_support::model_cached() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let docs = synth(&dir.path().join("nda"), 30);
    let out = dir.path().join("pilot");
    // An endpoint cannot review documents here: the flag is taken and the page says why the
    // frontier arm is missing (nothing listens on port 9).
    let o = hone(&[
        "pilot",
        docs.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        "1",
        "--top-layers",
        "2",
        "--endpoint",
        "http://127.0.0.1:9/v1",
        "--endpoint-model",
        "gpt",
    ]);
    let (out_s, err_s) = (String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(o.status.success(), "stdout: {out_s}\nstderr: {err_s}");
    for k in 1..=6 {
        assert!(err_s.contains(&format!("[{k}/6]")), "step {k}: {err_s}");
    }
    assert!(out_s.starts_with("Verdict: "), "{out_s}");
    assert!(out_s.contains("held-out documents"), "{out_s}");
    assert!(
        out_s.contains("No endpoint arm: --endpoint was given but not asked: on review data"),
        "{out_s}"
    );

    let p: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("pilot.json")).unwrap()).unwrap();
    assert_eq!(p["data"]["examples"], 30);
    assert_eq!(p["data"]["unit"], "documents");
    let held_out = p["data"]["held_out"].as_u64().unwrap() as usize;
    assert_eq!(p["data"]["train"].as_u64().unwrap() as usize + held_out, 30);
    assert!(
        p["data"]["validation"].as_u64().unwrap() >= 2,
        "{}",
        p["data"]
    );
    assert!((5..=7).contains(&held_out), "a fifth held out: {held_out}");
    assert_eq!(p["verdict"]["metric"], "3-class check accuracy");
    assert_eq!(p["verdict"]["examples"], held_out);
    let arms = p["verdict"]["arms"].as_array().unwrap();
    let names: Vec<&str> = arms.iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["base zero-shot", "base few-shot", "fine-tuned"]);
    let roles: Vec<&str> = arms.iter().map(|a| a["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["base", "base", "fine_tuned"]);
    assert!(
        p["arms"][1]["fewshot"].as_u64().unwrap() > 0,
        "demos in the prompt"
    );
    assert!(p["endpoint_missing"]
        .as_str()
        .unwrap()
        .contains("evidence ranges"));

    // Each held-out document: "k/17 right" per arm, its score k/17, and each arm's estimate
    // the mean of its documents' scores.
    let examples = p["examples"].as_array().unwrap();
    assert_eq!(examples.len(), held_out);
    let mut ids = Vec::new();
    for ex in examples {
        assert_eq!(ex["reference"], "17 checks", "{ex}");
        ids.push(ex["id"].as_str().unwrap().to_string());
        for a in ex["answers"].as_array().unwrap() {
            let (text, score) = (a[1].as_str().unwrap(), a[2].as_f64().unwrap());
            let k: f64 = text
                .strip_suffix("/17 right")
                .unwrap_or_else(|| panic!("{text}"))
                .parse()
                .unwrap();
            assert!((score - k / 17.0).abs() < 1e-9, "{a}");
        }
    }
    for (i, a) in arms.iter().enumerate() {
        let est = a["score"]["estimate"].as_f64().unwrap();
        let mean = examples
            .iter()
            .map(|ex| ex["answers"][i][2].as_f64().unwrap())
            .sum::<f64>()
            / held_out as f64;
        assert!((mean - est).abs() < 1e-9, "{a}");
    }

    // The fine-tuned arm's per-document counts, recounted from its predictions file against the
    // held-out gold labels.
    let gold: BTreeMap<String, serde_json::Value> = read_jsonl(&out.join("data/test.jsonl"))
        .into_iter()
        .map(|d| (d["id"].as_str().unwrap().to_string(), d))
        .collect();
    let preds = read_jsonl(&out.join("eval/fine-tuned.jsonl"));
    assert_eq!(preds.len(), held_out);
    for (i, pr) in preds.iter().enumerate() {
        let id = pr["doc_id"].as_str().unwrap();
        assert_eq!(id, ids[i]);
        let labels = gold[id]["labels"].as_object().unwrap();
        assert_eq!(labels.len(), 17);
        let right = labels
            .iter()
            .filter(|(check, g)| {
                let want = match g["label"].as_str().unwrap() {
                    "entailed" => "Entailment",
                    "contradicted" => "Contradiction",
                    _ => "NotMentioned",
                };
                pr["checks"][check.as_str()]["label"] == want
            })
            .count();
        assert_eq!(
            examples[i]["answers"][2][1].as_str().unwrap(),
            format!("{right}/17 right"),
            "{id}"
        );
    }

    let html = std::fs::read_to_string(out.join("pilot.html")).unwrap();
    assert!(html.contains("id=\"endpoint-missing\""));
    assert!(html.contains("held-out documents"));
    for f in [
        "pilot.html",
        "train.toml",
        "eval/report.html",
        "adapter/adapter_model.safetensors",
        "adapter/review.json",
        "data/train.jsonl",
        "data/valid.jsonl",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
}
