//! Atomic file writes, the one writer every hone crate uses: the bytes go to a temporary file
//! in the target's folder, which is synced and renamed over the target, so a reader (or a
//! crash) sees the old file or the new one, never half of one. A replaced file keeps its
//! permissions; a new one is readable like a normally created file (`0644`), not owner-only
//! like a temporary file. An error, or a writer dropped before [`AtomicFile::commit`], leaves
//! nothing behind.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::{Error, Result};

/// A file being written atomically. Write to it (it is buffered), then [`AtomicFile::commit`].
pub struct AtomicFile {
    inner: BufWriter<NamedTempFile>,
    dest: PathBuf,
}

/// The folder a file goes in (`.` for a bare file name).
fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

impl AtomicFile {
    /// Starts writing `dest`. Its folder is created if needed.
    pub fn create(dest: impl AsRef<Path>) -> Result<Self> {
        let dest = dest.as_ref().to_path_buf();
        let dir = folder_of(&dest);
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let tmp = tempfile::Builder::new()
            .prefix(".hone-tmp-")
            .tempfile_in(dir)
            .map_err(|e| Error::io(dir, e))?;
        Ok(Self {
            inner: BufWriter::with_capacity(1 << 16, tmp),
            dest,
        })
    }

    /// The file this will become.
    pub fn path(&self) -> &Path {
        &self.dest
    }

    /// The temporary file, for a library that writes by path (then write nothing through
    /// `self`; [`AtomicFile::commit`] still syncs and renames it).
    pub fn temp_path(&self) -> &Path {
        self.inner.get_ref().path()
    }

    /// Flushes, syncs and renames the file into place (keeping the permissions of the file
    /// it replaces), then syncs the folder so the rename itself is durable.
    pub fn commit(self) -> Result<()> {
        let dest = self.dest;
        let tmp = self
            .inner
            .into_inner()
            .map_err(|e| Error::io(&dest, e.into_error()))?;
        tmp.as_file().sync_all().map_err(|e| Error::io(&dest, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&dest)
                .map(|m| m.permissions().mode() & 0o7777)
                .unwrap_or(0o644);
            tmp.as_file()
                .set_permissions(std::fs::Permissions::from_mode(mode))
                .map_err(|e| Error::io(&dest, e))?;
        }
        tmp.persist(&dest).map_err(|e| Error::io(&dest, e.error))?;
        // The rename is in the folder's metadata: sync it too. Best effort: some file
        // systems refuse to sync a folder, and the file itself is complete either way.
        #[cfg(unix)]
        if let Ok(d) = std::fs::File::open(folder_of(&dest)) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.inner.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes a whole file atomically (its folder is created if needed).
pub fn write_file(dest: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let dest = dest.as_ref();
    let mut f = AtomicFile::create(dest)?;
    f.write_all(bytes).map_err(|e| Error::io(dest, e))?;
    f.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_and_leaves_no_temp_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.txt");
        write_file(&p, b"one").unwrap();
        write_file(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(names(d.path()), ["x.txt"]);
    }

    #[cfg(unix)]
    #[test]
    fn new_files_are_0644_and_replaced_files_keep_their_mode() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.txt");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        write_file(&p, b"one").unwrap();
        assert_eq!(mode(&p), 0o644);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        write_file(&p, b"two").unwrap();
        assert_eq!(mode(&p), 0o600, "an existing file keeps its mode");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"#!/bin/sh\n").unwrap();
        f.commit().unwrap();
        assert_eq!(mode(&p), 0o755);
        assert_eq!(std::fs::read(&p).unwrap(), b"#!/bin/sh\n");
    }

    #[test]
    fn nothing_appears_until_commit_and_dropping_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.txt");
        let mut f = AtomicFile::create(&p).unwrap();
        assert_eq!(f.path(), p);
        f.write_all(b"hello").unwrap();
        assert!(!p.exists());
        f.commit().unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"hello");
        let q = dir.path().join("dropped.txt");
        let mut g = AtomicFile::create(&q).unwrap();
        g.write_all(b"x").unwrap();
        drop(g);
        assert!(!q.exists());
        assert_eq!(names(dir.path()), ["out.txt"]);
    }

    #[test]
    fn an_error_while_writing_keeps_the_old_file_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("data.bin");
        write_file(&p, b"old contents").unwrap();
        let fill = |f: &mut AtomicFile| -> std::io::Result<()> {
            f.write_all(b"new, half")?;
            Err(std::io::Error::other("disk full"))
        };
        let mut f = AtomicFile::create(&p).unwrap();
        assert!(fill(&mut f).is_err());
        drop(f);
        assert_eq!(std::fs::read(&p).unwrap(), b"old contents");
        assert_eq!(names(dir.path()), ["data.bin"]);
    }

    #[test]
    fn writes_by_path_through_the_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("by-path.txt");
        let f = AtomicFile::create(&p).unwrap();
        std::fs::write(f.temp_path(), b"written by path").unwrap();
        assert!(!p.exists());
        f.commit().unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"written by path");
        assert_eq!(names(dir.path()), ["by-path.txt"]);
    }

    #[test]
    fn creates_the_folder_and_names_it_when_it_cannot() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("new/sub/x.txt");
        write_file(&p, b"x").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"x");
        // A folder that cannot be made (a file is in the way): the error names it.
        std::fs::write(d.path().join("nope"), b"a file").unwrap();
        let e = write_file(d.path().join("nope/x.txt"), b"x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope"), "{e}");
    }
}
