//! Continuous training end to end on the AWS adapters, against a local moto server, wired
//! as `infra/template.yaml` wires it ([`vaia_tests::aws`]):
//!
//! - a real S3 PUT under `raw/<owner>/<repo>/` of the data bucket (keys with spaces and
//!   non-ASCII characters) → S3's object-created notification on the `raw-data` queue →
//!   the data-watcher function's handler → the pending data volume in the artifacts
//!   bucket; S3 delivering a notification again counts nothing twice;
//! - a scheduled `ct-budget` evaluation over the threshold → one `vaia.training-job/v1` on
//!   the `training` FIFO queue carrying that pending volume, which the job consumes; a
//!   second evaluation queues nothing more; data landing afterwards is pending again;
//! - a DVC file pushed under `datasets/` → S3's notification on `blob-events` → the
//!   registry records the snapshot and asks on `ct-evaluate` → the ct-budget function's
//!   handler evaluates that repository at once and queues its training job;
//! - the `prod` alias moved by racing promotions through S3's compare-and-swap
//!   (`If-Match`): no history entry is lost.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;
use vaia_core::policy::Policy;
use vaia_core::ports::{BlobStore, OutgoingMessage, Queue, RunStore};
use vaia_core::{BlobKey, Repository};
use vaia_ct_budget::{drift, scheduled, seed, CtBudget, TRAINING_QUEUE};
use vaia_data_watcher::{Volume, RAW_DATA_QUEUE};
use vaia_tests::aws::{DeployOptions, Deployment, REPO};

async fn deploy(test: &str) -> Option<Deployment> {
    vaia_tests::aws::deploy(
        test,
        DeployOptions {
            policy: "",
            judge: Default::default(),
            metered: false,
        },
    )
    .await
}

/// Every message on the training queue, acknowledged (the trainer consuming them).
async fn take_training_jobs(d: &Deployment) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    // FIFO receives can come back short: read until two empty polls in a row.
    let mut empty = 0;
    while empty < 2 {
        let got =
            d.p.queue
                .receive(TRAINING_QUEUE, 10, Duration::from_secs(30))
                .await
                .unwrap();
        if got.is_empty() {
            empty += 1;
        }
        for m in got {
            out.push(serde_json::from_str::<serde_json::Value>(&m.body).unwrap());
            d.p.queue.delete(TRAINING_QUEUE, &m.receipt).await.unwrap();
        }
    }
    out
}

async fn put_raw(data: &vaia_aws::S3BlobStore, key: &str, size: usize) {
    data.client()
        .put_object()
        .bucket(data.bucket())
        .key(key)
        .body(vec![b'x'; size].into())
        .send()
        .await
        .unwrap();
}

