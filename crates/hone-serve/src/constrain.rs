//! Constrained decoding for OpenAI's `response_format`: `{"type":"json_schema",..}` and
//! `{"type":"json_object"}`, enforced token by token with [llguidance].
//!
//! [`ConstraintFactory`] is built once per tokenizer: it turns every vocabulary id into the
//! bytes it stands for (a token trie) and precomputes llguidance's lexer slices, which takes a
//! moment for a 49k vocabulary. It is `Send + Sync`; each request then gets a cheap
//! [`Constraint`] from it.
//!
//! The decode loop of one request is:
//!
//! ```text
//! loop {
//!     logits = model.forward(..);
//!     constraint.mask_logits(&mut logits)?;   // disallowed ids -> -inf
//!     token = sample(&logits);
//!     constraint.commit(token)?;              // advance the grammar
//!     if token == eos { break }
//! }
//! ```
//!
//! Once the value is complete (`is_finished()`), the mask allows EOS only, so the engine ends
//! the request by sampling EOS as usual (or may stop right away when `is_finished()`).
//!
//! # Token bytes
//!
//! The vocabulary is byte-level BPE (GPT-2 style): a token string such as `"Ġthe"` is mapped
//! back to its bytes (`" the"`) through the inverse of GPT-2's `bytes_to_unicode` table.
//! SentencePiece vocabularies with byte fallback (`"▁the"`, `"<0x0A>"`) are recognised too.
//! Special (control) tokens become toktrie's special-token form, the marker byte `0xFF`
//! followed by the token's name, so no JSON grammar ever allows them; so do ids the model has
//! beyond the tokenizer's vocabulary (`0xFF "<[id]>"`).
//!
//! # JSON layout
//!
//! The JSON is compact: llguidance's `whitespace_flexible` is off and there is no whitespace
//! pattern, so no whitespace may appear between tokens of the JSON value (only inside strings),
//! and the separators are exactly `,` and `:`. A small model otherwise tends to loop on
//! whitespace (newlines and indentation are always allowed, so it never has to commit to a
//! value). `oneOf` is accepted and enforced as `anyOf` (`coerce_one_of`). Any `x-guidance`
//! options in the request's schema are replaced by these.

use std::sync::Arc;

use hone_model::tokenizer::Tokenizer;
use llguidance::api::{StopReason, TopLevelGrammar};
use llguidance::toktrie::{SimpleVob, TokRxInfo, TokTrie, TokenId, TokenizerEnv};
use llguidance::{JsonCompileOptions, Matcher, ParserFactory};

use crate::error::{Result, ServeError};

/// Built once per tokenizer, shared across threads (`Send + Sync`), cheap to create
/// constraints from.
#[derive(Clone)]
pub struct ConstraintFactory {
    factory: Arc<ParserFactory>,
    vocab: usize,
    eos: u32,
}

impl std::fmt::Debug for ConstraintFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConstraintFactory")
            .field("vocab", &self.vocab)
            .field("eos", &self.eos)
            .finish()
    }
}

/// One request's constraint state. `Send`: it moves into the engine thread.
pub struct Constraint {
    matcher: Matcher,
    /// The mask of the last `mask_logits`, until the next `commit` consumes it.
    mask: Option<SimpleVob>,
    vocab: usize,
    eos: u32,
}

impl std::fmt::Debug for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Constraint")
            .field("stop_reason", &self.matcher.stop_reason())
            .field("error", &self.matcher.get_error())
            .finish()
    }
}

// Compile-time checks of the thread-safety the engine relies on.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    const fn send<T: Send>() {}
    send_sync::<ConstraintFactory>();
    send::<Constraint>();
};

/// The JSON options every grammar is compiled with; see the module docs.
fn json_options() -> JsonCompileOptions {
    JsonCompileOptions {
        item_separator: ",".to_string(),
        key_separator: ":".to_string(),
        whitespace_flexible: false,
        whitespace_pattern: None,
        coerce_one_of: true,
        lenient: false,
        ..JsonCompileOptions::default()
    }
}

