//! Tokenizer: byte-level BPE built from a GGUF file's vocabulary (or a Hugging Face
//! `tokenizer.json`), encoding backed by the `tokenizers` crate.
//!
//! Why not candle's GGUF tokenizer helper: it does not know the `smollm` pre-tokenizer (it adds
//! a prefix space and does not split digits), so its ids differ from llama.cpp's and from the
//! Hugging Face tokenizer the model was trained with. Here the pre-tokenizer is chosen from
//! `tokenizer.ggml.pre` the way llama.cpp does (see [`PreTokenizerKind`]); the ids are tested
//! against llama.cpp's own tokenization of the same GGUF (`tests/tokenizer_llamacpp.rs`).
//!
//! Decoding of byte-level vocabularies does not go through `tokenizers`: every id maps to its raw
//! bytes once at load, `decode` is `String::from_utf8_lossy` of the concatenation (what the
//! `ByteLevel` decoder does), and [`DecodeStream`] emits exactly the same text piece by piece.
//!
//! # SentencePiece vocabularies in GGUF
//!
//! `tokenizer.ggml.model = "llama"` (Llama 2, Mistral, Gemma) is tokenized as llama.cpp's
//! `llm_tokenizer_spm` and SentencePiece itself do:
//!
//! - spaces become U+2581 (`▁`), with one more in front of the text (and after every special
//!   token) when `tokenizer.ggml.add_space_prefix` (default true; Gemma: false);
//! - pieces merge greedily, the pair whose merged token has the highest score first
//!   (`tokenizer.ggml.scores`; the leftmost among equals), implemented as llama.cpp does it
//!   (`tokenizer/spm.rs`, a `tokenizers` model inside the `tokenizers` pipeline, so added
//!   tokens, normalization and offsets work as for byte-level vocabularies). Building only
//!   indexes the vocabulary (no merge table): tens of milliseconds for Gemma's 262,144
//!   tokens. It is the same as BPE with the merges of every token that splits into two
//!   tokens, ranked by the merged token's score (HF's conversion of SentencePiece
//!   vocabularies), which is how [`Tokenizer::to_tokenizer_json`] writes it;
//! - a character not in the vocabulary becomes its UTF-8 bytes as `<0xXX>` tokens (byte
//!   fallback), `<unk>` only when those are missing;
//! - control (and unknown) tokens are matched whole in the text only when special tokens are
//!   parsed; user-defined tokens always, the longest first. A user-defined token with spaces
//!   (Gemma's runs of 2 to 31 spaces) is matched after spaces became `▁`, as SentencePiece
//!   matches it: llama.cpp's converter writes SentencePiece's `▁` in such tokens as spaces and
//!   llama.cpp then matches them before spaces are escaped, so there a `▁` typed in the text
//!   does not take part (`tests/tokenizer_spm.rs` says where hone differs from llama.cpp and
//!   from transformers, and why);
//! - `tokenizer.ggml.add_bos_token` (default true) / `add_eos_token` (default false).
//!
//! Decoding maps `▁` back to spaces and `<0xXX>` tokens to their bytes, fused into UTF-8 (the
//! same byte table as byte-level vocabularies); with a space prefix, one leading space of the
//! text is dropped (HF's `Strip` decoder).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use candle_core::quantized::gguf_file;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{
    AddedToken, DecoderWrapper, Encoding, NormalizerWrapper, PostProcessorWrapper,
    PreTokenizerWrapper, SplitDelimiterBehavior,
};

use crate::error::{Error, Result};

mod spm;
use spm::SpmModel;

/// The `tokenizers` pipeline around hone's SentencePiece model.
type SpmTokenizer = tokenizers::TokenizerImpl<
    SpmModel,
    NormalizerWrapper,
    PreTokenizerWrapper,
    PostProcessorWrapper,
    DecoderWrapper,
>;

/// What encodes: a `tokenizers` tokenizer (byte-level BPE, `tokenizer.json`), or the same
/// pipeline around [`SpmModel`] (SentencePiece vocabularies from GGUF).
#[derive(Clone)]
enum Backend {
    Hf(Box<tokenizers::Tokenizer>),
    Spm(Box<SpmTokenizer>),
}

impl Backend {
    fn set_encode_special_tokens(&mut self, value: bool) {
        match self {
            Self::Hf(t) => t.set_encode_special_tokens(value),
            Self::Spm(t) => t.set_encode_special_tokens(value),
        }
    }

    fn encode(&self, text: &str, add_special: bool, offsets: bool) -> Result<Encoding> {
        match (self, offsets) {
            (Self::Hf(t), false) => t.encode_fast(text, add_special),
            (Self::Hf(t), true) => t.encode(text, add_special),
            (Self::Spm(t), false) => t.encode_fast(text, add_special),
            (Self::Spm(t), true) => t.encode(text, add_special),
        }
        .map_err(tok_err)
    }

    fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        match self {
            Self::Hf(t) => t.decode(ids, skip_special),
            Self::Spm(t) => t.decode(ids, skip_special),
        }
        .map_err(tok_err)
    }

    /// As a `tokenizer.json` document; a SentencePiece model is written as the equivalent
    /// BPE model with byte fallback (built here: its merge table is not kept otherwise).
    fn to_json(&self, pretty: bool) -> Result<String> {
        match self {
            Self::Hf(t) => t.to_string(pretty).map_err(tok_err),
            Self::Spm(t) => {
                let bpe = t.get_model().to_bpe().map_err(tok_err)?;
                let mut hf = tokenizers::Tokenizer::new(bpe);
                hf.with_normalizer(t.get_normalizer().cloned());
                hf.with_decoder(t.get_decoder().cloned());
                let mut added: Vec<(u32, AddedToken)> =
                    t.get_added_tokens_decoder().into_iter().collect();
                added.sort_by_key(|(id, _)| *id);
                add_tokens(&mut hf, added.into_iter().map(|(_, a)| a).collect());
                hf.to_string(pretty).map_err(tok_err)
            }
        }
    }
}

