//! The endpoint candidate against a local OpenAI-compatible stub server (axum on 127.0.0.1:0,
//! real HTTP and JSON), scripted per test: answers, rate limits, server errors, timeouts, bad
//! requests, garbage bodies and concurrency.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use hone_eval::endpoint::{backoff_delay_ms, Endpoint, EndpointConfig};
use hone_eval::Error;
use hone_model::chat_template::Message;
use serde_json::{json, Value};

/// What the stub answers to one request.
#[derive(Clone)]
struct Reply {
    delay_ms: u64,
    status: u16,
    headers: Vec<(&'static str, String)>,
    /// `None`: an echo completion derived from the request.
    body: Option<String>,
}

impl Reply {
    fn echo() -> Self {
        Self {
            delay_ms: 0,
            status: 200,
            headers: Vec::new(),
            body: None,
        }
    }
    fn status(status: u16, body: &str) -> Self {
        Self {
            status,
            body: Some(body.to_string()),
            ..Self::echo()
        }
    }
    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }
    fn delayed(mut self, ms: u64) -> Self {
        self.delay_ms = ms;
        self
    }
}

/// One request as the stub saw it.
#[derive(Clone, Debug)]
struct Seen {
    authorization: Option<String>,
    x_test: Option<String>,
    content_type: Option<String>,
    body: Value,
}

struct Stub {
    script: Mutex<VecDeque<Reply>>,
    default: Reply,
    seen: Mutex<Vec<Seen>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// Decrements the in-flight count even when the client hangs up and the handler is dropped.
struct InFlight(Arc<Stub>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
    })
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The echo answer: says which model and key it saw and repeats the last message; a last
/// message `status:NNN` gets that HTTP status instead.
fn echo(req: &Value, authorization: &Option<String>) -> (u16, String) {
    let messages = req["messages"].as_array().cloned().unwrap_or_default();
    let last = messages
        .last()
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string();
    if let Some(code) = last.strip_prefix("status:") {
        let code = code.parse().unwrap_or(500);
        let body = json!({"error": {"message": format!("scripted {code}")}}).to_string();
        return (code, body);
    }
    let prompt_chars: usize = messages
        .iter()
        .map(|m| m["content"].as_str().unwrap_or("").len())
        .sum();
    let text = format!(
        "model={} auth={} last={last}",
        req["model"].as_str().unwrap_or("?"),
        authorization.as_deref().unwrap_or("none"),
    );
    let body = json!({
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "model": req["model"],
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": "stop",
        }],
        "usage": {"prompt_tokens": prompt_chars, "completion_tokens": 7, "total_tokens": prompt_chars + 7},
    });
    (200, body.to_string())
}

async fn handle(State(stub): State<Arc<Stub>>, headers: HeaderMap, body: String) -> Response {
    let now = stub.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    stub.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let _guard = InFlight(stub.clone());
    let reply = stub
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| stub.default.clone());
    let req: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let authorization = header(&headers, "authorization");
    stub.seen.lock().unwrap().push(Seen {
        authorization: authorization.clone(),
        x_test: header(&headers, "x-test"),
        content_type: header(&headers, "content-type"),
        body: req.clone(),
    });
    if reply.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(reply.delay_ms)).await;
    }
    let (status, body) = match reply.body {
        Some(b) => (reply.status, b),
        None => echo(&req, &authorization),
    };
    let mut resp = (StatusCode::from_u16(status).unwrap(), body).into_response();
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    for (name, value) in reply.headers {
        resp.headers_mut().insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(&value).unwrap(),
        );
    }
    resp
}

struct Server {
    base: String,
    stub: Arc<Stub>,
}

impl Server {
    fn seen(&self) -> Vec<Seen> {
        self.stub.seen.lock().unwrap().clone()
    }
    fn requests(&self) -> usize {
        self.stub.seen.lock().unwrap().len()
    }
    fn max_in_flight(&self) -> usize {
        self.stub.max_in_flight.load(Ordering::SeqCst)
    }
}

