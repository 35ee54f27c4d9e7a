//! `hone bench serve`: a load generator for any OpenAI-compatible server (hone's own, vLLM,
//! llama.cpp's `llama-server`, ...).
//!
//! `requests` chat completions are sent by `concurrency` worker threads (std threads, blocking
//! `ureq`), each request streaming (`"stream": true`) so the client can time the first content
//! delta (TTFT), the gaps between content chunks (inter-token latency, ITL) and the whole request
//! (end-to-end, E2E). Output tokens come from the final `usage` chunk (asked for with
//! `"stream_options": {"include_usage": true}`), or, where a server sends none, from the number of
//! content chunks. Latency percentiles are by nearest rank over the successful requests; ITL
//! pools the gaps of all successful requests.
//!
//! The default prompts are those of `shared/bench/peers/serve_load.py` (request `i` asks for an
//! NDA clause about topic `i % 8`, "variant i"), so results compare with that peer script.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::error::{Result, ServeError};

/// What to send, where, and how hard.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Base URL of the server, e.g. `http://127.0.0.1:8080`; a trailing `/`, `/v1` or
    /// `/v1/chat/completions` is accepted too, and `http://` is assumed when no scheme is given.
    pub url: String,
    /// Requests in flight at once (worker threads).
    pub concurrency: usize,
    /// Requests in all.
    pub requests: usize,
    /// User messages, used round-robin (request `i` sends `prompts[i % len]`); when empty,
    /// request `i` sends [`default_prompt`]`(i)`, as the peer script does.
    pub prompts: Vec<String>,
    pub max_tokens: usize,
    pub model: String,
    /// Sent as `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// Limit on one whole request, connection to the end of its stream.
    pub timeout: Duration,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            url: "http://127.0.0.1:8080".to_string(),
            concurrency: 4,
            requests: 32,
            prompts: Vec::new(),
            max_tokens: 64,
            model: "m".to_string(),
            api_key: None,
            timeout: Duration::from_secs(300),
        }
    }
}

/// The topics of the peer script `shared/bench/peers/serve_load.py`, in its order.
pub const DEFAULT_TOPICS: [&str; 8] = [
    "confidentiality",
    "term",
    "governing law",
    "return of materials",
    "non-solicitation",
    "remedies",
    "assignment",
    "notices",
];

/// How many prompts [`default_prompts`] returns.
pub const DEFAULT_PROMPT_COUNT: usize = 64;

/// The peer script's prompt for request `i`.
pub fn default_prompt(i: usize) -> String {
    format!(
        "Write a short NDA clause about {} (variant {i}).",
        DEFAULT_TOPICS[i % DEFAULT_TOPICS.len()]
    )
}

/// The first [`DEFAULT_PROMPT_COUNT`] default prompts (`default_prompt(0..64)`): 8 topics, each
/// prompt distinct. A run with no prompts does not need this list: it uses [`default_prompt`] of
/// the request's index, which equals the peer script's prompts for any number of requests.
pub fn default_prompts() -> Vec<String> {
    (0..DEFAULT_PROMPT_COUNT).map(default_prompt).collect()
}

