//! `hone data qa`: what is wrong with a data set before it costs a training run.
//!
//! - exact duplicates: identical messages;
//! - near-duplicates: examples whose word shingles (prompt and answer together) have a Jaccard
//!   similarity of at least `threshold`, found with MinHash + LSH; and short prompts one
//!   edited slot apart (`template.rs`) with the same answer and the same negations and
//!   numbers (one changed word removes three of a ten-word prompt's eight shingles). Words
//!   are compared normalized (`normalize.rs`: case, punctuation, numbers written out,
//!   articles, inflection, contractions, British spellings);
//! - contradictions: the same or near-same prompt with answers that are not near-same (in a
//!   cluster above the cap, a template, only identical prompts count);
//! - contamination: prompts sharing word n-grams with the prompts of an evaluation file;
//! - over-represented patterns: clusters of near-identical prompts larger than `cap`, and
//!   templates: short prompts that are the same once one slot of a few words is masked
//!   (`template.rs`), shown with the template and cut by `--fix` to a subset that keeps every
//!   answer the cluster has.
//!
//! Prompts leave out system messages, and shingles found in more than half of the first
//! `sample` records (a shared instruction or prompt template) are ignored, so that what
//! differs between examples decides their similarity.
//!
//! Memory: the file is streamed twice. The first pass keeps per record four 64-bit hashes and
//! the LSH band keys (about 300 bytes), and for a short prompt (4-48 words) its masked-slot
//! keys (16 bytes each, about three per word: 1.5 KB for a 30-word prompt) until templates
//! are clustered; the second recomputes signatures only for records that share an LSH bucket
//! or a slot with another one, and keeps them in a compact 16-bit form. A third pass writes
//! the cleaned copy for `--fix`.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::atomic::AtomicFile;
use crate::coverage::Coverage;
use crate::error::{Error, Result};
use crate::example::Example;
use crate::hash::Hasher64;
use crate::minhash::{shingles, Compact, Lsh, RawBins};
use crate::normalize::{self, word_hashes};
use crate::progress::Progress;
use crate::source::{Format, Records};
use crate::template;

#[derive(Clone, Debug)]
pub struct QaOptions {
    /// Jaccard similarity at which two texts count as near-identical.
    pub threshold: f64,
    /// Words per shingle.
    pub shingle: usize,
    /// Largest cluster of near-identical prompts that is not over-represented.
    pub cap: usize,
    /// Words per n-gram for contamination.
    pub ngram: usize,
    /// Share of the shorter prompt's n-grams found in an evaluation prompt that counts as
    /// contamination.
    pub contamination: f64,
    /// Records read to find shingles shared by most examples.
    pub sample: usize,
    /// Shingles in more than this share of the sample are ignored (needs 20 or more records).
    pub common_fraction: f64,
}

impl Default for QaOptions {
    fn default() -> Self {
        Self {
            threshold: 0.7,
            shingle: 3,
            cap: 5,
            ngram: 8,
            contamination: 0.5,
            sample: 2000,
            common_fraction: 0.5,
        }
    }
}

impl QaOptions {
    fn check(&self) -> Result<()> {
        if !(self.threshold > 0.0 && self.threshold <= 1.0) {
            return Err(Error::Invalid(format!(
                "--threshold must be in (0, 1], got {}",
                self.threshold
            )));
        }
        if !(self.contamination > 0.0 && self.contamination <= 1.0) {
            return Err(Error::Invalid(format!(
                "--contamination must be in (0, 1], got {}",
                self.contamination
            )));
        }
        if self.shingle == 0 || self.ngram == 0 {
            return Err(Error::Invalid(
                "--shingle and --ngram must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// A set of lines with one problem. `against`: lines of the evaluation file (contamination).
/// Over-represented clusters also carry their `template` (when found by masking a slot) and
/// the lines `--fix` keeps (`keep`, diverse in their answers).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Group {
    pub lines: Vec<usize>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub against: Vec<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keep: Vec<usize>,
    /// Near-duplicates: each line after the first, its similarity to the first (word edit
    /// similarity of the normalized texts up to 256 words, else estimated Jaccard of their
    /// shingles).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub similarity: Vec<f64>,
}

/// 1 - (word edit distance / the longer length): 0.9 for one word changed in ten.
fn edit_similarity(a: &[u64], b: &[u64]) -> f64 {
    let n = a.len().max(b.len());
    if n == 0 {
        return 1.0;
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, x) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(x != y))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    1.0 - prev[b.len()] as f64 / n as f64
}

/// The problems found: the first five keys of what `--json` prints.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Findings {
    pub exact_duplicates: Vec<Group>,
    pub near_duplicates: Vec<Group>,
    pub contradictions: Vec<Group>,
    pub contamination: Vec<Group>,
    pub overrepresented: Vec<Group>,
}

impl Findings {
    /// Every flagged line.
    pub fn flagged_lines(&self) -> HashSet<usize> {
        [
            &self.exact_duplicates,
            &self.near_duplicates,
            &self.contradictions,
            &self.contamination,
            &self.overrepresented,
        ]
        .iter()
        .flat_map(|gs| gs.iter().flat_map(|g| g.lines.iter().copied()))
        .collect()
    }
}

/// Examples whose answer the base model finds very likely (mean log-probability per answer
/// token above `threshold`): likely generated by a model like it, or memorized from its
/// training data, rather than written for the task. Filled by `hone data qa --model`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Memorization {
    pub model: String,
    pub threshold: f64,
    /// Examples scored (at most `--memorization-sample`, spread over the file).
    pub checked: usize,
    /// (line, mean log-probability per answer token), most likely first.
    pub flagged: Vec<(usize, f64)>,
}

/// What `--json` prints: the five kinds of findings, the edge-case coverage and, when
/// checked, memorization.
#[derive(Serialize)]
pub struct JsonReport<'a> {
    #[serde(flatten)]
    pub findings: &'a Findings,
    pub coverage: &'a Coverage,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memorization: Option<&'a Memorization>,
}

