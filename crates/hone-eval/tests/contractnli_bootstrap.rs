//! The paired bootstrap of a ContractNLI comparison: a candidate against itself, one right
//! everywhere against one wrong everywhere, one document apart among many, seeded draws, a
//! document drawn twice counting twice, the per-document shortcut scoring exactly as
//! `evaluate` does, and the differences in the comparison and its reports.
//!
//! The hand-built gold (`gold_set`): documents `d0`, `d1`, ... of two 10-character spans;
//! `nda-1` is Entailment on even documents (evidence: span 0) and Contradiction on odd ones
//! (evidence: span 1); `nda-2` is NotMentioned on every third document and Entailment (span 0)
//! elsewhere.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hone_data::contractnli::{EvalDocument, GoldLabel};
use hone_data::nda::DocLabel;
use hone_eval::contractnli::{
    compare, compare_with, comparison_html, comparison_markdown, comparison_text, draws, evaluate,
    overall_metrics, paired_differences, read_gold, read_predictions, resample_gold,
    resample_predictions, BootstrapOptions, CheckPrediction, ClassProbs, Comparison, Difference,
    EvidenceRange, Prediction, Predictions, Reading, ResampleScorer, DEFAULT_RESAMPLES,
};

const METRICS: [&str; 6] = ["NLI acc", "F1(C)", "F1(E)", "Acc3", "mAP", "mAP/doc"];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/contractnli")
        .join(name)
}

fn label(label: DocLabel, spans: &[usize]) -> GoldLabel {
    GoldLabel {
        label,
        spans: spans.to_vec(),
    }
}

/// `n` gold documents (see the module documentation).
fn gold_set(n: usize) -> Vec<EvalDocument> {
    (0..n)
        .map(|i| {
            let mut labels = BTreeMap::new();
            labels.insert(
                "nda-1".to_string(),
                if i % 2 == 0 {
                    label(DocLabel::Entailed, &[0])
                } else {
                    label(DocLabel::Contradicted, &[1])
                },
            );
            labels.insert(
                "nda-2".to_string(),
                if i % 3 == 0 {
                    label(DocLabel::NotMentioned, &[])
                } else {
                    label(DocLabel::Entailed, &[0])
                },
            );
            EvalDocument {
                id: format!("d{i}"),
                file_name: format!("d{i}.txt"),
                text: "Clause A. Clause B. ".into(),
                spans: vec![[0, 10], [10, 20]],
                labels,
            }
        })
        .collect()
}

fn opposite(l: DocLabel) -> DocLabel {
    match l {
        DocLabel::Entailed => DocLabel::Contradicted,
        DocLabel::Contradicted => DocLabel::Entailed,
        DocLabel::NotMentioned => DocLabel::Entailed,
    }
}

/// Predictions for every gold document: the gold label and a range on its first gold span,
/// except on the documents `wrong` says, which get the opposite label and the other span.
fn predictions(gold: &[EvalDocument], wrong: impl Fn(usize) -> bool, name: &str) -> Predictions {
    let docs = gold
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let checks = d
                .labels
                .iter()
                .map(|(h, g)| {
                    let right_span = g.spans.first().copied().unwrap_or(0);
                    let (label, span) = if wrong(i) {
                        (opposite(g.label), 1 - right_span)
                    } else {
                        (g.label, right_span)
                    };
                    let [start, end] = d.spans[span];
                    let c = CheckPrediction {
                        label,
                        probs: None,
                        evidence: vec![EvidenceRange {
                            start,
                            end,
                            score: 0.9,
                        }],
                    };
                    (h.clone(), c)
                })
                .collect();
            Prediction {
                doc_id: d.id.clone(),
                line: i + 1,
                checks,
            }
        })
        .collect();
    Predictions {
        path: PathBuf::from(format!("{name}.jsonl")),
        docs,
    }
}

fn options(resamples: usize, seed: u64) -> BootstrapOptions {
    BootstrapOptions { resamples, seed }
}

fn find<'a>(ds: &'a [Difference], candidate: &str, metric: &str) -> &'a Difference {
    ds.iter()
        .find(|d| d.candidate == candidate && d.metric == metric)
        .unwrap_or_else(|| panic!("no difference for {candidate} {metric}: {ds:?}"))
}

