//! ContractNLI document metrics against hand-computed numbers on a small fixture, the
//! range → span half-coverage rule, average precision, both gold formats, and bad inputs.
//!
//! Fixture (tests/fixtures/contractnli/gold.json, official format): 4 documents of 40
//! characters, each with spans s0 = [0,10), s1 = [10,20), s2 = [20,30), s3 = [30,40).
//!
//! | doc | nda-1          | nda-2        | nda-3          |
//! |-----|----------------|--------------|----------------|
//! | 1   | E  {s0}        | E  {s1}      | NM             |
//! | 2   | C  {s1, s2}    | E  {s0}      | C  {s3}        |
//! | 3   | E  {s3}        | NM           | E  {s0, s2}    |
//! | 4   | NM             | E  {s2}      | C  {s1}        |
//!
//! Predictions (pred.jsonl) cover documents 1–3; document 4 is missing.
//!
//! | doc | nda-1                                  | nda-2                                   | nda-3                                 |
//! |-----|----------------------------------------|-----------------------------------------|---------------------------------------|
//! | 1   | E; [0,10)→.9, [12,18)→.5               | NM (E .3 > C .1); [10,16)→.4            | NM; no evidence                       |
//! | 2   | E (E .5, C .4); [10,30)→.7, [33,40)→.8 | E; [0,4)→.9, [0,5)→.3, [10,20)→.5       | C; [30,40)→.6                         |
//! | 3   | NM (E .2 < C .3); [30,40)→.2           | NM; no evidence                         | E; [0,10)→.5, [10,20)→.9, [20,30)→.5  |

use std::path::{Path, PathBuf};

use hone_eval::contractnli::{
    average_precision, covers, detect_gold_format, evaluate, evaluate_files, read_gold,
    read_predictions, span_scores, ContractNliMetrics, EvidenceRange, GoldFormat,
};
use hone_eval::Error;

const EPS: f64 = 1e-12;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/contractnli")
        .join(name)
}

fn close(actual: Option<f64>, expected: f64, what: &str) {
    let a = actual.unwrap_or_else(|| panic!("{what}: undefined, expected {expected}"));
    assert!(
        (a - expected).abs() < EPS,
        "{what}: got {a}, expected {expected}"
    );
}

fn fixture_metrics() -> ContractNliMetrics {
    evaluate_files(&fixture("gold.json"), &fixture("pred.jsonl")).unwrap()
}

fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

#[test]
fn fixture_three_class_accuracy() {
    let m = fixture_metrics();
    // nda-1: d1 E→E ✓, d2 C→E ✗, d3 E→NM ✗, d4 NM→(missing) NM ✓  = 2/4
    // nda-2: d1 E→NM ✗, d2 E→E ✓, d3 NM→NM ✓, d4 E→(missing) NM ✗ = 2/4
    // nda-3: d1 NM→NM ✓, d2 C→C ✓, d3 E→E ✓, d4 C→(missing) NM ✗ = 3/4
    let h = &m.per_hypothesis;
    assert_eq!(
        h.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(),
        ["nda-1", "nda-2", "nda-3"]
    );
    close(Some(h[0].acc3), 0.5, "nda-1 acc3");
    close(Some(h[1].acc3), 0.5, "nda-2 acc3");
    close(Some(h[2].acc3), 0.75, "nda-3 acc3");
    // (0.5 + 0.5 + 0.75) / 3 = 1.75 / 3 = 7/12
    close(m.acc3, 7.0 / 12.0, "acc3");
}

