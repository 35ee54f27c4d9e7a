//! End-to-end training runs on a tiny random model that uses SmolLM2's real tokenizer and chat
//! template (so the loss mask comes from a real template): resume equals an uninterrupted run,
//! and bad inputs give clear errors. Skips when the SmolLM2 GGUF is absent.

#[path = "../../hone-model/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use hone_model::chat_template::ChatTemplate;
use hone_model::peft::load_adapter;
use hone_model::tokenizer::Tokenizer;
use hone_train::trainer::{run, run_with_memory, Event};
use hone_train::TrainConfig;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const VOCAB_REAL: usize = 49152;

/// A 2-layer random llama with SmolLM2's vocabulary, tokenizer and template, as an HF folder.
fn tiny_with_real_tokenizer(dir: &Path) -> Option<PathBuf> {
    let gguf = common::smollm2()?;
    let md = {
        let mut f = std::fs::File::open(&gguf).unwrap();
        candle_core::quantized::gguf_file::Content::read(&mut f)
            .unwrap()
            .metadata
    };
    let tok = Tokenizer::from_gguf_metadata(&md).unwrap();
    let tpl = ChatTemplate::from_gguf_metadata(&md, &tok).unwrap();
    let hf = dir.join("tiny");
    let mut w = common::tiny_weights(3);
    let mut rng = StdRng::seed_from_u64(4);
    w[0] = (
        "model.embed_tokens.weight".into(),
        vec![VOCAB_REAL, common::HIDDEN],
        (0..VOCAB_REAL * common::HIDDEN)
            .map(|_| rng.gen_range(-1.0..1.0))
            .collect(),
    );
    common::write_hf(&hf, &w);
    let mut cfg = common::tiny_config_json();
    cfg["vocab_size"] = VOCAB_REAL.into();
    std::fs::write(hf.join("config.json"), cfg.to_string()).unwrap();
    std::fs::write(
        hf.join("tokenizer.json"),
        tok.to_tokenizer_json(false).unwrap(),
    )
    .unwrap();
    let tc = serde_json::json!({
        "chat_template": tpl.source(),
        "bos_token": tpl.bos_token(),
        "eos_token": tpl.eos_token(),
    });
    std::fs::write(hf.join("tokenizer_config.json"), tc.to_string()).unwrap();
    Some(hf)
}

fn write_data(path: &Path, n: usize, offset: usize) {
    let mut s = String::new();
    for i in 0..n {
        let k = i + offset;
        s.push_str(
            &serde_json::json!({
                "instruction": format!("Classify clause {k}."),
                "input": format!("The Receiving Party shall keep item {} confidential.", k * 7),
                "output": if k.is_multiple_of(2) { "confidentiality" } else { "term" },
            })
            .to_string(),
        );
        s.push('\n');
    }
    std::fs::write(path, s).unwrap();
}

fn config(dir: &Path, base: &Path, extra: &str) -> PathBuf {
    write_data(&dir.join("train.jsonl"), 10, 0);
    write_data(&dir.join("val.jsonl"), 4, 100);
    let p = dir.join("run.toml");
    std::fs::write(
        &p,
        format!(
            "[model]\nbase = \"{}\"\n[lora]\nr = 4\nalpha = 8\ntarget_modules = [\"q_proj\", \"v_proj\", \"down_proj\"]\n\
             [optim]\nlr = 1e-3\nepochs = 3\nbatch_size = 4\ngrad_accum = 1\nmax_seq_len = 256\npatience = 5\n\
             [data]\ntrain = \"train.jsonl\"\nvalidation = \"val.jsonl\"\n[output]\ndir = \"out\"\n{extra}",
            base.display()
        ),
    )
    .unwrap();
    p
}

fn adapter_values(dir: &Path) -> Vec<f32> {
    load_adapter(dir)
        .unwrap()
        .modules
        .values()
        .flat_map(|m| m.a.iter().chain(m.b.iter()).copied())
        .collect()
}

