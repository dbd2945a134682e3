//! Behaviour of the local adapters beyond the port contract: persistence across restarts,
//! schema versioning, WAL, error mapping, dedupe windows, blob-path defences.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use vaia_core::contract::{base_time, sample_run};
use vaia_core::ids::BlobKey;
use vaia_core::memory::ManualClock;
use vaia_core::messages::{queues, ObjectCreated};
use vaia_core::ports::*;
use vaia_local::{LocalError, LocalOptions, LocalStore, QueueOptions};

fn opts(clock: Arc<dyn Clock>) -> LocalOptions {
    LocalOptions {
        clock,
        ..LocalOptions::default()
    }
}

fn msg(body: &str, key: Option<&str>) -> OutgoingMessage {
    OutgoingMessage {
        body: body.into(),
        dedupe_key: key.map(String::from),
        group: None,
    }
}

fn raw(dir: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join("vaia.db")).expect("raw connection")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_survives_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = sample_run(7, base_time());
    let key = BlobKey::new("evidence/octo/agent/x/manifest.json").expect("key");
    let first_put;
    {
        let store = LocalStore::open(dir.path(), LocalOptions::default()).expect("open");
        assert_eq!(store.runs.create(&run, &[]).await, Ok(Created::Created));
        store
            .queue
            .send("work", msg("hello", Some("k")))
            .await
            .expect("send");
        first_put = store.blobs.put(&key, b"one").await.expect("put");
        assert!(dir
            .path()
            .join("blobs/evidence/octo/agent/x/manifest.json")
            .is_file());
    }
    let store = LocalStore::open(dir.path(), LocalOptions::default()).expect("reopen");
    assert_eq!(
        store.db.schema_version(),
        Ok(vaia_local::db::SCHEMA_VERSION)
    );
    assert_eq!(store.runs.get(&run.id).await, Ok(Some(run)));
    // The dedupe window outlives the process.
    store
        .queue
        .send("work", msg("hello again", Some("k")))
        .await
        .expect("send");
    let got = store
        .queue
        .receive("work", 10, Duration::from_secs(5))
        .await
        .expect("receive");
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body, "hello");
    assert_eq!(store.blobs.get(&key).await, Ok(Some(b"one".to_vec())));
    let second_put = store.blobs.put(&key, b"two").await.expect("put");
    assert!(
        vaia_core::contract::compare_sequencers(&second_put.sequencer, &first_put.sequencer)
            .is_gt(),
        "sequencers increase across restarts"
    );
    // Both puts were announced on the blob-events queue.
    let events = store
        .queue
        .receive(queues::BLOB_EVENTS, 10, Duration::from_secs(5))
        .await
        .expect("receive");
    let events: Vec<ObjectCreated> = events
        .iter()
        .map(|m| serde_json::from_str(&m.body).expect("json"))
        .collect();
    assert_eq!(events, vec![first_put, second_put]);

    let mode: String = raw(dir.path())
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("journal_mode");
    assert_eq!(mode, "wal");
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(LocalStore::open(dir.path(), LocalOptions::default()).expect("open"));
    raw(dir.path())
        .pragma_update(None, "user_version", 99)
        .expect("set user_version");
    match LocalStore::open(dir.path(), LocalOptions::default()) {
        Err(LocalError::SchemaTooNew {
            found: 99,
            supported: 1,
            ..
        }) => {}
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[tokio::test]
async fn a_locked_database_is_unavailable_and_bad_rows_are_invalid() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalStore::open(
        dir.path(),
        LocalOptions {
            busy_timeout: Duration::from_millis(50),
            ..LocalOptions::default()
        },
    )
    .expect("open");
    let run = sample_run(1, base_time());
    store.runs.create(&run, &[]).await.expect("create");

    let other = raw(dir.path());
    other.execute_batch("BEGIN EXCLUSIVE").expect("lock");
    let err = store
        .queue
        .send("work", msg("x", None))
        .await
        .expect_err("locked");
    assert!(matches!(err, PortError::Unavailable(_)), "{err:?}");
    assert!(err.is_retryable());
    other.execute_batch("ROLLBACK").expect("unlock");
    store
        .queue
        .send("work", msg("x", None))
        .await
        .expect("unlocked");

    other
        .execute(
            "UPDATE runs SET json = '{\"nope\":1}' WHERE id = ?1",
            [run.id.as_str()],
        )
        .expect("corrupt");
    let err = store.runs.get(&run.id).await.expect_err("undecodable");
    assert!(matches!(err, PortError::Invalid(_)), "{err:?}");
}

