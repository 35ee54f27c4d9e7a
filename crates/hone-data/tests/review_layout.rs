//! The review layout with the real tokenizer: label tokens are single tokens, every span gets
//! one slot, windows respect their size and carry context, and training labels follow gold.

use std::collections::BTreeMap;

use hone_data::contractnli::GoldLabel;
use hone_data::nda::DocLabel;
use hone_data::review_layout::{layout, span_labels, Label, Options, Vocab, LABELS};
use hone_data::tokens::cached_smollm2;
use hone_model::tokenizer::Tokenizer;

fn tokenizer() -> Option<Tokenizer> {
    let Some(path) = cached_smollm2() else {
        println!("skipped: smollm2 is not cached (hone model fetch smollm2)");
        return None;
    };
    Some(Tokenizer::from_gguf_file(&path).unwrap())
}

#[test]
fn every_span_gets_one_slot_in_windows_that_fit() {
    let Some(tok) = tokenizer() else { return };
    let v = Vocab::new(&tok).unwrap();
    assert_eq!(v.labels.len(), LABELS);
    let mut uniq = v.labels.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), LABELS, "label tokens are distinct");
    assert!(!v.labels.contains(&v.slot));
    assert_eq!(tok.decode(&[v.slot], false).unwrap(), "\n");
    assert_eq!(tok.decode(&[v.labels[1]], false).unwrap(), " A");

    let spans: Vec<String> = (0..60)
        .map(|i| format!("{i}. The Recipient shall keep the information of clause {i} secret."))
        .collect();
    let refs: Vec<&str> = spans.iter().map(|s| s.as_str()).collect();
    let opt = Options {
        max_window: 200,
        context: 40,
    };
    let lay = layout(&v, &tok, &refs, opt).unwrap();
    assert!(lay.windows.len() > 3, "{} windows", lay.windows.len());
    let mut seen = Vec::new();
    for (k, w) in lay.windows.iter().enumerate() {
        assert!(w.ids.len() <= 200);
        for &(pos, span) in &w.slots {
            assert_eq!(w.ids[pos], v.slot);
            seen.push(span);
        }
        // The window's text ends with the last scored span and, after the first window,
        // starts with context from the previous one.
        let text = tok.decode(&w.ids, false).unwrap();
        let last = w.slots.last().unwrap().1;
        assert!(text.ends_with(&format!("{}\n", spans[last])), "{text}");
        if k > 0 {
            let first = w.slots[0].1;
            assert!(text.contains(&spans[first - 1]), "context in window {k}");
            assert_eq!(
                tok.decode(&w.ids[..w.slots[0].0 + 1], false)
                    .unwrap()
                    .matches('\n')
                    .count(),
                text[..text.find(&spans[first]).unwrap()]
                    .matches('\n')
                    .count()
                    + 1
            );
        }
    }
    assert_eq!(
        seen,
        (0..60).collect::<Vec<_>>(),
        "each span scored once, in order"
    );

    // A span longer than a window is cut, and counted.
    let long = "word ".repeat(400);
    let lay = layout(&v, &tok, &[long.as_str(), "Short."], opt).unwrap();
    assert_eq!(lay.truncated_spans, 1);
    assert_eq!(lay.windows[0].ids.len(), 200);
    assert!(layout(
        &v,
        &tok,
        &["x"],
        Options {
            max_window: 4,
            context: 0
        }
    )
    .is_err());
}

#[test]
fn span_labels_follow_the_gold_evidence() {
    let mut labels = BTreeMap::new();
    labels.insert(
        "nda-1".to_string(),
        GoldLabel {
            label: DocLabel::Entailed,
            spans: vec![1, 2],
        },
    );
    labels.insert(
        "nda-2".to_string(),
        GoldLabel {
            label: DocLabel::Contradicted,
            spans: vec![2],
        },
    );
    labels.insert(
        "nda-3".to_string(),
        GoldLabel {
            label: DocLabel::NotMentioned,
            spans: vec![],
        },
    );
    let got = span_labels(4, &labels);
    assert_eq!(
        got,
        vec![
            vec![Label::None],
            vec![Label::Entails(0)],
            vec![Label::Entails(0), Label::Contradicts(1)],
            vec![Label::None],
        ]
    );
}
