//! The real Gemma 3 270M (`gemma-3-270m-q4_k_m.gguf`: Q4_K, Q5_0, Q6_K, Q8_0 and F32 tensors,
//! 18 layers, every sixth global, a 512-token sliding window, 262,144-token vocabulary)
//! against transformers on the same file (`scripts/fixtures/gemma3_reference.py`: the GGUF
//! dequantized to f32, eager attention), over 900 tokens of a synthetic NDA, so that 388
//! positions lie past the window. The reference keeps 64 positions (half of them past the
//! window), each with its 64 largest logits and the row's log-sum-exp.
//!
//! - hone with every weight dequantized to f32 (`WeightMode::F32`) must agree with transformers
//!   to float rounding: the same top-1 everywhere, logits within 2e-3;
//! - hone's native kernels (K-quant weights times int8 activations, as llama.cpp computes) are
//!   held to top-1 agreement on at least 90% of positions and a small KL (printed).
//!
//! Skips (with the reason printed) when the model is not cached: `hone model fetch gemma3-270m`.

use std::path::Path;

use hone_model::llama::{Logits, SeqInput};
use hone_model::loader::GgufFile;
use hone_model::{LoadOptions, WeightMode};
use serde_json::Value;

fn reference() -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gemma3_270m_reference.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn log_sum_exp(row: &[f32]) -> f64 {
    let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    m + row.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln()
}

/// Logits at the reference positions, from one pass over all the ids.
fn logits_at(gguf: &Path, weights: WeightMode, ids: &[u32], rows: &[usize]) -> Vec<f32> {
    let model = GgufFile::open(gguf)
        .unwrap()
        .llama(&LoadOptions { weights })
        .unwrap();
    assert_eq!(model.config.layer_window(0), Some(512));
    assert_eq!(
        model.config.layer_window(5),
        None,
        "every sixth layer is global"
    );
    let mut kv = model.new_cache(ids.len());
    let mut seq = hone_model::kv_cache::SeqCache::new();
    model
        .forward(
            &mut [SeqInput {
                cache: &mut seq,
                tokens: ids,
                logits: Logits::Rows(rows),
                adapter: None,
            }],
            &mut kv,
        )
        .unwrap()
}

#[test]
fn gemma3_270m_matches_transformers_past_the_sliding_window() {
    let Some(gguf) = hone_model::fetch::cached_for_tests("gemma3-270m") else {
        return;
    };
    let r = reference();
    let ids: Vec<u32> = r["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let rows = r["rows"].as_array().unwrap();
    let positions: Vec<usize> = rows
        .iter()
        .map(|x| x["position"].as_u64().unwrap() as usize)
        .collect();
    assert!(positions.iter().filter(|&&p| p >= 512).count() >= 30);
    for (mode, weights) in [("f32", WeightMode::F32), ("native", WeightMode::Native)] {
        let logits = logits_at(&gguf, weights, &ids, &positions);
        let vocab = logits.len() / positions.len();
        let (mut agree, mut kl_sum, mut kl_max, mut worst) = (0, 0f64, 0f64, 0f32);
        for (i, row) in rows.iter().enumerate() {
            let ours = &logits[i * vocab..(i + 1) * vocab];
            let top: Vec<usize> = row["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            let theirs: Vec<f64> = row["logits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let lse_ref = row["logsumexp"].as_f64().unwrap();
            let lse = log_sum_exp(ours);
            let argmax = (0..vocab)
                .max_by(|&a, &b| ours[a].total_cmp(&ours[b]))
                .unwrap();
            agree += usize::from(argmax == top[0]);
            // KL(reference || hone) over the reference's 64 most likely tokens (nearly all
            // of its mass).
            let kl: f64 = top
                .iter()
                .zip(&theirs)
                .map(|(&t, &l)| {
                    let lp_ref = l - lse_ref;
                    lp_ref.exp() * (lp_ref - (ours[t] as f64 - lse))
                })
                .sum();
            kl_sum += kl;
            kl_max = kl_max.max(kl);
            for (&t, &l) in top.iter().zip(&theirs) {
                worst = worst.max((ours[t] - l as f32).abs());
            }
        }
        let n = rows.len();
        println!(
            "gemma3-270m {mode}: top-1 agreement {agree}/{n}, KL mean {:.2e} max {:.2e}, max |logit diff| on the top 64 {worst:.2e}",
            kl_sum / n as f64,
            kl_max
        );
        match mode {
            "f32" => {
                assert_eq!(agree, n, "f32: top-1 differs from transformers");
                assert!(worst < 2e-3, "f32: logits differ by {worst}");
            }
            _ => {
                assert!(agree * 10 >= n * 9, "native: top-1 agreement {agree}/{n}");
                assert!(
                    kl_sum / (n as f64) < 2e-2,
                    "native: mean KL {}",
                    kl_sum / n as f64
                );
            }
        }
    }
}

#[test]
fn the_pretrained_gemma_file_gets_gemmas_turn_format() {
    use hone_model::chat_template::Message;
    let Some(gguf) = hone_model::fetch::cached_for_tests("gemma3-270m") else {
        return;
    };
    let m = hone_model::LoadedModel::load_gguf(&gguf, &LoadOptions::default()).unwrap();
    let msgs = [
        Message::system("Be brief."),
        Message::user("Is clause 4 a non-solicit?"),
        Message::assistant(" Yes. "),
        Message::user("Since when?"),
    ];
    assert_eq!(
        m.template.render(&msgs, true).unwrap(),
        "<bos><start_of_turn>user\nBe brief.\n\nIs clause 4 a non-solicit?<end_of_turn>\n\
         <start_of_turn>model\nYes.<end_of_turn>\n<start_of_turn>user\nSince when?<end_of_turn>\n\
         <start_of_turn>model\n"
    );
    let end = m.tokenizer.token_id("<end_of_turn>").unwrap();
    assert!(m.template.stop_token_ids(&m.tokenizer).contains(&end));
    // Training spans: the answer and its end-of-turn marker.
    let (text, spans) = m.template.render_with_spans(&msgs[..3]).unwrap();
    assert_eq!(&text[spans[0].clone()], "Yes.<end_of_turn>");
}
