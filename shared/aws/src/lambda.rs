//! The Lambda glue every function shares, kept out of the functions' `main.rs`:
//! JSON logging, and the adapter from an SQS batch event to [`MessageHandler`]s with
//! partial batch failures, dead-lettering with a reason, and Powertools-style
//! idempotency per message.
//!
//! For each SQS record (in order):
//! 1. its body becomes one or more [`ReceivedMessage`]s: the body itself, or, for a queue
//!    fed by S3 bucket notifications, one `ObjectCreated` per created object (the
//!    `s3:TestEvent` is acknowledged and dropped);
//! 2. each message is claimed in the idempotency store under its key (queue and
//!    deduplication id or message id; S3 bucket, key and version or sequencer): a
//!    completed key is acknowledged without running the handler again, a key in progress
//!    elsewhere is retried later, and a claimed key is completed after the handler
//!    succeeds or released when it fails. A handler that is idempotent by itself
//!    ([`MessageHandler::idempotent_by_itself`]: the orchestrator, the gates) is run
//!    without records;
//! 3. a retryable failure is returned in `batchItemFailures` (SQS delivers it again after
//!    the visibility timeout) unless this was the last allowed receive; a permanent failure,
//!    or one on the last receive, is sent to the dead-letter queue with its reason and
//!    acknowledged. If the dead-letter send itself fails, the record is reported failed so
//!    nothing is lost (the redrive policy still catches it).
//!
//! On a FIFO queue, once a record of a message group fails, the later records of that
//! group in the batch are reported failed without being handled, to keep the group's order.
//!
//! Each invocation runs under its deadline ([`vaia_core::deadline`]): the context's, less
//! [`DEADLINE_MARGIN`], so that deliveries still waiting (commit statuses, promotion events,
//! image tags) are abandoned and the batch is answered before Lambda times the function out
//! (which would hand the whole batch back, and at last to the dead-letter queue).

use crate::s3event::{parse_notification, S3Notification};
use crate::sqs::SqsQueue;
use async_trait::async_trait;
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;
use vaia_core::ports::{
    Claim, Clock, HandlerError, Idempotency, MessageHandler, PortResult, ReceivedMessage,
};

/// Logs as JSON lines, one object per event with the current span's fields (the
/// correlation ids), filtered by `RUST_LOG` or `AWS_LAMBDA_LOG_LEVEL` (default `info`).
pub fn init_tracing() {
    let filter = std::env::var("RUST_LOG")
        .or_else(|_| std::env::var("AWS_LAMBDA_LOG_LEVEL").map(|l| l.to_ascii_lowercase()))
        .unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_current_span(true)
        .with_span_list(false)
        .flatten_event(true)
        .with_target(false)
        .without_time()
        .try_init();
}

/// Where the batch adapter sends messages that must not be retried.
#[async_trait]
pub trait DeadLetterSink: Send + Sync {
    async fn dead_letter(
        &self,
        queue: &str,
        message_id: &str,
        body: &str,
        group: Option<&str>,
        reason: &str,
    ) -> PortResult<()>;
}

#[async_trait]
impl DeadLetterSink for SqsQueue {
    async fn dead_letter(
        &self,
        queue: &str,
        message_id: &str,
        body: &str,
        group: Option<&str>,
        reason: &str,
    ) -> PortResult<()> {
        SqsQueue::dead_letter(self, queue, message_id, body, group, reason).await
    }
}

/// What a queue's bodies are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// vaia's own JSON messages.
    Messages,
    /// S3 bucket notifications: each object-created record becomes an `ObjectCreated`.
    S3Notifications,
}

/// One queue the function consumes.
pub struct Route {
    /// The logical queue name (`advance`, `registry`, `blob-events`, ...).
    pub queue: String,
    /// The queue's SQS name, matched against the record's `eventSourceARN`.
    pub physical: String,
    pub source: Source,
    pub handler: Arc<dyn MessageHandler>,
}

/// What happened to one SQS record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    /// Handled (or nothing to do); acknowledged.
    Done,
    /// Already done by an earlier delivery; acknowledged without running the handler.
    Duplicate,
    /// Returned in `batchItemFailures`, to be delivered again.
    Retry(String),
    /// Sent to the dead-letter queue with this reason; acknowledged.
    DeadLettered(String),
}

/// The SQS batch adapter.
pub struct SqsBatch {
    routes: Vec<Route>,
    dead: Arc<dyn DeadLetterSink>,
    idempotency: Option<Arc<dyn Idempotency>>,
    clock: Arc<dyn Clock>,
    max_receives: u32,
    /// How long a claim blocks duplicates: the function's timeout.
    in_progress_ttl: Duration,
}

