//! What every gate function does around its own evaluation: find the job's run (a job
//! for a run no longer in the job's stage is stale and does nothing), tell the
//! orchestrator the verdict with a signal deduplicated per gate and stage, and where a
//! full verdict is kept (the one home of that: [`publish_verdict`] writes, and
//! [`full_verdicts`] reads).
//!
//! A verdict whose JSON is at most [`INLINE_VERDICT_MAX_BYTES`] travels whole in its
//! signal and the orchestrator keeps it with the event that records it (no blob write,
//! no blob read: see `bench/COST.md`); a larger one is stored in the blob store at its
//! [`verdict_key`] (numbered by attempt) and the signal carries only the key.
//!
//! A gate handler is idempotent by itself ([`crate::ports::MessageHandler::idempotent_by_itself`],
//! so no idempotency records are kept for gate jobs): it writes no run state; a job for a
//! run that has left its stage or attempt does nothing ([`run_for_job`]); a verdict blob is
//! written once ([`publish_verdict`] keeps the first and publishes it again); the signal
//! is deduplicated per gate, stage and attempt, and the orchestrator records a gate's
//! first verdict only. A job handled twice costs a second evaluation (the eval gate's
//! grades come from its cache) and changes nothing.

use crate::ids::{BlobKey, GateName, IdError, RunId};
use crate::layout::verdict_key;
use crate::messages::{parse_body, send_signal, GateJob, Signal};
use crate::ports::{BlobStore, HandlerError, PortError, Queue, ReceivedMessage, RunStore};
use crate::run::{Run, RunEvent};
use crate::verdict::Verdict;
use std::collections::BTreeMap;

