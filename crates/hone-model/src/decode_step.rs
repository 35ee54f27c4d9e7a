//! One sequence's decode step: what happens to each sampled token, shared by `generate` and
//! the serving engine.
//!
//! [`DecodeStep`] owns everything that decides what a sampled token becomes: the stop tokens
//! (which end the sequence and are not part of it), the incremental detokenizer
//! ([`DecodeStream`], special tokens skipped), the stop strings (text that may still turn into
//! one is held back; once one is found the text is cut before it), and the length limits
//! (`max_tokens`, and the context left after the prompt). Per token it returns the text that
//! became safe to show and, when the sequence ends, why; [`DecodeStep::finish`] then returns
//! whatever was held back. The pieces concatenated equal the final text, and a piece never ends
//! in a partial UTF-8 character (an incomplete tail only appears, as U+FFFD, at the end).
//!
//! Stop strings are searched for only in the text that could hold a new match (the last
//! `longest stop - 1` bytes before the new piece, and the piece), so a token costs the same at
//! the end of a long answer as at its start.

use crate::tokenizer::{DecodeStream, Tokenizer};
use crate::Result;

/// Why a sequence ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// A stop token or stop string.
    Stop,
    /// `max_tokens` reached.
    Length,
}

impl FinishReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// What one sampled token gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Text that became safe to show (possibly empty).
    pub text: String,
    /// `Some` when the sequence ended with this token; call [`DecodeStep::finish`] for the
    /// rest of the text.
    pub finish: Option<FinishReason>,
}

/// The per-token state of one generated sequence; see the module docs.
#[derive(Clone, Debug)]
pub struct DecodeStep {
    stream: DecodeStream,
    stop_tokens: Vec<u32>,
    text: HeldText,
    tokens: Vec<u32>,
    max_tokens: usize,
    context_left: usize,
    finished: Option<FinishReason>,
}

impl DecodeStep {
    /// A sequence that ends at any of `stop_tokens`, before any of `stop_strings` (empty ones
    /// are ignored), or after `max_tokens` tokens or `context_left` tokens (the model's
    /// context minus the prompt), whichever comes first. The last limit is checked after a
    /// token is taken, so a sequence has at least one token unless it starts with a stop.
    pub fn new(
        tokenizer: &Tokenizer,
        stop_tokens: &[u32],
        stop_strings: &[String],
        max_tokens: usize,
        context_left: usize,
    ) -> Self {
        Self {
            stream: tokenizer.decode_stream(true),
            stop_tokens: stop_tokens.to_vec(),
            text: HeldText::new(stop_strings),
            tokens: Vec::new(),
            max_tokens,
            context_left,
            finished: None,
        }
    }

    /// Whether `tok` ends the sequence by itself (it is then neither output nor counted).
    pub fn is_stop_token(&self, tok: u32) -> bool {
        self.stop_tokens.contains(&tok)
    }

    /// Takes one sampled token. A stop token ends the sequence and is not kept; any other
    /// token is kept (in [`tokens`](Self::tokens)) and its text goes through the stop strings
    /// and the hold-back. Once finished, further tokens are ignored.
    ///
    /// An error (a token outside the tokenizer's vocabulary) leaves the token kept but its
    /// text lost; the caller ends the sequence.
    pub fn step(&mut self, tok: u32) -> Result<Step> {
        if self.finished.is_some() {
            return Ok(self.done(String::new()));
        }
        if self.is_stop_token(tok) {
            self.finished = Some(FinishReason::Stop);
            return Ok(self.done(String::new()));
        }
        self.tokens.push(tok);
        let piece = self.stream.step(tok)?;
        let (text, stopped) = self.text.push(&piece);
        let n = self.tokens.len();
        if stopped {
            self.finished = Some(FinishReason::Stop);
        } else if n >= self.max_tokens || n >= self.context_left {
            self.finished = Some(FinishReason::Length);
        }
        Ok(self.done(text))
    }

    fn done(&self, text: String) -> Step {
        Step {
            text,
            finish: self.finished,
        }
    }

    /// Ends the sequence (whatever the reason, also one decided by the caller): returns the
    /// text held back, an incomplete UTF-8 tail as U+FFFD. Nothing after a stop string.
    pub fn finish(&mut self) -> Result<String> {
        let tail = self.stream.finish()?;
        Ok(self.text.finish(&tail))
    }

    /// Why the sequence ended, if it did (as decided here: stops and limits).
    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.finished
    }

    /// The tokens kept (stop tokens excluded): what a completion counts.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// The text so far, cut before a stop string once one is found (including what is still
    /// held back).
    pub fn text(&self) -> &str {
        &self.text.text
    }

    /// The kept tokens and the text.
    pub fn into_parts(self) -> (Vec<u32>, String) {
        (self.tokens, self.text.text)
    }
}

