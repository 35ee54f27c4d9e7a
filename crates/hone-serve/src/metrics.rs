//! Prometheus metrics of the OpenAI-compatible server, served as text at `/metrics`.
//!
//! Every metric lives in this struct's own [`Registry`] (never the process-global default), so
//! several servers or tests in one process do not share counters. [`Metrics`] is a handle: clones
//! share the same metrics, and every method takes `&self` and is cheap enough to call from the
//! engine's scheduler loop (atomic adds; one short mutex for the tokens/s window).
//!
//! Exposed metrics (all prefixed `hone_`):
//!
//! | name | type | labels |
//! |---|---|---|
//! | `hone_requests_total` | counter | `endpoint`, `status` (`endpoint="connection"`: answered before a path was read, a 408 head timeout or a 503 over the connection cap) |
//! | `hone_prompt_tokens_total` | counter | |
//! | `hone_generation_tokens_total` | counter | |
//! | `hone_preemptions_total` | counter | |
//! | `hone_adapter_loads_total` | counter | `result` (`ok` / `error`) |
//! | `hone_queue_depth` | gauge | |
//! | `hone_running_sequences` | gauge | |
//! | `hone_kv_blocks_used` / `hone_kv_blocks_free` | gauge | |
//! | `hone_kv_blocks_cached` | gauge | (prefix cache: idle cached blocks, counted as free) |
//! | `hone_prefix_cache_hit_tokens_total` | counter | |
//! | `hone_adapters_loaded` | gauge | |
//! | `hone_output_tokens_per_second` | gauge | (output tokens over the last ~10 s) |
//! | `hone_time_to_first_token_seconds` | histogram | |
//! | `hone_inter_token_latency_seconds` | histogram | |
//! | `hone_e2e_request_latency_seconds` | histogram | |
//! | `hone_review_documents_total` | counter | (documents reviewed by `POST /v1/review`) |
//! | `hone_review_spans_total` / `hone_review_windows_total` | counter | (spans reviewed; windows through the model) |
//! | `hone_review_model_seconds_total` | counter | (engine time spent on review windows) |
//! | `hone_review_seconds` | histogram | (a review from its request's arrival to its answer) |
//! | `hone_reviews_waiting` | gauge | (reviews the engine holds: the running one and those waiting) |

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus::{
    Counter, Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts,
    PullingGauge, Registry, TextEncoder,
};

/// Buckets of time-to-first-token and end-to-end latency, in seconds (5 ms .. 60 s).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    30.0, 40.0, 60.0,
];

/// Buckets of inter-token latency, in seconds (1 ms .. 2 s).
pub const INTER_TOKEN_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3,
    0.4, 0.5, 0.75, 1.0, 2.0,
];

/// Length of the sliding window behind `hone_output_tokens_per_second`.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);

/// Slots of the window: 100 slots of 100 ms. Memory is fixed whatever the token rate.
const RATE_SLOTS: usize = 100;

/// Output tokens over the last [`RATE_WINDOW`], kept as counts per fixed time slot in a ring,
/// so memory stays bounded however many tokens are recorded.
#[derive(Debug)]
struct RateWindow {
    start: Instant,
    slot_len: Duration,
    /// Absolute slot index (slots since `start`) each ring entry currently holds.
    slot_of: [u64; RATE_SLOTS],
    counts: [u64; RATE_SLOTS],
}

impl RateWindow {
    fn new(start: Instant) -> Self {
        RateWindow {
            start,
            slot_len: RATE_WINDOW / RATE_SLOTS as u32,
            // u64::MAX marks an entry that holds no slot yet.
            slot_of: [u64::MAX; RATE_SLOTS],
            counts: [0; RATE_SLOTS],
        }
    }

