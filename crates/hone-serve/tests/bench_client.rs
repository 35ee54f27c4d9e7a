//! `bench::run` against a fake OpenAI-compatible streaming server (axum on 127.0.0.1:0).
//!
//! The fake streams `ceil(max_tokens / 2)` content chunks (two "tokens" each), `DELAY` apart,
//! then a finish chunk, a `usage` chunk with `completion_tokens = max_tokens`, and `[DONE]`.
//! The user message steers it: `FAIL` answers 500, `BREAK` cuts the stream after two chunks,
//! `NOUSAGE` leaves the usage chunk out, `SLOW` waits 2 s before the first chunk.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use hone_serve::bench::{run, BenchOptions, BenchReport};
use serde_json::{json, Value};

const DELAY: Duration = Duration::from_millis(5);

#[derive(Default)]
struct Fake {
    api_key: Option<String>,
    hits: AtomicUsize,
    bodies: Mutex<Vec<Value>>,
}

fn chunk(v: Value) -> Result<String, Infallible> {
    Ok(format!("data: {v}\n\n"))
}

async fn chat(
    State(fake): State<Arc<Fake>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    fake.hits.fetch_add(1, Ordering::SeqCst);
    fake.bodies.lock().unwrap().push(body.clone());
    if let Some(key) = &fake.api_key {
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
        if auth != Some(format!("Bearer {key}").as_str()) {
            let err =
                json!({"error": {"message": "invalid api key", "type": "authentication_error"}});
            return (StatusCode::UNAUTHORIZED, Json(err)).into_response();
        }
    }
    let prompt = body["messages"][0]["content"]
        .as_str()
        .unwrap_or("")
        .to_string();
    if prompt.contains("FAIL") {
        let err = json!({"error": {"message": "engine exploded", "type": "server_error"}});
        return (StatusCode::INTERNAL_SERVER_ERROR, Json(err)).into_response();
    }
    let max_tokens = body["max_tokens"].as_u64().unwrap_or(4);
    let include_usage = body["stream_options"]["include_usage"].as_bool() == Some(true);
    let prompt_tokens = prompt.split_whitespace().count() as u64;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, Infallible>>(4);
    tokio::spawn(async move {
        let head = json!({"id": "x", "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]});
        if tx.send(chunk(head)).await.is_err() {
            return;
        }
        if prompt.contains("SLOW") {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let chunks = max_tokens.div_ceil(2);
        for k in 0..chunks {
            if prompt.contains("BREAK") && k == 2 {
                return; // the stream ends here, unfinished
            }
            tokio::time::sleep(DELAY).await;
            let c = json!({"id": "x", "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {"content": format!("w{k} ")}, "finish_reason": null}]});
            if tx.send(chunk(c)).await.is_err() {
                return;
            }
        }
        let fin = json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]});
        let _ = tx.send(chunk(fin)).await;
        if include_usage && !prompt.contains("NOUSAGE") {
            let usage = json!({"choices": [], "usage": {"prompt_tokens": prompt_tokens,
                "completion_tokens": max_tokens, "total_tokens": prompt_tokens + max_tokens}});
            let _ = tx.send(chunk(usage)).await;
        }
        let _ = tx.send(Ok("data: [DONE]\n\n".to_string())).await;
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
        .unwrap()
}

/// Start the fake on a background thread; returns its base URL (no `/v1`).
fn serve(fake: Arc<Fake>) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let app = Router::new()
                .route("/v1/chat/completions", post(chat))
                .with_state(fake);
            axum::serve(listener, app).await.unwrap();
        });
    });
    format!("http://{}", rx.recv().unwrap())
}

fn opts(url: &str, prompts: &[&str]) -> BenchOptions {
    BenchOptions {
        url: url.to_string(),
        concurrency: 3,
        requests: 12,
        prompts: prompts.iter().map(|s| s.to_string()).collect(),
        max_tokens: 6,
        model: "fake-model".to_string(),
        api_key: None,
        timeout: Duration::from_secs(30),
    }
}

