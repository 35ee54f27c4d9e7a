//! What `hone deploy status NAME` shows: the deployment, its policy, and the live numbers of
//! prod and canary over the canary's window (a server's `GET /admin/deployments/NAME` answers
//! with this, as JSON).

use serde::{Deserialize, Serialize};

use crate::live::Snapshot;
use crate::policy::Verdict;
use crate::{Deployment, VersionRef};

/// One version's live numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionLive {
    pub version: VersionRef,
    pub snapshot: Snapshot,
}

/// The status of one name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeployStatus {
    pub name: String,
    pub deployment: Option<Deployment>,
    /// The policy's TOML text.
    pub policy: Option<String>,
    /// Live numbers (only a server has them).
    pub prod: Option<VersionLive>,
    pub canary: Option<VersionLive>,
    /// The policy's current verdict on the canary.
    pub verdict: Option<Verdict>,
}
