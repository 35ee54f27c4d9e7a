//! `hone eval human import`: reviewers' ratings, de-anonymised, into a [`HumanReport`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    win_rate, PacketItems, PacketKey, WinRate, CRITERIA, ITEMS_FILE, ITEMS_FORMAT, KEY_FILE,
    KEY_FORMAT, RATINGS_FORMAT, REPORT_FORMAT,
};
use crate::{Error, Result};

/// A packet folder, read back: what reviewers saw and the key.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// The folder.
    pub dir: PathBuf,
    /// `items.json`.
    pub items: PacketItems,
    /// `key.json`.
    pub key: PacketKey,
}

impl Packet {
    /// The candidate behind `letter` of item `item`.
    pub fn candidate(&self, item: &str, letter: &str) -> Option<&str> {
        self.key.items.get(item)?.get(letter).map(String::as_str)
    }
}

/// Reads `items.json` and `key.json` from a packet folder and checks that they belong together:
/// same packet id, and the same items and letters (each letter mapped to a known candidate).
pub fn load_packet(dir: &Path) -> Result<Packet> {
    let items_path = dir.join(ITEMS_FILE);
    let key_path = dir.join(KEY_FILE);
    let items: PacketItems = read_json(&items_path)?;
    let key: PacketKey = read_json(&key_path)?;
    let format_err = |path: &Path, msg: String| Error::Format {
        path: path.to_path_buf(),
        msg,
    };
    if items.format != ITEMS_FORMAT {
        return Err(format_err(
            &items_path,
            format!("format `{}`, expected `{ITEMS_FORMAT}`", items.format),
        ));
    }
    if key.format != KEY_FORMAT {
        return Err(format_err(
            &key_path,
            format!("format `{}`, expected `{KEY_FORMAT}`", key.format),
        ));
    }
    if items.packet_id != key.packet_id {
        return Err(format_err(
            &key_path,
            format!(
                "key of packet {}, but {ITEMS_FILE} is packet {}",
                key.packet_id, items.packet_id
            ),
        ));
    }
    if items.items.len() != key.items.len() {
        return Err(format_err(
            &key_path,
            format!(
                "{} items in the key, {} in {ITEMS_FILE}",
                key.items.len(),
                items.items.len()
            ),
        ));
    }
    for item in &items.items {
        let Some(letters) = key.items.get(&item.id) else {
            return Err(format_err(
                &key_path,
                format!("no entry for item `{}`", item.id),
            ));
        };
        let shown: BTreeSet<&str> = item.outputs.iter().map(|o| o.letter.as_str()).collect();
        let keyed: BTreeSet<&str> = letters.keys().map(String::as_str).collect();
        if shown != keyed {
            return Err(format_err(
                &key_path,
                format!(
                    "item `{}`: letters {keyed:?} in the key, {shown:?} shown",
                    item.id
                ),
            ));
        }
        if let Some(c) = letters.values().find(|c| !key.candidates.contains(c)) {
            return Err(format_err(
                &key_path,
                format!("item `{}`: unknown candidate `{c}`", item.id),
            ));
        }
    }
    Ok(Packet {
        dir: dir.to_path_buf(),
        items,
        key,
    })
}

/// One reviewer's ratings of one output; criteria not rated are `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputRating {
    /// 1–5.
    pub accuracy: Option<u8>,
    /// 1–5.
    pub completeness: Option<u8>,
    /// 1–5.
    pub format: Option<u8>,
    /// The reviewer ticked "critical failure".
    pub critical: bool,
}

impl OutputRating {
    /// The rating of `criterion` (one of [`CRITERIA`]).
    pub fn get(&self, criterion: &str) -> Option<u8> {
        match criterion {
            "accuracy" => self.accuracy,
            "completeness" => self.completeness,
            "format" => self.format,
            _ => None,
        }
    }

    /// The overall score: the mean of the three ratings, `None` unless all three are there.
    pub fn overall(&self) -> Option<f64> {
        let (a, c, f) = (self.accuracy?, self.completeness?, self.format?);
        Some((a as f64 + c as f64 + f as f64) / 3.0)
    }

    /// The criteria not rated.
    pub fn missing(&self) -> Vec<String> {
        CRITERIA
            .iter()
            .filter(|c| self.get(c).is_none())
            .map(|c| c.to_string())
            .collect()
    }
}

/// One reviewer's `ratings.json`, validated against the packet.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewerRatings {
    /// The file.
    pub path: PathBuf,
    /// The reviewer's name (the file name when the file has none).
    pub reviewer: String,
    /// When the page saved it (ISO 8601), if recorded.
    pub saved_at: Option<String>,
    /// Item id → letter → rating.
    pub ratings: BTreeMap<String, BTreeMap<String, OutputRating>>,
}

