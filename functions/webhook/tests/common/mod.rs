//! Test harness: the webhook over the in-memory adapters, wrapped so that tests can count
//! every port call (to prove a refused request touched nothing), inject store failures,
//! and see the messages sent.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use chrono::TimeZone;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vaia_core::memory::{ManualClock, MemoryIdempotency, MemoryQueue, MemoryRunStore};
use vaia_core::messages::{queues, AdvanceMessage};
use vaia_core::policy::Policy;
use vaia_core::ports::*;
use vaia_core::run::{Run, RunEvent, Timestamp};
use vaia_core::{PipelineState, RunId};
use vaia_webhook::{Webhook, WebhookRequest, WebhookResponse, WebhookSecret};

pub const SECRET: &str = "test-secret-Zr8q";

pub fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/../../events/github/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

pub fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap()
}

pub fn start() -> Timestamp {
    chrono::Utc.with_ymd_and_hms(2025, 1, 2, 3, 4, 5).unwrap()
}

fn unavailable(what: &str) -> PortError {
    PortError::Unavailable(format!("injected {what} failure"))
}

#[derive(Default)]
pub struct Store {
    pub inner: MemoryRunStore,
    pub calls: AtomicUsize,
    pub creates: AtomicUsize,
    pub fail_next_create: AtomicBool,
    /// Milliseconds `create` waits before writing, to hold a claim open during races.
    pub create_delay_ms: AtomicU64,
}

#[async_trait]
impl RunStore for Store {
    async fn create(&self, run: &Run, events: &[RunEvent]) -> PortResult<Created> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.creates.fetch_add(1, Ordering::SeqCst);
        if self.fail_next_create.swap(false, Ordering::SeqCst) {
            return Err(unavailable("run store"));
        }
        let delay = self.create_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        self.inner.create(run, events).await
    }
    async fn get(&self, id: &RunId) -> PortResult<Option<Run>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.get(id).await
    }
    async fn save(&self, run: &Run, expected: u64, events: &[RunEvent]) -> PortResult<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.save(run, expected, events).await
    }
    async fn list(&self, limit: usize, after: Option<&RunCursor>) -> PortResult<RunPage> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.list(limit, after).await
    }
    async fn events(&self, id: &RunId) -> PortResult<Vec<RunEvent>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.events(id).await
    }
    async fn count_by_state(&self) -> PortResult<BTreeMap<PipelineState, u64>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.count_by_state().await
    }
    async fn overdue(&self, now: Timestamp, limit: usize) -> PortResult<Vec<Run>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.overdue(now, limit).await
    }
}

#[derive(Default)]
pub struct Idem {
    pub inner: MemoryIdempotency,
    pub calls: AtomicUsize,
    pub releases: AtomicUsize,
    pub fail_next_claim: AtomicBool,
}

#[async_trait]
impl Idempotency for Idem {
    async fn claim(&self, key: &str, ttl: Duration, now: Timestamp) -> PortResult<Claim> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.fail_next_claim.swap(false, Ordering::SeqCst) {
            return Err(unavailable("idempotency"));
        }
        self.inner.claim(key, ttl, now).await
    }
    async fn complete(&self, key: &str, result: &str, now: Timestamp) -> PortResult<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.complete(key, result, now).await
    }
    async fn release(&self, key: &str) -> PortResult<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.releases.fetch_add(1, Ordering::SeqCst);
        self.inner.release(key).await
    }
}

pub struct Q {
    pub inner: MemoryQueue,
    pub calls: AtomicUsize,
    pub sent: Mutex<Vec<(String, OutgoingMessage)>>,
    pub fail_next_send: AtomicBool,
}

#[async_trait]
impl Queue for Q {
    async fn send(&self, queue: &str, message: OutgoingMessage) -> PortResult<String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.fail_next_send.swap(false, Ordering::SeqCst) {
            return Err(unavailable("queue"));
        }
        self.sent
            .lock()
            .unwrap()
            .push((queue.to_string(), message.clone()));
        self.inner.send(queue, message).await
    }
    async fn receive(
        &self,
        queue: &str,
        max: usize,
        visibility: Duration,
    ) -> PortResult<Vec<ReceivedMessage>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.receive(queue, max, visibility).await
    }
    async fn delete(&self, queue: &str, receipt: &str) -> PortResult<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.delete(queue, receipt).await
    }
    async fn fail(&self, queue: &str, receipt: &str, reason: &str, retry: bool) -> PortResult<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.fail(queue, receipt, reason, retry).await
    }
    async fn depth(&self, queue: &str) -> PortResult<QueueDepth> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inner.depth(queue).await
    }
}