impl ConstraintFactory {
    /// Builds the token trie of `tokenizer` for a model whose logits have `model_vocab`
    /// entries (at least the tokenizer's vocabulary; extra ids are never allowed).
    pub fn new(tokenizer: &Tokenizer, model_vocab: usize) -> Result<Self> {
        let n_tok = tokenizer.vocab_size();
        if model_vocab < n_tok {
            return Err(ServeError::Internal(format!(
                "constrained decoding: the model's vocabulary ({model_vocab}) is smaller than \
                 the tokenizer's ({n_tok})"
            )));
        }
        if model_vocab > u32::MAX as usize / 2 {
            return Err(ServeError::Internal(format!(
                "constrained decoding: vocabulary of {model_vocab} is too large"
            )));
        }
        let eos = tokenizer.eos_id().ok_or_else(|| {
            ServeError::Internal(
                "constrained decoding needs an EOS token and the tokenizer has none".into(),
            )
        })?;
        let words = token_bytes(tokenizer, model_vocab);
        let info = TokRxInfo {
            vocab_size: model_vocab as u32,
            tok_eos: eos,
            tok_bos: tokenizer.bos_id(),
            tok_pad: tokenizer.pad_id(),
            tok_unk: tokenizer.unk_id(),
            tok_end_of_turn: None,
        };
        let trie = std::panic::catch_unwind(|| TokTrie::from(&info, &words)).map_err(|_| {
            ServeError::Internal("constrained decoding: building the token trie failed".into())
        })?;
        let env = HoneTokEnv {
            tokenizer: tokenizer.clone(),
            trie,
        };
        let tok_env: llguidance::toktrie::TokEnv = Arc::new(env);
        let mut factory = ParserFactory::new_simple(&tok_env).map_err(|e| {
            ServeError::Internal(format!("constrained decoding: llguidance setup: {e:#}"))
        })?;
        // Errors come back as values; nothing on stderr.
        factory.quiet();
        Ok(Self {
            factory: Arc::new(factory),
            vocab: model_vocab,
            eos,
        })
    }

    /// The model vocabulary size the constraints mask.
    pub fn vocab_size(&self) -> usize {
        self.vocab
    }

    /// The EOS id: the only token allowed once the output is complete.
    pub fn eos_id(&self) -> u32 {
        self.eos
    }

    /// A JSON value matching the schema (OpenAI `json_schema`). A schema llguidance cannot
    /// compile (invalid, unsupported or unsatisfiable) is [`ServeError::Grammar`] with
    /// llguidance's explanation.
    pub fn json_schema(&self, schema: &serde_json::Value) -> Result<Constraint> {
        let mut schema = match schema {
            serde_json::Value::Object(_) => schema.clone(),
            // `true` is the schema that accepts everything.
            serde_json::Value::Bool(true) => serde_json::json!({}),
            serde_json::Value::Bool(false) => {
                return Err(ServeError::Grammar(
                    "the schema `false` accepts no value".into(),
                ))
            }
            other => {
                return Err(ServeError::Grammar(format!(
                    "a JSON schema must be an object (or a boolean), not {}",
                    json_kind(other)
                )))
            }
        };
        if let Some(o) = schema.as_object_mut() {
            o.remove("x-guidance");
        }
        json_options().apply_to(&mut schema);
        let grammar = TopLevelGrammar::from_json_schema(schema);
        let parser = self
            .factory
            .create_parser(grammar)
            .map_err(|e| ServeError::Grammar(format!("invalid JSON schema: {e:#}")))?;
        let mut matcher = Matcher::new(Ok(parser));
        if let Some(e) = matcher.get_error() {
            return Err(ServeError::Grammar(format!("invalid JSON schema: {e}")));
        }
        for w in matcher.grammar_warnings() {
            tracing::debug!(warning = %w, "response_format schema");
        }
        Ok(Constraint {
            matcher,
            mask: None,
            vocab: self.vocab,
            eos: self.eos,
        })
    }

