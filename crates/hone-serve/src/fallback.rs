//! The larger model of confidence routing: one OpenAI-compatible endpoint a routed request is
//! re-sent to when the local answer's confidence is under the threshold (`route`).
//!
//! The client's own request goes out as it came (messages or prompt, `max_tokens`,
//! `temperature`, `stop`, `response_format`, ...), with `model` replaced when a fallback model
//! is configured and `stream` off (the answer is read whole, and streamed to the client by the
//! server if it asked). One attempt, bounded by the timeout (connect, send and the whole
//! answer): a retry would only add to a request that already waited for the local model.
//! Every way it can go wrong (no connection, a timeout, a non-2xx status, a body that is not a
//! completion) is a [`FallbackError`]; nothing the endpoint sends can make this module panic.
//! hone-eval's `Endpoint` is not used: it sends chat requests it builds itself (messages,
//! `max_tokens`, `temperature` only), retries with back-off, and hone-eval is not a
//! dependency of the server.

use std::time::{Duration, Instant};

use serde_json::{Map, Value};

/// Where and how the fallback is reached (`hone serve --fallback ...`).
#[derive(Clone)]
pub struct FallbackConfig {
    /// Base URL, e.g. `https://api.openai.com/v1`: `/chat/completions` or `/completions` is
    /// appended.
    pub url: String,
    /// The `model` the fallback is asked for; `None` keeps the client's.
    pub model: Option<String>,
    /// Sent as `Authorization: Bearer KEY` when set.
    pub api_key: Option<String>,
    /// Connect, send and read the whole answer within this.
    pub timeout: Duration,
    /// USD per million prompt tokens the fallback charges.
    pub price_in_per_mtok: Option<f64>,
    /// USD per million completion tokens the fallback charges.
    pub price_out_per_mtok: Option<f64>,
}

impl std::fmt::Debug for FallbackConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FallbackConfig")
            .field("url", &self.url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("price_in_per_mtok", &self.price_in_per_mtok)
            .field("price_out_per_mtok", &self.price_out_per_mtok)
            .finish()
    }
}

impl FallbackConfig {
    /// A configuration for `url` with no model override, no key, no prices and a 30 s timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            model: None,
            api_key: None,
            timeout: DEFAULT_TIMEOUT,
            price_in_per_mtok: None,
            price_out_per_mtok: None,
        }
    }

    /// What `prompt_tokens` in and `completion_tokens` out cost at the configured prices (an
    /// unset price counts 0).
    pub fn cost_usd(&self, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        (prompt_tokens as f64 * self.price_in_per_mtok.unwrap_or(0.0)
            + completion_tokens as f64 * self.price_out_per_mtok.unwrap_or(0.0))
            / 1e6
    }

    /// The URL a chat (`chat`) or completions request is posted to.
    pub fn endpoint_url(&self, chat: bool) -> String {
        let base = self.url.trim().trim_end_matches('/');
        if chat {
            format!("{base}/chat/completions")
        } else {
            format!("{base}/completions")
        }
    }
}

/// Checks that `url` is an http(s) URL with a host (the base the endpoint paths are appended
/// to); the reason when it is not.
pub fn check_url(url: &str) -> Result<(), String> {
    let u = url::Url::parse(url.trim()).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!("the scheme is `{}`, not http or https", u.scheme()));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err("it has no host".into());
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(
            "a base URL takes no query or fragment (`/chat/completions` is appended)".into(),
        );
    }
    Ok(())
}

/// The fallback's timeout when none is given (`--fallback-timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the fallback gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum FallbackError {
    #[error("no answer from {url} within {secs} s (--fallback-timeout)")]
    Timeout { url: String, secs: f64 },
    #[error("cannot reach {url}: {msg}")]
    Transport { url: String, msg: String },
    #[error("{url} answered HTTP {status}: {msg}")]
    Status {
        url: String,
        status: u16,
        msg: String,
    },
    #[error("{url} answered something that is not a completion: {msg}")]
    Body { url: String, msg: String },
}

/// A completion from the fallback.
#[derive(Debug, Clone)]
pub struct FallbackAnswer {
    /// The body as the fallback sent it (returned to a non-streaming client as is).
    pub body: Value,
    /// `choices[0].message.content` (chat) or `choices[0].text` (completions).
    pub text: String,
    /// `choices[0].finish_reason`, when given.
    pub finish: Option<String>,
    /// `usage.prompt_tokens` / `usage.completion_tokens` (0 when not reported).
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Send to last byte.
    pub latency: Duration,
}