#[derive(Clone, Debug, Default)]
pub struct QaReport {
    pub findings: Findings,
    /// Edge cases among the answers (refusals, unknown, malformed input).
    pub coverage: Coverage,
    pub memorization: Option<Memorization>,
    pub records: usize,
    /// Records that are not valid examples (skipped): count and the first lines.
    pub invalid: usize,
    pub invalid_lines: Vec<usize>,
    /// Lines removed by `--fix`, with the reason.
    pub removed: Vec<(usize, String)>,
}

impl QaReport {
    pub fn to_json(&self) -> JsonReport<'_> {
        JsonReport {
            findings: &self.findings,
            coverage: &self.coverage,
            memorization: self.memorization.as_ref(),
        }
    }

    pub fn to_text(&self, opts: &QaOptions) -> String {
        let f = &self.findings;
        let mut o = String::new();
        let _ = writeln!(
            o,
            "{} records ({} invalid, skipped; run `hone data validate`)",
            self.records, self.invalid
        );
        let sections: [(&str, &Vec<Group>, String); 5] = [
            (
                "exact duplicates",
                &f.exact_duplicates,
                "identical messages".into(),
            ),
            (
                "near-duplicates",
                &f.near_duplicates,
                format!(
                    "Jaccard >= {} over {}-word shingles of normalized words, or short \
                     prompts one slot apart with the same answer",
                    opts.threshold, opts.shingle
                ),
            ),
            (
                "contradictions",
                &f.contradictions,
                "near-same prompt, different answers".into(),
            ),
            (
                "contamination",
                &f.contamination,
                format!(
                    "{}-gram overlap >= {} with the evaluation file",
                    opts.ngram, opts.contamination
                ),
            ),
            (
                "over-represented",
                &f.overrepresented,
                format!(
                    "more than {} near-identical prompts, or prompts of one template",
                    opts.cap
                ),
            ),
        ];
        for (name, groups, what) in sections {
            let lines: usize = groups.iter().map(|g| g.lines.len()).sum();
            let _ = writeln!(
                o,
                "\n{name} ({what}): {} groups, {lines} lines",
                groups.len()
            );
            for g in groups.iter().take(20) {
                let _ = write!(o, "  lines {}", join(&g.lines, 12));
                if !g.against.is_empty() {
                    let _ = write!(o, "  ~ evaluation lines {}", join(&g.against, 12));
                }
                if !g.similarity.is_empty() {
                    let sims: Vec<String> = g
                        .similarity
                        .iter()
                        .take(11)
                        .map(|x| format!("{x:.2}"))
                        .collect();
                    let _ = write!(
                        o,
                        "  (similarity to line {}: {}{})",
                        g.lines[0],
                        sims.join(", "),
                        if g.similarity.len() > 11 { ", ..." } else { "" }
                    );
                }
                if let Some(t) = &g.template {
                    let _ = write!(o, "  template: {t:?}");
                }
                o.push('\n');
            }
            if groups.len() > 20 {
                let _ = writeln!(
                    o,
                    "  ... {} more groups (use --json for all)",
                    groups.len() - 20
                );
            }
        }
        let c = &self.coverage;
        let share = |k: usize| 100.0 * k as f64 / c.examples.max(1) as f64;
        let _ = writeln!(
            o,
            "\nedge cases (answers that are not just an answer): refusals {} ({:.1}%), \
             unknown / not mentioned {} ({:.1}%), malformed input {} ({:.1}%)",
            c.refusal,
            share(c.refusal),
            c.unknown,
            share(c.unknown),
            c.malformed_input,
            share(c.malformed_input)
        );
        for w in &c.warnings {
            let _ = writeln!(o, "  warning: {w}");
        }
        if let Some(m) = &self.memorization {
            let _ = writeln!(
                o,
                "\nlikely memorized or model-generated (mean answer log-probability per token \
                 above {} under {}): {} of {} checked",
                m.threshold,
                m.model,
                m.flagged.len(),
                m.checked
            );
            for (l, lp) in m.flagged.iter().take(20) {
                let _ = writeln!(o, "  line {l}: {lp:.3}");
            }
            if m.flagged.len() > 20 {
                let _ = writeln!(
                    o,
                    "  ... {} more (use --json for all)",
                    m.flagged.len() - 20
                );
            }
        }
        o
    }
}

