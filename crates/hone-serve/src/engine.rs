//! The engine: one scheduler thread owns the model and the paged KV cache and runs
//! continuous batching.
//!
//! Every step it takes new requests from the queue while there is room (sequences and KV
//! blocks), puts one token of every decoding sequence and prefill chunks of new ones into one
//! ragged forward call (so running streams keep flowing while a long prompt is read), samples,
//! and streams each sequence's text to its request. Sequences for different adapters share the
//! batch (per-row LoRA).
//!
//! Prompts are read in the model's chunks ([`PrefillSchedule`]): fixed boundaries, shorter
//! late in a long prompt, so that no chunk costs more than about twice the matmul work of 256
//! rows however far into the prompt it is. The prefill budget (`prefill_chunks_per_step`, in
//! such chunk costs) is shared among the sequences still reading their prompt (decode rows
//! never count against it): those passed over the longest go first, then those with the
//! fewest prompt tokens left. So a short prompt that arrives while a long one is being read
//! is read whole in its first step (its second when the long one was passed over just
//! before), beside a long chunk only while both fit the budget; and prefills take turns, so
//! a long prompt keeps advancing however many short ones arrive. A step with prompt rows
//! thus costs a bounded time, and a request's first token waits at most about two such
//! steps. Chunk boundaries depend on the position alone, so answers do not depend on what
//! shares a step.
//!
//! When the KV pool runs out, the most recently admitted sequence is preempted: its blocks are
//! freed and it is recomputed later (prompt in chunks, then its generated tokens replayed one
//! per step, which gives the same numbers as the first time). A request whose client has gone
//! is dropped at the next step.
//!
//! With `prefix_cache` on, full prompt blocks are registered in the KV pool's prefix index
//! once computed (keyed per adapter: K/V differ per adapter), and a sequence about to be
//! prefilled (new, or preempted and recomputed) starts on the longest run of cached blocks
//! matching its prompt, never the whole prompt: at least its last 2 tokens are computed
//! (logits for the first new token, and the same attention kernel as a cold prefill).
//! Blocks held by several sequences are shared, never copied; releasing, preempting or
//! cancelling a sequence only lets go of its references.
//!
//! Document reviews (`POST /v1/review`) run on the same thread and the same base model: a
//! review is a [`ReviewJob`] whose windows ([`WindowScorer`]) go through the model one group
//! per scheduler round, between decode steps, so chat streams keep flowing while a contract
//! is read (each of their tokens waits at most one window group, `review_batch_tokens`).
//! Reviews run one at a time, in arrival order; each holds its own small KV cache (the
//! instruction prefix forked into its windows) only while it runs.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Instant;

use hone_model::kernels::log_sum_exp;
use hone_model::kv_cache::{KvCache, SeqCache};
use hone_model::llama::{Logits, SeqInput};
use hone_model::lora::LoraAdapter;
use hone_model::prefill_schedule::PrefillSchedule;
use hone_model::sampler::{log_softmax, Sampler, SamplingParams};
use hone_model::tokenizer::Tokenizer;
use hone_model::{DecodeStep, FinishReason, Llama};
use hone_review::scoring::WindowScorer;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use crate::constrain::Constraint;
use crate::error::{Result, ServeError};
use crate::metrics::Metrics;

/// Scheduler limits.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Sequences decoded together at most.
    pub max_batch: usize,
    /// Bytes of KV cache (the pool of blocks).
    pub kv_bytes: usize,
    /// Prompt work per step at most, in chunk costs ([`PrefillSchedule::cap`]): the first
    /// prompt chunk always goes, others while the step's estimated prompt cost stays within
    /// this many caps.
    pub prefill_chunks_per_step: usize,
    /// Requests waiting beyond this are refused (429).
    pub max_queue: usize,
    /// Automatic prefix caching: reuse the KV of full prompt blocks already computed (a
    /// shared system prompt, chat template) instead of recomputing them. Off by default: the
    /// reused K/V come from another batch shape, so answers may differ from a cold prefill
    /// in the last float bits.
    pub prefix_cache: bool,
    /// Most window tokens of a review in one forward call (one piece between decode steps):
    /// smaller keeps chat tokens flowing more evenly while a review runs.
    pub review_batch_tokens: usize,
    /// Reviews waiting or running at most; beyond, 429.
    pub max_reviews: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_batch: 32,
            kv_bytes: 512 << 20,
            prefill_chunks_per_step: 1,
            max_queue: 256,
            prefix_cache: false,
            review_batch_tokens: 1024,
            max_reviews: 64,
        }
    }
}

/// One generation request, resolved (tokens, adapter, constraint).
pub struct GenParams {
    pub prompt: Vec<u32>,
    pub adapter: Option<Arc<LoraAdapter>>,
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    pub stop_strings: Vec<String>,
    pub stop_tokens: Vec<u32>,
    /// `Some(k)`: return each token's log-probability and the `k` most likely alternatives.
    pub logprobs: Option<usize>,
    pub constraint: Option<Constraint>,
    /// Keep the mean log-probability of the sampled tokens under the model's own (unmasked)
    /// distribution, for [`Event::Done::mean_logprob`] (versioned deployments watch it).
    pub track_logprob: bool,
}

/// A sampled token with its log-probabilities.
#[derive(Debug, Clone)]
pub struct TokenLogprob {
    pub id: u32,
    pub logprob: f32,
    /// The most likely tokens at that step, best first.
    pub top: Vec<(u32, f32)>,
}

/// What a request receives, in order: deltas, then one `Done` or `Error`.
#[derive(Debug)]
pub enum Event {
    /// New text, and the tokens sampled since the previous event (with log-probabilities when
    /// asked). Text may lag tokens (held back until a stop string is ruled out).
    Delta {
        text: String,
        tokens: Vec<TokenLogprob>,
    },
    Done {
        finish: FinishReason,
        prompt_tokens: usize,
        completion_tokens: usize,
        /// With [`GenParams::track_logprob`]: the mean log-probability of the output tokens.
        mean_logprob: Option<f64>,
    },
    Error(String),
}