    fn slot(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.start);
        (since.as_nanos() / self.slot_len.as_nanos()) as u64
    }

    fn add(&mut self, n: u64, now: Instant) {
        let slot = self.slot(now);
        let i = (slot % RATE_SLOTS as u64) as usize;
        if self.slot_of[i] != slot {
            self.slot_of[i] = slot;
            self.counts[i] = 0;
        }
        self.counts[i] = self.counts[i].saturating_add(n);
    }

    /// Tokens per second over the window ending at `now`: the tokens of the last `RATE_SLOTS`
    /// slots (the current one included) over the time those slots cover up to `now`, which is
    /// never more than the time since `start` (so a server up for 2 s is not divided by 10 s).
    fn rate(&self, now: Instant) -> f64 {
        let cur = self.slot(now);
        let oldest = (cur + 1).saturating_sub(RATE_SLOTS as u64);
        let total: u64 = self
            .slot_of
            .iter()
            .zip(&self.counts)
            .filter(|(&s, _)| s != u64::MAX && s >= oldest && s <= cur)
            .map(|(_, &c)| c)
            .sum();
        if total == 0 {
            return 0.0;
        }
        let slot_s = self.slot_len.as_secs_f64();
        let since_start = now.saturating_duration_since(self.start).as_secs_f64();
        let span = since_start - slot_s * oldest as f64;
        // At least one slot, so a burst right after start does not divide by ~0.
        total as f64 / span.max(slot_s)
    }
}

struct Inner {
    registry: Registry,
    requests: IntCounterVec,
    prompt_tokens: IntCounter,
    generation_tokens: IntCounter,
    preemptions: IntCounter,
    adapter_loads: IntCounterVec,
    queue_depth: IntGauge,
    running: IntGauge,
    kv_used: IntGauge,
    kv_free: IntGauge,
    kv_cached: IntGauge,
    prefix_hit_tokens: IntCounter,
    adapters_loaded: IntGauge,
    ttft: Histogram,
    inter_token: Histogram,
    e2e: Histogram,
    rate: Arc<Mutex<RateWindow>>,
    review_documents: IntCounter,
    review_spans: IntCounter,
    review_windows: IntCounter,
    review_model_seconds: Counter,
    review_seconds: Histogram,
    reviews_waiting: IntGauge,
}

/// The server's metrics: a cheap, shareable handle (`Arc` inside; `Send + Sync`).
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn as_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Histograms take seconds; NaN or infinite values are dropped and negative ones read as 0, so a
/// clock oddity cannot poison a histogram's sum.
fn observe(h: &Histogram, secs: f64) {
    if secs.is_finite() {
        h.observe(secs.max(0.0));
    }
}

