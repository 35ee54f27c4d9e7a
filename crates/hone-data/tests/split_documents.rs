//! `hone data split` on annotated document files (`documents.jsonl`): split by document, with
//! near-duplicate documents kept in one split.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hone_data::contractnli;
use hone_data::hash::Rng;
use hone_data::split::{
    is_documents_file, split_documents, DocSplitReport, Sizes, DOC_NEAR_DUP, NAMES,
};
use serde_json::json;

/// A document line as `hone data import contractnli` writes it.
fn doc_line(id: &str, text: &str) -> String {
    json!({
        "id": id,
        "file_name": format!("{id}.pdf"),
        "text": text,
        "spans": [[0, text.chars().count()]],
        "labels": {
            "nda-1": {"label": "entailed", "spans": [0]},
            "nda-2": {"label": "not_mentioned", "spans": []},
        },
    })
    .to_string()
}

/// `n` unrelated texts of 60 random words from a 2,000-word vocabulary.
fn texts(n: usize, seed: u64) -> Vec<String> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            (0..60)
                .map(|_| format!("w{}", rng.below(2000)))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// The text with word `k` replaced.
fn one_word_changed(text: &str, k: usize) -> String {
    let mut w: Vec<&str> = text.split(' ').collect();
    w[k] = "changed";
    w.join(" ")
}

/// A documents file of `n` documents in which document `2i + 1` is a near-copy of document
/// `2i` (one word differs) for `i < pairs`. Returns the path and the planted id pairs.
fn corpus(dir: &Path, n: usize, pairs: usize) -> (PathBuf, Vec<[String; 2]>) {
    let mut t = texts(n, 42);
    let mut planted = Vec::new();
    for i in 0..pairs {
        t[2 * i + 1] = one_word_changed(&t[2 * i], 30);
        planted.push([format!("doc{}", 2 * i), format!("doc{}", 2 * i + 1)]);
    }
    let body: String = t
        .iter()
        .enumerate()
        .map(|(i, text)| doc_line(&format!("doc{i}"), text) + "\n")
        .collect();
    let p = dir.join("documents.jsonl");
    std::fs::write(&p, body).unwrap();
    (p, planted)
}

/// Document id -> split name, from the written files; also checks each file keeps the input
/// order and holds the input's lines unchanged.
fn placement(input: &Path, out: &Path) -> HashMap<String, &'static str> {
    let input = std::fs::read_to_string(input).unwrap();
    let order: HashMap<&str, usize> = input.lines().enumerate().map(|(i, l)| (l, i)).collect();
    let mut at = HashMap::new();
    for name in NAMES {
        let p = out.join(format!("{name}.jsonl"));
        let Ok(body) = std::fs::read_to_string(&p) else {
            continue;
        };
        let mut last = None;
        for line in body.lines() {
            let i = *order.get(line).expect("an input line, unchanged");
            assert!(last < Some(i), "{name}: lines out of input order");
            last = Some(i);
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let id = v["id"].as_str().unwrap().to_string();
            assert!(at.insert(id, name).is_none(), "a document in two files");
        }
        // Every file is a valid documents file.
        if !body.is_empty() {
            assert_eq!(
                contractnli::read_documents(&p).unwrap().len(),
                body.lines().count()
            );
        }
    }
    at
}

fn split_counts(at: &HashMap<String, &'static str>) -> [usize; 3] {
    NAMES.map(|n| at.values().filter(|&&s| s == n).count())
}

/// Each split's count is within one group (of at most `max_group` documents) of its target.
fn within_one_group(rep: &DocSplitReport, want: [usize; 3], max_group: usize) {
    for (s, (&got, &want)) in rep.counts.iter().zip(&want).enumerate() {
        assert!(
            got.abs_diff(want) <= max_group,
            "split {s}: {got} documents, wanted {want} (±1 group): {:?}",
            rep.counts
        );
    }
}

