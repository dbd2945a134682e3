//! The port contract suite (vaia_core::contract) against the SQLite and filesystem adapters.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use vaia_core::contract::{self, QueueHarness};
use vaia_core::memory::ManualClock;
use vaia_core::ports::{Clock, PortResult, Queue, SystemClock};
use vaia_local::{LocalOptions, LocalStore, QueueOptions};

/// A store in a fresh temporary directory (kept alive by the returned guard).
fn open(clock: Arc<dyn Clock>, max_receives: u32) -> (tempfile::TempDir, LocalStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = LocalOptions {
        clock,
        queue: QueueOptions {
            max_receives,
            ..QueueOptions::default()
        },
        ..LocalOptions::default()
    };
    let store = LocalStore::open(dir.path(), opts).expect("open local store");
    (dir, store)
}

/// Fake time: the queue runs on a manual clock that `advance` moves.
struct ManualHarness {
    clock: Arc<ManualClock>,
    store: LocalStore,
}

/// Real time: `advance` sleeps.
struct RealHarness {
    store: LocalStore,
}

async fn dead_letters(
    store: &LocalStore,
    queue: &str,
) -> PortResult<Vec<(String, Option<String>)>> {
    Ok(store
        .queue
        .dead_letters(queue)
        .await?
        .into_iter()
        .map(|d| (d.body, d.reason))
        .collect())
}

#[async_trait]
impl QueueHarness for ManualHarness {
    async fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
    fn max_receives(&self) -> u32 {
        self.store.queue.max_receives("any")
    }
    async fn dead_letters(&self, queue: &str) -> PortResult<Vec<(String, Option<String>)>> {
        dead_letters(&self.store, queue).await
    }
}

#[async_trait]
impl QueueHarness for RealHarness {
    async fn advance(&self, by: Duration) {
        tokio::time::sleep(by).await;
    }
    fn max_receives(&self) -> u32 {
        self.store.queue.max_receives("any")
    }
    async fn dead_letters(&self, queue: &str) -> PortResult<Vec<(String, Option<String>)>> {
        dead_letters(&self.store, queue).await
    }
}

fn manual(max_receives: u32) -> (tempfile::TempDir, ManualHarness) {
    let clock = Arc::new(ManualClock::new(contract::base_time()));
    let (dir, store) = open(clock.clone(), max_receives);
    (dir, ManualHarness { clock, store })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_store() {
    let (_dir, store) = open(Arc::new(SystemClock), 5);
    contract::run_store(store.runs.as_ref()).await;
    let (_dir, store) = open(Arc::new(SystemClock), 5);
    contract::run_store_races(store.runs.clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_store_paging_through_ten_thousand_runs() {
    let (_dir, store) = open(Arc::new(SystemClock), 5);
    contract::run_store_paging(store.runs.clone(), 10_000, 8).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency() {
    let (_dir, store) = open(Arc::new(SystemClock), 5);
    contract::idempotency(store.idempotency.as_ref()).await;
    let (_dir, store) = open(Arc::new(SystemClock), 5);
    contract::idempotency_races(store.idempotency.clone()).await;
}

#[tokio::test]
async fn queue_on_a_manual_clock() {
    for max in [2, 3, 5] {
        let (_dir, h) = manual(max);
        contract::queue(h.store.queue.as_ref(), &h).await;
        contract::queue_groups(h.store.queue.as_ref(), &h).await;
    }
}

/// The same suite on real time (about ten seconds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_on_real_time() {
    let (_dir, store) = open(Arc::new(SystemClock), 2);
    let h = RealHarness { store };
    contract::queue(h.store.queue.as_ref(), &h).await;
    contract::queue_groups(h.store.queue.as_ref(), &h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_store() {
    let (_dir, h) = manual(5);
    let queue: &dyn Queue = h.store.queue.as_ref();
    contract::blob_store(
        h.store.blobs.as_ref(),
        Some((queue, vaia_core::messages::queues::BLOB_EVENTS)),
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let bare = vaia_local::FsBlobStore::open(dir.path().join("b"), None).expect("open");
    contract::blob_store(&bare, None).await;
}
