use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use vaia_core::ids::{BlobKey, CommitSha, ImageDigest, Repository};
use vaia_core::memory::{ManualClock, MemoryQueue, MemoryRunStore};
use vaia_core::policy::Policy;
use vaia_core::ports::{NoMetrics, OutgoingMessage, PortResult, QueueDepth};
use vaia_core::run::{EvidenceRecord, Run, Trigger};
use vaia_core::PipelineState;

struct Fixture {
    store: Arc<MemoryRunStore>,
    queue: Arc<MemoryQueue>,
    clock: Arc<ManualClock>,
    run: Run,
}

fn fixture() -> Fixture {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let queue = Arc::new(MemoryQueue::new(clock.clone(), 5));
    let store = Arc::new(MemoryRunStore::new());
    let now = clock.now();
    let run = Run::new(
        Repository::new("octo/agent").unwrap(),
        CommitSha::new("a".repeat(40)).unwrap(),
        Some("main".into()),
        Trigger {
            kind: "push".into(),
            delivery: None,
            actor: None,
            at: now,
        },
        Policy::schema_only(),
        now,
    );
    Fixture {
        store,
        queue,
        clock,
        run,
    }
}

impl Fixture {
    fn orchestrator(&self, queue: Arc<dyn Queue>) -> Orchestrator {
        Orchestrator::new(
            self.store.clone(),
            queue,
            self.clock.clone(),
            Arc::new(NoMetrics),
        )
    }

    async fn created(self) -> Self {
        self.store.create(&self.run, &[]).await.unwrap();
        self
    }

    fn trigger(&self) -> AdvanceMessage {
        AdvanceMessage {
            run_id: self.run.id.clone(),
            expect: Some(PipelineState::Idle),
            actor: "webhook".into(),
            signal: Signal::Trigger,
        }
    }

    fn evidence(&self) -> AdvanceMessage {
        AdvanceMessage {
            run_id: self.run.id.clone(),
            expect: Some(PipelineState::Triggered),
            actor: "registry".into(),
            signal: Signal::EvidenceVerified {
                evidence: EvidenceRecord {
                    manifest: BlobKey::new("evidence/octo/agent/m.json").unwrap(),
                    manifest_sha256: "0".repeat(64),
                    image_digest: ImageDigest::new(format!("sha256:{}", "1".repeat(64))).unwrap(),
                    base_digest: None,
                    dataset: None,
                    files: vec![],
                },
            },
        }
    }

    async fn state(&self) -> PipelineState {
        self.store.get(&self.run.id).await.unwrap().unwrap().state
    }
}

#[tokio::test]
async fn redelivery_applies_once() {
    let f = fixture().created().await;
    let o = f.orchestrator(f.queue.clone());
    let first = o.advance("m-1", &f.trigger()).await.unwrap();
    assert_eq!(
        first,
        Advanced::Applied {
            transitions: 1,
            effects: 1
        }
    );
    for _ in 0..10 {
        let again = o.advance("m-2", &f.trigger()).await.unwrap();
        assert!(
            matches!(again, Advanced::Ignored { resent: 0, .. }),
            "{again:?}"
        );
    }
    assert_eq!(f.state().await, PipelineState::Triggered);
    assert_eq!(f.store.events(&f.run.id).await.unwrap().len(), 1);
    assert_eq!(f.queue.depth(queues::REGISTRY).await.unwrap().visible, 1);
}

#[tokio::test]
async fn a_redelivered_refusal_is_logged_once() {
    let f = fixture().created().await;
    let o = f.orchestrator(f.queue.clone());
    let rollback = AdvanceMessage {
        run_id: f.run.id.clone(),
        expect: None,
        actor: "ops".into(),
        signal: Signal::Rollback {
            reason: "alert".into(),
        },
    };
    let first = o.advance("m-1", &rollback).await.unwrap();
    assert!(
        matches!(first, Advanced::Applied { transitions: 0, .. }),
        "{first:?}"
    );
    for _ in 0..3 {
        let again = o.advance("m-1", &rollback).await.unwrap();
        assert!(
            matches!(again, Advanced::Ignored { resent: 0, .. }),
            "{again:?}"
        );
    }
    let events = f.store.events(&f.run.id).await.unwrap();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].kind, EventKind::Refused);
    // Another request (another message) is refused and logged too.
    o.advance("m-2", &rollback).await.unwrap();
    assert_eq!(f.store.events(&f.run.id).await.unwrap().len(), 2);
    assert!(o.idempotent_by_itself());
}

/// A queue that refuses the first `failures` sends, as if the process died after the
/// run was written but before its effects went out.
struct FlakyQueue {
    inner: Arc<MemoryQueue>,
    failures: AtomicUsize,
}

