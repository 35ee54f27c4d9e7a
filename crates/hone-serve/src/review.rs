//! `POST /v1/review`: a contract in (text, or a PDF as base64 or a multipart upload), the 17
//! checks out, as `hone review --format json` writes them for one document
//! ([`hone_review::report::json`]).
//!
//! The request names a loaded review adapter (`--adapter NAME=DIR` or `POST /v1/adapters`, its
//! folder holding the calibration `review.json`); one that names none gets the built-in NDA
//! review adapter (`nda-review`, [`hone_review::builtin`]) when the server has loaded it, as
//! `hone serve` does with its base model. The document is read as `hone review` reads
//! a file ([`hone_review::input::read_bytes`]); its windows run on the engine's thread and base
//! model between decode steps ([`crate::engine::ReviewJob`]), with the adapter per row, and the
//! decisions are the review engine's own ([`hone_review::engine::assemble`]), so the answer is
//! the CLI's. Bad input is a 4xx in OpenAI's error shape: no adapter or an unknown one (404),
//! not a review adapter, empty text, bytes that are not a PDF, bad base64, malformed JSON or
//! form (400), a document over `--max-review-bytes` or `--max-review-chars` (413), another
//! content type (415), too many reviews held (429). A body sent as
//! `application/x-www-form-urlencoded` (curl's `-d`) or `text/plain` is read as JSON, as the
//! other endpoints read theirs.
//!
//! JSON body: `{"adapter": "nda", "text": "..."}` or `{"adapter": "nda", "pdf_base64": "..."}`,
//! optionally `"name"` (the document's file name: its stem is the `doc_id`), `"max_evidence"`
//! (evidence spans per check; 0: all) and `"playbook"` (a playbook's TOML; default: the shipped
//! playbook for a disclosing party). Multipart form: a `file` part (PDF or text, by its content
//! type or its first bytes) and the same fields as text parts.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hone_data::review_layout::{self as rl, Vocab};
use hone_model::lora::LoraAdapter;
use hone_model::tokenizer::Tokenizer;
use hone_review::engine::{
    assemble, check_calibration_complete, check_review_adapter, with_tfidf, ReviewFiles,
    CALIBRATION_FILE,
};
use hone_review::input::{is_pdf, read_bytes, Format, ReadOptions};
use hone_review::playbook::Playbook;
use hone_review::scoring::WindowScorer;
use serde_json::{Map, Value};

use crate::auth::check_key;
use crate::engine::ReviewJob;
use crate::error::{Result, ServeError};
use crate::server::{body_bytes, done, ApiError, AppState};

/// The document limits of `POST /v1/review` (`hone serve --max-review-bytes`,
/// `--max-review-chars`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReviewLimits {
    /// The largest document, in bytes (the text's UTF-8, or the PDF's bytes once decoded).
    pub max_bytes: usize,
    /// The longest document text, in characters (a PDF's after extraction).
    pub max_chars: usize,
}

impl Default for ReviewLimits {
    fn default() -> Self {
        Self {
            max_bytes: 8 << 20,
            max_chars: hone_review::input::DEFAULT_MAX_CHARS,
        }
    }
}

/// Room in a request body beside the document: JSON fields, form headers, a playbook.
const BODY_OVERHEAD: usize = 256 << 10;

impl ReviewLimits {
    /// The largest `/v1/review` body: a document of `max_bytes` as base64 (4 bytes per 3) or
    /// JSON-escaped text, with room for the other fields; never under the server's
    /// `max_body_bytes`.
    pub fn body_limit(&self, max_body_bytes: usize) -> usize {
        self.max_bytes
            .div_ceil(3)
            .saturating_mul(4)
            .saturating_add(BODY_OVERHEAD)
            .max(max_body_bytes)
    }
}

/// A loaded adapter's review files, with the adapter they were read for (a replaced adapter's
/// are read again).
type FilesOf = (Weak<LoraAdapter>, Arc<ReviewFiles>);

/// What the server keeps for reviews: the review vocabulary of its tokenizer and each review
/// adapter's calibration files, read once per loaded adapter.
pub struct ReviewService {
    /// The label and slot tokens and the instruction prefix, or why this tokenizer cannot
    /// review.
    vocab: std::result::Result<Vocab, String>,
    /// By adapter name: the adapter the files were read for, and the files.
    files: Mutex<HashMap<String, FilesOf>>,
}

impl ReviewService {
    pub fn new(tokenizer: &Tokenizer) -> Self {
        Self {
            vocab: Vocab::new(tokenizer).map_err(|e| e.to_string()),
            files: Mutex::new(HashMap::new()),
        }
    }

