//! `hone serve` under abuse, through the binary: 64 concurrent clients mix valid requests,
//! malformed JSON, garbage HTTP, huge `max_tokens`, disconnects mid-stream and mid-answer and
//! unknown adapters for `HONE_ROBUSTNESS_SECS` (default 60) seconds. Every well-formed request
//! gets a well-formed answer (no reset connection, no 5xx; 429/503 only with Retry-After), the
//! server does not panic, its sequences and KV blocks all come back, and its resident memory
//! returns to its idle level.
//!
//! Plain HTTP/1.1 over `TcpStream`, so malformed bodies and dropped connections are exactly
//! what is sent.

mod serve_support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use serve_support::{model_cached, Server};

const MODEL: &str = "smollm2";
const CLIENTS: usize = 64;
/// A request that gets no byte for this long has failed (the server is stuck).
const READ_TIMEOUT: Duration = Duration::from_secs(180);

fn env_secs(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client.

struct Resp {
    status: u16,
    headers: Headers,
    body: Vec<u8>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Result<Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("not JSON ({e}): {}", self.text()))
    }
    fn text(&self) -> String {
        let t = String::from_utf8_lossy(&self.body);
        t.chars().take(400).collect()
    }
}

fn connect(port: u16) -> std::io::Result<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(READ_TIMEOUT))?;
    s.set_write_timeout(Some(Duration::from_secs(30)))?;
    s.set_nodelay(true)?;
    Ok(s)
}

/// Sends one request (`Connection: close`) and returns the open stream.
fn send(port: u16, method: &str, path: &str, body: &[u8]) -> std::io::Result<TcpStream> {
    let mut s = connect(port)?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut req = head.into_bytes();
    req.extend_from_slice(body);
    s.write_all(&req)?;
    Ok(s)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

type Headers = Vec<(String, String)>;

/// Status line and headers of `raw` (up to the blank line), and where the body starts.
fn parse_head(raw: &[u8]) -> Result<(u16, Headers, usize), String> {
    let end = find(raw, b"\r\n\r\n").ok_or("no end of the response head")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "the head is not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line `{status_line}`"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Ok((status, headers, end + 4))
}

/// The body of a `Transfer-Encoding: chunked` response.
fn dechunk(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = find(b, b"\r\n").ok_or("truncated chunk size")?;
        let size_s = std::str::from_utf8(&b[..eol]).map_err(|_| "bad chunk size")?;
        let size = usize::from_str_radix(size_s.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| format!("bad chunk size `{size_s}`"))?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// Reads the whole response (the server closes the connection after it).
fn read_response(mut s: TcpStream) -> Result<Resp, String> {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .map_err(|e| format!("reading the response: {e} (after {} bytes)", raw.len()))?;
    let (status, headers, start) = parse_head(&raw)?;
    let rest = &raw[start..];
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked")
    });
    let body = if chunked {
        dechunk(rest)?
    } else if let Some((_, len)) = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
    {
        let len: usize = len.parse().map_err(|_| "bad content-length")?;
        if rest.len() < len {
            return Err(format!("body of {} bytes, {len} announced", rest.len()));
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Resp {
        status,
        headers,
        body,
    })
}

fn http(port: u16, method: &str, path: &str, body: &[u8]) -> Result<Resp, String> {
    let s = send(port, method, path, body).map_err(|e| format!("sending: {e}"))?;
    read_response(s)
}

fn post(port: u16, path: &str, body: &Value) -> Result<Resp, String> {
    http(port, "POST", path, body.to_string().as_bytes())
}

// ---------------------------------------------------------------------------------------------
// /metrics

fn metrics(port: u16) -> Result<BTreeMap<String, f64>, String> {
    let r = http(port, "GET", "/metrics", b"")?;
    if r.status != 200 {
        return Err(format!("/metrics: {}", r.status));
    }
    let text = String::from_utf8_lossy(&r.body).into_owned();
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect())
}

fn metric(m: &BTreeMap<String, f64>, name: &str) -> f64 {
    m.get(name).copied().unwrap_or(f64::NAN)
}

/// `hone_requests_total` summed over its labels.
fn requests_total(m: &BTreeMap<String, f64>) -> f64 {
    m.iter()
        .filter(|(k, _)| k.starts_with("hone_requests_total{"))
        .map(|(_, v)| v)
        .sum()
}

