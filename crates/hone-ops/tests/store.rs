//! The store's behaviour, one set of checks run against both backends: SQLite in a temporary
//! folder and PostgreSQL on a fresh database per test (`CREATE DATABASE hone_test_<random>` on
//! the server `HONE_TEST_PG_URL` names; `scripts/pg-test-cluster` starts one). Without
//! `HONE_TEST_PG_URL` the PostgreSQL tests print why and pass, unless `HONE_REQUIRE_PG=1`.

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use hone_ops::deployment::Change;
use hone_ops::store::test_db::TestDatabase;
use hone_ops::store::{postgres as pg, sqlite::SqliteStore, Note};
use hone_ops::version::VersionMeta;
use hone_ops::{Error, Store, VersionRef};

// ---------------------------------------------------------------------------------------------
// Backends

/// A place a store lives; every `open` is a new handle (connection) on the same data.
enum Db {
    Sqlite(tempfile::TempDir),
    Pg(PgDb),
}

impl Db {
    fn open(&self) -> Arc<dyn Store> {
        self.try_open().unwrap_or_else(|e| panic!("{e}"))
    }

    fn try_open(&self) -> Result<Arc<dyn Store>, String> {
        match self {
            Db::Sqlite(dir) => SqliteStore::open(&dir.path().join("registry.db"), None)
                .map(|s| Arc::new(s) as Arc<dyn Store>)
                .map_err(|e| format!("open sqlite: {e}")),
            Db::Pg(db) => pg::open(&db.url, &db.objects.path().join("objects"))
                .map_err(|e| format!("open pg: {e}")),
        }
    }

    /// Overwrites the stored state of `name`'s deployment with something unreadable.
    fn corrupt_deployment(&self, name: &str) {
        match self {
            Db::Sqlite(dir) => {
                let c = rusqlite::Connection::open(dir.path().join("registry.db")).unwrap();
                let n = c
                    .execute(
                        "UPDATE deployments SET state = '{\"name\": 3' WHERE name = ?1",
                        [name],
                    )
                    .unwrap();
                assert_eq!(n, 1);
            }
            Db::Pg(db) => {
                let mut c = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
                let n = c
                    .execute(
                        "UPDATE hone_deployments SET state = '{\"name\": 3' WHERE name = $1",
                        &[&name],
                    )
                    .unwrap();
                assert_eq!(n, 1);
            }
        }
    }
}

/// A database of its own on the test server and an objects folder, both removed afterwards.
struct PgDb {
    db: TestDatabase,
    objects: tempfile::TempDir,
}

impl PgDb {
    fn create(test: &str) -> Option<Self> {
        Some(Self {
            db: TestDatabase::create(test)?,
            objects: tempfile::tempdir().unwrap(),
        })
    }
}

impl std::ops::Deref for PgDb {
    type Target = TestDatabase;
    fn deref(&self) -> &TestDatabase {
        &self.db
    }
}

fn sqlite_db() -> Db {
    Db::Sqlite(tempfile::tempdir().unwrap())
}

fn pg_db(test: &str) -> Option<Db> {
    PgDb::create(test).map(Db::Pg)
}

/// Each check as two tests, `on_sqlite::NAME` and `on_postgres::NAME`.
macro_rules! on_both_backends {
    ($($check:ident),* $(,)?) => {
        mod on_sqlite {
            $(#[test]
            fn $check() {
                super::$check(&super::sqlite_db());
            })*
        }
        mod on_postgres {
            $(#[test]
            fn $check() {
                if let Some(db) = super::pg_db(concat!("on_postgres::", stringify!($check))) {
                    super::$check(&db);
                }
            })*
        }
    };
}

on_both_backends!(
    numbers_are_never_reused,
    removal_refused_while_deployed,
    deploy_canary_promote_rollback,
    generation_conflict,
    unregistered_versions_refused,
    change_seq_moves_on_every_change,
    concurrent_registrations,
    corrupt_deployment_is_an_error,
    request_log_round_trip_query_and_prune,
    review_queue_order_and_marks,
);

