//! Slow, stalled and idle clients against the server in process, over raw TCP (what is sent is
//! exactly what the server sees): a partial request head is answered 408 and closed within the
//! header timeout, an idle kept-alive connection is closed after the idle timeout, a partial
//! body is answered 408 within the body timeout (while a streamed answer longer than every
//! timeout is not cut), a declared oversized body is answered 413 without being waited for,
//! connections over the cap are answered 503, and `serve` returns within its shutdown deadline
//! while a stalled client is connected.
//!
//! The timeouts are set to 1 s here and every wait is bounded by `WAIT` (30 s), a margin wide
//! enough for a loaded machine; before these limits existed, each of these clients was held
//! open for ever.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use hone_serve::conn::ConnLimits;
use hone_serve::openai::Limits;
use hone_serve::server::ServerConfig;
use serde_json::Value;

mod common;
use common::*;

/// A client gives up on an answer after this long: the server held it open.
const WAIT: Duration = Duration::from_secs(30);
const SHORT: Duration = Duration::from_secs(1);
const LONG: Duration = Duration::from_secs(600);

fn config(conn: ConnLimits) -> ServerConfig {
    ServerConfig {
        model_name: "smollm2".into(),
        limits: Limits {
            max_tokens_cap: 1000,
            default_max_tokens: 64,
        },
        conn,
        ..ServerConfig::default()
    }
}

fn limits(header: Duration, body: Duration, idle: Duration) -> ConnLimits {
    ConnLimits {
        header_timeout: header,
        body_timeout: body,
        idle_timeout: idle,
        ..ConnLimits::default()
    }
}

fn connect(srv: &Server) -> TcpStream {
    let addr = srv.url.trim_start_matches("http://");
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s
}

/// An answer: status, headers (lower-case names), body.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Reads one answer with a `Content-Length`; panics when the server sends nothing for `WAIT`
/// (it held the connection instead of answering) or closes before a whole answer.
fn read_answer(s: &mut TcpStream) -> Answer {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(0) => panic!(
                "closed before a whole head: {:?}",
                String::from_utf8_lossy(&buf)
            ),
            Ok(_) => buf.push(byte[0]),
            Err(e) => panic!("no answer within {WAIT:?}: {e}"),
        }
    }
    let head = String::from_utf8(buf).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map(|(_, v)| v.parse().unwrap())
        .expect("an answer with a content-length");
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    Answer {
        status: status.parse().unwrap(),
        headers,
        body,
    }
}

/// Reads until the server closes the connection, returning what came; panics when it is still
/// open after `WAIT`.
fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return out,
            Err(e) => panic!("the connection is still open after {WAIT:?}: {e}"),
        }
    }
}

const PARTIAL_HEAD: &[u8] = b"GET /health HTTP/1.1\r\nHost: x\r\n";
const HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";

#[test]
fn a_partial_request_head_is_answered_408_and_closed_within_the_header_timeout() {
    let Some(path) = smollm2() else { return };
    let srv = Server::start(&path, config(limits(SHORT, LONG, LONG)), &[]);
    let mut s = connect(&srv);
    let t0 = Instant::now();
    s.write_all(PARTIAL_HEAD).unwrap();
    let got = read_until_closed(&mut s);
    let took = t0.elapsed();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    assert!(
        took >= Duration::from_millis(900),
        "{took:?}: before the timeout"
    );
    // A connection that sends nothing at all is closed too.
    let mut quiet = connect(&srv);
    read_until_closed(&mut quiet);
    // And the server still answers everyone else.
    let mut ok = connect(&srv);
    ok.write_all(HEALTH).unwrap();
    assert_eq!(read_answer(&mut ok).status, 200);
    // Both 408s are counted (no path was read: endpoint `connection`).
    let m = srv.metrics();
    assert_eq!(
        m.get("hone_requests_total{endpoint=connection,status=408}"),
        Some(&2.0),
        "{m:?}"
    );
}

#[test]
fn an_idle_kept_alive_connection_is_closed_after_the_idle_timeout() {
    let Some(path) = smollm2() else { return };
    // The header timeout is long: what closes the connection is the idle one.
    let srv = Server::start(&path, config(limits(LONG, LONG, SHORT)), &[]);
    let mut s = connect(&srv);
    // Two requests on one connection: it is kept alive between them.
    for _ in 0..2 {
        s.write_all(HEALTH).unwrap();
        let a = read_answer(&mut s);
        assert_eq!(a.status, 200, "{a:?}");
    }
    let t0 = Instant::now();
    let rest = read_until_closed(&mut s);
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );
}

