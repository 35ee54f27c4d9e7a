//! Near-duplicate detection: word shingles, MinHash signatures and LSH banding.
//!
//! Signatures use one-permutation MinHash with optimal densification (Li, Owen & Zhang 2012;
//! Shrivastava 2017): each shingle is hashed once and kept as the minimum of one of `K`
//! bins; empty bins borrow from a pseudo-randomly probed non-empty bin. That costs one hash per shingle instead
//! of `K`, and the fraction of equal entries estimates the Jaccard similarity of the shingle
//! sets, as with classic MinHash. Two sets' signatures can be merged (the entry-wise minimum of
//! the raw bins is the signature of their union).

use std::collections::HashSet;

use crate::hash::{combine, mix64, Hasher64};

/// Entries per signature.
pub const K: usize = 128;
const EMPTY: u32 = u32::MAX;

/// Hashes of the words of `text`: lowercased runs of letters and digits.
pub fn word_hashes(text: &str) -> Vec<u64> {
    let mut out = Vec::new();
    let mut h = Hasher64::new();
    let mut in_word = false;
    for c in text.chars() {
        if c.is_alphanumeric() {
            for l in c.to_lowercase() {
                let mut b = [0u8; 4];
                h.write(l.encode_utf8(&mut b).as_bytes());
            }
            in_word = true;
        } else if in_word {
            out.push(h.finish());
            h = Hasher64::new();
            in_word = false;
        }
    }
    if in_word {
        out.push(h.finish());
    }
    out
}

/// Hashes of the `k`-word shingles; a text of fewer than `k` (but some) words is one shingle.
pub fn shingles(words: &[u64], k: usize) -> Vec<u64> {
    let k = k.max(1);
    if words.is_empty() {
        return Vec::new();
    }
    if words.len() < k {
        return vec![words.iter().fold(k as u64, |a, &w| combine(a, w))];
    }
    words
        .windows(k)
        .map(|w| w.iter().fold(k as u64, |a, &x| combine(a, x)))
        .collect()
}

/// Exact Jaccard similarity of two shingle lists (as sets).
pub fn jaccard(a: &[u64], b: &[u64]) -> f64 {
    let a: HashSet<u64> = a.iter().copied().collect();
    let b: HashSet<u64> = b.iter().copied().collect();
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    let inter = a.intersection(&b).count();
    inter as f64 / (a.len() + b.len() - inter) as f64
}

/// The bins before densification.
#[derive(Clone)]
pub struct RawBins(pub [u32; K]);

impl RawBins {
    pub fn new(shingles: impl IntoIterator<Item = u64>) -> Self {
        let mut bins = [EMPTY; K];
        for s in shingles {
            let m = mix64(s);
            let bin = (m >> 57) as usize; // top 7 bits: K = 128
            let v = (m as u32).min(EMPTY - 1);
            if v < bins[bin] {
                bins[bin] = v;
            }
        }
        Self(bins)
    }

    /// The bins of the union of both shingle sets.
    pub fn union(&self, other: &Self) -> Self {
        let mut out = self.0;
        for (o, &b) in out.iter_mut().zip(other.0.iter()) {
            *o = (*o).min(b);
        }
        Self(out)
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&b| b == EMPTY)
    }

    /// Fills each empty bin from a non-empty bin chosen by a fixed pseudo-random probe
    /// sequence of its own ("optimal densification", Shrivastava 2017): the estimate stays
    /// unbiased with a variance close to classic MinHash, even for sets of a few shingles.
    pub fn densify(&self) -> Signature {
        let mut out = self.0;
        if self.is_empty() {
            return Signature(out);
        }
        for (j, o) in out.iter_mut().enumerate() {
            if *o != EMPTY {
                continue;
            }
            let mut attempt = 1u64;
            loop {
                let probe = (mix64(((j as u64) << 32) | attempt) % K as u64) as usize;
                if self.0[probe] != EMPTY {
                    *o = self.0[probe];
                    break;
                }
                attempt += 1;
            }
        }
        Signature(out)
    }
}

/// A densified signature.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Signature(pub [u32; K]);

impl Signature {
    pub fn of_text(text: &str, k: usize) -> Self {
        RawBins::new(shingles(&word_hashes(text), k)).densify()
    }

    pub fn is_empty(&self) -> bool {
        self.0[0] == EMPTY
    }

    /// Estimated Jaccard similarity: the fraction of equal entries.
    pub fn similarity(&self, other: &Self) -> f64 {
        if self.is_empty() || other.is_empty() {
            return if self.is_empty() && other.is_empty() {
                1.0
            } else {
                0.0
            };
        }
        self.0
            .iter()
            .zip(other.0.iter())
            .filter(|(a, b)| a == b)
            .count() as f64
            / K as f64
    }

    /// Compact 16-bit form kept for verification (b-bit MinHash; a false match of two
    /// different entries has probability 2^-16).
    pub fn compact(&self) -> Compact {
        let mut out = [0u16; K];
        for (o, &v) in out.iter_mut().zip(self.0.iter()) {
            *o = v as u16;
        }
        Compact(out, self.is_empty())
    }

