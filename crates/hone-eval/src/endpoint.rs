//! An external OpenAI-compatible endpoint as a candidate (the prompted frontier model).
//!
//! Any server speaking `POST {url}/chat/completions` works: OpenAI itself, a proxy, vLLM,
//! llama.cpp's server, `hone serve`. Requests are retried on 408, 429, 5xx, connection failures
//! and timeouts with exponential back-off and full jitter, honouring `Retry-After`; any other
//! 4xx fails at once with the server's own message. Nothing a server sends can make this module
//! panic: a body that is not a completion is an [`Error::Endpoint`] naming the URL.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hone_model::chat_template::Message;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{Error, Result};

fn default_timeout_s() -> f64 {
    60.0
}
fn default_max_retries() -> u32 {
    5
}
fn default_backoff_initial_ms() -> u64 {
    500
}
fn default_backoff_max_ms() -> u64 {
    20_000
}
fn default_concurrency() -> usize {
    4
}

/// How to reach an OpenAI-compatible endpoint, as written in an eval TOML's `[[candidate]]`
/// table. Only `url` and `model` are required:
///
/// ```toml
/// [[candidate]]
/// url = "https://api.openai.com/v1"     # POST {url}/chat/completions
/// model = "gpt-4o-mini"
/// api_key_env = "OPENAI_API_KEY"         # the variable's NAME; sent as `Authorization: Bearer`
/// timeout_s = 60                         # per request (connect + send + whole response)
/// max_retries = 5                        # retries after the first attempt
/// backoff_initial_ms = 500
/// backoff_max_ms = 20000                 # also caps a server's Retry-After
/// price_input_per_mtok = 0.15            # USD per million prompt tokens
/// price_output_per_mtok = 0.60           # USD per million completion tokens
/// max_tokens = 512                       # omitted from requests when unset
/// temperature = 0.0
/// concurrency = 4                        # requests in flight at once in `chat_many`
/// headers = { "OpenAI-Organization" = "org-..." }
/// jitter_seed = 7                        # makes back-off jitter reproducible
/// ```
///
/// Unknown keys are ignored, so the same table can carry the runner's own keys (`name`, ...).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct EndpointConfig {
    /// Base URL, e.g. `https://api.openai.com/v1`; `/chat/completions` is appended.
    pub url: String,
    /// The `model` field of each request.
    pub model: String,
    /// Name of the environment variable holding the API key, if the server needs one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Per-request timeout in seconds, covering connect, send and reading the whole response.
    #[serde(default = "default_timeout_s")]
    pub timeout_s: f64,
    /// How many times a failed request is retried (so at most `max_retries + 1` attempts).
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// Back-off before the first retry is drawn from `[0, backoff_initial_ms]`; it doubles per
    /// retry.
    #[serde(default = "default_backoff_initial_ms")]
    pub backoff_initial_ms: u64,
    /// Upper bound on any single wait, including one asked for by `Retry-After`.
    #[serde(default = "default_backoff_max_ms")]
    pub backoff_max_ms: u64,
    /// USD per million prompt tokens, for [`EndpointConfig::cost_usd`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_input_per_mtok: Option<f64>,
    /// USD per million completion tokens, for [`EndpointConfig::cost_usd`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price_output_per_mtok: Option<f64>,
    /// Default `max_tokens` of a request; `None` leaves it to the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Default sampling temperature (0: as deterministic as the server allows).
    #[serde(default)]
    pub temperature: f64,
    /// Worker threads issuing requests in parallel in [`Endpoint::chat_many`].
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// Extra HTTP headers sent with every request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Seed for the back-off jitter; `None` seeds from the OS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_seed: Option<u64>,
}

