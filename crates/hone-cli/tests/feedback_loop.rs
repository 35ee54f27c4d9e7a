//! The feedback loop end to end (issue 19, acceptance 1), through the binary and a real headless
//! Chromium: v1 is served with the request log on; its answers are sampled into the review queue;
//! a reviewer corrects some of them in the review page by editing and clicking; the corrections
//! are exported, v2 is retrained on them (the evaluation-set gate is `retrain`'s own test, in
//! registry_cli.rs), registered with better numbers on the corrected cases,
//! released as a canary, promoted; the history shows both versions with their data and metrics.
//! Skips (printing why) without the cached model or without Chromium (CI installs both).

#[path = "../../hone-eval/tests/common/browser.rs"]
mod browser;
mod serve_support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use browser::Browser;
use serde_json::json;

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

fn example(q: &str, label: &str) -> String {
    json!({"messages": [{"role": "user", "content": q},
                        {"role": "assistant", "content": json!({"label": label}).to_string()}]})
    .to_string()
}

fn write(p: &Path, s: &str) {
    std::fs::write(p, s).unwrap();
}

#[test]
fn serve_review_correct_retrain_canary_promote() {
    if browser::skip_if_unavailable() {
        return;
    }
    let Some(model) = hone_model::fetch::cached_for_tests("smollm2") else {
        println!("skipped: smollm2 is not cached (hone model fetch smollm2)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let store = d.join("registry.db");
    let store_s = store.to_str().unwrap();
    // v1: six clause questions answered as JSON labels
    let train: String = [
        (
            "Clause: the recipient may share with employees. May it share with employees?",
            "yes",
        ),
        (
            "Clause: the recipient may not share with anyone. May it share with employees?",
            "no",
        ),
        (
            "Clause: obligations survive termination. Do they survive termination?",
            "yes",
        ),
        (
            "Clause: obligations end at termination. Do they survive termination?",
            "no",
        ),
        (
            "Clause: copies must be returned. Must copies be returned?",
            "yes",
        ),
        ("Clause: copies may be kept. Must copies be returned?", "no"),
    ]
    .iter()
    .map(|(q, l)| example(q, l) + "\n")
    .collect();
    write(&d.join("train.jsonl"), &train);
    write(
        &d.join("train.toml"),
        &format!(
            "[model]\nbase = \"{}\"\n[lora]\nr = 8\nalpha = 16\n[optim]\nlr = 0.003\nepochs = 3\nbatch_size = 2\n[data]\ntrain = \"train.jsonl\"\n[output]\ndir = \"v1\"\n",
            model.display()
        ),
    );
    hone(&["train", "--config", d.join("train.toml").to_str().unwrap()]);
    hone(&[
        "registry",
        "add",
        "clauses",
        d.join("v1").to_str().unwrap(),
        "--store",
        store_s,
    ]);
    hone(&["deploy", "clauses@1", "--store", store_s]);

    // production traffic about a kind of clause v1 never saw (non-solicitation)
    let srv = serve_support::Server::start_with_env(
        &[
            "--model",
            model.to_str().unwrap(),
            "--store",
            store_s,
            "--request-log",
            "--review-share",
            "1",
            "--admin-key-env",
            "HONE_LOOP_KEY",
            "--max-batch",
            "4",
        ],
        &[("HONE_LOOP_KEY", "loop-key")],
    );
    let traffic = [
        (
            "Clause: the recipient shall not solicit employees. Is soliciting employees forbidden?",
            "yes",
        ),
        (
            "Clause: either party may hire anyone. Is soliciting employees forbidden?",
            "no",
        ),
        (
            "Clause: the recipient shall not solicit customers. Is soliciting customers forbidden?",
            "yes",
        ),
    ];
    for (q, _) in &traffic {
        ureq::post(&format!("{}/v1/chat/completions", srv.base))
            .send_json(
                json!({"model": "clauses", "max_tokens": 12, "temperature": 0,
                              "messages": [{"role": "user", "content": q}]}),
            )
            .expect("answered");
    }
    let st = hone_ops::open_store(Some(store_s), None).unwrap();
    let pending = || {
        st.review_items(&hone_ops::review::ReviewQuery {
            pending: Some(true),
            limit: 10,
            ..Default::default()
        })
        .unwrap()
    };
    let t0 = Instant::now();
    while pending().len() < traffic.len() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the queue did not fill"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // the reviewer corrects every answer in the page
    let b = Browser::launch().unwrap();
    b.goto(&format!("{}/admin/review", srv.base)).unwrap();
    let key = b.find("#key").unwrap();
    b.type_text(&key, "loop-key").unwrap();
    b.click_css("#load").unwrap();
    b.wait_for(".item", Duration::from_secs(10)).unwrap();
    let n = b.find_all(".item").unwrap().len();
    assert_eq!(n, traffic.len());
    let mut corrected = 0;
    for k in 1..=n {
        let q = b
            .text(&b.find(&format!(".item:nth-of-type({k}) .msg")).unwrap())
            .unwrap();
        let (_, label) = traffic
            .iter()
            .find(|(t, _)| q.contains(t))
            .expect("a traffic question");
        let answer = b
            .find(&format!(".item:nth-of-type({k}) textarea.answer"))
            .unwrap();
        let want = json!({"label": label}).to_string();
        let got = b.property(&answer, "value").unwrap();
        if got.as_str().map(str::trim) == Some(want.as_str()) {
            // right already: confirm it
            b.click_css(&format!(".item:nth-of-type({k}) .mark-correct"))
                .unwrap();
        } else {
            b.clear(&answer).unwrap();
            b.type_text(&answer, &want).unwrap();
            b.click_css(&format!(".item:nth-of-type({k}) .mark-wrong"))
                .unwrap();
            corrected += 1;
        }
        b.wait_for(
            &format!(".item:nth-of-type({k}).done"),
            Duration::from_secs(10),
        )
        .unwrap();
    }
    drop(b);
    drop(srv);
    assert!(
        corrected > 0,
        "v1 answered every new question right: nothing to correct"
    );

    // export, retrain, release, promote
    let corrections = d.join("corrections.jsonl");
    let out = hone(&[
        "data",
        "from-feedback",
        "--out",
        corrections.to_str().unwrap(),
        "--store",
        store_s,
    ]);
    assert!(out.contains(&format!("{n} examples written")), "{out}");
    let out = hone(&[
        "retrain",
        "clauses",
        "--feedback",
        corrections.to_str().unwrap(),
        "--out",
        d.join("run2").to_str().unwrap(),
        "--repeat",
        "8",
        "--set",
        "optim.epochs=4",
        "--canary",
        "20",
        "--store",
        store_s,
    ]);
    println!("{out}");
    assert!(out.contains("registered clauses@2"), "{out}");
    let v2 = st.version(&"clauses@2".parse().unwrap()).unwrap().unwrap();
    let m = &v2.meta.metrics;
    assert!(
        m["metrics.corrected_accuracy"] > m["metrics.corrected_accuracy_prod"],
        "v2 is not better on the corrected cases: {m:?}"
    );
    let dep = st.deployment("clauses").unwrap().unwrap();
    assert_eq!(dep.canary.as_ref().map(|c| c.version), Some(2), "{out}");
    hone(&["deploy", "promote", "clauses", "--store", store_s]);
    let dep = st.deployment("clauses").unwrap().unwrap();
    assert_eq!((dep.prod, dep.previous), (Some(2), Some(1)));

    let hist = hone(&[
        "registry",
        "history",
        "clauses",
        "--store",
        store_s,
        "--html",
        d.join("history.html").to_str().unwrap(),
    ]);
    println!("{hist}");
    let row = |v: &str| hist.lines().find(|l| l.starts_with(v)).unwrap().to_string();
    assert!(row("clauses@1").contains(" 6 "), "{hist}");
    // 6 recorded examples + 3 reviewed answers x 8
    assert!(row("clauses@2").contains(" 30 "), "{hist}");
    assert!(hist.contains("corrected_accuracy"), "{hist}");
    let page = std::fs::read_to_string(d.join("history.html")).unwrap();
    assert_eq!(page.matches("training examples</title>").count(), 2);
}
