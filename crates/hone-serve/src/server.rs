//! The HTTP side: axum routes in OpenAI's shapes over the engine.
//!
//! `POST /v1/chat/completions`, `POST /v1/completions` (both streaming with server-sent events
//! ending in `[DONE]`), `GET /v1/models`, `POST /v1/adapters` and `DELETE /v1/adapters/{name}`
//! (admin key; folders under the configured adapter roots only), `GET /health`,
//! `GET /metrics` (the metrics key when one is set), `POST /v1/review` (`review`). A client that goes away cancels its request
//! in the engine at once. Connections and their timeouts are `conn`'s; the body of every request
//! is read here, within `max_body_bytes` and `body_timeout`.
//! Requests for a routed model name (`route`) are answered whole, then by the fallback when
//! the local answer's confidence is under the threshold (`routed_response`).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use hone_model::chat_template::{ChatTemplate, Message};
use hone_model::lora::LoraAdapter;
use hone_model::sampler::SamplingParams;
use hone_model::tokenizer::Tokenizer;
use hone_model::{FinishReason, Llama};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use hone_ops::live::Outcome;
use hone_ops::request_log::LogRecord;
use hone_ops::{Store, VersionRef};

use crate::auth::{check_admin, check_key};
use crate::conn::ConnLimits;
use crate::constrain::ConstraintFactory;
use crate::deployments::{Deployments, Picked};
use crate::engine::{Engine, EngineConfig, Event, GenParams, TokenLogprob};
use crate::error::{Result, ServeError};
use crate::metrics::Metrics;
use crate::openai::{self, Limits, PromptInput, Request, ResponseFormat};
use crate::request_log::{RequestLogConfig, RequestLogger};
use crate::review::{ReviewLimits, ReviewService};
use crate::route::{goes_to_fallback, header_text, RouteConfig, Routing, Target};

/// Server settings (the `hone serve` flags).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The name clients use for the base model.
    pub model_name: String,
    /// Required as `Authorization: Bearer KEY` on `/v1/*` when set.
    pub api_key: Option<String>,
    /// Required for loading, replacing and unloading adapters and for the admin API; without
    /// one those endpoints answer 403 (the API key never opens them).
    pub admin_key: Option<String>,
    /// Required on `/metrics` when set (else `/metrics` is open, like `/health`).
    pub metrics_key: Option<String>,
    /// Folders `POST /v1/adapters` and `POST /admin/versions` may load from (paths are relative
    /// to one of them); exactly these, nothing else.
    pub adapter_roots: Vec<PathBuf>,
    /// Adapters loaded at once at most (startup ones included); beyond, 409.
    pub max_adapters: usize,
    pub max_body_bytes: usize,
    /// Timeouts and the connection cap.
    pub conn: ConnLimits,
    pub limits: Limits,
    pub engine: EngineConfig,
    /// Log every generation request to the store (needs one).
    pub request_log: Option<RequestLogConfig>,
    /// Confidence routing of one model name to a larger model (`hone serve --route`).
    pub route: Option<RouteConfig>,
    /// The document limits of `POST /v1/review` (its body limit follows from them).
    pub review: ReviewLimits,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            model_name: "base".into(),
            api_key: None,
            admin_key: None,
            metrics_key: None,
            adapter_roots: Vec::new(),
            max_adapters: 64,
            max_body_bytes: 1 << 20,
            conn: ConnLimits::default(),
            limits: Limits {
                max_tokens_cap: 4096,
                default_max_tokens: 512,
            },
            engine: EngineConfig::default(),
            request_log: None,
            route: None,
            review: ReviewLimits::default(),
        }
    }
}

/// A loaded adapter.
pub struct AdapterEntry {
    pub adapter: Arc<LoraAdapter>,
    pub path: PathBuf,
    pub created: u64,
}

/// Everything the handlers share.
pub struct AppState {
    pub engine: Engine,
    pub tokenizer: Arc<Tokenizer>,
    pub template: ChatTemplate,
    pub constraints: Option<ConstraintFactory>,
    pub adapters: RwLock<BTreeMap<String, AdapterEntry>>,
    pub metrics: Metrics,
    pub config: ServerConfig,
    /// Versioned deployments from a registry store (`hone serve --store`).
    pub deployments: Option<Arc<Deployments>>,
    /// The request log, written to the same store (`hone serve --request-log`).
    pub request_log: Option<RequestLogger>,
    /// Confidence routing (`hone serve --route`): its fallback client and metrics.
    pub route: Option<Routing>,
    /// `POST /v1/review`'s vocabulary and the review adapters' calibration files.
    pub review: ReviewService,
    model: Arc<Llama>,
    stop_tokens: Vec<u32>,
    created: u64,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl AppState {
    /// Starts the engine for `model` and prepares the shared state.
    pub fn new(
        model: Llama,
        tokenizer: Tokenizer,
        template: ChatTemplate,
        config: ServerConfig,
    ) -> Result<Arc<Self>> {
        Self::with_store(model, tokenizer, template, config, None)
    }

    /// [`AppState::new`] serving the deployments of a registry `store` too: requests for a
    /// deployed name go to its prod or canary version. The deployments are loaded before this
    /// returns. Blocking.
    pub fn with_store(
        model: Llama,
        tokenizer: Tokenizer,
        template: ChatTemplate,
        config: ServerConfig,
        store: Option<Arc<dyn Store>>,
    ) -> Result<Arc<Self>> {
        let metrics = Metrics::new();
        let model = Arc::new(model);
        let tokenizer = Arc::new(tokenizer);
        let constraints = match ConstraintFactory::new(&tokenizer, model.vocab_size()) {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!("constrained output is unavailable for this tokenizer: {e}");
                None
            }
        };
        let mut stop_tokens = template.stop_token_ids(&tokenizer);
        if let Some(e) = tokenizer.eos_id() {
            if !stop_tokens.contains(&e) {
                stop_tokens.push(e);
            }
        }
        let engine = Engine::start(
            model.clone(),
            tokenizer.clone(),
            config.engine.clone(),
            metrics.clone(),
        );
        let request_log = match (&config.request_log, &store) {
            (Some(c), Some(store)) => {
                Some(RequestLogger::start(store.clone(), c.clone(), &metrics))
            }
            (Some(_), None) => {
                return Err(ServeError::Internal(
                    "the request log is written to the registry store: give one (--store)".into(),
                ))
            }
            (None, _) => None,
        };
        let deployments = match store {
            Some(store) => {
                let d = Deployments::new(store, model.clone(), metrics.clone());
                d.sync(true)?;
                Some(Arc::new(d))
            }
            None => None,
        };
        let route = config.route.clone().map(|c| Routing::new(c, &metrics));
        let review = ReviewService::new(&tokenizer);
        Ok(Arc::new(Self {
            engine,
            tokenizer,
            template,
            constraints,
            adapters: RwLock::new(BTreeMap::new()),
            metrics,
            config,
            deployments,
            request_log,
            route,
            review,
            model,
            stop_tokens,
            created: now_secs(),
        }))
    }

