//! End to end on the AWS adapters, against a local moto server: GitHub push through the
//! webhook handler, run state in DynamoDB, transitions chained through SQS (FIFO per run),
//! evidence uploaded to S3 whose object-created notifications reach the registry through
//! an SQS queue, exactly as deployed. Lambda's SQS event source mapping is emulated by
//! `vaia_aws::testing::deliver` (batch → `SqsBatch` → delete all but the failures).
//!
//! Also the races the deployment must survive: two orchestrators on one run make one
//! transition; the webhook raced with itself on one delivery id makes one run.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use sha2::{Digest, Sha256};
use std::sync::Arc;
use vaia_core::messages::{queues, AdvanceMessage, Signal};
use vaia_core::ports::{NoMetrics, Queue, RunStore};
use vaia_core::run::EventKind;
use vaia_core::{CommitSha, ImageDigest, PipelineState};
use vaia_orchestrator::Orchestrator;
use vaia_tests::aws::{commit, run_id, DeployOptions, Deployment};

const TRIVY: &[u8] = include_bytes!("../examples/demo/trivy-clean.json");
const LOCUST: &[u8] = include_bytes!("../shared/gates/tests/fixtures/locust/good_stats.csv");
/// The tools and release gates with a fixed latency baseline, as the local end-to-end test
/// runs them; the agent gates need the example agent's evidence (tests/agent_gates.rs,
/// and all five on AWS in tests/aws_cost.rs).
const POLICY: &str =
    "[stages]\nci = [\"schema\", \"security\", \"latency\"]\n\n[latency]\nbaseline_p95_ms = 150.0\n";

async fn deploy(test: &str) -> Option<Deployment> {
    vaia_tests::aws::deploy(
        test,
        DeployOptions {
            policy: POLICY,
            judge: Default::default(),
            metered: false,
        },
    )
    .await
}

/// The agent's CI: tools, Trivy report and Locust statistics, as one archive or (`per_file`)
/// each its own object, then the manifest.
async fn upload_evidence(d: &Deployment, commit: &CommitSha, tools: &[u8], per_file: bool) {
    let image = ImageDigest::new(format!("sha256:{}", hex::encode(Sha256::digest(tools)))).unwrap();
    let files: &[(&str, &[u8])] = &[
        ("tools.json", tools),
        ("trivy.json", TRIVY),
        ("locust_stats.csv", LOCUST),
    ];
    if per_file {
        d.upload_per_file(commit, &image, files).await;
    } else {
        d.upload(commit, &image, files).await;
    }
}