impl SqsBatch {
    pub fn new(
        routes: Vec<Route>,
        dead: Arc<dyn DeadLetterSink>,
        clock: Arc<dyn Clock>,
        max_receives: u32,
    ) -> Self {
        Self {
            routes,
            dead,
            idempotency: None,
            clock,
            max_receives: max_receives.max(1),
            in_progress_ttl: Duration::from_secs(60),
        }
    }

    /// Claims every message in `store` before handling it; `in_progress_ttl` should be the
    /// function's timeout, so a claim outlives any run of the handler that holds it.
    pub fn with_idempotency(
        mut self,
        store: Arc<dyn Idempotency>,
        in_progress_ttl: Duration,
    ) -> Self {
        self.idempotency = Some(store);
        self.in_progress_ttl = in_progress_ttl;
        self
    }

    fn route(&self, record: &SqsMessage) -> Option<&Route> {
        let arn_name = record
            .event_source_arn
            .as_deref()
            .and_then(|arn| arn.rsplit(':').next());
        match arn_name {
            Some(name) => self
                .routes
                .iter()
                .find(|r| r.physical == name)
                .or_else(|| (self.routes.len() == 1).then(|| &self.routes[0])),
            None => (self.routes.len() == 1).then(|| &self.routes[0]),
        }
    }

    /// Handles a batch; the response lists exactly the records to deliver again.
    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        self.process(event).await.0
    }

    /// [`Self::handle`], also returning each record's outcome (for tests and logs).
    pub async fn process(&self, event: SqsEvent) -> (SqsBatchResponse, Vec<RecordOutcome>) {
        let mut failures = Vec::new();
        let mut outcomes = Vec::with_capacity(event.records.len());
        let mut blocked_groups: BTreeSet<String> = BTreeSet::new();
        for (index, record) in event.records.iter().enumerate() {
            let id = record
                .message_id
                .clone()
                .unwrap_or_else(|| format!("record-{index}"));
            let group = record.attributes.get("MessageGroupId").cloned();
            let outcome = match &group {
                Some(g) if blocked_groups.contains(g) => {
                    RecordOutcome::Retry(format!("an earlier message of group {g} failed"))
                }
                _ => {
                    let span = tracing::info_span!(
                        "record",
                        message_id = %id,
                        run_id = tracing::field::Empty,
                        receive_count = tracing::field::Empty,
                    );
                    self.record(record, &id, group.as_deref())
                        .instrument(span)
                        .await
                }
            };
            if let RecordOutcome::Retry(_) = &outcome {
                failures.push({
                    let mut f = BatchItemFailure::default();
                    f.item_identifier = id.clone();
                    f
                });
                if let Some(g) = group {
                    blocked_groups.insert(g);
                }
            }
            outcomes.push(outcome);
        }
        let mut response = SqsBatchResponse::default();
        response.batch_item_failures = failures;
        (response, outcomes)
    }

    async fn record(&self, record: &SqsMessage, id: &str, group: Option<&str>) -> RecordOutcome {
        let span = tracing::Span::current();
        let receive_count: u32 = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        span.record("receive_count", receive_count);
        let body = record.body.clone().unwrap_or_default();
        let Some(route) = self.route(record) else {
            // Nothing here can handle it; retrying will not help, and there is no queue of
            // ours to dead-letter to, so let the redrive policy take it.
            let arn = record.event_source_arn.clone().unwrap_or_default();
            tracing::error!(%arn, "no route for the record's queue");
            return RecordOutcome::Retry(format!("no route for queue {arn}"));
        };
        let result = match route.source {
            Source::Messages => {
                if let Some(run) = run_id_of(&body) {
                    span.record("run_id", run.as_str());
                }
                let dedupe = record
                    .attributes
                    .get("MessageDeduplicationId")
                    .map_or(id, String::as_str);
                let message = ReceivedMessage {
                    id: id.to_string(),
                    receipt: record.receipt_handle.clone().unwrap_or_default(),
                    body: body.clone(),
                    receive_count,
                };
                self.once(route, &format!("sqs:{}:{dedupe}", route.queue), &message)
                    .await
            }
            Source::S3Notifications => self.s3(route, record, id, &body, receive_count).await,
        };
        match result {
            Ok(duplicate) => {
                if duplicate {
                    tracing::info!("duplicate delivery; already done");
                    RecordOutcome::Duplicate
                } else {
                    RecordOutcome::Done
                }
            }
            Err(e) if e.retryable && receive_count < self.max_receives => {
                tracing::warn!(reason = %e.reason, "failed; will be retried");
                RecordOutcome::Retry(e.reason)
            }
            Err(e) => {
                let reason = if e.retryable {
                    format!(
                        "{} (gave up after {receive_count} of {} receives)",
                        e.reason, self.max_receives
                    )
                } else {
                    e.reason
                };
                match self
                    .dead
                    .dead_letter(&route.queue, id, &body, group, &reason)
                    .await
                {
                    Ok(()) => RecordOutcome::DeadLettered(reason),
                    Err(dlq) => {
                        tracing::error!(%reason, error = %dlq, "dead-letter send failed");
                        RecordOutcome::Retry(format!("{reason}; dead-letter send failed: {dlq}"))
                    }
                }
            }
        }
    }

    async fn s3(
        &self,
        route: &Route,
        record: &SqsMessage,
        id: &str,
        body: &str,
        receive_count: u32,
    ) -> Result<bool, HandlerError> {
        let objects = match parse_notification(body) {
            Ok(S3Notification::Test) => {
                tracing::info!("s3:TestEvent acknowledged");
                return Ok(false);
            }
            Ok(S3Notification::Objects(objects)) => objects,
            Err(e) => return Err(HandlerError::permanent(e.to_string())),
        };
        let mut all_duplicates = !objects.is_empty();
        for (i, object) in objects.iter().enumerate() {
            let body = serde_json::to_string(&object.created).map_err(|e| {
                HandlerError::permanent(format!("cannot encode ObjectCreated: {e}"))
            })?;
            let message = ReceivedMessage {
                id: format!("{id}#{i}"),
                receipt: record.receipt_handle.clone().unwrap_or_default(),
                body,
                receive_count,
            };
            let duplicate = self
                .once(route, &object.idempotency_key(), &message)
                .instrument(tracing::info_span!("object", key = %object.created.key))
                .await?;
            all_duplicates &= duplicate;
        }
        Ok(all_duplicates)
    }

    /// Runs the handler at most once per `key`; `Ok(true)` when it had already run.
    async fn once(
        &self,
        route: &Route,
        key: &str,
        message: &ReceivedMessage,
    ) -> Result<bool, HandlerError> {
        let Some(store) = self
            .idempotency
            .as_ref()
            .filter(|_| !route.handler.idempotent_by_itself())
        else {
            return route.handler.handle(message).await.map(|()| false);
        };
        match store
            .claim(key, self.in_progress_ttl, self.clock.now())
            .await?
        {
            Claim::Completed(_) => return Ok(true),
            Claim::InProgress => {
                return Err(HandlerError::retryable(format!(
                    "{key} is being handled by another invocation"
                )))
            }
            Claim::Claimed => {}
        }
        match route.handler.handle(message).await {
            Ok(()) => {
                store.complete(key, "ok", self.clock.now()).await?;
                Ok(false)
            }
            Err(e) => {
                if let Err(release) = store.release(key).await {
                    tracing::warn!(%key, error = %release, "idempotency release failed; the claim expires");
                }
                Err(e)
            }
        }
    }
}

