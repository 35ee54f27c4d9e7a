//! The request log on the real model: every answered request becomes one row with what the
//! client asked and got, redaction patterns never reach the store (not even the database
//! file's bytes), and a store that cannot keep up costs log rows, never requests.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{smollm2, Server};
use hone_ops::request_log::{LogQuery, Redactor, REDACTED};
use hone_serve::request_log::RequestLogConfig;
use hone_serve::server::ServerConfig;
use serde_json::json;

fn config(capacity: usize, redact: &[&str]) -> ServerConfig {
    ServerConfig {
        request_log: Some(RequestLogConfig {
            capacity,
            redactor: Redactor::new(&redact.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap(),
            flush_every: Duration::from_millis(20),
            ..RequestLogConfig::default()
        }),
        ..ServerConfig::default()
    }
}

fn all_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            out.extend(std::fs::read(&p).unwrap());
        }
    }
    out
}

#[test]
fn every_request_is_logged_and_redacted_before_it_is_written() {
    let Some(path) = smollm2() else {
        println!("skipped: smollm2 is not cached (hone model fetch smollm2)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("registry.db");
    let store = hone_ops::open_store(Some(db.to_str().unwrap()), None).unwrap();
    let mut srv = Server::start_with_store(
        &path,
        config(1000, &["email", "phone", r"ACCT-\d+"]),
        &[],
        Some(Arc::clone(&store)),
    );
    let secret = "Write to jane.doe@example.com or call +44 20 7946 0958 about ACCT-4471.";
    for i in 0..6 {
        // read to the end, as a client does (a stream's client going away is not logged)
        let body = ureq::post(&format!("{}/v1/chat/completions", srv.url))
            .send_json(json!({"model": "base", "max_tokens": 8, "temperature": 0,
                    "user": format!("caller-{i}"), "stream": i % 2 == 1,
                    "messages": [{"role": "user", "content": format!("{secret} Reply to jane.doe@example.com ({i})")}]}))
            .unwrap()
            .into_string()
            .unwrap();
        assert!(body.contains("[DONE]") || i % 2 == 0, "{body}");
    }
    let (code, _) = srv.post(
        "/v1/completions",
        &json!({"model": "base", "prompt": "Contact: bob@corp.io.", "max_tokens": 4}),
    );
    assert_eq!(code, 200);
    // shutting down writes what is queued
    srv.shutdown();
    let rows = store
        .requests(&LogQuery {
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(rows.len(), 7);
    for (i, r) in rows.iter().take(6).enumerate() {
        assert_eq!((r.model.as_str(), r.version.as_deref()), ("base", None));
        assert_eq!(r.endpoint, "chat_completions");
        assert_eq!(r.status, 200);
        assert_eq!(r.caller.as_deref(), Some(format!("caller-{i}").as_str()));
        assert!(
            r.prompt_tokens > 10 && r.output_tokens > 0 && r.output_tokens <= 8,
            "{r:?}"
        );
        assert!(r.latency_ms > 0.0);
        assert!(
            r.mean_logprob.is_some_and(|m| m < 0.0 && m.is_finite()),
            "{r:?}"
        );
        let content = r.input[0]["content"].as_str().unwrap();
        assert!(
            content.contains(REDACTED) && content.contains(&format!("({i})")),
            "{content}"
        );
        assert!(!r.output.is_empty());
    }
    assert_eq!(rows[6].endpoint, "completions");
    assert_eq!(rows[6].input, json!(format!("Contact: {REDACTED}.")));
    // nothing of the patterns anywhere in the store's files (database, WAL)
    let bytes = String::from_utf8_lossy(&all_bytes(dir.path())).into_owned();
    for leak in ["jane.doe@", "7946", "ACCT-4471", "bob@corp"] {
        assert!(!bytes.contains(leak), "{leak} reached the store");
    }
}

#[test]
fn a_store_that_cannot_keep_up_drops_log_rows_not_requests() {
    let Some(path) = smollm2() else {
        println!("skipped: smollm2 is not cached (hone model fetch smollm2)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("registry.db");
    let store = hone_ops::open_store(Some(db.to_str().unwrap()), None).unwrap();
    let srv = Server::start_with_store(&path, config(2, &[]), &[], Some(Arc::clone(&store)));
    // another process holds the database: the writer waits on it
    let blocker = rusqlite::Connection::open(&db).unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let t0 = Instant::now();
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let url = srv.url.clone();
            std::thread::spawn(move || {
                (0..6)
                    .map(|i| {
                        common::post_raw(
                            &format!("{url}/v1/chat/completions"),
                            &json!({"model": "base", "max_tokens": 2,
                                    "messages": [{"role": "user", "content": format!("Hi {t} {i}")}]})
                            .to_string(),
                            None,
                        )
                        .0
                    })
                    .collect::<Vec<u16>>()
            })
        })
        .collect();
    let codes: Vec<u16> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let served = t0.elapsed();
    assert!(codes.iter().all(|&c| c == 200), "{codes:?}");
    let m = srv.metrics();
    let dropped = m["hone_request_log_rows_total{result=dropped}"];
    assert!(dropped >= 1.0, "nothing dropped: {m:?}");
    println!("24 requests in {served:?} with the store locked; {dropped} log rows dropped");
    blocker.execute_batch("ROLLBACK").unwrap();
}
