//! `POST /v1/review` over real HTTP (ureq) on a tiny random llama with a byte-level BPE
//! tokenizer that keeps the review tokens whole, and a random review adapter with its
//! calibration: text, PDF (base64) and multipart uploads answer exactly the JSON that
//! `Reviewer::review` + `hone review --format json`'s serializer give for the same document
//! (timings aside); bad inputs get clear 4xx errors in OpenAI's shape; eight concurrent reviews
//! are all answered, and a chat request sent while they run is answered too.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::Server;
use hone_model::llama::MODULES;
use hone_model::lora::LoraSpec;
use hone_model::{LoadOptions, LoadedModel};
use hone_review::aggregate::Calibration;
use hone_review::engine::{EngineOptions, ReviewConfig, Reviewer};
use hone_review::input::{read_bytes, Format, ReadOptions};
use hone_review::playbook::Playbook;
use hone_serve::review::ReviewLimits;
use hone_serve::server::ServerConfig;
use serde_json::{json, Value};

const HIDDEN: usize = 32;
/// Review windows of the adapter (review.json): small, so a contract takes several.
const MAX_WINDOW: usize = 192;

/// The review's label texts (` -`, ` A`..` Q`, ` a`..` q`) as byte-level tokens.
fn merges() -> Vec<(String, String)> {
    let mut v = vec![("Ġ".to_string(), "-".to_string())];
    for i in 0..17u8 {
        v.push(("Ġ".into(), char::from(b'A' + i).to_string()));
        v.push(("Ġ".into(), char::from(b'a' + i).to_string()));
    }
    v
}

/// A 2-layer random llama as a Hugging Face folder: byte-level BPE (every byte a token, plus
/// the review's label tokens merged), a chat template, f32 weights.
fn write_tiny_model(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let table = hone_model::tokenizer::byte_to_char_table();
    let mut vocab = serde_json::Map::new();
    vocab.insert("<|endoftext|>".into(), json!(0));
    for (b, c) in table.iter().enumerate() {
        vocab.insert(c.to_string(), json!(b + 1));
    }
    let merges = merges();
    for (a, b) in &merges {
        let n = vocab.len();
        vocab.insert(format!("{a}{b}"), json!(n));
    }
    let n_vocab = vocab.len();
    hone_model::testing::write_byte_level_tokenizer(dir, vocab, &merges).unwrap();
    std::fs::write(
        dir.join("tokenizer_config.json"),
        json!({
            "eos_token": "<|endoftext|>",
            "chat_template": "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"
        })
        .to_string(),
    )
    .unwrap();
    hone_model::testing::write_random_llama(
        dir,
        &hone_model::testing::RandomLlama {
            vocab: n_vocab,
            hidden: HIDDEN,
            layers: 2,
            ffn: 64,
            heads: 4,
            kv_heads: 2,
            eos_token_id: Some(0),
        },
    )
    .unwrap();
}

/// A random LoRA adapter on every projection, saved in `dir` as trained on `format` data;
/// with `calibrated`, its review calibration (review.json) beside it.
fn write_adapter(m: &LoadedModel, dir: &Path, format: &str, calibrated: bool) {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let spec = LoraSpec {
        r: 4,
        alpha: 8.0,
        target_modules: MODULES.iter().map(|s| s.to_string()).collect(),
        layers: (0..m.model.layers.len()).collect(),
    };
    let mut a = m.model.init_adapter(spec, &mut rng).unwrap();
    a.randomize_b(0.2, &mut rng);
    hone_model::save_adapter(
        dir,
        &a,
        "tiny",
        &hone_model::peft::AdapterExtra {
            n_layers: Some(m.model.layers.len()),
            ..Default::default()
        },
    )
    .unwrap();
    std::fs::write(
        dir.join("train_config.toml"),
        format!("[data]\nformat = \"{format}\"\n"),
    )
    .unwrap();
    if calibrated {
        let rc = ReviewConfig {
            calibration: Calibration {
                mentioned: 0.3,
                entailment: 0.6,
            },
            max_window: MAX_WINDOW,
            note: "test".into(),
            tfidf_weight: 0.0,
        };
        std::fs::write(dir.join("review.json"), serde_json::to_string(&rc).unwrap()).unwrap();
    }
}

