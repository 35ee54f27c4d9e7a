//! A tiny random llama (2 layers), written by the test as GGUF and as a Hugging Face folder:
//! both load to the same logits, match candle-transformers' reference implementation, and the
//! KV cache, batching and error paths behave.

mod common;

use candle_core::{Device, Tensor};
use common::*;
use hone_model::kv_cache::SeqCache;
use hone_model::llama::{Llama, Logits, SeqInput};
use hone_model::loader::{load_hf_llama, GgufFile, LoadOptions, LoadedModel, WeightMode};
use hone_model::Error;

fn tokens(n: usize, seed: u32) -> Vec<u32> {
    (0..n as u32)
        .map(|i| (i.wrapping_mul(2654435761).wrapping_add(seed * 977) >> 7) % VOCAB as u32)
        .collect()
}

struct Tiny {
    _dir: tempfile::TempDir,
    gguf: std::path::PathBuf,
    hf: std::path::PathBuf,
}

fn tiny() -> Tiny {
    let dir = tempfile::tempdir().unwrap();
    let w = tiny_weights(42);
    let gguf = dir.path().join("tiny.gguf");
    write_gguf(&gguf, &w, "llama");
    let hf = dir.path().join("hf");
    write_hf(&hf, &w);
    Tiny {
        _dir: dir,
        gguf,
        hf,
    }
}

fn load_gguf(p: &std::path::Path, mode: WeightMode) -> Llama {
    GgufFile::open(p)
        .unwrap()
        .llama(&LoadOptions { weights: mode })
        .unwrap()
}

#[test]
fn gguf_and_safetensors_give_identical_logits() {
    let t = tiny();
    let a = load_gguf(&t.gguf, WeightMode::Native);
    let b = load_hf_llama(&t.hf, &LoadOptions::default()).unwrap();
    let toks = tokens(40, 1);
    let la = a.logits_all(&toks).unwrap();
    let lb = b.logits_all(&toks).unwrap();
    assert_eq!(la.len(), 40 * VOCAB);
    assert_eq!(la, lb, "same weights, same code: bit-identical logits");
    assert!(la.iter().all(|x| x.is_finite()));
}