    /// Loads an adapter folder under a new `name` (startup, `hone serve --adapter`).
    pub fn load_adapter(&self, name: &str, dir: &Path) -> Result<()> {
        self.add_adapter(name, dir, false, &dir.display().to_string())
            .map(|_| ())
    }

    /// Loads `dir` under `name`; a name already loaded is replaced only when `replace`, and a
    /// new name only while fewer than `max_adapters` are loaded. Errors name the folder as
    /// `shown` (what the client sent), never as the server's path. True when it replaced one.
    pub fn add_adapter(&self, name: &str, dir: &Path, replace: bool, shown: &str) -> Result<bool> {
        check_name(name)?;
        if name == self.config.model_name {
            return Err(ServeError::bad(
                "name",
                "an adapter cannot take the base model's name",
            ));
        }
        // checked before the (slow) load too, so a refused request costs nothing
        self.check_room(&*self.adapters_read()?, name, replace)?;
        let full = dir.display().to_string();
        let hide = |e: String| ServeError::Adapter {
            path: shown.to_string(),
            msg: e.replace(&full, shown),
        };
        let loaded = hone_model::load_adapter(dir)
            .map_err(|e| hide(e.to_string()))
            .and_then(|a| {
                self.model
                    .check_adapter(&a)
                    .map_err(|e| hide(e.to_string()))?;
                Ok(a)
            });
        self.metrics.adapter_load(loaded.is_ok());
        let a = loaded?;
        let mut map = self
            .adapters
            .write()
            .map_err(|_| ServeError::Internal("adapter registry lock poisoned".into()))?;
        self.check_room(&map, name, replace)?;
        let old = map.insert(
            name.to_string(),
            AdapterEntry {
                adapter: Arc::new(a),
                path: dir.to_path_buf(),
                created: now_secs(),
            },
        );
        self.metrics.set_adapters_loaded(map.len());
        Ok(old.is_some())
    }

    fn adapters_read(
        &self,
    ) -> Result<std::sync::RwLockReadGuard<'_, BTreeMap<String, AdapterEntry>>> {
        self.adapters
            .read()
            .map_err(|_| ServeError::Internal("adapter registry lock poisoned".into()))
    }

    /// Whether `name` may be loaded into `map`: a loaded name only with `replace`, a new one
    /// only below the cap.
    fn check_room(
        &self,
        map: &BTreeMap<String, AdapterEntry>,
        name: &str,
        replace: bool,
    ) -> Result<()> {
        if map.contains_key(name) {
            if replace {
                return Ok(());
            }
            return Err(ServeError::Conflict(format!(
                "an adapter named `{name}` is loaded: send \"replace\": true to replace it, or DELETE /v1/adapters/{name} first"
            )));
        }
        let max = self.config.max_adapters;
        if map.len() >= max {
            return Err(ServeError::Conflict(format!(
                "{max} adapters are loaded, this server's maximum (--max-adapters): unload one first"
            )));
        }
        Ok(())
    }

    /// Drops an adapter (requests already running with it finish with it).
    pub fn unload_adapter(&self, name: &str) -> Result<()> {
        let mut map = self
            .adapters
            .write()
            .map_err(|_| ServeError::Internal("adapter registry lock poisoned".into()))?;
        map.remove(name)
            .ok_or_else(|| ServeError::NotFound(format!("no adapter named `{name}` is loaded")))?;
        self.metrics.set_adapters_loaded(map.len());
        Ok(())
    }

    /// The adapter answering `name` for `user`, and the registered version when it is one:
    /// the base model, a deployed name (prod or canary), `NAME@N`, or a loaded adapter.
    async fn resolve(
        self: &Arc<Self>,
        name: &str,
        user: Option<&str>,
    ) -> Result<(Option<Arc<LoraAdapter>>, Option<VersionRef>)> {
        if name == self.config.model_name {
            return Ok((None, None));
        }
        if let Some(d) = &self.deployments {
            if let Some(Picked { adapter, version }) = d.pick(name, user) {
                return Ok((Some(adapter), Some(version)));
            }
            if let Ok(r) = name.parse::<VersionRef>() {
                let picked = if d.is_loaded(&r) {
                    d.direct(&r)?
                } else {
                    let d = d.clone();
                    tokio::task::spawn_blocking(move || d.direct(&r))
                        .await
                        .map_err(|e| ServeError::Internal(e.to_string()))??
                };
                return Ok((Some(picked.adapter), Some(picked.version)));
            }
        }
        Ok((self.resolve_model(name)?, None))
    }

    fn resolve_model(&self, name: &str) -> Result<Option<Arc<LoraAdapter>>> {
        let map = self
            .adapters
            .read()
            .map_err(|_| ServeError::Internal("adapter registry lock poisoned".into()))?;
        match map.get(name) {
            Some(e) => Ok(Some(e.adapter.clone())),
            None => Err(ServeError::NotFound(format!(
                "the model `{name}` does not exist (GET /v1/models lists the base and its adapters)"
            ))),
        }
    }

    /// Turns a validated request into engine parameters.
    fn gen_params(
        &self,
        r: &Request,
        adapter: Option<Arc<LoraAdapter>>,
        track_logprob: bool,
    ) -> Result<GenParams> {
        let prompt = match &r.input {
            PromptInput::Chat(msgs) => {
                let msgs: Vec<Message> = msgs
                    .iter()
                    .map(|(role, content)| Message::new(role.clone(), content.clone()))
                    .collect();
                let text = self
                    .template
                    .render(&msgs, true)
                    .map_err(|e| ServeError::bad("messages", e.to_string()))?;
                self.tokenizer.encode(&text, true)?
            }
            PromptInput::Text(t) => self.tokenizer.encode(t, false)?,
        };
        let constraint = match &r.response_format {
            ResponseFormat::Text => None,
            f => {
                let fac = self.constraints.as_ref().ok_or_else(|| {
                    ServeError::bad(
                        "response_format",
                        "constrained output is not available for this model's tokenizer",
                    )
                })?;
                Some(match f {
                    ResponseFormat::JsonObject => fac.json_object()?,
                    ResponseFormat::JsonSchema(s) => fac.json_schema(s)?,
                    ResponseFormat::Text => unreachable!("handled above"),
                })
            }
        };
        Ok(GenParams {
            prompt,
            adapter,
            max_tokens: r.max_tokens,
            sampling: SamplingParams {
                temperature: r.temperature,
                top_k: 0,
                top_p: r.top_p,
                seed: r.seed.unwrap_or_else(rand::random),
            },
            stop_strings: r.stop.clone(),
            stop_tokens: self.stop_tokens.clone(),
            logprobs: r.logprobs,
            constraint,
            track_logprob,
        })
    }

    fn token_text(&self, id: u32) -> String {
        self.tokenizer.decode(&[id], false).unwrap_or_default()
    }
}