// ---------------------------------------------------------------------------------------------
// Checks

fn meta(tag: &str) -> VersionMeta {
    VersionMeta {
        adapter_sha256: format!("{tag:0>64}"),
        files: Vec::new(),
        base_model: "smollm2".into(),
        base_sha256: None,
        train_config: None,
        data: Vec::new(),
        metrics: BTreeMap::from([("accuracy".to_string(), 0.5)]),
        metrics_source: None,
        notes: tag.into(),
        source: format!("/runs/{tag}"),
        baseline: None,
    }
}

fn register(s: &dyn Store, name: &str, n: usize) {
    for i in 0..n {
        s.insert_version(name, &meta(&i.to_string()), "test")
            .unwrap();
    }
}

fn numbers(s: &dyn Store, name: &str) -> Vec<u32> {
    s.versions(Some(name))
        .unwrap()
        .iter()
        .map(|v| v.version)
        .collect()
}

fn kinds(s: &dyn Store, name: &str) -> Vec<String> {
    s.events(Some(name), 100)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

fn numbers_are_never_reused(db: &Db) {
    let s = &*db.open();
    for (i, want) in [1, 2, 3].into_iter().enumerate() {
        let v = s
            .insert_version("nda", &meta(&format!("m{i}")), "cli")
            .unwrap();
        assert_eq!(v.version, want);
        assert_eq!(v.meta, meta(&format!("m{i}")));
    }
    // another name counts from 1
    assert_eq!(
        s.insert_version("other", &meta("o"), "cli")
            .unwrap()
            .version,
        1
    );

    let got = s.version(&VersionRef::new("nda", 2)).unwrap().unwrap();
    assert_eq!((got.name.as_str(), got.version), ("nda", 2));
    assert_eq!(got.meta, meta("m1"));
    // a version's evaluation baseline is kept with it
    let mut based = meta("b");
    based.baseline = hone_ops::baseline::OutputBaseline::from_answers(
        "eval.jsonl",
        &[hone_ops::baseline::Answer {
            tokens: 7,
            format: hone_ops::baseline::FormatClass::JsonObject,
        }; 3],
    );
    let v = s.insert_version("based", &based, "cli").unwrap();
    let got = s.version(&v.reference()).unwrap().unwrap();
    assert_eq!(got.meta.baseline, based.baseline);
    assert_eq!(got.meta.baseline.unwrap().answers, 3);
    s.remove_version(&v.reference(), "cli").unwrap();

    s.remove_version(&VersionRef::new("nda", 3), "cli").unwrap();
    assert_eq!(numbers(s, "nda"), vec![1, 2]);
    assert!(s.version(&VersionRef::new("nda", 3)).unwrap().is_none());
    // the highest number was removed: the next one is still new
    assert_eq!(
        s.insert_version("nda", &meta("m3"), "cli").unwrap().version,
        4
    );
    s.remove_version(&VersionRef::new("nda", 1), "cli").unwrap();
    assert_eq!(numbers(s, "nda"), vec![2, 4]);

    // removing what is not there
    for v in [1, 3, 9] {
        let e = s
            .remove_version(&VersionRef::new("nda", v), "cli")
            .unwrap_err();
        assert!(matches!(e, Error::NotFound(_)), "{e}");
    }
    let all: Vec<(String, u32)> = s
        .versions(None)
        .unwrap()
        .into_iter()
        .map(|v| (v.name, v.version))
        .collect();
    assert_eq!(
        all,
        vec![("nda".into(), 2), ("nda".into(), 4), ("other".into(), 1)]
    );
    assert_eq!(
        kinds(s, "nda"),
        ["register", "register", "register", "remove", "register", "remove"]
    );
}

fn removal_refused_while_deployed(db: &Db) {
    let s = &*db.open();
    register(s, "nda", 3);
    let refused = |v: u32| {
        let e = s
            .remove_version(&VersionRef::new("nda", v), "cli")
            .unwrap_err();
        assert!(
            matches!(e, Error::Invalid(_)) && e.to_string().contains("deployed"),
            "nda@{v}: {e}"
        );
        assert!(s.version(&VersionRef::new("nda", v)).unwrap().is_some());
    };
    s.change("nda", &Change::Prod(1), None, "cli", None)
        .unwrap();
    refused(1); // prod
    s.change(
        "nda",
        &Change::Canary {
            version: 2,
            percent: 10.0,
        },
        None,
        "cli",
        None,
    )
    .unwrap();
    refused(2); // canary
    s.change("nda", &Change::Promote, None, "cli", None)
        .unwrap();
    refused(1); // the rollback target
    s.remove_version(&VersionRef::new("nda", 3), "cli").unwrap();
    s.change("nda", &Change::Rollback, None, "cli", None)
        .unwrap();
    // prod 1 again, nothing to roll back to: 2 is free
    s.remove_version(&VersionRef::new("nda", 2), "cli").unwrap();
    assert_eq!(numbers(s, "nda"), vec![1]);
}

fn deploy_canary_promote_rollback(db: &Db) {
    let s = &*db.open();
    register(s, "nda", 3);
    assert!(s.deployment("nda").unwrap().is_none());
    assert!(s.deployments().unwrap().is_empty());

    let (d, ev) = s
        .change("nda", &Change::Prod(1), None, "cli", None)
        .unwrap();
    assert_eq!((d.prod, d.previous, d.generation), (Some(1), None, 1));
    assert_eq!((ev.kind.as_str(), ev.actor.as_str()), ("deploy", "cli"));
    assert_eq!(s.deployment("nda").unwrap().unwrap(), d);

    let canary = Change::Canary {
        version: 2,
        percent: 10.0,
    };
    let (d, _) = s.change("nda", &canary, None, "cli", None).unwrap();
    let c = d.canary.clone().unwrap();
    assert_eq!((c.version, c.percent), (2, 10.0));

    let (d, _) = s
        .change("nda", &Change::Promote, None, "admin-api", None)
        .unwrap();
    assert_eq!(
        (d.prod, d.previous, d.canary.is_none(), d.generation),
        (Some(2), Some(1), true, 3)
    );

    let canary = Change::Canary {
        version: 3,
        percent: 25.0,
    };
    s.change("nda", &canary, None, "cli", None).unwrap();
    let note = Note {
        message: "error rate 9% > 5%".into(),
        detail: serde_json::json!({"error_rate": 0.09}),
    };
    let (d, ev) = s
        .change("nda", &Change::Rollback, None, "policy", Some(&note))
        .unwrap();
    assert_eq!((d.prod, d.canary.is_none()), (Some(2), true));
    assert!(
        ev.message.ends_with(": error rate 9% > 5%"),
        "{}",
        ev.message
    );
    assert_eq!(ev.detail["note"]["error_rate"], 0.09);
    assert_eq!(ev.detail["canary"], 3);

    let (d, _) = s
        .change("nda", &Change::Rollback, None, "cli", None)
        .unwrap();
    assert_eq!((d.prod, d.previous, d.generation), (Some(1), None, 6));
    // nothing left to roll back or promote: refused, nothing recorded
    for ch in [Change::Rollback, Change::Promote] {
        let e = s.change("nda", &ch, None, "cli", None).unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{e}");
    }
    assert_eq!(s.deployment("nda").unwrap().unwrap(), d);
    assert_eq!(s.deployments().unwrap(), vec![d]);

    let events = s.events(Some("nda"), 100).unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "register", "register", "register", "deploy", "canary", "promote", "canary",
            "rollback", "rollback"
        ]
    );
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(events[5].actor, "admin-api");
    assert_eq!(events[7].actor, "policy");
    assert_eq!(events[7].detail["note"]["error_rate"], 0.09);
    // the newest `limit`, oldest first
    let last2: Vec<String> = s
        .events(Some("nda"), 2)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(last2, ["rollback", "rollback"]);
    assert_eq!(s.events(None, 100).unwrap().len(), 9);
    assert!(s.events(Some("other"), 100).unwrap().is_empty());
}

