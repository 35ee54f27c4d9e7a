//! Acceptance 4 of the training issue: an adapter saved by hone loads in Python PEFT
//! (`PeftModel.from_pretrained`) over the same base in Hugging Face format and gives the same
//! logits as hone (base + `attach`), within 1e-3 relative.
//!
//! Needs the venv and the fp32 HF copy of SmolLM2 made by `../shared/bench/peers/setup.sh`
//! (`$PEERS_DIR`, default `~/.cache/hone-peers`: `hf-venv/bin/python` with torch, transformers
//! and peft, and `models/smollm2-135m-instruct-f32`). Without them it prints why and passes.
//! Run: `cargo test -p hone-train --test peft_interop -- --nocapture`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use hone_model::chat_template::Message;
use hone_model::peft::{save_adapter, AdapterExtra};
use hone_model::{LoadOptions, LoadedModel};

/// Loads the fp32 model and each adapter with transformers + PEFT and writes the logits of the
/// token ids as little-endian f32 to `<adapter>/peft_logits.f32`; also makes and saves an
/// adapter with PEFT itself (random A and B, 3 modules in layers 0, 5, 29) in `made`, with its
/// logits, for the reverse direction.
const SCRIPT: &str = r#"
import json, sys
import torch
from transformers import AutoModelForCausalLM
from peft import PeftModel

torch.set_num_threads(2)
base_dir, tokens, made, adapters = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4:]
ids = torch.tensor([tokens])

# An adapter made and saved by PEFT itself (random A and B), for hone to read.
from peft import LoraConfig, get_peft_model
torch.manual_seed(0)
base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
cfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "gate_proj"],
                 layers_to_transform=[0, 5, 29], init_lora_weights=False, task_type="CAUSAL_LM")
model = get_peft_model(base, cfg)
with torch.no_grad():
    for n, p in model.named_parameters():
        if "lora_B" in n:
            p.mul_(0.1)
model.save_pretrained(made)
model.eval()
with torch.no_grad():
    logits = model(ids).logits[0].float()
with open(made + "/peft_logits.f32", "wb") as f:
    f.write(logits.contiguous().numpy().astype("<f4").tobytes())

for adapter in adapters:
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, adapter)
    model.eval()
    n_lora = sum(1 for n, _ in model.named_modules() if n.endswith("lora_A.default"))
    with torch.no_grad():
        logits = model(ids).logits[0].float()
        with model.disable_adapter():
            plain = model(ids).logits[0].float()
    effect = ((logits - plain).abs().max() / plain.abs().max()).item()
    with open(adapter + "/peft_logits.f32", "wb") as f:
        f.write(logits.contiguous().numpy().astype("<f4").tobytes())
    print(json.dumps({"adapter": adapter, "lora_modules": n_lora, "shape": list(logits.shape),
                      "effect": effect}), flush=True)
"#;

fn peers_dir() -> PathBuf {
    std::env::var("PEERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/hone-peers")
        })
}

/// hone's view of the HF folder. transformers >= 5 writes `rope_parameters.rope_theta`
/// instead of `rope_theta`; if hone's config reader does not know that key yet, the test
/// reads the model through a copy of `config.json` with `rope_theta` added (weights and
/// tokenizer linked, not copied).
fn hone_folder(hf: &Path, tmp: &Path) -> PathBuf {
    let text = std::fs::read_to_string(hf.join("config.json")).unwrap();
    let mut cfg: serde_json::Value = serde_json::from_str(&text).unwrap();
    let theta = cfg
        .get("rope_parameters")
        .and_then(|r| r.get("rope_theta"))
        .cloned();
    let (Some(theta), None) = (theta, cfg.get("rope_theta")) else {
        return hf.to_path_buf();
    };
    let loaded = hone_model::config::ModelConfig::from_hf_json(&hf.join("config.json")).unwrap();
    if Some(loaded.rope_theta) == theta.as_f64() {
        return hf.to_path_buf();
    }
    eprintln!(
        "note: hone's config reader took rope_theta = {} from {} (which has only \
         rope_parameters.rope_theta = {theta}); reading it through a patched config.json",
        loaded.rope_theta,
        hf.display()
    );
    let dir = tmp.join("hf-view");
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(hf).unwrap() {
        let e = e.unwrap();
        if e.file_name() != "config.json" {
            std::os::unix::fs::symlink(e.path(), dir.join(e.file_name())).unwrap();
        }
    }
    cfg["rope_theta"] = theta;
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    dir
}

struct Case {
    name: &'static str,
    r: usize,
    alpha: f32,
    targets: &'static [&'static str],
    layers: std::ops::Range<usize>,
}

