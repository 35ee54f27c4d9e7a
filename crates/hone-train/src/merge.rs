//! Folding an adapter into its base model and writing the result as a Hugging Face folder
//! (`config.json`, `model.safetensors` in f32, `tokenizer.json`, `tokenizer_config.json`,
//! `generation_config.json`) that hone, transformers and vLLM load as a plain model.

use std::path::{Path, PathBuf};

use hone_model::{LoadOptions, LoadedModel, WeightMode};
use serde_json::json;

use crate::adapter::load_adapter;
use crate::atomic::write_atomic;
use crate::{Error, Result};

/// What a merge wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeSummary {
    pub out: PathBuf,
    /// Projections that got `W + scale · B A`.
    pub merged_modules: usize,
    pub tensors: usize,
    pub bytes: u64,
}

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
        for name in hone_model::llama::MODULES {
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
    let err = |msg: String| Error::Adapter {
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

    // Consumed tensor by tensor, so the f32 copy and the byte copy are not both held.
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = hf_tensors(m)
        .into_iter()
        .map(|(n, s, v)| (n, s, v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let n_tensors = bytes.len();
    let views = bytes
        .iter()
        .map(|(n, s, b)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                .map(|v| (n.clone(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| err(format!("model.safetensors: {e}")))?;
    let meta = Some(std::collections::HashMap::from([(
        "format".to_string(),
        "pt".to_string(),
    )]));
    let st_path = out.join("model.safetensors");
    let tmp = crate::atomic::temp_beside(&st_path)?;
    safetensors::serialize_to_file(views, meta, tmp.path())
        .map_err(|e| err(format!("model.safetensors: {e}")))?;
    crate::atomic::persist(tmp, &st_path)?;
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
    write_atomic(&out.join("config.json"), text.as_bytes())?;

    let tok = m.tokenizer.to_tokenizer_json(true)?;
    write_atomic(&out.join("tokenizer.json"), tok.as_bytes())?;
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
    write_atomic(&out.join("tokenizer_config.json"), text.as_bytes())?;
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
    write_atomic(&out.join("generation_config.json"), text.as_bytes())?;
    Ok((n_tensors, size))
}

/// `hone adapter merge`: loads `base` (name, `.gguf` or HF folder) dequantized to f32, applies
/// the adapter in `adapter_dir`, and writes the merged model to `out`.
pub fn merge_adapter(base: &str, adapter_dir: &Path, out: &Path) -> Result<MergeSummary> {
    let mut m = LoadedModel::load(
        base,
        &LoadOptions {
            weights: WeightMode::F32,
        },
    )?;
    let adapter = load_adapter(adapter_dir)?;
    adapter.attach(&mut m.model).map_err(|e| Error::Adapter {
        path: adapter_dir.to_path_buf(),
        msg: format!("does not fit the base model `{base}`: {e}"),
    })?;
    let (tensors, bytes) = write_hf_model(&m, out)?;
    Ok(MergeSummary {
        out: out.to_path_buf(),
        merged_modules: adapter.modules.len(),
        tensors,
        bytes,
    })
}
