//! The read and operator API of vaia over the ports: runs (list, detail with events and
//! verdicts), approve and rollback, evidence upload, and the OpenAPI description
//! (`openapi.json`, kept beside this file and tested against live answers). The local stack
//! serves it beside the webhook and `/metrics`; on AWS the `api` function serves it behind
//! the HTTP API (IAM-authorised). Every answer is JSON; errors are `{"error": message}`.
//! The Alertmanager hook (rollback on alerts) is in [`alertmanager`].

pub mod alertmanager;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use tower_http::limit::RequestBodyLimitLayer;
use vaia_core::messages::{send_signal, Signal};
use vaia_core::ports::{BlobStore, Bounded, PortError, Queue, RunCursor, RunStore};
use vaia_core::run::{Run, RunEvent};
use vaia_core::{BlobKey, CommitSha, GateName, Repository, RunId, Verdict};

pub mod auth;
pub mod ct;
pub mod feed;
pub mod metrics;
pub mod registry;

pub const OPENAPI: &str = include_str!("openapi.json");

/// What the routers' unit tests share.
#[cfg(test)]
pub(crate) mod test_support {
    #![allow(clippy::unwrap_used)]
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::Router;
    use serde_json::Value;
    use tower::ServiceExt;

    /// `GET path` on `app`: the status and the JSON body.
    pub async fn get(app: &Router, path: &str) -> (StatusCode, Value) {
        let res = app
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = res.status();
        let body = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }
}

/// Largest evidence file accepted by `PUT /api/evidence/...` (what a manifest may list).
pub const MAX_EVIDENCE_BYTES: usize = vaia_core::evidence::MAX_FILE_BYTES as usize;
pub use vaia_core::evidence::MAX_BUNDLE_BYTES;
/// Uploads held in memory at once; more wait their turn (TCP holds the rest of their
/// bodies back), so uploads need at most this many times [`MAX_EVIDENCE_BYTES`].
pub const CONCURRENT_UPLOADS: usize = 2;
static UPLOADS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(CONCURRENT_UPLOADS);

/// The ports the API reads and writes through.
#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<dyn RunStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub queue: Arc<dyn Queue>,
}

/// The `/api` routes and `/healthz`, without a fallback (serve them through [`served`],
/// after merging any other routes).
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/runs", get(list_runs))
        .route("/api/runs/{id}", get(show_run))
        .route("/api/runs/{id}/approve", post(approve))
        .route("/api/runs/{id}/rollback", post(rollback))
        .route("/api/runs/{id}/retry", post(retry))
        .route(
            "/api/evidence/{owner}/{repo}/{commit}/{file}",
            put(upload_evidence)
                .layer::<_, std::convert::Infallible>(DefaultBodyLimit::max(MAX_EVIDENCE_BYTES))
                // Refuses a declared Content-Length over the limit before reading.
                .layer::<_, std::convert::Infallible>(RequestBodyLimitLayer::new(
                    MAX_EVIDENCE_BYTES,
                ))
                .layer::<_, std::convert::Infallible>(axum::middleware::map_response(
                    name_the_upload_limit,
                )),
        )
        .route("/api/openapi.json", get(openapi))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .with_state(state.clone())
        .merge(ct::router(state.clone()))
        .merge(registry::router(state))
}

/// A JSON error body: `{"error": message}`.
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

/// A storage fault is the server's business: the caller learns whether to retry, the log
/// gets the detail (which may name paths, tables or buckets).
impl From<PortError> for ApiError {
    fn from(e: PortError) -> Self {
        tracing::error!(error = %e, "storage error answering an API request");
        if e.is_retryable() {
            ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage is unavailable; retry later".into(),
            )
        } else {
            ApiError(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal error reading or writing storage (logged)".into(),
            )
        }
    }
}