impl EndpointConfig {
    /// A configuration with every optional field at its default.
    pub fn new(url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            model: model.into(),
            api_key_env: None,
            timeout_s: default_timeout_s(),
            max_retries: default_max_retries(),
            backoff_initial_ms: default_backoff_initial_ms(),
            backoff_max_ms: default_backoff_max_ms(),
            price_input_per_mtok: None,
            price_output_per_mtok: None,
            max_tokens: None,
            temperature: 0.0,
            concurrency: default_concurrency(),
            headers: BTreeMap::new(),
            jitter_seed: None,
        }
    }

    /// The full request URL: `{url}/chat/completions`.
    pub fn chat_url(&self) -> String {
        format!("{}/chat/completions", self.url.trim().trim_end_matches('/'))
    }

    /// Checks every field without touching the network or the environment.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| {
            Err(Error::Endpoint {
                url: self.url.clone(),
                status: None,
                msg,
            })
        };
        let url = self.url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return bad("`url` must start with http:// or https://".into());
        }
        if self.model.trim().is_empty() {
            return bad("`model` is empty".into());
        }
        if !(self.timeout_s.is_finite() && self.timeout_s > 0.0) {
            return bad(format!(
                "`timeout_s` must be a positive number of seconds, got {}",
                self.timeout_s
            ));
        }
        if self.concurrency == 0 {
            return bad("`concurrency` must be at least 1".into());
        }
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return bad(format!(
                "`temperature` must be a number >= 0, got {}",
                self.temperature
            ));
        }
        for (name, price) in [
            ("price_input_per_mtok", self.price_input_per_mtok),
            ("price_output_per_mtok", self.price_output_per_mtok),
        ] {
            if let Some(p) = price {
                if !(p.is_finite() && p >= 0.0) {
                    return bad(format!("`{name}` must be a number >= 0, got {p}"));
                }
            }
        }
        if let Some(name) = &self.api_key_env {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                return bad(format!("`api_key_env` {name:?} is not a variable name"));
            }
        }
        for (name, value) in &self.headers {
            let token = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token {
                return bad(format!(
                    "header name {name:?} is not a valid HTTP header name"
                ));
            }
            if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return bad(format!("header {name} has a line break in its value"));
            }
        }
        Ok(())
    }

    /// What `prompt_tokens` in and `completion_tokens` out cost in USD, or `None` when either
    /// price is not configured.
    pub fn cost_usd(&self, prompt_tokens: u64, completion_tokens: u64) -> Option<f64> {
        let input = self.price_input_per_mtok?;
        let output = self.price_output_per_mtok?;
        Some((prompt_tokens as f64 * input + completion_tokens as f64 * output) / 1e6)
    }
}

/// One answer from the endpoint.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Completion {
    /// `choices[0].message.content`.
    pub text: String,
    /// `usage.prompt_tokens`, when the server reports it.
    pub prompt_tokens: Option<u64>,
    /// `usage.completion_tokens`, when the server reports it.
    pub completion_tokens: Option<u64>,
    /// Seconds the successful attempt took (send to last byte), without earlier attempts or
    /// back-off waits.
    pub latency_s: f64,
    /// Attempts made, 1 when the first one succeeded.
    pub attempts: u32,
    /// `choices[0].finish_reason` (`stop`, `length`, ...), when present.
    pub finish_reason: Option<String>,
}

/// The wait in milliseconds before retry number `retry` (1-based) with full jitter:
/// `unit * min(backoff_max_ms, backoff_initial_ms * 2^(retry-1))`, where `unit` is a uniform
/// draw from `[0, 1]` (clamped to it).
pub fn backoff_delay_ms(
    retry: u32,
    backoff_initial_ms: u64,
    backoff_max_ms: u64,
    unit: f64,
) -> u64 {
    let factor = 1u64
        .checked_shl(retry.saturating_sub(1))
        .unwrap_or(u64::MAX);
    let ceiling = backoff_initial_ms
        .saturating_mul(factor)
        .min(backoff_max_ms);
    let unit = if unit.is_nan() {
        0.0
    } else {
        unit.clamp(0.0, 1.0)
    };
    (ceiling as f64 * unit).round() as u64
}