    /// The calibration files of the adapter loaded as `name` (`adapter`, in `dir`), read
    /// once per loaded adapter (a replaced adapter's are read again). Blocking.
    fn files(
        &self,
        name: &str,
        adapter: &Arc<LoraAdapter>,
        dir: &Path,
    ) -> Result<Arc<ReviewFiles>> {
        let lock = || {
            self.files
                .lock()
                .map_err(|_| ServeError::Internal("review file cache lock poisoned".into()))
        };
        if let Some((w, f)) = lock()?.get(name) {
            if w.upgrade().is_some_and(|a| Arc::ptr_eq(&a, adapter)) {
                return Ok(f.clone());
            }
        }
        let f = Arc::new(ReviewFiles::read(dir).map_err(|e| adapter_error(name, dir, e))?);
        lock()?.insert(name.to_string(), (Arc::downgrade(adapter), f.clone()));
        Ok(f)
    }
}

/// A review-adapter error naming the adapter, never the server's folder.
fn adapter_error(name: &str, dir: &Path, e: hone_review::Error) -> ServeError {
    let full = dir.display().to_string();
    let msg = match e {
        hone_review::Error::Adapter { msg, .. } => msg,
        e => e.to_string(),
    };
    ServeError::bad(
        "adapter",
        format!("adapter `{name}`: {}", msg.replace(&full, name)),
    )
}

/// One review request, parsed and checked.
struct ReviewRequest {
    /// None: the built-in adapter when the server has it loaded.
    adapter: Option<String>,
    /// The document's file name (its source; its stem is the doc_id).
    name: String,
    bytes: Vec<u8>,
    format: Format,
    /// The field the document came in (`text`, `pdf_base64`, `file`), for errors.
    field: &'static str,
    max_evidence: usize,
    playbook: Playbook,
}

/// The most evidence spans per check a request may ask for.
const MAX_EVIDENCE_CAP: usize = 100_000;

/// The fields of a JSON review request.
const JSON_FIELDS: &str = "adapter, text, pdf_base64, name, max_evidence, playbook";

/// Checks a document's size against the limit.
fn check_size(n: usize, field: &str, limits: &ReviewLimits) -> Result<()> {
    if n > limits.max_bytes {
        return Err(ServeError::TooLarge(format!(
            "`{field}`: the document has {n} bytes, more than this server's limit of {} \
             (--max-review-bytes)",
            limits.max_bytes
        )));
    }
    Ok(())
}

fn opt_str<'a>(m: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(ServeError::bad(key, format!("`{key}` must be a string"))),
    }
}

fn check_doc_name(name: &str) -> Result<String> {
    if name.trim().is_empty() || name.chars().count() > 255 || name.contains(['\0', '\n', '\r']) {
        return Err(ServeError::bad(
            "name",
            "`name` is the document's file name: 1 to 255 characters on one line",
        ));
    }
    Ok(name.to_string())
}

fn parse_max_evidence(v: Option<&Value>) -> Result<usize> {
    let bad = || {
        ServeError::bad(
            "max_evidence",
            format!("`max_evidence` is a whole number from 0 (every span) to {MAX_EVIDENCE_CAP}"),
        )
    };
    match v {
        None | Some(Value::Null) => Ok(hone_review::aggregate::MAX_EVIDENCE),
        Some(v) => match v.as_u64() {
            Some(n) if n as usize <= MAX_EVIDENCE_CAP => Ok(n as usize),
            _ => Err(bad()),
        },
    }
}

fn parse_playbook(text: Option<&str>) -> Result<Playbook> {
    match text {
        None => Ok(Playbook::default_disclosing()),
        Some(t) => Playbook::parse(t, Path::new("playbook"))
            .map_err(|e| ServeError::bad("playbook", e.to_string())),
    }
}

/// Base64 as clients send it: standard or URL-safe alphabet, padded or not, line breaks and a
/// `data:...;base64,` prefix allowed.
fn decode_base64(s: &str) -> std::result::Result<Vec<u8>, String> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let s = match s.trim_start().strip_prefix("data:") {
        Some(rest) => rest.split_once(',').map(|(_, d)| d).unwrap_or(rest),
        None => s,
    };
    let clean: String = s
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect::<String>()
        .trim_end_matches('=')
        .to_string();
    STANDARD_NO_PAD
        .decode(&clean)
        .or_else(|_| URL_SAFE_NO_PAD.decode(&clean))
        .map_err(|e| e.to_string())
}