// GPT-2's regex (`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`)
// is the one built into `ByteLevel(use_regex = true)`, as in the tokenizer.json files HF ships.
/// Llama 3's pre-tokenizer regex (`tokenizer.ggml.pre = llama-bpe`), in llama.cpp's
/// case-insensitive-contraction-free spelling.
const LLAMA3_REGEX: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen 2's pre-tokenizer regex: Llama 3's with single digits.
const QWEN2_REGEX: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// GGUF `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
const TOKEN_TYPE_NORMAL: i32 = 1;
const TOKEN_TYPE_UNKNOWN: i32 = 2;
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;
const TOKEN_TYPE_BYTE: i32 = 6;

/// SentencePiece's whitespace mark, U+2581.
const SPIECE_UNDERLINE: &str = "\u{2581}";

/// The byte of a byte-fallback token, `<0xXX>`.
fn byte_token_value(t: &str) -> Option<u8> {
    let hex = t.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// Token -> id, with the `tokenizers` crate's fast hash (a 262k vocabulary is hashed a few
/// million times while building).
type TokenMap = tokenizers::models::bpe::Vocab;

/// Token -> id; for a token spelled twice, the later id (llama.cpp's map).
fn token_to_id_map(tokens: &[String]) -> TokenMap {
    let mut m = TokenMap::with_capacity(tokens.len());
    for (i, t) in tokens.iter().enumerate() {
        m.insert(t.clone(), i as u32);
    }
    m
}

/// What a GGUF says about its vocabulary, whatever its model.
struct GgufVocab {
    tokens: Vec<String>,
    types: Vec<i32>,
    bos: Option<u32>,
    eos: Option<u32>,
    pad: Option<u32>,
    unk: Option<u32>,
}

/// The pre-tokenizers hone knows, named after llama.cpp's `tokenizer.ggml.pre` families.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreTokenizerKind {
    /// GPT-2 byte-level regex, no prefix space (`gpt-2`, `default`, `mpt`, `olmo`, ...).
    Gpt2,
    /// Every digit on its own, then the GPT-2 regex (`smollm`, `starcoder`, `refact`, ...).
    DigitsThenGpt2,
    /// Llama 3 regex (`llama-bpe`, `llama3`, `falcon3`, ...); also ignores merges for words
    /// that are whole tokens, as llama.cpp and HF do for it.
    Llama3,
    /// Qwen 2 regex (`qwen2`, `deepseek-r1-qwen`, `stablelm2`, ...).
    Qwen2,
}

impl PreTokenizerKind {
    /// The kind for a `tokenizer.ggml.pre` value; `None` if hone does not know it.
    pub fn from_gguf_pre(pre: &str) -> Option<Self> {
        Some(match pre {
            "" | "default" | "gpt-2" | "gpt2" | "phi-2" | "mpt" | "olmo" | "jais" | "trillion"
            | "jina-es" | "jina-de" | "jina-v2-es" | "jina-v2-de" | "jina-v1-en"
            | "jina-v2-code" | "roberta-bpe" | "gigachat" | "mellum" | "modern-bert"
            | "granite-docling" | "a.x-4.0" => Self::Gpt2,
            "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone"
            | "minerva-7b" | "mellum2" => Self::DigitsThenGpt2,
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral"
            | "midm-2.0" | "lfm2" | "dbrx" | "smaug-bpe" => Self::Llama3,
            "qwen2" | "deepseek-r1-qwen" | "stablelm2" | "hunyuan" | "kormo" | "megrez" => {
                Self::Qwen2
            }
            _ => return None,
        })
    }

    fn ignore_merges(self) -> bool {
        matches!(self, Self::Llama3)
    }

    fn build(self) -> Result<PreTokenizerWrapper> {
        let split = |re: &str| -> Result<PreTokenizerWrapper> {
            Split::new(
                SplitPattern::Regex(re.to_string()),
                SplitDelimiterBehavior::Isolated,
                false,
            )
            .map(PreTokenizerWrapper::Split)
            .map_err(|e| Error::Tokenizer(format!("pre-tokenizer regex: {e}")))
        };
        // ByteLevel with its own GPT-2 regex, or with no regex after a Split.
        let byte_level = |use_regex: bool| {
            PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, false, use_regex))
        };
        Ok(match self {
            Self::Gpt2 => byte_level(true),
            Self::DigitsThenGpt2 => PreTokenizerWrapper::Sequence(Sequence::new(vec![
                split(r"\p{N}")?,
                byte_level(true),
            ])),
            Self::Llama3 => PreTokenizerWrapper::Sequence(Sequence::new(vec![
                split(LLAMA3_REGEX)?,
                byte_level(false),
            ])),
            Self::Qwen2 => PreTokenizerWrapper::Sequence(Sequence::new(vec![
                split(QWEN2_REGEX)?,
                byte_level(false),
            ])),
        })
    }
}

/// GPT-2's byte -> printable char table: how byte-level BPE vocabularies spell raw bytes
/// (public so tests can spell byte-level tokens the way the decoder reads them).
pub fn byte_to_char_table() -> [char; 256] {
    let mut bs: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    let mut table = ['\0'; 256];
    for (b, c) in bs.into_iter().zip(cs) {
        table[b as usize] = char::from_u32(c).expect("valid char");
    }
    table
}

