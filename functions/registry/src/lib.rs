//! The registry: verifies evidence bundles when their manifest or archive lands, assigns candidates a
//! semantic version, records CT baselines and dataset snapshots (from the evidence's
//! `dataset` and from DVC files pushed under `datasets/<owner>/<repo>/`) and moves the
//! `prod` alias by compare-and-swap. It never writes run
//! state; it tells the orchestrator what it found. Every job checks the run's state first,
//! so duplicates and late copies are no-ops.

use async_trait::async_trait;
use semver::Version;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;
use vaia_core::dataset::{
    out_path, parse_dataset_key, snapshot_key, SnapshotRecord, SnapshotSource,
};
use vaia_core::evidence::{
    archive, FileMismatch, Manifest, ARCHIVE_FILE, MANIFEST_FILE, MAX_BUNDLE_BYTES,
    MAX_MANIFEST_BYTES, SEALING_FILES,
};
use vaia_core::layout::{
    alias_key, ct_baseline_key, version_key, versions_prefix, AliasRecord, AliasTarget,
    CtBaselineRecord, VersionRecord, PROD_ALIAS,
};
use vaia_core::messages::{parse_body, queues, send_signal, ObjectCreated, RegistryJob, Signal};
use vaia_core::ports::{
    BlobStore, Bounded, Clock, HandlerError, MessageHandler, PortError, Queue, ReceivedMessage,
    RunStore,
};
use vaia_core::run::{EvidenceRecord, Run};
use vaia_core::version::{next_version, Bump};
use vaia_core::{BlobKey, GateName, PipelineState, Repository, RunId};

const ACTOR: &str = "registry";

/// Entries an alias remembers (the newest first).
const ALIAS_HISTORY: usize = 20;

