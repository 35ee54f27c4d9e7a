//! A canary release end to end on the real model (issue 18, acceptance 1, 2 and 5): a good v1
//! in prod, a deliberately broken v2 (its adapter wrecks the model, so its answers stop being
//! JSON) as a 10% canary; the share holds within a binomial margin, the policy rolls v2 back
//! on its own and records why, every request during the switch is answered, and a rollback
//! takes effect in well under a second without loading weights.

mod common;

use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{load, save_scaled_adapter, smollm2, Server};
use hone_ops::deployment::Change;
use hone_ops::registry;
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

/// A chat request whose answer is meant to be `{"label": ...}`.
fn json_request(i: usize, stream: bool) -> Value {
    json!({
        "model": "nda",
        "messages": [
            {"role": "system", "content": "Answer with a JSON object {\"label\": \"yes\"} or {\"label\": \"no\"}."},
            {"role": "user", "content": QUESTIONS[i % QUESTIONS.len()]},
        ],
        "max_tokens": 24,
        "temperature": 0.7,
        "seed": i,
        "user": format!("user-{i}"),
        "stream": stream,
        "response_format": {"type": "json_object"},
    })
}

/// What a chat request got: status, the version that answered, whether a stream ended with
/// `[DONE]` (always true for a plain answer).
struct Answer {
    status: u16,
    model: String,
    complete: bool,
}

fn chat(url: &str, body: &Value) -> Answer {
    let stream = body["stream"].as_bool().unwrap_or(false);
    let resp = ureq::post(&format!("{url}/v1/chat/completions"))
        .set("Content-Type", "application/json")
        .send_string(&body.to_string());
    let resp = match resp {
        Ok(r) => r,
        Err(ureq::Error::Status(code, _)) => {
            return Answer {
                status: code,
                model: String::new(),
                complete: false,
            }
        }
        Err(e) => panic!("transport error: {e}"),
    };
    let status = resp.status();
    if !stream {
        let v: Value = resp.into_json().unwrap();
        return Answer {
            status,
            model: v["model"].as_str().unwrap_or_default().to_string(),
            complete: v["choices"][0]["finish_reason"].is_string(),
        };
    }
    let (mut model, mut complete) = (String::new(), false);
    for line in BufReader::new(resp.into_reader()).lines() {
        let line = line.expect("the stream is not cut");
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            complete = true;
            break;
        }
        let v: Value = serde_json::from_str(data).unwrap();
        assert!(v.get("error").is_none(), "error in stream: {v}");
        model = v["model"].as_str().unwrap_or_default().to_string();
    }
    Answer {
        status,
        model,
        complete,
    }
}

fn admin(
    url: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    key: Option<&str>,
) -> (u16, Value) {
    let mut req = ureq::request(method, &format!("{url}{path}"));
    if let Some(k) = key {
        req = req.set("Authorization", &format!("Bearer {k}"));
    }
    let r = match body {
        Some(b) => req.send_string(b),
        None => req.call(),
    };
    match r {
        Ok(r) => (r.status(), r.into_json().unwrap_or(Value::Null)),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap_or(Value::Null)),
        Err(e) => panic!("transport error: {e}"),
    }
}

/// Sends `bodies` from `threads` threads at once; the answers in order.
fn drive(url: &str, bodies: Vec<Value>, threads: usize) -> Vec<Answer> {
    let bodies = Arc::new(bodies);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (bodies, next, url) = (bodies.clone(), next.clone(), url.to_string());
            std::thread::spawn(move || {
                let mut out = Vec::new();
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if i >= bodies.len() {
                        return out;
                    }
                    out.push((i, chat(&url, &bodies[i])));
                }
            })
        })
        .collect();
    let mut all: Vec<(usize, Answer)> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, a)| a).collect()
}