/// The largest verdict (compact JSON) that travels in its signal and is kept with its
/// event; a larger one is a blob. Far under SQS's 256 KB message (and its 64 KB billing
/// chunk) and DynamoDB's 400 KB item; and where keeping it in the event (2 write units
/// per KB, deflated, in the transition's transaction) stops being cheaper than an S3 PUT
/// and GET (the price of about 8 write units).
pub const INLINE_VERDICT_MAX_BYTES: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("run {0} not found")]
    RunNotFound(RunId),
    #[error(transparent)]
    Key(#[from] IdError),
    #[error(transparent)]
    Port(#[from] PortError),
    /// Evidence the registry verified is not what it verified (overwritten, removed): the
    /// gate cannot judge it, and says so in an `error` verdict, naming the file.
    #[error("{0}")]
    EvidenceChanged(String),
}

impl From<GateError> for HandlerError {
    fn from(e: GateError) -> Self {
        let retryable = matches!(&e, GateError::Port(p) if p.is_retryable());
        HandlerError {
            retryable,
            reason: e.to_string(),
        }
    }
}

/// The run `job` is for; `None` when the run has left the job's stage (a stale job).
pub async fn run_for_job(store: &dyn RunStore, job: &GateJob) -> Result<Option<Run>, GateError> {
    let run = store
        .get(&job.run_id)
        .await?
        .ok_or_else(|| GateError::RunNotFound(job.run_id.clone()))?;
    if run.state.stage() != Some(job.stage) || run.attempt() != job.attempt {
        tracing::debug!(run_id = %run.id, state = %run.state, gate = %job.gate,
            attempt = job.attempt, "stale gate job");
        return Ok(None);
    }
    Ok(Some(run))
}

/// Sends `verdict` to the orchestrator as `actor`: whole in the signal when it is at most
/// [`INLINE_VERDICT_MAX_BYTES`], else stored first at its layout key, once: when an
/// earlier handling of the job stored one there, that one is sent.
pub async fn publish_verdict(
    blobs: &dyn BlobStore,
    queue: &dyn Queue,
    run: &Run,
    job: &GateJob,
    actor: &str,
    verdict: &Verdict,
) -> Result<(), GateError> {
    let key = verdict_key(&run.id, job.stage, &job.gate, job.attempt)?;
    let encode = |e: serde_json::Error| PortError::Invalid(format!("cannot encode verdict: {e}"));
    let inline = serde_json::to_vec(verdict).map_err(encode)?.len() <= INLINE_VERDICT_MAX_BYTES;
    let stored;
    let verdict = if inline {
        verdict
    } else {
        let bytes = serde_json::to_vec_pretty(verdict).map_err(encode)?;
        if blobs.put_if_absent(&key, &bytes).await?.is_some() {
            verdict
        } else {
            let bytes = blobs.get(&key).await?.ok_or_else(|| {
                PortError::Unavailable(format!("verdict {key}: stored, then gone"))
            })?;
            stored = serde_json::from_slice::<Verdict>(&bytes)
                .map_err(|e| PortError::Invalid(format!("verdict {key}: {e}")))?;
            &stored
        }
    };
    let signal = Signal::GateVerdict {
        gate: job.gate.clone(),
        stage: job.stage,
        outcome: verdict.outcome,
        summary: verdict.summary.clone(),
        metrics: verdict.metrics.clone(),
        verdict: key,
        attempt: job.attempt,
        full: inline.then(|| Box::new(verdict.clone())),
    };
    let dedupe = match job.attempt {
        0 => format!("verdict:{}:{}", job.gate, job.stage),
        n => format!("verdict:{}:{}:attempt-{n}", job.gate, job.stage),
    };
    send_signal(
        queue,
        &run.id,
        Some(job.stage.state()),
        actor,
        signal,
        &dedupe,
    )
    .await?;
    Ok(())
}

/// The full verdicts (findings included) of `run`'s gate records, by gate: each from the
/// event of `events` (the run's log) that recorded it, or, for a verdict too large to
/// travel in its signal and for runs recorded before verdicts travelled, from the blob
/// store at its key. A verdict found in neither is left out; a stored one that does not
/// decode is [`PortError::Invalid`] naming its key.
pub async fn full_verdicts(
    blobs: &dyn BlobStore,
    run: &Run,
    events: &[RunEvent],
) -> Result<BTreeMap<GateName, Verdict>, PortError> {
    let mut out = BTreeMap::new();
    for (gate, record) in &run.verdicts {
        let key = record.verdict.as_str();
        let kept = events
            .iter()
            .rev()
            .find(|e| e.evidence.as_deref() == Some(key) && e.verdict.is_some())
            .and_then(|e| e.verdict.as_deref());
        if let Some(verdict) = kept {
            out.insert(gate.clone(), verdict.clone());
        } else if let Some(bytes) = blobs.get(&record.verdict).await? {
            let verdict: Verdict = serde_json::from_slice(&bytes)
                .map_err(|e| PortError::Invalid(format!("verdict {key}: {e}")))?;
            out.insert(gate.clone(), verdict);
        }
    }
    Ok(out)
}

/// The gate job in a queue message; a body that is not one is a permanent failure.
pub fn parse_job(queue: &str, message: &ReceivedMessage) -> Result<GateJob, HandlerError> {
    parse_body(queue, &message.id, &message.body).map_err(HandlerError::permanent)
}

/// The evidence file `file` of the version the `prod` alias points at, read from its
/// verified bundle: `Ok(None)` when nothing was promoted, `Err(reason)` when the registry
/// points at evidence that is gone or unreadable (a gate cannot compare and must say so).
/// Production's evidence that changed after it was verified is
/// [`GateError::EvidenceChanged`].
pub async fn production_evidence(
    blobs: &dyn BlobStore,
    store: &dyn RunStore,
    repo: &crate::ids::Repository,
    file: &str,
) -> Result<Result<Option<(BlobKey, Vec<u8>)>, String>, GateError> {
    let alias_key = crate::layout::alias_key(repo, crate::layout::PROD_ALIAS)?;
    let Some(bytes) = blobs.get(&alias_key).await? else {
        return Ok(Ok(None));
    };
    let alias: crate::layout::AliasRecord = match serde_json::from_slice(&bytes) {
        Ok(a) => a,
        Err(e) => return Ok(Err(format!("{alias_key} is unreadable: {e}"))),
    };
    let version = &alias.target.version;
    let Some(run) = store.get(&alias.target.run_id).await? else {
        return Ok(Err(format!(
            "production version {version} names run {}, which is gone: cannot compare",
            alias.target.run_id
        )));
    };
    let bundle = Bundle::open(blobs, &run, &format!("production's (version {version})")).await?;
    match bundle.get(file).await? {
        Some(found) => Ok(Ok(Some(found))),
        None => Ok(Err(format!(
            "production version {version} has no {file} in its evidence: cannot compare"
        ))),
    }
}

/// A run's evidence bundle as the registry verified it. Verified evidence is immutable:
/// every file read through here is checked against the sha256 and size in the manifest
/// the registry verified (itself checked against the sha256 recorded in the run), so a
/// file overwritten or removed after verification is [`GateError::EvidenceChanged`],
/// naming whose file it is, never silently judged. A file the manifest does not list is
/// not part of the bundle (`None`), whatever lies beside it.
///
/// A bundle verified as one archive ([`crate::evidence::ARCHIVE_FILE`]) is read once, by
/// [`Bundle::open`]; its files come from memory. A per-file bundle reads each file when
/// asked. Either way a gate opens its bundle once per job.
#[allow(missing_debug_implementations)]
pub struct Bundle<'a> {
    blobs: &'a dyn BlobStore,
    repo: crate::ids::Repository,
    commit: crate::ids::CommitSha,
    files: Vec<crate::evidence::ManifestFile>,
    /// The archive's key and its files, for a bundle verified as one archive.
    archive: Option<(BlobKey, BTreeMap<String, Vec<u8>>)>,
    /// Whose evidence, for messages: "the candidate's", "production's (version 0.1.0)".
    whose: String,
}

