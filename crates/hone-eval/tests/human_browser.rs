//! The rating page in a real headless Chromium: a reviewer rates by clicking (and by keyboard),
//! reloads without losing work, saves; the downloaded ratings.json imports to the hand-computed
//! win rates. Also keeps a screenshot of the page in target/test-artifacts/.
//!
//! Skips (printing "SKIP: chromium not installed") where Chromium or chromedriver is missing;
//! CI installs both (`.ci/run`).

#[path = "common/browser.rs"]
mod browser;

use std::path::{Path, PathBuf};
use std::time::Duration;

use browser::Browser;
use hone_eval::human::{export, import, ExportOptions, PacketKey};
use serde_json::{json, Value};

const CANDS: [&str; 3] = ["base", "finetuned", "frontier"];

fn write_outputs(dir: &Path, n: usize) -> PathBuf {
    let prompts = [
        "Does the confidentiality obligation in clause 7 survive termination of the agreement?",
        "List the parties to this NDA and the governing law.",
        "Summarise the permitted disclosures in two sentences.",
        "Is the receiving party allowed to reverse engineer the samples?",
    ];
    let mut s = String::new();
    for i in 1..=n {
        for (k, c) in CANDS.iter().enumerate() {
            let output = match k {
                0 => format!("Clause {i} says something about it.\nPossibly yes."),
                1 => format!(
                    "Yes. Clause {i}.2 states that the obligations \"survive any termination or \
                     expiry of this Agreement for a period of five (5) years\".\n\n- Scope: all \
                     Confidential Information\n- Exception: information that becomes public"
                ),
                _ => format!(
                    "Yes — per clause {i}.2 the duty of confidentiality continues for five years \
                     after termination. Note the carve-outs in clause {i}.3."
                ),
            };
            let line = json!({
                "id": format!("ex-{i}"),
                "input": prompts[(i - 1) % prompts.len()],
                "reference": "Yes, for five years after termination (clause 7.2).",
                "candidate": c,
                "output": output,
                "parsed_ok": true,
            });
            s.push_str(&line.to_string());
            s.push('\n');
        }
    }
    let p = dir.join("outputs.jsonl");
    std::fs::write(&p, s).unwrap();
    p
}

fn letter_of(key: &PacketKey, item: &str, candidate: &str) -> String {
    key.items[item]
        .iter()
        .find(|(_, c)| *c == candidate)
        .map(|(l, _)| l.clone())
        .unwrap()
}

fn label(item: &str, letter: &str, criterion: &str, value: u8) -> String {
    format!(
        r#"label[data-item="{item}"][data-letter="{letter}"][data-criterion="{criterion}"][data-value="{value}"]"#
    )
}

fn radio(item: &str, letter: &str, criterion: &str, value: u8) -> String {
    format!("{} input", label(item, letter, criterion, value))
}

/// Clicks the rating buttons of one output; a 0 leaves that criterion unrated.
fn rate(b: &Browser, key: &PacketKey, item: &str, candidate: &str, scores: [u8; 3]) {
    let letter = letter_of(key, item, candidate);
    for (criterion, v) in ["accuracy", "completeness", "format"].iter().zip(scores) {
        if v > 0 {
            b.click_css(&label(item, &letter, criterion, v))
                .unwrap_or_else(|e| panic!("{item} {candidate} {criterion}={v}: {e}"));
        }
    }
}

fn progress(b: &Browser) -> String {
    let el = b.find("#progress-text").unwrap();
    b.text(&el).unwrap()
}

