//! Candidate outputs cached in SQLite, so a rerun costs nothing.
//!
//! One table keyed by [`OutputCache::key`]: a SHA-256 over the candidate's identity, the exact
//! messages and the generation parameters, so changing any of them misses the cache. The
//! database runs in WAL mode with a busy timeout, so several threads (one connection behind a
//! mutex) and several `hone eval` processes can share it. `PRAGMA user_version` holds the schema
//! version; a file from a newer hone, another application's database or a file that is not
//! SQLite at all is refused with an error naming the path.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hone_model::chat_template::Message;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::endpoint::Completion;
use crate::error::{Error, Result};

/// The schema version this build writes (`PRAGMA user_version`).
/// Version 2 added the `mean_logprob` column; a version-1 file is upgraded in place when opened
/// (its rows read with no log-probability).
pub const SCHEMA_VERSION: i64 = 2;

/// Version tag hashed into every key; bump it when the key's serialization changes.
const KEY_FORMAT: &str = "hone-output-cache-key/1";

const TABLE: &str = "outputs";

/// One cached candidate output.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CachedOutput {
    /// The candidate's answer.
    pub text: String,
    /// Prompt tokens, when known.
    pub prompt_tokens: Option<u64>,
    /// Completion tokens, when known.
    pub completion_tokens: Option<u64>,
    /// Seconds the original generation took.
    pub latency_s: f64,
    /// When it was generated, in seconds since the Unix epoch.
    pub created_at: u64,
    /// Mean log-probability of the generated tokens (local models; `None` for endpoints and
    /// for entries cached before hone recorded it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_logprob: Option<f64>,
}

impl CachedOutput {
    /// An output created now.
    pub fn new(
        text: impl Into<String>,
        prompt_tokens: Option<u64>,
        completion_tokens: Option<u64>,
        latency_s: f64,
    ) -> Self {
        Self {
            text: text.into(),
            prompt_tokens,
            completion_tokens,
            latency_s,
            created_at: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            mean_logprob: None,
        }
    }

    /// The same output with the mean log-probability of its tokens.
    pub fn with_mean_logprob(mut self, mean_logprob: Option<f64>) -> Self {
        self.mean_logprob = mean_logprob;
        self
    }

    /// An endpoint's completion, created now.
    pub fn from_completion(c: &Completion) -> Self {
        Self::new(
            c.text.clone(),
            c.prompt_tokens,
            c.completion_tokens,
            c.latency_s,
        )
    }
}

/// The output cache: one SQLite connection behind a mutex (`Send + Sync`).
pub struct OutputCache {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for OutputCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputCache")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn sqlite_msg(e: &rusqlite::Error) -> String {
    if let rusqlite::Error::SqliteFailure(f, _) = e {
        match f.code {
            ErrorCode::NotADatabase => {
                return format!("not an SQLite database (corrupt, or some other file): {e}")
            }
            ErrorCode::DatabaseCorrupt => return format!("the database is corrupt: {e}"),
            ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied => {
                return format!("cannot open or write the database: {e}")
            }
            _ => {}
        }
    }
    e.to_string()
}

/// Recursively sorts object keys, and writes integral floats as integers, so equal parameters
/// written differently (`{"a":1,"b":0.0}` / `{"b":0,"a":1}`) hash the same.
fn canonical(v: Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, canonical(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
            _ => Value::Number(n),
        },
        other => other,
    }
}

