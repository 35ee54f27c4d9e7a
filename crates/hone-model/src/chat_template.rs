//! Chat templates: the model's own Jinja template (from GGUF metadata or `tokenizer_config.json`)
//! rendered with minijinja the way Hugging Face `apply_chat_template` renders it, shared by
//! training (with assistant spans for loss masking) and serving (prompt + stop strings).
//!
//! Compatibility with HF: `trim_blocks` and `lstrip_blocks` on, Python string/dict methods via
//! `minijinja_contrib::pycompat`, `{% break %}` / `{% continue %}`, `raise_exception(msg)`,
//! `strftime_now(fmt)`, a `tojson` filter formatting like Python's `json.dumps`
//! (`indent`, `sort_keys`), and the variables `messages`, `add_generation_prompt`, `bos_token`,
//! `eos_token`, with `tools` and `documents` set to none.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use candle_core::quantized::gguf_file;
use minijinja::value::{Kwargs, Value};
use minijinja::{Environment, ErrorKind};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;

/// One chat message.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// The template used when a model ships none: plain ChatML, no default system prompt.
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// Gemma's turn format (`<start_of_turn>user` / `model`, `<end_of_turn>`), the system
/// message folded into the first user turn: the default for a Gemma GGUF without a template.
/// Written for hone from the turn format Gemma's model card documents, not copied from
/// Google's template files, so it carries no terms of its own.
const GEMMA_TURNS: &str = "{{ bos_token }}\
{%- set ns = namespace(system='') -%}\
{%- for message in messages -%}\
{%- if message['role'] == 'system' -%}{%- set ns.system = message['content'] + '\\n\\n' -%}\
{%- else -%}\
{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}\
{{ '<start_of_turn>' + role + '\\n' + (ns.system if role == 'user' else '') + message['content'] | trim + '<end_of_turn>\\n' }}\
{%- if role == 'user' -%}{%- set ns.system = '' -%}{%- endif -%}\
{%- endif -%}\
{%- endfor -%}\
{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}";

/// End-of-turn markers recognised in a template's source (as stop strings) and after assistant
/// content (as the end of an assistant span when the template does not reveal its own).
const KNOWN_END_MARKERS: &[&str] = &[
    "<|im_end|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|end|>",
    "<end_of_turn>",
    "</s>",
    "<|endoftext|>",
    "<|end_of_text|>",
    "<|END_OF_TURN_TOKEN|>",
];

const TEMPLATE_NAME: &str = "chat_template";

/// A compiled chat template.
#[derive(Clone)]
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    bos_token: String,
    eos_token: String,
    stop_strings: Vec<String>,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("source", &self.source)
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .field("stop_strings", &self.stop_strings)
            .finish()
    }
}

fn template_err(e: minijinja::Error) -> Error {
    // Display carries the kind, the message and "(in chat_template:LINE)".
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    Error::Template(msg)
}

