//! Reports: `report.json` (everything measured), `report.md` (the comparison table for a pull
//! request or a terminal), `report.html` (self-contained, with SVG charts: per-class F1 bars,
//! confusion matrices, a latency histogram and the training loss curve of adapter candidates),
//! and `outputs.jsonl` (every answer, for human evaluation). All written atomically.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::runner::EvalReport;
use crate::svg::{self, esc};
use crate::task::TaskReport;

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so a
/// reader never sees half a file (hone-data's atomic writer; one mechanism for every crate).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(hone_data::atomic::write_file(path, bytes)?)
}

/// Paths of the files written by [`write_all`].
pub struct Written {
    pub json: PathBuf,
    pub markdown: PathBuf,
    pub html: PathBuf,
    pub outputs: PathBuf,
}

/// Writes every report file into `dir`.
pub fn write_all(r: &EvalReport, dir: &Path) -> Result<Written> {
    let w = Written {
        json: dir.join("report.json"),
        markdown: dir.join("report.md"),
        html: dir.join("report.html"),
        outputs: dir.join("outputs.jsonl"),
    };
    let json = serde_json::to_vec_pretty(r).map_err(|e| Error::Invalid(e.to_string()))?;
    write_atomic(&w.json, &json)?;
    write_atomic(&w.markdown, markdown(r).as_bytes())?;
    write_atomic(&w.html, html(r).as_bytes())?;
    let mut lines = String::new();
    for o in &r.outputs {
        lines.push_str(&serde_json::to_string(o).map_err(|e| Error::Invalid(e.to_string()))?);
        lines.push('\n');
    }
    write_atomic(&w.outputs, lines.as_bytes())?;
    Ok(w)
}

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.digits$}"),
        _ => "–".into(),
    }
}

fn fmt_usd(v: Option<f64>) -> String {
    match v {
        Some(x) if x >= 1.0 => format!("${x:.2}"),
        Some(x) => format!("${x:.4}"),
        None => "–".into(),
    }
}

/// The comparison table's header and rows (shared by Markdown and HTML).
fn table(r: &EvalReport) -> (Vec<String>, Vec<Vec<String>>) {
    let metric_names: Vec<&str> = r
        .candidates
        .first()
        .map(|c| c.metrics.headline().into_iter().map(|(n, _)| n).collect())
        .unwrap_or_default();
    let mut head = vec!["candidate".to_string()];
    head.extend(metric_names.iter().map(|s| s.to_string()));
    head.extend(
        [
            "failures",
            "p50 s",
            "p95 s",
            "p99 s",
            "queries/s",
            "cost / 1k",
            "general knowledge",
        ]
        .map(String::from),
    );
    let rows = r
        .candidates
        .iter()
        .map(|c| {
            let mut row = vec![if c.fewshot > 0 {
                format!("{} ({}-shot)", c.name, c.fewshot)
            } else {
                c.name.clone()
            }];
            row.extend(c.metrics.headline().into_iter().map(|(_, v)| fmt_opt(v, 3)));
            row.push(c.failures.to_string());
            let l = c.latency.as_ref();
            row.push(fmt_opt(l.map(|l| l.p50_s), 3));
            row.push(fmt_opt(l.map(|l| l.p95_s), 3));
            row.push(fmt_opt(l.map(|l| l.p99_s), 3));
            row.push(fmt_opt(l.map(|l| l.throughput_qps), 2));
            row.push(fmt_usd(c.cost_per_1k_usd));
            row.push(
                c.regression
                    .as_ref()
                    .map(|g| format!("{}/{} ({:.0}%)", g.right, g.questions, 100.0 * g.accuracy))
                    .unwrap_or_else(|| "–".into()),
            );
            row
        })
        .collect();
    (head, rows)
}

fn break_even_lines(r: &EvalReport) -> Vec<String> {
    r.break_even
        .iter()
        .map(|b| match b.queries {
            Some(q) => format!(
                "`{}` costs {} per 1,000 queries against {} for `{}`; its training cost {} \
                 (at ${:.2}/h), paid back after {:.0} queries.",
                b.local,
                fmt_usd(Some(b.local_per_1k_usd)),
                fmt_usd(Some(b.endpoint_per_1k_usd)),
                b.endpoint,
                fmt_usd(Some(b.training_cost_usd)),
                r.machine_usd_per_hour,
                q
            ),
            None => format!(
                "`{}` costs {} per 1,000 queries, not less than `{}` ({}): the fine-tune never \
                 pays back on cost alone.",
                b.local,
                fmt_usd(Some(b.local_per_1k_usd)),
                b.endpoint,
                fmt_usd(Some(b.endpoint_per_1k_usd))
            ),
        })
        .collect()
}