impl<'a> Bundle<'a> {
    pub async fn open(
        blobs: &'a dyn BlobStore,
        run: &Run,
        whose: &str,
    ) -> Result<Bundle<'a>, GateError> {
        use crate::evidence::{archive, ARCHIVE_FILE, MAX_BUNDLE_BYTES, MAX_MANIFEST_BYTES};
        let changed =
            |what: String| GateError::EvidenceChanged(format!("{whose} evidence: {what}"));
        let Some(record) = &run.candidate.evidence else {
            return Err(changed(format!("run {} has no verified evidence", run.id)));
        };
        let key = &record.manifest;
        let is_archive = key
            .parse_evidence()
            .is_some_and(|(_, _, file)| file == ARCHIVE_FILE);
        let limit = if is_archive {
            MAX_BUNDLE_BYTES
        } else {
            MAX_MANIFEST_BYTES
        };
        let bytes = match blobs.get_at_most(key, limit).await? {
            Some(crate::ports::Bounded::Bytes(b)) => b,
            Some(crate::ports::Bounded::TooLarge { .. }) => {
                return Err(changed(format!(
                    "{key} changed after it was verified (it is now over {limit} bytes)"
                )))
            }
            None => return Err(changed(format!("{key} is gone since it was verified"))),
        };
        let (manifest_bytes, archive) = if is_archive {
            let unpacked = archive::unpack(&bytes, key.as_str())
                .map_err(|e| changed(format!("{key} changed after it was verified: {e}")))?;
            (unpacked.manifest, Some((key.clone(), unpacked.files)))
        } else {
            (bytes, None)
        };
        let sha = sha256_hex(&manifest_bytes);
        if sha != record.manifest_sha256 {
            let what = if is_archive {
                format!("{key}: the manifest in it")
            } else {
                key.to_string()
            };
            return Err(changed(format!(
                "{what} changed after it was verified (sha256 {sha}, verified {})",
                record.manifest_sha256
            )));
        }
        let manifest = crate::evidence::Manifest::parse(&manifest_bytes, key.as_str())
            .map_err(|e| changed(e.to_string()))?;
        Ok(Bundle {
            blobs,
            repo: run.repository.clone(),
            commit: run.commit.clone(),
            files: manifest.files,
            archive,
            whose: whose.to_string(),
        })
    }

    /// `file` with its evidence key (for an archive bundle, the name it has in the
    /// evidence layout, where the per-file form stores it), checked; `None` when the
    /// verified manifest does not list it.
    pub async fn get(&self, file: &str) -> Result<Option<(BlobKey, Vec<u8>)>, GateError> {
        use crate::evidence::FileMismatch;
        let Some(listed) = self.files.iter().find(|f| f.name == file) else {
            return Ok(None);
        };
        let key = BlobKey::evidence(&self.repo, &self.commit, file)?;
        let whose = &self.whose;
        let (found, place) = match &self.archive {
            Some((archive, files)) => {
                let checked = match files.get(file) {
                    None => Err(FileMismatch::Missing),
                    Some(bytes) => listed.check(bytes).map(|()| bytes.clone()),
                };
                (checked, format!("{file} in {archive}"))
            }
            None => (listed.read(self.blobs, &key).await?, key.to_string()),
        };
        let bytes = match found {
            Ok(bytes) => bytes,
            Err(FileMismatch::Missing) => {
                return Err(GateError::EvidenceChanged(format!(
                    "{whose} evidence: {place} is gone since it was verified"
                )))
            }
            Err(mismatch) => {
                return Err(GateError::EvidenceChanged(format!(
                    "{whose} evidence: {place} changed after it was verified (it {mismatch}; \
                     the verified manifest says sha256 {}, {} bytes)",
                    listed.sha256, listed.bytes
                )))
            }
        };
        Ok(Some((key, bytes)))
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
}

