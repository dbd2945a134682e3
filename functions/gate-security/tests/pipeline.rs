//! The security gate function over in-memory ports: the report, the base report and the
//! ignore files from the evidence bundle, the run's `[security]` policy, the verdict stored
//! and signalled; missing or unreadable evidence never passes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use vaia_core::contract::verified_bundle;
use vaia_core::memory::{ManualClock, MemoryBlobStore, MemoryQueue, MemoryRunStore};
use vaia_core::messages::{queues, GateJob};
use vaia_core::policy::Policy;
use vaia_core::ports::{Clock, Queue, RunStore};
use vaia_core::run::{Run, Trigger};
use vaia_core::{CommitSha, GateName, Outcome, PipelineState, Repository, Stage};
use vaia_gate_security::{SecurityGate, BASE_REPORT_FILE, REPORT_FILE};

const ALPINE: &[u8] =
    include_bytes!("../../../shared/gates/tests/fixtures/trivy/alpine-39-high-critical.json");
const DEBIAN: &[u8] =
    include_bytes!("../../../shared/gates/tests/fixtures/trivy/debian-buster.json");

async fn run(policy: Policy, files: &[(&str, &[u8])]) -> (vaia_core::Verdict, Arc<MemoryQueue>) {
    let clock = Arc::new(ManualClock::new(
        chrono::DateTime::parse_from_rfc3339("2026-11-27T10:00:00Z")
            .unwrap()
            .into(),
    ));
    let queue = Arc::new(MemoryQueue::new(clock.clone(), 5));
    let store = Arc::new(MemoryRunStore::new());
    let blobs = Arc::new(MemoryBlobStore::new(None));
    let now = clock.now();
    let mut r = Run::new(
        Repository::new("octo/agent").unwrap(),
        CommitSha::new("d".repeat(40)).unwrap(),
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
    r.state = PipelineState::CiRunning;
    verified_bundle(&*blobs, &mut r, files).await;
    store.create(&r, &[]).await.unwrap();
    let gate = SecurityGate::new(store, blobs, queue.clone(), clock);
    let job = GateJob {
        run_id: r.id.clone(),
        repository: r.repository.clone(),
        commit: r.commit.clone(),
        gate: GateName::new("security").unwrap(),
        stage: Stage::Ci,
        attempt: 0,
    };
    (gate.run(&job).await.unwrap().unwrap(), queue)
}

#[tokio::test]
async fn added_critical_fails_and_inherited_passes() {
    let (v, queue) = run(Policy::default(), &[(REPORT_FILE, ALPINE)]).await;
    assert_eq!(v.outcome, Outcome::Fail, "{}", v.summary);
    assert_eq!(queue.depth(queues::ADVANCE).await.unwrap().visible, 1);
    let (v, _) = run(
        Policy::default(),
        &[(REPORT_FILE, ALPINE), (BASE_REPORT_FILE, ALPINE)],
    )
    .await;
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.summary);
    assert_eq!(v.metrics["inherited"], 2);
}

#[tokio::test]
async fn ignore_files_in_the_bundle_and_the_policy_apply() {
    // Expired on the clock's day (2026-11-27): no longer ignoring.
    let yaml: &[u8] = b"vulnerabilities:\n  - id: CVE-2019-14697\n    expired_at: 2026-11-27\n";
    let (v, _) = run(
        Policy::default(),
        &[(REPORT_FILE, ALPINE), (".trivyignore.yaml", yaml)],
    )
    .await;
    assert_eq!(v.outcome, Outcome::Fail);
    assert_eq!(v.metrics["expired_ignores"], 1);
    let text: &[u8] = b"CVE-2019-14697 exp:2026-11-28\n";
    let (v, _) = run(
        Policy::default(),
        &[(REPORT_FILE, ALPINE), (".trivyignore", text)],
    )
    .await;
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.summary);

    let mut policy = Policy::default();
    policy.security.severities = vec!["LOW".into()];
    let (v, _) = run(policy.clone(), &[(REPORT_FILE, DEBIAN)]).await;
    assert_eq!(v.outcome, Outcome::Fail);
    policy.security.ignore_unfixed = true;
    let (v, _) = run(policy, &[(REPORT_FILE, DEBIAN)]).await;
    assert_eq!(v.outcome, Outcome::Pass, "{}", v.summary);
}

#[tokio::test]
async fn missing_or_unreadable_reports_never_pass() {
    let (v, _) = run(Policy::default(), &[]).await;
    assert_eq!(v.outcome, Outcome::Error);
    assert!(v.summary.contains(REPORT_FILE), "{}", v.summary);
    let (v, _) = run(Policy::default(), &[(REPORT_FILE, &ALPINE[..100])]).await;
    assert_eq!(v.outcome, Outcome::Fail);
    assert_eq!(v.findings[0].rule, "security.unreadable");
}
