//! Small self-contained SVG charts for the HTML reports: grouped bars, a confusion-matrix
//! heat map, a latency histogram and lines through points (the routing curve). No scripts, no external fonts.

use std::fmt::Write;

/// Series colours (colour-blind friendly, Okabe-Ito).
pub const PALETTE: [&str; 6] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00",
];

/// Escapes text for XML/HTML.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

fn header(w: f64, h: f64, title: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" \
         font-family=\"sans-serif\" font-size=\"12\" role=\"img\" aria-label=\"{t}\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{x}\" y=\"18\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">{t}</text>\n",
        x = w / 2.0,
        t = esc(title)
    )
}

fn legend(svg: &mut String, names: &[String], x0: f64, y: f64) {
    let mut x = x0;
    for (i, n) in names.iter().enumerate() {
        let _ = writeln!(
            svg,
            "<rect x=\"{x}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" y=\"{y}\">{}</text>",
            y - 9.0,
            PALETTE[i % PALETTE.len()],
            x + 14.0,
            esc(n)
        );
        x += 24.0 + 7.0 * n.chars().count() as f64;
    }
}

/// Vertical bars grouped by category, one colour per series; values in `0..=y_max`.
/// Missing values (`None`) leave a gap.
pub fn grouped_bars(
    title: &str,
    categories: &[String],
    series: &[(String, Vec<Option<f64>>)],
    y_max: f64,
) -> String {
    let groups = categories.len().max(1) as f64;
    let per = series.len().max(1) as f64;
    let bar_w = 14.0f64;
    let (pad_l, pad_r, pad_t, pad_b) = (44.0, 16.0, 44.0, 90.0);
    let w = (pad_l + pad_r + groups * (per * bar_w + 14.0)).max(360.0);
    let h = 320.0;
    let ph = h - pad_t - pad_b;
    let y_max = if y_max > 0.0 { y_max } else { 1.0 };
    let mut svg = header(w, h, title);
    for k in 0..=4 {
        let v = y_max * k as f64 / 4.0;
        let y = pad_t + ph - ph * k as f64 / 4.0;
        let _ = writeln!(
            svg,
            "<line x1=\"{pad_l}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{v:.2}</text>",
            w - pad_r,
            pad_l - 4.0,
            y + 4.0
        );
    }
    let gw = (w - pad_l - pad_r) / groups;
    for (g, cat) in categories.iter().enumerate() {
        let gx = pad_l + g as f64 * gw + (gw - per * bar_w) / 2.0;
        for (s, (name, vals)) in series.iter().enumerate() {
            if let Some(Some(v)) = vals.get(g) {
                let bh = ph * (v / y_max).clamp(0.0, 1.0);
                let _ = writeln!(
                    svg,
                    "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{bh}\" fill=\"{}\"><title>{}: {} = {v:.3}</title></rect>",
                    gx + s as f64 * bar_w,
                    pad_t + ph - bh,
                    bar_w - 2.0,
                    PALETTE[s % PALETTE.len()],
                    esc(name),
                    esc(cat)
                );
            }
        }
        let cx = pad_l + g as f64 * gw + gw / 2.0;
        let cy = pad_t + ph + 12.0;
        let _ = writeln!(
            svg,
            "<text x=\"{cx}\" y=\"{cy}\" text-anchor=\"end\" transform=\"rotate(-35 {cx} {cy})\">{}</text>",
            esc(&truncate(cat, 18))
        );
    }
    let names: Vec<String> = series.iter().map(|s| s.0.clone()).collect();
    legend(&mut svg, &names, pad_l, 36.0);
    svg.push_str("</svg>\n");
    svg
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let t: String = s.chars().take(n - 1).collect();
        format!("{t}…")
    }
}

