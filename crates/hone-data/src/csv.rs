//! CSV with a header row and a column mapping: which column holds each field of an example.
//! Each row is one single-turn example: an optional `system`, the user turn (a `user` column, or
//! `instruction` and `input` combined as in the instruction format) and the assistant turn (an
//! `assistant` or `output` column), with optional `id`, `group` and `label`.

use std::io::Write;
use std::path::Path;

use crate::atomic::AtomicFile;
use crate::error::{Error, Result};
use crate::example::{Example, Problem};
use hone_model::chat_template::Message;

/// The fields a column can be mapped to.
pub const FIELDS: &[&str] = &[
    "id",
    "group",
    "label",
    "system",
    "instruction",
    "input",
    "output",
    "user",
    "assistant",
];

/// Field -> column name. Fields not mapped explicitly use the column of the same name, if any.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CsvMapping {
    pub pairs: Vec<(String, String)>,
}

impl CsvMapping {
    /// Parses `field=column,field=column`.
    pub fn parse(spec: &str) -> Result<Self> {
        let mut pairs = Vec::new();
        for part in spec.split(',').filter(|s| !s.trim().is_empty()) {
            let (field, column) = part.split_once('=').ok_or_else(|| {
                Error::Invalid(format!("CSV mapping `{part}`: expected FIELD=COLUMN"))
            })?;
            let field = field.trim();
            if !FIELDS.contains(&field) {
                return Err(Error::Invalid(format!(
                    "CSV mapping: unknown field `{field}` (expected one of {})",
                    FIELDS.join(", ")
                )));
            }
            pairs.push((field.to_string(), column.trim().to_string()));
        }
        Ok(Self { pairs })
    }

    /// Column index of each field, given the header.
    pub fn resolve(&self, path: &Path, header: &[String]) -> Result<Columns> {
        let mut cols = Columns::default();
        for &field in FIELDS {
            let name = self
                .pairs
                .iter()
                .find(|(f, _)| f == field)
                .map(|(_, c)| c.as_str());
            let idx = match name {
                Some(n) => Some(header.iter().position(|h| h == n).ok_or_else(|| Error::Format {
                    path: path.to_path_buf(),
                    msg: format!("mapping names column `{n}` for `{field}`, but the header has none (columns: {})", header.join(", ")),
                })?),
                None => header.iter().position(|h| h == field),
            };
            cols.set(field, idx);
        }
        if cols.user.is_none() && cols.instruction.is_none() {
            return Err(Error::Format {
                path: path.to_path_buf(),
                msg: "no column for the user turn: map `user` or `instruction` (e.g. --map instruction=question)".into(),
            });
        }
        if cols.assistant.is_none() && cols.output.is_none() {
            return Err(Error::Format {
                path: path.to_path_buf(),
                msg: "no column for the answer: map `assistant` or `output` (e.g. --map output=answer)".into(),
            });
        }
        Ok(cols)
    }
}

/// Resolved column indices.
#[derive(Clone, Debug, Default)]
pub struct Columns {
    pub id: Option<usize>,
    pub group: Option<usize>,
    pub label: Option<usize>,
    pub system: Option<usize>,
    pub instruction: Option<usize>,
    pub input: Option<usize>,
    pub output: Option<usize>,
    pub user: Option<usize>,
    pub assistant: Option<usize>,
}

impl Columns {
    fn set(&mut self, field: &str, idx: Option<usize>) {
        match field {
            "id" => self.id = idx,
            "group" => self.group = idx,
            "label" => self.label = idx,
            "system" => self.system = idx,
            "instruction" => self.instruction = idx,
            "input" => self.input = idx,
            "output" => self.output = idx,
            "user" => self.user = idx,
            _ => self.assistant = idx,
        }
    }

    fn name(&self, header: &[String], idx: usize) -> String {
        header.get(idx).cloned().unwrap_or_default()
    }

