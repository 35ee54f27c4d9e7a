//! `hone data synth clauses`: a small instruction data set for trying `hone pilot` without
//! data of one's own. Each example asks which topic an NDA clause addresses, answered with one
//! of six labels: five of the review checks (the clause is evidence for that check, either
//! polarity) or `other` (a clause that bears on no check). Clauses come from the synthetic NDAs
//! of [`crate::synth`], so their wording varies (party names, defined terms, phrasings); labels
//! are balanced (round robin) and no clause text appears twice. The same seed gives the same
//! file.

use std::collections::HashSet;

use crate::example::Example;
use crate::hash::Rng;

/// `(check id, label)` of the topics asked about; every other clause is `other`.
pub const TOPICS: &[(&str, &str)] = &[
    ("nda-4", "limited-use"),
    ("nda-7", "third-party-sharing"),
    ("nda-16", "return-or-destruction"),
    ("nda-18", "non-solicitation"),
    ("nda-19", "survival"),
];

/// The label of a clause that bears on none of [`TOPICS`].
pub const OTHER: &str = "other";

/// The instruction every example carries.
pub fn instruction() -> String {
    let labels: Vec<&str> = TOPICS.iter().map(|(_, l)| *l).chain([OTHER]).collect();
    format!(
        "Which topic does this clause of a non-disclosure agreement address? Answer with \
         exactly one of: {}.",
        labels.join(", ")
    )
}

/// `n` examples (fewer only if the synthetic NDAs run out of distinct clauses of some label,
/// which takes thousands), labels in turn, from the NDAs of `seed`.
pub fn generate(n: usize, seed: u64) -> Vec<Example> {
    let labels = TOPICS.len() + 1;
    let mut pools: Vec<Vec<String>> = vec![Vec::new(); labels];
    let mut seen: HashSet<String> = HashSet::new();
    let per_label = n.div_ceil(labels);
    let mut docs_seed = seed;
    // Synthetic NDAs in rounds until every label has its share (or the clauses run out).
    for _round in 0..64 {
        if pools.iter().all(|p| p.len() >= per_label) {
            break;
        }
        let ds = crate::synth::generate(8, docs_seed);
        docs_seed = docs_seed.wrapping_add(0x9E37_79B9);
        for doc in &ds.documents {
            let Ok(texts) = doc.span_texts() else {
                continue;
            };
            let mut evidence: Vec<Vec<&str>> = vec![Vec::new(); texts.len()];
            for set in &doc.annotation_sets {
                for (check, a) in &set.annotations {
                    for &s in &a.spans {
                        if let Some(e) = evidence.get_mut(s) {
                            e.push(check.as_str());
                        }
                    }
                }
            }
            for (text, checks) in texts.iter().zip(&evidence) {
                let slot = match checks.as_slice() {
                    [] => TOPICS.len(),
                    [one] => match TOPICS.iter().position(|(id, _)| id == one) {
                        Some(i) => i,
                        None => continue,
                    },
                    _ => continue,
                };
                // Headings and list markers alone say nothing about a topic.
                if text.split_whitespace().count() < 6 || !seen.insert(text.clone()) {
                    continue;
                }
                pools[slot].push(text.clone());
            }
        }
    }
    let mut rng = Rng::new(seed ^ 0xC1A5);
    for p in &mut pools {
        rng.shuffle(p);
    }
    let instruction = instruction();
    let mut out = Vec::with_capacity(n);
    let mut taken = vec![0usize; labels];
    'fill: while out.len() < n {
        let before = out.len();
        for (slot, pool) in pools.iter().enumerate() {
            if out.len() == n {
                break 'fill;
            }
            let Some(text) = pool.get(taken[slot]) else {
                continue;
            };
            taken[slot] += 1;
            let label = TOPICS.get(slot).map_or(OTHER, |(_, l)| l);
            let mut ex = Example::from_instruction(&instruction, text, label);
            ex.id = Some(format!("clause-{:04}", out.len()));
            ex.label = Some(label.to_string());
            out.push(ex);
        }
        if out.len() == before {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_distinct_and_reproducible() {
        let a = generate(50, 7);
        assert_eq!(a.len(), 50);
        let mut counts = std::collections::BTreeMap::new();
        for e in &a {
            *counts.entry(e.label.clone().unwrap()).or_insert(0) += 1;
            assert_eq!(e.output_text(), e.label.as_deref().unwrap());
        }
        assert_eq!(counts.len(), 6, "{counts:?}");
        assert!(counts.values().all(|&c| (8..=9).contains(&c)), "{counts:?}");
        let inputs: HashSet<String> = a.iter().map(|e| e.input_text()).collect();
        assert_eq!(inputs.len(), 50);
        let b = generate(50, 7);
        assert_eq!(
            a.iter().map(Example::to_json).collect::<Vec<_>>(),
            b.iter().map(Example::to_json).collect::<Vec<_>>()
        );
        let c = generate(50, 8);
        assert_ne!(a[0].to_json(), c[0].to_json());
    }

    #[test]
    fn labels_follow_the_annotations() {
        // A clause labelled with a topic is one of that check's phrasings: it shares words
        // with them that the other topics' clauses lack. Spot-check the survival topic.
        let ex = generate(60, 3);
        let survival: Vec<String> = ex
            .iter()
            .filter(|e| e.label.as_deref() == Some("survival"))
            .map(|e| e.input_text().to_lowercase())
            .collect();
        assert!(!survival.is_empty());
        let telling = ["surviv", "terminat", "expir", "after", "continue", "years"];
        for s in &survival {
            assert!(telling.iter().any(|w| s.contains(w)), "{s}");
        }
    }
}