/// Waits until no sequence runs or waits and every KV block is free; returns how long it took.
fn wait_idle(port: u16, limit: Duration) -> Result<Duration, String> {
    let t0 = Instant::now();
    loop {
        let m = metrics(port)?;
        let busy = (
            metric(&m, "hone_running_sequences"),
            metric(&m, "hone_queue_depth"),
            metric(&m, "hone_kv_blocks_used"),
        );
        if busy == (0.0, 0.0, 0.0) {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > limit {
            return Err(format!(
                "not idle after {limit:?}: running {}, queued {}, KV blocks used {}",
                busy.0, busy.1, busy.2
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

// ---------------------------------------------------------------------------------------------
// The clients.

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn range(&mut self, lo: u64, hi_incl: u64) -> u64 {
        lo + self.below(hi_incl - lo + 1)
    }
}

const QUESTIONS: [&str; 6] = [
    "What is a non-disclosure agreement?",
    "Name one duty of the receiving party.",
    "How long do confidentiality obligations usually last?",
    "Write the title of a contract.",
    "What is confidential information?",
    "Summarise: the Recipient shall return all documents.",
];

const PROMPTS: [&str; 4] = [
    "The Recipient shall keep the Confidential Information",
    "This Agreement is governed by the laws of",
    "The term of this Agreement is",
    "Confidential Information does not include",
];

/// What happened to one request: a counted outcome, or a failure.
type Outcome = Result<&'static str, String>;

/// 429/503 are allowed under load, with Retry-After.
fn overloaded(r: &Resp) -> Option<Outcome> {
    if matches!(r.status, 429 | 503) {
        return Some(match r.header("retry-after") {
            Some(_) => Ok("overloaded (429/503)"),
            None => Err(format!("{} without Retry-After: {}", r.status, r.text())),
        });
    }
    None
}

/// An OpenAI error body with `status`.
fn expect_error(r: &Resp, status: u16, label: &'static str) -> Outcome {
    if let Some(o) = overloaded(r) {
        return o;
    }
    if r.status != status {
        return Err(format!("expected {status}, got {}: {}", r.status, r.text()));
    }
    let v = r.json()?;
    let e = &v["error"];
    if !(e["message"].is_string() && e["type"].is_string()) {
        return Err(format!("not an OpenAI error body: {}", r.text()));
    }
    if status == 404 && e["code"] != "model_not_found" {
        return Err(format!("404 without code model_not_found: {}", r.text()));
    }
    Ok(label)
}

fn check_usage(v: &Value, max_tokens: u64) -> Result<u64, String> {
    let u = &v["usage"];
    let (p, c, t) = (
        u["prompt_tokens"].as_u64(),
        u["completion_tokens"].as_u64(),
        u["total_tokens"].as_u64(),
    );
    match (p, c, t) {
        (Some(p), Some(c), Some(t)) if p > 0 && c <= max_tokens && t == p + c => Ok(c),
        _ => Err(format!("bad usage {u} (max_tokens {max_tokens})")),
    }
}

fn finish_ok(f: &Value, completion: u64, max_tokens: u64) -> Result<(), String> {
    match f.as_str() {
        Some("stop") => Ok(()),
        Some("length") if completion == max_tokens => Ok(()),
        _ => Err(format!(
            "finish_reason {f} after {completion} of {max_tokens} tokens"
        )),
    }
}

fn chat_body(rng: &mut Rng, model: &str, max_tokens: u64) -> Value {
    let q = QUESTIONS[rng.below(QUESTIONS.len() as u64) as usize];
    let mut b = json!({
        "model": model,
        "messages": [{"role": "user", "content": q}],
        "max_tokens": max_tokens,
    });
    if rng.below(2) == 0 {
        b["temperature"] = json!(0);
    } else {
        b["temperature"] = json!(0.8);
        b["seed"] = json!(rng.next() >> 1);
    }
    b
}

/// (a) A valid chat completion.
fn valid_chat(port: u16, rng: &mut Rng) -> Outcome {
    let max = rng.range(8, 24);
    let r = post(port, "/v1/chat/completions", &chat_body(rng, MODEL, max))?;
    if let Some(o) = overloaded(&r) {
        return o;
    }
    if r.status != 200 {
        return Err(format!("chat: {} {}", r.status, r.text()));
    }
    let v = r.json()?;
    let c = check_usage(&v, max)?;
    let choice = &v["choices"][0];
    let content = choice["message"]["content"]
        .as_str()
        .ok_or_else(|| format!("chat without content: {v}"))?;
    if content.is_empty() && c > 0 {
        return Err(format!("{c} tokens but no content: {v}"));
    }
    finish_ok(&choice["finish_reason"], c, max)?;
    Ok("chat 200")
}

/// (b) A valid legacy completion.
fn valid_completion(port: u16, rng: &mut Rng) -> Outcome {
    let max = rng.range(8, 24);
    let prompt = PROMPTS[rng.below(PROMPTS.len() as u64) as usize];
    let body = json!({"model": MODEL, "prompt": prompt, "max_tokens": max, "temperature": 0});
    let r = post(port, "/v1/completions", &body)?;
    if let Some(o) = overloaded(&r) {
        return o;
    }
    if r.status != 200 {
        return Err(format!("completion: {} {}", r.status, r.text()));
    }
    let v = r.json()?;
    let c = check_usage(&v, max)?;
    if !v["choices"][0]["text"].is_string() {
        return Err(format!("completion without text: {v}"));
    }
    finish_ok(&v["choices"][0]["finish_reason"], c, max)?;
    Ok("completion 200")
}

/// (c) A malformed body: 400 with an OpenAI error. Sometimes not HTTP at all.
fn malformed(port: u16, rng: &mut Rng) -> Outcome {
    let bodies: [&[u8]; 8] = [
        br#"{"model": "smollm2", "messages": [{"role": "user", "content": "hi"#,
        b"hello, server",
        b"[1, 2, 3]",
        br#"{"model": "smollm2", "messages": "hi"}"#,
        b"",
        b"{\"model\": \"smollm2\", \"messages\": [{\"role\": \"user\", \"content\": \"\xff\xfe\"}]}",
        br#"{"model": "smollm2", "messages": [{"role": "user", "content": "hi"}], "max_tokens": "lots"}"#,
        br#"{"model": 7, "prompt": "x"}"#,
    ];
    let pick = rng.below(bodies.len() as u64 + 1) as usize;
    if pick == bodies.len() {
        // Not HTTP: any answer (hyper's 400) or a closed connection, but never a 5xx.
        let mut s = connect(port).map_err(|e| format!("connect: {e}"))?;
        s.write_all(b"GARBAGE \x00\x01 NOT HTTP\r\n\r\n")
            .map_err(|e| format!("write: {e}"))?;
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        if let Ok((status, _, _)) = parse_head(&raw) {
            if status >= 500 {
                return Err(format!("garbage HTTP got {status}"));
            }
        }
        return Ok("garbage HTTP (not counted as an answer)");
    }
    let path = if pick == 7 {
        "/v1/completions"
    } else {
        "/v1/chat/completions"
    };
    let r = http(port, "POST", path, bodies[pick])?;
    expect_error(&r, 400, "malformed 400")
}

/// (d) Huge `max_tokens`: over the cap (400), or within it, streamed, and dropped after a few
/// chunks, or not streamed and dropped before the answer.
fn huge(port: u16, rng: &mut Rng) -> Outcome {
    match rng.below(3) {
        0 => {
            let body = chat_body(rng, MODEL, 1_000_000);
            let r = post(port, "/v1/chat/completions", &body)?;
            expect_error(&r, 400, "max_tokens over the cap 400")
        }
        1 => {
            let mut body = chat_body(rng, MODEL, 50_000);
            body["stream"] = json!(true);
            let mut s = send(
                port,
                "POST",
                "/v1/chat/completions",
                body.to_string().as_bytes(),
            )
            .map_err(|e| format!("sending: {e}"))?;
            let want = rng.range(2, 6) as usize;
            let mut raw = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = s
                    .read(&mut buf)
                    .map_err(|e| format!("reading the stream: {e}"))?;
                if n == 0 {
                    // Closed before we left: only a complete error answer is acceptable.
                    let (status, headers, start) = parse_head(&raw)?;
                    let r = Resp {
                        status,
                        headers,
                        body: raw[start..].to_vec(),
                    };
                    return match overloaded(&r) {
                        Some(o) => o,
                        None => Err(format!(
                            "the stream ended before {want} events: {}",
                            String::from_utf8_lossy(&raw)
                        )),
                    };
                }
                raw.extend_from_slice(&buf[..n]);
                if let Ok((status, _, start)) = parse_head(&raw) {
                    if status != 200 {
                        continue; // read the error to its end, judged above
                    }
                    let events = raw[start..].windows(6).filter(|w| w == b"data: ").count();
                    if events >= want {
                        return Ok("disconnect mid-stream");
                    }
                }
            }
        }
        _ => {
            let body = chat_body(rng, MODEL, 50_000);
            let s = send(
                port,
                "POST",
                "/v1/chat/completions",
                body.to_string().as_bytes(),
            )
            .map_err(|e| format!("sending: {e}"))?;
            std::thread::sleep(Duration::from_millis(rng.range(20, 600)));
            drop(s);
            Ok("disconnect before the answer")
        }
    }
}

/// (e) An unknown model or adapter: 404.
fn unknown_model(port: u16, rng: &mut Rng) -> Outcome {
    let name = format!("no-such-adapter-{}", rng.below(1000));
    if rng.below(2) == 0 {
        let r = post(port, "/v1/chat/completions", &chat_body(rng, &name, 8))?;
        expect_error(&r, 404, "unknown model 404")
    } else {
        let body = json!({"model": name, "prompt": "Hello", "max_tokens": 8, "stream": true});
        let r = post(port, "/v1/completions", &body)?;
        expect_error(&r, 404, "unknown model 404")
    }
}

/// (f) A streamed request read to `[DONE]`.
fn stream_to_done(port: u16, rng: &mut Rng) -> Outcome {
    let max = rng.range(8, 24);
    let chat = rng.below(2) == 0;
    let mut body = if chat {
        chat_body(rng, MODEL, max)
    } else {
        let prompt = PROMPTS[rng.below(PROMPTS.len() as u64) as usize];
        json!({"model": MODEL, "prompt": prompt, "max_tokens": max, "temperature": 0})
    };
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let path = if chat {
        "/v1/chat/completions"
    } else {
        "/v1/completions"
    };
    let r = post(port, path, &body)?;
    if let Some(o) = overloaded(&r) {
        return o;
    }
    if r.status != 200 {
        return Err(format!("stream: {} {}", r.status, r.text()));
    }
    let text = String::from_utf8(r.body).map_err(|_| "the stream is not UTF-8".to_string())?;
    let datas: Vec<&str> = text
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .filter_map(|e| e.lines().find_map(|l| l.strip_prefix("data: ")))
        .collect();
    if datas.last() != Some(&"[DONE]") {
        return Err(format!("the stream does not end with [DONE]: {text}"));
    }
    let mut finishes = Vec::new();
    let mut usage = None;
    for d in &datas[..datas.len() - 1] {
        let v: Value =
            serde_json::from_str(d).map_err(|e| format!("a chunk is not JSON ({e}): {d}"))?;
        if v.get("error").is_some() {
            return Err(format!("an error in the stream: {d}"));
        }
        if let Some(f) = v["choices"][0]["finish_reason"].as_str() {
            finishes.push(f.to_string());
        }
        if !v["usage"].is_null() {
            usage = Some(check_usage(&v, max)?);
        }
    }
    let c = usage.ok_or_else(|| format!("no usage chunk: {text}"))?;
    if finishes.len() != 1 {
        return Err(format!("finish reasons {finishes:?}"));
    }
    finish_ok(&json!(finishes[0]), c, max)?;
    Ok("stream to [DONE]")
}

/// One client: requests of every kind until `deadline`.
fn client(port: u16, seed: u64, deadline: Instant) -> (BTreeMap<&'static str, u64>, Vec<String>) {
    let mut rng = Rng(seed);
    let mut counts = BTreeMap::new();
    let mut failures = Vec::new();
    while Instant::now() < deadline {
        let roll = rng.below(100);
        let (kind, out) = match roll {
            0..=24 => ("chat", valid_chat(port, &mut rng)),
            25..=39 => ("completion", valid_completion(port, &mut rng)),
            40..=54 => ("malformed", malformed(port, &mut rng)),
            55..=69 => ("huge max_tokens", huge(port, &mut rng)),
            70..=79 => ("unknown model", unknown_model(port, &mut rng)),
            _ => ("stream", stream_to_done(port, &mut rng)),
        };
        match out {
            Ok(label) => *counts.entry(label).or_insert(0) += 1,
            Err(e) => {
                *counts.entry("FAILED").or_insert(0) += 1;
                failures.push(format!("{kind}: {e}"));
            }
        }
    }
    (counts, failures)
}

/// 64 clients until `secs` from now; the merged counts and failures.
fn run_clients(
    port: u16,
    secs: u64,
    seed: u64,
) -> (BTreeMap<&'static str, u64>, Vec<String>, Duration) {
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(secs);
    let handles: Vec<_> = (0..CLIENTS as u64)
        .map(|i| {
            std::thread::Builder::new()
                .name(format!("client-{i}"))
                .stack_size(256 << 10)
                .spawn(move || client(port, seed ^ (i.wrapping_mul(0x1000_0000_01B3)), deadline))
                .expect("spawn a client")
        })
        .collect();
    let mut counts = BTreeMap::new();
    let mut failures = Vec::new();
    for h in handles {
        let (c, f) = h.join().expect("a client thread panicked");
        for (k, v) in c {
            *counts.entry(k).or_insert(0) += v;
        }
        failures.extend(f);
    }
    (counts, failures, t0.elapsed())
}

/// Requests the server answered (and so counted in `hone_requests_total`).
fn answered(counts: &BTreeMap<&'static str, u64>) -> u64 {
    counts
        .iter()
        .filter(|(k, _)| {
            !k.starts_with("garbage") && !k.starts_with("disconnect") && **k != "FAILED"
        })
        .map(|(_, v)| v)
        .sum()
}

fn show(counts: &BTreeMap<&'static str, u64>) -> String {
    counts
        .iter()
        .map(|(k, v)| format!("  {k:<42} {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A completion whose prompt and output together fill (nearly) every KV block, so every page
/// of the pool has been written once.
fn fill_kv_pool(port: u16, kv_tokens: u64) -> Result<u64, String> {
    let unit = "The Recipient shall keep the Confidential Information secret and shall not \
                disclose it to any third party. ";
    let probe = post(
        port,
        "/v1/completions",
        &json!({"model": MODEL, "prompt": unit.repeat(10), "max_tokens": 1}),
    )?;
    let per10 = probe.json()?["usage"]["prompt_tokens"]
        .as_u64()
        .ok_or_else(|| format!("probe: {}", probe.text()))?;
    let max_tokens = 16;
    let budget = kv_tokens.saturating_sub(max_tokens + 8);
    let reps = (budget * 10 / per10).max(1) as usize;
    let r = post(
        port,
        "/v1/completions",
        &json!({"model": MODEL, "prompt": unit.repeat(reps), "max_tokens": max_tokens,
                "temperature": 0}),
    )?;
    if r.status != 200 {
        return Err(format!("filling the KV pool: {} {}", r.status, r.text()));
    }
    let v = r.json()?;
    Ok(v["usage"]["total_tokens"].as_u64().unwrap_or(0))
}

#[test]
fn sixty_four_abusive_clients_leave_the_server_answering_and_its_memory_idle() {
    if !model_cached() {
        return;
    }
    let secs = env_secs("HONE_ROBUSTNESS_SECS", 60);
    let warmup_secs = env_secs("HONE_ROBUSTNESS_WARMUP_SECS", 10);
    let seed = env_secs("HONE_ROBUSTNESS_SEED", 0x5EED_2026);
    let t_test = Instant::now();
    let mut server = Server::start(&[
        "--model",
        MODEL,
        "--kv-memory",
        "64M",
        "--max-tokens-cap",
        "100000",
    ]);
    let port = server.port;
    let rss_cold = server.rss_kib();
    // "... (KV cache N tokens, batch B)" on stderr.
    let kv_tokens: u64 = server
        .stderr()
        .split("KV cache ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .expect("the startup line gives the KV cache size");

    // Warm-up. The KV pool is one zeroed allocation whose pages the kernel maps on first write,
    // and the allocator's arenas grow to the concurrency they see: neither is a leak, so the
    // idle level is taken after (1) one request that writes every KV block and (2) a short
    // burst of the same 64-client mix, once the server is idle again.
    let filled = fill_kv_pool(port, kv_tokens).expect("fill the KV pool");
    wait_idle(port, Duration::from_secs(60)).expect("idle after the fill");
    let rss_filled = server.rss_kib();
    println!(
        "KV pool: {kv_tokens} tokens; the fill request held {filled}; RSS {} MiB after it",
        rss_filled / 1024
    );
    let (wc, wf, _) = run_clients(port, warmup_secs, seed ^ 0xABCD);
    assert!(
        wf.is_empty(),
        "{} failures during the warm-up, e.g.:\n{}\ncounts:\n{}",
        wf.len(),
        wf.iter().take(20).cloned().collect::<Vec<_>>().join("\n"),
        show(&wc)
    );
    wait_idle(port, Duration::from_secs(60)).expect("idle after the warm-up");
    std::thread::sleep(Duration::from_millis(500));
    let rss_idle = server.rss_kib();
    let before = metrics(port).unwrap();

    // The run.
    let (counts, failures, took) = run_clients(port, secs, seed);
    let settle = wait_idle(port, Duration::from_secs(60));
    let alive = server.is_alive();
    let err = server.stderr();
    let after = metrics(port).ok();
    std::thread::sleep(Duration::from_millis(500));
    let rss_after = if alive { server.rss_kib() } else { 0 };

    let total: u64 = counts.values().sum();
    let answered_n = answered(&counts);
    println!(
        "{CLIENTS} clients for {secs} s (the last answer after {:.1} s): {total} requests\n{}",
        took.as_secs_f64(),
        show(&counts)
    );
    println!(
        "RSS: {} MiB at start, {} MiB idle after the warm-up, {} MiB idle after the run",
        rss_cold / 1024,
        rss_idle / 1024,
        rss_after / 1024
    );
    if let Some(m) = &after {
        println!(
            "metrics: {} requests counted during the run ({answered_n} answered), {} \
             preemptions, {} tokens generated",
            requests_total(m) - requests_total(&before),
            metric(m, "hone_preemptions_total"),
            metric(m, "hone_generation_tokens_total")
                - metric(&before, "hone_generation_tokens_total")
        );
    }
    println!("whole test: {:.1} s", t_test.elapsed().as_secs_f64());

    assert!(alive, "the server exited during the run; stderr:\n{err}");
    assert!(!err.contains("panicked"), "the server panicked:\n{err}");
    assert!(
        failures.is_empty(),
        "{} of {total} requests were not answered well, e.g.:\n{}",
        failures.len(),
        failures
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    let settle = settle.expect("every sequence and KV block is released after the run");
    println!("idle {:.1} s after the last answer", settle.as_secs_f64());
    // Every kind came up (a run of 30 s or more draws each kind hundreds of times).
    if secs >= 30 {
        for kind in [
            "chat 200",
            "completion 200",
            "stream to [DONE]",
            "malformed 400",
            "unknown model 404",
            "max_tokens over the cap 400",
            "disconnect mid-stream",
            "disconnect before the answer",
        ] {
            assert!(
                counts.get(kind).copied().unwrap_or(0) > 0,
                "no `{kind}` request in the run"
            );
        }
    }
    let overloaded = counts.get("overloaded (429/503)").copied().unwrap_or(0);
    assert!(
        overloaded * 20 <= total,
        "overload answers should be rare: {overloaded} of {total}"
    );
    let m = after.expect("/metrics after the run");
    let counted = requests_total(&m) - requests_total(&before);
    assert!(
        counted >= answered_n as f64,
        "hone_requests_total grew by {counted} during the run, but {answered_n} requests were answered"
    );
    // Tolerance, from measurement (2 cores, 60 s, ~1000 requests): 165 MiB at start, 231 MiB
    // after the KV fill (the 64 MiB pool mapped), 242 MiB after the warm-up burst (allocator
    // arenas and buffers sized by 64 connections and batches of 32), 243 MiB after the run.
    // The allocator keeps some freed memory, and which arenas the connections' tasks land on
    // varies from run to run, hence max(10 %, 32 MiB): a leak of more than ~32 KiB per request
    // (a KV block is 720 KiB; a request's buffers are tens of KiB) fails it within a run.
    let tolerance = (rss_idle / 10).max(32 << 10);
    assert!(
        rss_after <= rss_idle + tolerance,
        "RSS {} KiB after the run, {} KiB idle before it (tolerance {} KiB)",
        rss_after,
        rss_idle,
        tolerance
    );
}
