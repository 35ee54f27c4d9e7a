//! `hone eval` end to end: a local SmolLM2 candidate and an OpenAI-compatible endpoint
//! candidate (a stub server on 127.0.0.1, real HTTP) on a small classification file; metrics
//! against hand-computed values, every report file, the cache making a rerun free, bad inputs,
//! and the HTML report rendered in headless Chromium (screenshot kept as a test artifact).

#[path = "common/browser.rs"]
mod browser;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use hone_eval::config::EvalConfig;
use hone_eval::runner;
use hone_eval::task::TaskReport;
use serde_json::{json, Value};

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// A "frontier model": answers `positive` when the review says "great", `negative` when it
/// says "awful", and rambles (unparseable) otherwise. Counts requests.
async fn answer(State(n): State<Arc<AtomicUsize>>, Json(body): Json<Value>) -> Json<Value> {
    n.fetch_add(1, Ordering::SeqCst);
    let user = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_string();
    let text = if user.contains("great") {
        "{\"label\": \"positive\"}"
    } else if user.contains("awful") {
        "negative"
    } else {
        "I am not sure what you mean."
    };
    Json(json!({
        "id": "x", "object": "chat.completion", "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}
    }))
}

fn stub() -> (String, Arc<AtomicUsize>) {
    let n = Arc::new(AtomicUsize::new(0));
    let app = Router::new()
        .route("/v1/chat/completions", post(answer))
        .with_state(n.clone());
    let listener = runtime()
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    runtime().spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/v1"), n)
}

const EXAMPLES: [(&str, &str); 4] = [
    ("The food was great.", "positive"),
    ("An awful evening.", "negative"),
    ("Great service, great wine.", "positive"),
    ("It was fine, I suppose.", "negative"),
];

fn write_eval(
    dir: &std::path::Path,
    url: &str,
    gguf: Option<&std::path::Path>,
) -> std::path::PathBuf {
    let mut data = String::new();
    for (i, (review, label)) in EXAMPLES.iter().enumerate() {
        data.push_str(
            &json!({"id": format!("r{i}"), "instruction": "Is this review positive or negative?",
                    "input": review, "output": label})
            .to_string(),
        );
        data.push('\n');
    }
    std::fs::write(dir.join("test.jsonl"), data).unwrap();
    let local = gguf
        .map(|g| {
            format!(
                "[[candidate]]\nname = \"base\"\nkind = \"local\"\nmodel = \"{}\"\n\n",
                g.display()
            )
        })
        .unwrap_or_default();
    let cfg = format!(
        "[task]\ntype = \"classification\"\nlabels = [\"positive\", \"negative\"]\n\
         system = \"Answer with one word: positive or negative.\"\n\
         [data]\neval = \"test.jsonl\"\n[generation]\nmax_tokens = 6\n\
         [regression]\nenabled = true\nlimit = 3\n\
         {local}\
         [[candidate]]\nname = \"frontier\"\nkind = \"endpoint\"\nurl = \"{url}\"\nmodel = \"gpt-stub\"\n\
         price_input_per_mtok = 2.5\nprice_output_per_mtok = 10.0\nmax_retries = 1\nbackoff_initial_ms = 10\n\
         [cost]\nmachine_usd_per_hour = 0.36\n[output]\ndir = \"out\"\n"
    );
    let p = dir.join("eval.toml");
    std::fs::write(&p, cfg).unwrap();
    p
}

/// The output tokens of a rerun's answers (all from the cache).
fn rec_tokens_after_rerun(cfg: &EvalConfig) -> Vec<Option<u64>> {
    runner::run(cfg, None, &mut |_| {})
        .unwrap()
        .outputs
        .iter()
        .map(|o| {
            assert!(o.cached);
            o.output_tokens
        })
        .collect()
}

