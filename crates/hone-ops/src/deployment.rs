//! The aliases of one name: `prod`, the version before it (kept loaded, so a rollback is a
//! pointer swap) and an optional `canary` taking a share of the traffic. Every change is a
//! pure function from one [`Deployment`] to the next plus the [`NewEvent`] that records it; the
//! store applies it in one transaction.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::event::NewEvent;
use crate::{Error, Result, VersionRef};

/// A canary: `version` answers `percent` of the requests for the name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Canary {
    pub version: u32,
    /// 0 < percent < 100.
    pub percent: f64,
    /// Unix seconds: when it started (its numbers are judged from here).
    pub started: i64,
}

/// The deployment of one name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub name: String,
    pub prod: Option<u32>,
    /// The prod before the current one: what a rollback without a canary goes back to.
    pub previous: Option<u32>,
    pub canary: Option<Canary>,
    /// Bumped by every change; a change made against an older generation is refused.
    pub generation: i64,
    /// Unix seconds of the last change.
    pub updated: i64,
}

/// A change of a deployment.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// `hone deploy NAME@N`: N becomes prod (the old prod is kept as `previous`); a running
    /// canary ends.
    Prod(u32),
    /// `hone deploy NAME@N --canary P`.
    Canary { version: u32, percent: f64 },
    /// The canary becomes prod.
    Promote,
    /// With a canary: the canary ends, prod is untouched. Without: `previous` becomes prod.
    Rollback,
}

impl Deployment {
    /// A name with nothing deployed yet.
    pub fn empty(name: &str) -> Self {
        Self {
            name: name.to_string(),
            prod: None,
            previous: None,
            canary: None,
            generation: 0,
            updated: 0,
        }
    }

    pub fn prod_ref(&self) -> Option<VersionRef> {
        self.prod.map(|v| VersionRef::new(self.name.clone(), v))
    }

    pub fn canary_ref(&self) -> Option<VersionRef> {
        self.canary
            .as_ref()
            .map(|c| VersionRef::new(self.name.clone(), c.version))
    }

    /// The versions a server keeps loaded for this name: prod, canary and previous.
    pub fn live_versions(&self) -> Vec<u32> {
        let mut v: Vec<u32> = [
            self.prod,
            self.canary.as_ref().map(|c| c.version),
            self.previous,
        ]
        .into_iter()
        .flatten()
        .collect();
        v.dedup();
        v
    }

    /// Whether `version` is prod, canary or the rollback target (and so may not be removed).
    pub fn uses(&self, version: u32) -> bool {
        self.live_versions().contains(&version)
    }

