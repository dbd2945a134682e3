//! Commit statuses end to end: a real `vaia up` with `VAIA_GITHUB_TOKEN` and
//! `VAIA_GITHUB_API_URL` pointing at a local stand-in for GitHub's statuses endpoint, which
//! records what it is sent (path, token, body). A promoted run posts `vaia/run` pending then
//! success and `vaia/schema` pending then success, linked to the run; a breaking change posts
//! failures for both. With `VAIA_EVENTS_WEBHOOK_URL` the same server receives the promotion
//! events (`vaia.run.promoted`, `vaia.run.failed`), each body signed with HMAC-SHA256 under
//! the shared secret, checked here independently of vaia's signing code.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{StartVaia, Vaia};
use vaia::client::Client;
use vaia::demo::{push_payload, wait_settled};
use vaia_core::{CommitSha, ImageDigest, PipelineState, Repository};

const SECRET: &str = "statuses-secret-3e1a";
const POLICY: &str = "[stages]\nci = [\"schema\"]\n";
const REPO: &str = "acme/support-agent";

type Posted = Arc<Mutex<Vec<(String, String, serde_json::Value)>>>;
type Events = Arc<Mutex<Vec<serde_json::Value>>>;
const EVENTS_SECRET: &str = "events-secret-0123456789";

async fn event(
    State(events): State<Events>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> StatusCode {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(EVENTS_SECRET.as_bytes()).unwrap();
    mac.update(&body);
    let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    let got = headers
        .get("x-vaia-signature-256")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if got != expected {
        return StatusCode::UNAUTHORIZED;
    }
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let kind = headers
        .get("x-vaia-event")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert_eq!(v["detail-type"], kind);
    events.lock().unwrap().push(v);
    StatusCode::NO_CONTENT
}

async fn record(
    State(posted): State<Posted>,
    Path((owner, repo, sha)): Path<(String, String, String)>,
    headers: HeaderMap,
    Json(body): Json<serde_json::Value>,
) -> StatusCode {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if auth != "Bearer gh-token" {
        return StatusCode::UNAUTHORIZED;
    }
    posted
        .lock()
        .unwrap()
        .push((format!("{owner}/{repo}"), sha, body));
    StatusCode::CREATED
}

async fn statuses_of(posted: &Posted, sha: &str, context: &str, until: &str) -> Vec<String> {
    let start = Instant::now();
    loop {
        let states: Vec<String> = posted
            .lock()
            .unwrap()
            .iter()
            .filter(|(r, s, b)| r == REPO && s == sha && b["context"] == context)
            .map(|(_, _, b)| b["state"].as_str().unwrap().to_string())
            .collect();
        if states.last().map(String::as_str) == Some(until) {
            return states;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{context} of {sha}: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn run_commit(client: &Client, n: u8, tools: &str) -> (CommitSha, PipelineState) {
    let repo = Repository::new(REPO).unwrap();
    let sha = CommitSha::new(format!("{n:02x}").repeat(20)).unwrap();
    let (status, answer) = client
        .send_webhook(
            SECRET,
            "push",
            &format!("st-{n}"),
            &push_payload(&repo, &sha).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(status, 201, "{answer}");
    let image = ImageDigest::new(format!("sha256:{}", "cd".repeat(32))).unwrap();
    client
        .upload_evidence(
            &repo,
            &sha,
            &image,
            None,
            &[("tools.json".into(), tools.as_bytes().to_vec())],
        )
        .await
        .unwrap();
    let detail = wait_settled(
        client,
        answer["run_id"].as_str().unwrap(),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    (sha, detail.run.state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_changes_post_the_expected_statuses() {
    let posted: Posted = Arc::default();
    let events: Events = Arc::default();
    let app = Router::new()
        .route("/repos/{owner}/{repo}/statuses/{sha}", post(record))
        .with_state(posted.clone())
        .merge(
            Router::new()
                .route("/events", post(event))
                .with_state(events.clone()),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let stack = Vaia::start_with_env(
        dir.path(),
        POLICY,
        SECRET,
        &[
            ("VAIA_GITHUB_TOKEN", "gh-token"),
            ("VAIA_GITHUB_API_URL", api.as_str()),
            ("VAIA_PUBLIC_URL", "https://vaia.example"),
            ("VAIA_EVENTS_WEBHOOK_URL", format!("{api}/events").as_str()),
            ("VAIA_EVENTS_WEBHOOK_SECRET", EVENTS_SECRET),
        ],
    );
    let client = Client::new(&stack.url);

    let (sha, state) = run_commit(
        &client,
        1,
        include_str!("../../examples/demo/tools-v1.json"),
    )
    .await;
    assert_eq!(state, PipelineState::Promoted);
    let run = statuses_of(&posted, sha.as_str(), "vaia/run", "success").await;
    assert_eq!(run.first().map(String::as_str), Some("pending"), "{run:?}");
    let schema = statuses_of(&posted, sha.as_str(), "vaia/schema", "success").await;
    assert_eq!(schema, ["pending", "success"]);
    let last = posted
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|(_, s, b)| s == sha.as_str() && b["context"] == "vaia/run")
        .unwrap()
        .2
        .clone();
    assert!(
        last["description"]
            .as_str()
            .unwrap()
            .starts_with("promoted as 0."),
        "{last}"
    );
    assert!(
        last["target_url"]
            .as_str()
            .unwrap()
            .starts_with("https://vaia.example/api/runs/r"),
        "{last}"
    );

    let (sha, state) = run_commit(
        &client,
        2,
        include_str!("../../examples/demo/tools-v3-breaking.json"),
    )
    .await;
    assert_eq!(state, PipelineState::Failed);
    statuses_of(&posted, sha.as_str(), "vaia/schema", "failure").await;
    statuses_of(&posted, sha.as_str(), "vaia/run", "failure").await;

    let start = Instant::now();
    while events.lock().unwrap().len() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "events: {:?}",
            events.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = events.lock().unwrap().clone();
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["detail-type"], "vaia.run.promoted");
    assert_eq!(events[0]["source"], "vaia");
    assert_eq!(events[0]["detail"]["repository"], REPO);
    assert!(events[0]["detail"]["version"]
        .as_str()
        .unwrap()
        .starts_with("0."));
    assert_eq!(events[1]["detail-type"], "vaia.run.failed");
    assert_eq!(events[1]["detail"]["commit"], sha.as_str());
    assert!(
        events[1]["detail"]["reason"]
            .as_str()
            .unwrap()
            .contains("schema"),
        "{}",
        events[1]
    );
}
