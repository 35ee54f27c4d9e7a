//! `hone registry` and `hone deploy` against a SQLite store in a temporary folder, with real
//! (small, random) LoRA adapters for the cached smollm2: the lifecycle of a name (register,
//! list, show, diff, deploy, canary, rollback, events), refusals (a corrupted stored object, a
//! bad policy, `nda@0`), and crash tests that `kill -9` a registration and a deploy mid-way
//! (`HONE_OPS_PAUSE=POINT:MS` holds them there) and check the store is as before.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use hone_model::lora::LoraSpec;
use hone_model::peft::{save_adapter, AdapterExtra};
use hone_model::{LoadOptions, LoadedModel};
use hone_ops::{registry, Store, VersionRef};

/// A temporary `HONE_HOME`, a store file and the adapters to register.
struct Env {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    store: PathBuf,
    /// `v1`, `v2`: adapter folders with different weights, metrics and training data.
    adapters: Vec<PathBuf>,
}

impl Env {
    /// `None` (after saying why) when the model is not cached.
    fn new() -> Option<Env> {
        let gguf = hone_model::fetch::cached_for_tests("smollm2")?;
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&home).unwrap();
        let store = tmp.path().join("reg").join("registry.db");
        let m = LoadedModel::load(&gguf.to_string_lossy(), &LoadOptions::default())
            .expect("load smollm2");
        let mut adapters = Vec::new();
        for (i, (nli, acc3)) in [(0.71, 0.6), (0.78, 0.65)].into_iter().enumerate() {
            use rand::SeedableRng;
            let dir = tmp.path().join(format!("v{}", i + 1));
            let mut rng = rand::rngs::StdRng::seed_from_u64(7 + i as u64);
            let spec = LoraSpec {
                r: 2,
                alpha: 4.0,
                target_modules: vec!["q_proj".into(), "v_proj".into()],
                layers: vec![0, 1],
            };
            let mut a = m.model.init_adapter(spec, &mut rng).expect("adapter fits");
            a.randomize_b(0.1, &mut rng);
            save_adapter(&dir, &a, "smollm2", &AdapterExtra::default()).expect("save adapter");
            let train = tmp.path().join(format!("train{}.jsonl", i + 1));
            let mut lines = String::new();
            for k in 0..=i + 2 {
                lines.push_str(&format!(
                    "{{\"prompt\": \"q{k}\", \"completion\": \"a{k}\"}}\n"
                ));
            }
            std::fs::write(&train, lines).unwrap();
            std::fs::write(
                dir.join("train_config.toml"),
                format!(
                    "[data]\ntrain = \"{}\"\n\n[lora]\nr = 2\n",
                    train.display().to_string().replace('\\', "/")
                ),
            )
            .unwrap();
            std::fs::write(
                dir.join("validation.json"),
                format!(
                    "{{\"documents\": 20, \"metrics\": {{\"nli_acc\": {nli}, \"acc3\": {acc3}}}}}"
                ),
            )
            .unwrap();
            adapters.push(dir);
        }
        Some(Env {
            _tmp: tmp,
            home,
            store,
            adapters,
        })
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_hone"));
        c.args(args)
            .arg("--store")
            .arg(&self.store)
            .env("HONE_HOME", &self.home)
            .env_remove("HONE_STORE")
            .env_remove("HONE_OBJECTS")
            .env_remove("HONE_OPS_PAUSE");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("hone runs")
    }

    /// Runs and expects success; stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "hone {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and expects failure; stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "hone {args:?} should fail:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).unwrap()
    }

    fn adapter(&self, i: usize) -> &str {
        self.adapters[i].to_str().unwrap()
    }

    /// The store itself, to check what the commands left in it.
    fn open(&self) -> std::sync::Arc<dyn Store> {
        hone_ops::open_store(Some(self.store.to_str().unwrap()), None).expect("open the store")
    }

    fn objects(&self) -> PathBuf {
        self.store.parent().unwrap().join("objects")
    }

    /// Spawns `hone ARGS` paused at `point` for 5 s.
    fn spawn_paused(&self, args: &[&str], point: &str) -> Child {
        self.command(args)
            .env("HONE_OPS_PAUSE", format!("{point}:5000"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn hone")
    }
}

/// Object folders (not the `.incoming-*` ones being written).
fn object_dirs(objects: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(objects) {
        Ok(rd) => rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir() && !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// `kill -9` (SIGKILL on unix), after checking the process was still in its pause.
fn kill_paused(mut child: Child, what: &str) {
    let still_running = child.try_wait().expect("try_wait").is_none();
    child.kill().ok();
    child.wait().ok();
    assert!(
        still_running,
        "{what} finished before it was killed: HONE_OPS_PAUSE did not hold it"
    );
}

/// Every version listed passes its file check.
fn all_versions_check(st: &dyn Store) {
    for v in st.versions(None).unwrap() {
        registry::checked_dir(st, &v)
            .unwrap_or_else(|e| panic!("{} fails its check: {e}", v.reference()));
    }
}

/// The kinds of the events table, in order.
fn event_kinds(table: &str) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1).map(str::to_string))
        .collect()
}

