//! The port contract suite (vaia_core::contract) against the AWS adapters on a local moto
//! server: DynamoDB run store and idempotency, SQS queues (FIFO, dead letters), S3 blobs.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use vaia_aws::testing::{moto, ports};
use vaia_aws::SqsQueue;
use vaia_core::contract::{self, QueueHarness};
use vaia_core::ports::{PortResult, Queue, RunStore};

/// SQS runs on real time: `advance` sleeps.
struct Harness {
    queue: Arc<SqsQueue>,
}

#[async_trait]
impl QueueHarness for Harness {
    async fn advance(&self, by: Duration) {
        tokio::time::sleep(by).await;
    }
    fn max_receives(&self) -> u32 {
        self.queue.max_receives()
    }
    async fn dead_letters(&self, queue: &str) -> PortResult<Vec<(String, Option<String>)>> {
        self.queue.dead_letters(queue).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_store() {
    let Some(m) = moto() else { return };
    let p = ports(m, "runs", 5).await;
    contract::run_store(p.store.as_ref()).await;
    let p = ports(m, "races", 5).await;
    let store: Arc<dyn RunStore> = p.store.clone();
    contract::run_store_races(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_store_paging_through_ten_thousand_runs() {
    let Some(m) = moto() else { return };
    let p = ports(m, "paging", 5).await;
    contract::run_store_paging(p.store.clone(), 10_000, 16).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotency() {
    let Some(m) = moto() else { return };
    let p = ports(m, "idem", 5).await;
    contract::idempotency(p.idempotency.as_ref()).await;
    let p = ports(m, "idem-races", 5).await;
    contract::idempotency_races(p.idempotency.clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue() {
    let Some(m) = moto() else { return };
    let p = ports(m, "queue", 2).await;
    let h = Harness {
        queue: p.queue.clone(),
    };
    contract::queue(p.queue.as_ref(), &h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_groups() {
    let Some(m) = moto() else { return };
    let p = ports(m, "groups", 3).await;
    let h = Harness {
        queue: p.queue.clone(),
    };
    let q: &dyn Queue = p.queue.as_ref();
    contract::queue_groups(q, &h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_store() {
    let Some(m) = moto() else { return };
    let p = ports(m, "blobs", 5).await;
    // Notifications come from S3 itself on AWS (see the s3_notifications tests), not from
    // `put`; the suite checks storage here.
    contract::blob_store(p.blobs.as_ref(), None).await;
}
