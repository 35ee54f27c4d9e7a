//! A document's windows through the model a piece at a time: the seam between the review
//! engine and a server that interleaves reviews with other work on one model.
//!
//! [`WindowScorer`] holds a document's layout ([`hone_data::review_layout`]) and the label
//! distributions found so far. Each [`WindowScorer::step`] runs one piece on the model it is
//! given: first the instruction prefix (once), then one group of windows (each forked from
//! the prefix's KV cache, together at most `max_batch_tokens` tokens) as one ragged batch,
//! asking the lm_head only for the slot rows. The adapter is given per step, so the model can
//! be a shared base (per-row LoRA gives exactly the numbers of the adapter attached). The KV
//! cache is allocated at the first step and freed by [`WindowScorer::finish`], so a scorer
//! waiting its turn holds no cache memory.

use hone_data::review_layout::{self as rl, Layout, Vocab, LABELS};
use hone_model::kv_cache::{KvCache, SeqCache};
use hone_model::llama::{Logits, SeqInput};
use hone_model::lora::LoraAdapter;
use hone_model::tokenizer::Tokenizer;
use hone_model::Llama;

use crate::engine::{softmax_labels, SpanProbs};
use crate::Result;

/// One document's windows, scored piece by piece.
pub struct WindowScorer {
    lay: Layout,
    prefix: Vec<u32>,
    labels: Vec<u32>,
    /// Window indices per forward call.
    groups: Vec<Vec<usize>>,
    /// Groups done.
    next: usize,
    /// The KV cache and the prefix's sequence in it, once the prefix has run.
    state: Option<(KvCache, SeqCache)>,
    probs: Vec<[f32; LABELS]>,
}

impl WindowScorer {
    /// Lays out the spans `texts` (tokenizing them) and groups the windows so one forward call
    /// stays within `max_batch_tokens` (a window longer than that goes alone).
    pub fn new(
        vocab: &Vocab,
        tok: &Tokenizer,
        texts: &[&str],
        layout: rl::Options,
        max_batch_tokens: usize,
    ) -> Result<Self> {
        let lay = rl::layout(vocab, tok, texts, layout)?;
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut cur = 0usize;
        for (i, w) in lay.windows.iter().enumerate() {
            if groups.is_empty() || cur + w.ids.len() > max_batch_tokens {
                groups.push(Vec::new());
                cur = 0;
            }
            groups.last_mut().expect("a group").push(i);
            cur += w.ids.len();
        }
        Ok(Self {
            lay,
            prefix: vocab.prefix.clone(),
            labels: vocab.labels.clone(),
            groups,
            next: 0,
            state: None,
            probs: vec![[0f32; LABELS]; texts.len()],
        })
    }

    /// Windows of the document.
    pub fn windows(&self) -> usize {
        self.lay.windows.len()
    }

    /// Forward calls left (the prefix's included while it has not run).
    pub fn steps_left(&self) -> usize {
        usize::from(self.state.is_none()) + self.groups.len() - self.next
    }

    /// Whether every window has been scored.
    pub fn is_done(&self) -> bool {
        self.steps_left() == 0
    }

    /// Runs the next piece on `model` with `adapter` on every row: the prefix when it has
    /// not run, else the next group of windows. Returns the windows it scored. A scorer that
    /// is done does nothing.
    pub fn step(&mut self, model: &Llama, adapter: Option<&LoraAdapter>) -> Result<usize> {
        let Some((kv, pre)) = self.state.as_mut() else {
            let biggest: usize = self
                .groups
                .iter()
                .map(|g| {
                    g.iter()
                        .map(|&i| {
                            (self.prefix.len() + self.lay.windows[i].ids.len()).div_ceil(16) * 16
                        })
                        .sum::<usize>()
                })
                .max()
                .unwrap_or(0);
            let mut kv = model.new_cache_for([self.prefix.len(), biggest]);
            let mut pre = SeqCache::new();
            if !self.prefix.is_empty() {
                model.forward(
                    &mut [SeqInput {
                        adapter,
                        cache: &mut pre,
                        tokens: &self.prefix,
                        logits: Logits::None,
                    }],
                    &mut kv,
                )?;
            }
            self.state = Some((kv, pre));
            return Ok(0);
        };
        let Some(g) = self.groups.get(self.next) else {
            return Ok(0);
        };
        let windows = &self.lay.windows;
        let mut caches: Vec<SeqCache> = g
            .iter()
            .map(|_| kv.fork(pre, self.prefix.len()))
            .collect::<std::result::Result<_, _>>()?;
        let rows: Vec<Vec<usize>> = g
            .iter()
            .map(|&i| windows[i].slots.iter().map(|s| s.0).collect())
            .collect();
        let mut batch: Vec<SeqInput> = caches
            .iter_mut()
            .zip(g)
            .zip(&rows)
            .map(|((c, &i), r)| SeqInput {
                adapter,
                cache: c,
                tokens: &windows[i].ids,
                // The 35 label logits only: with Gemma's 262k-token vocabulary a full row per
                // span would cost more than a twentieth of the review.
                logits: Logits::RowsOf {
                    rows: r,
                    tokens: &self.labels,
                },
            })
            .collect();
        let logits = model.forward(&mut batch, kv);
        drop(batch);
        for c in caches.iter_mut() {
            kv.release(c);
        }
        let logits = logits?;
        let n = self.labels.len();
        let mut k = 0;
        for &i in g {
            for &(_, span) in &windows[i].slots {
                self.probs[span] = softmax_labels(&logits[k * n..(k + 1) * n]);
                k += 1;
            }
        }
        self.next += 1;
        Ok(g.len())
    }

    /// The label distribution at every span's slot, and the work done (the KV cache is
    /// freed).
    pub fn finish(self) -> SpanProbs {
        SpanProbs {
            probs: self.probs,
            windows: self.lay.windows.len(),
            tokens: self.prefix.len() + self.lay.tokens,
            truncated_spans: self.lay.truncated_spans,
        }
    }
}