fn generation_conflict(db: &Db) {
    let s = &*db.open();
    register(s, "nda", 2);
    let (d, _) = s
        .change("nda", &Change::Prod(1), Some(0), "cli", None)
        .unwrap();
    assert_eq!(d.generation, 1);
    let canary = Change::Canary {
        version: 2,
        percent: 50.0,
    };
    for stale in [0, 2] {
        let e = s
            .change("nda", &canary, Some(stale), "policy", None)
            .unwrap_err();
        assert!(matches!(e, Error::Conflict(_)), "{e}");
    }
    assert_eq!(s.deployment("nda").unwrap().unwrap(), d);
    let (d, _) = s.change("nda", &canary, Some(1), "policy", None).unwrap();
    assert_eq!(d.generation, 2);
    // two replicas judged generation 2: the first acts, the second is refused
    s.change("nda", &Change::Rollback, Some(2), "policy", None)
        .unwrap();
    let e = s
        .change("nda", &Change::Promote, Some(2), "policy", None)
        .unwrap_err();
    assert!(matches!(e, Error::Conflict(_)), "{e}");
    assert_eq!(
        kinds(s, "nda"),
        ["register", "register", "deploy", "canary", "rollback"]
    );
}

fn unregistered_versions_refused(db: &Db) {
    let s = &*db.open();
    // a name with nothing registered: no deployment appears
    let e = s
        .change("new", &Change::Prod(1), None, "cli", None)
        .unwrap_err();
    assert!(
        matches!(e, Error::NotFound(_)) && e.to_string().contains("new@1"),
        "{e}"
    );
    assert!(s.deployment("new").unwrap().is_none());
    assert!(s.deployments().unwrap().is_empty());

    register(s, "nda", 2);
    s.remove_version(&VersionRef::new("nda", 2), "cli").unwrap();
    let (d, _) = s
        .change("nda", &Change::Prod(1), None, "cli", None)
        .unwrap();
    let seq = s.change_seq().unwrap();
    let events = s.events(None, 100).unwrap();
    let canary = |version| Change::Canary {
        version,
        percent: 5.0,
    };
    for ch in [Change::Prod(7), Change::Prod(2), canary(7), canary(2)] {
        let e = s.change("nda", &ch, None, "cli", None).unwrap_err();
        assert!(matches!(e, Error::NotFound(_)), "{ch:?}: {e}");
        assert!(e.to_string().contains("is not in the registry"), "{e}");
    }
    assert_eq!(s.deployment("nda").unwrap().unwrap(), d);
    assert_eq!(s.change_seq().unwrap(), seq);
    assert_eq!(s.events(None, 100).unwrap(), events);
}