/// Reads one `ratings.json` saved by the rating page and checks it against `packet`:
///
/// ```json
/// {"format": "hone-human-ratings/1", "packet_id": "hp-1f0c…", "reviewer": "Dana",
///  "saved_at": "2025-01-31T10:02:03.000Z", "items": 50, "outputs_rated": 148,
///  "outputs_total": 150,
///  "ratings": {"ex-12": {"A": {"accuracy": 4, "completeness": 5, "format": 3, "critical": false},
///                        "B": {"accuracy": 2, "completeness": null, "format": 4, "critical": true}}}}
/// ```
///
/// `items`, `outputs_rated` and `outputs_total` are informational and not read back.
///
/// Errors ([`Error::Format`] naming the file; [`Error::Parse`] when it is not JSON): another
/// packet's id, an item id or letter the packet does not have, a rating that is not an integer
/// 1–5, `critical` not a boolean. Ratings left out (or `null`) are allowed and reported as missing by [`import`].
pub fn read_ratings(path: &Path, packet: &Packet) -> Result<ReviewerRatings> {
    let v: Value = read_json(path)?;
    let err = |msg: String| Error::Format {
        path: path.to_path_buf(),
        msg,
    };
    let Value::Object(obj) = v else {
        return Err(err("not a JSON object".into()));
    };
    match obj.get("format") {
        None | Some(Value::Null) => {}
        Some(Value::String(f)) if f == RATINGS_FORMAT => {}
        Some(other) => {
            return Err(err(format!(
                "format {other}, expected \"{RATINGS_FORMAT}\" (a ratings file saved by the page)"
            )))
        }
    }
    let packet_id = match obj.get("packet_id") {
        Some(Value::String(s)) => s.as_str(),
        _ => {
            return Err(err(
                "no `packet_id`: not a ratings file saved by the page".into()
            ))
        }
    };
    if packet_id != packet.items.packet_id {
        return Err(err(format!(
            "ratings for packet {packet_id}, but {} is packet {}",
            packet.dir.display(),
            packet.items.packet_id
        )));
    }
    let reviewer = match obj.get("reviewer") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        None | Some(Value::Null) | Some(Value::String(_)) => path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string()),
        Some(other) => return Err(err(format!("`reviewer` must be a string, got {other}"))),
    };
    let saved_at = obj
        .get("saved_at")
        .and_then(Value::as_str)
        .map(String::from);
    let mut ratings = BTreeMap::new();
    let items = match obj.get("ratings") {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => return Err(err(format!("`ratings` must be an object, got {other}"))),
    };
    for (item, letters) in &items {
        let Some(keyed) = packet.key.items.get(item) else {
            return Err(err(format!("unknown item `{item}`: not in this packet")));
        };
        let letters = match letters {
            Value::Object(m) => m,
            Value::Null => continue,
            other => {
                return Err(err(format!(
                    "item `{item}`: ratings must be an object by letter, got {other}"
                )))
            }
        };
        let mut by_letter = BTreeMap::new();
        for (letter, r) in letters {
            if !keyed.contains_key(letter) {
                return Err(err(format!(
                    "item `{item}`: unknown letter `{letter}` (the item has {})",
                    keyed.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
            let r = match r {
                Value::Object(m) => m,
                Value::Null => continue,
                other => {
                    return Err(err(format!(
                        "item `{item}`, Output {letter}: must be an object, got {other}"
                    )))
                }
            };
            let score = |criterion: &str| -> Result<Option<u8>> {
                match r.get(criterion) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::Number(n)) => match n.as_f64() {
                        Some(x) if x.fract() == 0.0 && (1.0..=5.0).contains(&x) => {
                            Ok(Some(x as u8))
                        }
                        _ => Err(err(format!(
                            "item `{item}`, Output {letter}: `{criterion}` is {n}, ratings are 1–5"
                        ))),
                    },
                    Some(other) => Err(err(format!(
                        "item `{item}`, Output {letter}: `{criterion}` is {other}, ratings are 1–5"
                    ))),
                }
            };
            let critical = match r.get("critical") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(other) => {
                    return Err(err(format!(
                    "item `{item}`, Output {letter}: `critical` must be true or false, got {other}"
                )))
                }
            };
            by_letter.insert(
                letter.clone(),
                OutputRating {
                    accuracy: score("accuracy")?,
                    completeness: score("completeness")?,
                    format: score("format")?,
                    critical,
                },
            );
        }
        ratings.insert(item.clone(), by_letter);
    }
    Ok(ReviewerRatings {
        path: path.to_path_buf(),
        reviewer,
        saved_at,
        ratings,
    })
}

