//! `POST /v1/review` on `hone serve` with the real model and the built-in NDA review adapter,
//! through the binary and a real HTTP client: a request that names no adapter gets the
//! built-in one, text and PDF give what `hone review --format json` gives for the same file,
//! eight concurrent reviews are all answered, and without the built-in adapter a request must
//! name one.

mod serve_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};
use serve_support::{model_cached, Server};

const CLAUSES: [&str; 5] = [
    "MUTUAL NON-DISCLOSURE AGREEMENT",
    "1. Confidential Information includes information disclosed in writing or orally.",
    "2. The Recipient shall not reverse engineer any prototypes or samples.",
    "3. On request the Recipient shall return or destroy all Confidential Information.",
    "4. These obligations survive termination of this Agreement for three years.",
];

fn post(base: &str, body: &Value) -> (u16, Value) {
    let r = ureq::post(&format!("{base}/v1/review"))
        .timeout(Duration::from_secs(300))
        .send_json(body.clone());
    let r = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    (r.status(), r.into_json().expect("a JSON body"))
}

/// `v` without its timings (milliseconds differ between any two runs).
fn untimed(mut v: Value) -> Value {
    v.as_object_mut().expect("an object").remove("timing");
    v
}

/// What `hone review NAME --format json` prints for `file`, run in its folder (so that its
/// `source` is the file name, as the request's `name` gives it), untimed.
fn cli_review(file: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_hone"))
        .current_dir(file.parent().unwrap())
        .args([
            "review",
            file.file_name().unwrap().to_str().unwrap(),
            "--format",
            "json",
        ])
        .env("HONE_THREADS", "2")
        .output()
        .expect("hone review runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    untimed(serde_json::from_slice(&out.stdout).expect("JSON"))
}

#[test]
fn the_built_in_adapter_reviews_text_and_pdf_over_http_as_the_cli_does() {
    if !model_cached() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let text = CLAUSES.join("\n") + "\n";
    let txt = dir.path().join("acme-nda.txt");
    std::fs::write(&txt, &text).unwrap();
    let pdf_bytes = hone_review::pdf_fixture::text_pdf(&CLAUSES);
    let pdf = dir.path().join("acme-nda.pdf");
    std::fs::write(&pdf, &pdf_bytes).unwrap();

    let srv = Server::start(&[]);
    assert!(srv.stderr().contains("(1 adapter)"), "{}", srv.stderr());
    let models: Value = ureq::get(&format!("{}/v1/models", srv.base))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert!(ids.contains(&"nda-review"), "{ids:?}");

    let (code, got) = post(&srv.base, &json!({"text": text, "name": "acme-nda.txt"}));
    assert_eq!(code, 200, "{got}");
    assert_eq!(got["checks"].as_object().unwrap().len(), 17);
    assert_eq!(got["checks"]["nda-11"]["label"], "Entailment", "{got}");
    assert_eq!(untimed(got.clone()), cli_review(&txt));
    // Naming the adapter is the same review.
    let (code, named) = post(
        &srv.base,
        &json!({"adapter": "nda-review", "text": text, "name": "acme-nda.txt"}),
    );
    assert_eq!(code, 200, "{named}");
    assert_eq!(untimed(named), untimed(got));

    let b64 = base64::engine::general_purpose::STANDARD.encode(&pdf_bytes);
    let (code, got) = post(
        &srv.base,
        &json!({"pdf_base64": b64, "name": "acme-nda.pdf"}),
    );
    assert_eq!(code, 200, "{got}");
    assert_eq!(untimed(got), cli_review(&pdf));

    // Bad inputs: 4xx in OpenAI's error shape.
    for (body, status, needle) in [
        (json!({"text": ""}), 400, "empty"),
        (
            json!({"pdf_base64": base64::engine::general_purpose::STANDARD.encode(b"hello")}),
            400,
            "PDF",
        ),
        (json!({"adapter": "no-such", "text": text}), 404, "no-such"),
        (
            json!({"adapter": "smollm2", "text": text}),
            400,
            "base model",
        ),
    ] {
        let (code, v) = post(&srv.base, &body);
        assert_eq!(code, status, "{body}: {v}");
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(needle), "{body}: {v}");
    }

    // Eight at once: all answered, all the same review.
    let want = untimed(post(&srv.base, &json!({"text": text, "name": "acme-nda.txt"})).1);
    let answers: Vec<(u16, Value)> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|_| s.spawn(|| post(&srv.base, &json!({"text": text, "name": "acme-nda.txt"}))))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (code, v) in answers {
        assert_eq!(code, 200, "{v}");
        assert_eq!(untimed(v), want);
    }
    let metrics = ureq::get(&format!("{}/metrics", srv.base))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        metrics.contains("hone_review_documents_total 12"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("review"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn without_the_built_in_adapter_a_review_must_name_one() {
    if !model_cached() {
        return;
    }
    let srv = Server::start(&["--no-builtin-adapter"]);
    assert!(srv.stderr().contains("(0 adapters)"), "{}", srv.stderr());
    let (code, v) = post(
        &srv.base,
        &json!({"text": "1. The Recipient shall keep it secret."}),
    );
    assert_eq!(code, 400, "{v}");
    assert_eq!(v["error"]["param"], "adapter", "{v}");
    let (code, v) = post(
        &srv.base,
        &json!({"adapter": "nda-review", "text": "1. The Recipient shall keep it secret."}),
    );
    assert_eq!(code, 404, "{v}");
}
