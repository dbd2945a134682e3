//! The watcher over the memory and filesystem stores: once per object whatever the
//! notifications, reconciliation of what they missed, bad keys that change nothing, and
//! consumption by racing jobs that neither loses nor doubles a byte.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use vaia_core::memory::{ManualClock, MemoryBlobStore};
use vaia_local::blobs::FsBlobStore;

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        DateTime::parse_from_rfc3339("2026-12-02T13:00:00Z")
            .unwrap()
            .with_timezone(&Utc),
    ))
}

/// Each store the watcher runs on, with `octo/agent` registered.
async fn stores() -> Vec<(&'static str, Arc<dyn BlobStore>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let fs: Arc<dyn BlobStore> = Arc::new(FsBlobStore::open(dir.path(), None).unwrap());
    let mem: Arc<dyn BlobStore> = Arc::new(MemoryBlobStore::new(None));
    let out = vec![("memory", mem, None), ("filesystem", fs, Some(dir))];
    for (_, s, _) in &out {
        s.put(
            &BlobKey::new("registry/octo/agent/versions/0.1.0.json").unwrap(),
            b"{}",
        )
        .await
        .unwrap();
    }
    out
}

fn repo() -> Repository {
    Repository::new("octo/agent").unwrap()
}

fn created(key: &str, size: u64, seq: &str) -> RawObject {
    RawObject {
        key: key.into(),
        size,
        sequencer: Some(seq.into()),
    }
}

fn watcher(store: &Arc<dyn BlobStore>) -> DataWatcher {
    DataWatcher::new(store.clone(), Arc::new(BlobRawData(store.clone())), clock())
}

#[tokio::test]
async fn duplicate_and_reordered_notifications_count_once() {
    for (name, store, _dir) in stores().await {
        let w = watcher(&store);
        let a = created("raw/octo/agent/2026/a file ü.csv", 100, "0A");
        let b = created("raw/octo/agent/2026/b.csv", 50, "0B");
        // b before a, each delivered several times.
        assert_eq!(w.observe(&b).await.unwrap(), Counted::New, "{name}");
        assert_eq!(w.observe(&a).await.unwrap(), Counted::New, "{name}");
        for _ in 0..3 {
            assert_eq!(w.observe(&a).await.unwrap(), Counted::Duplicate, "{name}");
            assert_eq!(w.observe(&b).await.unwrap(), Counted::Duplicate, "{name}");
        }
        // A redelivery with another sequencer (S3 may retry a notification) is the same
        // object.
        let again = created("raw/octo/agent/2026/b.csv", 50, "0C");
        assert_eq!(
            w.observe(&again).await.unwrap(),
            Counted::Duplicate,
            "{name}"
        );
        assert_eq!(
            w.pending(&repo()).await.unwrap(),
            Volume {
                objects: 2,
                bytes: 150
            },
            "{name}"
        );
    }
}

#[tokio::test]
async fn racing_notifications_of_one_object_count_once() {
    for (name, store, _dir) in stores().await {
        let w = Arc::new(watcher(&store));
        let mut tasks = Vec::new();
        for i in 0..16 {
            let w = w.clone();
            tasks.push(tokio::spawn(async move {
                w.observe(&created("raw/octo/agent/x.bin", 7, &format!("{i:02}")))
                    .await
            }));
        }
        let mut new = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(Counted::New) => new += 1,
                Ok(Counted::Duplicate) => {}
                // Arrived while the first was adding it: delivered again later.
                Err(e @ WatchError::InProgress { .. }) => assert!(e.is_retryable()),
                Err(e) => panic!("{name}: {e}"),
            }
        }
        assert_eq!(new, 1, "{name}");
        assert_eq!(w.pending(&repo()).await.unwrap().bytes, 7, "{name}");
        // Delivered again after the race: a duplicate.
        assert_eq!(
            w.observe(&created("raw/octo/agent/x.bin", 7, "99"))
                .await
                .unwrap(),
            Counted::Duplicate,
            "{name}"
        );
    }
}

