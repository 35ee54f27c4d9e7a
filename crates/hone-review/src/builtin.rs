//! The NDA review adapter that comes with hone (`models/nda-review/` in the repository, its
//! model card there): a LoRA of SmolLM2-135M-Instruct with its TF-IDF expert and calibration,
//! trained by `scripts/contractnli-benchmark.sh` on the 164 ContractNLI train/dev documents
//! (Koreeda & Manning 2021, CC BY 4.0). Its files are compiled into the binary and written
//! once into the cache (`$HONE_HOME/adapters/nda-review-<hash>/`), so `hone review` and
//! `hone serve` have a review adapter on a fresh machine without a training run.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// The name it goes by (`hone serve` serves it under this name, `hone review` names it).
pub const NAME: &str = "nda-review";

/// The cached base model it was trained on.
pub const BASE: &str = "smollm2";

/// Its files, as committed under `models/nda-review/`.
pub const FILES: [(&str, &[u8]); 6] = [
    (
        "adapter_config.json",
        include_bytes!("../../../models/nda-review/adapter_config.json"),
    ),
    (
        "adapter_model.safetensors",
        include_bytes!("../../../models/nda-review/adapter_model.safetensors"),
    ),
    (
        "review.json",
        include_bytes!("../../../models/nda-review/review.json"),
    ),
    (
        "tfidf.safetensors",
        include_bytes!("../../../models/nda-review/tfidf.safetensors"),
    ),
    (
        "train_config.toml",
        include_bytes!("../../../models/nda-review/train_config.toml"),
    ),
    (
        "validation.json",
        include_bytes!("../../../models/nda-review/validation.json"),
    ),
];

/// The folder holding the built-in adapter, written into `hone_model::fetch::hone_home()`
/// the first time it is asked for.
pub fn adapter_dir() -> Result<PathBuf> {
    materialize(
        &hone_model::fetch::hone_home().join("adapters"),
        NAME,
        &FILES,
    )
}

/// Writes `files` into `root/NAME-<hash of the files>/` unless a complete copy is there, and
/// returns that folder. The copy is built in a temporary folder beside it and renamed into
/// place, so a crash or a second process never leaves (or reads) a half-written one; a folder
/// whose files do not have the expected sizes (edited, truncated) is replaced.
pub fn materialize(root: &Path, name: &str, files: &[(&str, &[u8])]) -> Result<PathBuf> {
    let mut h = Sha256::new();
    for (file, bytes) in files {
        h.update((file.len() as u64).to_le_bytes());
        h.update(file.as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }
    let digest = h.finalize();
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    let dir = root.join(format!("{name}-{hex}"));
    let complete = |d: &Path| {
        files.iter().all(|(f, bytes)| {
            std::fs::metadata(d.join(f)).is_ok_and(|m| m.len() == bytes.len() as u64)
        })
    };
    if complete(&dir) {
        return Ok(dir);
    }
    std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
    let tmp = root.join(format!(".{name}-{hex}.{}", std::process::id()));
    let write = || -> Result<()> {
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        for (f, bytes) in files {
            let p = tmp.join(f);
            std::fs::write(&p, bytes).map_err(|e| Error::io(&p, e))?;
        }
        if dir.exists() {
            // An incomplete or damaged copy.
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        match std::fs::rename(&tmp, &dir) {
            Ok(()) => Ok(()),
            // Another process put a complete copy there first.
            Err(_) if complete(&dir) => {
                let _ = std::fs::remove_dir_all(&tmp);
                Ok(())
            }
            Err(e) => Err(Error::io(&dir, e)),
        }
    };
    let res = write();
    if res.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    res.map(|()| dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_once_rewrites_a_damaged_copy_and_names_the_folder_by_content() {
        let d = tempfile::tempdir().unwrap();
        let files: [(&str, &[u8]); 2] = [("a.json", b"{\"x\": 1}"), ("w.bin", &[1, 2, 3, 4])];
        let dir = materialize(d.path(), "t", &files).unwrap();
        assert!(dir.file_name().unwrap().to_str().unwrap().starts_with("t-"));
        assert_eq!(std::fs::read(dir.join("a.json")).unwrap(), b"{\"x\": 1}");
        assert_eq!(std::fs::read(dir.join("w.bin")).unwrap(), [1, 2, 3, 4]);
        // Nothing else is left in the root (no temporary folder).
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);

        // A second call finds the copy and leaves it as it is.
        let t = std::fs::metadata(dir.join("w.bin"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(materialize(d.path(), "t", &files).unwrap(), dir);
        assert_eq!(
            std::fs::metadata(dir.join("w.bin"))
                .unwrap()
                .modified()
                .unwrap(),
            t
        );

        // A truncated file is noticed and the copy rewritten.
        std::fs::write(dir.join("w.bin"), [1]).unwrap();
        assert_eq!(materialize(d.path(), "t", &files).unwrap(), dir);
        assert_eq!(std::fs::read(dir.join("w.bin")).unwrap(), [1, 2, 3, 4]);

        // Other contents get another folder.
        let other: [(&str, &[u8]); 2] = [("a.json", b"{\"x\": 2}"), ("w.bin", &[1, 2, 3, 4])];
        let dir2 = materialize(d.path(), "t", &other).unwrap();
        assert_ne!(dir, dir2);
        assert_eq!(std::fs::read(dir2.join("a.json")).unwrap(), b"{\"x\": 2}");
    }

    #[test]
    fn a_root_that_cannot_be_written_is_an_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        let blocker = d.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let e = materialize(&blocker.join("sub"), "t", &[("a", b"1")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("file"), "{e}");
    }

    #[test]
    fn the_shipped_adapter_is_a_calibrated_review_adapter_for_its_base() {
        let d = tempfile::tempdir().unwrap();
        let dir = materialize(d.path(), NAME, &FILES).unwrap();
        let a = hone_model::load_adapter(&dir).unwrap();
        assert!(a.num_parameters() > 0);
        assert_eq!(
            crate::engine::adapter_format(&dir).as_deref(),
            Some("review")
        );
        let rc: crate::engine::ReviewConfig =
            serde_json::from_slice(FILES[2].1).expect("review.json parses");
        assert!(rc.max_window > 0);
        assert!((0.0..=1.0).contains(&rc.tfidf_weight));
        if rc.tfidf_weight > 0.0 {
            crate::tfidf::TfidfClassifier::load(&dir.join(crate::tfidf::TFIDF_FILE)).unwrap();
        }
    }
}