/// A stub answering `script` in order, then `default` forever.
fn serve(script: Vec<Reply>, default: Reply) -> Server {
    let stub = Arc::new(Stub {
        script: Mutex::new(script.into()),
        default,
        seen: Mutex::new(Vec::new()),
        in_flight: AtomicUsize::new(0),
        max_in_flight: AtomicUsize::new(0),
    });
    let app = Router::new()
        .route("/v1/chat/completions", post(handle))
        .with_state(stub.clone());
    let listener = runtime()
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime().spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Server {
        base: format!("http://{addr}/v1"),
        stub,
    }
}

/// A config for `server` with fast back-off.
fn config(server: &Server) -> EndpointConfig {
    let mut cfg = EndpointConfig::new(&server.base, "stub-model");
    cfg.timeout_s = 5.0;
    cfg.backoff_initial_ms = 10;
    cfg.backoff_max_ms = 50;
    cfg.jitter_seed = Some(1);
    cfg
}

fn endpoint_err(e: Error) -> (String, Option<u16>, String) {
    let shown = e.to_string();
    match e {
        Error::Endpoint { url, status, msg } => {
            assert!(shown.contains(&url), "{shown}");
            (url, status, msg)
        }
        other => panic!("expected Error::Endpoint, got {other:?}"),
    }
}

#[test]
fn endpoint_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Endpoint>();
}

#[test]
fn answer_reflects_model_key_messages_and_parameters() {
    let server = serve(vec![], Reply::echo());
    let var = "HONE_TEST_ENDPOINT_KEY_ANSWER";
    std::env::set_var(var, "sk-test-123");
    let mut cfg = config(&server);
    cfg.api_key_env = Some(var.into());
    cfg.max_tokens = Some(64);
    cfg.headers.insert("X-Test".into(), "abc".into());
    let ep = Endpoint::new(cfg).unwrap();
    assert_eq!(ep.chat_url(), format!("{}/chat/completions", server.base));

    let messages = vec![Message::system("be brief"), Message::user("hello")];
    let c = ep.chat(&messages, None, None).unwrap();
    assert_eq!(
        c.text,
        "model=stub-model auth=Bearer sk-test-123 last=hello"
    );
    assert_eq!(c.attempts, 1);
    assert_eq!(
        c.prompt_tokens,
        Some(("be brief".len() + "hello".len()) as u64)
    );
    assert_eq!(c.completion_tokens, Some(7));
    assert_eq!(c.finish_reason.as_deref(), Some("stop"));
    assert!(c.latency_s > 0.0 && c.latency_s < 5.0, "{}", c.latency_s);

    // Per-call parameters override the configuration.
    ep.chat(&[Message::user("again")], Some(5), Some(0.5))
        .unwrap();

    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    let first = &seen[0];
    assert_eq!(first.authorization.as_deref(), Some("Bearer sk-test-123"));
    assert_eq!(first.x_test.as_deref(), Some("abc"));
    assert_eq!(first.content_type.as_deref(), Some("application/json"));
    assert_eq!(first.body["model"], "stub-model");
    assert_eq!(
        first.body["messages"],
        json!([
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello"},
        ])
    );
    assert_eq!(first.body["max_tokens"], 64);
    assert_eq!(first.body["temperature"].as_f64(), Some(0.0));
    assert_eq!(seen[1].body["max_tokens"], 5);
    assert_eq!(seen[1].body["temperature"].as_f64(), Some(0.5));
}

#[test]
fn no_api_key_env_sends_no_authorization_and_omits_max_tokens() {
    let server = serve(vec![], Reply::echo());
    let ep = Endpoint::new(config(&server)).unwrap();
    let c = ep.chat(&[Message::user("hi")], None, None).unwrap();
    assert_eq!(c.text, "model=stub-model auth=none last=hi");
    let seen = server.seen();
    assert_eq!(seen[0].authorization, None);
    assert!(seen[0].body.get("max_tokens").is_none(), "{}", seen[0].body);
}

