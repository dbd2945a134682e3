//! The HTTP surface of the local stack: the GitHub webhook and `/metrics` here, and the
//! read and operator API and the Alertmanager hook of [`vaia_api`] (shared with the `api`
//! Lambda function).

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::sync::Arc;
use tower_http::limit::RequestBodyLimitLayer;
use vaia_api::{ApiError, ApiState};
use vaia_webhook::{Webhook, WebhookRequest, MAX_BODY_BYTES};

use crate::metrics::PromMetrics;

pub use vaia_api::{RunDetail, RunList, RunSummary, OPENAPI};

#[derive(Clone)]
pub struct AppState {
    pub webhook: Arc<Webhook>,
    pub api: ApiState,
    pub metrics: Arc<PromMetrics>,
    /// Queues whose depth `/metrics` reports.
    pub queues: Arc<Vec<String>>,
    /// `POST /hooks/alertmanager` (rollback on alerts).
    pub alerts: vaia_api::alertmanager::HookState,
}

/// Every route of the local stack, every answer JSON (a 404 for unknown paths).
pub fn router(state: AppState) -> Router {
    vaia_api::served(routes(state))
}

/// Every route of the local stack, without a fallback.
pub fn routes(state: AppState) -> Router {
    let local = Router::new()
        .route(
            "/webhooks/github",
            post(webhook)
                .layer::<_, std::convert::Infallible>(DefaultBodyLimit::max(MAX_BODY_BYTES + 1))
                // Refuses a declared Content-Length over the limit before reading.
                .layer::<_, std::convert::Infallible>(RequestBodyLimitLayer::new(
                    MAX_BODY_BYTES + 1,
                )),
        )
        .route("/metrics", get(metrics))
        .with_state(state.clone());
    vaia_api::router(state.api)
        .merge(local)
        .merge(vaia_api::alertmanager::router(state.alerts))
}

async fn webhook(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let headers: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let res = s
        .webhook
        .handle(&WebhookRequest {
            headers: &headers,
            body: &body,
        })
        .await;
    if res.status == 401 {
        s.metrics.signature_failure();
    }
    let status = StatusCode::from_u16(res.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(res.body)).into_response()
}

async fn metrics(State(s): State<AppState>) -> Result<Response, ApiError> {
    let text = s
        .metrics
        .render(&*s.api.store, &*s.api.blobs, &*s.api.queue, &s.queues)
        .await?;
    Ok(vaia_api::metrics::exposition(text))
}
