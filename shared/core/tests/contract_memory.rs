//! The port contract suite against the in-memory adapters.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use vaia_core::contract::{self, QueueHarness};
use vaia_core::memory::*;
use vaia_core::ports::*;

struct MemoryHarness {
    clock: Arc<ManualClock>,
    queue: Arc<MemoryQueue>,
    max_receives: u32,
}

#[async_trait]
impl QueueHarness for MemoryHarness {
    async fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
    fn max_receives(&self) -> u32 {
        self.max_receives
    }
    async fn dead_letters(&self, queue: &str) -> PortResult<Vec<(String, Option<String>)>> {
        Ok(self.queue.dead_letters(queue))
    }
}

fn harness(max_receives: u32) -> MemoryHarness {
    let clock = Arc::new(ManualClock::new(contract::base_time()));
    let queue = Arc::new(MemoryQueue::new(clock.clone(), max_receives));
    MemoryHarness {
        clock,
        queue,
        max_receives,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_store() {
    contract::run_store(&MemoryRunStore::new()).await;
    contract::run_store_races(Arc::new(MemoryRunStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_store_paging_through_ten_thousand_runs() {
    contract::run_store_paging(Arc::new(MemoryRunStore::new()), 10_000, 64).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency() {
    contract::idempotency(&MemoryIdempotency::new()).await;
    contract::idempotency_races(Arc::new(MemoryIdempotency::new())).await;
}

#[tokio::test]
async fn queue() {
    for max in [2, 3, 5] {
        let h = harness(max);
        contract::queue(h.queue.as_ref(), &h).await;
    }
}

#[tokio::test]
async fn blob_store() {
    let h = harness(5);
    let q: Arc<dyn Queue> = h.queue.clone();
    let store = MemoryBlobStore::new(Some((q, "blob-events".into())));
    contract::blob_store(&store, Some((h.queue.as_ref(), "blob-events"))).await;
    contract::blob_store(&MemoryBlobStore::new(None), None).await;
}
