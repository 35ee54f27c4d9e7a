//! A cached known model checked against the SHA-256 pinned for it before it is used.
//!
//! The size alone let a bit-flipped file of the right size through, and its garbage output
//! looked like a model's. Hashing the ~100 MB file on every load would cost every command a
//! fraction of a second, so the check is in two steps:
//!
//! - after a full hash matched (at fetch, or the first load), a stamp beside the model
//!   (`.<file>.verified`) records the file's size, modification time and status-change time
//!   (ctime, which no user call can set back) with the hash;
//! - a load whose file still has the stamp's size and times skips the hash; any other load
//!   hashes the file in full, refuses it when it does not match (naming the file and how to
//!   fetch it again) and stamps it when it does. Within one process a file is checked once.
//!
//! So any write to the file (which moves its times) is caught on the next load. A change
//! that leaves size and both times alone (a fault below the file system) is caught by
//! `hone model verify` (and `hone model list`), which always hash in full.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crate::error::{Error, Result};
use crate::fetch::{sha256_file, KnownModel};

/// What identifies a file's content short of hashing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Identity {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

fn identity(path: &Path) -> Result<Identity> {
    let md = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let mtime_ns = md
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as i128);
    #[cfg(unix)]
    let ctime_ns = {
        use std::os::unix::fs::MetadataExt;
        md.ctime() as i128 * 1_000_000_000 + md.ctime_nsec() as i128
    };
    #[cfg(not(unix))]
    let ctime_ns = 0;
    Ok(Identity {
        size: md.len(),
        mtime_ns,
        ctime_ns,
    })
}

/// The stamp file of a model file: `.<file name>.verified` beside it.
pub fn stamp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.verified"))
}

fn read_stamp(path: &Path) -> Option<(Identity, String)> {
    let text = std::fs::read_to_string(stamp_path(path)).ok()?;
    let mut w = text.split_whitespace();
    let id = Identity {
        size: w.next()?.parse().ok()?,
        mtime_ns: w.next()?.parse().ok()?,
        ctime_ns: w.next()?.parse().ok()?,
    };
    Some((id, w.next()?.to_string()))
}

/// Best effort: a models folder that cannot be written only means hashing again next time.
fn write_stamp(path: &Path, id: Identity, sha: &str) {
    let text = format!("{} {} {} {sha}\n", id.size, id.mtime_ns, id.ctime_ns);
    let _ = crate::atomic::write_file(stamp_path(path), text.as_bytes());
}

fn checked() -> &'static Mutex<HashMap<PathBuf, Identity>> {
    static CHECKED: OnceLock<Mutex<HashMap<PathBuf, Identity>>> = OnceLock::new();
    CHECKED.get_or_init(Default::default)
}

fn corrupt(model: &KnownModel, path: &Path, got: &str, len: u64) -> Error {
    Error::CorruptModel {
        path: path.to_path_buf(),
        msg: format!(
            "does not match the model `{}` it should hold ({len} bytes with SHA-256 {got}; \
             expected {} bytes with SHA-256 {}): the cached file is corrupt; run `hone model \
             fetch {}` to download it again",
            model.name, model.size, model.sha256, model.name
        ),
    }
}

/// Records `path` as holding `model` (its hash was just checked, e.g. while fetching).
pub fn stamp_verified(model: &KnownModel, path: &Path) -> Result<()> {
    let id = identity(path)?;
    write_stamp(path, id, model.sha256);
    remember(path, id);
    Ok(())
}

fn remember(path: &Path, id: Identity) {
    if let Ok(mut m) = checked().lock() {
        m.insert(path.to_path_buf(), id);
    }
}

/// Checks that `path` holds `model` before it is used: once per process per file, by its
/// stamp when the file's size and times still match it, else by a full hash.
pub fn check_cached(model: &KnownModel, path: &Path) -> Result<()> {
    let id = identity(path)?;
    if checked()
        .lock()
        .map(|m| m.get(path) == Some(&id))
        .unwrap_or(false)
    {
        return Ok(());
    }
    if read_stamp(path).is_some_and(|(s, sha)| s == id && sha == model.sha256) {
        remember(path, id);
        return Ok(());
    }
    verify_full(model, path)
}

/// Hashes `path` in full and refuses it unless it is `model`; stamps it when it is, removes
/// its stamp when it is not (`hone model verify`).
pub fn verify_full(model: &KnownModel, path: &Path) -> Result<()> {
    let id = identity(path)?;
    let (sha, len) = sha256_file(path)?;
    if len != model.size || sha != model.sha256 {
        let _ = std::fs::remove_file(stamp_path(path));
        return Err(corrupt(model, path, &sha, len));
    }
    write_stamp(path, id, &sha);
    remember(path, id);
    Ok(())
}
