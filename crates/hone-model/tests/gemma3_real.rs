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
//! - and both against llama.cpp on the same file and tokens (`gemma3_270m_llamacpp.json`), held
//!   to the closeness transformers itself has to llama.cpp.
//!
//! Skips (with the reason printed) when the model is not cached: `hone model fetch gemma3-270m`.

use std::path::Path;

use hone_model::llama::{Logits, SeqInput};
use hone_model::loader::GgufFile;
use hone_model::{LoadOptions, WeightMode};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// transformers on the GGUF dequantized to f32 (`scripts/fixtures/gemma3_reference.py`).
fn reference() -> Value {
    fixture("gemma3_270m_reference.json")
}

/// llama.cpp on the same file and tokens (`scripts/fixtures/gemma3_llamacpp_reference.py`).
fn llama_cpp_reference() -> Value {
    fixture("gemma3_270m_llamacpp.json")
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

/// hone's rows at the references' positions, f32 and native, computed once for both tests
/// (the two references score the same tokens at the same positions).
fn hone_rows(gguf: &Path) -> &'static (Vec<f32>, Vec<f32>) {
    static ROWS: std::sync::OnceLock<(Vec<f32>, Vec<f32>)> = std::sync::OnceLock::new();
    ROWS.get_or_init(|| {
        let (ids, positions) = ids_and_positions(&reference());
        (
            logits_at(gguf, WeightMode::F32, &ids, &positions),
            logits_at(gguf, WeightMode::Native, &ids, &positions),
        )
    })
}

fn ids_and_positions(r: &Value) -> (Vec<u32>, Vec<usize>) {
    let ids: Vec<u32> = r["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let positions: Vec<usize> = r["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["position"].as_u64().unwrap() as usize)
        .collect();
    assert!(positions.iter().filter(|&&p| p >= 512).count() >= 30);
    (ids, positions)
}

/// How far hone's rows are from a reference's.
struct Agreement {
    /// Positions whose top-1 token is the reference's.
    top1: usize,
    /// Positions compared.
    n: usize,
    kl_mean: f64,
    kl_max: f64,
    /// Largest |logit difference| over the reference's 64 most likely tokens.
    worst: f32,
}

fn agreement(reference: &Value, logits: &[f32]) -> Agreement {
    let rows = reference["rows"].as_array().unwrap();
    let vocab = logits.len() / rows.len();
    let (mut top1, mut kl_sum, mut kl_max, mut worst) = (0, 0f64, 0f64, 0f32);
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
        top1 += usize::from(argmax == top[0]);
        // KL(reference || hone) over the reference's 64 most likely tokens (nearly all of its
        // mass).
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
    Agreement {
        top1,
        n: rows.len(),
        kl_mean: kl_sum / rows.len() as f64,
        kl_max,
        worst,
    }
}

impl std::fmt::Display for Agreement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "top-1 agreement {}/{}, KL mean {:.2e} max {:.2e}, max |logit diff| on the top 64 {:.2e}",
            self.top1, self.n, self.kl_mean, self.kl_max, self.worst
        )
    }
}

#[test]
fn gemma3_270m_matches_transformers_past_the_sliding_window() {
    let Some(gguf) = hone_model::fetch::cached_for_tests("gemma3-270m") else {
        return;
    };
    let r = reference();
    let (f32_rows, native_rows) = hone_rows(&gguf);
    for (mode, rows) in [("f32", f32_rows), ("native", native_rows)] {
        let a = agreement(&r, rows);
        println!("gemma3-270m {mode} against transformers: {a}");
        match mode {
            "f32" => {
                assert_eq!(a.top1, a.n, "f32: top-1 differs from transformers");
                assert!(a.worst < 2e-3, "f32: logits differ by {}", a.worst);
            }
            _ => {
                assert!(a.top1 * 10 >= a.n * 9, "native: {a}");
                assert!(a.kl_mean < 2e-2, "native: {a}");
            }
        }
    }
}

/// llama.cpp is the other reference on the same file: its K-quant products take 8-bit
/// activations and its KV cache is f16, so neither transformers nor hone match it to rounding.
/// hone's native kernels must be as close to it as the f32 reference is (measured over all 900
/// positions: transformers 95.3% top-1, KL 5.3e-3; hone native 95.3%, 6.4e-3;
/// docs/benchmarks.md), past the window too.
#[test]
fn gemma3_270m_matches_llama_cpp_on_the_same_file() {
    let Some(gguf) = hone_model::fetch::cached_for_tests("gemma3-270m") else {
        return;
    };
    let r = llama_cpp_reference();
    assert_eq!(
        ids_and_positions(&r),
        ids_and_positions(&reference()),
        "both references score the same tokens at the same positions"
    );
    let (f32_rows, native_rows) = hone_rows(&gguf);
    let f32 = agreement(&r, f32_rows);
    let native = agreement(&r, native_rows);
    println!("gemma3-270m f32 against llama.cpp: {f32}");
    println!("gemma3-270m native against llama.cpp: {native}");
    for a in [&f32, &native] {
        assert!(a.top1 * 10 >= a.n * 9, "{a}");
        assert!(a.kl_mean < 2e-2, "{a}");
    }
    // Not further from llama.cpp than the f32 reference is, beyond noise.
    assert!(
        native.kl_mean < 2.0 * f32.kl_mean + 2e-3,
        "{native} against {f32}"
    );
    assert!(native.top1 + 3 >= f32.top1, "{native} against {f32}");
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
