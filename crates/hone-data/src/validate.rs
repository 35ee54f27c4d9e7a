//! `hone data validate`: every problem in a file, each with its line and field.

use std::path::Path;

use serde::Serialize;

use crate::error::Result;
use crate::example::Problem;
use crate::progress::Progress;
use crate::source::{Format, Records};
use crate::tokens::TokenCounter;

/// Problems kept in full; beyond this only the count grows (bounded memory on huge files).
pub const MAX_KEPT: usize = 10_000;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LineProblem {
    pub line: usize,
    #[serde(flatten)]
    pub problem: Problem,
}

impl std::fmt::Display for LineProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.problem)
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ValidationReport {
    pub records: usize,
    pub valid: usize,
    pub problem_count: usize,
    pub problems: Vec<LineProblem>,
}

impl ValidationReport {
    pub fn is_ok(&self) -> bool {
        self.problem_count == 0
    }
}

pub struct ValidateOptions<'a> {
    /// With a token counter: flag examples longer than this many tokens.
    pub max_seq_len: Option<(usize, &'a TokenCounter)>,
}

pub fn validate_file(
    path: &Path,
    format: &Format,
    opts: &ValidateOptions,
    progress: &dyn Progress,
) -> Result<ValidationReport> {
    let mut recs = Records::open(path, format)?;
    // With --max-seq-len, text that cannot fit is flagged without tokenizing it (a 50 MB
    // line tokenized took gigabytes), and a line that cannot fit is not even read into
    // memory: one token is at most `per_token` bytes of text, and JSON escapes take at most
    // 6 bytes per byte of text.
    let limits = opts.max_seq_len.map(|(max, counter)| {
        let per_token = counter.max_token_bytes();
        let text_max = max.saturating_mul(per_token);
        let line_max = text_max
            .saturating_mul(6)
            .saturating_add(64 << 10)
            .clamp(1 << 20, crate::jsonl::MAX_LINE_BYTES);
        (max, per_token, text_max, line_max)
    });
    if let Some((max, per_token, _, line_max)) = limits {
        recs = recs.with_max_line(
            line_max,
            format!(
                "the most an example of --max-seq-len {max} tokens can take, at {per_token} \
                 bytes of text per token at most"
            ),
        );
    }
    progress.start("validate", recs.total_bytes());
    let mut rep = ValidationReport::default();
    let push = |rep: &mut ValidationReport, line: usize, problem: Problem| {
        rep.problem_count += 1;
        if rep.problems.len() < MAX_KEPT {
            rep.problems.push(LineProblem { line, problem });
        }
    };
    while let Some(rec) = recs.next_record()? {
        rep.records += 1;
        match rec.parsed {
            Ok(ex) => {
                let mut ok = true;
                let text: usize = ex.messages.iter().map(|m| m.content.len()).sum();
                if let Some((max, per_token, text_max, _)) = limits.filter(|l| text > l.2) {
                    ok = false;
                    push(
                        &mut rep,
                        rec.line,
                        Problem::field(
                            "messages",
                            format!(
                                "too long: {text} bytes of text, at least {} tokens (at most \
                                 {per_token} bytes per token; {text_max} bytes at most fit), \
                                 more than --max-seq-len {max}",
                                text.div_ceil(per_token)
                            ),
                        ),
                    );
                } else if let Some((max, counter)) = opts.max_seq_len {
                    match counter.count(&ex) {
                        Ok(n) if n > max => {
                            ok = false;
                            push(
                                &mut rep,
                                rec.line,
                                Problem::field(
                                    "messages",
                                    format!("too long: {n} tokens, more than --max-seq-len {max}"),
                                ),
                            );
                        }
                        Ok(_) => {}
                        Err(e) => {
                            ok = false;
                            push(
                                &mut rep,
                                rec.line,
                                Problem::field(
                                    "messages",
                                    format!("cannot render or tokenize: {e}"),
                                ),
                            );
                        }
                    }
                }
                if ok {
                    rep.valid += 1;
                }
            }
            Err(problems) => {
                for p in problems {
                    push(&mut rep, rec.line, p);
                }
            }
        }
        if rep.records.is_multiple_of(1024) {
            progress.set(recs.bytes_read());
        }
    }
    progress.finish();
    if rep.records == 0 {
        return Err(recs.no_examples());
    }
    Ok(rep)
}
