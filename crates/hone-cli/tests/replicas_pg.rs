//! Two `hone serve` replicas on one real PostgreSQL store (and one shared objects folder): an
//! alias change made through one replica's admin API is applied by the other within the watch
//! interval; one replica killed (SIGKILL) mid-canary with requests in flight leaves the other
//! serving and the store consistent, and a rollback through the survivor takes effect at once.
//!
//! Runs on a fresh database on the server `HONE_TEST_PG_URL` names (`scripts/pg-test-cluster
//! start DIR` prints one; scripts/test starts one). Without it the test prints why and passes,
//! unless `HONE_REQUIRE_PG=1`. Needs the cached smollm2 model, as the other serve tests.

mod serve_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use hone_model::llama::MODULES;
use hone_model::lora::LoraSpec;
use hone_model::peft::{save_adapter, AdapterExtra};
use hone_model::{LoadOptions, LoadedModel};
use hone_ops::deployment::Change;
use hone_ops::store::test_db::TestDatabase;
use hone_ops::{registry, VersionRef};
use serde_json::{json, Value};
use serve_support::{model_cached, Server};

const ADMIN_KEY_VAR: &str = "HONE_TEST_ADMIN_KEY";
const ADMIN_KEY: &str = "replicas-admin-key";

// ---------------------------------------------------------------------------------------------
// Adapters and HTTP

/// Small random LoRA adapters for smollm2 (every projection of layers 0..3, rank 4, B
/// non-zero), one per seed, saved in PEFT's format under `dirs`.
fn write_adapters(dirs: &[(&Path, u64)]) {
    use rand::SeedableRng;
    let m = LoadedModel::load("smollm2", &LoadOptions::default()).expect("load smollm2");
    for &(dir, seed) in dirs {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let spec = LoraSpec {
            r: 4,
            alpha: 8.0,
            target_modules: MODULES.iter().map(|s| s.to_string()).collect(),
            layers: vec![0, 1, 2, 3],
        };
        let mut adapter = m.model.init_adapter(spec, &mut rng).expect("adapter fits");
        adapter.randomize_b(0.2, &mut rng);
        save_adapter(dir, &adapter, "smollm2", &AdapterExtra::default()).expect("save");
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(60))
        .build()
}

/// A response's status and JSON body (`Err` only when no HTTP answer came back).
fn call(req: ureq::Request, body: Option<&Value>) -> Result<(u16, Value), String> {
    let res = match body {
        Some(b) => req.send_json(b.clone()),
        None => req.call(),
    };
    let resp = match res {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => return Err(e.to_string()),
    };
    let status = resp.status();
    let text = resp.into_string().map_err(|e| e.to_string())?;
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Ok((status, v))
}

fn admin_get(base: &str, path: &str) -> Value {
    let (status, v) = call(
        agent()
            .get(&format!("{base}{path}"))
            .set("Authorization", &format!("Bearer {ADMIN_KEY}")),
        None,
    )
    .unwrap_or_else(|e| panic!("GET {base}{path}: {e}"));
    assert_eq!(status, 200, "GET {base}{path}: {v}");
    v
}

fn admin_post(base: &str, path: &str, body: Value) -> Value {
    let (status, v) = call(
        agent()
            .post(&format!("{base}{path}"))
            .set("Authorization", &format!("Bearer {ADMIN_KEY}")),
        Some(&body),
    )
    .unwrap_or_else(|e| panic!("POST {base}{path}: {e}"));
    assert_eq!(status, 200, "POST {base}{path} {body}: {v}");
    v
}

