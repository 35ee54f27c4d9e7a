//! The admin API: the registry and deployments over HTTP, the same operations as `hone
//! registry` and `hone deploy` (which use it with `--server URL`). Every endpoint needs the
//! admin key (`Authorization: Bearer KEY`); a server started without one refuses them all (403).
//!
//! - `GET /admin/versions[?name=N]`, `POST /admin/versions` (`{"name", "path", "notes"}`, the
//!   path under the adapter folders), `GET|DELETE /admin/versions/{name}/{n}`
//! - `GET /admin/deployments/{name}` (status with live numbers), `POST` the same with
//!   `{"action": "deploy", "version": N, "canary": PERCENT|null}`, `{"action": "promote"}` or
//!   `{"action": "rollback"}`; `PUT /admin/deployments/{name}/policy` (TOML body);
//!   `GET /admin/deployments/{name}/events?limit=N`
//! - `GET /admin/review`: the review page (it holds no data: it asks for the admin key and
//!   calls the two endpoints below with it), `GET /admin/review/items?pending=true&limit=N`
//!   (`{"data": [items], "checks": [{"id", "name", "statement"}]}`, the NDA checks for review
//!   items), `POST /admin/review/items/{id}` (`{"mark": "correct"|"wrong"|"critical",
//!   "corrected", "note"}`; a review item's `corrected` must be a valid review answer, see
//!   `hone_ops::review_doc`, else 400 naming the field, e.g. `corrected.checks.nda-3.evidence[1]`)

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use hone_ops::policy::Policy;
use hone_ops::{registry, VersionRef};
use serde_json::{json, Value};

use crate::auth::check_admin;
use crate::deployments::Deployments;
use crate::error::{Result, ServeError};
use crate::server::{body_bytes, done, resolve_under_roots, ApiError, AppState};

type Shared = Arc<AppState>;

pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/admin/versions", get(list_versions).post(add_version))
        .route(
            "/admin/versions/:name/:n",
            get(show_version).delete(remove_version),
        )
        .route("/admin/deployments/:name", get(status).post(act))
        .route("/admin/deployments/:name/policy", put(set_policy))
        .route("/admin/deployments/:name/events", get(events))
        .route("/admin/review", get(review_page))
        .route("/admin/review/items", get(review_items))
        .route("/admin/review/items/:id", axum::routing::post(mark_review))
}

/// The admin key must be configured and sent: without one configured the admin API is off
/// (403), never open, and the API key does not stand in for it.
fn authorize(st: &AppState, headers: &HeaderMap) -> Result<Arc<Deployments>> {
    check_admin(headers, st.config.admin_key.as_deref(), "the admin API")?;
    st.deployments.clone().ok_or_else(|| {
        ServeError::NotFound("this server has no registry store (hone serve --store)".into())
    })
}

/// Runs a blocking store operation off the async threads, answering with its JSON.
async fn run<F>(st: Shared, headers: HeaderMap, ok: StatusCode, f: F) -> Response
where
    F: FnOnce(&AppState, &Deployments) -> Result<Value> + Send + 'static,
{
    let started = Instant::now();
    let st2 = st.clone();
    let out = async move {
        let d = authorize(&st2, &headers)?;
        tokio::task::spawn_blocking(move || f(&st2, &d))
            .await
            .map_err(|e| ServeError::Internal(e.to_string()))?
    }
    .await;
    let resp = match out {
        Ok(v) => (ok, Json(v)).into_response(),
        Err(e) => ApiError(e).into_response(),
    };
    done(&st, "admin", started, resp)
}

/// [`run`] for a request with a JSON object body, read (within the body limit) and parsed
/// before `f` sees it.
async fn run_json<F>(
    st: Shared,
    headers: HeaderMap,
    ok: StatusCode,
    body: std::result::Result<Bytes, BytesRejection>,
    f: F,
) -> Response
where
    F: FnOnce(&AppState, &Deployments, serde_json::Map<String, Value>) -> Result<Value>
        + Send
        + 'static,
{
    let limit = st.config.max_body_bytes;
    run(st, headers, ok, move |st, d| {
        let bytes = body_bytes(body, limit)?;
        f(st, d, crate::openai::parse_body(&bytes)?)
    })
    .await
}