#[test]
fn fixture_nli_binary_metrics() {
    let m = fixture_metrics();
    let h = &m.per_hypothesis;
    // nda-2 has only Entailment gold labels: it takes no part in the NLI numbers.
    assert!(h[0].binary && !h[1].binary && h[2].binary);
    assert_eq!((h[1].nli_acc, h[1].f1_c, h[1].f1_e), (None, None, None));
    assert_eq!(m.binary_hypotheses, 2);

    // nda-1 over d1 (E), d2 (C), d3 (E):
    //   d1 E→E ✓; d2 C→E ✗; d3 predicted NM with E .2 < C .3 → C, ✗.  acc = 1/3
    //   E: gold {d1,d3}, predicted {d1,d2}: tp 1, fp 1, fn 1 → F1 = 2/(2+1+1) = 1/2
    //   C: gold {d2}, predicted {d3}: tp 0 → F1 = 0
    close(h[0].nli_acc, 1.0 / 3.0, "nda-1 nli_acc");
    close(h[0].f1_e, 0.5, "nda-1 f1_e");
    close(h[0].f1_c, 0.0, "nda-1 f1_c");

    // nda-3 over d2 (C), d3 (E), d4 (C):
    //   d2 C→C ✓; d3 E→E ✓; d4 missing → no decision, ✗.  acc = 2/3
    //   E: gold {d3}, predicted {d3}: tp 1, fp 0, fn 0 → F1 = 1
    //   C: gold {d2,d4}, predicted {d2}: tp 1, fp 0, fn 1 → F1 = 2/3
    close(h[2].nli_acc, 2.0 / 3.0, "nda-3 nli_acc");
    close(h[2].f1_e, 1.0, "nda-3 f1_e");
    close(h[2].f1_c, 2.0 / 3.0, "nda-3 f1_c");

    // Macro over nda-1 and nda-3.
    close(m.nli_acc, (1.0 / 3.0 + 2.0 / 3.0) / 2.0, "nli_acc"); // 1/2
    close(m.f1_e, (0.5 + 1.0) / 2.0, "f1_e"); // 3/4
    close(m.f1_c, (0.0 + 2.0 / 3.0) / 2.0, "f1_c"); // 1/3
}

#[test]
fn fixture_evidence_map() {
    let m = fixture_metrics();
    let h = &m.per_hypothesis;
    // Per-document AP (documents with gold ≠ NM; a span's score is the best covering range):
    // nda-1
    //   d1: s0 .9 (gold), s1 .5 ([12,18) covers 6 of 10) → ranking gold first: AP = 1
    //   d2: s3 .8, s1 .7 (gold), s2 .7 (gold) → threshold .8: P 0, R 0; threshold .7 (tie):
    //       P 2/3, R 1 → AP = 1 × 2/3 = 2/3
    //   d3: s3 .2 (gold) → AP = 1
    //   mean = (1 + 2/3 + 1) / 3 = 8/9
    // nda-2
    //   d1: s1 .4 ([10,16) covers 6 of 10; gold) → AP = 1
    //   d2: [0,4) covers only 4 of s0's 10 characters, so s0 gets .3 from [0,5), not .9;
    //       s1 .5 (not gold) ranks first → P@2 = 1/2 at R = 1 → AP = 1/2
    //   d4: missing, nothing covered → AP = 0
    //   mean = (1 + 1/2 + 0) / 3 = 1/2
    // nda-3
    //   d2: s3 .6 (gold) → AP = 1
    //   d3: s1 .9 (not gold), s0 .5 and s2 .5 (gold, tied) → ΔR 1 at P 2/3 → AP = 2/3
    //       (ranking the tie one by one would give (1/2 + 2/3) / 2 = 7/12 instead)
    //   d4: missing → AP = 0
    //   mean = (1 + 2/3 + 0) / 3 = 5/9
    close(
        h[0].evidence_map_macro_doc,
        8.0 / 9.0,
        "nda-1 evidence_map_macro_doc",
    );
    close(
        h[1].evidence_map_macro_doc,
        0.5,
        "nda-2 evidence_map_macro_doc",
    );
    close(
        h[2].evidence_map_macro_doc,
        5.0 / 9.0,
        "nda-3 evidence_map_macro_doc",
    );
    // (8/9 + 1/2 + 5/9) / 3 = (16 + 9 + 10) / 18 / 3 = 35/54
    close(
        m.evidence_map_macro_doc,
        35.0 / 54.0,
        "evidence_map_macro_doc",
    );
    assert_eq!(
        h.iter().map(|h| h.evidence_documents).collect::<Vec<_>>(),
        [3, 3, 3]
    );
    assert_eq!(m.evidence_pairs, 9);

    // Pooled over a hypothesis's documents (micro over documents):
    // nda-1: .9 g | .8 · | .7 g g | .5 · | .2 g, 4 gold:
    //   R .25 at P 1; R .75 at P 3/4; R 1 at P 4/6 → .25 + .5 × .75 + .25 × 2/3 = 19/24
    // nda-2: .5 · | .4 g | .3 g, 3 gold (d4's s2 never retrieved):
    //   R 1/3 at P 1/2; R 2/3 at P 2/3 → 1/6 + 2/9 = 7/18
    // nda-3: .9 · | .6 g | .5 g g, 4 gold (d4's s1 never retrieved):
    //   R .25 at P 1/2; R .75 at P 3/4 → .125 + .375 = 1/2
    close(h[0].evidence_map, 19.0 / 24.0, "nda-1 micro");
    close(h[1].evidence_map, 7.0 / 18.0, "nda-2 micro");
    close(h[2].evidence_map, 0.5, "nda-3 micro");
    // (57 + 28 + 36) / 72 / 3 = 121/216
    close(m.evidence_map, 121.0 / 216.0, "evidence_map");
}

