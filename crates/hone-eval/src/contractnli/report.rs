//! The comparison reports: `report.json`, `report.md` and a self-contained `report.html`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::bootstrap::{Difference, Reading};
use super::compare::{overall_metrics, Candidate, Comparison};
use super::evaluate::HypothesisMetrics;
use super::table::{Cell, Table, REPORT_DASH};
use crate::{Error, Result};

/// Paths written by [`write_comparison`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComparisonFiles {
    pub json: PathBuf,
    pub markdown: PathBuf,
    pub html: PathBuf,
}

/// Writes `report.json` (the [`Comparison`]), `report.md` and a self-contained `report.html`
/// into `dir` (created if needed), each atomically.
pub fn write_comparison(c: &Comparison, dir: &Path) -> Result<ComparisonFiles> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let files = ComparisonFiles {
        json: dir.join("report.json"),
        markdown: dir.join("report.md"),
        html: dir.join("report.html"),
    };
    let mut json = serde_json::to_vec_pretty(c).map_err(|e| Error::Invalid(e.to_string()))?;
    json.push(b'\n');
    crate::report::write_atomic(&files.json, &json)?;
    crate::report::write_atomic(&files.markdown, comparison_markdown(c).as_bytes())?;
    crate::report::write_atomic(&files.html, comparison_html(c).as_bytes())?;
    Ok(files)
}

fn fmt_num(v: Option<f64>, digits: usize) -> String {
    Cell::Num(v, digits).show(REPORT_DASH)
}

/// The overall table of a comparison, one row per candidate: documents predicted, the
/// [`overall_metrics`], review latency (seconds per document) and documents timed. The Markdown
/// and HTML reports and the terminal ([`super::comparison_text`]) all show this table.
pub fn overall_table(c: &Comparison) -> Table {
    let mut head = vec!["candidate".to_string(), "predicted".to_string()];
    let mut better = vec![None, None];
    if let Some(first) = c.candidates.first() {
        for (n, _) in overall_metrics(&first.metrics) {
            head.push(n.to_string());
            better.push(Some(true));
        }
    }
    for (n, b) in [
        ("p50 s", Some(false)),
        ("p95 s", Some(false)),
        ("mean s", Some(false)),
        ("spans/s", Some(true)),
        ("timed", None),
    ] {
        head.push(n.to_string());
        better.push(b);
    }
    let rows = c
        .candidates
        .iter()
        .map(|k| {
            let (m, l) = (&k.metrics, &k.latency);
            let mut row = vec![
                Cell::Text(k.name.clone()),
                Cell::Text(format!("{}/{}", m.predicted, m.documents)),
            ];
            row.extend(overall_metrics(m).iter().map(|&(_, v)| Cell::Num(v, 3)));
            row.push(Cell::Num(l.p50_s, 3));
            row.push(Cell::Num(l.p95_s, 3));
            row.push(Cell::Num(l.mean_s, 3));
            row.push(Cell::Num(l.spans_per_s, 1));
            row.push(Cell::Text(format!("{}/{}", l.timed, l.documents)));
            row
        })
        .collect();
    Table {
        head,
        rows,
        left: 1,
        better,
    }
}

/// `x` with its sign and 3 decimals, `minus` as the minus sign (0 is `+0.000`).
fn signed(x: f64, minus: &str) -> String {
    let x = if x == 0.0 { 0.0 } else { x };
    format!("{x:+.3}").replace('-', minus)
}

/// A candidate's name and, per [`overall_metrics`] metric, its difference from the first.
type CandidateDifferences<'a> = (&'a str, Vec<(&'static str, Option<&'a Difference>)>);

/// The candidates after the first, each with its differences in [`overall_metrics`] order
/// (`None` where the comparison has none for a metric).
fn differences_by_candidate(c: &Comparison) -> Vec<CandidateDifferences<'_>> {
    let Some(first) = c.candidates.first() else {
        return Vec::new();
    };
    let names = overall_metrics(&first.metrics).map(|x| x.0);
    c.candidates[1..]
        .iter()
        .filter(|k| c.differences.iter().any(|d| d.candidate == k.name))
        .map(|k| {
            let each = names
                .iter()
                .map(|&m| {
                    let d = c
                        .differences
                        .iter()
                        .find(|d| d.candidate == k.name && d.metric == m);
                    (m, d)
                })
                .collect();
            (k.name.as_str(), each)
        })
        .collect()
}

