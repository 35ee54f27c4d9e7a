//! Drift against the evaluation baseline on the real model: a version's baseline is measured
//! from its own greedy JSON answers; the same adapter registered with that baseline and asked
//! the same questions is not drifting (both tests p = 1), a different adapter registered with
//! the same baseline but asked for plain text is (format p < 0.001), in the status and in
//! `/metrics`.

mod common;

use std::sync::Arc;

use common::{load, save_scaled_adapter, smollm2, Server, PROMPTS};
use hone_ops::baseline::{classify, Answer, FormatClass, OutputBaseline};
use hone_ops::deployment::Change;
use hone_ops::registry;
use hone_ops::status::DeployStatus;
use hone_serve::server::ServerConfig;
use serde_json::{json, Value};

const KEY: &str = "admin-secret";

const QUESTIONS: [&str; 6] = [
    "Is the sky blue?",
    "Is water wet?",
    "Is fire cold?",
    "Do cats bark?",
    "Is two larger than one?",
    "Is ice hot?",
];

/// 24 requests: greedy JSON answers to the questions, or greedy plain answers to prompts.
fn requests(model: &str, as_json: bool) -> Vec<Value> {
    (0..24)
        .map(|i| {
            if as_json {
                json!({
                    "model": model,
                    "messages": [
                        {"role": "system", "content": "Answer with a JSON object {\"label\": \"yes\"} or {\"label\": \"no\"}."},
                        {"role": "user", "content": QUESTIONS[i % QUESTIONS.len()]},
                    ],
                    "max_tokens": 32,
                    "temperature": 0,
                    "response_format": {"type": "json_object"},
                })
            } else {
                json!({
                    "model": model,
                    "messages": [{"role": "user", "content": PROMPTS[i % PROMPTS.len()]}],
                    "max_tokens": 32,
                    "temperature": 0,
                })
            }
        })
        .collect()
}

/// The answers' baseline entries (output tokens, format class), as an evaluation records them.
fn answer(srv: &Server, body: &Value) -> Answer {
    let (code, v) = srv.post("/v1/chat/completions", body);
    assert_eq!(code, 200, "{v}");
    Answer {
        tokens: v["usage"]["completion_tokens"].as_u64().unwrap(),
        format: classify(
            v["choices"][0]["message"]["content"].as_str().unwrap(),
            v["choices"][0]["finish_reason"] == "length",
        ),
    }
}

fn admin(url: &str, method: &str, path: &str, body: Option<&str>) -> Value {
    let req = ureq::request(method, &format!("{url}{path}"))
        .set("Authorization", &format!("Bearer {KEY}"));
    let r = match body {
        Some(b) => req.send_string(b),
        None => req.call(),
    };
    r.unwrap().into_json().unwrap()
}

fn metric(url: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let text = ureq::get(&format!("{url}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
            _ => f64::NAN,
        })
}

