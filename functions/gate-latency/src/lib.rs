//! The latency gate as a pipeline function: reads the candidate's Locust statistics
//! (`locust_stats.csv`) from its evidence bundle, gets production's p95 from Prometheus
//! (the URL is deployment configuration, `VAIA_PROMETHEUS_URL` on the local stack) or the
//! policy's fixed `baseline_p95_ms`, evaluates with [`vaia_gates::latency`] under the run's
//! `[latency]` policy, stores the full verdict and tells the orchestrator. Without either
//! baseline the verdict is `error` with the reason: never a pass. A job for a run no longer
//! in the job's stage is a no-op.

use async_trait::async_trait;
use std::sync::Arc;
use vaia_core::gate_job::{parse_job, publish_verdict, run_for_job, verdict_of, Bundle};
use vaia_core::messages::GateJob;
use vaia_core::ports::{
    BlobStore, Clock, HandlerError, MessageHandler, Queue, ReceivedMessage, RunStore,
};
use vaia_core::run::Run;
use vaia_core::{BlobKey, Finding, Outcome, Severity, Verdict};
use vaia_gates::latency::prometheus::{PrometheusHttp, RangeQuery};
use vaia_gates::latency::{self, Baseline, BaselineQuery, LatencyOptions};

pub const STATS_FILE: &str = "locust_stats.csv";
/// The environment variable the local stack reads the Prometheus URL from.
pub const PROMETHEUS_URL_ENV: &str = "VAIA_PROMETHEUS_URL";

/// A client for production's Prometheus at `url`; `None` (logged) when there is no URL or
/// it is unusable, and the gate then says so in its verdict.
pub fn prometheus_client(url: Option<&str>) -> Option<Arc<dyn RangeQuery>> {
    let url = url.map(str::trim).filter(|u| !u.is_empty())?;
    match PrometheusHttp::new(url, std::time::Duration::from_secs(30)) {
        Ok(h) => Some(Arc::new(h)),
        Err(e) => {
            tracing::warn!(error = %e, "no Prometheus client: the latency gate will say so");
            None
        }
    }
}

pub struct LatencyGate {
    store: Arc<dyn RunStore>,
    blobs: Arc<dyn BlobStore>,
    queue: Arc<dyn Queue>,
    clock: Arc<dyn Clock>,
    prometheus: Option<Arc<dyn RangeQuery>>,
}

pub use vaia_core::gate_job::GateError;

impl LatencyGate {
    /// `prometheus` is production's Prometheus; `None` when the deployment has none.
    pub fn new(
        store: Arc<dyn RunStore>,
        blobs: Arc<dyn BlobStore>,
        queue: Arc<dyn Queue>,
        clock: Arc<dyn Clock>,
        prometheus: Option<Arc<dyn RangeQuery>>,
    ) -> Self {
        Self {
            store,
            blobs,
            queue,
            clock,
            prometheus,
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
            "gate-latency",
            &verdict,
        )
        .await?;
        Ok(Some(verdict))
    }

    async fn evaluate(&self, run: &Run, job: &GateJob) -> Result<Verdict, GateError> {
        let (repo, policy) = (&run.repository, &run.policy);
        let bundle = Bundle::open(&*self.blobs, run, "the candidate's").await?;
        let gate = job.gate.clone();
        let lp = &policy.latency;
        let key = BlobKey::evidence(repo, &job.commit, STATS_FILE)?;
        let Some(bytes) = bundle.get(STATS_FILE).await?.map(|(_, b)| b) else {
            return Ok(Verdict::new(
                gate,
                Outcome::Error,
                format!("{STATS_FILE} is not in the evidence bundle ({key})"),
            ));
        };
        let origin = key.to_string();
        if let Some(v) = vaia_gates::limits::oversized_evidence(
            &gate,
            &[(&origin, bytes.len(), vaia_gates::limits::LOCUST_CSV)],
        ) {
            return Ok(v);
        }
        let candidate = match latency::locust::parse(&origin, &bytes, &lp.endpoints) {
            Ok(c) => c,
            // In the pipeline unreadable evidence is the candidate's defect: it fails.
            Err(e) => {
                let mut v = Verdict::new(
                    gate,
                    Outcome::Fail,
                    format!("{STATS_FILE} is unreadable: {e}"),
                );
                v.findings.push(
                    Finding::new("latency.unreadable", Severity::High, e.to_string()).at(origin),
                );
                return Ok(v);
            }
        };
        let baseline = match (lp.baseline_p95_ms, &self.prometheus) {
            (Some(ms), _) => Baseline::Fixed { p95_ms: ms },
            (None, Some(prometheus)) => {
                let now = self.clock.now();
                let end = now.timestamp() as f64 + f64::from(now.timestamp_subsec_millis()) / 1000.0;
                let query = BaselineQuery {
                    query: lp.query.clone(),
                    range: lp.range.clone(),
                    end,
                    step: None,
                    aggregate: lp.aggregate,
                };
                match latency::prometheus_baseline(&**prometheus, &query).await {
                    Ok(b) => b,
                    Err(e) => Baseline::Unavailable {
                        reason: format!("policy: {e}"),
                        query: Some(lp.query.clone()),
                        range: Some(lp.range.clone()),
                    },
                }
            }
            (None, None) => Baseline::Unavailable {
                reason: format!(
                    "no Prometheus is configured for production's baseline ({PROMETHEUS_URL_ENV}) and the policy gives no latency.baseline_p95_ms"
                ),
                query: Some(lp.query.clone()),
                range: Some(lp.range.clone()),
            },
        };
        let opts = LatencyOptions {
            max_regression: lp.max_regression,
            min_requests: lp.min_requests,
            max_failure_ratio: lp.max_failure_ratio,
        };
        Ok(latency::evaluate(&candidate, &baseline, &opts))
    }
}

#[async_trait]
impl MessageHandler for LatencyGate {
    async fn handle(&self, message: &ReceivedMessage) -> Result<(), HandlerError> {
        let job = parse_job("gate-latency", message)?;
        if let Some(v) = self.run(&job).await? {
            tracing::info!(run_id = %job.run_id, outcome = v.outcome.as_str(), "latency verdict");
        }
        Ok(())
    }

    /// A gate job handled again changes nothing (see `vaia_core::gate_job`).
    fn idempotent_by_itself(&self) -> bool {
        true
    }
}
