//! Where `hone registry` and `hone deploy` act: the store itself (a SQLite file or
//! PostgreSQL, with the adapter objects beside it) or, with `--server URL`, a running
//! `hone serve`'s admin API over HTTP. Both answer with the same records (`hone_ops` types), so
//! the commands print the same way whichever it is.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use hone_ops::deployment::{Change, Deployment};
use hone_ops::status::DeployStatus;
use hone_ops::{registry, Event, Policy, Store, Version, VersionRef};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::args::StoreArgs;

/// Who the store records as having made a change.
const ACTOR: &str = "cli";

pub enum Ops {
    Store(Arc<dyn Store>),
    Server(Server),
}

/// A `hone serve` admin API.
pub struct Server {
    base: String,
    key: Option<String>,
    agent: ureq::Agent,
}

enum Body<'a> {
    Empty,
    Json(Value),
    Toml(&'a str),
}

impl Ops {
    pub fn open(a: &StoreArgs) -> Result<Self> {
        if let Some(url) = &a.server {
            let key = match &a.admin_key_env {
                Some(var) => Some(
                    std::env::var(var)
                        .ok()
                        .filter(|k| !k.is_empty())
                        .ok_or_else(|| {
                            anyhow!("--admin-key-env {var}: the variable is not set (or empty)")
                        })?,
                ),
                None => None,
            };
            let agent = ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(10))
                // a deploy on the server loads the adapter before it answers
                .timeout(Duration::from_secs(300))
                .build();
            return Ok(Ops::Server(Server {
                base: url.trim_end_matches('/').to_string(),
                key,
                agent,
            }));
        }
        let store = a
            .location
            .open()
            .context("cannot open the registry store")?;
        Ok(Ops::Store(store))
    }

    pub fn is_server(&self) -> bool {
        matches!(self, Ops::Server(_))
    }

    /// The versions of `name` (every name when `None`), oldest first.
    pub fn versions(&self, name: Option<&str>) -> Result<Vec<Version>> {
        if let Some(n) = name {
            hone_ops::version::check_name(n)?;
        }
        match self {
            Ops::Store(s) => Ok(s.versions(name)?),
            Ops::Server(s) => {
                let path = match name {
                    Some(n) => format!("/admin/versions?name={n}"),
                    None => "/admin/versions".to_string(),
                };
                s.data(s.call("GET", &path, Body::Empty)?)
            }
        }
    }

    /// Registers the adapter in `dir` (with a server: a folder under its adapter folders).
    pub fn add(&self, name: &str, dir: &Path, notes: &str) -> Result<Version> {
        hone_ops::version::check_name(name)?;
        match self {
            Ops::Store(s) => registry::add(s.as_ref(), name, dir, notes, ACTOR)
                .with_context(|| format!("cannot register {} as {name}", dir.display())),
            Ops::Server(s) => s.parse(s.call(
                "POST",
                "/admin/versions",
                Body::Json(json!({"name": name, "path": dir, "notes": notes})),
            )?),
        }
    }

    /// One version; an error when it is not registered.
    pub fn version(&self, r: &VersionRef) -> Result<Version> {
        match self {
            Ops::Store(s) => s
                .version(r)?
                .ok_or_else(|| anyhow!("{r} is not in the registry ({})", s.describe())),
            Ops::Server(s) => s.parse(s.call(
                "GET",
                &format!("/admin/versions/{}/{}", r.name, r.version),
                Body::Empty,
            )?),
        }
    }

    pub fn remove(&self, r: &VersionRef) -> Result<()> {
        match self {
            Ops::Store(s) => Ok(s.remove_version(r, ACTOR)?),
            Ops::Server(s) => {
                s.call(
                    "DELETE",
                    &format!("/admin/versions/{}/{}", r.name, r.version),
                    Body::Empty,
                )?;
                Ok(())
            }
        }
    }

    /// The deployment and policy of `name`; from a server, with the live numbers and verdict.
    pub fn status(&self, name: &str) -> Result<DeployStatus> {
        hone_ops::version::check_name(name)?;
        match self {
            Ops::Store(s) => Ok(DeployStatus {
                name: name.to_string(),
                deployment: s.deployment(name)?,
                policy: s.policy(name)?,
                prod: None,
                canary: None,
                verdict: None,
            }),
            Ops::Server(s) => {
                s.parse(s.call("GET", &format!("/admin/deployments/{name}"), Body::Empty)?)
            }
        }
    }

    /// Applies a deployment change. Against the store, the version the change puts in front
    /// of requests (the new prod or canary) has its files checked and its adapter loaded
    /// first: a version that fails is refused and nothing is written.
    pub fn change(&self, name: &str, change: &Change) -> Result<(Deployment, Event)> {
        hone_ops::version::check_name(name)?;
        match self {
            Ops::Store(s) => {
                let cur = s
                    .deployment(name)?
                    .unwrap_or_else(|| Deployment::empty(name));
                let target = match change {
                    Change::Prod(v) => Some(*v),
                    Change::Canary { version, .. } => Some(*version),
                    Change::Promote => cur.canary.as_ref().map(|c| c.version),
                    Change::Rollback if cur.canary.is_none() => cur.previous,
                    Change::Rollback => None,
                };
                if let Some(v) = target {
                    let r = VersionRef::new(name, v);
                    let ver = self.version(&r)?;
                    registry::load(s.as_ref(), &ver).with_context(|| {
                        format!("refusing to deploy {r}: its stored files fail the check")
                    })?;
                }
                // against the deployment just checked: a change made meanwhile is refused
                Ok(s.change(name, change, Some(cur.generation), ACTOR, None)?)
            }
            Ops::Server(s) => {
                let body = match change {
                    Change::Prod(v) => json!({"action": "deploy", "version": v, "canary": null}),
                    Change::Canary { version, percent } => {
                        json!({"action": "deploy", "version": version, "canary": percent})
                    }
                    Change::Promote => json!({"action": "promote"}),
                    Change::Rollback => json!({"action": "rollback"}),
                };
                #[derive(serde::Deserialize)]
                struct Changed {
                    deployment: Deployment,
                    event: Event,
                }
                let c: Changed = s.parse(s.call(
                    "POST",
                    &format!("/admin/deployments/{name}"),
                    Body::Json(body),
                )?)?;
                Ok((c.deployment, c.event))
            }
        }
    }

    /// Checks the policy file and stores it as `name`'s.
    pub fn set_policy(&self, name: &str, file: &Path) -> Result<Policy> {
        hone_ops::version::check_name(name)?;
        let policy = Policy::read(file)?;
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        match self {
            Ops::Store(s) => s.set_policy(name, &text, ACTOR)?,
            Ops::Server(s) => {
                s.call(
                    "PUT",
                    &format!("/admin/deployments/{name}/policy"),
                    Body::Toml(&text),
                )?;
            }
        }
        Ok(policy)
    }

    /// The newest `limit` events of `name`, oldest first.
    pub fn events(&self, name: &str, limit: usize) -> Result<Vec<Event>> {
        hone_ops::version::check_name(name)?;
        match self {
            Ops::Store(s) => Ok(s.events(Some(name), limit)?),
            Ops::Server(s) => s.data(s.call(
                "GET",
                &format!("/admin/deployments/{name}/events?limit={limit}"),
                Body::Empty,
            )?),
        }
    }

    /// Where the adapter objects of a version live (store only).
    pub fn object_dir(&self, v: &Version) -> Option<std::path::PathBuf> {
        match self {
            Ops::Store(s) => Some(registry::object_dir(s.as_ref(), &v.meta)),
            Ops::Server(_) => None,
        }
    }
}

