//! A data file of examples, whatever its format (JSONL in either shape, or CSV with a column
//! mapping), read as a stream of records. Each record keeps its raw bytes so that commands that
//! filter or split a file copy records through unchanged.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use crate::csv::{row_bytes, Columns, CsvMapping};
use crate::error::{Error, Result};
use crate::example::{Example, Problem};
use crate::jsonl::{parse_example, problem_error, too_long_problem, Line, LineReader};

/// How to read a file.
#[derive(Clone, Debug, PartialEq)]
pub enum Format {
    Jsonl,
    Csv(CsvMapping),
}

impl Format {
    /// CSV for `.csv` files, JSONL otherwise.
    pub fn for_path(path: &Path, mapping: Option<&CsvMapping>) -> Self {
        let is_csv = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
        if is_csv || mapping.is_some() {
            Format::Csv(mapping.cloned().unwrap_or_default())
        } else {
            Format::Jsonl
        }
    }
}

/// One record: its line, its bytes as in the file (without the line ending), and the example
/// or what is wrong with it.
pub struct Record {
    pub line: usize,
    pub raw: Vec<u8>,
    pub parsed: Result<Example, Vec<Problem>>,
}

impl Record {
    /// The example, or an error naming file, line and field of its first problem.
    pub fn into_example(self, path: &Path) -> Result<Example> {
        self.parsed
            .map_err(|ps| problem_error(path, self.line, &ps[0]))
    }
}

enum Inner {
    Jsonl(LineReader<BufReader<File>>),
    Csv {
        reader: Box<csv::Reader<BufReader<File>>>,
        header: Vec<String>,
        header_raw: Vec<u8>,
        columns: Columns,
        row: csv::ByteRecord,
    },
}

/// A streaming reader of records.
pub struct Records {
    path: PathBuf,
    inner: Inner,
    total: u64,
    /// Where the JSONL line limit comes from, for its problem message.
    line_limit_why: String,
}

impl Records {
    pub fn open(path: &Path, format: &Format) -> Result<Self> {
        let f = File::open(path).map_err(|e| Error::io(path, e))?;
        let total = f.metadata().map(|m| m.len()).unwrap_or(0);
        let buf = BufReader::with_capacity(1 << 16, f);
        let inner = match format {
            Format::Jsonl => Inner::Jsonl(LineReader::new(buf)),
            Format::Csv(mapping) => {
                let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(buf);
                let hdr = reader.byte_headers().map_err(|e| Error::Parse {
                    path: path.to_path_buf(),
                    line: 1,
                    msg: format!("bad CSV header: {e}"),
                })?;
                if hdr.is_empty() {
                    return Err(Error::Empty {
                        path: path.to_path_buf(),
                        why: "the file is empty",
                    });
                }
                let header_raw = row_bytes(hdr);
                let header: Vec<String> = hdr
                    .iter()
                    .map(|h| String::from_utf8_lossy(h).trim().to_string())
                    .collect();
                let columns = mapping.resolve(path, &header)?;
                Inner::Csv {
                    reader: Box::new(reader),
                    header,
                    header_raw,
                    columns,
                    row: csv::ByteRecord::new(),
                }
            }
        };
        Ok(Self {
            path: path.to_path_buf(),
            inner,
            total,
            line_limit_why: "the limit on a line".into(),
        })
    }

