//! The read and operator API of vaia over the ports: runs (list, detail with events and
//! verdicts), approve and rollback, evidence upload, and the OpenAPI description
//! (`openapi.json`, kept beside this file and tested against live answers). The local stack
//! serves it beside the webhook and `/metrics`; on AWS the `api` function serves it behind
//! the HTTP API (IAM-authorised). Every answer is JSON; errors are `{"error": message}`.

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
use vaia_core::messages::{send_signal, Signal};
use vaia_core::ports::{BlobStore, PortError, Queue, RunCursor, RunStore};
use vaia_core::run::{Run, RunEvent};
use vaia_core::{BlobKey, CommitSha, Repository, RunId, Verdict};

pub mod auth;

pub const OPENAPI: &str = include_str!("openapi.json");

/// Largest evidence file accepted by `PUT /api/evidence/...`.
pub const MAX_EVIDENCE_BYTES: usize = 64 * 1024 * 1024;

/// The ports the API reads and writes through.
#[derive(Clone)]
pub struct ApiState {
    pub store: Arc<dyn RunStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub queue: Arc<dyn Queue>,
}

/// The `/api` routes and `/healthz`, without a fallback (add [`not_found`] where the
/// router is served, after merging any other routes).
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/runs", get(list_runs))
        .route("/api/runs/{id}", get(show_run))
        .route("/api/runs/{id}/approve", post(approve))
        .route("/api/runs/{id}/rollback", post(rollback))
        .route(
            "/api/evidence/{owner}/{repo}/{commit}/{file}",
            put(upload_evidence).layer(DefaultBodyLimit::max(MAX_EVIDENCE_BYTES)),
        )
        .route("/api/openapi.json", get(openapi))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .with_state(state)
}

/// A JSON error body: `{"error": message}`.
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<PortError> for ApiError {
    fn from(e: PortError) -> Self {
        let status = if e.is_retryable() {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        ApiError(status, e.to_string())
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
    let events = s.store.events(&run.id).await?;
    let mut verdicts = BTreeMap::new();
    for (gate, record) in &run.verdicts {
        if let Some(bytes) = s.blobs.get(&record.verdict).await? {
            let verdict: Verdict = serde_json::from_slice(&bytes).map_err(|e| {
                ApiError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("{}: {e}", record.verdict),
                )
            })?;
            verdicts.insert(gate.to_string(), verdict);
        }
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
}

fn action_body(body: &Bytes) -> Result<ActionBody, ApiError> {
    if body.is_empty() {
        return Ok(ActionBody::default());
    }
    serde_json::from_slice(body).map_err(|e| bad_request(format!("request body: {e}")))
}

async fn operator_signal(
    s: &ApiState,
    id: &str,
    body: &Bytes,
    signal: Signal,
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
    let signal = match signal {
        Signal::Rollback { .. } => Signal::Rollback {
            reason: b
                .reason
                .unwrap_or_else(|| format!("rollback requested by {actor}")),
        },
        other => other,
    };
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
    operator_signal(&s, &id, &body, Signal::Approve, caller.map(|c| c.0)).await
}

async fn rollback(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    caller: Option<Extension<auth::Caller>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    operator_signal(
        &s,
        &id,
        &body,
        Signal::Rollback {
            reason: String::new(),
        },
        caller.map(|c| c.0),
    )
    .await
}

async fn upload_evidence(
    State(s): State<ApiState>,
    Path((owner, repo, commit, file)): Path<(String, String, String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let repo = Repository::new(format!("{owner}/{repo}"))
        .map_err(|e| bad_request(format!("path: {e}")))?;
    let commit = CommitSha::new(commit).map_err(|e| bad_request(format!("path: {e}")))?;
    let key =
        BlobKey::evidence(&repo, &commit, &file).map_err(|e| bad_request(format!("path: {e}")))?;
    let event = s.blobs.put(&key, &body).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"key": event.key, "size": event.size})),
    )
        .into_response())
}

async fn openapi() -> Response {
    ([("content-type", "application/json")], OPENAPI).into_response()
}

/// A 404 body for unknown paths, so every answer of the API is JSON.
pub async fn not_found() -> ApiError {
    ApiError(StatusCode::NOT_FOUND, "no such route".into())
}
