//! Batched generation: many prompts prefilled together, then decoded step by step in one
//! batch, each with its own sampler, stop conditions and streaming callback. This is the
//! loop the serving engine grows from (there, requests also join and leave mid-flight).

use crate::decode_step::DecodeStep;
pub use crate::decode_step::FinishReason;
use crate::kernels::log_sum_exp;
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
    /// Mean over the generated tokens (the stop token excluded, as in `tokens`) of each token's
    /// log-probability under the model's raw logits (log-softmax before any sampling
    /// transform), the confidence a router compares with its threshold; `None` when no token
    /// was generated. The serving engine's `track_logprob` computes the same number.
    pub mean_logprob: Option<f64>,
}

struct Live {
    idx: usize,
    cache: SeqCache,
    sampler: Sampler,
    /// Stops, text and limits of the tokens sampled so far.
    decode: DecodeStep,
    next: u32,
    /// Log-probability of `next` under the raw logits it was sampled from.
    next_lp: f32,
    /// Sum and count of the kept tokens' log-probabilities.
    lp_sum: f64,
    lp_n: u32,
}

impl Live {
    /// Samples the next token from a raw logits row and remembers its log-probability (one
    /// log-sum-exp over the row).
    fn sample(&mut self, row: &[f32]) {
        self.next = self.sampler.sample(row);
        self.next_lp = row[self.next as usize] - log_sum_exp(row);
    }
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
            next_lp: 0.0,
            lp_sum: 0.0,
            lp_n: 0,
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
            live[i].sample(row);
        }
    }

    // Decode.
    loop {
        // Take each sampled token: stop, or keep it and emit text.
        for l in live
            .iter_mut()
            .filter(|l| l.decode.finish_reason().is_none())
        {
            // A stop token is not output, so it has no part in the mean either.
            if !l.decode.is_stop_token(l.next) {
                l.lp_sum += f64::from(l.next_lp);
                l.lp_n += 1;
            }
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
            live[i].sample(row);
        }
    }
    Ok(live
        .into_iter()
        .map(|l| {
            let finish = l.decode.finish_reason().unwrap_or(FinishReason::Length);
            let mean_logprob = (l.lp_n > 0).then(|| l.lp_sum / f64::from(l.lp_n));
            let (tokens, text) = l.decode.into_parts();
            GenOutput {
                mean_logprob,
                prompt_tokens: reqs[l.idx].prompt.len(),
                tokens,
                text,
                finish,
            }
        })
        .collect())
}
