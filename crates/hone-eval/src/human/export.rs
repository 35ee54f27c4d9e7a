//! `hone eval human export`: the blind rating packet.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use sha2::{Digest, Sha256};

use super::{
    letter, read_outputs, OutputRecord, PacketItem, PacketItems, PacketKey, PacketOutput, CRITERIA,
    ITEMS_FILE, ITEMS_FORMAT, KEY_FILE, KEY_FORMAT, PAGE_FILE,
};
use crate::{Error, Result};

/// The rating page; `__HONE_PACKET_JSON__` is replaced by `items.json`.
const PAGE_TEMPLATE: &str = include_str!("../../assets/human.html");
const PAGE_PLACEHOLDER: &str = "__HONE_PACKET_JSON__";

/// What to put in a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOptions {
    /// The candidates to compare, in this order in `key.json`; `None`: every candidate of the
    /// file, in order of first appearance.
    pub candidates: Option<Vec<String>>,
    /// At most this many examples (a seeded sample when the file has more).
    pub n: usize,
    /// Seeds the sample and the per-item shuffles.
    pub seed: u64,
    /// Overwrite a packet folder whose `key.json` belongs to another packet.
    pub force: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            candidates: None,
            n: 50,
            seed: 0,
            force: false,
        }
    }
}

/// What [`export`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSummary {
    /// The packet id.
    pub packet_id: String,
    /// The packet folder.
    pub dir: PathBuf,
    /// Items in the packet.
    pub items: usize,
    /// Examples the outputs file has (for the selected candidates).
    pub available: usize,
    /// The candidates compared.
    pub candidates: Vec<String>,
}

