//! Importing the real ContractNLI train/dev file (read from ../shared, never copied here).

use std::collections::HashMap;
use std::path::PathBuf;

use hone_data::contractnli;
use hone_data::nda::SpanAnswer;

fn data_file() -> Option<PathBuf> {
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
fn imports_all_164_documents_and_labels_agree_with_the_annotations() {
    let Some(path) = data_file() else { return };
    // The file's own counts, read independently of the importer.
    let raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut want: HashMap<(String, String, String), usize> = HashMap::new(); // (doc, check, label) -> evidence spans
                                                                             // Spans that are only whitespace (79 in this file, one of them evidence) carry no text to
                                                                             // train on and are not imported.
    let (mut spans, mut blank, mut blank_evidence) = (0, 0, 0);
    for d in raw["documents"].as_array().unwrap() {
        let chars: Vec<char> = d["text"].as_str().unwrap().chars().collect();
        let is_blank: Vec<bool> = d["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let (a, b) = (
                    s[0].as_u64().unwrap() as usize,
                    s[1].as_u64().unwrap() as usize,
                );
                chars[a..b].iter().all(|c| c.is_whitespace())
            })
            .collect();
        spans += is_blank.len();
        blank += is_blank.iter().filter(|&&b| b).count();
        for (h, a) in d["annotation_sets"][0]["annotations"].as_object().unwrap() {
            let label = match a["choice"].as_str().unwrap() {
                "Entailment" => "entailed",
                "Contradiction" => "contradicted",
                _ => continue,
            };
            for s in a["spans"].as_array().unwrap() {
                if is_blank[s.as_u64().unwrap() as usize] {
                    blank_evidence += 1;
                } else {
                    *want
                        .entry((d["id"].to_string(), h.clone(), label.into()))
                        .or_default() += 1;
                }
            }
        }
    }
    assert_eq!((spans, blank, blank_evidence), (12845, 79, 1));

    let ds = contractnli::read(&path).unwrap();
    let imp = contractnli::import(&ds, &path).unwrap();
    assert_eq!(imp.documents.len(), 164);
    assert_eq!(
        imp.examples.len(),
        spans - blank,
        "one example per non-blank span"
    );
    let mut got: HashMap<(String, String, String), usize> = HashMap::new();
    for ex in &imp.examples {
        let ans = SpanAnswer::parse(ex.output_text()).unwrap();
        for c in ans.checks {
            let label = serde_json::to_value(c.label)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string();
            *got.entry((ex.group.clone().unwrap(), c.id, label))
                .or_default() += 1;
        }
    }
    assert_eq!(got, want);
    let total: usize = got.values().sum();
    let contradicted: usize = got
        .iter()
        .filter(|(k, _)| k.2 == "contradicted")
        .map(|(_, v)| v)
        .sum();
    println!(
        "{} span examples, {total} (span, check) evidence labels, {contradicted} contradicted",
        imp.examples.len()
    );
    assert_eq!((total, contradicted), (3208, 556));

    // The evaluation file keeps every document's gold labels.
    let nm = imp
        .documents
        .iter()
        .flat_map(|d| d.labels.values())
        .filter(|g| g.label == hone_data::nda::DocLabel::NotMentioned)
        .count();
    assert_eq!(nm, 1173);
    let dir = tempfile::tempdir().unwrap();
    contractnli::write_imported(&imp, dir.path()).unwrap();
    assert_eq!(
        contractnli::read_documents(&dir.path().join("documents.jsonl")).unwrap(),
        imp.documents
    );
}