#[test]
fn reviewer_rates_in_chromium_and_the_saved_file_imports_to_the_expected_win_rates() {
    if browser::skip_if_unavailable() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let outputs = write_outputs(dir.path(), 3);
    let packet = dir.path().join("packet");
    let summary = export(&outputs, &packet, &ExportOptions::default()).unwrap();
    let key: PacketKey =
        serde_json::from_slice(&std::fs::read(packet.join("key.json")).unwrap()).unwrap();

    // Downloads go to a folder of the test's own, which outlives the browser.
    let b = Browser::launch_with(browser::Options {
        download_dir: Some(dir.path().join("downloads")),
        ..Default::default()
    })
    .unwrap();
    b.open_file(&packet.join("index.html")).unwrap();
    assert_eq!(b.title().unwrap(), "Blind evaluation");
    let title = b.find("#item-title").unwrap();
    assert_eq!(b.text(&title).unwrap(), "Item 1 of 3");
    assert_eq!(progress(&b), "0 of 3 items done · 0/9 outputs rated");

    // Saving without a name is refused, on the page, without a download.
    b.click_css("#save").unwrap();
    let status = b.find("#save-status").unwrap();
    assert!(b.text(&status).unwrap().contains("Enter your name"));

    let name = b.find("#reviewer").unwrap();
    b.type_text(&name, "Dana Reviewer").unwrap();

    // Item 1: finetuned 5,5,4 · base 3,3,3 · frontier 4,5,5 (overall 4.67, 3, 4.67).
    rate(&b, &key, "ex-1", "finetuned", [5, 5, 4]);
    rate(&b, &key, "ex-1", "base", [3, 3, 3]);
    rate(&b, &key, "ex-1", "frontier", [4, 5, 5]);
    assert_eq!(progress(&b), "1 of 3 items done · 3/9 outputs rated");

    // A reload keeps the ratings and the name (localStorage). Chromium hands a page's
    // localStorage writes to its storage process asynchronously, and a reload within
    // milliseconds of the last click can reach the new page before them (it failed CI once);
    // a person never reloads that fast, so give the writes a moment first.
    std::thread::sleep(Duration::from_millis(750));
    b.refresh().unwrap();
    let ft1 = letter_of(&key, "ex-1", "finetuned");
    let checked = b.find(&radio("ex-1", &ft1, "format", 4)).unwrap();
    assert!(b.is_selected(&checked).unwrap(), "rating survives reload");
    let name = b.find("#reviewer").unwrap();
    assert_eq!(b.property(&name, "value").unwrap(), json!("Dana Reviewer"));
    assert_eq!(progress(&b), "1 of 3 items done · 3/9 outputs rated");

    // To item 2 with the Next button.
    b.click_css("#next").unwrap();
    assert_eq!(
        b.text(&b.find("#item-title").unwrap()).unwrap(),
        "Item 2 of 3"
    );
    // Item 2 by keyboard for the fine-tune: click its accuracy 1, then type 4 4 4 (each digit
    // rates the focused row and moves to the next one) → 4,4,4.
    let ft2 = letter_of(&key, "ex-2", "finetuned");
    b.click_css(&label("ex-2", &ft2, "accuracy", 1)).unwrap();
    for _ in 0..3 {
        b.press_key("4").unwrap();
    }
    for c in ["accuracy", "completeness", "format"] {
        let r = b.find(&radio("ex-2", &ft2, c, 4)).unwrap();
        assert!(b.is_selected(&r).unwrap(), "keyboard rated {c}");
    }
    // base 4,4,4 · frontier 5,5,5.
    rate(&b, &key, "ex-2", "base", [4, 4, 4]);
    rate(&b, &key, "ex-2", "frontier", [5, 5, 5]);

    // To item 3 with the "n" key (focus back on the page body first).
    b.execute(
        "document.activeElement && document.activeElement.blur()",
        &[],
    )
    .unwrap();
    b.press_key("n").unwrap();
    assert_eq!(
        b.text(&b.find("#item-title").unwrap()).unwrap(),
        "Item 3 of 3"
    );
    // Item 3: finetuned 5,4,5 with a critical failure · base 2,3,2 · frontier 4,4 and no format.
    rate(&b, &key, "ex-3", "finetuned", [5, 4, 5]);
    let ft3 = letter_of(&key, "ex-3", "finetuned");
    b.click_css(&format!(
        r#"input.critical-box[data-item="ex-3"][data-letter="{ft3}"]"#
    ))
    .unwrap();
    rate(&b, &key, "ex-3", "base", [2, 3, 2]);
    rate(&b, &key, "ex-3", "frontier", [4, 4, 0]);
    assert_eq!(progress(&b), "2 of 3 items done · 8/9 outputs rated");

    b.click_css("#save").unwrap();
    let saved = b
        .wait_for_download("ratings.json", Duration::from_secs(20))
        .unwrap();
    let status = b.text(&b.find("#save-status").unwrap()).unwrap();
    assert!(status.contains("1 output(s) not fully rated"), "{status}");
    drop(b);

    let doc: Value = serde_json::from_slice(&std::fs::read(&saved).unwrap()).unwrap();
    assert_eq!(doc["format"], "hone-human-ratings/1");
    assert_eq!(doc["packet_id"], json!(summary.packet_id));
    assert_eq!(doc["reviewer"], "Dana Reviewer");
    assert!(doc["saved_at"].as_str().unwrap().ends_with('Z'));

    let r = import(&packet, &[saved]).unwrap();
    assert_eq!(r.reviewers, ["Dana Reviewer"]);
    // finetuned vs base: W (4.67 > 3), T (4 = 4), W (4.67 > 2.33) → 2.5 / 3.
    let w = r.win("finetuned", "base").unwrap();
    assert_eq!((w.wins, w.ties, w.losses), (2, 1, 0));
    assert!((w.win_rate.unwrap() - 2.5 / 3.0).abs() < 1e-12);
    assert!((w.ci_low.unwrap() - 0.309988106442).abs() < 1e-9);
    assert!((w.ci_high.unwrap() - 0.982347205721).abs() < 1e-9);
    // finetuned vs frontier: T (4.67 = 4.67), L (4 < 5); item 3 has no frontier score → 0.5 / 2.
    let w = r.win("finetuned", "frontier").unwrap();
    assert_eq!((w.wins, w.ties, w.losses), (0, 1, 1));
    assert!((w.win_rate.unwrap() - 0.25).abs() < 1e-12);
    assert!((w.ci_low.unwrap() - 0.026677342009).abs() < 1e-9);
    assert!((w.ci_high.unwrap() - 0.802132544238).abs() < 1e-9);
    let ft = r.scores_of("finetuned").unwrap();
    assert_eq!(ft.critical_failures, 1);
    assert_eq!(ft.critical_items, ["ex-3"]);
    assert!((ft.accuracy.mean.unwrap() - 14.0 / 3.0).abs() < 1e-12);
    assert_eq!(r.missing.incomplete, 1);
    assert_eq!(r.missing.details[0].candidate, "frontier");
    assert_eq!(r.missing.details[0].criteria, ["format"]);
}

