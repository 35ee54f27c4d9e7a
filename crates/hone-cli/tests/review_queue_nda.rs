//! NDA review results in the review queue (issue 19): a review queued through the store API in
//! the contract of `hone_ops::review_doc` is corrected in the review page by clicks in headless
//! Chromium (a label changed, evidence removed and added by clicking spans of the document),
//! and `hone data from-feedback` writes the training document with exactly those labels and
//! span indices; a bad correction through the admin API is a 400 naming the field.
//! Skips (printing why) without the cached model (the server loads one) or without Chromium.

#[path = "../../hone-eval/tests/common/browser.rs"]
mod browser;
mod serve_support;

use std::process::Command;
use std::time::Duration;

use browser::Browser;
use hone_ops::request_log::LogRecord;
use hone_ops::review_doc::{ReviewInput, ENDPOINT};
use serde_json::{json, Value};

const KEY: &str = "nda-review-key";

/// Four clauses, one span each, with gaps between them.
const TEXT: &str = "Mutual NDA.\nThe recipient may share with its employees.\n\
The recipient shall not share with third parties.\nObligations survive for two years.";

fn spans() -> Vec<[usize; 2]> {
    let mut out = Vec::new();
    let mut pos = 0;
    for line in TEXT.split('\n') {
        let n = line.chars().count();
        out.push([pos, pos + n]);
        pos += n + 1;
    }
    out
}

/// The `hone review --format json` output: nda-1 entailed by span 0 (wrongly), nda-19 by span
/// 3, the other checks not mentioned.
fn doc_review(doc_id: &str) -> String {
    let sp = spans();
    let ev = |i: usize, score: f64| {
        let [s, e] = sp[i];
        json!({"start": s, "end": e, "score": score,
               "text": TEXT.chars().skip(s).take(e - s).collect::<String>()})
    };
    let mut checks = serde_json::Map::new();
    for c in hone_data::nda::CHECKS.iter() {
        let (label, evidence) = match c.id {
            "nda-1" => ("Entailment", vec![ev(0, 0.7)]),
            "nda-19" => ("Entailment", vec![ev(3, 0.9)]),
            _ => ("NotMentioned", vec![]),
        };
        checks.insert(
            c.id.into(),
            json!({"label": label, "evidence": evidence,
                   "probs": {"Entailment": 0.5, "Contradiction": 0.2, "NotMentioned": 0.3}}),
        );
    }
    json!({"doc_id": doc_id, "source": format!("{doc_id}.txt"), "checks": checks,
           "flags": [], "warnings": [], "timing": {"total_ms": 12.0}})
    .to_string()
}

fn record(input: Value, output: String, endpoint: &str, logprob: f64) -> LogRecord {
    LogRecord {
        id: 0,
        time_ms: hone_ops::now_ms(),
        model: "nda".into(),
        version: Some("nda@1".into()),
        endpoint: endpoint.into(),
        status: 200,
        caller: Some("hone-data-select".into()),
        input,
        output,
        finish: Some("stop".into()),
        latency_ms: 1.0,
        prompt_tokens: 0,
        output_tokens: 0,
        mean_logprob: Some(logprob),
    }
}

