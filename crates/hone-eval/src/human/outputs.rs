//! Reading the `outputs.jsonl` that `hone eval` writes.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Error, Result};

/// One line of `outputs.jsonl`: what one candidate answered on one example.
///
/// ```json
/// {"id": "ex-12", "input": "…", "reference": "…" | null, "candidate": "finetuned",
///  "output": "…", "parsed_ok": true}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputRecord {
    /// The example id; the same for every candidate on that example.
    pub id: String,
    /// The user prompt (a non-string input is kept as pretty-printed JSON).
    pub input: String,
    /// The gold answer, if any.
    pub reference: Option<String>,
    /// The candidate's name, as the user named it.
    pub candidate: String,
    /// The candidate's text; `None` when the line has no output (`null` or absent).
    pub output: Option<String>,
    /// Whether the output parsed as the task's answer format, when known.
    pub parsed_ok: Option<bool>,
    /// The 1-based line of the file this record came from.
    #[serde(skip)]
    pub line: usize,
}

/// Reads `outputs.jsonl`. Blank lines are skipped. A line that is not JSON is an
/// [`Error::Parse`]; a missing or mistyped field, or a second line for the same example and
/// candidate, is an [`Error::Field`] naming the line.
pub fn read_outputs(path: &Path) -> Result<Vec<OutputRecord>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let mut records: Vec<OutputRecord> = Vec::new();
    let mut seen = std::collections::HashMap::<(String, String), usize>::new();
    let mut inputs = std::collections::HashMap::<String, (String, usize)>::new();
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = i + 1;
        let text = std::str::from_utf8(raw).map_err(|e| Error::Parse {
            path: path.to_path_buf(),
            line,
            msg: format!("invalid UTF-8: {e}"),
        })?;
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(text).map_err(|e| Error::Parse {
            path: path.to_path_buf(),
            line,
            msg: format!("not a JSON object: {e}"),
        })?;
        let Value::Object(obj) = v else {
            return Err(Error::Parse {
                path: path.to_path_buf(),
                line,
                msg: "not a JSON object".into(),
            });
        };
        let field = |name: &str, msg: String| Error::Field {
            path: path.to_path_buf(),
            line,
            field: name.into(),
            msg,
        };
        let required_str = |name: &str| -> Result<String> {
            match obj.get(name) {
                Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
                Some(Value::String(_)) => Err(field(name, "is empty".into())),
                None | Some(Value::Null) => Err(field(name, "is missing".into())),
                Some(other) => Err(field(name, format!("must be a string, got {other}"))),
            }
        };
        let optional_str = |name: &str| -> Result<Option<String>> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(field(
                    name,
                    format!("must be a string or null, got {other}"),
                )),
            }
        };
        let id = required_str("id")?;
        let candidate = required_str("candidate")?;
        let input = match obj.get("input") {
            Some(Value::String(s)) => s.clone(),
            None | Some(Value::Null) => return Err(field("input", "is missing".into())),
            Some(other) => serde_json::to_string_pretty(other).unwrap_or_default(),
        };
        let reference = optional_str("reference")?;
        let output = optional_str("output")?;
        let parsed_ok = match obj.get("parsed_ok") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                return Err(field(
                    "parsed_ok",
                    format!("must be true, false or null, got {other}"),
                ))
            }
        };
        if let Some(first) = seen.insert((id.clone(), candidate.clone()), line) {
            return Err(field(
                "candidate",
                format!(
                    "a second output of `{candidate}` for example `{id}` (first on line {first})"
                ),
            ));
        }
        match inputs.get(&id) {
            Some((other, first)) if *other != input => {
                return Err(field(
                    "input",
                    format!("example `{id}` has a different input on line {first}"),
                ));
            }
            Some(_) => {}
            None => {
                inputs.insert(id.clone(), (input.clone(), line));
            }
        }
        records.push(OutputRecord {
            id,
            input,
            reference,
            candidate,
            output,
            parsed_ok,
            line,
        });
    }
    Ok(records)
}