#[test]
fn human_page_screenshot_is_kept_in_test_artifacts() {
    if browser::skip_if_unavailable() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let outputs = write_outputs(dir.path(), 12);
    let packet = dir.path().join("packet");
    export(&outputs, &packet, &ExportOptions::default()).unwrap();

    // The plain helper others use: render a local HTML file to a PNG.
    let png = browser::artifacts_dir().join("human_page.png");
    let _ = std::fs::remove_file(&png);
    let (w, h) = browser::screenshot(&packet.join("index.html"), &png).unwrap();
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(browser::check_png(&bytes, 5_000).unwrap(), (w, h));
    assert!(w >= 1000 && h >= 600, "{w}×{h}");

    // And the page with some work done, for people to look at.
    let key: PacketKey =
        serde_json::from_slice(&std::fs::read(packet.join("key.json")).unwrap()).unwrap();
    let b = Browser::launch().unwrap();
    b.open_file(&packet.join("index.html")).unwrap();
    b.type_text(&b.find("#reviewer").unwrap(), "Dana").unwrap();
    rate(&b, &key, "ex-1", "finetuned", [5, 4, 5]);
    rate(&b, &key, "ex-1", "base", [2, 3, 0]);
    let base = letter_of(&key, "ex-1", "base");
    b.click_css(&format!(
        r#"input.critical-box[data-item="ex-1"][data-letter="{base}"]"#
    ))
    .unwrap();
    let rated = b.full_page_png(8000).unwrap();
    browser::check_png(&rated, 5_000).unwrap();
    std::fs::write(
        browser::artifacts_dir().join("human_page_rated.png"),
        &rated,
    )
    .unwrap();
    // A narrow (phone-sized) window still lays out.
    b.set_window_size(420, 900).unwrap();
    let narrow = b.screenshot_png().unwrap();
    browser::check_png(&narrow, 5_000).unwrap();
    std::fs::write(
        browser::artifacts_dir().join("human_page_narrow.png"),
        &narrow,
    )
    .unwrap();
}

#[test]
fn file_urls_are_absolute_and_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("a b#c.html");
    std::fs::write(&p, "<p>x</p>").unwrap();
    let url = browser::file_url(&p).unwrap();
    assert!(url.starts_with("file:///"), "{url}");
    assert!(url.ends_with("/a%20b%23c.html"), "{url}");
    assert!(browser::check_png(b"not a png at all, not at all, no..", 1).is_err());
}