/// A difference and its interval, `+0.022 [−0.031, +0.070]` (with `minus` as the minus sign);
/// `dash` for an undefined difference or interval.
fn difference_cell(d: Option<&Difference>, minus: &str, dash: &str) -> String {
    let Some(delta) = d.and_then(|d| d.delta) else {
        return dash.to_string();
    };
    match d.and_then(|d| d.low.zip(d.high)) {
        Some((low, high)) => format!(
            "{} [{}, {}]",
            signed(delta, minus),
            signed(low, minus),
            signed(high, minus)
        ),
        None => format!("{} [{dash}]", signed(delta, minus)),
    }
}

/// The differences of a comparison as a table: one row per candidate after the first, one
/// column per [`overall_metrics`] metric, each cell the difference from the first candidate on
/// the documents and its 95% paired bootstrap interval, `+0.022 [−0.031, +0.070]` (`minus` as the
/// minus sign, `dash` for what is undefined). `None` when the comparison has no differences
/// (one candidate, or `--bootstrap 0`).
pub fn differences_table(c: &Comparison, minus: &str, dash: &str) -> Option<Table> {
    let rows = differences_by_candidate(c);
    if c.bootstrap.is_none() || rows.is_empty() {
        return None;
    }
    let mut head = vec!["candidate".to_string()];
    head.extend(rows[0].1.iter().map(|(m, _)| m.to_string()));
    let better = vec![None; head.len()];
    let rows = rows
        .iter()
        .map(|(name, each)| {
            let mut row = vec![Cell::Text(name.to_string())];
            row.extend(
                each.iter()
                    .map(|(_, d)| Cell::Text(difference_cell(*d, minus, dash))),
            );
            row
        })
        .collect();
    Some(Table {
        head,
        rows,
        left: 1,
        better,
    })
}

/// "Differences against `recipe` (95% paired bootstrap over the 32 documents, 1000
/// resamples)", names between `quote`s; `None` without differences.
pub(super) fn differences_heading(c: &Comparison, quote: &str) -> Option<String> {
    let b = c.bootstrap.as_ref()?;
    Some(format!(
        "Differences against {quote}{}{quote} (95% paired bootstrap over the {}, {} resamples)",
        b.baseline,
        plural(c.documents, "document"),
        b.resamples
    ))
}

/// One line per candidate after the first: on which metrics its interval lies above 0, below
/// 0, contains 0 (within noise), or is missing (the metric defined on fewer than half of the
/// resamples).
pub(super) fn differences_readings(c: &Comparison, quote: &str) -> Vec<String> {
    let Some(b) = &c.bootstrap else {
        return Vec::new();
    };
    differences_by_candidate(c)
        .iter()
        .map(|(name, each)| {
            let of = |r: Option<Reading>| -> Vec<&str> {
                each.iter()
                    .filter(|(_, d)| d.map(|d| d.reading) == Some(r))
                    .map(|(m, _)| *m)
                    .collect()
            };
            let mut parts = Vec::new();
            for r in [Reading::Above, Reading::Below, Reading::WithinNoise] {
                let ms = of(Some(r));
                if ms.len() == each.len() {
                    parts.push(format!("{} on every metric", r.as_str()));
                } else if !ms.is_empty() {
                    parts.push(format!("{} on {}", r.as_str(), ms.join(", ")));
                }
            }
            let none: Vec<String> = each
                .iter()
                .filter_map(|(m, d)| match d {
                    Some(d) if d.reading.is_none() => Some(format!(
                        "{m} (defined on {} of {} resamples)",
                        d.resamples, b.resamples
                    )),
                    None => Some(format!("{m} (not computed)")),
                    _ => None,
                })
                .collect();
            if !none.is_empty() {
                parts.push(format!("no interval for {}", none.join(", ")));
            }
            format!(
                "{quote}{name}{quote} against {quote}{}{quote}: {}.",
                b.baseline,
                parts.join("; ")
            )
        })
        .collect()
}

