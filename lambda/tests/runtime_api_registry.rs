//! The registry binary invoked through the Lambda Runtime API (an emulator) with every
//! `events/aws` fixture of its two queues, against DynamoDB, SQS and S3 on moto.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;
use vaia_aws::runtime_api::Answer;
use vaia_aws::testing::{fixtures, moto, LambdaHarness};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_answers_every_fixture() {
    let Some(m) = moto() else { return };
    let h = LambdaHarness::start(env!("CARGO_BIN_EXE_registry").as_ref(), "registry", m, &[]).await;
    let mut names = fixtures("sqs-registry-");
    names.extend(fixtures("sqs-blob-events-"));
    assert!(names.len() >= 3, "fixtures: {names:?}");
    for name in &names {
        match h.invoke_fixture(name).await {
            Answer::Response(r) => assert_eq!(r, json!({"batchItemFailures": []}), "{name}"),
            Answer::Error(e) => panic!("{name}: function error {e}"),
        }
    }
    // A job for a run that does not exist is dead-lettered with its reason.
    let dead = h.ports.queue.dead_letters("registry").await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0].1.as_deref().unwrap_or("").contains("not found"),
        "{dead:?}"
    );
    h.stop().await;
}