/// The raw bytes of a byte-level token, as HF's `ByteLevel` decoder computes them: every char
/// mapped back through the GPT-2 table, or the token's own UTF-8 if any char is not in it.
fn byte_level_token_bytes(token: &str, char_to_byte: &HashMap<char, u8>) -> Vec<u8> {
    token
        .chars()
        .map(|c| char_to_byte.get(&c).copied())
        .collect::<Option<Vec<u8>>>()
        .unwrap_or_else(|| token.as_bytes().to_vec())
}

#[derive(Debug)]
enum DecodeMode {
    /// Byte-level vocabulary: raw bytes per id.
    Bytes(Vec<Vec<u8>>),
    /// Anything else (SentencePiece-style `tokenizer.json`): `tokenizers`' own decoder.
    Hf,
}

struct Inner {
    /// Splits special tokens out of the text.
    hf: Backend,
    /// Same, but special (control) tokens are plain text.
    hf_plain: Backend,
    /// Whether `hf.encode` should run the file's post-processor (tokenizer.json with one).
    hf_add_special: bool,
    /// Tokens by id (the model vocabulary; added tokens included).
    tokens: Vec<String>,
    token_to_id: TokenMap,
    special: HashSet<u32>,
    decode_mode: DecodeMode,
    /// Drop one leading space of decoded text (a SentencePiece space prefix).
    strip_leading_space: bool,
    bos: Option<u32>,
    eos: Option<u32>,
    pad: Option<u32>,
    unk: Option<u32>,
    /// Prepend BOS / append EOS ourselves (GGUF: `add_bos_token` / `add_eos_token`).
    add_bos: bool,
    add_eos: bool,
}

/// Token ids and each token's byte range in the encoded text.
pub type Encoded = (Vec<u32>, Vec<(usize, usize)>);

/// A text tokenizer. Cheap to clone (shared inner state); `Send + Sync`.
#[derive(Clone)]
pub struct Tokenizer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("bos", &self.inner.bos)
            .field("eos", &self.inner.eos)
            .field("add_bos", &self.inner.add_bos)
            .field("special", &self.inner.special.len())
            .finish()
    }
}

fn md_str<'a>(md: &'a HashMap<String, gguf_file::Value>, key: &str) -> Option<&'a str> {
    md.get(key)
        .and_then(|v| v.to_string().ok())
        .map(|s| s.as_str())
}

fn md_u32(md: &HashMap<String, gguf_file::Value>, key: &str) -> Option<u32> {
    let v = md.get(key)?;
    v.to_u32()
        .ok()
        .or_else(|| v.to_i32().ok().and_then(|x| u32::try_from(x).ok()))
        .or_else(|| v.to_u64().ok().and_then(|x| u32::try_from(x).ok()))
        .or_else(|| v.to_i64().ok().and_then(|x| u32::try_from(x).ok()))
}

fn md_bool(md: &HashMap<String, gguf_file::Value>, key: &str) -> Option<bool> {
    md.get(key).and_then(|v| v.to_bool().ok())
}

fn md_i32(v: &gguf_file::Value) -> Option<i32> {
    v.to_i32()
        .ok()
        .or_else(|| v.to_u32().ok().map(|x| x as i32))
        .or_else(|| v.to_i64().ok().map(|x| x as i32))
        .or_else(|| v.to_u8().ok().map(|x| x as i32))
        .or_else(|| v.to_i8().ok().map(|x| x as i32))
}

fn tok_err(e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(e.to_string())
}

impl Tokenizer {
    /// Builds the tokenizer from GGUF metadata (`tokenizer.ggml.*`).
    ///
    /// Supports `tokenizer.ggml.model = "gpt2"` (byte-level BPE) with the pre-tokenizers of
    /// [`PreTokenizerKind`] (an unknown `tokenizer.ggml.pre` falls back to GPT-2 with a
    /// warning), and `"llama"` (SentencePiece BPE: Llama 2, Mistral, Gemma; see the module
    /// documentation).
    pub fn from_gguf_metadata(md: &HashMap<String, gguf_file::Value>) -> Result<Self> {
        let model = md_str(md, "tokenizer.ggml.model").unwrap_or("gpt2");
        match model {
            "gpt2" => Self::from_gguf_byte_level(md),
            "llama" => Self::from_gguf_sentencepiece(md),
            _ => Err(Error::Tokenizer(format!(
                "tokenizer.ggml.model = `{model}` is not supported (hone reads byte-level BPE, \
                 `gpt2`, and SentencePiece BPE, `llama`, vocabularies; use the model's \
                 tokenizer.json instead)"
            ))),
        }
    }