/// The tiny model and its adapters: `nda` (a calibrated review adapter), `chat` (trained on
/// chat examples), `raw` (a review adapter never calibrated: no review.json).
struct Rig {
    dir: tempfile::TempDir,
}

impl Rig {
    fn new() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        write_tiny_model(&dir.path().join("model"));
        let m = Rig::load_at(dir.path());
        write_adapter(&m, &dir.path().join("nda"), "review", true);
        write_adapter(&m, &dir.path().join("chat"), "examples", false);
        write_adapter(&m, &dir.path().join("raw"), "review", false);
        Rig { dir }
    }
    fn load_at(dir: &Path) -> LoadedModel {
        LoadedModel::load_hf(&dir.join("model"), &LoadOptions::default()).unwrap()
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn server(&self, config: ServerConfig) -> Server {
        let (nda, chat, raw) = (self.path("nda"), self.path("chat"), self.path("raw"));
        Server::start_model(
            Rig::load_at(self.dir.path()),
            config,
            &[("nda", &nda), ("chat", &chat), ("raw", &raw)],
            None,
        )
    }
    /// What `hone review --adapter nda --format json` gives for this document (the windows
    /// grouped as the server groups them).
    fn expected(&self, name: &str, bytes: &[u8], format: Format, batch_tokens: usize) -> Value {
        let r = Reviewer::load(
            &self.path("model").to_string_lossy(),
            Some(&self.path("nda")),
            EngineOptions {
                max_batch_tokens: batch_tokens,
                ..EngineOptions::default()
            },
        )
        .unwrap();
        let doc = read_bytes(name, bytes, Some(format), &ReadOptions::default())
            .unwrap()
            .remove(0);
        let rev = r
            .review(&doc, Some(&Playbook::default_disclosing()))
            .unwrap();
        serde_json::from_str(&hone_review::report::json(&rev).unwrap()).unwrap()
    }
}

/// A contract of `clauses` numbered clauses, different per `seed`.
fn contract(clauses: usize, seed: usize) -> String {
    let parts = [
        "Confidential Information means all information disclosed by one party to the other, whether orally or in writing.",
        "The Recipient shall use the Confidential Information solely for the Purpose.",
        "The Recipient may disclose Confidential Information to its employees who need to know it.",
        "Upon request, the Recipient shall return or destroy all Confidential Information.",
        "The obligations of this Agreement survive its termination for five years.",
        "Nothing in this Agreement grants the Recipient any licence under any patent.",
        "The Recipient may independently develop information without use of the Confidential Information.",
    ];
    let mut s = format!("MUTUAL NON-DISCLOSURE AGREEMENT No. {seed}\n");
    for i in 0..clauses {
        s.push_str(&format!("{}. {}\n", i + 1, parts[(i + seed) % parts.len()]));
    }
    s
}

/// A one-page PDF showing `lines`.
fn pdf(lines: &[&str]) -> Vec<u8> {
    hone_review::pdf_fixture::text_pdf(lines)
}

fn send(url: &str, content_type: Option<&str>, body: &[u8]) -> (u16, Value) {
    let mut req = ureq::post(url).timeout(Duration::from_secs(120));
    if let Some(ct) = content_type {
        req = req.set("Content-Type", ct);
    }
    let r = match req.send_bytes(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let code = r.status();
    let text = r.into_string().unwrap();
    let v = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (code, v)
}

/// A review request whose head declares a body of `len` bytes, sent without it (a client
/// writing a body the server refuses at its head gets a broken pipe, not the answer).
fn declare_body(srv: &Server, len: usize) -> (u16, Value) {
    use std::io::{Read, Write};
    let addr = srv.url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /v1/review HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {len}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text}"));
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    (code, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn review(srv: &Server, body: &Value) -> (u16, Value) {
    send(
        &format!("{}/v1/review", srv.url),
        Some("application/json"),
        body.to_string().as_bytes(),
    )
}

const BOUNDARY: &str = "----hone-test-boundary-7MA4YWxk";

/// One part of a multipart form: field, file name, content type, bytes.
type FormPart<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8]);

