//! Record a known set of events, render `/metrics` text, parse it back with a Prometheus text
//! parser, and check every series against what was recorded.

use hone_serve::metrics::Metrics;
use prometheus_parse::{Scrape, Value};

fn scrape(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("valid exposition text")
}

fn find<'a>(s: &'a Scrape, name: &str, labels: &[(&str, &str)]) -> &'a prometheus_parse::Sample {
    s.samples
        .iter()
        .find(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
}

fn counter(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    match find(s, name, labels).value {
        Value::Counter(v) => v,
        ref other => panic!("{name} is not a counter: {other:?}"),
    }
}

fn gauge(s: &Scrape, name: &str) -> f64 {
    match find(s, name, &[]).value {
        Value::Gauge(v) => v,
        ref other => panic!("{name} is not a gauge: {other:?}"),
    }
}

/// `_sum` and `_count` of a histogram parse as untyped samples.
fn untyped(s: &Scrape, name: &str) -> f64 {
    match find(s, name, &[]).value {
        Value::Untyped(v) => v,
        ref other => panic!("{name}: unexpected {other:?}"),
    }
}

fn buckets(s: &Scrape, name: &str) -> Vec<(f64, f64)> {
    match &find(s, name, &[]).value {
        Value::Histogram(b) => b.iter().map(|h| (h.less_than, h.count)).collect(),
        other => panic!("{name} is not a histogram: {other:?}"),
    }
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() < 1e-9
}

#[test]
fn rendered_metrics_match_recorded_events() {
    let m = Metrics::new();
    for _ in 0..3 {
        m.request_done("chat_completions", 200);
    }
    m.request_done("chat_completions", 400);
    m.request_done("models", 200);
    m.request_done("health", 200);
    m.request_done("health", 200);

    m.observe_ttft(0.05);
    m.observe_ttft(0.2);
    m.observe_ttft(3.0);
    for secs in [0.002, 0.012, 0.012, 0.5] {
        m.observe_inter_token(secs);
    }
    m.observe_e2e(1.5);
    m.observe_e2e(12.0);

    m.add_prompt_tokens(100);
    m.add_prompt_tokens(23);
    m.add_output_tokens(40);
    m.add_output_tokens(2);

    m.set_queue_depth(5);
    m.set_running(3);
    m.set_kv_blocks(70, 186);
    m.preempted();
    m.preempted();
    m.adapter_load(true);
    m.adapter_load(true);
    m.adapter_load(false);
    m.set_adapters_loaded(2);

    let text = m.render();
    let s = scrape(&text);

    assert_eq!(
        counter(
            &s,
            "hone_requests_total",
            &[("endpoint", "chat_completions"), ("status", "200")]
        ),
        3.0
    );
    assert_eq!(
        counter(
            &s,
            "hone_requests_total",
            &[("endpoint", "chat_completions"), ("status", "400")]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &s,
            "hone_requests_total",
            &[("endpoint", "models"), ("status", "200")]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &s,
            "hone_requests_total",
            &[("endpoint", "health"), ("status", "200")]
        ),
        2.0
    );
    assert_eq!(counter(&s, "hone_prompt_tokens_total", &[]), 123.0);
    assert_eq!(counter(&s, "hone_generation_tokens_total", &[]), 42.0);
    assert_eq!(counter(&s, "hone_preemptions_total", &[]), 2.0);
    assert_eq!(
        counter(&s, "hone_adapter_loads_total", &[("result", "ok")]),
        2.0
    );
    assert_eq!(
        counter(&s, "hone_adapter_loads_total", &[("result", "error")]),
        1.0
    );

    assert_eq!(gauge(&s, "hone_queue_depth"), 5.0);
    assert_eq!(gauge(&s, "hone_running_sequences"), 3.0);
    assert_eq!(gauge(&s, "hone_kv_blocks_used"), 70.0);
    assert_eq!(gauge(&s, "hone_kv_blocks_free"), 186.0);
    assert_eq!(gauge(&s, "hone_adapters_loaded"), 2.0);
    let tps = gauge(&s, "hone_output_tokens_per_second");
    assert!(
        tps > 0.0 && tps <= 420.0 + 1e-9,
        "42 tokens just now: {tps}"
    );

    assert_eq!(untyped(&s, "hone_time_to_first_token_seconds_count"), 3.0);
    assert!(close(
        untyped(&s, "hone_time_to_first_token_seconds_sum"),
        3.25
    ));
    assert_eq!(untyped(&s, "hone_inter_token_latency_seconds_count"), 4.0);
    assert!(close(
        untyped(&s, "hone_inter_token_latency_seconds_sum"),
        0.526
    ));
    assert_eq!(untyped(&s, "hone_e2e_request_latency_seconds_count"), 2.0);
    assert!(close(
        untyped(&s, "hone_e2e_request_latency_seconds_sum"),
        13.5
    ));

    // Buckets are cumulative and end at +Inf with the count.
    let ttft = buckets(&s, "hone_time_to_first_token_seconds");
    let at = |b: &[(f64, f64)], le: f64| b.iter().find(|(l, _)| close(*l, le)).unwrap().1;
    assert_eq!(at(&ttft, 0.005), 0.0);
    assert_eq!(at(&ttft, 0.06), 1.0);
    assert_eq!(at(&ttft, 0.25), 2.0);
    assert_eq!(at(&ttft, 5.0), 3.0);
    assert_eq!(at(&ttft, f64::INFINITY), 3.0);
    let itl = buckets(&s, "hone_inter_token_latency_seconds");
    assert_eq!(at(&itl, 0.001), 0.0);
    assert_eq!(at(&itl, 0.0025), 1.0);
    assert_eq!(at(&itl, 0.015), 3.0);
    assert_eq!(at(&itl, 2.0), 4.0);
    let e2e = buckets(&s, "hone_e2e_request_latency_seconds");
    assert_eq!(at(&e2e, 10.0), 1.0);
    assert_eq!(at(&e2e, 20.0), 2.0);

    // Bucket ranges asked for: latency 5 ms .. 60 s, inter-token 1 ms .. 2 s.
    let les = |b: &[(f64, f64)]| {
        b.iter()
            .map(|x| x.0)
            .filter(|x| x.is_finite())
            .collect::<Vec<_>>()
    };
    let l = les(&ttft);
    assert!(
        close(l[0], 0.005) && close(*l.last().unwrap(), 60.0),
        "{l:?}"
    );
    let l = les(&itl);
    assert!(
        close(l[0], 0.001) && close(*l.last().unwrap(), 2.0),
        "{l:?}"
    );

    // Every metric has HELP text and the hone_ prefix.
    for name in [
        "hone_requests_total",
        "hone_prompt_tokens_total",
        "hone_generation_tokens_total",
        "hone_preemptions_total",
        "hone_adapter_loads_total",
        "hone_queue_depth",
        "hone_running_sequences",
        "hone_kv_blocks_used",
        "hone_kv_blocks_free",
        "hone_adapters_loaded",
        "hone_output_tokens_per_second",
        "hone_time_to_first_token_seconds",
        "hone_inter_token_latency_seconds",
        "hone_e2e_request_latency_seconds",
    ] {
        assert!(
            s.docs.get(name).is_some_and(|d| !d.is_empty()),
            "no HELP for {name}"
        );
    }
    assert!(
        s.docs.keys().all(|k| k.starts_with("hone_")),
        "{:?}",
        s.docs.keys()
    );
    for line in text.lines().filter(|l| l.starts_with("# TYPE")) {
        let kind = line.split_whitespace().nth(3).unwrap();
        assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
    }
}