fn assert_latencies_sane(r: &BenchReport) {
    for v in [
        r.ttft_p50_ms,
        r.ttft_p95_ms,
        r.e2e_p50_ms,
        r.e2e_p95_ms,
        r.itl_p50_ms,
        r.itl_p95_ms,
    ] {
        assert!(v.is_finite() && v >= 0.0, "{r:?}");
    }
    assert!(
        r.ttft_p50_ms <= r.ttft_p95_ms && r.e2e_p50_ms <= r.e2e_p95_ms,
        "{r:?}"
    );
    assert!(r.itl_p50_ms <= r.itl_p95_ms, "{r:?}");
    assert!(
        r.ttft_p50_ms <= r.e2e_p50_ms && r.ttft_p95_ms <= r.e2e_p95_ms,
        "{r:?}"
    );
    assert!(r.itl_p95_ms <= r.e2e_p95_ms, "{r:?}");
    // The first content chunk comes after one DELAY, the last after ceil(6/2) = 3 of them.
    assert!(r.ttft_p50_ms >= DELAY.as_secs_f64() * 1e3 * 0.9, "{r:?}");
    assert!(
        r.e2e_p50_ms >= 3.0 * DELAY.as_secs_f64() * 1e3 * 0.9,
        "{r:?}"
    );
}

#[test]
fn counts_requests_errors_and_tokens() {
    let fake = Arc::new(Fake::default());
    let url = serve(fake.clone());
    // Round-robin over 4 prompts: requests 1, 5, 9 fail.
    let o = opts(
        &url,
        &["alpha one", "beta FAIL", "gamma three", "delta four"],
    );
    let done = Mutex::new(Vec::new());
    let r = run(&o, |i| done.lock().unwrap().push(i)).unwrap();

    assert_eq!(r.requests, 12);
    assert_eq!(r.errors, 3);
    assert_eq!(r.concurrency, 3);
    assert_eq!(
        r.output_tokens,
        9 * 6,
        "usage.completion_tokens of 9 successes"
    );
    assert_eq!(r.prompt_tokens, 9 * 2);
    let e = r.first_error.as_deref().unwrap();
    assert!(
        e.contains("HTTP 500") && e.contains("engine exploded"),
        "{e}"
    );
    assert!(r.elapsed_s > 0.0);
    assert!((r.requests_per_s - 9.0 / r.elapsed_s).abs() < 1e-9);
    assert!((r.output_tok_s - 54.0 / r.elapsed_s).abs() < 1e-9);
    assert_latencies_sane(&r);

    let mut done = done.into_inner().unwrap();
    done.sort();
    assert_eq!(done, (0..12).collect::<Vec<_>>());

    assert_eq!(fake.hits.load(Ordering::SeqCst), 12);
    let bodies = fake.bodies.lock().unwrap();
    for b in bodies.iter() {
        assert_eq!(b["model"], "fake-model");
        assert_eq!(b["max_tokens"], 6);
        assert_eq!(b["temperature"], 0);
        assert_eq!(b["stream"], true);
        assert_eq!(b["stream_options"]["include_usage"], true);
        assert_eq!(b["messages"][0]["role"], "user");
        assert_eq!(b["messages"].as_array().unwrap().len(), 1);
    }
    let mut prompts: Vec<&str> = bodies
        .iter()
        .map(|b| b["messages"][0]["content"].as_str().unwrap())
        .collect();
    prompts.sort();
    prompts.dedup();
    assert_eq!(
        prompts,
        ["alpha one", "beta FAIL", "delta four", "gamma three"]
    );

    let table = r.to_table();
    eprintln!("{table}");
    assert!(
        table.contains("12 (9 ok, 3 errors) at concurrency 3"),
        "{table}"
    );
    let j = serde_json::to_value(&r).unwrap();
    assert_eq!(j["output_tokens"], 54);
    assert_eq!(j["errors"], 3);
}

