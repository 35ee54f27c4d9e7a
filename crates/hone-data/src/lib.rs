//! hone-data: examples and everything done to them before training: formats (JSONL in the
//! chat and instruction shapes, CSV with a column mapping), validation, statistics, quality
//! checks, splits, the ContractNLI importer and the synthetic NDA generator.
//!
//! Everything that reads a data file streams it (one record in memory at a time, plus a few
//! bytes of state per record), so a file of gigabytes is handled in bounded memory.

pub mod atomic;
pub mod contractnli;
pub mod coverage;
pub mod csv;
pub mod error;
pub mod example;
pub mod hash;
pub mod jsonl;
pub mod minhash;
pub mod nda;
pub mod normalize;
pub mod progress;
pub mod qa;
pub mod qa_bench;
pub mod review_layout;
pub mod select;
pub mod source;
pub mod spans;
pub mod split;
pub mod stats;
pub mod synth;
pub mod synth_clauses;
pub mod synth_out_of_scope;
pub mod template;
pub mod tokens;
pub mod train_log;
pub mod validate;

pub use error::{Error, Result};
pub use example::{Example, Problem};
pub use progress::{NoProgress, Progress};
pub use source::{Format, Record, Records};
