//! The Gemini and OpenAI-compatible judge clients against a local HTTP server that checks
//! each wire protocol (path, headers, body) and answers real-shaped responses: success,
//! 429 and 5xx (retried), refusals, malformed JSON and refused keys (an `error` verdict,
//! never a pass, and the key nowhere in it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vaia_core::Outcome;
use vaia_gates::eval::judge::{
    judge_all, ApiKey, GeminiJudge, GradeCache, GradeRequest, Judge, JudgeError, OpenAiJudge,
    RunnerOptions,
};
use vaia_gates::eval::{self, Answer, EvalOptions, GoldenItem};

const KEY: &str = "test-key-7c1d9e";

#[derive(Clone, Default)]
struct Mock {
    script: Arc<Mutex<VecDeque<(u16, String)>>>,
    seen: Arc<Mutex<Vec<(String, HeaderMap, Value)>>>,
}

async fn handle(
    State(m): State<Mock>,
    uri: Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    m.seen
        .lock()
        .unwrap()
        .push((uri.to_string(), headers, body));
    let (status, text) = m
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or((500, "{}".into()));
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        text,
    )
        .into_response()
}

async fn serve(script: Vec<(u16, String)>) -> (String, Mock, tokio::task::JoinHandle<()>) {
    let mock = Mock::default();
    mock.script.lock().unwrap().extend(script);
    let app = axum::Router::new()
        .fallback(handle)
        .with_state(mock.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), mock, task)
}

fn gemini_ok(score: u32) -> String {
    json!({
        "candidates": [{
            "content": {"parts": [{"text": format!("{{\"score\": {score}, \"reason\": \"matches the reference\"}}")}], "role": "model"},
            "finishReason": "STOP", "index": 0
        }],
        "usageMetadata": {"promptTokenCount": 120, "candidatesTokenCount": 15, "totalTokenCount": 135},
        "modelVersion": "gemini-2.5-flash"
    })
    .to_string()
}

fn openai_ok(score: u32) -> String {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": format!("{{\"score\":{score},\"reason\":\"ok\"}}"), "refusal": null}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110}
    })
    .to_string()
}

fn req() -> GradeRequest {
    GradeRequest {
        input: "How long is the return window?".into(),
        reference: "30 days".into(),
        answer: "30 days".into(),
    }
}

fn fast() -> RunnerOptions {
    RunnerOptions {
        concurrency: 2,
        retries: 3,
        backoff: Duration::from_millis(1),
    }
}

fn gemini(url: &str) -> Arc<dyn Judge> {
    Arc::new(
        GeminiJudge::new(
            Some(url),
            None,
            ApiKey::new(KEY).unwrap(),
            Duration::from_secs(10),
        )
        .unwrap(),
    )
}

fn openai(url: &str) -> Arc<dyn Judge> {
    Arc::new(
        OpenAiJudge::new(
            Some(url),
            Some("gpt-4o-mini"),
            ApiKey::new(KEY).unwrap(),
            Duration::from_secs(10),
        )
        .unwrap(),
    )
}