    /// What both GGUF vocabularies share: tokens, token types, the special ids.
    fn gguf_vocab(md: &HashMap<String, gguf_file::Value>) -> Result<GgufVocab> {
        let tokens: Vec<String> = md
            .get("tokenizer.ggml.tokens")
            .ok_or_else(|| Error::Tokenizer("GGUF has no `tokenizer.ggml.tokens`".into()))?
            .to_vec()
            .map_err(|e| Error::Tokenizer(format!("tokenizer.ggml.tokens: {e}")))?
            .iter()
            .map(|v| v.to_string().cloned())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::Tokenizer(format!("tokenizer.ggml.tokens: {e}")))?;
        if tokens.is_empty() {
            return Err(Error::Tokenizer("tokenizer.ggml.tokens is empty".into()));
        }
        let types: Vec<i32> = match md.get("tokenizer.ggml.token_type") {
            None => vec![TOKEN_TYPE_NORMAL; tokens.len()],
            Some(v) => v
                .to_vec()
                .map_err(|e| Error::Tokenizer(format!("tokenizer.ggml.token_type: {e}")))?
                .iter()
                .map(|x| md_i32(x).unwrap_or(TOKEN_TYPE_NORMAL))
                .chain(std::iter::repeat(TOKEN_TYPE_NORMAL))
                .take(tokens.len())
                .collect(),
        };
        let n = tokens.len() as u32;
        let valid = |id: Option<u32>| id.filter(|&i| i < n);
        Ok(GgufVocab {
            bos: valid(md_u32(md, "tokenizer.ggml.bos_token_id")),
            eos: valid(md_u32(md, "tokenizer.ggml.eos_token_id")),
            pad: valid(md_u32(md, "tokenizer.ggml.padding_token_id")),
            unk: valid(
                md_u32(md, "tokenizer.ggml.unknown_token_id")
                    .or_else(|| md_u32(md, "tokenizer.ggml.unk_token_id")),
            ),
            tokens,
            types,
        })
    }

    /// Byte-level BPE (`tokenizer.ggml.model = "gpt2"`).
    fn from_gguf_byte_level(md: &HashMap<String, gguf_file::Value>) -> Result<Self> {
        let GgufVocab {
            tokens,
            types: token_types,
            bos,
            eos,
            pad,
            unk,
        } = Self::gguf_vocab(md)?;
        let merges: Vec<(String, String)> = match md.get("tokenizer.ggml.merges") {
            None => Vec::new(),
            Some(v) => v
                .to_vec()
                .map_err(|e| Error::Tokenizer(format!("tokenizer.ggml.merges: {e}")))?
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let s = m
                        .to_string()
                        .map_err(|e| Error::Tokenizer(format!("tokenizer.ggml.merges: {e}")))?;
                    // Merge parts never contain a space in a byte-level vocabulary, but the
                    // second part may start with one in odd files: split at the first space
                    // after position 0, as llama.cpp does.
                    let cut = s
                        .bytes()
                        .skip(1)
                        .position(|b| b == b' ')
                        .map(|p| p + 1)
                        .ok_or_else(|| {
                            Error::Tokenizer(format!(
                                "tokenizer.ggml.merges[{i}] = {s:?}: no space"
                            ))
                        })?;
                    Ok((s[..cut].to_string(), s[cut + 1..].to_string()))
                })
                .collect::<Result<_>>()?,
        };

        let pre_name = md_str(md, "tokenizer.ggml.pre").unwrap_or("default");
        let pre = PreTokenizerKind::from_gguf_pre(pre_name).unwrap_or_else(|| {
            tracing::warn!(
                pre = pre_name,
                "unknown tokenizer.ggml.pre; falling back to the GPT-2 pre-tokenizer (ids may \
                 differ from the model's own tokenizer)"
            );
            PreTokenizerKind::Gpt2
        });

        let add_bos = md_bool(md, "tokenizer.ggml.add_bos_token")
            .unwrap_or(matches!(pre, PreTokenizerKind::Llama3))
            && bos.is_some();
        let add_eos = md_bool(md, "tokenizer.ggml.add_eos_token").unwrap_or(false) && eos.is_some();

        let token_to_id = token_to_id_map(&tokens);

        let mut bpe = BPE::builder()
            .vocab_and_merges(token_to_id.clone(), merges)
            .ignore_merges(pre.ignore_merges());
        if let Some(u) = unk {
            bpe = bpe.unk_token(tokens[u as usize].clone());
        }
        let bpe = bpe
            .build()
            .map_err(|e| Error::Tokenizer(format!("BPE: {e}")))?;
        let mut hf = tokenizers::Tokenizer::new(bpe);
        hf.with_pre_tokenizer(Some(pre.build()?));
        hf.with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevel::default())));

        // Control (and unknown) tokens are special: parsed from text only on request, skipped
        // by `decode(.., skip_special = true)`. User-defined tokens are always parsed, as in
        // llama.cpp.
        let (mut special, added) = added_tokens(&tokens, &token_types, |_| false);
        special.extend(bos);
        special.extend(eos);
        add_tokens(&mut hf, added);

        let char_to_byte: HashMap<char, u8> = byte_to_char_table()
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect();
        let bytes = tokens
            .iter()
            .map(|t| byte_level_token_bytes(t, &char_to_byte))
            .collect();

        let hf = Backend::Hf(Box::new(hf));
        Ok(Self::assemble(Inner {
            hf_plain: hf.clone(),
            hf,
            hf_add_special: false,
            tokens,
            token_to_id,
            special,
            decode_mode: DecodeMode::Bytes(bytes),
            strip_leading_space: false,
            bos,
            eos,
            pad,
            unk,
            add_bos,
            add_eos,
        }))
    }

    /// SentencePiece BPE (`tokenizer.ggml.model = "llama"`); see the module documentation.
    fn from_gguf_sentencepiece(md: &HashMap<String, gguf_file::Value>) -> Result<Self> {
        let GgufVocab {
            tokens,
            types,
            bos,
            eos,
            pad,
            unk,
        } = Self::gguf_vocab(md)?;
        let n = tokens.len();
        let scores: Vec<f32> = match md.get("tokenizer.ggml.scores") {
            // No scores: the vocabulary's order (SentencePiece writes pieces best first).
            None => (0..n).map(|i| -(i as f32)).collect(),
            Some(v) => {
                let v = v
                    .to_vec()
                    .map_err(|e| Error::Tokenizer(format!("tokenizer.ggml.scores: {e}")))?;
                if v.len() != n {
                    return Err(Error::Tokenizer(format!(
                        "tokenizer.ggml.scores has {} entries for {n} tokens",
                        v.len()
                    )));
                }
                v.iter()
                    .map(|x| {
                        x.to_f32()
                            .or_else(|_| x.to_f64().map(|f| f as f32))
                            .map_err(|e| Error::Tokenizer(format!("tokenizer.ggml.scores: {e}")))
                    })
                    .collect::<Result<_>>()?
            }
        };
        let add_bos = md_bool(md, "tokenizer.ggml.add_bos_token").unwrap_or(true) && bos.is_some();
        let add_eos = md_bool(md, "tokenizer.ggml.add_eos_token").unwrap_or(false) && eos.is_some();
        let space_prefix = md_bool(md, "tokenizer.ggml.add_space_prefix").unwrap_or(true);

        // The encoder's spelling: a user-defined token with spaces gets its `▁` back, to be
        // matched after the normalizer (without a space prefix only: the prefix normalizer
        // would also prepend one to the token itself).
        let respell = |i: usize| {
            !space_prefix && types[i] == TOKEN_TYPE_USER_DEFINED && tokens[i].contains(' ')
        };
        let spelled: Vec<String> = (0..n)
            .map(|i| {
                if respell(i) {
                    tokens[i].replace(' ', SPIECE_UNDERLINE)
                } else {
                    tokens[i].clone()
                }
            })
            .collect();
        // hone's own map keeps the GGUF's spelling.
        let token_to_id = token_to_id_map(&tokens);
        let (mut special, added) = added_tokens(&spelled, &types, respell);
        let mut hf = SpmTokenizer::new(SpmModel::new(spelled, scores, unk));
        let escape = NormalizerWrapper::Replace(
            Replace::new(" ", SPIECE_UNDERLINE).map_err(|e| Error::Tokenizer(e.to_string()))?,
        );
        hf.with_normalizer(Some(if space_prefix {
            NormalizerWrapper::Sequence(NormalizerSequence::new(vec![
                NormalizerWrapper::Prepend(Prepend::new(SPIECE_UNDERLINE.to_string())),
                escape,
            ]))
        } else {
            escape
        }));
        // For `to_tokenizer_json` (hone decodes from the byte table below): HF's decoder for
        // these vocabularies.
        let mut decoders = vec![
            DecoderWrapper::Replace(
                Replace::new(SPIECE_UNDERLINE, " ").map_err(|e| Error::Tokenizer(e.to_string()))?,
            ),
            DecoderWrapper::ByteFallback(ByteFallback::new()),
            DecoderWrapper::Fuse(Fuse::new()),
        ];
        if space_prefix {
            decoders.push(DecoderWrapper::Strip(Strip::new(' ', 1, 0)));
        }
        hf.with_decoder(Some(DecoderWrapper::Sequence(DecoderSequence::new(
            decoders,
        ))));

        special.extend(bos);
        special.extend(eos);
        let (special_tokens, normal): (Vec<_>, Vec<_>) = added.into_iter().partition(|t| t.special);
        hf.add_special_tokens(&special_tokens);
        hf.add_tokens(&normal);
        let hf = Backend::Spm(Box::new(hf));

        let bytes = tokens
            .iter()
            .zip(&types)
            .map(|(t, &ty)| match (ty, byte_token_value(t)) {
                (TOKEN_TYPE_BYTE, Some(b)) => vec![b],
                _ => t.replace(SPIECE_UNDERLINE, " ").into_bytes(),
            })
            .collect();
        Ok(Self::assemble(Inner {
            hf_plain: hf.clone(),
            hf,
            hf_add_special: false,
            tokens,
            token_to_id,
            special,
            decode_mode: DecodeMode::Bytes(bytes),
            strip_leading_space: space_prefix,
            bos,
            eos,
            pad,
            unk,
            add_bos,
            add_eos,
        }))
    }

    /// Reads a GGUF file's metadata and builds the tokenizer from it.
    pub fn from_gguf_file(path: &Path) -> Result<Self> {
        let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let content = gguf_file::Content::read(&mut file).map_err(|e| Error::Gguf {
            path: path.to_path_buf(),
            msg: e.to_string(),
        })?;
        Self::from_gguf_metadata(&content.metadata)
    }

    /// Loads a Hugging Face `tokenizer.json`. BOS / EOS come from `tokenizer_config.json` (or
    /// `special_tokens_map.json`) beside it when present. If the file has a post-processor it
    /// decides what `encode` adds (e.g. Llama's BOS); otherwise `add_bos_token` /
    /// `add_eos_token` of `tokenizer_config.json` do.
    pub fn from_file(tokenizer_json: &Path) -> Result<Self> {
        let hf = tokenizers::Tokenizer::from_file(tokenizer_json)
            .map_err(|e| Error::Tokenizer(format!("{}: {e}", tokenizer_json.display())))?;
        let dir = tokenizer_json.parent().unwrap_or(Path::new("."));
        let read_json = |name: &str| -> Result<Option<serde_json::Value>> {
            let p = dir.join(name);
            match std::fs::read_to_string(&p) {
                Ok(s) => serde_json::from_str(&s)
                    .map(Some)
                    .map_err(|e| Error::Tokenizer(format!("{}: {e}", p.display()))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::io(p, e)),
            }
        };
        let config = read_json("tokenizer_config.json")?;
        let special_map = read_json("special_tokens_map.json")?;
        let token_name = |key: &str| -> Option<String> {
            [config.as_ref(), special_map.as_ref()]
                .into_iter()
                .flatten()
                .find_map(|j| match j.get(key)? {
                    serde_json::Value::String(s) => Some(s.clone()),
                    serde_json::Value::Object(o) => {
                        o.get("content").and_then(|c| c.as_str()).map(String::from)
                    }
                    _ => None,
                })
        };
        let config_bool = |key: &str| {
            config
                .as_ref()
                .and_then(|c| c.get(key))
                .and_then(|v| v.as_bool())
        };

        let vocab_size = hf.get_vocab_size(true);
        let mut tokens = vec![String::new(); vocab_size];
        let mut token_to_id = TokenMap::with_capacity(vocab_size);
        for (t, id) in hf.get_vocab(true) {
            if (id as usize) >= tokens.len() {
                tokens.resize(id as usize + 1, String::new());
            }
            tokens[id as usize] = t.clone();
            token_to_id.insert(t, id);
        }
        let special: HashSet<u32> = hf
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, t)| t.special)
            .map(|(id, _)| id)
            .collect();
        let lookup = |name: Option<String>| name.and_then(|n| token_to_id.get(&n).copied());
        let bos = lookup(token_name("bos_token"));
        let eos = lookup(token_name("eos_token")).or_else(|| {
            ["<|endoftext|>", "</s>", "<|im_end|>", "<|eot_id|>", "<eos>"]
                .iter()
                .find_map(|n| token_to_id.get(*n).copied())
        });
        let pad = lookup(token_name("pad_token"));
        let unk = lookup(token_name("unk_token"));
        let hf_add_special = hf.get_post_processor().is_some();
        let add_bos =
            !hf_add_special && config_bool("add_bos_token").unwrap_or(false) && bos.is_some();
        let add_eos =
            !hf_add_special && config_bool("add_eos_token").unwrap_or(false) && eos.is_some();

        let decode_mode = match hf.get_decoder() {
            Some(DecoderWrapper::ByteLevel(_)) => {
                let char_to_byte: HashMap<char, u8> = byte_to_char_table()
                    .iter()
                    .enumerate()
                    .map(|(b, &c)| (c, b as u8))
                    .collect();
                DecodeMode::Bytes(
                    tokens
                        .iter()
                        .map(|t| byte_level_token_bytes(t, &char_to_byte))
                        .collect(),
                )
            }
            _ => DecodeMode::Hf,
        };
        let hf = Backend::Hf(Box::new(hf));
        let mut hf_plain = hf.clone();
        hf_plain.set_encode_special_tokens(true);
        let mut hf = hf;
        hf.set_encode_special_tokens(false);
        Ok(Self {
            inner: Arc::new(Inner {
                hf,
                hf_plain,
                hf_add_special,
                tokens,
                token_to_id,
                special,
                decode_mode,
                strip_leading_space: false,
                bos,
                eos,
                pad,
                unk,
                add_bos,
                add_eos,
            }),
        })
    }

    fn assemble(mut inner: Inner) -> Self {
        inner.hf.set_encode_special_tokens(false);
        inner.hf_plain.set_encode_special_tokens(true);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Encodes `text`. Special tokens written in the text (`<|im_start|>`) become their ids only
    /// when `parse_special`; otherwise they are tokenized as plain text. BOS / EOS are added only
    /// if the model asks for it (`add_bos_token` / `add_eos_token`, or the tokenizer.json's
    /// post-processor).
    pub fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<u32>> {
        let inner = &*self.inner;
        let hf = if parse_special {
            &inner.hf
        } else {
            &inner.hf_plain
        };
        let enc = hf.encode(text, inner.hf_add_special, false)?;
        let mut ids = Vec::with_capacity(enc.len() + 2);
        if inner.add_bos {
            ids.extend(inner.bos);
        }
        ids.extend_from_slice(enc.get_ids());
        if inner.add_eos {
            ids.extend(inner.eos);
        }
        Ok(ids)
    }

    /// Like [`Tokenizer::encode`], with each token's byte range in `text` (BOS / EOS added
    /// by the tokenizer get empty ranges). Training uses it to map the chat template's
    /// assistant spans onto tokens.
    pub fn encode_with_offsets(&self, text: &str, parse_special: bool) -> Result<Encoded> {
        let inner = &*self.inner;
        let hf = if parse_special {
            &inner.hf
        } else {
            &inner.hf_plain
        };
        let enc = hf.encode(text, inner.hf_add_special, true)?;
        let mut ids = Vec::with_capacity(enc.len() + 2);
        let mut offs = Vec::with_capacity(enc.len() + 2);
        if inner.add_bos {
            if let Some(b) = inner.bos {
                ids.push(b);
                offs.push((0, 0));
            }
        }
        ids.extend_from_slice(enc.get_ids());
        offs.extend_from_slice(enc.get_offsets());
        if inner.add_eos {
            if let Some(e) = inner.eos {
                ids.push(e);
                offs.push((text.len(), text.len()));
            }
        }
        Ok((ids, offs))
    }

    /// Decodes ids to text (invalid UTF-8 becomes U+FFFD). `skip_special` drops special tokens
    /// (control tokens, BOS, EOS). An id outside the vocabulary is an error.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        let inner = &*self.inner;
        match &inner.decode_mode {
            DecodeMode::Bytes(table) => {
                let mut buf = Vec::with_capacity(ids.len() * 4);
                for &id in ids {
                    let b = table.get(id as usize).ok_or_else(|| self.bad_id(id))?;
                    if !(skip_special && inner.special.contains(&id)) {
                        buf.extend_from_slice(b);
                    }
                }
                if inner.strip_leading_space && buf.first() == Some(&b' ') {
                    buf.remove(0);
                }
                Ok(match String::from_utf8(buf) {
                    Ok(s) => s,
                    Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
                })
            }
            DecodeMode::Hf => {
                if let Some(&id) = ids.iter().find(|&&id| id as usize >= inner.tokens.len()) {
                    return Err(self.bad_id(id));
                }
                inner.hf.decode(ids, skip_special)
            }
        }
    }

    fn bad_id(&self, id: u32) -> Error {
        Error::Tokenizer(format!(
            "token id {id} is outside the vocabulary ({} tokens)",
            self.vocab_size()
        ))
    }

    /// An incremental decoder for streaming output; see [`DecodeStream`].
    pub fn decode_stream(&self, skip_special: bool) -> DecodeStream {
        DecodeStream::new(self, skip_special)
    }

    /// Number of token ids (the vocabulary, added tokens included).
    pub fn vocab_size(&self) -> usize {
        self.inner.tokens.len()
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.inner.bos
    }

    pub fn eos_id(&self) -> Option<u32> {
        self.inner.eos
    }

    pub fn pad_id(&self) -> Option<u32> {
        self.inner.pad
    }

    pub fn unk_id(&self) -> Option<u32> {
        self.inner.unk
    }

    /// Whether `encode` prepends BOS.
    pub fn adds_bos(&self) -> bool {
        self.inner.add_bos
    }

    /// The id of a token given by its vocabulary string (e.g. `"<|im_end|>"`, or `"Ġthe"` in a
    /// byte-level vocabulary).
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id.get(token).copied()
    }

    /// The vocabulary string of an id (byte-level form, e.g. `"Ġthe"`).
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.tokens.get(id as usize).cloned()
    }

    /// Whether `id` is a special (control) token: skipped by `decode(.., true)`.
    pub fn is_special(&self, id: u32) -> bool {
        self.inner.special.contains(&id)
    }

    /// The encoder as a Hugging Face `tokenizer.json` document (vocabulary, merges, added
    /// tokens, pre-tokenizer, decoder). BOS / EOS handling is not part of it: write
    /// `tokenizer_config.json` beside it for [`Tokenizer::from_file`].
    pub fn to_tokenizer_json(&self, pretty: bool) -> Result<String> {
        self.inner.hf.to_json(pretty)
    }

    /// All special token ids, sorted.
    pub fn special_ids(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.inner.special.iter().copied().collect();
        v.sort_unstable();
        v
    }
}

