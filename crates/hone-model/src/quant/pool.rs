//! A small persistent thread pool for the quantized kernels.
//!
//! One job at a time: the caller publishes a job (a closure over chunk indices), every
//! participating thread (the caller included) claims chunk indices from one atomic word until
//! none are left, and the caller waits for the chunks claimed by workers to finish.
//!
//! Workers wait for the next job by spinning briefly, then yielding the CPU (so that a shared
//! core keeps making progress), then parking. Chunks are claimed dynamically, so a worker that
//! is not scheduled never holds up the caller unless it is in the middle of a chunk.
//!
//! If the pool is busy (another thread is dispatching, or a kernel is called from inside a
//! chunk), the job simply runs inline on the calling thread: results never depend on how
//! chunks are distributed.

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Threads (caller included) that kernels use; 0 = not set yet (use available cores).
static NUM_THREADS: AtomicUsize = AtomicUsize::new(0);
/// 0 = own pool, 1 = rayon (kept for benchmarking).
static BACKEND: AtomicUsize = AtomicUsize::new(0);

/// Sets the number of threads (the calling thread included) that all quantized kernels use.
/// `0` restores the default (available cores). May be called at any time.
pub fn set_num_threads(n: usize) {
    NUM_THREADS.store(n, Ordering::Relaxed);
}

/// The number of threads the kernels use.
pub fn num_threads() -> usize {
    match NUM_THREADS.load(Ordering::Relaxed) {
        0 => default_threads(),
        n => n,
    }
}

fn default_threads() -> usize {
    static D: OnceLock<usize> = OnceLock::new();
    *D.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    })
}

/// Threading backend, for benchmarks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The persistent spin-then-park pool (default).
    Pool,
    /// rayon's global-style pool (one rayon pool per thread count).
    Rayon,
}

#[doc(hidden)]
pub fn set_backend(b: Backend) {
    BACKEND.store(matches!(b, Backend::Rayon) as usize, Ordering::Relaxed);
}

/// Runs `f(i)` for every `i in 0..n`, spread over [`num_threads`] threads.
pub(crate) fn parallel_for(n: usize, f: &(dyn Fn(usize) + Sync)) {
    let threads = num_threads();
    if n == 0 {
        return;
    }
    if n == 1 || threads <= 1 {
        (0..n).for_each(f);
        return;
    }
    if BACKEND.load(Ordering::Relaxed) == 1 {
        return rayon_for(threads, n, f);
    }
    pool().run(threads - 1, n, f);
}

fn rayon_for(threads: usize, n: usize, f: &(dyn Fn(usize) + Sync)) {
    use rayon::prelude::*;
    static POOLS: Mutex<Vec<(usize, Arc<rayon::ThreadPool>)>> = Mutex::new(Vec::new());
    let p = {
        let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
        match pools.iter().find(|(t, _)| *t == threads) {
            Some((_, p)) => p.clone(),
            None => match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
                Ok(p) => {
                    let p = Arc::new(p);
                    pools.push((threads, p.clone()));
                    p
                }
                Err(_) => return (0..n).for_each(f),
            },
        }
    };
    p.install(|| (0..n).into_par_iter().with_max_len(1).for_each(f));
}

// ---------------------------------------------------------------------------------------------

const IDX_BITS: u64 = 20;
const IDX_MASK: u64 = (1 << IDX_BITS) - 1;
/// Chunk counts are capped so that index and count both fit in the state word.
const MAX_CHUNKS: usize = (1 << IDX_BITS) as usize - 1;

/// `state = epoch << 40 | n << 20 | next`.
fn pack(epoch: u64, n: u64, next: u64) -> u64 {
    (epoch << (2 * IDX_BITS)) | (n << IDX_BITS) | next
}
fn epoch_of(s: u64) -> u64 {
    s >> (2 * IDX_BITS)
}
fn n_of(s: u64) -> u64 {
    (s >> IDX_BITS) & IDX_MASK
}

struct Job<'a> {
    f: &'a (dyn Fn(usize) + Sync),
}

struct Worker {
    sleeping: AtomicBool,
    thread: OnceLock<std::thread::Thread>,
}

struct Shared {
    state: AtomicU64,
    /// Chunks finished in the current job.
    done: AtomicUsize,
    /// Set when a chunk panicked; the caller re-raises.
    panicked: AtomicBool,
    /// The current job; only dereferenced by a thread that has claimed a chunk of it.
    job: AtomicPtr<Job<'static>>,
    /// How many workers take part in the current job.
    active: AtomicUsize,
    workers: Mutex<Vec<Arc<Worker>>>,
}

struct Pool {
    shared: Arc<Shared>,
    /// Serialises dispatchers; holds the last epoch used and the stall detector.
    dispatch: Mutex<Dispatch>,
}

/// Contention detector. When the caller has to wait for a chunk far longer than a chunk takes,
/// the worker was descheduled mid-chunk (the CPU is shared with other work); waiting for it
/// costs more than working alone, so the next jobs run on the caller only for a while, then
/// threading is tried again.
#[derive(Default)]
struct Dispatch {
    epoch: u64,
    calls: u64,
    /// Calls that stalled recently (decays).
    stall_score: u32,
    /// Run inline until `calls` reaches this.
    solo_until: u64,
}

const SOLO_CALLS: u64 = 512;

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        shared: Arc::new(Shared {
            state: AtomicU64::new(0),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            job: AtomicPtr::new(std::ptr::null_mut()),
            active: AtomicUsize::new(0),
            workers: Mutex::new(Vec::new()),
        }),
        dispatch: Mutex::new(Dispatch::default()),
    })
}

