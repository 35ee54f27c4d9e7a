//! Reports: a hand-built review of a non-ASCII contract, checked for exact highlights at
//! character offsets, links that resolve, flagged rows first, escaping, and the Markdown table
//! and evidence.

use std::collections::{BTreeMap, BTreeSet};

use hone_data::nda::CHECKS;
use hone_review::playbook::Playbook;
use hone_review::report::{html, html_index, markdown};
use hone_review::{CheckResult, DocReview, Evidence, Probs, Timing};

const TEXT: &str = "Société «Acme» (the \"Discloser\") and Bêta GmbH agree as follows.\n\
1. The Recipient may share Confidential Information with its advisers <script>alert('x')</script> & agents.\n\
2. Ünïcödé obligations survive for 5 years; the Recipient may use the information for any purpose.\n\
3. Miscellaneous: ";

/// `needle`'s [start, end) in characters within `text`.
fn char_span(text: &str, needle: &str) -> (usize, usize) {
    let b = text
        .find(needle)
        .unwrap_or_else(|| panic!("{needle} not in text"));
    let start = text[..b].chars().count();
    (start, start + needle.chars().count())
}

fn evidence(text: &str, needle: &str, score: f64) -> Evidence {
    let (start, end) = char_span(text, needle);
    Evidence {
        start,
        end,
        text: needle.to_string(),
        score,
    }
}

fn result(label: &str, evidence: Vec<Evidence>) -> CheckResult {
    let probs = match label {
        "Entailment" => Probs {
            entailment: 0.8,
            contradiction: 0.05,
            not_mentioned: 0.15,
        },
        "Contradiction" => Probs {
            entailment: 0.1,
            contradiction: 0.7,
            not_mentioned: 0.2,
        },
        _ => Probs {
            entailment: 0.05,
            contradiction: 0.05,
            not_mentioned: 0.9,
        },
    };
    CheckResult {
        label: label.into(),
        probs,
        evidence,
    }
}

const S_NAME: &str = "Société «Acme» (the \"Discloser\")";
const S_ADVISERS: &str =
    "1. The Recipient may share Confidential Information with its advisers <script>alert('x')</script> & agents.";
const S_SURVIVAL: &str = "2. Ünïcödé obligations survive for 5 years; the Recipient may use the information for any purpose.";

fn long_text() -> String {
    let mut t = TEXT.to_string();
    for i in 0..60 {
        t.push_str(&format!("clause {i} of the boilerplate; "));
    }
    t.push_str("END.");
    t
}

fn review() -> DocReview {
    let text = long_text();
    let long = format!(
        "3. Miscellaneous: {}",
        &text[text.find("clause 0").unwrap()..]
    );
    let mut checks: BTreeMap<String, CheckResult> = CHECKS
        .iter()
        .map(|c| (c.id.to_string(), result("NotMentioned", vec![])))
        .collect();
    checks.insert(
        "nda-3".into(),
        result("Entailment", vec![evidence(&text, S_NAME, 0.6)]),
    );
    checks.insert(
        "nda-7".into(),
        result("Entailment", vec![evidence(&text, S_ADVISERS, 0.9)]),
    );
    checks.insert(
        "nda-19".into(),
        result("Entailment", vec![evidence(&text, S_SURVIVAL, 0.8)]),
    );
    checks.insert(
        "nda-4".into(),
        result(
            "Contradiction",
            vec![
                evidence(&text, S_SURVIVAL, 0.85),
                evidence(&text, S_ADVISERS, 0.2),
            ],
        ),
    );
    checks.insert(
        "nda-16".into(),
        result("Entailment", vec![evidence(&text, &long, 0.5)]),
    );
    let pb = Playbook::parse(
        r#"
name = "test"
[checks.nda-3]
expected = ["Entailment"]
risk = "medium"
note = "Oral disclosures must be covered."
[checks.nda-4]
expected = ["Entailment"]
risk = "high"
note = "Ask for a purpose limit."
[checks.nda-7]
expected = ["Contradiction", "NotMentioned"]
risk = "medium"
note = "Limit sharing to advisers who need to know & <nobody> else."
[checks.nda-19]
expected = ["Entailment"]
risk = "high"
"#,
        std::path::Path::new("test.toml"),
    )
    .unwrap();
    let flags = pb.flags(&checks);
    DocReview {
        doc_id: "acme <b>nda</b>".into(),
        source: "contracts/acme «nda».pdf".into(),
        checks,
        flags,
        warnings: vec!["Spans were cut to fit: <3 tokens left".into()],
        timing: Timing {
            read_ms: 12.0,
            prepare_ms: 30.0,
            model_ms: 1200.0,
            total_ms: 1250.0,
            spans: 5,
            windows: 1,
            tokens: 900,
        },
        text,
        spans: vec![],
    }
}

