//! Playbooks: the firm's position on each check, and the flags a review raises where the
//! contract deviates from it.
//!
//! A playbook is a TOML file:
//!
//! ```toml
//! name = "Disclosing party (default)"
//! [checks.nda-1]
//! expected = ["Contradiction", "NotMentioned"]   # labels the firm accepts
//! risk = "medium"                                # low | medium | high: risk of a deviation
//! note = "Marking requirements let unmarked disclosures fall outside protection; ask for ..."
//! ```
//!
//! Checks that are not listed are not checked. The default ([`Playbook::default_disclosing`])
//! is the position of a party that discloses information and wants it protected.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hone_data::nda::{check, check_index, CHECKS};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::types::{CheckResult, Flag, Probs, Risk};

/// ContractNLI's document labels, the only values `expected` may hold.
pub const LABELS: [&str; 3] = ["Entailment", "Contradiction", "NotMentioned"];

/// The built-in playbook of a disclosing party.
const DEFAULT_DISCLOSING: &str = include_str!("../data/playbook-disclosing.toml");

/// The firm's position on one check.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Position {
    /// Labels the firm accepts (ContractNLI's names), in the order the playbook gives them.
    pub expected: Vec<String>,
    /// How much a deviation matters.
    pub risk: Risk,
    /// Why it matters and what to ask for.
    pub note: String,
}

/// A set of positions, keyed by check id (`nda-1` ..).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Playbook {
    pub name: String,
    pub checks: BTreeMap<String, Position>,
}

/// The probability of `label` under `probs` (0 for a label that is not one of the three).
pub fn prob_of(probs: &Probs, label: &str) -> f64 {
    match label {
        "Entailment" => probs.entailment,
        "Contradiction" => probs.contradiction,
        "NotMentioned" => probs.not_mentioned,
        _ => 0.0,
    }
}

impl Playbook {
    /// The built-in playbook for a disclosing party (all 17 checks).
    pub fn default_disclosing() -> Playbook {
        Self::parse(
            DEFAULT_DISCLOSING,
            Path::new("playbook-disclosing.toml (built in)"),
        )
        .expect("the built-in playbook is valid")
    }

    /// Reads and validates a playbook file.
    pub fn load(path: impl AsRef<Path>) -> Result<Playbook> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Parses and validates playbook text; `path` names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Playbook> {
        let err = |msg: String| Error::Playbook {
            path: PathBuf::from(path),
            msg,
        };
        let root: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            err(format!("not valid TOML: {}", e.to_string().trim()))
        })?;

        let mut name = None;
        let mut checks_value = None;
        for (key, value) in &root {
            match key.as_str() {
                "name" => match value.as_str() {
                    Some(s) => name = Some(s.trim().to_string()),
                    None => return Err(err("`name` must be a string".into())),
                },
                "checks" => checks_value = Some(value),
                other => {
                    return Err(err(format!(
                        "unknown key `{other}` (a playbook has `name` and `[checks.nda-N]` tables)"
                    )))
                }
            }
        }
        let name = name.filter(|n| !n.is_empty()).unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "playbook".into())
        });
        let Some(checks_value) = checks_value else {
            return Err(err(
                "no checks: add at least one `[checks.nda-N]` table".into()
            ));
        };
        let Some(table) = checks_value.as_table() else {
            return Err(err(
                "`checks` must be a table of `[checks.nda-N]` tables".into()
            ));
        };
        if table.is_empty() {
            return Err(err(
                "no checks: add at least one `[checks.nda-N]` table".into()
            ));
        }

        let mut checks = BTreeMap::new();
        for (id, value) in table {
            let field = format!("checks.{id}");
            if check(id).is_none() {
                let known: Vec<&str> = CHECKS.iter().map(|c| c.id).collect();
                return Err(err(format!(
                    "{field}: unknown check id `{id}` (the checks are {})",
                    known.join(", ")
                )));
            }
            let Some(t) = value.as_table() else {
                return Err(err(format!(
                    "{field}: must be a table with `expected`, `risk` and `note`"
                )));
            };
            let position = parse_position(&field, t).map_err(err)?;
            checks.insert(id.clone(), position);
        }
        Ok(Playbook { name, checks })
    }

    /// The flags for one document: one per listed check whose label the playbook does not
    /// accept, the highest risk first, then in [`CHECKS`] order. Checks the playbook does not
    /// list, or the review does not have, raise nothing.
    pub fn flags(&self, checks: &BTreeMap<String, CheckResult>) -> Vec<Flag> {
        let mut flags: Vec<(usize, Flag)> = Vec::new();
        for (id, pos) in &self.checks {
            let Some(result) = checks.get(id) else {
                continue;
            };
            if pos.expected.contains(&result.label) {
                continue;
            }
            let quote = if result.label == "NotMentioned" {
                None
            } else {
                result.evidence.first().cloned()
            };
            flags.push((
                check_index(id).unwrap_or(usize::MAX),
                Flag {
                    check: id.clone(),
                    name: check(id).map(|c| c.name.to_string()).unwrap_or_default(),
                    found: result.label.clone(),
                    expected: pos.expected.join(" or "),
                    risk: pos.risk,
                    confidence: prob_of(&result.probs, &result.label),
                    quote,
                    note: pos.note.clone(),
                },
            ));
        }
        flags.sort_by(|a, b| b.1.risk.cmp(&a.1.risk).then(a.0.cmp(&b.0)));
        flags.into_iter().map(|(_, f)| f).collect()
    }
}