#[test]
fn a_version_whose_answers_change_format_drifts_from_its_baseline_and_one_that_matches_does_not() {
    let Some(path) = smollm2() else {
        println!("skipped: smollm2 is not cached (hone model fetch smollm2)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let m = load(&path);
    let store: Arc<dyn hone_ops::Store> =
        hone_ops::open_store(Some(dir.path().join("registry.db").to_str().unwrap()), None).unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    save_scaled_adapter(&m, &a, 1, 0.03);
    save_scaled_adapter(&m, &b, 2, 0.03);
    drop(m);
    // nda@1: adapter a without a baseline, to measure one
    registry::add(store.as_ref(), "nda", &a, "", "test").unwrap();
    store
        .change("nda", &Change::Prod(1), None, "test", None)
        .unwrap();
    let config = ServerConfig {
        admin_key: Some(KEY.into()),
        ..ServerConfig::default()
    };
    let srv = Server::start_with_store(&path, config, &[], Some(Arc::clone(&store)));
    let url = srv.url.clone();

    // The evaluation: nda@1's greedy JSON answers.
    let answers: Vec<Answer> = requests("nda@1", true)
        .iter()
        .map(|r| answer(&srv, r))
        .collect();
    let baseline = OutputBaseline::from_answers("24 JSON questions", &answers).unwrap();
    assert!(
        baseline.share(FormatClass::JsonObject) >= 0.5,
        "constrained answers are JSON objects: {baseline:?}"
    );
    // nda@2: adapter a with that baseline; nda@3: adapter b with the same baseline
    baseline.write(&a).unwrap();
    baseline.write(&b).unwrap();
    let v2 = registry::add(store.as_ref(), "nda", &a, "", "test").unwrap();
    let v3 = registry::add(store.as_ref(), "nda", &b, "", "test").unwrap();
    // what was recorded is the file (JSON floats may differ from `baseline` in the last bit)
    let recorded = OutputBaseline::read(&a).unwrap();
    assert_eq!(v2.meta.baseline, recorded);
    assert_eq!(recorded.unwrap().formats, baseline.formats);
    assert_eq!((v2.version, v3.version), (2, 3));
    admin(
        &url,
        "POST",
        "/admin/deployments/nda",
        Some(r#"{"action":"deploy","version":2}"#),
    );
    admin(
        &url,
        "POST",
        "/admin/deployments/nda",
        Some(r#"{"action":"deploy","version":3,"canary":50}"#),
    );

    // Live: nda@2 answers the evaluation's questions again, nda@3 is asked for plain text.
    let same: Vec<Answer> = requests("nda@2", true)
        .iter()
        .map(|r| answer(&srv, r))
        .collect();
    assert_eq!(same, answers, "greedy answers repeat");
    let plain: Vec<Answer> = requests("nda@3", false)
        .iter()
        .map(|r| answer(&srv, r))
        .collect();
    let plain_json = plain
        .iter()
        .filter(|a| a.format == FormatClass::JsonObject)
        .count();
    assert!(plain_json < 4, "plain answers: {plain:?}");

    let st: DeployStatus =
        serde_json::from_value(admin(&url, "GET", "/admin/deployments/nda", None)).unwrap();
    let (prod, canary) = (st.prod.clone().unwrap(), st.canary.clone().unwrap());
    assert_eq!(prod.baseline.as_ref().unwrap().answers, 24);
    assert_eq!(prod.snapshot.formats, baseline.formats);
    let d2 = hone_ops::drift::drift(&baseline, &prod.snapshot);
    // the same 24 answers: equal means and shares, statistic 0, p = 1
    assert!(d2.length.as_ref().unwrap().p > 0.999, "{d2:?}");
    assert!(d2.format.as_ref().unwrap().p > 0.999, "{d2:?}");
    assert!(!d2.drifting());
    let d3 = hone_ops::drift::drift(&baseline, &canary.snapshot);
    assert!(d3.format.as_ref().unwrap().p < 0.001, "{d3:?}");
    assert!(d3.drifting());

    let text = hone_ops::status::render(&st);
    println!("{text}");
    for want in [
        "drift against the evaluation baseline:",
        "canary nda@3 DRIFTING: baseline of 24 answers (24 JSON questions)",
        "prod nda@2: baseline of 24 answers (24 JSON questions)",
        "format: ",
        "drift (p<0.001)",
        "no drift (p=1.000)",
    ] {
        assert!(text.contains(want), "missing `{want}` in:\n{text}");
    }

    let v = |version: &str, signal: &str| {
        metric(
            &url,
            "hone_version_drift_pvalue",
            &[("model", "nda"), ("version", version), ("signal", signal)],
        )
    };
    assert!(v("2", "format").unwrap() > 0.999);
    assert!(v("2", "length").unwrap() > 0.999);
    assert!(v("3", "format").unwrap() < 0.001);
    let count = |version: &str, class: FormatClass| {
        metric(
            &url,
            "hone_version_format_total",
            &[
                ("model", "nda"),
                ("version", version),
                ("class", class.as_str()),
            ],
        )
        .unwrap_or(0.0)
    };
    for c in FormatClass::ALL {
        let want = plain.iter().filter(|a| a.format == c).count() as f64;
        assert_eq!(count("3", c), want, "{}", c.as_str());
    }
    assert_eq!(
        count("2", FormatClass::JsonObject),
        baseline.formats[&FormatClass::JsonObject] as f64
    );
    // a new canary starts new windows: no answers yet, so no drift series (not the old
    // p-values)
    admin(
        &url,
        "POST",
        "/admin/deployments/nda",
        Some(r#"{"action":"deploy","version":1,"canary":10}"#),
    );
    assert_eq!(v("2", "format"), None);
    assert_eq!(v("2", "length"), None);
}