impl ChatTemplate {
    /// Compiles `source` (a Jinja chat template). A syntax error is an [`Error::Template`] with
    /// minijinja's message and line.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(false);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_template_owned(TEMPLATE_NAME, source.to_string())
            .map_err(template_err)?;
        let mut t = Self {
            env,
            source: source.to_string(),
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
            stop_strings: Vec::new(),
        };
        t.stop_strings = t.compute_stop_strings();
        Ok(t)
    }

    /// The default ChatML template.
    pub fn chatml(bos_token: &str, eos_token: &str) -> Self {
        Self::new(CHATML_TEMPLATE, bos_token, eos_token).expect("the ChatML template compiles")
    }

    /// From GGUF metadata (`tokenizer.chat_template`); ChatML if the model has none. BOS / EOS
    /// strings come from the tokenizer.
    pub fn from_gguf_metadata(
        md: &HashMap<String, gguf_file::Value>,
        tokenizer: &Tokenizer,
    ) -> Result<Self> {
        let bos = tokenizer
            .bos_id()
            .and_then(|id| tokenizer.id_to_token(id))
            .unwrap_or_default();
        let eos = tokenizer
            .eos_id()
            .and_then(|id| tokenizer.id_to_token(id))
            .unwrap_or_default();
        match md
            .get("tokenizer.chat_template")
            .and_then(|v| v.to_string().ok())
        {
            Some(src) if !src.trim().is_empty() => Self::new(src, &bos, &eos),
            // Gemma's pretrained files carry no template: its turn format, which the
            // instruction-tuned Gemma models use.
            _ if tokenizer.token_id("<start_of_turn>").is_some() => {
                Self::new(GEMMA_TURNS, &bos, &eos)
            }
            _ => Ok(Self::chatml(&bos, &eos)),
        }
    }

    /// From a Hugging Face `tokenizer_config.json` (or the folder holding it): its
    /// `chat_template` field, a string or a list of `{name, template}` (the one named
    /// `default`, else the first). Without that field, `chat_template.jinja` or
    /// `chat_template.json` beside it; else ChatML. `bos_token` / `eos_token` come from the
    /// config (a string or an `{content: ..}` object).
    pub fn from_tokenizer_config(path: &Path) -> Result<Self> {
        let path = if path.is_dir() {
            path.join("tokenizer_config.json")
        } else {
            path.to_path_buf()
        };
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let config: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::Template(format!("{}: {e}", path.display())))?;
        let token = |key: &str| -> String {
            match config.get(key) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Object(o)) => o
                    .get("content")
                    .and_then(|c| c.as_str())
                    .unwrap_or_default()
                    .to_string(),
                _ => String::new(),
            }
        };
        let (bos, eos) = (token("bos_token"), token("eos_token"));
        let source = match config.get("chat_template") {
            Some(v) => Some(template_from_json(v).ok_or_else(|| {
                Error::Template(format!(
                    "{}: `chat_template` is neither a string nor a list of {{name, template}}",
                    path.display()
                ))
            })?),
            None => {
                let dir = path.parent().unwrap_or(Path::new("."));
                let jinja = dir.join("chat_template.jinja");
                let json = dir.join("chat_template.json");
                if jinja.is_file() {
                    Some(std::fs::read_to_string(&jinja).map_err(|e| Error::io(&jinja, e))?)
                } else if json.is_file() {
                    let t = std::fs::read_to_string(&json).map_err(|e| Error::io(&json, e))?;
                    let v: serde_json::Value = serde_json::from_str(&t)
                        .map_err(|e| Error::Template(format!("{}: {e}", json.display())))?;
                    v.get("chat_template").and_then(template_from_json)
                } else {
                    None
                }
            }
        };
        match source {
            Some(src) => Self::new(&src, &bos, &eos),
            None => Ok(Self::chatml(&bos, &eos)),
        }
    }

    /// The template source.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }

    pub fn eos_token(&self) -> &str {
        &self.eos_token
    }

    fn render_values(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        self.render_context(messages, Value::from(()), add_generation_prompt)
    }

    fn render_context(
        &self,
        messages: &[Message],
        tools: Value,
        add_generation_prompt: bool,
    ) -> Result<String> {
        let tmpl = self.env.get_template(TEMPLATE_NAME).map_err(template_err)?;
        tmpl.render(minijinja::context! {
            messages => Value::from_serialize(messages),
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token.as_str(),
            eos_token => self.eos_token.as_str(),
            tools => tools,
            documents => Value::from(()),
        })
        .map_err(template_err)
    }

    /// Renders a conversation with tool definitions (`tools_json`: a JSON list of OpenAI-style
    /// function tools), as `apply_chat_template(messages, tools=...)` does. Keys keep the
    /// order of the JSON text, as Python's `json.dumps` in the template's `tojson` would.
    pub fn render_with_tools(
        &self,
        messages: &[Message],
        tools_json: &str,
        add_generation_prompt: bool,
    ) -> Result<String> {
        let tools: Value = serde_json::from_str(tools_json)
            .map_err(|e| Error::Template(format!("tools: not valid JSON: {e}")))?;
        if tools.kind() != minijinja::value::ValueKind::Seq {
            return Err(Error::Template("tools: expected a JSON list".into()));
        }
        self.render_context(messages, tools, add_generation_prompt)
    }

    /// Renders a conversation; with `add_generation_prompt` the text ends where the model's
    /// answer starts (e.g. `<|im_start|>assistant\n`).
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        self.render_values(messages, add_generation_prompt)
    }

    /// Renders a conversation for training (no generation prompt) and returns, for each
    /// assistant message in order, the byte range in the text covering its content as the
    /// template emits it **and** the end-of-turn marker that follows it (e.g. `<|im_end|>`,
    /// `<|eot_id|>`, `</s>`), but not the whitespace after the marker nor the next turn's
    /// header. Training masks the loss to the tokens inside these ranges.
    ///
    /// How the ranges are found, for any template:
    /// 1. The conversation is rendered as is (the returned text), and again with every
    ///    assistant content replaced by a unique sentinel. The text around the sentinels is
    ///    the template's own structure (headers, other messages), which must appear unchanged
    ///    in the real rendering; the assistant content (verbatim, or trimmed if the template
    ///    trims) sits between those pieces.
    /// 2. The end-of-turn marker of assistant message *i* is what the template emits after its
    ///    content when the conversation ends there (render of messages `..=i`), up to the
    ///    first whitespace after it (Phi-3 ends a conversation with `<|end|>\n<|endoftext|>`:
    ///    the marker is `<|end|>`), and as far as it agrees with the full rendering. If that yields
    ///    nothing, a known marker (`<|im_end|>`, `<|eot_id|>`, `</s>`, ..., the EOS token) that
    ///    follows the content is used.
    ///
    /// Errors if the template does not emit assistant contents (or changes its structure with
    /// them), so that no silently wrong mask is produced.
    pub fn render_with_spans(&self, messages: &[Message]) -> Result<(String, Vec<Range<usize>>)> {
        let full = self.render_values(messages, false)?;
        let assistant: Vec<usize> = messages
            .iter()
            .enumerate()
            .filter(|(_, m)| m.role == "assistant")
            .map(|(i, _)| i)
            .collect();
        if assistant.is_empty() {
            return Ok((full, Vec::new()));
        }
        // A sentinel that cannot occur in the conversation or the template.
        let mut tag = String::from("HONE7SPAN");
        while self.source.contains(&tag) || messages.iter().any(|m| m.content.contains(&tag)) {
            tag.push('X');
        }
        let sentinel = |k: usize| format!("{tag}{k}Q");
        let mut sent_msgs = messages.to_vec();
        for (k, &i) in assistant.iter().enumerate() {
            sent_msgs[i].content = sentinel(k);
        }
        let sent = self.render_values(&sent_msgs, false)?;

        // Split the sentinel rendering into the structure segments g_0 .. g_n.
        let mut segments: Vec<&str> = Vec::with_capacity(assistant.len() + 1);
        let mut pos = 0;
        for (k, &msg_index) in assistant.iter().enumerate() {
            let s = sentinel(k);
            let at = sent[pos..].find(&s).map(|p| p + pos).ok_or_else(|| {
                Error::Template(format!(
                    "cannot locate assistant message {} in the rendered conversation (the \
                         template does not emit assistant contents as given)",
                    msg_index
                ))
            })?;
            segments.push(&sent[pos..at]);
            pos = at + s.len();
        }
        segments.push(&sent[pos..]);

        let mut spans = Vec::with_capacity(assistant.len());
        let mut fpos = 0;
        for (k, &i) in assistant.iter().enumerate() {
            let seg = segments[k];
            let next = segments[k + 1];
            let last = k + 1 == assistant.len();
            if !full[fpos..].starts_with(seg) {
                return Err(Error::Template(format!(
                    "the template renders the conversation differently depending on assistant \
                     contents; cannot locate assistant message {i}"
                )));
            }
            fpos += seg.len();
            let start = fpos;
            let rest = &full[start..];
            let content = messages[i].content.as_str();
            let follows = |len: usize| -> bool {
                rest.is_char_boundary(len)
                    && if last {
                        &rest[len..] == next
                    } else {
                        rest[len..].starts_with(next)
                    }
            };
            let candidates = [
                content,
                content.trim(),
                content.trim_end(),
                content.trim_start(),
            ];
            let len = candidates
                .iter()
                .find(|c| rest.starts_with(**c) && follows(c.len()))
                .map(|c| c.len())
                .or_else(|| {
                    if last {
                        rest.len().checked_sub(next.len()).filter(|&l| follows(l))
                    } else if !next.is_empty() {
                        rest.find(next)
                    } else {
                        None
                    }
                })
                .ok_or_else(|| {
                    Error::Template(format!(
                        "cannot find where assistant message {i} ends in the rendered text"
                    ))
                })?;
            let end = start + len;
            let marker = self.end_marker(&sent_msgs[..=i], &sentinel(k), next);
            spans.push(start..end + marker);
            fpos = end;
        }
        Ok((full, spans))
    }

    /// Length of the end-of-turn marker at the start of `next` (the template text after an
    /// assistant sentinel).
    fn end_marker(&self, prefix_msgs: &[Message], sentinel: &str, next: &str) -> usize {
        let from_prefix = self
            .render_values(prefix_msgs, false)
            .ok()
            .and_then(|h| {
                h.rfind(sentinel)
                    .map(|p| h[p + sentinel.len()..].to_string())
            })
            .map(|tail| {
                // The marker is one word (`<|end|>`), possibly after a space: what a template
                // emits after it when the conversation ends there (Phi-3's `\n<|endoftext|>`)
                // belongs to no turn.
                let lead = tail.len() - tail.trim_start().len();
                let word = tail[lead..]
                    .find(char::is_whitespace)
                    .map_or(tail.len(), |p| lead + p);
                let tail = &tail[..word];
                let common = tail
                    .char_indices()
                    .zip(next.chars())
                    .find(|((_, a), b)| a != b)
                    .map(|((p, _), _)| p)
                    .unwrap_or_else(|| tail.len().min(next.len()));
                // Do not end the marker inside trailing whitespace of a partial match.
                next[..common].trim_end().len()
            })
            .unwrap_or(0);
        if from_prefix > 0 {
            return from_prefix;
        }
        self.known_markers()
            .iter()
            .filter(|m| next.starts_with(m.as_str()))
            .map(|m| m.len())
            .max()
            .unwrap_or(0)
    }

    fn known_markers(&self) -> Vec<String> {
        let mut v: Vec<String> = KNOWN_END_MARKERS.iter().map(|s| s.to_string()).collect();
        if !self.eos_token.is_empty() {
            v.push(self.eos_token.clone());
        }
        v
    }

    /// Strings that end an assistant turn: the marker the template emits after an assistant
    /// message, known end markers its source mentions (`<|im_end|>`, `<|eot_id|>`, `</s>`,
    /// `<|end|>`, ...), and the EOS token.
    pub fn stop_strings(&self) -> Vec<String> {
        self.stop_strings.clone()
    }

    /// The stop strings that are single tokens of `tokenizer`, plus its EOS id; sorted, unique.
    pub fn stop_token_ids(&self, tokenizer: &Tokenizer) -> Vec<u32> {
        let mut ids: Vec<u32> = self
            .stop_strings
            .iter()
            .filter_map(|s| tokenizer.token_id(s))
            .chain(tokenizer.eos_id())
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    fn compute_stop_strings(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut push = |s: &str| {
            let s = s.trim();
            if !s.is_empty() && !out.iter().any(|o| o == s) {
                out.push(s.to_string());
            }
        };
        // What the template emits after an assistant message (probe conversations).
        let tag = "HONE7STOPPROBE";
        let probes = [
            vec![Message::user("Hi"), Message::assistant(tag)],
            vec![
                Message::system("S"),
                Message::user("Hi"),
                Message::assistant(tag),
            ],
        ];
        for probe in &probes {
            if let Ok(text) = self.render_values(probe, false) {
                if let Some(p) = text.rfind(tag) {
                    let tail = text[p + tag.len()..].trim();
                    // Keep a marker only up to the first whitespace (e.g. "<|im_end|>").
                    let marker = tail.split_whitespace().next().unwrap_or("");
                    push(marker);
                    break;
                }
            }
        }
        for m in KNOWN_END_MARKERS {
            if self.source.contains(m) {
                push(m);
            }
        }
        if !self.eos_token.is_empty() {
            push(&self.eos_token.clone());
        }
        out
    }
}

