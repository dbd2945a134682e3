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
        for (name, bytes) in files {
            let key = BlobKey::evidence(&self.run.repository, &self.run.commit, name).unwrap();
            self.blobs.put(&key, bytes).await.unwrap();
        }
        let manifest = self.manifest(files, tamper);
        let key = BlobKey::evidence(&self.run.repository, &self.run.commit, MANIFEST_FILE).unwrap();
        self.blobs
            .put(&key, manifest.to_string().as_bytes())
            .await
            .unwrap();
    }

    /// The bundle as one archive: the manifest listing `files` (a `tamper`ed one with a
    /// wrong sha256) and `files` with `extra` files it does not list.
    async fn upload_archive(
        &self,
        files: &[(&str, &[u8])],
        tamper: Option<&str>,
        extra: &[(&str, &[u8])],
    ) {
        let manifest = self.manifest(files, tamper).to_string();
        let all: Vec<(&str, &[u8])> = files.iter().chain(extra).copied().collect();
        let bytes = archive::pack(manifest.as_bytes(), &all).unwrap();
        self.put_archive(&bytes).await;
    }

    async fn put_archive(&self, bytes: &[u8]) {
        let key = BlobKey::evidence(&self.run.repository, &self.run.commit, ARCHIVE_FILE).unwrap();
        self.blobs.put(&key, bytes).await.unwrap();
    }

    fn manifest(&self, files: &[(&str, &[u8])], tamper: Option<&str>) -> serde_json::Value {
        let mut listed = Vec::new();
        for (name, bytes) in files {
            let mut sha = hex::encode(Sha256::digest(bytes));
            if tamper == Some(*name) {
                sha = "0".repeat(64);
            }
            listed.push(serde_json::json!({"name": name, "sha256": sha, "bytes": bytes.len()}));
        }
        serde_json::json!({
            "schema": "vaia.evidence/v1",
            "repository": self.run.repository,
            "commit": self.run.commit,
            "image": {"digest": digest()},
            "dataset": {"path": "data/train.dvc", "md5": "abc", "rows": 10},
            "files": listed,
            "created_at": "2026-11-27T10:00:00Z"
        })
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
        Done::Skipped(format!(
            "{} is not a manifest or archive",
            f.created("tools.json").key
        ))
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

async fn verify(f: &F) {
    f.registry
        .job(&RegistryJob::VerifyEvidence {
            run_id: f.run.id.clone(),
        })
        .await
        .unwrap();
}

/// The one signal the registry sent.
async fn only_signal(f: &F) -> Signal {
    let signals = f.signals().await;
    let [signal] = &signals[..] else {
        panic!("{signals:?}")
    };
    signal.clone()
}

#[tokio::test]
async fn an_archive_is_verified_as_its_per_file_form_is() {
    let files: &[(&str, &[u8])] = &[("tools.json", b"[]"), ("trivy.json", b"{}")];
    let per_file = fixture().with_state(PipelineState::Triggered).await;
    per_file.upload(files, None).await;
    per_file
        .registry
        .object_created(&per_file.created(MANIFEST_FILE))
        .await
        .unwrap();
    let Signal::EvidenceVerified { evidence: want } = only_signal(&per_file).await else {
        panic!()
    };
    // Announced by its object event, and found by the TRIGGERED entry action's job.
    for announced in [true, false] {
        let f = fixture().with_state(PipelineState::Triggered).await;
        f.upload_archive(files, None, &[]).await;
        if announced {
            f.registry
                .object_created(&f.created(ARCHIVE_FILE))
                .await
                .unwrap();
        } else {
            f.registry
                .job(&RegistryJob::VerifyEvidence {
                    run_id: f.run.id.clone(),
                })
                .await
                .unwrap();
        }
        let Signal::EvidenceVerified { evidence } = only_signal(&f).await else {
            panic!()
        };
        assert_eq!(evidence.manifest, f.created(ARCHIVE_FILE).key);
        assert_eq!(
            EvidenceRecord {
                manifest: want.manifest.clone(),
                ..evidence
            },
            want,
            "the same record but where it was verified"
        );
    }
}

#[tokio::test]
async fn a_bad_archive_fails_the_run_naming_the_entry() {
    let files: &[(&str, &[u8])] = &[("tools.json", b"[]")];
    let rejected = |signal: Signal| match signal {
        Signal::EvidenceRejected { reason, manifest } => {
            assert!(manifest.as_str().ends_with(ARCHIVE_FILE), "{manifest}");
            reason
        }
        other => panic!("{other:?}"),
    };

    // A file the manifest does not list.
    let f = fixture().with_state(PipelineState::Triggered).await;
    f.upload_archive(files, None, &[("secret.env", b"x")]).await;
    verify(&f).await;
    let reason = rejected(only_signal(&f).await);
    assert!(
        reason.ends_with(
            r#"bundle.tar: entry "secret.env": in the archive but not listed in its manifest.json"#
        ),
        "{reason}"
    );

    // A file that is not what the manifest says, or not there.
    let f = fixture().with_state(PipelineState::Triggered).await;
    f.upload_archive(files, Some("tools.json"), &[]).await;
    verify(&f).await;
    let reason = rejected(only_signal(&f).await);
    assert!(
        reason.contains("$.files[0]: tools.json does not match the manifest: it has sha256"),
        "{reason}"
    );
    let f = fixture().with_state(PipelineState::Triggered).await;
    let manifest = f.manifest(files, None).to_string();
    f.put_archive(&archive::pack(manifest.as_bytes(), &[]).unwrap())
        .await;
    verify(&f).await;
    let reason = rejected(only_signal(&f).await);
    assert!(
        reason.contains("tools.json is listed but missing"),
        "{reason}"
    );

    // An entry that is not a flat regular file.
    let f = fixture().with_state(PipelineState::Triggered).await;
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in [
        ("manifest.json", manifest.as_bytes()),
        ("tools.json", b"[]"),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data).unwrap();
    }
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "evil", "/etc/passwd").unwrap();
    f.put_archive(&b.into_inner().unwrap()).await;
    verify(&f).await;
    let reason = rejected(only_signal(&f).await);
    assert!(
        reason.contains(r#"bundle.tar: entry "evil": is a Symlink entry"#),
        "{reason}"
    );

    // A manifest that does not parse, inside the archive: named as in the archive.
    let f = fixture().with_state(PipelineState::Triggered).await;
    f.put_archive(&archive::pack(b"{not json", &[]).unwrap())
        .await;
    verify(&f).await;
    let reason = rejected(only_signal(&f).await);
    assert!(reason.contains("bundle.tar: $: not JSON"), "{reason}");
}