/// The fallback client (`Send + Sync`; requests block, so the server calls it from
/// `spawn_blocking`).
#[derive(Debug)]
pub struct Fallback {
    cfg: FallbackConfig,
    agent: ureq::Agent,
}

impl Fallback {
    pub fn new(cfg: FallbackConfig) -> Self {
        let agent = ureq::AgentBuilder::new()
            .timeout(cfg.timeout)
            .redirects(0)
            .user_agent(concat!("hone-serve/", env!("CARGO_PKG_VERSION")))
            .build();
        Self { cfg, agent }
    }

    pub fn config(&self) -> &FallbackConfig {
        &self.cfg
    }

    /// The body sent for a client's request `m`: the same fields, `model` replaced when a
    /// fallback model is configured, `stream` and `stream_options` dropped.
    pub fn forward_body(&self, m: &Map<String, Value>) -> Map<String, Value> {
        let mut out = m.clone();
        out.remove("stream");
        out.remove("stream_options");
        if let Some(model) = &self.cfg.model {
            out.insert("model".into(), Value::String(model.clone()));
        }
        out
    }

    /// Sends `m` (the client's request) to the fallback's chat or completions endpoint and
    /// reads its answer. Blocking; at most the configured timeout.
    pub fn send(
        &self,
        chat: bool,
        m: &Map<String, Value>,
    ) -> Result<FallbackAnswer, FallbackError> {
        let url = self.cfg.endpoint_url(chat);
        let body = Value::Object(self.forward_body(m)).to_string();
        let mut req = self
            .agent
            .post(&url)
            .set("Content-Type", "application/json")
            .set("Accept", "application/json");
        if let Some(key) = &self.cfg.api_key {
            req = req.set("Authorization", &format!("Bearer {key}"));
        }
        let started = Instant::now();
        let timeout = || FallbackError::Timeout {
            url: url.clone(),
            secs: self.cfg.timeout.as_secs_f64(),
        };
        let resp = match req.send_string(&body) {
            Ok(r) => r,
            Err(ureq::Error::Status(status, r)) => {
                let text = r.into_string().unwrap_or_default();
                return Err(FallbackError::Status {
                    url,
                    status,
                    msg: server_message(&text),
                });
            }
            Err(ureq::Error::Transport(t)) => {
                if is_timeout(&t) {
                    return Err(timeout());
                }
                return Err(FallbackError::Transport {
                    url,
                    msg: transport_msg(&t),
                });
            }
        };
        let status = resp.status();
        if !(200..300).contains(&status) {
            // 1xx/3xx (redirects are not followed)
            return Err(FallbackError::Status {
                url,
                status,
                msg: resp.status_text().to_string(),
            });
        }
        let text = resp.into_string().map_err(|e| {
            if matches!(
                e.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) {
                timeout()
            } else {
                FallbackError::Transport {
                    url: url.clone(),
                    msg: format!("reading the answer: {e}"),
                }
            }
        })?;
        let latency = started.elapsed();
        parse_answer(&text, chat)
            .map(|(body, text, finish, p, c)| FallbackAnswer {
                body,
                text,
                finish,
                prompt_tokens: p,
                completion_tokens: c,
                latency,
            })
            .map_err(|msg| FallbackError::Body { url, msg })
    }
}

fn is_timeout(t: &ureq::Transport) -> bool {
    let mut src = std::error::Error::source(t);
    while let Some(e) = src {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) {
                return true;
            }
        }
        src = e.source();
    }
    false
}

/// What went wrong in a transport error, without the URL ureq puts in its text.
fn transport_msg(t: &ureq::Transport) -> String {
    let mut msg = t.kind().to_string();
    if let Some(m) = t.message() {
        msg.push_str(": ");
        msg.push_str(m);
    }
    let mut src = std::error::Error::source(t);
    while let Some(e) = src {
        msg.push_str(": ");
        msg.push_str(&e.to_string());
        src = e.source();
    }
    msg
}

/// The first 200 characters of `s`, marked when cut.
fn snippet(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(200) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s.to_string(),
    }
}

/// An error body's `error.message` when it has one, else its start.
fn server_message(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| {
            v.get("error")
                .and_then(|e| e.get("message").or(Some(e)))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| snippet(body))
}