fn change_seq_moves_on_every_change(db: &Db) {
    let s = &*db.open();
    let mut seq = s.change_seq().unwrap();
    let mut moved = |what: &str| {
        let now = s.change_seq().unwrap();
        assert!(now > seq, "{what}: change_seq {now}, was {seq}");
        seq = now;
    };
    register(s, "nda", 2);
    s.change("nda", &Change::Prod(1), None, "cli", None)
        .unwrap();
    moved("deploy");
    s.change("nda", &Change::Prod(2), None, "cli", None)
        .unwrap();
    moved("deploy");
    s.change("nda", &Change::Rollback, None, "cli", None)
        .unwrap();
    moved("rollback");
    assert!(s.policy("nda").unwrap().is_none());
    s.set_policy("nda", "[gates]\n", "cli").unwrap();
    moved("policy");
    s.set_policy("nda", "[gates]\nmax_error_rate = 0.05\n", "cli")
        .unwrap();
    moved("policy again");
    assert_eq!(
        s.policy("nda").unwrap().as_deref(),
        Some("[gates]\nmax_error_rate = 0.05\n")
    );
    let ev = s.events(Some("nda"), 1).unwrap().pop().unwrap();
    assert_eq!(ev.kind, "policy");
    assert_eq!(ev.detail["policy"], "[gates]\nmax_error_rate = 0.05\n");
}

