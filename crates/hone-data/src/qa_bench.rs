//! `hone bench qa`: how well `hone data qa` finds what real data sets contain, on real text.
//!
//! The base set is clauses of the ContractNLI NDAs (8-60 words), each as a chat example
//! ("Classify this NDA clause: ..." answered with the hypothesis it is evidence for, or
//! `none`), kept only when no 4-word shingle set of an earlier kept clause overlaps it at
//! Jaccard 0.3 or more, so that the base holds no near-duplicates of its own. Planted in it:
//!
//! - **edits** (near-duplicates, same answer): case and punctuation, hyphenation, a number
//!   written out or twice (`two (2)`), an article or `shall` inserted, a British spelling, one
//!   word deleted, one word replaced;
//! - **minimal pairs** that must not be flagged (their answers differ): `not` inserted after
//!   a modal, or a number changed;
//! - **templates**: a short clause with one slot filled seven ways (same answer).
//!
//! Scores: near-duplicate precision over every pair of lines the report puts in one group (a
//! pair is right when both lines come from one planted edit or template family) and recall
//! over the planted edit pairs; template recall (a template is found when one over-represented
//! group holds all its lines) and precision (groups that are a planted template); and the
//! minimal pairs flagged as near-duplicates or contradictions (should be none).

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::contractnli::official::Dataset;
use crate::hash::Rng;
use crate::minhash::shingles;
use crate::normalize;
use crate::qa::Findings;

/// How many of each to plant.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub seed: u64,
    /// Clean base examples (at most what the data has).
    pub base: usize,
    /// Edited copies (near-duplicate pairs).
    pub edits: usize,
    /// Minimal pairs whose answers differ.
    pub minimal_pairs: usize,
    /// Templates of seven prompts each.
    pub templates: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            seed: 24,
            base: 2000,
            edits: 400,
            minimal_pairs: 150,
            templates: 40,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Edit,
    MinimalPair,
    Template,
}

/// The data set with its planted problems: `family[i]` of line `i + 1` (None: a clean line).
pub struct Planted {
    pub lines: Vec<String>,
    pub family: Vec<Option<(Kind, u32)>>,
    /// The edit kind of each edit family, for the per-kind recall.
    pub edit_kinds: HashMap<u32, &'static str>,
}

const PREFIX: &str = "Classify this NDA clause:";
const TEMPLATE_SIZE: usize = 7;

fn chat(clause: &str, answer: &str) -> String {
    serde_json::json!({"messages": [
        {"role": "user", "content": format!("{PREFIX} {clause}")},
        {"role": "assistant", "content": answer}]})
    .to_string()
}

/// The clauses of the data set with their answers, distinct from each other.
fn base_clauses(ds: &Dataset, want: usize, rng: &mut Rng) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = Vec::new();
    for doc in &ds.documents {
        let Ok(texts) = doc.span_texts() else {
            continue;
        };
        let ann = doc.annotation_sets.first();
        for (k, t) in texts.into_iter().enumerate() {
            let n = t.split_whitespace().count();
            if !(8..=60).contains(&n) {
                continue;
            }
            let label = ann
                .and_then(|a| {
                    a.annotations
                        .iter()
                        .find(|(_, v)| v.spans.contains(&k) && v.choice != "NotMentioned")
                        .map(|(h, v)| format!("{h}: {}", v.choice))
                })
                .unwrap_or_else(|| "none".into());
            all.push((t.split_whitespace().collect::<Vec<_>>().join(" "), label));
        }
    }
    rng.shuffle(&mut all);
    // Greedy: keep a clause unless it overlaps a kept one (4-word shingles, Jaccard >= 0.3),
    // found through an index of the kept clauses' shingles.
    let mut kept: Vec<(String, String)> = Vec::new();
    let mut sets: Vec<Vec<u64>> = Vec::new();
    let mut index: HashMap<u64, Vec<u32>> = HashMap::new();
    for (t, label) in all {
        if kept.len() == want {
            break;
        }
        let sh: Vec<u64> = {
            let s: HashSet<u64> = shingles(&normalize::word_hashes(&t), 4)
                .into_iter()
                .collect();
            s.into_iter().collect()
        };
        let mut shared: HashMap<u32, usize> = HashMap::new();
        for g in &sh {
            for &k in index.get(g).map(Vec::as_slice).unwrap_or(&[]) {
                *shared.entry(k).or_default() += 1;
            }
        }
        let close = shared.iter().any(|(&k, &c)| {
            let other = sets[k as usize].len();
            c as f64 / (sh.len() + other - c) as f64 >= 0.3
        });
        if close {
            continue;
        }
        let id = kept.len() as u32;
        for &g in &sh {
            index.entry(g).or_default().push(id);
        }
        sets.push(sh);
        kept.push((t, label));
    }
    kept
}

