//! Time building a GGUF file's tokenizer (metadata read once, tokenizer built five times).
//!
//!     cargo run --release -p hone-model --example tokenizer_load -- FILE.gguf

use std::time::Instant;

use candle_core::quantized::gguf_file;
use hone_model::tokenizer::Tokenizer;

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: tokenizer_load FILE.gguf");
    let t = Instant::now();
    let mut f = std::fs::File::open(&path).expect("open");
    let content = gguf_file::Content::read(&mut f).expect("read GGUF");
    println!("metadata read: {:.0} ms", t.elapsed().as_secs_f64() * 1e3);
    let mut times = Vec::new();
    let mut vocab = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let tok = Tokenizer::from_gguf_metadata(&content.metadata).expect("tokenizer");
        times.push(t.elapsed().as_secs_f64() * 1e3);
        vocab = tok.vocab_size();
    }
    times.sort_by(f64::total_cmp);
    println!(
        "tokenizer of {vocab} tokens built: min {:.0} ms, median {:.0} ms (5 runs)",
        times[0], times[2]
    );
}
