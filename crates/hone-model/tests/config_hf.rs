//! `ModelConfig::from_hf_json`: real-world shapes, defaults, round trip and every error case.

use std::path::{Path, PathBuf};

use hone_model::config::{ModelConfig, ModelType, RopeScaling, TokenIds};
use hone_model::error::Error;
use serde_json::{json, Value};

const SMOLLM2: &str = r#"{
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "hidden_size": 576,
  "initializer_range": 0.041666666666666664, "intermediate_size": 1536, "is_llama_config": true,
  "max_position_embeddings": 8192, "model_type": "llama", "num_attention_heads": 9,
  "num_hidden_layers": 30, "num_key_value_heads": 3, "pad_token_id": 2, "pretraining_tp": 1,
  "rms_norm_eps": 1e-05, "rope_interleaved": false, "rope_scaling": null, "rope_theta": 100000,
  "tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.42.3",
  "use_cache": true, "vocab_size": 49152
}"#;

fn write(dir: &Path, v: &Value) -> PathBuf {
    let p = dir.join("config.json");
    std::fs::write(&p, serde_json::to_string(v).unwrap()).unwrap();
    p
}

fn base() -> Value {
    serde_json::from_str(SMOLLM2).unwrap()
}

/// Loads `base()` modified by `edit`; returns the error.
fn err_of(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> (PathBuf, Error) {
    let dir = tempfile::tempdir().unwrap().keep();
    let mut v = base();
    edit(v.as_object_mut().unwrap());
    let p = write(&dir, &v);
    let e = ModelConfig::from_hf_json(&p).unwrap_err();
    (p, e)
}

fn assert_config_err(
    edit: impl FnOnce(&mut serde_json::Map<String, Value>),
    want_field: &str,
    want_msg: &str,
) {
    let (p, e) = err_of(edit);
    let text = e.to_string();
    match e {
        Error::Config { path, field, msg } => {
            assert_eq!(path, p);
            assert_eq!(field, want_field, "{text}");
            assert!(msg.contains(want_msg), "{text}");
        }
        e => panic!("expected a Config error on `{want_field}`, got {e:?}"),
    }
    assert!(
        text.contains(p.to_str().unwrap()) && text.contains(want_field),
        "{text}"
    );
}

#[test]
fn smollm2_config() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), &base());
    let c = ModelConfig::from_hf_json(&p).unwrap();
    assert_eq!(c.model_type, ModelType::Llama);
    assert_eq!(
        (c.num_hidden_layers, c.hidden_size, c.intermediate_size),
        (30, 576, 1536)
    );
    assert_eq!((c.num_attention_heads, c.num_key_value_heads), (9, 3));
    assert_eq!((c.head_dim(), c.n_kv_groups()), (64, 3));
    assert_eq!(c.rms_norm_eps, 1e-5);
    assert_eq!(c.rope_theta, 100000.0);
    assert_eq!(c.rope_scaling, None);
    assert_eq!((c.max_position_embeddings, c.vocab_size), (8192, 49152));
    assert!(c.tie_word_embeddings && !c.attention_bias);
    assert_eq!(
        (c.bos_token_id, c.eos_token_id.clone()),
        (Some(1), Some(TokenIds::One(2)))
    );
    assert_eq!(c.torch_dtype.as_deref(), Some("bfloat16"));

    // Round trip through to_hf_json.
    let p2 = dir.path().join("out.json");
    c.write_hf_json(&p2).unwrap();
    assert_eq!(ModelConfig::from_hf_json(&p2).unwrap(), c);
}

#[test]
fn defaults() {
    let dir = tempfile::tempdir().unwrap();
    let mut v = base();
    let o = v.as_object_mut().unwrap();
    for k in [
        "num_key_value_heads",
        "rope_theta",
        "tie_word_embeddings",
        "attention_bias",
        "architectures",
    ] {
        o.remove(k);
    }
    let c = ModelConfig::from_hf_json(&write(dir.path(), &v)).unwrap();
    assert_eq!(c.num_key_value_heads, 9);
    assert_eq!(c.rope_theta, 10000.0);
    assert!(!c.tie_word_embeddings && !c.attention_bias);
    assert_eq!(c.architectures, vec!["LlamaForCausalLM"]);
}