#[test]
fn interrupted_and_killed_runs_resume_to_the_same_adapter() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(base) = tiny_with_real_tokenizer(tmp.path()) else {
        return;
    };
    // Uninterrupted reference.
    let ref_dir = tmp.path().join("ref");
    std::fs::create_dir_all(&ref_dir).unwrap();
    let cfg = TrainConfig::load(&config(&ref_dir, &base, ""), &[]).unwrap();
    let never = AtomicBool::new(false);
    let s = run(&cfg, false, &never, &mut |_| {}).unwrap();
    assert_eq!(s.steps, 9, "3 epochs of ceil(10/4) steps");
    assert!(ref_dir.join("out/metrics.jsonl").is_file());
    assert!(ref_dir.join("out/loss.svg").is_file());
    assert!(ref_dir.join("out/train_config.toml").is_file());
    let want = adapter_values(&ref_dir.join("out/checkpoint"));

    // A second run into the finished run's folder is refused before it writes anything.
    let echo = std::fs::read(ref_dir.join("out/train_config.toml")).unwrap();
    let other =
        TrainConfig::load(&config(&ref_dir, &base, ""), &["optim.lr=5e-4".to_string()]).unwrap();
    let e = run(&other, false, &never, &mut |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("already holds a finished run")
            && e.contains("--resume")
            && e.contains("--overwrite"),
        "{e}"
    );
    assert_eq!(
        std::fs::read(ref_dir.join("out/train_config.toml")).unwrap(),
        echo
    );
    assert_eq!(adapter_values(&ref_dir.join("out/checkpoint")), want);

    // Ctrl-C in the middle of epoch 2, then --resume.
    let d2 = tmp.path().join("ctrlc");
    std::fs::create_dir_all(&d2).unwrap();
    let cfg2 = TrainConfig::load(&config(&d2, &base, ""), &[]).unwrap();
    let stop = AtomicBool::new(false);
    let s = run(&cfg2, false, &stop, &mut |e| {
        if let Event::Step(r) = e {
            if r.step == 4 {
                stop.store(true, Ordering::SeqCst);
            }
        }
    })
    .unwrap();
    assert!(s.interrupted);
    assert_eq!(s.steps, 4);
    let s = run(&cfg2, true, &never, &mut |_| {}).unwrap();
    assert_eq!(s.steps, 9);
    assert_eq!(adapter_values(&d2.join("out/checkpoint")), want);

    // Killed mid-epoch 2: only the end-of-epoch-1 checkpoint survives.
    let d3 = tmp.path().join("kill");
    std::fs::create_dir_all(&d3).unwrap();
    let cfg3 = TrainConfig::load(&config(&d3, &base, ""), &[]).unwrap();
    let stop3 = AtomicBool::new(false);
    let saved = d3.join("epoch1");
    run(&cfg3, false, &stop3, &mut |e| {
        if let Event::Step(r) = e {
            if r.step == 4 {
                // Copy the epoch-1 checkpoint aside, then "kill" after this step.
                copy_dir(&d3.join("out/checkpoint"), &saved);
                stop3.store(true, Ordering::SeqCst);
            }
        }
    })
    .unwrap();
    std::fs::remove_dir_all(d3.join("out/checkpoint")).unwrap();
    copy_dir(&saved, &d3.join("out/checkpoint"));
    let s = run(&cfg3, true, &never, &mut |_| {}).unwrap();
    assert_eq!(s.steps, 9);
    assert_eq!(adapter_values(&d3.join("out/checkpoint")), want);

    // Killed between the checkpoint swap's two renames (after Ctrl-C at step 4): the step-4
    // checkpoint complete as checkpoint.tmp, the epoch-1 one as checkpoint.old, no checkpoint.
    let d4 = tmp.path().join("swap");
    std::fs::create_dir_all(&d4).unwrap();
    let cfg4 = TrainConfig::load(&config(&d4, &base, ""), &[]).unwrap();
    let stop4 = AtomicBool::new(false);
    let epoch1 = d4.join("epoch1");
    run(&cfg4, false, &stop4, &mut |e| {
        if let Event::Step(r) = e {
            if r.step == 4 {
                copy_dir(&d4.join("out/checkpoint"), &epoch1);
                stop4.store(true, Ordering::SeqCst);
            }
        }
    })
    .unwrap();
    let out4 = d4.join("out");
    std::fs::rename(out4.join("checkpoint"), out4.join("checkpoint.tmp")).unwrap();
    copy_dir(&epoch1, &out4.join("checkpoint.old"));
    let mut first = None;
    let s = run(&cfg4, true, &never, &mut |e| {
        if let Event::Step(r) = e {
            first.get_or_insert(r.step);
        }
    })
    .unwrap();
    // it went on from the newer, step-4 checkpoint
    assert_eq!((first, s.steps), (Some(5), 9));
    assert_eq!(adapter_values(&out4.join("checkpoint")), want);
    // Only the previous one left: that one is used.
    let d5 = tmp.path().join("swap-old");
    std::fs::create_dir_all(&d5).unwrap();
    let cfg5 = TrainConfig::load(&config(&d5, &base, ""), &[]).unwrap();
    let stop5 = AtomicBool::new(false);
    run(&cfg5, false, &stop5, &mut |e| {
        if let Event::Step(r) = e {
            if r.step == 4 {
                stop5.store(true, Ordering::SeqCst);
            }
        }
    })
    .unwrap();
    std::fs::remove_dir_all(d5.join("out/checkpoint")).unwrap();
    copy_dir(&epoch1, &d5.join("out/checkpoint.old"));
    let mut first = None;
    let s = run(&cfg5, true, &never, &mut |e| {
        if let Event::Step(r) = e {
            first.get_or_insert(r.step);
        }
    })
    .unwrap();
    assert_eq!((first, s.steps), (Some(4), 9));
    assert_eq!(adapter_values(&d5.join("out/checkpoint")), want);
}

