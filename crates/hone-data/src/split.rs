//! `hone data split`: train / valid / test files, random, stratified by `label`, or grouped by
//! `group` (a group never spans two splits), sized by ratios or counts.
//!
//! Two passes: the first keeps a label id and a group id per record (8 bytes), the assignment
//! is made in memory, the second copies each record's bytes into its split's file.
//!
//! Annotated document files (`documents.jsonl`) are split by document instead
//! ([`split_documents`]), with near-duplicate documents kept in one split.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::atomic::AtomicFile;
use crate::error::{Error, Result};
use crate::hash::{hash_bytes, Rng};
use crate::progress::Progress;
use crate::source::{Format, Records};

pub const NAMES: [&str; 3] = ["train", "valid", "test"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    Random,
    Stratified,
    Grouped,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Sizes {
    /// Shares of train / valid / test (normalized to sum 1).
    Ratios([f64; 3]),
    /// Exact counts; records beyond their sum are left out.
    Counts([usize; 3]),
}

impl Sizes {
    /// `0.8,0.1,0.1` (ratios) or `40,10` (counts); a missing test size is 0.
    pub fn parse(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split(',').map(|p| p.trim()).collect();
        if parts.is_empty() || parts.len() > 3 {
            return Err(Error::Invalid(format!(
                "sizes `{s}`: expected 2 or 3 comma-separated numbers (train,valid[,test])"
            )));
        }
        if parts.iter().all(|p| p.parse::<usize>().is_ok()) && !s.contains('.') {
            let mut c = [0usize; 3];
            for (i, p) in parts.iter().enumerate() {
                c[i] = p.parse().unwrap_or(0);
            }
            return Ok(Sizes::Counts(c));
        }
        let mut r = [0f64; 3];
        for (i, p) in parts.iter().enumerate() {
            r[i] = p
                .parse()
                .map_err(|_| Error::Invalid(format!("sizes `{s}`: `{p}` is not a number")))?;
            if !(r[i] >= 0.0 && r[i].is_finite()) {
                return Err(Error::Invalid(format!(
                    "sizes `{s}`: `{p}` must be non-negative"
                )));
            }
        }
        let sum: f64 = r.iter().sum();
        if sum <= 0.0 {
            return Err(Error::Invalid(format!("sizes `{s}`: ratios sum to 0")));
        }
        Ok(Sizes::Ratios(r.map(|x| x / sum)))
    }

    /// The pilot split: 40 training and 10 validation examples out of 50.
    pub fn pilot() -> Self {
        Sizes::Counts([40, 10, 0])
    }

    /// Target counts for `n` records (largest remainder for ratios).
    pub fn targets(&self, n: usize) -> Result<[usize; 3]> {
        match self {
            Sizes::Counts(c) => {
                let sum: usize = c.iter().sum();
                if sum > n {
                    return Err(Error::Invalid(format!(
                        "split sizes {c:?} need {sum} records, the file has {n}"
                    )));
                }
                Ok(*c)
            }
            Sizes::Ratios(r) => Ok(apportion(n, r)),
        }
    }
}

/// Splits `n` into parts proportional to `r` (largest remainder; sums to `n`).
pub fn apportion(n: usize, r: &[f64; 3]) -> [usize; 3] {
    let exact: Vec<f64> = r.iter().map(|x| x * n as f64).collect();
    let mut out = [0usize; 3];
    for i in 0..3 {
        out[i] = exact[i].floor() as usize;
    }
    let mut left = n - out.iter().sum::<usize>();
    let mut order: Vec<usize> = (0..3).collect();
    order.sort_by(|&a, &b| {
        (exact[b] - exact[b].floor())
            .total_cmp(&(exact[a] - exact[a].floor()))
            .then(a.cmp(&b))
    });
    for &i in order.iter().cycle() {
        if left == 0 {
            break;
        }
        if r[i] > 0.0 {
            out[i] += 1;
            left -= 1;
        }
    }
    out
}

const UNASSIGNED: u8 = 3;

/// Assigns records (given their label and group ids) to splits 0/1/2, or 3 (left out).
pub fn assign(
    labels: &[u32],
    groups: &[u32],
    strategy: Strategy,
    sizes: &Sizes,
    seed: u64,
) -> Result<Vec<u8>> {
    let n = labels.len();
    let targets = sizes.targets(n)?;
    let mut rng = Rng::new(seed);
    let mut out = vec![UNASSIGNED; n];
    match strategy {
        Strategy::Random => {
            let mut idx: Vec<u32> = (0..n as u32).collect();
            rng.shuffle(&mut idx);
            let mut k = 0;
            for (s, &t) in targets.iter().enumerate() {
                for &i in &idx[k..k + t] {
                    out[i as usize] = s as u8;
                }
                k += t;
            }
        }
        Strategy::Stratified => {
            let mut by: HashMap<u32, Vec<u32>> = HashMap::new();
            for (i, &l) in labels.iter().enumerate() {
                by.entry(l).or_default().push(i as u32);
            }
            let mut classes: Vec<(u32, Vec<u32>)> = by.into_iter().collect();
            classes.sort_by_key(|c| c.0);
            let used: usize = targets.iter().sum();
            let shares = targets.map(|t| t as f64 / used.max(1) as f64);
            // Each class is split in the target proportions; a final pass fixes the totals.
            let mut got = [0usize; 3];
            let mut spare: Vec<u32> = Vec::new();
            for (_, mut members) in classes {
                rng.shuffle(&mut members);
                let take = apportion(
                    ((members.len() * used) as f64 / n as f64).round() as usize,
                    &shares,
                );
                let mut k = 0;
                for s in 0..3 {
                    let t = take[s].min(members.len() - k).min(targets[s] - got[s]);
                    for &i in &members[k..k + t] {
                        out[i as usize] = s as u8;
                    }
                    got[s] += t;
                    k += t;
                }
                spare.extend_from_slice(&members[k..]);
            }
            rng.shuffle(&mut spare);
            let mut k = 0;
            for s in 0..3 {
                let t = targets[s] - got[s];
                for &i in &spare[k..k + t] {
                    out[i as usize] = s as u8;
                }
                k += t;
            }
        }
        Strategy::Grouped => {
            let mut by: HashMap<u32, Vec<u32>> = HashMap::new();
            for (i, &g) in groups.iter().enumerate() {
                by.entry(g).or_default().push(i as u32);
            }
            let mut gs: Vec<(u32, Vec<u32>)> = by.into_iter().collect();
            gs.sort_by_key(|g| g.0);
            rng.shuffle(&mut gs);
            // Whole groups go to the split furthest below its target; counts are then as close
            // to the targets as group sizes allow.
            let mut got = [0usize; 3];
            for (_, members) in gs {
                let best = (0..3).filter(|&s| targets[s] > got[s]).max_by(|&a, &b| {
                    let da = (targets[a] - got[a]) as f64 / targets[a] as f64;
                    let db = (targets[b] - got[b]) as f64 / targets[b] as f64;
                    da.total_cmp(&db).then(b.cmp(&a))
                });
                if let Some(s) = best {
                    got[s] += members.len();
                    for i in members {
                        out[i as usize] = s as u8;
                    }
                }
            }
        }
    }
    Ok(out)
}

#[derive(Clone, Debug, Serialize)]
pub struct SplitReport {
    pub records: usize,
    pub counts: [usize; 3],
    pub left_out: usize,
    pub files: Vec<String>,
}

/// Splits `path` into `out_dir/{train,valid,test}.<ext>` (empty splits are not written).
pub fn split_file(
    path: &Path,
    format: &Format,
    out_dir: &Path,
    strategy: Strategy,
    sizes: &Sizes,
    seed: u64,
    progress: &dyn Progress,
) -> Result<SplitReport> {
    // Pass 1: label and group ids.
    let mut label_ids: HashMap<u64, u32> = HashMap::new();
    let mut group_ids: HashMap<u64, u32> = HashMap::new();
    let (mut labels, mut groups) = (Vec::new(), Vec::new());
    let mut recs = Records::open(path, format)?;
    progress.start("split: reading", recs.total_bytes());
    while let Some(rec) = recs.next_record()? {
        let line = rec.line;
        let ex = rec.into_example(path)?;
        let l = ex
            .label
            .as_deref()
            .map(|s| hash_bytes(s.as_bytes()))
            .unwrap_or(0);
        let next = label_ids.len() as u32;
        labels.push(*label_ids.entry(l).or_insert(next));
        let g = match &ex.group {
            Some(g) => hash_bytes(g.as_bytes()),
            None if strategy == Strategy::Grouped => {
                return Err(Error::Field {
                    path: path.to_path_buf(),
                    line,
                    field: "group".into(),
                    msg: "missing (a grouped split needs a group on every record)".into(),
                })
            }
            None => 0,
        };
        let next = group_ids.len() as u32;
        groups.push(*group_ids.entry(g).or_insert(next));
        if labels.len().is_multiple_of(4096) {
            progress.set(recs.bytes_read());
        }
    }
    progress.finish();
    if labels.is_empty() {
        return Err(recs.no_examples());
    }
    drop(label_ids);
    drop(group_ids);
    let assignment = assign(&labels, &groups, strategy, sizes, seed)?;
    drop(labels);
    drop(groups);

    // Pass 2: copy records.
    let ext = match format {
        Format::Jsonl => "jsonl",
        Format::Csv(_) => "csv",
    };
    let mut counts = [0usize; 3];
    for &a in &assignment {
        if (a as usize) < 3 {
            counts[a as usize] += 1;
        }
    }
    let mut recs = Records::open(path, format)?;
    let mut files: Vec<Option<AtomicFile>> = Vec::new();
    let mut names = Vec::new();
    for (s, name) in NAMES.iter().enumerate() {
        if counts[s] > 0 {
            let p = out_dir.join(format!("{name}.{ext}"));
            let mut f = AtomicFile::create(&p)?;
            if let Some(h) = recs.header() {
                f.write_all(h)
                    .and_then(|_| f.write_all(b"\n"))
                    .map_err(|e| Error::io(&p, e))?;
            }
            names.push(p.display().to_string());
            files.push(Some(f));
        } else {
            files.push(None);
        }
    }
    progress.start("split: writing", recs.total_bytes());
    let mut i = 0usize;
    while let Some(rec) = recs.next_record()? {
        if let Some(Some(f)) = files.get_mut(assignment[i] as usize) {
            f.write_all(&rec.raw)
                .and_then(|_| f.write_all(b"\n"))
                .map_err(|e| Error::io(out_dir, e))?;
        }
        i += 1;
        if i.is_multiple_of(4096) {
            progress.set(recs.bytes_read());
        }
    }
    progress.finish();
    for f in files.into_iter().flatten() {
        f.commit()?;
    }
    Ok(SplitReport {
        records: assignment.len(),
        counts,
        left_out: assignment.len() - counts.iter().sum::<usize>(),
        files: names,
    })
}

/// Jaccard similarity (5-word shingles) at or above which two documents are kept in one split.
pub const DOC_NEAR_DUP: f64 = 0.5;
/// Words per shingle when comparing documents.
pub const DOC_SHINGLE: usize = 5;

/// True when the first non-empty line of `path` is a JSON object with `text`, `spans` and
/// `labels`: an annotated document file (`documents.jsonl`, one
/// [`EvalDocument`](crate::contractnli::EvalDocument) per line) rather than examples.
pub fn is_documents_file(path: &Path) -> Result<bool> {
    use std::io::BufRead;
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    for line in std::io::BufReader::new(f).lines() {
        let line = match line {
            Ok(l) => l,
            // Not UTF-8 text: not a JSONL file of documents.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => return Ok(false),
            Err(e) => return Err(Error::io(path, e)),
        };
        if line.trim().is_empty() {
            continue;
        }
        return Ok(match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(serde_json::Value::Object(m)) => ["text", "spans", "labels"]
                .iter()
                .all(|k| m.contains_key(*k)),
            _ => false,
        });
    }
    Ok(false)
}