/// The `limit` query parameter: 1 to 10,000, `default` when absent.
fn limit_param(q: &HashMap<String, String>, default: usize) -> Result<usize> {
    match q.get("limit") {
        None => Ok(default),
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|&l| l > 0 && l <= 10_000)
            .ok_or_else(|| ServeError::bad("limit", "`limit` is a number from 1 to 10000")),
    }
}

fn ops(e: hone_ops::Error) -> ServeError {
    crate::deployments::ops_err(e)
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Value> {
    serde_json::to_value(v).map_err(|e| ServeError::Internal(e.to_string()))
}

fn version_ref(name: &str, n: &str) -> Result<VersionRef> {
    format!("{name}@{n}")
        .parse()
        .map_err(|e: hone_ops::Error| ServeError::bad("version", e.to_string()))
}

async fn list_versions(
    State(st): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    run(st, headers, StatusCode::OK, move |_, d| {
        let v = d
            .store()
            .versions(q.get("name").map(String::as_str))
            .map_err(ops)?;
        Ok(json!({"data": to_json(&v)?}))
    })
    .await
}

async fn add_version(
    State(st): State<Shared>,
    headers: HeaderMap,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    run_json(st, headers, StatusCode::CREATED, body, move |st, d, m| {
        let field = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
        let name = field("name").ok_or_else(|| ServeError::bad("name", "`name` is required"))?;
        let rel = field("path").ok_or_else(|| ServeError::bad("path", "`path` is required"))?;
        let notes = field("notes").unwrap_or_default();
        let dir = resolve_under_roots(&st.config.adapter_roots, &rel)?;
        let v = registry::add(d.store().as_ref(), &name, &dir, &notes, "admin-api").map_err(ops)?;
        to_json(&v)
    })
    .await
}

async fn show_version(
    State(st): State<Shared>,
    headers: HeaderMap,
    UrlPath((name, n)): UrlPath<(String, String)>,
) -> Response {
    run(st, headers, StatusCode::OK, move |_, d| {
        let r = version_ref(&name, &n)?;
        let v = d
            .store()
            .version(&r)
            .map_err(ops)?
            .ok_or_else(|| ServeError::NotFound(format!("{r} is not in the registry")))?;
        to_json(&v)
    })
    .await
}

async fn remove_version(
    State(st): State<Shared>,
    headers: HeaderMap,
    UrlPath((name, n)): UrlPath<(String, String)>,
) -> Response {
    run(st, headers, StatusCode::OK, move |_, d| {
        let r = version_ref(&name, &n)?;
        d.store().remove_version(&r, "admin-api").map_err(ops)?;
        Ok(json!({"id": r.to_string(), "deleted": true}))
    })
    .await
}

async fn status(
    State(st): State<Shared>,
    headers: HeaderMap,
    UrlPath(name): UrlPath<String>,
) -> Response {
    run(st, headers, StatusCode::OK, move |_, d| {
        to_json(&d.status(&name)?)
    })
    .await
}

async fn act(
    State(st): State<Shared>,
    headers: HeaderMap,
    UrlPath(name): UrlPath<String>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    run_json(st, headers, StatusCode::OK, body, move |_, d, m| {
        hone_ops::version::check_name(&name).map_err(|e| ServeError::bad("name", e.to_string()))?;
        let action = m
            .get("action")
            .and_then(Value::as_str)
            .ok_or_else(|| ServeError::bad("action", "`action` is deploy, promote or rollback"))?;
        let (dep, ev, extra) = match action {
            "deploy" => {
                let n = m
                    .get("version")
                    .and_then(Value::as_u64)
                    .filter(|&n| n > 0 && n <= u64::from(u32::MAX))
                    .ok_or_else(|| ServeError::bad("version", "`version` is a number from 1"))?;
                let canary = match m.get("canary") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(
                        v.as_f64()
                            .ok_or_else(|| ServeError::bad("canary", "`canary` is a percentage"))?,
                    ),
                };
                let (dep, ev) = d.deploy(
                    &VersionRef::new(name.clone(), n as u32),
                    canary,
                    "admin-api",
                )?;
                (dep, ev, Value::Null)
            }
            "promote" => {
                let (dep, ev) = d.promote(&name, "admin-api")?;
                (dep, ev, Value::Null)
            }
            "rollback" => {
                let (dep, ev, swap) = d.rollback(&name, "admin-api", None, None)?;
                (dep, ev, json!(swap.as_secs_f64() * 1000.0))
            }
            other => {
                return Err(ServeError::bad(
                    "action",
                    format!("unknown action `{other}` (deploy, promote, rollback)"),
                ))
            }
        };
        let mut v = json!({"deployment": to_json(&dep)?, "event": to_json(&ev)?});
        if !extra.is_null() {
            v["swap_ms"] = extra;
        }
        Ok(v)
    })
    .await
}