/// A multipart form.
fn form(parts: &[FormPart]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, file, ct, data) in parts {
        out.extend(format!("--{BOUNDARY}\r\n").as_bytes());
        let mut disp = format!("Content-Disposition: form-data; name=\"{name}\"");
        if let Some(f) = file {
            disp.push_str(&format!("; filename=\"{f}\""));
        }
        out.extend(disp.as_bytes());
        out.extend(b"\r\n");
        if let Some(ct) = ct {
            out.extend(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        out.extend(b"\r\n");
        out.extend(*data);
        out.extend(b"\r\n");
    }
    out.extend(format!("--{BOUNDARY}--\r\n").as_bytes());
    out
}

fn upload(srv: &Server, parts: &[FormPart]) -> (u16, Value) {
    send(
        &format!("{}/v1/review", srv.url),
        Some(&format!("multipart/form-data; boundary={BOUNDARY}")),
        &form(parts),
    )
}

/// The review without its timings in milliseconds (the work counts stay).
fn untimed(mut v: Value) -> Value {
    if let Some(t) = v.get_mut("timing").and_then(Value::as_object_mut) {
        t.retain(|k, _| !k.ends_with("_ms"));
    }
    v
}

/// The 17 checks, each with a label and probabilities summing to 1.
fn assert_well_formed(v: &Value) {
    let checks = v["checks"].as_object().expect("checks");
    assert_eq!(checks.len(), 17, "{v}");
    for (id, c) in checks {
        assert!(id.starts_with("nda-"), "{id}");
        let label = c["label"].as_str().unwrap();
        assert!(
            ["Entailment", "Contradiction", "NotMentioned"].contains(&label),
            "{label}"
        );
        let p = &c["probs"];
        let sum: f64 = ["Entailment", "Contradiction", "NotMentioned"]
            .iter()
            .map(|k| p[k].as_f64().unwrap())
            .sum();
        assert!((sum - 1.0).abs() < 1e-6, "{sum}");
    }
    assert!(v["timing"]["windows"].as_u64().unwrap() >= 1);
}

/// The error's status, and its OpenAI shape: message, type, param and code all present.
fn assert_error(got: (u16, Value), status: u16, param: Option<&str>, needle: &str) {
    let (code, v) = got;
    assert_eq!(code, status, "{v}");
    let e = &v["error"];
    let msg = e["message"].as_str().unwrap_or_else(|| panic!("{v}"));
    assert!(
        msg.to_lowercase().contains(&needle.to_lowercase()),
        "`{needle}` not in `{msg}`"
    );
    assert!(e["type"].is_string(), "{v}");
    assert!(e.get("code").is_some() && e.get("param").is_some(), "{v}");
    if let Some(p) = param {
        assert_eq!(e["param"], json!(p), "{v}");
    }
}

#[test]
fn text_pdf_and_uploads_are_reviewed_as_the_cli_reviews_them() {
    let rig = Rig::new();
    let config = ServerConfig::default();
    let batch = config.engine.review_batch_tokens;
    let srv = rig.server(config);

    // text
    let text = contract(9, 0);
    let (code, got) = review(
        &srv,
        &json!({"adapter": "nda", "text": text, "name": "acme-nda.txt"}),
    );
    assert_eq!(code, 200, "{got}");
    assert_well_formed(&got);
    assert!(got["timing"]["windows"].as_u64().unwrap() >= 2, "{got}");
    assert_eq!(got["doc_id"], "acme-nda");
    assert_eq!(got["source"], "acme-nda.txt");
    let want = rig.expected("acme-nda.txt", text.as_bytes(), Format::Text, batch);
    assert_eq!(untimed(got), untimed(want));

    // PDF, base64
    let lines = [
        "MUTUAL NON-DISCLOSURE AGREEMENT",
        "1. Confidential Information means all information disclosed by one party to the",
        "other, whether orally or in writing.",
        "2. The Recipient shall return or destroy all Confidential Information on request.",
        "3. The obligations survive termination for five years.",
    ];
    let bytes = pdf(&lines);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let (code, got) = review(
        &srv,
        &json!({"adapter": "nda", "pdf_base64": b64, "name": "beta.pdf"}),
    );
    assert_eq!(code, 200, "{got}");
    assert_well_formed(&got);
    let want = rig.expected("beta.pdf", &bytes, Format::Pdf, batch);
    assert_eq!(untimed(got.clone()), untimed(want.clone()));

    // the same PDF uploaded as a file (its name from the part)
    let (code, up) = upload(
        &srv,
        &[
            ("adapter", None, None, b"nda"),
            ("file", Some("beta.pdf"), Some("application/pdf"), &bytes),
        ],
    );
    assert_eq!(code, 200, "{up}");
    assert_eq!(untimed(up), untimed(want));

    // a text file uploaded, its type found from its bytes, with fewer evidence spans
    let (code, up) = upload(
        &srv,
        &[
            ("file", Some("gamma.txt"), None, text.as_bytes()),
            ("adapter", None, None, b"nda"),
            ("max_evidence", None, None, b"1"),
        ],
    );
    assert_eq!(code, 200, "{up}");
    assert_well_formed(&up);
    assert_eq!(up["doc_id"], "gamma");
    for c in up["checks"].as_object().unwrap().values() {
        assert!(c["evidence"].as_array().unwrap().len() <= 1);
    }

    let m = srv.metrics();
    assert_eq!(m["hone_review_documents_total"], 4.0);
    assert!(m["hone_review_windows_total"] >= 5.0, "{m:?}");
    assert!(m["hone_review_model_seconds_total"] > 0.0);
    assert_eq!(m["hone_review_seconds"], 4.0); // the histogram's count
    assert_eq!(m["hone_requests_total{endpoint=review,status=200}"], 4.0);
    assert_eq!(m["hone_reviews_waiting"], 0.0);
}

#[test]
fn bad_inputs_get_clear_4xx_errors_in_openai_shape() {
    let rig = Rig::new();
    let limits = ReviewLimits {
        max_bytes: 20_000,
        max_chars: 3_000,
    };
    let srv = rig.server(ServerConfig {
        review: limits,
        ..ServerConfig::default()
    });
    let url = format!("{}/v1/review", srv.url);
    let ok_text = contract(3, 1);

    // empty, blank
    assert_error(
        review(&srv, &json!({"adapter": "nda", "text": ""})),
        400,
        Some("text"),
        "empty",
    );
    assert_error(
        review(&srv, &json!({"adapter": "nda", "text": " \n\t "})),
        400,
        Some("text"),
        "empty",
    );
    // not a PDF, bad base64, a PDF without text
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    assert_error(
        review(
            &srv,
            &json!({"adapter": "nda", "pdf_base64": b64(b"just some text, not a PDF")}),
        ),
        400,
        Some("pdf_base64"),
        "not a PDF",
    );
    assert_error(
        review(
            &srv,
            &json!({"adapter": "nda", "pdf_base64": "%%% not base64 %%%"}),
        ),
        400,
        Some("pdf_base64"),
        "base64",
    );
    assert_error(
        review(&srv, &json!({"adapter": "nda", "pdf_base64": ""})),
        400,
        Some("pdf_base64"),
        "empty",
    );
    let blank = hone_review::pdf_fixture::one_page_pdf("0 0 m 10 10 l S");
    assert_error(
        review(&srv, &json!({"adapter": "nda", "pdf_base64": b64(&blank)})),
        400,
        Some("pdf_base64"),
        "no text layer",
    );
    let mut broken = pdf(&["A clause."]);
    broken.truncate(40);
    let (code, v) = review(&srv, &json!({"adapter": "nda", "pdf_base64": b64(&broken)}));
    assert_eq!(code, 400, "{v}");
    // too large: bytes, characters (after extraction too), and a body past the body limit
    assert_error(
        review(
            &srv,
            &json!({"adapter": "nda", "text": "x ".repeat(15_000)}),
        ),
        413,
        None,
        "--max-review-bytes",
    );
    assert_error(
        review(&srv, &json!({"adapter": "nda", "text": contract(60, 0)})),
        413,
        None,
        "--max-review-chars",
    );
    assert_error(
        declare_body(&srv, limits.body_limit(1 << 20) + 10),
        413,
        None,
        "--max-review-bytes",
    );
    // adapters: unknown, the base model, trained for chat, never calibrated, missing
    assert_error(
        review(&srv, &json!({"adapter": "nope", "text": ok_text})),
        404,
        Some("adapter"),
        "no adapter named `nope`",
    );
    let (_, v) = review(&srv, &json!({"adapter": "nope", "text": ok_text}));
    assert_eq!(v["error"]["code"], "model_not_found");
    assert_error(
        review(&srv, &json!({"adapter": "base", "text": ok_text})),
        400,
        Some("adapter"),
        "base model",
    );
    let (code, v) = review(&srv, &json!({"adapter": "chat", "text": ok_text}));
    assert_error((code, v.clone()), 400, Some("adapter"), "not for review");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        !msg.contains(&*rig.dir.path().to_string_lossy()),
        "the server's folder leaks: {msg}"
    );
    assert_error(
        review(&srv, &json!({"adapter": "raw", "text": ok_text})),
        400,
        Some("adapter"),
        "not a review adapter",
    );
    assert_error(
        review(&srv, &json!({"text": ok_text})),
        400,
        Some("adapter"),
        "`adapter` is required",
    );
    // malformed requests
    assert_error(
        send(
            &url,
            Some("application/json"),
            b"{\"adapter\": \"nda\", \"text\": ",
        ),
        400,
        None,
        "not valid JSON",
    );
    assert_error(
        send(&url, Some("application/json"), b"[1, 2]"),
        400,
        None,
        "JSON object",
    );
    assert_error(
        review(&srv, &json!({"adapter": "nda"})),
        400,
        Some("text"),
        "missing",
    );
    assert_error(
        review(
            &srv,
            &json!({"adapter": "nda", "text": ok_text, "pdf_base64": b64(b"%PDF-")}),
        ),
        400,
        Some("text"),
        "not both",
    );
    assert_error(
        review(&srv, &json!({"adapter": "nda", "text": 42})),
        400,
        Some("text"),
        "must be a string",
    );
    assert_error(
        review(
            &srv,
            &json!({"adapter": "nda", "text": ok_text, "model": "x"}),
        ),
        400,
        Some("model"),
        "unknown field",
    );
    assert_error(
        review(
            &srv,
            &json!({"adapter": "nda", "text": ok_text, "max_evidence": -1}),
        ),
        400,
        Some("max_evidence"),
        "whole number",
    );
    assert_error(
        review(
            &srv,
            &json!({"adapter": "nda", "text": ok_text, "playbook": "this is = not [toml"}),
        ),
        400,
        Some("playbook"),
        "",
    );
    assert_error(
        review(&srv, &json!({"adapter": "nda", "text": "binary\u{0}data"})),
        400,
        Some("text"),
        "not text",
    );
    // content types and forms
    assert_error(
        send(&url, Some("application/pdf"), &pdf(&["A clause."])),
        415,
        None,
        "multipart/form-data",
    );
    assert_error(
        upload(&srv, &[("adapter", None, None, b"nda")]),
        400,
        Some("file"),
        "`file` part",
    );
    assert_error(
        upload(
            &srv,
            &[
                ("adapter", None, None, b"nda"),
                ("file", Some("a.png"), Some("image/png"), b"\x89PNG...."),
            ],
        ),
        415,
        None,
        "image/png",
    );
    assert_error(
        upload(
            &srv,
            &[
                ("adapter", None, None, b"nda"),
                (
                    "file",
                    Some("a.pdf"),
                    Some("application/pdf"),
                    b"not a pdf at all",
                ),
            ],
        ),
        400,
        Some("file"),
        "not a PDF",
    );
    assert_error(
        upload(
            &srv,
            &[
                ("adapter", None, None, b"nda"),
                ("file", Some("a.txt"), Some("text/plain"), b""),
            ],
        ),
        400,
        Some("file"),
        "empty",
    );
    assert_error(
        upload(
            &srv,
            &[
                ("adapter", None, None, b"nope"),
                (
                    "file",
                    Some("a.txt"),
                    Some("text/plain"),
                    ok_text.as_bytes(),
                ),
            ],
        ),
        404,
        Some("adapter"),
        "nope",
    );
    assert_error(
        send(
            &url,
            Some("multipart/form-data; boundary=XY"),
            b"--XY\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nno end",
        ),
        400,
        None,
        "multipart",
    );
    assert_error(
        send(&url, Some("multipart/form-data"), b"--XY--"),
        400,
        None,
        "boundary",
    );
    // every refusal was counted, nothing was reviewed, and the server still reviews
    let m = srv.metrics();
    assert_eq!(m.get("hone_review_documents_total"), Some(&0.0));
    assert!(m["hone_requests_total{endpoint=review,status=400}"] >= 20.0);
    assert_eq!(m["hone_requests_total{endpoint=review,status=413}"], 3.0);
    assert_eq!(m["hone_requests_total{endpoint=review,status=404}"], 3.0);
    assert_eq!(m["hone_requests_total{endpoint=review,status=415}"], 2.0);
    let (code, v) = review(&srv, &json!({"adapter": "nda", "text": ok_text}));
    assert_eq!(code, 200, "{v}");
}

