//! What every gate function does around its own evaluation: find the job's run (a job
//! for a run no longer in the job's stage is stale and does nothing), store the full
//! verdict, and tell the orchestrator with a signal deduplicated per gate and stage.

use crate::ids::{BlobKey, IdError, RunId};
use crate::layout::verdict_key;
use crate::messages::{parse_body, send_signal, GateJob, Signal};
use crate::ports::{BlobStore, HandlerError, PortError, Queue, ReceivedMessage, RunStore};
use crate::run::Run;
use crate::verdict::Verdict;

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

/// Stores `verdict` at its layout key and sends it to the orchestrator as `actor`.
pub async fn publish_verdict(
    blobs: &dyn BlobStore,
    queue: &dyn Queue,
    run: &Run,
    job: &GateJob,
    actor: &str,
    verdict: &Verdict,
) -> Result<(), GateError> {
    let key = verdict_key(&run.id, job.stage, &job.gate, job.attempt)?;
    let bytes = serde_json::to_vec_pretty(verdict)
        .map_err(|e| PortError::Invalid(format!("cannot encode verdict: {e}")))?;
    blobs.put(&key, &bytes).await?;
    let signal = Signal::GateVerdict {
        gate: job.gate.clone(),
        stage: job.stage,
        outcome: verdict.outcome,
        summary: verdict.summary.clone(),
        metrics: verdict.metrics.clone(),
        verdict: key,
        attempt: job.attempt,
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
#[allow(missing_debug_implementations)]
pub struct Bundle<'a> {
    blobs: &'a dyn BlobStore,
    repo: crate::ids::Repository,
    commit: crate::ids::CommitSha,
    files: Vec<crate::evidence::ManifestFile>,
    /// Whose evidence, for messages: "the candidate's", "production's (version 0.1.0)".
    whose: String,
}

impl<'a> Bundle<'a> {
    pub async fn open(
        blobs: &'a dyn BlobStore,
        run: &Run,
        whose: &str,
    ) -> Result<Bundle<'a>, GateError> {
        let changed =
            |what: String| GateError::EvidenceChanged(format!("{whose} evidence: {what}"));
        let Some(record) = &run.candidate.evidence else {
            return Err(changed(format!("run {} has no verified evidence", run.id)));
        };
        let bytes = match blobs
            .get_at_most(&record.manifest, crate::evidence::MAX_MANIFEST_BYTES)
            .await?
        {
            Some(crate::ports::Bounded::Bytes(b)) => b,
            Some(crate::ports::Bounded::TooLarge { .. }) => {
                return Err(changed(format!(
                    "{} changed after it was verified (it is now over {} bytes)",
                    record.manifest,
                    crate::evidence::MAX_MANIFEST_BYTES
                )))
            }
            None => {
                return Err(changed(format!(
                    "{} is gone since it was verified",
                    record.manifest
                )))
            }
        };
        let sha = sha256_hex(&bytes);
        if sha != record.manifest_sha256 {
            return Err(changed(format!(
                "{} changed after it was verified (sha256 {sha}, verified {})",
                record.manifest, record.manifest_sha256
            )));
        }
        let manifest = crate::evidence::Manifest::parse(&bytes, record.manifest.as_str())
            .map_err(|e| changed(e.to_string()))?;
        Ok(Bundle {
            blobs,
            repo: run.repository.clone(),
            commit: run.commit.clone(),
            files: manifest.files,
            whose: whose.to_string(),
        })
    }

    /// `file` with its key, checked; `None` when the verified manifest does not list it.
    pub async fn get(&self, file: &str) -> Result<Option<(BlobKey, Vec<u8>)>, GateError> {
        let Some(listed) = self.files.iter().find(|f| f.name == file) else {
            return Ok(None);
        };
        let key = BlobKey::evidence(&self.repo, &self.commit, file)?;
        let whose = &self.whose;
        let bytes = match listed.read(self.blobs, &key).await? {
            Ok(bytes) => bytes,
            Err(crate::evidence::FileMismatch::Missing) => {
                return Err(GateError::EvidenceChanged(format!(
                    "{whose} evidence: {key} is gone since it was verified"
                )))
            }
            Err(mismatch) => {
                return Err(GateError::EvidenceChanged(format!(
                    "{whose} evidence: {key} changed after it was verified (it {mismatch}; \
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
