//! Fairness between prefills with the real SmolLM2 on 2 threads, in wall-clock time: a
//! 4-token request sent while an ~8k-token prompt is being read gets its first token long
//! before that prompt is read (issue 26: it used to wait for the whole long prefill).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hone_model::SamplingParams;
use hone_serve::engine::{Engine, EngineConfig, Event, GenParams, RequestHandle};
use hone_serve::metrics::Metrics;

mod common;
use common::*;

fn params(prompt: Vec<u32>, max_tokens: usize) -> GenParams {
    GenParams {
        prompt,
        adapter: None,
        max_tokens,
        sampling: SamplingParams::greedy(),
        stop_strings: Vec::new(),
        stop_tokens: Vec::new(),
        logprobs: Some(0),
        constraint: None,
        track_logprob: false,
    }
}

/// Waits for the first token of `h`; the time it took from `t0`.
fn first_token(h: &mut RequestHandle, t0: Instant) -> Duration {
    loop {
        match h.events.blocking_recv() {
            Some(Event::Delta { tokens, .. }) if !tokens.is_empty() => return t0.elapsed(),
            Some(Event::Delta { .. }) => {}
            other => panic!("no token: {other:?}"),
        }
    }
}

/// Short requests go one after another for the whole long prefill, late chunks (attention
/// over ~8k positions) included, and their waits are compared with each other and with the
/// long prompt's own prefill in the same run, so the bounds hold on a loaded machine. Before
/// issue 26 the first of them waited for the rest of the long prefill. With a shared budget
/// but fixed 256-row chunks, a short request waited for the chunk in flight, and those grew
/// with depth: 0.1 s early, 1.9 s late (dev profile; 2.6 s in release). Now chunks shrink
/// with depth so that each step costs about the same, and so do the waits. The absolute bound
/// (2 s on 2 threads; 0.65 s measured) is `hone bench serve --fairness`, in release.
#[test]
fn short_requests_beside_an_8k_prefill_wait_a_small_step_not_a_long_chunk() {
    let Some(path) = smollm2() else { return };
    hone_model::set_num_threads(2);
    let m = load(&path);
    let engine = Engine::start(
        Arc::new(m.model),
        Arc::new(m.tokenizer),
        EngineConfig::default(),
        Metrics::new(),
    );
    const LONG: usize = 8151;
    assert!(engine.prompt_limit() >= LONG);
    // Ordinary word tokens (ids well past the special ones), varied.
    let long: Vec<u32> = (0..LONG as u32)
        .map(|i| 1000 + (i * 7919) % 30000)
        .collect();
    let short: Vec<u32> = vec![1000, 2000, 3000, 4000];

    let t0 = Instant::now();
    let mut h = engine.submit(params(short.clone(), 1)).unwrap();
    let alone = first_token(&mut h, t0);

    let t_long = Instant::now();
    let mut long_h = engine.submit(params(long, 1)).unwrap();
    let long_done = std::sync::OnceLock::new();
    // (sent, waited), in time since the long request was sent.
    let mut waits: Vec<(Duration, Duration)> = Vec::new();
    std::thread::scope(|s| {
        s.spawn(|| {
            let d = first_token(&mut long_h, t_long);
            long_done.set(d).unwrap();
        });
        while long_done.get().is_none() {
            std::thread::sleep(Duration::from_millis(1500));
            let sent = t_long.elapsed();
            let t0 = Instant::now();
            let mut h = engine.submit(params(short.clone(), 1)).unwrap();
            let waited = first_token(&mut h, t0);
            waits.push((sent, waited));
        }
    });
    let prefill = *long_done.get().unwrap();
    // Only those answered while the long prompt was still being read.
    waits.retain(|&(sent, waited)| sent + waited < prefill);
    let worst = waits.iter().map(|w| w.1).max().unwrap();
    eprintln!(
        "short request's first token: alone {alone:.2?}; beside the 8k prefill, worst of {} \
         {worst:.2?} ({:?}); the 8k prompt's own first token {prefill:.2?}",
        waits.len(),
        waits.iter().map(|w| w.1.as_millis()).collect::<Vec<_>>(),
    );
    assert!(
        waits.len() >= 10,
        "the long prefill ({prefill:.2?}) was meant to span many short requests"
    );
    assert!(
        waits.iter().any(|&(sent, _)| sent * 10 > prefill * 8),
        "some short requests were meant to land in the last fifth of the long prompt"
    );
    assert!(
        worst * 15 < prefill,
        "a short request waited {worst:.2?} beside a long prefill of {prefill:.2?}"
    );
    // Late waits are no longer than early ones (with fixed chunks they were 5 times longer).
    let median = |from: u32, to: u32| {
        let mut w: Vec<Duration> = waits
            .iter()
            .filter(|&&(sent, _)| sent * 3 >= prefill * from && sent * 3 < prefill * to)
            .map(|w| w.1)
            .collect();
        w.sort();
        w[w.len() / 2]
    };
    let (early, late) = (median(0, 1), median(2, 3));
    assert!(
        late < early * 2,
        "the median wait was {early:.2?} in the first third of the long prompt and {late:.2?} \
         in the last third"
    );
}
