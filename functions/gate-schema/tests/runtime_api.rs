//! The schema gate binary invoked through the Lambda Runtime API (an emulator) with every
//! `events/aws` fixture of its queue, against DynamoDB, SQS and S3 on moto.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;
use vaia_aws::runtime_api::Answer;
use vaia_aws::testing::{fixtures, moto, LambdaHarness};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_schema_answers_every_fixture() {
    let Some(m) = moto() else { return };
    let h = LambdaHarness::start(
        env!("CARGO_BIN_EXE_gate-schema").as_ref(),
        "gate-schema",
        m,
        &[],
    )
    .await;
    let names = fixtures("sqs-gate-schema-");
    assert!(!names.is_empty());
    for name in &names {
        match h.invoke_fixture(name).await {
            Answer::Response(r) => assert_eq!(r, json!({"batchItemFailures": []}), "{name}"),
            Answer::Error(e) => panic!("{name}: function error {e}"),
        }
    }
    // The job's run does not exist: dead-lettered with the reason, not retried.
    let dead = h.ports.queue.dead_letters("gate-schema").await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0].1.as_deref().unwrap_or("").contains("not found"),
        "{dead:?}"
    );
    h.stop().await;
}