#[async_trait]
impl Queue for FlakyQueue {
    async fn send(&self, queue: &str, message: OutgoingMessage) -> PortResult<String> {
        if self.failures.load(Ordering::SeqCst) > 0 {
            self.failures.fetch_sub(1, Ordering::SeqCst);
            return Err(PortError::Unavailable("send failed".into()));
        }
        self.inner.send(queue, message).await
    }
    async fn receive(&self, q: &str, max: usize, v: Duration) -> PortResult<Vec<ReceivedMessage>> {
        self.inner.receive(q, max, v).await
    }
    async fn delete(&self, q: &str, r: &str) -> PortResult<()> {
        self.inner.delete(q, r).await
    }
    async fn fail(&self, q: &str, r: &str, reason: &str, retryable: bool) -> PortResult<()> {
        self.inner.fail(q, r, reason, retryable).await
    }
    async fn depth(&self, q: &str) -> PortResult<QueueDepth> {
        self.inner.depth(q).await
    }
}

#[tokio::test]
async fn redelivery_after_a_lost_send_resends_the_effects() {
    let f = fixture().created().await;
    let flaky = Arc::new(FlakyQueue {
        inner: f.queue.clone(),
        failures: AtomicUsize::new(1),
    });
    let o = f.orchestrator(flaky);
    let err = o.advance("m-1", &f.trigger()).await.unwrap_err();
    assert!(HandlerError::from(err).retryable);
    assert_eq!(
        f.state().await,
        PipelineState::Triggered,
        "the write landed"
    );
    assert_eq!(
        f.queue.depth(queues::REGISTRY).await.unwrap().visible,
        0,
        "the send did not"
    );

    let again = o.advance("m-1", &f.trigger()).await.unwrap();
    assert!(
        matches!(again, Advanced::Ignored { resent: 1, .. }),
        "{again:?}"
    );
    assert_eq!(f.queue.depth(queues::REGISTRY).await.unwrap().visible, 1);
    // A third delivery re-sends too, but the dedupe key makes it the same message.
    o.advance("m-1", &f.trigger()).await.unwrap();
    assert_eq!(f.queue.depth(queues::REGISTRY).await.unwrap().visible, 1);
}

#[tokio::test]
async fn racing_orchestrators_apply_exactly_one_transition() {
    for _ in 0..20 {
        let f = fixture().created().await;
        let a = Arc::new(f.orchestrator(f.queue.clone()));
        let b = Arc::new(f.orchestrator(f.queue.clone()));
        a.advance("m-0", &f.trigger()).await.unwrap();
        let msg = f.evidence();
        let (ra, rb) = tokio::join!(
            {
                let a = a.clone();
                let m = msg.clone();
                tokio::spawn(async move { a.advance("m-a", &m).await })
            },
            {
                let b = b.clone();
                let m = msg.clone();
                tokio::spawn(async move { b.advance("m-b", &m).await })
            },
        );
        let results = [ra.unwrap().unwrap(), rb.unwrap().unwrap()];
        let applied = results
            .iter()
            .filter(|r| matches!(r, Advanced::Applied { .. }))
            .count();
        assert_eq!(applied, 1, "{results:?}");
        let events = f.store.events(&f.run.id).await.unwrap();
        let to_ci = events
            .iter()
            .filter(|e| e.to == Some(PipelineState::CiRunning))
            .count();
        assert_eq!(to_ci, 1);
        assert_eq!(f.queue.depth("gate-schema").await.unwrap().visible, 1);
    }
}

#[tokio::test]
async fn unknown_runs_and_bad_bodies_are_permanent_failures() {
    let f = fixture();
    let o = f.orchestrator(f.queue.clone());
    let err: HandlerError = o.advance("m", &f.trigger()).await.unwrap_err().into();
    assert!(!err.retryable);
    assert!(err.reason.contains("not found"));
    let msg = ReceivedMessage {
        id: "m-9".into(),
        receipt: "r".into(),
        body: "{\"run_id\":".into(),
        receive_count: 1,
    };
    let err = o.handle(&msg).await.unwrap_err();
    assert!(!err.retryable);
    assert!(
        err.reason.contains("advance message m-9: bad body"),
        "{}",
        err.reason
    );
}

#[tokio::test]
async fn sweep_times_out_overdue_runs() {
    let f = fixture().created().await;
    let o = f.orchestrator(f.queue.clone());
    o.advance("m-1", &f.trigger()).await.unwrap();
    assert_eq!(o.sweep(10).await.unwrap(), 0);
    f.clock.advance(Duration::from_secs(3601));
    assert_eq!(o.sweep(10).await.unwrap(), 1);
    let received = f
        .queue
        .receive(queues::ADVANCE, 10, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(received.len(), 1);
    o.handle(&received[0]).await.unwrap();
    assert_eq!(f.state().await, PipelineState::Failed);
}
