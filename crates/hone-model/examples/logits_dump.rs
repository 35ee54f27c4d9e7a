//! Writes a model's logits for a list of token ids (little-endian f32, `[n, vocab]`), to
//! compare hone with another implementation on the same file:
//! `cargo run --release -p hone-model --example logits_dump -- MODEL IDS.json OUT.f32 [f32|native]`
//! (`IDS.json`: `{"ids": [...]}`).

use hone_model::loader::GgufFile;
use hone_model::{LoadOptions, WeightMode};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, ids, out, rest @ ..] = &args[..] else {
        return Err("usage: logits_dump MODEL.gguf IDS.json OUT.f32 [f32|native]".into());
    };
    let weights = match rest.first().map(String::as_str) {
        Some("f32") => WeightMode::F32,
        _ => WeightMode::Native,
    };
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(ids)?)?;
    let ids: Vec<u32> = v["ids"]
        .as_array()
        .ok_or("ids: expected a list")?
        .iter()
        .map(|x| x.as_u64().map(|u| u as u32).ok_or("ids: not a token id"))
        .collect::<Result<_, _>>()?;
    let t = std::time::Instant::now();
    let model = GgufFile::open(std::path::Path::new(model))?.llama(&LoadOptions { weights })?;
    eprintln!("loaded in {:.2?}", t.elapsed());
    let t = std::time::Instant::now();
    let logits = model.logits_all(&ids)?;
    eprintln!("{} tokens in {:.2?}", ids.len(), t.elapsed());
    let bytes: Vec<u8> = logits.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(out, bytes)?;
    Ok(())
}
