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

/// The registry's records live in the run table, not in S3 (`vaia_aws::records`); records
/// written to S3 before are still read, and a compare-and-swap over one moves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_records_live_in_the_table_and_old_s3_ones_are_still_read() {
    use vaia_core::ports::BlobStore;
    use vaia_core::BlobKey;
    let Some(m) = moto() else { return };
    let p = ports(m, "records", 5).await;
    let blobs: &dyn BlobStore = p.blobs.as_ref();
    let s3: &vaia_aws::S3BlobStore = &p.blobs;
    let key = |k: &str| BlobKey::new(k).unwrap();
    let v1 = key("registry/octo/agent/versions/0.1.0.json");
    let base = key("ct/octo/agent/baseline.json");

    assert!(blobs
        .put_if_absent(&v1, b"{\"v\":1}")
        .await
        .unwrap()
        .is_some());
    assert!(blobs
        .put_if_absent(&v1, b"{\"v\":2}")
        .await
        .unwrap()
        .is_none());
    blobs.put(&base, b"{\"b\":1}").await.unwrap();
    assert_eq!(blobs.get(&v1).await.unwrap().unwrap(), b"{\"v\":1}");
    assert_eq!(blobs.get(&base).await.unwrap().unwrap(), b"{\"b\":1}");
    assert_eq!(s3.get(&v1).await.unwrap(), None, "not in S3");
    assert_eq!(s3.get(&base).await.unwrap(), None, "not in S3");

    // Compare-and-swap: a stale etag loses.
    let alias = key("registry/octo/agent/aliases/prod.json");
    assert!(blobs.put_if_absent(&alias, b"a1").await.unwrap().is_some());
    let t = blobs.get_tagged(&alias).await.unwrap().unwrap();
    assert!(blobs
        .put_if_match(&alias, b"a2", &t.etag)
        .await
        .unwrap()
        .is_some());
    assert!(blobs
        .put_if_match(&alias, b"a3", &t.etag)
        .await
        .unwrap()
        .is_none());
    assert_eq!(blobs.get(&alias).await.unwrap().unwrap(), b"a2");

    // Listing, by any prefix, with the table's records and S3's evidence side by side.
    let evidence = key("evidence/octo/agent/abc/manifest.json");
    blobs.put(&evidence, b"{}").await.unwrap();
    let listed = |prefix: &'static str| async move {
        blobs
            .list(prefix)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.key.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        listed("registry/octo/agent/versions/").await,
        ["registry/octo/agent/versions/0.1.0.json"]
    );
    assert_eq!(
        listed("registry/").await,
        [
            "registry/octo/agent/aliases/prod.json",
            "registry/octo/agent/versions/0.1.0.json"
        ]
    );
    assert_eq!(listed("evidence/octo/").await, [evidence.to_string()]);

    // A record S3 held before records moved: read, claimed as present, and moved by the
    // first compare-and-swap over its S3 etag.
    let old = key("registry/octo/old/aliases/prod.json");
    s3.put(&old, b"old").await.unwrap();
    assert_eq!(blobs.get(&old).await.unwrap().unwrap(), b"old");
    assert!(blobs.put_if_absent(&old, b"new").await.unwrap().is_none());
    let t = blobs.get_tagged(&old).await.unwrap().unwrap();
    assert!(blobs
        .put_if_match(&old, b"moved", &t.etag)
        .await
        .unwrap()
        .is_some());
    assert!(blobs
        .put_if_match(&old, b"again", &t.etag)
        .await
        .unwrap()
        .is_none());
    assert_eq!(blobs.get(&old).await.unwrap().unwrap(), b"moved");
    assert_eq!(listed("registry/octo/old/").await, [old.to_string()]);

    // Over the table's bound: refused, naming the key.
    let big = vec![b'x'; vaia_aws::records::MAX_TABLE_RECORD_BYTES + 1];
    let e = blobs.put(&v1, &big).await.unwrap_err();
    assert!(e.to_string().contains(v1.as_str()), "{e}");
}
