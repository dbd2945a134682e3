//! `POST /hooks/alertmanager`: rollback on alerts. Alertmanager's webhook (payload version
//! 4) authenticated by a bearer token (`http_config.authorization`, compared in constant
//! time). Each firing alert that the rollback policy names and whose `vaia_repository`
//! label names a repository whose `prod` alias points at a PROMOTED run with an earlier
//! version to return to sends that run the operator rollback signal (PROMOTED → ROLLBACK;
//! the registry then moves `prod` back), with the alert's name, fingerprint and start time
//! as the reason. Resolved alerts, repeats (the alert started before `prod` last moved) and
//! the further alerts of a grouped notification change nothing more. Anything refused is
//! answered 200 (Alertmanager retries everything else) and logged.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;
use subtle::ConstantTimeEq;
use vaia_core::layout::{alias_key, AliasRecord, PROD_ALIAS};
use vaia_core::messages::{send_signal, Signal};
use vaia_core::monitoring::RollbackPolicy;
use vaia_core::ports::{BlobStore, PortError, Queue, RunStore};
use vaia_core::{PipelineState, Repository};

use crate::ApiError;

/// The route.
pub const PATH: &str = "/hooks/alertmanager";
/// The environment variable holding the token on the local stack.
pub const TOKEN_ENV: &str = "VAIA_ALERTMANAGER_TOKEN";
/// The label that names the repository an alert is about.
pub const REPOSITORY_LABEL: &str = "vaia_repository";
/// The actor recorded on the runs it rolls back.
pub const ACTOR: &str = "alertmanager";
/// Largest notification accepted (Alertmanager's grouped payloads are small).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The bearer token Alertmanager sends; never printed.
#[derive(Clone)]
pub struct AlertmanagerToken(String);

impl AlertmanagerToken {
    pub fn new(value: impl Into<String>) -> Result<Self, String> {
        let value = value.into();
        if value.trim().len() < 16 {
            return Err("the Alertmanager token must be at least 16 characters".into());
        }
        Ok(Self(value))
    }

    fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

impl fmt::Debug for AlertmanagerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AlertmanagerToken(<redacted>)")
    }
}

/// What the hook works over.
#[derive(Clone)]
pub struct HookState {
    pub store: Arc<dyn RunStore>,
    pub blobs: Arc<dyn BlobStore>,
    pub queue: Arc<dyn Queue>,
    /// `None`: the hook refuses every request (no token configured).
    pub token: Option<AlertmanagerToken>,
    pub policy: RollbackPolicy,
}

/// The hook's route, to merge beside [`crate::router`].
pub fn router(state: HookState) -> Router {
    Router::new()
        .route(
            PATH,
            post(hook).layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .with_state(state)
}

/// Alertmanager's webhook payload, version 4.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    pub version: String,
    #[serde(default)]
    pub group_key: String,
    #[serde(default)]
    pub truncated_alerts: u64,
    pub status: String,
    #[serde(default)]
    pub receiver: String,
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    #[serde(default, rename = "externalURL")]
    pub external_url: String,
    pub alerts: Vec<Alert>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    pub status: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub starts_at: chrono::DateTime<chrono::Utc>,
    #[serde(default)]
    pub ends_at: Option<String>,
    #[serde(default, rename = "generatorURL")]
    pub generator_url: String,
    pub fingerprint: String,
}

