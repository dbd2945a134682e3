//! In-memory adapters for every port, for unit and property tests. They follow the port
//! contracts exactly (conditional writes, visibility timeouts, dead-lettering), so a test
//! that passes here and against the SQLite adapters exercises the same semantics.

use crate::ids::{BlobKey, RunId};
use crate::messages::{queues, ObjectCreated};
use crate::ports::*;
use crate::run::{Run, RunEvent, Timestamp};
use crate::state::PipelineState;
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A clock tests move by hand.
#[derive(Debug)]
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    pub fn new(at: Timestamp) -> Self {
        Self(Mutex::new(at))
    }
    pub fn advance(&self, by: Duration) {
        let mut t = lock(&self.0);
        *t += chrono::Duration::from_std(by).unwrap_or(chrono::Duration::zero());
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *lock(&self.0)
    }
}

type RunsAndLogs = (BTreeMap<RunId, Run>, BTreeMap<RunId, Vec<RunEvent>>);

#[derive(Default)]
pub struct MemoryRunStore {
    inner: Mutex<RunsAndLogs>,
}

impl MemoryRunStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl RunStore for MemoryRunStore {
    async fn create(&self, run: &Run, events: &[RunEvent]) -> PortResult<Created> {
        let mut g = lock(&self.inner);
        if let Some(existing) = g.0.get(&run.id) {
            return Ok(Created::Exists(Box::new(existing.clone())));
        }
        g.0.insert(run.id.clone(), run.clone());
        g.1.insert(run.id.clone(), events.to_vec());
        Ok(Created::Created)
    }

    async fn get(&self, id: &RunId) -> PortResult<Option<Run>> {
        Ok(lock(&self.inner).0.get(id).cloned())
    }

    async fn save(&self, run: &Run, expected_version: u64, events: &[RunEvent]) -> PortResult<()> {
        let mut g = lock(&self.inner);
        let found = g.0.get(&run.id).map(|r| r.version);
        if found != Some(expected_version) {
            return Err(PortError::Conflict {
                what: format!("run {}", run.id),
                expected: expected_version,
                found,
            });
        }
        g.0.insert(run.id.clone(), run.clone());
        g.1.entry(run.id.clone())
            .or_default()
            .extend_from_slice(events);
        Ok(())
    }

    async fn list(&self, limit: usize, after: Option<&RunCursor>) -> PortResult<RunPage> {
        let g = lock(&self.inner);
        let mut runs: Vec<&Run> =
            g.0.values()
                .filter(|r| after.is_none_or(|c| (r.created_at, &r.id) < (c.created_at, &c.id)))
                .collect();
        runs.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        let next = (runs.len() > limit)
            .then(|| runs[..limit].last().map(|r| RunCursor::after(r)))
            .flatten();
        let page = runs.iter().take(limit).map(|r| (*r).clone()).collect();
        Ok(RunPage { runs: page, next })
    }

    async fn events(&self, id: &RunId) -> PortResult<Vec<RunEvent>> {
        Ok(lock(&self.inner).1.get(id).cloned().unwrap_or_default())
    }

    async fn count_by_state(&self) -> PortResult<BTreeMap<PipelineState, u64>> {
        let mut out = BTreeMap::new();
        for r in lock(&self.inner).0.values() {
            *out.entry(r.state).or_insert(0) += 1;
        }
        Ok(out)
    }

    async fn overdue(&self, now: Timestamp, limit: usize) -> PortResult<Vec<Run>> {
        Ok(lock(&self.inner)
            .0
            .values()
            .filter(|r| r.state.is_in_flight() && r.deadline() <= now)
            .take(limit)
            .cloned()
            .collect())
    }
}

enum Record {
    InProgress(Timestamp),
    Completed(String),
}

#[derive(Default)]
pub struct MemoryIdempotency {
    records: Mutex<HashMap<String, Record>>,
}

impl MemoryIdempotency {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl Idempotency for MemoryIdempotency {
    async fn claim(&self, key: &str, ttl: Duration, now: Timestamp) -> PortResult<Claim> {
        let mut g = lock(&self.records);
        match g.get(key) {
            Some(Record::Completed(r)) => return Ok(Claim::Completed(r.clone())),
            Some(Record::InProgress(until)) if *until > now => return Ok(Claim::InProgress),
            _ => {}
        }
        let until = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::zero());
        g.insert(key.to_string(), Record::InProgress(until));
        Ok(Claim::Claimed)
    }