#[tokio::test]
async fn a_bundle_in_both_forms_is_verified_once() {
    let files: &[(&str, &[u8])] = &[("tools.json", b"[]")];
    let f = fixture().with_state(PipelineState::Triggered).await;
    f.upload(files, None).await;
    f.upload_archive(files, None, &[]).await;
    for form in [MANIFEST_FILE, ARCHIVE_FILE] {
        f.registry.object_created(&f.created(form)).await.unwrap();
    }
    f.registry
        .job(&RegistryJob::VerifyEvidence {
            run_id: f.run.id.clone(),
        })
        .await
        .unwrap();
    // Three verifications, one signal (the first; the others share its dedupe key).
    let Signal::EvidenceVerified { evidence } = only_signal(&f).await else {
        panic!()
    };
    assert_eq!(evidence.manifest, f.created(MANIFEST_FILE).key);
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
        reason.contains("$.files[0]: tools.json does not match the manifest: it has sha256"),
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
        dataset: None,
        gates: Default::default(),
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

    // Lineage: the record keeps the commit, the image, the parent and every gate's result.
    let record: VersionRecord = f
        .registry
        .read(&version_key(&f.run.repository, version).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.commit, f.run.commit);
    assert_eq!(record.previous, Some(Version::new(1, 2, 3)));
    let schema = &record.gates[&GateName::new("schema").unwrap()];
    assert_eq!((schema.stage, schema.outcome), (Stage::Ci, Outcome::Pass));
    assert_eq!(schema.metrics["bump"], "minor");
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

/// Blobs whose first `n` reads of keys containing `pattern` wait for one another, so
/// that every writer sees the same record before any of them writes: the worst
/// interleaving, every time.
struct Lockstep {
    inner: Arc<MemoryBlobStore>,
    barrier: tokio::sync::Barrier,
    reads: std::sync::atomic::AtomicUsize,
    n: usize,
    pattern: &'static str,
}

impl Lockstep {
    fn new(inner: Arc<MemoryBlobStore>, n: usize, pattern: &'static str) -> Self {
        Self {
            inner,
            barrier: tokio::sync::Barrier::new(n),
            reads: Default::default(),
            n,
            pattern,
        }
    }

    async fn read<T>(&self, key: &BlobKey, read: impl std::future::Future<Output = T>) -> T {
        let first = key.as_str().contains(self.pattern)
            && self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < self.n;
        let got = read.await;
        if first {
            self.barrier.wait().await;
        }
        got
    }
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
    async fn put_if_match(
        &self,
        key: &BlobKey,
        bytes: &[u8],
        etag: &str,
    ) -> PortResult<Option<ObjectCreated>> {
        self.inner.put_if_match(key, bytes, etag).await
    }
    async fn get_tagged(&self, key: &BlobKey) -> PortResult<Option<vaia_core::ports::Tagged>> {
        self.read(key, self.inner.get_tagged(key)).await
    }
    async fn get(&self, key: &BlobKey) -> PortResult<Option<Vec<u8>>> {
        self.read(key, self.inner.get(key)).await
    }
    async fn get_at_most(
        &self,
        key: &BlobKey,
        limit: u64,
    ) -> PortResult<Option<vaia_core::ports::Bounded>> {
        self.read(key, self.inner.get_at_most(key, limit)).await
    }
    async fn list(&self, prefix: &str) -> PortResult<Vec<vaia_core::ports::BlobMeta>> {
        self.inner.list(prefix).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_candidates_of_one_repository_get_distinct_versions() {
    const N: usize = 8;
    let f = fixture();
    let blobs = Arc::new(Lockstep::new(f.blobs.clone(), N, "/versions/"));
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

/// A run of `f`'s repository for commit `i`, in `state`, with a version and an image.
async fn stored_run(f: &F, i: usize, state: PipelineState) -> Run {
    let mut run = f.run.clone();
    run.commit = CommitSha::new(format!("{:x}", i % 16).repeat(40)).unwrap();
    run.id = RunId::for_commit(&run.repository, &run.commit);
    run.state = state;
    run.candidate.image_digest = Some(ImageDigest::new(digest()).unwrap());
    run.candidate.version = Some(Version::new(1, i as u64, 0));
    f.store.create(&run, &[]).await.unwrap();
    run
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_promotions_lose_no_history_entry() {
    const N: usize = 6;
    let f = fixture();
    let blobs = Arc::new(Lockstep::new(f.blobs.clone(), N, "/aliases/"));
    let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
    let registry = Arc::new(Registry::new(
        f.store.clone(),
        blobs,
        f.queue.clone(),
        clock,
    ));
    // Something is in prod already, so every racer reads the same record with an etag.
    let first = stored_run(&f, 1, PipelineState::Promoted).await;
    f.registry
        .job(&RegistryJob::Promote {
            run_id: first.id.clone(),
        })
        .await
        .unwrap();
    let mut handles = Vec::new();
    let mut ids = vec![first.id.clone()];
    for i in 2..N + 2 {
        let run = stored_run(&f, i, PipelineState::Promoted).await;
        ids.push(run.id.clone());
        let registry = registry.clone();
        handles.push(tokio::spawn(async move {
            registry.job(&RegistryJob::Promote { run_id: run.id }).await
        }));
    }
    for h in handles {
        h.await.unwrap().unwrap();
    }
    let alias = f.registry.alias(&f.run.repository).await.unwrap().unwrap();
    let mut seen: Vec<RunId> = std::iter::once(alias.target.run_id.clone())
        .chain(alias.history.iter().map(|t| t.run_id.clone()))
        .collect();
    assert_eq!(
        alias.history.len(),
        N,
        "every promotion but the last is in the history"
    );
    assert_eq!(
        alias.history.last().unwrap().run_id,
        first.id,
        "the oldest stays last"
    );
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids, "no promotion lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rollback_racing_a_promotion_never_undoes_it() {
    for _ in 0..10 {
        let f = fixture();
        let blobs = Arc::new(Lockstep::new(f.blobs.clone(), 2, "/aliases/"));
        let clock = Arc::new(ManualClock::new(chrono::Utc::now()));
        let registry = Arc::new(Registry::new(
            f.store.clone(),
            blobs,
            f.queue.clone(),
            clock,
        ));
        let old = stored_run(&f, 1, PipelineState::Promoted).await;
        f.registry
            .job(&RegistryJob::Promote {
                run_id: old.id.clone(),
            })
            .await
            .unwrap();
        let current = stored_run(&f, 2, PipelineState::Promoted).await;
        f.registry
            .job(&RegistryJob::Promote {
                run_id: current.id.clone(),
            })
            .await
            .unwrap();
        let mut stored = f.store.get(&current.id).await.unwrap().unwrap();
        stored.state = PipelineState::Rollback;
        let v = stored.version;
        stored.version += 1;
        f.store.save(&stored, v, &[]).await.unwrap();
        let new = stored_run(&f, 3, PipelineState::Promoted).await;
        let restore = RegistryJob::RestorePrevious {
            run_id: current.id.clone(),
        };
        let promote = RegistryJob::Promote {
            run_id: new.id.clone(),
        };
        let (r1, r2) = tokio::join!(registry.job(&restore), registry.job(&promote));
        r1.unwrap();
        r2.unwrap();
        let alias = f.registry.alias(&f.run.repository).await.unwrap().unwrap();
        assert_eq!(alias.target.run_id, new.id, "the new promotion stands");
        let history: Vec<&RunId> = alias.history.iter().map(|t| &t.run_id).collect();
        assert!(history.contains(&&old.id), "{history:?}");
    }
}

mod snapshots {
    use super::*;
    use vaia_core::dataset::{snapshots_prefix, SnapshotSource};

    const WITH_META: &str = include_str!("../../../shared/dvc/tests/fixtures/with-meta.dvc");
    const LOCK: &str = include_str!("../../../shared/dvc/tests/fixtures/experiments.dvc.lock");

    async fn upload(f: &F, path: &str, text: &str) -> Result<Done, RegistryError> {
        let key = BlobKey::new(format!("datasets/octo/agent/{path}")).unwrap();
        let event = f.blobs.put(&key, text.as_bytes()).await.unwrap();
        f.registry.object_created(&event).await
    }

    async fn known(f: &F) {
        let key = version_key(&f.run.repository, &Version::new(0, 1, 0)).unwrap();
        f.blobs.put(&key, b"{}").await.unwrap();
    }

    /// The CT evaluations the registry asked for (queue `ct-evaluate`).
    async fn asked(f: &F) -> Vec<vaia_core::messages::CtEvaluate> {
        f.queue
            .receive(queues::CT_EVALUATE, 100, Duration::from_secs(30))
            .await
            .unwrap()
            .iter()
            .map(|m| serde_json::from_str(&m.body).unwrap())
            .collect()
    }

    async fn stored(f: &F) -> Vec<BlobKey> {
        f.blobs
            .list(&snapshots_prefix(&f.run.repository))
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.key)
            .collect()
    }

    #[tokio::test]
    async fn a_pushed_dvc_file_becomes_one_snapshot_once() {
        let f = fixture();
        known(&f).await;
        let Done::Snapshots(got) = upload(&f, "data/train.dvc", WITH_META).await.unwrap() else {
            panic!("not recorded")
        };
        assert_eq!(got.len(), 1);
        let s = &got[0];
        assert_eq!(s.path, "data/train");
        assert_eq!(s.md5, "9b7c4b5bb4e2b0b6a1b7f3c2d1e0f9a8.dir");
        assert_eq!(
            (s.size, s.nfiles, s.rows),
            (Some(5_242_880), Some(12), Some(120_000))
        );
        assert_eq!(s.source, SnapshotSource::Upload);
        assert_eq!(s.origin.as_str(), "datasets/octo/agent/data/train.dvc");
        let first = f.blobs.get(&stored(&f).await[0]).await.unwrap();
        // The same snapshot again (a redelivered notification, a second push): nothing new.
        assert_eq!(
            upload(&f, "data/train.dvc", WITH_META).await.unwrap(),
            Done::Snapshots(vec![])
        );
        assert_eq!(f.blobs.get(&stored(&f).await[0]).await.unwrap(), first);
        // The CT budget is asked to evaluate the repository now, once for the snapshot.
        assert_eq!(
            asked(&f).await,
            vec![vaia_core::messages::CtEvaluate {
                repository: f.run.repository.clone(),
                snapshot_md5: "9b7c4b5bb4e2b0b6a1b7f3c2d1e0f9a8.dir".into(),
            }]
        );
    }

    #[tokio::test]
    async fn a_pushed_lock_records_every_stage_out() {
        let f = fixture();
        known(&f).await;
        let Done::Snapshots(got) = upload(&f, "dvc.lock", LOCK).await.unwrap() else {
            panic!("not recorded")
        };
        let paths: Vec<&str> = got.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(
            paths,
            ["data/test_data", "data/train_data", "models/model.pkl"]
        );
        assert!(
            got.iter().all(|s| s.rows.is_none()),
            "a lock declares no rows"
        );
        assert_eq!(stored(&f).await.len(), 3);
        assert_eq!(asked(&f).await.len(), 3, "one ask per snapshot");
    }

    #[tokio::test]
    async fn bad_snapshots_change_nothing() {
        let f = fixture();
        // Unknown repository.
        let e = upload(&f, "data/train.dvc", WITH_META).await.unwrap_err();
        assert!(
            e.to_string().contains("unknown repository octo/agent"),
            "{e}"
        );
        assert!(!HandlerError::from(e).retryable);
        known(&f).await;
        // Malformed: the file, line and field are named.
        let e = upload(&f, "data/bad.dvc", "outs:\n- path: d\n  md5: nothex\n")
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("datasets/octo/agent/data/bad.dvc:3: outs[0].md5"),
            "{e}"
        );
        let e = upload(&f, "dvc.lock", "stages: {}\n").await.unwrap_err();
        assert!(e.to_string().contains("schema"), "{e}");
        assert!(stored(&f).await.is_empty());
        // Data, not a DVC file.
        assert!(matches!(
            upload(&f, "raw/part-0.csv", "a,b\n").await.unwrap(),
            Done::Skipped(_)
        ));
        assert!(asked(&f).await.is_empty(), "nothing evaluated on bad input");
    }
}
