//! Continuous training on the local stack, end to end: a run is promoted with a dataset
//! snapshot (its CT baseline), a data pipeline pushes a newer `.dvc` with 12,000 more rows,
//! the registry records the snapshot and the stack evaluates the CT budget at once — the
//! schedule is an hour away — (0.6 · 0.1 + 0.4 · min(12,000 / 10,000, 1) = 0.46 ≥ 0.4):
//! one training job on the `training` queue. Repeated evaluations find it due and never
//! queue it again; `GET /api/ct/...`, `/metrics` and the queue agree. And the schedule
//! alone (every second) evaluates every repository in production, queueing once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};
use vaia::client::Client;
use vaia::demo::{push_payload, wait_settled};
use vaia::stack::{Stack, StackConfig, StackOptions};
use vaia_core::evidence::DatasetSnapshot;
use vaia_core::policy::Policy;
use vaia_core::{BlobKey, CommitSha, ImageDigest, PipelineState, Repository};
use vaia_ct_budget::{seed, TRAINING_QUEUE};
use vaia_webhook::WebhookSecret;

const SECRET: &str = "ct-local-secret";

/// What `dvc add data/train` writes (DVC 3: `hash: md5`), with the rows the data pipeline
/// declares under `meta`.
fn dvc_file(md5: &str, rows: u64) -> String {
    format!(
        "outs:\n- md5: {md5}\n  size: 7340032\n  hash: md5\n  path: train\nmeta:\n  rows: {rows}\n"
    )
}

/// A local stack whose drift comes from reports and whose CT schedule fires `every`.
async fn ct_stack(every: Duration) -> (Stack, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut policy = Policy::schema_only();
    policy.ct.drift_source = vaia_core::ct::DriftSource::Report;
    let config = StackConfig {
        data_dir: dir.path().to_path_buf(),
        bind: "127.0.0.1".into(),
        port: 0,
        policy,
        secret: WebhookSecret::new(SECRET).unwrap(),
        alertmanager_token: None,
    };
    let options = StackOptions {
        ct_every: Some(every),
        ..StackOptions::default()
    };
    (Stack::start_with(config, options).await.unwrap(), dir)
}

