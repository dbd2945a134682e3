use super::*;
use std::time::Duration;
use vaia_core::memory::{ManualClock, MemoryBlobStore, MemoryQueue, MemoryRunStore};
use vaia_core::messages::AdvanceMessage;
use vaia_core::policy::Policy;
use vaia_core::ports::PortResult;
use vaia_core::run::{GateRecord, Trigger};
use vaia_core::{CommitSha, ImageDigest, Outcome, Stage};

struct F {
    store: Arc<MemoryRunStore>,
    blobs: Arc<MemoryBlobStore>,
    queue: Arc<MemoryQueue>,
    registry: Registry,
    run: Run,
}

fn digest() -> String {
    format!("sha256:{}", "e".repeat(64))
}

fn fixture() -> F {
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let queue = Arc::new(MemoryQueue::new(clock.clone(), 5));
    let store = Arc::new(MemoryRunStore::new());
    let blobs = Arc::new(MemoryBlobStore::new(None));
    let registry = Registry::new(store.clone(), blobs.clone(), queue.clone(), clock.clone());
    let now = clock.now();
    let run = Run::new(
        Repository::new("octo/agent").unwrap(),
        CommitSha::new("b".repeat(40)).unwrap(),
        None,
        Trigger {
            kind: "push".into(),
            delivery: None,
            actor: None,
            at: now,
        },
        Policy::schema_only(),
        now,
    );
    F {
        store,
        blobs,
        queue,
        registry,
        run,
    }
}

impl F {
    async fn with_state(mut self, state: PipelineState) -> Self {
        self.run.state = state;
        self.store.create(&self.run, &[]).await.unwrap();
        self
    }

    async fn upload(&self, files: &[(&str, &[u8])], tamper: Option<&str>) {
        let mut listed = Vec::new();
        for (name, bytes) in files {
            let key = BlobKey::evidence(&self.run.repository, &self.run.commit, name).unwrap();
            self.blobs.put(&key, bytes).await.unwrap();
            let mut sha = hex::encode(Sha256::digest(bytes));
            if tamper == Some(*name) {
                sha = "0".repeat(64);
            }
            listed.push(serde_json::json!({"name": name, "sha256": sha, "bytes": bytes.len()}));
        }
        let manifest = serde_json::json!({
            "schema": "vaia.evidence/v1",
            "repository": self.run.repository,
            "commit": self.run.commit,
            "image": {"digest": digest()},
            "dataset": {"path": "data/train.dvc", "md5": "abc", "rows": 10},
            "files": listed,
            "created_at": "2026-11-27T10:00:00Z"
        });
        let key = BlobKey::evidence(&self.run.repository, &self.run.commit, MANIFEST_FILE).unwrap();
        self.blobs
            .put(&key, manifest.to_string().as_bytes())
            .await
            .unwrap();
    }

    async fn signals(&self) -> Vec<Signal> {
        let got = self
            .queue
            .receive(queues::ADVANCE, 100, Duration::from_secs(30))
            .await
            .unwrap();
        got.iter()
            .map(|m| {
                serde_json::from_str::<AdvanceMessage>(&m.body)
                    .unwrap()
                    .signal
            })
            .collect()
    }

    fn created(&self, file: &str) -> ObjectCreated {
        ObjectCreated {
            key: BlobKey::evidence(&self.run.repository, &self.run.commit, file).unwrap(),
            size: 1,
            sequencer: "1".into(),
        }
    }
}

#[tokio::test]
async fn verifies_a_complete_bundle() {
    let f = fixture().with_state(PipelineState::Triggered).await;
    f.upload(&[("tools.json", b"[]"), ("trivy.json", b"{}")], None)
        .await;
    assert_eq!(
        f.registry
            .object_created(&f.created("tools.json"))
            .await
            .unwrap(),
        Done::Skipped(format!("{} is not a manifest", f.created("tools.json").key))
    );
    f.registry
        .object_created(&f.created(MANIFEST_FILE))
        .await
        .unwrap();
    let signals = f.signals().await;
    let [Signal::EvidenceVerified { evidence }] = &signals[..] else {
        panic!("{signals:?}")
    };
    assert_eq!(evidence.files, vec!["tools.json", "trivy.json"]);
    assert_eq!(evidence.dataset.as_ref().unwrap().rows, Some(10));
}

