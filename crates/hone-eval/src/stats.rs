//! Latency percentiles, throughput, cost per 1,000 queries and the break-even volume between a
//! fine-tuned local model and a paid endpoint.

use serde::{Deserialize, Serialize};

/// Percentile by linear interpolation between closest ranks (NumPy's default), `q` in 0..=100.
/// `None` for an empty sample.
pub fn percentile(values: &[f64], q: f64) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let pos = (q.clamp(0.0, 100.0) / 100.0) * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    Some(v[lo] + (v[hi] - v[lo]) * (pos - lo as f64))
}

/// Latency and throughput of one candidate.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct LatencyStats {
    pub queries: usize,
    pub p50_s: f64,
    pub p95_s: f64,
    pub p99_s: f64,
    pub mean_s: f64,
    /// Queries per second, one at a time (the inverse of the mean latency).
    pub throughput_qps: f64,
}

impl LatencyStats {
    pub fn from_latencies(lat: &[f64]) -> Option<Self> {
        let finite: Vec<f64> = lat.iter().copied().filter(|x| x.is_finite()).collect();
        if finite.is_empty() {
            return None;
        }
        let mean = finite.iter().sum::<f64>() / finite.len() as f64;
        Some(Self {
            queries: finite.len(),
            p50_s: percentile(&finite, 50.0)?,
            p95_s: percentile(&finite, 95.0)?,
            p99_s: percentile(&finite, 99.0)?,
            mean_s: mean,
            throughput_qps: if mean > 0.0 {
                1.0 / mean
            } else {
                f64::INFINITY
            },
        })
    }
}

/// Cost of 1,000 queries on a machine billed by the hour, at the measured mean latency
/// (queries run one after another).
pub fn local_cost_per_1k(mean_latency_s: f64, machine_usd_per_hour: f64) -> f64 {
    1000.0 * mean_latency_s * machine_usd_per_hour / 3600.0
}

/// Break-even volume: how many queries until a one-off fixed cost (training) is paid back by
/// the per-query saving of the local model over the endpoint. `None` when the local model
/// saves nothing per query.
pub fn break_even_queries(
    fixed_cost_usd: f64,
    local_per_query_usd: f64,
    endpoint_per_query_usd: f64,
) -> Option<f64> {
    let saving = endpoint_per_query_usd - local_per_query_usd;
    (saving > 0.0).then(|| (fixed_cost_usd.max(0.0) / saving).ceil())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_like_numpy() {
        let v = [4.0, 1.0, 3.0, 2.0, 5.0];
        assert_eq!(percentile(&v, 50.0), Some(3.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&v, 100.0), Some(5.0));
        // numpy.percentile([1,2,3,4,5], 95) = 4.8
        assert!((percentile(&v, 95.0).unwrap() - 4.8).abs() < 1e-12);
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
    }

    #[test]
    fn cost_and_break_even() {
        // 0.36 s per query at $1/h: 1000 * 0.36 / 3600 = $0.10 per 1,000.
        assert!((local_cost_per_1k(0.36, 1.0) - 0.1).abs() < 1e-12);
        // $3 of training, $0.0001 vs $0.0031 per query: 3 / 0.003 = 1000 queries.
        assert_eq!(break_even_queries(3.0, 0.0001, 0.0031), Some(1000.0));
        assert_eq!(break_even_queries(3.0, 0.01, 0.001), None);
        let s = LatencyStats::from_latencies(&[0.5, 1.5]).unwrap();
        assert_eq!(s.mean_s, 1.0);
        assert_eq!(s.throughput_qps, 1.0);
        assert!(LatencyStats::from_latencies(&[]).is_none());
    }
}