#[tokio::test]
async fn dedupe_keys_expire_after_the_window_and_max_receives_is_per_queue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(base_time()));
    let store = LocalStore::open(dir.path(), opts(clock.clone())).expect("open");
    let q = store.queue.as_ref();
    let id = q.send("work", msg("a", Some("k"))).await.expect("send");
    clock.advance(Duration::from_secs(299));
    assert_eq!(q.send("work", msg("b", Some("k"))).await, Ok(id.clone()));
    clock.advance(Duration::from_secs(2));
    let id2 = q.send("work", msg("c", Some("k"))).await.expect("send");
    assert_ne!(id, id2, "a new message once the window has passed");
    assert_eq!(q.depth("work").await.expect("depth").visible, 2);

    q.set_max_receives("strict", 1);
    assert_eq!(q.max_receives("strict"), 1);
    assert_eq!(q.max_receives("work"), QueueOptions::default().max_receives);
    q.send("strict", msg("once", None)).await.expect("send");
    let m = q
        .receive("strict", 1, Duration::from_secs(1))
        .await
        .expect("receive");
    q.fail("strict", &m[0].receipt, "nope", true)
        .await
        .expect("fail");
    assert_eq!(q.depth("strict").await.expect("depth").dead, 1);
}

#[tokio::test]
async fn a_redriven_message_gets_fresh_receipts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalStore::open(dir.path(), LocalOptions::default()).expect("open");
    let q = store.queue.as_ref();
    q.send("work", msg("m", None)).await.expect("send");
    let first = q
        .receive("work", 1, Duration::from_secs(30))
        .await
        .expect("receive");
    q.fail("work", &first[0].receipt, "bad", false)
        .await
        .expect("fail");
    assert_eq!(store.queue.redrive("work").await, Ok(1));
    let second = q
        .receive("work", 1, Duration::from_secs(30))
        .await
        .expect("receive");
    assert_eq!(second[0].receive_count, 1);
    assert_ne!(second[0].receipt, first[0].receipt);
    q.delete("work", &first[0].receipt)
        .await
        .expect("stale delete");
    assert_eq!(q.depth("work").await.expect("depth").in_flight, 1);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blobs_cannot_leave_the_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outside = tempfile::tempdir().expect("outside");
    std::fs::write(outside.path().join("secret"), b"s3cr3t").expect("write");
    let store = LocalStore::open(dir.path(), LocalOptions::default()).expect("open");
    std::os::unix::fs::symlink(outside.path(), dir.path().join("blobs/evil")).expect("symlink");

    let key = BlobKey::new("evil/secret").expect("key");
    let err = store.blobs.get(&key).await.expect_err("escape refused");
    assert!(matches!(err, PortError::Invalid(_)), "{err:?}");
    let err = store
        .blobs
        .put(&BlobKey::new("evil/new").expect("key"), b"x")
        .await;
    assert!(matches!(err, Err(PortError::Invalid(_))), "{err:?}");
    assert!(!outside.path().join("new").exists());
    let listed = store.blobs.list("evil/").await;
    assert!(matches!(listed, Err(PortError::Invalid(_))), "{listed:?}");
    assert_eq!(store.blobs.list("../").await, Ok(vec![]));

    // A key cannot be both a blob and a prefix of blobs.
    let a = BlobKey::new("a/b").expect("key");
    store.blobs.put(&a, b"1").await.expect("put");
    let nested = store
        .blobs
        .put(&BlobKey::new("a/b/c").expect("key"), b"2")
        .await;
    assert!(matches!(nested, Err(PortError::Invalid(_))), "{nested:?}");
    assert_eq!(store.blobs.get(&a).await, Ok(Some(b"1".to_vec())));
    // Temporaries are never listed.
    let keys: Vec<_> = store
        .blobs
        .list("")
        .await
        .expect("list")
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(keys, vec![a]);
}

