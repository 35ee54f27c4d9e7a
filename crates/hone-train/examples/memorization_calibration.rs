//! Calibrates `hone data qa --model`'s memorization threshold: the mean log-probability per
//! answer token that separates answers a model writes itself from answers people wrote.
//!
//! From ContractNLI clauses (real text, 24-60 words), each example asks to continue a clause
//! from its first half. The human answer is the clause's real second half; the model's answer
//! is SmolLM2's own greedy continuation of the same length. Both are scored teacher-forced
//! (`answer_logprob`), and the threshold that best separates them is printed.
//!
//! `cargo run --release -p hone-train --example memorization_calibration -- CONTRACTNLI_JSON [N]`

use hone_data::contractnli::official;
use hone_data::example::Example;
use hone_model::chat_template::Message;
use hone_model::{generate, GenRequest, LoadOptions, LoadedModel, SamplingParams};
use hone_train::answer_logprob::mean_answer_logprob;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("CONTRACTNLI_JSON");
    let n: usize = args.next().map_or(60, |s| s.parse().expect("N"));
    hone_model::quant::set_num_threads(2);
    let model_path = hone_model::fetch::cached_for_tests("smollm2").expect("cached SmolLM2");
    let m = LoadedModel::load_gguf(&model_path, &LoadOptions::default()).expect("load");
    let ds = official::read(std::path::Path::new(&path)).expect("ContractNLI");
    let mut clauses: Vec<String> = Vec::new();
    for d in &ds.documents {
        for t in d.span_texts().unwrap_or_default() {
            let w = t.split_whitespace().count();
            // One clause per document, so they are not all boilerplate of one kind.
            if (24..=60).contains(&w) {
                clauses.push(t.split_whitespace().collect::<Vec<_>>().join(" "));
                break;
            }
        }
        if clauses.len() == n {
            break;
        }
    }
    let stops = m.template.stop_token_ids(&m.tokenizer);
    let (mut human, mut model) = (Vec::new(), Vec::new());
    for c in &clauses {
        let w: Vec<&str> = c.split_whitespace().collect();
        let (head, tail) = w.split_at(w.len() / 2);
        let user = format!("Continue this clause from a contract: {}", head.join(" "));
        let prompt_text = m
            .template
            .render(&[Message::user(user.clone())], true)
            .unwrap();
        let prompt = m.tokenizer.encode(&prompt_text, true).unwrap();
        let tail_tokens = m.tokenizer.encode(&tail.join(" "), false).unwrap().len();
        let out = generate(
            &m.model,
            &m.tokenizer,
            &[GenRequest {
                prompt,
                max_tokens: tail_tokens.max(8),
                sampling: SamplingParams::greedy(),
                stop_strings: Vec::new(),
                stop_tokens: stops.clone(),
            }],
            |_, _| {},
        )
        .unwrap();
        for (answer, into) in [
            (tail.join(" "), &mut human),
            (out[0].text.clone(), &mut model),
        ] {
            let ex = Example {
                id: None,
                group: None,
                label: None,
                messages: vec![Message::user(user.clone()), Message::assistant(answer)],
            };
            if let Some((lp, _)) =
                mean_answer_logprob(&m.model, &m.tokenizer, &m.template, &ex, 2048).unwrap()
            {
                into.push(lp);
            }
        }
    }
    let show = |name: &str, v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        println!(
            "{name:<6} n {:>3}  min {:.2}  p10 {:.2}  p50 {:.2}  p90 {:.2}  max {:.2}",
            v.len(),
            q(0.0),
            q(0.1),
            q(0.5),
            q(0.9),
            q(1.0)
        );
    };
    show("human", &mut human);
    show("model", &mut model);
    // The threshold with the fewest errors (model answers at or below, human answers above).
    let mut best = (usize::MAX, 0.0);
    for t in (-60..=0).map(|k| f64::from(k) / 20.0) {
        let err =
            human.iter().filter(|&&x| x > t).count() + model.iter().filter(|&&x| x <= t).count();
        if err < best.0 {
            best = (err, t);
        }
    }
    println!(
        "threshold {:.2}: {} of {} answers on the wrong side",
        best.1,
        best.0,
        human.len() + model.len()
    );
}
