//! OpenAI's request and response shapes for `/v1/chat/completions` and `/v1/completions`.
//!
//! Requests are read from a JSON value field by field, so every error names its field
//! (`messages[2].content`, `top_logprobs`, ...) the way OpenAI's `param` does. Unknown fields
//! are ignored, as OpenAI's clients send many optional ones.

use serde_json::{json, Map, Value};

use crate::error::{Result, ServeError};

/// What the request asks the output to be.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema(Value),
}

/// The prompt part of a request.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptInput {
    /// Chat messages: (role, content).
    Chat(Vec<(String, String)>),
    /// A raw completion prompt.
    Text(String),
}

/// A validated request, either endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub model: String,
    pub input: PromptInput,
    pub max_tokens: usize,
    pub temperature: f32,
    pub top_p: f32,
    pub seed: Option<u64>,
    pub stop: Vec<String>,
    pub stream: bool,
    pub include_usage: bool,
    /// `Some(k)`: log-probabilities with `k` alternatives per token.
    pub logprobs: Option<usize>,
    pub response_format: ResponseFormat,
    /// OpenAI's end-user id: keeps a user on one side of a canary.
    pub user: Option<String>,
}

/// Limits the server applies while reading requests.
#[derive(Debug, Clone)]
pub struct Limits {
    /// `max_tokens` above this is refused.
    pub max_tokens_cap: usize,
    /// `max_tokens` when the request has none (chat); completions default to 16 as OpenAI's.
    pub default_max_tokens: usize,
}

fn bad(param: &str, msg: impl Into<String>) -> ServeError {
    ServeError::bad(param, msg)
}

/// Parses the body as a JSON object.
pub fn parse_body(body: &[u8]) -> Result<Map<String, Value>> {
    let v: Value = serde_json::from_slice(body).map_err(|e| ServeError::BadRequest {
        param: None,
        message: format!("the body is not valid JSON: {e}"),
    })?;
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(ServeError::BadRequest {
            param: None,
            message: "the body must be a JSON object".into(),
        }),
    }
}

fn get_str(m: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(key, format!("`{key}` must be a string"))),
    }
}

fn get_f32(m: &Map<String, Value>, key: &str, lo: f32, hi: f32) -> Result<Option<f32>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let v = n.as_f64().unwrap_or(f64::NAN) as f32;
            if !(v >= lo && v <= hi) {
                return Err(bad(key, format!("`{key}` must be between {lo} and {hi}")));
            }
            Ok(Some(v))
        }
        Some(_) => Err(bad(key, format!("`{key}` must be a number"))),
    }
}

fn get_uint(m: &Map<String, Value>, key: &str) -> Result<Option<u64>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| bad(key, format!("`{key}` must be a non-negative integer"))),
        Some(_) => Err(bad(key, format!("`{key}` must be an integer"))),
    }
}

fn get_bool(m: &Map<String, Value>, key: &str) -> Result<Option<bool>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(bad(key, format!("`{key}` must be true or false"))),
    }
}

/// The text of a message's `content`: a string, or an array of `{"type":"text","text":..}`.
fn content_text(v: &Value, param: &str) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Null => Ok(String::new()),
        Value::Array(parts) => {
            let mut out = String::new();
            for (i, p) in parts.iter().enumerate() {
                let pp = format!("{param}[{i}]");
                let ty = p.get("type").and_then(Value::as_str).unwrap_or("");
                if ty != "text" {
                    return Err(bad(
                        &pp,
                        format!("content parts of type `{ty}` are not supported (text only)"),
                    ));
                }
                let t = p
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad(&format!("{pp}.text"), "a text part needs `text`"))?;
                out.push_str(t);
            }
            Ok(out)
        }
        _ => Err(bad(
            param,
            "`content` must be a string or an array of text parts",
        )),
    }
}

fn parse_stop(m: &Map<String, Value>) -> Result<Vec<String>> {
    match m.get("stop") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(a)) => {
            if a.len() > 4 {
                return Err(bad("stop", "at most 4 stop sequences"));
            }
            a.iter()
                .enumerate()
                .map(|(i, v)| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| bad(&format!("stop[{i}]"), "stop sequences are strings"))
                })
                .collect()
        }
        Some(_) => Err(bad(
            "stop",
            "`stop` must be a string or an array of strings",
        )),
    }
}