/// Copies the files (not the folders) of `a` into `b`.
fn copy_dir(a: &Path, b: &Path) {
    std::fs::create_dir_all(b).unwrap();
    for e in std::fs::read_dir(a).unwrap() {
        let e = e.unwrap();
        if e.path().is_file() {
            std::fs::copy(e.path(), b.join(e.file_name())).unwrap();
        }
    }
}

fn run_err(dir: &Path, base: &Path, extra: &str, tweak: impl Fn(&Path)) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let p = config(dir, base, extra);
    tweak(dir);
    let never = AtomicBool::new(false);
    match TrainConfig::load(&p, &[]).and_then(|c| run(&c, false, &never, &mut |_| {})) {
        Ok(_) => panic!("{}: expected an error", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_inputs_give_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(base) = tiny_with_real_tokenizer(tmp.path()) else {
        return;
    };
    let t = tmp.path();
    // A malformed JSONL line names file and line.
    let e = run_err(&t.join("a"), &base, "", |d| {
        let p = d.join("train.jsonl");
        let mut s = std::fs::read_to_string(&p).unwrap();
        s.push_str("{\"instruction\": \"x\", \"output\": \n");
        std::fs::write(&p, s).unwrap();
    });
    assert!(e.contains("train.jsonl:11"), "{e}");
    // Missing field.
    let e = run_err(&t.join("b"), &base, "", |d| {
        std::fs::write(d.join("train.jsonl"), "{\"instruction\": \"x\"}\n").unwrap();
    });
    assert!(e.contains("train.jsonl:1") && e.contains("output"), "{e}");
    // Empty answer.
    let e = run_err(&t.join("c"), &base, "", |d| {
        std::fs::write(
            d.join("train.jsonl"),
            "{\"instruction\": \"x\", \"input\": \"\", \"output\": \"\"}\n",
        )
        .unwrap();
    });
    assert!(e.contains("train.jsonl:1"), "{e}");
    // Unknown target module and r = 0 are configuration errors naming the key.
    let e = run_err(&t.join("d"), &base, "", |d| {
        let p = d.join("run.toml");
        let s = std::fs::read_to_string(&p)
            .unwrap()
            .replace("\"down_proj\"", "\"mlp_proj\"");
        std::fs::write(&p, s).unwrap();
    });
    assert!(
        e.contains("target_modules") && e.contains("mlp_proj"),
        "{e}"
    );
    let e = run_err(&t.join("e"), &base, "", |d| {
        let p = d.join("run.toml");
        let s = std::fs::read_to_string(&p)
            .unwrap()
            .replace("r = 4", "r = 0");
        std::fs::write(&p, s).unwrap();
    });
    assert!(e.contains("lora.r"), "{e}");
    // A resume folder made with another configuration.
    let d = t.join("f");
    std::fs::create_dir_all(&d).unwrap();
    let p = config(&d, &base, "");
    let never = AtomicBool::new(false);
    let stop = AtomicBool::new(true); // stop after the first step
    let c = TrainConfig::load(&p, &[]).unwrap();
    run(&c, false, &stop, &mut |_| {}).unwrap();
    let other = TrainConfig::load(&p, &["optim.lr=5e-4".to_string()]).unwrap();
    let e = run(&other, true, &never, &mut |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("another configuration") && e.contains("lr"),
        "{e}"
    );
    // The checkpoint is still there and the original config still resumes.
    assert!(d.join("out/checkpoint/state.json").is_file());
    run(&c, true, &never, &mut |_| {}).unwrap();
}

#[test]
fn a_finished_run_is_extended_by_resuming_with_more_epochs() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(base) = tiny_with_real_tokenizer(tmp.path()) else {
        return;
    };
    let d = tmp.path().join("ext");
    std::fs::create_dir_all(&d).unwrap();
    let p = config(&d, &base, "");
    let never = AtomicBool::new(false);
    let two = TrainConfig::load(&p, &["optim.epochs=2".to_string()]).unwrap();
    let s = run(&two, false, &never, &mut |_| {}).unwrap();
    assert_eq!((s.steps, s.epochs), (6, 2));
    let after_two = adapter_values(&d.join("out/checkpoint"));

    // Resuming with the same length trains nothing more.
    let s = run(&two, true, &never, &mut |_| {}).unwrap();
    assert_eq!(s.steps, 6);
    assert_eq!(adapter_values(&d.join("out/checkpoint")), after_two);

    // Fewer epochs than trained: refused, naming the key.
    let one = TrainConfig::load(&p, &["optim.epochs=1".to_string()]).unwrap();
    let e = run(&one, true, &never, &mut |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("optim.epochs") && e.contains("already trained 2"),
        "{e}"
    );

    // Two more epochs: steps 7..12 run from the checkpoint, the record keeps all four
    // epochs, and the run folder now says 4, so a later resume matches.
    let four = TrainConfig::load(&p, &["optim.epochs=4".to_string()]).unwrap();
    let mut steps = Vec::new();
    let s = run(&four, true, &never, &mut |e| {
        if let Event::Step(r) = e {
            steps.push((r.step, r.epoch));
        }
    })
    .unwrap();
    assert_eq!((s.steps, s.epochs), (12, 4));
    assert_eq!(steps.first(), Some(&(7, 3)));
    assert_eq!(steps.last(), Some(&(12, 4)));
    assert_ne!(adapter_values(&d.join("out/checkpoint")), after_two);
    let echo = std::fs::read_to_string(d.join("out/train_config.toml")).unwrap();
    assert!(echo.contains("epochs = 4"), "{echo}");
    let records = std::fs::read_to_string(d.join("out/metrics.jsonl")).unwrap();
    assert_eq!(
        records
            .lines()
            .filter(|l| l.contains("\"val_loss\""))
            .count(),
        4,
        "{records}"
    );
    // Any other change is still refused.
    let other = TrainConfig::load(&p, &["optim.epochs=5".into(), "optim.lr=5e-4".into()]).unwrap();
    let e = run(&other, true, &never, &mut |_| {})
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("another configuration") && e.contains("lr"),
        "{e}"
    );
}

