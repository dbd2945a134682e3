//! The data-watcher binary invoked through the Lambda Runtime API (an emulator) with the
//! `events/aws` fixtures of the `raw-data` queue, against S3, SQS and DynamoDB on moto:
//! URL-encoded keys with spaces and non-ASCII characters are counted once each, however
//! often delivered; bad keys are dead-lettered with their reason and count nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;
use vaia_aws::runtime_api::Answer;
use vaia_aws::testing::{moto, LambdaHarness};
use vaia_core::ports::BlobStore;
use vaia_core::{BlobKey, Repository};
use vaia_data_watcher::Volume;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_watcher_counts_the_fixtures_once() {
    let Some(m) = moto() else { return };
    let h = LambdaHarness::start(
        env!("CARGO_BIN_EXE_data-watcher").as_ref(),
        "data-watcher",
        m,
        &[],
    )
    .await;
    // octo-org/agent is known to vaia (a registered version); unknown-org/agent is not.
    h.ports
        .blobs
        .put(
            &BlobKey::new("registry/octo-org/agent/versions/1.0.0.json").unwrap(),
            b"{}",
        )
        .await
        .unwrap();
    let repo = Repository::new("octo-org/agent").unwrap();
    let want = Volume {
        objects: 2,
        bytes: 1_048_576 + 20_480,
    };
    // Delivered twice: the second batch is all duplicates.
    for _ in 0..2 {
        match h.invoke_fixture("sqs-raw-data-s3.json").await {
            Answer::Response(r) => assert_eq!(r, json!({"batchItemFailures": []})),
            Answer::Error(e) => panic!("function error {e}"),
        }
        assert_eq!(
            vaia_data_watcher::pending(h.ports.blobs.as_ref(), &repo)
                .await
                .unwrap(),
            want
        );
    }
    let before = h.ports.blobs.list("ct/").await.unwrap();
    match h.invoke_fixture("sqs-raw-data-s3-bad-keys.json").await {
        Answer::Response(r) => assert_eq!(r, json!({"batchItemFailures": []})),
        Answer::Error(e) => panic!("function error {e}"),
    }
    assert_eq!(h.ports.blobs.list("ct/").await.unwrap(), before);
    let dead = h.ports.queue.dead_letters("raw-data").await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    let reason = dead[0].1.as_deref().unwrap_or("");
    assert!(
        reason.contains("raw/octo-org/tickets.csv") && reason.contains("unknown-org/agent"),
        "{reason}"
    );
    h.stop().await;
}