    /// Any JSON object (OpenAI `json_object`).
    pub fn json_object(&self) -> Result<Constraint> {
        self.json_schema(&serde_json::json!({"type": "object"}))
            .map_err(|e| ServeError::Internal(format!("json_object grammar: {e}")))
    }
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

fn internal(what: &str, e: impl std::fmt::Display) -> ServeError {
    ServeError::Internal(format!("constrained decoding: {what}: {e}"))
}

impl Constraint {
    /// Sets the logit of every token the grammar does not allow next to `f32::NEG_INFINITY`.
    /// When the grammar is complete, only EOS is allowed. `logits.len()` must be the model
    /// vocabulary. One mask computation per call; call it once per step, before `commit`.
    pub fn mask_logits(&mut self, logits: &mut [f32]) -> Result<()> {
        if logits.len() != self.vocab {
            return Err(ServeError::Internal(format!(
                "constrained decoding: {} logits for a vocabulary of {}",
                logits.len(),
                self.vocab
            )));
        }
        let mask = if self.is_finished() {
            self.eos_only()
        } else {
            self.matcher
                .compute_mask_or_eos()
                .map_err(|e| internal("computing the token mask", e))?
        };
        if mask.is_zero() {
            return Err(ServeError::Internal(
                "constrained decoding: the grammar allows no token here".into(),
            ));
        }
        apply_mask(&mask, logits);
        self.mask = Some(mask);
        Ok(())
    }

    /// Advances past the sampled token; an error if the token was not allowed (the state is
    /// then unchanged). EOS is allowed where the output is a complete value, and is a no-op
    /// once [`is_finished`](Self::is_finished).
    ///
    /// After `mask_logits` the check is a bit lookup in that mask; without it the token is
    /// validated against the grammar directly.
    pub fn commit(&mut self, token: u32) -> Result<()> {
        if token as usize >= self.vocab {
            self.mask = None;
            return Err(ServeError::Internal(format!(
                "constrained decoding: token {token} is outside the vocabulary ({})",
                self.vocab
            )));
        }
        let allowed = match self.mask.take() {
            Some(mask) => mask.is_allowed(token),
            None => self.validate(token)?,
        };
        if !allowed {
            return Err(ServeError::Internal(format!(
                "constrained decoding: token {token} is not allowed by the response_format \
                 grammar here"
            )));
        }
        if self.is_finished() {
            // Only EOS gets here (the mask of a finished constraint is EOS alone).
            return Ok(());
        }
        self.matcher
            .consume_token(token as TokenId)
            .map_err(|e| internal(&format!("committing token {token}"), e))
    }

    /// True once the output is a complete value and nothing more may follow (or EOS was
    /// committed where the value could have ended).
    pub fn is_finished(&self) -> bool {
        matches!(
            self.matcher.stop_reason(),
            StopReason::NoExtension | StopReason::NoExtensionBias | StopReason::EndOfSentence
        )
    }

    /// Whether `token` may come next, without a precomputed mask.
    fn validate(&mut self, token: u32) -> Result<bool> {
        if self.is_finished() {
            return Ok(token == self.eos);
        }
        if let Some(e) = self.matcher.get_error() {
            return Err(internal("grammar state", e));
        }
        if token == self.eos {
            return self
                .matcher
                .is_accepting()
                .map_err(|e| internal("checking EOS", e));
        }
        let n = self
            .matcher
            .validate_tokens(&[token as TokenId])
            .map_err(|e| internal(&format!("validating token {token}"), e))?;
        Ok(n == 1)
    }

    fn eos_only(&self) -> SimpleVob {
        let mut v = SimpleVob::alloc(self.vocab);
        v.allow_token(self.eos);
        v
    }
}

/// Sets every logit whose bit is clear in `mask` to -inf: one pass over the mask's 32-bit
/// words, whole words of disallowed ids filled at once.
fn apply_mask(mask: &SimpleVob, logits: &mut [f32]) {
    let words = mask.as_slice();
    for (i, chunk) in logits.chunks_mut(32).enumerate() {
        let w = words.get(i).copied().unwrap_or(0);
        if w == u32::MAX {
            continue;
        }
        if w == 0 {
            chunk.fill(f32::NEG_INFINITY);
            continue;
        }
        for (bit, l) in chunk.iter_mut().enumerate() {
            if w & (1 << bit) == 0 {
                *l = f32::NEG_INFINITY;
            }
        }
    }
}

/// toktrie's view of the hone tokenizer.
struct HoneTokEnv {
    tokenizer: Tokenizer,
    trie: TokTrie,
}

impl TokenizerEnv for HoneTokEnv {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    /// The tokenizer's own (canonical) encoding; special tokens in the text are plain text.
    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        self.trie.tokenize_with_greedy_fallback(s, |text| {
            match self.tokenizer.encode(text, false) {
                // With `parse_special = false` a special id can only be the BOS / EOS the
                // tokenizer adds itself: not part of the text.
                Ok(mut ids) => {
                    ids.retain(|&t| !self.tokenizer.is_special(t));
                    ids
                }
                Err(_) => self.trie.greedy_tokenize(text.as_bytes()),
            }
        })
    }
}

