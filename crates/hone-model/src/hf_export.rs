//! A loaded model written back as a Hugging Face folder (`config.json`, `model.safetensors` in
//! f32, `tokenizer.json`, `tokenizer_config.json`, `generation_config.json`) that hone,
//! transformers and vLLM load as a plain model: how `hone adapter merge` saves a base model
//! with its adapter folded in.

use std::collections::HashMap;
use std::path::Path;

use serde_json::json;

use crate::atomic::write_file;
use crate::llama::MODULES;
use crate::loader::LoadedModel;
use crate::safetensors_io::{self, F32Tensor};
use crate::{Error, Result};

/// Every tensor of `m` in Hugging Face names and layout, as f32 (quantized weights
/// dequantized; LoRA-wrapped layers merged, since their dense weight includes the update).
pub fn hf_tensors(m: &LoadedModel) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let model = &m.model;
    let hidden = model.config.hidden_size;
    let vocab = model.embed.vocab_size();
    let mut t = Vec::new();
    let mut embed = vec![0f32; vocab * hidden];
    for (id, row) in embed.chunks_exact_mut(hidden).enumerate() {
        model.embed.lookup(id as u32, row);
    }
    t.push((
        "model.embed_tokens.weight".to_string(),
        vec![vocab, hidden],
        embed,
    ));
    // Gemma stores RMS-norm weights as `weight` in `1 + weight`.
    let gemma = model.config.gemma_style();
    let norm_w = |w: &[f32]| -> Vec<f32> {
        if gemma {
            w.iter().map(|v| v - 1.0).collect()
        } else {
            w.to_vec()
        }
    };
    for (i, b) in model.layers.iter().enumerate() {
        let p = format!("model.layers.{i}");
        t.push((
            format!("{p}.input_layernorm.weight"),
            vec![hidden],
            norm_w(&b.attn_norm),
        ));
        let fused = model.config.fused_projections();
        for name in MODULES {
            let par = if ["q_proj", "k_proj", "v_proj", "o_proj"].contains(&name) {
                "self_attn"
            } else {
                "mlp"
            };
            // Phi-3's files hold q/k/v and gate/up stacked by rows, under one name.
            let (file_name, parts): (&str, &[&str]) = match name {
                "q_proj" if fused => ("qkv_proj", &["q_proj", "k_proj", "v_proj"]),
                "gate_proj" if fused => ("gate_up_proj", &["gate_proj", "up_proj"]),
                "k_proj" | "v_proj" | "up_proj" if fused => continue,
                _ => (name, &[name][..]),
            };
            let lins: Vec<_> = parts
                .iter()
                .map(|n| b.module(n).expect("known module"))
                .collect();
            let o: usize = lins.iter().map(|l| l.out_features()).sum();
            let inp = lins[0].in_features();
            let w: Vec<f32> = lins.iter().flat_map(|l| l.dense_weight()).collect();
            t.push((format!("{p}.{par}.{file_name}.weight"), vec![o, inp], w));
            if lins.iter().any(|l| l.bias().is_some()) {
                let bias: Vec<f32> = lins
                    .iter()
                    .flat_map(|l| {
                        l.bias()
                            .map_or_else(|| vec![0.0; l.out_features()], <[f32]>::to_vec)
                    })
                    .collect();
                t.push((format!("{p}.{par}.{file_name}.bias"), vec![o], bias));
            }
        }
        for (n, w) in [("q_norm", &b.q_norm), ("k_norm", &b.k_norm)] {
            if let Some(w) = w {
                t.push((
                    format!("{p}.self_attn.{n}.weight"),
                    vec![w.len()],
                    norm_w(w),
                ));
            }
        }
        let norms: Vec<(&str, &[f32])> = match (&b.post_attn_norm, &b.post_ffn_norm) {
            // Gemma's names: `post_attention_layernorm` norms the attention output.
            (Some(pa), Some(pf)) => vec![
                ("post_attention_layernorm", pa),
                ("pre_feedforward_layernorm", &b.ffn_norm),
                ("post_feedforward_layernorm", pf),
            ],
            _ => vec![("post_attention_layernorm", &b.ffn_norm)],
        };
        for (n, w) in norms {
            t.push((format!("{p}.{n}.weight"), vec![hidden], norm_w(w)));
        }
    }
    t.push((
        "model.norm.weight".to_string(),
        vec![hidden],
        norm_w(&model.norm),
    ));
    if !model.tied_embeddings {
        t.push((
            "lm_head.weight".to_string(),
            vec![model.lm_head.out_features(), hidden],
            model.lm_head.dense_weight(),
        ));
    }
    t
}