fn parse_response_format(m: &Map<String, Value>) -> Result<ResponseFormat> {
    let Some(rf) = m.get("response_format") else {
        return Ok(ResponseFormat::Text);
    };
    if rf.is_null() {
        return Ok(ResponseFormat::Text);
    }
    let ty = rf
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("response_format.type", "`response_format` needs a `type`"))?;
    match ty {
        "text" => Ok(ResponseFormat::Text),
        "json_object" => Ok(ResponseFormat::JsonObject),
        "json_schema" => {
            let js = rf.get("json_schema").ok_or_else(|| {
                bad(
                    "response_format.json_schema",
                    "`json_schema` is required for type json_schema",
                )
            })?;
            let schema = js.get("schema").cloned().ok_or_else(|| {
                bad(
                    "response_format.json_schema.schema",
                    "`json_schema.schema` is required",
                )
            })?;
            if !schema.is_object() && !schema.is_boolean() {
                return Err(bad(
                    "response_format.json_schema.schema",
                    "the schema must be a JSON object",
                ));
            }
            Ok(ResponseFormat::JsonSchema(schema))
        }
        other => Err(bad(
            "response_format.type",
            format!("unknown response_format type `{other}` (text, json_object, json_schema)"),
        )),
    }
}

/// Fields both endpoints share.
fn common(m: &Map<String, Value>, limits: &Limits, default_max: usize) -> Result<Request> {
    let model = get_str(m, "model")?.ok_or_else(|| bad("model", "`model` is required"))?;
    if let Some(n) = get_uint(m, "n")? {
        if n != 1 {
            return Err(bad("n", "only n = 1 is supported"));
        }
    }
    let max = match get_uint(m, "max_completion_tokens")? {
        Some(v) => Some(v),
        None => get_uint(m, "max_tokens")?,
    };
    let max_tokens = match max {
        None => default_max.min(limits.max_tokens_cap),
        Some(0) => return Err(bad("max_tokens", "`max_tokens` must be at least 1")),
        Some(v) if v as usize > limits.max_tokens_cap => {
            return Err(bad(
                "max_tokens",
                format!(
                    "`max_tokens` is {v}; this server allows at most {}",
                    limits.max_tokens_cap
                ),
            ))
        }
        Some(v) => v as usize,
    };
    let stream = get_bool(m, "stream")?.unwrap_or(false);
    let include_usage = match m.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(Value::Object(o)) => get_bool(o, "include_usage")
            .map_err(|_| bad("stream_options.include_usage", "must be true or false"))?
            .unwrap_or(false),
        Some(_) => return Err(bad("stream_options", "`stream_options` must be an object")),
    };
    Ok(Request {
        model,
        input: PromptInput::Text(String::new()),
        max_tokens,
        temperature: get_f32(m, "temperature", 0.0, 2.0)?.unwrap_or(1.0),
        top_p: match get_f32(m, "top_p", 0.0, 1.0)? {
            Some(p) if p <= 0.0 => return Err(bad("top_p", "`top_p` must be above 0")),
            Some(p) => p,
            None => 1.0,
        },
        seed: match m.get("seed") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(
                n.as_u64()
                    .or_else(|| n.as_i64().map(|v| v as u64))
                    .ok_or_else(|| bad("seed", "`seed` must be an integer"))?,
            ),
            Some(_) => return Err(bad("seed", "`seed` must be an integer")),
        },
        stop: parse_stop(m)?,
        stream,
        include_usage,
        logprobs: None,
        response_format: parse_response_format(m)?,
        user: match m.get("user") {
            None | Some(Value::Null) => None,
            Some(Value::String(u)) if u.len() <= 256 => Some(u.clone()),
            Some(Value::String(_)) => return Err(bad("user", "`user` is at most 256 bytes")),
            Some(_) => return Err(bad("user", "`user` must be a string")),
        },
    })
}

