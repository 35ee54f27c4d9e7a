//! What `hone eval contractnli` prints on the terminal: the reports' tables
//! ([`super::overall_table`]) as aligned text, and one predictions file's metrics per
//! hypothesis.

use std::fmt::Write as _;

use super::compare::{overall_metrics, Comparison};
use super::evaluate::ContractNliMetrics;
use super::report::{
    candidate_line, differences_heading, differences_readings, differences_table, overall_table,
};
use super::table::{Cell, Table};

/// Several predictions files: the gold counts, the [`overall_table`] (one row per candidate:
/// metrics and review latency), what each candidate is made of, what the columns mean, and
/// (when the comparison has them) the [`differences_table`] against the first candidate with
/// how each candidate reads.
pub fn comparison_text(c: &Comparison) -> String {
    let mut s = String::new();
    let (hyps, binary) = c.candidates.first().map_or((0, 0), |k| {
        (k.metrics.hypotheses, k.metrics.binary_hypotheses)
    });
    let _ = writeln!(
        s,
        "{}: {} gold documents, {} hypotheses ({} with both Entailment and Contradiction gold \
         labels count in NLI acc / F1(C) / F1(E))\n",
        c.gold.display(),
        c.documents,
        hyps,
        binary
    );
    s.push_str(&overall_table(c).text());
    s.push('\n');
    for k in &c.candidates {
        let _ = writeln!(s, "{}", candidate_line(k, ""));
    }
    let _ = writeln!(
        s,
        "\npredicted: gold documents predicted (the others scored as NotMentioned with no \
         evidence); p50 / p95 / mean s: seconds per document from timing.total_ms; spans/s: the \
         spans of the timed documents that report them over their time; timed: predicted \
         documents with timing (the others are left out of the latency, not guessed)"
    );
    if let (Some(heading), Some(table)) =
        (differences_heading(c, ""), differences_table(c, "-", "-"))
    {
        let _ = writeln!(s, "\n{heading}:\n");
        s.push_str(&table.text());
        s.push('\n');
        for line in differences_readings(c, "") {
            let _ = writeln!(s, "{line}");
        }
        let _ = writeln!(
            s,
            "\neach cell: candidate minus baseline [2.5th, 97.5th percentile over resamples of the \
             documents]; above / below: the interval lies above / below 0; within noise: it \
             contains 0"
        );
    }
    s
}

/// One predictions file: counts, the overall numbers, then one row per hypothesis (gold label
/// counts and its metrics).
pub fn metrics_text(m: &ContractNliMetrics) -> String {
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
    s.push_str(&metrics_overall_table(m).text());
    s.push('\n');
    s.push_str(&hypothesis_table(m).text());
    s
}

/// The overall numbers of one predictions file, one row (`overall`).
pub fn metrics_overall_table(m: &ContractNliMetrics) -> Table {
    let metrics = overall_metrics(m);
    let mut head = vec![String::new()];
    head.extend(metrics.iter().map(|x| x.0.to_string()));
    let mut row = vec![Cell::Text("overall".into())];
    row.extend(metrics.iter().map(|x| Cell::Num(x.1, 3)));
    Table {
        better: vec![Some(true); head.len()],
        head,
        rows: vec![row],
        left: 1,
    }
}

/// One row per hypothesis: id, name (at most 34 characters), documents, gold Entailment /
/// Contradiction / NotMentioned counts, then its metrics.
pub fn hypothesis_table(m: &ContractNliMetrics) -> Table {
    let head: Vec<String> = [
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
        "mAP/doc",
    ]
    .map(String::from)
    .to_vec();
    let rows = m
        .per_hypothesis
        .iter()
        .map(|h| {
            let name: String = h.name.as_deref().unwrap_or("").chars().take(34).collect();
            vec![
                Cell::Text(h.id.clone()),
                Cell::Text(name),
                Cell::Text(h.documents.to_string()),
                Cell::Text(h.entailment.to_string()),
                Cell::Text(h.contradiction.to_string()),
                Cell::Text(h.not_mentioned.to_string()),
                Cell::Num(h.nli_acc, 3),
                Cell::Num(h.f1_c, 3),
                Cell::Num(h.f1_e, 3),
                Cell::Num(Some(h.acc3), 3),
                Cell::Num(h.evidence_map, 3),
                Cell::Num(h.evidence_map_macro_doc, 3),
            ]
        })
        .collect();
    let mut better = vec![None; 6];
    better.extend([Some(true); 6]);
    Table {
        head,
        rows,
        left: 2,
        better,
    }
}