#[test]
fn a_candidate_against_itself_is_zero_with_a_zero_interval() {
    let gold = gold_set(24);
    let p = predictions(&gold, |i| i % 5 == 0, "p");
    let ds = paired_differences(&gold, &[("a", &p), ("b", &p)], options(300, 1)).unwrap();
    assert_eq!(ds.len(), 6);
    for (d, m) in ds.iter().zip(METRICS) {
        assert_eq!((d.candidate.as_str(), d.metric.as_str()), ("b", m));
        assert_eq!(d.delta, Some(0.0), "{m}");
        assert_eq!((d.low, d.high), (Some(0.0), Some(0.0)), "{m}");
        assert_eq!(d.reading, Some(Reading::WithinNoise), "{m}");
        assert!(d.resamples >= 150, "{m}: {}", d.resamples);
    }

    // The same file under two names, through `compare`.
    let c = compare(
        &fixture("gold.json"),
        &[
            ("x".into(), fixture("pred.jsonl")),
            ("y".into(), fixture("pred.jsonl")),
        ],
    )
    .unwrap();
    let b = c.bootstrap.as_ref().unwrap();
    assert_eq!((b.resamples, b.baseline.as_str()), (DEFAULT_RESAMPLES, "x"));
    assert_eq!(c.differences.len(), 6);
    for d in &c.differences {
        assert_eq!(d.delta, Some(0.0), "{}", d.metric);
        assert!(d.low.is_none() || (d.low, d.high) == (Some(0.0), Some(0.0)));
    }
    assert_eq!(
        find(&c.differences, "y", "Acc3").reading,
        Some(Reading::WithinNoise)
    );
}

#[test]
fn right_everywhere_against_wrong_everywhere_is_above() {
    let gold = gold_set(20);
    let wrong = predictions(&gold, |_| true, "wrong");
    let right = predictions(&gold, |_| false, "right");
    let ds = paired_differences(
        &gold,
        &[("wrong", &wrong), ("right", &right)],
        options(DEFAULT_RESAMPLES, 7),
    )
    .unwrap();
    let nli = find(&ds, "right", "NLI acc");
    assert_eq!(nli.delta, Some(1.0));
    assert_eq!((nli.low, nli.high), (Some(1.0), Some(1.0)));
    assert!(nli.low.unwrap() > 0.0);
    assert_eq!(nli.reading, Some(Reading::Above));
    // Every label and every evidence range is right on one side and wrong on the other: every
    // metric is above.
    for m in METRICS {
        let d = find(&ds, "right", m);
        assert!(d.delta.unwrap() > 0.0, "{m}: {d:?}");
        assert_eq!(d.reading, Some(Reading::Above), "{m}: {d:?}");
    }
    // And the other way round, below.
    let ds = paired_differences(
        &gold,
        &[("right", &right), ("wrong", &wrong)],
        options(200, 7),
    )
    .unwrap();
    let nli = find(&ds, "wrong", "NLI acc");
    assert_eq!(nli.delta, Some(-1.0));
    assert_eq!(nli.reading, Some(Reading::Below));
}

#[test]
fn one_document_apart_among_many_is_within_noise() {
    let gold = gold_set(30);
    let base = predictions(&gold, |i| i == 4, "base");
    let cand = predictions(&gold, |_| false, "cand");
    let ds = paired_differences(
        &gold,
        &[("base", &base), ("cand", &cand)],
        options(DEFAULT_RESAMPLES, 3),
    )
    .unwrap();
    let nli = find(&ds, "cand", "NLI acc");
    // d4 is an Entailment document of nda-1 (the only binary hypothesis): 1/30 better.
    let delta = nli.delta.unwrap();
    assert!((delta - 1.0 / 30.0).abs() < 1e-12, "{delta}");
    let (low, high) = (nli.low.unwrap(), nli.high.unwrap());
    assert!(low <= 0.0 && 0.0 <= high, "[{low}, {high}]");
    assert!(
        high > 0.0,
        "the difference shows when d4 is drawn: [{low}, {high}]"
    );
    for m in METRICS {
        let d = find(&ds, "cand", m);
        assert_eq!(d.reading, Some(Reading::WithinNoise), "{m}: {d:?}");
        assert_eq!(d.resamples, DEFAULT_RESAMPLES, "{m}");
    }
}