impl OutputCache {
    /// Opens (creating the file, its parent directory and the schema if needed) the cache at
    /// `path`. Errors name the path: a file that is not SQLite, another application's database,
    /// a schema from a newer hone, or a directory that cannot be written.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let err = |e: rusqlite::Error| Error::Cache {
            path: path.clone(),
            msg: sqlite_msg(&e),
        };
        let conn = Connection::open(&path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(err)?;
        // The first real read: a file that is not SQLite fails here.
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err)?;
        if version > SCHEMA_VERSION {
            return Err(Error::Cache {
                path,
                msg: format!(
                    "schema version {version} was written by a newer hone (this one reads {SCHEMA_VERSION})"
                ),
            });
        }
        if version < 0 {
            return Err(Error::Cache {
                path,
                msg: format!("not a hone output cache (user_version {version})"),
            });
        }
        if version == 0 {
            let foreign: Vec<String> = {
                let mut stmt = conn
                    .prepare(
                        "SELECT name FROM sqlite_master WHERE type = 'table' \
                         AND name NOT LIKE 'sqlite_%' AND name != ?1",
                    )
                    .map_err(err)?;
                let rows = stmt
                    .query_map([TABLE], |r| r.get::<_, String>(0))
                    .map_err(err)?;
                rows.collect::<rusqlite::Result<_>>().map_err(err)?
            };
            if !foreign.is_empty() {
                return Err(Error::Cache {
                    path,
                    msg: format!(
                        "an SQLite database but not a hone output cache (it has tables {})",
                        foreign.join(", ")
                    ),
                });
            }
        }
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        if version == 0 {
            conn.execute_batch(&format!(
                "BEGIN IMMEDIATE;
                 CREATE TABLE IF NOT EXISTS {TABLE} (
                     key TEXT PRIMARY KEY NOT NULL,
                     text TEXT NOT NULL,
                     prompt_tokens INTEGER,
                     completion_tokens INTEGER,
                     latency_s REAL NOT NULL,
                     created_at INTEGER NOT NULL,
                     mean_logprob REAL
                 ) WITHOUT ROWID;
                 PRAGMA user_version = {SCHEMA_VERSION};
                 COMMIT;"
            ))
            .map_err(err)?;
        }
        if version == 1 {
            // Upgrade in one write transaction; another process may have done it meanwhile.
            conn.execute_batch("BEGIN IMMEDIATE").map_err(err)?;
            let upgrade = || -> rusqlite::Result<()> {
                let now: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
                if now == 1 {
                    conn.execute_batch(&format!(
                        "ALTER TABLE {TABLE} ADD COLUMN mean_logprob REAL;
                         PRAGMA user_version = {SCHEMA_VERSION};"
                    ))?;
                }
                conn.execute_batch("COMMIT")
            };
            if let Err(e) = upgrade() {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(err(e));
            }
        }
        Ok(Self {
            path,
            conn: Mutex::new(conn),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cache key of one generation: SHA-256 (lowercase hex) over a canonical JSON
    /// serialization of `candidate_identity`, every message's role and content in order, and
    /// `params_json` (parsed and written with sorted keys; hashed verbatim if it is not JSON).
    pub fn key(candidate_identity: &str, messages: &[Message], params_json: &str) -> String {
        let params = match serde_json::from_str::<Value>(params_json) {
            Ok(v) => Value::Array(vec!["json".into(), canonical(v)]),
            Err(_) => Value::Array(vec!["raw".into(), params_json.into()]),
        };
        let messages: Vec<Value> = messages
            .iter()
            .map(|m| Value::Array(vec![m.role.as_str().into(), m.content.as_str().into()]))
            .collect();
        let canon = Value::Array(vec![
            KEY_FORMAT.into(),
            candidate_identity.into(),
            Value::Array(messages),
            params,
        ]);
        let digest = Sha256::digest(canon.to_string().as_bytes());
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn err(&self, e: rusqlite::Error) -> Error {
        Error::Cache {
            path: self.path.clone(),
            msg: sqlite_msg(&e),
        }
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic elsewhere while holding the lock leaves SQLite consistent (statements are
        // atomic), so a poisoned lock is still usable.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The output stored under `key`, if any.
    pub fn get(&self, key: &str) -> Result<Option<CachedOutput>> {
        let conn = self.conn();
        let row = conn
            .query_row(
                &format!(
                    "SELECT text, prompt_tokens, completion_tokens, latency_s, created_at, \
                     mean_logprob \
                     FROM {TABLE} WHERE key = ?1"
                ),
                [key],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, Option<i64>>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                        r.get::<_, f64>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, Option<f64>>(5)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some((text, pt, ct, latency_s, created_at, mean_logprob)) = row else {
            return Ok(None);
        };
        let unsigned = |v: i64, what: &str| {
            u64::try_from(v).map_err(|_| Error::Cache {
                path: self.path.clone(),
                msg: format!("key {key}: negative {what} ({v}) in the database"),
            })
        };
        Ok(Some(CachedOutput {
            text,
            prompt_tokens: pt.map(|v| unsigned(v, "prompt_tokens")).transpose()?,
            completion_tokens: ct.map(|v| unsigned(v, "completion_tokens")).transpose()?,
            latency_s,
            created_at: unsigned(created_at, "created_at")?,
            mean_logprob,
        }))
    }

    /// Stores `out` under `key`, replacing what was there.
    pub fn put(&self, key: &str, out: &CachedOutput) -> Result<()> {
        let signed = |v: u64, what: &str| {
            i64::try_from(v).map_err(|_| Error::Cache {
                path: self.path.clone(),
                msg: format!("key {key}: {what} {v} does not fit in SQLite"),
            })
        };
        if !out.latency_s.is_finite() {
            return Err(Error::Cache {
                path: self.path.clone(),
                msg: format!("key {key}: latency_s must be finite, got {}", out.latency_s),
            });
        }
        if let Some(lp) = out.mean_logprob.filter(|lp| !lp.is_finite()) {
            return Err(Error::Cache {
                path: self.path.clone(),
                msg: format!("key {key}: mean_logprob must be finite, got {lp}"),
            });
        }
        let pt = out
            .prompt_tokens
            .map(|v| signed(v, "prompt_tokens"))
            .transpose()?;
        let ct = out
            .completion_tokens
            .map(|v| signed(v, "completion_tokens"))
            .transpose()?;
        let created_at = signed(out.created_at, "created_at")?;
        self.conn()
            .execute(
                &format!(
                    "INSERT OR REPLACE INTO {TABLE} \
                     (key, text, prompt_tokens, completion_tokens, latency_s, created_at, \
                     mean_logprob) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                ),
                params![
                    key,
                    out.text,
                    pt,
                    ct,
                    out.latency_s,
                    created_at,
                    out.mean_logprob
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// How many outputs are stored.
    pub fn len(&self) -> Result<u64> {
        let n: i64 = self
            .conn()
            .query_row(&format!("SELECT COUNT(*) FROM {TABLE}"), [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok(n.max(0) as u64)
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }
}