/// A confusion matrix as a heat map: rows are gold labels, columns predictions; the last
/// column may be "unparseable".
pub fn confusion_heatmap(title: &str, rows: &[String], cols: &[String], m: &[Vec<u64>]) -> String {
    let cell = 38.0f64;
    let label_w = 130.0;
    let top = 110.0;
    let w = (label_w + cell * cols.len() as f64 + 20.0).max(300.0);
    let h = top + cell * rows.len() as f64 + 30.0;
    let max = m.iter().flatten().copied().max().unwrap_or(0).max(1) as f64;
    let mut svg = header(w, h, title);
    for (j, c) in cols.iter().enumerate() {
        let cx = label_w + cell * j as f64 + cell / 2.0;
        let cy = top - 6.0;
        let _ = writeln!(
            svg,
            "<text x=\"{cx}\" y=\"{cy}\" transform=\"rotate(-45 {cx} {cy})\">{}</text>",
            esc(&truncate(c, 16))
        );
    }
    for (i, r) in rows.iter().enumerate() {
        let y = top + cell * i as f64;
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
            label_w - 6.0,
            y + cell / 2.0 + 4.0,
            esc(&truncate(r, 18))
        );
        for j in 0..cols.len() {
            let v = m.get(i).and_then(|row| row.get(j)).copied().unwrap_or(0);
            let t = v as f64 / max;
            // White to deep blue; the diagonal is what a good model fills.
            let shade = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
            let fill = format!(
                "#{:02x}{:02x}{:02x}",
                shade(255.0, 8.0),
                shade(255.0, 81.0),
                shade(255.0, 156.0)
            );
            let x = label_w + cell * j as f64;
            let text_fill = if t > 0.5 { "white" } else { "black" };
            let _ = writeln!(
                svg,
                "<rect x=\"{x}\" y=\"{y}\" width=\"{cell}\" height=\"{cell}\" fill=\"{fill}\" stroke=\"#999\"/>\
                 <text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"{text_fill}\">{v}</text>",
                x + cell / 2.0,
                y + cell / 2.0 + 4.0
            );
        }
    }
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#555\">rows: reference · columns: prediction</text>",
        w / 2.0,
        h - 8.0
    );
    svg.push_str("</svg>\n");
    svg
}

/// Overlaid histograms of per-query latency (seconds), one colour per series, with shared bins.
pub fn latency_histogram(title: &str, series: &[(String, Vec<f64>)]) -> String {
    let all: Vec<f64> = series
        .iter()
        .flat_map(|s| s.1.iter().copied())
        .filter(|v| v.is_finite())
        .collect();
    let (w, h) = (640.0f64, 300.0f64);
    let (pad_l, pad_r, pad_t, pad_b) = (48.0, 16.0, 44.0, 40.0);
    let mut svg = header(w, h, title);
    if all.is_empty() {
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">no latencies measured (all answers cached or remote)</text></svg>",
            w / 2.0,
            h / 2.0
        );
        return svg;
    }
    let lo = 0.0f64;
    let hi = all.iter().copied().fold(f64::MIN, f64::max).max(1e-6) * 1.05;
    let bins = 24usize;
    let bw = (hi - lo) / bins as f64;
    let counts: Vec<Vec<usize>> = series
        .iter()
        .map(|(_, v)| {
            let mut c = vec![0usize; bins];
            for &x in v.iter().filter(|x| x.is_finite()) {
                let b = (((x - lo) / bw) as usize).min(bins - 1);
                c[b] += 1;
            }
            c
        })
        .collect();
    let cmax = counts.iter().flatten().copied().max().unwrap_or(1).max(1) as f64;
    let pw = w - pad_l - pad_r;
    let ph = h - pad_t - pad_b;
    for k in 0..=4 {
        let y = pad_t + ph - ph * k as f64 / 4.0;
        let _ = writeln!(
            svg,
            "<line x1=\"{pad_l}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{:.0}</text>",
            w - pad_r,
            pad_l - 4.0,
            y + 4.0,
            cmax * k as f64 / 4.0
        );
    }
    for (s, c) in counts.iter().enumerate() {
        for (b, &n) in c.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let bh = ph * n as f64 / cmax;
            let _ = writeln!(
                svg,
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{bh}\" fill=\"{}\" fill-opacity=\"0.55\"><title>{}: {n} in {:.3}–{:.3} s</title></rect>",
                pad_l + pw * b as f64 / bins as f64,
                pad_t + ph - bh,
                pw / bins as f64 - 1.0,
                PALETTE[s % PALETTE.len()],
                esc(&series[s].0),
                lo + bw * b as f64,
                lo + bw * (b + 1) as f64
            );
        }
    }
    for k in 0..=4 {
        let v = lo + (hi - lo) * k as f64 / 4.0;
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{v:.2}</text>",
            pad_l + pw * k as f64 / 4.0,
            h - pad_b + 16.0
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#555\">seconds per query</text>",
        w / 2.0,
        h - 6.0
    );
    let names: Vec<String> = series.iter().map(|s| s.0.clone()).collect();
    legend(&mut svg, &names, pad_l, 36.0);
    svg.push_str("</svg>\n");
    svg
}