fn join(xs: &[usize], max: usize) -> String {
    let mut s: Vec<String> = xs.iter().take(max).map(|x| x.to_string()).collect();
    if xs.len() > max {
        s.push(format!("... (+{})", xs.len() - max));
    }
    s.join(", ")
}

/// Per-example texts as QA sees them (the prompt normalized once for all checks).
struct Prepared {
    prompt: String,
    input_words: Vec<u64>,
    output_words: Vec<u64>,
    /// The prompt's negations and numbers (`normalize::marks_of`).
    marks: u64,
}

impl Prepared {
    fn new(ex: &Example) -> Self {
        let prompt = ex.input_text();
        let words = normalize::words(&prompt);
        Self {
            input_words: normalize::hash_words(&words),
            output_words: word_hashes(ex.output_text()),
            marks: normalize::marks_of(&words),
            prompt,
        }
    }
}

fn exact_hash(ex: &Example) -> u64 {
    let mut h = Hasher64::new();
    for m in &ex.messages {
        h.write(m.role.as_bytes());
        h.sep();
        h.write(m.content.as_bytes());
        h.sep();
    }
    h.finish()
}

fn words_hash(words: &[u64]) -> u64 {
    let mut h = Hasher64::new();
    for w in words {
        h.write(&w.to_le_bytes());
    }
    h.finish()
}

/// Shingles minus the common ones (all of them if nothing else is left).
fn filtered(sh: Vec<u64>, common: &HashSet<u64>) -> Vec<u64> {
    if common.is_empty() {
        return sh;
    }
    let f: Vec<u64> = sh.iter().copied().filter(|s| !common.contains(s)).collect();
    if f.is_empty() {
        sh
    } else {
        f
    }
}

struct Common {
    shingles: HashSet<u64>,
    ngrams: HashSet<u64>,
}

fn common_of(path: &Path, format: &Format, opts: &QaOptions) -> Result<Common> {
    let mut df: HashMap<u64, u32> = HashMap::new();
    let mut dfn: HashMap<u64, u32> = HashMap::new();
    let mut n = 0usize;
    let mut recs = Records::open(path, format)?;
    while n < opts.sample {
        let Some(rec) = recs.next_record()? else {
            break;
        };
        let Ok(ex) = rec.parsed else { continue };
        n += 1;
        let w = word_hashes(&ex.input_text());
        for s in shingles(&w, opts.shingle)
            .into_iter()
            .collect::<HashSet<_>>()
        {
            *df.entry(s).or_default() += 1;
        }
        for s in shingles(&w, opts.ngram).into_iter().collect::<HashSet<_>>() {
            *dfn.entry(s).or_default() += 1;
        }
    }
    let keep = |df: HashMap<u64, u32>| -> HashSet<u64> {
        if n < 20 {
            return HashSet::new();
        }
        let min = (opts.common_fraction * n as f64).floor() as u32;
        df.into_iter()
            .filter(|&(_, c)| c > min)
            .map(|(s, _)| s)
            .collect()
    };
    Ok(Common {
        shingles: keep(df),
        ngrams: keep(dfn),
    })
}

/// The evaluation file's prompt n-grams.
struct Against {
    first_line: HashMap<u64, u32>,
    sizes: HashMap<u32, u32>,
}

