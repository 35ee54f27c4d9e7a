//! `hone serve --route` through the binary: bad routing flags are refused before the model is
//! loaded, with an error naming the flag, and the flags reach the server (a routed request
//! whose fallback is down is answered locally, 200, with the warning header and counted).

mod serve_support;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use serve_support::{model_cached, Server};

/// `hone serve ARGS --port 0`'s exit status and stderr; killed after a minute (a server that
/// started instead of refusing its flags).
fn refused(args: &[&str]) -> String {
    let home = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hone"))
        .arg("serve")
        .args(args)
        .args(["--port", "0"])
        .env("HONE_HOME", home.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("hone serve {args:?} started instead of refusing its flags");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "{args:?}: {err}");
    err
}

#[test]
fn bad_routing_flags_are_refused_naming_the_flag() {
    let fb = ["--fallback", "http://127.0.0.1:9/v1"];
    let cases: [(Vec<&str>, &str); 5] = [
        (
            [&["--route", "gpt", "--threshold", "-1"][..], &fb].concat(),
            "--route gpt: this server serves no model of that name (it serves smollm2)",
        ),
        (
            [&["--route", "smollm2", "--threshold", "0.2"][..], &fb].concat(),
            "--threshold 0.2",
        ),
        (
            vec![
                "--route",
                "smollm2",
                "--threshold",
                "-1",
                "--fallback",
                "localhost/v1",
            ],
            "--fallback localhost/v1",
        ),
        (
            [&["--route", "smollm2"][..], &fb].concat(),
            "needs --threshold",
        ),
        (vec!["--threshold", "-1"], "--threshold need --route"),
    ];
    for (args, want) in cases {
        let err = refused(&args);
        assert!(err.contains(want), "{args:?}: expected `{want}` in {err}");
    }
}

#[test]
fn a_routed_request_whose_fallback_is_down_gets_the_local_answer() {
    if !model_cached() {
        return;
    }
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let fallback = format!("http://127.0.0.1:{closed}/v1");
    let srv = Server::start(&[
        "--model",
        "smollm2",
        "--route",
        "smollm2",
        "--fallback",
        &fallback,
        "--threshold",
        "0",
        "--fallback-timeout",
        "20",
    ]);
    assert!(srv.stderr().contains("routing smollm2"), "{}", srv.stderr());
    let resp = ureq::post(&format!("{}/v1/chat/completions", srv.base))
        .send_json(
            json!({"model": "smollm2", "max_tokens": 4, "temperature": 0,
                          "messages": [{"role": "user", "content": "Say hello."}]}),
        )
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.header("x-hone-route"), Some("local"));
    let conf: f64 = resp.header("x-hone-confidence").unwrap().parse().unwrap();
    assert!(conf < 0.0, "{conf}");
    let warning = resp.header("x-hone-route-warning").unwrap().to_string();
    assert!(
        warning.starts_with("fallback failed: cannot reach") && warning.contains(&fallback),
        "{warning}"
    );
    let body: serde_json::Value = resp.into_json().unwrap();
    assert_eq!(body["model"], "smollm2");
    assert!(!body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .is_empty());
    let metrics = ureq::get(&format!("{}/metrics", srv.base))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    for line in [
        "hone_route_requests_total{model=\"smollm2\",target=\"fallback_failed\"} 1",
        "hone_route_requests_total{model=\"smollm2\",target=\"fallback\"} 0",
        "hone_route_requests_total{model=\"smollm2\",target=\"local\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
}
