//! Shared test helpers: a tiny random llama written as GGUF and as a Hugging Face folder, and
//! the location of the real SmolLM2 GGUF.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub const HIDDEN: usize = 64;
pub const HEADS: usize = 4;
pub const KV_HEADS: usize = 2;
pub const FFN: usize = 128;
pub const LAYERS: usize = 2;
pub const VOCAB: usize = 96;
pub const CTX: usize = 256;

/// Random weights in Hugging Face naming and layout.
pub fn tiny_weights(seed: u64) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut t = Vec::new();
    let mut rand = |shape: Vec<usize>, scale: f32| -> (Vec<usize>, Vec<f32>) {
        let n = shape.iter().product();
        let v = (0..n)
            .map(|_| rng.gen_range(-1.0f32..1.0) * scale)
            .collect();
        (shape, v)
    };
    let hd = HIDDEN / HEADS;
    let (s, v) = rand(vec![VOCAB, HIDDEN], 1.0);
    t.push(("model.embed_tokens.weight".to_string(), s, v));
    for i in 0..LAYERS {
        let p = format!("model.layers.{i}");
        let norm = |rng_v: (Vec<usize>, Vec<f32>)| {
            (
                rng_v.0,
                rng_v.1.iter().map(|x| 1.0 + 0.2 * x).collect::<Vec<f32>>(),
            )
        };
        let (s, v) = norm(rand(vec![HIDDEN], 1.0));
        t.push((format!("{p}.input_layernorm.weight"), s, v));
        for (n, o, i_) in [
            ("self_attn.q_proj", HEADS * hd, HIDDEN),
            ("self_attn.k_proj", KV_HEADS * hd, HIDDEN),
            ("self_attn.v_proj", KV_HEADS * hd, HIDDEN),
            ("self_attn.o_proj", HIDDEN, HEADS * hd),
            ("mlp.gate_proj", FFN, HIDDEN),
            ("mlp.up_proj", FFN, HIDDEN),
            ("mlp.down_proj", HIDDEN, FFN),
        ] {
            let (s, v) = rand(vec![o, i_], 0.3);
            t.push((format!("{p}.{n}.weight"), s, v));
        }
        let (s, v) = norm(rand(vec![HIDDEN], 1.0));
        t.push((format!("{p}.post_attention_layernorm.weight"), s, v));
    }
    let (s, v) = rand(vec![HIDDEN], 0.2);
    t.push((
        "model.norm.weight".to_string(),
        s,
        v.iter().map(|x| 1.0 + x).collect(),
    ));
    t
}

pub fn tiny_config_json() -> serde_json::Value {
    serde_json::json!({
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
        "tie_word_embeddings": true,
        "torch_dtype": "float32"
    })
}

/// Writes the tiny model as a Hugging Face folder (no tokenizer).
pub fn write_hf(dir: &Path, weights: &[(String, Vec<usize>, Vec<f32>)]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&tiny_config_json()).unwrap(),
    )
    .unwrap();
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = weights
        .iter()
        .map(|(n, s, v)| {
            (
                n.clone(),
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                s.clone(),
            )
        })
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = bytes
        .iter()
        .map(|(n, b, s)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
}

/// GGUF tensor name of a Hugging Face one.
fn gguf_name(hf: &str) -> String {
    let map = [
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("model.norm.weight", "output_norm.weight"),
    ];
    for (a, b) in map {
        if hf == a {
            return b.to_string();
        }
    }
    let rest = hf.strip_prefix("model.layers.").unwrap();
    let (i, name) = rest.split_once('.').unwrap();
    let n = match name {
        "input_layernorm.weight" => "attn_norm.weight",
        "post_attention_layernorm.weight" => "ffn_norm.weight",
        "self_attn.q_proj.weight" => "attn_q.weight",
        "self_attn.k_proj.weight" => "attn_k.weight",
        "self_attn.v_proj.weight" => "attn_v.weight",
        "self_attn.o_proj.weight" => "attn_output.weight",
        "mlp.gate_proj.weight" => "ffn_gate.weight",
        "mlp.up_proj.weight" => "ffn_up.weight",
        "mlp.down_proj.weight" => "ffn_down.weight",
        other => panic!("{other}"),
    };
    format!("blk.{i}.{n}")
}

/// Writes the tiny model as GGUF the way llama.cpp's converter does (q/k rows permuted for
/// interleaved rope), with architecture `arch`.
pub fn write_gguf(path: &Path, weights: &[(String, Vec<usize>, Vec<f32>)], arch: &str) {
    let hd = HIDDEN / HEADS;
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    for (n, s, v) in weights {
        let mut v = v.clone();
        if n.ends_with("q_proj.weight") {
            v = hone_model::loader::permute_for_gguf(&v, HEADS * hd, HIDDEN, HEADS);
        } else if n.ends_with("k_proj.weight") {
            v = hone_model::loader::permute_for_gguf(&v, KV_HEADS * hd, HIDDEN, KV_HEADS);
        }
        let t = Tensor::from_vec(v, s.as_slice(), &Device::Cpu).unwrap();
        tensors.push((gguf_name(n), QTensor::quantize(&t, GgmlDType::F32).unwrap()));
    }
    let a = |k: &str| format!("{arch}.{k}");
    let md: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(arch.into())),
        (a("block_count"), Value::U32(LAYERS as u32)),
        (a("embedding_length"), Value::U32(HIDDEN as u32)),
        (a("feed_forward_length"), Value::U32(FFN as u32)),
        (a("attention.head_count"), Value::U32(HEADS as u32)),
        (a("attention.head_count_kv"), Value::U32(KV_HEADS as u32)),
        (a("attention.layer_norm_rms_epsilon"), Value::F32(1e-5)),
        (a("rope.freq_base"), Value::F32(10000.0)),
        (a("rope.dimension_count"), Value::U32(hd as u32)),
        (a("context_length"), Value::U32(CTX as u32)),
        (a("vocab_size"), Value::U32(VOCAB as u32)),
    ];
    let md_refs: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let t_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut f = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut f, &md_refs, &t_refs).unwrap();
}

/// The real SmolLM2 GGUF, if present (CI fetches it first).
pub fn smollm2() -> Option<PathBuf> {
    hone_model::fetch::cached_for_tests("smollm2")
}

pub fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}
