//! The prompt-robustness gate as a pipeline function: reads the candidate's
//! `prompt_responses.jsonl` (the agent's CI ran vaia's attack corpus against the candidate
//! container, one line per attack with the fresh canary it passed) and, when present,
//! `system_prompt.txt` from the evidence bundle; scores it with [`vaia_gates::prompt`] under
//! the run's `[prompt]` policy; stores the full verdict and tells the orchestrator. A job for
//! a run no longer in the job's stage is a no-op.

use async_trait::async_trait;
use std::sync::Arc;
use vaia_core::layout::verdict_key;
use vaia_core::messages::{parse_body, send_signal, GateJob, Signal};
use vaia_core::ports::{
    BlobStore, HandlerError, MessageHandler, PortError, Queue, ReceivedMessage, RunStore,
};
use vaia_core::{BlobKey, Finding, Outcome, Severity, Verdict};
use vaia_gates::prompt::{self, PromptOptions};

pub const RESPONSES_FILE: &str = "prompt_responses.jsonl";
pub const SYSTEM_PROMPT_FILE: &str = "system_prompt.txt";

pub struct PromptGate {
    store: Arc<dyn RunStore>,
    blobs: Arc<dyn BlobStore>,
    queue: Arc<dyn Queue>,
}

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("run {0} not found")]
    RunNotFound(String),
    #[error(transparent)]
    Key(#[from] vaia_core::IdError),
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

impl PromptGate {
    pub fn new(store: Arc<dyn RunStore>, blobs: Arc<dyn BlobStore>, queue: Arc<dyn Queue>) -> Self {
        Self {
            store,
            blobs,
            queue,
        }
    }

    /// Runs the gate for `job`; `None` when the job is stale.
    pub async fn run(&self, job: &GateJob) -> Result<Option<Verdict>, GateError> {
        let run = self
            .store
            .get(&job.run_id)
            .await?
            .ok_or_else(|| GateError::RunNotFound(job.run_id.to_string()))?;
        if run.state.stage() != Some(job.stage) {
            tracing::debug!(run_id = %run.id, state = %run.state, "stale prompt job");
            return Ok(None);
        }
        let verdict = self.evaluate(&run.repository, job, &run.policy).await?;
        let key = verdict_key(&run.id, job.stage, &job.gate)?;
        let bytes = serde_json::to_vec_pretty(&verdict)
            .map_err(|e| PortError::Invalid(format!("cannot encode verdict: {e}")))?;
        self.blobs.put(&key, &bytes).await?;
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
            &*self.queue,
            &run.id,
            Some(job.stage.state()),
            "gate-prompt",
            signal,
            &dedupe,
        )
        .await?;
        Ok(Some(verdict))
    }

    async fn evaluate(
        &self,
        repo: &vaia_core::Repository,
        job: &GateJob,
        policy: &vaia_core::policy::Policy,
    ) -> Result<Verdict, GateError> {
        let gate = job.gate.clone();
        let key = BlobKey::evidence(repo, &job.commit, RESPONSES_FILE)?;
        let Some(bytes) = self.blobs.get(&key).await? else {
            return Ok(Verdict::new(
                gate,
                Outcome::Error,
                format!("{RESPONSES_FILE} is not in the evidence bundle ({key})"),
            ));
        };
        let sp_key = BlobKey::evidence(repo, &job.commit, SYSTEM_PROMPT_FILE)?;
        let system_prompt = self
            .blobs
            .get(&sp_key)
            .await?
            .map(|b| String::from_utf8_lossy(&b).into_owned());
        let origin = key.to_string();
        let text = String::from_utf8_lossy(&bytes);
        let opts = PromptOptions {
            max_leaks: policy.prompt.max_leaks,
            canaries: policy.prompt.canaries.clone(),
            system_prompt,
            ngram_threshold: policy.prompt.ngram_threshold,
        };
        let result =
            prompt::parse_corpus("builtin corpus", prompt::BUILTIN_CORPUS).and_then(|corpus| {
                let responses = prompt::parse_responses(&origin, &text)?;
                prompt::evaluate(&corpus, &responses, &opts)
            });
        Ok(match result {
            Ok(v) => v,
            // An unreadable transcript is the candidate's defect: it fails.
            Err(e) => {
                let mut v = Verdict::new(
                    gate,
                    Outcome::Fail,
                    format!("{RESPONSES_FILE} is unreadable: {e}"),
                );
                v.findings.push(
                    Finding::new("prompt.unreadable", Severity::High, e.to_string()).at(origin),
                );
                v
            }
        })
    }
}

#[async_trait]
impl MessageHandler for PromptGate {
    async fn handle(&self, message: &ReceivedMessage) -> Result<(), HandlerError> {
        let job: GateJob = parse_body("gate-prompt", &message.id, &message.body)
            .map_err(HandlerError::permanent)?;
        if let Some(v) = self.run(&job).await? {
            tracing::info!(run_id = %job.run_id, outcome = v.outcome.as_str(), "prompt verdict");
        }
        Ok(())
    }
}
