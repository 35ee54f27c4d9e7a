//! The record type: a conversation (system / user / assistant messages) with optional `id`,
//! `group` (e.g. the source document) and `label`. Two JSON shapes are read:
//!
//! - chat: `{"messages": [{"role": "user", "content": ".."}, {"role": "assistant", ..}]}`
//! - instruction: `{"instruction": "..", "input": "..", "output": ".."}` (and an optional
//!   `system`), which becomes one user message `instruction + "\n\n" + input` (just
//!   `instruction` when `input` is empty) and the assistant's `output`.
//!
//! Examples are always written in the chat shape.

use hone_model::chat_template::Message;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Roles a message may have.
pub const ROLES: &[&str] = &["system", "user", "assistant"];

/// One training example.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct Example {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub messages: Vec<Message>,
}

/// One thing wrong with a record. `field` is `None` when the line is not a record at all
/// (invalid UTF-8, bad JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub field: Option<String>,
    pub message: String,
}

impl Problem {
    pub fn line(message: impl Into<String>) -> Self {
        Self {
            field: None,
            message: message.into(),
        }
    }
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.field {
            Some(field) => write!(f, "field `{field}`: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// "a string", "a number", ... for messages about wrong types.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong_type(field: &str, expected: &str, v: &Value) -> Problem {
    Problem::field(
        field,
        format!("expected {expected}, found {}", type_name(v)),
    )
}

impl Example {
    /// The instruction shape: `instruction + "\n\n" + input` as the user turn (just the
    /// instruction when `input` is empty), `output` as the assistant turn.
    pub fn from_instruction(instruction: &str, input: &str, output: &str) -> Self {
        let user = if input.is_empty() {
            instruction.to_string()
        } else {
            format!("{instruction}\n\n{input}")
        };
        Self {
            messages: vec![Message::user(user), Message::assistant(output)],
            ..Default::default()
        }
    }

    /// Reads a record in either shape, reporting every problem found (not just the first).
    pub fn from_value(v: &Value) -> Result<Self, Vec<Problem>> {
        let Some(obj) = v.as_object() else {
            return Err(vec![Problem::line(format!(
                "expected a JSON object, found {}",
                type_name(v)
            ))]);
        };
        let mut problems = Vec::new();
        let id = opt_scalar(obj, "id", &mut problems);
        let group = opt_scalar(obj, "group", &mut problems);
        let label = opt_scalar(obj, "label", &mut problems);
        let messages = if let Some(m) = obj.get("messages") {
            if obj.contains_key("instruction") || obj.contains_key("output") {
                problems.push(Problem::field(
                    "messages",
                    "both `messages` and `instruction`/`output` given; use one format",
                ));
            }
            chat_messages(m, &mut problems)
        } else if obj.contains_key("instruction")
            || obj.contains_key("output")
            || obj.contains_key("input")
        {
            instruction_messages(obj, &mut problems)
        } else {
            problems.push(Problem::field(
                "messages",
                "missing: expected `messages` (chat format) or `instruction` and `output` \
                 (instruction format)",
            ));
            Vec::new()
        };
        if problems.is_empty() {
            Ok(Self {
                id,
                group,
                label,
                messages,
            })
        } else {
            Err(problems)
        }
    }

    /// The chat-shape JSON object.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an example serializes")
    }

    /// Index of the last assistant message (the answer being trained).
    fn last_assistant(&self) -> Option<usize> {
        self.messages.iter().rposition(|m| m.role == "assistant")
    }

    /// The prompt side for similarity checks: user and earlier assistant turns (system
    /// messages, usually shared by every example, are left out), joined by newlines.
    pub fn input_text(&self) -> String {
        let end = self.last_assistant().unwrap_or(self.messages.len());
        let parts: Vec<&str> = self.messages[..end]
            .iter()
            .filter(|m| m.role != "system")
            .map(|m| m.content.as_str())
            .collect();
        parts.join("\n")
    }

    /// The final assistant answer ("" if there is none).
    pub fn output_text(&self) -> &str {
        self.last_assistant()
            .map(|i| self.messages[i].content.as_str())
            .unwrap_or("")
    }
}

fn opt_scalar(obj: &Map<String, Value>, key: &str, problems: &mut Vec<Problem>) -> Option<String> {
    match obj.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::Bool(b)) if key == "label" => Some(b.to_string()),
        Some(v) => {
            problems.push(wrong_type(key, "a string or a number", v));
            None
        }
    }
}

