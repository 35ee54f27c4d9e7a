//! The server in process, over HTTP, with the real SmolLM2: greedy output equals
//! `hone generate` (alone and in a batch of 16 mixed-adapter requests; Gemma 3 270M too, with 9), a KV budget too small
//! for all requests preempts and still finishes every request correctly, `/metrics` counts what
//! was asked, errors come in OpenAI's shape, overload gets 429, a client that goes away frees
//! its KV blocks, and shutdown drains requests in flight.

use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use hone_model::chat_template::Message;
use hone_model::{generate, GenRequest, LoadedModel, SamplingParams};
use hone_serve::engine::EngineConfig;
use hone_serve::openai::Limits;
use hone_serve::server::ServerConfig;
use serde_json::{json, Value};

mod common;
use common::*;

fn config(model_name: &str) -> ServerConfig {
    ServerConfig {
        model_name: model_name.into(),
        limits: Limits {
            max_tokens_cap: 1000,
            default_max_tokens: 64,
        },
        ..ServerConfig::default()
    }
}

/// What `hone generate` prints for a user message: chat template, greedy, alone.
fn reference(m: &LoadedModel, user: &str, max_tokens: usize) -> String {
    let text = m.template.render(&[Message::user(user)], true).unwrap();
    let prompt = m.tokenizer.encode(&text, true).unwrap();
    let mut stop_tokens = m.template.stop_token_ids(&m.tokenizer);
    stop_tokens.extend(m.tokenizer.eos_id());
    let out = generate(
        &m.model,
        &m.tokenizer,
        &[GenRequest {
            prompt,
            max_tokens,
            sampling: SamplingParams::greedy(),
            stop_strings: Vec::new(),
            stop_tokens,
        }],
        |_, _| {},
    )
    .unwrap();
    out[0].text.clone()
}

fn chat_body(model: &str, user: &str, max_tokens: usize) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": user}],
           "max_tokens": max_tokens, "temperature": 0})
}

fn content(v: &Value) -> String {
    v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_else(|| panic!("no content in {v}"))
        .to_string()
}

