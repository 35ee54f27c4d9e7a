//! The in-process test server shared by the HTTP tests: the real SmolLM2 behind `serve` on a
//! free port, requests, metrics as numbers, and random adapters that change the model.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hone_model::llama::MODULES;
use hone_model::lora::LoraSpec;
use hone_model::{LoadOptions, LoadedModel};
use hone_serve::server::{serve, AppState, ServerConfig};
use serde_json::Value;

pub fn smollm2() -> Option<PathBuf> {
    hone_model::fetch::cached_for_tests("smollm2")
}

pub fn gemma3_270m() -> Option<PathBuf> {
    hone_model::fetch::cached_for_tests("gemma3-270m")
}

pub fn load(path: &Path) -> LoadedModel {
    LoadedModel::load_gguf(path, &LoadOptions::default()).unwrap()
}

/// A server on a free port, with its own runtime thread; dropped = shut down.
pub struct Server {
    pub url: String,
    pub state: Arc<AppState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub fn start(path: &Path, config: ServerConfig, adapters: &[(&str, &Path)]) -> Server {
        Self::start_with_store(path, config, adapters, None)
    }

    /// [`Server::start`] serving the deployments of a registry store too.
    pub fn start_with_store(
        path: &Path,
        config: ServerConfig,
        adapters: &[(&str, &Path)],
        store: Option<Arc<dyn hone_ops::Store>>,
    ) -> Server {
        Self::start_model(load(path), config, adapters, store)
    }

    /// [`Server::start_with_store`] serving a model already loaded.
    pub fn start_model(
        m: LoadedModel,
        config: ServerConfig,
        adapters: &[(&str, &Path)],
        store: Option<Arc<dyn hone_ops::Store>>,
    ) -> Server {
        let state = AppState::with_store(m.model, m.tokenizer, m.template, config, store).unwrap();
        for (name, dir) in adapters {
            state.load_adapter(name, dir).unwrap();
        }
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (tx, rx) = std::sync::mpsc::channel();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(l.local_addr().unwrap()).unwrap();
                serve(st, l, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            });
        });
        let addr = rx.recv().unwrap();
        Server {
            url: format!("http://{addr}"),
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn shutdown(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        post_raw(&format!("{}{path}", self.url), &body.to_string(), None)
    }

    pub fn metrics(&self) -> BTreeMap<String, f64> {
        let text = ureq::get(&format!("{}/metrics", self.url))
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        let lines = text.lines().map(|l| Ok(l.to_string()));
        let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
        let mut out = BTreeMap::new();
        for s in scrape.samples {
            let mut labels: Vec<String> =
                s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            labels.sort();
            let key = if labels.is_empty() {
                s.metric.clone()
            } else {
                format!("{}{{{}}}", s.metric, labels.join(","))
            };
            let v = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                prometheus_parse::Value::Histogram(h) => {
                    h.iter().map(|b| b.count).fold(0.0, f64::max)
                }
                prometheus_parse::Value::Summary(_) => continue,
            };
            out.insert(key, v);
        }
        out
    }

    /// Waits until nothing runs, nothing waits and no KV block is held.
    pub fn wait_idle(&self) -> BTreeMap<String, f64> {
        let t0 = Instant::now();
        loop {
            let m = self.metrics();
            if m["hone_running_sequences"] == 0.0
                && m["hone_queue_depth"] == 0.0
                && m["hone_kv_blocks_used"] == 0.0
            {
                return m;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "the engine did not go idle: {m:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

pub fn post_raw(url: &str, body: &str, key: Option<&str>) -> (u16, Value) {
    let mut req = ureq::post(url).set("Content-Type", "application/json");
    if let Some(k) = key {
        req = req.set("Authorization", &format!("Bearer {k}"));
    }
    match req.send_string(body) {
        Ok(r) => (r.status(), r.into_json().unwrap_or(Value::Null)),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap_or(Value::Null)),
        Err(e) => panic!("transport error: {e}"),
    }
}

/// A LoRA adapter on every projection of every layer with random B, saved as PEFT.
pub fn save_random_adapter(m: &LoadedModel, dir: &Path, seed: u64) {
    save_scaled_adapter(m, dir, seed, 0.03)
}

/// [`save_random_adapter`] with B drawn at `scale` (large scales wreck the model).
pub fn save_scaled_adapter(m: &LoadedModel, dir: &Path, seed: u64, scale: f32) {
    save_adapter_for(m, "smollm2", dir, seed, scale)
}

/// A random adapter for `m`, recorded as trained on the base named `base`.
pub fn save_adapter_for(m: &LoadedModel, base: &str, dir: &Path, seed: u64, scale: f32) {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let spec = LoraSpec {
        r: 8,
        alpha: 16.0,
        target_modules: MODULES.iter().map(|s| s.to_string()).collect(),
        layers: (0..m.model.layers.len()).collect(),
    };
    let mut a = m.model.init_adapter(spec, &mut rng).unwrap();
    a.randomize_b(scale, &mut rng);
    hone_model::save_adapter(
        dir,
        &a,
        base,
        &hone_model::peft::AdapterExtra {
            n_layers: Some(m.model.layers.len()),
            ..Default::default()
        },
    )
    .unwrap();
}

/// Eight short user messages the HTTP tests send.
pub const PROMPTS: [&str; 8] = [
    "What is a non-disclosure agreement?",
    "Write one sentence about confidentiality.",
    "Name three things an NDA usually covers.",
    "Say hello in French.",
    "What does 'governing law' mean in a contract?",
    "List two colours.",
    "Explain the term of an agreement briefly.",
    "Who signs an NDA?",
];