#[test]
fn fixture_counts_and_json() {
    let m = fixture_metrics();
    assert_eq!((m.documents, m.predicted, m.missing), (4, 3, 1));
    assert_eq!((m.missing_checks, m.hypotheses), (0, 3));
    let h = &m.per_hypothesis[0];
    assert_eq!(h.name.as_deref(), Some("Explicit identification"));
    assert_eq!(
        (h.documents, h.entailment, h.contradiction, h.not_mentioned),
        (4, 2, 1, 1)
    );

    let v = serde_json::to_value(&m).unwrap();
    for key in [
        "nli_acc",
        "f1_c",
        "f1_e",
        "acc3",
        "evidence_map",
        "evidence_map_macro_doc",
        "missing",
    ] {
        assert!(v.get(key).is_some(), "JSON lacks `{key}`");
    }
    assert!((v["acc3"].as_f64().unwrap() - 7.0 / 12.0).abs() < EPS);
    assert_eq!(v["per_hypothesis"].as_array().unwrap().len(), 3);
    // Undefined values serialize as null.
    assert!(v["per_hypothesis"][1]["nli_acc"].is_null());
}

#[test]
fn both_gold_formats_give_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    let ds = hone_data::contractnli::read(&fixture("gold.json")).unwrap();
    let imported = hone_data::contractnli::import(&ds, &fixture("gold.json")).unwrap();
    hone_data::contractnli::write_imported(&imported, dir.path()).unwrap();
    let jsonl = dir.path().join("documents.jsonl");

    let official_text = std::fs::read_to_string(fixture("gold.json")).unwrap();
    assert_eq!(detect_gold_format(&official_text), GoldFormat::Official);
    let jsonl_text = std::fs::read_to_string(&jsonl).unwrap();
    assert_eq!(detect_gold_format(&jsonl_text), GoldFormat::Documents);
    // Compact (one-line) official JSON is still the official format.
    let compact = serde_json::to_string(&ds).unwrap();
    assert_eq!(detect_gold_format(&compact), GoldFormat::Official);

    assert_eq!(
        read_gold(&fixture("gold.json")).unwrap(),
        read_gold(&jsonl).unwrap()
    );
    let a = evaluate_files(&fixture("gold.json"), &fixture("pred.jsonl")).unwrap();
    let b = evaluate_files(&jsonl, &fixture("pred.jsonl")).unwrap();
    assert_eq!(a, b);
}

