//! Parsers that take a path get the fuzz input through a file in one scratch folder per
//! process (on tmpfs where `/dev/shm` exists, so a run is not disk-bound).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();

fn dir() -> &'static Path {
    DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let mut b = tempfile::Builder::new();
        b.prefix("hone-fuzz-");
        let made = if shm.is_dir() {
            b.tempdir_in(shm)
        } else {
            b.tempdir()
        };
        made.expect("a scratch folder for the fuzz input")
    })
    .path()
}

/// Writes `data` to `<scratch>/<name>` and returns the path.
pub fn file(name: &str, data: &[u8]) -> PathBuf {
    let p = dir().join(name);
    std::fs::write(&p, data).expect("writing the fuzz input to the scratch folder");
    p
}
