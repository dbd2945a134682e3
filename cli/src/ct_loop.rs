//! Continuous training on the local stack: the CT budget ([`vaia_ct_budget::CtBudget`]) run
//! every `[ct] schedule_minutes` (or `--ct-every-secs` / `VAIA_CT_EVERY_SECS`), as the
//! EventBridge schedule runs it on AWS, and once for a repository after each dataset
//! snapshot pushed (the registry's ask on the `ct-evaluate` queue, as on AWS). Training jobs go to the local `training` queue; every
//! evaluation is counted on `/metrics`.
//!
//! The data watcher runs here too: objects put under `raw/` in the local blob store are
//! counted from their blob events ([`RawDataCounter`]), and each scheduled evaluation is
//! preceded by a reconciliation of `raw/` ([`CtBudget::with_data_watcher`], as on AWS).

use crate::metrics::PromMetrics;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
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

/// Runs the CT loop until `stop`: every `every`, all repositories; on each repository
/// received from `snapshots`, that one.
pub fn spawn(
    ct: Arc<CtBudget>,
    every: Duration,
    mut snapshots: mpsc::UnboundedReceiver<Repository>,
    metrics: Arc<PromMetrics>,
    mut stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // What to evaluate; decided first, so that no borrow of `stop` is held across
            // an evaluation.
            let one: Option<Repository> = tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                _ = tick.tick() => None,
                Some(repo) = snapshots.recv() => Some(repo),
            };
            match one {
                None => match ct.evaluate_all().await {
                    Ok(all) => observed(&metrics, &all),
                    Err(e) => tracing::warn!(error = %e, "scheduled CT evaluation failed"),
                },
                Some(repo) => match ct.evaluate(&repo).await {
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
