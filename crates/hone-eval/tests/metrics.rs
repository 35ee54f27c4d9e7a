//! Task metrics against hand-computed values.

use std::collections::BTreeMap;

use hone_eval::metrics::{
    classification, extraction, fields_from_json, generation, multilabel, normalize_whitespace,
    parse_label, parse_labels, rouge_l, rouge_n, squad_normalize, token_f1,
};
use hone_eval::Error;

const EPS: f64 = 1e-12;

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn p(v: &[Option<&str>]) -> Vec<Option<String>> {
    v.iter().map(|x| x.map(str::to_string)).collect()
}

fn close(a: f64, b: f64, what: &str) {
    assert!((a - b).abs() < EPS, "{what}: got {a}, expected {b}");
}

fn some_close(a: Option<f64>, b: f64, what: &str) {
    close(
        a.unwrap_or_else(|| panic!("{what}: undefined, expected {b}")),
        b,
        what,
    );
}

// ---------------------------------------------------------------- classification

#[test]
fn classification_mixed_with_unparseable_and_empty_class() {
    let labels = s(&["A", "B", "C", "D"]);
    // 1 A→A, 2 A→A, 3 A→B, 4 B→B, 5 B→(unparseable), 6 C→A. D: no gold, never predicted.
    let gold = s(&["A", "A", "A", "B", "B", "C"]);
    let pred = p(&[Some("A"), Some("A"), Some("B"), Some("B"), None, Some("A")]);
    let r = classification(&labels, &gold, &pred).unwrap();
    assert_eq!((r.total, r.correct, r.unparseable), (6, 3, 1));
    close(r.accuracy, 0.5, "accuracy"); // 3/6

    let [a, b, c, d] = &r.per_class[..] else {
        panic!()
    };
    // A: tp 2, fp 1 (C→A), fn 1 (A→B) → P = R = 2/3, F1 = 4/(4+1+1) = 2/3
    assert_eq!((a.tp, a.fp, a.fn_, a.support, a.predicted), (2, 1, 1, 3, 3));
    some_close(a.precision, 2.0 / 3.0, "A precision");
    some_close(a.recall, 2.0 / 3.0, "A recall");
    some_close(a.f1, 2.0 / 3.0, "A f1");
    // B: tp 1, fp 1 (A→B), fn 1 (the unparseable answer) → P = R = F1 = 1/2
    assert_eq!((b.tp, b.fp, b.fn_), (1, 1, 1));
    some_close(b.precision, 0.5, "B precision");
    some_close(b.recall, 0.5, "B recall");
    some_close(b.f1, 0.5, "B f1");
    // C: gold once, never predicted: tp 0, fp 0, fn 1 → P 0 (zero_division=0), R 0, F1 0
    assert_eq!((c.tp, c.fp, c.fn_), (0, 0, 1));
    assert_eq!(
        (c.precision, c.recall, c.f1),
        (Some(0.0), Some(0.0), Some(0.0))
    );
    // D: neither gold nor predicted → undefined, left out of the macro averages
    assert_eq!((d.precision, d.recall, d.f1), (None, None, None));

    // Micro: tp 3, fp 2, fn 3 → P 3/5, R 3/6 (= accuracy), F1 6/(6+2+3) = 6/11
    some_close(r.micro.precision, 0.6, "micro P");
    some_close(r.micro.recall, 0.5, "micro R");
    some_close(r.micro.f1, 6.0 / 11.0, "micro F1");
    // Macro over A, B, C: (2/3 + 1/2 + 0) / 3 = 7/18 for P, R and F1
    some_close(r.macro_.precision, 7.0 / 18.0, "macro P");
    some_close(r.macro_.recall, 7.0 / 18.0, "macro R");
    some_close(r.macro_.f1, 7.0 / 18.0, "macro F1");

    // Confusion matrix: rows gold, columns predicted, plus the unparseable column.
    assert_eq!(r.confusion.labels, labels);
    assert_eq!(
        r.confusion.matrix,
        vec![
            vec![2, 1, 0, 0],
            vec![0, 1, 0, 0],
            vec![1, 0, 0, 0],
            vec![0, 0, 0, 0]
        ]
    );
    assert_eq!(r.confusion.unparseable, vec![0, 1, 0, 0]);

    // Serializes with null for the undefined class and `fn` / `macro` keys.
    let v = serde_json::to_value(&r).unwrap();
    assert!(v["per_class"][3]["f1"].is_null());
    assert_eq!(v["per_class"][1]["fn"], 1);
    assert!(v["macro"]["f1"].is_number());
}