    /// One 32-bit key per band.
    pub fn band_keys(&self, lsh: Lsh) -> impl Iterator<Item = u32> + '_ {
        (0..lsh.bands).map(move |b| {
            let rows = &self.0[b * lsh.rows..(b + 1) * lsh.rows];
            let h = rows.iter().fold(b as u64, |a, &v| combine(a, v as u64));
            h as u32
        })
    }
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Compact(pub [u16; K], pub bool);

impl Compact {
    pub fn similarity(&self, other: &Self) -> f64 {
        if self.1 || other.1 {
            return if self.1 && other.1 { 1.0 } else { 0.0 };
        }
        self.0
            .iter()
            .zip(other.0.iter())
            .filter(|(a, b)| a == b)
            .count() as f64
            / K as f64
    }
}

/// LSH banding: `bands` bands of `rows` entries each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lsh {
    pub bands: usize,
    pub rows: usize,
}

impl Lsh {
    /// The most rows per band (fewest false candidates) such that a pair exactly at the
    /// threshold becomes a candidate with probability at least 99.5%.
    pub fn for_threshold(t: f64) -> Self {
        for rows in (1..=K).rev() {
            let bands = K / rows;
            if (Self { bands, rows }).candidate_probability(t) >= 0.995 {
                return Self { bands, rows };
            }
        }
        Self { bands: K, rows: 1 }
    }

    /// P(two sets of Jaccard similarity `s` share at least one band).
    pub fn candidate_probability(&self, s: f64) -> f64 {
        1.0 - (1.0 - s.powi(self.rows as i32)).powi(self.bands as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::Rng;

    #[test]
    fn words_are_lowercased_alphanumeric_runs() {
        assert_eq!(
            word_hashes("Hello, WORLD! 42x"),
            word_hashes("hello world 42X")
        );
        assert_eq!(word_hashes("a-b").len(), 2);
        assert_eq!(shingles(&word_hashes("one two three four"), 3).len(), 2);
        assert_eq!(shingles(&word_hashes("one two"), 3).len(), 1);
    }

    /// Sets with a known Jaccard similarity: `shared` common shingles plus `own` each.
    fn pair(rng: &mut Rng, shared: usize, own: usize) -> (Vec<u64>, Vec<u64>) {
        let common: Vec<u64> = (0..shared).map(|_| rng.next_u64()).collect();
        let mut a = common.clone();
        let mut b = common;
        a.extend((0..own).map(|_| rng.next_u64()));
        b.extend((0..own).map(|_| rng.next_u64()));
        (a, b)
    }

    #[test]
    fn estimate_tracks_exact_jaccard() {
        let mut rng = Rng::new(3);
        let mut total_err = 0.0;
        let mut n = 0;
        for &(shared, own) in &[
            (90, 5),
            (70, 15),
            (50, 25),
            (30, 35),
            (10, 45),
            (200, 20),
            (8, 2),
            (3, 1),
        ] {
            for _ in 0..20 {
                let (a, b) = pair(&mut rng, shared, own);
                let exact = jaccard(&a, &b);
                let est = RawBins::new(a.iter().copied())
                    .densify()
                    .similarity(&RawBins::new(b.iter().copied()).densify());
                assert!((est - exact).abs() < 0.2, "exact {exact} est {est}");
                total_err += est - exact;
                n += 1;
            }
        }
        // Unbiased: the mean signed error over 160 pairs is near zero.
        assert!(
            (total_err / n as f64).abs() < 0.03,
            "bias {}",
            total_err / n as f64
        );
    }

    #[test]
    fn union_of_raw_bins_is_the_signature_of_the_union() {
        let mut rng = Rng::new(9);
        let a: Vec<u64> = (0..50).map(|_| rng.next_u64()).collect();
        let b: Vec<u64> = (0..30).map(|_| rng.next_u64()).collect();
        let u = RawBins::new(a.iter().copied()).union(&RawBins::new(b.iter().copied()));
        assert_eq!(
            u.densify(),
            RawBins::new(a.iter().chain(b.iter()).copied()).densify()
        );
    }

    #[test]
    fn threshold_behaviour_against_exact_jaccard() {
        // Pairs well above the threshold become LSH candidates and verify; pairs well below do
        // not verify.
        let t = 0.7;
        let lsh = Lsh::for_threshold(t);
        assert_eq!(lsh, Lsh { bands: 32, rows: 4 });
        let mut rng = Rng::new(11);
        for _ in 0..200 {
            let (a, b) = pair(&mut rng, 90, 3); // J = 90/96 = 0.94
            let (sa, sb) = (RawBins::new(a).densify(), RawBins::new(b).densify());
            assert!(sa
                .band_keys(lsh)
                .zip(sb.band_keys(lsh))
                .any(|(x, y)| x == y));
            assert!(sa.similarity(&sb) >= t);
            let (a, b) = pair(&mut rng, 30, 30); // J = 30/90 = 0.33
            let (sa, sb) = (RawBins::new(a).densify(), RawBins::new(b).densify());
            assert!(sa.similarity(&sb) < t);
        }
        assert!(lsh.candidate_probability(0.7) >= 0.995);
        assert!(lsh.candidate_probability(0.2) < 0.06);
    }
}