#[test]
fn sizes_by_counts_and_ratios_are_respected() {
    let dir = tempfile::tempdir().unwrap();
    let (input, _) = corpus(dir.path(), 40, 5);
    for seed in 0..5 {
        // Counts that use every document.
        let out = dir.path().join(format!("counts{seed}"));
        let rep =
            split_documents(&input, &out, &Sizes::Counts([25, 8, 7]), seed, DOC_NEAR_DUP).unwrap();
        assert_eq!((rep.documents, rep.groups), (40, 35));
        assert_eq!(rep.near_duplicate_pairs.len(), 5);
        within_one_group(&rep, [25, 8, 7], 2);
        // Pairs are placed first, singles fill the rest: exact here.
        assert_eq!(rep.counts, [25, 8, 7]);
        assert_eq!(rep.left_out, 0);
        let at = placement(&input, &out);
        assert_eq!(split_counts(&at), rep.counts);
        assert_eq!(at.len(), 40);
        assert_eq!(rep.files.len(), 3);

        // Counts that leave documents out.
        let out = dir.path().join(format!("part{seed}"));
        let rep =
            split_documents(&input, &out, &Sizes::Counts([20, 5, 5]), seed, DOC_NEAR_DUP).unwrap();
        within_one_group(&rep, [20, 5, 5], 2);
        assert_eq!(rep.left_out, 40 - rep.counts.iter().sum::<usize>());
        assert_eq!(split_counts(&placement(&input, &out)), rep.counts);

        // Ratios.
        let out = dir.path().join(format!("ratios{seed}"));
        let sizes = Sizes::parse("0.8,0.1,0.1").unwrap();
        let rep = split_documents(&input, &out, &sizes, seed, DOC_NEAR_DUP).unwrap();
        within_one_group(&rep, [32, 4, 4], 2);
        assert_eq!(rep.counts, [32, 4, 4]);
        assert_eq!(rep.left_out, 0);
        assert_eq!(split_counts(&placement(&input, &out)), rep.counts);
    }
    // The pilot (40 + 10 of 60, no test): no test file.
    let big = tempfile::tempdir().unwrap();
    let (big_input, _) = corpus(big.path(), 60, 5);
    let out = big.path().join("pilot");
    let rep = split_documents(&big_input, &out, &Sizes::pilot(), 1, DOC_NEAR_DUP).unwrap();
    within_one_group(&rep, [40, 10, 0], 2);
    assert_eq!(rep.left_out, 60 - rep.counts.iter().sum::<usize>());
    assert!(!out.join("test.jsonl").exists());
    assert_eq!(rep.files.len(), 2);
    assert_eq!(split_counts(&placement(&big_input, &out)), rep.counts);
    // Counts beyond the file: an error naming both numbers.
    let err = split_documents(
        &input,
        &dir.path().join("x"),
        &Sizes::Counts([40, 10, 0]),
        1,
        2.0,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("(0, 1]"), "{err}");
    let err = split_documents(
        &input,
        &dir.path().join("x"),
        &Sizes::Counts([40, 10, 1]),
        1,
        DOC_NEAR_DUP,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("need 51") && err.contains("has 40"), "{err}");
    assert!(!dir.path().join("x").exists());
}

#[test]
fn an_empty_requested_split_still_gets_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let (input, _) = corpus(dir.path(), 3, 0);
    // 3 documents at 0.9/0.05/0.05: valid and test are requested but get 0 or 1 documents.
    let sizes = Sizes::parse("0.9,0.05,0.05").unwrap();
    let out = dir.path().join("out");
    let rep = split_documents(&input, &out, &sizes, 0, DOC_NEAR_DUP).unwrap();
    assert_eq!(rep.counts.iter().sum::<usize>(), 3);
    for name in NAMES {
        assert!(out.join(format!("{name}.jsonl")).is_file(), "{name}");
    }
    assert_eq!(rep.files.len(), 3);
}

