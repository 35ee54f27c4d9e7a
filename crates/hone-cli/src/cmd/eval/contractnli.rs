//! `hone eval contractnli --gold G --pred P [--json]`.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use hone_eval::contractnli::{self, ContractNliMetrics};

/// Score `hone review` predictions against ContractNLI gold documents.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Gold documents: ContractNLI's official JSON, or the documents.jsonl written by
    /// `hone data import contractnli` (detected from the content).
    #[arg(long)]
    pub gold: PathBuf,
    /// Predictions written by `hone review`: JSONL, one document a line.
    #[arg(long)]
    pub pred: PathBuf,
    /// Print the metrics as one JSON object (nli_acc, f1_c, f1_e, acc3, evidence_map, counts
    /// and per_hypothesis) instead of tables.
    #[arg(long)]
    pub json: bool,
}

/// Runs `hone eval contractnli`.
pub fn run(a: Args) -> Result<()> {
    let m = contractnli::evaluate_files(&a.gold, &a.pred)
        .with_context(|| format!("scoring {} against {}", a.pred.display(), a.gold.display()))?;
    if a.json {
        println!("{}", serde_json::to_string(&m)?);
    } else {
        print!("{}", table(&m));
    }
    Ok(())
}

fn num(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.3}"))
}

/// The readable report: counts, overall numbers, then one row per hypothesis.
fn table(m: &ContractNliMetrics) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} gold documents, {} predicted, {} missing (scored as NotMentioned with no evidence)",
        m.documents, m.predicted, m.missing
    );
    if m.missing_checks > 0 {
        let _ = writeln!(
            s,
            "{} checks missing from predicted documents (scored the same way)",
            m.missing_checks
        );
    }
    let _ = writeln!(
        s,
        "NLI acc / F1(C) / F1(E): {} of {} hypotheses (those with both Entailment and \
         Contradiction gold labels), NotMentioned documents left out",
        m.binary_hypotheses, m.hypotheses
    );
    let _ = writeln!(
        s,
        "evidence mAP: {} (document, hypothesis) pairs with gold evidence\n",
        m.evidence_pairs
    );
    let _ = writeln!(
        s,
        "{:<10} {:>8} {:>7} {:>7} {:>7} {:>7} {:>9}",
        "", "NLI acc", "F1(C)", "F1(E)", "Acc3", "mAP", "mAP pool"
    );
    let _ = writeln!(
        s,
        "{:<10} {:>8} {:>7} {:>7} {:>7} {:>7} {:>9}\n",
        "overall",
        num(m.nli_acc),
        num(m.f1_c),
        num(m.f1_e),
        num(m.acc3),
        num(m.evidence_map),
        num(m.evidence_map_micro_doc)
    );
    let _ = writeln!(
        s,
        "{:<8} {:<34} {:>4} {:>4} {:>4} {:>4} {:>8} {:>7} {:>7} {:>7} {:>7} {:>9}",
        "id",
        "hypothesis",
        "docs",
        "E",
        "C",
        "NM",
        "NLI acc",
        "F1(C)",
        "F1(E)",
        "Acc3",
        "mAP",
        "mAP pool"
    );
    for h in &m.per_hypothesis {
        let name: String = h.name.as_deref().unwrap_or("").chars().take(34).collect();
        let _ = writeln!(
            s,
            "{:<8} {:<34} {:>4} {:>4} {:>4} {:>4} {:>8} {:>7} {:>7} {:>7} {:>7} {:>9}",
            h.id,
            name,
            h.documents,
            h.entailment,
            h.contradiction,
            h.not_mentioned,
            num(h.nli_acc),
            num(h.f1_c),
            num(h.f1_e),
            num(Some(h.acc3)),
            num(h.evidence_map),
            num(h.evidence_map_micro_doc)
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn table_shows_overall_and_per_hypothesis_numbers() {
        let dir =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../hone-eval/tests/fixtures/contractnli");
        let m =
            contractnli::evaluate_files(&dir.join("gold.json"), &dir.join("pred.jsonl")).unwrap();
        let t = table(&m);
        assert!(
            t.contains("4 gold documents, 3 predicted, 1 missing"),
            "{t}"
        );
        // nli_acc 1/2, f1_c 1/3, f1_e 3/4, acc3 7/12, evidence_map 35/54, pooled 121/216.
        let overall = t.lines().find(|l| l.starts_with("overall")).unwrap();
        assert_eq!(
            overall.split_whitespace().collect::<Vec<_>>(),
            ["overall", "0.500", "0.333", "0.750", "0.583", "0.648", "0.560"]
        );
        // nda-2 has no Contradiction gold: its NLI numbers are undefined.
        let nda2 = t.lines().find(|l| l.starts_with("nda-2 ")).unwrap();
        assert!(nda2.contains("Technical information only"), "{nda2}");
        let cols: Vec<_> = nda2.split_whitespace().collect();
        assert_eq!(
            cols[cols.len() - 6..],
            ["-", "-", "-", "0.500", "0.500", "0.389"]
        );
    }

    #[test]
    fn errors_name_the_files() {
        let dir =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../hone-eval/tests/fixtures/contractnli");
        let e = run(Args {
            gold: dir.join("gold.json"),
            pred: dir.join("no-such-file.jsonl"),
            json: false,
        })
        .unwrap_err();
        let msg = format!("{e:#}");
        assert!(msg.contains("no-such-file.jsonl"), "{msg}");
        assert!(msg.contains("gold.json"), "{msg}");
    }
}
