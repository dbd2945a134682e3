//! The local event router: delivers queue messages to [`MessageHandler`]s with SQS's
//! at-least-once semantics. Per routed queue it receives a batch, runs the handler for each
//! message (at most `concurrency` at a time), deletes the message when the handler succeeds
//! and `fail`s it when the handler errs — a retryable error comes back after a backoff or
//! the visibility timeout, a permanent one (or too many receives) lands in the dead-letter
//! queue with its reason. A panicking handler is a retryable failure; it never takes the
//! router down (each handler call runs in its own Tokio task).
//!
//! An idle consumer waits for the queue's send signal ([`QueueSignal`]) with a fallback
//! poll, so latency is not a polling interval and redeliveries are still picked up.
//! [`Router::drain`] is the synchronous variant for tests and benchmarks.

use crate::queue::SqliteQueue;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, info, warn};
use vaia_core::ports::{HandlerError, MessageHandler, PortResult, Queue, ReceivedMessage};

/// Tells a consumer that a queue may have work.
pub trait QueueSignal: Send + Sync {
    fn signal(&self, queue: &str) -> Arc<Notify>;
}

impl QueueSignal for SqliteQueue {
    fn signal(&self, queue: &str) -> Arc<Notify> {
        SqliteQueue::signal(self, queue)
    }
}

/// How one queue is consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteOptions {
    /// Messages received per call (SQS allows at most 10).
    pub batch: usize,
    /// How long a received message stays invisible; longer than the handler ever takes.
    pub visibility: Duration,
    /// Handler calls in flight at once.
    pub concurrency: usize,
}

impl Default for RouteOptions {
    fn default() -> Self {
        Self {
            batch: 10,
            visibility: Duration::from_secs(30),
            concurrency: 4,
        }
    }
}

/// What [`Router::drain`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drained {
    /// Handler calls (every delivery, including redeliveries).
    pub delivered: u64,
    /// Calls that succeeded (their message was deleted).
    pub succeeded: u64,
    /// Calls that failed or panicked.
    pub failed: u64,
}

#[derive(Clone)]
struct Route {
    queue: String,
    handler: Arc<dyn MessageHandler>,
    opts: RouteOptions,
}

/// Queue → handler routes over one [`Queue`].
pub struct Router {
    queue: Arc<dyn Queue>,
    signal: Option<Arc<dyn QueueSignal>>,
    routes: Vec<Route>,
    poll: Duration,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("queues", &self.queues())
            .field("poll", &self.poll)
            .finish_non_exhaustive()
    }
}

/// The fallback poll of an idle consumer.
pub const DEFAULT_POLL: Duration = Duration::from_millis(200);
/// How often [`Router::drain`] looks again while messages are in flight elsewhere.
const DRAIN_POLL: Duration = Duration::from_millis(5);

impl Router {
    /// A router that polls `queue` (every [`DEFAULT_POLL`] when idle).
    pub fn new(queue: Arc<dyn Queue>) -> Self {
        Self {
            queue,
            signal: None,
            routes: Vec::new(),
            poll: DEFAULT_POLL,
        }
    }

    /// A router over the SQLite queue, woken by its send signals.
    pub fn sqlite(queue: Arc<SqliteQueue>) -> Self {
        let signal: Arc<dyn QueueSignal> = queue.clone();
        Self::new(queue).with_signal(signal)
    }

    pub fn with_signal(mut self, signal: Arc<dyn QueueSignal>) -> Self {
        self.signal = Some(signal);
        self
    }

    pub fn with_poll_interval(mut self, poll: Duration) -> Self {
        self.poll = poll;
        self
    }

    /// Delivers `queue`'s messages to `handler`. Routing one queue twice makes two
    /// competing consumers.
    pub fn route(
        &mut self,
        queue: impl Into<String>,
        handler: Arc<dyn MessageHandler>,
        opts: RouteOptions,
    ) -> &mut Self {
        self.routes.push(Route {
            queue: queue.into(),
            handler,
            opts,
        });
        self
    }

    /// The routed queue names, in routing order.
    pub fn queues(&self) -> Vec<&str> {
        self.routes.iter().map(|r| r.queue.as_str()).collect()
    }

    /// Starts one consumer task per route. Each stops receiving once `shutdown` is true
    /// (or its sender is dropped), finishes the messages it holds, and ends.
    pub fn spawn(&self, shutdown: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        self.routes
            .iter()
            .map(|route| {
                let consumer = Consumer {
                    queue: self.queue.clone(),
                    signal: self.signal.as_ref().map(|s| s.signal(&route.queue)),
                    route: route.clone(),
                    poll: self.poll,
                };
                tokio::spawn(consumer.run(shutdown.clone()))
            })
            .collect()
    }

