//! hone-review: the flagship task. A contract goes in (text, Markdown, PDF, or ContractNLI
//! JSON); it is split into spans, every span is classified by the fine-tuned model in one pass
//! per window ([`hone_data::review_layout`], [`scoring`]), and for each of the 17 checks the document gets
//! a label with probabilities and ranked evidence spans ([`aggregate`]). A playbook turns
//! deviations from the firm's positions into flags ([`playbook`]); reports render it for
//! people ([`report`]).

pub mod aggregate;
pub mod bench;
pub mod builtin;
pub mod calibrate;
pub mod engine;
pub mod error;
pub mod input;
pub mod pdf_fixture;
pub mod playbook;
pub mod report;
pub mod scoring;
pub mod tfidf;
pub mod tfidf_reviewer;
pub mod types;

pub use error::{Error, Result};
pub use types::{CheckResult, DocReview, Evidence, Flag, Probs, Risk, Timing};