/// Reads `outputs`, builds the packet ([`build_packet`]) and writes `key.json`, `items.json` and
/// `index.html` into `out_dir` (created if needed), each atomically (temporary file + rename).
///
/// Refuses to overwrite a `key.json` of another packet unless `opts.force`: without its key,
/// ratings already sent out could no longer be de-anonymised.
pub fn export(outputs: &Path, out_dir: &Path, opts: &ExportOptions) -> Result<ExportSummary> {
    let records = read_outputs(outputs)?;
    if records.is_empty() {
        return Err(Error::Format {
            path: outputs.to_path_buf(),
            msg: "no outputs in the file".into(),
        });
    }
    let (items, key) = build_packet(&records, &outputs.display().to_string(), opts)?;
    let available = records
        .iter()
        .filter(|r| key.candidates.contains(&r.candidate))
        .map(|r| r.id.as_str())
        .collect::<std::collections::HashSet<_>>()
        .len();

    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let key_path = out_dir.join(KEY_FILE);
    if !opts.force && key_path.exists() {
        let old: Option<PacketKey> = std::fs::read(&key_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        match old {
            Some(old) if old.packet_id == key.packet_id => {}
            Some(old) => {
                return Err(Error::Invalid(format!(
                    "{} already holds packet {}; overwriting its key would make ratings for it \
                     impossible to de-anonymise. Choose another --out, or pass --force",
                    out_dir.display(),
                    old.packet_id
                )))
            }
            None => {
                return Err(Error::Invalid(format!(
                    "{} exists and is not a packet key; choose another --out, or pass --force",
                    key_path.display()
                )))
            }
        }
    }
    let key_json = to_json(&key)?;
    let items_json = to_json(&items)?;
    let page = render_page(&items)?;
    crate::report::write_atomic(&key_path, key_json.as_bytes())?;
    crate::report::write_atomic(&out_dir.join(ITEMS_FILE), items_json.as_bytes())?;
    crate::report::write_atomic(&out_dir.join(PAGE_FILE), page.as_bytes())?;
    Ok(ExportSummary {
        packet_id: items.packet_id.clone(),
        dir: out_dir.to_path_buf(),
        items: items.items.len(),
        available,
        candidates: key.candidates.clone(),
    })
}

/// Builds `items.json` and `key.json` from the records of `outputs.jsonl` (pure; `source` is
/// recorded in the key).
///
/// Errors ([`Error::Invalid`]): fewer than two candidates, more than 26, a requested candidate
/// with no outputs, a duplicate or empty name, `n == 0`, and any example where a selected
/// candidate's output is missing (no line, or `output` null), named by id.
pub fn build_packet(
    records: &[OutputRecord],
    source: &str,
    opts: &ExportOptions,
) -> Result<(PacketItems, PacketKey)> {
    if opts.n == 0 {
        return Err(Error::Invalid("--n must be at least 1".into()));
    }
    let mut all_candidates: Vec<&str> = Vec::new();
    for r in records {
        if !all_candidates.contains(&r.candidate.as_str()) {
            all_candidates.push(&r.candidate);
        }
    }
    let candidates: Vec<String> = match &opts.candidates {
        Some(list) => {
            let mut out: Vec<String> = Vec::new();
            for c in list {
                let c = c.trim();
                if c.is_empty() {
                    return Err(Error::Invalid("an empty candidate name".into()));
                }
                if out.iter().any(|o| o == c) {
                    return Err(Error::Invalid(format!("candidate `{c}` is listed twice")));
                }
                if !all_candidates.contains(&c) {
                    return Err(Error::Invalid(format!(
                        "candidate `{c}` has no outputs in {source} (it has: {})",
                        all_candidates.join(", ")
                    )));
                }
                out.push(c.to_string());
            }
            out
        }
        None => all_candidates.iter().map(|c| c.to_string()).collect(),
    };
    if candidates.len() < 2 {
        return Err(Error::Invalid(format!(
            "blind comparison needs at least 2 candidates, got {} ({})",
            candidates.len(),
            candidates.join(", ")
        )));
    }
    if candidates.len() > 26 {
        return Err(Error::Invalid(format!(
            "at most 26 candidates fit in a packet (Output A–Z), got {}",
            candidates.len()
        )));
    }

    // Examples in order of first appearance, with each selected candidate's record.
    let mut order: Vec<&str> = Vec::new();
    let mut by_id: HashMap<&str, HashMap<&str, &OutputRecord>> = HashMap::new();
    for r in records {
        if !candidates.contains(&r.candidate) {
            continue;
        }
        let entry = by_id.entry(&r.id).or_insert_with(|| {
            order.push(&r.id);
            HashMap::new()
        });
        entry.insert(&r.candidate, r);
    }
    let mut missing: Vec<String> = Vec::new();
    for id in &order {
        let got = &by_id[id];
        for c in &candidates {
            match got.get(c.as_str()) {
                Some(r) if r.output.is_some() => {}
                Some(r) => missing.push(format!(
                    "`{id}` from `{c}` (line {}: output is null)",
                    r.line
                )),
                None => missing.push(format!("`{id}` from `{c}`")),
            }
        }
    }
    if !missing.is_empty() {
        let shown: Vec<&str> = missing.iter().take(5).map(String::as_str).collect();
        return Err(Error::Invalid(format!(
            "{} output(s) missing in {source}: {}{}; every example needs an output from every \
             compared candidate (choose candidates with --candidates)",
            missing.len(),
            shown.join(", "),
            if missing.len() > 5 { ", ..." } else { "" }
        )));
    }

    // A seeded sample of examples, kept in file order.
    let mut chosen: Vec<usize> = (0..order.len()).collect();
    if opts.n < order.len() {
        let mut rng = StdRng::seed_from_u64(opts.seed);
        chosen = rand::seq::index::sample(&mut rng, order.len(), opts.n).into_vec();
        chosen.sort_unstable();
    }

    let mut items = Vec::with_capacity(chosen.len());
    let mut key_items = BTreeMap::new();
    for &i in &chosen {
        let id = order[i];
        let got = &by_id[id];
        let mut perm: Vec<usize> = (0..candidates.len()).collect();
        perm.shuffle(&mut StdRng::seed_from_u64(item_seed(opts.seed, id)));
        let first = got[candidates[0].as_str()];
        let mut outputs = Vec::with_capacity(perm.len());
        let mut letters = BTreeMap::new();
        for (slot, &c) in perm.iter().enumerate() {
            let r = got[candidates[c].as_str()];
            outputs.push(PacketOutput {
                letter: letter(slot),
                text: r.output.clone().unwrap_or_default(),
            });
            letters.insert(letter(slot), candidates[c].clone());
        }
        items.push(PacketItem {
            id: id.to_string(),
            input: first.input.clone(),
            reference: candidates
                .iter()
                .find_map(|c| got[c.as_str()].reference.clone()),
            outputs,
        });
        key_items.insert(id.to_string(), letters);
    }

    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(&items).unwrap_or_default());
    hasher.update(serde_json::to_vec(&key_items).unwrap_or_default());
    let digest = hasher.finalize();
    let packet_id = format!(
        "hp-{}",
        digest[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let items = PacketItems {
        format: ITEMS_FORMAT.into(),
        packet_id: packet_id.clone(),
        criteria: CRITERIA.iter().map(|c| c.to_string()).collect(),
        items,
    };
    let key = PacketKey {
        format: KEY_FORMAT.into(),
        packet_id,
        note: "Do not send this file to reviewers: it maps each item's Output A/B/... back to the \
               candidates and undoes the blinding. Keep it with the packet for \
               `hone eval human import`."
            .into(),
        source: source.to_string(),
        seed: opts.seed,
        candidates,
        items: key_items,
    };
    Ok((items, key))
}

/// The shuffle seed of one item: depends only on the packet seed and the item id, so an item's
/// letters do not change with the sample around it.
fn item_seed(seed: u64, id: &str) -> u64 {
    let mut h = Sha256::new();
    h.update(b"hone-human-shuffle\0");
    h.update(seed.to_le_bytes());
    h.update(id.as_bytes());
    let d = h.finalize();
    u64::from_le_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]])
}

/// The self-contained rating page for `items`: the template with `items.json` embedded in a
/// `<script type="application/json">` (with `<`, `>` and `&` escaped so no text can close it).
pub fn render_page(items: &PacketItems) -> Result<String> {
    let json = serde_json::to_string(items).map_err(|e| Error::Invalid(e.to_string()))?;
    let json = json
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    if !PAGE_TEMPLATE.contains(PAGE_PLACEHOLDER) {
        return Err(Error::Invalid(
            "the page template lost its placeholder".into(),
        ));
    }
    Ok(PAGE_TEMPLATE.replacen(PAGE_PLACEHOLDER, &json, 1))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string_pretty(v)
        .map(|s| s + "\n")
        .map_err(|e| Error::Invalid(e.to_string()))
}
