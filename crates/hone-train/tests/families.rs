//! Training on every model family (llama, mistral, qwen2, qwen3, phi3), on the tiny
//! transformers checkpoints of `hone-model/tests/fixtures/families/` (made by
//! `scripts/fixtures/families.py`):
//!
//! - the LoRA gradients of every module equal central differences of the loss, per module and
//!   matrix, with sequences longer than Mistral's 16-token window, through Qwen3's q/k norms,
//!   Qwen2's biases and Phi-3's split projections and LongRoPE;
//! - the loss mask of a chat example covers exactly the assistant contents and their
//!   end-of-turn markers;
//! - an adapter trained by hone, saved in the base's PEFT names, gives hone's logits in Python
//!   PEFT (when the fixture venv is present; otherwise the test says why it skips that part).

use std::path::{Path, PathBuf};
use std::process::Command;

use hone_data::example::Example;
use hone_model::chat_template::Message;
use hone_model::llama::MODULES;
use hone_model::lora::{LoraAdapter, LoraSpec};
use hone_model::peft::{save_adapter, AdapterExtra, FusedRows};
use hone_model::{LoadOptions, LoadedModel, WeightMode};
use hone_train::backprop::{Backprop, LoraGrads, TrainSeq};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

const FAMILIES: [&str; 6] = ["llama", "mistral", "qwen2", "qwen3", "phi3", "gemma3"];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../hone-model/tests/fixtures/families")
}

fn load(family: &str) -> LoadedModel {
    LoadedModel::load_hf(
        &fixtures().join(family),
        &LoadOptions {
            weights: WeightMode::F32,
        },
    )
    .unwrap_or_else(|e| panic!("{family}: {e}"))
}