#[test]
fn classification_predicted_class_without_gold() {
    // x: tp 1, fn 1 → P 1, R 1/2, F1 2/3. y: fp 1, no gold → P 0, R 0 (zero_division=0), F1 0.
    let r = classification(
        &s(&["x", "y"]),
        &s(&["x", "x"]),
        &p(&[Some("x"), Some("y")]),
    )
    .unwrap();
    some_close(r.per_class[0].precision, 1.0, "x P");
    some_close(r.per_class[0].recall, 0.5, "x R");
    some_close(r.per_class[0].f1, 2.0 / 3.0, "x F1");
    assert_eq!(
        (
            r.per_class[1].precision,
            r.per_class[1].recall,
            r.per_class[1].f1
        ),
        (Some(0.0), Some(0.0), Some(0.0))
    );
    // Macro F1 = (2/3 + 0) / 2 = 1/3.
    some_close(r.macro_.f1, 1.0 / 3.0, "macro F1");
}

#[test]
fn classification_all_right_and_all_wrong() {
    let labels = s(&["a", "b"]);
    let r = classification(&labels, &s(&["a", "b"]), &p(&[Some("a"), Some("b")])).unwrap();
    close(r.accuracy, 1.0, "all right accuracy");
    some_close(r.macro_.f1, 1.0, "all right macro F1");
    some_close(r.micro.f1, 1.0, "all right micro F1");

    let r = classification(&labels, &s(&["a", "b"]), &p(&[Some("b"), Some("a")])).unwrap();
    close(r.accuracy, 0.0, "all wrong accuracy");
    some_close(r.macro_.f1, 0.0, "all wrong macro F1");
    some_close(r.micro.f1, 0.0, "all wrong micro F1");
    assert_eq!(r.confusion.matrix, vec![vec![0, 1], vec![1, 0]]);
}

#[test]
fn classification_all_unparseable() {
    // A label outside the allowed set is unparseable too.
    let r = classification(&s(&["a", "b"]), &s(&["a", "b"]), &p(&[None, Some("c")])).unwrap();
    assert_eq!((r.unparseable, r.correct), (2, 0));
    close(r.accuracy, 0.0, "accuracy");
    // Nothing predicted: precision 0 by zero_division=0, recall 0.
    some_close(r.micro.precision, 0.0, "micro P");
    some_close(r.micro.recall, 0.0, "micro R");
    assert_eq!(r.confusion.unparseable, vec![1, 1]);
    assert_eq!(r.confusion.matrix, vec![vec![0, 0], vec![0, 0]]);
}

#[test]
fn classification_bad_inputs_are_errors() {
    let l = s(&["a", "b"]);
    let inv = |r: hone_eval::Result<_>| matches!(r, Err(Error::Invalid(_)));
    assert!(inv(classification(&l, &[], &[])), "empty");
    assert!(inv(classification(&l, &s(&["a"]), &[])), "lengths");
    assert!(
        inv(classification(&[], &s(&["a"]), &p(&[None]))),
        "no labels"
    );
    assert!(
        inv(classification(&s(&["a", "a"]), &s(&["a"]), &p(&[None]))),
        "dup"
    );
    let e = classification(&l, &s(&["z"]), &p(&[Some("a")])).unwrap_err();
    assert!(e.to_string().contains("`z`"), "{e}");
}

// ---------------------------------------------------------------- multi-label

