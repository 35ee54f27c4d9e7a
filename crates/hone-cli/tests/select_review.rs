//! `hone data select` with a review adapter: the pool's documents are reviewed, ranked by the
//! entropy of their 17 label distributions summed, near-copies of a pick skipped, and the picks
//! queued for review with the document and the review result (the input the review page edits).

use std::path::Path;
use std::process::{Command, Output};

fn hone(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hone"))
        .args(args)
        .env("HONE_THREADS", "2")
        .env_remove("HONE_STORE")
        .env_remove("HONE_OBJECTS")
        .output()
        .expect("hone runs")
}

fn ok(out: Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{err}");
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn model_cached() -> bool {
    let ok = hone_model::fetch::known_model("smollm2")
        .map(|m| m.cached_path().is_file())
        .unwrap_or(false);
    if !ok {
        println!("skipped: smollm2 is not cached (hone model fetch smollm2)");
    }
    ok
}

/// A review adapter that leaves the base model as it is: a zero LoRA pair on layer 0's q_proj,
/// a training config saying `data.format = "review"`, default calibration.
fn zero_review_adapter(ad: &Path) {
    std::fs::create_dir_all(ad).unwrap();
    std::fs::write(
        ad.join("adapter_config.json"),
        r#"{"peft_type":"LORA","r":1,"lora_alpha":1,"target_modules":["q_proj"],"base_model_name_or_path":"smollm2","layers_to_transform":[0]}"#,
    )
    .unwrap();
    let (a, b) = (vec![0u8; 576 * 4], vec![0u8; 576 * 4]);
    let views = vec![
        (
            "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![1, 576], &a)
                .unwrap(),
        ),
        (
            "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight",
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![576, 1], &b)
                .unwrap(),
        ),
    ];
    safetensors::serialize_to_file(views, None, &ad.join("adapter_model.safetensors")).unwrap();
    std::fs::write(
        ad.join("train_config.toml"),
        "[model]\nbase = \"smollm2\"\n[data]\ntrain = \"train.jsonl\"\nformat = \"review\"\n",
    )
    .unwrap();
}

/// `hone data select` of 3 documents of `pool` (near-copies at 0.99 skipped), picks to `out`.
fn select_three(ad: &Path, pool: &Path, by: &[&str], db: &Path, out: &Path) -> String {
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let (ad, pool, db, out) = (s(ad), s(pool), s(db), s(out));
    let mut args = vec![
        "data",
        "select",
        "--adapter",
        &ad,
        "--pool",
        &pool,
        "--budget",
        "3",
        "--near",
        "0.99",
    ];
    args.extend_from_slice(by);
    args.extend_from_slice(&["--store", &db, "--out", &out]);
    ok(hone(&args))
}