#[test]
fn a_broken_canary_is_rolled_back_by_its_policy_while_every_request_is_answered() {
    let Some(path) = smollm2() else {
        println!("skipped: smollm2 is not cached (hone model fetch smollm2)");
        return;
    };
    // v1: a mild adapter (answers stay JSON); v2: B drawn 30x larger, which wrecks the model
    // (measured: 10 of 12 answers no longer parse, mean token log-prob -7.2 against -3.2).
    let (_dir, store) = registry_of(&path, &[(1, 0.03), (3, 1.0)]);

    let config = ServerConfig {
        admin_key: Some(KEY.into()),
        ..ServerConfig::default()
    };
    let srv = Server::start_with_store(&path, config, &[], Some(Arc::clone(&store)));
    let url = srv.url.clone();

    // The admin API refuses a missing or wrong key, and changes nothing.
    for key in [None, Some("wrong")] {
        let (code, body) = admin(
            &url,
            "POST",
            "/admin/deployments/nda",
            Some(r#"{"action":"rollback"}"#),
            key,
        );
        assert_eq!(code, 401, "{body}");
        let (code, _) = admin(&url, "GET", "/admin/versions", None, key);
        assert_eq!(code, 401);
    }

    // v2 as a 10% canary.
    let (code, body) = admin(
        &url,
        "POST",
        "/admin/deployments/nda",
        Some(r#"{"action":"deploy","version":2,"canary":10}"#),
        Some(KEY),
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["deployment"]["canary"]["version"], 2);

    // 1. The share: 600 one-token requests from distinct users (no policy yet).
    let n = 600;
    let bodies: Vec<Value> = (0..n)
        .map(|i| {
            json!({"model": "nda", "messages": [{"role": "user", "content": "Hi"}],
                   "max_tokens": 1, "user": format!("share-{i}")})
        })
        .collect();
    let answers = drive(&url, bodies, 8);
    assert!(answers.iter().all(|a| a.status == 200 && a.complete));
    let to_canary = answers.iter().filter(|a| a.model == "nda@2").count();
    let to_prod = answers.iter().filter(|a| a.model == "nda@1").count();
    assert_eq!(to_canary + to_prod, n);
    // binomial(600, 0.1): mean 60, sd 7.35; 3.5 sd either side
    println!("canary share: {to_canary}/{n}");
    assert!(
        (34..=86).contains(&to_canary),
        "canary answered {to_canary} of {n}"
    );
    // the same user always lands on the same side
    let again = chat(
        &url,
        &json!({"model": "nda", "messages": [{"role": "user", "content": "Hi"}],
                                   "max_tokens": 1, "user": "share-0"}),
    );
    assert_eq!(again.model, answers[0].model);

    // 2. The policy: answers must parse as JSON. Drive JSON traffic (half streamed) until the
    //    policy rolls v2 back on its own; every request during the switch must be answered.
    let policy = "min_requests = 10\nexpect_json = true\n[gates]\nmax_parse_failure_rate = 0.3\nmax_error_rate = 0.05\n";
    let (code, body) = admin(
        &url,
        "PUT",
        "/admin/deployments/nda/policy",
        Some(policy),
        Some(KEY),
    );
    assert_eq!(code, 200, "{body}");
    let t0 = Instant::now();
    let mut round = 0;
    let rolled_back = loop {
        let bodies: Vec<Value> = (0..40)
            .map(|i| json_request(round * 40 + i, i % 2 == 0))
            .collect();
        for a in drive(&url, bodies, 4) {
            assert_eq!(a.status, 200);
            assert!(a.complete, "a stream or answer was cut during the switch");
            assert!(a.model == "nda@1" || a.model == "nda@2", "{}", a.model);
        }
        round += 1;
        let events = store.events(Some("nda"), 50).unwrap();
        if let Some(e) = events.iter().find(|e| e.kind == "rollback") {
            break e.clone();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(240),
            "the policy never rolled back"
        );
    };
    println!(
        "policy rollback after {round} rounds of 40: {}",
        rolled_back.message
    );
    assert_eq!(rolled_back.actor, "policy");
    assert!(
        rolled_back.message.contains("parse_failure_rate"),
        "{}",
        rolled_back.message
    );
    let gates = &rolled_back.detail["note"]["verdict"]["gates"];
    let g = gates
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["gate"] == "parse_failure_rate")
        .unwrap();
    assert_eq!(g["passed"], false);
    assert!(g["value"].as_f64().unwrap() > 0.3, "{g}");
    assert_eq!(
        rolled_back.detail["note"]["canary"]["requests"]
            .as_u64()
            .map(|r| r >= 10),
        Some(true)
    );
    // afterwards everything goes to prod
    let after = drive(
        &url,
        (0..20)
            .map(|i| json_request(1000 + i, i % 2 == 0))
            .collect(),
        4,
    );
    assert!(after
        .iter()
        .all(|a| a.status == 200 && a.complete && a.model == "nda@1"));
    let d = store.deployment("nda").unwrap().unwrap();
    assert_eq!((d.prod, d.canary.is_none()), (Some(1), true));

    // 3. /metrics with version labels parses, and agrees with what the clients saw.
    let scrape = scrape(&url);
    let value = |name: &str, labels: &[(&str, &str)]| metric(&scrape, name, labels);
    let v2_ok = value(
        "hone_version_requests_total",
        &[("model", "nda"), ("version", "2"), ("result", "ok")],
    );
    assert!(v2_ok >= to_canary as f64 + 10.0, "{v2_ok}");
    assert!(
        value(
            "hone_version_parse_failures_total",
            &[("model", "nda"), ("version", "2")]
        ) > 0.0
    );
    assert!(
        value(
            "hone_version_json_checked_total",
            &[("model", "nda"), ("version", "1")]
        ) >= 20.0
    );
    assert!(
        value(
            "hone_version_labels_total",
            &[("model", "nda"), ("version", "1")]
        ) > 0.0
    );
    assert!(
        value(
            "hone_version_logprob_mean",
            &[("model", "nda"), ("version", "1")]
        ) < 0.0
    );
    assert_eq!(
        value("hone_deployment_canary_version", &[("model", "nda")]),
        0.0
    );
    assert_eq!(
        value(
            "hone_deployment_rollbacks_total",
            &[("model", "nda"), ("actor", "policy")]
        ),
        1.0
    );
    assert!(scrape
        .samples
        .iter()
        .any(|s| s.metric == "hone_version_request_seconds_count"
            && s.labels.get("version") == Some("2")));

    // 4. Rollback takes effect at once and loads nothing. Canary v2 again (already loaded):
    //    through the admin API the swap is local; from the store (the CLI, another replica)
    //    the server applies it on its next look.
    let loads = || value_of(&url, "hone_adapter_loads_total", &[("result", "ok")]);
    let (code, _) = admin(
        &url,
        "PUT",
        "/admin/deployments/nda/policy",
        Some("min_requests = 1000000\n"),
        Some(KEY),
    );
    assert_eq!(code, 200);
    let (code, body) = admin(
        &url,
        "POST",
        "/admin/deployments/nda",
        Some(r#"{"action":"deploy","version":2,"canary":50}"#),
        Some(KEY),
    );
    assert_eq!(code, 200, "{body}");
    let loads_before = loads();
    let t = Instant::now();
    let (code, body) = admin(
        &url,
        "POST",
        "/admin/deployments/nda",
        Some(r#"{"action":"rollback"}"#),
        Some(KEY),
    );
    let api_wall = t.elapsed();
    assert_eq!(code, 200, "{body}");
    let swap_ms = body["swap_ms"].as_f64().unwrap();
    let first = chat(&url, &json_request(5000, false));
    let until_served = t.elapsed();
    assert_eq!(first.model, "nda@1");
    let burst = drive(
        &url,
        (0..20).map(|i| json_request(6000 + i, false)).collect(),
        4,
    );
    assert!(burst.iter().all(|a| a.model == "nda@1"));
    println!("admin rollback: swap {swap_ms:.3} ms, API call {:.1} ms, first answer from prod {:.1} ms after the call",
             api_wall.as_secs_f64() * 1000.0, until_served.as_secs_f64() * 1000.0);
    assert!(api_wall < Duration::from_secs(1), "{api_wall:?}");

    // from the store, as `hone deploy rollback` without --server does
    let (code, _) = admin(
        &url,
        "POST",
        "/admin/deployments/nda",
        Some(r#"{"action":"deploy","version":2,"canary":50}"#),
        Some(KEY),
    );
    assert_eq!(code, 200);
    let t = Instant::now();
    store
        .change("nda", &Change::Rollback, None, "cli", None)
        .unwrap();
    loop {
        if value_of(&url, "hone_deployment_canary_version", &[("model", "nda")]) == 0.0 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "the server did not apply the rollback within 1 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let store_path = t.elapsed();
    println!(
        "store rollback applied by the server after {:.1} ms",
        store_path.as_secs_f64() * 1000.0
    );
    assert_eq!(loads(), loads_before, "a rollback loaded weights");

    // 5. A version whose files are corrupt is refused, prod untouched.
    let v2 = store.version(&"nda@2".parse().unwrap()).unwrap().unwrap();
    let weights =
        registry::object_dir(store.as_ref(), &v2.meta).join(hone_model::peft::WEIGHTS_FILE);
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(&weights, bytes).unwrap();
    let (code, body) = admin(
        &url,
        "POST",
        "/admin/deployments/nda",
        Some(r#"{"action":"deploy","version":2}"#),
        Some(KEY),
    );
    assert_eq!(code, 400, "{body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("nda@2") && msg.contains("corrupt"), "{msg}");
    let d = store.deployment("nda").unwrap().unwrap();
    assert_eq!((d.prod, d.canary.is_none()), (Some(1), true));
    assert_eq!(chat(&url, &json_request(7000, false)).model, "nda@1");
}

/// `/metrics`, parsed by a Prometheus text-format parser (it must parse).
fn scrape(url: &str) -> prometheus_parse::Scrape {
    let text = ureq::get(&format!("{url}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
}

/// The sum of the samples of `name` whose labels include `labels`.
fn metric(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

fn value_of(url: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric(&scrape(url), name, labels)
}

/// A SQLite registry with one version of `nda` per (seed, scale) adapter, v1 prod.
fn registry_of(
    path: &std::path::Path,
    adapters: &[(u64, f32)],
) -> (tempfile::TempDir, Arc<dyn hone_ops::Store>) {
    let dir = tempfile::tempdir().unwrap();
    let m = load(path);
    let store =
        hone_ops::open_store(Some(dir.path().join("registry.db").to_str().unwrap()), None).unwrap();
    for (i, &(seed, scale)) in adapters.iter().enumerate() {
        let d = dir.path().join(format!("v{}", i + 1));
        save_scaled_adapter(&m, &d, seed, scale);
        registry::add(store.as_ref(), "nda", &d, "", "test").unwrap();
    }
    store
        .change("nda", &Change::Prod(1), None, "test", None)
        .unwrap();
    (dir, store)
}

#[test]
fn a_canary_that_passes_every_gate_is_promoted_by_its_policy() {
    let Some(path) = smollm2() else {
        println!("skipped: smollm2 is not cached (hone model fetch smollm2)");
        return;
    };
    let (_dir, store) = registry_of(&path, &[(1, 0.03), (2, 0.03)]);
    let policy = "min_requests = 8\nexpect_json = true\n[gates]\nmax_parse_failure_rate = 0.5\nmax_error_rate = 0.1\n[promote]\nauto = true\nmin_requests = 8\n";
    store.set_policy("nda", policy, "test").unwrap();
    store
        .change(
            "nda",
            &Change::Canary {
                version: 2,
                percent: 50.0,
            },
            None,
            "test",
            None,
        )
        .unwrap();
    let srv = Server::start_with_store(
        &path,
        ServerConfig::default(),
        &[],
        Some(Arc::clone(&store)),
    );
    let t0 = Instant::now();
    let mut i = 0;
    let promoted = loop {
        for a in drive(
            &srv.url,
            (0..16).map(|k| json_request(i * 16 + k, false)).collect(),
            4,
        ) {
            assert_eq!(a.status, 200);
        }
        i += 1;
        if let Some(e) = store
            .events(Some("nda"), 20)
            .unwrap()
            .into_iter()
            .find(|e| e.kind == "promote")
        {
            break e;
        }
        assert!(t0.elapsed() < Duration::from_secs(120), "never promoted");
    };
    assert_eq!(promoted.actor, "policy");
    assert!(
        promoted.message.contains("every gate passed"),
        "{}",
        promoted.message
    );
    let d = store.deployment("nda").unwrap().unwrap();
    assert_eq!(
        (d.prod, d.previous, d.canary.is_none()),
        (Some(2), Some(1), true)
    );
    // the server follows: every answer now comes from v2
    std::thread::sleep(Duration::from_millis(600));
    let after = drive(
        &srv.url,
        (0..8).map(|k| json_request(900 + k, false)).collect(),
        4,
    );
    assert!(after.iter().all(|a| a.model == "nda@2"));
}

/// The hallucination signal: quotes in a version's JSON answers (`evidence` here) are checked
/// against the request's text. The schema forces one of two quotes, one from the input and one
/// not, so every answer's count is known from its text.
#[test]
fn quotes_missing_from_the_input_are_counted_per_version() {
    let Some(path) = smollm2() else {
        println!("skipped: smollm2 is not cached (hone model fetch smollm2)");
        return;
    };
    let (_dir, store) = registry_of(&path, &[(1, 0.03)]);
    let srv = Server::start_with_store(
        &path,
        ServerConfig::default(),
        &[],
        Some(Arc::clone(&store)),
    );
    let schema = json!({"type": "object", "required": ["evidence"], "additionalProperties": false,
        "properties": {"evidence": {"enum": ["The Recipient may disclose it to employees.",
                                             "purple monkey dishwasher"]}}});
    let mut missing = 0;
    for i in 0..8 {
        let (code, body) = srv.post(
            "/v1/chat/completions",
            &json!({"model": "nda", "max_tokens": 40, "temperature": 1.0, "seed": i,
                    "messages": [{"role": "user", "content": "Clause 4: the recipient  may disclose it to EMPLOYEES. Quote the evidence."}],
                    "response_format": {"type": "json_schema", "json_schema": {"name": "e", "schema": schema}}}),
        );
        assert_eq!(code, 200, "{body}");
        let text = body["choices"][0]["message"]["content"].as_str().unwrap();
        let v: Value = serde_json::from_str(text).unwrap();
        if v["evidence"] == "purple monkey dishwasher" {
            missing += 1;
        }
    }
    let s = srv
        .state
        .deployments
        .as_ref()
        .unwrap()
        .live
        .snapshot(&"nda@1".parse().unwrap());
    assert_eq!((s.quotes, s.quotes_missing), (8, missing));
    let found = metric(
        &scrape(&srv.url),
        "hone_version_quotes_total",
        &[("version", "1"), ("result", "found")],
    );
    assert_eq!(found, (8 - missing) as f64);
}