#[tokio::test]
async fn rejects_mismatched_and_missing_files_with_the_path() {
    let f = fixture().with_state(PipelineState::Triggered).await;
    f.upload(&[("tools.json", b"[]")], Some("tools.json")).await;
    f.registry
        .job(&RegistryJob::VerifyEvidence {
            run_id: f.run.id.clone(),
        })
        .await
        .unwrap();
    let signals = f.signals().await;
    let [Signal::EvidenceRejected { reason, .. }] = &signals[..] else {
        panic!("{signals:?}")
    };
    assert!(
        reason.contains("$.files[0]: tools.json sha256 mismatch"),
        "{reason}"
    );

    let f = fixture().with_state(PipelineState::Triggered).await;
    f.upload(&[("tools.json", b"[]")], None).await;
    // A manifest listing a file that was never uploaded.
    let manifest = serde_json::json!({
        "schema": "vaia.evidence/v1", "repository": f.run.repository, "commit": f.run.commit,
        "image": {"digest": digest()},
        "files": [{"name": "eval_answers.jsonl", "sha256": "1".repeat(64), "bytes": 3}],
        "created_at": "2026-11-27T10:00:00Z"
    });
    let key = BlobKey::evidence(&f.run.repository, &f.run.commit, MANIFEST_FILE).unwrap();
    f.blobs
        .put(&key, manifest.to_string().as_bytes())
        .await
        .unwrap();
    f.registry
        .job(&RegistryJob::VerifyEvidence {
            run_id: f.run.id.clone(),
        })
        .await
        .unwrap();
    let signals = f.signals().await;
    let [Signal::EvidenceRejected { reason, .. }] = &signals[..] else {
        panic!("{signals:?}")
    };
    assert!(
        reason.contains("eval_answers.jsonl is listed but missing"),
        "{reason}"
    );
}

#[tokio::test]
async fn manifest_before_run_waits_for_the_trigger() {
    let f = fixture();
    f.upload(&[("tools.json", b"[]")], None).await;
    let done = f
        .registry
        .object_created(&f.created(MANIFEST_FILE))
        .await
        .unwrap();
    assert!(
        matches!(done, Done::Skipped(ref s) if s.contains("arrived before its run")),
        "{done:?}"
    );
    assert!(f.signals().await.is_empty());
    let f = f.with_state(PipelineState::Triggered).await;
    f.registry
        .job(&RegistryJob::VerifyEvidence {
            run_id: f.run.id.clone(),
        })
        .await
        .unwrap();
    assert!(matches!(
        &f.signals().await[..],
        [Signal::EvidenceVerified { .. }]
    ));
}

#[tokio::test]
async fn versions_follow_the_schema_bump_and_are_never_reused() {
    let mut f = fixture();
    f.run.candidate.image_digest = Some(ImageDigest::new(digest()).unwrap());
    f.run.verdicts.insert(
        GateName::new("schema").unwrap(),
        GateRecord {
            stage: Stage::Ci,
            outcome: Outcome::Pass,
            summary: String::new(),
            metrics: serde_json::json!({"bump": "minor"})
                .as_object()
                .unwrap()
                .clone(),
            verdict: BlobKey::new("v/x").unwrap(),
            at: chrono::Utc::now(),
        },
    );
    let f = f.with_state(PipelineState::Build).await;
    // prod is at 1.2.3 and 1.3.0 was taken by a rolled-back run.
    let prod = AliasRecord {
        alias: "prod".into(),
        target: AliasTarget {
            version: Version::new(1, 2, 3),
            run_id: RunId::new(format!("r{}", "0".repeat(24))).unwrap(),
            commit: CommitSha::new("c".repeat(40)).unwrap(),
            image_digest: ImageDigest::new(digest()).unwrap(),
        },
        history: vec![],
        updated_at: chrono::Utc::now(),
    };
    f.registry
        .write(&alias_key(&f.run.repository, "prod").unwrap(), &prod)
        .await
        .unwrap();
    let taken = VersionRecord {
        version: Version::new(1, 3, 0),
        run_id: RunId::new(format!("r{}", "1".repeat(24))).unwrap(),
        commit: CommitSha::new("d".repeat(40)).unwrap(),
        image_digest: ImageDigest::new(digest()).unwrap(),
        bump: Bump::Minor,
        previous: None,
        created_at: chrono::Utc::now(),
    };
    let key = version_key(&f.run.repository, &taken.version).unwrap();
    f.registry.write(&key, &taken).await.unwrap();

    let job = RegistryJob::RegisterArtifact {
        run_id: f.run.id.clone(),
    };
    f.registry.job(&job).await.unwrap();
    f.registry.job(&job).await.unwrap();
    let signals = f.signals().await;
    assert_eq!(
        signals.len(),
        1,
        "the second copy is the same message (dedupe key)"
    );
    let Signal::ArtifactRegistered {
        version,
        previous_version,
        bump,
        ..
    } = &signals[0]
    else {
        panic!("{signals:?}")
    };
    assert_eq!(version, &Version::new(1, 3, 1));
    assert_eq!(previous_version, &Some(Version::new(1, 2, 3)));
    assert_eq!(*bump, Bump::Minor);
}