fn bad_request(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

/// A run as the list shows it.
#[derive(Debug, Serialize, Deserialize)]
pub struct RunSummary {
    pub id: RunId,
    pub repository: Repository,
    pub commit: CommitSha,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// What started the run: `push`, `workflow_run`, `evidence` or `manual`.
    #[serde(default)]
    pub trigger: String,
    pub state: vaia_core::PipelineState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub gates: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Run> for RunSummary {
    fn from(r: &Run) -> Self {
        Self {
            id: r.id.clone(),
            repository: r.repository.clone(),
            commit: r.commit.clone(),
            branch: r.branch.clone(),
            trigger: r.trigger.kind.clone(),
            state: r.state,
            version: r.candidate.version.as_ref().map(ToString::to_string),
            gates: r
                .verdicts
                .iter()
                .map(|(g, v)| (g.to_string(), v.outcome.as_str().to_string()))
                .collect(),
            failure: r.failure.as_ref().map(|f| f.reason.clone()),
            created_at: r.created_at.to_rfc3339(),
            updated_at: r.updated_at.to_rfc3339(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RunList {
    pub runs: Vec<RunSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<usize>,
    after: Option<String>,
}

async fn list_runs(
    State(s): State<ApiState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<RunList>, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(bad_request(format!(
            "query parameter limit: {limit} is not within 1..=500"
        )));
    }
    let after = q
        .after
        .as_deref()
        .map(RunCursor::parse)
        .transpose()
        .map_err(|e| bad_request(format!("query parameter after: {e}")))?;
    let page = s.store.list(limit, after.as_ref()).await?;
    Ok(Json(RunList {
        runs: page.runs.iter().map(RunSummary::from).collect(),
        next: page.next.as_ref().map(RunCursor::to_string),
    }))
}

#[derive(Debug, Serialize, Deserialize)]
pub struct RunDetail {
    pub run: Run,
    pub events: Vec<RunEvent>,
    /// Full verdicts (with findings) by gate.
    pub verdicts: BTreeMap<String, Verdict>,
}

fn parse_run_id(id: &str) -> Result<RunId, ApiError> {
    RunId::new(id).map_err(|e| bad_request(format!("path parameter id: {e}")))
}

async fn load(s: &ApiState, id: &str) -> Result<Run, ApiError> {
    let id = parse_run_id(id)?;
    s.store
        .get(&id)
        .await?
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("run {id} not found")))
}

async fn show_run(
    State(s): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<RunDetail>, ApiError> {
    let run = load(&s, &id).await?;
    let mut events = s.store.events(&run.id).await?;
    let verdicts = vaia_core::gate_job::full_verdicts(&*s.blobs, &run, &events)
        .await?
        .into_iter()
        .map(|(gate, verdict)| (gate.to_string(), verdict))
        .collect();
    // The full verdicts are in `verdicts`; the events that keep them need not repeat them.
    for event in &mut events {
        event.verdict = None;
    }
    Ok(Json(RunDetail {
        run,
        events,
        verdicts,
    }))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    #[serde(default)]
    actor: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    /// The gate to run again (`/retry` only).
    #[serde(default)]
    gate: Option<String>,
}

/// The operator request a route makes of its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Approve,
    Rollback,
    Retry,
}

impl Action {
    /// The signal, with the body's reason or a default naming `actor`; `Err` is a 400.
    fn signal(self, b: &ActionBody, actor: &str) -> Result<Signal, ApiError> {
        let reason = |what: &str| {
            b.reason
                .clone()
                .unwrap_or_else(|| format!("{what} requested by {actor}"))
        };
        match (self, &b.gate) {
            (Action::Retry, Some(gate)) => Ok(Signal::RetryGate {
                gate: GateName::new(gate.as_str())
                    .map_err(|e| bad_request(format!("request body: $.gate: {e}")))?,
                reason: reason("retry"),
            }),
            (Action::Retry, None) => Err(bad_request(
                "request body: $.gate is required: the gate to run again",
            )),
            (_, Some(_)) => Err(bad_request("request body: $.gate applies to /retry only")),
            (Action::Approve, None) => Ok(Signal::Approve),
            (Action::Rollback, None) => Ok(Signal::Rollback {
                reason: reason("rollback"),
            }),
        }
    }
}

/// Longest `actor` of an operator request, in bytes: a name, not a document.
pub const MAX_ACTOR_BYTES: usize = 128;
/// Longest `reason` of an operator request, in bytes.
pub const MAX_REASON_BYTES: usize = 2048;

fn action_body(body: &Bytes) -> Result<ActionBody, ApiError> {
    if body.is_empty() {
        return Ok(ActionBody::default());
    }
    let b: ActionBody =
        serde_json::from_slice(body).map_err(|e| bad_request(format!("request body: {e}")))?;
    let check = |field: &str, value: Option<&str>, max: usize| match value {
        Some(v) if v.len() > max => Err(bad_request(format!(
            "request body: $.{field} is {} bytes, at most {max} are accepted",
            v.len()
        ))),
        Some(v) if v.chars().any(char::is_control) && field == "actor" => Err(bad_request(
            format!("request body: $.{field} must not contain control characters"),
        )),
        _ => Ok(()),
    };
    check("actor", b.actor.as_deref(), MAX_ACTOR_BYTES)?;
    check("reason", b.reason.as_deref(), MAX_REASON_BYTES)?;
    Ok(b)
}

async fn operator_signal(
    s: &ApiState,
    id: &str,
    body: &Bytes,
    action: Action,
    caller: Option<auth::Caller>,
) -> Result<Response, ApiError> {
    let run = load(s, id).await?;
    let b = action_body(body)?;
    // An authenticated caller is named by its token; the body's actor is only a label
    // when authentication is off.
    let who = match caller.and_then(|c| c.name) {
        Some(name) => format!("token:{name}"),
        None => b.actor.clone().unwrap_or_else(|| "api".to_string()),
    };
    let actor = format!("operator:{who}");
    let signal = action.signal(&b, &actor)?;
    // Each operator request is its own message: two approvals are two requests.
    let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    let dedupe = format!("{}:{nanos}", signal.name());
    let id = send_signal(&*s.queue, &run.id, None, &actor, signal, &dedupe).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"status": "accepted", "run_id": run.id, "message_id": id})),
    )
        .into_response())
}