/// The GGUF tokens matched as whole pieces before the model runs: control (and unknown) tokens
/// are special (parsed from text only on request, skipped by `decode(.., skip_special =
/// true)`); user-defined tokens are always parsed, as in llama.cpp. `normalized(i)`: whether
/// token `i` is matched after the normalizer (SentencePiece user tokens spelled with `▁`).
fn added_tokens(
    tokens: &[String],
    types: &[i32],
    normalized: impl Fn(usize) -> bool,
) -> (HashSet<u32>, Vec<AddedToken>) {
    let mut special = HashSet::new();
    let mut added = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if t.is_empty() {
            continue;
        }
        match types[i] {
            TOKEN_TYPE_CONTROL | TOKEN_TYPE_UNKNOWN => {
                special.insert(i as u32);
                added.push(AddedToken::from(t.clone(), true).normalized(false));
            }
            TOKEN_TYPE_USER_DEFINED => {
                added.push(AddedToken::from(t.clone(), false).normalized(normalized(i)));
            }
            _ => {}
        }
    }
    (special, added)
}

fn add_tokens(hf: &mut tokenizers::Tokenizer, added: Vec<AddedToken>) {
    let (special, normal): (Vec<_>, Vec<_>) = added.into_iter().partition(|t| t.special);
    if !special.is_empty() {
        hf.add_special_tokens(&special);
    }
    if !normal.is_empty() {
        hf.add_tokens(&normal);
    }
}

