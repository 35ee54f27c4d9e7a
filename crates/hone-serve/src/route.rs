//! Confidence routing: requests for one model name are answered by the local model, and when
//! the mean token log-probability of its answer is under a threshold, by a larger model behind
//! an OpenAI-compatible endpoint (`fallback`) instead. A fallback that fails leaves the local
//! answer standing (with a warning header), never a failed request.
//!
//! This module holds the rule, the configuration and the metrics; the request path is in
//! `server.rs`. Metrics (registered in the server's registry):
//!
//! | name | type | labels |
//! |---|---|---|
//! | `hone_route_requests_total` | counter | `model`, `target` (`local`, `fallback`, `fallback_failed`) |
//! | `hone_route_latency_seconds` | histogram | `model`, `target` |
//! | `hone_route_cost_usd_total` | counter | `model`, `target` |

use std::sync::Arc;

use prometheus::{CounterVec, HistogramOpts, HistogramVec, IntCounterVec, Opts};

use crate::fallback::{Fallback, FallbackConfig};
use crate::metrics::{Metrics, LATENCY_BUCKETS};

/// What the machine running the local model costs per hour when none is given
/// (`--machine-usd-per-hour`).
pub const DEFAULT_MACHINE_USD_PER_HOUR: f64 = 0.10;

/// The routing settings (`hone serve --route NAME --fallback URL --threshold T ...`).
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// The model name whose requests are routed (the base's served name or an adapter's).
    pub model: String,
    /// A local answer whose mean token log-probability is under this goes to the fallback.
    pub threshold: f64,
    pub fallback: FallbackConfig,
    /// The local machine's price, for the local share of `hone_route_cost_usd_total`.
    pub machine_usd_per_hour: f64,
}

/// Who answered a routed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The local model was confident enough.
    Local,
    /// The fallback answered.
    Fallback,
    /// The fallback was asked and failed: the local answer was returned.
    FallbackFailed,
}

impl Target {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Local => "local",
            Target::Fallback => "fallback",
            Target::FallbackFailed => "fallback_failed",
        }
    }

    /// The `x-hone-route` header: who answered.
    pub fn header(self) -> &'static str {
        match self {
            Target::Fallback => "fallback",
            Target::Local | Target::FallbackFailed => "local",
        }
    }
}

/// The rule: the fallback is asked when the answer's mean token log-probability is below the
/// threshold. An answer without one (no token sampled) stays local.
pub fn goes_to_fallback(mean_logprob: Option<f64>, threshold: f64) -> bool {
    mean_logprob.is_some_and(|lp| lp < threshold)
}

/// `s` as a header value: printable ASCII only (others become `?`), at most 300 characters.
pub fn header_text(s: &str) -> String {
    s.chars()
        .take(300)
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// The routing of a server: the configuration, the fallback client and the metrics.
pub struct Routing {
    pub config: RouteConfig,
    pub fallback: Arc<Fallback>,
    requests: IntCounterVec,
    latency: HistogramVec,
    cost: CounterVec,
}

impl std::fmt::Debug for Routing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routing")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Routing {
    /// The fallback client and the route metrics, registered in `metrics`' registry (every
    /// series of the routed model shown from the start, at 0).
    pub fn new(config: RouteConfig, metrics: &Metrics) -> Self {
        const OK: &str = "static metric definition is valid";
        let requests = IntCounterVec::new(
            Opts::new(
                "hone_route_requests_total",
                "Routed requests by who answered: local, fallback, or fallback_failed (the fallback was asked and failed; the local answer was returned).",
            ),
            &["model", "target"],
        )
        .expect(OK);
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "hone_route_latency_seconds",
                "Time from a routed request's arrival to its answer, by who answered, in seconds.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["model", "target"],
        )
        .expect(OK);
        let cost = CounterVec::new(
            Opts::new(
                "hone_route_cost_usd_total",
                "What routed requests cost in USD by who answered: the local machine's time (--machine-usd-per-hour), plus the fallback's tokens at its prices.",
            ),
            &["model", "target"],
        )
        .expect(OK);
        let reg = metrics.registry();
        reg.register(Box::new(requests.clone())).expect(OK);
        reg.register(Box::new(latency.clone())).expect(OK);
        reg.register(Box::new(cost.clone())).expect(OK);
        for t in [Target::Local, Target::Fallback, Target::FallbackFailed] {
            let labels = [config.model.as_str(), t.as_str()];
            requests.with_label_values(&labels);
            latency.with_label_values(&labels);
            cost.with_label_values(&labels);
        }
        Self {
            fallback: Arc::new(Fallback::new(config.fallback.clone())),
            config,
            requests,
            latency,
            cost,
        }
    }

    /// Whether requests for `model` are routed.
    pub fn routes(&self, model: &str) -> bool {
        model == self.config.model
    }

    /// The local machine's cost of `secs` seconds.
    pub fn machine_cost(&self, secs: f64) -> f64 {
        (secs.max(0.0) * self.config.machine_usd_per_hour / 3600.0).max(0.0)
    }

    /// One routed request answered by `target` after `secs`, costing `usd`.
    pub fn record(&self, target: Target, secs: f64, usd: f64) {
        let labels = [self.config.model.as_str(), target.as_str()];
        self.requests.with_label_values(&labels).inc();
        if secs.is_finite() {
            self.latency
                .with_label_values(&labels)
                .observe(secs.max(0.0));
        }
        if usd.is_finite() && usd > 0.0 {
            self.cost.with_label_values(&labels).inc_by(usd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_is_strictly_below_the_threshold() {
        assert!(goes_to_fallback(Some(-2.0), -1.0));
        assert!(!goes_to_fallback(Some(-1.0), -1.0));
        assert!(!goes_to_fallback(Some(-0.5), -1.0));
        assert!(goes_to_fallback(Some(-1e-9), 0.0));
        assert!(!goes_to_fallback(Some(-50.0), -1e9));
        assert!(!goes_to_fallback(None, 0.0));
    }

    #[test]
    fn header_text_is_printable_ascii() {
        assert_eq!(
            header_text("fallback failed: é\r\nx"),
            "fallback failed: ???x"
        );
        assert_eq!(header_text(&"a".repeat(500)).len(), 300);
    }

    #[test]
    fn metrics_count_requests_latency_and_cost_per_target() {
        let m = Metrics::new();
        let r = Routing::new(
            RouteConfig {
                model: "nda".into(),
                threshold: -1.0,
                fallback: FallbackConfig::new("http://127.0.0.1:1/v1"),
                machine_usd_per_hour: 3.6,
            },
            &m,
        );
        assert!(r.routes("nda") && !r.routes("base"));
        // 3.6 USD an hour is 0.001 USD a second
        assert!((r.machine_cost(2.0) - 0.002).abs() < 1e-12);
        r.record(Target::Local, 2.0, r.machine_cost(2.0));
        r.record(Target::Fallback, 1.0, 0.5);
        let text = m.render();
        for line in [
            "hone_route_requests_total{model=\"nda\",target=\"local\"} 1",
            "hone_route_requests_total{model=\"nda\",target=\"fallback\"} 1",
            "hone_route_requests_total{model=\"nda\",target=\"fallback_failed\"} 0",
            "hone_route_cost_usd_total{model=\"nda\",target=\"fallback\"} 0.5",
            "hone_route_cost_usd_total{model=\"nda\",target=\"local\"} 0.002",
            "hone_route_latency_seconds_sum{model=\"nda\",target=\"local\"} 2",
            "hone_route_latency_seconds_count{model=\"nda\",target=\"fallback\"} 1",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
    }
}