/// Adapter names follow the registry's rule (they are metric labels and URL segments too).
fn check_name(name: &str) -> Result<()> {
    hone_ops::version::check_name(name).map_err(|e| ServeError::bad("name", e.to_string()))
}

/// The folder `rel` names under one of `roots`; refuses absolute paths, `..` and anything
/// that resolves (through links) outside the root.
pub fn resolve_under_roots(roots: &[PathBuf], rel: &str) -> Result<PathBuf> {
    let p = Path::new(rel);
    if rel.is_empty()
        || p.is_absolute()
        || p.components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(ServeError::bad(
            "path",
            "`path` is a folder relative to a configured adapter folder (no `..`, not absolute)",
        ));
    }
    if roots.is_empty() {
        return Err(ServeError::bad(
            "path",
            "this server has no adapter folders configured (hone serve --adapter-dir DIR)",
        ));
    }
    for root in roots {
        let Ok(root) = root.canonicalize() else {
            continue;
        };
        let Ok(full) = root.join(p).canonicalize() else {
            continue;
        };
        if full.starts_with(&root) && full.is_dir() {
            return Ok(full);
        }
    }
    // One answer for a folder that is missing, a file, or a link out of the roots: which one
    // it was would tell a client what exists on the server.
    Err(ServeError::bad(
        "path",
        format!("`{rel}` is not an adapter folder under this server's adapter folders"),
    ))
}

/// An error as an OpenAI-shaped response.
pub struct ApiError(pub ServeError);

impl From<ServeError> for ApiError {
    fn from(e: ServeError) -> Self {
        ApiError(e)
    }
}

pub fn status_of(e: &ServeError) -> StatusCode {
    match e {
        ServeError::BadRequest { .. } | ServeError::Grammar(_) => StatusCode::BAD_REQUEST,
        ServeError::NotFound(_) | ServeError::AdapterNotFound(_) => StatusCode::NOT_FOUND,
        ServeError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ServeError::Conflict(_) => StatusCode::CONFLICT,
        ServeError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        ServeError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        ServeError::Forbidden(_) => StatusCode::FORBIDDEN,
        ServeError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
        ServeError::Overloaded(_) => StatusCode::TOO_MANY_REQUESTS,
        ServeError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        ServeError::Adapter { .. } => StatusCode::BAD_REQUEST,
        ServeError::Model(hone_model::Error::ContextOverflow { .. }) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(&self.0);
        let mut resp = (status, Json(openai::error_body(&self.0))).into_response();
        if matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

type Shared = Arc<AppState>;

/// The router with every endpoint.
pub fn router(state: Shared) -> Router {
    let limit = state.config.max_body_bytes;
    let review_limit = state.config.review.body_limit(limit);
    Router::new()
        .route(
            "/v1/review",
            post(crate::review::review).layer(DefaultBodyLimit::max(review_limit)),
        )
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/v1/models", get(models))
        .route("/v1/adapters", post(load_adapter))
        .route("/v1/adapters/:name", delete(unload_adapter))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .merge(crate::admin::routes())
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            read_body,
        ))
        .with_state(state)
}