fn load_against(
    path: &Path,
    format: &Format,
    opts: &QaOptions,
    common: &HashSet<u64>,
) -> Result<Against> {
    let mut per: Vec<(u32, HashSet<u64>)> = Vec::new();
    let mut df: HashMap<u64, u32> = HashMap::new();
    let mut recs = Records::open(path, format)?;
    while let Some(rec) = recs.next_record()? {
        let line = rec.line as u32;
        let ex = rec.into_example(path)?;
        let grams: HashSet<u64> =
            filtered(shingles(&word_hashes(&ex.input_text()), opts.ngram), common)
                .into_iter()
                .collect();
        for &g in &grams {
            *df.entry(g).or_default() += 1;
        }
        per.push((line, grams));
    }
    // N-grams shared by most evaluation prompts (their template) are not evidence of leakage.
    let own_common: HashSet<u64> = if per.len() >= 20 {
        let min = (opts.common_fraction * per.len() as f64).floor() as u32;
        df.into_iter()
            .filter(|&(_, c)| c > min)
            .map(|(g, _)| g)
            .collect()
    } else {
        HashSet::new()
    };
    let mut a = Against {
        first_line: HashMap::new(),
        sizes: HashMap::new(),
    };
    for (line, grams) in per {
        let kept: Vec<u64> = grams
            .iter()
            .copied()
            .filter(|g| !own_common.contains(g))
            .collect();
        let kept = if kept.is_empty() {
            grams.into_iter().collect()
        } else {
            kept
        };
        a.sizes.insert(line, kept.len() as u32);
        for g in kept {
            a.first_line.entry(g).or_insert(line);
        }
    }
    Ok(a)
}

struct UnionFind(Vec<u32>);

impl UnionFind {
    fn new(n: usize) -> Self {
        Self((0..n as u32).collect())
    }
    fn find(&mut self, mut x: u32) -> u32 {
        while self.0[x as usize] != x {
            let p = self.0[self.0[x as usize] as usize];
            self.0[x as usize] = p;
            x = p;
        }
        x
    }
    fn union(&mut self, a: u32, b: u32) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            // The smaller index stays the root: groups read in file order.
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.0[hi as usize] = lo;
        }
    }
    /// Components with more than one member, members in order.
    fn components(&mut self, valid: &[u8]) -> Vec<Vec<u32>> {
        let n = self.0.len();
        let mut size = vec![0u32; n];
        for i in 0..n as u32 {
            if valid[i as usize] & VALID != 0 {
                let r = self.find(i);
                size[r as usize] += 1;
            }
        }
        let mut comps: HashMap<u32, Vec<u32>> = HashMap::new();
        for i in 0..n as u32 {
            if valid[i as usize] & VALID != 0 {
                let r = self.find(i);
                if size[r as usize] > 1 {
                    comps.entry(r).or_default().push(i);
                }
            }
        }
        let mut out: Vec<Vec<u32>> = comps.into_values().collect();
        out.sort_by_key(|c| c[0]);
        out
    }
}

const VALID: u8 = 1;
const INPUT_EMPTY: u8 = 2;
const FULL_EMPTY: u8 = 4;

/// The first record of each run of equal hashes, for every record.
fn representatives(hashes: &[u64], flags: &[u8]) -> Vec<u32> {
    let mut idx: Vec<u32> = (0..hashes.len() as u32)
        .filter(|&i| flags[i as usize] & VALID != 0)
        .collect();
    idx.sort_unstable_by_key(|&i| (hashes[i as usize], i));
    let mut rep: Vec<u32> = (0..hashes.len() as u32).collect();
    let mut start = 0;
    for k in 1..=idx.len() {
        if k == idx.len() || hashes[idx[k] as usize] != hashes[idx[start] as usize] {
            for &i in &idx[start..k] {
                rep[i as usize] = idx[start];
            }
            start = k;
        }
    }
    rep
}

/// LSH buckets with more than one member: for each band, sort (key, record) and keep runs.
struct Runs {
    members: Vec<u32>,
    starts: Vec<usize>,
}

fn bucket_runs(keys: &[u32], bands: usize, include: impl Fn(u32) -> bool) -> Runs {
    let n = keys.len() / bands.max(1);
    let mut runs = Runs {
        members: Vec::new(),
        starts: Vec::new(),
    };
    let mut pairs: Vec<(u32, u32)> = Vec::with_capacity(n);
    for b in 0..bands {
        pairs.clear();
        pairs.extend(
            (0..n as u32)
                .filter(|&i| include(i))
                .map(|i| (keys[i as usize * bands + b], i)),
        );
        pairs.sort_unstable();
        let mut s = 0;
        for k in 1..=pairs.len() {
            if k == pairs.len() || pairs[k].0 != pairs[s].0 {
                if k - s > 1 {
                    runs.starts.push(runs.members.len());
                    runs.members.extend(pairs[s..k].iter().map(|p| p.1));
                }
                s = k;
            }
        }
    }
    runs
}

impl Runs {
    fn iter(&self) -> impl Iterator<Item = &[u32]> {
        (0..self.starts.len()).map(move |r| {
            let end = self
                .starts
                .get(r + 1)
                .copied()
                .unwrap_or(self.members.len());
            &self.members[self.starts[r]..end]
        })
    }
}

