//! Tests on the real SmolLM2-135M-Instruct GGUF (CI fetches it; elsewhere they skip with a
//! printed reason): our f32 path against candle-transformers' reference, our quantized fast
//! path against that f32 reference, greedy generation, batching.

mod common;

use candle_core::{Device, Tensor};
use common::*;
use hone_model::chat_template::Message;
use hone_model::loader::{LoadOptions, LoadedModel, WeightMode};
use hone_model::{generate, GenRequest, SamplingParams};

/// Real text for the accuracy measurements (written for these tests).
const TEXT: &str = "MUTUAL NON-DISCLOSURE AGREEMENT

This Mutual Non-Disclosure Agreement (the \"Agreement\") is entered into as of March 3, 2025 \
by and between Northwind Analytics, Inc., a Delaware corporation, and Blue Harbor Logistics \
LLC (each a \"Party\" and together the \"Parties\").

1. Purpose. The Parties wish to explore a possible business relationship concerning the \
integration of route-planning software (the \"Purpose\"). In connection with the Purpose, \
each Party may disclose Confidential Information to the other.

2. Confidential Information. \"Confidential Information\" means any information disclosed by \
a Party, whether in writing, orally or by inspection of tangible objects, that is designated \
as confidential or that reasonably should be understood to be confidential given the nature \
of the information and the circumstances of disclosure. Confidential Information does not \
include information that (a) is or becomes publicly available through no fault of the \
Receiving Party; (b) was rightfully known to the Receiving Party before disclosure; (c) is \
independently developed without use of the Disclosing Party's information; or (d) is received \
from a third party without a duty of confidentiality.

3. Obligations. The Receiving Party shall use the Confidential Information solely for the \
Purpose, shall not disclose it to any third party other than its employees and advisers who \
need to know it and are bound by obligations at least as protective as these, and shall \
protect it with at least the degree of care it uses for its own information, but no less \
than reasonable care.

4. Term. This Agreement remains in effect for two (2) years from the date above; the \
obligations of Section 3 survive for three (3) years after its termination. Upon written \
request, the Receiving Party shall promptly return or destroy all Confidential Information.

5. Miscellaneous. This Agreement is governed by the laws of the State of New York. Nothing in \
it grants any license under any patent, copyright or trade secret. — Signed: “J. Alvarez”, \
Chief Executive Officer; ‘M. Chen’, General Counsel.";

fn reference_logits(path: &std::path::Path, toks: &[u32]) -> Vec<Vec<f32>> {
    // Every tensor dequantized to f32 (read per thread when the model is built).
    std::env::set_var("CANDLE_DEQUANTIZE_ALL", "1");
    let mut f = std::fs::File::open(path).unwrap();
    let ct = candle_core::quantized::gguf_file::Content::read(&mut f).unwrap();
    let mut m = candle_transformers::models::quantized_llama::ModelWeights::from_gguf(
        ct,
        &mut f,
        &Device::Cpu,
    )
    .unwrap();
    toks.iter()
        .enumerate()
        .map(|(pos, &t)| {
            let x = Tensor::new(&[t], &Device::Cpu)
                .unwrap()
                .unsqueeze(0)
                .unwrap();
            m.forward(&x, pos)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap()
        })
        .collect()
}

fn softmax64(x: &[f32]) -> Vec<f64> {
    let m = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let e: Vec<f64> = x.iter().map(|&v| (v as f64 - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|v| v / s).collect()
}

#[test]
fn smollm2_f32_and_quantized_paths_against_reference() {
    let Some(path) = smollm2() else { return };
    let f32m = LoadedModel::load_gguf(
        &path,
        &LoadOptions {
            weights: WeightMode::F32,
        },
    )
    .unwrap();
    let toks = f32m.tokenizer.encode(TEXT, false).unwrap();
    assert!(
        toks.len() >= 256,
        "need 256+ positions, have {}",
        toks.len()
    );
    let reference = reference_logits(&path, &toks);
    let vocab = f32m.model.vocab_size();

    // 1. Our f32 path equals the plain reference within 1e-3 relative.
    let ours = f32m.model.logits_all(&toks).unwrap();
    let mut worst = 0f32;
    for (pos, r) in reference.iter().enumerate() {
        worst = worst.max(max_rel_diff(&ours[pos * vocab..(pos + 1) * vocab], r));
    }
    println!(
        "f32 path vs reference: max relative logit difference {worst:.2e} over {} positions",
        toks.len()
    );
    assert!(
        worst < 1e-3,
        "f32 path differs from the reference by {worst}"
    );
    drop(f32m);

    // 2. The quantized fast path agrees with the f32 reference up to its quantization cost.
    let q = LoadedModel::load_gguf(&path, &LoadOptions::default()).unwrap();
    assert_eq!(q.model.layers[0].q_proj.kind(), "q4_1");
    let ql = q.model.logits_all(&toks).unwrap();
    let (mut kl_sum, mut agree) = (0f64, 0usize);
    for (pos, r) in reference.iter().enumerate() {
        let p = softmax64(r);
        let qq = softmax64(&ql[pos * vocab..(pos + 1) * vocab]);
        kl_sum += p
            .iter()
            .zip(&qq)
            .filter(|(a, _)| **a > 0.0)
            .map(|(a, b)| a * (a / b.max(1e-300)).ln())
            .sum::<f64>();
        let am = |v: &[f64]| {
            v.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0
        };
        agree += (am(&p) == am(&qq)) as usize;
    }
    let n = reference.len();
    let kl = kl_sum / n as f64;
    println!(
        "quantized path vs f32 reference: mean KL {kl:.5} over {n} positions, top-1 agreement {:.1}% ({agree}/{n})",
        100.0 * agree as f64 / n as f64
    );
    assert!(kl < 0.01, "mean KL {kl}");
}

fn greedy(m: &LoadedModel, prompts: &[&str], max_tokens: usize) -> Vec<String> {
    let reqs: Vec<GenRequest> = prompts
        .iter()
        .map(|p| {
            let text = m
                .template
                .render(
                    &[Message {
                        role: "user".into(),
                        content: p.to_string(),
                    }],
                    true,
                )
                .unwrap();
            GenRequest {
                prompt: m.tokenizer.encode(&text, true).unwrap(),
                max_tokens,
                sampling: SamplingParams::greedy(),
                stop_strings: vec![],
                stop_tokens: m.template.stop_token_ids(&m.tokenizer),
            }
        })
        .collect();
    generate(&m.model, &m.tokenizer, &reqs, |_, _| {})
        .unwrap()
        .into_iter()
        .map(|o| o.text)
        .collect()
}

#[test]
fn smollm2_greedy_answer_is_fluent_and_batch_invariant() {
    let Some(path) = smollm2() else { return };
    let m = LoadedModel::load_gguf(&path, &LoadOptions::default()).unwrap();
    let q = "What is a non-disclosure agreement?";
    let alone = greedy(&m, &[q], 48);
    println!("{q}\n→ {}", alone[0]);
    let text = alone[0].to_lowercase();
    let words: Vec<&str> = text.split_whitespace().collect();
    assert!(words.len() >= 20, "too short: {text}");
    assert!(
        text.contains("confidential") || text.contains("disclos") || text.contains("agreement"),
        "off topic: {text}"
    );
    let common = ["a", "the", "is", "that", "to", "of", "and"];
    let n_common = words.iter().filter(|w| common.contains(w)).count();
    assert!(n_common >= 4, "does not read as English: {text}");
    // The same prompt inside a batch of different prompts gives the same text.
    let batch = greedy(
        &m,
        &[
            "Name three colours.",
            q,
            "Write one sentence about contracts.",
        ],
        48,
    );
    assert_eq!(batch[1], alone[0]);
}

/// `GenOutput::mean_logprob` is the mean, over the generated tokens, of each token's
/// log-probability: recomputed here from one full forward pass over prompt + answer (f64
/// log-softmax of the logits row that predicted each token).
#[test]
fn smollm2_mean_logprob_matches_a_full_forward_pass() {
    let Some(path) = smollm2() else { return };
    let m = LoadedModel::load_gguf(&path, &LoadOptions::default()).unwrap();
    let text = m
        .template
        .render(&[Message::user("Name three colours.")], true)
        .unwrap();
    let prompt = m.tokenizer.encode(&text, true).unwrap();
    let req = |sampling: SamplingParams| GenRequest {
        prompt: prompt.clone(),
        max_tokens: 12,
        sampling,
        stop_strings: vec![],
        stop_tokens: m.template.stop_token_ids(&m.tokenizer),
    };
    // Greedy, and a hot sample (temperature 1.5) whose tokens are not the arg-max: the
    // log-probability is of the raw logits, not of the tempered distribution.
    let hot = SamplingParams {
        temperature: 1.5,
        seed: 3,
        ..SamplingParams::greedy()
    };
    let outs = generate(
        &m.model,
        &m.tokenizer,
        &[req(SamplingParams::greedy()), req(hot)],
        |_, _| {},
    )
    .unwrap();
    let vocab = m.model.vocab_size();
    for o in &outs {
        assert!(!o.tokens.is_empty());
        let all: Vec<u32> = prompt.iter().chain(&o.tokens).copied().collect();
        let logits = m.model.logits_all(&all).unwrap();
        let mut sum = 0.0;
        for (i, &t) in o.tokens.iter().enumerate() {
            let row = &logits[(prompt.len() - 1 + i) * vocab..][..vocab];
            sum += softmax64(row)[t as usize].ln();
        }
        let want = sum / o.tokens.len() as f64;
        let got = o.mean_logprob.expect("tokens were generated");
        println!(
            "mean log-prob {got:.4} (full pass {want:.4}) for {:?}",
            o.text
        );
        assert!(got < 0.0);
        assert!(
            (got - want).abs() < 0.02 * want.abs().max(0.05),
            "{got} vs {want}"
        );
    }
    // The hot sample picks less likely tokens than greedy does.
    assert!(outs[1].mean_logprob.unwrap() < outs[0].mean_logprob.unwrap());
}