/// Claims chunks of job `epoch` until none are left; returns how many it ran.
fn claim_and_run(sh: &Shared, epoch: u64) -> usize {
    let mut ran = 0;
    let mut s = sh.state.load(Ordering::Acquire);
    loop {
        if epoch_of(s) != epoch || (s & IDX_MASK) >= n_of(s) {
            return ran;
        }
        match sh
            .state
            .compare_exchange_weak(s, s + 1, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                let idx = (s & IDX_MASK) as usize;
                // SAFETY: we claimed chunk `idx < n` of job `epoch`; the dispatcher does not
                // return (and so keeps the job alive and does not replace the pointer) until
                // `done` counts this chunk, which we only do after the call.
                let job = unsafe { &*sh.job.load(Ordering::Acquire) };
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (job.f)(idx)));
                if r.is_err() {
                    sh.panicked.store(true, Ordering::Relaxed);
                }
                sh.done.fetch_add(1, Ordering::Release);
                ran += 1;
                s = sh.state.load(Ordering::Acquire);
            }
            Err(cur) => s = cur,
        }
    }
}

const SPIN_ITERS: u32 = 4000;
const YIELD_FOR: Duration = Duration::from_millis(2);

fn worker_main(sh: Arc<Shared>, me: Arc<Worker>, index: usize) {
    let mut seen = epoch_of(sh.state.load(Ordering::Acquire));
    loop {
        // Wait for a new job: spin, then yield, then park.
        let mut spins = 0u32;
        let mut yield_start: Option<Instant> = None;
        loop {
            let e = epoch_of(sh.state.load(Ordering::Acquire));
            if e != seen {
                seen = e;
                break;
            }
            if spins < SPIN_ITERS {
                spins += 1;
                std::hint::spin_loop();
                continue;
            }
            let t0 = *yield_start.get_or_insert_with(Instant::now);
            if t0.elapsed() < YIELD_FOR {
                std::thread::yield_now();
                continue;
            }
            me.sleeping.store(true, Ordering::SeqCst);
            if epoch_of(sh.state.load(Ordering::SeqCst)) != seen {
                me.sleeping.store(false, Ordering::SeqCst);
                continue;
            }
            std::thread::park();
            me.sleeping.store(false, Ordering::SeqCst);
        }
        if index < sh.active.load(Ordering::Acquire) {
            claim_and_run(&sh, seen);
        }
    }
}

impl Pool {
    fn ensure_workers(&self, n: usize) -> bool {
        let mut ws = self
            .shared
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        while ws.len() < n {
            let w = Arc::new(Worker {
                sleeping: AtomicBool::new(false),
                thread: OnceLock::new(),
            });
            let (sh, w2, idx) = (self.shared.clone(), w.clone(), ws.len());
            let spawn = std::thread::Builder::new()
                .name(format!("hone-quant-{idx}"))
                .spawn(move || worker_main(sh, w2, idx));
            match spawn {
                Ok(h) => {
                    let _ = w.thread.set(h.thread().clone());
                    ws.push(w);
                }
                Err(_) => return !ws.is_empty(),
            }
        }
        true
    }

    fn run(&self, workers: usize, n: usize, f: &(dyn Fn(usize) + Sync)) {
        let mut disp = match self.dispatch.try_lock() {
            Ok(g) => g,
            // Busy (another dispatcher, or nested call): run inline.
            Err(_) => return (0..n).for_each(f),
        };
        disp.calls += 1;
        if disp.calls < disp.solo_until {
            drop(disp);
            return (0..n).for_each(f);
        }
        if n > MAX_CHUNKS || !self.ensure_workers(workers) {
            return (0..n).for_each(f);
        }
        let sh = &*self.shared;
        let job = Job { f };
        sh.job.store(
            &job as *const Job<'_> as *mut Job<'static>,
            Ordering::Relaxed,
        );
        sh.done.store(0, Ordering::Relaxed);
        sh.panicked.store(false, Ordering::Relaxed);
        sh.active.store(workers, Ordering::Release);
        disp.epoch += 1;
        let e = disp.epoch & ((1 << (64 - 2 * IDX_BITS)) - 1);
        sh.state.store(pack(e, n as u64, 0), Ordering::SeqCst);
        {
            let ws = sh.workers.lock().unwrap_or_else(|e| e.into_inner());
            for w in ws.iter().take(workers) {
                if w.sleeping.swap(false, Ordering::SeqCst) {
                    if let Some(t) = w.thread.get() {
                        t.unpark();
                    }
                }
            }
        }
        let t0 = Instant::now();
        let mine = claim_and_run(sh, e);
        let t_mine = t0.elapsed();
        // Wait for chunks still running on workers.
        let mut spins = 0u32;
        let mut stalled = false;
        let mut limit: Option<Duration> = None;
        while sh.done.load(Ordering::Acquire) < n {
            if !stalled && spins.is_multiple_of(256) {
                // A chunk should take about as long as the caller's chunks took.
                let lim = *limit.get_or_insert_with(|| {
                    let per_chunk = t_mine / mine.max(1) as u32;
                    per_chunk * 4 + Duration::from_micros(100)
                });
                stalled = t0.elapsed() > t_mine + lim;
            }
            if spins < SPIN_ITERS {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        // No thread dereferences the job from now on (all chunks are claimed and done).
        sh.job.store(std::ptr::null_mut(), Ordering::Relaxed);
        if stalled {
            disp.stall_score += 4;
            if disp.stall_score >= 8 {
                disp.stall_score = 0;
                disp.solo_until = disp.calls + SOLO_CALLS;
            }
        } else if disp.calls % 16 == 0 {
            disp.stall_score = disp.stall_score.saturating_sub(1);
        }
        if sh.panicked.load(Ordering::Relaxed) {
            drop(disp);
            panic!("a quantized-kernel chunk panicked");
        }
    }
}