/// A mean rating and how many ratings it is over.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Mean {
    /// `None` when `n` is 0.
    pub mean: Option<f64>,
    /// Number of ratings.
    pub n: usize,
}

impl Mean {
    fn of(sum: f64, n: usize) -> Self {
        Self {
            mean: (n > 0).then(|| sum / n as f64),
            n,
        }
    }
}

/// One candidate's ratings, over all items and reviewers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateScores {
    /// The candidate.
    pub candidate: String,
    /// Mean accuracy rating.
    pub accuracy: Mean,
    /// Mean completeness rating.
    pub completeness: Mean,
    /// Mean format rating.
    pub format: Mean,
    /// Mean overall score (over outputs with all three ratings).
    pub overall: Mean,
    /// Number of (item, reviewer) ratings with "critical failure" ticked.
    pub critical_failures: usize,
    /// The items with at least one critical-failure flag.
    pub critical_items: Vec<String>,
}

/// One output a reviewer did not fully rate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingRating {
    /// The reviewer.
    pub reviewer: String,
    /// The item id.
    pub item: String,
    /// The letter the reviewer saw.
    pub letter: String,
    /// The candidate behind it.
    pub candidate: String,
    /// The criteria without a rating.
    pub criteria: Vec<String>,
}

/// How complete the ratings are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingSummary {
    /// reviewers × items × outputs per item.
    pub expected: usize,
    /// Outputs with all three ratings.
    pub complete: usize,
    /// Outputs missing at least one rating (`expected - complete`).
    pub incomplete: usize,
    /// Each incomplete output.
    pub details: Vec<MissingRating>,
}

/// `human_report.json`.
///
/// ```json
/// {"format": "hone-human-report/1", "packet_id": "hp-…", "items": 50,
///  "reviewers": ["Dana", "Lee"], "candidates": ["base", "finetuned"],
///  "ci_method": "wilson", "confidence": 0.95,
///  "scores": [{"candidate": "base", "accuracy": {"mean": 3.1, "n": 100}, "completeness": {…},
///              "format": {…}, "overall": {…}, "critical_failures": 2, "critical_items": ["ex-4"]}],
///  "win_rates": [{"candidate": "finetuned", "opponent": "base", "wins": 61, "ties": 12,
///                 "losses": 27, "comparisons": 100, "win_rate": 0.67,
///                 "ci_low": 0.57, "ci_high": 0.75}],
///  "missing": {"expected": 200, "complete": 198, "incomplete": 2, "details": [{"reviewer": "Lee",
///              "item": "ex-9", "letter": "B", "candidate": "base", "criteria": ["format"]}]}}
/// ```
///
/// `win_rates` has every ordered pair of candidates (X over Y and Y over X).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HumanReport {
    /// [`REPORT_FORMAT`].
    pub format: String,
    /// The packet rated.
    pub packet_id: String,
    /// Items in the packet.
    pub items: usize,
    /// Reviewers, in the order their files were given.
    pub reviewers: Vec<String>,
    /// Candidates, in the key's order.
    pub candidates: Vec<String>,
    /// How intervals are computed: "wilson" (see the module docs).
    pub ci_method: String,
    /// The intervals' confidence level, 0.95.
    pub confidence: f64,
    /// Per candidate, in `candidates` order.
    pub scores: Vec<CandidateScores>,
    /// Every ordered pair of candidates.
    pub win_rates: Vec<WinRate>,
    /// Ratings left out.
    pub missing: MissingSummary,
}

impl HumanReport {
    /// Reads a `human_report.json`.
    pub fn load(path: &Path) -> Result<Self> {
        let r: Self = read_json(path)?;
        if r.format != REPORT_FORMAT {
            return Err(Error::Format {
                path: path.to_path_buf(),
                msg: format!("format `{}`, expected `{REPORT_FORMAT}`", r.format),
            });
        }
        Ok(r)
    }

    /// Writes the report as pretty JSON, atomically (temporary file + rename), creating the
    /// folder if needed.
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let json = serde_json::to_string_pretty(self).map_err(|e| Error::Invalid(e.to_string()))?;
        crate::report::write_atomic(path, (json + "\n").as_bytes())
    }

    /// The win rate of `candidate` over `opponent`.
    pub fn win(&self, candidate: &str, opponent: &str) -> Option<&WinRate> {
        self.win_rates
            .iter()
            .find(|w| w.candidate == candidate && w.opponent == opponent)
    }

    /// The scores of `candidate`.
    pub fn scores_of(&self, candidate: &str) -> Option<&CandidateScores> {
        self.scores.iter().find(|s| s.candidate == candidate)
    }
}