#[tokio::test]
async fn release_abandoned_hands_back_a_crashed_process_claims() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalStore::open(dir.path(), LocalOptions::default()).expect("open");
    let ids = &store.idempotency;
    let now = base_time();
    let ttl = Duration::from_secs(30);
    assert_eq!(ids.claim("held", ttl, now).await, Ok(Claim::Claimed));
    assert_eq!(ids.claim("done", ttl, now).await, Ok(Claim::Claimed));
    ids.complete("done", "answer", now).await.expect("complete");
    // The holder dies: its claim blocks the key until the TTL...
    assert_eq!(ids.claim("held", ttl, now).await, Ok(Claim::InProgress));
    // ...unless the restarted owner releases it; completed records stay.
    assert_eq!(ids.release_abandoned().await, Ok(1));
    assert_eq!(ids.claim("held", ttl, now).await, Ok(Claim::Claimed));
    assert_eq!(
        ids.claim("done", ttl, now).await,
        Ok(Claim::Completed("answer".into()))
    );
}

#[tokio::test]
async fn release_in_flight_hands_back_a_crashed_process_deliveries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(base_time()));
    let store = LocalStore::open(dir.path(), opts(clock.clone())).expect("open");
    let q = &store.queue;
    q.send("work", msg("a", None)).await.expect("send");
    q.send("work", msg("b", None)).await.expect("send");
    let held = q
        .receive("work", 1, Duration::from_secs(300))
        .await
        .expect("receive");
    assert_eq!(held.len(), 1);
    // The holder "crashes": its message is invisible for five minutes...
    assert_eq!(
        q.receive("work", 10, Duration::from_secs(300))
            .await
            .expect("r")
            .len(),
        1
    );
    assert!(q
        .receive("work", 10, Duration::from_secs(300))
        .await
        .expect("r")
        .is_empty());
    // ...unless the restarted owner releases it. Receive counts are kept.
    assert_eq!(q.release_in_flight().await.expect("release"), 2);
    let again = q
        .receive("work", 10, Duration::from_secs(300))
        .await
        .expect("r");
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|m| m.receive_count == 2));
    // The old receipt is stale now.
    q.delete("work", &held[0].receipt).await.expect("delete");
    assert_eq!(q.depth("work").await.expect("depth").in_flight, 2);
}

#[tokio::test]
async fn an_empty_database_beside_blobs_is_refused_not_started_empty() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = Arc::new(ManualClock::new(base_time()));
    {
        let store = LocalStore::open(dir.path(), opts(clock.clone())).expect("open");
        let key = vaia_core::BlobKey::new("evidence/o/r/file.json").expect("key");
        store.blobs.put(&key, b"{}").await.expect("put");
    }
    // The database is truncated to nothing (a failed copy, a full disk).
    let db = dir.path().join(vaia_local::DB_FILE);
    for suffix in ["", "-wal", "-shm"] {
        let p = dir.path().join(format!("{}{suffix}", vaia_local::DB_FILE));
        if p.exists() {
            std::fs::write(&p, b"").expect("truncate");
        }
    }
    let Err(err) = LocalStore::open(dir.path(), opts(clock.clone())) else {
        panic!("an empty database beside blobs is refused");
    };
    let msg = err.to_string();
    assert!(msg.contains("is empty") && msg.contains("blobs"), "{msg}");
    assert_eq!(
        std::fs::metadata(&db).expect("db").len(),
        0,
        "nothing was written"
    );
    // A fresh directory (no database, no blobs) still opens.
    let fresh = tempfile::tempdir().expect("tempdir");
    LocalStore::open(fresh.path(), opts(clock)).expect("a new store opens");
}