async fn approve(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    caller: Option<Extension<auth::Caller>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    operator_signal(&s, &id, &body, Action::Approve, caller.map(|c| c.0)).await
}

/// Runs again the gate whose `error` or `inconclusive` verdict failed the run (the
/// orchestrator refuses, and logs, any other retry).
async fn retry(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    caller: Option<Extension<auth::Caller>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    operator_signal(&s, &id, &body, Action::Retry, caller.map(|c| c.0)).await
}

async fn rollback(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    caller: Option<Extension<auth::Caller>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    operator_signal(&s, &id, &body, Action::Rollback, caller.map(|c| c.0)).await
}

/// Stores one file of an evidence bundle, or the whole bundle as one archive
/// (`bundle.tar`, [`vaia_core::evidence::ARCHIVE_FILE`]). A bundle whose manifest or
/// archive is stored is sealed ([`vaia_core::evidence::SEALING_FILES`]): the registry
/// verifies it as uploaded, and later writes could change what gates judge, so only a
/// byte-identical re-upload (a retried CI step) is accepted. A bundle may hold
/// [`MAX_BUNDLE_BYTES`] in all; one request, an archive too, at most
/// [`MAX_EVIDENCE_BYTES`] (a larger archive goes to the bucket directly).
async fn upload_evidence(
    State(s): State<ApiState>,
    Path((owner, repo, commit, file)): Path<(String, String, String, String)>,
    body: axum::body::Body,
) -> Result<Response, ApiError> {
    let repo = Repository::new(format!("{owner}/{repo}"))
        .map_err(|e| bad_request(format!("path: {e}")))?;
    let commit = CommitSha::new(commit).map_err(|e| bad_request(format!("path: {e}")))?;
    let key =
        BlobKey::evidence(&repo, &commit, &file).map_err(|e| bad_request(format!("path: {e}")))?;
    let _permit = UPLOADS
        .acquire()
        .await
        .map_err(|_| ApiError(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into()))?;
    let body = axum::body::to_bytes(body, MAX_EVIDENCE_BYTES)
        .await
        .map_err(|e| {
            ApiError(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "{file}: reading the body failed or it is over {MAX_EVIDENCE_BYTES} bytes: {e}"
                ),
            )
        })?;
    let mut sealed = false;
    for sealing in vaia_core::evidence::SEALING_FILES {
        let sealing = BlobKey::evidence(&repo, &commit, sealing)
            .map_err(|e| bad_request(format!("path: {e}")))?;
        // Whether it exists, without reading it (a limit of 0 bytes).
        if s.blobs.get_at_most(&sealing, 0).await?.is_some() {
            sealed = true;
            break;
        }
    }
    if sealed {
        let stored = match s.blobs.get_at_most(&key, MAX_EVIDENCE_BYTES as u64).await? {
            Some(Bounded::Bytes(stored)) => Some(stored),
            _ => None,
        };
        return match stored {
            Some(stored) if stored == body || same_manifest(&key, &stored, &body) => {
                // The stored bytes are written again, unchanged, so the object-created
                // event goes out again: if the process died between storing the file and
                // announcing it, the retry is what lets the registry see it.
                s.blobs.put(&key, &stored).await?;
                Ok((
                    StatusCode::OK,
                    Json(json!({"key": key, "size": stored.len(), "unchanged": true})),
                )
                    .into_response())
            }
            _ => Err(ApiError(
                StatusCode::CONFLICT,
                format!(
                    "the evidence bundle of {repo}@{commit} is sealed (its manifest or \
                     archive is uploaded): {file} cannot change; push a new commit instead"
                ),
            )),
        };
    }
    let prefix = format!("evidence/{repo}/{commit}/");
    let others: u64 = s
        .blobs
        .list(&prefix)
        .await?
        .iter()
        .filter(|b| b.key != key)
        .map(|b| b.size)
        .sum();
    if others + body.len() as u64 > MAX_BUNDLE_BYTES {
        return Err(ApiError(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the evidence bundle of {repo}@{commit} would hold {} bytes, over its quota \
                 of {MAX_BUNDLE_BYTES}",
                others + body.len() as u64
            ),
        ));
    }
    let event = s.blobs.put(&key, &body).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"key": event.key, "size": event.size})),
    )
        .into_response())
}