#[test]
fn matches_candle_reference_implementation() {
    // candle-transformers' quantized_llama reads the same GGUF (interleaved rope on the
    // permuted rows); ours un-permutes and uses the Hugging Face layout.
    let t = tiny();
    let ours = load_gguf(&t.gguf, WeightMode::F32);
    let mut f = std::fs::File::open(&t.gguf).unwrap();
    let ct = candle_core::quantized::gguf_file::Content::read(&mut f).unwrap();
    let mut reference = candle_transformers::models::quantized_llama::ModelWeights::from_gguf(
        ct,
        &mut f,
        &Device::Cpu,
    )
    .unwrap();
    let toks = tokens(24, 2);
    let all = ours.logits_all(&toks).unwrap();
    for (pos, &tok) in toks.iter().enumerate() {
        let x = Tensor::new(&[tok], &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let r: Vec<f32> = reference
            .forward(&x, pos)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let o = &all[pos * VOCAB..(pos + 1) * VOCAB];
        let d = max_rel_diff(o, &r);
        assert!(d < 1e-4, "position {pos}: relative difference {d}");
    }
}

#[test]
fn incremental_decoding_equals_full_forward() {
    let t = tiny();
    let m = load_hf_llama(&t.hf, &LoadOptions::default()).unwrap();
    let toks = tokens(30, 3);
    let full = m.logits_all(&toks).unwrap();
    let mut kv = m.new_cache(64);
    let mut seq = SeqCache::new();
    // A prefill chunk of 17, then one token at a time.
    let mut got = m
        .forward(
            &mut [SeqInput {
                adapter: None,
                cache: &mut seq,
                tokens: &toks[..17],
                logits: Logits::All,
            }],
            &mut kv,
        )
        .unwrap();
    for i in 17..30 {
        got.extend(
            m.forward(
                &mut [SeqInput {
                    adapter: None,
                    cache: &mut seq,
                    tokens: &toks[i..i + 1],
                    logits: Logits::Last,
                }],
                &mut kv,
            )
            .unwrap(),
        );
    }
    assert_eq!(seq.len(), 30);
    let d = max_rel_diff(&got, &full);
    assert!(d < 1e-5, "relative difference {d}");
}

/// A prefix computed once and forked twice (at a block boundary and inside a block) continues
/// exactly as if each sequence had been computed from scratch.
#[test]
fn forked_prefix_continues_like_a_fresh_sequence() {
    let t = tiny();
    let m = load_hf_llama(&t.hf, &LoadOptions::default()).unwrap();
    let prefix = tokens(37, 7);
    let mut kv = m.new_cache(256);
    let mut base = SeqCache::new();
    m.forward(
        &mut [SeqInput {
            adapter: None,
            cache: &mut base,
            tokens: &prefix,
            logits: Logits::None,
        }],
        &mut kv,
    )
    .unwrap();
    for (keep, seed) in [(32usize, 8), (37, 9), (5, 10)] {
        let suffix = tokens(6, seed);
        let mut whole = prefix[..keep].to_vec();
        whole.extend(&suffix);
        let want = m.logits_all(&whole).unwrap();
        let mut fork = kv.fork(&base, keep).unwrap();
        assert_eq!(fork.len(), keep);
        let got = m
            .forward(
                &mut [SeqInput {
                    adapter: None,
                    cache: &mut fork,
                    tokens: &suffix,
                    logits: Logits::All,
                }],
                &mut kv,
            )
            .unwrap();
        let v = m.vocab_size();
        let d = max_rel_diff(&got, &want[keep * v..]);
        assert!(d < 1e-5, "fork at {keep}: relative difference {d}");
        kv.release(&mut fork);
    }
    // The source is untouched and can still be continued; forking past its end is an error.
    assert_eq!(base.len(), 37);
    assert!(kv.fork(&base, 38).is_err());
    // A pool too small for the copy: an error, and nothing taken from the pool.
    let mut full = m.new_cache(48);
    let mut only = SeqCache::new();
    m.forward(
        &mut [SeqInput {
            adapter: None,
            cache: &mut only,
            tokens: &prefix,
            logits: Logits::None,
        }],
        &mut full,
    )
    .unwrap();
    let free = full.free_blocks();
    assert!(full.fork(&only, 37).is_err());
    assert_eq!(full.free_blocks(), free);
}

/// Logits of sequence `a` computed alone, and inside a batch with two other sequences of
/// other lengths.
fn alone_and_batched(m: &Llama) -> (Vec<f32>, Vec<f32>) {
    let a = tokens(21, 4);
    let b = tokens(9, 5);
    let c = tokens(33, 6);
    let alone = m.logits_all(&a).unwrap();
    let mut kv = m.new_cache(128);
    let (mut sa, mut sb, mut sc) = (SeqCache::new(), SeqCache::new(), SeqCache::new());
    let out = m
        .forward(
            &mut [
                SeqInput {
                    adapter: None,
                    cache: &mut sb,
                    tokens: &b,
                    logits: Logits::Last,
                },
                SeqInput {
                    adapter: None,
                    cache: &mut sa,
                    tokens: &a,
                    logits: Logits::All,
                },
                SeqInput {
                    adapter: None,
                    cache: &mut sc,
                    tokens: &c,
                    logits: Logits::None,
                },
            ],
            &mut kv,
        )
        .unwrap();
    assert_eq!(out.len(), (1 + 21) * VOCAB);
    (alone, out[VOCAB..].to_vec())
}

#[test]
fn batching_does_not_change_a_sequence_quantized_bitwise() {
    let t = tiny();
    let m = load_hf_llama(
        &t.hf,
        &LoadOptions {
            weights: WeightMode::Q8,
        },
    )
    .unwrap();
    assert_eq!(m.layers[0].q_proj.kind(), "q8_0");
    let (alone, batched) = alone_and_batched(&m);
    assert_eq!(alone, batched);
}

#[test]
fn batching_does_not_change_a_sequence_dense() {
    let t = tiny();
    let m = load_hf_llama(&t.hf, &LoadOptions::default()).unwrap();
    let (alone, batched) = alone_and_batched(&m);
    let d = max_rel_diff(&batched, &alone);
    assert!(d < 1e-5, "relative difference {d}");
}

#[test]
fn truncated_gguf_is_a_clear_error() {
    let t = tiny();
    let bytes = std::fs::read(&t.gguf).unwrap();
    for keep in [10, 200, bytes.len() - 100] {
        let p = t.gguf.with_file_name(format!("cut{keep}.gguf"));
        std::fs::write(&p, &bytes[..keep]).unwrap();
        let e = match GgufFile::open(&p) {
            Err(e) => e,
            Ok(_) => panic!("truncated file at {keep} bytes was accepted"),
        };
        let msg = e.to_string();
        assert!(matches!(e, Error::Gguf { .. }), "{msg}");
        assert!(
            msg.contains(&p.display().to_string()),
            "names the file: {msg}"
        );
    }
    let p = t.gguf.with_file_name("cut_tail.gguf");
    std::fs::write(&p, &bytes[..bytes.len() - 100]).unwrap();
    let msg = GgufFile::open(&p).err().unwrap().to_string();
    assert!(msg.contains("truncated"), "{msg}");
}

#[test]
fn unknown_architecture_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("gpt2.gguf");
    write_gguf(&p, &tiny_weights(1), "gpt2");
    let e = GgufFile::open(&p)
        .unwrap()
        .llama(&LoadOptions::default())
        .err()
        .unwrap();
    assert!(
        matches!(&e, Error::UnsupportedArchitecture { arch, .. } if arch == "gpt2"),
        "{e}"
    );
}

