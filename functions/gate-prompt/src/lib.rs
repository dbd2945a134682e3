//! The prompt-robustness gate as a pipeline function: reads the candidate's
//! `prompt_responses.jsonl` (the agent's CI ran vaia's attack corpus against the candidate
//! container, one line per attack with the fresh canary it passed) and, when present,
//! `system_prompt.txt` from the evidence bundle; scores it with [`vaia_gates::prompt`] under
//! the run's `[prompt]` policy; stores the full verdict and tells the orchestrator. A job for
//! a run no longer in the job's stage is a no-op.

use async_trait::async_trait;
use std::sync::Arc;
use vaia_core::gate_job::{parse_job, publish_verdict, run_for_job, verdict_of, Bundle};
use vaia_core::messages::GateJob;
use vaia_core::ports::{BlobStore, HandlerError, MessageHandler, Queue, ReceivedMessage, RunStore};
use vaia_core::run::Run;
use vaia_core::{BlobKey, Finding, Outcome, Severity, Verdict};
use vaia_gates::limits;
use vaia_gates::prompt::{self, PromptOptions};

pub const RESPONSES_FILE: &str = "prompt_responses.jsonl";
pub const SYSTEM_PROMPT_FILE: &str = "system_prompt.txt";

pub struct PromptGate {
    store: Arc<dyn RunStore>,
    blobs: Arc<dyn BlobStore>,
    queue: Arc<dyn Queue>,
}

pub use vaia_core::gate_job::GateError;

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
        let Some(run) = run_for_job(&*self.store, job).await? else {
            return Ok(None);
        };
        let verdict = verdict_of(&job.gate, self.evaluate(&run, job).await)?;
        publish_verdict(
            &*self.blobs,
            &*self.queue,
            &run,
            job,
            "gate-prompt",
            &verdict,
        )
        .await?;
        Ok(Some(verdict))
    }

    async fn evaluate(&self, run: &Run, job: &GateJob) -> Result<Verdict, GateError> {
        let (repo, policy) = (&run.repository, &run.policy);
        let bundle = Bundle::open(&*self.blobs, run, "the candidate's").await?;
        let gate = job.gate.clone();
        let key = BlobKey::evidence(repo, &job.commit, RESPONSES_FILE)?;
        let Some(bytes) = bundle.get(RESPONSES_FILE).await?.map(|(_, b)| b) else {
            return Ok(Verdict::new(
                gate,
                Outcome::Error,
                format!("{RESPONSES_FILE} is not in the evidence bundle ({key})"),
            ));
        };
        let sp_key = BlobKey::evidence(repo, &job.commit, SYSTEM_PROMPT_FILE)?;
        let system_prompt = bundle.get(SYSTEM_PROMPT_FILE).await?.map(|(_, b)| b);
        let origin = key.to_string();
        let sp_origin = sp_key.to_string();
        let mut sizes = vec![(origin.as_str(), bytes.len(), limits::RESPONSES)];
        if let Some(b) = &system_prompt {
            sizes.push((sp_origin.as_str(), b.len(), limits::SYSTEM_PROMPT));
        }
        if let Some(v) = limits::oversized_evidence(&gate, &sizes) {
            return Ok(v);
        }
        let system_prompt = system_prompt.map(|b| String::from_utf8_lossy(&b).into_owned());
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
        let job = parse_job("gate-prompt", message)?;
        if let Some(v) = self.run(&job).await? {
            tracing::info!(run_id = %job.run_id, outcome = v.outcome.as_str(), "prompt verdict");
        }
        Ok(())
    }

    /// A gate job handled again changes nothing (see `vaia_core::gate_job`).
    fn idempotent_by_itself(&self) -> bool {
        true
    }
}
