//! Registering adapters: `registry add` hashes an adapter folder, copies its files into the
//! store's object folder under their content hash (so a version cannot change under its name)
//! and records what made it; [`checked_dir`] gives back a version's folder after checking every
//! file against the recorded hashes.
//!
//! Objects: `OBJECTS/<tree>/FILE`, where `<tree>` is the SHA-256 of the version's file list
//! (name and content hash of each file). An object folder is written under a temporary name
//! and renamed into place, then the version is recorded in one transaction: a process killed
//! at any point leaves no version whose files are incomplete (at worst an unreferenced object
//! folder, which the next `add` of the same files reuses).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::store::Store;
use crate::version::{check_name, DataFile, StoredFile, Version, VersionMeta};
use crate::{Error, Result};

/// The files of an adapter folder a version keeps: the PEFT pair, then what `hone review`
/// and `hone eval` put beside it.
pub const ADAPTER_FILES: &[&str] = &[
    hone_model::peft::CONFIG_FILE,
    hone_model::peft::WEIGHTS_FILE,
    "train_config.toml",
    "train_summary.json",
    "review.json",
    "tfidf.safetensors",
    "validation.json",
    "report.json",
    crate::baseline::BASELINE_FILE,
];

/// Files whose numbers become the version's metrics, in order of preference.
const METRIC_FILES: &[&str] = &["report.json", "validation.json"];

/// At most this many metrics are kept from a report (its numeric leaves).
const MAX_METRICS: usize = 400;

/// SHA-256 (lowercase hex) and length of a file.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    Ok(hone_model::fetch::sha256_file(path)?)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The object folder name of a file list.
pub fn tree_hash(files: &[StoredFile]) -> String {
    let mut h = Sha256::new();
    let mut sorted: Vec<&StoredFile> = files.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for f in sorted {
        h.update(f.name.as_bytes());
        h.update([0]);
        h.update(f.sha256.as_bytes());
        h.update(b"\n");
    }
    hex(&h.finalize())
}

/// Where a version's files live.
pub fn object_dir(store: &dyn Store, meta: &VersionMeta) -> PathBuf {
    store.objects_dir().join(tree_hash(&meta.files))
}

/// Reads what a version records from an adapter folder (hashing its files).
pub fn describe_adapter(dir: &Path, notes: &str) -> Result<VersionMeta> {
    let cfg_path = dir.join(hone_model::peft::CONFIG_FILE);
    let weights = dir.join(hone_model::peft::WEIGHTS_FILE);
    for p in [&cfg_path, &weights] {
        if !p.is_file() {
            return Err(Error::invalid(format!(
                "{}: not an adapter folder (no {})",
                dir.display(),
                p.file_name().unwrap_or_default().to_string_lossy()
            )));
        }
    }
    // The weights must load: a registry of unreadable adapters is worse than none.
    hone_model::load_adapter(dir)?;
    let cfg = hone_model::peft::read_adapter_config(dir)?;
    let mut files = Vec::new();
    for name in ADAPTER_FILES {
        let p = dir.join(name);
        if p.is_file() {
            let (sha256, bytes) = sha256_file(&p)?;
            files.push(StoredFile {
                name: name.to_string(),
                sha256,
                bytes,
            });
        }
    }
    let adapter_sha256 = files
        .iter()
        .find(|f| f.name == hone_model::peft::WEIGHTS_FILE)
        .map(|f| f.sha256.clone())
        .unwrap_or_default();
    let base_model = cfg.base_model_name_or_path.clone().unwrap_or_default();
    let base_sha256 = base_hash(&base_model)?;
    let train_config = read_optional(&dir.join("train_config.toml"))?;
    let data = train_config
        .as_deref()
        .map(data_files)
        .transpose()?
        .unwrap_or_default();
    let (metrics, metrics_source) = metrics_of(dir)?;
    let baseline = crate::baseline::OutputBaseline::read(dir)?;
    Ok(VersionMeta {
        adapter_sha256,
        files,
        base_model,
        base_sha256,
        train_config,
        data,
        metrics,
        metrics_source,
        notes: notes.to_string(),
        source: dir
            .canonicalize()
            .unwrap_or_else(|_| dir.to_path_buf())
            .display()
            .to_string(),
        baseline,
    })
}

fn read_optional(p: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(p) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(p, e)),
    }
}

/// The base model's SHA-256: pinned for a known model name, hashed for a file that exists.
fn base_hash(base: &str) -> Result<Option<String>> {
    if let Some(m) = hone_model::fetch::known_model(base) {
        return Ok(Some(m.sha256.to_string()));
    }
    let p = Path::new(base);
    if p.is_file() {
        return Ok(Some(sha256_file(p)?.0));
    }
    Ok(None)
}

/// The training data files a run's `train_config.toml` names, hashed and counted.
fn data_files(config: &str) -> Result<Vec<DataFile>> {
    let v: toml::Table = config
        .parse()
        .map_err(|e| Error::invalid(format!("train_config.toml: {e}")))?;
    let Some(data) = v.get("data").and_then(|d| d.as_table()) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for role in ["train", "validation"] {
        let Some(path) = data.get(role).and_then(|p| p.as_str()) else {
            continue;
        };
        let p = Path::new(path);
        let (sha256, examples) = if p.is_file() {
            let (h, _) = sha256_file(p)?;
            let text = std::fs::read(p).map_err(|e| Error::io(p, e))?;
            let n = text
                .split(|&b| b == b'\n')
                .filter(|l| l.iter().any(|b| !b.is_ascii_whitespace()))
                .count() as u64;
            (Some(h), Some(n))
        } else {
            (None, None)
        };
        out.push(DataFile {
            role: role.to_string(),
            path: path.to_string(),
            sha256,
            examples,
        });
    }
    Ok(out)
}