/// Reads the packet in `packet_dir` and each ratings file, and computes the report.
///
/// Errors: everything [`load_packet`] and [`read_ratings`] reject, no ratings files, and the same
/// reviewer name in two files (importing a reviewer twice would count their ratings twice).
pub fn import(packet_dir: &Path, ratings: &[PathBuf]) -> Result<HumanReport> {
    if ratings.is_empty() {
        return Err(Error::Invalid("no ratings files to import".into()));
    }
    let packet = load_packet(packet_dir)?;
    let mut all: Vec<ReviewerRatings> = Vec::with_capacity(ratings.len());
    for path in ratings {
        let r = read_ratings(path, &packet)?;
        if let Some(prev) = all.iter().find(|p| p.reviewer == r.reviewer) {
            return Err(Error::Invalid(format!(
                "reviewer `{}` is in both {} and {}: import one file per reviewer (the latest)",
                r.reviewer,
                prev.path.display(),
                path.display()
            )));
        }
        all.push(r);
    }
    Ok(compute_report(&packet, &all))
}

/// The report for `packet` from already-validated ratings (see the module docs for the method).
pub fn compute_report(packet: &Packet, reviewers: &[ReviewerRatings]) -> HumanReport {
    let candidates = packet.key.candidates.clone();
    let idx: HashMap<&str, usize> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let k = candidates.len();
    // Per candidate: (sum, n) per criterion, overall (sum, n), critical count and items.
    let mut sums = vec![[(0.0f64, 0usize); 4]; k];
    let mut critical = vec![0usize; k];
    let mut critical_items: Vec<BTreeSet<String>> = vec![BTreeSet::new(); k];
    // (reviewer, item) → overall score per candidate.
    let mut overall: Vec<Vec<Option<f64>>> = Vec::new();
    let mut missing = Vec::new();
    let mut expected = 0;
    let none = OutputRating::default();
    for rv in reviewers {
        for item in &packet.items.items {
            let mut row = vec![None; k];
            let given = rv.ratings.get(&item.id);
            for out in &item.outputs {
                expected += 1;
                let Some(cand) = packet.candidate(&item.id, &out.letter) else {
                    continue;
                };
                let ci = idx[cand];
                let r = given.and_then(|g| g.get(&out.letter)).unwrap_or(&none);
                for (j, criterion) in CRITERIA.iter().enumerate() {
                    if let Some(v) = r.get(criterion) {
                        sums[ci][j].0 += v as f64;
                        sums[ci][j].1 += 1;
                    }
                }
                if r.critical {
                    critical[ci] += 1;
                    critical_items[ci].insert(item.id.clone());
                }
                match r.overall() {
                    Some(s) => {
                        sums[ci][3].0 += s;
                        sums[ci][3].1 += 1;
                        row[ci] = Some(s);
                    }
                    None => missing.push(MissingRating {
                        reviewer: rv.reviewer.clone(),
                        item: item.id.clone(),
                        letter: out.letter.clone(),
                        candidate: cand.to_string(),
                        criteria: r.missing(),
                    }),
                }
            }
            overall.push(row);
        }
    }
    let scores = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| CandidateScores {
            candidate: c.clone(),
            accuracy: Mean::of(sums[i][0].0, sums[i][0].1),
            completeness: Mean::of(sums[i][1].0, sums[i][1].1),
            format: Mean::of(sums[i][2].0, sums[i][2].1),
            overall: Mean::of(sums[i][3].0, sums[i][3].1),
            critical_failures: critical[i],
            critical_items: critical_items[i].iter().cloned().collect(),
        })
        .collect();
    let mut win_rates = Vec::new();
    for (i, x) in candidates.iter().enumerate() {
        for (j, y) in candidates.iter().enumerate() {
            if i == j {
                continue;
            }
            let pairs: Vec<(f64, f64)> = overall
                .iter()
                .filter_map(|row| Some((row[i]?, row[j]?)))
                .collect();
            win_rates.push(win_rate(x, y, &pairs));
        }
    }
    let complete = expected - missing.len();
    HumanReport {
        format: REPORT_FORMAT.into(),
        packet_id: packet.items.packet_id.clone(),
        items: packet.items.items.len(),
        reviewers: reviewers.iter().map(|r| r.reviewer.clone()).collect(),
        candidates,
        ci_method: "wilson".into(),
        confidence: 0.95,
        scores,
        win_rates,
        missing: MissingSummary {
            expected,
            complete,
            incomplete: missing.len(),
            details: missing,
        },
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Parse {
        path: path.to_path_buf(),
        line: e.line(),
        msg: e.to_string(),
    })
}
