//! `hone registry history NAME`: the versions of a name over time, with the size of the data
//! each was trained on and its task metrics, as a table and as an HTML page with an SVG chart
//! (bars: training examples; lines: metrics), so a project can show accuracy growing with data.

use std::fmt::Write;

use crate::Version;

/// Metrics worth a column, by preference (a key matches a recorded name that is the key or ends
/// with `.key`, the shortest such name first).
pub const KEY_METRICS: &[&str] = &[
    "nli_acc",
    "acc3",
    "evidence_map",
    // what `hone retrain` measures
    "eval_accuracy",
    "corrected_accuracy",
    "accuracy",
    "f1",
    "eval_loss",
    "loss",
];

/// The value of a key metric in a version's record.
pub fn key_metric(v: &Version, key: &str) -> Option<f64> {
    v.meta
        .metrics
        .iter()
        .filter(|(n, _)| *n == key || n.ends_with(&format!(".{key}")))
        .min_by_key(|(n, _)| n.len())
        .map(|(_, x)| *x)
}

/// The key metrics any of `versions` has, at most `n`, in order of preference.
pub fn present_keys(versions: &[Version], n: usize) -> Vec<&'static str> {
    KEY_METRICS
        .iter()
        .copied()
        .filter(|k| versions.iter().any(|v| key_metric(v, k).is_some()))
        .take(n)
        .collect()
}

/// Training examples a version was trained on (`None` when its data was not found).
pub fn train_examples(v: &Version) -> Option<u64> {
    let counts: Vec<u64> = v
        .meta
        .data
        .iter()
        .filter(|d| d.role == "train")
        .filter_map(|d| d.examples)
        .collect();
    (!counts.is_empty()).then(|| counts.iter().sum())
}

/// The table `history` prints.
pub fn table(versions: &[Version]) -> String {
    let keys = present_keys(versions, 3);
    let mut out = format!(
        "{:<10}  {:<20}  {:>14}",
        "version", "created", "train examples"
    );
    for k in &keys {
        let _ = write!(out, "  {k:>w$}", w = k.len().max(12));
    }
    out.push_str("  notes\n");
    for v in versions {
        let _ = write!(
            out,
            "{:<10}  {:<20}  {:>14}",
            v.reference().to_string(),
            crate::format_utc(v.created),
            train_examples(v).map_or("-".into(), |n| n.to_string())
        );
        for k in &keys {
            let _ = write!(
                out,
                "  {:>w$}",
                key_metric(v, k).map_or("-".into(), |x| format!("{x:.4}")),
                w = k.len().max(12)
            );
        }
        let _ = writeln!(out, "  {}", v.meta.notes);
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const COLORS: &[&str] = &["#1f77b4", "#d62728", "#2ca02c"];

/// The chart: one slot per version, a bar of its training examples (right axis) and a line per
/// key metric (left axis, 0 to 1 when every value is in it).
pub fn svg(versions: &[Version]) -> String {
    let (w, h, left, right, top, bottom) = (720.0, 340.0, 60.0, 70.0, 30.0, 60.0);
    let pw = w - left - right;
    let ph = h - top - bottom;
    let n = versions.len().max(1) as f64;
    let slot = pw / n;
    let x = |i: usize| left + slot * (i as f64 + 0.5);
    let keys = present_keys(versions, 3);
    let values: Vec<f64> = versions
        .iter()
        .flat_map(|v| keys.iter().filter_map(move |k| key_metric(v, k)))
        .collect();
    let (lo, hi) = if values.iter().all(|v| (0.0..=1.0).contains(v)) {
        (0.0, 1.0)
    } else {
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if lo < hi {
            (lo, hi)
        } else {
            (lo - 1.0, hi + 1.0)
        }
    };
    let y = |v: f64| top + ph * (1.0 - (v - lo) / (hi - lo));
    let max_ex = versions
        .iter()
        .filter_map(train_examples)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        s,
        r##"<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>"##
    );
    for t in 0..=4 {
        let v = lo + (hi - lo) * f64::from(t) / 4.0;
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{v:.2}</text>"##,
            left + pw,
            left - 6.0,
            y(v) + 4.0,
            yy = y(v)
        );
        let ex = max_ex * f64::from(t) / 4.0;
        let _ = write!(
            s,
            r##"<text x="{}" y="{:.1}" fill="#888">{ex:.0}</text>"##,
            left + pw + 6.0,
            top + ph * (1.0 - f64::from(t) / 4.0) + 4.0
        );
    }
    for (i, v) in versions.iter().enumerate() {
        if let Some(ex) = train_examples(v) {
            let bh = ph * ex as f64 / max_ex;
            let _ = write!(
                s,
                r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="#ddd"><title>{} training examples</title></rect>"##,
                x(i) - slot * 0.3,
                top + ph - bh,
                slot * 0.6,
                ex
            );
        }
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            x(i),
            top + ph + 18.0,
            esc(&v.reference().to_string())
        );
    }
    for (ki, k) in keys.iter().enumerate() {
        let color = COLORS[ki % COLORS.len()];
        let pts: Vec<(f64, f64)> = versions
            .iter()
            .enumerate()
            .filter_map(|(i, v)| key_metric(v, k).map(|m| (x(i), y(m))))
            .collect();
        if pts.len() > 1 {
            let d: Vec<String> = pts.iter().map(|(a, b)| format!("{a:.1},{b:.1}")).collect();
            let _ = write!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
                d.join(" ")
            );
        }
        for (a, b) in &pts {
            let _ = write!(
                s,
                r#"<circle cx="{a:.1}" cy="{b:.1}" r="4" fill="{color}"/>"#
            );
        }
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{:.1}" fill="{color}">{}</text>"#,
            left + 10.0 + 130.0 * ki as f64,
            h - 18.0,
            esc(k)
        );
    }
    let _ = write!(
        s,
        r##"<text x="{:.1}" y="{:.1}" fill="#888">bars: training examples</text></svg>"##,
        left + 10.0 + 130.0 * keys.len() as f64,
        h - 18.0
    );
    s
}

