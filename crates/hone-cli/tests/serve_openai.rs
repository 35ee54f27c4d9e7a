//! The official `openai` Python client drives `hone serve` (tests/python/openai_client.py):
//! chat and legacy completions, streaming (deltas equal the greedy answer; usage with
//! `stream_options`), `json_schema` and `json_object` output, logprobs, the model list with an
//! adapter, an adapter that changes the answer, and the client's exception classes for errors.
//!
//! The client is found through `HONE_OPENAI_PYTHON` (a Python with `openai` installed;
//! scripts/test makes a venv for it) or a `python3` that imports `openai`. Without one the test
//! is skipped with the reason, unless `HONE_REQUIRE_OPENAI=1` (scripts/test sets it), where a
//! missing client fails it.

mod serve_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use hone_model::llama::MODULES;
use hone_model::lora::{LoraAdapter, LoraModule, LoraSpec};
use hone_model::{LoadOptions, LoadedModel};
use hone_train::adapter::{save_adapter, AdapterExtra};
use serve_support::{model_cached, Server};

/// A Python that imports `openai`, or why there is none.
fn openai_python() -> Result<PathBuf, String> {
    let imports = |py: &Path| {
        Command::new(py)
            .args(["-c", "import openai; print(openai.__version__)"])
            .output()
            .map(|o| {
                o.status
                    .success()
                    .then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
            })
    };
    if let Ok(p) = std::env::var("HONE_OPENAI_PYTHON") {
        let p = PathBuf::from(p);
        return match imports(&p) {
            Ok(Some(v)) => {
                println!("openai {v} through HONE_OPENAI_PYTHON={}", p.display());
                Ok(p)
            }
            Ok(None) => Err(format!(
                "HONE_OPENAI_PYTHON={} cannot `import openai`",
                p.display()
            )),
            Err(e) => Err(format!(
                "HONE_OPENAI_PYTHON={} does not run: {e}",
                p.display()
            )),
        };
    }
    let p = PathBuf::from("python3");
    match imports(&p) {
        Ok(Some(v)) => {
            println!("openai {v} through python3");
            Ok(p)
        }
        _ => Err(
            "no Python with the `openai` package: set HONE_OPENAI_PYTHON to one \
             (scripts/test makes a venv with it), or pip install openai"
                .into(),
        ),
    }
}

/// A small deterministic generator for the adapter's matrices.
struct SplitMix(u64);

impl SplitMix {
    fn next_f32(&mut self) -> f32 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Uniform in [-bound, bound).
    fn uniform(&mut self, bound: f32) -> f32 {
        (self.next_f32() * 2.0 - 1.0) * bound
    }
}

/// A random LoRA adapter for smollm2 (every projection of the first layers, B non-zero so it
/// changes the outputs), saved in PEFT's format under `dir`.
fn write_random_adapter(dir: &Path) {
    let m = LoadedModel::load("smollm2", &LoadOptions::default()).expect("load smollm2");
    let (r, layers) = (8, [0usize, 1, 2, 3]);
    let mut rng = SplitMix(0x5EED);
    let mut modules = BTreeMap::new();
    for &l in &layers {
        for name in MODULES {
            let lin = m.model.layers[l].module(name).expect("module exists");
            let (in_f, out_f) = (lin.in_features(), lin.out_features());
            let a_bound = 1.0 / (in_f as f32).sqrt();
            modules.insert(
                (l, name.to_string()),
                LoraModule {
                    r,
                    in_f,
                    out_f,
                    a: (0..r * in_f).map(|_| rng.uniform(a_bound)).collect(),
                    b: (0..out_f * r).map(|_| rng.uniform(0.05)).collect(),
                },
            );
        }
    }
    let adapter = LoraAdapter {
        spec: LoraSpec {
            r,
            alpha: 16.0,
            target_modules: MODULES.iter().map(|s| s.to_string()).collect(),
            layers: layers.to_vec(),
        },
        modules,
    };
    save_adapter(dir, &adapter, "smollm2", &AdapterExtra::default()).expect("save the adapter");
}

#[test]
fn the_openai_python_client_drives_the_server() {
    if !model_cached() {
        return;
    }
    let python = match openai_python() {
        Ok(p) => p,
        Err(why) => {
            if std::env::var("HONE_REQUIRE_OPENAI").as_deref() == Ok("1") {
                panic!("HONE_REQUIRE_OPENAI=1 but {why}");
            }
            println!("SKIP: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let adapter_dir = dir.path().join("nda-adapter");
    write_random_adapter(&adapter_dir);
    let spec = format!("nda={}", adapter_dir.display());
    let server = Server::start(&["--model", "smollm2", "--adapter", &spec]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/openai_client.py");
    let started = std::time::Instant::now();
    let out = Command::new(&python)
        .arg(&script)
        .args([server.base.as_str(), "smollm2", "nda"])
        .env("PYTHONUNBUFFERED", "1")
        .output()
        .expect("the python client runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!(
        "{stdout}\n{stderr}\n(client ran {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    assert!(
        out.status.success(),
        "the openai client script failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let err = server.stderr();
    assert!(!err.contains("panicked"), "the server panicked:\n{err}");
}
