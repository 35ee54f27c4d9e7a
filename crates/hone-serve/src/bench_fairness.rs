//! `hone bench serve --fairness`: does a long prompt starve the requests sent while it is
//! being read? The time to first token (TTFT) of a short chat request is measured alone, then
//! while a long prompt is being prefilled (issue 26: it used to wait for the whole long
//! prefill). Works against any OpenAI-compatible server.
//!
//! Each round sends the long request (streaming, 1 output token) and, while it is being read,
//! short requests one after another, each [`GAP`] (plus a stagger of [`STAGGER`] per round)
//! after the previous one's first token, so they land at different points of the long
//! prompt, early chunks (cheap attention) and late ones (attention over ~8k positions)
//! alike; the long request's own TTFT (its whole prefill) is timed too. The short request is
//! timed alone once per round, before the long one is sent.

use std::time::Duration;

use crate::bench::{chat_url, one_request, percentile, BenchOptions};
use crate::error::{Result, ServeError};

/// Wait before each short request sent beside the long one.
pub const GAP: Duration = Duration::from_millis(2000);
/// Added to [`GAP`] per round.
pub const STAGGER: Duration = Duration::from_millis(370);

/// The server, the requests and how many rounds.
#[derive(Debug, Clone)]
pub struct FairnessOptions {
    /// Base URL, model, API key and timeout as for the load run (its `prompts`,
    /// `concurrency`, `requests` and `max_tokens` are not used).
    pub base: BenchOptions,
    /// Words in the long prompt (about one token each for common tokenizers).
    pub long_words: usize,
    /// The short request's message.
    pub short_prompt: String,
    /// Output tokens of the short request.
    pub short_max_tokens: usize,
    /// Rounds (each reads the long prompt once).
    pub rounds: usize,
}

impl FairnessOptions {
    pub fn new(base: BenchOptions) -> Self {
        FairnessOptions {
            base,
            long_words: 7640,
            short_prompt: "Hi!".into(),
            short_max_tokens: 4,
            rounds: 3,
        }
    }
}

/// Milliseconds: one value per round, or per short request beside the long one.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FairnessReport {
    pub rounds: usize,
    /// The long prompt's tokens as the server's `usage` reported (0 without it).
    pub long_prompt_tokens: u64,
    pub short_prompt_tokens: u64,
    pub short_ttft_alone_ms: Vec<f64>,
    /// Every short request sent while the long prompt was being read, in order.
    pub short_ttft_beside_long_ms: Vec<f64>,
    /// The long request's TTFT: its whole prefill, with the short request beside it.
    pub long_ttft_ms: Vec<f64>,
    pub short_ttft_alone_p50_ms: f64,
    pub short_ttft_beside_long_p50_ms: f64,
    pub short_ttft_beside_long_max_ms: f64,
}

impl FairnessReport {
    /// A human-readable summary, one quantity a line.
    pub fn to_table(&self) -> String {
        let list = |v: &[f64]| {
            v.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "rounds        {}\n\
             prompts       long {} tokens, short {} tokens\n\
             short TTFT    alone p50 {:.1} ms ({} ms)\n\
             short TTFT    beside the long prefill p50 {:.1} ms, max {:.1} ms ({} ms)\n\
             long TTFT     {} ms\n",
            self.rounds,
            self.long_prompt_tokens,
            self.short_prompt_tokens,
            self.short_ttft_alone_p50_ms,
            list(&self.short_ttft_alone_ms),
            self.short_ttft_beside_long_p50_ms,
            self.short_ttft_beside_long_max_ms,
            list(&self.short_ttft_beside_long_ms),
            list(&self.long_ttft_ms),
        )
    }
}

/// The long prompt: `words` words of varied contract prose.
pub fn long_prompt(words: usize) -> String {
    const WORDS: [&str; 16] = [
        "the",
        "receiving",
        "party",
        "shall",
        "keep",
        "all",
        "confidential",
        "information",
        "strictly",
        "secret",
        "and",
        "use",
        "it",
        "only",
        "for",
        "evaluation",
    ];
    let mut s = String::with_capacity(words * 8);
    for i in 0..words {
        // A stride coprime with 16 varies the order from one sentence to the next.
        s.push_str(WORDS[(i * 7 + i / 16) % WORDS.len()]);
        s.push(if i % 16 == 15 { '.' } else { ' ' });
        if i % 16 == 15 {
            s.push(' ');
        }
    }
    s
}

