//! Who may change what a server serves, and what its errors tell: adapter changes need the
//! admin key (the API key never stands in; without an admin key they are refused), replacing a
//! loaded name must be asked for, loaded adapters are capped, a missing folder, a file and a
//! link out of the roots get one and the same 400 that names no server path, `Bearer` is
//! matched in any case, and `/metrics` takes its own key when one is set (`/health` none).

use std::path::Path;

use hone_serve::server::ServerConfig;
use serde_json::{json, Value};

mod common;
use common::*;

fn config(roots: &[&Path]) -> ServerConfig {
    ServerConfig {
        model_name: "smollm2".into(),
        adapter_roots: roots.iter().map(|p| p.to_path_buf()).collect(),
        ..ServerConfig::default()
    }
}

fn send(method: &str, url: &str, body: Option<&Value>, auth: Option<&str>) -> (u16, Value) {
    let mut req = ureq::request(method, url);
    if let Some(a) = auth {
        req = req.set("Authorization", a);
    }
    let r = match body {
        Some(b) => req
            .set("Content-Type", "application/json")
            .send_string(&b.to_string()),
        None => req.call(),
    };
    match r {
        Ok(r) => (
            r.status(),
            r.into_string()
                .map(|t| serde_json::from_str(&t).unwrap_or(Value::String(t)))
                .unwrap_or(Value::Null),
        ),
        Err(ureq::Error::Status(code, r)) => (code, r.into_json().unwrap_or(Value::Null)),
        Err(e) => panic!("transport error: {e}"),
    }
}

fn message(v: &Value) -> &str {
    v["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message in {v}"))
}