const NUMBER_WORDS: [&str; 11] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
];
const BRITISH: [(&str, &str); 8] = [
    ("authorized", "authorised"),
    ("organization", "organisation"),
    ("license", "licence"),
    ("defense", "defence"),
    ("recognize", "recognise"),
    ("behavior", "behaviour"),
    ("favor", "favour"),
    ("judgment", "judgement"),
];
const MODALS: [&str; 6] = ["may", "shall", "will", "must", "can", "should"];

fn is_plain_word(w: &str) -> bool {
    w.len() > 3 && w.chars().all(|c| c.is_ascii_lowercase())
}

/// Kinds of edits that keep what a clause says.
const EDITS: usize = 7;

/// An edited copy of `t` that says the same, with the name of edit `kind` (0..EDITS); None
/// when that kind does not apply to `t`.
fn edit(t: &str, kind: usize, vocab: &[String], rng: &mut Rng) -> Option<(String, &'static str)> {
    let mut w: Vec<String> = t.split_whitespace().map(String::from).collect();
    let plain: Vec<usize> = (1..w.len()).filter(|&i| is_plain_word(&w[i])).collect();
    match kind {
        0 => {
            for x in w.iter_mut() {
                if rng.chance(0.3) {
                    *x = x.to_uppercase();
                }
            }
            let mut s = w.join(" ");
            s = s.trim_end_matches(['.', ';', ',', ':']).to_string();
            s.push('!');
            Some((s, "case and punctuation"))
        }
        1 if w.len() > 4 => {
            let i = 1 + rng.below(w.len() - 2);
            let next = w.remove(i + 1);
            w[i] = format!("{}-{next}", w[i]);
            Some((w.join(" "), "hyphenation"))
        }
        2 => {
            // `two (2)` given once, `two` given twice, or `2` written out.
            for i in 0..w.len() {
                let digits = |x: &str| x.trim_matches(|c: char| !c.is_ascii_digit()).to_string();
                if let Some(d) = NUMBER_WORDS
                    .iter()
                    .position(|n| w[i].eq_ignore_ascii_case(n))
                {
                    if w.get(i + 1)
                        .is_some_and(|n| n.starts_with('(') && digits(n) == d.to_string())
                    {
                        w.remove(i + 1);
                        return Some((w.join(" "), "number given once"));
                    }
                    w[i] = format!("{} ({d})", w[i]);
                    return Some((w.join(" "), "number given twice"));
                }
                if let Ok(d) = w[i].parse::<usize>() {
                    if d <= 10 {
                        w[i] = NUMBER_WORDS[d].to_string();
                        return Some((w.join(" "), "number written out"));
                    }
                }
            }
            None
        }
        3 if !plain.is_empty() => {
            let i = *rng.pick(&plain);
            let word = if rng.chance(0.5) { "the" } else { "shall" };
            w.insert(i, word.into());
            Some((w.join(" "), "article or shall inserted"))
        }
        4 => {
            for x in w.iter_mut() {
                if let Some((a, b)) = BRITISH.iter().find(|(a, _)| x.starts_with(a)) {
                    *x = x.replacen(a, b, 1);
                    return Some((w.join(" "), "British spelling"));
                }
            }
            None
        }
        5 if plain.len() > 2 => {
            let i = *rng.pick(&plain);
            w.remove(i);
            Some((w.join(" "), "one word deleted"))
        }
        6 if !plain.is_empty() => {
            let i = *rng.pick(&plain);
            let mut r = rng.pick(vocab).clone();
            while r == w[i] {
                r = rng.pick(vocab).clone();
            }
            w[i] = r;
            Some((w.join(" "), "one word replaced"))
        }
        _ => None,
    }
}