/// The body-limit layers' 413 (plain text, no limit named) as the evidence route's own:
/// JSON naming [`MAX_EVIDENCE_BYTES`] and where a larger bundle goes.
async fn name_the_upload_limit(response: Response) -> Response {
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if response.status() != StatusCode::PAYLOAD_TOO_LARGE || is_json {
        return response;
    }
    ApiError(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "the body is over {MAX_EVIDENCE_BYTES} bytes, the most one evidence upload (a file \
             or a whole {archive}) may hold; upload a larger {archive} to the evidence bucket \
             directly",
            archive = vaia_core::evidence::ARCHIVE_FILE
        ),
    )
    .into_response()
}

/// A re-sent manifest that says what the stored one says: a retried upload step that
/// wrote a new `created_at`. Anything else in it differing is a change.
fn same_manifest(key: &BlobKey, stored: &[u8], sent: &[u8]) -> bool {
    use vaia_core::evidence::{Manifest, MANIFEST_FILE};
    if !key.as_str().ends_with(&format!("/{MANIFEST_FILE}")) {
        return false;
    }
    match (
        Manifest::parse(stored, key.as_str()),
        Manifest::parse(sent, key.as_str()),
    ) {
        (Ok(stored), Ok(mut sent)) => {
            sent.created_at = stored.created_at;
            sent == stored
        }
        _ => false,
    }
}

async fn openapi() -> Response {
    ([("content-type", "application/json")], OPENAPI).into_response()
}

/// A 404 body for unknown paths, so every answer of the API is JSON.
pub async fn not_found() -> ApiError {
    ApiError(StatusCode::NOT_FOUND, "no such route".into())
}

/// `app` as it is served: a JSON 404 for unknown paths, and every error answer in JSON
/// (`{"error": ...}`), including the plain-text rejections axum's extractors and layers
/// produce (a bad query string, a body over its limit, a wrong method).
pub fn served(app: Router) -> Router {
    with_json_errors(app.fallback(not_found))
}

/// `app` with every error answer in JSON, keeping whatever fallback it has.
pub fn with_json_errors(app: Router) -> Router {
    app.layer(axum::middleware::map_response(json_errors))
}

/// Largest plain-text error body turned into JSON; rejections are a line or two.
const MAX_REJECTION_BYTES: usize = 16 * 1024;

async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, MAX_REJECTION_BYTES).await {
        Ok(b) if !b.is_empty() => String::from_utf8_lossy(&b).trim().to_string(),
        _ => parts
            .status
            .canonical_reason()
            .unwrap_or("error")
            .to_string(),
    };
    let mut out = ApiError(status, text).into_response();
    for (name, value) in &parts.headers {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

#[cfg(test)]
mod upload_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;
    use vaia_core::memory::{ManualClock, MemoryBlobStore, MemoryQueue, MemoryRunStore};

    fn app() -> Router {
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        served(router(ApiState {
            store: Arc::new(MemoryRunStore::new()),
            blobs: Arc::new(MemoryBlobStore::new(None)),
            queue: Arc::new(MemoryQueue::new(clock, 5)),
        }))
    }

    async fn put(app: &Router, file: &str, body: Body, length: Option<usize>) -> (u16, String) {
        let mut req = Request::put(format!(
            "/api/evidence/octo/agent/{}/{file}",
            "c".repeat(40)
        ));
        if let Some(n) = length {
            req = req.header("content-length", n);
        }
        let res = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
        let status = res.status().as_u16();
        let body = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn an_archive_seals_its_bundle() {
        let app = app();
        let archive = vaia_core::evidence::archive::pack(b"{}", &[("tools.json", b"[]")]).unwrap();
        let (status, body) = put(&app, "bundle.tar", Body::from(archive.clone()), None).await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = put(&app, "bundle.tar", Body::from(archive), None).await;
        assert_eq!(status, 200, "an identical re-upload: {body}");
        let other = vaia_core::evidence::archive::pack(b"{}", &[("tools.json", b"[1]")]).unwrap();
        let (status, body) = put(&app, "bundle.tar", Body::from(other), None).await;
        assert_eq!(status, 409, "{body}");
        assert!(
            body.contains("is sealed (its manifest or archive is uploaded)"),
            "{body}"
        );
        for (file, body) in [("tools.json", "[1]"), ("manifest.json", "{}")] {
            let (status, answer) = put(&app, file, Body::from(body), None).await;
            assert_eq!(status, 409, "{file}: {answer}");
        }
    }

    #[tokio::test]
    async fn an_archive_over_the_upload_limit_is_413_naming_it() {
        let (status, body) = put(
            &app(),
            "bundle.tar",
            Body::from("x"),
            Some(MAX_EVIDENCE_BYTES + 1),
        )
        .await;
        assert_eq!(status, 413, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .contains(&format!("over {MAX_EVIDENCE_BYTES} bytes")),
            "{v}"
        );
    }
}