/// Reads every request's body before its handler runs: a declared `Content-Length` over the
/// limit is 413 at once (the body is not waited for), a body not all there within
/// `body_timeout` is 408, one growing past the limit 413. Handlers get the body whole.
/// Answers given here are counted in `hone_requests_total` under the path's endpoint.
async fn read_body(State(st): State<Shared>, req: axum::extract::Request, next: Next) -> Response {
    use http_body_util::BodyExt;
    let endpoint = crate::metrics::endpoint_of(req.uri().path());
    // a review carries a document (--max-review-bytes, base64 or JSON-escaped)
    let limit = if endpoint == "review" {
        st.config.review.body_limit(st.config.max_body_bytes)
    } else {
        st.config.max_body_bytes
    };
    let refuse = |e: ServeError| {
        let resp = ApiError(e).into_response();
        st.metrics.request_done(endpoint, resp.status().as_u16());
        resp
    };
    let too_large = || {
        refuse(ServeError::TooLarge(if endpoint == "review" {
            format!(
                "the body is larger than this server's limit of {limit} bytes for a review \
                 (documents of at most {} bytes: --max-review-bytes)",
                st.config.review.max_bytes
            )
        } else {
            format!("the body is larger than this server's limit of {limit} bytes")
        }))
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    let (parts, body) = req.into_parts();
    let timeout = st.config.conn.body_timeout;
    let read =
        tokio::time::timeout(timeout, http_body_util::Limited::new(body, limit).collect()).await;
    let bytes = match read {
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Ok(Err(e)) => {
            return refuse(ServeError::BadRequest {
                param: None,
                message: format!("cannot read the body: {e}"),
            })
        }
        Err(_) => {
            return refuse(ServeError::Timeout(format!(
                "the request body did not arrive within {} s",
                timeout.as_secs_f64()
            )))
        }
    };
    next.run(axum::extract::Request::from_parts(
        parts,
        axum::body::Body::from(bytes),
    ))
    .await
}

/// Reads the body, mapping axum's rejections (too large, unreadable) to OpenAI errors.
pub(crate) fn body_bytes(
    body: std::result::Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<Bytes> {
    body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ServeError::TooLarge(format!(
                "the body is larger than this server's limit of {limit} bytes"
            ))
        } else {
            ServeError::BadRequest {
                param: None,
                message: format!("cannot read the body: {e}"),
            }
        }
    })
}

pub(crate) fn done(state: &AppState, endpoint: &str, started: Instant, resp: Response) -> Response {
    state.metrics.request_done(endpoint, resp.status().as_u16());
    let generation = matches!(endpoint, "chat_completions" | "completions");
    if generation && resp.status().is_success() {
        state.metrics.observe_e2e(started.elapsed().as_secs_f64());
    }
    resp
}

async fn chat_completions(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    generation(st, headers, body, true).await
}

async fn completions(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    generation(st, headers, body, false).await
}

async fn generation(
    st: Shared,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
    chat: bool,
) -> Response {
    let endpoint = if chat {
        "chat_completions"
    } else {
        "completions"
    };
    let started = Instant::now();
    let prepared = async {
        check_key(&headers, st.config.api_key.as_deref())?;
        let bytes = body_bytes(body, st.config.max_body_bytes)?;
        let m = openai::parse_body(&bytes)?;
        let r = if chat {
            openai::chat_request(&m, &st.config.limits)?
        } else {
            openai::completion_request(&m, &st.config.limits)?
        };
        let (adapter, version) = st.resolve(&r.model, r.user.as_deref()).await?;
        let track = version.map(|version| {
            let json = !matches!(r.response_format, ResponseFormat::Text)
                || st
                    .deployments
                    .as_ref()
                    .is_some_and(|d| d.expect_json(&version.name));
            Tracked {
                asked: r.model.clone(),
                // only a JSON answer's quotes are checked against the request's text: a
                // free-text answer does not copy a long prompt
                input_text: if json {
                    match &r.input {
                        PromptInput::Chat(msgs) => msgs
                            .iter()
                            .map(|(_, c)| c.as_str())
                            .collect::<Vec<_>>()
                            .join("\n"),
                        PromptInput::Text(t) => t.clone(),
                    }
                } else {
                    String::new()
                },
                json,
                version,
            }
        });
        // a routed request keeps its body, to be sent on to the fallback as it came
        let routed = st
            .route
            .as_ref()
            .is_some_and(|rt| rt.routes(&r.model))
            .then_some(m);
        let p = st.gen_params(
            &r,
            adapter,
            track.is_some() || st.request_log.is_some() || routed.is_some(),
        )?;
        Ok::<_, ServeError>((r, p, track, routed))
    }
    .await;
    let (mut req, params, track, routed) = match prepared {
        Ok(x) => x,
        Err(e) => return done(&st, endpoint, started, ApiError(e).into_response()),
    };
    let handle = match st.engine.submit(params) {
        Ok(h) => h,
        Err(e) => return done(&st, endpoint, started, ApiError(e).into_response()),
    };
    // The answer names the version that gave it (as OpenAI names the snapshot behind an
    // alias), so a client always knows which adapter answered.
    if let Some(t) = &track {
        req.model = t.version.to_string();
    }
    let id = format!(
        "{}-{:016x}",
        if chat { "chatcmpl" } else { "cmpl" },
        rand::random::<u64>()
    );
    if let Some(body) = routed {
        let resp = routed_response(&st, &req, body, handle.events, &id, chat, started, track).await;
        done(&st, endpoint, started, resp)
    } else if req.stream {
        stream_response(st, req, handle.events, id, chat, started, track)
    } else {
        let resp = full_response(&st, &req, handle.events, &id, chat, started, track).await;
        done(&st, endpoint, started, resp)
    }
}

