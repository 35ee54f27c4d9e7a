//! GGUF: the header (candle's reader), hone's layout checks (tensors within the file), the
//! model configuration from the metadata, the tokenizer and the chat template, and the weights:
//! everything `LoadedModel::load_gguf` does with a file a user names.

use hone_model::loader::{LoadOptions, LoadedModel};

pub fn run(data: &[u8]) {
    let path = crate::scratch::file("model.gguf", data);
    if let Err(e) = LoadedModel::load_gguf(&path, &LoadOptions::default()) {
        crate::said(e);
    }
}