/// What the differences' intervals are and how they read.
const DIFFERENCES_NOTE: &str = "Each cell: the candidate minus the baseline on the documents, \
     and the 2.5th to 97.5th percentile of that difference over resamples of the documents \
     (drawn with replacement, the same draw for every candidate). Above: the interval lies above \
     0; below: below 0; within noise: it contains 0.";

/// Per hypothesis (in the order of the first candidate, all share the gold): id, name, and
/// each candidate's metrics for it.
fn per_hypothesis_rows(
    c: &Comparison,
) -> Vec<(&HypothesisMetrics, Vec<Option<&HypothesisMetrics>>)> {
    c.candidates[0]
        .metrics
        .per_hypothesis
        .iter()
        .map(|h| {
            let each = c
                .candidates
                .iter()
                .map(|k| k.metrics.per_hypothesis.iter().find(|x| x.id == h.id))
                .collect();
            (h, each)
        })
        .collect()
}

const PER_HYPOTHESIS_METRICS: [&str; 3] = ["NLI acc", "Acc3", "mAP"];

fn hypothesis_values(h: Option<&HypothesisMetrics>) -> [Option<f64>; 3] {
    match h {
        Some(h) => [h.nli_acc, Some(h.acc3), h.evidence_map],
        None => [None; 3],
    }
}

const LATENCY_NOTE: &str = "Latency is each predicted document's `timing.total_ms` in seconds \
     (p50 / p95 interpolate linearly between closest ranks); documents without timing are \
     counted in `timed`, never guessed. Spans per second: the spans of the timed documents that \
     report them over their time.";

/// The Markdown report: the overall table, one line per candidate, the differences from the
/// first candidate ([`differences_table`] and how each reads, when there are any), the
/// per-hypothesis table.
pub fn comparison_markdown(c: &Comparison) -> String {
    let mut s = String::new();
    let hyps = c.candidates.first().map_or(0, |k| k.metrics.hypotheses);
    let _ = writeln!(
        s,
        "# ContractNLI comparison\n\nGold: `{}` ({} documents, {} hypotheses).\n",
        c.gold.display(),
        c.documents,
        hyps
    );
    if c.candidates.is_empty() {
        s.push_str("No candidates.\n");
        return s;
    }
    s.push_str(&overall_table(c).markdown());
    s.push('\n');
    for k in &c.candidates {
        let _ = writeln!(s, "- {}", candidate_line(k, "`"));
    }
    if let (Some(heading), Some(table)) = (
        differences_heading(c, "`"),
        differences_table(c, "−", REPORT_DASH),
    ) {
        let _ = writeln!(s, "\n## {heading}\n");
        s.push_str(&table.markdown());
        s.push('\n');
        for line in differences_readings(c, "`") {
            let _ = writeln!(s, "- {line}");
        }
        let _ = writeln!(s, "\n{DIFFERENCES_NOTE}");
    }
    s.push_str("\n## Per hypothesis\n\n| id | hypothesis | docs |");
    for k in &c.candidates {
        for m in PER_HYPOTHESIS_METRICS {
            let _ = write!(s, " {m} ({}) |", k.name.replace('|', "\\|"));
        }
    }
    let cols = 3 + PER_HYPOTHESIS_METRICS.len() * c.candidates.len();
    let _ = writeln!(s, "\n|---|---|{}", "---:|".repeat(cols - 2));
    for (h, each) in per_hypothesis_rows(c) {
        let _ = write!(
            s,
            "| {} | {} | {} |",
            h.id,
            h.name.as_deref().unwrap_or("").replace('|', "\\|"),
            h.documents
        );
        for k in each {
            for v in hypothesis_values(k) {
                let _ = write!(s, " {} |", fmt_num(v, 3));
            }
        }
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "\nNLI acc, F1(C) and F1(E) only count the hypotheses whose gold labels include both \
         Entailment and Contradiction (`–` elsewhere), over their Entailment / Contradiction \
         documents; mAP is the evidence mean average precision with each hypothesis's documents \
         pooled (the ContractNLI paper's), mAP/doc the mean over documents of each document's own. {LATENCY_NOTE}"
    );
    s
}