#[test]
fn adapter_changes_need_a_separate_admin_key() {
    let Some(path) = smollm2() else { return };
    let dir = tempfile::tempdir().unwrap();
    save_random_adapter(&load(&path), &dir.path().join("nda-v2"), 5);
    // An API key and no admin key: the API key opens nothing.
    let mut cfg = config(&[dir.path()]);
    cfg.api_key = Some("k1".into());
    let srv = Server::start(&path, cfg, &[("prod", &dir.path().join("nda-v2"))]);
    let load_body = json!({"name": "nda", "path": "nda-v2"});
    let (code, v) = send(
        "POST",
        &format!("{}/v1/adapters", srv.url),
        Some(&load_body),
        Some("Bearer k1"),
    );
    assert_eq!(code, 403, "{v}");
    assert!(message(&v).contains("--admin-key-env"), "{v}");
    let (code, v) = send(
        "DELETE",
        &format!("{}/v1/adapters/prod", srv.url),
        None,
        Some("Bearer k1"),
    );
    assert_eq!(code, 403, "{v}");
    let (code, v) = send(
        "GET",
        &format!("{}/admin/versions", srv.url),
        None,
        Some("Bearer k1"),
    );
    assert_eq!(code, 403, "{v}");
    // prod is still served
    let (code, v) = send(
        "GET",
        &format!("{}/v1/models", srv.url),
        None,
        Some("Bearer k1"),
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"][1]["id"], "prod", "{v}");
    drop(srv);

    // With both keys, each opens only its own endpoints.
    let mut cfg = config(&[dir.path()]);
    cfg.api_key = Some("k1".into());
    cfg.admin_key = Some("adm".into());
    let srv = Server::start(&path, cfg, &[]);
    let adapters = format!("{}/v1/adapters", srv.url);
    assert_eq!(
        send("POST", &adapters, Some(&load_body), Some("Bearer k1")).0,
        401
    );
    let (code, v) = send("POST", &adapters, Some(&load_body), Some("Bearer adm"));
    assert_eq!(code, 201, "{v}");
}

#[test]
fn replacing_a_loaded_adapter_must_be_asked_for_and_loaded_adapters_are_capped() {
    let Some(path) = smollm2() else { return };
    let dir = tempfile::tempdir().unwrap();
    let m = load(&path);
    save_random_adapter(&m, &dir.path().join("v1"), 1);
    save_random_adapter(&m, &dir.path().join("v2"), 2);
    let mut cfg = config(&[dir.path()]);
    cfg.admin_key = Some("adm".into());
    cfg.max_adapters = 2;
    let srv = Server::start(&path, cfg, &[("base-a", &dir.path().join("v1"))]);
    let adapters = format!("{}/v1/adapters", srv.url);
    let post = |b: Value| send("POST", &adapters, Some(&b), Some("Bearer adm"));
    assert_eq!(post(json!({"name": "nda", "path": "v1"})).0, 201);
    // The same name again is a conflict, not a silent swap.
    let (code, v) = post(json!({"name": "nda", "path": "v2"}));
    assert_eq!(code, 409, "{v}");
    assert!(message(&v).contains("\"replace\": true"), "{v}");
    let (code, v) = post(json!({"name": "nda", "path": "v2", "replace": "yes"}));
    assert_eq!(code, 400, "{v}");
    assert_eq!(v["error"]["param"], "replace", "{v}");
    // Asked for, it replaces (at the cap too: the count does not grow).
    let (code, v) = post(json!({"name": "nda", "path": "v2", "replace": true}));
    assert_eq!(code, 200, "{v}");
    // Two loaded (base-a, nda): a third is refused until one goes.
    let (code, v) = post(json!({"name": "other", "path": "v1"}));
    assert_eq!(code, 409, "{v}");
    assert!(message(&v).contains("--max-adapters"), "{v}");
    assert_eq!(
        send(
            "DELETE",
            &format!("{}/v1/adapters/nda", srv.url),
            None,
            Some("Bearer adm")
        )
        .0,
        200
    );
    assert_eq!(post(json!({"name": "other", "path": "v1"})).0, 201);
}

#[test]
fn adapter_folder_errors_are_one_400_that_names_no_server_path() {
    let Some(path) = smollm2() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("adapters");
    let outside = dir.path().join("outside");
    let m = load(&path);
    save_random_adapter(&m, &outside.join("secret"), 3);
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::write(root.join("file.txt"), "x").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(outside.join("secret"), root.join("link-out")).unwrap();
    let mut cfg = config(&[&root]);
    cfg.admin_key = Some("adm".into());
    let srv = Server::start(&path, cfg, &[]);
    let adapters = format!("{}/v1/adapters", srv.url);
    let post = |p: &str| {
        send(
            "POST",
            &adapters,
            Some(&json!({"name": "x", "path": p})),
            Some("Bearer adm"),
        )
    };
    let server_path = dir.path().to_string_lossy().to_string();
    // Missing, a file, a link out: the same answer, the client's name put in it.
    let mut answers = Vec::new();
    for p in ["ghost", "file.txt", "link-out"] {
        let (code, v) = post(p);
        assert_eq!(code, 400, "{p}: {v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
        assert_eq!(v["error"]["param"], "path", "{v}");
        assert!(!message(&v).contains(&server_path), "{v}");
        answers.push(message(&v).replace(p, "P"));
    }
    assert!(answers.iter().all(|a| a == &answers[0]), "{answers:?}");
    // A folder that is there but holds no adapter: 400 on `path`, its name as sent.
    let (code, v) = post("empty");
    assert_eq!(code, 400, "{v}");
    assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
    assert_eq!(v["error"]["param"], "path", "{v}");
    assert!(!message(&v).contains(&server_path), "{v}");
    assert!(message(&v).contains("empty"), "{v}");
}

#[test]
fn bearer_in_any_case_and_a_metrics_key() {
    let Some(path) = smollm2() else { return };
    let mut cfg = config(&[]);
    cfg.api_key = Some("k1".into());
    cfg.metrics_key = Some("m1".into());
    let srv = Server::start(&path, cfg, &[]);
    let models = format!("{}/v1/models", srv.url);
    for auth in ["Bearer k1", "bearer k1", "BEARER k1"] {
        assert_eq!(send("GET", &models, None, Some(auth)).0, 200, "{auth}");
    }
    assert_eq!(send("GET", &models, None, Some("Bearer k2")).0, 401);
    let metrics = format!("{}/metrics", srv.url);
    assert_eq!(send("GET", &metrics, None, None).0, 401);
    assert_eq!(send("GET", &metrics, None, Some("Bearer k1")).0, 401);
    let (code, v) = send("GET", &metrics, None, Some("bearer m1"));
    assert_eq!(code, 200);
    assert!(v.as_str().unwrap().contains("hone_requests_total"), "{v}");
    // /health needs no key
    assert_eq!(
        send("GET", &format!("{}/health", srv.url), None, None).0,
        200
    );
}
