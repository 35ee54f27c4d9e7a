//! Batched generation: many prompts prefilled together, then decoded step by step in one
//! batch, each with its own sampler, stop conditions and streaming callback. This is the
//! loop the serving engine grows from (there, requests also join and leave mid-flight).

use crate::kv_cache::SeqCache;
use crate::llama::{Llama, Logits, SeqInput};
use crate::sampler::{Sampler, SamplingParams};
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

/// Prefill chunk: a prompt is run in chunks of positions `[k·C, (k+1)·C)` from its own start,
/// whatever else shares the forward call. Attention takes a different (equally exact) path for
/// long and short runs of rows, so fixed boundaries are what make a sequence's numbers depend on
/// the sequence alone: `generate` and the serving engine give the same tokens.
pub const PREFILL_CHUNK: usize = 256;

/// Prompt tokens per forward call during batched prefill (bounds scratch memory).
const PREFILL_CALL_TOKENS: usize = 512;

#[derive(Debug, Clone)]
pub struct GenRequest {
    pub prompt: Vec<u32>,
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    /// Generation stops before any of these strings; they are not part of the output.
    pub stop_strings: Vec<String>,
    /// Generation stops at any of these tokens (end of turn, end of text).
    pub stop_tokens: Vec<u32>,
}

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

#[derive(Debug, Clone)]
pub struct GenOutput {
    /// Generated tokens, the stop token excluded.
    pub tokens: Vec<u32>,
    pub text: String,
    pub finish: FinishReason,
    pub prompt_tokens: usize,
}

/// Incremental text of one sequence, holding back what may still turn into a stop string
/// or is an incomplete UTF-8 character.
pub struct TextState {
    text: String,
    emitted: usize,
    holdback: usize,
}

impl TextState {
    pub fn new(stops: &[String]) -> Self {
        Self {
            text: String::new(),
            emitted: 0,
            holdback: stops.iter().map(|s| s.len()).max().unwrap_or(1).max(1) - 1,
        }
    }

    /// Updates with the full decoded text; returns (new safe text, stop string found).
    pub fn update(&mut self, full: String, stops: &[String]) -> (String, bool) {
        self.text = full;
        if let Some(cut) = stops
            .iter()
            .filter(|s| !s.is_empty())
            .filter_map(|s| self.text.find(s.as_str()))
            .min()
        {
            self.text.truncate(cut);
            let out = self.text.get(self.emitted..).unwrap_or("").to_string();
            self.emitted = self.text.len();
            return (out, true);
        }
        // Never emit a trailing replacement char (an incomplete byte sequence) or a possible
        // stop-string prefix.
        let mut safe = self.text.trim_end_matches('\u{FFFD}').len();
        safe = safe.saturating_sub(self.holdback).max(self.emitted);
        while !self.text.is_char_boundary(safe) {
            safe -= 1;
        }
        if safe <= self.emitted {
            return (String::new(), false);
        }
        let out = self.text[self.emitted..safe].to_string();
        self.emitted = safe;
        (out, false)
    }

    /// Everything not emitted yet (at the end of generation).
    pub fn finish(&mut self) -> String {
        let out = self.text.get(self.emitted..).unwrap_or("").to_string();
        self.emitted = self.text.len();
        out
    }

    /// The text so far (stop string cut off once found).
    pub fn text(&self) -> &str {
        &self.text
    }
}

struct Live {
    idx: usize,
    cache: SeqCache,
    sampler: Sampler,
    tokens: Vec<u32>,
    text: TextState,
    next: u32,
    done: Option<FinishReason>,
}

