//! Reports of a review for people: Markdown ([`markdown`]) and a self-contained HTML page
//! ([`html`], no scripts, no external assets, every text escaped) with the contract text and
//! its evidence highlighted, plus a one-page summary of a multi-document run
//! ([`html_index`]).
//!
//! Both reports open with the document, its flags by risk, the time taken and any warnings,
//! then a table of all 17 checks: flagged rows first (highest risk first), then the rest in
//! [`CHECKS`] order. Evidence is linked by its start offset (`#span-START`); offsets are
//! characters, as in [`DocReview`]. A check found `NotMentioned` shows no evidence (there is
//! nothing in the contract to point at).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use hone_data::nda::{check, check_index, CHECKS};
use hone_eval::svg::esc;

use crate::playbook::prob_of;
use crate::types::{CheckResult, DocReview, Evidence, Flag, Probs, Risk};

/// Evidence quotes in the table are cut to about this many characters.
const QUOTE_CHARS: usize = 300;
/// Evidence quotes in the Markdown evidence section are cut to this many characters.
const LONG_QUOTE_CHARS: usize = 1500;

const RISKS: [Risk; 3] = [Risk::High, Risk::Medium, Risk::Low];

fn risk_name(r: Risk) -> &'static str {
    match r {
        Risk::Low => "low",
        Risk::Medium => "medium",
        Risk::High => "high",
    }
}

/// One row of the checks table.
struct Row<'a> {
    id: &'a str,
    name: &'a str,
    result: Option<&'a CheckResult>,
    flag: Option<&'a Flag>,
}

impl Row<'_> {
    fn label(&self) -> &str {
        self.result
            .map(|r| r.label.as_str())
            .or(self.flag.map(|f| f.found.as_str()))
            .unwrap_or("–")
    }
    fn prob(&self) -> Option<f64> {
        match (self.result, self.flag) {
            (Some(r), _) => Some(prob_of(&r.probs, &r.label)),
            (None, Some(f)) => Some(f.confidence),
            _ => None,
        }
    }
    /// The evidence the row shows (the best span), if the check is not `NotMentioned`.
    fn evidence(&self) -> Option<&Evidence> {
        match self.result {
            Some(r) => shown_evidence(r).first(),
            None => self.flag.and_then(|f| f.quote.as_ref()),
        }
    }
}

/// The evidence a report shows for a check: all its spans, none when `NotMentioned`.
fn shown_evidence(r: &CheckResult) -> &[Evidence] {
    if r.label == "NotMentioned" {
        &[]
    } else {
        &r.evidence
    }
}

/// All 17 checks: flagged first (highest risk first), then the rest, each group in
/// [`CHECKS`] order.
fn rows(r: &DocReview) -> Vec<Row<'_>> {
    let mut rows: Vec<Row> = CHECKS
        .iter()
        .map(|c| Row {
            id: c.id,
            name: c.name,
            result: r.checks.get(c.id),
            flag: r.flags.iter().find(|f| f.check == c.id),
        })
        .collect();
    rows.sort_by_key(|row| (row.flag.is_none(), Reverse(row.flag.map(|f| f.risk))));
    rows
}

fn flag_counts(r: &DocReview) -> [usize; 3] {
    RISKS.map(|risk| r.flags.iter().filter(|f| f.risk == risk).count())
}

fn worst_flag(r: &DocReview) -> Option<&Flag> {
    r.flags
        .iter()
        .min_by_key(|f| (Reverse(f.risk), check_index(&f.check).unwrap_or(usize::MAX)))
}

fn fmt_ms(ms: f64) -> String {
    if !ms.is_finite() {
        "–".into()
    } else if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{ms:.0} ms")
    }
}

fn fmt_prob(p: Option<f64>) -> String {
    match p {
        Some(p) if p.is_finite() => format!("{p:.2}"),
        _ => "–".into(),
    }
}

