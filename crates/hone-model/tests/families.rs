//! Every model family hone runs (llama, mistral, qwen2, qwen3, phi3) against transformers, on
//! the tiny random checkpoints `scripts/fixtures/families.py` made with transformers, PEFT and
//! the `gguf` package (committed under `tests/fixtures/families/<family>/`, see its README):
//!
//! - f32 logits of a 48-token sequence equal transformers' within 1e-4 (Mistral's window is 16
//!   tokens, so its sliding window is exercised; Qwen3's head size is not hidden / heads);
//! - greedy generation through the KV cache gives transformers' 32 tokens;
//! - PEFT's own adapter (Phi-3: fused `qkv_proj` / `gate_up_proj`) loads in hone with PEFT's
//!   logits, and survives hone's save / load in the base's PEFT names;
//! - the GGUF written with llama.cpp's names loads and gives the HF form's logits;
//! - the chat template renders as transformers' `apply_chat_template`, and the training spans
//!   are exactly the assistant contents with their end-of-turn markers.

use std::path::{Path, PathBuf};

use hone_model::chat_template::{ChatTemplate, Message};
use hone_model::config::ModelType;
use hone_model::peft::{AdapterExtra, FusedRows};
use hone_model::{
    generate, load_adapter, save_adapter, GenRequest, LoadOptions, LoadedModel, SamplingParams,
    WeightMode,
};
use serde_json::Value;

const FAMILIES: [&str; 6] = ["llama", "mistral", "qwen2", "qwen3", "phi3", "gemma3"];

fn dir(family: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/families")
        .join(family)
}

fn reference(family: &str) -> Value {
    let p = dir(family).join("reference.json");
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p:?}: {e}")))
        .unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("a list of token ids")
        .iter()
        .map(|x| x.as_u64().expect("token id") as u32)
        .collect()
}