#[test]
fn missing_api_key_variable_is_named() {
    let var = "HONE_TEST_ENDPOINT_KEY_THAT_IS_NEVER_SET";
    std::env::remove_var(var);
    let mut cfg = EndpointConfig::new("http://127.0.0.1:9/v1", "m");
    cfg.api_key_env = Some(var.into());
    let (_, status, msg) = endpoint_err(Endpoint::new(cfg).unwrap_err());
    assert_eq!(status, None);
    assert!(msg.contains(var) && msg.contains("not set"), "{msg}");
}

#[test]
fn rate_limit_honours_retry_after() {
    let rate_limited = Reply::status(
        429,
        r#"{"error":{"message":"Rate limit reached","type":"requests"}}"#,
    )
    .header("retry-after", "1");
    let server = serve(vec![rate_limited], Reply::echo());
    let mut cfg = config(&server);
    cfg.backoff_max_ms = 5_000;
    let ep = Endpoint::new(cfg).unwrap();
    let start = Instant::now();
    let c = ep.chat(&[Message::user("x")], None, None).unwrap();
    let elapsed = start.elapsed();
    assert_eq!(c.attempts, 2);
    assert_eq!(server.requests(), 2);
    assert!(elapsed >= Duration::from_millis(950), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    // The successful attempt's own latency, not the wait.
    assert!(c.latency_s < 0.9, "{}", c.latency_s);
}

#[test]
fn retry_after_is_capped_by_backoff_max() {
    let rate_limited = Reply::status(429, "slow down").header("retry-after", "30");
    let server = serve(vec![rate_limited], Reply::echo());
    let mut cfg = config(&server);
    cfg.backoff_max_ms = 100;
    let ep = Endpoint::new(cfg).unwrap();
    let start = Instant::now();
    let c = ep.chat(&[Message::user("x")], None, None).unwrap();
    assert_eq!(c.attempts, 2);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn server_errors_are_retried_until_success() {
    let script = vec![
        Reply::status(500, r#"{"error":{"message":"internal"}}"#),
        Reply::status(502, "bad gateway"),
        Reply::status(503, ""),
    ];
    let server = serve(script, Reply::echo());
    let ep = Endpoint::new(config(&server)).unwrap();
    let c = ep.chat(&[Message::user("x")], None, None).unwrap();
    assert_eq!(c.attempts, 4);
    assert_eq!(server.requests(), 4);
    assert_eq!(c.text, "model=stub-model auth=none last=x");
}

#[test]
fn server_errors_forever_give_up_after_max_retries() {
    let server = serve(
        vec![],
        Reply::status(500, r#"{"error":{"message":"the engine is on fire"}}"#),
    );
    let mut cfg = config(&server);
    cfg.max_retries = 3;
    let ep = Endpoint::new(cfg).unwrap();
    let (url, status, msg) = endpoint_err(ep.chat(&[Message::user("x")], None, None).unwrap_err());
    assert_eq!(url, format!("{}/chat/completions", server.base));
    assert_eq!(status, Some(500));
    assert!(msg.contains("gave up after 4 attempts"), "{msg}");
    assert!(
        msg.contains("HTTP 500") && msg.contains("the engine is on fire"),
        "{msg}"
    );
    assert_eq!(server.requests(), 4);
}

#[test]
fn slow_response_times_out_then_retry_succeeds() {
    let server = serve(vec![Reply::echo().delayed(3_000)], Reply::echo());
    let mut cfg = config(&server);
    cfg.timeout_s = 0.3;
    cfg.max_retries = 2;
    let ep = Endpoint::new(cfg).unwrap();
    let start = Instant::now();
    let c = ep.chat(&[Message::user("x")], None, None).unwrap();
    assert_eq!(c.attempts, 2);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(c.latency_s < 0.3);
}

#[test]
fn slow_response_forever_is_a_timeout_error() {
    let server = serve(vec![], Reply::echo().delayed(3_000));
    let mut cfg = config(&server);
    cfg.timeout_s = 0.2;
    cfg.max_retries = 1;
    let ep = Endpoint::new(cfg).unwrap();
    let start = Instant::now();
    let (_, status, msg) = endpoint_err(ep.chat(&[Message::user("x")], None, None).unwrap_err());
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(status, None);
    assert!(msg.contains("gave up after 2 attempts"), "{msg}");
    assert!(msg.contains("timed out after 0.2 s"), "{msg}");
}

#[test]
fn bad_request_fails_at_once_with_the_server_message() {
    let body = r#"{"error":{"message":"Invalid value for 'temperature'","type":"invalid_request_error","param":"temperature","code":null}}"#;
    let server = serve(vec![], Reply::status(400, body));
    let mut cfg = config(&server);
    cfg.backoff_initial_ms = 2_000;
    cfg.backoff_max_ms = 2_000;
    let ep = Endpoint::new(cfg).unwrap();
    let start = Instant::now();
    let (_, status, msg) = endpoint_err(ep.chat(&[Message::user("x")], None, None).unwrap_err());
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(status, Some(400));
    assert_eq!(server.requests(), 1);
    assert!(msg.contains("HTTP 400"), "{msg}");
    assert!(msg.contains("Invalid value for 'temperature'"), "{msg}");
    assert!(msg.contains("invalid_request_error"), "{msg}");
}

#[test]
fn unauthorized_without_json_body_surfaces_the_text() {
    let server = serve(vec![], Reply::status(401, "no key, no service"));
    let ep = Endpoint::new(config(&server)).unwrap();
    let (_, status, msg) = endpoint_err(ep.chat(&[Message::user("x")], None, None).unwrap_err());
    assert_eq!(status, Some(401));
    assert!(msg.contains("no key, no service"), "{msg}");
    assert_eq!(server.requests(), 1);
}

#[test]
fn bodies_that_are_not_completions_are_clear_errors() {
    let script = vec![
        Reply::status(200, "<html>proxy says hi</html>"),
        Reply::status(200, r#"{"choices":[]}"#),
        Reply::status(
            200,
            r#"{"choices":[{"message":{"role":"assistant","content":null}}]}"#,
        ),
        Reply::status(200, r#"{"error":{"message":"upstream overloaded"}}"#),
    ];
    let server = serve(script, Reply::echo());
    let ep = Endpoint::new(config(&server)).unwrap();
    let mut msgs = Vec::new();
    for _ in 0..4 {
        let (url, status, msg) =
            endpoint_err(ep.chat(&[Message::user("x")], None, None).unwrap_err());
        assert!(url.ends_with("/chat/completions"));
        assert_eq!(status, Some(200));
        msgs.push(msg);
    }
    assert!(
        msgs[0].contains("not valid JSON") && msgs[0].contains("proxy says hi"),
        "{}",
        msgs[0]
    );
    assert!(msgs[1].contains("no choices[0]"), "{}", msgs[1]);
    assert!(
        msgs[2].contains("choices[0].message.content"),
        "{}",
        msgs[2]
    );
    assert!(msgs[3].contains("upstream overloaded"), "{}", msgs[3]);
    // None of them was retried.
    assert_eq!(server.requests(), 4);
}

#[test]
fn content_as_text_parts_is_joined() {
    let body = r#"{"choices":[{"message":{"content":[{"type":"text","text":"ab"},{"type":"text","text":"cd"}]}}]}"#;
    let server = serve(vec![Reply::status(200, body)], Reply::echo());
    let ep = Endpoint::new(config(&server)).unwrap();
    let c = ep.chat(&[Message::user("x")], None, None).unwrap();
    assert_eq!(c.text, "abcd");
    assert_eq!(c.prompt_tokens, None);
    assert_eq!(c.finish_reason, None);
}

#[test]
fn connection_refused_is_retried_then_reported() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = EndpointConfig::new(format!("http://127.0.0.1:{port}/v1/"), "m");
    cfg.max_retries = 2;
    cfg.backoff_initial_ms = 10;
    cfg.backoff_max_ms = 20;
    let ep = Endpoint::new(cfg).unwrap();
    assert_eq!(
        ep.chat_url(),
        format!("http://127.0.0.1:{port}/v1/chat/completions")
    );
    let (_, status, msg) = endpoint_err(ep.chat(&[Message::user("x")], None, None).unwrap_err());
    assert_eq!(status, None);
    assert!(msg.contains("gave up after 3 attempts"), "{msg}");
}

#[test]
fn chat_many_keeps_input_order_and_bounds_concurrency() {
    let server = serve(vec![], Reply::echo().delayed(100));
    let ep = Endpoint::new(config(&server)).unwrap();
    assert_eq!(ep.config().concurrency, 4);
    let requests: Vec<Vec<Message>> = (0..12)
        .map(|i| {
            if i == 5 {
                vec![Message::user("status:400")]
            } else {
                vec![Message::user(format!("q{i}"))]
            }
        })
        .collect();
    let mut done = Vec::new();
    let start = Instant::now();
    let results = ep.chat_many(&requests, None, None, |i, r| done.push((i, r.is_ok())));
    let elapsed = start.elapsed();
    assert_eq!(results.len(), 12);
    for (i, r) in results.iter().enumerate() {
        if i == 5 {
            let msg = r.as_ref().unwrap_err().to_string();
            assert!(
                msg.contains("HTTP 400") && msg.contains("scripted 400"),
                "{msg}"
            );
        } else {
            let c = r.as_ref().unwrap();
            assert_eq!(c.text, format!("model=stub-model auth=none last=q{i}"));
        }
    }
    done.sort();
    let expected: Vec<(usize, bool)> = (0..12).map(|i| (i, i != 5)).collect();
    assert_eq!(done, expected);
    let max = server.max_in_flight();
    assert!(max <= 4, "max in flight {max}");
    assert!(max >= 2, "requests did not overlap: max in flight {max}");
    // 12 requests of 100 ms, 4 at a time: about 300 ms, far below the 1.2 s of one at a time.
    assert!(elapsed < Duration::from_millis(1_100), "{elapsed:?}");
}

#[test]
fn chat_many_with_concurrency_one_is_sequential() {
    let server = serve(vec![], Reply::echo().delayed(20));
    let mut cfg = config(&server);
    cfg.concurrency = 1;
    let ep = Endpoint::new(cfg).unwrap();
    let requests: Vec<Vec<Message>> = (0..4)
        .map(|i| vec![Message::user(format!("q{i}"))])
        .collect();
    let mut order = Vec::new();
    let results = ep.chat_many(&requests, None, None, |i, _| order.push(i));
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(order, vec![0, 1, 2, 3]);
    assert_eq!(server.max_in_flight(), 1);
    assert!(ep.chat_many(&[], None, None, |_, _| {}).is_empty());
}

#[test]
fn config_from_a_candidate_table() {
    #[derive(serde::Deserialize)]
    struct File {
        candidate: Vec<EndpointConfig>,
    }
    let minimal: File = toml::from_str(
        r#"
        [[candidate]]
        name = "frontier"
        url = "https://api.openai.com/v1"
        model = "gpt-4o-mini"
        "#,
    )
    .unwrap();
    let cfg = &minimal.candidate[0];
    assert_eq!(
        cfg,
        &EndpointConfig::new("https://api.openai.com/v1", "gpt-4o-mini")
    );
    assert_eq!(cfg.timeout_s, 60.0);
    assert_eq!(cfg.max_retries, 5);
    assert_eq!(cfg.backoff_initial_ms, 500);
    assert_eq!(cfg.backoff_max_ms, 20_000);
    assert_eq!(cfg.temperature, 0.0);
    assert_eq!(cfg.concurrency, 4);
    assert_eq!(cfg.cost_usd(1, 1), None);

    let full: File = toml::from_str(
        r#"
        [[candidate]]
        url = "http://127.0.0.1:8080/v1"
        model = "m"
        api_key_env = "MY_KEY"
        timeout_s = 12.5
        max_retries = 2
        backoff_initial_ms = 100
        backoff_max_ms = 1000
        price_input_per_mtok = 0.15
        price_output_per_mtok = 0.60
        max_tokens = 256
        temperature = 0.7
        concurrency = 8
        headers = { "OpenAI-Organization" = "org-1" }
        jitter_seed = 3
        "#,
    )
    .unwrap();
    let cfg = &full.candidate[0];
    assert_eq!(cfg.api_key_env.as_deref(), Some("MY_KEY"));
    assert_eq!(cfg.timeout_s, 12.5);
    assert_eq!(cfg.max_tokens, Some(256));
    assert_eq!(cfg.concurrency, 8);
    assert_eq!(cfg.headers["OpenAI-Organization"], "org-1");
    let cost = cfg.cost_usd(1_000_000, 500_000).unwrap();
    assert!((cost - 0.45).abs() < 1e-12, "{cost}");
    cfg.validate().unwrap();
    // Round trip through TOML.
    let again: EndpointConfig = toml::from_str(&toml::to_string(cfg).unwrap()).unwrap();
    assert_eq!(&again, cfg);
}

#[test]
fn invalid_configs_are_refused_before_any_request() {
    let ok = EndpointConfig::new("http://127.0.0.1:1/v1", "m");
    ok.validate().unwrap();
    let cases: Vec<(EndpointConfig, &str)> = vec![
        (EndpointConfig::new("127.0.0.1:8080/v1", "m"), "http://"),
        (EndpointConfig::new("http://x/v1", " "), "model"),
        (
            EndpointConfig {
                timeout_s: 0.0,
                ..ok.clone()
            },
            "timeout_s",
        ),
        (
            EndpointConfig {
                concurrency: 0,
                ..ok.clone()
            },
            "concurrency",
        ),
        (
            EndpointConfig {
                temperature: f64::NAN,
                ..ok.clone()
            },
            "temperature",
        ),
        (
            EndpointConfig {
                price_output_per_mtok: Some(-1.0),
                ..ok.clone()
            },
            "price_output_per_mtok",
        ),
        (
            EndpointConfig {
                headers: [("Bad Header".to_string(), "v".to_string())].into(),
                ..ok.clone()
            },
            "Bad Header",
        ),
    ];
    for (cfg, needle) in cases {
        let (_, _, msg) = endpoint_err(Endpoint::new(cfg).unwrap_err());
        assert!(msg.contains(needle), "{msg} lacks {needle}");
    }
}

#[test]
fn backoff_is_exponential_with_full_jitter_and_capped() {
    assert_eq!(backoff_delay_ms(1, 100, 1_000, 1.0), 100);
    assert_eq!(backoff_delay_ms(2, 100, 1_000, 1.0), 200);
    assert_eq!(backoff_delay_ms(3, 100, 1_000, 1.0), 400);
    assert_eq!(backoff_delay_ms(5, 100, 1_000, 1.0), 1_000);
    assert_eq!(backoff_delay_ms(200, 100, 1_000, 1.0), 1_000);
    assert_eq!(backoff_delay_ms(2, 100, 1_000, 0.5), 100);
    assert_eq!(backoff_delay_ms(3, 100, 1_000, 0.0), 0);
    assert_eq!(backoff_delay_ms(1, 100, 1_000, 7.0), 100);
    assert_eq!(backoff_delay_ms(1, 100, 1_000, f64::NAN), 0);
    assert_eq!(backoff_delay_ms(0, 100, 1_000, 1.0), 100);
}

#[test]
fn identity_and_params_for_cache_keys() {
    let mut cfg = EndpointConfig::new("https://api.example.com/v1/", "m1");
    cfg.max_tokens = Some(100);
    let ep = Endpoint::new(cfg).unwrap();
    assert!(ep
        .identity()
        .contains("https://api.example.com/v1/chat/completions"));
    assert!(ep.identity().contains("m1"));
    let p: Value = serde_json::from_str(&ep.params_json(None, None)).unwrap();
    assert_eq!(p, json!({"max_tokens": 100, "temperature": 0.0}));
    let p: Value = serde_json::from_str(&ep.params_json(Some(7), Some(0.5))).unwrap();
    assert_eq!(p, json!({"max_tokens": 7, "temperature": 0.5}));
    assert!(!format!("{ep:?}").contains("sk-"));
}