/// Log-probabilities of a chat response, or a completion's legacy shape.
fn logprobs_json(st: &AppState, toks: &[TokenLogprob], chat: bool, text_offset0: usize) -> Value {
    if chat {
        json!({"content": toks.iter().map(|t| {
            let top: Vec<(String, f32)> = t.top.iter().map(|&(id, lp)| (st.token_text(id), lp)).collect();
            openai::chat_logprob(&st.token_text(t.id), t.logprob, &top)
        }).collect::<Vec<_>>()})
    } else {
        let mut offset = text_offset0;
        let mut tokens = Vec::new();
        let mut lps = Vec::new();
        let mut tops = Vec::new();
        let mut offsets = Vec::new();
        for t in toks {
            let s = st.token_text(t.id);
            offsets.push(offset);
            offset += s.len();
            tokens.push(s);
            lps.push(t.logprob);
            let m: serde_json::Map<String, Value> = t
                .top
                .iter()
                .map(|&(id, lp)| (st.token_text(id), json!(lp)))
                .collect();
            tops.push(Value::Object(m));
        }
        json!({"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offsets})
    }
}

fn usage(prompt: usize, completion: usize) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

/// A local answer read whole.
struct LocalAnswer {
    text: String,
    toks: Vec<TokenLogprob>,
    finish: FinishReason,
    prompt_tokens: usize,
    completion_tokens: usize,
    mean_logprob: Option<f64>,
}

/// Reads a request's events to the end (its live numbers and request-log row recorded), or the
/// error response when it failed.
async fn collect_answer(
    st: &AppState,
    req: &Request,
    mut events: mpsc::UnboundedReceiver<Event>,
    chat: bool,
    started: Instant,
    track: &Option<Tracked>,
) -> std::result::Result<LocalAnswer, Response> {
    let mut text = String::new();
    let mut toks: Vec<TokenLogprob> = Vec::new();
    while let Some(ev) = events.recv().await {
        match ev {
            Event::Delta { text: t, tokens } => {
                text.push_str(&t);
                toks.extend(tokens);
            }
            Event::Done {
                finish,
                prompt_tokens,
                completion_tokens,
                mean_logprob,
            } => {
                let a = Answered {
                    text: &text,
                    finish: Some(finish),
                    prompt_tokens,
                    completion_tokens,
                    mean_logprob,
                };
                finished(st, req, chat, track, started, &a);
                return Ok(LocalAnswer {
                    text,
                    toks,
                    finish,
                    prompt_tokens,
                    completion_tokens,
                    mean_logprob,
                });
            }
            Event::Error(e) => {
                finished(st, req, chat, track, started, &Answered::failed(&text));
                return Err(ApiError(ServeError::Internal(e)).into_response());
            }
        }
    }
    finished(st, req, chat, track, started, &Answered::failed(&text));
    Err(ApiError(ServeError::Unavailable("the engine stopped".into())).into_response())
}

/// The OpenAI body of a local answer.
fn answer_body(st: &AppState, req: &Request, id: &str, chat: bool, a: &LocalAnswer) -> Value {
    let logprobs = req
        .logprobs
        .map(|_| logprobs_json(st, &a.toks, chat, 0))
        .unwrap_or(Value::Null);
    let (text, finish) = (&a.text, a.finish);
    let (p, c) = (a.prompt_tokens, a.completion_tokens);
    if chat {
        json!({
            "id": id, "object": "chat.completion", "created": now_secs(), "model": req.model,
            "system_fingerprint": "hone",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "logprobs": logprobs, "finish_reason": finish.as_str()}],
            "usage": usage(p, c),
        })
    } else {
        json!({
            "id": id, "object": "text_completion", "created": now_secs(), "model": req.model,
            "system_fingerprint": "hone",
            "choices": [{"index": 0, "text": text, "logprobs": logprobs,
                         "finish_reason": finish.as_str()}],
            "usage": usage(p, c),
        })
    }
}

async fn full_response(
    st: &AppState,
    req: &Request,
    events: mpsc::UnboundedReceiver<Event>,
    id: &str,
    chat: bool,
    started: Instant,
    track: Option<Tracked>,
) -> Response {
    match collect_answer(st, req, events, chat, started, &track).await {
        Ok(a) => Json(answer_body(st, req, id, chat, &a)).into_response(),
        Err(resp) => resp,
    }
}