/// Writes `m` (with any attached adapter merged) as a Hugging Face model folder. The folder
/// is created if needed; each file is written atomically. A folder holding other
/// `*.safetensors` files is refused (a loader would read them too).
/// Returns the number of tensors and the size of `model.safetensors`.
pub fn write_hf_model(m: &LoadedModel, out: &Path) -> Result<(usize, u64)> {
    let err = |msg: String| Error::HfModel {
        path: out.to_path_buf(),
        msg,
    };
    if out.exists() && !out.is_dir() {
        return Err(err("exists and is not a folder".into()));
    }
    if out.is_dir() {
        let stale: Vec<String> = std::fs::read_dir(out)
            .map_err(|e| Error::io(out, e))?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".safetensors") && n != "model.safetensors")
            .collect();
        if !stale.is_empty() {
            return Err(err(format!(
                "already holds other weights ({}): choose an empty folder",
                stale.join(", ")
            )));
        }
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;

    // The bytes of each tensor are made as it is written, so the f32 copy and the byte copy
    // of the whole model are not both held.
    let tensors = hf_tensors(m);
    let n_tensors = tensors.len();
    let refs: Vec<F32Tensor> = tensors
        .iter()
        .map(|(n, s, v)| (n.clone(), s.clone(), &v[..]))
        .collect();
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    let st_path = out.join("model.safetensors");
    safetensors_io::write_f32(&st_path, &refs, Some(meta))?;
    drop(refs);
    drop(tensors);
    let size = std::fs::metadata(&st_path)
        .map_err(|e| Error::io(&st_path, e))?
        .len();

    let model = &m.model;
    let mut cfg = model.config.clone();
    cfg.torch_dtype = Some("float32".into());
    cfg.vocab_size = model.embed.vocab_size();
    cfg.set_tie_word_embeddings(model.tied_embeddings);
    if cfg.architectures.is_empty() {
        cfg.architectures = vec![cfg.model_type.hf_architecture().to_string()];
    }
    let mut text = cfg.to_hf_json();
    text.push('\n');
    write_file(out.join("config.json"), text.as_bytes())?;

    let tok = m.tokenizer.to_tokenizer_json(true)?;
    write_file(out.join("tokenizer.json"), tok.as_bytes())?;
    let tcfg = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": m.template.bos_token(),
        "eos_token": m.template.eos_token(),
        "add_bos_token": m.tokenizer.adds_bos(),
        "add_eos_token": false,
        "model_max_length": cfg.max_position_embeddings,
        "clean_up_tokenization_spaces": false,
        "chat_template": m.template.source(),
    });
    let mut text = serde_json::to_string_pretty(&tcfg).expect("json");
    text.push('\n');
    write_file(out.join("tokenizer_config.json"), text.as_bytes())?;
    let mut gen = serde_json::Map::new();
    if let Some(b) = m.tokenizer.bos_id().or(cfg.bos_token_id) {
        gen.insert("bos_token_id".into(), json!(b));
    }
    let eos = cfg.eos_token_ids();
    if !eos.is_empty() {
        gen.insert("eos_token_id".into(), json!(eos));
    } else if let Some(e) = m.tokenizer.eos_id() {
        gen.insert("eos_token_id".into(), json!(e));
    }
    let mut text = serde_json::to_string_pretty(&gen).expect("json");
    text.push('\n');
    write_file(out.join("generation_config.json"), text.as_bytes())?;
    Ok((n_tensors, size))
}