#[test]
fn near_duplicates_always_land_in_the_same_split() {
    let dir = tempfile::tempdir().unwrap();
    let (input, planted) = corpus(dir.path(), 30, 6);
    // Plus a chain: doc12 ~ doc13 ~ doc14 (each one word from the next, doc12 and doc14 two),
    // kept together transitively.
    let mut lines: Vec<String> = std::fs::read_to_string(&input)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let base: serde_json::Value = serde_json::from_str(&lines[12]).unwrap();
    let t12 = base["text"].as_str().unwrap().to_string();
    let t13 = one_word_changed(&t12, 10);
    let t14 = one_word_changed(&t13, 50);
    lines[13] = doc_line("doc13", &t13);
    lines[14] = doc_line("doc14", &t14);
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();

    let mut seen_splits = HashMap::new();
    for seed in 0..10 {
        let out = dir.path().join(format!("s{seed}"));
        let rep =
            split_documents(&input, &out, &Sizes::Counts([20, 4, 6]), seed, DOC_NEAR_DUP).unwrap();
        // 6 planted pairs plus doc12-13, doc13-14 and doc12-14.
        assert_eq!(
            rep.near_duplicate_pairs.len(),
            9,
            "{:?}",
            rep.near_duplicate_pairs
        );
        assert_eq!(rep.groups, 30 - 6 - 2);
        for p in &rep.near_duplicate_pairs {
            assert!(p.jaccard >= DOC_NEAR_DUP && p.jaccard < 1.0);
        }
        let reported: Vec<&[String; 2]> = rep.near_duplicate_pairs.iter().map(|p| &p.ids).collect();
        for pair in &planted {
            assert!(reported.contains(&pair), "{pair:?} not reported");
        }
        let at = placement(&input, &out);
        for [a, b] in &planted {
            assert_eq!(at[a], at[b], "seed {seed}: {a} and {b} split apart");
            *seen_splits.entry(at[a]).or_insert(0) += 1;
        }
        assert_eq!(at["doc12"], at["doc13"]);
        assert_eq!(at["doc13"], at["doc14"]);
    }
    // The pairs are not simply all put in one split.
    assert!(seen_splits.len() >= 2, "{seen_splits:?}");
}

#[test]
fn the_same_seed_gives_identical_files() {
    let dir = tempfile::tempdir().unwrap();
    let (input, _) = corpus(dir.path(), 50, 4);
    let sizes = Sizes::parse("0.7,0.15,0.15").unwrap();
    let read = |out: &Path| NAMES.map(|n| std::fs::read(out.join(format!("{n}.jsonl"))).unwrap());
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    split_documents(&input, &a, &sizes, 7, DOC_NEAR_DUP).unwrap();
    split_documents(&input, &b, &sizes, 7, DOC_NEAR_DUP).unwrap();
    split_documents(&input, &c, &sizes, 8, DOC_NEAR_DUP).unwrap();
    assert_eq!(read(&a), read(&b));
    assert_ne!(read(&a), read(&c));
}

#[test]
fn a_bad_line_names_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let (input, _) = corpus(dir.path(), 4, 0);
    let mut body = std::fs::read_to_string(&input).unwrap();
    body.push_str("\n{\"id\": \"broken\", \"text\": \n");
    std::fs::write(&input, body).unwrap();
    let out = dir.path().join("out");
    let err = split_documents(&input, &out, &Sizes::Counts([2, 1, 1]), 0, DOC_NEAR_DUP)
        .unwrap_err()
        .to_string();
    // Four documents, a blank line, then the broken one on line 6.
    assert!(
        err.contains(&format!("{}:6:", input.display())),
        "error does not name the file and line: {err}"
    );
    assert!(!out.exists(), "nothing is written on error");
}