/// Verifies bucket members against a few anchors of the bucket and unites the similar ones
/// whose prompts have the same negations and numbers (`marks`).
fn verify(
    runs: &Runs,
    sig: impl Fn(u32) -> Option<Compact>,
    t: f64,
    marks: &[u64],
    uf: &mut UnionFind,
) {
    for run in runs.iter() {
        let mut anchors: Vec<(u32, Compact)> = Vec::new();
        for &m in run {
            let Some(s) = sig(m) else { continue };
            let same = |&(a, ref sa): &(u32, Compact)| {
                marks[a as usize] == marks[m as usize] && sa.similarity(&s) >= t
            };
            match anchors.iter().find(|x| same(x)) {
                Some((a, _)) => uf.union(*a, m),
                None if anchors.len() < 8 => anchors.push((m, s)),
                None => {}
            }
        }
    }
}

/// Distinct answers among records: equal normalized answers, or near-same ones, are one class.
fn answer_classes(members: &[u32], out_norm: &[u64], sigs: &HashMap<u32, Sigs>, t: f64) -> usize {
    let mut classes: Vec<u32> = Vec::new();
    for &i in members {
        let same = classes.iter().any(|&r| {
            out_norm[r as usize] == out_norm[i as usize]
                || match (sigs.get(&r), sigs.get(&i)) {
                    (Some(a), Some(b)) => a.output.similarity(&b.output) >= t,
                    _ => false,
                }
        });
        if !same {
            classes.push(i);
        }
    }
    classes.len()
}

struct Sigs {
    full: Compact,
    input: Compact,
    output: Compact,
}

