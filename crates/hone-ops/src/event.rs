//! What happened to a name: registrations, deploys, canaries, promotions and rollbacks, with
//! the numbers behind an automatic decision.

use serde::{Deserialize, Serialize};

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Assigned by the store, increasing.
    pub id: i64,
    pub name: String,
    /// Unix seconds.
    pub time: i64,
    /// `register`, `remove`, `deploy`, `canary`, `promote`, `rollback`, `policy`.
    pub kind: String,
    /// Who did it: `cli`, `admin-api`, `policy` (automatic).
    pub actor: String,
    /// One line for people.
    pub message: String,
    /// The numbers (policy verdicts carry every gate's value and threshold).
    pub detail: serde_json::Value,
}

/// An event before the store numbers it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub kind: String,
    pub actor: String,
    pub message: String,
    pub detail: serde_json::Value,
}

impl NewEvent {
    pub fn new(kind: &str, actor: &str, message: impl Into<String>) -> Self {
        Self {
            kind: kind.into(),
            actor: actor.into(),
            message: message.into(),
            detail: serde_json::Value::Null,
        }
    }
    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }
}
