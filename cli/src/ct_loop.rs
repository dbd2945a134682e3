//! Continuous training on the local stack: the CT budget ([`vaia_ct_budget::CtBudget`]) run
//! every `[ct] schedule_minutes` (or `--ct-every-secs` / `VAIA_CT_EVERY_SECS`), as the
//! EventBridge schedule runs it on AWS, and once for a repository after each dataset
//! snapshot pushed (the registry's ask on the `ct-evaluate` queue, as on AWS). Training jobs go to the local `training` queue; every
//! evaluation is counted on `/metrics`.
//!
//! `POST /api/ct/evaluate` (`vaia ct evaluate`) asks the loop for one scheduled evaluation
//! now ([`EvaluateNow`]): the loop runs it, so a manual and a scheduled evaluation never
//! overlap, and it is the same evaluation the schedule runs (reconciliation first).
//!
//! The data watcher runs here too: objects put under `raw/` in the local blob store are
//! counted from their blob events ([`RawDataCounter`]), and each scheduled evaluation is
//! preceded by a reconciliation of `raw/` ([`CtBudget::with_data_watcher`], as on AWS).

use crate::metrics::PromMetrics;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use vaia_core::layout::RAW_DATA_PREFIX;
use vaia_core::messages::ObjectCreated;
use vaia_core::ports::{HandlerError, MessageHandler, ReceivedMessage};
use vaia_core::Repository;
use vaia_ct_budget::{CtBudget, Evaluation};
use vaia_data_watcher::{DataWatcher, RawObject};

/// How often `vaia up --watch-data DIR` polls its directory.
pub const WATCH_DATA_EVERY: Duration = Duration::from_secs(2);

/// Polls a directory of raw data (`vaia up --watch-data DIR`) until `stop`: each poll is a
/// reconciliation (each file counted once, by key and size); `/metrics` reads the pending
/// volume from the store.
pub fn spawn_dir_watch(
    watcher: Arc<DataWatcher>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tick.tick() => {}
            }
            match watcher.reconcile_all().await {
                Ok(found) => {
                    for (repo, v) in found.iter().filter(|(_, v)| v.objects > 0) {
                        tracing::info!(repository = %repo, objects = v.objects, bytes = v.bytes, "watched directory: new raw data");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "watched directory unreadable"),
            }
        }
    })
}

/// The variable `vaia up --ct-every-secs` reads.
pub const CT_EVERY_ENV: &str = "VAIA_CT_EVERY_SECS";

/// The `ct-evaluate` queue's consumer (the registry asks after each dataset snapshot
/// pushed, as on AWS, where the ct-budget function consumes it): the repository goes to
/// the CT loop, which evaluates it and counts the evaluation on `/metrics`. A message that
/// is not an ask is a permanent error naming what is wrong.
pub struct SnapshotTrigger {
    pub snapshots: mpsc::UnboundedSender<Repository>,
}

#[async_trait]
impl MessageHandler for SnapshotTrigger {
    async fn handle(&self, message: &ReceivedMessage) -> Result<(), HandlerError> {
        let ask = vaia_ct_budget::asked::parse(&message.body)?;
        // The loop gone means the stack is stopping: nothing left to evaluate.
        let _ = self.snapshots.send(ask.repository);
        Ok(())
    }
}

/// The blob-events consumer, preceded by the data watcher: an object under `raw/` is
/// counted (once) in its repository's pending volume; other objects go
/// to the inner handler (the registry). A raw-data key that is malformed or of an unknown
/// repository is a permanent error (the message goes to the dead-letter queue), changing
/// nothing.
pub struct RawDataCounter {
    pub inner: Arc<dyn MessageHandler>,
    pub watcher: Arc<DataWatcher>,
}

#[async_trait]
impl MessageHandler for RawDataCounter {
    async fn handle(&self, message: &ReceivedMessage) -> Result<(), HandlerError> {
        let event = match serde_json::from_str::<ObjectCreated>(&message.body) {
            Ok(e) if e.key.as_str().starts_with(RAW_DATA_PREFIX) => e,
            _ => return self.inner.handle(message).await,
        };
        let error = |e: vaia_data_watcher::WatchError| {
            if e.is_retryable() {
                HandlerError::retryable(e.to_string())
            } else {
                HandlerError::permanent(e.to_string())
            }
        };
        self.watcher
            .observe(&RawObject::from(&event))
            .await
            .map_err(error)?;
        Ok(())
    }
}

