//! Folding an adapter into its base model and writing the result as a Hugging Face folder
//! (`config.json`, `model.safetensors` in f32, `tokenizer.json`, `tokenizer_config.json`,
//! `generation_config.json`) that hone, transformers and vLLM load as a plain model.

use std::path::{Path, PathBuf};

use hone_model::{load_adapter, LoadOptions, LoadedModel, WeightMode};

use crate::{Error, Result};

pub use hone_model::hf_export::{hf_tensors, write_hf_model};

/// What a merge wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct MergeSummary {
    pub out: PathBuf,
    /// Projections that got `W + scale · B A`.
    pub merged_modules: usize,
    pub tensors: usize,
    pub bytes: u64,
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
    m.model
        .attach_adapter(&adapter)
        .map_err(|e| Error::Adapter {
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