/// "name: path, predicted a of b gold documents (...), t of n timed".
pub(super) fn candidate_line(k: &Candidate, quote: &str) -> String {
    let (m, l) = (&k.metrics, &k.latency);
    let mut s = format!(
        "{q}{}{q}: {q}{}{q}, {} of {} gold documents predicted",
        k.name,
        k.path.display(),
        m.predicted,
        m.documents,
        q = quote
    );
    if m.missing > 0 || m.missing_checks > 0 {
        let _ = write!(
            s,
            " (missing, scored as NotMentioned: {}, {})",
            plural(m.missing, "document"),
            plural(m.missing_checks, "check")
        );
    }
    let _ = write!(
        s,
        "; {} of {} timed, {} without timing",
        l.timed,
        plural(l.documents, "document"),
        l.untimed
    );
    s
}

pub(super) fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

const COMPARISON_CSS: &str = "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}\
th:first-child,td:first-child{text-align:left}th{background:#f0f4f8}.best{font-weight:bold;background:#e6f4ea}\
.above{background:#e6f4ea}.below{background:#fbe9e7}.charts{display:flex;flex-wrap:wrap;gap:16px}.muted{color:#666}td.name,th.name{text-align:left}th[colspan]{text-align:center}";

/// The differences section of the HTML report (nothing without differences): the heading, the
/// table with intervals above 0 in green and below 0 in red, the readings.
fn differences_html(c: &Comparison, s: &mut String) {
    use crate::svg::esc;
    let (Some(b), Some(table)) = (&c.bootstrap, differences_table(c, "−", REPORT_DASH)) else {
        return;
    };
    let _ = write!(
        s,
        "<h2>Differences against <code>{}</code></h2><p class=\"muted\">95% paired bootstrap \
         over the {}, {} resamples.</p><table><tr>",
        esc(&b.baseline),
        plural(c.documents, "document"),
        b.resamples
    );
    for h in &table.head {
        let _ = write!(s, "<th>{}</th>", esc(h));
    }
    s.push_str("</tr>");
    for (row, (_, each)) in table.rows.iter().zip(differences_by_candidate(c)) {
        s.push_str("<tr>");
        for (j, cell) in row.iter().enumerate() {
            let reading = j
                .checked_sub(1)
                .and_then(|m| each.get(m))
                .and_then(|(_, d)| d.and_then(|d| d.reading));
            let cls = match reading {
                Some(Reading::Above) => " class=\"above\"",
                Some(Reading::Below) => " class=\"below\"",
                _ => "",
            };
            let _ = write!(s, "<td{cls}>{}</td>", esc(&cell.show(REPORT_DASH)));
        }
        s.push_str("</tr>");
    }
    s.push_str("</table><ul>");
    for line in differences_readings(c, "") {
        let _ = write!(s, "<li>{}</li>", esc(&line));
    }
    let _ = write!(s, "</ul><p class=\"muted\">{}</p>", esc(DIFFERENCES_NOTE));
}

