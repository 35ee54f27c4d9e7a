//! Task metrics: classification, multi-label, extraction and generation.
//!
//! Every function here is pure: it takes gold and predicted values and returns a serde-serializable
//! report. Corpus-level functions return [`Error::Invalid`](crate::Error::Invalid) on empty input
//! or on gold and predicted lists of different lengths; they never panic on user input.
//!
//! Answers a model gave that could not be parsed are passed as `None` and are counted and
//! reported (`unparseable`), never dropped: they are wrong for accuracy and a false negative for
//! the gold class. [`parse`] turns raw model outputs into labels.
//!
//! Undefined values (a ratio whose denominator is zero where no convention applies) are `None`,
//! which serializes as JSON `null`.

pub mod classification;
pub mod extraction;
pub mod generation;
pub mod parse;
pub mod text;

pub use classification::{
    classification, multilabel, Averages, ClassMetrics, ClassificationReport, ConfusionMatrix,
    MultiLabelReport,
};
pub use extraction::{extraction, fields_from_json, ExtractionReport, FieldMetrics};
pub use generation::{generation, rouge_l, rouge_n, rouge_tokens, GenerationReport, Rouge, RougeL};
pub use parse::{parse_label, parse_labels};
pub use text::{normalize_whitespace, squad_normalize, squad_tokens, token_f1};

/// Checks that a corpus-level function got something to score and lists of equal length.
pub(crate) fn check_lengths(what: &str, gold: usize, predicted: usize) -> crate::Result<()> {
    if gold == 0 {
        return Err(crate::Error::Invalid(format!(
            "{what}: no examples to score"
        )));
    }
    if gold != predicted {
        return Err(crate::Error::Invalid(format!(
            "{what}: {gold} gold values but {predicted} predictions"
        )));
    }
    Ok(())
}

/// `num / den`, or `None` when `den` is zero.
pub(crate) fn ratio(num: usize, den: usize) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// Mean of the defined values, or `None` when there are none.
pub(crate) fn mean_defined(values: impl IntoIterator<Item = Option<f64>>) -> Option<f64> {
    let (sum, n) = values
        .into_iter()
        .flatten()
        .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}