/// Two documents kept together because their texts are near-duplicates.
#[derive(Clone, Debug, Serialize)]
pub struct NearDuplicatePair {
    /// Document ids.
    pub ids: [String; 2],
    /// 1-based line numbers in the input file.
    pub lines: [usize; 2],
    /// Exact Jaccard similarity of the 5-word shingle sets.
    pub jaccard: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct DocSplitReport {
    pub documents: usize,
    /// Groups of near-duplicate documents (a document without near-duplicates is a group).
    pub groups: usize,
    pub near_duplicate_pairs: Vec<NearDuplicatePair>,
    /// Documents per split (train, valid, test).
    pub counts: [usize; 3],
    /// Documents beyond the requested counts, in no file.
    pub left_out: usize,
    pub files: Vec<String>,
}

/// Exact Jaccard similarity of two sorted, deduplicated shingle lists (the same value as
/// [`crate::minhash::jaccard`], by a merge instead of hash sets).
fn sorted_jaccard(a: &[u64], b: &[u64]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let (mut i, mut j, mut inter) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                inter += 1;
                i += 1;
                j += 1;
            }
        }
    }
    inter as f64 / (a.len() + b.len() - inter) as f64
}

fn find(parent: &mut [usize], mut x: usize) -> usize {
    while parent[x] != x {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    x
}

/// Assigns whole groups (`groups[i]` is item `i`'s group, `0..ngroups`) to splits 0/1/2, or 3
/// (left out), with counts as close to `targets` as the group sizes allow.
///
/// The groups are shuffled with `seed`, then taken largest first (stable, so equal sizes stay
/// in shuffled order); each goes to a split it fits in (remaining room at least its size),
/// drawn with probability proportional to the room left. The single items that come last
/// then fill every split exactly. A group that fits nowhere is left out if the groups after it
/// can still fill the room, and otherwise goes to the split with the most room.
fn assign_groups(groups: &[u32], ngroups: usize, targets: [usize; 3], seed: u64) -> Vec<u8> {
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); ngroups];
    for (i, &g) in groups.iter().enumerate() {
        members[g as usize].push(i);
    }
    let mut order: Vec<usize> = (0..ngroups).collect();
    let mut rng = Rng::new(seed);
    rng.shuffle(&mut order);
    order.sort_by_key(|&g| std::cmp::Reverse(members[g].len()));
    let mut out = vec![UNASSIGNED; groups.len()];
    let mut room = targets;
    let mut remaining = groups.len();
    for g in order {
        let size = members[g].len();
        remaining -= size;
        let fits: usize = (0..3).filter(|&s| room[s] >= size).map(|s| room[s]).sum();
        let split = if fits > 0 {
            let mut r = rng.below(fits);
            (0..3)
                .filter(|&s| room[s] >= size)
                .find(|&s| {
                    if r < room[s] {
                        true
                    } else {
                        r -= room[s];
                        false
                    }
                })
                .expect("r < fits")
        } else if room.iter().sum::<usize>() > remaining {
            // Without this group the rest cannot fill the room: overshoot the emptiest split.
            (0..3)
                .max_by_key(|&s| (room[s], std::cmp::Reverse(s)))
                .expect("3 splits")
        } else {
            continue;
        };
        room[split] = room[split].saturating_sub(size);
        for &i in &members[g] {
            out[i] = split as u8;
        }
    }
    out
}