/// A gate's evaluation, with evidence that changed after verification turned into the
/// `error` verdict that says so (the one place that does).
pub fn verdict_of(
    gate: &crate::ids::GateName,
    evaluated: Result<Verdict, GateError>,
) -> Result<Verdict, GateError> {
    match evaluated {
        Err(GateError::EvidenceChanged(reason)) => {
            let mut v = Verdict::new(gate.clone(), crate::verdict::Outcome::Error, reason.clone());
            v.findings.push(crate::verdict::Finding::new(
                "evidence.changed",
                crate::verdict::Severity::High,
                reason,
            ));
            Ok(v)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use crate::machine::{decide, Decision};
    use crate::memory::{ManualClock, MemoryBlobStore, MemoryQueue};
    use crate::messages::{queues, AdvanceMessage};
    use crate::ports::Clock;
    use crate::run::Trigger;
    use crate::verdict::{Finding, Outcome, Severity};
    use crate::{CommitSha, PipelineState, Repository, Stage};
    use std::sync::Arc;
    use std::time::Duration;

    fn ci_run(now: crate::run::Timestamp) -> Run {
        let mut run = Run::new(
            Repository::new("octo/agent").unwrap(),
            CommitSha::new("c".repeat(40)).unwrap(),
            None,
            Trigger {
                kind: "push".into(),
                delivery: None,
                actor: None,
                at: now,
            },
            crate::policy::Policy::schema_only(),
            now,
        );
        run.state = PipelineState::CiRunning;
        run.version = 3;
        run.events = 3;
        run
    }

    /// A verdict of the schema gate with `findings` findings of about 100 bytes each.
    fn verdict(findings: usize) -> Verdict {
        let mut v = Verdict::new(GateName::new("schema").unwrap(), Outcome::Fail, "changed");
        for i in 0..findings {
            v.findings.push(
                Finding::new(
                    "schema.removed",
                    Severity::High,
                    format!("tool {i} removed"),
                )
                .at(format!("$.tools[{i}]")),
            );
        }
        v
    }

    /// Publishes `v` for `run`, then has the orchestrator's decision record the signal:
    /// the blob store, the message's signal, and the events written.
    async fn publish_and_record(
        run: &Run,
        v: &Verdict,
    ) -> (Arc<MemoryBlobStore>, Signal, Vec<RunEvent>, Run) {
        let clock = Arc::new(ManualClock::new(run.created_at));
        let queue = MemoryQueue::new(clock.clone(), 5);
        let blobs = Arc::new(MemoryBlobStore::new(None));
        let job = GateJob {
            run_id: run.id.clone(),
            repository: run.repository.clone(),
            commit: run.commit.clone(),
            gate: v.gate.clone(),
            stage: Stage::Ci,
            attempt: run.attempt(),
        };
        publish_verdict(&*blobs, &queue, run, &job, "gate-schema", v)
            .await
            .unwrap();
        let sent = queue
            .receive(queues::ADVANCE, 10, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(sent.len(), 1);
        let msg: AdvanceMessage = serde_json::from_str(&sent[0].body).unwrap();
        let Decision::Apply(applied) = decide(run, &msg, &sent[0].id, clock.now()) else {
            panic!("the verdict was not recorded");
        };
        (blobs, msg.signal, applied.events, applied.run)
    }

    #[tokio::test]
    async fn a_small_verdict_travels_in_its_signal_and_is_kept_with_its_event() {
        let run = ci_run(chrono::Utc::now());
        let v = verdict(3);
        let (blobs, signal, events, after) = publish_and_record(&run, &v).await;
        let key = verdict_key(&run.id, Stage::Ci, &v.gate, 0).unwrap();
        assert_eq!(blobs.get(&key).await.unwrap(), None, "no blob written");
        let Signal::GateVerdict { full, verdict, .. } = signal else {
            panic!("{signal:?}")
        };
        assert_eq!((full.as_deref(), &verdict), (Some(&v), &key));
        let note = events.iter().find(|e| e.verdict.is_some()).unwrap();
        assert_eq!(note.evidence.as_deref(), Some(key.as_str()));
        let found = full_verdicts(&*blobs, &after, &events).await.unwrap();
        assert_eq!(found.get(&v.gate), Some(&v));
    }

    #[tokio::test]
    async fn a_verdict_over_the_bound_is_a_blob_and_still_found() {
        let mut run = ci_run(chrono::Utc::now());
        // An operator's retry: the blob key carries the attempt.
        run.retry = Some(crate::run::GateRetry {
            gate: GateName::new("schema").unwrap(),
            stage: Stage::Ci,
            attempt: 2,
            actor: "ops".into(),
            reason: "judge was down".into(),
            at: run.created_at,
        });
        let v = verdict(INLINE_VERDICT_MAX_BYTES / 64);
        assert!(serde_json::to_vec(&v).unwrap().len() > INLINE_VERDICT_MAX_BYTES);
        let (blobs, signal, events, after) = publish_and_record(&run, &v).await;
        let key = verdict_key(&run.id, Stage::Ci, &v.gate, 2).unwrap();
        assert!(key.as_str().ends_with("schema.attempt-2.json"), "{key}");
        assert!(blobs.get(&key).await.unwrap().is_some(), "stored at {key}");
        let Signal::GateVerdict { full, verdict, .. } = signal else {
            panic!("{signal:?}")
        };
        assert_eq!((full, &verdict), (None, &key));
        assert!(events.iter().all(|e| e.verdict.is_none()));
        let found = full_verdicts(&*blobs, &after, &events).await.unwrap();
        assert_eq!(found.get(&v.gate), Some(&v));
    }

    #[tokio::test]
    async fn a_large_verdict_is_stored_once_and_the_first_is_sent_again() {
        let run = ci_run(chrono::Utc::now());
        let first = verdict(INLINE_VERDICT_MAX_BYTES / 64);
        let (blobs, _, _, _) = publish_and_record(&run, &first).await;
        let key = verdict_key(&run.id, Stage::Ci, &first.gate, 0).unwrap();
        let mut second = first.clone();
        second.outcome = Outcome::Pass;
        let queue = MemoryQueue::new(Arc::new(ManualClock::new(run.created_at)), 5);
        let job = GateJob {
            run_id: run.id.clone(),
            repository: run.repository.clone(),
            commit: run.commit.clone(),
            gate: first.gate.clone(),
            stage: Stage::Ci,
            attempt: 0,
        };
        publish_verdict(&*blobs, &queue, &run, &job, "gate-schema", &second)
            .await
            .unwrap();
        let stored: Verdict =
            serde_json::from_slice(&blobs.get(&key).await.unwrap().unwrap()).unwrap();
        assert_eq!(stored, first);
        let sent = queue
            .receive(queues::ADVANCE, 10, Duration::from_secs(30))
            .await
            .unwrap();
        let msg: AdvanceMessage = serde_json::from_str(&sent[0].body).unwrap();
        let Signal::GateVerdict { outcome, .. } = msg.signal else {
            panic!("{:?}", msg.signal)
        };
        assert_eq!(outcome, first.outcome);
    }

    #[tokio::test]
    async fn a_stored_verdict_that_does_not_decode_is_invalid_naming_its_key() {
        let run = ci_run(chrono::Utc::now());
        let v = verdict(INLINE_VERDICT_MAX_BYTES / 64);
        let (blobs, _, events, after) = publish_and_record(&run, &v).await;
        let key = verdict_key(&run.id, Stage::Ci, &v.gate, 0).unwrap();
        blobs.put(&key, b"{not json").await.unwrap();
        let e = full_verdicts(&*blobs, &after, &events).await.unwrap_err();
        assert!(e.to_string().contains(key.as_str()), "{e}");
    }

    /// A blob store that counts reads, delegating to memory.
    struct Counted {
        inner: MemoryBlobStore,
        reads: std::sync::atomic::AtomicUsize,
    }

    impl Counted {
        fn read(&self) {
            self.reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    #[async_trait::async_trait]
    impl BlobStore for Counted {
        async fn put(
            &self,
            k: &BlobKey,
            b: &[u8],
        ) -> crate::ports::PortResult<crate::messages::ObjectCreated> {
            self.inner.put(k, b).await
        }
        async fn put_if_absent(
            &self,
            k: &BlobKey,
            b: &[u8],
        ) -> crate::ports::PortResult<Option<crate::messages::ObjectCreated>> {
            self.inner.put_if_absent(k, b).await
        }
        async fn put_if_match(
            &self,
            k: &BlobKey,
            b: &[u8],
            etag: &str,
        ) -> crate::ports::PortResult<Option<crate::messages::ObjectCreated>> {
            self.inner.put_if_match(k, b, etag).await
        }
        async fn get(&self, k: &BlobKey) -> crate::ports::PortResult<Option<Vec<u8>>> {
            self.read();
            self.inner.get(k).await
        }
        async fn get_at_most(
            &self,
            k: &BlobKey,
            limit: u64,
        ) -> crate::ports::PortResult<Option<crate::ports::Bounded>> {
            self.read();
            self.inner.get_at_most(k, limit).await
        }
        async fn get_tagged(
            &self,
            k: &BlobKey,
        ) -> crate::ports::PortResult<Option<crate::ports::Tagged>> {
            self.read();
            self.inner.get_tagged(k).await
        }
        async fn list(
            &self,
            prefix: &str,
        ) -> crate::ports::PortResult<Vec<crate::ports::BlobMeta>> {
            self.read();
            self.inner.list(prefix).await
        }
    }

    const TOOLS: &[u8] = br#"{"tools": []}"#;
    const TRIVY: &[u8] = b"{}";

    fn manifest_of(run: &Run, files: &[(&str, &[u8])]) -> Vec<u8> {
        serde_json::json!({
            "schema": crate::evidence::MANIFEST_SCHEMA_V1,
            "repository": run.repository,
            "commit": run.commit,
            "image": {"digest": format!("sha256:{}", "a".repeat(64))},
            "files": files.iter().map(|(n, b)| serde_json::json!({
                "name": n, "sha256": sha256_hex(b), "bytes": b.len()})).collect::<Vec<_>>(),
            "created_at": "2026-12-03T10:00:00Z"
        })
        .to_string()
        .into_bytes()
    }

    /// A run whose evidence the registry verified as the archive of `files`, stored.
    async fn archived(blobs: &dyn BlobStore, files: &[(&str, &[u8])]) -> (Run, BlobKey) {
        let mut run = ci_run(chrono::Utc::now());
        let manifest = manifest_of(&run, files);
        let key =
            BlobKey::evidence(&run.repository, &run.commit, crate::evidence::ARCHIVE_FILE).unwrap();
        let bytes = crate::evidence::archive::pack(&manifest, files).unwrap();
        blobs.put(&key, &bytes).await.unwrap();
        run.candidate.evidence = Some(crate::run::EvidenceRecord {
            manifest: key.clone(),
            manifest_sha256: sha256_hex(&manifest),
            image_digest: crate::ImageDigest::new(format!("sha256:{}", "a".repeat(64))).unwrap(),
            base_digest: None,
            dataset: None,
            files: files.iter().map(|(n, _)| n.to_string()).collect(),
        });
        (run, key)
    }

    #[tokio::test]
    async fn an_archive_bundle_is_read_with_one_get_per_job() {
        let blobs = Counted {
            inner: MemoryBlobStore::new(None),
            reads: Default::default(),
        };
        let (run, _) = archived(&blobs, &[("tools.json", TOOLS), ("trivy.json", TRIVY)]).await;
        let bundle = Bundle::open(&blobs, &run, "the candidate's").await.unwrap();
        let (key, tools) = bundle.get("tools.json").await.unwrap().unwrap();
        assert_eq!(tools, TOOLS);
        assert_eq!(
            key,
            BlobKey::evidence(&run.repository, &run.commit, "tools.json").unwrap()
        );
        assert_eq!(bundle.get("trivy.json").await.unwrap().unwrap().1, TRIVY);
        assert!(bundle.get("locust_stats.csv").await.unwrap().is_none());
        assert_eq!(blobs.reads.load(std::sync::atomic::Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn an_archive_changed_after_verification_is_named() {
        let blobs = MemoryBlobStore::new(None);
        let files: &[(&str, &[u8])] = &[("tools.json", TOOLS), ("trivy.json", TRIVY)];
        let (run, key) = archived(&blobs, files).await;
        let manifest = manifest_of(&run, files);
        // tools.json changed, the manifest (and its sha256) not.
        let changed = crate::evidence::archive::pack(
            &manifest,
            &[("tools.json", br#"{"tools": [1]}"#), ("trivy.json", TRIVY)],
        )
        .unwrap();
        blobs.put(&key, &changed).await.unwrap();
        let bundle = Bundle::open(&blobs, &run, "production's (version 0.1.0)")
            .await
            .unwrap();
        assert_eq!(bundle.get("trivy.json").await.unwrap().unwrap().1, TRIVY);
        let Err(GateError::EvidenceChanged(reason)) = bundle.get("tools.json").await else {
            panic!("a changed file was read")
        };
        assert!(
            reason.starts_with(&format!(
                "production's (version 0.1.0) evidence: tools.json in {key} changed after it \
                 was verified (it has sha256 "
            )),
            "{reason}"
        );
        // A file removed from the archive.
        blobs
            .put(
                &key,
                &crate::evidence::archive::pack(&manifest, &[("trivy.json", TRIVY)]).unwrap(),
            )
            .await
            .unwrap();
        let bundle = Bundle::open(&blobs, &run, "the candidate's").await.unwrap();
        let Err(GateError::EvidenceChanged(reason)) = bundle.get("tools.json").await else {
            panic!("a removed file was read")
        };
        assert!(reason.contains("tools.json in"), "{reason}");
        assert!(
            reason.ends_with("is gone since it was verified"),
            "{reason}"
        );

        // The manifest inside changed: the bundle does not open.
        let mut other = manifest.clone();
        other.extend_from_slice(b" ");
        blobs
            .put(
                &key,
                &crate::evidence::archive::pack(&other, files).unwrap(),
            )
            .await
            .unwrap();
        let Err(GateError::EvidenceChanged(reason)) =
            Bundle::open(&blobs, &run, "the candidate's").await
        else {
            panic!("a changed manifest was opened")
        };
        assert!(
            reason.starts_with(&format!(
                "the candidate's evidence: {key}: the manifest in it changed after it was verified"
            )),
            "{reason}"
        );
        // No longer an archive at all.
        blobs.put(&key, b"not a tar").await.unwrap();
        let Err(GateError::EvidenceChanged(reason)) =
            Bundle::open(&blobs, &run, "the candidate's").await
        else {
            panic!("garbage was opened")
        };
        assert!(reason.contains("changed after it was verified"), "{reason}");
    }
}
