//! The report of `hone eval route`: the routing curve ([`crate::route_curve`]) with what it was
//! computed from, as `route.json`, `route.md` (the table the terminal shows) and `route.html`
//! (the table and two SVG charts: accuracy against cost per 1,000 units, and accuracy and routed
//! share against the threshold). Written atomically.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::report::write_atomic;
use crate::route_curve::{Choice, Policy, RoutePoint};
use crate::svg::{self, esc, Mark};

/// Everything `hone eval route` measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RouteReport {
    /// Where the answers came from (files), for the reader.
    pub source: String,
    /// The small (first) arm's name.
    pub small: String,
    /// The large (fallback) arm's name.
    pub large: String,
    /// What the confidence is, e.g. "mean token log-probability".
    pub confidence: String,
    /// What the accuracy is, e.g. "accuracy" or "NLI accuracy (macro over hypotheses)".
    pub accuracy: String,
    /// What a query is ("query", "check") and what a cost unit is ("query", "document").
    pub query: String,
    pub unit: String,
    pub queries: usize,
    pub units: usize,
    /// Mean cost per 1,000 units of each arm, USD, and how it was obtained.
    pub small_cost_per_1k_usd: f64,
    pub large_cost_per_1k_usd: f64,
    pub cost_source: String,
    pub points: Vec<RoutePoint>,
    pub choice: Choice,
}

impl RouteReport {
    /// The point of the small arm alone (never routing).
    pub fn small_only(&self) -> &RoutePoint {
        &self.points[0]
    }

    /// The point of the large arm alone (always routing).
    pub fn large_only(&self) -> &RoutePoint {
        &self.points[self.points.len() - 1]
    }

    /// One sentence: the chosen threshold, or why there is none.
    pub fn verdict(&self) -> String {
        let c = &self.choice;
        match c.chosen {
            Some(i) => {
                let p = &self.points[i];
                let how = match p.policy {
                    Policy::Never => format!("never route (the small arm `{}` alone)", self.small),
                    Policy::Always => {
                        format!("always route (the large arm `{}` alone)", self.large)
                    }
                    Policy::Below => format!(
                        "threshold {} (route a {} to `{}` when its confidence is below it)",
                        p.threshold_label(),
                        self.query,
                        self.large
                    ),
                };
                format!(
                    "Chosen: {how}: {} {:.4} (target {:.4}), {:.1}% routed, ${} per 1,000 {}s.{}",
                    self.accuracy,
                    p.accuracy,
                    c.target,
                    100.0 * p.routed_share,
                    usd(p.cost_per_1k_usd),
                    self.unit,
                    self.worse_large()
                )
            }
            None => {
                let p = &self.points[c.best];
                format!(
                    "No threshold reaches the target {} of {:.4}; the most accurate point is {} \
                     ({:.4}, {:.1}% routed, ${} per 1,000 {}s).{}",
                    self.accuracy,
                    c.target,
                    p.threshold_label(),
                    p.accuracy,
                    100.0 * p.routed_share,
                    usd(p.cost_per_1k_usd),
                    self.unit,
                    self.worse_large()
                )
            }
        }
    }

    /// A warning when the large arm alone is less accurate than the small arm alone.
    fn worse_large(&self) -> String {
        let (s, l) = (self.small_only().accuracy, self.large_only().accuracy);
        if l < s {
            format!(
                " Note: the large arm `{}` alone ({l:.4}) is less accurate than the small arm `{}` alone ({s:.4}).",
                self.large, self.small
            )
        } else {
            String::new()
        }
    }