/// A copy of `t` that says something else (`not` after a modal, or another number).
fn flip(t: &str, rng: &mut Rng) -> Option<String> {
    let mut w: Vec<String> = t.split_whitespace().map(String::from).collect();
    if let Some(i) = w
        .iter()
        .position(|x| MODALS.contains(&x.to_lowercase().as_str()))
    {
        if w.get(i + 1).is_some_and(|n| n != "not") {
            w.insert(i + 1, "not".into());
            return Some(w.join(" "));
        }
    }
    for x in w.iter_mut() {
        if let Ok(d) = x.trim_matches(|c: char| !c.is_ascii_digit()).parse::<u32>() {
            let other = d + 1 + rng.below(9) as u32;
            *x = x.replacen(&d.to_string(), &other.to_string(), 1);
            return Some(w.join(" "));
        }
    }
    None
}

/// Builds the benchmark's data set.
pub fn build(ds: &Dataset, opts: &BenchOptions) -> Planted {
    let mut rng = Rng::new(opts.seed);
    let base = base_clauses(
        ds,
        opts.base + 4 * (opts.edits + opts.minimal_pairs + opts.templates),
        &mut rng,
    );
    let vocab: Vec<String> = {
        let mut v: Vec<String> = base
            .iter()
            .flat_map(|(t, _)| t.split_whitespace())
            .filter(|w| is_plain_word(w))
            .map(String::from)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        v.sort();
        v
    };
    let mut p = Planted {
        lines: Vec::new(),
        family: Vec::new(),
        edit_kinds: HashMap::new(),
    };
    let mut fam = 0u32;
    let mut it = base.into_iter();
    // Clean lines.
    for (t, a) in it.by_ref().take(opts.base) {
        p.lines.push(chat(&t, &a));
        p.family.push(None);
    }
    // Edits: the original and its copy, the copy somewhere later in the file. Kinds take
    // turns; each takes the next clause of the pool it applies to (numbers and British
    // spellings are rare), and a clause no kind applies to is left out.
    let mut pending: Vec<(String, Option<(Kind, u32)>)> = Vec::new();
    let pool: Vec<(String, String)> = it.by_ref().take(4 * opts.edits).collect();
    let mut taken = vec![false; pool.len()];
    for e in 0..opts.edits {
        let pick = (0..pool.len())
            .filter(|&k| !taken[k])
            .find_map(|k| edit(&pool[k].0, e % EDITS, &vocab, &mut rng).map(|x| (k, x)));
        let Some((k, (copy, kind))) = pick else {
            continue;
        };
        taken[k] = true;
        fam += 1;
        p.edit_kinds.insert(fam, kind);
        let (t, a) = &pool[k];
        p.lines.push(chat(t, a));
        p.family.push(Some((Kind::Edit, fam)));
        pending.push((chat(&copy, a), Some((Kind::Edit, fam))));
    }
    let rest: Vec<(String, String)> = it.collect();
    let mut used = vec![false; rest.len()];
    // Templates: short clauses, one plain word as the slot.
    let mut made = 0;
    for (k, (t, a)) in rest.iter().enumerate() {
        if made == opts.templates {
            break;
        }
        let w: Vec<&str> = t.split_whitespace().collect();
        let slots: Vec<usize> = (1..w.len()).filter(|&i| is_plain_word(w[i])).collect();
        if w.len() > 30 || slots.is_empty() {
            continue;
        }
        used[k] = true;
        fam += 1;
        made += 1;
        let slot = *rng.pick(&slots);
        let mut fills: HashSet<String> = HashSet::new();
        while fills.len() < TEMPLATE_SIZE {
            fills.insert(rng.pick(&vocab).clone());
        }
        let mut fills: Vec<String> = fills.into_iter().collect();
        fills.sort();
        for f in fills {
            let mut v: Vec<&str> = w.clone();
            v[slot] = &f;
            pending.push((chat(&v.join(" "), a), Some((Kind::Template, fam))));
        }
    }
    // Minimal pairs.
    let mut made = 0;
    for (k, (t, a)) in rest.iter().enumerate() {
        if made == opts.minimal_pairs {
            break;
        }
        if used[k] {
            continue;
        }
        let Some(f) = flip(t, &mut rng) else {
            continue;
        };
        fam += 1;
        made += 1;
        p.lines.push(chat(t, a));
        p.family.push(Some((Kind::MinimalPair, fam)));
        pending.push((
            chat(&f, &format!("not ({a})")),
            Some((Kind::MinimalPair, fam)),
        ));
    }
    rng.shuffle(&mut pending);
    for (l, f) in pending {
        p.lines.push(l);
        p.family.push(f);
    }
    p
}