/// The receiving end of a request. Dropping it cancels the request.
pub struct RequestHandle {
    pub events: UnboundedReceiver<Event>,
}

struct Pending {
    params: GenParams,
    tx: UnboundedSender<Event>,
    arrived: Instant,
}

/// A document's review windows to run on the engine's model, with the review adapter.
pub struct ReviewJob {
    pub scorer: WindowScorer,
    pub adapter: Option<Arc<LoraAdapter>>,
    /// Set when the client has gone: the job is dropped at the scheduler's next round.
    pub cancel: Arc<AtomicBool>,
}

/// What a review job ends with: its scorer, every window scored, or why it failed.
pub type ReviewOutcome = std::result::Result<WindowScorer, String>;

/// The receiving end of a review job (dropping it cancels the job, as its `cancel` does).
pub struct ReviewHandle {
    pub done: tokio::sync::oneshot::Receiver<ReviewOutcome>,
}

struct QueuedReview {
    job: ReviewJob,
    tx: tokio::sync::oneshot::Sender<ReviewOutcome>,
}

impl QueuedReview {
    fn is_cancelled(&self) -> bool {
        self.job.cancel.load(Ordering::SeqCst) || self.tx.is_closed()
    }
}

/// What waits for the scheduler thread to pick it up.
#[derive(Default)]
struct Queues {
    gen: VecDeque<Pending>,
    reviews: VecDeque<QueuedReview>,
}

struct Shared {
    queue: Mutex<Queues>,
    /// Requests the scheduler holds but has not admitted (published every step), so the
    /// queue limit counts every waiting request, not only those not yet picked up.
    waiting: std::sync::atomic::AtomicUsize,
    /// Reviews the scheduler holds (running or waiting their turn).
    reviews: std::sync::atomic::AtomicUsize,
    wake: Condvar,
    stopping: AtomicBool,
    stopped: AtomicBool,
}

/// The handle to the scheduler thread.
pub struct Engine {
    shared: Arc<Shared>,
    config: EngineConfig,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    prompt_limit: usize,
    kv_tokens: usize,
}

/// A running sequence.
struct Seq {
    p: GenParams,
    tx: UnboundedSender<Event>,
    arrived: Instant,
    cache: SeqCache,
    sampler: Sampler,
    /// The generated tokens (the last one not yet in the cache: the next decode step feeds
    /// it), their text, stop strings and limits.
    decode: DecodeStep,
    pending_lp: Vec<TokenLogprob>,
    /// Sum and count of the sampled tokens' log-probabilities (with `track_logprob`).
    lp_sum: f64,
    lp_n: u32,
    last_token_at: Option<Instant>,
    finished: Option<FinishReason>,
    /// Admission order, for picking preemption victims (latest first).
    admitted: u64,
    /// Steps in a row this sequence had prompt left to read and was not fed (the prefill
    /// budget went to others); those passed over the longest are fed first.
    passed_over: u32,
    /// Prefix-cache namespace: 0 for the base model, one number per adapter.
    ns: u64,
}

impl Seq {
    /// All known tokens: the prompt, then what was generated.
    fn known(&self, i: usize) -> u32 {
        if i < self.p.prompt.len() {
            self.p.prompt[i]
        } else {
            self.decode.tokens()[i - self.p.prompt.len()]
        }
    }
    fn known_len(&self) -> usize {
        self.p.prompt.len() + self.decode.tokens().len()
    }
    /// The tokens this sequence feeds next: the rest of the prompt chunk it is in, or one
    /// token (a decode step, or a replayed token after preemption). Returns (start, end,
    /// wants logits).
    fn next_feed(&self, schedule: &PrefillSchedule) -> (usize, usize, bool) {
        let fed = self.cache.len();
        let plen = self.p.prompt.len();
        if fed < plen {
            let end = schedule.chunk_end(fed, plen);
            (fed, end, end == plen && self.decode.tokens().is_empty())
        } else {
            (fed, fed + 1, fed + 1 == self.known_len())
        }
    }
}

