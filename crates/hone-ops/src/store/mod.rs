//! Where versions, deployments, policies and events live. One trait, two backends:
//! [`sqlite::SqliteStore`] (a file, WAL, for one machine; the default under `$HONE_HOME`) and
//! [`postgres::PgStore`] (a server several `hone serve` replicas share). Every change is one
//! transaction, so a process killed at any point leaves the store as before or after it.
//!
//! Adapter files are not in the database: they are objects named by their SHA-256 in a folder
//! ([`Store::objects_dir`]), on a shared file system when replicas share a PostgreSQL store.
//! Object storage would plug in behind [`crate::registry`]'s `put_object` / `object_path`.

pub mod postgres;
pub mod sqlite;
#[doc(hidden)]
pub mod test_db;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::deployment::{Change, Deployment};
use crate::event::{Event, NewEvent};
use crate::request_log::{LogQuery, LogRecord};
use crate::review::{Mark, ReviewItem, ReviewQuery};
use crate::version::{Version, VersionMeta, VersionRef};
use crate::{now_secs, Error, Result};

/// The store's operations. Implementations are cheap to share (`Arc<dyn Store>`); every method
/// is blocking (call from `spawn_blocking` in async code).
pub trait Store: Send + Sync {
    /// `sqlite:PATH` or the PostgreSQL URL without its password, for messages.
    fn describe(&self) -> String;

    /// The folder adapter objects live in.
    fn objects_dir(&self) -> &Path;

    /// Records a new version of `name` with the next number (numbers are never reused, even
    /// after a removal) and a `register` event, in one transaction.
    fn insert_version(&self, name: &str, meta: &VersionMeta, actor: &str) -> Result<Version>;

    /// The versions of `name` (every name when `None`), oldest first; removed ones left out.
    fn versions(&self, name: Option<&str>) -> Result<Vec<Version>>;

    /// One version, `None` when it does not exist or was removed.
    fn version(&self, r: &VersionRef) -> Result<Option<Version>>;

    /// Removes a version from the registry (its number stays used). Refused while the
    /// deployment of its name uses it (prod, canary or the rollback target).
    fn remove_version(&self, r: &VersionRef, actor: &str) -> Result<()>;

    fn deployment(&self, name: &str) -> Result<Option<Deployment>>;

    fn deployments(&self) -> Result<Vec<Deployment>>;

    /// Applies `change` to `name`'s deployment in one transaction, with its event. Versions it
    /// points at must be registered. With `expect_generation`, refused with
    /// [`crate::Error::Conflict`] when the deployment has changed since (so two replicas that
    /// both judge a canary do not both act). `note` is added to the event (a policy verdict).
    fn change(
        &self,
        name: &str,
        change: &Change,
        expect_generation: Option<i64>,
        actor: &str,
        note: Option<&Note>,
    ) -> Result<(Deployment, Event)>;

    /// The newest `limit` events of `name` (all names when `None`), oldest first.
    fn events(&self, name: Option<&str>, limit: usize) -> Result<Vec<Event>>;

    /// Stores `name`'s rollback policy (TOML text, already validated) with a `policy` event.
    fn set_policy(&self, name: &str, toml: &str, actor: &str) -> Result<()>;

    fn policy(&self, name: &str) -> Result<Option<String>>;

    /// A number that changes whenever a deployment or policy changes: replicas poll it.
    fn change_seq(&self) -> Result<i64>;

    /// Appends request-log rows in one transaction; their ids, in order.
    fn append_requests(&self, rows: &[LogRecord]) -> Result<Vec<i64>>;

    /// Logged requests matching `q`, oldest first.
    fn requests(&self, q: &LogQuery) -> Result<Vec<LogRecord>>;

    /// Deletes logged requests older than `before_ms` (Unix ms); how many went (their review
    /// items stay).
    fn prune_requests(&self, before_ms: i64) -> Result<u64>;

    /// Puts logged requests (by id) in the review queue; ids already queued are skipped.
    fn queue_for_review(&self, request_ids: &[i64]) -> Result<()>;

    /// Review items matching `q` (pending ones in review order: see
    /// [`crate::review::PENDING_ORDER`]).
    fn review_items(&self, q: &ReviewQuery) -> Result<Vec<ReviewItem>>;

    /// How many answers of `version` carry `mark` (what a canary's critical-marks gate reads on
    /// every poll: a count, not the items).
    fn count_marks(&self, version: &str, mark: Mark) -> Result<u64>;

    /// Marks an item (again, if it was marked); `corrected` is the answer it should have been.
    fn mark_review(
        &self,
        id: i64,
        mark: Mark,
        corrected: Option<&str>,
        note: Option<&str>,
    ) -> Result<ReviewItem>;
}

/// What a caller adds to a change's event.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    pub message: String,
    pub detail: serde_json::Value,
}