#[test]
fn multilabel_hand_computed() {
    let labels = s(&["x", "y", "z"]);
    let gold = vec![s(&["x", "y"]), s(&["y"]), s(&[]), s(&["z"])];
    let pred = vec![
        Some(s(&["x"])),
        Some(s(&["y", "y"])), // duplicates ignored
        None,                 // unparseable, gold empty: still wrong for exact-set accuracy
        Some(s(&["x", "z"])),
    ];
    let r = multilabel(&labels, &gold, &pred).unwrap();
    assert_eq!((r.total, r.unparseable, r.exact_matches), (4, 1, 1));
    close(r.exact_set_accuracy, 0.25, "exact set"); // only example 2
                                                    // Wrong (example, label) slots: ex1 y, ex4 x → 2 of 4 × 3 = 1/6.
    close(r.hamming_loss, 1.0 / 6.0, "hamming");
    // x: tp 1 (ex1), fp 1 (ex4) → P 1/2, R 1, F1 2/3
    // y: tp 1 (ex2), fn 1 (ex1) → P 1, R 1/2, F1 2/3
    // z: tp 1 → 1, 1, 1
    let f1s: Vec<f64> = r.per_label.iter().map(|c| c.f1.unwrap()).collect();
    close(f1s[0], 2.0 / 3.0, "x F1");
    close(f1s[1], 2.0 / 3.0, "y F1");
    close(f1s[2], 1.0, "z F1");
    // Micro: tp 3, fp 1, fn 1 → P = R = F1 = 3/4
    some_close(r.micro.precision, 0.75, "micro P");
    some_close(r.micro.recall, 0.75, "micro R");
    some_close(r.micro.f1, 0.75, "micro F1");
    // Macro: P (1/2 + 1 + 1)/3 = 5/6, R (1 + 1/2 + 1)/3 = 5/6, F1 (2/3 + 2/3 + 1)/3 = 7/9
    some_close(r.macro_.precision, 5.0 / 6.0, "macro P");
    some_close(r.macro_.recall, 5.0 / 6.0, "macro R");
    some_close(r.macro_.f1, 7.0 / 9.0, "macro F1");
}

#[test]
fn multilabel_unparseable_is_a_false_negative_and_empty_classes_are_undefined() {
    let labels = s(&["x", "y"]);
    // The unknown label `w` makes the second answer unparseable.
    let gold = vec![s(&["x"]), s(&["x"])];
    let pred = vec![Some(s(&["x"])), Some(s(&["x", "w"]))];
    let r = multilabel(&labels, &gold, &pred).unwrap();
    assert_eq!(r.unparseable, 1);
    close(r.exact_set_accuracy, 0.5, "exact set");
    // x: tp 1, fn 1 → R 1/2; y: never in gold nor predicted → undefined, out of the macro.
    let x = &r.per_label[0];
    assert_eq!((x.tp, x.fp, x.fn_), (1, 0, 1));
    assert_eq!(r.per_label[1].f1, None);
    some_close(r.macro_.f1, 2.0 / 3.0, "macro F1 = x's F1 = 2/(2+1)");
    // Wrong slots: ex2 x → 1 of 2 × 2.
    close(r.hamming_loss, 0.25, "hamming");
}

#[test]
fn multilabel_all_right_all_wrong_and_errors() {
    let labels = s(&["x", "y"]);
    let gold = vec![s(&["x"]), s(&["x", "y"])];
    let r = multilabel(&labels, &gold, &[Some(s(&["x"])), Some(s(&["y", "x"]))]).unwrap();
    close(r.exact_set_accuracy, 1.0, "all right");
    close(r.hamming_loss, 0.0, "all right hamming");
    some_close(r.macro_.f1, 1.0, "all right macro F1");

    let r = multilabel(&labels, &gold, &[Some(s(&["y"])), Some(s(&[]))]).unwrap();
    close(r.exact_set_accuracy, 0.0, "all wrong");
    // ex1: x and y wrong; ex2: x and y wrong → 4/4.
    close(r.hamming_loss, 1.0, "all wrong hamming");
    some_close(r.micro.f1, 0.0, "all wrong micro F1");

    assert!(matches!(
        multilabel(&labels, &[], &[]),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        multilabel(&labels, &[s(&["q"])], &[None]),
        Err(Error::Invalid(_))
    ));
}

