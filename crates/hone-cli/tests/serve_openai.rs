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

use std::path::{Path, PathBuf};
use std::process::Command;

use hone_model::llama::MODULES;
use hone_model::lora::LoraSpec;
use hone_model::peft::{save_adapter, AdapterExtra};
use hone_model::{LoadOptions, LoadedModel};
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

/// A random LoRA adapter for smollm2 (every projection of the first layers, B non-zero so it
/// changes the outputs), saved in PEFT's format under `dir`.
fn write_random_adapter(dir: &Path) {
    use rand::SeedableRng;
    let m = LoadedModel::load("smollm2", &LoadOptions::default()).expect("load smollm2");
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5EED);
    let spec = LoraSpec {
        r: 8,
        alpha: 16.0,
        target_modules: MODULES.iter().map(|s| s.to_string()).collect(),
        layers: vec![0, 1, 2, 3],
    };
    let mut adapter = m.model.init_adapter(spec, &mut rng).expect("adapter fits");
    adapter.randomize_b(0.2, &mut rng);
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