#[test]
fn the_bootstrap_is_seeded() {
    let gold = gold_set(30);
    let base = predictions(&gold, |i| i % 4 == 0, "base");
    let cand = predictions(&gold, |i| i % 7 == 0, "cand");
    let run = |seed| {
        paired_differences(
            &gold,
            &[("base", &base), ("cand", &cand)],
            options(500, seed),
        )
        .unwrap()
    };
    assert_eq!(run(11), run(11));
    assert_ne!(run(11), run(12));
    assert_eq!(draws(30, 5, 11), draws(30, 5, 11));
    assert_ne!(draws(30, 5, 11), draws(30, 5, 12));
    let d = draws(30, 5, 11);
    assert_eq!(d.len(), 5);
    assert!(d.iter().all(|x| x.len() == 30 && x.iter().all(|&i| i < 30)));
    // No resamples, or a single candidate: no differences.
    assert!(
        paired_differences(&gold, &[("base", &base), ("cand", &cand)], options(0, 1))
            .unwrap()
            .is_empty()
    );
    assert!(
        paired_differences(&gold, &[("base", &base)], options(100, 1))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_document_drawn_twice_counts_twice() {
    let gold = gold_set(6);
    // Wrong on d1 only (a Contradiction document of nda-1, Entailment of nda-2).
    let p = predictions(&gold, |i| i == 1, "p");
    let draw = [1, 1, 2, 3, 4, 5];
    let rg = resample_gold(&gold, &draw);
    let rp = resample_predictions(&p, &gold, &draw);
    let ids: Vec<&str> = rg.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["d1#0", "d1#1", "d2#2", "d3#3", "d4#4", "d5#5"]);
    let pids: Vec<&str> = rp.docs.iter().map(|d| d.doc_id.as_str()).collect();
    assert_eq!(pids, ids);
    let resampled = evaluate(&rg, &rp).unwrap();
    assert_eq!(resampled.documents, 6);
    assert_eq!(resampled.missing, 0);

    // The same as the gold list with d1 given twice, explicitly.
    let mut twice = gold[1..].to_vec();
    twice.insert(
        1,
        EvalDocument {
            id: "d1-again".into(),
            ..gold[1].clone()
        },
    );
    let mut p_twice = predictions(&gold[1..], |i| i == 0, "p");
    let mut again = p_twice.docs[0].clone();
    again.doc_id = "d1-again".into();
    p_twice.docs.insert(1, again);
    let explicit = evaluate(&twice, &p_twice).unwrap();
    assert_eq!(overall_metrics(&resampled), overall_metrics(&explicit));
    // nda-1: d1 wrong twice among 6 (d1, d1, d3, d5 Contradiction; d2, d4 Entailment): NLI acc
    // 4/6; nda-2 (d1, d2, d4, d5 Entailment, d3 NotMentioned) has no Contradiction.
    assert_eq!(resampled.nli_acc, Some(4.0 / 6.0));
    // Acc3: nda-1 4/6, nda-2 4/6.
    assert_eq!(resampled.acc3, Some(4.0 / 6.0));
    // Counted once, d1 weighs less: 4/5 on nda-1.
    let once = evaluate(&gold[1..], &predictions(&gold[1..], |i| i == 0, "p")).unwrap();
    assert_eq!(once.nli_acc, Some(4.0 / 5.0));

    // And the per-document shortcut scores the draw the same.
    let scorer = ResampleScorer::new(&gold, &p).unwrap();
    assert_eq!(scorer.overall(&draw), overall_metrics(&resampled));
    assert_eq!(scorer.metrics, evaluate(&gold, &p).unwrap());
}

/// The shortcut against `evaluate` on many draws of the fixture (a missing document, a
/// prediction missing a check, NotMentioned decided by probabilities, overlapping ranges, tied
/// scores) and of the hand-built set: the very same numbers.
#[test]
fn resampled_scores_are_what_evaluate_gives() {
    let gold = read_gold(&fixture("gold.json")).unwrap();
    let mut cases = vec![];
    for file in ["pred.jsonl", "pred_timed.jsonl"] {
        cases.push((gold.clone(), read_predictions(&fixture(file)).unwrap()));
    }
    let built = gold_set(9);
    let mut p = predictions(&built, |i| i % 3 == 1, "p");
    // A document without a prediction and one without nda-2.
    p.docs.remove(7);
    p.docs[2].checks.remove("nda-2");
    cases.push((built, p));
    cases.push(random_case(40, 3));
    for (gold, p) in &cases {
        let scorer = ResampleScorer::new(gold, p).unwrap();
        let identity: Vec<usize> = (0..gold.len()).collect();
        assert_eq!(
            scorer.overall(&identity),
            overall_metrics(&evaluate(gold, p).unwrap())
        );
        for draw in draws(gold.len(), 200, 5) {
            let want = evaluate(
                &resample_gold(gold, &draw),
                &resample_predictions(p, gold, &draw),
            )
            .unwrap();
            assert_eq!(
                scorer.overall(&draw),
                overall_metrics(&want),
                "{}: draw {draw:?}",
                p.path.display()
            );
        }
    }
}

/// `n` random gold documents of six 10-character spans and random predictions for them: labels
/// of three hypotheses (some documents without one, some gold evidence empty), predictions with
/// or without probabilities, ranges that cover several spans or half of one, scores from a
/// few values (ties across documents), documents and checks left out.
fn random_case(n: usize, seed: u64) -> (Vec<EvalDocument>, Predictions) {
    let mut rng = hone_data::hash::Rng::new(seed);
    let labels = [
        DocLabel::Entailed,
        DocLabel::Contradicted,
        DocLabel::NotMentioned,
    ];
    let mut gold = Vec::new();
    let mut docs = Vec::new();
    for i in 0..n {
        let mut g = BTreeMap::new();
        let mut checks = BTreeMap::new();
        for h in ["nda-1", "nda-2", "nda-3"] {
            if rng.chance(0.1) {
                continue;
            }
            let l = *rng.pick(&labels);
            let spans: Vec<usize> = if l == DocLabel::NotMentioned || rng.chance(0.15) {
                vec![]
            } else {
                (0..6).filter(|_| rng.chance(0.3)).collect()
            };
            g.insert(h.to_string(), label(l, &spans));
            if rng.chance(0.1) {
                continue;
            }
            let evidence = (0..rng.below(5))
                .map(|_| {
                    let start = rng.below(60);
                    EvidenceRange {
                        start,
                        end: (start + 5 + rng.below(20)).min(60),
                        score: *rng.pick(&[0.1, 0.5, 0.5, 0.9]),
                    }
                })
                .collect();
            let probs = rng.chance(0.5).then(|| {
                let e = rng.below(11) as f64 / 20.0;
                ClassProbs {
                    entailment: e,
                    contradiction: 0.5 - e / 2.0,
                    not_mentioned: 0.5 - e / 2.0,
                }
            });
            let c = CheckPrediction {
                label: *rng.pick(&labels),
                probs,
                evidence,
            };
            checks.insert(h.to_string(), c);
        }
        gold.push(EvalDocument {
            id: format!("r{i}"),
            file_name: String::new(),
            text: "x".repeat(60),
            spans: (0..6).map(|k| [10 * k, 10 * k + 10]).collect(),
            labels: g,
        });
        if !rng.chance(0.1) {
            docs.push(Prediction {
                doc_id: format!("r{i}"),
                line: i + 1,
                checks,
            });
        }
    }
    let preds = Predictions {
        path: PathBuf::from("random.jsonl"),
        docs,
    };
    (gold, preds)
}

#[test]
fn a_metric_defined_on_too_few_resamples_has_no_interval() {
    // nda-1 is binary only when both d0 (Entailment) and d1 (Contradiction) are drawn (about
    // 0.63² of the resamples); the other documents are NotMentioned.
    let mut gold = gold_set(12);
    for (i, d) in gold.iter_mut().enumerate() {
        d.labels.remove("nda-2");
        if i > 1 {
            d.labels
                .insert("nda-1".into(), label(DocLabel::NotMentioned, &[]));
        }
    }
    let a = predictions(&gold, |_| false, "a");
    let b = predictions(&gold, |i| i == 0, "b");
    let ds = paired_differences(&gold, &[("a", &a), ("b", &b)], options(1000, 2)).unwrap();
    let nli = find(&ds, "b", "NLI acc");
    assert!(nli.delta.is_some());
    assert!(
        nli.resamples > 0 && 2 * nli.resamples < 1000,
        "{}",
        nli.resamples
    );
    assert_eq!((nli.low, nli.high, nli.reading), (None, None, None));
    let acc3 = find(&ds, "b", "Acc3");
    assert_eq!(acc3.resamples, 1000);
    assert!(acc3.reading.is_some());
}

#[test]
fn the_comparison_and_its_reports_show_the_differences() {
    let gold = fixture("gold.json");
    let cands = [
        ("base".to_string(), fixture("pred.jsonl")),
        ("tuned".to_string(), fixture("pred_timed.jsonl")),
    ];
    let c = compare(&gold, &cands).unwrap();
    assert_eq!(c.differences.len(), 6);
    assert!(c.differences.iter().all(|d| d.candidate == "tuned"));
    // tuned scores 1 everywhere, base 1/2 NLI accuracy.
    let nli = find(&c.differences, "tuned", "NLI acc");
    assert!((nli.delta.unwrap() - 0.5).abs() < 1e-12);

    let heading = "Differences against `base` (95% paired bootstrap over the 4 documents, \
                   1000 resamples)";
    let md = comparison_markdown(&c);
    assert!(md.contains(&format!("## {heading}")), "{md}");
    assert!(md.contains("| candidate | NLI acc | F1(C) |"), "{md}");
    assert!(md.contains("| tuned | +0.500 ["), "{md}");
    assert!(md.contains("- `tuned` against `base`: "), "{md}");
    assert!(
        md.contains("on the documents, and the 2.5th to 97.5th percentile"),
        "{md}"
    );
    let html = comparison_html(&c);
    assert!(html.contains("<h2>Differences against <code>base</code></h2>"));
    assert!(
        html.contains("<tr><th>candidate</th><th>NLI acc</th>"),
        "{html}"
    );
    let text = comparison_text(&c);
    assert!(
        text.contains(&format!("{}:", heading.replace('`', ""))),
        "{text}"
    );
    assert!(text.contains("tuned against base: "), "{text}");

    // JSON: the differences and how they were drawn, read back; older reports (without them)
    // still read.
    let mut v = serde_json::to_value(&c).unwrap();
    assert_eq!(v["bootstrap"]["baseline"], "base");
    assert_eq!(v["differences"][0]["metric"], "NLI acc");
    let back: Comparison = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(back, c);
    let o = v.as_object_mut().unwrap();
    o.remove("bootstrap");
    o.remove("differences");
    let old: Comparison = serde_json::from_value(v).unwrap();
    assert!(old.bootstrap.is_none() && old.differences.is_empty());
    assert!(!comparison_markdown(&old).contains("Differences against"));

    // No resamples: no differences, no section; the rest unchanged.
    let none = compare_with(&gold, &cands, options(0, 1)).unwrap();
    assert!(none.bootstrap.is_none() && none.differences.is_empty());
    assert_eq!(none.candidates, c.candidates);
    for s in [
        comparison_markdown(&none),
        comparison_html(&none),
        comparison_text(&none),
    ] {
        assert!(!s.contains("Differences against"), "{s}");
    }
    // One candidate: none either.
    let one = compare(&gold, &cands[..1]).unwrap();
    assert!(one.bootstrap.is_none() && one.differences.is_empty());
}

#[test]
fn readings_name_the_metrics() {
    assert_eq!(Reading::of(0.01, 0.2), Reading::Above);
    assert_eq!(Reading::of(-0.2, -0.01), Reading::Below);
    assert_eq!(Reading::of(0.0, 0.2), Reading::WithinNoise);
    assert_eq!(Reading::of(-0.1, 0.0), Reading::WithinNoise);
    assert_eq!(Reading::WithinNoise.as_str(), "within noise");

    let gold = gold_set(20);
    let wrong = predictions(&gold, |_| true, "wrong");
    let right = predictions(&gold, |_| false, "right");
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, p: &Predictions| {
        let path = dir.path().join(name);
        let lines: Vec<String> = p
            .docs
            .iter()
            .map(|d| {
                let checks: serde_json::Map<String, serde_json::Value> = d
                    .checks
                    .iter()
                    .map(|(h, c)| {
                        let label = match c.label {
                            DocLabel::Entailed => "Entailment",
                            DocLabel::Contradicted => "Contradiction",
                            DocLabel::NotMentioned => "NotMentioned",
                        };
                        (
                            h.clone(),
                            serde_json::json!({"label": label, "evidence": c.evidence}),
                        )
                    })
                    .collect();
                serde_json::json!({"doc_id": d.doc_id, "checks": checks}).to_string()
            })
            .collect();
        std::fs::write(&path, lines.join("\n")).unwrap();
        path
    };
    let gold_path = dir.path().join("gold.jsonl");
    let gold_lines: Vec<String> = gold
        .iter()
        .map(|d| serde_json::to_string(d).unwrap())
        .collect();
    std::fs::write(&gold_path, gold_lines.join("\n")).unwrap();
    let c = compare_with(
        &gold_path,
        &[
            ("wrong".into(), write("wrong.jsonl", &wrong)),
            ("right".into(), write("right.jsonl", &right)),
            ("same".into(), write("same.jsonl", &wrong)),
        ],
        options(200, 9),
    )
    .unwrap();
    let text = comparison_text(&c);
    assert!(
        text.contains("right against wrong: above on every metric."),
        "{text}"
    );
    assert!(
        text.contains("same against wrong: within noise on every metric."),
        "{text}"
    );
    assert!(text.contains("+1.000 [+1.000, +1.000]"), "{text}");
    assert!(text.contains("+0.000 [+0.000, +0.000]"), "{text}");
    let md = comparison_markdown(&c);
    assert!(md.contains("+1.000 [+1.000, +1.000]"), "{md}");
    let html = comparison_html(&c);
    assert!(
        html.contains("<td class=\"above\">+1.000 [+1.000, +1.000]</td>"),
        "{html}"
    );
}