fn read_f32(p: &Path) -> Vec<f32> {
    let b = std::fs::read(p).unwrap_or_else(|e| panic!("{p:?}: {e}"));
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn f32_opts() -> LoadOptions {
    LoadOptions {
        weights: WeightMode::F32,
    }
}

fn load_hf(family: &str) -> LoadedModel {
    LoadedModel::load_hf(&dir(family), &f32_opts())
        .unwrap_or_else(|e| panic!("{family}: loading the HF folder: {e}"))
}

/// Largest absolute difference, and the largest reference magnitude (for the message).
fn max_diff(ours: &[f32], want: &[f32]) -> (f32, f32) {
    assert_eq!(ours.len(), want.len(), "logits sizes differ");
    let d = ours
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    (d, want.iter().map(|v| v.abs()).fold(0f32, f32::max))
}

#[test]
fn every_family_loads_with_its_own_shape() {
    let want = [
        ("llama", ModelType::Llama),
        ("mistral", ModelType::Mistral),
        ("qwen2", ModelType::Qwen2),
        ("qwen3", ModelType::Qwen3),
        ("phi3", ModelType::Phi3),
        ("gemma3", ModelType::Gemma3),
    ];
    for (family, ty) in want {
        let m = load_hf(family);
        let c = &m.model.config;
        assert_eq!(c.model_type, ty, "{family}");
        match ty {
            ModelType::Mistral => assert_eq!(c.sliding_window, Some(16), "{family}"),
            ModelType::Qwen2 => assert!(c.qkv_bias() && m.model.tied_embeddings, "{family}"),
            ModelType::Qwen3 => {
                assert_eq!(c.head_dim(), 32, "{family}: head_dim from the config");
                assert!(m.model.layers.iter().all(|b| b.q_norm.is_some()));
            }
            ModelType::Phi3 => assert!(c.fused_projections() && c.rope_scaling.is_some()),
            ModelType::Gemma3 => {
                assert!(c.gemma_style() && m.model.tied_embeddings, "{family}");
                assert_eq!(c.layer_window(0), Some(16), "{family}: a local layer");
                assert_eq!(
                    c.layer_window(c.num_hidden_layers - 1),
                    None,
                    "{family}: global"
                );
                assert!(m.model.layers.iter().all(|b| b.post_ffn_norm.is_some()));
            }
            ModelType::Llama => {}
        }
    }
}

#[test]
fn f32_logits_equal_transformers_within_1e_4() {
    for family in FAMILIES {
        let r = reference(family);
        let m = load_hf(family);
        let tokens = ids(&r["tokens"]);
        let ours = m.model.logits_all(&tokens).unwrap();
        let want = read_f32(&dir(family).join(r["logits"].as_str().unwrap()));
        let (d, mag) = max_diff(&ours, &want);
        println!(
            "{family}: max |logit diff| {d:.2e} over {} tokens (max |logit| {mag:.2})",
            tokens.len()
        );
        assert!(
            d <= 1e-4,
            "{family}: logits differ from transformers by {d:e}"
        );
    }
}

#[test]
fn greedy_generation_through_the_cache_equals_transformers() {
    for family in FAMILIES {
        let r = reference(family);
        let m = load_hf(family);
        let prompt = ids(&r["greedy"]["prompt"]);
        let want = ids(&r["greedy"]["new_tokens"]);
        let out = generate(
            &m.model,
            &m.tokenizer,
            &[GenRequest {
                prompt,
                max_tokens: want.len(),
                sampling: SamplingParams::greedy(),
                stop_strings: Vec::new(),
                stop_tokens: Vec::new(),
            }],
            |_, _| {},
        )
        .unwrap();
        assert_eq!(out[0].tokens, want, "{family}: greedy tokens");
    }
}

#[test]
fn peft_adapters_load_with_peft_logits_and_round_trip_in_the_base_names() {
    for family in FAMILIES {
        let r = reference(family);
        let d = dir(family);
        let tokens = ids(&r["tokens"]);
        let adir = d.join(r["adapter"]["dir"].as_str().unwrap());
        let adapter = load_adapter(&adir).unwrap_or_else(|e| panic!("{family}: {e}"));
        let mut m = load_hf(family);
        m.model.attach_adapter(&adapter).unwrap();
        let ours = m.model.logits_all(&tokens).unwrap();
        let want = read_f32(&d.join(r["adapter"]["logits"].as_str().unwrap()));
        let (diff, _) = max_diff(&ours, &want);
        let plain = read_f32(&d.join(r["logits"].as_str().unwrap()));
        let (moved, _) = max_diff(&want, &plain);
        println!("{family}: PEFT adapter, max |logit diff| {diff:.2e} (the adapter moves logits by up to {moved:.2})");
        assert!(
            moved > 0.05,
            "{family}: the fixture adapter barely changes the model"
        );
        assert!(
            diff <= 1e-3,
            "{family}: adapter logits differ from PEFT by {diff:e}"
        );

        // Saved in the base's PEFT names (Phi-3: fused) and read back: the same logits.
        let tmp = tempfile::tempdir().unwrap();
        let extra = AdapterExtra {
            fused: FusedRows::of(&m.model.config),
            n_layers: Some(m.model.layers.len()),
            ..Default::default()
        };
        save_adapter(tmp.path(), &adapter, family, &extra).unwrap();
        let cfg: Value = serde_json::from_str(
            &std::fs::read_to_string(tmp.path().join("adapter_config.json")).unwrap(),
        )
        .unwrap();
        let written: Vec<&str> = cfg["target_modules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let peft_cfg: Value = serde_json::from_str(
            &std::fs::read_to_string(adir.join("adapter_config.json")).unwrap(),
        )
        .unwrap();
        let mut theirs: Vec<&str> = peft_cfg["target_modules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let mut ours_sorted = written.clone();
        theirs.sort_unstable();
        ours_sorted.sort_unstable();
        assert_eq!(
            ours_sorted, theirs,
            "{family}: module names as PEFT writes them"
        );
        let back = load_adapter(tmp.path()).unwrap();
        let mut m2 = load_hf(family);
        m2.model.attach_adapter(&back).unwrap();
        assert_eq!(
            m2.model.logits_all(&tokens).unwrap(),
            ours,
            "{family}: round trip"
        );
    }
}

#[test]
fn gguf_files_load_and_match_the_hf_form() {
    for family in FAMILIES {
        let r = reference(family);
        let d = dir(family);
        let n = r["gguf"]["tokens_compared"].as_u64().unwrap() as usize;
        let tokens = &ids(&r["tokens"])[..n];
        let g = LoadedModel::load_gguf(&d.join(r["gguf"]["file"].as_str().unwrap()), &f32_opts())
            .unwrap_or_else(|e| panic!("{family}: loading the GGUF: {e}"));
        let h = load_hf(family);
        assert_eq!(
            g.model.config.model_type.gguf_permutes_qk(),
            h.model.config.model_type.gguf_permutes_qk()
        );
        let (d_logits, _) = max_diff(
            &g.model.logits_all(tokens).unwrap(),
            &h.model.logits_all(tokens).unwrap(),
        );
        println!("{family}: GGUF vs HF, max |logit diff| {d_logits:.2e} over {n} tokens");
        assert!(
            d_logits <= 1e-4,
            "{family}: GGUF logits differ by {d_logits:e}"
        );
        // The tokenizer in the GGUF encodes as the HF tokenizer.json does.
        let text = "The Receiving Party shall hold Confidential Information in confidence.";
        assert_eq!(
            g.tokenizer.encode(text, false).unwrap(),
            h.tokenizer.encode(text, false).unwrap(),
            "{family}: GGUF tokenizer"
        );
    }
}

fn messages(chat: &Value) -> Vec<Message> {
    chat["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| Message::new(m["role"].as_str().unwrap(), m["content"].as_str().unwrap()))
        .collect()
}

/// Byte offset of character offset `c` in `s` (Python counts characters).
fn byte_at(s: &str, c: usize) -> usize {
    s.char_indices().nth(c).map_or(s.len(), |(b, _)| b)
}

#[test]
fn chat_templates_render_as_transformers_and_spans_cover_the_assistant_turns() {
    for family in FAMILIES {
        let d = dir(family);
        let chat: Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("chat.json")).unwrap()).unwrap();
        let t = ChatTemplate::from_tokenizer_config(&d.join("tokenizer_config.json")).unwrap();
        let msgs = messages(&chat);
        let rendered = chat["rendered"].as_str().unwrap();
        assert_eq!(
            t.render(&msgs, false).unwrap(),
            rendered,
            "{family}: conversation"
        );
        assert_eq!(
            t.render(&msgs[..msgs.len() - 1], true).unwrap(),
            chat["rendered_generation_prompt"].as_str().unwrap(),
            "{family}: generation prompt"
        );
        let (text, spans) = t.render_with_spans(&msgs).unwrap();
        assert_eq!(text, rendered);
        let want: Vec<std::ops::Range<usize>> = chat["assistant_spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                byte_at(rendered, s[0].as_u64().unwrap() as usize)
                    ..byte_at(rendered, s[1].as_u64().unwrap() as usize)
            })
            .collect();
        let show = |v: &[std::ops::Range<usize>]| -> Vec<String> {
            v.iter().map(|r| rendered[r.clone()].to_string()).collect()
        };
        assert_eq!(show(&spans), show(&want), "{family}: assistant spans");
    }
}