#[test]
fn register_list_show_diff_deploy_canary_rollback() {
    let Some(env) = Env::new() else { return };
    let out = env.ok(&[
        "registry",
        "add",
        "nda",
        env.adapter(0),
        "--notes",
        "first run",
    ]);
    let (sha1, _) =
        hone_model::fetch::sha256_file(&env.adapters[0].join("adapter_model.safetensors")).unwrap();
    assert!(out.contains("registered nda@1"), "{out}");
    assert!(out.contains(&sha1), "{out}");
    assert!(out.contains("smollm2"), "{out}");
    assert!(out.contains("3 (from validation.json)"), "{out}");
    let out = env.ok(&["registry", "add", "nda", env.adapter(1)]);
    assert!(out.contains("registered nda@2"), "{out}");

    let list = env.ok(&["registry", "list"]);
    assert!(list.contains("nda@1") && list.contains("nda@2"), "{list}");
    assert!(
        list.contains(&sha1[..12]) && !list.contains(&sha1),
        "{list}"
    );
    assert!(
        list.contains("nli_acc 0.710") && list.contains("acc3 0.650"),
        "{list}"
    );
    assert!(list.contains("first run"), "{list}");
    assert_eq!(env.ok(&["registry", "list", "nda"]), list);

    let show = env.ok(&["registry", "show", "nda@1"]);
    let base_sha = hone_model::fetch::known_model("smollm2").unwrap().sha256;
    for want in [
        sha1.as_str(),
        base_sha,
        "adapter_config.json",
        "adapter_model.safetensors",
        "train1.jsonl",
        "3 examples",
        "metrics.nli_acc",
        "first run",
        "[lora]",
    ] {
        assert!(show.contains(want), "missing {want} in:\n{show}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["registry", "show", "nda@2", "--json"])).unwrap();
    assert_eq!(json["version"], 2);
    assert_eq!(json["name"], "nda");
    assert_eq!(json["metrics"]["metrics.acc3"], 0.65);

    let diff = env.ok(&["registry", "diff", "nda@1", "nda@2"]);
    for want in [
        "metrics.nli_acc",
        "0.7100",
        "0.7800",
        "+0.0700",
        "documents",
        "+0.0000",
        "adapter sha256",
        "training config sha256",
        "train data",
    ] {
        assert!(diff.contains(want), "missing {want} in:\n{diff}");
    }
    assert!(!diff.contains("base model "), "same base: {diff}");

    assert!(env.ok(&["deploy", "nda@1"]).contains("nda@1 is prod"));
    let out = env.ok(&["deploy", "nda@2", "--canary", "10"]);
    assert!(
        out.contains("nda@2 takes 10% of the requests for nda"),
        "{out}"
    );
    let status = env.ok(&["deploy", "status", "nda"]);
    assert!(status.contains("nda@1"), "{status}");
    assert!(status.contains("nda@2, 10% of requests"), "{status}");
    assert!(status.contains("--server URL"), "{status}");
    let out = env.ok(&["deploy", "rollback", "nda"]);
    assert!(out.contains("canary nda@2 rolled back"), "{out}");
    let d = env.open().deployment("nda").unwrap().unwrap();
    assert_eq!((d.prod, d.canary.is_none()), (Some(1), true));

    let events = env.ok(&["deploy", "events", "nda"]);
    assert_eq!(
        event_kinds(&events),
        ["register", "register", "deploy", "canary", "rollback"],
        "{events}"
    );
    let last = env.ok(&["deploy", "events", "nda", "--limit", "2"]);
    assert_eq!(event_kinds(&last), ["canary", "rollback"], "{last}");

    // a version whose stored weights changed is refused, and prod stays
    let st = env.open();
    let v2 = st.version(&VersionRef::new("nda", 2)).unwrap().unwrap();
    let weights = registry::object_dir(st.as_ref(), &v2.meta).join("adapter_model.safetensors");
    assert!(weights.starts_with(env.objects()), "{}", weights.display());
    let mut bytes = std::fs::read(&weights).unwrap();
    let i = bytes.len() - 5;
    bytes[i] ^= 0x40;
    std::fs::write(&weights, bytes).unwrap();
    for args in [
        &["deploy", "nda@2"][..],
        &["deploy", "nda@2", "--canary", "5"],
    ] {
        let err = env.fails(args);
        assert!(err.contains("nda@2") && err.contains("corrupt"), "{err}");
    }
    let d = env.open().deployment("nda").unwrap().unwrap();
    assert_eq!((d.prod, d.canary.is_none()), (Some(1), true));
    assert_eq!(event_kinds(&env.ok(&["deploy", "events", "nda"])).len(), 5);

    // policies: a bad key or value names the file and the key; a good one is shown by status
    let dir = env.home.join("policies");
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "[gates]\nmax_error_rate = 2.0\n").unwrap();
    let err = env.fails(&["deploy", "policy", "nda", bad.to_str().unwrap()]);
    assert!(
        err.contains("bad.toml") && err.contains("gates.max_error_rate"),
        "{err}"
    );
    std::fs::write(&bad, "[gates]\nmax_eror_rate = 0.1\n").unwrap();
    let err = env.fails(&["deploy", "policy", "nda", bad.to_str().unwrap()]);
    assert!(
        err.contains("bad.toml") && err.contains("max_eror_rate"),
        "{err}"
    );
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "min_requests = 30\n[gates]\nmax_parse_failure_rate = 0.05\n",
    )
    .unwrap();
    env.ok(&["deploy", "policy", "nda", good.to_str().unwrap()]);
    let status = env.ok(&["deploy", "status", "nda"]);
    assert!(status.contains("max_parse_failure_rate = 0.05"), "{status}");

    // references that are not versions
    let err = env.fails(&["deploy", "nda@0"]);
    assert!(err.contains("nda@0"), "{err}");
    let err = env.fails(&["deploy", "nda@9"]);
    assert!(
        err.contains("nda@9") && err.contains("not in the registry"),
        "{err}"
    );

    // prod cannot be removed; an unused version can, and its number stays used
    let err = env.fails(&["registry", "remove", "nda@1"]);
    assert!(err.contains("nda@1"), "{err}");
    assert!(env
        .ok(&["registry", "remove", "nda@2"])
        .contains("removed nda@2"));
    let list = env.ok(&["registry", "list", "nda"]);
    assert!(list.contains("nda@1") && !list.contains("nda@2"), "{list}");
    let out = env.ok(&["registry", "add", "nda", env.adapter(1)]);
    assert!(out.contains("registered nda@3"), "{out}");
}

#[test]
fn a_registration_killed_mid_way_leaves_no_partial_version() {
    let Some(env) = Env::new() else { return };
    env.ok(&["registry", "add", "nda", env.adapter(0)]);
    let before = object_dirs(&env.objects()).len();
    let child = env.spawn_paused(&["registry", "add", "nda", env.adapter(1)], "add");
    let t0 = Instant::now();
    while object_dirs(&env.objects()).len() == before && t0.elapsed() < Duration::from_millis(1500)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    kill_paused(child, "registry add");

    let list = env.ok(&["registry", "list", "nda"]);
    assert!(list.contains("nda@1") && !list.contains("nda@2"), "{list}");
    let out = env.ok(&["registry", "add", "nda", env.adapter(1)]);
    assert!(out.contains("registered nda@2"), "{out}");
    let st = env.open();
    assert_eq!(st.versions(Some("nda")).unwrap().len(), 2);
    all_versions_check(st.as_ref());
}