/// A routed request: the local answer in full, then the fallback's instead when the local
/// one's mean token log-probability is under the threshold. A stream gets the chosen answer
/// as server-sent events once it is known. The fallback failing leaves the local answer, with
/// `x-hone-route-warning`.
#[allow(clippy::too_many_arguments)]
async fn routed_response(
    st: &Shared,
    req: &Request,
    body: serde_json::Map<String, Value>,
    events: mpsc::UnboundedReceiver<Event>,
    id: &str,
    chat: bool,
    started: Instant,
    track: Option<Tracked>,
) -> Response {
    let Some(rt) = st.route.as_ref() else {
        return ApiError(ServeError::Internal("routing is not configured".into())).into_response();
    };
    let local = match collect_answer(st, req, events, chat, started, &track).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let local_secs = started.elapsed().as_secs_f64();
    let mut warning = None;
    let mut answer = None;
    if goes_to_fallback(local.mean_logprob, rt.config.threshold) {
        let fallback = rt.fallback.clone();
        match tokio::task::spawn_blocking(move || fallback.send(chat, &body)).await {
            Ok(Ok(a)) => answer = Some(a),
            Ok(Err(e)) => warning = Some(format!("fallback failed: {e}")),
            Err(e) => warning = Some(format!("fallback failed: {e}")),
        }
        if let Some(w) = &warning {
            tracing::warn!(model = %req.model, "{w}");
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let target = match (&answer, &warning) {
        (Some(_), _) => Target::Fallback,
        (None, Some(_)) => Target::FallbackFailed,
        (None, None) => Target::Local,
    };
    let cost = match &answer {
        Some(a) => {
            rt.machine_cost(local_secs)
                + rt.fallback
                    .config()
                    .cost_usd(a.prompt_tokens, a.completion_tokens)
        }
        None => rt.machine_cost(secs),
    };
    rt.record(target, secs, cost);
    let mut resp = match (&answer, req.stream) {
        (Some(a), false) => Json(a.body.clone()).into_response(),
        (Some(a), true) => {
            let model = a
                .body
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or(&req.model)
                .to_string();
            let finish = a.finish.clone().unwrap_or_else(|| "stop".into());
            let u = usage(a.prompt_tokens as usize, a.completion_tokens as usize);
            whole_stream(req, id, &model, chat, &a.text, Value::Null, &finish, u)
        }
        (None, false) => Json(answer_body(st, req, id, chat, &local)).into_response(),
        (None, true) => {
            let lp = req
                .logprobs
                .map(|_| logprobs_json(st, &local.toks, chat, 0))
                .unwrap_or(Value::Null);
            let u = usage(local.prompt_tokens, local.completion_tokens);
            let finish = local.finish.as_str();
            whole_stream(req, id, &req.model, chat, &local.text, lp, finish, u)
        }
    };
    let h = resp.headers_mut();
    h.insert("x-hone-route", HeaderValue::from_static(target.header()));
    if let Some(lp) = local.mean_logprob {
        if let Ok(v) = HeaderValue::from_str(&lp.to_string()) {
            h.insert("x-hone-confidence", v);
        }
    }
    if let Some(w) = &warning {
        if let Ok(v) = HeaderValue::from_str(&header_text(w)) {
            h.insert("x-hone-route-warning", v);
        }
    }
    resp
}

/// One chunk of a streamed answer: `choice` (none for the usage chunk), and `usage` when
/// given, or `null` in every chunk when the client asked for usage at the end.
fn sse_chunk(
    id: &str,
    model: &str,
    chat: bool,
    created: u64,
    include_usage: bool,
    choice: Value,
    usage: Option<Value>,
) -> SseEvent {
    let mut v = json!({
        "id": id, "object": if chat { "chat.completion.chunk" } else { "text_completion" },
        "created": created, "model": model, "system_fingerprint": "hone",
        "choices": if choice.is_null() { json!([]) } else { json!([choice]) },
    });
    if let Some(u) = usage {
        v["usage"] = u;
    } else if include_usage {
        v["usage"] = Value::Null;
    }
    SseEvent::default().data(v.to_string())
}

/// A whole answer as the server-sent events a streamed one ends up as: the role (chat), the
/// text in one chunk, the finish reason, the usage when asked, `[DONE]`.
#[allow(clippy::too_many_arguments)]
fn whole_stream(
    req: &Request,
    id: &str,
    model: &str,
    chat: bool,
    text: &str,
    logprobs: Value,
    finish: &str,
    usage_v: Value,
) -> Response {
    let created = now_secs();
    let chunk = |choice: Value, usage_v: Option<Value>| {
        sse_chunk(id, model, chat, created, req.include_usage, choice, usage_v)
    };
    let mut out = Vec::new();
    if chat {
        out.push(chunk(
            json!({"index": 0, "delta": {"role": "assistant", "content": ""},
                   "logprobs": Value::Null, "finish_reason": Value::Null}),
            None,
        ));
        out.push(chunk(
            json!({"index": 0, "delta": {"content": text}, "logprobs": logprobs,
                   "finish_reason": Value::Null}),
            None,
        ));
        out.push(chunk(
            json!({"index": 0, "delta": {}, "logprobs": Value::Null, "finish_reason": finish}),
            None,
        ));
    } else {
        out.push(chunk(
            json!({"index": 0, "text": text, "logprobs": logprobs, "finish_reason": Value::Null}),
            None,
        ));
        out.push(chunk(
            json!({"index": 0, "text": "", "logprobs": Value::Null, "finish_reason": finish}),
            None,
        ));
    }
    if req.include_usage {
        out.push(chunk(Value::Null, Some(usage_v)));
    }
    out.push(SseEvent::default().data("[DONE]"));
    Sse::new(tokio_stream::iter(
        out.into_iter().map(Ok::<SseEvent, Infallible>),
    ))
    .into_response()
}

fn stream_response(
    st: Shared,
    req: Request,
    mut events: mpsc::UnboundedReceiver<Event>,
    id: String,
    chat: bool,
    started: Instant,
    track: Option<Tracked>,
) -> Response {
    let (tx, rx) = mpsc::channel::<std::result::Result<SseEvent, Infallible>>(64);
    let created = now_secs();
    let model = req.model.clone();
    let include_usage = req.include_usage;
    let chunk = move |choice: Value, usage_v: Option<Value>| {
        sse_chunk(&id, &model, chat, created, include_usage, choice, usage_v)
    };
    let endpoint = if chat {
        "chat_completions"
    } else {
        "completions"
    };
    tokio::spawn(async move {
        let mut offset = 0usize;
        let mut ok = true;
        // the whole answer, for the version's JSON check and the request log
        let keep_text = track.is_some() || st.request_log.is_some();
        let mut full = String::new();
        if chat {
            let first = json!({"index": 0, "delta": {"role": "assistant", "content": ""},
                               "logprobs": Value::Null, "finish_reason": Value::Null});
            if tx.send(Ok(chunk(first, None))).await.is_err() {
                st.metrics.request_done(endpoint, 499);
                return;
            }
        }
        loop {
            // A client that goes away during a long prefill is noticed at once, not at the
            // next token: dropping `events` cancels the request in the engine.
            let ev = tokio::select! {
                ev = events.recv() => ev,
                _ = tx.closed() => {
                    st.metrics.request_done(endpoint, 499);
                    return;
                }
            };
            let Some(ev) = ev else { break };
            let out = match ev {
                Event::Delta { text, tokens } => {
                    let lp = req
                        .logprobs
                        .map(|_| logprobs_json(&st, &tokens, chat, offset))
                        .unwrap_or(Value::Null);
                    offset += text.len();
                    if keep_text {
                        full.push_str(&text);
                    }
                    let choice = if chat {
                        json!({"index": 0, "delta": {"content": text}, "logprobs": lp, "finish_reason": Value::Null})
                    } else {
                        json!({"index": 0, "text": text, "logprobs": lp, "finish_reason": Value::Null})
                    };
                    vec![chunk(choice, None)]
                }
                Event::Done {
                    finish,
                    prompt_tokens,
                    completion_tokens,
                    mean_logprob,
                } => {
                    let a = Answered {
                        text: &full,
                        finish: Some(finish),
                        prompt_tokens,
                        completion_tokens,
                        mean_logprob,
                    };
                    finished(&st, &req, chat, &track, started, &a);
                    let fin = finish_choice(chat, finish);
                    let mut v = vec![chunk(fin, None)];
                    if req.include_usage {
                        v.push(chunk(
                            Value::Null,
                            Some(usage(prompt_tokens, completion_tokens)),
                        ));
                    }
                    v.push(SseEvent::default().data("[DONE]"));
                    v
                }
                Event::Error(e) => {
                    ok = false;
                    finished(&st, &req, chat, &track, started, &Answered::failed(&full));
                    let body = openai::error_body(&ServeError::Internal(e));
                    vec![
                        SseEvent::default().data(body.to_string()),
                        SseEvent::default().data("[DONE]"),
                    ]
                }
            };
            for e in out {
                if tx.send(Ok(e)).await.is_err() {
                    // The client has gone: dropping `events` cancels the request.
                    st.metrics.request_done(endpoint, 499);
                    return;
                }
            }
        }
        st.metrics
            .request_done(endpoint, if ok { 200 } else { 500 });
        if ok {
            st.metrics.observe_e2e(started.elapsed().as_secs_f64());
        }
    });
    Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// How a request ended, for the request log.
struct Answered<'a> {
    text: &'a str,
    /// `None`: it failed.
    finish: Option<FinishReason>,
    prompt_tokens: usize,
    completion_tokens: usize,
    mean_logprob: Option<f64>,
}

impl<'a> Answered<'a> {
    fn failed(text: &'a str) -> Self {
        Self {
            text,
            finish: None,
            prompt_tokens: 0,
            completion_tokens: 0,
            mean_logprob: None,
        }
    }
}

/// Hands a finished request to the request log (when it is on); never waits.
fn log_request(
    st: &AppState,
    req: &Request,
    chat: bool,
    track: &Option<Tracked>,
    started: Instant,
    a: &Answered,
) {
    let Some(log) = &st.request_log else {
        return;
    };
    let input = match &req.input {
        PromptInput::Chat(msgs) => Value::Array(
            msgs.iter()
                .map(|(role, content)| json!({"role": role, "content": content}))
                .collect(),
        ),
        PromptInput::Text(t) => Value::String(t.clone()),
    };
    let elapsed = started.elapsed();
    let now_ms = hone_ops::now_ms();
    log.log(LogRecord {
        id: 0,
        time_ms: now_ms - elapsed.as_millis() as i64,
        // the name the client asked for (`req.model` names the version that answered)
        model: track
            .as_ref()
            .map(|t| t.asked.clone())
            .unwrap_or_else(|| req.model.clone()),
        version: track.as_ref().map(|t| t.version.to_string()),
        endpoint: if chat {
            "chat_completions"
        } else {
            "completions"
        }
        .into(),
        status: if a.finish.is_some() { 200 } else { 500 },
        caller: req.user.clone(),
        input,
        output: a.text.to_string(),
        finish: a.finish.map(|f| f.as_str().to_string()),
        latency_ms: elapsed.as_secs_f64() * 1000.0,
        prompt_tokens: a.prompt_tokens as u64,
        output_tokens: a.completion_tokens as u64,
        mean_logprob: a.mean_logprob,
    });
}

/// A request answered by a registered version, watched for its live numbers.
struct Tracked {
    version: VersionRef,
    /// The model name the client asked for (`nda`, or `nda@2` itself).
    asked: String,
    /// The request's text (every message, or the prompt) when `json`: quotes in the answer must
    /// occur in it.
    input_text: String,
    /// The answer is meant to be JSON (a `response_format`, or the policy's `expect_json`).
    json: bool,
}

/// A request has ended (answered or failed): its version's live numbers and the request log.
fn finished(
    st: &AppState,
    req: &Request,
    chat: bool,
    track: &Option<Tracked>,
    started: Instant,
    a: &Answered,
) {
    record(st, track, started, a);
    log_request(st, req, chat, track, started, a);
}

/// Records what a tracked request did in its version's live numbers.
fn record(st: &AppState, track: &Option<Tracked>, started: Instant, a: &Answered) {
    let (Some(t), Some(d)) = (track, &st.deployments) else {
        return;
    };
    let o = match a.finish {
        None => Outcome {
            error: true,
            latency_s: started.elapsed().as_secs_f64(),
            ..Outcome::default()
        },
        Some(finish) => {
            let (text, tokens, lp) = (a.text, a.completion_tokens, a.mean_logprob);
            let parsed = t
                .json
                .then(|| serde_json::from_str::<Value>(text.trim()).ok())
                .flatten();
            let mut labels = Vec::new();
            let (mut quotes, mut quotes_missing) = (0, 0);
            if let Some(v) = &parsed {
                collect_labels(v, &mut labels);
                let mut qs = Vec::new();
                collect_quotes(v, &mut qs);
                let hay = normalise(&t.input_text);
                quotes = qs.len() as u64;
                quotes_missing = qs.iter().filter(|q| !hay.contains(&normalise(q))).count() as u64;
            }
            Outcome {
                error: false,
                latency_s: started.elapsed().as_secs_f64(),
                output_tokens: tokens as u64,
                mean_logprob: lp,
                json_ok: t
                    .json
                    .then(|| parsed.is_some() && finish != FinishReason::Length),
                labels,
                quotes,
                quotes_missing,
                format: Some(hone_ops::baseline::classify(
                    text,
                    finish == FinishReason::Length,
                )),
            }
        }
    };
    d.record(&t.version, &o);
}

/// Keys whose string values (or arrays of strings) quote the input: evidence in review and
/// extraction outputs.
const QUOTE_KEYS: &[&str] = &["quote", "quotes", "evidence", "evidence_text", "span_text"];

/// The quotes of a JSON answer (at most 64, each at least 3 characters).
fn collect_quotes(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if QUOTE_KEYS.contains(&k.as_str()) {
                    let items: Vec<&Value> = match x {
                        Value::Array(a) => a.iter().collect(),
                        other => vec![other],
                    };
                    for it in items {
                        if let Value::String(q) = it {
                            if q.trim().chars().count() >= 3 && out.len() < 64 {
                                out.push(q.clone());
                            }
                        }
                    }
                } else {
                    collect_quotes(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_quotes(x, out)),
        _ => {}
    }
}

/// Lower case, whitespace runs as one space, surrounding quotes and dots dropped: a quote
/// counts as found when it occurs in the input so normalised.
fn normalise(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
        .trim_matches(|c: char| matches!(c, '"' | '\'' | '.' | ' '))
        .to_string()
}

/// The string values of `label` keys anywhere in a JSON answer (review outputs), at most 64.
fn collect_labels(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match x {
                    Value::String(s) if k == "label" && out.len() < 64 => out.push(s.clone()),
                    _ => collect_labels(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_labels(x, out)),
        _ => {}
    }
}

fn finish_choice(chat: bool, finish: FinishReason) -> Value {
    if chat {
        json!({"index": 0, "delta": {}, "logprobs": Value::Null, "finish_reason": finish.as_str()})
    } else {
        json!({"index": 0, "text": "", "logprobs": Value::Null, "finish_reason": finish.as_str()})
    }
}

async fn models(State(st): State<Shared>, headers: HeaderMap) -> Response {
    let started = Instant::now();
    let resp = (|| -> Result<Response> {
        check_key(&headers, st.config.api_key.as_deref())?;
        let mut data = vec![json!({"id": st.config.model_name, "object": "model",
                                   "created": st.created, "owned_by": "hone", "parent": Value::Null})];
        let map = st
            .adapters
            .read()
            .map_err(|_| ServeError::Internal("adapter registry lock poisoned".into()))?;
        for (name, e) in map.iter() {
            data.push(json!({"id": name, "object": "model", "created": e.created,
                             "owned_by": "hone", "parent": st.config.model_name}));
        }
        if let Some(d) = &st.deployments {
            for (name, updated) in d.names() {
                data.push(json!({"id": name, "object": "model", "created": updated,
                                 "owned_by": "hone", "parent": st.config.model_name}));
            }
        }
        Ok(Json(json!({"object": "list", "data": data})).into_response())
    })()
    .unwrap_or_else(|e| ApiError(e).into_response());
    done(&st, "models", started, resp)
}

async fn load_adapter(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let st2 = st.clone();
    let resp = async move {
        check_admin(&headers, st2.config.admin_key.as_deref(), "adapter loading")?;
        let bytes = body_bytes(body, st2.config.max_body_bytes)?;
        let m = openai::parse_body(&bytes)?;
        let name = m
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| ServeError::bad("name", "`name` is required"))?
            .to_string();
        let rel = m
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| ServeError::bad("path", "`path` is required"))?
            .to_string();
        let replace = match m.get("replace") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(ServeError::bad("replace", "`replace` is true or false")),
        };
        check_name(&name)?;
        let dir = resolve_under_roots(&st2.config.adapter_roots, &rel)?;
        let st3 = st2.clone();
        let name2 = name.clone();
        let replaced =
            tokio::task::spawn_blocking(move || st3.add_adapter(&name2, &dir, replace, &rel))
                .await
                .map_err(|e| ServeError::Internal(e.to_string()))??;
        Ok::<_, ServeError>(
            (
                if replaced {
                    StatusCode::OK
                } else {
                    StatusCode::CREATED
                },
                Json(json!({"id": name, "object": "model", "parent": st2.config.model_name})),
            )
                .into_response(),
        )
    }
    .await
    .unwrap_or_else(|e| ApiError(e).into_response());
    done(&st, "adapters", started, resp)
}

