//! The SQLite store: one file (WAL, so a server reads while the CLI writes), each change one
//! `BEGIN IMMEDIATE` transaction.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{
    check_removable, decide_change, not_in_registry, parse_deployment, parse_detail, parse_version,
    policy_event, register_event, remove_event, stored_event, Note, Store,
};
use crate::deployment::{Change, Deployment};
use crate::event::{Event, NewEvent};
use crate::request_log::{LogQuery, LogRecord};
use crate::review::{Mark, ReviewItem, ReviewQuery, PENDING_ORDER};
use crate::version::{Version, VersionMeta, VersionRef};
use crate::{now_secs, Error, Result};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    created INTEGER NOT NULL,
    adapter_sha256 TEXT NOT NULL,
    meta TEXT NOT NULL,
    removed INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS deployments (
    name TEXT PRIMARY KEY,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    time INTEGER NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    message TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_name ON events (name, id);
CREATE TABLE IF NOT EXISTS policies (
    name TEXT PRIMARY KEY,
    policy TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS change_seq (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO change_seq (id, value) VALUES (1, 0);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ms INTEGER NOT NULL,
    model TEXT NOT NULL,
    version TEXT,
    endpoint TEXT NOT NULL,
    status INTEGER NOT NULL,
    caller TEXT,
    input TEXT NOT NULL,
    output TEXT NOT NULL,
    finish TEXT,
    latency_ms REAL NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    mean_logprob REAL
);
CREATE INDEX IF NOT EXISTS requests_time ON requests (time_ms);
CREATE TABLE IF NOT EXISTS review_items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id INTEGER NOT NULL UNIQUE,
    time_ms INTEGER NOT NULL,
    model TEXT NOT NULL,
    version TEXT,
    input TEXT NOT NULL,
    output TEXT NOT NULL,
    mean_logprob REAL,
    mark TEXT,
    corrected TEXT,
    note TEXT,
    reviewed_ms INTEGER
);
CREATE INDEX IF NOT EXISTS review_items_version_mark ON review_items (version, mark);
";

/// A SQLite registry file.
pub struct SqliteStore {
    path: PathBuf,
    objects: PathBuf,
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`; objects go in `objects` or, by default,
    /// an `objects` folder beside the file.
    pub fn open(path: &Path, objects: Option<&Path>) -> Result<Self> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let objects = objects
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.join("objects"));
        let err = |e: rusqlite::Error| Error::Store {
            store: path.display().to_string(),
            msg: e.to_string(),
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(err)?;
        // Several processes (replicas, a CLI beside a server) may open a fresh store at once.
        // Switching to WAL and creating the schema can then answer "database is locked" without
        // waiting for the busy handler, so the setup is retried with back-off for as long as the
        // busy timeout would wait.
        let setup = |c: &Connection| -> rusqlite::Result<()> {
            c.pragma_update(None, "journal_mode", "WAL")?;
            c.pragma_update(None, "synchronous", "FULL")?;
            c.execute_batch(SCHEMA)
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut pause = Duration::from_millis(5);
        loop {
            match setup(&conn) {
                Ok(()) => break,
                Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(200));
                }
                Err(e) => return Err(err(e)),
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            objects,
            conn: Mutex::new(conn),
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::Store {
            store: self.path.display().to_string(),
            msg: e.to_string(),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T>) -> Result<T> {
        let mut c = self
            .conn
            .lock()
            .map_err(|_| self.err("connection lock poisoned"))?;
        f(&mut c)
    }

    /// The deployment of `name`; an unreadable row is an error (see [`parse_deployment`]).
    fn load_deployment(
        &self,
        tx: &rusqlite::Transaction<'_>,
        name: &str,
    ) -> Result<Option<Deployment>> {
        let s: Option<String> = tx
            .query_row(
                "SELECT state FROM deployments WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        s.map(|s| parse_deployment(name, &s).map_err(|e| self.err(e)))
            .transpose()
    }
}

fn insert_event(
    tx: &rusqlite::Transaction<'_>,
    name: &str,
    ev: &NewEvent,
) -> rusqlite::Result<Event> {
    let time = now_secs();
    tx.execute(
        "INSERT INTO events (name, time, kind, actor, message, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![name, time, ev.kind, ev.actor, ev.message, ev.detail.to_string()],
    )?;
    Ok(stored_event(tx.last_insert_rowid(), name, time, ev))
}

fn bump_seq(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    tx.execute("UPDATE change_seq SET value = value + 1 WHERE id = 1", [])?;
    Ok(())
}

/// The columns [`review_row`] reads, in order.
const REVIEW_COLUMNS: &str =
    "id, request_id, time_ms, model, version, input, output, mean_logprob, \
                          mark, corrected, note, reviewed_ms";

fn review_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ReviewItem> {
    Ok(ReviewItem {
        id: r.get(0)?,
        request_id: r.get(1)?,
        time_ms: r.get(2)?,
        model: r.get(3)?,
        version: r.get(4)?,
        input: serde_json::from_str(&r.get::<_, String>(5)?).unwrap_or(serde_json::Value::Null),
        output: r.get(6)?,
        mean_logprob: r.get(7)?,
        mark: r
            .get::<_, Option<String>>(8)?
            .and_then(|m| Mark::parse(&m).ok()),
        corrected: r.get(9)?,
        note: r.get(10)?,
        reviewed_ms: r.get(11)?,
    })
}

impl Store for SqliteStore {
    fn describe(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }

    fn objects_dir(&self) -> &Path {
        &self.objects
    }

    fn insert_version(&self, name: &str, meta: &VersionMeta, actor: &str) -> Result<Version> {
        let meta_json = serde_json::to_string(meta).map_err(|e| self.err(e))?;
        self.with(|c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| self.err(e))?;
            let n: i64 = tx
                .query_row(
                    "SELECT COALESCE(MAX(version), 0) + 1 FROM versions WHERE name = ?1",
                    [name],
                    |r| r.get(0),
                )
                .map_err(|e| self.err(e))?;
            let created = now_secs();
            tx.execute(
                "INSERT INTO versions (name, version, created, adapter_sha256, meta) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![name, n, created, meta.adapter_sha256, meta_json],
            )
            .map_err(|e| self.err(e))?;
            insert_event(&tx, name, &register_event(name, n, meta, actor)).map_err(|e| self.err(e))?;
            tx.commit().map_err(|e| self.err(e))?;
            Ok(Version {
                name: name.to_string(),
                version: n as u32,
                created,
                meta: meta.clone(),
            })
        })
    }

    fn versions(&self, name: Option<&str>) -> Result<Vec<Version>> {
        self.with(|c| {
            let mut st = c
                .prepare(
                    "SELECT name, version, created, meta FROM versions
                     WHERE removed = 0 AND (?1 IS NULL OR name = ?1) ORDER BY name, version",
                )
                .map_err(|e| self.err(e))?;
            let rows = st
                .query_map([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .map_err(|e| self.err(e))?;
            let mut out = Vec::new();
            for row in rows {
                let (n, v, t, m): (String, i64, i64, String) = row.map_err(|e| self.err(e))?;
                out.push(parse_version(n, v, t, &m)?);
            }
            Ok(out)
        })
    }

    fn version(&self, r: &VersionRef) -> Result<Option<Version>> {
        self.with(|c| {
            let row: Option<(String, i64, i64, String)> = c
                .query_row(
                    "SELECT name, version, created, meta FROM versions
                     WHERE removed = 0 AND name = ?1 AND version = ?2",
                    params![r.name, r.version],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()
                .map_err(|e| self.err(e))?;
            row.map(|(n, v, t, m)| parse_version(n, v, t, &m))
                .transpose()
        })
    }

    fn remove_version(&self, r: &VersionRef, actor: &str) -> Result<()> {
        self.with(|c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| self.err(e))?;
            check_removable(self.load_deployment(&tx, &r.name)?.as_ref(), r)?;
            let n = tx
                .execute(
                    "UPDATE versions SET removed = 1 WHERE name = ?1 AND version = ?2 AND removed = 0",
                    params![r.name, r.version],
                )
                .map_err(|e| self.err(e))?;
            if n == 0 {
                return Err(not_in_registry(r));
            }
            insert_event(&tx, &r.name, &remove_event(r, actor))
                .map_err(|e| self.err(e))?;
            tx.commit().map_err(|e| self.err(e))
        })
    }

    fn deployment(&self, name: &str) -> Result<Option<Deployment>> {
        self.with(|c| {
            let tx = c.transaction().map_err(|e| self.err(e))?;
            self.load_deployment(&tx, name)
        })
    }

    fn deployments(&self) -> Result<Vec<Deployment>> {
        self.with(|c| {
            let mut st = c
                .prepare("SELECT name, state FROM deployments ORDER BY name")
                .map_err(|e| self.err(e))?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(|e| self.err(e))?;
            let mut out = Vec::new();
            for row in rows {
                let (n, s) = row.map_err(|e| self.err(e))?;
                out.push(parse_deployment(&n, &s).map_err(|e| self.err(e))?);
            }
            Ok(out)
        })
    }

    fn change(
        &self,
        name: &str,
        change: &Change,
        expect_generation: Option<i64>,
        actor: &str,
        note: Option<&Note>,
    ) -> Result<(Deployment, Event)> {
        self.with(|c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| self.err(e))?;
            let cur = self
                .load_deployment(&tx, name)?
                .unwrap_or_else(|| Deployment::empty(name));
            let (next, ev) = decide_change(&cur, change, expect_generation, actor, note, |v| {
                let found: Option<i64> = tx
                    .query_row(
                        "SELECT version FROM versions WHERE name = ?1 AND version = ?2 AND removed = 0",
                        params![name, v],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(|e| self.err(e))?;
                Ok(found.is_some())
            })?;
            let state = serde_json::to_string(&next).map_err(|e| self.err(e))?;
            tx.execute(
                "INSERT INTO deployments (name, state) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET state = excluded.state",
                params![name, state],
            )
            .map_err(|e| self.err(e))?;
            let ev = insert_event(&tx, name, &ev).map_err(|e| self.err(e))?;
            bump_seq(&tx).map_err(|e| self.err(e))?;
            crate::fault::pause("deploy");
            tx.commit().map_err(|e| self.err(e))?;
            Ok((next, ev))
        })
    }

    fn events(&self, name: Option<&str>, limit: usize) -> Result<Vec<Event>> {
        self.with(|c| {
            let mut st = c
                .prepare(
                    "SELECT id, name, time, kind, actor, message, detail FROM events
                     WHERE (?1 IS NULL OR name = ?1) ORDER BY id DESC LIMIT ?2",
                )
                .map_err(|e| self.err(e))?;
            let rows = st
                .query_map(params![name, limit as i64], |r| {
                    Ok(Event {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        time: r.get(2)?,
                        kind: r.get(3)?,
                        actor: r.get(4)?,
                        message: r.get(5)?,
                        detail: parse_detail(&r.get::<_, String>(6)?),
                    })
                })
                .map_err(|e| self.err(e))?;
            let mut out: Vec<Event> = rows
                .collect::<rusqlite::Result<_>>()
                .map_err(|e| self.err(e))?;
            out.reverse();
            Ok(out)
        })
    }

    fn set_policy(&self, name: &str, toml: &str, actor: &str) -> Result<()> {
        self.with(|c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| self.err(e))?;
            tx.execute(
                "INSERT INTO policies (name, policy) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET policy = excluded.policy",
                params![name, toml],
            )
            .map_err(|e| self.err(e))?;
            insert_event(&tx, name, &policy_event(name, toml, actor)).map_err(|e| self.err(e))?;
            bump_seq(&tx).map_err(|e| self.err(e))?;
            tx.commit().map_err(|e| self.err(e))
        })
    }

    fn policy(&self, name: &str) -> Result<Option<String>> {
        self.with(|c| {
            c.query_row("SELECT policy FROM policies WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))
        })
    }

    fn change_seq(&self) -> Result<i64> {
        self.with(|c| {
            c.query_row("SELECT value FROM change_seq WHERE id = 1", [], |r| {
                r.get(0)
            })
            .map_err(|e| self.err(e))
        })
    }

    fn append_requests(&self, rows: &[LogRecord]) -> Result<Vec<i64>> {
        self.with(|c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| self.err(e))?;
            let mut ids = Vec::with_capacity(rows.len());
            {
                let mut st = tx
                    .prepare_cached(
                        "INSERT INTO requests (time_ms, model, version, endpoint, status, caller,
                         input, output, finish, latency_ms, prompt_tokens, output_tokens, mean_logprob)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                    )
                    .map_err(|e| self.err(e))?;
                for r in rows {
                    st.execute(params![
                        r.time_ms,
                        r.model,
                        r.version,
                        r.endpoint,
                        r.status,
                        r.caller,
                        r.input.to_string(),
                        r.output,
                        r.finish,
                        r.latency_ms,
                        r.prompt_tokens as i64,
                        r.output_tokens as i64,
                        r.mean_logprob,
                    ])
                    .map_err(|e| self.err(e))?;
                    ids.push(tx.last_insert_rowid());
                }
            }
            tx.commit().map_err(|e| self.err(e))?;
            Ok(ids)
        })
    }

    fn requests(&self, q: &LogQuery) -> Result<Vec<LogRecord>> {
        self.with(|c| {
            let mut st = c
                .prepare(
                    "SELECT id, time_ms, model, version, endpoint, status, caller, input, output,
                     finish, latency_ms, prompt_tokens, output_tokens, mean_logprob FROM requests
                     WHERE time_ms >= ?1 AND (?2 IS NULL OR time_ms < ?2)
                     AND (?3 IS NULL OR model = ?3) AND id > ?4 ORDER BY id LIMIT ?5",
                )
                .map_err(|e| self.err(e))?;
            let rows = st
                .query_map(
                    params![q.since_ms, q.until_ms, q.model, q.after_id, q.limit as i64],
                    |r| {
                        Ok(LogRecord {
                            id: r.get(0)?,
                            time_ms: r.get(1)?,
                            model: r.get(2)?,
                            version: r.get(3)?,
                            endpoint: r.get(4)?,
                            status: r.get(5)?,
                            caller: r.get(6)?,
                            input: serde_json::from_str(&r.get::<_, String>(7)?)
                                .unwrap_or(serde_json::Value::Null),
                            output: r.get(8)?,
                            finish: r.get(9)?,
                            latency_ms: r.get(10)?,
                            prompt_tokens: r.get::<_, i64>(11)? as u64,
                            output_tokens: r.get::<_, i64>(12)? as u64,
                            mean_logprob: r.get(13)?,
                        })
                    },
                )
                .map_err(|e| self.err(e))?;
            rows.collect::<rusqlite::Result<_>>()
                .map_err(|e| self.err(e))
        })
    }

    fn prune_requests(&self, before_ms: i64) -> Result<u64> {
        self.with(|c| {
            c.execute("DELETE FROM requests WHERE time_ms < ?1", [before_ms])
                .map(|n| n as u64)
                .map_err(|e| self.err(e))
        })
    }

    fn queue_for_review(&self, request_ids: &[i64]) -> Result<()> {
        self.with(|c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| self.err(e))?;
            {
                let mut st = tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO review_items
                         (request_id, time_ms, model, version, input, output, mean_logprob)
                         SELECT id, time_ms, model, version, input, output, mean_logprob
                         FROM requests WHERE id = ?1",
                    )
                    .map_err(|e| self.err(e))?;
                for id in request_ids {
                    st.execute([id]).map_err(|e| self.err(e))?;
                }
            }
            tx.commit().map_err(|e| self.err(e))
        })
    }

    fn review_items(&self, q: &ReviewQuery) -> Result<Vec<ReviewItem>> {
        let (filter, order) = match q.pending {
            Some(true) => ("mark IS NULL", PENDING_ORDER),
            Some(false) => ("mark IS NOT NULL", "reviewed_ms, id"),
            None => ("1 = 1", "id"),
        };
        let sql = format!(
            "SELECT {REVIEW_COLUMNS} FROM review_items WHERE {filter}
             AND (?1 IS NULL OR version = ?1) AND (?3 IS NULL OR id = ?3)
             ORDER BY {order} LIMIT ?2"
        );
        self.with(|c| {
            let mut st = c.prepare(&sql).map_err(|e| self.err(e))?;
            let rows = st
                .query_map(params![q.version, q.limit as i64, q.id], review_row)
                .map_err(|e| self.err(e))?;
            rows.collect::<rusqlite::Result<_>>()
                .map_err(|e| self.err(e))
        })
    }

    fn count_marks(&self, version: &str, mark: Mark) -> Result<u64> {
        self.with(|c| {
            c.query_row(
                "SELECT COUNT(*) FROM review_items WHERE version = ?1 AND mark = ?2",
                params![version, mark.as_str()],
                |r| r.get::<_, i64>(0),
            )
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
        })
    }

    fn mark_review(
        &self,
        id: i64,
        mark: Mark,
        corrected: Option<&str>,
        note: Option<&str>,
    ) -> Result<ReviewItem> {
        self.with(|c| {
            let n = c
                .execute(
                    "UPDATE review_items SET mark = ?2, corrected = ?3, note = ?4, reviewed_ms = ?5
                     WHERE id = ?1",
                    params![id, mark.as_str(), corrected, note, crate::now_ms()],
                )
                .map_err(|e| self.err(e))?;
            if n == 0 {
                return Err(Error::NotFound(format!("no review item {id}")));
            }
            c.query_row(
                &format!("SELECT {REVIEW_COLUMNS} FROM review_items WHERE id = ?1"),
                [id],
                review_row,
            )
            .map_err(|e| self.err(e))
        })
    }
}

/// SQLite's "database is busy / locked", which a retry may get past.
fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}
