//! Automatic prefix caching (`EngineConfig::prefix_cache`, `hone serve --prefix-cache`) with
//! the real SmolLM2, over HTTP: requests sharing a long system prompt give the same greedy
//! text with and without the cache (at once, again, and under preemption), the metrics count
//! the reused prompt tokens, every KV block comes back, and two adapters with the same prompt
//! never share cached blocks.

use hone_model::chat_template::Message;
use hone_model::kv_cache::{KvCache, DEFAULT_BLOCK_SIZE};
use hone_model::prefill_schedule::PrefillSchedule;
use hone_model::LoadedModel;
use hone_serve::engine::EngineConfig;
use hone_serve::openai::Limits;
use hone_serve::server::ServerConfig;
use serde_json::{json, Value};

mod common;
use common::*;

impl Server {
    /// One chat request (system + user, greedy); its answer text.
    fn ask(&self, model: &str, user: &str, max_tokens: usize) -> String {
        let (code, v) = self.post("/v1/chat/completions", &chat_body(model, user, max_tokens));
        assert_eq!(code, 200, "{v}");
        v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_else(|| panic!("no content in {v}"))
            .to_string()
    }

    /// All `jobs` (model, user message) at once; answers in order.
    fn ask_all(&self, jobs: &[(&str, &str)], max_tokens: usize) -> Vec<String> {
        std::thread::scope(|s| {
            let hs: Vec<_> = jobs
                .iter()
                .map(|&(model, user)| s.spawn(move || self.ask(model, user, max_tokens)))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    fn hits(&self) -> f64 {
        self.metrics()["hone_prefix_cache_hit_tokens_total"]
    }

    /// Blocks of the KV pool.
    fn kv_blocks(&self) -> f64 {
        (self.state.engine.kv_tokens() / DEFAULT_BLOCK_SIZE) as f64
    }
}

/// A long system prompt every request shares (long enough that one prefill step never holds
/// two whole prompts, each costing over half of a step's budget: the requests of one burst
/// start one by one and all but the first can reuse the shared blocks).
const SYSTEM: &str = "You are a careful assistant for a small law firm. You answer questions \
    about contracts, non-disclosure agreements, employment terms and corporate housekeeping. \
    Always answer in plain English, in at most three short sentences, without legal jargon \
    unless the question asks for a term to be explained. If a question is outside contracts \
    and business law, answer it briefly and politely anyway. Never invent clauses, case names \
    or statutes. When a question is ambiguous, state the most common reading and answer that \
    one. Be friendly, concise and precise, and do not repeat the question back to the user. \
    The people who write to you are partners, associates, paralegals and the firm's clients, \
    most of them busy and many of them reading on a phone between meetings. Some questions \
    will be about deadlines, notice periods, renewals and termination; others about who owns \
    work product, what counts as confidential information, and how long obligations last \
    after an agreement ends. Point out when the answer depends on the governing law or on a \
    clause the user has not shown you, and suggest what to look for in the document.";

fn chat_body(model: &str, user: &str, max_tokens: usize) -> Value {
    json!({"model": model,
           "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}],
           "max_tokens": max_tokens, "temperature": 0})
}

/// The prompt tokens the server builds for a user message.
fn prompt_tokens(m: &LoadedModel, user: &str) -> Vec<u32> {
    let text = m
        .template
        .render(&[Message::system(SYSTEM), Message::user(user)], true)
        .unwrap();
    m.tokenizer.encode(&text, true).unwrap()
}

/// Full blocks every prompt shares.
fn shared_blocks(m: &LoadedModel) -> usize {
    let prompts: Vec<Vec<u32>> = PROMPTS.iter().map(|u| prompt_tokens(m, u)).collect();
    let common = (0..)
        .take_while(|&i| prompts.iter().all(|p| i < p.len() && p[i] == prompts[0][i]))
        .count();
    common / DEFAULT_BLOCK_SIZE
}

fn config(prefix_cache: bool) -> ServerConfig {
    ServerConfig {
        model_name: "smollm2".into(),
        limits: Limits {
            max_tokens_cap: 1000,
            default_max_tokens: 64,
        },
        engine: EngineConfig {
            prefix_cache,
            ..EngineConfig::default()
        },
        ..ServerConfig::default()
    }
}

#[test]
fn requests_sharing_a_system_prompt_answer_the_same_with_the_prefix_cache() {
    let Some(path) = smollm2() else { return };
    let m = load(&path);
    const MAX: usize = 24;
    let shared = shared_blocks(&m);
    let plen = PROMPTS
        .iter()
        .map(|u| prompt_tokens(&m, u).len())
        .max()
        .unwrap();
    assert!(shared >= 6, "the system prompt is meant to fill 6+ blocks");
    let schedule = PrefillSchedule::for_model(&m.model);
    let shortest = PROMPTS
        .iter()
        .map(|u| prompt_tokens(&m, u).len())
        .min()
        .unwrap();
    assert!(
        schedule.cost(0, shortest) > schedule.cap() / 2.0,
        "one prefill step must not hold two prompts ({shortest} tokens)"
    );
    let jobs: Vec<(&str, &str)> = PROMPTS.iter().map(|&u| ("smollm2", u)).collect();

    // Without the cache: the reference answers, and nothing counted as reused.
    let want = {
        let cold = Server::start(&path, config(false), &[]);
        let want = cold.ask_all(&jobs, MAX);
        let mc = cold.wait_idle();
        assert_eq!(mc["hone_prefix_cache_hit_tokens_total"], 0.0);
        assert_eq!(mc["hone_kv_blocks_cached"], 0.0);
        assert_eq!(mc["hone_kv_blocks_free"], cold.kv_blocks());
        want
    };

    // With the cache: all 8 at once (the first computes the shared blocks, the others start
    // on them), then all 8 again (every one starts on them).
    let warm = Server::start(&path, config(true), &[]);
    let per_request = (shared * DEFAULT_BLOCK_SIZE) as f64;
    let got = warm.ask_all(&jobs, MAX);
    for i in 0..8 {
        assert_eq!(
            got[i], want[i],
            "request {i}, first burst with the prefix cache"
        );
    }
    let m1 = warm.wait_idle();
    let hits1 = m1["hone_prefix_cache_hit_tokens_total"];
    assert!(
        hits1 >= 7.0 * per_request,
        "7 of the 8 requests reuse {per_request} tokens: {m1:?}"
    );
    let got = warm.ask_all(&jobs, MAX);
    for i in 0..8 {
        assert_eq!(
            got[i], want[i],
            "request {i}, second burst with the prefix cache"
        );
    }
    // One at a time too.
    for (i, &(model, user)) in jobs.iter().enumerate().take(3) {
        assert_eq!(warm.ask(model, user, MAX), want[i], "request {i} alone");
    }
    let m2 = warm.wait_idle();
    assert!(
        m2["hone_prefix_cache_hit_tokens_total"] - hits1 >= 11.0 * per_request,
        "every later request reuses the shared blocks: {m2:?}"
    );
    // Never the whole prompt: each request computes at least its last 16 tokens.
    assert!(m2["hone_prefix_cache_hit_tokens_total"] <= 19.0 * (plen - 16) as f64);
    // Every block came back: none held, the cached ones count as free.
    assert_eq!(m2["hone_kv_blocks_used"], 0.0);
    assert_eq!(m2["hone_kv_blocks_free"], warm.kv_blocks());
    assert!(
        m2["hone_kv_blocks_cached"] >= shared as f64,
        "the shared blocks stay cached: {m2:?}"
    );
    drop(warm);

    // A pool too small for all 8: sequences are preempted and recomputed while others hold
    // the shared blocks, and every answer is still the same.
    let seq_blocks = (plen + MAX).div_ceil(DEFAULT_BLOCK_SIZE);
    let blocks = seq_blocks + 6;
    let block =
        KvCache::bytes_per_block(m.model.layers.len(), m.model.kv_dim(), DEFAULT_BLOCK_SIZE);
    let mut cfg = config(true);
    cfg.engine.max_batch = 8;
    cfg.engine.kv_bytes = blocks * block;
    let small = Server::start(&path, cfg, &[]);
    let got = small.ask_all(&jobs, MAX);
    for i in 0..8 {
        assert_eq!(
            got[i], want[i],
            "request {i} in a small pool with the prefix cache"
        );
    }
    let m3 = small.wait_idle();
    assert!(
        m3["hone_preemptions_total"] > 0.0,
        "the pool was meant to force preemption: {m3:?}"
    );
    assert!(m3["hone_prefix_cache_hit_tokens_total"] >= 7.0 * per_request);
    assert_eq!(m3["hone_kv_blocks_used"], 0.0);
    assert_eq!(
        m3["hone_kv_blocks_free"], blocks as f64,
        "every block came back"
    );
}

#[test]
fn two_adapters_with_the_same_prompt_do_not_share_cached_blocks() {
    let Some(path) = smollm2() else { return };
    let m = load(&path);
    let dir = tempfile::tempdir().unwrap();
    let (d1, d2) = (dir.path().join("a1"), dir.path().join("a2"));
    // Stronger than the default random adapter, so each visibly changes the answer to this
    // long prompt.
    save_scaled_adapter(&m, &d1, 1, 0.1);
    save_scaled_adapter(&m, &d2, 2, 0.1);
    const MAX: usize = 16;
    let per_request = (shared_blocks(&m) * DEFAULT_BLOCK_SIZE) as f64;
    let adapters = [("a1", d1.as_path()), ("a2", d2.as_path())];
    let models = ["a1", "a2", "smollm2"];
    let user = PROMPTS[2];
    let want: Vec<String> = {
        let cold = Server::start(&path, config(false), &adapters);
        models.iter().map(|md| cold.ask(md, user, MAX)).collect()
    };
    assert!(
        want[0] != want[2] || want[1] != want[2],
        "the adapters must change the answer, or this test shows nothing: {want:?}"
    );

    let warm = Server::start(&path, config(true), &adapters);
    // The same prompt through a1, then a2, then the base: each computes its own blocks.
    for (i, md) in models.iter().enumerate() {
        assert_eq!(warm.ask(md, user, MAX), want[i], "{md}, first time");
        assert_eq!(
            warm.hits(),
            0.0,
            "{md} must not start on blocks another model computed"
        );
    }
    let cached = warm.wait_idle()["hone_kv_blocks_cached"];
    assert!(
        cached >= 3.0 * per_request / DEFAULT_BLOCK_SIZE as f64,
        "each model cached blocks of its own: {cached}"
    );
    // Again: each starts on its own blocks.
    for (i, md) in models.iter().enumerate() {
        assert_eq!(warm.ask(md, user, MAX), want[i], "{md}, second time");
        assert!(warm.hits() >= (i + 1) as f64 * per_request);
    }
    // And all together in one batch.
    let jobs: Vec<(&str, &str)> = models.iter().map(|&md| (md, user)).collect();
    assert_eq!(warm.ask_all(&jobs, MAX), want);
    let m2 = warm.wait_idle();
    assert!(m2["hone_prefix_cache_hit_tokens_total"] >= 6.0 * per_request);
    assert_eq!(m2["hone_kv_blocks_free"], warm.kv_blocks());
}
