//! Batched generation: many prompts prefilled together, then decoded step by step in one
//! batch, each with its own sampler, stop conditions and streaming callback. This is the
//! loop the serving engine grows from (there, requests also join and leave mid-flight).

use crate::decode_step::DecodeStep;
pub use crate::decode_step::FinishReason;
use crate::kv_cache::SeqCache;
use crate::llama::{Llama, Logits, SeqInput};
use crate::sampler::{Sampler, SamplingParams};
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

use crate::prefill_schedule::PrefillSchedule;

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

#[derive(Debug, Clone)]
pub struct GenOutput {
    /// Generated tokens, the stop token excluded.
    pub tokens: Vec<u32>,
    pub text: String,
    pub finish: FinishReason,
    pub prompt_tokens: usize,
}

struct Live {
    idx: usize,
    cache: SeqCache,
    sampler: Sampler,
    /// Stops, text and limits of the tokens sampled so far.
    decode: DecodeStep,
    next: u32,
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
            decode: DecodeStep::new(
                tokenizer,
                &r.stop_tokens,
                &r.stop_strings,
                r.max_tokens,
                ctx - r.prompt.len(),
            ),
            next: 0,
        })
        .collect();
    let vocab = model.vocab_size();

    // Prefill: pack prompt chunks (the model's fixed boundaries) of several sequences into
    // calls of up to PREFILL_CALL_TOKENS tokens.
    let schedule = PrefillSchedule::for_model(model);
    let mut offsets = vec![0usize; reqs.len()];
    loop {
        let mut used = 0;
        let mut parts: Vec<(usize, usize, usize)> = Vec::new(); // (seq, start, end)
        for (i, r) in reqs.iter().enumerate() {
            let o = offsets[i];
            if o < r.prompt.len() {
                let end = schedule.chunk_end(o, r.prompt.len());
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
        for l in live
            .iter_mut()
            .filter(|l| l.decode.finish_reason().is_none())
        {
            let step = l.decode.step(l.next)?;
            if !step.text.is_empty() {
                on_text(l.idx, &step.text);
            }
            if step.finish.is_some() {
                let tail = l.decode.finish()?;
                if !tail.is_empty() {
                    on_text(l.idx, &tail);
                }
            }
        }
        let active: Vec<usize> = (0..live.len())
            .filter(|&i| live[i].decode.finish_reason().is_none())
            .collect();
        if active.is_empty() {
            break;
        }
        let rows = {
            let toks: Vec<[u32; 1]> = active.iter().map(|&i| [live[i].next]).collect();
            let mut batch: Vec<SeqInput<'_>> = Vec::with_capacity(active.len());
            let mut it = toks.iter();
            for l in live
                .iter_mut()
                .filter(|l| l.decode.finish_reason().is_none())
            {
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
        .map(|l| {
            let finish = l.decode.finish_reason().unwrap_or(FinishReason::Length);
            let (tokens, text) = l.decode.into_parts();
            GenOutput {
                prompt_tokens: reqs[l.idx].prompt.len(),
                tokens,
                text,
                finish,
            }
        })
        .collect())
}