/// The Markdown report.
pub fn markdown(r: &EvalReport) -> String {
    let mut s = format!(
        "# Evaluation: {} examples from {}\n\nTask: {:?}.\n\n",
        r.examples,
        r.eval_file.display(),
        r.task.kind
    );
    let (head, rows) = table(r);
    let _ = writeln!(s, "| {} |", head.join(" | "));
    let _ = writeln!(s, "|{}", "---|".repeat(head.len()));
    for row in rows {
        let _ = writeln!(s, "| {} |", row.join(" | "));
    }
    s.push('\n');
    for c in &r.candidates {
        let _ = writeln!(
            s,
            "- `{}`: {} ({}, {} cached)",
            c.name, c.description, c.kind, c.cached
        );
    }
    let be = break_even_lines(r);
    if !be.is_empty() {
        s.push_str("\n## Fine-tune or prompt?\n\n");
        for l in be {
            let _ = writeln!(s, "- {l}");
        }
    }
    s.push_str(
        "\nLatency is per query, one at a time; cost per 1,000 queries for local candidates is \
         the machine price times the measured time, for endpoints the token prices.\n",
    );
    s
}

const CSS: &str = "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}\
th:first-child,td:first-child{text-align:left}th{background:#f0f4f8}.best{font-weight:bold;background:#e6f4ea}\
.charts{display:flex;flex-wrap:wrap;gap:16px}.muted{color:#666}.bad{background:#fdecea}\
pre{white-space:pre-wrap;margin:0;font-size:12px}details{margin:.5em 0}";