fn not_a_pdf(field: &str) -> ServeError {
    ServeError::bad(
        field,
        format!(
            "`{field}` is not a PDF (no %PDF- header); send a PDF, or a contract's text as {}",
            if field == "file" {
                "a text/plain file"
            } else {
                "`text`"
            }
        ),
    )
}

/// A JSON review request.
fn parse_json(body: &[u8], limits: &ReviewLimits) -> Result<ReviewRequest> {
    let m = crate::openai::parse_body(body)?;
    if let Some(k) = m
        .keys()
        .find(|k| !JSON_FIELDS.split(", ").any(|f| f == k.as_str()))
    {
        return Err(ServeError::bad(
            k,
            format!("unknown field `{k}` (a review request has: {JSON_FIELDS})"),
        ));
    }
    let adapter = opt_str(&m, "adapter")?.map(str::to_string);
    let name = check_doc_name(opt_str(&m, "name")?.unwrap_or("document"))?;
    let (bytes, format, field) = match (opt_str(&m, "text")?, opt_str(&m, "pdf_base64")?) {
        (Some(_), Some(_)) => {
            return Err(ServeError::bad(
                "text",
                "give the contract as `text` or as `pdf_base64`, not both",
            ))
        }
        (None, None) => return Err(ServeError::bad(
            "text",
            "the contract is missing: give it as `text` (a string) or `pdf_base64` (a PDF, base64)",
        )),
        (Some(t), None) => {
            check_size(t.len(), "text", limits)?;
            if t.trim().is_empty() {
                return Err(ServeError::bad(
                    "text",
                    "`text` is empty: nothing to review",
                ));
            }
            (t.as_bytes().to_vec(), Format::Text, "text")
        }
        (None, Some(b)) => {
            // decoded size is at most 3/4 of the encoded: refuse what is surely too large first
            check_size(b.len() / 4 * 3, "pdf_base64", limits)?;
            let bytes = decode_base64(b).map_err(|e| {
                ServeError::bad(
                    "pdf_base64",
                    format!("`pdf_base64` is not valid base64: {e}"),
                )
            })?;
            check_size(bytes.len(), "pdf_base64", limits)?;
            if bytes.is_empty() {
                return Err(ServeError::bad(
                    "pdf_base64",
                    "`pdf_base64` is empty: nothing to review",
                ));
            }
            if !is_pdf(&bytes) {
                return Err(not_a_pdf("pdf_base64"));
            }
            (bytes, Format::Pdf, "pdf_base64")
        }
    };
    Ok(ReviewRequest {
        adapter,
        name,
        bytes,
        format,
        field,
        max_evidence: parse_max_evidence(m.get("max_evidence"))?,
        playbook: parse_playbook(opt_str(&m, "playbook")?)?,
    })
}