/// Generates for every request; `on_text(i, delta)` receives each request's text as it
/// is produced. Rows are independent: a request gives the same tokens alone or in a batch.
pub fn generate(
    model: &Llama,
    tokenizer: &Tokenizer,
    reqs: &[GenRequest],
    mut on_text: impl FnMut(usize, &str),
) -> Result<Vec<GenOutput>> {
    let ctx = model.max_context();
    for r in reqs {
        r.sampling.validate()?;
        if r.prompt.is_empty() {
            return Err(Error::Invalid("empty prompt".into()));
        }
        if r.prompt.len() + 1 > ctx {
            return Err(Error::ContextOverflow {
                tokens: r.prompt.len(),
                context: ctx,
            });
        }
    }
    let mut kv = model.new_cache_for(
        reqs.iter()
            .map(|r| (r.prompt.len() + r.max_tokens).min(ctx)),
    );
    let mut live: Vec<Live> = reqs
        .iter()
        .enumerate()
        .map(|(idx, r)| Live {
            idx,
            cache: SeqCache::new(),
            sampler: Sampler::new(r.sampling.clone()),
            tokens: Vec::new(),
            text: TextState::new(&r.stop_strings),
            next: 0,
            done: None,
        })
        .collect();
    let vocab = model.vocab_size();

    // Prefill: pack prompt chunks of several sequences into calls of PREFILL_CHUNK tokens.
    let mut offsets = vec![0usize; reqs.len()];
    loop {
        let mut used = 0;
        let mut parts: Vec<(usize, usize, usize)> = Vec::new(); // (seq, start, end)
        for (i, r) in reqs.iter().enumerate() {
            let o = offsets[i];
            if o < r.prompt.len() {
                let end = (o + PREFILL_CHUNK).min(r.prompt.len());
                if !parts.is_empty() && used + end - o > PREFILL_CALL_TOKENS {
                    break;
                }
                parts.push((i, o, end));
                used += end - o;
            }
        }
        if parts.is_empty() {
            break;
        }
        let mut wanted = Vec::new();
        let out = {
            let mut batch: Vec<SeqInput<'_>> = Vec::with_capacity(parts.len());
            let mut pending = parts.iter().peekable();
            for (i, l) in live.iter_mut().enumerate() {
                let Some(&&(pi, s, e)) = pending.peek() else {
                    break;
                };
                if pi != i {
                    continue;
                }
                pending.next();
                let last = e == reqs[i].prompt.len();
                if last {
                    wanted.push(i);
                }
                batch.push(SeqInput {
                    adapter: None,
                    cache: &mut l.cache,
                    tokens: &reqs[i].prompt[s..e],
                    logits: if last { Logits::Last } else { Logits::None },
                });
            }
            model.forward(&mut batch, &mut kv)?
        };
        let logits: Vec<(usize, &[f32])> =
            wanted.into_iter().zip(out.chunks_exact(vocab)).collect();
        for &(i, _, e) in &parts {
            offsets[i] = e;
        }
        for (i, row) in logits {
            let l = &mut live[i];
            l.next = l.sampler.sample(row);
        }
    }

    // Decode.
    loop {
        // Take each sampled token: stop, or keep it and emit text.
        for l in live.iter_mut().filter(|l| l.done.is_none()) {
            let r = &reqs[l.idx];
            if r.stop_tokens.contains(&l.next) {
                l.done = Some(FinishReason::Stop);
                let tail = l.text.finish();
                if !tail.is_empty() {
                    on_text(l.idx, &tail);
                }
                continue;
            }
            l.tokens.push(l.next);
            let full = tokenizer.decode(&l.tokens, true)?;
            let (delta, stopped) = l.text.update(full, &r.stop_strings);
            if !delta.is_empty() {
                on_text(l.idx, &delta);
            }
            if stopped {
                l.done = Some(FinishReason::Stop);
            } else if l.tokens.len() >= r.max_tokens || l.cache.len() + 1 >= ctx {
                l.done = Some(FinishReason::Length);
                let tail = l.text.finish();
                if !tail.is_empty() {
                    on_text(l.idx, &tail);
                }
            }
        }
        let active: Vec<usize> = (0..live.len())
            .filter(|&i| live[i].done.is_none())
            .collect();
        if active.is_empty() {
            break;
        }
        let rows = {
            let toks: Vec<[u32; 1]> = active.iter().map(|&i| [live[i].next]).collect();
            let mut batch: Vec<SeqInput<'_>> = Vec::with_capacity(active.len());
            let mut it = toks.iter();
            for l in live.iter_mut().filter(|l| l.done.is_none()) {
                batch.push(SeqInput {
                    adapter: None,
                    cache: &mut l.cache,
                    tokens: it.next().map(|t| &t[..]).unwrap_or(&[]),
                    logits: Logits::Last,
                });
            }
            model.forward(&mut batch, &mut kv)?
        };
        for (&i, row) in active.iter().zip(rows.chunks_exact(vocab)) {
            let l = &mut live[i];
            l.next = l.sampler.sample(row);
        }
    }
    Ok(live
        .into_iter()
        .map(|l| GenOutput {
            prompt_tokens: reqs[l.idx].prompt.len(),
            tokens: l.tokens,
            text: l.text.text,
            finish: l.done.unwrap_or(FinishReason::Length),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_state_holds_back_stop_prefixes() {
        let stops = vec!["</end>".to_string()];
        let mut t = TextState::new(&stops);
        let (a, s) = t.update("Hello </e".into(), &stops);
        assert!(!s);
        assert_eq!(a, "Hell"); // 5 bytes held back
        let (b, s) = t.update("Hello </end> more".into(), &stops);
        assert!(s);
        assert_eq!(format!("{a}{b}"), "Hello ");
        assert_eq!(t.text, "Hello ");
    }

    #[test]
    fn text_state_never_emits_partial_chars() {
        let mut t = TextState::new(&[]);
        let (a, _) = t.update("ab\u{FFFD}".into(), &[]);
        assert_eq!(a, "ab");
        let (b, _) = t.update("ab🤝".into(), &[]);
        assert_eq!(b, "🤝");
    }
}