/// Runs the rounds. A failed request is an error (the numbers would mean nothing).
pub fn run_fairness(opts: &FairnessOptions) -> Result<FairnessReport> {
    if opts.rounds == 0 {
        return Err(ServeError::bad("rounds", "rounds must be at least 1"));
    }
    if opts.long_words == 0 {
        return Err(ServeError::bad("long_words", "the long prompt needs words"));
    }
    if opts.short_max_tokens == 0 {
        return Err(ServeError::bad(
            "short_max_tokens",
            "the short request needs at least 1 output token",
        ));
    }
    let endpoint = chat_url(&opts.base.url);
    let agent = ureq::AgentBuilder::new()
        .timeout(opts.base.timeout)
        .user_agent(concat!("hone-bench/", env!("CARGO_PKG_VERSION")))
        .build();
    let short = BenchOptions {
        max_tokens: opts.short_max_tokens,
        ..opts.base.clone()
    };
    let long = BenchOptions {
        max_tokens: 1,
        ..opts.base.clone()
    };
    let long_text = long_prompt(opts.long_words);
    let failed = |what: &str, e: String| ServeError::Internal(format!("the {what} request: {e}"));
    let ttft = |what: &str, s: &crate::bench::Sample| {
        s.ttft
            .map(|t| t * 1e3)
            .ok_or_else(|| ServeError::Internal(format!("the {what} request streamed no content")))
    };
    let mut r = FairnessReport {
        rounds: opts.rounds,
        long_prompt_tokens: 0,
        short_prompt_tokens: 0,
        short_ttft_alone_ms: Vec::new(),
        short_ttft_beside_long_ms: Vec::new(),
        long_ttft_ms: Vec::new(),
        short_ttft_alone_p50_ms: f64::NAN,
        short_ttft_beside_long_p50_ms: f64::NAN,
        short_ttft_beside_long_max_ms: f64::NAN,
    };
    for round in 0..opts.rounds {
        let alone = one_request(&agent, &endpoint, &short, &opts.short_prompt)
            .map_err(|e| failed("short", e))?;
        r.short_ttft_alone_ms.push(ttft("short", &alone)?);
        r.short_prompt_tokens = alone.prompt_tokens;
        let reading = std::sync::atomic::AtomicBool::new(true);
        let (beside, long_sample) = std::thread::scope(|scope| {
            let h = scope.spawn(|| {
                let s = one_request(&agent, &endpoint, &long, &long_text);
                reading.store(false, std::sync::atomic::Ordering::SeqCst);
                s
            });
            let mut beside = Vec::new();
            loop {
                std::thread::sleep(GAP + STAGGER * round as u32);
                if !reading.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let s = one_request(&agent, &endpoint, &short, &opts.short_prompt);
                // One that ends after the long prompt was read did not wait beside it.
                if !reading.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                beside.push(s);
            }
            let long_sample = h
                .join()
                .unwrap_or_else(|_| Err("the request thread panicked".into()));
            (beside, long_sample)
        });
        let long_sample = long_sample.map_err(|e| failed("long", e))?;
        for b in beside {
            let b = b.map_err(|e| failed("short", e))?;
            r.short_ttft_beside_long_ms.push(ttft("short", &b)?);
        }
        r.long_ttft_ms.push(ttft("long", &long_sample)?);
        r.long_prompt_tokens = long_sample.prompt_tokens;
    }
    let sorted = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v
    };
    r.short_ttft_alone_p50_ms = percentile(&sorted(&r.short_ttft_alone_ms), 50.0);
    let beside = sorted(&r.short_ttft_beside_long_ms);
    r.short_ttft_beside_long_p50_ms = percentile(&beside, 50.0);
    r.short_ttft_beside_long_max_ms = percentile(&beside, 100.0);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_long_prompt_has_the_words_asked_for() {
        let p = long_prompt(100);
        assert_eq!(p.split_whitespace().count(), 100);
        assert!(p.starts_with("the "));
        // Not one sentence repeated: consecutive sentences differ.
        let sentences: Vec<&str> = p.split(". ").collect();
        assert!(sentences.len() >= 6);
        assert_ne!(sentences[0], sentences[1]);
    }

    #[test]
    fn bad_options_are_errors_naming_the_field() {
        let mut o = FairnessOptions::new(BenchOptions::default());
        o.rounds = 0;
        let e = run_fairness(&o).unwrap_err();
        assert!(
            matches!(e, ServeError::BadRequest { ref param, .. } if param.as_deref() == Some("rounds")),
            "{e}"
        );
        let mut o = FairnessOptions::new(BenchOptions::default());
        o.long_words = 0;
        let e = run_fairness(&o).unwrap_err();
        assert!(
            matches!(e, ServeError::BadRequest { ref param, .. } if param.as_deref() == Some("long_words")),
            "{e}"
        );
    }

    #[test]
    fn an_unreachable_server_is_an_error_naming_the_request() {
        let mut base = BenchOptions::default();
        // A port nothing listens on (bound, then released).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        base.url = format!("127.0.0.1:{port}");
        base.timeout = Duration::from_secs(5);
        let e = run_fairness(&FairnessOptions::new(base)).unwrap_err();
        assert!(e.to_string().contains("the short request"), "{e}");
    }
}
