//! The orchestrator and sweeper binaries invoked through the Lambda Runtime API (an
//! emulator) with every `events/aws` fixture of theirs, against DynamoDB and SQS on moto.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;
use vaia_aws::runtime_api::Answer;
use vaia_aws::testing::{fixtures, moto, LambdaHarness};
use vaia_core::contract::{base_time, sample_run};
use vaia_core::ports::RunStore;
use vaia_core::{PipelineState, RunId};

/// The run id the advance fixtures name.
const FIXTURE_RUN: &str = "r0123456789abcdef01234567";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestrator_answers_every_advance_fixture() {
    let Some(m) = moto() else { return };
    let h = LambdaHarness::start(
        env!("CARGO_BIN_EXE_orchestrator").as_ref(),
        "orchestrator",
        m,
        &[],
    )
    .await;
    let mut run = sample_run(1, base_time());
    run.id = RunId::new(FIXTURE_RUN).unwrap();
    h.ports.store.create(&run, &[]).await.unwrap();

    let names = fixtures("sqs-advance-");
    assert!(names.len() >= 2, "fixtures: {names:?}");
    for name in &names {
        match h.invoke_fixture(name).await {
            Answer::Response(r) => assert_eq!(r, json!({"batchItemFailures": []}), "{name}"),
            Answer::Error(e) => panic!("{name}: function error {e}"),
        }
    }
    let stored = h.ports.store.get(&run.id).await.unwrap().unwrap();
    assert_eq!(
        stored.state,
        PipelineState::Triggered,
        "the trigger fixture moved the run"
    );

    // The bad body and the approval of a run not awaiting it are dead-lettered with reasons.
    let dead = h.ports.queue.dead_letters("advance").await.unwrap();
    assert!(
        dead.iter().any(|(body, reason)| body == "{not json"
            && reason.as_deref().is_some_and(|r| r.contains("bad body"))),
        "dead letters: {dead:?}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeper_answers_the_scheduled_event() {
    let Some(m) = moto() else { return };
    let h = LambdaHarness::start(env!("CARGO_BIN_EXE_sweeper").as_ref(), "sweeper", m, &[]).await;
    // One in-flight run long past its deadline.
    let mut run = sample_run(7, base_time());
    run.state = PipelineState::CiRunning;
    h.ports.store.create(&run, &[]).await.unwrap();
    for name in fixtures("eventbridge-") {
        match h.invoke_fixture(&name).await {
            Answer::Response(r) => assert_eq!(r, json!({"swept": 1}), "{name}"),
            Answer::Error(e) => panic!("{name}: function error {e}"),
        }
    }
    h.stop().await;
}