/// The `run_id` field of a JSON body, for the logs' correlation id.
fn run_id_of(body: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Probe {
        run_id: Option<String>,
    }
    serde_json::from_str::<Probe>(body)
        .ok()
        .and_then(|p| p.run_id)
}

/// How long before Lambda's deadline an invocation stops delivering: time left to answer
/// the batch (and write the idempotency records) before the function would time out.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(2);

/// The deadline of an invocation whose context gives `deadline_ms` (milliseconds since the
/// Unix epoch), less [`DEADLINE_MARGIN`]; `None` when the context gives none (0).
pub fn invocation_deadline(deadline_ms: u64) -> Option<tokio::time::Instant> {
    (deadline_ms > 0).then(|| {
        vaia_core::deadline::from_epoch_millis(
            deadline_ms,
            DEADLINE_MARGIN,
            std::time::SystemTime::now(),
            tokio::time::Instant::now(),
        )
    })
}

/// Handles one invocation: `event`'s batch under [`invocation_deadline`].
pub async fn invoke(
    batch: &SqsBatch,
    event: lambda_runtime::LambdaEvent<SqsEvent>,
) -> SqsBatchResponse {
    let span = tracing::info_span!("invocation", request_id = %event.context.request_id);
    let handled = batch.handle(event.payload);
    match invocation_deadline(event.context.deadline) {
        Some(deadline) => {
            vaia_core::deadline::scope(deadline, handled)
                .instrument(span)
                .await
        }
        None => handled.instrument(span).await,
    }
}

