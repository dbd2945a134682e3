//! Evaluations over the in-memory ports: the budget from stored records, one training job
//! for any number of evaluations, errors that queue nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::drift::ReportDrift;
use std::time::Duration;
use vaia_core::memory::{ManualClock, MemoryBlobStore, MemoryQueue};
use vaia_core::ports::{Clock, ReceivedMessage};

const SCHEMA: &str = include_str!("../schema/training-job.v1.schema.json");

struct F {
    blobs: Arc<MemoryBlobStore>,
    queue: Arc<MemoryQueue>,
    clock: Arc<ManualClock>,
    repo: Repository,
}

fn fixture() -> F {
    let clock = Arc::new(ManualClock::new(
        DateTime::parse_from_rfc3339("2026-12-02T13:00:00Z")
            .unwrap()
            .with_timezone(&Utc),
    ));
    F {
        queue: Arc::new(MemoryQueue::new(clock.clone(), 5)),
        blobs: Arc::new(MemoryBlobStore::new(None)),
        clock,
        repo: Repository::new("octo/agent").unwrap(),
    }
}

impl F {
    fn ct(&self) -> CtBudget {
        CtBudget::new(
            self.blobs.clone(),
            self.queue.clone(),
            self.clock.clone(),
            CtPolicy::default(),
            Arc::new(ReportDrift {
                blobs: self.blobs.clone(),
            }),
        )
    }

    async fn put(&self, key: &str, value: serde_json::Value) {
        self.blobs
            .put(&BlobKey::new(key).unwrap(), value.to_string().as_bytes())
            .await
            .unwrap();
    }

    /// `prod` at 1.2.0, promoted with `data/train.dvc` md5 a… of `base_rows` rows.
    async fn promoted(&self, base_rows: Option<u64>) {
        crate::seed::promoted(
            self.blobs.as_ref(),
            &self.repo,
            semver::Version::new(1, 2, 0),
            &"a".repeat(32),
            base_rows,
            self.clock.now(),
        )
        .await
        .unwrap();
    }

    async fn snapshot(&self, md5: &str, rows: Option<u64>, minutes: i64) {
        crate::seed::snapshot(
            self.blobs.as_ref(),
            &self.repo,
            md5,
            rows,
            self.clock.now() + chrono::Duration::minutes(minutes),
        )
        .await
        .unwrap();
    }

    async fn drift(&self, value: serde_json::Value) {
        self.put("drift/octo/agent/20261202T125500Z.json", value)
            .await;
    }

    async fn jobs(&self) -> Vec<ReceivedMessage> {
        self.queue
            .receive(TRAINING_QUEUE, 10, Duration::from_secs(60))
            .await
            .unwrap()
    }
}

fn fresh(score: f64) -> serde_json::Value {
    serde_json::json!({"drift_score": score, "computed_at": "2026-12-02T12:55:00Z"})
}

#[tokio::test]
async fn new_rows_over_the_baseline_queue_one_valid_training_job() {
    let f = fixture();
    f.promoted(Some(100_000)).await;
    f.snapshot(&"b".repeat(32), Some(112_000), 5).await;
    f.snapshot(&"9".repeat(32), Some(101_000), 1).await; // older than b…
    f.drift(fresh(0.1)).await;
    let e = f.ct().evaluate(&f.repo).await.unwrap().unwrap();
    assert_eq!(e.budget.outcome, CtOutcome::Retrain, "{e:?}");
    assert_eq!(e.budget.delta_rows, Some(12_000));
    assert!((e.budget.budget.unwrap() - 0.46).abs() < 1e-9);
    assert_eq!(e.job_status.as_deref(), Some("queued"));
    let jobs = f.jobs().await;
    assert_eq!(jobs.len(), 1);
    let body: serde_json::Value = serde_json::from_str(&jobs[0].body).unwrap();
    let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&body)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}\n{body:#}");
    assert_eq!(body["snapshot"]["md5"], "b".repeat(32));
    assert_eq!(body["prod_version"], "1.2.0");
    assert_eq!(
        body["id"],
        job_id(&f.repo, &semver::Version::new(1, 2, 0), &"b".repeat(32))
    );
    // Recorded, and the latest is readable.
    let latest = f
        .blobs
        .get(&latest_evaluation_key(&f.repo).unwrap())
        .await
        .unwrap()
        .unwrap();
    let latest: serde_json::Value = serde_json::from_slice(&latest).unwrap();
    assert_eq!(latest["outcome"], "retrain");
    assert_eq!(
        f.blobs
            .list(&evaluations_prefix(&f.repo))
            .await
            .unwrap()
            .len(),
        1
    );
    // The schema is not a rubber stamp.
    let mut bad = body.clone();
    bad["drift"] = serde_json::json!(1.5);
    assert!(!validator.is_valid(&bad));
}