/// An example longer than the model's context is skipped and counted like one longer than
/// `max_seq_len`, even when `max_seq_len` is larger than the context (issue 26).
#[test]
fn examples_longer_than_the_model_context_are_skipped_and_counted() {
    assert_eq!(hone_train::trainer::seq_limit(512, 256).0, 256);
    assert_eq!(hone_train::trainer::seq_limit(128, 256).0, 128);
    assert_eq!(hone_train::trainer::seq_limit(128, 0).0, 128);
    let tmp = tempfile::tempdir().unwrap();
    let Some(base) = tiny_with_real_tokenizer(tmp.path()) else {
        return;
    };
    let d = tmp.path().join("ctx");
    std::fs::create_dir_all(&d).unwrap();
    let p = config(&d, &base, "");
    // Two examples far over the tiny model's context (common::CTX tokens), at lines 11 and 12.
    let long = "The Receiving Party shall keep every item confidential. ".repeat(common::CTX);
    let mut s = std::fs::read_to_string(d.join("train.jsonl")).unwrap();
    for _ in 0..2 {
        s.push_str(
            &serde_json::json!({"instruction": "Classify.", "input": long, "output": "term"})
                .to_string(),
        );
        s.push('\n');
    }
    std::fs::write(d.join("train.jsonl"), s).unwrap();
    let cfg = TrainConfig::load(
        &p,
        &[
            format!("optim.max_seq_len={}", common::CTX * 100),
            "optim.epochs=1".to_string(),
        ],
    )
    .unwrap();
    let never = AtomicBool::new(false);
    let (mut examples, mut skipped, mut notes) = (0, 0, Vec::new());
    let sum = run(&cfg, false, &never, &mut |e| match e {
        Event::Start {
            examples: n,
            too_long,
            ..
        } => (examples, skipped) = (n, too_long),
        Event::Note(m) => notes.push(m),
        _ => {}
    })
    .unwrap();
    assert_eq!((examples, skipped, sum.too_long), (10, 2, 2));
    let want = format!(
        "skipped 2 training examples longer than the model's context of {} tokens",
        common::CTX
    );
    assert!(
        notes
            .iter()
            .any(|m| m.contains(&want) && m.contains("line 11")),
        "{notes:?}"
    );
}