/// Compare-and-swap attempts on an alias before the job is retried later.
const ALIAS_ATTEMPTS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("run {0} not found")]
    RunNotFound(RunId),
    #[error("{key}: stored record is unreadable: {message}")]
    Corrupt { key: String, message: String },
    /// A key built from stored identifiers is invalid (cannot happen for validated ids).
    #[error(transparent)]
    Key(#[from] vaia_core::IdError),
    #[error(transparent)]
    Port(#[from] PortError),
    /// Outside data that cannot be recorded (a malformed DVC file, an unknown repository):
    /// nothing was written; retrying will not help.
    #[error("{0}")]
    Rejected(String),
}

impl From<RegistryError> for HandlerError {
    fn from(e: RegistryError) -> Self {
        let retryable = match &e {
            RegistryError::Port(p) => p.is_retryable(),
            RegistryError::RunNotFound(_)
            | RegistryError::Corrupt { .. }
            | RegistryError::Key(_)
            | RegistryError::Rejected(_) => false,
        };
        HandlerError {
            retryable,
            reason: e.to_string(),
        }
    }
}

/// What a registry job did, for logs and tests.
#[derive(Debug, Clone, PartialEq)]
pub enum Done {
    Signalled(&'static str),
    Skipped(String),
    /// Dataset snapshots recorded (new ones; a snapshot already recorded is kept as is).
    Snapshots(Vec<SnapshotRecord>),
}

pub struct Registry {
    store: Arc<dyn RunStore>,
    blobs: Arc<dyn BlobStore>,
    queue: Arc<dyn Queue>,
    clock: Arc<dyn Clock>,
}

impl Registry {
    pub fn new(
        store: Arc<dyn RunStore>,
        blobs: Arc<dyn BlobStore>,
        queue: Arc<dyn Queue>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            blobs,
            queue,
            clock,
        }
    }

    /// An object landed. Only evidence manifests and archives matter; one for a commit
    /// with no run yet is left where it is: the run's TRIGGERED entry action verifies it.
    pub async fn object_created(&self, event: &ObjectCreated) -> Result<Done, RegistryError> {
        if let Some((repo, path)) = parse_dataset_key(&event.key) {
            return self.dataset_uploaded(&event.key, &repo, path).await;
        }
        let Some((repo, commit, file)) = event.key.parse_evidence() else {
            return Ok(Done::Skipped(format!("{} is not evidence", event.key)));
        };
        let Some(form) = SEALING_FILES.into_iter().find(|f| *f == file) else {
            return Ok(Done::Skipped(format!(
                "{} is not a manifest or archive",
                event.key
            )));
        };
        let run_id = RunId::for_commit(&repo, &commit);
        match self.store.get(&run_id).await? {
            None => Ok(Done::Skipped(format!(
                "{form} for {repo}@{} arrived before its run; it is verified when the run is triggered",
                commit.short()
            ))),
            Some(run) => self.verify(&run, &[form]).await,
        }
    }

    pub async fn job(&self, job: &RegistryJob) -> Result<Done, RegistryError> {
        let run = self
            .store
            .get(job.run_id())
            .await?
            .ok_or_else(|| RegistryError::RunNotFound(job.run_id().clone()))?;
        match job {
            // The archive first: it is what the agent workflow uploads.
            RegistryJob::VerifyEvidence { .. } => {
                self.verify(&run, &[ARCHIVE_FILE, MANIFEST_FILE]).await
            }
            RegistryJob::RegisterArtifact { .. } => self.register(&run).await,
            RegistryJob::RecordCtBaseline { .. } => self.record_ct(&run).await,
            RegistryJob::Promote { .. } => self.promote(&run).await,
            RegistryJob::RestorePrevious { .. } => self.restore(&run).await,
        }
    }

    async fn signal(&self, run: &Run, signal: Signal, dedupe: &str) -> Result<Done, RegistryError> {
        let name = signal.name();
        send_signal(
            &*self.queue,
            &run.id,
            Some(run.state),
            ACTOR,
            signal,
            dedupe,
        )
        .await?;
        Ok(Done::Signalled(name))
    }

    /// Verifies the run's bundle in the first of `forms` ([`SEALING_FILES`]) that is
    /// stored: the manifest parses and names the run's repository and commit, and every
    /// file it lists is there with its sha256 and size (an archive holds nothing else).
    ///
    /// A bundle uploaded soon after its run was triggered is verified twice, by the
    /// TRIGGERED entry action's job and by the object-created event, whichever comes first
    /// for the run still TRIGGERED: each reads the bundle (one GET for an archive) and
    /// sends the same deduplicated signal, and the orchestrator records the first. Skipping
    /// one would need a record of the other (a write, dearer than the read it saves). The
    /// same holds for a bundle uploaded in both forms: the first verified wins.
    async fn verify(&self, run: &Run, forms: &[&str]) -> Result<Done, RegistryError> {
        if run.state != PipelineState::Triggered {
            return Ok(Done::Skipped(format!(
                "run is {}, not TRIGGERED",
                run.state
            )));
        }
        let mut found = None;
        for form in forms {
            let key = evidence_key(&run.repository, run, form)?;
            let is_archive = *form == ARCHIVE_FILE;
            let limit = if is_archive {
                MAX_BUNDLE_BYTES
            } else {
                MAX_MANIFEST_BYTES
            };
            if let Some(got) = self.blobs.get_at_most(&key, limit).await? {
                found = Some((key, is_archive, limit, got));
                break;
            }
        }
        let Some((key, is_archive, limit, got)) = found else {
            return Ok(Done::Skipped(format!(
                "{} not uploaded yet",
                forms.join(" or ")
            )));
        };
        let checked = match got {
            Bounded::TooLarge { size } => Err(format!(
                "{key}: the {} is {}, over the limit of {limit} bytes",
                if is_archive { "archive" } else { "manifest" },
                size.map_or_else(|| "larger".to_string(), |n| format!("{n} bytes")),
            )),
            Bounded::Bytes(bytes) if is_archive => match archive::unpack(&bytes, key.as_str()) {
                Err(e) => Err(e.to_string()),
                Ok(unpacked) => {
                    self.check_bundle(run, &key, &unpacked.manifest, Some(&unpacked.files))
                        .await?
                }
            },
            Bounded::Bytes(bytes) => self.check_bundle(run, &key, &bytes, None).await?,
        };
        match checked {
            Ok(evidence) => {
                self.signal(run, Signal::EvidenceVerified { evidence }, "evidence")
                    .await
            }
            Err(reason) => {
                tracing::warn!(run_id = %run.id, %reason, "evidence rejected");
                self.signal(
                    run,
                    Signal::EvidenceRejected {
                        manifest: key,
                        reason,
                    },
                    "evidence",
                )
                .await
            }
        }
    }

    /// `Ok(Err(reason))` when the bundle is unusable; `Err` only for storage faults. The
    /// files are `archived` (an archive's, which must hold nothing unlisted) or, when
    /// `None`, stored beside the manifest at `key`.
    async fn check_bundle(
        &self,
        run: &Run,
        key: &BlobKey,
        bytes: &[u8],
        archived: Option<&BTreeMap<String, Vec<u8>>>,
    ) -> Result<Result<EvidenceRecord, String>, RegistryError> {
        let manifest = match Manifest::parse(bytes, key.as_str()) {
            Ok(m) => m,
            Err(e) => return Ok(Err(e.to_string())),
        };
        if manifest.repository != run.repository || manifest.commit != run.commit {
            return Ok(Err(format!(
                "{key}: $.repository/$.commit name {}@{}, but the bundle is stored for {}@{}",
                manifest.repository, manifest.commit, run.repository, run.commit
            )));
        }
        for (i, file) in manifest.files.iter().enumerate() {
            let checked = match archived {
                Some(files) => match files.get(&file.name) {
                    None => Err(FileMismatch::Missing),
                    Some(b) => file.check(b),
                },
                None => {
                    let fkey = evidence_key(&run.repository, run, &file.name)?;
                    file.read(&*self.blobs, &fkey).await?.map(drop)
                }
            };
            match checked {
                Ok(()) => {}
                Err(FileMismatch::Missing) => {
                    return Ok(Err(format!(
                        "{key}: $.files[{i}]: {} is listed but missing from the bundle",
                        file.name
                    )))
                }
                Err(mismatch) => {
                    return Ok(Err(format!(
                        "{key}: $.files[{i}]: {} does not match the manifest: it {mismatch}; \
                         the manifest says sha256 {}, {} bytes",
                        file.name, file.sha256, file.bytes
                    )))
                }
            }
        }
        if let Some(unlisted) = archived
            .into_iter()
            .flat_map(BTreeMap::keys)
            .find(|name| manifest.file(name).is_none())
        {
            return Ok(Err(format!(
                "{key}: entry {unlisted:?}: in the archive but not listed in its {MANIFEST_FILE}"
            )));
        }
        Ok(Ok(EvidenceRecord {
            manifest: key.clone(),
            manifest_sha256: hex::encode(Sha256::digest(bytes)),
            image_digest: manifest.image.digest,
            base_digest: manifest.image.base_digest,
            dataset: manifest.dataset,
            files: manifest.files.into_iter().map(|f| f.name).collect(),
        }))
    }

    /// The version bump the schema gate classified; patch when no gate classified one
    /// (no schema gate in the policy, or nothing promoted to compare against).
    fn bump_of(run: &Run) -> Bump {
        GateName::new("schema")
            .ok()
            .and_then(|g| run.verdicts.get(&g))
            .and_then(|r| r.metrics.get("bump"))
            .and_then(|b| b.as_str())
            .and_then(Bump::parse)
            .unwrap_or(Bump::Patch)
    }

    async fn register(&self, run: &Run) -> Result<Done, RegistryError> {
        if run.state != PipelineState::Build {
            return Ok(Done::Skipped(format!("run is {}, not BUILD", run.state)));
        }
        let Some(image_digest) = run.candidate.image_digest.clone() else {
            let reason = "the evidence recorded no image digest".to_string();
            return self
                .signal(run, Signal::RegistrationFailed { reason }, "registered")
                .await;
        };
        let previous = self.alias(&run.repository).await?.map(|a| a.target.version);
        let bump = Self::bump_of(run);
        let mut version = next_version(previous.as_ref(), bump);
        // A version is assigned once: skip versions another run already holds (a rolled
        // back release, or a concurrent candidate), reuse this run's own on redelivery.
        // The record is created with a conditional write, so two candidates racing for one
        // free version cannot both take it: the loser reads the winner's record and moves on.
        let record = loop {
            let key = version_key(&run.repository, &version)?;
            match self.read::<VersionRecord>(&key).await? {
                Some(existing) if existing.run_id == run.id => break existing,
                Some(_) => version = Version::new(version.major, version.minor, version.patch + 1),
                None => {
                    let (dataset, gates) = VersionRecord::lineage(run);
                    let record = VersionRecord {
                        version: version.clone(),
                        run_id: run.id.clone(),
                        commit: run.commit.clone(),
                        image_digest: image_digest.clone(),
                        bump,
                        previous: previous.clone(),
                        created_at: self.clock.now(),
                        dataset,
                        gates,
                    };
                    if self.create(&key, &record).await? {
                        break record;
                    }
                }
            }
        };
        let signal = Signal::ArtifactRegistered {
            version: record.version,
            previous_version: record.previous,
            bump: record.bump,
            image_digest: record.image_digest,
        };
        self.signal(run, signal, "registered").await
    }

    async fn record_ct(&self, run: &Run) -> Result<Done, RegistryError> {
        if run.state != PipelineState::CtQueued {
            return Ok(Done::Skipped(format!(
                "run is {}, not CT_QUEUED",
                run.state
            )));
        }
        let Some(version) = run.candidate.version.clone() else {
            return Ok(Done::Skipped("run has no version".into()));
        };
        let dataset = run
            .candidate
            .evidence
            .as_ref()
            .and_then(|e| e.dataset.clone());
        let key = ct_baseline_key(&run.repository)?;
        let record = CtBaselineRecord {
            version: version.clone(),
            run_id: run.id.clone(),
            commit: run.commit.clone(),
            dataset: dataset.clone(),
            recorded_at: self.clock.now(),
        };
        self.write(&key, &record).await?;
        if let (Some(dataset), Some(evidence)) = (&dataset, &run.candidate.evidence) {
            let snapshot = SnapshotRecord {
                repository: run.repository.clone(),
                path: dataset.path.trim_end_matches(".dvc").to_string(),
                md5: dataset.md5.clone(),
                size: None,
                nfiles: None,
                rows: dataset.rows,
                created_at: self.clock.now(),
                source: SnapshotSource::Evidence,
                origin: evidence.manifest.clone(),
            };
            self.record_snapshot(snapshot).await?;
        }
        self.signal(
            run,
            Signal::CtBaselineRecorded {
                version,
                dataset,
                record: key,
            },
            "ct",
        )
        .await
    }

    async fn promote(&self, run: &Run) -> Result<Done, RegistryError> {
        if run.state != PipelineState::Promoted {
            return Ok(Done::Skipped(format!("run is {}, not PROMOTED", run.state)));
        }
        let (Some(version), Some(image_digest)) = (
            run.candidate.version.clone(),
            run.candidate.image_digest.clone(),
        ) else {
            return Ok(Done::Skipped("run has no version or image".into()));
        };
        let target = AliasTarget {
            version,
            run_id: run.id.clone(),
            commit: run.commit.clone(),
            image_digest,
        };
        let now = self.clock.now();
        let moved = self
            .move_alias(&run.repository, |current| {
                if current.is_some_and(|a| a.target.run_id == run.id) {
                    return Err("prod already points at this run".to_string());
                }
                let mut history = Vec::new();
                if let Some(c) = current {
                    history.push(c.target.clone());
                    history.extend(c.history.iter().cloned());
                    history.truncate(ALIAS_HISTORY);
                }
                Ok(AliasRecord {
                    alias: PROD_ALIAS.into(),
                    target: target.clone(),
                    history,
                    updated_at: now,
                })
            })
            .await?;
        match moved {
            Ok(record) => {
                tracing::info!(run_id = %run.id, version = %record.target.version, "prod alias moved");
                Ok(Done::Skipped("prod alias moved".into()))
            }
            Err(reason) => Ok(Done::Skipped(reason)),
        }
    }

    /// Moves the `prod` alias of `repo` by compare-and-swap: reads it with its etag,
    /// lets `change` build the new record from it (or give a reason to leave it), and
    /// writes only if nobody wrote in between (`put_if_absent` for the first promotion,
    /// `put_if_match` after); a lost race re-reads and decides again, so two writers never
    /// lose each other's history entry.
    async fn move_alias(
        &self,
        repo: &Repository,
        mut change: impl FnMut(Option<&AliasRecord>) -> Result<AliasRecord, String>,
    ) -> Result<Result<AliasRecord, String>, RegistryError> {
        let key = alias_key(repo, PROD_ALIAS)?;
        for _ in 0..ALIAS_ATTEMPTS {
            let current = match self.blobs.get_tagged(&key).await? {
                None => None,
                Some(t) => Some((Self::decode::<AliasRecord>(&key, &t.bytes)?, t.etag)),
            };
            let record = match change(current.as_ref().map(|(r, _)| r)) {
                Ok(record) => record,
                Err(reason) => return Ok(Err(reason)),
            };
            let bytes = Self::encode(&key, &record)?;
            let written = match &current {
                None => self.blobs.put_if_absent(&key, &bytes).await?,
                Some((_, etag)) => self.blobs.put_if_match(&key, &bytes, etag).await?,
            };
            if written.is_some() {
                return Ok(Ok(record));
            }
            tracing::debug!(%key, "alias changed under us; reading it again");
        }
        Err(RegistryError::Port(PortError::Unavailable(format!(
            "{key}: lost {ALIAS_ATTEMPTS} compare-and-swap races in a row"
        ))))
    }

    async fn restore(&self, run: &Run) -> Result<Done, RegistryError> {
        if run.state != PipelineState::Rollback {
            return Ok(Done::Skipped(format!("run is {}, not ROLLBACK", run.state)));
        }
        let now = self.clock.now();
        let moved = self
            .move_alias(&run.repository, |current| {
                let Some(current) = current else {
                    return Err("no prod alias".into());
                };
                if current.target.run_id != run.id {
                    return Err(format!(
                        "prod points at {} (run {}), not this run; left as is",
                        current.target.version, current.target.run_id
                    ));
                }
                let mut history = current.history.iter().cloned();
                let Some(previous) = history.next() else {
                    return Err("nothing was promoted before this run; prod left as is".into());
                };
                Ok(AliasRecord {
                    alias: PROD_ALIAS.into(),
                    target: previous,
                    history: history.collect(),
                    updated_at: now,
                })
            })
            .await?;
        Ok(Done::Skipped(match moved {
            Ok(record) => format!("prod restored to {}", record.target.version),
            Err(reason) => reason,
        }))
    }

    /// A `.dvc` or `dvc.lock` pushed under `datasets/<owner>/<repo>/`: one snapshot per
    /// out with an md5 (the `.dvc` file's single out; every stage out of the lock), for a
    /// repository the registry knows (one with a registered version). Anything else under
    /// `datasets/` is data, not a snapshot, and is skipped.
    async fn dataset_uploaded(
        &self,
        key: &BlobKey,
        repo: &Repository,
        path: &str,
    ) -> Result<Done, RegistryError> {
        let file = path.rsplit('/').next().unwrap_or(path);
        if !(file.ends_with(".dvc") || file == "dvc.lock") {
            return Ok(Done::Skipped(format!("{key} is not a DVC file")));
        }
        if self.blobs.list(&versions_prefix(repo)).await?.is_empty() {
            return Err(RegistryError::Rejected(format!(
                "{key}: snapshot for unknown repository {repo} (no version of it is registered); nothing recorded"
            )));
        }
        let bytes = match self
            .blobs
            .get_at_most(key, vaia_dvc::MAX_FILE_BYTES)
            .await?
        {
            None => return Ok(Done::Skipped(format!("{key} is gone"))),
            Some(Bounded::TooLarge { .. }) => {
                return Err(RegistryError::Rejected(format!(
                    "{key}: over the limit of {} bytes for a DVC file; nothing recorded",
                    vaia_dvc::MAX_FILE_BYTES
                )))
            }
            Some(Bounded::Bytes(b)) => b,
        };
        let text = String::from_utf8(bytes)
            .map_err(|_| RegistryError::Rejected(format!("{key}: not UTF-8 text")))?;
        let reject = |e: vaia_dvc::DvcError| RegistryError::Rejected(e.to_string());
        let now = self.clock.now();
        let record = |out: &vaia_dvc::Out, path: String, rows: Option<u64>| {
            out.md5.as_ref().map(|md5| SnapshotRecord {
                repository: repo.clone(),
                path,
                md5: md5.clone(),
                size: out.size,
                nfiles: out.nfiles,
                rows,
                created_at: now,
                source: SnapshotSource::Upload,
                origin: key.clone(),
            })
        };
        let snapshots: Vec<SnapshotRecord> =
            match vaia_dvc::parse_document(&text, key.as_str()).map_err(reject)? {
                vaia_dvc::DvcDocument::Dvc(f) => {
                    let out = f.single_out(key.as_str()).map_err(reject)?;
                    let at = out_path(path, f.wdir.as_deref(), &out.path);
                    record(out, at, f.rows).into_iter().collect()
                }
                vaia_dvc::DvcDocument::Lock(l) => l
                    .stages
                    .iter()
                    .flat_map(|s| s.outs.iter())
                    .filter_map(|o| record(o, out_path(path, None, &o.path), None))
                    .collect(),
            };
        let mut recorded = Vec::new();
        let mut asks = Vec::new();
        for s in snapshots {
            asks.push(vaia_core::messages::CtEvaluate {
                repository: s.repository.clone(),
                snapshot_md5: s.md5.clone(),
            });
            if let Some(s) = self.record_snapshot(s).await? {
                recorded.push(s);
            }
        }
        // After the records: the CT budget evaluates the repository now rather than at its
        // next schedule. Asked for recorded and already-recorded snapshots alike, so a
        // redelivery after a failure here asks again (the queue deduplicates).
        for ask in asks {
            ask.send(self.queue.as_ref()).await?;
        }
        Ok(Done::Snapshots(recorded))
    }

    /// Writes a snapshot record unless one with its md5 exists: `Some` when new.
    async fn record_snapshot(
        &self,
        snapshot: SnapshotRecord,
    ) -> Result<Option<SnapshotRecord>, RegistryError> {
        let key = snapshot_key(&snapshot.repository, &snapshot.md5).map_err(|e| {
            RegistryError::Rejected(format!("snapshot md5 {:?}: {e}", snapshot.md5))
        })?;
        Ok(self.create(&key, &snapshot).await?.then_some(snapshot))
    }

    /// The repository's `prod` alias, if anything was promoted.
    pub async fn alias(&self, repo: &Repository) -> Result<Option<AliasRecord>, RegistryError> {
        self.read(&alias_key(repo, PROD_ALIAS)?).await
    }

    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        key: &BlobKey,
    ) -> Result<Option<T>, RegistryError> {
        let Some(bytes) = self.blobs.get(key).await? else {
            return Ok(None);
        };
        Self::decode(key, &bytes).map(Some)
    }

    fn decode<T: serde::de::DeserializeOwned>(
        key: &BlobKey,
        bytes: &[u8],
    ) -> Result<T, RegistryError> {
        serde_json::from_slice(bytes).map_err(|e| RegistryError::Corrupt {
            key: key.to_string(),
            message: e.to_string(),
        })
    }

    async fn write<T: serde::Serialize>(
        &self,
        key: &BlobKey,
        value: &T,
    ) -> Result<(), RegistryError> {
        self.blobs.put(key, &Self::encode(key, value)?).await?;
        Ok(())
    }

    /// Writes `value` at `key` unless something is there; false when something was.
    async fn create<T: serde::Serialize>(
        &self,
        key: &BlobKey,
        value: &T,
    ) -> Result<bool, RegistryError> {
        let created = self
            .blobs
            .put_if_absent(key, &Self::encode(key, value)?)
            .await?;
        Ok(created.is_some())
    }

    fn encode<T: serde::Serialize>(key: &BlobKey, value: &T) -> Result<Vec<u8>, RegistryError> {
        serde_json::to_vec_pretty(value).map_err(|e| RegistryError::Corrupt {
            key: key.to_string(),
            message: e.to_string(),
        })
    }
}

