//! Reliability of the Lambda batch adapter over the AWS adapters (moto where a service is
//! involved): N deliveries of one message → one side effect, even when racing; k of n
//! failing → exactly those k in `batchItemFailures`; permanent failures dead-lettered
//! with their reason without failing the rest; a poison message in the dead-letter queue
//! after maxReceiveCount with its reason.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use async_trait::async_trait;
use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vaia_aws::lambda::{DeadLetterSink, Route, Source, SqsBatch};
use vaia_aws::testing::{deliver, moto, ports};
use vaia_aws::RecordOutcome;
use vaia_core::ports::{
    HandlerError, MessageHandler, OutgoingMessage, PortResult, Queue, ReceivedMessage, SystemClock,
};

/// Counts its side effects; fails on bodies starting with `retry` (retryable) or `bad`
/// (permanent); takes `delay` per message so racing copies overlap.
#[derive(Default)]
struct Counting {
    effects: AtomicU64,
    delay: Duration,
}

#[async_trait]
impl MessageHandler for Counting {
    async fn handle(&self, m: &ReceivedMessage) -> Result<(), HandlerError> {
        tokio::time::sleep(self.delay).await;
        if m.body.starts_with("retry") {
            return Err(HandlerError::retryable(format!("transient on {}", m.body)));
        }
        if m.body.starts_with("bad") {
            return Err(HandlerError::permanent(format!("cannot parse {}", m.body)));
        }
        self.effects.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

/// Records dead letters in memory.
#[derive(Default)]
struct Sink(Mutex<Vec<(String, String, String)>>);

#[async_trait]
impl DeadLetterSink for Sink {
    async fn dead_letter(
        &self,
        queue: &str,
        _id: &str,
        body: &str,
        _group: Option<&str>,
        reason: &str,
    ) -> PortResult<()> {
        self.0
            .lock()
            .unwrap()
            .push((queue.into(), body.into(), reason.into()));
        Ok(())
    }
}

fn record(id: &str, body: &str, receive_count: u32) -> SqsMessage {
    let mut r = SqsMessage::default();
    r.message_id = Some(id.into());
    r.receipt_handle = Some(format!("receipt-{id}"));
    r.body = Some(body.into());
    r.event_source_arn = Some("arn:aws:sqs:us-east-1:123456789012:t-work".into());
    r.attributes
        .insert("ApproximateReceiveCount".into(), receive_count.to_string());
    r
}

fn event(records: Vec<SqsMessage>) -> SqsEvent {
    let mut e = SqsEvent::default();
    e.records = records;
    e
}

fn batch(handler: Arc<Counting>, sink: Arc<Sink>, max: u32) -> SqsBatch {
    SqsBatch::new(
        vec![Route {
            queue: "work".into(),
            physical: "t-work".into(),
            source: Source::Messages,
            handler,
        }],
        sink,
        Arc::new(SystemClock),
        max,
    )
}

#[tokio::test]
async fn k_of_n_failing_returns_exactly_those_k() {
    let handler = Arc::new(Counting::default());
    let sink = Arc::new(Sink::default());
    let b = batch(handler.clone(), sink.clone(), 5);
    let bodies = [
        "ok-1", "retry-2", "ok-3", "bad-4", "retry-5", "ok-6", "bad-7", "ok-8",
    ];
    let records = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| record(&format!("m{i}"), body, 1))
        .collect();
    let (response, outcomes) = b.process(event(records)).await;
    let failed: BTreeSet<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, ["m1", "m4"].map(String::from).into_iter().collect());
    assert_eq!(
        handler.effects.load(Ordering::SeqCst),
        4,
        "the others were handled"
    );
    // Permanent failures: dead-lettered with their reasons, not in the failures.
    let dead = sink.0.lock().unwrap().clone();
    assert_eq!(
        dead.iter().map(|d| d.1.as_str()).collect::<Vec<_>>(),
        ["bad-4", "bad-7"]
    );
    assert!(dead
        .iter()
        .all(|d| d.0 == "work" && d.2.starts_with("cannot parse")));
    assert!(matches!(outcomes[3], RecordOutcome::DeadLettered(_)));
}