/// Whitespace runs (newlines included) collapsed to one space.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// At most `n` characters, with an ellipsis when cut.
fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let t: String = s.chars().take(n.saturating_sub(1)).collect();
        format!("{}…", t.trim_end())
    }
}

/// Byte offset of every character of `text`, plus `text.len()` at the end, so that character
/// offsets (as in the review) can slice the text.
fn char_bytes(text: &str) -> Vec<usize> {
    text.char_indices()
        .map(|(b, _)| b)
        .chain(std::iter::once(text.len()))
        .collect()
}

/// Characters `[start, end)` of a text whose [`char_bytes`] are `idx` (clamped to the text).
fn slice_chars<'t>(text: &'t str, idx: &[usize], start: usize, end: usize) -> &'t str {
    let n = idx.len() - 1;
    let (s, e) = (start.min(n), end.min(n));
    if s >= e {
        ""
    } else {
        &text[idx[s]..idx[e]]
    }
}

/// The text of an evidence span: its own, or the document's at its offsets.
fn evidence_text(r: &DocReview, idx: &[usize], e: &Evidence) -> String {
    if e.text.trim().is_empty() && !r.text.is_empty() {
        slice_chars(&r.text, idx, e.start, e.end).to_string()
    } else {
        e.text.clone()
    }
}

fn span_label(e: &Evidence) -> String {
    format!("§ chars {}–{}", e.start, e.end)
}

// ---------------------------------------------------------------------------------------
// Markdown

/// Escapes text for a Markdown table cell or paragraph (one line).
fn md(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in one_line(s).chars() {
        match c {
            '\\' | '|' | '*' | '_' | '`' | '[' | ']' | '#' => {
                o.push('\\');
                o.push(c);
            }
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '&' => o.push_str("&amp;"),
            _ => o.push(c),
        }
    }
    o
}

fn md_bar(p: Option<f64>) -> String {
    match p {
        Some(p) if p.is_finite() => {
            let full = (p.clamp(0.0, 1.0) * 10.0).round() as usize;
            format!("{}{}", "█".repeat(full), "░".repeat(10 - full))
        }
        _ => String::new(),
    }
}

/// One document's review as `hone review --format json` writes it and `POST /v1/review`
/// answers: the [`DocReview`] as pretty JSON, then a line break.
pub fn json(r: &DocReview) -> serde_json::Result<String> {
    Ok(serde_json::to_string_pretty(r)? + "\n")
}