/// The numeric leaves (outside arrays) of the first metrics file found beside the adapter, as
/// dotted paths.
fn metrics_of(dir: &Path) -> Result<(BTreeMap<String, f64>, Option<String>)> {
    for name in METRIC_FILES {
        let p = dir.join(name);
        let Some(text) = read_optional(&p)? else {
            continue;
        };
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| Error::invalid(format!("{}: not JSON: {e}", p.display())))?;
        let mut out = BTreeMap::new();
        flatten("", &v, &mut out);
        return Ok((out, Some(name.to_string())));
    }
    Ok((BTreeMap::new(), None))
}

fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, f64>) {
    if out.len() >= MAX_METRICS {
        return;
    }
    let key = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match v {
        Value::Number(n) => {
            if let Some(x) = n.as_f64() {
                out.insert(prefix.to_string(), x);
            }
        }
        Value::Object(m) => {
            for (k, v) in m {
                flatten(&key(k), v, out);
            }
        }
        // Arrays are breakdowns (per hypothesis, per document): the summary numbers are
        // what versions are compared on.
        _ => {}
    }
}

/// Copies `dir`'s files into the object folder of `meta` (unless already there).
fn put_objects(store: &dyn Store, dir: &Path, meta: &VersionMeta) -> Result<PathBuf> {
    let dest = object_dir(store, meta);
    if dest.is_dir() && verify_files(&dest, meta).is_ok() {
        return Ok(dest);
    }
    let objects = store.objects_dir();
    std::fs::create_dir_all(objects).map_err(|e| Error::io(objects, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".incoming-")
        .tempdir_in(objects)
        .map_err(|e| Error::io(objects, e))?;
    for f in &meta.files {
        let src = dir.join(&f.name);
        let dst = tmp.path().join(&f.name);
        std::fs::copy(&src, &dst).map_err(|e| Error::io(&src, e))?;
        let file = std::fs::File::open(&dst).map_err(|e| Error::io(&dst, e))?;
        file.sync_all().map_err(|e| Error::io(&dst, e))?;
    }
    // The copy must be what was hashed (the folder may have changed meanwhile).
    verify_files(tmp.path(), meta).map_err(|msg| Error::Corrupt {
        version: dir.display().to_string(),
        msg: format!("the adapter changed while it was being registered: {msg}"),
    })?;
    if dest.exists() {
        // A damaged earlier copy: replace it.
        std::fs::remove_dir_all(&dest).map_err(|e| Error::io(&dest, e))?;
    }
    let tmp = tmp.keep();
    std::fs::rename(&tmp, &dest).map_err(|e| Error::io(&dest, e))?;
    if let Ok(d) = std::fs::File::open(objects) {
        let _ = d.sync_all();
    }
    Ok(dest)
}

/// Checks every recorded file of `meta` in `dir`; the message names the first bad one.
fn verify_files(dir: &Path, meta: &VersionMeta) -> std::result::Result<(), String> {
    for f in &meta.files {
        let p = dir.join(&f.name);
        match sha256_file(&p) {
            Ok((h, _)) if h == f.sha256 => {}
            Ok((h, n)) => {
                return Err(format!(
                    "{} is corrupt: SHA-256 {h} ({n} bytes), the registry recorded {} ({} bytes)",
                    p.display(),
                    f.sha256,
                    f.bytes
                ))
            }
            Err(_) => return Err(format!("{} is missing", p.display())),
        }
    }
    Ok(())
}

/// `registry add`: registers the adapter in `dir` as the next version of `name`.
pub fn add(store: &dyn Store, name: &str, dir: &Path, notes: &str, actor: &str) -> Result<Version> {
    check_name(name)?;
    let meta = describe_adapter(dir, notes)?;
    put_objects(store, dir, &meta)?;
    // crash tests kill the process here: objects written, version not recorded
    crate::fault::pause("add");
    store.insert_version(name, &meta, actor)
}

/// The folder of a registered version, every file checked against its recorded hash; a
/// missing or changed file is [`Error::Corrupt`].
pub fn checked_dir(store: &dyn Store, v: &Version) -> Result<PathBuf> {
    let dir = object_dir(store, &v.meta);
    verify_files(&dir, &v.meta).map_err(|msg| Error::Corrupt {
        version: v.reference().to_string(),
        msg,
    })?;
    Ok(dir)
}

/// Loads a version's adapter (files checked first).
pub fn load(store: &dyn Store, v: &Version) -> Result<hone_model::lora::LoraAdapter> {
    let dir = checked_dir(store, v)?;
    Ok(hone_model::load_adapter(&dir)?)
}

/// `registry diff`: the metrics of two versions side by side (name, a, b), every name either
/// has.
pub fn diff_metrics(a: &Version, b: &Version) -> Vec<(String, Option<f64>, Option<f64>)> {
    let mut names: Vec<&String> = a.meta.metrics.keys().chain(b.meta.metrics.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|n| {
            (
                n.clone(),
                a.meta.metrics.get(n).copied(),
                b.meta.metrics.get(n).copied(),
            )
        })
        .collect()
}