/// The same escaping as the report (HTML text and attributes).
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// (id attribute if any, title, inner HTML) of every `<mark>`.
fn marks(html: &str) -> Vec<(Option<String>, String, String)> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("<mark") {
        rest = &rest[i..];
        let open_end = rest.find('>').unwrap();
        let open = &rest[..open_end];
        let close = rest.find("</mark>").unwrap();
        let inner = rest[open_end + 1..close].to_string();
        assert!(!inner.contains("<mark"), "nested marks");
        let attr = |name: &str| {
            open.find(&format!("{name}=\"")).map(|p| {
                let v = &open[p + name.len() + 2..];
                v[..v.find('"').unwrap()].to_string()
            })
        };
        out.push((attr("id"), attr("title").unwrap_or_default(), inner));
        rest = &rest[close + 7..];
    }
    out
}

/// Every `href="#..."` target in `html`.
fn hrefs(html: &str) -> Vec<String> {
    html.split("href=\"#")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].to_string())
        .collect()
}

fn ids(html: &str) -> BTreeSet<String> {
    html.split(" id=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].to_string())
        .collect()
}

#[test]
fn html_highlights_exactly_the_evidence_at_character_offsets() {
    let r = review();
    let page = html(&r);
    let m = marks(&page);
    let long = &r.checks["nda-16"].evidence[0];
    let expected: Vec<(usize, &str)> = vec![
        (char_span(&r.text, S_NAME).0, S_NAME),
        (char_span(&r.text, S_ADVISERS).0, S_ADVISERS),
        (char_span(&r.text, S_SURVIVAL).0, S_SURVIVAL),
        (long.start, long.text.as_str()),
    ];
    assert_eq!(m.len(), expected.len(), "{m:?}");
    for ((id, _, inner), (start, text)) in m.iter().zip(&expected) {
        assert_eq!(id.as_deref(), Some(format!("span-{start}").as_str()));
        assert_eq!(inner, &esc(text));
    }
    // The span that is evidence for two checks is one mark naming both, coloured by the
    // highest risk of their flags.
    let survival = &m[2];
    assert!(
        survival.1.contains("nda-4 Limited use: Contradiction"),
        "{}",
        survival.1
    );
    assert!(survival
        .1
        .contains("nda-19 Survival of obligations: Entailment"));
    assert!(page.contains(&format!(
        "<mark id=\"span-{}\" class=\"high\"",
        char_span(&r.text, S_SURVIVAL).0
    )));
    // Text outside the marks is intact: removing the mark tags gives back the text.
    let contract_start = page.find("<pre class=\"contract\">").unwrap() + 22;
    let contract_end = page[contract_start..].find("</pre>").unwrap() + contract_start;
    let mut plain = page[contract_start..contract_end].to_string();
    while let Some(i) = plain.find("<mark") {
        let j = plain[i..].find('>').unwrap() + i;
        plain.replace_range(i..=j, "");
    }
    assert_eq!(plain.replace("</mark>", ""), esc(&r.text));
}

#[test]
fn html_links_resolve_flagged_rows_come_first_and_text_is_escaped() {
    let r = review();
    let page = html(&r);
    let defined = ids(&page);
    let links = hrefs(&page);
    assert_eq!(
        links.len(),
        5,
        "one link per check with evidence: {links:?}"
    );
    for l in &links {
        assert!(defined.contains(l), "#{l} has no target");
    }
    // nda-4 links to its best span, not to its second one.
    let nda4_row = &page[page.find("data-check=\"nda-4\"").unwrap()..];
    let nda4_row = &nda4_row[..nda4_row.find("</tr>").unwrap()];
    assert!(nda4_row.contains(&format!(
        "href=\"#span-{}\"",
        char_span(&r.text, S_SURVIVAL).0
    )));
    assert!(nda4_row.contains("Ask for a purpose limit."));
    assert!(nda4_row.contains("<svg"), "a probability bar");

    // Rows: flagged by risk (nda-4 high, nda-7 medium; nda-3 and nda-19 match the playbook),
    // then the rest in check order.
    let order: Vec<String> = page
        .split("data-check=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].to_string())
        .collect();
    let mut expected = vec!["nda-4".to_string(), "nda-7".to_string()];
    expected.extend(
        CHECKS
            .iter()
            .map(|c| c.id.to_string())
            .filter(|id| id != "nda-4" && id != "nda-7"),
    );
    assert_eq!(order, expected);
    assert!(page.contains("<tr class=\"high\" data-check=\"nda-4\""));
    assert!(page.contains("<tr class=\"medium\" data-check=\"nda-7\""));
    assert!(page.contains("<tr data-check=\"nda-19\""));

    // Escaping: nothing from the contract or the review becomes markup.
    assert!(!page.contains("<script"));
    assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; agents"));
    assert!(page.contains("acme &lt;b&gt;nda&lt;/b&gt;"));
    assert!(!page.contains("<b>nda</b>"));
    assert!(page.contains("Limit sharing to advisers who need to know &amp; &lt;nobody&gt; else."));
    assert!(page.contains("Société «Acme»"));
    assert!(page.contains("contracts/acme «nda».pdf"));
    // Header: flag counts, time, warnings.
    assert!(page.contains("<span class=\"badge high\">1 high</span>"));
    assert!(page.contains("<span class=\"badge medium\">1 medium</span>"));
    assert!(page.contains("<span class=\"badge low\">0 low</span>"));
    assert!(page.contains("1.25 s"));
    assert!(page.contains("<div class=\"warnings\""));
    assert!(page.contains("Spans were cut to fit: &lt;3 tokens left"));
    // Self-contained.
    assert!(!page.contains("src=") && !page.contains("<link") && !page.contains("<img"));
    // The long evidence is cut in the table but whole in the text.
    let nda16 = &page[page.find("data-check=\"nda-16\"").unwrap()..];
    let nda16 = &nda16[..nda16.find("</tr>").unwrap()];
    assert!(nda16.contains("…”"), "{nda16}");
    assert!(!nda16.contains("END."));
}

#[test]
fn overlapping_evidence_is_cut_into_pieces_without_nesting() {
    let mut r = review();
    // nda-11: from inside the name to inside sentence 1; nda-15: inside the name.
    let text = r.text.clone();
    let (a, _) = char_span(&text, "«Acme»");
    let (_, b) = char_span(&text, "may share");
    let (c, d) = char_span(&text, "Acme");
    let slice = |s: usize, e: usize| text.chars().skip(s).take(e - s).collect::<String>();
    for (id, s, e) in [("nda-11", a, b), ("nda-15", c, d)] {
        r.checks.insert(
            id.into(),
            result(
                "Entailment",
                vec![Evidence {
                    start: s,
                    end: e,
                    text: slice(s, e),
                    score: 0.5,
                }],
            ),
        );
    }
    let page = html(&r);
    let m = marks(&page);
    let (n0, n1) = char_span(&text, S_NAME);
    let (s0, s1) = char_span(&text, S_ADVISERS);
    // Pieces: [n0,a) name; [a,c) name+11; [c,d) name+11+15; [d,n1) name+11;
    // [n1,s0) 11; [s0,b) 11+advisers; [b,s1) advisers; then survival and the long span.
    let pieces: Vec<(usize, usize)> =
        vec![(n0, a), (a, c), (c, d), (d, n1), (n1, s0), (s0, b), (b, s1)];
    for (k, (s, e)) in pieces.iter().enumerate() {
        assert_eq!(m[k].2, esc(&slice(*s, *e)), "piece {k}");
    }
    let with_id: Vec<Option<String>> = m.iter().take(7).map(|x| x.0.clone()).collect();
    let id = |x: usize| Some(format!("span-{x}"));
    assert_eq!(
        with_id,
        vec![id(n0), id(a), id(c), None, None, id(s0), None]
    );
    assert!(m[2].1.contains("nda-3") && m[2].1.contains("nda-11") && m[2].1.contains("nda-15"));
    assert!(!m[4].1.contains("nda-3") && m[4].1.contains("nda-11"));
    for l in hrefs(&page) {
        assert!(ids(&page).contains(&l), "#{l}");
    }
}

#[test]
fn html_without_the_text_links_nothing_that_does_not_exist() {
    let mut r = review();
    r.text.clear();
    let page = html(&r);
    assert!(hrefs(&page).is_empty());
    assert!(!page.contains("<mark"));
    // The quotes are still there, from the evidence itself.
    assert!(page.contains("Ünïcödé obligations survive"));
}

#[test]
fn markdown_has_the_table_and_the_evidence() {
    let r = review();
    let md = markdown(&r);
    assert!(md.starts_with("# NDA review: acme &lt;b&gt;nda&lt;/b&gt;\n"));
    assert!(md.contains("- Flags: **1 high**, **1 medium**, 0 low (17 checks reviewed)"));
    assert!(md.contains("> **Warning:** Spans were cut to fit: &lt;3 tokens left"));
    assert!(md.contains("| check | finding | probability | expected | risk | evidence |\n|---|---|---|---|---|---|\n"));
    let (s, e) = char_span(&r.text, S_SURVIVAL);
    let table_rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| nda-")).collect();
    assert_eq!(table_rows.len(), 17);
    assert!(table_rows[0].starts_with("| nda-4 Limited use | **Contradiction** | 0.70 "));
    assert!(table_rows[0].contains("| Entailment | **high** |"));
    assert!(table_rows[0].contains(&format!(
        "“2. Ünïcödé obligations survive for 5 years; the Recipient may use the information for any purpose.” [§ chars {s}–{e}](#span-{s})"
    )));
    assert!(table_rows[1].starts_with("| nda-7 Sharing with third parties | **Entailment** |"));
    assert!(table_rows[1].contains("Contradiction or NotMentioned | **medium** |"));
    assert!(table_rows[2].starts_with("| nda-1 Explicit identification | NotMentioned | 0.90 "));
    // Pipes, tags and underscores in the contract cannot break the table.
    assert!(md.contains("advisers &lt;script&gt;alert('x')&lt;/script&gt; &amp; agents"));
    assert!(!md.contains("<script"));
    for row in &table_rows {
        assert_eq!(row.matches(" | ").count(), 5, "{row}");
    }

    // Evidence: every span of the flagged checks with offsets and anchors; every link has one.
    assert!(md.contains("### nda-4 Limited use (high risk)"));
    assert!(md.contains("Found **Contradiction** (probability 0.70); the playbook expects Entailment. Ask for a purpose limit."));
    assert!(md.contains(&format!("— chars {s}–{e}, evidence score 0.85")));
    let (s2, e2) = char_span(&r.text, S_ADVISERS);
    assert!(md.contains(&format!("— chars {s2}–{e2}, evidence score 0.20")));
    assert!(md.contains("### nda-7 Sharing with third parties (medium risk)"));
    assert!(md.contains("### Other checks"));
    let anchors: BTreeSet<String> = md
        .split("<a id=\"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].to_string())
        .collect();
    let links: Vec<String> = md
        .split("](#")
        .skip(1)
        .map(|s| s[..s.find(')').unwrap()].to_string())
        .collect();
    assert_eq!(links.len(), 5);
    for l in links {
        assert!(anchors.contains(&l), "#{l} has no anchor");
    }
}

#[test]
fn the_index_summarises_documents_and_links_to_them() {
    let a = review();
    let mut b = review();
    b.doc_id = "clean".into();
    b.flags.clear();
    b.warnings.clear();
    let page = html_index(&[a, b], &["acme.html".into(), "clean.html".into()]);
    assert!(page.contains("NDA review: 2 documents"));
    assert!(page.contains("<a href=\"acme.html\">acme &lt;b&gt;nda&lt;/b&gt;</a>"));
    assert!(page.contains("<a href=\"clean.html\">clean</a>"));
    assert!(
        page.contains("<b>nda-4</b> Limited use: Contradiction (expected Entailment), high risk")
    );
    assert!(page.contains("<tr class=\"high\"><td><a href=\"acme.html\">"));
    assert!(page.contains("<tr><td><a href=\"clean.html\">"));
    assert!(page.contains("1 with flags"));
    assert!(!page.contains("<script"));
}