fn reference(family: &str) -> Value {
    let p = fixtures().join(family).join("reference.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn tokens(family: &str) -> Vec<u32> {
    reference(family)["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect()
}

/// Every module of every layer, B drawn at random so that A's gradients are not zero.
fn adapter(m: &LoadedModel, seed: u64) -> LoraAdapter {
    let mut rng = StdRng::seed_from_u64(seed);
    let spec = LoraSpec {
        r: 4,
        alpha: 8.0,
        target_modules: MODULES.iter().map(|s| s.to_string()).collect(),
        layers: (0..m.model.layers.len()).collect(),
    };
    let mut a = m.model.init_adapter(spec, &mut rng).unwrap();
    for lm in a.modules.values_mut() {
        lm.b.iter_mut().for_each(|v| *v = rng.gen_range(-0.2..0.2));
    }
    a
}

/// Two sequences of the fixture's tokens (48 and 40 long: past Mistral's 16-token window),
/// loss on most positions.
fn batch(family: &str) -> Vec<TrainSeq> {
    let t = tokens(family);
    let a = t.clone();
    let b: Vec<u32> = t[8..].iter().rev().copied().collect();
    let mask = |n: usize| (0..n).map(|i| i >= 2).collect::<Vec<_>>();
    vec![
        TrainSeq::causal(a.clone(), &mask(a.len())),
        TrainSeq::causal(b.clone(), &mask(b.len())),
    ]
}

fn loss(m: &LoadedModel, a: &LoraAdapter, b: &[TrainSeq]) -> f64 {
    Backprop::new(&m.model, a, 0.0).eval_loss(b).loss_sum
}

#[test]
fn lora_gradients_equal_finite_differences_for_every_family() {
    for family in FAMILIES {
        let m = load(family);
        let ad = adapter(&m, 11);
        let b = batch(family);
        let mut grads = LoraGrads::zeros(&ad);
        let step = Backprop::new(&m.model, &ad, 0.0).step(&b, None, 1.0, 0, &mut grads);
        let l0 = loss(&m, &ad, &b);
        assert!(
            ((step.loss_sum - l0) / l0).abs() < 1e-5,
            "{family}: training loss {} vs evaluation loss {l0}",
            step.loss_sum
        );
        // Per module and matrix, the derivative of the loss along the (unit) gradient must be
        // the gradient's norm, and along a random unit direction its projection: central
        // differences with one Richardson step, in f32 forward passes (their rounding, about
        // 1e-4 of the loss over these 86 tokens, sets the absolute floor).
        let mut rng = StdRng::seed_from_u64(3);
        let keys: Vec<_> = ad.modules.keys().cloned().collect();
        let mut worst = 0f64;
        for (mi, key) in keys.iter().enumerate() {
            for which in ['A', 'B'] {
                let g: Vec<f64> = match which {
                    'A' => &grads.a[mi],
                    _ => &grads.b[mi],
                }
                .iter()
                .map(|&x| x as f64)
                .collect();
                let norm = g.iter().map(|x| x * x).sum::<f64>().sqrt();
                let random: Vec<f64> = (0..g.len()).map(|_| rng.gen_range(-1.0..1.0)).collect();
                let rn = random.iter().map(|x| x * x).sum::<f64>().sqrt();
                for (dir_name, v) in [
                    ("gradient", g.iter().map(|x| x / norm).collect::<Vec<f64>>()),
                    ("random", random.iter().map(|x| x / rn).collect()),
                ] {
                    let analytic: f64 = g.iter().zip(&v).map(|(g, v)| g * v).sum();
                    let at = |h: f64| {
                        let mut a = ad.clone();
                        let lm = a.modules.get_mut(key).unwrap();
                        let w = if which == 'A' { &mut lm.a } else { &mut lm.b };
                        w.iter_mut().zip(&v).for_each(|(w, v)| *w += (h * v) as f32);
                        loss(&m, &a, &b)
                    };
                    let fd = |h: f64| (at(h) - at(-h)) / (2.0 * h);
                    let h = 2e-2;
                    let rich = (4.0 * fd(h / 2.0) - fd(h)) / 3.0;
                    let err = (analytic - rich).abs();
                    let tol = 2e-3 * norm + 2e-4;
                    worst = worst.max(err / (norm + 0.1));
                    assert!(
                        err <= tol,
                        "{family} layer {} {} {which} along the {dir_name} direction: analytic \
                         {analytic:e} vs finite difference {rich:e} (|grad| {norm:e})",
                        key.0,
                        key.1
                    );
                }
            }
        }
        println!(
            "{family}: {} directional derivatives checked, worst error {worst:.1e} of |grad|",
            4 * keys.len()
        );
    }
}

#[test]
fn the_loss_mask_is_exactly_the_assistant_turns() {
    for family in FAMILIES {
        let m = load(family);
        let chat: Value = serde_json::from_str(
            &std::fs::read_to_string(fixtures().join(family).join("chat.json")).unwrap(),
        )
        .unwrap();
        let messages: Vec<Message> = chat["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| Message::new(x["role"].as_str().unwrap(), x["content"].as_str().unwrap()))
            .collect();
        let ex = Example {
            id: None,
            group: None,
            label: None,
            messages,
        };
        let (ids, mask) = hone_train::dataset::tokenize(&m.tokenizer, &m.template, &ex).unwrap();
        let rendered = chat["rendered"].as_str().unwrap();
        let chars: Vec<char> = rendered.chars().collect();
        let want: String = chat["assistant_spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let (a, b) = (
                    s[0].as_u64().unwrap() as usize,
                    s[1].as_u64().unwrap() as usize,
                );
                chars[a..b].iter().collect::<String>()
            })
            .collect();
        let kept: Vec<u32> = ids
            .iter()
            .zip(&mask)
            .filter(|(_, &on)| on)
            .map(|(&t, _)| t)
            .collect();
        let got = m.tokenizer.decode(&kept, false).unwrap();
        assert_eq!(
            got, want,
            "{family}: the masked tokens spell the assistant turns"
        );
        assert!(
            mask.iter().any(|&x| !x),
            "{family}: the prompt carries no loss"
        );
    }
}

/// A Python with torch, transformers and PEFT: `$HONE_FIXTURE_PYTHON`, or the venv that
/// `scripts/fixtures/make-family-fixtures.sh` makes.
fn fixture_python() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("HONE_FIXTURE_PYTHON") {
        return Ok(PathBuf::from(p));
    }
    let venv = std::env::var_os("FIXTURE_VENV")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/hone-fixture-venv"))
        })
        .ok_or("no HOME")?;
    let py = venv.join("bin/python");
    if py.is_file() {
        Ok(py)
    } else {
        Err(format!(
            "no fixture Python ({py:?} missing; run scripts/fixtures/make-family-fixtures.sh or set HONE_FIXTURE_PYTHON)"
        ))
    }
}

