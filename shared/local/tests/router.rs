//! The router against the SQLite queue: retries, dead-lettering, panics, wake-ups,
//! bounded concurrency and shutdown.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use vaia_core::ports::{HandlerError, MessageHandler, OutgoingMessage, Queue, ReceivedMessage};
use vaia_local::{Drained, LocalOptions, LocalStore, QueueOptions, RouteOptions};

fn open(max_receives: u32) -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = LocalOptions {
        queue: QueueOptions {
            max_receives,
            retry_backoff: Duration::from_millis(10),
            ..QueueOptions::default()
        },
        ..LocalOptions::default()
    };
    let store = LocalStore::open(dir.path(), opts).expect("open");
    (dir, store)
}

fn msg(body: impl Into<String>) -> OutgoingMessage {
    OutgoingMessage {
        body: body.into(),
        dedupe_key: None,
        group: None,
    }
}

fn opts() -> RouteOptions {
    RouteOptions {
        batch: 10,
        visibility: Duration::from_secs(5),
        concurrency: 4,
    }
}

/// Fails the first `fail_first` deliveries of each body in `flaky`, then succeeds.
#[derive(Default)]
struct Flaky {
    flaky: Vec<String>,
    fail_first: u32,
    seen: Mutex<HashMap<String, u32>>,
}

