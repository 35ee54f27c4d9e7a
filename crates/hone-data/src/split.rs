//! `hone data split`: train / valid / test files, random, stratified by `label`, or grouped by
//! `group` (a group never spans two splits), sized by ratios or counts.
//!
//! Two passes: the first keeps a label id and a group id per record (8 bytes), the assignment
//! is made in memory, the second copies each record's bytes into its split's file.

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
