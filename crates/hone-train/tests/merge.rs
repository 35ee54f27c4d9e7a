//! `hone adapter merge`: base + adapter folded into a Hugging Face folder gives the logits of
//! the base with the adapter attached (tiny random models, tied and untied; the real SmolLM2
//! when it is cached), and the merge refuses what it cannot do.

mod common;

use std::path::Path;

use common::*;
use hone_model::chat_template::Message;
use hone_model::peft::{save_adapter, AdapterExtra};
use hone_model::{LoadOptions, LoadedModel, WeightMode};
use hone_train::merge::merge_adapter;

fn load(p: &Path, weights: WeightMode) -> LoadedModel {
    LoadedModel::load(p.to_str().unwrap(), &LoadOptions { weights }).unwrap()
}

fn tiny_merge_case(tied: bool) {
    let d = tempfile::tempdir().unwrap();
    let base_dir = d.path().join("base");
    write_tiny_hf(&base_dir, 7, tied);
    let base = load(&base_dir, WeightMode::Native);
    let adapter = random_adapter(
        &base.model,
        4,
        8.0,
        &hone_model::llama::MODULES,
        &[0, 2],
        11,
        0.5,
    );
    let adapter_dir = d.path().join("adapter");
    save_adapter(
        &adapter_dir,
        &adapter,
        base_dir.to_str().unwrap(),
        &AdapterExtra::default(),
    )
    .unwrap();

    let out = d.path().join("merged");
    let summary = merge_adapter(base_dir.to_str().unwrap(), &adapter_dir, &out).unwrap();
    assert_eq!(summary.merged_modules, 14);
    assert_eq!(summary.tensors, 2 + LAYERS * 9 + usize::from(!tied));
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["torch_dtype"], "float32");
    assert_eq!(cfg["tie_word_embeddings"], tied);
    let st = std::fs::read(out.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&st).unwrap();
    assert_eq!(st.names().contains(&"lm_head.weight"), !tied);
    assert!(st
        .tensors()
        .iter()
        .all(|(_, v)| v.dtype() == safetensors::Dtype::F32));

    let toks = tokens(20, VOCAB, 3);
    let plain = base.model.logits_all(&toks).unwrap();
    let mut with = load(&base_dir, WeightMode::Native);
    with.model.attach_adapter(&adapter).unwrap();
    let want = with.model.logits_all(&toks).unwrap();
    let merged = load(&out, WeightMode::Native);
    let got = merged.model.logits_all(&toks).unwrap();
    let diff = max_rel_diff(&got, &want);
    let effect = max_rel_diff(&plain, &want);
    eprintln!("tiny (tied = {tied}): merged vs attached {diff:.2e}; adapter effect {effect:.2e}");
    assert!(
        effect > 1e-2,
        "the adapter should change the logits ({effect})"
    );
    assert!(diff < 1e-4, "merged vs base + adapter: {diff}");

    // Tokenizer and chat template carried over.
    let msgs = [Message::user("w5 w6 w7")];
    assert_eq!(
        merged.template.render(&msgs, true).unwrap(),
        base.template.render(&msgs, true).unwrap()
    );
    assert_eq!(
        merged.tokenizer.encode("w5 w9 w90", false).unwrap(),
        base.tokenizer.encode("w5 w9 w90", false).unwrap()
    );
    assert_eq!(merged.template.eos_token(), "</s>");

    // Merging again into the same folder replaces it.
    merge_adapter(base_dir.to_str().unwrap(), &adapter_dir, &out).unwrap();
    let again = load(&out, WeightMode::Native)
        .model
        .logits_all(&toks)
        .unwrap();
    assert_eq!(again, got);
}

#[test]
fn tiny_tied_merged_folder_gives_the_adapted_logits() {
    tiny_merge_case(true);
}

#[test]
fn tiny_untied_merged_folder_gives_the_adapted_logits() {
    tiny_merge_case(false);
}