    async fn complete(&self, key: &str, result: &str, _now: Timestamp) -> PortResult<()> {
        lock(&self.records).insert(key.to_string(), Record::Completed(result.to_string()));
        Ok(())
    }

    async fn release(&self, key: &str) -> PortResult<()> {
        let mut g = lock(&self.records);
        if matches!(g.get(key), Some(Record::InProgress(_))) {
            g.remove(key);
        }
        Ok(())
    }
}

struct Message {
    id: String,
    body: String,
    receive_count: u32,
    visible_at: Timestamp,
    receipt: Option<String>,
    last_error: Option<String>,
}

/// Queues with SQS semantics over a [`Clock`], so tests control visibility timeouts.
pub struct MemoryQueue {
    clock: Arc<dyn Clock>,
    max_receives: u32,
    queues: Mutex<HashMap<String, VecDeque<Message>>>,
    dedupe: Mutex<HashMap<(String, String), String>>,
    seq: AtomicU64,
}

impl MemoryQueue {
    pub fn new(clock: Arc<dyn Clock>, max_receives: u32) -> Self {
        Self {
            clock,
            max_receives: max_receives.max(1),
            queues: Mutex::default(),
            dedupe: Mutex::default(),
            seq: AtomicU64::new(0),
        }
    }

    fn next_id(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.seq.fetch_add(1, Ordering::Relaxed) + 1)
    }

    /// Bodies and last errors of the dead-letter queue of `queue`.
    pub fn dead_letters(&self, queue: &str) -> Vec<(String, Option<String>)> {
        lock(&self.queues)
            .get(&queues::dead_letter(queue))
            .map(|q| {
                q.iter()
                    .map(|m| (m.body.clone(), m.last_error.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn send(&self, queue: &str, message: OutgoingMessage) -> PortResult<String> {
        // The dedupe map stays locked from the check to the enqueue, so two sends racing
        // with one key make one message (lock order: dedupe, then queues; nothing takes
        // them the other way round).
        let mut dedupe = lock(&self.dedupe);
        if let Some(key) = &message.dedupe_key {
            if let Some(id) = dedupe.get(&(queue.to_string(), key.clone())) {
                return Ok(id.clone());
            }
        }
        let id = self.next_id("m");
        if let Some(key) = message.dedupe_key {
            dedupe.insert((queue.to_string(), key), id.clone());
        }
        lock(&self.queues)
            .entry(queue.to_string())
            .or_default()
            .push_back(Message {
                id: id.clone(),
                body: message.body,
                receive_count: 0,
                visible_at: self.clock.now(),
                receipt: None,
                last_error: None,
            });
        Ok(id)
    }

    async fn receive(
        &self,
        queue: &str,
        max: usize,
        visibility: Duration,
    ) -> PortResult<Vec<ReceivedMessage>> {
        let now = self.clock.now();
        let vis = chrono::Duration::from_std(visibility).unwrap_or(chrono::Duration::zero());
        let mut g = lock(&self.queues);
        let mut out = Vec::new();
        let mut dead = Vec::new();
        if let Some(q) = g.get_mut(queue) {
            let mut i = 0;
            while i < q.len() && out.len() < max {
                if q[i].visible_at > now {
                    i += 1;
                    continue;
                }
                if q[i].receive_count >= self.max_receives {
                    if let Some(mut m) = q.remove(i) {
                        let last = m
                            .last_error
                            .take()
                            .unwrap_or_else(|| "visibility timeout expired".into());
                        m.last_error = Some(format!(
                            "exceeded {} receives; last error: {last}",
                            self.max_receives
                        ));
                        dead.push(m);
                    }
                    continue;
                }
                let receipt = self.next_id("rcpt");
                let m = &mut q[i];
                m.receive_count += 1;
                m.visible_at = now + vis;
                m.receipt = Some(receipt.clone());
                out.push(ReceivedMessage {
                    id: m.id.clone(),
                    receipt,
                    body: m.body.clone(),
                    receive_count: m.receive_count,
                });
                i += 1;
            }
        }
        if !dead.is_empty() {
            g.entry(queues::dead_letter(queue))
                .or_default()
                .extend(dead);
        }
        Ok(out)
    }

    async fn delete(&self, queue: &str, receipt: &str) -> PortResult<()> {
        if let Some(q) = lock(&self.queues).get_mut(queue) {
            q.retain(|m| m.receipt.as_deref() != Some(receipt));
        }
        Ok(())
    }

    async fn fail(
        &self,
        queue: &str,
        receipt: &str,
        reason: &str,
        retryable: bool,
    ) -> PortResult<()> {
        let mut g = lock(&self.queues);
        let Some(q) = g.get_mut(queue) else {
            return Ok(());
        };
        let Some(i) = q.iter().position(|m| m.receipt.as_deref() == Some(receipt)) else {
            return Ok(());
        };
        if retryable {
            q[i].last_error = Some(reason.to_string());
            q[i].visible_at = self.clock.now();
            return Ok(());
        }
        if let Some(mut m) = q.remove(i) {
            m.last_error = Some(format!("not retryable: {reason}"));
            g.entry(queues::dead_letter(queue))
                .or_default()
                .push_back(m);
        }
        Ok(())
    }

    async fn depth(&self, queue: &str) -> PortResult<QueueDepth> {
        let now = self.clock.now();
        let g = lock(&self.queues);
        let mut d = QueueDepth::default();
        if let Some(q) = g.get(queue) {
            for m in q {
                if m.visible_at <= now {
                    d.visible += 1;
                } else {
                    d.in_flight += 1;
                }
            }
        }
        d.dead = g
            .get(&queues::dead_letter(queue))
            .map_or(0, |q| q.len() as u64);
        Ok(d)
    }
}

/// Blobs in memory; each put notifies `notify` (queue, name) like an S3 → SQS notification.
pub struct MemoryBlobStore {
    blobs: Mutex<BTreeMap<BlobKey, Vec<u8>>>,
    notify: Option<(Arc<dyn Queue>, String)>,
    seq: AtomicU64,
}

impl MemoryBlobStore {
    pub fn new(notify: Option<(Arc<dyn Queue>, String)>) -> Self {
        Self {
            blobs: Mutex::default(),
            notify,
            seq: AtomicU64::new(0),
        }
    }

    /// The object-created event of a write, sent to the notification queue if any.
    async fn created(&self, key: &BlobKey, bytes: &[u8]) -> PortResult<ObjectCreated> {
        let event = ObjectCreated {
            key: key.clone(),
            size: bytes.len() as u64,
            sequencer: format!("{:016X}", self.seq.fetch_add(1, Ordering::Relaxed) + 1),
        };
        if let Some((queue, name)) = &self.notify {
            event.notify(queue.as_ref(), name).await?;
        }
        Ok(event)
    }
}

#[async_trait]
impl BlobStore for MemoryBlobStore {
    async fn put(&self, key: &BlobKey, bytes: &[u8]) -> PortResult<ObjectCreated> {
        lock(&self.blobs).insert(key.clone(), bytes.to_vec());
        self.created(key, bytes).await
    }

    async fn put_if_absent(
        &self,
        key: &BlobKey,
        bytes: &[u8],
    ) -> PortResult<Option<ObjectCreated>> {
        {
            let mut blobs = lock(&self.blobs);
            if blobs.contains_key(key) {
                return Ok(None);
            }
            blobs.insert(key.clone(), bytes.to_vec());
        }
        self.created(key, bytes).await.map(Some)
    }

    async fn put_if_match(
        &self,
        key: &BlobKey,
        bytes: &[u8],
        etag: &str,
    ) -> PortResult<Option<ObjectCreated>> {
        {
            let mut blobs = lock(&self.blobs);
            match blobs.get_mut(key) {
                Some(current) if content_etag(current) == etag => *current = bytes.to_vec(),
                _ => return Ok(None),
            }
        }
        self.created(key, bytes).await.map(Some)
    }

    async fn get(&self, key: &BlobKey) -> PortResult<Option<Vec<u8>>> {
        Ok(lock(&self.blobs).get(key).cloned())
    }

    async fn get_at_most(&self, key: &BlobKey, limit: u64) -> PortResult<Option<Bounded>> {
        Ok(lock(&self.blobs).get(key).map(|b| {
            if b.len() as u64 > limit {
                Bounded::TooLarge {
                    size: Some(b.len() as u64),
                }
            } else {
                Bounded::Bytes(b.clone())
            }
        }))
    }

    async fn get_tagged(&self, key: &BlobKey) -> PortResult<Option<Tagged>> {
        Ok(lock(&self.blobs).get(key).map(|b| Tagged {
            etag: content_etag(b),
            bytes: b.clone(),
        }))
    }

    async fn list(&self, prefix: &str) -> PortResult<Vec<BlobMeta>> {
        Ok(lock(&self.blobs)
            .iter()
            .filter(|(k, _)| k.as_str().starts_with(prefix))
            .map(|(k, v)| BlobMeta {
                key: k.clone(),
                size: v.len() as u64,
            })
            .collect())
    }
}
