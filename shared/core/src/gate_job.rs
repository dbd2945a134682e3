//! What every gate function does around its own evaluation: find the job's run (a job
//! for a run no longer in the job's stage is stale and does nothing), store the full
//! verdict, and tell the orchestrator with a signal deduplicated per gate and stage.

use crate::ids::{IdError, RunId};
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
    if run.state.stage() != Some(job.stage) {
        tracing::debug!(run_id = %run.id, state = %run.state, gate = %job.gate, "stale gate job");
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
    let key = verdict_key(&run.id, job.stage, &job.gate)?;
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
    };
    let dedupe = format!("verdict:{}:{}", job.gate, job.stage);
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

/// The evidence file `file` of the version the `prod` alias points at: `Ok(None)` when
/// nothing was promoted, `Err(reason)` when the registry points at evidence that is gone
/// or unreadable (a gate cannot compare and must say so).
pub async fn production_evidence(
    blobs: &dyn BlobStore,
    repo: &crate::ids::Repository,
    file: &str,
) -> Result<Result<Option<(crate::ids::BlobKey, Vec<u8>)>, String>, GateError> {
    let alias_key = crate::layout::alias_key(repo, crate::layout::PROD_ALIAS)?;
    let Some(bytes) = blobs.get(&alias_key).await? else {
        return Ok(Ok(None));
    };
    let alias: crate::layout::AliasRecord = match serde_json::from_slice(&bytes) {
        Ok(a) => a,
        Err(e) => return Ok(Err(format!("{alias_key} is unreadable: {e}"))),
    };
    let key = crate::ids::BlobKey::evidence(repo, &alias.target.commit, file)?;
    match blobs.get(&key).await? {
        Some(b) => Ok(Ok(Some((key, b)))),
        None => Ok(Err(format!(
            "production version {} has no {file} at {key}: cannot compare",
            alias.target.version
        ))),
    }
}