/// Serves `path` with two random adapters (B drawn at `scale`) and checks `n` greedy chat
/// requests (prompt i % 8, the base or an adapter by turn) against `hone generate` alone with
/// the same model and adapter: one after another, then all at once, sharing decode steps with
/// the adapters mixed in one batch. Returns the server and the first adapter's model.
fn served_like_generate(path: &Path, name: &str, n: usize, scale: f32) -> (Server, LoadedModel) {
    let dir = tempfile::tempdir().unwrap();
    let (d1, d2) = (dir.path().join("a1"), dir.path().join("a2"));
    let base = load(path);
    save_adapter_for(&base, name, &d1, 1, scale);
    save_adapter_for(&base, name, &d2, 2, scale);
    const MAX: usize = 20;
    // References: the base, and each adapter attached to its own model (as `hone generate
    // --adapter` does).
    let with = |d: &Path| {
        let mut m = load(path);
        let a = hone_model::load_adapter(d).unwrap();
        m.model.attach_adapter(&a).unwrap();
        m
    };
    let (m1, m2) = (with(&d1), with(&d2));
    let models = [(name, &base), ("a1", &m1), ("a2", &m2)];
    let jobs: Vec<(&str, &str)> = (0..n).map(|i| (models[i % 3].0, PROMPTS[i % 8])).collect();
    let want: Vec<String> = (0..n)
        .map(|i| reference(models[i % 3].1, jobs[i].1, MAX))
        .collect();
    assert!(
        (0..n).any(|i| i % 3 != 0 && want[i] != reference(&base, jobs[i].1, MAX)),
        "the adapters must change some answer, or this test shows nothing"
    );
    let srv = Server::start(path, config(name), &[("a1", &d1), ("a2", &d2)]);
    // Alone, one after another.
    for (i, &(model, user)) in jobs.iter().enumerate() {
        let (code, v) = srv.post("/v1/chat/completions", &chat_body(model, user, MAX));
        assert_eq!(code, 200, "{v}");
        assert_eq!(content(&v), want[i], "request {i} ({model}) alone");
    }
    // All at once: they share decode steps, adapters mixed in one batch.
    let barrier = Arc::new(Barrier::new(n));
    let got: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = jobs
            .iter()
            .map(|&(model, user)| {
                let b = barrier.clone();
                let srv = &srv;
                s.spawn(move || {
                    b.wait();
                    let (code, v) = srv.post("/v1/chat/completions", &chat_body(model, user, MAX));
                    assert_eq!(code, 200, "{v}");
                    content(&v)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for i in 0..n {
        assert_eq!(got[i], want[i], "request {i} ({}) in the batch", jobs[i].0);
    }
    (srv, m1)
}

#[test]
fn greedy_output_equals_hone_generate_alone_and_in_a_mixed_batch_of_16() {
    let Some(path) = smollm2() else { return };
    let (srv, m1) = served_like_generate(&path, "smollm2", 16, 0.03);
    const MAX: usize = 20;
    // Streaming gives the same text.
    let body = json!({"model": "a1", "messages": [{"role": "user", "content": PROMPTS[0]}],
                      "max_tokens": MAX, "temperature": 0, "stream": true});
    let text = ureq::post(&format!("{}/v1/chat/completions", srv.url))
        .send_string(&body.to_string())
        .unwrap()
        .into_string()
        .unwrap();
    let mut streamed = String::new();
    let mut saw_done = false;
    for line in text.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if line == "[DONE]" {
            saw_done = true;
            continue;
        }
        let v: Value = serde_json::from_str(line).unwrap();
        if let Some(c) = v["choices"][0]["delta"]["content"].as_str() {
            streamed.push_str(c);
        }
    }
    assert!(saw_done, "the stream ends with [DONE]");
    assert_eq!(streamed, reference(&m1, PROMPTS[0], MAX));
}

/// Gemma 3 270M (K-quant weights, a 262k vocabulary, sliding-window and global layers) served
/// with two adapters the same way: what the server answers, alone or batched, is what
/// `hone generate` gives.
#[test]
fn gemma3_270m_serves_adapters_mixed_in_a_batch_like_hone_generate() {
    let Some(path) = gemma3_270m() else { return };
    served_like_generate(&path, "gemma3-270m", 9, 0.03);
}

#[test]
fn a_kv_budget_too_small_for_all_requests_preempts_and_all_finish_correctly() {
    let Some(path) = smollm2() else { return };
    let m = load(&path);
    const MAX: usize = 48;
    let want: Vec<String> = PROMPTS.iter().map(|p| reference(&m, p, MAX)).collect();
    // Room for about 3 of the 8 sequences at full length (~40 prompt + 48 new tokens each).
    let block = hone_model::kv_cache::KvCache::bytes_per_block(
        m.model.layers.len(),
        m.model.kv_dim(),
        hone_model::kv_cache::DEFAULT_BLOCK_SIZE,
    );
    let mut cfg = config("smollm2");
    cfg.engine = EngineConfig {
        max_batch: 8,
        kv_bytes: 18 * block,
        ..EngineConfig::default()
    };
    let srv = Server::start(&path, cfg, &[]);
    let got: Vec<(u16, Value)> = std::thread::scope(|s| {
        let hs: Vec<_> = PROMPTS
            .iter()
            .map(|p| {
                let srv = &srv;
                s.spawn(move || srv.post("/v1/chat/completions", &chat_body("smollm2", p, MAX)))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, (code, v)) in got.iter().enumerate() {
        assert_eq!(*code, 200, "request {i}: {v}");
        assert_eq!(
            content(v),
            want[i],
            "request {i} after queueing / preemption"
        );
    }
    let m = srv.wait_idle();
    assert!(
        m["hone_preemptions_total"] > 0.0,
        "the budget was meant to force preemption: {m:?}"
    );
    assert_eq!(m["hone_kv_blocks_free"], 18.0, "every block came back");
    // A prompt longer than the whole pool is refused up front, with the field named.
    let long = "word ".repeat(400);
    let (code, v) = srv.post("/v1/chat/completions", &chat_body("smollm2", &long, 4));
    assert_eq!(code, 400, "{v}");
    assert_eq!(v["error"]["param"], "messages");
}

#[test]
fn metrics_count_the_requests_made() {
    let Some(path) = smollm2() else { return };
    let srv = Server::start(&path, config("smollm2"), &[]);
    let (mut prompt, mut completion, mut answered) = (0.0, 0.0, 0.0);
    for p in &PROMPTS[..3] {
        let (code, v) = srv.post("/v1/chat/completions", &chat_body("smollm2", p, 8));
        assert_eq!(code, 200);
        prompt += v["usage"]["prompt_tokens"].as_f64().unwrap();
        let c = v["usage"]["completion_tokens"].as_f64().unwrap();
        completion += c;
        answered += f64::from(u8::from(c > 0.0));
    }
    for p in &PROMPTS[..2] {
        let (code, v) = srv.post(
            "/v1/completions",
            &json!({"model": "smollm2", "prompt": p, "max_tokens": 5, "temperature": 0}),
        );
        assert_eq!(code, 200);
        prompt += v["usage"]["prompt_tokens"].as_f64().unwrap();
        let c = v["usage"]["completion_tokens"].as_f64().unwrap();
        completion += c;
        answered += f64::from(u8::from(c > 0.0));
    }
    for bad in [
        json!({"model": "smollm2"}),
        json!({"model": "smollm2", "messages": [], "n": 3}),
    ] {
        assert_eq!(srv.post("/v1/chat/completions", &bad).0, 400);
    }
    assert_eq!(
        srv.post("/v1/chat/completions", &chat_body("nope", "x", 4))
            .0,
        404
    );
    let _ = ureq::get(&format!("{}/v1/models", srv.url)).call().unwrap();
    let m = srv.wait_idle();
    let get = |k: &str| m.get(k).copied().unwrap_or(0.0);
    assert_eq!(
        get("hone_requests_total{endpoint=chat_completions,status=200}"),
        3.0
    );
    assert_eq!(
        get("hone_requests_total{endpoint=completions,status=200}"),
        2.0
    );
    assert_eq!(
        get("hone_requests_total{endpoint=chat_completions,status=400}"),
        2.0
    );
    assert_eq!(
        get("hone_requests_total{endpoint=chat_completions,status=404}"),
        1.0
    );
    assert_eq!(get("hone_requests_total{endpoint=models,status=200}"), 1.0);
    assert_eq!(get("hone_prompt_tokens_total"), prompt);
    assert_eq!(get("hone_generation_tokens_total"), completion);
    // One end-to-end observation per successful generation, one first-token observation
    // per answer with a token, and one gap per token after the first.
    assert_eq!(get("hone_e2e_request_latency_seconds_count"), 5.0);
    assert_eq!(get("hone_time_to_first_token_seconds_count"), answered);
    assert_eq!(
        get("hone_inter_token_latency_seconds_count"),
        completion - answered
    );
    assert!(get("hone_kv_blocks_free") > 0.0);
}

#[test]
fn errors_come_in_openai_shape_with_the_field_named() {
    let Some(path) = smollm2() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("adapters");
    save_random_adapter(&load(&path), &root.join("nda-v2"), 5);
    let mut cfg = config("smollm2");
    cfg.api_key = Some("k1".into());
    cfg.admin_key = Some("admin".into());
    cfg.adapter_roots = vec![root.clone()];
    cfg.max_body_bytes = 4096;
    let srv = Server::start(&path, cfg, &[]);
    let url = |p: &str| format!("{}{p}", srv.url);
    let chat = url("/v1/chat/completions");
    let body = chat_body("smollm2", "Hi", 4).to_string();
    // Key.
    let (code, v) = post_raw(&chat, &body, None);
    assert_eq!(code, 401, "{v}");
    assert_eq!(v["error"]["code"], "invalid_api_key");
    assert_eq!(post_raw(&chat, &body, Some("k1")).0, 200);
    // Validation: 400 with the field.
    for (b, param) in [
        (
            json!({"model": "smollm2", "messages": [{"role": "user", "content": "x"}], "max_tokens": 5000}),
            "max_tokens",
        ),
        (
            json!({"model": "smollm2", "messages": [{"role": "user", "content": "x"}], "temperature": -1}),
            "temperature",
        ),
        (
            json!({"model": "smollm2", "messages": [{"role": "bot", "content": "x"}]}),
            "messages[0].role",
        ),
        (
            json!({"model": "smollm2", "messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": 12}}}}),
            "response_format",
        ),
    ] {
        let (code, v) = post_raw(&chat, &b.to_string(), Some("k1"));
        assert_eq!(code, 400, "{b}: {v}");
        assert_eq!(v["error"]["param"], param, "{v}");
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }
    let (code, v) = post_raw(&chat, "{not json", Some("k1"));
    assert_eq!(code, 400);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("not valid JSON"));
    let (code, v) = post_raw(&chat, &"x".repeat(5000), Some("k1"));
    assert_eq!(code, 413, "{v}");
    let (code, v) = post_raw(&chat, &chat_body("ghost", "x", 4).to_string(), Some("k1"));
    assert_eq!(code, 404);
    assert_eq!(v["error"]["code"], "model_not_found");
    // Adapters: admin key, folders under the root only.
    let adapters = url("/v1/adapters");
    let load = |b: Value, key| post_raw(&adapters, &b.to_string(), key);
    assert_eq!(
        load(json!({"name": "nda", "path": "nda-v2"}), Some("k1")).0,
        401
    );
    for bad in ["../adapters/nda-v2", "/etc", "nda-v2/../../x"] {
        let (code, v) = load(json!({"name": "nda", "path": bad}), Some("admin"));
        assert_eq!(code, 400, "{bad}: {v}");
        assert_eq!(v["error"]["param"], "path");
    }
    let (code, v) = load(json!({"name": "nda", "path": "missing"}), Some("admin"));
    assert_eq!(code, 400, "{v}");
    assert_eq!(v["error"]["param"], "path");
    assert_eq!(
        load(json!({"name": "../x", "path": "nda-v2"}), Some("admin")).0,
        400
    );
    let (code, v) = load(json!({"name": "nda", "path": "nda-v2"}), Some("admin"));
    assert_eq!(code, 201, "{v}");
    let models = ureq::get(&url("/v1/models"))
        .set("Authorization", "Bearer k1")
        .call()
        .unwrap()
        .into_json::<Value>()
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["smollm2", "nda"]);
    assert_eq!(
        post_raw(&chat, &chat_body("nda", "Hi", 4).to_string(), Some("k1")).0,
        200
    );
    let del = |key: &str| match ureq::delete(&url("/v1/adapters/nda"))
        .set("Authorization", &format!("Bearer {key}"))
        .call()
    {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(c, _)) => c,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(del("admin"), 200);
    assert_eq!(del("admin"), 404);
    assert_eq!(
        post_raw(&chat, &chat_body("nda", "Hi", 4).to_string(), Some("k1")).0,
        404
    );
    // Health.
    assert_eq!(ureq::get(&url("/health")).call().unwrap().status(), 200);
}

#[test]
fn overload_gets_429_with_retry_after() {
    let Some(path) = smollm2() else { return };
    let mut cfg = config("smollm2");
    cfg.engine = EngineConfig {
        max_batch: 1,
        max_queue: 1,
        ..EngineConfig::default()
    };
    let srv = Server::start(&path, cfg, &[]);
    let barrier = Arc::new(Barrier::new(8));
    let results: Vec<(u16, Option<String>)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|i| {
                let b = barrier.clone();
                let url = format!("{}/v1/chat/completions", srv.url);
                s.spawn(move || {
                    b.wait();
                    let body = chat_body("smollm2", PROMPTS[i], 24).to_string();
                    match ureq::post(&url).send_string(&body) {
                        Ok(r) => (r.status(), None),
                        Err(ureq::Error::Status(c, r)) => {
                            (c, r.header("Retry-After").map(str::to_string))
                        }
                        Err(e) => panic!("{e}"),
                    }
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = results.iter().filter(|r| r.0 == 200).count();
    let over: Vec<_> = results.iter().filter(|r| r.0 == 429).collect();
    assert_eq!(ok + over.len(), 8, "{results:?}");
    assert!(ok >= 1 && !over.is_empty(), "{results:?}");
    assert!(
        over.iter().all(|r| r.1.as_deref() == Some("1")),
        "{results:?}"
    );
}

#[test]
fn a_client_that_goes_away_frees_its_sequence() {
    let Some(path) = smollm2() else { return };
    let srv = Server::start(&path, config("smollm2"), &[]);
    let body = json!({"model": "smollm2", "messages": [{"role": "user", "content": PROMPTS[0]}],
                      "max_tokens": 900, "temperature": 0.8, "seed": 1, "stream": true});
    let resp = ureq::post(&format!("{}/v1/chat/completions", srv.url))
        .send_string(&body.to_string())
        .unwrap();
    let mut reader = std::io::BufReader::new(resp.into_reader());
    let mut chunks = 0;
    let mut line = String::new();
    while chunks < 4 {
        line.clear();
        std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
        if line.starts_with("data: ") {
            chunks += 1;
        }
    }
    let m = srv.metrics();
    assert_eq!(m["hone_running_sequences"], 1.0);
    assert!(m["hone_kv_blocks_used"] > 0.0);
    drop(reader);
    let t0 = Instant::now();
    let m = srv.wait_idle();
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert!(
        m["hone_generation_tokens_total"] < 900.0,
        "generation stopped early: {m:?}"
    );
}

#[test]
fn shutdown_drains_requests_in_flight() {
    let Some(path) = smollm2() else { return };
    let mut srv = Server::start(&path, config("smollm2"), &[]);
    let url = format!("{}/v1/chat/completions", srv.url);
    let h = std::thread::spawn(move || {
        post_raw(
            &url,
            &chat_body("smollm2", PROMPTS[1], 40).to_string(),
            None,
        )
    });
    // Let the request reach the engine, then stop the server.
    let t0 = Instant::now();
    while srv.metrics()["hone_running_sequences"] == 0.0 {
        assert!(t0.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(5));
    }
    let state = srv.state.clone();
    srv.shutdown();
    let (code, v) = h.join().unwrap();
    assert_eq!(code, 200, "{v}");
    assert!(!content(&v).is_empty());
    assert!(
        !state.engine.is_alive(),
        "the engine stopped after draining"
    );
}