/// `POST /v1/chat/completions`.
pub fn chat_request(m: &Map<String, Value>, limits: &Limits) -> Result<Request> {
    let mut r = common(m, limits, limits.default_max_tokens)?;
    let msgs = match m.get("messages") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) => return Err(bad("messages", "`messages` is empty")),
        None | Some(Value::Null) => return Err(bad("messages", "`messages` is required")),
        Some(_) => return Err(bad("messages", "`messages` must be an array")),
    };
    let mut out = Vec::with_capacity(msgs.len());
    for (i, msg) in msgs.iter().enumerate() {
        let p = format!("messages[{i}]");
        let role = msg
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(&format!("{p}.role"), "each message needs a `role` string"))?;
        let role = match role {
            "system" | "user" | "assistant" => role.to_string(),
            "developer" => "system".to_string(),
            other => {
                return Err(bad(
                    &format!("{p}.role"),
                    format!("unsupported role `{other}` (system, developer, user, assistant)"),
                ))
            }
        };
        let content = msg
            .get("content")
            .ok_or_else(|| bad(&format!("{p}.content"), "each message needs `content`"))?;
        out.push((role, content_text(content, &format!("{p}.content"))?));
    }
    r.input = PromptInput::Chat(out);
    if get_bool(m, "logprobs")?.unwrap_or(false) {
        let k = get_uint(m, "top_logprobs")?.unwrap_or(0);
        if k > 20 {
            return Err(bad(
                "top_logprobs",
                "`top_logprobs` must be between 0 and 20",
            ));
        }
        r.logprobs = Some(k as usize);
    } else if get_uint(m, "top_logprobs")?.is_some_and(|k| k > 0) {
        return Err(bad("top_logprobs", "`top_logprobs` needs `logprobs: true`"));
    }
    Ok(r)
}

/// `POST /v1/completions`.
pub fn completion_request(m: &Map<String, Value>, limits: &Limits) -> Result<Request> {
    let mut r = common(m, limits, 16)?;
    let prompt = match m.get("prompt") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => {
            a[0].as_str().unwrap_or_default().to_string()
        }
        Some(Value::Array(_)) => {
            return Err(bad(
                "prompt",
                "one prompt string per request (a list of one)",
            ))
        }
        None | Some(Value::Null) => return Err(bad("prompt", "`prompt` is required")),
        Some(_) => return Err(bad("prompt", "`prompt` must be a string")),
    };
    if prompt.is_empty() {
        return Err(bad("prompt", "`prompt` is empty"));
    }
    if get_bool(m, "echo")?.unwrap_or(false) {
        return Err(bad("echo", "`echo` is not supported"));
    }
    r.input = PromptInput::Text(prompt);
    if let Some(k) = get_uint(m, "logprobs")? {
        if k > 5 {
            return Err(bad("logprobs", "`logprobs` must be between 0 and 5"));
        }
        r.logprobs = Some(k as usize);
    }
    Ok(r)
}

/// OpenAI's error body.
pub fn error_body(err: &ServeError) -> Value {
    let (ty, param, code) = match err {
        ServeError::BadRequest { param, .. } => {
            ("invalid_request_error", param.clone(), Value::Null)
        }
        ServeError::TooLarge(_) | ServeError::Conflict(_) => {
            ("invalid_request_error", None, Value::Null)
        }
        ServeError::Grammar(_) => (
            "invalid_request_error",
            Some("response_format".to_string()),
            Value::Null,
        ),
        ServeError::NotFound(_) => (
            "invalid_request_error",
            Some("model".to_string()),
            json!("model_not_found"),
        ),
        ServeError::AdapterNotFound(_) => (
            "invalid_request_error",
            Some("adapter".to_string()),
            json!("model_not_found"),
        ),
        ServeError::UnsupportedMediaType(_) => (
            "invalid_request_error",
            None,
            json!("unsupported_media_type"),
        ),
        ServeError::Unauthorized(_) => ("invalid_request_error", None, json!("invalid_api_key")),
        ServeError::Forbidden(_) => ("invalid_request_error", None, json!("forbidden")),
        ServeError::Timeout(_) => ("invalid_request_error", None, json!("request_timeout")),
        ServeError::Adapter { .. } => (
            "invalid_request_error",
            Some("path".to_string()),
            Value::Null,
        ),
        ServeError::Overloaded(_) | ServeError::Unavailable(_) => {
            ("server_error", None, json!("overloaded"))
        }
        _ => ("server_error", None, Value::Null),
    };
    json!({"error": {"message": err.to_string(), "type": ty, "param": param, "code": code}})
}