    /// JSONL lines longer than `bytes` become records with a problem (saying `why` that is
    /// the limit) instead of being read into memory. (CSV records are not limited.)
    pub fn with_max_line(mut self, bytes: usize, why: impl Into<String>) -> Self {
        if let Inner::Jsonl(r) = self.inner {
            self.inner = Inner::Jsonl(r.with_max_line(bytes));
            self.line_limit_why = why.into();
        }
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's size in bytes (for progress bars).
    pub fn total_bytes(&self) -> u64 {
        self.total
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        match &self.inner {
            Inner::Jsonl(r) => r.bytes_read(),
            Inner::Csv { reader, .. } => reader.position().byte(),
        }
    }

    /// The header line to write before copied records (CSV only).
    pub fn header(&self) -> Option<&[u8]> {
        match &self.inner {
            Inner::Jsonl(_) => None,
            Inner::Csv { header_raw, .. } => Some(header_raw),
        }
    }

    /// The error for a file in which no record was found: for commands (validate, qa, split)
    /// to which an empty dataset is a mistake, not a pass.
    pub fn no_examples(&self) -> Error {
        let why = match &self.inner {
            Inner::Jsonl(_) if self.total == 0 => "the file is empty",
            Inner::Jsonl(_) => "the file has only blank lines",
            Inner::Csv { .. } => "the file has only a header",
        };
        Error::Empty {
            path: self.path.clone(),
            why,
        }
    }

    /// The next record; `Err` only when the file cannot be read.
    pub fn next_record(&mut self) -> Result<Option<Record>> {
        match &mut self.inner {
            Inner::Jsonl(r) => {
                let max = r.max_line();
                let Some((line, text)) = r.next_line().map_err(|e| Error::io(&self.path, e))?
                else {
                    return Ok(None);
                };
                Ok(Some(match text {
                    Line::Text(bytes) => Record {
                        line,
                        parsed: parse_example(bytes),
                        raw: bytes.to_vec(),
                    },
                    Line::TooLong { bytes } => Record {
                        line,
                        parsed: Err(vec![too_long_problem(bytes, max, &self.line_limit_why)]),
                        raw: Vec::new(),
                    },
                }))
            }
            Inner::Csv {
                reader,
                header,
                columns,
                row,
                ..
            } => {
                let line = reader.position().line() as usize;
                match reader.read_byte_record(row) {
                    Ok(false) => Ok(None),
                    Ok(true) => {
                        let line = row.position().map(|p| p.line() as usize).unwrap_or(line);
                        Ok(Some(Record {
                            line,
                            parsed: columns.example(header, row),
                            raw: row_bytes(row),
                        }))
                    }
                    Err(e) => {
                        let line = e.position().map(|p| p.line() as usize).unwrap_or(line);
                        match e.kind() {
                            csv::ErrorKind::Io(_) => {
                                Err(Error::io(&self.path, std::io::Error::other(e.to_string())))
                            }
                            csv::ErrorKind::UnequalLengths {
                                expected_len, len, ..
                            } => Ok(Some(Record {
                                line,
                                raw: Vec::new(),
                                parsed: Err(vec![Problem::line(format!(
                                    "bad CSV row: {len} fields, the header has {expected_len}"
                                ))]),
                            })),
                            _ => Ok(Some(Record {
                                line,
                                raw: Vec::new(),
                                parsed: Err(vec![Problem::line(format!("bad CSV row: {e}"))]),
                            })),
                        }
                    }
                }
            }
        }
    }
}

impl Iterator for Records {
    type Item = Result<Record>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hone_model::chat_template::Message;

    #[test]
    fn csv_with_mapping_reads_rows_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.csv");
        std::fs::write(
            &p,
            "question,answer,topic\n\"What is 2+2?\",4,math\n\"Multi\nline\",\"yes, \"\"quoted\"\"\",misc\n,empty,x\n",
        )
        .unwrap();
        let map = CsvMapping::parse("instruction=question,output=answer,label=topic").unwrap();
        let recs: Vec<Record> = Records::open(&p, &Format::for_path(&p, Some(&map)))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(recs.iter().map(|r| r.line).collect::<Vec<_>>(), [2, 3, 5]);
        let ex0 = recs[0].parsed.as_ref().unwrap();
        assert_eq!(
            ex0.messages,
            vec![Message::user("What is 2+2?"), Message::assistant("4")]
        );
        assert_eq!(ex0.label.as_deref(), Some("math"));
        assert_eq!(
            recs[1].parsed.as_ref().unwrap().messages[1].content,
            "yes, \"quoted\""
        );
        assert_eq!(
            recs[2].parsed.as_ref().unwrap_err()[0].to_string(),
            "field `question`: empty"
        );

        // Written back out (chat columns) and read again with the default mapping.
        let exs: Vec<Example> = recs.iter().filter_map(|r| r.parsed.clone().ok()).collect();
        let q = dir.path().join("b.csv");
        crate::csv::write_examples(&q, &exs).unwrap();
        let back: Vec<Example> = Records::open(&q, &Format::for_path(&q, None))
            .unwrap()
            .map(|r| r.unwrap().into_example(&q).unwrap())
            .collect();
        assert_eq!(back, exs);
    }

    #[test]
    fn csv_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.csv");
        std::fs::write(&p, "user,assistant\nhi,there\nonly-one\n").unwrap();
        let recs: Vec<Record> = Records::open(&p, &Format::Csv(CsvMapping::default()))
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        let e = recs
            .into_iter()
            .nth(1)
            .unwrap()
            .into_example(&p)
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("a.csv:3: bad CSV row: 1 fields, the header has 2"),
            "{e}"
        );
        let e = Records::open(&p, &Format::Csv(CsvMapping::parse("output=nope").unwrap()))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("column `nope`"), "{e}");
    }
}