/// The Markdown report of one document.
pub fn markdown(r: &DocReview) -> String {
    let idx = char_bytes(&r.text);
    let mut s = format!("# NDA review: {}\n\n", md(&r.doc_id));
    let [high, medium, low] = flag_counts(r);
    let _ = writeln!(s, "- Source: {}", md(&r.source));
    let _ = writeln!(
        s,
        "- Flags: **{high} high**, **{medium} medium**, {low} low ({} checks reviewed)",
        r.checks.len()
    );
    let t = &r.timing;
    let _ = writeln!(
        s,
        "- Time: {} ({} spans, {} windows, {} tokens)",
        fmt_ms(t.total_ms),
        t.spans,
        t.windows,
        t.tokens
    );
    s.push('\n');
    for w in &r.warnings {
        let _ = writeln!(s, "> **Warning:** {}\n", md(w));
    }

    s.push_str("## Checks\n\n");
    s.push_str("| check | finding | probability | expected | risk | evidence |\n");
    s.push_str("|---|---|---|---|---|---|\n");
    for row in rows(r) {
        let (expected, risk) = match row.flag {
            Some(f) => (md(&f.expected), format!("**{}**", risk_name(f.risk))),
            None => ("–".to_string(), "–".to_string()),
        };
        let finding = if row.flag.is_some() {
            format!("**{}**", md(row.label()))
        } else {
            md(row.label())
        };
        let evidence = match row.evidence() {
            Some(e) => format!(
                "“{}” [{}](#span-{})",
                md(&truncate(
                    &one_line(&evidence_text(r, &idx, e)),
                    QUOTE_CHARS
                )),
                span_label(e),
                e.start
            ),
            None => "–".into(),
        };
        let p = row.prob();
        let _ = writeln!(
            s,
            "| {} {} | {finding} | {} {} | {expected} | {risk} | {evidence} |",
            row.id,
            md(row.name),
            fmt_prob(p),
            md_bar(p)
        );
    }

    // Evidence: every span of every flagged check, then the best span of the others, each
    // with the anchor the table links to.
    let mut anchors: BTreeSet<usize> = BTreeSet::new();
    let mut anchor = |start: usize| {
        if anchors.insert(start) {
            format!("<a id=\"span-{start}\"></a>")
        } else {
            String::new()
        }
    };
    s.push_str("\n## Evidence\n");
    let rows = rows(r);
    if r.flags.is_empty() {
        s.push_str("\nNo flags: the contract matches the playbook on every check it lists.\n");
    }
    for row in rows.iter().filter(|row| row.flag.is_some()) {
        let f = row.flag.expect("flagged row");
        let _ = writeln!(
            s,
            "\n### {} {} ({} risk)\n",
            row.id,
            md(row.name),
            risk_name(f.risk)
        );
        let _ = writeln!(
            s,
            "Found **{}** (probability {}); the playbook expects {}.{}",
            md(&f.found),
            fmt_prob(Some(f.confidence)),
            md(&f.expected),
            if f.note.is_empty() {
                String::new()
            } else {
                format!(" {}", md(&f.note))
            }
        );
        let evidence: Vec<&Evidence> = match row.result {
            Some(res) => shown_evidence(res).iter().collect(),
            None => f.quote.iter().collect(),
        };
        if evidence.is_empty() {
            s.push_str("\nNo evidence: the contract does not address this check.\n");
        }
        for e in evidence {
            let a = anchor(e.start);
            if !a.is_empty() {
                let _ = writeln!(s, "\n{a}");
            }
            let _ = writeln!(
                s,
                "\n> {}\n>\n> — chars {}–{}, evidence score {:.2}",
                md(&truncate(&evidence_text(r, &idx, e), LONG_QUOTE_CHARS)),
                e.start,
                e.end,
                e.score
            );
        }
    }
    let others: Vec<(&Row, &Evidence)> = rows
        .iter()
        .filter(|row| row.flag.is_none())
        .filter_map(|row| row.evidence().map(|e| (row, e)))
        .collect();
    if !others.is_empty() {
        s.push_str("\n### Other checks\n\n");
        for (row, e) in others {
            let _ = writeln!(
                s,
                "- {}{} {} ({}): “{}” (chars {}–{})",
                anchor(e.start),
                row.id,
                md(row.name),
                md(row.label()),
                md(&truncate(&evidence_text(r, &idx, e), QUOTE_CHARS)),
                e.start,
                e.end
            );
        }
    }
    s
}

// ---------------------------------------------------------------------------------------
// HTML

const CSS: &str = "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:1em 0;font-size:14px;width:100%}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}\
th{background:#f0f4f8}.muted{color:#666}.num{text-align:right;white-space:nowrap}\
tr.high{background:#fbe3d6}tr.medium{background:#fdf0d5}tr.low{background:#fcf8d9}\
.badge{display:inline-block;padding:2px 8px;border-radius:10px;font-weight:bold;margin-right:6px}\
.badge.high{background:#D55E00;color:#fff}.badge.medium{background:#E69F00;color:#222}.badge.low{background:#F0E442;color:#222}\
.warnings{border:2px solid #D55E00;background:#fdecea;padding:.5em 1em;margin:1em 0}\
.note{font-size:12px;color:#444;margin-top:4px}.quote{font-size:13px}\
pre.contract{white-space:pre-wrap;font-family:Georgia,serif;font-size:14px;line-height:1.5;border:1px solid #ccc;padding:1em;background:#fcfcfc}\
mark{background:#d6e9f8;padding:0 1px}mark.high{background:#f6b89a}mark.medium{background:#f8d78a}mark.low{background:#f3ec9c}\
mark:target{outline:2px solid #0072B2}.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}";