/// Splits an annotated document file (`documents.jsonl`) into `out/{train,valid,test}.jsonl`
/// by document. Documents whose 5-word-shingle Jaccard similarity is at least `near_dup` are
/// grouped (transitively) and a group never spans two splits; groups are shuffled with `seed`
/// and assigned whole (see [`assign_groups`]), so the document counts come as close to `sizes`
/// as group sizes allow. Each file holds the original lines, in input order; an empty split's
/// file is written only if its size was requested. The same seed gives the same files.
pub fn split_documents(
    path: &Path,
    out: &Path,
    sizes: &Sizes,
    seed: u64,
    near_dup: f64,
) -> Result<DocSplitReport> {
    if !(near_dup > 0.0 && near_dup <= 1.0) {
        return Err(Error::Invalid(format!(
            "near-duplicate threshold {near_dup} must be in (0, 1]"
        )));
    }
    let docs = crate::contractnli::read_documents(path)?;
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    // The same lines `read_documents` parsed, with their line numbers.
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| (i + 1, l))
        .collect();
    if lines.len() != docs.len() {
        return Err(Error::Format {
            path: path.to_path_buf(),
            msg: "the file changed while it was read".into(),
        });
    }
    let n = docs.len();
    if n == 0 {
        return Err(Error::Format {
            path: path.to_path_buf(),
            msg: "no documents to split".into(),
        });
    }
    // Fail on impossible counts before the pairwise comparison.
    sizes.targets(n)?;

    let sh: Vec<Vec<u64>> = docs
        .iter()
        .map(|d| {
            let mut s =
                crate::minhash::shingles(&crate::minhash::word_hashes(&d.text), DOC_SHINGLE);
            s.sort_unstable();
            s.dedup();
            s
        })
        .collect();
    let mut parent: Vec<usize> = (0..n).collect();
    let mut pairs = Vec::new();
    for i in 0..n {
        for j in i + 1..n {
            let (a, b) = (sh[i].len(), sh[j].len());
            // J <= min/max: most pairs of different lengths need no comparison.
            if a.max(b) > 0 && (a.min(b) as f64 / a.max(b) as f64) < near_dup {
                continue;
            }
            let jac = sorted_jaccard(&sh[i], &sh[j]);
            if jac >= near_dup {
                pairs.push(NearDuplicatePair {
                    ids: [docs[i].id.clone(), docs[j].id.clone()],
                    lines: [lines[i].0, lines[j].0],
                    jaccard: jac,
                });
                let (ri, rj) = (find(&mut parent, i), find(&mut parent, j));
                if ri != rj {
                    parent[ri.max(rj)] = ri.min(rj);
                }
            }
        }
    }
    drop(sh);
    // Group ids in order of each group's first document.
    let mut group_of_root: HashMap<usize, u32> = HashMap::new();
    let groups: Vec<u32> = (0..n)
        .map(|i| {
            let r = find(&mut parent, i);
            let next = group_of_root.len() as u32;
            *group_of_root.entry(r).or_insert(next)
        })
        .collect();
    let ngroups = group_of_root.len();
    let assignment = assign_groups(&groups, ngroups, sizes.targets(n)?, seed);

    let mut counts = [0usize; 3];
    let mut bodies = [String::new(), String::new(), String::new()];
    for (&a, &(_, line)) in assignment.iter().zip(&lines) {
        if let Some(b) = bodies.get_mut(a as usize) {
            counts[a as usize] += 1;
            b.push_str(line);
            b.push('\n');
        }
    }
    let requested = match sizes {
        Sizes::Counts(c) => c.map(|x| x > 0),
        Sizes::Ratios(r) => r.map(|x| x > 0.0),
    };
    let mut files = Vec::new();
    for (s, name) in NAMES.iter().enumerate() {
        if counts[s] > 0 || requested[s] {
            let p = out.join(format!("{name}.jsonl"));
            crate::atomic::write_file(&p, bodies[s].as_bytes())?;
            files.push(p.display().to_string());
        }
    }
    Ok(DocSplitReport {
        documents: n,
        groups: ngroups,
        near_duplicate_pairs: pairs,
        counts,
        left_out: n - counts.iter().sum::<usize>(),
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_apportion() {
        assert_eq!(Sizes::parse("40,10").unwrap(), Sizes::Counts([40, 10, 0]));
        assert_eq!(
            Sizes::parse("0.8,0.1,0.1").unwrap().targets(10).unwrap(),
            [8, 1, 1]
        );
        assert_eq!(
            Sizes::parse("0.8,0.2").unwrap().targets(7).unwrap(),
            [6, 1, 0]
        );
        assert_eq!(apportion(10, &[1.0 / 3.0; 3]), [4, 3, 3]);
        assert!(Sizes::parse("a,b").is_err());
        assert!(Sizes::pilot()
            .targets(49)
            .unwrap_err()
            .to_string()
            .contains("need 50 records"));
    }

    #[test]
    fn random_and_stratified_hit_the_targets() {
        let labels: Vec<u32> = (0..100).map(|i| if i < 80 { 0 } else { 1 }).collect();
        let groups = vec![0; 100];
        let a = assign(
            &labels,
            &groups,
            Strategy::Random,
            &Sizes::parse("0.7,0.2,0.1").unwrap(),
            1,
        )
        .unwrap();
        assert_eq!(
            [0u8, 1, 2].map(|s| a.iter().filter(|&&x| x == s).count()),
            [70, 20, 10]
        );
        let a = assign(
            &labels,
            &groups,
            Strategy::Stratified,
            &Sizes::parse("0.5,0.5").unwrap(),
            1,
        )
        .unwrap();
        // 80/20 labels split in half each: 40+10 per split.
        for s in 0..2u8 {
            assert_eq!(
                a.iter()
                    .zip(&labels)
                    .filter(|(&x, &l)| x == s && l == 0)
                    .count(),
                40
            );
            assert_eq!(
                a.iter()
                    .zip(&labels)
                    .filter(|(&x, &l)| x == s && l == 1)
                    .count(),
                10
            );
        }
        let a = assign(&labels, &groups, Strategy::Random, &Sizes::pilot(), 3).unwrap();
        assert_eq!(
            [0u8, 1, 2, 3].map(|s| a.iter().filter(|&&x| x == s).count()),
            [40, 10, 0, 50]
        );
    }

    #[test]
    fn sorted_jaccard_equals_minhash_jaccard() {
        let mut rng = Rng::new(5);
        for _ in 0..200 {
            let mut a: Vec<u64> = (0..rng.below(40)).map(|_| rng.below(60) as u64).collect();
            let mut b: Vec<u64> = (0..rng.below(40)).map(|_| rng.below(60) as u64).collect();
            let want = crate::minhash::jaccard(&a, &b);
            for v in [&mut a, &mut b] {
                v.sort_unstable();
                v.dedup();
            }
            assert_eq!(sorted_jaccard(&a, &b), want);
        }
    }

    /// Property: whole groups, every item placed when the targets use them all, and exact
    /// counts when groups are pairs and singles with room to spare.
    #[test]
    fn assign_groups_keeps_groups_whole_and_fills_targets() {
        let mut rng = Rng::new(17);
        for case in 0..300u64 {
            let n = 1 + rng.below(300);
            let ngroups = 1 + rng.below(n);
            // Every group id used at least once.
            let mut groups: Vec<u32> = (0..n)
                .map(|i| {
                    if i < ngroups {
                        i as u32
                    } else {
                        rng.below(ngroups) as u32
                    }
                })
                .collect();
            rng.shuffle(&mut groups);
            let r = [
                1.0 + rng.below(10) as f64,
                rng.below(5) as f64,
                rng.below(5) as f64,
            ];
            let sum: f64 = r.iter().sum();
            let targets = apportion(n, &r.map(|x| x / sum));
            let a = assign_groups(&groups, ngroups, targets, case);
            let mut seen: HashMap<u32, u8> = HashMap::new();
            for (i, &g) in groups.iter().enumerate() {
                assert!(a[i] < 3, "case {case}: item {i} left out");
                assert_eq!(
                    *seen.entry(g).or_insert(a[i]),
                    a[i],
                    "case {case}: group {g} split"
                );
            }
            // Counts below the total: nothing overshoots when singles remain to fill.
            let part = [targets[0] / 2, targets[1] / 2, targets[2] / 2];
            let a = assign_groups(&groups, ngroups, part, case);
            let singles = (0..ngroups as u32)
                .filter(|g| groups.iter().filter(|&x| x == g).count() == 1)
                .count();
            if singles >= part.iter().sum::<usize>() {
                let got = [0u8, 1, 2].map(|s| a.iter().filter(|&&x| x == s).count());
                assert_eq!(got, part, "case {case}");
            }
        }
        // Pairs and singles that can meet the targets exactly do.
        let groups: Vec<u32> = vec![0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9];
        for seed in 0..20 {
            let a = assign_groups(&groups, 10, [7, 3, 2], seed);
            assert_eq!(
                [0u8, 1, 2].map(|s| a.iter().filter(|&&x| x == s).count()),
                [7, 3, 2]
            );
        }
    }

    /// Property: over random group structures, sizes and seeds, no group is in two splits and
    /// every record of a group is assigned.
    #[test]
    fn grouped_never_splits_a_group() {
        let mut rng = Rng::new(99);
        for case in 0..300 {
            let n = 1 + rng.below(400);
            let ngroups = 1 + rng.below(n);
            let groups: Vec<u32> = (0..n).map(|_| rng.below(ngroups) as u32).collect();
            let labels = vec![0; n];
            let r = [
                rng.below(10) as f64 + 1.0,
                rng.below(5) as f64,
                rng.below(5) as f64,
            ];
            let sum: f64 = r.iter().sum();
            let a = assign(
                &labels,
                &groups,
                Strategy::Grouped,
                &Sizes::Ratios(r.map(|x| x / sum)),
                case,
            )
            .unwrap();
            let mut seen: HashMap<u32, u8> = HashMap::new();
            for (i, &g) in groups.iter().enumerate() {
                assert!(a[i] < 3, "case {case}: record {i} unassigned");
                if let Some(&s) = seen.get(&g) {
                    assert_eq!(s, a[i], "case {case}: group {g} in splits {s} and {}", a[i]);
                }
                seen.insert(g, a[i]);
            }
        }
    }
}