/// What the hook did with one alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A rollback signal went to the orchestrator.
    Rollback,
    /// Nothing to do (resolved, not a rollback alert, a repeat).
    Ignored,
    /// A rollback alert that cannot roll anything back (logged).
    Refused,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Decision {
    pub alertname: String,
    pub fingerprint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    pub action: Action,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

fn unauthorized(msg: &str) -> Response {
    (StatusCode::UNAUTHORIZED, Json(json!({ "error": msg }))).into_response()
}

async fn hook(State(s): State<HookState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(token) = &s.token else {
        tracing::warn!("alertmanager hook called but no token is configured ({TOKEN_ENV})");
        return unauthorized("the Alertmanager hook has no token configured");
    };
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match presented {
        Some(p) if token.matches(p.trim()) => {}
        Some(_) => {
            tracing::warn!("alertmanager hook: wrong bearer token");
            return unauthorized("wrong bearer token");
        }
        None => return unauthorized("Authorization: Bearer <token> is required"),
    }
    match handle(&s, &body).await {
        Ok(decisions) => (StatusCode::OK, Json(json!({ "results": decisions }))).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Parses a notification, naming where it is wrong.
pub fn parse(body: &[u8]) -> Result<Notification, String> {
    let n: Notification = serde_json::from_slice(body).map_err(|e| format!("request body: {e}"))?;
    if n.version != "4" {
        return Err(format!(
            "request body: version {:?} is not Alertmanager's webhook version 4",
            n.version
        ));
    }
    Ok(n)
}

/// Handles one notification: a decision per alert, in order.
pub async fn handle(s: &HookState, body: &[u8]) -> Result<Vec<Decision>, ApiError> {
    let n = parse(body).map_err(|e| ApiError(StatusCode::BAD_REQUEST, e))?;
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::with_capacity(n.alerts.len());
    for alert in &n.alerts {
        let d = decide(s, alert, &mut done).await?;
        match d.action {
            Action::Rollback => tracing::info!(
                alertname = %d.alertname, fingerprint = %d.fingerprint,
                repository = ?d.repository, run_id = ?d.run_id, "alert rolls back"
            ),
            Action::Refused => tracing::warn!(
                alertname = %d.alertname, fingerprint = %d.fingerprint,
                repository = ?d.repository, reason = %d.reason, "alert refused: nothing rolled back"
            ),
            Action::Ignored => tracing::debug!(
                alertname = %d.alertname, fingerprint = %d.fingerprint, reason = %d.reason, "alert ignored"
            ),
        }
        out.push(d);
    }
    Ok(out)
}

async fn decide(
    s: &HookState,
    alert: &Alert,
    done: &mut BTreeSet<String>,
) -> Result<Decision, PortError> {
    let alertname = alert.labels.get("alertname").cloned().unwrap_or_default();
    let repo_label = alert.labels.get(REPOSITORY_LABEL).cloned();
    let mut d = Decision {
        alertname: alertname.clone(),
        fingerprint: alert.fingerprint.clone(),
        repository: repo_label.clone(),
        action: Action::Ignored,
        reason: String::new(),
        run_id: None,
    };
    let ignore = |mut d: Decision, reason: String| {
        d.reason = reason;
        Ok(d)
    };
    let refuse = |mut d: Decision, reason: String| {
        d.action = Action::Refused;
        d.reason = reason;
        Ok(d)
    };
    if alert.status != "firing" {
        return ignore(d, format!("alert is {}", alert.status));
    }
    let severity = alert.labels.get("severity").map(String::as_str);
    if !s.policy.allows(&alertname, severity) {
        return ignore(
            d,
            format!(
                "{alertname} (severity {}) is not a rollback alert by policy",
                severity.unwrap_or("none")
            ),
        );
    }
    let Some(label) = repo_label else {
        return refuse(d, format!("no {REPOSITORY_LABEL} label"));
    };
    let repo = match Repository::new(label.clone()) {
        Ok(r) => r,
        Err(e) => return refuse(d, format!("label {REPOSITORY_LABEL}: {e}")),
    };
    if done.contains(repo.as_str()) {
        return ignore(
            d,
            format!("{repo} is already rolled back by an earlier alert of this notification"),
        );
    }
    let alias = match alias_key(&repo, PROD_ALIAS) {
        Ok(key) => s.blobs.get(&key).await?,
        Err(e) => return refuse(d, e.to_string()),
    };
    let Some(alias) = alias else {
        return refuse(d, format!("{repo}: unknown repository (nothing promoted)"));
    };
    let alias: AliasRecord = match serde_json::from_slice(&alias) {
        Ok(a) => a,
        Err(e) => return refuse(d, format!("{repo}: prod alias is unreadable: {e}")),
    };
    d.run_id = Some(alias.target.run_id.to_string());
    if alias.updated_at >= alert.starts_at {
        return ignore(
            d,
            format!(
                "prod of {repo} moved to {} at {}, after the alert started at {}: a repeat, or about an earlier version",
                alias.target.version,
                alias.updated_at.to_rfc3339(),
                alert.starts_at.to_rfc3339()
            ),
        );
    }
    if alias.history.is_empty() {
        return refuse(
            d,
            format!(
                "{repo}: {} is the only version ever promoted; nothing to return to",
                alias.target.version
            ),
        );
    }
    let Some(run) = s.store.get(&alias.target.run_id).await? else {
        return refuse(
            d,
            format!("run {} of prod is not in the store", alias.target.run_id),
        );
    };
    if run.state != PipelineState::Promoted {
        return refuse(d, format!("run {} is {}, not PROMOTED", run.id, run.state));
    }
    if run.rollback.is_some() {
        return ignore(
            d,
            format!("run {} already has a rollback requested", run.id),
        );
    }
    let starts = alert.starts_at.to_rfc3339();
    let reason = format!(
        "alert {alertname} fired (fingerprint {}, started {starts}){}",
        alert.fingerprint,
        alert
            .annotations
            .get("summary")
            .map(|s| format!(": {s}"))
            .unwrap_or_default()
    );
    send_signal(
        &*s.queue,
        &run.id,
        Some(PipelineState::Promoted),
        ACTOR,
        Signal::Rollback { reason },
        &format!("alert:{}:{starts}", alert.fingerprint),
    )
    .await?;
    done.insert(repo.to_string());
    d.action = Action::Rollback;
    d.reason = format!(
        "rolling {} back from {} to {}",
        repo, alias.target.version, alias.history[0].version
    );
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_compares_and_never_prints() {
        let t = AlertmanagerToken::new("s3cret-token-0123456789").unwrap();
        assert!(t.matches("s3cret-token-0123456789"));
        assert!(!t.matches("s3cret-token-012345678"));
        assert!(!format!("{t:?}").contains("s3cret"));
        assert!(AlertmanagerToken::new("short").is_err());
    }

    #[test]
    fn parse_names_what_is_wrong() {
        assert!(parse(b"{").unwrap_err().contains("request body"));
        let e = parse(br#"{"version":"3","status":"firing","alerts":[]}"#).unwrap_err();
        assert!(e.contains("version 4"), "{e}");
        let e = parse(br#"{"version":"4","status":"firing","alerts":[{"status":"firing"}]}"#)
            .unwrap_err();
        assert!(e.contains("startsAt") || e.contains("fingerprint"), "{e}");
    }
}