#[test]
fn missing_tokenizer_is_a_clear_error() {
    let t = tiny();
    let e = LoadedModel::load_hf(&t.hf, &LoadOptions::default())
        .err()
        .unwrap();
    assert!(e.to_string().contains("tokenizer"), "{e}");
}

#[test]
fn prompt_longer_than_context_is_an_error() {
    let t = tiny();
    let m = load_hf_llama(&t.hf, &LoadOptions::default()).unwrap();
    let e = m.logits_all(&tokens(CTX + 1, 7)).err().unwrap();
    assert!(
        matches!(e, Error::ContextOverflow { tokens, context } if tokens == CTX + 1 && context == CTX),
        "{e}"
    );
    let e = m.logits_all(&[VOCAB as u32 + 5]).err().unwrap();
    assert!(e.to_string().contains("vocabulary"), "{e}");
}

#[test]
fn missing_weight_in_hf_folder_names_it() {
    let t = tiny();
    let w: Vec<_> = tiny_weights(42)
        .into_iter()
        .filter(|(n, _, _)| n != "model.layers.1.mlp.up_proj.weight")
        .collect();
    let d = t.hf.with_file_name("hf_missing");
    write_hf(&d, &w);
    let e = load_hf_llama(&d, &LoadOptions::default()).err().unwrap();
    assert!(
        e.to_string().contains("model.layers.1.mlp.up_proj.weight"),
        "{e}"
    );
}

/// An adapter with non-zero B on every module of both layers, so it changes every projection.
fn random_adapter(m: &Llama, seed: u64) -> hone_model::lora::LoraAdapter {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let spec = hone_model::lora::LoraSpec {
        r: 4,
        alpha: 8.0,
        target_modules: hone_model::llama::MODULES
            .iter()
            .map(|s| s.to_string())
            .collect(),
        layers: (0..m.layers.len()).collect(),
    };
    let mut a = m.init_adapter(spec, &mut rng).unwrap();
    a.randomize_b(0.2, &mut rng);
    a
}