#[test]
fn half_coverage_rule() {
    let span = [10, 20]; // 10 characters
    assert!(covers(10, 20, span), "exact");
    assert!(covers(0, 100, span), "superset");
    assert!(covers(10, 15, span), "exactly half (5 of 10)");
    assert!(covers(15, 25, span), "second half, overhanging");
    assert!(!covers(10, 14, span), "4 of 10");
    assert!(!covers(16, 30, span), "4 of 10 at the end");
    assert!(!covers(0, 10, span), "adjacent, no overlap");
    assert!(!covers(20, 30, span), "adjacent after");
    // Odd length: 5 characters need 3 (2.5 rounded up).
    assert!(!covers(0, 2, [0, 5]));
    assert!(covers(0, 3, [0, 5]));
    // An empty span is never covered.
    assert!(!covers(0, 10, [5, 5]));
    // A range ending before it starts covers nothing.
    assert!(!covers(20, 10, span));
}

#[test]
fn span_scores_take_the_best_covering_range() {
    let spans = [[0, 10], [10, 20], [20, 30], [30, 40]];
    let r = |start, end, score| EvidenceRange { start, end, score };
    let scores = span_scores(
        &spans,
        &[
            r(0, 4, 0.9),   // covers nothing (4 of 10)
            r(0, 5, 0.3),   // covers s0
            r(0, 10, 0.6),  // covers s0, better
            r(10, 30, 0.2), // covers s1 and s2
            r(12, 20, 0.7), // covers s1 (8 of 10), better
        ],
    );
    assert_eq!(scores, [Some(0.6), Some(0.7), Some(0.2), None]);
    assert_eq!(span_scores(&spans, &[]), [None, None, None, None]);
    assert!(span_scores(&[], &[r(0, 10, 1.0)]).is_empty());
}

#[test]
fn average_precision_semantics() {
    let ap = |s: &[Option<f64>], g: &[bool]| average_precision(s, g);
    // Perfect ranking.
    assert_eq!(ap(&[Some(0.9), Some(0.1)], &[true, false]), Some(1.0));
    // Gold ranked second: precision 1/2 at full recall.
    assert_eq!(ap(&[Some(0.9), Some(0.1)], &[false, true]), Some(0.5));
    // Two gold at ranks 1 and 3: (1/1 + 2/3) / 2 = 5/6.
    let v = ap(&[Some(0.9), Some(0.8), Some(0.7)], &[true, false, true]).unwrap();
    assert!((v - 5.0 / 6.0).abs() < EPS);
    // Tied scores form one threshold: both items enter at once, P = 1/2 at R = 1.
    assert_eq!(ap(&[Some(0.5), Some(0.5)], &[false, true]), Some(0.5));
    // A gold item never retrieved only caps recall: R 1/2 at P 1 → 1/2.
    assert_eq!(ap(&[Some(0.9), None], &[true, true]), Some(0.5));
    // Nothing retrieved: 0. No gold: undefined. Length mismatch: undefined.
    assert_eq!(ap(&[None, None], &[true, false]), Some(0.0));
    assert_eq!(ap(&[Some(0.9)], &[false]), None);
    assert_eq!(ap(&[], &[]), None);
    assert_eq!(ap(&[Some(0.9)], &[true, false]), None);
}

