//! The latency gate function over in-memory ports: evidence from the bundle, the baseline
//! from the policy or a [`RangeQuery`], the verdict stored and signalled, stale jobs ignored,
//! and no baseline at all is an error, never a pass.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use async_trait::async_trait;
use std::sync::Arc;
use vaia_core::contract::verified_bundle;
use vaia_core::layout::verdict_key;
use vaia_core::memory::{ManualClock, MemoryBlobStore, MemoryQueue, MemoryRunStore};
use vaia_core::messages::{queues, AdvanceMessage, GateJob, Signal};
use vaia_core::policy::Policy;
use vaia_core::ports::{BlobStore, Clock, Queue, RunStore};
use vaia_core::run::{Run, Trigger};
use vaia_core::{CommitSha, GateName, Outcome, PipelineState, Repository, Stage};
use vaia_gate_latency::{LatencyGate, STATS_FILE};
use vaia_gates::latency::prometheus::{Matrix, QueryError, RangeQuery, RangeRequest};

const GOOD: &[u8] = include_bytes!("../../../shared/gates/tests/fixtures/locust/good_stats.csv");
const SLOW: &[u8] = include_bytes!("../../../shared/gates/tests/fixtures/locust/slow_stats.csv");

/// Answers every range query with steps of 0.15 s and records the request.
struct Fake(std::sync::Mutex<Vec<RangeRequest>>);

#[async_trait]
impl RangeQuery for Fake {
    fn describe(&self) -> String {
        "fake-prometheus".into()
    }
    async fn query_range(&self, r: &RangeRequest) -> Result<Matrix, QueryError> {
        self.0.lock().unwrap().push(r.clone());
        Ok(vec![vec![(r.start, 0.15), (r.end, 0.15)]])
    }
}

struct F {
    store: Arc<MemoryRunStore>,
    blobs: Arc<MemoryBlobStore>,
    queue: Arc<MemoryQueue>,
    clock: Arc<ManualClock>,
    run: Run,
}

async fn fixture(policy: Policy, stats: Option<&[u8]>) -> F {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let queue = Arc::new(MemoryQueue::new(clock.clone(), 5));
    let store = Arc::new(MemoryRunStore::new());
    let blobs = Arc::new(MemoryBlobStore::new(None));
    let now = clock.now();
    let mut run = Run::new(
        Repository::new("octo/agent").unwrap(),
        CommitSha::new("c".repeat(40)).unwrap(),
        None,
        Trigger {
            kind: "push".into(),
            delivery: None,
            actor: None,
            at: now,
        },
        policy,
        now,
    );
    run.state = PipelineState::CiRunning;
    let files: Vec<(&str, &[u8])> = stats.map(|b| (STATS_FILE, b)).into_iter().collect();
    verified_bundle(&*blobs, &mut run, &files).await;
    store.create(&run, &[]).await.unwrap();
    F {
        store,
        blobs,
        queue,
        clock,
        run,
    }
}

impl F {
    fn gate(&self, prometheus: Option<Arc<dyn RangeQuery>>) -> LatencyGate {
        LatencyGate::new(
            self.store.clone(),
            self.blobs.clone(),
            self.queue.clone(),
            self.clock.clone(),
            prometheus,
        )
    }

    fn job(&self) -> GateJob {
        GateJob {
            run_id: self.run.id.clone(),
            repository: self.run.repository.clone(),
            commit: self.run.commit.clone(),
            gate: GateName::new("latency").unwrap(),
            stage: Stage::Ci,
            attempt: 0,
        }
    }
}

