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

/// With `VAIA_EVENT_BUS` set, the orchestrator function puts `vaia.run.promoted` on the bus
/// when an advance message moves a run to PROMOTED: a rule on the bus delivers it to SQS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestrator_puts_the_promotion_event_on_the_bus() {
    use vaia_aws::testing::{event_bus_to_queue, received_events, sdk, unique};
    let Some(m) = moto() else { return };
    let conf = sdk(&m.endpoint).await;
    let bus = unique("vaia-events");
    let url = event_bus_to_queue(&conf, &bus, &json!({"source": ["vaia"]})).await;
    let h = LambdaHarness::start(
        env!("CARGO_BIN_EXE_orchestrator").as_ref(),
        "orchestrator-events",
        m,
        &[("VAIA_EVENT_BUS", bus.as_str())],
    )
    .await;

    // A run in CT_QUEUED with its artifact registered; the CT baseline completes it.
    let mut run = sample_run(11, base_time());
    run.state = PipelineState::CtQueued;
    run.candidate.version = Some("0.3.0".parse().unwrap());
    run.candidate.image_digest =
        Some(vaia_core::ImageDigest::new(format!("sha256:{}", "c".repeat(64))).unwrap());
    h.ports.store.create(&run, &[]).await.unwrap();
    let body = json!({
        "run_id": run.id.as_str(),
        "expect": "CT_QUEUED",
        "actor": "registry",
        "signal": {"type": "ct_baseline_recorded", "version": "0.3.0",
                   "record": "ct/octo/agent/baseline.json"},
    });
    let mut event = vaia_aws::testing::fixture("sqs-advance-trigger.json");
    event["Records"][0]["body"] = json!(body.to_string());
    event["Records"][0]["attributes"]["MessageGroupId"] = json!(run.id.as_str());
    match h.api.invoke(event).await.expect("an answer") {
        Answer::Response(r) => assert_eq!(r, json!({"batchItemFailures": []})),
        Answer::Error(e) => panic!("function error {e}"),
    }
    let stored = h.ports.store.get(&run.id).await.unwrap().unwrap();
    assert_eq!(stored.state, PipelineState::Promoted);

    let events = received_events(&conf, &url).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["source"], "vaia");
    assert_eq!(events[0]["detail-type"], "vaia.run.promoted");
    assert_eq!(events[0]["detail"]["run_id"], run.id.as_str());
    assert_eq!(events[0]["detail"]["state"], "PROMOTED");
    assert_eq!(events[0]["detail"]["version"], "0.3.0");
    assert_eq!(
        events[0]["detail"]["image_digest"],
        format!("sha256:{}", "c".repeat(64))
    );
    h.stop().await;
}
