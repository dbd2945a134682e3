//! The api binary invoked through the Lambda Runtime API (an emulator) with every
//! `events/aws/apigw-v2-api-*` fixture (IAM-authorised HTTP API requests), against
//! DynamoDB, SQS and S3 on moto.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use vaia_aws::runtime_api::Answer;
use vaia_aws::testing::{fixtures, moto, LambdaHarness};

fn status_and_body(name: &str, answer: Answer) -> (u64, Value) {
    let Answer::Response(r) = answer else {
        panic!("{name}: function error {answer:?}");
    };
    let status = r["statusCode"].as_u64().unwrap_or(0);
    let body: Value = serde_json::from_str(r["body"].as_str().unwrap_or("null"))
        .unwrap_or_else(|e| panic!("{name}: body is not JSON ({e}): {r}"));
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_answers_every_api_gateway_fixture() {
    let Some(m) = moto() else { return };
    let h = LambdaHarness::start(env!("CARGO_BIN_EXE_api").as_ref(), "api", m, &[]).await;
    let names = fixtures("apigw-v2-api-");
    assert!(names.len() >= 6, "fixtures: {names:?}");
    for name in &names {
        let (status, body) = status_and_body(name, h.invoke_fixture(name).await);
        match name.as_str() {
            "apigw-v2-api-list-runs.json" => {
                assert_eq!(status, 200, "{name}: {body}");
                assert_eq!(body["runs"], serde_json::json!([]), "{name}");
            }
            "apigw-v2-api-openapi.json" => {
                assert_eq!(status, 200, "{name}");
                assert_eq!(body["openapi"], "3.1.0", "{name}");
            }
            "apigw-v2-api-show-missing-run.json" => {
                assert_eq!(status, 404, "{name}: {body}");
                assert!(body["error"].as_str().unwrap().contains("not found"));
            }
            "apigw-v2-api-list-runs-bad-limit.json" => {
                assert_eq!(status, 400, "{name}: {body}");
                assert!(body["error"].as_str().unwrap().contains("limit"));
            }
            "apigw-v2-api-show-bad-id.json" => {
                assert_eq!(status, 400, "{name}: {body}");
                assert!(body["error"].as_str().unwrap().contains("id"));
            }
            // The run does not exist: 404 before the body is looked at; nothing is sent.
            "apigw-v2-api-approve-bad-body.json" => {
                assert_eq!(status, 404, "{name}: {body}");
            }
            other => panic!("no expectation for fixture {other}"),
        }
    }
    let depth = vaia_core::ports::Queue::depth(&*h.ports.queue, "advance")
        .await
        .unwrap();
    assert_eq!(depth.visible, 0, "no request reached the orchestrator");
    operator_requests_are_validated_before_signalling(&h).await;
    h.stop().await;
}

/// The approve fixture aimed at a run that exists: a body with an unknown field is a 400
/// that sends nothing; a good body is accepted and becomes one signal on the advance queue.
/// (Part of the test above: the harness's queues are named as the fixtures expect, so two
/// tests in this binary would share the advance queue.)
async fn operator_requests_are_validated_before_signalling(h: &LambdaHarness) {
    use vaia_core::ports::{Queue, RunStore};
    let now = chrono::Utc::now();
    let run = vaia_core::run::Run::new(
        vaia_core::Repository::new("octo-org/agent").unwrap(),
        vaia_core::CommitSha::new("8f1e2d3c4b5a69788796a5b4c3d2e1f001234567").unwrap(),
        Some("main".into()),
        vaia_core::run::Trigger {
            kind: "push".into(),
            delivery: None,
            actor: None,
            at: now,
        },
        vaia_core::policy::Policy::default(),
        now,
    );
    h.ports.store.create(&run, &[]).await.unwrap();
    let path = format!("/api/runs/{}/approve", run.id);
    let event = |body: &str| {
        let mut e = vaia_aws::testing::fixture("apigw-v2-api-approve-bad-body.json");
        e["rawPath"] = path.clone().into();
        e["requestContext"]["http"]["path"] = path.clone().into();
        e["body"] = body.into();
        e["headers"]["content-length"] = body.len().to_string().into();
        e
    };
    let bad = h
        .api
        .invoke(event(r#"{"actor": "ops", "unexpected": true}"#))
        .await;
    let (status, body) = status_and_body("bad body", bad.unwrap());
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("unexpected"),
        "{body}"
    );
    assert_eq!(h.ports.queue.depth("advance").await.unwrap().visible, 0);

    let good = h.api.invoke(event(r#"{"actor": "ops"}"#)).await;
    let (status, body) = status_and_body("good body", good.unwrap());
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["run_id"], run.id.to_string());
    assert_eq!(h.ports.queue.depth("advance").await.unwrap().visible, 1);
}