async fn set_policy(
    State(st): State<Shared>,
    headers: HeaderMap,
    UrlPath(name): UrlPath<String>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    let limit = st.config.max_body_bytes;
    run(st, headers, StatusCode::OK, move |_, d| {
        let bytes = body_bytes(body, limit)?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| ServeError::bad("policy", "the policy is TOML text (UTF-8)"))?;
        hone_ops::version::check_name(&name).map_err(|e| ServeError::bad("name", e.to_string()))?;
        Policy::parse(text, "policy").map_err(|e| ServeError::bad("policy", e.to_string()))?;
        d.store()
            .set_policy(&name, text, "admin-api")
            .map_err(ops)?;
        d.sync(true)?;
        Ok(json!({"ok": true}))
    })
    .await
}

async fn events(
    State(st): State<Shared>,
    headers: HeaderMap,
    UrlPath(name): UrlPath<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    run(st, headers, StatusCode::OK, move |_, d| {
        let limit = limit_param(&q, 100)?;
        let ev = d.store().events(Some(&name), limit).map_err(ops)?;
        Ok(json!({"data": to_json(&ev)?}))
    })
    .await
}

/// The review page: static, no data in it (everything it shows comes through the two
/// endpoints below, with the key the reviewer types).
async fn review_page() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("review_page.html"),
    )
        .into_response()
}

async fn review_items(
    State(st): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    run(st, headers, StatusCode::OK, move |_, d| {
        let pending = match q.get("pending").map(String::as_str) {
            None | Some("") => None,
            Some("true") => Some(true),
            Some("false") => Some(false),
            Some(_) => return Err(ServeError::bad("pending", "`pending` is true or false")),
        };
        let limit = limit_param(&q, 50)?;
        let items = d
            .store()
            .review_items(&hone_ops::review::ReviewQuery {
                pending,
                version: q.get("version").cloned(),
                id: None,
                limit,
            })
            .map_err(ops)?;
        Ok(json!({"data": to_json(&items)?, "checks": to_json(&hone_ops::review_doc::checks())?}))
    })
    .await
}

async fn mark_review(
    State(st): State<Shared>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<i64>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Response {
    run_json(st, headers, StatusCode::OK, body, move |_, d, m| {
        let mark = m
            .get("mark")
            .and_then(Value::as_str)
            .ok_or_else(|| ServeError::bad("mark", "`mark` is correct, wrong or critical"))?;
        let mark = hone_ops::review::Mark::parse(mark)
            .map_err(|e| ServeError::bad("mark", e.to_string()))?;
        let text = |k: &str| -> Result<Option<String>> {
            match m.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(ServeError::bad(k, format!("`{k}` must be a string"))),
            }
        };
        let corrected = text("corrected")?;
        if mark == hone_ops::review::Mark::Correct && corrected.is_some() {
            return Err(ServeError::bad(
                "corrected",
                "an answer marked correct keeps its text; mark it wrong to correct it",
            ));
        }
        if let Some(c) = &corrected {
            check_review_correction(d, id, c)?;
        }
        let item = d
            .store()
            .mark_review(id, mark, corrected.as_deref(), text("note")?.as_deref())
            .map_err(ops)?;
        to_json(&item)
    })
    .await
}

/// A review item's correction must read as a review answer of its document (the check ids,
/// labels and evidence spans); the error names the field. Other items take any text.
fn check_review_correction(d: &Deployments, id: i64, corrected: &str) -> Result<()> {
    use hone_ops::review_doc::{parse_answer, ReviewInput};
    let item = d
        .store()
        .review_items(&hone_ops::review::ReviewQuery {
            id: Some(id),
            limit: 1,
            ..Default::default()
        })
        .map_err(ops)?
        .pop()
        .ok_or_else(|| ServeError::NotFound(format!("no review item {id}")))?;
    if !ReviewInput::is_review(&item.input) {
        return Ok(());
    }
    let bad = |e: hone_ops::review_doc::FieldError| ServeError::bad(&e.field, e.to_string());
    let input = ReviewInput::parse(&item.input).map_err(bad)?;
    parse_answer("corrected", corrected, &input).map_err(bad)?;
    Ok(())
}