#[tokio::test]
async fn a_retryable_failure_on_the_last_receive_is_dead_lettered_with_its_reason() {
    let handler = Arc::new(Counting::default());
    let sink = Arc::new(Sink::default());
    let b = batch(handler, sink.clone(), 3);
    let (response, outcomes) = b
        .process(event(vec![
            record("a", "retry-a", 2),
            record("b", "retry-b", 3),
        ]))
        .await;
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(response.batch_item_failures[0].item_identifier, "a");
    assert!(
        matches!(&outcomes[1], RecordOutcome::DeadLettered(r) if r.contains("transient on retry-b") && r.contains("3 of 3"))
    );
    assert_eq!(sink.0.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_fifo_group_stops_at_its_first_failure() {
    let handler = Arc::new(Counting::default());
    let sink = Arc::new(Sink::default());
    let b = batch(handler.clone(), sink, 5);
    let mut records = vec![
        record("g1", "retry-1", 1),
        record("g2", "ok-2", 1),
        record("h1", "ok-3", 1),
    ];
    records[0]
        .attributes
        .insert("MessageGroupId".into(), "run-a".into());
    records[1]
        .attributes
        .insert("MessageGroupId".into(), "run-a".into());
    records[2]
        .attributes
        .insert("MessageGroupId".into(), "run-b".into());
    let (response, _) = b.process(event(records)).await;
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(
        failed,
        ["g1", "g2"],
        "g2 waits behind g1; h1 is not held up"
    );
    assert_eq!(handler.effects.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_record_of_an_unknown_queue_is_not_handled() {
    let handler = Arc::new(Counting::default());
    let b = SqsBatch::new(
        vec![
            Route {
                queue: "a".into(),
                physical: "t-a".into(),
                source: Source::Messages,
                handler: handler.clone(),
            },
            Route {
                queue: "b".into(),
                physical: "t-b".into(),
                source: Source::Messages,
                handler: handler.clone(),
            },
        ],
        Arc::new(Sink::default()),
        Arc::new(SystemClock),
        5,
    );
    let (response, _) = b.process(event(vec![record("x", "ok", 1)])).await;
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(handler.effects.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn n_deliveries_make_one_side_effect_even_racing() {
    let Some(m) = moto() else { return };
    let p = ports(m, "once", 5).await;
    let handler = Arc::new(Counting {
        effects: AtomicU64::new(0),
        delay: Duration::from_millis(300),
    });
    let b = Arc::new(
        batch(handler.clone(), Arc::new(Sink::default()), 5)
            .with_idempotency(p.idempotency.clone(), Duration::from_secs(30)),
    );
    // Eight copies of one message (one message id) delivered at once.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let b = b.clone();
        tasks.push(tokio::spawn(async move {
            b.process(event(vec![record("same-id", "ok", 1)])).await
        }));
    }
    let mut done = 0;
    for t in tasks {
        let (_, outcomes) = t.await.unwrap();
        match &outcomes[0] {
            RecordOutcome::Done => done += 1,
            RecordOutcome::Retry(r) => assert!(r.contains("another invocation"), "{r}"),
            RecordOutcome::Duplicate => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(done, 1, "exactly one copy ran the handler");
    // Later redeliveries are acknowledged as duplicates.
    for _ in 0..3 {
        let (response, outcomes) = b.process(event(vec![record("same-id", "ok", 2)])).await;
        assert!(response.batch_item_failures.is_empty());
        assert_eq!(outcomes, [RecordOutcome::Duplicate]);
    }
    assert_eq!(handler.effects.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_reaches_the_dead_letter_queue_after_max_receives_with_its_reason() {
    let Some(m) = moto() else { return };
    let max = 3;
    let p = ports(m, "poison", max).await;
    let handler = Arc::new(Counting::default());
    let route = vaia_aws::lambda::route(&p.queue, "work", Source::Messages, handler.clone());
    let b = SqsBatch::new(vec![route], p.queue.clone(), Arc::new(SystemClock), max);
    p.queue
        .send(
            "work",
            OutgoingMessage {
                body: "retry-poison".into(),
                dedupe_key: Some("poison-1".into()),
                group: Some("run-x".into()),
            },
        )
        .await
        .unwrap();
    p.queue
        .send(
            "work",
            OutgoingMessage {
                body: "ok-healthy".into(),
                dedupe_key: Some("healthy-1".into()),
                group: Some("run-y".into()),
            },
        )
        .await
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..(max * 3) {
        let outcomes = deliver(&p.queue, "work", &b, Duration::from_secs(1))
            .await
            .unwrap();
        seen.extend(outcomes);
        if seen
            .iter()
            .any(|o| matches!(o, RecordOutcome::DeadLettered(_)))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1200)).await;
    }
    let retries = seen
        .iter()
        .filter(|o| matches!(o, RecordOutcome::Retry(_)))
        .count();
    assert_eq!(
        retries as u32,
        max - 1,
        "retried until the last receive: {seen:?}"
    );
    assert_eq!(
        handler.effects.load(Ordering::SeqCst),
        1,
        "the healthy message ran once"
    );
    let dead = p.queue.dead_letters("work").await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].0, "retry-poison");
    let reason = dead[0].1.clone().unwrap_or_default();
    assert!(reason.contains("transient on retry-poison"), "{reason}");
    assert!(reason.contains(&format!("{max} of {max}")), "{reason}");
    let depth = p.queue.depth("work").await.unwrap();
    assert_eq!((depth.visible, depth.in_flight, depth.dead), (0, 0, 1));
}

/// A handler that says it is idempotent by itself (the orchestrator, the gates).
struct SelfIdempotent(Counting);

#[async_trait]
impl MessageHandler for SelfIdempotent {
    async fn handle(&self, m: &ReceivedMessage) -> Result<(), HandlerError> {
        self.0.handle(m).await
    }
    fn idempotent_by_itself(&self) -> bool {
        true
    }
}

/// Counts the claims made of it.
#[derive(Default)]
struct CountingClaims {
    inner: vaia_core::memory::MemoryIdempotency,
    claims: AtomicU64,
}

#[async_trait]
impl vaia_core::ports::Idempotency for CountingClaims {
    async fn claim(
        &self,
        key: &str,
        ttl: Duration,
        now: vaia_core::run::Timestamp,
    ) -> PortResult<vaia_core::ports::Claim> {
        self.claims.fetch_add(1, Ordering::SeqCst);
        self.inner.claim(key, ttl, now).await
    }
    async fn complete(
        &self,
        key: &str,
        result: &str,
        now: vaia_core::run::Timestamp,
    ) -> PortResult<()> {
        self.inner.complete(key, result, now).await
    }
    async fn release(&self, key: &str) -> PortResult<()> {
        self.inner.release(key).await
    }
}

#[tokio::test]
async fn a_handler_idempotent_by_itself_is_run_without_records() {
    let claims = Arc::new(CountingClaims::default());
    let records = |handler: Arc<dyn MessageHandler>| {
        SqsBatch::new(
            vec![Route {
                queue: "q".into(),
                physical: "t-q".into(),
                source: Source::Messages,
                handler,
            }],
            Arc::new(Sink::default()),
            Arc::new(SystemClock),
            5,
        )
        .with_idempotency(claims.clone(), Duration::from_secs(30))
    };
    let itself = Arc::new(SelfIdempotent(Counting::default()));
    let b = records(itself.clone());
    for _ in 0..3 {
        let (_, outcomes) = b.process(event(vec![record("same-id", "ok", 1)])).await;
        assert_eq!(outcomes, [RecordOutcome::Done]);
    }
    assert_eq!(claims.claims.load(Ordering::SeqCst), 0, "no record claimed");
    assert_eq!(
        itself.0.effects.load(Ordering::SeqCst),
        3,
        "the handler ran each time"
    );
    // Any other handler is still claimed and completed once.
    let other = Arc::new(Counting::default());
    let b = records(other.clone());
    for _ in 0..3 {
        b.process(event(vec![record("same-id", "ok", 1)])).await;
    }
    assert_eq!(claims.claims.load(Ordering::SeqCst), 3);
    assert_eq!(other.effects.load(Ordering::SeqCst), 1);
}

/// Records the time left before the deadline its handler ran under.
#[derive(Default)]
struct SeesDeadline(Mutex<Vec<Option<Duration>>>);

#[async_trait]
impl MessageHandler for SeesDeadline {
    async fn handle(&self, _: &ReceivedMessage) -> Result<(), HandlerError> {
        let left = vaia_core::deadline::remaining();
        self.0.lock().unwrap().push(left);
        Ok(())
    }
}

#[tokio::test]
async fn an_invocation_runs_under_its_context_deadline_less_the_margin() {
    let seen = Arc::new(SeesDeadline::default());
    let b = SqsBatch::new(
        vec![Route {
            queue: "work".into(),
            physical: "t-work".into(),
            source: Source::Messages,
            handler: seen.clone(),
        }],
        Arc::new(Sink::default()),
        Arc::new(SystemClock),
        5,
    );
    let invocation = |deadline_ms: u64| {
        let mut context = lambda_runtime::Context::default();
        context.deadline = deadline_ms;
        lambda_runtime::LambdaEvent::new(event(vec![record("m1", "ok", 1)]), context)
    };
    let in_10s = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap() + 10_000;
    let answer = vaia_aws::lambda::invoke(&b, invocation(in_10s)).await;
    assert!(answer.batch_item_failures.is_empty());
    // A context without a deadline (0) sets none.
    vaia_aws::lambda::invoke(&b, invocation(0)).await;
    let seen = seen.0.lock().unwrap().clone();
    let expected = Duration::from_secs(10) - vaia_aws::lambda::DEADLINE_MARGIN;
    let left = seen[0].expect("the handler ran under a deadline");
    assert!(
        left <= expected && left > expected - Duration::from_secs(1),
        "{left:?} left, expected about {expected:?}"
    );
    assert_eq!(seen[1], None);
}
