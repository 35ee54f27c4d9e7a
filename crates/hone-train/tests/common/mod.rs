//! Shared test helpers: a tiny random llama written as a Hugging Face folder (with a word-level
//! tokenizer, so `LoadedModel::load` reads it), a random non-zero adapter, and the location of
//! the real SmolLM2 GGUF.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hone_model::llama::{Llama, MODULES};
use hone_model::lora::{LoraAdapter, LoraModule, LoraSpec};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub const HIDDEN: usize = 64;
pub const HEADS: usize = 4;
pub const KV_HEADS: usize = 2;
pub const FFN: usize = 128;
pub const LAYERS: usize = 3;
pub const VOCAB: usize = 96;
pub const CTX: usize = 256;

/// Writes a tiny random llama as a Hugging Face folder; `tied` = no `lm_head.weight`.
pub fn write_tiny_hf(dir: &Path, seed: u64, tied: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut rand = |n: usize, scale: f32, offset: f32| -> Vec<f32> {
        (0..n)
            .map(|_| offset + rng.gen_range(-1.0f32..1.0) * scale)
            .collect()
    };
    let hd = HIDDEN / HEADS;
    let mut t: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    t.push((
        "model.embed_tokens.weight".into(),
        vec![VOCAB, HIDDEN],
        rand(VOCAB * HIDDEN, 1.0, 0.0),
    ));
    for i in 0..LAYERS {
        let p = format!("model.layers.{i}");
        t.push((
            format!("{p}.input_layernorm.weight"),
            vec![HIDDEN],
            rand(HIDDEN, 0.2, 1.0),
        ));
        t.push((
            format!("{p}.post_attention_layernorm.weight"),
            vec![HIDDEN],
            rand(HIDDEN, 0.2, 1.0),
        ));
        for (n, o, inp) in [
            ("self_attn.q_proj", HEADS * hd, HIDDEN),
            ("self_attn.k_proj", KV_HEADS * hd, HIDDEN),
            ("self_attn.v_proj", KV_HEADS * hd, HIDDEN),
            ("self_attn.o_proj", HIDDEN, HEADS * hd),
            ("mlp.gate_proj", FFN, HIDDEN),
            ("mlp.up_proj", FFN, HIDDEN),
            ("mlp.down_proj", HIDDEN, FFN),
        ] {
            t.push((
                format!("{p}.{n}.weight"),
                vec![o, inp],
                rand(o * inp, 0.3, 0.0),
            ));
        }
    }
    t.push((
        "model.norm.weight".into(),
        vec![HIDDEN],
        rand(HIDDEN, 0.2, 1.0),
    ));
    if !tied {
        t.push((
            "lm_head.weight".into(),
            vec![VOCAB, HIDDEN],
            rand(VOCAB * HIDDEN, 0.5, 0.0),
        ));
    }
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = t
        .into_iter()
        .map(|(n, s, v)| (n, s, v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let views: Vec<_> = bytes
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
    let cfg = serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "intermediate_size": FFN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "max_position_embeddings": CTX,
        "vocab_size": VOCAB,
        "tie_word_embeddings": tied,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": "float32"
    });
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    // A word-level vocabulary: "<unk>", "<s>", "</s>", then w3 .. w95.
    let mut vocab = serde_json::Map::new();
    for i in 0..VOCAB {
        let tok = match i {
            0 => "<unk>".to_string(),
            1 => "<s>".to_string(),
            2 => "</s>".to_string(),
            _ => format!("w{i}"),
        };
        vocab.insert(tok, serde_json::json!(i));
    }
    let special = |id: usize, content: &str| {
        serde_json::json!({"id": id, "content": content, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true})
    };
    let tok = serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": [special(0, "<unk>"), special(1, "<s>"), special(2, "</s>")],
        "normalizer": null,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    });
    std::fs::write(dir.join("tokenizer.json"), tok.to_string()).unwrap();
    let tcfg = serde_json::json!({
        "bos_token": "<s>",
        "eos_token": "</s>",
        "chat_template": "{% for m in messages %}{{ m['role'] }} {{ m['content'] }} </s> {% endfor %}{% if add_generation_prompt %}assistant {% endif %}"
    });
    std::fs::write(dir.join("tokenizer_config.json"), tcfg.to_string()).unwrap();
}

/// A random adapter with non-zero A and B on `targets` in `layers` of `model`.
pub fn random_adapter(
    model: &Llama,
    r: usize,
    alpha: f32,
    targets: &[&str],
    layers: &[usize],
    seed: u64,
    scale: f32,
) -> LoraAdapter {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut modules = BTreeMap::new();
    for &l in layers {
        for &name in targets {
            assert!(MODULES.contains(&name));
            let lin = model.layers[l].module(name).unwrap();
            let (in_f, out_f) = (lin.in_features(), lin.out_features());
            let a_bound = 1.0 / (in_f as f32).sqrt();
            modules.insert(
                (l, name.to_string()),
                LoraModule {
                    r,
                    in_f,
                    out_f,
                    a: (0..r * in_f)
                        .map(|_| rng.gen_range(-a_bound..a_bound))
                        .collect(),
                    b: (0..out_f * r)
                        .map(|_| rng.gen_range(-scale..scale))
                        .collect(),
                },
            );
        }
    }
    LoraAdapter {
        spec: LoraSpec {
            r,
            alpha,
            target_modules: targets.iter().map(|s| s.to_string()).collect(),
            layers: layers.to_vec(),
        },
        modules,
    }
}

/// The real SmolLM2 GGUF, if present.
pub fn smollm2() -> Option<PathBuf> {
    hone_model::fetch::cached_for_tests("smollm2")
}

/// Largest absolute difference, relative to the largest magnitude of `b`.
pub fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

pub fn tokens(n: usize, vocab: usize, seed: u32) -> Vec<u32> {
    (0..n as u32)
        .map(|i| (i.wrapping_mul(2654435761).wrapping_add(seed * 977) >> 7) % vocab as u32)
        .collect()
}
