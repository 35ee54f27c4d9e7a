//! `hone bench review`: how long reviewing a contract takes, per document and per span, and
//! what the shared prefix saves.
//!
//! The peer in the same run is the obvious way to do it: every span sent as its own prompt
//! (the instruction prefix, then the span, then its slot), all spans batched, so the prefix
//! is computed once per span. The engine computes it once per document, and reads each span
//! in its document's context.

use std::time::Instant;

use hone_data::review_layout::LABELS;
use hone_model::kv_cache::SeqCache;
use hone_model::llama::{Logits, SeqInput};
use serde::Serialize;

use crate::engine::{label_softmax, Reviewer};
use crate::input::InputDoc;
use crate::Result;

/// Latency percentiles in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub mean: f64,
}

impl Percentiles {
    pub fn of(xs: &[f64]) -> Self {
        if xs.is_empty() {
            return Self::default();
        }
        let mut v = xs.to_vec();
        v.sort_by(f64::total_cmp);
        let at = |q: f64| {
            // Linear interpolation between closest ranks (numpy's default).
            let pos = q * (v.len() - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
        };
        Self {
            p50: at(0.5),
            p95: at(0.95),
            mean: v.iter().sum::<f64>() / v.len() as f64,
        }
    }
}

/// The result of a review benchmark.
#[derive(Clone, Debug, Serialize)]
pub struct ReviewBench {
    pub documents: usize,
    pub runs: usize,
    pub spans_per_doc: f64,
    pub tokens_per_doc: f64,
    /// Whole-document review time (spans, model, decisions).
    pub doc_ms: Percentiles,
    /// Document time divided by its spans.
    pub span_ms: Percentiles,
    /// The per-span-prompt peer, unless it was skipped.
    pub peer: Option<PeerBench>,
}

/// The per-span-prompt peer's side of a review benchmark.
#[derive(Clone, Debug, Serialize)]
pub struct PeerBench {
    /// Document time and per-span time.
    pub doc_ms: Percentiles,
    pub span_ms: Percentiles,
    /// peer time / engine time (mean over documents): how much faster the engine is.
    pub speedup: f64,
    /// Tokens the peer runs through the model per document (the prefix once per span).
    pub tokens_per_doc: f64,
}

/// The peer: each span its own sequence `prefix + span + slot`, batched up to
/// `max_batch_tokens`, label distribution read at the slot.
pub fn per_span_prompts(r: &Reviewer, texts: &[&str]) -> Result<(Vec<[f32; LABELS]>, usize)> {
    let tok = &r.model.tokenizer;
    let llama = &r.model.model;
    let prefix = &r.vocab.prefix;
    let seqs: Vec<Vec<u32>> = texts
        .iter()
        .map(|t| {
            let lay = hone_data::review_layout::layout(
                &r.vocab,
                tok,
                &[t],
                hone_data::review_layout::Options {
                    max_window: r.options.layout.max_window,
                    context: 0,
                },
            )?;
            let mut ids = prefix.clone();
            ids.extend_from_slice(&lay.windows[0].ids);
            Ok(ids)
        })
        .collect::<Result<_>>()?;
    let tokens: usize = seqs.iter().map(|s| s.len()).sum();
    let mut out = Vec::with_capacity(seqs.len());
    let mut i = 0;
    while i < seqs.len() {
        let mut j = i;
        let mut n = 0;
        while j < seqs.len() && (j == i || n + seqs[j].len() <= r.options.max_batch_tokens) {
            n += seqs[j].len();
            j += 1;
        }
        let mut kv = llama.new_cache_for(seqs[i..j].iter().map(|s| s.len()));
        let mut caches: Vec<SeqCache> = (i..j).map(|_| SeqCache::new()).collect();
        let mut batch: Vec<SeqInput> = caches
            .iter_mut()
            .zip(&seqs[i..j])
            .map(|(c, s)| SeqInput {
                adapter: None,
                cache: c,
                tokens: s,
                logits: Logits::Last,
            })
            .collect();
        let logits = llama.forward(&mut batch, &mut kv)?;
        let v = llama.vocab_size();
        for row in logits.chunks_exact(v) {
            out.push(label_softmax(row, &r.vocab.labels));
        }
        i = j;
    }
    Ok((out, tokens))
}

/// Typical contracts for the benchmark when none are given: each joins four synthetic NDAs
/// (`hone data synth nda`), about 100 spans and 3,000 tokens, the size of a real NDA.
pub fn synthetic_contracts(n: usize, seed: u64) -> Result<Vec<InputDoc>> {
    let ds = hone_data::synth::generate(4 * n, seed);
    let opt = crate::input::ReadOptions::default();
    ds.documents
        .chunks(4)
        .enumerate()
        .map(|(i, group)| {
            let text: Vec<&str> = group.iter().map(|d| d.text.as_str()).collect();
            crate::input::from_text(
                &format!("synthetic-{}", i + 1),
                "(synthetic)",
                text.join("\n\n"),
                &opt,
            )
        })
        .collect()
}

/// Reviews every document `runs` times with the engine and, with `peer`, once per run with
/// the per-span-prompt peer (several times the engine's time on a real adapter).
pub fn run(
    r: &Reviewer,
    docs: &[InputDoc],
    runs: usize,
    peer: bool,
    on_progress: &mut dyn FnMut(usize, usize),
) -> Result<ReviewBench> {
    let runs = runs.max(1);
    let (mut doc_ms, mut span_ms, mut peer_doc, mut peer_span) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut tokens, mut peer_tokens, mut spans) = (0usize, 0usize, 0usize);
    let total = runs * docs.len();
    let mut done = 0;
    for _ in 0..runs {
        for d in docs {
            let t = Instant::now();
            let rev = r.review(d, None)?;
            let ms = t.elapsed().as_secs_f64() * 1e3;
            let n = d.spans.len().max(1) as f64;
            doc_ms.push(ms);
            span_ms.push(ms / n);
            tokens += rev.timing.tokens;
            spans += d.spans.len();
            if !peer {
                done += 1;
                on_progress(done, total);
                continue;
            }
            let texts = hone_data::spans::pair_texts(&d.text, &d.spans);
            let t = Instant::now();
            let (_, pt) = per_span_prompts(r, &texts)?;
            let ms = t.elapsed().as_secs_f64() * 1e3;
            peer_doc.push(ms);
            peer_span.push(ms / n);
            peer_tokens += pt;
            done += 1;
            on_progress(done, total);
        }
    }
    let k = total.max(1) as f64;
    let doc = Percentiles::of(&doc_ms);
    let peer = peer.then(|| {
        let p = Percentiles::of(&peer_doc);
        PeerBench {
            doc_ms: p,
            span_ms: Percentiles::of(&peer_span),
            speedup: if doc.mean > 0.0 {
                p.mean / doc.mean
            } else {
                0.0
            },
            tokens_per_doc: peer_tokens as f64 / k,
        }
    });
    Ok(ReviewBench {
        documents: docs.len(),
        runs,
        spans_per_doc: spans as f64 / k,
        tokens_per_doc: tokens as f64 / k,
        doc_ms: doc,
        span_ms: Percentiles::of(&span_ms),
        peer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let p = Percentiles::of(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0]);
        assert!((p.p50 - 5.5).abs() < 1e-12);
        assert!((p.p95 - 9.55).abs() < 1e-12);
        assert!((p.mean - 5.5).abs() < 1e-12);
        assert_eq!(Percentiles::of(&[]), Percentiles::default());
    }
}