#[async_trait]
impl MessageHandler for Flaky {
    async fn handle(&self, m: &ReceivedMessage) -> Result<(), HandlerError> {
        let n = {
            let mut seen = self.seen.lock().expect("lock");
            let n = seen.entry(m.body.clone()).or_default();
            *n += 1;
            *n
        };
        assert_eq!(n, m.receive_count, "receive_count counts deliveries");
        if self.flaky.contains(&m.body) && n <= self.fail_first {
            return Err(HandlerError::retryable(format!("flaky #{n}")));
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_failures_are_redelivered_until_they_succeed() {
    let (_dir, store) = open(5);
    let n = 20;
    let k = 6;
    for i in 0..n {
        store
            .queue
            .send("work", msg(format!("m{i}")))
            .await
            .expect("send");
    }
    let handler = Arc::new(Flaky {
        flaky: (0..k).map(|i| format!("m{i}")).collect(),
        fail_first: 2,
        ..Flaky::default()
    });
    let mut router = store.router();
    router.route("work", handler.clone(), opts());
    let drained = router.drain().await.expect("drain");
    assert_eq!(
        drained,
        Drained {
            delivered: n + 2 * k,
            succeeded: n,
            failed: 2 * k
        }
    );
    let depth = store.queue.depth("work").await.expect("depth");
    assert_eq!((depth.visible, depth.in_flight, depth.dead), (0, 0, 0));
}

struct AlwaysFails {
    retryable: bool,
}

#[async_trait]
impl MessageHandler for AlwaysFails {
    async fn handle(&self, m: &ReceivedMessage) -> Result<(), HandlerError> {
        Err(HandlerError {
            reason: format!("cannot handle {} (attempt {})", m.body, m.receive_count),
            retryable: self.retryable,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_reaches_the_dead_letter_queue_with_its_reason() {
    let (_dir, store) = open(3);
    store.queue.send("work", msg("poison")).await.expect("send");
    let mut router = store.router();
    router.route("work", Arc::new(AlwaysFails { retryable: true }), opts());
    let drained = router.drain().await.expect("drain");
    assert_eq!((drained.delivered, drained.failed), (3, 3));
    let dead = store
        .queue
        .dead_letters("work")
        .await
        .expect("dead letters");
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "poison");
    let reason = dead[0].reason.clone().unwrap_or_default();
    assert!(reason.contains("exceeded 3 receives"), "{reason}");
    assert!(
        reason.contains("cannot handle poison (attempt 3)"),
        "{reason}"
    );

    // A permanent failure goes at once.
    store.queue.send("strict", msg("bad")).await.expect("send");
    let mut router = store.router();
    router.route("strict", Arc::new(AlwaysFails { retryable: false }), opts());
    let drained = router.drain().await.expect("drain");
    assert_eq!(drained.delivered, 1);
    let dead = store
        .queue
        .dead_letters("strict")
        .await
        .expect("dead letters");
    assert_eq!(
        dead[0].reason.as_deref(),
        Some("not retryable: cannot handle bad (attempt 1)")
    );

    // Redrive gives the messages a fresh set of receives.
    assert_eq!(store.queue.redrive("strict").await, Ok(1));
    let mut router = store.router();
    router.route("strict", Arc::new(Flaky::default()), opts());
    assert_eq!(router.drain().await.expect("drain").succeeded, 1);
    assert_eq!(store.queue.depth("strict").await.expect("depth").dead, 0);
}

/// Panics on the first delivery of every message.
struct PanicsOnce;

#[async_trait]
impl MessageHandler for PanicsOnce {
    async fn handle(&self, m: &ReceivedMessage) -> Result<(), HandlerError> {
        if m.receive_count == 1 {
            panic!("handler bug on {}", m.id);
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_a_retryable_failure() {
    let (_dir, store) = open(5);
    for i in 0..5 {
        store
            .queue
            .send("work", msg(format!("m{i}")))
            .await
            .expect("send");
    }
    let mut router = store.router();
    router.route("work", Arc::new(PanicsOnce), opts());
    let drained = router.drain().await.expect("drain");
    assert_eq!(
        drained,
        Drained {
            delivered: 10,
            succeeded: 5,
            failed: 5
        }
    );

    // The spawned router survives panics too.
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let handles = router.spawn(shutdown);
    for i in 0..5 {
        store
            .queue
            .send("work", msg(format!("p{i}")))
            .await
            .expect("send");
    }
    wait_until_empty(&store, "work").await;
    stop.send(true).expect("stop");
    for h in handles {
        tokio::time::timeout(Duration::from_secs(5), h)
            .await
            .expect("consumer stops")
            .expect("consumer did not panic");
    }
}

async fn wait_until_empty(store: &LocalStore, queue: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let d = store.queue.depth(queue).await.expect("depth");
        if d.visible == 0 && d.in_flight == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "{queue} never emptied: {d:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Reports each handled body.
struct Report(tokio::sync::mpsc::UnboundedSender<(String, Instant)>);

#[async_trait]
impl MessageHandler for Report {
    async fn handle(&self, m: &ReceivedMessage) -> Result<(), HandlerError> {
        let _ = self.0.send((m.body.clone(), Instant::now()));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_wake_the_consumer_without_waiting_for_a_poll() {
    let (_dir, store) = open(5);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // A poll interval far longer than the test: only the send signal can deliver in time.
    let mut router = store.router().with_poll_interval(Duration::from_secs(60));
    router.route("work", Arc::new(Report(tx)), opts());
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let handles = router.spawn(shutdown);
    tokio::time::sleep(Duration::from_millis(50)).await; // the consumer is idle now
    let mut worst = Duration::ZERO;
    for i in 0..20 {
        let sent = Instant::now();
        store
            .queue
            .send("work", msg(format!("m{i}")))
            .await
            .expect("send");
        let (body, at) = tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .expect("delivered promptly")
            .expect("channel open");
        assert_eq!(body, format!("m{i}"));
        worst = worst.max(at - sent);
    }
    assert!(
        worst < Duration::from_millis(500),
        "worst latency {worst:?}"
    );
    stop.send(true).expect("stop");
    for h in handles {
        h.await.expect("consumer");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_groups_unblock_on_delete_without_a_poll() {
    let (_dir, store) = open(5);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut router = store.router().with_poll_interval(Duration::from_secs(60));
    router.route("work", Arc::new(Report(tx)), opts());
    for i in 0..5 {
        let m = OutgoingMessage {
            body: format!("g{i}"),
            dedupe_key: None,
            group: Some("run-1".into()),
        };
        store.queue.send("work", m).await.expect("send");
    }
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let handles = router.spawn(shutdown);
    for i in 0..5 {
        let (body, _) = tokio::time::timeout(Duration::from_secs(2), rx.recv())
            .await
            .expect("delivered promptly")
            .expect("channel open");
        assert_eq!(body, format!("g{i}"), "in group order");
    }
    stop.send(true).expect("stop");
    for h in handles {
        h.await.expect("consumer");
    }
}

/// Sleeps, tracking how many calls run at once.
#[derive(Default)]
struct Slow {
    now: AtomicUsize,
    max: AtomicUsize,
}

#[async_trait]
impl MessageHandler for Slow {
    async fn handle(&self, _: &ReceivedMessage) -> Result<(), HandlerError> {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_bounded_and_shutdown_finishes_held_messages() {
    let (_dir, store) = open(5);
    for i in 0..12 {
        store
            .queue
            .send("work", msg(format!("m{i}")))
            .await
            .expect("send");
    }
    let slow = Arc::new(Slow::default());
    let mut router = store.router();
    let route = RouteOptions {
        concurrency: 3,
        ..opts()
    };
    router.route("work", slow.clone(), route);
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let handles = router.spawn(shutdown);
    tokio::time::sleep(Duration::from_millis(30)).await;
    stop.send(true).expect("stop");
    for h in handles {
        h.await.expect("consumer");
    }
    assert!(slow.max.load(Ordering::SeqCst) <= 3);
    assert_eq!(slow.now.load(Ordering::SeqCst), 0, "held messages finished");
    let d = store.queue.depth("work").await.expect("depth");
    assert_eq!(d.in_flight, 0, "nothing left invisible by the shutdown");

    // drain respects the bound as well and finishes the rest.
    let drained = router.drain().await.expect("drain");
    assert_eq!(drained.succeeded, d.visible);
    assert!(slow.max.load(Ordering::SeqCst) <= 3);
}

/// Forwards every message to the next queue of a chain.
struct Forward {
    queue: Arc<dyn Queue>,
    to: Option<&'static str>,
}

#[async_trait]
impl MessageHandler for Forward {
    async fn handle(&self, m: &ReceivedMessage) -> Result<(), HandlerError> {
        if let Some(to) = self.to {
            self.queue.send(to, msg(m.body.clone())).await?;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_follows_messages_across_routed_queues() {
    let (_dir, store) = open(5);
    let q: Arc<dyn Queue> = store.queue.clone();
    let mut router = store.router();
    router.route(
        "c",
        Arc::new(Forward {
            queue: q.clone(),
            to: None,
        }),
        opts(),
    );
    router.route(
        "b",
        Arc::new(Forward {
            queue: q.clone(),
            to: Some("c"),
        }),
        opts(),
    );
    router.route(
        "a",
        Arc::new(Forward {
            queue: q.clone(),
            to: Some("b"),
        }),
        opts(),
    );
    for i in 0..7 {
        store
            .queue
            .send("a", msg(format!("m{i}")))
            .await
            .expect("send");
    }
    let drained = router.drain().await.expect("drain");
    assert_eq!(drained.succeeded, 21);
    assert_eq!(router.queues(), ["c", "b", "a"]);
}