#[test]
fn merge_errors_are_clear() {
    let d = tempfile::tempdir().unwrap();
    let base_dir = d.path().join("base");
    write_tiny_hf(&base_dir, 1, true);
    let base = load(&base_dir, WeightMode::Native);
    let b = base_dir.to_str().unwrap();

    // No adapter there.
    let e = merge_adapter(b, &d.path().join("nope"), &d.path().join("o1"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("nope") && e.contains("adapter_config.json"),
        "{e}"
    );

    // An adapter for another model shape.
    let mut adapter = random_adapter(&base.model, 2, 4.0, &["q_proj"], &[1], 2, 0.1);
    let m = adapter.modules.values_mut().next().unwrap();
    m.in_f = 32;
    m.a.truncate(2 * 32);
    let adir = d.path().join("wrong");
    save_adapter(&adir, &adapter, b, &AdapterExtra::default()).unwrap();
    let e = merge_adapter(b, &adir, &d.path().join("o2"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("wrong") && e.contains("does not fit the base model"),
        "{e}"
    );
    assert!(e.contains("layer 1 q_proj"), "{e}");
    assert!(!d.path().join("o2").exists(), "nothing written on error");

    // An adapter for a layer the model does not have.
    let mut adapter = random_adapter(&base.model, 2, 4.0, &["q_proj"], &[1], 2, 0.1);
    let m = adapter.modules.remove(&(1, "q_proj".to_string())).unwrap();
    adapter.modules.insert((9, "q_proj".to_string()), m);
    adapter.spec.layers = vec![9];
    save_adapter(&adir, &adapter, b, &AdapterExtra::default()).unwrap();
    let e = merge_adapter(b, &adir, &d.path().join("o3"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("layer 9 does not exist"), "{e}");

    // An output folder holding other weights.
    let good = random_adapter(&base.model, 2, 4.0, &["q_proj"], &[1], 2, 0.1);
    save_adapter(&adir, &good, b, &AdapterExtra::default()).unwrap();
    let out = d.path().join("o4");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("model-00001-of-00002.safetensors"), b"x").unwrap();
    let e = merge_adapter(b, &adir, &out).unwrap_err().to_string();
    assert!(e.contains("already holds other weights"), "{e}");
    // An output path that is a file.
    let f = d.path().join("file");
    std::fs::write(&f, b"x").unwrap();
    let e = merge_adapter(b, &adir, &f).unwrap_err().to_string();
    assert!(e.contains("not a folder"), "{e}");
}

#[test]
fn smollm2_merged_folder_matches_attached_gguf() {
    let Some(gguf) = smollm2() else { return };
    let d = tempfile::tempdir().unwrap();
    let mut with = load(&gguf, WeightMode::F32);
    let n = with.model.layers.len();
    let layers: Vec<usize> = (0..n).collect();
    let adapter = random_adapter(
        &with.model,
        8,
        16.0,
        &["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"],
        &layers,
        5,
        0.02,
    );
    let adir = d.path().join("adapter");
    save_adapter(
        &adir,
        &adapter,
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        &AdapterExtra {
            n_layers: Some(n),
            ..Default::default()
        },
    )
    .unwrap();
    let out = d.path().join("merged");
    merge_adapter(gguf.to_str().unwrap(), &adir, &out).unwrap();

    let msgs = [Message::user("What is a non-disclosure agreement?")];
    let text = with.template.render(&msgs, true).unwrap();
    let toks = with.tokenizer.encode(&text, true).unwrap();
    let plain = with.model.logits_all(&toks).unwrap();
    with.model.attach_adapter(&adapter).unwrap();
    let want = with.model.logits_all(&toks).unwrap();
    drop(with);
    let merged = load(&out, WeightMode::F32);
    assert_eq!(merged.tokenizer.encode(&text, true).unwrap(), toks);
    assert_eq!(merged.template.render(&msgs, true).unwrap(), text);
    let got = merged.model.logits_all(&toks).unwrap();
    let diff = max_rel_diff(&got, &want);
    let effect = max_rel_diff(&plain, &want);
    eprintln!(
        "SmolLM2 ({} tokens): merged folder vs GGUF + adapter {diff:.2e}; adapter effect {effect:.2e}",
        toks.len()
    );
    assert!(
        effect > 1e-2,
        "the adapter should change the logits ({effect})"
    );
    assert!(diff < 1e-4, "merged vs base + adapter: {diff}");
}