#[test]
fn the_api_key_guards_reviews() {
    let rig = Rig::new();
    let srv = rig.server(ServerConfig {
        api_key: Some("s3cret".into()),
        ..ServerConfig::default()
    });
    let body = json!({"adapter": "nda", "text": contract(3, 2)}).to_string();
    let url = format!("{}/v1/review", srv.url);
    let (code, v) = common::post_raw(&url, &body, None);
    assert_eq!(code, 401, "{v}");
    assert_eq!(v["error"]["code"], "invalid_api_key");
    let (code, v) = common::post_raw(&url, &body, Some("s3cret"));
    assert_eq!(code, 200, "{v}");
    assert_well_formed(&v);
    // curl's -d content type is read as JSON
    let r = ureq::post(&url)
        .set("Authorization", "Bearer s3cret")
        .set("Content-Type", "application/x-www-form-urlencoded")
        .send_string(&body)
        .unwrap();
    assert_eq!(r.status(), 200);
    // a body of 2 MiB (over --max-body-bytes, within the review body limit) is read, and
    // its bad base64 is what is refused
    let big = json!({"adapter": "nda", "pdf_base64": "!".repeat(2 << 20)}).to_string();
    let (code, v) = common::post_raw(&url, &big, Some("s3cret"));
    assert_eq!(code, 400, "{v}");
    assert_eq!(v["error"]["param"], "pdf_base64", "{v}");
}