#[test]
fn endpoint_and_local_candidates_reports_and_cache() {
    let dir = tempfile::tempdir().unwrap();
    let (url, requests) = stub();
    let gguf = hone_model::fetch::known_model("smollm2")
        .map(|m| m.cached_path())
        .filter(|p| p.is_file());
    if gguf.is_none() {
        eprintln!("note: SmolLM2 not cached, running the endpoint candidate only");
    }
    let cfg = EvalConfig::load(&write_eval(dir.path(), &url, gguf.as_deref())).unwrap();
    let report = runner::run(&cfg, None, &mut |_| {}).unwrap();
    assert_eq!(report.examples, 4);
    let frontier = report
        .candidates
        .iter()
        .find(|c| c.name == "frontier")
        .unwrap();
    // Gold: pos, neg, pos, neg. Stub: pos, neg, pos, (rambling → unparseable).
    // Accuracy 3/4. positive: tp 2, fp 0, fn 0 → F1 1. negative: tp 1, fp 0, fn 1 (the
    // unparseable answer) → P 1, R 0.5, F1 2/3. Macro F1 (1 + 2/3)/2 = 5/6.
    let TaskReport::Classification(m) = &frontier.metrics else {
        panic!("classification report expected")
    };
    assert_eq!(m.accuracy, 0.75);
    assert_eq!(m.unparseable, 1);
    assert!((m.macro_.f1.unwrap() - 5.0 / 6.0).abs() < 1e-12);
    assert_eq!(m.confusion.matrix, vec![vec![2, 0], vec![0, 1]]);
    assert_eq!(m.confusion.unparseable, vec![0, 1]);
    // Cost: 100 prompt tokens at $2.5/M + 10 completion tokens at $10/M = $0.00035 per query,
    // $0.35 per 1,000.
    assert!((frontier.cost_per_1k_usd.unwrap() - 0.35).abs() < 1e-9);
    assert_eq!(frontier.failures, 0);
    assert!(frontier.latency.as_ref().unwrap().p50_s > 0.0);
    assert_eq!(requests.load(Ordering::SeqCst), 4);

    let n_candidates = if gguf.is_some() { 2 } else { 1 };
    assert_eq!(report.candidates.len(), n_candidates);
    if gguf.is_some() {
        let base = &report.candidates[0];
        assert_eq!(base.kind, "local");
        let l = base.latency.as_ref().unwrap();
        assert!(l.p50_s > 0.0 && l.p95_s >= l.p50_s && l.p99_s >= l.p95_s);
        // $0.36/h = $0.0001/s: cost per 1,000 = mean seconds × 0.1.
        assert!((base.cost_per_1k_usd.unwrap() - l.mean_s * 0.1).abs() < 1e-9);
        let reg = base.regression.as_ref().unwrap();
        assert_eq!(reg.questions, 3);
        // SmolLM2 knows the capital of France (the first shipped question).
        assert!(!reg.wrong.contains(&"gk-01".to_string()), "{reg:?}");
    }

    let w = hone_eval::report::write_all(&report, &cfg.output.dir).unwrap();
    let outputs = std::fs::read_to_string(&w.outputs).unwrap();
    assert_eq!(outputs.lines().count(), 4 * n_candidates);
    let rec: Value = serde_json::from_str(outputs.lines().last().unwrap()).unwrap();
    assert_eq!(rec["candidate"], "frontier");
    assert_eq!(rec["parsed_ok"], false);
    // every answer's output tokens: the stub's usage (10), the local model's count (at most
    // max_tokens = 6), kept through the cache
    for (r, again) in report.outputs.iter().zip(&rec_tokens_after_rerun(&cfg)) {
        let n = r.output_tokens.expect("output tokens known");
        if r.candidate == "frontier" {
            assert_eq!(n, 10);
        } else {
            assert!((1..=6).contains(&n), "{r:?}");
        }
        assert_eq!(Some(n), *again, "{r:?}");
    }
    assert_eq!(rec["output_tokens"], 10);
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&w.json).unwrap()).unwrap();
    assert_eq!(
        json["candidates"][n_candidates - 1]["metrics"]["accuracy"],
        0.75
    );
    let md = std::fs::read_to_string(&w.markdown).unwrap();
    assert!(md.contains("| frontier | 0.750 |"), "{md}");
    let html = std::fs::read_to_string(&w.html).unwrap();
    assert!(html.contains("<svg") && html.contains("Confusion matrix: frontier"));
    assert!(!html.contains("<script"), "the report needs no scripts");

    // A rerun costs nothing: every answer from the cache, the same numbers.
    let again = runner::run(&cfg, None, &mut |_| {}).unwrap();
    assert_eq!(requests.load(Ordering::SeqCst), 4);
    for (a, b) in again.candidates.iter().zip(&report.candidates) {
        assert_eq!(a.cached, 4);
        assert_eq!(a.metrics, b.metrics);
    }
    // Each local answer's mean token log-probability (the router's confidence, at most 0) is
    // recorded and kept through the cache; an endpoint's answers have none.
    for (a, b) in again.outputs.iter().zip(&report.outputs) {
        assert_eq!(a.mean_logprob, b.mean_logprob, "{a:?}");
        if a.candidate == "frontier" {
            assert_eq!(a.mean_logprob, None);
        } else {
            assert!(
                a.mean_logprob.is_some_and(|lp| lp.is_finite() && lp <= 0.0),
                "{a:?}"
            );
        }
    }

    if browser::skip_if_unavailable() {
        return;
    }
    let png = browser::artifacts_dir().join("eval_report.png");
    let (w_px, h_px) = browser::screenshot(&w.html, &png).unwrap();
    let bytes = std::fs::read(&png).unwrap();
    browser::check_png(&bytes, 20_000).unwrap();
    assert!(w_px >= 1000 && h_px >= 600, "{w_px}x{h_px}");
}

