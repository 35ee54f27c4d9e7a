//! The PostgreSQL store: one database several `hone serve` replicas (and the CLI) share. The
//! same tables as the SQLite store, prefixed `hone_` (the database may hold other things);
//! every change one transaction, deployments changed under a row lock, version numbers
//! assigned under a per-name advisory lock (so two processes registering at once get two
//! numbers), and every deployment or policy change announced with `NOTIFY hone_deploy` (the
//! name as payload) besides bumping the change sequence replicas poll.
//!
//! One connection per store, behind a mutex. A call that fails because the connection is gone
//! (the server restarted, the backend was terminated) reconnects once and runs again, so a
//! long-running server survives a database restart.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use postgres::config::Host;
use postgres::{Client, Config, NoTls, Transaction};

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

/// The channel deployment and policy changes are announced on (payload: the name).
pub const NOTIFY_CHANNEL: &str = "hone_deploy";

/// Advisory lock keys: ("hone" as a number) alone for creating the schema, and with the name's
/// hash for numbering a name's versions (the one- and two-key lock spaces do not overlap).
const LOCK_KEY: i32 = 0x686f_6e65;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS hone_versions (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    created BIGINT NOT NULL,
    adapter_sha256 TEXT NOT NULL,
    meta TEXT NOT NULL,
    removed BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (name, version)
);
CREATE TABLE IF NOT EXISTS hone_deployments (
    name TEXT PRIMARY KEY,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS hone_events (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    time BIGINT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    message TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS hone_events_name ON hone_events (name, id);
CREATE TABLE IF NOT EXISTS hone_policies (
    name TEXT PRIMARY KEY,
    policy TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS hone_change_seq (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    value BIGINT NOT NULL
);
INSERT INTO hone_change_seq (id, value) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
CREATE TABLE IF NOT EXISTS hone_requests (
    id BIGSERIAL PRIMARY KEY,
    time_ms BIGINT NOT NULL,
    model TEXT NOT NULL,
    version TEXT,
    endpoint TEXT NOT NULL,
    status INTEGER NOT NULL,
    caller TEXT,
    input TEXT NOT NULL,
    output TEXT NOT NULL,
    finish TEXT,
    latency_ms DOUBLE PRECISION NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    mean_logprob DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS hone_requests_time ON hone_requests (time_ms);
CREATE TABLE IF NOT EXISTS hone_review_items (
    id BIGSERIAL PRIMARY KEY,
    request_id BIGINT NOT NULL UNIQUE,
    time_ms BIGINT NOT NULL,
    model TEXT NOT NULL,
    version TEXT,
    input TEXT NOT NULL,
    output TEXT NOT NULL,
    mean_logprob DOUBLE PRECISION,
    mark TEXT,
    corrected TEXT,
    note TEXT,
    reviewed_ms BIGINT
);
CREATE INDEX IF NOT EXISTS hone_review_items_version_mark ON hone_review_items (version, mark);
";

/// A PostgreSQL registry.
pub struct PgStore {
    config: Config,
    /// The URL without its password, for messages.
    described: String,
    objects: PathBuf,
    client: Mutex<Client>,
}

/// Opens the store at `url` (creating its tables if needed), adapter objects in `objects`.
pub fn open(url: &str, objects: &Path) -> Result<Arc<dyn Store>> {
    Ok(Arc::new(PgStore::open(url, objects)?))
}

impl PgStore {
    pub fn open(url: &str, objects: &Path) -> Result<Self> {
        let mut config = Config::from_str(url).map_err(|e| Error::Store {
            store: "postgres (unreadable URL)".into(),
            msg: pg_message(&e),
        })?;
        if config.get_connect_timeout().is_none() {
            // An unreachable server is an error after a while, not a hang.
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("hone");
        }
        let described = describe_config(&config);
        let err = |e: postgres::Error| Error::Store {
            store: described.clone(),
            msg: pg_message(&e),
        };
        let mut client = config.connect(NoTls).map_err(err)?;
        // Several processes may start against a new database at once: one creates the tables.
        let mut tx = client.transaction().map_err(err)?;
        tx.execute(
            "SELECT pg_advisory_xact_lock($1::bigint)",
            &[&(LOCK_KEY as i64)],
        )
        .map_err(err)?;
        tx.batch_execute(SCHEMA).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(Self {
            config,
            described,
            objects: objects.to_path_buf(),
            client: Mutex::new(client),
        })
    }

    fn err(&self, e: impl std::fmt::Display) -> Error {
        Error::Store {
            store: self.described.clone(),
            msg: e.to_string(),
        }
    }

    fn pg(&self, e: postgres::Error) -> Error {
        self.err(pg_message(&e))
    }

    /// Runs `f` on the connection; when the connection turns out to be gone, reconnects and
    /// runs it once more. (A call that failed on a dead connection left nothing behind: its
    /// transaction ended with the connection, unless the connection died during the commit
    /// itself, the one case where the second run may repeat the first.)
    fn with<T>(&self, mut f: impl FnMut(&mut Client) -> Result<T>) -> Result<T> {
        // A panic under the lock rolled its transaction back while unwinding (Transaction's
        // drop): the client is usable.
        let mut c = self.client.lock().unwrap_or_else(PoisonError::into_inner);
        if c.is_closed() {
            *c = self.reconnect()?;
        }
        match f(&mut c) {
            Err(e) if self.connection_lost(&mut c, &e) => {
                tracing::warn!(store = %self.described, error = %e, "connection lost; reconnecting");
                *c = self.reconnect()?;
                f(&mut c)
            }
            r => r,
        }
    }

    fn reconnect(&self) -> Result<Client> {
        self.config.connect(NoTls).map_err(|e| self.pg(e))
    }

    /// Whether the call that failed with `e` failed because the connection is gone (a store
    /// error on a connection that is closed or no longer answers).
    fn connection_lost(&self, c: &mut Client, e: &Error) -> bool {
        matches!(e, Error::Store { .. })
            && (c.is_closed() || c.is_valid(Duration::from_secs(5)).is_err())
    }

    fn load_deployment(&self, tx: &mut Transaction<'_>, name: &str) -> Result<Option<Deployment>> {
        let row = tx
            .query_opt(
                "SELECT state FROM hone_deployments WHERE name = $1 FOR UPDATE",
                &[&name],
            )
            .map_err(|e| self.pg(e))?;
        row.map(|r| parse_deployment(name, r.get(0)).map_err(|e| self.err(e)))
            .transpose()
    }

    fn insert_event(&self, tx: &mut Transaction<'_>, name: &str, ev: &NewEvent) -> Result<Event> {
        let time = now_secs();
        let row = tx
            .query_one(
                "INSERT INTO hone_events (name, time, kind, actor, message, detail)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                &[
                    &name,
                    &time,
                    &ev.kind,
                    &ev.actor,
                    &ev.message,
                    &ev.detail.to_string(),
                ],
            )
            .map_err(|e| self.pg(e))?;
        Ok(stored_event(row.get(0), name, time, ev))
    }

    /// Bumps the change sequence and announces the change of `name` (sent at commit).
    fn announce(&self, tx: &mut Transaction<'_>, name: &str) -> Result<()> {
        tx.execute(
            "UPDATE hone_change_seq SET value = value + 1 WHERE id = 1",
            &[],
        )
        .map_err(|e| self.pg(e))?;
        tx.execute("SELECT pg_notify($1, $2)", &[&NOTIFY_CHANNEL, &name])
            .map_err(|e| self.pg(e))?;
        Ok(())
    }
}

/// A postgres error with its causes: the error's own text is only its kind (`db error`), the
/// server's message is its source.
fn pg_message(e: &postgres::Error) -> String {
    let mut msg = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        msg.push_str(": ");
        msg.push_str(&c.to_string());
        cause = c.source();
    }
    msg
}

/// `postgres://USER@HOST:PORT/DB` of a connection config: never the password.
fn describe_config(c: &Config) -> String {
    let hosts: Vec<String> = c
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                Host::Tcp(h) => h.clone(),
                #[cfg(unix)]
                Host::Unix(p) => p.display().to_string(),
            };
            match c.get_ports().get(i).or(c.get_ports().first()) {
                Some(p) => format!("{host}:{p}"),
                None => host,
            }
        })
        .collect();
    let user = c.get_user().map(|u| format!("{u}@")).unwrap_or_default();
    let db = c.get_dbname().unwrap_or("");
    format!("postgres://{user}{}/{db}", hosts.join(","))
}

