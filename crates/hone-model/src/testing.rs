//! Tiny random checkpoints for tests: a llama's `config.json` and `model.safetensors` in a
//! Hugging Face folder (the tokenizer files are the test's own), with weights from a fixed
//! xorshift stream, so every test that asks for the same shape gets the same model.

use std::path::Path;

use serde_json::json;

use crate::safetensors_io::{write_f32, F32Tensor};
use crate::Result;

/// The shape of a random llama ([`write_random_llama`]).
#[derive(Clone, Debug, PartialEq)]
pub struct RandomLlama {
    pub vocab: usize,
    pub hidden: usize,
    pub layers: usize,
    pub ffn: usize,
    pub heads: usize,
    pub kv_heads: usize,
    /// Written as `eos_token_id` when given.
    pub eos_token_id: Option<u32>,
}

/// Writes `dir/config.json` and `dir/model.safetensors` (f32; untied output; RMS-norm weights
/// 1; embeddings uniform in ±1, output ±0.5, projections ±0.4). The folder must exist.
pub fn write_random_llama(dir: &Path, m: &RandomLlama) -> Result<()> {
    let kv = m.hidden / m.heads * m.kv_heads;
    let mut config = json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": m.hidden, "intermediate_size": m.ffn, "num_hidden_layers": m.layers,
        "num_attention_heads": m.heads, "num_key_value_heads": m.kv_heads,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 8192,
        "vocab_size": m.vocab, "tie_word_embeddings": false, "torch_dtype": "float32"
    });
    if let Some(eos) = m.eos_token_id {
        config["eos_token_id"] = json!(eos);
    }
    let path = dir.join("config.json");
    crate::atomic::write_file(&path, config.to_string().as_bytes())?;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut rand = |n: usize, scale: f32| -> Vec<f32> {
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0 * scale
            })
            .collect()
    };
    let h = m.hidden;
    let mut t: Vec<(String, Vec<usize>, Vec<f32>)> = vec![
        (
            "model.embed_tokens.weight".into(),
            vec![m.vocab, h],
            rand(m.vocab * h, 1.0),
        ),
        (
            "lm_head.weight".into(),
            vec![m.vocab, h],
            rand(m.vocab * h, 0.5),
        ),
        ("model.norm.weight".into(), vec![h], vec![1.0; h]),
    ];
    for l in 0..m.layers {
        let p = format!("model.layers.{l}");
        for n in ["input_layernorm", "post_attention_layernorm"] {
            t.push((format!("{p}.{n}.weight"), vec![h], vec![1.0; h]));
        }
        for (n, r, c) in [
            ("self_attn.q_proj", h, h),
            ("self_attn.k_proj", kv, h),
            ("self_attn.v_proj", kv, h),
            ("self_attn.o_proj", h, h),
            ("mlp.gate_proj", m.ffn, h),
            ("mlp.up_proj", m.ffn, h),
            ("mlp.down_proj", h, m.ffn),
        ] {
            t.push((format!("{p}.{n}.weight"), vec![r, c], rand(r * c, 0.4)));
        }
    }
    let tensors: Vec<F32Tensor<'_>> = t
        .iter()
        .map(|(n, s, v)| (n.clone(), s.clone(), &v[..]))
        .collect();
    write_f32(&dir.join("model.safetensors"), &tensors, None)
}

/// Writes `dir/tokenizer.json`: a byte-level BPE over `vocab` (token text to id; id 0 must be
/// `<|endoftext|>`, the one special token) with `merges` (pairs of token texts).
pub fn write_byte_level_tokenizer(
    dir: &Path,
    vocab: serde_json::Map<String, serde_json::Value>,
    merges: &[(String, String)],
) -> Result<()> {
    let tokenizer = json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [{"id": 0, "content": "<|endoftext|>", "single_word": false,
                          "lstrip": false, "rstrip": false, "normalized": false,
                          "special": true}],
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false,
                          "trim_offsets": true, "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true,
                    "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null,
                  "continuing_subword_prefix": null, "end_of_word_suffix": null,
                  "fuse_unk": false, "byte_fallback": false, "vocab": vocab,
                  "merges": merges.iter().map(|(a, b)| format!("{a} {b}")).collect::<Vec<_>>()}
    });
    crate::atomic::write_file(dir.join("tokenizer.json"), tokenizer.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_loadable_config_and_the_same_weights_every_time() {
        let m = RandomLlama {
            vocab: 40,
            hidden: 16,
            layers: 2,
            ffn: 24,
            heads: 4,
            kv_heads: 2,
            eos_token_id: Some(0),
        };
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        write_random_llama(a.path(), &m).unwrap();
        write_random_llama(b.path(), &m).unwrap();
        let wa = std::fs::read(a.path().join("model.safetensors")).unwrap();
        assert_eq!(
            wa,
            std::fs::read(b.path().join("model.safetensors")).unwrap()
        );
        let st = crate::safetensors_io::parse(a.path(), &wa).unwrap();
        let (shape, k) = crate::safetensors_io::tensor_f32(
            a.path(),
            &st,
            "model.layers.1.self_attn.k_proj.weight",
        )
        .unwrap();
        assert_eq!(shape, vec![8, 16]);
        assert!(k.iter().all(|v| v.abs() <= 0.4) && k.iter().any(|v| v.abs() > 0.2));
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(a.path().join("config.json")).unwrap()).unwrap();
        assert_eq!(cfg["eos_token_id"], 0);
        assert_eq!(cfg["num_key_value_heads"], 2);
    }
}