/// A series of [`xy_lines`]: its name and its points `(x, y, tooltip)`.
pub type XySeries = (String, Vec<(f64, f64, String)>);

/// A marked point of [`xy_lines`]: drawn as a ring with a label beside it.
pub struct Mark<'a> {
    pub x: f64,
    pub y: f64,
    pub label: &'a str,
}

/// Lines through points `(x, y)`, one colour per series (each point a dot with its `title` as
/// a tooltip), axes fitted to the data, an optional dashed horizontal line (`hline`: value and
/// label, e.g. a target) and marked points. Non-finite points are left out.
pub fn xy_lines(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[XySeries],
    hline: Option<(f64, &str)>,
    marks: &[Mark<'_>],
) -> String {
    let (w, h) = (640.0f64, 340.0f64);
    let (pad_l, pad_r, pad_t, pad_b) = (64.0, 24.0, 44.0, 44.0);
    let mut svg = header(w, h, title);
    let pts: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.1.iter().map(|p| (p.0, p.1)))
        .chain(hline.map(|(y, _)| (f64::NAN, y)))
        .collect();
    let xs: Vec<f64> = pts.iter().map(|p| p.0).filter(|v| v.is_finite()).collect();
    let ys: Vec<f64> = pts.iter().map(|p| p.1).filter(|v| v.is_finite()).collect();
    if xs.is_empty() || ys.is_empty() {
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">no points</text></svg>",
            w / 2.0,
            h / 2.0
        );
        return svg;
    }
    let range = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let pad = ((hi - lo) * 0.05).max(1e-9);
        // Costs and shares do not go below 0: neither does their axis.
        let bottom = if lo >= 0.0 {
            (lo - pad).max(0.0)
        } else {
            lo - pad
        };
        (bottom, hi + pad)
    };
    let ((x0, x1), (y0, y1)) = (range(&xs), range(&ys));
    let (pw, ph) = (w - pad_l - pad_r, h - pad_t - pad_b);
    let px = |x: f64| pad_l + pw * (x - x0) / (x1 - x0);
    let py = |y: f64| pad_t + ph - ph * (y - y0) / (y1 - y0);
    for k in 0..=4 {
        let (fx, fy) = (
            x0 + (x1 - x0) * k as f64 / 4.0,
            y0 + (y1 - y0) * k as f64 / 4.0,
        );
        let _ = writeln!(
            svg,
            "<line x1=\"{pad_l}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
             <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            w - pad_r,
            pad_l - 4.0,
            py(fy) + 4.0,
            short(fy),
            px(fx),
            h - pad_b + 16.0,
            short(fx),
            y = py(fy),
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" fill=\"#555\">{}</text>\
         <text x=\"14\" y=\"{}\" text-anchor=\"middle\" fill=\"#555\" transform=\"rotate(-90 14 {})\">{}</text>",
        pad_l + pw / 2.0,
        h - 6.0,
        esc(x_label),
        pad_t + ph / 2.0,
        pad_t + ph / 2.0,
        esc(y_label)
    );
    if let Some((y, label)) = hline.filter(|(y, _)| y.is_finite()) {
        let _ = writeln!(
            svg,
            "<line x1=\"{pad_l}\" x2=\"{}\" y1=\"{yy}\" y2=\"{yy}\" stroke=\"#D55E00\" stroke-dasharray=\"5 4\"/>\
             <text x=\"{}\" y=\"{}\" fill=\"#D55E00\">{}</text>",
            w - pad_r,
            pad_l + 4.0,
            py(y) - 4.0,
            esc(label),
            yy = py(y)
        );
    }
    for (i, (_, points)) in series.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        let ok: Vec<&(f64, f64, String)> = points
            .iter()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .collect();
        let path: Vec<String> = ok
            .iter()
            .map(|p| format!("{:.2},{:.2}", px(p.0), py(p.1)))
            .collect();
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/>",
            path.join(" ")
        );
        for p in ok {
            let _ = writeln!(
                svg,
                "<circle cx=\"{:.2}\" cy=\"{:.2}\" r=\"2.5\" fill=\"{colour}\"><title>{}</title></circle>",
                px(p.0),
                py(p.1),
                esc(&p.2)
            );
        }
    }
    for m in marks.iter().filter(|m| m.x.is_finite() && m.y.is_finite()) {
        let (cx, cy) = (px(m.x), py(m.y));
        // The label on the side of the point with room for it.
        let (lx, anchor) = if cx > pad_l + pw / 2.0 {
            (cx - 10.0, "end")
        } else {
            (cx + 10.0, "start")
        };
        let ly = if cy > pad_t + ph / 2.0 {
            cy - 10.0
        } else {
            cy + 18.0
        };
        let _ = writeln!(
            svg,
            "<circle cx=\"{cx:.2}\" cy=\"{cy:.2}\" r=\"7\" fill=\"none\" stroke=\"#222\" stroke-width=\"2\"/>\
             <text x=\"{lx:.2}\" y=\"{ly:.2}\" text-anchor=\"{anchor}\" fill=\"#222\">{}</text>",
            esc(m.label),
        );
    }
    let names: Vec<String> = series.iter().map(|s| s.0.clone()).collect();
    legend(&mut svg, &names, pad_l, 36.0);
    svg.push_str("</svg>\n");
    svg
}