    /// Delivers until every routed queue is empty and nothing is in flight, handlers'
    /// own sends to routed queues included. Messages held by another consumer are waited
    /// for (until they are deleted or their visibility timeout ends). Do not run it
    /// alongside [`Router::spawn`]'s consumers of the same queues. Needs the queue's clock
    /// to move (a real clock) for backoffs and visibility timeouts to end.
    pub async fn drain(&self) -> PortResult<Drained> {
        let mut total = Drained::default();
        loop {
            let mut progressed = false;
            for route in &self.routes {
                let batch = self
                    .queue
                    .receive(&route.queue, route.opts.batch.max(1), route.opts.visibility)
                    .await?;
                if batch.is_empty() {
                    continue;
                }
                progressed = true;
                let sem = Arc::new(Semaphore::new(route.opts.concurrency.max(1)));
                let mut calls = JoinSet::new();
                for msg in batch {
                    let permit = sem.clone().acquire_owned().await;
                    let queue = self.queue.clone();
                    let route = route.clone();
                    calls.spawn(async move {
                        let ok = deliver(queue.as_ref(), &route, msg).await;
                        drop(permit);
                        ok
                    });
                }
                while let Some(result) = calls.join_next().await {
                    total.delivered += 1;
                    if matches!(result, Ok(true)) {
                        total.succeeded += 1;
                    } else {
                        total.failed += 1;
                    }
                }
            }
            if progressed {
                continue;
            }
            let mut busy = false;
            for route in &self.routes {
                let d = self.queue.depth(&route.queue).await?;
                if d.visible > 0 || d.in_flight > 0 {
                    busy = true;
                    break;
                }
            }
            if !busy {
                return Ok(total);
            }
            tokio::time::sleep(DRAIN_POLL).await;
        }
    }
}

/// One route's receive loop.
struct Consumer {
    queue: Arc<dyn Queue>,
    signal: Option<Arc<Notify>>,
    route: Route,
    poll: Duration,
}

impl Consumer {
    async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let name = self.route.queue.clone();
        info!(queue = %name, "consumer started");
        let sem = Arc::new(Semaphore::new(self.route.opts.concurrency.max(1)));
        let mut calls = JoinSet::new();
        loop {
            while calls.try_join_next().is_some() {}
            if *shutdown.borrow() {
                break;
            }
            // Receive only what can start now: a received message waiting for a slot
            // would burn its visibility timeout.
            let first = tokio::select! {
                permit = sem.clone().acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => break,
                },
                _ = shutdown.wait_for(|stop| *stop) => break,
            };
            let want = self
                .route
                .opts
                .batch
                .max(1)
                .min(1 + sem.available_permits());
            let batch = match self
                .queue
                .receive(&name, want, self.route.opts.visibility)
                .await
            {
                Ok(batch) => batch,
                Err(e) => {
                    warn!(queue = %name, error = %e, "receive failed");
                    Vec::new()
                }
            };
            if batch.is_empty() {
                drop(first);
                tokio::select! {
                    _ = notified(self.signal.as_deref()) => {}
                    _ = tokio::time::sleep(self.poll) => {}
                    _ = shutdown.wait_for(|stop| *stop) => break,
                }
                continue;
            }
            let mut first = Some(first);
            for msg in batch {
                let permit = match first.take() {
                    Some(p) => p,
                    None => match sem.clone().acquire_owned().await {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                };
                let queue = self.queue.clone();
                let route = self.route.clone();
                calls.spawn(async move {
                    deliver(queue.as_ref(), &route, msg).await;
                    drop(permit);
                });
            }
        }
        while calls.join_next().await.is_some() {}
        info!(queue = %name, "consumer stopped");
    }
}

async fn notified(signal: Option<&Notify>) {
    match signal {
        Some(n) => n.notified().await,
        None => std::future::pending().await,
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".into()
    }
}

/// Runs the handler on `msg` in its own task, then deletes or fails the message.
/// Returns whether the handler succeeded.
async fn deliver(queue: &dyn Queue, route: &Route, msg: ReceivedMessage) -> bool {
    let name = route.queue.as_str();
    let id = msg.id.clone();
    let receipt = msg.receipt.clone();
    let receive_count = msg.receive_count;
    debug!(queue = name, message_id = %id, receive_count, "delivering");
    let handler = route.handler.clone();
    let outcome = match tokio::spawn(async move { handler.handle(&msg).await }).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err(HandlerError::retryable(format!(
            "handler panicked: {}",
            panic_message(e.into_panic())
        ))),
        Err(e) => Err(HandlerError::retryable(format!("handler task failed: {e}"))),
    };
    match outcome {
        Ok(()) => {
            debug!(queue = name, message_id = %id, receive_count, "handled");
            if let Err(e) = queue.delete(name, &receipt).await {
                warn!(queue = name, message_id = %id, error = %e,
                    "delete failed; the message will be delivered again");
            }
            true
        }
        Err(e) => {
            warn!(queue = name, message_id = %id, receive_count, retryable = e.retryable,
                reason = %e.reason, "handler failed");
            if let Err(pe) = queue.fail(name, &receipt, &e.reason, e.retryable).await {
                warn!(queue = name, message_id = %id, error = %pe,
                    "fail failed; the message returns after its visibility timeout");
            }
            false
        }
    }
}