fn chat_messages(v: &Value, problems: &mut Vec<Problem>) -> Vec<Message> {
    let Some(items) = v.as_array() else {
        problems.push(wrong_type("messages", "an array", v));
        return Vec::new();
    };
    if items.is_empty() {
        problems.push(Problem::field("messages", "empty: no messages"));
        return Vec::new();
    }
    let mut out = Vec::with_capacity(items.len());
    let mut order_ok = true;
    for (i, item) in items.iter().enumerate() {
        let at = format!("messages[{i}]");
        let Some(m) = item.as_object() else {
            problems.push(wrong_type(&at, "an object with `role` and `content`", item));
            order_ok = false;
            continue;
        };
        let role = match m.get("role") {
            None => {
                problems.push(Problem::field(format!("{at}.role"), "missing"));
                None
            }
            Some(Value::String(r)) if ROLES.contains(&r.as_str()) => Some(r.clone()),
            Some(Value::String(r)) => {
                problems.push(Problem::field(
                    format!("{at}.role"),
                    format!("unknown role `{r}` (expected system, user or assistant)"),
                ));
                None
            }
            Some(other) => {
                problems.push(wrong_type(&format!("{at}.role"), "a string", other));
                None
            }
        };
        let content = match m.get("content") {
            None => {
                problems.push(Problem::field(format!("{at}.content"), "missing"));
                None
            }
            Some(Value::String(c)) if c.trim().is_empty() => {
                problems.push(Problem::field(format!("{at}.content"), "empty"));
                None
            }
            Some(Value::String(c)) => Some(c.clone()),
            Some(other) => {
                problems.push(wrong_type(&format!("{at}.content"), "a string", other));
                None
            }
        };
        match (role, content) {
            (Some(r), Some(c)) => out.push(Message::new(r, c)),
            _ => order_ok = false,
        }
    }
    if order_ok {
        check_order(&out, problems);
    }
    out
}

/// System (optional, first only), then user / assistant alternating, ending with assistant.
fn check_order(messages: &[Message], problems: &mut Vec<Problem>) {
    let mut expect = "user";
    let mut seen_turn = false;
    for (i, m) in messages.iter().enumerate() {
        let role = m.role.as_str();
        if role == "system" {
            if i != 0 {
                problems.push(Problem::field(
                    format!("messages[{i}].role"),
                    "bad role order: a system message may only come first",
                ));
                return;
            }
            continue;
        }
        if role != expect {
            problems.push(Problem::field(
                format!("messages[{i}].role"),
                format!(
                    "bad role order: `{role}` {}, expected `{expect}`",
                    if seen_turn {
                        "after the previous turn"
                    } else {
                        "first"
                    }
                ),
            ));
            return;
        }
        seen_turn = true;
        expect = if role == "user" { "assistant" } else { "user" };
    }
    if !seen_turn {
        problems.push(Problem::field(
            "messages",
            "no user or assistant message (only a system message)",
        ));
    } else if expect == "assistant" {
        problems.push(Problem::field(
            format!("messages[{}].role", messages.len() - 1),
            "bad role order: the conversation must end with an assistant message",
        ));
    }
}