#[tokio::test]
async fn bad_keys_and_unknown_repositories_change_nothing() {
    for (name, store, _dir) in stores().await {
        let w = watcher(&store);
        let before = store.list("ct/").await.unwrap();
        for key in [
            "raw/octo/agent/",
            "raw/octo/agent/a//b",
            "raw/octo/agent/../x",
            "raw/octo/agent/a\u{7}b",
            "raw/octo/",
            "raw/octo",
            "datasets/octo/agent/x",
            "raw/-x/agent/f",
        ] {
            let err = w.observe(&created(key, 1, "01")).await.unwrap_err();
            assert!(matches!(err, WatchError::Key { .. }), "{name} {key}: {err}");
            assert!(
                err.to_string().contains(&format!("{key:?}")),
                "{name}: {err}"
            );
            assert!(!err.is_retryable());
        }
        let err = w
            .observe(&created("raw/other/repo/f.csv", 1, "01"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, WatchError::UnknownRepository { ref repository, .. } if repository == "other/repo"),
            "{name}: {err}"
        );
        assert_eq!(store.list("ct/").await.unwrap(), before, "{name}");
    }
}

#[tokio::test]
async fn reconciliation_counts_what_notifications_missed_once() {
    for (name, store, _dir) in stores().await {
        let w = watcher(&store);
        for (k, body) in [
            ("a.csv", &b"aaaa"[..]),
            ("b.csv", b"bb"),
            ("sub/c.csv", b"c"),
        ] {
            store
                .put(&BlobKey::new(format!("raw/octo/agent/{k}")).unwrap(), body)
                .await
                .unwrap();
        }
        // Only a's notification came.
        w.observe(&created("raw/octo/agent/a.csv", 4, "01"))
            .await
            .unwrap();
        let found = w.reconcile(&repo()).await.unwrap();
        assert_eq!(
            found,
            Volume {
                objects: 2,
                bytes: 3
            },
            "{name}"
        );
        assert_eq!(
            w.reconcile(&repo()).await.unwrap(),
            Volume::default(),
            "{name}"
        );
        // b's late notification is not counted again.
        assert_eq!(
            w.observe(&created("raw/octo/agent/b.csv", 2, "02"))
                .await
                .unwrap(),
            Counted::Duplicate,
            "{name}"
        );
        assert_eq!(
            w.pending(&repo()).await.unwrap(),
            Volume {
                objects: 3,
                bytes: 7
            },
            "{name}"
        );
        // Raw data of an unknown repository is skipped by the sweep over all.
        store
            .put(&BlobKey::new("raw/other/repo/z.csv").unwrap(), b"z")
            .await
            .unwrap();
        let all = w.reconcile_all().await.unwrap();
        assert_eq!(all.len(), 1, "{name}");
        assert_eq!(all[&repo()], Volume::default(), "{name}");
    }
}

#[tokio::test]
async fn consumption_by_racing_jobs_neither_loses_nor_doubles() {
    for (name, store, _dir) in stores().await {
        let w = Arc::new(watcher(&store));
        for i in 0..20u64 {
            w.observe(&created(&format!("raw/octo/agent/{i}.csv"), i + 1, "01"))
                .await
                .unwrap();
        }
        let total: u64 = (1..=20).sum();
        // Two jobs consume while more data arrives.
        let (j1, j2) = (w.clone(), w.clone());
        let t1 = tokio::spawn(async move { j1.consume(&repo(), "job-1").await.unwrap() });
        let t2 = tokio::spawn(async move { j2.consume(&repo(), "job-2").await.unwrap() });
        let w3 = w.clone();
        let late = tokio::spawn(async move {
            for i in 20..30u64 {
                w3.observe(&created(&format!("raw/octo/agent/{i}.csv"), 100, "01"))
                    .await
                    .unwrap();
            }
        });
        let (v1, v2) = (t1.await.unwrap(), t2.await.unwrap());
        late.await.unwrap();
        let pending = w.pending(&repo()).await.unwrap();
        assert_eq!(
            v1.bytes + v2.bytes + pending.bytes,
            total + 1000,
            "{name}: {v1:?} {v2:?} {pending:?}"
        );
        assert_eq!(v1.objects + v2.objects + pending.objects, 30, "{name}");
        assert!(v1.bytes + v2.bytes >= total, "{name}");
        // A retried consumption returns the job's volume again (and what arrived since).
        let again = w.consume(&repo(), "job-1").await.unwrap();
        assert_eq!(again.bytes, v1.bytes + pending.bytes, "{name}");
        assert_eq!(
            w.pending(&repo()).await.unwrap(),
            Volume::default(),
            "{name}"
        );
        assert_eq!(w.consume(&repo(), "job-2").await.unwrap(), v2, "{name}");
    }
}

