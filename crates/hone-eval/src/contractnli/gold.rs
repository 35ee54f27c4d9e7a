//! Gold documents for scoring, read by hone-data's one ContractNLI reader
//! ([`hone_data::contractnli`]); here only its errors become this crate's, variant for variant,
//! so callers match `Error::Parse`, `Error::Format` and `Error::Io` as they would for a
//! predictions file.

use std::path::Path;

use hone_data::contractnli::{Dataset, EvalDocument};

use crate::{Error, Result};

pub use hone_data::contractnli::{detect_format as detect_gold_format, GoldFormat};

/// Reads gold documents from either format ([`detect_gold_format`]) and checks them: unique ids,
/// spans inside the text, evidence indices inside the span list
/// ([`hone_data::contractnli::read_gold`]).
pub fn read_gold(path: &Path) -> Result<Vec<EvalDocument>> {
    hone_data::contractnli::read_gold(path).map_err(from_data)
}

/// Converts ContractNLI's official JSON into evaluation documents (first annotation set, as
/// the official code uses). `path` is only for error messages.
pub fn gold_from_official(ds: &Dataset, path: &Path) -> Result<Vec<EvalDocument>> {
    hone_data::contractnli::gold_from_official(ds, path).map_err(from_data)
}

/// hone-data's error as the same variant of this crate's (same message).
fn from_data(e: hone_data::Error) -> Error {
    match e {
        hone_data::Error::Io { path, cause } => Error::Io { path, cause },
        hone_data::Error::Parse { path, line, msg } => Error::Parse { path, line, msg },
        hone_data::Error::Field {
            path,
            line,
            field,
            msg,
        } => Error::Field {
            path,
            line,
            field,
            msg,
        },
        hone_data::Error::Format { path, msg } => Error::Format { path, msg },
        hone_data::Error::Invalid(msg) => Error::Invalid(msg),
        other => Error::Data(other),
    }
}