#[test]
fn adapters_trained_by_hone_give_the_same_logits_in_peft() {
    let py = match fixture_python() {
        Ok(p) => p,
        Err(why) => {
            println!("skipped the PEFT side: {why}");
            return;
        }
    };
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/fixtures/check_peft_adapter.py");
    for family in FAMILIES {
        let mut m = load(family);
        // A few plain gradient steps from a fresh adapter (B = 0): trained by hone.
        let mut rng = StdRng::seed_from_u64(7);
        let spec = LoraSpec {
            r: 4,
            alpha: 8.0,
            target_modules: MODULES.iter().map(|s| s.to_string()).collect(),
            layers: (0..m.model.layers.len()).collect(),
        };
        let mut ad = m.model.init_adapter(spec, &mut rng).unwrap();
        let b = batch(family);
        for _ in 0..5 {
            let mut g = LoraGrads::zeros(&ad);
            Backprop::new(&m.model, &ad, 0.0).step(&b, None, 1.0, 0, &mut g);
            for (i, lm) in ad.modules.values_mut().enumerate() {
                lm.a.iter_mut()
                    .zip(&g.a[i])
                    .for_each(|(w, d)| *w -= 0.02 * d);
                lm.b.iter_mut()
                    .zip(&g.b[i])
                    .for_each(|(w, d)| *w -= 0.02 * d);
            }
        }
        let tmp = tempfile::tempdir().unwrap();
        let adir = tmp.path().join("adapter");
        let extra = AdapterExtra {
            fused: FusedRows::of(&m.model.config),
            n_layers: Some(m.model.layers.len()),
            ..Default::default()
        };
        save_adapter(&adir, &ad, family, &extra).unwrap();
        let toks = tokens(family);
        let plain = m.model.logits_all(&toks).unwrap();
        m.model.attach_adapter(&ad).unwrap();
        let ours = m.model.logits_all(&toks).unwrap();
        let out = tmp.path().join("peft.f32");
        let run = Command::new(&py)
            .arg(&script)
            .arg(fixtures().join(family))
            .arg(&adir)
            .arg(&out)
            .output()
            .expect("run the fixture Python");
        assert!(
            run.status.success(),
            "{family}: PEFT failed: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let theirs: Vec<f32> = std::fs::read(&out)
            .unwrap()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(theirs.len(), ours.len());
        let diff = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let moved = ours
            .iter()
            .zip(&plain)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        println!(
            "{family}: hone-trained adapter in PEFT, max |logit diff| {diff:.2e} (training moved logits by up to {moved:.2}); {}",
            String::from_utf8_lossy(&run.stdout).trim()
        );
        assert!(moved > 1e-2, "{family}: training did not change the model");
        assert!(
            diff <= 1e-3,
            "{family}: PEFT's logits differ from hone's by {diff:e}"
        );
    }
}

/// PyTorch's f32 autograd gradients of the fixture's loss (`reference.json` `train`) with
/// respect to the fixture's PEFT adapter, by PEFT tensor name.
fn torch_grads(family: &str) -> std::collections::HashMap<String, Vec<f32>> {
    let r = reference(family);
    let p = fixtures()
        .join(family)
        .join(r["train"]["grads"].as_str().unwrap());
    let bytes = std::fs::read(&p).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(n, v)| {
            let f: Vec<f32> = v
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            (n, f)
        })
        .collect()
}

#[test]
fn lora_gradients_equal_pytorch_autograd_for_every_family() {
    for family in FAMILIES {
        let r = reference(family);
        let m = load(family);
        let adir = fixtures()
            .join(family)
            .join(r["adapter"]["dir"].as_str().unwrap());
        let ad = hone_model::load_adapter(&adir).unwrap();
        let seqs: Vec<TrainSeq> = r["train"]["sequences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let ids: Vec<u32> = s
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap() as u32)
                    .collect();
                let from = r["train"]["loss_from"].as_u64().unwrap() as usize;
                let mask: Vec<bool> = (0..ids.len()).map(|i| i >= from).collect();
                TrainSeq::causal(ids, &mask)
            })
            .collect();
        let mut grads = LoraGrads::zeros(&ad);
        let step = Backprop::new(&m.model, &ad, 0.0).step(&seqs, None, 1.0, 0, &mut grads);
        let want_loss = r["train"]["loss_sum"].as_f64().unwrap();
        assert!(
            ((step.loss_sum - want_loss) / want_loss).abs() < 1e-6,
            "{family}: loss {} vs PyTorch {want_loss}",
            step.loss_sum
        );
        // hone's modules by PEFT name: a fused module's A is shared by its parts (gradients
        // add up), its B stacks theirs by rows.
        let is_fused = m.model.config.fused_projections();
        let fused = |name: &str| -> String {
            match name {
                "q_proj" | "k_proj" | "v_proj" if is_fused => "qkv_proj".into(),
                "gate_proj" | "up_proj" if is_fused => "gate_up_proj".into(),
                other => other.into(),
            }
        };
        let mut ours: std::collections::BTreeMap<String, Vec<f32>> = Default::default();
        let keys: Vec<_> = ad.modules.keys().cloned().collect();
        // Parts in their row order within the fused B (q, k, v; gate, up).
        let order = |n: &str| MODULES.iter().position(|m| *m == n).unwrap();
        let mut idx: Vec<usize> = (0..keys.len()).collect();
        idx.sort_by_key(|&i| (keys[i].0, order(&keys[i].1)));
        for i in idx {
            let (l, name) = &keys[i];
            let fname = fused(name);
            let key = |w: char| hone_model::peft::peft_key(*l, &fname, w);
            let a = ours
                .entry(key('A'))
                .or_insert_with(|| vec![0.0; grads.a[i].len()]);
            a.iter_mut().zip(&grads.a[i]).for_each(|(x, g)| *x += g);
            ours.entry(key('B'))
                .or_default()
                .extend_from_slice(&grads.b[i]);
        }
        let theirs = torch_grads(family);
        assert_eq!(ours.len(), theirs.len(), "{family}: gradient tensors");
        let mut worst = 0f32;
        for (name, g) in &ours {
            let t = theirs
                .get(name)
                .unwrap_or_else(|| panic!("{family}: PyTorch has no gradient for {name}"));
            assert_eq!(g.len(), t.len(), "{family} {name}");
            let scale = t.iter().map(|v| v.abs()).fold(0f32, f32::max);
            let d = g
                .iter()
                .zip(t)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            worst = worst.max(d / scale);
            assert!(
                d <= 1e-4 * scale,
                "{family} {name}: gradient differs from PyTorch's by {d:e} (largest entry {scale:e})"
            );
        }
        println!("{family}: {} LoRA gradient tensors equal PyTorch's, worst max|diff| / max|grad| {worst:.1e}", ours.len());
    }
}