fn concurrent_registrations(db: &Db) {
    const N: usize = 8;
    let barrier = Barrier::new(N);
    let mut got: Vec<u32> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..N)
            .map(|i| {
                let barrier = &barrier;
                sc.spawn(move || {
                    // each its own handle (connection), all opened at once on a fresh store
                    barrier.wait();
                    // A failed open still meets the others at the barrier, so it fails the
                    // test instead of leaving them waiting for ever.
                    let s = db.try_open();
                    barrier.wait();
                    s.unwrap_or_else(|e| panic!("{e}"))
                        .insert_version("nda", &meta(&format!("t{i}")), "cli")
                        .unwrap()
                        .version
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    got.sort_unstable();
    assert_eq!(got, (1..=N as u32).collect::<Vec<_>>());
    let s = db.open();
    assert_eq!(numbers(&*s, "nda"), (1..=N as u32).collect::<Vec<_>>());
    assert_eq!(kinds(&*s, "nda").len(), N);
}

fn request_log_round_trip_query_and_prune(db: &Db) {
    use hone_ops::request_log::{LogQuery, LogRecord};
    let s = &*db.open();
    let rec = |t: i64, model: &str| LogRecord {
        id: 0,
        time_ms: t,
        model: model.into(),
        version: (model == "nda").then(|| "nda@2".to_string()),
        endpoint: "chat_completions".into(),
        status: 200,
        caller: Some("u1".into()),
        input: serde_json::json!([{"role": "user", "content": format!("q{t}")}]),
        output: format!("a{t}"),
        finish: Some("stop".into()),
        latency_ms: 12.5,
        prompt_tokens: 7,
        output_tokens: 3,
        mean_logprob: if t % 2 == 0 { Some(-0.25) } else { None },
    };
    let rows: Vec<LogRecord> = (0..10)
        .map(|t| rec(1000 + t, if t < 6 { "nda" } else { "base" }))
        .collect();
    s.append_requests(&rows).unwrap();
    let all = s
        .requests(&LogQuery {
            limit: 100,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(all.len(), 10);
    // ids assigned, increasing; everything else as written
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    for (got, want) in all.iter().zip(&rows) {
        assert_eq!(
            LogRecord {
                id: 0,
                ..got.clone()
            },
            *want
        );
    }
    let q = LogQuery {
        since_ms: 1002,
        until_ms: Some(1008),
        model: Some("nda".into()),
        limit: 100,
        ..Default::default()
    };
    let got: Vec<i64> = s.requests(&q).unwrap().iter().map(|r| r.time_ms).collect();
    assert_eq!(got, vec![1002, 1003, 1004, 1005]);
    // paging by id
    let page1 = s
        .requests(&LogQuery {
            limit: 4,
            ..Default::default()
        })
        .unwrap();
    let page2 = s
        .requests(&LogQuery {
            limit: 4,
            after_id: page1[3].id,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page2[0].time_ms, 1004);
    assert_eq!(s.prune_requests(1005).unwrap(), 5);
    assert_eq!(
        s.requests(&LogQuery {
            limit: 100,
            ..Default::default()
        })
        .unwrap()
        .len(),
        5
    );
}

fn review_queue_order_and_marks(db: &Db) {
    use hone_ops::request_log::LogRecord;
    use hone_ops::review::{Mark, ReviewQuery};
    let s = &*db.open();
    // three versions' answers with known confidence
    let rows: Vec<LogRecord> = [
        ("nda@1", Some(-0.1)),
        ("nda@1", Some(-2.0)),
        ("nda@1", None),
        ("nda@2", Some(-0.5)),
        ("nda@2", Some(-3.0)),
        ("nda@3", Some(-1.0)),
    ]
    .iter()
    .enumerate()
    .map(|(i, (v, lp))| LogRecord {
        id: 0,
        time_ms: i as i64,
        model: "nda".into(),
        version: Some(v.to_string()),
        endpoint: "chat_completions".into(),
        status: 200,
        caller: None,
        input: serde_json::json!([{"role": "user", "content": format!("q{i}")}]),
        output: format!("a{i}"),
        finish: Some("stop".into()),
        latency_ms: 1.0,
        prompt_tokens: 1,
        output_tokens: 1,
        mean_logprob: *lp,
    })
    .collect();
    let ids = s.append_requests(&rows).unwrap();
    assert_eq!(ids.len(), 6);
    s.queue_for_review(&ids).unwrap();
    s.queue_for_review(&ids[..2]).unwrap(); // queued once only
    let pending = |s: &dyn Store| -> Vec<String> {
        s.review_items(&ReviewQuery {
            pending: Some(true),
            limit: 100,
            ..Default::default()
        })
        .unwrap()
        .iter()
        .map(|i| i.output.clone())
        .collect()
    };
    // rank 1 of every version (least confident; unknown first), then rank 2, ...
    assert_eq!(pending(s), vec!["a2", "a4", "a5", "a1", "a3", "a0"]);
    let first = s
        .review_items(&ReviewQuery {
            pending: Some(true),
            limit: 1,
            ..Default::default()
        })
        .unwrap();
    let by_id = s
        .review_items(&ReviewQuery {
            id: Some(first[0].id),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!((by_id.len(), by_id[0].output.as_str()), (1, "a2"));
    let marked = s
        .mark_review(first[0].id, Mark::Wrong, Some("a2 fixed"), Some("typo"))
        .unwrap();
    assert_eq!(
        (marked.mark, marked.corrected.as_deref()),
        (Some(Mark::Wrong), Some("a2 fixed"))
    );
    assert!(marked.reviewed_ms.is_some());
    assert_eq!(pending(s).len(), 5);
    let done = s
        .review_items(&ReviewQuery {
            pending: Some(false),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].input, rows[2].input);
    let v2 = s
        .review_items(&ReviewQuery {
            version: Some("nda@2".into()),
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(v2.len(), 2);
    // marks counted per version and kind (a canary's critical-marks gate)
    let id_of = |out: &str| {
        s.review_items(&ReviewQuery {
            limit: 10,
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .find(|i| i.output == out)
        .unwrap()
        .id
    };
    s.mark_review(id_of("a3"), Mark::Critical, None, None)
        .unwrap();
    s.mark_review(id_of("a4"), Mark::Critical, None, None)
        .unwrap();
    s.mark_review(id_of("a0"), Mark::Critical, None, None)
        .unwrap();
    s.mark_review(id_of("a0"), Mark::Correct, None, None)
        .unwrap(); // marked again: counts as its last mark
    let count = |v: &str, m| s.count_marks(v, m).unwrap();
    assert_eq!(count("nda@2", Mark::Critical), 2);
    assert_eq!(count("nda@1", Mark::Critical), 0);
    assert_eq!(count("nda@1", Mark::Correct), 1);
    assert_eq!(count("nda@1", Mark::Wrong), 1);
    assert_eq!(count("nda@9", Mark::Critical), 0);
    assert!(matches!(
        s.mark_review(9999, Mark::Correct, None, None),
        Err(hone_ops::Error::NotFound(_))
    ));
}

fn corrupt_deployment_is_an_error(db: &Db) {
    let s = &*db.open();
    register(s, "nda", 2);
    s.change("nda", &Change::Prod(1), None, "cli", None)
        .unwrap();
    db.corrupt_deployment("nda");
    let is_unreadable = |e: Error| {
        assert!(matches!(e, Error::Store { .. }), "{e}");
        assert!(
            e.to_string().contains("deployment of nda is unreadable"),
            "{e}"
        );
    };
    is_unreadable(s.deployment("nda").unwrap_err());
    is_unreadable(s.deployments().unwrap_err());
    // a change must not start over from an empty deployment
    is_unreadable(
        s.change("nda", &Change::Prod(2), None, "cli", None)
            .unwrap_err(),
    );
    is_unreadable(
        s.remove_version(&VersionRef::new("nda", 1), "cli")
            .unwrap_err(),
    );
    assert_eq!(numbers(s, "nda"), vec![1, 2]);
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL only

/// A change is announced on `hone_deploy` with the name, once committed.
#[test]
fn postgres_notifies_changes() {
    use postgres::fallible_iterator::FallibleIterator;
    let Some(Db::Pg(db)) = pg_db("postgres_notifies_changes") else {
        return;
    };
    let store = Db::Pg(db);
    let s = store.open();
    let Db::Pg(db) = &store else { unreachable!() };
    let mut listener = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    listener
        .batch_execute(&format!("LISTEN {}", pg::NOTIFY_CHANNEL))
        .unwrap();
    register(&*s, "nda", 1);
    s.change("nda", &Change::Prod(1), None, "cli", None)
        .unwrap();
    s.set_policy("nda", "[gates]\n", "cli").unwrap();
    // a refused change announces nothing
    assert!(s
        .change("nda", &Change::Prod(5), None, "cli", None)
        .is_err());
    let mut got = Vec::new();
    let mut n = listener.notifications();
    let mut it = n.timeout_iter(Duration::from_secs(5));
    while let Some(m) = it.next().unwrap() {
        got.push((m.channel().to_string(), m.payload().to_string()));
        if got.len() == 2 {
            break;
        }
    }
    drop(it);
    assert_eq!(
        got,
        vec![
            ("hone_deploy".to_string(), "nda".to_string()),
            ("hone_deploy".to_string(), "nda".to_string())
        ]
    );
    assert!(n
        .timeout_iter(Duration::from_millis(300))
        .next()
        .unwrap()
        .is_none());
}

/// The server drops the store's connection (as a restart does): the next call reconnects.
#[test]
fn postgres_reconnects_after_the_connection_is_lost() {
    let Some(store) = pg_db("postgres_reconnects_after_the_connection_is_lost") else {
        return;
    };
    let Db::Pg(db) = &store else { unreachable!() };
    let s = store.open();
    register(&*s, "nda", 1);
    let kill = || {
        let mut admin = postgres::Client::connect(&db.admin_url, postgres::NoTls).unwrap();
        let n = admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&db.name],
            )
            .unwrap()
            .len();
        assert_eq!(n, 1, "the store's one connection");
        // wait until it is gone
        for _ in 0..100 {
            let left: i64 = admin
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                    &[&db.name],
                )
                .unwrap()
                .get(0);
            if left == 0 {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the backend did not end");
    };
    kill();
    assert_eq!(numbers(&*s, "nda"), vec![1]);
    kill();
    let (d, _) = s
        .change("nda", &Change::Prod(1), None, "cli", None)
        .unwrap();
    assert_eq!(d.generation, 1);
    kill();
    assert_eq!(
        s.insert_version("nda", &meta("x"), "cli").unwrap().version,
        2
    );
    assert_eq!(kinds(&*s, "nda"), ["register", "deploy", "register"]);
}

/// Messages name the server, never the password.
#[test]
fn postgres_describe_hides_the_password() {
    let Some(store) = pg_db("postgres_describe_hides_the_password") else {
        return;
    };
    let Db::Pg(db) = &store else { unreachable!() };
    let (scheme, rest) = db.url.split_once("://").unwrap();
    let (user, host) = rest.split_once('@').unwrap();
    // trust auth: the password is sent but not checked
    let url = format!("{scheme}://{user}:hunter2@{host}");
    let s = pg::open(&url, db.objects.path()).unwrap();
    let d = s.describe();
    assert!(!d.contains("hunter2"), "{d}");
    assert!(d.starts_with("postgres://postgres@127.0.0.1:"), "{d}");
    assert!(d.ends_with(&db.name), "{d}");
    // and through open_store, which wants the objects folder
    assert!(hone_ops::open_store(Some(&url), None).is_err());
    let s = hone_ops::open_store(Some(&url), Some(db.objects.path())).unwrap();
    assert_eq!(s.describe(), d);
}