/// The HTML page: the chart and the table.
pub fn html(name: &str, versions: &[Version]) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{n}: history</title>\
         <style>body{{font-family:sans-serif;margin:2em}}pre{{background:#f6f6f6;padding:1em}}</style>\
         </head><body><h1>{n}: versions over time</h1>{}<pre>{}</pre></body></html>\n",
        svg(versions),
        esc(&table(versions)),
        n = esc(name)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::{DataFile, VersionMeta};

    fn v(n: u32, examples: u64, acc: f64) -> Version {
        Version {
            name: "nda".into(),
            version: n,
            created: 1_796_000_000 + i64::from(n) * 86_400,
            meta: VersionMeta {
                adapter_sha256: String::new(),
                files: Vec::new(),
                base_model: "smollm2".into(),
                base_sha256: None,
                train_config: None,
                data: vec![DataFile {
                    role: "train".into(),
                    path: "t.jsonl".into(),
                    sha256: None,
                    examples: Some(examples),
                }],
                metrics: [
                    ("metrics.nli_acc".to_string(), acc),
                    ("metrics.acc3".to_string(), acc - 0.1),
                ]
                .into_iter()
                .collect(),
                metrics_source: None,
                notes: format!("v{n}"),
                source: String::new(),
                baseline: None,
            },
        }
    }

    #[test]
    fn table_and_chart_show_every_version() {
        let vs = vec![v(1, 120, 0.71), v(2, 180, 0.78), v(3, 260, 0.83)];
        let t = table(&vs);
        assert!(t.contains("nli_acc") && t.contains("acc3"), "{t}");
        assert!(
            t.contains("nda@2") && t.contains("180") && t.contains("0.7800"),
            "{t}"
        );
        let s = svg(&vs);
        assert_eq!(s.matches("<circle").count(), 6);
        assert_eq!(s.matches("training examples</title>").count(), 3);
        assert_eq!(s.matches("<polyline").count(), 2);
        // the best version's nli_acc dot sits highest (smallest y)
        let page = html("nda", &vs);
        assert!(page.starts_with("<!doctype html>") && page.contains("<svg"));
        assert_eq!(key_metric(&vs[0], "nli_acc"), Some(0.71));
        assert_eq!(train_examples(&vs[2]), Some(260));
    }
}