#[test]
fn per_row_adapters_in_one_batch_equal_each_adapter_attached() {
    let t = tiny();
    let opts = LoadOptions {
        weights: WeightMode::Q8,
    };
    let base = load_hf_llama(&t.hf, &opts).unwrap();
    let (ad1, ad2) = (random_adapter(&base, 1), random_adapter(&base, 2));
    let seqs = [tokens(17, 7), tokens(5, 8), tokens(26, 9), tokens(11, 10)];
    // Sequence i uses: adapter 1, none, adapter 2, adapter 1.
    let which = [Some(&ad1), None, Some(&ad2), Some(&ad1)];
    let mut kv = base.new_cache(256);
    let mut caches: Vec<SeqCache> = (0..4).map(|_| SeqCache::new()).collect();
    let out = {
        let mut batch: Vec<SeqInput<'_>> = caches
            .iter_mut()
            .zip(&seqs)
            .zip(which)
            .map(|((c, s), a)| SeqInput {
                adapter: a,
                cache: c,
                tokens: s,
                logits: Logits::All,
            })
            .collect();
        base.forward(&mut batch, &mut kv).unwrap()
    };
    let mut off = 0;
    for (i, s) in seqs.iter().enumerate() {
        let want = match which[i] {
            None => base.logits_all(s).unwrap(),
            Some(a) => {
                let mut m = load_hf_llama(&t.hf, &opts).unwrap();
                m.attach_adapter(a).unwrap();
                m.logits_all(s).unwrap()
            }
        };
        let got = &out[off..off + s.len() * VOCAB];
        assert_eq!(
            got,
            &want[..],
            "sequence {i}: per-row LoRA = attached LoRA, bitwise"
        );
        off += s.len() * VOCAB;
    }
    // The adapters do change the output.
    let plain = base.logits_all(&seqs[0]).unwrap();
    assert!(max_rel_diff(&out[..seqs[0].len() * VOCAB], &plain) > 1e-3);
}

#[test]
fn an_adapter_for_another_model_is_refused_in_forward() {
    let t = tiny();
    let base = load_hf_llama(&t.hf, &LoadOptions::default()).unwrap();
    let mut ad = random_adapter(&base, 3);
    let m = ad.modules.values_mut().next().unwrap();
    m.in_f += 1;
    let mut kv = base.new_cache(64);
    let mut c = SeqCache::new();
    let toks = tokens(4, 1);
    let err = base
        .forward(
            &mut [SeqInput {
                adapter: Some(&ad),
                cache: &mut c,
                tokens: &toks,
                logits: Logits::Last,
            }],
            &mut kv,
        )
        .unwrap_err();
    assert!(err.to_string().contains("another base model"), "{err}");
}

/// A mistyped rank is an error naming `lora.r`, its limit and the module, not an abort on a
/// huge allocation (issue 26).
#[test]
fn init_adapter_refuses_a_rank_larger_than_the_projections() {
    use rand::SeedableRng;
    let t = tiny();
    let m = load_hf_llama(&t.hf, &LoadOptions::default()).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let spec = |r: usize, targets: &[&str]| hone_model::lora::LoraSpec {
        r,
        alpha: 8.0,
        target_modules: targets.iter().map(|s| s.to_string()).collect(),
        layers: (0..m.layers.len()).collect(),
    };
    // k_proj is [KV_HEADS * head_dim, HIDDEN]: its smaller side bounds the rank.
    let k_out = KV_HEADS * (HIDDEN / HEADS);
    let e = m
        .init_adapter(spec(100_000_000, &["q_proj", "k_proj"]), &mut rng)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("lora.r = 100000000")
            && e.contains("q_proj of layer 0")
            && e.contains(&format!("= {HIDDEN}")),
        "{e}"
    );
    let e = m
        .init_adapter(spec(k_out + 1, &["k_proj"]), &mut rng)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("lora.r = {}", k_out + 1))
            && e.contains("k_proj of layer 0")
            && e.contains(&format!("min(in_features, out_features) = {k_out}")),
        "{e}"
    );
    let e = m
        .init_adapter(spec(0, &["k_proj"]), &mut rng)
        .unwrap_err()
        .to_string();
    assert!(e.contains("lora.r must be at least 1"), "{e}");
    // The largest allowed rank works.
    let a = m.init_adapter(spec(k_out, &["k_proj"]), &mut rng).unwrap();
    assert_eq!(a.spec.r, k_out);
}