impl Engine {
    /// Starts the scheduler thread. `model` and `tokenizer` are shared read-only.
    pub fn start(
        model: Arc<Llama>,
        tokenizer: Arc<Tokenizer>,
        config: EngineConfig,
        metrics: Metrics,
    ) -> Engine {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queues::default()),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            reviews: std::sync::atomic::AtomicUsize::new(0),
            wake: Condvar::new(),
            stopping: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
        });
        let mut kv = model.new_cache_with_memory(config.kv_bytes);
        if config.prefix_cache {
            kv.enable_prefix_cache();
        }
        let kv_tokens = kv.num_blocks() * kv.block_size();
        let prompt_limit = kv_tokens.min(model.max_context()) - 1;
        let sh = shared.clone();
        let cfg = config.clone();
        let thread = std::thread::Builder::new()
            .name("hone-engine".into())
            .spawn(move || {
                let mut s = Scheduler {
                    schedule: PrefillSchedule::for_model(&model),
                    model,
                    tokenizer,
                    kv,
                    cfg,
                    metrics,
                    running: Vec::new(),
                    waiting: VecDeque::new(),
                    reviews: VecDeque::new(),
                    admitted: 0,
                    adapter_ns: HashMap::new(),
                    last_ns: 0,
                };
                s.run(&sh);
                sh.stopped.store(true, Ordering::SeqCst);
            })
            .expect("spawn the engine thread");
        Engine {
            shared,
            config,
            thread: Mutex::new(Some(thread)),
            prompt_limit,
            kv_tokens,
        }
    }

    /// The longest prompt the KV pool (and the model's context) can hold.
    pub fn prompt_limit(&self) -> usize {
        self.prompt_limit
    }

    /// Positions the KV pool holds in all.
    pub fn kv_tokens(&self) -> usize {
        self.kv_tokens
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Queues a request. Errors: a prompt that can never fit (400), a full queue (429), a
    /// stopping engine (503).
    pub fn submit(&self, params: GenParams) -> Result<RequestHandle> {
        if self.shared.stopping.load(Ordering::SeqCst) || self.shared.stopped.load(Ordering::SeqCst)
        {
            return Err(ServeError::Unavailable(
                "the server is shutting down".into(),
            ));
        }
        if params.prompt.is_empty() {
            return Err(ServeError::bad("messages", "the prompt is empty"));
        }
        if params.prompt.len() > self.prompt_limit {
            return Err(ServeError::bad(
                "messages",
                format!(
                    "the prompt has {} tokens; this server holds at most {} (context and KV memory)",
                    params.prompt.len(),
                    self.prompt_limit
                ),
            ));
        }
        let (tx, rx) = unbounded_channel();
        {
            let mut q = self.shared.queue.lock().map_err(|_| poisoned())?;
            let waiting = q.gen.len() + self.shared.waiting.load(Ordering::SeqCst);
            if waiting >= self.config.max_queue {
                return Err(ServeError::Overloaded(format!(
                    "{waiting} requests are waiting; try again shortly"
                )));
            }
            q.gen.push_back(Pending {
                params,
                tx,
                arrived: Instant::now(),
            });
        }
        self.shared.wake.notify_one();
        Ok(RequestHandle { events: rx })
    }

    /// Queues a review job; its windows run between decode steps, reviews one at a time in
    /// arrival order. Errors: `max_reviews` reviews held already (429), a stopping engine
    /// (503).
    pub fn submit_review(&self, job: ReviewJob) -> Result<ReviewHandle> {
        if self.shared.stopping.load(Ordering::SeqCst) || self.shared.stopped.load(Ordering::SeqCst)
        {
            return Err(ServeError::Unavailable(
                "the server is shutting down".into(),
            ));
        }
        let (tx, done) = tokio::sync::oneshot::channel();
        {
            let mut q = self.shared.queue.lock().map_err(|_| poisoned())?;
            let held = q.reviews.len() + self.shared.reviews.load(Ordering::SeqCst);
            if held >= self.config.max_reviews {
                return Err(ServeError::Overloaded(format!(
                    "{held} reviews are waiting or running, this server's maximum \
                     (--max-reviews); try again shortly"
                )));
            }
            q.reviews.push_back(QueuedReview { job, tx });
        }
        self.shared.wake.notify_one();
        Ok(ReviewHandle { done })
    }

    /// Stops taking requests; the thread finishes what it has, then exits. Blocks until then.
    pub fn shutdown(&self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        self.shared.wake.notify_all();
        if let Ok(mut t) = self.thread.lock() {
            if let Some(h) = t.take() {
                let _ = h.join();
            }
        }
    }

    /// Whether the scheduler thread is still running.
    pub fn is_alive(&self) -> bool {
        !self.shared.stopped.load(Ordering::SeqCst)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The sampled token's log-probability and the `k` most likely tokens, best first.
fn token_logprob(logits: &[f32], tok: u32, k: usize) -> TokenLogprob {
    let lp = log_softmax(logits);
    let mut top = Vec::new();
    if k > 0 {
        let mut idx: Vec<u32> = (0..lp.len() as u32).collect();
        let k = k.min(idx.len());
        idx.select_nth_unstable_by(k - 1, |&a, &b| lp[b as usize].total_cmp(&lp[a as usize]));
        idx.truncate(k);
        idx.sort_by(|&a, &b| lp[b as usize].total_cmp(&lp[a as usize]));
        top = idx.into_iter().map(|t| (t, lp[t as usize])).collect();
    }
    TokenLogprob {
        id: tok,
        logprob: lp[tok as usize],
        top,
    }
}

/// Prompt tokens a sequence computes itself at least when it starts on cached blocks: at
/// least one (its logits give the first new token), and two so that the rest of the prompt
/// runs through the same attention kernel as a cold prefill does (`Llama::forward` reads
/// runs of 2+ rows of one sequence with the tiled kernel, single rows row by row, which
/// rounds differently and can change greedy text where two tokens are nearly tied).
const MIN_COMPUTED_PROMPT: usize = 2;

/// The part of a prompt whose full blocks may come from the prefix cache.
fn reusable(prompt: &[u32]) -> &[u32] {
    &prompt[..prompt.len().saturating_sub(MIN_COMPUTED_PROMPT)]
}

fn poisoned() -> ServeError {
    ServeError::Internal("the engine's queue lock is poisoned".into())
}

struct Scheduler {
    model: Arc<Llama>,
    /// The model's prompt chunk boundaries (the same as `generate`'s).
    schedule: PrefillSchedule,
    tokenizer: Arc<Tokenizer>,
    kv: KvCache,
    cfg: EngineConfig,
    metrics: Metrics,
    running: Vec<Seq>,
    /// Preempted sequences first (front), then new requests.
    waiting: VecDeque<Seq>,
    /// Review jobs in arrival order; the first one runs.
    reviews: VecDeque<QueuedReview>,
    admitted: u64,
    /// Prefix-cache namespaces of adapters, by the adapter's address. The `Weak` keeps the
    /// allocation, so no other adapter can take that address while the entry lives.
    adapter_ns: HashMap<usize, (Weak<LoraAdapter>, u64)>,
    last_ns: u64,
}

impl Scheduler {
    fn run(&mut self, sh: &Shared) {
        loop {
            // Take new requests; sleep when there is nothing to do.
            {
                let Ok(mut q) = sh.queue.lock() else { return };
                while self.running.is_empty()
                    && self.waiting.is_empty()
                    && self.reviews.is_empty()
                    && q.gen.is_empty()
                    && q.reviews.is_empty()
                {
                    if sh.stopping.load(Ordering::SeqCst) {
                        return;
                    }
                    q = match sh.wake.wait(q) {
                        Ok(q) => q,
                        Err(_) => return,
                    };
                }
                let new: Vec<Pending> = q.gen.drain(..).collect();
                for p in new {
                    let seq = self.new_seq(p);
                    self.waiting.push_back(seq);
                }
                self.reviews.extend(q.reviews.drain(..));
                sh.waiting.store(self.waiting.len(), Ordering::SeqCst);
                sh.reviews.store(self.reviews.len(), Ordering::SeqCst);
            }
            self.drop_cancelled();
            self.admit();
            self.publish();
            sh.waiting.store(self.waiting.len(), Ordering::SeqCst);
            if self.running.is_empty() {
                if !self.waiting.is_empty() {
                    // Nothing runs and the first waiting request does not fit: it never will.
                    let mut s = self.waiting.pop_front().expect("not empty");
                    let _ = s.tx.send(Event::Error(
                        "the request needs more KV memory than the server has".into(),
                    ));
                    self.kv.release(&mut s.cache);
                }
                // Nothing to decode: the review's windows go on back to back (new requests
                // are taken between every two pieces).
                self.review_step();
                sh.reviews.store(self.reviews.len(), Ordering::SeqCst);
                continue;
            }
            if let Err(e) = self.step() {
                tracing::error!("engine step failed: {e}");
                for mut s in self.running.drain(..) {
                    let _ = s.tx.send(Event::Error(format!("generation failed: {e}")));
                    self.kv.release(&mut s.cache);
                }
            }
            // One piece of the running review between two decode steps.
            self.review_step();
            sh.reviews.store(self.reviews.len(), Ordering::SeqCst);
            self.publish();
            sh.waiting.store(self.waiting.len(), Ordering::SeqCst);
        }
    }

    /// Runs one piece of the first review (the prefix or a group of windows), after dropping
    /// the reviews whose clients have gone; a review whose windows are all scored, or whose
    /// piece failed, is answered and leaves the queue.
    fn review_step(&mut self) {
        self.reviews.retain(|r| !r.is_cancelled());
        self.metrics.set_reviews_waiting(self.reviews.len());
        let Some(r) = self.reviews.front_mut() else {
            return;
        };
        let t0 = Instant::now();
        let got = r.job.scorer.step(&self.model, r.job.adapter.as_deref());
        self.metrics.review_piece(
            got.as_ref().copied().unwrap_or(0),
            t0.elapsed().as_secs_f64(),
        );
        let outcome = match got {
            Err(e) => Err(format!("the review's forward pass failed: {e}")),
            Ok(_) if r.job.scorer.is_done() => Ok(()),
            Ok(_) => return,
        };
        let r = self.reviews.pop_front().expect("front exists");
        // the gauge first: whoever gets the answer may read the metrics at once
        self.metrics.set_reviews_waiting(self.reviews.len());
        let _ = r.tx.send(outcome.map(|()| r.job.scorer));
    }

    /// The prefix-cache namespace of a request's adapter: 0 for the base model, a number of
    /// its own for each adapter (a reloaded adapter is a new one).
    fn namespace(&mut self, adapter: Option<&Arc<LoraAdapter>>) -> u64 {
        let Some(a) = adapter else { return 0 };
        if !self.kv.prefix_cache_enabled() {
            return 0;
        }
        let key = Arc::as_ptr(a) as usize;
        if let Some(&(_, ns)) = self.adapter_ns.get(&key) {
            return ns;
        }
        // Forget adapters that are gone: their cached blocks are never matched again and
        // age out of the cache.
        self.adapter_ns.retain(|_, (w, _)| w.strong_count() > 0);
        self.last_ns += 1;
        self.adapter_ns
            .insert(key, (Arc::downgrade(a), self.last_ns));
        self.last_ns
    }

    fn new_seq(&mut self, p: Pending) -> Seq {
        self.metrics.add_prompt_tokens(p.params.prompt.len() as u64);
        let ns = self.namespace(p.params.adapter.as_ref());
        let decode = DecodeStep::new(
            &self.tokenizer,
            &p.params.stop_tokens,
            &p.params.stop_strings,
            p.params.max_tokens,
            self.model
                .max_context()
                .saturating_sub(p.params.prompt.len()),
        );
        let sampler = Sampler::new(p.params.sampling.clone());
        Seq {
            p: p.params,
            tx: p.tx,
            arrived: p.arrived,
            cache: SeqCache::new(),
            sampler,
            decode,
            pending_lp: Vec::new(),
            lp_sum: 0.0,
            lp_n: 0,
            last_token_at: None,
            finished: None,
            admitted: 0,
            passed_over: 0,
            ns,
        }
    }

    fn publish(&self) {
        self.metrics.set_running(self.running.len());
        self.metrics.set_queue_depth(self.waiting.len());
        let free = self.kv.free_blocks();
        self.metrics
            .set_kv_blocks(self.kv.num_blocks() - free, free);
        self.metrics.set_kv_blocks_cached(self.kv.cached_blocks());
    }

    /// Frees every request whose client has gone.
    fn drop_cancelled(&mut self) {
        let kv = &mut self.kv;
        self.running.retain_mut(|s| {
            if s.tx.is_closed() {
                kv.release(&mut s.cache);
                false
            } else {
                true
            }
        });
        self.waiting.retain_mut(|s| {
            if s.tx.is_closed() {
                kv.release(&mut s.cache);
                false
            } else {
                true
            }
        });
    }

    /// Moves waiting sequences into the batch while sequences and KV blocks allow, keeping
    /// one free block per running sequence for its next decode step.
    fn admit(&mut self) {
        while self.running.len() < self.cfg.max_batch {
            let Some(s) = self.waiting.front() else { break };
            let need = self.admission_need(s);
            if need + self.running.len() > self.kv.free_blocks() && !self.running.is_empty() {
                break;
            }
            if need > self.kv.free_blocks() {
                break;
            }
            let mut s = self.waiting.pop_front().expect("front exists");
            self.admitted += 1;
            s.admitted = self.admitted;
            self.running.push(s);
        }
    }

    /// Blocks `s` takes from the free count for its next feed: with the prefix cache, the
    /// cached blocks it will start on that nobody holds, and new blocks for the rest of its
    /// first prompt chunk.
    fn admission_need(&self, s: &Seq) -> usize {
        let (a, b, _) = s.next_feed(&self.schedule);
        let plain = self.kv.blocks_needed(&s.cache, b - a);
        if !self.kv.prefix_cache_enabled() || !s.cache.blocks().is_empty() {
            return plain;
        }
        let plen = s.p.prompt.len();
        let hit = self.kv.lookup_prefix(s.ns, reusable(&s.p.prompt));
        if hit.is_empty() {
            return plain;
        }
        let reused = hit.len() * self.kv.block_size();
        let end = self.schedule.chunk_end(reused, plen);
        let idle = hit
            .iter()
            .filter(|&&blk| self.kv.ref_count(blk) == 0)
            .count();
        idle + end.div_ceil(self.kv.block_size()) - hit.len()
    }

    /// Frees the most recently admitted running sequence (never the oldest one) for
    /// recompute; returns its index in `running` before removal.
    fn preempt(&mut self) -> Option<usize> {
        let oldest = (0..self.running.len()).min_by_key(|&i| self.running[i].admitted)?;
        let v = (0..self.running.len())
            .filter(|&i| i != oldest)
            .max_by_key(|&i| self.running[i].admitted)?;
        let mut s = self.running.remove(v);
        self.kv.release(&mut s.cache);
        s.pending_lp.clear();
        s.passed_over = 0;
        self.metrics.preempted();
        self.waiting.push_front(s);
        Some(v)
    }

    /// What every running sequence feeds this step, in `running` order: (index, start, end,
    /// wants logits). Decode rows (and tokens replayed after preemption) always go. Prompt
    /// chunks share the budget of `prefill_chunks_per_step` chunk costs: sequences passed
    /// over the longest go first (so prefills take turns), then those with the fewest prompt
    /// tokens left (a short prompt admitted beside a long one is read whole at once, in a
    /// step that carries the long chunk only if both fit); the first chunk always goes,
    /// others while they fit. Chunks keep their fixed boundaries, so a sequence's numbers do
    /// not depend on what shares its steps.
    fn plan_feeds(&self) -> Vec<(usize, usize, usize, bool)> {
        let feeds: Vec<(usize, usize, bool)> = self
            .running
            .iter()
            .map(|s| s.next_feed(&self.schedule))
            .collect();
        let mut go: Vec<bool> = (0..feeds.len())
            .map(|i| feeds[i].0 >= self.running[i].p.prompt.len())
            .collect();
        let mut prefills: Vec<usize> = (0..feeds.len()).filter(|&i| !go[i]).collect();
        prefills.sort_by_key(|&i| {
            let s = &self.running[i];
            (
                std::cmp::Reverse(s.passed_over),
                s.p.prompt.len() - feeds[i].0,
                s.admitted,
            )
        });
        let budget = self.cfg.prefill_chunks_per_step.max(1) as f64 * self.schedule.cap();
        let mut used = 0.0;
        for (k, i) in prefills.into_iter().enumerate() {
            let cost = self.schedule.cost(feeds[i].0, feeds[i].1);
            if k == 0 || used + cost <= budget {
                used += cost;
                go[i] = true;
            }
        }
        (0..feeds.len())
            .filter(|&i| go[i])
            .map(|i| (i, feeds[i].0, feeds[i].1, feeds[i].2))
            .collect()
    }

    /// One forward call over the batch, then sampling.
    fn step(&mut self) -> hone_model::Result<()> {
        // Sequences about to start their prompt begin on the cached blocks of its prefix.
        if self.kv.prefix_cache_enabled() {
            for s in self.running.iter_mut() {
                if s.cache.is_empty() && s.cache.blocks().is_empty() {
                    let n = self
                        .kv
                        .reuse_prefix(&mut s.cache, s.ns, reusable(&s.p.prompt));
                    if n > 0 {
                        self.metrics.add_prefix_cache_hit_tokens(n as u64);
                    }
                }
            }
        }
        // Decide what every running sequence feeds this step, within the prefill budget.
        let mut plan = self.plan_feeds();
        // Make room in the KV pool: preempt the latest sequences until the plan fits.
        loop {
            let need: usize = plan
                .iter()
                .map(|&(i, a, b, _)| self.kv.blocks_needed(&self.running[i].cache, b - a))
                .sum();
            if need <= self.kv.free_blocks() {
                break;
            }
            let Some(victim) = self.preempt() else {
                // A single sequence that cannot grow: it has used all the memory there is.
                self.running[0].finished = Some(FinishReason::Length);
                self.finish_done();
                return Ok(());
            };
            plan.retain(|p| p.0 != victim);
            for p in plan.iter_mut() {
                if p.0 > victim {
                    p.0 -= 1;
                }
            }
            if plan.is_empty() {
                return Ok(());
            }
        }
        // Prefilling sequences left out this step go first in the next one.
        let mut fed = plan.iter().map(|p| p.0).peekable();
        for (i, s) in self.running.iter_mut().enumerate() {
            if fed.next_if_eq(&i).is_some() {
                s.passed_over = 0;
            } else if s.cache.len() < s.p.prompt.len() {
                s.passed_over += 1;
            }
        }
        // Forward.
        let toks: Vec<Vec<u32>> = plan
            .iter()
            .map(|&(i, a, b, _)| (a..b).map(|t| self.running[i].known(t)).collect())
            .collect();
        let out = {
            let mut batch: Vec<SeqInput<'_>> = Vec::with_capacity(plan.len());
            let mut it = plan.iter().zip(&toks).peekable();
            for (i, s) in self.running.iter_mut().enumerate() {
                let Some(&(&(pi, _, _, want), t)) = it.peek() else {
                    break;
                };
                if pi != i {
                    continue;
                }
                it.next();
                batch.push(SeqInput {
                    cache: &mut s.cache,
                    tokens: t,
                    logits: if want { Logits::Last } else { Logits::None },
                    adapter: s.p.adapter.as_deref(),
                });
            }
            self.model.forward(&mut batch, &mut self.kv)?
        };
        // Prompt blocks computed by this step can be reused from now on.
        if self.kv.prefix_cache_enabled() {
            for &(i, a, _, _) in &plan {
                let s = &self.running[i];
                if a < s.p.prompt.len() {
                    self.kv.register_prefix(s.ns, &s.cache, &s.p.prompt);
                }
            }
        }
        // Sample where logits came back.
        let vocab = self.model.vocab_size();
        let mut rows = out.chunks_exact(vocab);
        let now = Instant::now();
        for &(i, _, _, want) in &plan {
            if !want {
                continue;
            }
            let Some(row) = rows.next() else { break };
            let s = &mut self.running[i];
            // The row is copied only when a constraint has to mask it.
            let logits: std::borrow::Cow<'_, [f32]> = match s.p.constraint.as_mut() {
                None => std::borrow::Cow::Borrowed(row),
                Some(c) => {
                    let mut masked = row.to_vec();
                    if let Err(e) = c.mask_logits(&mut masked) {
                        let _ =
                            s.tx.send(Event::Error(format!("constrained decoding: {e}")));
                        s.finished = Some(FinishReason::Stop);
                        continue;
                    }
                    std::borrow::Cow::Owned(masked)
                }
            };
            let tok = s.sampler.sample(&logits);
            // A stop token ends the request; it is not output, not counted and has no
            // log-probability entry.
            if s.decode.is_stop_token(tok) {
                s.finished = Some(FinishReason::Stop);
                continue;
            }
            if let Some(k) = s.p.logprobs {
                s.pending_lp.push(token_logprob(&logits, tok, k));
            }
            if s.p.track_logprob {
                s.lp_sum += f64::from(row[tok as usize] - log_sum_exp(row));
                s.lp_n += 1;
            }
            match s.last_token_at {
                None => self.metrics.observe_ttft((now - s.arrived).as_secs_f64()),
                Some(t) => self.metrics.observe_inter_token((now - t).as_secs_f64()),
            }
            s.last_token_at = Some(now);
            self.metrics.add_output_tokens(1);
            Self::take_token(s, tok);
        }
        self.finish_done();
        Ok(())
    }

    /// The constraint, text and the remaining stop conditions for a sampled token (not a
    /// stop token).
    fn take_token(s: &mut Seq, tok: u32) {
        if let Some(c) = s.p.constraint.as_mut() {
            if let Err(e) = c.commit(tok) {
                let _ =
                    s.tx.send(Event::Error(format!("constrained decoding: {e}")));
                s.finished = Some(FinishReason::Stop);
                return;
            }
        }
        let step = match s.decode.step(tok) {
            Ok(step) => step,
            Err(e) => {
                let _ = s.tx.send(Event::Error(format!("decoding text: {e}")));
                s.finished = Some(FinishReason::Stop);
                return;
            }
        };
        if !step.text.is_empty() || !s.pending_lp.is_empty() {
            let _ = s.tx.send(Event::Delta {
                text: step.text,
                tokens: std::mem::take(&mut s.pending_lp),
            });
        }
        // A finished constraint is a stop, even where the length limit is reached too.
        if s.p.constraint.as_ref().is_some_and(|c| c.is_finished()) {
            s.finished = Some(FinishReason::Stop);
        } else {
            s.finished = step.finish;
        }
    }

    /// Sends the end of every finished sequence and frees its blocks.
    fn finish_done(&mut self) {
        let mut i = 0;
        while i < self.running.len() {
            if let Some(finish) = self.running[i].finished {
                let mut s = self.running.remove(i);
                let tail = match s.decode.finish() {
                    Ok(tail) => tail,
                    Err(e) => {
                        let _ = s.tx.send(Event::Error(format!("decoding text: {e}")));
                        String::new()
                    }
                };
                if !tail.is_empty() || !s.pending_lp.is_empty() {
                    let _ = s.tx.send(Event::Delta {
                        text: tail,
                        tokens: std::mem::take(&mut s.pending_lp),
                    });
                }
                let _ = s.tx.send(Event::Done {
                    finish,
                    prompt_tokens: s.p.prompt.len(),
                    completion_tokens: s.decode.tokens().len(),
                    mean_logprob: (s.p.track_logprob && s.lp_n > 0)
                        .then(|| s.lp_sum / f64::from(s.lp_n)),
                });
                self.kv.release(&mut s.cache);
            } else {
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The scheduler driven step by step (no thread) on a tiny random llama written by the
    //! test, so what each step feeds is exact, not timed.

    use super::*;
    use hone_model::{generate, GenRequest, LoadOptions, LoadedModel};
    use serde_json::json;

    const VOCAB: usize = 48;
    const HIDDEN: usize = 32;

    /// A 2-layer random llama (grouped-query attention, 8k context) and a byte-level
    /// tokenizer of single letters, as a Hugging Face folder, loaded.
    fn tiny_model(dir: &std::path::Path) -> LoadedModel {
        hone_model::testing::write_random_llama(
            dir,
            &hone_model::testing::RandomLlama {
                vocab: VOCAB,
                hidden: HIDDEN,
                layers: 2,
                ffn: 64,
                heads: 4,
                kv_heads: 2,
                eos_token_id: None,
            },
        )
        .unwrap();
        let vocab: serde_json::Map<String, serde_json::Value> = (0..VOCAB)
            .map(|i| {
                let s = if i == 0 {
                    "<|endoftext|>".to_string()
                } else {
                    char::from(b'A' + i as u8 - 1).to_string()
                };
                (s, json!(i))
            })
            .collect();
        hone_model::testing::write_byte_level_tokenizer(dir, vocab, &[]).unwrap();
        LoadedModel::load_hf(dir, &LoadOptions::default()).unwrap()
    }

    struct Rig {
        _dir: tempfile::TempDir,
        s: Scheduler,
    }

    fn rig(prefill_chunks_per_step: usize) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let m = tiny_model(dir.path());
        let model = Arc::new(m.model);
        let kv = model.new_cache_with_memory(64 << 20);
        Rig {
            _dir: dir,
            s: Scheduler {
                schedule: PrefillSchedule::for_model(&model),
                model,
                tokenizer: Arc::new(m.tokenizer),
                kv,
                cfg: EngineConfig {
                    prefill_chunks_per_step,
                    ..EngineConfig::default()
                },
                metrics: Metrics::new(),
                running: Vec::new(),
                waiting: VecDeque::new(),
                reviews: VecDeque::new(),
                admitted: 0,
                adapter_ns: HashMap::new(),
                last_ns: 0,
            },
        }
    }

    /// A prompt of `n` letters (never the end token), different for each `seed`.
    fn prompt(n: usize, seed: u32) -> Vec<u32> {
        (0..n as u32)
            .map(|i| 1 + (i.wrapping_mul(2_654_435_761).wrapping_add(seed * 977) >> 9) % 47)
            .collect()
    }

    impl Rig {
        /// Queues a greedy request that reports every token (log-probabilities on).
        fn submit(&mut self, prompt: Vec<u32>, max_tokens: usize) -> UnboundedReceiver<Event> {
            let (tx, rx) = unbounded_channel();
            let params = GenParams {
                prompt,
                adapter: None,
                max_tokens,
                sampling: SamplingParams::greedy(),
                stop_strings: Vec::new(),
                stop_tokens: Vec::new(),
                logprobs: Some(0),
                constraint: None,
                track_logprob: false,
            };
            let seq = self.s.new_seq(Pending {
                params,
                tx,
                arrived: Instant::now(),
            });
            self.s.waiting.push_back(seq);
            rx
        }

        /// One scheduler round: admission, then one step.
        fn step(&mut self) {
            self.s.admit();
            self.s.step().unwrap();
        }

        /// Prompt tokens read so far by the running sequence whose prompt is `len` long.
        fn read(&self, len: usize) -> Option<usize> {
            self.s
                .running
                .iter()
                .find(|s| s.p.prompt.len() == len)
                .map(|s| s.cache.len().min(len))
        }

        /// What `hone generate` answers alone for `prompt` (greedy).
        fn alone(&self, prompt: &[u32], max_tokens: usize) -> Vec<u32> {
            let out = generate(
                &self.s.model,
                &self.s.tokenizer,
                &[GenRequest {
                    prompt: prompt.to_vec(),
                    max_tokens,
                    sampling: SamplingParams::greedy(),
                    stop_strings: Vec::new(),
                    stop_tokens: Vec::new(),
                }],
                |_, _| {},
            )
            .unwrap();
            out[0].tokens.clone()
        }
    }

    /// The tokens received so far (and whether `Done` came).
    fn drain(rx: &mut UnboundedReceiver<Event>, into: &mut Vec<u32>) -> bool {
        let mut done = false;
        while let Ok(e) = rx.try_recv() {
            match e {
                Event::Delta { tokens, .. } => into.extend(tokens.iter().map(|t| t.id)),
                Event::Done { .. } => done = true,
                Event::Error(e) => panic!("request failed: {e}"),
            }
        }
        done
    }

    /// A prompt `chunks` whole chunks of the rig's schedule long, plus `extra` tokens.
    fn chunked_len(r: &Rig, chunks: usize, extra: usize) -> usize {
        r.s.schedule.chunks(8000)[chunks - 1].1 + extra
    }

    #[test]
    fn a_short_prompt_gets_its_first_token_in_its_first_step_beside_a_long_prefill() {
        let mut r = rig(1);
        let chunks = 16;
        let long = prompt(chunked_len(&r, chunks, 37), 1);
        let short = prompt(4, 2);
        let (long_max, short_max) = (3, 6);
        let mut long_rx = r.submit(long.clone(), long_max);
        r.step();
        assert_eq!(
            r.read(long.len()),
            Some(r.s.schedule.chunk_end(0, long.len())),
            "one chunk read"
        );
        let mut short_rx = r.submit(short.clone(), short_max);
        let (mut long_out, mut short_out) = (Vec::new(), Vec::new());
        // Per step after the short request came: its tokens so far, and whether the long
        // prompt advanced.
        let mut short_seen = Vec::new();
        let mut long_moved = Vec::new();
        let mut long_done = false;
        let mut steps = 0;
        while !long_done {
            let before = r.read(long.len());
            r.step();
            steps += 1;
            assert!(steps < 10 * chunks, "the long request never finished");
            drain(&mut short_rx, &mut short_out);
            long_done = drain(&mut long_rx, &mut long_out);
            short_seen.push(short_out.len());
            if long_out.is_empty() {
                long_moved.push(r.read(long.len()) > before);
            }
        }
        assert_eq!(
            short_seen[0], 1,
            "the short request's first token comes from the first step it shares with the \
             long prefill (tokens after each step: {short_seen:?})"
        );
        assert_eq!(
            &short_seen[..short_max],
            &(1..=short_max).collect::<Vec<_>>()[..],
            "then it decodes one token every step, never starved by the prefill"
        );
        // The long prompt is never passed over two steps in a row.
        assert!(
            !long_moved.windows(2).any(|w| !w[0] && !w[1]),
            "the long prefill advanced in steps {long_moved:?}"
        );
        // Sharing steps does not change the answers.
        assert_eq!(short_out, r.alone(&short, short_max));
        assert_eq!(long_out, r.alone(&long, long_max));
        assert_eq!(
            r.s.kv.free_blocks(),
            r.s.kv.num_blocks(),
            "every block back"
        );
    }

    #[test]
    fn late_chunks_are_shorter_and_no_step_reads_more_than_its_budget() {
        let mut r = rig(1);
        let s = r.s.schedule;
        let len = 3000;
        let long = prompt(len, 7);
        let mut rx = r.submit(long.clone(), 1);
        let mut cuts = vec![0];
        // The request ends (and leaves `running`) in the step that reads its last chunk.
        while *cuts.last().unwrap() < len {
            r.step();
            let n = r.read(len).unwrap_or(len);
            assert!(n > *cuts.last().unwrap(), "the prompt advanced");
            cuts.push(n);
        }
        let chunks: Vec<(usize, usize)> = cuts.windows(2).map(|w| (w[0], w[1])).collect();
        assert_eq!(chunks, s.chunks(len), "one schedule chunk per step");
        let first = chunks[0].1 - chunks[0].0;
        let last = chunks[chunks.len() - 2].1 - chunks[chunks.len() - 2].0;
        assert!(
            last < first,
            "late chunks are shorter ({first} rows, then {last})"
        );
        for &(a, b) in &chunks {
            assert!(
                s.cost(a, b) <= s.cap() || b - a <= 16,
                "chunk {a}..{b} costs {} over the cap {}",
                s.cost(a, b),
                s.cap()
            );
        }
        // Reading the same prompt alone gives the same token.
        let mut out = Vec::new();
        assert!(drain(&mut rx, &mut out), "done with its last chunk");
        assert_eq!(out, r.alone(&long, 1));
    }

    #[test]
    fn prefills_take_turns_under_the_budget() {
        let mut r = rig(1);
        let prompts: Vec<Vec<u32>> = [4, 5, 6]
            .iter()
            .enumerate()
            .map(|(k, &c)| prompt(chunked_len(&r, c, 0) - 3 * k, 10 + k as u32))
            .collect();
        let mut rxs: Vec<_> = prompts.iter().map(|p| r.submit(p.clone(), 2)).collect();
        let mut outs = vec![Vec::new(); prompts.len()];
        // Steps each prompt waited in a row while it had prompt left to read.
        let mut waited = vec![0usize; prompts.len()];
        let mut longest_wait = vec![0usize; prompts.len()];
        let mut done = vec![false; prompts.len()];
        for _ in 0..100 {
            if done.iter().all(|&d| d) {
                break;
            }
            let before: Vec<Option<usize>> = prompts.iter().map(|p| r.read(p.len())).collect();
            r.step();
            for (k, p) in prompts.iter().enumerate() {
                let prefilling = before[k].is_some_and(|b| b < p.len());
                if prefilling && r.read(p.len()) == before[k] {
                    waited[k] += 1;
                    longest_wait[k] = longest_wait[k].max(waited[k]);
                } else {
                    waited[k] = 0;
                }
                done[k] = drain(&mut rxs[k], &mut outs[k]) || done[k];
            }
        }
        assert!(done.iter().all(|&d| d), "every request finished");
        // One chunk per step among three prefills: each waits at most two steps in a row.
        assert!(
            longest_wait.iter().all(|&w| w <= 2),
            "steps waited in a row, per prompt: {longest_wait:?}"
        );
        for (k, p) in prompts.iter().enumerate() {
            assert_eq!(outs[k], r.alone(p, 2), "prompt {k}");
        }
    }

    #[test]
    fn a_budget_of_two_chunks_reads_the_short_prompt_and_the_long_chunks_that_fit() {
        let mut r = rig(2);
        let sch = r.s.schedule;
        let (a, b) = (
            prompt(chunked_len(&r, 6, 0), 3),
            prompt(chunked_len(&r, 6, 1), 4),
        );
        let short = prompt(5, 5);
        let _rx = (r.submit(a.clone(), 1), r.submit(b.clone(), 1));
        r.step();
        let first = sch.chunk_end(0, a.len());
        assert!(2.0 * sch.cost(0, first) <= 2.0 * sch.cap());
        assert_eq!(
            (r.read(a.len()), r.read(b.len())),
            (Some(first), Some(first)),
            "both long prompts read their first chunk"
        );
        let mut short_rx = r.submit(short.clone(), 1);
        r.step();
        let mut out = Vec::new();
        assert!(drain(&mut short_rx, &mut out), "the short request is done");
        assert_eq!(out, r.alone(&short, 1));
        // The short prompt goes first, then the long chunks (a has fewer tokens left) while
        // the step's cost stays within two caps.
        let second = sch.chunk_end(first, a.len());
        let (short_cost, long_cost) = (sch.cost(0, short.len()), sch.cost(first, second));
        let fits_one = short_cost + long_cost <= 2.0 * sch.cap();
        let fits_two = short_cost + 2.0 * long_cost <= 2.0 * sch.cap();
        let want = |fits: bool| Some(if fits { second } else { first });
        assert_eq!(
            (r.read(a.len()), r.read(b.len())),
            (want(fits_one), want(fits_two)),
            "costs: short {short_cost:.0}, long chunk {long_cost:.0}, budget {}",
            2.0 * sch.cap()
        );
    }
}
