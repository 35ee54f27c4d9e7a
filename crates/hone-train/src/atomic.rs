//! Atomic file writes: hone-model's writer (temporary file, fsync, rename, permissions kept),
//! under the name and error type hone-train's callers use.

use std::path::Path;

use crate::Result;

/// Writes `bytes` to `path` atomically (its folder is created if needed).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    Ok(hone_model::atomic::write_file(path, bytes)?)
}