#[test]
fn qwen2_llama3_yarn_mistral() {
    let dir = tempfile::tempdir().unwrap();
    // Qwen2.5-0.5B-Instruct shape.
    let qwen = json!({
        "architectures": ["Qwen2ForCausalLM"], "bos_token_id": 151643, "eos_token_id": 151645,
        "hidden_size": 896, "intermediate_size": 4864, "max_position_embeddings": 32768,
        "max_window_layers": 21, "model_type": "qwen2", "num_attention_heads": 14,
        "num_hidden_layers": 24, "num_key_value_heads": 2, "rms_norm_eps": 1e-06,
        "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": true,
        "torch_dtype": "bfloat16", "use_sliding_window": false, "vocab_size": 151936,
        "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
    });
    let c = ModelConfig::from_hf_json(&write(dir.path(), &qwen)).unwrap();
    assert_eq!(c.model_type, ModelType::Qwen2);
    assert!(c.attention_bias && c.qkv_bias() && !c.o_proj_bias());
    assert_eq!(c.sliding_window, None, "use_sliding_window: false");
    assert_eq!((c.head_dim(), c.n_kv_groups()), (64, 7));
    assert!(matches!(
        c.rope_scaling,
        Some(RopeScaling::Yarn { factor, original_max_position_embeddings: Some(32768), .. }) if factor == 4.0
    ));
    let p2 = dir.path().join("q.json");
    c.write_hf_json(&p2).unwrap();
    assert_eq!(ModelConfig::from_hf_json(&p2).unwrap(), c);

    // Llama 3.2-1B shape: list of eos ids, explicit head_dim, llama3 scaling.
    let llama = json!({
        "architectures": ["LlamaForCausalLM"], "bos_token_id": 128000,
        "eos_token_id": [128001, 128008, 128009], "head_dim": 64, "hidden_size": 2048,
        "intermediate_size": 8192, "max_position_embeddings": 131072, "model_type": "llama",
        "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
        "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "tie_word_embeddings": true,
        "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "vocab_size": 128256
    });
    let c = ModelConfig::from_hf_json(&write(dir.path(), &llama)).unwrap();
    assert_eq!(c.eos_token_ids(), vec![128001, 128008, 128009]);
    assert_eq!(c.head_dim(), 64);
    assert_eq!(
        c.rope_scaling,
        Some(RopeScaling::Llama3 {
            factor: 32.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192
        })
    );
    c.write_hf_json(&p2).unwrap();
    assert_eq!(ModelConfig::from_hf_json(&p2).unwrap(), c);

    // Mistral with a sliding window; `rope_type: default` means no scaling.
    let mut mistral = base();
    let o = mistral.as_object_mut().unwrap();
    o.insert("model_type".into(), json!("mistral"));
    o.insert("sliding_window".into(), json!(4096));
    o.insert("rope_scaling".into(), json!({"rope_type": "default"}));
    let c = ModelConfig::from_hf_json(&write(dir.path(), &mistral)).unwrap();
    assert_eq!(
        (c.model_type, c.sliding_window, c.rope_scaling.clone()),
        (ModelType::Mistral, Some(4096), None)
    );
    assert!(!c.attention_bias);
}

#[test]
fn missing_field() {
    assert_config_err(|o| drop(o.remove("hidden_size")), "hidden_size", "missing");
    assert_config_err(
        |o| drop(o.remove("rms_norm_eps")),
        "rms_norm_eps",
        "missing",
    );
    assert_config_err(|o| drop(o.remove("model_type")), "model_type", "missing");
    assert_config_err(
        |o| drop(o.insert("vocab_size".into(), Value::Null)),
        "vocab_size",
        "missing",
    );
}