/// Prompts from a file: a `.jsonl` file holds one JSON object with a `"prompt"` string per
/// non-empty line; any other file holds one prompt per non-empty line (trailing whitespace and
/// `\r` dropped). Bad lines are errors naming the file and line; a file with no prompt is an error.
pub fn read_prompt_file(path: &Path) -> Result<Vec<String>> {
    let shown = path.display();
    let bad = |msg: String| ServeError::bad("prompt_file", msg);
    let text = std::fs::read_to_string(path).map_err(|e| bad(format!("{shown}: {e}")))?;
    let jsonl = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("jsonl"));
    let mut prompts = Vec::new();
    for (k, line) in text.lines().enumerate() {
        let line_no = k + 1;
        let line = line.trim_end();
        if line.trim().is_empty() {
            continue;
        }
        if !jsonl {
            prompts.push(line.to_string());
            continue;
        }
        let v: Value = serde_json::from_str(line)
            .map_err(|e| bad(format!("{shown}:{line_no}: invalid JSON: {e}")))?;
        match v.get("prompt") {
            Some(Value::String(p)) if !p.trim().is_empty() => prompts.push(p.clone()),
            Some(Value::String(_)) => {
                return Err(bad(format!("{shown}:{line_no}: \"prompt\" is empty")))
            }
            _ => {
                return Err(bad(format!(
                    "{shown}:{line_no}: expected a JSON object with a \"prompt\" string"
                )))
            }
        }
    }
    if prompts.is_empty() {
        return Err(bad(format!("{shown}: no prompts in the file")));
    }
    Ok(prompts)
}

/// The outcome of a run. Latencies are in milliseconds; a percentile with no sample (no
/// successful request, or no request with two content chunks for ITL) is NaN, which JSON
/// serialization writes as `null` and [`BenchReport::to_table`] as `-`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    /// Requests sent (successful and failed).
    pub requests: usize,
    /// Requests that failed: transport error, non-2xx status, or a broken stream.
    pub errors: usize,
    pub concurrency: usize,
    /// Wall time of the whole run, in seconds.
    pub elapsed_s: f64,
    /// Successful requests per second of `elapsed_s`.
    pub requests_per_s: f64,
    /// Output tokens of successful requests per second of `elapsed_s`.
    pub output_tok_s: f64,
    /// Prompt tokens of successful requests, as the server's `usage` reported (0 without it).
    pub prompt_tokens: u64,
    /// Output tokens of successful requests (`usage.completion_tokens`, else content chunks).
    pub output_tokens: u64,
    pub ttft_p50_ms: f64,
    pub ttft_p95_ms: f64,
    pub e2e_p50_ms: f64,
    pub e2e_p95_ms: f64,
    pub itl_p50_ms: f64,
    pub itl_p95_ms: f64,
    /// The first failure in time, prefixed with its request's index.
    pub first_error: Option<String>,
}

impl BenchReport {
    /// A human-readable summary, one quantity a line.
    pub fn to_table(&self) -> String {
        fn ms(v: f64) -> String {
            if v.is_finite() {
                format!("{v:.1} ms")
            } else {
                "-".to_string()
            }
        }
        let ok = self.requests - self.errors.min(self.requests);
        let mut t = String::new();
        let mut row = |k: &str, v: String| t.push_str(&format!("{k:<14}{v}\n"));
        row(
            "requests",
            format!(
                "{} ({ok} ok, {} errors) at concurrency {}",
                self.requests, self.errors, self.concurrency
            ),
        );
        row("elapsed", format!("{:.2} s", self.elapsed_s));
        row(
            "throughput",
            format!(
                "{:.2} req/s, {:.1} output tok/s",
                self.requests_per_s, self.output_tok_s
            ),
        );
        row(
            "tokens",
            format!(
                "{} prompt, {} output",
                self.prompt_tokens, self.output_tokens
            ),
        );
        for (name, p50, p95) in [
            ("TTFT", self.ttft_p50_ms, self.ttft_p95_ms),
            ("ITL", self.itl_p50_ms, self.itl_p95_ms),
            ("E2E", self.e2e_p50_ms, self.e2e_p95_ms),
        ] {
            row(name, format!("p50 {:>10}   p95 {:>10}", ms(p50), ms(p95)));
        }
        if let Some(e) = &self.first_error {
            row("first error", e.clone());
        }
        t
    }
}

/// The chat-completions endpoint under a base URL given with or without `/v1`.
pub(crate) fn chat_url(base: &str) -> String {
    let mut u = base.trim().trim_end_matches('/').to_string();
    if !u.contains("://") {
        u = format!("http://{u}");
    }
    for suffix in ["/chat/completions", "/v1"] {
        if let Some(stripped) = u.strip_suffix(suffix) {
            u = stripped.trim_end_matches('/').to_string();
        }
    }
    format!("{u}/v1/chat/completions")
}

