//! Versioned deployments inside a server: which registered version answers a request for
//! `NAME` (prod, or the canary for its share), the live numbers of each version, the rollback
//! policy judged continuously, and the replica's view of the store kept current.
//!
//! Every version a deployment points at (prod, canary and the previous prod) is loaded before
//! the route that uses it is published, and routes are swapped as one pointer: a request
//! never waits for weights, and a rollback, local or from another replica, loads nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use hone_model::lora::LoraAdapter;
use hone_model::Llama;
use hone_ops::baseline::OutputBaseline;
use hone_ops::deployment::Change;
use hone_ops::live::{LiveStats, Outcome};
use hone_ops::policy::{Decision, Policy};
use hone_ops::status::{DeployStatus, VersionLive};
use hone_ops::store::Note;
use hone_ops::{registry, route, Deployment, Event, Store, VersionRef};
use serde_json::json;

use crate::error::{Result, ServeError};
use crate::metrics::Metrics;
use crate::version_metrics::VersionMetrics;

/// What answers one name.
#[derive(Clone)]
struct Route {
    deployment: Deployment,
    prod: Arc<LoraAdapter>,
    canary: Option<Arc<LoraAdapter>>,
    /// The previous prod, kept loaded so a rollback is a pointer swap.
    previous: Option<Arc<LoraAdapter>>,
}

/// The version a request was routed to.
pub struct Picked {
    pub adapter: Arc<LoraAdapter>,
    pub version: VersionRef,
}

/// A server's deployments (`Send + Sync`).
pub struct Deployments {
    store: Arc<dyn Store>,
    model: Arc<Llama>,
    metrics: Metrics,
    pub versions: VersionMetrics,
    pub live: LiveStats,
    loaded: RwLock<HashMap<VersionRef, Arc<LoraAdapter>>>,
    /// The evaluation baselines of the loaded versions (`None`: registered without one).
    baselines: RwLock<HashMap<VersionRef, Option<OutputBaseline>>>,
    routes: RwLock<Arc<HashMap<String, Route>>>,
    policies: RwLock<HashMap<String, Policy>>,
    /// The store's change number last applied (also serialises syncs).
    seq: Mutex<Option<i64>>,
}

pub(crate) fn ops_err(e: hone_ops::Error) -> ServeError {
    match e {
        hone_ops::Error::Invalid(m) => ServeError::BadRequest {
            param: None,
            message: m,
        },
        hone_ops::Error::NotFound(m) => ServeError::NotFound(m),
        hone_ops::Error::Conflict(m) => ServeError::Conflict(m),
        e @ hone_ops::Error::Corrupt { .. } => ServeError::Adapter {
            path: String::new(),
            msg: e.to_string(),
        },
        e @ hone_ops::Error::Model(_) => ServeError::Adapter {
            path: String::new(),
            msg: e.to_string(),
        },
        e => ServeError::Internal(e.to_string()),
    }
}