async fn training_depth(stack: &Stack) -> u64 {
    let d = stack.ports.queue.depth(TRAINING_QUEUE).await.unwrap();
    d.visible + d.in_flight
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_snapshot_over_the_threshold_queues_one_training_job() {
    // The schedule never fires during the test: only the new snapshot can trigger.
    let (stack, _dir) = ct_stack(Duration::from_secs(3600)).await;
    let client = Client::new(&stack.url());
    let repo = Repository::new("octo/agent").unwrap();

    // Promoted with data/train at 100,000 rows: the CT baseline.
    let sha = CommitSha::new("1".repeat(40)).unwrap();
    let (status, answer) = client
        .send_webhook(SECRET, "push", "ct-1", &push_payload(&repo, &sha).unwrap())
        .await
        .unwrap();
    assert_eq!(status, 201, "{answer}");
    let image = ImageDigest::new(format!("sha256:{}", "c".repeat(64))).unwrap();
    let tools = include_str!("../examples/demo/tools-v1.json");
    client
        .upload_evidence(
            &repo,
            &sha,
            &image,
            Some(DatasetSnapshot {
                path: "data/train.dvc".into(),
                md5: "a".repeat(32),
                rows: Some(100_000),
            }),
            &[("tools.json".into(), tools.as_bytes().to_vec())],
        )
        .await
        .unwrap();
    let run = wait_settled(
        &client,
        answer["run_id"].as_str().unwrap(),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert_eq!(run.run.state, PipelineState::Promoted, "{:#?}", run.events);
    seed::drift_report(stack.ports.blobs.as_ref(), &repo, 0.1, chrono::Utc::now())
        .await
        .unwrap();
    // Nothing new yet: no job, however often it is evaluated.
    let e = stack.ct.evaluate(&repo).await.unwrap().unwrap();
    assert_eq!(e.budget.outcome, vaia_core::ct::CtOutcome::Hold, "{e:?}");
    assert_eq!(training_depth(&stack).await, 0);

    // The data pipeline pushes the new snapshot's .dvc after `dvc push`.
    let new_md5 = "b".repeat(32);
    stack
        .ports
        .blobs
        .put(
            &BlobKey::new("datasets/octo/agent/data/train.dvc").unwrap(),
            dvc_file(&new_md5, 112_000).as_bytes(),
        )
        .await
        .unwrap();
    // The new snapshot triggers an evaluation.
    let deadline = Instant::now() + Duration::from_secs(20);
    while training_depth(&stack).await == 0 {
        assert!(Instant::now() < deadline, "no training job was queued");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Repeated evaluations find it due and already queued.
    for _ in 0..5 {
        let e = stack.ct.evaluate(&repo).await.unwrap().unwrap();
        assert_eq!(e.budget.outcome, vaia_core::ct::CtOutcome::Retrain, "{e:?}");
        assert_eq!(
            e.job_status.as_deref(),
            Some(vaia_ct_budget::JOB_ALREADY_QUEUED)
        );
    }
    assert_eq!(training_depth(&stack).await, 1);
    let jobs = stack
        .ports
        .queue
        .receive(TRAINING_QUEUE, 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    let job: serde_json::Value = serde_json::from_str(&jobs[0].body).unwrap();
    assert_eq!(job["schema"], vaia_ct_budget::TRAINING_JOB_SCHEMA);
    assert_eq!(job["prod_version"], "0.1.0");
    assert_eq!(job["image_digest"], image.as_str());
    assert_eq!(job["snapshot"]["md5"], new_md5);
    assert_eq!(job["delta_rows"], 12_000);

    // The API: the latest evaluation and the recent ones, newest first.
    let http = reqwest::Client::new();
    let body: serde_json::Value = http
        .get(format!("{}/api/ct/octo/agent?limit=3", stack.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["latest"]["outcome"], "retrain", "{body:#}");
    assert_eq!(body["latest"]["delta_rows"], 12_000);
    let evals = body["evaluations"].as_array().unwrap();
    assert_eq!(evals.len(), 3);
    assert!(evals[0]["at"].as_str() >= evals[1]["at"].as_str());
    assert_eq!(
        evals.iter().filter(|e| e["job_status"] == "queued").count(),
        0,
        "only the first evaluation queued"
    );

    // Metrics, per repository and in all.
    let metrics = http
        .get(format!("{}/metrics", stack.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "ct_retrains_queued_total 1",
        "ct_dataset_delta_rows{repository=\"octo/agent\"} 12000",
        "ct_drift_score{repository=\"octo/agent\"} 0.1",
        "vaia_queue_messages{queue=\"training\",status=\"in_flight\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "missing {line:?} in\n{metrics}"
        );
    }
    let budget = metrics
        .lines()
        .find_map(|l| l.strip_prefix("ct_training_budget{repository=\"octo/agent\"} "))
        .unwrap_or_else(|| panic!("no budget in\n{metrics}"));
    assert!(
        (budget.parse::<f64>().unwrap() - 0.46).abs() < 1e-9,
        "{budget}"
    );
    assert!(
        metrics
            .lines()
            .any(|l| l == "ct_evaluations_total{outcome=\"retrain\"} 1"),
        "the snapshot's evaluation is the stack's one retrain evaluation:\n{metrics}"
    );
    stack.stop().await;
}

async fn recorded(stack: &Stack, repo: &Repository) -> usize {
    stack
        .ports
        .blobs
        .list(&vaia_ct_budget::evaluations_prefix(repo))
        .await
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedule_evaluates_every_repository_and_queues_once() {
    let (stack, _dir) = ct_stack(Duration::from_secs(1)).await;
    let blobs = stack.ports.blobs.as_ref();
    let now = chrono::Utc::now();
    // Two repositories in production, as the registry leaves them (written directly, so
    // no snapshot event triggers anything): one with 20,000 new rows, one with none.
    let (due, idle) = (
        Repository::new("octo/due").unwrap(),
        Repository::new("octo/idle").unwrap(),
    );
    for repo in [&due, &idle] {
        seed::promoted(
            blobs,
            repo,
            semver::Version::new(2, 0, 0),
            &"a".repeat(32),
            Some(1_000),
            now,
        )
        .await
        .unwrap();
        seed::drift_report(blobs, repo, 0.05, now).await.unwrap();
    }
    seed::snapshot(blobs, &due, &"b".repeat(32), Some(21_000), now)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while recorded(&stack, &due).await < 3 || recorded(&stack, &idle).await < 3 {
        assert!(
            Instant::now() < deadline,
            "the schedule did not evaluate three times"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(training_depth(&stack).await, 1);
    let jobs = stack
        .ports
        .queue
        .receive(TRAINING_QUEUE, 10, Duration::from_secs(60))
        .await
        .unwrap();
    let job: serde_json::Value = serde_json::from_str(&jobs[0].body).unwrap();
    assert_eq!(job["repository"], "octo/due");
    let latest = stack.ct.evaluate(&idle).await.unwrap().unwrap();
    assert_eq!(latest.budget.outcome, vaia_core::ct::CtOutcome::Hold);
    stack.stop().await;
}
