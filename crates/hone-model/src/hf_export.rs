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
    for (i, b) in model.layers.iter().enumerate() {
        let p = format!("model.layers.{i}");
        t.push((
            format!("{p}.input_layernorm.weight"),
            vec![hidden],
            b.attn_norm.clone(),
        ));
        for name in MODULES {
            let lin = b.module(name).expect("known module");
            let par = if ["q_proj", "k_proj", "v_proj", "o_proj"].contains(&name) {
                "self_attn"
            } else {
                "mlp"
            };
            let (o, inp) = (lin.out_features(), lin.in_features());
            t.push((
                format!("{p}.{par}.{name}.weight"),
                vec![o, inp],
                lin.dense_weight(),
            ));
            if let Some(bias) = lin.bias() {
                t.push((format!("{p}.{par}.{name}.bias"), vec![o], bias.to_vec()));
            }
        }
        t.push((
            format!("{p}.post_attention_layernorm.weight"),
            vec![hidden],
            b.ffn_norm.clone(),
        ));
    }
    t.push((
        "model.norm.weight".to_string(),
        vec![hidden],
        model.norm.clone(),
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