/// An axis tick: few digits, whatever the scale.
fn short(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_escape_text_and_draw_one_shape_per_value() {
        let s = grouped_bars(
            "F1 <per class>",
            &["a&b".into(), "c".into()],
            &[
                ("base".into(), vec![Some(0.5), None]),
                ("ft".into(), vec![Some(1.0), Some(0.25)]),
            ],
            1.0,
        );
        assert!(s.contains("F1 &lt;per class&gt;") && s.contains("a&amp;b"));
        // Three bars (one value missing) plus two legend swatches and the background.
        assert_eq!(s.matches("<rect").count(), 3 + 2 + 1);
        let m = confusion_heatmap(
            "cm",
            &["x".into(), "y".into()],
            &["x".into(), "y".into()],
            &[vec![3, 1], vec![0, 2]],
        );
        assert_eq!(m.matches("<rect").count(), 1 + 4);
        assert!(m.contains(">3</text>"));
        let hgram = latency_histogram(
            "lat",
            &[("a".into(), vec![0.1, 0.1, 0.2]), ("b".into(), vec![])],
        );
        assert!(hgram.contains("a: 2 in"));
        assert!(latency_histogram("lat", &[]).contains("no latencies"));
        let l = xy_lines(
            "acc <vs> cost",
            "USD",
            "accuracy",
            &[(
                "route".into(),
                vec![
                    (1.0, 0.5, "a".into()),
                    (3.0, 0.75, "b&c".into()),
                    (f64::NAN, 1.0, "x".into()),
                ],
            )],
            Some((0.7, "target")),
            &[Mark {
                x: 3.0,
                y: 0.75,
                label: "chosen",
            }],
        );
        assert!(l.contains("acc &lt;vs&gt; cost") && l.contains("<title>b&amp;c</title>"));
        // Two finite points (the NaN one left out), one mark ring.
        assert_eq!(l.matches("<circle").count(), 2 + 1);
        assert!(l.contains(">target</text>") && l.contains(">chosen</text>"));
        assert!(xy_lines("t", "x", "y", &[], None, &[]).contains("no points"));
    }
}
