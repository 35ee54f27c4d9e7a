//! A run's output folder: what a run writes there, whether a folder already holds a run (a new
//! run refuses it unless told to start over, so a finished or interrupted run is never
//! half-overwritten by another configuration), clearing it, and finding the last complete
//! checkpoint after a crash in the middle of writing one.

use std::path::{Path, PathBuf};

use hone_data::train_log::{LOSS_PLOT_FILE, METRICS_FILE, SUMMARY_FILE};

use crate::{Error, Result};

/// The checkpoint folder; `checkpoint.tmp` is the next one being written and `checkpoint.old`
/// the previous one while the two are swapped.
pub const CHECKPOINT: &str = "checkpoint";

/// Files a run (and its calibration, evaluation and registration steps) writes in its folder:
/// what `clear` removes. Anything else in the folder is left alone.
pub const RUN_FILES: &[&str] = &[
    "train_config.toml",
    "adapter_config.json",
    "adapter_model.safetensors",
    METRICS_FILE,
    LOSS_PLOT_FILE,
    SUMMARY_FILE,
    "review.json",
    "calibration.incomplete",
    "tfidf.safetensors",
    "validation.json",
    "report.json",
    "output_baseline.json",
];

/// The checkpoint folders, newest first once complete.
const CHECKPOINT_DIRS: [&str; 3] = ["checkpoint", "checkpoint.tmp", "checkpoint.old"];

/// Files a complete checkpoint holds.
const CHECKPOINT_FILES: [&str; 4] = [
    "state.json",
    "optimizer.safetensors",
    "adapter_model.safetensors",
    "adapter_config.json",
];

fn complete(dir: &Path) -> bool {
    CHECKPOINT_FILES.iter().all(|f| dir.join(f).is_file())
}

/// What `out` already holds of a run, in words ("a finished run", "an interrupted run (a
/// checkpoint)"), or `None` when there is nothing of one.
pub fn existing(out: &Path) -> Option<String> {
    let ckpt = CHECKPOINT_DIRS.iter().any(|d| out.join(d).exists());
    let adapter = out.join("adapter_model.safetensors").is_file();
    let config = out.join("train_config.toml").is_file();
    match (adapter, ckpt, config) {
        (true, _, _) => Some("a finished run".into()),
        (false, true, _) => Some("an interrupted run (a checkpoint)".into()),
        (false, false, true) => Some("a run's configuration (train_config.toml)".into()),
        (false, false, false) => None,
    }
}

/// Removes what a run wrote in `out` ([`RUN_FILES`] and the checkpoints); other files stay.
pub fn clear(out: &Path) -> Result<()> {
    for f in RUN_FILES {
        let p = out.join(f);
        if p.is_file() {
            std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
        }
    }
    for d in CHECKPOINT_DIRS {
        let p = out.join(d);
        if p.exists() {
            std::fs::remove_dir_all(&p).map_err(|e| Error::io(&p, e))?;
        }
    }
    Ok(())
}

/// The run's checkpoint folder, after finishing a swap a crash interrupted: when `checkpoint`
/// is missing, a complete `checkpoint.tmp` (written in full before the swap began, so the
/// newest) or else a complete `checkpoint.old` becomes `checkpoint`. `None`: no complete
/// checkpoint.
pub fn recover_checkpoint(out: &Path) -> Result<Option<PathBuf>> {
    let dst = out.join(CHECKPOINT);
    if complete(&dst) {
        return Ok(Some(dst));
    }
    if dst.exists() {
        // incomplete: not written by a finished swap, so not to be trusted
        return Ok(None);
    }
    for d in ["checkpoint.tmp", "checkpoint.old"] {
        let p = out.join(d);
        if complete(&p) {
            std::fs::rename(&p, &dst).map_err(|e| Error::io(&dst, e))?;
            return Ok(Some(dst));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_checkpoint(dir: &Path, tag: &str) {
        std::fs::create_dir_all(dir).unwrap();
        for f in CHECKPOINT_FILES {
            std::fs::write(dir.join(f), tag).unwrap();
        }
    }

    #[test]
    fn a_swap_cut_short_is_finished_from_the_newest_complete_checkpoint() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path();
        assert_eq!(recover_checkpoint(out).unwrap(), None);
        assert_eq!(existing(out), None);
        // crash after `checkpoint` -> `checkpoint.old`, before `checkpoint.tmp` -> `checkpoint`
        fake_checkpoint(&out.join("checkpoint.old"), "old");
        fake_checkpoint(&out.join("checkpoint.tmp"), "new");
        assert_eq!(
            existing(out).as_deref(),
            Some("an interrupted run (a checkpoint)")
        );
        let c = recover_checkpoint(out).unwrap().unwrap();
        assert_eq!(
            std::fs::read_to_string(c.join("state.json")).unwrap(),
            "new"
        );
        // a partial tmp (a crash while writing it) never wins over the previous one
        std::fs::remove_dir_all(out.join("checkpoint")).unwrap();
        std::fs::write(out.join("checkpoint.old/state.json"), "old").unwrap();
        std::fs::create_dir_all(out.join("checkpoint.tmp")).unwrap();
        std::fs::write(out.join("checkpoint.tmp/state.json"), "partial").unwrap();
        let c = recover_checkpoint(out).unwrap().unwrap();
        assert_eq!(
            std::fs::read_to_string(c.join("state.json")).unwrap(),
            "old"
        );
        // an incomplete `checkpoint` is not used
        std::fs::remove_file(out.join("checkpoint/optimizer.safetensors")).unwrap();
        assert_eq!(recover_checkpoint(out).unwrap(), None);
    }

    #[test]
    fn clearing_removes_the_run_and_keeps_other_files() {
        let t = tempfile::tempdir().unwrap();
        let out = t.path();
        for f in [
            "train_config.toml",
            "adapter_model.safetensors",
            "review.json",
            "notes.txt",
        ] {
            std::fs::write(out.join(f), "x").unwrap();
        }
        fake_checkpoint(&out.join("checkpoint"), "c");
        assert_eq!(existing(out).as_deref(), Some("a finished run"));
        clear(out).unwrap();
        assert_eq!(existing(out), None);
        assert!(out.join("notes.txt").is_file());
        assert!(!out.join("review.json").exists());
    }
}
