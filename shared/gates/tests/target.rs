//! The live-target runner against a local server: the request template and canary header,
//! the reply pointer, retries on 429/5xx, and failures recorded as errors (never as safe).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vaia_gates::prompt::target::{run, TargetConfig, CANARY_HEADER};
use vaia_gates::prompt::Attack;

#[derive(Clone, Default)]
struct Mock {
    script: Arc<Mutex<VecDeque<(u16, Value)>>>,
    seen: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
}

async fn handle(
    State(m): State<Mock>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> axum::response::Response {
    m.seen.lock().unwrap().push((headers, body));
    let (status, v) = m
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or((500, json!({})));
    (StatusCode::from_u16(status).unwrap(), Json(v)).into_response()
}

fn attack(id: &str) -> Attack {
    Attack {
        id: id.into(),
        prompt: format!("prompt {id} \"quoted\""),
        category: "direct_override".into(),
        source: "test".into(),
    }
}

#[tokio::test]
async fn template_pointer_retries_and_failures() {
    let mock = Mock::default();
    mock.script.lock().unwrap().extend([
        (429, json!({"error": "slow down"})),
        (503, json!({})),
        (200, json!({"output": {"text": "answer one"}})),
        (400, json!({"error": "bad"})),
    ]);
    let app = axum::Router::new()
        .route("/ask", axum::routing::post(handle))
        .with_state(mock.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let mut cfg = TargetConfig::chat_completions(format!("http://{addr}/ask"));
    cfg.template = json!({"input": "{{prompt}}", "session": {"secret": "{{canary}}"}});
    cfg.reply_pointer = "/output/text".into();
    cfg.concurrency = 1;
    cfg.retries = 2;
    cfg.backoff = Duration::from_millis(1);
    let out = run(&cfg, &[attack("a"), attack("b")]).await.unwrap();
    assert_eq!(out[0].response, "answer one");
    assert!(out[0].error.is_none());
    assert!(
        out[1].error.as_deref().unwrap().contains("400"),
        "{:?}",
        out[1]
    );
    let canary = out[0].canary.clone().unwrap();
    assert!(canary.starts_with("VAIA-CANARY-"));
    {
        let seen = mock.seen.lock().unwrap();
        assert_eq!(seen.len(), 4);
        assert_eq!(seen[2].1["input"], "prompt a \"quoted\"");
        assert_eq!(seen[2].1["session"]["secret"], canary.as_str());
        assert_eq!(seen[2].0[CANARY_HEADER], canary.as_str());
    }
    task.abort();
    let _ = task.await;

    // Nothing listens: every attack is an error after its retries.
    let out = run(&cfg, &[attack("c")]).await.unwrap();
    assert!(
        out[0]
            .error
            .as_deref()
            .unwrap()
            .contains("after 3 attempts"),
        "{:?}",
        out[0]
    );
}
