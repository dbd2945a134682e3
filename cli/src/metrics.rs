//! Prometheus metrics of the local stack (`GET /metrics`): counters the handlers bump
//! through the [`Metrics`] port, queue depths, and the gauges of what lives in the store
//! ([`StoreGauges`]: runs by state, pending data volume, the newest CT evaluation), read at
//! scrape time by the same code the `api` function serves them with on AWS.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Mutex;
use std::time::Duration;
use vaia_api::metrics::StoreGauges;
use vaia_api::ApiError;
use vaia_core::ports::{BlobStore, Metrics, Queue, RunStore};
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
    store_gauges: StoreGauges,
    queue_messages: Family<Labels, Gauge>,
    dead_letter_messages: Family<Labels, Gauge>,
    signature_failures: Counter,
    ct_evaluations: Family<Labels, Counter>,
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
        let store_gauges = StoreGauges::register(&mut registry);
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
        let ct_evaluations = Family::<Labels, Counter>::default();
        let ct_retrains_queued = Counter::default();
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
            ct_evaluations,
            ct_retrains_queued,
            transitions,
            time_in_state,
            verdicts,
            store_gauges,
            queue_messages,
            dead_letter_messages,
            signature_failures,
        }
    }

    /// Counts a webhook delivery refused for its signature (a forgery attempt or a wrong secret).
    pub fn signature_failure(&self) {
        self.signature_failures.inc();
    }

    /// Counts one CT evaluation by outcome, and the training job it queued. (The
    /// repository's budget, drift and Δrows gauges are read from its newest recorded
    /// evaluation at scrape time.)
    pub fn ct_evaluation(&self, e: &vaia_ct_budget::Evaluation) {
        self.ct_evaluations
            .get_or_create(&labels(&[("outcome", e.budget.outcome.as_str())]))
            .inc();
        if e.job_status.as_deref() == Some(vaia_ct_budget::JOB_QUEUED) {
            self.ct_retrains_queued.inc();
        }
    }

    /// Reads the gauges from the stores and renders the text exposition format.
    pub async fn render(
        &self,
        store: &dyn RunStore,
        blobs: &dyn BlobStore,
        queue: &dyn Queue,
        queues: &[String],
    ) -> Result<String, ApiError> {
        self.store_gauges.refresh(store, blobs).await?;
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
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        vaia_api::metrics::encode_registry(&registry)
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