#[tokio::test]
async fn a_watched_directory_is_counted_once_per_file() {
    for (name, store, _dir) in stores().await {
        let data = tempfile::tempdir().unwrap();
        let w = DataWatcher::new(
            store.clone(),
            Arc::new(DirRawData {
                root: data.path().to_path_buf(),
            }),
            clock(),
        );
        std::fs::create_dir_all(data.path().join("octo/agent/2026")).unwrap();
        std::fs::write(data.path().join("octo/agent/2026/a b ü.csv"), [1u8; 40]).unwrap();
        std::fs::write(data.path().join("octo/agent/top.csv"), [1u8; 2]).unwrap();
        std::fs::create_dir_all(data.path().join("other/repo")).unwrap();
        std::fs::write(data.path().join("other/repo/x.csv"), [1u8; 9]).unwrap();
        let polled = w.reconcile_all().await.unwrap();
        assert_eq!(
            polled[&repo()],
            Volume {
                objects: 2,
                bytes: 42
            },
            "{name}"
        );
        assert_eq!(polled.len(), 1, "{name}: unknown repositories are skipped");
        // A second poll finds nothing new; a new file is counted.
        assert_eq!(
            w.reconcile_all().await.unwrap()[&repo()],
            Volume::default(),
            "{name}"
        );
        std::fs::write(data.path().join("octo/agent/new.csv"), [1u8; 8]).unwrap();
        assert_eq!(w.reconcile_all().await.unwrap()[&repo()].bytes, 8, "{name}");
        assert_eq!(
            w.pending(&repo()).await.unwrap(),
            Volume {
                objects: 3,
                bytes: 50
            },
            "{name}"
        );
    }
}

/// The running total of `repo` as stored.
async fn total(store: &Arc<dyn BlobStore>) -> PendingRecord {
    let key = data_pending_key(&repo()).unwrap();
    serde_json::from_slice(&store.get(&key).await.unwrap().unwrap()).unwrap()
}

#[tokio::test]
async fn an_interrupted_count_is_taken_over_once_after_the_lease() {
    for (name, store, _dir) in stores().await {
        let clock = clock();
        let w = DataWatcher::new(
            store.clone(),
            Arc::new(BlobRawData(store.clone())),
            clock.clone(),
        );
        // Something already pending, for a total to exist.
        w.observe(&created("raw/octo/agent/first.csv", 10, "01"))
            .await
            .unwrap();
        // Two creators died: one after creating its record (`early`), one after adding
        // its object to the total too (`late`).
        let mut total_before = total(&store).await;
        for (key, size, added) in [
            ("raw/octo/agent/early.csv", 100u64, false),
            ("raw/octo/agent/late.csv", 1000, true),
        ] {
            let id = object_id(key, size);
            let record = DataObjectRecord {
                key: key.into(),
                size,
                sequencer: Some("02".into()),
                seen: Seen::Notification,
                counted_at: clock.now(),
                tallied: false,
            };
            store
                .put(
                    &data_object_key(&repo(), &id).unwrap(),
                    &serde_json::to_vec(&record).unwrap(),
                )
                .await
                .unwrap();
            if added {
                total_before.pending.add(size);
                total_before.adding.insert(id);
            }
        }
        store
            .put(
                &data_pending_key(&repo()).unwrap(),
                &serde_json::to_vec(&total_before).unwrap(),
            )
            .await
            .unwrap();
        let early = created("raw/octo/agent/early.csv", 100, "02");
        let late = created("raw/octo/agent/late.csv", 1000, "02");
        // Within the lease the creator may still be at it: retry later, nothing changes.
        let e = w.observe(&early).await.unwrap_err();
        assert!(
            matches!(e, WatchError::InProgress { .. }) && e.is_retryable(),
            "{name}: {e}"
        );
        assert_eq!(total(&store).await, total_before, "{name}");
        clock.advance(std::time::Duration::from_secs(61));
        // After it, each redelivery takes over: `early` is added, `late` is not again.
        assert_eq!(w.observe(&early).await.unwrap(), Counted::New, "{name}");
        assert_eq!(
            w.observe(&late).await.unwrap(),
            Counted::Duplicate,
            "{name}"
        );
        for o in [&early, &late] {
            assert_eq!(w.observe(o).await.unwrap(), Counted::Duplicate, "{name}");
        }
        let after = total(&store).await;
        assert_eq!(
            after.pending,
            Volume {
                objects: 3,
                bytes: 1110
            },
            "{name}"
        );
        assert!(after.adding.is_empty(), "{name}: {after:?}");
    }
}