impl Deployments {
    pub fn new(store: Arc<dyn Store>, model: Arc<Llama>, metrics: Metrics) -> Self {
        Self {
            versions: VersionMetrics::new(&metrics),
            store,
            model,
            metrics,
            live: LiveStats::new(),
            loaded: RwLock::new(HashMap::new()),
            baselines: RwLock::new(HashMap::new()),
            routes: RwLock::new(Arc::new(HashMap::new())),
            policies: RwLock::new(HashMap::new()),
            seq: Mutex::new(None),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    fn routes(&self) -> Arc<HashMap<String, Route>> {
        self.routes
            .read()
            .map(|r| Arc::clone(&r))
            .unwrap_or_else(|e| Arc::clone(&e.into_inner()))
    }

    /// Whether `name` has a deployment here.
    pub fn serves(&self, name: &str) -> bool {
        self.routes().contains_key(name)
    }

    /// The names deployed, with their prod version (for `GET /v1/models`).
    pub fn names(&self) -> Vec<(String, i64)> {
        let r = self.routes();
        let mut v: Vec<(String, i64)> = r
            .iter()
            .map(|(n, r)| (n.clone(), r.deployment.updated))
            .collect();
        v.sort();
        v
    }

    /// The version answering a request for `name` by `user`: the canary for its share (sticky
    /// per user), else prod. `None` when `name` is not deployed.
    pub fn pick(&self, name: &str, user: Option<&str>) -> Option<Picked> {
        let routes = self.routes();
        let r = routes.get(name)?;
        if let (Some(c), Some(a)) = (&r.deployment.canary, &r.canary) {
            if route::to_canary(name, c.percent, user, rand::random::<f64>()) {
                return Some(Picked {
                    adapter: a.clone(),
                    version: VersionRef::new(name, c.version),
                });
            }
        }
        Some(Picked {
            adapter: r.prod.clone(),
            version: VersionRef::new(name, r.deployment.prod?),
        })
    }

    /// Whether every answer of `name` is meant to be JSON (its policy's `expect_json`).
    pub fn expect_json(&self, name: &str) -> bool {
        self.policies
            .read()
            .map(|p| p.get(name).is_some_and(|p| p.expect_json))
            .unwrap_or(false)
    }

    /// A registered version addressed directly (`NAME@N`), loaded (files checked) on first
    /// use. Blocking.
    pub fn direct(&self, r: &VersionRef) -> Result<Picked> {
        Ok(Picked {
            adapter: self.load(r)?,
            version: r.clone(),
        })
    }

    /// Whether `r` is loaded already (a direct request needs no blocking load).
    pub fn is_loaded(&self, r: &VersionRef) -> bool {
        self.loaded.read().is_ok_and(|m| m.contains_key(r))
    }

    /// Loads a registered version (files checked against their hashes, shapes against the
    /// model), once.
    fn load(&self, r: &VersionRef) -> Result<Arc<LoraAdapter>> {
        if let Some(a) = self.loaded.read().ok().and_then(|m| m.get(r).cloned()) {
            return Ok(a);
        }
        let v = self
            .store
            .version(r)
            .map_err(ops_err)?
            .ok_or_else(|| ServeError::NotFound(format!("{r} is not in the registry")))?;
        let loaded = registry::load(self.store.as_ref(), &v)
            .map_err(ops_err)
            .and_then(|a| {
                self.model
                    .check_adapter(&a)
                    .map_err(|e| ServeError::Adapter {
                        path: r.to_string(),
                        msg: e.to_string(),
                    })?;
                Ok(a)
            });
        self.metrics.adapter_load(loaded.is_ok());
        let a = Arc::new(loaded?);
        if let Ok(mut m) = self.baselines.write() {
            m.insert(r.clone(), v.meta.baseline.clone());
        }
        if let Ok(mut m) = self.loaded.write() {
            m.insert(r.clone(), a.clone());
        }
        Ok(a)
    }

    /// The evaluation baseline of a loaded version.
    fn baseline(&self, r: &VersionRef) -> Option<OutputBaseline> {
        self.baselines
            .read()
            .ok()
            .and_then(|m| m.get(r).cloned().flatten())
    }

    /// Sets the drift p-value gauges of every deployed version (prod and canary) that has an
    /// evaluation baseline, from its live numbers. Blocking.
    pub fn update_drift_gauges(&self) {
        for (name, r) in self.routes().iter() {
            let versions = [
                r.deployment.prod,
                r.deployment.canary.as_ref().map(|c| c.version),
            ];
            for v in versions.into_iter().flatten() {
                let v = VersionRef::new(name.clone(), v);
                if let Some(b) = self.baseline(&v) {
                    let d = hone_ops::drift::drift(&b, &self.live.snapshot(&v));
                    self.versions.set_drift(&v, &d);
                }
            }
        }
    }

    /// Records what a request answered by `v` did.
    pub fn record(&self, v: &VersionRef, o: &Outcome) {
        self.live.record(v, o);
        self.versions.record(v, o);
    }

    /// Brings the routes up to the store: when its change number moved (or `force`), every
    /// deployment's versions are loaded and the new routes published at once. A version that
    /// fails to load leaves that name's route as it was. Blocking.
    pub fn sync(&self, force: bool) -> Result<()> {
        let mut last = self
            .seq
            .lock()
            .map_err(|_| ServeError::Internal("deployment sync lock poisoned".into()))?;
        let seq = self.store.change_seq().map_err(ops_err)?;
        if !force && *last == Some(seq) {
            return Ok(());
        }
        let deployments = self.store.deployments().map_err(ops_err)?;
        let old = self.routes();
        let mut next = HashMap::new();
        let mut policies = HashMap::new();
        // Rebuilt routes whose gauges are set once they are published (a gauge that shows a
        // version must mean requests can reach it).
        let mut applied = Vec::new();
        for d in deployments {
            match self.store.policy(&d.name) {
                Ok(Some(text)) => match Policy::parse(&text, &format!("{}'s policy", d.name)) {
                    Ok(p) => {
                        policies.insert(d.name.clone(), p);
                    }
                    Err(e) => tracing::warn!("{e}"),
                },
                Ok(None) => {}
                Err(e) => tracing::warn!("{e}"),
            }
            let prev_route = old.get(&d.name);
            if let Some(r) = prev_route.filter(|r| r.deployment.generation == d.generation) {
                next.insert(d.name.clone(), r.clone());
                continue;
            }
            let Some(prod_ref) = d.prod_ref() else {
                continue;
            };
            let built = (|| -> Result<Route> {
                let prod = self.load(&prod_ref)?;
                let canary = d.canary_ref().map(|c| self.load(&c)).transpose()?;
                let previous = d
                    .previous
                    .map(|p| VersionRef::new(d.name.clone(), p))
                    .and_then(|p| match self.load(&p) {
                        Ok(a) => Some(a),
                        Err(e) => {
                            tracing::warn!("{p} (the rollback target) cannot be loaded: {e}");
                            None
                        }
                    });
                Ok(Route {
                    deployment: d.clone(),
                    prod,
                    canary,
                    previous,
                })
            })();
            match built {
                Ok(r) => {
                    let canary_changed = prev_route
                        .map(|o| o.deployment.canary != d.canary)
                        .unwrap_or(true);
                    if canary_changed {
                        // canary and prod are compared over the same window
                        self.live.reset_name(&d.name);
                    }
                    next.insert(d.name.clone(), r);
                    applied.push(d);
                }
                Err(e) => {
                    tracing::error!(
                        "deployment of {} (generation {}) not applied: {e}",
                        d.name,
                        d.generation
                    );
                    if let Some(r) = prev_route {
                        next.insert(d.name.clone(), r.clone());
                    }
                }
            }
        }
        if let Ok(mut p) = self.policies.write() {
            *p = policies;
        }
        if let Ok(mut r) = self.routes.write() {
            *r = Arc::new(next);
        }
        for d in &applied {
            self.versions.set_deployment(d);
        }
        *last = Some(seq);
        Ok(())
    }

    /// Judges every running canary by its name's policy: a breach rolls it back at once, a
    /// pass promotes it when the policy says so. Blocking.
    pub fn judge(&self) {
        let routes = self.routes();
        for (name, r) in routes.iter() {
            let (Some(c), Some(prod)) = (&r.deployment.canary, r.deployment.prod) else {
                continue;
            };
            let Some(policy) = self.policies.read().ok().and_then(|p| p.get(name).cloned()) else {
                continue;
            };
            let mut cs = self
                .live
                .snapshot(&VersionRef::new(name.clone(), c.version));
            if policy.gates.max_critical.is_some() {
                cs.critical_marks = self.critical_marks(&format!("{name}@{}", c.version));
            }
            let ps = self.live.snapshot(&VersionRef::new(name.clone(), prod));
            let verdict = policy.judge(&cs, &ps);
            let note = |msg: String| Note {
                message: msg,
                detail: json!({"verdict": verdict, "canary": cs, "prod": ps}),
            };
            match verdict.decision {
                Decision::Rollback => {
                    let n = note(format!("policy breached: {}", verdict.breaches()));
                    match self.rollback(name, "policy", Some(&n), Some(r.deployment.generation)) {
                        Ok((_, ev, _)) => tracing::warn!("{}", ev.message),
                        Err(e) => tracing::info!("policy rollback of {name}: {e}"),
                    }
                }
                Decision::Promote => {
                    let n = note(format!(
                        "every gate passed over {} canary requests",
                        cs.requests
                    ));
                    match self.store.change(
                        name,
                        &Change::Promote,
                        Some(r.deployment.generation),
                        "policy",
                        Some(&n),
                    ) {
                        Ok((_, ev)) => {
                            tracing::info!("{}", ev.message);
                            if let Err(e) = self.sync(true) {
                                tracing::warn!("{e}");
                            }
                        }
                        Err(e) => tracing::info!("policy promotion of {name}: {e}"),
                    }
                }
                Decision::Wait | Decision::Keep => {}
            }
        }
    }

    /// Answers of `version` marked critical in the review queue (0 when the store cannot say).
    fn critical_marks(&self, version: &str) -> u64 {
        match self
            .store
            .count_marks(version, hone_ops::review::Mark::Critical)
        {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!("critical marks of {version}: {e}");
                0
            }
        }
    }

    /// Rolls `name` back: the local route is swapped first (no weights are loaded: the
    /// previous prod is kept loaded), then the store records it for every replica. Returns the
    /// new deployment, its event and how long the local swap took. Blocking.
    pub fn rollback(
        &self,
        name: &str,
        actor: &str,
        note: Option<&Note>,
        expect_generation: Option<i64>,
    ) -> Result<(Deployment, Event, std::time::Duration)> {
        let t0 = Instant::now();
        {
            let mut routes = self
                .routes
                .write()
                .map_err(|_| ServeError::Internal("routes lock poisoned".into()))?;
            let mut m = (**routes).clone();
            if let Some(r) = m.get_mut(name) {
                if r.deployment.canary.is_some() {
                    r.deployment.canary = None;
                    r.canary = None;
                } else if let (Some(prev), Some(p)) = (r.previous.take(), r.deployment.previous) {
                    r.prod = prev;
                    r.deployment.prod = Some(p);
                    r.deployment.previous = None;
                }
                *routes = Arc::new(m);
            }
        }
        let swapped = t0.elapsed();
        let res = self
            .store
            .change(name, &Change::Rollback, expect_generation, actor, note);
        match res {
            Ok((d, ev)) => {
                self.versions.rollback(name, actor);
                // A sync that was rebuilding the routes from the store as it stood before the
                // rollback may publish them after the swap above; syncing again from the store
                // as it stands now settles it (nothing is loaded: every version is loaded).
                if let Err(e) = self.sync(true) {
                    tracing::warn!("{e}");
                }
                Ok((d, ev, swapped))
            }
            Err(e) => {
                // Not recorded (someone changed it first, or the store is down): back to
                // whatever the store says.
                if let Err(e) = self.sync(true) {
                    tracing::warn!("{e}");
                }
                Err(ops_err(e))
            }
        }
    }

    /// Deploys a version (prod, or a canary with `canary` percent): its files are checked and
    /// it is loaded first, so a corrupt version is refused with prod untouched. Blocking.
    pub fn deploy(
        &self,
        r: &VersionRef,
        canary: Option<f64>,
        actor: &str,
    ) -> Result<(Deployment, Event)> {
        // The files are checked even when the version is loaded already: what is deployed is
        // what the registry recorded, now.
        let v = self
            .store
            .version(r)
            .map_err(ops_err)?
            .ok_or_else(|| ServeError::NotFound(format!("{r} is not in the registry")))?;
        registry::checked_dir(self.store.as_ref(), &v).map_err(ops_err)?;
        self.load(r)?;
        let change = match canary {
            Some(percent) => Change::Canary {
                version: r.version,
                percent,
            },
            None => Change::Prod(r.version),
        };
        let out = self
            .store
            .change(&r.name, &change, None, actor, None)
            .map_err(ops_err)?;
        self.sync(true)?;
        Ok(out)
    }

    /// Promotes `name`'s canary. Blocking.
    pub fn promote(&self, name: &str, actor: &str) -> Result<(Deployment, Event)> {
        let out = self
            .store
            .change(name, &Change::Promote, None, actor, None)
            .map_err(ops_err)?;
        self.sync(true)?;
        Ok(out)
    }

    /// `hone deploy status NAME` with this server's live numbers. Blocking.
    pub fn status(&self, name: &str) -> Result<DeployStatus> {
        let deployment = self.store.deployment(name).map_err(ops_err)?;
        let policy_text = self.store.policy(name).map_err(ops_err)?;
        let live = |v: Option<VersionRef>| -> Result<Option<VersionLive>> {
            let Some(v) = v else { return Ok(None) };
            let baseline = match self.store.version(&v).map_err(ops_err)? {
                Some(rec) => rec.meta.baseline,
                None => None,
            };
            Ok(Some(VersionLive {
                snapshot: self.live.snapshot(&v),
                version: v,
                baseline,
            }))
        };
        let prod = live(deployment.as_ref().and_then(Deployment::prod_ref))?;
        let mut canary = live(deployment.as_ref().and_then(Deployment::canary_ref))?;
        if let Some(c) = &mut canary {
            c.snapshot.critical_marks = self.critical_marks(&c.version.to_string());
        }
        let verdict = match (&policy_text, &prod, &canary) {
            (Some(t), Some(p), Some(c)) => Policy::parse(t, "policy")
                .ok()
                .map(|pol| pol.judge(&c.snapshot, &p.snapshot)),
            _ => None,
        };
        Ok(DeployStatus {
            name: name.to_string(),
            deployment,
            policy: policy_text,
            prod,
            canary,
            verdict,
        })
    }
}