#[test]
fn a_run_initialised_from_an_adapter_starts_at_that_adapters_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(base) = tiny_with_real_tokenizer(tmp.path()) else {
        return;
    };
    let never = AtomicBool::new(false);
    // The previous adapter: 3 epochs on the training data.
    let prev = tmp.path().join("prev");
    std::fs::create_dir_all(&prev).unwrap();
    let cfg = TrainConfig::load(&config(&prev, &base, ""), &[]).unwrap();
    run(&cfg, false, &never, &mut |_| {}).unwrap();
    let prev_out = prev.join("out");

    // One step over the whole training set (batch 10 of 10 examples), no dropout: its loss is
    // the loss of the starting adapter on exactly that data.
    let first_loss = |dir: &Path, init: Option<&Path>, extra: &[&str]| -> f64 {
        std::fs::create_dir_all(dir).unwrap();
        let mut sets: Vec<String> = ["lora.dropout=0", "optim.batch_size=10", "optim.epochs=1"]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect();
        if let Some(p) = init {
            sets.push(format!("lora.init={}", p.display()));
        }
        let cfg = TrainConfig::load(&config(dir, &base, ""), &sets).unwrap();
        let mut first = f64::NAN;
        run(&cfg, false, &never, &mut |e| {
            if let Event::Step(r) = e {
                if r.step == 1 {
                    first = r.loss;
                }
            }
        })
        .unwrap();
        first
    };
    let from_prev = first_loss(&tmp.path().join("next"), Some(&prev_out), &[]);
    let fresh = first_loss(&tmp.path().join("fresh"), None, &[]);

    // The previous adapter's loss on the same data, evaluated directly.
    let m = hone_train::trainer::load_base(&cfg).unwrap();
    let data = hone_train::dataset::load(&prev.join("train.jsonl"), &m.tokenizer, &m.template, 256)
        .unwrap();
    let a = load_adapter(&prev_out).unwrap();
    // In the precision the run used (`model.dtype`: bf16 where it beats f32 on this CPU).
    let l = hone_train::backprop::Backprop::new(&m.model, &a, 0.0)
        .with_bf16(cfg.model.dtype.use_bf16())
        .eval_loss(&data.seqs);
    let want = l.loss_sum / l.tokens as f64;
    println!(
        "first-step loss from the adapter {from_prev}, the adapter's loss {want}, fresh {fresh}"
    );
    assert!(
        (from_prev - want).abs() < 1e-4 * want,
        "first-step loss {from_prev} vs the adapter's loss {want}"
    );
    // a fresh start (B = 0) is the base model's loss, which the trained adapter had lowered
    assert!(fresh - want > 1e-2, "fresh {fresh} vs adapter {want}");
    // the effective configuration records where the run started
    let echo = std::fs::read_to_string(tmp.path().join("next/out/train_config.toml")).unwrap();
    assert!(
        echo.contains(&format!("init = \"{}\"", prev_out.display())),
        "{echo}"
    );

    // An adapter of another shape is refused, naming the key.
    let bad = |set: &str| {
        let d = tmp.path().join(format!("bad-{}", set.len()));
        std::fs::create_dir_all(&d).unwrap();
        let sets = [set.to_string(), format!("lora.init={}", prev_out.display())];
        let cfg = TrainConfig::load(&config(&d, &base, ""), &sets).unwrap();
        run(&cfg, false, &never, &mut |_| {})
            .unwrap_err()
            .to_string()
    };
    let e = bad("lora.r=8");
    assert!(
        e.contains("`lora.r`") && e.contains("r = 4, this run r = 8") && e.contains("prev/out"),
        "{e}"
    );
    let e = bad("lora.target_modules=[\"q_proj\"]");
    assert!(e.contains("`lora.target_modules`"), "{e}");
    let e = bad("lora.alpha=4");
    assert!(e.contains("`lora.alpha`"), "{e}");
}

