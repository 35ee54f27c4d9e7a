//! `hone generate` and the serving engine finish a sequence the same way (they share
//! `hone_model::DecodeStep`): a stop string spanning several tokens is cut off, a character
//! split across byte-level tokens is never streamed in part, a stop token is neither output nor
//! counted nor given a log-probability, and `max_tokens` ends with `length`.
//!
//! The model is built so that its greedy output is known: a "chain" llama whose layers are all
//! zero (each position's hidden state is its token's one-hot embedding) and whose lm_head maps
//! token `t` to the next token of a fixed sequence. Its byte-level tokenizer spells that
//! sequence as "Hi café🤝 </end> x", with "é" and "🤝" split into single bytes.

use std::path::Path;
use std::sync::Arc;

use hone_model::{generate, FinishReason, GenRequest, LoadOptions, LoadedModel, SamplingParams};
use hone_serve::engine::{Engine, EngineConfig, Event, GenParams};
use hone_serve::metrics::Metrics;
use serde_json::json;

const HIDDEN: usize = 64;
const END: u32 = 0;
const PROMPT: u32 = 1;

/// The vocabulary as raw bytes (id = index); id 0 is the special end token.
fn vocab() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = vec![b"<|endoftext|>".to_vec(), b"Q".to_vec()];
    for t in [&b"Hi"[..], b" caf", &[0xC3], &[0xA9]] {
        v.push(t.to_vec()); // 2..=5
    }
    for b in "🤝".bytes() {
        v.push(vec![b]); // 6..=9
    }
    for t in [" </", "en", "d>", " x"] {
        v.push(t.as_bytes().to_vec()); // 10..=13
    }
    v
}

/// What the model says after the prompt `[PROMPT]`, then `END`.
const CHAIN: [u32; 12] = [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13];

/// Writes `tensors` (name, shape, f32 values) as a safetensors file.
fn write_safetensors(path: &Path, tensors: &[(&str, Vec<usize>, Vec<f32>)]) {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, shape, v) in tensors {
        let start = data.len();
        data.extend(v.iter().flat_map(|x| x.to_le_bytes()));
        header.insert(
            name.to_string(),
            json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let mut h = serde_json::Value::Object(header).to_string().into_bytes();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(data);
    std::fs::write(path, out).unwrap();
}

/// The chain model and its tokenizer as a Hugging Face folder, loaded.
fn chain_model(dir: &Path) -> LoadedModel {
    let vocab = vocab();
    let n = vocab.len();
    assert!(n <= HIDDEN);
    let (heads, ffn) = (4, 64);
    std::fs::write(
        dir.join("config.json"),
        json!({
            "architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "hidden_size": HIDDEN, "intermediate_size": ffn, "num_hidden_layers": 1,
            "num_attention_heads": heads, "num_key_value_heads": heads,
            "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 256,
            "vocab_size": n, "tie_word_embeddings": false, "torch_dtype": "float32"
        })
        .to_string(),
    )
    .unwrap();
    let zeros = |r: usize, c: usize| (vec![r, c], vec![0.0f32; r * c]);
    let mut embed = vec![0.0f32; n * HIDDEN];
    for t in 0..n {
        embed[t * HIDDEN + t] = 1.0;
    }
    // lm_head row `next` reads the one-hot of `prev`.
    let mut head = vec![0.0f32; n * HIDDEN];
    let mut prev = PROMPT as usize;
    for &next in CHAIN.iter().chain(&[END]) {
        head[next as usize * HIDDEN + prev] = 1.0;
        prev = next as usize;
    }
    let mut t: Vec<(&str, Vec<usize>, Vec<f32>)> = vec![
        ("model.embed_tokens.weight", vec![n, HIDDEN], embed),
        ("lm_head.weight", vec![n, HIDDEN], head),
        ("model.norm.weight", vec![HIDDEN], vec![1.0; HIDDEN]),
        (
            "model.layers.0.input_layernorm.weight",
            vec![HIDDEN],
            vec![1.0; HIDDEN],
        ),
        (
            "model.layers.0.post_attention_layernorm.weight",
            vec![HIDDEN],
            vec![1.0; HIDDEN],
        ),
    ];
    for (name, r, c) in [
        ("model.layers.0.self_attn.q_proj.weight", HIDDEN, HIDDEN),
        ("model.layers.0.self_attn.k_proj.weight", HIDDEN, HIDDEN),
        ("model.layers.0.self_attn.v_proj.weight", HIDDEN, HIDDEN),
        ("model.layers.0.self_attn.o_proj.weight", HIDDEN, HIDDEN),
        ("model.layers.0.mlp.gate_proj.weight", ffn, HIDDEN),
        ("model.layers.0.mlp.up_proj.weight", ffn, HIDDEN),
        ("model.layers.0.mlp.down_proj.weight", HIDDEN, ffn),
    ] {
        let (s, v) = zeros(r, c);
        t.push((name, s, v));
    }
    write_safetensors(&dir.join("model.safetensors"), &t);

    let table = hone_model::tokenizer::byte_to_char_table();
    let spelled: serde_json::Map<String, serde_json::Value> = vocab
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let s: String = if i == END as usize {
                String::from_utf8(b.clone()).unwrap()
            } else {
                b.iter().map(|&x| table[x as usize]).collect()
            };
            (s, json!(i))
        })
        .collect();
    let tokenizer = json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [{"id": END, "content": "<|endoftext|>", "single_word": false,
                          "lstrip": false, "rstrip": false, "normalized": false, "special": true}],
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
                          "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true,
                    "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null,
                  "continuing_subword_prefix": null, "end_of_word_suffix": null,
                  "fuse_unk": false, "byte_fallback": false, "vocab": spelled, "merges": []}
    });
    std::fs::write(dir.join("tokenizer.json"), tokenizer.to_string()).unwrap();
    LoadedModel::load_hf(dir, &LoadOptions::default()).unwrap()
}