    /// Applies `change`, returning the next deployment and its event (`actor` says who).
    /// `now` is Unix seconds.
    pub fn apply(&self, change: &Change, actor: &str, now: i64) -> Result<(Deployment, NewEvent)> {
        let name = &self.name;
        let mut next = self.clone();
        next.generation = self.generation + 1;
        next.updated = now;
        let ev = match *change {
            Change::Prod(v) => {
                if self.prod == Some(v) && self.canary.is_none() {
                    return Err(Error::invalid(format!("{name}@{v} is already prod")));
                }
                if self.prod != Some(v) {
                    next.previous = self.prod;
                }
                next.prod = Some(v);
                next.canary = None;
                let msg = match self.prod {
                    Some(p) if p != v => format!("{name}@{v} is prod (was {name}@{p})"),
                    _ => format!("{name}@{v} is prod"),
                };
                NewEvent::new("deploy", actor, msg)
                    .with_detail(json!({"prod": v, "previous": self.prod}))
            }
            Change::Canary { version, percent } => {
                if !(percent > 0.0 && percent < 100.0 && percent.is_finite()) {
                    return Err(Error::invalid(format!(
                        "--canary {percent}: a canary's share is a percentage above 0 and below 100"
                    )));
                }
                let Some(p) = self.prod else {
                    return Err(Error::invalid(format!(
                        "{name} has no prod version yet: deploy one first (hone deploy {name}@{version})"
                    )));
                };
                if p == version {
                    return Err(Error::invalid(format!(
                        "{name}@{version} is prod already; a canary is another version"
                    )));
                }
                next.canary = Some(Canary {
                    version,
                    percent,
                    started: now,
                });
                NewEvent::new(
                    "canary",
                    actor,
                    format!(
                        "{name}@{version} takes {percent}% of the requests for {name} (prod {name}@{p})"
                    ),
                )
                .with_detail(json!({"canary": version, "percent": percent, "prod": p}))
            }
            Change::Promote => {
                let Some(c) = &self.canary else {
                    return Err(Error::invalid(format!("{name} has no canary to promote")));
                };
                next.previous = self.prod;
                next.prod = Some(c.version);
                next.canary = None;
                NewEvent::new(
                    "promote",
                    actor,
                    format!(
                        "{name}@{} promoted to prod (was {})",
                        c.version,
                        self.prod
                            .map(|p| format!("{name}@{p}"))
                            .unwrap_or("none".into())
                    ),
                )
                .with_detail(json!({"prod": c.version, "previous": self.prod}))
            }
            Change::Rollback => {
                if let Some(c) = &self.canary {
                    next.canary = None;
                    NewEvent::new(
                        "rollback",
                        actor,
                        format!(
                            "canary {name}@{} rolled back; all traffic to prod {name}@{}",
                            c.version,
                            self.prod.unwrap_or(0)
                        ),
                    )
                    .with_detail(json!({"canary": c.version, "prod": self.prod}))
                } else {
                    let (Some(p), Some(prev)) = (self.prod, self.previous) else {
                        return Err(Error::invalid(format!(
                            "{name} has no canary and no previous prod version to roll back to"
                        )));
                    };
                    next.prod = Some(prev);
                    next.previous = None;
                    NewEvent::new(
                        "rollback",
                        actor,
                        format!("{name}@{p} rolled back; {name}@{prev} is prod again"),
                    )
                    .with_detail(json!({"prod": prev, "from": p}))
                }
            }
        };
        Ok((next, ev))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deploy_canary_promote_rollback() {
        let d = Deployment::empty("nda");
        assert!(d
            .apply(
                &Change::Canary {
                    version: 2,
                    percent: 10.0
                },
                "t",
                1
            )
            .is_err());
        assert!(d.apply(&Change::Rollback, "t", 1).is_err());
        let (d, e) = d.apply(&Change::Prod(1), "t", 1).unwrap();
        assert_eq!((d.prod, d.previous, d.generation), (Some(1), None, 1));
        assert_eq!(e.kind, "deploy");
        assert!(d.apply(&Change::Prod(1), "t", 1).is_err());
        for bad in [0.0, 100.0, -5.0, f64::NAN] {
            assert!(d
                .apply(
                    &Change::Canary {
                        version: 2,
                        percent: bad
                    },
                    "t",
                    2
                )
                .is_err());
        }
        assert!(d
            .apply(
                &Change::Canary {
                    version: 1,
                    percent: 10.0
                },
                "t",
                2
            )
            .is_err());
        let (c, _) = d
            .apply(
                &Change::Canary {
                    version: 2,
                    percent: 10.0,
                },
                "t",
                2,
            )
            .unwrap();
        assert_eq!(c.canary.as_ref().unwrap().version, 2);
        assert_eq!(c.live_versions(), vec![1, 2]);
        // rollback of a canary leaves prod alone
        let (r, e) = c.apply(&Change::Rollback, "policy", 3).unwrap();
        assert_eq!(
            (r.prod, r.canary.is_none(), r.generation),
            (Some(1), true, 3)
        );
        assert!(e.message.contains("nda@2"), "{}", e.message);
        // promote keeps the old prod as previous; a rollback then goes back to it
        let (p, _) = c.apply(&Change::Promote, "t", 3).unwrap();
        assert_eq!(
            (p.prod, p.previous, p.canary.is_none()),
            (Some(2), Some(1), true)
        );
        assert!(p.uses(1) && p.uses(2) && !p.uses(3));
        let (b, _) = p.apply(&Change::Rollback, "t", 4).unwrap();
        assert_eq!((b.prod, b.previous), (Some(1), None));
        assert!(b.apply(&Change::Rollback, "t", 5).is_err());
        assert!(b.apply(&Change::Promote, "t", 5).is_err());
    }
}
