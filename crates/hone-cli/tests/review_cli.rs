//! `hone review` on bad inputs, through the binary: a clear error naming the file (exit status
//! 1), or a result flagged as low confidence, and never a panic.

use std::path::Path;
use std::process::{Command, Output};

fn hone(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hone"))
        .args(args)
        .env("HONE_THREADS", "2")
        .output()
        .expect("hone runs")
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

fn fails_with(out: &Output, file: &Path, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let name = file.file_name().unwrap().to_string_lossy();
    assert!(err.contains(name.as_ref()), "names {name}: {err}");
    assert!(err.contains(needle), "expected `{needle}` in: {err}");
}

/// A PEFT adapter folder with a zero LoRA pair of rank `r` on layer 0's q_proj, for a base
/// whose hidden size is `hidden` and whose name is `base`.
fn zero_adapter(ad: &Path, r: usize, hidden: usize, base: &str) {
    std::fs::create_dir_all(ad).unwrap();
    std::fs::write(
        ad.join("adapter_config.json"),
        format!(
            r#"{{"peft_type":"LORA","r":{r},"lora_alpha":{r},"target_modules":["q_proj"],"base_model_name_or_path":"{base}","layers_to_transform":[0]}}"#
        ),
    )
    .unwrap();
    let shapes = [("A", vec![r, hidden]), ("B", vec![hidden, r])];
    let names: Vec<String> = shapes
        .iter()
        .map(|(m, _)| format!("base_model.model.model.layers.0.self_attn.q_proj.lora_{m}.weight"))
        .collect();
    let data: Vec<Vec<u8>> = shapes
        .iter()
        .map(|(_, s)| vec![0u8; s.iter().product::<usize>() * 4])
        .collect();
    let views: Vec<(&str, safetensors::tensor::TensorView)> = names
        .iter()
        .zip(&shapes)
        .zip(&data)
        .map(|((n, (_, s)), d)| {
            (
                n.as_str(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), d)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &ad.join("adapter_model.safetensors")).unwrap();
}

#[test]
fn empty_binary_and_oversized_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap();
    fails_with(
        &hone(&["review", empty.to_str().unwrap()]),
        &empty,
        "is empty",
    );

    let bin = dir.path().join("scan.txt");
    let bytes: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    std::fs::write(&bin, bytes).unwrap();
    fails_with(
        &hone(&["review", bin.to_str().unwrap()]),
        &bin,
        "is not text",
    );

    // A 5 MB contract: over the default limit, refused at once with the way out named.
    let big = dir.path().join("huge-nda.txt");
    let para = "The Recipient shall keep the Confidential Information secret. ";
    std::fs::write(&big, para.repeat(5_000_000 / para.len())).unwrap();
    let out = hone(&["review", big.to_str().unwrap()]);
    fails_with(&out, &big, "--max-chars");

    let pdf = dir.path().join("broken.pdf");
    std::fs::write(&pdf, b"%PDF-1.4\n\x00\x01garbage").unwrap();
    fails_with(&hone(&["review", pdf.to_str().unwrap()]), &pdf, "PDF");
}

#[test]
fn a_non_english_contract_is_reviewed_with_a_low_confidence_warning() {
    if !model_cached() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let de = dir.path().join("vertrag.txt");
    std::fs::write(
        &de,
        "Geheimhaltungsvereinbarung\nDer Empfänger verpflichtet sich, alle vertraulichen \
         Informationen streng geheim zu halten und sie nur für den vereinbarten Zweck zu \
         verwenden.\nDie Verpflichtungen bleiben nach Beendigung dieser Vereinbarung für fünf \
         Jahre bestehen.\nAuf Verlangen sind alle Unterlagen zurückzugeben oder zu vernichten.\n",
    )
    .unwrap();
    let out = hone(&["review", de.to_str().unwrap(), "--format", "json"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("does not look like English"), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["doc_id"], "vertrag");
    assert_eq!(v["checks"].as_object().unwrap().len(), 17);
    assert!(v["warnings"][0]
        .as_str()
        .unwrap()
        .contains("low confidence"));
}

#[test]
fn an_adapter_for_another_base_is_refused() {
    if !model_cached() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nda = dir.path().join("nda.txt");
    std::fs::write(
        &nda,
        "1. The Recipient shall keep all Confidential Information secret.\n",
    )
    .unwrap();
    // A PEFT adapter whose q_proj is 64 x 64, as for a much smaller model.
    let ad = dir.path().join("tiny-adapter");
    zero_adapter(&ad, 4, 64, "tiny");
    let out = hone(&[
        "review",
        nda.to_str().unwrap(),
        "--adapter",
        ad.to_str().unwrap(),
    ]);
    fails_with(&out, &ad, "another base model");
}

/// The TF-IDF + logistic-regression baseline needs no model: trained on synthetic NDAs, its
/// review output is what `hone eval contractnli` scores, and it learns the clauses.
#[test]
fn the_tfidf_baseline_reviews_and_is_scored_like_an_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let ok = |out: Output| {
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{err}");
        err
    };
    ok(hone(&[
        "data",
        "synth",
        "nda",
        "--docs",
        "40",
        "--seed",
        "3",
        "--out",
        &s(&d.join("data")),
    ]));
    ok(hone(&[
        "data",
        "split",
        &s(&d.join("data/documents.jsonl")),
        "--sizes",
        "24,6,10",
        "--seed",
        "3",
        "--out",
        &s(&d.join("split")),
    ]));
    let pred = d.join("pred.jsonl");
    let err = ok(hone(&[
        "review",
        &s(&d.join("split/test.jsonl")),
        "--tfidf-from",
        &s(&d.join("split/train.jsonl")),
        "--tfidf-valid",
        &s(&d.join("split/valid.jsonl")),
        "--max-evidence",
        "0",
        "--format",
        "jsonl",
        "--out",
        &s(&pred),
    ]));
    assert!(err.contains("on 24 training documents"), "{err}");
    let out = hone(&[
        "eval",
        "contractnli",
        "--gold",
        &s(&d.join("split/test.jsonl")),
        "--pred",
        &s(&pred),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Synthetic clauses are lexically distinct: a bag of words gets them nearly all.
    for k in ["acc3", "evidence_map"] {
        let v = m[k].as_f64().unwrap_or_else(|| panic!("{k} in {m}"));
        assert!(v > 0.9, "{k} = {v}: {m}");
    }

    // It cannot be combined with a model's adapter, and bad training data is named.
    let out = hone(&[
        "review",
        &s(&d.join("split/test.jsonl")),
        "--tfidf-from",
        &s(&d.join("split/train.jsonl")),
        "--adapter",
        &s(d),
    ]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = d.join("bad.jsonl");
    std::fs::write(&bad, "{\"id\": 1, \"text\": 5}\n").unwrap();
    fails_with(
        &hone(&[
            "review",
            &s(&d.join("split/test.jsonl")),
            "--tfidf-from",
            &s(&bad),
        ]),
        &bad,
        "line 1",
    );
}

/// An adapter whose calibration weighs a TF-IDF classifier that is not there is refused with
/// the way out named, not reviewed without it.
#[test]
fn a_missing_tfidf_classifier_is_a_clear_error() {
    if !model_cached() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nda = dir.path().join("nda.txt");
    std::fs::write(
        &nda,
        "1. The Recipient shall keep all Confidential Information secret.\n",
    )
    .unwrap();
    let ad = dir.path().join("adapter");
    zero_adapter(&ad, 1, 576, "smollm2");
    std::fs::write(
        ad.join("review.json"),
        r#"{"calibration":{"mentioned":0.4,"entailment":0.5},"max_window":1000,"tfidf_weight":0.4}"#,
    )
    .unwrap();
    let out = hone(&[
        "review",
        nda.to_str().unwrap(),
        "--adapter",
        ad.to_str().unwrap(),
    ]);
    fails_with(
        &out,
        &ad.join("review.json"),
        "tfidf.safetensors is missing",
    );
}

/// A review run whose calibration was cut short (a full disk after training, a crash) leaves
/// an adapter without `review.json` and `tfidf.safetensors`: it is refused, naming the folder
/// and the missing file and how to finish the run, not reviewed with default thresholds.
#[test]
fn an_unfinished_calibration_is_refused() {
    if !model_cached() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nda = dir.path().join("nda.txt");
    std::fs::write(
        &nda,
        "1. The Recipient shall keep all Confidential Information secret.\n",
    )
    .unwrap();
    let ad = dir.path().join("review-run");
    zero_adapter(&ad, 1, 576, "smollm2");
    std::fs::write(
        ad.join("train_config.toml"),
        "[model]\nbase = \"smollm2\"\n[data]\ntrain = \"train.jsonl\"\n\
         validation = \"valid.jsonl\"\nformat = \"review\"\n",
    )
    .unwrap();
    let review = |ad: &Path| {
        hone(&[
            "review",
            nda.to_str().unwrap(),
            "--adapter",
            ad.to_str().unwrap(),
        ])
    };
    // Training finished, calibration never wrote review.json.
    let out = review(&ad);
    fails_with(&out, &ad, "review.json is missing");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("did not finish"), "{err}");
    assert!(
        err.contains("hone review --calibrate valid.jsonl --adapter")
            && err.contains("hone train --resume"),
        "{err}"
    );

    // A calibration that started (its marker is there) and stopped before review.json, on a
    // run without validation documents in its config: refused too.
    std::fs::write(
        ad.join("train_config.toml"),
        "[model]\nbase = \"smollm2\"\n[data]\ntrain = \"train.jsonl\"\nformat = \"review\"\n",
    )
    .unwrap();
    std::fs::write(ad.join("calibration.incomplete"), "").unwrap();
    fails_with(&review(&ad), &ad, "calibration.incomplete is still there");

    // Rerunning the calibration finishes the folder: review.json written, the marker gone,
    // and the adapter reviews again.
    let data = dir.path().join("data");
    let ok = |out: Output| {
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{err}");
    };
    ok(hone(&[
        "data",
        "synth",
        "nda",
        "--docs",
        "2",
        "--seed",
        "5",
        "--out",
        data.to_str().unwrap(),
    ]));
    ok(hone(&[
        "review",
        "--calibrate",
        data.join("documents.jsonl").to_str().unwrap(),
        "--adapter",
        ad.to_str().unwrap(),
    ]));
    assert!(ad.join("review.json").is_file());
    assert!(ad.join("validation.json").is_file());
    assert!(!ad.join("calibration.incomplete").exists());
    ok(review(&ad));

    // A review adapter never calibrated (no validation documents, no calibration files) is
    // still reviewed, with default thresholds.
    std::fs::remove_file(ad.join("review.json")).unwrap();
    std::fs::remove_file(ad.join("validation.json")).unwrap();
    ok(review(&ad));
}

/// With no `--adapter`, `hone review` uses the NDA review adapter that comes with hone, says
/// so, and gets plain clauses right; `--base-only` reviews with the base model instead.
#[test]
fn without_an_adapter_the_built_in_one_reviews_and_says_so() {
    if !model_cached() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let nda = dir.path().join("mutual-nda.txt");
    std::fs::write(
        &nda,
        "MUTUAL NON-DISCLOSURE AGREEMENT\n\
         1. \"Confidential Information\" means all information disclosed by either party, \
         whether in writing, electronically or orally.\n\
         2. The Receiving Party shall use the Confidential Information solely for the purpose \
         of evaluating the proposed business relationship.\n\
         3. The Receiving Party shall not reverse engineer, decompile or disassemble any \
         prototypes, software or other tangible objects which embody the Disclosing Party's \
         Confidential Information.\n\
         4. Upon the written request of the Disclosing Party, the Receiving Party shall promptly \
         return or destroy all Confidential Information and all copies thereof.\n\
         5. The obligations of this Agreement shall survive its termination for a period of \
         five (5) years.\n\
         6. This Agreement shall be governed by the laws of the State of New York.\n",
    )
    .unwrap();
    let out = hone(&["review", nda.to_str().unwrap(), "--format", "json"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("built-in NDA review adapter `nda-review`"),
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let checks = v["checks"].as_object().unwrap();
    assert_eq!(checks.len(), 17);
    // Each of these is stated outright by one clause, which is its best evidence.
    for (check, clause) in [
        ("nda-3", "orally"),
        ("nda-4", "solely for the purpose"),
        ("nda-11", "reverse engineer"),
        ("nda-16", "return or destroy"),
        ("nda-19", "survive"),
    ] {
        let c = &checks[check];
        assert_eq!(c["label"], "Entailment", "{check}: {c}");
        let top = c["evidence"][0]["text"].as_str().unwrap_or("");
        assert!(top.contains(clause), "{check}: best evidence {top:?}");
    }
    // Nothing in this contract is about soliciting employees.
    assert_eq!(checks["nda-18"]["label"], "NotMentioned");

    // The base model alone: the warning, and no adapter named.
    let out = hone(&[
        "review",
        nda.to_str().unwrap(),
        "--base-only",
        "--format",
        "json",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("close to chance") && !err.contains("nda-review"),
        "{err}"
    );
}

/// The built-in adapter belongs to one base model: with another one and no `--adapter` the
/// error names both ways out, before any model is loaded.
#[test]
fn the_built_in_adapter_is_refused_for_another_base_model() {
    let dir = tempfile::tempdir().unwrap();
    let nda = dir.path().join("nda.txt");
    std::fs::write(
        &nda,
        "1. The Recipient shall keep all information secret.\n",
    )
    .unwrap();
    let other = dir.path().join("other.gguf");
    std::fs::write(&other, b"GGUF").unwrap();
    let out = hone(&[
        "review",
        nda.to_str().unwrap(),
        "--model",
        other.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("nda-review") && err.contains("--adapter") && err.contains("--base-only"),
        "{err}"
    );
}

/// `hone adapter pack`: the built-in adapter (bf16) packed as f32 and back as bf16 gives the
/// same weights bit for bit, keeps the review files, reviews as the original does; a folder
/// that holds something is not overwritten without --overwrite, and a folder that is not an
/// adapter is refused with nothing written.
#[test]
fn pack_changes_the_weights_type_and_keeps_the_review_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let src = hone_review::builtin::materialize(
        &d.join("cache"),
        hone_review::builtin::NAME,
        &hone_review::builtin::FILES,
    )
    .unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let wide = d.join("wide");
    let out = hone(&[
        "adapter",
        "pack",
        &s(&src),
        "--out",
        &s(&wide),
        "--dtype",
        "f32",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let weights = "adapter_model.safetensors";
    let narrow_len = std::fs::metadata(src.join(weights)).unwrap().len();
    let wide_len = std::fs::metadata(wide.join(weights)).unwrap().len();
    assert!(
        wide_len > 2 * narrow_len - 100_000,
        "{wide_len} against {narrow_len}"
    );
    for f in [
        "adapter_config.json",
        "review.json",
        "tfidf.safetensors",
        "validation.json",
    ] {
        assert_eq!(
            std::fs::read(src.join(f)).unwrap(),
            std::fs::read(wide.join(f)).unwrap(),
            "{f}"
        );
    }
    let back = d.join("back");
    let out = hone(&["adapter", "pack", &s(&wide), "--out", &s(&back)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Bf16"));
    assert_eq!(
        std::fs::read(src.join(weights)).unwrap(),
        std::fs::read(back.join(weights)).unwrap()
    );

    // Not over a folder that holds something; with --overwrite, yes.
    let out = hone(&["adapter", "pack", &s(&wide), "--out", &s(&back)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--overwrite"));
    let out = hone(&[
        "adapter",
        "pack",
        &s(&wide),
        "--out",
        &s(&back),
        "--overwrite",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A folder that is not an adapter: refused, nothing written, no temporary folder left.
    let empty = d.join("not-an-adapter");
    std::fs::create_dir_all(&empty).unwrap();
    let out = hone(&["adapter", "pack", &s(&empty), "--out", &s(&d.join("x"))]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("adapter_config.json"), "{err}");
    assert!(!d.join("x").exists());
    assert!(std::fs::read_dir(d).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with(".pack-")));

    if !model_cached() {
        return;
    }
    // The f32 copy reviews exactly as the bf16 original: bf16 values are exact in f32.
    let nda = d.join("nda.txt");
    std::fs::write(
        &nda,
        "1. The Recipient shall not reverse engineer any samples.\n\
         2. The obligations hereunder survive termination for three years.\n",
    )
    .unwrap();
    let review = |adapter: &Path| {
        let out = hone(&[
            "review",
            &s(&nda),
            "--adapter",
            &s(adapter),
            "--format",
            "json",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_object_mut().unwrap().remove("timing");
        v
    };
    assert_eq!(review(&src), review(&wide));
}

#[test]
fn bench_review_times_the_peer_unless_told_not_to() {
    if !model_cached() {
        return;
    }
    let bench = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec![
            "bench",
            "review",
            "--base-only",
            "--docs",
            "1",
            "--runs",
            "1",
            "--json",
        ];
        args.extend_from_slice(extra);
        let out = hone(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let both = bench(&[]);
    let alone = bench(&["--no-peer"]);
    for b in [&both, &alone] {
        assert_eq!(b["documents"], 1);
        assert!(b["doc_ms"]["p50"].as_f64().unwrap() > 0.0, "{b}");
        assert!(b["spans_per_doc"].as_f64().unwrap() > 10.0, "{b}");
    }
    // the same document either way
    assert_eq!(both["tokens_per_doc"], alone["tokens_per_doc"]);
    assert!(alone["peer"].is_null(), "{alone}");
    let peer = &both["peer"];
    assert!(peer["doc_ms"]["p50"].as_f64().unwrap() > 0.0, "{both}");
    // the peer reads the prefix once per span, so it runs more tokens than hone
    assert!(
        peer["tokens_per_doc"].as_f64().unwrap() > both["tokens_per_doc"].as_f64().unwrap(),
        "{both}"
    );
}
