//! Prometheus metrics of the local stack (`GET /metrics`): counters the handlers bump
//! through the [`Metrics`] port, and gauges read from the stores at scrape time.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Duration;
use vaia_core::ports::{Metrics, PortResult, Queue, RunStore};
use vaia_core::PipelineState;

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub struct PromMetrics {
    registry: Mutex<Registry>,
    transitions: Family<Labels, Counter>,
    time_in_state: Family<Labels, Histogram>,
    verdicts: Family<Labels, Counter>,
    runs: Family<Labels, Gauge>,
    queue_messages: Family<Labels, Gauge>,
    dead_letter_messages: Family<Labels, Gauge>,
    signature_failures: Counter,
    ct_budget: Family<Labels, Gauge<f64, AtomicU64>>,
    ct_drift: Family<Labels, Gauge<f64, AtomicU64>>,
    ct_delta_rows: Family<Labels, Gauge>,
    ct_evaluations: Family<Labels, Counter>,
    /// Raw-data bytes counted by the data watcher and not yet consumed, per repository.
    pending_data: Family<Labels, Gauge>,
    ct_retrains_queued: Counter,
}

impl Default for PromMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl PromMetrics {
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let transitions = Family::<Labels, Counter>::default();
        let time_in_state = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new([0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0, 3600.0])
        });
        let verdicts = Family::<Labels, Counter>::default();
        let runs = Family::<Labels, Gauge>::default();
        let queue_messages = Family::<Labels, Gauge>::default();
        let dead_letter_messages = Family::<Labels, Gauge>::default();
        let signature_failures = Counter::default();
        registry.register(
            "vaia_webhook_signature_failures",
            "Webhook deliveries refused for a missing, malformed or wrong X-Hub-Signature-256",
            signature_failures.clone(),
        );
        registry.register(
            "vaia_transitions",
            "Applied run state transitions, by from and to state",
            transitions.clone(),
        );
        registry.register(
            "vaia_time_in_state_seconds",
            "Time a run spent in a state before leaving it",
            time_in_state.clone(),
        );
        registry.register(
            "vaia_gate_verdicts",
            "Gate verdicts recorded on runs, by gate and outcome",
            verdicts.clone(),
        );
        registry.register("vaia_runs", "Runs by current state", runs.clone());
        registry.register(
            "vaia_queue_messages",
            "Messages in a queue, by status (visible or in_flight)",
            queue_messages.clone(),
        );
        registry.register(
            "vaia_dead_letter_messages",
            "Messages in a queue's dead-letter queue",
            dead_letter_messages.clone(),
        );
        let ct_budget = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        let ct_drift = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        let ct_delta_rows = Family::<Labels, Gauge>::default();
        let ct_evaluations = Family::<Labels, Counter>::default();
        let ct_retrains_queued = Counter::default();
        let pending_data = Family::<Labels, Gauge>::default();
        registry.register(
            crate::monitoring::rules::PENDING_DATA_METRIC,
            "Raw-data bytes landed under raw/<owner>/<repo>/ that no retrain has consumed (the data watcher's pending volume)",
            pending_data.clone(),
        );
        registry.register(
            "ct_training_budget",
            "The latest CT training budget of a repository (absent while its evaluation is error or inconclusive)",
            ct_budget.clone(),
        );
        registry.register(
            "ct_drift_score",
            "The drift score the latest CT evaluation of a repository read (absent when it could not read one)",
            ct_drift.clone(),
        );
        registry.register(
            "ct_dataset_delta_rows",
            "Rows of a repository's newest dataset snapshot minus its CT baseline's (absent when unknown)",
            ct_delta_rows.clone(),
        );
        registry.register(
            "ct_evaluations",
            "CT budget evaluations, by outcome (hold, retrain, inconclusive, error)",
            ct_evaluations.clone(),
        );
        registry.register(
            "ct_retrains_queued",
            "Training jobs queued (each job once, however many evaluations see it due)",
            ct_retrains_queued.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            ct_budget,
            ct_drift,
            ct_delta_rows,
            ct_evaluations,
            ct_retrains_queued,
            pending_data,
            transitions,
            time_in_state,
            verdicts,
            runs,
            queue_messages,
            dead_letter_messages,
            signature_failures,
        }
    }

    /// Counts a webhook delivery refused for its signature (a forgery attempt or a wrong secret).
    pub fn signature_failure(&self) {
        self.signature_failures.inc();
    }

    /// Records one CT evaluation: the repository's gauges follow its latest evaluation, and
    /// a value the evaluation does not know is removed rather than shown as zero.
    pub fn ct_evaluation(&self, e: &vaia_ct_budget::Evaluation) {
        let repo = labels(&[("repository", e.repository.as_str())]);
        self.ct_evaluations
            .get_or_create(&labels(&[("outcome", e.budget.outcome.as_str())]))
            .inc();
        match e.budget.budget {
            Some(b) => {
                self.ct_budget.get_or_create(&repo).set(b);
            }
            None => {
                self.ct_budget.remove(&repo);
            }
        }
        match e.budget.drift {
            Some(d) => {
                self.ct_drift.get_or_create(&repo).set(d);
            }
            None => {
                self.ct_drift.remove(&repo);
            }
        }
        match e.budget.delta_rows {
            Some(d) => {
                self.ct_delta_rows.get_or_create(&repo).set(d);
            }
            None => {
                self.ct_delta_rows.remove(&repo);
            }
        }
        if e.job_status.as_deref() == Some(vaia_ct_budget::JOB_QUEUED) {
            self.ct_retrains_queued.inc();
        }
    }

    /// The repository's pending data volume, as the data watcher last read it.
    pub fn pending_data(&self, repo: &vaia_core::Repository, v: vaia_data_watcher::Volume) {
        self.pending_data
            .get_or_create(&labels(&[("repository", repo.as_str())]))
            .set(i64::try_from(v.bytes).unwrap_or(i64::MAX));
    }

    /// Reads the gauges from the stores and renders the text exposition format.
    pub async fn render(
        &self,
        store: &dyn RunStore,
        queue: &dyn Queue,
        queues: &[String],
    ) -> PortResult<String> {
        let counts = store.count_by_state().await?;
        for state in PipelineState::ALL {
            let n = counts.get(&state).copied().unwrap_or(0);
            self.runs
                .get_or_create(&labels(&[("state", state.as_str())]))
                .set(n as i64);
        }
        for name in queues {
            let depth = queue.depth(name).await?;
            let q = name.as_str();
            self.queue_messages
                .get_or_create(&labels(&[("queue", q), ("status", "visible")]))
                .set(depth.visible as i64);
            self.queue_messages
                .get_or_create(&labels(&[("queue", q), ("status", "in_flight")]))
                .set(depth.in_flight as i64);
            self.dead_letter_messages
                .get_or_create(&labels(&[("queue", q)]))
                .set(depth.dead as i64);
        }
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        encode(&mut out, &registry)
            .map_err(|e| vaia_core::ports::PortError::Invalid(e.to_string()))?;
        Ok(out)
    }
}

impl Metrics for PromMetrics {
    fn transition(&self, from: PipelineState, to: PipelineState, time_in_from: Duration) {
        self.transitions
            .get_or_create(&labels(&[("from", from.as_str()), ("to", to.as_str())]))
            .inc();
        self.time_in_state
            .get_or_create(&labels(&[("state", from.as_str())]))
            .observe(time_in_from.as_secs_f64());
    }

    fn verdict(&self, gate: &str, outcome: &str) {
        self.verdicts
            .get_or_create(&labels(&[("gate", gate), ("outcome", outcome)]))
            .inc();
    }
}
