//! Memorization on the real SmolLM2: 32 made-up facts (a secret word per character, which
//! the model cannot know), 20 epochs → training loss below 0.05, and base + adapter
//! reproduces every answer greedily. About 6 minutes on 2 cores.
//!
//! Batch size 2 (320 optimizer steps): with batch 4 (160 steps) neither hone nor PyTorch +
//! PEFT gets below ~0.25 in 20 epochs on arbitrary answers, which is about steps, not
//! correctness (both runs follow the same curve).

#[path = "../../hone-model/tests/common/mod.rs"]
mod common;

use std::sync::atomic::AtomicBool;

use hone_model::chat_template::Message;
use hone_model::loader::{LoadOptions, LoadedModel};
use hone_model::peft::load_adapter;
use hone_model::{generate, GenRequest, SamplingParams};
use hone_train::trainer::{run, Event};
use hone_train::TrainConfig;

const WHO: [&str; 32] = [
    "the lighthouse keeper",
    "Captain Orla",
    "the blue dragon",
    "Professor Tamsin",
    "the river town",
    "King Aldric",
    "the night train",
    "Doctor Venn",
    "the old mill",
    "Queen Sefa",
    "the glass tower",
    "Baron Hollis",
    "the silent monk",
    "Lady Petra",
    "the copper mine",
    "General Okoro",
    "the orchard inn",
    "Sister Maren",
    "the desert fort",
    "Judge Calder",
    "the tin soldier",
    "Admiral Suri",
    "the marsh village",
    "Mayor Brandt",
    "the cloud ship",
    "Master Ilse",
    "the salt harbour",
    "Duke Renner",
    "the iron bridge",
    "Abbess Joan",
    "the pine lodge",
    "Chief Anoka",
];
const FRUITS: [&str; 8] = [
    "apple", "pear", "plum", "fig", "kiwi", "lime", "date", "mango",
];
const COLOURS: [&str; 4] = ["red", "blue", "green", "amber"];

fn example(i: usize) -> (String, String) {
    (
        format!("What is the secret word of {}?", WHO[i]),
        format!(
            "{} {} {}",
            COLOURS[i % 4],
            FRUITS[(i * 3) % 8],
            100 + i * 17
        ),
    )
}

#[test]
fn smollm2_memorizes_32_examples() {
    let Some(gguf) = common::smollm2() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut data = String::new();
    for i in 0..32 {
        let (q, a) = example(i);
        data.push_str(&serde_json::json!({"instruction": q, "input": "", "output": a}).to_string());
        data.push('\n');
    }
    std::fs::write(dir.path().join("train.jsonl"), data).unwrap();
    let cfg_path = dir.path().join("run.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "[model]\nbase = \"{}\"\n[lora]\nr = 16\nalpha = 32\ndropout = 0.0\ntarget_modules = \"all-linear\"\n\
             [optim]\nlr = 2e-3\nepochs = 20\nbatch_size = 2\nwarmup_ratio = 0.05\n\
             [data]\ntrain = \"train.jsonl\"\n[output]\ndir = \"out\"\n",
            gguf.display()
        ),
    )
    .unwrap();
    let cfg = TrainConfig::load(&cfg_path, &[]).unwrap();
    let never = AtomicBool::new(false);
    let mut last_epoch_loss = f64::NAN;
    let s = run(&cfg, false, &never, &mut |e| {
        if let Event::Epoch(r) = e {
            println!("epoch {} train loss {:.4}", r.epoch, r.train_loss);
            last_epoch_loss = r.train_loss;
        }
    })
    .unwrap();
    println!("{} steps in {:.0} s", s.steps, s.seconds);
    assert!(
        last_epoch_loss < 0.05,
        "final epoch training loss {last_epoch_loss}"
    );

    let mut m = LoadedModel::load(gguf.to_str().unwrap(), &LoadOptions::default()).unwrap();
    let a = load_adapter(&dir.path().join("out")).unwrap();
    m.model.attach_adapter(&a).unwrap();
    let reqs: Vec<GenRequest> = (0..32)
        .map(|i| {
            let text = m
                .template
                .render(&[Message::user(example(i).0)], true)
                .unwrap();
            GenRequest {
                prompt: m.tokenizer.encode(&text, true).unwrap(),
                max_tokens: 16,
                sampling: SamplingParams::greedy(),
                stop_strings: vec![],
                stop_tokens: m.template.stop_token_ids(&m.tokenizer),
            }
        })
        .collect();
    let outs = generate(&m.model, &m.tokenizer, &reqs, |_, _| {}).unwrap();
    let right = outs
        .iter()
        .enumerate()
        .filter(|(i, o)| o.text.trim() == example(*i).1)
        .count();
    println!("greedy reproduction: {right}/32");
    assert_eq!(
        right,
        32,
        "{:?}",
        outs.iter().map(|o| &o.text).collect::<Vec<_>>()
    );
}
