//! A registered version of an adapter: `NAME@N`, immutable once written.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// `NAME@N`: one version of a named adapter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VersionRef {
    pub name: String,
    pub version: u32,
}

impl VersionRef {
    pub fn new(name: impl Into<String>, version: u32) -> Self {
        Self {
            name: name.into(),
            version,
        }
    }
}

impl fmt::Display for VersionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

impl FromStr for VersionRef {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let (name, n) = s.rsplit_once('@').ok_or_else(|| {
            Error::invalid(format!("`{s}` is not a version: write NAME@N (e.g. nda@3)"))
        })?;
        check_name(name)?;
        let version: u32 = n.parse().ok().filter(|&v| v > 0).ok_or_else(|| {
            Error::invalid(format!("`{s}`: the version after `@` is a number from 1"))
        })?;
        Ok(Self::new(name, version))
    }
}

/// Names are 1-64 characters of letters, digits, `-`, `_` and `.`, not starting with `.`
/// (they become metric labels, URL segments and folder names).
pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "`{name}`: names are 1-64 characters of letters, digits, '-', '_' and '.'"
        )))
    }
}

/// One adapter file as stored: its name in the adapter folder and its content hash (the
/// object it is stored as).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFile {
    pub name: String,
    pub sha256: String,
    pub bytes: u64,
}

/// A training data file the adapter was trained on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFile {
    /// `train` or `validation`.
    pub role: String,
    pub path: String,
    /// Absent when the file is no longer where the config says.
    pub sha256: Option<String>,
    pub examples: Option<u64>,
}

/// What `registry add` records; everything but the number and time, which the store assigns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionMeta {
    /// SHA-256 of `adapter_model.safetensors`: the identity of the weights.
    pub adapter_sha256: String,
    pub files: Vec<StoredFile>,
    pub base_model: String,
    pub base_sha256: Option<String>,
    /// The run's effective training config (`train_config.toml`), verbatim.
    pub train_config: Option<String>,
    pub data: Vec<DataFile>,
    /// Flat eval metrics (`report.json` / `validation.json` beside the adapter), name -> value.
    pub metrics: std::collections::BTreeMap<String, f64>,
    /// Where the metrics came from.
    pub metrics_source: Option<String>,
    pub notes: String,
    /// The folder it was registered from.
    pub source: String,
    /// What its evaluation answers looked like (`output_baseline.json` beside the adapter):
    /// live answers are tested against it for drift. Absent: "no baseline".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<crate::baseline::OutputBaseline>,
}

/// A registered version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Version {
    pub name: String,
    pub version: u32,
    /// Unix seconds.
    pub created: i64,
    #[serde(flatten)]
    pub meta: VersionMeta,
}

impl Version {
    pub fn reference(&self) -> VersionRef {
        VersionRef::new(self.name.clone(), self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_references() {
        let r: VersionRef = "nda-v2@12".parse().unwrap();
        assert_eq!(r, VersionRef::new("nda-v2", 12));
        assert_eq!(r.to_string(), "nda-v2@12");
        // the last `@` splits, so a name cannot smuggle one in
        assert!("a@b@1".parse::<VersionRef>().is_err());
        for bad in [
            "nda", "nda@", "nda@0", "nda@-1", "@1", ".x@1", "n/a@1", "nda@x",
        ] {
            let e = bad.parse::<VersionRef>().unwrap_err().to_string();
            assert!(e.contains('`'), "{bad}: {e}");
        }
    }
}
