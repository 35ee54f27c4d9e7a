//! The SQLite output cache: round trips, keys, persistence, threads and bad files.

use std::sync::Arc;

use hone_eval::cache::{CachedOutput, OutputCache, SCHEMA_VERSION};
use hone_eval::endpoint::Completion;
use hone_eval::Error;
use hone_model::chat_template::Message;

fn msgs(contents: &[(&str, &str)]) -> Vec<Message> {
    contents
        .iter()
        .map(|(role, content)| Message::new(*role, *content))
        .collect()
}

fn cache_err(e: Error) -> (std::path::PathBuf, String) {
    match e {
        Error::Cache { path, msg } => (path, msg),
        other => panic!("expected Error::Cache, got {other:?}"),
    }
}

#[test]
fn cache_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<OutputCache>();
}

#[test]
fn put_then_get_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let cache = OutputCache::open(dir.path().join("outputs.sqlite")).unwrap();
    assert!(cache.is_empty().unwrap());
    let key = OutputCache::key("endpoint m", &[Message::user("hi")], r#"{"temperature":0}"#);
    assert_eq!(cache.get(&key).unwrap(), None);

    let out = CachedOutput {
        text: "héllo \u{1F600}\nline two".into(),
        prompt_tokens: Some(12),
        completion_tokens: None,
        latency_s: 0.25,
        created_at: 1_700_000_000,
        mean_logprob: Some(-0.375),
    };
    cache.put(&key, &out).unwrap();
    assert_eq!(cache.get(&key).unwrap(), Some(out.clone()));
    assert_eq!(cache.len().unwrap(), 1);

    // A second put under the same key replaces the first.
    let newer = CachedOutput::new("second", None, Some(3), 1.5);
    assert!(newer.created_at > 1_700_000_000);
    cache.put(&key, &newer).unwrap();
    assert_eq!(cache.get(&key).unwrap(), Some(newer));
    assert_eq!(cache.len().unwrap(), 1);
}

#[test]
fn from_completion_keeps_text_tokens_and_latency() {
    let c = Completion {
        text: "answer".into(),
        prompt_tokens: Some(10),
        completion_tokens: Some(2),
        latency_s: 0.5,
        attempts: 3,
        finish_reason: Some("stop".into()),
    };
    let out = CachedOutput::from_completion(&c);
    assert_eq!(out.text, "answer");
    assert_eq!(out.prompt_tokens, Some(10));
    assert_eq!(out.completion_tokens, Some(2));
    assert_eq!(out.latency_s, 0.5);
    // serde round trip
    let json = serde_json::to_string(&out).unwrap();
    assert_eq!(serde_json::from_str::<CachedOutput>(&json).unwrap(), out);
}