/// Counts evaluations on `/metrics` and logs them.
fn observed(metrics: &PromMetrics, evaluations: &[Evaluation]) {
    for e in evaluations {
        metrics.ct_evaluation(e);
        tracing::info!(
            repository = %e.repository,
            outcome = e.budget.outcome.as_str(),
            budget = ?e.budget.budget,
            job = ?e.job_status,
            "CT evaluation"
        );
    }
}

/// A request for one scheduled evaluation now, answered with its evaluations (or why it
/// could not run) when it is done.
pub type EvaluateNow = oneshot::Sender<Result<Vec<Evaluation>, String>>;

/// What the loop does next.
enum Work {
    /// Every repository: on the schedule (`None`) or asked for.
    All(Option<EvaluateNow>),
    /// One repository, after its new snapshot.
    One(Repository),
}

/// Runs the CT loop until `stop`: every `every`, and on each request from `requests`, all
/// repositories; on each repository received from `snapshots`, that one.
pub fn spawn(
    ct: Arc<CtBudget>,
    every: Duration,
    mut snapshots: mpsc::UnboundedReceiver<Repository>,
    mut requests: mpsc::Receiver<EvaluateNow>,
    metrics: Arc<PromMetrics>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // What to evaluate; decided first, so that no borrow of `stop` is held across
            // an evaluation.
            let work = tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tick.tick() => Work::All(None),
                Some(reply) = requests.recv() => Work::All(Some(reply)),
                Some(repo) = snapshots.recv() => Work::One(repo),
            };
            match work {
                Work::All(reply) => {
                    let result = ct.evaluate_all().await;
                    match &result {
                        Ok(all) => observed(&metrics, all),
                        Err(e) => tracing::warn!(error = %e, "scheduled CT evaluation failed"),
                    }
                    if let Some(reply) = reply {
                        // The asker gone (it hung up) changes nothing: the evaluation is recorded.
                        let _ = reply.send(result.map_err(|e| e.to_string()));
                    }
                }
                Work::One(repo) => match ct.evaluate(&repo).await {
                    Ok(Some(e)) => observed(&metrics, std::slice::from_ref(&e)),
                    Ok(None) => {
                        tracing::debug!(repository = %repo, "new snapshot, nothing in production")
                    }
                    Err(e) => tracing::warn!(
                        repository = %repo,
                        error = %e,
                        "CT evaluation after a new snapshot failed"
                    ),
                },
            }
        }
    })
}

/// How many `POST /api/ct/evaluate` requests may wait for the loop.
const PENDING_REQUESTS: usize = 8;

/// The channel of [`EvaluateNow`] requests: the sender for [`router`], the receiver for
/// [`spawn`].
pub fn requests() -> (mpsc::Sender<EvaluateNow>, mpsc::Receiver<EvaluateNow>) {
    mpsc::channel(PENDING_REQUESTS)
}

/// `POST /api/ct/evaluate`: one scheduled evaluation now, answered with its summary
/// (`{"event", "evaluated", "outcomes", "queued"}`, as the `ct-budget` function logs it).
pub fn router(requests: mpsc::Sender<EvaluateNow>) -> axum::Router {
    axum::Router::new()
        .route("/api/ct/evaluate", axum::routing::post(evaluate_now))
        .with_state(requests)
}

async fn evaluate_now(
    axum::extract::State(requests): axum::extract::State<mpsc::Sender<EvaluateNow>>,
) -> Result<axum::Json<vaia_ct_budget::scheduled::ScheduledRun>, vaia_api::ApiError> {
    use axum::http::StatusCode;
    let stopping = || {
        vaia_api::ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the CT loop is stopping".into(),
        )
    };
    let (reply, answer) = oneshot::channel();
    let asked_at = chrono::Utc::now();
    requests.try_send(reply).map_err(|e| match e {
        mpsc::error::TrySendError::Full(_) => vaia_api::ApiError(
            StatusCode::TOO_MANY_REQUESTS,
            format!("{PENDING_REQUESTS} CT evaluations are already waiting; try again when they are done"),
        ),
        mpsc::error::TrySendError::Closed(_) => stopping(),
    })?;
    let evaluations = answer
        .await
        .map_err(|_| stopping())?
        .map_err(|e| vaia_api::ApiError(StatusCode::SERVICE_UNAVAILABLE, e))?;
    let event = vaia_ct_budget::scheduled::Schedule {
        id: format!("api-{}", asked_at.format("%Y%m%dT%H%M%S%.6fZ")),
        source: "vaia.api".into(),
        time: asked_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        resources: vec![],
    };
    Ok(axum::Json(vaia_ct_budget::scheduled::summarise(
        event,
        &evaluations,
    )))
}