/// Runs every check. With `fix`, writes the cleaned copy there and the removal log beside it
/// (`<fix>.removed.jsonl`).
pub fn run(
    path: &Path,
    format: &Format,
    against: Option<(&Path, &Format)>,
    opts: &QaOptions,
    fix: Option<&Path>,
    progress: &dyn Progress,
) -> Result<QaReport> {
    opts.check()?;
    let t = opts.threshold;
    let lsh = Lsh::for_threshold(t);
    let common = common_of(path, format, opts)?;
    let against = match against {
        Some((p, f)) => Some(load_against(p, f, opts, &common.ngrams)?),
        None => None,
    };

    // Pass 1: hashes and band keys.
    let mut rep = QaReport::default();
    let mut lines: Vec<u32> = Vec::new();
    let mut flags: Vec<u8> = Vec::new();
    let (mut exact, mut full_norm, mut in_norm, mut out_norm) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut full_keys, mut in_keys): (Vec<u32>, Vec<u32>) = (Vec::new(), Vec::new());
    // (masked-slot key, record) of every short prompt, and each prompt's negations and numbers.
    let mut tpl_keys: Vec<(u64, u32)> = Vec::new();
    let mut marks: Vec<u64> = Vec::new();
    let mut recs = Records::open(path, format)?;
    progress.start("qa: hashing", recs.total_bytes());
    while let Some(rec) = recs.next_record()? {
        rep.records += 1;
        lines.push(rec.line as u32);
        let ex = match rec.parsed {
            Ok(ex) => ex,
            Err(_) => {
                rep.invalid += 1;
                if rep.invalid_lines.len() < 100 {
                    rep.invalid_lines.push(rec.line);
                }
                flags.push(0);
                marks.push(0);
                exact.push(0);
                full_norm.push(0);
                in_norm.push(0);
                out_norm.push(0);
                full_keys.extend(std::iter::repeat_n(0, lsh.bands));
                in_keys.extend(std::iter::repeat_n(0, lsh.bands));
                continue;
            }
        };
        let p = Prepared::new(&ex);
        rep.coverage.add(ex.output_text());
        let idx = lines.len() as u32 - 1;
        tpl_keys.extend(
            template::masked_keys(&p.prompt)
                .into_iter()
                .map(|k| (k, idx)),
        );
        marks.push(p.marks);
        exact.push(exact_hash(&ex));
        let (ih, oh) = (words_hash(&p.input_words), words_hash(&p.output_words));
        in_norm.push(ih);
        out_norm.push(oh);
        full_norm.push(crate::hash::combine(ih, oh));
        let in_raw = RawBins::new(filtered(
            shingles(&p.input_words, opts.shingle),
            &common.shingles,
        ));
        let out_raw = RawBins::new(shingles(&p.output_words, opts.shingle));
        let full = in_raw.union(&out_raw).densify();
        let input = in_raw.densify();
        let mut f = VALID;
        if input.is_empty() {
            f |= INPUT_EMPTY;
        }
        if full.is_empty() {
            f |= FULL_EMPTY;
        }
        flags.push(f);
        full_keys.extend(full.band_keys(lsh));
        in_keys.extend(input.band_keys(lsh));

        if let Some(a) = &against {
            let grams: HashSet<u64> =
                filtered(shingles(&p.input_words, opts.ngram), &common.ngrams)
                    .into_iter()
                    .collect();
            let mut hits: HashMap<u32, u32> = HashMap::new();
            for g in &grams {
                if let Some(&l) = a.first_line.get(g) {
                    *hits.entry(l).or_default() += 1;
                }
            }
            let mut with: Vec<usize> = hits
                .into_iter()
                .filter(|&(l, h)| {
                    let denom = (grams.len() as u32).min(a.sizes[&l]).max(1);
                    h as f64 / denom as f64 >= opts.contamination
                })
                .map(|(l, _)| l as usize)
                .collect();
            if !with.is_empty() {
                with.sort_unstable();
                rep.findings.contamination.push(Group {
                    lines: vec![rec.line],
                    against: with,
                    ..Default::default()
                });
            }
        }
        if rep.records.is_multiple_of(4096) {
            progress.set(recs.bytes_read());
        }
    }
    progress.finish();
    if rep.records == 0 {
        return Err(recs.no_examples());
    }
    rep.coverage.finish();
    let n = lines.len();
    let line = |i: u32| lines[i as usize] as usize;

    // Exact duplicates.
    let exact_rep = representatives(&exact, &flags);
    {
        let mut uf = UnionFind::new(n);
        for i in 0..n as u32 {
            uf.union(i, exact_rep[i as usize]);
        }
        rep.findings.exact_duplicates = uf
            .components(&flags)
            .into_iter()
            .map(|c| Group {
                lines: c.into_iter().map(line).collect(),
                ..Default::default()
            })
            .collect();
    }

    // LSH buckets over representatives of normalized-equal records.
    let full_rep = representatives(&full_norm, &flags);
    let in_rep = representatives(&in_norm, &flags);

    // Templates: prompts one masked slot apart, chained; clusters above the cap with at least
    // two different prompts (copies of one prompt are duplicates, not a template). Short
    // prompts one slot apart with the same answer and the same negations and numbers are
    // also near-duplicates (a one-word edit, which shingles cannot see in a short text).
    let mut slot_pairs: Vec<(u32, u32)> = Vec::new();
    let tpl_clusters: Vec<Vec<u32>> = {
        tpl_keys.sort_unstable();
        let mut uf = UnionFind::new(n);
        let mut s = 0;
        for k in 1..=tpl_keys.len() {
            if k == tpl_keys.len() || tpl_keys[k].0 != tpl_keys[s].0 {
                let run = &tpl_keys[s..k];
                for m in &run[1..] {
                    uf.union(run[0].1, m.1);
                }
                if run.len() > 1 {
                    let mut first: HashMap<(u64, u64), u32> = HashMap::new();
                    for &(_, i) in run {
                        let key = (out_norm[i as usize], marks[i as usize]);
                        let f = *first.entry(key).or_insert(i);
                        if f != i {
                            slot_pairs.push((f, i));
                        }
                    }
                }
                s = k;
            }
        }
        drop(tpl_keys);
        uf.components(&flags)
            .into_iter()
            .filter(|c| {
                c.len() > opts.cap
                    && c.iter()
                        .any(|&i| in_rep[i as usize] != in_rep[c[0] as usize])
            })
            .collect()
    };
    // The first few prompts of each template, read in pass 2 to show the template.
    const SHOWN: usize = 8;
    let mut capture = vec![false; n];
    for c in &tpl_clusters {
        for &i in c.iter().take(SHOWN) {
            capture[i as usize] = true;
        }
    }
    drop(full_norm);
    let full_runs = bucket_runs(&full_keys, lsh.bands, |i| {
        flags[i as usize] & (VALID | FULL_EMPTY) == VALID && full_rep[i as usize] == i
    });
    drop(full_keys);
    let in_runs = bucket_runs(&in_keys, lsh.bands, |i| {
        flags[i as usize] & (VALID | INPUT_EMPTY) == VALID && in_rep[i as usize] == i
    });
    drop(in_keys);
    let mut cand = vec![false; n];
    for &m in full_runs.members.iter().chain(in_runs.members.iter()) {
        cand[m as usize] = true;
    }
    for i in 0..n {
        let r = in_rep[i] as usize;
        if r != i {
            cand[i] = true;
            cand[r] = true;
        }
    }
    for &(a, b) in &slot_pairs {
        cand[a as usize] = true;
        cand[b as usize] = true;
    }

    // Pass 2: signatures of candidates only (and the prompts of templates to show).
    let mut sigs: HashMap<u32, Sigs> = HashMap::new();
    let mut prompts: HashMap<u32, String> = HashMap::new();
    // Normalized words (prompt, then answer) of short candidates, for the similarity shown.
    let mut short_words: HashMap<u32, Vec<u64>> = HashMap::new();
    if cand.iter().chain(&capture).any(|&c| c) {
        let mut recs = Records::open(path, format)?;
        progress.start("qa: comparing", recs.total_bytes());
        let mut i = 0u32;
        while let Some(rec) = recs.next_record()? {
            if capture[i as usize] {
                if let Ok(ex) = &rec.parsed {
                    prompts.insert(i, ex.input_text());
                }
            }
            if cand[i as usize] {
                if let Ok(ex) = rec.parsed {
                    let p = Prepared::new(&ex);
                    if p.input_words.len() + p.output_words.len() <= 256 {
                        let w = p.input_words.iter().chain(&p.output_words).copied();
                        short_words.insert(i, w.collect());
                    }
                    let in_raw = RawBins::new(filtered(
                        shingles(&p.input_words, opts.shingle),
                        &common.shingles,
                    ));
                    let out_raw = RawBins::new(shingles(&p.output_words, opts.shingle));
                    sigs.insert(
                        i,
                        Sigs {
                            full: in_raw.union(&out_raw).densify().compact(),
                            input: in_raw.densify().compact(),
                            output: out_raw.densify().compact(),
                        },
                    );
                }
            }
            i += 1;
            if i.is_multiple_of(4096) {
                progress.set(recs.bytes_read());
            }
        }
        progress.finish();
    }
    drop(cand);

    // Near-duplicates: components over full texts, not made only of exact copies.
    let mut uf_full = UnionFind::new(n);
    for i in 0..n as u32 {
        uf_full.union(i, full_rep[i as usize]);
    }
    for (a, b) in slot_pairs {
        uf_full.union(a, b);
    }
    verify(
        &full_runs,
        |i| sigs.get(&i).map(|s| s.full.clone()),
        t,
        &marks,
        &mut uf_full,
    );
    // Similarity of a member to the group's first line: word edit similarity for short texts,
    // else the MinHash estimate of the Jaccard similarity of their shingles.
    let similarity = |a: u32, b: u32| -> f64 {
        if full_rep[a as usize] == full_rep[b as usize] {
            return 1.0;
        }
        if let (Some(x), Some(y)) = (short_words.get(&a), short_words.get(&b)) {
            return edit_similarity(x, y);
        }
        match (sigs.get(&a), sigs.get(&b)) {
            (Some(x), Some(y)) => x.full.similarity(&y.full),
            _ => 0.0,
        }
    };
    for c in uf_full.components(&flags) {
        let first = exact[c[0] as usize];
        if c.iter().any(|&i| exact[i as usize] != first) {
            let sims = c[1..]
                .iter()
                .map(|&i| (similarity(c[0], i) * 1000.0).round() / 1000.0)
                .collect();
            rep.findings.near_duplicates.push(Group {
                lines: c.into_iter().map(line).collect(),
                similarity: sims,
                ..Default::default()
            });
        }
    }
    drop(uf_full);

    // The lines `--fix` keeps of an over-represented cluster: one of each answer in turn.
    let keep_of = |c: &[u32]| -> Vec<usize> {
        template::diverse_order(c, |i| out_norm[i as usize])
            .into_iter()
            .take(opts.cap)
            .map(line)
            .collect()
    };

    // Prompt clusters: contradictions and over-representation.
    let mut uf_in = UnionFind::new(n);
    for i in 0..n as u32 {
        uf_in.union(i, in_rep[i as usize]);
    }
    verify(
        &in_runs,
        |i| sigs.get(&i).map(|s| s.input.clone()),
        t,
        &marks,
        &mut uf_in,
    );
    for c in uf_in.components(&flags) {
        let group = Group {
            lines: c.iter().map(|&i| line(i)).collect(),
            ..Default::default()
        };
        if c.len() <= opts.cap {
            if answer_classes(&c, &out_norm, &sigs, t) > 1 {
                rep.findings.contradictions.push(group);
            }
            continue;
        }
        // A cluster above the cap is a template whose differing answers are expected (the
        // slot differs); only identical prompts with different answers contradict there.
        let mut by_prompt: HashMap<u32, Vec<u32>> = HashMap::new();
        for &i in &c {
            by_prompt.entry(in_rep[i as usize]).or_default().push(i);
        }
        let mut subs: Vec<Vec<u32>> = by_prompt.into_values().filter(|s| s.len() > 1).collect();
        subs.sort_by_key(|s| s[0]);
        for sub in subs {
            if answer_classes(&sub, &out_norm, &sigs, t) > 1 {
                rep.findings.contradictions.push(Group {
                    lines: sub.iter().map(|&i| line(i)).collect(),
                    ..Default::default()
                });
            }
        }
        rep.findings.overrepresented.push(Group {
            keep: keep_of(&c),
            ..group
        });
    }
    rep.findings.contradictions.sort_by_key(|g| g.lines[0]);
    for c in tpl_clusters {
        let texts: Vec<&str> = c
            .iter()
            .filter_map(|i| prompts.get(i).map(String::as_str))
            .collect();
        let shown = template::display(&texts);
        let lines: Vec<usize> = c.iter().map(|&i| line(i)).collect();
        // A cluster of near-identical prompts that already holds them all gets the template.
        if let Some(g) = rep
            .findings
            .overrepresented
            .iter_mut()
            .find(|g| lines.iter().all(|l| g.lines.binary_search(l).is_ok()))
        {
            g.template.get_or_insert(shown);
            continue;
        }
        rep.findings.overrepresented.push(Group {
            lines,
            template: Some(shown),
            keep: keep_of(&c),
            ..Default::default()
        });
    }
    rep.findings.overrepresented.sort_by_key(|g| g.lines[0]);

    if let Some(out) = fix {
        rep.removed = write_fixed(path, format, out, &rep.findings, opts.cap, progress)?;
    }
    Ok(rep)
}