/// One request's result: the streamed pieces, tokens, finish, completion tokens.
#[derive(Debug, PartialEq)]
struct Out {
    pieces: Vec<String>,
    tokens: Vec<u32>,
    finish: FinishReason,
    completion_tokens: usize,
}

struct Case {
    stop_strings: &'static [&'static str],
    max_tokens: usize,
    text: &'static str,
    finish: FinishReason,
    tokens: usize,
}

const CASES: [Case; 5] = [
    // No stop string: the end token stops, unseen and uncounted.
    Case {
        stop_strings: &[],
        max_tokens: 100,
        text: "Hi café🤝 </end> x",
        finish: FinishReason::Stop,
        tokens: 12,
    },
    // "</end>" spans three tokens: the text is cut before it; the token that completed it
    // is the last one counted.
    Case {
        stop_strings: &["</end>"],
        max_tokens: 100,
        text: "Hi café🤝 ",
        finish: FinishReason::Stop,
        tokens: 11,
    },
    // A stop string that begins and ends inside characters split across tokens.
    Case {
        stop_strings: &["xyz", "é🤝"],
        max_tokens: 100,
        text: "Hi caf",
        finish: FinishReason::Stop,
        tokens: 8,
    },
    // max_tokens inside "🤝": the incomplete character comes out as U+FFFD at the end only.
    Case {
        stop_strings: &[],
        max_tokens: 6,
        text: "Hi café\u{FFFD}",
        finish: FinishReason::Length,
        tokens: 6,
    },
    Case {
        stop_strings: &["</end>"],
        max_tokens: 9,
        text: "Hi café🤝 </",
        finish: FinishReason::Length,
        tokens: 9,
    },
];

fn stop_strings(c: &Case) -> Vec<String> {
    c.stop_strings.iter().map(|s| s.to_string()).collect()
}

