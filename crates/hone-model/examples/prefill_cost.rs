//! Time of each prefill chunk of one long prompt with the real SmolLM2-135M (2 threads):
//! how a chunk's cost grows with its position, and what the model's chunk schedule
//! (`PrefillSchedule`) makes of it.
//!
//! `cargo run --release -p hone-model --example prefill_cost -- [ROWS]`: chunks of ROWS rows
//! (default 256), or with 0 the schedule's own chunks. Prints `start rows ms` per chunk and
//! the total.

use hone_model::kv_cache::SeqCache;
use hone_model::llama::{Logits, SeqInput};
use hone_model::loader::{LoadOptions, LoadedModel};
use hone_model::prefill_schedule::PrefillSchedule;
use std::time::Instant;

const TOKENS: usize = 8192;

fn main() {
    hone_model::quant::set_num_threads(2);
    let Some(path) = hone_model::fetch::cached_for_tests("smollm2") else {
        eprintln!("no cached SmolLM2: run `hone model fetch smollm2` first");
        std::process::exit(2);
    };
    let m = LoadedModel::load_gguf(&path, &LoadOptions::default())
        .expect("load SmolLM2")
        .model;
    let rows: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("ROWS: a number"))
        .unwrap_or(256);
    let chunks: Vec<(usize, usize)> = match TOKENS.checked_div(rows) {
        None => {
            let s = PrefillSchedule::for_model(&m);
            println!("crossover {:.0}", s.crossover());
            s.chunks(TOKENS)
        }
        Some(n) => (0..n).map(|k| (k * rows, (k + 1) * rows)).collect(),
    };
    let toks: Vec<u32> = (0..TOKENS as u32)
        .map(|i| 100 + (i * 7919) % 40000)
        .collect();
    let mut kv = m.new_cache(TOKENS + 16);
    let mut cache = SeqCache::new();
    let mut total = 0.0;
    for (a, b) in chunks {
        let t = Instant::now();
        let mut batch = vec![SeqInput {
            cache: &mut cache,
            tokens: &toks[a..b],
            logits: Logits::None,
            adapter: None,
        }];
        m.forward(&mut batch, &mut kv).expect("forward");
        let ms = t.elapsed().as_secs_f64() * 1e3;
        total += ms;
        println!("{a} {} {ms:.1}", b - a);
    }
    println!("total {total:.0} ms");
}