/// A run whose estimated memory (activations of a huge batch of long sequences here) exceeds
/// what is available is refused before it allocates or writes anything, naming the settings;
/// the same data with a small batch fits the same memory and trains.
#[test]
fn a_run_that_cannot_fit_in_memory_is_refused_before_it_starts() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(base) = tiny_with_real_tokenizer(tmp.path()) else {
        return;
    };
    let d = tmp.path().join("mem");
    std::fs::create_dir_all(&d).unwrap();
    let p = config(&d, &base, "");
    // 64 examples of about 200 tokens each.
    let long = "The Receiving Party shall keep every item confidential. ".repeat(18);
    let mut s = String::new();
    for i in 0..64 {
        s.push_str(
            &serde_json::json!({"instruction": format!("Classify {i}."), "input": long, "output": "term"})
                .to_string(),
        );
        s.push('\n');
    }
    std::fs::write(d.join("train.jsonl"), s).unwrap();
    let available = Some(64 * 1024 * 1024);
    let never = AtomicBool::new(false);
    let big = TrainConfig::load(
        &p,
        &[
            "optim.batch_size=64".to_string(),
            "optim.epochs=1".to_string(),
        ],
    )
    .unwrap();
    let e = run_with_memory(&big, false, &never, &mut |_| {}, available)
        .expect_err("refused")
        .to_string();
    for want in [
        "run.toml",
        "not enough memory",
        "64.0 MiB is available",
        "optim.batch_size = 64",
        "optim.max_seq_len = 256",
        "lora.r = 4",
    ] {
        assert!(e.contains(want), "`{want}` in: {e}");
    }
    assert!(!d.join("out").exists(), "nothing written");

    let small = TrainConfig::load(
        &p,
        &[
            "optim.batch_size=2".to_string(),
            "optim.epochs=1".to_string(),
        ],
    )
    .unwrap();
    let s = run_with_memory(&small, false, &never, &mut |_| {}, available).unwrap();
    assert_eq!(s.steps, 32);
}

