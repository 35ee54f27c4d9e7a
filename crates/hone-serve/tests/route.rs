//! Confidence routing on the real model (issue 22, acceptance 3): a second hone server with its
//! request log on is the fallback, and its log proves which requests reached it. Requests whose
//! local answer's mean token log-probability is under the threshold are answered by the
//! fallback (header, body, its log row); the others never reach it. A fallback that is down,
//! hangs past the timeout, refuses the request or answers something that is not a completion
//! leaves the local answer, status 200, with a warning header.
//!
//! Thresholds are chosen from the measured confidences, so the split is deterministic: 0 routes
//! every answer (a mean log-probability is below 0), -1e9 none, and one in the widest gap
//! between the confidences of a first local-only pass splits them.

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use common::{smollm2, Server, PROMPTS};
use hone_ops::request_log::{LogQuery, LogRecord};
use hone_serve::fallback::FallbackConfig;
use hone_serve::request_log::RequestLogConfig;
use hone_serve::route::RouteConfig;
use hone_serve::server::ServerConfig;
use serde_json::{json, Value};

/// One request a phase sends: its path and body (without `user`).
fn requests() -> Vec<(&'static str, Value)> {
    let mut out: Vec<(&str, Value)> = PROMPTS[..4]
        .iter()
        .map(|p| {
            (
                "/v1/chat/completions",
                json!({"model": "base", "max_tokens": 8, "temperature": 0,
                       "messages": [{"role": "user", "content": p}]}),
            )
        })
        .collect();
    out.push((
        "/v1/completions",
        json!({"model": "base", "max_tokens": 8, "temperature": 0,
               "prompt": "A confidentiality clause says that"}),
    ));
    out.push((
        "/v1/chat/completions",
        json!({"model": "base", "max_tokens": 8, "temperature": 0, "stream": true,
               "stream_options": {"include_usage": true},
               "messages": [{"role": "user", "content": PROMPTS[5]}]}),
    ));
    out
}

/// What a routed request got back.
#[derive(Debug)]
struct Got {
    route: String,
    confidence: Option<f64>,
    warning: Option<String>,
    /// The answer's text (a stream's deltas joined).
    text: String,
    /// The body's `model` (a stream's chunks').
    model: String,
    /// `usage` (a stream's last usage chunk).
    usage: Value,
}

fn send(url: &str, path: &str, body: &Value) -> Got {
    let resp = ureq::post(&format!("{url}{path}"))
        .send_json(body.clone())
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(resp.status(), 200);
    let header = |n: &str| resp.header(n).map(str::to_string);
    let route = header("x-hone-route").expect("x-hone-route header");
    let confidence = header("x-hone-confidence").map(|c| c.parse::<f64>().unwrap());
    let warning = header("x-hone-route-warning");
    let stream = body["stream"] == json!(true);
    let chat = path.contains("chat");
    let raw = resp.into_string().unwrap();
    let (text, model, usage) = if stream {
        assert!(raw.trim_end().ends_with("data: [DONE]"), "{raw}");
        let mut text = String::new();
        let mut model = String::new();
        let mut usage = Value::Null;
        for line in raw.lines() {
            let Some(d) = line.strip_prefix("data: ") else {
                continue;
            };
            if d == "[DONE]" {
                continue;
            }
            let v: Value = serde_json::from_str(d).unwrap();
            model = v["model"].as_str().unwrap().to_string();
            if !v["usage"].is_null() {
                usage = v["usage"].clone();
            }
            if let Some(c) = v["choices"].get(0) {
                let piece = if chat {
                    &c["delta"]["content"]
                } else {
                    &c["text"]
                };
                text.push_str(piece.as_str().unwrap_or(""));
            }
        }
        (text, model, usage)
    } else {
        let v: Value = serde_json::from_str(&raw).unwrap();
        let c = &v["choices"][0];
        let text = if chat {
            c["message"]["content"].as_str().unwrap()
        } else {
            c["text"].as_str().unwrap()
        };
        (
            text.to_string(),
            v["model"].as_str().unwrap().to_string(),
            v["usage"].clone(),
        )
    };
    Got {
        route,
        confidence,
        warning,
        text,
        model,
        usage,
    }
}

/// Sends every request with `user` = `{phase}-{i}`.
fn phase(url: &str, name: &str, reqs: &[(&str, Value)]) -> Vec<Got> {
    reqs.iter()
        .enumerate()
        .map(|(i, (path, body))| {
            let mut body = body.clone();
            body["user"] = json!(format!("{name}-{i}"));
            send(url, path, &body)
        })
        .collect()
}