/// One `[checks.nda-N]` table; errors name the field.
fn parse_position(field: &str, t: &toml::Table) -> std::result::Result<Position, String> {
    for key in t.keys() {
        if !matches!(key.as_str(), "expected" | "risk" | "note") {
            return Err(format!(
                "{field}: unknown key `{key}` (a check has `expected`, `risk` and `note`)"
            ));
        }
    }
    let labels_hint = LABELS.join(", ");
    let expected = match t.get("expected") {
        None => {
            return Err(format!(
                "{field}.expected: missing (list the labels the firm accepts, from {labels_hint})"
            ))
        }
        Some(toml::Value::String(s)) => vec![s.clone()],
        Some(toml::Value::Array(items)) => {
            let mut labels = Vec::new();
            for item in items {
                match item.as_str() {
                    Some(s) => labels.push(s.to_string()),
                    None => {
                        return Err(format!(
                            "{field}.expected: {item} is not a label (use {labels_hint})"
                        ))
                    }
                }
            }
            labels
        }
        Some(other) => {
            return Err(format!(
                "{field}.expected: must be a list of labels, not {}",
                other.type_str()
            ))
        }
    };
    let mut accepted: Vec<String> = Vec::new();
    for label in expected {
        if !LABELS.contains(&label.as_str()) {
            return Err(format!(
                "{field}.expected: unknown label \"{label}\" (use {labels_hint})"
            ));
        }
        if !accepted.contains(&label) {
            accepted.push(label);
        }
    }
    if accepted.is_empty() {
        return Err(format!(
            "{field}.expected: empty (list at least one of {labels_hint})"
        ));
    }
    let risk = match t.get("risk") {
        None => return Err(format!("{field}.risk: missing (low, medium or high)")),
        Some(v) => match v.as_str() {
            Some("low") => Risk::Low,
            Some("medium") => Risk::Medium,
            Some("high") => Risk::High,
            Some(s) => return Err(format!("{field}.risk: \"{s}\" is not low, medium or high")),
            None => return Err(format!("{field}.risk: {v} is not low, medium or high")),
        },
    };
    let note = match t.get("note") {
        None => String::new(),
        Some(v) => match v.as_str() {
            Some(s) => s.trim().to_string(),
            None => return Err(format!("{field}.note: must be a string")),
        },
    };
    Ok(Position {
        expected: accepted,
        risk,
        note,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_playbook_parses_and_covers_all_17_checks() {
        let p = Playbook::default_disclosing();
        assert_eq!(p.name, "Disclosing party (default)");
        assert_eq!(p.checks.len(), 17);
        for c in &CHECKS {
            let pos = &p.checks[c.id];
            assert!(
                !pos.expected.is_empty() && pos.expected.len() < 3,
                "{}",
                c.id
            );
            assert!(pos.note.len() > 40, "{} needs a note", c.id);
        }
        assert_eq!(p.checks["nda-4"].expected, ["Entailment"]);
        assert_eq!(p.checks["nda-19"].risk, Risk::High);
    }
}