/// Which lines `--fix` removes and why, in this order (the first reason wins): contaminated
/// lines; every line of a contradiction (which answer is right cannot be known); all but the
/// first of exact duplicates; lines of an over-represented cluster beyond the `cap` it keeps
/// (its `keep` lines, one of each answer in turn, then file order); all
/// but the first of near-duplicates outside over-represented clusters (those are capped
/// instead). Invalid records are removed too (see `write_fixed`).
pub fn removals(findings: &Findings, cap: usize) -> HashMap<usize, String> {
    let mut r: HashMap<usize, String> = HashMap::new();
    for g in &findings.contamination {
        let against: Vec<String> = g.against.iter().map(|l| l.to_string()).collect();
        r.entry(g.lines[0]).or_insert_with(|| {
            format!(
                "contamination: overlaps evaluation line(s) {}",
                against.join(", ")
            )
        });
    }
    for g in &findings.contradictions {
        for &l in &g.lines {
            r.entry(l).or_insert_with(|| {
                format!(
                    "contradiction: near-same prompt as lines {:?} with a different answer",
                    g.lines
                )
            });
        }
    }
    for g in &findings.exact_duplicates {
        for &l in &g.lines[1..] {
            r.entry(l)
                .or_insert_with(|| format!("exact duplicate of line {}", g.lines[0]));
        }
    }
    let mut capped: HashSet<usize> = HashSet::new();
    for g in &findings.overrepresented {
        capped.extend(&g.lines);
        // The cluster's own choice first (diverse in answers), then file order.
        let mut kept: Vec<usize> = Vec::with_capacity(cap);
        for &l in g.keep.iter().chain(&g.lines) {
            if kept.len() == cap {
                break;
            }
            if !r.contains_key(&l) && !kept.contains(&l) {
                kept.push(l);
            }
        }
        for &l in &g.lines {
            if !kept.contains(&l) {
                r.entry(l).or_insert_with(|| {
                    format!(
                        "over-represented: more than {cap} near-identical prompts (lines {:?})",
                        g.lines
                    )
                });
            }
        }
    }
    for g in &findings.near_duplicates {
        let first = g.lines[0];
        for &l in &g.lines[1..] {
            if !capped.contains(&l) {
                r.entry(l)
                    .or_insert_with(|| format!("near-duplicate of line {first}"));
            }
        }
    }
    r
}

