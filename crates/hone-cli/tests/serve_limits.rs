//! `hone serve`'s security flags through the binary: an `--adapter NAME=DIR` at startup adds
//! no folder clients may load from (only `--adapter-dir` folders are), `--metrics-key-env`
//! guards `/metrics`, `--header-timeout` closes a stalled client, and SIGTERM ends the process
//! within `--shutdown-deadline` while a client is stalled (issue 26's reproduction).

mod serve_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use hone_model::llama::MODULES;
use hone_model::lora::LoraSpec;
use hone_model::peft::{save_adapter, AdapterExtra};
use hone_model::{LoadOptions, LoadedModel};
use serde_json::{json, Value};
use serve_support::{model_cached, Server};

/// Every wait here is bounded by this (the timeouts set are 1 s).
const WAIT: Duration = Duration::from_secs(30);

fn write_adapter(dir: &Path) {
    use rand::SeedableRng;
    let m = LoadedModel::load("smollm2", &LoadOptions::default()).expect("load smollm2");
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let spec = LoraSpec {
        r: 4,
        alpha: 8.0,
        target_modules: MODULES.iter().map(|s| s.to_string()).collect(),
        layers: vec![0, 1],
    };
    let mut a = m.model.init_adapter(spec, &mut rng).expect("adapter fits");
    a.randomize_b(0.05, &mut rng);
    save_adapter(dir, &a, "smollm2", &AdapterExtra::default()).expect("save the adapter");
}

fn request(method: &str, url: &str, body: Option<&Value>, key: Option<&str>) -> (u16, String) {
    let mut req = ureq::request(method, url);
    if let Some(k) = key {
        req = req.set("Authorization", &format!("Bearer {k}"));
    }
    let r = match body {
        Some(b) => req
            .set("Content-Type", "application/json")
            .send_string(&b.to_string()),
        None => req.call(),
    };
    match r {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap_or_default()),
        Err(e) => panic!("transport error: {e}"),
    }
}

/// A client that sent part of a request head and nothing more.
fn stalled_client(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").unwrap();
    s
}

#[test]
fn an_adapter_flag_adds_no_folder_and_the_limits_flags_hold() {
    if !model_cached() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let adapter = dir.path().join("nda-v1");
    write_adapter(&adapter);
    let spec = format!("nda={}", adapter.display());
    let srv = Server::start_with_env(
        &[
            "--model",
            "smollm2",
            "--adapter",
            &spec,
            "--admin-key-env",
            "TEST_SERVE_ADMIN",
            "--metrics-key-env",
            "TEST_SERVE_METRICS",
            "--header-timeout",
            "1",
        ],
        &[("TEST_SERVE_ADMIN", "adm"), ("TEST_SERVE_METRICS", "met")],
    );
    // The startup adapter's parent folder is not a root: with no --adapter-dir, a client can
    // load nothing, not even the folder beside the one loaded at startup.
    let (code, body) = request(
        "POST",
        &format!("{}/v1/adapters", srv.base),
        Some(&json!({"name": "copy", "path": "nda-v1"})),
        Some("adm"),
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("--adapter-dir"), "{body}");
    assert!(!body.contains(&dir.path().display().to_string()), "{body}");
    // /metrics takes its key; /health none.
    let metrics = format!("{}/metrics", srv.base);
    assert_eq!(request("GET", &metrics, None, None).0, 401);
    assert_eq!(request("GET", &metrics, None, Some("met")).0, 200);
    assert_eq!(
        request("GET", &format!("{}/health", srv.base), None, None).0,
        200
    );
    // --header-timeout 1: a stalled head is answered 408 and closed.
    let mut s = stalled_client(srv.port);
    let mut got = Vec::new();
    s.read_to_end(&mut got)
        .expect("the stalled connection was closed within the wait");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
}

#[cfg(unix)]
#[test]
fn sigterm_ends_the_server_within_the_shutdown_deadline_while_a_client_is_stalled() {
    if !model_cached() {
        return;
    }
    let mut srv = Server::start(&["--model", "smollm2", "--shutdown-deadline", "1"]);
    let _stalled = stalled_client(srv.port);
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    let ok = Command::new("kill")
        .args(["-TERM", &srv.pid().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    while srv.is_alive() {
        assert!(
            t0.elapsed() < WAIT,
            "hone serve still runs {WAIT:?} after SIGTERM; stderr:\n{}",
            srv.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(srv.stderr().contains("at most 1 s"), "{}", srv.stderr());
}
