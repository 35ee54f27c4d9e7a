//! `hone serve --request-log` killed with SIGKILL in the middle of traffic: the store is intact
//! (SQLite's integrity check, every row readable), at most the queued rows are lost, and `hone
//! log export` writes what was logged as JSONL (to stdout or atomically to a file).

mod serve_support;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hone_ops::request_log::LogQuery;
use serde_json::{json, Value};
use serve_support::{model_cached, Server};

#[test]
fn a_killed_server_leaves_an_intact_log_that_exports() {
    if !model_cached() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("registry.db");
    let db_s = db.to_str().unwrap().to_string();
    let mut srv = Server::start(&[
        "--store",
        &db_s,
        "--request-log",
        "--log-redact",
        "email",
        "--max-batch",
        "8",
    ]);
    let answered = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let (url, answered, stop) = (srv.base.clone(), answered.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    let body = json!({"model": "smollm2", "max_tokens": 3, "user": format!("w{t}"),
                        "messages": [{"role": "user", "content": format!("Note {i} for ann@firm.com")}]});
                    match ureq::post(&format!("{url}/v1/chat/completions")).send_json(body) {
                        Ok(r) if r.status() == 200 => {
                            answered.fetch_add(1, Ordering::SeqCst);
                        }
                        _ => return,
                    }
                    i += 1;
                }
            })
        })
        .collect();
    // let rows be written, then kill in the middle of the traffic
    while answered.load(Ordering::SeqCst) < 40 {
        std::thread::sleep(Duration::from_millis(20));
    }
    srv.kill();
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    let sent = answered.load(Ordering::SeqCst);

    // the database is intact and readable
    let conn = rusqlite::Connection::open(&db).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    drop(conn);
    let store = hone_ops::open_store(Some(&db_s), None).unwrap();
    let rows = store
        .requests(&LogQuery {
            limit: 100_000,
            ..Default::default()
        })
        .unwrap();
    println!(
        "{sent} requests answered before the kill, {} logged",
        rows.len()
    );
    // rows are written every 200 ms: only the last moments' rows may be missing
    assert!(
        rows.len() <= sent && rows.len() + 40 >= sent,
        "{} of {sent}",
        rows.len()
    );
    assert!(rows.iter().all(|r| r.status == 200 && !r.output.is_empty()));
    assert!(rows
        .iter()
        .all(|r| !r.input.to_string().contains("ann@firm.com")));

    // export: stdout and --out give the same JSONL
    let hone = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_hone"))
            .args(args)
            .args(["--store", &db_s])
            .output()
            .unwrap()
    };
    let out = hone(&["log", "export", "--since", "1h"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), rows.len());
    assert_eq!(lines[0]["model"], "smollm2");
    let file = dir.path().join("log.jsonl");
    let out2 = hone(&["log", "export", "--out", file.to_str().unwrap()]);
    assert!(out2.status.success());
    assert_eq!(std::fs::read(&file).unwrap(), out.stdout);
    // nothing newer than a future time; a bad time names the flag
    let none = hone(&["log", "export", "--since", "2100-01-01"]);
    assert!(none.status.success() && none.stdout.is_empty());
    let bad = hone(&["log", "export", "--since", "yesterday"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--since `yesterday`"));
}