    /// One row into an example; problems name the column.
    pub fn example(
        &self,
        header: &[String],
        row: &csv::ByteRecord,
    ) -> Result<Example, Vec<Problem>> {
        let mut problems = Vec::new();
        let get = |idx: Option<usize>, problems: &mut Vec<Problem>| -> Option<String> {
            let i = idx?;
            let raw = row.get(i).unwrap_or_default();
            match std::str::from_utf8(raw) {
                Ok(s) => Some(s.to_string()),
                Err(e) => {
                    problems.push(Problem::field(
                        self.name(header, i),
                        format!("invalid UTF-8 at byte {} of the field", e.valid_up_to() + 1),
                    ));
                    None
                }
            }
        };
        let nonempty = |idx: Option<usize>,
                        v: Option<String>,
                        problems: &mut Vec<Problem>|
         -> Option<String> {
            match v {
                Some(s) if s.trim().is_empty() => {
                    problems.push(Problem::field(self.name(header, idx.unwrap_or(0)), "empty"));
                    None
                }
                other => other,
            }
        };
        let opt = |v: Option<String>| v.filter(|s| !s.is_empty());
        let id = opt(get(self.id, &mut problems));
        let group = opt(get(self.group, &mut problems));
        let label = opt(get(self.label, &mut problems));
        let system = opt(get(self.system, &mut problems));
        let user = if self.user.is_some() {
            let v = get(self.user, &mut problems);
            nonempty(self.user, v, &mut problems)
        } else {
            let ins = get(self.instruction, &mut problems);
            let ins = nonempty(self.instruction, ins, &mut problems);
            let inp = get(self.input, &mut problems).unwrap_or_default();
            ins.map(|i| {
                if inp.is_empty() {
                    i
                } else {
                    format!("{i}\n\n{inp}")
                }
            })
        };
        let col = self.assistant.or(self.output);
        let answer = get(col, &mut problems);
        let answer = nonempty(col, answer, &mut problems);
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut messages = Vec::new();
        if let Some(s) = system {
            messages.push(Message::system(s));
        }
        messages.push(Message::user(user.unwrap_or_default()));
        messages.push(Message::assistant(answer.unwrap_or_default()));
        Ok(Example {
            id,
            group,
            label,
            messages,
        })
    }
}

/// The CSV bytes of one row (no line ending), for copying rows through unchanged.
pub fn row_bytes(row: &csv::ByteRecord) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    let _ = w.write_byte_record(row);
    let mut out = w.into_inner().unwrap_or_default();
    if out.last() == Some(&b'\n') {
        out.pop();
    }
    out
}

/// Writes single-turn examples as CSV with the columns id, group, label, system, user, assistant.
pub fn write_examples<'a>(
    path: &Path,
    examples: impl IntoIterator<Item = &'a Example>,
) -> Result<usize> {
    let mut f = AtomicFile::create(path)?;
    let mut n = 0;
    {
        let mut w = csv::Writer::from_writer(&mut f);
        let io = |e: csv::Error| Error::io(path, std::io::Error::other(e.to_string()));
        w.write_record(["id", "group", "label", "system", "user", "assistant"])
            .map_err(io)?;
        for ex in examples {
            let (system, rest) = match ex.messages.first() {
                Some(m) if m.role == "system" => (m.content.as_str(), &ex.messages[1..]),
                _ => ("", &ex.messages[..]),
            };
            if rest.len() != 2 {
                return Err(Error::Invalid(format!(
                    "{}: CSV holds single-turn examples only; example {} has {} turns",
                    path.display(),
                    n + 1,
                    rest.len()
                )));
            }
            w.write_record([
                ex.id.as_deref().unwrap_or(""),
                ex.group.as_deref().unwrap_or(""),
                ex.label.as_deref().unwrap_or(""),
                system,
                &rest[0].content,
                &rest[1].content,
            ])
            .map_err(io)?;
            n += 1;
        }
        w.flush().map_err(|e| Error::io(path, e))?;
    }
    f.flush().map_err(|e| Error::io(path, e))?;
    f.commit()?;
    Ok(n)
}