    /// The rows a table shows: every point when there are at most `max` of them; else the
    /// two ends, the chosen and best points, and the points nearest to each tenth of routed
    /// share, in curve order.
    pub fn summary_rows(&self, max: usize) -> Vec<usize> {
        let n = self.points.len();
        if n <= max {
            return (0..n).collect();
        }
        let mut rows = vec![0, n - 1, self.choice.best];
        rows.extend(self.choice.chosen);
        for k in 1..10 {
            let want = k as f64 / 10.0;
            if let Some(i) = (0..n).min_by(|&a, &b| {
                (self.points[a].routed_share - want)
                    .abs()
                    .total_cmp(&(self.points[b].routed_share - want).abs())
            }) {
                rows.push(i);
            }
        }
        rows.sort_unstable();
        rows.dedup();
        rows
    }
}

/// Dollars with three significant digits however small (a cheap arm costs millionths of a
/// dollar per document).
pub fn usd(x: f64) -> String {
    if !x.is_finite() || x == 0.0 {
        return format!("{x}");
    }
    let decimals = (2 - x.abs().log10().floor() as i32).clamp(2, 12) as usize;
    format!("{x:.decimals$}")
}

fn mark(r: &RouteReport, i: usize) -> &'static str {
    if r.choice.chosen == Some(i) {
        "chosen"
    } else if r.choice.best == i && r.choice.chosen.is_none() {
        "best"
    } else {
        ""
    }
}

/// The Markdown table of [`RouteReport::summary_rows`] and the verdict (what the terminal
/// prints, and `route.md`).
pub fn markdown(r: &RouteReport) -> String {
    let mut s = format!(
        "# Routing `{}` → `{}`\n\n{} {}s in {} {}s from {}. Confidence: {}. Cost: {}.\n\n",
        r.small,
        r.large,
        r.queries,
        r.query,
        r.units,
        r.unit,
        r.source,
        r.confidence,
        r.cost_source
    );
    let _ = writeln!(
        s,
        "| threshold | routed | {} | $ per 1,000 {}s | |\n|---|---|---|---|---|",
        r.accuracy, r.unit
    );
    for i in r.summary_rows(24) {
        let p = &r.points[i];
        let _ = writeln!(
            s,
            "| {} | {:.1}% | {:.4} | {} | {} |",
            p.threshold_label(),
            100.0 * p.routed_share,
            p.accuracy,
            usd(p.cost_per_1k_usd),
            mark(r, i)
        );
    }
    let _ = writeln!(
        s,
        "\n{} of {} thresholds shown (route.json has them all). {}",
        r.summary_rows(24).len(),
        r.points.len(),
        r.verdict()
    );
    s
}

fn point_title(r: &RouteReport, p: &RoutePoint) -> String {
    format!(
        "threshold {}: {:.1}% routed, {} {:.4}, ${} per 1,000 {}s",
        p.threshold_label(),
        100.0 * p.routed_share,
        r.accuracy,
        p.accuracy,
        usd(p.cost_per_1k_usd),
        r.unit
    )
}