#[test]
fn keys_differ_when_any_part_differs() {
    let base_msgs = msgs(&[("system", "be brief"), ("user", "hello")]);
    let params = r#"{"max_tokens":64,"temperature":0.0}"#;
    let base = OutputCache::key("cand-a", &base_msgs, params);
    assert_eq!(base.len(), 64);
    assert!(base
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    // Deterministic.
    assert_eq!(base, OutputCache::key("cand-a", &base_msgs, params));

    let variants = [
        OutputCache::key("cand-b", &base_msgs, params),
        OutputCache::key(
            "cand-a",
            &msgs(&[("system", "be brief"), ("user", "hello!")]),
            params,
        ),
        OutputCache::key(
            "cand-a",
            &msgs(&[("user", "be brief"), ("user", "hello")]),
            params,
        ),
        OutputCache::key(
            "cand-a",
            &msgs(&[("user", "hello"), ("system", "be brief")]),
            params,
        ),
        OutputCache::key("cand-a", &msgs(&[("user", "hello")]), params),
        // The same characters split differently between messages.
        OutputCache::key(
            "cand-a",
            &msgs(&[("system", "be brie"), ("user", "fhello")]),
            params,
        ),
        OutputCache::key(
            "cand-a",
            &base_msgs,
            r#"{"max_tokens":65,"temperature":0.0}"#,
        ),
        OutputCache::key(
            "cand-a",
            &base_msgs,
            r#"{"max_tokens":64,"temperature":0.7}"#,
        ),
        OutputCache::key("cand-a", &base_msgs, r#"{"max_tokens":64}"#),
        OutputCache::key("cand-a", &base_msgs, "not json"),
        OutputCache::key("cand-a", &[], params),
    ];
    for (i, v) in variants.iter().enumerate() {
        assert_ne!(v, &base, "variant {i} collides with the base key");
        for (j, w) in variants.iter().enumerate().skip(i + 1) {
            assert_ne!(v, w, "variants {i} and {j} collide");
        }
    }
    // Identity / message boundaries cannot be shifted into each other.
    assert_ne!(
        OutputCache::key("ab", &msgs(&[("user", "c")]), "{}"),
        OutputCache::key("a", &msgs(&[("user", "bc")]), "{}"),
    );
}

#[test]
fn equal_params_written_differently_share_a_key() {
    let m = [Message::user("q")];
    let a = OutputCache::key("c", &m, r#"{"temperature":0.0,"max_tokens":64}"#);
    let b = OutputCache::key("c", &m, r#"{ "max_tokens": 64, "temperature": 0 }"#);
    assert_eq!(a, b);
    let nested_a = OutputCache::key("c", &m, r#"{"x":{"b":1,"a":[1,2]}}"#);
    let nested_b = OutputCache::key("c", &m, r#"{"x":{"a":[1,2],"b":1}}"#);
    assert_eq!(nested_a, nested_b);
    // Array order still matters.
    assert_ne!(
        nested_a,
        OutputCache::key("c", &m, r#"{"x":{"a":[2,1],"b":1}}"#)
    );
}

#[test]
fn outputs_persist_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("dir").join("cache.db");
    let key = OutputCache::key("c", &[Message::user("q")], "{}");
    let out = CachedOutput::new("kept", Some(1), Some(2), 0.1);
    {
        let cache = OutputCache::open(&path).unwrap();
        assert_eq!(cache.path(), path.as_path());
        cache.put(&key, &out).unwrap();
    }
    assert!(path.is_file());
    let cache = OutputCache::open(&path).unwrap();
    assert_eq!(cache.get(&key).unwrap(), Some(out));
    assert_eq!(cache.len().unwrap(), 1);
    // Opening a second handle on the same file (as a second process would) sees it too.
    let other = OutputCache::open(&path).unwrap();
    assert_eq!(other.len().unwrap(), 1);
}

#[test]
fn concurrent_puts_from_threads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.sqlite");
    let cache = Arc::new(OutputCache::open(&path).unwrap());
    let threads = 8;
    let per_thread = 50;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let cache = Arc::clone(&cache);
            std::thread::spawn(move || {
                for i in 0..per_thread {
                    let key =
                        OutputCache::key(&format!("t{t}"), &[Message::user(format!("{i}"))], "{}");
                    cache
                        .put(
                            &key,
                            &CachedOutput::new(format!("{t}/{i}"), Some(i), None, 0.01),
                        )
                        .unwrap();
                    // Reads interleave with other threads' writes.
                    assert!(cache.get(&key).unwrap().is_some());
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(cache.len().unwrap(), threads * per_thread);
    drop(cache);
    let cache = OutputCache::open(&path).unwrap();
    for t in 0..threads {
        for i in 0..per_thread {
            let key = OutputCache::key(&format!("t{t}"), &[Message::user(format!("{i}"))], "{}");
            let got = cache.get(&key).unwrap().unwrap();
            assert_eq!(got.text, format!("{t}/{i}"));
            assert_eq!(got.prompt_tokens, Some(i));
        }
    }
}

#[test]
fn a_file_that_is_not_sqlite_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outputs.sqlite");
    std::fs::write(&path, "this is a JSONL file, not a database\n".repeat(200)).unwrap();
    let (p, msg) = cache_err(OutputCache::open(&path).unwrap_err());
    assert_eq!(p, path);
    assert!(msg.contains("not an SQLite database"), "{msg}");
    let shown = OutputCache::open(&path).unwrap_err().to_string();
    assert!(shown.contains(&path.display().to_string()), "{shown}");
    // The file was not touched.
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .starts_with("this is a JSONL"));
}

#[test]
fn another_applications_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("CREATE TABLE customers (id INTEGER PRIMARY KEY);")
        .unwrap();
    drop(conn);
    let (p, msg) = cache_err(OutputCache::open(&path).unwrap_err());
    assert_eq!(p, path);
    assert!(
        msg.contains("not a hone output cache") && msg.contains("customers"),
        "{msg}"
    );
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.db");
    drop(OutputCache::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(conn);
    let (_, msg) = cache_err(OutputCache::open(&path).unwrap_err());
    assert!(msg.contains("newer hone"), "{msg}");
}

#[test]
fn non_finite_latency_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let cache = OutputCache::open(dir.path().join("c.db")).unwrap();
    let mut out = CachedOutput::new("x", None, None, f64::NAN);
    let (_, msg) = cache_err(cache.put("k", &out).unwrap_err());
    assert!(msg.contains("latency_s"), "{msg}");
    out.latency_s = 0.0;
    out.prompt_tokens = Some(u64::MAX);
    let (_, msg) = cache_err(cache.put("k", &out).unwrap_err());
    assert!(msg.contains("prompt_tokens"), "{msg}");
    assert_eq!(cache.get("k").unwrap(), None);
}

/// A cache written before hone recorded log-probabilities (schema 1, no `mean_logprob` column)
/// opens: it is upgraded in place, its rows read with no log-probability, and new rows keep
/// theirs.
#[test]
fn a_version_1_cache_is_upgraded_and_its_rows_have_no_logprob() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TABLE outputs (key TEXT PRIMARY KEY NOT NULL, text TEXT NOT NULL, \
         prompt_tokens INTEGER, completion_tokens INTEGER, latency_s REAL NOT NULL, \
         created_at INTEGER NOT NULL) WITHOUT ROWID; \
         INSERT INTO outputs VALUES ('old', 'an old answer', 5, 2, 0.5, 1700000000); \
         PRAGMA user_version = 1;",
    )
    .unwrap();
    drop(conn);
    let cache = OutputCache::open(&path).unwrap();
    let old = cache.get("old").unwrap().unwrap();
    assert_eq!(old.text, "an old answer");
    assert_eq!(old.completion_tokens, Some(2));
    assert_eq!(old.mean_logprob, None);
    let new = CachedOutput::new("new", Some(1), Some(3), 0.1).with_mean_logprob(Some(-1.25));
    cache.put("new", &new).unwrap();
    assert_eq!(cache.get("new").unwrap().unwrap().mean_logprob, Some(-1.25));
    drop(cache);
    // Opened again (now version 2): nothing to upgrade, both rows still there.
    let cache = OutputCache::open(&path).unwrap();
    assert_eq!(cache.len().unwrap(), 2);
    assert_eq!(cache.get("new").unwrap().unwrap(), new);
    // A non-finite log-probability is refused, not stored as NULL.
    let bad = CachedOutput::new("x", None, None, 0.1).with_mean_logprob(Some(f64::NAN));
    let (_, msg) = cache_err(cache.put("bad", &bad).unwrap_err());
    assert!(msg.contains("mean_logprob"), "{msg}");
}