/// A multipart review request: `file`, `adapter`, and optionally `name`, `max_evidence`,
/// `playbook`.
fn parse_form(body: &[u8], content_type: &str, limits: &ReviewLimits) -> Result<ReviewRequest> {
    let boundary =
        crate::multipart::boundary(content_type).map_err(|e| ServeError::BadRequest {
            param: None,
            message: e,
        })?;
    let parts = crate::multipart::parse(body, &boundary).map_err(|e| ServeError::BadRequest {
        param: None,
        message: e,
    })?;
    let mut fields: HashMap<&str, &crate::multipart::Part> = HashMap::new();
    for p in &parts {
        if !["file", "adapter", "name", "max_evidence", "playbook"].contains(&p.name.as_str()) {
            return Err(ServeError::bad(
                &p.name,
                format!(
                    "unknown form field `{}` (a review form has: file, adapter, name, max_evidence, playbook)",
                    p.name
                ),
            ));
        }
        if fields.insert(p.name.as_str(), p).is_some() {
            return Err(ServeError::bad(
                &p.name,
                format!("the form has `{}` twice", p.name),
            ));
        }
    }
    let text = |key: &str| -> Result<Option<String>> {
        fields
            .get(key)
            .map(|p| {
                String::from_utf8(p.data.to_vec())
                    .map(|s| s.trim().to_string())
                    .map_err(|_| ServeError::bad(key, format!("`{key}` is not UTF-8 text")))
            })
            .transpose()
    };
    let adapter = text("adapter")?.filter(|a| !a.is_empty());
    let file = fields.get("file").ok_or_else(|| {
        ServeError::bad(
            "file",
            "the form needs a `file` part: the contract, a PDF or a text file",
        )
    })?;
    check_size(file.data.len(), "file", limits)?;
    if file.data.iter().all(u8::is_ascii_whitespace) {
        return Err(ServeError::bad(
            "file",
            "`file` is empty: nothing to review",
        ));
    }
    let named_pdf = file
        .filename
        .as_deref()
        .is_some_and(|f| Format::of_name(f) == Format::Pdf);
    let format = match file.content_type.as_deref() {
        Some("application/pdf") => Format::Pdf,
        Some(t) if t.starts_with("text/") => {
            if is_pdf(file.data) {
                Format::Pdf
            } else {
                Format::Text
            }
        }
        None | Some("application/octet-stream") => {
            if is_pdf(file.data) || named_pdf {
                Format::Pdf
            } else {
                Format::Text
            }
        }
        Some(t) => {
            return Err(ServeError::UnsupportedMediaType(format!(
                "`file` is {t}: send a PDF (application/pdf) or text (text/plain)"
            )))
        }
    };
    if format == Format::Pdf && !is_pdf(file.data) {
        return Err(not_a_pdf("file"));
    }
    let name = match text("name")? {
        Some(n) => n,
        None => file
            .filename
            .as_deref()
            .map(|f| f.rsplit(['/', '\\']).next().unwrap_or(f).to_string())
            .filter(|f| !f.trim().is_empty())
            .unwrap_or_else(|| "document".into()),
    };
    let max_evidence = match text("max_evidence")? {
        None => parse_max_evidence(None)?,
        // not a whole number: Bool, which parse_max_evidence refuses
        Some(s) => parse_max_evidence(Some(
            &s.parse::<u64>()
                .map(Value::from)
                .unwrap_or(Value::Bool(false)),
        ))?,
    };
    Ok(ReviewRequest {
        adapter,
        name: check_doc_name(&name)?,
        bytes: file.data.to_vec(),
        format,
        field: "file",
        max_evidence,
        playbook: parse_playbook(text("playbook")?.as_deref())?,
    })
}

/// Sets its flag when dropped: a handler whose client has gone cancels its review job.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// `POST /v1/review`.
pub async fn review(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let cancel = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancel.clone());
    let st2 = st.clone();
    let resp = async move {
        check_key(&headers, st2.config.api_key.as_deref())?;
        let limits = st2.config.review;
        let bytes = body_bytes(body, limits.body_limit(st2.config.max_body_bytes))?;
        let ct = headers
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap_or("?").to_string());
        let kind = ct.as_deref().map(|c| {
            c.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
        let req = match kind.as_deref() {
            // curl's -d sends its form content type, plain clients text/plain: JSON all the same
            None
            | Some("application/json" | "application/x-www-form-urlencoded" | "text/plain") => {
                parse_json(&bytes, &limits)?
            }
            Some("multipart/form-data") => {
                parse_form(&bytes, ct.as_deref().unwrap_or(""), &limits)?
            }
            Some(other) => {
                return Err(ServeError::UnsupportedMediaType(format!(
                    "POST /v1/review reads application/json or multipart/form-data, not `{other}`"
                )))
            }
        };
        drop(bytes);
        let st3 = st2.clone();
        let body = tokio::task::spawn_blocking(move || run(&st3, req, cancel))
            .await
            .map_err(|e| ServeError::Internal(format!("the review task failed: {e}")))??;
        Ok::<_, ServeError>(([(header::CONTENT_TYPE, "application/json")], body).into_response())
    }
    .await
    .unwrap_or_else(|e| ApiError(e).into_response());
    if resp.status().is_success() {
        st.metrics.observe_review(started.elapsed().as_secs_f64());
    }
    done(&st, "review", started, resp)
}

/// The adapter a request that names none is reviewed with: the built-in NDA review adapter
/// (`hone serve` loads it with its base model), else none (an error asking for one).
fn default_adapter(st: &AppState) -> Result<String> {
    let name = hone_review::builtin::NAME;
    let loaded = st
        .adapters
        .read()
        .map_err(|_| ServeError::Internal("adapter registry lock poisoned".into()))?
        .contains_key(name);
    if loaded {
        Ok(name.to_string())
    } else {
        Err(ServeError::bad(
            "adapter",
            "`adapter` is required: the name of a loaded review adapter (GET /v1/models lists \
             them)",
        ))
    }
}