#[test]
fn a_partial_body_is_answered_408_while_a_long_stream_is_not_cut() {
    let Some(path) = smollm2() else { return };
    let srv = Server::start(&path, config(limits(SHORT, SHORT, SHORT)), &[]);
    let mut s = connect(&srv);
    let t0 = Instant::now();
    s.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"model\":",
    )
    .unwrap();
    let a = read_answer(&mut s);
    assert_eq!(a.status, 408, "{a:?}");
    assert_eq!(a.json()["error"]["code"], "request_timeout", "{a:?}");
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t0.elapsed()
    );

    // A streamed answer read slower than every timeout still arrives whole: the timeouts are
    // on what the client sends, never on what the server writes.
    let body = serde_json::json!({"model": "smollm2",
        "messages": [{"role": "user", "content": PROMPTS[0]}],
        "max_tokens": 40, "temperature": 0, "stream": true})
    .to_string();
    let mut s = connect(&srv);
    write!(
        s,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut first = [0u8; 64];
    let n = s.read(&mut first).unwrap();
    assert!(
        first[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&first[..n])
    );
    std::thread::sleep(Duration::from_millis(2500));
    let rest = read_until_closed(&mut s);
    let text = String::from_utf8_lossy(&rest);
    assert!(text.contains("data: [DONE]"), "the stream was cut: {text}");
}

#[test]
fn a_declared_oversized_body_is_answered_413_without_waiting_for_it() {
    let Some(path) = smollm2() else { return };
    let mut cfg = config(limits(LONG, LONG, LONG));
    cfg.max_body_bytes = 4096;
    let srv = Server::start(&path, cfg, &[]);
    let mut s = connect(&srv);
    // 10 MB declared, none of it sent: the answer cannot wait for the body.
    s.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10485760\r\n\r\n",
    )
    .unwrap();
    let a = read_answer(&mut s);
    assert_eq!(a.status, 413, "{a:?}");
    assert!(
        a.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("4096"),
        "{a:?}"
    );
    let m = srv.metrics();
    assert_eq!(
        m.get("hone_requests_total{endpoint=chat_completions,status=413}"),
        Some(&1.0),
        "counted under its endpoint: {m:?}"
    );
}

#[test]
fn connections_over_the_cap_are_answered_503() {
    let Some(path) = smollm2() else { return };
    let mut conn = limits(LONG, LONG, LONG);
    conn.max_connections = 2;
    let srv = Server::start(&path, config(conn), &[]);
    let mut stalled: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = connect(&srv);
            s.write_all(PARTIAL_HEAD).unwrap();
            s
        })
        .collect();
    // The two stalled clients hold both places (give the server a moment to take them).
    std::thread::sleep(Duration::from_millis(300));
    let mut s = connect(&srv);
    s.write_all(HEALTH).unwrap();
    let a = read_answer(&mut s);
    assert_eq!(a.status, 503, "{a:?}");
    assert_eq!(a.header("retry-after"), Some("1"), "{a:?}");
    // One stalled client goes: its place comes back.
    drop(stalled.pop());
    let t0 = Instant::now();
    loop {
        let mut s = connect(&srv);
        s.write_all(HEALTH).unwrap();
        let a = read_answer(&mut s);
        if a.status == 200 {
            break;
        }
        assert_eq!(a.status, 503, "{a:?}");
        assert!(t0.elapsed() < WAIT, "the place never came back");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Every 503 is counted (endpoint `connection`: no path was read); /metrics is read once
    // the stalled clients are gone and places are free.
    drop(stalled);
    let t0 = Instant::now();
    while ureq::get(&format!("{}/health", srv.url)).call().is_err() {
        assert!(t0.elapsed() < WAIT, "no place came back");
        std::thread::sleep(Duration::from_millis(50));
    }
    let m = srv.metrics();
    assert!(
        m.get("hone_requests_total{endpoint=connection,status=503}")
            .is_some_and(|&n| n >= 1.0),
        "{m:?}"
    );
}

#[test]
fn serve_returns_within_the_shutdown_deadline_while_clients_are_stalled() {
    let Some(path) = smollm2() else { return };
    let mut conn = limits(LONG, LONG, LONG);
    conn.shutdown_deadline = SHORT;
    let srv = Server::start(&path, config(conn), &[]);
    // One stalled in its head (nothing in flight: closed at once), one in its body (a request
    // in flight: it gets the deadline, then its connection is dropped).
    let mut in_head = connect(&srv);
    in_head.write_all(PARTIAL_HEAD).unwrap();
    let mut in_body = connect(&srv);
    in_body
        .write_all(
            b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (tx, rx) = std::sync::mpsc::channel();
    let t0 = Instant::now();
    std::thread::spawn(move || {
        let mut srv = srv;
        srv.shutdown();
        let _ = tx.send(());
    });
    rx.recv_timeout(WAIT)
        .expect("serve did not return while clients were stalled");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "{took:?}: before the deadline"
    );
    // Both were dropped, not answered.
    assert!(read_until_closed(&mut in_head).is_empty());
    assert!(read_until_closed(&mut in_body).is_empty());
}
