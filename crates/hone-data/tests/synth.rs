//! The synthetic NDA set: both polarities per check, distinct documents, clean under QA, and
//! byte-identical for a seed.

use std::collections::{HashMap, HashSet};

use hone_data::nda::{Polarity, SpanAnswer, CHECKS};
use hone_data::qa::{self, QaOptions};
use hone_data::{synth, Format, NoProgress};

#[test]
fn synthetic_ndas_cover_every_check_are_distinct_clean_and_deterministic() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let imp = synth::write(&synth::generate(120, 7), a.path()).unwrap();
    synth::write(&synth::generate(120, 7), b.path()).unwrap();
    for f in ["nda.json", "spans.jsonl", "documents.jsonl"] {
        assert_eq!(
            std::fs::read(a.path().join(f)).unwrap(),
            std::fs::read(b.path().join(f)).unwrap(),
            "{f} differs for one seed"
        );
    }
    let c = tempfile::tempdir().unwrap();
    synth::write(&synth::generate(120, 8), c.path()).unwrap();
    assert_ne!(
        std::fs::read(a.path().join("nda.json")).unwrap(),
        std::fs::read(c.path().join("nda.json")).unwrap()
    );

    // Every check in both polarities where it has two, at span and at document level.
    let mut seen: HashMap<String, HashSet<Polarity>> = HashMap::new();
    for ex in &imp.examples {
        for ch in SpanAnswer::parse(ex.output_text()).unwrap().checks {
            seen.entry(ch.id).or_default().insert(ch.label);
        }
    }
    for c in &CHECKS {
        let s = seen
            .get(c.id)
            .unwrap_or_else(|| panic!("{} never appears", c.id));
        assert!(s.contains(&Polarity::Entailed), "{} never entailed", c.id);
        assert_eq!(
            s.contains(&Polarity::Contradicted),
            c.two_polarities,
            "{} contradicted?",
            c.id
        );
    }
    let texts: HashSet<&str> = imp.documents.iter().map(|d| d.text.as_str()).collect();
    assert_eq!(texts.len(), 120, "two documents are identical");
    assert!(
        imp.examples
            .iter()
            .filter(|e| e.label.as_deref() == Some("none"))
            .count()
            > imp.examples.len() / 4,
        "neutral spans"
    );

    // QA at default settings: no exact duplicates, no contradictions.
    let rep = qa::run(
        &a.path().join("spans.jsonl"),
        &Format::Jsonl,
        None,
        &QaOptions::default(),
        None,
        &NoProgress,
    )
    .unwrap();
    assert_eq!(rep.invalid, 0);
    assert!(
        rep.findings.exact_duplicates.is_empty(),
        "{:?}",
        rep.findings.exact_duplicates
    );
    assert!(
        rep.findings.contradictions.is_empty(),
        "{:?}",
        &rep.findings.contradictions[..rep.findings.contradictions.len().min(5)]
    );
    println!(
        "{} documents, {} span examples, {} near-duplicate groups",
        imp.documents.len(),
        imp.examples.len(),
        rep.findings.near_duplicates.len()
    );
}
