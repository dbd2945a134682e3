//! The GitHub status adapter against a local server that checks what GitHub documents for
//! `POST /repos/{owner}/{repo}/statuses/{sha}`: the path, `Authorization: Bearer`,
//! `Accept: application/vnd.github+json`, `X-GitHub-Api-Version`, a `User-Agent`, and a body
//! with `state` (pending/success/failure/error), `context`, `description` (≤ 140) and
//! `target_url`. It answers 500, then 429 with `Retry-After: 1`, then 201: the post is
//! retried and waits as told. A bad token is refused once, not retried.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vaia_core::delivery::{post_status, CommitStatus, Retry, StatusError, StatusState};
use vaia_core::{CommitSha, Repository};
use vaia_delivery::github::GitHubStatuses;

#[derive(Default)]
struct Seen {
    calls: Vec<(Instant, serde_json::Value)>,
    problems: Vec<String>,
}

async fn statuses(
    State(seen): State<Arc<Mutex<Seen>>>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> impl IntoResponse {
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let mut seen = seen.lock().unwrap();
    let mut problem = |p: String| seen_problem(&mut seen.problems, p);
    if (owner.as_str(), repo.as_str()) != ("acme", "agent") || sha.len() != 40 {
        problem(format!("path /repos/{owner}/{repo}/statuses/{sha}"));
    }
    if h("accept") != "application/vnd.github+json" {
        problem(format!("accept {:?}", h("accept")));
    }
    if h("x-github-api-version") != "2022-11-28" {
        problem("x-github-api-version".into());
    }
    if h("user-agent").is_empty() {
        problem("no user-agent".into());
    }
    let state = body["state"].as_str().unwrap_or("");
    if !["pending", "success", "failure", "error"].contains(&state) {
        problem(format!("state {state:?}"));
    }
    if !body["context"].as_str().unwrap_or("").starts_with("vaia/")
        || body["description"]
            .as_str()
            .is_none_or(|d| d.chars().count() > 140)
        || !body["target_url"]
            .as_str()
            .unwrap_or("")
            .starts_with("https://")
    {
        problem(format!("body {body}"));
    }
    let token = h("authorization");
    seen.calls.push((Instant::now(), body));
    if token == "Bearer bad-token" {
        return (
            StatusCode::UNAUTHORIZED,
            HeaderMap::new(),
            "{\"message\":\"Bad credentials\"}",
        );
    }
    if token != "Bearer good-token" {
        seen_problem(&mut seen.problems, "authorization".into());
    }
    let mut out = HeaderMap::new();
    match seen.calls.len() {
        1 => (StatusCode::INTERNAL_SERVER_ERROR, out, "{}"),
        2 => {
            out.insert("retry-after", "1".parse().unwrap());
            (StatusCode::TOO_MANY_REQUESTS, out, "{}")
        }
        _ => (StatusCode::CREATED, out, "{}"),
    }
}

fn seen_problem(problems: &mut Vec<String>, p: String) {
    problems.push(p);
}

async fn server() -> (String, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let app = Router::new()
        .route("/repos/{owner}/{repo}/statuses/{sha}", post(statuses))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

fn status() -> CommitStatus {
    CommitStatus {
        state: StatusState::Success,
        target_url: Some("https://vaia.example/api/runs/r1".into()),
        description: "promoted as 0.1.0".into(),
        context: "vaia/run".into(),
    }
}

#[tokio::test]
async fn posts_as_github_documents_retrying_5xx_and_429_after_retry_after() {
    let (url, seen) = server().await;
    let gh = GitHubStatuses::new(&url, "good-token".into(), Duration::from_secs(5)).unwrap();
    let repo = Repository::new("acme/agent").unwrap();
    let sha = CommitSha::new("ab".repeat(20)).unwrap();
    let retry = Retry {
        attempts: 5,
        backoff: Duration::from_millis(10),
    };
    let (attempts, result) = post_status(&gh, &repo, &sha, &status(), retry).await;
    assert_eq!(result, Ok(()));
    assert_eq!(attempts, 3);
    let seen = seen.lock().unwrap();
    assert!(seen.problems.is_empty(), "{:?}", seen.problems);
    let waited = seen.calls[2].0 - seen.calls[1].0;
    assert!(
        waited >= Duration::from_millis(950),
        "Retry-After ignored: {waited:?}"
    );
    assert_eq!(seen.calls[2].1["state"], "success");
    assert_eq!(seen.calls[2].1["context"], "vaia/run");
}

#[tokio::test]
async fn a_bad_token_is_refused_without_retries() {
    let (url, seen) = server().await;
    let gh = GitHubStatuses::new(&url, "bad-token".into(), Duration::from_secs(5)).unwrap();
    assert!(!format!("{gh:?}").contains("bad-token"));
    let repo = Repository::new("acme/agent").unwrap();
    let sha = CommitSha::new("ab".repeat(20)).unwrap();
    let retry = Retry {
        attempts: 5,
        backoff: Duration::from_millis(10),
    };
    for _ in 0..2 {
        let (attempts, result) = post_status(&gh, &repo, &sha, &status(), retry).await;
        assert_eq!(attempts, 1);
        assert!(
            matches!(&result, Err(StatusError::Refused(m)) if m.contains("401") && !m.contains("bad-token")),
            "{result:?}"
        );
    }
    assert_eq!(seen.lock().unwrap().calls.len(), 2);
}
