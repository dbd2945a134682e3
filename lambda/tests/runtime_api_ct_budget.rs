//! The ct-budget binary invoked through the Lambda Runtime API (an emulator) with the
//! `events/aws/eventbridge-ct-budget-*` fixtures, against S3 and the SQS FIFO training
//! queue on moto: a promoted repository whose newest snapshot is over the threshold gets
//! exactly one training job however many scheduled evaluations run; an event that is not
//! a scheduled one is an error that evaluates, records and queues nothing. Raw data whose
//! notifications never came is found by the reconciliation before the evaluation and
//! consumed by the job.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;
use vaia_aws::runtime_api::Answer;
use vaia_aws::testing::{self, LambdaHarness};
use vaia_core::ports::{BlobStore, Queue};
use vaia_core::Repository;
use vaia_ct_budget::{seed, TRAINING_QUEUE};

/// The harnesses share their queues by name (the fixtures' ARNs name them): the tests
/// here read the one training queue, so they run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn training_messages(h: &LambdaHarness) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    // FIFO receives can come back short: read until two empty polls in a row.
    let mut empty = 0;
    while empty < 2 {
        let got = h
            .ports
            .queue
            .receive(TRAINING_QUEUE, 10, Duration::from_secs(60))
            .await
            .unwrap();
        if got.is_empty() {
            empty += 1;
        }
        out.extend(
            got.iter()
                .map(|m| serde_json::from_str::<serde_json::Value>(&m.body).unwrap()),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_evaluations_queue_one_training_job_and_other_events_nothing() {
    let _serial = SERIAL.lock().await;
    let Some(m) = testing::moto() else { return };
    let h = LambdaHarness::start(
        env!("CARGO_BIN_EXE_ct-budget").as_ref(),
        "ct-budget",
        m,
        &[("VAIA_POLICY", r#"ct = { drift_source = "report" }"#)],
    )
    .await;
    let blobs = h.ports.blobs.as_ref();
    let repo = Repository::new("octo/agent").unwrap();
    let now = chrono::Utc::now();
    seed::promoted(
        blobs,
        &repo,
        semver::Version::new(1, 2, 0),
        &"a".repeat(32),
        Some(100_000),
        now,
    )
    .await
    .unwrap();
    seed::drift_report(blobs, &repo, 0.1, now).await.unwrap();
    // 12,000 new rows: 0.6 · 0.1 + 0.4 · 1 = 0.46, over the default threshold 0.4.
    seed::snapshot(
        blobs,
        &repo,
        &"b".repeat(32),
        Some(112_000),
        now + chrono::Duration::minutes(1),
    )
    .await
    .unwrap();

    // Raw data landed whose notifications never came, named as people name files: the
    // scheduled reconciliation lists it (ListObjectsV2) and the job consumes it.
    blobs
        .put(
            &vaia_core::BlobKey::new("registry/octo/agent/versions/1.2.0.json").unwrap(),
            b"{}",
        )
        .await
        .unwrap();
    for (key, size) in [
        ("raw/octo/agent/tickets export (EU).csv", 300usize),
        ("raw/octo/agent/résumés 日本.jsonl", 700),
    ] {
        h.ports
            .blobs
            .client()
            .put_object()
            .bucket(&h.ports.settings.bucket)
            .key(key)
            .body(vec![b'x'; size].into())
            .send()
            .await
            .unwrap();
    }

    // Not a scheduled event: an error naming the field; nothing evaluated or queued.
    match h
        .invoke_fixture("eventbridge-ct-budget-bad-shape.json")
        .await
    {
        Answer::Error(e) => {
            let text = e.to_string();
            assert!(text.contains("$.detail-type"), "{text}");
            assert!(text.contains("not a scheduled event"), "{text}");
        }
        other => panic!("the bad event was answered {other:?}"),
    }
    assert!(
        blobs
            .list(&vaia_ct_budget::evaluations_prefix(&repo))
            .await
            .unwrap()
            .is_empty(),
        "a refused event recorded an evaluation"
    );
    assert!(blobs
        .get(&vaia_ct_budget::latest_evaluation_key(&repo).unwrap())
        .await
        .unwrap()
        .is_none());
    assert!(training_messages(&h).await.is_empty());

    // Two scheduled evaluations: both see the budget over the threshold, one job.
    let mut queued = Vec::new();
    for i in 0..2 {
        match h
            .invoke_fixture("eventbridge-ct-budget-scheduled.json")
            .await
        {
            Answer::Response(r) => {
                assert_eq!(r["evaluated"], 1, "{r}");
                assert_eq!(r["outcomes"]["retrain"], 1, "{r}");
                assert_eq!(r["event"]["source"], "aws.events", "{r}");
                let q = r["queued"].as_array().unwrap().clone();
                assert_eq!(q.len(), usize::from(i == 0), "invocation {i}: {r}");
                queued.extend(q);
            }
            other => panic!("invocation {i} answered {other:?}"),
        }
    }
    let jobs = training_messages(&h).await;
    assert_eq!(jobs.len(), 1, "{jobs:#?}");
    let job = &jobs[0];
    assert_eq!(job["schema"], vaia_ct_budget::TRAINING_JOB_SCHEMA);
    assert_eq!(job["id"], queued[0]);
    assert_eq!(job["repository"], "octo/agent");
    assert_eq!(job["prod_version"], "1.2.0");
    assert_eq!(job["snapshot"]["md5"], "b".repeat(32));
    assert_eq!(job["delta_rows"], 12_000);
    assert_eq!(job["pending_data_volume_bytes"], 1000, "{job:#}");
    assert_eq!(
        vaia_data_watcher::pending(blobs, &repo).await.unwrap(),
        vaia_data_watcher::Volume::default()
    );
    // Both evaluations recorded, the latest readable.
    let recorded = blobs
        .list(&vaia_ct_budget::evaluations_prefix(&repo))
        .await
        .unwrap();
    assert_eq!(recorded.len(), 2);
    h.stop().await;
}

/// The registry's asks on the `ct-evaluate` queue (`sqs-ct-evaluate.json`), as the function
/// gets them beside its schedule: the ask evaluates its repository at once and queues its
/// training job; a body that is not an ask is dead-lettered naming the field, evaluating
/// nothing more; the same batch delivered again evaluates and queues nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ask_after_a_new_snapshot_evaluates_its_repository_at_once() {
    let _serial = SERIAL.lock().await;
    let Some(m) = testing::moto() else { return };
    let h = LambdaHarness::start(
        env!("CARGO_BIN_EXE_ct-budget").as_ref(),
        "ct-budget-asked",
        m,
        &[("VAIA_POLICY", r#"ct = { drift_source = "report" }"#)],
    )
    .await;
    let blobs = h.ports.blobs.as_ref();
    let repo = Repository::new("acme/triage-agent").unwrap();
    let now = chrono::Utc::now();
    seed::promoted(
        blobs,
        &repo,
        semver::Version::new(1, 2, 0),
        &"a".repeat(32),
        Some(100_000),
        now,
    )
    .await
    .unwrap();
    seed::drift_report(blobs, &repo, 0.1, now).await.unwrap();
    seed::snapshot(blobs, &repo, &"b".repeat(32), Some(112_000), now)
        .await
        .unwrap();
    for round in 0..2 {
        match h.invoke_fixture("sqs-ct-evaluate.json").await {
            Answer::Response(r) => {
                assert_eq!(r, serde_json::json!({"batchItemFailures": []}), "{round}")
            }
            other => panic!("round {round}: {other:?}"),
        }
    }
    let jobs = training_messages(&h).await;
    assert_eq!(jobs.len(), 1, "{jobs:#?}");
    assert_eq!(jobs[0]["repository"], "acme/triage-agent");
    assert_eq!(jobs[0]["snapshot"]["md5"], "b".repeat(32));
    let recorded = blobs
        .list(&vaia_ct_budget::evaluations_prefix(&repo))
        .await
        .unwrap();
    assert_eq!(
        recorded.len(),
        1,
        "one evaluation: the redelivered ask is recognised (its deduplication id)"
    );
    let dead = h.ports.queue.dead_letters("ct-evaluate").await.unwrap();
    assert!(!dead.is_empty(), "the bad body is dead-lettered");
    let reason = dead[0].1.as_deref().unwrap_or("");
    assert!(
        reason.contains("ct-evaluate message") && reason.contains("md5"),
        "{reason}"
    );
    h.stop().await;
}