/// The loaded adapter `name`, its folder, and its review files; refuses the base model, an
/// unknown name and an adapter that is not a calibrated review adapter. Blocking.
fn review_adapter(st: &AppState, name: &str) -> Result<(Arc<LoraAdapter>, Arc<ReviewFiles>)> {
    if name == st.config.model_name {
        return Err(ServeError::bad(
            "adapter",
            format!(
                "`{name}` is the base model, which has not learnt the review labels; name a \
                 review adapter (trained with data.format = \"review\")"
            ),
        ));
    }
    let (adapter, dir) = {
        let map = st
            .adapters
            .read()
            .map_err(|_| ServeError::Internal("adapter registry lock poisoned".into()))?;
        let e = map.get(name).ok_or_else(|| {
            ServeError::AdapterNotFound(format!(
                "no adapter named `{name}` is loaded (GET /v1/models lists the loaded ones)"
            ))
        })?;
        (e.adapter.clone(), e.path.clone())
    };
    check_review_adapter(&dir).map_err(|e| adapter_error(name, &dir, e))?;
    if !dir.join(CALIBRATION_FILE).is_file() {
        return Err(ServeError::bad(
            "adapter",
            format!(
                "adapter `{name}` is not a review adapter: its folder has no {CALIBRATION_FILE} \
                 (train one with data.format = \"review\", or calibrate it: hone review \
                 --calibrate VALID --adapter DIR)"
            ),
        ));
    }
    check_calibration_complete(&dir).map_err(|e| adapter_error(name, &dir, e))?;
    let files = st.review.files(name, &adapter, &dir)?;
    Ok((adapter, files))
}

/// Reviews the request's document: reads it, runs its windows on the engine, decides. Returns
/// the JSON body. Blocking (waits for the engine).
fn run(st: &AppState, req: ReviewRequest, cancel: Arc<AtomicBool>) -> Result<String> {
    let vocab = st.review.vocab.as_ref().map_err(|e| {
        ServeError::bad("adapter", format!("this server's model cannot review: {e}"))
    })?;
    let name = match &req.adapter {
        Some(n) => n.clone(),
        None => default_adapter(st)?,
    };
    let (adapter, files) = review_adapter(st, &name)?;
    let limits = st.config.review;
    // characters are checked here, after a PDF's text is extracted, to answer 413
    let unlimited = ReadOptions {
        max_chars: usize::MAX,
    };
    let mut docs =
        read_bytes(&req.name, &req.bytes, Some(req.format), &unlimited).map_err(|e| match e {
            hone_review::Error::Input { msg, .. } => {
                ServeError::bad(req.field, format!("`{}`: {msg}", req.field))
            }
            e => ServeError::Internal(format!("reading the document: {e}")),
        })?;
    if docs.len() != 1 {
        return Err(ServeError::Internal(format!(
            "reading the document gave {} documents, not one",
            docs.len()
        )));
    }
    let doc = docs.remove(0);
    let chars = doc.text.chars().count();
    if chars > limits.max_chars {
        return Err(ServeError::TooLarge(format!(
            "`{}`: the document's text has {chars} characters, more than this server's limit \
             of {} (--max-review-chars)",
            req.field, limits.max_chars
        )));
    }
    let layout = rl::Options {
        max_window: files
            .max_window
            .unwrap_or(rl::Options::default().max_window),
        ..rl::Options::default()
    };
    let batch_tokens = st.engine.config().review_batch_tokens;
    let mut engine_err = None;
    let review = assemble(
        &doc,
        Some(&req.playbook),
        &files.calibration,
        req.max_evidence,
        |texts| {
            let scorer = WindowScorer::new(vocab, &st.tokenizer, texts, layout, batch_tokens)?;
            let handle = st
                .engine
                .submit_review(ReviewJob {
                    scorer,
                    adapter: Some(adapter.clone()),
                    cancel: cancel.clone(),
                })
                .map_err(|e| {
                    let msg = e.to_string();
                    engine_err = Some(e);
                    hone_review::Error::Invalid(msg)
                })?;
            let scored =
                match handle.done.blocking_recv() {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => return Err(hone_review::Error::Invalid(e)),
                    Err(_) => return Err(hone_review::Error::Invalid(
                        "the review was cancelled (the client went away, or the engine stopped)"
                            .into(),
                    )),
                };
            Ok(with_tfidf(scored.finish(), files.tfidf.as_ref(), texts))
        },
    );
    let review = match (review, engine_err) {
        (Ok(r), _) => r,
        (Err(_), Some(e)) => return Err(e),
        (Err(e), None) => return Err(ServeError::Internal(format!("the review failed: {e}"))),
    };
    st.metrics.review_done(review.timing.spans);
    hone_review::report::json(&review)
        .map_err(|e| ServeError::Internal(format!("the review's JSON: {e}")))
}