#[test]
fn a_deploy_killed_before_commit_leaves_the_old_deployment() {
    let Some(env) = Env::new() else { return };
    env.ok(&["registry", "add", "nda", env.adapter(0)]);
    env.ok(&["registry", "add", "nda", env.adapter(1)]);
    env.ok(&["deploy", "nda@1"]);
    let child = env.spawn_paused(&["deploy", "nda@2"], "deploy");
    // the files check and the adapter load come first, then the transaction and its pause
    std::thread::sleep(Duration::from_millis(1500));
    kill_paused(child, "deploy");

    let status = env.ok(&["deploy", "status", "nda"]);
    let d = env.open().deployment("nda").unwrap().unwrap();
    assert_eq!((d.prod, d.generation), (Some(1), 1), "{status}");
    assert!(status.contains("prod        nda@1"), "{status}");
    let out = env.ok(&["deploy", "nda@2"]);
    assert!(out.contains("nda@2 is prod (was nda@1)"), "{out}");
    let d = env.open().deployment("nda").unwrap().unwrap();
    assert_eq!((d.prod, d.previous), (Some(2), Some(1)));
    assert_eq!(
        event_kinds(&env.ok(&["deploy", "events", "nda"])),
        ["register", "register", "deploy", "deploy"]
    );
    all_versions_check(env.open().as_ref());
}

/// One request the mock admin API received.
#[derive(Debug)]
struct Received {
    method: String,
    path: String,
    authorization: Option<String>,
    body: String,
}

/// A one-connection-per-answer HTTP server that answers `answers` in order (status, JSON)
/// and hands back what it received.
fn mock_admin_api(answers: Vec<(u16, String)>) -> (String, std::thread::JoinHandle<Vec<Received>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let h = std::thread::spawn(move || {
        let mut got = Vec::new();
        for (status, body) in answers {
            let (mut s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let mut parts = line.split_whitespace();
            let (method, path) = (
                parts.next().unwrap().to_string(),
                parts.next().unwrap().to_string(),
            );
            let (mut len, mut authorization) = (0usize, None);
            loop {
                let mut h = String::new();
                r.read_line(&mut h).unwrap();
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                let (k, v) = h.split_once(':').unwrap();
                match k.to_ascii_lowercase().as_str() {
                    "content-length" => len = v.trim().parse().unwrap(),
                    "authorization" => authorization = Some(v.trim().to_string()),
                    _ => {}
                }
            }
            let mut b = vec![0u8; len];
            r.read_exact(&mut b).unwrap();
            got.push(Received {
                method,
                path,
                authorization,
                body: String::from_utf8(b).unwrap(),
            });
            write!(
                s,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
        }
        got
    });
    (url, h)
}

/// `--server URL` sends every operation to the admin API as its contract says, with the admin
/// key, and prints what comes back (the server's own error message on a 4xx).
#[test]
fn with_server_every_operation_goes_through_the_admin_api() {
    use hone_ops::deployment::{Canary, Deployment};
    use hone_ops::live::Snapshot;
    use hone_ops::status::{DeployStatus, VersionLive};
    use hone_ops::version::VersionMeta;
    use hone_ops::{Event, Version};
    use serde_json::json;

    let version = Version {
        name: "nda".into(),
        version: 2,
        created: 1_700_000_000,
        meta: VersionMeta {
            adapter_sha256: "ab".repeat(32),
            files: Vec::new(),
            base_model: "smollm2".into(),
            base_sha256: None,
            train_config: None,
            data: Vec::new(),
            metrics: [("metrics.nli_acc".to_string(), 0.8)].into(),
            metrics_source: Some("validation.json".into()),
            notes: "from the server".into(),
            source: "nda-v2".into(),
            baseline: None,
        },
    };
    let dep = Deployment {
        name: "nda".into(),
        prod: Some(1),
        previous: None,
        canary: Some(Canary {
            version: 2,
            percent: 10.0,
            started: 1_700_000_000,
        }),
        generation: 2,
        updated: 1_700_000_000,
    };
    let event = Event {
        id: 9,
        name: "nda".into(),
        time: 1_700_000_000,
        kind: "canary".into(),
        actor: "admin-api".into(),
        message: "nda@2 takes 10% of the requests for nda (prod nda@1)".into(),
        detail: json!({}),
    };
    let snap = |requests: u64, json_failures: u64| Snapshot {
        requests,
        json_checked: requests,
        json_failures,
        latency_p95_s: Some(0.5),
        ..Default::default()
    };
    let status = DeployStatus {
        name: "nda".into(),
        deployment: Some(dep.clone()),
        policy: None,
        prod: Some(VersionLive {
            version: VersionRef::new("nda", 1),
            snapshot: snap(900, 0),
            baseline: None,
        }),
        canary: Some(VersionLive {
            version: VersionRef::new("nda", 2),
            snapshot: snap(100, 41),
            baseline: None,
        }),
        verdict: None,
    };
    let err = json!({"error": {"message": "nda@7 is not in the registry", "type": "not_found_error", "param": null, "code": null}});
    let answers = vec![
        (201, serde_json::to_string(&version).unwrap()),
        (200, json!({"data": [version]}).to_string()),
        (200, json!({"deployment": dep, "event": event}).to_string()),
        (200, serde_json::to_string(&status).unwrap()),
        (200, json!({"ok": true}).to_string()),
        (200, json!({"data": [event]}).to_string()),
        (404, err.to_string()),
        (200, json!({"deleted": true}).to_string()),
        (200, json!({"deployment": dep, "event": event}).to_string()),
    ];
    let (url, server) = mock_admin_api(answers);
    let tmp = tempfile::tempdir().unwrap();
    let policy = tmp.path().join("policy.toml");
    std::fs::write(&policy, "[gates]\nmax_parse_failure_rate = 0.05\n").unwrap();
    let hone = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_hone"))
            .args(args)
            .args(["--server", &url, "--admin-key-env", "TEST_ADMIN_KEY"])
            .env("HONE_HOME", tmp.path())
            .env("TEST_ADMIN_KEY", "s3cret")
            .output()
            .unwrap()
    };
    let ok = |args: &[&str]| {
        let o = hone(args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    let out = ok(&["registry", "add", "nda", "nda-v2", "--notes", "n"]);
    assert!(
        out.contains("registered nda@2") && out.contains(&"ab".repeat(32)),
        "{out}"
    );
    let out = ok(&["registry", "list", "nda"]);
    assert!(
        out.contains("nda@2") && out.contains("nli_acc 0.800"),
        "{out}"
    );
    let out = ok(&["deploy", "nda@2", "--canary", "10"]);
    assert!(out.contains("takes 10%"), "{out}");
    let out = ok(&["deploy", "status", "nda"]);
    assert!(
        out.contains("parse failures: 41.0% vs 0.0%, significant (p<0.001)"),
        "{out}"
    );
    ok(&["deploy", "policy", "nda", policy.to_str().unwrap()]);
    let out = ok(&["deploy", "events", "nda", "--limit", "5"]);
    assert!(out.contains("canary") && out.contains("admin-api"), "{out}");
    let o = hone(&["registry", "show", "nda@7"]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("nda@7 is not in the registry") && e.contains("404"),
        "{e}"
    );
    ok(&["registry", "remove", "nda@2"]);
    ok(&["deploy", "rollback", "nda"]);

    let got = server.join().unwrap();
    let calls: Vec<(&str, &str)> = got
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            ("POST", "/admin/versions"),
            ("GET", "/admin/versions?name=nda"),
            ("POST", "/admin/deployments/nda"),
            ("GET", "/admin/deployments/nda"),
            ("PUT", "/admin/deployments/nda/policy"),
            ("GET", "/admin/deployments/nda/events?limit=5"),
            ("GET", "/admin/versions/nda/7"),
            ("DELETE", "/admin/versions/nda/2"),
            ("POST", "/admin/deployments/nda"),
        ]
    );
    assert!(got
        .iter()
        .all(|r| r.authorization.as_deref() == Some("Bearer s3cret")));
    let body = |i: usize| serde_json::from_str::<serde_json::Value>(&got[i].body).unwrap();
    assert_eq!(
        body(0),
        json!({"name": "nda", "path": "nda-v2", "notes": "n"})
    );
    assert_eq!(
        body(2),
        json!({"action": "deploy", "version": 2, "canary": 10.0})
    );
    assert_eq!(got[4].body, "[gates]\nmax_parse_failure_rate = 0.05\n");
    assert_eq!(body(8), json!({"action": "rollback"}));

    // the key variable must be set
    let o = Command::new(env!("CARGO_BIN_EXE_hone"))
        .args(["deploy", "status", "nda", "--server", &url])
        .args(["--admin-key-env", "TEST_UNSET_KEY_VAR"])
        .env_remove("TEST_UNSET_KEY_VAR")
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && e.contains("TEST_UNSET_KEY_VAR"),
        "{e}"
    );
}