#[test]
fn hone_train_runs_on_every_family_and_writes_the_bases_peft_names() {
    use hone_train::trainer::run;
    use hone_train::TrainConfig;
    use std::sync::atomic::AtomicBool;
    let tmp = tempfile::tempdir().unwrap();
    let mut data = String::new();
    for i in 0..6 {
        let ex = serde_json::json!({"messages": [
            {"role": "user", "content": format!("Is clause {i} about confidentiality?")},
            {"role": "assistant", "content": if i % 2 == 0 { "Yes." } else { "No, it sets the term." }},
        ]});
        data.push_str(&ex.to_string());
        data.push('\n');
    }
    std::fs::write(tmp.path().join("train.jsonl"), &data).unwrap();
    for family in FAMILIES {
        let dir = tmp.path().join(family);
        std::fs::create_dir_all(&dir).unwrap();
        let toml = format!(
            "[model]\nbase = \"{}\"\n[lora]\nr = 4\nalpha = 8\n\
             target_modules = [\"q_proj\", \"k_proj\", \"v_proj\", \"o_proj\", \"gate_proj\", \"up_proj\", \"down_proj\"]\n\
             [optim]\nlr = 1e-2\nepochs = 2\nbatch_size = 3\ngrad_accum = 1\nmax_seq_len = 128\n\
             [train]\nkeep = \"last\"\n[data]\ntrain = \"{}\"\nvalidation = \"{}\"\n[output]\ndir = \"{}\"\n",
            fixtures().join(family).display(),
            tmp.path().join("train.jsonl").display(),
            tmp.path().join("train.jsonl").display(),
            dir.join("out").display()
        );
        let p = dir.join("run.toml");
        std::fs::write(&p, toml).unwrap();
        let cfg = TrainConfig::load(&p, &[]).unwrap();
        let never = AtomicBool::new(false);
        let s = run(&cfg, false, &never, &mut |_| {}).unwrap_or_else(|e| panic!("{family}: {e}"));
        assert_eq!(s.steps, 4, "{family}: 2 epochs of 2 steps");
        let written: Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join("out/adapter_config.json")).unwrap(),
        )
        .unwrap();
        let want = if family == "phi3" {
            serde_json::json!(["qkv_proj", "o_proj", "gate_up_proj", "down_proj"])
        } else {
            serde_json::json!(MODULES)
        };
        assert_eq!(written["target_modules"], want, "{family}");
        // The adapter in the base's names and the checkpoint in hone's give the same model.
        let toks = tokens(family);
        let logits = |adapter: &Path| {
            let mut m = load(family);
            let a = hone_model::load_adapter(adapter).unwrap();
            m.model.attach_adapter(&a).unwrap();
            m.model.logits_all(&toks).unwrap()
        };
        let (a, b) = (
            logits(&dir.join("out")),
            logits(&dir.join("out/checkpoint")),
        );
        let d = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(d < 1e-4, "{family}: adapter and checkpoint differ by {d}");
    }
}