impl Server {
    /// One admin API call; an error status is reported with the server's `error.message`.
    fn call(&self, method: &str, path: &str, body: Body<'_>) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut req = self.agent.request(method, &url);
        if let Some(k) = &self.key {
            req = req.set("Authorization", &format!("Bearer {k}"));
        }
        let res = match body {
            Body::Empty => req.call(),
            Body::Json(v) => req.send_json(v),
            Body::Toml(t) => req.set("Content-Type", "application/toml").send_string(t),
        };
        match res {
            Ok(resp) => {
                let text = resp
                    .into_string()
                    .with_context(|| format!("{method} {url}: cannot read the answer"))?;
                serde_json::from_str(&text)
                    .with_context(|| format!("{method} {url}: the answer is not JSON: {text}"))
            }
            Err(ureq::Error::Status(code, resp)) => {
                let text = resp.into_string().unwrap_or_default();
                let msg = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
                    .unwrap_or_else(|| text.trim().to_string());
                bail!("{} answered {code} to {method} {path}: {msg}", self.base)
            }
            Err(e) => bail!("cannot reach {}: {e}", self.base),
        }
    }

    fn parse<T: DeserializeOwned>(&self, v: Value) -> Result<T> {
        serde_json::from_value(v).with_context(|| {
            format!(
                "{}: an answer hone does not understand (another version of hone serve?)",
                self.base
            )
        })
    }

    /// `{"data": [...]}`.
    fn data<T: DeserializeOwned>(&self, mut v: Value) -> Result<Vec<T>> {
        self.parse(v.get_mut("data").map(Value::take).unwrap_or(Value::Null))
    }
}