/// Serves `batch` as the function's handler through the Lambda Runtime API.
pub async fn serve_sqs(batch: SqsBatch) -> Result<(), lambda_runtime::Error> {
    let batch = Arc::new(batch);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<SqsEvent>| {
            let batch = batch.clone();
            async move { Ok::<_, lambda_runtime::Error>(invoke(&batch, event).await) }
        },
    ))
    .await
}

/// Serves gate `gate`'s queue (`gate-<gate>`) with `handler`: the whole wiring of a gate
/// function once its handler is built.
pub async fn serve_gate(
    ports: &crate::AwsPorts,
    gate: &str,
    handler: Arc<dyn MessageHandler>,
) -> Result<(), lambda_runtime::Error> {
    let gate = vaia_core::GateName::new(gate)?;
    let queue = vaia_core::messages::queues::gate(&gate);
    let routes = vec![route(&ports.queue, &queue, Source::Messages, handler)];
    serve_sqs(batch(ports, routes)).await
}

/// Logical queue name → its SQS route, for a function's wiring.
pub fn route(
    queue: &SqsQueue,
    logical: &str,
    source: Source,
    handler: Arc<dyn MessageHandler>,
) -> Route {
    Route {
        queue: logical.to_string(),
        physical: queue.names().physical(logical),
        source,
        handler,
    }
}

/// Counts of outcomes, for a batch's summary log line.
pub fn summary(outcomes: &[RecordOutcome]) -> HashMap<&'static str, usize> {
    let mut m = HashMap::new();
    for o in outcomes {
        let k = match o {
            RecordOutcome::Done => "done",
            RecordOutcome::Duplicate => "duplicate",
            RecordOutcome::Retry(_) => "retry",
            RecordOutcome::DeadLettered(_) => "dead_lettered",
        };
        *m.entry(k).or_insert(0) += 1;
    }
    m
}

/// The function's timeout (`VAIA_FUNCTION_TIMEOUT_SECS`, set by the template; default 30 s):
/// how long an idempotency claim blocks duplicates.
pub fn function_timeout() -> Duration {
    let secs = std::env::var("VAIA_FUNCTION_TIMEOUT_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    Duration::from_secs(secs)
}

/// The batch adapter over `ports` with idempotency: what every SQS function serves.
pub fn batch(ports: &crate::AwsPorts, routes: Vec<Route>) -> SqsBatch {
    SqsBatch::new(
        routes,
        ports.queue.clone(),
        ports.clock.clone(),
        ports.settings.max_receives,
    )
    .with_idempotency(ports.idempotency.clone(), function_timeout())
}

/// Metrics as CloudWatch embedded metric format lines on stdout: CloudWatch Logs turns them
/// into metrics with no API call on the hot path.
#[derive(Debug, Clone)]
pub struct EmfMetrics {
    function: String,
}

impl EmfMetrics {
    pub fn new(function: impl Into<String>) -> Self {
        Self {
            function: function.into(),
        }
    }

    fn emit(&self, name: &str, unit: &str, value: f64, dims: &[(&str, &str)]) {
        let mut doc = serde_json::Map::new();
        let keys: Vec<&str> = std::iter::once("function")
            .chain(dims.iter().map(|(k, _)| *k))
            .collect();
        doc.insert(
            "_aws".into(),
            serde_json::json!({
                "Timestamp": chrono::Utc::now().timestamp_millis(),
                "CloudWatchMetrics": [{
                    "Namespace": "vaia",
                    "Dimensions": [keys],
                    "Metrics": [{"Name": name, "Unit": unit}],
                }],
            }),
        );
        doc.insert("function".into(), self.function.clone().into());
        for (k, v) in dims {
            doc.insert((*k).into(), (*v).into());
        }
        doc.insert(name.into(), value.into());
        println!("{}", serde_json::Value::Object(doc));
    }
}

impl vaia_core::ports::Metrics for EmfMetrics {
    fn transition(
        &self,
        from: vaia_core::PipelineState,
        to: vaia_core::PipelineState,
        time_in_from: Duration,
    ) {
        let (f, t) = (from.to_string(), to.to_string());
        self.emit("transitions", "Count", 1.0, &[("from", &f), ("to", &t)]);
        self.emit(
            "time_in_state_seconds",
            "Seconds",
            time_in_from.as_secs_f64(),
            &[("state", &f)],
        );
    }
    fn verdict(&self, gate: &str, outcome: &str) {
        self.emit(
            "verdicts",
            "Count",
            1.0,
            &[("gate", gate), ("outcome", outcome)],
        );
    }
}