const TOOLS_V1: &[u8] = include_bytes!("../examples/demo/tools-v1.json");
const TOOLS_V3_BREAKING: &[u8] = include_bytes!("../examples/demo/tools-v3-breaking.json");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_then_breaking_run_through_dynamodb_sqs_and_s3() {
    let Some(d) = deploy("e2e").await else { return };

    // Happy: the first release is promoted.
    let c1 = commit(1);
    let (status, body) = d.push(&c1, "delivery-1").await;
    assert_eq!(status, 201, "{body}");
    // Production's evidence as one archive, the candidate's per file: both forms are
    // announced by S3 and verified, and the schema gate reads one against the other.
    upload_evidence(&d, &c1, TOOLS_V1, false).await;
    let run = d.settle(&run_id(&c1)).await;
    assert_eq!(run.state, PipelineState::Promoted, "{run:?}");
    let events = d.p.store.events(&run.id).await.unwrap();
    let path: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::Transition)
        .filter_map(|e| e.to)
        .collect();
    assert_eq!(
        path,
        [
            PipelineState::Triggered,
            PipelineState::CiRunning,
            PipelineState::Build,
            PipelineState::StagingEval,
            PipelineState::CtQueued,
            PipelineState::Promoted
        ],
        "the happy path, each transition logged once"
    );
    let verified = run.candidate.evidence.as_ref().map(|e| e.manifest.as_str());
    assert!(
        verified.is_some_and(|k| k.ends_with("/bundle.tar")),
        "the archive arrived through S3 → SQS: {verified:?}"
    );
    let passed: Vec<(String, &str)> = run
        .verdicts
        .iter()
        .map(|(g, v)| (g.to_string(), v.outcome.as_str()))
        .collect();
    assert_eq!(
        passed,
        [
            ("latency".to_string(), "pass"),
            ("schema".to_string(), "pass"),
            ("security".to_string(), "pass")
        ],
        "each gate judged the evidence read from S3"
    );

    // Failing: a breaking tool change fails the schema gate.
    let c2 = commit(2);
    let (status, body) = d.push(&c2, "delivery-2").await;
    assert_eq!(status, 201, "{body}");
    upload_evidence(&d, &c2, TOOLS_V3_BREAKING, true).await;
    let run = d.settle(&run_id(&c2)).await;
    assert_eq!(run.state, PipelineState::Failed, "{run:?}");
    assert!(run.failure.is_some());
    let verified = run.candidate.evidence.as_ref().map(|e| e.manifest.as_str());
    assert!(
        verified.is_some_and(|k| k.ends_with("/manifest.json")),
        "{verified:?}"
    );
    let schema = &run.verdicts[&vaia_core::GateName::new("schema").unwrap()];
    assert_eq!(
        schema.outcome.as_str(),
        "fail",
        "judged against the archive's tools.json"
    );

    // Nothing left anywhere, nothing dead-lettered.
    for q in vaia_aws::testing::DEPLOYED_QUEUES {
        let depth = d.p.queue.depth(q).await.unwrap();
        assert_eq!(depth.dead, 0, "{q}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_orchestrators_racing_on_one_run_make_one_transition() {
    let Some(d) = deploy("race-orch").await else {
        return;
    };
    let c = commit(3);
    let (status, _) = d.push(&c, "delivery-race-orch").await;
    assert_eq!(status, 201);
    let id = run_id(&c);
    let before = d.p.store.get(&id).await.unwrap().unwrap();
    let message = AdvanceMessage {
        run_id: id.clone(),
        expect: Some(before.state),
        actor: "test".into(),
        signal: Signal::Trigger,
    };
    let mut tasks = Vec::new();
    for i in 0..8 {
        let o = Orchestrator::new(
            d.p.store.clone(),
            d.p.queue.clone(),
            d.p.clock.clone(),
            Arc::new(NoMetrics),
        );
        let m = message.clone();
        tasks.push(tokio::spawn(async move {
            o.advance(&format!("copy-{i}"), &m).await
        }));
    }
    for t in tasks {
        // Losers either see the move and stand down, or report contention to retry.
        let _ = t.await.unwrap();
    }
    let after = d.p.store.get(&id).await.unwrap().unwrap();
    assert_eq!(after.state, PipelineState::Triggered);
    assert_eq!(after.version, before.version + 1, "exactly one write");
    let transitions =
        d.p.store
            .events(&id)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.to == Some(PipelineState::Triggered))
            .count();
    assert_eq!(transitions, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_webhook_raced_on_one_delivery_makes_one_run() {
    let Some(d) = deploy("race-hook").await else {
        return;
    };
    let d = Arc::new(d);
    let c = commit(4);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let d = d.clone();
        let c = c.clone();
        tasks.push(tokio::spawn(
            async move { d.push(&c, "one-delivery").await },
        ));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap().0);
    }
    // The winner creates (201); racing copies are told to retry (409) or get the stored
    // answer of the first (201 again): never a second run.
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
    assert!(statuses.contains(&201), "{statuses:?}");
    let page = d.p.store.list(10, None).await.unwrap();
    assert_eq!(page.runs.len(), 1);
    assert_eq!(
        d.p.queue.depth(queues::ADVANCE).await.unwrap().visible,
        1,
        "one trigger"
    );
}
