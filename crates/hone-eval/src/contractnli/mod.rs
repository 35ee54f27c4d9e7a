//! ContractNLI document-level metrics, as the ContractNLI paper computes them (Koreeda &
//! Manning, 2021; the official implementation is `contract_nli/evaluation.py` in
//! stanfordnlp/contract-nli-bert).
//!
//! For every hypothesis (check) the documents are scored separately, then the per-hypothesis
//! scores are averaged with equal weight (the official `macro_label_micro_doc` averages):
//!
//! - **NLI** (`nli_acc`, `f1_c`, `f1_e`): only documents whose gold label is not NotMentioned,
//!   scored as a binary Entailment / Contradiction decision. As in the official code only the
//!   hypotheses whose gold labels include both Entailment and Contradiction take part, in all
//!   three numbers (the others show `null`). The binary decision follows the official
//!   `remove_not_mentioned`: a predicted Entailment or Contradiction is kept; for a predicted
//!   NotMentioned the larger of the Entailment and Contradiction probabilities decides, ties
//!   (including no probabilities at all) going to Entailment as the official arg-max does. F1 per
//!   class is 2tp / (2tp + fp + fn).
//! - **3-class accuracy** (`acc3`): Entailment / Contradiction / NotMentioned over all documents,
//!   per hypothesis, averaged over hypotheses. The predicted class is the prediction's `label`.
//! - **Evidence mAP** (`evidence_map`, the paper's headline number): for each hypothesis, the
//!   spans of all its documents whose gold label is not NotMentioned and that have gold evidence
//!   (the official code only scores evidence there) are pooled into one ranking by predicted
//!   score, and its average precision is averaged over hypotheses (the official
//!   `macro_label_micro_doc` span `map`: micro over documents, macro over hypotheses, like the
//!   NLI numbers). Pooling asks for scores that are comparable across documents.
//!   `evidence_map_macro_doc` instead takes each document's average precision, averaged over
//!   those documents, then over hypotheses (the official `macro_label_macro_doc` span `map`);
//!   it only reads each document's own ranking, so it is the higher and more forgiving one.
//!
//! Predicted evidence is a list of character ranges with scores. A range covers a span when it
//! overlaps at least half of the span's characters ([`covers`]); a span's score is the best score
//! of the ranges covering it ([`span_scores`]). Average precision ([`average_precision`]) is
//! scikit-learn's `average_precision_score` (sum over score thresholds of the recall gained
//! times the precision there, tied scores forming one threshold) over the covered spans, with
//! recall counted against all gold evidence spans: a gold span no range covers is never
//! retrieved, so it only lowers the recall reached. (The official model gives every span a
//! probability, so there every span is ranked; with ranges, an uncovered span has no score and is
//! not ranked at all, which never credits a system for spans it did not point at.)
//!
//! A gold document without a prediction is counted in `missing` and scored as predicted
//! NotMentioned with no evidence for every hypothesis; in the binary NLI numbers it is no
//! decision at all (wrong, and a false negative for the gold class), so an absent answer never
//! earns credit. A predicted document that lacks a check is scored the same way for that check
//! and counted in `missing_checks`.
//!
//! Comparing several predictions files ([`compare`]) also measures each one against the first
//! with a paired bootstrap over the gold documents ([`paired_differences`]):
//! a difference whose 95% interval contains 0 is within noise.

mod bootstrap;
mod compare;
mod evaluate;
mod evidence;
mod gold;
mod predictions;
mod report;
mod route;
mod table;
mod text;

pub use bootstrap::{
    draws, paired_differences, resample_gold, resample_predictions, BootstrapInfo,
    BootstrapOptions, Difference, Reading, ResampleScorer, DEFAULT_RESAMPLES, DEFAULT_SEED,
};
pub use compare::{
    compare, compare_with, overall_metrics, parse_candidate, Candidate, Comparison, ReviewLatency,
};
pub use evaluate::{evaluate, evaluate_files, ContractNliMetrics, HypothesisMetrics};
pub use evidence::{average_precision, covers, span_scores, EvidenceRange};
pub use gold::{detect_gold_format, gold_from_official, read_gold, GoldFormat};
pub use predictions::{
    read_predictions, read_predictions_timed, CheckPrediction, ClassProbs, DocTiming, Prediction,
    Predictions,
};
pub use report::{
    comparison_html, comparison_markdown, differences_table, overall_table, write_comparison,
    ComparisonFiles,
};
pub use route::{merged, review_curve, review_queries, ReviewQueries};
pub use table::{Cell, Table};
pub use text::{comparison_text, hypothesis_table, metrics_overall_table, metrics_text};