/// Incremental detokenizer for streaming generation.
///
/// [`step`](Self::step) takes one id and returns the text that became complete with it (often
/// empty while a multi-byte character is split across byte-level tokens); [`finish`](Self::finish)
/// returns whatever is left (an incomplete UTF-8 tail becomes U+FFFD, as in `decode`). The
/// concatenation of all returned pieces equals `tokenizer.decode(all_ids, skip_special)`.
#[derive(Clone, Debug)]
pub struct DecodeStream {
    tokenizer: Tokenizer,
    skip_special: bool,
    /// Byte mode: bytes not yet emitted (an incomplete UTF-8 sequence at most).
    pending: Vec<u8>,
    /// Byte mode: no byte has come yet (a leading space may be due for dropping).
    at_start: bool,
    /// Generic mode: ids seen, and HF-style offsets.
    ids: Vec<u32>,
    prefix_offset: usize,
    read_offset: usize,
}

impl DecodeStream {
    pub fn new(tokenizer: &Tokenizer, skip_special: bool) -> Self {
        Self {
            tokenizer: tokenizer.clone(),
            skip_special,
            pending: Vec::new(),
            at_start: true,
            ids: Vec::new(),
            prefix_offset: 0,
            read_offset: 0,
        }
    }

    /// Pushes one id; returns the newly completed text (possibly empty).
    pub fn step(&mut self, id: u32) -> Result<String> {
        let tok = self.tokenizer.clone();
        let inner = &*tok.inner;
        match &inner.decode_mode {
            DecodeMode::Bytes(table) => {
                let b = table.get(id as usize).ok_or_else(|| tok.bad_id(id))?;
                if self.skip_special && inner.special.contains(&id) {
                    return Ok(String::new());
                }
                let mut b = b.as_slice();
                if self.at_start && !b.is_empty() {
                    if inner.strip_leading_space && b[0] == b' ' {
                        b = &b[1..];
                    }
                    self.at_start = false;
                }
                self.pending.extend_from_slice(b);
                Ok(self.drain_utf8(false))
            }
            DecodeMode::Hf => {
                if id as usize >= inner.tokens.len() {
                    return Err(tok.bad_id(id));
                }
                self.ids.push(id);
                self.generic_diff(false)
            }
        }
    }

