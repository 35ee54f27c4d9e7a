//! Output files are written to a temporary file beside the destination and renamed into place
//! on success, so an error never leaves a half-written file.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::error::{Error, Result};

pub struct AtomicFile {
    inner: BufWriter<NamedTempFile>,
    dest: PathBuf,
}

impl AtomicFile {
    pub fn create(dest: impl AsRef<Path>) -> Result<Self> {
        let dest = dest.as_ref().to_path_buf();
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let tmp = NamedTempFile::new_in(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(Self {
            inner: BufWriter::with_capacity(1 << 16, tmp),
            dest,
        })
    }

    pub fn path(&self) -> &Path {
        &self.dest
    }

    /// Flushes and renames into place.
    pub fn commit(self) -> Result<()> {
        let dest = self.dest;
        let tmp = self
            .inner
            .into_inner()
            .map_err(|e| Error::io(&dest, e.into_error()))?;
        tmp.persist(&dest).map_err(|e| Error::io(&dest, e.error))?;
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

/// Writes a whole small file atomically.
pub fn write_file(dest: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let mut f = AtomicFile::create(dest.as_ref())?;
    f.write_all(bytes)
        .map_err(|e| Error::io(dest.as_ref(), e))?;
    f.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_appears_until_commit_and_dropping_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.txt");
        let mut f = AtomicFile::create(&p).unwrap();
        f.write_all(b"hello").unwrap();
        assert!(!p.exists());
        f.commit().unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"hello");
        let q = dir.path().join("dropped.txt");
        let mut g = AtomicFile::create(&q).unwrap();
        g.write_all(b"x").unwrap();
        drop(g);
        assert!(!q.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
