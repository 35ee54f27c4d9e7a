//! Playbooks: the built-in one, errors that name the file and the field, and the flags a
//! review raises.

use std::collections::BTreeMap;
use std::path::Path;

use hone_data::nda::CHECKS;
use hone_review::playbook::Playbook;
use hone_review::{CheckResult, Error, Evidence, Flag, Probs, Risk};

fn probs(label: &str, p: f64) -> Probs {
    let rest = (1.0 - p) / 2.0;
    let mut probs = Probs {
        entailment: rest,
        contradiction: rest,
        not_mentioned: rest,
    };
    match label {
        "Entailment" => probs.entailment = p,
        "Contradiction" => probs.contradiction = p,
        _ => probs.not_mentioned = p,
    }
    probs
}

fn ev(start: usize, end: usize, text: &str, score: f64) -> Evidence {
    Evidence {
        start,
        end,
        text: text.into(),
        score,
    }
}

fn result(label: &str, p: f64, evidence: Vec<Evidence>) -> CheckResult {
    CheckResult {
        label: label.into(),
        probs: probs(label, p),
        evidence,
    }
}

/// A review that agrees with the default playbook everywhere except where `over` says.
fn checks_with(over: Vec<(&str, CheckResult)>) -> BTreeMap<String, CheckResult> {
    let pb = Playbook::default_disclosing();
    let mut checks: BTreeMap<String, CheckResult> = CHECKS
        .iter()
        .map(|c| {
            let label = pb.checks[c.id].expected[0].clone();
            let evidence = if label == "NotMentioned" {
                vec![]
            } else {
                vec![ev(0, 10, "agreeable.", 0.7)]
            };
            (c.id.to_string(), result(&label, 0.9, evidence))
        })
        .collect();
    for (id, r) in over {
        checks.insert(id.to_string(), r);
    }
    checks
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn the_default_playbook_covers_all_17_checks() {
    let pb = Playbook::default_disclosing();
    assert_eq!(pb.checks.len(), 17);
    for c in &CHECKS {
        let pos = pb
            .checks
            .get(c.id)
            .unwrap_or_else(|| panic!("{} missing", c.id));
        assert!(!pos.expected.is_empty());
        assert!(!pos.note.is_empty());
    }
    // A disclosing party's core positions.
    for id in ["nda-3", "nda-4", "nda-8", "nda-16", "nda-19"] {
        assert_eq!(pb.checks[id].expected, ["Entailment"], "{id}");
    }
    for id in ["nda-1", "nda-2", "nda-7", "nda-12", "nda-20"] {
        assert!(
            !pb.checks[id].expected.contains(&"Entailment".to_string()),
            "{id}"
        );
    }
    // A review that matches it raises nothing.
    assert!(pb.flags(&checks_with(vec![])).is_empty());
}

#[test]
fn a_playbook_file_loads_and_unlisted_checks_are_not_checked() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "receiving.toml",
        r#"
name = "Receiving party"
[checks.nda-12]
expected = ["Entailment"]
risk = "high"
note = "Keep the freedom to develop independently."
[checks.nda-4]
expected = ["Entailment", "NotMentioned", "Entailment"]
risk = "low"
"#,
    );
    let pb = Playbook::load(&p).unwrap();
    assert_eq!(pb.name, "Receiving party");
    assert_eq!(pb.checks.len(), 2);
    assert_eq!(pb.checks["nda-4"].expected, ["Entailment", "NotMentioned"]);
    assert_eq!(pb.checks["nda-4"].note, "");
    assert_eq!(pb.checks["nda-12"].risk, Risk::High);

    let mut checks = checks_with(vec![("nda-12", result("NotMentioned", 0.6, vec![]))]);
    // Deviations from the default playbook on checks this one does not list: no flags.
    checks.insert("nda-19".into(), result("NotMentioned", 0.8, vec![]));
    let flags = pb.flags(&checks);
    assert_eq!(flags.len(), 1);
    assert_eq!(flags[0].check, "nda-12");
    assert_eq!(flags[0].expected, "Entailment");
    assert_eq!(flags[0].risk, Risk::High);
    assert_eq!(flags[0].note, "Keep the freedom to develop independently.");
}