#[test]
fn tokens_fall_back_to_content_chunks_without_usage() {
    let url = serve(Arc::new(Fake::default()));
    let o = BenchOptions {
        requests: 4,
        concurrency: 2,
        ..opts(&url, &["say NOUSAGE"])
    };
    let r = run(&o, |_| {}).unwrap();
    assert_eq!(r.errors, 0, "{r:?}");
    // 3 content chunks per request, no usage chunk to say they were 6 tokens.
    assert_eq!(r.output_tokens, 4 * 3);
    assert_eq!(r.prompt_tokens, 0);
    assert_latencies_sane(&r);
}

#[test]
fn broken_streams_and_timeouts_are_errors() {
    let url = serve(Arc::new(Fake::default()));
    let o = BenchOptions {
        requests: 4,
        concurrency: 4,
        ..opts(&url, &["fine", "BREAK please"])
    };
    let r = run(&o, |_| {}).unwrap();
    assert_eq!((r.requests, r.errors), (4, 2), "{r:?}");
    assert_eq!(r.output_tokens, 2 * 6);
    assert!(
        r.first_error.as_deref().unwrap().contains("[DONE]"),
        "{r:?}"
    );

    let o = BenchOptions {
        requests: 2,
        concurrency: 2,
        timeout: Duration::from_millis(300),
        ..opts(&url, &["SLOW"])
    };
    let r = run(&o, |_| {}).unwrap();
    assert_eq!(r.errors, 2, "{r:?}");
    assert!(r.ttft_p50_ms.is_nan() && r.e2e_p50_ms.is_nan());
    assert_eq!(r.requests_per_s, 0.0);
}

#[test]
fn api_key_is_sent_as_bearer() {
    let fake = Arc::new(Fake {
        api_key: Some("sk-test".to_string()),
        ..Fake::default()
    });
    let url = serve(fake);
    let o = BenchOptions {
        requests: 2,
        ..opts(&url, &["hi"])
    };
    let r = run(&o, |_| {}).unwrap();
    assert_eq!(r.errors, 2);
    assert!(
        r.first_error.as_deref().unwrap().contains("HTTP 401"),
        "{r:?}"
    );
    let r = run(
        &BenchOptions {
            api_key: Some("sk-test".to_string()),
            ..o
        },
        |_| {},
    )
    .unwrap();
    assert_eq!(r.errors, 0, "{r:?}");
    assert_eq!(r.output_tokens, 12);
}

#[test]
fn base_url_with_or_without_v1() {
    let url = serve(Arc::new(Fake::default()));
    for base in [
        url.clone(),
        format!("{url}/"),
        format!("{url}/v1"),
        format!("{url}/v1/"),
    ] {
        let o = BenchOptions {
            requests: 1,
            concurrency: 1,
            ..opts(&base, &["hello"])
        };
        let r = run(&o, |_| {}).unwrap();
        assert_eq!(r.errors, 0, "{base}: {r:?}");
    }
}

#[test]
fn default_prompts_are_the_peer_scripts() {
    let fake = Arc::new(Fake::default());
    let url = serve(fake.clone());
    let o = BenchOptions {
        requests: 10,
        concurrency: 2,
        ..opts(&url, &[])
    };
    let r = run(&o, |_| {}).unwrap();
    assert_eq!(r.errors, 0, "{r:?}");
    let bodies = fake.bodies.lock().unwrap();
    let mut prompts: Vec<String> = bodies
        .iter()
        .map(|b| b["messages"][0]["content"].as_str().unwrap().to_string())
        .collect();
    prompts.sort();
    let mut want: Vec<String> = (0..10).map(hone_serve::bench::default_prompt).collect();
    want.sort();
    assert_eq!(prompts, want);
    assert!(want.contains(&"Write a short NDA clause about term (variant 9).".to_string()));
}

#[test]
fn unreachable_server_counts_every_request_as_error() {
    // A port that was just free: nothing listens there now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = BenchOptions {
        requests: 3,
        concurrency: 2,
        ..opts(&format!("http://127.0.0.1:{port}"), &["x"])
    };
    let r = run(&o, |_| {}).unwrap();
    assert_eq!((r.requests, r.errors, r.output_tokens), (3, 3, 0));
    assert!(r.first_error.is_some());
    assert!(r.to_table().contains("first error"));
}