// ---------------------------------------------------------------- extraction

fn fields(v: &[(&str, &str)]) -> BTreeMap<String, String> {
    v.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn squad_normalisation_and_token_f1() {
    assert_eq!(squad_normalize("The  Widget, Co.!"), "widget co");
    assert_eq!(normalize_whitespace("  a \n b\tc "), "a b c");
    // p [cat, sat], g [cat, sat, down]: 2 shared → P 1, R 2/3, F1 = 2·(2/3)/(5/3) = 4/5
    close(token_f1("the cat sat", "a cat sat down"), 0.8, "partial");
    // Multiset overlap: p {x:2, y:1}, g {x:1, y:2} → 2 shared of 3 → F1 2/3
    close(token_f1("x x y", "x y y"), 2.0 / 3.0, "multiset");
    close(
        token_f1("Acme, Inc.", "acme inc"),
        1.0,
        "case and punctuation",
    );
    close(token_f1("the", ""), 1.0, "both empty after normalising");
    close(token_f1("", "something"), 0.0, "empty prediction");
    close(token_f1("foo", "bar"), 0.0, "disjoint");
}

#[test]
fn extraction_hand_computed() {
    let gold = vec![
        fields(&[("name", "Acme Corp"), ("date", "1 May 2020")]),
        fields(&[("name", "The Widget Co."), ("date", "2021")]),
        fields(&[("name", "Foo")]),
    ];
    let pred = vec![
        // name: EM 1 (whitespace), F1 1. date: EM 0; tokens {may, 1, 2020} both → F1 1.
        Some(fields(&[
            ("name", " Acme   Corp "),
            ("date", "May 1, 2020"),
            ("extra", "x"),
        ])),
        // name: EM 0; [widget, company] vs [widget, co] → 1 shared, P = R = 1/2, F1 1/2.
        // date: missing → 0, 0.
        Some(fields(&[("name", "widget company")])),
        // unparseable: name missing → 0, 0.
        None,
    ];
    let r = extraction(&gold, &pred).unwrap();
    assert_eq!((r.total, r.unparseable, r.gold_fields), (3, 1, 5));
    assert_eq!((r.missing, r.extra), (2, 1));
    // Fields sorted by name: date, name.
    let (date, name) = (&r.fields[0], &r.fields[1]);
    assert_eq!(
        (date.field.as_str(), date.count, date.missing),
        ("date", 2, 1)
    );
    close(date.exact_match, 0.0, "date EM"); // (0 + 0) / 2
    close(date.token_f1, 0.5, "date F1"); // (1 + 0) / 2
    assert_eq!(
        (name.field.as_str(), name.count, name.missing),
        ("name", 3, 1)
    );
    close(name.exact_match, 1.0 / 3.0, "name EM"); // (1 + 0 + 0) / 3
    close(name.token_f1, 0.5, "name F1"); // (1 + 1/2 + 0) / 3
                                          // Micro over 5 gold fields: EM 1/5; F1 (1 + 1 + 1/2 + 0 + 0) / 5 = 1/2
    close(r.exact_match, 0.2, "EM");
    close(r.token_f1, 0.5, "F1");
    // Macro over 2 fields: EM (0 + 1/3) / 2 = 1/6; F1 (1/2 + 1/2) / 2 = 1/2
    close(r.macro_exact_match, 1.0 / 6.0, "macro EM");
    close(r.macro_token_f1, 0.5, "macro F1");
}

#[test]
fn extraction_all_right_all_wrong_and_errors() {
    let gold = vec![fields(&[("a", "x y")])];
    let r = extraction(&gold, &[Some(fields(&[("a", "x  y")]))]).unwrap();
    close(r.exact_match, 1.0, "all right EM");
    close(r.token_f1, 1.0, "all right F1");
    let r = extraction(&gold, &[Some(fields(&[("a", "z")]))]).unwrap();
    close(r.exact_match, 0.0, "all wrong EM");
    close(r.token_f1, 0.0, "all wrong F1");

    let inv = |r: hone_eval::Result<_>| matches!(r, Err(Error::Invalid(_)));
    assert!(inv(extraction(&[], &[])), "empty");
    assert!(inv(extraction(&gold, &[])), "lengths");
    assert!(
        inv(extraction(&[BTreeMap::new()], &[None])),
        "no gold fields"
    );
}

#[test]
fn fields_from_model_json() {
    let f =
        fields_from_json("```json\n{\"party\": \"Acme\", \"term\": 3, \"x\": null}\n```").unwrap();
    assert_eq!(f, fields(&[("party", "Acme"), ("term", "3")]));
    let f = fields_from_json("Here you go: {\"a\": [1, 2]} done").unwrap();
    assert_eq!(f, fields(&[("a", "[1,2]")]));
    assert_eq!(fields_from_json("no json here"), None);
    assert_eq!(fields_from_json("[1, 2]"), None);
}

// ---------------------------------------------------------------- generation

#[test]
fn rouge_n_hand_computed() {
    // Unigrams: the x2, cat, on, mat shared of 6 each -> 5/6; bigrams: "the cat", "on the",
    // "the mat" of 5 each -> 3/5.
    let (h, r) = ("the cat is on the mat", "the cat sat on the mat");
    let one = rouge_n(h, r, 1);
    close(one.precision, 5.0 / 6.0, "R1 P");
    close(one.recall, 5.0 / 6.0, "R1 R");
    close(one.f1, 5.0 / 6.0, "R1 F");
    close(rouge_n(h, r, 2).f1, 0.6, "R2 F");
    // Counts are clipped: "the" four times matches the reference's one "the" once.
    let c = rouge_n("the the the the", "the cat", 1);
    close(c.precision, 0.25, "clipped P");
    close(c.recall, 0.5, "clipped R");
    close(c.f1, 1.0 / 3.0, "clipped F");
    // Case and punctuation are not tokens; no bigram on one side scores 0.
    close(
        rouge_n("Police, killed!", "police killed", 2).f1,
        1.0,
        "case",
    );
    close(rouge_n("cat", "cat", 2).f1, 0.0, "no bigrams");
    close(rouge_n("", "x", 1).f1, 0.0, "empty prediction");
    close(rouge_n("a b", "c d", 1).f1, 0.0, "disjoint");
}

#[test]
fn rouge_l_hand_computed() {
    // Lin (2004)'s example: LCS(ref, hyp) = "police the gunman" = 3 of 4 both ways → 3/4.
    let r = rouge_l("police kill the gunman", "police killed the gunman");
    close(r.precision, 0.75, "P");
    close(r.recall, 0.75, "R");
    close(r.f1, 0.75, "F");
    // "the gunman kill police": LCS = "the gunman" = 2 → P = R = F = 1/2.
    close(
        rouge_l("the gunman kill police", "police killed the gunman").f1,
        0.5,
        "reordered",
    );
    // Different lengths: ref a b c d e, hyp a c e → LCS 3, P 1, R 3/5, F 2·(3/5)/(8/5) = 3/4.
    let r = rouge_l("a c e", "a b c d e");
    close(r.precision, 1.0, "P");
    close(r.recall, 0.6, "R");
    close(r.f1, 0.75, "F");
    // Case and punctuation are not tokens.
    close(rouge_l("Police, killed!", "police killed").f1, 1.0, "case");
    close(rouge_l("", "x").f1, 0.0, "empty prediction");
    close(rouge_l("x", "").f1, 0.0, "empty reference");
    close(rouge_l("", "").f1, 0.0, "both empty");
    close(rouge_l("a b", "c d").f1, 0.0, "disjoint");
}

#[test]
fn generation_report() {
    let refs = s(&["police killed the gunman", "hello world", "x"]);
    let hyps = s(&["police kill the gunman", " hello   world ", "X"]);
    let r = generation(&refs, &hyps).unwrap();
    // Exact match is whitespace-normalised and case-sensitive: only "hello world" → 1/3.
    assert_eq!(r.exact_matches, 1);
    close(r.exact_match, 1.0 / 3.0, "EM");
    // ROUGE-L F: (3/4 + 1 + 1) / 3 = 11/12
    close(r.rouge_l.f1, 11.0 / 12.0, "mean F");
    // ROUGE-1: 3 of 4 unigrams, then 1 and 1 -> 11/12; ROUGE-2: "the gunman" 1 of 3 bigrams,
    // "hello world" 1, "x" has no bigram 0 -> (1/3 + 1 + 0) / 3 = 4/9.
    close(r.rouge_1.f1, 11.0 / 12.0, "mean ROUGE-1 F");
    close(r.rouge_2.f1, 4.0 / 9.0, "mean ROUGE-2 F");

    let all_wrong = generation(&s(&["a b"]), &s(&["c d"])).unwrap();
    close(all_wrong.exact_match, 0.0, "all wrong EM");
    close(all_wrong.rouge_l.f1, 0.0, "all wrong F");

    assert!(matches!(generation(&[], &[]), Err(Error::Invalid(_))));
    assert!(matches!(
        generation(&s(&["a"]), &[]),
        Err(Error::Invalid(_))
    ));
}

// ---------------------------------------------------------------- parsing

#[test]
fn parse_label_shapes() {
    let labels = s(&["Entailment", "Contradiction", "NotMentioned"]);
    let got = |o: &str| parse_label(o, &labels);
    assert_eq!(
        got(r#"{"label": "entailment"}"#).as_deref(),
        Some("Entailment")
    );
    assert_eq!(
        got(r#"{"LABEL": "notmentioned"}"#).as_deref(),
        Some("NotMentioned")
    );
    assert_eq!(
        got("```json\n{\"label\": \"Contradiction\"}\n```").as_deref(),
        Some("Contradiction")
    );
    assert_eq!(
        got(r#"Sure! {"label": "NotMentioned", "why": "{x}"} Hope it helps."#).as_deref(),
        Some("NotMentioned")
    );
    assert_eq!(got("ENTAILMENT").as_deref(), Some("Entailment"));
    assert_eq!(
        got("  \"contradiction\".\n").as_deref(),
        Some("Contradiction")
    );
    assert_eq!(got(r#""Entailment""#).as_deref(), Some("Entailment"));
    // Unparseable.
    assert_eq!(got(r#"{"label": "maybe"}"#), None);
    assert_eq!(got(r#"{"answer": "Entailment"}"#), None);
    assert_eq!(got(r#"{"label": 3}"#), None);
    assert_eq!(got("I think it is entailment"), None);
    assert_eq!(got(""), None);
    assert_eq!(got("{\"label\": \"Entail"), None);
}

#[test]
fn parse_label_prefers_the_exact_spelling() {
    let labels = s(&["a", "A"]);
    assert_eq!(parse_label("A", &labels).as_deref(), Some("A"));
    assert_eq!(parse_label("a", &labels).as_deref(), Some("a"));
}

#[test]
fn parse_labels_shapes() {
    let labels = s(&["x", "y", "z"]);
    let got = |o: &str| parse_labels(o, &labels);
    assert_eq!(got(r#"{"labels": ["x", "Y"]}"#), Some(s(&["x", "y"])));
    assert_eq!(got(r#"["z"]"#), Some(s(&["z"])));
    assert_eq!(got("[]"), Some(vec![]));
    assert_eq!(got("x, y"), Some(s(&["x", "y"])));
    assert_eq!(got("x\nz"), Some(s(&["x", "z"])));
    assert_eq!(got("x, w"), None);
    assert_eq!(got(r#"{"labels": "x"}"#), None);
    assert_eq!(got(""), None);
}
