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
                if let Some((max, counter)) = opts.max_seq_len {
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