pub struct Harness {
    pub store: Arc<Store>,
    pub idem: Arc<Idem>,
    pub queue: Arc<Q>,
    pub clock: Arc<ManualClock>,
    pub secret: WebhookSecret,
    pub webhook: Webhook,
}

impl Harness {
    pub fn new() -> Self {
        let clock = Arc::new(ManualClock::new(start()));
        let store = Arc::new(Store::default());
        let idem = Arc::new(Idem::default());
        let queue = Arc::new(Q {
            inner: MemoryQueue::new(clock.clone(), 5),
            calls: AtomicUsize::new(0),
            sent: Mutex::default(),
            fail_next_send: AtomicBool::new(false),
        });
        let secret = WebhookSecret::new(SECRET).unwrap();
        let webhook = Webhook::new(
            store.clone(),
            idem.clone(),
            queue.clone(),
            clock.clone(),
            secret.clone(),
            Policy::default(),
        );
        Self {
            store,
            idem,
            queue,
            clock,
            secret,
            webhook,
        }
    }

    /// The headers GitHub would send for `body`.
    pub fn headers(&self, event: &str, delivery: &str, body: &[u8]) -> Vec<(String, String)> {
        vec![
            ("Content-Type".into(), "application/json".into()),
            ("User-Agent".into(), "GitHub-Hookshot/044aadd".into()),
            ("X-GitHub-Event".into(), event.into()),
            ("X-GitHub-Delivery".into(), delivery.into()),
            ("X-Hub-Signature-256".into(), self.secret.sign(body)),
        ]
    }

    pub async fn call(&self, headers: &[(String, String)], body: &[u8]) -> WebhookResponse {
        self.webhook.handle(&WebhookRequest { headers, body }).await
    }

    /// A correctly signed delivery.
    pub async fn deliver(&self, event: &str, delivery: &str, body: &[u8]) -> WebhookResponse {
        let headers = self.headers(event, delivery, body);
        self.call(&headers, body).await
    }

    /// Port calls made so far, by the webhook or by the test.
    pub fn port_calls(&self) -> usize {
        self.store.calls.load(Ordering::SeqCst)
            + self.idem.calls.load(Ordering::SeqCst)
            + self.queue.calls.load(Ordering::SeqCst)
    }

    /// Every stored run (reads through the inner store, so not counted).
    pub async fn runs(&self) -> Vec<Run> {
        self.store.inner.list(1000, None).await.unwrap().runs
    }

    pub async fn events(&self, id: &RunId) -> Vec<RunEvent> {
        self.store.inner.events(id).await.unwrap()
    }

    /// Distinct messages on the advance queue (after the queue's deduplication).
    pub async fn advance_depth(&self) -> u64 {
        self.queue
            .inner
            .depth(queues::ADVANCE)
            .await
            .unwrap()
            .visible
    }

    pub async fn advance_messages(&self) -> Vec<AdvanceMessage> {
        self.queue
            .inner
            .receive(queues::ADVANCE, 1000, Duration::from_secs(1))
            .await
            .unwrap()
            .iter()
            .map(|m| serde_json::from_str(&m.body).unwrap())
            .collect()
    }

    /// Whether the idempotency store holds anything for `delivery` (claims it to find out,
    /// then releases; use at the end of a test).
    pub async fn idempotency_has(&self, delivery: &str) -> bool {
        let key = format!("webhook:{delivery}");
        match self
            .idem
            .inner
            .claim(&key, Duration::from_secs(1), self.clock.now())
            .await
            .unwrap()
        {
            Claim::Claimed => {
                self.idem.inner.release(&key).await.unwrap();
                false
            }
            _ => true,
        }
    }
}

pub fn text(r: &WebhookResponse) -> String {
    r.body.to_string()
}

pub fn reason(r: &WebhookResponse) -> String {
    r.body["reason"].as_str().unwrap_or_default().to_string()
}
