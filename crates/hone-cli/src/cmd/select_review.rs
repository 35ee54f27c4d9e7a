//! `hone data select` with a review adapter: it reviews every document of the pool, and the
//! `budget` documents whose 17 decisions it was least sure of (summed over the checks: the
//! entropy of each check's label distribution, or of its entailed-or-contradicted decision
//! weighted by the chance it is addressed, or one minus the gap between its two likeliest
//! labels, or the negated mean log-probability of the chosen labels), near-copies of a pick
//! skipped, go to the review queue, where a person corrects the labels and evidence per check
//! (each decided check proposes its confident evidence spans, `aggregate::propose`).

use anyhow::{Context, Result};
use hone_review::engine::{EngineOptions, Reviewer};
use hone_review::input::{read_inputs, ReadOptions};
use hone_review::{DocReview, Probs};

use super::pool::{queue_review, PoolReview};
use super::select::{picker_name, write_picks, SelectArgs, Uncertainty};

/// One check's uncertainty under `by` (higher: less sure).
fn check_uncertainty(by: Uncertainty, label: &str, p: &Probs) -> f64 {
    match by {
        Uncertainty::Entropy => p.entropy(),
        Uncertainty::Nli => p.nli_entropy(),
        Uncertainty::Margin => 1.0 - p.margin(),
        Uncertainty::Logprob => {
            let chosen = match label {
                "Entailment" => p.entailment,
                "Contradiction" => p.contradiction,
                _ => p.not_mentioned,
            };
            -chosen.max(1e-12).ln()
        }
    }
}

/// A document's uncertainty: its checks' summed (in check order, with each check's share).
fn doc_uncertainty(by: Uncertainty, r: &DocReview) -> (f64, Vec<(String, f64)>) {
    let per: Vec<(String, f64)> = r
        .checks
        .iter()
        .map(|(id, c)| (id.clone(), check_uncertainty(by, &c.label, &c.probs)))
        .collect();
    let total = per.iter().map(|(_, u)| u).sum::<f64>();
    (if per.is_empty() { f64::NAN } else { total }, per)
}

pub fn run(a: &SelectArgs) -> Result<()> {
    let by = a.by.unwrap_or(Uncertainty::Entropy);
    let docs = read_inputs(&a.pool, &ReadOptions::default())
        .with_context(|| format!("cannot read the pool {}", a.pool.display()))?;
    anyhow::ensure!(
        !docs.is_empty(),
        "{}: no documents in the pool",
        a.pool.display()
    );
    let store = a.store.open()?;
    let reviewer = Reviewer::load(&a.model, Some(&a.adapter), EngineOptions::default())
        .with_context(|| format!("cannot load the review adapter {}", a.adapter.display()))?;
    let bar = indicatif::ProgressBar::new(docs.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "reviewing the pool [{bar:40}] {pos}/{len} ({eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut reviews = Vec::with_capacity(docs.len());
    for d in &docs {
        let mut r = reviewer
            .review(d, None)
            .with_context(|| format!("cannot review {} ({})", d.doc_id, d.source))?;
        // the reviewer sees each decided check's confident evidence, not the whole ranking
        hone_review::aggregate::propose(&mut r.checks);
        reviews.push(r);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let scored: Vec<(f64, Vec<(String, f64)>)> =
        reviews.iter().map(|r| doc_uncertainty(by, r)).collect();
    let uncertainty: Vec<f64> = scored.iter().map(|s| s.0).collect();
    let texts: Vec<String> = docs.iter().map(|d| d.text.clone()).collect();
    let picks = hone_data::select::pick_uncertain(&texts, &uncertainty, a.budget, a.near);
    let items: Vec<PoolReview> = picks
        .iter()
        .map(|&i| PoolReview {
            doc: &docs[i],
            review: &reviews[i],
        })
        .collect();
    queue_review(store.as_ref(), &picker_name(&a.adapter), &items)?;
    if let Some(out) = &a.out {
        let lines: Vec<serde_json::Value> = picks
            .iter()
            .enumerate()
            .map(|(rank, &i)| {
                serde_json::json!({
                    "rank": rank + 1,
                    "doc_id": docs[i].doc_id,
                    "source": docs[i].source,
                    "uncertainty": uncertainty[i],
                    "checks": scored[i].1.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
                })
            })
            .collect();
        write_picks(out, &lines)?;
    }
    println!(
        "{} of {} pool documents picked (by {by:?} summed over the checks; near-copies of a pick \
         skipped) and queued for review:",
        picks.len(),
        docs.len()
    );
    for &i in &picks {
        let mut worst = scored[i].1.clone();
        worst.sort_by(|x, y| y.1.total_cmp(&x.1));
        let worst: Vec<String> = worst
            .iter()
            .take(3)
            .map(|(c, u)| format!("{c} {u:.2}"))
            .collect();
        println!(
            "  {:>8.3}  {}  (least sure: {})",
            uncertainty[i],
            docs[i].doc_id,
            worst.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probs(e: f64, c: f64, n: f64) -> Probs {
        Probs {
            entailment: e,
            contradiction: c,
            not_mentioned: n,
        }
    }

    #[test]
    fn check_uncertainty_under_each_measure() {
        let p = probs(0.2, 0.1, 0.7);
        assert!(
            (check_uncertainty(Uncertainty::Entropy, "NotMentioned", &p) - 0.801_818_5).abs()
                < 1e-6
        );
        assert!((check_uncertainty(Uncertainty::Margin, "NotMentioned", &p) - 0.5).abs() < 1e-12);
        assert!(
            (check_uncertainty(Uncertainty::Logprob, "NotMentioned", &p) - 0.356_674_9).abs()
                < 1e-6
        );
        // 0.3 addressed, E : C = 2 : 1
        assert!(
            (check_uncertainty(Uncertainty::Nli, "NotMentioned", &p) - 0.190_954_3).abs() < 1e-6
        );
        // the chosen label, not the likeliest, is what logprob scores
        assert!(
            (check_uncertainty(Uncertainty::Logprob, "Entailment", &p) - 1.609_437_9).abs() < 1e-6
        );
    }
}