    /// Ends the stream: returns any text held back (an incomplete UTF-8 tail as U+FFFD).
    pub fn finish(&mut self) -> Result<String> {
        match &self.tokenizer.inner.decode_mode {
            DecodeMode::Bytes(_) => Ok(self.drain_utf8(true)),
            DecodeMode::Hf => self.generic_diff(true),
        }
    }

    /// Emits the longest decodable prefix of `pending`, replacing invalid sequences with U+FFFD
    /// exactly as `String::from_utf8_lossy` does; an incomplete tail waits unless `at_end`.
    fn drain_utf8(&mut self, at_end: bool) -> String {
        let mut out = String::new();
        let mut start = 0;
        loop {
            let rest = &self.pending[start..];
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    start = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(std::str::from_utf8(&rest[..valid]).expect("valid prefix"));
                    match e.error_len() {
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            start += valid + bad;
                        }
                        None => {
                            start += valid;
                            if at_end {
                                out.push(char::REPLACEMENT_CHARACTER);
                                start = self.pending.len();
                            }
                            break;
                        }
                    }
                }
            }
        }
        self.pending.drain(..start);
        out
    }

    /// HF-style windowed diff for non-byte-level decoders.
    fn generic_diff(&mut self, at_end: bool) -> Result<String> {
        let tok = &self.tokenizer;
        if self.read_offset >= self.ids.len() {
            return Ok(String::new());
        }
        let prefix = tok.decode(
            &self.ids[self.prefix_offset..self.read_offset],
            self.skip_special,
        )?;
        let full = tok.decode(&self.ids[self.prefix_offset..], self.skip_special)?;
        if full.len() > prefix.len()
            && (at_end || !full.ends_with(char::REPLACEMENT_CHARACTER))
            && full.is_char_boundary(prefix.len())
        {
            let new = full[prefix.len()..].to_string();
            self.prefix_offset = self.read_offset;
            self.read_offset = self.ids.len();
            Ok(new)
        } else {
            Ok(String::new())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_is_gpt2() {
        let t = byte_to_char_table();
        assert_eq!(t[b' ' as usize], 'Ġ');
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[b'a' as usize], 'a');
        let set: HashSet<char> = t.iter().copied().collect();
        assert_eq!(set.len(), 256);
    }

    #[test]
    fn pre_tokenizer_splits() {
        use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};
        let text = "Hello world 1234567 it's\n\n  x";
        let splits = |kind: PreTokenizerKind| -> Vec<String> {
            let mut pts = PreTokenizedString::from(text);
            kind.build().unwrap().pre_tokenize(&mut pts).unwrap();
            pts.get_splits(OffsetReferential::Original, OffsetType::Byte)
                .into_iter()
                .map(|(_, (a, b), _)| text[a..b].to_string())
                .collect()
        };
        assert_eq!(
            splits(PreTokenizerKind::Gpt2),
            ["Hello", " world", " 1234567", " it", "'s", "\n\n ", " x"]
        );
        assert_eq!(
            splits(PreTokenizerKind::DigitsThenGpt2),
            [
                "Hello", " world", " ", "1", "2", "3", "4", "5", "6", "7", " it", "'s", "\n\n ",
                " x"
            ]
        );
        assert_eq!(
            splits(PreTokenizerKind::Llama3),
            ["Hello", " world", " ", "123", "456", "7", " it", "'s", "\n\n", " ", " x"]
        );
        assert_eq!(
            splits(PreTokenizerKind::Qwen2),
            [
                "Hello", " world", " ", "1", "2", "3", "4", "5", "6", "7", " it", "'s", "\n\n",
                " ", " x"
            ]
        );
        assert_eq!(
            PreTokenizerKind::from_gguf_pre("smollm"),
            Some(PreTokenizerKind::DigitsThenGpt2)
        );
        assert_eq!(
            PreTokenizerKind::from_gguf_pre("llama-bpe"),
            Some(PreTokenizerKind::Llama3)
        );
        assert_eq!(
            PreTokenizerKind::from_gguf_pre("qwen2"),
            Some(PreTokenizerKind::Qwen2)
        );
        assert_eq!(
            PreTokenizerKind::from_gguf_pre("gpt2"),
            Some(PreTokenizerKind::Gpt2)
        );
        assert_eq!(PreTokenizerKind::from_gguf_pre("no-such"), None);
    }

    #[test]
    fn unsupported_model_is_an_error() {
        let mut md = HashMap::new();
        md.insert(
            "tokenizer.ggml.model".to_string(),
            gguf_file::Value::String("bert".into()),
        );
        let err = Tokenizer::from_gguf_metadata(&md).unwrap_err();
        assert!(err.to_string().contains("not supported"), "{err}");
    }

    #[test]
    fn tokenizer_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone>() {}
        check::<Tokenizer>();
        check::<DecodeStream>();
    }
}