impl Metrics {
    pub fn new() -> Self {
        // Every name, help text and bucket list below is fixed and valid, and each name is
        // registered once in a fresh registry, so these `expect`s cannot fire.
        const OK: &str = "static metric definition is valid";
        let registry = Registry::new();

        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect(OK);
            registry.register(Box::new(c.clone())).expect(OK);
            c
        };
        let counter_vec = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect(OK);
            registry.register(Box::new(c.clone())).expect(OK);
            c
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect(OK);
            registry.register(Box::new(g.clone())).expect(OK);
            g
        };
        let histogram = |name: &str, help: &str, buckets: &[f64]| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
                .expect(OK);
            registry.register(Box::new(h.clone())).expect(OK);
            h
        };

        let requests = counter_vec(
            "hone_requests_total",
            "Finished HTTP requests by endpoint and status code.",
            &["endpoint", "status"],
        );
        let prompt_tokens = counter(
            "hone_prompt_tokens_total",
            "Prompt tokens processed (prefilled).",
        );
        let generation_tokens = counter("hone_generation_tokens_total", "Output tokens generated.");
        let preemptions = counter(
            "hone_preemptions_total",
            "Sequences preempted for lack of KV blocks (their KV is recomputed later).",
        );
        let adapter_loads = counter_vec(
            "hone_adapter_loads_total",
            "LoRA adapter loads by result (ok or error).",
            &["result"],
        );
        let queue_depth = gauge(
            "hone_queue_depth",
            "Requests waiting for the scheduler to admit them.",
        );
        let running = gauge("hone_running_sequences", "Sequences in the running batch.");
        let kv_used = gauge("hone_kv_blocks_used", "Paged KV cache blocks in use.");
        let kv_free = gauge(
            "hone_kv_blocks_free",
            "Paged KV cache blocks free (cached blocks nobody holds included).",
        );
        let kv_cached = gauge(
            "hone_kv_blocks_cached",
            "Prefix-cached KV blocks nobody holds (reusable, evicted when blocks run out).",
        );
        let prefix_hit_tokens = counter(
            "hone_prefix_cache_hit_tokens_total",
            "Prompt tokens whose KV came from the prefix cache instead of being computed.",
        );
        let adapters_loaded = gauge("hone_adapters_loaded", "LoRA adapters loaded and servable.");
        let ttft = histogram(
            "hone_time_to_first_token_seconds",
            "Time from a request's arrival to its first output token, in seconds.",
            LATENCY_BUCKETS,
        );
        let inter_token = histogram(
            "hone_inter_token_latency_seconds",
            "Time between consecutive output tokens of one sequence, in seconds.",
            INTER_TOKEN_BUCKETS,
        );
        let e2e = histogram(
            "hone_e2e_request_latency_seconds",
            "Time from a request's arrival to its last output token, in seconds.",
            LATENCY_BUCKETS,
        );

        let review_documents = counter(
            "hone_review_documents_total",
            "Documents reviewed (POST /v1/review answered with a review).",
        );
        let review_spans = counter("hone_review_spans_total", "Spans of reviewed documents.");
        let review_windows = counter(
            "hone_review_windows_total",
            "Review windows run through the model.",
        );
        let review_model_seconds = Counter::new(
            "hone_review_model_seconds_total",
            "Engine time spent on review windows (the instruction prefix included), in seconds.",
        )
        .expect(OK);
        registry
            .register(Box::new(review_model_seconds.clone()))
            .expect(OK);
        let review_seconds = histogram(
            "hone_review_seconds",
            "Time from a review request's arrival to its answer, in seconds.",
            LATENCY_BUCKETS,
        );
        let reviews_waiting = gauge(
            "hone_reviews_waiting",
            "Reviews the engine holds (the running one and those waiting their turn).",
        );

        let rate = Arc::new(Mutex::new(RateWindow::new(Instant::now())));
        let rate_for_gauge = Arc::clone(&rate);
        let tokens_per_s = PullingGauge::new(
            "hone_output_tokens_per_second",
            "Output tokens per second over the last 10 seconds.",
            Box::new(move || {
                let w = rate_for_gauge.lock().unwrap_or_else(|e| e.into_inner());
                w.rate(Instant::now())
            }),
        )
        .expect(OK);
        registry.register(Box::new(tokens_per_s)).expect(OK);

        // Pre-create the adapter-load series so both show up (at 0) before the first load.
        adapter_loads.with_label_values(&["ok"]);
        adapter_loads.with_label_values(&["error"]);

        Metrics {
            inner: Arc::new(Inner {
                registry,
                requests,
                prompt_tokens,
                generation_tokens,
                preemptions,
                adapter_loads,
                queue_depth,
                running,
                kv_used,
                kv_free,
                kv_cached,
                prefix_hit_tokens,
                adapters_loaded,
                ttft,
                inter_token,
                e2e,
                rate,
                review_documents,
                review_spans,
                review_windows,
                review_model_seconds,
                review_seconds,
                reviews_waiting,
            }),
        }
    }

    /// One finished HTTP request: endpoint label ("chat_completions", "completions", "models",
    /// "adapters", "health", "metrics", ...) and status code.
    pub fn request_done(&self, endpoint: &str, status: u16) {
        let status = status.to_string();
        self.inner
            .requests
            .with_label_values(&[endpoint, status.as_str()])
            .inc();
    }

    /// The registry, for series registered elsewhere (per-version metrics).
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Time to first token, in seconds.
    pub fn observe_ttft(&self, secs: f64) {
        observe(&self.inner.ttft, secs);
    }

    /// Time between two consecutive output tokens of one sequence, in seconds.
    pub fn observe_inter_token(&self, secs: f64) {
        observe(&self.inner.inter_token, secs);
    }

    /// End-to-end latency of one request, in seconds.
    pub fn observe_e2e(&self, secs: f64) {
        observe(&self.inner.e2e, secs);
    }

    pub fn add_prompt_tokens(&self, n: u64) {
        self.inner.prompt_tokens.inc_by(n);
    }

    /// Output tokens generated; also feeds `hone_output_tokens_per_second`.
    pub fn add_output_tokens(&self, n: u64) {
        if n == 0 {
            return;
        }
        self.inner.generation_tokens.inc_by(n);
        self.add_output_tokens_at(n, Instant::now());
    }

    fn add_output_tokens_at(&self, n: u64, now: Instant) {
        let mut w = self.inner.rate.lock().unwrap_or_else(|e| e.into_inner());
        w.add(n, now);
    }

    pub fn set_queue_depth(&self, n: usize) {
        self.inner.queue_depth.set(as_i64(n));
    }

    pub fn set_running(&self, n: usize) {
        self.inner.running.set(as_i64(n));
    }

    pub fn set_kv_blocks(&self, used: usize, free: usize) {
        self.inner.kv_used.set(as_i64(used));
        self.inner.kv_free.set(as_i64(free));
    }

    /// Prefix-cached KV blocks nobody holds (part of the free count).
    pub fn set_kv_blocks_cached(&self, n: usize) {
        self.inner.kv_cached.set(as_i64(n));
    }

    /// Prompt tokens whose KV came from the prefix cache.
    pub fn add_prefix_cache_hit_tokens(&self, n: u64) {
        self.inner.prefix_hit_tokens.inc_by(n);
    }

    /// A sequence was preempted (its KV blocks freed, to be recomputed).
    pub fn preempted(&self) {
        self.inner.preemptions.inc();
    }

    /// An adapter load finished, successfully or not.
    pub fn adapter_load(&self, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.inner.adapter_loads.with_label_values(&[result]).inc();
    }

    pub fn set_adapters_loaded(&self, n: usize) {
        self.inner.adapters_loaded.set(as_i64(n));
    }

    /// One piece of a review through the model: the windows it scored and the seconds it
    /// took.
    pub fn review_piece(&self, windows: usize, secs: f64) {
        self.inner.review_windows.inc_by(windows as u64);
        if secs.is_finite() && secs > 0.0 {
            self.inner.review_model_seconds.inc_by(secs);
        }
    }

    /// A document reviewed, with its spans.
    pub fn review_done(&self, spans: usize) {
        self.inner.review_documents.inc();
        self.inner.review_spans.inc_by(spans as u64);
    }

    /// A review answered, in seconds from its request's arrival.
    pub fn observe_review(&self, secs: f64) {
        observe(&self.inner.review_seconds, secs);
    }

    pub fn set_reviews_waiting(&self, n: usize) {
        self.inner.reviews_waiting.set(as_i64(n));
    }

    /// Output tokens per second over the last ~10 s, as `hone_output_tokens_per_second` reports.
    pub fn output_tokens_per_second(&self) -> f64 {
        let w = self.inner.rate.lock().unwrap_or_else(|e| e.into_inner());
        w.rate(Instant::now())
    }

    /// All metrics in the Prometheus text exposition format (`text/plain; version=0.0.4`).
    pub fn render(&self) -> String {
        let families = self.inner.registry.gather();
        let mut buf = Vec::new();
        match TextEncoder::new().encode(&families, &mut buf) {
            Ok(()) => String::from_utf8(buf).unwrap_or_default(),
            // Cannot happen with the metrics above; keep /metrics answering regardless.
            Err(e) => format!("# hone: failed to encode metrics: {e}\n"),
        }
    }

    /// The content type of [`Metrics::render`]'s output, for the `/metrics` response.
    pub fn content_type() -> &'static str {
        prometheus::TEXT_FORMAT
    }
}