/// `hone deploy NAME@N` and the subcommands share the word: the help lists both forms.
#[test]
fn deploy_help_lists_the_version_form_and_every_subcommand() {
    let out = Command::new(env!("CARGO_BIN_EXE_hone"))
        .args(["deploy", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let h = String::from_utf8(out.stdout).unwrap();
    for want in [
        "hone deploy [OPTIONS] [NAME@N]",
        "hone deploy <COMMAND>",
        "promote",
        "rollback",
        "status",
        "events",
        "policy",
        "--canary <PERCENT>",
        "--store <PATH|URL>",
        "--server <URL>",
        "--admin-key-env <VAR>",
    ] {
        assert!(h.contains(want), "missing {want} in:\n{h}");
    }
}

mod serve_support;

/// `--server URL`: the same commands through a real `hone serve`'s admin API.
#[test]
fn with_server_the_commands_drive_a_real_hone_serve() {
    let Some(env) = Env::new() else {
        println!("skipped: smollm2 is not cached (hone model fetch smollm2)");
        return;
    };
    env.ok(&["registry", "add", "nda", env.adapter(0)]);
    env.ok(&["registry", "add", "nda", env.adapter(1)]);
    env.ok(&["deploy", "nda@1"]);
    let store = env.store.to_str().unwrap().to_string();
    // the server finds the model in the real cache; the store is the test's
    let srv = serve_support::Server::start_with_env(
        &[
            "--store",
            &store,
            "--admin-key-env",
            "HONE_T_KEY",
            "--max-batch",
            "4",
        ],
        &[("HONE_T_KEY", "k1")],
    );
    let via = |args: &[&str], key: &str| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend([
            "--server",
            srv.base.as_str(),
            "--admin-key-env",
            "HONE_T_KEY",
        ]);
        env.command(&all)
            .env("HONE_T_KEY", key)
            .output()
            .expect("hone runs")
    };
    let text = |o: &Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let o = via(&["deploy", "nda@2", "--canary", "25"], "k1");
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("nda@2 takes 25% of the requests for nda"),
        "{}",
        text(&o)
    );
    // requests for the name are answered by one of the two versions
    for i in 0..8 {
        let body = serde_json::json!({"model": "nda", "max_tokens": 2, "user": format!("u{i}"),
                                      "messages": [{"role": "user", "content": "Hi"}]});
        let r: serde_json::Value = ureq::post(&format!("{}/v1/chat/completions", srv.base))
            .send_json(body)
            .expect("answered")
            .into_json()
            .unwrap();
        let m = r["model"].as_str().unwrap();
        assert!(m == "nda@1" || m == "nda@2", "{m}");
    }
    let o = via(&["deploy", "status", "nda"], "k1");
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("nda@2, 25% of requests") && t.contains("live numbers"),
        "{t}"
    );
    let o = via(&["registry", "list"], "k1");
    assert!(
        text(&o).contains("nda@1") && text(&o).contains("nda@2"),
        "{}",
        text(&o)
    );
    // a wrong key is refused and changes nothing
    let o = via(&["deploy", "rollback", "nda"], "wrong");
    assert!(!o.status.success());
    assert!(text(&o).contains("admin key"), "{}", text(&o));
    assert!(env
        .open()
        .deployment("nda")
        .unwrap()
        .unwrap()
        .canary
        .is_some());
    let o = via(&["deploy", "rollback", "nda"], "k1");
    assert!(o.status.success(), "{}", text(&o));
    let d = env.open().deployment("nda").unwrap().unwrap();
    assert_eq!((d.prod, d.canary.is_none()), (Some(1), true));
    let kinds = event_kinds(&env.ok(&["deploy", "events", "nda"]));
    assert_eq!(kinds.last().map(String::as_str), Some("rollback"));
}

