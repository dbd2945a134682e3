//! The webhook binary invoked through the Lambda Runtime API (an emulator) with every
//! API Gateway v2 fixture in `events/aws`, against DynamoDB and SQS on moto.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use vaia_aws::runtime_api::Answer;
use vaia_aws::testing::{fixtures, moto, LambdaHarness};
use vaia_core::ports::{Queue, RunStore};

/// The secret the fixtures are signed with (events/aws/README.md).
const SECRET: &str = "vaia-fixture-secret";

fn status_and_body(name: &str, answer: Answer) -> (u64, Value) {
    let Answer::Response(r) = answer else {
        panic!("{name}: function error {answer:?}");
    };
    let status = r["statusCode"].as_u64().unwrap_or(0);
    let body: Value = serde_json::from_str(r["body"].as_str().unwrap_or("null")).unwrap();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_answers_every_api_gateway_fixture() {
    let Some(m) = moto() else { return };
    let h = LambdaHarness::start(
        env!("CARGO_BIN_EXE_webhook").as_ref(),
        "webhook",
        m,
        &[("VAIA_WEBHOOK_SECRET", SECRET)],
    )
    .await;
    let names = fixtures("apigw-v2-webhook-");
    assert!(names.len() >= 4, "fixtures: {names:?}");
    for name in &names {
        let (status, body) = status_and_body(name, h.invoke_fixture(name).await);
        let want: &[u64] = match name.as_str() {
            "apigw-v2-webhook-bad-signature.json" => &[401],
            // Its body is marked base64 but is not: refused before the handler.
            "apigw-v2-webhook-bad-base64.json" => &[400],
            "apigw-v2-webhook-ping.json" => &[200],
            // The first push creates the run; the base64 copy (another delivery of the
            // same commit) finds it.
            _ => &[200, 201],
        };
        assert!(want.contains(&status), "{name}: {status} {body}");
    }
    // One run for the pushed commit, and its trigger on the advance queue.
    let page = h.ports.store.list(10, None).await.unwrap();
    assert_eq!(page.runs.len(), 1, "{:?}", page.runs);
    let depth = h.ports.queue.depth("advance").await.unwrap();
    assert_eq!(depth.visible, 1, "one trigger message");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_reads_its_secret_from_ssm() {
    let Some(m) = moto() else { return };
    let sdk = vaia_aws::testing::sdk(&m.endpoint).await;
    let name = format!("/vaia/{}", vaia_aws::testing::unique("secret"));
    aws_sdk_ssm::Client::new(&sdk)
        .put_parameter()
        .name(&name)
        .value(SECRET)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let h = LambdaHarness::start(
        env!("CARGO_BIN_EXE_webhook").as_ref(),
        "webhook-ssm",
        m,
        &[("VAIA_WEBHOOK_SECRET_PARAM", name.as_str())],
    )
    .await;
    let (status, body) =
        status_and_body("ping", h.invoke_fixture("apigw-v2-webhook-ping.json").await);
    assert_eq!(status, 200, "{body}");
    h.stop().await;
}
