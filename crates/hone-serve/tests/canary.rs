//! A canary release end to end on the real model (issue 18, acceptance 1, 2 and 5).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{load, post_raw, save_scaled_adapter, smollm2, Server};
use hone_ops::deployment::Change;
use hone_ops::{registry, VersionRef};
use hone_serve::server::ServerConfig;
use serde_json::{json, Value};

const QUESTIONS: [&str; 6] = [
    "Is the sky blue?",
    "Is water wet?",
    "Is fire cold?",
    "Do cats bark?",
    "Is two larger than one?",
    "Is ice hot?",
];

fn request(model: &str, i: usize, user: Option<String>) -> Value {
    let mut v = json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "Answer with a JSON object {\"label\": \"yes\"} or {\"label\": \"no\"}."},
            {"role": "user", "content": QUESTIONS[i % QUESTIONS.len()]},
        ],
        "max_tokens": 24,
        "temperature": 0.7,
        "seed": i,
        "response_format": {"type": "json_object"},
    });
    if let Some(u) = user {
        v["user"] = json!(u);
    }
    v
}

#[test]
fn experiment() {
    let Some(path) = smollm2() else { return };
    let dir = tempfile::tempdir().unwrap();
    let m = load(&path);
    for (seed, scale) in [(1u64, 0.03f32), (2, 0.3), (3, 1.0), (4, 3.0)] {
        save_scaled_adapter(&m, &dir.path().join(format!("a{seed}")), seed, scale);
    }
    drop(m);
    let store = hone_ops::open_store(Some(dir.path().join("r.db").to_str().unwrap()), None).unwrap();
    for seed in 1..=4 {
        registry::add(store.as_ref(), "nda", &dir.path().join(format!("a{seed}")), "", "test").unwrap();
    }
    store.change("nda", &Change::Prod(1), None, "test", None).unwrap();
    let srv = Server::start_with_store(&path, ServerConfig::default(), &[], Some(Arc::clone(&store)));
    let d = srv.state.deployments.clone().unwrap();
    for v in 1..=4 {
        for i in 0..12 {
            let (code, body) = srv.post("/v1/chat/completions", &request(&format!("nda@{v}"), i, None));
            if i < 2 {
                println!("v{v} {code} {}", body["choices"][0]["message"]["content"]);
            }
        }
        let s = d.live.snapshot(&VersionRef::new("nda", v));
        println!("v{v}: lp {:?} json {}/{} p95 {:?}", s.logprob_mean, s.json_failures, s.json_checked, s.latency_p95_s);
    }
}
