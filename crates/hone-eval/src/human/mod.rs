//! Blind human evaluation: the rating packet, its HTML page, importing ratings and win rates.
//!
//! # Workflow
//!
//! 1. [`export`] reads the `outputs.jsonl` that `hone eval` wrote (one line per example and
//!    candidate), picks up to `n` examples (seeded), and writes a *packet* folder:
//!    - `index.html`: the rating page, self-contained (the items are embedded as JSON; no network).
//!      **This is the file to send to reviewers.**
//!    - `items.json`: exactly what the page shows ([`PacketItems`]).
//!    - `key.json`: which letter is which candidate, per item ([`PacketKey`]). **Keep it: do not
//!      send it to reviewers**, it undoes the blinding. The page never needs it.
//!
//!    Each item's outputs are shuffled independently (the order derives from the seed and the
//!    item id only) and labelled "Output A", "Output B", ...
//! 2. Each reviewer opens `index.html`, rates every output 1–5 on accuracy, completeness and
//!    format, may tick "critical failure", and clicks "Save ratings", which downloads
//!    `ratings.json` ([`read_ratings`] documents the format). Work in progress is kept in the
//!    browser's localStorage, so a reload loses nothing.
//! 3. [`import`] reads the packet and the reviewers' files, de-anonymises with `key.json` and
//!    computes a [`HumanReport`]: mean scores per candidate and criterion, critical-failure counts,
//!    and pairwise win rates with 95% confidence intervals ([`wilson_interval`]).
//! 4. [`crate::gate`] decides whether the fine-tune ships.
//!
//! # Scores and win rates
//!
//! The overall score of one output from one reviewer is the mean of its three ratings; an output
//! missing any of the three has no overall score (it is reported as missing, and still counts for
//! the per-criterion means of the ratings it has). For candidates X and Y, every (item, reviewer)
//! where both have an overall score is one comparison: X wins if its score is higher, ties if
//! equal. The win rate of X over Y is `(wins + 0.5 × ties) / comparisons`; its interval is the
//! Wilson score interval at 95% (z = 1.959964) on that tie-as-half proportion, with `n` the number
//! of comparisons. Treating each comparison as an independent trial ignores that two reviewers
//! of the same item are correlated, so with several reviewers the interval is somewhat too
//! narrow; ties (which carry less variance than a win or loss) make it somewhat too wide.

mod export;
mod import;
mod outputs;
mod stats;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use export::{build_packet, export, render_page, ExportOptions, ExportSummary};
pub use import::{
    compute_report, import, load_packet, read_ratings, CandidateScores, HumanReport, Mean,
    MissingRating, MissingSummary, OutputRating, Packet, ReviewerRatings,
};
pub use outputs::{read_outputs, OutputRecord};
pub use stats::{wilson_interval, win_rate, WinRate, Z_95};

/// The three criteria every output is rated on, 1–5, in the order the page shows them.
pub const CRITERIA: [&str; 3] = ["accuracy", "completeness", "format"];

/// `format` of `items.json`.
pub const ITEMS_FORMAT: &str = "hone-human-packet/1";
/// `format` of `key.json`.
pub const KEY_FORMAT: &str = "hone-human-key/1";
/// `format` of the `ratings.json` the page saves.
pub const RATINGS_FORMAT: &str = "hone-human-ratings/1";
/// `format` of `human_report.json`.
pub const REPORT_FORMAT: &str = "hone-human-report/1";

/// File names inside a packet folder.
pub const ITEMS_FILE: &str = "items.json";
/// The de-anonymisation key; not for reviewers.
pub const KEY_FILE: &str = "key.json";
/// The rating page.
pub const PAGE_FILE: &str = "index.html";

/// `items.json`: what the rating page shows. Holds no candidate names.
///
/// ```json
/// {"format": "hone-human-packet/1", "packet_id": "hp-1f0c…",
///  "criteria": ["accuracy", "completeness", "format"],
///  "items": [{"id": "ex-12", "input": "…", "reference": "…" | null,
///             "outputs": [{"letter": "A", "text": "…"}, {"letter": "B", "text": "…"}]}]}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PacketItems {
    /// [`ITEMS_FORMAT`].
    pub format: String,
    /// Identifies the packet; ratings files carry it back.
    pub packet_id: String,
    /// [`CRITERIA`].
    pub criteria: Vec<String>,
    /// The items, in the order of `outputs.jsonl`.
    pub items: Vec<PacketItem>,
}

/// One test input and its anonymised outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PacketItem {
    /// The example id from `outputs.jsonl`.
    pub id: String,
    /// The user prompt.
    pub input: String,
    /// The gold answer, when the evaluation file has one (shown to help judge accuracy).
    pub reference: Option<String>,
    /// The outputs in letter order ("A", "B", ...), shuffled relative to the candidates.
    pub outputs: Vec<PacketOutput>,
}

/// One anonymised output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PacketOutput {
    /// "A", "B", ...
    pub letter: String,
    /// The model's text.
    pub text: String,
}

/// `key.json`: letter → candidate for each item. Never send it to reviewers.
///
/// ```json
/// {"format": "hone-human-key/1", "packet_id": "hp-1f0c…",
///  "note": "Do not send this file to reviewers: …",
///  "source": "run/outputs.jsonl", "seed": 0, "candidates": ["base", "finetuned"],
///  "items": {"ex-12": {"A": "finetuned", "B": "base"}}}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PacketKey {
    /// [`KEY_FORMAT`].
    pub format: String,
    /// Same as in `items.json`.
    pub packet_id: String,
    /// A reminder that this file must stay with the operator.
    pub note: String,
    /// The `outputs.jsonl` the packet was made from.
    pub source: String,
    /// The seed of the item sample and of the shuffles.
    pub seed: u64,
    /// The candidates in the packet, in the order given (or first seen).
    pub candidates: Vec<String>,
    /// Item id → letter → candidate.
    pub items: BTreeMap<String, BTreeMap<String, String>>,
}

/// The letter of the `i`-th output of an item: "A", "B", ... (at most 26 candidates).
pub fn letter(i: usize) -> String {
    char::from(b'A' + (i % 26) as u8).to_string()
}