/// The feedback loop's first half: a served canary's answers are logged, sampled into the review
/// queue, a reviewer's critical mark rolls the canary back through its policy, and the marks
/// become training examples (decontaminated against an evaluation file).
#[test]
fn reviewed_answers_roll_back_a_canary_and_become_examples() {
    let Some(env) = Env::new() else {
        println!("skipped: smollm2 is not cached (hone model fetch smollm2)");
        return;
    };
    env.ok(&["registry", "add", "nda", env.adapter(0)]);
    env.ok(&["registry", "add", "nda", env.adapter(1)]);
    env.ok(&["deploy", "nda@1"]);
    let policy = env.home.join("policy.toml");
    std::fs::write(&policy, "min_requests = 1000\n[gates]\nmax_critical = 0\n").unwrap();
    env.ok(&["deploy", "policy", "nda", policy.to_str().unwrap()]);
    env.ok(&["deploy", "nda@2", "--canary", "50"]);
    let store = env.store.to_str().unwrap().to_string();
    let srv = serve_support::Server::start(&[
        "--store",
        &store,
        "--request-log",
        "--review-share",
        "1",
        "--max-batch",
        "4",
    ]);
    for i in 0..12 {
        let body = serde_json::json!({"model": "nda", "max_tokens": 3, "user": format!("u{i}"),
            "messages": [{"role": "user", "content": format!("Is clause {i} a non-solicit?")}]});
        ureq::post(&format!("{}/v1/chat/completions", srv.base))
            .send_json(body)
            .expect("answered");
    }
    let st = env.open();
    let all = |st: &dyn Store| {
        st.review_items(&hone_ops::review::ReviewQuery {
            limit: 100,
            ..Default::default()
        })
        .unwrap()
    };
    let t0 = Instant::now();
    while all(st.as_ref()).len() < 12 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the queue did not fill"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let items = all(st.as_ref());
    let of = |v: &str| {
        items
            .iter()
            .find(|i| i.version.as_deref() == Some(v))
            .unwrap()
            .id
    };
    let (v1_item, v2_item) = (of("nda@1"), of("nda@2"));
    let listed = env.ok(&["review-queue", "list", "--limit", "50"]);
    assert_eq!(listed.lines().count(), 13, "{listed}");
    let shown = env.ok(&["review-queue", "show", &v1_item.to_string()]);
    assert!(
        shown.contains("[user]") && shown.contains("pending"),
        "{shown}"
    );
    env.ok(&[
        "review-queue",
        "mark",
        &v1_item.to_string(),
        "wrong",
        "--output",
        "Yes: clause 3 forbids soliciting employees.",
    ]);
    assert!(env
        .fails(&["review-queue", "mark", "99999", "correct"])
        .contains("no review item 99999"));
    // a critical mark on the canary rolls it back (policy max_critical = 0)
    env.ok(&[
        "review-queue",
        "mark",
        &v2_item.to_string(),
        "critical",
        "--note",
        "leaks",
    ]);
    let t0 = Instant::now();
    loop {
        let d = st.deployment("nda").unwrap().unwrap();
        if d.canary.is_none() {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "no rollback after a critical mark"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let events = st.events(Some("nda"), 10).unwrap();
    let rb = events.iter().find(|e| e.kind == "rollback").unwrap();
    assert_eq!(rb.actor, "policy");
    assert!(
        rb.message.contains("critical_marks 1.0000 > 0"),
        "{}",
        rb.message
    );
    // marks become examples: the correction, and not the critical one without one
    let out = env.home.join("corrections.jsonl");
    let printed = env.ok(&["data", "from-feedback", "--out", out.to_str().unwrap()]);
    assert!(
        printed.contains("2 reviewed answers -> 1 examples (1 marked wrong without a correction"),
        "{printed}"
    );
    let ex: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(ex["label"], "wrong");
    assert_eq!(ex["group"], "nda@1");
    assert!(ex["id"]
        .as_str()
        .unwrap()
        .starts_with(&format!("feedback-{v1_item}-request-")));
    assert_eq!(
        ex["messages"][1]["content"],
        "Yes: clause 3 forbids soliciting employees."
    );
    // the same question in the evaluation set: left out
    let question = ex["messages"][0]["content"].as_str().unwrap().to_string();
    let eval = env.home.join("eval.jsonl");
    std::fs::write(
        &eval,
        format!(
            "{}\n",
            serde_json::json!({"messages": [{"role": "user", "content": question},
                                             {"role": "assistant", "content": "No."}]})
        ),
    )
    .unwrap();
    let printed = env.ok(&[
        "data",
        "from-feedback",
        "--out",
        out.to_str().unwrap(),
        "--eval",
        eval.to_str().unwrap(),
    ]);
    assert!(
        printed.contains("1 corrections overlap the evaluation set: left out"),
        "{printed}"
    );
    assert!(printed.contains("0 examples written"), "{printed}");
}

/// Trains `dir/train.toml` (its output folder `v1`), registers the run as `name@1` and makes
/// it prod.
fn train_and_deploy(env: &Env, dir: &Path, name: &str) {
    let o = Command::new(env!("CARGO_BIN_EXE_hone"))
        .args([
            "train",
            "--config",
            dir.join("train.toml").to_str().unwrap(),
        ])
        .env("HONE_HOME", &env.home)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    env.ok(&["registry", "add", name, dir.join("v1").to_str().unwrap()]);
    env.ok(&["deploy", &format!("{name}@1")]);
}

/// `hone retrain`: the prod version's recorded configuration on its recorded data plus the
/// feedback, compared on the corrected cases and an evaluation set, registered with those
/// numbers, and a canary only when it is no worse and better on the corrections.
#[test]
fn retrain_trains_compares_registers_and_gates_the_canary() {
    let Some(env) = Env::new() else {
        println!("skipped: smollm2 is not cached (hone model fetch smollm2)");
        return;
    };
    let dir = env.home.join("retrain");
    std::fs::create_dir_all(&dir).unwrap();
    let ex = |q: &str, a: &str| {
        serde_json::json!({"messages": [{"role": "user", "content": q},
                                        {"role": "assistant", "content": a}]})
        .to_string()
    };
    let train: String = (0..6)
        .map(|i| {
            ex(
                &format!("Is clause {i} mutual?"),
                if i % 2 == 0 { "yes" } else { "no" },
            ) + "\n"
        })
        .collect();
    std::fs::write(dir.join("train.jsonl"), &train).unwrap();
    std::fs::write(
        dir.join("train.toml"),
        format!(
            "[model]\nbase = \"{}\"\n[lora]\nr = 4\nalpha = 8\n[optim]\nlr = 0.003\nepochs = 2\nbatch_size = 2\n[train]\ntop_layers = 2\n[data]\ntrain = \"train.jsonl\"\n[output]\ndir = \"v1\"\n",
            // the model file itself: the test's HONE_HOME has no model cache
            hone_model::fetch::cached_for_tests("smollm2").unwrap().display()
        ),
    )
    .unwrap();
    train_and_deploy(&env, &dir, "clauses");
    let feedback = dir.join("feedback.jsonl");
    std::fs::write(
        &feedback,
        format!(
            "{}\n{}\n",
            ex("Is clause 40 one-sided?", "no"),
            ex("Is clause 41 one-sided?", "yes")
        ),
    )
    .unwrap();
    let out = dir.join("run2");
    let printed = env.ok(&[
        "retrain",
        "clauses",
        "--feedback",
        feedback.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--eval",
        dir.join("train.jsonl").to_str().unwrap(),
        "--canary",
        "20",
    ]);
    assert!(
        printed.contains("retraining clauses@1") && printed.contains("+ 2 new examples"),
        "{printed}"
    );
    assert!(printed.contains("registered clauses@2"), "{printed}");
    let st = env.open();
    let v2 = st.version(&"clauses@2".parse().unwrap()).unwrap().unwrap();
    // trained on the recorded data plus the feedback
    let data = v2.meta.data.iter().find(|d| d.role == "train").unwrap();
    assert_eq!(data.examples, Some(8));
    assert!(
        v2.meta
            .notes
            .contains("retrained from clauses@1 + 2 examples"),
        "{}",
        v2.meta.notes
    );
    let m = &v2.meta.metrics;
    for k in [
        "corrected_accuracy",
        "corrected_accuracy_prod",
        "eval_accuracy",
        "eval_accuracy_prod",
    ] {
        assert!(
            m.contains_key(&format!("metrics.{k}")),
            "{k} missing: {m:?}"
        );
    }
    // the canary follows the gate the numbers say
    let better = m["metrics.corrected_accuracy"] > m["metrics.corrected_accuracy_prod"];
    let no_worse = m["metrics.eval_accuracy"] >= m["metrics.eval_accuracy_prod"];
    let d = st.deployment("clauses").unwrap().unwrap();
    assert_eq!(d.canary.is_some(), better && no_worse, "{printed}");
    // the evaluation answers became clauses@2's baseline: 6 answers, each classified
    let b = v2.meta.baseline.as_ref().expect("a baseline from --eval");
    assert_eq!(b.answers, 6);
    assert_eq!(b.formats.values().sum::<u64>(), 6);
    assert!(b.source.ends_with("train.jsonl"), "{b:?}");
    // the run folder's configuration starts fresh: clauses@1 had no initial adapter
    let cfg2 = std::fs::read_to_string(out.join("train.toml")).unwrap();
    assert!(!cfg2.contains("init ="), "{cfg2}");

    // --from-previous: the next run starts from prod's registered adapter (clauses@1 is
    // still prod), recorded in its configuration; a rank that cannot fit it is refused
    let v1 = st.version(&"clauses@1".parse().unwrap()).unwrap().unwrap();
    let v1_dir = hone_ops::registry::checked_dir(st.as_ref(), &v1).unwrap();
    let retrain_from_previous = |out: &str, extra: &[&str]| {
        let mut args = vec![
            "retrain",
            "clauses",
            "--feedback",
            feedback.to_str().unwrap(),
            "--from-previous",
            "--canary",
            "0",
            "--set",
            "optim.epochs=1",
        ];
        args.extend(extra);
        let o = dir.join(out);
        let mut args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        args.extend(["--out".to_string(), o.display().to_string()]);
        (o, args)
    };
    let (out3, args) = retrain_from_previous("run3", &[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let printed = env.ok(&args);
    assert!(
        printed.contains("starting from clauses@1's adapter")
            && printed.contains("registered clauses@3"),
        "{printed}"
    );
    let echo = std::fs::read_to_string(out3.join("adapter/train_config.toml")).unwrap();
    assert!(
        echo.contains(&format!("init = \"{}\"", v1_dir.display())),
        "{echo}"
    );
    let (_, args) = retrain_from_previous("run4", &["--set", "lora.r=8"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let e = env.fails(&args);
    assert!(
        e.contains("`lora.r`") && e.contains("r = 4, this run r = 8"),
        "{e}"
    );
    // refusals: empty feedback; training data changed since the version was trained
    std::fs::write(&feedback, "").unwrap();
    let e = env.fails(&[
        "retrain",
        "clauses",
        "--feedback",
        feedback.to_str().unwrap(),
        "--out",
        dir.join("x").to_str().unwrap(),
    ]);
    assert!(e.contains("feedback.jsonl"), "{e}");
    std::fs::write(dir.join("train.jsonl"), train + &ex("extra", "no") + "\n").unwrap();
    std::fs::write(&feedback, ex("q", "a") + "\n").unwrap();
    let e = env.fails(&[
        "retrain",
        "clauses",
        "--feedback",
        feedback.to_str().unwrap(),
        "--out",
        dir.join("y").to_str().unwrap(),
    ]);
    assert!(e.contains("changed since it was trained"), "{e}");
}

/// Synthetic NDAs (`hone data synth nda`), each cut to its first 12 spans (a short review), the
/// labels whose evidence was cut becoming NotMentioned.
fn short_ndas(dir: &Path, docs: usize, seed: u64) -> Vec<serde_json::Value> {
    let o = Command::new(env!("CARGO_BIN_EXE_hone"))
        .args([
            "data",
            "synth",
            "nda",
            "--docs",
            &docs.to_string(),
            "--seed",
        ])
        .arg(seed.to_string())
        .arg("--out")
        .arg(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read_to_string(dir.join("documents.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut d: serde_json::Value = serde_json::from_str(l).unwrap();
            let spans: Vec<[usize; 2]> = serde_json::from_value(d["spans"].clone()).unwrap();
            let text: String = d["text"]
                .as_str()
                .unwrap()
                .chars()
                .take(spans[11][1])
                .collect();
            d["text"] = text.into();
            d["spans"] = serde_json::to_value(&spans[..12]).unwrap();
            for (_, g) in d["labels"].as_object_mut().unwrap() {
                let kept: Vec<u64> = g["spans"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|v| v.as_u64().filter(|&i| i < 12))
                    .collect();
                if kept.is_empty() {
                    g["label"] = "not_mentioned".into();
                }
                g["spans"] = serde_json::to_value(kept).unwrap();
            }
            d
        })
        .collect()
}

fn jsonl(docs: &[serde_json::Value]) -> String {
    docs.iter().map(|d| d.to_string() + "\n").collect()
}

/// `hone retrain` of a review adapter: the feedback is annotated documents (what `data
/// from-feedback --kind review` writes), appended to the recorded documents; prod and the new
/// adapter are compared by reviewing the corrected and the evaluation documents (3-class
/// accuracy); chat examples are refused for a review version.
#[test]
fn retrain_of_a_review_adapter_learns_from_corrected_documents() {
    let Some(env) = Env::new() else {
        println!("skipped: smollm2 is not cached (hone model fetch smollm2)");
        return;
    };
    let dir = env.home.join("retrain-review");
    let docs = short_ndas(&dir.join("synth"), 6, 11);
    std::fs::write(dir.join("train.jsonl"), jsonl(&docs[..3])).unwrap();
    std::fs::write(dir.join("eval.jsonl"), jsonl(&docs[4..])).unwrap();
    std::fs::write(
        dir.join("train.toml"),
        format!(
            "[model]\nbase = \"{}\"\n[lora]\nr = 4\nalpha = 8\n[optim]\nlr = 0.003\nepochs = 1\nbatch_size = 2\nmax_seq_len = 512\n[train]\ntop_layers = 1\n[data]\ntrain = \"train.jsonl\"\nformat = \"review\"\n[output]\ndir = \"v1\"\n",
            hone_model::fetch::cached_for_tests("smollm2").unwrap().display()
        ),
    )
    .unwrap();
    train_and_deploy(&env, &dir, "nda");
    // one corrected document, with provenance as from-feedback writes it
    let mut fb = docs[3].clone();
    fb["provenance"] = serde_json::json!({"item": 7, "request": 9, "mark": "wrong"});
    let feedback = dir.join("feedback.jsonl");
    std::fs::write(&feedback, jsonl(&[fb.clone()])).unwrap();
    let out = dir.join("run2");
    let printed = env.ok(&[
        "retrain",
        "nda",
        "--feedback",
        feedback.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--eval",
        dir.join("eval.jsonl").to_str().unwrap(),
        "--repeat",
        "2",
    ]);
    assert!(
        printed.contains("retraining nda@1") && printed.contains("+ 1 new examples"),
        "{printed}"
    );
    assert!(printed.contains("acc3"), "{printed}");
    assert!(printed.contains("registered nda@2"), "{printed}");
    // the merged documents: the recorded three, then the correction twice, provenance kept
    let merged: Vec<serde_json::Value> = std::fs::read_to_string(out.join("train.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(merged.len(), 5);
    assert_eq!(merged[3], fb);
    assert_eq!(merged[4], fb);
    let st = env.open();
    let v2 = st.version(&"nda@2".parse().unwrap()).unwrap().unwrap();
    let m = &v2.meta.metrics;
    for k in ["corrected", "eval"] {
        for who in ["", "_prod"] {
            let key = format!("metrics.{k}_accuracy{who}");
            let v = m
                .get(&key)
                .unwrap_or_else(|| panic!("{key} missing: {m:?}"));
            assert!((0.0..=1.0).contains(v), "{key} = {v}");
        }
    }
    let better = m["metrics.corrected_accuracy"] > m["metrics.corrected_accuracy_prod"];
    let no_worse = m["metrics.eval_accuracy"] >= m["metrics.eval_accuracy_prod"];
    let d = st.deployment("nda").unwrap().unwrap();
    assert_eq!(d.canary.is_some(), better && no_worse, "{printed}");
    // chat examples are not documents: refused, naming the file
    std::fs::write(
        &feedback,
        serde_json::json!({"messages": [{"role": "user", "content": "q"},
                                        {"role": "assistant", "content": "a"}]})
        .to_string()
            + "\n",
    )
    .unwrap();
    let e = env.fails(&[
        "retrain",
        "nda",
        "--feedback",
        feedback.to_str().unwrap(),
        "--out",
        dir.join("x").to_str().unwrap(),
    ]);
    assert!(
        e.contains("feedback.jsonl") && e.contains("documents"),
        "{e}"
    );
}

/// `hone eval` writes each candidate's answers as an evaluation baseline (output tokens and
/// format classes); put beside the adapter, `registry add` records it and `registry show`
/// prints it, and a version without one says so.
#[test]
fn an_eval_baseline_beside_the_adapter_is_recorded_with_the_version() {
    let Some(env) = Env::new() else {
        println!("skipped: smollm2 is not cached (hone model fetch smollm2)");
        return;
    };
    env.ok(&["registry", "add", "plain", env.adapter(1)]);
    let shown = env.ok(&["registry", "show", "plain@1"]);
    assert!(
        shown.contains("drift baseline") && shown.contains("none (no output_baseline.json"),
        "{shown}"
    );
    let dir = env.home.join("evalb");
    std::fs::create_dir_all(&dir).unwrap();
    let lines: String = ["The food was great.", "An awful evening.", "It was fine."]
        .iter()
        .zip(["positive", "negative", "negative"])
        .map(|(q, a)| {
            serde_json::json!({"instruction": "Positive or negative?", "input": q, "output": a})
                .to_string()
                + "\n"
        })
        .collect();
    std::fs::write(dir.join("test.jsonl"), lines).unwrap();
    let gguf = hone_model::fetch::cached_for_tests("smollm2").unwrap();
    std::fs::write(
        dir.join("eval.toml"),
        format!(
            "[task]\ntype = \"classification\"\nlabels = [\"positive\", \"negative\"]\n\
             [data]\neval = \"test.jsonl\"\n[generation]\nmax_tokens = 4\n\
             [[candidate]]\nname = \"tuned\"\nkind = \"local\"\nmodel = \"{}\"\nadapter = \"{}\"\n\
             [output]\ndir = \"out\"\n",
            gguf.display(),
            env.adapter(0)
        ),
    )
    .unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_hone"))
        .args(["eval", "--config", dir.join("eval.toml").to_str().unwrap()])
        .env("HONE_HOME", &env.home)
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let file = dir.join("out/baselines/tuned/output_baseline.json");
    assert!(
        printed.contains(&format!("baselines: {}", file.display())),
        "{printed}"
    );
    let b: hone_ops::baseline::OutputBaseline =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    // three answers of at most 4 tokens, each in one class
    assert_eq!(b.answers, 3);
    assert_eq!(b.formats.values().sum::<u64>(), 3);
    assert!(b.tokens_max <= 4.0 && b.tokens_mean > 0.0, "{b:?}");
    assert!(
        b.source.contains("test.jsonl") && b.source.ends_with("(tuned)"),
        "{b:?}"
    );

    std::fs::copy(&file, env.adapters[0].join("output_baseline.json")).unwrap();
    env.ok(&["registry", "add", "tuned", env.adapter(0)]);
    let v = env
        .open()
        .version(&"tuned@1".parse().unwrap())
        .unwrap()
        .unwrap();
    let recorded = v.meta.baseline.expect("recorded");
    assert_eq!((recorded.answers, &recorded.formats), (3, &b.formats));
    assert!(v
        .meta
        .files
        .iter()
        .any(|f| f.name == "output_baseline.json"));
    let shown = env.ok(&["registry", "show", "tuned@1"]);
    assert!(shown.contains(&b.summary()), "{shown}");
}

/// Active learning and drafts feed the review queue: `data select` picks the pool conversations
/// the adapter is least sure of (a near-copy of a pick is skipped), `data draft` asks an
/// OpenAI-compatible endpoint (a real `hone serve` here) for drafts; both land in the queue.
#[test]
fn select_and_draft_fill_the_review_queue() {
    let Some(env) = Env::new() else {
        println!("skipped: smollm2 is not cached (hone model fetch smollm2)");
        return;
    };
    let pool = env.home.join("pool.jsonl");
    let qs = [
        "Does the recipient have to return all copies when asked?",
        "Does the recipient have to return all copies when asked ?",
        "Is the agreement governed by English law?",
        "May the recipient tell its lawyers?",
        "How long does confidentiality last?",
    ];
    let lines: String = qs
        .iter()
        .map(|q| {
            serde_json::json!({"messages": [{"role": "user", "content": q}]}).to_string() + "\n"
        })
        .collect();
    std::fs::write(&pool, lines).unwrap();
    let model = hone_model::fetch::cached_for_tests("smollm2").unwrap();
    let out = env.ok(&[
        "data",
        "select",
        "--model",
        model.to_str().unwrap(),
        "--adapter",
        env.adapter(0),
        "--pool",
        pool.to_str().unwrap(),
        "--budget",
        "4",
        "--max-tokens",
        "6",
    ]);
    assert!(out.contains("4 of 5 pool conversations picked"), "{out}");
    // never both of the near-identical pair
    let picked: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(
        picked
            .iter()
            .filter(|l| l.contains("return all copies"))
            .count(),
        1,
        "{out}"
    );
    // most uncertain first
    let u: Vec<f64> = picked
        .iter()
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert!(u.windows(2).all(|w| w[0] >= w[1]), "{u:?}");
    let st = env.open();
    let q = |st: &dyn Store| {
        st.review_items(&hone_ops::review::ReviewQuery {
            pending: Some(true),
            limit: 50,
            ..Default::default()
        })
        .unwrap()
    };
    let items = q(st.as_ref());
    assert_eq!(items.len(), 4);
    assert!(items
        .iter()
        .all(|i| i.model == "select:v1" && !i.output.is_empty()));

    let srv = serve_support::Server::start(&["--max-batch", "4"]);
    let out = env.ok(&[
        "data",
        "draft",
        "--endpoint",
        &srv.base,
        "--model",
        "smollm2",
        "--pool",
        pool.to_str().unwrap(),
        "--max-tokens",
        "8",
    ]);
    assert!(out.contains("5 drafts by smollm2 queued"), "{out}");
    let items = q(st.as_ref());
    assert_eq!(
        items.iter().filter(|i| i.model == "draft:smollm2").count(),
        5
    );
    // a refusal from the endpoint is an error naming it
    let e = env.fails(&[
        "data",
        "draft",
        "--endpoint",
        &srv.base,
        "--model",
        "no-such-model",
        "--pool",
        pool.to_str().unwrap(),
    ]);
    assert!(e.contains("HTTP 404") && e.contains("no-such-model"), "{e}");
}