/// The decoded text of a sequence, holding back what may still turn into a stop string.
#[derive(Clone, Debug)]
struct HeldText {
    text: String,
    /// Bytes of `text` handed out.
    emitted: usize,
    /// Non-empty stop strings.
    stops: Vec<String>,
    /// Bytes held back: the longest stop string's length minus one.
    holdback: usize,
    stopped: bool,
}

impl HeldText {
    fn new(stops: &[String]) -> Self {
        Self {
            text: String::new(),
            emitted: 0,
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            holdback: stops.iter().map(|s| s.len()).max().unwrap_or(1).max(1) - 1,
            stopped: false,
        }
    }

    /// Appends complete text; returns (new safe text, stop string found).
    fn push(&mut self, piece: &str) -> (String, bool) {
        let prev = self.text.len();
        self.text.push_str(piece);
        if !piece.is_empty() && !self.stops.is_empty() {
            // A match not found before ends in the new piece, so it starts at most
            // `longest - 1` bytes before it.
            let mut from = prev.saturating_sub(self.holdback);
            while !self.text.is_char_boundary(from) {
                from -= 1;
            }
            let window = &self.text[from..];
            if let Some(cut) = self
                .stops
                .iter()
                .filter_map(|s| window.find(s.as_str()))
                .min()
            {
                // Nothing at or after `cut` was handed out: `emitted` stays `holdback` bytes
                // behind the end of the previous text.
                self.text.truncate(from + cut);
                self.stopped = true;
                return (self.take_rest(), true);
            }
        }
        let mut safe = self
            .text
            .len()
            .saturating_sub(self.holdback)
            .max(self.emitted);
        while !self.text.is_char_boundary(safe) {
            safe -= 1;
        }
        let out = self.text[self.emitted..safe].to_string();
        self.emitted = safe;
        (out, false)
    }

    /// Everything not handed out yet, with `tail` (the detokenizer's last piece) unless a stop
    /// string already ended the text.
    fn finish(&mut self, tail: &str) -> String {
        if !self.stopped {
            self.text.push_str(tail);
        }
        self.take_rest()
    }