fn template_from_json(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(list) => {
            let named = |name: &str| {
                list.iter().find_map(|e| {
                    (e.get("name")?.as_str()? == name)
                        .then(|| e.get("template")?.as_str().map(String::from))
                        .flatten()
                })
            };
            named("default").or_else(|| {
                list.first()
                    .and_then(|e| e.get("template")?.as_str().map(String::from))
            })
        }
        _ => None,
    }
}

fn raise_exception(msg: String) -> std::result::Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
}

/// Python `json.dumps(value, ensure_ascii=False, indent=indent, sort_keys=sort_keys)`, as HF's
/// `tojson` filter.
fn tojson(value: &Value, kwargs: Kwargs) -> std::result::Result<Value, minijinja::Error> {
    let indent: Option<Value> = kwargs.get("indent")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let _: Option<Value> = kwargs.get("ensure_ascii")?;
    let _: Option<Value> = kwargs.get("separators")?;
    kwargs.assert_all_used()?;
    let sorted = if sort_keys.unwrap_or(false) {
        let json = serde_json::to_value(value)
            .map_err(|e| minijinja::Error::new(ErrorKind::BadSerialization, e.to_string()))?;
        Some(sort_json(json))
    } else {
        None
    };
    let indent = match indent {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => Some(if let Some(s) = v.as_str() {
            s.to_string()
        } else {
            let n = i64::try_from(v.clone()).map_err(|_| {
                minijinja::Error::new(ErrorKind::InvalidOperation, "tojson: bad indent")
            })?;
            " ".repeat(n.max(0) as usize)
        }),
    };
    // Serialize the minijinja value itself (keeps map order) unless keys are sorted.
    fn write<F: serde_json::ser::Formatter>(
        out: &mut Vec<u8>,
        fmt: F,
        value: &Value,
        sorted: &Option<serde_json::Value>,
    ) -> serde_json::Result<()> {
        let mut ser = serde_json::Serializer::with_formatter(out, fmt);
        match sorted {
            Some(j) => j.serialize(&mut ser),
            None => value.serialize(&mut ser),
        }
    }
    let mut out = Vec::new();
    let res = match &indent {
        Some(ind) => write(
            &mut out,
            serde_json::ser::PrettyFormatter::with_indent(ind.as_bytes()),
            value,
            &sorted,
        ),
        None => write(&mut out, PyCompactFormatter, value, &sorted),
    };
    res.map_err(|e| minijinja::Error::new(ErrorKind::BadSerialization, e.to_string()))?;
    Ok(Value::from_safe_string(
        String::from_utf8(out).expect("serde_json writes UTF-8"),
    ))
}