/// A client for one configured endpoint; cheap to share between threads (`Send + Sync`).
pub struct Endpoint {
    cfg: EndpointConfig,
    chat_url: String,
    api_key: Option<String>,
    agent: ureq::Agent,
    rng: Mutex<StdRng>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("chat_url", &self.chat_url)
            .field("model", &self.cfg.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// Why one attempt failed, and whether another may do better.
struct Failure {
    status: Option<u16>,
    msg: String,
    retryable: bool,
    retry_after: Option<Duration>,
}

impl Failure {
    fn fatal(status: Option<u16>, msg: String) -> Self {
        Self {
            status,
            msg,
            retryable: false,
            retry_after: None,
        }
    }
    fn transient(status: Option<u16>, msg: String, retry_after: Option<Duration>) -> Self {
        Self {
            status,
            msg,
            retryable: true,
            retry_after,
        }
    }
}

impl Endpoint {
    /// Validates `cfg`, reads the API key from the environment variable named by
    /// `api_key_env` (an error naming the variable when it is unset or empty) and builds the
    /// HTTP agent. No request is sent.
    pub fn new(cfg: EndpointConfig) -> Result<Self> {
        cfg.validate()?;
        let chat_url = cfg.chat_url();
        let api_key = match &cfg.api_key_env {
            None => None,
            Some(var) => match std::env::var(var) {
                Ok(key) if !key.trim().is_empty() => Some(key.trim().to_string()),
                Ok(_) => {
                    return Err(Error::Endpoint {
                        url: chat_url,
                        status: None,
                        msg: format!("environment variable {var} (api_key_env) is empty"),
                    })
                }
                Err(std::env::VarError::NotPresent) => {
                    return Err(Error::Endpoint {
                        url: chat_url,
                        status: None,
                        msg: format!(
                            "environment variable {var} (api_key_env) is not set; export the API key in it"
                        ),
                    })
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(Error::Endpoint {
                        url: chat_url,
                        status: None,
                        msg: format!("environment variable {var} (api_key_env) is not valid UTF-8"),
                    })
                }
            },
        };
        let timeout = Duration::from_secs_f64(cfg.timeout_s);
        let agent = ureq::AgentBuilder::new()
            .timeout(timeout)
            .redirects(0)
            .max_idle_connections_per_host(cfg.concurrency.max(1))
            .user_agent(concat!("hone/", env!("CARGO_PKG_VERSION")))
            .build();
        let rng = match cfg.jitter_seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_entropy(),
        };
        Ok(Self {
            cfg,
            chat_url,
            api_key,
            agent,
            rng: Mutex::new(rng),
        })
    }

    /// The configuration this client was built from.
    pub fn config(&self) -> &EndpointConfig {
        &self.cfg
    }

    /// The full request URL, `{url}/chat/completions`.
    pub fn chat_url(&self) -> &str {
        &self.chat_url
    }

    /// A stable name for this candidate (URL and model), for output-cache keys.
    pub fn identity(&self) -> String {
        format!("endpoint {} model={}", self.chat_url, self.cfg.model)
    }

    /// The generation parameters a request with these arguments uses, as JSON (for
    /// output-cache keys); `None` arguments fall back to the configuration as in [`Self::chat`].
    pub fn params_json(&self, max_tokens: Option<u32>, temperature: Option<f64>) -> String {
        json!({
            "max_tokens": max_tokens.or(self.cfg.max_tokens),
            "temperature": temperature.unwrap_or(self.cfg.temperature),
        })
        .to_string()
    }

    /// [`EndpointConfig::cost_usd`].
    pub fn cost_usd(&self, prompt_tokens: u64, completion_tokens: u64) -> Option<f64> {
        self.cfg.cost_usd(prompt_tokens, completion_tokens)
    }

    fn err(&self, status: Option<u16>, msg: String) -> Error {
        Error::Endpoint {
            url: self.chat_url.clone(),
            status,
            msg,
        }
    }

    /// Sends one chat request, retrying transient failures. `max_tokens` and `temperature`
    /// override the configuration's defaults when given.
    pub fn chat(
        &self,
        messages: &[Message],
        max_tokens: Option<u32>,
        temperature: Option<f64>,
    ) -> Result<Completion> {
        let temperature = temperature.unwrap_or(self.cfg.temperature);
        if !(temperature.is_finite() && temperature >= 0.0) {
            return Err(self.err(None, format!("temperature must be >= 0, got {temperature}")));
        }
        let mut body = json!({
            "model": self.cfg.model,
            "messages": messages
                .iter()
                .map(|m| json!({"role": m.role, "content": m.content}))
                .collect::<Vec<_>>(),
            "temperature": temperature,
        });
        if let Some(n) = max_tokens.or(self.cfg.max_tokens) {
            body["max_tokens"] = json!(n);
        }
        let body = body.to_string();
        let max_attempts = self.cfg.max_retries.saturating_add(1);
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let started = Instant::now();
            let failure = match self.attempt(&body) {
                Ok(mut c) => {
                    c.latency_s = started.elapsed().as_secs_f64();
                    c.attempts = attempt;
                    tracing::debug!(url = %self.chat_url, attempt, latency_s = c.latency_s, "completion");
                    return Ok(c);
                }
                Err(f) => f,
            };
            if !failure.retryable {
                let msg = if attempt > 1 {
                    format!("{} (attempt {attempt})", failure.msg)
                } else {
                    failure.msg
                };
                return Err(self.err(failure.status, msg));
            }
            if attempt >= max_attempts {
                return Err(self.err(
                    failure.status,
                    format!(
                        "gave up after {attempt} attempts (max_retries = {}); last error: {}",
                        self.cfg.max_retries, failure.msg
                    ),
                ));
            }
            let cap = Duration::from_millis(self.cfg.backoff_max_ms);
            let delay = match failure.retry_after {
                Some(d) => d.min(cap),
                None => {
                    let unit: f64 = self
                        .rng
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .gen();
                    Duration::from_millis(backoff_delay_ms(
                        attempt,
                        self.cfg.backoff_initial_ms,
                        self.cfg.backoff_max_ms,
                        unit,
                    ))
                }
            };
            tracing::warn!(
                url = %self.chat_url,
                attempt,
                max_attempts,
                delay_ms = delay.as_millis() as u64,
                "retrying: {}",
                failure.msg
            );
            std::thread::sleep(delay);
        }
    }