#[tokio::test]
async fn promote_then_restore_moves_prod_back() {
    let mut f = fixture();
    f.run.candidate.version = Some(Version::new(0, 2, 0));
    f.run.candidate.image_digest = Some(ImageDigest::new(digest()).unwrap());
    let f = f.with_state(PipelineState::Promoted).await;
    let old = AliasTarget {
        version: Version::new(0, 1, 0),
        run_id: RunId::new(format!("r{}", "2".repeat(24))).unwrap(),
        commit: CommitSha::new("c".repeat(40)).unwrap(),
        image_digest: ImageDigest::new(digest()).unwrap(),
    };
    let prod = AliasRecord {
        alias: "prod".into(),
        target: old.clone(),
        history: vec![],
        updated_at: chrono::Utc::now(),
    };
    f.registry
        .write(&alias_key(&f.run.repository, "prod").unwrap(), &prod)
        .await
        .unwrap();
    f.registry
        .job(&RegistryJob::Promote {
            run_id: f.run.id.clone(),
        })
        .await
        .unwrap();
    let now = f.registry.alias(&f.run.repository).await.unwrap().unwrap();
    assert_eq!(now.target.version, Version::new(0, 2, 0));
    assert_eq!(now.history, vec![old.clone()]);

    let mut rolled = f.run.clone();
    rolled.state = PipelineState::Rollback;
    rolled.version = 1;
    f.store.save(&rolled, 0, &[]).await.unwrap();
    f.registry
        .job(&RegistryJob::RestorePrevious {
            run_id: f.run.id.clone(),
        })
        .await
        .unwrap();
    let back = f.registry.alias(&f.run.repository).await.unwrap().unwrap();
    assert_eq!(back.target, old);
}

#[tokio::test]
async fn jobs_for_runs_in_other_states_are_skipped() {
    let f = fixture().with_state(PipelineState::CiRunning).await;
    for job in [
        RegistryJob::VerifyEvidence {
            run_id: f.run.id.clone(),
        },
        RegistryJob::RegisterArtifact {
            run_id: f.run.id.clone(),
        },
        RegistryJob::RecordCtBaseline {
            run_id: f.run.id.clone(),
        },
        RegistryJob::Promote {
            run_id: f.run.id.clone(),
        },
        RegistryJob::RestorePrevious {
            run_id: f.run.id.clone(),
        },
    ] {
        assert!(matches!(
            f.registry.job(&job).await.unwrap(),
            Done::Skipped(_)
        ));
    }
    assert!(f.signals().await.is_empty());
}

/// Blobs whose first `n` reads of version records wait for one another, so that every
/// candidate sees the same free version before any of them writes: the worst interleaving,
/// every time.
struct Lockstep {
    inner: Arc<MemoryBlobStore>,
    barrier: tokio::sync::Barrier,
    reads: std::sync::atomic::AtomicUsize,
    n: usize,
}

#[async_trait::async_trait]
impl BlobStore for Lockstep {
    async fn put(&self, key: &BlobKey, bytes: &[u8]) -> PortResult<ObjectCreated> {
        self.inner.put(key, bytes).await
    }
    async fn put_if_absent(
        &self,
        key: &BlobKey,
        bytes: &[u8],
    ) -> PortResult<Option<ObjectCreated>> {
        self.inner.put_if_absent(key, bytes).await
    }
    async fn get(&self, key: &BlobKey) -> PortResult<Option<Vec<u8>>> {
        let first = key.as_str().contains("/versions/")
            && self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < self.n;
        let read = self.inner.get(key).await;
        if first {
            self.barrier.wait().await;
        }
        read
    }
    async fn list(&self, prefix: &str) -> PortResult<Vec<vaia_core::ports::BlobMeta>> {
        self.inner.list(prefix).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_candidates_of_one_repository_get_distinct_versions() {
    const N: usize = 8;
    let f = fixture();
    let blobs = Arc::new(Lockstep {
        inner: f.blobs.clone(),
        barrier: tokio::sync::Barrier::new(N),
        reads: Default::default(),
        n: N,
    });
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let registry = Arc::new(Registry::new(
        f.store.clone(),
        blobs,
        f.queue.clone(),
        clock,
    ));
    let mut handles = Vec::new();
    for i in 0..N {
        let mut run = f.run.clone();
        run.commit = CommitSha::new(format!("{:x}", i + 1).repeat(40)).unwrap();
        run.id = RunId::for_commit(&run.repository, &run.commit);
        run.state = PipelineState::Build;
        run.candidate.image_digest = Some(ImageDigest::new(digest()).unwrap());
        f.store.create(&run, &[]).await.unwrap();
        let registry = registry.clone();
        handles.push(tokio::spawn(async move {
            registry
                .job(&RegistryJob::RegisterArtifact { run_id: run.id })
                .await
        }));
    }
    for h in handles {
        h.await.unwrap().unwrap();
    }
    let got = f
        .queue
        .receive(queues::ADVANCE, 100, Duration::from_secs(30))
        .await
        .unwrap();
    let mut versions: Vec<Version> = got
        .iter()
        .map(|m| {
            match serde_json::from_str::<AdvanceMessage>(&m.body)
                .unwrap()
                .signal
            {
                Signal::ArtifactRegistered { version, .. } => version,
                other => panic!("{other:?}"),
            }
        })
        .collect();
    versions.sort();
    let expected: Vec<Version> = (0..N as u64).map(|p| Version::new(0, 1, p)).collect();
    assert_eq!(
        versions, expected,
        "eight candidates, eight distinct versions"
    );
}
