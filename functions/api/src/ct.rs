//! Continuous training, read: a repository's CT budget evaluations as the ct-budget
//! function records them (`ct/<owner>/<repo>/latest.json` and
//! `ct/<owner>/<repo>/evaluations/<time>.json`, [`vaia_ct_budget`]). Read-only; needs the
//! `read` role where tokens are configured.
//!
//! `GET /api/ct/{owner}/{repo}[?limit=N]`: `{"repository", "latest", "evaluations"}` with
//! the newest `limit` evaluations first ([`DEFAULT_LIMIT`], at most [`MAX_LIMIT`]). A
//! repository never evaluated is 404; a bad `limit` or repository is 400 naming it.
//!
//! `GET /api/data/{owner}/{repo}/pending`: `{"repository", "objects", "bytes"}`, the raw
//! data the data watcher counted that no retrain has consumed ([`vaia_data_watcher`]).

use crate::{bad_request, ApiError, ApiState};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use vaia_core::{BlobKey, Repository};
use vaia_ct_budget::{evaluations_prefix, latest_evaluation_key, Evaluation};

/// Evaluations returned when `limit` is not given.
pub const DEFAULT_LIMIT: usize = 20;
/// The most evaluations one answer holds.
pub const MAX_LIMIT: usize = 100;

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/ct/{owner}/{repo}", get(show))
        .route("/api/data/{owner}/{repo}/pending", get(pending))
        .with_state(state)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShowQuery {
    limit: Option<String>,
}

fn limit(q: &ShowQuery) -> Result<usize, ApiError> {
    match q.limit.as_deref() {
        None => Ok(DEFAULT_LIMIT),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(bad_request(format!(
                "query: limit {text:?} must be a whole number from 1 to {MAX_LIMIT}"
            ))),
        },
    }
}

async fn read(s: &ApiState, key: &BlobKey) -> Result<Option<Evaluation>, ApiError> {
    crate::registry::read_record(&*s.blobs, key, "CT evaluation").await
}

async fn show(
    State(s): State<ApiState>,
    Path((owner, repo)): Path<(String, String)>,
    query: Result<Query<ShowQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| bad_request(format!("query: {}", e.body_text())))?;
    let limit = limit(&query)?;
    let repo = Repository::new(format!("{owner}/{repo}"))
        .map_err(|e| bad_request(format!("path: {e}")))?;
    let latest_key = latest_evaluation_key(&repo).map_err(|e| bad_request(format!("path: {e}")))?;
    let latest = read(&s, &latest_key).await?;
    // Keys are the evaluation's time in nanoseconds, zero-padded: listed oldest first.
    let mut keys: Vec<BlobKey> = s
        .blobs
        .list(&evaluations_prefix(&repo))
        .await?
        .into_iter()
        .map(|m| m.key)
        .filter(|k| k.as_str().ends_with(".json"))
        .collect();
    keys.sort();
    let mut evaluations = Vec::new();
    for key in keys.iter().rev().take(limit) {
        // Listed then gone: removed meanwhile, not an error.
        if let Some(e) = read(&s, key).await? {
            evaluations.push(e);
        }
    }
    if latest.is_none() && evaluations.is_empty() {
        return Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no CT evaluation is recorded for {repo}"),
        ));
    }
    Ok(Json(json!({
        "repository": repo,
        "latest": latest,
        "evaluations": evaluations,
        "total": keys.len(),
    })))
}

/// A data-watcher failure as an answer: a storage fault as every storage fault, an
/// unreadable record naming it.
pub(crate) fn watch_error(e: vaia_data_watcher::WatchError) -> ApiError {
    match e {
        vaia_data_watcher::WatchError::Port(p) => ApiError::from(p),
        other => ApiError(StatusCode::INTERNAL_SERVER_ERROR, other.to_string()),
    }
}

async fn pending(
    State(s): State<ApiState>,
    Path((owner, repo)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let repo = Repository::new(format!("{owner}/{repo}"))
        .map_err(|e| bad_request(format!("path: {e}")))?;
    let v = vaia_data_watcher::pending(&*s.blobs, &repo)
        .await
        .map_err(watch_error)?;
    Ok(Json(json!({
        "repository": repo,
        "objects": v.objects,
        "bytes": v.bytes,
    })))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;
    use vaia_core::memory::{ManualClock, MemoryBlobStore, MemoryQueue, MemoryRunStore};
    use vaia_core::ports::Clock;
    use vaia_ct_budget::drift::ReportDrift;
    use vaia_ct_budget::{seed, CtBudget};

    use crate::test_support::get;

    #[tokio::test]
    async fn evaluations_newest_first_bounded() {
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let blobs = Arc::new(MemoryBlobStore::new(None));
        let queue = Arc::new(MemoryQueue::new(clock.clone(), 5));
        let state = ApiState {
            store: Arc::new(MemoryRunStore::new()),
            blobs: blobs.clone(),
            queue: queue.clone(),
        };
        let app = crate::served(crate::router(state));
        let (status, body) = get(&app, "/api/ct/octo/agent").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let repo = Repository::new("octo/agent").unwrap();
        seed::promoted(
            blobs.as_ref(),
            &repo,
            semver::Version::new(1, 0, 0),
            &"a".repeat(32),
            Some(0),
            clock.now(),
        )
        .await
        .unwrap();
        let ct = CtBudget::new(
            blobs.clone(),
            queue,
            clock.clone(),
            Default::default(),
            Arc::new(ReportDrift {
                blobs: blobs.clone(),
            }),
        );
        for i in 0..25 {
            seed::drift_report(blobs.as_ref(), &repo, f64::from(i) / 100.0, clock.now())
                .await
                .unwrap();
            ct.evaluate(&repo).await.unwrap().unwrap();
            clock.advance(Duration::from_secs(1));
        }
        let (status, body) = get(&app, "/api/ct/octo/agent").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let evals = body["evaluations"].as_array().unwrap();
        assert_eq!(evals.len(), DEFAULT_LIMIT);
        assert_eq!(body["total"], 25);
        assert_eq!(evals[0]["drift"], 0.24);
        assert_eq!(evals[1]["drift"], 0.23);
        assert_eq!(body["latest"], evals[0]);
        let (_, body) = get(&app, "/api/ct/octo/agent?limit=3").await;
        assert_eq!(body["evaluations"].as_array().unwrap().len(), 3);
        for bad in ["limit=0", "limit=101", "limit=x", "since=1"] {
            let (status, body) = get(&app, &format!("/api/ct/octo/agent?{bad}")).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
            assert!(
                body["error"].as_str().unwrap().starts_with("query: "),
                "{body}"
            );
        }
        let (status, _) = get(&app, "/api/ct/octo/..").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}