/// GPT-2's `bytes_to_unicode`: the char each byte is written as in a byte-level vocabulary.
fn byte_to_char() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..256u32 {
        let printable = (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
        let c = if printable {
            b
        } else {
            n += 1;
            255 + n
        };
        table[b as usize] = char::from_u32(c).expect("valid char");
    }
    table
}

/// The inverse table, indexed by char code (all codes are below 0x144).
fn char_to_byte_table() -> Vec<Option<u8>> {
    let mut inv = vec![None; 0x144];
    for (b, c) in byte_to_char().iter().enumerate() {
        inv[*c as usize] = Some(b as u8);
    }
    inv
}

/// The bytes of a byte-level token string; a string with a char outside the table (an added
/// token written as plain text) is its own UTF-8, as the tokenizer's decoder does.
fn byte_level_bytes(token: &str, inv: &[Option<u8>]) -> Vec<u8> {
    token
        .chars()
        .map(|c| inv.get(c as usize).copied().flatten())
        .collect::<Option<Vec<u8>>>()
        .unwrap_or_else(|| token.as_bytes().to_vec())
}

/// The bytes of a SentencePiece token with byte fallback: `<0xNN>` is that byte, `▁` a space.
fn sentencepiece_bytes(token: &str) -> Vec<u8> {
    if token.len() == 6 && token.starts_with("<0x") && token.ends_with('>') {
        if let Ok(b) = u8::from_str_radix(&token[3..5], 16) {
            return vec![b];
        }
    }
    token.replace('\u{2581}', " ").into_bytes()
}

fn special_bytes(name: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(name.len() + 1);
    v.push(TokTrie::SPECIAL_TOKEN_MARKER);
    v.extend_from_slice(name.as_bytes());
    v
}