/// The bodies of the `raw-data` queue's messages naming `key`s, read without consuming
/// them (they come back once their one-second visibility ends).
async fn peek_raw_notifications(d: &Deployment, keys: &[&str]) -> Vec<String> {
    let mut bodies: Vec<String> = Vec::new();
    for _ in 0..20 {
        for m in
            d.p.queue
                .receive(RAW_DATA_QUEUE, 10, Duration::from_secs(1))
                .await
                .unwrap()
        {
            if !bodies.contains(&m.body) {
                bodies.push(m.body);
            }
        }
        let named = |k: &str| {
            bodies.iter().any(|b| {
                vaia_aws::s3event::parse_raw_notification(b)
                    .ok()
                    .flatten()
                    .is_some_and(|objects| objects.iter().any(|o| o.key == k))
            })
        };
        if keys.iter().all(|k| named(k)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    bodies
}

/// Sends S3's notification `bodies` to the `raw-data` queue again (S3 delivers at least
/// once) and delivers them to the data watcher.
async fn redeliver(d: &Deployment, bodies: &[String]) {
    for body in bodies {
        d.p.queue
            .send(
                RAW_DATA_QUEUE,
                OutgoingMessage {
                    body: body.clone(),
                    dedupe_key: None,
                    group: None,
                },
            )
            .await
            .unwrap();
    }
    let again = d.drain(RAW_DATA_QUEUE).await;
    assert_eq!(again.len(), bodies.len(), "{again:?}");
    assert!(
        again
            .iter()
            .all(|o| matches!(o, vaia_aws::RecordOutcome::Done)),
        "{again:?}"
    );
}

/// The CT budget as the ct-budget function builds it: the report drift source, the data
/// watcher's reconciliation before a scheduled evaluation.
fn ct_budget(d: &Deployment, watcher: Option<Arc<vaia_data_watcher::DataWatcher>>) -> CtBudget {
    let blobs: Arc<dyn BlobStore> = d.p.blobs.clone();
    let policy = Policy::from_toml("[ct]\ndrift_source = \"report\"\n", "vaia.toml").unwrap();
    let drift = drift::from_policy(&policy.ct, blobs.clone(), None, d.p.clock.clone());
    let ct = CtBudget::new(
        blobs,
        d.p.queue.clone(),
        d.p.clock.clone(),
        policy.ct,
        drift,
    );
    match watcher {
        Some(w) => ct.with_data_watcher(w),
        None => ct,
    }
}

/// `octo-org/agent` in production at 1.2.0, trained on 100,000 rows, drift 0.1.
async fn promoted(d: &Deployment, now: chrono::DateTime<chrono::Utc>) -> Repository {
    let repo = Repository::new(REPO).unwrap();
    let blobs = d.p.blobs.as_ref();
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
    repo
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pushed_snapshot_is_evaluated_at_once() {
    use vaia_aws::lambda::{self, Source};
    use vaia_core::messages::queues;
    let Some(mut d) = deploy("ct-snapshot").await else {
        return;
    };
    let repo = promoted(&d, chrono::Utc::now()).await;
    let ct = Arc::new(ct_budget(&d, None));
    let asks = lambda::batch(
        &d.p,
        vec![lambda::route(
            &d.p.queue,
            queues::CT_EVALUATE,
            Source::Messages,
            Arc::new(vaia_ct_budget::asked::EvaluateAsked(ct)),
        )],
    );
    d.consumers.push((queues::CT_EVALUATE.to_string(), asks));
    // The data pipeline pushes its .dvc after `dvc push`: 120,000 rows, 20,000 new.
    let dvc = include_str!("../shared/dvc/tests/fixtures/with-meta.dvc");
    d.p.blobs
        .put(
            &BlobKey::new(format!("datasets/{REPO}/data/train.dvc")).unwrap(),
            dvc.as_bytes(),
        )
        .await
        .unwrap();
    let registry = d.drain(queues::BLOB_EVENTS).await;
    assert!(
        registry
            .iter()
            .all(|o| matches!(o, vaia_aws::RecordOutcome::Done)),
        "{registry:?}"
    );
    let evaluated = d.drain(queues::CT_EVALUATE).await;
    assert_eq!(
        evaluated.len(),
        1,
        "one ask for the one snapshot: {evaluated:?}"
    );
    assert!(matches!(evaluated[0], vaia_aws::RecordOutcome::Done));
    let jobs = take_training_jobs(&d).await;
    assert_eq!(jobs.len(), 1, "{jobs:#?}");
    assert_eq!(jobs[0]["repository"], REPO);
    assert_eq!(
        jobs[0]["snapshot"]["md5"],
        "9b7c4b5bb4e2b0b6a1b7f3c2d1e0f9a8.dir"
    );
    assert_eq!(jobs[0]["delta_rows"], 20_000);
    let latest =
        d.p.blobs
            .get(&vaia_ct_budget::latest_evaluation_key(&repo).unwrap())
            .await
            .unwrap();
    assert!(latest.is_some(), "the evaluation is recorded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_data_through_s3_notifications_is_consumed_by_one_training_job() {
    let Some(mut d) = deploy("ct-e2e").await else {
        return;
    };
    let (data, watcher) = d.with_data_bucket().await;
    let blobs: Arc<dyn BlobStore> = d.p.blobs.clone();
    let now = chrono::Utc::now();
    let repo = promoted(&d, now).await;

    // Raw data named as people name files, and an object outside raw/ (not notified).
    let landed = [
        ("raw/octo-org/agent/tickets export (EU).csv", 300usize),
        ("raw/octo-org/agent/résumés 日本.jsonl", 700),
    ];
    for (key, size) in landed {
        put_raw(&data, key, size).await;
    }
    put_raw(&data, "staging/octo-org/agent/scratch.csv", 5_000).await;

    let bodies = peek_raw_notifications(&d, &landed.map(|(k, _)| k)).await;
    let outcomes = d.drain(RAW_DATA_QUEUE).await;
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, vaia_aws::RecordOutcome::Done)),
        "{outcomes:?}"
    );
    let want = Volume {
        objects: 2,
        bytes: 1_000,
    };
    assert_eq!(watcher.pending(&repo).await.unwrap(), want);
    assert_eq!(
        watcher.reconcile(&repo).await.unwrap(),
        Volume::default(),
        "every object was counted from its notification, none left for reconciliation"
    );

    // S3 delivers at least once: the same notifications again count nothing.
    redeliver(&d, &bodies).await;
    assert_eq!(watcher.pending(&repo).await.unwrap(), want);

    // A new snapshot of 112,000 rows: 0.6 · 0.1 + 0.4 · 1 = 0.46, over the threshold 0.4.
    seed::snapshot(
        blobs.as_ref(),
        &repo,
        &"b".repeat(32),
        Some(112_000),
        now + chrono::Duration::minutes(1),
    )
    .await
    .unwrap();
    let ct = ct_budget(&d, Some(watcher.clone()));
    let event = vaia_aws::testing::fixture("eventbridge-ct-budget-scheduled.json");
    let first = scheduled::run(&ct, &event).await.unwrap();
    assert_eq!(first.outcomes.get("retrain"), Some(&1), "{first:?}");
    assert_eq!(first.queued.len(), 1, "{first:?}");
    let jobs = take_training_jobs(&d).await;
    assert_eq!(jobs.len(), 1, "{jobs:#?}");
    let job = &jobs[0];
    assert_eq!(job["schema"], vaia_ct_budget::TRAINING_JOB_SCHEMA);
    assert_eq!(job["id"], first.queued[0]);
    assert_eq!(job["repository"], REPO);
    assert_eq!(job["snapshot"]["md5"], "b".repeat(32));
    assert_eq!(job["pending_data_volume_bytes"], 1_000, "{job:#}");
    assert_eq!(
        watcher.pending(&repo).await.unwrap(),
        Volume::default(),
        "the queued job consumed the pending volume"
    );

    // A notification S3 delivers late, after the job took its object, changes nothing.
    redeliver(&d, &bodies).await;
    assert_eq!(watcher.pending(&repo).await.unwrap(), Volume::default());

    // The next evaluation sees the same budget: the job is queued already.
    let second = scheduled::run(&ct, &event).await.unwrap();
    assert_eq!(second.outcomes.get("retrain"), Some(&1), "{second:?}");
    assert!(second.queued.is_empty(), "{second:?}");
    assert!(take_training_jobs(&d).await.is_empty());

    // Data landing after the job is pending for the next one.
    put_raw(&data, "raw/octo-org/agent/later+more.csv", 42).await;
    d.drain(RAW_DATA_QUEUE).await;
    assert_eq!(
        watcher.pending(&repo).await.unwrap(),
        Volume {
            objects: 1,
            bytes: 42
        }
    );
}

/// Racing promotions of one repository through the registry on S3 and DynamoDB: each
/// reads `prod` with its ETag and writes with `If-Match`; a loser re-reads and retries,
/// so every promoted run ends up in `prod` or its history.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_promotions_on_s3_lose_no_history_entry() {
    const N: u32 = 6;
    let Some(d) = deploy("alias-race").await else {
        return;
    };
    let registry = Arc::new(vaia_registry::Registry::new(
        d.p.store.clone(),
        d.p.blobs.clone(),
        d.p.queue.clone(),
        d.p.clock.clone(),
    ));
    let mut runs = Vec::new();
    for i in 0..=N {
        let commit = vaia_tests::aws::commit(i);
        let now = chrono::Utc::now();
        let mut run = vaia_core::run::Run::new(
            Repository::new(REPO).unwrap(),
            commit,
            None,
            vaia_core::run::Trigger {
                kind: "push".into(),
                delivery: None,
                actor: None,
                at: now,
            },
            Policy::schema_only(),
            now,
        );
        run.state = vaia_core::PipelineState::Promoted;
        run.candidate.version = Some(semver::Version::new(1, u64::from(i), 0));
        run.candidate.image_digest =
            Some(vaia_core::ImageDigest::new(format!("sha256:{}", "e".repeat(64))).unwrap());
        d.p.store.create(&run, &[]).await.unwrap();
        runs.push(run.id);
    }
    let promote =
        |id: &vaia_core::RunId| vaia_core::messages::RegistryJob::Promote { run_id: id.clone() };
    // Something is in prod already, so every racer reads one record with one ETag.
    registry.job(&promote(&runs[0])).await.unwrap();
    let mut handles = Vec::new();
    for id in &runs[1..] {
        let registry = registry.clone();
        let job = promote(id);
        handles.push(tokio::spawn(async move { registry.job(&job).await }));
    }
    for h in handles {
        h.await.unwrap().unwrap();
    }
    let alias = registry
        .alias(&Repository::new(REPO).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alias.history.len(), N as usize, "{alias:#?}");
    assert_eq!(alias.history.last().unwrap().run_id, runs[0], "oldest last");
    let mut seen: Vec<_> = std::iter::once(alias.target.run_id.clone())
        .chain(alias.history.iter().map(|t| t.run_id.clone()))
        .collect();
    seen.sort();
    runs.sort();
    assert_eq!(seen, runs, "no promotion lost");
}