/// The self-contained HTML report.
pub fn html(r: &EvalReport) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>hone evaluation</title>\
         <style>{CSS}</style></head><body><h1>Evaluation</h1><p class=\"muted\">{} examples from <code>{}</code>; task: {:?}.</p>",
        r.examples,
        esc(&r.eval_file.display().to_string()),
        r.task.kind
    );
    // Comparison table, the best value of each metric column in bold.
    let (head, rows) = table(r);
    let n_metrics = r
        .candidates
        .first()
        .map(|c| c.metrics.headline().len())
        .unwrap_or(0);
    let best: Vec<Option<usize>> = (0..n_metrics)
        .map(|m| {
            let lower_better = head[m + 1] == "unparseable";
            let vals: Vec<Option<f64>> = r
                .candidates
                .iter()
                .map(|c| c.metrics.headline()[m].1)
                .collect();
            let mut best: Option<(usize, f64)> = None;
            for (i, v) in vals.iter().enumerate() {
                if let Some(v) = v {
                    let better = match best {
                        None => true,
                        Some((_, b)) => {
                            if lower_better {
                                *v < b
                            } else {
                                *v > b
                            }
                        }
                    };
                    if better {
                        best = Some((i, *v));
                    }
                }
            }
            best.map(|b| b.0)
        })
        .collect();
    s.push_str("<h2>Comparison</h2><table><tr>");
    for h in &head {
        let _ = write!(s, "<th>{}</th>", esc(h));
    }
    s.push_str("</tr>");
    for (i, row) in rows.iter().enumerate() {
        s.push_str("<tr>");
        for (j, cell) in row.iter().enumerate() {
            let cls =
                if j >= 1 && j <= n_metrics && best[j - 1] == Some(i) && r.candidates.len() > 1 {
                    " class=\"best\""
                } else {
                    ""
                };
            let _ = write!(s, "<td{cls}>{}</td>", esc(cell));
        }
        s.push_str("</tr>");
    }
    s.push_str("</table><ul>");
    for c in &r.candidates {
        let _ = write!(
            s,
            "<li><b>{}</b>: {} ({}; {} of {} answers from the cache)</li>",
            esc(&c.name),
            esc(&c.description),
            esc(&c.kind),
            c.cached,
            r.examples
        );
    }
    s.push_str("</ul>");
    let be = break_even_lines(r);
    if !be.is_empty() {
        s.push_str("<h2>Fine-tune or prompt?</h2><ul>");
        for l in be {
            let _ = write!(s, "<li>{}</li>", esc(&l.replace('`', "")));
        }
        s.push_str("</ul>");
    }

    // Per-class F1.
    let classes: Vec<String> = r
        .candidates
        .first()
        .map(|c| c.metrics.per_class_f1().into_iter().map(|x| x.0).collect())
        .unwrap_or_default();
    s.push_str("<div class=\"charts\">");
    if !classes.is_empty() {
        let series: Vec<(String, Vec<Option<f64>>)> = r
            .candidates
            .iter()
            .map(|c| {
                (
                    c.name.clone(),
                    c.metrics.per_class_f1().into_iter().map(|x| x.1).collect(),
                )
            })
            .collect();
        let title = if matches!(r.candidates[0].metrics, TaskReport::Extraction(_)) {
            "Token F1 per field"
        } else {
            "F1 per class"
        };
        s.push_str(&svg::grouped_bars(title, &classes, &series, 1.0));
    }
    let lat: Vec<(String, Vec<f64>)> = r
        .candidates
        .iter()
        .map(|c| (c.name.clone(), c.latencies_s.clone()))
        .collect();
    s.push_str(&svg::latency_histogram("Latency per query", &lat));
    s.push_str("</div>");

    // Confusion matrices.
    let mut cms = String::new();
    for c in &r.candidates {
        if let TaskReport::Classification(cr) = &c.metrics {
            let mut cols = cr.confusion.labels.clone();
            cols.push("unparseable".into());
            let m: Vec<Vec<u64>> = cr
                .confusion
                .matrix
                .iter()
                .zip(&cr.confusion.unparseable)
                .map(|(row, u)| {
                    row.iter()
                        .map(|&x| x as u64)
                        .chain(std::iter::once(*u as u64))
                        .collect()
                })
                .collect();
            cms.push_str(&svg::confusion_heatmap(
                &format!("Confusion matrix: {}", c.name),
                &cr.confusion.labels,
                &cols,
                &m,
            ));
        }
    }
    if !cms.is_empty() {
        let _ = write!(
            s,
            "<h2>Confusion matrices</h2><div class=\"charts\">{cms}</div>"
        );
    }

    // Training curves.
    let curves: Vec<_> = r
        .candidates
        .iter()
        .filter_map(|c| {
            c.training
                .as_ref()
                .and_then(|t| t.loss_svg.as_ref().map(|svg| (c, t, svg)))
        })
        .collect();
    if !curves.is_empty() {
        s.push_str("<h2>Training</h2><div class=\"charts\">");
        for (c, t, curve) in curves {
            let _ = write!(
                s,
                "<figure><figcaption>{}: trained in {} s, final train loss {}, best validation loss {}</figcaption>{curve}</figure>",
                esc(&c.name),
                fmt_opt(t.seconds, 0),
                fmt_opt(t.final_train_loss, 4),
                fmt_opt(t.best_val_loss, 4)
            );
        }
        s.push_str("</div>");
    }

    // Regression set.
    let regs: Vec<_> = r
        .candidates
        .iter()
        .filter_map(|c| c.regression.as_ref().map(|g| (c, g)))
        .collect();
    if !regs.is_empty() {
        s.push_str(
            "<h2>General knowledge (what the fine-tune forgot)</h2><table><tr><th>topic</th>",
        );
        for (c, _) in &regs {
            let _ = write!(s, "<th>{}</th>", esc(&c.name));
        }
        s.push_str("</tr>");
        for (t, (topic, _, total)) in regs[0].1.by_topic.iter().enumerate() {
            let _ = write!(s, "<tr><td>{} ({total})</td>", esc(topic));
            for (_, g) in &regs {
                let v = g.by_topic.get(t).map(|x| x.1).unwrap_or(0);
                let _ = write!(s, "<td>{v}</td>");
            }
            s.push_str("</tr>");
        }
        s.push_str("<tr><th>all</th>");
        for (_, g) in &regs {
            let _ = write!(
                s,
                "<th>{}/{} ({:.0}%)</th>",
                g.right,
                g.questions,
                100.0 * g.accuracy
            );
        }
        s.push_str("</tr></table>");
    }

    // Answers side by side (first 50 examples).
    s.push_str("<h2>Answers</h2><details><summary>The first 50 examples, every candidate</summary><table><tr><th>id</th><th>reference</th>");
    for c in &r.candidates {
        let _ = write!(s, "<th>{}</th>", esc(&c.name));
    }
    s.push_str("</tr>");
    let ids: Vec<&str> = {
        let mut seen = std::collections::HashSet::new();
        r.outputs
            .iter()
            .map(|o| o.id.as_str())
            .filter(|id| seen.insert(*id))
            .take(50)
            .collect()
    };
    for id in ids {
        let reference = r
            .outputs
            .iter()
            .find(|o| o.id == id)
            .and_then(|o| o.reference.clone())
            .unwrap_or_default();
        let _ = write!(
            s,
            "<tr><td>{}</td><td><pre>{}</pre></td>",
            esc(id),
            esc(&reference)
        );
        for c in &r.candidates {
            match r
                .outputs
                .iter()
                .find(|o| o.id == id && o.candidate == c.name)
            {
                Some(o) => {
                    let cls = if o.parsed_ok { "" } else { " class=\"bad\"" };
                    let text = o
                        .error
                        .as_deref()
                        .map(|e| format!("error: {e}"))
                        .unwrap_or_else(|| o.output.clone());
                    let _ = write!(s, "<td{cls}><pre>{}</pre></td>", esc(&text));
                }
                None => s.push_str("<td></td>"),
            }
        }
        s.push_str("</tr>");
    }
    s.push_str("</table></details><p class=\"muted\">Made by hone. Answers that could not be parsed are shaded and counted as wrong.</p></body></html>\n");
    s
}