#[test]
fn hone_adapter_loads_in_python_peft_with_the_same_logits() {
    let peers = peers_dir();
    let python = peers.join("hf-venv/bin/python");
    let hf = peers.join("models/smollm2-135m-instruct-f32");
    if !python.is_file() || !hf.join("config.json").is_file() {
        eprintln!(
            "SKIP peft_interop: needs {} and {} (run `bash ../shared/bench/peers/setup.sh`, \
             or set PEERS_DIR)",
            python.display(),
            hf.display()
        );
        return;
    }
    let ok = Command::new(&python)
        .args(["-c", "import torch, transformers, peft"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!(
            "SKIP peft_interop: {} cannot import torch, transformers and peft",
            python.display()
        );
        return;
    }

    let tmp = tempfile::tempdir().unwrap();
    let folder = hone_folder(&hf, tmp.path());
    let m = LoadedModel::load(folder.to_str().unwrap(), &LoadOptions::default()).unwrap();
    let n = m.model.layers.len();
    let text = m
        .template
        .render(
            &[Message::user(
                "Summarise the confidentiality clause in one sentence.",
            )],
            true,
        )
        .unwrap();
    let toks = m.tokenizer.encode(&text, true).unwrap();
    let plain = m.model.logits_all(&toks).unwrap();

    let cases = [
        Case {
            name: "qkvo-all-layers",
            r: 16,
            alpha: 32.0,
            targets: &["q_proj", "k_proj", "v_proj", "o_proj"],
            layers: 0..n,
        },
        Case {
            name: "all-linear-top-8",
            r: 8,
            alpha: 16.0,
            targets: &hone_model::llama::MODULES,
            layers: n - 8..n,
        },
    ];
    let mut dirs = Vec::new();
    let mut adapters = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let layers: Vec<usize> = c.layers.clone().collect();
        let a = random_adapter(
            &m.model,
            c.r,
            c.alpha,
            c.targets,
            &layers,
            100 + i as u64,
            0.02,
        );
        let dir = tmp.path().join(c.name);
        save_adapter(
            &dir,
            &a,
            hf.to_str().unwrap(),
            &AdapterExtra {
                n_layers: Some(n),
                lora_dropout: 0.05,
                ..Default::default()
            },
        )
        .unwrap();
        dirs.push(dir);
        adapters.push(a);
    }

    let made = tmp.path().join("made-by-peft");
    let out = Command::new(&python)
        .arg("-c")
        .arg(SCRIPT)
        .arg(&hf)
        .arg(serde_json::to_string(&toks).unwrap())
        .arg(&made)
        .args(&dirs)
        .env("TRANSFORMERS_VERBOSITY", "error")
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(reports.len(), cases.len(), "{stdout}");

    for (((c, a), dir), rep) in cases.iter().zip(&adapters).zip(&dirs).zip(&reports) {
        // PEFT wrapped exactly the modules the adapter has.
        assert_eq!(
            rep["lora_modules"].as_u64().unwrap() as usize,
            a.modules.len(),
            "{}: {rep}",
            c.name
        );
        let theirs = read_f32(&dir.join("peft_logits.f32"));
        let mut with = LoadedModel::load(folder.to_str().unwrap(), &LoadOptions::default())
            .unwrap()
            .model;
        with.attach_adapter(a).unwrap();
        let ours = with.logits_all(&toks).unwrap();
        assert_eq!(theirs.len(), ours.len(), "{}", c.name);
        let diff = max_rel_diff(&ours, &theirs);
        let effect = max_rel_diff(&plain, &ours);
        eprintln!(
            "peft_interop {}: {} tokens x {} vocab, {} LoRA modules (r {}, alpha {}): \
             hone vs PEFT max |diff| / max |logit| = {diff:.2e}; adapter effect {effect:.2e} \
             (PEFT's own: {:.2e})",
            c.name,
            toks.len(),
            m.model.vocab_size(),
            a.modules.len(),
            c.r,
            c.alpha,
            rep["effect"].as_f64().unwrap()
        );
        assert!(
            effect > 1e-2,
            "{}: the adapter should change the logits",
            c.name
        );
        assert!(
            diff < 1e-3,
            "{}: hone vs PEFT logits differ by {diff}",
            c.name
        );
    }

    // The other direction: an adapter saved by PEFT, read by hone.
    let theirs = read_f32(&made.join("peft_logits.f32"));
    let a = hone_model::load_adapter(&made).unwrap();
    assert_eq!(a.spec.layers, [0, 5, 29]);
    assert_eq!(a.spec.target_modules, ["q_proj", "v_proj", "gate_proj"]);
    assert_eq!((a.spec.r, a.scale()), (4, 2.0));
    let mut with = LoadedModel::load(folder.to_str().unwrap(), &LoadOptions::default())
        .unwrap()
        .model;
    with.attach_adapter(&a).unwrap();
    let ours = with.logits_all(&toks).unwrap();
    let diff = max_rel_diff(&ours, &theirs);
    let effect = max_rel_diff(&plain, &ours);
    eprintln!(
        "peft_interop made-by-peft: {} LoRA modules read by hone: hone vs PEFT {diff:.2e}; \
         adapter effect {effect:.2e}",
        a.modules.len()
    );
    assert!(effect > 1e-2, "the PEFT adapter should change the logits");
    assert!(
        diff < 1e-3,
        "PEFT-saved adapter: hone vs PEFT logits differ by {diff}"
    );
}

fn read_f32(p: &Path) -> Vec<f32> {
    std::fs::read(p)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}