/// Every id's bytes, for a model vocabulary of `model_vocab` (>= the tokenizer's).
fn token_bytes(tokenizer: &Tokenizer, model_vocab: usize) -> Vec<Vec<u8>> {
    let n = tokenizer.vocab_size();
    let names: Vec<Option<String>> = (0..n as u32).map(|i| tokenizer.id_to_token(i)).collect();
    // SentencePiece (`▁the`, `<0x0A>`) rather than byte-level (`Ġthe`)?
    let count = |ch: char| names.iter().flatten().filter(|t| t.starts_with(ch)).count();
    let sentencepiece = tokenizer.token_id("<0x0A>").is_some() && count('\u{2581}') > count('Ġ');
    let inv = char_to_byte_table();
    (0..model_vocab)
        .map(|id| match names.get(id) {
            Some(Some(t)) if !t.is_empty() => {
                if tokenizer.is_special(id as u32) {
                    special_bytes(t)
                } else if sentencepiece {
                    sentencepiece_bytes(t)
                } else {
                    byte_level_bytes(t, &inv)
                }
            }
            // A hole in the vocabulary, or an id beyond the tokenizer: never allowed.
            _ => special_bytes(&format!("<[{id}]>")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt2_byte_table_round_trips() {
        let table = byte_to_char();
        let inv = char_to_byte_table();
        // Spot checks of the well-known mapping.
        assert_eq!(table[b' ' as usize], 'Ġ');
        assert_eq!(table[b'\n' as usize], 'Ċ');
        assert_eq!(table[b'a' as usize], 'a');
        assert_eq!(table[0], '\u{100}');
        assert_eq!(table[0xAD], '\u{143}');
        let mut seen = std::collections::HashSet::new();
        for b in 0..=255u8 {
            let c = table[b as usize];
            assert!(seen.insert(c), "duplicate char for byte {b}");
            assert_eq!(inv[c as usize], Some(b));
        }
        assert_eq!(byte_level_bytes("Ġthe", &inv), b" the");
        assert_eq!(byte_level_bytes("ĊĊ", &inv), b"\n\n");
        // UTF-8 'é' (C3 A9) is written as "Ã©".
        assert_eq!(byte_level_bytes("Ã©", &inv), "é".as_bytes());
        // A plain-text added token keeps its UTF-8.
        assert_eq!(byte_level_bytes("<a b>", &inv), b"<a b>");
    }

    #[test]
    fn sentencepiece_token_bytes() {
        assert_eq!(sentencepiece_bytes("<0x0A>"), b"\n");
        assert_eq!(sentencepiece_bytes("\u{2581}the"), b" the");
        assert_eq!(sentencepiece_bytes("<0xZZ>"), b"<0xZZ>");
    }

    #[test]
    fn apply_mask_sets_exactly_the_disallowed_ids() {
        for n in [1usize, 31, 32, 33, 64, 100, 1000] {
            let mut mask = SimpleVob::alloc(n);
            let allowed: Vec<usize> = (0..n).filter(|i| i % 7 == 3 || *i < 40).collect();
            for &i in &allowed {
                mask.allow_token(i as u32);
            }
            let mut logits: Vec<f32> = (0..n).map(|i| i as f32).collect();
            apply_mask(&mask, &mut logits);
            for (i, l) in logits.iter().enumerate() {
                if allowed.contains(&i) {
                    assert_eq!(*l, i as f32, "n={n} id {i} allowed");
                } else {
                    assert_eq!(*l, f32::NEG_INFINITY, "n={n} id {i} disallowed");
                }
            }
        }
        // A shorter mask than the logits: everything past it is disallowed.
        let mut mask = SimpleVob::alloc(32);
        mask.allow_token(5);
        let mut logits = vec![1.0f32; 70];
        apply_mask(&mask, &mut logits);
        let finite: Vec<usize> = (0..70).filter(|&i| logits[i].is_finite()).collect();
        assert_eq!(finite, vec![5]);
    }

    /// A tiny byte-level BPE tokenizer: the 256 byte tokens, a few merges, two special tokens.
    fn tiny_tokenizer(dir: &std::path::Path) -> Tokenizer {
        let table = byte_to_char();
        let mut vocab = serde_json::Map::new();
        let special = ["<|endoftext|>", "<|im_end|>"];
        for (i, s) in special.iter().enumerate() {
            vocab.insert(s.to_string(), serde_json::json!(i));
        }
        for (b, c) in table.iter().enumerate() {
            vocab.insert(c.to_string(), serde_json::json!(special.len() + b));
        }
        let merges = [("\"", ":"), ("Ġ", "t"), ("e", "s"), ("t", "r"), ("{", "\"")];
        let base = vocab.len();
        let mut merge_list = Vec::new();
        for (k, (a, b)) in merges.into_iter().enumerate() {
            vocab.insert(format!("{a}{b}"), serde_json::json!(base + k));
            merge_list.push(format!("{a} {b}"));
        }
        let added: Vec<serde_json::Value> = special
            .iter()
            .enumerate()
            .map(|(i, s)| {
                serde_json::json!({"id": i, "content": s, "single_word": false, "lstrip": false,
                    "rstrip": false, "normalized": false, "special": true})
            })
            .collect();
        let json = serde_json::json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": null,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false,
                "trim_offsets": true, "use_regex": true},
            "post_processor": null,
            "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
                "use_regex": true},
            "model": {"type": "BPE", "dropout": null, "unk_token": null,
                "continuing_subword_prefix": null, "end_of_word_suffix": null,
                "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                "vocab": vocab, "merges": merge_list}
        });
        let path = dir.join("tokenizer.json");
        std::fs::write(&path, json.to_string()).unwrap();
        std::fs::write(
            dir.join("tokenizer_config.json"),
            r#"{"eos_token": "<|im_end|>"}"#,
        )
        .unwrap();
        Tokenizer::from_file(&path).unwrap()
    }

    #[test]
    fn tiny_tokenizer_bytes_and_padding() {
        let dir = tempfile::tempdir().unwrap();
        let tok = tiny_tokenizer(dir.path());
        assert_eq!(tok.eos_id(), Some(1));
        let n = tok.vocab_size();
        assert_eq!(n, 2 + 256 + 5);
        let words = token_bytes(&tok, n + 7);
        assert_eq!(words.len(), n + 7);
        assert_eq!(words[0], b"\xFF<|endoftext|>");
        assert_eq!(words[1], b"\xFF<|im_end|>");
        let gt = tok.token_id("Ġt").unwrap() as usize;
        assert_eq!(words[gt], b" t");
        let nl = tok.token_id("Ċ").unwrap() as usize;
        assert_eq!(words[nl], b"\n");
        for (id, w) in words.iter().enumerate().skip(n) {
            assert_eq!(w, &special_bytes(&format!("<[{id}]>")));
        }
        // Every non-special token's bytes decode to the same text as the tokenizer does.
        for id in 2..n as u32 {
            let text = tok.decode(&[id], false).unwrap();
            if let Ok(s) = std::str::from_utf8(&words[id as usize]) {
                assert_eq!(s, text, "id {id}");
            }
        }
    }

    /// Drives a constraint with seeded random logits (argmax after masking) to the end.
    fn drive(c: &mut Constraint, vocab: usize, eos: u32, seed: u64, cap: usize) -> Vec<u32> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut out = Vec::new();
        for _ in 0..cap {
            let mut logits: Vec<f32> = (0..vocab).map(|_| rng.gen_range(-1.0..1.0)).collect();
            c.mask_logits(&mut logits).unwrap();
            let (best, _) = logits
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap();
            let best = best as u32;
            c.commit(best).unwrap();
            if best == eos {
                return out;
            }
            out.push(best);
        }
        panic!("no EOS after {cap} steps: {out:?}");
    }

    #[test]
    fn tiny_tokenizer_json_schema_end_to_end() {
        let dir = tempfile::tempdir().unwrap();
        let tok = tiny_tokenizer(dir.path());
        let vocab = tok.vocab_size() + 7;
        let f = ConstraintFactory::new(&tok, vocab).unwrap();
        let schema = serde_json::json!({
            "type": "object",
            "properties": {"ok": {"type": "boolean"}, "tag": {"enum": ["tr", "es"]}},
            "required": ["ok", "tag"],
            "additionalProperties": false
        });
        for seed in 0..5 {
            let mut c = f.json_schema(&schema).unwrap();
            let ids = drive(&mut c, vocab, f.eos_id(), seed, 200);
            assert!(c.is_finished());
            assert!(ids.iter().all(|&i| (i as usize) < tok.vocab_size()));
            let text = tok.decode(&ids, false).unwrap();
            let v: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("seed {seed}: {text:?} is not JSON: {e}"));
            assert!(v["ok"].is_boolean(), "{text}");
            assert!(v["tag"] == "tr" || v["tag"] == "es", "{text}");
            assert_eq!(v.as_object().unwrap().len(), 2, "{text}");
            assert!(!text.contains(' '), "compact JSON expected: {text:?}");
        }
    }

    #[test]
    fn model_vocab_smaller_than_tokenizer_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let tok = tiny_tokenizer(dir.path());
        let e = ConstraintFactory::new(&tok, tok.vocab_size() - 1).unwrap_err();
        assert!(matches!(e, ServeError::Internal(_)), "{e:?}");
    }

    #[test]
    fn wrong_logits_length_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let tok = tiny_tokenizer(dir.path());
        let f = ConstraintFactory::new(&tok, tok.vocab_size()).unwrap();
        let mut c = f.json_object().unwrap();
        let mut logits = vec![0.0; tok.vocab_size() + 1];
        assert!(c.mask_logits(&mut logits).is_err());
    }
}