#[test]
fn missing_checks_are_counted_and_scored_not_mentioned() {
    let dir = tempfile::tempdir().unwrap();
    // Only document 1, and only nda-1 (correct, perfect evidence).
    let pred = write(
        dir.path(),
        "p.jsonl",
        r#"{"doc_id": 1, "checks": {"nda-1": {"label": "Entailment", "evidence": [{"start": 0, "end": 10, "score": 1.0}]}}}"#,
    );
    let m = evaluate_files(&fixture("gold.json"), &pred).unwrap();
    assert_eq!((m.predicted, m.missing, m.missing_checks), (1, 3, 2));
    // nda-3 in document 1 is gold NotMentioned and the missing check counts as NotMentioned:
    // nda-3: d1 ✓, d2 ✗, d3 ✗, d4 ✗ → 1/4.
    close(Some(m.per_hypothesis[2].acc3), 0.25, "nda-3 acc3");
    // nda-1: d1 ✓, d2 ✗, d3 ✗, d4 (NM) ✓ → 1/2; evidence: d1 AP 1, d2 0, d3 0 → 1/3.
    close(Some(m.per_hypothesis[0].acc3), 0.5, "nda-1 acc3");
    close(
        m.per_hypothesis[0].evidence_map_macro_doc,
        1.0 / 3.0,
        "nda-1 map",
    );
}

fn err_of(gold: &Path, pred: &Path) -> Error {
    evaluate_files(gold, pred).expect_err("should fail")
}

#[test]
fn missing_files_are_io_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("nowhere.jsonl");
    let e = err_of(&nowhere, &fixture("pred.jsonl"));
    assert!(
        matches!(&e, Error::Io { path, .. } if path == &nowhere),
        "{e}"
    );
    let e = err_of(&fixture("gold.json"), &nowhere);
    assert!(
        matches!(&e, Error::Io { path, .. } if path == &nowhere),
        "{e}"
    );
    assert!(e.to_string().contains("nowhere.jsonl"));
}

/// A missing file's error, shown as the binary shows it (anyhow's `{:#}`, the message and its
/// causes), names the file and gives the OS error once; `{}` alone gives both too.
#[test]
fn io_errors_print_their_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("nowhere.jsonl");
    let os = std::fs::read(&nowhere).unwrap_err().to_string();
    // Straight from this crate, and through hone-data's reader of the gold file.
    for e in [
        err_of(&fixture("gold.json"), &nowhere),
        err_of(&nowhere, &fixture("pred.jsonl")),
    ] {
        let plain = e.to_string();
        let shown = format!("{:#}", anyhow::Error::new(e).context("scoring"));
        assert_eq!(shown.matches(os.as_str()).count(), 1, "{shown}");
        assert_eq!(
            shown,
            format!("scoring: {}: {os}", nowhere.display()),
            "{shown}"
        );
        assert_eq!(plain, format!("{}: {os}", nowhere.display()));
    }
}

#[test]
fn malformed_predictions_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(fixture("pred.jsonl")).unwrap();
    let first = good.lines().next().unwrap();
    let pred = write(
        dir.path(),
        "bad.jsonl",
        &format!("{first}\n{{\"doc_id\": \"2\", \"checks\": {{\n"),
    );
    let e = err_of(&fixture("gold.json"), &pred);
    assert!(matches!(e, Error::Parse { line: 2, .. }), "{e}");
    assert!(e.to_string().contains("bad.jsonl:2:"), "{e}");

    // A line without `checks`.
    let pred = write(dir.path(), "nochecks.jsonl", "{\"doc_id\": \"1\"}\n");
    let e = err_of(&fixture("gold.json"), &pred);
    assert!(matches!(e, Error::Parse { line: 1, .. }), "{e}");
    assert!(e.to_string().contains("checks"), "{e}");
}

fn one_line_error(line: &str) -> Error {
    let dir = tempfile::tempdir().unwrap();
    let pred = write(dir.path(), "p.jsonl", &format!("\n{line}\n"));
    err_of(&fixture("gold.json"), &pred)
}