#[test]
fn eight_concurrent_reviews_are_all_answered_while_chat_goes_on() {
    let rig = Rig::new();
    let config = ServerConfig::default();
    let batch = config.engine.review_batch_tokens;
    let srv = rig.server(config);
    // long enough that the reviews, one at a time, outlast the chat requests
    let docs: Vec<String> = (0..8).map(|i| contract(40 + i, i)).collect();
    let started = Instant::now();
    let (got, chat) = std::thread::scope(|s| {
        let handles: Vec<_> = docs
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let srv = &srv;
                s.spawn(move || {
                    let r = review(
                        srv,
                        &json!({"adapter": "nda", "text": d, "name": format!("doc{i}.txt")}),
                    );
                    (r, started.elapsed())
                })
            })
            .collect();
        // a chat request while the reviews run, for the review adapter and for the base
        std::thread::sleep(Duration::from_millis(20));
        let chat: Vec<_> = ["base", "nda"]
            .iter()
            .map(|model| {
                let r = srv.post(
                    "/v1/chat/completions",
                    &json!({"model": model, "max_tokens": 8, "temperature": 0,
                            "messages": [{"role": "user", "content": "Is this confidential?"}]}),
                );
                (r, started.elapsed())
            })
            .collect::<Vec<_>>();
        let got: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        (got, chat)
    });
    let last_review = got.iter().map(|(_, t)| *t).max().unwrap();
    for ((code, v), t) in &chat {
        assert_eq!(*code, 200, "{v}");
        assert!(v["choices"][0]["message"]["content"].is_string(), "{v}");
        assert!(
            v["usage"]["completion_tokens"].as_u64().unwrap() >= 1,
            "{v}"
        );
        println!("chat answered at {t:?}; the last review at {last_review:?}");
        // answered between the reviews' windows, not after them all
        assert!(
            *t < last_review,
            "chat at {t:?}, the last review at {last_review:?}"
        );
    }
    for (i, ((code, v), _)) in got.into_iter().enumerate() {
        assert_eq!(code, 200, "review {i}: {v}");
        assert_well_formed(&v);
        let want = rig.expected(
            &format!("doc{i}.txt"),
            docs[i].as_bytes(),
            Format::Text,
            batch,
        );
        assert_eq!(untimed(v), untimed(want), "review {i}");
    }
    let m = srv.wait_idle();
    assert_eq!(m["hone_review_documents_total"], 8.0);
    assert_eq!(m["hone_requests_total{endpoint=review,status=200}"], 8.0);
    assert_eq!(
        m["hone_requests_total{endpoint=chat_completions,status=200}"],
        2.0
    );
    assert_eq!(m["hone_reviews_waiting"], 0.0);
}