/// The columns [`review_row`] reads, in order.
const REVIEW_COLUMNS: &str =
    "id, request_id, time_ms, model, version, input, output, mean_logprob, \
                              mark, corrected, note, reviewed_ms";

fn review_row(r: &postgres::Row) -> ReviewItem {
    ReviewItem {
        id: r.get(0),
        request_id: r.get(1),
        time_ms: r.get(2),
        model: r.get(3),
        version: r.get(4),
        input: serde_json::from_str(r.get::<_, &str>(5)).unwrap_or(serde_json::Value::Null),
        output: r.get(6),
        mean_logprob: r.get(7),
        mark: r
            .get::<_, Option<&str>>(8)
            .and_then(|m| Mark::parse(m).ok()),
        corrected: r.get(9),
        note: r.get(10),
        reviewed_ms: r.get(11),
    }
}

impl Store for PgStore {
    fn describe(&self) -> String {
        self.described.clone()
    }

    fn objects_dir(&self) -> &Path {
        &self.objects
    }

    fn insert_version(&self, name: &str, meta: &VersionMeta, actor: &str) -> Result<Version> {
        let meta_json = serde_json::to_string(meta).map_err(|e| self.err(e))?;
        self.with(|c| {
            let mut tx = c.transaction().map_err(|e| self.pg(e))?;
            // Numbering is per name: whoever holds the name's lock takes the next number.
            tx.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                &[&LOCK_KEY, &name],
            )
            .map_err(|e| self.pg(e))?;
            let n: i64 = tx
                .query_one(
                    "SELECT COALESCE(MAX(version), 0) + 1 FROM hone_versions WHERE name = $1",
                    &[&name],
                )
                .map_err(|e| self.pg(e))?
                .get(0);
            let created = now_secs();
            tx.execute(
                "INSERT INTO hone_versions (name, version, created, adapter_sha256, meta)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&name, &n, &created, &meta.adapter_sha256, &meta_json],
            )
            .map_err(|e| self.pg(e))?;
            self.insert_event(&mut tx, name, &register_event(name, n, meta, actor))?;
            tx.commit().map_err(|e| self.pg(e))?;
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
            let rows = c
                .query(
                    "SELECT name, version, created, meta FROM hone_versions
                     WHERE NOT removed AND ($1::text IS NULL OR name = $1) ORDER BY name, version",
                    &[&name],
                )
                .map_err(|e| self.pg(e))?;
            rows.iter()
                .map(|r| parse_version(r.get(0), r.get(1), r.get(2), r.get(3)))
                .collect()
        })
    }

    fn version(&self, r: &VersionRef) -> Result<Option<Version>> {
        self.with(|c| {
            let row = c
                .query_opt(
                    "SELECT name, version, created, meta FROM hone_versions
                     WHERE NOT removed AND name = $1 AND version = $2",
                    &[&r.name, &(r.version as i64)],
                )
                .map_err(|e| self.pg(e))?;
            row.map(|r| parse_version(r.get(0), r.get(1), r.get(2), r.get(3)))
                .transpose()
        })
    }

    fn remove_version(&self, r: &VersionRef, actor: &str) -> Result<()> {
        self.with(|c| {
            let mut tx = c.transaction().map_err(|e| self.pg(e))?;
            // The deployment row stays locked until the removal commits, so no change can
            // deploy the version in between (a change locks the row first, too).
            check_removable(self.load_deployment(&mut tx, &r.name)?.as_ref(), r)?;
            let n = tx
                .execute(
                    "UPDATE hone_versions SET removed = TRUE
                     WHERE name = $1 AND version = $2 AND NOT removed",
                    &[&r.name, &(r.version as i64)],
                )
                .map_err(|e| self.pg(e))?;
            if n == 0 {
                return Err(not_in_registry(r));
            }
            self.insert_event(&mut tx, &r.name, &remove_event(r, actor))?;
            tx.commit().map_err(|e| self.pg(e))
        })
    }

    fn deployment(&self, name: &str) -> Result<Option<Deployment>> {
        self.with(|c| {
            let row = c
                .query_opt(
                    "SELECT state FROM hone_deployments WHERE name = $1",
                    &[&name],
                )
                .map_err(|e| self.pg(e))?;
            row.map(|r| parse_deployment(name, r.get(0)).map_err(|e| self.err(e)))
                .transpose()
        })
    }

    fn deployments(&self) -> Result<Vec<Deployment>> {
        self.with(|c| {
            let rows = c
                .query(
                    "SELECT name, state FROM hone_deployments ORDER BY name",
                    &[],
                )
                .map_err(|e| self.pg(e))?;
            rows.iter()
                .map(|r| parse_deployment(r.get(0), r.get(1)).map_err(|e| self.err(e)))
                .collect()
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
        let empty = serde_json::to_string(&Deployment::empty(name)).map_err(|e| self.err(e))?;
        self.with(|c| {
            let mut tx = c.transaction().map_err(|e| self.pg(e))?;
            // Make sure the row exists, then lock it: changes of one name run one at a time,
            // each against the state the previous one committed.
            tx.execute(
                "INSERT INTO hone_deployments (name, state) VALUES ($1, $2)
                 ON CONFLICT (name) DO NOTHING",
                &[&name, &empty],
            )
            .map_err(|e| self.pg(e))?;
            let cur = self
                .load_deployment(&mut tx, name)?
                .unwrap_or_else(|| Deployment::empty(name));
            let (next, ev) = decide_change(&cur, change, expect_generation, actor, note, |v| {
                // FOR SHARE: a removal of this version waits for this change (and then finds
                // it deployed).
                let row = tx
                    .query_opt(
                        "SELECT 1 FROM hone_versions
                         WHERE name = $1 AND version = $2 AND NOT removed FOR SHARE",
                        &[&name, &(v as i64)],
                    )
                    .map_err(|e| self.pg(e))?;
                Ok(row.is_some())
            })?;
            let state = serde_json::to_string(&next).map_err(|e| self.err(e))?;
            tx.execute(
                "UPDATE hone_deployments SET state = $2 WHERE name = $1",
                &[&name, &state],
            )
            .map_err(|e| self.pg(e))?;
            let ev = self.insert_event(&mut tx, name, &ev)?;
            self.announce(&mut tx, name)?;
            crate::fault::pause("deploy");
            tx.commit().map_err(|e| self.pg(e))?;
            Ok((next, ev))
        })
    }

    fn events(&self, name: Option<&str>, limit: usize) -> Result<Vec<Event>> {
        self.with(|c| {
            let rows = c
                .query(
                    "SELECT id, name, time, kind, actor, message, detail FROM hone_events
                     WHERE ($1::text IS NULL OR name = $1) ORDER BY id DESC LIMIT $2",
                    &[&name, &(limit.min(i64::MAX as usize) as i64)],
                )
                .map_err(|e| self.pg(e))?;
            let mut out: Vec<Event> = rows
                .iter()
                .map(|r| Event {
                    id: r.get(0),
                    name: r.get(1),
                    time: r.get(2),
                    kind: r.get(3),
                    actor: r.get(4),
                    message: r.get(5),
                    detail: parse_detail(r.get(6)),
                })
                .collect();
            out.reverse();
            Ok(out)
        })
    }

    fn set_policy(&self, name: &str, toml: &str, actor: &str) -> Result<()> {
        self.with(|c| {
            let mut tx = c.transaction().map_err(|e| self.pg(e))?;
            tx.execute(
                "INSERT INTO hone_policies (name, policy) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET policy = excluded.policy",
                &[&name, &toml],
            )
            .map_err(|e| self.pg(e))?;
            self.insert_event(&mut tx, name, &policy_event(name, toml, actor))?;
            self.announce(&mut tx, name)?;
            tx.commit().map_err(|e| self.pg(e))
        })
    }

    fn policy(&self, name: &str) -> Result<Option<String>> {
        self.with(|c| {
            let row = c
                .query_opt("SELECT policy FROM hone_policies WHERE name = $1", &[&name])
                .map_err(|e| self.pg(e))?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn change_seq(&self) -> Result<i64> {
        self.with(|c| {
            let row = c
                .query_one("SELECT value FROM hone_change_seq WHERE id = 1", &[])
                .map_err(|e| self.pg(e))?;
            Ok(row.get(0))
        })
    }

    fn append_requests(&self, rows: &[LogRecord]) -> Result<Vec<i64>> {
        self.with(|c| {
            let mut tx = c.transaction().map_err(|e| self.pg(e))?;
            let st = tx
                .prepare(
                    "INSERT INTO hone_requests (time_ms, model, version, endpoint, status, caller,
                     input, output, finish, latency_ms, prompt_tokens, output_tokens, mean_logprob)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
                )
                .map_err(|e| self.pg(e))?;
            let mut ids = Vec::with_capacity(rows.len());
            for r in rows {
                let row = tx
                    .query_one(
                        &st,
                        &[
                            &r.time_ms,
                            &r.model,
                            &r.version,
                            &r.endpoint,
                            &i32::from(r.status),
                            &r.caller,
                            &r.input.to_string(),
                            &r.output,
                            &r.finish,
                            &r.latency_ms,
                            &(r.prompt_tokens as i64),
                            &(r.output_tokens as i64),
                            &r.mean_logprob,
                        ],
                    )
                    .map_err(|e| self.pg(e))?;
                ids.push(row.get(0));
            }
            tx.commit().map_err(|e| self.pg(e))?;
            Ok(ids)
        })
    }

    fn requests(&self, q: &LogQuery) -> Result<Vec<LogRecord>> {
        self.with(|c| {
            let rows = c
                .query(
                    "SELECT id, time_ms, model, version, endpoint, status, caller, input, output,
                     finish, latency_ms, prompt_tokens, output_tokens, mean_logprob
                     FROM hone_requests
                     WHERE time_ms >= $1 AND ($2::BIGINT IS NULL OR time_ms < $2)
                     AND ($3::TEXT IS NULL OR model = $3) AND id > $4 ORDER BY id LIMIT $5",
                    &[
                        &q.since_ms,
                        &q.until_ms,
                        &q.model,
                        &q.after_id,
                        &(q.limit as i64),
                    ],
                )
                .map_err(|e| self.pg(e))?;
            Ok(rows
                .iter()
                .map(|r| LogRecord {
                    id: r.get(0),
                    time_ms: r.get(1),
                    model: r.get(2),
                    version: r.get(3),
                    endpoint: r.get(4),
                    status: r.get::<_, i32>(5) as u16,
                    caller: r.get(6),
                    input: serde_json::from_str(r.get::<_, &str>(7))
                        .unwrap_or(serde_json::Value::Null),
                    output: r.get(8),
                    finish: r.get(9),
                    latency_ms: r.get(10),
                    prompt_tokens: r.get::<_, i64>(11) as u64,
                    output_tokens: r.get::<_, i64>(12) as u64,
                    mean_logprob: r.get(13),
                })
                .collect())
        })
    }

    fn prune_requests(&self, before_ms: i64) -> Result<u64> {
        self.with(|c| {
            c.execute(
                "DELETE FROM hone_requests WHERE time_ms < $1",
                &[&before_ms],
            )
            .map_err(|e| self.pg(e))
        })
    }

    fn queue_for_review(&self, request_ids: &[i64]) -> Result<()> {
        self.with(|c| {
            let mut tx = c.transaction().map_err(|e| self.pg(e))?;
            tx.execute(
                "INSERT INTO hone_review_items
                 (request_id, time_ms, model, version, input, output, mean_logprob)
                 SELECT id, time_ms, model, version, input, output, mean_logprob
                 FROM hone_requests WHERE id = ANY($1) ON CONFLICT (request_id) DO NOTHING",
                &[&request_ids],
            )
            .map_err(|e| self.pg(e))?;
            tx.commit().map_err(|e| self.pg(e))
        })
    }

    fn review_items(&self, q: &ReviewQuery) -> Result<Vec<ReviewItem>> {
        let (filter, order) = match q.pending {
            Some(true) => ("mark IS NULL", PENDING_ORDER),
            Some(false) => ("mark IS NOT NULL", "reviewed_ms, id"),
            None => ("TRUE", "id"),
        };
        let sql = format!(
            "SELECT {REVIEW_COLUMNS} FROM hone_review_items WHERE {filter}
             AND ($1::TEXT IS NULL OR version = $1) AND ($3::BIGINT IS NULL OR id = $3)
             ORDER BY {order} LIMIT $2"
        );
        self.with(|c| {
            let rows = c
                .query(&sql, &[&q.version, &(q.limit as i64), &q.id])
                .map_err(|e| self.pg(e))?;
            Ok(rows.iter().map(review_row).collect())
        })
    }

    fn count_marks(&self, version: &str, mark: Mark) -> Result<u64> {
        self.with(|c| {
            let row = c
                .query_one(
                    "SELECT COUNT(*) FROM hone_review_items WHERE version = $1 AND mark = $2",
                    &[&version, &mark.as_str()],
                )
                .map_err(|e| self.pg(e))?;
            Ok(row.get::<_, i64>(0) as u64)
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
            let row = c
                .query_opt(
                    &format!(
                        "UPDATE hone_review_items SET mark = $2, corrected = $3, note = $4,
                         reviewed_ms = $5 WHERE id = $1 RETURNING {REVIEW_COLUMNS}"
                    ),
                    &[&id, &mark.as_str(), &corrected, &note, &crate::now_ms()],
                )
                .map_err(|e| self.pg(e))?;
            row.as_ref()
                .map(review_row)
                .ok_or_else(|| Error::NotFound(format!("no review item {id}")))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn described(url: &str) -> String {
        describe_config(&Config::from_str(url).unwrap())
    }

    #[test]
    fn describe_leaves_the_password_out() {
        for url in [
            "postgres://hone:s3cret@db.example:5433/reg",
            "postgresql://hone:s3cret@db.example:5433/reg?sslmode=disable",
            "postgres://hone@db.example:5433/reg?password=s3cret",
        ] {
            let d = described(url);
            assert!(!d.contains("s3cret"), "{url} -> {d}");
            assert_eq!(d, "postgres://hone@db.example:5433/reg", "{url}");
        }
        assert_eq!(
            described("postgres://a,b:6000/x"),
            "postgres://a:5432,b:6000/x"
        );
    }

    #[test]
    fn open_errors_do_not_show_the_password() {
        let e = PgStore::open(
            "postgres://hone:s3cret@127.0.0.1:1/reg?connect_timeout=2",
            Path::new("/nonexistent"),
        )
        .err()
        .expect("nothing listens on port 1");
        let msg = e.to_string();
        assert!(msg.contains("postgres://hone@127.0.0.1:1/reg"), "{msg}");
        assert!(!msg.contains("s3cret"), "{msg}");
        // the cause, not just "error connecting to server"
        assert!(msg.to_lowercase().contains("refused"), "{msg}");
    }
}
