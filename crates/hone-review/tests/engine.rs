//! The review engine on the real model: the forked prefix gives the same label distributions
//! as running prefix + window from scratch, every check gets a decision whose probabilities
//! sum to 1 and whose evidence slices the input, and adapters that do not fit are refused.

use std::collections::BTreeMap;

use hone_data::review_layout::{layout, LABELS};
use hone_data::tokens::cached_smollm2;
use hone_model::kv_cache::SeqCache;
use hone_model::llama::{Logits, SeqInput};
use hone_model::lora::{LoraAdapter, LoraModule, LoraSpec};
use hone_review::engine::{label_softmax, EngineOptions, Reviewer};
use hone_review::input::{from_text, ReadOptions};
use hone_review::Error;
use rand::SeedableRng;

const NDA: &str = "MUTUAL NON-DISCLOSURE AGREEMENT\n\
This Agreement is made between Acme Ltd. (\"Acme\") and Beta GmbH (\"Beta\").\n\
1. Confidential Information means all information disclosed by one party to the other, \
whether orally or in writing. The Recipient shall use it solely for the Purpose.\n\
2. The Recipient may disclose Confidential Information to its employees who need to know it.\n\
3. Upon request, the Recipient shall return or destroy all Confidential Information.\n\
4. The obligations of this Agreement survive its termination for five years.\n";

fn reviewer(max_window: usize) -> Option<Reviewer> {
    let Some(path) = cached_smollm2() else {
        println!("skipped: smollm2 is not cached (hone model fetch smollm2)");
        return None;
    };
    let mut opts = EngineOptions::default();
    opts.layout.max_window = max_window;
    opts.layout.context = 16;
    Some(Reviewer::load(&path.to_string_lossy(), None, opts).unwrap())
}

#[test]
fn forked_prefix_matches_a_fresh_forward_and_decisions_are_well_formed() {
    // Small windows so the document needs several, each forked from the prefix.
    let Some(r) = reviewer(48) else { return };
    let doc = from_text("t", "t.txt", NDA.to_string(), &ReadOptions::default()).unwrap();
    let offs = hone_data::spans::CharOffsets::new(&doc.text);
    let texts: Vec<&str> = doc
        .spans
        .iter()
        .map(|&[s, e]| offs.slice(&hone_data::spans::Span::new(s, e)))
        .collect();
    let got = r.span_probs(&texts).unwrap();
    assert!(got.windows >= 3, "{} windows", got.windows);

    // Reference: every window run from an empty cache with the prefix in front.
    let lay = layout(&r.vocab, &r.model.tokenizer, &texts, r.options.layout).unwrap();
    let m = &r.model.model;
    let mut want = vec![[0f32; LABELS]; texts.len()];
    for w in &lay.windows {
        let mut ids = r.vocab.prefix.clone();
        ids.extend_from_slice(&w.ids);
        let rows: Vec<usize> = w.slots.iter().map(|s| r.vocab.prefix.len() + s.0).collect();
        let mut kv = m.new_cache(ids.len());
        let mut c = SeqCache::new();
        let logits = m
            .forward(
                &mut [SeqInput {
                    adapter: None,
                    cache: &mut c,
                    tokens: &ids,
                    logits: Logits::Rows(&rows),
                }],
                &mut kv,
            )
            .unwrap();
        for (k, &(_, span)) in w.slots.iter().enumerate() {
            let v = m.vocab_size();
            want[span] = label_softmax(&logits[k * v..(k + 1) * v], &r.vocab.labels);
        }
    }
    for (a, b) in got.probs.iter().zip(&want) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-4, "{x} vs {y}");
        }
        assert!((a.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    }

    let rev = r.review(&doc, None).unwrap();
    assert_eq!(rev.checks.len(), 17);
    for c in rev.checks.values() {
        let s = c.probs.entailment + c.probs.contradiction + c.probs.not_mentioned;
        assert!((s - 1.0).abs() < 1e-9);
        for e in &c.evidence {
            let text = offs
                .slice(&hone_data::spans::Span::new(e.start, e.end))
                .trim();
            assert_eq!(text, e.text);
            assert!((0.0..=1.0).contains(&e.score));
        }
        assert!(["Entailment", "Contradiction", "NotMentioned"].contains(&c.label.as_str()));
    }
    assert_eq!(rev.timing.spans, doc.spans.len());
    assert!(rev.timing.tokens > r.vocab.prefix.len());
    // The JSON output has the documented shape.
    let v: serde_json::Value = serde_json::to_value(&rev).unwrap();
    assert!(v["checks"]["nda-1"]["probs"]["NotMentioned"].is_number());
    assert!(v.get("text").is_none());
}

#[test]
fn adapters_for_another_base_or_task_are_refused() {
    let Some(path) = cached_smollm2() else {
        println!("skipped: smollm2 is not cached");
        return;
    };
    let model = path.to_string_lossy().to_string();
    let dir = tempfile::tempdir().unwrap();
    // An adapter whose q_proj is 64 x 64: made for a much smaller model.
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let mut modules = BTreeMap::new();
    modules.insert(
        (0, "q_proj".to_string()),
        LoraModule::init(4, 64, 64, &mut rng),
    );
    let a = LoraAdapter {
        spec: LoraSpec {
            r: 4,
            alpha: 8.0,
            target_modules: vec!["q_proj".into()],
            layers: vec![0],
        },
        modules,
    };
    let other = dir.path().join("other");
    hone_model::save_adapter(&other, &a, "tiny-model", &Default::default()).unwrap();
    let err = Reviewer::load(&model, Some(&other), EngineOptions::default())
        .err()
        .expect("refused");
    assert!(matches!(err, Error::Adapter { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("other") && msg.contains("another base model"),
        "{msg}"
    );

    // An adapter trained on chat examples, not for review.
    let chat = dir.path().join("chat");
    std::fs::create_dir_all(&chat).unwrap();
    std::fs::write(
        chat.join("train_config.toml"),
        "[data]\ntrain = \"x.jsonl\"\n",
    )
    .unwrap();
    let err = Reviewer::load(&model, Some(&chat), EngineOptions::default())
        .err()
        .expect("refused");
    assert!(err.to_string().contains("not for review"), "{err}");

    let err = Reviewer::load(
        &model,
        Some(&dir.path().join("missing")),
        EngineOptions::default(),
    )
    .err()
    .expect("refused");
    assert!(err.to_string().contains("no such adapter folder"), "{err}");
}