/// Precision and recall of one check.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Score {
    pub found: usize,
    pub planted: usize,
    pub reported: usize,
    pub correct: usize,
    pub recall: f64,
    pub precision: f64,
}

impl Score {
    fn finish(mut self) -> Self {
        self.recall = self.found as f64 / self.planted.max(1) as f64;
        self.precision = if self.reported == 0 {
            1.0
        } else {
            self.correct as f64 / self.reported as f64
        };
        self
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub lines: usize,
    pub near_duplicates: Score,
    /// Recall of edit pairs per kind of edit: (kind, found, planted).
    pub near_duplicate_recall_by_edit: Vec<(String, usize, usize)>,
    pub templates: Score,
    /// Minimal pairs (answers meant to differ) flagged as near-duplicates or contradictions.
    pub minimal_pairs_flagged: usize,
    pub minimal_pairs: usize,
}

/// Scores a QA report on the planted data set.
pub fn score(p: &Planted, f: &Findings) -> BenchReport {
    let fam = |l: usize| p.family[l - 1];
    // Near-duplicates: every pair in a group.
    let mut near = Score::default();
    let mut found_pairs: HashSet<u32> = HashSet::new();
    let mut flagged_minimal: HashSet<u32> = HashSet::new();
    for g in &f.near_duplicates {
        for (k, &a) in g.lines.iter().enumerate() {
            for &b in &g.lines[k + 1..] {
                near.reported += 1;
                match (fam(a), fam(b)) {
                    (Some((ka, x)), Some((_, y))) if x == y => {
                        if ka == Kind::MinimalPair {
                            flagged_minimal.insert(x);
                        } else {
                            near.correct += 1;
                            if ka == Kind::Edit {
                                found_pairs.insert(x);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    for g in &f.contradictions {
        for &l in &g.lines {
            if let Some((Kind::MinimalPair, x)) = fam(l) {
                if g.lines.iter().any(|&o| o != l && fam(o) == fam(l)) {
                    flagged_minimal.insert(x);
                }
            }
        }
    }
    near.planted = p.edit_kinds.len();
    near.found = found_pairs.len();
    let mut by_kind: HashMap<&str, (usize, usize)> = HashMap::new();
    for (id, kind) in &p.edit_kinds {
        let e = by_kind.entry(kind).or_default();
        e.1 += 1;
        if found_pairs.contains(id) {
            e.0 += 1;
        }
    }
    let mut by_kind: Vec<(String, usize, usize)> = by_kind
        .into_iter()
        .map(|(k, (a, b))| (k.to_string(), a, b))
        .collect();
    by_kind.sort();

    // Templates: a group holding all of a template's lines finds it; a group whose lines are
    // mostly (80%) of one template is a correct report.
    let mut members: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, f) in p.family.iter().enumerate() {
        if let Some((Kind::Template, x)) = f {
            members.entry(*x).or_default().push(i + 1);
        }
    }
    let mut tpl = Score {
        planted: members.len(),
        reported: f.overrepresented.len(),
        ..Score::default()
    };
    for lines in members.values() {
        if f.overrepresented
            .iter()
            .any(|g| lines.iter().all(|l| g.lines.contains(l)))
        {
            tpl.found += 1;
        }
    }
    for g in &f.overrepresented {
        let mut count: HashMap<u32, usize> = HashMap::new();
        for &l in &g.lines {
            if let Some((Kind::Template, x)) = fam(l) {
                *count.entry(x).or_default() += 1;
            }
        }
        if count.values().any(|&c| c * 5 >= g.lines.len() * 4) {
            tpl.correct += 1;
        }
    }
    let minimal = p
        .family
        .iter()
        .filter_map(|f| match f {
            Some((Kind::MinimalPair, x)) => Some(*x),
            _ => None,
        })
        .collect::<HashSet<_>>()
        .len();
    BenchReport {
        lines: p.lines.len(),
        near_duplicates: near.finish(),
        near_duplicate_recall_by_edit: by_kind,
        templates: tpl.finish(),
        minimal_pairs_flagged: flagged_minimal.len(),
        minimal_pairs: minimal,
    }
}

/// A data set of `n` examples for the speed benchmark: the planted set's lines, repeated with
/// one word replaced in each copy (so copies are near-duplicates, as in real data).
pub fn scaled(p: &Planted, n: usize, seed: u64) -> Vec<String> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(n);
    let mut k = 0usize;
    while out.len() < n {
        let l = &p.lines[k % p.lines.len()];
        if k < p.lines.len() {
            out.push(l.clone());
        } else {
            let mut v: serde_json::Value = serde_json::from_str(l).expect("own line");
            if let Some(s) = v["messages"][0]["content"].as_str() {
                let mut w: Vec<String> = s.split_whitespace().map(String::from).collect();
                let i = rng.below(w.len());
                w[i] = format!("{}{}", w[i], rng.below(1000));
                v["messages"][0]["content"] = w.join(" ").into();
            }
            out.push(v.to_string());
        }
        k += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qa::Group;

    fn families(p: &Planted, kind: Kind) -> Vec<Vec<usize>> {
        let mut m: HashMap<u32, Vec<usize>> = HashMap::new();
        for (i, f) in p.family.iter().enumerate() {
            if let Some((k, x)) = f {
                if *k == kind {
                    m.entry(*x).or_default().push(i + 1);
                }
            }
        }
        let mut v: Vec<Vec<usize>> = m.into_values().collect();
        v.sort();
        v
    }

    fn group(lines: Vec<usize>) -> Group {
        Group {
            lines,
            ..Group::default()
        }
    }

    #[test]
    fn a_perfect_report_scores_one_and_mistakes_cost_precision() {
        let ds = crate::synth::generate(60, 7);
        let opts = BenchOptions {
            seed: 1,
            base: 20,
            edits: 14,
            minimal_pairs: 3,
            templates: 2,
        };
        let p = build(&ds, &opts);
        let edits = families(&p, Kind::Edit);
        let templates = families(&p, Kind::Template);
        let minimal = families(&p, Kind::MinimalPair);
        assert!(edits.len() >= 10, "{} edit pairs", edits.len());
        assert!(edits.iter().all(|f| f.len() == 2));
        assert_eq!(templates.len(), 2);
        assert!(templates.iter().all(|f| f.len() == TEMPLATE_SIZE));
        assert!(minimal.iter().all(|f| f.len() == 2));
        assert_eq!(p.lines.len(), p.family.len());

        let mut f = Findings {
            near_duplicates: edits.iter().cloned().map(group).collect(),
            overrepresented: templates.iter().cloned().map(group).collect(),
            ..Findings::default()
        };
        let r = score(&p, &f);
        assert_eq!(r.near_duplicates.found, edits.len());
        assert_eq!(
            (r.near_duplicates.recall, r.near_duplicates.precision),
            (1.0, 1.0)
        );
        assert_eq!((r.templates.recall, r.templates.precision), (1.0, 1.0));
        assert_eq!(r.minimal_pairs_flagged, 0);

        // One edit missed, two clean lines paired, a minimal pair flagged, a template split.
        f.near_duplicates.pop();
        f.near_duplicates.push(group(vec![1, 2]));
        if let Some(m) = minimal.first() {
            f.contradictions.push(group(m.clone()));
        }
        f.overrepresented[0].lines.truncate(4);
        let r = score(&p, &f);
        assert_eq!(r.near_duplicates.found, edits.len() - 1);
        assert_eq!(r.near_duplicates.reported, edits.len());
        assert_eq!(r.near_duplicates.correct, edits.len() - 1);
        assert_eq!(r.templates.found, 1);
        assert_eq!(r.minimal_pairs_flagged, usize::from(!minimal.is_empty()));
    }
}