/// Nearest-rank percentile `p` (0..=100) of ascending `sorted`; NaN when empty.
pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// At most this many characters of an error body go into a message.
const SNIPPET: usize = 300;

fn snippet(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() <= SNIPPET {
        s.to_string()
    } else {
        format!("{}...", s.chars().take(SNIPPET).collect::<String>())
    }
}

/// Timings and counts of one successful request, in seconds from its start.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Sample {
    pub(crate) ttft: Option<f64>,
    e2e: f64,
    itl: Vec<f64>,
    pub(crate) prompt_tokens: u64,
    output_tokens: u64,
}

/// What one SSE line meant.
#[derive(Debug, PartialEq)]
enum Event {
    More,
    Done,
}

/// The state of one response stream, fed line by line.
#[derive(Debug, Default)]
struct StreamState {
    first: Option<f64>,
    last: Option<f64>,
    itl: Vec<f64>,
    content_chunks: u64,
    usage_prompt: Option<u64>,
    usage_completion: Option<u64>,
    finished: bool,
}

fn error_message(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(o) => match o.get("message") {
            Some(Value::String(s)) => s.clone(),
            _ => snippet(&v.to_string()),
        },
        other => snippet(&other.to_string()),
    }
}

impl StreamState {
    /// One line of the stream (without its line ending), read `t` seconds into the request.
    fn feed(&mut self, line: &str, t: f64) -> std::result::Result<Event, String> {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() || line.starts_with(':') {
            return Ok(Event::More);
        }
        // llama-server reports failures inside a stream as an `error:` line.
        if let Some(rest) = line.strip_prefix("error:") {
            return Err(format!("server error in stream: {}", snippet(rest)));
        }
        let Some(data) = line.strip_prefix("data:") else {
            // `event:`, `id:`, `retry:` and unknown fields carry nothing we time.
            return Ok(Event::More);
        };
        let data = data.trim();
        if data == "[DONE]" {
            return Ok(Event::Done);
        }
        let v: Value = serde_json::from_str(data)
            .map_err(|e| format!("bad SSE data ({e}): {}", snippet(data)))?;
        if let Some(err) = v.get("error") {
            return Err(format!("server error in stream: {}", error_message(err)));
        }
        if let Some(usage) = v.get("usage").filter(|u| u.is_object()) {
            if let Some(n) = usage.get("completion_tokens").and_then(Value::as_u64) {
                self.usage_completion = Some(n);
            }
            if let Some(n) = usage.get("prompt_tokens").and_then(Value::as_u64) {
                self.usage_prompt = Some(n);
            }
        }
        let mut content = false;
        if let Some(choices) = v.get("choices").and_then(Value::as_array) {
            for c in choices {
                let delta = c.get("delta");
                let text = |k: &str| {
                    delta
                        .and_then(|d| d.get(k))
                        .and_then(Value::as_str)
                        .is_some_and(|s| !s.is_empty())
                };
                // Reasoning models (llama-server, vLLM) stream their thinking separately; it
                // is generated output all the same.
                content |= text("content") || text("reasoning_content");
                if c.get("finish_reason").is_some_and(|f| !f.is_null()) {
                    self.finished = true;
                }
            }
        }
        if content {
            match self.last {
                None => self.first = Some(t),
                Some(prev) => self.itl.push(t - prev),
            }
            self.last = Some(t);
            self.content_chunks += 1;
        }
        Ok(Event::More)
    }

    fn into_sample(self, e2e: f64) -> Sample {
        Sample {
            ttft: self.first,
            e2e,
            itl: self.itl,
            prompt_tokens: self.usage_prompt.unwrap_or(0),
            output_tokens: self.usage_completion.unwrap_or(self.content_chunks),
        }
    }
}

