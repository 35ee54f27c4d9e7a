//! The request log: every generation request a server answered (input, output, model, version,
//! latency, tokens, mean token log-probability, caller), kept in the registry's store for
//! review sampling, corrections and drift. The server writes it off the request path (see
//! `hone_serve::request_log`); here are the record, the redaction applied before anything is
//! written, and the query `hone log export` runs.

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One logged request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogRecord {
    /// Assigned by the store (0 before).
    #[serde(default)]
    pub id: i64,
    /// Unix milliseconds when the request arrived.
    pub time_ms: i64,
    /// The `model` the client asked for.
    pub model: String,
    /// The registered version that answered (`nda@2`), when one did.
    pub version: Option<String>,
    /// `chat_completions` or `completions`.
    pub endpoint: String,
    /// HTTP status (200, or 500 for a failure after the request was accepted).
    pub status: u16,
    /// The caller's tag: the OpenAI `user` field.
    pub caller: Option<String>,
    /// The request's messages (chat) or prompt (completions), as JSON.
    pub input: serde_json::Value,
    pub output: String,
    pub finish: Option<String>,
    pub latency_ms: f64,
    pub prompt_tokens: u64,
    pub output_tokens: u64,
    pub mean_logprob: Option<f64>,
}

/// Which rows `requests` returns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LogQuery {
    /// Rows at or after this time (Unix ms).
    pub since_ms: i64,
    /// Rows before this time.
    pub until_ms: Option<i64>,
    /// Only this requested model name.
    pub model: Option<String>,
    /// Rows with a larger id (paging).
    pub after_id: i64,
    pub limit: usize,
}

/// Named patterns `--log-redact` accepts besides a regular expression.
pub const PRESETS: &[(&str, &str)] = &[
    ("email", r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"),
    // international or local numbers of 7+ digits with the usual separators
    ("phone", r"\+?\d[\d\s().-]{5,}\d"),
];

/// The replacement of a redacted match.
pub const REDACTED: &str = "[redacted]";

/// Redaction rules, applied to the input, output and caller of a record before it is written.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    rules: Vec<Regex>,
}

impl Redactor {
    /// Rules from `--log-redact` values: a preset name (`email`, `phone`) or a regular
    /// expression. A bad expression is an error naming it.
    pub fn new(specs: &[String]) -> Result<Self> {
        let mut rules = Vec::new();
        for s in specs {
            let pattern = PRESETS
                .iter()
                .find(|(n, _)| n == s)
                .map(|(_, p)| *p)
                .unwrap_or(s);
            rules.push(Regex::new(pattern).map_err(|e| {
                Error::invalid(format!("--log-redact `{s}`: not a regular expression: {e}"))
            })?);
        }
        Ok(Self { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn text(&self, s: &str) -> String {
        let mut out = std::borrow::Cow::Borrowed(s);
        for r in &self.rules {
            if r.is_match(&out) {
                out = std::borrow::Cow::Owned(r.replace_all(&out, REDACTED).into_owned());
            }
        }
        out.into_owned()
    }

    fn value(&self, v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => *s = self.text(s),
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| self.value(x)),
            serde_json::Value::Object(m) => m.values_mut().for_each(|x| self.value(x)),
            _ => {}
        }
    }

    /// Redacts every text of a record (input strings, output, caller).
    pub fn record(&self, r: &mut LogRecord) {
        if self.rules.is_empty() {
            return;
        }
        self.value(&mut r.input);
        r.output = self.text(&r.output);
        if let Some(c) = &mut r.caller {
            *c = self.text(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn presets_and_patterns_redact_everywhere() {
        let r = Redactor::new(&["email".into(), "phone".into(), r"ACCT-\d+".into()]).unwrap();
        let mut rec = LogRecord {
            id: 0,
            time_ms: 1,
            model: "nda".into(),
            version: None,
            endpoint: "chat_completions".into(),
            status: 200,
            caller: Some("jane.doe@example.com".into()),
            input: json!([{"role": "user", "content": "Mail jane@firm.co.uk or call +44 20 7946 0958 about ACCT-991."}]),
            output: "Reply to bob@x.org, (555) 123-4567.".into(),
            finish: None,
            latency_ms: 1.0,
            prompt_tokens: 1,
            output_tokens: 1,
            mean_logprob: None,
        };
        r.record(&mut rec);
        let all = format!("{} {} {}", rec.input, rec.output, rec.caller.unwrap());
        for leak in ["@firm", "7946", "ACCT-991", "bob@", "123-4567", "jane.doe"] {
            assert!(!all.contains(leak), "{leak} leaked: {all}");
        }
        assert_eq!(all.matches(REDACTED).count(), 6, "{all}");
        // text without matches is kept as it is
        assert_eq!(r.text("Clause 4.2 survives."), "Clause 4.2 survives.");
        let e = Redactor::new(&["(unclosed".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--log-redact") && e.contains("(unclosed"), "{e}");
    }
}
