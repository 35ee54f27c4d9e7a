//! `hone pilot`: bad input is refused before any work, and on 50 synthetic examples the
//! experiment runs to its verdict page with a local `hone serve` of another adapter standing in
//! as the frontier endpoint (the third arm filled), the page rendered in headless Chromium.

use std::path::Path;
use std::process::{Command, Output};

#[path = "../../hone-eval/tests/common/browser.rs"]
mod browser;
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

fn example(i: usize, answer: &str) -> String {
    serde_json::json!({
        "instruction": "Is this sentence about cats?",
        "input": format!("Sentence number {i} talks about something else entirely, item {}.", i * 7),
        "output": answer,
    })
    .to_string()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn too_few_or_broken_examples_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pilot");
    let out_s = out.to_str().unwrap();

    // 49 examples: one short of a pilot.
    let few = dir.path().join("few.jsonl");
    let lines: Vec<String> = (0..49)
        .map(|i| example(i, if i % 2 == 0 { "yes" } else { "no" }))
        .collect();
    write_lines(&few, &lines);
    let o = hone(&["pilot", few.to_str().unwrap(), "--out", out_s]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("49 examples") && e.contains("at least 50") && e.contains("few.jsonl"),
        "{e}"
    );
    assert!(!out.exists(), "nothing written for refused input");

    // Enough examples, but line 7 has no answer.
    let empty = dir.path().join("empty.jsonl");
    let mut lines: Vec<String> = (0..60)
        .map(|i| example(i, if i % 2 == 0 { "yes" } else { "no" }))
        .collect();
    lines[6] = example(6, " ");
    write_lines(&empty, &lines);
    let o = hone(&["pilot", empty.to_str().unwrap(), "--out", out_s]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("empty.jsonl:7") && e.contains("output"), "{e}");
    assert!(!out.exists());

    // A broken JSON line is named by its line.
    let broken = dir.path().join("broken.jsonl");
    lines[6] = "{\"instruction\": ".into();
    write_lines(&broken, &lines);
    let o = hone(&["pilot", broken.to_str().unwrap(), "--out", out_s]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("broken.jsonl") && e.contains('7'), "{e}");

    // 55 examples of which 10 are copies of others: 45 distinct are too few.
    let dups = dir.path().join("dups.jsonl");
    let mut lines: Vec<String> = (0..45)
        .map(|i| example(i, if i % 2 == 0 { "yes" } else { "no" }))
        .collect();
    lines.extend((0..10).map(|i| example(i, if i % 2 == 0 { "yes" } else { "no" })));
    write_lines(&dups, &lines);
    let o = hone(&["pilot", dups.to_str().unwrap(), "--out", out_s]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("45 distinct examples") && e.contains("10 exact duplicates"),
        "{e}"
    );

    // Flags: an endpoint needs its model; the least gain is in points.
    let ok = dir.path().join("ok.jsonl");
    let lines: Vec<String> = (0..60)
        .map(|i| example(i, if i % 2 == 0 { "yes" } else { "no" }))
        .collect();
    write_lines(&ok, &lines);
    let ok_s = ok.to_str().unwrap();
    let o = hone(&[
        "pilot",
        ok_s,
        "--out",
        out_s,
        "--endpoint",
        "http://127.0.0.1:9/v1",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--endpoint-model"), "{}", stderr(&o));
    let o = hone(&["pilot", ok_s, "--out", out_s, "--min-gain", "150"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--min-gain"), "{}", stderr(&o));
    let o = hone(&["pilot", ok_s, "--out", out_s, "--labels", "yes,no"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--task"), "{}", stderr(&o));
    assert!(!out.exists());

    // An earlier pilot's folder is not overwritten without --overwrite.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("pilot.json"), "{}").unwrap();
    let o = hone(&[
        "pilot",
        ok_s,
        "--out",
        out_s,
        "--model",
        "/nonexistent.gguf",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--overwrite"), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(out.join("pilot.json")).unwrap(),
        "{}"
    );
}

#[test]
fn the_pilot_judges_three_arms_and_a_local_endpoint_and_its_page_renders() {
    if !serve_support::model_cached() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("clauses.jsonl");
    let o = hone(&[
        "data",
        "synth",
        "clauses",
        "--examples",
        "50",
        "--seed",
        "7",
        "--out",
        data.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    // "Another adapter" for the endpoint: a brief run on the same examples, top layers only.
    let other = dir.path().join("other");
    let cfg = dir.path().join("other.toml");
    std::fs::write(
        &cfg,
        format!(
            "[model]\nbase = \"smollm2\"\n[lora]\nr = 4\nalpha = 8\n\
             target_modules = [\"q_proj\", \"v_proj\"]\n[optim]\nlr = 1e-3\nbatch_size = 8\n\
             epochs = 1\nmax_seq_len = 256\n[train]\nfast = true\ntop_layers = 2\n\
             [data]\ntrain = \"{}\"\n[output]\ndir = \"{}\"\n",
            data.display(),
            other.display()
        ),
    )
    .unwrap();
    let o = hone(&["train", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let other_arg = format!("other={}", other.display());
    let server = serve_support::Server::start(&["--adapter", &other_arg]);

    let out = dir.path().join("pilot");
    let endpoint = format!("{}/v1", server.base);
    let o = hone(&[
        "pilot",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--endpoint",
        &endpoint,
        "--endpoint-model",
        "other",
        "--epochs",
        "2",
        "--fewshot",
        "2",
        "--max-tokens",
        "16",
    ]);
    let (out_s, err_s) = (String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(o.status.success(), "stdout: {out_s}\nstderr: {err_s}");
    for k in 1..=6 {
        assert!(err_s.contains(&format!("[{k}/6]")), "step {k}: {err_s}");
    }
    assert!(err_s.contains("classification into 6 labels"), "{err_s}");
    assert!(out_s.starts_with("Verdict: "), "{out_s}");
    assert!(out_s.contains("fine-tuned vs endpoint"), "{out_s}");

    let p: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("pilot.json")).unwrap()).unwrap();
    assert_eq!(p["data"]["train"], 40);
    assert_eq!(p["data"]["held_out"], 10);
    assert_eq!(p["verdict"]["examples"], 10);
    assert!(p.get("endpoint_missing").is_none(), "{p}");
    let arms = p["verdict"]["arms"].as_array().unwrap();
    let roles: Vec<&str> = arms.iter().map(|a| a["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["base", "base", "fine_tuned", "endpoint"]);
    // The third arm is filled: every held-out example was answered by the served adapter.
    let runs = p["arms"].as_array().unwrap();
    assert_eq!(runs[3]["failures"], 0, "{}", runs[3]);
    for ex in p["examples"].as_array().unwrap() {
        let answers = ex["answers"].as_array().unwrap();
        assert_eq!(answers.len(), 4);
        let endpoint_answer = answers[3][1].as_str().unwrap();
        assert!(
            !endpoint_answer.trim().is_empty() && !endpoint_answer.starts_with("(failed"),
            "{ex}"
        );
    }
    // Each arm's score is the mean of its answers' scores, inside its own interval.
    for (i, a) in arms.iter().enumerate() {
        let s = &a["score"];
        let (est, lo, hi) = (
            s["estimate"].as_f64().unwrap(),
            s["low"].as_f64().unwrap(),
            s["high"].as_f64().unwrap(),
        );
        assert!(lo <= est && est <= hi, "{a}");
        let mean: f64 = p["examples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|ex| ex["answers"][i][2].as_f64().unwrap())
            .sum::<f64>()
            / 10.0;
        assert!((mean - est).abs() < 1e-9, "{a}");
    }
    for f in [
        "pilot.html",
        "train.toml",
        "eval.toml",
        "eval/report.html",
        "adapter/adapter_model.safetensors",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }

    // The verdict page in a real browser: the verdict is on the first screen, one bar per arm.
    if browser::skip_if_unavailable() {
        return;
    }
    let html = out.join("pilot.html");
    let png = browser::artifacts_dir().join("pilot_verdict.png");
    browser::screenshot(&html, &png).unwrap();
    browser::check_png(&std::fs::read(&png).unwrap(), 20_000).unwrap();
    let b = browser::Browser::launch().unwrap();
    b.open_file(&html).unwrap();
    let v = b
        .execute(
            "const v = document.getElementById('verdict').getBoundingClientRect();\
             return [v.top, v.bottom, window.innerHeight, \
                     document.querySelectorAll('#arms rect').length, \
                     document.getElementById('verdict').innerText];",
            &[],
        )
        .unwrap();
    let (top, bottom, height) = (
        v[0].as_f64().unwrap(),
        v[1].as_f64().unwrap(),
        v[2].as_f64().unwrap(),
    );
    assert!(
        top >= 0.0 && bottom <= height,
        "verdict box {top}..{bottom} of {height}"
    );
    assert_eq!(v[3], 4, "one bar per arm");
    let text = v[4].as_str().unwrap();
    assert!(text.contains("points") && text.contains("Rule:"), "{text}");
}