const COLOR_E: &str = "#009E73";
const COLOR_C: &str = "#D55E00";
const COLOR_N: &str = "#999999";

/// A 120 x 12 bar of the three probabilities (Entailment, Contradiction, NotMentioned).
fn prob_svg(p: &Probs) -> String {
    let clean = |v: f64| if v.is_finite() { v.max(0.0) } else { 0.0 };
    let vals = [
        (clean(p.entailment), COLOR_E),
        (clean(p.contradiction), COLOR_C),
        (clean(p.not_mentioned), COLOR_N),
    ];
    let sum: f64 = vals.iter().map(|v| v.0).sum();
    let title = format!(
        "Entailment {:.2}, Contradiction {:.2}, NotMentioned {:.2}",
        p.entailment, p.contradiction, p.not_mentioned
    );
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"120\" height=\"12\" viewBox=\"0 0 120 12\" \
         role=\"img\" aria-label=\"{t}\"><title>{t}</title><rect width=\"120\" height=\"12\" fill=\"#eee\"/>",
        t = esc(&title)
    );
    if sum > 0.0 {
        let mut x = 0.0;
        for (v, color) in vals {
            let w = 120.0 * v / sum;
            if w > 0.0 {
                let _ = write!(
                    s,
                    "<rect x=\"{x:.2}\" width=\"{w:.2}\" height=\"12\" fill=\"{color}\"/>"
                );
            }
            x += w;
        }
    }
    s.push_str("</svg>");
    s
}

/// The highlighted contract text and the ids (`span-START`) it defines.
struct Highlighted {
    html: String,
    ids: BTreeSet<usize>,
}

/// The contract text with every evidence span of every check in a `<mark>`. Overlapping spans
/// are cut into pieces at every span boundary, so marks never nest; the piece where a span
/// starts carries `id="span-START"`, and each mark's title names the checks it is evidence
/// for, its class the highest risk among their flags.
fn highlight(r: &DocReview, idx: &[usize]) -> Highlighted {
    let n = idx.len() - 1;
    // (start, end) -> (descriptions of the checks, highest flag risk).
    let mut spans: BTreeMap<(usize, usize), (Vec<String>, Option<Risk>)> = BTreeMap::new();
    let mut ids: Vec<&String> = r.checks.keys().collect();
    ids.sort_by_key(|id| (check_index(id).unwrap_or(usize::MAX), id.as_str()));
    for id in ids {
        let res = &r.checks[id];
        let name = check(id).map(|c| c.name).unwrap_or("");
        let risk = r.flags.iter().find(|f| &f.check == id).map(|f| f.risk);
        for e in shown_evidence(res) {
            let (s, t) = (e.start.min(n), e.end.min(n));
            if s >= t {
                continue;
            }
            let entry = spans.entry((s, t)).or_default();
            let desc = match risk {
                Some(rk) => format!("{id} {name}: {} ({} risk flag)", res.label, risk_name(rk)),
                None => format!("{id} {name}: {}", res.label),
            };
            if !entry.0.contains(&desc) {
                entry.0.push(desc);
            }
            entry.1 = entry.1.max(risk);
        }
    }
    let mut bounds: BTreeSet<usize> = BTreeSet::from([0, n]);
    for (s, t) in spans.keys() {
        bounds.insert(*s);
        bounds.insert(*t);
    }
    let starts: BTreeSet<usize> = spans.keys().map(|k| k.0).collect();
    let bounds: Vec<usize> = bounds.into_iter().collect();
    let mut html = String::with_capacity(r.text.len() + r.text.len() / 8);
    let mut out_ids = BTreeSet::new();
    for w in bounds.windows(2) {
        let (a, b) = (w[0], w[1]);
        let piece = esc(slice_chars(&r.text, idx, a, b));
        let covering: Vec<&(Vec<String>, Option<Risk>)> = spans
            .iter()
            .filter(|((s, t), _)| *s <= a && *t >= b)
            .map(|(_, v)| v)
            .collect();
        if covering.is_empty() {
            html.push_str(&piece);
            continue;
        }
        let mut titles: Vec<&str> = Vec::new();
        for c in &covering {
            for d in &c.0 {
                if !titles.contains(&d.as_str()) {
                    titles.push(d);
                }
            }
        }
        let risk = covering.iter().filter_map(|c| c.1).max();
        let class = risk
            .map(|r| format!(" class=\"{}\"", risk_name(r)))
            .unwrap_or_default();
        let id = if starts.contains(&a) {
            out_ids.insert(a);
            format!(" id=\"span-{a}\"")
        } else {
            String::new()
        };
        let _ = write!(
            html,
            "<mark{id}{class} title=\"{}\">{piece}</mark>",
            esc(&titles.join("; "))
        );
    }
    Highlighted { html, ids: out_ids }
}

