//! The schema gate as a pipeline function: reads the candidate's `tools.json` from its
//! evidence bundle and the production tool set (the evidence of the run `prod` points
//! at), evaluates it with [`vaia_gates::schema`], stores the full verdict and tells the
//! orchestrator. A job for a run no longer in the job's stage is a no-op.

use async_trait::async_trait;
use std::sync::Arc;
use vaia_core::gate_job::{
    parse_job, production_evidence, publish_verdict, run_for_job, verdict_of, Bundle,
};
use vaia_core::messages::GateJob;
use vaia_core::ports::{BlobStore, HandlerError, MessageHandler, Queue, ReceivedMessage, RunStore};
use vaia_core::run::Run;
use vaia_core::{BlobKey, Finding, Outcome, Severity, Verdict};
use vaia_gates::limits;
use vaia_gates::schema::{self, Input, SchemaOptions};

pub const TOOLS_FILE: &str = "tools.json";

pub struct SchemaGate {
    store: Arc<dyn RunStore>,
    blobs: Arc<dyn BlobStore>,
    queue: Arc<dyn Queue>,
}

pub use vaia_core::gate_job::GateError;

impl SchemaGate {
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
            "gate-schema",
            &verdict,
        )
        .await?;
        Ok(Some(verdict))
    }

    async fn evaluate(&self, run: &Run, job: &GateJob) -> Result<Verdict, GateError> {
        let (repo, policy) = (&run.repository, &run.policy);
        let bundle = Bundle::open(&*self.blobs, run, "the candidate's").await?;
        let gate = job.gate.clone();
        let candidate_key = BlobKey::evidence(repo, &job.commit, TOOLS_FILE)?;
        let Some(candidate) = bundle.get(TOOLS_FILE).await?.map(|(_, b)| b) else {
            return Ok(Verdict::new(
                gate,
                Outcome::Error,
                format!("{TOOLS_FILE} is not in the evidence bundle ({candidate_key})"),
            ));
        };
        let baseline =
            match production_evidence(&*self.blobs, &*self.store, repo, TOOLS_FILE).await? {
                Ok(b) => b,
                Err(reason) => return Ok(Verdict::new(gate, Outcome::Error, reason)),
            };
        let origin = candidate_key.to_string();
        let mut sizes = vec![(origin.as_str(), candidate.len(), limits::TOOLS)];
        if let Some((k, b)) = &baseline {
            sizes.push((k.as_str(), b.len(), limits::TOOLS));
        }
        if let Some(v) = limits::oversized_evidence(&gate, &sizes) {
            return Ok(v);
        }
        let candidate = Input {
            origin: &origin,
            bytes: &candidate,
        };
        let baseline_input = baseline.as_ref().map(|(k, b)| Input {
            origin: k.as_str(),
            bytes: b,
        });
        let opts = SchemaOptions {
            allow_major: policy.schema.allow_major,
        };
        Ok(
            match schema::evaluate(&candidate, baseline_input.as_ref(), &opts) {
                Ok(v) => v,
                // In the pipeline an unreadable candidate is the candidate's defect: it fails.
                Err(e) => {
                    let mut v = Verdict::new(
                        gate,
                        Outcome::Fail,
                        format!("{TOOLS_FILE} is unreadable: {e}"),
                    );
                    v.findings.push(
                        Finding::new("schema.unreadable", Severity::High, e.to_string()).at(origin),
                    );
                    v
                }
            },
        )
    }
}

#[async_trait]
impl MessageHandler for SchemaGate {
    async fn handle(&self, message: &ReceivedMessage) -> Result<(), HandlerError> {
        let job = parse_job("gate-schema", message)?;
        if let Some(v) = self.run(&job).await? {
            tracing::info!(run_id = %job.run_id, outcome = v.outcome.as_str(), "schema verdict");
        }
        Ok(())
    }

    /// A gate job handled again changes nothing (see `vaia_core::gate_job`).
    fn idempotent_by_itself(&self) -> bool {
        true
    }
}