fn sort_json(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => {
            let mut entries: Vec<_> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, sort_json(v)))
                    .collect(),
            )
        }
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.into_iter().map(sort_json).collect())
        }
        other => other,
    }
}

/// Python's default `json.dumps` separators: `", "` and `": "`.
struct PyCompactFormatter;

impl serde_json::ser::Formatter for PyCompactFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
    ) -> std::io::Result<()> {
        writer.write_all(b": ")
    }
}

/// `strftime_now(format)`: the current UTC time formatted with the common `strftime` codes
/// (`%Y %y %m %d %e %B %b %A %a %H %I %M %S %p %j %%`).
fn strftime_now(format: String) -> std::result::Result<Value, minijinja::Error> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Ok(Value::from(strftime(&format, secs)))
}

/// Formats a Unix time (UTC). Public within the crate for tests.
pub(crate) fn strftime(format: &str, unix_secs: i64) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    let days = unix_secs.div_euclid(86_400);
    let sod = unix_secs.rem_euclid(86_400);
    let (h, mi, s) = (sod / 3600, (sod % 3600) / 60, sod % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy_mar = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy_mar + 2) / 153;
    let d = doy_mar - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if m <= 2 { 1 } else { 0 };
    let weekday = (days + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let cum = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let yday = cum[(m - 1) as usize] + d + if leap && m > 2 { 1 } else { 0 };

    let mut out = String::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&y.to_string()),
            Some('y') => out.push_str(&format!("{:02}", y.rem_euclid(100))),
            Some('m') => out.push_str(&format!("{m:02}")),
            Some('d') => out.push_str(&format!("{d:02}")),
            Some('e') => out.push_str(&format!("{d:>2}")),
            Some('B') => out.push_str(MONTHS[(m - 1) as usize]),
            Some('b') | Some('h') => out.push_str(&MONTHS[(m - 1) as usize][..3]),
            Some('A') => out.push_str(DAYS[weekday]),
            Some('a') => out.push_str(&DAYS[weekday][..3]),
            Some('H') => out.push_str(&format!("{h:02}")),
            Some('I') => out.push_str(&format!("{:02}", if h % 12 == 0 { 12 } else { h % 12 })),
            Some('M') => out.push_str(&format!("{mi:02}")),
            Some('S') => out.push_str(&format!("{s:02}")),
            Some('p') => out.push_str(if h < 12 { "AM" } else { "PM" }),
            Some('j') => out.push_str(&format!("{yday:03}")),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strftime_known_dates() {
        // 2026-11-28 12:34:56 UTC was a Saturday.
        let t = 1_795_869_296;
        assert_eq!(strftime("%Y-%m-%d %H:%M:%S", t), "2026-11-28 12:34:56");
        assert_eq!(strftime("%d %b %Y %A %j", t), "28 Nov 2026 Saturday 332");
        assert_eq!(strftime("%d %B %Y", 0), "01 January 1970");
        assert_eq!(strftime("%Y-%m-%d", 951_782_400), "2000-02-29");
    }

    #[test]
    fn tojson_like_python() {
        let t = ChatTemplate::new(
            "{% set x = {'b': [1, 2], 'a': 's'} %}{{ x | tojson }}|{{ x | tojson(indent=2) }}|{{ 'é<' | tojson }}|{{ x | tojson(sort_keys=true) }}",
            "",
            "",
        )
        .unwrap();
        let out = t.render(&[], false).unwrap();
        assert_eq!(
            out,
            "{\"b\": [1, 2], \"a\": \"s\"}|{\n  \"b\": [\n    1,\n    2\n  ],\n  \"a\": \"s\"\n}|\"é<\"|{\"a\": \"s\", \"b\": [1, 2]}"
        );
    }
}
