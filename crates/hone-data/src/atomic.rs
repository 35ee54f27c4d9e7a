//! Output files are written to a temporary file beside the destination and renamed into place
//! on success, so an error never leaves a half-written file. The writer is hone-model's (one
//! implementation for every crate: fsync, rename, permissions kept); hone-data's callers reach
//! it here, with hone-data's error type.

use std::path::Path;

pub use hone_model::atomic::AtomicFile;

use crate::Result;

/// Writes a whole file atomically (its folder is created if needed).
pub fn write_file(dest: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    Ok(hone_model::atomic::write_file(dest, bytes)?)
}