#[test]
fn fresh_metrics_render_zeroes() {
    let m = Metrics::new();
    let s = scrape(&m.render());
    assert_eq!(counter(&s, "hone_prompt_tokens_total", &[]), 0.0);
    assert_eq!(
        counter(&s, "hone_adapter_loads_total", &[("result", "ok")]),
        0.0
    );
    assert_eq!(gauge(&s, "hone_queue_depth"), 0.0);
    assert_eq!(gauge(&s, "hone_output_tokens_per_second"), 0.0);
    assert_eq!(untyped(&s, "hone_e2e_request_latency_seconds_count"), 0.0);
    // No request has finished yet, so there is no requests series at all.
    assert!(!s.samples.iter().any(|x| x.metric == "hone_requests_total"));
}

#[test]
fn gauges_follow_the_latest_value() {
    let m = Metrics::new();
    m.set_queue_depth(9);
    m.set_queue_depth(0);
    m.set_kv_blocks(1, 2);
    m.set_kv_blocks(3, 0);
    let s = scrape(&m.render());
    assert_eq!(gauge(&s, "hone_queue_depth"), 0.0);
    assert_eq!(gauge(&s, "hone_kv_blocks_used"), 3.0);
    assert_eq!(gauge(&s, "hone_kv_blocks_free"), 0.0);
}

#[test]
fn concurrent_updates_from_many_threads_all_count() {
    let m = Metrics::new();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let m = m.clone();
            scope.spawn(move || {
                for _ in 0..250 {
                    m.request_done("completions", 200);
                    m.add_output_tokens(1);
                    m.observe_inter_token(0.01);
                }
            });
        }
    });
    let s = scrape(&m.render());
    assert_eq!(
        counter(
            &s,
            "hone_requests_total",
            &[("endpoint", "completions"), ("status", "200")]
        ),
        1000.0
    );
    assert_eq!(counter(&s, "hone_generation_tokens_total", &[]), 1000.0);
    assert_eq!(
        untyped(&s, "hone_inter_token_latency_seconds_count"),
        1000.0
    );
}