fn check(who: &str, c: &Case, o: &Out) {
    let text = o.pieces.concat();
    assert_eq!(text, c.text, "{who}: text ({:?})", o.pieces);
    assert_eq!(o.finish, c.finish, "{who}: finish of {:?}", c.text);
    assert_eq!(o.completion_tokens, c.tokens, "{who}: completion tokens");
    assert_eq!(o.tokens, CHAIN[..c.tokens], "{who}: tokens");
    // No piece but the last flush carries part of a character.
    let n = o.pieces.len();
    for p in &o.pieces[..n.saturating_sub(1)] {
        assert!(!p.contains('\u{FFFD}'), "{who}: {:?}", o.pieces);
    }
}

fn via_generate(m: &LoadedModel) -> Vec<Out> {
    let reqs: Vec<GenRequest> = CASES
        .iter()
        .map(|c| GenRequest {
            prompt: vec![PROMPT],
            max_tokens: c.max_tokens,
            sampling: SamplingParams::greedy(),
            stop_strings: stop_strings(c),
            stop_tokens: vec![END],
        })
        .collect();
    let mut pieces = vec![Vec::new(); CASES.len()];
    let outs = generate(&m.model, &m.tokenizer, &reqs, |i, t| {
        pieces[i].push(t.to_string())
    })
    .unwrap();
    outs.into_iter()
        .zip(pieces)
        .map(|(o, pieces)| {
            assert_eq!(
                o.text,
                pieces.concat(),
                "generate: streamed = returned text"
            );
            Out {
                pieces,
                completion_tokens: o.tokens.len(),
                tokens: o.tokens,
                finish: o.finish,
            }
        })
        .collect()
}

fn via_engine(m: LoadedModel) -> Vec<Out> {
    let engine = Engine::start(
        Arc::new(m.model),
        Arc::new(m.tokenizer),
        EngineConfig {
            kv_bytes: 4 << 20,
            ..EngineConfig::default()
        },
        Metrics::new(),
    );
    let mut handles: Vec<_> = CASES
        .iter()
        .map(|c| {
            engine
                .submit(GenParams {
                    prompt: vec![PROMPT],
                    adapter: None,
                    max_tokens: c.max_tokens,
                    sampling: SamplingParams::greedy(),
                    stop_strings: stop_strings(c),
                    stop_tokens: vec![END],
                    logprobs: Some(1),
                    constraint: None,
                    track_logprob: false,
                })
                .unwrap()
        })
        .collect();
    let outs = handles
        .iter_mut()
        .map(|h| {
            let (mut pieces, mut tokens) = (Vec::new(), Vec::new());
            loop {
                match h.events.blocking_recv().expect("the engine answers") {
                    Event::Delta { text, tokens: t } => {
                        if !text.is_empty() {
                            pieces.push(text);
                        }
                        tokens.extend(t.iter().map(|t| t.id));
                    }
                    Event::Done {
                        finish,
                        completion_tokens,
                        ..
                    } => {
                        return Out {
                            pieces,
                            tokens,
                            finish,
                            completion_tokens,
                        }
                    }
                    Event::Error(e) => panic!("engine: {e}"),
                }
            }
        })
        .collect();
    engine.shutdown();
    outs
}

#[test]
fn generate_and_the_engine_cut_stop_strings_and_split_characters_alike() {
    let dir = tempfile::tempdir().unwrap();
    let m = chain_model(dir.path());
    let g = via_generate(&m);
    for (c, o) in CASES.iter().zip(&g) {
        check("generate", c, o);
    }
    // The engine's tokens are those with a log-probability: the end token has none.
    let e = via_engine(m);
    for (c, o) in CASES.iter().zip(&e) {
        check("engine", c, o);
    }
    // Streamed alike, piece by piece.
    for (a, b) in g.iter().zip(&e) {
        assert_eq!(a.pieces, b.pieces);
    }
}