pub(crate) fn one_request(
    agent: &ureq::Agent,
    endpoint: &str,
    opts: &BenchOptions,
    prompt: &str,
) -> std::result::Result<Sample, String> {
    let body = json!({
        "model": opts.model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": opts.max_tokens,
        "temperature": 0,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    let mut req = agent
        .post(endpoint)
        .set("Accept", "text/event-stream")
        // A compressed stream would arrive in bursts and spoil the timings.
        .set("Accept-Encoding", "identity");
    if let Some(key) = &opts.api_key {
        req = req.set("Authorization", &format!("Bearer {key}"));
    }
    let t0 = Instant::now();
    let resp = match req.send_json(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(code, r)) => {
            let text = r.into_string().unwrap_or_default();
            return Err(format!("HTTP {code}: {}", snippet(&text)));
        }
        Err(e) => return Err(e.to_string()),
    };
    if resp.content_type().eq_ignore_ascii_case("application/json") {
        let text = resp.into_string().unwrap_or_default();
        return Err(format!(
            "expected an SSE stream (text/event-stream), got JSON: {}",
            snippet(&text)
        ));
    }
    let mut reader = BufReader::new(resp.into_reader());
    let mut state = StreamState::default();
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| format!("reading the stream: {e}"))?;
        let t = t0.elapsed().as_secs_f64();
        if n == 0 {
            // Some servers close the stream without `[DONE]` after the final chunk; that is
            // complete. A stream cut before any finish_reason is not.
            if state.finished {
                return Ok(state.into_sample(t));
            }
            return Err("stream ended before data: [DONE]".to_string());
        }
        if state.feed(&line, t)? == Event::Done {
            // The connection is dropped rather than drained: a server that kept it open after
            // [DONE] would otherwise stall this worker.
            return Ok(state.into_sample(t));
        }
    }
}

/// Send `opts.requests` streaming chat completions to `opts.url`, `opts.concurrency` at a
/// time, and summarize them. `on_done(i)` is called (from a worker thread) after request `i`
/// finishes, successful or not. Failed requests are counted in the report, not returned as
/// errors; `Err` is only for invalid options.
pub fn run(opts: &BenchOptions, on_done: impl Fn(usize) + Sync) -> Result<BenchReport> {
    if opts.url.trim().is_empty() {
        return Err(ServeError::bad("url", "the server URL is empty"));
    }
    if opts.concurrency == 0 {
        return Err(ServeError::bad(
            "concurrency",
            "concurrency must be at least 1",
        ));
    }
    if opts.requests == 0 {
        return Err(ServeError::bad("requests", "requests must be at least 1"));
    }
    if opts.max_tokens == 0 {
        return Err(ServeError::bad(
            "max_tokens",
            "max_tokens must be at least 1",
        ));
    }
    if opts.timeout.is_zero() {
        return Err(ServeError::bad("timeout", "timeout must be positive"));
    }
    let endpoint = chat_url(&opts.url);
    let workers = opts.concurrency.min(opts.requests);
    let agent = ureq::AgentBuilder::new()
        .timeout(opts.timeout)
        .max_idle_connections_per_host(workers)
        .user_agent(concat!("hone-bench/", env!("CARGO_PKG_VERSION")))
        .build();

    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, std::result::Result<Sample, String>)>> =
        Mutex::new(Vec::with_capacity(opts.requests));
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= opts.requests {
                    break;
                }
                let prompt = if opts.prompts.is_empty() {
                    default_prompt(i)
                } else {
                    opts.prompts[i % opts.prompts.len()].clone()
                };
                let r = one_request(&agent, &endpoint, opts, &prompt);
                results
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push((i, r));
                on_done(i);
            });
        }
    });
    let elapsed_s = start.elapsed().as_secs_f64();
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    Ok(summarize(opts, elapsed_s, results))
}