#[tokio::test]
async fn a_thousand_evaluations_queue_the_job_once() {
    let f = fixture();
    f.promoted(Some(0)).await;
    f.snapshot(&"b".repeat(32), Some(50_000), 5).await;
    f.drift(fresh(0.0)).await;
    let ct = f.ct();
    for i in 0..1000 {
        let e = ct.evaluate(&f.repo).await.unwrap().unwrap();
        assert_eq!(e.budget.outcome, CtOutcome::Retrain);
        if i > 0 {
            assert_eq!(e.job_status.as_deref(), Some("already queued"));
        }
        f.clock.advance(Duration::from_millis(1));
    }
    assert_eq!(f.jobs().await.len(), 1);
    // A new snapshot is a new job.
    f.snapshot(&"c".repeat(32), Some(60_000), 10).await;
    let e = ct.evaluate(&f.repo).await.unwrap().unwrap();
    assert_eq!(e.job_status.as_deref(), Some("queued"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_evaluators_queue_the_job_once() {
    for _ in 0..20 {
        let f = fixture();
        f.promoted(Some(0)).await;
        f.snapshot(&"b".repeat(32), Some(50_000), 5).await;
        f.drift(fresh(0.5)).await;
        let (a, b) = (Arc::new(f.ct()), Arc::new(f.ct()));
        let repo = f.repo.clone();
        let (ra, rb) = tokio::join!(
            tokio::spawn({
                let repo = repo.clone();
                async move { a.evaluate(&repo).await }
            }),
            tokio::spawn(async move { b.evaluate(&repo).await }),
        );
        ra.unwrap().unwrap();
        rb.unwrap().unwrap();
        assert_eq!(f.jobs().await.len(), 1);
    }
}

#[tokio::test]
async fn a_claim_whose_owner_died_is_sent_by_the_next_evaluation() {
    let f = fixture();
    f.promoted(Some(0)).await;
    f.snapshot(&"b".repeat(32), Some(50_000), 5).await;
    f.drift(fresh(0.5)).await;
    let e = f.ct().evaluate(&f.repo).await.unwrap().unwrap();
    let id = e.job.unwrap();
    // Simulate an owner that claimed and died: the claim is back to `claimed` and the
    // queue never got the message.
    let key = job_key(&f.repo, &id).unwrap();
    let mut claim: serde_json::Value =
        serde_json::from_slice(&f.blobs.get(&key).await.unwrap().unwrap()).unwrap();
    assert_eq!(claim["state"], "queued");
    claim["state"] = "claimed".into();
    f.blobs
        .put(&key, claim.to_string().as_bytes())
        .await
        .unwrap();
    let fresh_queue = Arc::new(MemoryQueue::new(f.clock.clone(), 5));
    let ct = CtBudget::new(
        f.blobs.clone(),
        fresh_queue.clone(),
        f.clock.clone(),
        CtPolicy::default(),
        Arc::new(ReportDrift {
            blobs: f.blobs.clone(),
        }),
    );
    let e = ct.evaluate(&f.repo).await.unwrap().unwrap();
    assert_eq!(e.job_status.as_deref(), Some("queued"));
    let got = fresh_queue
        .receive(TRAINING_QUEUE, 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    let e = ct.evaluate(&f.repo).await.unwrap().unwrap();
    assert_eq!(e.job_status.as_deref(), Some("already queued"));
}

#[tokio::test]
async fn unusable_drift_is_an_error_and_queues_nothing() {
    for (report, needle) in [
        (None, "no drift report"),
        (Some(fresh(1.5)), "outside [0, 1]"),
        (Some(fresh(-0.2)), "outside [0, 1]"),
        (
            Some(serde_json::json!({"drift_score": 0.9, "computed_at": "2026-12-02T10:00:00Z"})),
            "older than ct.max_drift_age",
        ),
        (
            Some(serde_json::json!({"score": 0.9})),
            "neither a plain report",
        ),
        (
            Some(serde_json::json!({"drift_score": "NaN"})),
            "expected a number",
        ),
    ] {
        let f = fixture();
        f.promoted(Some(0)).await;
        f.snapshot(&"b".repeat(32), Some(50_000), 5).await;
        if let Some(r) = report {
            f.drift(r).await;
        }
        let e = f.ct().evaluate(&f.repo).await.unwrap().unwrap();
        assert_eq!(e.budget.outcome, CtOutcome::Error, "{needle}: {e:?}");
        assert!(
            e.budget.reasons.iter().any(|r| r.contains(needle)),
            "{needle}: {:?}",
            e.budget.reasons
        );
        assert_eq!(e.job, None);
        assert!(f.jobs().await.is_empty(), "{needle}");
        assert!(f
            .blobs
            .get(&latest_evaluation_key(&f.repo).unwrap())
            .await
            .unwrap()
            .is_some());
    }
}

#[tokio::test]
async fn unknown_rows_are_inconclusive_and_nothing_in_prod_is_not_evaluated() {
    let f = fixture();
    assert_eq!(f.ct().evaluate(&f.repo).await.unwrap(), None);
    assert!(f.ct().evaluate_all().await.unwrap().is_empty());
    f.promoted(None).await;
    f.snapshot(&"b".repeat(32), Some(50_000), 5).await;
    f.drift(fresh(0.9)).await;
    let all = f.ct().evaluate_all().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].budget.outcome, CtOutcome::Inconclusive);
    assert!(f.jobs().await.is_empty());
}

#[tokio::test]
async fn no_newer_snapshot_means_no_new_rows() {
    let f = fixture();
    f.promoted(Some(1000)).await;
    f.drift(fresh(0.2)).await;
    let e = f.ct().evaluate(&f.repo).await.unwrap().unwrap();
    assert_eq!(e.budget.delta_rows, Some(0));
    assert_eq!(e.budget.outcome, CtOutcome::Hold);
}

#[tokio::test]
async fn a_queued_job_consumes_the_pending_data_volume() {
    use vaia_data_watcher::{BlobRawData, DataWatcher, RawObject, Volume};
    let f = fixture();
    f.promoted(Some(0)).await;
    f.put(
        "registry/octo/agent/versions/1.2.0.json",
        serde_json::json!({}),
    )
    .await;
    f.snapshot(&"b".repeat(32), Some(50_000), 5).await;
    f.drift(fresh(0.5)).await;
    let watcher = DataWatcher::new(
        f.blobs.clone(),
        Arc::new(BlobRawData(f.blobs.clone())),
        f.clock.clone(),
    );
    let raw = |key: &str, size| RawObject {
        key: key.into(),
        size,
        sequencer: Some("01".into()),
    };
    watcher
        .observe(&raw("raw/octo/agent/a b.csv", 300))
        .await
        .unwrap();
    watcher
        .observe(&raw("raw/octo/agent/ü.csv", 700))
        .await
        .unwrap();
    let e = f.ct().evaluate(&f.repo).await.unwrap().unwrap();
    assert_eq!(e.job_status.as_deref(), Some("queued"));
    assert_eq!(
        e.pending_data,
        Some(Volume {
            objects: 2,
            bytes: 1000
        })
    );
    let jobs = f.jobs().await;
    assert_eq!(jobs.len(), 1);
    let body: serde_json::Value = serde_json::from_str(&jobs[0].body).unwrap();
    assert_eq!(body["pending_data_volume_bytes"], 1000);
    assert_eq!(watcher.pending(&f.repo).await.unwrap(), Volume::default());
    // Data landing later stays pending: the job already queued does not take it.
    watcher
        .observe(&raw("raw/octo/agent/c.csv", 50))
        .await
        .unwrap();
    let e = f.ct().evaluate(&f.repo).await.unwrap().unwrap();
    assert_eq!(e.job_status.as_deref(), Some("already queued"));
    assert_eq!(e.pending_data.map(|v| v.bytes), Some(50));
    assert_eq!(watcher.pending(&f.repo).await.unwrap().bytes, 50);
    // The stored claim keeps the volume the message carried.
    let claim: serde_json::Value = serde_json::from_slice(
        &f.blobs
            .get(&job_key(&f.repo, e.job.as_ref().unwrap()).unwrap())
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claim["job"]["pending_data_volume_bytes"], 1000);
}
