//! The security gate as a pipeline function: reads the candidate image's Trivy report
//! (`trivy.json`) from its evidence bundle, with the base image's (`trivy-base.json`) and
//! Trivy's ignore files (`.trivyignore`, `.trivyignore.yaml`) when the bundle has them,
//! evaluates it with [`vaia_gates::security`] under the run's `[security]` policy, stores
//! the full verdict and tells the orchestrator. A job for a run no longer in the job's stage
//! is a no-op.

use async_trait::async_trait;
use std::sync::Arc;
use vaia_core::gate_job::{parse_job, publish_verdict, run_for_job, verdict_of, Bundle};
use vaia_core::messages::GateJob;
use vaia_core::ports::{
    BlobStore, Clock, HandlerError, MessageHandler, Queue, ReceivedMessage, RunStore,
};
use vaia_core::run::Run;
use vaia_core::{BlobKey, Finding, Outcome, Severity, Verdict};
use vaia_gates::limits;
use vaia_gates::security::{self, Input, SecurityOptions};

pub const REPORT_FILE: &str = "trivy.json";
pub const BASE_REPORT_FILE: &str = "trivy-base.json";
pub const IGNORE_FILES: &[&str] = &[".trivyignore", ".trivyignore.yaml"];

pub struct SecurityGate {
    store: Arc<dyn RunStore>,
    blobs: Arc<dyn BlobStore>,
    queue: Arc<dyn Queue>,
    clock: Arc<dyn Clock>,
}

pub use vaia_core::gate_job::GateError;

impl SecurityGate {
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
            "gate-security",
            &verdict,
        )
        .await?;
        Ok(Some(verdict))
    }

    async fn evaluate(&self, run: &Run, job: &GateJob) -> Result<Verdict, GateError> {
        let (repo, policy) = (&run.repository, &run.policy);
        let bundle = Bundle::open(&*self.blobs, run, "the candidate's").await?;
        let gate = job.gate.clone();
        let report_key = BlobKey::evidence(repo, &job.commit, REPORT_FILE)?;
        let Some(report) = bundle.get(REPORT_FILE).await?.map(|(_, b)| b) else {
            return Ok(Verdict::new(
                gate,
                Outcome::Error,
                format!("{REPORT_FILE} is not in the evidence bundle ({report_key})"),
            ));
        };
        let base_key = BlobKey::evidence(repo, &job.commit, BASE_REPORT_FILE)?;
        let base = bundle.get(BASE_REPORT_FILE).await?.map(|(_, b)| b);
        let mut ignores = Vec::new();
        for name in IGNORE_FILES {
            let key = BlobKey::evidence(repo, &job.commit, name)?;
            if let Some(bytes) = bundle.get(name).await?.map(|(_, b)| b) {
                ignores.push((key.to_string(), bytes));
            }
        }
        let opts = match SecurityOptions::new(
            &policy.security.severities,
            policy.security.ignore_unfixed,
            self.clock.now().date_naive(),
        ) {
            Ok(o) => o,
            Err(e) => return Ok(Verdict::new(gate, Outcome::Error, format!("policy: {e}"))),
        };
        let report_origin = report_key.to_string();
        let base_origin = base_key.to_string();
        let mut sizes = vec![(report_origin.as_str(), report.len(), limits::TRIVY_REPORT)];
        if let Some(b) = &base {
            sizes.push((base_origin.as_str(), b.len(), limits::TRIVY_REPORT));
        }
        for (k, b) in &ignores {
            sizes.push((k.as_str(), b.len(), limits::TRIVY_IGNORE));
        }
        if let Some(v) = limits::oversized_evidence(&gate, &sizes) {
            return Ok(v);
        }
        let base_input = base.as_ref().map(|bytes| Input {
            origin: &base_origin,
            bytes,
        });
        let ignore_inputs: Vec<Input> = ignores
            .iter()
            .map(|(origin, bytes)| Input { origin, bytes })
            .collect();
        Ok(
            match security::evaluate(
                &Input {
                    origin: &report_origin,
                    bytes: &report,
                },
                base_input.as_ref(),
                &ignore_inputs,
                &opts,
            ) {
                Ok(v) => v,
                // In the pipeline an unreadable report is the candidate's defect: it fails.
                Err(e) => {
                    let mut v = Verdict::new(
                        gate,
                        Outcome::Fail,
                        format!("the security evidence is unreadable: {e}"),
                    );
                    v.findings.push(
                        Finding::new("security.unreadable", Severity::High, e.to_string())
                            .at(report_origin),
                    );
                    v
                }
            },
        )
    }
}

#[async_trait]
impl MessageHandler for SecurityGate {
    async fn handle(&self, message: &ReceivedMessage) -> Result<(), HandlerError> {
        let job = parse_job("gate-security", message)?;
        if let Some(v) = self.run(&job).await? {
            tracing::info!(run_id = %job.run_id, outcome = v.outcome.as_str(), "security verdict");
        }
        Ok(())
    }

    /// A gate job handled again changes nothing (see `vaia_core::gate_job`).
    fn idempotent_by_itself(&self) -> bool {
        true
    }
}