/// The self-contained HTML report: verdict, charts, the table.
pub fn html(r: &RouteReport) -> String {
    let pts: Vec<(f64, f64, String)> = r
        .points
        .iter()
        .map(|p| (p.cost_per_1k_usd, p.accuracy, point_title(r, p)))
        .collect();
    // The two ends, and the chosen point (named on an end it falls on, not drawn twice).
    let last = r.points.len() - 1;
    let named = |i: usize, name: &str| {
        if r.choice.chosen == Some(i) {
            format!("{name} (chosen)")
        } else {
            name.to_string()
        }
    };
    let mut labels = vec![
        (0, named(0, "small only")),
        (last, named(last, "large only")),
    ];
    if let Some(i) = r.choice.chosen.filter(|&i| i != 0 && i != last) {
        labels.push((i, "chosen".to_string()));
    }
    let marks: Vec<Mark> = labels
        .iter()
        .map(|(i, label)| Mark {
            x: r.points[*i].cost_per_1k_usd,
            y: r.points[*i].accuracy,
            label,
        })
        .collect();
    let cost_chart = svg::xy_lines(
        &format!("{} against cost", r.accuracy),
        &format!("USD per 1,000 {}s", r.unit),
        &r.accuracy,
        &[("threshold routing".into(), pts)],
        Some((r.choice.target, "target")),
        &marks,
    );
    let below: Vec<&RoutePoint> = r
        .points
        .iter()
        .filter(|p| p.policy == Policy::Below)
        .collect();
    let by_t = |f: fn(&RoutePoint) -> f64| -> Vec<(f64, f64, String)> {
        below
            .iter()
            .map(|p| (p.threshold.unwrap_or(f64::NAN), f(p), point_title(r, p)))
            .collect()
    };
    let threshold_chart = svg::xy_lines(
        "Against the threshold",
        &format!("threshold ({})", r.confidence),
        "share",
        &[
            (r.accuracy.clone(), by_t(|p| p.accuracy)),
            ("routed share".into(), by_t(|p| p.routed_share)),
        ],
        None,
        &[],
    );
    let mut s = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>hone routing curve</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}}\
         table{{border-collapse:collapse;margin:1em 0;font-size:14px}}th,td{{border:1px solid #ccc;padding:4px 8px;text-align:right}}\
         th{{background:#f0f4f8}}.chosen{{font-weight:bold;background:#e6f4ea}}.charts{{display:flex;flex-wrap:wrap;gap:16px}}.muted{{color:#666}}</style>\
         </head><body><h1>Routing <code>{}</code> → <code>{}</code></h1>\
         <p class=\"muted\">{} {}s in {} {}s from {}. Confidence: {}. Cost: {}. A routed {} takes the large arm's answer and its {} pays both arms (the small one answered first).</p>\
         <p><b>{}</b></p><div class=\"charts\">{cost_chart}{threshold_chart}</div>",
        esc(&r.small),
        esc(&r.large),
        r.queries,
        esc(&r.query),
        r.units,
        esc(&r.unit),
        esc(&r.source),
        esc(&r.confidence),
        esc(&r.cost_source),
        esc(&r.query),
        esc(&r.unit),
        esc(&r.verdict())
    );
    let _ = write!(
        s,
        "<table><tr><th>threshold</th><th>routed</th><th>{}</th><th>$ per 1,000 {}s</th></tr>",
        esc(&r.accuracy),
        esc(&r.unit)
    );
    for (i, p) in r.points.iter().enumerate() {
        let cls = if mark(r, i).is_empty() {
            ""
        } else {
            " class=\"chosen\""
        };
        let _ = write!(
            s,
            "<tr{cls}><td>{}</td><td>{:.1}%</td><td>{:.4}</td><td>{}</td></tr>",
            p.threshold_label(),
            100.0 * p.routed_share,
            p.accuracy,
            usd(p.cost_per_1k_usd)
        );
    }
    s.push_str("</table><p class=\"muted\">Made by hone (<code>hone eval route</code>).</p></body></html>\n");
    s
}

/// Paths of the files written by [`write_all`].
pub struct RouteFiles {
    pub json: PathBuf,
    pub markdown: PathBuf,
    pub html: PathBuf,
}

/// Writes `route.json`, `route.md` and `route.html` into `dir` (created if needed).
pub fn write_all(r: &RouteReport, dir: &Path) -> Result<RouteFiles> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let f = RouteFiles {
        json: dir.join("route.json"),
        markdown: dir.join("route.md"),
        html: dir.join("route.html"),
    };
    let json = serde_json::to_vec_pretty(r).map_err(|e| Error::Invalid(e.to_string()))?;
    write_atomic(&f.json, &json)?;
    write_atomic(&f.markdown, markdown(r).as_bytes())?;
    write_atomic(&f.html, html(r).as_bytes())?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_keep_three_significant_digits() {
        assert_eq!(usd(0.153_3), "0.153");
        assert_eq!(usd(3.4e-5), "0.0000340");
        assert_eq!(usd(12.5), "12.50");
        assert_eq!(usd(0.0), "0");
    }
}
