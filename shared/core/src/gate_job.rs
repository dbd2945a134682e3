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