/// `train.keep`: a run that starts from an adapter fitted to the validation answers and then
/// learns another answer has its lowest validation loss after the first epoch;
/// `patience = 0` still runs every epoch, "best" keeps the first epoch's adapter and "last" the
/// last one's (the checkpoint's).
#[test]
fn keep_last_keeps_the_last_epoch_and_patience_zero_runs_them_all() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(base) = tiny_with_real_tokenizer(tmp.path()) else {
        return;
    };
    let never = AtomicBool::new(false);
    // Every validation answer is one word, every training answer the other.
    let clauses = std::fs::read_to_string({
        let d = tmp.path().join("data");
        std::fs::create_dir_all(&d).unwrap();
        config(&d, &base, "");
        d.join("train.jsonl")
    })
    .unwrap();
    let answers = clauses.replace("\"term\"", "\"confidentiality\"");
    let swapped = clauses.replace("\"confidentiality\"", "\"term\"");
    // An adapter that gives the validation answers.
    let fit = tmp.path().join("fit");
    std::fs::create_dir_all(&fit).unwrap();
    let cfg = TrainConfig::load(
        &config(&fit, &base, ""),
        &["optim.lr=1e-2".into(), "optim.epochs=4".into()],
    )
    .unwrap();
    std::fs::write(fit.join("train.jsonl"), &answers).unwrap();
    run(&cfg, false, &never, &mut |_| {}).unwrap();
    let mut adapters = Vec::new();
    for keep in ["best", "last"] {
        let d = tmp.path().join(keep);
        std::fs::create_dir_all(&d).unwrap();
        let p = config(&d, &base, "");
        // train on the swapped answers, validate on the ones the start adapter gives
        std::fs::write(d.join("train.jsonl"), &swapped).unwrap();
        std::fs::write(d.join("val.jsonl"), &answers).unwrap();
        let cfg = TrainConfig::load(
            &p,
            &[
                "optim.patience=0".into(),
                "optim.lr=1e-2".into(),
                format!("lora.init={}", fit.join("out").display()),
                format!("train.keep={keep}"),
            ],
        )
        .unwrap();
        let s = run(&cfg, false, &never, &mut |_| {}).unwrap();
        assert_eq!((s.epochs, s.early_stopped), (3, false), "{keep}");
        let records = std::fs::read_to_string(d.join("out/metrics.jsonl")).unwrap();
        let val: Vec<f64> = records
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["val_loss"].as_f64())
            .collect();
        assert!(
            val.len() == 3 && val[0] < val[1] && val[1] < val[2],
            "{records}"
        );
        let kept = adapter_values(&d.join("out"));
        let last = adapter_values(&d.join("out/checkpoint"));
        assert_eq!(kept == last, keep == "last", "{keep}");
        adapters.push(kept);
    }
    assert_ne!(adapters[0], adapters[1]);
}

/// `train.fast` caches the hidden states below the first adapted layer, for the training and
/// the validation windows: the run learns and validates exactly as without the cache.
#[test]
fn the_fast_mode_trains_and_validates_as_the_full_pass_does() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(base) = tiny_with_real_tokenizer(tmp.path()) else {
        return;
    };
    let never = AtomicBool::new(false);
    let mut runs = Vec::new();
    for fast in [false, true] {
        let d = tmp.path().join(format!("fast-{fast}"));
        std::fs::create_dir_all(&d).unwrap();
        let extra = format!("[train]\nfast = {fast}\ntop_layers = 1\n");
        let cfg = TrainConfig::load(&config(&d, &base, &extra), &[]).unwrap();
        run(&cfg, false, &never, &mut |_| {}).unwrap();
        let records = std::fs::read_to_string(d.join("out/metrics.jsonl")).unwrap();
        let val: Vec<f64> = records
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["val_loss"].as_f64())
            .collect();
        assert_eq!(val.len(), 3, "{records}");
        runs.push((val, adapter_values(&d.join("out"))));
    }
    let ((val_full, a_full), (val_fast, a_fast)) = (&runs[0], &runs[1]);
    for (a, b) in val_full.iter().zip(val_fast) {
        assert!(
            (a - b).abs() < 1e-5 * a.abs(),
            "{val_full:?} vs {val_fast:?}"
        );
    }
    // the run trained (the validation loss moved) and both runs moved the same weights
    assert!((val_full[0] - val_full[2]).abs() > 1e-4, "{val_full:?}");
    let scale = a_full.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = a_full
        .iter()
        .zip(a_fast)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(worst < 1e-4 * scale, "max |diff| {worst} of {scale}");
}