type Parsed = (Value, String, Option<String>, u64, u64);

/// The answer's text, finish reason and usage from a chat or completions body.
fn parse_answer(body: &str, chat: bool) -> Result<Parsed, String> {
    let v: Value =
        serde_json::from_str(body).map_err(|e| format!("not JSON ({e}): {:?}", snippet(body)))?;
    if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
        return Err(format!("an error: {}", snippet(&err.to_string())));
    }
    let choice = v
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or_else(|| format!("no choices[0]: {:?}", snippet(body)))?;
    let text = if chat {
        match choice.get("message").and_then(|m| m.get("content")) {
            Some(Value::String(s)) => s.clone(),
            // content as a list of text parts
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
            _ => return Err("no text in choices[0].message.content".into()),
        }
    } else {
        match choice.get("text") {
            Some(Value::String(s)) => s.clone(),
            _ => return Err("no text in choices[0].text".into()),
        }
    };
    let finish = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .map(str::to_string);
    let usage = |k: &str| {
        v.get("usage")
            .and_then(|u| u.get(k))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let (p, c) = (usage("prompt_tokens"), usage("completion_tokens"));
    Ok((v, text, finish, p, c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn chat_and_completion_bodies_are_read() {
        let (_, text, finish, p, c) = parse_answer(
            &json!({"choices": [{"message": {"content": "Hi"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 12, "completion_tokens": 3}})
            .to_string(),
            true,
        )
        .unwrap();
        assert_eq!(
            (text.as_str(), finish.as_deref(), p, c),
            ("Hi", Some("stop"), 12, 3)
        );
        let (_, text, _, p, _) =
            parse_answer(&json!({"choices": [{"text": "once"}]}).to_string(), false).unwrap();
        assert_eq!((text.as_str(), p), ("once", 0));
    }

    #[test]
    fn what_is_not_a_completion_is_an_error() {
        for (body, chat) in [
            ("<html>502</html>", true),
            ("{}", true),
            (r#"{"choices": []}"#, true),
            (r#"{"choices": [{"text": "x"}]}"#, true),
            (r#"{"choices": [{"message": {"content": "x"}}]}"#, false),
            (r#"{"error": {"message": "quota"}}"#, true),
            (r#"{"choices": [{"message": {"content": 5}}]}"#, true),
        ] {
            assert!(parse_answer(body, chat).is_err(), "{body}");
        }
    }

    #[test]
    fn the_forwarded_body_is_the_clients_with_the_model_replaced_and_no_stream() {
        let m = json!({"model": "small", "messages": [{"role": "user", "content": "x"}],
                       "max_tokens": 7, "temperature": 0.3, "stop": ["\n"], "stream": true,
                       "stream_options": {"include_usage": true}});
        let m = m.as_object().unwrap();
        let mut cfg = FallbackConfig::new("http://127.0.0.1:1/v1/");
        let kept = Fallback::new(cfg.clone()).forward_body(m);
        assert_eq!(kept["model"], "small");
        cfg.model = Some("big".into());
        let f = Fallback::new(cfg);
        let out = f.forward_body(m);
        assert_eq!(out["model"], "big");
        assert_eq!(
            (&out["max_tokens"], &out["temperature"], &out["stop"]),
            (&json!(7), &json!(0.3), &json!(["\n"]))
        );
        assert!(!out.contains_key("stream") && !out.contains_key("stream_options"));
        assert_eq!(
            f.config().endpoint_url(true),
            "http://127.0.0.1:1/v1/chat/completions"
        );
        assert_eq!(
            f.config().endpoint_url(false),
            "http://127.0.0.1:1/v1/completions"
        );
    }

    #[test]
    fn urls_are_checked() {
        for ok in [
            "http://127.0.0.1:8080/v1",
            "https://api.openai.com/v1/",
            "http://h",
        ] {
            assert_eq!(check_url(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "api.openai.com/v1",
            "ftp://h/v1",
            "http://",
            "http://h/v1?x=1",
            "not a url",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cost_is_tokens_times_prices() {
        let mut cfg = FallbackConfig::new("http://x/v1");
        assert_eq!(cfg.cost_usd(1000, 1000), 0.0);
        cfg.price_in_per_mtok = Some(0.15);
        cfg.price_out_per_mtok = Some(0.60);
        assert!((cfg.cost_usd(2_000_000, 1_000_000) - 0.90).abs() < 1e-12);
    }
}