#[tokio::test]
async fn gemini_wire_protocol_and_retries() {
    let (url, mock, task) = serve(vec![
        (429, json!({"error": {"code": 429, "message": "Resource has been exhausted", "status": "RESOURCE_EXHAUSTED"}}).to_string()),
        (503, json!({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}).to_string()),
        (200, "{\"candidates\": [".into()),
        (200, gemini_ok(8)),
    ])
    .await;
    let out = judge_all(gemini(&url), None, vec![req()], &fast()).await;
    let judged = out[0].as_ref().unwrap();
    assert_eq!(judged.grade.score, 0.8);
    assert_eq!(judged.attempts, 4);
    assert_eq!(judged.grade.usage.input_tokens, 120);
    let seen = mock.seen.lock().unwrap();
    assert_eq!(seen.len(), 4);
    let (path, headers, body) = &seen[3];
    assert_eq!(path, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(headers["x-goog-api-key"], KEY);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    assert!(!path.contains(KEY), "the key never travels in the URL");
    assert_eq!(
        body["generationConfig"]["responseMimeType"],
        "application/json"
    );
    assert_eq!(body["generationConfig"]["responseSchema"]["type"], "OBJECT");
    assert!(body["contents"][0]["parts"][0]["text"]
        .as_str()
        .unwrap()
        .contains("30 days"));
    assert!(body["systemInstruction"]["parts"][0]["text"].is_string());
    task.abort();
}

#[tokio::test]
async fn gemini_refusals_are_errors() {
    let blocked = json!({"promptFeedback": {"blockReason": "SAFETY", "safetyRatings": []}, "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9}}).to_string();
    let safety = json!({"candidates": [{"finishReason": "SAFETY", "index": 0, "safetyRatings": [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}]}]}).to_string();
    let (url, _mock, task) = serve(vec![(200, blocked), (200, safety)]).await;
    let j = gemini(&url);
    assert!(matches!(j.grade(&req()).await, Err(JudgeError::Refused(r)) if r.contains("SAFETY")));
    assert!(matches!(j.grade(&req()).await, Err(JudgeError::Refused(r)) if r.contains("SAFETY")));
    task.abort();
}

fn golden() -> Vec<GoldenItem> {
    (0..3)
        .map(|i| GoldenItem {
            id: format!("g{i}"),
            input: format!("q{i}"),
            reference: "r".into(),
            category: None,
        })
        .collect()
}

fn answers() -> Vec<Answer> {
    (0..3)
        .map(|i| Answer {
            id: format!("g{i}"),
            answer: "a".into(),
        })
        .collect()
}

#[tokio::test]
async fn refused_key_is_an_error_verdict_without_the_key() {
    let invalid = json!({"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT",
        "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]}}).to_string();
    let (url, mock, task) = serve(vec![(400, invalid); 6]).await;
    let v = eval::run(
        gemini(&url),
        None,
        &golden(),
        &answers(),
        Some(&answers()),
        &fast(),
        &EvalOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(v.outcome, Outcome::Error);
    assert!(v.summary.contains("API key refused"), "{}", v.summary);
    let text = serde_json::to_string(&v).unwrap();
    assert!(!text.contains(KEY));
    assert!(
        mock.seen.lock().unwrap().len() <= 2,
        "stops calling once the key is refused"
    );
    task.abort();

    // Unreachable: nothing listens any more.
    let v = eval::run(
        gemini(&url),
        None,
        &golden(),
        &answers(),
        Some(&answers()),
        &fast(),
        &EvalOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(v.outcome, Outcome::Error, "{}", v.summary);
    assert!(!serde_json::to_string(&v).unwrap().contains(KEY));
}

#[tokio::test]
async fn openai_wire_protocol_refusal_auth_and_cache() {
    let refusal = json!({"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": "I can't help with that."}, "finish_reason": "stop"}]}).to_string();
    let (url, mock, task) = serve(vec![
        (500, json!({"error": {"message": "internal", "type": "server_error"}}).to_string()),
        (200, openai_ok(10)),
        (200, refusal),
        (401, json!({"error": {"message": format!("Incorrect API key provided: {KEY}"), "type": "invalid_request_error", "code": "invalid_api_key"}}).to_string()),
    ])
    .await;
    let j = openai(&url);
    let dir = tempfile::tempdir().unwrap();
    let cache = GradeCache::new(dir.path());
    let out = judge_all(j.clone(), Some(cache.clone()), vec![req()], &fast()).await;
    assert_eq!(out[0].as_ref().unwrap().grade.score, 1.0);
    {
        let seen = mock.seen.lock().unwrap();
        let (path, headers, body) = &seen[1];
        assert_eq!(path, "/chat/completions");
        assert_eq!(headers["authorization"], format!("Bearer {KEY}").as_str());
        assert_eq!(body["model"], "gpt-4o-mini");
        assert_eq!(body["response_format"]["type"], "json_schema");
        assert_eq!(body["messages"][0]["role"], "system");
    }
    // The same request again is served from the cache: no call.
    let out = judge_all(j.clone(), Some(cache), vec![req()], &fast()).await;
    assert!(out[0].as_ref().unwrap().cached);
    assert_eq!(mock.seen.lock().unwrap().len(), 2);

    assert!(matches!(j.grade(&req()).await, Err(JudgeError::Refused(_))));
    match j.grade(&req()).await {
        Err(JudgeError::Auth(m)) => assert!(!m.contains(KEY), "{m}"),
        other => panic!("expected Auth, got {other:?}"),
    }
    task.abort();
}

#[tokio::test]
async fn malformed_grades_are_retried_then_error() {
    let bad = json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "Score: 7/10"}, "finish_reason": "stop"}]}).to_string();
    let (url, _mock, task) = serve(vec![
        (200, bad.clone()),
        (200, bad.clone()),
        (200, bad.clone()),
        (200, bad),
    ])
    .await;
    let out = judge_all(openai(&url), None, vec![req()], &fast()).await;
    assert!(
        matches!(&out[0], Err(JudgeError::Malformed(_))),
        "{:?}",
        out[0]
    );
    task.abort();
}
