//! The local stack's token authentication and dashboard serving over real HTTP: 401 without
//! a token, 403 without the role, the webhook still HMAC-only, a refused open bind beyond
//! loopback, and `/` serving the dashboard (or saying how to build it) while unknown API
//! paths stay JSON 404s.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use vaia::stack::{Stack, StackConfig, StackOptions};
use vaia_api::auth::{hash_token, Tokens};
use vaia_core::policy::Policy;
use vaia_webhook::WebhookSecret;

fn config(dir: &std::path::Path, bind: &str) -> StackConfig {
    StackConfig {
        data_dir: dir.to_path_buf(),
        bind: bind.into(),
        port: 0,
        policy: Policy::default(),
        secret: WebhookSecret::new("live-secret").unwrap(),
        alertmanager_token: None,
    }
}

#[tokio::test]
async fn tokens_guard_the_api_and_the_dashboard_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let dist = tempfile::tempdir().unwrap();
    std::fs::write(
        dist.path().join("index.html"),
        "<html>vaia dashboard</html>",
    )
    .unwrap();
    let spec = format!(
        "viewer:read:{};ops:read+operate:{}",
        hash_token("view-me"),
        hash_token("op-me")
    );
    let options = StackOptions {
        tokens: Arc::new(Tokens::parse_inline("test", &spec).unwrap()),
        dashboard_dir: Some(dist.path().to_path_buf()),
        ..StackOptions::default()
    };
    let stack = Stack::start_with(config(dir.path(), "127.0.0.1"), options)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let url = stack.url();
    let get = |path: &str, token: Option<&str>| {
        let mut r = http.get(format!("{url}{path}"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send()
    };
    let res = get("/api/runs", None).await.unwrap();
    assert_eq!(res.status(), 401);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("role read"),
        "{body}"
    );
    assert_eq!(get("/api/runs", Some("wrong")).await.unwrap().status(), 401);
    assert_eq!(
        get("/api/runs", Some("view-me")).await.unwrap().status(),
        200
    );
    assert_eq!(get("/metrics", None).await.unwrap().status(), 401);
    let res = http
        .post(format!("{url}/api/runs/r0123456789abcdef01234567/rollback"))
        .bearer_auth("view-me")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let text = res.text().await.unwrap();
    assert!(
        text.contains("operate") && !text.contains("view-me"),
        "{text}"
    );
    // With the role, the request reaches the API (no such run: 404, not 401/403).
    let res = http
        .post(format!("{url}/api/runs/r0123456789abcdef01234567/rollback"))
        .bearer_auth("op-me")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    // The CLI's client presents its token (VAIA_API_TOKEN).
    let runs = vaia::client::Client::with_token(&url, Some("view-me"))
        .runs(5, None)
        .await
        .unwrap();
    assert!(runs.runs.is_empty());
    let refused = vaia::client::Client::with_token(&url, None)
        .runs(5, None)
        .await
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(refused.contains("401"), "{refused}");
    // The webhook is HMAC-only: an unsigned request is refused by the signature check (401
    // from the webhook, naming the signature), not by the token layer.
    let res = http
        .post(format!("{url}/webhooks/github"))
        .header("x-github-event", "ping")
        .header("x-github-delivery", "d-1")
        .body("{}")
        .send()
        .await
        .unwrap();
    let text = res.text().await.unwrap();
    assert!(!text.contains("token"), "{text}");
    // The dashboard, and deep links into it, need no token; unknown API paths stay JSON.
    let index = get("/", None).await.unwrap().text().await.unwrap();
    assert!(index.contains("vaia dashboard"), "{index}");
    let deep = get("/runs/r1", None).await.unwrap().text().await.unwrap();
    assert!(deep.contains("vaia dashboard"), "{deep}");
    let res = get("/api/no-such-route", Some("view-me")).await.unwrap();
    assert_eq!(res.status(), 404);
    assert!(res.text().await.unwrap().contains("\"error\""));
    stack.stop().await;
}

#[tokio::test]
async fn an_open_api_is_refused_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let err = match Stack::start_with(config(dir.path(), "0.0.0.0"), StackOptions::default()).await
    {
        Ok(_) => panic!("an open stack bound 0.0.0.0"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("without API tokens"), "{err}");
    // Nothing was created: the data directory holds no database.
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}

#[tokio::test]
async fn without_a_build_the_page_says_how_to_make_one() {
    let dir = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let options = StackOptions {
        dashboard_dir: Some(empty.path().to_path_buf()),
        ..StackOptions::default()
    };
    let stack = Stack::start_with(config(dir.path(), "127.0.0.1"), options)
        .await
        .unwrap();
    let page = reqwest::get(format!("{}/", stack.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("npm run build"), "{page}");
    stack.stop().await;
}
