//! JSON Lines: one record per line, read as a stream (one line in memory at a time), written
//! atomically.

use std::io::{BufRead, Write};
use std::path::Path;

use serde_json::Value;

use crate::atomic::AtomicFile;
use crate::error::{Error, Result};
use crate::example::{Example, Problem};

/// Reads lines as bytes (so invalid UTF-8 is reported, not fatal), numbering them from 1 and
/// skipping blank ones.
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    line: usize,
    bytes: u64,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            line: 0,
            bytes: 0,
        }
    }

    /// Bytes consumed so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// The next non-blank line (without its line ending) and its 1-based number.
    pub fn next_line(&mut self) -> std::io::Result<Option<(usize, &[u8])>> {
        loop {
            self.buf.clear();
            let n = self.inner.read_until(b'\n', &mut self.buf)?;
            if n == 0 {
                return Ok(None);
            }
            self.bytes += n as u64;
            self.line += 1;
            let mut end = self.buf.len();
            while end > 0 && matches!(self.buf[end - 1], b'\n' | b'\r') {
                end -= 1;
            }
            if self.buf[..end].iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            return Ok(Some((self.line, &self.buf[..end])));
        }
    }
}

/// Parses one line into a JSON value, or says why it is not one.
pub fn parse_line(bytes: &[u8]) -> Result<Value, Problem> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Problem::line(format!(
            "invalid UTF-8 at byte {} of the line",
            e.valid_up_to() + 1
        ))
    })?;
    serde_json::from_str(text).map_err(|e| Problem::line(format!("bad JSON: {e}")))
}

/// Parses one line into an example.
pub fn parse_example(bytes: &[u8]) -> Result<Example, Vec<Problem>> {
    let v = parse_line(bytes).map_err(|p| vec![p])?;
    Example::from_value(&v)
}

/// Turns a record's first problem into an error naming the file and line.
pub fn problem_error(path: &Path, line: usize, p: &Problem) -> Error {
    match &p.field {
        Some(field) => Error::Field {
            path: path.to_path_buf(),
            line,
            field: field.clone(),
            msg: p.message.clone(),
        },
        None => Error::Parse {
            path: path.to_path_buf(),
            line,
            msg: p.message.clone(),
        },
    }
}

/// Reads a whole JSONL file of examples, failing on the first bad line. (For files that fit in
/// memory; the streaming commands use [`crate::source::Records`].)
pub fn read_examples(path: &Path) -> Result<Vec<(usize, Example)>> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut r = LineReader::new(std::io::BufReader::new(f));
    let mut out = Vec::new();
    while let Some((line, bytes)) = r.next_line().map_err(|e| Error::io(path, e))? {
        match parse_example(bytes) {
            Ok(ex) => out.push((line, ex)),
            Err(ps) => return Err(problem_error(path, line, &ps[0])),
        }
    }
    Ok(out)
}

/// Writes examples in the chat shape, one per line, atomically.
pub fn write_examples<'a>(
    path: &Path,
    examples: impl IntoIterator<Item = &'a Example>,
) -> Result<usize> {
    let mut f = AtomicFile::create(path)?;
    let mut n = 0;
    for ex in examples {
        writeln!(f, "{}", ex.to_json()).map_err(|e| Error::io(path, e))?;
        n += 1;
    }
    f.commit()?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hone_model::chat_template::Message;

    #[test]
    fn round_trip_and_line_numbers_count_blank_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jsonl");
        let exs = vec![
            Example {
                id: Some("1".into()),
                messages: vec![Message::user("q"), Message::assistant("a")],
                ..Default::default()
            },
            Example {
                label: Some("x".into()),
                messages: vec![Message::user("q2 \"quoted\"\n"), Message::assistant("a2")],
                ..Default::default()
            },
        ];
        write_examples(&p, &exs).unwrap();
        let back: Vec<Example> = read_examples(&p)
            .unwrap()
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        assert_eq!(back, exs);

        let text = std::fs::read_to_string(&p).unwrap().replace('\n', "\n\n");
        std::fs::write(&p, text).unwrap();
        let lines: Vec<usize> = read_examples(&p)
            .unwrap()
            .into_iter()
            .map(|(l, _)| l)
            .collect();
        assert_eq!(lines, [1, 3]);
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.jsonl");
        std::fs::write(&p, b"{\"instruction\":\"a\",\"output\":\"b\"}\r\n{\"instruction\": \"a\", \"output\": \xff}\n").unwrap();
        let e = read_examples(&p).unwrap_err().to_string();
        assert!(
            e.ends_with("b.jsonl:2: invalid UTF-8 at byte 32 of the line"),
            "{e}"
        );
        std::fs::write(
            &p,
            "{\"instruction\":\"a\",\"output\":\"b\"}\n{\"instruction\": 1, \"output\": \"b\"}\n",
        )
        .unwrap();
        let e = read_examples(&p).unwrap_err().to_string();
        assert!(
            e.ends_with("b.jsonl:2: field `instruction`: expected a string, found a number"),
            "{e}"
        );
    }
}