/// The self-contained HTML report: the overall table (best values highlighted), the differences
/// from the first candidate (when there are any), a bar chart of the overall metrics, the latency histogram, a bar chart of evidence mAP per hypothesis and
/// the per-hypothesis table.
pub fn comparison_html(c: &Comparison) -> String {
    use crate::svg::{self, esc};
    let mut s = String::new();
    let hyps = c.candidates.first().map_or(0, |k| k.metrics.hypotheses);
    let _ = write!(
        s,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>hone: ContractNLI comparison</title>\
         <style>{COMPARISON_CSS}</style></head><body><h1>ContractNLI comparison</h1>\
         <p class=\"muted\">Gold: <code>{}</code> ({} documents, {} hypotheses).</p>",
        esc(&c.gold.display().to_string()),
        c.documents,
        hyps
    );
    if c.candidates.is_empty() {
        s.push_str("<p>No candidates.</p></body></html>\n");
        return s;
    }
    let table = overall_table(c);
    let best = table.best_rows();
    s.push_str("<h2>Overall</h2><table><tr>");
    for h in &table.head {
        let _ = write!(s, "<th>{}</th>", esc(h));
    }
    s.push_str("</tr>");
    for (i, row) in table.rows.iter().enumerate() {
        s.push_str("<tr>");
        for (j, cell) in row.iter().enumerate() {
            let cls = if best[j] == Some(i) {
                " class=\"best\""
            } else {
                ""
            };
            let _ = write!(s, "<td{cls}>{}</td>", esc(&cell.show(REPORT_DASH)));
        }
        s.push_str("</tr>");
    }
    s.push_str("</table><ul>");
    for k in &c.candidates {
        let _ = write!(s, "<li>{}</li>", esc(&candidate_line(k, "")));
    }
    s.push_str("</ul>");
    differences_html(c, &mut s);
    s.push_str("<div class=\"charts\">");
    let names: Vec<String> = overall_metrics(&c.candidates[0].metrics)
        .iter()
        .map(|x| x.0.to_string())
        .collect();
    let series: Vec<(String, Vec<Option<f64>>)> = c
        .candidates
        .iter()
        .map(|k| {
            let v = overall_metrics(&k.metrics).iter().map(|x| x.1).collect();
            (k.name.clone(), v)
        })
        .collect();
    s.push_str(&svg::grouped_bars("Overall metrics", &names, &series, 1.0));
    let lat: Vec<(String, Vec<f64>)> = c
        .candidates
        .iter()
        .map(|k| (k.name.clone(), k.latency.latencies_s.clone()))
        .collect();
    s.push_str(&svg::latency_histogram(
        "Review latency per document (s)",
        &lat,
    ));
    s.push_str("</div>");

    let per = per_hypothesis_rows(c);
    let ids: Vec<String> = per.iter().map(|(h, _)| h.id.clone()).collect();
    let map_series: Vec<(String, Vec<Option<f64>>)> = c
        .candidates
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let v = per
                .iter()
                .map(|(_, each)| each[i].and_then(|h| h.evidence_map))
                .collect();
            (k.name.clone(), v)
        })
        .collect();
    s.push_str("<h2>Per hypothesis</h2><div class=\"charts\">");
    s.push_str(&svg::grouped_bars(
        "Evidence mAP per hypothesis",
        &ids,
        &map_series,
        1.0,
    ));
    s.push_str("</div><table><tr><th rowspan=\"2\">id</th><th rowspan=\"2\" class=\"name\">hypothesis</th><th rowspan=\"2\">docs</th>");
    for k in &c.candidates {
        let _ = write!(
            s,
            "<th colspan=\"{}\">{}</th>",
            PER_HYPOTHESIS_METRICS.len(),
            esc(&k.name)
        );
    }
    s.push_str("</tr><tr>");
    for _ in &c.candidates {
        for m in PER_HYPOTHESIS_METRICS {
            let _ = write!(s, "<th>{m}</th>");
        }
    }
    s.push_str("</tr>");
    for (h, each) in &per {
        let _ = write!(
            s,
            "<tr><td>{}</td><td class=\"name\">{}</td><td>{}</td>",
            esc(&h.id),
            esc(h.name.as_deref().unwrap_or("")),
            h.documents
        );
        for k in each {
            for v in hypothesis_values(*k) {
                let _ = write!(s, "<td>{}</td>", fmt_num(v, 3));
            }
        }
        s.push_str("</tr>");
    }
    let _ = writeln!(
        s,
        "</table><p class=\"muted\">NLI acc, F1(C) and F1(E) only count the hypotheses whose gold \
         labels include both Entailment and Contradiction (– elsewhere). {}</p>\
         <p class=\"muted\">Made by hone.</p></body></html>",
        esc(&LATENCY_NOTE.replace('`', ""))
    );
    s
}
