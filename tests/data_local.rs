//! The data watcher on the local stack, end to end: objects put under `raw/` in the local
//! blob store are counted once from their blob events (duplicates too), an object whose
//! event never came is found by the reconciliation that precedes each scheduled
//! evaluation, raw data of an unknown repository changes nothing, and the pending volume
//! is the same on `GET /api/data/.../pending` and on `/metrics`; a file dropped in the
//! `--watch-data` directory is counted once too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};
use vaia::client::Client;
use vaia::stack::{Stack, StackConfig, StackOptions};
use vaia_core::messages::{queues, ObjectCreated};
use vaia_core::policy::Policy;
use vaia_core::BlobKey;
use vaia_webhook::WebhookSecret;

async fn pending(client: &Client, repo: &str) -> serde_json::Value {
    client
        .get_json(&format!("/api/data/{repo}/pending"))
        .await
        .unwrap()
}

async fn wait_bytes(client: &Client, repo: &str, bytes: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let p = pending(client, repo).await;
        if p["bytes"] == bytes {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "pending stayed {p} (want {bytes} bytes)"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_data_is_counted_once_and_reconciled() {
    let dir = tempfile::tempdir().unwrap();
    let config = StackConfig {
        data_dir: dir.path().to_path_buf(),
        bind: "127.0.0.1".into(),
        port: 0,
        policy: Policy::schema_only(),
        secret: WebhookSecret::new("data-local-secret").unwrap(),
        alertmanager_token: None,
    };
    // The schedule (and its reconciliation) every second.
    let watched = tempfile::tempdir().unwrap();
    let options = StackOptions {
        ct_every: Some(Duration::from_secs(1)),
        watch_data: Some(watched.path().to_path_buf()),
        ..StackOptions::default()
    };
    let stack = Stack::start_with(config, options).await.unwrap();
    let client = Client::new(&stack.url());
    let blobs = stack.ports.blobs.clone();
    // A repository vaia knows: the registry assigned it a version.
    blobs
        .put(
            &BlobKey::new("registry/octo/agent/versions/1.0.0.json").unwrap(),
            b"{}",
        )
        .await
        .unwrap();

    let a = blobs
        .put(
            &BlobKey::new("raw/octo/agent/2026/a.csv").unwrap(),
            &[b'a'; 300],
        )
        .await
        .unwrap();
    blobs
        .put(
            &BlobKey::new("raw/octo/agent/2026/b.csv").unwrap(),
            &[b'b'; 700],
        )
        .await
        .unwrap();
    wait_bytes(&client, "octo/agent", 1000).await;
    // The same notification delivered again (S3 delivers at least once).
    for _ in 0..3 {
        a.notify(stack.ports.queue.as_ref(), queues::BLOB_EVENTS)
            .await
            .unwrap();
    }
    // Raw data of a repository vaia does not know: counted nowhere.
    blobs
        .put(&BlobKey::new("raw/other/repo/x.csv").unwrap(), b"x")
        .await
        .unwrap();
    // An object whose notification never came: written beside the store.
    let missed = dir.path().join("blobs/raw/octo/agent/2026/missed.csv");
    std::fs::write(&missed, [b'm'; 50]).unwrap();
    wait_bytes(&client, "octo/agent", 1050).await;
    // Settled: the duplicates and later reconciliations add nothing.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let p = pending(&client, "octo/agent").await;
    assert_eq!(p["bytes"], 1050, "{p}");
    assert_eq!(p["objects"], 3, "{p}");
    assert_eq!(pending(&client, "other/repo").await["bytes"], 0);
    assert!(blobs.list("ct/other/").await.unwrap().is_empty());
    let late = ObjectCreated {
        key: BlobKey::new("raw/octo/agent/2026/missed.csv").unwrap(),
        size: 50,
        sequencer: "FFFF".into(),
    };
    late.notify(stack.ports.queue.as_ref(), queues::BLOB_EVENTS)
        .await
        .unwrap();

    // `--watch-data DIR`: a file dropped in the watched directory is counted once.
    std::fs::create_dir_all(watched.path().join("octo/agent/drop")).unwrap();
    std::fs::write(
        watched.path().join("octo/agent/drop/new file é.csv"),
        [b'n'; 25],
    )
    .unwrap();
    wait_bytes(&client, "octo/agent", 1075).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(pending(&client, "octo/agent").await["bytes"], 1075);

    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = http
            .get(format!("{}/metrics", stack.url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics
            .lines()
            .any(|l| l == "pending_data_volume_bytes{repository=\"octo/agent\"} 1075")
        {
            break;
        }
        assert!(Instant::now() < deadline, "no pending gauge in\n{metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(pending(&client, "octo/agent").await["bytes"], 1075);
    stack.stop().await;
}