/// Rows of logits for a few positions of one sequence: the full vocabulary, or `tokens` only.
fn rows_of(m: &Llama, toks: &[u32], rows: &[usize], tokens: Option<&[u32]>) -> Vec<f32> {
    let mut kv = m.new_cache(toks.len());
    let mut seq = SeqCache::new();
    let logits = match tokens {
        Some(tokens) => Logits::RowsOf { rows, tokens },
        None => Logits::Rows(rows),
    };
    m.forward(
        &mut [SeqInput {
            adapter: None,
            cache: &mut seq,
            tokens: toks,
            logits,
        }],
        &mut kv,
    )
    .unwrap()
}

#[test]
fn logits_of_a_few_tokens_are_the_full_rows_at_those_tokens() {
    let t = tiny();
    let toks = tokens(30, 8);
    let rows = [2, 11, 29];
    let pick: Vec<u32> = vec![5, 0, VOCAB as u32 - 1, 7, 5];
    for (name, m, exact) in [
        ("gguf native", load_gguf(&t.gguf, WeightMode::Native), false),
        (
            "q8",
            load_hf_llama(
                &t.hf,
                &LoadOptions {
                    weights: WeightMode::Q8,
                },
            )
            .unwrap(),
            true,
        ),
        (
            "f32",
            load_hf_llama(&t.hf, &LoadOptions::default()).unwrap(),
            false,
        ),
    ] {
        let full = rows_of(&m, &toks, &rows, None);
        // Quantized heads run the same kernel on the same blocks: bit for bit. Dense ones go
        // through gemm, whose kernels depend on the matrix's size: to rounding.
        assert_eq!(m.lm_head.kind() != "f32", exact, "{name}");
        // Twice: the second call reuses the cut head.
        for _ in 0..2 {
            let some = rows_of(&m, &toks, &rows, Some(&pick));
            assert_eq!(some.len(), rows.len() * pick.len(), "{name}");
            for (r, row) in some.chunks_exact(pick.len()).enumerate() {
                for (j, &tok) in pick.iter().enumerate() {
                    let want = full[r * VOCAB + tok as usize];
                    if exact {
                        assert_eq!(row[j], want, "{name}: row {r}, token {tok}");
                    } else {
                        let d = (row[j] - want).abs() / want.abs().max(1.0);
                        assert!(
                            d < 1e-5,
                            "{name}: row {r}, token {tok}: {} vs {want}",
                            row[j]
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn logits_of_tokens_outside_the_vocabulary_or_of_two_token_sets_are_refused() {
    let t = tiny();
    let m = load_gguf(&t.gguf, WeightMode::Native);
    let toks = tokens(12, 9);
    let mut kv = m.new_cache(64);
    let (mut a, mut b) = (SeqCache::new(), SeqCache::new());
    let outside = [3, VOCAB as u32];
    let e = m
        .forward(
            &mut [SeqInput {
                adapter: None,
                cache: &mut a,
                tokens: &toks,
                logits: Logits::RowsOf {
                    rows: &[1],
                    tokens: &outside,
                },
            }],
            &mut kv,
        )
        .unwrap_err();
    assert!(e.to_string().contains("outside the vocabulary"), "{e}");
    let e = m
        .forward(
            &mut [
                SeqInput {
                    adapter: None,
                    cache: &mut a,
                    tokens: &toks,
                    logits: Logits::RowsOf {
                        rows: &[1],
                        tokens: &[1, 2],
                    },
                },
                SeqInput {
                    adapter: None,
                    cache: &mut b,
                    tokens: &toks,
                    logits: Logits::Last,
                },
            ],
            &mut kv,
        )
        .unwrap_err();
    assert!(e.to_string().contains("different tokens"), "{e}");
    // Nothing was run: both sequences are still empty.
    assert_eq!((a.len(), b.len()), (0, 0));
}