fn hone(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_hone"))
        .args(args)
        .output()
        .expect("hone runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn a_review_is_corrected_by_clicks_and_becomes_a_training_document() {
    if browser::skip_if_unavailable() {
        return;
    }
    let Some(model) = hone_model::fetch::cached_for_tests("smollm2") else {
        println!("skipped: smollm2 is not cached (hone model fetch smollm2)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("registry.db");
    let store_s = store.to_str().unwrap();
    let srv = serve_support::Server::start_with_env(
        &[
            "--model",
            model.to_str().unwrap(),
            "--store",
            store_s,
            "--admin-key-env",
            "HONE_NDA_KEY",
        ],
        &[("HONE_NDA_KEY", KEY)],
    );

    // the producer's side: two reviews and a chat answer, queued (least confident first)
    let st = hone_ops::open_store(Some(store_s), None).unwrap();
    let review = |id: &str| ReviewInput::new(id, format!("{id}.txt"), TEXT, spans()).to_value();
    let ids = st
        .append_requests(&[
            record(review("acme"), doc_review("acme"), ENDPOINT, -0.9),
            record(review("globex"), doc_review("globex"), ENDPOINT, -0.5),
            record(
                json!([{"role": "user", "content": "Is this clause mutual?"}]),
                "yes".into(),
                "chat_completions",
                -0.1,
            ),
        ])
        .unwrap();
    st.queue_for_review(&ids).unwrap();
    let items = st
        .review_items(&hone_ops::review::ReviewQuery {
            pending: Some(true),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    let item_of = |doc: &str| {
        items
            .iter()
            .find(|i| i.input["doc_id"] == doc)
            .map(|i| i.id)
            .unwrap()
    };
    let (acme, globex) = (item_of("acme"), item_of("globex"));

    // a bad correction through the admin API: 400 naming the field
    let post = |id: i64, body: Value| -> (u16, Value) {
        match ureq::post(&format!("{}/admin/review/items/{id}", srv.base))
            .set("Authorization", &format!("Bearer {KEY}"))
            .send_json(body)
        {
            Ok(r) => (r.status(), r.into_json().unwrap()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap()),
            Err(e) => panic!("{e}"),
        }
    };
    let bad = json!({"checks": {"nda-3": {"label": "Contradiction",
        "evidence": [{"start": 0, "end": 11}, {"start": 0, "end": 30}]}}})
    .to_string();
    let (code, body) = post(acme, json!({"mark": "wrong", "corrected": bad}));
    assert_eq!(code, 400, "{body}");
    assert_eq!(
        body["error"]["param"], "corrected.checks.nda-3.evidence[1]",
        "{body}"
    );
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("not one of the document's 4 spans"), "{msg}");
    let (code, body) = post(
        acme,
        json!({"mark": "wrong", "corrected": r#"{"checks": {"nda-6": {"label": "Entailment"}}}"#}),
    );
    assert_eq!(
        (code, body["error"]["param"].as_str()),
        (400, Some("corrected.checks.nda-6")),
        "{body}"
    );
    let (code, body) = post(
        acme,
        json!({"mark": "wrong", "corrected": r#"{"checks": {"nda-3": {"label": "Maybe"}}}"#}),
    );
    assert_eq!(
        (code, body["error"]["param"].as_str()),
        (400, Some("corrected.checks.nda-3.label")),
        "{body}"
    );
    // nothing was marked by the refused saves
    assert!(st
        .review_items(&hone_ops::review::ReviewQuery {
            pending: Some(false),
            limit: 10,
            ..Default::default()
        })
        .unwrap()
        .is_empty());

    // the reviewer, in the page
    let b = Browser::launch().unwrap();
    b.goto(&format!("{}/admin/review", srv.base)).unwrap();
    b.type_text(&b.find("#key").unwrap(), KEY).unwrap();
    b.click_css("#load").unwrap();
    b.wait_for(".item", Duration::from_secs(10)).unwrap();
    assert_eq!(b.find_all(".item").unwrap().len(), 3);
    assert_eq!(b.find_all(".item.review").unwrap().len(), 2);
    // the chat answer is shown as before: its messages and an answer to edit
    assert_eq!(
        b.find_all(".item:not(.review) textarea.answer")
            .unwrap()
            .len(),
        1
    );
    let card = format!(".item[data-id=\"{acme}\"]");
    assert_eq!(
        b.find_all(&format!("{card} table.checks tr.check"))
            .unwrap()
            .len(),
        17
    );
    let name = b
        .text(
            &b.find(&format!("{card} tr[data-check=\"nda-3\"] .pick"))
                .unwrap(),
        )
        .unwrap();
    assert_eq!(name, "nda-3 Verbal information included");
    let doc_text = b.text(&b.find(&format!("{card} .doc")).unwrap()).unwrap();
    assert!(doc_text.contains("survive for two years"), "{doc_text}");

    // nda-3: NotMentioned -> Contradiction, evidence spans 2 then 1 by clicks
    b.click_css(&format!(
        "{card} tr[data-check=\"nda-3\"] select.label option[value=\"Contradiction\"]"
    ))
    .unwrap();
    b.click_css(&format!("{card} tr[data-check=\"nda-3\"] .pick"))
        .unwrap();
    b.click_css(&format!("{card} .doc .span[data-i=\"2\"]"))
        .unwrap();
    b.click_css(&format!("{card} .doc .span[data-i=\"1\"]"))
        .unwrap();
    // a click on a span again takes it away, a second time puts it back
    b.click_css(&format!("{card} .doc .span[data-i=\"1\"]"))
        .unwrap();
    assert_eq!(
        b.find_all(&format!("{card} tr[data-check=\"nda-3\"] .chip"))
            .unwrap()
            .len(),
        1
    );
    b.click_css(&format!("{card} .doc .span[data-i=\"1\"]"))
        .unwrap();
    assert_eq!(
        b.find_all(&format!("{card} .doc .span.ev")).unwrap().len(),
        2,
        "the picked check's evidence is highlighted"
    );
    // nda-1: its evidence (span 0) removed with its ×, span 1 added by a click
    b.click_css(&format!(
        "{card} tr[data-check=\"nda-1\"] .chip button.remove"
    ))
    .unwrap();
    b.click_css(&format!("{card} tr[data-check=\"nda-1\"] .pick"))
        .unwrap();
    b.click_css(&format!("{card} .doc .span[data-i=\"1\"]"))
        .unwrap();
    b.click_css(&format!("{card} .mark-wrong")).unwrap();
    b.wait_for(&format!("{card}.done"), Duration::from_secs(10))
        .unwrap();
    // the other review is confirmed as it is, the chat answer too
    let other = format!(".item[data-id=\"{globex}\"]");
    b.click_css(&format!("{other} .mark-correct")).unwrap();
    b.wait_for(&format!("{other}.done"), Duration::from_secs(10))
        .unwrap();
    b.click_css(".item:not(.review) .mark-correct").unwrap();
    b.wait_for(".item:not(.review).done", Duration::from_secs(10))
        .unwrap();
    drop(b);
    drop(srv);

    // the list shows a review's label counts, the correction's once marked
    let (ok, out) = hone(&["review-queue", "list", "--marked", "--store", store_s]);
    assert!(ok, "{out}");
    let row = out
        .lines()
        .find(|l| l.contains("review of acme"))
        .unwrap_or_default();
    assert!(
        row.contains("2 entailed, 1 contradicted, 14 not mentioned"),
        "{out}"
    );
    // the show command reads the correction back
    let (ok, out) = hone(&[
        "review-queue",
        "show",
        &acme.to_string(),
        "--store",
        store_s,
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("nda-19   Survival of obligations"), "{out}");
    assert!(out.contains("nda-3    Contradiction"), "{out}");
    assert!(out.contains("(was NotMentioned)"), "{out}");

    // two kinds in one run: an error saying how to choose
    let docs = tmp.path().join("documents.jsonl");
    let docs_s = docs.to_str().unwrap();
    let (ok, out) = hone(&["data", "from-feedback", "--out", docs_s, "--store", store_s]);
    assert!(!ok && out.contains("--kind review"), "{out}");
    let (ok, out) = hone(&[
        "data",
        "from-feedback",
        "--out",
        docs_s,
        "--kind",
        "review",
        "--store",
        store_s,
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("2 review documents written"), "{out}");
    // the file reads as the review trainer's documents
    let read = hone_data::contractnli::read_documents(&docs).unwrap();
    assert_eq!(read.len(), 2);
    assert!(hone_data::split::is_documents_file(&docs).unwrap());
    let lines: Vec<Value> = std::fs::read_to_string(&docs)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by_id = |id: &str| lines.iter().find(|l| l["id"] == id).unwrap();
    let (a, g) = (by_id("acme"), by_id("globex"));
    assert_eq!(a["text"], TEXT);
    assert_eq!(a["spans"], json!(spans()));
    let labels = |d: &Value| -> Vec<(String, String, Vec<u64>)> {
        d["labels"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, l)| l["label"] != "not_mentioned")
            .map(|(k, l)| {
                (
                    k.clone(),
                    l["label"].as_str().unwrap().to_string(),
                    l["spans"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|s| s.as_u64().unwrap())
                        .collect(),
                )
            })
            .collect()
    };
    assert_eq!(a["labels"].as_object().unwrap().len(), 17);
    assert_eq!(
        labels(a),
        vec![
            ("nda-1".into(), "entailed".into(), vec![1]),
            ("nda-19".into(), "entailed".into(), vec![3]),
            ("nda-3".into(), "contradicted".into(), vec![1, 2]),
        ]
    );
    assert_eq!(
        a["provenance"],
        json!({"id": format!("feedback-{acme}-request-{}", ids[0]), "version": "nda@1",
               "mark": "wrong", "corrected": true})
    );
    // confirmed: the model's labels
    assert_eq!(
        labels(g),
        vec![
            ("nda-1".into(), "entailed".into(), vec![0]),
            ("nda-19".into(), "entailed".into(), vec![3]),
        ]
    );
    assert_eq!(g["provenance"]["corrected"], false);

    // QA: the corrected document against training data holding the same text with the
    // model's labels: a contradiction on the checks the reviewer changed
    let train = tmp.path().join("train.jsonl");
    std::fs::write(&train, serde_json::to_string(g).unwrap() + "\n").unwrap();
    let (ok, out) = hone(&[
        "data",
        "from-feedback",
        "--out",
        docs_s,
        "--kind",
        "review",
        "--train",
        train.to_str().unwrap(),
        "--eval",
        train.to_str().unwrap(),
        "--store",
        store_s,
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains("contradicts: correction 1 (acme), train document 1 (globex) on nda-3"),
        "{out}"
    );
    assert!(
        out.contains("duplicate: correction 2 (globex), train document 1 (globex)"),
        "{out}"
    );
    // the same text is in the evaluation set: both left out
    assert!(
        out.contains("2 corrections overlap the evaluation set: left out"),
        "{out}"
    );
    assert!(out.contains("0 review documents written"), "{out}");

    // the CLI's mark: a bad correction is refused naming the field, a partial one keeps the
    // model's other checks
    let g_id = globex.to_string();
    let (ok, out) = hone(&[
        "review-queue",
        "mark",
        &g_id,
        "wrong",
        "--output",
        r#"{"checks": {"nda-19": {"label": "Contradiction", "evidence": [{"start": 0, "end": 5}]}}}"#,
        "--store",
        store_s,
    ]);
    assert!(
        !ok && out.contains("corrected.checks.nda-19.evidence[0]"),
        "{out}"
    );
    let [s3, e3] = spans()[3];
    let (ok, out) = hone(&[
        "review-queue",
        "mark",
        &g_id,
        "wrong",
        "--output",
        &json!({"checks": {"nda-19": {"label": "Contradiction",
                                       "evidence": [{"start": s3, "end": e3}]}}})
        .to_string(),
        "--store",
        store_s,
    ]);
    assert!(ok && out.contains("with a correction"), "{out}");
    let (ok, out) = hone(&[
        "data",
        "from-feedback",
        "--out",
        docs_s,
        "--kind",
        "review",
        "--store",
        store_s,
    ]);
    assert!(ok, "{out}");
    let g: Value = std::fs::read_to_string(&docs)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["id"] == "globex")
        .unwrap();
    assert_eq!(
        labels(&g),
        vec![
            ("nda-1".into(), "entailed".into(), vec![0]),
            ("nda-19".into(), "contradicted".into(), vec![3]),
        ]
    );
    assert_eq!(g["provenance"]["corrected"], true);
}