#[tokio::test]
async fn prometheus_baseline_from_the_policy_query_and_range() {
    let mut policy = Policy::default();
    policy.latency.range = "30m".into();
    let f = fixture(policy, Some(SLOW)).await;
    let fake = Arc::new(Fake(Default::default()));
    let v = f
        .gate(Some(fake.clone()))
        .run(&f.job())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.summary);
    assert_eq!(v.metrics["baseline_p95_ms"], 150.0);
    assert_eq!(v.metrics["range"], "30m");
    let asked = fake.0.lock().unwrap().clone();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].query, vaia_core::policy::DEFAULT_LATENCY_QUERY);
    assert!((asked[0].end - asked[0].start - 1800.0).abs() < 1e-6);
    // The orchestrator is told, the whole verdict in the signal (it is small): no blob.
    let key = verdict_key(&f.run.id, Stage::Ci, &GateName::new("latency").unwrap(), 0).unwrap();
    assert!(f.blobs.get(&key).await.unwrap().is_none());
    let sent = f
        .queue
        .receive(queues::ADVANCE, 10, std::time::Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(sent.len(), 1);
    let msg: AdvanceMessage = serde_json::from_str(&sent[0].body).unwrap();
    let Signal::GateVerdict { verdict, full, .. } = msg.signal else {
        panic!("{:?}", msg.signal);
    };
    assert_eq!(verdict, key);
    assert_eq!(full.as_deref(), Some(&v));
}

#[tokio::test]
async fn a_fixed_baseline_needs_no_prometheus() {
    let mut policy = Policy::default();
    policy.latency.baseline_p95_ms = Some(150.0);
    let f = fixture(policy, Some(GOOD)).await;
    let v = f.gate(None).run(&f.job()).await.unwrap().unwrap();
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.summary);
    assert_eq!(v.metrics["baseline_source"], "fixed");
}

#[tokio::test]
async fn no_baseline_missing_or_unreadable_evidence_never_pass() {
    let f = fixture(Policy::default(), Some(GOOD)).await;
    let v = f.gate(None).run(&f.job()).await.unwrap().unwrap();
    assert_eq!(v.outcome, Outcome::Error);
    assert!(v.summary.contains("VAIA_PROMETHEUS_URL"), "{}", v.summary);

    let f = fixture(Policy::default(), None).await;
    let fake: Arc<dyn RangeQuery> = Arc::new(Fake(Default::default()));
    let v = f
        .gate(Some(fake.clone()))
        .run(&f.job())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v.outcome, Outcome::Error);
    assert!(v.summary.contains(STATS_FILE), "{}", v.summary);

    let f = fixture(Policy::default(), Some(b"not,a,locust\r\nfile\r\n")).await;
    let v = f.gate(Some(fake)).run(&f.job()).await.unwrap().unwrap();
    assert_eq!(v.outcome, Outcome::Fail);
    assert_eq!(v.findings[0].rule, "latency.unreadable");
}

#[tokio::test]
async fn a_job_for_a_run_past_its_stage_is_a_no_op() {
    let mut f = fixture(Policy::default(), Some(GOOD)).await;
    f.run.state = PipelineState::Build;
    let version = f.run.version;
    f.store.save(&f.run, version, &[]).await.unwrap();
    assert!(f.gate(None).run(&f.job()).await.unwrap().is_none());
    assert_eq!(f.queue.depth(queues::ADVANCE).await.unwrap().visible, 0);
}

#[tokio::test]
async fn evidence_over_its_size_limit_is_an_error_naming_file_and_limit() {
    let mut policy = Policy::default();
    policy.latency.baseline_p95_ms = Some(150.0);
    let limit = vaia_gates::limits::LOCUST_CSV.bytes as usize;
    let mut big = GOOD.to_vec();
    big.resize(limit + 1, b'\n');
    let f = fixture(policy, Some(&big)).await;
    let v = f.gate(None).run(&f.job()).await.unwrap().unwrap();
    // The Locust CSV's limit is the evidence file limit (64 MiB), so a bundle listing a
    // larger one is refused as a whole (the registry refuses it at verification, before
    // any gate; here the gate reads the same manifest), naming the file and the limit.
    assert_eq!(v.outcome, Outcome::Error);
    assert_eq!(
        v.summary,
        format!(
            "the candidate's evidence: evidence/octo/agent/{}/manifest.json: $.files[0].bytes: \
             {STATS_FILE} is {} bytes, over the limit of 67108864 bytes per evidence file",
            "c".repeat(40),
            limit + 1
        )
    );
    // At the limit it is read.
    big.truncate(limit);
    let mut policy = Policy::default();
    policy.latency.baseline_p95_ms = Some(150.0);
    let f = fixture(policy, Some(&big)).await;
    let v = f.gate(None).run(&f.job()).await.unwrap().unwrap();
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.summary);
}