#[test]
fn merged_models_write_back_in_each_familys_layout() {
    for family in FAMILIES {
        let r = reference(family);
        let d = dir(family);
        let tokens = ids(&r["tokens"]);
        let adapter = load_adapter(&d.join(r["adapter"]["dir"].as_str().unwrap())).unwrap();
        let mut m = load_hf(family);
        m.model.attach_adapter(&adapter).unwrap();
        let want = m.model.logits_all(&tokens).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("merged");
        hone_model::hf_export::write_hf_model(&m, &out).unwrap();
        // Tensor names as transformers writes them for the family (Phi-3: fused).
        let orig = std::fs::read(d.join("model.safetensors")).unwrap();
        let merged = std::fs::read(out.join("model.safetensors")).unwrap();
        let names = |b: &[u8]| {
            let mut n: Vec<String> = safetensors::SafeTensors::deserialize(b)
                .unwrap()
                .names()
                .into_iter()
                .map(String::from)
                .collect();
            n.sort();
            n
        };
        assert_eq!(names(&merged), names(&orig), "{family}: tensor names");
        let back = LoadedModel::load_hf(&out, &f32_opts()).unwrap();
        let (diff, _) = max_diff(&back.model.logits_all(&tokens).unwrap(), &want);
        assert!(diff <= 1e-4, "{family}: merged model differs by {diff:e}");
    }
}

#[test]
fn tool_blocks_render_as_transformers() {
    for family in FAMILIES {
        let text = std::fs::read_to_string(dir(family).join("chat.json")).unwrap();
        let chat: Value = serde_json::from_str(&text).unwrap();
        let want = chat["rendered_with_tools"].as_str().unwrap();
        // The tools' JSON text in the file's key order (serde_json's map would sort it).
        let ordered: minijinja::Value = serde_json::from_str(&text).unwrap();
        let tools = serde_json::to_string(&ordered.get_attr("tools").unwrap()).unwrap();
        let t = ChatTemplate::from_tokenizer_config(&dir(family).join("tokenizer_config.json"))
            .unwrap();
        let msgs = messages(&chat);
        let got = t
            .render_with_tools(&msgs[..msgs.len() - 1], &tools, true)
            .unwrap();
        assert_eq!(got, want, "{family}: conversation with tools");
    }
}
