//! Pulling labels out of model outputs.
//!
//! Accepted shapes, tried in order:
//! 1. a JSON object (alone, in a fenced code block, or the first one in surrounding prose) with
//!    a `label` key (`labels` for [`parse_labels`]); the key is matched case-insensitively;
//! 2. a bare label, optionally quoted, with trailing `.` allowed (`Entailment`, `"entailment".`),
//!    or for [`parse_labels`] a JSON array or a comma- or newline-separated list.
//!
//! Labels match case-insensitively and the allowed spelling is returned. Anything else is
//! unparseable and gives `None`; nothing is guessed from free text.

use serde_json::Value;

/// How many `{` / `[` positions are tried when looking for JSON inside prose.
const MAX_JSON_STARTS: usize = 16;

fn strip_fence(s: &str) -> &str {
    let t = s.trim();
    let Some(rest) = t.strip_prefix("```") else {
        return t;
    };
    // Drop the info string (```json) up to the end of the first line.
    let body = rest.split_once('\n').map_or("", |(_, b)| b);
    body.trim_end().strip_suffix("```").unwrap_or(body).trim()
}

/// The first JSON value in a model output: the whole (unfenced) text, or else the first object or
/// array that parses starting at one of the first `{` / `[` characters.
pub(crate) fn json_value(output: &str) -> Option<Value> {
    let t = strip_fence(output);
    if let Ok(v) = serde_json::from_str::<Value>(t) {
        return Some(v);
    }
    t.char_indices()
        .filter(|(_, c)| *c == '{' || *c == '[')
        .take(MAX_JSON_STARTS)
        .find_map(|(i, _)| {
            serde_json::Deserializer::from_str(&t[i..])
                .into_iter::<Value>()
                .next()
                .and_then(|r| r.ok())
        })
}

fn match_label(s: &str, labels: &[String]) -> Option<String> {
    let s = s.trim();
    labels
        .iter()
        .find(|l| l.as_str() == s)
        .or_else(|| {
            let lower = s.to_lowercase();
            labels.iter().find(|l| l.to_lowercase() == lower)
        })
        .cloned()
}

fn bare(s: &str) -> &str {
    let s = s.trim();
    let s = s.strip_suffix('.').unwrap_or(s).trim();
    for q in ['"', '\'', '`'] {
        if let Some(inner) = s.strip_prefix(q).and_then(|r| r.strip_suffix(q)) {
            return inner.trim();
        }
    }
    s
}

fn key_ci<'a>(map: &'a serde_json::Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).or_else(|| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// The label in a model output, spelled as in `labels`, or `None` when it cannot be parsed
/// (see the module documentation).
pub fn parse_label(output: &str, labels: &[String]) -> Option<String> {
    match json_value(output) {
        Some(Value::Object(map)) => match key_ci(&map, "label")? {
            Value::String(s) => match_label(s, labels),
            _ => None,
        },
        _ => match_label(bare(strip_fence(output)), labels),
    }
}

fn labels_from_array(items: &[Value], labels: &[String]) -> Option<Vec<String>> {
    items
        .iter()
        .map(|v| v.as_str().and_then(|s| match_label(s, labels)))
        .collect()
}

/// The label set in a model output, spelled as in `labels`: `{"labels": [...]}`, a JSON array,
/// or a comma- or newline-separated list of bare labels. `None` when the output is empty or any
/// item is not an allowed label.
pub fn parse_labels(output: &str, labels: &[String]) -> Option<Vec<String>> {
    match json_value(output) {
        Some(Value::Object(map)) => match key_ci(&map, "labels")? {
            Value::Array(items) => labels_from_array(items, labels),
            _ => None,
        },
        Some(Value::Array(items)) => labels_from_array(&items, labels),
        _ => {
            let t = strip_fence(output);
            if t.is_empty() {
                return None;
            }
            t.split([',', '\n'])
                .map(|part| match_label(bare(part), labels))
                .collect()
        }
    }
}