fn instruction_messages(obj: &Map<String, Value>, problems: &mut Vec<Problem>) -> Vec<Message> {
    let mut text = |key: &str, required: bool| -> Option<String> {
        match obj.get(key) {
            None | Some(Value::Null) if required => {
                problems.push(Problem::field(key, "missing"));
                None
            }
            None | Some(Value::Null) => Some(String::new()),
            Some(Value::String(s)) if required && s.trim().is_empty() => {
                problems.push(Problem::field(key, "empty"));
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => {
                problems.push(wrong_type(key, "a string", v));
                None
            }
        }
    };
    let system = text("system", false);
    let instruction = text("instruction", true);
    let input = text("input", false);
    let output = text("output", true);
    match (system, instruction, input, output) {
        (Some(system), Some(instruction), Some(input), Some(output)) => {
            let mut ex = Example::from_instruction(&instruction, &input, &output);
            if !system.trim().is_empty() {
                ex.messages.insert(0, Message::system(system));
            }
            ex.messages
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn problems(v: Value) -> Vec<String> {
        Example::from_value(&v)
            .unwrap_err()
            .iter()
            .map(|p| p.to_string())
            .collect()
    }

    #[test]
    fn instruction_shape_becomes_one_user_turn() {
        let ex = Example::from_value(
            &json!({"instruction": "Sum", "input": "1 2", "output": "3", "label": 7}),
        )
        .unwrap();
        assert_eq!(
            ex.messages,
            vec![Message::user("Sum\n\n1 2"), Message::assistant("3")]
        );
        assert_eq!(ex.label.as_deref(), Some("7"));
        let ex = Example::from_value(&json!({"instruction": "Hi", "input": "", "output": "Hello"}))
            .unwrap();
        assert_eq!(ex.messages[0].content, "Hi");
        let ex = Example::from_value(
            &json!({"system": "Be brief.", "instruction": "Hi", "output": "Hello"}),
        )
        .unwrap();
        assert_eq!(ex.messages[0], Message::system("Be brief."));
        assert_eq!(ex.messages.len(), 3);
    }

    #[test]
    fn chat_shape_round_trips_with_optional_fields() {
        let ex = Example {
            id: Some("a1".into()),
            group: Some("doc-3".into()),
            label: Some("yes".into()),
            messages: vec![
                Message::system("s"),
                Message::user("u"),
                Message::assistant("a"),
            ],
        };
        let back = Example::from_value(&serde_json::from_str(&ex.to_json()).unwrap()).unwrap();
        assert_eq!(back, ex);
        assert_eq!(back.input_text(), "u");
        assert_eq!(back.output_text(), "a");
    }

    #[test]
    fn every_problem_is_named_with_its_field() {
        assert_eq!(
            problems(json!([1])),
            ["expected a JSON object, found an array"]
        );
        assert_eq!(
            problems(json!({"messages": [{"role": "bot", "content": "x"}]})),
            ["field `messages[0].role`: unknown role `bot` (expected system, user or assistant)"]
        );
        assert_eq!(
            problems(json!({"messages": [{"role": "user", "content": 3}, {"role": "assistant"}]})),
            [
                "field `messages[0].content`: expected a string, found a number",
                "field `messages[1].content`: missing"
            ]
        );
        assert_eq!(
            problems(
                json!({"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "u"}]})
            ),
            ["field `messages[0].role`: bad role order: `assistant` first, expected `user`"]
        );
        assert_eq!(
            problems(json!({"messages": [{"role": "user", "content": "u"}]})),
            ["field `messages[0].role`: bad role order: the conversation must end with an assistant message"]
        );
        assert_eq!(
            problems(
                json!({"messages": [{"role": "user", "content": "u"}, {"role": "system", "content": "s"}]})
            ),
            ["field `messages[1].role`: bad role order: a system message may only come first"]
        );
        assert_eq!(
            problems(json!({"messages": []})),
            ["field `messages`: empty: no messages"]
        );
        assert_eq!(
            problems(json!({"instruction": " ", "output": "x", "id": [1]})),
            [
                "field `id`: expected a string or a number, found an array",
                "field `instruction`: empty"
            ]
        );
        assert_eq!(
            problems(json!({"instruction": "x"})),
            ["field `output`: missing"]
        );
        assert!(problems(json!({"text": "x"}))[0].starts_with("field `messages`: missing"));
    }
}