    fn take_rest(&mut self) -> String {
        let out = self.text.get(self.emitted..).unwrap_or("").to_string();
        self.emitted = self.text.len();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::gguf_file::Value;
    use std::collections::HashMap;

    /// A byte-level tokenizer whose ids are these raw byte strings; id 0 is `<|end|>`, a
    /// control token.
    fn tokenizer(pieces: &[&[u8]]) -> Tokenizer {
        let table = crate::tokenizer::byte_to_char_table();
        let mut tokens = vec![Value::String("<|end|>".into())];
        let mut types = vec![Value::I32(3)];
        for p in pieces {
            tokens.push(Value::String(
                p.iter().map(|&b| table[b as usize]).collect(),
            ));
            types.push(Value::I32(1));
        }
        let mut md = HashMap::new();
        md.insert("tokenizer.ggml.model".into(), Value::String("gpt2".into()));
        md.insert("tokenizer.ggml.tokens".into(), Value::Array(tokens));
        md.insert("tokenizer.ggml.token_type".into(), Value::Array(types));
        md.insert("tokenizer.ggml.merges".into(), Value::Array(vec![]));
        md.insert("tokenizer.ggml.eos_token_id".into(), Value::U32(0));
        Tokenizer::from_gguf_metadata(&md).unwrap()
    }

    /// Ids: 1 "Hi", 2 " caf", 3 0xC3, 4 0xA9 ("é" split in two), 5 " </", 6 "en", 7 "d>",
    /// 8 " x", 9..=12 the four bytes of "🤝".
    fn tok() -> Tokenizer {
        tokenizer(&[
            b"Hi",
            b" caf",
            &[0xC3],
            &[0xA9],
            b" </",
            b"en",
            b"d>",
            b" x",
            &[0xF0],
            &[0x9F],
            &[0xA4],
            &[0x9D],
        ])
    }

    /// Runs `ids` through a step; returns (pieces, finish text, reason, kept tokens, text).
    fn run(
        step: &mut DecodeStep,
        ids: &[u32],
    ) -> (Vec<String>, String, Option<FinishReason>, Vec<u32>, String) {
        let mut pieces = Vec::new();
        let mut reason = None;
        for &id in ids {
            let s = step.step(id).unwrap();
            pieces.push(s.text);
            if s.finish.is_some() {
                reason = s.finish;
                break;
            }
        }
        let tail = step.finish().unwrap();
        let all: String = pieces.concat() + &tail;
        assert_eq!(all, step.text(), "pieces concatenate to the text");
        (
            pieces,
            tail,
            reason,
            step.tokens().to_vec(),
            step.text().to_string(),
        )
    }

    fn stops(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_stop_string_across_tokens_cuts_the_text_and_stops() {
        let t = tok();
        let mut st = DecodeStep::new(&t, &[0], &stops(&["</end>"]), 100, 100);
        let (pieces, tail, reason, kept, text) = run(&mut st, &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(reason, Some(FinishReason::Stop));
        assert_eq!(text, "Hi café ");
        assert_eq!(tail, "");
        // The token that completed the stop string is kept (and counted); nothing after it.
        assert_eq!(kept, [1, 2, 3, 4, 5, 6, 7]);
        // "</end>" is 6 bytes: the last 5 are held back while they may still start it.
        assert_eq!(pieces, ["", "H", "", "i ", "caf", "é", " "]);
        // Nothing is taken after the end.
        assert_eq!(st.step(8).unwrap().text, "");
        assert_eq!(st.tokens(), [1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn the_earliest_of_several_stop_strings_wins_and_a_stop_split_by_a_char_is_found() {
        let t = tok();
        // "é " spans a split character and the next token.
        let mut st = DecodeStep::new(&t, &[], &stops(&["d>", "é </"]), 100, 100);
        let (_, _, reason, kept, text) = run(&mut st, &[1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(reason, Some(FinishReason::Stop));
        assert_eq!(text, "Hi caf");
        assert_eq!(kept, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_character_split_across_tokens_is_never_emitted_in_part() {
        let t = tok();
        let mut st = DecodeStep::new(&t, &[0], &[], 100, 100);
        let (pieces, tail, reason, _, text) = run(&mut st, &[1, 9, 10, 11, 12, 2, 3, 4, 0]);
        assert_eq!(reason, Some(FinishReason::Stop));
        assert_eq!(text, "Hi🤝 café");
        assert_eq!(tail, "");
        assert_eq!(pieces, ["Hi", "", "", "", "🤝", " caf", "", "é", ""]);
        assert_eq!(text, t.decode(st.tokens(), true).unwrap());
    }

    #[test]
    fn a_stop_token_ends_without_being_kept_and_flushes_the_held_text() {
        let t = tok();
        let mut st = DecodeStep::new(&t, &[0, 8], &stops(&["</end>"]), 100, 100);
        assert!(st.is_stop_token(8) && !st.is_stop_token(7));
        let (pieces, tail, reason, kept, text) = run(&mut st, &[1, 2, 3, 4, 8, 5]);
        assert_eq!(reason, Some(FinishReason::Stop));
        assert_eq!(kept, [1, 2, 3, 4]);
        assert_eq!(pieces.concat(), "Hi ");
        assert_eq!(tail, "café");
        assert_eq!(text, "Hi café");
        assert_eq!(st.finish_reason(), Some(FinishReason::Stop));
    }

    #[test]
    fn max_tokens_and_the_context_end_with_length_and_flush_an_incomplete_tail() {
        let t = tok();
        for (max, ctx) in [(3, 100), (100, 3)] {
            let mut st = DecodeStep::new(&t, &[0], &stops(&["xyz"]), max, ctx);
            let (pieces, tail, reason, kept, text) = run(&mut st, &[1, 2, 3, 4]);
            assert_eq!(reason, Some(FinishReason::Length));
            assert_eq!(kept, [1, 2, 3]);
            // An incomplete character at the end becomes U+FFFD, as `decode` has it.
            assert_eq!(text, "Hi caf\u{FFFD}");
            assert_eq!(text, t.decode(&kept, true).unwrap());
            assert_eq!(pieces.concat(), "Hi c");
            assert_eq!(tail, "af\u{FFFD}");
        }
        // A limit of 0 still takes the first token, as before.
        let mut st = DecodeStep::new(&t, &[0], &[], 0, 100);
        let s = st.step(1).unwrap();
        assert_eq!(
            (s.text.as_str(), s.finish),
            ("Hi", Some(FinishReason::Length))
        );
    }

    #[test]
    fn special_tokens_are_skipped_and_bad_ids_are_errors() {
        let t = tok();
        let mut st = DecodeStep::new(&t, &[], &[], 100, 100);
        assert_eq!(st.step(1).unwrap().text, "Hi");
        assert_eq!(st.step(0).unwrap().text, "");
        assert_eq!(st.step(8).unwrap().text, " x");
        assert!(st.step(1000).is_err());
    }

    #[test]
    fn the_stop_search_window_finds_matches_after_a_long_text() {
        let t = tok();
        let mut st = DecodeStep::new(&t, &[], &stops(&["</end>", "Hi Hi"]), 10_000, 10_000);
        let mut ids: Vec<u32> = [2, 8].repeat(200);
        ids.extend([5, 6, 7, 1]);
        let (_, _, reason, kept, text) = run(&mut st, &ids);
        assert_eq!(reason, Some(FinishReason::Stop));
        assert_eq!(kept.len(), 403);
        assert_eq!(text, " caf x".repeat(200) + " ");
    }
}