#[test]
fn bad_playbooks_name_the_file_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let ok = "[checks.nda-1]\nexpected = [\"NotMentioned\"]\nrisk = \"low\"\n";
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "unknown-check.toml",
            format!("{ok}[checks.nda-6]\nexpected = [\"Entailment\"]\nrisk = \"low\"\n"),
            vec!["checks.nda-6", "unknown check id"],
        ),
        (
            "bad-label.toml",
            "[checks.nda-3]\nexpected = [\"Entailment\", \"Entailed\"]\nrisk = \"medium\"\n".into(),
            vec!["checks.nda-3.expected", "unknown label", "Entailed"],
        ),
        (
            "bad-risk.toml",
            "[checks.nda-2]\nexpected = [\"Contradiction\"]\nrisk = \"severe\"\n".into(),
            vec!["checks.nda-2.risk", "severe"],
        ),
        (
            "numeric-risk.toml",
            "[checks.nda-2]\nexpected = [\"Contradiction\"]\nrisk = 3\n".into(),
            vec!["checks.nda-2.risk"],
        ),
        (
            "missing-expected.toml",
            "[checks.nda-8]\nrisk = \"high\"\n".into(),
            vec!["checks.nda-8.expected", "missing"],
        ),
        (
            "empty-expected.toml",
            "[checks.nda-8]\nexpected = []\nrisk = \"high\"\n".into(),
            vec!["checks.nda-8.expected", "empty"],
        ),
        (
            "missing-risk.toml",
            "[checks.nda-8]\nexpected = [\"Entailment\"]\n".into(),
            vec!["checks.nda-8.risk", "missing"],
        ),
        (
            "unknown-check-key.toml",
            format!("{ok}weight = 2\n"),
            vec!["checks.nda-1", "unknown key `weight`"],
        ),
        (
            "unknown-top-key.toml",
            format!("nmae = \"typo\"\n{ok}"),
            vec!["unknown key `nmae`"],
        ),
        (
            "no-checks.toml",
            "name = \"empty\"\n".into(),
            vec!["no checks"],
        ),
        (
            "not-toml.toml",
            "[checks.nda-1\nexpected = \n".into(),
            vec!["not valid TOML"],
        ),
    ];
    for (file, text, needles) in cases {
        let p = write(dir.path(), file, &text);
        let err = Playbook::load(&p).expect_err(file);
        assert!(matches!(err, Error::Playbook { .. }), "{file}: {err:?}");
        let msg = err.to_string();
        assert!(msg.contains(file), "{file}: {msg}");
        for n in needles {
            assert!(msg.contains(n), "{file}: `{n}` not in: {msg}");
        }
    }
    // A file that is not there is an I/O error naming it.
    let missing = dir.path().join("nowhere.toml");
    let err = Playbook::load(&missing).unwrap_err();
    assert!(matches!(err, Error::Io { .. }));
    assert!(err.to_string().contains("nowhere.toml"));
}

#[test]
fn flags_are_exactly_the_deviations_highest_risk_first_then_in_check_order() {
    let pb = Playbook::default_disclosing();
    let limited = ev(
        120,
        180,
        "The Recipient may use the information for any purpose.",
        0.93,
    );
    let second = ev(300, 340, "Use is unrestricted.", 0.41);
    let advisers = ev(
        400,
        470,
        "The Recipient may disclose to its advisers and consultants.",
        0.88,
    );
    let copies = ev(500, 540, "The Recipient may make copies.", 0.77);
    let checks = checks_with(vec![
        // high: limited use contradicted, two evidence spans (the first is quoted)
        (
            "nda-4",
            result("Contradiction", 0.82, vec![limited.clone(), second]),
        ),
        // high: survival not mentioned (evidence, if any, is not quoted)
        (
            "nda-19",
            result("NotMentioned", 0.7, vec![ev(1, 2, "x", 0.1)]),
        ),
        // medium: sharing with third parties allowed
        ("nda-7", result("Entailment", 0.88, vec![advisers.clone()])),
        // low: copies allowed; low: employees not mentioned
        ("nda-17", result("Entailment", 0.66, vec![copies.clone()])),
        ("nda-5", result("NotMentioned", 0.55, vec![])),
        // other accepted labels than the first expected one: no flag
        ("nda-2", result("NotMentioned", 0.9, vec![])),
        (
            "nda-12",
            result("Contradiction", 0.9, vec![ev(2, 3, "y", 0.5)]),
        ),
    ]);
    let flags = pb.flags(&checks);
    let note = |id: &str| pb.checks[id].note.clone();
    let expected = vec![
        Flag {
            check: "nda-4".into(),
            name: "Limited use".into(),
            found: "Contradiction".into(),
            expected: "Entailment".into(),
            risk: Risk::High,
            confidence: 0.82,
            quote: Some(limited),
            note: note("nda-4"),
        },
        Flag {
            check: "nda-19".into(),
            name: "Survival of obligations".into(),
            found: "NotMentioned".into(),
            expected: "Entailment".into(),
            risk: Risk::High,
            confidence: 0.7,
            quote: None,
            note: note("nda-19"),
        },
        Flag {
            check: "nda-7".into(),
            name: "Sharing with third parties".into(),
            found: "Entailment".into(),
            expected: "Contradiction or NotMentioned".into(),
            risk: Risk::Medium,
            confidence: 0.88,
            quote: Some(advisers),
            note: note("nda-7"),
        },
        Flag {
            check: "nda-5".into(),
            name: "Sharing with employees".into(),
            found: "NotMentioned".into(),
            expected: "Entailment or Contradiction".into(),
            risk: Risk::Low,
            confidence: 0.55,
            quote: None,
            note: note("nda-5"),
        },
        Flag {
            check: "nda-17".into(),
            name: "Copies allowed".into(),
            found: "Entailment".into(),
            expected: "Contradiction or NotMentioned".into(),
            risk: Risk::Low,
            confidence: 0.66,
            quote: Some(copies),
            note: note("nda-17"),
        },
    ];
    assert_eq!(flags, expected);

    // A check the review does not have raises nothing.
    let mut partial = checks.clone();
    partial.remove("nda-4");
    let ids: Vec<String> = pb.flags(&partial).into_iter().map(|f| f.check).collect();
    assert_eq!(ids, ["nda-19", "nda-7", "nda-5", "nda-17"]);
}
