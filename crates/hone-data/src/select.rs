//! Active learning's choice: of a pool the model has answered, the `budget` examples it was
//! least sure of, skipping any that nearly repeats one already picked (so the budget is not
//! spent on one template many times).

use crate::minhash::{jaccard, shingles, word_hashes};

/// Words per shingle for the near-duplicate check.
const SHINGLE: usize = 3;

/// Indices of `texts` to label, most uncertain first: `uncertainty[i]` higher means less sure
/// (NaN counts as least sure); a text whose shingle Jaccard similarity with a picked one is at
/// least `near` is skipped.
pub fn pick_uncertain(
    texts: &[String],
    uncertainty: &[f64],
    budget: usize,
    near: f64,
) -> Vec<usize> {
    assert_eq!(texts.len(), uncertainty.len());
    let mut order: Vec<usize> = (0..texts.len()).collect();
    let key = |i: usize| {
        if uncertainty[i].is_nan() {
            f64::INFINITY
        } else {
            uncertainty[i]
        }
    };
    order.sort_by(|&a, &b| key(b).total_cmp(&key(a)).then(a.cmp(&b)));
    let mut picked: Vec<(usize, Vec<u64>)> = Vec::new();
    for i in order {
        if picked.len() == budget {
            break;
        }
        let sh = shingles(&word_hashes(&texts[i]), SHINGLE);
        if picked.iter().any(|(_, p)| jaccard(p, &sh) >= near) {
            continue;
        }
        picked.push((i, sh));
    }
    picked.into_iter().map(|(i, _)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_uncertain_first_without_near_copies() {
        let texts: Vec<String> = [
            "the recipient may share information with its employees who need to know",
            "the recipient may share information with its employees who need to know it",
            "all obligations end when the agreement terminates",
            "confidential information includes only marked information",
            "the recipient shall not reverse engineer any samples",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let u = [2.0, 1.9, 0.5, f64::NAN, 1.0];
        // 0, then 1 is a near copy of 0 (skipped), NaN counts as least sure
        assert_eq!(pick_uncertain(&texts, &u, 3, 0.7), vec![3, 0, 4]);
        assert_eq!(pick_uncertain(&texts, &u, 10, 0.7), vec![3, 0, 4, 2]);
        assert_eq!(pick_uncertain(&texts, &u, 10, 1.01), vec![3, 0, 1, 4, 2]);
        assert!(pick_uncertain(&texts, &u, 0, 0.7).is_empty());
    }
}
