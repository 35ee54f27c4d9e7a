//! Blind human evaluation: export → rate → import, win rates and intervals checked against
//! hand-computed numbers, anonymisation, deployment gates, and bad inputs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hone_eval::gate::{check_gates, GateConfig, GateStatus};
use hone_eval::human::{
    self, export, import, wilson_interval, ExportOptions, HumanReport, PacketItems, PacketKey, Z_95,
};
use hone_eval::Error;
use serde_json::{json, Value};

const CANDS: [&str; 3] = ["base", "finetuned", "frontier"];

/// The text `candidate` answered on example `i` (no candidate name in it: the page must not leak).
fn answer(i: usize, candidate: &str) -> String {
    let k = CANDS.iter().position(|c| *c == candidate).unwrap_or(9);
    format!(
        "Answer #{k} to question {i}: the clause {} applies.",
        i * 7 + k
    )
}

/// `n` examples × the candidates, one JSONL line each.
fn write_outputs(dir: &Path, n: usize, cands: &[&str]) -> PathBuf {
    let mut s = String::new();
    for i in 1..=n {
        for c in cands {
            let line = json!({
                "id": format!("ex-{i}"),
                "input": format!("Question {i}: does clause {i} survive termination?"),
                "reference": if i % 2 == 0 { Value::Null } else { json!(format!("Gold {i}")) },
                "candidate": c,
                "output": answer(i, c),
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

fn read<T: serde::de::DeserializeOwned>(p: &Path) -> T {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

/// (accuracy, completeness, format, critical) by item and candidate; a 0 is "not rated".
type Plan = Vec<(&'static str, &'static str, [u8; 3], bool)>;

/// Writes a ratings file as the page would, translating candidates to the packet's letters.
fn write_ratings(packet: &Path, reviewer: &str, plan: &Plan, out: &Path) {
    let key: PacketKey = read(&packet.join("key.json"));
    let items: PacketItems = read(&packet.join("items.json"));
    let mut ratings: BTreeMap<String, BTreeMap<String, Value>> = BTreeMap::new();
    for (item, cand, s, critical) in plan {
        let letter = key.items[*item]
            .iter()
            .find(|(_, c)| c == cand)
            .map(|(l, _)| l.clone())
            .unwrap();
        let v = |x: u8| if x == 0 { Value::Null } else { json!(x) };
        ratings.entry(item.to_string()).or_default().insert(
            letter,
            json!({"accuracy": v(s[0]), "completeness": v(s[1]), "format": v(s[2]), "critical": critical}),
        );
    }
    let doc = json!({
        "format": "hone-human-ratings/1",
        "packet_id": items.packet_id,
        "reviewer": reviewer,
        "saved_at": "2025-01-31T10:00:00.000Z",
        "ratings": ratings,
    });
    std::fs::write(out, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
}

fn alice() -> Plan {
    vec![
        ("ex-1", "finetuned", [5, 5, 5], false),
        ("ex-1", "base", [3, 3, 3], false),
        ("ex-1", "frontier", [5, 4, 5], false),
        ("ex-2", "finetuned", [4, 4, 4], false),
        ("ex-2", "base", [4, 4, 4], false),
        ("ex-2", "frontier", [3, 3, 3], false),
        ("ex-3", "finetuned", [2, 3, 4], false),
        ("ex-3", "base", [4, 4, 5], false),
        ("ex-3", "frontier", [5, 5, 5], false),
        ("ex-4", "finetuned", [5, 4, 3], false),
        ("ex-4", "base", [1, 2, 3], true),
        ("ex-4", "frontier", [4, 4, 4], false),
    ]
}

fn bob() -> Plan {
    vec![
        ("ex-1", "finetuned", [4, 4, 4], false),
        ("ex-1", "base", [2, 2, 2], false),
        ("ex-1", "frontier", [4, 4, 4], false),
        ("ex-2", "finetuned", [5, 5, 4], false),
        ("ex-2", "base", [3, 4, 4], false),
        ("ex-2", "frontier", [5, 5, 5], false),
        ("ex-3", "finetuned", [3, 3, 3], true),
        ("ex-3", "base", [3, 3, 3], false),
        ("ex-3", "frontier", [4, 5, 4], false),
        // Bob rated only the accuracy of the fine-tune on ex-4.
        ("ex-4", "finetuned", [4, 0, 0], false),
        ("ex-4", "base", [2, 2, 2], true),
        ("ex-4", "frontier", [3, 3, 3], false),
    ]
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// Export the 4-example fixture, rate it as Alice and Bob, import.
fn rated_report(seed: u64) -> (tempfile::TempDir, HumanReport) {
    let dir = tempfile::tempdir().unwrap();
    let outputs = write_outputs(dir.path(), 4, &CANDS);
    let packet = dir.path().join("packet");
    let opts = ExportOptions {
        seed,
        ..Default::default()
    };
    export(&outputs, &packet, &opts).unwrap();
    let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
    write_ratings(&packet, "Alice", &alice(), &a);
    write_ratings(&packet, "Bob", &bob(), &b);
    let report = import(&packet, &[a, b]).unwrap();
    (dir, report)
}

#[test]
fn wilson_interval_matches_hand_computed_values() {
    // Centre (p + z²/2n)/(1 + z²/n) ± z/(1 + z²/n)·sqrt(p(1−p)/n + z²/4n²), z = 1.959964.
    let cases = [
        (0.7, 10, 0.396778147461, 0.892208732594),
        (0.5, 10, 0.236593090513, 0.763406909487),
        (0.6, 5, 0.230724281276, 0.882379225767),
        (1.0, 5, 0.565517535217, 1.0),
        (0.0, 5, 0.0, 0.434482464783),
    ];
    for (p, n, lo, hi) in cases {
        let (l, h) = wilson_interval(p, n, Z_95).unwrap();
        assert!(
            (l - lo).abs() < 1e-9 && (h - hi).abs() < 1e-9,
            "p={p} n={n}: {l} {h}"
        );
    }
    assert_eq!(wilson_interval(0.5, 0, Z_95), None);
    assert_eq!(wilson_interval(1.5, 4, Z_95), None);
}

#[test]
fn win_rate_counts_ties_as_half() {
    let w = human::win_rate(
        "x",
        "y",
        &[(5.0, 3.0), (4.0, 4.0), (2.0, 3.0), (13.0 / 3.0, 4.0)],
    );
    assert_eq!((w.wins, w.ties, w.losses, w.comparisons), (2, 1, 1, 4));
    assert!(close(w.win_rate.unwrap(), 2.5 / 4.0));
    let none = human::win_rate("x", "y", &[]);
    assert_eq!(none.win_rate, None);
    assert_eq!(none.ci_low, None);
}

#[test]
fn round_trip_win_rates_and_intervals_match_hand_computed_numbers() {
    let (_dir, r) = rated_report(0);
    assert_eq!(r.format, "hone-human-report/1");
    assert_eq!(r.items, 4);
    assert_eq!(r.reviewers, ["Alice", "Bob"]);
    assert_eq!(r.candidates, CANDS);
    assert_eq!(r.ci_method, "wilson");
    assert_eq!(r.win_rates.len(), 6);

    // finetuned vs base: Alice W T L W, Bob W W T (ex-4 not comparable) → 4 W, 2 T, 1 L.
    let w = r.win("finetuned", "base").unwrap();
    assert_eq!((w.wins, w.ties, w.losses, w.comparisons), (4, 2, 1, 7));
    assert!(close(w.win_rate.unwrap(), 5.0 / 7.0));
    assert!((w.ci_low.unwrap() - 0.358934451833).abs() < 1e-9);
    assert!((w.ci_high.unwrap() - 0.917781075996).abs() < 1e-9);
    // The reverse pair mirrors it.
    let back = r.win("base", "finetuned").unwrap();
    assert_eq!((back.wins, back.ties, back.losses), (1, 2, 4));
    assert!(close(back.win_rate.unwrap(), 2.0 / 7.0));

    // finetuned vs frontier: Alice W W L T, Bob T L L → 2 W, 2 T, 3 L.
    let w = r.win("finetuned", "frontier").unwrap();
    assert_eq!((w.wins, w.ties, w.losses, w.comparisons), (2, 2, 3, 7));
    assert!(close(w.win_rate.unwrap(), 3.0 / 7.0));
    assert!((w.ci_low.unwrap() - 0.158219855251).abs() < 1e-9);
    assert!((w.ci_high.unwrap() - 0.749541635472).abs() < 1e-9);

    // base vs frontier: 1 W, 7 L over all 8 (item, reviewer) pairs.
    let w = r.win("base", "frontier").unwrap();
    assert_eq!((w.wins, w.ties, w.losses, w.comparisons), (1, 0, 7, 8));
    assert!(close(w.win_rate.unwrap(), 0.125));
    assert!((w.ci_low.unwrap() - 0.022417491450).abs() < 1e-9);
    assert!((w.ci_high.unwrap() - 0.470888182213).abs() < 1e-9);

    // Means per criterion: every rating given counts, even of incomplete outputs.
    let ft = r.scores_of("finetuned").unwrap();
    assert_eq!(ft.accuracy.n, 8);
    assert!(close(ft.accuracy.mean.unwrap(), 32.0 / 8.0));
    assert_eq!(ft.completeness.n, 7);
    assert!(close(ft.completeness.mean.unwrap(), 28.0 / 7.0));
    assert!(close(ft.format.mean.unwrap(), 27.0 / 7.0));
    assert_eq!(ft.overall.n, 7);
    assert!(close(
        ft.overall.mean.unwrap(),
        (5.0 + 4.0 + 3.0 + 4.0 + 4.0 + 14.0 / 3.0 + 3.0) / 7.0
    ));
    assert_eq!(ft.critical_failures, 1);
    assert_eq!(ft.critical_items, ["ex-3"]);
    let base = r.scores_of("base").unwrap();
    assert_eq!(base.critical_failures, 2);
    assert_eq!(base.critical_items, ["ex-4"]);
    assert!(close(base.accuracy.mean.unwrap(), 22.0 / 8.0));
    assert_eq!(r.scores_of("frontier").unwrap().critical_failures, 0);

    // Missing: Bob's fine-tune on ex-4 lacks completeness and format.
    assert_eq!(r.missing.expected, 24);
    assert_eq!(r.missing.complete, 23);
    assert_eq!(r.missing.incomplete, 1);
    let m = &r.missing.details[0];
    assert_eq!((m.reviewer.as_str(), m.item.as_str()), ("Bob", "ex-4"));
    assert_eq!(m.candidate, "finetuned");
    assert_eq!(m.criteria, ["completeness", "format"]);
}

#[test]
fn results_do_not_depend_on_the_shuffle() {
    let (_d0, a) = rated_report(0);
    let (_d1, b) = rated_report(12345);
    assert_ne!(a.packet_id, b.packet_id);
    assert_eq!(a.win_rates, b.win_rates);
    assert_eq!(a.scores, b.scores);
}

#[test]
fn report_saves_and_loads() {
    let (dir, r) = rated_report(3);
    let p = dir.path().join("reports/human_report.json");
    r.save(&p).unwrap();
    let back = HumanReport::load(&p).unwrap();
    // serde_json parses floats to within an ulp, so compare counts exactly and rates closely.
    assert_eq!(
        (
            &back.packet_id,
            &back.reviewers,
            &back.candidates,
            &back.missing
        ),
        (&r.packet_id, &r.reviewers, &r.candidates, &r.missing)
    );
    for (a, b) in back.win_rates.iter().zip(&r.win_rates) {
        assert_eq!((a.wins, a.ties, a.losses), (b.wins, b.ties, b.losses));
        assert!((a.ci_high.unwrap() - b.ci_high.unwrap()).abs() < 1e-12);
    }
    assert_eq!(back.scores.len(), r.scores.len());
    std::fs::write(&p, r#"{"format": "other"}"#).unwrap();
    assert!(HumanReport::load(&p).is_err());
}

#[test]
fn anonymisation_shuffles_per_item_and_key_maps_back() {
    let dir = tempfile::tempdir().unwrap();
    let outputs = write_outputs(dir.path(), 30, &CANDS);
    let packet = dir.path().join("packet");
    let s = export(&outputs, &packet, &ExportOptions::default()).unwrap();
    assert_eq!(s.items, 30);
    assert_eq!(s.candidates, CANDS);
    let items: PacketItems = read(&packet.join("items.json"));
    let key: PacketKey = read(&packet.join("key.json"));
    assert_eq!(items.packet_id, key.packet_id);
    assert_eq!(items.packet_id, s.packet_id);
    assert_eq!(items.criteria, ["accuracy", "completeness", "format"]);
    assert!(key.note.contains("Do not send"));

    let mut first_letter: BTreeMap<String, usize> = BTreeMap::new();
    for (idx, item) in items.items.iter().enumerate() {
        let i = idx + 1;
        assert_eq!(item.id, format!("ex-{i}"));
        let letters: Vec<&str> = item.outputs.iter().map(|o| o.letter.as_str()).collect();
        assert_eq!(letters, ["A", "B", "C"]);
        for o in &item.outputs {
            let cand = &key.items[&item.id][&o.letter];
            assert_eq!(
                o.text,
                answer(i, cand),
                "key maps {} {} back",
                item.id,
                o.letter
            );
        }
        *first_letter
            .entry(key.items[&item.id]["A"].clone())
            .or_default() += 1;
        assert_eq!(item.reference.is_some(), i % 2 == 1);
    }
    // Every candidate is "Output A" somewhere, none everywhere.
    assert_eq!(first_letter.len(), 3, "{first_letter:?}");
    assert!(first_letter.values().all(|&n| n < 30));

    // Nothing the reviewer gets names a candidate.
    for f in ["items.json", "index.html"] {
        let text = std::fs::read_to_string(packet.join(f)).unwrap();
        for c in ["finetuned", "frontier", "\"base\""] {
            assert!(!text.contains(c), "{f} leaks `{c}`");
        }
    }

    // Deterministic for a seed; another seed shuffles differently.
    let again = dir.path().join("again");
    export(&outputs, &again, &ExportOptions::default()).unwrap();
    assert_eq!(read::<PacketKey>(&again.join("key.json")), key);
    let other = dir.path().join("other");
    let opts = ExportOptions {
        seed: 7,
        ..Default::default()
    };
    export(&outputs, &other, &opts).unwrap();
    let key7: PacketKey = read(&other.join("key.json"));
    assert_ne!(key7.items, key.items);
    assert_ne!(key7.packet_id, key.packet_id);
}

#[test]
fn export_samples_n_items_in_file_order_and_selects_candidates() {
    let dir = tempfile::tempdir().unwrap();
    let outputs = write_outputs(dir.path(), 20, &CANDS);
    let opts = ExportOptions {
        candidates: Some(vec!["finetuned".into(), "base".into()]),
        n: 5,
        seed: 1,
        force: false,
    };
    let s = export(&outputs, &dir.path().join("p"), &opts).unwrap();
    assert_eq!((s.items, s.available), (5, 20));
    let items: PacketItems = read(&dir.path().join("p/items.json"));
    let key: PacketKey = read(&dir.path().join("p/key.json"));
    assert_eq!(key.candidates, ["finetuned", "base"]);
    let nums: Vec<usize> = items
        .items
        .iter()
        .map(|i| i.id[3..].parse().unwrap())
        .collect();
    assert!(nums.windows(2).all(|w| w[0] < w[1]), "{nums:?}");
    assert!(items.items.iter().all(|i| i.outputs.len() == 2));
    // The same seed picks the same items; the shuffle of an item depends only on seed and id.
    let s2 = export(&outputs, &dir.path().join("p2"), &opts).unwrap();
    assert_eq!(s2.packet_id, s.packet_id);
}

#[test]
fn page_embeds_items_safely() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = String::new();
    for c in ["base", "finetuned"] {
        s.push_str(
            &json!({"id": "x1", "input": "Say </script><script>alert(1)</script> & <b>",
                    "reference": null, "candidate": c, "output": format!("{c}: </script>"),
                    "parsed_ok": false})
            .to_string(),
        );
        s.push('\n');
    }
    let outputs = dir.path().join("outputs.jsonl");
    std::fs::write(&outputs, s).unwrap();
    let packet = dir.path().join("p");
    export(&outputs, &packet, &ExportOptions::default()).unwrap();
    let html = std::fs::read_to_string(packet.join("index.html")).unwrap();
    assert!(!html.contains("alert(1)</script>"));
    assert!(!html.contains("__HONE_PACKET_JSON__"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no network"
    );
    let start = html
        .find(r#"<script type="application/json" id="packet-data">"#)
        .unwrap();
    let rest = &html[start..];
    let body = &rest[rest.find('>').unwrap() + 1..rest.find("</script>").unwrap()];
    let embedded: PacketItems = serde_json::from_str(body).unwrap();
    assert_eq!(embedded, read::<PacketItems>(&packet.join("items.json")));
    assert!(embedded.items[0].input.contains("</script><script>"));
}

#[test]
fn export_refuses_to_overwrite_another_packets_key() {
    let dir = tempfile::tempdir().unwrap();
    let outputs = write_outputs(dir.path(), 3, &CANDS);
    let p = dir.path().join("p");
    export(&outputs, &p, &ExportOptions::default()).unwrap();
    // Same packet again: fine.
    export(&outputs, &p, &ExportOptions::default()).unwrap();
    let other = ExportOptions {
        seed: 9,
        ..Default::default()
    };
    let e = export(&outputs, &p, &other).unwrap_err();
    assert!(
        matches!(e, Error::Invalid(ref m) if m.contains("--force")),
        "{e}"
    );
    let forced = ExportOptions {
        seed: 9,
        force: true,
        ..Default::default()
    };
    let s = export(&outputs, &p, &forced).unwrap();
    assert_eq!(
        read::<PacketKey>(&p.join("key.json")).packet_id,
        s.packet_id
    );
    // No temporary files left behind.
    let names: Vec<String> = std::fs::read_dir(&p)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(names, ["index.html", "items.json", "key.json"]);
}

#[test]
fn export_rejects_bad_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p");
    let opts = ExportOptions::default();
    let write = |lines: &[&str]| {
        let p = dir.path().join("outputs.jsonl");
        std::fs::write(&p, lines.join("\n")).unwrap();
        p
    };
    let ok = |id: &str, c: &str| {
        json!({"id": id, "input": "q", "reference": null, "candidate": c, "output": "o"})
            .to_string()
    };

    // Missing file.
    let e = export(&dir.path().join("nope.jsonl"), &out, &opts).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");

    // Bad JSON on line 3, named file:line.
    let (a, b) = (ok("e1", "base"), ok("e1", "finetuned"));
    let p = write(&[&a, &b, "{not json"]);
    let e = export(&p, &out, &opts).unwrap_err();
    assert!(matches!(e, Error::Parse { line: 3, .. }), "{e}");
    assert!(e.to_string().contains("outputs.jsonl:3"), "{e}");

    // A line without a candidate.
    let p = write(&[&a, r#"{"id": "e1", "input": "q", "output": "o"}"#]);
    let e = export(&p, &out, &opts).unwrap_err();
    assert!(
        matches!(e, Error::Field { line: 2, ref field, .. } if field == "candidate"),
        "{e}"
    );

    // A duplicate line for the same example and candidate.
    let p = write(&[&a, &b, &a]);
    let e = export(&p, &out, &opts).unwrap_err();
    assert!(matches!(e, Error::Field { line: 3, .. }), "{e}");

    // An example without the fine-tune's output.
    let p = write(&[&a, &b, &ok("e2", "base")]);
    let e = export(&p, &out, &opts).unwrap_err();
    assert!(
        matches!(e, Error::Invalid(ref m) if m.contains("`e2` from `finetuned`")),
        "{e}"
    );
    // ... which --candidates cannot hide, but an output of null is just as missing.
    let null = json!({"id": "e1", "input": "q", "candidate": "frontier", "output": null});
    let p = write(&[&a, &b, &null.to_string()]);
    let e = export(&p, &out, &opts).unwrap_err();
    assert!(
        matches!(e, Error::Invalid(ref m) if m.contains("`e1` from `frontier`")),
        "{e}"
    );
    let two = ExportOptions {
        candidates: Some(vec!["base".into(), "finetuned".into()]),
        ..Default::default()
    };
    export(&p, &out, &two).unwrap();

    // Fewer than two candidates.
    let p = write(&[&a, &ok("e2", "base")]);
    let e = export(&p, &out, &opts).unwrap_err();
    assert!(
        matches!(e, Error::Invalid(ref m) if m.contains("at least 2")),
        "{e}"
    );
    let p = write(&[&a, &b]);
    let one = ExportOptions {
        candidates: Some(vec!["base".into()]),
        ..Default::default()
    };
    assert!(export(&p, &out, &one).is_err());

    // An unknown candidate, a repeated one, n = 0, an empty file.
    let unknown = ExportOptions {
        candidates: Some(vec!["base".into(), "gpt".into()]),
        ..Default::default()
    };
    let e = export(&p, &out, &unknown).unwrap_err();
    assert!(e.to_string().contains("`gpt` has no outputs"), "{e}");
    let twice = ExportOptions {
        candidates: Some(vec!["base".into(), "base".into()]),
        ..Default::default()
    };
    assert!(export(&p, &out, &twice).is_err());
    let zero = ExportOptions {
        n: 0,
        ..Default::default()
    };
    assert!(export(&p, &out, &zero).is_err());
    let p = write(&["", "  "]);
    assert!(matches!(export(&p, &out, &opts), Err(Error::Format { .. })));
}

/// A packet of 2 examples × base, finetuned and a ratings document for it (to be broken).
fn small_packet() -> (tempfile::TempDir, PathBuf, Value) {
    let dir = tempfile::tempdir().unwrap();
    let outputs = write_outputs(dir.path(), 2, &["base", "finetuned"]);
    let packet = dir.path().join("p");
    export(&outputs, &packet, &ExportOptions::default()).unwrap();
    let items: PacketItems = read(&packet.join("items.json"));
    let doc = json!({
        "format": "hone-human-ratings/1",
        "packet_id": items.packet_id,
        "reviewer": "Dana",
        "ratings": {"ex-1": {"A": {"accuracy": 4, "completeness": 4, "format": 4, "critical": false}}},
    });
    (dir, packet, doc)
}

fn import_doc(dir: &Path, packet: &Path, doc: &Value) -> Result<HumanReport, Error> {
    let p = dir.join("r.json");
    std::fs::write(&p, doc.to_string()).unwrap();
    import(packet, &[p])
}

#[test]
fn import_rejects_bad_ratings() {
    let (dir, packet, good) = small_packet();
    let d = dir.path();
    let r = import_doc(d, &packet, &good).unwrap();
    // Missing ratings are allowed, and reported: 2 items × 2 outputs, 1 rated.
    assert_eq!((r.missing.expected, r.missing.incomplete), (4, 3));
    assert_eq!(r.win("finetuned", "base").unwrap().comparisons, 0);

    let bad = |f: &dyn Fn(&mut Value), expect: &str| {
        let mut doc = good.clone();
        f(&mut doc);
        let e = import_doc(d, &packet, &doc).unwrap_err();
        assert!(
            e.to_string().contains(expect),
            "expected `{expect}` in: {e}"
        );
        assert!(e.to_string().contains("r.json"), "names the file: {e}");
    };
    bad(
        &|d| d["packet_id"] = json!("hp-0000000000000000"),
        "ratings for packet hp-0000000000000000",
    );
    bad(&|d| d["ratings"]["ex-9"] = json!({}), "unknown item `ex-9`");
    bad(
        &|d| d["ratings"]["ex-1"]["D"] = json!({"accuracy": 3}),
        "unknown letter `D`",
    );
    bad(&|d| d["ratings"]["ex-1"]["A"]["accuracy"] = json!(6), "1–5");
    bad(&|d| d["ratings"]["ex-1"]["A"]["format"] = json!(0), "1–5");
    bad(&|d| d["ratings"]["ex-1"]["A"]["format"] = json!(3.5), "1–5");
    bad(&|d| d["ratings"]["ex-1"]["A"]["format"] = json!("4"), "1–5");
    bad(
        &|d| d["ratings"]["ex-1"]["A"]["critical"] = json!("yes"),
        "critical",
    );
    bad(&|d| d["format"] = json!("something-else/1"), "format");
    bad(
        &|d| {
            d.as_object_mut().unwrap().remove("packet_id");
        },
        "packet_id",
    );

    // Not JSON at all.
    let p = d.join("broken.json");
    std::fs::write(&p, "{").unwrap();
    assert!(matches!(import(&packet, &[p]), Err(Error::Parse { .. })));
    // No ratings files; a missing one; the same reviewer twice.
    assert!(matches!(import(&packet, &[]), Err(Error::Invalid(_))));
    assert!(matches!(
        import(&packet, &[d.join("absent.json")]),
        Err(Error::Io { .. })
    ));
    let (a, b) = (d.join("a.json"), d.join("b.json"));
    std::fs::write(&a, good.to_string()).unwrap();
    std::fs::write(&b, good.to_string()).unwrap();
    let e = import(&packet, &[a, b]).unwrap_err();
    assert!(e.to_string().contains("reviewer `Dana`"), "{e}");
    // A packet whose key belongs to another packet.
    let mut key: Value = read(&packet.join("key.json"));
    key["packet_id"] = json!("hp-ffff");
    std::fs::write(packet.join("key.json"), key.to_string()).unwrap();
    let e = import_doc(d, &packet, &good).unwrap_err();
    assert!(matches!(e, Error::Format { .. }), "{e}");
}

/// A report with the given (wins, ties, losses) of finetuned over base and frontier, and
/// critical flags of the fine-tune.
fn report(
    vs_base: (usize, usize, usize),
    vs_frontier: Option<(usize, usize, usize)>,
    critical: usize,
) -> HumanReport {
    let mut cands = vec!["base", "finetuned"];
    let mut wins = vec![("finetuned", "base", vs_base)];
    if let Some(f) = vs_frontier {
        cands.push("frontier");
        wins.push(("finetuned", "frontier", f));
    }
    let win_rates: Vec<Value> = wins
        .iter()
        .map(|(x, y, (w, t, l))| {
            let pairs: Vec<(f64, f64)> = std::iter::repeat_n((5.0, 1.0), *w)
                .chain(std::iter::repeat_n((3.0, 3.0), *t))
                .chain(std::iter::repeat_n((1.0, 5.0), *l))
                .collect();
            serde_json::to_value(human::win_rate(x, y, &pairs)).unwrap()
        })
        .collect();
    let mean = json!({"mean": null, "n": 0});
    let scores: Vec<Value> = cands
        .iter()
        .map(|c| {
            let k = if *c == "finetuned" { critical } else { 0 };
            let items: Vec<String> = (0..k).map(|i| format!("ex-{i}")).collect();
            json!({"candidate": c, "accuracy": mean, "completeness": mean, "format": mean,
                   "overall": mean, "critical_failures": k, "critical_items": items})
        })
        .collect();
    serde_json::from_value(json!({
        "format": "hone-human-report/1", "packet_id": "hp-test", "items": 10,
        "reviewers": ["r"], "candidates": cands, "ci_method": "wilson", "confidence": 0.95,
        "scores": scores, "win_rates": win_rates,
        "missing": {"expected": 0, "complete": 0, "incomplete": 0, "details": []},
    }))
    .unwrap()
}

fn statuses(r: &HumanReport, cfg: &GateConfig) -> Vec<GateStatus> {
    check_gates(r, cfg)
        .unwrap()
        .gates
        .iter()
        .map(|g| g.status)
        .collect()
}

#[test]
fn gates_pass_fail_and_skip() {
    use GateStatus::{Fail, Pass, Skip};
    let cfg = GateConfig::default();

    // 7 W 0 T 3 L = 70% > 60%; 4 W 2 T 4 L = 50% > 40%; no critical failures.
    let r = report((7, 0, 3), Some((4, 2, 4)), 0);
    let g = check_gates(&r, &cfg).unwrap();
    assert_eq!(statuses(&r, &cfg), [Pass, Pass, Pass]);
    assert!(g.passed());
    assert!(close(g.gates[0].value.unwrap(), 0.7));
    // The reason gives the numbers and the 95% interval (Wilson, 0.7 of 10: 39.7%–89.2%).
    assert!(g.gates[0].reason.contains("70.0%"), "{}", g.gates[0].reason);
    assert!(
        g.gates[0].reason.contains("39.7%–89.2%"),
        "{}",
        g.gates[0].reason
    );
    assert!(
        g.gates[0].reason.contains("straddles"),
        "{}",
        g.gates[0].reason
    );
    let text = g.to_string();
    assert!(text.starts_with("PASS  win rate vs base"), "{text}");
    assert!(
        text.trim_end().ends_with("PASS: all gates passed"),
        "{text}"
    );

    // Exactly at the threshold is not above it: 3 W 0 T 2 L = 60%.
    let r = report((3, 0, 2), Some((4, 2, 4)), 0);
    assert_eq!(statuses(&r, &cfg), [Fail, Pass, Pass]);
    // Ties count half: 2 W 2 T 1 L = 60% too, 2 W 3 T 0 L = 70%.
    assert_eq!(
        statuses(&report((2, 2, 1), Some((1, 0, 0)), 0), &cfg)[0],
        Fail
    );
    assert_eq!(
        statuses(&report((2, 3, 0), Some((1, 0, 0)), 0), &cfg)[0],
        Pass
    );
    // Frontier 4 of 10 = 40% is not above 40%.
    assert_eq!(
        statuses(&report((9, 0, 1), Some((4, 0, 6)), 0), &cfg),
        [Pass, Fail, Pass]
    );

    // A critical failure of the fine-tune fails, unless allowed.
    let r = report((9, 0, 1), Some((9, 0, 1)), 1);
    let g = check_gates(&r, &cfg).unwrap();
    assert_eq!(statuses(&r, &cfg), [Pass, Pass, Fail]);
    assert!(!g.passed());
    assert!(g.gates[2]
        .reason
        .contains("1 critical-failure flag(s) on ex-0"));
    assert!(g.to_string().contains("FAIL: 1 of 3 gates failed"));
    let lenient = GateConfig {
        max_critical: 1,
        ..GateConfig::default()
    };
    assert_eq!(statuses(&r, &lenient), [Pass, Pass, Pass]);

    // Thresholds are configurable.
    let strict = GateConfig {
        min_win_base: 0.95,
        ..GateConfig::default()
    };
    assert_eq!(statuses(&r, &strict), [Fail, Pass, Fail]);

    // No frontier in the report: skipped, said so, and not a failure.
    let r = report((8, 0, 2), None, 0);
    let g = check_gates(&r, &cfg).unwrap();
    assert_eq!(statuses(&r, &cfg), [Pass, Skip, Pass]);
    assert!(g.passed());
    assert!(g.gates[1].reason.contains("skipped"));
    assert!(g.to_string().contains("PASS: all gates passed (1 skipped)"));
    // ... but an explicitly named frontier that is absent is an error.
    let named = GateConfig {
        frontier: "gpt".into(),
        frontier_required: true,
        ..GateConfig::default()
    };
    assert!(check_gates(&r, &named).is_err());

    // No comparisons at all fails rather than passes.
    let r = report((0, 0, 0), None, 0);
    assert_eq!(statuses(&r, &cfg), [Fail, Skip, Pass]);
}

#[test]
fn gates_reject_bad_configuration() {
    let r = report((7, 0, 3), None, 0);
    let renamed = GateConfig {
        finetuned: "mine".into(),
        ..GateConfig::default()
    };
    let e = check_gates(&r, &renamed).unwrap_err();
    assert!(e.to_string().contains("`mine` is not in the report"), "{e}");
    let no_base = GateConfig {
        base: "llama".into(),
        ..GateConfig::default()
    };
    assert!(check_gates(&r, &no_base).is_err());
    let bad = GateConfig {
        min_win_base: 1.5,
        ..GateConfig::default()
    };
    assert!(check_gates(&r, &bad).is_err());
    let same = GateConfig {
        base: "finetuned".into(),
        ..GateConfig::default()
    };
    assert!(check_gates(&r, &same).is_err());
}

#[test]
fn gates_on_an_imported_report() {
    // The round-trip fixture: 5/7 over base (pass), 3/7 over frontier (pass), 1 critical (fail).
    let (_dir, r) = rated_report(0);
    let g = check_gates(&r, &GateConfig::default()).unwrap();
    let s: Vec<GateStatus> = g.gates.iter().map(|g| g.status).collect();
    assert_eq!(s, [GateStatus::Pass, GateStatus::Pass, GateStatus::Fail]);
    assert!(g.gates[0].reason.contains("71.4%"), "{}", g.gates[0].reason);
    assert!(
        g.gates[0].reason.contains("35.9%–91.8%"),
        "{}",
        g.gates[0].reason
    );
}