    /// Runs every request of `requests` with up to `concurrency` in flight at once and returns
    /// the results in input order. `on_done(index, &result)` is called on the calling thread as
    /// each one finishes (in completion order), e.g. to advance a progress bar or fill a cache.
    pub fn chat_many<F>(
        &self,
        requests: &[Vec<Message>],
        max_tokens: Option<u32>,
        temperature: Option<f64>,
        mut on_done: F,
    ) -> Vec<Result<Completion>>
    where
        F: FnMut(usize, &Result<Completion>),
    {
        let n = requests.len();
        let mut results: Vec<Option<Result<Completion>>> = (0..n).map(|_| None).collect();
        if n == 0 {
            return Vec::new();
        }
        let workers = self.cfg.concurrency.clamp(1, n);
        let next = AtomicUsize::new(0);
        let (tx, rx) = mpsc::channel::<(usize, Result<Completion>)>();
        std::thread::scope(|s| {
            for _ in 0..workers {
                let tx = tx.clone();
                let next = &next;
                s.spawn(move || loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let r = self.chat(&requests[i], max_tokens, temperature);
                    if tx.send((i, r)).is_err() {
                        break;
                    }
                });
            }
            drop(tx);
            for (i, r) in rx {
                on_done(i, &r);
                results[i] = Some(r);
            }
        });
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(self.err(None, "request was not run (worker stopped)".into()))
                })
            })
            .collect()
    }

    /// One HTTP round trip, classified.
    fn attempt(&self, body: &str) -> std::result::Result<Completion, Failure> {
        let mut req = self
            .agent
            .post(&self.chat_url)
            .set("Content-Type", "application/json")
            .set("Accept", "application/json");
        if let Some(key) = &self.api_key {
            req = req.set("Authorization", &format!("Bearer {key}"));
        }
        for (name, value) in &self.cfg.headers {
            req = req.set(name, value);
        }
        match req.send_string(body) {
            Ok(resp) => {
                let status = resp.status();
                if !(200..300).contains(&status) {
                    let location = resp.header("location").unwrap_or("").to_string();
                    let msg = if location.is_empty() {
                        format!("unexpected HTTP {status} {}", resp.status_text())
                    } else {
                        format!(
                            "HTTP {status} redirect to {location}; set `url` to the final address"
                        )
                    };
                    return Err(Failure::fatal(Some(status), msg));
                }
                let text = resp.into_string().map_err(|e| {
                    Failure::transient(Some(status), self.io_msg("reading the response", &e), None)
                })?;
                parse_completion(&text).map_err(|m| Failure::fatal(Some(status), m))
            }
            Err(ureq::Error::Status(code, resp)) => {
                let retry_after = retry_after(&resp);
                let status_text = resp.status_text().to_string();
                let body = resp.into_string().unwrap_or_default();
                let msg = format!("HTTP {code}: {}", server_message(&body, &status_text));
                if code == 408 || code == 429 || code >= 500 {
                    Err(Failure::transient(Some(code), msg, retry_after))
                } else {
                    Err(Failure::fatal(Some(code), msg))
                }
            }
            Err(ureq::Error::Transport(t)) => {
                use ureq::ErrorKind as K;
                let retryable = matches!(
                    t.kind(),
                    K::ConnectionFailed | K::Io | K::BadStatus | K::BadHeader | K::ProxyConnect
                );
                let msg = self.transport_msg(&t);
                Err(if retryable {
                    Failure::transient(None, msg, None)
                } else {
                    Failure::fatal(None, msg)
                })
            }
        }
    }

    fn io_msg(&self, what: &str, e: &std::io::Error) -> String {
        if matches!(
            e.kind(),
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
        ) {
            format!(
                "{what}: timed out after {} s (timeout_s)",
                self.cfg.timeout_s
            )
        } else {
            format!("{what}: {e}")
        }
    }

    fn transport_msg(&self, t: &ureq::Transport) -> String {
        let mut msg = t.kind().to_string();
        if let Some(m) = t.message() {
            msg.push_str(": ");
            msg.push_str(m);
        }
        let mut src = std::error::Error::source(t);
        while let Some(e) = src {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if matches!(
                    io.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                ) {
                    return format!(
                        "request timed out after {} s (timeout_s)",
                        self.cfg.timeout_s
                    );
                }
            }
            msg.push_str(": ");
            msg.push_str(&e.to_string());
            src = e.source();
        }
        msg
    }
}