fn evidence_key(repo: &Repository, run: &Run, file: &str) -> Result<BlobKey, RegistryError> {
    Ok(BlobKey::evidence(repo, &run.commit, file)?)
}

/// Consumes the registry queue (jobs from the orchestrator).
pub struct RegistryJobs(pub Arc<Registry>);

/// Consumes object-created notifications.
pub struct ObjectEvents(pub Arc<Registry>);

#[async_trait]
impl MessageHandler for RegistryJobs {
    async fn handle(&self, message: &ReceivedMessage) -> Result<(), HandlerError> {
        let job: RegistryJob = parse_body(queues::REGISTRY, &message.id, &message.body)
            .map_err(HandlerError::permanent)?;
        let done = self.0.job(&job).await?;
        tracing::debug!(run_id = %job.run_id(), ?done, "registry job");
        Ok(())
    }
}

#[async_trait]
impl MessageHandler for ObjectEvents {
    async fn handle(&self, message: &ReceivedMessage) -> Result<(), HandlerError> {
        let event: ObjectCreated = parse_body(queues::BLOB_EVENTS, &message.id, &message.body)
            .map_err(HandlerError::permanent)?;
        let done = self.0.object_created(&event).await?;
        tracing::debug!(key = %event.key, ?done, "object created");
        Ok(())
    }
}

#[cfg(test)]
mod tests;