/// A greedy 4-token chat request for `nda` as `user`: the status and the `model` that answered.
fn chat(base: &str, user: &str, max_tokens: u32) -> Result<(u16, String), String> {
    let body = json!({
        "model": "nda",
        "messages": [{"role": "user", "content": "Say hello."}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "user": user,
    });
    let (status, v) = call(
        agent().post(&format!("{base}/v1/chat/completions")),
        Some(&body),
    )?;
    let model = v["model"].as_str().unwrap_or_default().to_string();
    if status != 200 {
        return Ok((status, v.to_string()));
    }
    Ok((status, model))
}

/// Sends a chat request as each of `users` to `base`, 4 at a time (the server's batch); the
/// answers in `users`' order. Every one must be answered 200.
fn chat_all(base: &str, users: &[String]) -> Vec<String> {
    let mut out = vec![String::new(); users.len()];
    std::thread::scope(|s| {
        let chunks: Vec<_> = out
            .chunks_mut(users.len().div_ceil(4))
            .zip(users.chunks(users.len().div_ceil(4)))
            .map(|(o, u)| {
                s.spawn(move || {
                    for (slot, user) in o.iter_mut().zip(u) {
                        let (status, model) = chat(base, user, 4)
                            .unwrap_or_else(|e| panic!("chat as {user} to {base}: {e}"));
                        assert_eq!(status, 200, "chat as {user} to {base}: {model}");
                        *slot = model;
                    }
                })
            })
            .collect();
        for h in chunks {
            h.join().expect("a chat thread");
        }
    });
    out
}

/// The value of a Prometheus series (`name{labels}` exactly as rendered) on `base`'s /metrics.
fn metric(base: &str, series: &str) -> Option<f64> {
    let text = agent()
        .get(&format!("{base}/metrics"))
        .call()
        .ok()?
        .into_string()
        .ok()?;
    text.lines().find_map(|l| {
        l.strip_prefix(series)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

fn event_kinds(base: &str) -> Vec<String> {
    admin_get(base, "/admin/deployments/nda/events")["data"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default().to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------------

#[test]
fn two_replicas_share_one_postgres_store() {
    if !model_cached() {
        return;
    }
    let Some(db) = TestDatabase::create("two_replicas_share_one_postgres_store") else {
        return;
    };
    let t_all = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("objects");
    let (a1, a2) = (dir.path().join("nda-1"), dir.path().join("nda-2"));
    write_adapters(&[(&a1, 0x5EED_0001), (&a2, 0x5EED_0002)]);

    // Both versions registered, nda@1 prod, through the store as `hone registry` / `hone
    // deploy` would.
    let store = hone_ops::open_store(Some(&db.url), Some(&objects)).expect("open the pg store");
    let v1 = registry::add(store.as_ref(), "nda", &a1, "seed 1", "test").expect("add nda@1");
    let v2 = registry::add(store.as_ref(), "nda", &a2, "seed 2", "test").expect("add nda@2");
    assert_eq!((v1.version, v2.version), (1, 2));
    store
        .change("nda", &Change::Prod(1), None, "test", None)
        .expect("deploy nda@1");

    // Two replicas on the same database and objects folder.
    let objects_s = objects.to_str().expect("a UTF-8 temp path");
    let args = [
        "--model",
        "smollm2",
        "--store",
        db.url.as_str(),
        "--objects",
        objects_s,
        "--admin-key-env",
        ADMIN_KEY_VAR,
        "--max-batch",
        "4",
    ];
    let env = [(ADMIN_KEY_VAR, ADMIN_KEY)];
    let t_start = Instant::now();
    let (mut a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| Server::start_with_env(&args, &env));
        let b = s.spawn(|| Server::start_with_env(&args, &env));
        (a.join().expect("replica A"), b.join().expect("replica B"))
    });
    println!(
        "both replicas up in {:.2} s",
        t_start.elapsed().as_secs_f64()
    );
    assert_eq!(
        metric(&b.base, "hone_deployment_prod_version{model=\"nda\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(&b.base, "hone_deployment_canary_version{model=\"nda\"}"),
        Some(0.0)
    );

    // A canary through A's admin API; B applies it from the store (its watch loop), which its
    // own gauge shows once the new route is published.
    let t0 = Instant::now();
    let r = admin_post(
        &a.base,
        "/admin/deployments/nda",
        json!({"action": "deploy", "version": 2, "canary": 30}),
    );
    let acked = t0.elapsed();
    assert_eq!(r["deployment"]["canary"]["version"], 2, "{r}");
    let series = "hone_deployment_canary_version{model=\"nda\"}";
    let applied = loop {
        if metric(&b.base, series) == Some(2.0) {
            break t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "replica B did not apply the canary within 5 s; its stderr:\n{}",
            b.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    println!(
        "canary nda@2 30% via A: A answered in {:.0} ms; B applied it {:.0} ms after the request \
         was sent ({:.0} ms after A's answer)",
        acked.as_secs_f64() * 1000.0,
        applied.as_secs_f64() * 1000.0,
        applied.saturating_sub(acked).as_secs_f64() * 1000.0
    );
    assert!(
        applied < Duration::from_secs(2),
        "B applied the canary after {applied:?}"
    );

    // B answers for both versions, by user.
    let users: Vec<String> = (0..40).map(|i| format!("user-{i}")).collect();
    let t_req = Instant::now();
    let answered = chat_all(&b.base, &users);
    let seen: BTreeSet<&str> = answered.iter().map(String::as_str).collect();
    let canary_users: Vec<String> = users
        .iter()
        .zip(&answered)
        .filter(|(_, m)| *m == "nda@2")
        .map(|(u, _)| u.clone())
        .collect();
    println!(
        "40 requests to B in {:.2} s: {} by nda@2, {} by nda@1",
        t_req.elapsed().as_secs_f64(),
        canary_users.len(),
        answered.len() - canary_users.len()
    );
    assert_eq!(
        seen,
        BTreeSet::from(["nda@1", "nda@2"]),
        "answers by: {answered:?}"
    );
    // Sticky per user, and the same bucket in every replica: the hash decides, not the server.
    for (u, m) in users.iter().zip(&answered) {
        let want = if hone_ops::route::to_canary("nda", 30.0, Some(u), 0.0) {
            "nda@2"
        } else {
            "nda@1"
        };
        assert_eq!(m, want, "{u}");
    }

    // A killed (SIGKILL) with requests in flight to it.
    let in_flight: Vec<_> = (0..4)
        .map(|i| {
            let base = a.base.clone();
            std::thread::spawn(move || chat(&base, &format!("a-user-{i}"), 200))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(150));
    a.kill();
    assert!(!a.is_alive());
    let a_results: Vec<_> = in_flight
        .into_iter()
        .map(|h| h.join().expect("a request thread"))
        .collect();
    println!("requests in flight to A when it was killed: {a_results:?}");

    // B keeps serving.
    let more: Vec<String> = (40..60).map(|i| format!("user-{i}")).collect();
    chat_all(&b.base, &more);

    // The store is as the last change left it: prod 1, canary 2 at 30%, four events.
    let st = admin_get(&b.base, "/admin/deployments/nda");
    let d = &st["deployment"];
    assert_eq!(d["prod"], 1, "{st}");
    assert_eq!(d["canary"]["version"], 2, "{st}");
    assert_eq!(d["canary"]["percent"].as_f64(), Some(30.0), "{st}");
    assert_eq!(
        event_kinds(&b.base),
        ["register", "register", "deploy", "canary"],
        "events after A was killed"
    );
    let versions = admin_get(&b.base, "/admin/versions?name=nda");
    assert_eq!(
        versions["data"].as_array().map(Vec::len),
        Some(2),
        "{versions}"
    );
    let check = hone_ops::open_store(Some(&db.url), Some(&objects)).expect("reopen the store");
    for n in [1, 2] {
        let v = check
            .version(&VersionRef::new("nda", n))
            .expect("read a version")
            .unwrap_or_else(|| panic!("nda@{n} is gone"));
        registry::checked_dir(check.as_ref(), &v)
            .unwrap_or_else(|e| panic!("nda@{n}'s files after the kill: {e}"));
    }

    // A rollback through B (the only replica left): every request answers from nda@1 at once.
    let t0 = Instant::now();
    let r = admin_post(
        &b.base,
        "/admin/deployments/nda",
        json!({"action": "rollback"}),
    );
    assert!(r["deployment"]["canary"].is_null(), "{r}");
    assert_eq!(r["deployment"]["prod"], 1, "{r}");
    let probe: Vec<String> = if canary_users.is_empty() {
        users.clone()
    } else {
        canary_users.clone()
    };
    let all_prod = loop {
        let answered = chat_all(&b.base, &probe);
        if answered.iter().all(|m| m == "nda@1") {
            break t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "2 s after the rollback B still answers from: {answered:?}"
        );
    };
    println!(
        "rollback via B: local swap {:.1} us; every canary user answered by nda@1 {:.0} ms \
         after the request was sent",
        r["swap_ms"].as_f64().unwrap_or(f64::NAN) * 1000.0,
        all_prod.as_secs_f64() * 1000.0
    );
    assert!(all_prod < Duration::from_secs(2));
    assert_eq!(metric(&b.base, series), Some(0.0));
    assert_eq!(
        event_kinds(&b.base),
        ["register", "register", "deploy", "canary", "rollback"]
    );
    let stored = check.deployment("nda").unwrap().expect("a deployment");
    assert_eq!((stored.prod, stored.canary.is_none()), (Some(1), true));
    let err = b.stderr();
    assert!(!err.contains("panicked"), "replica B panicked:\n{err}");
    println!("whole test: {:.1} s", t_all.elapsed().as_secs_f64());
}
