//! JSON Lines: one record per line, read as a stream (one line in memory at a time), written
//! atomically.

use std::io::{BufRead, Write};
use std::path::Path;

use serde_json::Value;

use crate::atomic::AtomicFile;
use crate::error::{Error, Result};
use crate::example::{Example, Problem};

/// The longest line read by default: 64 MiB. A longer line is counted as it streams by and
/// reported, never held in memory.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// A non-blank line: its bytes (without the line ending), or only its length when it is
/// longer than the reader's limit.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    Text(&'a [u8]),
    TooLong { bytes: u64 },
}

/// Reads lines as bytes (so invalid UTF-8 is reported, not fatal), numbering them from 1 and
/// skipping blank ones. Lines longer than [`LineReader::max_line`] bytes are not kept.
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    line: usize,
    bytes: u64,
    max_line: usize,
}

impl<R: BufRead> LineReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            line: 0,
            bytes: 0,
            max_line: MAX_LINE_BYTES,
        }
    }

    /// Lines longer than `bytes` are reported as [`Line::TooLong`] and not kept.
    pub fn with_max_line(mut self, bytes: usize) -> Self {
        self.max_line = bytes;
        self
    }

    /// The longest line kept.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// Bytes consumed so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes
    }

    /// The next non-blank line and its 1-based number. Memory is bounded by the line limit:
    /// the rest of a longer line is read and dropped a buffer at a time.
    pub fn next_line(&mut self) -> std::io::Result<Option<(usize, Line<'_>)>> {
        loop {
            self.buf.clear();
            // Bytes of this line, its ending included; past the limit they are only counted.
            let mut len = 0u64;
            loop {
                let avail = self.inner.fill_buf()?;
                if avail.is_empty() {
                    break;
                }
                let (take, done) = match avail.iter().position(|&b| b == b'\n') {
                    Some(i) => (i + 1, true),
                    None => (avail.len(), false),
                };
                if len + take as u64 <= self.max_line as u64 + 2 {
                    // (+2: the line ending does not count against the limit)
                    self.buf.extend_from_slice(&avail[..take]);
                } else if !self.buf.is_empty() {
                    self.buf = Vec::new(); // give the memory back
                }
                len += take as u64;
                self.inner.consume(take);
                if done {
                    break;
                }
            }
            if len == 0 {
                return Ok(None);
            }
            self.bytes += len;
            self.line += 1;
            let mut end = self.buf.len();
            while end > 0 && matches!(self.buf[end - 1], b'\n' | b'\r') {
                end -= 1;
            }
            if end > self.max_line || (end == 0 && len > self.max_line as u64) {
                return Ok(Some((self.line, Line::TooLong { bytes: len })));
            }
            if self.buf[..end].iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            return Ok(Some((self.line, Line::Text(&self.buf[..end]))));
        }
    }
}

/// The problem of a line longer than `limit` bytes: `why` says where the limit comes from.
pub fn too_long_problem(bytes: u64, limit: usize, why: &str) -> Problem {
    Problem::line(format!(
        "the line is {bytes} bytes, more than {limit} ({why}); it was skipped without being read \
         into memory"
    ))
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
    let max = r.max_line();
    let mut out = Vec::new();
    while let Some((line, text)) = r.next_line().map_err(|e| Error::io(path, e))? {
        let bytes = match text {
            Line::Text(b) => b,
            Line::TooLong { bytes } => {
                let p = too_long_problem(bytes, max, "the limit on a line");
                return Err(problem_error(path, line, &p));
            }
        };
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
    fn a_line_over_the_limit_is_measured_not_kept() {
        let long = "x".repeat(1 << 20);
        let text = format!("first\n{long}\r\n\n   \nlast\n{}\n", "y".repeat(50));
        let mut r = LineReader::new(std::io::BufReader::with_capacity(4096, text.as_bytes()))
            .with_max_line(50);
        assert_eq!(r.next_line().unwrap(), Some((1, Line::Text(b"first"))));
        assert_eq!(
            r.next_line().unwrap(),
            Some((
                2,
                Line::TooLong {
                    bytes: (1 << 20) + 2
                }
            ))
        );
        // Memory stays bounded by the limit (and the reader's buffer), not the line.
        assert!(r.buf.capacity() < 8192, "{}", r.buf.capacity());
        assert_eq!(r.next_line().unwrap(), Some((5, Line::Text(b"last"))));
        // Exactly at the limit is kept.
        assert_eq!(
            r.next_line().unwrap(),
            Some((6, Line::Text("y".repeat(50).as_bytes())))
        );
        assert_eq!(r.next_line().unwrap(), None);
        assert_eq!(r.bytes_read(), text.len() as u64);
        // The default limit keeps such a line.
        let mut r = LineReader::new(text.as_bytes());
        assert_eq!(r.max_line(), MAX_LINE_BYTES);
        assert!(matches!(r.next_line().unwrap(), Some((1, Line::Text(_)))));
        assert!(matches!(r.next_line().unwrap(), Some((2, Line::Text(l))) if l.len() == 1 << 20));
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