#[test]
fn only_documents_files_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    let (docs, _) = corpus(dir.path(), 2, 0);
    assert!(is_documents_file(&docs).unwrap());
    // Blank lines before the first document are skipped.
    let padded = dir.path().join("padded.jsonl");
    std::fs::write(
        &padded,
        format!("\n  \n{}", std::fs::read_to_string(&docs).unwrap()),
    )
    .unwrap();
    assert!(is_documents_file(&padded).unwrap());

    let chat = dir.path().join("chat.jsonl");
    std::fs::write(
        &chat,
        json!({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}], "label": "x"}).to_string()
            + "\n",
    )
    .unwrap();
    assert!(!is_documents_file(&chat).unwrap());
    // Text and spans without labels (e.g. ContractNLI-like records of another kind).
    let partial = dir.path().join("partial.jsonl");
    std::fs::write(&partial, "{\"text\": \"a\", \"spans\": []}\n").unwrap();
    assert!(!is_documents_file(&partial).unwrap());
    let csv = dir.path().join("data.csv");
    std::fs::write(&csv, "prompt,answer\nhi,hello\n").unwrap();
    assert!(!is_documents_file(&csv).unwrap());
    let array = dir.path().join("array.jsonl");
    std::fs::write(&array, "[1, 2]\n").unwrap();
    assert!(!is_documents_file(&array).unwrap());
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    assert!(!is_documents_file(&empty).unwrap());
    let binary = dir.path().join("bin.jsonl");
    std::fs::write(&binary, [0xffu8, 0xfe, 0x00, b'\n']).unwrap();
    assert!(!is_documents_file(&binary).unwrap());
    let missing = dir.path().join("missing.jsonl");
    let err = is_documents_file(&missing).unwrap_err().to_string();
    assert!(err.contains("missing.jsonl"), "{err}");
}

fn contractnli_file() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/contractnli/train_dev.json");
    if p.is_file() {
        Some(p)
    } else {
        println!("skipped: {} is absent", p.display());
        None
    }
}

#[test]
fn contractnli_near_copies_are_found_and_kept_together() {
    let Some(path) = contractnli_file() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ds = contractnli::read(&path).unwrap();
    let imp = contractnli::import(&ds, &path).unwrap();
    contractnli::write_imported(&imp, dir.path()).unwrap();
    let input = dir.path().join("documents.jsonl");
    assert!(is_documents_file(&input).unwrap());
    // spans.jsonl holds examples, not documents.
    assert!(!is_documents_file(&dir.path().join("spans.jsonl")).unwrap());

    let out = dir.path().join("split");
    let rep =
        split_documents(&input, &out, &Sizes::Counts([120, 12, 32]), 0, DOC_NEAR_DUP).unwrap();
    assert_eq!(rep.documents, 164);
    let mut jac: Vec<f64> = rep.near_duplicate_pairs.iter().map(|p| p.jaccard).collect();
    jac.sort_by(f64::total_cmp);
    assert_eq!(jac.len(), 4, "{:?}", rep.near_duplicate_pairs);
    for (got, want) in jac.iter().zip([0.54, 0.56, 0.92, 0.99]) {
        assert!((got - want).abs() < 0.015, "{jac:?}");
    }
    assert_eq!(rep.groups, 160);
    within_one_group(&rep, [120, 12, 32], 2);
    assert_eq!(rep.counts, [120, 12, 32]);
    assert_eq!(rep.left_out, 0);
    let at = placement(&input, &out);
    assert_eq!(at.len(), 164);
    for seed in 0..10 {
        let out = dir.path().join(format!("s{seed}"));
        let rep = split_documents(
            &input,
            &out,
            &Sizes::Counts([120, 12, 32]),
            seed,
            DOC_NEAR_DUP,
        )
        .unwrap();
        assert_eq!(rep.near_duplicate_pairs.len(), 4);
        let at = placement(&input, &out);
        for p in &rep.near_duplicate_pairs {
            let [a, b] = &p.ids;
            assert_eq!(
                at[a], at[b],
                "seed {seed}: {a} and {b} ({:.2}) split apart",
                p.jaccard
            );
        }
    }
}