#[test]
fn endpoint_failures_are_counted_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    // Nothing listens on this port: every request fails after its retries.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    drop(listener);
    let cfg = EvalConfig::load(&write_eval(dir.path(), &url, None)).unwrap();
    let report = runner::run(&cfg, None, &mut |_| {}).unwrap();
    let c = &report.candidates[0];
    assert_eq!(c.failures, 4);
    let TaskReport::Classification(m) = &c.metrics else {
        panic!()
    };
    assert_eq!((m.accuracy, m.unparseable), (0.0, 4));
}

#[test]
fn bad_configs_and_files_name_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("eval.toml");
    let check = |text: &str, want: &str| {
        std::fs::write(&p, text).unwrap();
        let e = EvalConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("eval.toml") && e.contains(want), "{e}");
    };
    check("[task]\ntype = \"classification\"\n", "data");
    check(
        "[task]\ntype = \"classification\"\nlabels=[\"a\"]\n[data]\neval=\"x.jsonl\"\n[output]\ndir=\"o\"\n",
        "candidate",
    );
    check(
        "[task]\ntype = \"classification\"\n[data]\neval=\"x.jsonl\"\n[[candidate]]\nname=\"b\"\nkind=\"local\"\n[output]\ndir=\"o\"\n",
        "task.labels",
    );
    check(
        "[task]\ntype = \"sentiment\"\n[data]\neval=\"x.jsonl\"\n[[candidate]]\nname=\"b\"\nkind=\"local\"\n[output]\ndir=\"o\"\n",
        "sentiment",
    );
    check(
        "[task]\ntype = \"generation\"\n[data]\neval=\"x.jsonl\"\n[[candidate]]\nname=\"b\"\nkind=\"local\"\nfewshot=2\n[output]\ndir=\"o\"\n",
        "fewshot_pool",
    );
    // A missing evaluation file, and a bad line in one, are named.
    std::fs::write(
        &p,
        "[task]\ntype = \"generation\"\n[data]\neval=\"missing.jsonl\"\n[[candidate]]\nname=\"b\"\nkind=\"endpoint\"\nurl=\"http://127.0.0.1:9/v1\"\nmodel=\"m\"\n[output]\ndir=\"o\"\n",
    )
    .unwrap();
    let cfg = EvalConfig::load(&p).unwrap();
    let e = runner::run(&cfg, None, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.jsonl"), "{e}");
    std::fs::write(
        dir.path().join("missing.jsonl"),
        "{\"instruction\": \"q\", \"output\": \"a\"}\n{oops\n",
    )
    .unwrap();
    let e = runner::run(&cfg, None, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.jsonl:2"), "{e}");
}