fn html_head(title: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{CSS}</style></head><body>",
        esc(title)
    )
}

fn badges(counts: [usize; 3]) -> String {
    let mut s = String::new();
    for (risk, n) in RISKS.iter().zip(counts) {
        let _ = write!(
            s,
            "<span class=\"badge {r}\">{n} {r}</span>",
            r = risk_name(*risk)
        );
    }
    s
}

/// The self-contained HTML report of one document.
pub fn html(r: &DocReview) -> String {
    let idx = char_bytes(&r.text);
    let marked = highlight(r, &idx);
    let mut s = html_head(&format!("NDA review: {}", r.doc_id));
    let t = &r.timing;
    let _ = write!(
        s,
        "<h1>NDA review: {}</h1><p class=\"muted\">Source: <code>{}</code> · {} checks reviewed · \
         {} ({} spans, {} windows, {} tokens; reading {}, preparing {}, model {})</p>\
         <p>Playbook flags: {}</p>",
        esc(&r.doc_id),
        esc(&r.source),
        r.checks.len(),
        fmt_ms(t.total_ms),
        t.spans,
        t.windows,
        t.tokens,
        fmt_ms(t.read_ms),
        fmt_ms(t.prepare_ms),
        fmt_ms(t.model_ms),
        badges(flag_counts(r))
    );
    if !r.warnings.is_empty() {
        s.push_str("<div class=\"warnings\" role=\"alert\"><strong>Warnings</strong><ul>");
        for w in &r.warnings {
            let _ = write!(s, "<li>{}</li>", esc(w));
        }
        s.push_str("</ul></div>");
    }

    let _ = write!(
        s,
        "<h2>Checks</h2><p class=\"legend muted\">Probabilities:<span style=\"background:{COLOR_E}\"></span>Entailment\
         <span style=\"background:{COLOR_C}\"></span>Contradiction<span style=\"background:{COLOR_N}\"></span>NotMentioned</p>\
         <table><thead><tr><th>check</th><th>finding</th><th>probability</th><th>expected</th><th>risk</th><th>evidence</th></tr></thead><tbody>"
    );
    for row in rows(r) {
        let class = row
            .flag
            .map(|f| format!(" class=\"{}\"", risk_name(f.risk)))
            .unwrap_or_default();
        let _ = write!(
            s,
            "<tr{class} data-check=\"{}\"><td><b>{}</b> {}",
            esc(row.id),
            esc(row.id),
            esc(row.name)
        );
        if let Some(f) = row.flag.filter(|f| !f.note.is_empty()) {
            let _ = write!(s, "<div class=\"note\">{}</div>", esc(&f.note));
        }
        let finding = if row.flag.is_some() {
            format!("<b>{}</b>", esc(row.label()))
        } else {
            esc(row.label())
        };
        let bar = row
            .result
            .map(|res| prob_svg(&res.probs))
            .unwrap_or_default();
        let _ = write!(
            s,
            "</td><td>{finding}</td><td class=\"num\">{bar} {}</td>",
            fmt_prob(row.prob())
        );
        match row.flag {
            Some(f) => {
                let _ = write!(
                    s,
                    "<td>{}</td><td>{}</td>",
                    esc(&f.expected),
                    risk_name(f.risk)
                );
            }
            None => s.push_str("<td>–</td><td>–</td>"),
        }
        match row.evidence() {
            Some(e) => {
                let quote = truncate(&one_line(&evidence_text(r, &idx, e)), QUOTE_CHARS);
                let link = if marked.ids.contains(&e.start) {
                    format!("<a href=\"#span-{}\">{}</a>", e.start, span_label(e))
                } else {
                    esc(&span_label(e))
                };
                let _ = write!(
                    s,
                    "<td><span class=\"quote\">“{}”</span> {link}</td>",
                    esc(&quote)
                );
            }
            None => s.push_str("<td>–</td>"),
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");

    if !r.text.is_empty() {
        let _ = write!(
            s,
            "<h2>Contract</h2><p class=\"muted\">Evidence is highlighted; hover over a highlight \
             for its checks. Colours: the risk of the flags it supports.</p>\
             <pre class=\"contract\">{}</pre>",
            marked.html
        );
    }
    s.push_str(
        "<p class=\"muted\">Made by hone. Labels and probabilities are the model's; flags compare \
         them with the playbook. Check the evidence before relying on a finding.</p></body></html>\n",
    );
    s
}

/// A one-page summary of several reviewed documents: flags by risk and the worst flag of
/// each, linking to the per-document reports (`links[i]` for `reviews[i]`; a missing link
/// leaves the name unlinked).
pub fn html_index(reviews: &[DocReview], links: &[String]) -> String {
    let mut s = html_head("NDA review: summary");
    let flagged = reviews.iter().filter(|r| !r.flags.is_empty()).count();
    let mut totals = [0usize; 3];
    for r in reviews {
        for (t, c) in totals.iter_mut().zip(flag_counts(r)) {
            *t += c;
        }
    }
    let _ = write!(
        s,
        "<h1>NDA review: {} document{}</h1><p>{flagged} with flags. All flags: {}</p>\
         <table><thead><tr><th>document</th><th>source</th><th class=\"num\">high</th>\
         <th class=\"num\">medium</th><th class=\"num\">low</th><th>worst flag</th><th>warnings</th></tr></thead><tbody>",
        reviews.len(),
        if reviews.len() == 1 { "" } else { "s" },
        badges(totals)
    );
    for (i, r) in reviews.iter().enumerate() {
        let worst = worst_flag(r);
        let class = worst
            .map(|f| format!(" class=\"{}\"", risk_name(f.risk)))
            .unwrap_or_default();
        let doc = match links.get(i) {
            Some(l) => format!("<a href=\"{}\">{}</a>", esc(l), esc(&r.doc_id)),
            None => esc(&r.doc_id),
        };
        let [high, medium, low] = flag_counts(r);
        let worst = match worst {
            Some(f) => format!(
                "<b>{}</b> {}: {} (expected {}), {} risk",
                esc(&f.check),
                esc(&f.name),
                esc(&f.found),
                esc(&f.expected),
                risk_name(f.risk)
            ),
            None => "–".into(),
        };
        let warnings = if r.warnings.is_empty() {
            "–".to_string()
        } else {
            r.warnings
                .iter()
                .map(|w| esc(w))
                .collect::<Vec<_>>()
                .join("<br>")
        };
        let _ = write!(
            s,
            "<tr{class}><td>{doc}</td><td><code>{}</code></td><td class=\"num\">{high}</td>\
             <td class=\"num\">{medium}</td><td class=\"num\">{low}</td><td>{worst}</td><td>{warnings}</td></tr>",
            esc(&r.source)
        );
    }
    s.push_str("</tbody></table><p class=\"muted\">Made by hone.</p></body></html>\n");
    s
}