#[test]
fn prediction_for_unknown_document() {
    let e = one_line_error(r#"{"doc_id": "99", "checks": {}}"#);
    match &e {
        Error::Field {
            line, field, msg, ..
        } => {
            assert_eq!((*line, field.as_str()), (2, "doc_id"));
            assert!(msg.contains("`99`"), "{msg}");
        }
        other => panic!("wrong error: {other}"),
    }
}

#[test]
fn unknown_check_id() {
    let e = one_line_error(r#"{"doc_id": "1", "checks": {"nda-99": {"label": "Entailment"}}}"#);
    assert!(
        matches!(&e, Error::Field { line: 2, msg, .. } if msg.contains("nda-99")),
        "{e}"
    );
}

#[test]
fn label_outside_the_three_choices() {
    let e = one_line_error(r#"{"doc_id": "1", "checks": {"nda-1": {"label": "Neutral"}}}"#);
    assert!(
        matches!(&e, Error::Field { line: 2, field, msg, .. }
            if field == "checks.nda-1.label" && msg.contains("Neutral")),
        "{e}"
    );
    let e = one_line_error(
        r#"{"doc_id": "1", "checks": {"nda-1": {"label": "Entailment", "probs": {"Neutral": 0.5}}}}"#,
    );
    assert!(
        matches!(&e, Error::Field { field, .. } if field == "checks.nda-1.probs"),
        "{e}"
    );
    let e = one_line_error(
        r#"{"doc_id": "1", "checks": {"nda-1": {"label": "Entailment", "probs": {"Entailment": 1.5}}}}"#,
    );
    assert!(
        matches!(&e, Error::Field { field, .. } if field == "checks.nda-1.probs"),
        "{e}"
    );
}

#[test]
fn probabilities_that_are_not_a_distribution_are_refused() {
    for (probs, sum) in [
        (
            r#"{"Entailment": 0.5, "Contradiction": 0.5, "NotMentioned": 0.5}"#,
            "1.5",
        ),
        (r#"{"Entailment": 0.5}"#, "0.5"),
        (r#"{}"#, "0"),
    ] {
        let e = one_line_error(&format!(
            r#"{{"doc_id": "1", "checks": {{"nda-1": {{"label": "Entailment", "probs": {probs}}}}}}}"#
        ));
        assert!(
            matches!(&e, Error::Field { line: 2, field, msg, .. }
                if field == "checks.nda-1.probs" && msg.contains(&format!("sum to {sum},"))),
            "{probs}: {e}"
        );
        assert!(e.to_string().contains("p.jsonl:2:"), "{e}");
    }
    let e = one_line_error(
        r#"{"doc_id": "1", "checks": {"nda-1": {"label": "Entailment", "probs": {"Entailment": -0.1, "Contradiction": 0.6, "NotMentioned": 0.5}}}}"#,
    );
    assert!(
        matches!(&e, Error::Field { field, msg, .. }
            if field == "checks.nda-1.probs" && msg.contains("not a probability")),
        "{e}"
    );
    // Rounding by the writer is accepted: four and two decimals (0.99 in all).
    let dir = tempfile::tempdir().unwrap();
    for probs in [
        r#"{"Entailment": 0.3333, "Contradiction": 0.3333, "NotMentioned": 0.3333}"#,
        r#"{"Entailment": 0.33, "Contradiction": 0.33, "NotMentioned": 0.33}"#,
    ] {
        let pred = write(
            dir.path(),
            "p.jsonl",
            &format!(
                r#"{{"doc_id": "1", "checks": {{"nda-1": {{"label": "Entailment", "probs": {probs}}}}}}}"#
            ),
        );
        read_predictions(&pred).unwrap_or_else(|e| panic!("{probs}: {e}"));
    }
    // Just past the tolerance is not.
    let e = one_line_error(
        r#"{"doc_id": "1", "checks": {"nda-1": {"label": "Entailment", "probs": {"Entailment": 0.3, "Contradiction": 0.3, "NotMentioned": 0.37}}}}"#,
    );
    assert!(
        matches!(&e, Error::Field { field, .. } if field == "checks.nda-1.probs"),
        "{e}"
    );
}

#[test]
fn an_empty_predictions_file_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in [("empty.jsonl", ""), ("blank.jsonl", "\n  \n")] {
        let pred = write(dir.path(), name, body);
        let e = read_predictions(&pred).unwrap_err();
        assert!(
            matches!(&e, Error::Format { path, .. } if path == &pred),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            format!("{}: no predictions (the file is empty)", pred.display())
        );
        // And it is never scored.
        let e = err_of(&fixture("gold.json"), &pred);
        assert!(e.to_string().contains("no predictions"), "{e}");
    }
}

#[test]
fn bad_evidence_ranges_and_duplicates() {
    // Beyond the 40-character text.
    let e = one_line_error(
        r#"{"doc_id": "1", "checks": {"nda-1": {"label": "Entailment", "evidence": [{"start": 30, "end": 41, "score": 1}]}}}"#,
    );
    assert!(
        matches!(&e, Error::Field { field, .. } if field == "checks.nda-1.evidence"),
        "{e}"
    );
    // Ends before it starts.
    let e = one_line_error(
        r#"{"doc_id": "1", "checks": {"nda-1": {"label": "Entailment", "evidence": [{"start": 9, "end": 3, "score": 1}]}}}"#,
    );
    assert!(
        matches!(&e, Error::Field { field, .. } if field == "checks.nda-1.evidence"),
        "{e}"
    );
    // The same document twice.
    let e = one_line_error("{\"doc_id\": \"1\", \"checks\": {}}\n{\"doc_id\": 1, \"checks\": {}}");
    assert!(
        matches!(&e, Error::Field { line: 3, field, msg, .. }
            if field == "doc_id" && msg.contains("line 2")),
        "{e}"
    );
}

#[test]
fn bad_gold_files() {
    let dir = tempfile::tempdir().unwrap();
    let pred = fixture("pred.jsonl");
    // Malformed official JSON.
    let g = write(
        dir.path(),
        "g.json",
        "{\n  \"documents\": [\n    {\"id\": 1,,}\n  ]\n}\n",
    );
    let e = err_of(&g, &pred);
    assert!(matches!(e, Error::Parse { line: 3, .. }), "{e}");
    // Malformed documents.jsonl, second line.
    let g = write(
        dir.path(),
        "g.jsonl",
        "{\"id\": \"1\", \"file_name\": \"\", \"text\": \"\", \"spans\": [], \"labels\": {}}\nnot json\n",
    );
    let e = err_of(&g, &pred).to_string();
    assert!(e.contains("g.jsonl:2:"), "{e}");
    // An evidence index beyond the span list; a choice outside the three.
    let official = std::fs::read_to_string(fixture("gold.json")).unwrap();
    let g = write(
        dir.path(),
        "span.json",
        &official.replace(r#""spans": [1, 2]"#, r#""spans": [1, 7]"#),
    );
    let e = err_of(&g, &pred);
    assert!(
        matches!(&e, Error::Format { msg, .. } if msg.contains("evidence span 7")),
        "{e}"
    );
    let g = write(
        dir.path(),
        "choice.json",
        &official.replace(
            r#""choice": "Contradiction", "spans": [3]"#,
            r#""choice": "Maybe", "spans": [3]"#,
        ),
    );
    let e = err_of(&g, &pred);
    assert!(
        matches!(&e, Error::Format { msg, .. } if msg.contains("Maybe")),
        "{e}"
    );
    // No documents at all.
    let g = write(
        dir.path(),
        "empty.json",
        r#"{"documents": [], "labels": {}}"#,
    );
    let e = err_of(&g, &pred);
    assert!(matches!(e, Error::Invalid(_)), "{e}");
}

#[test]
fn in_memory_gold_is_checked_too() {
    let mut gold = read_gold(&fixture("gold.json")).unwrap();
    gold[0].labels.get_mut("nda-1").unwrap().spans.push(9);
    let preds = read_predictions(&fixture("pred.jsonl")).unwrap();
    assert!(matches!(evaluate(&gold, &preds), Err(Error::Invalid(_))));
}