fn write_fixed(
    path: &Path,
    format: &Format,
    out: &Path,
    findings: &Findings,
    cap: usize,
    progress: &dyn Progress,
) -> Result<Vec<(usize, String)>> {
    let reasons = removals(findings, cap);
    let log_path = {
        let mut s = out.as_os_str().to_owned();
        s.push(".removed.jsonl");
        std::path::PathBuf::from(s)
    };
    let mut w = AtomicFile::create(out)?;
    let mut removed = Vec::new();
    let mut recs = Records::open(path, format)?;
    progress.start("qa: writing", recs.total_bytes());
    let io = |e| Error::io(out, e);
    if let Some(h) = recs.header() {
        w.write_all(h).map_err(io)?;
        w.write_all(b"\n").map_err(io)?;
    }
    let mut k = 0usize;
    while let Some(rec) = recs.next_record()? {
        let why = match &rec.parsed {
            Err(ps) => Some(format!("invalid: {}", ps[0])),
            Ok(_) => reasons.get(&rec.line).cloned(),
        };
        match why {
            Some(why) => removed.push((rec.line, why)),
            None => {
                w.write_all(&rec.raw).map_err(io)?;
                w.write_all(b"\n").map_err(io)?;
            }
        }
        k += 1;
        if k.is_multiple_of(4096) {
            progress.set(recs.bytes_read());
        }
    }
    progress.finish();
    let mut log = AtomicFile::create(&log_path)?;
    for (line, why) in &removed {
        let v = serde_json::json!({"line": line, "reason": why});
        writeln!(log, "{v}").map_err(|e| Error::io(&log_path, e))?;
    }
    w.commit()?;
    log.commit()?;
    Ok(removed)
}