#[test]
fn wrong_type() {
    assert_config_err(
        |o| drop(o.insert("num_hidden_layers".into(), json!("30"))),
        "num_hidden_layers",
        "integer",
    );
    assert_config_err(
        |o| drop(o.insert("hidden_size".into(), json!(-1))),
        "hidden_size",
        "integer",
    );
    assert_config_err(
        |o| drop(o.insert("hidden_size".into(), json!(5.5))),
        "hidden_size",
        "integer",
    );
    assert_config_err(
        |o| drop(o.insert("rope_theta".into(), json!("big"))),
        "rope_theta",
        "number",
    );
    assert_config_err(
        |o| drop(o.insert("tie_word_embeddings".into(), json!(1))),
        "tie_word_embeddings",
        "true or false",
    );
    assert_config_err(
        |o| drop(o.insert("eos_token_id".into(), json!("</s>"))),
        "eos_token_id",
        "token id",
    );
    assert_config_err(
        |o| drop(o.insert("rope_scaling".into(), json!(4))),
        "rope_scaling",
        "object",
    );
    assert_config_err(
        |o| {
            drop(o.insert(
                "rope_scaling".into(),
                json!({"rope_type": "llama3", "factor": 8.0}),
            ))
        },
        "rope_scaling.low_freq_factor",
        "missing",
    );
    assert_config_err(
        |o| {
            drop(o.insert(
                "rope_scaling".into(),
                json!({"type": "longrope", "factor": 8.0}),
            ))
        },
        "rope_scaling.short_factor",
        "missing (required for rope_type `longrope`)",
    );
    assert_config_err(
        |o| {
            drop(o.insert(
                "rope_scaling".into(),
                json!({"type": "ntk-by-parts", "factor": 8.0}),
            ))
        },
        "rope_scaling.rope_type",
        "ntk-by-parts",
    );
    // LongRoPE needs one factor per rotated pair (32 for SmolLM2's 64-wide heads)
    // and the pre-training context it switches at.
    assert_config_err(
        |o| {
            drop(o.insert(
                "rope_scaling".into(),
                json!({"type": "longrope", "short_factor": [1.0], "long_factor": [1.0, 2.0]}),
            ));
            drop(o.insert("original_max_position_embeddings".into(), json!(64)));
        },
        "rope_scaling.short_factor",
        "expected head_dim / 2",
    );
    assert_config_err(
        |o| drop(o.insert("partial_rotary_factor".into(), json!(0.5))),
        "partial_rotary_factor",
        "not supported",
    );
    // Gemma-style settings a file can get wrong.
    assert_config_err(
        |o| drop(o.insert("layer_types".into(), json!(["sliding_attention"]))),
        "layer_types",
        "lists 1 layers",
    );
    assert_config_err(
        |o| drop(o.insert("layer_types".into(), json!(vec!["local"; 30]))),
        "layer_types",
        "unknown layer type `local`",
    );
    assert_config_err(
        |o| drop(o.insert("final_logit_softcapping".into(), json!(30.0))),
        "final_logit_softcapping",
        "not supported",
    );
    assert_config_err(
        |o| drop(o.insert("hidden_activation".into(), json!("relu"))),
        "hidden_activation",
        "`relu` is not supported",
    );
    assert_config_err(
        |o| drop(o.insert("query_pre_attn_scalar".into(), json!(-1.0))),
        "query_pre_attn_scalar",
        "positive",
    );
}

#[test]
fn inconsistent_shapes() {
    assert_config_err(
        |o| drop(o.insert("num_attention_heads".into(), json!(0))),
        "num_attention_heads",
        "greater than 0",
    );
    assert_config_err(
        |o| drop(o.insert("num_attention_heads".into(), json!(7))),
        "num_attention_heads",
        "not divisible",
    );
    assert_config_err(
        |o| drop(o.insert("num_key_value_heads".into(), json!(2))),
        "num_key_value_heads",
        "do not divide",
    );
    assert_config_err(
        |o| drop(o.insert("num_key_value_heads".into(), json!(0))),
        "num_key_value_heads",
        "greater than 0",
    );
    assert_config_err(
        |o| drop(o.insert("head_dim".into(), json!(63))),
        "head_dim",
        "even",
    );
    assert_config_err(
        |o| drop(o.insert("rms_norm_eps".into(), json!(0))),
        "rms_norm_eps",
        "positive",
    );
}

#[test]
fn unsupported_architecture_and_bad_json() {
    let (p, e) = err_of(|o| drop(o.insert("model_type".into(), json!("gpt2"))));
    match e {
        Error::UnsupportedArchitecture { path, arch } => {
            assert_eq!((path, arch.as_str()), (p, "gpt2"))
        }
        e => panic!("{e:?}"),
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("config.json");
    std::fs::write(&p, "{ not json").unwrap();
    let e = ModelConfig::from_hf_json(&p).unwrap_err();
    assert!(
        matches!(e, Error::HfModel { .. }) && e.to_string().contains("config.json"),
        "{e}"
    );
    let e = ModelConfig::from_hf_json(&dir.path().join("missing.json")).unwrap_err();
    assert!(
        matches!(e, Error::Io { .. }) && e.to_string().contains("missing.json"),
        "{e}"
    );
}

#[test]
fn rope_theta_inside_rope_parameters_is_read() {
    // transformers 5 writes `rope_parameters: {rope_theta, rope_type}` instead of `rope_theta`.
    let text = r#"{"model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "rms_norm_eps": 1e-5, "max_position_embeddings": 256, "vocab_size": 96,
        "rope_parameters": {"rope_theta": 100000.0, "rope_type": "default"}}"#;
    let c = hone_model::config::ModelConfig::from_hf_json_str(
        std::path::Path::new("config.json"),
        text,
    )
    .unwrap();
    assert_eq!(c.rope_theta, 100000.0);
}