fn read_jsonl(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn entropy(p: &serde_json::Value) -> f64 {
    ["Entailment", "Contradiction", "NotMentioned"]
        .iter()
        .map(|k| p[*k].as_f64().unwrap())
        .filter(|&x| x > 0.0)
        .map(|x| -x * x.ln())
        .sum()
}

#[test]
fn review_pool_is_ranked_by_summed_check_entropy_and_queued_with_the_document() {
    if !model_cached() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    ok(hone(&[
        "data",
        "synth",
        "nda",
        "--docs",
        "3",
        "--seed",
        "5",
        "--out",
        &s(&d.join("data")),
    ]));
    // The pool: three documents, then a copy (new id, same text) of each.
    let text = std::fs::read_to_string(d.join("data/documents.jsonl")).unwrap();
    let mut lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    // Cut to their first 12 spans (a short review each), unlabelled.
    for l in &mut lines {
        let spans: Vec<[usize; 2]> = serde_json::from_value(l["spans"].clone()).unwrap();
        let end = spans[11][1];
        let text: String = l["text"].as_str().unwrap().chars().take(end).collect();
        l["text"] = text.into();
        l["spans"] = serde_json::to_value(&spans[..12]).unwrap();
        l["labels"] = serde_json::json!({});
    }
    for i in 0..3 {
        let mut copy = lines[i].clone();
        copy["id"] = format!("copy-of-{}", lines[i]["id"].as_str().unwrap()).into();
        lines.push(copy);
    }
    let pool = d.join("pool.jsonl");
    std::fs::write(
        &pool,
        lines
            .iter()
            .map(|l| l.to_string() + "\n")
            .collect::<String>(),
    )
    .unwrap();
    let ad = d.join("ad");
    zero_review_adapter(&ad);

    // What `hone review` says of each document, and each one's summed entropy from that.
    let pred = d.join("pred.jsonl");
    ok(hone(&[
        "review",
        &s(&pool),
        "--adapter",
        &s(&ad),
        "--format",
        "jsonl",
        "--out",
        &s(&pred),
    ]));
    let reviews: Vec<serde_json::Value> = std::fs::read_to_string(&pred)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(reviews.len(), 6);
    let sums: Vec<(String, f64)> = reviews
        .iter()
        .map(|r| {
            let checks = r["checks"].as_object().unwrap();
            assert_eq!(checks.len(), 17);
            (
                r["doc_id"].as_str().unwrap().to_string(),
                checks.values().map(|c| entropy(&c["probs"])).sum(),
            )
        })
        .collect();
    // Most uncertain original first; its copy and the copies of later picks are skipped.
    let mut originals: Vec<&(String, f64)> = sums[..3].iter().collect();
    originals.sort_by(|a, b| b.1.total_cmp(&a.1));

    let picks = d.join("picks.jsonl");
    let db = d.join("store.db");
    let out = select_three(&ad, &pool, &[], &db, &picks);
    assert!(out.contains("3 of 6 pool documents picked"), "{out}");
    let got = read_jsonl(&picks);
    assert_eq!(got.len(), 3);
    for (k, (g, want)) in got.iter().zip(&originals).enumerate() {
        assert_eq!(g["rank"], k + 1);
        // a copy has the same text and so the same uncertainty; the original comes first
        assert_eq!(
            g["doc_id"].as_str().unwrap(),
            want.0,
            "{got:?} vs {originals:?}"
        );
        let u = g["uncertainty"].as_f64().unwrap();
        assert!((u - want.1).abs() < 1e-6, "{u} vs {}", want.1);
        let per: f64 = g["checks"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_f64().unwrap())
            .sum();
        assert!((per - u).abs() < 1e-9);
    }

    // Queued with the document and the review, ready for the review page.
    let store = hone_ops::open_store(Some(db.to_str().unwrap()), None).unwrap();
    let items = store
        .review_items(&hone_ops::review::ReviewQuery {
            pending: Some(true),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(items.len(), 3);
    let src: Vec<&serde_json::Value> = lines.iter().collect();
    for it in &items {
        assert_eq!(it.input["task"], "review");
        let id = it.input["doc_id"].as_str().unwrap();
        let doc = src.iter().find(|l| l["id"] == id).unwrap();
        assert_eq!(it.input["text"], doc["text"]);
        assert_eq!(it.input["spans"], doc["spans"]);
        // the page and from-feedback read it: every evidence span is one of the document's
        let input = hone_ops::review_doc::ReviewInput::parse(&it.input).unwrap();
        let answer = hone_ops::review_doc::parse_answer("output", &it.output, &input).unwrap();
        assert_eq!(answer.checks.len(), 17);
        // proposed evidence: none for NotMentioned, one to three spans for a decided check
        for c in answer.checks.values() {
            if c.label == "NotMentioned" {
                assert!(c.evidence.is_empty());
            } else {
                assert!((1..=3).contains(&c.evidence.len()), "{c:?}");
            }
        }
        let r: serde_json::Value = serde_json::from_str(&it.output).unwrap();
        assert_eq!(r["doc_id"], id);
        assert_eq!(r["checks"].as_object().unwrap().len(), 17);
        // confidence: the mean log-probability of the 17 chosen labels
        let lp = r["checks"]
            .as_object()
            .unwrap()
            .values()
            .map(|c| {
                c["probs"][c["label"].as_str().unwrap()]
                    .as_f64()
                    .unwrap()
                    .ln()
            })
            .sum::<f64>()
            / 17.0;
        assert!((it.mean_logprob.unwrap() - lp).abs() < 1e-9);
    }

    // --by nli: each check's entailed-or-contradicted entropy times P(addressed), summed.
    let nli_sums: Vec<(String, f64)> = reviews[..3]
        .iter()
        .map(|r| {
            let sum = r["checks"]
                .as_object()
                .unwrap()
                .values()
                .map(|c| {
                    let (e, k) = (
                        c["probs"]["Entailment"].as_f64().unwrap(),
                        c["probs"]["Contradiction"].as_f64().unwrap(),
                    );
                    let h: f64 = [e / (e + k), k / (e + k)]
                        .iter()
                        .filter(|&&q| q > 0.0)
                        .map(|&q| -q * q.ln())
                        .sum();
                    (e + k) * h
                })
                .sum();
            (r["doc_id"].as_str().unwrap().to_string(), sum)
        })
        .collect();
    let mut nli_order = nli_sums.clone();
    nli_order.sort_by(|a, b| b.1.total_cmp(&a.1));
    let nli_picks = d.join("nli-picks.jsonl");
    select_three(&ad, &pool, &["--by", "nli"], &d.join("nli.db"), &nli_picks);
    let got = read_jsonl(&nli_picks);
    assert_eq!(got.len(), 3);
    for (g, want) in got.iter().zip(&nli_order) {
        assert_eq!(
            g["doc_id"].as_str().unwrap(),
            want.0,
            "{got:?} vs {nli_order:?}"
        );
        let u = g["uncertainty"].as_f64().unwrap();
        assert!((u - want.1).abs() < 1e-6, "{u} vs {}", want.1);
        // never above the summed three-label entropy of the same document
        let all = sums.iter().find(|x| x.0 == want.0).unwrap().1;
        assert!(u <= all + 1e-9, "{u} > {all}");
    }

    // Entropy ranks label distributions: a chat adapter is told so.
    let chat = d.join("chat");
    zero_review_adapter(&chat);
    std::fs::remove_file(chat.join("train_config.toml")).unwrap();
    let out = hone(&[
        "data",
        "select",
        "--adapter",
        &s(&chat),
        "--pool",
        &s(&pool),
        "--budget",
        "1",
        "--by",
        "entropy",
        "--store",
        &s(&db),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("is not a review adapter"), "{err}");
}