/// `Retry-After` in seconds (also `retry-after-ms`, which OpenAI sends); HTTP dates are ignored.
fn retry_after(resp: &ureq::Response) -> Option<Duration> {
    if let Some(ms) = resp
        .header("retry-after-ms")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
    {
        return Some(Duration::from_secs_f64(ms.min(1e9) / 1000.0));
    }
    resp.header("retry-after")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(1e9)))
}

/// The first `max` characters of `s`, marked when cut.
fn snippet(s: &str, max: usize) -> String {
    let s = s.trim();
    match s.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s.to_string(),
    }
}

/// The message in an OpenAI error object (`{"message": ...}`) or string.
fn error_object_message(err: &Value) -> Option<String> {
    match err {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Object(o) => {
            let msg = o.get("message").and_then(Value::as_str)?;
            let kind = o
                .get("type")
                .or_else(|| o.get("code"))
                .and_then(Value::as_str);
            Some(match kind {
                Some(k) if !k.is_empty() => format!("{msg} ({k})"),
                _ => msg.to_string(),
            })
        }
        _ => None,
    }
}

/// What the server said in an error body: the OpenAI shape `{"error":{"message":...}}` when
/// present, else `{"message":...}`, else the start of the body, else the status text.
fn server_message(body: &str, status_text: &str) -> String {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        if let Some(m) = v.get("error").and_then(error_object_message) {
            return m;
        }
        if let Some(m) = v.get("message").and_then(Value::as_str) {
            return m.to_string();
        }
    }
    if body.trim().is_empty() {
        status_text.to_string()
    } else {
        snippet(body, 300)
    }
}

/// `choices[0].message.content` of a chat completion body, with usage and finish reason.
fn parse_completion(body: &str) -> std::result::Result<Completion, String> {
    let v: Value = serde_json::from_str(body)
        .map_err(|e| format!("response is not valid JSON ({e}): {:?}", snippet(body, 200)))?;
    if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
        let msg = error_object_message(err).unwrap_or_else(|| err.to_string());
        return Err(format!("server returned an error: {msg}"));
    }
    let choice = v
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or_else(|| format!("response has no choices[0]: {}", snippet(body, 200)))?;
    let content = choice.get("message").and_then(|m| m.get("content"));
    let text = match content {
        Some(Value::String(s)) => s.clone(),
        // Content as a list of parts: [{"type": "text", "text": "..."}].
        Some(Value::Array(parts))
            if parts
                .iter()
                .all(|p| p.get("text").is_some_and(Value::is_string)) =>
        {
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect()
        }
        _ => {
            let refusal = choice
                .get("message")
                .and_then(|m| m.get("refusal"))
                .and_then(Value::as_str)
                .map(|r| format!(" (refusal: {r})"))
                .unwrap_or_default();
            return Err(format!(
                "response has no text in choices[0].message.content{refusal}: {}",
                snippet(body, 200)
            ));
        }
    };
    let usage = v.get("usage");
    let tokens = |field: &str| usage.and_then(|u| u.get(field)).and_then(Value::as_u64);
    Ok(Completion {
        text,
        prompt_tokens: tokens("prompt_tokens"),
        completion_tokens: tokens("completion_tokens"),
        latency_s: 0.0,
        attempts: 0,
        finish_reason: choice
            .get("finish_reason")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}