/// Merges a note into an event.
pub(crate) fn with_note(mut ev: NewEvent, note: Option<&Note>) -> NewEvent {
    if let Some(n) = note {
        ev.message = format!("{}: {}", ev.message, n.message);
        let mut d = match ev.detail {
            serde_json::Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        d.insert("note".into(), n.detail.clone());
        ev.detail = serde_json::Value::Object(d);
    }
    ev
}

/// The versions a change points at (which must be registered).
pub(crate) fn change_target(change: &Change) -> Option<u32> {
    match change {
        Change::Prod(v) => Some(*v),
        Change::Canary { version, .. } => Some(*version),
        Change::Promote | Change::Rollback => None,
    }
}

/// Checks and applies a change to the current deployment `cur`: the generation the caller
/// expects, then that the version it points at is registered (`registered(v)`, asked of the
/// store inside the change's transaction), then [`Deployment::apply`] and the note. Both
/// backends decide a change here, so they refuse the same things in the same order.
pub(crate) fn decide_change(
    cur: &Deployment,
    change: &Change,
    expect_generation: Option<i64>,
    actor: &str,
    note: Option<&Note>,
    registered: impl FnOnce(u32) -> Result<bool>,
) -> Result<(Deployment, NewEvent)> {
    let name = &cur.name;
    if let Some(g) = expect_generation {
        if cur.generation != g {
            return Err(Error::Conflict(format!(
                "{name}'s deployment changed (generation {} now, {g} expected)",
                cur.generation
            )));
        }
    }
    if let Some(v) = change_target(change) {
        if !registered(v)? {
            return Err(Error::NotFound(format!(
                "{name}@{v} is not in the registry"
            )));
        }
    }
    let (next, ev) = cur.apply(change, actor, now_secs())?;
    Ok((next, with_note(ev, note)))
}

/// Refuses to remove `r` while `deployment` (of its name) uses it.
pub(crate) fn check_removable(deployment: Option<&Deployment>, r: &VersionRef) -> Result<()> {
    match deployment {
        Some(d) if d.uses(r.version) => Err(Error::invalid(format!(
            "{r} is deployed (prod, canary or the rollback target of {}); deploy another version first",
            r.name
        ))),
        _ => Ok(()),
    }
}

/// The error for removing a version that is not there (or already removed).
pub(crate) fn not_in_registry(r: &VersionRef) -> Error {
    Error::NotFound(format!("{r} is not in the registry"))
}

/// The event of a new version.
pub(crate) fn register_event(name: &str, n: i64, meta: &VersionMeta, actor: &str) -> NewEvent {
    NewEvent::new(
        "register",
        actor,
        format!("{name}@{n} registered from {}", meta.source),
    )
    .with_detail(serde_json::json!({"version": n, "adapter_sha256": meta.adapter_sha256}))
}

/// The event of a removal.
pub(crate) fn remove_event(r: &VersionRef, actor: &str) -> NewEvent {
    NewEvent::new("remove", actor, format!("{r} removed"))
}

/// The event of a policy change.
pub(crate) fn policy_event(name: &str, toml: &str, actor: &str) -> NewEvent {
    NewEvent::new("policy", actor, format!("rollback policy of {name} set"))
        .with_detail(serde_json::json!({"policy": toml}))
}

/// The stored event `ev` became (`id` and `time` as the store recorded them).
pub(crate) fn stored_event(id: i64, name: &str, time: i64, ev: &NewEvent) -> Event {
    Event {
        id,
        name: name.to_string(),
        time,
        kind: ev.kind.clone(),
        actor: ev.actor.clone(),
        message: ev.message.clone(),
        detail: ev.detail.clone(),
    }
}

/// An event's `detail` column (JSON text); unreadable detail is `null`, the event still shown.
pub(crate) fn parse_detail(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or(serde_json::Value::Null)
}

/// A version row: `meta` is the JSON of its [`VersionMeta`].
pub(crate) fn parse_version(
    name: String,
    version: i64,
    created: i64,
    meta: &str,
) -> Result<Version> {
    let meta: VersionMeta = serde_json::from_str(meta)
        .map_err(|e| Error::invalid(format!("{name}@{version}: unreadable record: {e}")))?;
    Ok(Version {
        name,
        version: version as u32,
        created,
        meta,
    })
}

/// A deployment row's state (JSON). An unreadable state is an error, never "nothing deployed":
/// treating a damaged row as empty would let the next change overwrite what is serving.
pub(crate) fn parse_deployment(name: &str, state: &str) -> std::result::Result<Deployment, String> {
    serde_json::from_str(state)
        .map_err(|e| format!("the deployment of {name} is unreadable (state {state:?}): {e}"))
}

/// The default store: `$HONE_HOME/registry/registry.db`.
pub fn default_store_path() -> PathBuf {
    hone_model::fetch::hone_home()
        .join("registry")
        .join("registry.db")
}

/// Opens a store: a `postgres://` / `postgresql://` URL (adapter objects in `objects`, which
/// is then required: a folder every replica sees) or a SQLite file path (objects in an
/// `objects` folder beside it unless `objects` is given). `None` is the default SQLite file.
pub fn open_store(spec: Option<&str>, objects: Option<&Path>) -> Result<Arc<dyn Store>> {
    match spec {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let objects = objects.ok_or_else(|| {
                crate::Error::invalid(
                    "a PostgreSQL store needs --objects DIR: the folder (shared by every replica) the adapter files live in",
                )
            })?;
            postgres::open(url, objects)
        }
        Some(path) => Ok(Arc::new(sqlite::SqliteStore::open(
            Path::new(path),
            objects,
        )?)),
        None => Ok(Arc::new(sqlite::SqliteStore::open(
            &default_store_path(),
            objects,
        )?)),
    }
}