/// The `endpoint` label of a request path, as its handler counts it (`other` for paths no
/// route serves); used where a request is answered before its handler runs.
pub fn endpoint_of(path: &str) -> &'static str {
    match path {
        "/v1/chat/completions" => "chat_completions",
        "/v1/completions" => "completions",
        "/v1/models" => "models",
        "/v1/review" => "review",
        "/health" => "health",
        "/metrics" => "metrics",
        p if p.starts_with("/v1/adapters") => "adapters",
        p if p.starts_with("/admin/") => "admin",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(text: &str) -> prometheus_parse::Scrape {
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
    }

    fn value(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
        let sample = s
            .samples
            .iter()
            .find(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
            .unwrap_or_else(|| panic!("no sample {name} {labels:?}"));
        match &sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            other => panic!("{name}: unexpected {other:?}"),
        }
    }

    #[test]
    fn rate_window_counts_recent_tokens_only() {
        let t0 = Instant::now();
        let mut w = RateWindow::new(t0);
        assert_eq!(w.rate(t0), 0.0);
        // 100 tokens in the first second, read at 2 s: the window so far is 2 s long.
        for k in 0..10 {
            w.add(10, t0 + Duration::from_millis(100 * k));
        }
        let r = w.rate(t0 + Duration::from_secs(2));
        assert!((r - 50.0).abs() < 1e-9, "{r}");
        // At 10.5 s the full window (~10 s) is used and still holds all 100 tokens but
        // the first slot's (0.0-0.1 s), which has aged out.
        let r = w.rate(t0 + Duration::from_millis(10_050));
        assert!((r - 90.0 / 9.95).abs() < 1e-6, "{r}");
        // Long after, nothing is left.
        assert_eq!(w.rate(t0 + Duration::from_secs(60)), 0.0);
        // Slots are reused: new tokens in a recycled slot do not add the stale count.
        w.add(7, t0 + Duration::from_millis(20_000));
        let r = w.rate(t0 + Duration::from_millis(20_000));
        assert!((r - 7.0 / 9.9).abs() < 1e-6, "{r}");
    }

    #[test]
    fn rate_window_burst_at_start_is_not_divided_by_zero() {
        let t0 = Instant::now();
        let mut w = RateWindow::new(t0);
        w.add(5, t0);
        let r = w.rate(t0);
        assert!(r.is_finite() && (r - 50.0).abs() < 1e-9, "{r}");
    }

    #[test]
    fn tokens_per_second_gauge_is_rendered() {
        let m = Metrics::new();
        m.add_output_tokens(30);
        let s = scrape(&m.render());
        let v = value(&s, "hone_output_tokens_per_second", &[]);
        // 30 tokens within the first ~0.1 s of the metrics' life.
        assert!(v > 0.0 && v <= 300.0 + 1e-9, "{v}");
        assert_eq!(value(&s, "hone_generation_tokens_total", &[]), 30.0);
    }

    #[test]
    fn non_finite_observations_are_dropped() {
        let m = Metrics::new();
        m.observe_ttft(f64::NAN);
        m.observe_ttft(f64::INFINITY);
        m.observe_ttft(-1.0);
        let s = scrape(&m.render());
        assert_eq!(
            value(&s, "hone_time_to_first_token_seconds_count", &[]),
            1.0
        );
        assert_eq!(value(&s, "hone_time_to_first_token_seconds_sum", &[]), 0.0);
    }

    #[test]
    fn clones_share_metrics_and_handle_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Metrics>();
        let m = Metrics::new();
        let m2 = m.clone();
        std::thread::spawn(move || m2.preempted()).join().unwrap();
        let s = scrape(&m.render());
        assert_eq!(value(&s, "hone_preemptions_total", &[]), 1.0);
        // Separate instances have separate registries.
        let other = Metrics::new();
        assert_eq!(
            value(&scrape(&other.render()), "hone_preemptions_total", &[]),
            0.0
        );
    }
}