/// One token's log-probability entry of a chat response.
pub fn chat_logprob(token: &str, logprob: f32, top: &[(String, f32)]) -> Value {
    json!({
        "token": token,
        "logprob": logprob,
        "bytes": token.as_bytes(),
        "top_logprobs": top.iter().map(|(t, lp)| json!({
            "token": t, "logprob": lp, "bytes": t.as_bytes()
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_tokens_cap: 100,
            default_max_tokens: 50,
        }
    }

    fn chat(v: Value) -> Result<Request> {
        chat_request(v.as_object().unwrap(), &limits())
    }

    fn param(e: ServeError) -> String {
        match e {
            ServeError::BadRequest { param, .. } => param.unwrap_or_default(),
            other => panic!("not a bad request: {other}"),
        }
    }

    #[test]
    fn a_full_chat_request_is_read() {
        let r = chat(json!({
            "model": "m", "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Hi"}, {"type": "text", "text": "!"}]}],
            "max_tokens": 20, "temperature": 0, "top_p": 0.5, "seed": 3, "stop": ["\n\n"],
            "stream": true, "stream_options": {"include_usage": true},
            "logprobs": true, "top_logprobs": 2,
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
            "user": "client-7"
        }))
        .unwrap();
        assert_eq!(
            r.input,
            PromptInput::Chat(vec![
                ("system".into(), "Be brief.".into()),
                ("user".into(), "Hi!".into())
            ])
        );
        assert_eq!(
            (r.max_tokens, r.temperature, r.top_p, r.seed),
            (20, 0.0, 0.5, Some(3))
        );
        assert_eq!(r.stop, vec!["\n\n".to_string()]);
        assert!(r.stream && r.include_usage);
        assert_eq!(r.logprobs, Some(2));
        assert_eq!(
            r.response_format,
            ResponseFormat::JsonSchema(json!({"type": "object"}))
        );
        assert_eq!(r.user.as_deref(), Some("client-7"));
    }

    #[test]
    fn defaults_follow_openai() {
        let r =
            chat(json!({"model": "m", "messages": [{"role": "user", "content": "x"}]})).unwrap();
        assert_eq!((r.max_tokens, r.temperature, r.top_p), (50, 1.0, 1.0));
        assert!(!r.stream && r.logprobs.is_none() && r.stop.is_empty());
        let c = completion_request(
            json!({"model": "m", "prompt": "Once"}).as_object().unwrap(),
            &limits(),
        )
        .unwrap();
        assert_eq!(c.max_tokens, 16);
        assert_eq!(c.input, PromptInput::Text("Once".into()));
    }

    #[test]
    fn errors_name_the_field() {
        let m = |extra: Value| {
            let mut base = json!({"model": "m", "messages": [{"role": "user", "content": "x"}]});
            for (k, v) in extra.as_object().unwrap() {
                base[k] = v.clone();
            }
            param(chat(base).unwrap_err())
        };
        assert_eq!(m(json!({"max_tokens": 101})), "max_tokens");
        assert_eq!(m(json!({"max_tokens": 0})), "max_tokens");
        assert_eq!(m(json!({"max_tokens": "ten"})), "max_tokens");
        assert_eq!(m(json!({"temperature": 3})), "temperature");
        assert_eq!(m(json!({"top_p": 0})), "top_p");
        assert_eq!(m(json!({"n": 2})), "n");
        assert_eq!(m(json!({"stop": [1]})), "stop[0]");
        assert_eq!(m(json!({"stop": ["a", "b", "c", "d", "e"]})), "stop");
        assert_eq!(m(json!({"top_logprobs": 3})), "top_logprobs");
        assert_eq!(
            m(json!({"logprobs": true, "top_logprobs": 21})),
            "top_logprobs"
        );
        assert_eq!(m(json!({"messages": []})), "messages");
        assert_eq!(
            m(json!({"messages": [{"role": "robot", "content": "x"}]})),
            "messages[0].role"
        );
        assert_eq!(
            m(json!({"messages": [{"role": "user"}]})),
            "messages[0].content"
        );
        assert_eq!(
            m(json!({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})),
            "messages[0].content[0]"
        );
        assert_eq!(
            m(json!({"response_format": {"type": "xml"}})),
            "response_format.type"
        );
        assert_eq!(
            m(json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}})),
            "response_format.json_schema.schema"
        );
        assert_eq!(m(json!({"stream": "yes"})), "stream");
        assert_eq!(param(chat(json!({"messages": []})).unwrap_err()), "model");
    }

    #[test]
    fn bad_json_is_a_bad_request() {
        assert!(matches!(
            parse_body(b"{\"model\": "),
            Err(ServeError::BadRequest { param: None, .. })
        ));
        assert!(parse_body(b"[1]").is_err());
        let e = error_body(&ServeError::bad("max_tokens", "too many"));
        assert_eq!(e["error"]["param"], "max_tokens");
        assert_eq!(e["error"]["type"], "invalid_request_error");
        assert_eq!(e["error"]["message"], "too many");
    }
}
