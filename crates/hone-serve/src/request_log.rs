//! Writing the request log off the request path: handlers hand finished requests to a bounded
//! queue and never wait; one writer thread redacts them and appends them to the store in
//! batches (one transaction each). When the queue is full a row is dropped and counted, never
//! a request delayed. Rows older than the retention are pruned as the writer goes.
//!
//! A share of the written rows (`review_share`, 3% by default; drawn from the row's id) goes to
//! the review queue.
//!
//! Metrics: `hone_request_log_rows_total{result="written"|"dropped"|"failed"}`.

use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hone_ops::request_log::{LogRecord, Redactor};
use hone_ops::Store;
use prometheus::{IntCounterVec, Opts};

use crate::metrics::Metrics;

/// Rows written in one transaction at most.
const BATCH: usize = 512;

/// How often old rows are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// The request log's settings (`hone serve --request-log ...`).
#[derive(Debug, Clone)]
pub struct RequestLogConfig {
    /// Rows waiting to be written at most; beyond, rows are dropped (and counted).
    pub capacity: usize,
    /// Rows older than this are deleted.
    pub retention: Option<Duration>,
    /// Applied to every row before it is written.
    pub redactor: Redactor,
    /// How long a row may wait for its batch.
    pub flush_every: Duration,
    /// The share of logged answers put in the review queue (`hone review-queue`).
    pub review_share: f64,
}

impl Default for RequestLogConfig {
    fn default() -> Self {
        Self {
            capacity: 10_000,
            retention: None,
            redactor: Redactor::default(),
            flush_every: Duration::from_millis(200),
            review_share: hone_ops::review::DEFAULT_SHARE,
        }
    }
}

/// The handle handlers log through (`Send + Sync`).
pub struct RequestLogger {
    tx: Mutex<Option<SyncSender<Box<LogRecord>>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    rows: IntCounterVec,
}

impl RequestLogger {
    /// Starts the writer thread on `store`.
    pub fn start(store: Arc<dyn Store>, config: RequestLogConfig, metrics: &Metrics) -> Self {
        const OK: &str = "static metric definition is valid";
        let rows = IntCounterVec::new(
            Opts::new(
                "hone_request_log_rows_total",
                "Request-log rows by result: written, dropped (queue full) or failed (store error).",
            ),
            &["result"],
        )
        .expect(OK);
        metrics
            .registry()
            .register(Box::new(rows.clone()))
            .expect(OK);
        for r in ["written", "dropped", "failed"] {
            rows.with_label_values(&[r]);
        }
        let (tx, rx) = sync_channel(config.capacity.max(1));
        let counters = rows.clone();
        let thread = std::thread::Builder::new()
            .name("hone-request-log".into())
            .spawn(move || write_loop(rx, store.as_ref(), &config, &counters))
            .expect("spawn the request-log writer");
        Self {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
            rows,
        }
    }

    /// Queues a row; drops it (counted) when the queue is full. Never blocks.
    pub fn log(&self, r: LogRecord) {
        let sent = match self.tx.lock() {
            Ok(tx) => match tx.as_ref().map(|tx| tx.try_send(Box::new(r))) {
                Some(Ok(())) => true,
                Some(Err(TrySendError::Full(_) | TrySendError::Disconnected(_))) | None => false,
            },
            Err(_) => false,
        };
        if !sent {
            self.rows.with_label_values(&["dropped"]).inc();
        }
    }

    /// Writes what is queued and stops the writer.
    pub fn shutdown(&self) {
        if let Ok(mut tx) = self.tx.lock() {
            tx.take();
        }
        if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }
}

impl Drop for RequestLogger {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn write_loop(
    rx: Receiver<Box<LogRecord>>,
    store: &dyn Store,
    config: &RequestLogConfig,
    rows: &IntCounterVec,
) {
    let mut batch: Vec<LogRecord> = Vec::with_capacity(BATCH);
    let mut last_prune: Option<Instant> = None;
    loop {
        let open = match rx.recv_timeout(config.flush_every) {
            Ok(r) => {
                batch.push(*r);
                true
            }
            Err(RecvTimeoutError::Timeout) => true,
            Err(RecvTimeoutError::Disconnected) => false,
        };
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(r) => batch.push(*r),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            for r in &mut batch {
                config.redactor.record(r);
            }
            match store.append_requests(&batch) {
                Ok(ids) => {
                    rows.with_label_values(&["written"])
                        .inc_by(batch.len() as u64);
                    let picked: Vec<i64> = ids
                        .into_iter()
                        .filter(|&id| hone_ops::review::sampled(id, config.review_share))
                        .collect();
                    if !picked.is_empty() {
                        if let Err(e) = store.queue_for_review(&picked) {
                            tracing::warn!(
                                "review queue: {} answers not queued: {e}",
                                picked.len()
                            );
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!("request log: {} rows not written: {e}", batch.len());
                    rows.with_label_values(&["failed"])
                        .inc_by(batch.len() as u64);
                }
            }
            batch.clear();
        }
        if let Some(keep) = config.retention {
            if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                last_prune = Some(Instant::now());
                let before = hone_ops::now_ms() - keep.as_millis() as i64;
                if let Err(e) = store.prune_requests(before) {
                    tracing::warn!("request log: old rows not pruned: {e}");
                }
            }
        }
        if !open {
            return;
        }
    }
}