fn routed(fallback_url: &str, model: Option<&str>, threshold: f64, timeout: f64) -> ServerConfig {
    ServerConfig {
        route: Some(RouteConfig {
            model: "base".into(),
            threshold,
            fallback: FallbackConfig {
                url: fallback_url.into(),
                model: model.map(str::to_string),
                api_key: None,
                timeout: Duration::from_secs_f64(timeout),
                price_in_per_mtok: Some(1.0),
                price_out_per_mtok: Some(2.0),
            },
            machine_usd_per_hour: 0.10,
        }),
        ..ServerConfig::default()
    }
}

fn metric(m: &BTreeMap<String, f64>, name: &str, target: &str) -> f64 {
    m[&format!("{name}{{model=base,target={target}}}")]
}

#[test]
fn low_confidence_answers_come_from_the_fallback_and_only_they() {
    let Some(path) = smollm2() else {
        println!("skipped: smollm2 is not cached (hone model fetch smollm2)");
        return;
    };
    // the fallback: a hone server answering `big`, every request it answers in its log
    let dir = tempfile::tempdir().unwrap();
    let store =
        hone_ops::open_store(Some(dir.path().join("r.db").to_str().unwrap()), None).unwrap();
    let mut big = Server::start_with_store(
        &path,
        ServerConfig {
            model_name: "big".into(),
            request_log: Some(RequestLogConfig {
                flush_every: Duration::from_millis(20),
                review_share: 0.0,
                ..RequestLogConfig::default()
            }),
            ..ServerConfig::default()
        },
        &[],
        Some(Arc::clone(&store)),
    );
    let fb = format!("{}/v1", big.url);
    let reqs = requests();

    // nothing routed: the local-only pass that measures each request's confidence
    let none = phase(
        &Server::start(&path, routed(&fb, Some("big"), -1e9, 60.0), &[]).url,
        "none",
        &reqs,
    );
    let conf: Vec<f64> = none
        .iter()
        .map(|g| {
            assert_eq!((g.route.as_str(), &g.warning), ("local", &None), "{g:?}");
            assert_eq!(g.model, "base");
            let c = g.confidence.expect("x-hone-confidence");
            assert!(c < 0.0 && c.is_finite(), "{g:?}");
            c
        })
        .collect();
    println!("confidences: {conf:?}");

    // everything routed (every mean log-probability is below 0)
    let srv = Server::start(&path, routed(&fb, Some("big"), 0.0, 60.0), &[]);
    let all = phase(&srv.url, "all", &reqs);
    for (g, c) in all.iter().zip(&conf) {
        assert_eq!((g.route.as_str(), &g.warning), ("fallback", &None), "{g:?}");
        assert_eq!(g.model, "big", "the fallback's body: {g:?}");
        // the local confidence is reported whoever answers
        assert_eq!(g.confidence, Some(*c));
    }
    let m = srv.metrics();
    assert_eq!(metric(&m, "hone_route_requests_total", "fallback"), 6.0);
    assert_eq!(metric(&m, "hone_route_requests_total", "local"), 0.0);
    assert_eq!(metric(&m, "hone_route_latency_seconds", "fallback"), 6.0);
    // at least the fallback's tokens at 1 and 2 USD per million
    let tokens: f64 = all
        .iter()
        .map(|g| {
            let (p, c) = (&g.usage["prompt_tokens"], &g.usage["completion_tokens"]);
            (p.as_f64().unwrap() + 2.0 * c.as_f64().unwrap()) / 1e6
        })
        .sum();
    let cost = metric(&m, "hone_route_cost_usd_total", "fallback");
    assert!(tokens > 0.0 && cost >= tokens - 1e-12, "{cost} < {tokens}");
    drop(srv);

    // a threshold in the widest gap between the measured confidences splits them
    let mut sorted = conf.clone();
    sorted.sort_by(f64::total_cmp);
    let (gap, lo) = sorted
        .windows(2)
        .map(|w| (w[1] - w[0], w[0]))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap();
    assert!(gap > 1e-3, "the confidences do not split: {sorted:?}");
    let t = lo + gap / 2.0;
    let srv = Server::start(&path, routed(&fb, Some("big"), t, 60.0), &[]);
    let mid = phase(&srv.url, "mid", &reqs);
    let below: Vec<bool> = conf.iter().map(|&c| c < t).collect();
    assert!(below.iter().any(|&b| b) && below.iter().any(|&b| !b));
    for ((g, &b), (n, l)) in mid.iter().zip(&below).zip(none.iter().zip(&all)) {
        let want = if b { "fallback" } else { "local" };
        assert_eq!(g.route, want, "threshold {t}: {g:?}");
        // the answer is the fallback's or the local model's, as the header says
        let expect = if b { l } else { n };
        assert_eq!((&g.text, &g.model), (&expect.text, &expect.model), "{g:?}");
    }
    let m = srv.metrics();
    let routed_n = below.iter().filter(|&&b| b).count() as f64;
    assert_eq!(
        metric(&m, "hone_route_requests_total", "fallback"),
        routed_n
    );
    assert_eq!(
        metric(&m, "hone_route_requests_total", "local"),
        6.0 - routed_n
    );
    drop(srv);

    // the fallback refuses (no model override: it does not serve `base`): the local answer
    let srv = Server::start(&path, routed(&fb, None, 0.0, 60.0), &[]);
    let refused = phase(&srv.url, "refused", &reqs[4..]);
    // the fallback is down (nothing listens) or hangs (accepts, never answers) past 1 s
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let down = phase(
        &Server::start(
            &path,
            routed(&format!("http://127.0.0.1:{closed}/v1"), None, 0.0, 60.0),
            &[],
        )
        .url,
        "down",
        &reqs[4..],
    );
    // the fallback answers 200 with a body that is not a completion
    let garbage = TcpListener::bind("127.0.0.1:0").unwrap();
    let garbage_url = format!("http://{}/v1", garbage.local_addr().unwrap());
    // (not joined: were it never called, the assertions below fail instead of a hang)
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for _ in 0..2 {
            let (mut c, _) = garbage.accept().unwrap();
            c.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let mut buf = [0u8; 65536];
            let _ = c.read(&mut buf);
            c.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 11\r\nConnection: close\r\n\r\n<b>oops</b>")
                .unwrap();
        }
    });
    let unparsed = phase(
        &Server::start(&path, routed(&garbage_url, None, 0.0, 60.0), &[]).url,
        "garbage",
        &reqs[4..],
    );
    let hanging = TcpListener::bind("127.0.0.1:0").unwrap();
    let hang_url = format!("http://{}/v1", hanging.local_addr().unwrap());
    let srv_hang = Server::start(&path, routed(&hang_url, None, 0.0, 1.0), &[]);
    let hung = phase(&srv_hang.url, "hang", &reqs[4..]);
    for (what, gots) in [
        ("refused", &refused),
        ("down", &down),
        ("garbage", &unparsed),
        ("hang", &hung),
    ] {
        for (g, n) in gots.iter().zip(&none[4..]) {
            let w = g.warning.as_deref().unwrap_or("");
            println!("{what}: {w}");
            assert!(w.starts_with("fallback failed: "), "{what}: {g:?}");
            assert_eq!(g.route, "local", "{what}: {g:?}");
            assert_eq!((&g.text, &g.model), (&n.text, &n.model), "{what}: {g:?}");
            assert_eq!(g.confidence, n.confidence, "{what}");
        }
    }
    assert!(refused[0].warning.as_deref().unwrap().contains("404"));
    assert!(unparsed[0]
        .warning
        .as_deref()
        .unwrap()
        .contains("not a completion"));
    assert!(hung[0]
        .warning
        .as_deref()
        .unwrap()
        .contains("--fallback-timeout"));
    let m = srv_hang.metrics();
    assert_eq!(
        metric(&m, "hone_route_requests_total", "fallback_failed"),
        2.0
    );
    assert_eq!(metric(&m, "hone_route_requests_total", "fallback"), 0.0);
    assert!(metric(&m, "hone_route_cost_usd_total", "fallback_failed") > 0.0);
    drop(hanging);

    // the fallback's log: exactly the requests routed to it, with what the client sent
    big.shutdown();
    let rows: Vec<LogRecord> = store
        .requests(&LogQuery {
            limit: 1000,
            ..Default::default()
        })
        .unwrap();
    let callers: Vec<&str> = rows.iter().filter_map(|r| r.caller.as_deref()).collect();
    let mut expected: Vec<String> = (0..6).map(|i| format!("all-{i}")).collect();
    expected.extend((0..6).filter(|&i| below[i]).map(|i| format!("mid-{i}")));
    let mut got: Vec<String> = callers.iter().map(|s| s.to_string()).collect();
    got.sort();
    expected.sort();
    assert_eq!(got, expected, "the fallback's log");
    for r in &rows {
        let i: usize = r.caller.as_deref().unwrap()[4..].parse().unwrap();
        assert_eq!(r.model, "big");
        assert_eq!(
            r.endpoint,
            if i == 4 {
                "completions"
            } else {
                "chat_completions"
            }
        );
        // what the client sent, messages (or prompt) as they were
        let sent = &reqs[i].1;
        let input = if i == 4 {
            &sent["prompt"]
        } else {
            &sent["messages"]
        };
        assert_eq!(&r.input, input);
        assert!(r.output_tokens <= 8);
        // the body the client got is the fallback's answer
        let got = if r.caller.as_deref().unwrap().starts_with("all") {
            &all[i]
        } else {
            &mid[i]
        };
        assert_eq!(got.text, r.output);
    }
}
