//! Token counts of examples as the model will see them: the chat template rendered, then
//! tokenized. Only the tokenizer and template are loaded, not the weights.

use std::path::Path;

use candle_core::quantized::gguf_file;
use hone_model::chat_template::ChatTemplate;
use hone_model::fetch::{resolve, ModelSource};
use hone_model::tokenizer::Tokenizer;

use crate::error::{Error, Result};
use crate::example::Example;

pub struct TokenCounter {
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
}

impl TokenCounter {
    /// From a model argument: a cached name (`smollm2`), a `.gguf` file or a Hugging Face folder.
    pub fn load(spec: &str) -> Result<Self> {
        match resolve(spec)? {
            ModelSource::Gguf(path) => Self::from_gguf(&path),
            ModelSource::HfDir(dir) => {
                let tokenizer = Tokenizer::from_file(&dir.join("tokenizer.json"))?;
                let template =
                    ChatTemplate::from_tokenizer_config(&dir.join("tokenizer_config.json"))?;
                Ok(Self {
                    tokenizer,
                    template,
                })
            }
        }
    }

    pub fn from_gguf(path: &Path) -> Result<Self> {
        let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let content = gguf_file::Content::read(&mut f).map_err(|e| Error::Format {
            path: path.to_path_buf(),
            msg: format!("not a GGUF file: {e}"),
        })?;
        let tokenizer = Tokenizer::from_gguf_metadata(&content.metadata)?;
        let template = ChatTemplate::from_gguf_metadata(&content.metadata, &tokenizer)?;
        Ok(Self {
            tokenizer,
            template,
        })
    }

    /// The most bytes of text one token stands for (the longest vocabulary entry, counted
    /// as stored, which is never less than the text it decodes to): a text of `b` bytes is
    /// at least `b / max_token_bytes()` tokens.
    pub fn max_token_bytes(&self) -> usize {
        (0..self.tokenizer.vocab_size() as u32)
            .filter_map(|id| self.tokenizer.id_to_token(id))
            .map(|t| t.len())
            .max()
            .unwrap_or(1)
            .max(1)
    }

    /// Tokens of the whole rendered conversation (what training sees).
    pub fn count(&self, ex: &Example) -> Result<usize> {
        let text = self.template.render(&ex.messages, false)?;
        Ok(self.tokenizer.encode(&text, true)?.len())
    }
}

/// The cached SmolLM2 GGUF, if present (tests that need it skip without it).
pub fn cached_smollm2() -> Option<std::path::PathBuf> {
    match resolve("smollm2") {
        Ok(ModelSource::Gguf(p)) => Some(p),
        _ => None,
    }
}