fn summarize(
    opts: &BenchOptions,
    elapsed_s: f64,
    results: Vec<(usize, std::result::Result<Sample, String>)>,
) -> BenchReport {
    let mut errors = 0;
    let mut first_error = None;
    let (mut ttft, mut e2e, mut itl) = (Vec::new(), Vec::new(), Vec::new());
    let (mut prompt_tokens, mut output_tokens) = (0u64, 0u64);
    for (i, r) in results.iter() {
        match r {
            Ok(s) => {
                ttft.extend(s.ttft.map(|t| t * 1e3));
                e2e.push(s.e2e * 1e3);
                itl.extend(s.itl.iter().map(|t| t * 1e3));
                prompt_tokens += s.prompt_tokens;
                output_tokens += s.output_tokens;
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("request {i}: {e}"));
            }
        }
    }
    for v in [&mut ttft, &mut e2e, &mut itl] {
        v.sort_by(f64::total_cmp);
    }
    let ok = results.len() - errors;
    let per_s = |x: f64| if elapsed_s > 0.0 { x / elapsed_s } else { 0.0 };
    BenchReport {
        requests: results.len(),
        errors,
        concurrency: opts.concurrency,
        elapsed_s,
        requests_per_s: per_s(ok as f64),
        output_tok_s: per_s(output_tokens as f64),
        prompt_tokens,
        output_tokens,
        ttft_p50_ms: percentile(&ttft, 50.0),
        ttft_p95_ms: percentile(&ttft, 95.0),
        e2e_p50_ms: percentile(&e2e, 50.0),
        e2e_p95_ms: percentile(&e2e, 95.0),
        itl_p50_ms: percentile(&itl, 50.0),
        itl_p95_ms: percentile(&itl, 95.0),
        first_error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_url_accepts_base_with_or_without_v1() {
        let want = "http://127.0.0.1:8080/v1/chat/completions";
        for base in [
            "http://127.0.0.1:8080",
            "http://127.0.0.1:8080/",
            "http://127.0.0.1:8080/v1",
            "http://127.0.0.1:8080/v1/",
            "http://127.0.0.1:8080/v1/chat/completions",
            " 127.0.0.1:8080 ",
        ] {
            assert_eq!(chat_url(base), want, "{base}");
        }
        assert_eq!(
            chat_url("https://host/prefix/v1"),
            "https://host/prefix/v1/chat/completions"
        );
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 10.0);
        assert_eq!(percentile(&v, 95.0), 19.0);
        assert_eq!(percentile(&v, 100.0), 20.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&[7.0], 95.0), 7.0);
        assert_eq!(percentile(&[1.0, 2.0, 3.0], 50.0), 2.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn default_prompts_mirror_the_peer_script() {
        let p = default_prompts();
        assert_eq!(p.len(), DEFAULT_PROMPT_COUNT);
        assert_eq!(
            p[0],
            "Write a short NDA clause about confidentiality (variant 0)."
        );
        assert_eq!(
            p[2],
            "Write a short NDA clause about governing law (variant 2)."
        );
        assert_eq!(p[9], "Write a short NDA clause about term (variant 9).");
        assert_eq!(
            default_prompt(100),
            "Write a short NDA clause about non-solicitation (variant 100)."
        );
    }

    #[test]
    fn stream_state_times_content_and_reads_usage() {
        let mut s = StreamState::default();
        let lines = [
            (": keep-alive", 0.0),
            (
                r#"data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
                0.01,
            ),
            (
                r#"data: {"choices":[{"index":0,"delta":{"content":"Hel"}}]}"#,
                0.1,
            ),
            ("", 0.1),
            (
                r#"data:{"choices":[{"index":0,"delta":{"content":"lo"}}]}"#,
                0.15,
            ),
            ("event: message", 0.15),
            (
                r#"data: {"choices":[{"index":0,"delta":{"reasoning_content":"hm"}}]}"#,
                0.3,
            ),
            (
                r#"data: {"choices":[{"index":0,"delta":{},"finish_reason":"length"}]}"#,
                0.31,
            ),
            (
                r#"data: {"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17}}"#,
                0.32,
            ),
        ];
        for (line, t) in lines {
            assert_eq!(s.feed(line, t).unwrap(), Event::More, "{line}");
        }
        assert!(s.finished);
        assert_eq!(s.feed("data: [DONE]\r\n", 0.33).unwrap(), Event::Done);
        let sample = s.into_sample(0.33);
        assert_eq!(sample.ttft, Some(0.1));
        assert_eq!(sample.itl.len(), 2);
        assert!((sample.itl[0] - 0.05).abs() < 1e-12 && (sample.itl[1] - 0.15).abs() < 1e-12);
        assert_eq!(sample.prompt_tokens, 12);
        assert_eq!(sample.output_tokens, 5);
    }

    #[test]
    fn stream_state_counts_chunks_without_usage() {
        let mut s = StreamState::default();
        for k in 0..4 {
            let line = format!(r#"data: {{"choices":[{{"delta":{{"content":"t{k}"}}}}]}}"#);
            s.feed(&line, k as f64).unwrap();
        }
        // `usage: null` chunks (vLLM without include_usage) are ignored.
        s.feed(r#"data: {"choices":[],"usage":null}"#, 4.0).unwrap();
        let sample = s.into_sample(5.0);
        assert_eq!(sample.output_tokens, 4);
        assert_eq!(sample.prompt_tokens, 0);
        assert_eq!(sample.itl, vec![1.0, 1.0, 1.0]);
    }

    #[test]
    fn stream_state_reports_errors() {
        let mut s = StreamState::default();
        let e = s
            .feed(
                r#"data: {"error":{"message":"out of memory","type":"server_error"}}"#,
                0.0,
            )
            .unwrap_err();
        assert!(e.contains("out of memory"), "{e}");
        let e = s
            .feed(r#"error: {"code":500,"message":"boom"}"#, 0.0)
            .unwrap_err();
        assert!(e.contains("boom"), "{e}");
        let e = s.feed("data: {not json", 0.0).unwrap_err();
        assert!(e.contains("bad SSE data"), "{e}");
    }

    #[test]
    fn summary_counts_and_percentiles() {
        let opts = BenchOptions {
            concurrency: 2,
            ..BenchOptions::default()
        };
        let ok = |ttft: f64, e2e: f64, out: u64| {
            Ok(Sample {
                ttft: Some(ttft),
                e2e,
                itl: vec![0.01, 0.02],
                prompt_tokens: 3,
                output_tokens: out,
            })
        };
        let results = vec![
            (1, ok(0.1, 1.0, 10)),
            (0, Err("HTTP 500: no".to_string())),
            (2, ok(0.3, 2.0, 20)),
            (3, Err("later".to_string())),
        ];
        let r = summarize(&opts, 2.0, results);
        assert_eq!((r.requests, r.errors, r.concurrency), (4, 2, 2));
        assert_eq!((r.prompt_tokens, r.output_tokens), (6, 30));
        assert_eq!(r.requests_per_s, 1.0);
        assert_eq!(r.output_tok_s, 15.0);
        assert_eq!((r.ttft_p50_ms, r.ttft_p95_ms), (100.0, 300.0));
        assert_eq!((r.e2e_p50_ms, r.e2e_p95_ms), (1000.0, 2000.0));
        assert_eq!((r.itl_p50_ms, r.itl_p95_ms), (10.0, 20.0));
        assert_eq!(r.first_error.as_deref(), Some("request 0: HTTP 500: no"));
        let table = r.to_table();
        assert!(
            table.contains("4 (2 ok, 2 errors) at concurrency 2"),
            "{table}"
        );
        assert!(table.contains("15.0 output tok/s"), "{table}");
        assert!(table.contains("request 0: HTTP 500"), "{table}");

        // Nothing succeeded: percentiles are NaN, shown as '-' and serialized as null.
        let r = summarize(&opts, 1.0, vec![(0, Err("refused".to_string()))]);
        assert!(r.ttft_p50_ms.is_nan() && r.e2e_p95_ms.is_nan());
        assert!(r.to_table().contains("p50          -"), "{}", r.to_table());
        let j = serde_json::to_value(&r).unwrap();
        assert!(j["ttft_p50_ms"].is_null());
        assert_eq!(j["errors"], 1);
    }

    #[test]
    fn invalid_options_are_errors() {
        let base = BenchOptions::default();
        for (opts, param) in [
            (
                BenchOptions {
                    concurrency: 0,
                    ..base.clone()
                },
                "concurrency",
            ),
            (
                BenchOptions {
                    requests: 0,
                    ..base.clone()
                },
                "requests",
            ),
            (
                BenchOptions {
                    max_tokens: 0,
                    ..base.clone()
                },
                "max_tokens",
            ),
            (
                BenchOptions {
                    url: " ".into(),
                    ..base.clone()
                },
                "url",
            ),
            (
                BenchOptions {
                    timeout: Duration::ZERO,
                    ..base.clone()
                },
                "timeout",
            ),
        ] {
            match run(&opts, |_| {}) {
                Err(ServeError::BadRequest { param: Some(p), .. }) => assert_eq!(p, param),
                other => panic!("{param}: {other:?}"),
            }
        }
    }

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn err_text(r: Result<Vec<String>>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn prompt_file_text_and_jsonl() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            &dir,
            "p.txt",
            "first prompt\r\n\n   \nsecond  \n  indented third\n",
        );
        assert_eq!(
            read_prompt_file(&p).unwrap(),
            vec!["first prompt", "second", "  indented third"]
        );
        let p = write(
            &dir,
            "p.jsonl",
            "{\"prompt\": \"a\"}\n\n{\"prompt\": \"b \\\"quoted\\\"\", \"extra\": 1}\n",
        );
        assert_eq!(read_prompt_file(&p).unwrap(), vec!["a", "b \"quoted\""]);
    }

    #[test]
    fn prompt_file_errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "empty.txt", "\n  \n");
        let e = err_text(read_prompt_file(&p));
        assert!(e.contains("empty.txt") && e.contains("no prompts"), "{e}");

        let p = write(&dir, "bad.jsonl", "{\"prompt\": \"ok\"}\n{\"prompt\": \n");
        let e = err_text(read_prompt_file(&p));
        assert!(e.contains("bad.jsonl:2: invalid JSON"), "{e}");

        let p = write(
            &dir,
            "noprompt.jsonl",
            "{\"prompt\": \"ok\"}\n\n{\"text\": \"x\"}\n",
        );
        let e = err_text(read_prompt_file(&p));
        assert!(
            e.contains("noprompt.jsonl:3: expected a JSON object"),
            "{e}"
        );

        let p = write(&dir, "num.jsonl", "{\"prompt\": 5}\n");
        let e = err_text(read_prompt_file(&p));
        assert!(e.contains("num.jsonl:1:"), "{e}");

        let p = write(&dir, "blank.jsonl", "{\"prompt\": \"  \"}\n");
        let e = err_text(read_prompt_file(&p));
        assert!(e.contains("blank.jsonl:1: \"prompt\" is empty"), "{e}");

        let e = err_text(read_prompt_file(&dir.path().join("missing.txt")));
        assert!(e.contains("missing.txt"), "{e}");

        let p = dir.path().join("binary.txt");
        std::fs::write(&p, [0xff, 0xfe, 0x00]).unwrap();
        let e = err_text(read_prompt_file(&p));
        assert!(e.contains("binary.txt"), "{e}");
    }
}