async fn unload_adapter(
    State(st): State<Shared>,
    headers: HeaderMap,
    UrlPath(name): UrlPath<String>,
) -> Response {
    let started = Instant::now();
    let resp = (|| -> Result<Response> {
        check_admin(
            &headers,
            st.config.admin_key.as_deref(),
            "adapter unloading",
        )?;
        st.unload_adapter(&name)?;
        Ok(Json(json!({"id": name, "object": "model", "deleted": true})).into_response())
    })()
    .unwrap_or_else(|e| ApiError(e).into_response());
    done(&st, "adapters", started, resp)
}

async fn health(State(st): State<Shared>) -> Response {
    if st.engine.is_alive() {
        (StatusCode::OK, Json(json!({"status": "ok"}))).into_response()
    } else {
        ApiError(ServeError::Unavailable("the engine has stopped".into())).into_response()
    }
}

async fn metrics(State(st): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(e) = check_key(&headers, st.config.metrics_key.as_deref()) {
        return ApiError(e).into_response();
    }
    if let Some(d) = &st.deployments {
        // the drift p-values are computed when they are asked for, not per request
        let d = d.clone();
        let _ = tokio::task::spawn_blocking(move || d.update_drift_gauges()).await;
    }
    (
        [(header::CONTENT_TYPE, Metrics::content_type())],
        st.metrics.render(),
    )
        .into_response()
}

/// How often a server checks the store for deployment changes (another replica's, the CLI's)
/// and judges its canaries.
pub const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// Keeps the deployments current and judged until the process ends.
async fn watch_deployments(d: Arc<Deployments>) {
    let mut tick = tokio::time::interval(WATCH_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let d = d.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(e) = d.sync(false) {
                tracing::warn!("deployments not refreshed: {e}");
            }
            d.judge();
        })
        .await;
    }
}

/// Serves until `shutdown` resolves, then drains in-flight requests (for at most
/// `config.conn.shutdown_deadline`, then their connections are dropped) and stops the engine.
pub async fn serve(
    state: Shared,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone());
    if let Some(d) = state.deployments.clone() {
        tokio::spawn(watch_deployments(d));
    }
    crate::conn::serve_connections(
        listener,
        app,
        state.config.conn.clone(),
        state.metrics.clone(),
        shutdown,
    )
    .await?;
    let st = state.clone();
    tokio::task::spawn_blocking(move || {
        st.engine.shutdown();
        // what is queued is written before the server returns
        if let Some(log) = &st.request_log {
            log.shutdown();
        }
    })
    .await
    .map_err(std::io::Error::other)?;
    Ok(())
}
